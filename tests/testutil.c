/*
 * testutil.c -- helpers shared by the test programs (see testutil.h).
 */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if EVS_WITH_POSTGRES
#include <libpq-fe.h>
#endif

/* ------------------------------------------------------------------ */
/* Checked calls                                                       */
/* ------------------------------------------------------------------ */

const char *tu_errname(int rc)
{
    switch (rc) {
    case 0:
        return "0";
#define TU__NAME(name, val, msg)                                             \
    case val:                                                                \
        return "EVS_" #name;
        EVS_ERRNO_MAP(TU__NAME)
#undef TU__NAME
    default:
        return "?";
    }
}

void tu_report_rc(const char *expr, int rc, int expected, const char *file,
                  int line)
{
    /* Copy first: the message is only valid until the next evs_* call. */
    char msg[1024];
    const char *m = evs_last_error();
    snprintf(msg, sizeof msg, "%s", m ? m : "(null)");
    print_error("%s:%d: %s returned %d (%s), expected %d (%s); "
                "evs_last_error: \"%s\"\n",
                file, line, expr, rc, tu_errname(rc), expected,
                tu_errname(expected), msg);
}

int tu_contains_number(const char *s, int64_t n)
{
    char num[32];
    size_t len;
    const char *p;

    if (s == NULL)
        return 0;
    snprintf(num, sizeof num, "%" PRId64, n);
    len = strlen(num);
    for (p = strstr(s, num); p != NULL; p = strstr(p + 1, num)) {
        int before_ok = p == s || (p[-1] < '0' || p[-1] > '9');
        int after_ok = p[len] < '0' || p[len] > '9';
        if (n >= 0 && p != s && p[-1] == '-')
            before_ok = 0;
        if (before_ok && after_ok)
            return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Temporary stores                                                    */
/* ------------------------------------------------------------------ */

char *tu_path_join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *p = malloc(la + lb + 2);
    if (p == NULL)
        return NULL;
    memcpy(p, a, la);
    p[la] = '/';
    memcpy(p + la + 1, b, lb + 1);
    return p;
}

char *tu_mkdtemp(void)
{
    const char *base = getenv("TMPDIR");
    char *tmpl;

    if (base == NULL || base[0] == '\0')
        base = "/tmp";
    tmpl = tu_path_join(base, "evstest-XXXXXX");
    if (tmpl == NULL)
        return NULL;
    if (mkdtemp(tmpl) == NULL) {
        free(tmpl);
        return NULL;
    }
    return tmpl;
}

static int rmrf_cb(const char *path, const struct stat *sb, int flag,
                   struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int tu_rmrf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -1;
    return nftw(path, rmrf_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* ------------------------------------------------------------------ */
/* Backends                                                            */
/* ------------------------------------------------------------------ */

int tu_backend_pg(void)
{
    const char *b = getenv("EVS_TEST_BACKEND");
    if (b == NULL || b[0] == '\0' || strcmp(b, "embedded") == 0)
        return 0;
    if (strcmp(b, "postgresql") == 0)
        return 1;
    print_error("EVS_TEST_BACKEND=%s: expected embedded or postgresql\n", b);
    fail();
    return 0;
}

const char *tu_backend_name(void)
{
    return tu_backend_pg() ? "postgresql" : "embedded";
}

/* EVS_TEST_PG, asserting it is a postgresql:// or postgres:// URI. */
static const char *pg_base_uri(void)
{
    const char *u = getenv("EVS_TEST_PG");
    if (u == NULL || (strncmp(u, "postgresql://", 13) != 0 &&
                      strncmp(u, "postgres://", 11) != 0)) {
        print_error("EVS_TEST_BACKEND=postgresql needs EVS_TEST_PG, a libpq "
                    "URI (postgresql://...) of a database on the server to "
                    "test on; it is %s%s%s\n",
                    u ? "\"" : "", u ? u : "unset", u ? "\"" : "");
        fail();
    }
    return u;
}

/* Length of "key" in "key=value" (the whole string without '='). */
static size_t param_key_len(const char *p, size_t len)
{
    const char *eq = memchr(p, '=', len);
    return eq ? (size_t)(eq - p) : len;
}

char *tu_pg_uri(const char *db, const char *const *set, size_t nset)
{
    const char *u = pg_base_uri();
    const char *rest = strstr(u, "://") + 3;
    const char *q = strchr(rest, '?');
    const char *slash = strchr(rest, '/');
    size_t auth_end, cap, len, i;
    const char *p;
    char *out;

    /* scheme://authority[/dbname][?k=v&...] */
    if (slash != NULL && (q == NULL || slash < q))
        auth_end = (size_t)(slash - u);
    else
        auth_end = q ? (size_t)(q - u) : strlen(u);
    cap = strlen(u) + (db ? strlen(db) : 0) + 8;
    for (i = 0; i < nset; i++)
        cap += strlen(set[i]) + 1;
    out = malloc(cap);
    assert_non_null(out);
    memcpy(out, u, auth_end);
    len = auth_end;
    if (db != NULL) {
        len += (size_t)snprintf(out + len, cap - len, "/%s", db);
    } else if (slash != NULL && (q == NULL || slash < q)) {
        size_t n = q ? (size_t)(q - slash) : strlen(slash);
        memcpy(out + len, slash, n);
        len += n;
    }
    /* The original parameters except those set anew, then the new ones. */
    out[len++] = '?';
    for (p = q ? q + 1 : NULL; p != NULL && *p != '\0';) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        size_t k = param_key_len(p, n);
        int replaced = 0;
        for (i = 0; i < nset; i++)
            if (param_key_len(set[i], strlen(set[i])) == k &&
                strncmp(set[i], p, k) == 0)
                replaced = 1;
        if (!replaced && n > 0) {
            memcpy(out + len, p, n);
            len += n;
            out[len++] = '&';
        }
        p = amp ? amp + 1 : NULL;
    }
    for (i = 0; i < nset; i++) {
        size_t n = strlen(set[i]);
        memcpy(out + len, set[i], n);
        len += n;
        out[len++] = '&';
    }
    out[--len] = '\0'; /* the last '&' or a '?' with no parameters */
    return out;
}

#if EVS_WITH_POSTGRES
/* A connection to EVS_TEST_PG's database, or NULL after printing why. */
static PGconn *pg_admin(void)
{
    PGconn *c = PQconnectdb(pg_base_uri());
    if (PQstatus(c) != CONNECTION_OK) {
        print_error("connecting to EVS_TEST_PG (%s) failed: %s\n",
                    pg_base_uri(), PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}

static int pg_admin_exec(const char *sql)
{
    PGconn *c = pg_admin();
    PGresult *r;
    int rc = 0;
    if (c == NULL)
        return -1;
    r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        print_error("%s: %s\n", sql, PQerrorMessage(c));
        rc = -1;
    }
    PQclear(r);
    PQfinish(c);
    return rc;
}
int tu_pg_settle(const char *name)
{
    PGconn *c = pg_admin();
    const char *params[1] = {name};
    int rc = -1;
    if (c == NULL)
        return -1;
    for (int i = 0; i < 1000 && rc < 0; i++) {
        PGresult *r = PQexecParams(c, "SELECT count(*) FROM pg_stat_activity WHERE "
                                      "datname = $1 AND pid <> pg_backend_pid()",
                                   1, NULL, params, NULL, NULL, 0);
        int ok = PQresultStatus(r) == PGRES_TUPLES_OK;
        if (!ok)
            print_error("tu_pg_settle: %s\n", PQerrorMessage(c));
        else if (atoi(PQgetvalue(r, 0, 0)) == 0)
            rc = 0;
        PQclear(r);
        if (!ok)
            break;
        if (rc < 0)
            tu_sleep_ms(10);
    }
    if (rc < 0)
        print_error("tu_pg_settle: sessions on %s did not end within 10 s\n", name);
    PQfinish(c);
    return rc;
}
#else
/* Built without the PostgreSQL backend: no database to make or drop. */
static int pg_admin_exec(const char *sql)
{
    print_error("%s: this build has no PostgreSQL backend "
                "(EVS_WITH_POSTGRES=OFF)\n", sql);
    return -1;
}

int tu_pg_settle(const char *name)
{
    print_error("tu_pg_settle(%s): this build has no PostgreSQL backend\n", name);
    return -1;
}
#endif

/*
 * The databases this process made and has not dropped yet: dropped at
 * exit, so that a test whose setup failed (cmocka then skips the
 * teardown) leaves nothing behind on a shared server. Only by the process
 * that made them, not by a forked child that calls exit().
 */
static char (*pg_made)[64];
static size_t pg_nmade;
static pid_t pg_maker;

static void pg_drop_leftovers(void)
{
    if (getpid() != pg_maker || getenv("EVS_TEST_KEEP") != NULL)
        return;
    while (pg_nmade > 0)
        if (tu_pg_drop_db(pg_made[pg_nmade - 1]) != 0)
            pg_nmade--; /* reported; do not loop */
}

int tu_pg_create_db(char *name, size_t n)
{
    static unsigned counter; /* tu_store_new runs on the main thread */
    char sql[160];
    void *grown;
    snprintf(name, n, "evs_t_%ld_%u", (long)getpid(), ++counter);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    if (pg_admin_exec(sql) != 0)
        return -1;
    if (pg_maker != getpid()) {
        pg_maker = getpid();
        pg_nmade = 0;
        atexit(pg_drop_leftovers);
    }
    grown = realloc(pg_made, (pg_nmade + 1) * sizeof *pg_made);
    if (grown != NULL) {
        pg_made = grown;
        snprintf(pg_made[pg_nmade++], sizeof *pg_made, "%s", name);
    }
    return 0;
}

int tu_pg_drop_db(const char *name)
{
    char sql[160];
    size_t i;
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)",
             name);
    if (pg_admin_exec(sql) != 0)
        return -1;
    for (i = 0; i < pg_nmade; i++)
        if (strcmp(pg_made[i], name) == 0) {
            memmove(pg_made[i], pg_made[i + 1],
                    (pg_nmade - i - 1) * sizeof *pg_made);
            pg_nmade--;
            break;
        }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Temporary stores                                                    */
/* ------------------------------------------------------------------ */

tu_store *tu_store_new(void)
{
    tu_store *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->tmp = tu_mkdtemp();
    assert_non_null(s->tmp);
    if (tu_backend_pg()) {
        char name[64];
        assert_int_equal(tu_pg_create_db(name, sizeof name), 0);
        s->pgdb = strdup(name);
        assert_non_null(s->pgdb);
        s->dir = tu_pg_uri(name, NULL, 0);
    } else {
        s->dir = tu_path_join(s->tmp, "db");
    }
    assert_non_null(s->dir);
    return s;
}

void tu_store_free(tu_store *s)
{
    if (s == NULL)
        return;
    if (s->db != NULL)
        evs_close(s->db);
    /* Keep the store for a post-mortem when asked to. */
    if (getenv("EVS_TEST_KEEP") == NULL) {
        tu_rmrf(s->tmp);
        if (s->pgdb != NULL)
            tu_pg_drop_db(s->pgdb);
    } else {
        print_message("kept test store %s\n", s->dir);
    }
    free(s->pgdb);
    free(s->dir);
    free(s->tmp);
    free(s);
}

void tu_store_open_opts(tu_store *s, const evs_open_options *opts)
{
    evs_db *db = NULL;
    assert_null(s->db);
    /* EVS_TEST_PG_REPLICA_SELF=1 (PostgreSQL stores): every handle reads
     * through the replica path, with the store's own server as its
     * "replica" (routing, read-your-writes, commit waits by polling the
     * head instead of LISTEN; docs/POSTGRES.md "Reads from a replica") */
    evs_open_options ro;
    const char *self = getenv("EVS_TEST_PG_REPLICA_SELF");
    if (self && *self == '1' && strncmp(s->dir, "postgres", 8) == 0 && opts &&
        opts->version >= 5 && !opts->read_replica_uri) {
        ro = *opts;
        ro.read_replica_uri = s->dir;
        opts = &ro;
    }
    TU_OK(evs_open(&db, s->dir, opts));
    assert_non_null(db);
    s->db = db;
}

void tu_store_open(tu_store *s)
{
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    tu_store_open_opts(s, &o);
}

void tu_store_close(tu_store *s)
{
    evs_db *db = s->db;
    s->db = NULL;
    TU_OK(evs_close(db));
}

void tu_store_reopen(tu_store *s)
{
    tu_store_close(s);
    tu_store_open(s);
}

int tu_setup_store(void **state)
{
    tu_store *s = tu_store_new();
    tu_store_open(s);
    *state = s;
    return 0;
}

int tu_setup_store_closed(void **state)
{
    *state = tu_store_new();
    return 0;
}

int tu_teardown_store(void **state)
{
    tu_store_free(*state);
    *state = NULL;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Building events                                                     */
/* ------------------------------------------------------------------ */

evs_event_data tu_event(const char *type, const char *json)
{
    evs_event_data e;
    memset(&e, 0, sizeof e);
    e.type = type;
    e.data = json;
    e.data_len = json ? strlen(json) : 0;
    e.content_type = EVS_CONTENT_JSON;
    return e;
}

evs_event_data tu_event_id(const char *type, const char *json)
{
    evs_event_data e = tu_event(type, json);
    evs_uuid_generate(&e.id);
    return e;
}

evs_event_data tu_event_bin(const char *type, const void *data, size_t len)
{
    evs_event_data e;
    memset(&e, 0, sizeof e);
    e.type = type;
    e.data = data;
    e.data_len = len;
    e.content_type = EVS_CONTENT_BINARY;
    return e;
}

uint64_t tu_append1(evs_db *db, const char *tenant, const char *stream,
                    const char *type, const char *json)
{
    evs_event_data e = tu_event(type, json);
    evs_append_result r;
    memset(&r, 0, sizeof r);
    TU_OK(evs_append(&r, db, tenant, stream, EVS_ANY, &e, 1));
    assert_int_equal(r.first_position, r.last_position);
    return r.last_position;
}

/* ------------------------------------------------------------------ */
/* Reading into owned copies                                           */
/* ------------------------------------------------------------------ */

static char *dup_bytes(const void *p, size_t len)
{
    char *d = malloc(len + 1);
    if (d == NULL)
        abort();
    if (len > 0)
        memcpy(d, p, len);
    d[len] = '\0';
    return d;
}

static char *dup_str(const char *s)
{
    return s ? dup_bytes(s, strlen(s)) : NULL;
}

static void copy_event(tu_event_copy *c, const evs_event *ev)
{
    size_t i;
    memset(c, 0, sizeof *c);
    c->position = ev->position;
    c->stream_version = ev->stream_version;
    c->tenant = dup_str(ev->tenant);
    c->stream = dup_str(ev->stream);
    c->type = dup_str(ev->type);
    c->id = ev->id;
    c->correlation_id = ev->correlation_id;
    c->causation_id = ev->causation_id;
    c->recorded_at = ev->recorded_at;
    c->content_type = ev->content_type;
    c->data_len = ev->data_len;
    c->data = dup_bytes(ev->data, ev->data != NULL ? ev->data_len : 0);
    c->data_nul_ok =
        ev->data != NULL && ((const char *)ev->data)[ev->data_len] == '\0';
    c->metadata_len = ev->metadata_len;
    c->metadata =
        dup_bytes(ev->metadata, ev->metadata != NULL ? ev->metadata_len : 0);
    c->metadata_nul_ok = ev->metadata != NULL &&
                         ((const char *)ev->metadata)[ev->metadata_len] ==
                             '\0';
    c->ntags = ev->ntags;
    c->tags = calloc(ev->ntags + 1, sizeof *c->tags);
    if (c->tags == NULL)
        abort();
    for (i = 0; i < ev->ntags; i++)
        c->tags[i] = dup_str(ev->tags ? ev->tags[i] : NULL);
}

static void free_copy(tu_event_copy *c)
{
    size_t i;
    free(c->tenant);
    free(c->stream);
    free(c->type);
    free(c->data);
    free(c->metadata);
    for (i = 0; i < c->ntags; i++)
        free(c->tags[i]);
    free(c->tags);
}

int tu_collect(tu_events *out, evs_iter *it)
{
    for (;;) {
        const evs_event *ev = NULL;
        int rc = evs_iter_next(&ev, it);
        if (rc == EVS_ITEROVER)
            return 0;
        if (rc != 0)
            return rc;
        if (ev == NULL)
            return EVS_EINVAL; /* the iterator broke its contract */
        if (out->n == out->cap) {
            size_t cap = out->cap ? out->cap * 2 : 64;
            tu_event_copy *v = realloc(out->v, cap * sizeof *v);
            if (v == NULL)
                abort();
            out->v = v;
            out->cap = cap;
        }
        copy_event(&out->v[out->n++], ev);
    }
}

int tu_read_stream(tu_events *out, evs_db *db, const char *tenant,
                   const char *stream, int64_t from_version,
                   evs_direction dir, uint64_t limit)
{
    evs_iter *it = NULL;
    int rc = evs_read_stream(&it, db, tenant, stream, from_version, dir,
                             limit);
    if (rc != 0)
        return rc;
    rc = tu_collect(out, it);
    evs_iter_free(it);
    return rc;
}

int tu_read_all(tu_events *out, evs_db *db, const char *tenant,
                uint64_t from_position, uint64_t limit)
{
    evs_iter *it = NULL;
    int rc = evs_read_all(&it, db, tenant, from_position, limit);
    if (rc != 0)
        return rc;
    rc = tu_collect(out, it);
    evs_iter_free(it);
    return rc;
}

int tu_read_query(tu_events *out, uint64_t *marker, evs_db *db,
                  const char *tenant, const evs_query *query,
                  uint64_t position_bound, evs_direction dir,
                  uint64_t limit)
{
    evs_iter *it = NULL;
    int rc = evs_read_query(&it, db, tenant, query, position_bound, dir,
                            limit);
    if (rc != 0)
        return rc;
    rc = tu_collect(out, it);
    if (rc == 0 && marker != NULL)
        rc = evs_iter_marker(marker, it);
    evs_iter_free(it);
    return rc;
}

void tu_events_clear(tu_events *ev)
{
    size_t i;
    for (i = 0; i < ev->n; i++)
        free_copy(&ev->v[i]);
    ev->n = 0;
}

void tu_events_free(tu_events *ev)
{
    tu_events_clear(ev);
    free(ev->v);
    ev->v = NULL;
    ev->cap = 0;
}

void tu_assert_tags(const tu_event_copy *e, const char *const *tags,
                    size_t ntags)
{
    size_t i, j;
    assert_int_equal(e->ntags, ntags);
    for (i = 0; i < ntags; i++) {
        int found = 0;
        for (j = 0; j < e->ntags; j++)
            if (e->tags[j] != NULL && strcmp(e->tags[j], tags[i]) == 0)
                found = 1;
        if (!found)
            print_error("tag \"%s\" missing from event at position %" PRIu64
                        "\n",
                        tags[i], e->position);
        assert_true(found);
    }
}

int tu_uuid_eq(const evs_uuid *a, const evs_uuid *b)
{
    return memcmp(a->bytes, b->bytes, 16) == 0;
}

void tu_assert_uuid_equal_(const evs_uuid *a, const evs_uuid *b,
                           const char *file, int line)
{
    char ta[37], tb[37];
    if (tu_uuid_eq(a, b))
        return;
    evs_uuid_format(ta, a);
    evs_uuid_format(tb, b);
    print_error("%s:%d: uuid %s != %s\n", file, line, ta, tb);
    assert_string_equal(ta, tb);
}

evs_stats tu_stats(evs_db *db)
{
    evs_stats st;
    memset(&st, 0, sizeof st);
    TU_OK(evs_stats_get(&st, db));
    return st;
}

uint64_t tu_head(evs_db *db, const char *tenant)
{
    uint64_t h = UINT64_MAX;
    TU_OK(evs_head_position(&h, db, tenant));
    return h;
}

int64_t tu_version(evs_db *db, const char *tenant, const char *stream)
{
    int64_t v = INT64_MIN;
    TU_OK(evs_stream_version(&v, db, tenant, stream));
    return v;
}

/* ------------------------------------------------------------------ */
/* Files of the store                                                  */
/* ------------------------------------------------------------------ */

static int is_segment_name(const char *name)
{
    size_t i;
    if (strlen(name) != 16 + strlen(".evslog"))
        return 0;
    for (i = 0; i < 16; i++) {
        char c = name[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
              (c >= 'A' && c <= 'F')))
            return 0;
    }
    return strcmp(name + 16, ".evslog") == 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The helpers below read the embedded store's files: a test case that
 * calls them must start with TU_EMBEDDED_ONLY(). */
static void embedded_only_helper(const char *helper)
{
    if (tu_backend_pg()) {
        print_error("%s reads the embedded store's files: the test case "
                    "must start with TU_EMBEDDED_ONLY()\n",
                    helper);
        fail();
    }
}

char **tu_segments(const char *dir, size_t *n)
{
    char *logdir;
    DIR *d;
    struct dirent *de;
    char **v = NULL;
    size_t cnt = 0;

    embedded_only_helper("tu_segments");
    logdir = tu_path_join(dir, "log");
    d = opendir(logdir);
    if (d == NULL)
        print_error("opendir %s: %s\n", logdir, strerror(errno));
    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        if (!is_segment_name(de->d_name))
            continue;
        v = realloc(v, (cnt + 1) * sizeof *v);
        assert_non_null(v);
        v[cnt++] = tu_path_join(logdir, de->d_name);
    }
    closedir(d);
    free(logdir);
    /* Same-length hex names of one case sort numerically. */
    if (cnt > 1)
        qsort(v, cnt, sizeof *v, cmp_str);
    *n = cnt;
    return v;
}

void tu_free_strings(char **v, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

char *tu_last_segment(const char *dir)
{
    size_t n = 0;
    char **v = tu_segments(dir, &n);
    char *last;
    assert_true(n >= 1);
    last = v[n - 1];
    v[n - 1] = NULL;
    tu_free_strings(v, n - 1);
    return last;
}

unsigned char *tu_read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    unsigned char *buf;
    size_t got = 0;

    if (fd < 0)
        print_error("open %s: %s\n", path, strerror(errno));
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    buf = malloc((size_t)st.st_size + 1);
    assert_non_null(buf);
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        assert_true(r > 0);
        got += (size_t)r;
    }
    close(fd);
    buf[got] = 0;
    *len = got;
    return buf;
}

void tu_write_at(const char *path, uint64_t off, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY);
    ssize_t w;
    assert_true(fd >= 0);
    w = pwrite(fd, buf, len, (off_t)off);
    assert_int_equal(w, (ssize_t)len);
    assert_int_equal(fsync(fd), 0);
    close(fd);
}

