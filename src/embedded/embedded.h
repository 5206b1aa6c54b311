/*
 * embedded.h -- internals of the embedded backend: a segmented log (the
 * source of truth) plus indexes in LMDB derived from it.
 *
 *   callers ──encode──▶ queue ──▶ writer thread (or a lone caller inline):
 *   (many threads)                check conditions in one LMDB write txn,
 *                                 copy records into one buffer, pwrite +
 *                                 fdatasync the log (syncer thread) while
 *                                 indexing, commit the index (no sync),
 *                                 wake callers
 *
 *   readers: LMDB read txn (MVCC snapshot) → log location → record in the
 *            read-only mmap of its segment; they never take the writer's lock.
 */
#ifndef EVS_EMBEDDED_H
#define EVS_EMBEDDED_H

#include "core/backend.h"
#include "embedded/format.h"
#include "embedded/overlay.h"
#include "util/util.h"

#include <lmdb.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#define EVS_MAX_SEGMENTS 65536u
/* The smallest reserved runway of index file blocks (evs__idx_reserve);
 * a group's worst case beyond it needs that much free disk. */
#define EVS_IDX_RUNWAY (64u << 20)

/* The writer's index map (MDB_WRITEMAP: data.mdb is as large as the map)
 * starts at this size and grows by doubling up to EVS_IDX_MAP_STEP, then
 * by that step (index.c, "The map"). */
#define EVS_IDX_MAP_MIN (16u << 20)
#define EVS_IDX_MAP_STEP ((uint64_t)1 << 30)
/* A long read renews its LMDB snapshot after this many events or
 * milliseconds, whichever comes first (index.c, "Long reads"). */
#define EVS_READ_RENEW_EVENTS 1024u
#define EVS_READ_RENEW_MS 10u
/* CLOCK_MONOTONIC_COARSE in ns: a few ns a call (a read checks it per
 * event), milliseconds of resolution, enough for EVS_READ_RENEW_MS. */
static inline uint64_t evs__coarse_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/*
 * The gate of an LMDB environment that may be remapped while the handle is
 * open (index.c, "The map"): every thread of this process that touches
 * the environment's pages (a read transaction, a cursor) is inside it; a
 * remap closes it and waits until nobody is. Counters per slot (threads
 * spread over them) so that readers do not share one cache line.
 */
#define EVS_GATE_SLOTS 16
typedef struct evs__gate {
    struct {
        _Atomic uint32_t n;
        char pad[60];
    } slot[EVS_GATE_SLOTS];
    _Atomic int closed;        /* a remap waits for or runs in the environment */
    _Atomic uint64_t gen;      /* bumped by every remap: cursors must be re-sought */
    pthread_mutex_t lock;      /* held by the remapping thread */
    int lock_made;
    _Atomic int broken;        /* a remap failed half-way: the map is gone
                                  (read by readers outside the gate lock) */
} evs__gate;

typedef struct evs__seg {
    uint8_t *_Atomic map; /* PROT_READ, whole segment; NULL until published */
    uint64_t first_position;
} evs__seg;

/* An append travelling from its caller to the writer. Lives on the
 * caller's stack; the caller sleeps on `done` until the writer is done. */
typedef struct evs__emb_req {
    evs__append_req *core;
    uint8_t *enc;        /* pre-encoded records, padded, back to back */
    size_t enc_len;
    uint32_t *rec_off;   /* offset of each record in enc (core->nevents) */
    int rc;
    char msg[1024];
    sem_t done;
    struct evs__emb_req *next;
    struct evs__emb_req *kids[2]; /* callers this one wakes when woken */
    int retry;           /* an idempotent retry: nothing to write */
    uint64_t idx_worst;  /* evs__idx_worst of this append */
} evs__emb_req;

/* One event of the group being committed, for its index entries. */
typedef struct evs__staged {
    uint32_t tid;
    uint64_t sid;
    int64_t version;
    uint64_t position;
    uint64_t loc;
    const uint8_t *rec;  /* the request's encoded record */
} evs__staged;

