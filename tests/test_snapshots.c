/*
 * test_snapshots.c -- snapshots and aggregate loads: evs_snapshot_save/load
 * (at or below a version, replaced, binary and empty data, per stream and
 * tenant), how many are kept (snapshot_keep), bad input, evs_aggregate_load
 * (the snapshot and the events after it) and snapshots across a reopen and
 * on a read-only store.
 */
#include "fixture_tracking.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Snapshots                                                           */
/* ------------------------------------------------------------------ */

static void append_n(evs_db *db, const char *tenant, const char *stream,
                     unsigned n)
{
    unsigned i;
    for (i = 0; i < n; i++) {
        char data[48];
        evs_event_data ev;
        snprintf(data, sizeof data, "{\"amount\":%u}", i + 1);
        ev = tu_event("Deposited", data);
        TU_OK(evs_append(NULL, db, tenant, stream, EVS_ANY, &ev, 1));
    }
}

/* Load with max_version; assert its version and data. */
static void expect_snap_(evs_db *db, const char *tenant, const char *stream,
                         int64_t max_version, int64_t want_version,
                         const char *want_data, const char *file, int line)
{
    evs_snapshot *sn = NULL;
    int rc = evs_snapshot_load(&sn, db, tenant, stream, max_version);
    if (rc != 0)
        tu_report_rc("evs_snapshot_load", rc, 0, file, line);
    assert_int_equal(rc, 0);
    assert_non_null(sn);
    if (sn->version != want_version)
        print_error("%s:%d: snapshot of %s at or below %" PRId64
                    ": version %" PRId64 ", expected %" PRId64 "\n",
                    file, line, stream, max_version, sn->version,
                    want_version);
    assert_int_equal(sn->version, want_version);
    assert_int_equal(sn->data_len, strlen(want_data));
    assert_memory_equal(sn->data, want_data, sn->data_len);
    assert_int_equal(((const char *)sn->data)[sn->data_len], '\0');
    evs_snapshot_free(sn);
}
#define EXPECT_SNAP(db, tenant, stream, maxv, v, data)                       \
    expect_snap_(db, tenant, stream, maxv, v, data, __FILE__, __LINE__)

static void expect_no_snap(evs_db *db, const char *tenant,
                           const char *stream, int64_t max_version)
{
    evs_snapshot *sn = (evs_snapshot *)1;
    TU_CHECK(evs_snapshot_load(&sn, db, tenant, stream, max_version),
             EVS_ENOTFOUND);
    assert_null(sn);
}

