/*
 * scen_tracking.c -- the tracking scenarios of `evs bench`: token
 * operations (tokens), 1000-event batches from a token (stream-batches),
 * consumer-group processors catching up (catchup), and aggregate loads
 * without and with snapshots (aggregate, aggregate-snapshot). After the
 * EAF seed 003's SLAs: token operations < 1 ms, a 1000-event streaming
 * batch < 50 ms, a 1000-event aggregate load < 20 ms.
 */
#include "scen_util.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>


/* ------------------------------------------------------------------ */
/* tokens: head / tail / token_at                                      */
/* ------------------------------------------------------------------ */

typedef struct tokens_state {
    evs_db *db;
    uint64_t seed;
    /* the generated tenants that received events: with a small --events
       some get none, and an empty tenant's head is 0 */
    uint32_t tenants[GEN_MAX_TENANTS];
    uint32_t ntenants;
    int64_t first_us, last_us;
} tokens_state;

typedef struct tokens_thread {
    tokens_state *s;
    uint64_t rng;
    uint64_t n;
    char tenant[32];
} tokens_thread;

static int tokens_setup(void **state, bench_ctx *ctx, char *err,
                        size_t errsize)
{
    tokens_state *s;
    if (!ctx->loaded || ctx->loaded->events == 0) {
        scen_msg(err, errsize, "tokens needs the generated data");
        return -1;
    }
    if (!(s = calloc(1, sizeof *s))) {
        scen_msg(err, errsize, "out of memory");
        return -1;
    }
    s->db = ctx->db;
    s->seed = ctx->seed;
    for (uint32_t i = 0; i < ctx->loaded->tenants && i < GEN_MAX_TENANTS; i++)
        if (ctx->loaded->per_tenant[i] > 0)
            s->tenants[s->ntenants++] = i;
    if (s->ntenants == 0) { /* events > 0: cannot happen, but never % 0 */
        free(s);
        scen_msg(err, errsize, "tokens: no generated tenant has events");
        return -1;
    }
    s->first_us = ctx->loaded->first_us;
    s->last_us = ctx->loaded->last_us;
    *state = s;
    return 0;
}

static void *tokens_thread_init(void *state, int thread, int nthreads)
{
    tokens_thread *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->s = state;
    t->rng = scen_seed(t->s->seed ^ 0x70C3, thread);
    return t;
}

/* One op: one token call, in turn head of the store, head of a tenant,
   tail of a tenant, token at a time within the loaded range. COMMITTED
   when the answer is consistent (tail <= head of the store, etc.). */
static int tokens_op(void *tstate, uint64_t *t0, uint64_t *t1,
                     uint64_t *items, char *err, size_t errsize)
{
    tokens_thread *t = tstate;
    tokens_state *s = t->s;
    uint64_t tok = 0, head = 0;
    int rc = 0, kind = (int)(t->n++ % 4);
    int64_t when = 0;
    const char *what = "";

    if (kind == 1 || kind == 2)
        scen_gen_tenant(t->tenant, sizeof t->tenant,
                        s->tenants[scen_below(&t->rng, s->ntenants)]);
    if (kind == 3 && s->last_us > s->first_us)
        when = s->first_us +
               (int64_t)scen_below(&t->rng,
                                   (uint64_t)(s->last_us - s->first_us));
    *t0 = now_ns();
    switch (kind) {
    case 0: rc = evs_token_head(&tok, s->db, NULL); what = "head"; break;
    case 1: rc = evs_token_head(&tok, s->db, t->tenant); what = "tenant head"; break;
    case 2: rc = evs_token_tail(&tok, s->db, t->tenant); what = "tenant tail"; break;
    default: rc = evs_token_at(&tok, s->db, when); what = "token_at"; break;
    }
    *t1 = now_ns();
    if (rc < 0) {
        scen_fail(err, errsize, rc, "evs_token %s", what);
        return BENCH_ERROR;
    }
    /* the answer is checked outside the timed part: a token never beyond
       the store's head, and a tenant that received events (the only ones
       picked) always has a head */
    if ((rc = evs_token_head(&head, s->db, NULL)) < 0) {
        scen_fail(err, errsize, rc, "evs_token_head");
        return BENCH_ERROR;
    }
    if (tok > head || (kind == 1 && tok == 0)) {
        scen_msg(err, errsize, "%s token %llu (store head %llu)", what,
                 (unsigned long long)tok, (unsigned long long)head);
        return BENCH_ERROR;
    }
    (void)items;
    return BENCH_COMMITTED;
}


