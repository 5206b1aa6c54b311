/*
 * scavenge.c -- evs_scavenge on the embedded store: reclaim the log space
 * of the events a plan (core/backend.h, built by core/lifecycle.c) makes
 * eligible, one sealed segment at a time (docs/DESIGN.md, "Scavenge
 * (embedded)").
 *
 * A rewritten segment keeps every surviving record at the offset it had:
 * locations, and so every index entry of a surviving event, never change.
 * The records removed become holes: the new file is written sparse (only
 * its header and the surviving records are written), and its header says
 * SCAVENGED (format.h), which tells every reader of the log that zeros
 * before the end are holes, not damage. What is reclaimed is every
 * filesystem block that held removed records only.
 *
 * One segment, in this order (each step durable before the next):
 *
 *   1. <seg>.evslog.scav: header (SCAVENGED) + surviving records, sparse,
 *      fdatasync'ed. A crash leaves a temp file that the next open
 *      deletes; ENOSPC deletes it and changes nothing.
 *   2. <dir>/scavenge says "segment N pending" (replaced atomically).
 *   3. The index entries of the removed events are deleted, in
 *      transactions of SCAV_TXN_EVENTS events, each holding the
 *      committer's role (appends wait for one transaction at most).
 *   4. rename(<seg>.evslog.scav, <seg>.evslog), fsync of log/.
 *   5. This handle maps the new file beside the old map and swaps the
 *      segment's map pointer (map_new_file); the old map is unmapped (and
 *      the old file's blocks freed) once no iterator that began before the
 *      swap is alive (evs__maps_pin), so what a reader decodes never
 *      changes under it. Other processes keep the map they have (the old
 *      file, which has every record): consistent for reads; their
 *      evs_verify maps the new file first (evs__scav_refresh), as its walk
 *      must match the index.
 *   6. <dir>/scavenge says "segment N done".
 *
 * Between 2 and 6 the index and the log may disagree (the index has lost
 * entries of records still in the old file, or still holds entries of
 * records the new file dropped). A read-write open that finds a pending
 * segment (evs__scav_open) has recovery empty the index in place, in one
 * transaction, and rebuild it from the log -- whichever file the log has,
 * old or new, is a valid log; read-only handles of other processes see
 * the rebuilt index as they see any commit. A
 * scavenge resumes after the last segment done; the file is removed when
 * a scavenge completes.
 */
#include "embedded/embedded.h"
#include "util/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

/* Index entries of at most this many removed events per transaction: the
 * committer's role (and with it the appends) is held that long. */
#define SCAV_TXN_EVENTS 256u

/* ---- the progress file <dir>/scavenge ------------------------------------
 *
 *   OFFSET SIZE FIELD
 *   0      8    magic "EVSSCAV\0"
 *   8      4    format (u32 LE) = 1
 *   12     4    done: the last segment finished (u32 LE; segments up to it
 *               are not examined again by a resumed scavenge of the same
 *               plan)
 *   16     4    pending: the segment whose index entries and file are
 *               being changed (u32 LE), 0 = none
 *   20     8    plan: a hash of the plan the segments up to `done` were
 *               scavenged under (u64 LE, plan_hash; never 0, and 0 in a
 *               file of a version that did not write it): a scavenge
 *               resumes only under the same plan, and starts at segment 1
 *               under another
 *   28     4    CRC32C of bytes 0..27
 */
#define PROG_SIZE 32u
#define PROG_NAME "scavenge"

typedef struct prog {
    uint32_t done, pending;
    uint64_t plan;
} prog;

/* The plan's identity: a hash of every entry (names and rules, the
 * versions and times they were computed from); never 0. */
static uint64_t plan_hash(const evs__scavenge_plan *plan)
{
    uint64_t h = 0; /* chained: each part hashed with the previous hash as seed */
    for (size_t i = 0; i < plan->nstreams; i++) {
        const evs__scavenge_stream *e = &plan->streams[i];
        uint8_t b[32];
        h = XXH3_64bits_withSeed(e->tenant, strlen(e->tenant) + 1, h);
        h = XXH3_64bits_withSeed(e->stream, strlen(e->stream) + 1, h);
        evs__put_le64(b, (uint64_t)(e->drop_all != 0));
        evs__put_le64(b + 8, (uint64_t)e->keep_from);
        evs__put_le64(b + 16, (uint64_t)e->expire_before);
        evs__put_le64(b + 24, (uint64_t)e->last_version);
        h = XXH3_64bits_withSeed(b, sizeof(b), h);
    }
    return h ? h : 1;
}

