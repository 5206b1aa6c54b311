/*
 * fixture_dcb.c -- the helpers the DCB programs share (see fixture_dcb.h).
 */
#include "fixture_dcb.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Building queries, events and expected results                       */
/* ------------------------------------------------------------------ */

evs_event_data tev_(const char *type, const char *json,
                    const char *const *tags, size_t ntags)
{
    evs_event_data e = tu_event(type, json);
    e.tags = tags;
    e.ntags = ntags;
    return e;
}

/*
 * Run the query and check the positions returned (in order), that every
 * event belongs to the tenant, and the marker after the end (unless
 * want_marker is ANY_MARKER).
 */
void expect_q_(evs_db *db, const char *tenant, evs_query q,
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

/* Run a query; return its events (asserts success) and marker. */
tu_events query_events(evs_db *db, const char *tenant, evs_query q,
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
uint64_t put(evs_db *db, const char *tenant, const char *stream,
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

snap take_snap(evs_db *db)
{
    snap s;
    s.st = tu_stats(db);
    return s;
}

void assert_unchanged_(evs_db *db, snap before, const char *file,
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

/* The store still works: a conditional streamless append, then a query
 * that finds exactly it, then a stream append. */
void assert_usable(evs_db *db)
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
int64_t json_int(const char *json, const char *key)
{
    char pat[64];
    const char *p;
    snprintf(pat, sizeof pat, "\"%s\":", key);
    p = strstr(json, pat);
    return p ? strtoll(p + strlen(pat), NULL, 10) : 0;
}

int has_tag(const tu_event_copy *e, const char *tag)
{
    size_t i;
    for (i = 0; i < e->ntags; i++)
        if (strcmp(e->tags[i], tag) == 0)
            return 1;
    return 0;
}

/* Start n threads running fn(&args[i * size]) and join them. */
void run_threads(size_t n, void *(*fn)(void *), void *args,
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

/* ------------------------------------------------------------------ */
/* Example (a): unique username                                        */
/* ------------------------------------------------------------------ */

static const char *const uname_types[2] = {"UsernameClaimed",
                                           "UsernameChanged"};

/* The username's boundary: {types: claimed|changed, tags: [username:x]}.
 * *taken = some event matched. Does not assert. */
int username_read(evs_db *db, const char *tenant, const char *tag,
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
int username_append(evs_db *db, const char *tenant, const char *tag,
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
int username_claim(evs_db *db, const char *tenant, const char *tag,
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

/* ------------------------------------------------------------------ */
/* Example (b): course subscriptions                                   */
/* ------------------------------------------------------------------ */

static const char *const course_def_types[2] = {"CourseDefined",
                                                "CourseCapacityChanged"};
static const char *const sub_types[1] = {"StudentSubscribedToCourse"};

void course_query_init(course_query *cq, const char *course,
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

int course_read(evs_db *db, const char *tenant, const course_query *cq,
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

int course_decide(const course_state *st, int student_limit)
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

int course_append(evs_db *db, const char *tenant,
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
int course_subscribe(evs_db *db, const char *tenant,
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

uint64_t define_course(evs_db *db, const char *tenant,
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
size_t count_subs(evs_db *db, const char *tenant, const char *tag)
{
    const char *tags[1] = {tag};
    evs_query_item item = {sub_types, 1, tags, 1};
    tu_events e = query_events(db, tenant, (evs_query){&item, 1}, 0, FWD, 0,
                               NULL);
    size_t n = e.n;
    tu_events_free(&e);
    return n;
}

/* ------------------------------------------------------------------ */
/* Example (c): gapless invoice numbers                                */
/* ------------------------------------------------------------------ */

static const char *const invoice_types[1] = {"InvoiceCreated"};

/* Backward limit-1 read of InvoiceCreated: *last = its number (0: none). */
int invoice_read(evs_db *db, const char *tenant, int64_t *last,
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

int invoice_append(evs_db *db, const char *tenant, int64_t number,
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
int invoice_create(evs_db *db, const char *tenant, int64_t *number,
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
void assert_invoices_gapless(evs_db *db, const char *tenant,
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

/* ------------------------------------------------------------------ */
/* The query fixture (its table is in fixture_dcb.h)                   */
/* ------------------------------------------------------------------ */

void build_fixture(evs_db *db)
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
