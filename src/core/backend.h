/*
 * backend.h -- the interface between the front end (src/core) and a
 * backend (src/embedded, src/postgres).
 *
 * The public API in evstore.h validates its arguments here in the core and
 * then calls the backend through a table of functions (as libgit2's refdb
 * or SQLite's VFS), so every backend sees only well-formed requests.
 */
#ifndef EVS_CORE_BACKEND_H
#define EVS_CORE_BACKEND_H

#include "core/error.h"
#include "evstore.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

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
} evs__append_req;

/* A validated tracking read, as the core hands it to a backend: category
 * and types are folded into query. */
typedef struct evs__tracking {
    const char *tenant;     /* NULL: every tenant (then query is NULL) */
    const evs_query *query; /* NULL: every event */
    uint32_t member, size;  /* consumer group; size 0: none */
} evs__tracking;

/* ---- backends ---------------------------------------------------------- */

typedef struct evs__backend_ops {
    const char *name;
    int (*append)(evs_db *db, evs__append_req *req);
    int (*read_stream)(evs_iter **out, evs_db *db, const char *tenant,
                       const char *stream, int64_t from_version,
                       evs_direction dir, uint64_t limit);
    int (*read_all)(evs_iter **out, evs_db *db, const char *tenant,
                    uint64_t from_position, uint64_t limit);
    /* query validated; tenant never NULL */
    int (*read_query)(evs_iter **out, evs_db *db, const char *tenant,
                      const evs_query *query, uint64_t position_bound,
                      evs_direction dir, uint64_t limit);
    /* streams validated (names, from_version >= 0); tenant never NULL */
    int (*read_streams)(evs_iter **out, evs_db *db, const char *tenant,
                        const evs_stream_read *streams, size_t nstreams);
    int (*iter_next)(const evs_event **ev, evs_iter *it);
    int (*iter_marker)(uint64_t *out, const evs_iter *it);
    void (*iter_free)(evs_iter *it);
    int (*stream_version)(int64_t *out, evs_db *db, const char *tenant,
                          const char *stream);
    int (*head_position)(uint64_t *out, evs_db *db, const char *tenant);
    int (*stats)(evs_stats *out, evs_db *db);
    /* wait: 0 = never, else until deadline_ns (CLOCK_MONOTONIC; 0 = no
     * deadline) or *cancel (may be NULL) becomes non-zero. Unlike the
     * other iterators, when limit > 0 the strings, data, metadata and tags
     * of every event returned stay valid until iter_free (not just the
     * next iter_next): the subscription (tracking.c) hands a whole batch
     * to its callback. */
    int (*read_tracking)(evs_iter **out, evs_db *db, const evs__tracking *t,
                         uint64_t after, uint64_t limit, int wait, uint64_t deadline_ns,
                         const _Atomic int *cancel);
    /* end every wait in read_tracking early (they re-check *cancel) */
    void (*wake_readers)(evs_db *db);
    /* is an event with this id stored? 0 and its position, or EVS_ENOTFOUND */
    int (*event_position)(uint64_t *out, evs_db *db, const evs_uuid *id);
    int (*token_tail)(uint64_t *out, evs_db *db, const char *tenant);
    int (*token_at)(uint64_t *out, evs_db *db, int64_t time_us);
    int (*snapshot_save)(evs_db *db, const char *tenant, const char *stream,
                         int64_t version, const char *schema, const void *data,
                         size_t len);
    int (*snapshot_load)(evs_snapshot **out, evs_db *db, const char *tenant,
                         const char *stream, int64_t max_version);
    int (*verify)(uint64_t *checked, evs_db *db, evs_verify_fn cb, void *ctx);
    int (*close)(evs_db *db);
} evs__backend_ops;

/* Every backend's handle starts with this. */
struct evs_db {
    const evs__backend_ops *ops;
    evs_open_options opts;
};

/* Every backend's iterator starts with this. */
struct evs_iter {
    evs_db *db;
};

/* The embedded backend (src/embedded). */
int evs__embedded_open(evs_db **out, const char *path,
                       const evs_open_options *opts);
/* The PostgreSQL backend (src/postgres): uri is a libpq connection URI
 * (postgresql://... or postgres://...). */
int evs__postgres_open(evs_db **out, const char *uri,
                       const evs_open_options *opts);

#endif
