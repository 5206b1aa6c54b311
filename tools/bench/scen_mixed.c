/*
 * scen_mixed.c -- the mixed read/write scenario of `evs bench`: each
 * thread draws every operation at random, 70 % stream reads, 20 % durable
 * single-event appends, 10 % selective DCB queries, in a store holding
 * the generated data (the EAF seed 003's "all operations meet the SLA
 * targets under load").
 */
#include "scen_util.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define STREAM_EVENTS 20  /* events of each shared stream */
#define NOTED_EVERY 4     /* every 4th is an OrderNoted: 5 a customer */
#define OWN_STREAMS 4
#define NAME_LEN 32

typedef struct mixed_state {
    evs_db *db;
    char tenant[EVS_MAX_TENANT_LEN + 1];
    uint64_t seed;
    int nstreams;
    char (*names)[NAME_LEN];
    _Atomic uint64_t events;     /* setup + committed appends */
    _Atomic uint32_t instances;
} mixed_state;

typedef struct mixed_thread {
    mixed_state *s;
    uint64_t rng, sink;
    char own[OWN_STREAMS][NAME_LEN];
    int64_t version[OWN_STREAMS];
    unsigned next;
    char json[256];
    size_t json_len;
    char tag[NAME_LEN + 16], owntag[NAME_LEN + 16];
    const char *tags[1], *owntags[1];
    evs_query_item item;
    evs_query q;
} mixed_thread;

static const char *const noted_type[] = {"OrderNoted"};

static void mixed_teardown(void *state)
{
    mixed_state *s = state;
    if (!s)
        return;
    free(s->names);
    free(s);
}

static int mixed_setup(void **state, bench_ctx *ctx, char *err,
                       size_t errsize)
{
    mixed_state *s = calloc(1, sizeof *s);
    evs_stream_append parts[100];
    evs_event_data *evs = NULL;
    char (*json)[160] = NULL, (*tag)[NAME_LEN + 16] = NULL;
    const char **tagp = NULL;
    int rc;
    if (!s) {
        scen_msg(err, errsize, "out of memory");
        return -1;
    }
    s->db = ctx->db;
    s->seed = ctx->seed;
    snprintf(s->tenant, sizeof s->tenant, "%s", ctx->tenant);
    s->nstreams = ctx->quick ? 200 : 1000;
    s->names = calloc((size_t)s->nstreams, sizeof *s->names);
    evs = calloc(100 * STREAM_EVENTS, sizeof *evs);
    json = calloc(100 * STREAM_EVENTS, sizeof *json);
    tag = calloc(100, sizeof *tag);
    tagp = calloc(100, sizeof *tagp);
    if (!s->names || !evs || !json || !tag || !tagp) {
        scen_msg(err, errsize, "out of memory");
        goto fail;
    }
    /* 100 customers an append, 20 events each */
    for (int c0 = 0; c0 < s->nstreams; c0 += 100) {
        int np = s->nstreams - c0 < 100 ? s->nstreams - c0 : 100;
        for (int p = 0; p < np; p++) {
            int c = c0 + p;
            snprintf(s->names[c], NAME_LEN, "Customer-%04d", c);
            snprintf(tag[p], sizeof tag[p], "customer:%d", c);
            tagp[p] = tag[p];
            for (int v = 0; v < STREAM_EVENTS; v++) {
                evs_event_data *ev = &evs[p * STREAM_EVENTS + v];
                char *js = json[p * STREAM_EVENTS + v];
                int n = snprintf(js, 160, "{\"customer\":%d,\"seq\":%d,"
                                 "\"channel\":\"web\",\"note\":\"profile "
                                 "or order activity\"}", c, v);
                event_init(ev, v % NOTED_EVERY == 0 ? "OrderNoted"
                                                    : "ProfileUpdated",
                           js, (size_t)n);
                ev->tags = &tagp[p];
                ev->ntags = 1;
            }
            parts[p] = (evs_stream_append){s->names[c], EVS_NO_STREAM,
                                           &evs[p * STREAM_EVENTS],
                                           STREAM_EVENTS};
        }
        if ((rc = evs_append_multi(NULL, s->db, s->tenant, parts,
                                   (size_t)np)) < 0) {
            scen_fail(err, errsize, rc, "writing the customers");
            goto fail;
        }
    }
    s->events = (uint64_t)s->nstreams * STREAM_EVENTS;
    free(evs);
    free(json);
    free(tag);
    free(tagp);
    *state = s;
    return 0;
fail:
    free(evs);
    free(json);
    free(tag);
    free(tagp);
    mixed_teardown(s);
    return -1;
}

static void *mixed_thread_init(void *state, int thread, int nthreads)
{
    mixed_thread *t = calloc(1, sizeof *t);
    uint32_t inst;
    if (!t)
        return NULL;
    t->s = state;
    inst = atomic_fetch_add(&t->s->instances, 1);
    t->rng = scen_seed(t->s->seed ^ 0x313D, (int)inst);
    for (int i = 0; i < OWN_STREAMS; i++) {
        snprintf(t->own[i], NAME_LEN, "Visit-%u-%d", inst, i);
        t->version[i] = EVS_NO_STREAM;
    }
    t->json_len = (size_t)snprintf(t->json, sizeof t->json,
                                   "{\"visitor\":\"v%u\",\"page\":\"/catalog/"
                                   "shoes\",\"referrer\":\"search\","
                                   "\"duration_ms\":5230}", inst);
    /* the appends' own tag: they never match the queries */
    snprintf(t->owntag, sizeof t->owntag, "visitor:v%u", inst);
    t->owntags[0] = t->owntag;
    t->tags[0] = t->tag;
    t->item.types = noted_type;
    t->item.ntypes = 1;
    t->item.tags = t->tags;
    t->item.ntags = 1;
    t->q.items = &t->item;
    t->q.nitems = 1;
    return t;
}

