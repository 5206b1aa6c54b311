/*
 * test_dcb_bad_input.c -- DCB bad input: queries with empty, NULL, reserved
 * ('$') or non-UTF-8 terms, too many items or terms; appends with reserved
 * or duplicate tags, too many conditions, an expected version on a
 * streamless part, two streamless parts, a bad request version or tag
 * fields. Each is rejected with EVS_EINVAL and a message, writes nothing,
 * and leaves the store usable.
 */
#include "fixture_dcb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Bad input                                                           */
/* ------------------------------------------------------------------ */

/*
 * The query is rejected with EVS_EINVAL and a message by evs_read_query
 * (which leaves *out NULL), and as the query of an append condition
 * (nothing written); the store stays usable.
 */
static void expect_bad_query_(evs_db *db, evs_query q, const char *file,
                              int line)
{
    evs_iter *it = (evs_iter *)0x1;
    evs_append_condition c = {q, 0};
    evs_event_data ev = TEV0("Bad", "{}");
    snap before = take_snap(db);
    int rc = evs_read_query(&it, db, NULL, &q, 0, FWD, 0);
    if (rc != EVS_EINVAL)
        tu_report_rc("evs_read_query", rc, EVS_EINVAL, file, line);
    assert_int_equal(rc, EVS_EINVAL);
    TU_ASSERT_ERRMSG();
    print_message("  bad query: %s\n", evs_last_error());
    assert_null(it);
    rc = evs_dcb_append(NULL, NULL, db, NULL, &ev, 1, &c);
    if (rc != EVS_EINVAL)
        tu_report_rc("evs_dcb_append", rc, EVS_EINVAL, file, line);
    assert_int_equal(rc, EVS_EINVAL);
    TU_ASSERT_ERRMSG();
    assert_unchanged_(db, before, file, line);
    assert_usable(db);
}
#define EXPECT_BAD_QUERY(db, q) expect_bad_query_(db, q, __FILE__, __LINE__)

/* The request is rejected with code and a message, nothing written. */
static void expect_bad_request_(evs_db *db, const evs_append_request *req,
                                int code, const char *file, int line)
{
    snap before = take_snap(db);
    int rc = evs_append_ex(NULL, NULL, db, req);
    if (rc != code)
        tu_report_rc("evs_append_ex", rc, code, file, line);
    assert_int_equal(rc, code);
    TU_ASSERT_ERRMSG();
    print_message("  bad request: %s\n", evs_last_error());
    assert_unchanged_(db, before, file, line);
    assert_usable(db);
}
#define EXPECT_BAD_REQUEST(db, req, code)                                    \
    expect_bad_request_(db, req, code, __FILE__, __LINE__)

static void test_bad_empty_tag_in_query(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    build_fixture(db);
    EXPECT_BAD_QUERY(db, QUERY({TAGS("")}));
    EXPECT_BAD_QUERY(db, QUERY({TAGS("x:1", "")}));
    EXPECT_BAD_QUERY(db, QUERY({TYPES("A")}, {TAGS("")}));
    EXPECT_BAD_QUERY(db, QUERY({TYPES("")}));
    EXPECT_BAD_QUERY(db, QUERY({TAGS((const char *)NULL)}));
    EXPECT_BAD_QUERY(db, QUERY({TYPES((const char *)NULL)}));
}

