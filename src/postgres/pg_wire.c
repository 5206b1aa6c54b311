/*
 * pg_wire.c -- what the backend sends PostgreSQL and how it reads the
 * answers: statement parameters, the prepared statements and running
 * them, PostgreSQL's errors as evs errors.
 *
 * Every value is a bound parameter, never text spliced into SQL, so a
 * stream named `'; DROP TABLE` is only bytes. Every statement with
 * parameters builds them with one builder, evs__pgparams: text and
 * integers, and binary arrays, which carry a whole append (every event's
 * type, data, tags...) in one statement. Binary, because the binary form
 * costs nothing to build (integers big-endian, text and bytea as their
 * bytes) and nothing has to be quoted or escaped.
 *
 * A one-dimensional binary array, as the server's array_recv reads it
 * (all integers big-endian):
 *
 *   OFFSET  SIZE  field
 *   0       4     ndim: 1, or 0 for an empty array (which ends here)
 *   4       4     has-nulls flag (advisory: 0 is accepted with nulls)
 *   8       4     element type OID
 *   12      4     number of elements
 *   16      4     lower bound: 1
 *   20      ...   per element: its length (-1: NULL), then its bytes
 */
#include "postgres/pg.h"
#include "util/util.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* ---- errors ---------------------------------------------------------------- */

void evs__pg_first_line(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src);
    char *nl = strchr(dst, '\n');
    if (nl)
        *nl = '\0';
    size_t len = strlen(dst);
    while (len && (dst[len - 1] == '\n' || dst[len - 1] == ' '))
        dst[--len] = '\0';
}

int evs__pg_conn_lost(PGconn *c)
{
    return !c || PQstatus(c) != CONNECTION_OK;
}

/*
 * SQLSTATE classes to evs codes: what the caller can act on (space,
 * memory, size) keeps its meaning; everything else is EVS_EBACKEND with
 * PostgreSQL's own message.
 */
static int map_sqlstate(const char *st)
{
    if (!st)
        return EVS_EBACKEND;
    if (strcmp(st, "53100") == 0) /* disk_full */
        return EVS_ENOSPC;
    if (strcmp(st, "53200") == 0) /* out_of_memory */
        return EVS_ENOMEM;
    if (strcmp(st, "54000") == 0 || strcmp(st, "22001") == 0) /* program_limit_exceeded */
        return EVS_ETOOBIG;
    if (strcmp(st, "25006") == 0) /* read_only_sql_transaction */
        return EVS_EREADONLY;
    return EVS_EBACKEND;
}

int evs__pg_fail(PGconn *c, PGresult *res, const char *what)
{
    char msg[768];
    const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *pm = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    /* libpq's connection messages run over several lines: keep the first */
    evs__pg_first_line(msg, sizeof(msg), pm ? pm : c ? PQerrorMessage(c) : "no connection");
    int rc = evs__pg_conn_lost(c) ? EVS_EBACKEND : map_sqlstate(st);
    rc = evs__err(rc, "%s: PostgreSQL: %s%s%s%s", what, msg[0] ? msg : "unknown error",
                  st ? " (SQLSTATE " : "", st ? st : "", st ? ")" : "");
    PQclear(res);
    return rc;
}

/* ---- parameters -------------------------------------------------------------- */

void evs__pgp_reset(evs__pgparams *p)
{
    p->n = 0;
}

void evs__pgp_free(evs__pgparams *p)
{
    for (int i = 0; i < EVS_PG_MAXPARAMS; i++) {
        free(p->arr[i].p);
        p->arr[i].p = NULL;
        p->arr[i].len = p->arr[i].cap = 0;
    }
    p->n = 0;
}

/* The next parameter's slot (more than EVS_PG_MAXPARAMS is a bug in the
 * caller, not an input error). */
static int next_slot(evs__pgparams *p)
{
    assert(p->n < EVS_PG_MAXPARAMS);
    return p->n++;
}

static void put(evs__pgparams *p, int i, const void *v, size_t len, int fmt)
{
    p->vals[i] = len ? v : "";
    p->lens[i] = (int)len;
    p->fmts[i] = fmt;
}

void evs__pgp_bytes(evs__pgparams *p, const void *v, size_t len)
{
    put(p, next_slot(p), v, len, 1);
}

void evs__pgp_text(evs__pgparams *p, const char *s)
{
    evs__pgp_bytes(p, s, strlen(s));
}

