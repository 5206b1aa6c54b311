/*
 * test_subscriptions.c -- subscriptions (evs_subscribe): 100,000 events
 * from 8 writers delivered exactly once and in order while catching up and
 * live; a restart from the stored checkpoint with no gap and no duplicate;
 * the ways a subscription ends (stop, a callback's value, `from`, a
 * tenant's checkpoint); batches that keep each event's tenant and tags; a
 * filter copied at subscribe; checkpoint_every_ms; the checkpoint stored
 * after a callback error; bad arguments and read-only stores.
 */
#include "fixture_tracking.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Subscriptions                                                       */
/* ------------------------------------------------------------------ */

#define SW_WRITERS 8
#define SW_STREAMS 32 /* per writer */
#define SW_PRE 2000
#define SW_TOTAL 100000

typedef struct sub100k {
    uint8_t *seen;       /* [SW_TOTAL + 1] */
    int64_t next_version[SW_WRITERS * SW_STREAMS + 1];
    uint64_t last_position;
    uint64_t last_token;
    uint64_t delivered; /* read by the main thread: atomic */
    uint64_t batches;
} sub100k;

static int sub100k_cb(void *ctx, const evs_event *const *events, size_t n,
                      uint64_t token)
{
    sub100k *c = ctx;
    size_t i;
    if (n < 1 || n > 256)
        tu_fail("batch of %zu events (batch_size is 256)", n);
    if (token < c->last_token)
        tu_fail("token went back from %" PRIu64 " to %" PRIu64,
                c->last_token, token);
    for (i = 0; i < n; i++) {
        const evs_event *e = events[i];
        unsigned w = 0, k = 0;
        size_t si;
        if (e->position <= c->last_position)
            tu_fail("position %" PRIu64 " after %" PRIu64 " (order or "
                    "duplicate)",
                    e->position, c->last_position);
        c->last_position = e->position;
        if (e->position > token)
            tu_fail("event %" PRIu64 " beyond its batch's token %" PRIu64,
                    e->position, token);
        if (e->position == 0 || e->position > SW_TOTAL) {
            tu_fail("position %" PRIu64 " out of range", e->position);
            continue;
        }
        if (c->seen[e->position]++)
            tu_fail("position %" PRIu64 " delivered twice", e->position);
        if (strcmp(e->stream, "pre") == 0) {
            si = SW_WRITERS * SW_STREAMS;
        } else if (sscanf(e->stream, "sw%u-%u", &w, &k) == 2 &&
                   w < SW_WRITERS && k < SW_STREAMS) {
            si = w * SW_STREAMS + k;
        } else {
            tu_fail("unexpected stream \"%s\"", e->stream);
            continue;
        }
        if (e->stream_version != c->next_version[si])
            tu_fail("stream %s: version %" PRId64 " delivered, expected %"
                    PRId64,
                    e->stream, e->stream_version, c->next_version[si]);
        c->next_version[si] = e->stream_version + 1;
    }
    c->last_token = token;
    c->batches++;
    __atomic_add_fetch(&c->delivered, n, __ATOMIC_RELEASE);
    return 0;
}

typedef struct sw_writer {
    evs_db *db;
    unsigned idx;
    uint64_t count;
    uint64_t seed;
} sw_writer;

static void *sw_writer_main(void *arg)
{
    sw_writer *w = arg;
    tu_rng rng;
    uint64_t done = 0;
    evs_event_data ev[16];
    char data[16][48];
    tu_rng_init(&rng, w->seed);
    while (done < w->count) {
        size_t n = (size_t)tu_rng_range(&rng, 1, 16), i;
        char stream[32];
        int rc;
        if (n > w->count - done)
            n = (size_t)(w->count - done);
        snprintf(stream, sizeof stream, "sw%u-%u", w->idx,
                 (unsigned)tu_rng_range(&rng, 0, SW_STREAMS - 1));
        for (i = 0; i < n; i++) {
            snprintf(data[i], sizeof data[i], "{\"w\":%u,\"i\":%" PRIu64 "}",
                     w->idx, done + i);
            ev[i] = tu_event("Written", data[i]);
        }
        rc = evs_append(NULL, w->db, NULL, stream, EVS_ANY, ev, n);
        if (rc != 0) {
            tu_fail("writer %u: append: %d %s", w->idx, rc,
                    evs_last_error());
            return NULL;
        }
        done += n;
    }
    return NULL;
}

