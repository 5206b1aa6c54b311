/*
 * pg.h -- the PostgreSQL backend's private header (docs/POSTGRES.md).
 *
 * One file per job; each calls only the files listed above it:
 *
 *   pg_wire.c     statement parameters (one builder: text, integers,
 *                 binary arrays), the prepared statements and running
 *                 them, results, PostgreSQL's errors as evs errors
 *   pg_pool.c     connections: session setup, the pool
 *   pg_schema.c   the migrations and the schema check
 *   pg_append.c   appends: evstore.append()'s parameters, group commit,
 *                 lost connections
 *   pg_read.c     iterators (paged reads), commit waits (LISTEN/NOTIFY, or
 *                 polling a hot standby), reads from a replica, tokens,
 *                 snapshots
 *   pg_explore.c  one event by id, the streams and tenants of a store
 *   pg_store.c    the backend's table of functions, the handle, open and
 *                 close, stats, verify
 *
 * The declarations below are grouped by the file that defines them (the
 * handle's type with pg_store.c, before the files that only use it).
 */
#ifndef EVS_POSTGRES_PG_H
#define EVS_POSTGRES_PG_H

#include "core/backend.h"
#include "util/util.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

/* A store's handle (pg_store.c). */
typedef struct evs__pg evs__pg;

/* ---- pg_wire.c: parameters, statements, results, errors -------------------- */

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

/* The most parameters a statement takes: evstore.append()'s 23. */
#define EVS_PG_MAXPARAMS 23

/* A growable buffer: the value of one array parameter. */
typedef struct evs__pgbuf {
    char *p;
    size_t len, cap;
} evs__pgbuf;

/*
 * The parameters of one statement, $1, $2, ... in the order they are
 * added, as the three arrays libpq takes. Text and bytes are borrowed:
 * they must stay unchanged until the statement has run. Integers are
 * stored in the builder; arrays are built in its buffers, which a reset
 * keeps for the next statement. Start from `{.n = 0}`. Memory is held
 * only once an array was added: evs__pgp_free releases it.
 */
typedef struct evs__pgparams {
    int n;
    const char *vals[EVS_PG_MAXPARAMS];
    int lens[EVS_PG_MAXPARAMS];
    int fmts[EVS_PG_MAXPARAMS];          /* 1 binary, 0 text */
    uint8_t word[EVS_PG_MAXPARAMS][8];   /* integers, big-endian */
    evs__pgbuf arr[EVS_PG_MAXPARAMS];    /* arrays */
} evs__pgparams;

/* Start again at $1, keeping the array buffers. */
void evs__pgp_reset(evs__pgparams *p);
/* Release the array buffers; p is empty and reusable. */
void evs__pgp_free(evs__pgparams *p);
/* A text value (binary format: its bytes), borrowed. */
void evs__pgp_text(evs__pgparams *p, const char *s);
/* A binary value of len bytes (bytea, uuid, text of known length),
 * borrowed. */
void evs__pgp_bytes(evs__pgparams *p, const void *v, size_t len);
/* A value in text format, parsed by the server as the parameter's type
 * ("42" for `$1::int`), borrowed. */
void evs__pgp_literal(evs__pgparams *p, const char *s);
/* A binary int8 value. */
void evs__pgp_i64(evs__pgparams *p, int64_t v);
/* A binary int4 value. */
void evs__pgp_i32(evs__pgparams *p, int32_t v);
/* A binary bool value. */
void evs__pgp_bool(evs__pgparams *p, int v);
/* Parameter i of `from` again, borrowed: valid while `from` is unchanged
 * (e.g. arrays built once and sent with every page of a read). */
void evs__pgp_borrow(evs__pgparams *p, const evs__pgparams *from, int i);
/* The bytes of every value: one protocol message carries them all. */
size_t evs__pgp_size(const evs__pgparams *p);

