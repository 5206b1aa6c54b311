/*
 * test_dcb_persistence.c -- the tag index persists: a random data set's
 * queries (checked against a small model) give the same answers after
 * reopening, after the index directory is deleted and rebuilt from the log,
 * and across many log segments, also on a read-only open.
 */
#include "fixture_dcb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Persistence                                                         */
/* ------------------------------------------------------------------ */

/* The persistence data set and its queries, answers computed by a tiny
 * model of it. */
#define P_EVENTS 400
typedef struct p_event {
    int tenant; /* 0 = "", 1 = "pt" */
    int stream; /* -1 none, else "ps<k>" */
    int type;   /* "PT<k>" */
    unsigned tagmask; /* bit k: "pk:<k>"; bit 8: derived "who:<k%3>" */
    int who;
} p_event;

static const char *p_tenant(int t)
{
    return t ? "pt" : NULL;
}

static void p_build(evs_db *db, p_event *ev)
{
    tu_rng r;
    size_t i;
    tu_rng_init(&r, 4242);
    for (i = 0; i < P_EVENTS;) {
        size_t n = (size_t)tu_rng_range(&r, 1, 4), j;
        int tenant = (int)tu_rng_range(&r, 0, 1);
        int stream = (int)tu_rng_range(&r, 0, 3) - 1;
        evs_event_data d[4];
        char tags[4][8][16], json[4][48], sname[16];
        const char *tp[4][8];
        evs_stream_append part;
        evs_append_request req = EVS_APPEND_REQUEST_INIT;
        if (i + n > P_EVENTS)
            n = P_EVENTS - i;
        for (j = 0; j < n; j++) {
            p_event *e = &ev[i + j];
            size_t k, nt = 0;
            e->tenant = tenant;
            e->stream = stream;
            e->type = (int)tu_rng_range(&r, 0, 3);
            e->tagmask = (unsigned)tu_rng_range(&r, 0, 255) &
                         (unsigned)tu_rng_range(&r, 0, 255);
            e->who = (int)tu_rng_range(&r, 0, 3); /* 3: no field */
            for (k = 0; k < 8; k++)
                if (e->tagmask & (1u << k)) {
                    snprintf(tags[j][nt], sizeof tags[j][nt], "pk:%zu", k);
                    tp[j][nt] = tags[j][nt];
                    nt++;
                }
            if (e->who < 3)
                snprintf(json[j], sizeof json[j], "{\"who\":%d,\"i\":%zu}",
                         e->who, i + j);
            else
                snprintf(json[j], sizeof json[j], "{\"i\":%zu}", i + j);
            d[j] = tev_(e->type == 0   ? "PT0"
                        : e->type == 1 ? "PT1"
                        : e->type == 2 ? "PT2"
                                       : "PT3",
                        json[j], tp[j], nt);
        }
        snprintf(sname, sizeof sname, "ps%d", stream);
        part = (evs_stream_append){stream < 0 ? NULL : sname, EVS_ANY, d, n};
        req.tenant = p_tenant(tenant);
        req.parts = &part;
        req.nparts = 1;
        req.tag_fields = STRS("who");
        req.ntag_fields = 1;
        TU_OK(evs_append_ex(NULL, NULL, db, &req));
        i += n;
    }
}

/* Query k of the persistence set: a type set, a tag set, a stream, a
 * derived tag; the model's match. */
#define P_QUERIES 8
static evs_query p_query(int k, evs_query_item *items)
{
    static const char *const t01[] = {"PT0", "PT1"}, *const t3[] = {"PT3"};
    static const char *const k1[] = {"pk:1"}, *const k23[] = {"pk:2", "pk:3"};
    static const char *const s1[] = {"$stream:ps1"}, *const w2[] = {"who:2"};
    static const char *const w0k5[] = {"who:0", "pk:5"};
    memset(items, 0, 3 * sizeof *items);
    switch (k) {
    case 0: items[0] = (evs_query_item){t01, 2, NULL, 0}; return (evs_query){items, 1};
    case 1: items[0] = (evs_query_item){NULL, 0, k1, 1}; return (evs_query){items, 1};
    case 2: items[0] = (evs_query_item){t3, 1, k23, 2}; return (evs_query){items, 1};
    case 3: items[0] = (evs_query_item){NULL, 0, s1, 1}; return (evs_query){items, 1};
    case 4: items[0] = (evs_query_item){NULL, 0, w2, 1}; return (evs_query){items, 1};
    case 5:
        items[0] = (evs_query_item){t3, 1, w0k5, 2};
        items[1] = (evs_query_item){NULL, 0, s1, 1};
        items[2] = (evs_query_item){t01, 2, k23, 2};
        return (evs_query){items, 3};
    case 6: return (evs_query){NULL, 0};
    default: items[0] = (evs_query_item){t01, 2, s1, 1}; return (evs_query){items, 1};
    }
}

