/*
 * scen_dcb.c -- the DCB scenarios of `evs bench` (dynamic consistency
 * boundaries, dcb.events; the dynamic-streams seed 004):
 *
 *   dcb-query     a selective query (two types AND one tag) over a
 *                 library's loans, in a store that also holds the
 *                 generated 1M events; every answer checked against what
 *                 setup wrote;
 *   dcb-workflow  the typical DCB command: query a course's events, decide
 *                 (a seat free? someone to unsubscribe?), append on the
 *                 condition that nothing matching the query came after the
 *                 read (the command executor's DCB form, with its retries).
 *
 * Both keep their events out of streams (pure DCB events), as in the seed.
 */
#include "scen_util.h"

#include <evstore_command.h>

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define TAG_LEN 48

/* ------------------------------------------------------------------ */
/* dcb-query                                                           */
/* ------------------------------------------------------------------ */

#define MAX_LOANS 12

typedef struct query_state {
    evs_db *db;
    char tenant[EVS_MAX_TENANT_LEN + 1];
    uint64_t seed;
    uint32_t nbooks;
    uint8_t *loans; /* per book: BookLent + BookReturned events written */
} query_state;

typedef struct query_thread {
    query_state *s;
    uint64_t rng;
    char tag[TAG_LEN];
    const char *tags[1];
    evs_query_item item;
    evs_query q;
    uint64_t sink;
} query_thread;

static const char *const loan_types[] = {"BookLent", "BookReturned"};

/* Events of book b: BookDefined, then loans[b] loans alternating lent /
   returned, then 0-2 BookReserved (same tag, another type: the query's
   type filter must drop them). */
static uint32_t book_events(const query_state *s, uint32_t b)
{
    return 1 + s->loans[b] + (b * 7u) % 3;
}

static void query_teardown(void *state)
{
    query_state *s = state;
    if (!s)
        return;
    free(s->loans);
    free(s);
}

static int query_setup(void **state, bench_ctx *ctx, char *err, size_t errsize)
{
    static const char *const regions[] = {"north", "south", "east", "west",
                                          "central"};
    query_state *s = calloc(1, sizeof *s);
    /* LOAD events an append: the setup's cost is mostly fdatasyncs */
    enum { LOAD = 1000 };
    struct load {
        evs_event_data ev[LOAD];
        char json[LOAD][160];
        char tags[LOAD][2][TAG_LEN];
        const char *tagp[LOAD][2];
    } *ld = calloc(1, sizeof *ld);
    evs_event_data *ev;
    char (*json)[160];
    char (*tags)[2][TAG_LEN];
    const char *(*tagp)[2];
    uint64_t rng;
    uint32_t maxev = 0, n = 0;
    int rc;
    if (!s || !ld) {
        scen_msg(err, errsize, "out of memory");
        free(s);
        free(ld);
        return -1;
    }
    ev = ld->ev;
    json = ld->json;
    tags = ld->tags;
    tagp = ld->tagp;
    s->db = ctx->db;
    s->seed = ctx->seed;
    snprintf(s->tenant, sizeof s->tenant, "%s", ctx->tenant);
    s->nbooks = ctx->quick ? 2000 : 20000;
    if (!(s->loans = calloc(s->nbooks, 1))) {
        scen_msg(err, errsize, "out of memory");
        goto fail;
    }
    rng = scen_seed(ctx->seed ^ 0xB00C, 0);
    for (uint32_t b = 0; b < s->nbooks; b++) {
        s->loans[b] = (uint8_t)scen_below(&rng, MAX_LOANS + 1);
        if (book_events(s, b) > maxev)
            maxev = book_events(s, b);
    }
    /* round r writes every book's event r: the books interleave in the
       log, as a library's do */
    for (uint32_t r = 0; r < maxev; r++) {
        for (uint32_t b = 0; b < s->nbooks; b++) {
            const char *type;
            int len;
            if (r >= book_events(s, b))
                continue;
            type = r == 0 ? "BookDefined"
                   : r <= s->loans[b] ? loan_types[(r - 1) % 2]
                                      : "BookReserved";
            len = snprintf(json[n], sizeof json[n],
                           "{\"book\":\"%u\",\"student\":\"s%u\","
                           "\"branch\":\"%s\",\"event\":%u}",
                           b, (b * 31u + r) % 5000, regions[b % 5], r);
            event_init(&ev[n], type, json[n], (size_t)len);
            snprintf(tags[n][0], TAG_LEN, "book:%u", b);
            if (r == 0)
                snprintf(tags[n][1], TAG_LEN, "region:%s", regions[b % 5]);
            else
                snprintf(tags[n][1], TAG_LEN, "student:s%u",
                         (b * 31u + r) % 5000);
            tagp[n][0] = tags[n][0];
            tagp[n][1] = tags[n][1];
            ev[n].tags = tagp[n];
            ev[n].ntags = 2;
            if (++n == LOAD) {
                if ((rc = evs_dcb_append(NULL, NULL, s->db, s->tenant, ev, n,
                                         NULL)) < 0) {
                    scen_fail(err, errsize, rc, "writing the library");
                    goto fail;
                }
                n = 0;
            }
        }
    }
    if (n && (rc = evs_dcb_append(NULL, NULL, s->db, s->tenant, ev, n,
                                  NULL)) < 0) {
        scen_fail(err, errsize, rc, "writing the library");
        goto fail;
    }
    free(ld);
    *state = s;
    return 0;
fail:
    free(ld);
    query_teardown(s);
    return -1;
}