uint64_t tu_data_end(const char *path)
{
    size_t len = 0, i;
    unsigned char *buf = tu_read_file(path, &len);
    uint64_t end = 0;
    for (i = len; i > 0; i--) {
        if (buf[i - 1] != 0) {
            end = i;
            break;
        }
    }
    free(buf);
    return end;
}

void tu_copy_tree(const char *src, const char *dst)
{
    pid_t pid;
    int status;
    embedded_only_helper("tu_copy_tree");
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl("/bin/cp", "cp", "-a", src, dst, (char *)NULL);
        _exit(127);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

uint64_t tu_log_end(const char *dir)
{
    char *copy = tu_path_join(dir, "../probe-copy");
    char *seg = tu_last_segment(dir), *cseg, *name;
    uint64_t end = tu_data_end(seg), p;
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    evs_event_data ev = tu_event("Probe", "{\"probe\":1}");
    evs_db *db = NULL;
    unsigned char *buf;
    size_t len = 0;

    embedded_only_helper("tu_log_end");
    assert_int_equal(tu_rmrf(copy), 0);
    tu_copy_tree(dir, copy);
    o.flags = 0;
    TU_OK(evs_open(&db, copy, &o));
    TU_OK(evs_append(NULL, db, NULL, "probe", EVS_ANY, &ev, 1));
    TU_OK(evs_close(db));

    cseg = tu_last_segment(copy);
    name = strrchr(seg, '/');
    assert_non_null(name);
    /* The probe must not have rolled over to a new segment. */
    assert_string_equal(strrchr(cseg, '/'), name);
    buf = tu_read_file(cseg, &len);
    for (p = end; p < len && buf[p] == 0; p++)
        ;
    assert_true(p < len);
    free(buf);
    free(cseg);
    free(seg);
    assert_int_equal(tu_rmrf(copy), 0);
    free(copy);
    return p;
}

/* ------------------------------------------------------------------ */
/* The evs command-line tool                                           */
/* ------------------------------------------------------------------ */

#ifndef EVS_CLI_PATH
#define EVS_CLI_PATH "evs"
#endif

int tu_run_cli(char **out, const char *const *argv)
{
    int pfd[2];
    pid_t pid;
    size_t argc = 0, i, len = 0, cap = 4096;
    char **args;
    char *buf;
    int status;

    while (argv[argc] != NULL)
        argc++;
    args = calloc(argc + 2, sizeof *args);
    if (args == NULL)
        return -1;
    args[0] = (char *)EVS_CLI_PATH;
    for (i = 0; i < argc; i++)
        args[i + 1] = (char *)argv[i];
    if (pipe(pfd) != 0) {
        free(args);
        return -1;
    }
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0) {
        free(args);
        close(pfd[0]);
        close(pfd[1]);
        return -1;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, 0);
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        execv(EVS_CLI_PATH, args);
        _exit(127);
    }
    free(args);
    close(pfd[1]);
    buf = malloc(cap);
    if (buf == NULL)
        abort();
    for (;;) {
        ssize_t r;
        if (len + 1 == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            if (buf == NULL)
                abort();
        }
        r = read(pfd[0], buf + len, cap - len - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    buf[len] = '\0';
    close(pfd[0]);
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            free(buf);
            return -1;
        }
    }
    if (out != NULL)
        *out = buf;
    else
        free(buf);
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

