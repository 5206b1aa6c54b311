/*
 * test_lifecycle.c -- stream metadata (max count, max age, truncate
 * before, custom keys), soft delete and tombstone, against every read
 * (stream, streams, $all, the log, queries, tracking, aggregate load,
 * read_event) and against appends, conditions and expected versions; and
 * evs_scavenge's observable result. Runs on both backends (_pg).
 */
#include "testutil.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T "acme"

/* n events "e" of stream, returning the position of the first */
static uint64_t put(evs_db *db, const char *stream, int n)
{
    uint64_t first = 0;
    for (int i = 0; i < n; i++) {
        uint64_t p = tu_append1(db, T, stream, "e", "{\"i\":1}");
        if (i == 0)
            first = p;
    }
    return first;
}

/* the versions a forward stream read returns, as a count and first */
static void stream_span(evs_db *db, const char *stream, size_t *n, int64_t *first)
{
    tu_events ev = {0};
    TU_OK(tu_read_stream(&ev, db, T, stream, 0, EVS_FORWARD, 0));
    *n = ev.n;
    *first = ev.n ? ev.v[0].stream_version : -1;
    for (size_t i = 1; i < ev.n; i++)
        assert_int_equal(ev.v[i].stream_version, ev.v[i - 1].stream_version + 1);
    tu_events_free(&ev);
}

/* events of stream in $all of the tenant */
static size_t in_all(evs_db *db, const char *stream)
{
    tu_events ev = {0};
    size_t n = 0;
    TU_OK(tu_read_all(&ev, db, T, 0, 0));
    for (size_t i = 0; i < ev.n; i++)
        n += strcmp(ev.v[i].stream, stream) == 0;
    tu_events_free(&ev);
    return n;
}

/* events of stream found by the DCB query "$stream:NAME", forward or
 * backward, from the start/end or from a position */
static size_t in_query_dir(evs_db *db, const char *stream, evs_direction dir, uint64_t bound)
{
    char tag[300];
    snprintf(tag, sizeof(tag), "$stream:%s", stream);
    const char *tags[] = {tag};
    evs_query_item item = {NULL, 0, tags, 1};
    evs_query q = {&item, 1};
    tu_events ev = {0};
    TU_OK(tu_read_query(&ev, NULL, db, T, &q, bound, dir, 0));
    size_t n = ev.n;
    for (size_t i = 1; i < n; i++)
        assert_true(dir == EVS_FORWARD ? ev.v[i].position > ev.v[i - 1].position
                                       : ev.v[i].position < ev.v[i - 1].position);
    tu_events_free(&ev);
    return n;
}

static size_t in_query(evs_db *db, const char *stream)
{
    char tag[300];
    snprintf(tag, sizeof(tag), "$stream:%s", stream);
    const char *tags[] = {tag};
    evs_query_item item = {NULL, 0, tags, 1};
    evs_query q = {&item, 1};
    tu_events ev = {0};
    TU_OK(tu_read_query(&ev, NULL, db, T, &q, 0, EVS_FORWARD, 0));
    size_t n = ev.n;
    tu_events_free(&ev);
    return n;
}

/* events of stream a tracking read of the tenant returns, in batches of
 * 3 (the limit path) from token 0 to the head */
static size_t in_tracking(evs_db *db, const char *stream)
{
    evs_tracking t = EVS_TRACKING_INIT;
    t.tenant = T;
    uint64_t after = 0, head = tu_head(db, NULL);
    size_t n = 0;
    while (after < head) {
        evs_iter *it;
        const evs_event *e;
        TU_OK(evs_read_tracking(&it, db, &t, after, 3, 0));
        int rc;
        while ((rc = evs_iter_next(&e, it)) == 0)
            n += strcmp(e->stream, stream) == 0;
        assert_int_equal(rc, EVS_ITEROVER);
        uint64_t m;
        TU_OK(evs_iter_marker(&m, it));
        evs_iter_free(it);
        assert_true(m > after || m >= head);
        after = m;
    }
    return n;
}

static void set_meta(evs_db *db, const char *stream, int64_t max_count, int64_t max_age,
                     int64_t tb)
{
    evs_stream_metadata m = EVS_STREAM_METADATA_INIT;
    m.max_count = max_count;
    m.max_age_s = max_age;
    m.truncate_before = tb;
    TU_OK(evs_stream_metadata_set(NULL, db, T, stream, EVS_ANY, &m));
}