/* Wait until *counter reaches want (or the deadline); returns the value. */
static uint64_t wait_count(const uint64_t *counter, uint64_t want,
                           unsigned max_ms)
{
    int64_t end = mono_us() + (int64_t)max_ms * 1000;
    uint64_t v;
    while ((v = __atomic_load_n(counter, __ATOMIC_ACQUIRE)) < want &&
           mono_us() < end)
        tu_sleep_ms(5);
    return v;
}

static void test_subscription_8_writers_100k(void **state)
{
    tu_store *s = *state;
    evs_subscription_options o = EVS_SUBSCRIPTION_OPTIONS_INIT;
    evs_subscription *sub = NULL;
    sub100k *c = calloc(1, sizeof *c);
    sw_writer w[SW_WRITERS];
    pthread_t th[SW_WRITERS];
    uint64_t seed = tu_seed("subscription_100k"), got, i, tok;
    int64_t t0;
    unsigned k;

    assert_non_null(c);
    c->seen = calloc(SW_TOTAL + 1, 1);
    assert_non_null(c->seen);

    /* A backlog to catch up with first. */
    for (i = 0; i < SW_PRE; i += 50) {
        evs_event_data ev[50];
        for (k = 0; k < 50; k++)
            ev[k] = tu_event("Pre", "{}");
        TU_OK(evs_append(NULL, s->db, NULL, "pre", EVS_ANY, ev, 50));
    }
    t0 = mono_us();
    TU_OK(evs_subscribe(&sub, s->db, &o, sub100k_cb, c));
    assert_non_null(sub);
    for (k = 0; k < SW_WRITERS; k++) {
        w[k].db = s->db;
        w[k].idx = k;
        w[k].count = (SW_TOTAL - SW_PRE) / SW_WRITERS;
        w[k].seed = seed + k;
        assert_int_equal(pthread_create(&th[k], NULL, sw_writer_main, &w[k]),
                         0);
    }
    for (k = 0; k < SW_WRITERS; k++)
        assert_int_equal(pthread_join(th[k], NULL), 0);
    TU_ASSERT_NO_THREAD_FAILURES();
    assert_int_equal(tu_head(s->db, NULL), SW_TOTAL);

    got = wait_count(&c->delivered, SW_TOTAL, 90000);
    /* Give a duplicate a chance to show. */
    tu_sleep_ms(100);
    tok = evs_subscription_token(sub);
    evs_subscription_stop(sub);
    TU_OK(evs_subscription_free(sub));
    print_message("%" PRIu64 " events delivered in %" PRIu64 " batches, %.2f "
                  "s\n",
                  c->delivered, c->batches, (mono_us() - t0) / 1e6);
    TU_ASSERT_NO_THREAD_FAILURES();
    assert_int_equal(got, SW_TOTAL);
    assert_int_equal(c->delivered, SW_TOTAL);
    for (i = 1; i <= SW_TOTAL; i++) {
        if (c->seen[i] != 1)
            print_error("position %" PRIu64 " delivered %u times\n", i,
                        c->seen[i]);
        assert_int_equal(c->seen[i], 1);
    }
    assert_int_equal(c->last_token, SW_TOTAL);
    assert_int_equal(tok, SW_TOTAL);
    /* Every stream was delivered to its end. */
    for (k = 0; k < SW_WRITERS * SW_STREAMS; k++) {
        char stream[32];
        snprintf(stream, sizeof stream, "sw%u-%u", k / SW_STREAMS,
                 k % SW_STREAMS);
        assert_int_equal(c->next_version[k],
                         tu_version(s->db, NULL, stream) + 1);
    }
    free(c->seen);
    free(c);
}

/* A recording subscriber: positions delivered, the last token, and an
 * optional stop: after `stop_after` events it calls evs_subscription_stop
 * (stop_mode 1) or returns stop_rc (stop_mode 2). */
typedef struct recorder {
    evs_subscription *sub; /* set after evs_subscribe: atomic */
    uint64_t pos[REC_MAX];
    uint64_t n;         /* atomic for the main thread */
    uint64_t last_token;
    uint64_t accepted_token; /* of the last batch the callback returned 0 for */
    uint64_t calls;
    uint64_t calls_after_stop;
    int stopped;
    uint64_t stop_after;
    int stop_mode;
    int stop_rc;
    size_t max_batch;
    const char *tenant; /* events must be of this tenant */
} recorder;

