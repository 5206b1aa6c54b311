/*
 * replica_client.c -- reads from a hot standby (evs_open_options'
 * read_replica_uri, docs/POSTGRES.md "Reads from a replica").
 *
 *   replica_client PRIMARY_URI STANDBY_URI
 *
 * Run by tests/postgres/replica.sh, which starts a primary and a streaming
 * standby made from it by pg_basebackup (both throwaway) and stops both.
 * Checks, on the database of the URIs (the clusters are the test's own):
 *
 *   1. follow: APPENDERS threads append on the primary (1-3 events per
 *      append, their own handle) while a tracking read of $all on a handle
 *      whose reads go to the standby follows them: every event arrives
 *      once, in position order, with the data appended at that position,
 *      within the deadline; a DCB query of a tag answers the same through
 *      the standby as through the primary. Prints the wake latency
 *      (acknowledged append to event read on the standby) while appends
 *      stream, and fails when its p99 is above 1 s.
 *   2. the reads really go to the standby: with its replay paused, an
 *      event appended on the primary is not seen through the replica
 *      handle (it is through the primary's), and the replica handle's
 *      connections are on the standby.
 *   3. read-your-writes: with replay paused, an append through the
 *      replica handle is read back at once through it (the primary
 *      serves the read), stream version included.
 *   4. a quiet spell: a tracking read waiting on the standby is woken by
 *      a single append on the primary; prints that latency (p99 < 1 s).
 *   5. bad input: read_replica_uri with an embedded store, a replica URI
 *      that is not a PostgreSQL URI, an unreachable replica; a version 4
 *      options struct does not read the field.
 *
 * Each check fails the program (exit 1) with both values printed.
 */
#include "evstore.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define APPENDERS 4
#define APPENDS 150 /* per appender; 1-3 events each */
#define MAX_EVENTS (APPENDERS * APPENDS * 3)
#define FOLLOW_DEADLINE_MS 15000
#define QUIET_ROUNDS 10

