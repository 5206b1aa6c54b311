/*
 * test_dcb_queries.c -- DCB query semantics (evs_read_query): types OR'ed
 * and tags AND'ed within an item, items OR'ed, the query that matches all,
 * the "$stream:" tag, forward and backward bounds and limits, consistency
 * markers (their rules, a read as a snapshot, evs_iter_marker on stream and
 * $all iterators), postings longer than a page, and a query of 1000 items.
 */
#include "fixture_dcb.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Query semantics                                                     */
/* ------------------------------------------------------------------ */

static void test_query_types_or_tags_and(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    build_fixture(db);
    EXPECT_Q(db, NULL, QUERY({TYPES("A")}), 0, FWD, 0, 9, PL(1, 3, 7));
    EXPECT_Q(db, NULL, QUERY({TYPES("A", "B")}), 0, FWD, 0, 9,
             PL(1, 2, 3, 5, 7, 8));
    EXPECT_Q(db, NULL, QUERY({TYPES("C", "Nope")}), 0, FWD, 0, 9, PL(4));
    EXPECT_Q(db, NULL, QUERY({TAGS("x:1")}), 0, FWD, 0, 9, PL(1, 2, 4));
    EXPECT_Q(db, NULL, QUERY({TAGS("x:1", "y:1")}), 0, FWD, 0, 9, PL(2, 4));
    EXPECT_Q(db, NULL, QUERY({TAGS("y:1", "x:1", "z:1")}), 0, FWD, 0, 9,
             PL(4));
    EXPECT_Q(db, NULL, QUERY({TYPES("B"), TAGS("x:1")}), 0, FWD, 0, 9, PL(2));
    EXPECT_Q(db, NULL, QUERY({TYPES("A", "C"), TAGS("y:1")}), 0, FWD, 0, 9,
             PL(3, 4));
    EXPECT_Q(db, NULL, QUERY({TYPES("A", "B", "C"), TAGS("x:1", "y:1")}), 0,
             FWD, 0, 9, PL(2, 4));
    /* Nothing matches: unknown type, unknown tag, tag of another type. */
    EXPECT_Q(db, NULL, QUERY({TYPES("Nope")}), 0, FWD, 0, 9, NONE);
    EXPECT_Q(db, NULL, QUERY({TAGS("x:1", "nope")}), 0, FWD, 0, 9, NONE);
    EXPECT_Q(db, NULL, QUERY({TYPES("C"), TAGS("x:2")}), 0, FWD, 0, 9, NONE);
    /* Exact matches only: no prefixes, case-sensitive. */
    EXPECT_Q(db, NULL, QUERY({TYPES("a")}), 0, FWD, 0, 9, NONE);
    EXPECT_Q(db, NULL, QUERY({TAGS("x")}), 0, FWD, 0, 9, NONE);
    EXPECT_Q(db, NULL, QUERY({TAGS("x:")}), 0, FWD, 0, 9, NONE);
    EXPECT_Q(db, NULL, QUERY({TAGS("X:1")}), 0, FWD, 0, 9, NONE);
}

static void test_query_items_or(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    build_fixture(db);
    EXPECT_Q(db, NULL, QUERY({TYPES("A"), TAGS("x:1")}, {TAGS("z:1")}), 0,
             FWD, 0, 9, PL(1, 4, 8));
    /* An event matching several items is returned once, in order. */
    EXPECT_Q(db, NULL, QUERY({TAGS("z:1")}, {TYPES("A")}, {TAGS("x:1")}), 0,
             FWD, 0, 9, PL(1, 2, 3, 4, 7, 8));
    EXPECT_Q(db, NULL, QUERY({TYPES("Nope")}, {TYPES("C")}), 0, FWD, 0, 9,
             PL(4));
    EXPECT_Q(db, NULL, QUERY({TYPES("Nope")}, {TAGS("nope")}), 0, FWD, 0, 9,
             NONE);
    EXPECT_Q(db, NULL,
             QUERY({TYPES("B"), TAGS("y:1")}, {TYPES("B"), TAGS("z:1")},
                   {TYPES("A"), TAGS("x:2")}),
             0, BWD, 0, 9, PL(8, 7, 2));
    /* The same item twice changes nothing. */
    EXPECT_Q(db, NULL, QUERY({TYPES("A")}, {TYPES("A")}), 0, FWD, 0, 9,
             PL(1, 3, 7));
}

