/*
 * test_index_size.c -- the embedded index file stays about as large as
 * what it holds (docs/OPERATIONS.md, "The index file").
 *
 * - data.mdb's apparent size (st_size, what cp, tar and backups without
 *   sparse support copy) stays within a small factor of its allocated
 *   size: the writer's map grows with the index instead of being 64 GiB;
 * - long reads (verify, a slowly consumed $all read) beside a writer do
 *   not make the index grow: they renew their LMDB snapshot, so the
 *   writer can reuse the pages it frees;
 * - the map grows while threads of the writer's process and a read-only
 *   process read, and they read correctly across every growth.
 *
 * The index's size is measured as LMDB's high-water mark (the last page
 * in use + 1, read from the closed store's environment): pages a pinned
 * snapshot kept from reuse show there.
 */
#include "testutil.h"

#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static void idx_file(const char *dir, char *buf, size_t n)
{
    snprintf(buf, n, "%s/index/data.mdb", dir);
}

/* st_size and allocated bytes (st_blocks * 512) of data.mdb. */
static void idx_sizes(const char *dir, uint64_t *apparent, uint64_t *allocated)
{
    char p[4096];
    struct stat st;
    idx_file(dir, p, sizeof(p));
    assert_int_equal(stat(p, &st), 0);
    *apparent = (uint64_t)st.st_size;
    *allocated = (uint64_t)st.st_blocks * 512u;
}

/* Bytes of the index in use: LMDB's last page + 1 (the store closed). */
static uint64_t idx_used(const char *dir)
{
    char p[4096];
    MDB_env *env;
    MDB_envinfo info;
    MDB_stat st;
    snprintf(p, sizeof(p), "%s/index", dir);
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_open(env, p, MDB_RDONLY | MDB_NOLOCK, 0644), 0);
    assert_int_equal(mdb_env_info(env, &info), 0);
    assert_int_equal(mdb_env_stat(env, &st), 0);
    mdb_env_close(env);
    return ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
}

/* Event k (0-based, in append order, so at position k + 1 when one thread
 * appends): data {"k":k}, four tags of 7, 101, 1009 and 100003 values. */
static const unsigned tag_mod[] = {7, 101, 1009, 100003};

/* Main thread only (static buffers). */
static void append_batch(evs_db *db, uint64_t k0, size_t n)
{
    static evs_event_data ev[4096];
    static char data[4096][32], tags[4096][4][24];
    static const char *tp[4096][4];
    assert_true(n <= 4096);
    for (size_t i = 0; i < n; i++) {
        uint64_t k = k0 + i;
        snprintf(data[i], sizeof(data[i]), "{\"k\":%" PRIu64 "}", k);
        ev[i] = tu_event("T", data[i]);
        for (int t = 0; t < 4; t++) {
            snprintf(tags[i][t], sizeof(tags[i][t]), "%c:%u", 'a' + t,
                     (unsigned)(k % tag_mod[t]));
            tp[i][t] = tags[i][t];
        }
        ev[i].tags = tp[i];
        ev[i].ntags = 4;
    }
    char stream[32];
    snprintf(stream, sizeof(stream), "s-%u", (unsigned)(k0 / n % 64));
    evs_append_result r;
    TU_OK(evs_append(&r, db, NULL, stream, EVS_ANY, ev, n));
    assert_int_equal(r.first_position, k0 + 1);
}

static void append_events(evs_db *db, uint64_t k0, uint64_t n, size_t batch)
{
    for (uint64_t k = k0; k < k0 + n; k += batch)
        append_batch(db, k, k0 + n - k < batch ? (size_t)(k0 + n - k) : batch);
}

/* Read $all from the start: positions 1.. in order with matching data, at
 * least want events. Returns the number read, or 0 after tu_fail. For
 * worker threads and the child process. slow: sleep 1 ms every 200. */
