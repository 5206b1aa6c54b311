/*
 * test_dcb_races.c -- DCB decisions raced by threads: the three worked
 * examples (every username claimed once, course capacities and student
 * limits never exceeded nor refused wrongly, invoice numbers without gap or
 * duplicate), appends racing to a brand-new tenant (exactly one wins), one
 * boundary guarded both by a DCB condition and by an expected version, and
 * queries beside appends (every read a snapshot of whole appends, the
 * marker never below an event returned).
 */
#include "fixture_dcb.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* The examples raced by threads                                       */
/* ------------------------------------------------------------------ */

#define RACE_THREADS 12
#define RACE_NAMES 12

typedef struct racer {
    evs_db *db;
    int idx;
    pthread_barrier_t *start;
    unsigned conflicts;
    /* username */
    uint64_t name_pos[RACE_NAMES]; /* 0: lost */
    /* course */
    int outcome[3][8];
    uint64_t sub_pos[3][8];
    /* invoice */
    int64_t numbers[16];
    uint64_t inv_pos[16];
    size_t ninv;
} racer;

static racer *racers_new(evs_db *db, size_t n, pthread_barrier_t *b)
{
    racer *r = calloc(n, sizeof *r);
    size_t i;
    assert_non_null(r);
    assert_int_equal(pthread_barrier_init(b, NULL, (unsigned)n), 0);
    for (i = 0; i < n; i++) {
        r[i].db = db;
        r[i].idx = (int)i;
        r[i].start = b;
    }
    tu_failures_reset();
    return r;
}

static void *username_racer(void *arg)
{
    racer *w = arg;
    int k;
    pthread_barrier_wait(w->start);
    for (k = 0; k < RACE_NAMES; k++) {
        char tag[64];
        uint64_t p = 0;
        int rc;
        snprintf(tag, sizeof tag, "username:n%d", k);
        rc = username_claim(w->db, "race", tag, &p, &w->conflicts);
        if (rc == 0)
            w->name_pos[k] = p;
        else if (rc != DECIDED_TAKEN)
            tu_fail("thread %d: claim %s: %d (%s): %s", w->idx, tag, rc,
                    tu_errname(rc), evs_last_error());
    }
    return NULL;
}

static void test_race_unique_username(void **state)
{
    tu_store *s = *state;
    pthread_barrier_t b;
    racer *w = racers_new(s->db, RACE_THREADS, &b);
    unsigned conflicts = 0;
    int k, i;

    put(s->db, "race", NULL, TEV("UsernameClaimed", "{}", "username:other"));
    run_threads(RACE_THREADS, username_racer, w, sizeof *w);
    pthread_barrier_destroy(&b);
    TU_ASSERT_NO_THREAD_FAILURES();
    for (k = 0; k < RACE_NAMES; k++) {
        char tag[64];
        int winners = 0;
        uint64_t pos = 0;
        tu_events e;
        snprintf(tag, sizeof tag, "username:n%d", k);
        for (i = 0; i < RACE_THREADS; i++)
            if (w[i].name_pos[k] != 0) {
                winners++;
                pos = w[i].name_pos[k];
            }
        if (winners != 1)
            print_error("%s claimed by %d threads\n", tag, winners);
        assert_int_equal(winners, 1);
        e = query_events(s->db, "race",
                         QUERY({TYPES("UsernameClaimed"), .tags = STRS(tag),
                                .ntags = 1}),
                         0, FWD, 0, NULL);
        assert_int_equal(e.n, 1);
        assert_int_equal(e.v[0].position, pos);
        tu_events_free(&e);
    }
    for (i = 0; i < RACE_THREADS; i++)
        conflicts += w[i].conflicts;
    print_message("username race: %u conflicts retried\n", conflicts);
    /* Nothing but the claims was written. */
    assert_int_equal(tu_head(s->db, NULL), 1 + RACE_NAMES);
    free(w);
}

/* Phase 0: every thread's student to course "hot" (capacity 5).
 * Phase 1: every thread for the one student "busy", each to its own
 * course (capacity 10), limit 3. Phase 2: student m<i> to courses
 * m0..m3 (capacity 6 each) starting at course i % 4, limit 2. */
#define HOT_CAPACITY 5
#define MIX_COURSES 4
#define MIX_CAPACITY 6
#define MIX_LIMIT 2