/*
 * A binary one-dimensional array of n elements of type elem_oid as the
 * next parameter: returns its index a (>= 0) for the n evs__pgarr_* calls
 * that add the elements, in order, or EVS_ENOMEM. Arrays may be filled
 * side by side (one element of each per event).
 */
EVS_MUST_USE int evs__pgarr_begin(evs__pgparams *p, uint32_t elem_oid, size_t n);
/* Make room for `more` bytes at the end of array a: 0 or EVS_ENOMEM.
 * (The element functions below call it when the buffer is full.) */
EVS_MUST_USE int evs__pgarr_grow(evs__pgparams *p, int a, size_t more);

/*
 * An element of array a: its 4-byte length (or -1, NULL) and len bytes.
 * Inline, as are the typed ones below: an append adds one element per
 * event to each of thirteen arrays, and with room in the buffer an
 * element is two stores and a copy, not a call.
 */
EVS_MUST_USE static inline int evs__pgarr_elem(evs__pgparams *p, int a, uint32_t head,
                                               const void *v, size_t len)
{
    evs__pgbuf *b = &p->arr[a];
    int rc;
    if (b->cap - b->len < 4 + len && (rc = evs__pgarr_grow(p, a, 4 + len)) < 0)
        return rc;
    evs__put_be32((uint8_t *)b->p + b->len, head);
    if (len)
        memcpy(b->p + b->len + 4, v, len);
    b->len += 4 + len;
    p->vals[a] = b->p;
    p->lens[a] = (int)b->len;
    return 0;
}

/* An element of len bytes (bytea, uuid, text of known length) in array a:
 * 0 or EVS_ENOMEM, as every element function. */
EVS_MUST_USE static inline int evs__pgarr_bytes(evs__pgparams *p, int a, const void *v,
                                                size_t len)
{
    return evs__pgarr_elem(p, a, (uint32_t)len, v, len);
}

/* A text element. */
EVS_MUST_USE static inline int evs__pgarr_text(evs__pgparams *p, int a, const char *s)
{
    return evs__pgarr_bytes(p, a, s, strlen(s));
}

/* A NULL element. */
EVS_MUST_USE static inline int evs__pgarr_null(evs__pgparams *p, int a)
{
    return evs__pgarr_elem(p, a, UINT32_MAX, NULL, 0);
}

/* An int8 element. */
EVS_MUST_USE static inline int evs__pgarr_i64(evs__pgparams *p, int a, int64_t v)
{
    uint8_t x[8];
    evs__put_be64(x, (uint64_t)v);
    return evs__pgarr_bytes(p, a, x, 8);
}

/* An int4 element. */
EVS_MUST_USE static inline int evs__pgarr_i32(evs__pgparams *p, int a, int32_t v)
{
    uint8_t x[4];
    evs__put_be32(x, (uint32_t)v);
    return evs__pgarr_bytes(p, a, x, 4);
}

/* An int2 element. */
EVS_MUST_USE static inline int evs__pgarr_i16(evs__pgparams *p, int a, int16_t v)
{
    uint8_t x[2] = {(uint8_t)((uint16_t)v >> 8), (uint8_t)v};
    return evs__pgarr_bytes(p, a, x, 2);
}

/* A bool element. */
EVS_MUST_USE static inline int evs__pgarr_bool(evs__pgparams *p, int a, int v)
{
    uint8_t x = v ? 1 : 0;
    return evs__pgarr_bytes(p, a, &x, 1);
}

/*
 * DCB queries as evstore.read_query() and evstore.append() take them, in
 * four arrays: per item its number of types and its number of tags
 * (int4), then the items' types and the items' tags, flat (text).
 * evs__pgarr_query_begin adds the four arrays, sized for nitems items
 * with ntypes types and ntags tags in all, and returns the index of the
 * first (or EVS_ENOMEM); evs__pgarr_query adds the items of q to them.
 */