static int recorder_cb(void *ctx, const evs_event *const *events, size_t n,
                       uint64_t token)
{
    recorder *r = ctx;
    size_t i;
    if (r->stopped)
        r->calls_after_stop++;
    if (n < 1 || (r->max_batch && n > r->max_batch))
        tu_fail("batch of %zu events (batch_size %zu)", n, r->max_batch);
    if (token < r->last_token)
        tu_fail("token went back from %" PRIu64 " to %" PRIu64,
                r->last_token, token);
    for (i = 0; i < n; i++) {
        uint64_t nn = __atomic_load_n(&r->n, __ATOMIC_RELAXED);
        if (events[i]->stream[0] == '$')
            tu_fail("system event %s delivered at %" PRIu64,
                    events[i]->stream, events[i]->position);
        if (r->tenant && strcmp(events[i]->tenant, r->tenant) != 0)
            tu_fail("event %" PRIu64 " of tenant \"%s\" delivered",
                    events[i]->position, events[i]->tenant);
        if (nn > 0 && events[i]->position <= r->pos[nn - 1])
            tu_fail("position %" PRIu64 " after %" PRIu64,
                    events[i]->position, r->pos[nn - 1]);
        if (events[i]->position > token)
            tu_fail("event %" PRIu64 " beyond its batch's token %" PRIu64,
                    events[i]->position, token);
        if (nn < REC_MAX) {
            r->pos[nn] = events[i]->position;
            __atomic_store_n(&r->n, nn + 1, __ATOMIC_RELEASE);
        } else {
            tu_fail("recorder full");
        }
    }
    r->last_token = token;
    r->calls++;
    if (r->stop_mode && !r->stopped && r->n >= r->stop_after) {
        evs_subscription *sub = __atomic_load_n(&r->sub, __ATOMIC_ACQUIRE);
        if (r->stop_mode == 2) {
            r->stopped = 1;
            return r->stop_rc; /* this batch is refused */
        }
        if (sub != NULL) {
            r->stopped = 1;
            evs_subscription_stop(sub);
        }
    }
    r->accepted_token = token;
    return 0;
}

static recorder *recorder_new(void)
{
    recorder *r = calloc(1, sizeof *r);
    assert_non_null(r);
    return r;
}

static evs_subscription *subscribe_rec(evs_db *db,
                                       const evs_subscription_options *o,
                                       recorder *r)
{
    evs_subscription *sub = NULL;
    TU_OK(evs_subscribe(&sub, db, o, recorder_cb, r));
    assert_non_null(sub);
    __atomic_store_n(&r->sub, sub, __ATOMIC_RELEASE);
    return sub;
}

typedef struct bg_writer {
    evs_db *db;
    unsigned n;        /* events to write */
    unsigned sleep_ms; /* between appends */
    const char *prefix;
} bg_writer;

static void *bg_writer_main(void *arg)
{
    bg_writer *b = arg;
    unsigned done = 0, k = 0;
    while (done < b->n) {
        evs_event_data ev[5];
        char stream[32];
        unsigned m = 1 + k % 5, i;
        int rc;
        if (m > b->n - done)
            m = b->n - done;
        for (i = 0; i < m; i++)
            ev[i] = tu_event("Bg", "{}");
        snprintf(stream, sizeof stream, "%s-%u", b->prefix, k % 13);
        rc = evs_append(NULL, b->db, NULL, stream, EVS_ANY, ev, m);
        if (rc != 0) {
            tu_fail("background append: %d %s", rc, evs_last_error());
            return NULL;
        }
        /* Some noise in another tenant. */
        if (k % 7 == 0)
            (void)evs_append(NULL, b->db, "other", stream, EVS_ANY, ev, 1);
        done += m;
        k++;
        if (b->sleep_ms)
            tu_sleep_ms(b->sleep_ms);
    }
    return NULL;
}

/* Every user position of the tenant delivered exactly once over the
 * runs. */
static void assert_exactly_once(evs_db *db, const char *tenant,
                                recorder *const *runs, size_t nruns)
{
    size_t nwant = 0, i, r, k = 0;
    uint64_t *want = user_positions(db, tenant, &nwant);
    uint64_t total = 0;
    for (r = 0; r < nruns; r++)
        total += runs[r]->n;
    if (total != nwant)
        print_error("%" PRIu64 " events delivered over %zu runs, the tenant "
                    "has %zu\n",
                    total, nruns, nwant);
    for (r = 0; r < nruns; r++) {
        for (i = 0; i < runs[r]->n; i++, k++) {
            if (k >= nwant || runs[r]->pos[i] != want[k])
                print_error("run %zu, event %zu: position %" PRIu64
                            ", expected %" PRIu64 "\n",
                            r, i, runs[r]->pos[i], k < nwant ? want[k] : 0);
            assert_true(k < nwant);
            assert_int_equal(runs[r]->pos[i], want[k]);
        }
    }
    assert_int_equal(k, nwant);
    free(want);
}

