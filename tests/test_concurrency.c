/*
 * test_concurrency.c -- many threads appending at once, through one
 * evs_db: optimistic concurrency on one hot stream, and group commit of
 * appends to distinct streams.
 *
 * Worker threads never call cmocka assertions (they longjmp); they record
 * failures with tu_fail() and the main thread checks after joining.
 */
#include "testutil.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One acknowledged event. */
typedef struct ack {
    int64_t version;
    uint64_t position;
    evs_uuid id;
    int thread;
    size_t k; /* the thread's k-th event */
} ack;

typedef struct worker {
    evs_db *db;
    int idx;
    size_t target; /* events to get acknowledged */
    ack *acks;
    size_t nacks;
    uint64_t conflicts;
    uint64_t seed;
} worker;

/* ------------------------------------------------------------------ */
/* 16 threads x 1000 appends to one stream, exact expected versions    */
/* ------------------------------------------------------------------ */

#define HOT_THREADS 16
#define HOT_PER_THREAD 1000
#define HOT_STREAM "hot-1"

static void *hot_worker(void *arg)
{
    worker *w = arg;
    int64_t expected = 0;
    char data[64];
    evs_uuid id;
    int rc;

    rc = evs_stream_version(&expected, w->db, NULL, HOT_STREAM);
    if (rc != 0) {
        tu_fail("thread %d: evs_stream_version returned %d (%s): %s", w->idx,
                rc, tu_errname(rc), evs_last_error());
        return NULL;
    }
    evs_uuid_generate(&id);
    while (w->nacks < w->target) {
        evs_event_data ev;
        evs_append_result r;
        snprintf(data, sizeof data, "{\"t\":%d,\"k\":%zu}", w->idx,
                 w->nacks);
        ev = tu_event("Hit", data);
        ev.id = id; /* the same id on every retry of this event */
        memset(&r, 0xcd, sizeof r);
        rc = evs_append(&r, w->db, NULL, HOT_STREAM, expected, &ev, 1);
        if (rc == 0) {
            if (r.status != 0 || r.first_version != expected + 1 ||
                r.stream_version != expected + 1 ||
                r.first_position != r.last_position) {
                tu_fail("thread %d: append at expected %" PRId64
                        " acknowledged status %d versions %" PRId64
                        "..%" PRId64 " positions %" PRIu64 "..%" PRIu64,
                        w->idx, expected, r.status, r.first_version,
                        r.stream_version, r.first_position,
                        r.last_position);
                return NULL;
            }
            w->acks[w->nacks].version = r.stream_version;
            w->acks[w->nacks].position = r.first_position;
            w->acks[w->nacks].id = id;
            w->acks[w->nacks].thread = w->idx;
            w->acks[w->nacks].k = w->nacks;
            w->nacks++;
            expected = r.stream_version;
            evs_uuid_generate(&id);
        } else if (rc == EVS_ECONFLICT) {
            w->conflicts++;
            /* The stream only grows, so the actual version reported must
             * be past the stale one we expected. */
            if (r.status != EVS_ECONFLICT || r.stream_version <= expected) {
                tu_fail("thread %d: conflict at expected %" PRId64
                        " reported status %d actual version %" PRId64,
                        w->idx, expected, r.status, r.stream_version);
                return NULL;
            }
            expected = r.stream_version;
        } else {
            tu_fail("thread %d: evs_append returned %d (%s): %s", w->idx,
                    rc, tu_errname(rc), evs_last_error());
            return NULL;
        }
    }
    return NULL;
}