EVS_MUST_USE int evs__pgarr_query_begin(evs__pgparams *p, size_t nitems, size_t ntypes,
                                        size_t ntags);
EVS_MUST_USE int evs__pgarr_query(evs__pgparams *p, int a, const evs_query *q);

/*
 * DCB reads as prepared statements, one per query shape (pg_wire.c,
 * docs/POSTGRES.md "Reads"): $1 tenant, $2 lo and $3 hi (positions
 * strictly between), $4 limit, then one text parameter per type and tag,
 * item after item, types before tags ($stream: and $category: tags
 * without their prefix). The answer is a page as every read's (the head,
 * then the event's 13 columns). evs__pg_dcb_sql returns 0 with the SQL in
 * *sql (the caller's to free), its statement name, in *terms the number
 * of term parameters it takes (0 when an item matches every event: then
 * no term is sent) and in *prepared whether to run it as a named
 * prepared statement (every item has a plain tag: its generic plan is the
 * GIN lookup) or unnamed (planned with the values at every call, as the
 * function's EXECUTE is), 1 when the query has more terms than a
 * statement takes (use evstore.read_query), or
 * EVS_ENOMEM. evs__pg_dcb_types fills the n parameter types to prepare.
 */
#define EVS_PG_DCB_FIXED 4
#define EVS_PG_DCB_NAME 24
EVS_MUST_USE int evs__pg_dcb_sql(char **sql, char name[EVS_PG_DCB_NAME], size_t *terms,
                                 int *prepared, const evs_query *q, int backward);
void evs__pg_dcb_types(Oid *types, int n);

/* A binary int8 result value. */
int64_t evs__pg_i64(const char *p);
/* Parse a text-format bigint array ("{1,2,-1}") into out[0..n). Returns
 * the number of elements or -1. */
long evs__pg_parse_i64_array(const char *text, int64_t *out, size_t n);

/* Prepare every statement of the backend on a new connection. */
EVS_MUST_USE int evs__pg_prepare_all(PGconn *c);
/* The SQL text of the statement prepared on every pooled connection
 * under name (e.g. "evs_read_stream_fwd"), or NULL. */
const char *evs__pg_statement(const char *name);

/* Run the prepared statement stmt with p (NULL: none), results binary
 * when binary: libpq's answer, NULL when it could not even send it. */
EVS_MUST_USE PGresult *evs__pg_exec_prepared(PGconn *c, const char *stmt,
                                             const evs__pgparams *p, int binary);
/* The same, and check the answer: 0 with the rows in *res (the caller's
 * to PQclear; dropped when res is NULL), or the error (evs__pg_fail). */
EVS_MUST_USE int evs__pg_query(PGconn *c, const char *stmt, const evs__pgparams *p,
                               int binary, PGresult **res, const char *what);
/* As evs__pg_query for sql without parameters, one or more statements
 * (simple protocol: *res is the last one's answer). */
EVS_MUST_USE int evs__pg_exec(PGconn *c, const char *sql, PGresult **res, const char *what);
/* As evs__pg_query for a statement that is not prepared (one statement;
 * the server infers the parameters' types), results in text format. */
EVS_MUST_USE int evs__pg_query_sql(PGconn *c, const char *sql, const evs__pgparams *p,
                                   PGresult **res, const char *what);
/* Queue stmt with p on a connection in pipeline mode: 1 queued, 0 not
 * (PQerrorMessage says why). */
EVS_MUST_USE int evs__pg_send_prepared(PGconn *c, const char *stmt, const evs__pgparams *p);

/* Translate a failed result (or a NULL one) into an evs error with a
 * message starting with `what`; frees res. SQLSTATEs the caller can act
 * on keep their meaning (disk full EVS_ENOSPC, out of memory EVS_ENOMEM,
 * too large EVS_ETOOBIG, read-only EVS_EREADONLY); the rest, and a lost
 * connection, are EVS_EBACKEND with PostgreSQL's first message line. */
