/*
 * test_postgres.c -- what only the PostgreSQL backend has: its schema and
 * migrations, a database shared with other applications, connection
 * failures, SQL metacharacters, no skipped events under concurrent
 * commits, connections lost in the middle of an append, and blocking reads
 * woken through LISTEN/NOTIFY (docs/POSTGRES.md).
 *
 * Every other behaviour is tested by the backend-agnostic programs, which
 * ctest runs on PostgreSQL as <name>_pg. This program runs only there:
 * EVS_TEST_BACKEND=postgresql and EVS_TEST_PG (tests/README.md). Each test
 * case gets a fresh database (tu_store_new) and inspects it with its own
 * libpq connection.
 *
 * EVS_TEST_UPDATE_EXPECTED=1 rewrites tests/postgres/expected_schema.txt
 * from the schema the migrations build (review the diff before committing).
 */
#include "testutil.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "postgres/pg.h"

#ifndef EVS_TEST_SOURCE_DIR
#define EVS_TEST_SOURCE_DIR "tests"
#endif
#define EXPECTED_SCHEMA EVS_TEST_SOURCE_DIR "/postgres/expected_schema.txt"

/* The password of the role evs_pw in the cluster of scripts/pg-cluster.sh. */
#define EVS_PW_PASSWORD "evs-pw-secret"

/* ------------------------------------------------------------------ */
/* libpq helpers (main thread: they assert)                            */
/* ------------------------------------------------------------------ */

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A connection to the test store's database as EVS_TEST_PG's role. */
static PGconn *pg_connect(const tu_store *s)
{
    PGconn *c = PQconnectdb(s->dir);
    if (PQstatus(c) != CONNECTION_OK)
        print_error("connecting to %s: %s\n", s->dir, PQerrorMessage(c));
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    return c;
}

static void pg_exec(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        print_error("%s: %s\n", sql, PQerrorMessage(c));
    assert_true(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK);
    PQclear(r);
}

/* The first column of every row of sql (one parameter $1, may be NULL),
 * as "value\n" lines; malloc'd. */
static char *pg_lines(PGconn *c, const char *sql, const char *param)
{
    PGresult *r = PQexecParams(c, sql, param ? 1 : 0, NULL, &param, NULL,
                               NULL, 0);
    size_t len = 0, cap = 1;
    char *out;
    int i;
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        print_error("%s: %s\n", sql, PQerrorMessage(c));
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    for (i = 0; i < PQntuples(r); i++)
        cap += strlen(PQgetvalue(r, i, 0)) + 1;
    out = malloc(cap);
    assert_non_null(out);
    for (i = 0; i < PQntuples(r); i++) {
        size_t n = strlen(PQgetvalue(r, i, 0));
        memcpy(out + len, PQgetvalue(r, i, 0), n);
        len += n;
        out[len++] = '\n';
    }
    out[len] = '\0';
    PQclear(r);
    return out;
}

/* One value (row 0, column 0) of sql as a malloc'd string. */
static char *pg_value(PGconn *c, const char *sql)
{
    char *v = pg_lines(c, sql, NULL);
    char *nl = strchr(v, '\n');
    assert_non_null(nl); /* one row */
    *nl = '\0';
    return v;
}

/*
 * The catalog of schema nsp as sorted text lines: relations, columns with
 * types, nullability and defaults, constraints, indexes, functions,
 * triggers and the schema's own types. What "the schema" means for the
 * expected-schema comparison and for "nothing was changed".
 */
static const char CATALOG_SQL[] =
    "SELECT line FROM ("
    " SELECT 'relation ' || c.relname || ' ' ||"
    "   CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table'"
    "   WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'"
    "   WHEN 'S' THEN 'sequence' ELSE c.relkind::text END AS line"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = $1 AND c.relkind IN ('r','p','v','m','S')"
    " UNION ALL"
    " SELECT 'column ' || c.relname || '.' || a.attname || ' ' ||"
    "   format_type(a.atttypid, a.atttypmod) ||"
    "   CASE WHEN a.attnotnull THEN ' not null' ELSE '' END ||"
    "   COALESCE(' default ' || pg_get_expr(d.adbin, d.adrelid), '')"
    " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
    " JOIN pg_namespace n ON n.oid = c.relnamespace"
    " LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
    " WHERE n.nspname = $1 AND c.relkind IN ('r','p','v','m')"
    "   AND a.attnum > 0 AND NOT a.attisdropped"
    " UNION ALL"
    " SELECT 'constraint ' || c.relname || '.' || k.conname || ': ' ||"
    "   pg_get_constraintdef(k.oid)"
    " FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid"
    " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1"
    " UNION ALL"
    " SELECT 'index ' || i.indexname || ': ' || i.indexdef"
    " FROM pg_indexes i WHERE i.schemaname = $1"
    " UNION ALL"
    " SELECT 'function ' || p.proname || '(' ||"
    "   pg_get_function_identity_arguments(p.oid) || ') returns ' ||"
    "   COALESCE(pg_get_function_result(p.oid), '(procedure)')"
    " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
    " WHERE n.nspname = $1"
    " UNION ALL"
    " SELECT 'trigger ' || c.relname || '.' || t.tgname || ': ' ||"
    "   pg_get_triggerdef(t.oid)"
    " FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
    " JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = $1 AND NOT t.tgisinternal"
    " UNION ALL"
    " SELECT 'type ' || t.typname || ' ' || t.typtype::text"
    " FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace"
    " WHERE n.nspname = $1 AND t.typtype IN ('c','e','d')"
    "   AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class"
    "                           WHERE oid = t.typrelid) = 'c')"
    ") x ORDER BY line COLLATE \"C\"";

static char *catalog(PGconn *c, const char *nsp)
{
    return pg_lines(c, CATALOG_SQL, nsp);
}

/*
 * The contents of every table of schema nsp: per table its name, row
 * count and the md5 of its rows as text in sorted order.
 */
static char *contents(PGconn *c, const char *nsp)
{
    char *tables = pg_lines(c,
                            "SELECT c.relname FROM pg_class c JOIN "
                            "pg_namespace n ON n.oid = c.relnamespace "
                            "WHERE n.nspname = $1 AND c.relkind IN "
                            "('r','p') ORDER BY c.relname COLLATE \"C\"",
                            nsp);
    size_t cap = 1, len = 0;
    char *out = calloc(1, 1), *p, *nl;
    assert_non_null(out);
    for (p = tables; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
        char *qn, *qt, sql[1024], *v;
        size_t n;
        *nl = '\0';
        qn = PQescapeIdentifier(c, nsp, strlen(nsp));
        qt = PQescapeIdentifier(c, p, strlen(p));
        assert_non_null(qn);
        assert_non_null(qt);
        snprintf(sql, sizeof sql,
                 "SELECT '%s: ' || count(*) || ' rows, md5 ' || "
                 "md5(COALESCE(string_agg(t::text, E'\\n' ORDER BY "
                 "t::text COLLATE \"C\"), '')) FROM %s.%s t",
                 p, qn, qt);
        PQfreemem(qn);
        PQfreemem(qt);
        v = pg_value(c, sql);
        n = strlen(v);
        cap += n + 1;
        out = realloc(out, cap);
        assert_non_null(out);
        memcpy(out + len, v, n);
        len += n;
        out[len++] = '\n';
        out[len] = '\0';
        free(v);
    }
    free(tables);
    return out;
}