/* ------------------------------------------------------------------ */
/* Randomness, time, threads                                           */
/* ------------------------------------------------------------------ */

uint64_t tu_seed(const char *name)
{
    const char *env = getenv("EVS_TEST_SEED");
    uint64_t seed;
    if (env != NULL && env[0] != '\0') {
        seed = strtoull(env, NULL, 0);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = ((uint64_t)ts.tv_sec * 1000003u) ^ (uint64_t)ts.tv_nsec ^
               ((uint64_t)getpid() << 32);
        seed &= 0xffffffffffffull; /* short enough to retype */
    }
    print_message("%s: seed=%" PRIu64 " (set EVS_TEST_SEED to replay)\n",
                  name, seed);
    return seed;
}

uint64_t tu_seed_default(const char *name, uint64_t dflt)
{
    const char *env = getenv("EVS_TEST_SEED");
    uint64_t seed = dflt;
    if (env != NULL && env[0] != '\0')
        seed = strtoull(env, NULL, 0);
    print_message("%s: seed=%" PRIu64 " (set EVS_TEST_SEED to replay or "
                  "change)\n",
                  name, seed);
    return seed;
}

void tu_rng_init(tu_rng *r, uint64_t seed)
{
    r->s = seed ^ 0x9e3779b97f4a7c15ull;
    if (r->s == 0)
        r->s = 1;
}