static uint64_t read_check(evs_db *db, uint64_t want, int slow, const char *who)
{
    evs_iter *it;
    const evs_event *ev;
    uint64_t n = 0;
    char want_data[32];
    int rc = evs_read_all(&it, db, NULL, 0, 0);
    if (rc != 0) {
        tu_fail("%s: evs_read_all: %s: %s", who, tu_errname(rc), evs_last_error());
        return 0;
    }
    while ((rc = evs_iter_next(&ev, it)) == 0) {
        n++;
        snprintf(want_data, sizeof(want_data), "{\"k\":%" PRIu64 "}", n - 1);
        if (ev->position != n || ev->data_len != strlen(want_data) ||
            memcmp(ev->data, want_data, ev->data_len) != 0) {
            tu_fail("%s: event %" PRIu64 " is at position %" PRIu64 " with data %.*s",
                    who, n, ev->position, (int)ev->data_len, (const char *)ev->data);
            evs_iter_free(it);
            return 0;
        }
        if (slow && n % 200 == 0)
            tu_sleep_ms(1);
    }
    evs_iter_free(it);
    if (rc != EVS_ITEROVER) {
        tu_fail("%s: evs_iter_next after %" PRIu64 " events: %s: %s", who, n,
                tu_errname(rc), evs_last_error());
        return 0;
    }
    if (n < want) {
        tu_fail("%s: read %" PRIu64 " events, at least %" PRIu64 " were committed",
                who, n, want);
        return 0;
    }
    return n;
}

/* ------------------------------------------------------------------ */
/* (a) apparent size                                                   */
/* ------------------------------------------------------------------ */

static void test_apparent_size(void **state)
{
    (void)state;
    tu_store *s = tu_store_new();
    uint64_t apparent, allocated;
    tu_store_open(s);
    idx_sizes(s->dir, &apparent, &allocated);
    print_message("new store: data.mdb %" PRIu64 " bytes apparent, %" PRIu64
                  " allocated\n", apparent, allocated);
    assert_true(apparent <= ((uint64_t)256 << 20));

    append_events(s->db, 0, 100000, 200);
    idx_sizes(s->dir, &apparent, &allocated);
    print_message("100000 events: data.mdb %" PRIu64 " bytes apparent, %" PRIu64
                  " allocated\n", apparent, allocated);
    assert_true(apparent <= 4 * allocated);
    assert_true(apparent < ((uint64_t)1 << 30));

    tu_store_close(s);
    uint64_t used = idx_used(s->dir);
    idx_sizes(s->dir, &apparent, &allocated);
    print_message("closed: data.mdb %" PRIu64 " bytes apparent, %" PRIu64
                  " allocated, %" PRIu64 " used\n", apparent, allocated, used);
    assert_true(used <= apparent);
    assert_true(apparent <= 4 * allocated);
    assert_true(apparent <= 2 * used + ((uint64_t)64 << 20));

    /* reopened: the same bound, and everything readable */
    tu_store_reopen(s);
    idx_sizes(s->dir, &apparent, &allocated);
    assert_true(apparent <= 4 * allocated);
    assert_int_equal(read_check(s->db, 100000, 0, "reopened"), 100000);
    TU_ASSERT_NO_THREAD_FAILURES();
    TU_OK(evs_verify(NULL, s->db, NULL, NULL));
    tu_store_free(s);
}

/* ------------------------------------------------------------------ */
/* (b) long reads beside a writer                                      */
/* ------------------------------------------------------------------ */

#define PRELOAD 50000u
#define WRITES 3000u   /* appends of WBATCH events beside the readers */
#define WBATCH 4u

typedef struct reader_ctx {
    evs_db *db;
    _Atomic int stop;
    unsigned verifies, reads;
} reader_ctx;

static void *long_reader(void *arg)
{
    reader_ctx *c = arg;
    while (!atomic_load(&c->stop)) {
        uint64_t checked = 0;
        int rc = evs_verify(&checked, c->db, NULL, NULL);
        if (rc != 0)
            tu_fail("verify beside the writer: %s: %s", tu_errname(rc), evs_last_error());
        c->verifies++;
        if (atomic_load(&c->stop))
            break;
        /* a slow consumer: its read spans many commits */
        read_check(c->db, PRELOAD, 1, "slow $all");
        c->reads++;
    }
    return NULL;
}

/* PRELOAD events, then WRITES small appends, with or without the long
 * readers; returns the index's used bytes afterwards. */
static uint64_t write_run(int with_readers, unsigned *verifies, unsigned *reads)
{
    tu_store *s = tu_store_new();
    tu_store_open(s);
    append_events(s->db, 0, PRELOAD, 250);
    reader_ctx c = {s->db, 0, 0, 0};
    pthread_t th;
    if (with_readers)
        assert_int_equal(pthread_create(&th, NULL, long_reader, &c), 0);
    append_events(s->db, PRELOAD, (uint64_t)WRITES * WBATCH, WBATCH);
    if (with_readers) {
        atomic_store(&c.stop, 1);
        pthread_join(th, NULL);
        *verifies = c.verifies;
        *reads = c.reads;
    }
    TU_ASSERT_NO_THREAD_FAILURES();
    TU_OK(evs_verify(NULL, s->db, NULL, NULL));
    tu_store_close(s);
    uint64_t used = idx_used(s->dir);
    tu_store_free(s);
    return used;
}