static void test_query_match_all(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_query_item empty = {NULL, 0, NULL, 0};
    build_fixture(db);
    /* nitems == 0: everything of the tenant. */
    EXPECT_Q(db, NULL, QALL, 0, FWD, 0, 9, PL(1, 2, 3, 4, 5, 7, 8));
    EXPECT_Q(db, "other", QALL, 0, FWD, 0, 9, PL(6, 9));
    EXPECT_Q(db, "nobody", QALL, 0, FWD, 0, 9, NONE);
    EXPECT_Q(db, NULL, QALL, 0, BWD, 0, 9, PL(8, 7, 5, 4, 3, 2, 1));
    EXPECT_Q(db, NULL, QALL, 3, FWD, 2, 5, PL(4, 5));
    /* An item with neither types nor tags matches everything, also when
     * OR'ed with narrower items. */
    EXPECT_Q(db, NULL, ((evs_query){&empty, 1}), 0, FWD, 0, 9,
             PL(1, 2, 3, 4, 5, 7, 8));
    EXPECT_Q(db, NULL, QUERY({TYPES("A")}, {0}), 0, FWD, 0, 9,
             PL(1, 2, 3, 4, 5, 7, 8));
    EXPECT_Q(db, "other", QUERY({TYPES("Nope")}, {0}), 0, BWD, 0, 9,
             PL(9, 6));
    /* Non-NULL arrays with zero counts are "any" too. */
    EXPECT_Q(db, NULL,
             QUERY({.types = STRS("A"), .ntypes = 0, .tags = STRS("nope"),
                    .ntags = 0}),
             0, FWD, 0, 9, PL(1, 2, 3, 4, 5, 7, 8));
}

static void test_query_stream_tag(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    build_fixture(db);
    EXPECT_Q(db, NULL, QUERY({TAGS("$stream:s1")}), 0, FWD, 0, 9, PL(1, 2));
    EXPECT_Q(db, "other", QUERY({TAGS("$stream:s1")}), 0, FWD, 0, 9, PL(6));
    EXPECT_Q(db, NULL, QUERY({TAGS("$stream:s2")}), 0, BWD, 0, 9, PL(5, 3));
    EXPECT_Q(db, NULL, QUERY({TAGS("$stream:nope")}), 0, FWD, 0, 9, NONE);
    /* A stream name is not a prefix. */
    EXPECT_Q(db, NULL, QUERY({TAGS("$stream:s")}), 0, FWD, 0, 9, NONE);
    /* Combined with types and tags (AND) and other items (OR). */
    EXPECT_Q(db, NULL, QUERY({TYPES("B"), TAGS("$stream:s1")}), 0, FWD, 0, 9,
             PL(2));
    EXPECT_Q(db, NULL, QUERY({TAGS("$stream:s1", "y:1")}), 0, FWD, 0, 9,
             PL(2));
    EXPECT_Q(db, NULL, QUERY({TAGS("y:1", "$stream:s2")}), 0, FWD, 0, 9,
             PL(3));
    EXPECT_Q(db, NULL, QUERY({TYPES("C"), TAGS("$stream:s1")}), 0, FWD, 0, 9,
             NONE);
    EXPECT_Q(db, NULL, QUERY({TAGS("$stream:s2")}, {TYPES("C")}), 0, FWD, 0,
             9, PL(3, 4, 5));
    EXPECT_Q(db, NULL, QUERY({TAGS("$stream:s1")}, {TAGS("$stream:s3")}), 0,
             FWD, 0, 9, PL(1, 2, 7));
    /* An event is in one stream only. */
    EXPECT_Q(db, NULL, QUERY({TAGS("$stream:s1", "$stream:s2")}), 0, FWD, 0,
             9, NONE);
    /* Stream names with ':' and the longest stream name (256 bytes: a
     * "$stream:" tag may exceed the tag limit by its prefix). */
    {
        char name[EVS_MAX_STREAM_LEN + 1];
        char tag[sizeof(EVS_STREAM_TAG_PREFIX) + EVS_MAX_STREAM_LEN];
        uint64_t p1, p2;
        size_t n = EVS_MAX_STREAM_LEN;
        p1 = put(db, NULL, "order:7", TEV0("A", "{}"));
        memset(name, 'n', n);
        name[n] = '\0';
        p2 = put(db, NULL, name, TEV0("A", "{}"));
        memcpy(tag, EVS_STREAM_TAG_PREFIX, strlen(EVS_STREAM_TAG_PREFIX));
        memcpy(tag + strlen(EVS_STREAM_TAG_PREFIX), name, n + 1);
        assert_int_equal(strlen(tag), strlen(EVS_STREAM_TAG_PREFIX) + EVS_MAX_STREAM_LEN);
        EXPECT_Q(db, NULL, QUERY({TAGS("$stream:order:7")}), 0, FWD, 0, p2,
                 PL(p1));
        EXPECT_Q(db, NULL, QUERY({TAGS("$stream:order")}), 0, FWD, 0, p2,
                 NONE);
        EXPECT_Q(db, NULL, QUERY({.tags = STRS(tag), .ntags = 1}), 0, BWD, 0,
                 p2, PL(p2));
    }
    /* The stream tag is not stored on the events. */
    {
        tu_events e = query_events(db, NULL, QUERY({TAGS("$stream:s1")}), 0,
                                   FWD, 0, NULL);
        assert_int_equal(e.n, 2);
        tu_assert_tags(&e.v[0], STRS("x:1"), 1);
        tu_assert_tags(&e.v[1], STRS("x:1", "y:1"), 2);
        assert_string_equal(e.v[0].stream, "s1");
        assert_int_equal(e.v[0].stream_version, 0);
        assert_int_equal(e.v[1].stream_version, 1);
        tu_events_free(&e);
    }
}

