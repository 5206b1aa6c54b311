/*
 * pg_explore.c -- exploring reads on PostgreSQL (evstore.h, "Exploring";
 * evs_read_event is the front end's, on event_position and read_all):
 * the streams of a tenant (the table evstore.streams, no event read) and the tenants with
 * their event counts (evstore.tenants, a count over the partial index
 * events_tenant, which holds exactly the events outside system streams;
 * capped: a LIMIT under the count, or an EXISTS for a cap of 1).
 *
 * Each is one statement, so one snapshot. Order is byte order (COLLATE
 * "C"), as on the embedded store, whatever the database's collation: with
 * a collation other than C the primary key of evstore.streams cannot give
 * that order and the server sorts the tenant's streams (an explorer's
 * cost, not an append's). The statements are not among the prepared ones
 * (pg_wire.c): they are rare, and the server infers their parameters'
 * types from the casts below.
 */
#include "postgres/pg.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>

/* Run sql with a on a pooled connection, results binary or text; a
 * connection found broken (the server restarted since it was pooled) is
 * replaced once: these reads are safe to repeat. */
static EVS_MUST_USE int run(evs__pg *s, const char *sql, const evs__pgparams *a, int binary,
                            PGresult **res, const char *what)
{
    for (int attempt = 0;; attempt++) {
        evs__pgconn *pc;
        int rc;
        *res = NULL;
        if ((rc = evs__pg_get(s, &pc)) < 0)
            return rc;
        PGresult *r = PQexecParams(pc->c, sql, a->n, NULL, a->vals, a->lens, a->fmts, binary);
        if (PQresultStatus(r) == PGRES_TUPLES_OK) {
            *res = r;
            rc = 0;
        } else {
            rc = evs__pg_fail(pc->c, r, what);
        }
        int lost = rc < 0 && evs__pg_conn_lost(pc->c);
        evs__pg_put(s, pc);
        if (!lost || attempt >= 1)
            return rc;
    }
}

/* ---- streams ---------------------------------------------------------------- */

int evs__pg_list_streams(evs_db *db, const char *tenant, const char *prefix,
                         const char *after_tenant, const char *after, uint64_t limit,
                         int system, evs__list_sink *sink)
{
    /* Names are never empty, so "after ''" is "from the first". */
    static const char one_tenant[] =
        "SELECT tenant, stream, version FROM evstore.streams "
        "WHERE tenant = $1::text AND stream COLLATE \"C\" > $2::text "
        "AND stream COLLATE \"C\" >= $3::text AND starts_with(stream, $3::text) "
        "AND ($4::boolean OR left(stream, 1) <> '$') "
        "ORDER BY stream COLLATE \"C\" LIMIT $5::bigint";
    static const char every_tenant[] =
        "SELECT tenant, stream, version FROM evstore.streams "
        "WHERE (tenant COLLATE \"C\", stream COLLATE \"C\") > ($1::text, $2::text) "
        "AND stream COLLATE \"C\" >= $3::text AND starts_with(stream, $3::text) "
        "AND ($4::boolean OR left(stream, 1) <> '$') "
        "ORDER BY tenant COLLATE \"C\", stream COLLATE \"C\" LIMIT $5::bigint";
    evs__pgparams a = {.n = 0};
    PGresult *r;
    int rc;
    /* one more than asked: whether more follow */
    int64_t want = limit == 0 || limit >= (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)limit + 1;
    evs__pgp_text(&a, tenant ? tenant : after_tenant ? after_tenant : "");
    evs__pgp_text(&a, after ? after : "");
    evs__pgp_text(&a, prefix);
    evs__pgp_bool(&a, system);
    evs__pgp_i64(&a, want);
    if ((rc = run((evs__pg *)db, tenant ? one_tenant : every_tenant, &a, 0, &r,
                  "list_streams")) < 0)
        return rc;
    int n = PQntuples(r);
    if (PQnfields(r) != 3) {
        PQclear(r);
        return evs__err(EVS_EBACKEND, "list_streams: unexpected result shape from PostgreSQL");
    }
    for (int i = 0; i < n && rc == 0; i++) {
        if (limit && (uint64_t)i == limit) {
            sink->more = 1;
            break;
        }
        rc = sink->add(sink, PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0),
                       PQgetvalue(r, i, 1), (size_t)PQgetlength(r, i, 1),
                       strtoll(PQgetvalue(r, i, 2), NULL, 10));
    }
    PQclear(r);
    return rc;
}

/* ---- tenants ---------------------------------------------------------------- */

int evs__pg_list_tenants(evs_db *db, uint64_t cap, evs__list_sink *sink)
{
    /* `NOT system` is events_tenant's predicate: the count reads that index */
    static const char sql[] =
        "SELECT t.tenant, (SELECT count(*) FROM evstore.events e WHERE e.tenant = t.tenant "
        "AND NOT e.system) FROM evstore.tenants t ORDER BY t.tenant COLLATE \"C\"";
    /* capped: the count stops after cap rows of the index; a cap of 1 is
     * an EXISTS, one index probe per tenant whatever its size */
    static const char capped[] =
        "SELECT t.tenant, (SELECT count(*) FROM (SELECT 1 FROM evstore.events e "
        "WHERE e.tenant = t.tenant AND NOT e.system LIMIT $1::bigint) x) "
        "FROM evstore.tenants t ORDER BY t.tenant COLLATE \"C\"";
    static const char exists[] =
        "SELECT t.tenant, (EXISTS (SELECT 1 FROM evstore.events e WHERE e.tenant = t.tenant "
        "AND NOT e.system))::int FROM evstore.tenants t ORDER BY t.tenant COLLATE \"C\"";
    evs__pgparams a = {.n = 0};
    PGresult *r;
    int rc;
    if (cap > 1)
        evs__pgp_i64(&a, cap > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)cap);
    if ((rc = run((evs__pg *)db, cap == 0 ? sql : cap == 1 ? exists : capped, &a, 0, &r,
                  "list_tenants")) < 0)
        return rc;
    int n = PQntuples(r);
    if (PQnfields(r) != 2) {
        PQclear(r);
        return evs__err(EVS_EBACKEND, "list_tenants: unexpected result shape from PostgreSQL");
    }
    for (int i = 0; i < n && rc == 0; i++)
        rc = sink->add(sink, PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0), NULL, 0,
                       strtoll(PQgetvalue(r, i, 1), NULL, 10));
    PQclear(r);
    return rc;
}
