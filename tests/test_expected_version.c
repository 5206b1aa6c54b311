/*
 * test_expected_version.c -- optimistic concurrency: the expected-version
 * conditions of evs_append and evs_append_multi (KurrentDB semantics).
 */
#include "testutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Append n events to stream with EVS_ANY. */
static void fill(tu_store *s, const char *tenant, const char *stream, int n)
{
    int i;
    for (i = 0; i < n; i++)
        tu_append1(s->db, tenant, stream, "Filled", "{}");
}

/* Append one event with the expected version and check it succeeds with
 * the given new version. */
static void expect_ok(tu_store *s, const char *tenant, const char *stream,
                      int64_t expected, int64_t new_version)
{
    evs_event_data ev = tu_event("Ok", "{\"ok\":true}");
    evs_append_result r;
    uint64_t head = tu_head(s->db, NULL);
    memset(&r, 0xcd, sizeof r);
    TU_OK(evs_append(&r, s->db, tenant, stream, expected, &ev, 1));
    assert_int_equal(r.status, 0);
    assert_int_equal(r.stream_version, new_version);
    assert_int_equal(r.first_version, new_version);
    assert_int_equal(r.first_position, head + 1);
    assert_int_equal(r.last_position, head + 1);
    assert_int_equal(tu_version(s->db, tenant, stream), new_version);
}

/* Append two events with the expected version and check the conflict:
 * code, actual version in out, message, and that nothing was written. */
static void expect_conflict(tu_store *s, const char *tenant,
                            const char *stream, int64_t expected,
                            int64_t actual)
{
    evs_event_data ev[2] = {tu_event("No", "{\"no\":1}"),
                            tu_event("No", "{\"no\":2}")};
    evs_append_result r;
    evs_stats before = tu_stats(s->db), after;
    uint64_t thead = tu_head(s->db, tenant ? tenant : "");
    char msg[1024];

    memset(&r, 0xcd, sizeof r);
    TU_CHECK(evs_append(&r, s->db, tenant, stream, expected, ev, 2),
             EVS_ECONFLICT);
    snprintf(msg, sizeof msg, "%s", evs_last_error());
    print_message("conflict message: %s\n", msg);
    assert_int_equal(r.status, EVS_ECONFLICT);
    assert_int_equal(r.stream_version, actual);
    assert_true(msg[0] != '\0');
    assert_non_null(strstr(msg, stream));
    if (actual >= 0 && !tu_contains_number(msg, actual)) {
        print_error("message \"%s\" does not name the actual version %" PRId64
                    "\n",
                    msg, actual);
        assert_true(tu_contains_number(msg, actual));
    }

    after = tu_stats(s->db);
    assert_int_equal(after.events, before.events);
    assert_int_equal(after.head_position, before.head_position);
    assert_int_equal(after.streams, before.streams);
    assert_int_equal(tu_head(s->db, tenant ? tenant : ""), thead);
    assert_int_equal(tu_version(s->db, tenant, stream), actual);
}

static void test_any(void **state)
{
    tu_store *s = *state;
    expect_ok(s, NULL, "any-1", EVS_ANY, 0);
    expect_ok(s, NULL, "any-1", EVS_ANY, 1);
    expect_ok(s, NULL, "any-1", EVS_ANY, 2);
}

static void test_no_stream(void **state)
{
    tu_store *s = *state;
    expect_ok(s, NULL, "ns-1", EVS_NO_STREAM, 0);
    expect_conflict(s, NULL, "ns-1", EVS_NO_STREAM, 0);
    fill(s, NULL, "ns-1", 6);
    expect_conflict(s, NULL, "ns-1", EVS_NO_STREAM, 6);
    /* Another tenant's stream of the same name does not exist yet. */
    expect_ok(s, "tenant-b", "ns-1", EVS_NO_STREAM, 0);
}

static void test_stream_exists(void **state)
{
    tu_store *s = *state;
    expect_conflict(s, NULL, "se-1", EVS_STREAM_EXISTS, EVS_NO_STREAM);
    fill(s, NULL, "se-1", 1);
    expect_ok(s, NULL, "se-1", EVS_STREAM_EXISTS, 1);
    expect_ok(s, NULL, "se-1", EVS_STREAM_EXISTS, 2);
    /* Exists in the default tenant, not in tenant-b. */
    expect_conflict(s, "tenant-b", "se-1", EVS_STREAM_EXISTS, EVS_NO_STREAM);
}