EVS_MUST_USE int evs__pg_fail(PGconn *c, PGresult *res, const char *what);
/* 1 if the connection is gone (the outcome of the last call is unknown) */
int evs__pg_conn_lost(PGconn *c);
/* The first line of a libpq message into dst[n], trailing blanks cut. */
void evs__pg_first_line(char *dst, size_t n, const char *src);

/* ---- pg_pool.c: connections ------------------------------------------------ */

/* Connections per handle, at most. */
#define EVS_PG_POOL_MAX 8

/* A pooled connection with its prepared statements. */
/* A server process: its pid and its backend_start (pg_stat_activity, as
 * text; "" when unknown). A pid alone is not an identity: a restarted
 * server reuses pids. */
typedef struct evs__pgbackend {
    int pid;
    char started[48];
} evs__pgbackend;

typedef struct evs__pgconn {
    PGconn *c;
    int in_use;
    evs__pgbackend backend; /* the connection's server process */
} evs__pgconn;

/* Fill b with c's server process (pid; backend_start: one query, "" when
 * it fails). */
void evs__pg_backend_of(PGconn *c, evs__pgbackend *b);

/* A fresh connection to the store's database, session set up (no
 * statements prepared). */
EVS_MUST_USE int evs__pg_connect(evs__pg *s, PGconn **out);
/* The pool's lock and condition, at open. */
void evs__pg_pool_init(evs__pg *s);
/* At close: every pooled connection closed, the lock and condition gone. */
void evs__pg_pool_close(evs__pg *s);
/* The open's connection (statements prepared) as the empty pool's first. */
void evs__pg_pool_first(evs__pg *s, PGconn *c);
/* Take a pooled connection (made and prepared on first use; waits while
 * all EVS_PG_POOL_MAX are taken). */
EVS_MUST_USE int evs__pg_get(evs__pg *s, evs__pgconn **out);
/* Give it back; a connection whose session broke, or that is inside a
 * transaction, is dropped. */
void evs__pg_put(evs__pg *s, evs__pgconn *pc);

/* ---- pg_schema.c: migrations and the schema check -------------------------- */

/* The migrations shipped with the library, generated at build time from
 * src/postgres/migrations/NNNN_name.sql (in version order). */
typedef struct evs__pg_migration {
    int version;
    const char *name; /* "0001_init" */
    const char *sql;
} evs__pg_migration;
extern const evs__pg_migration evs__pg_migrations[];
extern const size_t evs__pg_nmigrations;

/*
 * At open, on the open's connection: read-write, apply the missing
 * migrations (creating the schema only when create); read-only, refuse a
 * schema that is missing or not the current one; then check the schema.
 * 0, EVS_EINVAL (no store and not create), EVS_EBACKEND (not an evstore
 * schema, a newer or edited one, drift) or the error of the connection.
 */
EVS_MUST_USE int evs__pg_schema_open(PGconn *c, int readonly, int create);
/*
 * Compare the schema `evstore` with the one this code expects (tables,
 * columns, types, nullability, indexes, functions). Returns 0, or
 * EVS_EBACKEND with a message naming the first difference in err (and as
 * the thread's detail message).
 */
EVS_MUST_USE int evs__pg_check_schema(PGconn *c, char *err, size_t n);

/* ---- pg_store.c: the handle, open and close -------------------------------- */

/* The group-commit queue entry of one append (pg_append.c). */
typedef struct evs__pg_req evs__pg_req;

/*
 * A store's handle, made by evs__postgres_open (declared in core/backend.h)
 * and freed by close; its parts belong to the files named beside them.
 */
struct evs__pg {
    evs_db base;
    char *uri;
    int readonly;

    /* the pool (pg_pool.c): up to EVS_PG_POOL_MAX connections, made on
     * first need */
    pthread_mutex_t pool_lock;
    pthread_cond_t pool_cond;
    evs__pgconn pool[EVS_PG_POOL_MAX];
    int pool_made;

