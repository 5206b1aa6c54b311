/*
 * test_tracking_reads.c -- tracking reads that do not wait
 * (evs_read_tracking with timeout 0): filters by tenant, all tenants,
 * category, types and DCB query, `after`, limits and markers, paging;
 * checkpoint events (system streams) hidden from $all, queries and tracking
 * reads, and user appends to '$' streams refused; the tracking indexes
 * (category postings, the time index behind evs_token_at, checkpoints)
 * after an index catch-up from the log and after a rebuild; bad arguments
 * to evs_read_tracking and the token functions.
 */
#include "fixture_tracking.h"

#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Tracking reads: filters, markers, system streams                    */
/* ------------------------------------------------------------------ */

static void test_tracking_filters(void **state)
{
    tu_store *s = *state;
    evs_tracking t = EVS_TRACKING_INIT;
    uint64_t head;
    const char *cat_tags[1] = {"$category:account"};
    const char *dep_types[1] = {"Deposited"};
    const char *t_wo[2] = {"Withdrawn", "Opened"};
    const char *vip_tags[1] = {"vip:1"};
    evs_query_item items[2];
    evs_query q;

    tu_append1(s->db, NULL, "account-1", "Deposited", "{}");       /* 1 */
    tu_append1(s->db, NULL, "accountX-1", "Deposited", "{}");      /* 2 */
    tu_append1(s->db, NULL, "account-2", "Withdrawn", "{}");       /* 3 */
    tu_append1(s->db, NULL, "other-1", "Deposited", "{}");         /* 4 */
    tu_append1(s->db, NULL, "account", "Opened", "{}");            /* 5 */
    tu_append1(s->db, NULL, "account-1-sub", "Deposited", "{}");   /* 6 */
    tu_append1(s->db, "t1", "account-9", "Deposited", "{}");       /* 7 */
    put_streamless(s->db, NULL, "Opened", "vip:1");                /* 8 */
    tu_append1(s->db, NULL, "acc-1", "Withdrawn", "{}");           /* 9 */
    tu_append1(s->db, NULL, "Account-1", "Deposited", "{}");       /* 10 */
    head = tu_head(s->db, NULL);
    assert_int_equal(head, 10);

    EXPECT_TRACK(s->db, &t, 0, 0, head, "default tenant",
                 PL(1, 2, 3, 4, 5, 6, 8, 9, 10));
    t.category = "account";
    EXPECT_TRACK(s->db, &t, 0, 0, head, "category account", PL(1, 3, 5, 6));
    t.category = "accountX";
    EXPECT_TRACK(s->db, &t, 0, 0, head, "category accountX", PL(2));
    t.category = "nothing";
    EXPECT_TRACK(s->db, &t, 0, 0, head, "category nothing", NONE);
    t.category = NULL;
    t.types = t_wo;
    t.ntypes = 2;
    EXPECT_TRACK(s->db, &t, 0, 0, head, "types Withdrawn|Opened",
                 PL(3, 5, 8, 9));
    /* category and types together: both must hold. */
    t.category = "account";
    EXPECT_TRACK(s->db, &t, 0, 0, head, "account and Withdrawn|Opened",
                 PL(3, 5));
    t.types = dep_types;
    t.ntypes = 1;
    EXPECT_TRACK(s->db, &t, 0, 0, head, "account and Deposited", PL(1, 6));
    t.category = NULL;
    t.types = NULL;
    t.ntypes = 0;

    /* A DCB query: ($category:account AND Deposited) OR tag vip:1. */
    items[0] = (evs_query_item){dep_types, 1, cat_tags, 1};
    items[1] = (evs_query_item){NULL, 0, vip_tags, 1};
    q = (evs_query){items, 2};
    t.query = &q;
    EXPECT_TRACK(s->db, &t, 0, 0, head, "query", PL(1, 6, 8));
    q.nitems = 1;
    EXPECT_TRACK(s->db, &t, 0, 0, head, "query item 0", PL(1, 6));
    /* The query without items: everything of the tenant. */
    q = (evs_query){NULL, 0};
    EXPECT_TRACK(s->db, &t, 0, 0, head, "query all",
                 PL(1, 2, 3, 4, 5, 6, 8, 9, 10));
    t.query = NULL;

    /* Tenants. */
    t.tenant = "t1";
    EXPECT_TRACK(s->db, &t, 0, 0, head, "tenant t1", PL(7));
    t.category = "account";
    EXPECT_TRACK(s->db, &t, 0, 0, head, "tenant t1 category account", PL(7));
    t.category = NULL;
    t.tenant = "";
    EXPECT_TRACK(s->db, &t, 6, 0, head, "tenant \"\" after 6", PL(8, 9, 10));
    t.tenant = NULL;
    t.all_tenants = 1;
    EXPECT_TRACK(s->db, &t, 0, 0, head, "all tenants",
                 PL(1, 2, 3, 4, 5, 6, 7, 8, 9, 10));
    EXPECT_TRACK(s->db, &t, 6, 0, head, "all tenants after 6",
                 PL(7, 8, 9, 10));
    t.all_tenants = 0;

    /* after and limit; the marker of a read stopped by its limit is the
     * last event returned, and reading on from it continues seamlessly. */
    EXPECT_TRACK(s->db, &t, 0, 2, 2, "limit 2", PL(1, 2));
    EXPECT_TRACK(s->db, &t, 2, 2, 4, "after 2 limit 2", PL(3, 4));
    EXPECT_TRACK(s->db, &t, 4, 3, 8, "after 4 limit 3", PL(5, 6, 8));
    EXPECT_TRACK(s->db, &t, 8, 3, head, "after 8 limit 3", PL(9, 10));
    EXPECT_TRACK(s->db, &t, head, 3, head, "after head", NONE);
    t.category = "account";
    EXPECT_TRACK(s->db, &t, 0, 2, 3, "category limit 2", PL(1, 3));
    /* The marker of an exhausted filtered read is past the events that
     * did not match, so the reader never reads them again. */
    EXPECT_TRACK(s->db, &t, 3, 2, 6, "category after 3 limit 2", PL(5, 6));
    EXPECT_TRACK(s->db, &t, 3, 3, head, "category after 3 limit 3",
                 PL(5, 6));
    EXPECT_TRACK(s->db, &t, 6, 0, head, "category after 6", NONE);
}

