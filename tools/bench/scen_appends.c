/*
 * scen_appends.c -- the plain write scenarios of `evs bench`, into the
 * loaded store (the seeds' "1M-event store"):
 *
 *   append-1  one event per append (EAF seed 003: < 10 ms per single
 *             append; dynamic-streams seed 004: 2.55 ms average);
 *   append-5  five events per append;
 *   batch     100 events per append over 5 streams, 20 each, one atomic
 *             multi-stream append (EventCore seeds 000/001: 20 K+ batched
 *             events/s; seed 003: < 50 ms per 100-event batch).
 *
 * Every thread appends to streams of its own with the exact expected
 * version, so a conflict cannot happen (one is reported as such, never
 * hidden). Events are realistic JSON (~240 B) with tags, built once per
 * thread: the timed part is the durable append alone.
 */
#include "scen_util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define STREAMS_PER_THREAD 5
#define MAX_PARTS 5
#define MAX_PER_PART 20
#define NAME_LEN 48

typedef struct append_kind {
    const char *prefix;  /* stream names: PREFIX-<instance>-<k> */
    int parts;           /* streams per append */
    int per_part;        /* events per stream per append */
} append_kind;

typedef struct append_state {
    evs_db *db;
    char tenant[EVS_MAX_TENANT_LEN + 1];
    const append_kind *kind;
    _Atomic uint32_t instances;
    _Atomic uint64_t events;     /* committed, warm-up included */
    pthread_mutex_t mu;
    char problem[256];           /* the first thread_fini mismatch */
} append_state;

typedef struct append_thread {
    append_state *s;
    char stream[STREAMS_PER_THREAD][NAME_LEN];
    int64_t version[STREAMS_PER_THREAD];
    unsigned next;               /* round robin over the streams */
    char json[MAX_PER_PART][320];
    char tag[2][64];
    const char *tags[2];
    evs_event_data ev[MAX_PARTS][MAX_PER_PART];
    evs_stream_append part[MAX_PARTS];
    evs_append_result res[MAX_PARTS];
    int slot[MAX_PARTS];         /* stream index of each part */
} append_thread;

static int append_setup(void **state, bench_ctx *ctx, const append_kind *k,
                        char *err, size_t errsize)
{
    append_state *s = calloc(1, sizeof *s);
    if (!s) {
        scen_msg(err, errsize, "out of memory");
        return -1;
    }
    s->db = ctx->db;
    snprintf(s->tenant, sizeof s->tenant, "%s", ctx->tenant);
    s->kind = k;
    pthread_mutex_init(&s->mu, NULL);
    *state = s;
    return 0;
}

static const append_kind k_append1 = {"ledger1", 1, 1};
static const append_kind k_append5 = {"ledger5", 1, 5};
static const append_kind k_batch = {"batch", 5, 20};

static int append1_setup(void **state, bench_ctx *ctx, char *err, size_t errsize)
{
    return append_setup(state, ctx, &k_append1, err, errsize);
}
static int append5_setup(void **state, bench_ctx *ctx, char *err, size_t errsize)
{
    return append_setup(state, ctx, &k_append5, err, errsize);
}
static int batch_setup(void **state, bench_ctx *ctx, char *err, size_t errsize)
{
    return append_setup(state, ctx, &k_batch, err, errsize);
}

static void *append_thread_init(void *state, int thread, int nthreads)
{
    append_state *s = state;
    append_thread *t = calloc(1, sizeof *t);
    uint32_t inst;
    if (!t)
        return NULL;
    t->s = s;
    /* a new instance number per thread of every level: fresh streams */
    inst = atomic_fetch_add(&s->instances, 1);
    for (int i = 0; i < STREAMS_PER_THREAD; i++) {
        snprintf(t->stream[i], NAME_LEN, "%s-%u-%d", s->kind->prefix, inst, i);
        t->version[i] = EVS_NO_STREAM;
    }
    scen_ledger_tags(t->tag, inst);
    t->tags[0] = t->tag[0];
    t->tags[1] = t->tag[1];
    for (int j = 0; j < s->kind->per_part; j++) {
        int n = scen_ledger_json(t->json[j], sizeof t->json[j], s->kind->prefix, j, inst);
        for (int p = 0; p < s->kind->parts; p++) {
            evs_event_data *ev = &t->ev[p][j];
            event_init(ev, j == 0 ? "EntryOpened" : "EntryPosted", t->json[j],
                       (size_t)n);
            ev->tags = t->tags;
            ev->ntags = 2;
        }
    }
    return t;
}

