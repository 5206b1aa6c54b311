/*
 * test_metrics.c -- evs_metrics_get: per-handle counters of appends,
 * events, conflicts, group commits and durability waits (include/
 * evstore.h, "evs_metrics"), on every backend. Checked: the counts after
 * concurrent appends, the histograms' consistency with their counters,
 * what counts as a conflict, a retry and a checkpoint's event, bad
 * arguments, a fresh handle starting at zero, and (embedded) one group
 * of a known size in its bucket.
 */
#include "testutil.h"
#include "core/backend.h" /* evs__metrics_bucket: the bucket rule itself */

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static evs_metrics metrics(evs_db *db)
{
    evs_metrics m;
    memset(&m, 0xab, sizeof m); /* every field must be filled */
    m.version = EVS_METRICS_VERSION;
    TU_OK(evs_metrics_get(&m, db));
    return m;
}

static uint64_t hist_sum(const uint64_t *h)
{
    uint64_t n = 0;
    for (int i = 0; i < EVS_METRICS_BUCKETS; i++)
        n += h[i];
    return n;
}

/* Bucket i of the group-size histogram holds groups of (2^(i-1), 2^i]
 * requests (bucket 0: exactly 1; the last: also everything above). */
static uint64_t bucket_lo(int i) { return i == 0 ? 1 : (1ull << (i - 1)) + 1; }
static uint64_t bucket_hi(int i)
{
    return i == EVS_METRICS_BUCKETS - 1 ? UINT64_MAX : 1ull << i;
}

/* The histograms agree with their counters, and the group sizes with
 * `requests`, the number of requests the groups decided. */
static void check_consistent(const evs_metrics *m, uint64_t requests)
{
    uint64_t lo = 0, hi = 0;
    assert_int_equal(hist_sum(m->group_size_hist), m->groups);
    assert_int_equal(hist_sum(m->sync_hist), m->syncs);
    for (int i = 0; i < EVS_METRICS_BUCKETS; i++) {
        lo += m->group_size_hist[i] * bucket_lo(i);
        if (m->group_size_hist[i])
            hi = bucket_hi(i) == UINT64_MAX ? UINT64_MAX : hi + m->group_size_hist[i] * bucket_hi(i);
    }
    if (lo > requests || hi < requests)
        print_error("group sizes between %" PRIu64 " and %" PRIu64 " requests, but %" PRIu64
                    " requests were committed\n", lo, hi, requests);
    assert_true(lo <= requests && requests <= hi);
    if (m->syncs)
        assert_true(m->sync_ns > 0);
}

/* ------------------------------------------------------------------ */

static void test_metrics_bucket_rule(void **state)
{
    (void)state;
    assert_int_equal(evs__metrics_bucket(0), 0);
    assert_int_equal(evs__metrics_bucket(1), 0);
    assert_int_equal(evs__metrics_bucket(2), 1);
    assert_int_equal(evs__metrics_bucket(3), 2);
    assert_int_equal(evs__metrics_bucket(4), 2);
    assert_int_equal(evs__metrics_bucket(5), 3);
    assert_int_equal(evs__metrics_bucket(1024), 10);
    assert_int_equal(evs__metrics_bucket(1025), 11);
    assert_int_equal(evs__metrics_bucket(1ull << (EVS_METRICS_BUCKETS - 1)),
                     EVS_METRICS_BUCKETS - 1);
    assert_int_equal(evs__metrics_bucket((1ull << (EVS_METRICS_BUCKETS - 1)) + 1),
                     EVS_METRICS_BUCKETS - 1);
    assert_int_equal(evs__metrics_bucket(UINT64_MAX), EVS_METRICS_BUCKETS - 1);
}

static void test_metrics_bad_arguments(void **state)
{
    tu_store *s = *state;
    evs_metrics m;
    memset(&m, 0, sizeof m);
    m.version = EVS_METRICS_VERSION;
    TU_CHECK(evs_metrics_get(NULL, s->db), EVS_EINVAL);
    TU_ASSERT_ERRMSG();
    TU_CHECK(evs_metrics_get(&m, NULL), EVS_EINVAL);
    TU_ASSERT_ERRMSG();
    m.version = 0;
    TU_CHECK(evs_metrics_get(&m, s->db), EVS_EINVAL);
    assert_non_null(strstr(evs_last_error(), "EVS_METRICS_VERSION"));
    m.version = EVS_METRICS_VERSION + 1;
    TU_CHECK(evs_metrics_get(&m, s->db), EVS_EINVAL);
    TU_ASSERT_ERRMSG();
}

#define THREADS 4
#define PER_THREAD 30

typedef struct appender {
    evs_db *db;
    unsigned idx;
    uint64_t events;
} appender;