static void test_bad_null_arrays_in_query(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_iter *it = NULL;
    evs_query q = QALL;
    build_fixture(db);
    EXPECT_BAD_QUERY(db, QUERY({.types = NULL, .ntypes = 1}));
    EXPECT_BAD_QUERY(db, QUERY({.tags = NULL, .ntags = 2}));
    EXPECT_BAD_QUERY(db, QUERY({TYPES("A")}, {.types = NULL, .ntypes = 3}));
    EXPECT_BAD_QUERY(db, ((evs_query){NULL, 1}));
    /* NULL query, unknown direction. */
    TU_CHECK(evs_read_query(&it, db, NULL, NULL, 0, FWD, 0), EVS_EINVAL);
    TU_ASSERT_ERRMSG();
    TU_CHECK(evs_read_query(&it, db, NULL, &q, 0, (evs_direction)7, 0),
             EVS_EINVAL);
    TU_ASSERT_ERRMSG();
    TU_CHECK(evs_read_query(NULL, db, NULL, &q, 0, FWD, 0), EVS_EINVAL);
    TU_CHECK(evs_read_query(&it, NULL, NULL, &q, 0, FWD, 0), EVS_EINVAL);
    assert_null(it);
}

static void test_bad_reserved_tags_on_append(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    static const char *const bad[] = {"$stream:s1", "$x", "$"};
    size_t i;
    build_fixture(db);
    for (i = 0; i < 3; i++) {
        evs_event_data ev = TEV("E", "{}", "ok:1", bad[i]);
        snap before = take_snap(db);
        TU_CHECK(evs_append(NULL, db, NULL, "s1", EVS_ANY, &ev, 1),
                 EVS_EINVAL);
        TU_ASSERT_ERRMSG();
        TU_CHECK(evs_dcb_append(NULL, NULL, db, NULL, &ev, 1, NULL),
                 EVS_EINVAL);
        TU_ASSERT_ERRMSG();
        ASSERT_UNCHANGED(db, before);
        assert_usable(db);
    }
    /* A tag field starting with '$' would derive a reserved tag. */
    {
        evs_event_data ev = TEV0("E", "{\"$stream\":\"s1\"}");
        evs_stream_append part = {NULL, EVS_ANY, &ev, 1};
        evs_append_request req = EVS_APPEND_REQUEST_INIT;
        req.parts = &part;
        req.nparts = 1;
        req.tag_fields = STRS("$stream");
        req.ntag_fields = 1;
        EXPECT_BAD_REQUEST(db, &req, EVS_EINVAL);
    }
    /* '$' inside a tag is fine. */
    put(db, NULL, NULL, TEV("E", "{}", "price:$5"));
    EXPECT_Q(db, NULL, QUERY({TAGS("price:$5")}), 0, FWD, 0, ANY_MARKER,
             PL(tu_head(db, NULL)));
}

static void test_bad_reserved_tags_in_query(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    build_fixture(db);
    EXPECT_BAD_QUERY(db, QUERY({TAGS("$x")}));
    EXPECT_BAD_QUERY(db, QUERY({TAGS("$")}));
    EXPECT_BAD_QUERY(db, QUERY({TAGS("$streams:s1")}));
    EXPECT_BAD_QUERY(db, QUERY({TAGS("$stream")}));
    EXPECT_BAD_QUERY(db, QUERY({TAGS("$STREAM:s1")}));
    EXPECT_BAD_QUERY(db, QUERY({TAGS("$type:A")}));
    EXPECT_BAD_QUERY(db, QUERY({TYPES("A"), TAGS("x:1", "$x")}));
}

static void test_bad_stream_tag_without_name(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    build_fixture(db);
    EXPECT_BAD_QUERY(db, QUERY({TAGS("$stream:")}));
    EXPECT_BAD_QUERY(db, QUERY({TAGS("$stream:s1")}, {TAGS("$stream:")}));
    /* a stream name over EVS_MAX_STREAM_LEN (257 bytes) names no stream */
    {
        char tag[sizeof(EVS_STREAM_TAG_PREFIX) + EVS_MAX_STREAM_LEN + 1];
        size_t pl = strlen(EVS_STREAM_TAG_PREFIX);
        memcpy(tag, EVS_STREAM_TAG_PREFIX, pl);
        memset(tag + pl, 'n', EVS_MAX_STREAM_LEN + 1);
        tag[pl + EVS_MAX_STREAM_LEN + 1] = '\0';
        EXPECT_BAD_QUERY(db, QUERY({.tags = STRS(tag), .ntags = 1}));
    }
}

