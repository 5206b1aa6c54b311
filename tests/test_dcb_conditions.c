/*
 * test_dcb_conditions.c -- DCB appends: append conditions (`after`
 * exclusive, beyond the head, the first offending event named in the result
 * and the message, reported together with failed expected versions, nothing
 * written on failure, several conditions), an idempotent retry whose
 * condition now fails, events without a stream and requests mixing them
 * with stream parts, and tenant isolation of queries and conditions.
 */
#include "fixture_dcb.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Append conditions                                                   */
/* ------------------------------------------------------------------ */

/* A streamless append of one "Probe" event under conditions; returns rc
 * and fills conflicts[0..n). */
static int probe_append(evs_db *db, const char *tenant,
                        const evs_append_condition *c, size_t n,
                        uint64_t *conflicts, evs_append_result *res)
{
    evs_event_data ev = TEV0("Probe", "{}");
    evs_stream_append part = {NULL, EVS_ANY, &ev, 1};
    evs_append_request req = EVS_APPEND_REQUEST_INIT;
    req.tenant = tenant;
    req.parts = &part;
    req.nparts = 1;
    req.conditions = c;
    req.nconditions = n;
    if (conflicts != NULL)
        memset(conflicts, 0xab, n * sizeof *conflicts);
    return evs_append_ex(res, conflicts, db, &req);
}

static void test_condition_after_is_exclusive(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_append_condition c;
    uint64_t conf[1];
    snap before;

    build_fixture(db);
    c.fail_if_events_match = QUERY({TYPES("A")}); /* 1, 3, 7 */
    c.after = 7;
    TU_OK(probe_append(db, NULL, &c, 1, conf, NULL));
    assert_int_equal(conf[0], 0);
    before = take_snap(db);
    c.after = 6;
    TU_CHECK(probe_append(db, NULL, &c, 1, conf, NULL), EVS_ECONFLICT);
    assert_int_equal(conf[0], 7);
    ASSERT_UNCHANGED(db, before);
    /* after == 0: the whole store; first offending is the oldest. */
    c.after = 0;
    TU_CHECK(probe_append(db, NULL, &c, 1, conf, NULL), EVS_ECONFLICT);
    assert_int_equal(conf[0], 1);
    c.after = 1;
    TU_CHECK(probe_append(db, NULL, &c, 1, conf, NULL), EVS_ECONFLICT);
    assert_int_equal(conf[0], 3);
    c.after = 2;
    TU_CHECK(probe_append(db, NULL, &c, 1, conf, NULL), EVS_ECONFLICT);
    assert_int_equal(conf[0], 3);
    c.after = 3;
    TU_CHECK(probe_append(db, NULL, &c, 1, conf, NULL), EVS_ECONFLICT);
    assert_int_equal(conf[0], 7);
    ASSERT_UNCHANGED(db, before);
}

static void test_condition_after_beyond_head(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_append_condition c = {QALL, 0};
    uint64_t conf[1];
    evs_append_result r;

    build_fixture(db);
    /* A tenant without events: nothing can match. */
    TU_OK(probe_append(db, "empty", &c, 1, conf, &r));
    assert_int_equal(conf[0], 0);
    assert_int_equal(r.first_position, 10);
    c.after = 1000;
    TU_OK(probe_append(db, NULL, &c, 1, conf, &r));
    assert_int_equal(conf[0], 0);
    assert_int_equal(r.first_position, 11);
    c.after = UINT64_MAX;
    TU_OK(probe_append(db, NULL, &c, 1, conf, &r));
    assert_int_equal(r.first_position, 12);
    /* ...and the events it skipped over still count for later appends
     * with an earlier `after`. */
    c.after = 10;
    TU_CHECK(probe_append(db, NULL, &c, 1, conf, &r), EVS_ECONFLICT);
    assert_int_equal(conf[0], 11);
}