uint64_t tu_rng_next(tu_rng *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545f4914f6cdd1dull;
}

uint64_t tu_rng_range(tu_rng *r, uint64_t lo, uint64_t hi)
{
    if (hi <= lo)
        return lo;
    return lo + tu_rng_next(r) % (hi - lo + 1);
}

int64_t tu_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void tu_sleep_ms(unsigned ms)
{
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static pthread_mutex_t fail_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned fail_count;
static char fail_first[1024];

void tu_fail(const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&fail_mu);
    if (fail_count++ == 0) {
        va_start(ap, fmt);
        vsnprintf(fail_first, sizeof fail_first, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&fail_mu);
}

unsigned tu_failures(void)
{
    unsigned n;
    pthread_mutex_lock(&fail_mu);
    n = fail_count;
    pthread_mutex_unlock(&fail_mu);
    return n;
}

const char *tu_first_failure(void)
{
    return fail_first;
}

void tu_failures_reset(void)
{
    pthread_mutex_lock(&fail_mu);
    fail_count = 0;
    fail_first[0] = '\0';
    pthread_mutex_unlock(&fail_mu);
}

/* ---- model tests ---------------------------------------------------- */

unsigned tu_op_no;
char tu_op_desc[512];

void tu_describe(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tu_op_desc, sizeof tu_op_desc, fmt, ap);
    va_end(ap);
    if (getenv("EVS_TEST_VERBOSE"))
        print_message("op %u: %s\n", tu_op_no, tu_op_desc);
}