static void test_bad_too_many_items(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_query_item *items =
        calloc(EVS_MAX_QUERY_ITEMS + 1, sizeof *items);
    const char *const *a = STRS("A");
    size_t i;
    assert_non_null(items);
    build_fixture(db);
    for (i = 0; i <= EVS_MAX_QUERY_ITEMS; i++) {
        items[i].types = a;
        items[i].ntypes = 1;
    }
    EXPECT_BAD_QUERY(db, ((evs_query){items, EVS_MAX_QUERY_ITEMS + 1}));
    /* Exactly the limit is fine. */
    EXPECT_Q(db, NULL, ((evs_query){items, EVS_MAX_QUERY_ITEMS}), 0, FWD, 0,
             ANY_MARKER, PL(1, 3, 7));
    free(items);
}

static void test_bad_too_many_terms(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    const char **names = calloc(EVS_MAX_QUERY_TERMS + 1, sizeof *names);
    char (*text)[16] = calloc(EVS_MAX_QUERY_TERMS + 1, sizeof *text);
    evs_query_item items[2];
    size_t i;
    assert_non_null(names);
    assert_non_null(text);
    build_fixture(db);
    for (i = 0; i <= EVS_MAX_QUERY_TERMS; i++) {
        snprintf(text[i], sizeof text[i], "T%zu", i);
        names[i] = text[i];
    }
    names[0] = "A";
    /* One item with 4097 types. */
    items[0] = (evs_query_item){names, EVS_MAX_QUERY_TERMS + 1, NULL, 0};
    EXPECT_BAD_QUERY(db, ((evs_query){items, 1}));
    /* Two items: 4000 types + 97 tags. */
    items[0] = (evs_query_item){names, 4000, NULL, 0};
    items[1] = (evs_query_item){NULL, 0, names + 4000, 97};
    EXPECT_BAD_QUERY(db, ((evs_query){items, 2}));
    /* 4096 in all is fine. */
    items[1].ntags = 96;
    EXPECT_Q(db, NULL, ((evs_query){items, 2}), 0, FWD, 0, ANY_MARKER,
             PL(1, 3, 7));
    items[0] = (evs_query_item){names, EVS_MAX_QUERY_TERMS, NULL, 0};
    EXPECT_Q(db, NULL, ((evs_query){items, 1}), 0, BWD, 0, ANY_MARKER,
             PL(7, 3, 1));
    free(names);
    free(text);
}

static void test_bad_non_utf8_in_query(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    build_fixture(db);
    EXPECT_BAD_QUERY(db, QUERY({TYPES("A\xff")}));
    EXPECT_BAD_QUERY(db, QUERY({TYPES("A", "\xc3")}));
    EXPECT_BAD_QUERY(db, QUERY({TAGS("x:\xc3(")}));
    EXPECT_BAD_QUERY(db, QUERY({TAGS("x:\xed\xa0\x80")})); /* surrogate */
    EXPECT_BAD_QUERY(db, QUERY({TAGS("$stream:\xfe")}));
    /* Valid UTF-8 is fine and matches. */
    put(db, NULL, NULL, TEV("Stadt", "{}", "city:Z\xc3\xbcrich"));
    EXPECT_Q(db, NULL, QUERY({TAGS("city:Z\xc3\xbcrich")}), 0, FWD, 0,
             ANY_MARKER, PL(tu_head(db, NULL)));
    EXPECT_Q(db, NULL, QUERY({TAGS("city:Zurich")}), 0, FWD, 0, ANY_MARKER,
             NONE);
}