static void *course_racer(void *arg)
{
    racer *w = arg;
    char student[32], course[32];
    int c, rc;
    uint64_t p = 0;

    pthread_barrier_wait(w->start);
    snprintf(student, sizeof student, "s%d", w->idx);
    rc = course_subscribe(w->db, "race", "hot", student, STUDENT_LIMIT, &p,
                          &w->conflicts);
    w->outcome[0][0] = rc;
    w->sub_pos[0][0] = p;

    pthread_barrier_wait(w->start);
    snprintf(course, sizeof course, "own%d", w->idx);
    rc = course_subscribe(w->db, "race", course, "busy", STUDENT_LIMIT, &p,
                          &w->conflicts);
    w->outcome[1][0] = rc;
    w->sub_pos[1][0] = p;

    pthread_barrier_wait(w->start);
    snprintf(student, sizeof student, "m%d", w->idx);
    for (c = 0; c < MIX_COURSES; c++) {
        int k = (w->idx + c) % MIX_COURSES;
        snprintf(course, sizeof course, "m%d", k);
        rc = course_subscribe(w->db, "race", course, student, MIX_LIMIT, &p,
                              &w->conflicts);
        w->outcome[2][k] = rc;
        w->sub_pos[2][k] = p;
    }
    return NULL;
}

static void test_race_course_subscription(void **state)
{
    tu_store *s = *state;
    pthread_barrier_t b;
    racer *w = racers_new(s->db, RACE_THREADS, &b);
    int i, k, ok = 0, full = 0, limit = 0;
    unsigned conflicts = 0;
    char name[32];

    define_course(s->db, "race", "hot", HOT_CAPACITY, 0);
    for (i = 0; i < RACE_THREADS; i++) {
        snprintf(name, sizeof name, "own%d", i);
        define_course(s->db, "race", name, 10, 0);
    }
    for (k = 0; k < MIX_COURSES; k++) {
        snprintf(name, sizeof name, "m%d", k);
        define_course(s->db, "race", name, MIX_CAPACITY, 0);
    }
    run_threads(RACE_THREADS, course_racer, w, sizeof *w);
    pthread_barrier_destroy(&b);
    TU_ASSERT_NO_THREAD_FAILURES();
    for (i = 0; i < RACE_THREADS; i++)
        conflicts += w[i].conflicts;
    print_message("course race: %u conflicts retried\n", conflicts);

    /* Phase 0: exactly the capacity. */
    for (i = 0; i < RACE_THREADS; i++) {
        ok += w[i].outcome[0][0] == 0;
        full += w[i].outcome[0][0] == SUB_FULL;
    }
    assert_int_equal(ok, HOT_CAPACITY);
    assert_int_equal(full, RACE_THREADS - HOT_CAPACITY);
    assert_int_equal(count_subs(s->db, "race", "course:hot"), HOT_CAPACITY);

    /* Phase 1: exactly the student limit. */
    ok = 0;
    for (i = 0; i < RACE_THREADS; i++) {
        ok += w[i].outcome[1][0] == 0;
        limit += w[i].outcome[1][0] == SUB_STUDENT_LIMIT;
    }
    assert_int_equal(ok, STUDENT_LIMIT);
    assert_int_equal(limit, RACE_THREADS - STUDENT_LIMIT);
    assert_int_equal(count_subs(s->db, "race", "student:busy"),
                     STUDENT_LIMIT);

    /* Phase 2: both limits hold, the store holds exactly the
     * subscriptions reported, and nobody was turned away wrongly: a
     * FULL answer means the course is full, a LIMIT answer that the
     * student is at the limit. */
    {
        int ccount[MIX_COURSES] = {0}, scount[RACE_THREADS] = {0};
        for (k = 0; k < MIX_COURSES; k++)
            for (i = 0; i < RACE_THREADS; i++) {
                int o = w[i].outcome[2][k];
                char ctag[32], stag[32];
                tu_events e;
                if (o != 0 && o != SUB_FULL && o != SUB_STUDENT_LIMIT)
                    print_error("student m%d course m%d: outcome %d\n", i, k,
                                o);
                assert_true(o == 0 || o == SUB_FULL ||
                            o == SUB_STUDENT_LIMIT);
                ccount[k] += o == 0;
                scount[i] += o == 0;
                snprintf(ctag, sizeof ctag, "course:m%d", k);
                snprintf(stag, sizeof stag, "student:m%d", i);
                e = query_events(s->db, "race",
                                 QUERY({TYPES("StudentSubscribedToCourse"),
                                        .tags = STRS(ctag, stag),
                                        .ntags = 2}),
                                 0, FWD, 0, NULL);
                assert_int_equal(e.n, o == 0 ? 1 : 0);
                if (o == 0)
                    assert_int_equal(e.v[0].position, w[i].sub_pos[2][k]);
                tu_events_free(&e);
            }
        for (k = 0; k < MIX_COURSES; k++) {
            snprintf(name, sizeof name, "course:m%d", k);
            assert_true(ccount[k] <= MIX_CAPACITY);
            assert_int_equal(count_subs(s->db, "race", name), ccount[k]);
        }
        for (i = 0; i < RACE_THREADS; i++) {
            snprintf(name, sizeof name, "student:m%d", i);
            assert_true(scount[i] <= MIX_LIMIT);
            assert_int_equal(count_subs(s->db, "race", name), scount[i]);
        }
        for (k = 0; k < MIX_COURSES; k++)
            for (i = 0; i < RACE_THREADS; i++) {
                if (w[i].outcome[2][k] == SUB_FULL)
                    assert_int_equal(ccount[k], MIX_CAPACITY);
                if (w[i].outcome[2][k] == SUB_STUDENT_LIMIT)
                    assert_int_equal(scount[i], MIX_LIMIT);
            }
    }
    free(w);
}

