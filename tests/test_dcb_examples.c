/*
 * test_dcb_examples.c -- the worked examples of the DCB specification, one
 * decision at a time: a unique username (claimed once; a decision made
 * stale by a claim in its boundary conflicts, naming the event, and writes
 * nothing; events outside the boundary do not), course subscriptions
 * (course capacity, capacity changes, the student limit, stale decisions by
 * either boundary) and gapless invoice numbers (a backward read of the last
 * number; numbering per tenant).
 */
#include "fixture_dcb.h"

#include <stdint.h>

/* ------------------------------------------------------------------ */
/* Example (a): unique username                                        */
/* ------------------------------------------------------------------ */

static void test_example_unique_username(void **state)
{
    tu_store *s = *state;
    uint64_t p_alice = 0, p = 0, m = 0, m2 = 0, conflict = 0, p_other;
    int taken = -1;
    snap before;

    tu_failures_reset();

    /* Noise in other boundaries. */
    put(s->db, NULL, NULL, TEV("AccountOpened", "{}", "account:1"));
    put(s->db, NULL, "users", TEV0("UsernameClaimed", "{}"));

    assert_int_equal(username_claim(s->db, NULL, "username:alice", &p_alice,
                                     NULL),
                     0);
    assert_int_equal(p_alice, 3);
    assert_int_equal(username_claim(s->db, NULL, "username:alice", &p, NULL),
                     DECIDED_TAKEN);
    assert_int_equal(tu_head(s->db, NULL), 3);

    /* Two claims decided on the same read: the second conflicts with the
     * first, names its position, and writes nothing. */
    TU_OK(username_read(s->db, NULL, "username:bob", &taken, &m));
    assert_int_equal(taken, 0);
    assert_int_equal(m, 3);
    TU_OK(username_append(s->db, NULL, "username:bob", m, &p, &conflict));
    assert_int_equal(p, 4);
    assert_int_equal(conflict, 0);
    before = take_snap(s->db);
    TU_CHECK(username_append(s->db, NULL, "username:bob", m, &p, &conflict),
             EVS_ECONFLICT);
    assert_int_equal(conflict, 4);
    assert_true(tu_contains_number(evs_last_error(), 4));
    ASSERT_UNCHANGED(s->db, before);

    /* A stale marker does not matter when the new events are outside the
     * boundary: carol's claim after bob's read does not block bob2. */
    TU_OK(username_read(s->db, NULL, "username:bob2", &taken, &m2));
    assert_int_equal(taken, 0);
    assert_int_equal(username_claim(s->db, NULL, "username:carol", &p, NULL),
                     0);
    /* Same tag, type outside the boundary. */
    put(s->db, NULL, NULL, TEV("AccountClosed", "{}", "username:bob2"));
    TU_OK(username_append(s->db, NULL, "username:bob2", m2, &p, &conflict));
    assert_int_equal(conflict, 0);
    assert_int_equal(p, tu_head(s->db, NULL));

    /* A username taken by a change of name is taken too. */
    p_other = put(s->db, NULL, NULL,
                  TEV("UsernameChanged", "{}", "username:dave", "user:9"));
    assert_int_equal(username_claim(s->db, NULL, "username:dave", &p, NULL),
                     DECIDED_TAKEN);
    /* ...and an append decided before the change conflicts with it. */
    TU_CHECK(username_append(s->db, NULL, "username:dave", p_other - 1, &p,
                             &conflict),
             EVS_ECONFLICT);
    assert_int_equal(conflict, p_other);

    /* Exactly one claim per name in the store. */
    EXPECT_Q(s->db, NULL, QUERY({TYPES("UsernameClaimed")}), 0, FWD, 0,
             ANY_MARKER, PL(2, 3, 4, 5, tu_head(s->db, NULL) - 1));
    TU_ASSERT_NO_THREAD_FAILURES();
}

/* ------------------------------------------------------------------ */
/* Example (b): course subscriptions                                   */
/* ------------------------------------------------------------------ */