/* Assert two multi-line texts are equal, printing them when not. */
static void assert_same_text(const char *what, const char *want,
                             const char *got)
{
    if (strcmp(want, got) != 0)
        print_error("%s changed.\n--- before:\n%s--- after:\n%s", what, want,
                    got);
    assert_string_equal(want, got);
}

/* The number of evstore's events in the store (read through the API). */
static uint64_t count_events(evs_db *db)
{
    tu_events e = {0};
    uint64_t n;
    TU_OK(tu_read_all(&e, db, NULL, 0, 0));
    n = e.n;
    tu_events_free(&e);
    return n;
}

static int contains_ci(const char *hay, const char *needle)
{
    return hay != NULL && strcasestr(hay, needle) != NULL;
}

static char *last_error_copy(void)
{
    const char *m = evs_last_error();
    char *d = strdup(m ? m : "");
    assert_non_null(d);
    return d;
}

/* ------------------------------------------------------------------ */
/* (a) Migrations build the schema the code expects                    */
/* ------------------------------------------------------------------ */

static char *read_text_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;
    if (f == NULL)
        return NULL;
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Print the lines only in a and only in b (both sorted the same way). */
static void print_line_diff(const char *a, const char *b)
{
    const char *p = a, *q = b;
    while (*p || *q) {
        const char *pe = *p ? strchr(p, '\n') : p;
        const char *qe = *q ? strchr(q, '\n') : q;
        size_t pl, ql;
        int cmp;
        if (pe == NULL)
            pe = p + strlen(p);
        if (qe == NULL)
            qe = q + strlen(q);
        pl = (size_t)(pe - p);
        ql = (size_t)(qe - q);
        if (!*p)
            cmp = 1;
        else if (!*q)
            cmp = -1;
        else {
            cmp = memcmp(p, q, pl < ql ? pl : ql);
            if (cmp == 0)
                cmp = pl < ql ? -1 : pl > ql ? 1 : 0;
        }
        if (cmp == 0) {
            p = *pe ? pe + 1 : pe;
            q = *qe ? qe + 1 : qe;
        } else if (cmp < 0) {
            print_error("  expected only: %.*s\n", (int)pl, p);
            p = *pe ? pe + 1 : pe;
        } else {
            print_error("  built only:    %.*s\n", (int)ql, q);
            q = *qe ? qe + 1 : qe;
        }
    }
}

static void test_schema_of_fresh_database(void **state)
{
    tu_store *s = *state; /* open: the migrations ran */
    PGconn *c;
    char err[1024] = "";
    char *got, *migrations, *want, *table, *column, *sql;
    const char *upd = getenv("EVS_TEST_UPDATE_EXPECTED");
    int rc;

    tu_append1(s->db, NULL, "acct-1", "Opened", "{}");
    tu_store_close(s);
    c = pg_connect(s);

    /* The code's own check agrees with what the migrations built. */
    rc = evs__pg_check_schema(c, err, sizeof err);
    if (rc != 0)
        print_error("evs__pg_check_schema on a fresh database: %d (%s): %s\n",
                    rc, tu_errname(rc), err);
    assert_int_equal(rc, 0);

    /* And with the checked-in text of the schema. */
    got = catalog(c, "evstore");
    migrations = pg_lines(c,
                          "SELECT 'migration ' || version || ' ' || name "
                          "FROM evstore.schema_migrations ORDER BY version",
                          NULL);
    got = realloc(got, strlen(got) + strlen(migrations) + 1);
    assert_non_null(got);
    strcat(got, migrations);
    free(migrations);
    if (upd != NULL && upd[0] != '\0' && strcmp(upd, "0") != 0) {
        FILE *f = fopen(EXPECTED_SCHEMA, "wb");
        assert_non_null(f);
        assert_int_equal(fputs(got, f) >= 0, 1);
        assert_int_equal(fclose(f), 0);
        print_message("wrote %s\n", EXPECTED_SCHEMA);
    }
    want = read_text_file(EXPECTED_SCHEMA);
    if (want == NULL)
        print_error("%s is missing: run with EVS_TEST_UPDATE_EXPECTED=1 to "
                    "write it, then review it\n",
                    EXPECTED_SCHEMA);
    assert_non_null(want);
    if (strcmp(want, got) != 0) {
        print_error("the schema the migrations build differs from %s "
                    "(a new migration? then rerun with "
                    "EVS_TEST_UPDATE_EXPECTED=1 and review the diff):\n",
                    EXPECTED_SCHEMA);
        print_line_diff(want, got);
    }
    assert_string_equal(want, got);
    free(want);
    free(got);

    /* The check is not vacuous: a column gone is found and named. */
    table = pg_value(c, "SELECT c.relname FROM pg_attribute a JOIN pg_class c "
                        "ON c.oid = a.attrelid JOIN pg_namespace n ON "
                        "n.oid = c.relnamespace WHERE n.nspname = 'evstore' "
                        "AND c.relkind = 'r' AND a.attnum > 0 AND NOT "
                        "a.attisdropped GROUP BY c.relname ORDER BY count(*) "
                        "DESC, c.relname LIMIT 1");
    sql = malloc(strlen(table) + 256);
    assert_non_null(sql);
    sprintf(sql, "SELECT a.attname FROM pg_attribute a WHERE a.attrelid = "
                 "'evstore.%s'::regclass AND a.attnum > 0 AND NOT "
                 "a.attisdropped ORDER BY a.attnum DESC LIMIT 1",
            table);
    column = pg_value(c, sql);
    sprintf(sql, "ALTER TABLE evstore.%s DROP COLUMN %s", table, column);
    print_message("%s\n", sql);
    pg_exec(c, sql);
    err[0] = '\0';
    rc = evs__pg_check_schema(c, err, sizeof err);
    print_message("evs__pg_check_schema: %d (%s): %s\n", rc, tu_errname(rc),
                  err);
    assert_int_equal(rc, EVS_EBACKEND);
    if (strstr(err, column) == NULL)
        print_error("the message does not name the column %s\n", column);
    assert_non_null(strstr(err, column));
    free(sql);
    free(table);
    free(column);
    PQfinish(c);
}