#define INV_PER_THREAD 5

static void *invoice_racer(void *arg)
{
    racer *w = arg;
    pthread_barrier_wait(w->start);
    while (w->ninv < INV_PER_THREAD) {
        int64_t n = 0;
        uint64_t p = 0;
        int rc = invoice_create(w->db, "race", &n, &p, &w->conflicts);
        if (rc != 0) {
            tu_fail("thread %d: invoice: %d (%s): %s", w->idx, rc,
                    tu_errname(rc), evs_last_error());
            return NULL;
        }
        w->numbers[w->ninv] = n;
        w->inv_pos[w->ninv] = p;
        w->ninv++;
    }
    return NULL;
}

static void test_race_invoice_numbers(void **state)
{
    tu_store *s = *state;
    pthread_barrier_t b;
    racer *w = racers_new(s->db, RACE_THREADS, &b);
    const size_t total = RACE_THREADS * INV_PER_THREAD;
    uint64_t *pos_of = calloc(total + 1, sizeof *pos_of);
    unsigned conflicts = 0;
    tu_events e;
    size_t i, j;

    assert_non_null(pos_of);
    run_threads(RACE_THREADS, invoice_racer, w, sizeof *w);
    pthread_barrier_destroy(&b);
    TU_ASSERT_NO_THREAD_FAILURES();
    for (i = 0; i < RACE_THREADS; i++) {
        conflicts += w[i].conflicts;
        assert_int_equal(w[i].ninv, INV_PER_THREAD);
        for (j = 0; j < INV_PER_THREAD; j++) {
            int64_t n = w[i].numbers[j];
            assert_true(n >= 1 && n <= (int64_t)total);
            if (pos_of[n] != 0)
                print_error("invoice number %" PRId64 " given twice\n", n);
            assert_int_equal(pos_of[n], 0);
            pos_of[n] = w[i].inv_pos[j];
        }
    }
    print_message("invoice race: %u conflicts retried\n", conflicts);
    assert_invoices_gapless(s->db, "race", total);
    e = query_events(s->db, "race", QUERY({TYPES("InvoiceCreated")}), 0, FWD,
                     0, NULL);
    for (i = 0; i < e.n; i++)
        assert_int_equal(e.v[i].position, pos_of[i + 1]);
    tu_events_free(&e);
    assert_int_equal(tu_head(s->db, NULL), total);
    free(pos_of);
    free(w);
}

/*
 * A brand-new tenant: the first appends of a tenant create it inside the
 * group commit; a later request of the same group must still see the
 * earlier one's events. Every round, all threads append under "no event
 * of this tenant after 0" to a fresh tenant: exactly one may win.
 */
#define FRESH_ROUNDS 20

