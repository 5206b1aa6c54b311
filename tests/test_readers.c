/*
 * test_readers.c -- readers never block writers and see only committed,
 * consistent snapshots.
 *
 * Worker threads record failures with tu_fail(); the main thread asserts.
 */
#include "testutil.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Snapshots, single-threaded                                          */
/* ------------------------------------------------------------------ */

static void test_iterator_is_snapshot(void **state)
{
    tu_store *s = *state;
    evs_iter *all = NULL, *stream = NULL, *back = NULL;
    const evs_event *ev;
    tu_events e = {0};
    int i;

    for (i = 0; i < 3; i++)
        tu_append1(s->db, NULL, "snap-1", "T", "{}");
    TU_OK(evs_read_all(&all, s->db, NULL, 0, 0));
    TU_OK(evs_read_stream(&stream, s->db, NULL, "snap-1", 0, EVS_FORWARD, 0));
    TU_OK(evs_read_stream(&back, s->db, NULL, "snap-1", EVS_END,
                          EVS_BACKWARD, 0));
    /* Start one of them before the appends, the others after. */
    TU_OK(evs_iter_next(&ev, all));
    assert_int_equal(ev->position, 1);

    /* Appends go through while the iterators are open: a writer that
     * waited for readers would hang here (and the test time out). */
    for (i = 0; i < 50; i++)
        tu_append1(s->db, NULL, "snap-1", "T", "{}");

    TU_OK(tu_collect(&e, all));
    assert_int_equal(e.n, 2);
    assert_int_equal(e.v[1].position, 3);
    tu_events_clear(&e);
    TU_OK(tu_collect(&e, stream));
    assert_int_equal(e.n, 3);
    tu_events_clear(&e);
    TU_OK(tu_collect(&e, back));
    assert_int_equal(e.n, 3);
    assert_int_equal(e.v[0].stream_version, 2);
    tu_events_free(&e);
    /* Exhausted iterators stay exhausted. */
    TU_CHECK(evs_iter_next(&ev, all), EVS_ITEROVER);
    evs_iter_free(all);
    evs_iter_free(stream);
    evs_iter_free(back);
    assert_int_equal(tu_head(s->db, NULL), 53);
}

/* ------------------------------------------------------------------ */
/* Readers and writers at once                                         */
/* ------------------------------------------------------------------ */

#define WRITERS 4
#define READERS 4
#define EVENTS_PER_WRITER 400
#define MAX_POS (WRITERS * EVENTS_PER_WRITER)
#define MIN_ROUNDS 50

typedef struct shared {
    evs_db *db;
    atomic_int writers_done;
    uint64_t seed;
} shared;

typedef struct writer {
    shared *sh;
    int idx;
} writer;

typedef struct reader {
    shared *sh;
    int idx;
    evs_uuid *seen;   /* [MAX_POS + 1]: id seen at each position */
    uint64_t rounds;
    uint64_t events_read;
} reader;

static void *writer_main(void *arg)
{
    writer *w = arg;
    tu_rng rng;
    char stream[16];
    int64_t v = EVS_NO_STREAM;
    int written = 0;

    tu_rng_init(&rng, w->sh->seed * 7 + (uint64_t)w->idx);
    snprintf(stream, sizeof stream, "w-%d", w->idx);
    while (written < EVENTS_PER_WRITER) {
        int n = (int)tu_rng_range(&rng, 1, 3), k, rc;
        evs_event_data ev[3];
        char data[3][48];
        evs_append_result r;
        if (n > EVENTS_PER_WRITER - written)
            n = EVENTS_PER_WRITER - written;
        for (k = 0; k < n; k++) {
            snprintf(data[k], sizeof data[k], "{\"w\":%d,\"v\":%" PRId64 "}",
                     w->idx, v + 1 + k);
            ev[k] = tu_event_id("W", data[k]);
        }
        rc = evs_append(&r, w->sh->db, NULL, stream, v, ev, (size_t)n);
        if (rc != 0) {
            tu_fail("writer %d: append at %" PRId64 " returned %d (%s): %s",
                    w->idx, v, rc, tu_errname(rc), evs_last_error());
            break;
        }
        v = r.stream_version;
        written += n;
    }
    atomic_fetch_add(&w->sh->writers_done, 1);
    return NULL;
}

/* Check one event read by reader r: its data names its stream and
 * version, and its id never changes between reads. */
