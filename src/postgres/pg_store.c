/*
 * pg_store.c -- the PostgreSQL backend: open/close, the connection pool,
 * migrations, the schema check, error translation.
 *
 * Every object lives in the schema `evstore`, so another application's
 * `public.events` is never touched. On a read-write open:
 *
 *   connect ─▶ pg_advisory_lock(migrations) ─▶ schema absent? create it
 *   (with evstore.schema_migrations) if EVS_OPEN_CREATE ─▶ refuse a newer
 *   recorded version, or a changed checksum ─▶ apply each missing
 *   migration in its own transaction ─▶ unlock ─▶ check the schema
 *   against the table in this file
 *
 * A read-only open applies nothing and refuses a schema that is not
 * exactly the current one.
 */
#include "postgres/pg.h"
#include "util/util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

/* Any constant: the key of the advisory lock that serialises migrations. */
#define EVS_PG_MIGRATION_LOCK 0x6576736d6967LL /* "evsmig" */

static int pg_close(evs_db *db);

static const evs__backend_ops pg_ops = {
    .name = "postgresql",
    .append = evs__pg_append,
    .read_stream = evs__pg_read_stream,
    .read_all = evs__pg_read_all,
    .read_query = evs__pg_read_query,
    .read_streams = evs__pg_read_streams,
    .iter_next = evs__pg_iter_next,
    .iter_marker = evs__pg_iter_marker,
    .iter_free = evs__pg_iter_free,
    .stream_version = evs__pg_stream_version,
    .head_position = evs__pg_head,
    .stats = evs__pg_stats,
    .read_tracking = evs__pg_read_tracking,
    .wake_readers = evs__pg_wake_readers,
    .event_position = evs__pg_event_position,
    .token_tail = evs__pg_token_tail,
    .token_at = evs__pg_token_at,
    .snapshot_save = evs__pg_snapshot_save,
    .snapshot_load = evs__pg_snapshot_load,
    .verify = evs__pg_verify,
    .close = pg_close,
};

/* ---- errors ---------------------------------------------------------------- */

static void chomp(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = '\0';
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
    if (pm)
        snprintf(msg, sizeof(msg), "%s", pm);
    else
        snprintf(msg, sizeof(msg), "%s", c ? PQerrorMessage(c) : "no connection");
    /* libpq's connection messages run over several lines: keep the first */
    char *nl = strchr(msg, '\n');
    if (nl)
        *nl = '\0';
    chomp(msg);
    int rc = evs__pg_conn_lost(c) ? EVS_EBACKEND : map_sqlstate(st);
    rc = evs__err(rc, "%s: PostgreSQL: %s%s%s%s", what, msg[0] ? msg : "unknown error",
                  st ? " (SQLSTATE " : "", st ? st : "", st ? ")" : "");
    PQclear(res);
    return rc;
}

/* ---- binary parameters ------------------------------------------------------ */