typedef struct fresh_racer {
    evs_db *db;
    int idx;
    pthread_barrier_t *start;
    int won[FRESH_ROUNDS];
    uint64_t pos[FRESH_ROUNDS], conflict[FRESH_ROUNDS];
} fresh_racer;

static void *fresh_tenant_racer(void *arg)
{
    fresh_racer *w = arg;
    int k;
    for (k = 0; k < FRESH_ROUNDS; k++) {
        char tenant[32];
        evs_event_data ev = TEV("First", "{}", "first:1");
        evs_append_condition c = {QALL, 0};
        evs_append_result r;
        int rc;
        snprintf(tenant, sizeof tenant, "fresh-%d", k);
        memset(&r, 0, sizeof r);
        pthread_barrier_wait(w->start);
        rc = evs_dcb_append(&r, &w->conflict[k], w->db, tenant, &ev, 1, &c);
        if (rc == 0) {
            w->won[k] = 1;
            w->pos[k] = r.first_position;
        } else if (rc != EVS_ECONFLICT) {
            tu_fail("thread %d round %d: %d (%s): %s", w->idx, k, rc,
                    tu_errname(rc), evs_last_error());
        }
    }
    return NULL;
}

static void test_race_fresh_tenant(void **state)
{
    tu_store *s = *state;
    pthread_barrier_t b;
    fresh_racer w[RACE_THREADS];
    int i, k;

    memset(w, 0, sizeof w);
    assert_int_equal(pthread_barrier_init(&b, NULL, RACE_THREADS), 0);
    for (i = 0; i < RACE_THREADS; i++) {
        w[i].db = s->db;
        w[i].idx = i;
        w[i].start = &b;
    }
    tu_failures_reset();
    run_threads(RACE_THREADS, fresh_tenant_racer, w, sizeof *w);
    pthread_barrier_destroy(&b);
    TU_ASSERT_NO_THREAD_FAILURES();
    for (k = 0; k < FRESH_ROUNDS; k++) {
        char tenant[32];
        int winners = 0;
        uint64_t pos = 0;
        for (i = 0; i < RACE_THREADS; i++)
            if (w[i].won[k]) {
                winners++;
                pos = w[i].pos[k];
            }
        if (winners != 1)
            print_error("round %d: %d winners\n", k, winners);
        assert_int_equal(winners, 1);
        /* Every loser was told the winner's position. */
        for (i = 0; i < RACE_THREADS; i++)
            if (!w[i].won[k])
                assert_int_equal(w[i].conflict[k], pos);
        snprintf(tenant, sizeof tenant, "fresh-%d", k);
        EXPECT_Q(s->db, tenant, QALL, 0, FWD, 0, ANY_MARKER, PL(pos));
    }
    assert_int_equal(tu_head(s->db, NULL), FRESH_ROUNDS);
}

/*
 * One boundary guarded two ways at once: a counter kept in stream
 * "counter". Even threads decide on a query read of "$stream:counter"
 * (backward, limit 1) and append under a condition on it; odd threads
 * read the stream and append with an exact expected version. Each must
 * see the other's appends, also inside one group: the values are 0, 1,
 * ... at versions 0, 1, ....
 */
#define COUNTER_PER_THREAD 5

static int counter_step(evs_db *db, int dcb, int64_t *value, unsigned *conflicts)
{
    int attempt;
    for (attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        tu_events e = {0};
        int64_t next = 0, version = EVS_NO_STREAM;
        uint64_t marker = 0, conflict = 0;
        char json[64];
        evs_event_data ev;
        evs_append_result r;
        int rc;
        if (dcb) {
            evs_query q = QUERY({TAGS("$stream:counter")});
            rc = tu_read_query(&e, &marker, db, "race", &q, 0, EVS_BACKWARD,
                               1);
        } else {
            rc = tu_read_stream(&e, db, "race", "counter", EVS_END,
                                EVS_BACKWARD, 1);
        }
        if (rc != 0) {
            tu_events_free(&e);
            return rc;
        }
        if (e.n == 1) {
            next = json_int(e.v[0].data, "v") + 1;
            version = e.v[0].stream_version;
            if (version != next - 1)
                tu_fail("counter value %" PRId64 " at version %" PRId64,
                        next - 1, version);
        }
        tu_events_free(&e);
        snprintf(json, sizeof json, "{\"v\":%" PRId64 "}", next);
        ev = TEV0("Counted", json);
        memset(&r, 0, sizeof r);
        if (dcb) {
            evs_stream_append part = {"counter", EVS_ANY, &ev, 1};
            evs_append_condition c = {QUERY({TAGS("$stream:counter")}),
                                      marker};
            evs_append_request req = EVS_APPEND_REQUEST_INIT;
            req.tenant = "race";
            req.parts = &part;
            req.nparts = 1;
            req.conditions = &c;
            req.nconditions = 1;
            rc = evs_append_ex(&r, &conflict, db, &req);
        } else {
            rc = evs_append(&r, db, "race", "counter", version, &ev, 1);
        }
        if (rc == 0) {
            if (r.first_version != next)
                tu_fail("value %" PRId64 " written at version %" PRId64, next,
                        r.first_version);
            *value = next;
            return 0;
        }
        if (rc != EVS_ECONFLICT)
            return rc;
        (*conflicts)++;
    }
    tu_fail("counter: no step after %d attempts", attempt);
    return EVS_EBACKEND;
}