static void test_query_forward_bounds_and_limit(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_query ab = QUERY({TYPES("A", "B")});
    build_fixture(db);
    /* position_bound is exclusive. */
    EXPECT_Q(db, NULL, ab, 0, FWD, 0, 9, PL(1, 2, 3, 5, 7, 8));
    EXPECT_Q(db, NULL, ab, 1, FWD, 0, 9, PL(2, 3, 5, 7, 8));
    EXPECT_Q(db, NULL, ab, 2, FWD, 0, 9, PL(3, 5, 7, 8));
    EXPECT_Q(db, NULL, ab, 4, FWD, 0, 9, PL(5, 7, 8));
    EXPECT_Q(db, NULL, ab, 7, FWD, 0, 9, PL(8));
    EXPECT_Q(db, NULL, ab, 8, FWD, 0, 9, NONE);
    EXPECT_Q(db, NULL, ab, 9, FWD, 0, 9, NONE);
    EXPECT_Q(db, NULL, ab, 1000, FWD, 0, 9, NONE);
    /* limit */
    EXPECT_Q(db, NULL, ab, 0, FWD, 1, 1, PL(1));
    EXPECT_Q(db, NULL, ab, 0, FWD, 2, 2, PL(1, 2));
    EXPECT_Q(db, NULL, ab, 2, FWD, 2, 5, PL(3, 5));
    EXPECT_Q(db, NULL, ab, 5, FWD, 1, 7, PL(7));
    EXPECT_Q(db, NULL, ab, 4, FWD, 100, 9, PL(5, 7, 8));
    /* Paging forward with the marker as the next bound. */
    {
        uint64_t bound = 0, m = 0;
        size_t pages = 0, seen = 0;
        for (;;) {
            tu_events e = query_events(db, NULL, ab, bound, FWD, 2, &m);
            size_t n = e.n;
            seen += n;
            /* Stopped by the limit: the last returned; when no match is
             * left the head is also allowed (see test_marker_rules). */
            if (n == 2 && m != e.v[1].position)
                assert_true(e.v[1].position == 8 && m == 9);
            tu_events_free(&e);
            pages++;
            if (n < 2)
                break;
            bound = m;
            assert_true(pages < 10);
        }
        assert_int_equal(seen, 6);
        assert_int_equal(m, 9);
    }
}