int evs__pgbuf_reserve(evs__pgbuf *b, size_t more)
{
    if (b->len + more <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
        return evs__err(EVS_ENOMEM, "out of memory building a PostgreSQL parameter");
    b->p = p;
    b->cap = cap;
    return 0;
}

void evs__pgbuf_free(evs__pgbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

static void put32(char *p, uint32_t v)
{
    evs__put_be32((uint8_t *)p, v);
}

int evs__pgarr_begin(evs__pgbuf *b, uint32_t elem_oid, size_t n)
{
    int rc;
    b->len = 0;
    if ((rc = evs__pgbuf_reserve(b, 20)) < 0)
        return rc;
    /* ndim, has-nulls flag (advisory: 0 is accepted with nulls), element
     * type, then per dimension: size and lower bound */
    put32(b->p, n ? 1 : 0);
    put32(b->p + 4, 0);
    put32(b->p + 8, elem_oid);
    b->len = 12;
    if (n) {
        put32(b->p + 12, (uint32_t)n);
        put32(b->p + 16, 1);
        b->len = 20;
    }
    return 0;
}

int evs__pgarr_bytes(evs__pgbuf *b, const void *p, size_t len)
{
    int rc;
    if ((rc = evs__pgbuf_reserve(b, 4 + len)) < 0)
        return rc;
    put32(b->p + b->len, (uint32_t)len);
    if (len)
        memcpy(b->p + b->len + 4, p, len);
    b->len += 4 + len;
    return 0;
}

int evs__pgarr_null(evs__pgbuf *b)
{
    int rc;
    if ((rc = evs__pgbuf_reserve(b, 4)) < 0)
        return rc;
    put32(b->p + b->len, UINT32_MAX);
    b->len += 4;
    return 0;
}

int evs__pgarr_i64(evs__pgbuf *b, int64_t v)
{
    uint8_t x[8];
    evs__put_be64(x, (uint64_t)v);
    return evs__pgarr_bytes(b, x, 8);
}

int evs__pgarr_i32(evs__pgbuf *b, int32_t v)
{
    uint8_t x[4];
    evs__put_be32(x, (uint32_t)v);
    return evs__pgarr_bytes(b, x, 4);
}

int evs__pgarr_i16(evs__pgbuf *b, int16_t v)
{
    uint8_t x[2] = {(uint8_t)((uint16_t)v >> 8), (uint8_t)v};
    return evs__pgarr_bytes(b, x, 2);
}

int evs__pgarr_bool(evs__pgbuf *b, int v)
{
    uint8_t x = v ? 1 : 0;
    return evs__pgarr_bytes(b, &x, 1);
}

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

/* ---- connections ------------------------------------------------------------ */

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
    {"evs_snapshot_load",
     "SELECT version, saved_at, schema, data FROM evstore.snapshots WHERE tenant = $1 AND "
     "stream = $2 AND version <= $3 ORDER BY version DESC LIMIT 1"},
};

const char *evs__pg_statement(const char *name)
{
    for (size_t i = 0; i < sizeof(statements) / sizeof(statements[0]); i++)
        if (strcmp(statements[i].name, name) == 0)
            return statements[i].sql;
    return NULL;
}

/* Parameter types of evs_append (binary arrays need their types known). */
static const Oid append_types[23] = {
    EVS_OID_TEXT, EVS_OID_TEXT_ARR, EVS_OID_INT8_ARR, EVS_OID_INT4_ARR,
    EVS_OID_INT4_ARR, EVS_OID_UUID_ARR, EVS_OID_BOOL_ARR, EVS_OID_TEXT_ARR,
    EVS_OID_INT2_ARR, EVS_OID_BYTEA_ARR, EVS_OID_BYTEA_ARR, EVS_OID_INT4_ARR,
    EVS_OID_INT4_ARR, EVS_OID_TEXT_ARR, EVS_OID_UUID_ARR, EVS_OID_UUID_ARR,
    EVS_OID_INT8_ARR, EVS_OID_INT8_ARR, EVS_OID_INT4_ARR, EVS_OID_INT4_ARR,
    EVS_OID_INT4_ARR, EVS_OID_TEXT_ARR, EVS_OID_TEXT_ARR,
};

static int prepare_all(PGconn *c)
{
    for (size_t i = 0; i < sizeof(statements) / sizeof(statements[0]); i++) {
        int is_append = strcmp(statements[i].name, "evs_append") == 0;
        PGresult *r = PQprepare(c, statements[i].name, statements[i].sql,
                                is_append ? 23 : 0, is_append ? append_types : NULL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            char what[128];
            snprintf(what, sizeof(what), "preparing %s", statements[i].name);
            return evs__pg_fail(c, r, what);
        }
        PQclear(r);
    }
    return 0;
}

static int exec_cmd(PGconn *c, const char *sql, const char *what)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        return evs__pg_fail(c, r, what);
    PQclear(r);
    return 0;
}