/* No user event of the tenant in (lo, hi]: a checkpoint stored beyond the
 * last delivered token skipped nothing. */
static void assert_no_events_between(evs_db *db, const char *tenant,
                                     uint64_t lo, uint64_t hi)
{
    size_t n = 0, i;
    uint64_t *v = user_positions(db, tenant, &n);
    for (i = 0; i < n; i++) {
        if (v[i] > lo && v[i] <= hi)
            print_error("event %" PRIu64 " lies between the last delivered "
                        "token %" PRIu64 " and the stored checkpoint %" PRIu64
                        ": it would be skipped\n",
                        v[i], lo, hi);
        assert_false(v[i] > lo && v[i] <= hi);
    }
    free(v);
}

/* Stopped and restarted from its checkpoint: no gap, no duplicate, while
 * appends go on. */
static void test_subscription_restart_from_checkpoint(void **state)
{
    tu_store *s = *state;
    evs_subscription_options o = EVS_SUBSCRIPTION_OPTIONS_INIT;
    evs_subscription *sub;
    recorder *r1 = recorder_new(), *r2 = recorder_new();
    recorder *runs[2] = {r1, r2};
    bg_writer bw = {s->db, 1500, 1, "r"};
    bg_writer pre = {s->db, 600, 0, "r"};
    pthread_t th;
    uint64_t cp1 = 0, cp2 = 0, want;
    size_t nwant = 0;
    int64_t t0;

    bg_writer_main(&pre);
    TU_ASSERT_NO_THREAD_FAILURES();
    o.checkpoint = "proj";
    o.checkpoint_every_ms = 0;
    o.batch_size = 7;
    r1->max_batch = r2->max_batch = 7;
    r1->tenant = r2->tenant = "";
    r1->stop_mode = 1;
    r1->stop_after = 800;

    assert_int_equal(pthread_create(&th, NULL, bg_writer_main, &bw), 0);
    sub = subscribe_rec(s->db, &o, r1);
    t0 = mono_us();
    while (!r1->stopped && mono_us() - t0 < 60000000)
        tu_sleep_ms(5);
    assert_true(r1->stopped);
    TU_OK(evs_subscription_free(sub));
    assert_int_equal(r1->calls_after_stop, 0);
    TU_OK(evs_checkpoint_get(&cp1, s->db, NULL, "proj"));
    print_message("run 1: %" PRIu64 " events, last token %" PRIu64
                  ", checkpoint %" PRIu64 "\n",
                  r1->n, r1->last_token, cp1);
    assert_true(r1->n >= 800);
    assert_true(cp1 >= r1->last_token);
    assert_no_events_between(s->db, "", r1->last_token, cp1);

    /* Run 2: `from` is ignored when a checkpoint is stored. */
    o.from = 3;
    sub = subscribe_rec(s->db, &o, r2);
    assert_int_equal(pthread_join(th, NULL), 0);
    TU_ASSERT_NO_THREAD_FAILURES();
    free(user_positions(s->db, "", &nwant));
    want = nwant - r1->n;
    assert_int_equal(wait_count(&r2->n, want, 60000), want);
    tu_sleep_ms(100);
    evs_subscription_stop(sub);
    TU_OK(evs_subscription_free(sub));
    TU_ASSERT_NO_THREAD_FAILURES();
    assert_true(r2->n > 0);
    assert_true(r2->pos[0] > cp1);
    TU_OK(evs_checkpoint_get(&cp2, s->db, NULL, "proj"));
    assert_true(cp2 >= r2->last_token);
    assert_true(cp2 <= tu_head(s->db, NULL));
    assert_no_events_between(s->db, "", r2->last_token, cp2);
    assert_exactly_once(s->db, "", runs, 2);
    /* The other tenant has no such checkpoint. */
    TU_CHECK(evs_checkpoint_get(&cp1, s->db, "other", "proj"),
             EVS_ENOTFOUND);
    free(r1);
    free(r2);
}

/* The ways a subscription ends; `from`; a tenant's checkpoint; a
 * callback's non-zero value; a restart after it. */