/* One append of kind->parts streams x kind->per_part events, the next
   streams in turn, exact expected versions. Timed: the evs_append_multi
   call (evs_append for one stream). Items: events written. */
static int append_op(void *tstate, uint64_t *t0, uint64_t *t1,
                     uint64_t *items, char *err, size_t errsize)
{
    append_thread *t = tstate;
    append_state *s = t->s;
    const append_kind *k = s->kind;
    int rc;
    for (int p = 0; p < k->parts; p++) {
        int i = (int)(t->next++ % STREAMS_PER_THREAD);
        t->slot[p] = i;
        t->part[p] = (evs_stream_append){t->stream[i], t->version[i],
                                         t->ev[p], (size_t)k->per_part};
    }
    *t0 = now_ns();
    if (k->parts == 1)
        rc = evs_append(&t->res[0], s->db, s->tenant, t->part[0].stream,
                        t->part[0].expected_version, t->part[0].events,
                        t->part[0].nevents);
    else
        rc = evs_append_multi(t->res, s->db, s->tenant, t->part,
                              (size_t)k->parts);
    *t1 = now_ns();
    if (rc == EVS_ECONFLICT) {
        /* cannot happen with a thread's own streams: take the actual
           versions so the next appends go on, and say so */
        scen_fail(err, errsize, rc, "append to %s", t->part[0].stream);
        for (int p = 0; p < k->parts; p++)
            if (t->res[p].status == EVS_ECONFLICT)
                t->version[t->slot[p]] = t->res[p].stream_version;
        return BENCH_CONFLICT;
    }
    if (rc < 0) {
        scen_fail(err, errsize, rc, "append to %s", t->part[0].stream);
        return BENCH_ERROR;
    }
    for (int p = 0; p < k->parts; p++)
        t->version[t->slot[p]] = t->res[p].stream_version;
    *items += (uint64_t)(k->parts * k->per_part);
    atomic_fetch_add(&s->events, (uint64_t)(k->parts * k->per_part));
    return BENCH_COMMITTED;
}

/* Every stream of the thread must be at the version its appends left. */
static void append_thread_fini(void *tstate)
{
    append_thread *t = tstate;
    append_state *s;
    if (!t)
        return;
    s = t->s;
    for (int i = 0; i < STREAMS_PER_THREAD; i++) {
        int64_t v;
        int rc = evs_stream_version(&v, s->db, s->tenant, t->stream[i]);
        if (rc < 0 || v != t->version[i]) {
            pthread_mutex_lock(&s->mu);
            if (!s->problem[0]) {
                if (rc < 0)
                    scen_fail(s->problem, sizeof s->problem, rc,
                              "evs_stream_version %s", t->stream[i]);
                else
                    scen_msg(s->problem, sizeof s->problem,
                             "%s is at version %lld, its acknowledged "
                             "appends left it at %lld", t->stream[i],
                             (long long)v, (long long)t->version[i]);
            }
            pthread_mutex_unlock(&s->mu);
            break;
        }
    }
    free(t);
}

/* Every thread's streams at their acknowledged versions, and the tenant
   holding exactly the acknowledged events. */
static int append_check(void *state, bench_ctx *ctx, char *err,
                        size_t errsize)
{
    append_state *s = state;
    if (s->problem[0]) {
        scen_msg(err, errsize, "%s", s->problem);
        return -1;
    }
    return scen_check_events(s->db, s->tenant, atomic_load(&s->events),
                             "the acknowledged appends", err, errsize);
}