static int check_event(reader *r, const evs_event *ev)
{
    int w;
    int64_t v;
    char stream[16];
    static const evs_uuid nil;

    if (ev->position < 1 || ev->position > MAX_POS) {
        tu_fail("reader %d: position %" PRIu64 " out of range", r->idx,
                ev->position);
        return -1;
    }
    if (sscanf(ev->data, "{\"w\":%d,\"v\":%" SCNd64 "}", &w, &v) != 2) {
        tu_fail("reader %d: position %" PRIu64 ": unexpected data %.*s",
                r->idx, ev->position, (int)ev->data_len,
                (const char *)ev->data);
        return -1;
    }
    snprintf(stream, sizeof stream, "w-%d", w);
    if (strcmp(ev->stream, stream) != 0 || ev->stream_version != v) {
        tu_fail("reader %d: position %" PRIu64 " is %s@%" PRId64
                " but its data says %s@%" PRId64,
                r->idx, ev->position, ev->stream, ev->stream_version, stream,
                v);
        return -1;
    }
    if (tu_uuid_eq(&r->seen[ev->position], &nil)) {
        r->seen[ev->position] = ev->id;
    } else if (!tu_uuid_eq(&r->seen[ev->position], &ev->id)) {
        tu_fail("reader %d: position %" PRIu64 " changed its id", r->idx,
                ev->position);
        return -1;
    }
    r->events_read++;
    return 0;
}

static int read_all_round(reader *r, tu_rng *rng, uint64_t *last_head)
{
    evs_db *db = r->sh->db;
    uint64_t h0 = 0, h1 = 0, from, limit, expect_pos, count = 0;
    evs_iter *it = NULL;
    const evs_event *ev;
    int rc;

    if ((rc = evs_head_position(&h0, db, NULL)) != 0) {
        tu_fail("reader %d: head returned %d", r->idx, rc);
        return -1;
    }
    if (h0 < *last_head) {
        tu_fail("reader %d: head went back from %" PRIu64 " to %" PRIu64,
                r->idx, *last_head, h0);
        return -1;
    }
    *last_head = h0;
    from = tu_rng_range(rng, 1, h0 > 0 ? h0 : 1);
    limit = tu_rng_range(rng, 0, 3) == 0 ? tu_rng_range(rng, 1, 40) : 0;
    if ((rc = evs_read_all(&it, db, NULL, from, limit)) != 0) {
        tu_fail("reader %d: read_all returned %d (%s): %s", r->idx, rc,
                tu_errname(rc), evs_last_error());
        return -1;
    }
    expect_pos = from;
    while ((rc = evs_iter_next(&ev, it)) == 0) {
        if (ev->position != expect_pos) {
            tu_fail("reader %d: read_all from %" PRIu64 " gave position "
                    "%" PRIu64 " where %" PRIu64 " was due",
                    r->idx, from, ev->position, expect_pos);
            evs_iter_free(it);
            return -1;
        }
        if (check_event(r, ev) != 0) {
            evs_iter_free(it);
            return -1;
        }
        expect_pos++;
        count++;
    }
    evs_iter_free(it);
    if (rc != EVS_ITEROVER) {
        tu_fail("reader %d: iter_next returned %d (%s)", r->idx, rc,
                tu_errname(rc));
        return -1;
    }
    /* At least what was committed before the read began... */
    if (h0 >= from) {
        uint64_t due = h0 - from + 1;
        if (limit != 0 && due > limit)
            due = limit;
        if (count < due) {
            tu_fail("reader %d: read_all from %" PRIu64 " limit %" PRIu64
                    " gave %" PRIu64 " events with head at %" PRIu64,
                    r->idx, from, limit, count, h0);
            return -1;
        }
    }
    if (limit != 0 && count > limit) {
        tu_fail("reader %d: limit %" PRIu64 " but %" PRIu64 " events",
                r->idx, limit, count);
        return -1;
    }
    /* ...and nothing that is not committed (visible as head) after it. */
    if ((rc = evs_head_position(&h1, db, NULL)) != 0 ||
        (count > 0 && expect_pos - 1 > h1)) {
        tu_fail("reader %d: read position %" PRIu64 " beyond head %" PRIu64,
                r->idx, expect_pos - 1, h1);
        return -1;
    }
    if (h1 < *last_head) {
        tu_fail("reader %d: head went back from %" PRIu64 " to %" PRIu64,
                r->idx, *last_head, h1);
        return -1;
    }
    *last_head = h1;
    return 0;
}