static void test_snapshots_save_load(void **state)
{
    tu_store *s = *state;
    evs_snapshot *sn = NULL;
    int64_t before, after;
    uint64_t head;
    static const unsigned char bin[5] = {1, 0, 2, 0, 3};

    append_n(s->db, NULL, "acct-1", 10);
    head = tu_head(s->db, NULL);
    expect_no_snap(s->db, NULL, "acct-1", EVS_END);
    expect_no_snap(s->db, NULL, "never-written", EVS_END);

    before = tu_now_us();
    save_text(s->db, NULL, "acct-1", 2, "{\"v\":2}");
    after = tu_now_us();
    save_text(s->db, NULL, "acct-1", 4, "{\"v\":4}");
    save_text(s->db, NULL, "acct-1", 0, "{\"v\":0}");
    /* A cache in the index, not in the log: no event written. */
    assert_int_equal(tu_head(s->db, NULL), head);

    TU_OK(evs_snapshot_load(&sn, s->db, NULL, "acct-1", 2));
    assert_int_equal(sn->version, 2);
    assert_string_equal(sn->schema, "acct.v1");
    assert_int_equal(sn->data_len, 7);
    assert_memory_equal(sn->data, "{\"v\":2}", 7);
    assert_true(sn->saved_at >= before - 2000000 &&
                sn->saved_at <= after + 2000000);
    evs_snapshot_free(sn);
    evs_snapshot_free(NULL);

    EXPECT_SNAP(s->db, NULL, "acct-1", EVS_END, 4, "{\"v\":4}");
    EXPECT_SNAP(s->db, NULL, "acct-1", 9, 4, "{\"v\":4}");
    EXPECT_SNAP(s->db, NULL, "acct-1", 4, 4, "{\"v\":4}");
    EXPECT_SNAP(s->db, NULL, "acct-1", 3, 2, "{\"v\":2}");
    EXPECT_SNAP(s->db, NULL, "acct-1", 1, 0, "{\"v\":0}");
    EXPECT_SNAP(s->db, NULL, "acct-1", 0, 0, "{\"v\":0}");

    /* Saving a version again replaces it. */
    save_text(s->db, NULL, "acct-1", 2, "{\"v\":\"2b\"}");
    EXPECT_SNAP(s->db, NULL, "acct-1", 3, 2, "{\"v\":\"2b\"}");

    /* The last version of the stream; binary data with NULs; empty data. */
    TU_OK(evs_snapshot_save(s->db, NULL, "acct-1", 9, "bin", bin, 5));
    TU_OK(evs_snapshot_load(&sn, s->db, NULL, "acct-1", EVS_END));
    assert_int_equal(sn->version, 9);
    assert_string_equal(sn->schema, "bin");
    assert_int_equal(sn->data_len, 5);
    assert_memory_equal(sn->data, bin, 5);
    assert_int_equal(((const char *)sn->data)[5], '\0');
    evs_snapshot_free(sn);
    append_n(s->db, NULL, "acct-2", 1);
    TU_OK(evs_snapshot_save(s->db, NULL, "acct-2", 0, "empty", NULL, 0));
    TU_OK(evs_snapshot_load(&sn, s->db, NULL, "acct-2", EVS_END));
    assert_int_equal(sn->version, 0);
    assert_int_equal(sn->data_len, 0);
    assert_non_null(sn->data);
    assert_int_equal(((const char *)sn->data)[0], '\0');
    evs_snapshot_free(sn);

    /* Per stream and per tenant. */
    append_n(s->db, "ta", "acct-1", 3);
    expect_no_snap(s->db, "ta", "acct-1", EVS_END);
    save_text(s->db, "ta", "acct-1", 1, "{\"ta\":1}");
    EXPECT_SNAP(s->db, "ta", "acct-1", EVS_END, 1, "{\"ta\":1}");
    EXPECT_SNAP(s->db, NULL, "acct-1", 8, 4, "{\"v\":4}");
    expect_no_snap(s->db, "tb", "acct-1", EVS_END);
}

static void test_snapshots_keep_latest(void **state)
{
    tu_store *s = *state; /* not open */
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    int64_t v;

    o.snapshot_keep = 2;
    o.segment_size = SEGMENT_SIZE;
    tu_store_open_opts(s, &o);
    append_n(s->db, NULL, "k-1", 10);
    append_n(s->db, NULL, "k-2", 10);
    for (v = 0; v < 5; v++) {
        char d[32];
        snprintf(d, sizeof d, "{\"v\":%d}", (int)v);
        save_text(s->db, NULL, "k-1", v, d);
    }
    save_text(s->db, NULL, "k-2", 1, "{\"k2\":1}");
    EXPECT_SNAP(s->db, NULL, "k-1", EVS_END, 4, "{\"v\":4}");
    EXPECT_SNAP(s->db, NULL, "k-1", 3, 3, "{\"v\":3}");
    expect_no_snap(s->db, NULL, "k-1", 2);
    expect_no_snap(s->db, NULL, "k-1", 0);
    /* Another stream's snapshots are counted apart. */
    EXPECT_SNAP(s->db, NULL, "k-2", EVS_END, 1, "{\"k2\":1}");
    tu_store_close(s);

    /* Survives a reopen (with the default keep, 3). */
    tu_store_open(s);
    EXPECT_SNAP(s->db, NULL, "k-1", EVS_END, 4, "{\"v\":4}");
    EXPECT_SNAP(s->db, NULL, "k-1", 3, 3, "{\"v\":3}");
    expect_no_snap(s->db, NULL, "k-1", 2);
    for (v = 5; v < 10; v++)
        save_text(s->db, NULL, "k-1", v, "{}");
    EXPECT_SNAP(s->db, NULL, "k-1", EVS_END, 9, "{}");
    EXPECT_SNAP(s->db, NULL, "k-1", 7, 7, "{}");
    expect_no_snap(s->db, NULL, "k-1", 6);
    tu_store_close(s);

    /* A version 1 options struct (no snapshot_keep): the default, 3. */
    o = (evs_open_options)EVS_OPEN_OPTIONS_INIT;
    o.version = 1;
    o.snapshot_keep = 1; /* not part of a version 1 struct: not read */
    tu_store_open_opts(s, &o);
    append_n(s->db, NULL, "k-3", 6);
    for (v = 0; v < 6; v++)
        save_text(s->db, NULL, "k-3", v, "{}");
    EXPECT_SNAP(s->db, NULL, "k-3", 3, 3, "{}");
    expect_no_snap(s->db, NULL, "k-3", 2);
    tu_store_close(s);

    /* keep 1 */
    o = (evs_open_options)EVS_OPEN_OPTIONS_INIT;
    o.snapshot_keep = 1;
    tu_store_open_opts(s, &o);
    save_text(s->db, NULL, "k-2", 5, "{\"k2\":5}");
    EXPECT_SNAP(s->db, NULL, "k-2", EVS_END, 5, "{\"k2\":5}");
    expect_no_snap(s->db, NULL, "k-2", 4);
    tu_store_close(s);

    /* Out of range. */
    {
        evs_db *db = (evs_db *)1;
        o = (evs_open_options)EVS_OPEN_OPTIONS_INIT;
        o.snapshot_keep = 1001;
        TU_CHECK(evs_open(&db, s->dir, &o), EVS_EINVAL);
        assert_null(db);
        o.snapshot_keep = 1000;
        tu_store_open_opts(s, &o);
    }
}