void evs__pgp_literal(evs__pgparams *p, const char *s)
{
    put(p, next_slot(p), s, strlen(s), 0);
}

void evs__pgp_i64(evs__pgparams *p, int64_t v)
{
    int i = next_slot(p);
    evs__put_be64(p->word[i], (uint64_t)v);
    put(p, i, p->word[i], 8, 1);
}

void evs__pgp_i32(evs__pgparams *p, int32_t v)
{
    int i = next_slot(p);
    evs__put_be32(p->word[i], (uint32_t)v);
    put(p, i, p->word[i], 4, 1);
}

void evs__pgp_bool(evs__pgparams *p, int v)
{
    int i = next_slot(p);
    p->word[i][0] = v ? 1 : 0;
    put(p, i, p->word[i], 1, 1);
}

void evs__pgp_borrow(evs__pgparams *p, const evs__pgparams *from, int i)
{
    int k = next_slot(p);
    p->vals[k] = from->vals[i];
    p->lens[k] = from->lens[i];
    p->fmts[k] = from->fmts[i];
}

size_t evs__pgp_size(const evs__pgparams *p)
{
    size_t total = 0;
    for (int i = 0; i < p->n; i++)
        total += (size_t)p->lens[i];
    return total;
}

/* ---- binary arrays ------------------------------------------------------------- */

int evs__pgarr_grow(evs__pgparams *p, int a, size_t more)
{
    evs__pgbuf *b = &p->arr[a];
    if (b->len + more <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more)
        cap *= 2;
    char *np = realloc(b->p, cap);
    if (!np)
        return evs__err(EVS_ENOMEM, "out of memory building a PostgreSQL parameter");
    b->p = np;
    b->cap = cap;
    return 0;
}

static void put32(char *at, uint32_t v)
{
    evs__put_be32((uint8_t *)at, v);
}

int evs__pgarr_begin(evs__pgparams *p, uint32_t elem_oid, size_t n)
{
    int a = next_slot(p), rc;
    evs__pgbuf *b = &p->arr[a];
    p->fmts[a] = 1;
    b->len = 0;
    if ((rc = evs__pgarr_grow(p, a, 20)) < 0)
        return rc;
    put32(b->p, n ? 1 : 0);
    put32(b->p + 4, 0);
    put32(b->p + 8, elem_oid);
    b->len = 12;
    if (n) {
        put32(b->p + 12, (uint32_t)n);
        put32(b->p + 16, 1);
        b->len = 20;
    }
    p->vals[a] = b->p;
    p->lens[a] = (int)b->len;
    return a;
}

int evs__pgarr_query_begin(evs__pgparams *p, size_t nitems, size_t ntypes, size_t ntags)
{
    int a = evs__pgarr_begin(p, EVS_OID_INT4, nitems), rc;
    if (a < 0)
        return a;
    if ((rc = evs__pgarr_begin(p, EVS_OID_INT4, nitems)) < 0 ||
        (rc = evs__pgarr_begin(p, EVS_OID_TEXT, ntypes)) < 0 ||
        (rc = evs__pgarr_begin(p, EVS_OID_TEXT, ntags)) < 0)
        return rc;
    return a;
}

int evs__pgarr_query(evs__pgparams *p, int a, const evs_query *q)
{
    int rc;
    for (size_t i = 0; i < q->nitems; i++) {
        const evs_query_item *it = &q->items[i];
        if ((rc = evs__pgarr_i32(p, a, (int32_t)it->ntypes)) < 0 ||
            (rc = evs__pgarr_i32(p, a + 1, (int32_t)it->ntags)) < 0)
            return rc;
        for (size_t t = 0; t < it->ntypes; t++)
            if ((rc = evs__pgarr_text(p, a + 2, it->types[t])) < 0)
                return rc;
        for (size_t t = 0; t < it->ntags; t++)
            if ((rc = evs__pgarr_text(p, a + 3, it->tags[t])) < 0)
                return rc;
    }
    return 0;
}

/* ---- results ------------------------------------------------------------------ */

int64_t evs__pg_i64(const char *p)
{
    return (int64_t)evs__get_be64((const uint8_t *)p);
}

long evs__pg_parse_i64_array(const char *text, int64_t *out, size_t n)
{
    if (!text || *text != '{')
        return -1;
    const char *p = text + 1;
    size_t k = 0;
    if (*p == '}')
        return 0;
    for (;;) {
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno)
            return -1;
        if (k < n)
            out[k] = v;
        k++;
        if (*end == ',') {
            p = end + 1;
            continue;
        }
        if (*end == '}')
            return (long)k;
        return -1;
    }
}