static void *appender_main(void *arg)
{
    appender *a = arg;
    char stream[32];
    snprintf(stream, sizeof stream, "m-%u", a->idx);
    for (unsigned i = 0; i < PER_THREAD; i++) {
        evs_event_data ev[3];
        size_t n = 1 + (a->idx + i) % 3;
        for (size_t k = 0; k < n; k++)
            ev[k] = tu_event("M", "{}");
        int rc = evs_append(NULL, a->db, NULL, stream, EVS_ANY, ev, n);
        if (rc != 0) {
            tu_fail("appender %u: %d %s: %s", a->idx, rc, tu_errname(rc), evs_last_error());
            continue;
        }
        a->events += n;
    }
    return NULL;
}

/* Concurrent appends: every request and event counted, the groups and
 * syncs consistent with them. */
static void test_metrics_concurrent_appends(void **state)
{
    tu_store *s = *state;
    appender a[THREADS];
    pthread_t th[THREADS];
    uint64_t events = 0, n = (uint64_t)THREADS * PER_THREAD;
    evs_metrics m = metrics(s->db);

    /* a fresh handle starts at zero */
    assert_int_equal(m.appends, 0);
    assert_int_equal(m.events, 0);
    assert_int_equal(m.conflicts, 0);
    assert_int_equal(m.groups, 0);
    assert_int_equal(m.syncs, 0);
    assert_int_equal(m.sync_ns, 0);
    assert_int_equal(hist_sum(m.group_size_hist), 0);
    assert_int_equal(hist_sum(m.sync_hist), 0);

    tu_failures_reset();
    for (unsigned k = 0; k < THREADS; k++) {
        a[k] = (appender){s->db, k, 0};
        assert_int_equal(pthread_create(&th[k], NULL, appender_main, &a[k]), 0);
    }
    for (unsigned k = 0; k < THREADS; k++) {
        assert_int_equal(pthread_join(th[k], NULL), 0);
        events += a[k].events;
    }
    TU_ASSERT_NO_THREAD_FAILURES();
    m = metrics(s->db);
    print_message("%s: %" PRIu64 " appends, %" PRIu64 " events, %" PRIu64 " groups, %" PRIu64
                  " syncs, %" PRIu64 " µs in syncs\n", tu_backend_name(), m.appends, m.events,
                  m.groups, m.syncs, m.sync_ns / 1000);
    assert_int_equal(m.appends, n);
    assert_int_equal(m.events, events);
    assert_int_equal(tu_stats(s->db).events, events);
    assert_int_equal(m.conflicts, 0);
    assert_true(m.groups >= 1 && m.groups <= n);
    /* embedded: one fdatasync per group at least; PostgreSQL: one commit
     * per group */
    if (tu_backend_pg())
        assert_int_equal(m.syncs, m.groups);
    else
        assert_true(m.syncs >= m.groups);
    check_consistent(&m, n);

    /* per handle, since evs_open */
    tu_store_reopen(s);
    m = metrics(s->db);
    assert_int_equal(m.appends, 0);
    assert_int_equal(m.groups, 0);
    assert_int_equal(m.syncs, 0);
}

/* What counts: conflicts (expected version, DCB condition, an external
 * checkpoint that does not move forward), retries (an append, no events),
 * a checkpoint's event, and nothing for a rejected call. */
