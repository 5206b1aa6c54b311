/*
 * test_idempotency.c -- re-sending an append with the same event ids
 * returns the original result and writes nothing; reusing an id for a
 * different event is EVS_EDUPLICATE.
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fixture {
    tu_store *s;
    evs_event_data ev[3];
    evs_append_result first;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    tu_setup_store((void **)&f->s);
    /* Something before, so positions are not trivially 1.. */
    tu_append1(f->s->db, NULL, "other-1", "Noise", "{}");
    tu_append1(f->s->db, NULL, "other-2", "Noise", "{}");
    f->ev[0] = tu_event_id("Opened", "{\"n\":0}");
    f->ev[1] = tu_event_id("Deposited", "{\"n\":1}");
    f->ev[2] = tu_event_id("Deposited", "{\"n\":2}");
    TU_OK(evs_append(&f->first, f->s->db, NULL, "acct-1", EVS_NO_STREAM,
                     f->ev, 3));
    assert_int_equal(f->first.first_position, 3);
    assert_int_equal(f->first.last_position, 5);
    assert_int_equal(f->first.first_version, 0);
    assert_int_equal(f->first.stream_version, 2);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    tu_store_free(f->s);
    free(f);
    return 0;
}

static void assert_same_result(const evs_append_result *a,
                               const evs_append_result *b)
{
    assert_int_equal(a->status, b->status);
    assert_int_equal(a->first_position, b->first_position);
    assert_int_equal(a->last_position, b->last_position);
    assert_int_equal(a->first_version, b->first_version);
    assert_int_equal(a->stream_version, b->stream_version);
}

/* Re-send f->ev (maybe altered by the caller) to stream with expected and
 * check the outcome; nothing may be written either way. */
static void resend(fixture *f, const char *tenant, const char *stream,
                   int64_t expected, const evs_event_data *ev, size_t n,
                   int want_rc)
{
    evs_append_result r;
    evs_stats before = tu_stats(f->s->db), after;
    int64_t v = tu_version(f->s->db, tenant, stream);

    memset(&r, 0xcd, sizeof r);
    TU_CHECK(evs_append(&r, f->s->db, tenant, stream, expected, ev, n),
             want_rc);
    if (want_rc == 0)
        assert_same_result(&r, &f->first);
    else
        TU_ASSERT_ERRMSG();
    after = tu_stats(f->s->db);
    assert_int_equal(after.events, before.events);
    assert_int_equal(after.head_position, before.head_position);
    assert_int_equal(after.streams, before.streams);
    assert_int_equal(tu_version(f->s->db, tenant, stream), v);
}

static void test_resend_any_expected_version(void **state)
{
    fixture *f = *state;
    resend(f, NULL, "acct-1", EVS_NO_STREAM, f->ev, 3, 0);
    resend(f, NULL, "acct-1", EVS_ANY, f->ev, 3, 0);
    resend(f, NULL, "acct-1", EVS_STREAM_EXISTS, f->ev, 3, 0);
    resend(f, NULL, "acct-1", 2, f->ev, 3, 0);
    resend(f, NULL, "acct-1", 0, f->ev, 3, 0);
    resend(f, NULL, "acct-1", 99, f->ev, 3, 0);
    /* The default tenant spelled "" is the same tenant. */
    resend(f, "", "acct-1", EVS_NO_STREAM, f->ev, 3, 0);
}

static void test_resend_after_stream_moved_on(void **state)
{
    fixture *f = *state;
    tu_append1(f->s->db, NULL, "acct-1", "Withdrawn", "{\"n\":3}");
    tu_append1(f->s->db, NULL, "acct-1", "Withdrawn", "{\"n\":4}");
    /* Still the original result (version 2, positions 3..5), not the
     * stream's current version. */
    resend(f, NULL, "acct-1", 2, f->ev, 3, 0);
    resend(f, NULL, "acct-1", 4, f->ev, 3, 0);
    resend(f, NULL, "acct-1", EVS_ANY, f->ev, 3, 0);
}

static void test_resend_survives_reopen(void **state)
{
    fixture *f = *state;
    tu_store_reopen(f->s);
    resend(f, NULL, "acct-1", EVS_NO_STREAM, f->ev, 3, 0);
    resend(f, NULL, "acct-1", 17, f->ev, 3, 0);
    /* And a different event with a stored id is still refused. */
    {
        evs_event_data ev = f->ev[1];
        ev.data = "{\"n\":100}";
        ev.data_len = strlen(ev.data);
        resend(f, NULL, "acct-1", EVS_ANY, &ev, 1, EVS_EDUPLICATE);
    }
}

static void test_single_event_resend(void **state)
{
    fixture *f = *state;
    evs_event_data ev = tu_event_id("Single", "{\"s\":1}");
    evs_append_result r1, r2;
    TU_OK(evs_append(&r1, f->s->db, NULL, "one-1", EVS_NO_STREAM, &ev, 1));
    TU_OK(evs_append(&r2, f->s->db, NULL, "one-1", EVS_NO_STREAM, &ev, 1));
    assert_same_result(&r1, &r2);
    TU_OK(evs_append(&r2, f->s->db, NULL, "one-1", 5, &ev, 1));
    assert_same_result(&r1, &r2);
    assert_int_equal(tu_head(f->s->db, NULL), r1.last_position);
    assert_int_equal(tu_version(f->s->db, NULL, "one-1"), 0);
}

