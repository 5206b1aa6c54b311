/*
 * pg_store.c -- the PostgreSQL backend's table of functions, open and
 * close, stats and verify.
 *
 * Open connects, refuses a server older than 12, brings the schema to
 * this library's version or refuses it (pg_schema.c), prepares the
 * statements on the open's connection and hands it to the pool as its
 * first. Close lets the appends in flight finish, then stops the commit
 * listener and closes every connection.
 */
#include "postgres/pg.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int pg_close(evs_db *db);

/* evs_backup: the server's own tools make consistent copies of a
 * database; the library does not duplicate them. */
static int pg_backup(evs_backup_result *out, evs_db *db, const char *dest,
                     const evs_backup_options *opts)
{
    (void)out, (void)db, (void)opts;
    return evs__err(EVS_EINVAL, "backup: %s: evs_backup copies embedded stores only; back "
                    "up a PostgreSQL store with the server's tools (pg_dump -n evstore "
                    "for the schema and its data, or pg_basebackup for the whole "
                    "cluster)", dest);
}

static const evs__backend_ops pg_ops = {
    .version = EVS__BACKEND_VERSION,
    .name = "postgresql",
    .append = evs__pg_append,
    .read_stream = evs__pg_read_stream,
    .read_all = evs__pg_read_all,
    .read_query = evs__pg_read_query,
    .read_streams = evs__pg_read_streams,
    .stream_version = evs__pg_stream_version,
    .head_position = evs__pg_head,
    .stats = evs__pg_stats,
    .commit_seq = evs__pg_commit_seq,
    .wait_commit = evs__pg_wait_commit,
    .wake_readers = evs__pg_wake_readers,
    .event_position = evs__pg_event_position,
    .token_tail = evs__pg_token_tail,
    .token_at = evs__pg_token_at,
    .snapshot_save = evs__pg_snapshot_save,
    .snapshot_load = evs__pg_snapshot_load,
    .snapshot_list = evs__pg_snapshot_list,
    .list_streams = evs__pg_list_streams,
    .list_tenants = evs__pg_list_tenants,
    .verify = evs__pg_verify,
    .backup = pg_backup,
    .close = pg_close,
};

/* ---- open / close ------------------------------------------------------------ */

int evs__postgres_open(evs_db **out, const char *uri, const evs_open_options *opts)
{
    int rc;
    PGconn *c = NULL;
    evs__pg *s = calloc(1, sizeof(*s));
    if (!s)
        return evs__err(EVS_ENOMEM, "out of memory opening the store");
    s->base.ops = &pg_ops;
    s->base.opts = *opts;
    s->readonly = (opts->flags & EVS_OPEN_READONLY) != 0;
    s->listener_efd = -1;
    evs__pg_pool_init(s);
    evs__pg_append_init(s);
    pthread_mutex_init(&s->nlock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->ncond, &ca);
    pthread_condattr_destroy(&ca);
    if (!(s->uri = strdup(uri))) {
        rc = evs__err(EVS_ENOMEM, "out of memory opening the store");
        goto fail;
    }
    if ((rc = evs__pg_connect(s, &c)) < 0)
        goto fail;
    if (PQserverVersion(c) < 120000) {
        rc = evs__err(EVS_EBACKEND, "PostgreSQL %d.%d is too old; evstore needs 12 or newer",
                      PQserverVersion(c) / 10000, PQserverVersion(c) % 10000);
        goto fail;
    }
    if ((rc = evs__pg_schema_open(c, s->readonly, (opts->flags & EVS_OPEN_CREATE) != 0)) < 0 ||
        (rc = evs__pg_prepare_all(c)) < 0)
        goto fail;
    evs__pg_pool_first(s, c);
    *out = &s->base;
    return 0;
fail:;
    char keep[1024];
    snprintf(keep, sizeof(keep), "%s", evs_last_error());
    if (c)
        PQfinish(c);
    pg_close(&s->base);
    evs__set_error_text(keep);
    return rc;
}

static int pg_close(evs_db *db)
{
    evs__pg *s = (evs__pg *)db;
    /* As the embedded store: appends in flight finish first (their
     * leader is using a pooled connection), later ones are refused. */
    evs__pg_append_close(s);
    evs__pg_listener_stop(s);
    evs__pg_pool_close(s);
    pthread_mutex_destroy(&s->nlock);
    pthread_cond_destroy(&s->ncond);
    free(s->uri);
    free(s);
    return 0;
}

/* ---- stats and verify -------------------------------------------------------------- */