static void *query_thread_init(void *state, int thread, int nthreads)
{
    query_thread *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->s = state;
    t->rng = scen_seed(t->s->seed ^ 0xD0B, thread);
    t->tags[0] = t->tag;
    t->item.types = loan_types;
    t->item.ntypes = 2;
    t->item.tags = t->tags;
    t->item.ntags = 1;
    t->q.items = &t->item;
    t->q.nitems = 1;
    return t;
}

/* One query: a random book's BookLent/BookReturned events, forward, each
   event's data touched. Timed: evs_read_query to the end of the iterator.
   Items: events returned. Correct when the count and every type are what
   setup wrote. */
static int query_op(void *tstate, uint64_t *t0, uint64_t *t1,
                    uint64_t *items, char *err, size_t errsize)
{
    query_thread *t = tstate;
    query_state *s = t->s;
    uint32_t b = (uint32_t)scen_below(&t->rng, s->nbooks);
    evs_iter *it = NULL;
    const evs_event *e;
    uint64_t n = 0;
    int rc, badtype = 0;
    snprintf(t->tag, sizeof t->tag, "book:%u", b);
    *t0 = now_ns();
    rc = evs_read_query(&it, s->db, s->tenant, &t->q, 0, EVS_FORWARD, 0);
    if (rc == 0) {
        while ((rc = evs_iter_next(&e, it)) == 0) {
            n++;
            /* touch the data as a reader would */
            t->sink += e->data_len + (uint8_t)((const char *)e->data)[0];
            badtype |= strcmp(e->type, "BookLent") != 0 &&
                       strcmp(e->type, "BookReturned") != 0;
        }
    }
    *t1 = now_ns();
    if (rc != EVS_ITEROVER) {
        scen_fail(err, errsize, rc, "query of %s", t->tag);
        evs_iter_free(it);
        return BENCH_ERROR;
    }
    evs_iter_free(it);
    *items += n;
    if (n != s->loans[b] || badtype) {
        scen_msg(err, errsize, "query of %s returned %llu events%s, setup "
                 "wrote %u", t->tag, (unsigned long long)n,
                 badtype ? " (one of another type)" : "", s->loans[b]);
        return BENCH_ERROR;
    }
    return BENCH_COMMITTED;
}


static const int query_levels[] = {1, 2, 8};
static const int query_quick[] = {1, 2};

static const bench_target query_targets[] = {
    {"selective query p50 (ms)",
     "seed 004 (dynamic-streams: 0.12 ms average per query, 1M+ events)",
     BENCH_P50_MS, 0, 0.12, 1},
    {"selective query p50 (ms)",
     "evstore goal (docs/PERFORMANCE.md, DCB: p50 <= 20 us)",
     BENCH_P50_MS, 0, 0.020, 1},
};

