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
#include <time.h>

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

/*
 * The append, noting the last position written when reads go to a
 * replica: a read of this handle that the replica has not caught up with
 * is then served by the primary (read-your-writes, pg_read.c).
 */
static int pg_append(evs_db *db, evs__append_req *req)
{
    evs__pg *s = (evs__pg *)db;
    int rc = evs__pg_append(db, req);
    if (rc != 0 || !s->replica)
        return rc;
    uint64_t last = 0;
    for (size_t p = 0; p < req->nparts; p++)
        if (req->results[p].status == 0 && req->results[p].last_position > last)
            last = req->results[p].last_position;
    uint64_t w = atomic_load(&s->written);
    while (last > w && !atomic_compare_exchange_weak(&s->written, &w, last)) {
    }
    return rc;
}

static const evs__backend_ops pg_ops = {
    .version = EVS__BACKEND_VERSION,
    .name = "postgresql",
    .append = pg_append,
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
    .scavenge = evs__pg_scavenge,
    .subject_key = evs__pg_subject_key,
    .subject_forget = evs__pg_subject_forget,
    .close = pg_close,
};

/* ---- open / close ------------------------------------------------------------ */

/* *yes = the server of c is a standby (pg_is_in_recovery()). */
static int in_recovery(PGconn *c, int *yes)
{
    PGresult *r;
    int rc = evs__pg_exec(c, "SELECT pg_is_in_recovery()", &r, "open");
    if (rc < 0)
        return rc;
    *yes = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    return 0;
}

/* One text value of sql on c; "" when the statement fails (the caller
 * then skips the check it was for). */