static void test_snapshots_bad_input(void **state)
{
    tu_store *s = *state;
    evs_snapshot *sn = (evs_snapshot *)1;
    char schema257[258];
    char long_stream[EVS_MAX_STREAM_LEN + 2];
    void *huge;

    append_n(s->db, NULL, "acct-1", 3); /* versions 0..2 */

    /* Beyond the stream: the message gives the stream's version. */
    REJECT(s->db, evs_snapshot_save(s->db, NULL, "acct-1", 3, "s", "{}", 2),
           EVS_EINVAL);
    TU_CHECK(evs_snapshot_save(s->db, NULL, "acct-1", 7, "s", "{}", 2),
             EVS_EINVAL);
    assert_true(tu_contains_number(evs_last_error(), 2));
    /* A stream that does not exist (also: only in another tenant). */
    REJECT(s->db, evs_snapshot_save(s->db, NULL, "nope-1", 0, "s", "{}", 2),
           EVS_EINVAL);
    REJECT(s->db, evs_snapshot_save(s->db, "ta", "acct-1", 0, "s", "{}", 2),
           EVS_EINVAL);
    REJECT(s->db, evs_snapshot_save(s->db, NULL, "acct-1", -1, "s", "{}", 2),
           EVS_EINVAL);
    REJECT(s->db, evs_snapshot_save(s->db, NULL, "acct-1", EVS_END, "s",
                                    "{}", 2),
           EVS_EINVAL);
    REJECT(s->db, evs_snapshot_save(s->db, NULL, "acct-1", 0, "s", NULL, 2),
           EVS_EINVAL);
    REJECT(s->db, evs_snapshot_save(s->db, NULL, "acct-1", 0, NULL, "{}", 2),
           EVS_EINVAL);
    REJECT(s->db, evs_snapshot_save(s->db, NULL, "acct-1", 0, "", "{}", 2),
           EVS_EINVAL);
    memset(schema257, 's', 257);
    schema257[257] = '\0';
    REJECT(s->db, evs_snapshot_save(s->db, NULL, "acct-1", 0, schema257,
                                    "{}", 2),
           EVS_EINVAL);
    schema257[256] = '\0';
    TU_OK(evs_snapshot_save(s->db, NULL, "acct-1", 0, schema257, "{}", 2));
    REJECT(s->db, evs_snapshot_save(s->db, NULL, NULL, 0, "s", "{}", 2),
           EVS_EINVAL);
    REJECT(s->db, evs_snapshot_save(s->db, NULL, "", 0, "s", "{}", 2),
           EVS_EINVAL);
    memset(long_stream, 'x', sizeof long_stream - 1);
    long_stream[sizeof long_stream - 1] = '\0';
    REJECT(s->db, evs_snapshot_save(s->db, NULL, long_stream, 0, "s", "{}",
                                    2),
           EVS_EINVAL);
    TU_CHECK(evs_snapshot_save(NULL, NULL, "acct-1", 0, "s", "{}", 2),
             EVS_EINVAL);
    /* Over EVS_MAX_SNAPSHOT_SIZE. */
    huge = calloc(1, (size_t)EVS_MAX_SNAPSHOT_SIZE + 1);
    assert_non_null(huge);
    REJECT(s->db, evs_snapshot_save(s->db, NULL, "acct-1", 0, "s", huge,
                                    (size_t)EVS_MAX_SNAPSHOT_SIZE + 1),
           EVS_ETOOBIG);
    free(huge);

    /* Loads. */
    TU_CHECK(evs_snapshot_load(NULL, s->db, NULL, "acct-1", EVS_END),
             EVS_EINVAL);
    TU_CHECK(evs_snapshot_load(&sn, NULL, NULL, "acct-1", EVS_END),
             EVS_EINVAL);
    TU_CHECK(evs_snapshot_load(&sn, s->db, NULL, NULL, EVS_END), EVS_EINVAL);
    TU_CHECK(evs_snapshot_load(&sn, s->db, NULL, "", EVS_END), EVS_EINVAL);
    {
        evs_snapshot *a = (evs_snapshot *)1;
        evs_iter *it = (evs_iter *)1;
        TU_CHECK(evs_aggregate_load(&a, &it, s->db, NULL, NULL), EVS_EINVAL);
        assert_null(a);
        assert_null(it);
        TU_CHECK(evs_aggregate_load(NULL, &it, s->db, NULL, "acct-1"),
                 EVS_EINVAL);
        TU_CHECK(evs_aggregate_load(&a, NULL, s->db, NULL, "acct-1"),
                 EVS_EINVAL);
        TU_CHECK(evs_aggregate_load(&a, &it, NULL, NULL, "acct-1"),
                 EVS_EINVAL);
    }
}

