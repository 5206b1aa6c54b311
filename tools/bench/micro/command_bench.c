/*
 * command_bench.c -- benchmark of the command executor
 * (include/evstore_command.h) on the embedded store: the seeds' two
 * scenarios (EventCore's banking and e-commerce), executed as commands
 * (read, fold, decide, conditional append, retry on conflict), not as raw
 * appends.
 *
 * What it measures, on one store in a temporary directory:
 *
 *   1. bank: 1,000 accounts (opened with 10,000 each); each command is a
 *      deposit (45 %), a withdrawal (45 %; rejected when the balance is too
 *      low) or a transfer between two accounts (10 %; two streams), at 1, 8,
 *      64 and 256 caller threads;
 *   2. shop: 1,000 products, 10,000 customers; each command places an order
 *      for 2-5 distinct random products: it reads the new order's stream
 *      and the products' (3-6 streams in one read), reserves stock in each
 *      product, and writes the order and an entry in the customer's stream
 *      (APPEND: not read); 2 % of the products are scarce (100 in stock), so
 *      some orders are rejected; same thread levels;
 *   3. raw: the control for 1: blind single-event appends (EVS_ANY; no
 *      read, no decision) to 1,000 other streams at 64 and 256 threads, in
 *      the same run, so the executor's cost shows beside the engine's on
 *      the same machine at the same moment;
 *   4. nocache: the bank mix at 64 threads without the state cache, for
 *      the cache's share.
 *
 * Accounting: every command ends in exactly one of committed / rejected
 * (the handler said no: a business outcome) / conflict (the retry policy
 * ran out) / error, and the counts, which must add up, are printed beside
 * every rate. "commands/s" counts committed + rejected (a decision was
 * served), "committed/s" the commits alone. Latency is each
 * evs_command_execute call's wall time, retries and backoff included;
 * percentiles are nearest-rank over every measured command. Warm-up
 * commands are excluded from rates and latencies but counted in the
 * checks.
 *
 * Checks, after each phase: the store holds exactly the events the
 * committed commands wrote; bank: the sum of all balances replayed from
 * the store equals the opening total plus committed deposits minus
 * committed withdrawals, and no balance ever went below zero; shop: no
 * product was ever oversold, and each product's reservations in the store
 * equal those of the committed orders. A failed check exits 3.
 *
 * The domains are `evs bench`'s (bank.c, shop.c: the same folds, handlers
 * and command mix). Levels are run here, not by bench_util's level_run,
 * because a command has four outcomes where an append has three; options,
 * clocks, samples, the machine description and the report pieces come
 * from bench_util, the sync counts from sync_probe.c.
 */
#include "bank.h"
#include "bench_util.h"
#include "shop.h"

#include <evstore_command.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROG "command_bench"
#define OPENING 10000      /* each account's opening balance */
#define PLENTY 1000000000  /* stock of an ordinary product */
#define SCARCE 100         /* stock of a scarce product */
#define SCARCE_EVERY 50    /* one product in 50 is scarce (2 %) */

/* Phases, for --only. */
#define P_BANK 0x1u
#define P_RAW 0x2u
#define P_SHOP 0x4u
#define P_NOCACHE 0x8u

enum { M_BANK, M_SHOP, M_RAW }; /* what a phase's operations are */

/* ------------------------------------------------------------------ */
/* Options                                                             */
/* ------------------------------------------------------------------ */

typedef struct options {
    bench_opts b;
    double seconds, warmup;
    int threads[MAX_LEVELS];
    int nthreads;
    int accounts, products, customers;
    long cache;
    unsigned attempts;
    uint64_t seed;
} options;

static void usage(FILE *f)
{
    fprintf(f,
"usage: " PROG " [options]\n"
"\n"
"Benchmark of the command executor on one embedded store: banking commands\n"
"(deposit, withdraw, transfer) over 1,000 accounts and e-commerce orders over\n"
"3-6 streams, at several caller thread counts, with every outcome counted.\n"
"Markdown to stdout. Default run about 45 s; --quick about 10 s.\n"
"\n"
"  --dir DIR          where the temporary store goes (default: .)\n"
"  --quick            short run: 0.6 s per level, 0.2 s warm-up\n"
"  --seconds S        measured seconds per level (default 3.5)\n"
"  --warmup S         warm-up seconds per level (default 0.5)\n"
"  --threads LIST     caller thread levels (default 1,8,64,256)\n"
"  --accounts N       bank accounts (default 1000)\n"
"  --products N       shop products (default 1000)\n"
"  --customers N      shop customers (default 10000)\n"
"  --cache N          state cache entries (default 65536; 0: none)\n"
"  --attempts N       retry policy's max attempts (default 10)\n"
"  --seed N           seed of the generator (default 42)\n"
"  --json FILE        write every figure as JSON to FILE\n"
"  --md FILE          write the Markdown report to FILE as well\n"
"  --only LIST        run only these phases: bank, raw, shop, nocache\n"
"  --label TEXT       free text recorded in the report\n"
"  --keep             keep the store instead of deleting it\n"
"  --help             this text\n"
"\n"
"Exit status: 0; 2 bad arguments or unusable directory; 3 a command failed\n"
"with an error, or a check of the store failed.\n");
}

