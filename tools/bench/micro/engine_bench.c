/*
 * engine_bench.c -- micro-benchmark of the embedded engine, over the public
 * API only (include/evstore.h).
 *
 * What it measures, each on a fresh store in a temporary directory:
 *
 *   1. the fdatasync floor of the store's filesystem (300 B and 30 KB
 *      writes into a preallocated, zero-filled file);
 *   2. durable single-event appends from 1, 8, 64, 256 threads, each thread
 *      on its own streams with exact expected versions;
 *   3. 100-event appends (one evs_append of 100 events) from 1 and 2
 *      threads;
 *   4. reading a 1000-event stream (contiguous in the log, and interleaved
 *      with other streams), touching every byte of every event's data;
 *   5. reading $all, for every tenant and per tenant;
 *   6. the project's goals and the seeds' targets, with verdicts.
 *
 * Honest accounting (docs/PERFORMANCE.md, DESIGN.md section 4): every
 * operation ends in exactly one of committed / conflict / error, and the
 * four counts are printed beside every throughput. Latency percentiles are
 * nearest-rank percentiles of the sorted per-operation samples, never
 * averages. Operations that start during the warm-up are counted apart and
 * excluded from throughput and latency. Every append is durable when it
 * returns (the library fdatasyncs the log before acknowledging).
 *
 * Beside each append level it records where the time went, so that a goal
 * not met comes with a measured reason: the syncs the library issued (count,
 * duration percentiles, share of the window), the process's CPU time per
 * event, the device's bytes written and cache flushes (/proc/diskstats),
 * and the CPU other programs and kernel threads used meanwhile (/proc/stat),
 * which tells a level that shared the machine. The syncs are counted by
 * the sync probe (sync_probe.c: it defines fdatasync and fsync in the
 * executable); the options, the fdatasync floor's measurement
 * (fsync_probe), the levels, percentiles and report pieces are
 * bench_util.c's, shared with the other benchmarks.
 */
#include "bench_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROG "engine_bench"
#define PAYLOAD_LEN 300
#define BATCH_EVENTS 100
#define STREAMS_PER_THREAD 4
#define BATCH_STREAMS_PER_THREAD 16
#define READ_STREAM_EVENTS 1000
#define ALL_TENANTS 4
#define ALL_STREAMS_PER_TENANT 50
#define ALL_PASSES 3

/* Phases, for --only. */
#define P_FSYNC 0x1u
#define P_APPEND 0x2u
#define P_BATCH 0x4u
#define P_READ 0x8u
#define P_ALL 0x10u

/* ------------------------------------------------------------------ */
/* Options                                                             */
/* ------------------------------------------------------------------ */

typedef struct options {
    bench_opts b; /* --dir, --json, --md, --label, --quick, --keep, --only
                     (P_*) */
    double seconds, warmup;
    int threads[MAX_LEVELS];
    int nthreads;
    int batch_threads[MAX_LEVELS];
    int nbatch_threads;
    long reads;
    long all_events;
    long fsync_samples;
} options;

static void usage(FILE *f)
{
    fprintf(f,
"usage: " PROG " [options]\n"
"\n"
"Micro-benchmark of the embedded evstore engine: fdatasync floor, durable\n"
"appends (1/8/64/256 threads), 100-event batches, 1000-event stream reads,\n"
"$all reads, and the project's goals with verdicts. Markdown to stdout.\n"
"\n"
"  --dir DIR           where the temporary stores go (default: the current\n"
"                      directory); a fresh evs-bench-XXXXXX dir is made in it\n"
"  --quick             short run (~15 s): 1.5 s per level, fewer reads and\n"
"                      events\n"
"  --json FILE         write every figure as JSON to FILE\n"
"  --md FILE           write the Markdown report to FILE as well\n"
"  --seconds S         measured seconds per append level (default 5,\n"
"                      quick 1.5)\n"
"  --warmup S          warm-up seconds per level, not counted (default 0.5,\n"
"                      quick 0.3)\n"
"  --threads LIST      append concurrency levels (default 1,8,64,256)\n"
"  --batch-threads L   100-event batch concurrency levels (default 1,2)\n"
"  --reads N           measured 1000-event stream reads (default 1000,\n"
"                      quick 200)\n"
"  --all-events N      events in the $all store (default 200000, quick 20000)\n"
"  --fsync-samples N   fdatasync samples (default 2000)\n"
"  --only LIST         run only these phases: fsync,append,batch,read,all\n"
"                      (goals of the others show \"not run\")\n"
"  --label TEXT        free text recorded in the report (e.g. the commit)\n"
"  --keep              keep the stores instead of deleting them\n"
"  --help              this text\n");
}

/* Names the program, parses argv into o, starts the run. */
static void begin(options *o, bench_run *run, int argc, char **argv)
{
    static const char *const phases[] = {"fsync", "append", "batch", "read",
                                         "all"};
    const bench_opt own[] = {
        BENCH_OPT_SECONDS("--seconds", &o->seconds, 3600, 5.0, 1.5),
        BENCH_OPT_SECONDS0("--warmup", &o->warmup, 600, 0.5, 0.3),
        BENCH_OPT_LEVELS("--threads", o->threads, &o->nthreads, "1,8,64,256"),
        BENCH_OPT_LEVELS("--batch-threads", o->batch_threads,
                         &o->nbatch_threads, "1,2"),
        BENCH_OPT_LONG("--reads", &o->reads, 1, 10000000, 1000, 200),
        BENCH_OPT_LONG("--all-events", &o->all_events, 1, 100000000, 200000,
                       20000),
        BENCH_OPT_LONG("--fsync-samples", &o->fsync_samples, 1, 10000000, 2000,
                       2000),
    };
    memset(o, 0, sizeof *o);
    bench_begin(run, &o->b, PROG, argc, argv, phases, BENCH_COUNT(phases), usage,
                own, BENCH_COUNT(own));
}