/* Drains it into the sink; *n events. Returns the last evs code. */
static int drain(mixed_thread *t, evs_iter *it, uint64_t *n)
{
    const evs_event *e;
    int rc;
    while ((rc = evs_iter_next(&e, it)) == 0) {
        t->sink += e->data_len + (uint8_t)((const char *)e->data)[0];
        (*n)++;
    }
    return rc;
}

/* One operation drawn at random: 70 % a whole 20-event customer stream
   read, 20 % one durable event appended to one of the thread's own
   streams (exact expected version), 10 % the OrderNoted events of a
   customer by DCB query (5). Timed: the operation alone. Items: events
   read or written. A read with another count than setup wrote is an
   error. */
static int mixed_op(void *tstate, uint64_t *t0, uint64_t *t1,
                    uint64_t *items, char *err, size_t errsize)
{
    mixed_thread *t = tstate;
    mixed_state *s = t->s;
    int r = (int)scen_below(&t->rng, 100);
    int c = (int)scen_below(&t->rng, (uint64_t)s->nstreams);
    evs_iter *it = NULL;
    uint64_t n = 0, want;
    int rc;
    if (r >= 70 && r < 90) {
        int i = (int)(t->next++ % OWN_STREAMS);
        evs_event_data ev;
        evs_append_result res;
        event_init(&ev, "PageVisited", t->json, t->json_len);
        ev.tags = t->owntags;
        ev.ntags = 1;
        *t0 = now_ns();
        rc = evs_append(&res, s->db, s->tenant, t->own[i], t->version[i],
                        &ev, 1);
        *t1 = now_ns();
        if (rc < 0) {
            scen_fail(err, errsize, rc, "append to %s", t->own[i]);
            if (rc == EVS_ECONFLICT) {
                t->version[i] = res.stream_version;
                return BENCH_CONFLICT;
            }
            return BENCH_ERROR;
        }
        t->version[i] = res.stream_version;
        atomic_fetch_add(&s->events, 1);
        *items += 1;
        return BENCH_COMMITTED;
    }
    if (r < 70) {
        want = STREAM_EVENTS;
        *t0 = now_ns();
        rc = evs_read_stream(&it, s->db, s->tenant, s->names[c], 0,
                             EVS_FORWARD, 0);
        if (rc == 0)
            rc = drain(t, it, &n);
        *t1 = now_ns();
    } else {
        want = (STREAM_EVENTS + NOTED_EVERY - 1) / NOTED_EVERY;
        snprintf(t->tag, sizeof t->tag, "customer:%d", c);
        *t0 = now_ns();
        rc = evs_read_query(&it, s->db, s->tenant, &t->q, 0, EVS_FORWARD, 0);
        if (rc == 0)
            rc = drain(t, it, &n);
        *t1 = now_ns();
    }
    if (rc != EVS_ITEROVER) {
        scen_fail(err, errsize, rc, "%s of %s", r < 70 ? "read" : "query",
                  s->names[c]);
        evs_iter_free(it);
        return BENCH_ERROR;
    }
    evs_iter_free(it);
    *items += n;
    if (n != want) {
        scen_msg(err, errsize, "%s of %s: %llu events, setup wrote %llu",
                 r < 70 ? "read" : "query", s->names[c],
                 (unsigned long long)n, (unsigned long long)want);
        return BENCH_ERROR;
    }
    return BENCH_COMMITTED;
}


/* The tenant holds exactly setup's events and the acknowledged appends. */
static int mixed_check(void *state, bench_ctx *ctx, char *err,
                       size_t errsize)
{
    mixed_state *s = state;
    return scen_check_events(s->db, s->tenant, atomic_load(&s->events),
                             "setup and the acknowledged appends", err, errsize);
}

static const int mixed_levels[] = {1, 8, 64};
static const int mixed_quick[] = {1, 8};

static const bench_target mixed_targets[] = {
    {"mixed operation p95 (ms)",
     "seed 001 (EventCore PRD: P95 < 10 ms) and seed 003 (EAF: every "
     "operation within its SLA under load)", BENCH_P95_MS, 0, 10.0, 8},
};

const bench_scenario scen_mixed = {
    .name = "mixed",
    .title = "Mixed read/write load",
    .what = "Each thread draws every operation: 70 % a whole customer "
            "stream read (20 events; 1000 customers, 200 with --quick), "
            "20 % a durable single-event append to one of the thread's own "
            "streams with the exact expected version, 10 % a DCB query for "
            "a customer's OrderNoted events (type + tag, 5 events). Timed: "
            "the one operation. Items: events read or written. Every read's "
            "count is checked against setup; check: the tenant holds "
            "exactly setup's events plus the acknowledged appends.",
    .item = "events",
    SCEN_LEVELS(mixed_levels, mixed_quick),
    SCEN_TARGETS(mixed_targets),
    .setup = mixed_setup,
    .thread_init = mixed_thread_init,
    .op = mixed_op,
    .thread_fini = scen_free,
    .check = mixed_check,
    .teardown = mixed_teardown,
};