/* Names the program, parses argv into o, starts the run. */
static void begin(options *o, bench_run *run, int argc, char **argv)
{
    static const char *const phases[] = {"bank", "raw", "shop", "nocache"};
    const bench_opt own[] = {
        BENCH_OPT_SECONDS("--seconds", &o->seconds, 3600, 3.5, 0.6),
        BENCH_OPT_SECONDS0("--warmup", &o->warmup, 600, 0.5, 0.2),
        BENCH_OPT_LEVELS("--threads", o->threads, &o->nthreads, "1,8,64,256"),
        BENCH_OPT_INT("--accounts", &o->accounts, 2, 10000000, 1000, 1000),
        BENCH_OPT_INT("--products", &o->products, SHOP_MAX_LINES, 10000000, 1000, 1000),
        BENCH_OPT_INT("--customers", &o->customers, 1, 10000000, 10000, 10000),
        BENCH_OPT_LONG("--cache", &o->cache, 0, 100000000, 65536, 65536),
        BENCH_OPT_UINT("--attempts", &o->attempts, 1, 1000, 10, 10),
        BENCH_OPT_U64("--seed", &o->seed, 0, LONG_MAX, 42, 42),
    };
    memset(o, 0, sizeof *o);
    bench_begin(run, &o->b, PROG, argc, argv, phases, BENCH_COUNT(phases), usage,
                own, BENCH_COUNT(own));
}

/* The streams: account-<i>, product-<i>, customer-<i>. */
static char (*g_accounts)[BANK_NAME_LEN];
static char (*g_products)[BANK_NAME_LEN];
static char (*g_customers)[BANK_NAME_LEN];

/* ------------------------------------------------------------------ */
/* Levels                                                              */
/* ------------------------------------------------------------------ */

typedef struct cmd_counts {
    uint64_t attempted, committed, rejected, conflict, errors;
} cmd_counts;

static void cc_add(cmd_counts *a, const cmd_counts *b)
{
    a->attempted += b->attempted;
    a->committed += b->committed;
    a->rejected += b->rejected;
    a->conflict += b->conflict;
    a->errors += b->errors;
}

static int cc_ok(const cmd_counts *c)
{
    return c->attempted == c->committed + c->rejected + c->conflict + c->errors;
}

/* What a phase's commands did to the store, summed over its threads (warm-up
 * included): the checks compare it with the store. */
typedef struct tally {
    uint64_t events;          /* events written by committed commands */
    int64_t deposited, withdrawn;
    uint64_t kinds[3];        /* bank: committed deposits, withdrawals, transfers */
    int64_t *reserved;        /* shop: per product, by committed orders */
} tally;

typedef struct phase_ctx {
    evs_executor *ex;
    evs_db *db;
    const options *o;
    int mode;     /* M_* */
    int level_no;
    pthread_mutex_t mu;
    tally t;                  /* threads add theirs when they finish */
} phase_ctx;

enum { PH_WARMUP, PH_MEASURE, PH_STOP };

typedef struct worker {
    phase_ctx *pc;
    _Atomic int *phase;
    pthread_barrier_t *start;
    int id;
    pthread_t th;
    uint64_t rng, seq;
    cmd_counts c, warm;
    samples s;
    uint64_t last_done;
    tally t;
    char error[256];
} worker;

/* One command; returns its outcome, fills the worker's tally. */
static evs_command_outcome bank_op(worker *w)
{
    const options *o = w->pc->o;
    bank_cmd c;
    bank_pick(&c, g_accounts, o->accounts, rng_below_fn, &w->rng);
    evs_command_result res;
    evs_command_execute(&res, w->pc->ex, &c.cmd);
    if (res.outcome == EVS_CMD_COMMITTED) {
        w->t.events += res.nevents;
        w->t.kinds[c.kind]++;
        if (c.kind == BANK_DEPOSIT)
            w->t.deposited += c.amount;
        else if (c.kind == BANK_WITHDRAW)
            w->t.withdrawn += c.amount;
    } else if (res.outcome == EVS_CMD_ERROR && !w->error[0]) {
        snprintf(w->error, sizeof w->error, "%s", res.reason);
    }
    return res.outcome;
}

static evs_command_outcome shop_op(worker *w)
{
    const options *o = w->pc->o;
    char name[48];
    shop_order a;
    snprintf(name, sizeof name, "order-%d-%d-%llu", w->pc->level_no, w->id,
             (unsigned long long)w->seq++);
    shop_pick(&a, name, g_customers, o->customers, g_products, o->products,
              rng_below_fn, &w->rng);
    evs_command_result res;
    evs_command_execute(&res, w->pc->ex, &a.cmd);
    if (res.outcome == EVS_CMD_COMMITTED) {
        w->t.events += res.nevents;
        for (int i = 0; i < a.nlines; i++)
            w->t.reserved[a.product[i]] += a.qty[i];
    } else if (res.outcome == EVS_CMD_ERROR && !w->error[0]) {
        snprintf(w->error, sizeof w->error, "%s", res.reason);
    }
    return res.outcome;
}

/* The control: what a deposit writes, appended blind (no read, no
 * decision, no version check), to streams no command touches. */
static evs_command_outcome raw_op(worker *w)
{
    const options *o = w->pc->o;
    char stream[32], json[64];
    snprintf(stream, sizeof stream, "raw-%d",
             (int)rng_below(&w->rng, (uint64_t)o->accounts));
    size_t len = (size_t)snprintf(json, sizeof json, "{\"amount\":%lld}",
                                  1 + (long long)rng_below(&w->rng, 1000));
    evs_event_data ev;
    event_init(&ev, "Deposited", json, len);
    if (evs_append(NULL, w->pc->db, NULL, stream, EVS_ANY, &ev, 1) < 0) {
        if (!w->error[0])
            snprintf(w->error, sizeof w->error, "%s", evs_last_error());
        return EVS_CMD_ERROR;
    }
    w->t.events++;
    return EVS_CMD_COMMITTED;
}