static void test_exact(void **state)
{
    tu_store *s = *state;
    expect_conflict(s, NULL, "ex-1", 0, EVS_NO_STREAM);
    expect_conflict(s, NULL, "ex-1", 5, EVS_NO_STREAM);
    expect_ok(s, NULL, "ex-1", EVS_NO_STREAM, 0);
    expect_ok(s, NULL, "ex-1", 0, 1);
    fill(s, NULL, "ex-1", 5); /* now at 6 */
    expect_conflict(s, NULL, "ex-1", 5, 6);
    expect_conflict(s, NULL, "ex-1", 7, 6);
    expect_conflict(s, NULL, "ex-1", 41, 6);
    expect_conflict(s, NULL, "ex-1", 0, 6);
    expect_ok(s, NULL, "ex-1", 6, 7);
    /* A multi-event append with an exact version. */
    {
        evs_event_data ev[3] = {tu_event("A", "{\"n\":1}"),
                                tu_event("B", "{\"n\":2}"),
                                tu_event("C", "{\"n\":3}")};
        evs_append_result r;
        TU_OK(evs_append(&r, s->db, NULL, "ex-1", 7, ev, 3));
        assert_int_equal(r.first_version, 8);
        assert_int_equal(r.stream_version, 10);
        assert_int_equal(r.last_position - r.first_position, 2);
    }
    expect_conflict(s, NULL, "ex-1", 7, 10);
    /* Tenant isolation of versions. */
    fill(s, "tenant-b", "ex-1", 2);
    expect_conflict(s, "tenant-b", "ex-1", 10, 1);
    expect_ok(s, "tenant-b", "ex-1", 1, 2);
    expect_ok(s, NULL, "ex-1", 10, 11);
}

/* The conflict survives close/reopen: versions come from the durable
 * index, not from memory. */
static void test_exact_after_reopen(void **state)
{
    tu_store *s = *state;
    fill(s, NULL, "ro-1", 4);
    tu_store_reopen(s);
    expect_conflict(s, NULL, "ro-1", 2, 3);
    expect_conflict(s, NULL, "ro-1", EVS_NO_STREAM, 3);
    expect_ok(s, NULL, "ro-1", 3, 4);
}

/* ------------------------------------------------------------------ */
/* Multi-stream appends                                                */
/* ------------------------------------------------------------------ */

static void test_multi_success(void **state)
{
    tu_store *s = *state;
    evs_event_data a[2] = {tu_event("A", "{\"a\":0}"),
                           tu_event("A", "{\"a\":1}")};
    evs_event_data b[1] = {tu_event("B", "{\"b\":0}")};
    evs_event_data c[3] = {tu_event("C", "{\"c\":0}"),
                           tu_event("C", "{\"c\":1}"),
                           tu_event("C", "{\"c\":2}")};
    evs_stream_append parts[3];
    evs_append_result r[3];
    tu_events e = {0};
    size_t i;

    fill(s, "t", "m-b", 3);  /* m-b at 2 */
    fill(s, "t", "m-c", 1);  /* m-c at 0 */
    fill(s, NULL, "m-a", 2); /* other tenant: must not matter */
    parts[0] = (evs_stream_append){"m-a", EVS_NO_STREAM, a, 2};
    parts[1] = (evs_stream_append){"m-b", 2, b, 1};
    parts[2] = (evs_stream_append){"m-c", EVS_STREAM_EXISTS, c, 3};
    memset(r, 0xcd, sizeof r);
    TU_OK(evs_append_multi(r, s->db, "t", parts, 3));
    /* Numbered in part order, one contiguous range. */
    for (i = 0; i < 3; i++)
        assert_int_equal(r[i].status, 0);
    assert_int_equal(r[0].first_position, 7);
    assert_int_equal(r[0].last_position, 8);
    assert_int_equal(r[0].first_version, 0);
    assert_int_equal(r[0].stream_version, 1);
    assert_int_equal(r[1].first_position, 9);
    assert_int_equal(r[1].last_position, 9);
    assert_int_equal(r[1].first_version, 3);
    assert_int_equal(r[1].stream_version, 3);
    assert_int_equal(r[2].first_position, 10);
    assert_int_equal(r[2].last_position, 12);
    assert_int_equal(r[2].first_version, 1);
    assert_int_equal(r[2].stream_version, 3);

    TU_OK(tu_read_all(&e, s->db, "t", 7, 0));
    assert_int_equal(e.n, 6);
    for (i = 0; i < 6; i++) {
        static const char *const st[] = {"m-a", "m-a", "m-b",
                                         "m-c", "m-c", "m-c"};
        assert_int_equal(e.v[i].position, 7 + i);
        assert_string_equal(e.v[i].stream, st[i]);
        assert_string_equal(e.v[i].tenant, "t");
    }
    assert_string_equal(e.v[1].data, "{\"a\":1}");
    assert_string_equal(e.v[5].data, "{\"c\":2}");
    tu_events_free(&e);
    assert_int_equal(tu_version(s->db, NULL, "m-a"), 1);

    /* out may be NULL. */
    parts[0].expected_version = 1;
    parts[1].expected_version = 3;
    parts[2].expected_version = 3;
    TU_OK(evs_append_multi(NULL, s->db, "t", parts, 3));
    assert_int_equal(tu_head(s->db, NULL), 18);
}