static void test_condition_first_offending_and_message(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_append_condition c;
    uint64_t conf[1];
    char msg[1024];
    size_t i;

    for (i = 0; i < 20; i++)
        put(db, NULL, i % 2 ? "odd" : NULL, TEV0("Filler", "{}"));
    put(db, NULL, NULL, TEV("Hit", "{}", "k:1")); /* 21 */
    for (i = 0; i < 5; i++)
        put(db, NULL, NULL, TEV0("Filler", "{}"));
    put(db, NULL, "x", TEV("Hit", "{}", "k:1"));  /* 27 */
    put(db, NULL, NULL, TEV("Hit", "{}", "k:1")); /* 28 */
    c.fail_if_events_match = QUERY({TYPES("Hit"), TAGS("k:1")});
    c.after = 12;
    TU_CHECK(probe_append(db, NULL, &c, 1, conf, NULL), EVS_ECONFLICT);
    snprintf(msg, sizeof msg, "%s", evs_last_error());
    print_message("condition conflict message: %s\n", msg);
    assert_int_equal(conf[0], 21);
    if (!tu_contains_number(msg, 21))
        print_error("message \"%s\" does not name position 21\n", msg);
    assert_true(tu_contains_number(msg, 21));
    c.after = 21;
    TU_CHECK(probe_append(db, NULL, &c, 1, conf, NULL), EVS_ECONFLICT);
    snprintf(msg, sizeof msg, "%s", evs_last_error());
    assert_int_equal(conf[0], 27);
    assert_true(tu_contains_number(msg, 27));
    /* evs_dcb_append's *conflict is the same. */
    {
        evs_event_data ev = TEV0("Probe", "{}");
        uint64_t conflict = 0;
        c.after = 27;
        TU_CHECK(evs_dcb_append(NULL, &conflict, db, NULL, &ev, 1, &c),
                 EVS_ECONFLICT);
        assert_int_equal(conflict, 28);
        assert_true(tu_contains_number(evs_last_error(), 28));
        /* conflict may be NULL */
        TU_CHECK(evs_dcb_append(NULL, NULL, db, NULL, &ev, 1, &c),
                 EVS_ECONFLICT);
        c.after = 28;
        conflict = 5;
        TU_OK(evs_dcb_append(NULL, &conflict, db, NULL, &ev, 1, &c));
        assert_int_equal(conflict, 0);
    }
}

static void test_condition_and_expected_versions_all_reported(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_event_data ev = TEV0("E", "{}");
    evs_stream_append parts[3];
    evs_append_condition c[2];
    evs_append_request req = EVS_APPEND_REQUEST_INIT;
    evs_append_result r[3];
    uint64_t conf[2];
    char msg[1024];
    snap before;

    build_fixture(db);
    parts[0] = (evs_stream_append){"s1", 1, &ev, 1};            /* ok */
    parts[1] = (evs_stream_append){"s2", 0, &ev, 1};            /* at 1 */
    parts[2] = (evs_stream_append){"fresh", EVS_NO_STREAM, &ev, 1}; /* ok */
    c[0].fail_if_events_match = QUERY({TAGS("z:1")});
    c[0].after = 5; /* 8 */
    c[1].fail_if_events_match = QUERY({TYPES("C")});
    c[1].after = 4; /* holds */
    req.parts = parts;
    req.nparts = 3;
    req.conditions = c;
    req.nconditions = 2;
    before = take_snap(db);
    memset(r, 0xcd, sizeof r);
    memset(conf, 0xcd, sizeof conf);
    TU_CHECK(evs_append_ex(r, conf, db, &req), EVS_ECONFLICT);
    snprintf(msg, sizeof msg, "%s", evs_last_error());
    print_message("versions + conditions message: %s\n", msg);
    assert_int_equal(r[0].status, 0);
    assert_int_equal(r[1].status, EVS_ECONFLICT);
    assert_int_equal(r[1].stream_version, 1);
    assert_int_equal(r[2].status, 0);
    assert_int_equal(conf[0], 8);
    assert_int_equal(conf[1], 0);
    assert_non_null(strstr(msg, "s2"));
    assert_true(tu_contains_number(msg, 8));
    ASSERT_UNCHANGED(db, before);
    assert_int_equal(tu_version(db, NULL, "s1"), 1);
    assert_int_equal(tu_version(db, NULL, "s2"), 1);
    assert_int_equal(tu_version(db, NULL, "fresh"), EVS_NO_STREAM);

    /* Only the version fails: conflicts all 0. */
    c[0].after = 8;
    memset(conf, 0xcd, sizeof conf);
    TU_CHECK(evs_append_ex(r, conf, db, &req), EVS_ECONFLICT);
    assert_int_equal(conf[0], 0);
    assert_int_equal(conf[1], 0);
    assert_int_equal(r[1].status, EVS_ECONFLICT);
    /* Only the condition fails: every part's status is 0. */
    parts[1].expected_version = 1;
    c[1].after = 3;
    memset(conf, 0xcd, sizeof conf);
    TU_CHECK(evs_append_ex(r, conf, db, &req), EVS_ECONFLICT);
    snprintf(msg, sizeof msg, "%s", evs_last_error());
    assert_int_equal(r[0].status, 0);
    assert_int_equal(r[1].status, 0);
    assert_int_equal(r[2].status, 0);
    assert_int_equal(conf[0], 0);
    assert_int_equal(conf[1], 4);
    assert_true(tu_contains_number(msg, 4));
    ASSERT_UNCHANGED(db, before);
    /* All hold: written, versions move. */
    c[1].after = 4;
    memset(conf, 0xcd, sizeof conf);
    TU_OK(evs_append_ex(r, conf, db, &req));
    assert_int_equal(conf[0], 0);
    assert_int_equal(conf[1], 0);
    assert_int_equal(r[0].first_position, 10);
    assert_int_equal(r[2].last_position, 12);
    assert_int_equal(tu_version(db, NULL, "s2"), 2);
    assert_int_equal(tu_version(db, NULL, "fresh"), 0);
}