static void test_example_course_subscription(void **state)
{
    tu_store *s = *state;
    uint64_t p = 0, p6, conflict = 0;
    course_state st;
    course_query cq;
    snap before;
    evs_db *db = s->db;

    tu_failures_reset();

    define_course(db, NULL, "c1", 2, 0);
    define_course(db, NULL, "c2", 10, 0);
    define_course(db, NULL, "c3", 10, 0);
    define_course(db, NULL, "c4", 10, 0);

    assert_int_equal(course_subscribe(db, NULL, "c1", "s1", STUDENT_LIMIT,
                                      &p, NULL),
                     0);
    assert_int_equal(p, 5);
    assert_int_equal(course_subscribe(db, NULL, "c1", "s2", STUDENT_LIMIT,
                                      &p, NULL),
                     0);
    assert_int_equal(course_subscribe(db, NULL, "c1", "s3", STUDENT_LIMIT,
                                      &p, NULL),
                     SUB_FULL);
    assert_int_equal(course_subscribe(db, NULL, "c1", "s1", STUDENT_LIMIT,
                                      &p, NULL),
                     SUB_ALREADY);
    /* The capacity changes: one more seat. */
    define_course(db, NULL, "c1", 3, 1);
    assert_int_equal(course_subscribe(db, NULL, "c1", "s3", STUDENT_LIMIT,
                                      &p, NULL),
                     0);
    assert_int_equal(course_subscribe(db, NULL, "c1", "s4", STUDENT_LIMIT,
                                      &p, NULL),
                     SUB_FULL);
    /* The student limit. */
    assert_int_equal(course_subscribe(db, NULL, "c2", "s1", STUDENT_LIMIT,
                                      &p, NULL),
                     0);
    assert_int_equal(course_subscribe(db, NULL, "c3", "s1", STUDENT_LIMIT,
                                      &p, NULL),
                     0);
    assert_int_equal(course_subscribe(db, NULL, "c4", "s1", STUDENT_LIMIT,
                                      &p, NULL),
                     SUB_STUDENT_LIMIT);
    assert_int_equal(course_subscribe(db, NULL, "c9", "s1", STUDENT_LIMIT,
                                      &p, NULL),
                     SUB_NO_COURSE);
    assert_int_equal(count_subs(db, NULL, "course:c1"), 3);
    assert_int_equal(count_subs(db, NULL, "student:s1"), 3);

    /* A decision made stale by a subscription to the same course. */
    course_query_init(&cq, "c2", "s5");
    TU_OK(course_read(db, NULL, &cq, &st));
    assert_int_equal(course_decide(&st, STUDENT_LIMIT), 0);
    assert_int_equal(st.marker, tu_head(db, NULL));
    assert_int_equal(course_subscribe(db, NULL, "c2", "s6", STUDENT_LIMIT,
                                      &p6, NULL),
                     0);
    before = take_snap(db);
    TU_CHECK(course_append(db, NULL, &cq, st.marker, &p, &conflict),
             EVS_ECONFLICT);
    assert_int_equal(conflict, p6);
    ASSERT_UNCHANGED(db, before);

    /* ...by a subscription of the same student to another course. */
    course_query_init(&cq, "c2", "s7");
    TU_OK(course_read(db, NULL, &cq, &st));
    assert_int_equal(course_decide(&st, STUDENT_LIMIT), 0);
    assert_int_equal(course_subscribe(db, NULL, "c3", "s7", STUDENT_LIMIT,
                                      &p6, NULL),
                     0);
    TU_CHECK(course_append(db, NULL, &cq, st.marker, &p, &conflict),
             EVS_ECONFLICT);
    assert_int_equal(conflict, p6);

    /* ...but not by events outside both boundaries. */
    course_query_init(&cq, "c4", "s8");
    TU_OK(course_read(db, NULL, &cq, &st));
    assert_int_equal(course_subscribe(db, NULL, "c3", "s9", STUDENT_LIMIT,
                                      &p, NULL),
                     0);
    define_course(db, NULL, "c5", 1, 0);
    TU_OK(course_append(db, NULL, &cq, st.marker, &p, &conflict));
    assert_int_equal(conflict, 0);
    assert_int_equal(p, tu_head(db, NULL));
    assert_int_equal(count_subs(db, NULL, "course:c4"), 1);
    TU_ASSERT_NO_THREAD_FAILURES();
}

/* ------------------------------------------------------------------ */
/* Example (c): gapless invoice numbers                                */
/* ------------------------------------------------------------------ */

static void test_example_invoice_numbers(void **state)
{
    tu_store *s = *state;
    evs_db *db = s->db;
    int64_t number = 0, last = -1;
    uint64_t p = 0, m = 0, conflict = 0, p4;
    snap before;
    int i;

    tu_failures_reset();

    /* No invoice yet: the marker of the empty read is the head. */
    put(db, NULL, "orders", TEV0("OrderPlaced", "{}"));
    TU_OK(invoice_read(db, NULL, &last, &m));
    assert_int_equal(last, 0);
    assert_int_equal(m, 1);

    for (i = 1; i <= 3; i++) {
        TU_OK(invoice_create(db, NULL, &number, &p, NULL));
        assert_int_equal(number, i);
        /* Events of other types between invoices change nothing. */
        put(db, NULL, NULL, TEV0("PaymentReceived", "{\"number\":99}"));
    }
    /* The marker of a backward read is the head, not the event read. */
    TU_OK(invoice_read(db, NULL, &last, &m));
    assert_int_equal(last, 3);
    assert_int_equal(m, tu_head(db, NULL));

    /* Two creators read 3; the first takes 4, the second conflicts. */
    TU_OK(invoice_create(db, NULL, &number, &p4, NULL));
    assert_int_equal(number, 4);
    before = take_snap(db);
    TU_CHECK(invoice_append(db, NULL, 4, m, &p, &conflict), EVS_ECONFLICT);
    assert_int_equal(conflict, p4);
    assert_true(tu_contains_number(evs_last_error(), (int64_t)p4));
    ASSERT_UNCHANGED(db, before);

    /* A PaymentReceived after the read does not block the next number. */
    TU_OK(invoice_read(db, NULL, &last, &m));
    put(db, NULL, NULL, TEV0("PaymentReceived", "{}"));
    TU_OK(invoice_append(db, NULL, last + 1, m, &p, &conflict));
    assert_int_equal(conflict, 0);
    assert_invoices_gapless(db, NULL, 5);

    /* Another tenant numbers from 1 again. */
    TU_OK(invoice_create(db, "acme", &number, &p, NULL));
    assert_int_equal(number, 1);
    assert_invoices_gapless(db, "acme", 1);
    assert_invoices_gapless(db, NULL, 5);
    TU_ASSERT_NO_THREAD_FAILURES();
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, tu_setup_store, \
                                              tu_teardown_store)
    const struct CMUnitTest tests[] = {
        T(test_example_unique_username),
        T(test_example_course_subscription),
        T(test_example_invoice_numbers),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