static void test_subscription_stop_paths(void **state)
{
    tu_store *s = *state;
    evs_subscription_options o = EVS_SUBSCRIPTION_OPTIONS_INIT;
    evs_subscription *sub;
    recorder *r;
    uint64_t cp = 0, i;
    int rc;

    assert_int_equal(evs_subscription_free(NULL), 0);
    evs_subscription_stop(NULL);

    for (i = 0; i < 40; i++) {
        char stream[16];
        snprintf(stream, sizeof stream, "p-%u", (unsigned)(i % 4));
        tu_append1(s->db, NULL, stream, "E", "{}");
    }
    tu_append1(s->db, "t1", "p-1", "E", "{}"); /* 41 */

    /* from: start after it (no checkpoint). */
    r = recorder_new();
    o.from = 5;
    o.batch_size = 3;
    r->max_batch = 3;
    sub = subscribe_rec(s->db, &o, r);
    assert_int_equal(wait_count(&r->n, 35, 30000), 35);
    tu_sleep_ms(50);
    evs_subscription_stop(sub);
    TU_OK(evs_subscription_free(sub));
    TU_ASSERT_NO_THREAD_FAILURES();
    assert_int_equal(r->n, 35);
    assert_int_equal(r->pos[0], 6);
    assert_int_equal(r->pos[34], 40);
    free(r);

    /* The callback stops it with a value (refusing the batch that brings
     * the 6th event): evs_subscription_free returns that value, the
     * checkpoint is the token after the batches it accepted, and a restart
     * delivers the refused batch again. */
    r = recorder_new();
    o = (evs_subscription_options)EVS_SUBSCRIPTION_OPTIONS_INIT;
    o.checkpoint = "cb";
    o.batch_size = 4;
    r->stop_mode = 2;
    r->stop_after = 6;
    r->stop_rc = 42;
    sub = subscribe_rec(s->db, &o, r);
    for (i = 0; i < 6000 && !r->stopped; i++)
        tu_sleep_ms(5);
    assert_true(r->stopped);
    rc = evs_subscription_free(sub);
    assert_int_equal(rc, 42);
    assert_true(r->calls >= 2);
    assert_true(r->accepted_token > 0);
    assert_true(r->accepted_token < r->last_token);
    TU_OK(evs_checkpoint_get(&cp, s->db, NULL, "cb"));
    print_message("checkpoint after a refused batch: %" PRIu64 " (accepted "
                  "up to %" PRIu64 ", refused up to %" PRIu64 ")\n",
                  cp, r->accepted_token, r->last_token);
    assert_int_equal(cp, r->accepted_token);
    free(r);
    r = recorder_new();
    sub = subscribe_rec(s->db, &o, r);
    {
        uint64_t want = 0;
        size_t nuser = 0, k;
        uint64_t *v = user_positions(s->db, "", &nuser);
        for (k = 0; k < nuser; k++)
            want += v[k] > cp;
        assert_int_equal(wait_count(&r->n, want, 30000), want);
        tu_sleep_ms(50);
        evs_subscription_stop(sub);
        TU_OK(evs_subscription_free(sub));
        assert_int_equal(r->n, want);
        for (k = 0; k < want; k++)
            assert_int_equal(r->pos[k], v[nuser - want + k]);
        free(v);
    }
    free(r);

    /* A tenant's subscription stores its checkpoint in that tenant. */
    r = recorder_new();
    o = (evs_subscription_options)EVS_SUBSCRIPTION_OPTIONS_INIT;
    o.filter.tenant = "t1";
    o.checkpoint = "tcp";
    r->tenant = "t1";
    sub = subscribe_rec(s->db, &o, r);
    assert_int_equal(wait_count(&r->n, 1, 30000), 1);
    evs_subscription_stop(sub);
    TU_OK(evs_subscription_free(sub));
    TU_ASSERT_NO_THREAD_FAILURES();
    assert_int_equal(r->n, 1);
    assert_int_equal(r->pos[0], 41);
    TU_OK(evs_checkpoint_get(&cp, s->db, "t1", "tcp"));
    assert_true(cp >= 41);
    TU_CHECK(evs_checkpoint_get(&cp, s->db, NULL, "tcp"), EVS_ENOTFOUND);
    free(r);

    /* Stopping an idle live subscription returns promptly. */
    r = recorder_new();
    o = (evs_subscription_options)EVS_SUBSCRIPTION_OPTIONS_INIT;
    o.from = tu_head(s->db, NULL);
    sub = subscribe_rec(s->db, &o, r);
    tu_sleep_ms(100);
    {
        int64_t t0 = mono_us();
        evs_subscription_stop(sub);
        TU_OK(evs_subscription_free(sub));
        assert_true(mono_us() - t0 < 5000000);
    }
    assert_int_equal(r->n, 0);
    free(r);
    TU_ASSERT_NO_THREAD_FAILURES();
}


/* Batches hold events of several tenants and with different tags: each
 * event of a batch keeps its own tenant, tags and data (the subscription
 * copies the iterator's per-event structures). */