/* Checkpoint events (system stream "$checkpoint-NAME") never appear in
 * $all, queries or tracking reads, and user appends to '$' streams are
 * rejected. */
static void test_system_streams_hidden(void **state)
{
    tu_store *s = *state;
    evs_tracking t = EVS_TRACKING_INIT;
    evs_query all = {NULL, 0};
    evs_event_data ev = tu_event("Sneaky", "{}");
    evs_stream_append part = {"$checkpoint-c", EVS_ANY, &ev, 1};
    evs_append_request req = EVS_APPEND_REQUEST_INIT;
    const char *tags[1] = {"$stream:$checkpoint-c"};
    evs_query_item item = {NULL, 0, tags, 1};
    evs_query q_cp = {&item, 1};
    tu_events e = {0};
    uint64_t head, marker = 0, p1, p2, p3, p4, cp_c;
    size_t i, nuser = 0;

    p1 = tu_append1(s->db, NULL, "a-1", "E", "{}");
    p2 = tu_append1(s->db, "t1", "a-1", "E", "{}");
    TU_OK(evs_checkpoint_set(s->db, NULL, "c", 1));
    TU_OK(evs_checkpoint_set(s->db, "t1", "c", 2));
    p3 = tu_append1(s->db, NULL, "a-1", "E", "{}");
    cp_c = tu_head(s->db, NULL);
    TU_OK(evs_checkpoint_set(s->db, NULL, "c", cp_c));
    p4 = tu_append1(s->db, NULL, "a-2", "E", "{}");
    head = tu_head(s->db, NULL);
    assert_int_equal(head, p4);
    print_message("user events at %" PRIu64 ", %" PRIu64 ", %" PRIu64
                  ", %" PRIu64 "; head %" PRIu64 "\n",
                  p1, p2, p3, p4, head);

    TU_OK(tu_read_all(&e, s->db, NULL, 0, 0));
    for (i = 0; i < e.n; i++) {
        if (e.v[i].stream[0] == '$')
            print_error("evs_read_all returned %s at %" PRIu64 "\n",
                        e.v[i].stream, e.v[i].position);
        assert_true(e.v[i].stream[0] != '$');
    }
    nuser = e.n;
    assert_int_equal(nuser, 4);
    tu_events_clear(&e);
    TU_OK(tu_read_all(&e, s->db, "", 0, 0));
    assert_int_equal(e.n, 3);
    tu_events_clear(&e);
    TU_OK(tu_read_all(&e, s->db, "t1", 0, 0));
    assert_int_equal(e.n, 1);
    tu_events_clear(&e);
    TU_OK(tu_read_query(&e, &marker, s->db, NULL, &all, 0, EVS_FORWARD, 0));
    assert_int_equal(e.n, 3);
    for (i = 0; i < e.n; i++)
        assert_true(e.v[i].stream[0] != '$');
    tu_events_clear(&e);
    TU_OK(tu_read_query(&e, &marker, s->db, NULL, &all, 0, EVS_BACKWARD, 0));
    assert_int_equal(e.n, 3);
    tu_events_clear(&e);
    /* Not even when asked for by its stream. */
    {
        int rc = tu_read_query(&e, &marker, s->db, NULL, &q_cp, 0,
                               EVS_FORWARD, 0);
        assert_true(rc == 0 || rc == EVS_EINVAL);
        assert_int_equal(e.n, 0);
    }
    tu_events_free(&e);

    EXPECT_TRACK(s->db, &t, 0, 0, head, "tracking", PL(p1, p3, p4));
    EXPECT_TRACK(s->db, &t, p3, 0, head, "tracking after p3", PL(p4));
    t.all_tenants = 1;
    EXPECT_TRACK(s->db, &t, 0, 0, head, "tracking all tenants",
                 PL(p1, p2, p3, p4));
    EXPECT_PAGING(s->db, &t, 1);
    t.all_tenants = 0;
    EXPECT_PAGING(s->db, &t, 1);
    EXPECT_PAGING(s->db, &t, 2);
    t.category = "$checkpoint";
    {
        tu_events e2 = {0};
        int rc = track(&e2, NULL, s->db, &t, 0, 0, 0);
        assert_true(rc == 0 || rc == EVS_EINVAL);
        assert_int_equal(e2.n, 0);
        tu_events_free(&e2);
    }
    t.category = NULL;

    /* User appends to '$' streams: every append path refuses them. */
    REJECT(s->db, evs_append(NULL, s->db, NULL, "$checkpoint-c", EVS_ANY,
                             &ev, 1),
           EVS_EINVAL);
    REJECT(s->db, evs_append(NULL, s->db, "t1", "$mine", EVS_ANY, &ev, 1),
           EVS_EINVAL);
    REJECT(s->db, evs_append_multi(NULL, s->db, NULL, &part, 1), EVS_EINVAL);
    req.parts = &part;
    req.nparts = 1;
    REJECT(s->db, evs_append_ex(NULL, NULL, s->db, &req), EVS_EINVAL);
    {
        uint64_t cp = 0;
        TU_OK(evs_checkpoint_get(&cp, s->db, NULL, "c"));
        assert_int_equal(cp, cp_c);
        TU_OK(evs_checkpoint_get(&cp, s->db, "t1", "c"));
        assert_int_equal(cp, 2);
    }
}