typedef struct evs__emb {
    evs_db base;
    char *dir;
    int lock_fd;           /* <dir>/LOCK: the writer's, flock'ed exclusive; or a
                              nolock reader's, flock'ed shared */
    int nolock;            /* a read-only open that cannot write LMDB's lock
                              files: reads with MDB_NOLOCK (evs__reader_nolock) */
    int dir_fd_log;        /* the log directory, fsync'ed after a new segment */
    uint32_t seg_size;
    int readonly;
    int open_failed;       /* closing after a failed open: no clean state */
    pthread_mutex_t map_lock; /* read-only opens: mapping segments made later */

    evs__seg *segs;        /* [EVS_MAX_SEGMENTS], index = number - 1 */
    _Atomic uint32_t nsegs;

    MDB_env *env;
    MDB_dbi db_meta, db_tenants, db_streams, db_stream_events, db_positions,
        db_tenant_events, db_event_ids, db_postings, db_times,
        db_snapshots;      /* an older index's snapshots, moved on open */
    MDB_env *snap_env;     /* <dir>/snapshots (snapshot.c); NULL: none yet */
    MDB_dbi snap_dbi;
    int idx_upgrade;       /* the index has an older format: rebuild it */
    int idx_fd;            /* data.mdb (LMDB's descriptor), for evs__idx_reserve */
    uint64_t idx_used;     /* bytes of data.mdb in use at the last reserve */
    uint64_t idx_reserved; /* bytes of data.mdb with blocks reserved */
    uint64_t idx_growth;   /* largest growth of data.mdb between two reserves */
    int idx_noreserve;     /* the filesystem cannot reserve (no fallocate) */
    uint64_t idx_have;     /* reserved bytes after the index's end, as of the
                              last evs__idx_reserve */
    uint64_t idx_mapsize;  /* the index map's size now (the writer's: data.mdb's size) */
    uint64_t idx_map_min;  /* its first size (EVS_IDX_MAP_MIN; tests: smaller) */
    unsigned long debug_group_wait; /* EVS_DEBUG_GROUP_WAIT (writer.c), read at open */
    evs__gate idx_gate;    /* readers of env in this process (index.c) */
    _Atomic uint64_t idx_room_ask; /* free map bytes a backup asks for before
                              its index copy (backup.c); the writer's next
                              evs__idx_reserve grows the map to that and
                              sets it back to 0 */

    /* published: newest committed (durable and indexed) position */
    _Atomic uint64_t head;

    /* commit notification for blocking reads (notify.c): a shared mapping
     * of <dir>/notify, NULL if it could not be opened */
    struct evs__notify *notify;
    int notify_fd;
    int notify_ro;         /* mapped read-only (a read-only open that cannot
                              write the file) */
    char notify_why[512];  /* why notify is NULL in a read-only open */

    /* ---- owned by the leader of the group being committed (or by
     * open/close) ---- */
    int wfd;               /* current (last) segment, O_RDWR */
    uint32_t wseg;         /* its number */
    uint32_t woff;         /* next write offset in it */
    uint64_t next_position;
    uint64_t next_stream_id;
    uint32_t next_tenant_id;
    int64_t last_stamp;    /* recorded_at of the last stamped event */
    int64_t time_max_us;   /* the times index's last key: the running maximum
                              of recorded_at (INT64_MIN: none); format.h */
    uint8_t *gbuf;         /* the group being built */
    size_t gbuf_len, gbuf_cap;
    uint64_t gbuf_first;   /* position of the first record in gbuf */
    /* writer counters, printed on close when EVS_DEBUG_WRITER is set */
    uint64_t groups, grouped_events;
    uint64_t ns_stage, ns_sync, ns_commit, ns_wake; /* check+index, write+fdatasync, txn commit */
    evs__emb_req **wake;   /* the group in queue order, for the wake tree */
    size_t wake_cap;
    evs__overlay ov;       /* the group's changes before they are indexed */
    evs__staged *staged;
    size_t nstaged, staged_cap;
    size_t nindexed;       /* staged events already put into the txn */
    void *wparts;          /* per-part scratch of the request being checked */
    size_t wparts_cap;

    /* ---- queue of appends waiting for a group ---- */
    pthread_mutex_t qlock;
    evs__emb_req *qhead, *qtail;
    pthread_cond_t qcond;  /* wakes the writer thread */
    int busy;              /* a group is being committed (writer or inline) */
    int writer_idle;       /* the writer thread waits on qcond */
    int stopping;
    pthread_t writer;
    int writer_started;
    int failed;            /* a write or sync failed: refuse appends */
    char failed_msg[512];
    int scav_want;         /* a scavenge waits for the committer's role: the
                              writer thread starts no group (scavenge.c) */

    /* ---- scavenge (scavenge.c) ---- */
    pthread_mutex_t scav_run;  /* one evs_scavenge at a time */
    pthread_mutex_t scav_lock; /* one segment's swap, or one backup's copy */
    uint32_t scav_pending; /* open: a scavenge stopped half-way through this
                              segment; recovery rebuilds the index in place */
    pthread_mutex_t maps_lock; /* map_gen, map_readers, scav_retired */
    void *scav_retired;    /* maps of segments a scavenge replaced, each with
                              the generation it was replaced in: unmapped
                              once no reader of that generation or an older
                              one is alive (evs__maps_unpin), or at close */
    uint64_t map_gen;      /* bumped by every replacement of a segment map */
    struct {
        uint64_t gen, n;   /* n live readers pinned in generation gen */
    } map_readers[32];     /* oldest first */
    size_t map_nreaders;

    /* ---- preallocator: zero-fills the next segment ahead of time ---- */
    pthread_t prep_thread;
    int prep_started, prep_stop, prep_busy;
    pthread_mutex_t prep_lock;
    pthread_cond_t prep_cond;
    uint32_t prep_want;    /* segment number asked for */
    uint32_t prep_no;      /* segment number being made / made */
    int prep_fd;           /* the made file, -1 if none */
    _Atomic int prep_urgent; /* the writer waits for it: stop pacing */

    /* ---- syncer: writes and syncs a group while the writer indexes it ---- */
    pthread_t syncer;
    int syncer_started;
    pthread_mutex_t sync_lock;
    pthread_cond_t sync_cond;
    int sync_job, sync_stop, sync_rc;
    char sync_msg[512];

    /* crypto-shredding's key store, <dir>/keys (keys.c), opened on first
     * use; NULL until then */
    struct evs__keys *_Atomic keys;
} evs__emb;