static void test_query_backward_bounds_and_limit(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_query ab = QUERY({TYPES("A", "B")});
    build_fixture(db);
    /* position_bound 0: from the newest; else exclusive. */
    EXPECT_Q(db, NULL, ab, 0, BWD, 0, 9, PL(8, 7, 5, 3, 2, 1));
    EXPECT_Q(db, NULL, ab, 9, BWD, 0, 9, PL(8, 7, 5, 3, 2, 1));
    EXPECT_Q(db, NULL, ab, 1000, BWD, 0, 9, PL(8, 7, 5, 3, 2, 1));
    EXPECT_Q(db, NULL, ab, 8, BWD, 0, 9, PL(7, 5, 3, 2, 1));
    EXPECT_Q(db, NULL, ab, 5, BWD, 0, 9, PL(3, 2, 1));
    EXPECT_Q(db, NULL, ab, 2, BWD, 0, 9, PL(1));
    EXPECT_Q(db, NULL, ab, 1, BWD, 0, 9, NONE);
    /* limit: the marker of a backward read is always the head. */
    EXPECT_Q(db, NULL, ab, 0, BWD, 1, 9, PL(8));
    EXPECT_Q(db, NULL, ab, 0, BWD, 2, 9, PL(8, 7));
    EXPECT_Q(db, NULL, ab, 7, BWD, 2, 9, PL(5, 3));
    EXPECT_Q(db, NULL, ab, 3, BWD, 5, 9, PL(2, 1));
    EXPECT_Q(db, NULL, QUERY({TYPES("C")}), 0, BWD, 1, 9, PL(4));
    EXPECT_Q(db, "other", QUERY({TYPES("C")}), 0, BWD, 1, 9, PL(9));
}

