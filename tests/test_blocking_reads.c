/*
 * test_blocking_reads.c -- blocking tracking reads: a read after the head
 * waits its timeout (never less), returns at once when events are there, is
 * woken by a matching commit of another thread (also with a very large or
 * no timeout), not by commits its filter does not match nor by checkpoints,
 * each kind of filter on its own events only, and a read-only open in
 * another process is woken by the writer's commit. Background appends and
 * checkpoints run at given times on an actor thread.
 */
#include "fixture_tracking.h"

#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Background actions at given times (appends, checkpoints)            */
/* ------------------------------------------------------------------ */

typedef enum act_kind {
    ACT_APPEND,     /* one event of `type` to tenant/stream */
    ACT_STREAMLESS, /* one streamless event of `type` with tag "bg:1" */
    ACT_CHECKPOINT  /* checkpoint "bg" of tenant := the store's head */
} act_kind;

typedef struct action {
    unsigned at_ms; /* after the actor starts */
    act_kind kind;
    const char *tenant;
    const char *stream;
    const char *type;
} action;

typedef struct actor {
    evs_db *db;
    const action *acts;
    size_t n;
    pthread_t th;
    uint64_t last_position; /* of the last append */
} actor;

static void *actor_main(void *arg)
{
    actor *a = arg;
    int64_t t0 = mono_us();
    size_t i;
    for (i = 0; i < a->n; i++) {
        const action *ac = &a->acts[i];
        int64_t wait = t0 + (int64_t)ac->at_ms * 1000 - mono_us();
        int rc;
        if (wait > 0)
            tu_sleep_ms((unsigned)((wait + 999) / 1000));
        if (ac->kind == ACT_CHECKPOINT) {
            uint64_t h = 0;
            rc = evs_token_head(&h, a->db, NULL);
            if (rc == 0)
                rc = evs_checkpoint_set(a->db, ac->tenant, "bg", h);
        } else if (ac->kind == ACT_STREAMLESS) {
            const char *tags[1] = {"bg:1"};
            evs_event_data ev = tu_event(ac->type, "{}");
            evs_append_result r;
            ev.tags = tags;
            ev.ntags = 1;
            rc = evs_dcb_append(&r, NULL, a->db, ac->tenant, &ev, 1, NULL);
            if (rc == 0)
                a->last_position = r.first_position;
        } else {
            evs_event_data ev = tu_event(ac->type, "{}");
            evs_append_result r;
            rc = evs_append(&r, a->db, ac->tenant, ac->stream, EVS_ANY, &ev,
                            1);
            if (rc == 0)
                a->last_position = r.first_position;
        }
        if (rc != 0)
            tu_fail("background action %zu failed: %d %s: %s", i, rc,
                    tu_errname(rc), evs_last_error());
    }
    return NULL;
}

static void actor_start(actor *a, evs_db *db, const action *acts, size_t n)
{
    memset(a, 0, sizeof *a);
    a->db = db;
    a->acts = acts;
    a->n = n;
    assert_int_equal(pthread_create(&a->th, NULL, actor_main, a), 0);
}

static void actor_join(actor *a)
{
    assert_int_equal(pthread_join(a->th, NULL), 0);
}

/* ------------------------------------------------------------------ */
/* Blocking reads                                                      */
/* ------------------------------------------------------------------ */

static void test_blocking_timeout_no_events(void **state)
{
    tu_store *s = *state;
    evs_tracking t = EVS_TRACKING_INIT;
    tu_events e = {0};
    uint64_t marker = 99;
    int64_t t0, el;

    /* Empty store. */
    t0 = mono_us();
    TU_OK(track(&e, &marker, s->db, &t, 0, 0, 300000));
    el = mono_us() - t0;
    print_message("empty store: 300 ms read returned after %" PRId64
                  " µs\n",
                  el);
    assert_int_equal(e.n, 0);
    assert_int_equal(marker, 0);
    assert_true(el >= 295000);
    assert_true(el <= 300000 + 2000000);

    /* Events there, read after the head; a limit changes nothing. */
    tu_append1(s->db, NULL, "w-1", "E", "{}");
    tu_append1(s->db, NULL, "w-2", "E", "{}");
    t0 = mono_us();
    TU_OK(track(&e, &marker, s->db, &t, 2, 5, 250000));
    el = mono_us() - t0;
    assert_int_equal(e.n, 0);
    assert_int_equal(marker, 2);
    assert_true(el >= 245000);
    assert_true(el <= 250000 + 2000000);

    /* Timeout 0: at once, also when there is nothing. */
    t0 = mono_us();
    TU_OK(track(&e, &marker, s->db, &t, 2, 0, 0));
    el = mono_us() - t0;
    assert_int_equal(e.n, 0);
    assert_true(el < 1000000);
    /* ...and with events there, it returns them without waiting. */
    t0 = mono_us();
    TU_OK(track(&e, &marker, s->db, &t, 0, 0, 0));
    assert_true(mono_us() - t0 < 1000000);
    assert_int_equal(e.n, 2);
    tu_events_clear(&e);
    /* A long timeout is not waited when events are already there. */
    t0 = mono_us();
    TU_OK(track(&e, &marker, s->db, &t, 1, 0, 10000000));
    assert_true(mono_us() - t0 < 5000000);
    assert_int_equal(e.n, 1);
    assert_int_equal(e.v[0].position, 2);
    tu_events_free(&e);
}