/* ------------------------------------------------------------------ */
/* (b) Another application's tables in the same database               */
/* ------------------------------------------------------------------ */

static void test_other_apps_events_table(void **state)
{
    tu_store *s = *state; /* not open */
    PGconn *c = pg_connect(s);
    char *cat0, *rows0, *cat1, *rows1;
    tu_events e = {0};
    evs_event_data ev[2];

    pg_exec(c, "CREATE TABLE public.events (id serial PRIMARY KEY, "
               "name text NOT NULL, payload jsonb, created_at timestamptz "
               "NOT NULL DEFAULT '2020-01-01T00:00:00Z')");
    pg_exec(c, "CREATE INDEX events_name ON public.events (name)");
    pg_exec(c, "INSERT INTO public.events (name, payload) VALUES "
               "('signup', '{\"user\":1}'), ('login', '{\"user\":1}'), "
               "('logout', NULL)");
    /* Rails, Flyway and friends call theirs schema_migrations too. */
    pg_exec(c, "CREATE TABLE public.schema_migrations (version text "
               "PRIMARY KEY)");
    pg_exec(c, "INSERT INTO public.schema_migrations VALUES "
               "('20200101000000'), ('20210101000000')");
    cat0 = catalog(c, "public");
    rows0 = contents(c, "public");

    tu_store_open(s);
    ev[0] = tu_event_id("Opened", "{\"n\":1}");
    ev[1] = tu_event_id("Deposited", "{\"n\":2}");
    TU_OK(evs_append(NULL, s->db, NULL, "acct-1", EVS_NO_STREAM, ev, 2));
    tu_append1(s->db, "acme", "acct-1", "Opened", "{}");
    tu_store_reopen(s);
    TU_OK(tu_read_stream(&e, s->db, NULL, "acct-1", 0, EVS_FORWARD, 0));
    assert_int_equal(e.n, 2);
    assert_string_equal(e.v[1].type, "Deposited");
    tu_events_free(&e);
    assert_int_equal(count_events(s->db), 3); /* every tenant's */
    assert_int_equal(tu_head(s->db, NULL), 3);
    TU_OK(evs_verify(NULL, s->db, NULL, NULL));
    tu_store_close(s);

    cat1 = catalog(c, "public");
    rows1 = contents(c, "public");
    assert_same_text("schema public", cat0, cat1);
    assert_same_text("the rows of schema public", rows0, rows1);
    free(cat0);
    free(rows0);
    free(cat1);
    free(rows1);
    PQfinish(c);
}

/* ------------------------------------------------------------------ */
/* (c) A schema newer than the code; (d) a foreign evstore schema       */
/* ------------------------------------------------------------------ */

/* evs_open must fail with code, a message and *out NULL; returns the
 * message (malloc'd). */
static char *open_fails(const char *uri, unsigned flags, int code)
{
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    evs_db *db = (evs_db *)&o;
    char *msg;
    o.flags = flags;
    TU_CHECK(evs_open(&db, uri, &o), code);
    TU_ASSERT_ERRMSG();
    assert_null(db);
    msg = last_error_copy();
    print_message("evs_open (flags %u): %s\n", flags, msg);
    return msg;
}

static void test_newer_schema_refused(void **state)
{
    tu_store *s = *state; /* open: migrated */
    PGconn *c;
    char *code_version, *cat0, *rows0, *cat1, *rows1, *msg;
    long cv;

    tu_append1(s->db, NULL, "acct-1", "Opened", "{}");
    tu_append1(s->db, NULL, "acct-1", "Deposited", "{}");
    tu_store_close(s);
    c = pg_connect(s);
    code_version = pg_value(c, "SELECT max(version)::text FROM "
                               "evstore.schema_migrations");
    cv = strtol(code_version, NULL, 10);
    assert_true(cv >= 1 && cv < 9999);
    /* A copy of the newest row as version 9999, whatever the other
     * columns are. */
    pg_exec(c, "CREATE TEMP TABLE newer AS SELECT * FROM "
               "evstore.schema_migrations ORDER BY version DESC LIMIT 1");
    pg_exec(c, "UPDATE newer SET version = 9999");
    pg_exec(c, "INSERT INTO evstore.schema_migrations SELECT * FROM newer");
    cat0 = catalog(c, "evstore");
    rows0 = contents(c, "evstore");

    msg = open_fails(s->dir, EVS_OPEN_CREATE, EVS_EBACKEND);
    if (!tu_contains_number(msg, 9999) || !tu_contains_number(msg, cv))
        print_error("the message should name both versions, 9999 and %ld\n",
                    cv);
    assert_true(tu_contains_number(msg, 9999));
    assert_true(tu_contains_number(msg, cv));
    free(msg);
    msg = open_fails(s->dir, 0, EVS_EBACKEND);
    free(msg);
    msg = open_fails(s->dir, EVS_OPEN_READONLY, EVS_EBACKEND);
    assert_true(tu_contains_number(msg, 9999));
    free(msg);

    cat1 = catalog(c, "evstore");
    rows1 = contents(c, "evstore");
    assert_same_text("schema evstore", cat0, cat1);
    assert_same_text("the rows of schema evstore", rows0, rows1);
    free(cat0);
    free(rows0);
    free(cat1);
    free(rows1);
    free(code_version);
    PQfinish(c);
}

/*
 * Upgrade: a database built and filled by migration 0001 alone (as an
 * evstore before 0002 left it; EVS_DEBUG_PG_MIGRATIONS=1 builds it) is
 * refused read-only ("open it read-write once"), then migrated by a
 * read-write open: every row stays as it was, every function gets its
 * fixed search_path, the tag index loses its pending list (fastupdate
 * off), and the store goes on (versions, checkpoints, snapshots, DCB
 * conditions).
 */