static void *counter_racer(void *arg)
{
    racer *w = arg;
    pthread_barrier_wait(w->start);
    while (w->ninv < COUNTER_PER_THREAD) {
        int64_t v = -1;
        int rc = counter_step(w->db, w->idx % 2 == 0, &v, &w->conflicts);
        if (rc != 0) {
            tu_fail("thread %d: counter: %d (%s): %s", w->idx, rc,
                    tu_errname(rc), evs_last_error());
            return NULL;
        }
        w->numbers[w->ninv++] = v;
    }
    return NULL;
}

static void test_race_stream_boundary_mixed(void **state)
{
    tu_store *s = *state;
    pthread_barrier_t b;
    racer *w = racers_new(s->db, RACE_THREADS, &b);
    const size_t total = RACE_THREADS * COUNTER_PER_THREAD;
    int *seen = calloc(total, sizeof *seen);
    unsigned conflicts = 0;
    tu_events e = {0};
    size_t i, j;

    assert_non_null(seen);
    put(s->db, "race", "other", TEV0("Counted", "{\"v\":100}"));
    run_threads(RACE_THREADS, counter_racer, w, sizeof *w);
    pthread_barrier_destroy(&b);
    TU_ASSERT_NO_THREAD_FAILURES();
    for (i = 0; i < RACE_THREADS; i++) {
        conflicts += w[i].conflicts;
        for (j = 0; j < w[i].ninv; j++) {
            int64_t v = w[i].numbers[j];
            assert_true(v >= 0 && v < (int64_t)total);
            assert_int_equal(seen[v], 0);
            seen[v] = 1;
        }
    }
    print_message("counter race: %u conflicts retried\n", conflicts);
    TU_OK(tu_read_stream(&e, s->db, "race", "counter", 0, EVS_FORWARD, 0));
    assert_int_equal(e.n, total);
    for (i = 0; i < e.n; i++) {
        assert_int_equal(e.v[i].stream_version, (int64_t)i);
        assert_int_equal(json_int(e.v[i].data, "v"), (int64_t)i);
    }
    tu_events_free(&e);
    free(seen);
    free(w);
}

/*
 * Queries beside appends: every read is a snapshot of whole appends. Two
 * writers append batches of 3 events tagged "all" and "batch:<w>-<k>";
 * two readers query {tags: [all]} forward and backward until the writers
 * are done: every batch is seen whole, in order, and the marker is never
 * below an event returned.
 */
#define BATCHES 60

typedef struct rw_thread {
    evs_db *db;
    int idx;
    volatile int *done;
    pthread_barrier_t *start;
    unsigned reads;
} rw_thread;