/* The fold of an account: sum and count of the amounts. */
typedef struct acct_state {
    int64_t balance, count;
} acct_state;

static void fold_events(acct_state *a, evs_iter *it, int64_t first_version)
{
    const evs_event *e;
    int64_t v = first_version;
    int rc;
    while ((rc = evs_iter_next(&e, it)) == 0) {
        assert_int_equal(e->stream_version, v);
        v++;
        a->balance += json_int(e->data, "amount");
        a->count++;
    }
    assert_int_equal(rc, EVS_ITEROVER);
}

static acct_state aggregate(evs_db *db, const char *tenant, const char *stream,
                      int64_t *snap_version)
{
    evs_snapshot *sn = (evs_snapshot *)1;
    evs_iter *it = NULL;
    acct_state a = {0, 0};
    TU_OK(evs_aggregate_load(&sn, &it, db, tenant, stream));
    assert_non_null(it);
    if (sn != NULL) {
        char buf[128];
        assert_true(sn->data_len < sizeof buf);
        memcpy(buf, sn->data, sn->data_len);
        buf[sn->data_len] = '\0';
        a.balance = json_int(buf, "balance");
        a.count = json_int(buf, "count");
        *snap_version = sn->version;
        fold_events(&a, it, sn->version + 1);
    } else {
        *snap_version = -1;
        fold_events(&a, it, 0);
    }
    evs_snapshot_free(sn);
    evs_iter_free(it);
    return a;
}