static void test_upgrade_from_0001(void **state)
{
    tu_store *s = *state; /* not open */
    PGconn *c;
    char *rows0, *rows1, *migs, *unset, *msg;
    evs_append_result res;
    uint64_t tok = 0;

    setenv("EVS_DEBUG_PG_MIGRATIONS", "1", 1);
    tu_store_open(s);
    unsetenv("EVS_DEBUG_PG_MIGRATIONS");
    for (int i = 0; i < 20; i++)
        tu_append1(s->db, NULL, "acct-1", "Deposited", "{\"amount\":1}");
    tu_append1(s->db, "t2", "acct-9", "Opened", "{}");
    TU_OK(evs_checkpoint_set(s->db, NULL, "proj", 5));
    TU_OK(evs_snapshot_save(s->db, NULL, "acct-1", 19, "Acct/v1", "{\"b\":20}", 8));
    tu_store_close(s);

    c = pg_connect(s);
    migs = pg_lines(c, "SELECT version FROM evstore.schema_migrations ORDER BY 1", NULL);
    assert_string_equal(migs, "1\n");
    free(migs);
    unset = pg_lines(c, "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON "
                        "n.oid = p.pronamespace WHERE n.nspname = 'evstore' AND "
                        "p.proconfig IS NULL ORDER BY 1", NULL);
    print_message("functions without a search_path under 0001: %s", unset);
    assert_true(strlen(unset) > 0); /* the upgrade below has work to do */
    free(unset);
    rows0 = contents(c, "evstore");

    /* read-only: refused, nothing touched */
    msg = open_fails(s->dir, EVS_OPEN_READONLY, EVS_EBACKEND);
    assert_non_null(strstr(msg, "read-write"));
    free(msg);

    /* read-write: migrated */
    tu_store_open(s);
    migs = pg_lines(c, "SELECT version || ' ' || name FROM evstore.schema_migrations "
                       "ORDER BY version", NULL);
    assert_string_equal(migs, "1 0001_init\n2 0002_search_path\n3 0003_gin_fastupdate_off\n"
                              "4 0004_tombstone\n5 0005_subject_keys\n6 0006_lean_append\n");
    free(migs);
    migs = pg_lines(c, "SELECT coalesce('fastupdate=off' = ANY (reloptions), false)::text "
                       "FROM pg_class WHERE oid = 'evstore.events_tags'::regclass", NULL);
    assert_string_equal(migs, "true\n");
    free(migs);
    unset = pg_lines(c, "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON "
                        "n.oid = p.pronamespace WHERE n.nspname = 'evstore' AND NOT "
                        "coalesce('search_path=pg_catalog, evstore, pg_temp' = "
                        "ANY (p.proconfig), false) ORDER BY 1", NULL);
    assert_string_equal(unset, "");
    free(unset);
    rows1 = contents(c, "evstore");
    /* the events, streams, tenants, snapshots... are the same rows; only
     * schema_migrations has one more, and the tables later migrations
     * add are there, empty (0005: subject_keys) */
    {
        static const char added[] = "subject_keys: 0 rows, md5 "
                                    "d41d8cd98f00b204e9800998ecf8427e\n";
        char *at = strstr(rows1, added);
        assert_non_null(at);
        memmove(at, at + strlen(added), strlen(at + strlen(added)) + 1);
    }
    {
        char *a = strstr(rows0, "schema_migrations"), *b = strstr(rows1, "schema_migrations");
        assert_non_null(a);
        assert_non_null(b);
        *strchr(a, '\n') = '\0'; /* compare around that line */
        *strchr(b, '\n') = '\0';
        char *a2 = a + strlen(a) + 1, *b2 = b + strlen(b) + 1;
        *a = *b = '\0';
        assert_same_text("the rows before schema_migrations", rows0, rows1);
        assert_same_text("the rows after schema_migrations", a2, b2);
    }
    free(rows0);
    free(rows1);

    /* the store goes on */
    evs_event_data ev = {0};
    ev.type = "Deposited";
    ev.data = "{\"amount\":2}";
    ev.data_len = strlen(ev.data);
    TU_OK(evs_append(&res, s->db, NULL, "acct-1", 19, &ev, 1));
    assert_int_equal(res.stream_version, 20);
    TU_CHECK(evs_append(&res, s->db, NULL, "acct-1", 19, &ev, 1), EVS_ECONFLICT);
    TU_OK(evs_checkpoint_get(&tok, s->db, NULL, "proj"));
    assert_int_equal(tok, 5);
    evs_snapshot *snap = NULL;
    TU_OK(evs_snapshot_load(&snap, s->db, NULL, "acct-1", EVS_END));
    assert_int_equal(snap->version, 19);
    evs_snapshot_free(snap);
    /* 0004: a tombstone on the upgraded schema refuses appends */
    TU_OK(evs_stream_tombstone(NULL, s->db, "t2", "acct-9", EVS_ANY));
    TU_CHECK(evs_append(&res, s->db, "t2", "acct-9", EVS_ANY, &ev, 1), EVS_EDELETED);
    tu_store_close(s);
    /* and a read-only open is fine now */
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    evs_db *ro = NULL;
    o.flags = EVS_OPEN_READONLY;
    TU_OK(evs_open(&ro, s->dir, &o));
    TU_OK(evs_close(ro));
    PQfinish(c);
}

static void test_foreign_evstore_schema_refused(void **state)
{
    tu_store *s = *state; /* not open */
    PGconn *c = pg_connect(s);
    char *cat0, *rows0, *cat1, *rows1, *msg;

    pg_exec(c, "CREATE SCHEMA evstore");
    pg_exec(c, "CREATE TABLE evstore.events (id int PRIMARY KEY, what "
               "text)");
    pg_exec(c, "INSERT INTO evstore.events VALUES (1, 'not ours')");
    cat0 = catalog(c, "evstore");
    rows0 = contents(c, "evstore");

    msg = open_fails(s->dir, EVS_OPEN_CREATE, EVS_EBACKEND);
    if (strstr(msg, "evstore") == NULL)
        print_error("the message should name the schema evstore\n");
    assert_non_null(strstr(msg, "evstore"));
    free(msg);
    msg = open_fails(s->dir, EVS_OPEN_READONLY, EVS_EBACKEND);
    free(msg);

    cat1 = catalog(c, "evstore");
    rows1 = contents(c, "evstore");
    assert_same_text("schema evstore", cat0, cat1);
    assert_same_text("the rows of schema evstore", rows0, rows1);
    free(cat0);
    free(rows0);
    free(cat1);
    free(rows1);
    PQfinish(c);
}

/* ------------------------------------------------------------------ */
/* (e) Unreachable server; (f) wrong password                          */
/* ------------------------------------------------------------------ */

static void test_unreachable_server(void **state)
{
    static const char *const uris[] = {
        /* a socket directory that does not exist */
        "postgresql:///evs?host=/nonexistent/evs-no-such-dir&port=5432",
        /* nothing listens on TCP port 1 */
        "postgresql://127.0.0.1:1/evs?connect_timeout=5",
    };
    static const char *const named[] = {"/nonexistent/evs-no-such-dir",
                                        "127.0.0.1"};
    size_t i;
    (void)state;

    for (i = 0; i < sizeof uris / sizeof uris[0]; i++) {
        int64_t t0 = mono_us(), us;
        char *msg = open_fails(uris[i], EVS_OPEN_CREATE, EVS_EBACKEND);
        us = mono_us() - t0;
        print_message("%s: refused after %" PRId64 " µs\n", uris[i], us);
        assert_true(us < 3000000);
        /* Clear: says where it tried (libpq's own words name it). */
        if (strstr(msg, named[i]) == NULL)
            print_error("the message does not name %s\n", named[i]);
        assert_non_null(strstr(msg, named[i]));
        free(msg);
    }
}