/* Test hooks (tests/test_scavenge.c): EVS_DEBUG_SCAVENGE_KILL=N makes the
 * process SIGKILL itself at the Nth step of a scavenge (after each write
 * made durable, each index transaction); EVS_DEBUG_SCAVENGE_TXN=N puts N
 * events per index transaction instead of SCAV_TXN_EVENTS. */
static _Thread_local long dbg_kill_at = -1, dbg_steps;
static void step(void)
{
    if (dbg_kill_at > 0 && ++dbg_steps >= dbg_kill_at)
        raise(SIGKILL);
}

static EVS_MUST_USE int io_err(int e, const char *what, const char *path)
{
    return evs__err(e == ENOSPC || e == EDQUOT ? EVS_ENOSPC : EVS_EIO,
                    "scavenge: %s %s: %s", what, path, strerror(e));
}

static EVS_MUST_USE int sync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return io_err(errno, "open directory", path);
    int rc = fsync(fd) == 0 ? 0 : io_err(errno, "fsync directory", path);
    close(fd);
    return rc;
}

/* The progress file: 1 and *p when present and valid, 0 when absent (or
 * damaged: it is replaced atomically, so only by outside hands; the
 * scavenge then starts over, which redoes nothing harmful). */
static int prog_read(const char *dir, prog *p)
{
    char path[4096];
    uint8_t b[PROG_SIZE];
    snprintf(path, sizeof(path), "%s/" PROG_NAME, dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = pread(fd, b, sizeof(b), 0);
    close(fd);
    if (n != (ssize_t)sizeof(b) || memcmp(b, "EVSSCAV", 8) != 0 ||
        evs__get_le32(b + 8) != 1 || evs__get_le32(b + 28) != evs__crc32c(b, 28))
        return 0;
    p->done = evs__get_le32(b + 12);
    p->pending = evs__get_le32(b + 16);
    p->plan = evs__get_le64(b + 20);
    return 1;
}

/* Replace the progress file durably (tmp, fdatasync, rename, fsync dir). */
static EVS_MUST_USE int prog_write(const char *dir, const prog *p)
{
    char path[4096], tmp[4096];
    uint8_t b[PROG_SIZE] = {0};
    memcpy(b, "EVSSCAV", 8);
    evs__put_le32(b + 8, 1);
    evs__put_le32(b + 12, p->done);
    evs__put_le32(b + 16, p->pending);
    evs__put_le64(b + 20, p->plan);
    evs__put_le32(b + 28, evs__crc32c(b, 28));
    snprintf(path, sizeof(path), "%s/" PROG_NAME, dir);
    snprintf(tmp, sizeof(tmp), "%s/" PROG_NAME ".tmp", dir);
    int fd = open(tmp, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0)
        return io_err(errno, "create", tmp);
    int rc = 0;
    if (pwrite(fd, b, sizeof(b), 0) != (ssize_t)sizeof(b))
        rc = io_err(errno ? errno : ENOSPC, "write", tmp);
    else if (fdatasync(fd) != 0)
        rc = io_err(errno, "fdatasync", tmp);
    close(fd);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = io_err(errno, "rename", tmp);
    if (rc < 0) {
        unlink(tmp);
        return rc;
    }
    return sync_dir(dir);
}

static EVS_MUST_USE int prog_remove(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/" PROG_NAME, dir);
    if (unlink(path) != 0 && errno != ENOENT)
        return io_err(errno, "remove", path);
    return sync_dir(dir);
}

/* ---- open and close --------------------------------------------------------- */

int evs__scav_open(evs__emb *s, evs__trust *t)
{
    char path[4096];
    /* an unfinished rewrite (step 1): never used */
    snprintf(path, sizeof(path), "%s/log", s->dir);
    DIR *d = opendir(path);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            size_t len = strlen(de->d_name);
            if (len == 16 + 12 && strcmp(de->d_name + 16, ".evslog.scav") == 0) {
                char f[4096 + 256];
                snprintf(f, sizeof(f), "%s/%s", path, de->d_name);
                unlink(f);
            }
        }
        closedir(d);
    }
    prog p;
    (void)t;
    if (!prog_read(s->dir, &p) || p.pending == 0)
        return 0;
    /* Stopped between steps 2 and 6: recovery empties the index in place
     * and rebuilds it from the log (evs__recover: s->scav_pending). In
     * place, not in new files: a read-only handle of another process that
     * has the index open (a follower) sees the rebuilt index, as it sees
     * every commit, instead of reading a deleted file forever. The
     * progress file forgets the segment only once the rebuilt index is
     * committed (evs__scav_recovered): a crash in between drops it again.
     * (An index that is not trusted is deleted and rebuilt anyway.) */
    s->scav_pending = p.pending;
    evs__emb_notice(s, "a scavenge of %s stopped while it changed log segment %u and its "
                    "index entries: the index is rebuilt from the log", s->dir, p.pending);
    return 0;
}