static void test_metrics_what_counts(void **state)
{
    tu_store *s = *state;
    evs_metrics m0, m;
    evs_event_data ev = tu_event("M", "{}");
    evs_append_result res;

    tu_append1(s->db, NULL, "c-1", "M", "{}");
    tu_append1(s->db, NULL, "c-1", "M", "{}");
    m0 = metrics(s->db);
    assert_int_equal(m0.appends, 2);
    assert_int_equal(m0.events, 2);

    /* an expected-version conflict: counted, nothing else */
    TU_CHECK(evs_append(&res, s->db, NULL, "c-1", 5, &ev, 1), EVS_ECONFLICT);
    m = metrics(s->db);
    assert_int_equal(m.conflicts, m0.conflicts + 1);
    assert_int_equal(m.appends, m0.appends);
    assert_int_equal(m.events, m0.events);
    assert_int_equal(m.groups, m0.groups);

    /* a DCB condition that fails */
    {
        evs_append_condition c = {{NULL, 0}, 0}; /* any event at all */
        uint64_t conflict = 0;
        TU_CHECK(evs_dcb_append(NULL, &conflict, s->db, NULL, &ev, 1, &c), EVS_ECONFLICT);
        m = metrics(s->db);
        assert_int_equal(m.conflicts, m0.conflicts + 2);
    }

    /* rejected before the backend: nothing counted */
    TU_CHECK(evs_append(&res, s->db, NULL, "$bad", EVS_ANY, &ev, 1), EVS_EINVAL);
    TU_CHECK(evs_append(&res, s->db, NULL, "c-1", EVS_ANY, &ev, 0), EVS_EINVAL);
    m0 = metrics(s->db);
    assert_int_equal(m0.conflicts, m.conflicts);
    assert_int_equal(m0.appends, m.appends);
    assert_int_equal(m0.events, m.events);

    /* a retry: an append committed, no events written */
    {
        evs_event_data idev[2] = {tu_event_id("M", "{}"), tu_event_id("M", "{}")};
        TU_OK(evs_append(&res, s->db, NULL, "r-1", EVS_ANY, idev, 2));
        m = metrics(s->db);
        assert_int_equal(m.appends, m0.appends + 1);
        assert_int_equal(m.events, m0.events + 2);
        assert_int_equal(m.groups, m0.groups + 1);
        TU_OK(evs_append(&res, s->db, NULL, "r-1", EVS_ANY, idev, 2));
        m0 = metrics(s->db);
        assert_int_equal(m0.appends, m.appends + 1);
        assert_int_equal(m0.events, m.events);
        assert_int_equal(m0.groups, m.groups); /* it wrote nothing */
    }

    /* a checkpointed append writes the checkpoint's event too */
    {
        evs_append_request req = EVS_APPEND_REQUEST_INIT;
        evs_stream_append part = {"p-1", EVS_ANY, &ev, 1};
        req.parts = &part;
        req.nparts = 1;
        req.checkpoint = "up";
        req.checkpoint_flags = EVS_CHECKPOINT_EXTERNAL;
        req.checkpoint_token = 500;
        TU_OK(evs_append_ex(&res, NULL, s->db, &req));
        m = metrics(s->db);
        assert_int_equal(m.appends, m0.appends + 1);
        assert_int_equal(m.events, m0.events + 2);
        /* an external token that does not move forward: a conflict */
        TU_CHECK(evs_append_ex(&res, NULL, s->db, &req), EVS_ECONFLICT);
        TU_CHECK(evs_checkpoint_set_ex(s->db, NULL, "up", 400, EVS_CHECKPOINT_EXTERNAL),
                 EVS_ECONFLICT);
        m0 = metrics(s->db);
        assert_int_equal(m0.conflicts, m.conflicts + 2);
        assert_int_equal(m0.appends, m.appends);
        assert_int_equal(m0.events, m.events);
        /* evs_checkpoint_set writes one event */
        TU_OK(evs_checkpoint_set(s->db, NULL, "plain", 1));
        m = metrics(s->db);
        assert_int_equal(m.appends, m0.appends + 1);
        assert_int_equal(m.events, m0.events + 1);
    }

    /* every request here was alone: one group each that wrote */
    assert_int_equal(m.group_size_hist[0], m.groups);
    assert_true(m.syncs >= m.groups);
    check_consistent(&m, m.groups);
}

/* Embedded: a group of exactly 4 requests (the writer's test hook
 * EVS_DEBUG_GROUP_WAIT, read at open) lands in bucket 2, (2, 4]. */
static void *one_append(void *arg)
{
    evs_db *db = arg;
    evs_event_data ev = tu_event("G", "{}");
    int rc = evs_append(NULL, db, NULL, "g-1", EVS_ANY, &ev, 1);
    if (rc != 0)
        tu_fail("append: %d %s: %s", rc, tu_errname(rc), evs_last_error());
    return NULL;
}

static void test_metrics_group_of_four(void **state)
{
    TU_EMBEDDED_ONLY("EVS_DEBUG_GROUP_WAIT, which forms a group of a known size, is the "
                     "embedded writer's test hook");
    tu_store *s = *state;
    pthread_t th[4];
    evs_metrics m;

    tu_store_close(s);
    assert_int_equal(setenv("EVS_DEBUG_GROUP_WAIT", "4", 1), 0);
    tu_store_open(s);
    assert_int_equal(unsetenv("EVS_DEBUG_GROUP_WAIT"), 0);
    tu_failures_reset();
    for (int k = 0; k < 4; k++)
        assert_int_equal(pthread_create(&th[k], NULL, one_append, s->db), 0);
    for (int k = 0; k < 4; k++)
        assert_int_equal(pthread_join(th[k], NULL), 0);
    TU_ASSERT_NO_THREAD_FAILURES();
    m = metrics(s->db);
    assert_int_equal(m.appends, 4);
    assert_int_equal(m.events, 4);
    assert_int_equal(m.groups, 1);
    assert_int_equal(m.group_size_hist[2], 1);
    assert_int_equal(m.syncs, 1);
    check_consistent(&m, 4);
    tu_store_reopen(s); /* without the hook */
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, tu_setup_store, tu_teardown_store)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_bucket_rule),
        T(test_metrics_bad_arguments),
        T(test_metrics_concurrent_appends),
        T(test_metrics_what_counts),
        T(test_metrics_group_of_four),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