/* ------------------------------------------------------------------ */
/* The new indexes after an index catch-up and a rebuild               */
/* ------------------------------------------------------------------ */

/* What the checks need to know about the store's events. */
typedef struct idx_model {
    int64_t rec[512];      /* recorded_at by position (1-based) */
    int user[512];         /* 1: a user event of the default tenant */
    char cat[512][16];     /* its category */
    uint64_t head;
    uint64_t cp;           /* checkpoint "c" */
} idx_model;

static void idx_model_load(idx_model *m, evs_db *db)
{
    tu_events e = {0};
    size_t i;
    uint64_t p;
    memset(m->user, 0, sizeof m->user);
    m->head = tu_head(db, NULL);
    assert_true(m->head < 512);
    TU_OK(tu_read_all(&e, db, "", 0, 0));
    for (i = 0; i < e.n; i++) {
        const char *d;
        size_t l;
        p = e.v[i].position;
        m->user[p] = 1;
        d = strchr(e.v[i].stream, '-');
        l = d ? (size_t)(d - e.v[i].stream) : strlen(e.v[i].stream);
        snprintf(m->cat[p], sizeof m->cat[p], "%.*s", (int)l, e.v[i].stream);
    }
    tu_events_free(&e);
    /* recorded_at of every position, system events too (by their
     * stream). */
    for (p = 1; p <= m->head; p++)
        m->rec[p] = INT64_MIN;
    TU_OK(tu_read_all(&e, db, NULL, 0, 0));
    for (i = 0; i < e.n; i++)
        m->rec[e.v[i].position] = e.v[i].recorded_at;
    tu_events_free(&e);
    TU_OK(tu_read_stream(&e, db, NULL, "$checkpoint-c", 0, EVS_FORWARD, 0));
    for (i = 0; i < e.n; i++)
        m->rec[e.v[i].position] = e.v[i].recorded_at;
    tu_events_free(&e);
    for (p = 1; p <= m->head; p++)
        assert_true(m->rec[p] != INT64_MIN);
}