typedef struct waiter {
    evs_db *db;
    evs_tracking t;
    uint64_t after;
    int64_t timeout_us;
    int rc;
    tu_events got;
    uint64_t marker;
    int64_t elapsed_us;
    int started; /* atomic */
} waiter;

static void *waiter_main(void *arg)
{
    waiter *w = arg;
    int64_t t0 = mono_us();
    __atomic_store_n(&w->started, 1, __ATOMIC_RELEASE);
    w->rc = track(&w->got, &w->marker, w->db, &w->t, w->after, 0,
                  w->timeout_us);
    w->elapsed_us = mono_us() - t0;
    return NULL;
}

/*
 * Start a blocking read of *t after `after` with the timeout, run the
 * actions meanwhile, and return the result in *w (the caller frees
 * w->got). The read runs on its own thread so that the main thread can
 * assert.
 */
static void wait_with_actions(waiter *w, evs_db *db, const evs_tracking *t,
                              uint64_t after, int64_t timeout_us,
                              const action *acts, size_t nacts)
{
    pthread_t th;
    actor a;
    memset(w, 0, sizeof *w);
    w->db = db;
    w->t = *t;
    w->after = after;
    w->timeout_us = timeout_us;
    w->rc = -12345;
    assert_int_equal(pthread_create(&th, NULL, waiter_main, w), 0);
    /* The actions' times count from when the read has begun (a loaded
     * machine may start the thread late). */
    while (!__atomic_load_n(&w->started, __ATOMIC_ACQUIRE))
        tu_sleep_ms(1);
    actor_start(&a, db, acts, nacts);
    actor_join(&a);
    assert_int_equal(pthread_join(th, NULL), 0);
    TU_ASSERT_NO_THREAD_FAILURES();
    if (w->rc != 0)
        print_error("the blocking read returned %d (%s)\n", w->rc,
                    tu_errname(w->rc));
    assert_int_equal(w->rc, 0);
}

/* An append by another thread wakes a reader waiting with a long timeout
 * (woken by the commit, not by a poll that happens to be short). */
static void test_blocking_woken_by_commit(void **state)
{
    tu_store *s = *state;
    evs_tracking t = EVS_TRACKING_INIT;
    static const action one[] = {{100, ACT_APPEND, NULL, "wake-1", "Woke"}};
    static const action one_t1[] = {
        {100, ACT_APPEND, "t1", "wake-1", "Woke"}};
    waiter w;

    tu_append1(s->db, NULL, "pre-1", "E", "{}");
    wait_with_actions(&w, s->db, &t, 1, 10000000, one, 1);
    print_message("woken after %" PRId64 " µs\n", w.elapsed_us);
    assert_int_equal(w.got.n, 1);
    assert_int_equal(w.got.v[0].position, 2);
    assert_string_equal(w.got.v[0].type, "Woke");
    assert_int_equal(w.marker, 2);
    assert_true(w.elapsed_us < 5000000);
    tu_events_free(&w.got);

    /* A tenant's reader, woken by its tenant's commit. */
    t.tenant = "t1";
    wait_with_actions(&w, s->db, &t, 2, 10000000, one_t1, 1);
    assert_int_equal(w.got.n, 1);
    assert_int_equal(w.got.v[0].position, 3);
    assert_string_equal(w.got.v[0].tenant, "t1");
    assert_true(w.elapsed_us < 5000000);
    tu_events_free(&w.got);

    /* A very large timeout (no overflow in the deadline). */
    t.tenant = NULL;
    wait_with_actions(&w, s->db, &t, 3, INT64_MAX / 2, one, 1);
    assert_int_equal(w.got.n, 1);
    assert_int_equal(w.got.v[0].position, 4);
    assert_true(w.elapsed_us < 5000000);
    tu_events_free(&w.got);
    wait_with_actions(&w, s->db, &t, 4, INT64_MAX, one, 1);
    assert_int_equal(w.got.n, 1);
    assert_int_equal(w.got.v[0].position, 5);
    tu_events_free(&w.got);

    /* Waiting forever ends when the event comes. */
    wait_with_actions(&w, s->db, &t, 5, EVS_WAIT_FOREVER, one, 1);
    assert_int_equal(w.got.n, 1);
    assert_int_equal(w.got.v[0].position, 6);
    assert_true(w.elapsed_us < 5000000);
    tu_events_free(&w.got);
}

