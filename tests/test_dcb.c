/*
 * test_dcb.c -- dynamic consistency boundaries (dcb.events): the worked
 * examples of the specification (unique username, course subscriptions,
 * gapless invoice numbers), alone and raced by threads; query semantics,
 * consistency markers, append conditions, idempotent retries, streamless
 * events, payload-derived tags, tenant isolation, bad input and
 * persistence of the tag index.
 *
 * The contract checked is the DCB section of include/evstore.h. Worker
 * threads never call cmocka assertions (they longjmp); they record
 * failures with tu_fail() and the main thread checks after joining.
 */
#include "testutil.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Building queries, events and expected results                       */
/* ------------------------------------------------------------------ */

#define STRS(...) ((const char *const[]){__VA_ARGS__})
#define NSTRS(...) (sizeof(STRS(__VA_ARGS__)) / sizeof(const char *))
/* Members of an evs_query_item initializer. */
#define TYPES(...) .types = STRS(__VA_ARGS__), .ntypes = NSTRS(__VA_ARGS__)
#define TAGS(...) .tags = STRS(__VA_ARGS__), .ntags = NSTRS(__VA_ARGS__)
/* An evs_query of the given items: QUERY({TYPES("A")}, {TAGS("x:1")}). */
#define QUERY(...)                                                           \
    ((evs_query){(const evs_query_item[]){__VA_ARGS__},                      \
                 sizeof((const evs_query_item[]){__VA_ARGS__}) /             \
                     sizeof(evs_query_item)})
/* The query without items: matches every event. */
#define QALL ((evs_query){NULL, 0})

/* An expected list of positions (two arguments: array, count). */
#define PL(...)                                                              \
    ((const uint64_t[]){__VA_ARGS__}),                                       \
        (sizeof((const uint64_t[]){__VA_ARGS__}) / sizeof(uint64_t))
#define NONE NULL, 0

/* A marker value meaning "do not check the marker". */
#define ANY_MARKER UINT64_MAX

#define FWD EVS_FORWARD
#define BWD EVS_BACKWARD

static evs_event_data tev_(const char *type, const char *json,
                           const char *const *tags, size_t ntags)
{
    evs_event_data e = tu_event(type, json);
    e.tags = tags;
    e.ntags = ntags;
    return e;
}
/* A JSON event with tags: TEV("Type", "{}", "a:1", "b:2"). */
#define TEV(type, json, ...)                                                 \
    tev_(type, json, STRS(__VA_ARGS__), NSTRS(__VA_ARGS__))
#define TEV0(type, json) tev_(type, json, NULL, 0)

static void fmt_positions(char *buf, size_t cap, const uint64_t *v,
                          size_t n)
{
    size_t i, len = 0;
    len += (size_t)snprintf(buf + len, cap - len, "[");
    for (i = 0; i < n && len + 24 < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%" PRIu64,
                                i ? "," : "", v[i]);
    if (i < n)
        len += (size_t)snprintf(buf + len, cap - len, ",...");
    snprintf(buf + len, cap - len, "]");
}

/* Positions of a result list into a malloc'd array. */
static uint64_t *positions_of(const tu_events *e)
{
    uint64_t *v = malloc((e->n + 1) * sizeof *v);
    size_t i;
    assert_non_null(v);
    for (i = 0; i < e->n; i++)
        v[i] = e->v[i].position;
    return v;
}

static void assert_positions_(const tu_events *e, const uint64_t *want,
                              size_t nwant, const char *what,
                              const char *file, int line)
{
    uint64_t *got = positions_of(e);
    int ok = e->n == nwant;
    size_t i;
    for (i = 0; ok && i < nwant; i++)
        ok = got[i] == want[i];
    if (!ok) {
        char a[2048], b[2048];
        fmt_positions(a, sizeof a, got, e->n);
        fmt_positions(b, sizeof b, want, nwant);
        print_error("%s:%d: %s returned positions %s, expected %s\n", file,
                    line, what, a, b);
    }
    free(got);
    assert_true(ok);
}
#define ASSERT_POSITIONS(e, list)                                            \
    assert_positions_(e, list, "read", __FILE__, __LINE__)

/*
 * Run the query and check the positions returned (in order), that every
 * event belongs to the tenant, and the marker after the end (unless
 * want_marker is ANY_MARKER).
 */
static void expect_q_(evs_db *db, const char *tenant, evs_query q,
                      uint64_t bound, evs_direction dir, uint64_t limit,
                      uint64_t want_marker, const uint64_t *want,
                      size_t nwant, const char *file, int line)
{
    tu_events e = {0};
    uint64_t marker = 0xdeadbeef;
    size_t i;
    int rc = tu_read_query(&e, &marker, db, tenant, &q, bound, dir, limit);
    char what[160];

    if (rc != 0)
        tu_report_rc("evs_read_query", rc, 0, file, line);
    assert_int_equal(rc, 0);
    snprintf(what, sizeof what,
             "query (tenant \"%s\", %zu items, %s, bound %" PRIu64
             ", limit %" PRIu64 ")",
             tenant ? tenant : "", q.nitems,
             dir == EVS_FORWARD ? "forward" : "backward", bound, limit);
    assert_positions_(&e, want, nwant, what, file, line);
    for (i = 0; i < e.n; i++) {
        if (strcmp(e.v[i].tenant, tenant ? tenant : "") != 0)
            print_error("%s:%d: event %" PRIu64 " of tenant \"%s\" returned "
                        "to tenant \"%s\"\n",
                        file, line, e.v[i].position, e.v[i].tenant,
                        tenant ? tenant : "");
        assert_string_equal(e.v[i].tenant, tenant ? tenant : "");
    }
    if (want_marker != ANY_MARKER && marker != want_marker) {
        print_error("%s:%d: %s: marker %" PRIu64 ", expected %" PRIu64 "\n",
                    file, line, what, marker, want_marker);
        assert_int_equal(marker, want_marker);
    }
    tu_events_free(&e);
}
#define EXPECT_Q(db, tenant, q, bound, dir, limit, marker, list)             \
    expect_q_(db, tenant, q, bound, dir, limit, marker, list, __FILE__,      \
              __LINE__)

/* Run a query; return its events (asserts success) and marker. */
static tu_events query_events(evs_db *db, const char *tenant, evs_query q,
                              uint64_t bound, evs_direction dir,
                              uint64_t limit, uint64_t *marker)
{
    tu_events e = {0};
    uint64_t m = 0;
    TU_OK(tu_read_query(&e, &m, db, tenant, &q, bound, dir, limit));
    if (marker != NULL)
        *marker = m;
    return e;
}

/* Append one event to stream (NULL: no stream) with EVS_ANY; returns
 * its position. Asserts. */
static uint64_t put(evs_db *db, const char *tenant, const char *stream,
                    evs_event_data ev)
{
    evs_append_result r;
    memset(&r, 0, sizeof r);
    if (stream != NULL)
        TU_OK(evs_append(&r, db, tenant, stream, EVS_ANY, &ev, 1));
    else
        TU_OK(evs_dcb_append(&r, NULL, db, tenant, &ev, 1, NULL));
    assert_int_equal(r.first_position, r.last_position);
    return r.first_position;
}

/* A snapshot of what a rejected call must leave unchanged. */
typedef struct snap {
    evs_stats st;
} snap;

static snap take_snap(evs_db *db)
{
    snap s;
    s.st = tu_stats(db);
    return s;
}

static void assert_unchanged_(evs_db *db, snap before, const char *file,
                              int line)
{
    evs_stats now = tu_stats(db);
    if (now.events != before.st.events ||
        now.head_position != before.st.head_position ||
        now.streams != before.st.streams ||
        now.tenants != before.st.tenants)
        print_error("%s:%d: the store changed: events %" PRIu64 " -> %" PRIu64
                    ", head %" PRIu64 " -> %" PRIu64 ", streams %" PRIu64
                    " -> %" PRIu64 "\n",
                    file, line, before.st.events, now.events,
                    before.st.head_position, now.head_position,
                    before.st.streams, now.streams);
    assert_int_equal(now.events, before.st.events);
    assert_int_equal(now.head_position, before.st.head_position);
    assert_int_equal(now.streams, before.st.streams);
    assert_int_equal(now.tenants, before.st.tenants);
}
#define ASSERT_UNCHANGED(db, before)                                         \
    assert_unchanged_(db, before, __FILE__, __LINE__)

/* The store still works: a conditional streamless append, then a query
 * that finds exactly it, then a stream append. */
static void assert_usable(evs_db *db)
{
    static unsigned n;
    char tag[64];
    const char *tags[1] = {tag};
    evs_event_data ev;
    evs_query_item item = {NULL, 0, tags, 1};
    evs_append_condition c = {{&item, 1}, 0};
    evs_append_result r;
    uint64_t conflict = 99, head = tu_head(db, NULL);
    tu_events e = {0};

    snprintf(tag, sizeof tag, "usable:%u", n++);
    ev = tev_("Usable", "{}", tags, 1);
    TU_OK(evs_dcb_append(&r, &conflict, db, NULL, &ev, 1, &c));
    assert_int_equal(conflict, 0);
    assert_int_equal(r.first_position, head + 1);
    e = query_events(db, NULL, c.fail_if_events_match, 0, FWD, 0, NULL);
    assert_int_equal(e.n, 1);
    assert_int_equal(e.v[0].position, head + 1);
    tu_events_free(&e);
    assert_int_equal(tu_append1(db, NULL, "usable-stream", "Usable", "{}"),
                     head + 2);
}

/* An integer member "key":N of a JSON text (0 if absent). */
static int64_t json_int(const char *json, const char *key)
{
    char pat[64];
    const char *p;
    snprintf(pat, sizeof pat, "\"%s\":", key);
    p = strstr(json, pat);
    return p ? strtoll(p + strlen(pat), NULL, 10) : 0;
}

static int has_tag(const tu_event_copy *e, const char *tag)
{
    size_t i;
    for (i = 0; i < e->ntags; i++)
        if (strcmp(e->tags[i], tag) == 0)
            return 1;
    return 0;
}