typedef struct tagcheck {
    uint64_t n; /* atomic */
    uint64_t max_batch_seen;
} tagcheck;

static int tagcheck_cb(void *ctx, const evs_event *const *events, size_t n,
                       uint64_t token)
{
    tagcheck *c = ctx;
    size_t i, j;
    (void)token;
    if (n > c->max_batch_seen)
        c->max_batch_seen = n;
    for (i = 0; i < n; i++) {
        const evs_event *e = events[i];
        int64_t k = json_int(e->data, "k");
        char tenant[16], tag[32];
        snprintf(tenant, sizeof tenant, "%s",
                 k % 3 == 0 ? "" : k % 3 == 1 ? "ta" : "tb");
        if (strcmp(e->tenant, tenant) != 0)
            tu_fail("event k=%" PRId64 " at %" PRIu64 ": tenant \"%s\", "
                    "expected \"%s\"",
                    k, e->position, e->tenant, tenant);
        if (e->ntags != (size_t)(k % 4))
            tu_fail("event k=%" PRId64 ": %zu tags, expected %d", k, e->ntags,
                    (int)(k % 4));
        for (j = 0; j < e->ntags && j < (size_t)(k % 4); j++) {
            snprintf(tag, sizeof tag, "k%" PRId64 ":%zu", k, j);
            if (strcmp(e->tags[j], tag) != 0)
                tu_fail("event k=%" PRId64 ": tag %zu is \"%s\", expected "
                        "\"%s\"",
                        k, j, e->tags[j], tag);
        }
    }
    __atomic_add_fetch(&c->n, n, __ATOMIC_RELEASE);
    return 0;
}

static void test_subscription_batches_keep_each_event(void **state)
{
    tu_store *s = *state;
    evs_subscription_options o = EVS_SUBSCRIPTION_OPTIONS_INIT;
    evs_subscription *sub = NULL;
    tagcheck c = {0, 0};
    unsigned k;

    for (k = 0; k < 300; k++) {
        char data[32], tags[3][32];
        const char *tp[3] = {tags[0], tags[1], tags[2]};
        evs_event_data ev;
        unsigned j;
        snprintf(data, sizeof data, "{\"k\":%u}", k);
        for (j = 0; j < 3; j++)
            snprintf(tags[j], sizeof tags[j], "k%u:%u", k, j);
        ev = tu_event("Tagged", data);
        ev.tags = tp;
        ev.ntags = k % 4;
        TU_OK(evs_append(NULL, s->db,
                         k % 3 == 0 ? NULL : k % 3 == 1 ? "ta" : "tb",
                         k % 2 ? "tag-1" : "tag-2", EVS_ANY, &ev, 1));
    }
    o.filter.all_tenants = 1;
    o.batch_size = 100;
    TU_OK(evs_subscribe(&sub, s->db, &o, tagcheck_cb, &c));
    assert_int_equal(wait_count(&c.n, 300, 30000), 300);
    evs_subscription_stop(sub);
    TU_OK(evs_subscription_free(sub));
    TU_ASSERT_NO_THREAD_FAILURES();
    assert_int_equal(c.n, 300);
    assert_true(c.max_batch_seen > 1);
}

/* The filter is the caller's only during evs_subscribe: the subscription
 * keeps its own copy (freed and overwritten here; ASan would also see a
 * use after free). */