/* Commits that do not match the reader's filter (other streams, other
 * tenants, checkpoints) do not end its wait. */
static void test_blocking_nonmatching_commits_keep_waiting(void **state)
{
    tu_store *s = *state;
    evs_tracking t = EVS_TRACKING_INIT;
    static const action noise[] = {
        {100, ACT_APPEND, NULL, "other-1", "Noise"},
        {250, ACT_APPEND, NULL, "accountX-1", "Noise"},
        {400, ACT_CHECKPOINT, NULL, NULL, NULL},
        {550, ACT_APPEND, "t1", "account-1", "Noise"},
        {700, ACT_STREAMLESS, NULL, NULL, "Noise"},
    };
    static const action noise_then_match[] = {
        {100, ACT_APPEND, NULL, "other-1", "Noise"},
        {200, ACT_CHECKPOINT, NULL, NULL, NULL},
        {400, ACT_APPEND, NULL, "account-7", "Match"},
    };
    static const action cp_only[] = {{100, ACT_CHECKPOINT, NULL, NULL, NULL}};
    waiter w;
    uint64_t head;

    tu_append1(s->db, NULL, "account-1", "E", "{}"); /* 1 */
    t.category = "account";
    wait_with_actions(&w, s->db, &t, 1, 1500000, noise,
                      sizeof noise / sizeof noise[0]);
    head = tu_head(s->db, NULL);
    print_message("filtered read with noise returned after %" PRId64
                  " µs, marker %" PRIu64 " (head %" PRIu64 ")\n",
                  w.elapsed_us, w.marker, head);
    assert_int_equal(w.got.n, 0);
    assert_true(w.elapsed_us >= 1450000);
    assert_true(w.elapsed_us <= 1500000 + 2000000);
    assert_true(w.marker >= 1 && w.marker <= head);
    tu_events_free(&w.got);
    /* Nothing was skipped: reading on from the marker finds nothing, and
     * the marker then covers everything committed. */
    EXPECT_TRACK(s->db, &t, w.marker, 0, head, "after the timed read", NONE);

    /* The wait goes on through non-matching commits and ends with the
     * matching one. */
    wait_with_actions(&w, s->db, &t, head, 10000000, noise_then_match,
                      sizeof noise_then_match / sizeof noise_then_match[0]);
    assert_int_equal(w.got.n, 1);
    assert_string_equal(w.got.v[0].stream, "account-7");
    assert_true(w.elapsed_us >= 300000);
    assert_true(w.elapsed_us < 5000000);
    tu_events_free(&w.got);

    /* An unfiltered reader is not woken by a checkpoint either. */
    t.category = NULL;
    head = tu_head(s->db, NULL);
    wait_with_actions(&w, s->db, &t, head, 600000, cp_only, 1);
    assert_int_equal(w.got.n, 0);
    assert_true(w.elapsed_us >= 590000);
    tu_events_free(&w.got);
}