static int p_matches(int k, const p_event *e)
{
    int t01 = e->type <= 1, t3 = e->type == 3;
    int k1 = (e->tagmask >> 1) & 1, k23 = ((e->tagmask >> 2) & 3) == 3;
    int s1 = e->stream == 1;
    switch (k) {
    case 0: return t01;
    case 1: return k1;
    case 2: return t3 && k23;
    case 3: return s1;
    case 4: return e->who == 2;
    case 5:
        return (t3 && e->who == 0 && ((e->tagmask >> 5) & 1)) || s1 ||
               (t01 && k23);
    case 6: return 1;
    default: return t01 && s1;
    }
}

static void p_check(evs_db *db, const p_event *ev, size_t nev)
{
    int k, t, dir;
    for (t = 0; t < 2; t++)
        for (k = 0; k < P_QUERIES; k++)
            for (dir = 0; dir < 2; dir++) {
                evs_query_item items[3];
                evs_query q = p_query(k, items);
                uint64_t *want = malloc((nev + 1) * sizeof *want);
                size_t n = 0, i;
                tu_events e;
                char what[64];
                assert_non_null(want);
                for (i = 0; i < nev; i++) {
                    size_t j = dir ? nev - 1 - i : i;
                    if (ev[j].tenant == t && p_matches(k, &ev[j]))
                        want[n++] = j + 1;
                }
                e = query_events(db, p_tenant(t), q, 0, dir ? BWD : FWD, 0,
                                 NULL);
                snprintf(what, sizeof what, "tenant %d query %d %s", t, k,
                         dir ? "backward" : "forward");
                assert_positions_(&e, want, n, what, __FILE__, __LINE__);
                tu_events_free(&e);
                free(want);
            }
}

static void test_persistence_reopen(void **state)
{
    tu_store *s = *state;
    p_event *ev = calloc(P_EVENTS + 1, sizeof *ev);
    assert_non_null(ev);
    p_build(s->db, ev);
    p_check(s->db, ev, P_EVENTS);
    tu_store_reopen(s);
    p_check(s->db, ev, P_EVENTS);
    /* Appends after the reopen land in the same postings. */
    ev[P_EVENTS] = (p_event){0, 1, 0, 0x2, 2};
    {
        evs_event_data d = TEV("PT0", "{\"who\":2}", "pk:1");
        evs_stream_append part = {"ps1", EVS_ANY, &d, 1};
        evs_append_request req = EVS_APPEND_REQUEST_INIT;
        req.parts = &part;
        req.nparts = 1;
        req.tag_fields = STRS("who");
        req.ntag_fields = 1;
        TU_OK(evs_append_ex(NULL, NULL, s->db, &req));
    }
    p_check(s->db, ev, P_EVENTS + 1);
    tu_store_reopen(s);
    p_check(s->db, ev, P_EVENTS + 1);
    TU_OK(evs_verify(NULL, s->db, NULL, NULL));
    free(ev);
}

static void test_persistence_index_rebuilt(void **state)
{
    tu_store *s = *state;
    p_event *ev;
    char *index;
    uint64_t checked = 0;
    TU_EMBEDDED_ONLY("deletes the index directory");
    ev = calloc(P_EVENTS + 1, sizeof *ev);
    index = tu_path_join(s->dir, "index");
    assert_non_null(ev);
    p_build(s->db, ev);
    p_check(s->db, ev, P_EVENTS);
    tu_store_close(s);
    assert_int_equal(tu_rmrf(index), 0);
    tu_store_open(s);
    p_check(s->db, ev, P_EVENTS);
    TU_OK(evs_verify(&checked, s->db, NULL, NULL));
    assert_int_equal(checked, P_EVENTS);
    /* Conditions work against the rebuilt postings. */
    {
        evs_query_item items[3];
        evs_append_condition c = {p_query(4, items), 0};
        evs_event_data d = TEV0("Probe", "{}");
        uint64_t conf = 0, first = 0;
        size_t i;
        for (i = 0; i < P_EVENTS && !first; i++)
            if (ev[i].tenant == 1 && p_matches(4, &ev[i]))
                first = i + 1;
        assert_true(first > 0);
        TU_CHECK(evs_dcb_append(NULL, &conf, s->db, "pt", &d, 1, &c),
                 EVS_ECONFLICT);
        assert_int_equal(conf, first);
    }
    /* Deleted again, this time with a stream and streamless events
     * appended after the rebuild. */
    tu_append1(s->db, NULL, "ps1", "PT0", "{}");
    ev[P_EVENTS] = (p_event){0, 1, 0, 0, 3};
    tu_store_close(s);
    assert_int_equal(tu_rmrf(index), 0);
    tu_store_open(s);
    p_check(s->db, ev, P_EVENTS + 1);
    free(index);
    free(ev);
}