static const char *mode_name(int mode)
{
    return mode == M_SHOP ? "shop" : mode == M_RAW ? "raw appends" : "bank";
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    pthread_barrier_wait(w->start);
    int phase;
    while ((phase = atomic_load(w->phase)) != PH_STOP) {
        uint64_t t0 = now_ns();
        evs_command_outcome oc = w->pc->mode == M_SHOP  ? shop_op(w)
                                 : w->pc->mode == M_RAW ? raw_op(w)
                                                        : bank_op(w);
        uint64_t t1 = now_ns();
        cmd_counts *c = phase == PH_MEASURE ? &w->c : &w->warm;
        c->attempted++;
        c->committed += oc == EVS_CMD_COMMITTED;
        c->rejected += oc == EVS_CMD_REJECTED;
        c->conflict += oc == EVS_CMD_CONFLICT;
        c->errors += oc == EVS_CMD_ERROR;
        if (phase == PH_MEASURE) {
            samples_push(&w->s, t1 - t0);
            w->last_done = t1;
        }
    }
    /* hand the tally to the phase */
    pthread_mutex_lock(&w->pc->mu);
    tally *t = &w->pc->t;
    t->events += w->t.events;
    t->deposited += w->t.deposited;
    t->withdrawn += w->t.withdrawn;
    for (int k = 0; k < 3; k++)
        t->kinds[k] += w->t.kinds[k];
    if (w->t.reserved)
        for (int p = 0; p < w->pc->o->products; p++)
            t->reserved[p] += w->t.reserved[p];
    pthread_mutex_unlock(&w->pc->mu);
    return NULL;
}

typedef struct level {
    int threads;
    double window_s;
    cmd_counts c, warm;
    lat_summary lat;
    double cmds_per_s, committed_per_s;
    double cpu_user, cpu_sys, other_cpu_s;
    uint64_t syncs, csw;
    double sync_s;
    evs_executor_stats ex;  /* the executor's counters over the level
                               (warm-up included) */
    uint64_t events;        /* events the level's commits wrote */
    char error[256];
} level;

static evs_executor_stats stats_delta(const evs_executor_stats *a,
                                      const evs_executor_stats *b)
{
    evs_executor_stats d = *b;
    const uint64_t *pa = (const uint64_t *)a;
    uint64_t *pd = (uint64_t *)&d;
    for (size_t i = 0; i < sizeof d / sizeof(uint64_t); i++)
        pd[i] -= pa[i];
    d.cache_entries = b->cache_entries; /* a level, not a delta */
    return d;
}

static void level_go(level *r, phase_ctx *pc, int nthreads)
{
    const options *o = pc->o;
    memset(r, 0, sizeof *r);
    r->threads = nthreads;
    _Atomic int phase = PH_WARMUP;
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)nthreads + 1);
    worker *ws = xcalloc((size_t)nthreads, sizeof *ws);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 1u << 20);
    uint64_t ev0 = pc->t.events;
    evs_executor_stats s0, s1;
    evs_executor_stats_get(&s0, pc->ex);
    for (int t = 0; t < nthreads; t++) {
        worker *w = &ws[t];
        w->pc = pc;
        w->phase = &phase;
        w->start = &start;
        w->id = t;
        w->rng = o->seed ^ ((uint64_t)pc->level_no << 32) ^ (uint64_t)t * 0x9e3779b9u;
        if (pc->mode == M_SHOP)
            w->t.reserved = xcalloc((size_t)o->products, sizeof(int64_t));
        int rc = pthread_create(&w->th, &attr, worker_main, w);
        if (rc != 0)
            die("pthread_create (thread %d of %d): %s", t, nthreads, strerror(rc));
    }
    pthread_attr_destroy(&attr);
    pthread_barrier_wait(&start);
    sleep_s(o->warmup);
    double u0 = cpu_seconds(0), y0 = cpu_seconds(1), m0 = machine_busy_s();
    uint64_t csw0 = ctx_switches();
    uint64_t sc0 = atomic_load(&g_sync_calls), sn0 = atomic_load(&g_sync_ns);
    uint64_t t0 = now_ns();
    atomic_store(&phase, PH_MEASURE);
    sleep_s(o->seconds);
    atomic_store(&phase, PH_STOP);
    samples all = {0};
    uint64_t t_end = t0;
    for (int t = 0; t < nthreads; t++) {
        pthread_join(ws[t].th, NULL);
        if (ws[t].last_done > t_end)
            t_end = ws[t].last_done;
    }
    r->cpu_user = cpu_seconds(0) - u0;
    r->cpu_sys = cpu_seconds(1) - y0;
    double m1 = machine_busy_s();
    r->other_cpu_s = m0 >= 0 && m1 >= 0 ? m1 - m0 - r->cpu_user - r->cpu_sys : -1;
    if (m0 >= 0 && m1 >= 0 && r->other_cpu_s < 0)
        r->other_cpu_s = 0;
    r->csw = ctx_switches() - csw0;
    r->syncs = atomic_load(&g_sync_calls) - sc0;
    r->sync_s = (double)(atomic_load(&g_sync_ns) - sn0) / 1e9;
    for (int t = 0; t < nthreads; t++) {
        cc_add(&r->c, &ws[t].c);
        cc_add(&r->warm, &ws[t].warm);
        samples_append(&all, &ws[t].s);
        free(ws[t].s.v);
        free(ws[t].t.reserved);
        if (ws[t].error[0] && !r->error[0])
            snprintf(r->error, sizeof r->error, "%s", ws[t].error);
    }
    free(ws);
    pthread_barrier_destroy(&start);
    evs_executor_stats_get(&s1, pc->ex);
    r->ex = stats_delta(&s0, &s1);
    r->events = pc->t.events - ev0;
    r->window_s = (double)(t_end - t0) / 1e9;
    if (r->window_s <= 0)
        r->window_s = o->seconds;
    r->cmds_per_s = (double)(r->c.committed + r->c.rejected) / r->window_s;
    r->committed_per_s = (double)r->c.committed / r->window_s;
    r->lat = summarize(&all);
    free(all.v);
    if (!cc_ok(&r->c) || !cc_ok(&r->warm) || r->c.errors || r->warm.errors)
        g_failures++;
    fprintf(stderr, PROG ": %s %d threads: %.0f commands/s (%.0f committed/s), p50 %.3f "
                    "ms, p95 %.3f ms, p99 %.3f ms; attempted %llu committed %llu rejected "
                    "%llu conflict %llu errors %llu\n",
            mode_name(pc->mode), nthreads, r->cmds_per_s, r->committed_per_s,
            r->lat.p50, r->lat.p95, r->lat.p99, (unsigned long long)r->c.attempted,
            (unsigned long long)r->c.committed, (unsigned long long)r->c.rejected,
            (unsigned long long)r->c.conflict, (unsigned long long)r->c.errors);
    if (r->error[0])
        fprintf(stderr, PROG ":   first error: %s\n", r->error);
}