static void test_condition_failure_writes_nothing(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_event_data ev[3] = {TEV("N1", "{}", "new:1"), TEV("N2", "{}", "new:1"),
                            TEV("N3", "{}", "new:1")};
    evs_stream_append parts[2] = {{"s1", EVS_ANY, ev, 2},
                                  {NULL, EVS_ANY, ev + 2, 1}};
    evs_append_condition c = {QUERY({TYPES("B")}), 2}; /* 5, 8 */
    evs_append_request req = EVS_APPEND_REQUEST_INIT;
    evs_append_result r[2];
    uint64_t conf = 0;
    snap before;
    tu_events e = {0};

    build_fixture(db);
    req.parts = parts;
    req.nparts = 2;
    req.conditions = &c;
    req.nconditions = 1;
    before = take_snap(db);
    TU_CHECK(evs_append_ex(r, &conf, db, &req), EVS_ECONFLICT);
    assert_int_equal(conf, 5);
    ASSERT_UNCHANGED(db, before);
    assert_int_equal(tu_head(db, NULL), 9);
    assert_int_equal(tu_head(db, ""), 8);
    assert_int_equal(tu_version(db, NULL, "s1"), 1);
    EXPECT_Q(db, NULL, QUERY({TAGS("new:1")}), 0, FWD, 0, 9, NONE);
    EXPECT_Q(db, NULL, QUERY({TYPES("N1", "N2", "N3")}), 0, FWD, 0, 9, NONE);
    TU_OK(tu_read_all(&e, db, NULL, 1, 0));
    assert_int_equal(e.n, 9);
    tu_events_free(&e);
    /* The store goes on: the next append gets position 10. */
    c.after = 8;
    TU_OK(evs_append_ex(r, &conf, db, &req));
    assert_int_equal(r[0].first_position, 10);
    assert_int_equal(r[1].first_position, 12);
    EXPECT_Q(db, NULL, QUERY({TAGS("new:1")}), 0, FWD, 0, 12, PL(10, 11, 12));
}