static void test_metadata_roundtrip(void **state)
{
    tu_store *s = *state;
    evs_stream_meta_info *info;
    TU_OK(evs_stream_metadata_get(&info, s->db, T, "cart-1"));
    assert_int_equal(info->meta_version, EVS_NO_STREAM);
    assert_int_equal(info->stream_version, EVS_NO_STREAM);
    assert_string_equal(info->meta.custom, "{}");
    evs_stream_meta_info_free(info);

    evs_stream_metadata m = EVS_STREAM_METADATA_INIT;
    m.max_count = 5;
    m.max_age_s = 3600;
    m.truncate_before = 2;
    m.custom = "{\"owner\": \"team \\\"a\\\"\", \"n\": [1, 2]}";
    m.custom_len = strlen(m.custom);
    int64_t mv = -9;
    TU_OK(evs_stream_metadata_set(&mv, s->db, T, "cart-1", EVS_NO_STREAM, &m));
    assert_int_equal(mv, 0);
    TU_OK(evs_stream_metadata_get(&info, s->db, T, "cart-1"));
    assert_int_equal(info->meta_version, 0);
    assert_int_equal(info->meta.max_count, 5);
    assert_int_equal(info->meta.max_age_s, 3600);
    assert_int_equal(info->meta.truncate_before, 2);
    assert_string_equal(info->meta.custom, "{\"owner\":\"team \\\"a\\\"\",\"n\":[1, 2]}");
    assert_false(info->deleted);
    assert_false(info->tombstoned);
    evs_stream_meta_info_free(info);

    /* expected metadata version */
    TU_CHECK(evs_stream_metadata_set(NULL, s->db, T, "cart-1", EVS_NO_STREAM, &m),
             EVS_ECONFLICT);
    TU_ASSERT_ERRMSG();
    TU_CHECK(evs_stream_metadata_set(NULL, s->db, T, "cart-1", 3, &m), EVS_ECONFLICT);
    m.custom = NULL;
    m.custom_len = 0;
    m.max_count = 0;
    TU_OK(evs_stream_metadata_set(&mv, s->db, T, "cart-1", 0, &m));
    assert_int_equal(mv, 1);
    TU_OK(evs_stream_metadata_get(&info, s->db, T, "cart-1"));
    assert_int_equal(info->meta.max_count, 0);
    assert_string_equal(info->meta.custom, "{}");
    evs_stream_meta_info_free(info);

    /* bad input: nothing written */
    uint64_t head = tu_head(s->db, NULL);
    evs_stream_metadata bad = EVS_STREAM_METADATA_INIT;
    bad.max_count = -1;
    TU_CHECK(evs_stream_metadata_set(NULL, s->db, T, "cart-1", EVS_ANY, &bad), EVS_EINVAL);
    bad.max_count = 0;
    bad.custom = "{\"$maxCount\": 3}";
    bad.custom_len = strlen(bad.custom);
    TU_CHECK(evs_stream_metadata_set(NULL, s->db, T, "cart-1", EVS_ANY, &bad), EVS_EINVAL);
    bad.custom = "[1]";
    bad.custom_len = 3;
    TU_CHECK(evs_stream_metadata_set(NULL, s->db, T, "cart-1", EVS_ANY, &bad), EVS_EINVAL);
    bad.custom = "{\"a\":";
    bad.custom_len = strlen(bad.custom);
    TU_CHECK(evs_stream_metadata_set(NULL, s->db, T, "cart-1", EVS_ANY, &bad), EVS_EINVAL);
    TU_ASSERT_ERRMSG();
    TU_CHECK(evs_stream_metadata_set(NULL, s->db, T, "$checkpoint-x", EVS_ANY, &m),
             EVS_EINVAL);
    TU_CHECK(evs_stream_metadata_set(NULL, s->db, T, "cart-1", EVS_ANY, NULL), EVS_EINVAL);
    assert_int_equal(tu_head(s->db, NULL), head);

    bad.custom = NULL;
    bad.custom_len = 0;
    bad.max_age_s = 1000000000000000000LL; /* 19 digits: more than the JSON keeps */
    TU_CHECK(evs_stream_metadata_set(NULL, s->db, T, "cart-1", EVS_ANY, &bad), EVS_EINVAL);
    assert_int_equal(tu_head(s->db, NULL), head);

    /* a name too long for "$$" + name: its metadata under a hash */
    char longname[257];
    memset(longname, 'n', 256);
    longname[256] = '\0';
    m.max_count = 7;
    TU_OK(evs_stream_metadata_set(&mv, s->db, T, longname, EVS_NO_STREAM, &m));
    TU_OK(evs_stream_metadata_get(&info, s->db, T, longname));
    assert_int_equal(info->meta.max_count, 7);
    assert_int_equal(info->meta_version, 0);
    evs_stream_meta_info_free(info);
    head = tu_head(s->db, NULL);

    /* the store's types are refused from callers */
    evs_event_data e = tu_event("$metadata", "{}");
    TU_CHECK(evs_append(NULL, s->db, T, "cart-1", EVS_ANY, &e, 1), EVS_EINVAL);
    e = tu_event("$streamDeleted", "{}");
    TU_CHECK(evs_append(NULL, s->db, T, "cart-1", EVS_ANY, &e, 1), EVS_EINVAL);
    assert_int_equal(tu_head(s->db, NULL), head);
}

/* truncate_before and max_count against every read, conditions and
 * expected versions */