static void test_subscription_filter_copied(void **state)
{
    tu_store *s = *state;
    evs_subscription_options o = EVS_SUBSCRIPTION_OPTIONS_INIT;
    evs_subscription *sub_q, *sub_ct;
    recorder *rq = recorder_new(), *rct = recorder_new();
    char *tenant = strdup("tq"), *category = strdup("acct");
    char *type = strdup("Deposited"), *tag = strdup("vip:1");
    const char **types = malloc(sizeof *types);
    const char **tags = malloc(sizeof *tags);
    evs_query_item *item = malloc(sizeof *item);
    evs_query *q = malloc(sizeof *q);
    uint64_t want_q[2], want_ct[2];

    assert_non_null(q);
    types[0] = type;
    tags[0] = tag;
    *item = (evs_query_item){types, 1, tags, 1};
    *q = (evs_query){item, 1};
    o.filter.tenant = tenant;
    o.filter.query = q;
    sub_q = subscribe_rec(s->db, &o, rq);
    o.filter.query = NULL;
    o.filter.category = category;
    o.filter.types = types;
    o.filter.ntypes = 1;
    sub_ct = subscribe_rec(s->db, &o, rct);
    /* Overwrite and free everything the options pointed to. */
    memset(tenant, 'x', strlen(tenant));
    memset(category, 'x', strlen(category));
    memset(type, 'x', strlen(type));
    memset(tag, 'x', strlen(tag));
    free(tenant);
    free(category);
    free(type);
    free(tag);
    free(types);
    free(tags);
    free(item);
    free(q);

    {
        const char *vip[1] = {"vip:1"};
        evs_event_data ev = tu_event("Deposited", "{}");
        evs_append_result r;
        tu_append1(s->db, "tq", "acct-1", "Withdrawn", "{}");
        tu_append1(s->db, NULL, "acct-1", "Deposited", "{}");
        want_ct[0] = tu_append1(s->db, "tq", "acct-1", "Deposited", "{}");
        ev.tags = vip;
        ev.ntags = 1;
        TU_OK(evs_append(&r, s->db, "tq", "other-1", EVS_ANY, &ev, 1));
        want_q[0] = r.first_position;
        TU_OK(evs_append(&r, s->db, "tq", "acct-2", EVS_ANY, &ev, 1));
        want_q[1] = want_ct[1] = r.first_position;
        TU_OK(evs_append(&r, s->db, NULL, "acct-2", EVS_ANY, &ev, 1));
    }
    assert_int_equal(wait_count(&rq->n, 2, 30000), 2);
    assert_int_equal(wait_count(&rct->n, 2, 30000), 2);
    tu_sleep_ms(50);
    evs_subscription_stop(sub_q);
    evs_subscription_stop(sub_ct);
    TU_OK(evs_subscription_free(sub_q));
    TU_OK(evs_subscription_free(sub_ct));
    TU_ASSERT_NO_THREAD_FAILURES();
    assert_int_equal(rq->n, 2);
    assert_int_equal(rq->pos[0], want_q[0]);
    assert_int_equal(rq->pos[1], want_q[1]);
    assert_int_equal(rct->n, 2);
    assert_int_equal(rct->pos[0], want_ct[0]);
    assert_int_equal(rct->pos[1], want_ct[1]);
    free(rq);
    free(rct);
}

/* checkpoint_every_ms > 0: not stored before that time has passed, stored
 * when stopping. */
static void test_subscription_checkpoint_every_ms(void **state)
{
    tu_store *s = *state;
    evs_subscription_options o = EVS_SUBSCRIPTION_OPTIONS_INIT;
    evs_subscription *sub;
    recorder *r = recorder_new();
    uint64_t cp = 0;
    unsigned i;

    for (i = 0; i < 50; i++)
        tu_append1(s->db, NULL, "e-1", "E", "{}");
    o.checkpoint = "hourly";
    o.checkpoint_every_ms = 3600 * 1000;
    o.batch_size = 10;
    sub = subscribe_rec(s->db, &o, r);
    assert_int_equal(wait_count(&r->n, 50, 30000), 50);
    TU_CHECK(evs_checkpoint_get(&cp, s->db, NULL, "hourly"), EVS_ENOTFOUND);
    evs_subscription_stop(sub);
    TU_OK(evs_subscription_free(sub));
    TU_ASSERT_NO_THREAD_FAILURES();
    TU_OK(evs_checkpoint_get(&cp, s->db, NULL, "hourly"));
    assert_true(cp >= r->last_token);
    assert_true(r->last_token >= 50);
    assert_no_events_between(s->db, "", r->last_token, cp);
    free(r);
}

/*
 * A callback that stops the subscription with a negative value (its own
 * error) after some accepted batches, with checkpoint_every_ms > 0: the
 * header says the token after the accepted batches is stored "every
 * checkpoint_every_ms, and when stopping", so those batches are not
 * delivered again after a restart.
 */
static void test_subscription_callback_error_stores_checkpoint(void **state)
{
    tu_store *s = *state;
    evs_subscription_options o = EVS_SUBSCRIPTION_OPTIONS_INIT;
    evs_subscription *sub;
    recorder *r = recorder_new();
    uint64_t cp = 0;
    unsigned i;

    for (i = 0; i < 30; i++)
        tu_append1(s->db, NULL, "e-1", "E", "{}");
    o.checkpoint = "hourly";
    o.checkpoint_every_ms = 3600 * 1000;
    o.batch_size = 10;
    r->stop_mode = 2;
    r->stop_after = 15;
    r->stop_rc = -1;
    sub = subscribe_rec(s->db, &o, r);
    for (i = 0; i < 6000 && !r->stopped; i++)
        tu_sleep_ms(5);
    assert_true(r->stopped);
    assert_int_equal(evs_subscription_free(sub), -1);
    TU_ASSERT_NO_THREAD_FAILURES();
    assert_true(r->accepted_token > 0);
    cp = 0;
    {
        int rc = evs_checkpoint_get(&cp, s->db, NULL, "hourly");
        print_message("after a callback error: checkpoint %" PRIu64 " (rc %d"
                      "), accepted up to %" PRIu64 "\n",
                      cp, rc, r->accepted_token);
        TU_OK(rc);
    }
    assert_int_equal(cp, r->accepted_token);
    free(r);
}