/* ---- statements ------------------------------------------------------------------ */

/* Prepared on every pooled connection (names used by pg_read.c and
 * pg_append.c). Stream reads say `stream <> ''` (stream names are never
 * empty) so that the partial index events_stream is provably usable: with
 * only `stream = s.name` (read_streams' join) or a generic plan's
 * `stream = $2` the planner cannot use it and scans the tenant's events
 * (docs/POSTGRES.md; the EXPLAIN section of `evs bench --db`). */
#define EV_COLS "e.position, e.stream_version, e.tenant, e.stream, e.type, e.id, " \
                "e.correlation_id, e.causation_id, e.recorded_at, e.content_type, " \
                "e.data, e.metadata, e.tags"
#define PAGE(inner) "SELECT h.position, " EV_COLS " FROM (SELECT position FROM evstore.head) h " \
                    "LEFT JOIN LATERAL (" inner ") e ON true"

static const struct {
    const char *name;
    const char *sql;
} statements[] = {
    {"evs_append",
     "SELECT status, versions, first_versions, first_positions, last_positions, conflicts, "
     "dup_index, dup_position FROM evstore.append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, "
     "$11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)"},
    /* $1 tenant, $2 stream, $3 version, $4 position bound, $5 limit */
    {"evs_read_stream_fwd",
     PAGE("SELECT * FROM evstore.events e WHERE e.tenant = $1 AND e.stream = $2 AND "
          "e.stream <> '' AND e.stream_version >= $3 AND e.position <= least(h.position, $4) "
          "ORDER BY e.stream_version LIMIT $5")},
    {"evs_read_stream_bwd",
     PAGE("SELECT * FROM evstore.events e WHERE e.tenant = $1 AND e.stream = $2 AND "
          "e.stream <> '' AND e.stream_version <= $3 AND e.position <= least(h.position, $4) "
          "ORDER BY e.stream_version DESC LIMIT $5")},
    /* $1 from position, $2 bound, $3 limit */
    {"evs_read_all",
     PAGE("SELECT * FROM evstore.events e WHERE NOT e.system AND e.position >= $1 AND "
          "e.position <= least(h.position, $2) ORDER BY e.position LIMIT $3")},
    /* evs_read_log: $all with the system streams' events; $1 from
     * position, $2 bound, $3 limit */
    {"evs_read_log",
     PAGE("SELECT * FROM evstore.events e WHERE e.position >= $1 AND "
          "e.position <= least(h.position, $2) ORDER BY e.position LIMIT $3")},
    /* $1 tenant, $2 from position, $3 bound, $4 limit (a range on tenant
     * as in evs_tenant_head was tried here and is worse: the planner
     * misestimates the range and sorts half the store) */
    {"evs_read_tenant",
     PAGE("SELECT * FROM evstore.events e WHERE e.tenant = $1 AND NOT e.system AND "
          "e.position >= $2 AND e.position <= least(h.position, $3) ORDER BY e.position "
          "LIMIT $4")},
    /* $1 tenant, $2 streams, $3 from versions, $4 bound, $5 limit */
    {"evs_read_streams",
     PAGE("SELECT ev.* FROM unnest($2::text[], $3::bigint[]) WITH ORDINALITY "
          "AS s(name, fromv, ord) JOIN evstore.events ev ON ev.tenant = $1 AND "
          "ev.stream = s.name AND ev.stream <> '' AND ev.stream_version >= s.fromv "
          "WHERE ev.position <= least(h.position, $4) ORDER BY s.ord, ev.stream_version "
          "LIMIT $5")},
    {"evs_read_query",
     "SELECT * FROM evstore.read_query($1, $2, $3, $4, $5, $6, $7, $8, $9)"},
    {"evs_stream_version",
     "SELECT version FROM evstore.streams WHERE tenant = $1 AND stream = $2"},
    {"evs_head", "SELECT position FROM evstore.head"},
    /* A tenant's head and tail say `tenant >= $1 AND tenant <= $1` (the
     * same rows: the column's collation is deterministic) and order by
     * (tenant, position): with `tenant = $1` the planner drops tenant from
     * the order and may walk events_pkey backward filtering on the tenant,
     * which statistics cannot price when the tenant's last events are far
     * from the head (seen: 147 ms behind 580 K events of other tenants,
     * `evs bench --db`, EXPLAIN section); only events_tenant gives this
     * order, and with LIMIT 1 it is the cheap path whatever the estimate. */
    {"evs_tenant_head",
     "SELECT (SELECT position FROM evstore.events WHERE tenant >= $1 AND tenant <= $1 AND "
     "NOT system ORDER BY tenant DESC, position DESC LIMIT 1)"},
    {"evs_tenant_tail",
     "SELECT (SELECT position FROM evstore.events WHERE tenant >= $1 AND tenant <= $1 AND "
     "NOT system ORDER BY tenant, position LIMIT 1)"},
    {"evs_event_position", "SELECT position FROM evstore.events WHERE id = $1"},
    {"evs_token_at",
     "SELECT coalesce((SELECT position - 1 FROM evstore.times WHERE recorded_at >= $1 "
     "ORDER BY recorded_at LIMIT 1), (SELECT position FROM evstore.head))"},
    {"evs_snapshot_save", "SELECT evstore.snapshot_save($1, $2, $3, $4, $5, $6, $7)"},
    /* evs_snapshot_list: the page after key ($1, $2, $3), in byte order */
    {"evs_snapshot_list",
     "SELECT tenant, stream, version, saved_at, schema, data FROM evstore.snapshots "
     "WHERE (tenant COLLATE \"C\", stream COLLATE \"C\", version) > "
     "($1::text COLLATE \"C\", $2::text COLLATE \"C\", $3) "
     "ORDER BY tenant COLLATE \"C\", stream COLLATE \"C\", version LIMIT 1000"},
    {"evs_snapshot_list_tenant",
     "SELECT tenant, stream, version, saved_at, schema, data FROM evstore.snapshots "
     "WHERE tenant = $1 AND (stream COLLATE \"C\", version) > ($2::text COLLATE \"C\", $3) "
     "ORDER BY stream COLLATE \"C\", version LIMIT 1000"},
    {"evs_snapshot_load",
     "SELECT version, saved_at, schema, data FROM evstore.snapshots WHERE tenant = $1 AND "
     "stream = $2 AND version <= $3 ORDER BY version DESC LIMIT 1"},
};