/* ------------------------------------------------------------------ */
/* Phases and their checks                                             */
/* ------------------------------------------------------------------ */

typedef struct phase_result {
    int ran;
    level lv[MAX_LEVELS];
    int n;
    tally t;
    uint64_t setup_events;
    uint64_t store_events;
    char check[512];       /* "" when every check held */
    double audit_s;
} phase_result;

static evs_executor *executor_for(evs_db *db, const options *o, long cache)
{
    evs_executor_options eo = EVS_EXECUTOR_OPTIONS_INIT;
    eo.cache_entries = (size_t)cache;
    eo.retry.max_attempts = o->attempts;
    evs_executor *ex;
    if (evs_executor_new(&ex, db, &eo) < 0)
        die("evs_executor_new: %s", evs_last_error());
    return ex;
}

static uint64_t store_events(evs_db *db)
{
    evs_stats st;
    if (evs_stats_get(&st, db) < 0)
        die("evs_stats_get: %s", evs_last_error());
    return st.events;
}

static void append_one(evs_db *db, const char *stream, const char *type, const char *json)
{
    evs_event_data ev;
    event_init(&ev, type, json, strlen(json));
    if (evs_append(NULL, db, NULL, stream, EVS_NO_STREAM, &ev, 1) < 0)
        die("setting up %s: %s", stream, evs_last_error());
}

/* Committed deposits and withdrawals of every bank phase so far: the
 * balances hold all of them. */
static int64_t g_deposited, g_withdrawn;

/* Replay every account: the total, and whether any went below zero. */
static void bank_audit(evs_db *db, const options *o, phase_result *p)
{
    int64_t total = 0;
    int negative = 0;
    uint64_t t0 = now_ns();
    for (int a = 0; a < o->accounts; a++) {
        evs_iter *it;
        const evs_event *e;
        bank_account acc = {0, 0};
        if (evs_read_stream(&it, db, NULL, g_accounts[a], 0, EVS_FORWARD, 0) < 0)
            die("audit read: %s", evs_last_error());
        while (evs_iter_next(&e, it) == 0) {
            bank_account_apply(&acc, e);
            negative |= acc.balance < 0;
        }
        evs_iter_free(it);
        total += acc.balance;
    }
    p->audit_s = (double)(now_ns() - t0) / 1e9;
    g_deposited += p->t.deposited;
    g_withdrawn += p->t.withdrawn;
    int64_t want = (int64_t)o->accounts * OPENING + g_deposited - g_withdrawn;
    p->store_events = store_events(db);
    uint64_t want_events = p->setup_events + p->t.events;
    if (total != want || negative || p->store_events != want_events) {
        snprintf(p->check, sizeof p->check, "balances sum to %lld (expected %lld)%s; the "
                 "store holds %llu events (expected %llu)", (long long)total,
                 (long long)want, negative ? "; a balance went below zero" : "",
                 (unsigned long long)p->store_events, (unsigned long long)want_events);
        g_failures++;
    }
}