static void test_wrong_password(void **state)
{
    tu_store *s = *state; /* not open */
    PGconn *c = pg_connect(s), *probe;
    const char *wrong[] = {"user=evs_pw", "password=wrong-evs-secret"};
    const char *right[] = {"user=evs_pw", "password=" EVS_PW_PASSWORD};
    char *uri_wrong = tu_pg_uri(s->pgdb, wrong, 2);
    char *uri_right = tu_pg_uri(s->pgdb, right, 2);
    char sql[256], *msg, *has_role;
    int asks;

    /* Only the cluster of scripts/pg-cluster.sh is known to ask evs_pw
     * for its password; another server may not have the role, or trust
     * it. */
    has_role = pg_value(c, "SELECT count(*)::text FROM pg_roles WHERE "
                           "rolname = 'evs_pw'");
    probe = PQconnectdb(uri_wrong);
    asks = strcmp(has_role, "1") == 0 && PQstatus(probe) != CONNECTION_OK;
    PQfinish(probe);
    free(has_role);
    if (!asks) {
        free(uri_wrong);
        free(uri_right);
        PQfinish(c);
        print_message("SKIPPED: the server of EVS_TEST_PG has no role evs_pw "
                      "that needs a password (scripts/pg-cluster.sh makes "
                      "one)\n");
        skip();
    }
    snprintf(sql, sizeof sql, "ALTER DATABASE %s OWNER TO evs_pw", s->pgdb);
    pg_exec(c, sql);

    msg = open_fails(uri_wrong, EVS_OPEN_CREATE, EVS_EBACKEND);
    /* The message may name the user; never the password. */
    if (strstr(msg, "wrong-evs-secret") != NULL)
        print_error("the message shows the password\n");
    assert_null(strstr(msg, "wrong-evs-secret"));
    assert_true(contains_ci(msg, "password") ||
                contains_ci(msg, "authentication"));
    free(msg);

    /* The right one works: it was the password. */
    {
        evs_open_options o = EVS_OPEN_OPTIONS_INIT;
        evs_db *db = NULL;
        TU_OK(evs_open(&db, uri_right, &o));
        assert_int_equal(tu_append1(db, NULL, "pw-1", "T", "{}"), 1);
        TU_OK(evs_close(db));
    }
    free(uri_wrong);
    free(uri_right);
    PQfinish(c);
}

/* ------------------------------------------------------------------ */
/* (g) SQL metacharacters round-trip                                   */
/* ------------------------------------------------------------------ */

/* Names with SQL (and LIKE, printf, shell, JSON) metacharacters; none
 * starts with '$' (reserved) and none has '-' before the category part.
 * Streams get a category prefix below. */
static const char *const EVIL[] = {
    "'; DROP TABLE evstore.events; --",
    "o'brien",
    "two''quotes",
    "\"double\"",
    "back\\slash\\",
    "x$1",
    "d$$dollar$$",
    "E'\\x41'",
    "semi;colon",
    "pct%_under",
    "%s%d%n",
    "unicode: \xc3\xa9\xe6\x97\xa5\xe6\x9c\xac\xf0\x9f\x8e\x89",
    "tab\tnewline\ncr\r",
    "*) OR 1=1 --",
    "{\"a\":1}",
};
#define NEVIL (sizeof EVIL / sizeof EVIL[0])

/* s as a JSON string literal (with the quotes) into out. */
static void json_str(char *out, size_t n, const char *s)
{
    size_t o = 0;
    out[o++] = '"';
    for (; *s && o + 8 < n; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch < 0x20) {
            o += (size_t)snprintf(out + o, n - o, "\\u%04x", ch);
        } else {
            out[o++] = (char)ch;
        }
    }
    out[o++] = '"';
    out[o] = '\0';
}