/* ---- DCB reads: one prepared statement per query shape ------------------------- */

/*
 * evstore.read_query() builds and plans its SQL on every call (plpgsql
 * EXECUTE); the same SELECT as a prepared statement skips the function,
 * the text building and, once the plan is cached, the planning. The
 * statement depends only on the query's shape -- its items, each with its
 * number of types and the kind of each tag (plain, $stream:, $category:)
 * -- and the direction; every type and tag is a parameter of its own, so
 * the planner sees the values (custom plans) and the GIN index and
 * events_type answer as they do for the function. Its name is made from
 * a hash of its text: a connection that lacks it prepares it on first use
 * (pg_read.c), so nothing has to be remembered per connection.
 */
static int sql_add(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int sql_add(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(*buf ? *buf + *len : NULL, *buf ? *cap - *len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return evs__err(EVS_ENOMEM, "building a DCB query's SQL");
        if (*buf && *len + (size_t)n < *cap) {
            *len += (size_t)n;
            return 0;
        }
        size_t ncap = *cap ? *cap * 2 : 1024;
        while (ncap <= *len + (size_t)n)
            ncap *= 2;
        char *nb = realloc(*buf, ncap);
        if (!nb)
            return evs__err(EVS_ENOMEM, "out of memory building a DCB query's SQL");
        *buf = nb;
        *cap = ncap;
    }
}

static int has_prefix(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

/* Does every item of q have a plain tag (one the GIN index answers)? */
static int tag_led(const evs_query *q)
{
    if (q->nitems == 0)
        return 0;
    for (size_t i = 0; i < q->nitems; i++) {
        int plain = 0;
        for (size_t t = 0; t < q->items[i].ntags && !plain; t++)
            plain = !has_prefix(q->items[i].tags[t], EVS_STREAM_TAG_PREFIX) &&
                    !has_prefix(q->items[i].tags[t], "$category:");
        if (!plain)
            return 0;
    }
    return 1;
}

int evs__pg_dcb_sql(char **sql, char name[EVS_PG_DCB_NAME], size_t *terms, int *prepared,
                    const evs_query *q, int backward)
{
    size_t nterms = 0;
    for (size_t i = 0; i < q->nitems; i++)
        nterms += q->items[i].ntypes + q->items[i].ntags;
    *sql = NULL;
    if (nterms > EVS_PG_MAXPARAMS - EVS_PG_DCB_FIXED)
        return 1;
    char *b = NULL;
    size_t len = 0, cap = 0;
    int k = EVS_PG_DCB_FIXED + 1, rc, all = q->nitems == 0, led = tag_led(q);
    for (size_t i = 0; i < q->nitems; i++)
        if (q->items[i].ntypes == 0 && q->items[i].ntags == 0)
            all = 1; /* an item of neither matches every event */
    /*
     * Not bounded by the head (h) inside: an event is visible exactly when
     * the head that counts it is (one transaction writes both), so within
     * the statement's snapshot every event is <= h anyway; and a reference
     * to h.position made the planner take the position range for a
     * selective one and AND a scan of events_pkey over the whole store
     * into every tag lookup (120 ms at 1 M events instead of 0.1 ms).
     *
     * Tag-led (every item has a plain tag): the GIN index is the only
     * index the statement can use -- tenant, position and type are
     * compared as expressions (`|| ''`, `+ 0`) no index matches -- and the
     * tags are hidden from the planner behind `(SELECT $k)`, so the plan
     * made with the values costs what the plan made without them costs,
     * and PostgreSQL keeps the generic plan after five executions: no
     * planning per query. (Without both, the generic plan walked
     * events_type filtering on the tag: 115-230 ms at 1 M events.)
     */
    const char *ten = led ? "e.tenant || ''" : "e.tenant";
    const char *pos = led ? "e.position + 0" : "e.position";
    if ((rc = sql_add(&b, &len, &cap,
                      "SELECT h.position, " EV_COLS " FROM (SELECT position FROM evstore.head) "
                      "h LEFT JOIN (SELECT * FROM evstore.events e WHERE %s = $1 AND NOT "
                      "e.system AND %s > $2 AND %s < $3 AND (", ten, pos, pos)) < 0)
        goto fail;
    for (size_t i = 0; i < q->nitems && !all; i++) {
        const evs_query_item *it = &q->items[i];
        const char *and = "";
        int first = k; /* this item's first parameter */
        if ((rc = sql_add(&b, &len, &cap, "%s(", i ? " OR " : "")) < 0)
            goto fail;
        if (it->ntypes) {
            if ((rc = sql_add(&b, &len, &cap, "%s IN (", led ? "e.type || ''" : "e.type")) < 0)
                goto fail;
            for (size_t t = 0; t < it->ntypes; t++)
                if ((rc = sql_add(&b, &len, &cap, "%s$%d", t ? ", " : "", k++)) < 0)
                    goto fail;
            if ((rc = sql_add(&b, &len, &cap, ")")) < 0)
                goto fail;
            and = " AND ";
        }
        for (size_t t = 0; t < it->ntags; t++, k++) {
            const char *tag = it->tags[t];
            if (has_prefix(tag, EVS_STREAM_TAG_PREFIX))
                rc = sql_add(&b, &len, &cap, "%se.stream = $%d AND e.stream <> ''", and, k);
            else if (has_prefix(tag, "$category:"))
                rc = sql_add(&b, &len, &cap,
                             "%se.stream <> '' AND split_part(e.stream, '-', 1) = $%d", and, k);
            else
                continue;
            if (rc < 0)
                goto fail;
            and = " AND ";
        }
        int plain = 0;
        for (size_t t = 0; t < it->ntags; t++) {
            const char *tag = it->tags[t];
            if (has_prefix(tag, EVS_STREAM_TAG_PREFIX) || has_prefix(tag, "$category:"))
                continue;
            int pk = first + (int)(it->ntypes + t);
            if ((rc = plain ? sql_add(&b, &len, &cap, ", ")
                            : sql_add(&b, &len, &cap, "%scardinality(e.tags) > 0 AND "
                                      "e.tags @> ARRAY[", and)) < 0 ||
                (rc = sql_add(&b, &len, &cap, led ? "(SELECT $%d)" : "$%d", pk)) < 0)
                goto fail;
            plain = 1;
        }
        if (plain && (rc = sql_add(&b, &len, &cap, "]::text[]")) < 0)
            goto fail;
        if ((rc = sql_add(&b, &len, &cap, ")")) < 0)
            goto fail;
    }
    if ((rc = sql_add(&b, &len, &cap, "%s) ORDER BY e.position %s LIMIT $4) e ON true",
                      all ? "true" : "", backward ? "DESC" : "ASC")) < 0)
        goto fail;
    *terms = all ? 0 : nterms;
    *prepared = led;
    snprintf(name, EVS_PG_DCB_NAME, "evs_q%016llx",
             (unsigned long long)XXH3_64bits(b, len));
    *sql = b;
    return 0;
fail:
    free(b);
    return rc;
}

void evs__pg_dcb_types(Oid *types, int n)
{
    for (int i = 0; i < n; i++)
        types[i] = i == 0 || i >= EVS_PG_DCB_FIXED ? EVS_OID_TEXT : EVS_OID_INT8;
}

/* Parameter types of evs_append, in pg_append.c's order (binary arrays
 * need their types known). */
static const Oid append_types[EVS_PG_MAXPARAMS] = {
    EVS_OID_TEXT, EVS_OID_TEXT_ARR, EVS_OID_INT8_ARR, EVS_OID_INT4_ARR,
    EVS_OID_INT4_ARR, EVS_OID_UUID_ARR, EVS_OID_BOOL_ARR, EVS_OID_TEXT_ARR,
    EVS_OID_INT2_ARR, EVS_OID_BYTEA_ARR, EVS_OID_BYTEA_ARR, EVS_OID_INT4_ARR,
    EVS_OID_INT4_ARR, EVS_OID_TEXT_ARR, EVS_OID_UUID_ARR, EVS_OID_UUID_ARR,
    EVS_OID_INT8_ARR, EVS_OID_INT8_ARR, EVS_OID_INT4_ARR, EVS_OID_INT4_ARR,
    EVS_OID_INT4_ARR, EVS_OID_TEXT_ARR, EVS_OID_TEXT_ARR,
};

const char *evs__pg_statement(const char *name)
{
    for (size_t i = 0; i < sizeof(statements) / sizeof(statements[0]); i++)
        if (strcmp(statements[i].name, name) == 0)
            return statements[i].sql;
    return NULL;
}

int evs__pg_prepare_all(PGconn *c)
{
    for (size_t i = 0; i < sizeof(statements) / sizeof(statements[0]); i++) {
        int is_append = strcmp(statements[i].name, "evs_append") == 0;
        PGresult *r = PQprepare(c, statements[i].name, statements[i].sql,
                                is_append ? EVS_PG_MAXPARAMS : 0,
                                is_append ? append_types : NULL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            char what[128];
            snprintf(what, sizeof(what), "preparing %s", statements[i].name);
            return evs__pg_fail(c, r, what);
        }
        PQclear(r);
    }
    return 0;
}

/* ---- running statements ---------------------------------------------------------- */

PGresult *evs__pg_exec_prepared(PGconn *c, const char *stmt, const evs__pgparams *p,
                                int binary)
{
    return PQexecPrepared(c, stmt, p ? p->n : 0, p ? p->vals : NULL, p ? p->lens : NULL,
                          p ? p->fmts : NULL, binary);
}

int evs__pg_send_prepared(PGconn *c, const char *stmt, const evs__pgparams *p)
{
    return PQsendQueryPrepared(c, stmt, p->n, p->vals, p->lens, p->fmts, 0);
}

/* A statement's answer: 0 with its rows in *res (or dropped when res is
 * NULL), or the error. */
static int answer(PGconn *c, PGresult *r, PGresult **res, const char *what)
{
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
        return evs__pg_fail(c, r, what);
    if (res)
        *res = r;
    else
        PQclear(r);
    return 0;
}

int evs__pg_exec(PGconn *c, const char *sql, PGresult **res, const char *what)
{
    if (res)
        *res = NULL;
    return answer(c, PQexec(c, sql), res, what);
}

int evs__pg_query(PGconn *c, const char *stmt, const evs__pgparams *p, int binary,
                  PGresult **res, const char *what)
{
    if (res)
        *res = NULL;
    return answer(c, evs__pg_exec_prepared(c, stmt, p, binary), res, what);
}

int evs__pg_query_sql(PGconn *c, const char *sql, const evs__pgparams *p, PGresult **res,
                      const char *what)
{
    if (res)
        *res = NULL;
    PGresult *r = PQexecParams(c, sql, p ? p->n : 0, NULL, p ? p->vals : NULL,
                               p ? p->lens : NULL, p ? p->fmts : NULL, 0);
    return answer(c, r, res, what);
}