const bench_scenario scen_dcb_query = {
    .name = "dcb-query",
    .title = "Selective DCB query",
    .what = "One operation is one DCB query (evs_read_query, forward, no "
            "limit): the events of types BookLent or BookReturned carrying "
            "the tag book:X for a random book X of a library that setup "
            "wrote beside the loaded data (20,000 books, 2,000 with "
            "--quick; 0-12 loans each plus BookDefined and BookReserved "
            "events under the same tag, all interleaved, no stream). Timed: "
            "the query and reading every event it returns. Items: events "
            "returned. An answer whose count or types differ from what "
            "setup wrote is an error.",
    .item = "events",
    SCEN_LEVELS(query_levels, query_quick),
    SCEN_TARGETS(query_targets),
    .setup = query_setup,
    .thread_init = query_thread_init,
    .op = query_op,
    .thread_fini = scen_free,
    .check = NULL,
    .teardown = query_teardown,
};

/* ------------------------------------------------------------------ */
/* dcb-workflow                                                        */
/* ------------------------------------------------------------------ */

typedef struct course_state {
    evs_db *db;
    evs_executor *ex;
    char tenant[EVS_MAX_TENANT_LEN + 1];
    uint64_t seed;
    uint32_t ncourses;
    int64_t *capacity;
    _Atomic int64_t *subs, *unsubs; /* committed, per course */
} course_state;

typedef struct course_thread {
    course_state *s;
    uint64_t rng, seq;
    int id;
} course_thread;

typedef struct course {
    int defined;
    int64_t capacity, taken;
} course;

static int course_apply(void *state, const evs_event *e)
{
    course *c = state;
    if (e->type[0] == 'C') { /* CourseDefined */
        c->defined = 1;
        c->capacity = (int64_t)json_uint(e->data, "\"capacity\":");
    } else if (e->type[7] == 'S') { /* StudentSubscribed */
        c->taken++;
    } else if (e->type[7] == 'U') { /* StudentUnsubscribed */
        c->taken--;
    }
    return 0;
}

static const evs_fold course_fold = {"course", sizeof(course), NULL,
                                     course_apply, NULL, NULL};

static const char *const course_types[] = {"CourseDefined",
                                           "StudentSubscribed",
                                           "StudentUnsubscribed"};

typedef struct course_args {
    int subscribe;
    uint32_t course;
    const char *course_tag, *student_tag;
    const char *student;
} course_args;

static int course_handle(evs_decision *d, const evs_cmd_state *s, size_t n,
                         void *args)
{
    const course_args *a = args;
    const course *c = s[0].state;
    const char *tags[2] = {a->course_tag, a->student_tag};
    char json[160];
    evs_event_data ev;
    int len;
    if (!c->defined)
        return evs_decision_reject(d, 1, "%s is not defined", a->course_tag);
    if (a->subscribe && c->taken >= c->capacity)
        return evs_decision_reject(d, 2, "%s is full (%lld seats)",
                                   a->course_tag, (long long)c->capacity);
    if (!a->subscribe && c->taken == 0)
        return evs_decision_reject(d, 3, "%s has nobody to unsubscribe",
                                   a->course_tag);
    len = snprintf(json, sizeof json,
                   "{\"course\":\"%u\",\"student\":\"%s\",\"seat\":%lld}",
                   a->course, a->student,
                   (long long)(a->subscribe ? c->taken + 1 : c->taken));
    event_init(&ev, course_types[a->subscribe ? 1 : 2], json, (size_t)len);
    ev.tags = tags;
    ev.ntags = 2;
    return evs_decision_emit(d, NULL, &ev);
}

static void course_teardown(void *state)
{
    course_state *s = state;
    if (!s)
        return;
    evs_executor_free(s->ex);
    free(s->capacity);
    free((void *)s->subs);
    free((void *)s->unsubs);
    free(s);
}