static void test_sql_metacharacters(void **state)
{
    tu_store *s = *state; /* open */
    PGconn *c = pg_connect(s);
    char *cat0, *cat1, *pub0, *pub1;
    char streams[NEVIL][320], datas[NEVIL][700], metas[NEVIL][700];
    const char *tags[NEVIL][2];
    evs_event_data ev;
    size_t i, j;
    uint64_t pos[NEVIL], last;

    cat0 = catalog(c, "evstore");
    pub0 = catalog(c, "public");
    for (i = 0; i < NEVIL; i++) {
        char js[640];
        evs_append_result r;
        snprintf(streams[i], sizeof streams[i], "evil-%s", EVIL[i]);
        json_str(js, sizeof js, EVIL[i]);
        snprintf(datas[i], sizeof datas[i], "{\"s\":%s,\"i\":%zu}", js, i);
        snprintf(metas[i], sizeof metas[i], "{\"m\":%s}", js);
        tags[i][0] = EVIL[i];
        tags[i][1] = EVIL[(i + 1) % NEVIL];
        ev = tu_event_id(EVIL[i], datas[i]);
        ev.metadata = metas[i];
        ev.metadata_len = strlen(metas[i]);
        ev.tags = tags[i];
        ev.ntags = 2;
        /* The tenant: the evil names in turn, and the default tenant. */
        TU_OK(evs_append(&r, s->db, i % 2 ? EVIL[i] : NULL, streams[i],
                         EVS_NO_STREAM, &ev, 1));
        pos[i] = r.first_position;
        assert_int_equal(pos[i], i + 1);
    }
    /* Checkpoints (events of system streams: after the others). */
    for (i = 0; i < NEVIL; i++)
        TU_OK(evs_checkpoint_set(s->db, i % 2 ? EVIL[i] : NULL, EVIL[i],
                                 pos[i]));
    tu_store_reopen(s);

    for (i = 0; i < NEVIL; i++) {
        const char *tenant = i % 2 ? EVIL[i] : NULL;
        tu_events e = {0};
        uint64_t cp = 0;
        evs_query_item item = {NULL, 0, &EVIL[i], 1};
        evs_query q = {&item, 1};
        evs_query_item titem = {&EVIL[i], 1, NULL, 0};
        evs_query tq = {&titem, 1};

        /* The stream: its one event with every field as written. */
        TU_OK(tu_read_stream(&e, s->db, tenant, streams[i], 0, EVS_FORWARD,
                             0));
        assert_int_equal(e.n, 1);
        assert_int_equal(e.v[0].position, pos[i]);
        assert_string_equal(e.v[0].stream, streams[i]);
        assert_string_equal(e.v[0].type, EVIL[i]);
        assert_string_equal(e.v[0].tenant, tenant ? tenant : "");
        assert_string_equal(e.v[0].data, datas[i]);
        assert_string_equal(e.v[0].metadata, metas[i]);
        tu_assert_tags(&e.v[0], tags[i], 2);
        tu_events_clear(&e);
        assert_int_equal(tu_version(s->db, tenant, streams[i]), 0);

        /* By tag: this event and the one before (its second tag), if in
         * the same tenant; by type: this one. */
        TU_OK(tu_read_query(&e, NULL, s->db, tenant, &q, 0, EVS_FORWARD, 0));
        for (j = 0; j < e.n; j++) {
            int mine = e.v[j].position == pos[i];
            int prev = e.v[j].position == pos[(i + NEVIL - 1) % NEVIL];
            if (!mine && !prev)
                print_error("tag \"%s\" matched position %" PRIu64 "\n",
                            EVIL[i], e.v[j].position);
            assert_true(mine || prev);
        }
        assert_true(e.n >= 1);
        tu_events_clear(&e);
        TU_OK(tu_read_query(&e, NULL, s->db, tenant, &tq, 0, EVS_FORWARD,
                            0));
        assert_int_equal(e.n, 1);
        assert_int_equal(e.v[0].position, pos[i]);
        tu_events_free(&e);

        TU_OK(evs_checkpoint_get(&cp, s->db, tenant, EVIL[i]));
        assert_int_equal(cp, pos[i]);
    }

    /* LIKE metacharacters in a category select nothing else: the
     * category of "pct%_under-1" is "pct%_under", which a LIKE would
     * also find in "pctXYunder-1". */
    tu_append1(s->db, NULL, "pctXYunder-1", "T", "{}");
    last = tu_append1(s->db, NULL, "pct%_under-1", "T", "{}");
    {
        evs_tracking t = EVS_TRACKING_INIT;
        evs_iter *it = NULL;
        tu_events e = {0};
        t.category = "pct%_under";
        TU_OK(evs_read_tracking(&it, s->db, &t, 0, 0, 0));
        TU_OK(tu_collect(&e, it));
        evs_iter_free(it);
        assert_int_equal(e.n, 1);
        assert_string_equal(e.v[0].stream, "pct%_under-1");
        tu_events_free(&e);
    }
    assert_int_equal(tu_head(s->db, NULL), last);
    TU_OK(evs_verify(NULL, s->db, NULL, NULL));
    tu_store_close(s);

    /* The tables are intact: the same schema as before. */
    cat1 = catalog(c, "evstore");
    pub1 = catalog(c, "public");
    assert_same_text("schema evstore", cat0, cat1);
    assert_same_text("schema public", pub0, pub1);
    free(cat0);
    free(cat1);
    free(pub0);
    free(pub1);
    PQfinish(c);
}

/* ------------------------------------------------------------------ */
/* (h) No skipped events: a tracking reader beside 8 writers           */
/* ------------------------------------------------------------------ */

#define SKIP_WRITERS 8
#define SKIP_APPENDS 150

typedef struct skip_writer {
    evs_db *db;
    unsigned id;
    _Atomic uint64_t events; /* appended */
    _Atomic int finished;
} skip_writer;

static void *skip_writer_main(void *arg)
{
    skip_writer *w = arg;
    tu_rng r;
    unsigned a;
    tu_rng_init(&r, 1000 + w->id);
    for (a = 0; a < SKIP_APPENDS; a++) {
        evs_event_data ev[3];
        char stream[32];
        size_t k, n = (size_t)tu_rng_range(&r, 1, 3);
        int rc;
        for (k = 0; k < n; k++)
            ev[k] = tu_event("W", "{}");
        /* Own streams and one shared by all (contended rows). */
        if (a % 4 == 0)
            snprintf(stream, sizeof stream, "shared-1");
        else
            snprintf(stream, sizeof stream, "w%u-%u", w->id, a % 5);
        rc = evs_append(NULL, w->db, NULL, stream, EVS_ANY, ev, n);
        if (rc != 0) {
            tu_fail("writer %u append %u: %s: %s", w->id, a, tu_errname(rc),
                    evs_last_error());
            break;
        }
        w->events += n;
    }
    w->finished = 1;
    return NULL;
}

static void test_no_skipped_events(void **state)
{
    tu_store *s = *state; /* open */
    evs_db *db2 = NULL;
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    static skip_writer w[SKIP_WRITERS];
    pthread_t th[SKIP_WRITERS];
    evs_tracking t = EVS_TRACKING_INIT;
    uint64_t after = 0, seen = 0, total = 0, reads = 0, gaps = 0;
    uint64_t repeats = 0;
    int64_t deadline, t0 = mono_us();
    tu_events all = {0};
    unsigned i;

    tu_failures_reset();
    TU_OK(evs_open(&db2, s->dir, &o));
    /* Half the writers share the reader's handle (its pool), half use
     * another one: commits from many connections and two handles. */
    for (i = 0; i < SKIP_WRITERS; i++) {
        w[i].db = i % 2 ? db2 : s->db;
        w[i].id = i;
        w[i].events = 0;
        w[i].finished = 0;
        assert_int_equal(
            pthread_create(&th[i], NULL, skip_writer_main, &w[i]), 0);
    }
    deadline = mono_us() + 120 * 1000000LL;
    for (;;) {
        evs_iter *it = NULL;
        const evs_event *ev;
        uint64_t marker = 0;
        int rc, fin = 1;
        /* Finished before this read: every commit is visible to it. */
        for (i = 0; i < SKIP_WRITERS; i++)
            fin &= w[i].finished;
        TU_OK(evs_read_tracking(&it, s->db, &t, after, 50, 200000));
        reads++;
        while ((rc = evs_iter_next(&ev, it)) == 0) {
            if (ev->position != seen + 1) {
                if (ev->position <= seen)
                    repeats++;
                else
                    gaps++;
                if (gaps + repeats <= 5)
                    print_error("after position %" PRIu64
                                " the reader got %" PRIu64 "\n",
                                seen, ev->position);
            }
            if (ev->position > seen)
                seen = ev->position;
        }
        assert_int_equal(rc, EVS_ITEROVER);
        TU_OK(evs_iter_marker(&marker, it));
        evs_iter_free(it);
        assert_true(marker >= after);
        after = marker;
        if (fin) {
            total = 0;
            for (i = 0; i < SKIP_WRITERS; i++)
                total += w[i].events;
            if (seen >= total)
                break;
        }
        if (mono_us() > deadline) {
            print_error("the reader is at %" PRIu64 " after 120 s\n", seen);
            break;
        }
    }
    for (i = 0; i < SKIP_WRITERS; i++)
        pthread_join(th[i], NULL);
    TU_ASSERT_NO_THREAD_FAILURES();
    print_message("%" PRIu64 " events by %d writers, followed in %" PRIu64
                  " reads in %.2f s: %" PRIu64 " gaps, %" PRIu64
                  " repeats\n",
                  total, SKIP_WRITERS, reads,
                  (double)(mono_us() - t0) / 1e6, gaps, repeats);
    assert_int_equal(gaps, 0);
    assert_int_equal(repeats, 0);
    assert_int_equal(seen, total);
    assert_int_equal(after, total);
    assert_int_equal(tu_head(s->db, NULL), total);
    /* $all has them all, 1..total. */
    TU_OK(tu_read_all(&all, s->db, NULL, 0, 0));
    assert_int_equal(all.n, total);
    for (i = 0; i < all.n; i++)
        assert_int_equal(all.v[i].position, i + 1);
    tu_events_free(&all);
    TU_OK(evs_close(db2));
}