static void test_condition_two_one_failing(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_append_condition c[2];
    uint64_t conf[2];
    char msg[1024];
    snap before;

    build_fixture(db);
    c[0].fail_if_events_match = QUERY({TYPES("A"), TAGS("x:2")}); /* 7 */
    c[0].after = 7;                                                /* holds */
    c[1].fail_if_events_match = QUERY({TAGS("y:1")}); /* 2, 3, 4 */
    c[1].after = 2;
    before = take_snap(db);
    TU_CHECK(probe_append(db, NULL, c, 2, conf, NULL), EVS_ECONFLICT);
    snprintf(msg, sizeof msg, "%s", evs_last_error());
    print_message("two conditions message: %s\n", msg);
    assert_int_equal(conf[0], 0);
    assert_int_equal(conf[1], 3);
    assert_true(tu_contains_number(msg, 3));
    ASSERT_UNCHANGED(db, before);
    /* Swapped: the failing one first. */
    {
        evs_append_condition d[2] = {c[1], c[0]};
        TU_CHECK(probe_append(db, NULL, d, 2, conf, NULL), EVS_ECONFLICT);
        assert_int_equal(conf[0], 3);
        assert_int_equal(conf[1], 0);
    }
    /* Both failing: both reported. */
    c[0].after = 6;
    TU_CHECK(probe_append(db, NULL, c, 2, conf, NULL), EVS_ECONFLICT);
    snprintf(msg, sizeof msg, "%s", evs_last_error());
    print_message("two failing conditions message: %s\n", msg);
    assert_int_equal(conf[0], 7);
    assert_int_equal(conf[1], 3);
    assert_true(tu_contains_number(msg, 7));
    assert_true(tu_contains_number(msg, 3));
    ASSERT_UNCHANGED(db, before);
    /* Both holding. */
    c[0].after = 7;
    c[1].after = 4;
    TU_OK(probe_append(db, NULL, c, 2, conf, NULL));
    assert_int_equal(conf[0], 0);
    assert_int_equal(conf[1], 0);
    assert_int_equal(tu_head(db, NULL), 10);
    /* A condition with the "all" query fails on any event of the tenant
     * after `after`, and only of the tenant. */
    c[0].fail_if_events_match = QALL;
    c[0].after = 8;
    TU_CHECK(probe_append(db, NULL, c, 1, conf, NULL), EVS_ECONFLICT);
    assert_int_equal(conf[0], 10);
    TU_CHECK(probe_append(db, "other", c, 1, conf, NULL), EVS_ECONFLICT);
    assert_int_equal(conf[0], 9);
    c[0].after = 9;
    TU_OK(probe_append(db, "other", c, 1, conf, NULL)); /* 11 */
    c[0].after = 10;
    TU_OK(probe_append(db, NULL, c, 1, conf, NULL)); /* 11 is "other"'s */
    assert_int_equal(conf[0], 0);
    assert_int_equal(tu_head(db, NULL), 12);
}

/* ------------------------------------------------------------------ */
/* Idempotent retry                                                    */
/* ------------------------------------------------------------------ */