static void fmt_positions(char *buf, size_t cap, const uint64_t *v,
                          size_t n)
{
    size_t i, len = 0;
    len += (size_t)snprintf(buf + len, cap - len, "[");
    for (i = 0; i < n && len + 24 < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%" PRIu64,
                                i ? "," : "", v[i]);
    if (i < n)
        len += (size_t)snprintf(buf + len, cap - len, ",...");
    snprintf(buf + len, cap - len, "]");
}

/* Positions of a result list into a malloc'd array. */
static uint64_t *positions_of(const tu_events *e)
{
    uint64_t *v = malloc((e->n + 1) * sizeof *v);
    size_t i;
    assert_non_null(v);
    for (i = 0; i < e->n; i++)
        v[i] = e->v[i].position;
    return v;
}

void assert_positions_(const tu_events *e, const uint64_t *want,
                       size_t nwant, const char *what,
                       const char *file, int line)
{
    uint64_t *got = positions_of(e);
    int ok = e->n == nwant;
    size_t i;
    for (i = 0; ok && i < nwant; i++)
        ok = got[i] == want[i];
    if (!ok) {
        char a[2048], b[2048];
        fmt_positions(a, sizeof a, got, e->n);
        fmt_positions(b, sizeof b, want, nwant);
        print_error("%s:%d: %s returned positions %s, expected %s\n", file,
                    line, what, a, b);
    }
    free(got);
    assert_true(ok);
}