static void test_one_stream_exact_versions(void **state)
{
    tu_store *s = *state;
    worker w[HOT_THREADS];
    pthread_t th[HOT_THREADS];
    const size_t total = (size_t)HOT_THREADS * HOT_PER_THREAD;
    ack **by_version = calloc(total, sizeof *by_version);
    uint64_t conflicts = 0;
    size_t i, j, acked = 0;
    tu_events e = {0};

    assert_non_null(by_version);
    tu_failures_reset();
    for (i = 0; i < HOT_THREADS; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].db = s->db;
        w[i].idx = (int)i;
        w[i].target = HOT_PER_THREAD;
        w[i].acks = calloc(HOT_PER_THREAD, sizeof *w[i].acks);
        assert_non_null(w[i].acks);
        assert_int_equal(pthread_create(&th[i], NULL, hot_worker, &w[i]), 0);
    }
    for (i = 0; i < HOT_THREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    TU_ASSERT_NO_THREAD_FAILURES();

    for (i = 0; i < HOT_THREADS; i++) {
        conflicts += w[i].conflicts;
        acked += w[i].nacks;
        for (j = 0; j < w[i].nacks; j++) {
            ack *a = &w[i].acks[j];
            assert_in_range(a->version, 0, (int64_t)total - 1);
            /* No version acknowledged twice. */
            if (by_version[a->version] != NULL)
                print_error("version %" PRId64 " acknowledged to threads %d "
                            "and %d\n",
                            a->version, by_version[a->version]->thread,
                            a->thread);
            assert_null(by_version[a->version]);
            by_version[a->version] = a;
        }
    }
    print_message("%zu appends acknowledged, %" PRIu64 " conflicts "
                  "retried\n",
                  acked, conflicts);
    assert_int_equal(acked, total);

    assert_int_equal(tu_version(s->db, NULL, HOT_STREAM), (int64_t)total - 1);
    assert_int_equal(tu_head(s->db, NULL), total);
    TU_OK(tu_read_stream(&e, s->db, NULL, HOT_STREAM, 0, EVS_FORWARD, 0));
    assert_int_equal(e.n, total);
    for (i = 0; i < e.n; i++) {
        ack *a = by_version[i];
        char data[64];
        assert_int_equal(e.v[i].stream_version, (int64_t)i);
        assert_int_equal(e.v[i].position, i + 1);
        assert_non_null(a);
        assert_int_equal(e.v[i].position, a->position);
        tu_assert_uuid_equal(&e.v[i].id, &a->id);
        snprintf(data, sizeof data, "{\"t\":%d,\"k\":%zu}", a->thread, a->k);
        assert_string_equal(e.v[i].data, data);
    }
    tu_events_free(&e);
    TU_OK(evs_verify(NULL, s->db, NULL, NULL));
    for (i = 0; i < HOT_THREADS; i++)
        free(w[i].acks);
    free(by_version);
}

/* ------------------------------------------------------------------ */
/* Threads appending batches to their own streams                      */
/* ------------------------------------------------------------------ */

#define OWN_THREADS 8
#define OWN_APPENDS 300
#define OWN_MAX_BATCH 3

static void *own_worker(void *arg)
{
    worker *w = arg;
    char stream[32];
    int64_t expected = EVS_NO_STREAM;
    tu_rng rng;
    size_t a, k;

    tu_rng_init(&rng, w->seed);
    snprintf(stream, sizeof stream, "own-%d", w->idx);
    for (a = 0; a < OWN_APPENDS; a++) {
        size_t n = (size_t)tu_rng_range(&rng, 1, OWN_MAX_BATCH);
        evs_event_data ev[OWN_MAX_BATCH];
        char data[OWN_MAX_BATCH][64];
        evs_append_result r;
        int rc;
        for (k = 0; k < n; k++) {
            snprintf(data[k], sizeof data[k], "{\"t\":%d,\"k\":%zu}", w->idx,
                     w->nacks + k);
            ev[k] = tu_event_id("Own", data[k]);
        }
        rc = evs_append(&r, w->db, NULL, stream, expected, ev, n);
        if (rc != 0) {
            /* We are this stream's only writer: a conflict is a bug. */
            tu_fail("thread %d: append %zu at expected %" PRId64
                    " returned %d (%s): %s",
                    w->idx, a, expected, rc, tu_errname(rc),
                    evs_last_error());
            return NULL;
        }
        if (r.first_version != expected + 1 ||
            r.stream_version != expected + (int64_t)n ||
            r.last_position != r.first_position + n - 1) {
            tu_fail("thread %d: append of %zu at expected %" PRId64
                    " acknowledged versions %" PRId64 "..%" PRId64
                    " positions %" PRIu64 "..%" PRIu64,
                    w->idx, n, expected, r.first_version, r.stream_version,
                    r.first_position, r.last_position);
            return NULL;
        }
        for (k = 0; k < n; k++) {
            ack *x = &w->acks[w->nacks++];
            x->version = r.first_version + (int64_t)k;
            x->position = r.first_position + k;
            x->id = ev[k].id;
            x->thread = w->idx;
            x->k = w->nacks - 1;
        }
        expected = r.stream_version;
    }
    return NULL;
}

