/*
 * test_groups.c -- consumer groups: members of a group of 4 subscribed
 * while two writers append; each event delivered exactly once, each stream
 * to the one member the documented hash (XXH3-64 of the stream's id part
 * modulo the group size) names, versions in order; tracking readers of the
 * same group see the same events, also with a category and paged; group
 * sizes 1 and 1024.
 */
#include "fixture_tracking.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* The id part of a stream name for consumer groups: after the first '-',
 * the whole name without one. */
static const char *id_part(const char *stream)
{
    const char *d = strchr(stream, '-');
    return d ? d + 1 : stream;
}

static uint32_t group_member_of(const char *stream, uint32_t size)
{
    const char *id = id_part(stream);
    return (uint32_t)(XXH3_64bits(id, strlen(id)) % size);
}

/* ------------------------------------------------------------------ */
/* Consumer groups                                                     */
/* ------------------------------------------------------------------ */

#define CG_MEMBERS 4
#define CG_STREAMS 60

/* Names of the streams: cg-K, other-K (the same id parts as cg-K), soloK
 * (no '-': the whole name), x-K-y (an id part with a '-'). */
static void cg_stream(char *buf, size_t cap, unsigned k)
{
    if (k < CG_STREAMS)
        snprintf(buf, cap, "cg-%u", k);
    else if (k < CG_STREAMS + 20)
        snprintf(buf, cap, "other-%u", k - CG_STREAMS);
    else if (k < CG_STREAMS + 25)
        snprintf(buf, cap, "solo%u", k - CG_STREAMS - 20);
    else
        snprintf(buf, cap, "x-%u-y", k - CG_STREAMS - 25);
}
#define CG_ALL_STREAMS (CG_STREAMS + 30)

typedef struct cg_writer {
    evs_db *db;
    unsigned n;
    uint64_t seed;
} cg_writer;

static void *cg_writer_main(void *arg)
{
    cg_writer *w = arg;
    tu_rng rng;
    unsigned i;
    tu_rng_init(&rng, w->seed);
    for (i = 0; i < w->n; i++) {
        unsigned k = (unsigned)tu_rng_range(&rng, 0, CG_ALL_STREAMS + 3);
        evs_event_data ev[3];
        size_t m = (size_t)tu_rng_range(&rng, 1, 3), j;
        char stream[32];
        int rc;
        for (j = 0; j < m; j++)
            ev[j] = tu_event("G", "{}");
        if (k >= CG_ALL_STREAMS) { /* streamless events */
            rc = evs_dcb_append(NULL, NULL, w->db, NULL, ev, m, NULL);
        } else {
            cg_stream(stream, sizeof stream, k);
            rc = evs_append(NULL, w->db, NULL, stream, EVS_ANY, ev, m);
            if (rc == 0 && k % 9 == 0)
                rc = evs_append(NULL, w->db, "tz", stream, EVS_ANY, ev, 1);
        }
        if (rc != 0) {
            tu_fail("group writer: %d %s", rc, evs_last_error());
            return NULL;
        }
    }
    return NULL;
}

/* Member m's events: position, stream and version. */
typedef struct cg_member {
    evs_subscription *sub;
    uint32_t member;
    uint64_t n; /* atomic */
    uint64_t pos[REC_MAX];
    char stream[REC_MAX][16];
    int64_t version[REC_MAX];
} cg_member;

static int cg_cb(void *ctx, const evs_event *const *events, size_t n,
                 uint64_t token)
{
    cg_member *m = ctx;
    size_t i;
    for (i = 0; i < n; i++) {
        uint64_t k = m->n;
        if (k >= REC_MAX) {
            tu_fail("member %u: too many events", m->member);
            return 0;
        }
        if (strcmp(events[i]->tenant, "") != 0)
            tu_fail("member %u: event of tenant %s", m->member,
                    events[i]->tenant);
        m->pos[k] = events[i]->position;
        snprintf(m->stream[k], sizeof m->stream[k], "%s", events[i]->stream);
        m->version[k] = events[i]->stream_version;
        __atomic_store_n(&m->n, k + 1, __ATOMIC_RELEASE);
    }
    (void)token;
    return 0;
}