/* ------------------------------------------------------------------ */
/* Bad input                                                           */
/* ------------------------------------------------------------------ */

static int noop_cb(void *ctx, const evs_event *const *events, size_t n,
                   uint64_t token)
{
    (void)ctx;
    (void)events;
    (void)n;
    (void)token;
    return 0;
}

static void test_bad_subscribe_arguments(void **state)
{
    tu_store *s = *state;
    evs_subscription_options o;
    evs_subscription *sub = NULL;
    char name201[202];
    size_t nuser = 0;

    tu_append1(s->db, NULL, "b-1", "E", "{}");
    memset(name201, 'n', 201);
    name201[201] = '\0';

#define BAD_SUB(mod, code)                                                   \
    do {                                                                     \
        o = (evs_subscription_options)EVS_SUBSCRIPTION_OPTIONS_INIT;         \
        mod;                                                                 \
        sub = (evs_subscription *)1;                                         \
        REJECT(s->db, evs_subscribe(&sub, s->db, &o, noop_cb, NULL), code);  \
    } while (0)

    BAD_SUB(o.version = 0, EVS_EINVAL);
    BAD_SUB(o.version = EVS_SUBSCRIPTION_OPTIONS_VERSION + 1, EVS_EINVAL);
    BAD_SUB(o.filter.version = 0, EVS_EINVAL);
    BAD_SUB(o.filter.group_member = 2; o.filter.group_size = 2, EVS_EINVAL);
    BAD_SUB(o.filter.group_size = 2000, EVS_EINVAL);
    BAD_SUB(o.filter.all_tenants = 1; o.checkpoint = "c", EVS_EINVAL);
    BAD_SUB(o.filter.all_tenants = 1; o.filter.tenant = "x", EVS_EINVAL);
    BAD_SUB(o.checkpoint = "", EVS_EINVAL);
    BAD_SUB(o.checkpoint = name201, EVS_EINVAL);
    BAD_SUB(o.filter.category = "", EVS_EINVAL);
#undef BAD_SUB
    o = (evs_subscription_options)EVS_SUBSCRIPTION_OPTIONS_INIT;
    REJECT(s->db, evs_subscribe(NULL, s->db, &o, noop_cb, NULL), EVS_EINVAL);
    REJECT(s->db, evs_subscribe(&sub, s->db, NULL, noop_cb, NULL),
           EVS_EINVAL);
    REJECT(s->db, evs_subscribe(&sub, s->db, &o, NULL, NULL), EVS_EINVAL);
    TU_CHECK(evs_subscribe(&sub, NULL, &o, noop_cb, NULL), EVS_EINVAL);

    /* Read-only: a checkpoint cannot be stored; without one it works. */
    tu_store_close(s);
    {
        evs_open_options oo = EVS_OPEN_OPTIONS_INIT;
        recorder *r = recorder_new();
        oo.flags = EVS_OPEN_READONLY;
        tu_store_open_opts(s, &oo);
        o.checkpoint = "c";
        TU_CHECK(evs_subscribe(&sub, s->db, &o, noop_cb, NULL),
                 EVS_EREADONLY);
        o.checkpoint = NULL;
        free(user_positions(s->db, "", &nuser));
        sub = subscribe_rec(s->db, &o, r);
        assert_int_equal(wait_count(&r->n, nuser, 30000), nuser);
        tu_sleep_ms(50);
        evs_subscription_stop(sub);
        TU_OK(evs_subscription_free(sub));
        TU_ASSERT_NO_THREAD_FAILURES();
        assert_int_equal(r->n, nuser);
        free(r);
        tu_store_close(s);
    }
    tu_store_open(s);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_subscription_8_writers_100k),
        T(test_subscription_restart_from_checkpoint),
        T(test_subscription_stop_paths),
        T(test_subscription_batches_keep_each_event),
        T(test_subscription_filter_copied),
        T(test_subscription_checkpoint_every_ms),
        T(test_subscription_callback_error_stores_checkpoint),
        T(test_bad_subscribe_arguments),
    };
#undef T
    signal(SIGALRM, on_alarm);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