static void test_aggregate_load(void **state)
{
    tu_store *s = *state;
    acct_state full = {0, 0}, a;
    int64_t sv = 0;
    evs_iter *it = NULL;
    char d[96];
    int i;

    append_n(s->db, NULL, "acct-1", 50); /* amounts 1..50 */
    append_n(s->db, NULL, "acct-2", 5);  /* noise */
    TU_OK(evs_read_stream(&it, s->db, NULL, "acct-1", 0, EVS_FORWARD, 0));
    fold_events(&full, it, 0);
    evs_iter_free(it);
    assert_int_equal(full.balance, 50 * 51 / 2);

    /* No snapshot: NULL and every event. */
    a = aggregate(s->db, NULL, "acct-1", &sv);
    assert_int_equal(sv, -1);
    assert_int_equal(a.balance, full.balance);
    assert_int_equal(a.count, 50);

    /* A snapshot at version 19: state of amounts 1..20, then 30 events. */
    snprintf(d, sizeof d, "{\"balance\":%d,\"count\":%d}", 20 * 21 / 2, 20);
    save_text(s->db, NULL, "acct-1", 19, d);
    a = aggregate(s->db, NULL, "acct-1", &sv);
    assert_int_equal(sv, 19);
    assert_int_equal(a.balance, full.balance);
    assert_int_equal(a.count, 50);

    /* A snapshot at the last version: no events after it. */
    snprintf(d, sizeof d, "{\"balance\":%d,\"count\":%d}", 50 * 51 / 2, 50);
    save_text(s->db, NULL, "acct-1", 49, d);
    {
        evs_snapshot *sn = NULL;
        const evs_event *e;
        TU_OK(evs_aggregate_load(&sn, &it, s->db, NULL, "acct-1"));
        assert_non_null(sn);
        assert_int_equal(sn->version, 49);
        assert_int_equal(evs_iter_next(&e, it), EVS_ITEROVER);
        evs_iter_free(it);
        evs_snapshot_free(sn);
    }
    /* More events: snapshot + the new ones. */
    for (i = 0; i < 5; i++)
        tu_append1(s->db, NULL, "acct-1", "Deposited", "{\"amount\":100}");
    a = aggregate(s->db, NULL, "acct-1", &sv);
    assert_int_equal(sv, 49);
    assert_int_equal(a.balance, full.balance + 500);
    assert_int_equal(a.count, 55);

    /* A stream without events: nothing, not an error. */
    a = aggregate(s->db, NULL, "empty-1", &sv);
    assert_int_equal(sv, -1);
    assert_int_equal(a.count, 0);
    /* Tenant separation. */
    append_n(s->db, "ta", "acct-1", 4);
    a = aggregate(s->db, "ta", "acct-1", &sv);
    assert_int_equal(sv, -1);
    assert_int_equal(a.balance, 10);
    assert_int_equal(a.count, 4);
}

static void test_snapshots_readonly_and_reopen(void **state)
{
    tu_store *s = *state;
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    evs_snapshot *sn = NULL;
    evs_iter *it = NULL;

    append_n(s->db, NULL, "acct-1", 5);
    save_text(s->db, NULL, "acct-1", 3, "{\"balance\":10,\"count\":4}");
    tu_store_reopen(s);
    EXPECT_SNAP(s->db, NULL, "acct-1", EVS_END, 3,
                "{\"balance\":10,\"count\":4}");
    tu_store_close(s);

    o.flags = EVS_OPEN_READONLY;
    tu_store_open_opts(s, &o);
    TU_CHECK(evs_snapshot_save(s->db, NULL, "acct-1", 4, "s", "{}", 2),
             EVS_EREADONLY);
    EXPECT_SNAP(s->db, NULL, "acct-1", EVS_END, 3,
                "{\"balance\":10,\"count\":4}");
    TU_OK(evs_aggregate_load(&sn, &it, s->db, NULL, "acct-1"));
    assert_non_null(sn);
    assert_int_equal(sn->version, 3);
    {
        acct_state a = {10, 4};
        fold_events(&a, it, 4);
        assert_int_equal(a.balance, 15);
        assert_int_equal(a.count, 5);
    }
    evs_iter_free(it);
    evs_snapshot_free(sn);
    tu_store_close(s);
    tu_store_open(s);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define TC(fn) cmocka_unit_test_setup_teardown(fn, setup_closed, teardown)
    const struct CMUnitTest tests[] = {
        T(test_snapshots_save_load),
        TC(test_snapshots_keep_latest),
        T(test_snapshots_bad_input),
        T(test_aggregate_load),
        T(test_snapshots_readonly_and_reopen),
    };
#undef T
#undef TC
    signal(SIGALRM, on_alarm);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
