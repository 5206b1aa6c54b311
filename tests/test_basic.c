/*
 * test_basic.c -- the append/read round trip, numbering, tenants, stats,
 * reopen and multi-segment logs.
 */
#include "testutil.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ------------------------------------------------------------------ */
/* Library basics: version, errors, uuids                             */
/* ------------------------------------------------------------------ */

static void test_version_and_strerror(void **state)
{
    (void)state;
    assert_string_equal(evs_version(), EVS_VERSION_STRING);
#define CHECK_MSG(name, val, msg)                                            \
    assert_non_null(evs_strerror(val));                                      \
    assert_string_equal(evs_strerror(val), msg);
    EVS_ERRNO_MAP(CHECK_MSG)
#undef CHECK_MSG
    assert_string_equal(evs_strerror(-12345), "unknown error");
    assert_string_equal(evs_strerror(12345), "unknown error");
}

static void *last_error_thread(void *arg)
{
    const char *m = evs_last_error();
    *(int *)arg = m != NULL && m[0] == '\0';
    return NULL;
}

static void test_last_error_empty_in_new_thread(void **state)
{
    pthread_t th;
    int ok = 0;
    (void)state;
    assert_int_equal(pthread_create(&th, NULL, last_error_thread, &ok), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(ok, 1);
}

static void test_uuid(void **state)
{
    evs_uuid a, b, nil, parsed;
    char text[37];
    int64_t before_ms, after_ms, ts_ms = 0;
    int i;
    (void)state;

    memset(&nil, 0, sizeof nil);
    assert_int_equal(evs_uuid_is_nil(&nil), 1);

    before_ms = tu_now_us() / 1000;
    evs_uuid_generate(&a);
    after_ms = tu_now_us() / 1000;
    evs_uuid_generate(&b);
    assert_int_equal(evs_uuid_is_nil(&a), 0);
    assert_false(tu_uuid_eq(&a, &b));
    /* RFC 9562 version 7: version nibble 7, variant 10, 48-bit ms clock. */
    assert_int_equal(a.bytes[6] >> 4, 7);
    assert_int_equal(a.bytes[8] & 0xc0, 0x80);
    for (i = 0; i < 6; i++)
        ts_ms = (ts_ms << 8) | a.bytes[i];
    /* A clock reading, not a timing verdict: a second of slack for a
     * coarser clock in the library. */
    assert_in_range(ts_ms, before_ms - 1000, after_ms + 1000);

    evs_uuid_format(text, &a);
    assert_int_equal(strlen(text), 36);
    for (i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            assert_int_equal(text[i], '-');
        else
            assert_true((text[i] >= '0' && text[i] <= '9') ||
                        (text[i] >= 'a' && text[i] <= 'f'));
    }
    TU_OK(evs_uuid_parse(&parsed, text));
    tu_assert_uuid_equal(&parsed, &a);

    TU_OK(evs_uuid_parse(&parsed, "00112233-4455-6677-8899-aabbccddeeff"));
    for (i = 0; i < 16; i++)
        assert_int_equal(parsed.bytes[i], (i << 4) | i);

    TU_CHECK(evs_uuid_parse(&parsed, ""), EVS_EINVAL);
    TU_CHECK(evs_uuid_parse(&parsed, "not-a-uuid"), EVS_EINVAL);
    TU_CHECK(evs_uuid_parse(&parsed, "00112233-4455-6677-8899-aabbccddeef"),
             EVS_EINVAL);
    TU_CHECK(evs_uuid_parse(&parsed, "00112233-4455-6677-8899-aabbccddeeff0"),
             EVS_EINVAL);
    TU_CHECK(evs_uuid_parse(&parsed, "0011223g-4455-6677-8899-aabbccddeeff"),
             EVS_EINVAL);
    TU_CHECK(evs_uuid_parse(&parsed, "00112233+4455-6677-8899-aabbccddeeff"),
             EVS_EINVAL);
}

/* ------------------------------------------------------------------ */
/* Round trip of every field                                           */
/* ------------------------------------------------------------------ */

static void test_roundtrip_fields(void **state)
{
    tu_store *s = *state;
    static const char json[] = "{\"amount\": 42, \"currency\": \"EUR\", "
                               "\"note\": \"caf\xc3\xa9\"}";
    static const char meta[] = "{\"user\":\"alice\",\"ip\":\"10.0.0.1\"}";
    static const unsigned char bin[] = {0x00, 0x01, 0xff, 0x00, 0x7f, 0x80};
    const char *tags[] = {"account:42", "region:eu", "vip"};
    evs_event_data ev[3];
    evs_append_result r;
    tu_events got = {0}, all = {0};
    int64_t before, after;
    size_t i, pass;

    memset(&r, 0xab, sizeof r);
    ev[0] = tu_event("AccountOpened", json);
    TU_OK(evs_uuid_parse(&ev[0].id, "018f2a4e-1111-7abc-8def-0123456789ab"));
    ev[0].metadata = meta;
    ev[0].metadata_len = strlen(meta);
    ev[0].tags = tags;
    ev[0].ntags = 3;
    TU_OK(evs_uuid_parse(&ev[0].correlation_id,
                         "018f2a4e-2222-7abc-8def-0123456789ab"));
    TU_OK(evs_uuid_parse(&ev[0].causation_id,
                         "018f2a4e-3333-7abc-8def-0123456789ab"));
    ev[0].recorded_at = INT64_C(1700000000123456);

    ev[1] = tu_event_bin("BlobStored", bin, sizeof bin); /* nil id, now */
    ev[2] = tu_event_bin("Empty", NULL, 0);

    before = tu_now_us();
    TU_OK(evs_append(&r, s->db, NULL, "account-42", EVS_NO_STREAM, ev, 3));
    after = tu_now_us();
    assert_int_equal(r.status, 0);
    assert_int_equal(r.first_version, 0);
    assert_int_equal(r.stream_version, 2);
    assert_int_equal(r.first_position, 1);
    assert_int_equal(r.last_position, 3);

    TU_OK(tu_read_stream(&got, s->db, NULL, "account-42", 0, EVS_FORWARD, 0));
    TU_OK(tu_read_all(&all, s->db, NULL, 0, 0));
    /* The same checks on the stream read and on the $all read. */
    for (pass = 0; pass < 2; pass++) {
        tu_events *e = pass == 0 ? &got : &all;
        assert_int_equal(e->n, 3);
        for (i = 0; i < 3; i++) {
            assert_int_equal(e->v[i].position, i + 1);
            assert_int_equal(e->v[i].stream_version, (int64_t)i);
            assert_non_null(e->v[i].tenant);
            assert_string_equal(e->v[i].tenant, "");
            assert_string_equal(e->v[i].stream, "account-42");
            assert_string_equal(e->v[i].type, ev[i].type);
            assert_int_equal(e->v[i].content_type, ev[i].content_type);
            assert_int_equal(e->v[i].data_len, ev[i].data_len);
            if (ev[i].data_len > 0)
                assert_memory_equal(e->v[i].data, ev[i].data,
                                    ev[i].data_len);
            /* Documented: data and metadata are followed by a NUL. */
            assert_true(e->v[i].data_nul_ok);
            assert_true(e->v[i].metadata_nul_ok);
        }
        /* Event 0: everything given. */
        tu_assert_uuid_equal(&e->v[0].id, &ev[0].id);
        tu_assert_uuid_equal(&e->v[0].correlation_id, &ev[0].correlation_id);
        tu_assert_uuid_equal(&e->v[0].causation_id, &ev[0].causation_id);
        assert_int_equal(e->v[0].recorded_at, INT64_C(1700000000123456));
        assert_int_equal(e->v[0].metadata_len, strlen(meta));
        assert_string_equal(e->v[0].metadata, meta);
        tu_assert_tags(&e->v[0], tags, 3);
        assert_string_equal(e->v[0].data, json);

        /* Events 1 and 2: generated ids, recorded now, no extras. */
        for (i = 1; i < 3; i++) {
            assert_int_equal(evs_uuid_is_nil(&e->v[i].id), 0);
            assert_int_equal(e->v[i].id.bytes[6] >> 4, 7);
            assert_int_equal(evs_uuid_is_nil(&e->v[i].correlation_id), 1);
            assert_int_equal(evs_uuid_is_nil(&e->v[i].causation_id), 1);
            /* A clock reading range, not a timing verdict: the store's
             * clock may be coarser than ours, hence a second of slack. */
            assert_in_range(e->v[i].recorded_at, before - 1000000,
                            after + 1000000);
            assert_int_equal(e->v[i].metadata_len, 0);
            assert_string_equal(e->v[i].metadata, "");
            assert_int_equal(e->v[i].ntags, 0);
        }
        assert_false(tu_uuid_eq(&e->v[1].id, &e->v[2].id));
    }
    /* The generated ids are stable: both reads saw the same. */
    tu_assert_uuid_equal(&got.v[1].id, &all.v[1].id);
    tu_assert_uuid_equal(&got.v[2].id, &all.v[2].id);

    /* And they survive a reopen unchanged. */
    tu_store_reopen(s);
    tu_events_clear(&got);
    TU_OK(tu_read_stream(&got, s->db, "", "account-42", 0, EVS_FORWARD, 0));
    assert_int_equal(got.n, 3);
    tu_assert_uuid_equal(&got.v[1].id, &all.v[1].id);
    assert_int_equal(got.v[1].recorded_at, all.v[1].recorded_at);
    assert_memory_equal(got.v[1].data, bin, sizeof bin);
    assert_string_equal(got.v[0].metadata, meta);
    tu_assert_tags(&got.v[0], tags, 3);

    tu_events_free(&got);
    tu_events_free(&all);
}

/* ------------------------------------------------------------------ */
/* Numbering                                                           */
/* ------------------------------------------------------------------ */

static void test_versions_and_positions(void **state)
{
    tu_store *s = *state;
    /* Appends of 1..4 events to three streams, interleaved. */
    static const char *streams[] = {"order-1", "order-2", "order-3"};
    int64_t next_version[3] = {0, 0, 0};
    uint64_t next_pos = 1;
    tu_events all = {0};
    char buf[64];
    size_t i, k;

    for (i = 0; i < 24; i++) {
        size_t si = (i * 7) % 3, n = 1 + i % 4;
        evs_event_data ev[4];
        evs_append_result r;
        char data[4][32];
        for (k = 0; k < n; k++) {
            snprintf(data[k], sizeof data[k], "{\"i\":%zu,\"k\":%zu}", i, k);
            ev[k] = tu_event("Step", data[k]);
        }
        TU_OK(evs_append(&r, s->db, NULL, streams[si], EVS_ANY, ev, n));
        assert_int_equal(r.status, 0);
        assert_int_equal(r.first_version, next_version[si]);
        assert_int_equal(r.stream_version, next_version[si] + (int64_t)n - 1);
        assert_int_equal(r.first_position, next_pos);
        assert_int_equal(r.last_position, next_pos + n - 1);
        next_version[si] += (int64_t)n;
        next_pos += n;
        assert_int_equal(tu_head(s->db, NULL), next_pos - 1);
        assert_int_equal(tu_version(s->db, NULL, streams[si]),
                         next_version[si] - 1);
    }

    TU_OK(tu_read_all(&all, s->db, NULL, 0, 0));
    assert_int_equal(all.n, next_pos - 1);
    for (i = 0; i < all.n; i++)
        assert_int_equal(all.v[i].position, i + 1);
    tu_events_clear(&all);

    /* Each stream: versions 0.. contiguous, positions increasing. */
    for (k = 0; k < 3; k++) {
        TU_OK(tu_read_stream(&all, s->db, NULL, streams[k], 0, EVS_FORWARD,
                             0));
        assert_int_equal(all.n, next_version[k]);
        for (i = 0; i < all.n; i++) {
            assert_int_equal(all.v[i].stream_version, (int64_t)i);
            if (i > 0)
                assert_true(all.v[i].position > all.v[i - 1].position);
            snprintf(buf, sizeof buf, "%s", all.v[i].stream);
            assert_string_equal(buf, streams[k]);
        }
        tu_events_clear(&all);
    }
    tu_events_free(&all);
}

/* ------------------------------------------------------------------ */
/* Reading a stream                                                    */
/* ------------------------------------------------------------------ */

/* Assert e holds versions first, first+step, ... (n of them) of a stream
 * whose event v carries data {"v":v}. */
static void expect_versions(const tu_events *e, int64_t first, int step,
                            size_t n)
{
    size_t i;
    char want[32];
    assert_int_equal(e->n, n);
    for (i = 0; i < n; i++) {
        int64_t v = first + step * (int64_t)i;
        assert_int_equal(e->v[i].stream_version, v);
        snprintf(want, sizeof want, "{\"v\":%" PRId64 "}", v);
        assert_string_equal(e->v[i].data, want);
    }
}

static void test_read_stream(void **state)
{
    tu_store *s = *state;
    tu_events e = {0};
    char data[32];
    int i;

    for (i = 0; i < 10; i++) {
        snprintf(data, sizeof data, "{\"v\":%d}", i);
        tu_append1(s->db, NULL, "cart-9", "ItemAdded", data);
        /* Noise in another stream, so positions and versions differ. */
        tu_append1(s->db, NULL, "cart-8", "ItemAdded", "{}");
    }

    TU_OK(tu_read_stream(&e, s->db, NULL, "cart-9", 0, EVS_FORWARD, 0));
    expect_versions(&e, 0, 1, 10);
    for (i = 0; i < 10; i++)
        assert_int_equal(e.v[i].position, 2 * (uint64_t)i + 1);
    tu_events_clear(&e);

    TU_OK(tu_read_stream(&e, s->db, NULL, "cart-9", 4, EVS_FORWARD, 0));
    expect_versions(&e, 4, 1, 6);
    tu_events_clear(&e);
    TU_OK(tu_read_stream(&e, s->db, NULL, "cart-9", 9, EVS_FORWARD, 0));
    expect_versions(&e, 9, 1, 1);
    tu_events_clear(&e);
    TU_OK(tu_read_stream(&e, s->db, NULL, "cart-9", 10, EVS_FORWARD, 0));
    expect_versions(&e, 10, 1, 0);
    tu_events_clear(&e);
    TU_OK(tu_read_stream(&e, s->db, NULL, "cart-9", 2, EVS_FORWARD, 3));
    expect_versions(&e, 2, 1, 3);
    tu_events_clear(&e);
    TU_OK(tu_read_stream(&e, s->db, NULL, "cart-9", 8, EVS_FORWARD, 5));
    expect_versions(&e, 8, 1, 2);
    tu_events_clear(&e);

    TU_OK(tu_read_stream(&e, s->db, NULL, "cart-9", EVS_END, EVS_BACKWARD,
                         0));
    expect_versions(&e, 9, -1, 10);
    tu_events_clear(&e);
    TU_OK(tu_read_stream(&e, s->db, NULL, "cart-9", 5, EVS_BACKWARD, 0));
    expect_versions(&e, 5, -1, 6);
    tu_events_clear(&e);
    TU_OK(tu_read_stream(&e, s->db, NULL, "cart-9", 5, EVS_BACKWARD, 2));
    expect_versions(&e, 5, -1, 2);
    tu_events_clear(&e);
    TU_OK(tu_read_stream(&e, s->db, NULL, "cart-9", EVS_END, EVS_BACKWARD,
                         3));
    expect_versions(&e, 9, -1, 3);
    tu_events_clear(&e);
    TU_OK(tu_read_stream(&e, s->db, NULL, "cart-9", 0, EVS_BACKWARD, 0));
    expect_versions(&e, 0, -1, 1);
    tu_events_clear(&e);
    /* Backward from past the end starts at the newest event. */
    TU_OK(tu_read_stream(&e, s->db, NULL, "cart-9", 100, EVS_BACKWARD, 0));
    expect_versions(&e, 9, -1, 10);
    tu_events_clear(&e);

    /* An absent stream yields nothing, in both directions. */
    TU_OK(tu_read_stream(&e, s->db, NULL, "cart-nope", 0, EVS_FORWARD, 0));
    assert_int_equal(e.n, 0);
    TU_OK(tu_read_stream(&e, s->db, NULL, "cart-nope", EVS_END,
                         EVS_BACKWARD, 0));
    assert_int_equal(e.n, 0);
    tu_events_free(&e);
}

static void test_stream_version(void **state)
{
    tu_store *s = *state;
    int64_t v = 12345;

    TU_OK(evs_stream_version(&v, s->db, NULL, "inv-1"));
    assert_int_equal(v, EVS_NO_STREAM);
    tu_append1(s->db, NULL, "inv-1", "Created", "{}");
    assert_int_equal(tu_version(s->db, NULL, "inv-1"), 0);
    tu_append1(s->db, NULL, "inv-1", "Changed", "{}");
    tu_append1(s->db, NULL, "inv-1", "Changed", "{}");
    assert_int_equal(tu_version(s->db, NULL, "inv-1"), 2);
    assert_int_equal(tu_version(s->db, "", "inv-1"), 2);
    assert_int_equal(tu_version(s->db, "other", "inv-1"), EVS_NO_STREAM);
    assert_int_equal(tu_version(s->db, NULL, "inv-2"), EVS_NO_STREAM);
}

/* ------------------------------------------------------------------ */
/* $all, head, tenants                                                 */
/* ------------------------------------------------------------------ */

/* Positions 1..8: tenant, stream of each. */
static const char *const tn_tenant[] = {"", "acme", "globex", "acme",
                                        "", "acme", "globex", "acme"};
static const char *const tn_stream[] = {"s-1", "s-1", "s-1", "s-2",
                                        "s-1", "s-1", "s-2", "s-1"};
#define TN_N 8

static void fill_tenants(tu_store *s)
{
    char data[32];
    size_t i;
    for (i = 0; i < TN_N; i++) {
        snprintf(data, sizeof data, "{\"p\":%zu}", i + 1);
        /* The default tenant is given as NULL once and as "" once. */
        assert_int_equal(tu_append1(s->db, i == 0 ? NULL : tn_tenant[i],
                                    tn_stream[i], "T", data),
                         i + 1);
    }
}

/* Assert e holds exactly the positions want[0..n) with tenant/stream per
 * the table, and data {"p":position}. */
static void expect_positions(const tu_events *e, const uint64_t *want,
                             size_t n)
{
    size_t i;
    char data[32];
    assert_int_equal(e->n, n);
    for (i = 0; i < n; i++) {
        assert_int_equal(e->v[i].position, want[i]);
        assert_string_equal(e->v[i].tenant, tn_tenant[want[i] - 1]);
        assert_string_equal(e->v[i].stream, tn_stream[want[i] - 1]);
        snprintf(data, sizeof data, "{\"p\":%" PRIu64 "}", want[i]);
        assert_string_equal(e->v[i].data, data);
    }
}

static void test_read_all_and_tenants(void **state)
{
    tu_store *s = *state;
    tu_events e = {0};
    static const uint64_t all[] = {1, 2, 3, 4, 5, 6, 7, 8};
    static const uint64_t acme[] = {2, 4, 6, 8};
    static const uint64_t globex[] = {3, 7};
    static const uint64_t dflt[] = {1, 5};

    fill_tenants(s);

    TU_OK(tu_read_all(&e, s->db, NULL, 0, 0));
    expect_positions(&e, all, 8);
    tu_events_clear(&e);
    TU_OK(tu_read_all(&e, s->db, NULL, 1, 0));
    expect_positions(&e, all, 8);
    tu_events_clear(&e);
    TU_OK(tu_read_all(&e, s->db, NULL, 3, 0));
    expect_positions(&e, all + 2, 6);
    tu_events_clear(&e);
    TU_OK(tu_read_all(&e, s->db, NULL, 3, 4));
    expect_positions(&e, all + 2, 4);
    tu_events_clear(&e);
    TU_OK(tu_read_all(&e, s->db, NULL, 0, 2));
    expect_positions(&e, all, 2);
    tu_events_clear(&e);
    TU_OK(tu_read_all(&e, s->db, NULL, 9, 0));
    assert_int_equal(e.n, 0);

    TU_OK(tu_read_all(&e, s->db, "acme", 0, 0));
    expect_positions(&e, acme, 4);
    tu_events_clear(&e);
    TU_OK(tu_read_all(&e, s->db, "acme", 3, 0));
    expect_positions(&e, acme + 1, 3);
    tu_events_clear(&e);
    TU_OK(tu_read_all(&e, s->db, "acme", 4, 2));
    expect_positions(&e, acme + 1, 2);
    tu_events_clear(&e);
    TU_OK(tu_read_all(&e, s->db, "acme", 0, 1));
    expect_positions(&e, acme, 1);
    tu_events_clear(&e);
    TU_OK(tu_read_all(&e, s->db, "globex", 0, 0));
    expect_positions(&e, globex, 2);
    tu_events_clear(&e);
    TU_OK(tu_read_all(&e, s->db, "", 0, 0));
    expect_positions(&e, dflt, 2);
    tu_events_clear(&e);
    TU_OK(tu_read_all(&e, s->db, "nobody", 0, 0));
    assert_int_equal(e.n, 0);

    assert_int_equal(tu_head(s->db, NULL), 8);
    assert_int_equal(tu_head(s->db, "acme"), 8);
    assert_int_equal(tu_head(s->db, "globex"), 7);
    assert_int_equal(tu_head(s->db, ""), 5);
    assert_int_equal(tu_head(s->db, "nobody"), 0);

    /* Same stream name in three tenants: three streams. */
    assert_int_equal(tu_version(s->db, NULL, "s-1"), 1);
    assert_int_equal(tu_version(s->db, "acme", "s-1"), 2);
    assert_int_equal(tu_version(s->db, "globex", "s-1"), 0);
    assert_int_equal(tu_version(s->db, "globex", "s-2"), 0);
    assert_int_equal(tu_version(s->db, NULL, "s-2"), EVS_NO_STREAM);

    TU_OK(tu_read_stream(&e, s->db, "acme", "s-1", 0, EVS_FORWARD, 0));
    {
        static const uint64_t want[] = {2, 6, 8};
        expect_positions(&e, want, 3);
    }
    tu_events_clear(&e);
    TU_OK(tu_read_stream(&e, s->db, NULL, "s-1", EVS_END, EVS_BACKWARD, 0));
    {
        static const uint64_t want[] = {5, 1};
        expect_positions(&e, want, 2);
    }
    tu_events_clear(&e);

    /* The default tenant has no s-2: no_stream succeeds there, and the
     * new event is not visible in acme's or globex's s-2. */
    {
        evs_event_data ev = tu_event("T", "{\"p\":9}");
        evs_append_result r;
        TU_OK(evs_append(&r, s->db, NULL, "s-2", EVS_NO_STREAM, &ev, 1));
        assert_int_equal(r.first_position, 9);
        assert_int_equal(r.first_version, 0);
        assert_int_equal(tu_version(s->db, "acme", "s-2"), 0);
        assert_int_equal(tu_version(s->db, "globex", "s-2"), 0);
        TU_OK(tu_read_stream(&e, s->db, "acme", "s-2", 0, EVS_FORWARD, 0));
        assert_int_equal(e.n, 1);
        assert_int_equal(e.v[0].position, 4);
        tu_events_clear(&e);
        TU_OK(tu_read_all(&e, s->db, "acme", 5, 0));
        {
            static const uint64_t want[] = {6, 8};
            expect_positions(&e, want, 2);
        }
        tu_events_clear(&e);
        assert_int_equal(tu_head(s->db, ""), 9);
        assert_int_equal(tu_head(s->db, "acme"), 8);
    }
    tu_events_free(&e);
}

static void test_stats(void **state)
{
    tu_store *s = *state;
    evs_stats st = tu_stats(s->db);

    assert_int_equal(st.events, 0);
    assert_int_equal(st.streams, 0);
    assert_int_equal(st.tenants, 0);
    assert_int_equal(st.head_position, 0);

    fill_tenants(s);
    st = tu_stats(s->db);
    assert_int_equal(st.events, 8);
    /* "" s-1, acme s-1, acme s-2, globex s-1, globex s-2 */
    assert_int_equal(st.streams, 5);
    assert_int_equal(st.tenants, 3);
    assert_int_equal(st.head_position, 8);
}

/* The sizes and segment count: the embedded store's files. */
static void test_stats_files(void **state)
{
    tu_store *s = *state;
    evs_stats st;

    TU_EMBEDDED_ONLY("log segments and index files are the embedded "
                     "store's");
    fill_tenants(s);
    st = tu_stats(s->db);
    assert_int_equal(st.events, 8);
    assert_true(st.segments >= 1);
    assert_true(st.log_bytes > 0);
    assert_true(st.index_bytes > 0);
    {
        size_t n = 0;
        char **segs = tu_segments(s->dir, &n);
        assert_int_equal(st.segments, n);
        tu_free_strings(segs, n);
    }
}

/* ------------------------------------------------------------------ */
/* Reopen                                                              */
/* ------------------------------------------------------------------ */

static void assert_same_events(const tu_events *a, const tu_events *b)
{
    size_t i;
    assert_int_equal(a->n, b->n);
    for (i = 0; i < a->n; i++) {
        assert_int_equal(a->v[i].position, b->v[i].position);
        assert_int_equal(a->v[i].stream_version, b->v[i].stream_version);
        assert_string_equal(a->v[i].tenant, b->v[i].tenant);
        assert_string_equal(a->v[i].stream, b->v[i].stream);
        assert_string_equal(a->v[i].type, b->v[i].type);
        tu_assert_uuid_equal(&a->v[i].id, &b->v[i].id);
        assert_int_equal(a->v[i].recorded_at, b->v[i].recorded_at);
        assert_int_equal(a->v[i].data_len, b->v[i].data_len);
        assert_memory_equal(a->v[i].data, b->v[i].data, a->v[i].data_len);
    }
}

static void test_reopen_keeps_everything(void **state)
{
    tu_store *s = *state;
    tu_events before = {0}, after = {0};
    evs_stats st1, st2;

    fill_tenants(s);
    TU_OK(tu_read_all(&before, s->db, NULL, 0, 0));
    st1 = tu_stats(s->db);

    tu_store_reopen(s);
    TU_OK(tu_read_all(&after, s->db, NULL, 0, 0));
    assert_same_events(&before, &after);
    st2 = tu_stats(s->db);
    assert_int_equal(st2.events, st1.events);
    assert_int_equal(st2.streams, st1.streams);
    assert_int_equal(st2.tenants, st1.tenants);
    assert_int_equal(st2.head_position, st1.head_position);
    assert_int_equal(tu_head(s->db, "acme"), 8);
    assert_int_equal(tu_head(s->db, "globex"), 7);
    assert_int_equal(tu_version(s->db, "acme", "s-1"), 2);

    /* Appends go on where they stopped, also for versions. */
    {
        evs_event_data ev = tu_event("T", "{}");
        evs_append_result r;
        TU_OK(evs_append(&r, s->db, "acme", "s-1", 2, &ev, 1));
        assert_int_equal(r.first_position, 9);
        assert_int_equal(r.first_version, 3);
    }

    /* Reopening without EVS_OPEN_CREATE works for an existing store. */
    tu_store_close(s);
    {
        evs_open_options o = EVS_OPEN_OPTIONS_INIT;
        o.flags = 0;
        tu_store_open_opts(s, &o);
    }
    assert_int_equal(tu_head(s->db, NULL), 9);
    tu_events_free(&before);
    tu_events_free(&after);
}

static void test_create_in_existing_empty_dir(void **state)
{
    tu_store *s = *state; /* not open */
    TU_EMBEDDED_ONLY("a store directory made before evs_open");
    assert_int_equal(mkdir(s->dir, 0700), 0);
    tu_store_open(s);
    assert_int_equal(tu_append1(s->db, NULL, "x-1", "T", "{}"), 1);
    tu_store_reopen(s);
    assert_int_equal(tu_head(s->db, NULL), 1);
}

/* ------------------------------------------------------------------ */
/* Several segments                                                    */
/* ------------------------------------------------------------------ */

#define SEG_APPENDS 120
#define SEG_BATCH 10
#define SEG_EVENT 5000

/* Deterministic bytes of event k (0-based overall). */
static void seg_fill(unsigned char *buf, size_t len, uint64_t k)
{
    tu_rng r;
    size_t i;
    tu_rng_init(&r, k + 1);
    for (i = 0; i < len; i++)
        buf[i] = (unsigned char)tu_rng_next(&r);
}

static void seg_check_all(tu_store *s)
{
    tu_events e = {0};
    unsigned char *want = malloc(SEG_EVENT);
    size_t i;
    assert_non_null(want);
    TU_OK(tu_read_all(&e, s->db, NULL, 0, 0));
    assert_int_equal(e.n, SEG_APPENDS * SEG_BATCH);
    for (i = 0; i < e.n; i++) {
        assert_int_equal(e.v[i].position, i + 1);
        assert_int_equal(e.v[i].data_len, SEG_EVENT);
        seg_fill(want, SEG_EVENT, i);
        assert_memory_equal(e.v[i].data, want, SEG_EVENT);
    }
    tu_events_clear(&e);

    /* A backward stream read that crosses every segment. */
    TU_OK(tu_read_stream(&e, s->db, NULL, "big-0", EVS_END, EVS_BACKWARD,
                         0));
    assert_int_equal(e.n, SEG_APPENDS * SEG_BATCH / 2);
    for (i = 0; i < e.n; i++) {
        assert_int_equal(e.v[i].stream_version, (int64_t)(e.n - 1 - i));
        if (i > 0)
            assert_true(e.v[i].position < e.v[i - 1].position);
        seg_fill(want, SEG_EVENT, e.v[i].position - 1);
        assert_memory_equal(e.v[i].data, want, SEG_EVENT);
    }
    tu_events_free(&e);
    free(want);
}

static void test_several_segments(void **state)
{
    tu_store *s = *state; /* not open */
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    unsigned char *bufs;
    evs_event_data ev[SEG_BATCH];
    evs_stats st;
    size_t a, k, nseg = 0;
    char **segs;

    TU_EMBEDDED_ONLY("log segment files");
    bufs = malloc((size_t)SEG_BATCH * SEG_EVENT);
    assert_non_null(bufs);
    o.segment_size = 1024 * 1024;
    tu_store_open_opts(s, &o);
    for (a = 0; a < SEG_APPENDS; a++) {
        evs_append_result r;
        for (k = 0; k < SEG_BATCH; k++) {
            seg_fill(bufs + k * SEG_EVENT, SEG_EVENT, a * SEG_BATCH + k);
            ev[k] = tu_event_bin("Chunk", bufs + k * SEG_EVENT, SEG_EVENT);
        }
        TU_OK(evs_append(&r, s->db, NULL, a % 2 ? "big-1" : "big-0",
                         EVS_ANY, ev, SEG_BATCH));
        assert_int_equal(r.first_position, a * SEG_BATCH + 1);
    }
    free(bufs);

    st = tu_stats(s->db);
    /* 6 MB of data in 1 MiB segments. */
    assert_true(st.segments >= 5);
    segs = tu_segments(s->dir, &nseg);
    assert_int_equal(nseg, st.segments);
    tu_free_strings(segs, nseg);
    assert_int_equal(st.events, SEG_APPENDS * SEG_BATCH);
    seg_check_all(s);

    tu_store_reopen(s);
    seg_check_all(s);
    TU_OK(evs_verify(NULL, s->db, NULL, NULL));
}

/* With the smallest segment (1 MiB) the default event limit is the segment
 * size less 64 KiB (evstore.h): an event of exactly that size is stored, a
 * byte more is EVS_ETOOBIG and writes nothing. */
static void test_max_event_in_min_segment(void **state)
{
    tu_store *s = *state; /* not open */
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    size_t len = 1024 * 1024 - 64 * 1024;
    unsigned char *buf = malloc(len + 1);
    evs_event_data ev;
    evs_append_result r;
    tu_events e = {0};

    assert_non_null(buf);
    seg_fill(buf, len + 1, 77);
    o.segment_size = 1024 * 1024;
    tu_store_open_opts(s, &o);
    tu_append1(s->db, NULL, "small", "T", "{}");
    ev = tu_event_bin("Huge", buf, len + 1);
    TU_CHECK(evs_append(&r, s->db, NULL, "huge", EVS_NO_STREAM, &ev, 1), EVS_ETOOBIG);
    assert_int_equal(tu_head(s->db, NULL), 1);
    ev = tu_event_bin("Huge", buf, len);
    TU_OK(evs_append(&r, s->db, NULL, "huge", EVS_NO_STREAM, &ev, 1));
    assert_int_equal(r.first_position, 2);
    tu_append1(s->db, NULL, "small", "T", "{}");

    tu_store_reopen(s);
    TU_OK(tu_read_all(&e, s->db, NULL, 0, 0));
    assert_int_equal(e.n, 3);
    assert_int_equal(e.v[1].data_len, len);
    assert_memory_equal(e.v[1].data, buf, len);
    assert_int_equal(e.v[2].position, 3);
    tu_events_free(&e);
    free(buf);
    TU_OK(evs_verify(NULL, s->db, NULL, NULL));
}

typedef struct progress_seen {
    uint64_t calls, last_done, total, problems;
    int backwards;
} progress_seen;

static void seen_progress(void *ctx, uint64_t done, uint64_t total)
{
    progress_seen *p = ctx;
    if (p->calls && done < p->last_done)
        p->backwards = 1;
    p->calls++;
    p->last_done = done;
    p->total = total;
}

static void seen_problem(void *ctx, const char *problem)
{
    (void)problem;
    ((progress_seen *)ctx)->problems++;
}

/* evs_verify_ex tells how far it is: never backwards, ending at the head. */
static void test_verify_progress(void **state)
{
    tu_store *s = *state;
    progress_seen p = {0};
    uint64_t checked = 0;
    enum { N = 70000 }; /* more than one embedded tick (65536 records) */
    static evs_event_data ev[1000];

    for (size_t i = 0; i < 1000; i++)
        ev[i] = tu_event("Tick", "{}");
    for (int b = 0; b < N / 1000; b++)
        TU_OK(evs_append(NULL, s->db, NULL, "t-1", EVS_ANY, ev, 1000));
    TU_OK(evs_verify_ex(&checked, s->db, seen_problem, seen_progress, &p));
    assert_int_equal(checked, N);
    assert_int_equal(p.problems, 0);
    assert_true(p.calls >= 2);
    assert_int_equal(p.backwards, 0);
    assert_int_equal(p.total, N);
    assert_int_equal(p.last_done, N);
    /* NULL progress: plain evs_verify */
    TU_OK(evs_verify_ex(NULL, s->db, NULL, NULL, NULL));
    TU_CHECK(evs_verify_ex(NULL, NULL, NULL, seen_progress, &p), EVS_EINVAL);
}

typedef struct cb_reader {
    evs_db *db;
    uint64_t calls, reads_ok;
} cb_reader;

/* A progress callback that reads the store, as a progress bar that shows
 * the head would. */
static void reading_progress(void *ctx, uint64_t done, uint64_t total)
{
    cb_reader *r = ctx;
    int64_t v = 0;
    (void)done;
    (void)total;
    r->calls++;
    if (evs_stream_version(&v, r->db, NULL, "grow-1") == 0)
        r->reads_ok++;
}

typedef struct grower {
    evs_db *db;
    _Atomic int stop;
    uint64_t appended;
    int rc;
} grower;

static void *grow_index(void *arg)
{
    grower *g = arg;
    const char *tags[] = {"a:1", "b:2", "c:3", "d:4"};
    evs_event_data ev[50];
    for (int i = 0; i < 50; i++) {
        ev[i] = tu_event("Grown", "{\"x\":1}");
        ev[i].tags = tags;
        ev[i].ntags = 4;
    }
    while (!atomic_load(&g->stop) && g->rc == 0) {
        g->rc = evs_append(NULL, g->db, NULL, "grow-1", EVS_ANY, ev, 50);
        g->appended += 50;
    }
    return NULL;
}

/* Verify's callbacks run outside its index reads: one that reads the store
 * while a writer keeps growing the index's map (from a small first map)
 * must neither deadlock nor fail. */
static void test_verify_callbacks_read_beside_growth(void **state)
{
    tu_store *s = *state;
    TU_EMBEDDED_ONLY("the embedded index's map growth");
    tu_store_close(s);
    assert_int_equal(setenv("EVS_DEBUG_INDEX_MAP_MIN", "262144", 1), 0);
    tu_store_open(s);
    assert_int_equal(unsetenv("EVS_DEBUG_INDEX_MAP_MIN"), 0);
    static evs_event_data ev[1000];
    for (size_t i = 0; i < 1000; i++)
        ev[i] = tu_event("Tick", "{}");
    for (int b = 0; b < 40; b++)
        TU_OK(evs_append(NULL, s->db, NULL, "t-1", EVS_ANY, ev, 1000));

    grower g = {.db = s->db};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, grow_index, &g), 0);
    cb_reader r = {.db = s->db};
    uint64_t checked = 0;
    for (int round = 0; round < 5; round++)
        TU_OK(evs_verify_ex(&checked, s->db, NULL, reading_progress, &r));
    atomic_store(&g.stop, 1);
    assert_int_equal(pthread_join(th, NULL), 0);
    TU_OK(g.rc);
    assert_true(r.calls >= 10);
    assert_int_equal(r.reads_ok, r.calls);
    assert_true(g.appended > 0);
    TU_OK(evs_verify(&checked, s->db, NULL, NULL));
    assert_int_equal(checked, 40000 + g.appended);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_and_strerror),
        cmocka_unit_test(test_last_error_empty_in_new_thread),
        cmocka_unit_test(test_uuid),
        cmocka_unit_test_setup_teardown(test_roundtrip_fields,
                                        tu_setup_store, tu_teardown_store),
        cmocka_unit_test_setup_teardown(test_versions_and_positions,
                                        tu_setup_store, tu_teardown_store),
        cmocka_unit_test_setup_teardown(test_read_stream, tu_setup_store,
                                        tu_teardown_store),
        cmocka_unit_test_setup_teardown(test_stream_version, tu_setup_store,
                                        tu_teardown_store),
        cmocka_unit_test_setup_teardown(test_read_all_and_tenants,
                                        tu_setup_store, tu_teardown_store),
        cmocka_unit_test_setup_teardown(test_stats, tu_setup_store,
                                        tu_teardown_store),
        cmocka_unit_test_setup_teardown(test_verify_progress, tu_setup_store,
                                        tu_teardown_store),
        cmocka_unit_test_setup_teardown(test_verify_callbacks_read_beside_growth,
                                        tu_setup_store, tu_teardown_store),
        cmocka_unit_test_setup_teardown(test_stats_files, tu_setup_store,
                                        tu_teardown_store),
        cmocka_unit_test_setup_teardown(test_reopen_keeps_everything,
                                        tu_setup_store, tu_teardown_store),
        cmocka_unit_test_setup_teardown(test_create_in_existing_empty_dir,
                                        tu_setup_store_closed,
                                        tu_teardown_store),
        cmocka_unit_test_setup_teardown(test_several_segments,
                                        tu_setup_store_closed,
                                        tu_teardown_store),
        cmocka_unit_test_setup_teardown(test_max_event_in_min_segment,
                                        tu_setup_store_closed,
                                        tu_teardown_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
