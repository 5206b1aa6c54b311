/*
 * pg.h -- the PostgreSQL backend's private header (docs/POSTGRES.md).
 *
 *   pg_store.c    open/close, the connection pool, migrations, the schema
 *                 check, errors
 *   pg_append.c   appends: the parameters of evstore.append(), connection
 *                 loss, group commit
 *   pg_read.c     iterators (paged reads), tracking reads (LISTEN/NOTIFY),
 *                 tokens, snapshots, stats, verify
 */
#ifndef EVS_POSTGRES_PG_H
#define EVS_POSTGRES_PG_H

#include "core/backend.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdint.h>

/* The migrations shipped with the library, generated at build time from
 * src/postgres/migrations/NNNN_name.sql (in version order). */
typedef struct evs__pg_migration {
    int version;
    const char *name; /* "0001_init" */
    const char *sql;
} evs__pg_migration;
extern const evs__pg_migration evs__pg_migrations[];
extern const size_t evs__pg_nmigrations;

#define EVS_PG_POOL_MAX 8

/* A pooled connection with its prepared statements. */
typedef struct evs__pgconn {
    PGconn *c;
    int in_use;
} evs__pgconn;

/* The group-commit queue entry of one append (pg_append.c). */
typedef struct evs__pg_req evs__pg_req;

typedef struct evs__pg {
    evs_db base;
    char *uri;
    int readonly;

    /* the pool: up to EVS_PG_POOL_MAX connections, made on first need */
    pthread_mutex_t pool_lock;
    pthread_cond_t pool_cond;
    evs__pgconn pool[EVS_PG_POOL_MAX];
    int pool_made;

    /* tracking waits: one LISTEN connection on its own thread bumps
     * notify_seq for every commit notification */
    pthread_mutex_t nlock;
    pthread_cond_t ncond;    /* CLOCK_MONOTONIC */
    uint64_t notify_seq;     /* bumped per notification (and on reconnect) */
    uint64_t wake_seq;       /* bumped by wake_readers */
    int listener_started;
    int listener_stop;
    int listener_efd;        /* eventfd: ends the listener's poll */
    pthread_t listener;

    /* group commit (pg_append.c) */
    pthread_mutex_t qlock;
    evs__pg_req *qhead, *qtail;
    int busy;
    int closing;           /* set by close: new appends are EVS_ECLOSED */
    pthread_cond_t qidle;  /* broadcast when busy drops to 0 */
} evs__pg;

/* ---- pg_store.c ------------------------------------------------------------ */

int evs__postgres_open(evs_db **out, const char *uri, const evs_open_options *opts);

/* Take a pooled connection (made and prepared on first use) and give it
 * back; a connection whose session broke is dropped by the put. */
int evs__pg_get(evs__pg *s, evs__pgconn **out);
void evs__pg_put(evs__pg *s, evs__pgconn *pc);
/* A fresh connection to the store's database, session set up. */
int evs__pg_connect(evs__pg *s, PGconn **out);

/* The SQL text of the statement prepared on every pooled connection
 * under name (e.g. "evs_read_stream_fwd"), or NULL. */
const char *evs__pg_statement(const char *name);

/* Translate a failed result (or a NULL one) into an evs error with a
 * message starting with `what`; frees res. */
int evs__pg_fail(PGconn *c, PGresult *res, const char *what);
/* 1 if the connection is gone (the outcome of the last call is unknown) */
int evs__pg_conn_lost(PGconn *c);

/*
 * Compare the schema `evstore` with the one this code expects (tables,
 * columns, types, nullability, functions). Returns 0, or EVS_EBACKEND
 * with a message naming the first difference in err (and as the thread's
 * detail message).
 */
int evs__pg_check_schema(PGconn *c, char *err, size_t n);

/* ---- binary parameters and results -------------------------------------- */

/* A growable buffer for one binary parameter. */
typedef struct evs__pgbuf {
    char *p;
    size_t len, cap;
} evs__pgbuf;

int evs__pgbuf_reserve(evs__pgbuf *b, size_t more);
void evs__pgbuf_free(evs__pgbuf *b);
/* A one-dimensional array of n elements of type elem_oid: begin writes
 * the header, then one evs__pgarr_* call per element. */
int evs__pgarr_begin(evs__pgbuf *b, uint32_t elem_oid, size_t n);
int evs__pgarr_bytes(evs__pgbuf *b, const void *p, size_t len);
int evs__pgarr_null(evs__pgbuf *b);
int evs__pgarr_i64(evs__pgbuf *b, int64_t v);
int evs__pgarr_i32(evs__pgbuf *b, int32_t v);
int evs__pgarr_i16(evs__pgbuf *b, int16_t v);
int evs__pgarr_bool(evs__pgbuf *b, int v);

/* Type OIDs (pg_type.dat; stable across releases). */
#define EVS_OID_BOOL 16
#define EVS_OID_BYTEA 17
#define EVS_OID_INT8 20
#define EVS_OID_INT2 21
#define EVS_OID_INT4 23
#define EVS_OID_TEXT 25
#define EVS_OID_UUID 2950
#define EVS_OID_BOOL_ARR 1000
#define EVS_OID_BYTEA_ARR 1001
#define EVS_OID_INT2_ARR 1005
#define EVS_OID_INT4_ARR 1007
#define EVS_OID_TEXT_ARR 1009
#define EVS_OID_INT8_ARR 1016
#define EVS_OID_UUID_ARR 2951