/* ------------------------------------------------------------------ */
/* Payloads                                                            */
/* ------------------------------------------------------------------ */

/* Exactly len bytes of valid JSON (len >= 128): an account-like event
 * padded with a note field. */
static void make_payload(char *buf, size_t len, const char *stream,
                         uint64_t seq)
{
    int n = snprintf(buf, len,
                     "{\"account\":\"%.60s\",\"amount\":%llu,"
                     "\"currency\":\"EUR\",\"seq\":%llu,\"note\":\"",
                     stream, (unsigned long long)(seq * 7919 % 100000),
                     (unsigned long long)seq);
    size_t i = (size_t)n;
    while (i < len - 2)
        buf[i++] = 'x';
    buf[len - 2] = '"';
    buf[len - 1] = '}';
}

/* ------------------------------------------------------------------ */
/* 1. fdatasync floor                                                  */
/* ------------------------------------------------------------------ */

typedef struct fsync_result {
    size_t write_size;
    long samples, warmup;
    lat_summary lat;
    double cpu_us; /* process CPU (user+sys) per measured sample */
} fsync_result;

static fsync_result bench_fsync(size_t wsize, long nsamples)
{
    fsync_result r = {0};
    char err[PATH_MAX + 64];
    r.write_size = wsize;
    r.samples = nsamples;
    r.warmup = nsamples / 20 > 10 ? nsamples / 20 : 10; /* as fsync_probe */
    if (fsync_probe(g_root, nsamples, wsize, &r.lat, &r.cpu_us, err,
                    sizeof err) != 0)
        die("%s", err);
    return r;
}

/* ------------------------------------------------------------------ */
/* 2 and 3. Concurrent appends                                         */
/* ------------------------------------------------------------------ */

typedef struct append_ctx {
    evs_db *db;
    int events_per_append;
    int nstreams;
} append_ctx;

/* One thread's streams, their versions and its events. */
typedef struct append_state {
    append_ctx *ctx;
    char (*names)[48];
    int64_t *versions;
    char *payloads;
    evs_event_data *events;
    uint64_t seq;
} append_state;

static void *append_init(void *arg, int id)
{
    append_ctx *ctx = arg;
    int nev = ctx->events_per_append;
    int nstreams = ctx->nstreams;
    append_state *w = xcalloc(1, sizeof *w);
    w->ctx = ctx;
    w->names = xcalloc((size_t)nstreams, sizeof *w->names);
    w->versions = xcalloc((size_t)nstreams, sizeof *w->versions);
    w->payloads = xcalloc((size_t)nev, PAYLOAD_LEN);
    w->events = xcalloc((size_t)nev, sizeof *w->events);

    for (int k = 0; k < nstreams; k++) {
        snprintf(w->names[k], sizeof w->names[k], "bench-t%d-%d", id, k);
        w->versions[k] = EVS_NO_STREAM;
    }
    for (int e = 0; e < nev; e++) {
        make_payload(w->payloads + (size_t)e * PAYLOAD_LEN, PAYLOAD_LEN,
                     w->names[0], (uint64_t)e);
        event_init(&w->events[e], nev == 1 ? "Deposited" : "LineAdded",
                   w->payloads + (size_t)e * PAYLOAD_LEN, PAYLOAD_LEN);
    }
    return w;
}

static int append_op(void *state, uint64_t *t0, uint64_t *t1, char *err,
                     size_t errsize)
{
    append_state *w = state;
    append_ctx *ctx = w->ctx;
    int nev = ctx->events_per_append;
    int k = (int)(w->seq % (uint64_t)ctx->nstreams);
    if (nev == 1)
        make_payload(w->payloads, PAYLOAD_LEN, w->names[k], w->seq);
    w->seq++;
    evs_append_result res;
    memset(&res, 0, sizeof res);
    *t0 = now_ns();
    int rc = evs_append(&res, ctx->db, NULL, w->names[k], w->versions[k],
                        w->events, (size_t)nev);
    *t1 = now_ns();

    if (rc == 0) {
        w->versions[k] = res.stream_version;
    } else if (rc == EVS_ECONFLICT) {
        /* Cannot happen with one writer per stream: counted, and the
         * report flags it. */
        w->versions[k] = res.stream_version;
    } else {
        snprintf(err, errsize, "%s: %s", evs_strerror(rc), evs_last_error());
        int64_t v;
        if (evs_stream_version(&v, ctx->db, NULL, w->names[k]) == 0)
            w->versions[k] = v;
    }
    return rc;
}

static void append_fini(void *state)
{
    append_state *w = state;
    free(w->events);
    free(w->payloads);
    free(w->versions);
    free(w->names);
    free(w);
}