int evs__scav_recovered(evs__emb *s)
{
    prog p;
    if (!s->scav_pending || !prog_read(s->dir, &p) || p.pending == 0) {
        s->scav_pending = 0;
        return 0;
    }
    p.pending = 0;
    int rc = prog_write(s->dir, &p);
    if (rc == 0)
        s->scav_pending = 0;
    return rc;
}

typedef struct retired {
    uint8_t *map;
    uint64_t gen; /* the generation it was replaced in */
    struct retired *next;
} retired;

/* Unmap the maps of list r (taken off s->scav_retired). */
static void unmap_list(evs__emb *s, retired *r)
{
    while (r) {
        retired *next = r->next;
        munmap(r->map, s->seg_size);
        free(r);
        r = next;
    }
}

/* Take off s->scav_retired the maps no live reader can point into: those
 * replaced in a generation older than every live reader's. Caller holds
 * maps_lock; the caller unmaps the list returned, outside it. */
static retired *reclaimable(evs__emb *s)
{
    if (!s->scav_retired)
        return NULL;
    uint64_t oldest = s->map_nreaders ? s->map_readers[0].gen : UINT64_MAX;
    /* the committer's idempotency check (writer.c) reads stored records
     * through the maps without pinning: while it is busy, nothing goes (a
     * group that starts later reads the maps replacing these) */
    pthread_mutex_lock(&s->qlock);
    int busy = s->busy;
    pthread_mutex_unlock(&s->qlock);
    if (busy)
        return NULL;
    retired *out = NULL, **pp = (retired **)&s->scav_retired;
    while (*pp) {
        retired *r = *pp;
        if (r->gen < oldest) {
            *pp = r->next;
            r->next = out;
            out = r;
        } else {
            pp = &r->next;
        }
    }
    return out;
}

uint64_t evs__maps_pin(evs__emb *s)
{
    pthread_mutex_lock(&s->maps_lock);
    size_t n = s->map_nreaders;
    uint64_t gen = s->map_gen;
    if (n > 0 && (s->map_readers[n - 1].gen == gen ||
                  n == sizeof(s->map_readers) / sizeof(s->map_readers[0]))) {
        /* the table full: counted with the newest generation there, which
         * is older, so that its maps are kept longer, never shorter */
        gen = s->map_readers[n - 1].gen;
        s->map_readers[n - 1].n++;
    } else {
        s->map_readers[n].gen = gen;
        s->map_readers[n].n = 1;
        s->map_nreaders = n + 1;
    }
    pthread_mutex_unlock(&s->maps_lock);
    return gen;
}

void evs__maps_unpin(evs__emb *s, uint64_t gen)
{
    retired *free_now = NULL;
    pthread_mutex_lock(&s->maps_lock);
    for (size_t i = 0; i < s->map_nreaders; i++) {
        if (s->map_readers[i].gen != gen)
            continue;
        if (--s->map_readers[i].n == 0) {
            memmove(&s->map_readers[i], &s->map_readers[i + 1],
                    (s->map_nreaders - i - 1) * sizeof(s->map_readers[0]));
            s->map_nreaders--;
        }
        /* also when the oldest generation did not end here: an earlier
         * attempt may have met a busy committer */
        free_now = reclaimable(s);
        break;
    }
    pthread_mutex_unlock(&s->maps_lock);
    unmap_list(s, free_now);
}

/*
 * Make segment no's map show the file fd (the new file, whose surviving
 * records are at the same offsets as in the old one). Beside the old map:
 * the new file is mapped at a new address and the segment's map pointer
 * swapped atomically, in a new generation of the maps; the old map stays
 * mapped until no reader pinned in an older generation is alive
 * (evs__maps_pin: an iterator that may hold pointers into it or read an
 * index entry of a removed record from an older snapshot), so what a
 * reader decodes never changes under it. The old file's blocks are free
 * once its map is gone (and no other process maps it): at once when no
 * read is under way. Should the new map fail, the old one stays (the same
 * surviving bytes; the removed records too, whose index entries are gone).
 */