/* The library never prints: server notices and warnings are dropped. */
static void quiet(void *arg, const PGresult *res)
{
}

int evs__pg_connect(evs__pg *s, PGconn **out)
{
    *out = NULL;
    PGconn *c = PQconnectdb(s->uri);
    if (!c)
        return evs__err(EVS_ENOMEM, "out of memory connecting to PostgreSQL");
    if (PQstatus(c) != CONNECTION_OK) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", PQerrorMessage(c));
        char *nl = strchr(msg, '\n'); /* libpq adds a hint line: keep the first */
        if (nl)
            *nl = '\0';
        chomp(msg);
        PQfinish(c);
        return evs__err(EVS_EBACKEND, "cannot connect to PostgreSQL: %s", msg);
    }
    PQsetNoticeReceiver(c, quiet, NULL);
    /* Appends rely on READ COMMITTED (a fresh snapshot per statement after
     * the head lock); a database default of another level must not apply.
     * No JIT: every statement here is short, and a misestimated one (stale
     * statistics after a bulk load) was seen spending 160 ms compiling a
     * 1000-row page (`evs bench --db`, EXPLAIN section). */
    int rc = exec_cmd(c, s->readonly
                             ? "SET default_transaction_isolation = 'read committed'; "
                               "SET default_transaction_read_only = on; "
                               "SET client_min_messages = warning; SET jit = off"
                             : "SET default_transaction_isolation = 'read committed'; "
                               "SET synchronous_commit = on; "
                               "SET client_min_messages = warning; SET jit = off",
                      "session setup");
    if (rc < 0) {
        PQfinish(c);
        return rc;
    }
    *out = c;
    return 0;
}

int evs__pg_get(evs__pg *s, evs__pgconn **out)
{
    int rc;
    pthread_mutex_lock(&s->pool_lock);
    for (;;) {
        for (int i = 0; i < s->pool_made; i++)
            if (!s->pool[i].in_use && s->pool[i].c) {
                s->pool[i].in_use = 1;
                pthread_mutex_unlock(&s->pool_lock);
                *out = &s->pool[i];
                return 0;
            }
        /* a free slot (never made, or dropped after a failure) */
        for (int i = 0; i < EVS_PG_POOL_MAX; i++)
            if (!s->pool[i].in_use && !s->pool[i].c) {
                s->pool[i].in_use = 1;
                if (i >= s->pool_made)
                    s->pool_made = i + 1;
                pthread_mutex_unlock(&s->pool_lock);
                PGconn *c;
                if ((rc = evs__pg_connect(s, &c)) == 0 && (rc = prepare_all(c)) < 0)
                    PQfinish(c);
                if (rc < 0) {
                    pthread_mutex_lock(&s->pool_lock);
                    s->pool[i].in_use = 0;
                    pthread_cond_signal(&s->pool_cond);
                    pthread_mutex_unlock(&s->pool_lock);
                    return rc;
                }
                s->pool[i].c = c;
                *out = &s->pool[i];
                return 0;
            }
        pthread_cond_wait(&s->pool_cond, &s->pool_lock);
    }
}

void evs__pg_put(evs__pg *s, evs__pgconn *pc)
{
    if (!pc)
        return;
    PGconn *drop = NULL;
    pthread_mutex_lock(&s->pool_lock);
    /* a broken session, or one left inside a transaction, is not reused */
    if (pc->c && (PQstatus(pc->c) != CONNECTION_OK ||
                  PQtransactionStatus(pc->c) != PQTRANS_IDLE)) {
        drop = pc->c;
        pc->c = NULL;
    }
    pc->in_use = 0;
    pthread_cond_signal(&s->pool_cond);
    pthread_mutex_unlock(&s->pool_lock);
    if (drop)
        PQfinish(drop);
}

/* ---- the expected schema ---------------------------------------------------- */