static void idx_check(evs_db *db, const idx_model *m, const char *when)
{
    evs_tracking t = EVS_TRACKING_INIT;
    tu_events e = {0};
    uint64_t cp = 0, p, want[512];
    size_t nwant = 0, i;
    int64_t times[] = {INT64_C(1600000000000000) + 1500,
                       INT64_C(1600000000000000) + 2000,
                       INT64_C(1600000000000000) + 2001,
                       INT64_C(1600000000000000) + 9000,
                       INT64_C(1600000000000000) + 9999,
                       INT64_C(1600000000000000) + 10001, 0, INT64_MAX};

    print_message("checking the tracking indexes %s\n", when);
    assert_int_equal(tu_head(db, NULL), m->head);
    /* The category postings. */
    for (p = 1; p <= m->head; p++)
        if (m->user[p] && strcmp(m->cat[p], "acct") == 0)
            want[nwant++] = p;
    t.category = "acct";
    TU_OK(track(&e, NULL, db, &t, 0, 0, 0));
    assert_positions_(&e, want, nwant, "category acct", __FILE__, __LINE__);
    tu_events_clear(&e);
    /* No system event anywhere. */
    t.category = NULL;
    TU_OK(track(&e, NULL, db, &t, 0, 0, 0));
    for (i = 0; i < e.n; i++)
        assert_true(e.v[i].stream[0] != '$');
    nwant = 0;
    for (p = 1; p <= m->head; p++)
        if (m->user[p])
            nwant++;
    assert_int_equal(e.n, nwant);
    tu_events_free(&e);
    /* The checkpoint. */
    TU_OK(evs_checkpoint_get(&cp, db, NULL, "c"));
    assert_int_equal(cp, m->cp);
    /* The time index against the model. */
    for (i = 0; i < sizeof times / sizeof times[0]; i++) {
        uint64_t w = m->head, got;
        for (p = 1; p <= m->head; p++)
            if (m->rec[p] >= times[i]) {
                w = p - 1;
                break;
            }
        got = token_at(db, times[i]);
        if (got != w)
            print_error("%s: token_at(%" PRId64 ") = %" PRIu64
                        ", expected %" PRIu64 "\n",
                        when, times[i], got, w);
        assert_int_equal(got, w);
    }
    /* Aggregates are right whether or not the snapshot survived. */
    {
        evs_snapshot *sn = NULL;
        evs_iter *it = NULL;
        const evs_event *ev;
        int64_t count, v;
        TU_OK(evs_aggregate_load(&sn, &it, db, NULL, "acct-1"));
        count = sn ? json_int(sn->data, "count") : 0;
        v = sn ? sn->version + 1 : 0;
        while (evs_iter_next(&ev, it) == 0) {
            assert_int_equal(ev->stream_version, v);
            v++;
            count++;
        }
        assert_int_equal(count, tu_version(db, NULL, "acct-1") + 1);
        evs_iter_free(it);
        evs_snapshot_free(sn);
    }
}

static void idx_append(evs_db *db, unsigned from, unsigned n)
{
    const int64_t base = INT64_C(1600000000000000);
    unsigned i;
    for (i = from; i < from + n; i++) {
        /* Out of order imported times, and some the store stamps. */
        int64_t at = i % 4 == 3 ? 0 : base + (int64_t)((i * 7919) % 97) * 100;
        evs_event_data ev = tu_event("I", "{}");
        const char *stream = i % 3 == 0 ? "acct-1" : i % 3 == 1 ? "acctX-1"
                                                                : "other-1";
        ev.recorded_at = at;
        TU_OK(evs_append(NULL, db, NULL, stream, EVS_ANY, &ev, 1));
    }
}