    /* commit waits (pg_read.c): one LISTEN connection on its own thread bumps
     * notify_seq for every commit notification */
    pthread_mutex_t nlock;
    pthread_cond_t ncond;    /* CLOCK_MONOTONIC */
    uint64_t notify_seq;     /* bumped per notification (and on reconnect)
                                and by wake_readers */
    int listener_started;
    int listener_stop;
    int listener_efd;        /* eventfd: ends the listener's poll */
    pthread_t listener;

    /* reads from a hot standby (pg_read.c, docs/POSTGRES.md "Reads from a
     * replica"). The listener thread is then a poller of the reader's
     * head, as a standby delivers no NOTIFY. */
    evs__pg *replica;        /* read_replica_uri's own read-only handle (its
                                pool only); NULL: reads go to this one */
    int poll_commits;        /* commit waits poll evs__pg_reader's head */
    int waiters;             /* in wait_commit (nlock); the poller idles at 0 */
    pthread_cond_t pcond;    /* CLOCK_MONOTONIC: wakes the poller (a waiter
                                came, or stop) */
    _Atomic uint64_t written;      /* the last position this handle wrote,
                                      or read on the primary: the replica
                                      serves it once it shows as much */
    _Atomic uint64_t replica_seen; /* the highest head read on the replica */

    /* group commit (pg_append.c) */
    pthread_mutex_t qlock;
    evs__pg_req *qhead, *qtail;
    int busy;
    int closing;           /* set by close: new appends are EVS_ECLOSED */
    pthread_cond_t qidle;  /* broadcast when busy drops to 0 */
};

/* The backend table's stats: counts from the head row and the tables,
 * sizes from pg_table_size and pg_indexes_size. */
EVS_MUST_USE int evs__pg_stats(evs_stats *out, evs_db *db);
/* verify: the tables' invariants, in one REPEATABLE READ snapshot, each
 * broken one reported to the sink (backend.h). */
EVS_MUST_USE int evs__pg_verify(uint64_t *checked, evs_db *db, evs__verify_sink *sink);
/* evs_scavenge (pg_scavenge.c): the backend entry, core/backend.h */
EVS_MUST_USE int evs__pg_scavenge(evs_scavenge_result *out, evs_db *db,
                                  const evs__scavenge_plan *plan);
/* crypto-shredding's key store (pg_keys.c, evstore.subject_keys): the
 * backend entries subject_key and subject_forget, core/backend.h */
EVS_MUST_USE int evs__pg_subject_key(uint8_t key[32], evs_db *db, const char *tenant,
                                     const char *subject, const uint8_t *new_key);
EVS_MUST_USE int evs__pg_subject_forget(evs_db *db, const char *tenant, const char *subject);

/* ---- pg_read.c: reads ------------------------------------------------------ */

/* The backend table's read_stream (backend.h documents every entry). */
EVS_MUST_USE int evs__pg_read_stream(evs_iter **out, evs_db *db, const char *tenant,
                                     const char *stream, int64_t from_version,
                                     evs_direction dir, uint64_t limit);
/* read_all (tenant NULL: every tenant); flags EVS__READ_*. */
EVS_MUST_USE int evs__pg_read_all(evs_iter **out, evs_db *db, const char *tenant,
                                  uint64_t from_position, uint64_t limit, unsigned flags);
/* read_query: evstore.read_query(); flags EVS__READ_*. */
EVS_MUST_USE int evs__pg_read_query(evs_iter **out, evs_db *db, const char *tenant,
                                    const evs_query *query, uint64_t bound,
                                    evs_direction dir, uint64_t limit, unsigned flags);
/* read_streams: every stream in one statement. */
EVS_MUST_USE int evs__pg_read_streams(evs_iter **out, evs_db *db, const char *tenant,
                                      const evs_stream_read *streams, size_t n);