/*
 * What the migrations build, written down a second time on purpose: the
 * check below compares the live catalog with it on every open, and the
 * tests compare it with a freshly migrated database, so a migration that
 * forgets a column (or an edited database) is caught by name instead of
 * failing later in some query.
 */
typedef struct col_spec {
    const char *table, *column, *type;
    int not_null;
} col_spec;

static const col_spec expected_cols[] = {
    {"events", "position", "bigint", 1},
    {"events", "tenant", "text", 1},
    {"events", "stream", "text", 1},
    {"events", "stream_version", "bigint", 1},
    {"events", "id", "uuid", 1},
    {"events", "type", "text", 1},
    {"events", "content_type", "smallint", 1},
    {"events", "data", "bytea", 1},
    {"events", "metadata", "bytea", 1},
    {"events", "tags", "text[]", 1},
    {"events", "correlation_id", "uuid", 0},
    {"events", "causation_id", "uuid", 0},
    {"events", "recorded_at", "bigint", 1},
    {"events", "system", "boolean", 1},
    {"head", "one", "boolean", 1},
    {"head", "position", "bigint", 1},
    {"head", "last_stamp", "bigint", 1},
    {"head", "max_recorded_at", "bigint", 1},
    {"schema_migrations", "version", "integer", 1},
    {"schema_migrations", "name", "text", 0},
    {"schema_migrations", "checksum", "text", 0},
    {"schema_migrations", "applied_at", "timestamp with time zone", 0},
    {"snapshots", "tenant", "text", 1},
    {"snapshots", "stream", "text", 1},
    {"snapshots", "version", "bigint", 1},
    {"snapshots", "saved_at", "bigint", 1},
    {"snapshots", "schema", "text", 1},
    {"snapshots", "data", "bytea", 1},
    {"streams", "tenant", "text", 1},
    {"streams", "stream", "text", 1},
    {"streams", "version", "bigint", 1},
    {"tenants", "tenant", "text", 1},
    {"times", "recorded_at", "bigint", 1},
    {"times", "position", "bigint", 1},
};

static const char *const expected_indexes[] = {
    "events_category", "events_id_key", "events_pkey", "events_stream", "events_tags",
    "events_tenant", "events_type", "head_pkey", "schema_migrations_pkey",
    "snapshots_pkey", "streams_pkey", "tenants_pkey", "times_pkey",
};

static const char *const expected_functions[] = {
    "append", "query_pred", "read_query", "snapshot_save",
};

static int drift(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int drift(char *err, size_t n, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (err && n)
        snprintf(err, n, "%s", msg);
    return evs__err(EVS_EBACKEND, "%s", msg);
}

/* Sorted lists of names compared: the first missing or extra one. */
static int compare_names(PGconn *c, const char *sql, const char *const *want, size_t nwant,
                         const char *what, char *err, size_t n)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = evs__pg_fail(c, r, "schema check");
        if (err && n)
            snprintf(err, n, "%s", evs_last_error());
        return rc;
    }
    int rows = PQntuples(r), rc = 0;
    size_t i = 0;
    int j = 0;
    while (rc == 0 && (i < nwant || j < rows)) {
        int cmp = i >= nwant ? 1 : j >= rows ? -1 : strcmp(want[i], PQgetvalue(r, j, 0));
        if (cmp < 0)
            rc = drift(err, n, "the evstore schema has drifted: %s %s is missing", what,
                       want[i]);
        else if (cmp > 0)
            rc = drift(err, n, "the evstore schema has drifted: unexpected %s %s", what,
                       PQgetvalue(r, j, 0));
        i++;
        j++;
    }
    PQclear(r);
    return rc;
}