/* ---- the subject key store (keys.c): the backend entries subject_key and
 * subject_forget (core/backend.h); evs__keys_close at close; a backup's
 * copy of the file into dir (as <dir>/keys, synced) */
EVS_MUST_USE int evs__emb_subject_key(uint8_t key[32], evs_db *db, const char *tenant,
                                      const char *subject, const uint8_t *new_key);
EVS_MUST_USE int evs__emb_subject_forget(evs_db *db, const char *tenant, const char *subject);
void evs__keys_close(evs__emb *s);
EVS_MUST_USE int evs__keys_backup(evs__emb *s, const char *dir);

/* ---- log (log.c) ---- */
const uint8_t *evs__seg_map(evs__emb *s, uint32_t seg);
/* Make segment no the writer's current one. *named (may be NULL) is set
 * when the file got its final name, also when a later step failed. */
EVS_MUST_USE int evs__seg_create(evs__emb *s, uint32_t no, uint64_t first_position,
                                 int *named);
EVS_MUST_USE int evs__segs_open(evs__emb *s, int readonly);
EVS_MUST_USE int evs__prealloc_start(evs__emb *s);
void evs__prealloc_stop(evs__emb *s);
/* Ask for segment `no` to be made ahead (no-op if already asked). */
void evs__prealloc_request(evs__emb *s, uint32_t no);

/* Validation result of one record in a segment. */
enum { EVS_REC_OK = 0, EVS_REC_ZERO, EVS_REC_BAD_MAGIC, EVS_REC_BAD_LEN,
       EVS_REC_BAD_CRC, EVS_REC_BAD_LAYOUT };
EVS_MUST_USE int evs__rec_check(const uint8_t *p, size_t avail, uint32_t *len);
const char *evs__rec_problem(int rc);
/* Decode a record (already checked) into ev; tags into *tags (grown). */
EVS_MUST_USE int evs__rec_decode(const uint8_t *p, evs_event *ev, const char ***tags,
                                 size_t *tags_cap);
/* Size of the encoded record of one event (before padding). */
size_t evs__rec_size(size_t tenant_len, size_t stream_len,
                     const evs_event_data *e);
/* Encode an event; position-dependent fields are filled by the writer. */
void evs__rec_encode(uint8_t *p, uint32_t len, const char *tenant,
                     size_t tenant_len, const char *stream, size_t stream_len,
                     const evs_event_data *e, const evs_uuid *id);