static void test_idempotent_retry_with_condition(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_event_data ev[2] = {TEV("OrderPlaced", "{\"o\":1}", "order:1"),
                            TEV("OrderPriced", "{\"o\":1}", "order:1")};
    evs_append_condition c = {QUERY({TAGS("order:1")}), 0};
    evs_append_result r, r2;
    uint64_t conflict = 9;
    snap before;

    evs_uuid_generate(&ev[0].id);
    evs_uuid_generate(&ev[1].id);
    put(db, NULL, NULL, TEV0("Noise", "{}"));
    TU_OK(evs_dcb_append(&r, &conflict, db, NULL, ev, 2, &c));
    assert_int_equal(conflict, 0);
    assert_int_equal(r.first_position, 2);
    assert_int_equal(r.last_position, 3);
    put(db, NULL, NULL, TEV0("Noise", "{}"));

    /* The same append again: its condition now fails (events 2 and 3
     * match), but it is a retry: the original positions, nothing
     * written. */
    before = take_snap(db);
    memset(&r2, 0xcd, sizeof r2);
    conflict = 9;
    TU_OK(evs_dcb_append(&r2, &conflict, db, NULL, ev, 2, &c));
    assert_int_equal(r2.status, 0);
    assert_int_equal(r2.first_position, 2);
    assert_int_equal(r2.last_position, 3);
    assert_int_equal(r2.stream_version, EVS_NO_STREAM);
    assert_int_equal(r2.first_version, EVS_NO_STREAM);
    assert_int_equal(conflict, 0);
    ASSERT_UNCHANGED(db, before);
    EXPECT_Q(db, NULL, QUERY({TAGS("order:1")}), 0, FWD, 0, 4, PL(2, 3));

    /* The same events without ids would be new events: they conflict. */
    {
        evs_event_data fresh[2] = {ev[0], ev[1]};
        memset(&fresh[0].id, 0, sizeof fresh[0].id);
        memset(&fresh[1].id, 0, sizeof fresh[1].id);
        TU_CHECK(evs_dcb_append(NULL, &conflict, db, NULL, fresh, 2, &c),
                 EVS_ECONFLICT);
        assert_int_equal(conflict, 2);
        ASSERT_UNCHANGED(db, before);
    }

    /* A multi-part request with a stream and a condition, retried. */
    {
        evs_event_data se[2] = {TEV0("S", "{\"s\":1}"),
                                TEV("T", "{\"t\":1}", "order:2")};
        evs_stream_append parts[2] = {{"orders", EVS_NO_STREAM, se, 1},
                                      {NULL, EVS_ANY, se + 1, 1}};
        evs_append_condition c2 = {QUERY({TAGS("order:2")}, {TAGS("$stream:orders")}),
                                   tu_head(db, NULL)};
        evs_append_request req = EVS_APPEND_REQUEST_INIT;
        evs_append_result rr[2], rr2[2];
        uint64_t conf = 7;
        evs_uuid_generate(&se[0].id);
        evs_uuid_generate(&se[1].id);
        req.parts = parts;
        req.nparts = 2;
        req.conditions = &c2;
        req.nconditions = 1;
        TU_OK(evs_append_ex(rr, &conf, db, &req));
        assert_int_equal(rr[0].first_position, 5);
        assert_int_equal(rr[1].first_position, 6);
        before = take_snap(db);
        memset(rr2, 0xcd, sizeof rr2);
        TU_OK(evs_append_ex(rr2, &conf, db, &req));
        assert_int_equal(conf, 0);
        assert_int_equal(rr2[0].status, 0);
        assert_int_equal(rr2[0].first_position, 5);
        assert_int_equal(rr2[0].last_position, 5);
        assert_int_equal(rr2[0].first_version, 0);
        assert_int_equal(rr2[0].stream_version, 0);
        assert_int_equal(rr2[1].status, 0);
        assert_int_equal(rr2[1].first_position, 6);
        assert_int_equal(rr2[1].stream_version, EVS_NO_STREAM);
        ASSERT_UNCHANGED(db, before);
    }
}

/* ------------------------------------------------------------------ */
/* Events without a stream                                             */
/* ------------------------------------------------------------------ */

static void test_streamless_dcb_append(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_event_data ev[2] = {TEV("X", "{\"a\":1}", "t:1"),
                            TEV("Y", "{\"a\":2}", "t:1", "t:2")};
    evs_append_result r;
    evs_stats st;
    tu_events e = {0};
    evs_iter *it = NULL;

    memset(&r, 0xcd, sizeof r);
    TU_OK(evs_dcb_append(&r, NULL, db, NULL, ev, 2, NULL));
    assert_int_equal(r.status, 0);
    assert_int_equal(r.first_position, 1);
    assert_int_equal(r.last_position, 2);
    assert_int_equal(r.stream_version, EVS_NO_STREAM);
    assert_int_equal(r.first_version, EVS_NO_STREAM);
    /* out may be NULL */
    TU_OK(evs_dcb_append(NULL, NULL, db, "t2", ev, 1, NULL));

    /* In $all, with stream "" and no version. */
    TU_OK(tu_read_all(&e, db, "", 0, 0));
    assert_int_equal(e.n, 2);
    assert_string_equal(e.v[0].stream, "");
    assert_string_equal(e.v[1].stream, "");
    assert_int_equal(e.v[0].stream_version, EVS_NO_STREAM);
    assert_int_equal(e.v[1].stream_version, EVS_NO_STREAM);
    assert_string_equal(e.v[0].type, "X");
    assert_string_equal(e.v[1].data, "{\"a\":2}");
    tu_assert_tags(&e.v[1], STRS("t:1", "t:2"), 2);
    tu_events_clear(&e);
    TU_OK(tu_read_all(&e, db, "t2", 0, 0));
    assert_int_equal(e.n, 1);
    assert_int_equal(e.v[0].position, 3);
    assert_string_equal(e.v[0].stream, "");
    tu_events_free(&e);

    /* Found by queries, with the same fields. */
    e = query_events(db, NULL, QUERY({TAGS("t:1")}), 0, FWD, 0, NULL);
    assert_int_equal(e.n, 2);
    assert_string_equal(e.v[0].stream, "");
    assert_int_equal(e.v[0].stream_version, EVS_NO_STREAM);
    assert_string_equal(e.v[1].type, "Y");
    tu_events_free(&e);
    EXPECT_Q(db, NULL, QUERY({TYPES("Y")}), 0, FWD, 0, 3, PL(2));

    /* In no stream: no stream counted, none readable, no "$stream:". */
    st = tu_stats(db);
    assert_int_equal(st.events, 3);
    assert_int_equal(st.streams, 0);
    TU_CHECK(evs_read_stream(&it, db, NULL, "", 0, FWD, 0), EVS_EINVAL);
    assert_null(it);
    TU_CHECK(evs_stream_version(&(int64_t){0}, db, NULL, ""), EVS_EINVAL);
    assert_int_equal(tu_head(db, ""), 2);

    /* A stream appended later starts at version 0. */
    tu_append1(db, NULL, "later", "Z", "{}");
    assert_int_equal(tu_version(db, NULL, "later"), 0);
    EXPECT_Q(db, NULL, QUERY({TAGS("$stream:later")}), 0, FWD, 0, 4, PL(4));
    assert_int_equal(tu_stats(db).streams, 1);
}