/* ------------------------------------------------------------------ */
/* (i) Connections lost in the middle of appends                       */
/* ------------------------------------------------------------------ */

#define KILL_MS 3000     /* how long the killer runs */
#define KILL_MAX_EV 12   /* events per append: 1..KILL_MAX_EV */
#define KILL_MAX_APPENDS 20000

typedef struct kill_append {
    size_t first; /* index of its first id in kill_run.ids */
    size_t n;
    int rc;
    int multi;    /* a two-stream evs_append_multi */
    char msg[256];
} kill_append;

typedef struct kill_run {
    evs_db *db;
    _Atomic int stop;
    kill_append *ap;
    size_t nap;
    evs_uuid *ids;
    size_t nids;
} kill_run;

static void *kill_appender(void *arg)
{
    kill_run *k = arg;
    tu_rng r;
    tu_rng_init(&r, 77);
    while (!k->stop && k->nap < KILL_MAX_APPENDS) {
        kill_append *a = &k->ap[k->nap];
        evs_event_data ev[KILL_MAX_EV];
        char stream[32], stream2[32];
        size_t j, n = (size_t)tu_rng_range(&r, 1, KILL_MAX_EV);
        a->first = k->nids;
        a->n = n;
        a->multi = k->nap % 3 == 2 && n >= 2;
        for (j = 0; j < n; j++) {
            ev[j] = tu_event_id("K", "{\"kill\":true}");
            k->ids[k->nids + j] = ev[j].id;
        }
        snprintf(stream, sizeof stream, "kill-%zu", k->nap % 4);
        snprintf(stream2, sizeof stream2, "other-%zu", k->nap % 3);
        if (a->multi) {
            evs_stream_append parts[2] = {
                {stream, EVS_ANY, ev, n / 2},
                {stream2, EVS_ANY, ev + n / 2, n - n / 2},
            };
            a->rc = evs_append_multi(NULL, k->db, NULL, parts, 2);
        } else {
            a->rc = evs_append(NULL, k->db, NULL, stream, EVS_ANY, ev, n);
        }
        if (a->rc != 0)
            snprintf(a->msg, sizeof a->msg, "%s", evs_last_error());
        k->nids += n;
        k->nap++;
    }
    return NULL;
}

static int cmp_uuid(const void *a, const void *b)
{
    return memcmp(((const evs_uuid *)a)->bytes, ((const evs_uuid *)b)->bytes,
                  16);
}

static void test_connection_lost_mid_append(void **state)
{
    tu_store *s = *state; /* open */
    static kill_run k;
    PGconn *c = pg_connect(s);
    pthread_t th;
    tu_rng r;
    int64_t t_end;
    unsigned kills = 0, killed = 0, i;
    size_t a, nstored = 0, ok = 0, failed_absent = 0, failed_present = 0;
    size_t attempts = 0;
    evs_uuid *stored;
    tu_events all = {0};
    evs_db *fresh = NULL;
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    uint64_t checked = 0;
    int rc;

    memset(&k, 0, sizeof k);
    k.db = s->db;
    k.ap = calloc(KILL_MAX_APPENDS, sizeof *k.ap);
    k.ids = calloc((size_t)KILL_MAX_APPENDS * KILL_MAX_EV, sizeof *k.ids);
    assert_non_null(k.ap);
    assert_non_null(k.ids);
    tu_rng_init(&r, tu_seed("connection_lost"));
    /* Backends that exit between the listing and the kill: no warning. */
    pg_exec(c, "SET client_min_messages = error");
    assert_int_equal(pthread_create(&th, NULL, kill_appender, &k), 0);

    /* Kill every connection to the store's database but our own, at
     * random moments: idle ones, ones in the middle of an append, ones
     * committing. */
    t_end = mono_us() + KILL_MS * 1000LL;
    while (mono_us() < t_end) {
        char *n;
        tu_sleep_ms((unsigned)tu_rng_range(&r, 1, 25));
        n = pg_value(c, "SELECT count(*) FILTER (WHERE "
                        "pg_terminate_backend(pid))::text FROM "
                        "pg_stat_activity WHERE datname = "
                        "current_database() AND pid <> pg_backend_pid() "
                        "AND backend_type = 'client backend'");
        kills++;
        killed += (unsigned)strtoul(n, NULL, 10);
        free(n);
    }
    k.stop = 1;
    pthread_join(th, NULL);

    /* What is stored, through a fresh handle. */
    TU_OK(evs_open(&fresh, s->dir, &o));
    TU_OK(tu_read_all(&all, fresh, NULL, 0, 0));
    stored = calloc(all.n + 1, sizeof *stored);
    assert_non_null(stored);
    for (a = 0; a < all.n; a++)
        stored[nstored++] = all.v[a].id;
    tu_events_free(&all);
    qsort(stored, nstored, sizeof *stored, cmp_uuid);
    for (a = 1; a < nstored; a++) {
        if (cmp_uuid(&stored[a - 1], &stored[a]) == 0) {
            char t[37];
            evs_uuid_format(t, &stored[a]);
            print_error("event %s is stored twice\n", t);
        }
        assert_true(cmp_uuid(&stored[a - 1], &stored[a]) != 0);
    }

    for (a = 0; a < k.nap; a++) {
        kill_append *ap = &k.ap[a];
        size_t j, present = 0;
        for (j = 0; j < ap->n; j++)
            present += bsearch(&k.ids[ap->first + j], stored, nstored,
                               sizeof *stored, cmp_uuid) != NULL;
        if (present != 0 && present != ap->n)
            print_error("append %zu (%s, %zu events) is half-written: %zu "
                        "stored; rc %s: %s\n",
                        a, ap->multi ? "two streams" : "one stream", ap->n,
                        present, tu_errname(ap->rc), ap->msg);
        assert_true(present == 0 || present == ap->n);
        if (ap->rc == 0) {
            if (present == 0)
                print_error("append %zu returned 0 but is not stored\n", a);
            assert_int_equal(present, ap->n);
            ok++;
        } else if (present == 0) {
            failed_absent++;
        } else {
            /* Committed although it failed: only when the error said
             * the outcome is unknown (or that it committed). */
            int says = contains_ci(ap->msg, "commit") ||
                       contains_ci(ap->msg, "unknown");
            if (!says)
                print_error("append %zu failed with %s (\"%s\") but is "
                            "stored, and the message does not say it may "
                            "have committed\n",
                            a, tu_errname(ap->rc), ap->msg);
            assert_true(says);
            failed_present++;
        }
    }
    print_message("%u kill rounds ended %u connections; %zu appends: %zu "
                  "acknowledged, %zu failed and absent, %zu failed but "
                  "committed (said so)\n",
                  kills, killed, k.nap, ok, failed_absent, failed_present);
    for (a = 0, i = 0; a < k.nap && i < 3; a++)
        if (k.ap[a].rc != 0) {
            print_message("  e.g. %s: %s\n", tu_errname(k.ap[a].rc),
                          k.ap[a].msg);
            i++;
        }
    /* The test did what it is for: appends were cut off. */
    assert_true(ok > 0);
    assert_true(failed_absent + failed_present > 0);

    /* The handle that saw its connections die works again: stale pooled
     * connections may fail at most once each. */
    for (;;) {
        evs_event_data ev = tu_event("After", "{}");
        attempts++;
        rc = evs_append(NULL, s->db, NULL, "after-1", EVS_ANY, &ev, 1);
        if (rc == 0 || attempts > EVS_PG_POOL_MAX + 1)
            break;
        print_message("append after the kills, attempt %zu: %s: %s\n",
                      attempts, tu_errname(rc), evs_last_error());
    }
    TU_OK(rc);
    TU_OK(evs_verify(&checked, s->db, NULL, NULL));
    TU_OK(evs_verify(NULL, fresh, NULL, NULL));
    assert_int_equal(checked, nstored + 1);
    TU_OK(evs_close(fresh));
    free(stored);
    free(k.ap);
    free(k.ids);
    PQfinish(c);
}