static void map_new_file(evs__emb *s, uint32_t no, int fd)
{
    void *nm = mmap(NULL, s->seg_size, PROT_READ, MAP_SHARED, fd, 0);
    retired *r = nm != MAP_FAILED ? malloc(sizeof(*r)) : NULL;
    if (!r) {
        if (nm != MAP_FAILED)
            munmap(nm, s->seg_size);
        return;
    }
    pthread_mutex_lock(&s->maps_lock);
    r->map = atomic_exchange(&s->segs[no - 1].map, (uint8_t *)nm);
    r->gen = s->map_gen++;
    r->next = s->scav_retired;
    s->scav_retired = r;
    retired *free_now = reclaimable(s);
    pthread_mutex_unlock(&s->maps_lock);
    unmap_list(s, free_now);
}

void evs__scav_close(evs__emb *s)
{
    unmap_list(s, s->scav_retired);
    s->scav_retired = NULL;
}

/* ---- the committer's role --------------------------------------------------- */

/*
 * The index is written by one committer at a time (writer.c: s->busy):
 * evs__idx_reserve, a map growth and the write transaction are the
 * committer's. scav_want keeps the writer thread from starting another
 * group while this waits, so that a steady stream of appends cannot
 * starve the scavenge; the appends queue meanwhile.
 */
static EVS_MUST_USE int committer_take(evs__emb *s)
{
    pthread_mutex_lock(&s->qlock);
    s->scav_want = 1;
    while (s->busy && !s->failed) {
        pthread_mutex_unlock(&s->qlock);
        nanosleep(&(struct timespec){0, 100000}, NULL);
        pthread_mutex_lock(&s->qlock);
    }
    s->scav_want = 0;
    if (s->failed) {
        int rc = evs__err(EVS_ECLOSED, "scavenge: %s", s->failed_msg);
        if (s->writer_idle)
            pthread_cond_signal(&s->qcond);
        pthread_mutex_unlock(&s->qlock);
        return rc;
    }
    s->busy = 1;
    pthread_mutex_unlock(&s->qlock);
    return 0;
}

static void committer_give(evs__emb *s)
{
    pthread_mutex_lock(&s->qlock);
    s->busy = 0;
    if (s->writer_idle) /* appends queued meanwhile, or a stop */
        pthread_cond_signal(&s->qcond);
    pthread_mutex_unlock(&s->qlock);
}

/* ---- index entries of removed events ---------------------------------------- */

static EVS_MUST_USE int del(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen,
                            const void *val, size_t vlen, const char *what)
{
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    int mrc = mdb_del(txn, dbi, &k, val ? &v : NULL);
    if (mrc != 0 && mrc != MDB_NOTFOUND)
        return evs__mdb_err(mrc, what);
    return 0;
}

/* Delete every index entry of the event whose record is rec at loc (the
 * `times` entries stay: they map a time to a position, and a read from
 * there goes on to the next position that exists). */
static EVS_MUST_USE int unindex(MDB_txn *txn, evs__emb *s, const uint8_t *rec, uint64_t loc)
{
    int rc;
    uint64_t pos = evs__get_le64(rec + EVS_REC_OFF_POSITION);
    size_t tl = evs__get_le16(rec + EVS_REC_OFF_TENANT_LEN);
    size_t sl = evs__get_le16(rec + EVS_REC_OFF_STREAM_LEN);
    const char *tenant = (const char *)rec + EVS_REC_OFF_VAR;
    const char *stream = tenant + tl + 1;
    int64_t version = (int64_t)evs__get_le64(rec + EVS_REC_OFF_VERSION);
    uint8_t kb[16], vb[16];

    evs__put_be64(kb, pos);
    if ((rc = del(txn, s->db_positions, kb, 8, NULL, 0, "scavenge: positions")) < 0)
        return rc;
    /* the event id: only when it names this event */
    MDB_val k = {16, (void *)(rec + EVS_REC_OFF_ID)}, v;
    int mrc = mdb_get(txn, s->db_event_ids, &k, &v);
    if (mrc == 0 && v.mv_size >= 8 && evs__get_le64(v.mv_data) == pos) {
        if ((rc = del(txn, s->db_event_ids, rec + EVS_REC_OFF_ID, 16, NULL, 0,
                      "scavenge: event ids")) < 0)
            return rc;
    } else if (mrc != 0 && mrc != MDB_NOTFOUND) {
        return evs__mdb_err(mrc, "scavenge: event ids");
    }
    uint32_t tid;
    rc = evs__idx_tenant_get(txn, s, tenant, tl, &tid);
    if (rc == EVS_ENOTFOUND) {
        evs__clear_error();
        return 0; /* nothing else can name it */
    }
    if (rc < 0)
        return rc;
    if (!evs__is_system_stream(stream, sl)) {
        evs__put_be32(kb, tid);
        evs__put_be64(kb + 4, pos);
        if ((rc = del(txn, s->db_tenant_events, kb, 12, NULL, 0,
                      "scavenge: tenant events")) < 0)
            return rc;
        evs__terms t;
        unsigned kind;
        const char *text;
        size_t len;
        uint8_t pk[12];
        evs__put_be64(vb, pos);
        evs__put_le64(vb + 8, loc);
        evs__terms_init(&t, rec);
        while (evs__terms_next(&t, &kind, &text, &len)) {
            evs__term_key(pk, tid, kind, text, len);
            if ((rc = del(txn, s->db_postings, pk, 12, vb, 16, "scavenge: postings")) < 0)
                return rc;
        }
    }
    if (sl > 0) {
        uint64_t sid;
        int64_t head;
        if ((rc = evs__idx_stream_get(txn, s, tid, stream, sl, &sid, &head)) < 0)
            return rc;
        if (sid != 0) {
            evs__put_be64(kb, sid);
            evs__put_be64(kb + 8, (uint64_t)version);
            MDB_val sk = {16, kb}, sv;
            mrc = mdb_get(txn, s->db_stream_events, &sk, &sv);
            if (mrc == 0 && sv.mv_size >= 8 && evs__get_le64(sv.mv_data) == pos) {
                if ((rc = del(txn, s->db_stream_events, kb, 16, NULL, 0,
                              "scavenge: stream events")) < 0)
                    return rc;
            } else if (mrc != 0 && mrc != MDB_NOTFOUND) {
                return evs__mdb_err(mrc, "scavenge: stream events");
            }
        }
    }
    return 0;
}