static const int tokens_levels[] = {1, 4, 16};
static const int tokens_quick[] = {1, 4};
static const bench_target tokens_targets[] = {
    {"token operation p99 (ms)",
     "seed 003 (EAF: < 1 ms for every token operation)", BENCH_P99_MS, 0,
     1.0, 1},
    {"token operation p50 (ms)",
     "evstore goal (docs/PERFORMANCE.md, tracking: <= 1 us)", BENCH_P50_MS,
     0, 0.001, 1},
};

const bench_scenario scen_tokens = {
    .name = "tokens",
    .title = "Tracking token operations",
    .what = "One operation is one token call, in turn: the store's head, a "
            "random generated tenant's head (among the tenants that "
            "received events), its tail, and the token at a random time"
            " within the loaded data. Only the call is timed; "
            "the answer is then checked against the store's head.",
    .item = NULL,
    SCEN_LEVELS(tokens_levels, tokens_quick),
    SCEN_TARGETS(tokens_targets),
    .setup = tokens_setup,
    .thread_init = tokens_thread_init,
    .op = tokens_op,
    .thread_fini = scen_free,
    .check = NULL,
    .teardown = scen_free,
};

/* ------------------------------------------------------------------ */
/* aggregate, aggregate-snapshot                                       */
/* ------------------------------------------------------------------ */

#define AGG_ROUND 10 /* events per stream per setup append: interleaved */

typedef struct agg_state {
    evs_db *db;
    char tenant[EVS_MAX_TENANT_LEN + 1];
    uint64_t seed;
    int snapshots;          /* aggregate-snapshot: one every 100 events */
    int nstreams;
    char (*names)[32];
    int64_t *len;           /* events per stream */
    int64_t *balance;       /* the fold of each whole stream */
} agg_state;

typedef struct agg_thread {
    agg_state *s;
    uint64_t rng;
} agg_thread;

static void agg_teardown(void *state)
{
    agg_state *s = state;
    if (!s)
        return;
    free(s->names);
    free(s->len);
    free(s->balance);
    free(s);
}

/* Amount of the event at version v: 1..100. */
static int64_t agg_amount(int64_t v) { return v % 100 + 1; }