static void shop_audit(evs_db *db, const options *o, phase_result *p)
{
    int oversold = 0, mismatch = -1;
    uint64_t t0 = now_ns();
    for (int k = 0; k < o->products; k++) {
        evs_iter *it;
        const evs_event *e;
        shop_product pr = {0, 0};
        int64_t reserved = 0;
        if (evs_read_stream(&it, db, NULL, g_products[k], 0, EVS_FORWARD, 0) < 0)
            die("audit read: %s", evs_last_error());
        while (evs_iter_next(&e, it) == 0) {
            shop_product_apply(&pr, e);
            if (strcmp(e->type, "StockReserved") == 0)
                reserved += (int64_t)json_uint(e->data, "\"qty\":");
            oversold |= pr.stock < 0;
        }
        evs_iter_free(it);
        if (reserved != p->t.reserved[k] && mismatch < 0)
            mismatch = k;
    }
    p->audit_s = (double)(now_ns() - t0) / 1e9;
    p->store_events = store_events(db);
    uint64_t want_events = p->setup_events + p->t.events;
    if (oversold || mismatch >= 0 || p->store_events != want_events) {
        snprintf(p->check, sizeof p->check, "%s%s%s; the store holds %llu events "
                 "(expected %llu)", oversold ? "a product was oversold; " : "",
                 mismatch >= 0 ? "reservations of " : "",
                 mismatch >= 0 ? g_products[mismatch] : "no reservation mismatch",
                 (unsigned long long)p->store_events, (unsigned long long)want_events);
        g_failures++;
    }
}

/* Raw appends: the store holds exactly the acknowledged ones. */
static void raw_audit(evs_db *db, phase_result *p)
{
    p->store_events = store_events(db);
    if (p->store_events != p->setup_events + p->t.events) {
        snprintf(p->check, sizeof p->check, "the store holds %llu events (expected %llu)",
                 (unsigned long long)p->store_events,
                 (unsigned long long)(p->setup_events + p->t.events));
        g_failures++;
    }
}

static void run_phase(evs_db *db, const options *o, int mode, long cache,
                      const int *threads, int nthreads, phase_result *p)
{
    static int level_no;
    phase_ctx pc;
    memset(&pc, 0, sizeof pc);
    pthread_mutex_init(&pc.mu, NULL);
    pc.o = o;
    pc.mode = mode;
    pc.db = db;
    pc.ex = executor_for(db, o, cache);
    if (mode == M_SHOP)
        pc.t.reserved = xcalloc((size_t)o->products, sizeof(int64_t));
    p->ran = 1;
    p->setup_events = store_events(db);
    for (int i = 0; i < nthreads; i++) {
        pc.level_no = ++level_no;
        fprintf(stderr, PROG ": %s%s, %d threads: %.1f s warm-up + %.1f s\n",
                mode_name(mode), cache || mode == M_RAW ? "" : " without cache", threads[i],
                o->warmup, o->seconds);
        sync_fs(g_root, NULL, NULL, NULL, 0); /* what earlier phases left */
        level_go(&p->lv[p->n++], &pc, threads[i]);
    }
    p->t = pc.t;
    if (mode == M_SHOP)
        shop_audit(db, o, p);
    else if (mode == M_RAW)
        raw_audit(db, p);
    else
        bank_audit(db, o, p);
    if (p->check[0])
        fprintf(stderr, PROG ": CHECK FAILED: %s\n", p->check);
    free(pc.t.reserved);
    p->t.reserved = NULL;
    evs_executor_free(pc.ex);
    pthread_mutex_destroy(&pc.mu);
}

/* ------------------------------------------------------------------ */
/* The report                                                          */
/* ------------------------------------------------------------------ */

typedef struct report {
    const options *o;
    bench_run run;
    phase_result bank, raw, shop, nocache;
    double setup_s;
    evs_stats end;
    goal goals[4], seeds[4];
    int ngoals, nseeds;
} report;

/* The fastest level (commands/s) whose p95 is within p95_ms, else the
 * fastest. */
static const level *best_level(const phase_result *p, double p95_ms)
{
    const level *best = NULL, *best_ok = NULL;
    for (int i = 0; i < p->n; i++) {
        const level *l = &p->lv[i];
        if (!best || l->cmds_per_s > best->cmds_per_s)
            best = l;
        if (l->lat.p95 <= p95_ms && (!best_ok || l->cmds_per_s > best_ok->cmds_per_s))
            best_ok = l;
    }
    return best_ok ? best_ok : best;
}

static int no_errors(const phase_result *p)
{
    for (int i = 0; i < p->n; i++)
        if (p->lv[i].c.errors || p->lv[i].warm.errors)
            return 0;
    return !p->check[0];
}

static void compute_goals(void *report_)
{
    report *r = report_;
    goal *g;
    const level *l;
    g = goal_add(r->goals, &r->ngoals, "financial commands (bank mix), best level",
                 ">= 150,000 commands/s with p95 <= 2 ms");
    if (r->bank.ran) {
        const level *top = best_level(&r->bank, 1e9);
        l = best_level(&r->bank, 2.0);
        if (l == top || l->lat.p95 > 2.0)
            goal_set(g, no_errors(&r->bank) && l->cmds_per_s >= 150000 && l->lat.p95 <= 2.0,
                     "%.0f commands/s at %d threads, p95 %.3f ms", l->cmds_per_s,
                     l->threads, l->lat.p95);
        else
            goal_set(g, no_errors(&r->bank) && l->cmds_per_s >= 150000,
                     "%.0f commands/s at %d threads, p95 %.3f ms; fastest: %.0f at %d "
                     "threads, p95 %.3f ms", l->cmds_per_s, l->threads, l->lat.p95,
                     top->cmds_per_s, top->threads, top->lat.p95);
    } else {
        goal_not_run(g);
    }
    g = goal_add(r->goals, &r->ngoals, "e-commerce orders (3-6 streams read), best level",
                 ">= 50,000 orders/s");
    if (r->shop.ran) {
        l = best_level(&r->shop, 1e9);
        goal_set(g, no_errors(&r->shop) && l->cmds_per_s >= 50000,
                 "%.0f orders/s at %d threads, p95 %.3f ms", l->cmds_per_s, l->threads,
                 l->lat.p95);
    } else {
        goal_not_run(g);
    }
    g = goal_add(r->seeds, &r->nseeds, "single-stream financial commands", "5-10 K ops/s");
    if (r->bank.ran) {
        l = best_level(&r->bank, 1e9);
        goal_set(g, 1, "%.0f commands/s (%d threads)", l->cmds_per_s, l->threads);
        g->verdict = "measured";
    } else {
        goal_not_run(g);
    }
    g = goal_add(r->seeds, &r->nseeds, "multi-stream e-commerce orders", "2-5 K ops/s");
    if (r->shop.ran) {
        l = best_level(&r->shop, 1e9);
        goal_set(g, 1, "%.0f orders/s (%d threads)", l->cmds_per_s, l->threads);
        g->verdict = "measured";
    } else {
        goal_not_run(g);
    }
}