static void test_bad_too_many_conditions(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_append_condition c[EVS_MAX_CONDITIONS + 1];
    uint64_t conf[EVS_MAX_CONDITIONS + 1];
    evs_event_data ev = TEV0("E", "{}");
    evs_stream_append part = {NULL, EVS_ANY, &ev, 1};
    evs_append_request req = EVS_APPEND_REQUEST_INIT;
    evs_query qa = QUERY({TYPES("A")});
    size_t i;

    build_fixture(db);
    for (i = 0; i <= EVS_MAX_CONDITIONS; i++) {
        c[i].fail_if_events_match = qa;
        c[i].after = 7;
    }
    req.parts = &part;
    req.nparts = 1;
    req.conditions = c;
    req.nconditions = EVS_MAX_CONDITIONS + 1;
    EXPECT_BAD_REQUEST(db, &req, EVS_EINVAL);
    /* NULL conditions with a count. */
    req.conditions = NULL;
    req.nconditions = 1;
    EXPECT_BAD_REQUEST(db, &req, EVS_EINVAL);
    /* A bad query in the last of many conditions. */
    req.conditions = c;
    req.nconditions = EVS_MAX_CONDITIONS;
    c[EVS_MAX_CONDITIONS - 1].fail_if_events_match = QUERY({TAGS("$x")});
    EXPECT_BAD_REQUEST(db, &req, EVS_EINVAL);
    /* 64 holding conditions: fine; one failing among them: reported. */
    c[EVS_MAX_CONDITIONS - 1].fail_if_events_match = qa;
    TU_OK(evs_append_ex(NULL, conf, db, &req));
    c[40].after = 2;
    TU_CHECK(evs_append_ex(NULL, conf, db, &req), EVS_ECONFLICT);
    for (i = 0; i < EVS_MAX_CONDITIONS; i++)
        assert_int_equal(conf[i], i == 40 ? 3 : 0);
}

static void test_bad_streamless_expected_version(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    static const int64_t bad[] = {EVS_NO_STREAM, EVS_STREAM_EXISTS, 0, 5};
    evs_event_data ev = TEV0("E", "{}");
    evs_stream_append parts[2] = {{"s9", EVS_ANY, &ev, 1},
                                  {NULL, EVS_ANY, &ev, 1}};
    evs_append_request req = EVS_APPEND_REQUEST_INIT;
    size_t i;
    build_fixture(db);
    req.parts = parts;
    req.nparts = 2;
    for (i = 0; i < sizeof bad / sizeof *bad; i++) {
        parts[1].expected_version = bad[i];
        EXPECT_BAD_REQUEST(db, &req, EVS_EINVAL);
    }
    assert_int_equal(tu_version(db, NULL, "s9"), EVS_NO_STREAM);
}

static void test_bad_two_streamless_parts(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_event_data ev[2] = {TEV0("E", "{}"), TEV0("F", "{}")};
    evs_stream_append parts[3] = {{NULL, EVS_ANY, ev, 1},
                                  {"s9", EVS_ANY, ev, 1},
                                  {NULL, EVS_ANY, ev + 1, 1}};
    evs_append_request req = EVS_APPEND_REQUEST_INIT;
    build_fixture(db);
    req.parts = parts;
    req.nparts = 3;
    EXPECT_BAD_REQUEST(db, &req, EVS_EINVAL);
    req.parts = parts + 1;
    req.nparts = 2;
    TU_OK(evs_append_ex(NULL, NULL, db, &req));
    /* evs_append_multi has no streamless parts. */
    {
        snap before = take_snap(db);
        TU_CHECK(evs_append_multi(NULL, db, NULL, parts, 2), EVS_EINVAL);
        TU_ASSERT_ERRMSG();
        ASSERT_UNCHANGED(db, before);
    }
}