static void test_truncate_and_max_count(void **state)
{
    tu_store *s = *state;
    put(s->db, "acc-1", 10);
    put(s->db, "acc-2", 4);
    uint64_t hidden_pos = put(s->db, "acc-1", 0); /* nothing */
    (void)hidden_pos;
    set_meta(s->db, "acc-1", 0, 0, 6);
    size_t n;
    int64_t first;
    stream_span(s->db, "acc-1", &n, &first);
    assert_int_equal(n, 4);
    assert_int_equal(first, 6);
    assert_int_equal(in_all(s->db, "acc-1"), 4);
    assert_int_equal(in_query(s->db, "acc-1"), 4);
    assert_int_equal(in_tracking(s->db, "acc-1"), 4);
    assert_int_equal(in_all(s->db, "acc-2"), 4);
    /* backward with a limit: the newest first, stopping at the floor */
    tu_events ev = {0};
    TU_OK(tu_read_stream(&ev, s->db, T, "acc-1", EVS_END, EVS_BACKWARD, 0));
    assert_int_equal(ev.n, 4);
    assert_int_equal(ev.v[3].stream_version, 6);
    tu_events_clear(&ev);
    TU_OK(tu_read_stream(&ev, s->db, T, "acc-1", 0, EVS_FORWARD, 2));
    assert_int_equal(ev.n, 2);
    assert_int_equal(ev.v[0].stream_version, 6);
    tu_events_clear(&ev);
    /* evs_read_event of a hidden event yields nothing, not the next event */
    {
        evs_event_data idev[2] = {tu_event_id("e", "{}"), tu_event_id("e", "{}")};
        TU_OK(evs_append(NULL, s->db, T, "acc-3", EVS_NO_STREAM, idev, 2));
        set_meta(s->db, "acc-3", 0, 0, 1);
        evs_iter *it0;
        const evs_event *e0;
        TU_OK(evs_read_event(&it0, s->db, &idev[0].id));
        assert_int_equal(evs_iter_next(&e0, it0), EVS_ITEROVER);
        evs_iter_free(it0);
        TU_OK(evs_read_event(&it0, s->db, &idev[1].id));
        TU_OK(evs_iter_next(&e0, it0));
        assert_int_equal(e0->stream_version, 1);
        evs_iter_free(it0);
    }
    /* the version numbering does not change */
    assert_int_equal(tu_version(s->db, T, "acc-1"), 9);
    evs_event_data e = tu_event("e", "{}");
    TU_CHECK(evs_append(NULL, s->db, T, "acc-1", 5, &e, 1), EVS_ECONFLICT);
    TU_OK(evs_append(NULL, s->db, T, "acc-1", 9, &e, 1));

    /* max_count 3 on top: the newest 3 */
    set_meta(s->db, "acc-1", 3, 0, 6);
    stream_span(s->db, "acc-1", &n, &first);
    assert_int_equal(n, 3);
    assert_int_equal(first, 8);
    assert_int_equal(in_all(s->db, "acc-1"), 3);
    assert_int_equal(in_query(s->db, "acc-1"), 3);
    assert_int_equal(in_tracking(s->db, "acc-1"), 3);
    TU_OK(evs_append(NULL, s->db, T, "acc-1", 10, &e, 1));
    stream_span(s->db, "acc-1", &n, &first);
    assert_int_equal(n, 3);
    assert_int_equal(first, 9);

    /* read_streams and aggregate load honour it; a snapshot below the
     * floor is not used */
    evs_stream_read sr[2] = {{"acc-1", 0}, {"acc-2", 0}};
    evs_iter *it;
    TU_OK(evs_read_streams(&it, s->db, T, sr, 2));
    TU_OK(tu_collect(&ev, it));
    evs_iter_free(it);
    assert_int_equal(ev.n, 3 + 4);
    tu_events_clear(&ev);
    TU_OK(evs_snapshot_save(s->db, T, "acc-1", 2, "v1", "{}", 2));
    evs_snapshot *snap;
    TU_OK(evs_aggregate_load(&snap, &it, s->db, T, "acc-1"));
    assert_null(snap);
    TU_OK(tu_collect(&ev, it));
    evs_iter_free(it);
    assert_int_equal(ev.n, 3);
    tu_events_free(&ev);

    /* raising the limits again shows the events (nothing was scavenged) */
    set_meta(s->db, "acc-1", 0, 0, 0);
    stream_span(s->db, "acc-1", &n, &first);
    assert_int_equal(n, 12);
    assert_int_equal(first, 0);
}

