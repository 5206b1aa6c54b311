/*
 * explain.h -- `evs bench --db postgresql://...`'s own look into the
 * PostgreSQL store it measures (explain.c): ANALYZE of the store's tables
 * after a bulk load, and EXPLAIN (ANALYZE, BUFFERS) of the backend's hot
 * queries on the loaded data, for the report's EXPLAIN section
 * (docs/BENCH.md).
 *
 * It works over a libpq connection of its own, opened on the URI the
 * bench was given, with the session settings the backend's connections
 * use; it never touches the evs_db handle. Built only with the PostgreSQL
 * backend (EVS_BENCH_WITH_PG, tools/bench/CMakeLists.txt); without it the
 * calls below fail with "built without PostgreSQL".
 *
 * Functions return 0, or -1 with a message in err.
 */
#ifndef EVS_BENCH_EXPLAIN_H
#define EVS_BENCH_EXPLAIN_H

#include <evstore.h>

#include <stddef.h>
#include <stdio.h>

/* The connection. */
typedef struct explain_conn explain_conn;

/* One hot query's plan, as explain_hot_queries hands it to its callback
 * (every pointer valid during the call only). */
typedef struct explained {
    const char *name;   /* e.g. "stream read" */
    const char *params; /* the parameters, for the reader */
    const char *index;  /* the intended index ("a or b": either), or "-"
                           for a statement whose plan is a function call */
    const char *plan;   /* the EXPLAIN text (or the error, when it failed) */
    int used;           /* 1 used; 0 not used (or a Seq Scan on events);
                           -1 not applicable (index "-") or failed */
    int failed;         /* 1: the EXPLAIN failed; plan holds the message */
    double exec_ms;     /* "Execution Time" of the plan; -1 unknown */
} explained;
typedef int (*explain_fn)(void *ctx, const explained *e);

/* An extra DCB query to explain besides the sampled ones (e.g. the one a
 * bench scenario runs): its tenant, query and a name for it. */
typedef struct explain_extra {
    const char *name;
    const char *tenant;
    const evs_query *query;
} explain_extra;

#if EVS_BENCH_WITH_PG

/* Connects to uri (a libpq URI) and sets the session up as the backend's
 * connections are (read committed, synchronous commit, no JIT, notices
 * dropped). */
int explain_open(explain_conn **out, const char *uri, char *err, size_t errsize);
/* NULL-safe. */
void explain_close(explain_conn *x);

/* ANALYZE the store's tables (after a bulk load, as autovacuum would
 * later). */
int explain_analyze(explain_conn *x, char *err, size_t errsize);

/*
 * EXPLAIN (ANALYZE, BUFFERS) of each hot query, in a fixed order, each the
 * statement the backend sends (the SQL text of its prepared statements,
 * the DCB SELECT that evstore.read_query runs and the condition
 * evstore.append checks, built by the server's own evstore.query_pred, and
 * evstore.append itself), with parameters bound and taken from the data:
 * a sample event from the middle of tenant's log (NULL: of the whole log)
 * with a stream and tags, so that every lookup hits rows that exist. Then
 * extra[0..nextra), each as a DCB query of its first item. cb gets each
 * plan with a verdict on whether the intended index was used. The appends
 * run inside a transaction that is rolled back: nothing is written.
 * Returns 0 (a single failed EXPLAIN is reported through cb, failed = 1),
 * a non-zero value cb returned, or -1 with a message in err (no event to
 * sample, a lost connection, out of memory).
 */
int explain_hot_queries(explain_conn *x, const char *tenant, const explain_extra *extra,
                        size_t nextra, explain_fn cb, void *ctx, char *err, size_t errsize);

#else /* !EVS_BENCH_WITH_PG */

static inline int explain_open(explain_conn **out, const char *uri, char *err,
                               size_t errsize)
{
    *out = NULL;
    snprintf(err, errsize, "evstore was built without PostgreSQL");
    return -1;
}
static inline void explain_close(explain_conn *x) { (void)x; }
static inline int explain_analyze(explain_conn *x, char *err, size_t errsize)
{
    snprintf(err, errsize, "evstore was built without PostgreSQL");
    return -1;
}
static inline int explain_hot_queries(explain_conn *x, const char *tenant,
                                      const explain_extra *extra, size_t nextra,
                                      explain_fn cb, void *ctx, char *err, size_t errsize)
{
    snprintf(err, errsize, "evstore was built without PostgreSQL");
    return -1;
}

#endif

#endif
