/*
 * pg_schema.c -- the schema `evstore`: the migrations that build it, and
 * the check that it is what this code expects.
 *
 * Every object lives in the schema `evstore`, so another application's
 * `public.events` is never touched. On a read-write open:
 *
 *   pg_advisory_lock(migrations) ─▶ schema absent? create it (with
 *   evstore.schema_migrations) if EVS_OPEN_CREATE ─▶ refuse a newer
 *   recorded version, or a changed checksum ─▶ apply each missing
 *   migration in its own transaction ─▶ unlock ─▶ check the schema
 *   against the tables below
 *
 * A read-only open applies nothing and refuses a schema that is not
 * exactly the current one. The migrations are the files
 * src/postgres/migrations/NNNN_name.sql, embedded at build time
 * (embed_migrations.cmake): the text applied is the text in the
 * repository, and its checksum catches a migration edited after it was
 * applied.
 */
#include "postgres/pg.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* Any constant: the key of the advisory lock that serialises migrations. */
#define EVS_PG_MIGRATION_LOCK 0x6576736d6967LL /* "evsmig" */

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
    {"subject_keys", "tenant", "text", 1},   /* 0005: crypto-shredding */
    {"subject_keys", "subject", "text", 1},
    {"subject_keys", "key", "bytea", 0},
    {"subject_keys", "created_at", "timestamp with time zone", 1},
    {"subject_keys", "forgotten_at", "timestamp with time zone", 0},
    {"tenants", "tenant", "text", 1},
    {"times", "recorded_at", "bigint", 1},
    {"times", "position", "bigint", 1},
};

static const char *const expected_indexes[] = {
    "events_category", "events_id_key", "events_pkey", "events_stream", "events_tags",
    "events_tenant", "events_type", "head_pkey", "schema_migrations_pkey",
    "snapshots_pkey", "streams_pkey", "subject_keys_pkey", "tenants_pkey", "times_pkey",
};

static const char *const expected_functions[] = {
    "append", "query_pred", "read_query", "snapshot_save",
};

/* Tables and columns: each expected one present, with its type and
 * nullability, and no other. */
static int check_columns(PGconn *c)
{
    size_t ncols = sizeof(expected_cols) / sizeof(expected_cols[0]);
    PGresult *r;
    int rc = evs__pg_exec(c,
        "SELECT cl.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull "
        "FROM pg_attribute a JOIN pg_class cl ON cl.oid = a.attrelid "
        "JOIN pg_namespace ns ON ns.oid = cl.relnamespace "
        "WHERE ns.nspname = 'evstore' AND cl.relkind IN ('r', 'p') AND a.attnum > 0 "
        "AND NOT a.attisdropped ORDER BY cl.relname::text COLLATE \"C\", a.attname::text "
        "COLLATE \"C\"", &r, "schema check");
    if (rc < 0)
        return rc;
    int rows = PQntuples(r);
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
            rc = table ? evs__err(EVS_EBACKEND, "the evstore schema has drifted: column "
                                  "evstore.%s.%s is missing", w->table, w->column)
                       : evs__err(EVS_EBACKEND, "the evstore schema has drifted: table "
                                  "evstore.%s is missing", w->table);
        } else if (strcmp(PQgetvalue(r, found, 2), w->type) != 0) {
            rc = evs__err(EVS_EBACKEND, "the evstore schema has drifted: column evstore.%s.%s "
                          "is %s, expected %s", w->table, w->column, PQgetvalue(r, found, 2),
                          w->type);
        } else if ((PQgetvalue(r, found, 3)[0] == 't') != w->not_null) {
            rc = evs__err(EVS_EBACKEND, "the evstore schema has drifted: column evstore.%s.%s "
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
            rc = evs__err(EVS_EBACKEND, "the evstore schema has drifted: unexpected column "
                          "evstore.%s.%s (%s)", PQgetvalue(r, j, 0), PQgetvalue(r, j, 1),
                          PQgetvalue(r, j, 2));
    }
    PQclear(r);
    return rc;
}

/* Sorted lists of names compared: the first missing or extra one. */
static int compare_names(PGconn *c, const char *sql, const char *const *want, size_t nwant,
                         const char *what)
{
    PGresult *r;
    int rc = evs__pg_exec(c, sql, &r, "schema check");
    if (rc < 0)
        return rc;
    int rows = PQntuples(r);
    size_t i = 0;
    int j = 0;
    while (rc == 0 && (i < nwant || j < rows)) {
        int cmp = i >= nwant ? 1 : j >= rows ? -1 : strcmp(want[i], PQgetvalue(r, j, 0));
        if (cmp < 0)
            rc = evs__err(EVS_EBACKEND, "the evstore schema has drifted: %s %s is missing",
                          what, want[i]);
        else if (cmp > 0)
            rc = evs__err(EVS_EBACKEND, "the evstore schema has drifted: unexpected %s %s",
                          what, PQgetvalue(r, j, 0));
        i++;
        j++;
    }
    PQclear(r);
    return rc;
}