/* The index entries of drops[from, to) (offsets in segment no, mapped at
 * m), in one transaction as the committer; redone in a larger map when
 * the map is full. */
static EVS_MUST_USE int unindex_batch(evs__emb *s, uint32_t no, const uint8_t *m,
                                      const uint32_t *drops, size_t from, size_t to)
{
    int rc, mrc;
    uint64_t ntags = 0;
    for (size_t i = from; i < to; i++)
        ntags += evs__get_le16(m + drops[i] + EVS_REC_OFF_NTAGS) + 1;
    if ((rc = committer_take(s)) < 0)
        return rc;
    if ((rc = evs__idx_reserve(s, evs__idx_worst(to - from, ntags))) < 0)
        goto out;
    for (int tries = 0;; tries++) {
        MDB_txn *txn = NULL;
        (void)evs__idx_map_full_take();
        if ((mrc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0) {
            rc = evs__mdb_err(mrc, "scavenge: begin");
            goto out;
        }
        rc = 0;
        for (size_t i = from; i < to && rc == 0; i++)
            rc = unindex(txn, s, m + drops[i], evs__loc(no, drops[i]));
        if (rc == 0) {
            mrc = mdb_txn_commit(txn);
            if (mrc == 0)
                break;
            rc = evs__env_err(s->env, mrc, "scavenge: commit");
        } else {
            mdb_txn_abort(txn);
        }
        if (!evs__idx_map_full_take() || tries >= 16)
            goto out;
        evs__clear_error();
        if ((rc = evs__idx_map_grow(s, s->idx_mapsize + 1)) < 0)
            goto out;
    }
    rc = 0;
out:
    committer_give(s);
    return rc;
}

/* ---- one segment ------------------------------------------------------------ */

typedef struct scav {
    evs__emb *s;
    const evs__scavenge_plan *plan;
    evs_scavenge_result *out;
    size_t txn_events; /* removed events per index transaction */
    const uint8_t *m; /* the segment being looked at */
    uint32_t *drops;  /* offsets of the records to remove */
    size_t ndrops, cap;
    /* the last plan lookup (records of one stream come in runs) */
    const char *lt, *ls;
    size_t ltl, lsl;
    const evs__scavenge_stream *lent;
} scav;

/* Walk the records of segment m: fn(ctx, off, len) for each; ECORRUPT on
 * a damaged one (the segment is then left as it is). */
static EVS_MUST_USE int walk(evs__emb *s, uint32_t no, const uint8_t *m,
                             int (*fn)(void *, uint32_t, uint32_t), void *ctx)
{
    int holes = evs__seg_scavenged(m);
    uint32_t off = EVS_SEG_HEADER_SIZE, size = s->seg_size;
    for (;;) {
        if (holes)
            off = evs__seg_skip_hole(m, off, size);
        if (off + 8 > size)
            return 0;
        if (evs__get_le64(m + off) == 0) {
            /* the unused end: zeros to the end, or the segment is damaged
             * (a rewrite would lose what follows) */
            uint32_t nx = evs__seg_skip_hole(m, off, size);
            if (nx < size)
                return evs__err(EVS_ECORRUPT, "scavenge: log segment %u: non-zero bytes at "
                                "offset %u after the end of its records at %u; the segment "
                                "is left as it is. Run `evs verify` for a full report", no,
                                nx, off);
            return 0;
        }
        uint32_t len;
        int rr = evs__rec_check(m + off, size - off, &len);
        if (rr != EVS_REC_OK)
            return evs__err(EVS_ECORRUPT, "scavenge: log segment %u offset %u: the record "
                            "is damaged (%s); the segment is left as it is. Run `evs "
                            "verify` for a full report", no, off, evs__rec_problem(rr));
        int rc = fn(ctx, off, len);
        if (rc < 0)
            return rc;
        off += evs__pad8(len);
    }
}

static const evs__scavenge_stream *lookup(scav *c, const uint8_t *rec)
{
    size_t tl = evs__get_le16(rec + EVS_REC_OFF_TENANT_LEN);
    size_t sl = evs__get_le16(rec + EVS_REC_OFF_STREAM_LEN);
    const char *tenant = (const char *)rec + EVS_REC_OFF_VAR;
    const char *stream = tenant + tl + 1;
    if (sl == 0 || evs__is_system_stream(stream, sl))
        return NULL; /* never eligible */
    if (c->ls && tl == c->ltl && sl == c->lsl && memcmp(stream, c->ls, sl) == 0 &&
        memcmp(tenant, c->lt, tl) == 0)
        return c->lent;
    c->lt = tenant;
    c->ltl = tl;
    c->ls = stream;
    c->lsl = sl;
    c->lent = evs__scavenge_find(c->plan, tenant, tl, stream, sl);
    return c->lent;
}

static int collect(void *ctx, uint32_t off, uint32_t len)
{
    scav *c = ctx;
    const uint8_t *rec = c->m + off;
    (void)len;
    const evs__scavenge_stream *e = lookup(c, rec);
    if (!evs__scavenge_drop(e, (int64_t)evs__get_le64(rec + EVS_REC_OFF_VERSION),
                            (int64_t)evs__get_le64(rec + EVS_REC_OFF_RECORDED_AT)))
        return 0;
    if (evs__grow(&c->drops, &c->cap, c->ndrops + 1, sizeof(*c->drops)) < 0)
        return evs__err(EVS_ENOMEM, "scavenge: out of memory");
    c->drops[c->ndrops++] = off;
    return 0;
}

/* Writing the survivors: runs of adjacent kept records, one pwrite each. */
typedef struct wr {
    const uint8_t *m;
    const uint32_t *drops;
    size_t ndrops, di;
    int fd;
    uint32_t run_start, run_end; /* [start, end), empty when equal */
    int err;                      /* errno of a failed write */
} wr;

static int flush_run(wr *w)
{
    uint32_t at = w->run_start;
    while (at < w->run_end) {
        ssize_t n = pwrite(w->fd, w->m + at, w->run_end - at, at);
        if (n <= 0) {
            w->err = n < 0 ? errno : ENOSPC;
            return -1;
        }
        at += (uint32_t)n;
    }
    w->run_start = w->run_end;
    return 0;
}

static int keep(void *ctx, uint32_t off, uint32_t len)
{
    wr *w = ctx;
    if (w->di < w->ndrops && w->drops[w->di] == off) {
        w->di++;
        return 0;
    }
    if (off != w->run_end) {
        if (flush_run(w) < 0)
            return evs__err(EVS_EIO, "write");
        w->run_start = off;
    }
    w->run_end = off + evs__pad8(len);
    return 0;
}

static uint64_t file_bytes(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 ? (uint64_t)st.st_blocks * 512u : 0;
}

/* Steps 1-6 of the file comment for segment no (mapped at m), whose
 * removals are c->drops. */
static EVS_MUST_USE int rewrite(scav *c, uint32_t no, const uint8_t *m, prog *p)
{
    evs__emb *s = c->s;
    char path[4096 + 32], tmp[4096 + 40], logdir[4096];
    int rc = 0, fd = -1;
    snprintf(logdir, sizeof(logdir), "%s/log", s->dir);
    snprintf(path, sizeof(path), "%s/%016" PRIx32 ".evslog", logdir, no);
    snprintf(tmp, sizeof(tmp), "%s.scav", path);

    /* 1. the new file, sparse */
    struct stat st;
    if (stat(path, &st) != 0)
        return io_err(errno, "stat", path);
    uint64_t before = (uint64_t)st.st_blocks * 512u;
    fd = open(tmp, O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, st.st_mode & 0777);
    if (fd < 0)
        return io_err(errno, "create", tmp);
    uint8_t h[EVS_SEG_HEADER_SIZE];
    memcpy(h, m, sizeof(h));
    evs__put_le32(h + EVS_SEG_OFF_FLAGS, evs__get_le32(h + EVS_SEG_OFF_FLAGS) |
                                             EVS_SEG_FLAG_SCAVENGED);
    /* a new header for new content: an incremental backup reuses its copy
     * of a sealed segment only when the headers are equal (backup.c) */
    evs__put_le32(h + EVS_SEG_OFF_SCAV_GEN, evs__get_le32(h + EVS_SEG_OFF_SCAV_GEN) + 1);
    evs__put_le32(h + 60, evs__crc32c(h, 60));
    if (ftruncate(fd, (off_t)s->seg_size) != 0) {
        rc = io_err(errno, "size", tmp);
        goto fail;
    }
    ssize_t hn = pwrite(fd, h, sizeof(h), 0);
    if (hn != (ssize_t)sizeof(h)) {
        rc = io_err(hn < 0 ? errno : ENOSPC, "write", tmp);
        goto fail;
    }
    step();
    wr w = {m, c->drops, c->ndrops, 0, fd, EVS_SEG_HEADER_SIZE, EVS_SEG_HEADER_SIZE, 0};
    if ((rc = walk(s, no, m, keep, &w)) < 0 || (rc = flush_run(&w)) < 0) {
        if (w.err) {
            evs__clear_error();
            rc = io_err(w.err, "write", tmp);
        }
        goto fail;
    }
    if (fdatasync(fd) != 0) {
        rc = io_err(errno, "fdatasync", tmp);
        goto fail;
    }
    uint64_t after = file_bytes(fd);
    step();

    /* 2. pending */
    p->pending = no;
    if ((rc = prog_write(s->dir, p)) < 0)
        goto fail;
    step();

    /* 3-5 under scav_lock: a backup of this handle copies the index and
     * the log with no segment half-way between them */
    pthread_mutex_lock(&s->scav_lock);
    size_t batches = 0; /* committed */
    for (size_t i = 0; i < c->ndrops && rc == 0; i += c->txn_events) {
        size_t to = i + c->txn_events < c->ndrops ? i + c->txn_events : c->ndrops;
        rc = unindex_batch(s, no, m, c->drops, i, to);
        if (rc == 0) {
            batches++;
            step();
        }
    }
    if (rc < 0 && batches == 0) {
        /* the first transaction failed (a full disk for the index): nothing
         * changed, so nothing is pending either */
        pthread_mutex_unlock(&s->scav_lock);
        p->pending = 0;
        char keep_msg[1024];
        snprintf(keep_msg, sizeof(keep_msg), "%s", evs_last_error());
        if (prog_write(s->dir, p) < 0)
            p->pending = no;
        evs__set_error_text(keep_msg);
        goto fail;
    }
    if (rc == 0 && rename(tmp, path) != 0)
        rc = io_err(errno, "rename", tmp);
    if (rc == 0 && fsync(s->dir_fd_log) != 0)
        rc = io_err(errno, "fsync directory", logdir);
    if (rc < 0) {
        /* the index may have lost entries of records the log still has:
         * pending stays, so the next open rebuilds the index */
        pthread_mutex_unlock(&s->scav_lock);
        goto fail;
    }
    step();
    /* 5. this handle reads the new file from now on */
    map_new_file(s, no, fd);
    pthread_mutex_unlock(&s->scav_lock);
    close(fd);
    fd = -1;

    /* 6. done */
    p->done = no;
    p->pending = 0;
    if ((rc = prog_write(s->dir, p)) < 0)
        return rc;
    step();
    c->out->segments_rewritten++;
    c->out->events_removed += c->ndrops;
    c->out->bytes_before += before;
    c->out->bytes_after += after;
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    /* the old file stays; when pending was written, it stays too (the next
     * open rebuilds the index, and this handle scavenges no more) */
    unlink(tmp);
    return rc;
}

/* ---- the entry ---------------------------------------------------------------- */

int evs__emb_scavenge(evs_scavenge_result *out, evs_db *db, const evs__scavenge_plan *plan)
{
    evs__emb *s = (evs__emb *)db;
    evs_scavenge_result dummy;
    int rc = 0;
    if (!db || !plan)
        return evs__err(EVS_EINVAL, "scavenge: db and plan are required");
    if (s->readonly)
        return evs__err(EVS_EREADONLY, "scavenge: the store is open read-only; open it "
                        "for writing to scavenge");
    if (!out) {
        memset(&dummy, 0, sizeof(dummy));
        out = &dummy;
    }
    const char *dbg = getenv("EVS_DEBUG_SCAVENGE_KILL");
    dbg_kill_at = dbg ? atol(dbg) : -1;
    dbg_steps = 0;
    dbg = getenv("EVS_DEBUG_SCAVENGE_TXN");
    size_t txn_events = dbg && atol(dbg) > 0 ? (size_t)atol(dbg) : SCAV_TXN_EVENTS;

    pthread_mutex_lock(&s->scav_run);
    scav c = {0};
    c.txn_events = txn_events;
    c.s = s;
    c.plan = plan;
    c.out = out;
    prog p = {0, 0, 0};
    (void)prog_read(s->dir, &p);
    /* resume only the same plan: under another (new rules, a stream that
     * grew, time that passed), segments done before may hold events this
     * plan removes; start at segment 1 (a segment with nothing to remove
     * is only read) */
    uint64_t h = plan_hash(plan);
    if (p.plan != h)
        p.done = 0;
    p.plan = h;
    if (p.pending) {
        /* an open clears it: this process's own scavenge failed half-way */
        pthread_mutex_unlock(&s->scav_run);
        return evs__err(EVS_EIO, "scavenge: an earlier scavenge of this handle failed "
                        "while it changed log segment %u, so the index may disagree with "
                        "the log there: close and reopen the store (the open rebuilds the "
                        "index), then scavenge again", p.pending);
    }

    /* The sealed segments: all but the last, and only those after which a
     * committed record exists (so that the index's last position, where
     * it says the log ends, is never removed). */
    uint64_t total = 0;
    for (uint32_t no = 1;; no++) {
        uint32_t n = atomic_load(&s->nsegs);
        if (no >= n || s->segs[no].first_position > atomic_load(&s->head))
            break;
        total += s->seg_size;
    }
    uint64_t done = 0;
    for (uint32_t no = 1;; no++) {
        uint32_t n = atomic_load(&s->nsegs);
        if (no >= n || s->segs[no].first_position > atomic_load(&s->head))
            break;
        out->segments_examined++;
        if (no <= p.done) {
            out->segments_resumed++;
        } else {
            const uint8_t *m = evs__seg_map(s, no);
            if (!m) {
                rc = evs__err(EVS_ECORRUPT, "scavenge: log segment %u is not mapped", no);
                break;
            }
            c.m = m;
            c.ndrops = 0;
            c.ls = NULL;
            if ((rc = walk(s, no, m, collect, &c)) < 0)
                break;
            if (c.ndrops > 0 && (rc = rewrite(&c, no, m, &p)) < 0)
                break;
        }
        done += s->seg_size;
        if (done > total)
            total = done;
        if (plan->progress)
            plan->progress(plan->ctx, done, total);
    }
    if (rc == 0 || p.pending == 0) {
        /* complete; or failed with nothing pending (a full disk, damage):
         * the next scavenge starts at segment 1, not after segments done
         * (when pending is set, the next open rebuilds the index, and
         * resuming the same plan then is sound) */
        char msg[1024];
        snprintf(msg, sizeof(msg), "%s", evs_last_error());
        int rrc = prog_remove(s->dir);
        if (rc == 0)
            rc = rrc;
        else
            evs__set_error_text(msg);
    }
    pthread_mutex_unlock(&s->scav_run);
    free(c.drops);
    return rc;
}

/* ---- a read-only handle beside the writer ------------------------------------ */

const uint8_t *evs__scav_refresh(evs__emb *s, uint32_t no)
{
    const uint8_t *m = evs__seg_map(s, no);
    if (!m || !s->readonly)
        return m;
    char path[4096 + 32];
    uint8_t h[EVS_SEG_HEADER_SIZE];
    snprintf(path, sizeof(path), "%s/log/%016" PRIx32 ".evslog", s->dir, no);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return m;
    struct stat st;
    /* the file has another header than the map: rewritten (again) since */
    if (pread(fd, h, sizeof(h), 0) == (ssize_t)sizeof(h) && evs__seg_scavenged(h) &&
        memcmp(h, m, sizeof(h)) != 0 &&
        evs__get_le32(h + 60) == evs__crc32c(h, 60) && fstat(fd, &st) == 0 &&
        (uint64_t)st.st_size == s->seg_size) {
        map_new_file(s, no, fd);
        m = evs__seg_map(s, no);
    }
    close(fd);
    return m;
}