/* Start n threads running fn(&args[i * size]) and join them. */
static void run_threads(size_t n, void *(*fn)(void *), void *args,
                        size_t size)
{
    pthread_t *t = calloc(n, sizeof *t);
    size_t i;
    assert_non_null(t);
    for (i = 0; i < n; i++)
        assert_int_equal(
            pthread_create(&t[i], NULL, fn, (char *)args + i * size), 0);
    for (i = 0; i < n; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    free(t);
}

#define MAX_ATTEMPTS 100000

/* ------------------------------------------------------------------ */
/* Example (a): unique username                                        */
/* ------------------------------------------------------------------ */

/* Decision outcomes (positive: never an EVS_E* code). */
#define DECIDED_TAKEN 1
#define SUB_NO_COURSE 2
#define SUB_FULL 3
#define SUB_STUDENT_LIMIT 4
#define SUB_ALREADY 5

static const char *const uname_types[2] = {"UsernameClaimed",
                                           "UsernameChanged"};

/* The username's boundary: {types: claimed|changed, tags: [username:x]}.
 * *taken = some event matched. Does not assert. */
static int username_read(evs_db *db, const char *tenant, const char *tag,
                         int *taken, uint64_t *marker)
{
    const char *tags[1] = {tag};
    evs_query_item item = {uname_types, 2, tags, 1};
    evs_query q = {&item, 1};
    tu_events e = {0};
    int rc = tu_read_query(&e, marker, db, tenant, &q, 0, EVS_FORWARD, 0);
    *taken = e.n > 0;
    tu_events_free(&e);
    return rc;
}

/* Append UsernameClaimed if nothing in the boundary is after marker. */
static int username_append(evs_db *db, const char *tenant, const char *tag,
                           uint64_t marker, uint64_t *position,
                           uint64_t *conflict)
{
    const char *tags[1] = {tag};
    evs_query_item item = {uname_types, 2, tags, 1};
    evs_append_condition c = {{&item, 1}, marker};
    char json[320];
    evs_event_data ev;
    evs_append_result r;
    int rc;

    snprintf(json, sizeof json, "{\"username\":\"%s\"}", tag + 9);
    ev = tev_("UsernameClaimed", json, tags, 1);
    memset(&r, 0, sizeof r);
    *conflict = 0;
    rc = evs_dcb_append(&r, conflict, db, tenant, &ev, 1, &c);
    *position = r.first_position;
    return rc;
}

/* Read, decide, append; retry on conflict. 0 (claimed, *position),
 * DECIDED_TAKEN, or an error code. */
static int username_claim(evs_db *db, const char *tenant, const char *tag,
                          uint64_t *position, unsigned *conflicts)
{
    int attempt;
    for (attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        int taken = 0, rc;
        uint64_t marker = 0, conflict = 0;
        if ((rc = username_read(db, tenant, tag, &taken, &marker)) != 0)
            return rc;
        if (taken)
            return DECIDED_TAKEN;
        rc = username_append(db, tenant, tag, marker, position, &conflict);
        if (rc != EVS_ECONFLICT)
            return rc;
        if (conflict <= marker)
            tu_fail("username %s: conflict at %" PRIu64
                    " is not after the marker %" PRIu64,
                    tag, conflict, marker);
        if (conflicts)
            (*conflicts)++;
    }
    tu_fail("username %s: no decision after %d attempts", tag, attempt);
    return EVS_EBACKEND;
}

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

typedef struct course_state {
    int exists;
    int64_t capacity;
    int course_subs;  /* subscriptions to the course */
    int student_subs; /* subscriptions of the student */
    int already;      /* this student to this course */
    uint64_t marker;
} course_state;

static const char *const course_def_types[2] = {"CourseDefined",
                                                "CourseCapacityChanged"};
static const char *const sub_types[1] = {"StudentSubscribedToCourse"};

/* The decision's query: the course's definition and capacity changes,
 * its subscriptions, and the student's subscriptions. */
typedef struct course_query {
    char ctag[96], stag[96];
    const char *ctags[1], *stags[1];
    evs_query_item items[3];
    evs_query q;
} course_query;

static void course_query_init(course_query *cq, const char *course,
                              const char *student)
{
    snprintf(cq->ctag, sizeof cq->ctag, "course:%s", course);
    snprintf(cq->stag, sizeof cq->stag, "student:%s", student);
    cq->ctags[0] = cq->ctag;
    cq->stags[0] = cq->stag;
    cq->items[0] = (evs_query_item){course_def_types, 2, cq->ctags, 1};
    cq->items[1] = (evs_query_item){sub_types, 1, cq->ctags, 1};
    cq->items[2] = (evs_query_item){sub_types, 1, cq->stags, 1};
    cq->q = (evs_query){cq->items, 3};
}

static int course_read(evs_db *db, const char *tenant, const course_query *cq,
                       course_state *st)
{
    tu_events e = {0};
    size_t i;
    int rc;
    memset(st, 0, sizeof *st);
    rc = tu_read_query(&e, &st->marker, db, tenant, &cq->q, 0, EVS_FORWARD,
                       0);
    for (i = 0; rc == 0 && i < e.n; i++) {
        const tu_event_copy *ev = &e.v[i];
        if (strcmp(ev->type, "CourseDefined") == 0 ||
            strcmp(ev->type, "CourseCapacityChanged") == 0) {
            st->exists = 1;
            st->capacity = json_int(ev->data, "capacity");
        } else if (strcmp(ev->type, "StudentSubscribedToCourse") == 0) {
            int c = has_tag(ev, cq->ctag), s = has_tag(ev, cq->stag);
            if (!c && !s)
                tu_fail("event %" PRIu64 " matches neither %s nor %s",
                        ev->position, cq->ctag, cq->stag);
            st->course_subs += c;
            st->student_subs += s;
            st->already |= c && s;
        } else {
            tu_fail("event %" PRIu64 " of type %s outside the query",
                    ev->position, ev->type);
        }
    }
    tu_events_free(&e);
    return rc;
}

static int course_decide(const course_state *st, int student_limit)
{
    if (!st->exists)
        return SUB_NO_COURSE;
    if (st->already)
        return SUB_ALREADY;
    if (st->course_subs >= st->capacity)
        return SUB_FULL;
    if (st->student_subs >= student_limit)
        return SUB_STUDENT_LIMIT;
    return 0;
}

static int course_append(evs_db *db, const char *tenant,
                         const course_query *cq, uint64_t after,
                         uint64_t *position, uint64_t *conflict)
{
    const char *tags[2] = {cq->ctag, cq->stag};
    char json[256];
    evs_event_data ev;
    evs_append_condition c = {cq->q, after};
    evs_append_result r;
    int rc;
    snprintf(json, sizeof json, "{\"course\":\"%s\",\"student\":\"%s\"}",
             cq->ctag + 7, cq->stag + 8);
    ev = tev_("StudentSubscribedToCourse", json, tags, 2);
    memset(&r, 0, sizeof r);
    *conflict = 0;
    rc = evs_dcb_append(&r, conflict, db, tenant, &ev, 1, &c);
    *position = r.first_position;
    return rc;
}

/* Read, decide, append; retry on conflict. 0 or a SUB_* decision or an
 * error. */
static int course_subscribe(evs_db *db, const char *tenant,
                            const char *course, const char *student,
                            int student_limit, uint64_t *position,
                            unsigned *conflicts)
{
    course_query cq;
    int attempt;
    course_query_init(&cq, course, student);
    for (attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        course_state st;
        uint64_t conflict = 0;
        int rc = course_read(db, tenant, &cq, &st), d;
        if (rc != 0)
            return rc;
        if ((d = course_decide(&st, student_limit)) != 0)
            return d;
        rc = course_append(db, tenant, &cq, st.marker, position, &conflict);
        if (rc != EVS_ECONFLICT)
            return rc;
        if (conflict <= st.marker)
            tu_fail("course %s student %s: conflict at %" PRIu64
                    " not after the marker %" PRIu64,
                    course, student, conflict, st.marker);
        if (conflicts)
            (*conflicts)++;
    }
    tu_fail("course %s student %s: no decision after %d attempts", course,
            student, attempt);
    return EVS_EBACKEND;
}

static uint64_t define_course(evs_db *db, const char *tenant,
                              const char *course, int capacity,
                              int changed)
{
    char json[128], tag[96];
    const char *tags[1] = {tag};
    snprintf(json, sizeof json, "{\"course\":\"%s\",\"capacity\":%d}", course,
             capacity);
    snprintf(tag, sizeof tag, "course:%s", course);
    return put(db, tenant, NULL,
               tev_(changed ? "CourseCapacityChanged" : "CourseDefined", json,
                    tags, 1));
}

/* Subscriptions of a course or a student, counted by a query. */
static size_t count_subs(evs_db *db, const char *tenant, const char *tag)
{
    const char *tags[1] = {tag};
    evs_query_item item = {sub_types, 1, tags, 1};
    tu_events e = query_events(db, tenant, (evs_query){&item, 1}, 0, FWD, 0,
                               NULL);
    size_t n = e.n;
    tu_events_free(&e);
    return n;
}

#define STUDENT_LIMIT 3

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

static const char *const invoice_types[1] = {"InvoiceCreated"};

/* Backward limit-1 read of InvoiceCreated: *last = its number (0: none). */
static int invoice_read(evs_db *db, const char *tenant, int64_t *last,
                        uint64_t *marker)
{
    evs_query_item item = {invoice_types, 1, NULL, 0};
    evs_query q = {&item, 1};
    tu_events e = {0};
    int rc = tu_read_query(&e, marker, db, tenant, &q, 0, EVS_BACKWARD, 1);
    *last = 0;
    if (rc == 0 && e.n > 1)
        tu_fail("backward limit-1 read returned %zu events", e.n);
    if (rc == 0 && e.n == 1)
        *last = json_int(e.v[0].data, "number");
    tu_events_free(&e);
    return rc;
}

static int invoice_append(evs_db *db, const char *tenant, int64_t number,
                          uint64_t after, uint64_t *position,
                          uint64_t *conflict)
{
    evs_query_item item = {invoice_types, 1, NULL, 0};
    evs_append_condition c = {{&item, 1}, after};
    char json[64], tag[64];
    const char *tags[1] = {tag};
    evs_event_data ev;
    evs_append_result r;
    int rc;
    snprintf(json, sizeof json, "{\"number\":%" PRId64 "}", number);
    snprintf(tag, sizeof tag, "invoice:%" PRId64, number);
    ev = tev_("InvoiceCreated", json, tags, 1);
    memset(&r, 0, sizeof r);
    *conflict = 0;
    rc = evs_dcb_append(&r, conflict, db, tenant, &ev, 1, &c);
    *position = r.first_position;
    return rc;
}

/* Read, number, append; retry on conflict. */
static int invoice_create(evs_db *db, const char *tenant, int64_t *number,
                          uint64_t *position, unsigned *conflicts)
{
    int attempt;
    for (attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        int64_t last = 0;
        uint64_t marker = 0, conflict = 0;
        int rc = invoice_read(db, tenant, &last, &marker);
        if (rc != 0)
            return rc;
        rc = invoice_append(db, tenant, last + 1, marker, position,
                            &conflict);
        if (rc == 0)
            *number = last + 1;
        if (rc != EVS_ECONFLICT)
            return rc;
        if (conflict <= marker)
            tu_fail("invoice: conflict at %" PRIu64
                    " not after the marker %" PRIu64,
                    conflict, marker);
        if (conflicts)
            (*conflicts)++;
    }
    tu_fail("invoice: no number after %d attempts", attempt);
    return EVS_EBACKEND;
}

/* Every InvoiceCreated of the tenant in position order has number 1, 2,
 * ... n. */
static void assert_invoices_gapless(evs_db *db, const char *tenant,
                                    size_t n)
{
    tu_events e = query_events(db, tenant, QUERY({TYPES("InvoiceCreated")}),
                               0, FWD, 0, NULL);
    size_t i;
    assert_int_equal(e.n, n);
    for (i = 0; i < e.n; i++) {
        char tag[64];
        if (json_int(e.v[i].data, "number") != (int64_t)i + 1)
            print_error("invoice %zu (position %" PRIu64 ") has number %s\n",
                        i + 1, e.v[i].position, e.v[i].data);
        assert_int_equal(json_int(e.v[i].data, "number"), (int64_t)i + 1);
        snprintf(tag, sizeof tag, "invoice:%zu", i + 1);
        assert_true(has_tag(&e.v[i], tag));
    }
    tu_events_free(&e);
}

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

/* ------------------------------------------------------------------ */
/* Query semantics                                                     */
/* ------------------------------------------------------------------ */

/*
 * The fixture, in a fresh store (default tenant unless said):
 *   1  s1  A  x:1
 *   2  s1  B  x:1 y:1
 *   3  s2  A  y:1
 *   4  --  C  x:1 y:1 z:1
 *   5  s2  B  (no tags)
 *   6  tenant "other": s1 A x:1
 *   7  s3  A  x:2
 *   8  --  B  z:1
 *   9  tenant "other": -- C z:1
 * Global head 9; the default tenant's newest event is 8.
 */
static void build_fixture(evs_db *db)
{
    assert_int_equal(put(db, NULL, "s1", TEV("A", "{\"n\":1}", "x:1")), 1);
    assert_int_equal(put(db, NULL, "s1", TEV("B", "{\"n\":2}", "x:1", "y:1")),
                     2);
    assert_int_equal(put(db, NULL, "s2", TEV("A", "{\"n\":3}", "y:1")), 3);
    assert_int_equal(put(db, NULL, NULL,
                         TEV("C", "{\"n\":4}", "x:1", "y:1", "z:1")),
                     4);
    assert_int_equal(put(db, NULL, "s2", TEV0("B", "{\"n\":5}")), 5);
    assert_int_equal(put(db, "other", "s1", TEV("A", "{\"n\":6}", "x:1")), 6);
    assert_int_equal(put(db, NULL, "s3", TEV("A", "{\"n\":7}", "x:2")), 7);
    assert_int_equal(put(db, NULL, NULL, TEV("B", "{\"n\":8}", "z:1")), 8);
    assert_int_equal(put(db, "other", NULL, TEV("C", "{\"n\":9}", "z:1")), 9);
}

static void test_query_types_or_tags_and(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    build_fixture(db);
    EXPECT_Q(db, NULL, QUERY({TYPES("A")}), 0, FWD, 0, 9, PL(1, 3, 7));
    EXPECT_Q(db, NULL, QUERY({TYPES("A", "B")}), 0, FWD, 0, 9,
             PL(1, 2, 3, 5, 7, 8));
    EXPECT_Q(db, NULL, QUERY({TYPES("C", "Nope")}), 0, FWD, 0, 9, PL(4));
    EXPECT_Q(db, NULL, QUERY({TAGS("x:1")}), 0, FWD, 0, 9, PL(1, 2, 4));
    EXPECT_Q(db, NULL, QUERY({TAGS("x:1", "y:1")}), 0, FWD, 0, 9, PL(2, 4));
    EXPECT_Q(db, NULL, QUERY({TAGS("y:1", "x:1", "z:1")}), 0, FWD, 0, 9,
             PL(4));
    EXPECT_Q(db, NULL, QUERY({TYPES("B"), TAGS("x:1")}), 0, FWD, 0, 9, PL(2));
    EXPECT_Q(db, NULL, QUERY({TYPES("A", "C"), TAGS("y:1")}), 0, FWD, 0, 9,
             PL(3, 4));
    EXPECT_Q(db, NULL, QUERY({TYPES("A", "B", "C"), TAGS("x:1", "y:1")}), 0,
             FWD, 0, 9, PL(2, 4));
    /* Nothing matches: unknown type, unknown tag, tag of another type. */
    EXPECT_Q(db, NULL, QUERY({TYPES("Nope")}), 0, FWD, 0, 9, NONE);
    EXPECT_Q(db, NULL, QUERY({TAGS("x:1", "nope")}), 0, FWD, 0, 9, NONE);
    EXPECT_Q(db, NULL, QUERY({TYPES("C"), TAGS("x:2")}), 0, FWD, 0, 9, NONE);
    /* Exact matches only: no prefixes, case-sensitive. */
    EXPECT_Q(db, NULL, QUERY({TYPES("a")}), 0, FWD, 0, 9, NONE);
    EXPECT_Q(db, NULL, QUERY({TAGS("x")}), 0, FWD, 0, 9, NONE);
    EXPECT_Q(db, NULL, QUERY({TAGS("x:")}), 0, FWD, 0, 9, NONE);
    EXPECT_Q(db, NULL, QUERY({TAGS("X:1")}), 0, FWD, 0, 9, NONE);
}

static void test_query_items_or(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    build_fixture(db);
    EXPECT_Q(db, NULL, QUERY({TYPES("A"), TAGS("x:1")}, {TAGS("z:1")}), 0,
             FWD, 0, 9, PL(1, 4, 8));
    /* An event matching several items is returned once, in order. */
    EXPECT_Q(db, NULL, QUERY({TAGS("z:1")}, {TYPES("A")}, {TAGS("x:1")}), 0,
             FWD, 0, 9, PL(1, 2, 3, 4, 7, 8));
    EXPECT_Q(db, NULL, QUERY({TYPES("Nope")}, {TYPES("C")}), 0, FWD, 0, 9,
             PL(4));
    EXPECT_Q(db, NULL, QUERY({TYPES("Nope")}, {TAGS("nope")}), 0, FWD, 0, 9,
             NONE);
    EXPECT_Q(db, NULL,
             QUERY({TYPES("B"), TAGS("y:1")}, {TYPES("B"), TAGS("z:1")},
                   {TYPES("A"), TAGS("x:2")}),
             0, BWD, 0, 9, PL(8, 7, 2));
    /* The same item twice changes nothing. */
    EXPECT_Q(db, NULL, QUERY({TYPES("A")}, {TYPES("A")}), 0, FWD, 0, 9,
             PL(1, 3, 7));
}

static void test_query_match_all(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_query_item empty = {NULL, 0, NULL, 0};
    build_fixture(db);
    /* nitems == 0: everything of the tenant. */
    EXPECT_Q(db, NULL, QALL, 0, FWD, 0, 9, PL(1, 2, 3, 4, 5, 7, 8));
    EXPECT_Q(db, "other", QALL, 0, FWD, 0, 9, PL(6, 9));
    EXPECT_Q(db, "nobody", QALL, 0, FWD, 0, 9, NONE);
    EXPECT_Q(db, NULL, QALL, 0, BWD, 0, 9, PL(8, 7, 5, 4, 3, 2, 1));
    EXPECT_Q(db, NULL, QALL, 3, FWD, 2, 5, PL(4, 5));
    /* An item with neither types nor tags matches everything, also when
     * OR'ed with narrower items. */
    EXPECT_Q(db, NULL, ((evs_query){&empty, 1}), 0, FWD, 0, 9,
             PL(1, 2, 3, 4, 5, 7, 8));
    EXPECT_Q(db, NULL, QUERY({TYPES("A")}, {0}), 0, FWD, 0, 9,
             PL(1, 2, 3, 4, 5, 7, 8));
    EXPECT_Q(db, "other", QUERY({TYPES("Nope")}, {0}), 0, BWD, 0, 9,
             PL(9, 6));
    /* Non-NULL arrays with zero counts are "any" too. */
    EXPECT_Q(db, NULL,
             QUERY({.types = STRS("A"), .ntypes = 0, .tags = STRS("nope"),
                    .ntags = 0}),
             0, FWD, 0, 9, PL(1, 2, 3, 4, 5, 7, 8));
}

static void test_query_stream_tag(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    build_fixture(db);
    EXPECT_Q(db, NULL, QUERY({TAGS("$stream:s1")}), 0, FWD, 0, 9, PL(1, 2));
    EXPECT_Q(db, "other", QUERY({TAGS("$stream:s1")}), 0, FWD, 0, 9, PL(6));
    EXPECT_Q(db, NULL, QUERY({TAGS("$stream:s2")}), 0, BWD, 0, 9, PL(5, 3));
    EXPECT_Q(db, NULL, QUERY({TAGS("$stream:nope")}), 0, FWD, 0, 9, NONE);
    /* A stream name is not a prefix. */
    EXPECT_Q(db, NULL, QUERY({TAGS("$stream:s")}), 0, FWD, 0, 9, NONE);
    /* Combined with types and tags (AND) and other items (OR). */
    EXPECT_Q(db, NULL, QUERY({TYPES("B"), TAGS("$stream:s1")}), 0, FWD, 0, 9,
             PL(2));
    EXPECT_Q(db, NULL, QUERY({TAGS("$stream:s1", "y:1")}), 0, FWD, 0, 9,
             PL(2));
    EXPECT_Q(db, NULL, QUERY({TAGS("y:1", "$stream:s2")}), 0, FWD, 0, 9,
             PL(3));
    EXPECT_Q(db, NULL, QUERY({TYPES("C"), TAGS("$stream:s1")}), 0, FWD, 0, 9,
             NONE);
    EXPECT_Q(db, NULL, QUERY({TAGS("$stream:s2")}, {TYPES("C")}), 0, FWD, 0,
             9, PL(3, 4, 5));
    EXPECT_Q(db, NULL, QUERY({TAGS("$stream:s1")}, {TAGS("$stream:s3")}), 0,
             FWD, 0, 9, PL(1, 2, 7));
    /* An event is in one stream only. */
    EXPECT_Q(db, NULL, QUERY({TAGS("$stream:s1", "$stream:s2")}), 0, FWD, 0,
             9, NONE);
    /* Stream names with ':' and the longest stream name (256 bytes: a
     * "$stream:" tag may exceed the tag limit by its prefix). */
    {
        char name[EVS_MAX_STREAM_LEN + 1];
        char tag[sizeof(EVS_STREAM_TAG_PREFIX) + EVS_MAX_STREAM_LEN];
        uint64_t p1, p2;
        size_t n = EVS_MAX_STREAM_LEN;
        p1 = put(db, NULL, "order:7", TEV0("A", "{}"));
        memset(name, 'n', n);
        name[n] = '\0';
        p2 = put(db, NULL, name, TEV0("A", "{}"));
        memcpy(tag, EVS_STREAM_TAG_PREFIX, strlen(EVS_STREAM_TAG_PREFIX));
        memcpy(tag + strlen(EVS_STREAM_TAG_PREFIX), name, n + 1);
        assert_int_equal(strlen(tag), strlen(EVS_STREAM_TAG_PREFIX) + EVS_MAX_STREAM_LEN);
        EXPECT_Q(db, NULL, QUERY({TAGS("$stream:order:7")}), 0, FWD, 0, p2,
                 PL(p1));
        EXPECT_Q(db, NULL, QUERY({TAGS("$stream:order")}), 0, FWD, 0, p2,
                 NONE);
        EXPECT_Q(db, NULL, QUERY({.tags = STRS(tag), .ntags = 1}), 0, BWD, 0,
                 p2, PL(p2));
    }
    /* The stream tag is not stored on the events. */
    {
        tu_events e = query_events(db, NULL, QUERY({TAGS("$stream:s1")}), 0,
                                   FWD, 0, NULL);
        assert_int_equal(e.n, 2);
        tu_assert_tags(&e.v[0], STRS("x:1"), 1);
        tu_assert_tags(&e.v[1], STRS("x:1", "y:1"), 2);
        assert_string_equal(e.v[0].stream, "s1");
        assert_int_equal(e.v[0].stream_version, 0);
        assert_int_equal(e.v[1].stream_version, 1);
        tu_events_free(&e);
    }
}

static void test_query_forward_bounds_and_limit(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_query ab = QUERY({TYPES("A", "B")});
    build_fixture(db);
    /* position_bound is exclusive. */
    EXPECT_Q(db, NULL, ab, 0, FWD, 0, 9, PL(1, 2, 3, 5, 7, 8));
    EXPECT_Q(db, NULL, ab, 1, FWD, 0, 9, PL(2, 3, 5, 7, 8));
    EXPECT_Q(db, NULL, ab, 2, FWD, 0, 9, PL(3, 5, 7, 8));
    EXPECT_Q(db, NULL, ab, 4, FWD, 0, 9, PL(5, 7, 8));
    EXPECT_Q(db, NULL, ab, 7, FWD, 0, 9, PL(8));
    EXPECT_Q(db, NULL, ab, 8, FWD, 0, 9, NONE);
    EXPECT_Q(db, NULL, ab, 9, FWD, 0, 9, NONE);
    EXPECT_Q(db, NULL, ab, 1000, FWD, 0, 9, NONE);
    /* limit */
    EXPECT_Q(db, NULL, ab, 0, FWD, 1, 1, PL(1));
    EXPECT_Q(db, NULL, ab, 0, FWD, 2, 2, PL(1, 2));
    EXPECT_Q(db, NULL, ab, 2, FWD, 2, 5, PL(3, 5));
    EXPECT_Q(db, NULL, ab, 5, FWD, 1, 7, PL(7));
    EXPECT_Q(db, NULL, ab, 4, FWD, 100, 9, PL(5, 7, 8));
    /* Paging forward with the marker as the next bound. */
    {
        uint64_t bound = 0, m = 0;
        size_t pages = 0, seen = 0;
        for (;;) {
            tu_events e = query_events(db, NULL, ab, bound, FWD, 2, &m);
            size_t n = e.n;
            seen += n;
            /* Stopped by the limit: the last returned; when no match is
             * left the head is also allowed (see test_marker_rules). */
            if (n == 2 && m != e.v[1].position)
                assert_true(e.v[1].position == 8 && m == 9);
            tu_events_free(&e);
            pages++;
            if (n < 2)
                break;
            bound = m;
            assert_true(pages < 10);
        }
        assert_int_equal(seen, 6);
        assert_int_equal(m, 9);
    }
}

static void test_query_backward_bounds_and_limit(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_query ab = QUERY({TYPES("A", "B")});
    build_fixture(db);
    /* position_bound 0: from the newest; else exclusive. */
    EXPECT_Q(db, NULL, ab, 0, BWD, 0, 9, PL(8, 7, 5, 3, 2, 1));
    EXPECT_Q(db, NULL, ab, 9, BWD, 0, 9, PL(8, 7, 5, 3, 2, 1));
    EXPECT_Q(db, NULL, ab, 1000, BWD, 0, 9, PL(8, 7, 5, 3, 2, 1));
    EXPECT_Q(db, NULL, ab, 8, BWD, 0, 9, PL(7, 5, 3, 2, 1));
    EXPECT_Q(db, NULL, ab, 5, BWD, 0, 9, PL(3, 2, 1));
    EXPECT_Q(db, NULL, ab, 2, BWD, 0, 9, PL(1));
    EXPECT_Q(db, NULL, ab, 1, BWD, 0, 9, NONE);
    /* limit: the marker of a backward read is always the head. */
    EXPECT_Q(db, NULL, ab, 0, BWD, 1, 9, PL(8));
    EXPECT_Q(db, NULL, ab, 0, BWD, 2, 9, PL(8, 7));
    EXPECT_Q(db, NULL, ab, 7, BWD, 2, 9, PL(5, 3));
    EXPECT_Q(db, NULL, ab, 3, BWD, 5, 9, PL(2, 1));
    EXPECT_Q(db, NULL, QUERY({TYPES("C")}), 0, BWD, 1, 9, PL(4));
    EXPECT_Q(db, "other", QUERY({TYPES("C")}), 0, BWD, 1, 9, PL(9));
}

static void test_marker_rules(void **state)
{
    tu_store *s = *state;
    evs_db *db = s->db;
    evs_query a = QUERY({TYPES("A")});
    tu_events e;
    uint64_t m = 0;

    /* Empty store: nothing considered, the head is 0. */
    EXPECT_Q(db, NULL, QALL, 0, FWD, 0, 0, NONE);
    EXPECT_Q(db, NULL, a, 0, BWD, 0, 0, NONE);
    EXPECT_Q(db, NULL, a, 0, FWD, 5, 0, NONE);

    build_fixture(db);
    /* Exhausted forward read: the head when the read began (9, the
     * store's head, although the tenant's newest event is 8). */
    EXPECT_Q(db, NULL, a, 0, FWD, 0, 9, PL(1, 3, 7));
    /* ...also when nothing matched. */
    EXPECT_Q(db, NULL, QUERY({TYPES("Nope")}), 0, FWD, 0, 9, NONE);
    EXPECT_Q(db, "nobody", QALL, 0, FWD, 0, 9, NONE);
    EXPECT_Q(db, NULL, a, 7, FWD, 0, 9, NONE);
    /* ...and when the limit was not reached. */
    EXPECT_Q(db, NULL, a, 0, FWD, 4, 9, PL(1, 3, 7));
    /* Forward read stopped by its limit with more matches left: the last
     * event returned. */
    EXPECT_Q(db, NULL, a, 0, FWD, 1, 1, PL(1));
    EXPECT_Q(db, NULL, a, 0, FWD, 2, 3, PL(1, 3));
    EXPECT_Q(db, NULL, a, 1, FWD, 1, 3, PL(3));
    /* Backward: the head, whatever the limit and bound. */
    EXPECT_Q(db, NULL, a, 0, BWD, 1, 9, PL(7));
    EXPECT_Q(db, NULL, a, 4, BWD, 1, 9, PL(3));
    EXPECT_Q(db, NULL, a, 0, BWD, 0, 9, PL(7, 3, 1));
    EXPECT_Q(db, NULL, QUERY({TYPES("Nope")}), 0, BWD, 0, 9, NONE);

    /* Exactly `limit` matches: the read was stopped by its limit, or
     * exhausted; the header allows either reading, both are safe. */
    e = query_events(db, NULL, a, 0, FWD, 3, &m);
    assert_int_equal(e.n, 3);
    if (m != 7 && m != 9)
        print_error("forward limit 3 over exactly 3 matches: marker %" PRIu64
                    ", expected 7 (last returned) or 9 (head)\n",
                    m);
    assert_true(m == 7 || m == 9);
    tu_events_free(&e);

    /* Before the end of a forward read: the last event returned so far. */
    {
        evs_iter *it = NULL;
        const evs_event *ev;
        TU_OK(evs_read_query(&it, db, NULL, &a, 0, FWD, 0));
        TU_OK(evs_iter_next(&ev, it));
        assert_int_equal(ev->position, 1);
        TU_OK(evs_iter_marker(&m, it));
        assert_int_equal(m, 1);
        TU_OK(evs_iter_next(&ev, it));
        assert_int_equal(ev->position, 3);
        TU_OK(evs_iter_marker(&m, it));
        assert_int_equal(m, 3);
        TU_OK(evs_iter_next(&ev, it));
        TU_CHECK(evs_iter_next(&ev, it), EVS_ITEROVER);
        TU_OK(evs_iter_marker(&m, it));
        assert_int_equal(m, 9);
        /* ITEROVER again, same marker. */
        TU_CHECK(evs_iter_next(&ev, it), EVS_ITEROVER);
        TU_OK(evs_iter_marker(&m, it));
        assert_int_equal(m, 9);
        TU_CHECK(evs_iter_marker(NULL, it), EVS_EINVAL);
        TU_CHECK(evs_iter_marker(&m, NULL), EVS_EINVAL);
        evs_iter_free(it);
    }

    /* The marker is usable as `after`: nothing new, no conflict; a new
     * match after it, a conflict naming that event. */
    e = query_events(db, NULL, a, 0, FWD, 0, &m);
    tu_events_free(&e);
    {
        evs_append_condition c = {a, m};
        uint64_t conflict = 77, p;
        evs_event_data ev = TEV0("Z", "{}");
        TU_OK(evs_dcb_append(NULL, &conflict, db, NULL, &ev, 1, &c));
        assert_int_equal(conflict, 0);
        p = put(db, "other", NULL, TEV0("A", "{}")); /* other tenant */
        TU_OK(evs_dcb_append(NULL, &conflict, db, NULL, &ev, 1, &c));
        p = put(db, NULL, "s9", TEV0("A", "{}"));
        TU_CHECK(evs_dcb_append(NULL, &conflict, db, NULL, &ev, 1, &c),
                 EVS_ECONFLICT);
        assert_int_equal(conflict, p);
    }
}

/* A read is a snapshot: events appended after it began are not returned,
 * and the marker is the head when it began. */
static void test_marker_snapshot(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_query a = QUERY({TYPES("A")});
    evs_iter *fwd = NULL, *bwd = NULL;
    const evs_event *ev;
    uint64_t m = 0, p;
    tu_events e = {0};

    build_fixture(db);
    TU_OK(evs_read_query(&fwd, db, NULL, &a, 0, FWD, 0));
    TU_OK(evs_read_query(&bwd, db, NULL, &a, 0, BWD, 0));
    p = put(db, NULL, "s1", TEV0("A", "{}"));
    assert_int_equal(p, 10);
    TU_OK(tu_collect(&e, fwd));
    ASSERT_POSITIONS(&e, PL(1, 3, 7));
    TU_OK(evs_iter_marker(&m, fwd));
    assert_int_equal(m, 9);
    tu_events_clear(&e);
    TU_OK(evs_iter_next(&ev, bwd));
    assert_int_equal(ev->position, 7);
    TU_OK(tu_collect(&e, bwd));
    ASSERT_POSITIONS(&e, PL(3, 1));
    TU_OK(evs_iter_marker(&m, bwd));
    assert_int_equal(m, 9);
    tu_events_free(&e);
    evs_iter_free(fwd);
    evs_iter_free(bwd);
    EXPECT_Q(db, NULL, a, 0, FWD, 0, 10, PL(1, 3, 7, 10));
}

/* evs_iter_marker "works for every iterator": the same rules for stream
 * and $all reads. */
static void test_marker_other_iterators(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_iter *it = NULL;
    tu_events e = {0};
    uint64_t m = 0;

    build_fixture(db);
    /* $all of the default tenant, exhausted: the head (9). */
    TU_OK(evs_read_all(&it, db, "", 0, 0));
    TU_OK(tu_collect(&e, it));
    ASSERT_POSITIONS(&e, PL(1, 2, 3, 4, 5, 7, 8));
    TU_OK(evs_iter_marker(&m, it));
    assert_int_equal(m, 9);
    evs_iter_free(it);
    tu_events_clear(&e);
    /* ...stopped by its limit: the last returned. */
    TU_OK(evs_read_all(&it, db, "", 0, 2));
    TU_OK(tu_collect(&e, it));
    ASSERT_POSITIONS(&e, PL(1, 2));
    TU_OK(evs_iter_marker(&m, it));
    assert_int_equal(m, 2);
    evs_iter_free(it);
    tu_events_clear(&e);
    /* A stream, forward exhausted and backward: the head. */
    TU_OK(evs_read_stream(&it, db, NULL, "s2", 0, FWD, 0));
    TU_OK(tu_collect(&e, it));
    ASSERT_POSITIONS(&e, PL(3, 5));
    TU_OK(evs_iter_marker(&m, it));
    assert_int_equal(m, 9);
    evs_iter_free(it);
    tu_events_clear(&e);
    TU_OK(evs_read_stream(&it, db, NULL, "s2", EVS_END, BWD, 1));
    TU_OK(tu_collect(&e, it));
    ASSERT_POSITIONS(&e, PL(5));
    TU_OK(evs_iter_marker(&m, it));
    assert_int_equal(m, 9);
    evs_iter_free(it);
    tu_events_clear(&e);
    /* ...forward stopped by its limit: the last returned. */
    TU_OK(evs_read_stream(&it, db, NULL, "s1", 0, FWD, 1));
    TU_OK(tu_collect(&e, it));
    ASSERT_POSITIONS(&e, PL(1));
    TU_OK(evs_iter_marker(&m, it));
    assert_int_equal(m, 1);
    evs_iter_free(it);
    tu_events_free(&e);
    /* A stream that does not exist: the head. */
    TU_OK(evs_read_stream(&it, db, NULL, "nope", 0, FWD, 0));
    TU_OK(tu_collect(&e, it));
    assert_int_equal(e.n, 0);
    TU_OK(evs_iter_marker(&m, it));
    assert_int_equal(m, 9);
    evs_iter_free(it);
    tu_events_free(&e);
}

/* Many events: postings longer than a page, sparse matches. */
static void test_query_many_events(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    enum { N = 3000 };
    uint64_t *want7 = malloc(N * sizeof *want7), *wantx = malloc(N * 8);
    size_t n7 = 0, nx = 0, i;
    tu_events e;

    assert_non_null(want7);
    assert_non_null(wantx);
    for (i = 0; i < N; i += 100) {
        evs_event_data ev[100];
        char tags[100][32];
        const char *tp[100][2];
        size_t j;
        for (j = 0; j < 100; j++) {
            size_t k = i + j;
            snprintf(tags[j], sizeof tags[j], "mod7:%zu", k % 7);
            tp[j][0] = tags[j];
            tp[j][1] = "every";
            ev[j] = tev_(k % 13 == 0 ? "Rare" : "Common", "{}", tp[j],
                         k % 5 == 0 ? 2 : 1);
            if (k % 7 == 3)
                want7[n7++] = k + 1;
            if (k % 13 == 0 && k % 5 == 0)
                wantx[nx++] = k + 1;
        }
        TU_OK(evs_dcb_append(NULL, NULL, db, NULL, ev, 100, NULL));
    }
    e = query_events(db, NULL, QUERY({TAGS("mod7:3")}), 0, FWD, 0, NULL);
    assert_positions_(&e, want7, n7, "mod7:3", __FILE__, __LINE__);
    tu_events_free(&e);
    e = query_events(db, NULL, QUERY({TYPES("Rare"), TAGS("every")}), 0, FWD,
                     0, NULL);
    assert_positions_(&e, wantx, nx, "Rare+every", __FILE__, __LINE__);
    tu_events_free(&e);
    /* Backward from the middle with a limit. */
    e = query_events(db, NULL, QUERY({TAGS("mod7:3")}), 1500, BWD, 3, NULL);
    assert_int_equal(e.n, 3);
    for (i = 0; i < 3; i++) {
        size_t k = 0;
        while (k < n7 && want7[k] < 1500)
            k++;
        assert_int_equal(e.v[i].position, want7[k - 1 - i]);
    }
    tu_events_free(&e);
    free(want7);
    free(wantx);
}

/* ------------------------------------------------------------------ */
/* Append conditions                                                   */
/* ------------------------------------------------------------------ */

/* A streamless append of one "Probe" event under conditions; returns rc
 * and fills conflicts[0..n). */
static int probe_append(evs_db *db, const char *tenant,
                        const evs_append_condition *c, size_t n,
                        uint64_t *conflicts, evs_append_result *res)
{
    evs_event_data ev = TEV0("Probe", "{}");
    evs_stream_append part = {NULL, EVS_ANY, &ev, 1};
    evs_append_request req = EVS_APPEND_REQUEST_INIT;
    req.tenant = tenant;
    req.parts = &part;
    req.nparts = 1;
    req.conditions = c;
    req.nconditions = n;
    if (conflicts != NULL)
        memset(conflicts, 0xab, n * sizeof *conflicts);
    return evs_append_ex(res, conflicts, db, &req);
}

static void test_condition_after_is_exclusive(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_append_condition c;
    uint64_t conf[1];
    snap before;

    build_fixture(db);
    c.fail_if_events_match = QUERY({TYPES("A")}); /* 1, 3, 7 */
    c.after = 7;
    TU_OK(probe_append(db, NULL, &c, 1, conf, NULL));
    assert_int_equal(conf[0], 0);
    before = take_snap(db);
    c.after = 6;
    TU_CHECK(probe_append(db, NULL, &c, 1, conf, NULL), EVS_ECONFLICT);
    assert_int_equal(conf[0], 7);
    ASSERT_UNCHANGED(db, before);
    /* after == 0: the whole store; first offending is the oldest. */
    c.after = 0;
    TU_CHECK(probe_append(db, NULL, &c, 1, conf, NULL), EVS_ECONFLICT);
    assert_int_equal(conf[0], 1);
    c.after = 1;
    TU_CHECK(probe_append(db, NULL, &c, 1, conf, NULL), EVS_ECONFLICT);
    assert_int_equal(conf[0], 3);
    c.after = 2;
    TU_CHECK(probe_append(db, NULL, &c, 1, conf, NULL), EVS_ECONFLICT);
    assert_int_equal(conf[0], 3);
    c.after = 3;
    TU_CHECK(probe_append(db, NULL, &c, 1, conf, NULL), EVS_ECONFLICT);
    assert_int_equal(conf[0], 7);
    ASSERT_UNCHANGED(db, before);
}

static void test_condition_after_beyond_head(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_append_condition c = {QALL, 0};
    uint64_t conf[1];
    evs_append_result r;

    build_fixture(db);
    /* A tenant without events: nothing can match. */
    TU_OK(probe_append(db, "empty", &c, 1, conf, &r));
    assert_int_equal(conf[0], 0);
    assert_int_equal(r.first_position, 10);
    c.after = 1000;
    TU_OK(probe_append(db, NULL, &c, 1, conf, &r));
    assert_int_equal(conf[0], 0);
    assert_int_equal(r.first_position, 11);
    c.after = UINT64_MAX;
    TU_OK(probe_append(db, NULL, &c, 1, conf, &r));
    assert_int_equal(r.first_position, 12);
    /* ...and the events it skipped over still count for later appends
     * with an earlier `after`. */
    c.after = 10;
    TU_CHECK(probe_append(db, NULL, &c, 1, conf, &r), EVS_ECONFLICT);
    assert_int_equal(conf[0], 11);
}

static void test_condition_first_offending_and_message(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_append_condition c;
    uint64_t conf[1];
    char msg[1024];
    size_t i;

    for (i = 0; i < 20; i++)
        put(db, NULL, i % 2 ? "odd" : NULL, TEV0("Filler", "{}"));
    put(db, NULL, NULL, TEV("Hit", "{}", "k:1")); /* 21 */
    for (i = 0; i < 5; i++)
        put(db, NULL, NULL, TEV0("Filler", "{}"));
    put(db, NULL, "x", TEV("Hit", "{}", "k:1"));  /* 27 */
    put(db, NULL, NULL, TEV("Hit", "{}", "k:1")); /* 28 */
    c.fail_if_events_match = QUERY({TYPES("Hit"), TAGS("k:1")});
    c.after = 12;
    TU_CHECK(probe_append(db, NULL, &c, 1, conf, NULL), EVS_ECONFLICT);
    snprintf(msg, sizeof msg, "%s", evs_last_error());
    print_message("condition conflict message: %s\n", msg);
    assert_int_equal(conf[0], 21);
    if (!tu_contains_number(msg, 21))
        print_error("message \"%s\" does not name position 21\n", msg);
    assert_true(tu_contains_number(msg, 21));
    c.after = 21;
    TU_CHECK(probe_append(db, NULL, &c, 1, conf, NULL), EVS_ECONFLICT);
    snprintf(msg, sizeof msg, "%s", evs_last_error());
    assert_int_equal(conf[0], 27);
    assert_true(tu_contains_number(msg, 27));
    /* evs_dcb_append's *conflict is the same. */
    {
        evs_event_data ev = TEV0("Probe", "{}");
        uint64_t conflict = 0;
        c.after = 27;
        TU_CHECK(evs_dcb_append(NULL, &conflict, db, NULL, &ev, 1, &c),
                 EVS_ECONFLICT);
        assert_int_equal(conflict, 28);
        assert_true(tu_contains_number(evs_last_error(), 28));
        /* conflict may be NULL */
        TU_CHECK(evs_dcb_append(NULL, NULL, db, NULL, &ev, 1, &c),
                 EVS_ECONFLICT);
        c.after = 28;
        conflict = 5;
        TU_OK(evs_dcb_append(NULL, &conflict, db, NULL, &ev, 1, &c));
        assert_int_equal(conflict, 0);
    }
}

static void test_condition_and_expected_versions_all_reported(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_event_data ev = TEV0("E", "{}");
    evs_stream_append parts[3];
    evs_append_condition c[2];
    evs_append_request req = EVS_APPEND_REQUEST_INIT;
    evs_append_result r[3];
    uint64_t conf[2];
    char msg[1024];
    snap before;

    build_fixture(db);
    parts[0] = (evs_stream_append){"s1", 1, &ev, 1};            /* ok */
    parts[1] = (evs_stream_append){"s2", 0, &ev, 1};            /* at 1 */
    parts[2] = (evs_stream_append){"fresh", EVS_NO_STREAM, &ev, 1}; /* ok */
    c[0].fail_if_events_match = QUERY({TAGS("z:1")});
    c[0].after = 5; /* 8 */
    c[1].fail_if_events_match = QUERY({TYPES("C")});
    c[1].after = 4; /* holds */
    req.parts = parts;
    req.nparts = 3;
    req.conditions = c;
    req.nconditions = 2;
    before = take_snap(db);
    memset(r, 0xcd, sizeof r);
    memset(conf, 0xcd, sizeof conf);
    TU_CHECK(evs_append_ex(r, conf, db, &req), EVS_ECONFLICT);
    snprintf(msg, sizeof msg, "%s", evs_last_error());
    print_message("versions + conditions message: %s\n", msg);
    assert_int_equal(r[0].status, 0);
    assert_int_equal(r[1].status, EVS_ECONFLICT);
    assert_int_equal(r[1].stream_version, 1);
    assert_int_equal(r[2].status, 0);
    assert_int_equal(conf[0], 8);
    assert_int_equal(conf[1], 0);
    assert_non_null(strstr(msg, "s2"));
    assert_true(tu_contains_number(msg, 8));
    ASSERT_UNCHANGED(db, before);
    assert_int_equal(tu_version(db, NULL, "s1"), 1);
    assert_int_equal(tu_version(db, NULL, "s2"), 1);
    assert_int_equal(tu_version(db, NULL, "fresh"), EVS_NO_STREAM);

    /* Only the version fails: conflicts all 0. */
    c[0].after = 8;
    memset(conf, 0xcd, sizeof conf);
    TU_CHECK(evs_append_ex(r, conf, db, &req), EVS_ECONFLICT);
    assert_int_equal(conf[0], 0);
    assert_int_equal(conf[1], 0);
    assert_int_equal(r[1].status, EVS_ECONFLICT);
    /* Only the condition fails: every part's status is 0. */
    parts[1].expected_version = 1;
    c[1].after = 3;
    memset(conf, 0xcd, sizeof conf);
    TU_CHECK(evs_append_ex(r, conf, db, &req), EVS_ECONFLICT);
    snprintf(msg, sizeof msg, "%s", evs_last_error());
    assert_int_equal(r[0].status, 0);
    assert_int_equal(r[1].status, 0);
    assert_int_equal(r[2].status, 0);
    assert_int_equal(conf[0], 0);
    assert_int_equal(conf[1], 4);
    assert_true(tu_contains_number(msg, 4));
    ASSERT_UNCHANGED(db, before);
    /* All hold: written, versions move. */
    c[1].after = 4;
    memset(conf, 0xcd, sizeof conf);
    TU_OK(evs_append_ex(r, conf, db, &req));
    assert_int_equal(conf[0], 0);
    assert_int_equal(conf[1], 0);
    assert_int_equal(r[0].first_position, 10);
    assert_int_equal(r[2].last_position, 12);
    assert_int_equal(tu_version(db, NULL, "s2"), 2);
    assert_int_equal(tu_version(db, NULL, "fresh"), 0);
}

static void test_condition_failure_writes_nothing(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_event_data ev[3] = {TEV("N1", "{}", "new:1"), TEV("N2", "{}", "new:1"),
                            TEV("N3", "{}", "new:1")};
    evs_stream_append parts[2] = {{"s1", EVS_ANY, ev, 2},
                                  {NULL, EVS_ANY, ev + 2, 1}};
    evs_append_condition c = {QUERY({TYPES("B")}), 2}; /* 5, 8 */
    evs_append_request req = EVS_APPEND_REQUEST_INIT;
    evs_append_result r[2];
    uint64_t conf = 0;
    snap before;
    tu_events e = {0};

    build_fixture(db);
    req.parts = parts;
    req.nparts = 2;
    req.conditions = &c;
    req.nconditions = 1;
    before = take_snap(db);
    TU_CHECK(evs_append_ex(r, &conf, db, &req), EVS_ECONFLICT);
    assert_int_equal(conf, 5);
    ASSERT_UNCHANGED(db, before);
    assert_int_equal(tu_head(db, NULL), 9);
    assert_int_equal(tu_head(db, ""), 8);
    assert_int_equal(tu_version(db, NULL, "s1"), 1);
    EXPECT_Q(db, NULL, QUERY({TAGS("new:1")}), 0, FWD, 0, 9, NONE);
    EXPECT_Q(db, NULL, QUERY({TYPES("N1", "N2", "N3")}), 0, FWD, 0, 9, NONE);
    TU_OK(tu_read_all(&e, db, NULL, 1, 0));
    assert_int_equal(e.n, 9);
    tu_events_free(&e);
    /* The store goes on: the next append gets position 10. */
    c.after = 8;
    TU_OK(evs_append_ex(r, &conf, db, &req));
    assert_int_equal(r[0].first_position, 10);
    assert_int_equal(r[1].first_position, 12);
    EXPECT_Q(db, NULL, QUERY({TAGS("new:1")}), 0, FWD, 0, 12, PL(10, 11, 12));
}

static void test_condition_two_one_failing(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_append_condition c[2];
    uint64_t conf[2];
    char msg[1024];
    snap before;

    build_fixture(db);
    c[0].fail_if_events_match = QUERY({TYPES("A"), TAGS("x:2")}); /* 7 */
    c[0].after = 7;                                                /* holds */
    c[1].fail_if_events_match = QUERY({TAGS("y:1")}); /* 2, 3, 4 */
    c[1].after = 2;
    before = take_snap(db);
    TU_CHECK(probe_append(db, NULL, c, 2, conf, NULL), EVS_ECONFLICT);
    snprintf(msg, sizeof msg, "%s", evs_last_error());
    print_message("two conditions message: %s\n", msg);
    assert_int_equal(conf[0], 0);
    assert_int_equal(conf[1], 3);
    assert_true(tu_contains_number(msg, 3));
    ASSERT_UNCHANGED(db, before);
    /* Swapped: the failing one first. */
    {
        evs_append_condition d[2] = {c[1], c[0]};
        TU_CHECK(probe_append(db, NULL, d, 2, conf, NULL), EVS_ECONFLICT);
        assert_int_equal(conf[0], 3);
        assert_int_equal(conf[1], 0);
    }
    /* Both failing: both reported. */
    c[0].after = 6;
    TU_CHECK(probe_append(db, NULL, c, 2, conf, NULL), EVS_ECONFLICT);
    snprintf(msg, sizeof msg, "%s", evs_last_error());
    print_message("two failing conditions message: %s\n", msg);
    assert_int_equal(conf[0], 7);
    assert_int_equal(conf[1], 3);
    assert_true(tu_contains_number(msg, 7));
    assert_true(tu_contains_number(msg, 3));
    ASSERT_UNCHANGED(db, before);
    /* Both holding. */
    c[0].after = 7;
    c[1].after = 4;
    TU_OK(probe_append(db, NULL, c, 2, conf, NULL));
    assert_int_equal(conf[0], 0);
    assert_int_equal(conf[1], 0);
    assert_int_equal(tu_head(db, NULL), 10);
    /* A condition with the "all" query fails on any event of the tenant
     * after `after`, and only of the tenant. */
    c[0].fail_if_events_match = QALL;
    c[0].after = 8;
    TU_CHECK(probe_append(db, NULL, c, 1, conf, NULL), EVS_ECONFLICT);
    assert_int_equal(conf[0], 10);
    TU_CHECK(probe_append(db, "other", c, 1, conf, NULL), EVS_ECONFLICT);
    assert_int_equal(conf[0], 9);
    c[0].after = 9;
    TU_OK(probe_append(db, "other", c, 1, conf, NULL)); /* 11 */
    c[0].after = 10;
    TU_OK(probe_append(db, NULL, c, 1, conf, NULL)); /* 11 is "other"'s */
    assert_int_equal(conf[0], 0);
    assert_int_equal(tu_head(db, NULL), 12);
}

/* ------------------------------------------------------------------ */
/* Idempotent retry                                                    */
/* ------------------------------------------------------------------ */

static void test_idempotent_retry_with_condition(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_event_data ev[2] = {TEV("OrderPlaced", "{\"o\":1}", "order:1"),
                            TEV("OrderPriced", "{\"o\":1}", "order:1")};
    evs_append_condition c = {QUERY({TAGS("order:1")}), 0};
    evs_append_result r, r2;
    uint64_t conflict = 9;
    snap before;

    evs_uuid_generate(&ev[0].id);
    evs_uuid_generate(&ev[1].id);
    put(db, NULL, NULL, TEV0("Noise", "{}"));
    TU_OK(evs_dcb_append(&r, &conflict, db, NULL, ev, 2, &c));
    assert_int_equal(conflict, 0);
    assert_int_equal(r.first_position, 2);
    assert_int_equal(r.last_position, 3);
    put(db, NULL, NULL, TEV0("Noise", "{}"));

    /* The same append again: its condition now fails (events 2 and 3
     * match), but it is a retry: the original positions, nothing
     * written. */
    before = take_snap(db);
    memset(&r2, 0xcd, sizeof r2);
    conflict = 9;
    TU_OK(evs_dcb_append(&r2, &conflict, db, NULL, ev, 2, &c));
    assert_int_equal(r2.status, 0);
    assert_int_equal(r2.first_position, 2);
    assert_int_equal(r2.last_position, 3);
    assert_int_equal(r2.stream_version, EVS_NO_STREAM);
    assert_int_equal(r2.first_version, EVS_NO_STREAM);
    assert_int_equal(conflict, 0);
    ASSERT_UNCHANGED(db, before);
    EXPECT_Q(db, NULL, QUERY({TAGS("order:1")}), 0, FWD, 0, 4, PL(2, 3));

    /* The same events without ids would be new events: they conflict. */
    {
        evs_event_data fresh[2] = {ev[0], ev[1]};
        memset(&fresh[0].id, 0, sizeof fresh[0].id);
        memset(&fresh[1].id, 0, sizeof fresh[1].id);
        TU_CHECK(evs_dcb_append(NULL, &conflict, db, NULL, fresh, 2, &c),
                 EVS_ECONFLICT);
        assert_int_equal(conflict, 2);
        ASSERT_UNCHANGED(db, before);
    }

    /* A multi-part request with a stream and a condition, retried. */
    {
        evs_event_data se[2] = {TEV0("S", "{\"s\":1}"),
                                TEV("T", "{\"t\":1}", "order:2")};
        evs_stream_append parts[2] = {{"orders", EVS_NO_STREAM, se, 1},
                                      {NULL, EVS_ANY, se + 1, 1}};
        evs_append_condition c2 = {QUERY({TAGS("order:2")}, {TAGS("$stream:orders")}),
                                   tu_head(db, NULL)};
        evs_append_request req = EVS_APPEND_REQUEST_INIT;
        evs_append_result rr[2], rr2[2];
        uint64_t conf = 7;
        evs_uuid_generate(&se[0].id);
        evs_uuid_generate(&se[1].id);
        req.parts = parts;
        req.nparts = 2;
        req.conditions = &c2;
        req.nconditions = 1;
        TU_OK(evs_append_ex(rr, &conf, db, &req));
        assert_int_equal(rr[0].first_position, 5);
        assert_int_equal(rr[1].first_position, 6);
        before = take_snap(db);
        memset(rr2, 0xcd, sizeof rr2);
        TU_OK(evs_append_ex(rr2, &conf, db, &req));
        assert_int_equal(conf, 0);
        assert_int_equal(rr2[0].status, 0);
        assert_int_equal(rr2[0].first_position, 5);
        assert_int_equal(rr2[0].last_position, 5);
        assert_int_equal(rr2[0].first_version, 0);
        assert_int_equal(rr2[0].stream_version, 0);
        assert_int_equal(rr2[1].status, 0);
        assert_int_equal(rr2[1].first_position, 6);
        assert_int_equal(rr2[1].stream_version, EVS_NO_STREAM);
        ASSERT_UNCHANGED(db, before);
    }
}

/* ------------------------------------------------------------------ */
/* Events without a stream                                             */
/* ------------------------------------------------------------------ */

static void test_streamless_dcb_append(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_event_data ev[2] = {TEV("X", "{\"a\":1}", "t:1"),
                            TEV("Y", "{\"a\":2}", "t:1", "t:2")};
    evs_append_result r;
    evs_stats st;
    tu_events e = {0};
    evs_iter *it = NULL;

    memset(&r, 0xcd, sizeof r);
    TU_OK(evs_dcb_append(&r, NULL, db, NULL, ev, 2, NULL));
    assert_int_equal(r.status, 0);
    assert_int_equal(r.first_position, 1);
    assert_int_equal(r.last_position, 2);
    assert_int_equal(r.stream_version, EVS_NO_STREAM);
    assert_int_equal(r.first_version, EVS_NO_STREAM);
    /* out may be NULL */
    TU_OK(evs_dcb_append(NULL, NULL, db, "t2", ev, 1, NULL));

    /* In $all, with stream "" and no version. */
    TU_OK(tu_read_all(&e, db, "", 0, 0));
    assert_int_equal(e.n, 2);
    assert_string_equal(e.v[0].stream, "");
    assert_string_equal(e.v[1].stream, "");
    assert_int_equal(e.v[0].stream_version, EVS_NO_STREAM);
    assert_int_equal(e.v[1].stream_version, EVS_NO_STREAM);
    assert_string_equal(e.v[0].type, "X");
    assert_string_equal(e.v[1].data, "{\"a\":2}");
    tu_assert_tags(&e.v[1], STRS("t:1", "t:2"), 2);
    tu_events_clear(&e);
    TU_OK(tu_read_all(&e, db, "t2", 0, 0));
    assert_int_equal(e.n, 1);
    assert_int_equal(e.v[0].position, 3);
    assert_string_equal(e.v[0].stream, "");
    tu_events_free(&e);

    /* Found by queries, with the same fields. */
    e = query_events(db, NULL, QUERY({TAGS("t:1")}), 0, FWD, 0, NULL);
    assert_int_equal(e.n, 2);
    assert_string_equal(e.v[0].stream, "");
    assert_int_equal(e.v[0].stream_version, EVS_NO_STREAM);
    assert_string_equal(e.v[1].type, "Y");
    tu_events_free(&e);
    EXPECT_Q(db, NULL, QUERY({TYPES("Y")}), 0, FWD, 0, 3, PL(2));

    /* In no stream: no stream counted, none readable, no "$stream:". */
    st = tu_stats(db);
    assert_int_equal(st.events, 3);
    assert_int_equal(st.streams, 0);
    TU_CHECK(evs_read_stream(&it, db, NULL, "", 0, FWD, 0), EVS_EINVAL);
    assert_null(it);
    TU_CHECK(evs_stream_version(&(int64_t){0}, db, NULL, ""), EVS_EINVAL);
    assert_int_equal(tu_head(db, ""), 2);

    /* A stream appended later starts at version 0. */
    tu_append1(db, NULL, "later", "Z", "{}");
    assert_int_equal(tu_version(db, NULL, "later"), 0);
    EXPECT_Q(db, NULL, QUERY({TAGS("$stream:later")}), 0, FWD, 0, 4, PL(4));
    assert_int_equal(tu_stats(db).streams, 1);
}

static void test_streamless_mixed_request(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_event_data a[2] = {TEV("F", "{\"i\":1}", "m:1"),
                           TEV("F", "{\"i\":2}", "m:1")};
    evs_event_data b[1] = {TEV("G", "{\"i\":3}", "m:1")};
    evs_stream_append parts[2];
    evs_append_request req = EVS_APPEND_REQUEST_INIT;
    evs_append_result r[2];
    tu_events e = {0};
    snap before;
    size_t i;

    /* Streamless part first. */
    parts[0] = (evs_stream_append){NULL, EVS_ANY, a, 2};
    parts[1] = (evs_stream_append){"ms", EVS_NO_STREAM, b, 1};
    req.parts = parts;
    req.nparts = 2;
    memset(r, 0xcd, sizeof r);
    TU_OK(evs_append_ex(r, NULL, db, &req));
    assert_int_equal(r[0].status, 0);
    assert_int_equal(r[0].first_position, 1);
    assert_int_equal(r[0].last_position, 2);
    assert_int_equal(r[0].stream_version, EVS_NO_STREAM);
    assert_int_equal(r[0].first_version, EVS_NO_STREAM);
    assert_int_equal(r[1].first_position, 3);
    assert_int_equal(r[1].first_version, 0);
    assert_int_equal(r[1].stream_version, 0);

    /* Stream part first. */
    parts[0] = (evs_stream_append){"ms", 0, b, 1};
    parts[1] = (evs_stream_append){NULL, EVS_ANY, a, 1};
    TU_OK(evs_append_ex(r, NULL, db, &req));
    assert_int_equal(r[0].first_position, 4);
    assert_int_equal(r[0].stream_version, 1);
    assert_int_equal(r[1].first_position, 5);
    assert_int_equal(r[1].stream_version, EVS_NO_STREAM);

    TU_OK(tu_read_all(&e, db, NULL, 0, 0));
    assert_int_equal(e.n, 5);
    {
        static const char *const st[] = {"", "", "ms", "ms", ""};
        static const int64_t ver[] = {-1, -1, 0, 1, -1};
        for (i = 0; i < 5; i++) {
            assert_string_equal(e.v[i].stream, st[i]);
            assert_int_equal(e.v[i].stream_version, ver[i]);
        }
    }
    tu_events_clear(&e);
    TU_OK(tu_read_stream(&e, db, NULL, "ms", 0, FWD, 0));
    ASSERT_POSITIONS(&e, PL(3, 4));
    tu_events_free(&e);
    EXPECT_Q(db, NULL, QUERY({TAGS("$stream:ms")}), 0, FWD, 0, 5, PL(3, 4));
    EXPECT_Q(db, NULL, QUERY({TAGS("m:1")}), 0, FWD, 0, 5,
             PL(1, 2, 3, 4, 5));
    assert_int_equal(tu_stats(db).streams, 1);

    /* The stream part's version fails: the streamless part's status is 0
     * and nothing is written. */
    parts[0].expected_version = 0;
    before = take_snap(db);
    memset(r, 0xcd, sizeof r);
    TU_CHECK(evs_append_ex(r, NULL, db, &req), EVS_ECONFLICT);
    assert_int_equal(r[0].status, EVS_ECONFLICT);
    assert_int_equal(r[0].stream_version, 1);
    assert_int_equal(r[1].status, 0);
    ASSERT_UNCHANGED(db, before);
}

/* ------------------------------------------------------------------ */
/* Payload-derived tags                                                */
/* ------------------------------------------------------------------ */

/* Append one event with tag_fields (stream NULL: streamless); returns rc,
 * *pos the position. */
static int append_fields(evs_db *db, const char *stream, evs_event_data ev,
                         const char *const *fields, size_t nfields,
                         uint64_t *pos)
{
    evs_stream_append part = {stream, EVS_ANY, &ev, 1};
    evs_append_request req = EVS_APPEND_REQUEST_INIT;
    evs_append_result r;
    int rc;
    req.parts = &part;
    req.nparts = 1;
    req.tag_fields = fields;
    req.ntag_fields = nfields;
    memset(&r, 0, sizeof r);
    rc = evs_append_ex(&r, NULL, db, &req);
    if (pos != NULL)
        *pos = r.first_position;
    return rc;
}

/* The stored event at position p (asserts it exists). */
static tu_events event_at(evs_db *db, uint64_t p)
{
    tu_events e = {0};
    TU_OK(tu_read_all(&e, db, NULL, p, 1));
    assert_int_equal(e.n, 1);
    assert_int_equal(e.v[0].position, p);
    return e;
}

static const char *const all_fields[] = {"user", "n",   "ok",     "no",
                                         "nil",  "obj", "arr",    "absent",
                                         "f",    "esc", "nested"};
#define NFIELDS (sizeof all_fields / sizeof *all_fields)

static void test_tag_fields_values(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    uint64_t p;
    tu_events e;

    TU_OK(append_fields(
        db, NULL,
        TEV("Made",
            "{\"user\":\"alice\",\"n\":42,\"ok\":true,\"no\":false,"
            "\"nil\":null,\"obj\":{\"user\":\"bob\"},\"arr\":[1,2],"
            "\"f\":-3.5e2,\"esc\":\"a\\\"b\\u00e9\",\"other\":\"x\"}",
            "k:1"),
        all_fields, NFIELDS, &p));
    e = event_at(db, p);
    tu_assert_tags(&e.v[0],
                   STRS("k:1", "user:alice", "n:42", "ok:true", "no:false",
                        "f:-3.5e2", "esc:a\"b\xc3\xa9"),
                   7);
    /* The data is stored as given. */
    assert_non_null(strstr(e.v[0].data, "\"nil\":null"));
    tu_events_free(&e);

    /* Whitespace around values is not part of them; a stream part gets
     * derived tags too. */
    TU_OK(append_fields(db, "users",
                        TEV0("Made", " { \"n\" : 7 ,\n\"user\" : \"bob\" } "),
                        all_fields, NFIELDS, &p));
    e = event_at(db, p);
    tu_assert_tags(&e.v[0], STRS("n:7", "user:bob"), 2);
    assert_string_equal(e.v[0].stream, "users");
    tu_events_free(&e);

    /* Only the named fields: without tag_fields, no derived tags. */
    TU_OK(append_fields(db, NULL, TEV0("Made", "{\"user\":\"carol\"}"), NULL,
                        0, &p));
    e = event_at(db, p);
    assert_int_equal(e.v[0].ntags, 0);
    tu_events_free(&e);
    TU_OK(append_fields(db, NULL, TEV0("Made", "{\"user\":\"carol\",\"n\":1}"),
                        STRS("n"), 1, &p));
    e = event_at(db, p);
    tu_assert_tags(&e.v[0], STRS("n:1"), 1);
    tu_events_free(&e);

    /* An empty string gives "NAME:" */
    TU_OK(append_fields(db, NULL, TEV0("Made", "{\"user\":\"\"}"), STRS("user"),
                        1, &p));
    e = event_at(db, p);
    tu_assert_tags(&e.v[0], STRS("user:"), 1);
    tu_events_free(&e);
}

static void test_tag_fields_duplicates_and_non_objects(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    static const char *const nonobj[] = {
        "[{\"user\":\"x\"}]", "\"user\"", "12", "true", "null", ""};
    uint64_t p;
    size_t i;
    tu_events e;

    /* A derived tag equal to an explicit one is kept once. */
    TU_OK(append_fields(db, NULL,
                        TEV("Made", "{\"user\":\"alice\",\"n\":1}",
                            "user:alice", "k:1"),
                        STRS("user", "n"), 2, &p));
    e = event_at(db, p);
    tu_assert_tags(&e.v[0], STRS("user:alice", "k:1", "n:1"), 3);
    tu_events_free(&e);
    /* The same field named twice gives one tag. */
    TU_OK(append_fields(db, NULL, TEV0("Made", "{\"user\":\"dup\"}"),
                        STRS("user", "user"), 2, &p));
    e = event_at(db, p);
    tu_assert_tags(&e.v[0], STRS("user:dup"), 1);
    tu_events_free(&e);

    /* Data that is not an object: no derived tags. */
    for (i = 0; i < sizeof nonobj / sizeof *nonobj; i++) {
        TU_OK(append_fields(db, NULL, TEV("Made", nonobj[i], "k:2"),
                            all_fields, NFIELDS, &p));
        e = event_at(db, p);
        tu_assert_tags(&e.v[0], STRS("k:2"), 1);
        tu_events_free(&e);
    }
    /* Binary data that looks like an object: not JSON, no tags. */
    {
        static const char bin[] = "{\"user\":\"x\"}";
        evs_event_data ev = tu_event_bin("Bin", bin, sizeof bin - 1);
        TU_OK(append_fields(db, NULL, ev, all_fields, NFIELDS, &p));
        e = event_at(db, p);
        assert_int_equal(e.v[0].ntags, 0);
        tu_events_free(&e);
    }
    /* 63 explicit + 1 derived = 64: fine; 64 explicit + a derived
     * duplicate of one of them: fine (kept once). */
    {
        char names[EVS_MAX_TAGS][16];
        const char *tags[EVS_MAX_TAGS];
        for (i = 0; i < EVS_MAX_TAGS; i++) {
            snprintf(names[i], sizeof names[i], "many:%zu", i);
            tags[i] = names[i];
        }
        TU_OK(append_fields(db, NULL,
                            tev_("Made", "{\"user\":\"m\"}", tags,
                                 EVS_MAX_TAGS - 1),
                            STRS("user"), 1, &p));
        e = event_at(db, p);
        assert_int_equal(e.v[0].ntags, EVS_MAX_TAGS);
        assert_true(has_tag(&e.v[0], "user:m"));
        tu_events_free(&e);
        TU_OK(append_fields(db, NULL,
                            tev_("Made", "{\"many\":3}", tags, EVS_MAX_TAGS),
                            STRS("many"), 1, &p));
        e = event_at(db, p);
        assert_int_equal(e.v[0].ntags, EVS_MAX_TAGS);
        tu_events_free(&e);
        /* 64 explicit + 1 new derived: too many, nothing written. */
        {
            snap before = take_snap(db);
            TU_CHECK(append_fields(db, NULL,
                                   tev_("Made", "{\"user\":\"m\"}", tags,
                                        EVS_MAX_TAGS),
                                   STRS("user"), 1, &p),
                     EVS_EINVAL);
            TU_ASSERT_ERRMSG();
            ASSERT_UNCHANGED(db, before);
        }
    }
}

static void test_tag_fields_too_long(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    char json[600], val[300];
    uint64_t p;
    tu_events e;
    snap before;

    /* "user:" + 251 bytes = 256: the limit, allowed. */
    memset(val, 'v', 251);
    val[251] = '\0';
    snprintf(json, sizeof json, "{\"user\":\"%s\"}", val);
    TU_OK(append_fields(db, NULL, TEV0("Long", json), STRS("user"), 1, &p));
    e = event_at(db, p);
    assert_int_equal(e.v[0].ntags, 1);
    assert_int_equal(strlen(e.v[0].tags[0]), EVS_MAX_TAG_LEN);
    tu_events_free(&e);

    /* 257 bytes: EVS_EINVAL, nothing written, also for the other events
     * and parts of the append. */
    memset(val, 'v', 252);
    val[252] = '\0';
    snprintf(json, sizeof json, "{\"user\":\"%s\"}", val);
    before = take_snap(db);
    TU_CHECK(append_fields(db, NULL, TEV0("Long", json), STRS("user"), 1, &p),
             EVS_EINVAL);
    TU_ASSERT_ERRMSG();
    ASSERT_UNCHANGED(db, before);
    {
        evs_event_data ev[2] = {TEV0("Short", "{\"user\":\"ok\"}"),
                                TEV0("Long", json)};
        evs_event_data ok = TEV0("Fine", "{}");
        evs_stream_append parts[2] = {{"long-s", EVS_ANY, &ok, 1},
                                      {NULL, EVS_ANY, ev, 2}};
        evs_append_request req = EVS_APPEND_REQUEST_INIT;
        req.parts = parts;
        req.nparts = 2;
        req.tag_fields = STRS("user");
        req.ntag_fields = 1;
        TU_CHECK(evs_append_ex(NULL, NULL, db, &req), EVS_EINVAL);
        TU_ASSERT_ERRMSG();
        ASSERT_UNCHANGED(db, before);
        assert_int_equal(tu_version(db, NULL, "long-s"), EVS_NO_STREAM);
    }
    /* A long number too ("1." and 258 digits). */
    memset(val, '7', 260);
    val[0] = '1';
    val[1] = '.';
    val[260] = '\0';
    snprintf(json, sizeof json, "{\"n\":%s}", val);
    TU_CHECK(append_fields(db, NULL, TEV0("Long", json), STRS("n"), 1, &p),
             EVS_EINVAL);
    ASSERT_UNCHANGED(db, before);
    /* Without the field in tag_fields the same event is fine. */
    TU_OK(append_fields(db, NULL, TEV0("Long", json), STRS("user"), 1, &p));
    assert_usable(db);
}

static void test_tag_fields_found_by_queries(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    static const char *const users[] = {"alice", "bob", "alice", "carol",
                                        "bob", "alice"};
    const char *const fields[] = {"user", "n"};
    uint64_t p, pos[6];
    size_t i;

    for (i = 0; i < 6; i++) {
        char json[64];
        snprintf(json, sizeof json, "{\"user\":\"%s\",\"n\":%zu}", users[i],
                 i % 2);
        TU_OK(append_fields(db, i % 3 == 0 ? "st" : NULL,
                            TEV0(i % 2 ? "Odd" : "Even", json), fields, 2,
                            &pos[i]));
        put(db, NULL, NULL, TEV0("Noise", json)); /* no tag_fields */
    }
    EXPECT_Q(db, NULL, QUERY({TAGS("user:alice")}), 0, FWD, 0, 12,
             PL(pos[0], pos[2], pos[5]));
    EXPECT_Q(db, NULL, QUERY({TAGS("user:bob", "n:1")}), 0, FWD, 0, 12,
             PL(pos[1]));
    EXPECT_Q(db, NULL, QUERY({TAGS("user:bob")}), 0, FWD, 0, 12,
             PL(pos[1], pos[4]));
    EXPECT_Q(db, NULL, QUERY({TYPES("Even"), TAGS("n:0")}), 0, BWD, 0, 12,
             PL(pos[4], pos[2], pos[0]));
    EXPECT_Q(db, NULL, QUERY({TAGS("user:carol")}, {TAGS("$stream:st")}), 0,
             FWD, 0, 12, PL(pos[0], pos[3]));
    /* Conditions see derived tags: a second "alice" decided on a stale
     * marker conflicts with the newest alice. */
    {
        evs_append_condition c = {QUERY({TAGS("user:alice")}), pos[2]};
        evs_stream_append part;
        evs_event_data ev = TEV0("Even", "{\"user\":\"alice\"}");
        evs_append_request req = EVS_APPEND_REQUEST_INIT;
        uint64_t conf = 0;
        part = (evs_stream_append){NULL, EVS_ANY, &ev, 1};
        req.parts = &part;
        req.nparts = 1;
        req.conditions = &c;
        req.nconditions = 1;
        req.tag_fields = fields;
        req.ntag_fields = 1;
        TU_CHECK(evs_append_ex(NULL, &conf, db, &req), EVS_ECONFLICT);
        assert_int_equal(conf, pos[5]);
        c.after = tu_head(db, NULL);
        TU_OK(evs_append_ex(NULL, &conf, db, &req));
        p = tu_head(db, NULL);
        EXPECT_Q(db, NULL, QUERY({TAGS("user:alice")}), 0, BWD, 1, p, PL(p));
    }
}

/* ------------------------------------------------------------------ */
/* Tenants                                                             */
/* ------------------------------------------------------------------ */

static void test_tenant_isolation(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_query qx = QUERY({TAGS("x:1")});
    evs_append_condition c;
    uint64_t conf = 0, m = 0, pb;
    tu_events e;
    int i;

    /* Same events in both tenants, interleaved: ta at odd positions. */
    for (i = 0; i < 3; i++) {
        put(db, "ta", "s1", TEV("A", "{}", "x:1"));
        put(db, "tb", "s1", TEV("A", "{}", "x:1"));
        put(db, "ta", NULL, TEV("B", "{}", "x:1", "y:1"));
        put(db, "tb", NULL, TEV("B", "{}", "x:1", "y:1"));
    }
    EXPECT_Q(db, "ta", qx, 0, FWD, 0, 12, PL(1, 3, 5, 7, 9, 11));
    EXPECT_Q(db, "tb", qx, 0, FWD, 0, 12, PL(2, 4, 6, 8, 10, 12));
    EXPECT_Q(db, "ta", QUERY({TAGS("$stream:s1")}), 0, FWD, 0, 12,
             PL(1, 5, 9));
    EXPECT_Q(db, "tb", QUERY({TYPES("B"), TAGS("y:1")}), 0, BWD, 2, 12,
             PL(12, 8));
    EXPECT_Q(db, "ta", QALL, 6, FWD, 0, 12, PL(7, 9, 11));
    EXPECT_Q(db, NULL, QALL, 0, FWD, 0, 12, NONE);
    EXPECT_Q(db, "", qx, 0, FWD, 0, 12, NONE);

    /* Conditions see only their own tenant. */
    e = query_events(db, "ta", qx, 0, FWD, 0, &m);
    tu_events_free(&e);
    pb = put(db, "tb", NULL, TEV("A", "{}", "x:1"));
    c.fail_if_events_match = qx;
    c.after = m;
    TU_OK(probe_append(db, "ta", &c, 1, &conf, NULL));
    assert_int_equal(conf, 0);
    /* tb's condition from 0 fails on tb's first event, not ta's. */
    c.after = 0;
    TU_CHECK(probe_append(db, "tb", &c, 1, &conf, NULL), EVS_ECONFLICT);
    assert_int_equal(conf, 2);
    c.after = 12;
    TU_CHECK(probe_append(db, "tb", &c, 1, &conf, NULL), EVS_ECONFLICT);
    assert_int_equal(conf, pb);
    /* A tenant without events: every condition holds. */
    c.after = 0;
    TU_OK(probe_append(db, "tc", &c, 1, &conf, NULL));
    c.fail_if_events_match = QALL;
    TU_OK(probe_append(db, "td", &c, 1, &conf, NULL));
    /* The "" tenant and NULL are the same tenant. */
    put(db, NULL, NULL, TEV("A", "{}", "x:1"));
    EXPECT_Q(db, "", qx, 0, FWD, 0, ANY_MARKER, PL(tu_head(db, NULL)));
    c.fail_if_events_match = qx;
    TU_CHECK(probe_append(db, "", &c, 1, &conf, NULL), EVS_ECONFLICT);
    assert_int_equal(conf, tu_head(db, NULL));
}

/* ------------------------------------------------------------------ */
/* Bad input                                                           */
/* ------------------------------------------------------------------ */

/*
 * The query is rejected with EVS_EINVAL and a message by evs_read_query
 * (which leaves *out NULL), and as the query of an append condition
 * (nothing written); the store stays usable.
 */
static void expect_bad_query_(evs_db *db, evs_query q, const char *file,
                              int line)
{
    evs_iter *it = (evs_iter *)0x1;
    evs_append_condition c = {q, 0};
    evs_event_data ev = TEV0("Bad", "{}");
    snap before = take_snap(db);
    int rc = evs_read_query(&it, db, NULL, &q, 0, FWD, 0);
    if (rc != EVS_EINVAL)
        tu_report_rc("evs_read_query", rc, EVS_EINVAL, file, line);
    assert_int_equal(rc, EVS_EINVAL);
    TU_ASSERT_ERRMSG();
    print_message("  bad query: %s\n", evs_last_error());
    assert_null(it);
    rc = evs_dcb_append(NULL, NULL, db, NULL, &ev, 1, &c);
    if (rc != EVS_EINVAL)
        tu_report_rc("evs_dcb_append", rc, EVS_EINVAL, file, line);
    assert_int_equal(rc, EVS_EINVAL);
    TU_ASSERT_ERRMSG();
    assert_unchanged_(db, before, file, line);
    assert_usable(db);
}
#define EXPECT_BAD_QUERY(db, q) expect_bad_query_(db, q, __FILE__, __LINE__)

/* The request is rejected with code and a message, nothing written. */
static void expect_bad_request_(evs_db *db, const evs_append_request *req,
                                int code, const char *file, int line)
{
    snap before = take_snap(db);
    int rc = evs_append_ex(NULL, NULL, db, req);
    if (rc != code)
        tu_report_rc("evs_append_ex", rc, code, file, line);
    assert_int_equal(rc, code);
    TU_ASSERT_ERRMSG();
    print_message("  bad request: %s\n", evs_last_error());
    assert_unchanged_(db, before, file, line);
    assert_usable(db);
}
#define EXPECT_BAD_REQUEST(db, req, code)                                    \
    expect_bad_request_(db, req, code, __FILE__, __LINE__)

static void test_bad_empty_tag_in_query(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    build_fixture(db);
    EXPECT_BAD_QUERY(db, QUERY({TAGS("")}));
    EXPECT_BAD_QUERY(db, QUERY({TAGS("x:1", "")}));
    EXPECT_BAD_QUERY(db, QUERY({TYPES("A")}, {TAGS("")}));
    EXPECT_BAD_QUERY(db, QUERY({TYPES("")}));
    EXPECT_BAD_QUERY(db, QUERY({TAGS((const char *)NULL)}));
    EXPECT_BAD_QUERY(db, QUERY({TYPES((const char *)NULL)}));
}

static void test_bad_null_arrays_in_query(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_iter *it = NULL;
    evs_query q = QALL;
    build_fixture(db);
    EXPECT_BAD_QUERY(db, QUERY({.types = NULL, .ntypes = 1}));
    EXPECT_BAD_QUERY(db, QUERY({.tags = NULL, .ntags = 2}));
    EXPECT_BAD_QUERY(db, QUERY({TYPES("A")}, {.types = NULL, .ntypes = 3}));
    EXPECT_BAD_QUERY(db, ((evs_query){NULL, 1}));
    /* NULL query, unknown direction. */
    TU_CHECK(evs_read_query(&it, db, NULL, NULL, 0, FWD, 0), EVS_EINVAL);
    TU_ASSERT_ERRMSG();
    TU_CHECK(evs_read_query(&it, db, NULL, &q, 0, (evs_direction)7, 0),
             EVS_EINVAL);
    TU_ASSERT_ERRMSG();
    TU_CHECK(evs_read_query(NULL, db, NULL, &q, 0, FWD, 0), EVS_EINVAL);
    TU_CHECK(evs_read_query(&it, NULL, NULL, &q, 0, FWD, 0), EVS_EINVAL);
    assert_null(it);
}

static void test_bad_reserved_tags_on_append(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    static const char *const bad[] = {"$stream:s1", "$x", "$"};
    size_t i;
    build_fixture(db);
    for (i = 0; i < 3; i++) {
        evs_event_data ev = TEV("E", "{}", "ok:1", bad[i]);
        snap before = take_snap(db);
        TU_CHECK(evs_append(NULL, db, NULL, "s1", EVS_ANY, &ev, 1),
                 EVS_EINVAL);
        TU_ASSERT_ERRMSG();
        TU_CHECK(evs_dcb_append(NULL, NULL, db, NULL, &ev, 1, NULL),
                 EVS_EINVAL);
        TU_ASSERT_ERRMSG();
        ASSERT_UNCHANGED(db, before);
        assert_usable(db);
    }
    /* A tag field starting with '$' would derive a reserved tag. */
    {
        evs_event_data ev = TEV0("E", "{\"$stream\":\"s1\"}");
        evs_stream_append part = {NULL, EVS_ANY, &ev, 1};
        evs_append_request req = EVS_APPEND_REQUEST_INIT;
        req.parts = &part;
        req.nparts = 1;
        req.tag_fields = STRS("$stream");
        req.ntag_fields = 1;
        EXPECT_BAD_REQUEST(db, &req, EVS_EINVAL);
    }
    /* '$' inside a tag is fine. */
    put(db, NULL, NULL, TEV("E", "{}", "price:$5"));
    EXPECT_Q(db, NULL, QUERY({TAGS("price:$5")}), 0, FWD, 0, ANY_MARKER,
             PL(tu_head(db, NULL)));
}

static void test_bad_reserved_tags_in_query(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    build_fixture(db);
    EXPECT_BAD_QUERY(db, QUERY({TAGS("$x")}));
    EXPECT_BAD_QUERY(db, QUERY({TAGS("$")}));
    EXPECT_BAD_QUERY(db, QUERY({TAGS("$streams:s1")}));
    EXPECT_BAD_QUERY(db, QUERY({TAGS("$stream")}));
    EXPECT_BAD_QUERY(db, QUERY({TAGS("$STREAM:s1")}));
    EXPECT_BAD_QUERY(db, QUERY({TAGS("$type:A")}));
    EXPECT_BAD_QUERY(db, QUERY({TYPES("A"), TAGS("x:1", "$x")}));
}

static void test_bad_stream_tag_without_name(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    build_fixture(db);
    EXPECT_BAD_QUERY(db, QUERY({TAGS("$stream:")}));
    EXPECT_BAD_QUERY(db, QUERY({TAGS("$stream:s1")}, {TAGS("$stream:")}));
    /* a stream name over EVS_MAX_STREAM_LEN (257 bytes) names no stream */
    {
        char tag[sizeof(EVS_STREAM_TAG_PREFIX) + EVS_MAX_STREAM_LEN + 1];
        size_t pl = strlen(EVS_STREAM_TAG_PREFIX);
        memcpy(tag, EVS_STREAM_TAG_PREFIX, pl);
        memset(tag + pl, 'n', EVS_MAX_STREAM_LEN + 1);
        tag[pl + EVS_MAX_STREAM_LEN + 1] = '\0';
        EXPECT_BAD_QUERY(db, QUERY({.tags = STRS(tag), .ntags = 1}));
    }
}

static void test_bad_too_many_items(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_query_item *items =
        calloc(EVS_MAX_QUERY_ITEMS + 1, sizeof *items);
    const char *const *a = STRS("A");
    size_t i;
    assert_non_null(items);
    build_fixture(db);
    for (i = 0; i <= EVS_MAX_QUERY_ITEMS; i++) {
        items[i].types = a;
        items[i].ntypes = 1;
    }
    EXPECT_BAD_QUERY(db, ((evs_query){items, EVS_MAX_QUERY_ITEMS + 1}));
    /* Exactly the limit is fine. */
    EXPECT_Q(db, NULL, ((evs_query){items, EVS_MAX_QUERY_ITEMS}), 0, FWD, 0,
             ANY_MARKER, PL(1, 3, 7));
    free(items);
}

static void test_bad_too_many_terms(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    const char **names = calloc(EVS_MAX_QUERY_TERMS + 1, sizeof *names);
    char (*text)[16] = calloc(EVS_MAX_QUERY_TERMS + 1, sizeof *text);
    evs_query_item items[2];
    size_t i;
    assert_non_null(names);
    assert_non_null(text);
    build_fixture(db);
    for (i = 0; i <= EVS_MAX_QUERY_TERMS; i++) {
        snprintf(text[i], sizeof text[i], "T%zu", i);
        names[i] = text[i];
    }
    names[0] = "A";
    /* One item with 4097 types. */
    items[0] = (evs_query_item){names, EVS_MAX_QUERY_TERMS + 1, NULL, 0};
    EXPECT_BAD_QUERY(db, ((evs_query){items, 1}));
    /* Two items: 4000 types + 97 tags. */
    items[0] = (evs_query_item){names, 4000, NULL, 0};
    items[1] = (evs_query_item){NULL, 0, names + 4000, 97};
    EXPECT_BAD_QUERY(db, ((evs_query){items, 2}));
    /* 4096 in all is fine. */
    items[1].ntags = 96;
    EXPECT_Q(db, NULL, ((evs_query){items, 2}), 0, FWD, 0, ANY_MARKER,
             PL(1, 3, 7));
    items[0] = (evs_query_item){names, EVS_MAX_QUERY_TERMS, NULL, 0};
    EXPECT_Q(db, NULL, ((evs_query){items, 1}), 0, BWD, 0, ANY_MARKER,
             PL(7, 3, 1));
    free(names);
    free(text);
}

static void test_bad_non_utf8_in_query(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    build_fixture(db);
    EXPECT_BAD_QUERY(db, QUERY({TYPES("A\xff")}));
    EXPECT_BAD_QUERY(db, QUERY({TYPES("A", "\xc3")}));
    EXPECT_BAD_QUERY(db, QUERY({TAGS("x:\xc3(")}));
    EXPECT_BAD_QUERY(db, QUERY({TAGS("x:\xed\xa0\x80")})); /* surrogate */
    EXPECT_BAD_QUERY(db, QUERY({TAGS("$stream:\xfe")}));
    /* Valid UTF-8 is fine and matches. */
    put(db, NULL, NULL, TEV("Stadt", "{}", "city:Z\xc3\xbcrich"));
    EXPECT_Q(db, NULL, QUERY({TAGS("city:Z\xc3\xbcrich")}), 0, FWD, 0,
             ANY_MARKER, PL(tu_head(db, NULL)));
    EXPECT_Q(db, NULL, QUERY({TAGS("city:Zurich")}), 0, FWD, 0, ANY_MARKER,
             NONE);
}

static void test_bad_too_many_conditions(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_append_condition c[EVS_MAX_CONDITIONS + 1];
    uint64_t conf[EVS_MAX_CONDITIONS + 1];
    evs_event_data ev = TEV0("E", "{}");
    evs_stream_append part = {NULL, EVS_ANY, &ev, 1};
    evs_append_request req = EVS_APPEND_REQUEST_INIT;
    evs_query qa = QUERY({TYPES("A")});
    size_t i;

    build_fixture(db);
    for (i = 0; i <= EVS_MAX_CONDITIONS; i++) {
        c[i].fail_if_events_match = qa;
        c[i].after = 7;
    }
    req.parts = &part;
    req.nparts = 1;
    req.conditions = c;
    req.nconditions = EVS_MAX_CONDITIONS + 1;
    EXPECT_BAD_REQUEST(db, &req, EVS_EINVAL);
    /* NULL conditions with a count. */
    req.conditions = NULL;
    req.nconditions = 1;
    EXPECT_BAD_REQUEST(db, &req, EVS_EINVAL);
    /* A bad query in the last of many conditions. */
    req.conditions = c;
    req.nconditions = EVS_MAX_CONDITIONS;
    c[EVS_MAX_CONDITIONS - 1].fail_if_events_match = QUERY({TAGS("$x")});
    EXPECT_BAD_REQUEST(db, &req, EVS_EINVAL);
    /* 64 holding conditions: fine; one failing among them: reported. */
    c[EVS_MAX_CONDITIONS - 1].fail_if_events_match = qa;
    TU_OK(evs_append_ex(NULL, conf, db, &req));
    c[40].after = 2;
    TU_CHECK(evs_append_ex(NULL, conf, db, &req), EVS_ECONFLICT);
    for (i = 0; i < EVS_MAX_CONDITIONS; i++)
        assert_int_equal(conf[i], i == 40 ? 3 : 0);
}

static void test_bad_streamless_expected_version(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    static const int64_t bad[] = {EVS_NO_STREAM, EVS_STREAM_EXISTS, 0, 5};
    evs_event_data ev = TEV0("E", "{}");
    evs_stream_append parts[2] = {{"s9", EVS_ANY, &ev, 1},
                                  {NULL, EVS_ANY, &ev, 1}};
    evs_append_request req = EVS_APPEND_REQUEST_INIT;
    size_t i;
    build_fixture(db);
    req.parts = parts;
    req.nparts = 2;
    for (i = 0; i < sizeof bad / sizeof *bad; i++) {
        parts[1].expected_version = bad[i];
        EXPECT_BAD_REQUEST(db, &req, EVS_EINVAL);
    }
    assert_int_equal(tu_version(db, NULL, "s9"), EVS_NO_STREAM);
}

static void test_bad_two_streamless_parts(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_event_data ev[2] = {TEV0("E", "{}"), TEV0("F", "{}")};
    evs_stream_append parts[3] = {{NULL, EVS_ANY, ev, 1},
                                  {"s9", EVS_ANY, ev, 1},
                                  {NULL, EVS_ANY, ev + 1, 1}};
    evs_append_request req = EVS_APPEND_REQUEST_INIT;
    build_fixture(db);
    req.parts = parts;
    req.nparts = 3;
    EXPECT_BAD_REQUEST(db, &req, EVS_EINVAL);
    req.parts = parts + 1;
    req.nparts = 2;
    TU_OK(evs_append_ex(NULL, NULL, db, &req));
    /* evs_append_multi has no streamless parts. */
    {
        snap before = take_snap(db);
        TU_CHECK(evs_append_multi(NULL, db, NULL, parts, 2), EVS_EINVAL);
        TU_ASSERT_ERRMSG();
        ASSERT_UNCHANGED(db, before);
    }
}

static void test_bad_request_version_and_fields(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_event_data ev = TEV0("E", "{\"a\":1}");
    evs_stream_append part = {NULL, EVS_ANY, &ev, 1};
    evs_append_request req = EVS_APPEND_REQUEST_INIT;
    const char *fields[EVS_MAX_TAG_FIELDS + 1];
    size_t i;

    build_fixture(db);
    req.parts = &part;
    req.nparts = 1;
    req.version = 0;
    EXPECT_BAD_REQUEST(db, &req, EVS_EINVAL);
    req.version = EVS_APPEND_REQUEST_VERSION + 1;
    EXPECT_BAD_REQUEST(db, &req, EVS_EINVAL);
    req.version = EVS_APPEND_REQUEST_VERSION;
    /* Tag fields: too many, NULL array, empty name. */
    for (i = 0; i <= EVS_MAX_TAG_FIELDS; i++)
        fields[i] = "a";
    req.tag_fields = fields;
    req.ntag_fields = EVS_MAX_TAG_FIELDS + 1;
    EXPECT_BAD_REQUEST(db, &req, EVS_EINVAL);
    req.tag_fields = NULL;
    req.ntag_fields = 1;
    EXPECT_BAD_REQUEST(db, &req, EVS_EINVAL);
    req.tag_fields = STRS("");
    EXPECT_BAD_REQUEST(db, &req, EVS_EINVAL);
    /* No parts. */
    req.tag_fields = NULL;
    req.ntag_fields = 0;
    req.nparts = 0;
    EXPECT_BAD_REQUEST(db, &req, EVS_EINVAL);
    /* NULL request, NULL db. */
    TU_CHECK(evs_append_ex(NULL, NULL, db, NULL), EVS_EINVAL);
    TU_ASSERT_ERRMSG();
    req.nparts = 1;
    TU_CHECK(evs_append_ex(NULL, NULL, NULL, &req), EVS_EINVAL);
    /* A streamless event with no events. */
    TU_CHECK(evs_dcb_append(NULL, NULL, db, NULL, &ev, 0, NULL), EVS_EINVAL);
    TU_ASSERT_ERRMSG();
    TU_OK(evs_append_ex(NULL, NULL, db, &req));
}

static void test_bad_duplicate_tags(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    evs_event_data ev[2] = {TEV("E", "{}", "a:1"),
                            TEV("E", "{}", "a:1", "b:1", "a:1")};
    evs_stream_append part = {NULL, EVS_ANY, ev, 2};
    evs_append_request req = EVS_APPEND_REQUEST_INIT;
    snap before;
    build_fixture(db);
    before = take_snap(db);
    TU_CHECK(evs_append(NULL, db, NULL, "s1", EVS_ANY, ev, 2), EVS_EINVAL);
    TU_ASSERT_ERRMSG();
    TU_CHECK(evs_dcb_append(NULL, NULL, db, NULL, ev, 2, NULL), EVS_EINVAL);
    TU_ASSERT_ERRMSG();
    ASSERT_UNCHANGED(db, before);
    req.parts = &part;
    req.nparts = 1;
    EXPECT_BAD_REQUEST(db, &req, EVS_EINVAL);
    /* The same tag on two events is fine. */
    ev[1] = TEV("E", "{}", "a:1", "b:1");
    TU_OK(evs_dcb_append(NULL, NULL, db, NULL, ev, 2, NULL));
    EXPECT_Q(db, NULL, QUERY({TAGS("a:1")}), 0, BWD, 2, ANY_MARKER,
             PL(tu_head(db, NULL), tu_head(db, NULL) - 1));
}

/* 1000 items: allowed, and the answer is the union. */
static void test_query_1000_items(void **state)
{
    evs_db *db = ((tu_store *)*state)->db;
    enum { NITEMS = 1000, NEV = 300 };
    evs_query_item *items = calloc(NITEMS, sizeof *items);
    char (*tags)[24] = calloc(NITEMS, sizeof *tags);
    const char **tp = calloc(NITEMS, sizeof *tp);
    uint64_t want[NEV];
    const char *const *num = STRS("Num");
    size_t nwant = 0, i;
    tu_events e;
    uint64_t m = 0;

    assert_non_null(items);
    assert_non_null(tags);
    assert_non_null(tp);
    /* Events with tags n:0 .. n:299, types Num / Other. */
    for (i = 0; i < NEV; i++) {
        char tag[24];
        snprintf(tag, sizeof tag, "n:%zu", i);
        put(db, NULL, NULL,
            tev_(i % 4 == 0 ? "Other" : "Num", "{}",
                 (const char *const[]){tag}, 1));
    }
    /* Items {types:[Num], tags:[n:(3k)]} for k < 1000: tags up to 2997,
     * most of them match nothing. */
    for (i = 0; i < NITEMS; i++) {
        snprintf(tags[i], sizeof tags[i], "n:%zu", 3 * i);
        tp[i] = tags[i];
        items[i] = (evs_query_item){num, 1, &tp[i], 1};
        if (3 * i < NEV && (3 * i) % 4 != 0)
            want[nwant++] = 3 * i + 1;
    }
    e = query_events(db, NULL, (evs_query){items, NITEMS}, 0, FWD, 0, &m);
    assert_positions_(&e, want, nwant, "1000-item query", __FILE__,
                      __LINE__);
    assert_int_equal(m, NEV);
    tu_events_free(&e);
    /* Backward with a limit. */
    e = query_events(db, NULL, (evs_query){items, NITEMS}, 0, BWD, 5, NULL);
    assert_int_equal(e.n, 5);
    for (i = 0; i < 5; i++)
        assert_int_equal(e.v[i].position, want[nwant - 1 - i]);
    tu_events_free(&e);
    /* As an append condition. */
    {
        evs_append_condition c = {{items, NITEMS}, want[nwant - 2]};
        evs_event_data ev = TEV0("Probe", "{}");
        uint64_t conf = 0;
        TU_CHECK(evs_dcb_append(NULL, &conf, db, NULL, &ev, 1, &c),
                 EVS_ECONFLICT);
        assert_int_equal(conf, want[nwant - 1]);
        c.after = want[nwant - 1];
        TU_OK(evs_dcb_append(NULL, &conf, db, NULL, &ev, 1, &c));
    }
    free(items);
    free(tags);
    free(tp);
}

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
        T(test_example_unique_username),
        T(test_example_course_subscription),
        T(test_example_invoice_numbers),
        T(test_race_unique_username),
        T(test_race_course_subscription),
        T(test_race_invoice_numbers),
        T(test_race_fresh_tenant),
        T(test_race_stream_boundary_mixed),
        T(test_queries_beside_appends),
        T(test_query_types_or_tags_and),
        T(test_query_items_or),
        T(test_query_match_all),
        T(test_query_stream_tag),
        T(test_query_forward_bounds_and_limit),
        T(test_query_backward_bounds_and_limit),
        T(test_marker_rules),
        T(test_marker_snapshot),
        T(test_marker_other_iterators),
        T(test_query_many_events),
        T(test_condition_after_is_exclusive),
        T(test_condition_after_beyond_head),
        T(test_condition_first_offending_and_message),
        T(test_condition_and_expected_versions_all_reported),
        T(test_condition_failure_writes_nothing),
        T(test_condition_two_one_failing),
        T(test_idempotent_retry_with_condition),
        T(test_streamless_dcb_append),
        T(test_streamless_mixed_request),
        T(test_tag_fields_values),
        T(test_tag_fields_duplicates_and_non_objects),
        T(test_tag_fields_too_long),
        T(test_tag_fields_found_by_queries),
        T(test_tenant_isolation),
        T(test_bad_empty_tag_in_query),
        T(test_bad_null_arrays_in_query),
        T(test_bad_reserved_tags_on_append),
        T(test_bad_reserved_tags_in_query),
        T(test_bad_stream_tag_without_name),
        T(test_bad_too_many_items),
        T(test_bad_too_many_terms),
        T(test_bad_non_utf8_in_query),
        T(test_bad_too_many_conditions),
        T(test_bad_streamless_expected_version),
        T(test_bad_two_streamless_parts),
        T(test_bad_request_version_and_fields),
        T(test_bad_duplicate_tags),
        T(test_query_1000_items),
        T(test_persistence_reopen),
        T(test_persistence_index_rebuilt),
        cmocka_unit_test_setup_teardown(test_query_across_segments,
                                        tu_setup_store_closed,
                                        tu_teardown_store),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
