/*
 * test_tokens.c -- tracking tokens: evs_token_head and evs_token_tail per
 * tenant (reading after the tail yields every event of the tenant, after
 * the head none), evs_token_at on events the store stamps (sub-millisecond,
 * a batch shares one stamp) and on events imported with their own
 * recorded_at out of order, against a brute-force model.
 */
#include "fixture_tracking.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>

/* ------------------------------------------------------------------ */
/* Tokens                                                              */
/* ------------------------------------------------------------------ */

static void test_tokens_empty_store(void **state)
{
    tu_store *s = *state;
    assert_int_equal(token_head(s->db, NULL), 0);
    assert_int_equal(token_head(s->db, ""), 0);
    assert_int_equal(token_head(s->db, "t1"), 0);
    assert_int_equal(token_tail(s->db, NULL), 0);
    assert_int_equal(token_tail(s->db, ""), 0);
    assert_int_equal(token_tail(s->db, "t1"), 0);
    assert_int_equal(token_at(s->db, 0), 0);
    assert_int_equal(token_at(s->db, tu_now_us()), 0);
    assert_int_equal(token_at(s->db, INT64_MAX), 0);
}

static void test_tokens_per_tenant(void **state)
{
    tu_store *s = *state;
    evs_tracking t = EVS_TRACKING_INIT;
    uint64_t p[6];

    p[0] = tu_append1(s->db, NULL, "a-1", "E", "{}"); /* 1 */
    p[1] = tu_append1(s->db, "ta", "a-1", "E", "{}"); /* 2 */
    p[2] = tu_append1(s->db, NULL, "a-2", "E", "{}"); /* 3 */
    p[3] = tu_append1(s->db, "tb", "a-1", "E", "{}"); /* 4 */
    p[4] = tu_append1(s->db, "ta", "a-2", "E", "{}"); /* 5 */
    p[5] = tu_append1(s->db, "tb", "a-1", "E", "{}"); /* 6 */
    assert_int_equal(p[0], 1);
    assert_int_equal(p[5], 6);

    assert_int_equal(token_head(s->db, NULL), 6);
    assert_int_equal(token_head(s->db, ""), 3);
    assert_int_equal(token_head(s->db, "ta"), 5);
    assert_int_equal(token_head(s->db, "tb"), 6);
    assert_int_equal(token_head(s->db, "nobody"), 0);
    /* The same as evs_head_position, tenant by tenant. */
    assert_int_equal(token_head(s->db, NULL), tu_head(s->db, NULL));
    assert_int_equal(token_head(s->db, "ta"), tu_head(s->db, "ta"));
    assert_int_equal(token_head(s->db, ""), tu_head(s->db, ""));

    assert_int_equal(token_tail(s->db, NULL), 0);
    assert_int_equal(token_tail(s->db, ""), 0);
    assert_int_equal(token_tail(s->db, "ta"), 1);
    assert_int_equal(token_tail(s->db, "tb"), 3);
    assert_int_equal(token_tail(s->db, "nobody"), 0);

    /* Reading after the tail yields every event of the tenant; after the
     * head, none. */
    t.tenant = "tb";
    EXPECT_TRACK(s->db, &t, token_tail(s->db, "tb"), 0, 6,
                 "tb after its tail", PL(4, 6));
    EXPECT_TRACK(s->db, &t, token_head(s->db, "tb"), 0, 6,
                 "tb after its head", NONE);
    t.tenant = "ta";
    EXPECT_TRACK(s->db, &t, token_tail(s->db, "ta"), 0, 6,
                 "ta after its tail", PL(2, 5));
    /* A tenant's head token is global: reading after it skips nothing of
     * that tenant committed later. */
    tu_append1(s->db, "ta", "a-3", "E", "{}"); /* 7 */
    EXPECT_TRACK(s->db, &t, 5, 0, 7, "ta after its old head", PL(7));
}

/* Events the store stamps: token_at finds the first event at or after a
 * time, with sub-millisecond precision, and a batch shares one stamp. */