static int agg_setup_common(void **state, bench_ctx *ctx, int snapshots,
                            char *err, size_t errsize)
{
    agg_state *s = calloc(1, sizeof *s);
    evs_stream_append *parts = NULL;
    evs_event_data *evs = NULL;
    char (*json)[256] = NULL;
    int64_t done = 0, maxlen = 0;
    int rc;
    if (!s) {
        scen_msg(err, errsize, "out of memory");
        return -1;
    }
    s->db = ctx->db;
    s->seed = ctx->seed;
    s->snapshots = snapshots;
    snprintf(s->tenant, sizeof s->tenant, "%s", ctx->tenant);
    s->nstreams = ctx->quick ? 8 : 32;
    s->names = calloc((size_t)s->nstreams, sizeof *s->names);
    s->len = calloc((size_t)s->nstreams, sizeof *s->len);
    s->balance = calloc((size_t)s->nstreams, sizeof *s->balance);
    parts = calloc((size_t)s->nstreams, sizeof *parts);
    evs = calloc((size_t)s->nstreams * AGG_ROUND, sizeof *evs);
    json = calloc((size_t)s->nstreams * AGG_ROUND, sizeof *json);
    if (!s->names || !s->len || !s->balance || !parts || !evs || !json) {
        scen_msg(err, errsize, "out of memory");
        goto fail;
    }
    for (int i = 0; i < s->nstreams; i++) {
        snprintf(s->names[i], sizeof s->names[i], "Account-%04d", i);
        /* without snapshots exactly 1000 events; with them 1000-1099, so
           that a load replays 0-99 events after the newest snapshot */
        s->len[i] = snapshots ? 1000 + (i * 37) % 100 : 1000;
        if (s->len[i] > maxlen)
            maxlen = s->len[i];
    }
    /* rounds of AGG_ROUND events to every stream, one atomic append a
       round: the streams interleave in the log */
    for (done = 0; done < maxlen; done += AGG_ROUND) {
        size_t np = 0;
        for (int i = 0; i < s->nstreams; i++) {
            int64_t k = s->len[i] - done < AGG_ROUND ? s->len[i] - done
                                                     : AGG_ROUND;
            evs_event_data *ev = &evs[np * AGG_ROUND];
            if (k <= 0)
                continue;
            for (int64_t j = 0; j < k; j++) {
                char *js = json[np * AGG_ROUND + (size_t)j];
                int64_t v = done + j;
                int n = snprintf(js, 256, "{\"account\":\"%s\",\"amount\":%lld,"
                                 "\"currency\":\"EUR\",\"reference\":"
                                 "\"invoice %lld of the account's history\"}",
                                 s->names[i], (long long)agg_amount(v),
                                 (long long)v);
                event_init(&ev[j], v == 0 ? "AccountOpened" : "Deposited", js,
                           (size_t)n);
                s->balance[i] += agg_amount(v);
            }
            parts[np++] = (evs_stream_append){s->names[i],
                                              done ? done - 1 : EVS_NO_STREAM,
                                              ev, (size_t)k};
        }
        if ((rc = evs_append_multi(NULL, s->db, s->tenant, parts, np)) < 0) {
            scen_fail(err, errsize, rc, "writing the aggregates");
            goto fail;
        }
        if (!snapshots || (done + AGG_ROUND) % 100 != 0)
            continue;
        for (int i = 0; i < s->nstreams; i++) {
            int64_t v = done + AGG_ROUND - 1, bal = 0;
            char snap[64];
            int n;
            if (v >= s->len[i])
                continue;
            for (int64_t u = 0; u <= v; u++)
                bal += agg_amount(u);
            n = snprintf(snap, sizeof snap, "{\"balance\":%lld}",
                         (long long)bal);
            if ((rc = evs_snapshot_save(s->db, s->tenant, s->names[i], v,
                                        "account-v1", snap, (size_t)n)) < 0) {
                scen_fail(err, errsize, rc, "snapshot of %s", s->names[i]);
                goto fail;
            }
        }
    }
    free(parts);
    free(evs);
    free(json);
    *state = s;
    return 0;
fail:
    free(parts);
    free(evs);
    free(json);
    agg_teardown(s);
    return -1;
}

static int agg_setup(void **state, bench_ctx *ctx, char *err, size_t errsize)
{
    return agg_setup_common(state, ctx, 0, err, errsize);
}

static int aggsnap_setup(void **state, bench_ctx *ctx, char *err,
                         size_t errsize)
{
    return agg_setup_common(state, ctx, 1, err, errsize);
}

static void *agg_thread_init(void *state, int thread, int nthreads)
{
    agg_thread *t = calloc(1, sizeof *t);
    if (t) {
        t->s = state;
        t->rng = scen_seed(t->s->seed ^ 0xA66, thread);
    }
    return t;
}

/* One load of a random aggregate: evs_aggregate_load, the snapshot's
   balance (if any), then every later event folded (its amount parsed).
   Timed: all of that. Items: events folded. Correct when the balance is
   the whole stream's, from a snapshot exactly when there should be one. */