int evs__pg_stats(evs_stats *out, evs_db *db)
{
    evs__pg *s = (evs__pg *)db;
    evs__pgconn *pc;
    int rc;
    if ((rc = evs__pg_get(s, &pc)) < 0)
        return rc;
    PGresult *r;
    rc = evs__pg_exec(pc->c,
        "SELECT (SELECT position FROM evstore.head), (SELECT count(*) FROM evstore.streams), "
        "(SELECT count(*) FROM evstore.tenants), pg_table_size('evstore.events'), "
        "pg_indexes_size('evstore.events')", &r, "stats");
    if (rc < 0) {
        evs__pg_put(s, pc);
        return rc;
    }
    out->events = out->head_position = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    out->streams = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
    out->tenants = strtoull(PQgetvalue(r, 0, 2), NULL, 10);
    out->log_bytes = strtoull(PQgetvalue(r, 0, 3), NULL, 10);
    out->index_bytes = strtoull(PQgetvalue(r, 0, 4), NULL, 10);
    out->segments = 0;
    PQclear(r);
    evs__pg_put(s, pc);
    return 0;
}

/*
 * What can be wrong in the tables (the database itself checks pages and
 * constraints): positions not gapless or not matching the head, stream
 * versions not contiguous from 0, the streams table disagreeing with the
 * events, the system flag disagreeing with the stream name. One
 * REPEATABLE READ snapshot: appends may continue.
 */
static const struct {
    const char *sql;
    const char *fmt; /* printf with the row's columns as strings */
    int ncols;
} checks[] = {
    {"SELECT prev, position FROM (SELECT position, lag(position, 1, 0::bigint) OVER "
     "(ORDER BY position) AS prev FROM evstore.events) x WHERE position <> prev + 1 LIMIT 1000",
     "positions after %s are missing up to position %s (positions must be gapless)", 2},
    {"SELECT x.tenant, x.stream, x.stream_version, x.position, x.want FROM (SELECT tenant, "
     "stream, stream_version, position, row_number() OVER (PARTITION BY tenant, stream ORDER "
     "BY position) - 1 AS want FROM evstore.events WHERE stream <> '') x "
     "WHERE x.stream_version <> x.want LIMIT 1000",
     "tenant \"%s\" stream %s: version %s at position %s should be %s", 5},
    {"SELECT coalesce(s.tenant, e.tenant), coalesce(s.stream, e.stream), "
     "coalesce(s.version::text, 'missing'), coalesce(e.v::text, 'none') FROM evstore.streams s "
     "FULL JOIN (SELECT tenant, stream, max(stream_version) AS v FROM evstore.events WHERE "
     "stream <> '' GROUP BY 1, 2) e ON s.tenant = e.tenant AND s.stream = e.stream "
     "WHERE s.version IS DISTINCT FROM e.v LIMIT 1000",
     "tenant \"%s\" stream %s: the streams table says version %s, its events end at %s", 4},
    {"SELECT position, stream FROM evstore.events WHERE system <> (left(stream, 1) = '$') "
     "LIMIT 1000",
     "position %s: the system flag disagrees with its stream name \"%s\"", 2},
};

int evs__pg_verify(uint64_t *checked, evs_db *db, evs__verify_sink *sink)
{
    evs__pg *s = (evs__pg *)db;
    evs__pgconn *pc;
    int rc;
    if (checked)
        *checked = 0;
    if ((rc = evs__pg_get(s, &pc)) < 0)
        return rc;
    PGresult *r;
    if ((rc = evs__pg_exec(pc->c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", NULL,
                           "verify")) < 0 ||
        (rc = evs__pg_exec(pc->c, "SELECT count(*), coalesce(max(position), 0), "
                                  "(SELECT position FROM evstore.head) FROM evstore.events",
                           &r, "verify")) < 0)
        goto out;
    uint64_t count = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    if (checked)
        *checked = count;
    if (strcmp(PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2)) != 0)
        evs__verify_problem(sink,
                            "the head says position %s but the last event is at position %s",
                            PQgetvalue(r, 0, 2), PQgetvalue(r, 0, 1));
    PQclear(r);
    for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
        if ((rc = evs__pg_exec(pc->c, checks[i].sql, &r, "verify")) < 0)
            goto out;
        for (int j = 0; j < PQntuples(r); j++) {
            const char *c[5] = {"", "", "", "", ""};
            for (int k = 0; k < checks[i].ncols && k < 5; k++)
                c[k] = PQgetvalue(r, j, k);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
            evs__verify_problem(sink, checks[i].fmt, c[0], c[1], c[2], c[3], c[4]);
#pragma GCC diagnostic pop
        }
        PQclear(r);
        evs__verify_tick(sink, sink->total * (i + 1) / (sizeof(checks) / sizeof(checks[0])));
    }
    rc = 0; /* the front end counts the problems */
out:
    PQclear(PQexec(pc->c, "ROLLBACK"));
    evs__pg_put(s, pc);
    return rc;
}