static void md_counts(FILE *f, const cmd_counts *c)
{
    fprintf(f, "%llu / %llu / %llu / %llu / %llu", (unsigned long long)c->attempted,
            (unsigned long long)c->committed, (unsigned long long)c->rejected,
            (unsigned long long)c->conflict, (unsigned long long)c->errors);
}

static double per(double a, double b) { return b > 0 ? a / b : 0; }

static void md_phase(FILE *f, const phase_result *p, const machine *m)
{
    fprintf(f, "| threads | attempted / committed / rejected / conflict / errors | "
               "commands/s | committed/s | p50 ms | p90 | p95 | p99 | max | warm-up "
               "excluded |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < p->n; i++) {
        const level *l = &p->lv[i];
        fprintf(f, "| %d | ", l->threads);
        md_counts(f, &l->c);
        fprintf(f, " | %.0f | %.0f |", l->cmds_per_s, l->committed_per_s);
        md_lat_cells(f, &l->lat);
        fprintf(f, " %llu |\n", (unsigned long long)l->warm.attempted);
    }
    fprintf(f, "\nWhere the time goes (executor counters over the whole level, warm-up "
               "included; CPU, syncs and context switches over the measured window; %ld "
               "cores, so 100 %% CPU is one core):\n\n"
               "| threads | CPU µs/command | CPU busy | fdatasync calls/s | "
               "commits per sync | attempts/command | conflicted attempts | "
               "streams read/attempt | events folded/attempt | cache hits | backoff "
               "ms/command | context switches/command |\n"
               "|---|---|---|---|---|---|---|---|---|---|---|---|\n", m->cores);
    for (int i = 0; i < p->n; i++) {
        const level *l = &p->lv[i];
        const evs_executor_stats *x = &l->ex;
        double done = (double)(l->c.committed + l->c.rejected);
        double cpu = l->cpu_user + l->cpu_sys;
        if (x->commands == 0) { /* raw appends: no executor */
            fprintf(f, "| %d | %.1f | %.0f %% | %.0f | %.1f | - | - | - | - | - | - | %.1f |\n",
                    l->threads, per(cpu * 1e6, done), 100 * per(cpu, l->window_s),
                    per((double)l->syncs, l->window_s),
                    per((double)l->c.committed, (double)l->syncs), per((double)l->csw, done));
            continue;
        }
        fprintf(f, "| %d | %.1f | %.0f %% | %.0f | %.1f | %.3f | %.1f %% | %.2f | %.2f "
                   "| %.1f %% | %.3f | %.1f |\n",
                l->threads, per(cpu * 1e6, done), 100 * per(cpu, l->window_s),
                per((double)l->syncs, l->window_s),
                per((double)l->c.committed, (double)l->syncs),
                per((double)x->attempts, (double)x->commands),
                100 * per((double)x->conflicted_attempts, (double)x->attempts),
                per((double)x->streams_read, (double)x->attempts),
                per((double)x->events_folded, (double)x->attempts),
                100 * per((double)x->cache_hits, (double)(x->cache_hits + x->cache_misses)),
                per((double)x->backoff_us / 1e3, (double)x->commands),
                per((double)l->csw, done));
    }
    for (int i = 0; i < p->n; i++)
        if (p->lv[i].other_cpu_s >= 0)
            fprintf(f, "%s%d threads: %.0f %%", i ? ", " : "\nOther processes' CPU "
                                                          "during the window: ",
                    p->lv[i].threads, 100 * per(p->lv[i].other_cpu_s, p->lv[i].window_s));
    fprintf(f, ".\n\nChecks: %s (store: %llu events, of which %llu before the phase; "
               "audit read %.2f s).\n",
            p->check[0] ? p->check : "every check held", (unsigned long long)p->store_events,
            (unsigned long long)p->setup_events, p->audit_s);
    for (int i = 0; i < p->n; i++)
        if (p->lv[i].error[0])
            fprintf(f, "\n- %d threads, first error: %s\n", p->lv[i].threads,
                    p->lv[i].error);
}