static void test_id_reused_differently(void **state)
{
    fixture *f = *state;
    evs_event_data ev[3];

    /* Another stream. */
    resend(f, NULL, "acct-2", EVS_ANY, f->ev, 3, EVS_EDUPLICATE);
    resend(f, NULL, "acct-2", EVS_ANY, &f->ev[1], 1, EVS_EDUPLICATE);
    /* Another type. */
    memcpy(ev, f->ev, sizeof ev);
    ev[2].type = "Withdrawn";
    resend(f, NULL, "acct-1", EVS_ANY, ev, 3, EVS_EDUPLICATE);
    /* Other data. */
    memcpy(ev, f->ev, sizeof ev);
    ev[0].data = "{\"n\":0 }";
    ev[0].data_len = strlen(ev[0].data);
    resend(f, NULL, "acct-1", EVS_ANY, ev, 3, EVS_EDUPLICATE);
    /* Whether ids are unique per tenant or per store is not documented,
     * so no other tenant appears here. */
    /* The same events in another order. */
    ev[0] = f->ev[1];
    ev[1] = f->ev[0];
    ev[2] = f->ev[2];
    resend(f, NULL, "acct-1", EVS_ANY, ev, 3, EVS_EDUPLICATE);
    /* Nothing of it shows up anywhere. */
    assert_int_equal(tu_version(f->s->db, NULL, "acct-2"), EVS_NO_STREAM);
    assert_int_equal(tu_head(f->s->db, NULL), 5);
}

static void test_partial_resend(void **state)
{
    fixture *f = *state;
    evs_event_data ev[4];

    /* Two stored ids and a new one. */
    ev[0] = f->ev[0];
    ev[1] = f->ev[1];
    ev[2] = tu_event_id("Deposited", "{\"n\":9}");
    resend(f, NULL, "acct-1", EVS_ANY, ev, 3, EVS_EDUPLICATE);
    /* A new one first, then a stored one. */
    ev[0] = tu_event_id("Deposited", "{\"n\":9}");
    ev[1] = f->ev[2];
    resend(f, NULL, "acct-1", EVS_ANY, ev, 2, EVS_EDUPLICATE);
    /* The whole original append and one more. */
    memcpy(ev, f->ev, 3 * sizeof *ev);
    ev[3] = tu_event_id("Deposited", "{\"n\":9}");
    resend(f, NULL, "acct-1", EVS_ANY, ev, 4, EVS_EDUPLICATE);
    /* A nil id beside stored ones: not every event carries an id. */
    memcpy(ev, f->ev, 3 * sizeof *ev);
    memset(&ev[1].id, 0, sizeof ev[1].id);
    resend(f, NULL, "acct-1", EVS_ANY, ev, 3, EVS_EDUPLICATE);
    assert_int_equal(tu_head(f->s->db, NULL), 5);
}

static void test_same_id_twice_in_one_append(void **state)
{
    fixture *f = *state;
    evs_event_data ev[2];
    evs_append_result r;
    evs_stats before = tu_stats(f->s->db), after;
    int rc;

    ev[0] = tu_event_id("X", "{}");
    ev[1] = ev[0];
    ev[1].data = "{\"other\":1}";
    ev[1].data_len = strlen(ev[1].data);
    rc = evs_append(&r, f->s->db, NULL, "twice-1", EVS_ANY, ev, 2);
    /* Which of the two codes is not documented; writing both is wrong. */
    if (rc != EVS_EDUPLICATE && rc != EVS_EINVAL)
        tu_report_rc("evs_append(same id twice)", rc, EVS_EDUPLICATE,
                     __FILE__, __LINE__);
    assert_true(rc == EVS_EDUPLICATE || rc == EVS_EINVAL);
    after = tu_stats(f->s->db);
    assert_int_equal(after.events, before.events);
    assert_int_equal(after.head_position, before.head_position);
}

/* Events without ids are never deduplicated. */
static void test_nil_ids_append_twice(void **state)
{
    fixture *f = *state;
    evs_event_data ev[2] = {tu_event("N", "{\"same\":1}"),
                            tu_event("N", "{\"same\":2}")};
    evs_append_result r1, r2;
    TU_OK(evs_append(&r1, f->s->db, NULL, "nil-1", EVS_ANY, ev, 2));
    TU_OK(evs_append(&r2, f->s->db, NULL, "nil-1", EVS_ANY, ev, 2));
    assert_int_equal(r2.first_position, r1.last_position + 1);
    assert_int_equal(r2.first_version, 2);
    assert_int_equal(tu_version(f->s->db, NULL, "nil-1"), 3);
}

/* A conflicting append does not register its ids: the same ids can then
 * be written with a correct expected version. */
static void test_conflict_does_not_register_ids(void **state)
{
    fixture *f = *state;
    evs_event_data ev = tu_event_id("C", "{\"c\":1}");
    evs_append_result r;
    TU_CHECK(evs_append(&r, f->s->db, NULL, "acct-1", 0, &ev, 1),
             EVS_ECONFLICT);
    assert_int_equal(r.stream_version, 2);
    TU_OK(evs_append(&r, f->s->db, NULL, "acct-1", 2, &ev, 1));
    assert_int_equal(r.first_position, 6);
    assert_int_equal(r.first_version, 3);
    /* ...and once written, they are idempotent too. */
    TU_OK(evs_append(&r, f->s->db, NULL, "acct-1", 0, &ev, 1));
    assert_int_equal(r.first_position, 6);
    assert_int_equal(r.stream_version, 3);
    assert_int_equal(tu_head(f->s->db, NULL), 6);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_resend_any_expected_version),
        T(test_resend_after_stream_moved_on),
        T(test_resend_survives_reopen),
        T(test_single_event_resend),
        T(test_id_reused_differently),
        T(test_partial_resend),
        T(test_same_id_twice_in_one_append),
        T(test_nil_ids_append_twice),
        T(test_conflict_does_not_register_ids),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