static void *batch_writer(void *arg)
{
    rw_thread *w = arg;
    int k;
    pthread_barrier_wait(w->start);
    for (k = 0; k < BATCHES; k++) {
        char tag[32];
        const char *tags[2] = {"all", tag};
        evs_event_data ev[3];
        int i, rc;
        snprintf(tag, sizeof tag, "batch:%d-%d", w->idx, k);
        for (i = 0; i < 3; i++)
            ev[i] = tev_("Batched", "{}", tags, 2);
        rc = w->idx == 0 ? evs_dcb_append(NULL, NULL, w->db, "rw", ev, 3, NULL)
                         : evs_append(NULL, w->db, "rw", "batches", EVS_ANY,
                                      ev, 3);
        if (rc != 0)
            tu_fail("writer %d: %d (%s): %s", w->idx, rc, tu_errname(rc),
                    evs_last_error());
    }
    __atomic_add_fetch(w->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void *batch_reader(void *arg)
{
    rw_thread *w = arg;
    evs_query q = QUERY({TAGS("all")});
    pthread_barrier_wait(w->start);
    while (__atomic_load_n(w->done, __ATOMIC_SEQ_CST) < 2 || w->reads < 3) {
        evs_direction dir = (w->reads + (unsigned)w->idx) % 2 ? BWD : FWD;
        tu_events e = {0};
        uint64_t marker = 0, head_before = 0;
        size_t i;
        int rc = evs_head_position(&head_before, w->db, NULL);
        if (rc == 0)
            rc = tu_read_query(&e, &marker, w->db, "rw", &q, 0, dir, 0);
        w->reads++;
        if (rc != 0) {
            tu_fail("reader: %d (%s): %s", rc, tu_errname(rc),
                    evs_last_error());
            tu_events_free(&e);
            return NULL;
        }
        if (e.n % 3 != 0)
            tu_fail("reader saw %zu events: not whole appends", e.n);
        if (marker < head_before)
            tu_fail("marker %" PRIu64 " below the head %" PRIu64
                    " before the read",
                    marker, head_before);
        for (i = 0; i < e.n; i++) {
            size_t first = i - i % 3;
            if (e.v[i].position > marker)
                tu_fail("event %" PRIu64 " beyond the marker %" PRIu64,
                        e.v[i].position, marker);
            if (i > 0 && (dir == FWD ? e.v[i].position <= e.v[i - 1].position
                                     : e.v[i].position >= e.v[i - 1].position))
                tu_fail("positions out of order");
            if (e.v[i].ntags != 2 ||
                strcmp(e.v[i].tags[1], e.v[first].tags[1]) != 0)
                tu_fail("event %" PRIu64 " not of the batch of %" PRIu64,
                        e.v[i].position, e.v[first].position);
        }
        tu_events_free(&e);
        if (tu_failures() > 0)
            return NULL;
    }
    return NULL;
}

static void test_queries_beside_appends(void **state)
{
    tu_store *s = *state;
    pthread_barrier_t b;
    volatile int done = 0;
    rw_thread t[4];
    pthread_t th[4];
    int i;

    memset(t, 0, sizeof t);
    tu_failures_reset();
    assert_int_equal(pthread_barrier_init(&b, NULL, 4), 0);
    for (i = 0; i < 4; i++) {
        t[i].db = s->db;
        t[i].idx = i;
        t[i].done = &done;
        t[i].start = &b;
        assert_int_equal(pthread_create(&th[i], NULL,
                                        i < 2 ? batch_writer : batch_reader,
                                        &t[i]),
                         0);
    }
    for (i = 0; i < 4; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    pthread_barrier_destroy(&b);
    TU_ASSERT_NO_THREAD_FAILURES();
    print_message("%u + %u reads beside the appends\n", t[2].reads,
                  t[3].reads);
    {
        tu_events e = query_events(s->db, "rw", QUERY({TAGS("all")}), 0, FWD,
                                   0, NULL);
        assert_int_equal(e.n, 2 * BATCHES * 3);
        tu_events_free(&e);
        for (i = 0; i < 2 * BATCHES; i++) {
            char tag[32];
            snprintf(tag, sizeof tag, "batch:%d-%d", i % 2, i / 2);
            e = query_events(s->db, "rw",
                             QUERY({.tags = STRS(tag), .ntags = 1}), 0, FWD,
                             0, NULL);
            assert_int_equal(e.n, 3);
            assert_int_equal(e.v[1].position, e.v[0].position + 1);
            assert_int_equal(e.v[2].position, e.v[0].position + 2);
            assert_string_equal(e.v[0].stream, i % 2 ? "batches" : "");
            tu_events_free(&e);
        }
    }
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, tu_setup_store, \
                                              tu_teardown_store)
    const struct CMUnitTest tests[] = {
        T(test_race_unique_username),
        T(test_race_course_subscription),
        T(test_race_invoice_numbers),
        T(test_race_fresh_tenant),
        T(test_race_stream_boundary_mixed),
        T(test_queries_beside_appends),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
