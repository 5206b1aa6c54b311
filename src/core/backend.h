/*
 * backend.h -- the interface between the front end (src/core) and a
 * backend (src/embedded, src/postgres): version EVS__BACKEND_VERSION.
 *
 * The front end validates every argument, assembles one request per call
 * and owns every rule that does not depend on how events are stored (the
 * expected-version rule below, the conflict message, the tracking read's
 * consumer-group filter, marker floor and wait loop). A backend stores and
 * finds events, and never calls up into the front end: it includes this
 * header, core/error.h and its own files only. Modelled on SQLite's VFS
 * and libgit2's refdb backends: a table of functions behind a handle whose
 * first member is the front end's struct evs_db.
 *
 * Threads: every entry may be called from many threads at once on one
 * handle, except close (after every other call has returned). Errors:
 * each entry returns 0 (or what it documents) or a negative EVS_E* code
 * after setting this thread's detail message (evs__err). Strings are
 * NUL-terminated UTF-8; positions are global positions (1, 2, ...; 0 =
 * before the first); versions are stream versions (0, 1, ...;
 * EVS_NO_STREAM = -1 for a stream without events).
 */
#ifndef EVS_CORE_BACKEND_H
#define EVS_CORE_BACKEND_H

#include "core/error.h"
#include "evstore.h"
#include "util/util.h" /* EVS_MUST_USE */

#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Set by the build (CMake option EVS_WITH_POSTGRES); a build that does not
 * say has the PostgreSQL backend. */
#ifndef EVS_WITH_POSTGRES
#define EVS_WITH_POSTGRES 1
#endif

/* The interface's version: a backend sets evs__backend_ops.version to it,
 * and evs__backend_check refuses any other (an out-of-date backend is
 * found when it registers, not when a NULL entry is called). */
#define EVS__BACKEND_VERSION 3

/* ---- append requests ---------------------------------------------------- */

/*
 * One validated append (single- or multi-stream), as the core hands it to a
 * backend. Everything is borrowed from the caller for the duration of the
 * call. ids[] holds the id of every event in part order (generated ids
 * already filled in); id_given[i] says whether the caller supplied it.
 */
typedef struct evs__append_req {
    const char *tenant;
    size_t tenant_len;
    const evs_stream_append *parts;
    size_t nparts;
    size_t nevents;          /* total over all parts */
    const evs_uuid *ids;     /* nevents */
    const uint8_t *id_given; /* nevents */
    size_t *stream_lens;     /* nparts; 0 = a part of events with no stream
                                (its stream is "", expected EVS_ANY) */
    evs_append_result *results; /* nparts, never NULL here */
    const evs_append_condition *conds; /* nconds DCB conditions, validated */
    size_t nconds;
    uint64_t *conflicts;     /* nconds, never NULL when nconds > 0 */
    int retried;             /* out, 0 on entry: set by the backend when it
                                answered the append as a retry of a stored
                                one (nothing written; evs_metrics) */
    const uint8_t *tombstone; /* nparts or NULL: tombstone[p] set means part
                                p is one event of type EVS__TOMBSTONE_TYPE
                                that the backend stores with stream version
                                EVS__TOMBSTONE_VERSION (evs_stream_tombstone) */
} evs__append_req;

/* The tombstone (evs_stream_tombstone, KurrentDB's DeletedStream): the
 * stream version of its one event, and thereby the stream's version from
 * then on, which no expected version accepts (evs__expected_ok). */
#define EVS__TOMBSTONE_VERSION INT64_MAX
#define EVS__TOMBSTONE_TYPE "$streamDeleted"

/*
 * The expected-version rule (KurrentDB's): does a stream at version
 * `actual` (EVS_NO_STREAM when it has no events) satisfy `expected`
 * (EVS_ANY, EVS_NO_STREAM, EVS_STREAM_EXISTS or a version >= 0)? Every
 * backend applies it where it serialises appends (the embedded writer,
 * the PostgreSQL function evstore.append, which states it in SQL). No
 * expected version accepts a tombstoned stream (EVS__TOMBSTONE_VERSION).
 */