static int read_stream_round(reader *r, tu_rng *rng, int64_t *last_version)
{
    evs_db *db = r->sh->db;
    int w = (int)tu_rng_range(rng, 0, WRITERS - 1);
    char stream[16];
    int64_t v0 = 0, from, expect, count = 0;
    uint64_t last_pos = 0;
    int backward = tu_rng_range(rng, 0, 1) == 1;
    evs_iter *it = NULL;
    const evs_event *ev;
    int rc;

    snprintf(stream, sizeof stream, "w-%d", w);
    if ((rc = evs_stream_version(&v0, db, NULL, stream)) != 0) {
        tu_fail("reader %d: stream_version returned %d", r->idx, rc);
        return -1;
    }
    if (v0 < last_version[w]) {
        tu_fail("reader %d: %s went back from version %" PRId64
                " to %" PRId64,
                r->idx, stream, last_version[w], v0);
        return -1;
    }
    last_version[w] = v0;
    from = backward ? EVS_END
                    : (int64_t)tu_rng_range(rng, 0, v0 >= 0 ? (uint64_t)v0
                                                             : 0);
    rc = evs_read_stream(&it, db, NULL, stream, from,
                         backward ? EVS_BACKWARD : EVS_FORWARD, 0);
    if (rc != 0) {
        tu_fail("reader %d: read_stream returned %d (%s): %s", r->idx, rc,
                tu_errname(rc), evs_last_error());
        return -1;
    }
    expect = backward ? -1 : from;
    while ((rc = evs_iter_next(&ev, it)) == 0) {
        if (backward && expect == -1) {
            /* The newest event: at least the version seen before. */
            if (ev->stream_version < v0) {
                tu_fail("reader %d: backward read of %s starts at %" PRId64
                        " below %" PRId64,
                        r->idx, stream, ev->stream_version, v0);
                break;
            }
            expect = ev->stream_version;
        }
        if (ev->stream_version != expect ||
            (count > 0 && (backward ? ev->position >= last_pos
                                    : ev->position <= last_pos))) {
            tu_fail("reader %d: %s read %s: version %" PRId64
                    " (position %" PRIu64 ") where %" PRId64 " was due",
                    r->idx, stream, backward ? "backward" : "forward",
                    ev->stream_version, ev->position, expect);
            break;
        }
        if (check_event(r, ev) != 0)
            break;
        last_pos = ev->position;
        expect += backward ? -1 : 1;
        count++;
    }
    evs_iter_free(it);
    if (rc != EVS_ITEROVER) {
        if (rc != 0)
            tu_fail("reader %d: iter_next returned %d (%s)", r->idx, rc,
                    tu_errname(rc));
        return -1;
    }
    if (backward ? expect != -1 : (v0 >= 0 && expect <= v0)) {
        tu_fail("reader %d: %s read %s ended at %" PRId64
                " with version %" PRId64 " committed",
                r->idx, stream, backward ? "backward" : "forward", expect,
                v0);
        return -1;
    }
    return 0;
}

static void *reader_main(void *arg)
{
    reader *r = arg;
    tu_rng rng;
    uint64_t last_head = 0;
    int64_t last_version[WRITERS];
    int i;

    for (i = 0; i < WRITERS; i++)
        last_version[i] = EVS_NO_STREAM;
    tu_rng_init(&rng, r->sh->seed * 13 + (uint64_t)r->idx);
    while (atomic_load(&r->sh->writers_done) < WRITERS ||
           r->rounds < MIN_ROUNDS) {
        int rc = tu_rng_range(&rng, 0, 1) ? read_all_round(r, &rng, &last_head)
                                          : read_stream_round(r, &rng,
                                                              last_version);
        if (rc != 0)
            break;
        r->rounds++;
    }
    return NULL;
}

static void test_readers_and_writers(void **state)
{
    tu_store *s = *state;
    shared sh;
    writer w[WRITERS];
    reader r[READERS];
    pthread_t wt[WRITERS], rt[READERS];
    tu_events e = {0};
    static const evs_uuid nil;
    size_t i, p;

    tu_failures_reset();
    sh.db = s->db;
    atomic_init(&sh.writers_done, 0);
    sh.seed = tu_seed("readers");
    for (i = 0; i < READERS; i++) {
        r[i].sh = &sh;
        r[i].idx = (int)i;
        r[i].rounds = 0;
        r[i].events_read = 0;
        r[i].seen = calloc(MAX_POS + 1, sizeof *r[i].seen);
        assert_non_null(r[i].seen);
        assert_int_equal(pthread_create(&rt[i], NULL, reader_main, &r[i]), 0);
    }
    for (i = 0; i < WRITERS; i++) {
        w[i].sh = &sh;
        w[i].idx = (int)i;
        assert_int_equal(pthread_create(&wt[i], NULL, writer_main, &w[i]), 0);
    }
    for (i = 0; i < WRITERS; i++)
        assert_int_equal(pthread_join(wt[i], NULL), 0);
    for (i = 0; i < READERS; i++)
        assert_int_equal(pthread_join(rt[i], NULL), 0);
    TU_ASSERT_NO_THREAD_FAILURES();

    /* What every reader saw is what the store holds in the end. */
    TU_OK(tu_read_all(&e, s->db, NULL, 0, 0));
    assert_int_equal(e.n, MAX_POS);
    for (i = 0; i < READERS; i++) {
        print_message("reader %zu: %" PRIu64 " rounds, %" PRIu64
                      " events read\n",
                      i, r[i].rounds, r[i].events_read);
        assert_true(r[i].rounds >= MIN_ROUNDS);
        for (p = 1; p <= MAX_POS; p++)
            if (!tu_uuid_eq(&r[i].seen[p], &nil))
                tu_assert_uuid_equal(&r[i].seen[p], &e.v[p - 1].id);
        free(r[i].seen);
    }
    tu_events_free(&e);
    for (i = 0; i < WRITERS; i++) {
        char stream[16];
        snprintf(stream, sizeof stream, "w-%zu", i);
        assert_int_equal(tu_version(s->db, NULL, stream),
                         EVENTS_PER_WRITER - 1);
    }
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, tu_setup_store, \
                                              tu_teardown_store)
    const struct CMUnitTest tests[] = {
        T(test_iterator_is_snapshot),
        T(test_readers_and_writers),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