static void test_bad_request_version_and_fields(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_event_data ev = TEV0("E", "{\"a\":1}");
    evs_stream_append part = {NULL, EVS_ANY, &ev, 1};
    evs_append_request req = EVS_APPEND_REQUEST_INIT;
    const char *fields[EVS_MAX_TAG_FIELDS + 1];
    size_t i;

    build_fixture(db);
    req.parts = &part;
    req.nparts = 1;
    req.version = 0;
    EXPECT_BAD_REQUEST(db, &req, EVS_EINVAL);
    req.version = EVS_APPEND_REQUEST_VERSION + 1;
    EXPECT_BAD_REQUEST(db, &req, EVS_EINVAL);
    req.version = EVS_APPEND_REQUEST_VERSION;
    /* Tag fields: too many, NULL array, empty name. */
    for (i = 0; i <= EVS_MAX_TAG_FIELDS; i++)
        fields[i] = "a";
    req.tag_fields = fields;
    req.ntag_fields = EVS_MAX_TAG_FIELDS + 1;
    EXPECT_BAD_REQUEST(db, &req, EVS_EINVAL);
    req.tag_fields = NULL;
    req.ntag_fields = 1;
    EXPECT_BAD_REQUEST(db, &req, EVS_EINVAL);
    req.tag_fields = STRS("");
    EXPECT_BAD_REQUEST(db, &req, EVS_EINVAL);
    /* No parts. */
    req.tag_fields = NULL;
    req.ntag_fields = 0;
    req.nparts = 0;
    EXPECT_BAD_REQUEST(db, &req, EVS_EINVAL);
    /* NULL request, NULL db. */
    TU_CHECK(evs_append_ex(NULL, NULL, db, NULL), EVS_EINVAL);
    TU_ASSERT_ERRMSG();
    req.nparts = 1;
    TU_CHECK(evs_append_ex(NULL, NULL, NULL, &req), EVS_EINVAL);
    /* A streamless event with no events. */
    TU_CHECK(evs_dcb_append(NULL, NULL, db, NULL, &ev, 0, NULL), EVS_EINVAL);
    TU_ASSERT_ERRMSG();
    TU_OK(evs_append_ex(NULL, NULL, db, &req));
}

static void test_bad_duplicate_tags(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_event_data ev[2] = {TEV("E", "{}", "a:1"),
                            TEV("E", "{}", "a:1", "b:1", "a:1")};
    evs_stream_append part = {NULL, EVS_ANY, ev, 2};
    evs_append_request req = EVS_APPEND_REQUEST_INIT;
    snap before;
    build_fixture(db);
    before = take_snap(db);
    TU_CHECK(evs_append(NULL, db, NULL, "s1", EVS_ANY, ev, 2), EVS_EINVAL);
    TU_ASSERT_ERRMSG();
    TU_CHECK(evs_dcb_append(NULL, NULL, db, NULL, ev, 2, NULL), EVS_EINVAL);
    TU_ASSERT_ERRMSG();
    ASSERT_UNCHANGED(db, before);
    req.parts = &part;
    req.nparts = 1;
    EXPECT_BAD_REQUEST(db, &req, EVS_EINVAL);
    /* The same tag on two events is fine. */
    ev[1] = TEV("E", "{}", "a:1", "b:1");
    TU_OK(evs_dcb_append(NULL, NULL, db, NULL, ev, 2, NULL));
    EXPECT_Q(db, NULL, QUERY({TAGS("a:1")}), 0, BWD, 2, ANY_MARKER,
             PL(tu_head(db, NULL), tu_head(db, NULL) - 1));
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, tu_setup_store, \
                                              tu_teardown_store)
    const struct CMUnitTest tests[] = {
        T(test_bad_empty_tag_in_query),
        T(test_bad_null_arrays_in_query),
        T(test_bad_reserved_tags_on_append),
        T(test_bad_reserved_tags_in_query),
        T(test_bad_stream_tag_without_name),
        T(test_bad_too_many_items),
        T(test_bad_too_many_terms),
        T(test_bad_non_utf8_in_query),
        T(test_bad_too_many_conditions),
        T(test_bad_streamless_expected_version),
        T(test_bad_two_streamless_parts),
        T(test_bad_request_version_and_fields),
        T(test_bad_duplicate_tags),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