static level_result bench_appends(const options *o, int nthreads, int nev)
{
    static const level_ops ops = {append_init, append_op, append_fini, NULL};
    level_result r;
    char name[64];
    snprintf(name, sizeof name, "%s-%dt", nev == 1 ? "append" : "batch",
             nthreads);
    fprintf(stderr, PROG ": %s: %d thread(s), %d event(s) per append, "
                    "%.1f s warm-up + %.1f s\n",
            name, nthreads, nev, o->warmup, o->seconds);

    append_ctx ctx;
    ctx.db = open_fresh(name);
    ctx.events_per_append = nev;
    ctx.nstreams = nev == 1 ? STREAMS_PER_THREAD : BATCH_STREAMS_PER_THREAD;
    level_run(&r, &ops, &ctx, nthreads, nev, o->warmup, o->seconds);

    evs_stats st;
    int rc = evs_stats_get(&st, ctx.db);
    uint64_t expect = (r.c.committed + r.warm.committed) * (uint64_t)nev;
    if (rc == 0) {
        r.store_events = st.events;
        r.segments = st.segments;
        r.store_check = st.events == expect;
    } else {
        fprintf(stderr, PROG ": evs_stats_get: %s: %s\n", evs_strerror(rc),
                evs_last_error());
    }
    if (!r.store_check) {
        fprintf(stderr,
                PROG ": %s: the store holds %llu events but %llu were "
                     "acknowledged\n",
                name, (unsigned long long)r.store_events,
                (unsigned long long)expect);
        g_failures++;
    }
    if (r.c.errors || r.c.conflicts || r.warm.errors || r.warm.conflicts ||
        !counts_ok(&r.c) || !counts_ok(&r.warm))
        g_failures++;
    close_store(ctx.db, name, NULL);
    fprintf(stderr,
            PROG ": %s: %.0f appends/s (%.0f events/s), p50 %.3f ms, "
                 "p99 %.3f ms; attempted %llu committed %llu conflicts %llu "
                 "errors %llu\n",
            name, r.ops_per_s, r.events_per_s, r.lat.p50, r.lat.p99,
            (unsigned long long)r.c.attempted,
            (unsigned long long)r.c.committed,
            (unsigned long long)r.c.conflicts, (unsigned long long)r.c.errors);
    return r;
}

/* ------------------------------------------------------------------ */
/* 4. Reading a 1000-event stream                                      */
/* ------------------------------------------------------------------ */

typedef struct read_result {
    const char *layout; /* "contiguous" / "interleaved" */
    const char *what;
    long warmup;
    op_counts c; /* committed = read complete and correct */
    lat_summary lat;
    char error[256];
} read_result;

static void append_or_die(evs_db *db, const char *tenant, const char *stream,
                          const evs_event_data *ev, size_t n)
{
    int rc = evs_append(NULL, db, tenant, stream, EVS_ANY, ev, n);
    if (rc < 0)
        die("prefill append to %s: %s: %s", stream, evs_strerror(rc),
            evs_last_error());
}

static volatile uint64_t g_sink; /* keeps the data-touching loop alive */

/* One full read of a 1000-event stream; 0 or a message in err. */
static int read_stream_once(evs_db *db, const char *stream, char *err,
                            size_t errsize)
{
    evs_iter *it = NULL;
    int rc = evs_read_stream(&it, db, NULL, stream, 0, EVS_FORWARD, 0);
    if (rc < 0) {
        snprintf(err, errsize, "evs_read_stream: %s: %s", evs_strerror(rc),
                 evs_last_error());
        return rc;
    }
    const evs_event *ev;
    int64_t n = 0;
    uint64_t sum = 0;
    while ((rc = evs_iter_next(&ev, it)) == 0) {
        if (ev->stream_version != n) {
            snprintf(err, errsize, "event %lld has version %lld",
                     (long long)n, (long long)ev->stream_version);
            evs_iter_free(it);
            return -1;
        }
        const unsigned char *d = ev->data;
        for (size_t i = 0; i < ev->data_len; i++)
            sum += d[i];
        n++;
    }
    evs_iter_free(it);
    g_sink += sum;
    if (rc != EVS_ITEROVER) {
        snprintf(err, errsize, "evs_iter_next: %s: %s", evs_strerror(rc),
                 evs_last_error());
        return rc;
    }
    if (n != READ_STREAM_EVENTS) {
        snprintf(err, errsize, "read %lld events, expected %d", (long long)n,
                 READ_STREAM_EVENTS);
        return -1;
    }
    return 0;
}

static read_result bench_read_one(evs_db *db, const char *stream,
                                  const char *layout, long nreads)
{
    read_result r;
    memset(&r, 0, sizeof r);
    r.layout = layout;
    r.what = stream;
    r.warmup = nreads / 20 > 10 ? nreads / 20 : 10;
    samples s = {0};
    char err[256];
    for (long i = 0; i < r.warmup + nreads; i++) {
        err[0] = 0;
        uint64_t t0 = now_ns();
        int rc = read_stream_once(db, stream, err, sizeof err);
        uint64_t t1 = now_ns();
        if (i < r.warmup)
            continue;
        r.c.attempted++;
        if (rc == 0) {
            r.c.committed++;
            samples_push(&s, t1 - t0);
        } else {
            r.c.errors++;
            if (!r.error[0])
                snprintf(r.error, sizeof r.error, "%s", err);
        }
    }
    r.lat = summarize(&s);
    free(s.v);
    if (r.c.errors)
        g_failures++;
    fprintf(stderr, PROG ": read %s stream: p50 %.3f ms p95 %.3f ms; "
                    "%llu ok, %llu errors\n",
            layout, r.lat.p50, r.lat.p95, (unsigned long long)r.c.committed,
            (unsigned long long)r.c.errors);
    return r;
}