static void append_teardown(void *state)
{
    append_state *s = state;
    if (!s)
        return;
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static const int append_levels[] = {1, 8, 64, 256};
static const int append_quick[] = {1, 8};

static const bench_target append1_targets[] = {
    {"single append p99 (ms)", "seed 003 (EAF: < 10 ms for a single event)",
     BENCH_P99_MS, 0, 10.0, 1},
    {"single append p50 (ms)",
     "seed 004 (dynamic-streams: 2.55 ms average per append, 1M+ events)",
     BENCH_P50_MS, 0, 2.55, 1},
    {"durable appends/s, 1 thread",
     "evstore goal (docs/PERFORMANCE.md: >= 8,000 appends/s)",
     BENCH_OPS_PER_S, 1, 8000, 1},
    {"durable appends/s, 64 threads",
     "evstore goal (docs/PERFORMANCE.md: >= 200,000 appends/s)",
     BENCH_OPS_PER_S, 1, 200000, 64},
    {"append p95 at 64 threads (ms)",
     "evstore goal (docs/PERFORMANCE.md: p95 <= 1 ms)",
     BENCH_P95_MS, 0, 1.0, 64},
};

const bench_scenario scen_append1 = {
    .name = "append-1",
    .title = "Single-event appends into the loaded store",
    .what = "One operation is one evs_append of one ~240 B JSON event with "
            "two tags to one of the thread's own 5 streams, round robin, "
            "with the exact expected version; durable on return "
            "(fdatasync). Timed: the evs_append call. Items: events "
            "written. Check: each thread's streams end at the versions its "
            "acknowledged appends left, and the scenario's tenant holds "
            "exactly the acknowledged events.",
    .item = "events",
    SCEN_LEVELS(append_levels, append_quick),
    SCEN_TARGETS(append1_targets),
    .setup = append1_setup,
    .thread_init = append_thread_init,
    .op = append_op,
    .thread_fini = append_thread_fini,
    .check = append_check,
    .teardown = append_teardown,
};

static const bench_target append5_targets[] = {
    {"5-event append p99 (ms)", "seed 003 (EAF: < 10 ms per append)",
     BENCH_P99_MS, 0, 10.0, 1},
};

const bench_scenario scen_append5 = {
    .name = "append-5",
    .title = "5-event appends into the loaded store",
    .what = "One operation is one evs_append of five ~240 B JSON events "
            "(two tags each) to one of the thread's own 5 streams, round "
            "robin, with the exact expected version; durable on return. "
            "Timed: the evs_append call. Items: events written. Check: as "
            "append-1.",
    .item = "events",
    SCEN_LEVELS(append_levels, append_quick),
    SCEN_TARGETS(append5_targets),
    .setup = append5_setup,
    .thread_init = append_thread_init,
    .op = append_op,
    .thread_fini = append_thread_fini,
    .check = append_check,
    .teardown = append_teardown,
};

static const int batch_levels[] = {1, 2, 8};
static const int batch_quick[] = {1, 2};

static const bench_target batch_targets[] = {
    {"batched events/s", "seed 000/001 (EventCore PRD: 20,000+ events/s)",
     BENCH_ITEMS_PER_S, 1, 20000, 0},
    {"100-event batch p99 (ms)", "seed 003 (EAF: < 50 ms per 100-event batch)",
     BENCH_P99_MS, 0, 50.0, 1},
    {"batched events/s", "evstore goal (docs/PERFORMANCE.md: >= 1,000,000 "
     "events/s)", BENCH_ITEMS_PER_S, 1, 1000000, 0},
};

const bench_scenario scen_batch = {
    .name = "batch",
    .title = "Batched writes: 100 events over 5 streams",
    .what = "One operation is one atomic evs_append_multi of 100 events: 20 "
            "~240 B JSON events (two tags each) to each of 5 of the "
            "thread's own streams, exact expected versions; durable on "
            "return. Timed: the evs_append_multi call. Items: events "
            "written (100 per operation). Check: as append-1.",
    .item = "events",
    SCEN_LEVELS(batch_levels, batch_quick),
    SCEN_TARGETS(batch_targets),
    .setup = batch_setup,
    .thread_init = append_thread_init,
    .op = append_op,
    .thread_fini = append_thread_fini,
    .check = append_check,
    .teardown = append_teardown,
};