static void write_md(FILE *f, const void *report_)
{
    const report *r = report_;
    const options *o = r->o;
    fprintf(f, "# evstore command executor benchmark\n\n");
    md_machine_rows(f, &r->run.m, o->b.label, r->run.version, r->run.root);
    fprintf(f, "| mode | %s: %.1f s measured per level after %.1f s warm-up (not "
               "counted); %d accounts, %d products, %d customers; state cache %ld entries; "
               "retry: %u attempts, backoff 100 µs doubling to 20 ms, full jitter; seed "
               "%llu |\n",
            o->b.quick ? "quick" : "full", o->seconds, o->warmup, o->accounts, o->products,
            o->customers, o->cache, o->attempts, (unsigned long long)o->seed);
    md_run_rows(f, &r->run, r->setup_s);
    fprintf(f, "Each command is one evs_command_execute call: one read of its streams "
               "(evs_read_streams, one snapshot; with the state cache only the events "
               "after the cached version), the fold, the handler, and one atomic "
               "evs_append_ex with the versions read as expected versions, durable "
               "(fdatasync) before it returns; on a conflict it starts over after a "
               "backoff. Outcomes: committed, rejected (the handler's business rule), "
               "conflict (every attempt conflicted), error; commands/s counts committed + "
               "rejected. Latency is the whole call, retries included, nearest-rank "
               "percentiles in milliseconds.\n\n");
    fprintf(f, "## 1. Financial commands\n\n");
    fprintf(f, "%d accounts opened with %d. Each command: deposit 1-1000 (45 %%), withdraw "
               "1-1000 (45 %%; rejected when the balance is lower), or transfer 1-1000 to "
               "another account (10 %%: two streams read and written atomically); "
               "accounts uniformly at random.\n\n", o->accounts, OPENING);
    if (r->bank.ran) {
        md_phase(f, &r->bank, &r->run.m);
        fprintf(f, "\nCommitted by kind (warm-up included): %llu deposits, %llu "
                   "withdrawals, %llu transfers.\n",
                (unsigned long long)r->bank.t.kinds[0], (unsigned long long)r->bank.t.kinds[1],
                (unsigned long long)r->bank.t.kinds[2]);
    } else {
        fprintf(f, "_Not run (--only)._\n");
    }
    fprintf(f, "\n### Control: raw appends\n\n");
    fprintf(f, "What a deposit writes (one 15-byte JSON event), appended blind with "
               "evs_append and EVS_ANY to %d other streams: no read, no fold, no decision, "
               "no version check. The gap to the table above is the executor's share "
               "(read, fold, decide, the expected-version check); both ran minutes apart "
               "on the same store and machine.\n\n", o->accounts);
    if (r->raw.ran)
        md_phase(f, &r->raw, &r->run.m);
    else
        fprintf(f, "_Not run (--only)._\n");
    fprintf(f, "\n## 2. E-commerce orders\n\n");
    fprintf(f, "%d products (one in %d scarce: %d in stock; the others plenty), %d "
               "customers. Each command places a new order for 2-5 distinct random "
               "products (quantity 1-3): it reads the order's stream (must not exist) and "
               "the products' streams (3-6 streams in one read), rejects when a product "
               "lacks stock, and otherwise writes a StockReserved to each product, "
               "OrderPlaced to the order and OrderRecorded to the customer's stream "
               "(declared APPEND: written, not read, no version check) in one atomic "
               "append of 5-8 events to 4-7 streams.\n\n",
            o->products, SCARCE_EVERY, SCARCE, o->customers);
    if (r->shop.ran)
        md_phase(f, &r->shop, &r->run.m);
    else
        fprintf(f, "_Not run (--only)._\n");
    fprintf(f, "\n## 3. Control: financial commands without the state cache\n\n");
    fprintf(f, "The same mix at 64 threads with cache_entries = 0: every command reads "
               "its accounts from their first event. The accounts' histories have grown "
               "by then (section 1 ran first), which is the point: the cache's share "
               "grows with the streams.\n\n");
    if (r->nocache.ran)
        md_phase(f, &r->nocache, &r->run.m);
    else
        fprintf(f, "_Not run (--only)._\n");
    fprintf(f, "\nAt the end the store held %llu events in %llu streams, log %.0f MiB, "
               "index %.0f MiB.\n",
            (unsigned long long)r->end.events, (unsigned long long)r->end.streams,
            (double)r->end.log_bytes / 1048576.0, (double)r->end.index_bytes / 1048576.0);
    fprintf(f, "\n## 4. Goals\n\n");
    md_goals(f, r->goals, r->ngoals);
    fprintf(f, "\nThe seeds' targets (EventCore on PostgreSQL, another machine), for "
               "context:\n\n| scenario | seed target | measured here |\n|---|---|---|\n");
    for (int i = 0; i < r->nseeds; i++)
        fprintf(f, "| %s | %s | %s |\n", r->seeds[i].name, r->seeds[i].target,
                r->seeds[i].measured);
}

static void json_cc(FILE *f, const cmd_counts *c)
{
    fprintf(f, "{\"attempted\": %llu, \"committed\": %llu, \"rejected\": %llu, "
               "\"conflict\": %llu, \"errors\": %llu}",
            (unsigned long long)c->attempted, (unsigned long long)c->committed,
            (unsigned long long)c->rejected, (unsigned long long)c->conflict,
            (unsigned long long)c->errors);
}