static void bench_reads(const options *o, read_result out[2])
{
    fprintf(stderr, PROG ": stream reads: prefilling\n");
    evs_db *db = open_fresh("read");
    char *payloads = xcalloc(BATCH_EVENTS, PAYLOAD_LEN);
    evs_event_data ev[BATCH_EVENTS];
    for (int e = 0; e < BATCH_EVENTS; e++) {
        make_payload(payloads + (size_t)e * PAYLOAD_LEN, PAYLOAD_LEN,
                     "order-1", (uint64_t)e);
        event_init(&ev[e], "ItemAdded", payloads + (size_t)e * PAYLOAD_LEN,
                   PAYLOAD_LEN);
    }
    /* contiguous: ten appends of 100 events, back to back. */
    for (int b = 0; b < READ_STREAM_EVENTS / BATCH_EVENTS; b++)
        append_or_die(db, NULL, "order-contiguous", ev, BATCH_EVENTS);
    /* interleaved: 10 events of the stream, then 10 events to each of 9
     * other streams, so the stream spans ten times its size in the log. */
    char other[48];
    for (int round = 0; round < READ_STREAM_EVENTS / 10; round++) {
        append_or_die(db, NULL, "order-interleaved", ev, 10);
        for (int k = 0; k < 9; k++) {
            snprintf(other, sizeof other, "order-other%d", k);
            append_or_die(db, NULL, other, ev + 10, 10);
        }
    }
    free(payloads);
    out[0] = bench_read_one(db, "order-contiguous", "contiguous", o->reads);
    out[1] = bench_read_one(db, "order-interleaved", "interleaved", o->reads);
    close_store(db, "read", NULL);
}

/* ------------------------------------------------------------------ */
/* 5. Reading $all                                                     */
/* ------------------------------------------------------------------ */

static const char *const g_tenants[ALL_TENANTS] = {"", "tenant-a",
                                                   "tenant-b", "tenant-c"};

typedef struct all_result {
    const char *scope; /* "all tenants" or a tenant name */
    uint64_t expected; /* events the scope holds */
    op_counts c;       /* per pass: committed = correct full pass */
    double seconds[ALL_PASSES];
    double median_s;
    double events_per_s; /* at the median pass */
    char error[256];
} all_result;

typedef struct all_bench {
    uint64_t events;
    double prefill_s;
    all_result every;               /* tenant NULL */
    all_result tenant[ALL_TENANTS]; /* one per tenant */
    all_result tenants_total;       /* the per-tenant reads added up */
} all_bench;

/* One pass; returns events read or -1 with err set. */
static int64_t read_all_once(evs_db *db, const char *tenant, char *err,
                             size_t errsize)
{
    evs_iter *it = NULL;
    int rc = evs_read_all(&it, db, tenant, 0, 0);
    if (rc < 0) {
        snprintf(err, errsize, "evs_read_all: %s: %s", evs_strerror(rc),
                 evs_last_error());
        return -1;
    }
    const evs_event *ev;
    int64_t n = 0;
    uint64_t last = 0, sum = 0;
    while ((rc = evs_iter_next(&ev, it)) == 0) {
        if (ev->position <= last) {
            snprintf(err, errsize, "position %llu after %llu",
                     (unsigned long long)ev->position,
                     (unsigned long long)last);
            evs_iter_free(it);
            return -1;
        }
        if (tenant && strcmp(ev->tenant, tenant) != 0) {
            snprintf(err, errsize, "tenant '%s' read event of tenant '%s'",
                     tenant, ev->tenant);
            evs_iter_free(it);
            return -1;
        }
        last = ev->position;
        if (ev->data_len)
            sum += ((const unsigned char *)ev->data)[ev->data_len - 1];
        n++;
    }
    evs_iter_free(it);
    g_sink += sum;
    if (rc != EVS_ITEROVER) {
        snprintf(err, errsize, "evs_iter_next: %s: %s", evs_strerror(rc),
                 evs_last_error());
        return -1;
    }
    return n;
}

static void all_finish(all_result *r)
{
    double sorted[ALL_PASSES];
    memcpy(sorted, r->seconds, sizeof sorted);
    qsort(sorted, ALL_PASSES, sizeof sorted[0], cmp_double);
    r->median_s = sorted[ALL_PASSES / 2];
    r->events_per_s =
        r->median_s > 0 ? (double)r->expected / r->median_s : 0;
    if (r->c.errors)
        g_failures++;
}

static void all_pass(evs_db *db, all_result *r, const char *tenant,
                     int measured, int pass)
{
    char err[256] = "";
    uint64_t t0 = now_ns();
    int64_t n = read_all_once(db, tenant, err, sizeof err);
    double s = (double)(now_ns() - t0) / 1e9;
    if (!measured)
        return;
    r->c.attempted++;
    r->seconds[pass] = s;
    if (n >= 0 && (uint64_t)n == r->expected) {
        r->c.committed++;
    } else {
        r->c.errors++;
        if (!r->error[0]) {
            if (n >= 0)
                snprintf(err, sizeof err, "read %lld events, expected %llu",
                         (long long)n, (unsigned long long)r->expected);
            snprintf(r->error, sizeof r->error, "%s", err);
        }
    }
}