int64_t evs__pg_i64(const char *p);
/* Parse a text-format bigint array ("{1,2,-1}") into out[0..n). Returns
 * the number of elements or -1. */
long evs__pg_parse_i64_array(const char *text, int64_t *out, size_t n);

/* ---- pg_read.c ------------------------------------------------------------- */

int evs__pg_read_stream(evs_iter **out, evs_db *db, const char *tenant, const char *stream,
                        int64_t from_version, evs_direction dir, uint64_t limit);
int evs__pg_read_all(evs_iter **out, evs_db *db, const char *tenant, uint64_t from_position,
                     uint64_t limit);
int evs__pg_read_query(evs_iter **out, evs_db *db, const char *tenant,
                       const evs_query *query, uint64_t bound, evs_direction dir,
                       uint64_t limit);
int evs__pg_read_streams(evs_iter **out, evs_db *db, const char *tenant,
                         const evs_stream_read *streams, size_t n);
int evs__pg_iter_next(const evs_event **ev, evs_iter *it);
int evs__pg_iter_marker(uint64_t *out, const evs_iter *it);
void evs__pg_iter_free(evs_iter *it);
int evs__pg_stream_version(int64_t *out, evs_db *db, const char *tenant, const char *stream);
int evs__pg_head(uint64_t *out, evs_db *db, const char *tenant);
int evs__pg_stats(evs_stats *out, evs_db *db);
int evs__pg_read_tracking(evs_iter **out, evs_db *db, const evs__tracking *t, uint64_t after,
                          uint64_t limit, int wait, uint64_t deadline_ns,
                          const _Atomic int *cancel);
void evs__pg_wake_readers(evs_db *db);
int evs__pg_event_position(uint64_t *out, evs_db *db, const evs_uuid *id);
int evs__pg_token_tail(uint64_t *out, evs_db *db, const char *tenant);
int evs__pg_token_at(uint64_t *out, evs_db *db, int64_t time_us);
int evs__pg_snapshot_save(evs_db *db, const char *tenant, const char *stream, int64_t version,
                          const char *schema, const void *data, size_t len);
int evs__pg_snapshot_load(evs_snapshot **out, evs_db *db, const char *tenant,
                          const char *stream, int64_t max_version);
int evs__pg_verify(uint64_t *checked, evs_db *db, evs_verify_fn cb, void *ctx);
void evs__pg_listener_stop(evs__pg *s);

/* ---- pg_append.c ------------------------------------------------------------ */

int evs__pg_append(evs_db *db, evs__append_req *req);

/* ---- pg_explain.c ----------------------------------------------------------- */

/*
 * EXPLAIN (ANALYZE, BUFFERS) of the backend's hot queries on the data the
 * store holds (`evs bench --db postgresql://...`, docs/BENCH.md): each
 * statement as the backend sends it, with parameters taken from a sample
 * event of the store (so the tenant, stream, type and tag exist), and a
 * verdict on whether the index meant for it was used.
 */
typedef struct evs__pg_explained {
    const char *name;   /* e.g. "stream read" */
    const char *params; /* the parameters, for the reader */
    const char *index;  /* the intended index ("a or b": either), or "-"
                           for a statement whose plan is a function call */
    const char *plan;   /* the EXPLAIN text (or the error, when it failed) */
    int used;           /* 1 used; 0 not used (or a Seq Scan on events);
                           -1 not applicable (index "-") or failed */
    int failed;         /* 1: the EXPLAIN failed; plan holds the message */
    double exec_ms;     /* "Execution Time" of the plan; -1 unknown */
} evs__pg_explained;
typedef int (*evs__pg_explain_fn)(void *ctx, const evs__pg_explained *e);

/* An extra DCB query to explain besides the sampled ones (e.g. the one a
 * bench scenario runs): its tenant, query and a name for it. */
typedef struct evs__pg_explain_query {
    const char *name;
    const char *tenant;
    const evs_query *query;
} evs__pg_explain_query;

/*
 * Calls cb for each hot query, in a fixed order. tenant: the tenant to
 * sample (NULL: any; the sample is the first event with a stream and tags
 * from the middle of the tenant's log on). The append is explained inside
 * a transaction that is rolled back: nothing is written. Returns 0 (a
 * single failed EXPLAIN is reported through cb, failed = 1), a non-zero
 * value cb returned, EVS_EINVAL when db is not a PostgreSQL store or holds
 * no event to sample, or an error of the connection.
 */
/* ANALYZE the store's tables (after a bulk load, as autovacuum would
 * later): 0, EVS_EINVAL when db is not a PostgreSQL store, or the error. */
int evs__pg_analyze(evs_db *db);

int evs__pg_explain(evs_db *db, const char *tenant, const evs__pg_explain_query *extra,
                    size_t nextra, evs__pg_explain_fn cb, void *ctx);

#endif
