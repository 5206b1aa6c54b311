/*
 * test_dcb_derived_tags.c -- payload-derived tags
 * (evs_append_request.tag_fields): the values of strings, numbers and
 * booleans, duplicates of explicit tags, data that is not a JSON object,
 * the tag length and count limits (nothing written beyond them), and
 * derived tags found by queries and conditions.
 */
#include "fixture_dcb.h"

#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Payload-derived tags                                                */
/* ------------------------------------------------------------------ */

/* Append one event with tag_fields (stream NULL: streamless); returns rc,
 * *pos the position. */
static int append_fields(evs_db *db, const char *stream, evs_event_data ev,
                         const char *const *fields, size_t nfields,
                         uint64_t *pos)
{
    evs_stream_append part = {stream, EVS_ANY, &ev, 1};
    evs_append_request req = EVS_APPEND_REQUEST_INIT;
    evs_append_result r;
    int rc;
    req.parts = &part;
    req.nparts = 1;
    req.tag_fields = fields;
    req.ntag_fields = nfields;
    memset(&r, 0, sizeof r);
    rc = evs_append_ex(&r, NULL, db, &req);
    if (pos != NULL)
        *pos = r.first_position;
    return rc;
}

/* The stored event at position p (asserts it exists). */
static tu_events event_at(evs_db *db, uint64_t p)
{
    tu_events e = {0};
    TU_OK(tu_read_all(&e, db, NULL, p, 1));
    assert_int_equal(e.n, 1);
    assert_int_equal(e.v[0].position, p);
    return e;
}

static const char *const all_fields[] = {"user", "n",   "ok",     "no",
                                         "nil",  "obj", "arr",    "absent",
                                         "f",    "esc", "nested"};
#define NFIELDS (sizeof all_fields / sizeof *all_fields)

static void test_tag_fields_values(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    uint64_t p;
    tu_events e;

    TU_OK(append_fields(
        db, NULL,
        TEV("Made",
            "{\"user\":\"alice\",\"n\":42,\"ok\":true,\"no\":false,"
            "\"nil\":null,\"obj\":{\"user\":\"bob\"},\"arr\":[1,2],"
            "\"f\":-3.5e2,\"esc\":\"a\\\"b\\u00e9\",\"other\":\"x\"}",
            "k:1"),
        all_fields, NFIELDS, &p));
    e = event_at(db, p);
    tu_assert_tags(&e.v[0],
                   STRS("k:1", "user:alice", "n:42", "ok:true", "no:false",
                        "f:-3.5e2", "esc:a\"b\xc3\xa9"),
                   7);
    /* The data is stored as given. */
    assert_non_null(strstr(e.v[0].data, "\"nil\":null"));
    tu_events_free(&e);

    /* Whitespace around values is not part of them; a stream part gets
     * derived tags too. */
    TU_OK(append_fields(db, "users",
                        TEV0("Made", " { \"n\" : 7 ,\n\"user\" : \"bob\" } "),
                        all_fields, NFIELDS, &p));
    e = event_at(db, p);
    tu_assert_tags(&e.v[0], STRS("n:7", "user:bob"), 2);
    assert_string_equal(e.v[0].stream, "users");
    tu_events_free(&e);

    /* Only the named fields: without tag_fields, no derived tags. */
    TU_OK(append_fields(db, NULL, TEV0("Made", "{\"user\":\"carol\"}"), NULL,
                        0, &p));
    e = event_at(db, p);
    assert_int_equal(e.v[0].ntags, 0);
    tu_events_free(&e);
    TU_OK(append_fields(db, NULL, TEV0("Made", "{\"user\":\"carol\",\"n\":1}"),
                        STRS("n"), 1, &p));
    e = event_at(db, p);
    tu_assert_tags(&e.v[0], STRS("n:1"), 1);
    tu_events_free(&e);

    /* An empty string gives "NAME:" */
    TU_OK(append_fields(db, NULL, TEV0("Made", "{\"user\":\"\"}"), STRS("user"),
                        1, &p));
    e = event_at(db, p);
    tu_assert_tags(&e.v[0], STRS("user:"), 1);
    tu_events_free(&e);
}