static inline int evs__expected_ok(int64_t expected, int64_t actual)
{
    if (actual == EVS__TOMBSTONE_VERSION)
        return 0; /* a tombstoned stream: the front end says EVS_EDELETED */
    switch (expected) {
    case EVS_ANY: return 1;
    case EVS_NO_STREAM: return actual == EVS_NO_STREAM;
    case EVS_STREAM_EXISTS: return actual >= 0;
    default: return actual == expected;
    }
}

/* ---- iterators ----------------------------------------------------------- */

/*
 * An iterator's functions. Every iterator (a backend's, or the front
 * end's tracking iterator that wraps one) starts with struct evs_iter,
 * whose ops the public evs_iter_next / evs_iter_marker / evs_iter_free
 * call. One thread at a time per iterator.
 *
 * next: 0 and *ev (borrowed: valid until the next call on the iterator or
 *   free, unless the read was opened with EVS__READ_RETAIN), EVS_ITEROVER
 *   at the end and on every later call, or an error (EVS_ECORRUPT naming
 *   the record, EVS_EBACKEND, EVS_ENOMEM).
 * marker: the read's consistency marker as evs_iter_marker documents it
 *   (evstore.h): the last event returned by a forward read stopped by its
 *   limit; the head when the read began once it is exhausted, or for a
 *   backward read; the lower bound before the first event. Always 0.
 * free: release everything; the iterator is gone.
 */
typedef struct evs__iter_ops {
    int (*next)(const evs_event **ev, evs_iter *it) EVS_MUST_USE;
    int (*marker)(uint64_t *out, const evs_iter *it) EVS_MUST_USE;
    void (*free)(evs_iter *it);
} evs__iter_ops;

struct evs_iter {
    const evs__iter_ops *ops;
    evs_db *db;
};

/* read_all / read_query flags */
enum {
    /* Every event returned stays valid (strings, data, metadata, tags)
     * until the iterator is freed, not just until the next call: the
     * subscription hands a whole batch to its callback. The memory is kept
     * per event read (a backend may keep whole pages), so the caller must
     * stop after a bounded number: a limit > 0, or, for the tracking
     * iterator's consumer-group reads (limit 0 here), its own count of
     * the member's events. */
    EVS__READ_RETAIN = 1u << 0,
    /* read_all with tenant NULL only: include the events of system streams
     * ('$' names: checkpoints), which $all otherwise skips: every event of
     * the store in position order (evs_read_log: export, backup tools). */
    EVS__READ_SYSTEM = 1u << 1,
};

/* ---- verify ---------------------------------------------------------------- */

/* Where a backend's verify reports its problems: the front end counts
 * them, passes the first EVS__VERIFY_REPORTED to the caller's callback
 * (evs_verify's cb, may be NULL) and turns a count > 0 into EVS_ECORRUPT. */
#define EVS__VERIFY_REPORTED 1000
typedef struct evs__verify_sink {
    evs_verify_fn cb;
    void *ctx;
    uint64_t problems;
    evs_progress_fn progress; /* evs_verify_ex's; may be NULL */
    uint64_t total;           /* the store's head when verify began */
} evs__verify_sink;

/* How far the check is: done of sink->total events (a backend calls it
 * every EVS__VERIFY_TICK records, or after each step that checks all). */
#define EVS__VERIFY_TICK 65536
static inline void evs__verify_tick(evs__verify_sink *v, uint64_t done)
{
    if (v->progress)
        v->progress(v->ctx, done < v->total ? done : v->total, v->total);
}