static void test_token_at_stamped(void **state)
{
    tu_store *s = *state;
    evs_event_data batch[3];
    evs_append_result r;
    tu_events e = {0};
    int64_t t0 = tu_now_us(), rec[6];
    size_t i;

    tu_append1(s->db, NULL, "s-1", "E", "{}"); /* 1 */
    tu_sleep_ms(3);
    tu_append1(s->db, NULL, "s-1", "E", "{}"); /* 2 */
    tu_sleep_ms(3);
    for (i = 0; i < 3; i++)
        batch[i] = tu_event("B", "{}");
    TU_OK(evs_append(&r, s->db, NULL, "s-2", EVS_ANY, batch, 3)); /* 3..5 */
    assert_int_equal(r.first_position, 3);
    tu_sleep_ms(3);
    tu_append1(s->db, NULL, "s-1", "E", "{}"); /* 6 */

    TU_OK(tu_read_all(&e, s->db, NULL, 0, 0));
    assert_int_equal(e.n, 6);
    for (i = 0; i < 6; i++)
        rec[i] = e.v[i].recorded_at;
    tu_events_free(&e);
    /* The stamps grow with position; the 3 ms sleeps separate them. */
    assert_true(rec[0] >= t0 - 1000000);
    assert_true(rec[1] > rec[0]);
    assert_true(rec[2] > rec[1]);
    assert_int_equal(rec[3], rec[2]);
    assert_int_equal(rec[4], rec[2]);
    assert_true(rec[5] > rec[4]);

    assert_int_equal(token_at(s->db, 0), 0);
    assert_int_equal(token_at(s->db, rec[0] - 1000000), 0);
    assert_int_equal(token_at(s->db, rec[0]), 0);
    assert_int_equal(token_at(s->db, rec[0] + 1), 1);
    assert_int_equal(token_at(s->db, rec[1] - 1), 1);
    assert_int_equal(token_at(s->db, rec[1]), 1);
    assert_int_equal(token_at(s->db, rec[1] + 1), 2);
    assert_int_equal(token_at(s->db, rec[2]), 2); /* first of the batch */
    assert_int_equal(token_at(s->db, rec[2] + 1), 5);
    assert_int_equal(token_at(s->db, rec[5]), 5);
    /* After every event: the head. */
    assert_int_equal(token_at(s->db, rec[5] + 1), 6);
    assert_int_equal(token_at(s->db, INT64_MAX), 6);

    /* Reading after token_at(rec[1]) yields event 2 and everything after. */
    {
        evs_tracking t = EVS_TRACKING_INIT;
        EXPECT_TRACK(s->db, &t, token_at(s->db, rec[1]), 0, 6,
                     "after token_at", PL(2, 3, 4, 5, 6));
    }
}

/* Events imported with their own recorded_at, out of order: the token is
 * just before the first event *in position order* whose recorded_at is >=
 * the time. Checked against a brute-force model for many times, within
 * and across milliseconds, and across tenants (the token is store-wide). */
static void test_token_at_imported_out_of_order(void **state)
{
    tu_store *s = *state;
    const int64_t base = INT64_C(1700000000000000); /* 2023-11-14 */
    /* Offsets in µs: several in the same millisecond (5), going back and
     * forth. */
    static const int64_t off[] = {1000, 5000, 2000, 5300, 2500,
                                  5100, 9000, 5200, 1500, 9000};
    const size_t n = sizeof off / sizeof off[0];
    int64_t rec[16], times[128];
    size_t i, j, nt = 0;

    for (i = 0; i < n; i++) {
        rec[i] = base + off[i];
        assert_int_equal(put_at(s->db, i % 3 == 2 ? "imp" : NULL, "imp-1",
                                "Imported", rec[i]),
                         i + 1);
    }
    /* One event the store stamps (now: far after the imported ones). */
    tu_append1(s->db, NULL, "live-1", "Live", "{}");
    rec[n] = tu_now_us();
    {
        tu_events e = {0};
        TU_OK(tu_read_all(&e, s->db, NULL, 0, 0));
        assert_int_equal(e.n, n + 1);
        for (i = 0; i < n; i++)
            assert_int_equal(e.v[i].recorded_at, rec[i]); /* kept as given */
        rec[n] = e.v[n].recorded_at;
        tu_events_free(&e);
    }

    times[nt++] = 0;
    times[nt++] = base;
    times[nt++] = base + 5150;
    times[nt++] = base + 5050;
    times[nt++] = base + 5999;
    times[nt++] = base + 6000;
    times[nt++] = INT64_MAX;
    for (i = 0; i <= n; i++) {
        times[nt++] = rec[i] - 1;
        times[nt++] = rec[i];
        times[nt++] = rec[i] + 1;
    }
    for (j = 0; j < nt; j++) {
        uint64_t want = n + 1, got; /* the head when none is that recent */
        for (i = 0; i <= n; i++)
            if (rec[i] >= times[j]) {
                want = i;
                break;
            }
        got = token_at(s->db, times[j]);
        if (got != want)
            print_error("token_at(base %+" PRId64 " µs) = %" PRIu64
                        ", expected %" PRIu64 "\n",
                        times[j] - base, got, want);
        assert_int_equal(got, want);
    }
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_tokens_empty_store),
        T(test_tokens_per_tenant),
        T(test_token_at_stamped),
        T(test_token_at_imported_out_of_order),
    };
#undef T
    signal(SIGALRM, on_alarm);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
