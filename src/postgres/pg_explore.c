/*
 * pg_explore.c -- exploring reads on PostgreSQL (evstore.h, "Exploring"):
 * one event by id (the unique index on events.id), the streams of a
 * tenant (the table evstore.streams, no event read) and the tenants with
 * their event counts (evstore.tenants, a count over the partial index
 * events_tenant, which holds exactly the events outside system streams).
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

/* ---- one event by id ------------------------------------------------------ */

/* Yields the one row of its result once; the event's pointers point into
 * the result (libpq ends every value with a NUL), its tags into tagtext. */
typedef struct one_iter {
    evs_iter base;
    PGresult *res;
    int done;
    evs_event ev;
    const char **tags;
    char *tagtext;
} one_iter;

static int one_next(const evs_event **ev, evs_iter *base)
{
    one_iter *it = (one_iter *)base;
    if (it->done)
        return EVS_ITEROVER;
    it->done = 1;
    *ev = &it->ev;
    return 0;
}

static int one_marker(uint64_t *out, const evs_iter *base)
{
    *out = ((const one_iter *)base)->ev.position;
    return 0;
}

static void one_free(evs_iter *base)
{
    one_iter *it = (one_iter *)base;
    PQclear(it->res);
    free((void *)it->tags);
    free(it->tagtext);
    free(it);
}

static const evs__iter_ops one_ops = {
    .next = one_next,
    .marker = one_marker,
    .free = one_free,
};

/* The binary text[] value p[0..len) into it->tags (pg_read.c reads the
 * same shape: ndim, flags, element type, then per dimension its length
 * and lower bound, then each element's length and bytes). */
static EVS_MUST_USE int decode_tags(one_iter *it, const char *p, int len)
{
    it->ev.ntags = 0;
    it->ev.tags = NULL;
    if (len < 12)
        return evs__err(EVS_EBACKEND, "read_event: malformed tags array");
    if (evs__get_be32((const uint8_t *)p) == 0)
        return 0;
    if (evs__get_be32((const uint8_t *)p) != 1 || len < 20)
        return evs__err(EVS_EBACKEND, "read_event: malformed tags array");
    size_t n = evs__get_be32((const uint8_t *)p + 12);
    if (n > (size_t)len / 4 || !(it->tags = calloc(n ? n : 1, sizeof(char *))) ||
        !(it->tagtext = malloc((size_t)len)))
        return evs__err(n > (size_t)len / 4 ? EVS_EBACKEND : EVS_ENOMEM,
                        "read_event: %s", n > (size_t)len / 4 ? "malformed tags array"
                                                              : "out of memory");
    char *t = it->tagtext;
    const char *q = p + 20, *end = p + len;
    for (size_t i = 0; i < n; i++) {
        if (q + 4 > end)
            return evs__err(EVS_EBACKEND, "read_event: malformed tags array");
        uint32_t l = evs__get_be32((const uint8_t *)q);
        q += 4;
        if (l == UINT32_MAX || l > (size_t)(end - q))
            return evs__err(EVS_EBACKEND, "read_event: malformed tags array");
        /* each element's 4-byte length is room for its NUL */
        memcpy(t, q, l);
        t[l] = '\0';
        it->tags[i] = t;
        t += l + 1;
        q += l;
    }
    it->ev.tags = it->tags;
    it->ev.ntags = n;
    return 0;
}

static void uuid_at(evs_uuid *u, PGresult *r, int col)
{
    if (PQgetisnull(r, 0, col) || PQgetlength(r, 0, col) != 16)
        memset(u, 0, sizeof(*u));
    else
        memcpy(u->bytes, PQgetvalue(r, 0, col), 16);
}

int evs__pg_read_event(evs_iter **out, evs_db *db, const evs_uuid *id)
{
    static const char sql[] =
        "SELECT position, stream_version, tenant, stream, type, id, correlation_id, "
        "causation_id, recorded_at, content_type, data, metadata, tags "
        "FROM evstore.events WHERE id = $1::uuid";
    evs__pgparams a = {.n = 0};
    PGresult *r;
    int rc;
    evs__pgp_bytes(&a, id->bytes, 16);
    if ((rc = run((evs__pg *)db, sql, &a, 1, &r, "read_event")) < 0)
        return rc;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return EVS_ENOTFOUND;
    }
    if (PQnfields(r) != 13) {
        PQclear(r);
        return evs__err(EVS_EBACKEND, "read_event: unexpected result shape from PostgreSQL");
    }
    one_iter *it = calloc(1, sizeof(*it));
    if (!it) {
        PQclear(r);
        return evs__err(EVS_ENOMEM, "out of memory creating an iterator");
    }
    it->base.ops = &one_ops;
    it->base.db = db;
    it->res = r;
    evs_event *e = &it->ev;
    e->position = (uint64_t)evs__pg_i64(PQgetvalue(r, 0, 0));
    e->stream_version = evs__pg_i64(PQgetvalue(r, 0, 1));
    e->tenant = PQgetvalue(r, 0, 2);
    e->stream = PQgetvalue(r, 0, 3);
    e->type = PQgetvalue(r, 0, 4);
    uuid_at(&e->id, r, 5);
    uuid_at(&e->correlation_id, r, 6);
    uuid_at(&e->causation_id, r, 7);
    e->recorded_at = evs__pg_i64(PQgetvalue(r, 0, 8));
    const uint8_t *ct = (const uint8_t *)PQgetvalue(r, 0, 9);
    e->content_type = (evs_content_type)(((unsigned)ct[0] << 8) | ct[1]);
    e->data = PQgetvalue(r, 0, 10);
    e->data_len = (size_t)PQgetlength(r, 0, 10);
    e->metadata = PQgetvalue(r, 0, 11);
    e->metadata_len = (size_t)PQgetlength(r, 0, 11);
    if ((rc = decode_tags(it, PQgetvalue(r, 0, 12), PQgetlength(r, 0, 12))) < 0) {
        one_free(&it->base);
        return rc;
    }
    *out = &it->base;
    return 0;
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

int evs__pg_list_tenants(evs_db *db, evs__list_sink *sink)
{
    /* `NOT system` is events_tenant's predicate: the count reads that index */
    static const char sql[] =
        "SELECT t.tenant, (SELECT count(*) FROM evstore.events e WHERE e.tenant = t.tenant "
        "AND NOT e.system) FROM evstore.tenants t ORDER BY t.tenant COLLATE \"C\"";
    evs__pgparams a = {.n = 0};
    PGresult *r;
    int rc;
    if ((rc = run((evs__pg *)db, sql, &a, 0, &r, "list_tenants")) < 0)
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