/* The iterator functions of every read (pg_read.c). */
extern const evs__iter_ops evs__pg_iter_ops;
/* Its next: the next event of the page, fetching the next page at the
 * end of one. */
EVS_MUST_USE int evs__pg_iter_next(const evs_event **ev, evs_iter *it);
/* Its marker. */
EVS_MUST_USE int evs__pg_iter_marker(uint64_t *out, const evs_iter *it);
/* Its free: the pages kept and the iterator. */
void evs__pg_iter_free(evs_iter *it);
/* stream_version: EVS_NO_STREAM for a stream without events. */
EVS_MUST_USE int evs__pg_stream_version(int64_t *out, evs_db *db, const char *tenant,
                                        const char *stream);
/* head_position: of tenant, or of the store when tenant is NULL. */
EVS_MUST_USE int evs__pg_head(uint64_t *out, evs_db *db, const char *tenant);
/* Commit notification (backend.h): LISTEN on a connection of its own. */
EVS_MUST_USE int evs__pg_commit_seq(uint64_t *out, evs_db *db);
EVS_MUST_USE int evs__pg_wait_commit(evs_db *db, uint64_t seq, uint64_t deadline_ns,
                                     const _Atomic int *cancel);
void evs__pg_wake_readers(evs_db *db);
/* The position of the event with this id, or EVS_ENOTFOUND. */
EVS_MUST_USE int evs__pg_event_position(uint64_t *out, evs_db *db, const evs_uuid *id);
/* token_tail: one probe of events_tenant. */
EVS_MUST_USE int evs__pg_token_tail(uint64_t *out, evs_db *db, const char *tenant);
/* token_at: one probe of evstore.times. */
EVS_MUST_USE int evs__pg_token_at(uint64_t *out, evs_db *db, int64_t time_us);
/* snapshot_save: evstore.snapshot_save(), which keeps the newest
 * snapshot_keep. */
EVS_MUST_USE int evs__pg_snapshot_save(evs_db *db, const char *tenant, const char *stream,
                                       int64_t version, const char *schema, const void *data,
                                       size_t len, int64_t saved_at);
EVS_MUST_USE int evs__pg_snapshot_list(evs_db *db, const char *tenant, evs_snapshot_fn fn,
                                       void *ctx);
/* snapshot_load: the newest at or below max_version. */
EVS_MUST_USE int evs__pg_snapshot_load(evs_snapshot **out, evs_db *db, const char *tenant,
                                       const char *stream, int64_t max_version);
/* At close: end the LISTEN thread (or the replica's poller), if it was
 * started. */
void evs__pg_listener_stop(evs__pg *s);
/* The handle a small read of s goes to: the replica, unless this handle
 * wrote a position the replica was not yet seen to have replayed
 * (read-your-writes), then s itself. */
evs__pg *evs__pg_reader(evs__pg *s);

/* ---- pg_explore.c: exploring ----------------------------------------------- */

/* The backend table's list_streams and list_tenants (backend.h): one
 * statement each. */
EVS_MUST_USE int evs__pg_list_streams(evs_db *db, const char *tenant, const char *prefix,
                                      const char *after_tenant, const char *after,
                                      uint64_t limit, int system, evs__list_sink *sink);
EVS_MUST_USE int evs__pg_list_tenants(evs_db *db, uint64_t cap, evs__list_sink *sink);

/* ---- pg_append.c: appends -------------------------------------------------- */

/* The append queue's lock and condition, at open. */
void evs__pg_append_init(evs__pg *s);
/* The backend's append (backend.h): one round trip, committed together
 * with the appends that arrive while another commits. */
EVS_MUST_USE int evs__pg_append(evs_db *db, evs__append_req *req);
/* At close: refuse new appends (EVS_ECLOSED), wait for those in flight,
 * destroy the queue's lock and condition. */
void evs__pg_append_close(evs__pg *s);

#endif