static void test_index_catch_up_and_rebuild(void **state)
{
    tu_store *s = *state;
    idx_model m;
    char *index, *saved;
    char snap[64];

    TU_EMBEDDED_ONLY("copies and deletes the index directory");
    index = tu_path_join(s->dir, "index");
    saved = tu_path_join(s->tmp, "index-saved");
    idx_append(s->db, 0, 60);
    TU_OK(evs_checkpoint_set(s->db, NULL, "c", 30));
    snprintf(snap, sizeof snap, "{\"count\":%d}",
             (int)tu_version(s->db, NULL, "acct-1") + 1);
    save_text(s->db, NULL, "acct-1", tu_version(s->db, NULL, "acct-1"), snap);
    tu_store_close(s);
    tu_copy_tree(index, saved);

    tu_store_open(s);
    idx_append(s->db, 60, 60);
    TU_OK(evs_checkpoint_set(s->db, NULL, "c", 90));
    m.cp = 90;
    idx_model_load(&m, s->db);
    idx_check(s->db, &m, "before");
    tu_store_close(s);

    /* The index of before the second batch: the open catches it up. */
    assert_int_equal(tu_rmrf(index), 0);
    tu_copy_tree(saved, index);
    tu_store_open(s);
    idx_check(s->db, &m, "after a catch-up from the log");
    /* Appends go on, and are found. */
    idx_append(s->db, 120, 9);
    TU_OK(evs_checkpoint_set(s->db, NULL, "c", 125));
    m.cp = 125;
    idx_model_load(&m, s->db);
    tu_store_close(s);

    /* No index at all: rebuilt from the log. */
    assert_int_equal(tu_rmrf(index), 0);
    tu_store_open(s);
    idx_check(s->db, &m, "after a rebuild from the log");
    free(index);
    free(saved);
}

/* ------------------------------------------------------------------ */
/* Bad input                                                           */
/* ------------------------------------------------------------------ */