/* ------------------------------------------------------------------ */
/* (j) A blocking read is woken by another handle's append             */
/* ------------------------------------------------------------------ */

typedef struct waiter {
    evs_db *db;
    uint64_t after;
    int rc;
    size_t n;
    uint64_t position;
    int64_t returned_us; /* mono_us() when the read returned */
} waiter;

static void *waiter_main(void *arg)
{
    waiter *w = arg;
    evs_tracking t = EVS_TRACKING_INIT;
    evs_iter *it = NULL;
    tu_events e = {0};
    w->rc = evs_read_tracking(&it, w->db, &t, w->after, 0, 10000000);
    if (w->rc == 0) {
        w->rc = tu_collect(&e, it);
        evs_iter_free(it);
    }
    w->returned_us = mono_us();
    w->n = e.n;
    w->position = e.n ? e.v[0].position : 0;
    tu_events_free(&e);
    return NULL;
}

/* waiter on `reader`, append through `writer` 400 ms later: the read
 * returns the event soon after the append, not before it. */
static void wake_check(evs_db *reader, evs_db *writer, const char *what)
{
    waiter w;
    pthread_t th;
    int64_t t_append, latency;
    evs_event_data ev = tu_event("Wake", "{}");
    uint64_t head = tu_head(writer, NULL);

    memset(&w, 0, sizeof w);
    w.db = reader;
    w.after = head;
    assert_int_equal(pthread_create(&th, NULL, waiter_main, &w), 0);
    tu_sleep_ms(400);
    t_append = mono_us();
    TU_OK(evs_append(NULL, writer, NULL, "wake-1", EVS_ANY, &ev, 1));
    pthread_join(th, NULL);
    latency = w.returned_us - t_append;
    print_message("%s: woken %" PRId64 " µs after the append (rc %d, %zu "
                  "event(s))\n",
                  what, latency, w.rc, w.n);
    TU_OK(w.rc);
    assert_int_equal(w.n, 1);
    assert_int_equal(w.position, head + 1);
    assert_true(w.returned_us >= t_append); /* it waited */
    assert_true(latency < 1000000);
}

static void test_blocking_read_woken(void **state)
{
    tu_store *s = *state; /* open */
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    evs_db *other = NULL, *ro = NULL;

    tu_append1(s->db, NULL, "x-1", "E", "{}");
    TU_OK(evs_open(&other, s->dir, &o));
    o.flags = EVS_OPEN_READONLY;
    TU_OK(evs_open(&ro, s->dir, &o));
    wake_check(s->db, other, "another handle's append");
    wake_check(other, s->db, "the other way round");
    wake_check(ro, s->db, "a read-only handle");
    TU_OK(evs_close(ro));
    TU_OK(evs_close(other));
}

/* ------------------------------------------------------------------ */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_schema_of_fresh_database,
                                        tu_setup_store, tu_teardown_store),
        cmocka_unit_test_setup_teardown(test_other_apps_events_table,
                                        tu_setup_store_closed,
                                        tu_teardown_store),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused,
                                        tu_setup_store, tu_teardown_store),
        cmocka_unit_test_setup_teardown(test_upgrade_from_0001, tu_setup_store_closed,
                                        tu_teardown_store),
        cmocka_unit_test_setup_teardown(test_foreign_evstore_schema_refused,
                                        tu_setup_store_closed,
                                        tu_teardown_store),
        cmocka_unit_test(test_unreachable_server),
        cmocka_unit_test_setup_teardown(test_wrong_password,
                                        tu_setup_store_closed,
                                        tu_teardown_store),
        cmocka_unit_test_setup_teardown(test_sql_metacharacters,
                                        tu_setup_store, tu_teardown_store),
        cmocka_unit_test_setup_teardown(test_no_skipped_events,
                                        tu_setup_store, tu_teardown_store),
        cmocka_unit_test_setup_teardown(test_connection_lost_mid_append,
                                        tu_setup_store, tu_teardown_store),
        cmocka_unit_test_setup_teardown(test_blocking_read_woken,
                                        tu_setup_store, tu_teardown_store),
    };
    if (!tu_backend_pg()) {
        fprintf(stderr, "test_postgres runs on PostgreSQL only: set "
                        "EVS_TEST_BACKEND=postgresql and EVS_TEST_PG "
                        "(tests/README.md)\n");
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