static void test_max_age(void **state)
{
    tu_store *s = *state;
    evs_event_data ev[6];
    int64_t now = tu_now_us();
    for (int i = 0; i < 6; i++) {
        ev[i] = tu_event("e", "{}");
        ev[i].recorded_at = i < 4 ? now - 7200 * 1000000LL : 0; /* 2 h ago, or now */
    }
    TU_OK(evs_append(NULL, s->db, T, "log-1", EVS_NO_STREAM, ev, 6));
    set_meta(s->db, "log-1", 0, 3600, 0);
    size_t n;
    int64_t first;
    stream_span(s->db, "log-1", &n, &first);
    assert_int_equal(n, 2);
    assert_int_equal(first, 4);
    assert_int_equal(in_all(s->db, "log-1"), 2);
    assert_int_equal(in_query(s->db, "log-1"), 2);
    assert_int_equal(in_tracking(s->db, "log-1"), 2);
    /* a forward read with a limit still finds the live ones */
    tu_events got = {0};
    TU_OK(tu_read_stream(&got, s->db, T, "log-1", 0, EVS_FORWARD, 1));
    assert_int_equal(got.n, 1);
    assert_int_equal(got.v[0].stream_version, 4);
    tu_events_clear(&got);
    TU_OK(tu_read_all(&got, s->db, T, 0, 1));
    assert_int_equal(got.n, 1);
    assert_int_equal(got.v[0].stream_version, 4);
    tu_events_free(&got);
}

static void test_soft_delete(void **state)
{
    tu_store *s = *state;
    put(s->db, "order-1", 3);
    put(s->db, "order-2", 2);
    TU_CHECK(evs_stream_delete(NULL, s->db, T, "order-1", 1), EVS_ECONFLICT);
    TU_ASSERT_ERRMSG();
    uint64_t pos = 0;
    TU_OK(evs_stream_delete(&pos, s->db, T, "order-1", 2));
    assert_true(pos > 0);
    size_t n;
    int64_t first;
    stream_span(s->db, "order-1", &n, &first);
    assert_int_equal(n, 0);
    assert_int_equal(in_all(s->db, "order-1"), 0);
    assert_int_equal(in_query(s->db, "order-1"), 0);
    assert_int_equal(in_all(s->db, "order-2"), 2);
    evs_stream_meta_info *info;
    TU_OK(evs_stream_metadata_get(&info, s->db, T, "order-1"));
    assert_true(info->deleted);
    assert_int_equal(info->stream_version, 2);
    assert_int_equal(info->meta.truncate_before, 3);
    evs_stream_meta_info_free(info);
    /* idempotent, and a stream without events */
    uint64_t head = tu_head(s->db, NULL);
    TU_OK(evs_stream_delete(&pos, s->db, T, "order-1", EVS_ANY));
    assert_int_equal(pos, 0);
    TU_OK(evs_stream_delete(&pos, s->db, T, "never", EVS_ANY));
    assert_int_equal(tu_head(s->db, NULL), head);
    /* what subscribers see: an event without a stream saying so */
    tu_events all = {0};
    TU_OK(tu_read_all(&all, s->db, T, 0, 0));
    int seen = 0;
    for (size_t i = 0; i < all.n; i++)
        if (strcmp(all.v[i].type, "$metadata") == 0) {
            assert_string_equal(all.v[i].stream, "");
            assert_non_null(strstr(all.v[i].data, "\"stream\":\"order-1\""));
            assert_non_null(strstr(all.v[i].data, "\"deleted\":true"));
            seen++;
        }
    assert_int_equal(seen, 1);
    tu_events_free(&all);
    /* DCB conditions see every event still stored (documented): the
     * deleted stream's events still fail a condition until a scavenge */
    evs_event_data e = tu_event("e", "{}");
    {
        const char *tags[] = {"$stream:order-1"};
        evs_query_item item = {NULL, 0, tags, 1};
        evs_append_condition cond = {{&item, 1}, 0};
        uint64_t conflict = 0;
        uint64_t h0 = tu_head(s->db, NULL);
        TU_CHECK(evs_dcb_append(NULL, &conflict, s->db, T, &e, 1, &cond), EVS_ECONFLICT);
        assert_true(conflict > 0);
        assert_int_equal(tu_head(s->db, NULL), h0);
        cond.after = h0; /* the marker of a read: nothing after it */
        TU_OK(evs_dcb_append(NULL, &conflict, s->db, T, &e, 1, &cond));
    }
    /* appending again continues the numbering */
    evs_append_result r;
    TU_CHECK(evs_append(&r, s->db, T, "order-1", EVS_NO_STREAM, &e, 1), EVS_ECONFLICT);
    TU_OK(evs_append(&r, s->db, T, "order-1", 2, &e, 1));
    assert_int_equal(r.stream_version, 3);
    stream_span(s->db, "order-1", &n, &first);
    assert_int_equal(n, 1);
    assert_int_equal(first, 3);
    TU_OK(evs_stream_metadata_get(&info, s->db, T, "order-1"));
    assert_false(info->deleted);
    evs_stream_meta_info_free(info);
    /* the rules hold for another handle too */
    tu_store_reopen(s);
    stream_span(s->db, "order-1", &n, &first);
    assert_int_equal(n, 1);
    assert_int_equal(in_all(s->db, "order-1"), 1);
}