static int agg_op(void *tstate, uint64_t *t0, uint64_t *t1, uint64_t *items,
                  char *err, size_t errsize)
{
    agg_thread *t = tstate;
    agg_state *s = t->s;
    int i = (int)scen_below(&t->rng, (uint64_t)s->nstreams);
    evs_snapshot *snap = NULL;
    evs_iter *it = NULL;
    const evs_event *e;
    int64_t bal = 0, from = 0, n = 0, snapv = -1;
    int rc;
    *t0 = now_ns();
    rc = evs_aggregate_load(&snap, &it, s->db, s->tenant, s->names[i]);
    if (rc == 0) {
        if (snap) {
            bal = (int64_t)json_uint(snap->data, "\"balance\":");
            from = snap->version + 1;
            snapv = snap->version;
        }
        while ((rc = evs_iter_next(&e, it)) == 0) {
            bal += (int64_t)json_uint(e->data, "\"amount\":");
            n++;
        }
    }
    *t1 = now_ns();
    evs_snapshot_free(snap);
    if (rc != EVS_ITEROVER) {
        scen_fail(err, errsize, rc, "loading %s", s->names[i]);
        evs_iter_free(it);
        return BENCH_ERROR;
    }
    evs_iter_free(it);
    *items += (uint64_t)n;
    if (bal != s->balance[i] || from + n != s->len[i] ||
        (s->snapshots ? snapv != (s->len[i] / 100) * 100 - 1 : snapv != -1)) {
        scen_msg(err, errsize, "%s: balance %lld from a snapshot at version "
                 "%lld and %lld events; expected %lld over %lld events",
                 s->names[i], (long long)bal, (long long)snapv, (long long)n,
                 (long long)s->balance[i], (long long)s->len[i]);
        return BENCH_ERROR;
    }
    return BENCH_COMMITTED;
}

static const int read_levels[] = {1, 2, 8};
static const int read_quick[] = {1, 2};

static const bench_target agg_targets[] = {
    {"1000-event aggregate load p99 (ms)",
     "seed 003 (EAF: < 20 ms for a 1000-event aggregate)", BENCH_P99_MS, 0,
     20.0, 1},
    {"1000-event aggregate load p50 (ms)",
     "evstore goal (docs/PERFORMANCE.md, tracking: <= 0.5 ms)", BENCH_P50_MS,
     0, 0.5, 1},
};

const bench_scenario scen_aggregate = {
    .name = "aggregate",
    .title = "1000-event aggregate load",
    .what = "One operation loads a random one of 32 aggregates (8 with "
            "--quick) of exactly 1000 events (~150 B JSON each, written "
            "interleaved 10 at a time) with evs_aggregate_load, no snapshot, "
            "and folds every event (parsing its amount). Timed: the load and "
            "the fold. Items: events folded. A balance or event count other "
            "than what setup wrote is an error.",
    .item = "events",
    SCEN_LEVELS(read_levels, read_quick),
    SCEN_TARGETS(agg_targets),
    .setup = agg_setup,
    .thread_init = agg_thread_init,
    .op = agg_op,
    .thread_fini = scen_free,
    .check = NULL,
    .teardown = agg_teardown,
};

static const bench_target aggsnap_targets[] = {
    {"aggregate load with snapshots p99 (ms)",
     "seed 003 (EAF: < 20 ms for a 1000-event aggregate)", BENCH_P99_MS, 0,
     20.0, 1},
};

const bench_scenario scen_aggregate_snapshot = {
    .name = "aggregate-snapshot",
    .title = "Aggregate load with a snapshot every 100 events",
    .what = "As aggregate, but setup saved a snapshot every 100 events "
            "(evs_snapshot_save) and the aggregates have 1000-1099 events, "
            "so a load is the newest snapshot plus the 0-99 events after it "
            "(evs_aggregate_load), folded. Timed: the load and the fold. "
            "Items: events folded after the snapshot. The balance must be "
            "the whole stream's, from the newest snapshot.",
    .item = "events",
    SCEN_LEVELS(read_levels, read_quick),
    SCEN_TARGETS(aggsnap_targets),
    .setup = aggsnap_setup,
    .thread_init = agg_thread_init,
    .op = agg_op,
    .thread_fini = scen_free,
    .check = NULL,
    .teardown = agg_teardown,
};

/* ------------------------------------------------------------------ */
/* stream-batches, catchup                                             */
/* ------------------------------------------------------------------ */

#define BATCH 1000

typedef struct track_state {
    evs_db *db;
    uint64_t seed;
    char tenant[32];     /* the biggest generated tenant */
    uint64_t tail, head; /* its tokens at setup */
    uint64_t store_head; /* the store's head at setup (catchup) */
} track_state;