/* A record (from the log or the group being built) by location. */
const uint8_t *evs__rec_at(evs__emb *s, uint64_t loc);

/* ---- index (index.c) ---- */
/* Make <dir>/<name> (index or snapshots) and an empty data.mdb in it if
 * missing, durably; discard: delete the environment's files first, unread
 * (an untrusted environment is never opened). */
EVS_MUST_USE int evs__env_prepare(const char *dir, const char *name, int discard);
/* writemap: the writer's environment (MDB_WRITEMAP, after recovery). */
EVS_MUST_USE int evs__idx_open(evs__emb *s, int readonly, int writemap);
/* A read-only open about to open the LMDB environment <dir>/<name>: sets
 * *nolock when its lock.mdb cannot be written (EACCES, EROFS), after
 * taking <dir>/LOCK shared, which keeps every writer out while this open
 * reads without LMDB's reader table. EVS_EBUSY when a writer holds the
 * store, EVS_EREADONLY when LOCK cannot be opened. */
EVS_MUST_USE int evs__reader_nolock(evs__emb *s, const char *name, int *nolock);
/* Before a write transaction that may grow the index by up to need bytes
 * (a worst case, evs__idx_worst): keep a runway of reserved disk blocks
 * after the index's end (at least EVS_IDX_RUNWAY and 4x the largest
 * growth between two calls seen), and check that the filesystem has room
 * for whatever need exceeds it. EVS_ENOSPC (nothing written) when not:
 * with MDB_WRITEMAP a page the filesystem cannot allocate is a SIGBUS. */
EVS_MUST_USE int evs__idx_reserve(evs__emb *s, uint64_t need);
/* The most an append of nevents events with ntags tags in all can grow the
 * index by: (8 + tags per event) puts an event, each copying or splitting
 * at most 16 pages (LMDB's copy-on-write path of a 4-level B-tree, a
 * DUPSORT sub-tree, the splits up to a new root). */
static inline uint64_t evs__idx_worst(uint64_t nevents, uint64_t ntags)
{
    return (8 * nevents + ntags) * 16 * 4096;
}
EVS_MUST_USE int evs__mdb_err(int mrc, const char *what);
/* evs__mdb_err for a failed write to env: EVS_ENOSPC when its disk is full
 * (LMDB says EIO for a short write). */
EVS_MUST_USE int evs__env_err(MDB_env *env, int mrc, const char *what);
/*
 * Reading the index while its map may grow (index.c, "The map"). Every
 * use of s->env's pages outside the writer's own transaction is inside
 * s->idx_gate; nothing waits (a commit, a caller's callback) inside it.
 *
 *   evs__rtxn_begin ── reads ── evs__rtxn_end        a short read
 *   evs__rtxn_begin ── setup ── evs__gate_leave      an iterator: its txn lives
 *   evs__gate_enter ── [evs__rtxn_renew] ── reads    between calls outside the
 *                  ── evs__gate_leave                gate; its cursors re-seek
 *                                                    after a renew
 *
 * evs__rtxn_begin: a read txn, the caller inside the gate on 0 (outside on
 * an error). It adopts a map another process grew (MDB_MAP_RESIZED).
 */
EVS_MUST_USE int evs__rtxn_begin(evs__emb *s, MDB_txn **txn);
/* Abort txn (NULL: none) and leave the gate. */
void evs__rtxn_end(evs__emb *s, MDB_txn *txn);
/* Enter / leave the gate without beginning anything. Entering fails
 * (EVS_EBACKEND, outside) only when a remap failed and the map is gone. */
EVS_MUST_USE int evs__gate_enter(evs__gate *g);
void evs__gate_leave(evs__gate *g);
/* Inside the gate: reset the read txn and renew it on the newest snapshot
 * (its cursors must be renewed and re-sought). Adopts another process's
 * larger map on the way; inside the gate on return, also on an error. */
EVS_MUST_USE int evs__rtxn_renew(evs__emb *s, MDB_txn *txn);
/* The writer's map, before a write txn: at least want bytes (rounded up to
 * the next size of the series). Waits until no reader of this process is
 * inside the gate. EVS_ENOSPC/EVS_ENOMEM with nothing changed when the file
 * cannot grow or the address space is short. */