static int course_setup(void **state, bench_ctx *ctx, char *err,
                        size_t errsize)
{
    course_state *s = calloc(1, sizeof *s);
    evs_executor_options eo = EVS_EXECUTOR_OPTIONS_INIT;
    evs_event_data ev[100];
    char json[100][64], tag[100][TAG_LEN];
    const char *tagp[100][1];
    uint32_t n = 0;
    int rc;
    if (!s) {
        scen_msg(err, errsize, "out of memory");
        return -1;
    }
    s->db = ctx->db;
    s->seed = ctx->seed;
    snprintf(s->tenant, sizeof s->tenant, "%s", ctx->tenant);
    s->ncourses = ctx->quick ? 500 : 5000;
    s->capacity = calloc(s->ncourses, sizeof *s->capacity);
    s->subs = calloc(s->ncourses, sizeof *s->subs);
    s->unsubs = calloc(s->ncourses, sizeof *s->unsubs);
    if (!s->capacity || !s->subs || !s->unsubs) {
        scen_msg(err, errsize, "out of memory");
        goto fail;
    }
    for (uint32_t c = 0; c < s->ncourses; c++) {
        int len;
        s->capacity[c] = 10 + (int64_t)(c % 20);
        len = snprintf(json[n], sizeof json[n], "{\"course\":\"%u\","
                       "\"capacity\":%lld}", c, (long long)s->capacity[c]);
        event_init(&ev[n], "CourseDefined", json[n], (size_t)len);
        snprintf(tag[n], TAG_LEN, "course:%u", c);
        tagp[n][0] = tag[n];
        ev[n].tags = tagp[n];
        ev[n].ntags = 1;
        if (++n == 100 || c + 1 == s->ncourses) {
            if ((rc = evs_dcb_append(NULL, NULL, s->db, s->tenant, ev, n,
                                     NULL)) < 0) {
                scen_fail(err, errsize, rc, "defining the courses");
                goto fail;
            }
            n = 0;
        }
    }
    /* the executor's default retry policy: 10 attempts, full-jitter
       backoff from 100 us to 20 ms */
    if ((rc = evs_executor_new(&s->ex, s->db, &eo)) < 0) {
        scen_fail(err, errsize, rc, "evs_executor_new");
        goto fail;
    }
    *state = s;
    return 0;
fail:
    course_teardown(s);
    return -1;
}

static void *course_thread_init(void *state, int thread, int nthreads)
{
    course_thread *t = calloc(1, sizeof *t);
    if (t) {
        t->s = state;
        t->id = thread;
        t->rng = scen_seed(t->s->seed ^ (0xC0DE + (uint64_t)nthreads), thread);
    }
    return t;
}

/* One command: subscribe (half of them) or unsubscribe a student for a
   random course through evs_command_execute's DCB form: query the
   course's events, decide, append on the condition that nothing matching
   came after the read. Timed: the whole command with retries. A full (or
   empty) course is a rejection; conflicts left after 10 attempts are a
   conflict. Items: events written. */
static int course_op(void *tstate, uint64_t *t0, uint64_t *t1,
                     uint64_t *items, char *err, size_t errsize)
{
    course_thread *t = tstate;
    course_state *s = t->s;
    char ctag[TAG_LEN], stag[TAG_LEN], student[32];
    const char *qtags[1] = {ctag};
    evs_query_item qi = {course_types, 3, qtags, 1};
    evs_query q = {&qi, 1};
    course_args a;
    evs_command cmd = EVS_COMMAND_INIT;
    evs_command_result res;
    a.course = (uint32_t)scen_below(&t->rng, s->ncourses);
    a.subscribe = (int)scen_below(&t->rng, 2);
    snprintf(ctag, sizeof ctag, "course:%u", a.course);
    snprintf(student, sizeof student, "t%d.%llu", t->id,
             (unsigned long long)t->seq++);
    snprintf(stag, sizeof stag, "student:%s", student);
    a.course_tag = ctag;
    a.student_tag = stag;
    a.student = student;
    cmd.name = a.subscribe ? "subscribe" : "unsubscribe";
    cmd.tenant = s->tenant;
    cmd.query = &q;
    cmd.query_fold = &course_fold;
    cmd.handle = course_handle;
    cmd.args = &a;
    *t0 = now_ns();
    evs_command_execute(&res, s->ex, &cmd);
    *t1 = now_ns();
    switch (res.outcome) {
    case EVS_CMD_COMMITTED:
        *items += res.nevents;
        atomic_fetch_add(a.subscribe ? &s->subs[a.course]
                                     : &s->unsubs[a.course], 1);
        return BENCH_COMMITTED;
    case EVS_CMD_REJECTED: return BENCH_REJECTED;
    case EVS_CMD_CONFLICT: return BENCH_CONFLICT;
    default:
        scen_msg(err, errsize, "%s %s: %s (%s)", cmd.name, ctag, res.reason,
                 evs_strerror(res.error));
        return BENCH_ERROR;
    }
}

/* Every course replayed in position order: each seat given is the next
   one (two appends passing the same condition would give one twice), the
   course never over capacity nor below zero, and the subscriptions equal
   the committed commands. */