static void test_multi_all_or_nothing(void **state)
{
    tu_store *s = *state;
    evs_event_data ev[2] = {tu_event("E", "{\"x\":1}"),
                            tu_event("E", "{\"x\":2}")};
    evs_stream_append parts[3];
    evs_append_result r[3];
    evs_stats before, after;
    char msg[1024];

    fill(s, NULL, "aon-1", 2); /* at 1 */
    fill(s, NULL, "aon-2", 5); /* at 4 */
    before = tu_stats(s->db);

    /* One failing part: the middle one. */
    parts[0] = (evs_stream_append){"aon-1", 1, ev, 2};
    parts[1] = (evs_stream_append){"aon-2", 3, ev, 1};
    parts[2] = (evs_stream_append){"aon-3", EVS_NO_STREAM, ev, 2};
    memset(r, 0xcd, sizeof r);
    TU_CHECK(evs_append_multi(r, s->db, NULL, parts, 3), EVS_ECONFLICT);
    snprintf(msg, sizeof msg, "%s", evs_last_error());
    print_message("multi conflict message: %s\n", msg);
    assert_non_null(strstr(msg, "aon-2"));
    assert_int_equal(r[0].status, 0);
    assert_int_equal(r[1].status, EVS_ECONFLICT);
    assert_int_equal(r[1].stream_version, 4);
    assert_int_equal(r[2].status, 0);
    after = tu_stats(s->db);
    assert_int_equal(after.events, before.events);
    assert_int_equal(after.head_position, before.head_position);
    assert_int_equal(after.streams, before.streams);
    assert_int_equal(tu_version(s->db, NULL, "aon-1"), 1);
    assert_int_equal(tu_version(s->db, NULL, "aon-3"), EVS_NO_STREAM);

    /* Two failing parts: both reported, both named. */
    parts[0] = (evs_stream_append){"aon-1", 0, ev, 2};
    parts[1] = (evs_stream_append){"aon-3", 0, ev, 1};
    parts[2] = (evs_stream_append){"aon-2", 4, ev, 2};
    memset(r, 0xcd, sizeof r);
    TU_CHECK(evs_append_multi(r, s->db, NULL, parts, 3), EVS_ECONFLICT);
    snprintf(msg, sizeof msg, "%s", evs_last_error());
    print_message("multi conflict message: %s\n", msg);
    assert_non_null(strstr(msg, "aon-1"));
    assert_non_null(strstr(msg, "aon-3"));
    assert_int_equal(r[0].status, EVS_ECONFLICT);
    assert_int_equal(r[0].stream_version, 1);
    assert_int_equal(r[1].status, EVS_ECONFLICT);
    assert_int_equal(r[1].stream_version, EVS_NO_STREAM);
    assert_int_equal(r[2].status, 0);
    after = tu_stats(s->db);
    assert_int_equal(after.events, before.events);
    assert_int_equal(after.head_position, before.head_position);
    assert_int_equal(tu_version(s->db, NULL, "aon-2"), 4);

    /* A failing part in another tenant's terms: aon-1 exists only in the
     * default tenant, so no_stream holds in tenant "z". */
    parts[0] = (evs_stream_append){"aon-1", EVS_NO_STREAM, ev, 1};
    parts[1] = (evs_stream_append){"aon-2", EVS_STREAM_EXISTS, ev, 1};
    memset(r, 0xcd, sizeof r);
    TU_CHECK(evs_append_multi(r, s->db, "z", parts, 2), EVS_ECONFLICT);
    assert_int_equal(r[0].status, 0);
    assert_int_equal(r[1].status, EVS_ECONFLICT);
    assert_int_equal(r[1].stream_version, EVS_NO_STREAM);
    assert_int_equal(tu_head(s->db, NULL), before.head_position);

    /* Fixing the condition makes the same append succeed. */
    parts[1].expected_version = EVS_ANY;
    TU_OK(evs_append_multi(r, s->db, "z", parts, 2));
    assert_int_equal(r[0].first_position, before.head_position + 1);
    assert_int_equal(r[1].first_position, before.head_position + 2);
}

static void test_multi_same_stream_twice(void **state)
{
    tu_store *s = *state;
    evs_event_data ev = tu_event("E", "{}");
    evs_stream_append parts[3];
    evs_append_result r[3];
    evs_stats before, after;

    fill(s, NULL, "dup-1", 1);
    before = tu_stats(s->db);
    parts[0] = (evs_stream_append){"dup-1", EVS_ANY, &ev, 1};
    parts[1] = (evs_stream_append){"dup-2", EVS_ANY, &ev, 1};
    parts[2] = (evs_stream_append){"dup-1", EVS_ANY, &ev, 1};
    TU_CHECK(evs_append_multi(r, s->db, NULL, parts, 3), EVS_EINVAL);
    TU_ASSERT_ERRMSG();
    after = tu_stats(s->db);
    assert_int_equal(after.events, before.events);
    assert_int_equal(after.head_position, before.head_position);
    assert_int_equal(tu_version(s->db, NULL, "dup-2"), EVS_NO_STREAM);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, tu_setup_store, \
                                              tu_teardown_store)
    const struct CMUnitTest tests[] = {
        T(test_any),
        T(test_no_stream),
        T(test_stream_exists),
        T(test_exact),
        T(test_exact_after_reopen),
        T(test_multi_success),
        T(test_multi_all_or_nothing),
        T(test_multi_same_stream_twice),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