static void bench_all(const options *o, all_bench *b)
{
    memset(b, 0, sizeof *b);
    b->events = (uint64_t)o->all_events;
    fprintf(stderr, PROG ": $all: prefilling %llu events\n",
            (unsigned long long)b->events);
    evs_db *db = open_fresh("all");
    char *payloads = xcalloc(BATCH_EVENTS, PAYLOAD_LEN);
    evs_event_data ev[BATCH_EVENTS];
    for (int e = 0; e < BATCH_EVENTS; e++) {
        make_payload(payloads + (size_t)e * PAYLOAD_LEN, PAYLOAD_LEN,
                     "acct-1", (uint64_t)e);
        event_init(&ev[e], "Deposited", payloads + (size_t)e * PAYLOAD_LEN,
                   PAYLOAD_LEN);
    }
    /* Batches of up to 100 events, tenants in turn, 50 streams each. */
    uint64_t per_tenant[ALL_TENANTS] = {0};
    uint64_t done = 0, batch = 0;
    uint64_t t0 = now_ns();
    char stream[48];
    while (done < b->events) {
        size_t n = b->events - done < BATCH_EVENTS ? b->events - done
                                                   : BATCH_EVENTS;
        int t = (int)(batch % ALL_TENANTS);
        snprintf(stream, sizeof stream, "acct-%llu",
                 (unsigned long long)(batch / ALL_TENANTS %
                                      ALL_STREAMS_PER_TENANT));
        append_or_die(db, g_tenants[t], stream, ev, n);
        per_tenant[t] += n;
        done += n;
        batch++;
    }
    b->prefill_s = (double)(now_ns() - t0) / 1e9;
    free(payloads);

    b->every.scope = "all tenants (tenant NULL)";
    b->every.expected = b->events;
    for (int t = 0; t < ALL_TENANTS; t++) {
        b->tenant[t].scope = g_tenants[t][0] ? g_tenants[t] : "default (\"\")";
        b->tenant[t].expected = per_tenant[t];
    }
    b->tenants_total.scope = "each tenant in turn (4 reads)";
    b->tenants_total.expected = b->events;

    fprintf(stderr, PROG ": $all: reading (1 warm-up pass + %d)\n",
            ALL_PASSES);
    for (int pass = -1; pass < ALL_PASSES; pass++) {
        int measured = pass >= 0;
        all_pass(db, &b->every, NULL, measured, measured ? pass : 0);
        double sum = 0;
        int ok = 1;
        for (int t = 0; t < ALL_TENANTS; t++) {
            all_pass(db, &b->tenant[t], g_tenants[t], measured,
                     measured ? pass : 0);
            if (measured) {
                sum += b->tenant[t].seconds[pass];
                ok &= b->tenant[t].c.errors == 0;
            }
        }
        if (measured) {
            b->tenants_total.c.attempted++;
            b->tenants_total.seconds[pass] = sum;
            if (ok)
                b->tenants_total.c.committed++;
            else
                b->tenants_total.c.errors++;
        }
    }
    all_finish(&b->every);
    for (int t = 0; t < ALL_TENANTS; t++)
        all_finish(&b->tenant[t]);
    all_finish(&b->tenants_total);
    fprintf(stderr, PROG ": $all: %.0f events/s (every tenant), %.0f "
                    "events/s (per tenant)\n",
            b->every.events_per_s, b->tenants_total.events_per_s);
    close_store(db, "all", NULL);
}

/* ------------------------------------------------------------------ */
/* 6. Goals                                                            */
/* ------------------------------------------------------------------ */

typedef struct report {
    const options *o;
    bench_run run;
    fsync_result fs[2];
    level_result app[MAX_LEVELS];
    int napp;
    level_result batch[MAX_LEVELS];
    int nbatch;
    read_result rd[2];
    all_bench all;
    goal goals[8], seeds[4];
    int ngoals, nseeds;
} report;

static void compute_goals(void *report_)
{
    report *r = report_;
    goal *g;
    const level_result *a;
    char name[96];

    g = goal_add(r->goals, &r->ngoals, "durable appends, 1 thread", ">= 8,000 appends/s");
    if ((a = level_find(r->app, r->napp, 1)))
        goal_set(g, clean(&a->c) && a->ops_per_s >= 8000, "%.0f appends/s", a->ops_per_s);
    else
        goal_not_run(g);

    g = goal_add(r->goals, &r->ngoals, "durable appends, 64 threads",
                 ">= 200,000 appends/s and p95 <= 1 ms");
    if ((a = level_find(r->app, r->napp, 64)))
        goal_set(g, clean(&a->c) && a->ops_per_s >= 200000 && a->lat.p95 <= 1.0,
                 "%.0f appends/s, p95 %.3f ms", a->ops_per_s, a->lat.p95);
    else
        goal_not_run(g);

    /* At most 4 batch rows fit beside the 4 other goals. */
    for (int i = 0; i < r->nbatch && i < 4; i++) {
        a = &r->batch[i];
        snprintf(name, sizeof name, "100-event batches, %d thread%s", a->threads,
                 a->threads == 1 ? "" : "s");
        g = goal_add(r->goals, &r->ngoals, name, ">= 1,000,000 events/s");
        goal_set(g, clean(&a->c) && a->events_per_s >= 1e6, "%.0f events/s",
                 a->events_per_s);
    }
    if (r->nbatch == 0)
        goal_not_run(goal_add(r->goals, &r->ngoals, "100-event batches",
                              ">= 1,000,000 events/s"));

    /* Interleaved first: it is the layout a real aggregate has. */
    int ran_reads = (r->o->b.phases & P_READ) != 0;
    for (int i = 1; i >= 0; i--) {
        const read_result *rd = &r->rd[i];
        snprintf(name, sizeof name, "read a 1000-event stream (%s)",
                 i ? "interleaved" : "contiguous");
        g = goal_add(r->goals, &r->ngoals, name, "p50 <= 0.5 ms (p95 shown)");
        if (ran_reads)
            goal_set(g, clean(&rd->c) && rd->lat.p50 <= 0.5, "p50 %.3f ms, p95 %.3f ms",
                     rd->lat.p50, rd->lat.p95);
        else
            goal_not_run(g);
    }

    /* The seeds' targets, for context. */
    g = goal_add(r->seeds, &r->nseeds, "single append", "< 10 ms (judged on p99, 1 thread)");
    if ((a = level_find(r->app, r->napp, 1)))
        goal_set(g, clean(&a->c) && a->lat.p99 < 10, "p99 %.3f ms", a->lat.p99);
    else
        goal_not_run(g);

    g = goal_add(r->seeds, &r->nseeds, "100-event batch", "< 50 ms (judged on p99, 1 thread)");
    if ((a = level_find(r->batch, r->nbatch, 1)))
        goal_set(g, clean(&a->c) && a->lat.p99 < 50, "p99 %.3f ms", a->lat.p99);
    else
        goal_not_run(g);

    g = goal_add(r->seeds, &r->nseeds, "1000-event aggregate load",
                 "< 20 ms (judged on p99, interleaved stream)");
    if (ran_reads)
        goal_set(g, clean(&r->rd[1].c) && r->rd[1].lat.p99 < 20, "p99 %.3f ms",
                 r->rd[1].lat.p99);
    else
        goal_not_run(g);

    g = goal_add(r->seeds, &r->nseeds, "P95 latency",
                 "< 10 ms (worst append p95 over all levels)");
    double worst = 0;
    int worst_t = 0, ok = r->napp > 0;
    for (int i = 0; i < r->napp; i++) {
        ok &= clean(&r->app[i].c);
        if (r->app[i].lat.p95 >= worst) {
            worst = r->app[i].lat.p95;
            worst_t = r->app[i].threads;
        }
    }
    if (r->napp)
        goal_set(g, ok && worst < 10, "p95 %.3f ms (%d thread%s)", worst, worst_t,
                 worst_t == 1 ? "" : "s");
    else
        goal_not_run(g);
}