static void test_tombstone(void **state)
{
    tu_store *s = *state;
    evs_event_data first = tu_event_id("e", "{}");
    evs_uuid hidden_id = first.id, tomb_id;
    TU_OK(evs_append(NULL, s->db, T, "user-7", EVS_NO_STREAM, &first, 1));
    put(s->db, "user-7", 2);
    put(s->db, "user-8", 1);
    TU_CHECK(evs_stream_tombstone(NULL, s->db, T, "user-7", 0), EVS_ECONFLICT);
    uint64_t pos = 0, pos2 = 0;
    TU_OK(evs_stream_tombstone(&pos, s->db, T, "user-7", 2));
    assert_true(pos > 0);
    TU_OK(evs_stream_tombstone(&pos2, s->db, T, "user-7", EVS_ANY)); /* idempotent */
    assert_int_equal(pos2, pos);
    {
        evs_iter *it3;
        const evs_event *e3;
        TU_OK(evs_read_log(&it3, s->db, pos, 1));
        TU_OK(evs_iter_next(&e3, it3));
        tomb_id = e3->id;
        evs_iter_free(it3);
    }
    uint64_t head = tu_head(s->db, NULL);
    evs_event_data e = tu_event("e", "{}");
    TU_CHECK(evs_append(NULL, s->db, T, "user-7", EVS_ANY, &e, 1), EVS_EDELETED);
    TU_ASSERT_ERRMSG();
    TU_CHECK(evs_append(NULL, s->db, T, "user-7", EVS_NO_STREAM, &e, 1), EVS_EDELETED);
    evs_stream_append parts[2] = {{"user-8", EVS_ANY, &e, 1}, {"user-7", EVS_ANY, &e, 1}};
    TU_CHECK(evs_append_multi(NULL, s->db, T, parts, 2), EVS_EDELETED);
    assert_int_equal(tu_head(s->db, NULL), head);
    evs_iter *it;
    TU_CHECK(evs_read_stream(&it, s->db, T, "user-7", 0, EVS_FORWARD, 0), EVS_EDELETED);
    int64_t v;
    TU_CHECK(evs_stream_version(&v, s->db, T, "user-7"), EVS_EDELETED);
    evs_stream_metadata m = EVS_STREAM_METADATA_INIT;
    TU_CHECK(evs_stream_metadata_set(NULL, s->db, T, "user-7", EVS_ANY, &m), EVS_EDELETED);
    TU_CHECK(evs_stream_delete(NULL, s->db, T, "user-7", EVS_ANY), EVS_EDELETED);
    evs_snapshot *snap;
    TU_CHECK(evs_aggregate_load(&snap, &it, s->db, T, "user-7"), EVS_EDELETED);
    evs_stream_read sr = {"user-7", 0};
    TU_CHECK(evs_read_streams(&it, s->db, T, &sr, 1), EVS_EDELETED);
    evs_stream_meta_info *info;
    TU_OK(evs_stream_metadata_get(&info, s->db, T, "user-7"));
    assert_true(info->tombstoned);
    evs_stream_meta_info_free(info);
    /* $all, queries and tracking: only the tombstone is left */
    tu_events all = {0};
    TU_OK(tu_read_all(&all, s->db, T, 0, 0));
    size_t n7 = 0;
    for (size_t i = 0; i < all.n; i++)
        if (strcmp(all.v[i].stream, "user-7") == 0) {
            n7++;
            assert_string_equal(all.v[i].type, "$streamDeleted");
            assert_true(all.v[i].stream_version == INT64_MAX);
            assert_int_equal(all.v[i].position, pos);
        }
    assert_int_equal(n7, 1);
    tu_events_free(&all);
    assert_int_equal(in_tracking(s->db, "user-7"), 1);
    /* evs_read_event: a hidden event yields nothing, the tombstone itself */
    {
        evs_iter *it2;
        const evs_event *e2;
        TU_OK(evs_read_event(&it2, s->db, &hidden_id));
        assert_int_equal(evs_iter_next(&e2, it2), EVS_ITEROVER);
        evs_iter_free(it2);
        TU_OK(evs_read_event(&it2, s->db, &tomb_id));
        TU_OK(evs_iter_next(&e2, it2));
        assert_int_equal(e2->position, pos);
        assert_string_equal(e2->type, "$streamDeleted");
        evs_iter_free(it2);
    }
    /* a query of the stream's tag steps over its version gap */
    assert_int_equal(in_query(s->db, "user-7"), 1);
    assert_int_equal(in_query_dir(s->db, "user-7", EVS_BACKWARD, 0), 1);
    assert_int_equal(in_query_dir(s->db, "user-7", EVS_BACKWARD, pos), 0);
    assert_int_equal(in_query_dir(s->db, "user-7", EVS_FORWARD, pos - 1), 1);
    assert_int_equal(in_all(s->db, "user-8"), 1);
    /* survives a reopen (the embedded index is rebuilt from the log on a
     * copy; here: the same store) */
    tu_store_reopen(s);
    TU_CHECK(evs_append(NULL, s->db, T, "user-7", EVS_ANY, &e, 1), EVS_EDELETED);
    TU_CHECK(evs_read_stream(&it, s->db, T, "user-7", 0, EVS_FORWARD, 0), EVS_EDELETED);
    uint64_t checked;
    TU_OK(evs_verify(&checked, s->db, NULL, NULL));
}