static void one_text(PGconn *c, const char *sql, char *out, size_t n)
{
    PGresult *r = PQexec(c, sql);
    out[0] = '\0';
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
        snprintf(out, n, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
}

/* How long the open waits for the replica to replay the primary's WAL as
 * of the open (the schema it may just have migrated, and everything
 * committed before). */
#define REPLICA_CATCHUP_MS 10000

/*
 * The read replica (evs_open_options.read_replica_uri): a handle of its
 * own, read-only, with its own pool, made here on the pool's first
 * connection. Refused: a server that is not a copy of the primary
 * (another system identifier: a physical standby shares its primary's),
 * one that does not replay up to the primary's current WAL position
 * within REPLICA_CATCHUP_MS, or whose schema is not this library's.
 */
static int replica_open(evs__pg *s, const char *uri)
{
    int rc;
    PGconn *c = NULL;
    evs__pg *rp = calloc(1, sizeof(*rp));
    if (!rp)
        return evs__err(EVS_ENOMEM, "out of memory opening the read replica");
    rp->base = s->base;
    rp->base.opts.read_replica_uri = NULL;
    rp->readonly = 1;
    rp->listener_efd = -1;
    evs__pg_pool_init(rp);
    s->replica = rp; /* closed with s */
    if (!(rp->uri = strdup(uri)))
        return evs__err(EVS_ENOMEM, "out of memory opening the read replica");
    if ((rc = evs__pg_connect(rp, &c)) < 0) {
        char msg[768];
        snprintf(msg, sizeof(msg), "%s", evs_last_error());
        return evs__err(rc, "read replica: %s", msg);
    }
    char sysid[2][32], lsn[64];
    one_text(s->pool[0].c, "SELECT system_identifier::text FROM pg_control_system()", sysid[0],
             sizeof(sysid[0]));
    one_text(c, "SELECT system_identifier::text FROM pg_control_system()", sysid[1],
             sizeof(sysid[1]));
    if (sysid[0][0] && sysid[1][0] && strcmp(sysid[0], sysid[1]) != 0) {
        rc = evs__err(EVS_EBACKEND, "read replica: the server is not a copy of the primary "
                      "(system identifier %s, the primary's %s); give the URI of a hot "
                      "standby made from it (pg_basebackup)", sysid[1], sysid[0]);
        goto out;
    }
    one_text(s->pool[0].c, "SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() "
             "ELSE pg_current_wal_lsn() END)::text", lsn, sizeof(lsn));
    if (lsn[0]) {
        const char *v[1] = {lsn};
        uint64_t t0 = evs__mono_ns();
        for (;;) {
            /* NULL replay position: not a standby (the primary itself,
             * say): nothing to wait for */
            PGresult *r = PQexecParams(c, "SELECT coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, "
                                       "true), coalesce(pg_last_wal_replay_lsn()::text, '')",
                                       1, NULL, v, NULL, NULL, 0);
            if (PQresultStatus(r) != PGRES_TUPLES_OK) {
                rc = evs__pg_fail(c, r, "read replica");
                goto out;
            }
            int ok = PQgetvalue(r, 0, 0)[0] == 't';
            char at[64];
            snprintf(at, sizeof(at), "%s", PQgetvalue(r, 0, 1));
            PQclear(r);
            if (ok)
                break;
            if (evs__mono_ns() - t0 > (uint64_t)REPLICA_CATCHUP_MS * 1000000u) {
                rc = evs__err(EVS_EBACKEND, "read replica: the standby has replayed WAL up to "
                              "%s, not yet the primary's %s, after %d s; is it streaming "
                              "from this primary (pg_stat_wal_receiver)?", at, lsn,
                              REPLICA_CATCHUP_MS / 1000);
                goto out;
            }
            struct timespec ts = {0, 10 * 1000000};
            nanosleep(&ts, NULL);
        }
    }
    if ((rc = evs__pg_schema_open(c, 1, 0)) < 0 || (rc = evs__pg_prepare_all(c)) < 0) {
        char msg[768];
        snprintf(msg, sizeof(msg), "%s", evs_last_error());
        rc = evs__err(rc, "read replica: %s", msg);
        goto out;
    }
    evs__pg_pool_first(rp, c);
    c = NULL;
    s->poll_commits = 1;
out:
    if (c)
        PQfinish(c);
    return rc;
}

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
    pthread_cond_init(&s->pcond, &ca);
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
    c = NULL;
    /* A standby as the store itself (a read-only open): it delivers no
     * NOTIFY, so commit waits poll it as they poll a replica. */
    if (s->readonly && (rc = in_recovery(s->pool[0].c, &s->poll_commits)) < 0)
        goto fail;
    if (opts->read_replica_uri && (rc = replica_open(s, opts->read_replica_uri)) < 0)
        goto fail;
    s->base.opts.read_replica_uri = NULL; /* the caller's; s->replica has its copy */
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
    if (s->replica) {
        evs__pg_pool_close(s->replica);
        free(s->replica->uri);
        free(s->replica);
    }
    pthread_mutex_destroy(&s->nlock);
    pthread_cond_destroy(&s->ncond);
    pthread_cond_destroy(&s->pcond);
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
 * constraints): positions beyond the head, stream versions not increasing
 * (evs_scavenge leaves gaps in positions and versions, and a tombstone has
 * version 2^63-1, so gaps cannot be told from lost rows: the database's
 * own checks are what guards against those), the streams table disagreeing with the
 * events, the system flag disagreeing with the stream name. One
 * REPEATABLE READ snapshot: appends may continue.
 */
static const struct {
    const char *sql;
    const char *fmt; /* printf with the row's columns as strings */
    int ncols;
} checks[] = {
    {"SELECT e.position, h.position FROM evstore.events e, evstore.head h "
     "WHERE e.position > h.position LIMIT 1000",
     "position %s is beyond the head (%s)", 2},
    {"SELECT x.tenant, x.stream, x.stream_version, x.position, x.prev FROM (SELECT tenant, "
     "stream, stream_version, position, lag(stream_version, 1, -1::bigint) OVER (PARTITION "
     "BY tenant, stream ORDER BY position) AS prev FROM evstore.events WHERE stream <> '') x "
     "WHERE x.stream_version <= x.prev LIMIT 1000",
     "tenant \"%s\" stream %s: version %s at position %s does not follow version %s", 5},
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