/* ------------------------------------------------------------------ */
/* Markdown                                                            */
/* ------------------------------------------------------------------ */

/* The results table and the where-the-time-goes table of appends. */
static void md_append_tables(FILE *f, const level_result *a, int n,
                             const machine *m, const char *not_run,
                             int explain)
{
    if (n == 0) {
        fprintf(f, "%s", not_run);
        return;
    }
    md_level_results(f, a, n);
    md_level_costs(f, a, n, m,
                   explain ? NULL
                           : "\nWhere the time goes (columns as in section "
                             "2):\n\n",
                   " (compare section 1)");
}

static void write_md(FILE *f, const void *report_)
{
    const report *r = report_;
    const options *o = r->o;
    const machine *m = &r->run.m;
    const char *not_run = "_Not run (--only)._\n";
    char cs[96];

    fprintf(f, "# evstore engine benchmark\n\n");
    md_machine_rows(f, m, o->b.label, r->run.version, r->run.root);
    fprintf(f, "| mode | %s: %.1f s measured per level after %.1f s warm-up "
               "(not counted) |\n",
            o->b.quick ? "quick" : "full", o->seconds, o->warmup);
    md_run_rows(f, &r->run, -1);

    fprintf(f,
            "Durability: every append returns only after the library has "
            "fdatasync'ed the log; nothing below is measured with syncing "
            "off. Payloads are %d B JSON objects (validated by the store), "
            "no metadata, no tags, ids generated by the store. Latency "
            "percentiles are nearest-rank percentiles of every measured "
            "operation's own wall time (sorted samples, no averaging), in "
            "milliseconds. Counts are attempted/committed/conflicts/errors "
            "and add up; operations that started during the warm-up are "
            "excluded and listed apart.\n\n",
            PAYLOAD_LEN);

    fprintf(f, "## 1. fdatasync floor of the store's filesystem\n\n");
    fprintf(f, "pwrite of N bytes at the end of the data in a "
               "preallocated, zero-filled file, then fdatasync; warm-up "
               "samples excluded.\n\n");
    if (!(o->b.phases & P_FSYNC))
        fprintf(f, "%s", not_run);
    else
        fprintf(f, "| write | samples | p50 | p90 | p95 | p99 | max | "
                   "1/p50 | CPU/sample |\n"
                   "|---|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; (o->b.phases & P_FSYNC) && i < 2; i++) {
        const fsync_result *s = &r->fs[i];
        fprintf(f, "| %zu B | %zu (+%ld warm-up) |", s->write_size, s->lat.n,
                s->warmup);
        md_lat_cells(f, &s->lat);
        fprintf(f, " %.0f /s | %.1f µs |\n",
                s->lat.p50 > 0 ? 1000.0 / s->lat.p50 : 0, s->cpu_us);
    }

    fprintf(f, "\n## 2. Durable single-event appends\n\n");
    fprintf(f, "Thread t appends one event per call to its own streams "
               "bench-t<t>-0..%d in turn, with the exact expected version, "
               "on a fresh store per level.\n\n",
            STREAMS_PER_THREAD - 1);
    md_append_tables(f, r->app, r->napp, m, not_run, 1);

    fprintf(f, "\n## 3. 100-event batches\n\n");
    fprintf(f, "One evs_append of 100 events to one stream per call, each "
               "thread cycling over %d streams of its own, exact expected "
               "version. Counts and latency are per batch.\n\n",
            BATCH_STREAMS_PER_THREAD);
    md_append_tables(f, r->batch, r->nbatch, m, not_run, r->napp == 0);

    fprintf(f, "\n## 4. Reading a 1000-event stream\n\n");
    fprintf(f, "evs_read_stream (forward, from version 0) + evs_iter_next "
               "to the end + evs_iter_free, summing every byte of every "
               "event's data and checking versions 0..999 in order; one "
               "thread, warm page cache. contiguous: the stream was "
               "written as 10 appends of 100 events; interleaved: 10 "
               "events at a time between 90 events of 9 other streams.\n\n");
    if (!(o->b.phases & P_READ))
        fprintf(f, "%s", not_run);
    else
        fprintf(f, "| layout | reads attempted/ok/conflicts/errors | p50 | "
                   "p90 | p95 | p99 | max | events/s at p50 | warm-up "
                   "excluded |\n|---|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; (o->b.phases & P_READ) && i < 2; i++) {
        const read_result *rd = &r->rd[i];
        counts_str(cs, sizeof cs, &rd->c);
        fprintf(f, "| %s | %s |", rd->layout, cs);
        md_lat_cells(f, &rd->lat);
        fprintf(f, " %.0f | %ld reads |\n",
                rd->lat.p50 > 0 ? READ_STREAM_EVENTS / (rd->lat.p50 / 1e3)
                                : 0,
                rd->warmup);
    }

    fprintf(f, "\n## 5. Reading $all\n\n");
    fprintf(f, "%llu events (300 B) in %d tenants x %d streams, written as "
               "100-event appends in %.2f s. Each pass iterates to the end "
               "checking that positions increase (and the tenant); one "
               "warm-up pass, then %d passes; events/s at the median "
               "pass.\n\n",
            (unsigned long long)r->all.events, ALL_TENANTS,
            ALL_STREAMS_PER_TENANT, r->all.prefill_s, ALL_PASSES);
    const all_result *rows[2 + ALL_TENANTS];
    int nrows = 0;
    if (!(o->b.phases & P_ALL))
        fprintf(f, "%s", not_run);
    else
        fprintf(f, "| scope | events | passes attempted/ok/conflicts/errors "
                   "| median pass | min | max | events/s |\n"
                   "|---|---|---|---|---|---|---|\n");
    if (o->b.phases & P_ALL) {
        rows[nrows++] = &r->all.every;
        rows[nrows++] = &r->all.tenants_total;
        for (int t = 0; t < ALL_TENANTS; t++)
            rows[nrows++] = &r->all.tenant[t];
    }
    for (int i = 0; i < nrows; i++) {
        const all_result *a = rows[i];
        double mn = a->seconds[0], mx = a->seconds[0];
        for (int p = 1; p < ALL_PASSES; p++) {
            mn = a->seconds[p] < mn ? a->seconds[p] : mn;
            mx = a->seconds[p] > mx ? a->seconds[p] : mx;
        }
        counts_str(cs, sizeof cs, &a->c);
        fprintf(f, "| %s | %llu | %s | %.2f ms | %.2f ms | %.2f ms | %.0f |\n",
                a->scope, (unsigned long long)a->expected, cs,
                a->median_s * 1e3, mn * 1e3, mx * 1e3, a->events_per_s);
    }

    fprintf(f, "\n## 6. Goals\n\n");
    md_goals(f, r->goals, r->ngoals);
    fprintf(f, "\nThe seeds' targets, for context:\n\n");
    fprintf(f, "| target | threshold | measured | verdict |\n"
               "|---|---|---|---|\n");
    for (int i = 0; i < r->nseeds; i++)
        fprintf(f, "| %s | %s | %s | %s |\n", r->seeds[i].name,
                r->seeds[i].target, r->seeds[i].measured,
                r->seeds[i].verdict);

    int nerr = 0;
    for (int i = 0; i < r->napp; i++)
        nerr += r->app[i].error[0] != 0 || !r->app[i].store_check;
    for (int i = 0; i < r->nbatch; i++)
        nerr += r->batch[i].error[0] != 0 || !r->batch[i].store_check;
    nerr += r->rd[0].error[0] != 0 || r->rd[1].error[0] != 0;
    nerr += r->all.every.error[0] != 0;
    for (int t = 0; t < ALL_TENANTS; t++)
        nerr += r->all.tenant[t].error[0] != 0;
    if (nerr) {
        fprintf(f, "\n## Errors and failed checks\n\n");
        for (int i = 0; i < r->napp; i++) {
            if (r->app[i].error[0])
                fprintf(f, "- appends, %d threads, first error: %s\n",
                        r->app[i].threads, r->app[i].error);
            if (!r->app[i].store_check)
                fprintf(f, "- appends, %d threads: store holds %llu events, "
                           "%llu acknowledged\n",
                        r->app[i].threads,
                        (unsigned long long)r->app[i].store_events,
                        (unsigned long long)(r->app[i].c.committed +
                                             r->app[i].warm.committed));
        }
        for (int i = 0; i < r->nbatch; i++) {
            if (r->batch[i].error[0])
                fprintf(f, "- batches, %d threads, first error: %s\n",
                        r->batch[i].threads, r->batch[i].error);
            if (!r->batch[i].store_check)
                fprintf(f, "- batches, %d threads: store holds %llu events, "
                           "%llu acknowledged\n",
                        r->batch[i].threads,
                        (unsigned long long)r->batch[i].store_events,
                        (unsigned long long)((r->batch[i].c.committed +
                                              r->batch[i].warm.committed) *
                                             BATCH_EVENTS));
        }
        for (int i = 0; i < 2; i++)
            if (r->rd[i].error[0])
                fprintf(f, "- stream read (%s), first error: %s\n",
                        r->rd[i].layout, r->rd[i].error);
        if (r->all.every.error[0])
            fprintf(f, "- $all read, first error: %s\n", r->all.every.error);
        for (int t = 0; t < ALL_TENANTS; t++)
            if (r->all.tenant[t].error[0])
                fprintf(f, "- $all read of tenant %s, first error: %s\n",
                        r->all.tenant[t].scope, r->all.tenant[t].error);
    }
}