static void test_streamless_mixed_request(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_event_data a[2] = {TEV("F", "{\"i\":1}", "m:1"),
                           TEV("F", "{\"i\":2}", "m:1")};
    evs_event_data b[1] = {TEV("G", "{\"i\":3}", "m:1")};
    evs_stream_append parts[2];
    evs_append_request req = EVS_APPEND_REQUEST_INIT;
    evs_append_result r[2];
    tu_events e = {0};
    snap before;
    size_t i;

    /* Streamless part first. */
    parts[0] = (evs_stream_append){NULL, EVS_ANY, a, 2};
    parts[1] = (evs_stream_append){"ms", EVS_NO_STREAM, b, 1};
    req.parts = parts;
    req.nparts = 2;
    memset(r, 0xcd, sizeof r);
    TU_OK(evs_append_ex(r, NULL, db, &req));
    assert_int_equal(r[0].status, 0);
    assert_int_equal(r[0].first_position, 1);
    assert_int_equal(r[0].last_position, 2);
    assert_int_equal(r[0].stream_version, EVS_NO_STREAM);
    assert_int_equal(r[0].first_version, EVS_NO_STREAM);
    assert_int_equal(r[1].first_position, 3);
    assert_int_equal(r[1].first_version, 0);
    assert_int_equal(r[1].stream_version, 0);

    /* Stream part first. */
    parts[0] = (evs_stream_append){"ms", 0, b, 1};
    parts[1] = (evs_stream_append){NULL, EVS_ANY, a, 1};
    TU_OK(evs_append_ex(r, NULL, db, &req));
    assert_int_equal(r[0].first_position, 4);
    assert_int_equal(r[0].stream_version, 1);
    assert_int_equal(r[1].first_position, 5);
    assert_int_equal(r[1].stream_version, EVS_NO_STREAM);

    TU_OK(tu_read_all(&e, db, NULL, 0, 0));
    assert_int_equal(e.n, 5);
    {
        static const char *const st[] = {"", "", "ms", "ms", ""};
        static const int64_t ver[] = {-1, -1, 0, 1, -1};
        for (i = 0; i < 5; i++) {
            assert_string_equal(e.v[i].stream, st[i]);
            assert_int_equal(e.v[i].stream_version, ver[i]);
        }
    }
    tu_events_clear(&e);
    TU_OK(tu_read_stream(&e, db, NULL, "ms", 0, FWD, 0));
    ASSERT_POSITIONS(&e, PL(3, 4));
    tu_events_free(&e);
    EXPECT_Q(db, NULL, QUERY({TAGS("$stream:ms")}), 0, FWD, 0, 5, PL(3, 4));
    EXPECT_Q(db, NULL, QUERY({TAGS("m:1")}), 0, FWD, 0, 5,
             PL(1, 2, 3, 4, 5));
    assert_int_equal(tu_stats(db).streams, 1);

    /* The stream part's version fails: the streamless part's status is 0
     * and nothing is written. */
    parts[0].expected_version = 0;
    before = take_snap(db);
    memset(r, 0xcd, sizeof r);
    TU_CHECK(evs_append_ex(r, NULL, db, &req), EVS_ECONFLICT);
    assert_int_equal(r[0].status, EVS_ECONFLICT);
    assert_int_equal(r[0].stream_version, 1);
    assert_int_equal(r[1].status, 0);
    ASSERT_UNCHANGED(db, before);
}