/* Small segments: the events of one query lie in many segment files;
 * the same answers from a read-only open and after an index rebuild. */
static void seg_check(evs_db *db, const uint64_t *want1, size_t n1,
                      const uint64_t *want2, size_t n2)
{
    tu_events e = query_events(db, NULL, QUERY({TAGS("seg:1")}), 0, FWD, 0,
                               NULL);
    size_t i;
    assert_positions_(&e, want1, n1, "seg:1", __FILE__, __LINE__);
    for (i = 0; i < e.n; i++)
        assert_int_equal(e.v[i].data_len,
                         e.v[i].position % 3 != 2 ? 60000 + 10 : 2);
    tu_events_free(&e);
    e = query_events(db, NULL,
                     QUERY({TYPES("Big"), TAGS("$stream:bs", "seg:3")}), 0,
                     BWD, 0, NULL);
    assert_positions_(&e, want2, n2, "Big in bs with seg:3", __FILE__,
                      __LINE__);
    tu_events_free(&e);
}

static void test_query_across_segments(void **state)
{
    tu_store *s = *state;
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    char *big;
    char *index;
    uint64_t want1[80], want2[80], conf = 0;
    size_t n1 = 0, n2 = 0, i, nseg = 0;
    evs_append_condition c = {QUERY({TYPES("Big"), TAGS("seg:2")}), 0};
    evs_event_data probe = TEV0("Probe", "{}");

    TU_EMBEDDED_ONLY("log segment files and the index directory");
    big = malloc(60000 + 16);
    index = tu_path_join(s->dir, "index");
    assert_non_null(big);
    memcpy(big, "{\"pad\":\"", 8);
    memset(big + 8, 'x', 60000);
    memcpy(big + 8 + 60000, "\"}", 3);
    o.segment_size = 1024 * 1024;
    tu_store_open_opts(s, &o);
    for (i = 0; i < 80; i++) {
        char tag[16];
        const char *tags[1] = {tag};
        int is_big = i % 3 != 1; /* two thirds: about 3.2 MB */
        evs_event_data ev = tev_(is_big ? "Big" : "Small", is_big ? big : "{}",
                                 tags, 1);
        snprintf(tag, sizeof tag, "seg:%zu", i % 4);
        put(s->db, NULL, i % 2 ? "bs" : NULL, ev);
        if (i % 4 == 1)
            want1[n1++] = i + 1;
    }
    for (i = 80; i-- > 0;)
        if (i % 3 != 1 && i % 4 == 3) /* Big, odd: in "bs" */
            want2[n2++] = i + 1;
    {
        char **segs = tu_segments(s->dir, &nseg);
        tu_free_strings(segs, nseg);
    }
    print_message("%zu segments\n", nseg);
    assert_true(nseg >= 4);
    assert_true(n2 >= 2);
    seg_check(s->db, want1, n1, want2, n2);
    /* A condition whose first match is in an early segment. */
    c.after = 3;
    TU_CHECK(evs_dcb_append(NULL, &conf, s->db, NULL, &probe, 1, &c),
             EVS_ECONFLICT);
    for (i = 3; i < 80 && !(i % 3 != 1 && i % 4 == 2); i++)
        ;
    assert_int_equal(conf, i + 1);

    /* Read-only: the same answers; no appends. */
    tu_store_close(s);
    o.flags = EVS_OPEN_READONLY;
    tu_store_open_opts(s, &o);
    seg_check(s->db, want1, n1, want2, n2);
    c.after = 80;
    TU_CHECK(evs_dcb_append(NULL, &conf, s->db, NULL, &probe, 1, &c),
             EVS_EREADONLY);
    TU_ASSERT_ERRMSG();
    tu_store_close(s);

    /* The index rebuilt from the segments. */
    assert_int_equal(tu_rmrf(index), 0);
    o.flags = EVS_OPEN_CREATE;
    tu_store_open_opts(s, &o);
    seg_check(s->db, want1, n1, want2, n2);
    TU_OK(evs_dcb_append(NULL, &conf, s->db, NULL, &probe, 1, &c));
    free(index);
    free(big);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, tu_setup_store, \
                                              tu_teardown_store)
    const struct CMUnitTest tests[] = {
        T(test_persistence_reopen),
        T(test_persistence_index_rebuilt),
        cmocka_unit_test_setup_teardown(test_query_across_segments,
                                        tu_setup_store_closed,
                                        tu_teardown_store),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
