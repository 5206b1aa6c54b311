/*
 * explain.c -- ANALYZE of the store's tables and EXPLAIN (ANALYZE, BUFFERS)
 * of the PostgreSQL backend's hot queries, for the report of `evs bench
 * --db postgresql://...` (explain.h, docs/BENCH.md), over a connection of
 * the bench's own.
 *
 * Each statement is the one the backend runs: the prepared statements'
 * SQL text (evs__pg_statement: the library's own table, so the text
 * explained is the text it prepares), the DCB query's statement of its
 * shape (evs__pg_dcb_sql) and the condition of evstore.append built from the
 * predicate the server's own evstore.query_pred makes, and evstore.append
 * itself (in a transaction that is rolled back). Parameters are bound
 * (text format, types given), never formatted into the SQL, and taken
 * from the data: a sample event (tenant, stream, type, tag, id,
 * recorded_at) from the middle of a tenant's log, so every lookup hits
 * rows that exist.
 *
 * The plans are custom plans (the parameter values known to the planner),
 * as plpgsql's EXECUTE ... USING gets them; a prepared statement may switch
 * to a generic plan after five executions, which EXPLAIN cannot show
 * through the extended protocol (EXPLAIN EXECUTE takes no bound
 * parameters).
 */
#include "explain.h"

#include "postgres/pg.h" /* evs__pg_statement, the type OIDs */

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct explain_conn {
    PGconn *c;
};

#define MAXP 8
#define BIG "9223372036854775807"

/* What the statements are run with. */
typedef struct sample {
    char tenant[256], stream[512], type[256], tag[512], category[256];
    char id[64], at[32], mid[32], head[32];
    char streams[3][512];
    int nstreams;
    char snap_tenant[256], snap_stream[512];
    int have_snap;
} sample;

/* A run of explain_hot_queries. */
typedef struct xq {
    PGconn *c;
    explain_fn cb;
    void *ctx;
    char *err;
    size_t errsize;
} xq;

/* err <- the message; returns -1. */
static int fail(xq *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(xq *x, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->err, x->errsize, fmt, ap);
    va_end(ap);
    return -1;
}

/* A failed result (or a NULL one) as a message starting with what, in the
 * library's words ("what: PostgreSQL: message (SQLSTATE code)"); frees
 * res. Returns -1. */
static int pg_fail(PGconn *c, PGresult *res, const char *what, char *err, size_t errsize)
{
    char msg[768];
    const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *pm = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    snprintf(msg, sizeof msg, "%s", pm ? pm : c ? PQerrorMessage(c) : "no connection");
    msg[strcspn(msg, "\n")] = '\0'; /* libpq's messages may run over lines */
    for (size_t n = strlen(msg); n && (msg[n - 1] == ' ' || msg[n - 1] == '\r'); n--)
        msg[n - 1] = '\0';
    snprintf(err, errsize, "%s: PostgreSQL: %s%s%s%s", what, msg[0] ? msg : "unknown error",
             st ? " (SQLSTATE " : "", st ? st : "", st ? ")" : "");
    PQclear(res);
    return -1;
}

/* Text params of one statement. */
typedef struct xp {
    const char *v[MAXP];
    Oid t[MAXP];
    int n;
} xp;

static void xp_add(xp *p, Oid type, const char *v)
{
    p->t[p->n] = type;
    p->v[p->n++] = v;
}

/* A text[] literal of n strings into buf ("{"a","b\"c"}"). */
static int arr_lit(xq *x, char *buf, size_t size, const char *const *v, size_t n)
{
    size_t k = 0;
    if (k < size)
        buf[k++] = '{';
    for (size_t i = 0; i < n; i++) {
        if (i && k < size)
            buf[k++] = ',';
        if (k < size)
            buf[k++] = '"';
        for (const char *c = v[i]; *c; c++) {
            if ((*c == '"' || *c == '\\') && k < size)
                buf[k++] = '\\';
            if (k < size)
                buf[k++] = *c;
        }
        if (k < size)
            buf[k++] = '"';
    }
    if (k + 2 > size)
        return fail(x, "explain: parameter too long");
    buf[k++] = '}';
    buf[k] = '\0';
    return 0;
}