static void test_marker_rules(void **state)
{
    tu_store *s = *state;
    evs_db *db = s->db;
    evs_query a = QUERY({TYPES("A")});
    tu_events e;
    uint64_t m = 0;

    /* Empty store: nothing considered, the head is 0. */
    EXPECT_Q(db, NULL, QALL, 0, FWD, 0, 0, NONE);
    EXPECT_Q(db, NULL, a, 0, BWD, 0, 0, NONE);
    EXPECT_Q(db, NULL, a, 0, FWD, 5, 0, NONE);

    build_fixture(db);
    /* Exhausted forward read: the head when the read began (9, the
     * store's head, although the tenant's newest event is 8). */
    EXPECT_Q(db, NULL, a, 0, FWD, 0, 9, PL(1, 3, 7));
    /* ...also when nothing matched. */
    EXPECT_Q(db, NULL, QUERY({TYPES("Nope")}), 0, FWD, 0, 9, NONE);
    EXPECT_Q(db, "nobody", QALL, 0, FWD, 0, 9, NONE);
    EXPECT_Q(db, NULL, a, 7, FWD, 0, 9, NONE);
    /* ...and when the limit was not reached. */
    EXPECT_Q(db, NULL, a, 0, FWD, 4, 9, PL(1, 3, 7));
    /* Forward read stopped by its limit with more matches left: the last
     * event returned. */
    EXPECT_Q(db, NULL, a, 0, FWD, 1, 1, PL(1));
    EXPECT_Q(db, NULL, a, 0, FWD, 2, 3, PL(1, 3));
    EXPECT_Q(db, NULL, a, 1, FWD, 1, 3, PL(3));
    /* Backward: the head, whatever the limit and bound. */
    EXPECT_Q(db, NULL, a, 0, BWD, 1, 9, PL(7));
    EXPECT_Q(db, NULL, a, 4, BWD, 1, 9, PL(3));
    EXPECT_Q(db, NULL, a, 0, BWD, 0, 9, PL(7, 3, 1));
    EXPECT_Q(db, NULL, QUERY({TYPES("Nope")}), 0, BWD, 0, 9, NONE);

    /* Exactly `limit` matches: the read was stopped by its limit, or
     * exhausted; the header allows either reading, both are safe. */
    e = query_events(db, NULL, a, 0, FWD, 3, &m);
    assert_int_equal(e.n, 3);
    if (m != 7 && m != 9)
        print_error("forward limit 3 over exactly 3 matches: marker %" PRIu64
                    ", expected 7 (last returned) or 9 (head)\n",
                    m);
    assert_true(m == 7 || m == 9);
    tu_events_free(&e);

    /* Before the end of a forward read: the last event returned so far. */
    {
        evs_iter *it = NULL;
        const evs_event *ev;
        TU_OK(evs_read_query(&it, db, NULL, &a, 0, FWD, 0));
        TU_OK(evs_iter_next(&ev, it));
        assert_int_equal(ev->position, 1);
        TU_OK(evs_iter_marker(&m, it));
        assert_int_equal(m, 1);
        TU_OK(evs_iter_next(&ev, it));
        assert_int_equal(ev->position, 3);
        TU_OK(evs_iter_marker(&m, it));
        assert_int_equal(m, 3);
        TU_OK(evs_iter_next(&ev, it));
        TU_CHECK(evs_iter_next(&ev, it), EVS_ITEROVER);
        TU_OK(evs_iter_marker(&m, it));
        assert_int_equal(m, 9);
        /* ITEROVER again, same marker. */
        TU_CHECK(evs_iter_next(&ev, it), EVS_ITEROVER);
        TU_OK(evs_iter_marker(&m, it));
        assert_int_equal(m, 9);
        TU_CHECK(evs_iter_marker(NULL, it), EVS_EINVAL);
        TU_CHECK(evs_iter_marker(&m, NULL), EVS_EINVAL);
        evs_iter_free(it);
    }

    /* The marker is usable as `after`: nothing new, no conflict; a new
     * match after it, a conflict naming that event. */
    e = query_events(db, NULL, a, 0, FWD, 0, &m);
    tu_events_free(&e);
    {
        evs_append_condition c = {a, m};
        uint64_t conflict = 77, p;
        evs_event_data ev = TEV0("Z", "{}");
        TU_OK(evs_dcb_append(NULL, &conflict, db, NULL, &ev, 1, &c));
        assert_int_equal(conflict, 0);
        p = put(db, "other", NULL, TEV0("A", "{}")); /* other tenant */
        TU_OK(evs_dcb_append(NULL, &conflict, db, NULL, &ev, 1, &c));
        p = put(db, NULL, "s9", TEV0("A", "{}"));
        TU_CHECK(evs_dcb_append(NULL, &conflict, db, NULL, &ev, 1, &c),
                 EVS_ECONFLICT);
        assert_int_equal(conflict, p);
    }
}

/* A read is a snapshot: events appended after it began are not returned,
 * and the marker is the head when it began. */
static void test_marker_snapshot(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_query a = QUERY({TYPES("A")});
    evs_iter *fwd = NULL, *bwd = NULL;
    const evs_event *ev;
    uint64_t m = 0, p;
    tu_events e = {0};

    build_fixture(db);
    TU_OK(evs_read_query(&fwd, db, NULL, &a, 0, FWD, 0));
    TU_OK(evs_read_query(&bwd, db, NULL, &a, 0, BWD, 0));
    p = put(db, NULL, "s1", TEV0("A", "{}"));
    assert_int_equal(p, 10);
    TU_OK(tu_collect(&e, fwd));
    ASSERT_POSITIONS(&e, PL(1, 3, 7));
    TU_OK(evs_iter_marker(&m, fwd));
    assert_int_equal(m, 9);
    tu_events_clear(&e);
    TU_OK(evs_iter_next(&ev, bwd));
    assert_int_equal(ev->position, 7);
    TU_OK(tu_collect(&e, bwd));
    ASSERT_POSITIONS(&e, PL(3, 1));
    TU_OK(evs_iter_marker(&m, bwd));
    assert_int_equal(m, 9);
    tu_events_free(&e);
    evs_iter_free(fwd);
    evs_iter_free(bwd);
    EXPECT_Q(db, NULL, a, 0, FWD, 0, 10, PL(1, 3, 7, 10));
}