typedef struct track_thread {
    track_state *s;
    uint64_t rng;
    evs_tracking tr;
    uint64_t token;      /* catchup: where the processor is */
    uint64_t sink;
} track_thread;

static int track_setup(void **state, bench_ctx *ctx, char *err,
                       size_t errsize)
{
    track_state *s;
    int rc;
    if (!ctx->loaded || ctx->loaded->events == 0) {
        scen_msg(err, errsize, "needs the generated data");
        return -1;
    }
    if (!(s = calloc(1, sizeof *s))) {
        scen_msg(err, errsize, "out of memory");
        return -1;
    }
    s->db = ctx->db;
    s->seed = ctx->seed;
    scen_gen_tenant(s->tenant, sizeof s->tenant, scen_biggest_tenant(ctx));
    if ((rc = evs_token_tail(&s->tail, s->db, s->tenant)) < 0 ||
        (rc = evs_token_head(&s->head, s->db, s->tenant)) < 0 ||
        (rc = evs_token_head(&s->store_head, s->db, NULL)) < 0) {
        scen_fail(err, errsize, rc, "tokens of %s", s->tenant);
        free(s);
        return -1;
    }
    if (s->head <= s->tail) {
        scen_msg(err, errsize, "%s has no events", s->tenant);
        free(s);
        return -1;
    }
    *state = s;
    return 0;
}

static void *batches_thread_init(void *state, int thread, int nthreads)
{
    track_thread *t = calloc(1, sizeof *t);
    if (t) {
        evs_tracking tr = EVS_TRACKING_INIT;
        t->s = state;
        t->rng = scen_seed(t->s->seed ^ 0x57EA, thread);
        t->tr = tr;
        t->tr.tenant = t->s->tenant;
    }
    return t;
}

/* Reads a batch after `after` into the thread's sink; *n events, *last the
   last position, *marker the next token; positions checked to grow. */
static int read_batch(track_thread *t, uint64_t after, uint64_t *n,
                      uint64_t *last, uint64_t *marker, char *err,
                      size_t errsize)
{
    evs_iter *it = NULL;
    const evs_event *e;
    uint64_t prev = after;
    int rc, disorder = 0;
    *n = 0;
    rc = evs_read_tracking(&it, t->s->db, &t->tr, after, BATCH, 0);
    if (rc == 0) {
        while ((rc = evs_iter_next(&e, it)) == 0) {
            disorder |= e->position <= prev;
            prev = e->position;
            t->sink += e->data_len + (uint8_t)((const char *)e->data)[0];
            (*n)++;
        }
    }
    if (rc != EVS_ITEROVER) {
        scen_fail(err, errsize, rc, "tracking read after %llu",
                  (unsigned long long)after);
        evs_iter_free(it);
        return -1;
    }
    evs_iter_marker(marker, it);
    evs_iter_free(it);
    *last = prev;
    if (disorder) {
        scen_msg(err, errsize, "tracking read after %llu: positions out of "
                 "order", (unsigned long long)after);
        return -1;
    }
    return 0;
}

/* One batch: up to 1000 events of the biggest generated tenant after a
   random token between its tail and head, every event's data touched.
   Timed: the read to the end of the iterator. Items: events read. A
   batch short of 1000 must have reached the tenant's head. */
static int batches_op(void *tstate, uint64_t *t0, uint64_t *t1,
                      uint64_t *items, char *err, size_t errsize)
{
    track_thread *t = tstate;
    track_state *s = t->s;
    uint64_t after = s->tail + scen_below(&t->rng, s->head - s->tail);
    uint64_t n, last, marker;
    int rc;
    *t0 = now_ns();
    rc = read_batch(t, after, &n, &last, &marker, err, errsize);
    *t1 = now_ns();
    if (rc < 0)
        return BENCH_ERROR;
    *items += n;
    if (n < BATCH && last < s->head) {
        scen_msg(err, errsize, "%llu events after token %llu, the last at "
                 "%llu, but %s's head is %llu", (unsigned long long)n,
                 (unsigned long long)after, (unsigned long long)last,
                 s->tenant, (unsigned long long)s->head);
        return BENCH_ERROR;
    }
    return BENCH_COMMITTED;
}