EVS_MUST_USE int evs__idx_map_grow(evs__emb *s, uint64_t want);
/* Whether an LMDB call of this thread failed with MDB_MAP_FULL since the
 * last call (which clears it): the map must grow and the txn be redone. */
int evs__idx_map_full_take(void);
EVS_MUST_USE int evs__idx_tenant_get(MDB_txn *txn, evs__emb *s, const char *tenant,
                                     size_t len, uint32_t *id);
EVS_MUST_USE int evs__idx_tenant_insert(MDB_txn *txn, evs__emb *s, const char *tenant,
                                        size_t len, uint32_t id);
EVS_MUST_USE int evs__idx_tenant_put(MDB_txn *txn, evs__emb *s, const char *tenant,
                                     size_t len, uint32_t *id);
/* Stream head: *sid 0 and *version EVS_NO_STREAM when absent. */
EVS_MUST_USE int evs__idx_stream_get(MDB_txn *txn, evs__emb *s, uint32_t tid,
                                     const char *stream, size_t len, uint64_t *sid,
                                     int64_t *version);
EVS_MUST_USE int evs__idx_stream_put(MDB_txn *txn, evs__emb *s, uint32_t tid,
                                     const char *stream, size_t len, uint64_t sid,
                                     int64_t version);
/* Every index entry of one event (rec: its encoded record, which gives
 * the id, type and tags). sid 0: an event without a stream. */
EVS_MUST_USE int evs__idx_event_put(MDB_txn *txn, evs__emb *s, uint32_t tid, uint64_t sid,
                                    int64_t version, uint64_t position, uint64_t loc,
                                    const uint8_t *rec);
/* Reads EVS_DEBUG_TERM_HASH_BITS (tests: force hash collisions). */
void evs__term_hash_debug_init(void);
/* The postings key of a term (EVS_TERM_TYPE or EVS_TERM_TAG). */
void evs__term_key(uint8_t key[12], uint32_t tid, unsigned kind, const char *text,
                   size_t len);
EVS_MUST_USE int evs__idx_id_get(MDB_txn *txn, evs__emb *s, const uint8_t id[16],
                                 uint64_t *position, uint64_t *loc);
EVS_MUST_USE int evs__idx_applied_get(MDB_txn *txn, evs__emb *s, uint64_t *pos,
                                      uint64_t *loc);
EVS_MUST_USE int evs__idx_applied_put(MDB_txn *txn, evs__emb *s, uint64_t pos,
                                      uint64_t loc);
EVS_MUST_USE int evs__idx_seq_put(MDB_txn *txn, evs__emb *s);
/* Index one record found in the log (recovery): looks up or creates its
 * tenant and stream. */
EVS_MUST_USE int evs__idx_apply_record(MDB_txn *txn, evs__emb *s, const uint8_t *rec,
                                       uint64_t loc);

/* ---- DCB queries (query.c) ---- */
typedef struct evs__qplan evs__qplan;
/* Compile a validated query for tenant tid in txn; free the plan before
 * txn ends. in_writer: txn is the writer's (records may be in the group
 * being built; no CRC checks) and q must outlive the plan; otherwise the
 * plan copies q. */
EVS_MUST_USE int evs__qplan_new(evs__qplan **out, evs__emb *s, MDB_txn *txn, uint32_t tid,
                                const evs_query *q, int backward, int in_writer);
/* The first match at or after `from` (forward plan) or at or before it
 * (backward). Seeks must be monotonic in the plan's direction. Returns 1
 * and the match, 0 when there is none, or an error. */
EVS_MUST_USE int evs__qplan_seek(evs__qplan *pl, uint64_t from, uint64_t *pos, uint64_t *loc,
                                 const uint8_t **rec);
void evs__qplan_free(evs__qplan *pl);
/* After the plan's txn was renewed (evs__rtxn_renew) or the map moved:
 * renew its cursors and forget their positions (the next seek searches). */
EVS_MUST_USE int evs__qplan_renew(evs__qplan *pl);
/* Does the record match the query (checked, unhashed)? */
int evs__query_matches(const evs_query *q, const uint8_t *rec);