static const char *primary_uri, *standby_uri;

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);   \
            fprintf(stderr, __VA_ARGS__);                                     \
            fprintf(stderr, " (last error: %s)\n", evs_last_error());         \
            exit(1);                                                          \
        }                                                                     \
    } while (0)

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* One statement on the standby (libpq, not evstore): its one value. */
static void standby_sql(const char *sql, char *out, size_t n)
{
    PGconn *c = PQconnectdb(standby_uri);
    CHECK(PQstatus(c) == CONNECTION_OK, "connecting to the standby: %s", PQerrorMessage(c));
    PGresult *r = PQexec(c, sql);
    CHECK(PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(c));
    if (out)
        snprintf(out, n, "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    PQfinish(c);
}

static evs_db *open_store(const char *replica)
{
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    o.read_replica_uri = replica;
    evs_db *db = NULL;
    int rc = evs_open(&db, primary_uri, &o);
    CHECK(rc == 0, "evs_open (replica %s) = %d", replica ? replica : "none", rc);
    return db;
}

/* ---- 1. follow $all on the standby ----------------------------------------------- */

static evs_db *wdb;
static uint64_t ack_us[MAX_EVENTS + 1];   /* by position: when acknowledged */
static char expect[MAX_EVENTS + 1][32];    /* by position: the data appended */
static uint64_t seen_us[MAX_EVENTS + 1];   /* by position: when read */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_int finished;

static void *appender(void *arg)
{
    int t = (int)(intptr_t)arg;
    unsigned seed = 17u + (unsigned)t;
    for (int i = 0; i < APPENDS; i++) {
        char data[3][32], stream[32], tag[32];
        evs_event_data ev[3];
        int n = 1 + (int)(rand_r(&seed) % 3);
        snprintf(stream, sizeof(stream), "acct-%d_%d", t, i % 7);
        snprintf(tag, sizeof(tag), "account:%d_%d", t, i % 7);
        const char *tags[1] = {tag};
        for (int j = 0; j < n; j++) {
            snprintf(data[j], sizeof(data[j]), "{\"t\":%d,\"i\":%d,\"j\":%d}", t, i, j);
            memset(&ev[j], 0, sizeof(ev[j]));
            ev[j].type = "Deposited";
            ev[j].data = data[j];
            ev[j].data_len = strlen(data[j]);
            ev[j].content_type = EVS_CONTENT_JSON;
            ev[j].tags = tags;
            ev[j].ntags = 1;
        }
        evs_append_result res;
        int rc = evs_append(&res, wdb, NULL, stream, EVS_ANY, ev, (size_t)n);
        uint64_t at = now_us();
        CHECK(rc == 0, "append %d of appender %d = %d", i, t, rc);
        CHECK(res.last_position - res.first_position + 1 == (uint64_t)n &&
                  res.last_position <= MAX_EVENTS,
              "positions %llu..%llu for %d events", (unsigned long long)res.first_position,
              (unsigned long long)res.last_position, n);
        pthread_mutex_lock(&mu);
        for (int j = 0; j < n; j++) {
            ack_us[res.first_position + (uint64_t)j] = at;
            memcpy(expect[res.first_position + (uint64_t)j], data[j], strlen(data[j]) + 1);
        }
        pthread_mutex_unlock(&mu);
    }
    /* The last appender to finish appends the marker "Done": every other
     * event was acknowledged before it, so the follower knows the end
     * when it reads it. */
    if (atomic_fetch_add(&finished, 1) == APPENDERS - 1) {
        evs_event_data ev;
        memset(&ev, 0, sizeof(ev));
        ev.type = "Done";
        ev.data = "{}";
        ev.data_len = 2;
        ev.content_type = EVS_CONTENT_JSON;
        evs_append_result res;
        CHECK(evs_append(&res, wdb, NULL, "done-1", EVS_ANY, &ev, 1) == 0, "append Done");
        pthread_mutex_lock(&mu);
        ack_us[res.last_position] = now_us();
        memcpy(expect[res.last_position], "{}", 3);
        pthread_mutex_unlock(&mu);
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Print the latencies; fail when the p99 is above limit_ms (the poller
 * wakes within 50 ms of the standby's replay; the limit leaves room for
 * a loaded machine, and catches waits that end only by their timeout). */
static void latency_report(const char *what, uint64_t *v, size_t n, double limit_ms)
{
    qsort(v, n, sizeof(*v), cmp_u64);
    printf("%s: %zu events, wake latency p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", what, n,
           v[n / 2] / 1000.0, v[n * 99 / 100] / 1000.0, v[n - 1] / 1000.0);
    CHECK(v[n * 99 / 100] / 1000.0 < limit_ms, "%s: p99 wake latency %.2f ms, above %.0f ms",
          what, v[n * 99 / 100] / 1000.0, limit_ms);
}

static void test_follow(evs_db *rdb)
{
    pthread_t th[APPENDERS];
    uint64_t total = 0, after = 0;
    int done = 0;
    for (int t = 0; t < APPENDERS; t++)
        CHECK(pthread_create(&th[t], NULL, appender, (void *)(intptr_t)t) == 0, "thread");
    uint64_t start = now_us();
    evs_tracking tr = EVS_TRACKING_INIT;
    for (;;) {
        evs_iter *it = NULL;
        /* a long timeout: the commits must wake the read (the latency
         * check below fails when only the timeout ends the waits) */
        int rc = evs_read_tracking(&it, rdb, &tr, after, 0, 5000000);
        CHECK(rc == 0, "read_tracking after %llu = %d", (unsigned long long)after, rc);
        const evs_event *e;
        while ((rc = evs_iter_next(&e, it)) == 0) {
            uint64_t at = now_us();
            CHECK(e->position == after + 1, "event at position %llu after %llu: skipped or "
                  "out of order", (unsigned long long)e->position, (unsigned long long)after);
            CHECK(e->position <= MAX_EVENTS, "position %llu", (unsigned long long)e->position);
            CHECK(seen_us[e->position] == 0, "position %llu read twice",
                  (unsigned long long)e->position);
            seen_us[e->position] = at;
            after = e->position;
            total++;
            if (strcmp(e->type, "Done") == 0)
                done = 1;
        }
        CHECK(rc == EVS_ITEROVER, "iter_next = %d", rc);
        uint64_t m;
        CHECK(evs_iter_marker(&m, it) == 0 && m >= after, "marker %llu after %llu",
              (unsigned long long)m, (unsigned long long)after);
        evs_iter_free(it);
        if (done)
            break;
        CHECK(now_us() - start < FOLLOW_DEADLINE_MS * 1000ull,
              "only %llu events arrived on the standby within %d ms, not the marker",
              (unsigned long long)total, FOLLOW_DEADLINE_MS);
    }
    for (int t = 0; t < APPENDERS; t++)
        pthread_join(th[t], NULL);
    evs_stats st;
    CHECK(evs_stats_get(&st, wdb) == 0, "stats");
    uint64_t expected_total = st.head_position;
    CHECK(total == expected_total, "%llu events read, %llu appended",
          (unsigned long long)total, (unsigned long long)expected_total);
    /* every event once (above), with what was appended at its position */
    evs_iter *it;
    const evs_event *e;
    int rc;
    CHECK(evs_read_all(&it, rdb, NULL, 1, 0) == 0, "read_all");
    uint64_t n = 0;
    while ((rc = evs_iter_next(&e, it)) == 0) {
        n++;
        CHECK(e->data_len == strlen(expect[e->position]) &&
                  memcmp(e->data, expect[e->position], e->data_len) == 0,
              "position %llu holds %.*s, appended %s", (unsigned long long)e->position,
              (int)e->data_len, (const char *)e->data, expect[e->position]);
    }
    CHECK(rc == EVS_ITEROVER && n == total, "read_all: %llu events, rc %d",
          (unsigned long long)n, rc);
    evs_iter_free(it);
    /* a DCB query (a prepared shape, docs/POSTGRES.md "Reads") answers the
     * same on the standby as on the primary */
    for (int t = 0; t < APPENDERS; t++) {
        char tag[32];
        snprintf(tag, sizeof(tag), "account:%d_3", t);
        const char *types[] = {"Deposited"}, *tags[] = {tag};
        evs_query_item item = {.types = types, .ntypes = 1, .tags = tags, .ntags = 1};
        evs_query q = {.items = &item, .nitems = 1};
        uint64_t cnt[2] = {0, 0};
        evs_db *dbs[2] = {rdb, wdb};
        for (int d = 0; d < 2; d++) {
            CHECK(evs_read_query(&it, dbs[d], NULL, &q, 0, EVS_FORWARD, 0) == 0, "read_query");
            uint64_t prev = 0;
            while ((rc = evs_iter_next(&e, it)) == 0) {
                CHECK(e->position > prev, "query order");
                prev = e->position;
                cnt[d]++;
            }
            CHECK(rc == EVS_ITEROVER, "query: %d", rc);
            evs_iter_free(it);
        }
        CHECK(cnt[0] == cnt[1] && cnt[0] > 0, "tag %s: %llu events on the standby, %llu on "
              "the primary", tag, (unsigned long long)cnt[0], (unsigned long long)cnt[1]);
    }
    static uint64_t lat[MAX_EVENTS];
    for (uint64_t p = 1; p <= total; p++)
        lat[p - 1] = seen_us[p] > ack_us[p] ? seen_us[p] - ack_us[p] : 0;
    printf("follow: %d appenders x %d appends on the primary, $all followed on the standby: "
           "%llu events, each once, in order, in %.2f s\n", APPENDERS, APPENDS,
           (unsigned long long)total, (now_us() - start) / 1e6);
    latency_report("follow (appends streaming)", lat, (size_t)total, 1000);
}

/* ---- 2, 3. the standby answers; read-your-writes ------------------------------------- */

static uint64_t head_of(evs_db *db)
{
    uint64_t h;
    CHECK(evs_head_position(&h, db, NULL) == 0, "head_position");
    return h;
}

static void append_one(evs_db *db, const char *stream, evs_append_result *res)
{
    evs_event_data ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = "Noted";
    ev.data = "{}";
    ev.data_len = 2;
    ev.content_type = EVS_CONTENT_JSON;
    int rc = evs_append(res, db, NULL, stream, EVS_ANY, &ev, 1);
    CHECK(rc == 0, "append to %s = %d", stream, rc);
}

/* Events after `after` a tracking read (no wait) returns. */
static uint64_t count_after(evs_db *db, uint64_t after)
{
    evs_tracking tr = EVS_TRACKING_INIT;
    evs_iter *it;
    const evs_event *e;
    uint64_t n = 0;
    CHECK(evs_read_tracking(&it, db, &tr, after, 0, 0) == 0, "read_tracking");
    while (evs_iter_next(&e, it) == 0)
        n++;
    evs_iter_free(it);
    return n;
}

static void test_paused(evs_db *rdb)
{
    char v[64];
    uint64_t h = head_of(wdb);
    standby_sql("SELECT pg_wal_replay_pause()", NULL, 0);
    evs_append_result res;
    append_one(wdb, "other-1", &res);
    /* the primary has it; the standby, paused, does not */
    CHECK(count_after(wdb, h) == 1, "the primary's own handle reads %llu events after %llu",
          (unsigned long long)count_after(wdb, h), (unsigned long long)h);
    CHECK(count_after(rdb, h) == 0, "the replica handle read %llu events the paused standby "
          "has not replayed: its reads do not go to the standby",
          (unsigned long long)count_after(rdb, h));
    standby_sql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                "AND pid <> pg_backend_pid()", v, sizeof(v));
    CHECK(atoi(v) >= 1, "%s connections of the replica handle on the standby", v);

    /* read-your-writes: this handle's append is read back through it */
    evs_append_result mine;
    append_one(rdb, "mine-1", &mine);
    evs_iter *it;
    const evs_event *e;
    CHECK(evs_read_stream(&it, rdb, NULL, "mine-1", 0, EVS_FORWARD, 0) == 0, "read_stream");
    int rc = evs_iter_next(&e, it);
    CHECK(rc == 0 && e->position == mine.last_position,
          "read-your-writes: read_stream right after the append = %d", rc);
    evs_iter_free(it);
    int64_t ver;
    CHECK(evs_stream_version(&ver, rdb, NULL, "mine-1") == 0 && ver == 0,
          "read-your-writes: stream_version %lld", (long long)ver);
    CHECK(count_after(rdb, h) == 2, "read-your-writes: $all after %llu through the replica "
          "handle: %llu events", (unsigned long long)h,
          (unsigned long long)count_after(rdb, h));
    standby_sql("SELECT pg_wal_replay_resume()", NULL, 0);
    uint64_t t0 = now_us();
    while (count_after(rdb, h) != 2) {
        CHECK(now_us() - t0 < 5000000, "the standby did not catch up after resuming replay");
        sleep_ms(5);
    }
    printf("paused standby: not read through the replica handle; read-your-writes "
           "through the primary: ok\n");
}

/* ---- 4. a quiet spell --------------------------------------------------------------- */

typedef struct waiter {
    evs_db *db;
    uint64_t after, woke_us;
    int rc;
    uint64_t got;
} waiter;

static void *wait_one(void *arg)
{
    waiter *w = arg;
    evs_tracking tr = EVS_TRACKING_INIT;
    evs_iter *it;
    const evs_event *e;
    w->rc = evs_read_tracking(&it, w->db, &tr, w->after, 0, 5000000);
    w->woke_us = now_us();
    if (w->rc == 0) {
        while (evs_iter_next(&e, it) == 0)
            w->got++;
        evs_iter_free(it);
    }
    return NULL;
}

static void test_quiet(evs_db *rdb)
{
    uint64_t lat[QUIET_ROUNDS];
    for (int i = 0; i < QUIET_ROUNDS; i++) {
        waiter w = {.db = rdb, .after = head_of(wdb)};
        pthread_t th;
        CHECK(pthread_create(&th, NULL, wait_one, &w) == 0, "thread");
        sleep_ms(150 + 37 * i); /* the poller backs off to its longest interval */
        evs_append_result res;
        append_one(wdb, "quiet-1", &res);
        uint64_t at = now_us();
        pthread_join(th, NULL);
        CHECK(w.rc == 0 && w.got == 1, "round %d: the waiting read returned %d with %llu "
              "events", i, w.rc, (unsigned long long)w.got);
        lat[i] = w.woke_us > at ? w.woke_us - at : 0;
    }
    latency_report("quiet spell (one append after 150-500 ms)", lat, QUIET_ROUNDS, 1000);
}

/* ---- 5. bad input ----------------------------------------------------------------- */

static void test_bad_input(void)
{
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    evs_db *db = NULL;
    char dir[] = "/tmp/evs-replica-embedded-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    o.read_replica_uri = standby_uri;
    int rc = evs_open(&db, dir, &o);
    CHECK(rc == EVS_EINVAL && !db && strstr(evs_last_error(), "read_replica_uri"),
          "embedded store with a replica: %d", rc);
    rmdir(dir);
    o.read_replica_uri = "/var/lib/standby";
    rc = evs_open(&db, primary_uri, &o);
    CHECK(rc == EVS_EINVAL && !db && strstr(evs_last_error(), "not a postgresql:// URI"),
          "replica not a URI: %d", rc);
    o.read_replica_uri = "postgresql:///postgres?host=/nonexistent-evs-dir&user=postgres";
    rc = evs_open(&db, primary_uri, &o);
    CHECK(rc == EVS_EBACKEND && !db && strstr(evs_last_error(), "read replica"),
          "unreachable replica: %d", rc);
    /* a version 4 struct ends before read_replica_uri: whatever is there
     * is not read */
    o.version = 4;
    o.read_replica_uri = "/var/lib/standby";
    rc = evs_open(&db, primary_uri, &o);
    CHECK(rc == 0 && db, "version 4 options: %d", rc);
    CHECK(evs_close(db) == 0, "close");
    printf("bad input: refused with EVS_EINVAL / EVS_EBACKEND: ok\n");
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s PRIMARY_URI STANDBY_URI\n", argv[0]);
        return 2;
    }
    primary_uri = argv[1];
    standby_uri = argv[2];
    wdb = open_store(NULL);
    evs_db *rdb = open_store(standby_uri);
    test_follow(rdb);
    test_paused(rdb);
    test_quiet(rdb);
    test_bad_input();
    CHECK(evs_close(rdb) == 0, "close");
    CHECK(evs_close(wdb) == 0, "close");
    printf("ok\n");
    return 0;
}