static void test_tag_fields_duplicates_and_non_objects(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    static const char *const nonobj[] = {
        "[{\"user\":\"x\"}]", "\"user\"", "12", "true", "null", ""};
    uint64_t p;
    size_t i;
    tu_events e;

    /* A derived tag equal to an explicit one is kept once. */
    TU_OK(append_fields(db, NULL,
                        TEV("Made", "{\"user\":\"alice\",\"n\":1}",
                            "user:alice", "k:1"),
                        STRS("user", "n"), 2, &p));
    e = event_at(db, p);
    tu_assert_tags(&e.v[0], STRS("user:alice", "k:1", "n:1"), 3);
    tu_events_free(&e);
    /* The same field named twice gives one tag. */
    TU_OK(append_fields(db, NULL, TEV0("Made", "{\"user\":\"dup\"}"),
                        STRS("user", "user"), 2, &p));
    e = event_at(db, p);
    tu_assert_tags(&e.v[0], STRS("user:dup"), 1);
    tu_events_free(&e);

    /* Data that is not an object: no derived tags. */
    for (i = 0; i < sizeof nonobj / sizeof *nonobj; i++) {
        TU_OK(append_fields(db, NULL, TEV("Made", nonobj[i], "k:2"),
                            all_fields, NFIELDS, &p));
        e = event_at(db, p);
        tu_assert_tags(&e.v[0], STRS("k:2"), 1);
        tu_events_free(&e);
    }
    /* Binary data that looks like an object: not JSON, no tags. */
    {
        static const char bin[] = "{\"user\":\"x\"}";
        evs_event_data ev = tu_event_bin("Bin", bin, sizeof bin - 1);
        TU_OK(append_fields(db, NULL, ev, all_fields, NFIELDS, &p));
        e = event_at(db, p);
        assert_int_equal(e.v[0].ntags, 0);
        tu_events_free(&e);
    }
    /* 63 explicit + 1 derived = 64: fine; 64 explicit + a derived
     * duplicate of one of them: fine (kept once). */
    {
        char names[EVS_MAX_TAGS][16];
        const char *tags[EVS_MAX_TAGS];
        for (i = 0; i < EVS_MAX_TAGS; i++) {
            snprintf(names[i], sizeof names[i], "many:%zu", i);
            tags[i] = names[i];
        }
        TU_OK(append_fields(db, NULL,
                            tev_("Made", "{\"user\":\"m\"}", tags,
                                 EVS_MAX_TAGS - 1),
                            STRS("user"), 1, &p));
        e = event_at(db, p);
        assert_int_equal(e.v[0].ntags, EVS_MAX_TAGS);
        assert_true(has_tag(&e.v[0], "user:m"));
        tu_events_free(&e);
        TU_OK(append_fields(db, NULL,
                            tev_("Made", "{\"many\":3}", tags, EVS_MAX_TAGS),
                            STRS("many"), 1, &p));
        e = event_at(db, p);
        assert_int_equal(e.v[0].ntags, EVS_MAX_TAGS);
        tu_events_free(&e);
        /* 64 explicit + 1 new derived: too many, nothing written. */
        {
            snap before = take_snap(db);
            TU_CHECK(append_fields(db, NULL,
                                   tev_("Made", "{\"user\":\"m\"}", tags,
                                        EVS_MAX_TAGS),
                                   STRS("user"), 1, &p),
                     EVS_EINVAL);
            TU_ASSERT_ERRMSG();
            ASSERT_UNCHANGED(db, before);
        }
    }
}