/* ------------------------------------------------------------------ */
/* Tenants                                                             */
/* ------------------------------------------------------------------ */

static void test_tenant_isolation(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_query qx = QUERY({TAGS("x:1")});
    evs_append_condition c;
    uint64_t conf = 0, m = 0, pb;
    tu_events e;
    int i;

    /* Same events in both tenants, interleaved: ta at odd positions. */
    for (i = 0; i < 3; i++) {
        put(db, "ta", "s1", TEV("A", "{}", "x:1"));
        put(db, "tb", "s1", TEV("A", "{}", "x:1"));
        put(db, "ta", NULL, TEV("B", "{}", "x:1", "y:1"));
        put(db, "tb", NULL, TEV("B", "{}", "x:1", "y:1"));
    }
    EXPECT_Q(db, "ta", qx, 0, FWD, 0, 12, PL(1, 3, 5, 7, 9, 11));
    EXPECT_Q(db, "tb", qx, 0, FWD, 0, 12, PL(2, 4, 6, 8, 10, 12));
    EXPECT_Q(db, "ta", QUERY({TAGS("$stream:s1")}), 0, FWD, 0, 12,
             PL(1, 5, 9));
    EXPECT_Q(db, "tb", QUERY({TYPES("B"), TAGS("y:1")}), 0, BWD, 2, 12,
             PL(12, 8));
    EXPECT_Q(db, "ta", QALL, 6, FWD, 0, 12, PL(7, 9, 11));
    EXPECT_Q(db, NULL, QALL, 0, FWD, 0, 12, NONE);
    EXPECT_Q(db, "", qx, 0, FWD, 0, 12, NONE);

    /* Conditions see only their own tenant. */
    e = query_events(db, "ta", qx, 0, FWD, 0, &m);
    tu_events_free(&e);
    pb = put(db, "tb", NULL, TEV("A", "{}", "x:1"));
    c.fail_if_events_match = qx;
    c.after = m;
    TU_OK(probe_append(db, "ta", &c, 1, &conf, NULL));
    assert_int_equal(conf, 0);
    /* tb's condition from 0 fails on tb's first event, not ta's. */
    c.after = 0;
    TU_CHECK(probe_append(db, "tb", &c, 1, &conf, NULL), EVS_ECONFLICT);
    assert_int_equal(conf, 2);
    c.after = 12;
    TU_CHECK(probe_append(db, "tb", &c, 1, &conf, NULL), EVS_ECONFLICT);
    assert_int_equal(conf, pb);
    /* A tenant without events: every condition holds. */
    c.after = 0;
    TU_OK(probe_append(db, "tc", &c, 1, &conf, NULL));
    c.fail_if_events_match = QALL;
    TU_OK(probe_append(db, "td", &c, 1, &conf, NULL));
    /* The "" tenant and NULL are the same tenant. */
    put(db, NULL, NULL, TEV("A", "{}", "x:1"));
    EXPECT_Q(db, "", qx, 0, FWD, 0, ANY_MARKER, PL(tu_head(db, NULL)));
    c.fail_if_events_match = qx;
    TU_CHECK(probe_append(db, "", &c, 1, &conf, NULL), EVS_ECONFLICT);
    assert_int_equal(conf, tu_head(db, NULL));
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, tu_setup_store, \
                                              tu_teardown_store)
    const struct CMUnitTest tests[] = {
        T(test_condition_after_is_exclusive),
        T(test_condition_after_beyond_head),
        T(test_condition_first_offending_and_message),
        T(test_condition_and_expected_versions_all_reported),
        T(test_condition_failure_writes_nothing),
        T(test_condition_two_one_failing),
        T(test_idempotent_retry_with_condition),
        T(test_streamless_dcb_append),
        T(test_streamless_mixed_request),
        T(test_tenant_isolation),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