int evs__pg_check_schema(PGconn *c, char *err, size_t n)
{
    size_t ncols = sizeof(expected_cols) / sizeof(expected_cols[0]);
    if (err && n)
        err[0] = '\0';
    PGresult *r = PQexec(c,
        "SELECT cl.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull "
        "FROM pg_attribute a JOIN pg_class cl ON cl.oid = a.attrelid "
        "JOIN pg_namespace ns ON ns.oid = cl.relnamespace "
        "WHERE ns.nspname = 'evstore' AND cl.relkind IN ('r', 'p') AND a.attnum > 0 "
        "AND NOT a.attisdropped ORDER BY cl.relname::text COLLATE \"C\", a.attname::text "
        "COLLATE \"C\"");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = evs__pg_fail(c, r, "schema check");
        if (err && n)
            snprintf(err, n, "%s", evs_last_error());
        return rc;
    }
    int rows = PQntuples(r), rc = 0;
    for (size_t i = 0; i < ncols && rc == 0; i++) {
        const col_spec *w = &expected_cols[i];
        int found = -1;
        for (int j = 0; j < rows; j++)
            if (strcmp(PQgetvalue(r, j, 0), w->table) == 0 &&
                strcmp(PQgetvalue(r, j, 1), w->column) == 0)
                found = j;
        if (found < 0) {
            int table = 0;
            for (int j = 0; j < rows; j++)
                table |= strcmp(PQgetvalue(r, j, 0), w->table) == 0;
            rc = table ? drift(err, n, "the evstore schema has drifted: column "
                               "evstore.%s.%s is missing", w->table, w->column)
                       : drift(err, n, "the evstore schema has drifted: table evstore.%s "
                               "is missing", w->table);
        } else if (strcmp(PQgetvalue(r, found, 2), w->type) != 0) {
            rc = drift(err, n, "the evstore schema has drifted: column evstore.%s.%s is "
                       "%s, expected %s", w->table, w->column, PQgetvalue(r, found, 2),
                       w->type);
        } else if ((PQgetvalue(r, found, 3)[0] == 't') != w->not_null) {
            rc = drift(err, n, "the evstore schema has drifted: column evstore.%s.%s "
                       "should be %s", w->table, w->column,
                       w->not_null ? "NOT NULL" : "nullable");
        }
    }
    for (int j = 0; j < rows && rc == 0; j++) {
        size_t i = 0;
        for (; i < ncols; i++)
            if (strcmp(PQgetvalue(r, j, 0), expected_cols[i].table) == 0 &&
                strcmp(PQgetvalue(r, j, 1), expected_cols[i].column) == 0)
                break;
        if (i == ncols)
            rc = drift(err, n, "the evstore schema has drifted: unexpected column "
                       "evstore.%s.%s (%s)", PQgetvalue(r, j, 0), PQgetvalue(r, j, 1),
                       PQgetvalue(r, j, 2));
    }
    PQclear(r);
    if (rc == 0)
        rc = compare_names(c,
            "SELECT cl.relname FROM pg_index i JOIN pg_class cl ON cl.oid = i.indexrelid "
            "JOIN pg_namespace ns ON ns.oid = cl.relnamespace WHERE ns.nspname = 'evstore' "
            "ORDER BY cl.relname::text COLLATE \"C\"",
            expected_indexes, sizeof(expected_indexes) / sizeof(expected_indexes[0]),
            "index", err, n);
    if (rc == 0)
        rc = compare_names(c,
            "SELECT DISTINCT p.proname::text COLLATE \"C\" FROM pg_proc p JOIN pg_namespace "
            "ns ON ns.oid = p.pronamespace WHERE ns.nspname = 'evstore' ORDER BY 1",
            expected_functions, sizeof(expected_functions) / sizeof(expected_functions[0]),
            "function", err, n);
    return rc;
}

/* ---- migrations --------------------------------------------------------------- */

static void checksum_of(char out[17], const char *sql)
{
    snprintf(out, 17, "%016" PRIx64, (uint64_t)XXH3_64bits(sql, strlen(sql)));
}