/* Appenders with exact expected versions race a tombstone: no append is
 * acknowledged after the tombstone. */
typedef struct race {
    evs_db *db;
    int id;
    uint64_t last_ok; /* position of its last acknowledged append */
    int deleted;      /* saw EVS_EDELETED */
} race;

static void *appender(void *arg)
{
    race *r = arg;
    for (int i = 0; i < 200; i++) {
        int64_t v;
        int rc = evs_stream_version(&v, r->db, T, "hot");
        if (rc == EVS_EDELETED) {
            r->deleted = 1;
            break;
        }
        evs_event_data e = tu_event("e", "{}");
        evs_append_result res;
        rc = evs_append(&res, r->db, T, "hot", v, &e, 1);
        if (rc == 0)
            r->last_ok = res.last_position;
        else if (rc == EVS_EDELETED) {
            r->deleted = 1;
            break;
        } else if (rc != EVS_ECONFLICT) {
            tu_fail("append: %s", evs_last_error());
            break;
        }
    }
    return NULL;
}

static void test_tombstone_race(void **state)
{
    tu_store *s = *state;
    put(s->db, "hot", 1);
    race r[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        r[i] = (race){s->db, i, 0, 0};
        pthread_create(&th[i], NULL, appender, &r[i]);
    }
    tu_sleep_ms(20);
    uint64_t pos = 0;
    int rc;
    int64_t v;
    /* exact expected versions: retry until it lands */
    do {
        TU_OK(evs_stream_version(&v, s->db, T, "hot"));
        rc = evs_stream_tombstone(&pos, s->db, T, "hot", v);
    } while (rc == EVS_ECONFLICT);
    TU_OK(rc);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(tu_failures(), 0);
    for (int i = 0; i < 4; i++)
        assert_true(r[i].last_ok < pos);
    TU_CHECK(evs_stream_version(&v, s->db, T, "hot"), EVS_EDELETED);
}

/* A soft delete with EVS_ANY under appenders: the delete covers exactly
 * what it read; appends after it stay visible. */
static void *any_appender(void *arg)
{
    race *r = arg;
    for (int i = 0; i < 100; i++) {
        evs_event_data e = tu_event("e", "{}");
        evs_append_result res;
        if (evs_append(&res, r->db, T, "busy", EVS_ANY, &e, 1) != 0) {
            tu_fail("append: %s", evs_last_error());
            break;
        }
        r->last_ok = res.last_position;
    }
    return NULL;
}

static void test_delete_race(void **state)
{
    tu_store *s = *state;
    put(s->db, "busy", 1);
    race r[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        r[i] = (race){s->db, i, 0, 0};
        pthread_create(&th[i], NULL, any_appender, &r[i]);
    }
    tu_sleep_ms(10);
    uint64_t pos;
    TU_OK(evs_stream_delete(&pos, s->db, T, "busy", EVS_ANY));
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(tu_failures(), 0);
    /* visible: exactly the events after the delete's announcement */
    tu_events all = {0};
    TU_OK(tu_read_all(&all, s->db, T, 0, 0));
    size_t after = 0, seen = 0;
    for (size_t i = 0; i < all.n; i++)
        if (strcmp(all.v[i].stream, "busy") == 0)
            seen++;
    tu_events_free(&all);
    tu_events raw = {0};
    evs_iter *it;
    TU_OK(evs_read_log(&it, s->db, pos, 0));
    TU_OK(tu_collect(&raw, it));
    evs_iter_free(it);
    for (size_t i = 0; i < raw.n; i++)
        after += strcmp(raw.v[i].stream, "busy") == 0;
    tu_events_free(&raw);
    assert_int_equal(seen, after);
    size_t n;
    int64_t first;
    stream_span(s->db, "busy", &n, &first);
    assert_int_equal(n, after);
    assert_int_equal(tu_version(s->db, T, "busy"), 400);
}