static const bench_target batches_targets[] = {
    {"1000-event streaming batch p99 (ms)",
     "seed 003 (EAF: < 50 ms for a 1000-event batch)", BENCH_P99_MS, 0, 50.0,
     1},
    {"1000-event batch from a token p50 (ms)",
     "evstore goal (docs/PERFORMANCE.md, tracking: <= 0.2 ms)", BENCH_P50_MS,
     0, 0.2, 1},
};

const bench_scenario scen_stream_batches = {
    .name = "stream-batches",
    .title = "1000-event batches from a tracking token",
    .what = "One operation is one tracking read (evs_read_tracking, no "
            "wait) of up to 1000 events of the biggest generated tenant "
            "after a random token between its tail and head, reading every "
            "event's data. Timed: the read to the end of its iterator. "
            "Items: events read. Positions must grow, and a batch short of "
            "1000 must have reached the tenant's head.",
    .item = "events",
    SCEN_LEVELS(read_levels, read_quick),
    SCEN_TARGETS(batches_targets),
    .setup = track_setup,
    .thread_init = batches_thread_init,
    .op = batches_op,
    .thread_fini = scen_free,
    .check = NULL,
    .teardown = scen_free,
};

static void *catchup_thread_init(void *state, int thread, int nthreads)
{
    track_thread *t = calloc(1, sizeof *t);
    if (t) {
        evs_tracking tr = EVS_TRACKING_INIT;
        t->s = state;
        t->tr = tr;
        t->tr.all_tenants = 1; /* the whole backlog, every tenant */
        if (nthreads > 1) {
            t->tr.group_member = (uint32_t)thread;
            t->tr.group_size = (uint32_t)nthreads;
        }
    }
    return t;
}

/* One batch of a processor (member i of a consumer group of N = the
   level's threads) from its token; at the end of the backlog it starts
   over from 0. Timed: the read. Items: events read. */
static int catchup_op(void *tstate, uint64_t *t0, uint64_t *t1,
                      uint64_t *items, char *err, size_t errsize)
{
    track_thread *t = tstate;
    uint64_t n, last, marker;
    int rc;
    *t0 = now_ns();
    rc = read_batch(t, t->token, &n, &last, &marker, err, errsize);
    *t1 = now_ns();
    if (rc < 0)
        return BENCH_ERROR;
    if (marker < t->token) {
        scen_msg(err, errsize, "the marker went back from %llu to %llu",
                 (unsigned long long)t->token, (unsigned long long)marker);
        return BENCH_ERROR;
    }
    *items += n;
    /* a read short of its limit has seen everything up to the head */
    t->token = n < BATCH ? 0 : marker;
    return BENCH_COMMITTED;
}

static const int catchup_levels[] = {1, 2, 4};
static const int catchup_quick[] = {1, 2};

static const bench_target catchup_targets[] = {
    {"catch-up events/s, one processor",
     "evstore goal (docs/PERFORMANCE.md, tracking: >= 5 M events/s)",
     BENCH_ITEMS_PER_S, 1, 5000000, 1},
    {"catch-up batch p99 (ms)",
     "seed 003 (EAF: < 50 ms for a 1000-event batch)", BENCH_P99_MS, 0, 50.0,
     0},
};

const bench_scenario scen_catchup = {
    .name = "catchup",
    .title = "Tracking processors catching up",
    .what = "N concurrent tracking processors, N the level's threads, each "
            "member i of a consumer group of N (none for N = 1), catch up "
            "over the whole store (every tenant): one operation is one "
            "evs_read_tracking of up to 1000 events after the processor's "
            "token, every event's data read; the token then moves to the "
            "read's marker, or back to 0 once a read comes back short (the "
            "backlog is done: the next pass starts). Timed: the read. "
            "Items: events processed; operations are batches. Positions "
            "must grow and the token never go back.",
    .item = "events",
    SCEN_LEVELS(catchup_levels, catchup_quick),
    SCEN_TARGETS(catchup_targets),
    .setup = track_setup,
    .thread_init = catchup_thread_init,
    .op = catchup_op,
    .thread_fini = scen_free,
    .check = NULL,
    .teardown = scen_free,
};