static void test_bad_tracking_arguments(void **state)
{
    tu_store *s = *state;
    evs_tracking t = EVS_TRACKING_INIT;
    evs_query q = {NULL, 0};
    evs_iter *it = NULL;
    uint64_t tok = 0;
    char long_name[EVS_MAX_STREAM_LEN + 2];
    char long_tenant[EVS_MAX_TENANT_LEN + 2];
    const char *null_type[1] = {NULL};
    const char *empty_type[1] = {""};
    const char **many_types;
    size_t i;

    tu_append1(s->db, NULL, "b-1", "E", "{}");
    memset(long_name, 'c', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    memset(long_tenant, 't', sizeof long_tenant - 1);
    long_tenant[sizeof long_tenant - 1] = '\0';

#define BAD_T(mod)                                                           \
    do {                                                                     \
        t = (evs_tracking)EVS_TRACKING_INIT;                                 \
        mod;                                                                 \
        it = (evs_iter *)1;                                                  \
        REJECT(s->db, evs_read_tracking(&it, s->db, &t, 0, 0, 0),           \
               EVS_EINVAL);                                                  \
    } while (0)

    BAD_T(t.group_member = 4; t.group_size = 4);
    BAD_T(t.group_member = 7; t.group_size = 2);
    BAD_T(t.group_size = 1025);
    BAD_T(t.group_member = 1024; t.group_size = 1024);
    BAD_T(t.group_member = 1; t.group_size = 1); /* member >= size */
    BAD_T(t.query = &q; t.category = "account");
    BAD_T(t.query = &q; t.types = STRS("A"); t.ntypes = 1);
    BAD_T(t.all_tenants = 1; t.tenant = "a");
    BAD_T(t.all_tenants = 1; t.category = "account");
    BAD_T(t.all_tenants = 1; t.types = STRS("A"); t.ntypes = 1);
    BAD_T(t.all_tenants = 1; t.query = &q);
    BAD_T(t.version = 0);
    BAD_T(t.version = EVS_TRACKING_VERSION + 1);
    BAD_T(t.category = "");
    BAD_T(t.category = long_name);
    BAD_T(t.category = "bad\xff");
    BAD_T(t.tenant = long_tenant);
    BAD_T(t.types = NULL; t.ntypes = 1);
    BAD_T(t.types = null_type; t.ntypes = 1);
    BAD_T(t.types = empty_type; t.ntypes = 1);
    many_types = calloc(EVS_MAX_QUERY_TERMS + 1, sizeof *many_types);
    assert_non_null(many_types);
    for (i = 0; i <= EVS_MAX_QUERY_TERMS; i++)
        many_types[i] = "T";
    BAD_T(t.types = many_types; t.ntypes = EVS_MAX_QUERY_TERMS + 1);
    free(many_types);
    {
        evs_query_item bad_item = {NULL, 1, NULL, 0};
        evs_query bq = {&bad_item, 1};
        BAD_T(t.query = &bq);
    }

    /* Timeouts below 0 other than EVS_WAIT_FOREVER. */
    t = (evs_tracking)EVS_TRACKING_INIT;
    REJECT(s->db, evs_read_tracking(&it, s->db, &t, 0, 0, -2), EVS_EINVAL);
    REJECT(s->db, evs_read_tracking(&it, s->db, &t, 0, 0, INT64_MIN),
           EVS_EINVAL);
    /* NULL arguments. */
    REJECT(s->db, evs_read_tracking(NULL, s->db, &t, 0, 0, 0), EVS_EINVAL);
    REJECT(s->db, evs_read_tracking(&it, s->db, NULL, 0, 0, 0), EVS_EINVAL);
    TU_CHECK(evs_read_tracking(&it, NULL, &t, 0, 0, 0), EVS_EINVAL);
#undef BAD_T

    /* The limits themselves are fine. */
    t.group_member = 1023;
    t.group_size = 1024;
    TU_OK(evs_read_tracking(&it, s->db, &t, 0, 0, 0));
    evs_iter_free(it);
    t = (evs_tracking)EVS_TRACKING_INIT;
    t.category = long_name + 1; /* 256 bytes */
    TU_OK(evs_read_tracking(&it, s->db, &t, 0, 0, 0));
    evs_iter_free(it);
    t = (evs_tracking)EVS_TRACKING_INIT;
    t.all_tenants = 1;
    t.group_member = 1;
    t.group_size = 2; /* a group is not a filter */
    TU_OK(evs_read_tracking(&it, s->db, &t, 0, 0, 0));
    evs_iter_free(it);

    /* After the largest token: nothing, at once. */
    {
        tu_events e = {0};
        const char *cat_tags[1] = {"$category:b"};
        evs_query_item item = {NULL, 0, cat_tags, 1};
        evs_query cq = {&item, 1};
        t = (evs_tracking)EVS_TRACKING_INIT;
        TU_OK(track(&e, NULL, s->db, &t, UINT64_MAX, 0, 0));
        assert_int_equal(e.n, 0);
        t.query = &cq;
        TU_OK(track(&e, NULL, s->db, &t, UINT64_MAX, 0, 0));
        assert_int_equal(e.n, 0);
        TU_OK(track(&e, NULL, s->db, &t, 0, 0, 0));
        assert_int_equal(e.n, 1);
        tu_events_free(&e);
    }

    /* Tokens. */
    TU_CHECK(evs_token_head(NULL, s->db, NULL), EVS_EINVAL);
    TU_CHECK(evs_token_head(&tok, NULL, NULL), EVS_EINVAL);
    TU_CHECK(evs_token_head(&tok, s->db, long_tenant), EVS_EINVAL);
    TU_CHECK(evs_token_tail(NULL, s->db, NULL), EVS_EINVAL);
    TU_CHECK(evs_token_tail(&tok, NULL, NULL), EVS_EINVAL);
    TU_CHECK(evs_token_tail(&tok, s->db, long_tenant), EVS_EINVAL);
    TU_CHECK(evs_token_at(NULL, s->db, 0), EVS_EINVAL);
    TU_CHECK(evs_token_at(&tok, NULL, 0), EVS_EINVAL);

    /* Still usable: a tracking read finds what was appended. */
    {
        tu_events e = {0};
        t = (evs_tracking)EVS_TRACKING_INIT;
        TU_OK(track(&e, NULL, s->db, &t, 0, 0, 0));
        assert_true(e.n >= 1);
        assert_string_equal(e.v[0].stream, "b-1");
        tu_events_free(&e);
    }
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_tracking_filters),
        T(test_system_streams_hidden),
        T(test_index_catch_up_and_rebuild),
        T(test_bad_tracking_arguments),
    };
#undef T
    signal(SIGALRM, on_alarm);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