/*
 * The posting terms of a checked record, in the order they are indexed:
 * its stream's category (when it has a stream), its type, then each tag.
 * The one definition of what an event is findable by (index.c, rebuild.c,
 * verify in recovery.c).
 *
 *     evs__terms t;
 *     evs__terms_init(&t, rec);
 *     while (evs__terms_next(&t, &kind, &text, &len)) ...
 */
typedef struct evs__terms {
    const uint8_t *rec;
    const char *p;   /* the next term's text */
    size_t left;     /* tags not yet returned */
    int stage;       /* 0 category, 1 type, 2 tags */
} evs__terms;
static inline void evs__terms_init(evs__terms *t, const uint8_t *rec)
{
    t->rec = rec;
    t->p = (const char *)rec + EVS_REC_OFF_VAR + evs__get_le16(rec + EVS_REC_OFF_TENANT_LEN) + 1;
    t->left = evs__get_le16(rec + EVS_REC_OFF_NTAGS);
    t->stage = 0;
}
static inline int evs__terms_next(evs__terms *t, unsigned *kind, const char **text,
                                  size_t *len)
{
    if (t->stage == 0) { /* p is the stream */
        size_t sl = evs__get_le16(t->rec + EVS_REC_OFF_STREAM_LEN);
        const char *stream = t->p;
        t->p += sl + 1;
        t->stage = 1;
        if (sl > 0) {
            *kind = EVS_TERM_CATEGORY;
            *text = stream;
            *len = evs__category_len(stream, sl);
            return 1;
        }
    }
    if (t->stage == 1) {
        *kind = EVS_TERM_TYPE;
        *text = t->p;
        *len = evs__get_le16(t->rec + EVS_REC_OFF_TYPE_LEN);
        t->p += *len + 1;
        t->stage = 2;
        return 1;
    }
    if (t->left == 0)
        return 0;
    t->left--;
    *kind = EVS_TERM_TAG;
    *text = t->p;
    *len = strlen(t->p);
    t->p += *len + 1;
    return 1;
}

/* The times index key of a recorded_at (sign flipped: byte order = order). */
static inline void evs__time_key(uint8_t kb[8], int64_t us)
{
    uint64_t u = (uint64_t)us ^ (UINT64_C(1) << 63);
    for (int i = 7; i >= 0; i--, u >>= 8)
        kb[i] = (uint8_t)u;
}
/* The last recorded_at of the times index (INT64_MIN when empty). */
EVS_MUST_USE int evs__idx_time_max(MDB_txn *txn, evs__emb *s, int64_t *us);

/* ---- commit notification (notify.c) ---- */
/* Map <dir>/notify (created if missing and the directory is writable). */
EVS_MUST_USE int evs__notify_open(evs__emb *s);
void evs__notify_close(evs__emb *s);
/* Bump the notify word and wake every waiter (in any process): the writer
 * after each index commit, and a subscription being stopped. */
void evs__notify_kick(evs__emb *s);
/* The notify word now; pass it to evs__notify_wait. */
uint32_t evs__notify_seq(evs__emb *s);
/* Sleep until the notify word differs from seq or deadline_ns
 * (CLOCK_MONOTONIC; 0 = no deadline) passes. Returns 0, or EVS_EBACKEND
 * when there is no notify file. */
EVS_MUST_USE int evs__notify_wait(evs__emb *s, uint32_t seq, uint64_t deadline_ns);

/* ---- snapshots (snapshot.c) ---- */
/* Open the snapshots environment (read-only: only if it exists) and move
 * an older index's snapshots into it. */
EVS_MUST_USE int evs__snap_open(evs__emb *s, int readonly);
void evs__snap_close(evs__emb *s);
EVS_MUST_USE int evs__emb_snapshot_save(evs_db *db, const char *tenant, const char *stream,
                                        int64_t version, const char *schema, const void *data,
                                        size_t len, int64_t saved_at);
EVS_MUST_USE int evs__emb_snapshot_load(evs_snapshot **out, evs_db *db, const char *tenant,
                                        const char *stream, int64_t max_version);
EVS_MUST_USE int evs__emb_snapshot_list(evs_db *db, const char *tenant, evs_snapshot_fn fn,
                                        void *ctx);