static void test_consumer_group(void **state)
{
    tu_store *s = *state;
    cg_member *m = calloc(CG_MEMBERS, sizeof *m);
    cg_writer w[2];
    pthread_t th[2];
    uint64_t seed = tu_seed_default("consumer_group", 4), total = 0, *want;
    uint8_t *owner;
    int streams_owner[CG_ALL_STREAMS];
    int64_t next_version[CG_MEMBERS][CG_ALL_STREAMS];
    size_t nwant = 0, i;
    uint32_t k;
    tu_events all = {0};

    assert_non_null(m);
    {
        cg_writer pre = {s->db, 400, seed * 3};
        cg_writer_main(&pre);
    }
    for (k = 0; k < CG_MEMBERS; k++) {
        evs_subscription_options o = EVS_SUBSCRIPTION_OPTIONS_INIT;
        o.filter.group_member = k;
        o.filter.group_size = CG_MEMBERS;
        o.batch_size = 50;
        m[k].member = k;
        TU_OK(evs_subscribe(&m[k].sub, s->db, &o, cg_cb, &m[k]));
    }
    for (k = 0; k < 2; k++) {
        w[k] = (cg_writer){s->db, 400, seed + k};
        assert_int_equal(pthread_create(&th[k], NULL, cg_writer_main, &w[k]),
                         0);
    }
    for (k = 0; k < 2; k++)
        assert_int_equal(pthread_join(th[k], NULL), 0);
    TU_ASSERT_NO_THREAD_FAILURES();

    want = user_positions(s->db, "", &nwant);
    {
        int64_t end = mono_us() + 60000000;
        for (;;) {
            total = 0;
            for (k = 0; k < CG_MEMBERS; k++)
                total += __atomic_load_n(&m[k].n, __ATOMIC_ACQUIRE);
            if (total >= nwant || mono_us() > end)
                break;
            tu_sleep_ms(5);
        }
    }
    tu_sleep_ms(100);
    for (k = 0; k < CG_MEMBERS; k++)
        evs_subscription_stop(m[k].sub);
    for (k = 0; k < CG_MEMBERS; k++)
        TU_OK(evs_subscription_free(m[k].sub));
    TU_ASSERT_NO_THREAD_FAILURES();
    total = 0;
    for (k = 0; k < CG_MEMBERS; k++) {
        print_message("member %u: %" PRIu64 " events\n", k, m[k].n);
        total += m[k].n;
        assert_true(m[k].n > 0); /* 90 streams: every member has some */
    }
    assert_int_equal(total, nwant);

    /* Exactly once; each stream to one member, the one the documented
     * hash names; versions in order per stream. */
    TU_OK(tu_read_all(&all, s->db, "", 0, 0));
    owner = calloc(tu_head(s->db, NULL) + 1, 1);
    assert_non_null(owner);
    for (i = 0; i < CG_ALL_STREAMS; i++)
        streams_owner[i] = -1;
    memset(next_version, 0, sizeof next_version);
    for (k = 0; k < CG_MEMBERS; k++) {
        uint64_t j;
        for (j = 0; j < m[k].n; j++) {
            uint64_t p = m[k].pos[j];
            const char *st = m[k].stream[j];
            if (j > 0)
                assert_true(p > m[k].pos[j - 1]);
            assert_true(p >= 1 && p <= tu_head(s->db, NULL));
            if (owner[p])
                print_error("position %" PRIu64 " delivered to members %u "
                            "and %u\n",
                            p, owner[p] - 1, k);
            assert_int_equal(owner[p], 0);
            owner[p] = (uint8_t)(k + 1);
            if (st[0] != '\0') {
                unsigned si;
                char name[32];
                uint32_t want_m = group_member_of(st, CG_MEMBERS);
                if (want_m != k)
                    print_error("stream %s (id part \"%s\") went to member "
                                "%u; XXH3-64 %% %u names %u\n",
                                st, id_part(st), k, CG_MEMBERS, want_m);
                assert_int_equal(want_m, k);
                for (si = 0; si < CG_ALL_STREAMS; si++) {
                    cg_stream(name, sizeof name, si);
                    if (strcmp(name, st) == 0)
                        break;
                }
                assert_true(si < CG_ALL_STREAMS);
                if (streams_owner[si] >= 0)
                    assert_int_equal(streams_owner[si], (int)k);
                streams_owner[si] = (int)k;
                assert_int_equal(m[k].version[j], next_version[k][si]);
                next_version[k][si]++;
            } else {
                assert_int_equal(m[k].version[j], EVS_NO_STREAM);
            }
        }
    }
    for (i = 0; i < nwant; i++)
        assert_true(owner[want[i]] != 0);
    /* Streams with the same id part belong to the same member. */
    for (i = 0; i < 20; i++)
        if (streams_owner[i] >= 0 && streams_owner[CG_STREAMS + i] >= 0)
            assert_int_equal(streams_owner[i], streams_owner[CG_STREAMS + i]);

    /* Tracking readers of the same group see the same events. */
    for (k = 0; k < CG_MEMBERS; k++) {
        evs_tracking t = EVS_TRACKING_INIT;
        tu_events e = {0};
        uint64_t j;
        t.group_member = k;
        t.group_size = CG_MEMBERS;
        TU_OK(track(&e, NULL, s->db, &t, 0, 0, 0));
        assert_int_equal(e.n, m[k].n);
        for (j = 0; j < e.n; j++)
            assert_int_equal(e.v[j].position, m[k].pos[j]);
        tu_events_clear(&e);
        /* With a category too: that member's cg streams only. */
        t.category = "cg";
        TU_OK(track(&e, NULL, s->db, &t, 0, 0, 0));
        {
            uint64_t cnt = 0;
            for (j = 0; j < m[k].n; j++)
                cnt += strncmp(m[k].stream[j], "cg-", 3) == 0;
            assert_int_equal(e.n, cnt);
            for (j = 0; j < e.n; j++) {
                assert_int_equal(strncmp(e.v[j].stream, "cg-", 3), 0);
                assert_int_equal(owner[e.v[j].position], k + 1);
            }
        }
        tu_events_free(&e);
    }
    /* Paged reads of a member skip other members' events without
     * counting them against the limit. */
    for (k = 0; k < CG_MEMBERS; k++) {
        evs_tracking t = EVS_TRACKING_INIT;
        t.group_member = k;
        t.group_size = CG_MEMBERS;
        EXPECT_PAGING(s->db, &t, 7);
        t.category = "cg";
        EXPECT_PAGING(s->db, &t, 5);
        t.category = NULL;
        t.tenant = "tz";
        EXPECT_PAGING(s->db, &t, 3);
    }
    /* group_size 1: everything. */
    {
        evs_tracking t = EVS_TRACKING_INIT;
        tu_events e = {0};
        t.group_size = 1;
        TU_OK(track(&e, NULL, s->db, &t, 0, 0, 0));
        assert_int_equal(e.n, nwant);
        tu_events_free(&e);
    }
    /* group_size 1024, every member (over the small tenant tz): each
     * event once, to the member the hash names. */
    {
        evs_tracking t = EVS_TRACKING_INIT;
        uint64_t cnt = 0;
        size_t ntz = 0;
        free(user_positions(s->db, "tz", &ntz));
        assert_true(ntz > 0);
        t.tenant = "tz";
        t.group_size = 1024;
        for (k = 0; k < 1024; k++) {
            tu_events e = {0};
            uint64_t j;
            t.group_member = k;
            TU_OK(track(&e, NULL, s->db, &t, 0, 0, 0));
            for (j = 0; j < e.n; j++)
                assert_int_equal(group_member_of(e.v[j].stream, 1024), k);
            cnt += e.n;
            tu_events_free(&e);
        }
        assert_int_equal(cnt, ntz);
    }
    tu_events_free(&all);
    free(owner);
    free(want);
    free(m);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_consumer_group),
    };
#undef T
    signal(SIGALRM, on_alarm);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