static void json_phase(FILE *f, const char *key, const phase_result *p)
{
    fprintf(f, "  \"%s\": ", key);
    if (!p->ran) {
        fprintf(f, "null,\n");
        return;
    }
    fprintf(f, "{\"levels\": [\n");
    for (int i = 0; i < p->n; i++) {
        const level *l = &p->lv[i];
        const evs_executor_stats *x = &l->ex;
        fprintf(f, "    {\"threads\": %d, \"window_s\": %.4f, \"counts\": ", l->threads,
                l->window_s);
        json_cc(f, &l->c);
        fprintf(f, ", \"warmup_counts\": ");
        json_cc(f, &l->warm);
        fprintf(f, ", \"commands_per_s\": %.1f, \"committed_per_s\": %.1f, \"latency\": ",
                l->cmds_per_s, l->committed_per_s);
        json_lat(f, &l->lat);
        fprintf(f, ",\n     \"cpu_user_s\": %.3f, \"cpu_sys_s\": %.3f, \"other_cpu_s\": "
                   "%.3f, \"syncs\": %llu, \"sync_s\": %.4f, \"context_switches\": %llu, "
                   "\"events_written\": %llu,\n     \"executor\": {\"commands\": %llu, "
                   "\"attempts\": %llu, \"conflicted_attempts\": %llu, \"reads\": %llu, "
                   "\"streams_read\": %llu, \"events_folded\": %llu, \"cache_hits\": %llu, "
                   "\"cache_misses\": %llu, \"cache_evictions\": %llu, \"backoff_us\": "
                   "%llu}, \"first_error\": ",
                l->cpu_user, l->cpu_sys, l->other_cpu_s, (unsigned long long)l->syncs,
                l->sync_s, (unsigned long long)l->csw, (unsigned long long)l->events,
                (unsigned long long)x->commands, (unsigned long long)x->attempts,
                (unsigned long long)x->conflicted_attempts, (unsigned long long)x->reads,
                (unsigned long long)x->streams_read, (unsigned long long)x->events_folded,
                (unsigned long long)x->cache_hits, (unsigned long long)x->cache_misses,
                (unsigned long long)x->cache_evictions, (unsigned long long)x->backoff_us);
        json_str(f, l->error);
        fprintf(f, "}%s\n", i + 1 < p->n ? "," : "");
    }
    fprintf(f, "  ], \"store_events\": %llu, \"setup_events\": %llu, \"check\": ",
            (unsigned long long)p->store_events, (unsigned long long)p->setup_events);
    json_str(f, p->check);
    fprintf(f, "},\n");
}

static void write_json(FILE *f, const void *report_)
{
    const report *r = report_;
    const options *o = r->o;
    json_head(f, "command_bench", &r->run, o->b.label);
    fprintf(f, "  \"config\": {\"quick\": %s, \"seconds\": %.3f, \"warmup_s\": %.3f, "
               "\"accounts\": %d, \"products\": %d, \"customers\": %d, \"cache_entries\": "
               "%ld, \"max_attempts\": %u, \"seed\": %llu},\n",
            o->b.quick ? "true" : "false", o->seconds, o->warmup, o->accounts, o->products,
            o->customers, o->cache, o->attempts, (unsigned long long)o->seed);
    json_phase(f, "bank", &r->bank);
    json_phase(f, "raw_appends", &r->raw);
    json_phase(f, "shop", &r->shop);
    json_phase(f, "nocache", &r->nocache);
    json_tail(f, &r->run, r->goals, r->ngoals, "seed_targets", r->seeds, r->nseeds,
              "scenario", "seed");
}

/* ------------------------------------------------------------------ */
/* Main                                                                */
/* ------------------------------------------------------------------ */

static char (*names(const char *prefix, int n))[BANK_NAME_LEN]
{
    char (*v)[BANK_NAME_LEN] = xcalloc((size_t)n, sizeof *v);
    for (int i = 0; i < n; i++)
        snprintf(v[i], sizeof v[i], "%s-%d", prefix, i);
    return v;
}

int main(int argc, char **argv)
{
    static report r;
    options o;
    begin(&o, &r.run, argc, argv);
    r.o = &o;
    evs_db *db = open_fresh("commands");

    uint64_t t0 = now_ns();
    g_accounts = names("account", o.accounts);
    g_products = names("product", o.products);
    g_customers = names("customer", o.customers);
    char json[64];
    snprintf(json, sizeof json, "{\"amount\":%d}", OPENING);
    if (o.b.phases & (P_BANK | P_NOCACHE))
        for (int a = 0; a < o.accounts; a++)
            append_one(db, g_accounts[a], "Opened", json);
    if (o.b.phases & P_SHOP)
        for (int p = 0; p < o.products; p++) {
            snprintf(json, sizeof json, "{\"stock\":%d}",
                     p % SCARCE_EVERY == SCARCE_EVERY - 1 ? SCARCE : PLENTY);
            append_one(db, g_products[p], "ProductAdded", json);
        }
    r.setup_s = (double)(now_ns() - t0) / 1e9;

    static const int t64[] = {64}, t64_256[] = {64, 256};
    if (o.b.phases & P_BANK)
        run_phase(db, &o, M_BANK, o.cache, o.threads, o.nthreads, &r.bank);
    if (o.b.phases & P_RAW)
        run_phase(db, &o, M_RAW, 0, t64_256, 2, &r.raw);
    if (o.b.phases & P_SHOP)
        run_phase(db, &o, M_SHOP, o.cache, o.threads, o.nthreads, &r.shop);
    if (o.b.phases & P_NOCACHE)
        run_phase(db, &o, M_BANK, 0, t64, 1, &r.nocache);
    close_store(db, "commands", &r.end);
    return bench_end(&r.run, &o.b, compute_goals, write_md, write_json, &r);
}