/* ---- the state file (state.c) ---- */
/* What the state file says about this open (state.c explains the rule). */
typedef struct evs__trust {
    int index_trusted;   /* the index on disk may be read */
    int log_original;    /* the log files are the ones the state was written
                            with (not a copy): later-group evidence holds */
    int snapshots_trusted; /* <dir>/snapshots is the one the state names */
    uint64_t durable;    /* positions <= this were durable: never cut */
    int frontier_unknown; /* the state file is damaged: what was durable is
                             unknown, so nothing but zeros may be cut */
    char why[256];       /* why the index is not trusted ("" when it is) */
} evs__trust;
EVS_MUST_USE int evs__state_judge(const char *dir, evs__trust *t);
/* The durable position of a state written while it is unknown. */
#define EVS_DURABLE_UNKNOWN UINT64_MAX
/* Replace <dir>/state durably: OPEN (open_flag) or CLEAN, naming the
 * current files and this boot. */
EVS_MUST_USE int evs__state_write(const char *dir, int open_flag, uint64_t durable);

/* Tell the opener what recovery did (evs_open_options.recovery_notice). */
void evs__emb_notice(evs__emb *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- recovery and verify (recovery.c) ---- */
EVS_MUST_USE int evs__recover(evs__emb *s, const evs__trust *t);
EVS_MUST_USE int evs__emb_verify(uint64_t *checked, evs_db *db, evs__verify_sink *sink);

/* ---- online backup (backup.c) ---- */
/* evs_scavenge (scavenge.c): the backend entry, core/backend.h */
EVS_MUST_USE int evs__emb_scavenge(evs_scavenge_result *out, evs_db *db,
                                   const evs__scavenge_plan *plan);
/* A read-write open, after the state is judged: delete an interrupted
 * rewrite's temp files; when a scavenge stopped half-way through a
 * segment, set s->scav_pending (evs__recover then empties the index in
 * place and rebuilds it from the log). */
EVS_MUST_USE int evs__scav_open(evs__emb *s, evs__trust *t);
/* After evs__recover committed the rebuilt index: the progress file
 * forgets the pending segment. 0, or EVS_EIO/EVS_ENOSPC. */
EVS_MUST_USE int evs__scav_recovered(evs__emb *s);
/* A segment header's bytes 44..47 (u32 LE, covered by its CRC): how many
 * times a scavenge rewrote the segment (0 in a segment never scavenged,
 * or scavenged by a version that left the field zero); docs/FORMAT.md. */
#define EVS_SEG_OFF_SCAV_GEN 44
/* Close: unmap the segment maps scavenges replaced. */
void evs__scav_close(evs__emb *s);
/* A reader of segment maps (an iterator, from its creation to its free:
 * the events it hands out point into the maps) pins the current map
 * generation: a map a scavenge replaces later stays mapped until every
 * reader pinned in its generation or an older one has unpinned. Returns
 * the generation to give evs__maps_unpin. Never fails; any thread. */
uint64_t evs__maps_pin(evs__emb *s);
/* The end of a reader pinned at gen; unmaps the replaced maps no live
 * reader can still point into (unless the committer is busy: its
 * idempotency check may read a record; then the next unpin does). */
void evs__maps_unpin(evs__emb *s, uint64_t gen);
/* Segment no's map; in a read-only handle whose map is of a file that a
 * scavenge (another process) has since replaced, the new file's, mapped
 * now (the old map kept while an older reader may use it: evs__maps_pin).
 * Caller holds s->scav_lock (verify, backup). */
const uint8_t *evs__scav_refresh(evs__emb *s, uint32_t no);
EVS_MUST_USE int evs__emb_backup(evs_backup_result *out, evs_db *db, const char *dest,
                                 const evs_backup_options *opts);

/* ---- group commit (writer.c) ---- */
EVS_MUST_USE int evs__writer_start(evs__emb *s); /* the writer and syncer threads */
void evs__writer_stop(evs__emb *s);
EVS_MUST_USE int evs__emb_append(evs_db *db, evs__append_req *req);

/* ---- exploring (explore.c): the backend table's list_streams and
 * list_tenants (core/backend.h) ---- */
EVS_MUST_USE int evs__emb_list_streams(evs_db *db, const char *tenant, const char *prefix,
                                       const char *after_tenant, const char *after,
                                       uint64_t limit, int system, evs__list_sink *sink);
EVS_MUST_USE int evs__emb_list_tenants(evs_db *db, uint64_t cap, evs__list_sink *sink);

#endif