/* evs_scavenge removes what reads no longer return, nothing else */
static void test_scavenge(void **state)
{
    tu_store *s = *state;
    put(s->db, "gone-1", 50);
    put(s->db, "keep-1", 20);
    put(s->db, "trunc-1", 30);
    put(s->db, "gone-2", 5);
    TU_OK(evs_stream_tombstone(NULL, s->db, T, "gone-1", EVS_ANY));
    TU_OK(evs_stream_delete(NULL, s->db, T, "gone-2", EVS_ANY));
    set_meta(s->db, "trunc-1", 10, 0, 0);
    put(s->db, "keep-1", 5); /* the log moves on */
    tu_events before = {0};
    TU_OK(tu_read_all(&before, s->db, T, 0, 0));
    evs_scavenge_result res;
    int rc = evs_scavenge(&res, s->db, NULL);
    TU_OK(rc);
    assert_int_equal(res.streams, 3);
    /* gone-1: 50; gone-2: all but its last (4); trunc-1: 20 */
    assert_true(res.events_removed <= 50 + 4 + 20);
    if (tu_backend_pg())
        assert_int_equal(res.events_removed, 50 + 4 + 20);
    tu_events after = {0};
    TU_OK(tu_read_all(&after, s->db, T, 0, 0));
    assert_int_equal(after.n, before.n);
    for (size_t i = 0; i < after.n && i < before.n; i++) {
        assert_int_equal(after.v[i].position, before.v[i].position);
        assert_int_equal(after.v[i].stream_version, before.v[i].stream_version);
    }
    tu_events_free(&before);
    tu_events_free(&after);
    size_t n;
    int64_t first;
    stream_span(s->db, "trunc-1", &n, &first);
    assert_int_equal(n, 10);
    assert_int_equal(first, 20);
    assert_int_equal(tu_version(s->db, T, "trunc-1"), 29);
    assert_int_equal(in_query(s->db, "trunc-1"), 10);
    assert_int_equal(in_query_dir(s->db, "trunc-1", EVS_BACKWARD, 0), 10);
    assert_int_equal(in_query(s->db, "gone-1"), 1);
    assert_int_equal(in_query_dir(s->db, "gone-2", EVS_BACKWARD, 0), 0);
    assert_int_equal(tu_version(s->db, T, "gone-2"), 4);
    /* lowering the limit no longer brings removed events back */
    set_meta(s->db, "trunc-1", 0, 0, 0);
    stream_span(s->db, "trunc-1", &n, &first);
    if (tu_backend_pg() || res.events_removed == 74) {
        assert_int_equal(n, 10);
        assert_int_equal(first, 20);
    }
    uint64_t checked;
    TU_OK(evs_verify(&checked, s->db, NULL, NULL));
    /* a second scavenge finds nothing more */
    TU_OK(evs_scavenge(&res, s->db, NULL));
    if (tu_backend_pg())
        assert_int_equal(res.events_removed, 0);
}


/* A scavenge while 8 threads append and a subscriber follows $all:
 * nothing eligible survives, nothing else is lost, the subscriber sees
 * every surviving event once, in order. */
typedef struct online {
    evs_db *db;
    int id;
    uint64_t pos[50];
    _Atomic int *stop;
    uint64_t *seen;
    size_t nseen, cap;
} online;

static void *online_appender(void *arg)
{
    online *o = arg;
    char stream[32];
    snprintf(stream, sizeof(stream), "live-%d", o->id);
    for (int i = 0; i < 50; i++) {
        evs_event_data e = tu_event("e", "{\"x\":1}");
        evs_append_result r;
        if (evs_append(&r, o->db, T, stream, EVS_ANY, &e, 1) != 0) {
            tu_fail("append: %s", evs_last_error());
            return NULL;
        }
        o->pos[i] = r.first_position;
    }
    return NULL;
}

static void *online_follower(void *arg)
{
    online *o = arg;
    evs_tracking t = EVS_TRACKING_INIT;
    t.tenant = T;
    uint64_t after = 0;
    for (;;) {
        int stopping = atomic_load(o->stop);
        uint64_t head;
        if (evs_head_position(&head, o->db, NULL) != 0) {
            tu_fail("head: %s", evs_last_error());
            return NULL;
        }
        evs_iter *it;
        const evs_event *e;
        if (evs_read_tracking(&it, o->db, &t, after, 7, 20000) != 0) {
            tu_fail("tracking: %s", evs_last_error());
            return NULL;
        }
        int rc;
        while ((rc = evs_iter_next(&e, it)) == 0) {
            if (o->nseen == o->cap) {
                o->cap = o->cap ? o->cap * 2 : 1024;
                o->seen = realloc(o->seen, o->cap * sizeof(*o->seen));
            }
            o->seen[o->nseen++] = e->position;
        }
        if (rc != EVS_ITEROVER || evs_iter_marker(&after, it) != 0)
            tu_fail("tracking next: %s", evs_last_error());
        evs_iter_free(it);
        if (stopping && after >= head)
            return NULL;
    }
}