/* Each kind of filter wakes on its own events only. */
static void test_blocking_filters(void **state)
{
    tu_store *s = *state;
    const char *types[2] = {"Wanted", "AlsoWanted"};
    const char *tags[1] = {"bg:1"};
    evs_query_item item = {NULL, 0, tags, 1};
    evs_query q = {&item, 1};
    static const action cat[] = {
        {50, ACT_APPEND, NULL, "accountX-1", "Wanted"},
        {150, ACT_APPEND, NULL, "account-3", "Other"},
    };
    static const action typ[] = {
        {50, ACT_APPEND, NULL, "x-1", "Unwanted"},
        {150, ACT_APPEND, NULL, "x-1", "AlsoWanted"},
    };
    static const action qry[] = {
        {50, ACT_APPEND, NULL, "x-1", "Unwanted"},
        {150, ACT_STREAMLESS, NULL, NULL, "Tagged"},
    };
    static const action ten[] = {
        {50, ACT_APPEND, NULL, "x-1", "Default"},
        {150, ACT_APPEND, "t9", "x-1", "Other"},
    };
    static const action all[] = {
        {50, ACT_CHECKPOINT, NULL, NULL, NULL},
        {150, ACT_APPEND, "t8", "x-1", "Any"},
    };
    waiter w;
    evs_tracking t;

    tu_append1(s->db, NULL, "seed-1", "Seed", "{}");

    t = (evs_tracking)EVS_TRACKING_INIT;
    t.category = "account";
    wait_with_actions(&w, s->db, &t, tu_head(s->db, NULL), 10000000, cat, 2);
    assert_int_equal(w.got.n, 1);
    assert_string_equal(w.got.v[0].stream, "account-3");
    assert_true(w.elapsed_us < 5000000);
    tu_events_free(&w.got);

    t = (evs_tracking)EVS_TRACKING_INIT;
    t.types = types;
    t.ntypes = 2;
    wait_with_actions(&w, s->db, &t, tu_head(s->db, NULL), 10000000, typ, 2);
    assert_int_equal(w.got.n, 1);
    assert_string_equal(w.got.v[0].type, "AlsoWanted");
    tu_events_free(&w.got);

    t = (evs_tracking)EVS_TRACKING_INIT;
    t.query = &q;
    wait_with_actions(&w, s->db, &t, tu_head(s->db, NULL), 10000000, qry, 2);
    assert_int_equal(w.got.n, 1);
    assert_string_equal(w.got.v[0].type, "Tagged");
    assert_string_equal(w.got.v[0].stream, "");
    tu_events_free(&w.got);

    t = (evs_tracking)EVS_TRACKING_INIT;
    t.tenant = "t9";
    wait_with_actions(&w, s->db, &t, tu_head(s->db, NULL), 10000000, ten, 2);
    assert_int_equal(w.got.n, 1);
    assert_string_equal(w.got.v[0].tenant, "t9");
    tu_events_free(&w.got);

    t = (evs_tracking)EVS_TRACKING_INIT;
    t.all_tenants = 1;
    wait_with_actions(&w, s->db, &t, tu_head(s->db, NULL), 10000000, all, 2);
    assert_int_equal(w.got.n, 1);
    assert_string_equal(w.got.v[0].tenant, "t8");
    tu_events_free(&w.got);
}

/* A read-only open in another process is woken by the writer's commit. */
static void test_blocking_across_processes(void **state)
{
    tu_store *s = *state; /* not open */
    int ready[2], result[2], status;
    pid_t pid;
    char c = 0;
    struct {
        int rc;
        uint64_t n, position;
        int64_t elapsed_us;
    } res;
    struct pollfd p;

    create_store(s);
    tu_append1(s->db, NULL, "x-1", "E", "{}");
    tu_store_close(s);

    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(result), 0);
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        evs_open_options o = EVS_OPEN_OPTIONS_INIT;
        evs_tracking t = EVS_TRACKING_INIT;
        evs_db *db = NULL;
        tu_events e = {0};
        int64_t t0;
        close(ready[0]);
        close(result[0]);
        memset(&res, 0, sizeof res);
        o.flags = EVS_OPEN_READONLY;
        res.rc = evs_open(&db, s->dir, &o);
        if (write(ready[1], "r", 1) != 1)
            _exit(4);
        if (res.rc == 0) {
            t0 = mono_us();
            res.rc = track(&e, NULL, db, &t, 1, 0, 10000000);
            res.elapsed_us = mono_us() - t0;
            res.n = e.n;
            res.position = e.n ? e.v[0].position : 0;
            tu_events_free(&e);
            evs_close(db);
        }
        if (write(result[1], &res, sizeof res) != (ssize_t)sizeof res)
            _exit(4);
        _exit(0);
    }
    close(ready[1]);
    close(result[1]);
    tu_store_open(s);
    p.fd = ready[0];
    p.events = POLLIN;
    assert_int_equal(poll(&p, 1, 30000), 1);
    assert_int_equal(read(ready[0], &c, 1), 1);
    tu_sleep_ms(300); /* let the child start waiting */
    tu_append1(s->db, NULL, "x-1", "Cross", "{}");
    p.fd = result[0];
    assert_int_equal(poll(&p, 1, 30000), 1);
    assert_int_equal(read(result[0], &res, sizeof res), (ssize_t)sizeof res);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    close(ready[0]);
    close(result[0]);
    print_message("read-only reader in another process: rc %d, %" PRIu64
                  " event(s), after %" PRId64 " µs\n",
                  res.rc, res.n, res.elapsed_us);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(res.rc, 0);
    assert_int_equal(res.n, 1);
    assert_int_equal(res.position, 2);
    assert_true(res.elapsed_us < 5000000);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define TC(fn) cmocka_unit_test_setup_teardown(fn, setup_closed, teardown)
    const struct CMUnitTest tests[] = {
        T(test_blocking_timeout_no_events),
        T(test_blocking_woken_by_commit),
        T(test_blocking_nonmatching_commits_keep_waiting),
        T(test_blocking_filters),
        TC(test_blocking_across_processes),
    };
#undef T
#undef TC
    signal(SIGALRM, on_alarm);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
