/*
 * tracking_bench.c -- benchmark of the tracking side of the embedded
 * engine: tokens, tracking reads, blocking reads and subscriptions,
 * consumer groups, checkpoints and snapshots, over the public API only
 * (include/evstore.h).
 *
 * One store in a temporary directory, loaded once and shared by every
 * phase:
 *
 *   load   N events (default 1,000,000) in the default tenant, in
 *          100-event appends over 10,000 "account-<k>" streams (parts of
 *          5 events) and 24 "order-<i>" aggregates of exactly 1000 events
 *          each, spread evenly over the whole log (one event of each in
 *          every ~10th append); plus 1 % more in a second tenant
 *          ("tenant-b", every 100th append), so that tenant tokens have
 *          gaps to skip;
 *   1.     streaming a 1000-event batch from a random token
 *          (evs_read_tracking, limit 1000), and the same for a sparse
 *          category ("order", 2.4 % of the events);
 *   2.     loading a 1000-event aggregate (evs_aggregate_load + the fold)
 *          without snapshots, with the newest snapshot at the last
 *          version (+0 events) and 99 versions back (+99 events);
 *   3.     token operations: head (store, tenant), tail (tenant), token at
 *          a time (random, and on a whole millisecond); ns per call;
 *   4.     commit-to-subscriber wake-up: a writer appends one event every
 *          ~1 ms while a reader waits in evs_read_tracking (or in an
 *          evs_subscribe callback);
 *   5.     catch-up throughput of one tracking reader from token 0 (1000-
 *          and 10000-event batches) and of evs_subscribe;
 *   6.     4 concurrent processors catching up the backlog: a consumer
 *          group of 4 tracking readers, the same as 4 subscriptions, and
 *          4 independent subscriptions that each read everything;
 *   7.     checkpoints: evs_checkpoint_set and _get per call, and an
 *          append carrying a checkpoint update against the same append
 *          without one (A/B, alternating, same run).
 *
 * Honest accounting as in engine_bench and dcb_bench
 * (docs/PERFORMANCE.md): every operation ends committed or in error, and
 * every answer is checked against a model of what was loaded: a batch
 * must be exactly the next 1000 matching positions, an aggregate must
 * fold to the checksum of its 1000 payloads, a token must be the
 * documented position, a catch-up reader must see every event of its
 * share exactly once with every stream's versions in order. Latency
 * percentiles are nearest-rank over sorted per-operation samples; warm-up
 * operations are excluded and counted apart. Every append is durable
 * (the library fdatasyncs the log before it returns; it has no switch to
 * turn that off).
 */
#include "bench_util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PROG "tracking_bench"
#define LOAD_BATCH 100
#define NACCOUNTS 10000     /* account-<k> streams of each tenant */
#define PART_EVENTS 5       /* events per account part of a load append */
#define ACCOUNT_STRIDE 7919 /* prime: 20 parts of one append differ */
#define AGG_EVENTS 1000     /* events of an aggregate */
#define NAGG 8              /* aggregates of each kind */
#define NAGG_ALL (NAGG_KINDS * NAGG)
#define TENANT_B "tenant-b"
#define TENANT_B_EVERY 100  /* one tenant-b append per this many others */
#define PAYLOAD_MAX 512
#define SNAPSHOT_BYTES 512
#define NPROC 4             /* concurrent processors */
#define MAX_PASSES 16
#define WAIT_LIMIT_S 300.0  /* a catch-up that takes longer is hung */
#define WAKE_GAP_NS 1000000u

/* Phases, for --only (the load always runs). */
#define P_STREAM 0x1u
#define P_AGGREGATE 0x2u
#define P_TOKENS 0x4u
#define P_CATCHUP 0x8u
#define P_GROUP 0x10u
#define P_WAKEUP 0x20u
#define P_CHECKPOINT 0x40u

/* Aggregates: without snapshots; with snapshots at versions 99, 199, ...,
 * 999 (the newest covers the whole stream: load = snapshot + 0 events);
 * with snapshots at 100, 200, ..., 900 (load = snapshot + 99 events, the
 * most a snapshot every 100 events leaves to read). */
enum { AGG_PLAIN, AGG_SNAP0, AGG_SNAP99, NAGG_KINDS };

static volatile uint64_t g_sink; /* keeps the data-touching loops alive */

/* Reads every byte (in 8-byte words where it can): what a processor that
 * deserialises each event at least costs, and a checksum. */
static uint64_t touch(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t s = 0, w;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, b + i, 8);
        s += w;
    }
    for (; i < n; i++)
        s += b[i];
    return s;
}