static void test_scavenge_online(void **state)
{
    tu_store *s = *state;
    char name[32];
    /* 1 MiB segments and 4 KB events: the old streams fill sealed
     * segments, which the embedded scavenge rewrites */
    tu_store_close(s);
    if (!tu_backend_pg())
        assert_int_equal(tu_rmrf(s->dir), 0); /* segment_size is fixed at creation */
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    o.segment_size = 1u << 20;
    tu_store_open_opts(s, &o);
    static char big[4096];
    memset(big, 'x', sizeof(big));
    big[0] = '"';
    big[sizeof(big) - 2] = '"';
    big[sizeof(big) - 1] = '\0';
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof(name), "old-%d", i);
        evs_event_data e[30];
        for (int k = 0; k < 30; k++)
            e[k] = tu_event("e", big);
        TU_OK(evs_append(NULL, s->db, T, name, EVS_ANY, e, 30));
    }
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof(name), "old-%d", i);
        if (i % 2)
            TU_OK(evs_stream_tombstone(NULL, s->db, T, name, EVS_ANY));
        else
            set_meta(s->db, name, 5, 0, 0);
    }
    _Atomic int stop = 0;
    online f = {.db = s->db, .stop = &stop};
    pthread_t ft, at[8];
    online a[8];
    pthread_create(&ft, NULL, online_follower, &f);
    for (int i = 0; i < 8; i++) {
        a[i] = (online){.db = s->db, .id = i};
        pthread_create(&at[i], NULL, online_appender, &a[i]);
    }
    evs_scavenge_result res;
    TU_OK(evs_scavenge(&res, s->db, NULL));
    for (int i = 0; i < 8; i++)
        pthread_join(at[i], NULL);
    atomic_store(&stop, 1);
    pthread_join(ft, NULL);
    assert_int_equal(tu_failures(), 0);
    /* once each, in order, every acknowledged append among them */
    for (size_t i = 1; i < f.nseen; i++)
        assert_true(f.seen[i] > f.seen[i - 1]);
    for (int i = 0; i < 8; i++)
        for (int k = 0; k < 50; k++) {
            int found = 0;
            for (size_t j = 0; j < f.nseen && !found; j++)
                found = f.seen[j] == a[i].pos[k];
            if (!found)
                fail_msg("appended position %" PRIu64 " was not seen", a[i].pos[k]);
        }
    /* the subscriber saw 5 of each max-count stream, the tombstones, and
     * nothing else of the old streams */
    tu_events all = {0};
    TU_OK(tu_read_all(&all, s->db, T, 0, 0));
    size_t old = 0;
    for (size_t i = 0; i < all.n; i++)
        old += strncmp(all.v[i].stream, "old-", 4) == 0;
    assert_int_equal(old, 10 * 5 + 10);
    tu_events_free(&all);
    /* nothing eligible survives: lifting the limit shows only what was
     * kept (on the embedded store, what the rewritten segments held) */
    size_t reduced = 0;
    for (int i = 0; i < 20; i += 2) {
        snprintf(name, sizeof(name), "old-%d", i);
        set_meta(s->db, name, 0, 0, 0);
        tu_events got = {0};
        TU_OK(tu_read_stream(&got, s->db, T, name, 0, EVS_FORWARD, 0));
        /* the kept ones are the newest: versions 25..29 always there */
        assert_true(got.n >= 5);
        for (size_t k = 0; k + 1 < got.n; k++)
            assert_true(got.v[k].stream_version < got.v[k + 1].stream_version);
        assert_int_equal(got.v[got.n - 1].stream_version, 29);
        assert_int_equal(got.v[got.n - 5].stream_version, 25);
        reduced += got.n < 30;
        /* queries of the stream's tag step over the removed versions */
        assert_int_equal(in_query(s->db, name), got.n);
        assert_int_equal(in_query_dir(s->db, name, EVS_BACKWARD, 0), got.n);
        assert_int_equal(in_query_dir(s->db, name, EVS_BACKWARD, got.v[got.n - 1].position), got.n - 1);
        if (tu_backend_pg())
            assert_int_equal(got.n, 5);
        tu_events_free(&got);
    }
    /* the embedded store rewrote the sealed segments (the last one, still
     * written, keeps its records) */
    if (!tu_backend_pg()) {
        assert_true(res.segments_rewritten > 0);
        assert_true(reduced > 0);
    }
    if (tu_backend_pg())
        assert_int_equal(res.events_removed, 10 * 25 + 10 * 30);
    free(f.seen);
    uint64_t checked;
    TU_OK(evs_verify(&checked, s->db, NULL, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_metadata_roundtrip, tu_setup_store,
                                        tu_teardown_store),
        cmocka_unit_test_setup_teardown(test_truncate_and_max_count, tu_setup_store,
                                        tu_teardown_store),
        cmocka_unit_test_setup_teardown(test_max_age, tu_setup_store, tu_teardown_store),
        cmocka_unit_test_setup_teardown(test_soft_delete, tu_setup_store, tu_teardown_store),
        cmocka_unit_test_setup_teardown(test_tombstone, tu_setup_store, tu_teardown_store),
        cmocka_unit_test_setup_teardown(test_tombstone_race, tu_setup_store,
                                        tu_teardown_store),
        cmocka_unit_test_setup_teardown(test_delete_race, tu_setup_store, tu_teardown_store),
        cmocka_unit_test_setup_teardown(test_scavenge, tu_setup_store, tu_teardown_store),
        cmocka_unit_test_setup_teardown(test_scavenge_online, tu_setup_store,
                                        tu_teardown_store),
    };
    return cmocka_run_group_tests_name(tu_backend_pg() ? "lifecycle_pg" : "lifecycle", tests,
                                       NULL, NULL);
}