static void test_long_reads_beside_writer(void **state)
{
    (void)state;
    unsigned verifies = 0, reads = 0;
    uint64_t alone = write_run(0, NULL, NULL);
    uint64_t beside = write_run(1, &verifies, &reads);
    print_message("index used: %" PRIu64 " bytes written alone, %" PRIu64
                  " beside %u verifies and %u slow $all reads (%.2fx)\n",
                  alone, beside, verifies, reads, (double)beside / (double)alone);
    assert_true(verifies >= 1);
    assert_true(beside <= 2 * alone);
}

/* ------------------------------------------------------------------ */
/* (c) the map grows under readers, in this process and another        */
/* ------------------------------------------------------------------ */

typedef struct grow_ctx {
    evs_db *db;
    _Atomic uint64_t committed; /* events known committed */
    _Atomic int stop;
    unsigned passes;
} grow_ctx;

static void *grow_reader(void *arg)
{
    grow_ctx *c = arg;
    char who[32];
    snprintf(who, sizeof(who), "reader thread");
    while (!atomic_load(&c->stop) && tu_failures() == 0) {
        uint64_t want = atomic_load(&c->committed);
        read_check(c->db, want, 0, who);
        /* and a stream read, forward and backward, through the index */
        evs_iter *it;
        const evs_event *ev;
        int rc = evs_read_stream(&it, c->db, NULL, "s-0", EVS_END, EVS_BACKWARD, 50);
        if (rc == 0) {
            while ((rc = evs_iter_next(&ev, it)) == 0)
                ;
            evs_iter_free(it);
        }
        if (rc != 0 && rc != EVS_ITEROVER)
            tu_fail("stream read: %s: %s", tu_errname(rc), evs_last_error());
        c->passes++;
    }
    return NULL;
}

/* The read-only process: reads until the parent sends the final count on
 * fd (then closes it), then reads once more and checks it saw them all.
 * Exit status 0 when every read was right. */
static int child_reads(const char *dir, int fd)
{
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    o.flags = EVS_OPEN_READONLY;
    evs_db *db = NULL;
    int rc = evs_open(&db, dir, &o);
    if (rc != 0) {
        fprintf(stderr, "child: open: %s\n", evs_last_error());
        return 2;
    }
    uint64_t s0, a0, s1, a1, final = 0, n = 0;
    idx_sizes(dir, &s0, &a0);
    unsigned passes = 0;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        int done = poll(&p, 1, 0) > 0;
        if (done && read(fd, &final, sizeof(final)) != (ssize_t)sizeof(final))
            final = 0;
        n = read_check(db, n, 0, "read-only process");
        if (tu_failures()) {
            fprintf(stderr, "child: %s\n", tu_first_failure());
            return 3;
        }
        passes++;
        if (done)
            break;
    }
    idx_sizes(dir, &s1, &a1);
    evs_close(db);
    fprintf(stderr, "child: %u passes, %" PRIu64 " events at the end of %" PRIu64
            "; data.mdb %" PRIu64 " bytes when it opened, %" PRIu64 " at the end\n",
            passes, n, final, s0, s1);
    if (final == 0 || n != final) {
        fprintf(stderr, "child: read %" PRIu64 " events at the end, %" PRIu64
                " were committed\n", n, final);
        return 4;
    }
    /* its map was far smaller than what it read last: it took every
     * growth (MDB_MAP_RESIZED) on the way */
    if (s1 < 4 * s0) {
        fprintf(stderr, "child: the index did not grow enough to test anything\n");
        return 5;
    }
    return 0;
}