static int ident_char(char c)
{
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* 1 if the plan names index idx as a whole word ("events_tags", not
 * "events_tags2"; "evstore.events_tags" counts). */
static int names_index(const char *plan, const char *idx, size_t len)
{
    for (const char *p = plan; (p = strstr(p, idx)); p += len)
        if ((p == plan || !ident_char(p[-1])) && !ident_char(p[len]))
            return 1;
    return 0;
}

/* The verdict: a Seq Scan on events is "not used"; otherwise used when
 * one of the " or "-separated intended indexes is named. */
static int verdict(const char *plan, const char *index)
{
    if (strcmp(index, "-") == 0)
        return -1;
    if (strstr(plan, "Seq Scan on events"))
        return 0;
    const char *p = index;
    for (;;) {
        const char *sep = strstr(p, " or ");
        size_t len = sep ? (size_t)(sep - p) : strlen(p);
        char one[128];
        if (len < sizeof one) {
            memcpy(one, p, len);
            one[len] = '\0';
            if (names_index(plan, one, len))
                return 1;
        }
        if (!sep)
            return 0;
        p = sep + 4;
    }
}

/* Runs sql on the explain connection; *res holds the rows. */
static int run(xq *x, const char *sql, const xp *p, PGresult **res, const char *what)
{
    *res = PQexecParams(x->c, sql, p ? p->n : 0, p ? p->t : NULL, p ? p->v : NULL,
                        NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(*res);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
        return 0;
    pg_fail(x->c, *res, what, x->err, x->errsize);
    *res = NULL;
    return -1;
}

/* EXPLAIN (ANALYZE, BUFFERS) sql with p, then cb. Returns cb's non-zero
 * value, or 0; a failed EXPLAIN is reported through cb (a lost connection
 * ends the run). */
static int explain(xq *x, const char *name, const char *params, const char *index,
                   const char *sql, const xp *p)
{
    char *q = NULL;
    size_t qn = strlen(sql) + 64;
    if (!(q = malloc(qn)))
        return fail(x, "out of memory explaining %s", name);
    snprintf(q, qn, "EXPLAIN (ANALYZE, BUFFERS) %s", sql);
    PGresult *r = PQexecParams(x->c, q, p ? p->n : 0, p ? p->t : NULL,
                               p ? p->v : NULL, NULL, NULL, 0);
    free(q);
    explained e = {name, params, index, NULL, -1, 0, -1.0};
    char *plan = NULL;
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        size_t len = 0;
        for (int i = 0; i < PQntuples(r); i++)
            len += (size_t)PQgetlength(r, i, 0) + 1;
        if (!(plan = malloc(len + 1))) {
            PQclear(r);
            return fail(x, "out of memory explaining %s", name);
        }
        size_t k = 0;
        for (int i = 0; i < PQntuples(r); i++) {
            const char *line = PQgetvalue(r, i, 0);
            size_t l = strlen(line);
            memcpy(plan + k, line, l);
            k += l;
            plan[k++] = '\n';
            const char *et = strstr(line, "Execution Time: ");
            if (et)
                e.exec_ms = strtod(et + 16, NULL);
        }
        plan[k] = '\0';
        e.plan = plan;
        e.used = verdict(plan, index);
    } else {
        const char *msg = PQresultErrorMessage(r);
        int lost = PQstatus(x->c) != CONNECTION_OK;
        size_t l = strlen(msg) + 32;
        if (!(plan = malloc(l))) {
            PQclear(r);
            return fail(x, "out of memory explaining %s", name);
        }
        snprintf(plan, l, "EXPLAIN failed: %s", msg);
        e.plan = plan;
        e.failed = 1;
        if (lost) {
            PQclear(r);
            free(plan);
            return fail(x, "explain %s: the connection was lost", name);
        }
    }
    PQclear(r);
    int rc = x->cb(x->ctx, &e);
    free(plan);
    return rc ? fail(x, "explain %s: stopped by the caller (%d)", name, rc) : 0;
}

/* The DCB predicate of a query as evstore.query_pred makes it, for array
 * parameters named tp and gp. */
static int query_pred(xq *x, char *out, size_t size, size_t nt, const char *const *tags,
                      size_t ng, const char *tp, const char *gp)
{
    char ntypes[32], ntags[32], tagarr[2048];
    int rc;
    snprintf(ntypes, sizeof ntypes, "{%zu}", nt);
    snprintf(ntags, sizeof ntags, "{%zu}", ng);
    if ((rc = arr_lit(x, tagarr, sizeof tagarr, tags, ng)) < 0)
        return rc;
    xp p = {.n = 0};
    xp_add(&p, EVS_OID_INT4_ARR, ntypes);
    xp_add(&p, EVS_OID_INT4_ARR, ntags);
    xp_add(&p, EVS_OID_TEXT_ARR, tagarr);
    xp_add(&p, EVS_OID_TEXT, tp);
    xp_add(&p, EVS_OID_TEXT, gp);
    PGresult *r;
    if ((rc = run(x, "SELECT evstore.query_pred($1, $2, $3, 1, cardinality($1), 0, 0, $4, $5)",
                  &p, &r, "explain: query_pred")) < 0)
        return rc;
    int ok = PQntuples(r) == 1 && (size_t)PQgetlength(r, 0, 0) < size;
    if (ok)
        snprintf(out, size, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return ok ? 0 : fail(x, "explain: unexpected query_pred answer");
}

/*
 * A DCB query of one item (types AND tags) on tenant: the statement
 * evs_read_query prepares for its shape (evs__pg_dcb_sql; the SELECT that
 * evstore.read_query executes, its format string in 0001_init.sql, for a
 * query of more terms than that takes), from the start of the log, at
 * most 1000 rows; with cond, the condition evstore.append checks after
 * the token `after` instead.
 */
static int explain_query(xq *x, const char *name, const char *index, const char *tenant,
                         const char *const *types, size_t nt, const char *const *tags,
                         size_t ng, int cond, const char *after)
{
    char pred[4096], sql[6000], tarr[2048], garr[2048], params[4608];
    int rc;
    if ((rc = query_pred(x, pred, sizeof pred, nt, tags, ng, cond ? "$3" : "$6",
                         cond ? "$4" : "$7")) < 0)
        return rc;
    if ((rc = arr_lit(x, tarr, sizeof tarr, types, nt)) < 0 ||
        (rc = arr_lit(x, garr, sizeof garr, tags, ng)) < 0)
        return rc;
    snprintf(params, sizeof params, "tenant %s, types %s, tags %s%s%s", tenant, tarr, garr,
             cond ? ", after " : "", cond ? after : "");
    xp p = {.n = 0};
    if (!cond && EVS_PG_DCB_FIXED + nt + ng <= MAXP) {
        /* the statement evs_read_query prepares for this shape
         * (evs__pg_dcb_sql): what the backend runs */
        evs_query_item item = {.types = types, .ntypes = nt, .tags = tags, .ntags = ng};
        evs_query q = {.items = &item, .nitems = 1};
        char *dsql = NULL, dname[EVS_PG_DCB_NAME];
        size_t nterms;
        int prepared;
        if ((rc = evs__pg_dcb_sql(&dsql, dname, &nterms, &prepared, &q, 0)) < 0)
            return fail(x, "explain: %s", evs_last_error());
        if (rc == 0) {
            xp_add(&p, EVS_OID_TEXT, tenant);
            xp_add(&p, EVS_OID_INT8, "0");
            xp_add(&p, EVS_OID_INT8, BIG);
            xp_add(&p, EVS_OID_INT8, "1000");
            for (size_t i = 0; i < nt && nterms; i++)
                xp_add(&p, EVS_OID_TEXT, types[i]);
            for (size_t i = 0; i < ng && nterms; i++) {
                const char *v = tags[i];
                if (strncmp(v, EVS_STREAM_TAG_PREFIX, strlen(EVS_STREAM_TAG_PREFIX)) == 0)
                    v += strlen(EVS_STREAM_TAG_PREFIX);
                else if (strncmp(v, "$category:", 10) == 0)
                    v += 10;
                xp_add(&p, EVS_OID_TEXT, v);
            }
            rc = explain(x, name, params, index, dsql, &p);
            free(dsql);
            return rc;
        }
    }
    if (cond) {
        snprintf(sql, sizeof sql,
                 "SELECT position FROM evstore.events WHERE tenant = $1 AND NOT system "
                 "AND position > $2 AND (%s) ORDER BY position LIMIT 1",
                 pred);
        xp_add(&p, EVS_OID_TEXT, tenant);
        xp_add(&p, EVS_OID_INT8, after);
        xp_add(&p, EVS_OID_TEXT_ARR, tarr);
        xp_add(&p, EVS_OID_TEXT_ARR, garr);
    } else {
        snprintf(sql, sizeof sql,
                 "SELECT $5, position, stream_version, tenant, stream, type, id, "
                 "correlation_id, causation_id, recorded_at, content_type, data, metadata, "
                 "tags FROM evstore.events WHERE tenant = $1 AND NOT system AND position > $2 "
                 "AND position < $3 AND (%s) ORDER BY position ASC LIMIT $4",
                 pred);
        xp_add(&p, EVS_OID_TEXT, tenant);
        xp_add(&p, EVS_OID_INT8, "0");
        xp_add(&p, EVS_OID_INT8, BIG);
        xp_add(&p, EVS_OID_INT8, "1000");
        xp_add(&p, EVS_OID_INT8, "0");
        xp_add(&p, EVS_OID_TEXT_ARR, tarr);
        xp_add(&p, EVS_OID_TEXT_ARR, garr);
    }
    return explain(x, name, params, index, sql, &p);
}

/* A statement the backend prepares on every connection, by name: its SQL
 * text as the library has it (evs__pg_statement). */
static int explain_stmt(xq *x, const char *name, const char *params, const char *index,
                        const char *stmt, const xp *p)
{
    const char *sql = evs__pg_statement(stmt);
    if (!sql)
        return fail(x, "explain: no statement %s", stmt);
    return explain(x, name, params, index, sql, p);
}

static int pick_sample(xq *x, sample *sm, const char *tenant)
{
    PGresult *r;
    int rc;
    xp p = {.n = 0};
    if ((rc = run(x, "SELECT position FROM evstore.head", NULL, &r, "explain: head")) < 0)
        return rc;
    int64_t head = PQntuples(r) == 1 ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    PQclear(r);
    snprintf(sm->head, sizeof sm->head, "%" PRId64, head);
    /* the first suitable event from the middle of the tenant's events
     * (of the log without a tenant) on, or from the start */
    int64_t mid = head / 2;
    if (tenant) {
        p.n = 0;
        xp_add(&p, EVS_OID_TEXT, tenant);
        if ((rc = run(x, "SELECT coalesce(min(position), 0), coalesce(max(position), 0) FROM "
                         "evstore.events WHERE tenant = $1 AND NOT system",
                      &p, &r, "explain: the tenant's range")) < 0)
            return rc;
        if (PQntuples(r) == 1)
            mid = (strtoll(PQgetvalue(r, 0, 0), NULL, 10) +
                   strtoll(PQgetvalue(r, 0, 1), NULL, 10)) / 2;
        PQclear(r);
    }
    static const char *const pick =
        "SELECT tenant, stream, type, tags[1], split_part(stream, '-', 1), id, recorded_at, "
        "position FROM evstore.events WHERE ($1::text IS NULL OR tenant = $1) AND NOT "
        "system AND stream <> '' AND cardinality(tags) > 0 AND position >= $2 "
        "ORDER BY position LIMIT 1";
    r = NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        char from[32];
        snprintf(from, sizeof from, "%" PRId64, attempt == 0 ? mid : 0);
        p.n = 0;
        xp_add(&p, EVS_OID_TEXT, tenant);
        xp_add(&p, EVS_OID_INT8, from);
        if ((rc = run(x, pick, &p, &r, "explain: picking a sample event")) < 0)
            return rc;
        if (PQntuples(r) == 1)
            break;
        PQclear(r);
        r = NULL;
    }
    if (!r)
        return fail(x, "explain: no event with a stream and tags%s%s to sample",
                        tenant ? " in tenant " : "", tenant ? tenant : "");
    snprintf(sm->tenant, sizeof sm->tenant, "%s", PQgetvalue(r, 0, 0));
    snprintf(sm->stream, sizeof sm->stream, "%s", PQgetvalue(r, 0, 1));
    snprintf(sm->type, sizeof sm->type, "%s", PQgetvalue(r, 0, 2));
    snprintf(sm->tag, sizeof sm->tag, "%s", PQgetvalue(r, 0, 3));
    snprintf(sm->category, sizeof sm->category, "$category:%s", PQgetvalue(r, 0, 4));
    snprintf(sm->id, sizeof sm->id, "%s", PQgetvalue(r, 0, 5));
    snprintf(sm->at, sizeof sm->at, "%s", PQgetvalue(r, 0, 6));
    snprintf(sm->mid, sizeof sm->mid, "%s", PQgetvalue(r, 0, 7));
    PQclear(r);
    /* the sample's stream and up to two more of the tenant (read_streams) */
    p.n = 0;
    xp_add(&p, EVS_OID_TEXT, sm->tenant);
    xp_add(&p, EVS_OID_INT8, sm->mid);
    xp_add(&p, EVS_OID_TEXT, sm->stream);
    if ((rc = run(x,
                  "SELECT DISTINCT stream FROM (SELECT stream FROM evstore.events WHERE "
                  "tenant = $1 AND NOT system AND stream <> '' AND stream <> $3 AND "
                  "position > $2 ORDER BY position LIMIT 200) s LIMIT 2",
                  &p, &r, "explain: picking streams")) < 0)
        return rc;
    snprintf(sm->streams[0], sizeof sm->streams[0], "%s", sm->stream);
    sm->nstreams = 1;
    for (int i = 0; i < PQntuples(r) && sm->nstreams < 3; i++)
        snprintf(sm->streams[sm->nstreams++], sizeof sm->streams[0], "%s",
                 PQgetvalue(r, i, 0));
    PQclear(r);
    /* a stream with a snapshot, if any */
    if ((rc = run(x, "SELECT tenant, stream FROM evstore.snapshots LIMIT 1", NULL, &r,
                  "explain: picking a snapshot")) < 0)
        return rc;
    if ((sm->have_snap = PQntuples(r) == 1)) {
        snprintf(sm->snap_tenant, sizeof sm->snap_tenant, "%s", PQgetvalue(r, 0, 0));
        snprintf(sm->snap_stream, sizeof sm->snap_stream, "%s", PQgetvalue(r, 0, 1));
    }
    PQclear(r);
    return 0;
}

/* evstore.append of one event to the sample's stream (expected version:
 * any), with a DCB condition when cond; in a transaction rolled back. */
static int explain_append(xq *x, const sample *sm, int cond)
{
    PGresult *r;
    int rc;
    static const char *const sql =
        "SELECT * FROM evstore.append($1::text, ARRAY[$2::text], ARRAY[-2]::bigint[], "
        "ARRAY[1], ARRAY[1], ARRAY[gen_random_uuid()], ARRAY[false], ARRAY[$3::text], "
        "ARRAY[0]::smallint[], ARRAY['\\x7b7d'::bytea], ARRAY[''::bytea], ARRAY[0], "
        "ARRAY[1], ARRAY[$4::text], ARRAY[NULL::uuid], ARRAY[NULL::uuid], "
        "ARRAY[0]::bigint[], $5::bigint[], $6::int[], $6::int[], $6::int[], $7::text[], "
        "$8::text[])";
    char after[48], types[600], tags[600], params[3072];
    const char *tv[1] = {sm->type}, *gv[1] = {sm->tag};
    if (cond) {
        snprintf(after, sizeof after, "{%s}", sm->head);
        if ((rc = arr_lit(x, types, sizeof types, tv, 1)) < 0 ||
            (rc = arr_lit(x, tags, sizeof tags, gv, 1)) < 0)
            return rc;
    } else {
        snprintf(after, sizeof after, "{}");
        snprintf(types, sizeof types, "{}");
        snprintf(tags, sizeof tags, "{}");
    }
    xp p = {.n = 0};
    xp_add(&p, EVS_OID_TEXT, sm->tenant);
    xp_add(&p, EVS_OID_TEXT, sm->stream);
    xp_add(&p, EVS_OID_TEXT, sm->type);
    xp_add(&p, EVS_OID_TEXT, sm->tag);
    xp_add(&p, EVS_OID_TEXT, after);
    xp_add(&p, EVS_OID_TEXT, cond ? "{1}" : "{}");
    xp_add(&p, EVS_OID_TEXT, types);
    xp_add(&p, EVS_OID_TEXT, tags);
    snprintf(params, sizeof params,
             "tenant %s, stream %s, 1 event of type %s with tag %s%s%s%s%s; rolled back",
             sm->tenant, sm->stream, sm->type, sm->tag,
             cond ? ", condition: " : "", cond ? types : "", cond ? " " : "",
             cond ? tags : "");
    if ((rc = run(x, "BEGIN", NULL, &r, "explain: BEGIN")) < 0)
        return rc;
    PQclear(r);
    rc = explain(x, cond ? "DCB conditional append (evstore.append)"
                         : "append, 1 event (evstore.append)",
                 params, "-", sql, &p);
    PGresult *rb = PQexec(x->c, "ROLLBACK");
    PQclear(rb);
    return rc;
}

static int explain_all(xq *x, const sample *sm, const explain_extra *extra,
                       size_t nextra)
{
    char prm[2048], sarr[1700], varr[64], ts[64];
    const char *sv[3];
    int rc;
    xp p;

#define STEP(call)                \
    do {                          \
        if ((rc = (call)) != 0)   \
            return rc;            \
    } while (0)

    /* stream read: the whole stream, first page */
    p.n = 0;
    xp_add(&p, EVS_OID_TEXT, sm->tenant);
    xp_add(&p, EVS_OID_TEXT, sm->stream);
    xp_add(&p, EVS_OID_INT8, "0");
    xp_add(&p, EVS_OID_INT8, BIG);
    xp_add(&p, EVS_OID_INT8, "1000");
    snprintf(prm, sizeof prm, "tenant %s, stream %s, from version 0, 1000 rows", sm->tenant,
             sm->stream);
    STEP(explain_stmt(x, "stream read", prm, "events_stream", "evs_read_stream_fwd", &p));

    /* read_streams (command executor): up to 3 streams in one query */
    for (int i = 0; i < sm->nstreams; i++)
        sv[i] = sm->streams[i];
    if ((rc = arr_lit(x, sarr, sizeof sarr, sv, (size_t)sm->nstreams)) < 0)
        return rc;
    snprintf(varr, sizeof varr, "{0%s%s}", sm->nstreams > 1 ? ",0" : "",
             sm->nstreams > 2 ? ",0" : "");
    p.n = 0;
    xp_add(&p, EVS_OID_TEXT, sm->tenant);
    xp_add(&p, EVS_OID_TEXT_ARR, sarr);
    xp_add(&p, EVS_OID_INT8_ARR, varr);
    xp_add(&p, EVS_OID_INT8, BIG);
    xp_add(&p, EVS_OID_INT8, "1000");
    snprintf(prm, sizeof prm, "tenant %s, streams %s from version 0", sm->tenant, sarr);
    STEP(explain_stmt(x, "read_streams (command executor)", prm, "events_stream",
                      "evs_read_streams", &p));

    /* a tenant's $all: the first page, and a tracking page from a token */
    for (int k = 0; k < 2; k++) {
        char from[32];
        snprintf(from, sizeof from, "%s", k == 0 ? "0" : sm->mid);
        p.n = 0;
        xp_add(&p, EVS_OID_TEXT, sm->tenant);
        xp_add(&p, EVS_OID_INT8, from);
        xp_add(&p, EVS_OID_INT8, BIG);
        xp_add(&p, EVS_OID_INT8, "1000");
        snprintf(prm, sizeof prm, "tenant %s, from position %s, 1000 rows", sm->tenant, from);
        STEP(explain_stmt(x, k == 0 ? "tenant $all page" : "tracking page from a token (tenant)",
                          prm, "events_tenant", "evs_read_tenant", &p));
    }
    /* the store's $all from a token (a tracking processor of every tenant) */
    p.n = 0;
    xp_add(&p, EVS_OID_INT8, sm->mid);
    xp_add(&p, EVS_OID_INT8, BIG);
    xp_add(&p, EVS_OID_INT8, "1000");
    snprintf(prm, sizeof prm, "from position %s, 1000 rows", sm->mid);
    STEP(explain_stmt(x, "tracking page from a token (store $all)", prm, "events_pkey",
                      "evs_read_all", &p));

    /* DCB queries on the sample: by type, by tag, both, by category */
    const char *t1[1] = {sm->type}, *g1[1] = {sm->tag}, *c1[1] = {sm->category};
    STEP(explain_query(x, "DCB query: type", "events_type", sm->tenant, t1, 1, NULL, 0, 0,
                       NULL));
    STEP(explain_query(x, "DCB query: tag", "events_tags", sm->tenant, NULL, 0, g1, 1, 0,
                       NULL));
    STEP(explain_query(x, "DCB query: type + tag", "events_tags or events_type", sm->tenant, t1, 1, g1, 1,
                       0, NULL));
    STEP(explain_query(x, "DCB query: $category", "events_category", sm->tenant, NULL, 0, c1,
                       1, 0, NULL));
    for (size_t i = 0; i < nextra; i++) {
        const evs_query *q = extra[i].query;
        /* one item, as explain_query takes (the first) */
        if (!q || q->nitems < 1)
            continue;
        STEP(explain_query(x, extra[i].name, "events_tags", extra[i].tenant,
                           q->items[0].types, q->items[0].ntypes, q->items[0].tags,
                           q->items[0].ntags, 0, NULL));
    }
    /* the condition of a conditional append, after a recent token */
    STEP(explain_query(x, "DCB append condition (in evstore.append)",
                       "events_pkey or events_tags or events_type", sm->tenant, t1, 1, g1, 1, 1,
                       sm->head));

    /* tokens */
    p.n = 0;
    xp_add(&p, EVS_OID_TEXT, sm->tenant);
    snprintf(prm, sizeof prm, "tenant %s", sm->tenant);
    STEP(explain_stmt(x, "tenant head token", prm, "events_tenant", "evs_tenant_head", &p));
    STEP(explain_stmt(x, "tenant tail token", prm, "events_tenant", "evs_tenant_tail", &p));
    p.n = 0;
    xp_add(&p, EVS_OID_INT8, sm->at);
    snprintf(ts, sizeof ts, "recorded_at %s", sm->at);
    STEP(explain_stmt(x, "token_at", ts, "times_pkey", "evs_token_at", &p));

    /* point lookups of the append path and the command executor */
    p.n = 0;
    xp_add(&p, EVS_OID_TEXT, sm->tenant);
    xp_add(&p, EVS_OID_TEXT, sm->stream);
    snprintf(prm, sizeof prm, "tenant %s, stream %s", sm->tenant, sm->stream);
    STEP(explain_stmt(x, "stream version", prm, "streams_pkey", "evs_stream_version", &p));
    p.n = 0;
    xp_add(&p, EVS_OID_UUID, sm->id);
    snprintf(prm, sizeof prm, "id %s", sm->id);
    STEP(explain_stmt(x, "event position by id", prm, "events_id_key", "evs_event_position",
                      &p));
    if (sm->have_snap) {
        p.n = 0;
        xp_add(&p, EVS_OID_TEXT, sm->snap_tenant);
        xp_add(&p, EVS_OID_TEXT, sm->snap_stream);
        xp_add(&p, EVS_OID_INT8, BIG);
        snprintf(prm, sizeof prm, "tenant %s, stream %s, newest", sm->snap_tenant,
                 sm->snap_stream);
        STEP(explain_stmt(x, "snapshot load", prm, "snapshots_pkey", "evs_snapshot_load", &p));
    }

    /* the append itself: one statement, a function call */
    STEP(explain_append(x, sm, 0));
    STEP(explain_append(x, sm, 1));
#undef STEP
    return 0;
}

/* Server notices and warnings are dropped, as the library drops them. */
static void quiet(void *arg, const PGresult *res)
{
}

int explain_open(explain_conn **out, const char *uri, char *err, size_t errsize)
{
    explain_conn *x = calloc(1, sizeof *x);
    PGresult *r;
    *out = NULL;
    if (!x || !(x->c = PQconnectdb(uri))) {
        free(x);
        snprintf(err, errsize, "out of memory connecting to PostgreSQL");
        return -1;
    }
    if (PQstatus(x->c) != CONNECTION_OK) {
        pg_fail(x->c, NULL, "cannot connect", err, errsize);
        explain_close(x);
        return -1;
    }
    /* As the backend's connections (evs__pg_connect): the same
     * settings give the same plans; no JIT in particular, which would add
     * its compilation to a misestimated statement's time. */
    PQsetNoticeReceiver(x->c, quiet, NULL);
    r = PQexec(x->c, "SET default_transaction_isolation = 'read committed'; "
                     "SET synchronous_commit = on; "
                     "SET client_min_messages = warning; SET jit = off");
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        pg_fail(x->c, r, "session setup", err, errsize);
        explain_close(x);
        return -1;
    }
    PQclear(r);
    *out = x;
    return 0;
}

void explain_close(explain_conn *x)
{
    if (!x)
        return;
    PQfinish(x->c);
    free(x);
}

int explain_analyze(explain_conn *x, char *err, size_t errsize)
{
    PGresult *r = PQexec(x->c, "ANALYZE evstore.events, evstore.streams, evstore.times, "
                               "evstore.snapshots, evstore.tenants");
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        return pg_fail(x->c, r, "ANALYZE", err, errsize);
    PQclear(r);
    return 0;
}

int explain_hot_queries(explain_conn *conn, const char *tenant, const explain_extra *extra,
                        size_t nextra, explain_fn cb, void *ctx, char *err, size_t errsize)
{
    xq x = {conn->c, cb, ctx, err, errsize};
    sample *sm = calloc(1, sizeof *sm);
    int rc;
    if (!sm)
        return fail(&x, "out of memory explaining");
    rc = pick_sample(&x, sm, tenant);
    if (rc == 0)
        rc = explain_all(&x, sm, extra, nextra);
    free(sm);
    return rc;
}