/* ------------------------------------------------------------------ */
/* JSON                                                                */
/* ------------------------------------------------------------------ */

static void json_all(FILE *f, const all_result *a)
{
    fprintf(f, "{\"scope\": ");
    json_str(f, a->scope);
    fprintf(f, ", \"events\": %llu, \"passes\": ",
            (unsigned long long)a->expected);
    json_counts(f, &a->c);
    fprintf(f, ", \"pass_s\": [");
    for (int p = 0; p < ALL_PASSES; p++)
        fprintf(f, "%s%.6f", p ? ", " : "", a->seconds[p]);
    fprintf(f, "], \"median_s\": %.6f, \"events_per_s\": %.1f, "
               "\"first_error\": ",
            a->median_s, a->events_per_s);
    json_str(f, a->error);
    fprintf(f, "}");
}

static void write_json_all(FILE *f, const report *r)
{
    fprintf(f, "{\"events\": %llu, \"tenants\": %d, \"prefill_s\": %.3f,\n"
               "    \"every_tenant\": ",
            (unsigned long long)r->all.events, ALL_TENANTS,
            r->all.prefill_s);
    json_all(f, &r->all.every);
    fprintf(f, ",\n    \"per_tenant_total\": ");
    json_all(f, &r->all.tenants_total);
    fprintf(f, ",\n    \"per_tenant\": [\n");
    for (int t = 0; t < ALL_TENANTS; t++) {
        fprintf(f, "      ");
        json_all(f, &r->all.tenant[t]);
        fprintf(f, "%s\n", t + 1 < ALL_TENANTS ? "," : "");
    }
    fprintf(f, "    ]}");
}