static void test_growth_under_readers(void **state)
{
    (void)state;
    /* a small first map (256 KiB): it grows many times below */
    assert_int_equal(setenv("EVS_DEBUG_INDEX_MAP_MIN", "262144", 1), 0);
    tu_store *s = tu_store_new();
    tu_store_open(s);
    append_events(s->db, 0, 100, 100);
    tu_store_close(s);

    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    uint64_t a0, b0;
    idx_sizes(s->dir, &a0, &b0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pfd[1]);
        _exit(child_reads(s->dir, pfd[0]));
    }
    close(pfd[0]);

    tu_store_open(s);
    grow_ctx c = {s->db, 100, 0, 0};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, grow_reader, &c), 0);
    uint64_t k = 100, apparent, allocated;
    /* until data.mdb has grown 16x (at least 4 remaps), or 200 000 events */
    do {
        append_events(s->db, k, 1000, 50);
        k += 1000;
        atomic_store(&c.committed, k);
        idx_sizes(s->dir, &apparent, &allocated);
    } while (apparent < 16 * a0 && k < 200000 && tu_failures() == 0);
    tu_sleep_ms(50); /* the readers read the last size too */
    atomic_store(&c.stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(write(pfd[1], &k, sizeof(k)), (ssize_t)sizeof(k));
    close(pfd[1]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_int_equal(unsetenv("EVS_DEBUG_INDEX_MAP_MIN"), 0);
    print_message("%" PRIu64 " events; data.mdb %" PRIu64 " bytes at first, %" PRIu64
                  " at the end; %u passes of the reader threads\n", k, a0, apparent,
                  c.passes);
    TU_ASSERT_NO_THREAD_FAILURES();
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_true(apparent >= 16 * a0);
    assert_true(c.passes >= 2);
    assert_int_equal(read_check(s->db, k, 0, "after"), k);
    TU_OK(evs_verify(NULL, s->db, NULL, NULL));
    tu_store_free(s);
}

/* ------------------------------------------------------------------ */
/* Renewed snapshots: a read returns what its first snapshot held      */
/* ------------------------------------------------------------------ */

/* Append n events to tenant t1, streams "s" and "u" by turns of 50, tag
 * "x": every read below would see them if it were not a snapshot. */
static void append_t1(evs_db *db, unsigned n)
{
    static const char *const tags[] = {"x"};
    evs_event_data ev[50];
    for (unsigned i = 0; i < 50; i++) {
        ev[i] = tu_event("T", "{}");
        ev[i].tags = tags;
        ev[i].ntags = 1;
    }
    for (unsigned k = 0; k < n; k += 50)
        TU_OK(evs_append(NULL, db, "t1", k / 50 % 2 ? "u" : "s", EVS_ANY, ev,
                         n - k < 50 ? n - k : 50));
}

/* Drain it slowly, appending beside it (renews by count and by time):
 * returns the positions read; want_order 1: increasing, -1: decreasing. */
static size_t drain_beside(evs_db *db, evs_iter *it, uint64_t *pos, size_t cap,
                           int want_order)
{
    const evs_event *ev;
    size_t n = 0;
    int rc;
    while ((rc = evs_iter_next(&ev, it)) == 0) {
        assert_true(n < cap);
        pos[n] = ev->position;
        if (n > 0)
            assert_true(want_order > 0 ? pos[n] > pos[n - 1] : pos[n] < pos[n - 1]);
        n++;
        if (n % 300 == 0)
            append_t1(db, 50);
        if (n % 700 == 0)
            tu_sleep_ms(2 * 10 + 5); /* past EVS_READ_RENEW_MS (10 ms) */
    }
    assert_int_equal(rc, EVS_ITEROVER);
    return n;
}

static void test_snapshot_across_renewals(void **state)
{
    (void)state;
    tu_store *s = tu_store_new();
    tu_store_open(s);
    append_t1(s->db, 3000); /* s: 1500 events, u: 1500 */
    static uint64_t a[8000], b[8000];
    evs_iter *it;
    size_t n = 0, m;
    uint64_t marker0 = 0, marker;
    static const char *const xt[] = {"x"};
    evs_query_item qi = {NULL, 0, xt, 1};
    evs_query q = {&qi, 1};
    evs_stream_read two[] = {{"u", 100}, {"s", 0}};
    for (int kind = 0; kind < 7; kind++) {
        /* the same read once alone (no appends), once beside appends */
        for (int pass = 0; pass < 2; pass++) {
            int order = 1;
            switch (kind) {
            case 0: TU_OK(evs_read_all(&it, s->db, NULL, 0, 0)); break;
            case 1: TU_OK(evs_read_all(&it, s->db, "t1", 10, 0)); break;
            case 2: TU_OK(evs_read_stream(&it, s->db, "t1", "s", 0, EVS_FORWARD, 0)); break;
            case 3: TU_OK(evs_read_stream(&it, s->db, "t1", "s", EVS_END, EVS_BACKWARD, 0));
                    order = -1; break;
            case 4: TU_OK(evs_read_query(&it, s->db, "t1", &q, 0, EVS_FORWARD, 0)); break;
            case 5: TU_OK(evs_read_query(&it, s->db, "t1", &q, 0, EVS_BACKWARD, 0));
                    order = -1; break;
            default: TU_OK(evs_read_streams(&it, s->db, "t1", two, 2)); order = 0; break;
            }
            if (pass == 0) {
                const evs_event *ev;
                int rc;
                n = 0;
                while ((rc = evs_iter_next(&ev, it)) == 0)
                    a[n++] = ev->position;
                assert_int_equal(rc, EVS_ITEROVER);
                TU_OK(evs_iter_marker(&marker0, it));
            } else {
                m = order ? drain_beside(s->db, it, b, 8000, order) : 0;
                if (!order) { /* two streams: each in order, not overall */
                    const evs_event *ev;
                    int rc;
                    while ((rc = evs_iter_next(&ev, it)) == 0) {
                        b[m++] = ev->position;
                        if (m % 300 == 0)
                            append_t1(s->db, 50);
                        if (m % 700 == 0)
                            tu_sleep_ms(25);
                    }
                    assert_int_equal(rc, EVS_ITEROVER);
                }
                TU_OK(evs_iter_marker(&marker, it));
                assert_int_equal(marker, marker0);
                if (m != n || memcmp(a, b, n * sizeof(a[0])) != 0)
                    print_error("read kind %d: %zu events alone, %zu beside appends\n",
                                kind, n, m);
                assert_int_equal(m, n);
                assert_memory_equal(a, b, n * sizeof(a[0]));
            }
            evs_iter_free(it);
        }
        /* the next kind reads what the appends above added too */
        assert_true(n >= 1400);
    }
    TU_OK(evs_verify(NULL, s->db, NULL, NULL));
    tu_store_free(s);
}

/* ------------------------------------------------------------------ */
/* A group that outgrows the map: MDB_MAP_FULL, the map grows, redone  */
/* ------------------------------------------------------------------ */

static void test_group_outgrows_map(void **state)
{
    (void)state;
    /* a 256 KiB first map and 64 KiB of room ahead of the first group:
     * an append of 4096 events with four tags each (over 1 MiB of index)
     * does not fit; the writer grows the map and redoes the txn */
    assert_int_equal(setenv("EVS_DEBUG_INDEX_MAP_MIN", "262144", 1), 0);
    tu_store *s = tu_store_new();
    tu_store_open(s);
    uint64_t a0, b0, a1, b1;
    idx_sizes(s->dir, &a0, &b0);
    append_batch(s->db, 0, 4096);
    for (uint64_t k = 4096; k < 8 * 256 + 4096; k += 256)
        append_batch(s->db, k, 256);
    idx_sizes(s->dir, &a1, &b1);
    assert_int_equal(unsetenv("EVS_DEBUG_INDEX_MAP_MIN"), 0);
    print_message("data.mdb %" PRIu64 " bytes at first, %" PRIu64 " after 6144 "
                  "events\n", a0, a1);
    assert_true(a1 > 4 * a0);
    assert_int_equal(read_check(s->db, 6144, 0, "after"), 6144);
    TU_ASSERT_NO_THREAD_FAILURES();
    TU_OK(evs_verify(NULL, s->db, NULL, NULL));
    tu_store_reopen(s);
    assert_int_equal(read_check(s->db, 6144, 0, "reopened"), 6144);
    TU_ASSERT_NO_THREAD_FAILURES();
    TU_OK(evs_verify(NULL, s->db, NULL, NULL));
    tu_store_free(s);
}

/* ------------------------------------------------------------------ */
/* A full map while a condition is checked, after a rollover flushed    */
/* part of the group                                                   */
/* ------------------------------------------------------------------ */

#define GA 3500u /* events of A and of B */

typedef struct group_app {
    evs_db *db;
    uint64_t k0;      /* its first event's k */
    size_t n;         /* events */
    int cond;         /* a DCB append with the condition "tag never, after 0" */
    int rc;
    uint64_t first;   /* first position */
    char msg[512];
} group_app;

static void *group_app_main(void *arg)
{
    group_app *a = arg;
    evs_event_data *ev = calloc(a->n, sizeof(*ev));
    char (*data)[32] = calloc(a->n, sizeof(*data));
    char (*tags)[4][24] = calloc(a->n, sizeof(*tags));
    const char *(*tp)[4] = calloc(a->n, sizeof(*tp));
    if (!ev || !data || !tags || !tp) {
        a->rc = EVS_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < a->n; i++) {
        uint64_t k = a->k0 + i;
        snprintf(data[i], sizeof(data[i]), "{\"k\":%" PRIu64 "}", k);
        ev[i] = tu_event("T", data[i]);
        for (int t = 0; t < 4; t++) {
            snprintf(tags[i][t], sizeof(tags[i][t]), "%c:%u", 'a' + t,
                     (unsigned)(k % tag_mod[t]));
            tp[i][t] = tags[i][t];
        }
        ev[i].tags = tp[i];
        ev[i].ntags = 4;
    }
    evs_append_result r = {0};
    if (a->cond) {
        static const char *const never[] = {"never"};
        evs_query_item item = {NULL, 0, never, 1};
        evs_append_condition c = {{&item, 1}, 0};
        uint64_t conflict = 0;
        a->rc = evs_dcb_append(&r, &conflict, a->db, NULL, ev, a->n, &c);
    } else {
        char stream[32];
        snprintf(stream, sizeof(stream), "g-%" PRIu64, a->k0);
        a->rc = evs_append(&r, a->db, NULL, stream, EVS_ANY, ev, a->n);
    }
    a->first = r.first_position;
    snprintf(a->msg, sizeof(a->msg), "%s", a->rc ? evs_last_error() : "");
out:
    free(ev);
    free(data);
    free(tags);
    free(tp);
    return NULL;
}

/*
 * One group of A (3,500 events with four tags: it fits in the 1 MiB
 * segment), B (as many: a rollover, so A is written and synced first) and
 * C (one event with a DCB condition). C's check puts A's and B's index
 * entries into the txn, which fills the 256 KiB map: the writer grows it
 * and goes on in a new txn (writer.c, index_again). Before that fix all
 * three failed with EVS_ENOSPC "MDB_MAP_FULL ... outcome unknown" and the
 * store refused further appends, A being durable. EVS_DEBUG_GROUP_WAIT=3
 * makes A's caller wait, as the committer, until B and C are queued.
 */
static void test_full_map_after_rollover(void **state)
{
    (void)state;
    assert_int_equal(setenv("EVS_DEBUG_INDEX_MAP_MIN", "262144", 1), 0);
    assert_int_equal(setenv("EVS_DEBUG_GROUP_WAIT", "3", 1), 0); /* read at open */
    tu_store *s = tu_store_new();
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    o.segment_size = 1u << 20;
    tu_store_open_opts(s, &o);
    assert_int_equal(unsetenv("EVS_DEBUG_GROUP_WAIT"), 0);
    group_app apps[3] = {
        {s->db, 0, GA, 0, 0, 0, ""},
        {s->db, GA, GA, 0, 0, 0, ""},
        {s->db, 2 * GA, 1, 1, 0, 0, ""},
    };
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, group_app_main, &apps[i]), 0);
        tu_sleep_ms(150); /* queued in this order */
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < 3; i++)
        if (apps[i].rc != 0)
            fail_msg("append %c: %s: %s", 'A' + i, tu_errname(apps[i].rc), apps[i].msg);
    assert_int_equal(apps[0].first, 1);
    assert_int_equal(apps[1].first, GA + 1);
    assert_int_equal(apps[2].first, 2 * GA + 1);
    /* more than one segment: B rolled over */
    size_t nseg = 0;
    char **segs = tu_segments(s->dir, &nseg);
    tu_free_strings(segs, nseg);
    assert_true(nseg >= 2);
    /* the store goes on */
    append_batch(s->db, 2 * GA + 1, 10);
    assert_int_equal(unsetenv("EVS_DEBUG_INDEX_MAP_MIN"), 0);
    assert_int_equal(read_check(s->db, 2 * GA + 11, 0, "after"), 2 * GA + 11);
    TU_ASSERT_NO_THREAD_FAILURES();
    TU_OK(evs_verify(NULL, s->db, NULL, NULL));
    tu_store_reopen(s);
    assert_int_equal(read_check(s->db, 2 * GA + 11, 0, "reopened"), 2 * GA + 11);
    TU_ASSERT_NO_THREAD_FAILURES();
    TU_OK(evs_verify(NULL, s->db, NULL, NULL));
    tu_store_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snapshot_across_renewals),
        cmocka_unit_test(test_apparent_size),
        cmocka_unit_test(test_long_reads_beside_writer),
        cmocka_unit_test(test_growth_under_readers),
        cmocka_unit_test(test_group_outgrows_map),
        cmocka_unit_test(test_full_map_after_rollover),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