static void sleep_until(uint64_t t_ns)
{
    struct timespec ts = {(time_t)(t_ns / 1000000000u),
                          (long)(t_ns % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
           EINTR)
        ;
}

/* The first error of a phase, kept; later ones only counted. */
static void note_error(char *dst, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void note_error(char *dst, size_t size, const char *fmt, ...)
{
    if (dst[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, size, fmt, ap);
    va_end(ap);
}

/*
 * Write back everything dirty on the store's filesystem (syncfs), as
 * dcb_bench does: the index is written without syncs, so the load leaves
 * dirty LMDB pages that the kernel would otherwise write back during the
 * next phases. Returns the seconds it took.
 */
static double flush_fs(void)
{
    double s = 0;
    char err[PATH_MAX + 64];
    if (sync_fs(g_root, &s, NULL, err, sizeof err) != 0)
        die("%s", err);
    return s;
}

/* ------------------------------------------------------------------ */
/* Options                                                             */
/* ------------------------------------------------------------------ */

typedef struct options {
    bench_opts b; /* --dir, --json, --md, --label, --quick, --keep, --only */
    uint64_t events, seed;
    long batches;     /* phase 1: measured batches per kind */
    long loads;       /* phase 2: measured loads per kind */
    long token_ops;   /* phase 3: measured calls per operation */
    int passes;       /* phases 4, 5: measured passes */
    long wakeups;     /* phase 6: measured events per reader kind */
    long checkpoints; /* phase 7: measured calls per kind */
    double budget;    /* seconds a latency phase may take at most */
} options;

static void usage(FILE *f)
{
    fprintf(f,
"usage: " PROG " [options]\n"
"\n"
"Benchmark of tracking reads (tokens, blocking reads, subscriptions,\n"
"consumer groups), snapshots and checkpoints on one embedded store of\n"
"1,000,000 events (issue 4). Markdown report to stdout.\n"
"\n"
"  --dir DIR          where the temporary store goes (default: the current\n"
"                     directory)\n"
"  --quick            short run (~10 s): the same 1,000,000-event store,\n"
"                     fewer samples and passes\n"
"  --events N         events of the default tenant (default 1000000; at\n"
"                     least 100000); tenant-b gets 1 %% more\n"
"  --seed N           seed of the generator (default 42)\n"
"  --batches N        measured 1000-event batches per kind (default 10000,\n"
"                     quick 2000)\n"
"  --loads N          measured aggregate loads per kind (default 3000,\n"
"                     quick 500)\n"
"  --token-ops N      measured calls per token operation (default 100000,\n"
"                     quick 20000)\n"
"  --passes N         measured catch-up passes (default 3, quick 1)\n"
"  --wakeups N        measured wake-ups per reader kind (default 2000,\n"
"                     quick 400)\n"
"  --checkpoints N    measured checkpoint calls per kind (default 1000,\n"
"                     quick 300)\n"
"  --budget S         at most S seconds per latency measurement (default\n"
"                     4, quick 1); the count says how many were made\n"
"  --only LIST        run only these phases after the load: stream,\n"
"                     aggregate, tokens, catchup, group, wakeup, checkpoint\n"
"  --json FILE        write every figure as JSON to FILE\n"
"  --md FILE          write the Markdown report to FILE as well\n"
"  --label TEXT       free text recorded in the report\n"
"  --keep             keep the store instead of deleting it\n"
"  --help             this text\n"
"\n"
"Exit status: 0; 2 bad arguments or unusable directory; 3 an operation\n"
"failed or an answer did not match what was loaded.\n");
}

/* Names the program, parses argv into o, starts the run. */
static void begin(options *o, bench_run *run, int argc, char **argv)
{
    static const char *const phases[] = {"stream",  "aggregate", "tokens",
                                         "catchup", "group",     "wakeup",
                                         "checkpoint"};
    const bench_opt own[] = {
        BENCH_OPT_U64("--events", &o->events, 100000, 100000000, 1000000,
                      1000000),
        BENCH_OPT_U64("--seed", &o->seed, 0, LONG_MAX, 42, 42),
        BENCH_OPT_LONG("--batches", &o->batches, 1, 100000000, 10000, 2000),
        BENCH_OPT_LONG("--loads", &o->loads, 1, 100000000, 3000, 500),
        BENCH_OPT_LONG("--token-ops", &o->token_ops, 1, 100000000, 100000,
                       20000),
        BENCH_OPT_INT("--passes", &o->passes, 1, MAX_PASSES, 3, 1),
        BENCH_OPT_LONG("--wakeups", &o->wakeups, 1, 1000000, 2000, 400),
        BENCH_OPT_LONG("--checkpoints", &o->checkpoints, 1, 10000000, 1000,
                       300),
        BENCH_OPT_SECONDS("--budget", &o->budget, 3600, 4.0, 1.0),
    };
    memset(o, 0, sizeof *o);
    bench_begin(run, &o->b, PROG, argc, argv, phases, BENCH_COUNT(phases), usage,
                own, BENCH_COUNT(own));
}

/* 5 % of the measured count, at least 10: excluded, counted apart. */
static long warmup_of(long n)
{
    return n / 20 > 10 ? n / 20 : 10;
}

/* ------------------------------------------------------------------ */
/* The model of what was loaded                                        */
/* ------------------------------------------------------------------ */

typedef struct model {
    uint64_t head;            /* global head after the load */
    uint64_t dflt;            /* events of the default tenant */
    uint64_t dflt_last;       /* its newest position */
    uint64_t b_events, b_first, b_last; /* tenant-b */
    uint8_t *is_dflt;         /* bitmap by position: default tenant */
    size_t bitmap_bytes;
    uint64_t order_pos[NAGG_ALL * AGG_EVENTS]; /* "order" events, ascending */
    size_t norder;
    /* per aggregate: checksum of the payloads of versions 0..v */
    uint64_t agg_prefix[NAGG_ALL][AGG_EVENTS];
    int agg_done;             /* events each aggregate has */
    int64_t t_first_us, t_last_us; /* recorded_at of positions 1 and head */
} model;

static model g_m;

static int bit_get(const uint8_t *b, uint64_t pos)
{
    return (b[pos >> 3] >> (pos & 7)) & 1;
}

static void bit_set(uint8_t *b, uint64_t pos)
{
    b[pos >> 3] |= (uint8_t)(1u << (pos & 7));
}

static void agg_name(char *out, size_t size, int i)
{
    snprintf(out, size, "order-%d", i);
}

/* The index of a default-tenant stream in [0, NACCOUNTS + NAGG_ALL), or
 * -1: what the processors use to check each stream's versions. */
static int stream_index(const char *s)
{
    const char *p;
    int base;
    if (strncmp(s, "account-", 8) == 0) {
        p = s + 8;
        base = 0;
    } else if (strncmp(s, "order-", 6) == 0) {
        p = s + 6;
        base = NACCOUNTS;
    } else {
        return -1;
    }
    if (*p < '0' || *p > '9')
        return -1;
    int k = 0;
    for (; *p >= '0' && *p <= '9' && k < 1000000; p++)
        k = k * 10 + (*p - '0');
    if (*p || k >= (base ? NAGG_ALL : NACCOUNTS))
        return -1;
    return base + k;
}

/* ------------------------------------------------------------------ */
/* Load                                                                */
/* ------------------------------------------------------------------ */

typedef struct load_result {
    op_counts c;          /* per 100-event append */
    uint64_t events;
    double wall_s, cpu_s;
    uint64_t syncs;
    lat_summary lat;      /* per append */
    double flush_s;       /* the syncfs after it */
    evs_stats st;
    int store_check;
    char error[256];
} load_result;

/* A payload of about want bytes (at most PAYLOAD_MAX - 1). */
static size_t make_payload(char *buf, uint64_t seq, const char *extra,
                           size_t want, uint64_t *rng)
{
    int k = snprintf(buf, PAYLOAD_MAX, "{\"seq\":%llu,\"amount\":%llu%s,"
                                       "\"note\":\"",
                     (unsigned long long)seq,
                     (unsigned long long)rng_below(rng, 100000), extra);
    size_t n = (size_t)k;
    if (want > PAYLOAD_MAX - 1)
        want = PAYLOAD_MAX - 1;
    for (; n + 2 < want; n++)
        buf[n] = (char)('a' + n % 26);
    buf[n++] = '"';
    buf[n++] = '}';
    buf[n] = 0;
    return n;
}

/*
 * One load append: to tenant (NULL: default) n events; with_agg: the
 * first NAGG_ALL events are one each for the aggregates (their version
 * g_m.agg_done). Every part has distinct streams: a stream may appear in
 * one part only.
 */
static int load_append(evs_db *db, const char *tenant, size_t n,
                       int with_agg, uint64_t *rng, uint64_t *seq,
                       uint64_t *ns, char *err, size_t errsize)
{
    static char payload[LOAD_BATCH][PAYLOAD_MAX];
    static char names[LOAD_BATCH][32];
    evs_event_data ev[LOAD_BATCH];
    evs_stream_append parts[LOAD_BATCH];
    evs_append_result res[LOAD_BATCH];
    size_t np = 0, k = 0;
    uint64_t aggsum[NAGG_ALL];

    if (with_agg) {
        for (int i = 0; i < NAGG_ALL; i++, k++) {
            char extra[48];
            snprintf(extra, sizeof extra, ",\"order\":%d,\"line\":%d", i,
                     g_m.agg_done);
            size_t len = make_payload(payload[k], ++*seq, extra,
                                      150 + rng_below(rng, 150), rng);
            event_init(&ev[k], "OrderLineAdded", payload[k], len);
            aggsum[i] = touch(payload[k], len);
            agg_name(names[np], sizeof names[np], i);
            parts[np] = (evs_stream_append){names[np], EVS_ANY, &ev[k], 1};
            np++;
        }
    }
    uint64_t base = rng_below(rng, NACCOUNTS);
    for (uint64_t j = 0; k < n; j++) {
        size_t cnt = n - k < PART_EVENTS ? n - k : PART_EVENTS;
        snprintf(names[np], sizeof names[np], "account-%llu",
                 (unsigned long long)((base + j * ACCOUNT_STRIDE) %
                                      NACCOUNTS));
        parts[np] = (evs_stream_append){names[np], EVS_ANY, &ev[k], cnt};
        np++;
        for (size_t e = 0; e < cnt; e++, k++) {
            size_t len = make_payload(payload[k], ++*seq, "",
                                      150 + rng_below(rng, 150), rng);
            event_init(&ev[k], rng_below(rng, 4) ? "Deposited" : "Withdrawn",
                       payload[k], len);
        }
    }
    evs_append_request req = EVS_APPEND_REQUEST_INIT;
    req.tenant = tenant;
    req.parts = parts;
    req.nparts = np;
    uint64_t t0 = now_ns();
    int rc = evs_append_ex(res, NULL, db, &req);
    *ns = now_ns() - t0;
    if (rc < 0) {
        snprintf(err, errsize, "evs_append_ex: %s: %s", evs_strerror(rc),
                 evs_last_error());
        return rc;
    }
    uint64_t first = res[0].first_position, last = res[np - 1].last_position;
    if (last - first + 1 != n) {
        snprintf(err, errsize, "an append of %zu events got positions "
                               "%llu..%llu",
                 n, (unsigned long long)first, (unsigned long long)last);
        return -1;
    }
    if (tenant) {
        if (!g_m.b_first)
            g_m.b_first = first;
        g_m.b_last = last;
        g_m.b_events += n;
    } else {
        for (uint64_t p = first; p <= last; p++)
            bit_set(g_m.is_dflt, p);
        g_m.dflt += n;
        g_m.dflt_last = last;
    }
    if (with_agg) {
        int v = g_m.agg_done;
        for (int i = 0; i < NAGG_ALL; i++) {
            if (res[i].first_version != v) {
                snprintf(err, errsize, "order-%d: event written at version "
                                       "%lld, expected %d",
                         i, (long long)res[i].first_version, v);
                return -1;
            }
            g_m.order_pos[g_m.norder++] = res[i].first_position;
            g_m.agg_prefix[i][v] = (v ? g_m.agg_prefix[i][v - 1] : 0) +
                                   aggsum[i];
        }
        g_m.agg_done++;
    }
    return 0;
}

static int64_t recorded_at(evs_db *db, uint64_t pos)
{
    evs_iter *it;
    const evs_event *ev;
    int64_t t = -1;
    if (evs_read_all(&it, db, NULL, pos, 1) == 0) {
        if (evs_iter_next(&ev, it) == 0 && ev->position == pos)
            t = ev->recorded_at;
        evs_iter_free(it);
    }
    return t;
}

static void bench_load(evs_db *db, const options *o, load_result *r)
{
    memset(r, 0, sizeof *r);
    uint64_t nb = (o->events + LOAD_BATCH - 1) / LOAD_BATCH;
    uint64_t agg_every = nb / AGG_EVENTS ? nb / AGG_EVENTS : 1;
    uint64_t max_pos = o->events + o->events / TENANT_B_EVERY + 2 * LOAD_BATCH;
    g_m.bitmap_bytes = (size_t)(max_pos / 8 + 1);
    g_m.is_dflt = xcalloc(g_m.bitmap_bytes, 1);
    fprintf(stderr, PROG ": loading %llu events (+1 %% in %s) in %d-event "
                    "appends\n",
            (unsigned long long)o->events, TENANT_B, LOAD_BATCH);
    uint64_t rng = o->seed, seq = 0, left = o->events;
    samples s = {0};
    char err[256];
    double cpu0 = cpu_seconds(0) + cpu_seconds(1);
    uint64_t sc0 = atomic_load(&g_sync_calls);
    uint64_t t0 = now_ns();
    for (uint64_t b = 0; left > 0; b++) {
        int with_agg = b % agg_every == 0 && g_m.agg_done < AGG_EVENTS;
        /* an aggregate must get all its events even if the default
         * tenant's share runs out first */
        if (!with_agg && g_m.agg_done < AGG_EVENTS &&
            (left + LOAD_BATCH - 1) / LOAD_BATCH <=
                (uint64_t)(AGG_EVENTS - g_m.agg_done))
            with_agg = 1;
        size_t n = left < LOAD_BATCH ? (size_t)left : LOAD_BATCH;
        if (with_agg && n < NAGG_ALL)
            die("--events too small for the aggregates");
        uint64_t ns;
        int rc = load_append(db, NULL, n, with_agg, &rng, &seq, &ns, err,
                             sizeof err);
        samples_push(&s, ns);
        r->c.attempted++;
        if (rc == 0) {
            r->c.committed++;
            r->events += n;
        } else {
            r->c.errors++;
            note_error(r->error, sizeof r->error, "%s", err);
            break; /* the model would no longer match the store */
        }
        left -= n;
        if (b % TENANT_B_EVERY == TENANT_B_EVERY / 2) {
            rc = load_append(db, TENANT_B, LOAD_BATCH, 0, &rng, &seq, &ns,
                             err, sizeof err);
            samples_push(&s, ns);
            r->c.attempted++;
            if (rc == 0) {
                r->c.committed++;
                r->events += LOAD_BATCH;
            } else {
                r->c.errors++;
                note_error(r->error, sizeof r->error, "%s", err);
                break;
            }
        }
    }
    r->wall_s = (double)(now_ns() - t0) / 1e9;
    r->cpu_s = cpu_seconds(0) + cpu_seconds(1) - cpu0;
    r->syncs = atomic_load(&g_sync_calls) - sc0;
    r->lat = summarize(&s);
    free(s.v);
    r->flush_s = flush_fs();
    g_m.head = g_m.dflt_last > g_m.b_last ? g_m.dflt_last : g_m.b_last;
    int rc = evs_stats_get(&r->st, db);
    r->store_check = rc == 0 && r->st.events == r->events &&
                     r->st.head_position == g_m.head &&
                     g_m.agg_done == AGG_EVENTS && !r->c.errors;
    if (!r->store_check) {
        fprintf(stderr, PROG ": load: the store holds %llu events (head "
                        "%llu), %llu were acknowledged (head %llu); "
                        "aggregates have %d events\n",
                (unsigned long long)r->st.events,
                (unsigned long long)r->st.head_position,
                (unsigned long long)r->events,
                (unsigned long long)g_m.head, g_m.agg_done);
        die("the load failed: %s", r->error[0] ? r->error : "counts differ");
    }
    g_m.t_first_us = recorded_at(db, 1);
    g_m.t_last_us = recorded_at(db, g_m.head);
    if (g_m.t_first_us < 0 || g_m.t_last_us < g_m.t_first_us)
        die("cannot read recorded_at of positions 1 and %llu: %s",
            (unsigned long long)g_m.head, evs_last_error());
    fprintf(stderr, PROG ": loaded %llu events in %.1f s (%.0f events/s), "
                    "syncfs %.1f s\n",
            (unsigned long long)r->events, r->wall_s,
            (double)r->events / r->wall_s, r->flush_s);
}

/* ------------------------------------------------------------------ */
/* Timed single-thread operations                                      */
/* ------------------------------------------------------------------ */

/* One measured operation kind: counts, latency, first error. */
typedef struct lat_result {
    long warmup;          /* operations excluded */
    long planned;         /* measured operations asked for */
    op_counts c;          /* committed = answered and checked */
    lat_summary lat;
    int budget_hit;       /* stopped by --budget before `planned` */
    double mean_loop_ns;  /* token ops: mean of a tight untimed loop */
    char error[256];
} lat_result;

/*
 * op(ctx, i, t0, t1, err) runs operation i, sets the timed interval, and
 * returns 0 or an error (with err set). The first `warmup` are excluded;
 * measuring stops after n, or once `budget` seconds have passed and at
 * least 100 were measured.
 */
typedef int (*op_fn)(void *ctx, long i, uint64_t *t0, uint64_t *t1,
                     char *err, size_t errsize);

static void run_ops(lat_result *r, op_fn op, void *ctx, long n,
                    double budget)
{
    memset(r, 0, sizeof *r);
    r->warmup = warmup_of(n);
    r->planned = n;
    samples s = {0};
    char err[256];
    uint64_t start = 0;
    for (long i = 0; i < r->warmup + n; i++) {
        if (i == r->warmup)
            start = now_ns();
        else if (i > r->warmup && s.n >= 100 &&
                 (double)(now_ns() - start) / 1e9 > budget) {
            r->budget_hit = 1;
            break;
        }
        uint64_t t0 = 0, t1 = 0;
        err[0] = 0;
        int rc = op(ctx, i, &t0, &t1, err, sizeof err);
        if (i < r->warmup) {
            if (rc != 0) {
                note_error(r->error, sizeof r->error, "warm-up: %s", err);
                r->c.errors++;
            }
            continue;
        }
        r->c.attempted++;
        if (rc == 0) {
            r->c.committed++;
            samples_push(&s, t1 - t0);
        } else {
            r->c.errors++;
            note_error(r->error, sizeof r->error, "%s", err);
        }
    }
    r->lat = summarize(&s);
    free(s.v);
    if (r->c.errors)
        g_failures++;
}

static void print_ops(const char *name, const lat_result *r)
{
    fprintf(stderr, PROG ": %s: %llu ok, %llu errors, p50 %.4f ms p99 %.4f "
                    "ms max %.4f ms%s%s\n",
            name, (unsigned long long)r->c.committed,
            (unsigned long long)r->c.errors, r->lat.p50, r->lat.p99,
            r->lat.max, r->error[0] ? "; first error: " : "", r->error);
}

/* ------------------------------------------------------------------ */
/* 1. A 1000-event batch from a token                                  */
/* ------------------------------------------------------------------ */

enum { B_ALL, B_CATEGORY, NBATCH };

typedef struct batch_ctx {
    evs_db *db;
    int kind;
    uint64_t rng;
    uint64_t pos[1000];
} batch_ctx;

/* First index of order_pos with a position > after. */
static size_t order_after(uint64_t after)
{
    size_t lo = 0, hi = g_m.norder;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (g_m.order_pos[mid] <= after)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int batch_op(void *ctx_, long i, uint64_t *t0, uint64_t *t1,
                    char *err, size_t errsize)
{
    (void)i;
    batch_ctx *c = ctx_;
    evs_tracking t = EVS_TRACKING_INIT;
    uint64_t after;
    if (c->kind == B_ALL) {
        /* 2000 positions before the head hold >= 1900 default events */
        after = rng_below(&c->rng, g_m.head - 2000);
    } else {
        t.category = "order";
        after = rng_below(&c->rng, g_m.order_pos[g_m.norder - 1001]);
    }
    evs_iter *it = NULL;
    const evs_event *ev;
    uint64_t sum = 0, marker = 0;
    size_t n = 0;
    *t0 = now_ns();
    int rc = evs_read_tracking(&it, c->db, &t, after, 1000, 0);
    int opened = rc == 0;
    if (rc == 0) {
        while ((rc = evs_iter_next(&ev, it)) == 0) {
            sum += touch(ev->data, ev->data_len);
            if (n < 1000)
                c->pos[n] = ev->position;
            n++;
        }
        evs_iter_marker(&marker, it);
        evs_iter_free(it);
    }
    *t1 = now_ns();
    g_sink += sum;
    if (rc != EVS_ITEROVER) {
        snprintf(err, errsize, "%s after %llu: %s: %s",
                 opened ? "evs_iter_next" : "evs_read_tracking",
                 (unsigned long long)after, evs_strerror(rc),
                 evs_last_error());
        return rc < 0 ? rc : -1;
    }
    if (n != 1000) {
        snprintf(err, errsize, "after %llu: %zu events, expected 1000",
                 (unsigned long long)after, n);
        return -1;
    }
    /* exactly the next 1000 matching positions */
    if (c->kind == B_ALL) {
        uint64_t p = after;
        for (size_t k = 0; k < n; k++) {
            do
                p++;
            while (p <= g_m.head && !bit_get(g_m.is_dflt, p));
            if (c->pos[k] != p) {
                snprintf(err, errsize, "after %llu: event %zu at position "
                                       "%llu, expected %llu",
                         (unsigned long long)after, k,
                         (unsigned long long)c->pos[k],
                         (unsigned long long)p);
                return -1;
            }
        }
    } else {
        size_t j = order_after(after);
        for (size_t k = 0; k < n; k++)
            if (c->pos[k] != g_m.order_pos[j + k]) {
                snprintf(err, errsize, "category order after %llu: event "
                                       "%zu at position %llu, expected %llu",
                         (unsigned long long)after, k,
                         (unsigned long long)c->pos[k],
                         (unsigned long long)g_m.order_pos[j + k]);
                return -1;
            }
    }
    if (marker != c->pos[n - 1]) {
        snprintf(err, errsize, "after %llu: marker %llu after a read stopped "
                               "by its limit, expected the last event %llu",
                 (unsigned long long)after, (unsigned long long)marker,
                 (unsigned long long)c->pos[n - 1]);
        return -1;
    }
    return 0;
}

static void bench_batches(evs_db *db, const options *o, lat_result *r)
{
    static const char *const names[NBATCH] = {"batch from a token",
                                              "batch, category order"};
    for (int k = 0; k < NBATCH; k++) {
        batch_ctx *c = xcalloc(1, sizeof *c);
        c->db = db;
        c->kind = k;
        c->rng = o->seed ^ (0xba7c0ull + (uint64_t)k);
        run_ops(&r[k], batch_op, c, o->batches, o->budget);
        print_ops(names[k], &r[k]);
        free(c);
    }
}

/* ------------------------------------------------------------------ */
/* 2. Aggregates and snapshots                                         */
/* ------------------------------------------------------------------ */

typedef struct agg_ctx {
    evs_db *db;
    int kind;
    uint64_t rng;
} agg_ctx;

/* The snapshot of aggregate i at version v: what a real aggregate would
 * serialise (its fold so far), padded to SNAPSHOT_BYTES. */
static size_t snapshot_data(char *buf, int i, int v)
{
    int k = snprintf(buf, SNAPSHOT_BYTES, "{\"v\":%d,\"n\":%d,\"sum\":%llu,"
                                          "\"state\":\"",
                     v, v + 1, (unsigned long long)g_m.agg_prefix[i][v]);
    size_t n = (size_t)k;
    while (n + 3 < SNAPSHOT_BYTES)
        buf[n++] = 's';
    buf[n++] = '"';
    buf[n++] = '}';
    buf[n] = 0;
    return n;
}

static int agg_op(void *ctx_, long i, uint64_t *t0, uint64_t *t1, char *err,
                  size_t errsize)
{
    (void)i;
    agg_ctx *c = ctx_;
    int a = c->kind * NAGG + (int)rng_below(&c->rng, NAGG);
    char name[32];
    agg_name(name, sizeof name, a);
    evs_snapshot *snap = NULL;
    evs_iter *it = NULL;
    const evs_event *ev;
    int64_t snap_v = -1, bad_v = -2;
    uint64_t n = 0, sum = 0, from_events = 0;
    *t0 = now_ns();
    int rc = evs_aggregate_load(&snap, &it, c->db, NULL, name);
    int opened = rc == 0;
    if (rc == 0) {
        if (snap) {
            /* the state: what the snapshot holds */
            n = json_uint(snap->data, "\"n\":");
            sum = json_uint(snap->data, "\"sum\":");
            snap_v = snap->version;
            g_sink += touch(snap->data, snap->data_len);
        }
        while ((rc = evs_iter_next(&ev, it)) == 0) {
            if (ev->stream_version != (int64_t)n && bad_v == -2)
                bad_v = ev->stream_version;
            sum += touch(ev->data, ev->data_len);
            n++;
            from_events++;
        }
    }
    evs_snapshot_free(snap);
    evs_iter_free(it);
    *t1 = now_ns();
    if (rc != EVS_ITEROVER) {
        snprintf(err, errsize, "%s: %s: %s: %s", name,
                 opened ? "evs_iter_next" : "evs_aggregate_load",
                 evs_strerror(rc), evs_last_error());
        return rc < 0 ? rc : -1;
    }
    int64_t want_v = c->kind == AGG_PLAIN ? -1
                     : c->kind == AGG_SNAP0 ? AGG_EVENTS - 1
                                            : AGG_EVENTS - 100;
    if (snap_v != want_v || bad_v != -2 || n != AGG_EVENTS ||
        sum != g_m.agg_prefix[a][AGG_EVENTS - 1]) {
        snprintf(err, errsize, "%s: snapshot version %lld (expected %lld), "
                               "%llu events after it, %s, state n=%llu "
                               "(expected %d), checksum %s",
                 name, (long long)snap_v, (long long)want_v,
                 (unsigned long long)from_events,
                 bad_v != -2 ? "versions out of order" : "versions in order",
                 (unsigned long long)n, AGG_EVENTS,
                 sum == g_m.agg_prefix[a][AGG_EVENTS - 1] ? "ok" : "wrong");
        return -1;
    }
    return 0;
}

/* The snapshots an application saving every 100 events leaves: SNAP0
 * aggregates at 99, 199, ..., 999; SNAP99 ones at 100, 200, ..., 900. */
static int next_save(int k, int *a, int *v)
{
    int per0 = AGG_EVENTS / 100, per99 = AGG_EVENTS / 100 - 1;
    if (k < NAGG * per0) {
        *a = AGG_SNAP0 * NAGG + k / per0;
        *v = 100 * (k % per0) + 99;
        return 1;
    }
    k -= NAGG * per0;
    if (k < NAGG * per99) {
        *a = AGG_SNAP99 * NAGG + k / per99;
        *v = 100 * (k % per99) + 100;
        return 1;
    }
    return 0;
}

typedef struct agg_results {
    lat_result save;
    lat_result load[NAGG_KINDS];
} agg_results;

static void bench_aggregates(evs_db *db, const options *o, agg_results *r)
{
    static const char *const names[NAGG_KINDS] = {
        "aggregate, no snapshot", "aggregate, snapshot at 999 (+0)",
        "aggregate, snapshot at 900 (+99)"};
    /* No snapshot exists yet: the plain kind first. Then the snapshot
     * kinds get theirs, in version order as an application saving every
     * 100 events would (10 or 9 per aggregate), and the saves are
     * measured too. */
    agg_ctx c = {db, AGG_PLAIN, o->seed ^ 0xa66ull};
    run_ops(&r->load[AGG_PLAIN], agg_op, &c, o->loads, o->budget);
    print_ops(names[AGG_PLAIN], &r->load[AGG_PLAIN]);

    /* every save is made (the loads need them); the first 10 are the
     * warm-up */
    lat_result *sv = &r->save;
    memset(sv, 0, sizeof *sv);
    sv->warmup = 10;
    samples ss = {0};
    char data[SNAPSHOT_BYTES], name[32];
    int a, v;
    for (int k = 0; next_save(k, &a, &v); k++) {
        size_t len = snapshot_data(data, a, v);
        agg_name(name, sizeof name, a);
        uint64_t t0 = now_ns();
        int rc = evs_snapshot_save(db, NULL, name, v, "order-v1", data, len);
        uint64_t t1 = now_ns();
        if (k >= sv->warmup) {
            sv->c.attempted++;
            sv->planned++;
        }
        if (rc < 0) {
            sv->c.errors++;
            note_error(sv->error, sizeof sv->error,
                       "evs_snapshot_save(%s, %d): %s: %s", name, v,
                       evs_strerror(rc), evs_last_error());
        } else if (k >= sv->warmup) {
            sv->c.committed++;
            samples_push(&ss, t1 - t0);
        }
    }
    sv->lat = summarize(&ss);
    free(ss.v);
    if (sv->c.errors)
        g_failures++;
    print_ops("snapshot save (512 B)", &r->save);

    for (int k = AGG_SNAP0; k < NAGG_KINDS; k++) {
        c.kind = k;
        run_ops(&r->load[k], agg_op, &c, o->loads, o->budget);
        print_ops(names[k], &r->load[k]);
    }
}

/* ------------------------------------------------------------------ */
/* 3. Token operations                                                 */
/* ------------------------------------------------------------------ */

enum {
    T_HEAD_STORE,
    T_HEAD_TENANT,
    T_HEAD_TENANT_B,
    T_TAIL_TENANT,
    T_TAIL_TENANT_B,
    T_AT,
    T_AT_MS,
    NTOKEN
};

static const char *const g_token_names[NTOKEN] = {
    "evs_token_head (store)",          "evs_token_head (default tenant)",
    "evs_token_head (tenant-b, 1 %)",  "evs_token_tail (default tenant)",
    "evs_token_tail (tenant-b, 1 %)",  "evs_token_at (random time)",
    "evs_token_at (whole millisecond)"};

typedef struct token_ctx {
    evs_db *db;
    int kind;
    uint64_t rng;
    long verified;
} token_ctx;

/* A random time between the first and the last event; whole: rounded
 * down to a millisecond, where the time index answers without reading
 * the events of that millisecond (isolates that read's cost). */
static int64_t random_time(uint64_t *rng, int whole)
{
    int64_t t = g_m.t_first_us +
                (int64_t)rng_below(rng, (uint64_t)(g_m.t_last_us -
                                                   g_m.t_first_us + 1));
    return whole ? t - t % 1000 : t;
}

static int token_call(token_ctx *c, int64_t tm, uint64_t *out)
{
    switch (c->kind) {
    case T_HEAD_STORE:
        return evs_token_head(out, c->db, NULL);
    case T_HEAD_TENANT:
        return evs_token_head(out, c->db, "");
    case T_HEAD_TENANT_B:
        return evs_token_head(out, c->db, TENANT_B);
    case T_TAIL_TENANT:
        return evs_token_tail(out, c->db, "");
    case T_TAIL_TENANT_B:
        return evs_token_tail(out, c->db, TENANT_B);
    default:
        return evs_token_at(out, c->db, tm);
    }
}

/* The answer evs_token_at must give for tm: just before the first event
 * with recorded_at >= tm (checked by reading the events around it). */
static int check_token_at(token_ctx *c, int64_t tm, uint64_t tok, char *err,
                          size_t errsize)
{
    if (tok > g_m.head) {
        snprintf(err, errsize, "evs_token_at(%lld) = %llu, beyond the head "
                               "%llu",
                 (long long)tm, (unsigned long long)tok,
                 (unsigned long long)g_m.head);
        return -1;
    }
    int64_t before = tok ? recorded_at(c->db, tok) : INT64_MIN;
    int64_t after = tok < g_m.head ? recorded_at(c->db, tok + 1) : INT64_MAX;
    if (!(before < tm) || !(after >= tm)) {
        snprintf(err, errsize, "evs_token_at(%lld) = %llu, but position "
                               "%llu was recorded at %lld and %llu at %lld",
                 (long long)tm, (unsigned long long)tok,
                 (unsigned long long)tok, (long long)before,
                 (unsigned long long)tok + 1, (long long)after);
        return -1;
    }
    c->verified++;
    return 0;
}

static int token_op(void *ctx_, long i, uint64_t *t0, uint64_t *t1,
                    char *err, size_t errsize)
{
    token_ctx *c = ctx_;
    int64_t tm = c->kind >= T_AT ? random_time(&c->rng, c->kind == T_AT_MS)
                                 : 0;
    uint64_t tok = UINT64_MAX;
    *t0 = now_ns();
    int rc = token_call(c, tm, &tok);
    *t1 = now_ns();
    if (rc < 0) {
        snprintf(err, errsize, "%s: %s: %s", g_token_names[c->kind],
                 evs_strerror(rc), evs_last_error());
        return rc;
    }
    uint64_t want;
    switch (c->kind) {
    case T_HEAD_STORE: want = g_m.head; break;
    case T_HEAD_TENANT: want = g_m.dflt_last; break;
    case T_HEAD_TENANT_B: want = g_m.b_last; break;
    case T_TAIL_TENANT: want = 0; break; /* position 1 is the default's */
    case T_TAIL_TENANT_B: want = g_m.b_first - 1; break;
    default:
        /* every 16th answer is checked (two reads: not timed) */
        return i % 16 ? 0 : check_token_at(c, tm, tok, err, errsize);
    }
    if (tok != want) {
        snprintf(err, errsize, "%s = %llu, expected %llu",
                 g_token_names[c->kind], (unsigned long long)tok,
                 (unsigned long long)want);
        return -1;
    }
    return 0;
}

typedef struct token_results {
    lat_result op[NTOKEN];
    double clock_ns;     /* p50 of two back-to-back now_ns() */
} token_results;

static void bench_tokens(evs_db *db, const options *o, token_results *r)
{
    samples s = {0};
    for (int i = 0; i < 10000; i++) {
        uint64_t a = now_ns();
        samples_push(&s, now_ns() - a);
    }
    r->clock_ns = summarize(&s).p50 * 1e6;
    free(s.v);
    for (int k = 0; k < NTOKEN; k++) {
        token_ctx c = {db, k, o->seed ^ (0x70c0ull + (uint64_t)k), 0};
        run_ops(&r->op[k], token_op, &c, o->token_ops, o->budget);
        /* the mean of calls back to back, without a clock read each */
        long n = o->token_ops;
        int64_t *tm = xcalloc((size_t)n, sizeof *tm);
        for (long i = 0; i < n; i++)
            tm[i] = k >= T_AT ? random_time(&c.rng, k == T_AT_MS) : 0;
        uint64_t tok, acc = 0, t0 = now_ns();
        long done = 0;
        for (; done < n; done++) {
            if (token_call(&c, tm[done], &tok) < 0)
                break;
            acc += tok;
            if ((done & 1023) == 1023 &&
                (double)(now_ns() - t0) / 1e9 > o->budget)
                break;
        }
        uint64_t t1 = now_ns();
        g_sink += acc;
        r->op[k].mean_loop_ns = done ? (double)(t1 - t0) / (double)done : 0;
        free(tm);
        print_ops(g_token_names[k], &r->op[k]);
    }
}

/* ------------------------------------------------------------------ */
/* Processors: what a catch-up reader does with each event             */
/* ------------------------------------------------------------------ */

/*
 * One processor: it records every position it is given in its own
 * bitmap (a second time is an error), checks that positions grow and are
 * the default tenant's, that each stream's versions come 0, 1, 2, ...
 * (nothing skipped, nothing twice, order kept), and touches every byte.
 */
typedef struct proc {
    evs_db *db;
    uint32_t member, size;  /* consumer group (size 0: none) */
    uint64_t limit;         /* tracking reader: events per read */
    uint64_t head;          /* read until the token reaches it */
    uint64_t expect;        /* subscription: stop after this many (0: no) */
    uint8_t *seen;
    int64_t *ver;           /* per stream_index: last version seen */
    uint64_t events, last_pos, reads, sum;
    uint64_t t_end;         /* when the last event was processed */
    _Atomic uint64_t delivered;
    _Atomic int done;
    long errors;
    char error[256];
    pthread_barrier_t *start;
} proc;

static void proc_init(proc *p, evs_db *db, uint32_t member, uint32_t size)
{
    memset(p, 0, sizeof *p);
    p->db = db;
    p->member = member;
    p->size = size;
    p->seen = xcalloc(g_m.bitmap_bytes, 1);
    p->ver = xcalloc(NACCOUNTS + NAGG_ALL, sizeof *p->ver);
}

static void proc_reset(proc *p)
{
    memset(p->seen, 0, g_m.bitmap_bytes);
    for (int i = 0; i < NACCOUNTS + NAGG_ALL; i++)
        p->ver[i] = -1;
    p->events = p->last_pos = p->reads = p->sum = p->t_end = 0;
    atomic_store(&p->delivered, 0);
    atomic_store(&p->done, 0);
    p->errors = 0;
    p->error[0] = 0;
}

static void proc_free(proc *p)
{
    free(p->seen);
    free(p->ver);
}

static void proc_event(proc *p, const evs_event *ev)
{
    uint64_t pos = ev->position;
    p->sum += touch(ev->data, ev->data_len);
    p->events++;
    if (pos <= p->last_pos || pos > g_m.head || !bit_get(g_m.is_dflt, pos) ||
        bit_get(p->seen, pos)) {
        p->errors++;
        note_error(p->error, sizeof p->error,
                   "position %llu after %llu: %s", (unsigned long long)pos,
                   (unsigned long long)p->last_pos,
                   pos <= p->last_pos ? "out of order or twice"
                   : pos > g_m.head   ? "beyond the head"
                                      : "not a default-tenant event");
    } else {
        bit_set(p->seen, pos);
    }
    p->last_pos = pos;
    int si = stream_index(ev->stream);
    if (si < 0 || ev->stream_version != p->ver[si] + 1) {
        p->errors++;
        note_error(p->error, sizeof p->error,
                   "position %llu: stream %s version %lld, expected %lld",
                   (unsigned long long)pos, ev->stream,
                   (long long)ev->stream_version,
                   si < 0 ? -1LL : (long long)p->ver[si] + 1);
    } else {
        p->ver[si] = ev->stream_version;
    }
}

/* A tracking reader from token 0 until its token reaches p->head. */
static void proc_track(proc *p)
{
    evs_tracking t = EVS_TRACKING_INIT;
    t.group_member = p->member;
    t.group_size = p->size;
    uint64_t after = 0;
    while (after < p->head) {
        evs_iter *it;
        const evs_event *ev;
        int rc = evs_read_tracking(&it, p->db, &t, after, p->limit, 0);
        if (rc < 0) {
            p->errors++;
            note_error(p->error, sizeof p->error,
                       "evs_read_tracking after %llu: %s: %s",
                       (unsigned long long)after, evs_strerror(rc),
                       evs_last_error());
            break;
        }
        while ((rc = evs_iter_next(&ev, it)) == 0)
            proc_event(p, ev);
        uint64_t next = after;
        evs_iter_marker(&next, it);
        evs_iter_free(it);
        p->reads++;
        if (rc != EVS_ITEROVER || next <= after) {
            p->errors++;
            note_error(p->error, sizeof p->error,
                       rc != EVS_ITEROVER
                           ? "evs_iter_next after %llu: error"
                           : "the token did not move after %llu",
                       (unsigned long long)after);
            break;
        }
        after = next;
    }
    p->t_end = now_ns();
}

static void *proc_thread(void *arg)
{
    proc *p = arg;
    pthread_barrier_wait(p->start);
    proc_track(p);
    return NULL;
}

/* The subscription callback of a processor: stops it (returns 1) once it
 * has its expected events, if it knows how many. */
static int proc_cb(void *ctx, const evs_event *const *events, size_t n,
                   uint64_t token)
{
    proc *p = ctx;
    for (size_t i = 0; i < n; i++)
        proc_event(p, events[i]);
    if (n && token < events[n - 1]->position) {
        p->errors++;
        note_error(p->error, sizeof p->error,
                   "callback token %llu before its last event %llu",
                   (unsigned long long)token,
                   (unsigned long long)events[n - 1]->position);
    }
    p->reads++;
    p->t_end = now_ns();
    uint64_t d = atomic_fetch_add(&p->delivered, n) + n;
    if (p->expect && d >= p->expect) {
        atomic_store(&p->done, 1);
        return 1;
    }
    return 0;
}

/*
 * Check that the processors together saw every default-tenant event:
 * group (disjoint shares) or each one all of them. Returns the number of
 * problems (described in err).
 */
static long check_cover(proc *ps, int n, int group, char *err, size_t size)
{
    long bad = 0;
    uint64_t missing = 0, twice = 0;
    for (size_t b = 0; b < g_m.bitmap_bytes; b++) {
        uint8_t want = g_m.is_dflt[b];
        if (group) {
            uint8_t u = 0, dup = 0;
            for (int i = 0; i < n; i++) {
                dup |= (uint8_t)(u & ps[i].seen[b]);
                u |= ps[i].seen[b];
            }
            twice += (uint64_t)__builtin_popcount(dup);
            missing += (uint64_t)__builtin_popcount((uint8_t)(want & ~u));
        } else {
            for (int i = 0; i < n; i++)
                missing += (uint64_t)__builtin_popcount(
                    (uint8_t)(want & ~ps[i].seen[b]));
        }
    }
    if (missing || twice) {
        bad++;
        note_error(err, size, "%llu default-tenant events never seen%s, "
                              "%llu seen by two members",
                   (unsigned long long)missing,
                   group ? "" : " (summed over processors)",
                   (unsigned long long)twice);
    }
    for (int i = 0; i < n; i++)
        if (ps[i].errors) {
            bad += ps[i].errors;
            note_error(err, size, "processor %d: %s", i, ps[i].error);
        }
    return bad;
}

/* ------------------------------------------------------------------ */
/* 5. Catch-up throughput, 6. four processors                          */
/* ------------------------------------------------------------------ */

/* Passes of one catch-up kind: events/s at the median pass. */
typedef struct pass_result {
    const char *name;
    int nproc;
    int passes;
    op_counts c;              /* per pass: committed = every check held */
    double seconds[MAX_PASSES];
    double median_s, min_s, max_s;
    uint64_t events;          /* delivered per pass (all processors) */
    double events_per_s;      /* at the median pass */
    uint64_t share_min, share_max; /* group: events per member */
    uint64_t reads;           /* reads or callbacks per pass */
    char error[256];
} pass_result;

static void pass_finish(pass_result *r)
{
    double sorted[MAX_PASSES];
    int n = r->passes;
    if (n == 0)
        return;
    memcpy(sorted, r->seconds, sizeof sorted);
    qsort(sorted, (size_t)n, sizeof sorted[0], cmp_double);
    r->median_s = sorted[n / 2];
    r->min_s = sorted[0];
    r->max_s = sorted[n - 1];
    r->events_per_s = r->median_s > 0 ? (double)r->events / r->median_s : 0;
    if (r->c.errors)
        g_failures++;
    fprintf(stderr, PROG ": %s: %llu events per pass, median %.3f s, %.0f "
                    "events/s%s%s\n",
            r->name, (unsigned long long)r->events, r->median_s,
            r->events_per_s, r->error[0] ? "; first error: " : "", r->error);
}

static void pass_record(pass_result *r, int pass, double s, long bad,
                        const char *err)
{
    if (pass < 0)
        return; /* warm-up */
    r->seconds[r->passes++] = s;
    r->c.attempted++;
    if (bad == 0) {
        r->c.committed++;
    } else {
        r->c.errors++;
        note_error(r->error, sizeof r->error, "%s", err);
    }
}

/* n tracking readers (group of n when group), one pass. */
static double track_pass(proc *ps, int n, int group, uint64_t limit,
                         long *bad, char *err, size_t size)
{
    pthread_barrier_t bar;
    pthread_t th[NPROC];
    pthread_barrier_init(&bar, NULL, (unsigned)n + 1);
    for (int i = 0; i < n; i++) {
        proc_reset(&ps[i]);
        ps[i].limit = limit;
        ps[i].head = g_m.head;
        ps[i].start = &bar;
        int rc = pthread_create(&th[i], NULL, proc_thread, &ps[i]);
        if (rc != 0)
            die("pthread_create: %s", strerror(rc));
    }
    pthread_barrier_wait(&bar);
    uint64_t t0 = now_ns(), t1 = t0;
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        if (ps[i].t_end > t1)
            t1 = ps[i].t_end;
    }
    pthread_barrier_destroy(&bar);
    *bad = check_cover(ps, n, group, err, size);
    return (double)(t1 - t0) / 1e9;
}

/*
 * n subscriptions from token 0 (a group of n when group), one pass: the
 * time from the first evs_subscribe to the callback that delivered the
 * last event. Group members cannot know their share, so the pass ends
 * when their deliveries add up to the default tenant's events.
 */
static double sub_pass(evs_db *db, proc *ps, int n, int group,
                       uint32_t batch, long *bad, char *err, size_t size)
{
    evs_subscription *sub[NPROC] = {0};
    uint64_t want = group ? g_m.dflt : (uint64_t)n * g_m.dflt;
    *bad = 0;
    for (int i = 0; i < n; i++) {
        proc_reset(&ps[i]);
        ps[i].head = g_m.head;
        ps[i].expect = group ? 0 : g_m.dflt;
    }
    uint64_t t0 = now_ns();
    for (int i = 0; i < n; i++) {
        evs_subscription_options so = EVS_SUBSCRIPTION_OPTIONS_INIT;
        so.filter.group_member = group ? (uint32_t)i : 0;
        so.filter.group_size = group ? (uint32_t)n : 0;
        so.batch_size = batch;
        int rc = evs_subscribe(&sub[i], db, &so, proc_cb, &ps[i]);
        if (rc < 0) {
            (*bad)++;
            note_error(err, size, "evs_subscribe: %s: %s", evs_strerror(rc),
                       evs_last_error());
            sub[i] = NULL;
        }
    }
    /* the callbacks time themselves: polling only decides when to stop */
    uint64_t got = 0;
    while (!*bad) {
        got = 0;
        int finished = 1;
        for (int i = 0; i < n; i++) {
            got += atomic_load(&ps[i].delivered);
            finished &= group || atomic_load(&ps[i].done);
        }
        if (got >= want && finished)
            break;
        if ((double)(now_ns() - t0) / 1e9 > WAIT_LIMIT_S) {
            (*bad)++;
            note_error(err, size, "%llu of %llu events delivered after %.0f "
                                  "s",
                       (unsigned long long)got, (unsigned long long)want,
                       WAIT_LIMIT_S);
            break;
        }
        sleep_s(0.001);
    }
    uint64_t t1 = t0;
    for (int i = 0; i < n; i++) {
        if (!sub[i])
            continue;
        int rc = evs_subscription_free(sub[i]);
        /* stopped by its callback (1), or by evs_subscription_free (0) */
        int want_rc = group ? 0 : 1;
        if (rc != want_rc && !*bad) {
            (*bad)++;
            note_error(err, size, "evs_subscription_free returned %d (%s), "
                                  "expected %d",
                       rc, rc < 0 ? evs_last_error() : "", want_rc);
        }
        if (ps[i].t_end > t1)
            t1 = ps[i].t_end;
    }
    if (!*bad)
        *bad = check_cover(ps, n, group, err, size);
    return (double)(t1 - t0) / 1e9;
}

enum { C_TRACK_1000, C_TRACK_10000, C_SUB_256, C_SUB_1000, NCATCH };
enum { G_TRACK, G_SUB, G_INDEPENDENT, NGROUP };

static void bench_catchup(evs_db *db, const options *o, pass_result *r)
{
    static const char *const names[NCATCH] = {
        "tracking reader, 1000-event reads",
        "tracking reader, 10000-event reads",
        "evs_subscribe, 256-event batches (default)",
        "evs_subscribe, 1000-event batches"};
    proc p;
    proc_init(&p, db, 0, 0);
    char err[256];
    for (int k = 0; k < NCATCH; k++) {
        memset(&r[k], 0, sizeof r[k]);
        r[k].name = names[k];
        r[k].nproc = 1;
        /* tracking: one warm-up pass; the subscriptions read the same
         * pages just after, warm */
        int first = k <= C_TRACK_10000 ? -1 : 0;
        for (int pass = first; pass < o->passes; pass++) {
            long bad = 0;
            double s;
            err[0] = 0;
            if (k <= C_TRACK_10000)
                s = track_pass(&p, 1, 0, k == C_TRACK_1000 ? 1000 : 10000,
                               &bad, err, sizeof err);
            else
                s = sub_pass(db, &p, 1, 0, k == C_SUB_256 ? 0 : 1000, &bad,
                             err, sizeof err);
            r[k].events = p.events;
            r[k].reads = p.reads;
            pass_record(&r[k], pass, s, bad, err);
        }
        pass_finish(&r[k]);
    }
    proc_free(&p);
}

static void bench_group(evs_db *db, const options *o, pass_result *r)
{
    static const char *const names[NGROUP] = {
        "consumer group of 4, tracking readers (1000-event reads)",
        "consumer group of 4, subscriptions (1000-event batches)",
        "4 independent subscriptions, each reads all (1000-event batches)"};
    proc ps[NPROC];
    for (int i = 0; i < NPROC; i++)
        proc_init(&ps[i], db, (uint32_t)i, 0);
    char err[256];
    for (int k = 0; k < NGROUP; k++) {
        memset(&r[k], 0, sizeof r[k]);
        r[k].name = names[k];
        r[k].nproc = NPROC;
        for (int pass = 0; pass < o->passes; pass++) {
            long bad = 0;
            double s;
            err[0] = 0;
            for (int i = 0; i < NPROC; i++)
                ps[i].size = k == G_INDEPENDENT ? 0 : NPROC;
            if (k == G_TRACK)
                s = track_pass(ps, NPROC, 1, 1000, &bad, err, sizeof err);
            else
                s = sub_pass(db, ps, NPROC, k == G_SUB, 1000, &bad, err,
                             sizeof err);
            r[k].events = 0;
            r[k].reads = 0;
            r[k].share_min = UINT64_MAX;
            r[k].share_max = 0;
            for (int i = 0; i < NPROC; i++) {
                r[k].events += ps[i].events;
                r[k].reads += ps[i].reads;
                if (ps[i].events < r[k].share_min)
                    r[k].share_min = ps[i].events;
                if (ps[i].events > r[k].share_max)
                    r[k].share_max = ps[i].events;
            }
            pass_record(&r[k], pass, s, bad, err);
        }
        pass_finish(&r[k]);
    }
    for (int i = 0; i < NPROC; i++)
        proc_free(&ps[i]);
}

/* ------------------------------------------------------------------ */
/* 4. Commit-to-subscriber wake-up                                     */
/* ------------------------------------------------------------------ */

/* Signed latencies (ms): a reader may get an event before the writer's
 * evs_append has returned to it. */
typedef struct slat {
    size_t n;
    double min, p50, p95, p99, max;
} slat;

static slat slat_of(double *v, size_t n)
{
    slat s = {0};
    if (!n)
        return s;
    qsort(v, n, sizeof v[0], cmp_double);
    s.n = n;
    s.min = v[0];
    s.max = v[n - 1];
    double ps[3] = {50, 95, 99};
    double *out[3] = {&s.p50, &s.p95, &s.p99};
    for (int i = 0; i < 3; i++) {
        size_t rank = (size_t)((ps[i] / 100.0) * (double)n + 0.999999);
        if (rank < 1)
            rank = 1;
        if (rank > n)
            rank = n;
        *out[i] = v[rank - 1];
    }
    return s;
}

enum { W_READ, W_SUB, NWAKE };

typedef struct wake_ctx {
    evs_db *db;
    const char *tenant;
    long n;              /* events 0..n-1; event n tells the reader to stop */
    uint64_t start;      /* token the reader starts after */
    uint64_t *t_recv;    /* by seq: when the reader got it (0: never) */
    _Atomic int ready;
    _Atomic int stopped;
    long dup, disorder, errors;
    long last;
    char error[256];
} wake_ctx;

static void wake_got(wake_ctx *c, const evs_event *ev, uint64_t now)
{
    uint64_t seq = json_uint(ev->data, "\"seq\":");
    if (strcmp(ev->tenant, c->tenant) != 0 || seq > (uint64_t)c->n) {
        c->errors++;
        note_error(c->error, sizeof c->error, "unexpected event at position "
                                              "%llu (tenant %s)",
                   (unsigned long long)ev->position, ev->tenant);
        return;
    }
    if (c->t_recv[seq])
        c->dup++;
    else
        c->t_recv[seq] = now;
    if ((long)seq <= c->last)
        c->disorder++;
    c->last = (long)seq;
}

static void *wake_reader(void *arg)
{
    wake_ctx *c = arg;
    evs_tracking t = EVS_TRACKING_INIT;
    t.tenant = c->tenant;
    uint64_t after = c->start, progress = now_ns();
    atomic_store(&c->ready, 1);
    while (c->last < c->n) {
        evs_iter *it;
        const evs_event *ev;
        int rc = evs_read_tracking(&it, c->db, &t, after, 0, 1000000);
        if (rc < 0) {
            c->errors++;
            note_error(c->error, sizeof c->error, "evs_read_tracking: %s: %s",
                       evs_strerror(rc), evs_last_error());
            break;
        }
        while ((rc = evs_iter_next(&ev, it)) == 0) {
            wake_got(c, ev, now_ns());
            progress = now_ns();
        }
        evs_iter_marker(&after, it);
        evs_iter_free(it);
        if (rc != EVS_ITEROVER) {
            c->errors++;
            note_error(c->error, sizeof c->error, "evs_iter_next: %s",
                       evs_strerror(rc));
            break;
        }
        if ((double)(now_ns() - progress) / 1e9 > 30) {
            c->errors++;
            note_error(c->error, sizeof c->error, "no event for 30 s (last "
                                                  "seq %ld of %ld)",
                       c->last, c->n);
            break;
        }
    }
    atomic_store(&c->stopped, 1);
    return NULL;
}

static int wake_cb(void *ctx, const evs_event *const *events, size_t n,
                   uint64_t token)
{
    (void)token;
    wake_ctx *c = ctx;
    uint64_t now = now_ns();
    for (size_t i = 0; i < n; i++)
        wake_got(c, events[i], now);
    if (c->last >= c->n) {
        atomic_store(&c->stopped, 1);
        return 1;
    }
    return 0;
}

typedef struct wake_result {
    long warmup;
    op_counts c;      /* per event: committed = appended and received once */
    slat since_ret;   /* reader got it - evs_append returned */
    slat since_call;  /* reader got it - evs_append was called */
    lat_summary append; /* evs_append itself */
    long early;       /* received before evs_append returned */
    long dup, disorder, missing;
    char error[256];
} wake_result;

static void bench_wake(evs_db *db, const options *o, int kind,
                       wake_result *r)
{
    memset(r, 0, sizeof *r);
    r->warmup = warmup_of(o->wakeups);
    long n = r->warmup + o->wakeups;
    wake_ctx *c = xcalloc(1, sizeof *c);
    c->db = db;
    c->tenant = kind == W_READ ? "wake-read" : "wake-sub";
    c->n = n;
    c->last = -1;
    c->t_recv = xcalloc((size_t)n + 1, sizeof *c->t_recv);
    uint64_t *t_call = xcalloc((size_t)n + 1, sizeof *t_call);
    uint64_t *t_ret = xcalloc((size_t)n + 1, sizeof *t_ret);
    if (evs_token_head(&c->start, db, NULL) < 0)
        die("evs_token_head: %s", evs_last_error());

    pthread_t th;
    evs_subscription *sub = NULL;
    if (kind == W_READ) {
        int rc = pthread_create(&th, NULL, wake_reader, c);
        if (rc != 0)
            die("pthread_create: %s", strerror(rc));
        while (!atomic_load(&c->ready))
            sleep_s(0.001);
    } else {
        evs_subscription_options so = EVS_SUBSCRIPTION_OPTIONS_INIT;
        so.filter.tenant = c->tenant;
        so.from = c->start;
        int rc = evs_subscribe(&sub, db, &so, wake_cb, c);
        if (rc < 0) {
            note_error(r->error, sizeof r->error, "evs_subscribe: %s: %s",
                       evs_strerror(rc), evs_last_error());
            r->c.errors++;
            g_failures++;
            goto out;
        }
    }
    sleep_s(0.05); /* let the reader reach its wait */

    fprintf(stderr, PROG ": wake-up (%s): %ld events, one every %.1f ms\n",
            kind == W_READ ? "blocking read" : "subscription", n,
            WAKE_GAP_NS / 1e6);
    char payload[128];
    for (long i = 0; i <= n; i++) {
        int len = snprintf(payload, sizeof payload, "{\"seq\":%ld,\"what\":"
                                                    "\"ping\"}",
                           i);
        evs_event_data ev;
        event_init(&ev, "Ping", payload, (size_t)len);
        uint64_t t0 = now_ns();
        int rc = evs_append(NULL, db, c->tenant, "ping-1", EVS_ANY, &ev, 1);
        uint64_t t1 = now_ns();
        t_call[i] = t0;
        t_ret[i] = t1;
        if (rc < 0) {
            r->c.errors++;
            note_error(r->error, sizeof r->error, "evs_append: %s: %s",
                       evs_strerror(rc), evs_last_error());
            t_call[i] = 0;
            if (i == n)
                break; /* the reader will not stop: it times out */
        }
        if (atomic_load(&c->stopped) && i < n) {
            note_error(r->error, sizeof r->error, "the reader stopped early: "
                                                  "%s",
                       c->error);
            break;
        }
        sleep_until(t0 + WAKE_GAP_NS);
    }
    /* the reader ends on the last event (or after 30 s without one) */
    if (kind == W_READ) {
        pthread_join(th, NULL);
    } else {
        uint64_t w0 = now_ns();
        while (!atomic_load(&c->stopped) &&
               (double)(now_ns() - w0) / 1e9 < 30)
            sleep_s(0.001);
        int rc = evs_subscription_free(sub);
        if (rc != 1) {
            c->errors++;
            note_error(c->error, sizeof c->error, "evs_subscription_free "
                                                  "returned %d, expected 1 "
                                                  "(stopped by the callback)",
                       rc);
        }
    }

    double *sr = xcalloc((size_t)n, sizeof *sr);
    double *sc = xcalloc((size_t)n, sizeof *sc);
    size_t m = 0;
    samples ap = {0};
    for (long i = r->warmup; i < n; i++) {
        r->c.attempted++;
        if (!t_call[i] || !c->t_recv[i]) {
            if (t_call[i])
                r->missing++;
            if (t_call[i])
                r->c.errors++;
            continue;
        }
        r->c.committed++;
        sr[m] = ((double)c->t_recv[i] - (double)t_ret[i]) / 1e6;
        sc[m] = ((double)c->t_recv[i] - (double)t_call[i]) / 1e6;
        r->early += c->t_recv[i] < t_ret[i];
        samples_push(&ap, t_ret[i] - t_call[i]);
        m++;
    }
    r->since_ret = slat_of(sr, m);
    r->since_call = slat_of(sc, m);
    r->append = summarize(&ap);
    r->dup = c->dup;
    r->disorder = c->disorder;
    if (c->errors || c->dup || c->disorder || r->missing) {
        r->c.errors += (uint64_t)(c->errors + c->dup + c->disorder);
        note_error(r->error, sizeof r->error, "%s%s%ld duplicates, %ld out "
                                              "of order, %ld never received",
                   c->error, c->error[0] ? "; " : "", c->dup, c->disorder,
                   r->missing);
    }
    free(sr);
    free(sc);
    free(ap.v);
out:
    if (r->c.errors)
        g_failures++;
    fprintf(stderr, PROG ": wake-up (%s): since return p50 %.3f p95 %.3f p99 "
                    "%.3f ms; since call p50 %.3f p95 %.3f ms; %s\n",
            kind == W_READ ? "blocking read" : "subscription",
            r->since_ret.p50, r->since_ret.p95, r->since_ret.p99,
            r->since_call.p50, r->since_call.p95,
            r->error[0] ? r->error : "no errors");
    free(c->t_recv);
    free(c);
    free(t_call);
    free(t_ret);
}

/* ------------------------------------------------------------------ */
/* 7. Checkpoints                                                      */
/* ------------------------------------------------------------------ */

#define CP_TENANT "proj"

typedef struct cp_ctx {
    evs_db *db;
    uint64_t token;      /* the last token set */
    uint64_t token_ab;   /* the A/B checkpoint's */
    char payload[256];
    size_t len;
} cp_ctx;

static int cp_set_op(void *ctx_, long i, uint64_t *t0, uint64_t *t1,
                     char *err, size_t errsize)
{
    (void)i;
    cp_ctx *c = ctx_;
    uint64_t tok = c->token + 1;
    *t0 = now_ns();
    int rc = evs_checkpoint_set(c->db, CP_TENANT, "projector-1", tok);
    *t1 = now_ns();
    if (rc < 0) {
        snprintf(err, errsize, "evs_checkpoint_set(%llu): %s: %s",
                 (unsigned long long)tok, evs_strerror(rc), evs_last_error());
        return rc;
    }
    c->token = tok;
    return 0;
}

static int cp_get_op(void *ctx_, long i, uint64_t *t0, uint64_t *t1,
                     char *err, size_t errsize)
{
    (void)i;
    cp_ctx *c = ctx_;
    uint64_t tok = 0;
    *t0 = now_ns();
    int rc = evs_checkpoint_get(&tok, c->db, CP_TENANT, "projector-1");
    *t1 = now_ns();
    if (rc < 0 || tok != c->token) {
        snprintf(err, errsize, "evs_checkpoint_get = %llu (%s), expected %llu",
                 (unsigned long long)tok, rc < 0 ? evs_last_error() : "ok",
                 (unsigned long long)c->token);
        return rc < 0 ? rc : -1;
    }
    return 0;
}

/* The A/B pair: op i even carries the checkpoint (A), odd does not (B);
 * each appends one 160 B event to the projection's output stream. */
static int cp_ab_op(cp_ctx *c, int with_cp, uint64_t *t0, uint64_t *t1,
                    char *err, size_t errsize)
{
    evs_event_data ev;
    event_init(&ev, "BalanceProjected", c->payload, c->len);
    evs_stream_append part = {"projection-1", EVS_ANY, &ev, 1};
    evs_append_request req = EVS_APPEND_REQUEST_INIT;
    req.tenant = CP_TENANT;
    req.parts = &part;
    req.nparts = 1;
    if (with_cp) {
        req.checkpoint = "projector-ab";
        req.checkpoint_token = c->token_ab + 1;
    }
    *t0 = now_ns();
    int rc = evs_append_ex(NULL, NULL, c->db, &req);
    *t1 = now_ns();
    if (rc < 0) {
        snprintf(err, errsize, "evs_append_ex (%s checkpoint): %s: %s",
                 with_cp ? "with" : "without", evs_strerror(rc),
                 evs_last_error());
        return rc;
    }
    if (with_cp)
        c->token_ab++;
    return 0;
}

typedef struct cp_results {
    lat_result set, get;
    lat_result with_cp, without; /* A/B, alternating */
    int backward_rc;             /* evs_checkpoint_set moving back */
    uint64_t final_ab;           /* evs_checkpoint_get of the A/B one */
    char problem[256];
} cp_results;

static void bench_checkpoints(evs_db *db, const options *o, cp_results *r)
{
    memset(r, 0, sizeof *r);
    cp_ctx *c = xcalloc(1, sizeof *c);
    c->db = db;
    uint64_t rng = o->seed ^ 0xc9ull;
    c->len = make_payload(c->payload, 1, "", 160, &rng);
    flush_fs();
    run_ops(&r->set, cp_set_op, c, o->checkpoints, o->budget);
    print_ops("evs_checkpoint_set", &r->set);
    run_ops(&r->get, cp_get_op, c, o->checkpoints * 10, o->budget);
    print_ops("evs_checkpoint_get", &r->get);

    /* A/B: alternate so drift (write-back, neighbours) hits both alike */
    long warm = warmup_of(o->checkpoints);
    samples sa = {0}, sb = {0};
    lat_result *ab[2] = {&r->with_cp, &r->without};
    for (int k = 0; k < 2; k++) {
        ab[k]->warmup = warm;
        ab[k]->planned = o->checkpoints;
    }
    flush_fs();
    uint64_t start = now_ns();
    for (long i = 0; i < 2 * (warm + o->checkpoints); i++) {
        int a = (i & 1) == 0;
        lat_result *lr = a ? &r->with_cp : &r->without;
        long idx = i / 2;
        if (idx == warm && a)
            start = now_ns();
        if (idx > warm && a && sa.n >= 100 &&
            (double)(now_ns() - start) / 1e9 > 2 * o->budget) {
            r->with_cp.budget_hit = r->without.budget_hit = 1;
            break;
        }
        uint64_t t0, t1;
        char err[256];
        int rc = cp_ab_op(c, a, &t0, &t1, err, sizeof err);
        if (idx < warm) {
            if (rc < 0) {
                lr->c.errors++;
                note_error(lr->error, sizeof lr->error, "%s", err);
            }
            continue;
        }
        lr->c.attempted++;
        if (rc == 0) {
            lr->c.committed++;
            samples_push(a ? &sa : &sb, t1 - t0);
        } else {
            lr->c.errors++;
            note_error(lr->error, sizeof lr->error, "%s", err);
        }
    }
    r->with_cp.lat = summarize(&sa);
    r->without.lat = summarize(&sb);
    free(sa.v);
    free(sb.v);
    if (r->with_cp.c.errors || r->without.c.errors)
        g_failures++;
    print_ops("append with checkpoint (A)", &r->with_cp);
    print_ops("append without checkpoint (B)", &r->without);

    /* the contract, once each: stored, and never moved backward */
    int rc = evs_checkpoint_get(&r->final_ab, db, CP_TENANT, "projector-ab");
    if (rc < 0 || r->final_ab != c->token_ab)
        note_error(r->problem, sizeof r->problem,
                   "projector-ab reads %llu (%s), %llu appends carried it",
                   (unsigned long long)r->final_ab,
                   rc < 0 ? evs_last_error() : "ok",
                   (unsigned long long)c->token_ab);
    r->backward_rc = c->token > 1 ? evs_checkpoint_set(db, CP_TENANT,
                                                       "projector-1",
                                                       c->token - 1)
                                  : EVS_EINVAL;
    if (r->backward_rc != EVS_EINVAL)
        note_error(r->problem, sizeof r->problem,
                   "evs_checkpoint_set moving projector-1 back from %llu to "
                   "%llu returned %d, expected EVS_EINVAL",
                   (unsigned long long)c->token,
                   (unsigned long long)c->token - 1, r->backward_rc);
    if (r->problem[0]) {
        fprintf(stderr, PROG ": checkpoints: %s\n", r->problem);
        g_failures++;
    }
    free(c);
}

/* ------------------------------------------------------------------ */
/* Machine noise                                                       */
/* ------------------------------------------------------------------ */

/*
 * The machine is shared: what every other process (and the kernel's own
 * threads) used of the CPU during a phase, i.e. the whole machine's busy
 * time (/proc/stat) minus this process's, as a share of one core.
 */
enum { N_LOAD, N_STREAM, N_AGG, N_TOKENS, N_CATCHUP, N_GROUP, N_WAKE,
       N_CHECKPOINT, NNOISE };
static const char *const g_noise_names[NNOISE] = {
    "load", "1", "2", "3", "5", "6", "4", "7"};

typedef struct noise {
    int ran;
    double wall_s, own_s, other_s; /* other_s < 0: unknown */
    uint64_t t0;
    double own0, busy0;
} noise;

static void noise_begin(noise *n)
{
    n->t0 = now_ns();
    n->own0 = cpu_seconds(0) + cpu_seconds(1);
    n->busy0 = machine_busy_s();
}

static void noise_end(noise *n)
{
    double busy = machine_busy_s();
    n->ran = 1;
    n->wall_s = (double)(now_ns() - n->t0) / 1e9;
    n->own_s = cpu_seconds(0) + cpu_seconds(1) - n->own0;
    n->other_s = busy >= 0 && n->busy0 >= 0 ? busy - n->busy0 - n->own_s : -1;
    if (n->other_s < 0 && busy >= 0 && n->busy0 >= 0)
        n->other_s = 0; /* tick granularity */
}

/* ------------------------------------------------------------------ */
/* The report                                                          */
/* ------------------------------------------------------------------ */

typedef struct report {
    const options *o;
    bench_run run;
    load_result load;
    lat_result batch[NBATCH];
    agg_results agg;
    token_results tok;
    pass_result catchup[NCATCH];
    pass_result group[NGROUP];
    wake_result wake[NWAKE];
    cp_results cp;
    uint64_t syncs;          /* fdatasync/fsync calls of the whole run */
    noise noise[NNOISE];
    evs_stats end;
    goal goals[8], seeds[4];
    int ngoals, nseeds;
} report;

static int ran(const report *r, unsigned phase)
{
    return (r->o->b.phases & phase) != 0;
}

/* A duration in ms as text with a unit that suits it. */
static const char *dur(char *buf, size_t size, double ms)
{
    double a = ms < 0 ? -ms : ms;
    if (a < 0.001)
        snprintf(buf, size, "%.0f ns", ms * 1e6);
    else if (a < 1)
        snprintf(buf, size, "%.1f µs", ms * 1e3);
    else
        snprintf(buf, size, "%.2f ms", ms);
    return buf;
}

static const char *rate(char *buf, size_t size, double per_s)
{
    if (per_s >= 1e6)
        snprintf(buf, size, "%.2f M events/s", per_s / 1e6);
    else
        snprintf(buf, size, "%.0f events/s", per_s);
    return buf;
}

static void compute_goals(void *report_)
{
    report *r = report_;
    goal *g;
    const lat_result *b = &r->batch[B_ALL];
    const lat_result *a = &r->agg.load[AGG_PLAIN];
    char x[32], y[32];

    g = goal_add(r->goals, &r->ngoals, "1000-event batch from a token",
                 "p50 <= 0.2 ms");
    if (ran(r, P_STREAM))
        goal_set(g, clean(&b->c) && b->lat.p50 <= 0.2, "p50 %s, p99 %s",
                 dur(x, sizeof x, b->lat.p50), dur(y, sizeof y, b->lat.p99));
    else
        goal_not_run(g);

    g = goal_add(r->goals, &r->ngoals, "1000-event aggregate, no snapshot",
                 "p50 <= 0.5 ms");
    if (ran(r, P_AGGREGATE))
        goal_set(g, clean(&a->c) && a->lat.p50 <= 0.5, "p50 %s, p99 %s",
                 dur(x, sizeof x, a->lat.p50), dur(y, sizeof y, a->lat.p99));
    else
        goal_not_run(g);

    /* every token operation; the worst p50 decides */
    g = goal_add(r->goals, &r->ngoals, "token operations (worst of 6)",
                 "p50 <= 1 µs");
    if (ran(r, P_TOKENS)) {
        int ok = 1, worst = 0;
        for (int k = 0; k <= T_AT; k++) {
            ok &= clean(&r->tok.op[k].c) && r->tok.op[k].lat.p50 <= 0.001;
            if (r->tok.op[k].lat.p50 > r->tok.op[worst].lat.p50)
                worst = k;
        }
        goal_set(g, ok, "%s: p50 %s", g_token_names[worst],
                 dur(x, sizeof x, r->tok.op[worst].lat.p50));
    } else {
        goal_not_run(g);
    }

    for (int k = 0; k < NWAKE; k++) {
        const wake_result *w = &r->wake[k];
        g = goal_add(r->goals, &r->ngoals,
                     k == W_READ ? "commit-to-reader wake-up (blocking read)"
                                 : "commit-to-callback wake-up "
                                   "(evs_subscribe)",
                     "p95 <= 1 ms after evs_append returned");
        if (ran(r, P_WAKEUP))
            goal_set(g, clean(&w->c) && w->since_ret.p95 <= 1.0,
                     "p50 %s, p95 %s", dur(x, sizeof x, w->since_ret.p50),
                     dur(y, sizeof y, w->since_ret.p95));
        else
            goal_not_run(g);
    }

    const pass_result *c1 = &r->catchup[C_TRACK_1000],
                      *c2 = &r->catchup[C_TRACK_10000];
    g = goal_add(r->goals, &r->ngoals, "catch-up, one tracking reader",
                 ">= 5 M events/s (1000- and 10000-event reads)");
    if (ran(r, P_CATCHUP))
        goal_set(g, clean(&c1->c) && clean(&c2->c) &&
                        c1->events_per_s >= 5e6 && c2->events_per_s >= 5e6,
                 "%s / %s", rate(x, sizeof x, c1->events_per_s),
                 rate(y, sizeof y, c2->events_per_s));
    else
        goal_not_run(g);

    /* the seed's SLAs (EAF), on p99 */
    const lat_result *s0 = &r->agg.load[AGG_SNAP0];
    g = goal_add(r->seeds, &r->nseeds, "1000-event batch from a token",
                 "< 50 ms");
    if (ran(r, P_STREAM))
        goal_set(g, clean(&b->c) && b->lat.p99 < 50, "p99 %s",
                 dur(x, sizeof x, b->lat.p99));
    else
        goal_not_run(g);
    g = goal_add(r->seeds, &r->nseeds, "1000-event aggregate (with and "
                                       "without snapshots)",
                 "< 20 ms");
    if (ran(r, P_AGGREGATE))
        goal_set(g, clean(&a->c) && clean(&s0->c) && a->lat.p99 < 20 &&
                        s0->lat.p99 < 20 &&
                        r->agg.load[AGG_SNAP99].lat.p99 < 20,
                 "p99 %s / %s / %s", dur(x, sizeof x, a->lat.p99),
                 dur(y, sizeof y, s0->lat.p99),
                 dur((char[32]){0}, 32, r->agg.load[AGG_SNAP99].lat.p99));
    else
        goal_not_run(g);
    g = goal_add(r->seeds, &r->nseeds, "token operations", "< 1 ms");
    if (ran(r, P_TOKENS)) {
        double worst = 0;
        int ok = 1;
        for (int k = 0; k <= T_AT; k++) {
            ok &= clean(&r->tok.op[k].c);
            if (r->tok.op[k].lat.p99 > worst)
                worst = r->tok.op[k].lat.p99;
        }
        goal_set(g, ok && worst < 1, "worst p99 %s", dur(x, sizeof x, worst));
    } else {
        goal_not_run(g);
    }
}

static const char *verdict_md(const char *v)
{
    return strcmp(v, "met") == 0       ? "met"
           : strcmp(v, "not met") == 0 ? "**NOT met**"
                                       : v;
}

/* One table row of a latency result. */
static void md_lat_row(FILE *f, const char *scenario, const lat_result *l,
                       const char *goal_text, const char *verdict)
{
    char a[32], b[32], c[32], d[32], cnt[96];
    snprintf(cnt, sizeof cnt, "%llu%s (+%ld)",
             (unsigned long long)l->c.committed,
             l->c.errors ? " **+errors**" : "", l->warmup);
    fprintf(f, "| %s | %s | %s | %s | %s | %s | | %s | %s |\n", scenario, cnt,
            dur(a, sizeof a, l->lat.p50), dur(b, sizeof b, l->lat.p95),
            dur(c, sizeof c, l->lat.p99), dur(d, sizeof d, l->lat.max),
            goal_text, verdict);
}

static void md_pass_row(FILE *f, const pass_result *p, const char *goal_text,
                        const char *verdict)
{
    char x[48], cnt[96];
    snprintf(cnt, sizeof cnt, "%llu × %d pass%s%s",
             (unsigned long long)p->events, p->passes,
             p->passes == 1 ? "" : "es", p->c.errors ? " **errors**" : "");
    fprintf(f, "| %s | %s | | | | | %s (median pass %.3f s) | %s | %s |\n",
            p->name, cnt, rate(x, sizeof x, p->events_per_s), p->median_s,
            goal_text, verdict);
}

static void write_md(FILE *f, const void *report_)
{
    const report *r = report_;
    const options *o = r->o;
    const load_result *ld = &r->load;
    char x[32], y[32], z[32];

    fprintf(f, "# tracking_bench: tokens, tracking reads, subscriptions, "
               "consumer groups, snapshots, checkpoints (issue 4)\n\n");
    md_machine_rows(f, &r->run.m, o->b.label, r->run.version, r->run.root);
    fprintf(f, "| durability | every append is fdatasync'ed before it "
               "returns (the library has no switch to turn it off): %llu "
               "fdatasync/fsync calls in this run |\n",
            (unsigned long long)r->syncs);
    fprintf(f, "| mode | %s; %.0f s in all |\n",
            o->b.quick ? "--quick (fewer samples and passes)" : "default",
            r->run.total_s);
    fprintf(f, "| store | %llu events: %llu in the default tenant "
               "(10,000 account streams, 24 aggregates of 1000 events "
               "spread over the whole log), %llu in %s; log %.0f MiB, index "
               "%.0f MiB |\n",
            (unsigned long long)ld->events, (unsigned long long)g_m.dflt,
            (unsigned long long)g_m.b_events, TENANT_B,
            (double)ld->st.log_bytes / 1048576.0,
            (double)ld->st.index_bytes / 1048576.0);
    fprintf(f, "| load | %llu appends of 100 events in %.1f s (%.0f "
               "events/s, append p50 %s, p99 %s), then syncfs %.1f s |\n\n",
            (unsigned long long)ld->c.committed, ld->wall_s,
            (double)ld->events / ld->wall_s, dur(x, sizeof x, ld->lat.p50),
            dur(y, sizeof y, ld->lat.p99), ld->flush_s);
    fprintf(f, "The machine is shared. CPU used by everything else "
               "(machine busy time from /proc/stat minus this process's) "
               "during each phase, in %% of one core (of %ld), and this "
               "process's own:\n\n| phase (in the order run) |",
            r->run.m.cores);
    for (int i = 0; i < NNOISE; i++)
        if (r->noise[i].ran)
            fprintf(f, " %s |", g_noise_names[i]);
    fprintf(f, "\n|---|");
    for (int i = 0; i < NNOISE; i++)
        if (r->noise[i].ran)
            fprintf(f, "---|");
    fprintf(f, "\n| other processes |");
    for (int i = 0; i < NNOISE; i++)
        if (r->noise[i].ran) {
            const noise *n = &r->noise[i];
            if (n->other_s < 0 || n->wall_s <= 0)
                fprintf(f, " ? |");
            else
                fprintf(f, " %.0f %% |", 100 * n->other_s / n->wall_s);
        }
    fprintf(f, "\n| this process |");
    for (int i = 0; i < NNOISE; i++)
        if (r->noise[i].ran)
            fprintf(f, " %.0f %% |",
                    r->noise[i].wall_s > 0
                        ? 100 * r->noise[i].own_s / r->noise[i].wall_s
                        : 0);
    fprintf(f, "\n\n");

    fprintf(f, "## Results\n\n");
    fprintf(f, "Count: measured operations (+ warm-up operations, excluded). "
               "Percentiles: nearest rank over every measured operation's "
               "wall time. Every answer was checked against the model of "
               "what was loaded.\n\n");
    fprintf(f, "| scenario | count | p50 | p95 | p99 | max | throughput | "
               "goal | verdict |\n|---|---|---|---|---|---|---|---|---|\n");
    const goal *g = r->goals;
    if (ran(r, P_STREAM)) {
        md_lat_row(f, "1. 1000-event batch from a random token "
                      "(evs_read_tracking, limit 1000, every byte read)",
                   &r->batch[B_ALL], "p50 ≤ 0.2 ms", verdict_md(g[0].verdict));
        md_lat_row(f, "1b. the same, category `order` (2.4 % of the "
                      "events)",
                   &r->batch[B_CATEGORY], "—", "");
    }
    if (ran(r, P_AGGREGATE)) {
        md_lat_row(f, "2. 1000-event aggregate, no snapshot "
                      "(evs_aggregate_load + fold)",
                   &r->agg.load[AGG_PLAIN], "p50 ≤ 0.5 ms",
                   verdict_md(g[1].verdict));
        md_lat_row(f, "2b. the same, snapshot every 100 events, newest at "
                      "999 (snapshot + 0 events)",
                   &r->agg.load[AGG_SNAP0], "—", "");
        md_lat_row(f, "2c. the same, newest snapshot at 900 (snapshot + 99 "
                      "events)",
                   &r->agg.load[AGG_SNAP99], "—", "");
        md_lat_row(f, "2d. evs_snapshot_save (512 B)", &r->agg.save, "—", "");
    }
    if (ran(r, P_TOKENS))
        for (int k = 0; k < NTOKEN; k++) {
            char name[96];
            snprintf(name, sizeof name, "3. %s", g_token_names[k]);
            int ok = clean(&r->tok.op[k].c) && r->tok.op[k].lat.p50 <= 0.001;
            if (k == T_AT_MS)
                md_lat_row(f, name, &r->tok.op[k], "— (diagnostic)", "");
            else
                md_lat_row(f, name, &r->tok.op[k], "p50 ≤ 1 µs",
                           ok ? "met" : "**NOT met**");
        }
    if (ran(r, P_WAKEUP))
        for (int k = 0; k < NWAKE; k++) {
            const wake_result *w = &r->wake[k];
            char cnt[96];
            snprintf(cnt, sizeof cnt, "%llu%s (+%ld)",
                     (unsigned long long)w->c.committed,
                     w->c.errors ? " **+errors**" : "", w->warmup);
            fprintf(f, "| 4. wake-up, %s: reader got it − evs_append "
                       "returned | %s | %s | %s | %s | %s | | p95 ≤ 1 ms | "
                       "%s |\n",
                    k == W_READ ? "blocking evs_read_tracking"
                                : "evs_subscribe callback",
                    cnt, dur(x, sizeof x, w->since_ret.p50),
                    dur(y, sizeof y, w->since_ret.p95),
                    dur(z, sizeof z, w->since_ret.p99),
                    dur((char[32]){0}, 32, w->since_ret.max),
                    verdict_md(g[3 + k].verdict));
            fprintf(f, "| 4. wake-up, %s: reader got it − evs_append "
                       "called | | %s | %s | %s | %s | | — | |\n",
                    k == W_READ ? "blocking evs_read_tracking"
                                : "evs_subscribe callback",
                    dur(x, sizeof x, w->since_call.p50),
                    dur(y, sizeof y, w->since_call.p95),
                    dur(z, sizeof z, w->since_call.p99),
                    dur((char[32]){0}, 32, w->since_call.max));
        }
    if (ran(r, P_CATCHUP))
        for (int k = 0; k < NCATCH; k++) {
            char name[128];
            snprintf(name, sizeof name, "5. catch-up from token 0, %s",
                     r->catchup[k].name);
            pass_result p = r->catchup[k];
            p.name = name;
            md_pass_row(f, &p, k <= C_TRACK_10000 ? "≥ 5 M events/s" : "—",
                        k <= C_TRACK_10000 ? verdict_md(g[5].verdict) : "");
        }
    if (ran(r, P_GROUP))
        for (int k = 0; k < NGROUP; k++) {
            char name[160];
            snprintf(name, sizeof name, "6. %s", r->group[k].name);
            pass_result p = r->group[k];
            p.name = name;
            md_pass_row(f, &p, "—", "");
        }
    if (ran(r, P_CHECKPOINT)) {
        md_lat_row(f, "7. evs_checkpoint_set (durable)", &r->cp.set, "—", "");
        md_lat_row(f, "7. evs_checkpoint_get", &r->cp.get, "—", "");
        md_lat_row(f, "7. append 1 event + checkpoint update (A)",
                   &r->cp.with_cp, "—", "");
        md_lat_row(f, "7. append 1 event, no checkpoint (B)", &r->cp.without,
                   "—", "");
    }

    fprintf(f, "\n## Goals\n\n");
    fprintf(f, "| goal | target | measured | verdict |\n|---|---|---|---|\n");
    for (int i = 0; i < r->ngoals; i++)
        fprintf(f, "| %s | %s | %s | %s |\n", g[i].name, g[i].target,
                g[i].measured, verdict_md(g[i].verdict));
    fprintf(f, "\nThe seed's SLAs (EAF storage engine), judged on p99:\n\n");
    fprintf(f, "| operation | seed | measured | verdict |\n|---|---|---|---|\n");
    for (int i = 0; i < r->nseeds; i++)
        fprintf(f, "| %s | %s | %s | %s |\n", r->seeds[i].name,
                r->seeds[i].target, r->seeds[i].measured,
                verdict_md(r->seeds[i].verdict));

    fprintf(f, "\n## Notes\n\n");
    if (ran(r, P_STREAM))
        fprintf(f, "- **1.** Random tokens in [0, head − 2000]; a batch is "
                   "checked to be exactly the next 1000 default-tenant "
                   "positions after the token (1b: the next 1000 `order` "
                   "positions), and its marker the last of them.%s\n",
                r->batch[B_ALL].budget_hit || r->batch[B_CATEGORY].budget_hit
                    ? " Stopped by --budget before the planned count."
                    : "");
    if (ran(r, P_AGGREGATE))
        fprintf(f, "- **2.** 8 aggregates per kind, picked at random per "
                   "load, each written one event per ~%llu appends across "
                   "the whole load (so 1000 events span the log). The fold "
                   "reads every byte of every event (and of the snapshot), "
                   "checks the versions follow each other from the "
                   "snapshot's, and must end at 1000 events with the "
                   "checksum of the 1000 payloads. Snapshots are saved at "
                   "99, 199, …, 999 (2b) or 100, 200, …, 900 (2c); the "
                   "store keeps the newest 3 per stream (the default).\n",
                (unsigned long long)((o->events / LOAD_BATCH) / AGG_EVENTS));
    if (ran(r, P_TOKENS)) {
        fprintf(f, "- **3.** Each call timed alone with CLOCK_MONOTONIC; "
                   "two back-to-back clock reads take %.0f ns (p50), "
                   "included in every sample. Calls back to back without "
                   "a clock read, mean per call:",
                r->tok.clock_ns);
        for (int k = 0; k < NTOKEN; k++)
            fprintf(f, "%s %s %.0f ns", k ? ";" : "", g_token_names[k],
                    r->tok.op[k].mean_loop_ns);
        double ms = (double)(g_m.t_last_us - g_m.t_first_us) / 1e3;
        fprintf(f, ". evs_token_at answers were checked every 16th call by "
                   "reading the events on both sides of the token. The load "
                   "wrote %.0f events per millisecond on average (%llu "
                   "events in %.0f ms): a random time falls in a "
                   "millisecond that holds that many events, which "
                   "evs_token_at reads up to the first recorded at or after "
                   "the time; a whole millisecond needs only its first.\n",
                ms > 0 ? (double)g_m.head / ms : 0,
                (unsigned long long)g_m.head, ms);
    }
    if (ran(r, P_WAKEUP)) {
        for (int k = 0; k < NWAKE; k++) {
            const wake_result *w = &r->wake[k];
            fprintf(f, "- **4 (%s).** One writer thread appends one event "
                       "(evs_append, its own tenant) every %.1f ms; the "
                       "reader %s. \"Got it\" is when %s. %ld of %llu "
                       "events reached the reader before evs_append had "
                       "returned to the writer (negative latencies). The "
                       "appends themselves: p50 %s, p95 %s, p99 %s. %ld "
                       "duplicates, %ld out of order, %ld missing.\n",
                    k == W_READ ? "blocking read" : "subscription",
                    WAKE_GAP_NS / 1e6,
                    k == W_READ ? "thread loops on evs_read_tracking with a "
                                  "1 s timeout"
                                : "is an evs_subscribe callback (default "
                                  "batch size)",
                    k == W_READ ? "evs_iter_next returned the event"
                                : "the callback was entered",
                    w->early, (unsigned long long)w->c.committed,
                    dur(x, sizeof x, w->append.p50),
                    dur(y, sizeof y, w->append.p95),
                    dur(z, sizeof z, w->append.p99), w->dup, w->disorder,
                    w->missing);
        }
    }
    if (ran(r, P_CATCHUP) || ran(r, P_GROUP))
        fprintf(f, "- **5, 6.** Every reader reads every byte of every "
                   "event and checks it: position beyond the last, a "
                   "default-tenant event not seen before by it, and the "
                   "next version of its stream; after a pass, the readers' "
                   "positions must cover the default tenant's %llu events "
                   "exactly (a group: each event by exactly one member). "
                   "Tracking readers had one warm-up pass first; events/s at "
                   "the median pass. Subscriptions: from evs_subscribe to "
                   "the callback that delivered the last event. The "
                   "machine has %ld cores for the 4 processors.",
                (unsigned long long)g_m.dflt, r->run.m.cores);
    if (ran(r, P_GROUP))
        for (int k = 0; k < NGROUP; k++)
            fprintf(f, " %s: events per processor %llu..%llu, %llu "
                       "reads/callbacks.",
                    r->group[k].name, (unsigned long long)r->group[k].share_min,
                    (unsigned long long)r->group[k].share_max,
                    (unsigned long long)r->group[k].reads);
    if (ran(r, P_CATCHUP) || ran(r, P_GROUP))
        fprintf(f, "\n");
    if (ran(r, P_CHECKPOINT)) {
        const cp_results *c = &r->cp;
        fprintf(f, "- **7.** Tenant `%s`. A/B: the same one-event append "
                   "(evs_append_ex), alternately with and without "
                   "`checkpoint`/`checkpoint_token`, so both see the same "
                   "conditions; p50 difference %s, p99 difference %s. "
                   "Checks: the A/B checkpoint reads back %llu; moving a "
                   "checkpoint back returned %d (%s).%s%s\n",
                CP_TENANT,
                dur(x, sizeof x, c->with_cp.lat.p50 - c->without.lat.p50),
                dur(y, sizeof y, c->with_cp.lat.p99 - c->without.lat.p99),
                (unsigned long long)c->final_ab, c->backward_rc,
                evs_strerror(c->backward_rc),
                c->problem[0] ? " **Problem:** " : "", c->problem);
    }

    /* errors */
    const struct {
        const char *name;
        const char *err;
    } errs[] = {
        {"1. batch", r->batch[B_ALL].error},
        {"1b. batch, category", r->batch[B_CATEGORY].error},
        {"2. aggregate, no snapshot", r->agg.load[AGG_PLAIN].error},
        {"2b. aggregate, snapshot +0", r->agg.load[AGG_SNAP0].error},
        {"2c. aggregate, snapshot +99", r->agg.load[AGG_SNAP99].error},
        {"2d. snapshot save", r->agg.save.error},
        {"3. head (store)", r->tok.op[0].error},
        {"3. head (tenant)", r->tok.op[1].error},
        {"3. head (tenant-b)", r->tok.op[2].error},
        {"3. tail (tenant)", r->tok.op[3].error},
        {"3. tail (tenant-b)", r->tok.op[4].error},
        {"3. token at", r->tok.op[5].error},
        {"3. token at, whole ms", r->tok.op[6].error},
        {"4. wake-up, blocking read", r->wake[W_READ].error},
        {"4. wake-up, subscription", r->wake[W_SUB].error},
        {"5. catch-up 1000", r->catchup[0].error},
        {"5. catch-up 10000", r->catchup[1].error},
        {"5. subscribe 256", r->catchup[2].error},
        {"5. subscribe 1000", r->catchup[3].error},
        {"6. group, tracking", r->group[0].error},
        {"6. group, subscriptions", r->group[1].error},
        {"6. independent subscriptions", r->group[2].error},
        {"7. checkpoint set", r->cp.set.error},
        {"7. checkpoint get", r->cp.get.error},
        {"7. append with checkpoint", r->cp.with_cp.error},
        {"7. append without checkpoint", r->cp.without.error},
        {"7. checkpoint contract", r->cp.problem},
    };
    int nerr = 0;
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++)
        nerr += errs[i].err[0] != 0;
    if (nerr || g_failures) {
        fprintf(f, "\n## Errors and failed checks\n\n%d check(s) failed; "
                   "figures of a phase with errors are not to be "
                   "trusted.\n\n",
                g_failures);
        for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++)
            if (errs[i].err[0])
                fprintf(f, "- %s, first error: %s\n", errs[i].name,
                        errs[i].err);
    }
}

static void json_ops(FILE *f, const char *key, const lat_result *l, int last)
{
    fprintf(f, "    \"%s\": {\"warmup\": %ld, \"counts\": ", key, l->warmup);
    json_counts(f, &l->c);
    fprintf(f, ", \"latency\": ");
    json_lat(f, &l->lat);
    fprintf(f, ", \"budget_hit\": %s, \"mean_loop_ns\": %.1f, "
               "\"first_error\": ",
            l->budget_hit ? "true" : "false", l->mean_loop_ns);
    json_str(f, l->error);
    fprintf(f, "}%s\n", last ? "" : ",");
}

static void json_pass(FILE *f, const pass_result *p, int last)
{
    fprintf(f, "    {\"name\": ");
    json_str(f, p->name);
    fprintf(f, ", \"processors\": %d, \"counts\": ", p->nproc);
    json_counts(f, &p->c);
    fprintf(f, ", \"events_per_pass\": %llu, \"median_s\": %.6f, \"min_s\": "
               "%.6f, \"max_s\": %.6f, \"events_per_s\": %.1f, "
               "\"share_min\": %llu, \"share_max\": %llu, \"reads\": %llu, "
               "\"first_error\": ",
            (unsigned long long)p->events, p->median_s, p->min_s, p->max_s,
            p->events_per_s, (unsigned long long)p->share_min,
            (unsigned long long)p->share_max, (unsigned long long)p->reads);
    json_str(f, p->error);
    fprintf(f, "}%s\n", last ? "" : ",");
}

static void json_slat(FILE *f, const slat *s)
{
    fprintf(f, "{\"samples\": %zu, \"min_ms\": %.6f, \"p50_ms\": %.6f, "
               "\"p95_ms\": %.6f, \"p99_ms\": %.6f, \"max_ms\": %.6f}",
            s->n, s->min, s->p50, s->p95, s->p99, s->max);
}

static void write_json(FILE *f, const void *report_)
{
    const report *r = report_;
    const options *o = r->o;
    const load_result *ld = &r->load;
    json_head(f, "tracking_bench", &r->run, o->b.label);
    fprintf(f, "  \"config\": {\"quick\": %s, \"events\": %llu, \"seed\": "
               "%llu, \"batches\": %ld, \"loads\": %ld, \"token_ops\": %ld, "
               "\"passes\": %d, \"wakeups\": %ld, \"checkpoints\": %ld, "
               "\"budget_s\": %.3f},\n",
            o->b.quick ? "true" : "false", (unsigned long long)o->events,
            (unsigned long long)o->seed, o->batches, o->loads, o->token_ops,
            o->passes, o->wakeups, o->checkpoints, o->budget);
    fprintf(f, "  \"load\": {\"events\": %llu, \"default_tenant\": %llu, "
               "\"tenant_b\": %llu, \"appends\": ",
            (unsigned long long)ld->events, (unsigned long long)g_m.dflt,
            (unsigned long long)g_m.b_events);
    json_counts(f, &ld->c);
    fprintf(f, ", \"wall_s\": %.3f, \"cpu_s\": %.3f, \"syncs\": %llu, "
               "\"syncfs_s\": %.3f, \"latency\": ",
            ld->wall_s, ld->cpu_s, (unsigned long long)ld->syncs,
            ld->flush_s);
    json_lat(f, &ld->lat);
    fprintf(f, ", \"log_bytes\": %llu, \"index_bytes\": %llu},\n",
            (unsigned long long)ld->st.log_bytes,
            (unsigned long long)ld->st.index_bytes);
    fprintf(f, "  \"ops\": {\n");
    json_ops(f, "batch_all", &r->batch[B_ALL], 0);
    json_ops(f, "batch_category", &r->batch[B_CATEGORY], 0);
    json_ops(f, "aggregate_plain", &r->agg.load[AGG_PLAIN], 0);
    json_ops(f, "aggregate_snapshot_0", &r->agg.load[AGG_SNAP0], 0);
    json_ops(f, "aggregate_snapshot_99", &r->agg.load[AGG_SNAP99], 0);
    json_ops(f, "snapshot_save", &r->agg.save, 0);
    static const char *const tk[NTOKEN] = {
        "token_head_store", "token_head_tenant", "token_head_tenant_b",
        "token_tail_tenant", "token_tail_tenant_b", "token_at",
        "token_at_whole_ms"};
    for (int k = 0; k < NTOKEN; k++)
        json_ops(f, tk[k], &r->tok.op[k], 0);
    json_ops(f, "checkpoint_set", &r->cp.set, 0);
    json_ops(f, "checkpoint_get", &r->cp.get, 0);
    json_ops(f, "append_with_checkpoint", &r->cp.with_cp, 0);
    json_ops(f, "append_without_checkpoint", &r->cp.without, 1);
    fprintf(f, "  },\n  \"clock_read_ns\": %.1f,\n  \"wakeup\": [\n",
            r->tok.clock_ns);
    for (int k = 0; k < NWAKE; k++) {
        const wake_result *w = &r->wake[k];
        fprintf(f, "    {\"reader\": \"%s\", \"warmup\": %ld, \"counts\": ",
                k == W_READ ? "blocking_read" : "subscription", w->warmup);
        json_counts(f, &w->c);
        fprintf(f, ", \"since_return\": ");
        json_slat(f, &w->since_ret);
        fprintf(f, ", \"since_call\": ");
        json_slat(f, &w->since_call);
        fprintf(f, ", \"append\": ");
        json_lat(f, &w->append);
        fprintf(f, ", \"before_return\": %ld, \"first_error\": ", w->early);
        json_str(f, w->error);
        fprintf(f, "}%s\n", k + 1 < NWAKE ? "," : "");
    }
    fprintf(f, "  ],\n  \"catchup\": [\n");
    for (int k = 0; k < NCATCH; k++)
        json_pass(f, &r->catchup[k], k + 1 == NCATCH);
    fprintf(f, "  ],\n  \"processors\": [\n");
    for (int k = 0; k < NGROUP; k++)
        json_pass(f, &r->group[k], k + 1 == NGROUP);
    fprintf(f, "  ],\n  \"noise\": [");
    for (int i = 0, first = 1; i < NNOISE; i++) {
        const noise *n = &r->noise[i];
        if (!n->ran)
            continue;
        fprintf(f, "%s\n    {\"phase\": \"%s\", \"wall_s\": %.3f, "
                   "\"own_cpu_s\": %.3f, \"other_cpu_s\": %.3f}",
                first ? "" : ",", g_noise_names[i], n->wall_s, n->own_s,
                n->other_s);
        first = 0;
    }
    fprintf(f, "\n  ],\n  \"syncs\": %llu,\n", (unsigned long long)r->syncs);
    json_tail(f, &r->run, r->goals, r->ngoals, "seed_slas", r->seeds,
              r->nseeds, "operation", "seed");
}

/* ------------------------------------------------------------------ */
/* Main                                                                */
/* ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    static report r; /* large: keep it off the stack */
    options o;
    begin(&o, &r.run, argc, argv);
    r.o = &o;
    uint64_t sc0 = atomic_load(&g_sync_calls);
    evs_db *db = open_fresh("tracking");
    noise *nz = r.noise;
    noise_begin(&nz[N_LOAD]);
    bench_load(db, &o, &r.load);
    noise_end(&nz[N_LOAD]);
#define PHASE(bit, n, call)                                                  \
    do {                                                                     \
        if (o.b.phases & (bit)) {                                            \
            noise_begin(&nz[n]);                                             \
            call;                                                            \
            noise_end(&nz[n]);                                               \
        }                                                                    \
    } while (0)
    PHASE(P_STREAM, N_STREAM, bench_batches(db, &o, r.batch));
    PHASE(P_AGGREGATE, N_AGG, bench_aggregates(db, &o, &r.agg));
    PHASE(P_TOKENS, N_TOKENS, bench_tokens(db, &o, &r.tok));
    PHASE(P_CATCHUP, N_CATCHUP, bench_catchup(db, &o, r.catchup));
    PHASE(P_GROUP, N_GROUP, bench_group(db, &o, r.group));
    /* the phases that write (other tenants) come last, so that the
     * default tenant and the head stay as the model has them */
    if (o.b.phases & P_WAKEUP)
        flush_fs();
    PHASE(P_WAKEUP, N_WAKE,
          for (int k = 0; k < NWAKE; k++) bench_wake(db, &o, k, &r.wake[k]));
    PHASE(P_CHECKPOINT, N_CHECKPOINT, bench_checkpoints(db, &o, &r.cp));
#undef PHASE
    close_store(db, "tracking", &r.end);
    r.syncs = atomic_load(&g_sync_calls) - sc0;
    return bench_end(&r.run, &o.b, compute_goals, write_md, write_json, &r);
}