/* evs_iter_marker "works for every iterator": the same rules for stream
 * and $all reads. */
static void test_marker_other_iterators(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_iter *it = NULL;
    tu_events e = {0};
    uint64_t m = 0;

    build_fixture(db);
    /* $all of the default tenant, exhausted: the head (9). */
    TU_OK(evs_read_all(&it, db, "", 0, 0));
    TU_OK(tu_collect(&e, it));
    ASSERT_POSITIONS(&e, PL(1, 2, 3, 4, 5, 7, 8));
    TU_OK(evs_iter_marker(&m, it));
    assert_int_equal(m, 9);
    evs_iter_free(it);
    tu_events_clear(&e);
    /* ...stopped by its limit: the last returned. */
    TU_OK(evs_read_all(&it, db, "", 0, 2));
    TU_OK(tu_collect(&e, it));
    ASSERT_POSITIONS(&e, PL(1, 2));
    TU_OK(evs_iter_marker(&m, it));
    assert_int_equal(m, 2);
    evs_iter_free(it);
    tu_events_clear(&e);
    /* A stream, forward exhausted and backward: the head. */
    TU_OK(evs_read_stream(&it, db, NULL, "s2", 0, FWD, 0));
    TU_OK(tu_collect(&e, it));
    ASSERT_POSITIONS(&e, PL(3, 5));
    TU_OK(evs_iter_marker(&m, it));
    assert_int_equal(m, 9);
    evs_iter_free(it);
    tu_events_clear(&e);
    TU_OK(evs_read_stream(&it, db, NULL, "s2", EVS_END, BWD, 1));
    TU_OK(tu_collect(&e, it));
    ASSERT_POSITIONS(&e, PL(5));
    TU_OK(evs_iter_marker(&m, it));
    assert_int_equal(m, 9);
    evs_iter_free(it);
    tu_events_clear(&e);
    /* ...forward stopped by its limit: the last returned. */
    TU_OK(evs_read_stream(&it, db, NULL, "s1", 0, FWD, 1));
    TU_OK(tu_collect(&e, it));
    ASSERT_POSITIONS(&e, PL(1));
    TU_OK(evs_iter_marker(&m, it));
    assert_int_equal(m, 1);
    evs_iter_free(it);
    tu_events_free(&e);
    /* A stream that does not exist: the head. */
    TU_OK(evs_read_stream(&it, db, NULL, "nope", 0, FWD, 0));
    TU_OK(tu_collect(&e, it));
    assert_int_equal(e.n, 0);
    TU_OK(evs_iter_marker(&m, it));
    assert_int_equal(m, 9);
    evs_iter_free(it);
    tu_events_free(&e);
}

/* Many events: postings longer than a page, sparse matches. */
static void test_query_many_events(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    enum { N = 3000 };
    uint64_t *want7 = malloc(N * sizeof *want7), *wantx = malloc(N * 8);
    size_t n7 = 0, nx = 0, i;
    tu_events e;

    assert_non_null(want7);
    assert_non_null(wantx);
    for (i = 0; i < N; i += 100) {
        evs_event_data ev[100];
        char tags[100][32];
        const char *tp[100][2];
        size_t j;
        for (j = 0; j < 100; j++) {
            size_t k = i + j;
            snprintf(tags[j], sizeof tags[j], "mod7:%zu", k % 7);
            tp[j][0] = tags[j];
            tp[j][1] = "every";
            ev[j] = tev_(k % 13 == 0 ? "Rare" : "Common", "{}", tp[j],
                         k % 5 == 0 ? 2 : 1);
            if (k % 7 == 3)
                want7[n7++] = k + 1;
            if (k % 13 == 0 && k % 5 == 0)
                wantx[nx++] = k + 1;
        }
        TU_OK(evs_dcb_append(NULL, NULL, db, NULL, ev, 100, NULL));
    }
    e = query_events(db, NULL, QUERY({TAGS("mod7:3")}), 0, FWD, 0, NULL);
    assert_positions_(&e, want7, n7, "mod7:3", __FILE__, __LINE__);
    tu_events_free(&e);
    e = query_events(db, NULL, QUERY({TYPES("Rare"), TAGS("every")}), 0, FWD,
                     0, NULL);
    assert_positions_(&e, wantx, nx, "Rare+every", __FILE__, __LINE__);
    tu_events_free(&e);
    /* Backward from the middle with a limit. */
    e = query_events(db, NULL, QUERY({TAGS("mod7:3")}), 1500, BWD, 3, NULL);
    assert_int_equal(e.n, 3);
    for (i = 0; i < 3; i++) {
        size_t k = 0;
        while (k < n7 && want7[k] < 1500)
            k++;
        assert_int_equal(e.v[i].position, want7[k - 1 - i]);
    }
    tu_events_free(&e);
    free(want7);
    free(wantx);
}