static void test_distinct_streams_gapless(void **state)
{
    tu_store *s = *state;
    worker w[OWN_THREADS];
    pthread_t th[OWN_THREADS];
    uint64_t seed = tu_seed("distinct streams");
    ack **by_pos;
    size_t i, j, total = 0;
    tu_events e = {0};

    tu_failures_reset();
    for (i = 0; i < OWN_THREADS; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].db = s->db;
        w[i].idx = (int)i;
        w[i].seed = seed + i;
        w[i].acks = calloc(OWN_APPENDS * OWN_MAX_BATCH, sizeof *w[i].acks);
        assert_non_null(w[i].acks);
        assert_int_equal(pthread_create(&th[i], NULL, own_worker, &w[i]), 0);
    }
    for (i = 0; i < OWN_THREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    TU_ASSERT_NO_THREAD_FAILURES();

    for (i = 0; i < OWN_THREADS; i++)
        total += w[i].nacks;
    by_pos = calloc(total + 1, sizeof *by_pos);
    assert_non_null(by_pos);
    for (i = 0; i < OWN_THREADS; i++) {
        for (j = 0; j < w[i].nacks; j++) {
            ack *a = &w[i].acks[j];
            assert_in_range(a->position, 1, total);
            if (by_pos[a->position] != NULL)
                print_error("position %" PRIu64 " acknowledged twice\n",
                            a->position);
            assert_null(by_pos[a->position]);
            by_pos[a->position] = a;
        }
    }
    /* total distinct positions in 1..total: gapless. */
    assert_int_equal(tu_head(s->db, NULL), total);

    TU_OK(tu_read_all(&e, s->db, NULL, 0, 0));
    assert_int_equal(e.n, total);
    for (i = 0; i < e.n; i++) {
        ack *a = by_pos[i + 1];
        char stream[32];
        assert_int_equal(e.v[i].position, i + 1);
        tu_assert_uuid_equal(&e.v[i].id, &a->id);
        assert_int_equal(e.v[i].stream_version, a->version);
        snprintf(stream, sizeof stream, "own-%d", a->thread);
        assert_string_equal(e.v[i].stream, stream);
    }
    tu_events_free(&e);
    for (i = 0; i < OWN_THREADS; i++) {
        char stream[32];
        snprintf(stream, sizeof stream, "own-%zu", i);
        assert_int_equal(tu_version(s->db, NULL, stream),
                         (int64_t)w[i].nacks - 1);
        free(w[i].acks);
    }
    free(by_pos);
    TU_OK(evs_verify(NULL, s->db, NULL, NULL));
}

/* ------------------------------------------------------------------ */
/* Threads appending two-event batches to one stream with EVS_ANY      */
/* ------------------------------------------------------------------ */

#define ANY_THREADS 8
#define ANY_APPENDS 250

static void *any_worker(void *arg)
{
    worker *w = arg;
    size_t a;
    for (a = 0; a < ANY_APPENDS; a++) {
        char d0[64], d1[64];
        evs_event_data ev[2];
        evs_append_result r;
        int rc;
        snprintf(d0, sizeof d0, "{\"t\":%d,\"a\":%zu,\"i\":0}", w->idx, a);
        snprintf(d1, sizeof d1, "{\"t\":%d,\"a\":%zu,\"i\":1}", w->idx, a);
        ev[0] = tu_event("Pair", d0);
        ev[1] = tu_event("Pair", d1);
        rc = evs_append(&r, w->db, NULL, "shared-1", EVS_ANY, ev, 2);
        if (rc != 0) {
            tu_fail("thread %d: append returned %d (%s): %s", w->idx, rc,
                    tu_errname(rc), evs_last_error());
            return NULL;
        }
        if (r.last_position != r.first_position + 1 ||
            r.stream_version != r.first_version + 1) {
            tu_fail("thread %d: a two-event append got positions %" PRIu64
                    "..%" PRIu64 " versions %" PRId64 "..%" PRId64,
                    w->idx, r.first_position, r.last_position,
                    r.first_version, r.stream_version);
            return NULL;
        }
        w->nacks += 2;
    }
    return NULL;
}

static void test_one_stream_any_batches_not_interleaved(void **state)
{
    tu_store *s = *state;
    worker w[ANY_THREADS];
    pthread_t th[ANY_THREADS];
    tu_events e = {0};
    size_t i;

    tu_failures_reset();
    for (i = 0; i < ANY_THREADS; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].db = s->db;
        w[i].idx = (int)i;
        assert_int_equal(pthread_create(&th[i], NULL, any_worker, &w[i]), 0);
    }
    for (i = 0; i < ANY_THREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    TU_ASSERT_NO_THREAD_FAILURES();

    TU_OK(tu_read_stream(&e, s->db, NULL, "shared-1", 0, EVS_FORWARD, 0));
    assert_int_equal(e.n, ANY_THREADS * ANY_APPENDS * 2);
    for (i = 0; i < e.n; i += 2) {
        int t0, t1;
        size_t a0, a1;
        int i0, i1;
        assert_int_equal(e.v[i].stream_version, (int64_t)i);
        assert_int_equal(e.v[i + 1].stream_version, (int64_t)i + 1);
        assert_int_equal(e.v[i].position, i + 1);
        /* The two events of one append are adjacent and in order. */
        assert_int_equal(sscanf(e.v[i].data, "{\"t\":%d,\"a\":%zu,\"i\":%d}",
                                &t0, &a0, &i0),
                         3);
        assert_int_equal(sscanf(e.v[i + 1].data,
                                "{\"t\":%d,\"a\":%zu,\"i\":%d}", &t1, &a1,
                                &i1),
                         3);
        assert_int_equal(i0, 0);
        assert_int_equal(i1, 1);
        assert_int_equal(t0, t1);
        assert_int_equal(a0, a1);
    }
    tu_events_free(&e);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, tu_setup_store, \
                                              tu_teardown_store)
    const struct CMUnitTest tests[] = {
        T(test_one_stream_exact_versions),
        T(test_distinct_streams_gapless),
        T(test_one_stream_any_batches_not_interleaved),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