static void write_json(FILE *f, const void *report_)
{
    const report *r = report_;
    const options *o = r->o;
    json_head(f, "engine_bench", &r->run, o->b.label);
    fprintf(f, "  \"config\": {\"quick\": %s, \"seconds\": %.3f, "
               "\"warmup_s\": %.3f, \"payload_bytes\": %d, "
               "\"streams_per_thread\": %d, \"batch_events\": %d, "
               "\"batch_streams_per_thread\": %d, \"reads\": %ld, "
               "\"all_events\": %ld, \"fsync_samples\": %ld, "
               "\"durability\": \"fdatasync before every append returns\", "
               "\"percentiles\": \"nearest-rank over sorted per-op "
               "samples\"},\n",
            o->b.quick ? "true" : "false", o->seconds, o->warmup, PAYLOAD_LEN,
            STREAMS_PER_THREAD, BATCH_EVENTS, BATCH_STREAMS_PER_THREAD,
            o->reads, o->all_events, o->fsync_samples);

    fprintf(f, "  \"fdatasync\": [\n");
    for (int i = 0; (o->b.phases & P_FSYNC) && i < 2; i++) {
        fprintf(f, "    {\"write_bytes\": %zu, \"warmup_samples\": %ld, "
                   "\"cpu_us_per_sample\": %.2f, \"latency\": ",
                r->fs[i].write_size, r->fs[i].warmup, r->fs[i].cpu_us);
        json_lat(f, &r->fs[i].lat);
        fprintf(f, "}%s\n", i == 0 ? "," : "");
    }
    fprintf(f, "  ],\n  \"appends\": [\n");
    for (int i = 0; i < r->napp; i++) {
        json_level(f, &r->app[i]);
        fprintf(f, "%s\n", i + 1 < r->napp ? "," : "");
    }
    fprintf(f, "  ],\n  \"batches\": [\n");
    for (int i = 0; i < r->nbatch; i++) {
        json_level(f, &r->batch[i]);
        fprintf(f, "%s\n", i + 1 < r->nbatch ? "," : "");
    }
    fprintf(f, "  ],\n  \"stream_reads\": [\n");
    for (int i = 0; (o->b.phases & P_READ) && i < 2; i++) {
        fprintf(f, "    {\"layout\": ");
        json_str(f, r->rd[i].layout);
        fprintf(f, ", \"events_per_read\": %d, \"warmup_reads\": %ld, "
                   "\"counts\": ",
                READ_STREAM_EVENTS, r->rd[i].warmup);
        json_counts(f, &r->rd[i].c);
        fprintf(f, ", \"latency\": ");
        json_lat(f, &r->rd[i].lat);
        fprintf(f, ", \"first_error\": ");
        json_str(f, r->rd[i].error);
        fprintf(f, "}%s\n", i == 0 ? "," : "");
    }
    fprintf(f, "  ],\n  \"read_all\": ");
    if (o->b.phases & P_ALL)
        write_json_all(f, r);
    else
        fprintf(f, "null");
    fprintf(f, ",\n");
    json_tail(f, &r->run, r->goals, r->ngoals, "seed_targets", r->seeds,
              r->nseeds, "target", "threshold");
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
    if (o.b.phases & P_FSYNC) {
        fprintf(stderr, PROG ": fdatasync floor: %ld samples\n",
                o.fsync_samples);
        r.fs[0] = bench_fsync(PAYLOAD_LEN, o.fsync_samples);
        long big = o.fsync_samples / 4 > 0 ? o.fsync_samples / 4 : 1;
        r.fs[1] = bench_fsync((size_t)PAYLOAD_LEN * BATCH_EVENTS, big);
    }
    for (int i = 0; (o.b.phases & P_APPEND) && i < o.nthreads; i++)
        r.app[r.napp++] = bench_appends(&o, o.threads[i], 1);
    for (int i = 0; (o.b.phases & P_BATCH) && i < o.nbatch_threads; i++)
        r.batch[r.nbatch++] =
            bench_appends(&o, o.batch_threads[i], BATCH_EVENTS);
    if (o.b.phases & P_READ)
        bench_reads(&o, r.rd);
    if (o.b.phases & P_ALL)
        bench_all(&o, &r.all);
    return bench_end(&r.run, &o.b, compute_goals, write_md, write_json, &r);
}