static int course_check(void *state, bench_ctx *ctx, char *err,
                        size_t errsize)
{
    course_state *s = state;
    char ctag[TAG_LEN];
    const char *qtags[1] = {ctag};
    evs_query_item qi = {course_types, 3, qtags, 1};
    evs_query q = {&qi, 1};
    int rc;
    for (uint32_t c = 0; c < s->ncourses; c++) {
        evs_iter *it;
        const evs_event *e;
        course st = {0, 0, 0};
        int64_t subs = 0, unsubs = 0;
        snprintf(ctag, sizeof ctag, "course:%u", c);
        if ((rc = evs_read_query(&it, s->db, s->tenant, &q, 0, EVS_FORWARD,
                                 0)) < 0) {
            scen_fail(err, errsize, rc, "reading %s", ctag);
            return -1;
        }
        while ((rc = evs_iter_next(&e, it)) == 0) {
            int64_t seat = (int64_t)json_uint(e->data, "\"seat\":");
            int sub = e->type[7] == 'S', unsub = e->type[7] == 'U';
            if ((sub && seat != st.taken + 1) || (unsub && seat != st.taken)) {
                scen_msg(err, errsize, "%s: seat %lld at position %llu with "
                         "%lld taken before it (two appends passed one "
                         "condition)", ctag, (long long)seat,
                         (unsigned long long)e->position, (long long)st.taken);
                evs_iter_free(it);
                return -1;
            }
            course_apply(&st, e);
            subs += sub;
            unsubs += unsub;
            if (st.taken < 0 || st.taken > st.capacity) {
                scen_msg(err, errsize, "%s: %lld taken of %lld at position "
                         "%llu", ctag, (long long)st.taken,
                         (long long)st.capacity,
                         (unsigned long long)e->position);
                evs_iter_free(it);
                return -1;
            }
        }
        if (rc != EVS_ITEROVER) {
            scen_fail(err, errsize, rc, "reading %s", ctag);
            evs_iter_free(it);
            return -1;
        }
        evs_iter_free(it);
        if (subs != atomic_load(&s->subs[c]) ||
            unsubs != atomic_load(&s->unsubs[c])) {
            scen_msg(err, errsize, "%s: %lld subscriptions and %lld "
                     "unsubscriptions stored, %lld and %lld committed", ctag,
                     (long long)subs, (long long)unsubs,
                     (long long)atomic_load(&s->subs[c]),
                     (long long)atomic_load(&s->unsubs[c]));
            return -1;
        }
    }
    return 0;
}

static const int course_levels[] = {1, 8, 64, 256};
static const int course_quick[] = {1, 8};

static const bench_target course_targets[] = {
    {"query-decide-append p50 (ms)",
     "seed 004 (dynamic-streams: 3.56 ms average for query, logic, append)",
     BENCH_P50_MS, 0, 3.56, 1},
    {"read-decide-conditional-append p50 (ms)",
     "evstore goal (docs/PERFORMANCE.md, DCB: p50 <= 0.2 ms at 1 thread)",
     BENCH_P50_MS, 0, 0.2, 1},
};

const bench_scenario scen_dcb_workflow = {
    .name = "dcb-workflow",
    .title = "DCB workflow: query, decide, conditional append",
    .what = "One operation is one course command through the command "
            "executor's DCB form: subscribe (half) or unsubscribe a student "
            "for a random course (5,000 courses, 500 with --quick, 10-29 "
            "seats): read the course's CourseDefined / StudentSubscribed / "
            "StudentUnsubscribed events by query, decide, append the event "
            "on the condition that nothing matching the query came after "
            "the read. A full or empty course is a rejection; a race still "
            "lost after the executor's 10 attempts is a conflict. Timed: "
            "the whole command with retries. Items: events written. Check: "
            "every course's seats replay 1, 2, 3... without a seat given "
            "twice, never over capacity, and the stored subscriptions equal "
            "the committed ones.",
    .item = "events",
    SCEN_LEVELS(course_levels, course_quick),
    SCEN_TARGETS(course_targets),
    .setup = course_setup,
    .thread_init = course_thread_init,
    .op = course_op,
    .thread_fini = scen_free,
    .check = course_check,
    .teardown = course_teardown,
};