/* Does the schema exist, and does it have our migrations table? */
static int schema_state(PGconn *c, int *schema, int *table)
{
    PGresult *r = PQexec(c,
        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'evstore'), "
        "to_regclass('evstore.schema_migrations') IS NOT NULL");
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return evs__pg_fail(c, r, "open");
    *schema = PQgetvalue(r, 0, 0)[0] == 't';
    *table = PQgetvalue(r, 0, 1)[0] == 't';
    PQclear(r);
    return 0;
}

/*
 * Recorded migrations against the shipped ones: *applied = how many of
 * ours are recorded (always a prefix). A recorded version we do not
 * know, or a checksum that differs, is refused.
 */
static int recorded(PGconn *c, size_t *applied)
{
    int maxv = evs__pg_migrations[evs__pg_nmigrations - 1].version;
    *applied = 0;
    PGresult *r = PQexec(c, "SELECT version, checksum FROM evstore.schema_migrations "
                            "ORDER BY version");
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return evs__pg_fail(c, r, "open: reading evstore.schema_migrations");
    int rc = 0;
    for (int j = 0; j < PQntuples(r) && rc == 0; j++) {
        int v = atoi(PQgetvalue(r, j, 0));
        if (v > maxv) {
            rc = evs__err(EVS_EBACKEND, "schema version %d is newer than this library's "
                          "%d; upgrade evstore", v, maxv);
            break;
        }
        size_t k = (size_t)j;
        if (k >= evs__pg_nmigrations || evs__pg_migrations[k].version != v) {
            rc = evs__err(EVS_EBACKEND, "evstore.schema_migrations records version %d, "
                          "which this library does not have at that place; the schema "
                          "was not built by evstore's migrations", v);
            break;
        }
        char sum[17];
        checksum_of(sum, evs__pg_migrations[k].sql);
        if (strcmp(sum, PQgetvalue(r, j, 1)) != 0) {
            rc = evs__err(EVS_EBACKEND, "migration %s was applied with checksum %s, but "
                          "this library's text has %s: the migration was edited after it "
                          "was applied", evs__pg_migrations[k].name, PQgetvalue(r, j, 1),
                          sum);
            break;
        }
        *applied = k + 1;
    }
    PQclear(r);
    return rc;
}

static int apply_one(PGconn *c, const evs__pg_migration *m)
{
    char sum[17], ver[16];
    int rc;
    checksum_of(sum, m->sql);
    snprintf(ver, sizeof(ver), "%d", m->version);
    if ((rc = exec_cmd(c, "BEGIN", "migration")) < 0)
        return rc;
    PGresult *r = PQexec(c, m->sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        char what[128];
        snprintf(what, sizeof(what), "applying migration %s", m->name);
        rc = evs__pg_fail(c, r, what);
        PQclear(PQexec(c, "ROLLBACK"));
        return rc;
    }
    PQclear(r);
    const char *vals[3] = {ver, m->name, sum};
    r = PQexecParams(c, "INSERT INTO evstore.schema_migrations VALUES ($1::int, $2, $3, now())",
                     3, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        rc = evs__pg_fail(c, r, "recording a migration");
        PQclear(PQexec(c, "ROLLBACK"));
        return rc;
    }
    PQclear(r);
    return exec_cmd(c, "COMMIT", "migration");
}