/* 1000 items: allowed, and the answer is the union. */
static void test_query_1000_items(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    enum { NITEMS = 1000, NEV = 300 };
    evs_query_item *items = calloc(NITEMS, sizeof *items);
    char (*tags)[24] = calloc(NITEMS, sizeof *tags);
    const char **tp = calloc(NITEMS, sizeof *tp);
    uint64_t want[NEV];
    const char *const *num = STRS("Num");
    size_t nwant = 0, i;
    tu_events e;
    uint64_t m = 0;

    assert_non_null(items);
    assert_non_null(tags);
    assert_non_null(tp);
    /* Events with tags n:0 .. n:299, types Num / Other. */
    for (i = 0; i < NEV; i++) {
        char tag[24];
        snprintf(tag, sizeof tag, "n:%zu", i);
        put(db, NULL, NULL,
            tev_(i % 4 == 0 ? "Other" : "Num", "{}",
                 (const char *const[]){tag}, 1));
    }
    /* Items {types:[Num], tags:[n:(3k)]} for k < 1000: tags up to 2997,
     * most of them match nothing. */
    for (i = 0; i < NITEMS; i++) {
        snprintf(tags[i], sizeof tags[i], "n:%zu", 3 * i);
        tp[i] = tags[i];
        items[i] = (evs_query_item){num, 1, &tp[i], 1};
        if (3 * i < NEV && (3 * i) % 4 != 0)
            want[nwant++] = 3 * i + 1;
    }
    e = query_events(db, NULL, (evs_query){items, NITEMS}, 0, FWD, 0, &m);
    assert_positions_(&e, want, nwant, "1000-item query", __FILE__,
                      __LINE__);
    assert_int_equal(m, NEV);
    tu_events_free(&e);
    /* Backward with a limit. */
    e = query_events(db, NULL, (evs_query){items, NITEMS}, 0, BWD, 5, NULL);
    assert_int_equal(e.n, 5);
    for (i = 0; i < 5; i++)
        assert_int_equal(e.v[i].position, want[nwant - 1 - i]);
    tu_events_free(&e);
    /* As an append condition. */
    {
        evs_append_condition c = {{items, NITEMS}, want[nwant - 2]};
        evs_event_data ev = TEV0("Probe", "{}");
        uint64_t conf = 0;
        TU_CHECK(evs_dcb_append(NULL, &conf, db, NULL, &ev, 1, &c),
                 EVS_ECONFLICT);
        assert_int_equal(conf, want[nwant - 1]);
        c.after = want[nwant - 1];
        TU_OK(evs_dcb_append(NULL, &conf, db, NULL, &ev, 1, &c));
    }
    free(items);
    free(tags);
    free(tp);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, tu_setup_store, \
                                              tu_teardown_store)
    const struct CMUnitTest tests[] = {
        T(test_query_types_or_tags_and),
        T(test_query_items_or),
        T(test_query_match_all),
        T(test_query_stream_tag),
        T(test_query_forward_bounds_and_limit),
        T(test_query_backward_bounds_and_limit),
        T(test_marker_rules),
        T(test_marker_snapshot),
        T(test_marker_other_iterators),
        T(test_query_many_events),
        T(test_query_1000_items),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
