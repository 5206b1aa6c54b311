/*
 * fixture_dcb.h -- what the DCB programs share (test_dcb_examples,
 * test_dcb_races, test_dcb_queries, test_dcb_conditions,
 * test_dcb_derived_tags, test_dcb_bad_input, test_dcb_persistence):
 * building queries and tagged events, queries checked against expected
 * positions and markers, the check that a rejected call wrote nothing,
 * the nine-event store most query tests start from, and the decision
 * procedures of the specification's worked examples (unique username,
 * course subscriptions, gapless invoice numbers), which the examples and
 * their races both run.
 *
 * The contract checked is the DCB section of include/evstore.h. Worker
 * threads never call cmocka assertions (they longjmp); they record
 * failures with tu_fail() and the main thread checks after joining. The
 * decision procedures assert nothing: the races run them on threads.
 */
#ifndef EVS_FIXTURE_DCB_H
#define EVS_FIXTURE_DCB_H

#include "testutil.h"

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

/* A JSON event with tags[0..ntags). */
evs_event_data tev_(const char *type, const char *json,
                    const char *const *tags, size_t ntags);
/* A JSON event with tags: TEV("Type", "{}", "a:1", "b:2"). */
#define TEV(type, json, ...)                                                 \
    tev_(type, json, STRS(__VA_ARGS__), NSTRS(__VA_ARGS__))
#define TEV0(type, json) tev_(type, json, NULL, 0)

#define ASSERT_POSITIONS(e, list)                                            \
    assert_positions_(e, list, "read", __FILE__, __LINE__)

/*
 * Run the query and check the positions returned (in order), that every
 * event belongs to the tenant, and the marker after the end (unless
 * want_marker is ANY_MARKER).
 */
void expect_q_(evs_db *db, const char *tenant, evs_query q, uint64_t bound,
               evs_direction dir, uint64_t limit, uint64_t want_marker,
               const uint64_t *want, size_t nwant, const char *file,
               int line);
#define EXPECT_Q(db, tenant, q, bound, dir, limit, marker, list)             \
    expect_q_(db, tenant, q, bound, dir, limit, marker, list, __FILE__,      \
              __LINE__)

/* Run a query; return its events (asserts success) and marker. */
tu_events query_events(evs_db *db, const char *tenant, evs_query q,
                       uint64_t bound, evs_direction dir, uint64_t limit,
                       uint64_t *marker);

/* Append one event to stream (NULL: no stream) with EVS_ANY; returns
 * its position. Asserts. */
uint64_t put(evs_db *db, const char *tenant, const char *stream,
             evs_event_data ev);

/* A snapshot of what a rejected call must leave unchanged. */
typedef struct snap {
    evs_stats st;
} snap;

snap take_snap(evs_db *db);
void assert_unchanged_(evs_db *db, snap before, const char *file,
                       int line);
#define ASSERT_UNCHANGED(db, before)                                         \
    assert_unchanged_(db, before, __FILE__, __LINE__)

/* The store still works: a conditional streamless append, then a query
 * that finds exactly it, then a stream append. */
void assert_usable(evs_db *db);

/* An integer member "key":N of a JSON text (0 if absent). */
int64_t json_int(const char *json, const char *key);
/* 1 if the event has the tag. */
int has_tag(const tu_event_copy *e, const char *tag);

/* Start n threads running fn(&args[i * size]) and join them. */
void run_threads(size_t n, void *(*fn)(void *), void *args, size_t size);

/* How often a decision is retried on conflict before giving up. */
#define MAX_ATTEMPTS 100000

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
void build_fixture(evs_db *db);

/* ------------------------------------------------------------------ */
/* The worked examples' decisions: read, decide, append, retry         */
/* ------------------------------------------------------------------ */

/* Decision outcomes (positive: never an EVS_E* code). */
#define DECIDED_TAKEN 1
#define SUB_NO_COURSE 2
#define SUB_FULL 3
#define SUB_STUDENT_LIMIT 4
#define SUB_ALREADY 5

/* Example (a): unique username. The boundary is {types: claimed|changed,
 * tags: [username:x]}; tag is "username:x". */
int username_read(evs_db *db, const char *tenant, const char *tag,
                  int *taken, uint64_t *marker);
int username_append(evs_db *db, const char *tenant, const char *tag,
                    uint64_t marker, uint64_t *position, uint64_t *conflict);
int username_claim(evs_db *db, const char *tenant, const char *tag,
                   uint64_t *position, unsigned *conflicts);

/* Example (b): course subscriptions. */
typedef struct course_state {
    int exists;
    int64_t capacity;
    int course_subs;  /* subscriptions to the course */
    int student_subs; /* subscriptions of the student */
    int already;      /* this student to this course */
    uint64_t marker;
} course_state;

/* The decision's query: the course's definition and capacity changes,
 * its subscriptions, and the student's subscriptions. */
typedef struct course_query {
    char ctag[96], stag[96];
    const char *ctags[1], *stags[1];
    evs_query_item items[3];
    evs_query q;
} course_query;

#define STUDENT_LIMIT 3

void course_query_init(course_query *cq, const char *course,
                       const char *student);
int course_read(evs_db *db, const char *tenant, const course_query *cq,
                course_state *st);
int course_decide(const course_state *st, int student_limit);
int course_append(evs_db *db, const char *tenant, const course_query *cq,
                  uint64_t after, uint64_t *position, uint64_t *conflict);
int course_subscribe(evs_db *db, const char *tenant, const char *course,
                     const char *student, int student_limit,
                     uint64_t *position, unsigned *conflicts);
uint64_t define_course(evs_db *db, const char *tenant, const char *course,
                       int capacity, int changed);
size_t count_subs(evs_db *db, const char *tenant, const char *tag);

/* Example (c): gapless invoice numbers. */
int invoice_read(evs_db *db, const char *tenant, int64_t *last,
                 uint64_t *marker);
int invoice_append(evs_db *db, const char *tenant, int64_t number,
                   uint64_t after, uint64_t *position, uint64_t *conflict);
int invoice_create(evs_db *db, const char *tenant, int64_t *number,
                   uint64_t *position, unsigned *conflicts);
void assert_invoices_gapless(evs_db *db, const char *tenant, size_t n);

#endif /* EVS_FIXTURE_DCB_H */