/* Every function runs with its own search_path (0002_search_path.sql). */
static int check_search_path(PGconn *c)
{
    PGresult *r;
    int rc = evs__pg_exec(c,
        "SELECT p.proname FROM pg_proc p JOIN pg_namespace ns ON ns.oid = p.pronamespace "
        "WHERE ns.nspname = 'evstore' AND NOT coalesce('search_path=pg_catalog, evstore, "
        "pg_temp' = ANY (p.proconfig), false) ORDER BY 1", &r, "open: checking the schema");
    if (rc < 0)
        return rc;
    if (PQntuples(r) > 0)
        rc = evs__err(EVS_EBACKEND, "function evstore.%s has no fixed search_path (migration "
                      "0002_search_path sets one): the schema was changed by hand",
                      PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc;
}

/* The tag index keeps no pending list (0003_gin_fastupdate_off.sql). */
static int check_gin_fastupdate(PGconn *c)
{
    PGresult *r;
    int rc = evs__pg_exec(c,
        "SELECT coalesce('fastupdate=off' = ANY (reloptions), false) FROM pg_class "
        "WHERE oid = 'evstore.events_tags'::regclass", &r, "open: checking the schema");
    if (rc < 0)
        return rc;
    if (PQntuples(r) != 1 || PQgetvalue(r, 0, 0)[0] != 't')
        rc = evs__err(EVS_EBACKEND, "index evstore.events_tags has fastupdate on (migration "
                      "0003_gin_fastupdate_off sets it off): the schema was changed by hand");
    PQclear(r);
    return rc;
}

int evs__pg_check_schema(PGconn *c, char *err, size_t n)
{
    int rc = check_columns(c);
    if (rc == 0)
        rc = compare_names(c,
            "SELECT cl.relname FROM pg_index i JOIN pg_class cl ON cl.oid = i.indexrelid "
            "JOIN pg_namespace ns ON ns.oid = cl.relnamespace WHERE ns.nspname = 'evstore' "
            "ORDER BY cl.relname::text COLLATE \"C\"",
            expected_indexes, sizeof(expected_indexes) / sizeof(expected_indexes[0]),
            "index");
    if (rc == 0)
        rc = compare_names(c,
            "SELECT DISTINCT p.proname::text COLLATE \"C\" FROM pg_proc p JOIN pg_namespace "
            "ns ON ns.oid = p.pronamespace WHERE ns.nspname = 'evstore' ORDER BY 1",
            expected_functions, sizeof(expected_functions) / sizeof(expected_functions[0]),
            "function");
    if (rc == 0)
        rc = check_search_path(c);
    if (rc == 0)
        rc = check_gin_fastupdate(c);
    if (err && n)
        snprintf(err, n, "%s", rc < 0 ? evs_last_error() : "");
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
    PGresult *r;
    int rc = evs__pg_exec(c,
        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'evstore'), "
        "to_regclass('evstore.schema_migrations') IS NOT NULL", &r, "open");
    if (rc < 0)
        return rc;
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
    PGresult *r;
    int rc = evs__pg_exec(c, "SELECT version, checksum FROM evstore.schema_migrations "
                             "ORDER BY version", &r, "open: reading evstore.schema_migrations");
    if (rc < 0)
        return rc;
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
    char sum[17], ver[16], what[128];
    int rc;
    checksum_of(sum, m->sql);
    snprintf(ver, sizeof(ver), "%d", m->version);
    snprintf(what, sizeof(what), "applying migration %s", m->name);
    if ((rc = evs__pg_exec(c, "BEGIN", NULL, "migration")) < 0)
        return rc;
    evs__pgparams a = {.n = 0};
    evs__pgp_literal(&a, ver);
    evs__pgp_literal(&a, m->name);
    evs__pgp_literal(&a, sum);
    if ((rc = evs__pg_exec(c, m->sql, NULL, what)) < 0 ||
        (rc = evs__pg_query_sql(c, "INSERT INTO evstore.schema_migrations VALUES ($1::int, "
                                   "$2, $3, now())", &a, NULL, "recording a migration")) < 0) {
        PQclear(PQexec(c, "ROLLBACK"));
        return rc;
    }
    return evs__pg_exec(c, "COMMIT", NULL, "migration");
}

/* How many of the shipped migrations an open applies: all, except that
 * the tests of upgrades build an older schema with EVS_DEBUG_PG_MIGRATIONS=N
 * (the first N only; such a handle skips the schema check, which knows
 * only the newest schema). */
static size_t migrations_to_apply(void)
{
    const char *lim = getenv("EVS_DEBUG_PG_MIGRATIONS");
    long n = lim && *lim ? strtol(lim, NULL, 10) : 0;
    if (n > 0 && (size_t)n < evs__pg_nmigrations)
        return (size_t)n;
    return evs__pg_nmigrations;
}

static int migrate(PGconn *c, int create)
{
    int rc, schema, table;
    size_t applied;
    char q[128];
    snprintf(q, sizeof(q), "SELECT pg_advisory_lock(%lld)", (long long)EVS_PG_MIGRATION_LOCK);
    if ((rc = evs__pg_exec(c, q, NULL, "open: taking the migration lock")) < 0)
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
        if ((rc = evs__pg_exec(c, "BEGIN; CREATE SCHEMA evstore; "
                                  "CREATE TABLE evstore.schema_migrations (version int "
                                  "PRIMARY KEY, name text, checksum text, applied_at "
                                  "timestamptz); COMMIT", NULL, "creating schema evstore")) < 0) {
            PQclear(PQexec(c, "ROLLBACK"));
            goto out;
        }
    }
    if ((rc = recorded(c, &applied)) < 0)
        goto out;
    for (size_t i = applied; i < migrations_to_apply() && rc == 0; i++)
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

int evs__pg_schema_open(PGconn *c, int readonly, int create)
{
    int rc = readonly ? check_readonly(c) : migrate(c, create);
    if (rc < 0)
        return rc;
    if (migrations_to_apply() < evs__pg_nmigrations)
        return 0; /* EVS_DEBUG_PG_MIGRATIONS: an older schema on purpose */
    return evs__pg_check_schema(c, NULL, 0);
}