static int migrate(evs__pg *s, PGconn *c, int create)
{
    int rc, schema, table;
    size_t applied;
    char q[128];
    snprintf(q, sizeof(q), "SELECT pg_advisory_lock(%lld)", (long long)EVS_PG_MIGRATION_LOCK);
    if ((rc = exec_cmd(c, q, "open: taking the migration lock")) < 0)
        return rc;
    if ((rc = schema_state(c, &schema, &table)) < 0)
        goto out;
    if (schema && !table) {
        rc = evs__err(EVS_EBACKEND, "schema \"evstore\" exists but has no "
                      "evstore.schema_migrations table: not an evstore schema; refusing "
                      "to touch it");
        goto out;
    }
    if (!schema) {
        if (!create) {
            rc = evs__err(EVS_EINVAL, "no evstore store in this database (no schema "
                          "\"evstore\"; open it with EVS_OPEN_CREATE to create one)");
            goto out;
        }
        if ((rc = exec_cmd(c, "BEGIN; CREATE SCHEMA evstore; "
                              "CREATE TABLE evstore.schema_migrations (version int PRIMARY "
                              "KEY, name text, checksum text, applied_at timestamptz); "
                              "COMMIT", "creating schema evstore")) < 0) {
            PQclear(PQexec(c, "ROLLBACK"));
            goto out;
        }
    }
    if ((rc = recorded(c, &applied)) < 0)
        goto out;
    for (size_t i = applied; i < evs__pg_nmigrations && rc == 0; i++)
        rc = apply_one(c, &evs__pg_migrations[i]);
out:;
    char keep[1024];
    snprintf(keep, sizeof(keep), "%s", evs_last_error());
    snprintf(q, sizeof(q), "SELECT pg_advisory_unlock(%lld)", (long long)EVS_PG_MIGRATION_LOCK);
    PQclear(PQexec(c, q));
    if (rc < 0)
        evs__set_error_text(keep);
    return rc;
}

static int check_readonly(PGconn *c)
{
    int rc, schema, table;
    size_t applied;
    if ((rc = schema_state(c, &schema, &table)) < 0)
        return rc;
    if (!schema)
        return evs__err(EVS_EINVAL, "no evstore store in this database (no schema "
                        "\"evstore\")");
    if (!table)
        return evs__err(EVS_EBACKEND, "schema \"evstore\" exists but has no "
                        "evstore.schema_migrations table: not an evstore schema");
    if ((rc = recorded(c, &applied)) < 0)
        return rc;
    if (applied < evs__pg_nmigrations)
        return evs__err(EVS_EBACKEND, "schema version %d is older than this library's %d "
                        "and a read-only open does not migrate; open it read-write once",
                        applied ? evs__pg_migrations[applied - 1].version : 0,
                        evs__pg_migrations[evs__pg_nmigrations - 1].version);
    return 0;
}

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
    pthread_mutex_init(&s->pool_lock, NULL);
    pthread_cond_init(&s->pool_cond, NULL);
    pthread_mutex_init(&s->qlock, NULL);
    pthread_cond_init(&s->qidle, NULL);
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
    rc = s->readonly ? check_readonly(c)
                     : migrate(s, c, (opts->flags & EVS_OPEN_CREATE) != 0);
    if (rc < 0)
        goto fail;
    if ((rc = evs__pg_check_schema(c, NULL, 0)) < 0)
        goto fail;
    if ((rc = prepare_all(c)) < 0)
        goto fail;
    /* the open's connection becomes the pool's first */
    s->pool[0].c = c;
    s->pool_made = 1;
    c = NULL;
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
     * leader is using a pooled connection and the queue's mutex), later
     * ones are refused. */
    pthread_mutex_lock(&s->qlock);
    s->closing = 1;
    while (s->busy)
        pthread_cond_wait(&s->qidle, &s->qlock);
    pthread_mutex_unlock(&s->qlock);
    evs__pg_listener_stop(s);
    for (int i = 0; i < EVS_PG_POOL_MAX; i++)
        if (s->pool[i].c)
            PQfinish(s->pool[i].c);
    pthread_mutex_destroy(&s->pool_lock);
    pthread_cond_destroy(&s->pool_cond);
    pthread_mutex_destroy(&s->qlock);
    pthread_cond_destroy(&s->qidle);
    pthread_mutex_destroy(&s->nlock);
    pthread_cond_destroy(&s->ncond);
    free(s->uri);
    free(s);
    return 0;
}