static void test_tag_fields_too_long(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    char json[600], val[300];
    uint64_t p;
    tu_events e;
    snap before;

    /* "user:" + 251 bytes = 256: the limit, allowed. */
    memset(val, 'v', 251);
    val[251] = '\0';
    snprintf(json, sizeof json, "{\"user\":\"%s\"}", val);
    TU_OK(append_fields(db, NULL, TEV0("Long", json), STRS("user"), 1, &p));
    e = event_at(db, p);
    assert_int_equal(e.v[0].ntags, 1);
    assert_int_equal(strlen(e.v[0].tags[0]), EVS_MAX_TAG_LEN);
    tu_events_free(&e);

    /* 257 bytes: EVS_EINVAL, nothing written, also for the other events
     * and parts of the append. */
    memset(val, 'v', 252);
    val[252] = '\0';
    snprintf(json, sizeof json, "{\"user\":\"%s\"}", val);
    before = take_snap(db);
    TU_CHECK(append_fields(db, NULL, TEV0("Long", json), STRS("user"), 1, &p),
             EVS_EINVAL);
    TU_ASSERT_ERRMSG();
    ASSERT_UNCHANGED(db, before);
    {
        evs_event_data ev[2] = {TEV0("Short", "{\"user\":\"ok\"}"),
                                TEV0("Long", json)};
        evs_event_data ok = TEV0("Fine", "{}");
        evs_stream_append parts[2] = {{"long-s", EVS_ANY, &ok, 1},
                                      {NULL, EVS_ANY, ev, 2}};
        evs_append_request req = EVS_APPEND_REQUEST_INIT;
        req.parts = parts;
        req.nparts = 2;
        req.tag_fields = STRS("user");
        req.ntag_fields = 1;
        TU_CHECK(evs_append_ex(NULL, NULL, db, &req), EVS_EINVAL);
        TU_ASSERT_ERRMSG();
        ASSERT_UNCHANGED(db, before);
        assert_int_equal(tu_version(db, NULL, "long-s"), EVS_NO_STREAM);
    }
    /* A long number too ("1." and 258 digits). */
    memset(val, '7', 260);
    val[0] = '1';
    val[1] = '.';
    val[260] = '\0';
    snprintf(json, sizeof json, "{\"n\":%s}", val);
    TU_CHECK(append_fields(db, NULL, TEV0("Long", json), STRS("n"), 1, &p),
             EVS_EINVAL);
    ASSERT_UNCHANGED(db, before);
    /* Without the field in tag_fields the same event is fine. */
    TU_OK(append_fields(db, NULL, TEV0("Long", json), STRS("user"), 1, &p));
    assert_usable(db);
}

static void test_tag_fields_found_by_queries(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    static const char *const users[] = {"alice", "bob", "alice", "carol",
                                        "bob", "alice"};
    const char *const fields[] = {"user", "n"};
    uint64_t p, pos[6];
    size_t i;

    for (i = 0; i < 6; i++) {
        char json[64];
        snprintf(json, sizeof json, "{\"user\":\"%s\",\"n\":%zu}", users[i],
                 i % 2);
        TU_OK(append_fields(db, i % 3 == 0 ? "st" : NULL,
                            TEV0(i % 2 ? "Odd" : "Even", json), fields, 2,
                            &pos[i]));
        put(db, NULL, NULL, TEV0("Noise", json)); /* no tag_fields */
    }
    EXPECT_Q(db, NULL, QUERY({TAGS("user:alice")}), 0, FWD, 0, 12,
             PL(pos[0], pos[2], pos[5]));
    EXPECT_Q(db, NULL, QUERY({TAGS("user:bob", "n:1")}), 0, FWD, 0, 12,
             PL(pos[1]));
    EXPECT_Q(db, NULL, QUERY({TAGS("user:bob")}), 0, FWD, 0, 12,
             PL(pos[1], pos[4]));
    EXPECT_Q(db, NULL, QUERY({TYPES("Even"), TAGS("n:0")}), 0, BWD, 0, 12,
             PL(pos[4], pos[2], pos[0]));
    EXPECT_Q(db, NULL, QUERY({TAGS("user:carol")}, {TAGS("$stream:st")}), 0,
             FWD, 0, 12, PL(pos[0], pos[3]));
    /* Conditions see derived tags: a second "alice" decided on a stale
     * marker conflicts with the newest alice. */
    {
        evs_append_condition c = {QUERY({TAGS("user:alice")}), pos[2]};
        evs_stream_append part;
        evs_event_data ev = TEV0("Even", "{\"user\":\"alice\"}");
        evs_append_request req = EVS_APPEND_REQUEST_INIT;
        uint64_t conf = 0;
        part = (evs_stream_append){NULL, EVS_ANY, &ev, 1};
        req.parts = &part;
        req.nparts = 1;
        req.conditions = &c;
        req.nconditions = 1;
        req.tag_fields = fields;
        req.ntag_fields = 1;
        TU_CHECK(evs_append_ex(NULL, &conf, db, &req), EVS_ECONFLICT);
        assert_int_equal(conf, pos[5]);
        c.after = tu_head(db, NULL);
        TU_OK(evs_append_ex(NULL, &conf, db, &req));
        p = tu_head(db, NULL);
        EXPECT_Q(db, NULL, QUERY({TAGS("user:alice")}), 0, BWD, 1, p, PL(p));
    }
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, tu_setup_store, \
                                              tu_teardown_store)
    const struct CMUnitTest tests[] = {
        T(test_tag_fields_values),
        T(test_tag_fields_duplicates_and_non_objects),
        T(test_tag_fields_too_long),
        T(test_tag_fields_found_by_queries),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