/* One problem, as a sentence naming the record or entry (printf format). */
static inline void evs__verify_problem(evs__verify_sink *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline void evs__verify_problem(evs__verify_sink *v, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    v->problems++;
    if (v->cb && v->problems <= EVS__VERIFY_REPORTED)
        v->cb(v->ctx, buf);
}

/* ---- listings ---------------------------------------------------------------- */

/* Where list_streams and list_tenants put what they find: the front end's
 * collector (explore.c) copies each entry into the caller's list. add:
 * tenant (tenant_len bytes), stream (stream_len bytes; NULL for a
 * tenant), n (a stream's last version, a tenant's event count); 0 or
 * EVS_ENOMEM (then stop and return it). */
typedef struct evs__list_sink {
    int (*add)(struct evs__list_sink *sink, const char *tenant, size_t tenant_len,
               const char *stream, size_t stream_len, int64_t n) EVS_MUST_USE;
    int more; /* set by list_streams: the limit cut the list */
} evs__list_sink;

/* ---- scavenge ------------------------------------------------------------------ */

/*
 * What a scavenge may remove, computed by the front end (lifecycle.c) from
 * the stream metadata and tombstones as they stand when it starts: one
 * entry per stream with eligible events, sorted by (tenant, stream) as
 * byte strings (evs__scavenge_find). Events of system streams and events
 * without a stream are never eligible, nor is a tombstone.
 */
typedef struct evs__scavenge_stream {
    const char *tenant;    /* "" for the default tenant */
    const char *stream;
    int drop_all;          /* tombstoned: every event but the tombstone */
    int64_t keep_from;     /* versions below are eligible (never above the
                              last version: the last event is kept) */
    int64_t expire_before; /* µs since the Unix epoch, 0 = none: events
                              recorded before are eligible, except the
                              stream's last */
    int64_t last_version;  /* the stream's last version when planned */
} evs__scavenge_stream;

typedef struct evs__scavenge_plan {
    const evs__scavenge_stream *streams;
    size_t nstreams;
    evs_progress_fn progress; /* may be NULL */
    void *ctx;
} evs__scavenge_plan;

/* The plan's entry of (tenant, stream) (lengths in bytes), or NULL. */
const evs__scavenge_stream *evs__scavenge_find(const evs__scavenge_plan *plan,
                                               const char *tenant, size_t tenant_len,
                                               const char *stream, size_t stream_len);

/* May a scavenge remove the event of version v, recorded at recorded_at
 * (µs), of the stream whose entry is s (NULL: none)? */
static inline int evs__scavenge_drop(const evs__scavenge_stream *s, int64_t v,
                                     int64_t recorded_at)
{
    if (!s || v == EVS__TOMBSTONE_VERSION)
        return 0;
    if (s->drop_all)
        return 1;
    return v < s->keep_from ||
           (s->expire_before > 0 && recorded_at < s->expire_before && v < s->last_version);
}

/* ---- the backend's functions ------------------------------------------------- */

/*
 * Every entry is required (evs__backend_check). The arguments are
 * validated by the front end: names within their limits, queries checked
 * (evs__check_query), tenant never NULL unless said, out never NULL.
 */
typedef struct evs__backend_ops {
    unsigned version; /* EVS__BACKEND_VERSION */
    const char *name; /* "embedded", "postgresql": for messages */
    /* 1 when commit_seq is a load of a counter (no I/O, no thread
     * started) that every commit changes before it is acknowledged: a
     * number unchanged since an earlier look means no commit came in
     * between, so what was read then still holds (lifecycle.c caches on
     * it). 0: the front end may not rely on it (PostgreSQL's follows
     * NOTIFYs, which arrive after the commit). */
    int commit_seq_exact;

    /*
     * Append atomically: every part and condition holds and every event is
     * stored, or nothing is. Fills req->results (one per part). Returns 0;
     * EVS_ECONFLICT after setting results[p].status = EVS_ECONFLICT and
     * results[p].stream_version = the stream's version for every part whose
     * expected version fails (evs__expected_ok), and conflicts[c] = the
     * position of the newest matching event for every failed condition (0
     * for the others); the front end writes the message. EVS_EDUPLICATE (an
     * event id already stored, with a message naming it; an exact retry of
     * a committed append instead returns 0 and its original results),
     * EVS_EREADONLY, EVS_ETOOBIG, EVS_ENOSPC, EVS_EIO, EVS_EBACKEND,
     * EVS_ENOMEM. Blocks until the events are durable.
     */
    int (*append)(evs_db *db, evs__append_req *req) EVS_MUST_USE;

    /* evs_read_stream: dir and from_version validated; a missing stream
     * yields nothing. */
    int (*read_stream)(evs_iter **out, evs_db *db, const char *tenant,
                       const char *stream, int64_t from_version,
                       evs_direction dir, uint64_t limit) EVS_MUST_USE;
    /* evs_read_all from from_position (>= 1) on; tenant NULL = every
     * tenant (then events of system streams, '$' names, are skipped).
     * flags: EVS__READ_*. */
    int (*read_all)(evs_iter **out, evs_db *db, const char *tenant,
                    uint64_t from_position, uint64_t limit, unsigned flags) EVS_MUST_USE;
    /* evs_read_query; flags: EVS__READ_*. */
    int (*read_query)(evs_iter **out, evs_db *db, const char *tenant,
                      const evs_query *query, uint64_t position_bound,
                      evs_direction dir, uint64_t limit, unsigned flags) EVS_MUST_USE;
    /* evs_read_streams: 1..EVS_MAX_READ_STREAMS distinct streams, each
     * from_version >= 0, read from one snapshot. */
    int (*read_streams)(evs_iter **out, evs_db *db, const char *tenant,
                        const evs_stream_read *streams, size_t nstreams) EVS_MUST_USE;
    /* evs_stream_version: *out = version or EVS_NO_STREAM. */
    int (*stream_version)(int64_t *out, evs_db *db, const char *tenant,
                          const char *stream) EVS_MUST_USE;
    /* evs_head_position: of tenant, or of the store when tenant is NULL. */
    int (*head_position)(uint64_t *out, evs_db *db, const char *tenant) EVS_MUST_USE;
    int (*stats)(evs_stats *out, evs_db *db) EVS_MUST_USE;
    /* evs_verify: check every record and index entry, each problem to
     * evs__verify_problem(sink, ...); *checked = records checked. 0 when
     * the check ran (whatever it found: the front end turns problems into
     * EVS_ECORRUPT), or an error that stopped it (EVS_EBACKEND, EVS_ENOMEM,
     * EVS_EIO). */
    int (*verify)(uint64_t *checked, evs_db *db, evs__verify_sink *sink) EVS_MUST_USE;
    /* evs_backup: dest non-empty, opts non-NULL and checked, out non-NULL
     * (zeroed). A backend that cannot back up returns EVS_EINVAL saying
     * what to use instead. */
    int (*backup)(evs_backup_result *out, evs_db *db, const char *dest,
                  const evs_backup_options *opts) EVS_MUST_USE;

    /*
     * Commit notification, the two primitives the front end's tracking
     * read waits with (tracking.c). commit_seq: *out = a number that
     * changes after every commit of any writer (in any process) and after
     * wake_readers; it also prepares waiting (the PostgreSQL backend starts
     * its LISTEN connection), so it may fail: EVS_EBACKEND, EVS_EIO when
     * this handle cannot wait. wait_commit: return once the number is no
     * longer seq, or deadline_ns (CLOCK_MONOTONIC ns; 0 = none) has passed,
     * or *cancel (may be NULL) is non-zero; spurious returns are allowed
     * (the caller looks again). 0 or an error. wake_readers: end every
     * wait_commit on this handle now (they return, and their callers
     * re-check their cancel flags).
     */
    int (*commit_seq)(uint64_t *out, evs_db *db) EVS_MUST_USE;
    int (*wait_commit)(evs_db *db, uint64_t seq, uint64_t deadline_ns,
                       const _Atomic int *cancel) EVS_MUST_USE;
    void (*wake_readers)(evs_db *db);

    /* Is an event with this id stored? 0 and its position, or
     * EVS_ENOTFOUND (no message needed). */
    int (*event_position)(uint64_t *out, evs_db *db, const evs_uuid *id) EVS_MUST_USE;
    /* evs_token_tail: the token before the tenant's first event (NULL:
     * of the store), 0 when all events are readable from the start. */
    int (*token_tail)(uint64_t *out, evs_db *db, const char *tenant) EVS_MUST_USE;
    /* evs_token_at: the token of the last event committed before time_us
     * (microseconds since the Unix epoch), 0 when none. */
    int (*token_at)(uint64_t *out, evs_db *db, int64_t time_us) EVS_MUST_USE;
    /* evs_snapshot_save / evs_snapshot_restore / evs_snapshot_load,
     * arguments validated. saved_at: µs since the Unix epoch to record,
     * 0 = now (evs_snapshot_restore keeps the exported time). */
    int (*snapshot_save)(evs_db *db, const char *tenant, const char *stream,
                         int64_t version, const char *schema, const void *data,
                         size_t len, int64_t saved_at) EVS_MUST_USE;
    int (*snapshot_load)(evs_snapshot **out, evs_db *db, const char *tenant,
                         const char *stream, int64_t max_version) EVS_MUST_USE;
    /* evs_snapshot_list: call fn once per stored snapshot of tenant (NULL:
     * of every tenant), in the order of (tenant, stream) as byte strings
     * (strcmp, not a collation), then version ascending; stop when fn
     * returns non-zero and return that value. The arguments fn gets are
     * valid during its call only. A backend may read in pages: a
     * snapshot saved or pruned during the walk may or may not be seen,
     * every other one is seen exactly once. 0, fn's value, EVS_ECORRUPT,
     * EVS_EBACKEND, EVS_ENOMEM. */
    int (*snapshot_list)(evs_db *db, const char *tenant, evs_snapshot_fn fn,
                         void *ctx) EVS_MUST_USE;

    /* Exploring (src/core/explore.c; evs_read_event needs no entry of its
     * own: event_position, then read_all of the log). evs_list_streams: to sink, in (tenant, stream) byte order from one
     * snapshot, the streams of tenant (NULL: of every tenant) whose name
     * starts with prefix ("" any) and sorts after `after` (NULL: from the
     * first; with tenant NULL, after (after_tenant, after)), system
     * streams only when system is set; at most limit (0: no limit), then
     * sink->more = 1 if one more would follow. */
    int (*list_streams)(evs_db *db, const char *tenant, const char *prefix,
                        const char *after_tenant, const char *after, uint64_t limit,
                        int system, evs__list_sink *sink) EVS_MUST_USE;
    /* evs_list_tenants: to sink, in name order as of one snapshot, every
     * tenant with its number of events outside system streams (stream
     * NULL), each count stopped at cap (0: no cap; 1: whether it has
     * events, one seek per tenant). */
    int (*list_tenants)(evs_db *db, uint64_t cap, evs__list_sink *sink) EVS_MUST_USE;

    /* evs_scavenge: physically remove the events plan makes eligible
     * (evs__scavenge_drop), never others, as evs_scavenge documents;
     * fill out (zeroed by the caller; streams and elapsed_us are the
     * front end's). */
    int (*scavenge)(evs_scavenge_result *out, evs_db *db,
                    const struct evs__scavenge_plan *plan) EVS_MUST_USE;

    /*
     * Crypto-shredding's key store (core/crypto.c, docs/ERASURE.md): one
     * 32-byte key per (tenant, subject), deletable for real (never in the
     * log). subject_key: the key into key; 0, EVS_ENOTFOUND (no key and
     * new_key NULL), EVS_EDELETED (forgotten), both without a message, or
     * an error. new_key (32 random bytes from the front end; never given
     * on a read-only handle): a subject without a key and not forgotten
     * gets it (durable before return; 0 and key = new_key, or the key
     * another caller made first). A handle may see another handle's
     * forget late; the front end's key cache expires after a second.
     * subject_forget: zero the key where it is stored and keep a
     * "forgotten" mark, durable before return: 0 (also when already
     * forgotten), EVS_ENOTFOUND (never had a key: nothing written, no
     * message needed), EVS_EREADONLY, EVS_EIO, EVS_ENOSPC, EVS_EBACKEND.
     */
    int (*subject_key)(uint8_t key[32], evs_db *db, const char *tenant,
                       const char *subject, const uint8_t *new_key) EVS_MUST_USE;
    int (*subject_forget)(evs_db *db, const char *tenant, const char *subject) EVS_MUST_USE;

    /* Close and free the handle (evs_close): a clean close makes what a
     * later open needs durable. 0 or the first error; the handle is gone
     * either way. */
    int (*close)(evs_db *db) EVS_MUST_USE;
} evs__backend_ops;

/* ---- metrics ------------------------------------------------------------------ */

/*
 * The counters behind evs_metrics_get, in every handle (zero from the
 * backend's calloc). The front end counts requests (appends, events,
 * conflicts: append.c); a backend counts its group commits and durability
 * waits with the two functions below, once per group, never per event.
 * Relaxed atomics: monitoring needs no ordering between counters.
 */
typedef struct evs__metrics {
    _Atomic uint64_t appends, events, conflicts, groups, syncs, sync_ns;
    _Atomic uint64_t group_size_hist[EVS_METRICS_BUCKETS];
    _Atomic uint64_t sync_hist[EVS_METRICS_BUCKETS];
} evs__metrics;

/* Every backend's handle starts with this. */
struct evs_db {
    const evs__backend_ops *ops;
    evs_open_options opts;
    evs__metrics metrics;
    /* The front end's number of this handle (lifecycle.c), given on first
     * use; 0 from the backend's calloc. */
    _Atomic uint64_t fe_id;
    /* The front end's cache of stream rules (lifecycle.c), made on first
     * use and freed by evs_close; NULL from the backend's calloc. */
    struct evs__lc *_Atomic lc;
    /* crypto.c's key cache, made on first use (NULL from the backend's
     * calloc) and freed by evs_close (evs__crypto_free). */
    struct evs__crypto *_Atomic crypto;
};

/* The histogram bucket of v: 0 for v <= 1, i for v in (2^(i-1), 2^i],
 * the last one for everything above. */
static inline unsigned evs__metrics_bucket(uint64_t v)
{
    if (v <= 1)
        return 0;
    unsigned b = 64u - (unsigned)__builtin_clzll(v - 1);
    return b < EVS_METRICS_BUCKETS ? b : EVS_METRICS_BUCKETS - 1;
}

/* A group commit that wrote events (embedded: its log write and
 * fdatasync; PostgreSQL: its transaction), of nreq append requests. */
static inline void evs__metrics_group(evs_db *db, uint64_t nreq)
{
    atomic_fetch_add_explicit(&db->metrics.groups, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&db->metrics.group_size_hist[evs__metrics_bucket(nreq)], 1,
                              memory_order_relaxed);
}

/* A durability wait of ns nanoseconds (CLOCK_MONOTONIC): embedded, one
 * fdatasync of the log; PostgreSQL, one append transaction's commit. */
static inline void evs__metrics_sync(evs_db *db, uint64_t ns)
{
    atomic_fetch_add_explicit(&db->metrics.syncs, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&db->metrics.sync_ns, ns, memory_order_relaxed);
    /* microseconds rounded up: (2^(i-1), 2^i] µs is bucket i */
    atomic_fetch_add_explicit(&db->metrics.sync_hist[evs__metrics_bucket((ns + 999) / 1000)],
                              1, memory_order_relaxed);
}

/* 0 when ops is complete and of this interface's version, else
 * EVS_EBACKEND naming the missing entry (api.c calls it before it hands a
 * backend's handle to the caller). */
EVS_MUST_USE int evs__backend_check(const evs__backend_ops *ops);

/* The backends: open a handle at path (a directory) or uri (a libpq
 * connection URI, postgresql://... or postgres://...), options validated.
 * Errors as evs_open. */
int evs__embedded_open(evs_db **out, const char *path, const evs_open_options *opts);
#if EVS_WITH_POSTGRES
int evs__postgres_open(evs_db **out, const char *uri, const evs_open_options *opts);
#endif

#endif
