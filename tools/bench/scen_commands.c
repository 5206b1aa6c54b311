/*
 * scen_commands.c -- the command scenarios of `evs bench`: the seeds'
 * two domains (EventCore, seeds 000/001) through the command executor
 * (evs_command_execute), as tools/bench/micro/command_bench.c runs them:
 *
 *   bank  single-stream financial commands: 45 % deposits, 45 %
 *         withdrawals (rejected on insufficient funds), 10 % transfers
 *         between two accounts (the one multi-stream bank command);
 *   shop  e-commerce orders: read the new order's stream and 2-5 product
 *         streams, reserve stock on each product, record the order on it
 *         and on the customer's stream (appended without a read).
 *
 * The executor retries conflicts (10 attempts, 100 µs to 20 ms full-jitter
 * backoff, its default policy) and keeps a state cache, so the figures are
 * those of an application using the executor as documented.
 */
#include "bank.h"
#include "scen_util.h"
#include "shop.h"

#include <evstore_command.h>

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_ENTRIES 65536

static evs_executor *executor_new(evs_db *db, char *err, size_t errsize)
{
    evs_executor_options eo = EVS_EXECUTOR_OPTIONS_INIT;
    evs_executor *ex = NULL;
    int rc;
    eo.cache_entries = CACHE_ENTRIES;
    if ((rc = evs_executor_new(&ex, db, &eo)) < 0)
        scen_fail(err, errsize, rc, "evs_executor_new");
    return ex;
}

/* The executor's outcome as a bench outcome, err filled on an error. */
static int outcome_of(const evs_command_result *r, const char *what,
                      char *err, size_t errsize)
{
    switch (r->outcome) {
    case EVS_CMD_COMMITTED: return BENCH_COMMITTED;
    case EVS_CMD_REJECTED: return BENCH_REJECTED;
    case EVS_CMD_CONFLICT: return BENCH_CONFLICT;
    default:
        scen_msg(err, errsize, "%s: %s (%s)", what, r->reason,
                 evs_strerror(r->error));
        return BENCH_ERROR;
    }
}

/* scen_below on a thread's generator, for bank_pick and shop_pick. */
static uint64_t below(void *rng, uint64_t n)
{
    return scen_below(rng, n);
}

/* Appends one event to each of names[0..n) (new streams), 100 streams an
   append. */
static int create_streams(evs_db *db, const char *tenant, char (*names)[BANK_NAME_LEN],
                          int n, const char *type, const char *const *json,
                          char *err, size_t errsize)
{
    evs_stream_append parts[100];
    evs_event_data evs[100];
    int rc;
    for (int i = 0; i < n; i += 100) {
        int k = n - i < 100 ? n - i : 100;
        for (int j = 0; j < k; j++) {
            event_init(&evs[j], type, json[i + j], strlen(json[i + j]));
            parts[j] = (evs_stream_append){names[i + j], EVS_NO_STREAM,
                                           &evs[j], 1};
        }
        if ((rc = evs_append_multi(NULL, db, tenant, parts, (size_t)k)) < 0) {
            scen_fail(err, errsize, rc, "creating %s..%s", names[i],
                      names[i + k - 1]);
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* bank                                                                */
/* ------------------------------------------------------------------ */

#define OPENING 1000

typedef struct bank_state {
    evs_db *db;
    evs_executor *ex;
    char tenant[EVS_MAX_TENANT_LEN + 1];
    uint64_t seed;
    int naccounts;
    char (*accounts)[BANK_NAME_LEN];
    /* committed, warm-up included: what check expects in the store */
    _Atomic int64_t deposited, withdrawn;
    _Atomic uint64_t events;
} bank_state;

typedef struct bank_thread {
    bank_state *s;
    uint64_t rng;
} bank_thread;

static void bank_teardown(void *state)
{
    bank_state *s = state;
    if (!s)
        return;
    evs_executor_free(s->ex);
    free(s->accounts);
    free(s);
}

static int bank_setup(void **state, bench_ctx *ctx, char *err, size_t errsize)
{
    bank_state *s = calloc(1, sizeof *s);
    const char **json = NULL;
    static const char opening[] = "{\"amount\":1000}";
    if (!s) {
        scen_msg(err, errsize, "out of memory");
        return -1;
    }
    s->db = ctx->db;
    s->seed = ctx->seed;
    snprintf(s->tenant, sizeof s->tenant, "%s", ctx->tenant);
    s->naccounts = ctx->quick ? 100 : 1000;
    s->accounts = calloc((size_t)s->naccounts, sizeof *s->accounts);
    json = calloc((size_t)s->naccounts, sizeof *json);
    if (!s->accounts || !json) {
        scen_msg(err, errsize, "out of memory");
        goto fail;
    }
    for (int i = 0; i < s->naccounts; i++) {
        snprintf(s->accounts[i], BANK_NAME_LEN, "account-%04d", i);
        json[i] = opening;
    }
    if (create_streams(s->db, s->tenant, s->accounts, s->naccounts, "Opened",
                       json, err, errsize) < 0)
        goto fail;
    s->events = (uint64_t)s->naccounts;
    if (!(s->ex = executor_new(s->db, err, errsize)))
        goto fail;
    free(json);
    *state = s;
    return 0;
fail:
    free(json);
    bank_teardown(s);
    return -1;
}

static void *bank_thread_init(void *state, int thread, int nthreads)
{
    bank_thread *t = calloc(1, sizeof *t);
    if (t) {
        t->s = state;
        t->rng = scen_seed(t->s->seed ^ 0xBA4C, thread);
    }
    return t;
}

/* One command: a deposit, withdrawal or transfer of 1..1000. The timed
   part is evs_command_execute, retries and backoff included. */
static int bank_op(void *tstate, uint64_t *t0, uint64_t *t1, uint64_t *items,
                   char *err, size_t errsize)
{
    bank_thread *t = tstate;
    bank_state *s = t->s;
    bank_cmd c;
    evs_command_result res;
    bank_pick(&c, s->accounts, s->naccounts, below, &t->rng);
    c.cmd.tenant = s->tenant;
    *t0 = now_ns();
    evs_command_execute(&res, s->ex, &c.cmd);
    *t1 = now_ns();
    if (res.outcome == EVS_CMD_COMMITTED) {
        atomic_fetch_add(&s->events, (uint64_t)res.nevents);
        *items += res.nevents;
        if (c.kind == BANK_DEPOSIT)
            atomic_fetch_add(&s->deposited, c.amount);
        else if (c.kind == BANK_WITHDRAW)
            atomic_fetch_add(&s->withdrawn, c.amount);
    }
    return outcome_of(&res, c.cmd.name, err, errsize);
}

typedef struct account_replay {
    const char *name;
    bank_account acc;
} account_replay;

static int account_replay_one(void *arg, const evs_event *e, char *err,
                              size_t errsize)
{
    account_replay *r = arg;
    bank_account_apply(&r->acc, e);
    if (r->acc.balance < 0) {
        scen_msg(err, errsize, "%s went to %lld at version %lld", r->name,
                 (long long)r->acc.balance, (long long)e->stream_version);
        return -1;
    }
    return 0;
}

/* Every account replayed: no balance ever below zero, the total equal to
   the openings + committed deposits - committed withdrawals (transfers
   conserve money), and the tenant holding exactly the committed events. */
static int bank_check(void *state, bench_ctx *ctx, char *err, size_t errsize)
{
    bank_state *s = state;
    int64_t total = 0, want;
    for (int i = 0; i < s->naccounts; i++) {
        account_replay r = {s->accounts[i], {0, 0}};
        if (scen_replay_stream(s->db, s->tenant, s->accounts[i],
                               account_replay_one, &r, err, errsize) < 0)
            return -1;
        total += r.acc.balance;
    }
    want = (int64_t)s->naccounts * OPENING + atomic_load(&s->deposited) -
           atomic_load(&s->withdrawn);
    if (total != want) {
        scen_msg(err, errsize, "balances sum to %lld, expected %lld "
                 "(openings + committed deposits - withdrawals)",
                 (long long)total, (long long)want);
        return -1;
    }
    return scen_check_events(s->db, s->tenant, atomic_load(&s->events),
                             "setup and the committed commands", err, errsize);
}


static const int write_levels[] = {1, 8, 64, 256};
static const int quick_levels[] = {1, 8};

static const bench_target bank_targets[] = {
    {"single-stream commands/s", "seed 000/001 (EventCore PRD: 5-10 K ops/s)",
     BENCH_OPS_PER_S, 1, 5000, 0},
    {"command p95 (ms)", "seed 001 (EventCore PRD: P95 < 10 ms)",
     BENCH_P95_MS, 0, 10.0, 8},
    {"bank commands/s at 64 threads",
     "evstore goal (docs/PERFORMANCE.md, commands: >= 150 K/s)",
     BENCH_OPS_PER_S, 1, 150000, 64},
    {"bank command p95 at 64 threads (ms)",
     "evstore goal (docs/PERFORMANCE.md, commands: p95 <= 2 ms)",
     BENCH_P95_MS, 0, 2.0, 64},
};

const bench_scenario scen_bank = {
    .name = "bank",
    .title = "Single-stream financial commands",
    .what = "One operation is one bank command through the command executor "
            "(evs_command_execute, state cache on, default retry policy): "
            "45 % deposits, 45 % withdrawals (rejected when the balance is "
            "short), 10 % transfers between two accounts, amounts 1-1000, "
            "over 1000 accounts (100 with --quick) opened with 1000 each. "
            "Timed: the whole command, reads, decision, durable append and "
            "retries. Items: events written. Check: every account replayed "
            "never goes below zero, balances sum to the openings plus "
            "committed deposits minus committed withdrawals, and the tenant "
            "holds exactly the committed events.",
    .item = "events",
    SCEN_LEVELS(write_levels, quick_levels),
    SCEN_TARGETS(bank_targets),
    .setup = bank_setup,
    .thread_init = bank_thread_init,
    .op = bank_op,
    .thread_fini = scen_free,
    .check = bank_check,
    .teardown = bank_teardown,
};

/* ------------------------------------------------------------------ */
/* shop                                                                */
/* ------------------------------------------------------------------ */

#define PLENTY 100000000 /* stock of most products: never runs out */
#define SCARCE 50        /* stock of every SCARCE_EVERY-th product */
#define SCARCE_EVERY 50

typedef struct shop_state {
    evs_db *db;
    evs_executor *ex;
    char tenant[EVS_MAX_TENANT_LEN + 1];
    uint64_t seed;
    int nproducts, ncustomers;
    char (*products)[BANK_NAME_LEN];
    char (*customers)[BANK_NAME_LEN];
    int64_t *initial;            /* stock per product */
    _Atomic int64_t *reserved;   /* per product, by committed orders */
    _Atomic uint64_t events;
    _Atomic uint32_t instances;  /* thread_init calls: order names */
} shop_state;

typedef struct shop_thread {
    shop_state *s;
    uint64_t rng, seq;
    uint32_t instance;
} shop_thread;

static void shop_teardown(void *state)
{
    shop_state *s = state;
    if (!s)
        return;
    evs_executor_free(s->ex);
    free(s->products);
    free(s->customers);
    free(s->initial);
    free((void *)s->reserved);
    free(s);
}

static int shop_setup(void **state, bench_ctx *ctx, char *err, size_t errsize)
{
    shop_state *s = calloc(1, sizeof *s);
    const char **json = NULL;
    char (*stock)[40] = NULL;
    static const char joined[] = "{\"since\":\"2026-01-01\"}";
    if (!s) {
        scen_msg(err, errsize, "out of memory");
        return -1;
    }
    s->db = ctx->db;
    s->seed = ctx->seed;
    snprintf(s->tenant, sizeof s->tenant, "%s", ctx->tenant);
    s->nproducts = ctx->quick ? 200 : 1000;
    s->ncustomers = ctx->quick ? 200 : 1000;
    s->products = calloc((size_t)s->nproducts, sizeof *s->products);
    s->customers = calloc((size_t)s->ncustomers, sizeof *s->customers);
    s->initial = calloc((size_t)s->nproducts, sizeof *s->initial);
    s->reserved = calloc((size_t)s->nproducts, sizeof *s->reserved);
    stock = calloc((size_t)s->nproducts, sizeof *stock);
    json = calloc((size_t)(s->nproducts > s->ncustomers ? s->nproducts
                                                        : s->ncustomers),
                  sizeof *json);
    if (!s->products || !s->customers || !s->initial || !s->reserved ||
        !stock || !json) {
        scen_msg(err, errsize, "out of memory");
        goto fail;
    }
    /* a few scarce products, so that some orders are rejected for stock
       while most go through */
    for (int i = 0; i < s->nproducts; i++) {
        snprintf(s->products[i], BANK_NAME_LEN, "product-%04d", i);
        s->initial[i] = i % SCARCE_EVERY == SCARCE_EVERY - 1 ? SCARCE : PLENTY;
        snprintf(stock[i], sizeof stock[i], "{\"stock\":%lld}",
                 (long long)s->initial[i]);
        json[i] = stock[i];
    }
    if (create_streams(s->db, s->tenant, s->products, s->nproducts,
                       "ProductAdded", json, err, errsize) < 0)
        goto fail;
    for (int i = 0; i < s->ncustomers; i++) {
        snprintf(s->customers[i], BANK_NAME_LEN, "customer-%04d", i);
        json[i] = joined;
    }
    if (create_streams(s->db, s->tenant, s->customers, s->ncustomers,
                       "CustomerRegistered", json, err, errsize) < 0)
        goto fail;
    s->events = (uint64_t)(s->nproducts + s->ncustomers);
    if (!(s->ex = executor_new(s->db, err, errsize)))
        goto fail;
    free(json);
    free(stock);
    *state = s;
    return 0;
fail:
    free(json);
    free(stock);
    shop_teardown(s);
    return -1;
}

static void *shop_thread_init(void *state, int thread, int nthreads)
{
    shop_thread *t = calloc(1, sizeof *t);
    if (t) {
        t->s = state;
        t->instance = atomic_fetch_add(&t->s->instances, 1);
        t->rng = scen_seed(t->s->seed ^ 0x540B, (int)t->instance);
    }
    return t;
}

/* One order of 2-5 distinct products, 1-3 of each, by a random customer.
   Timed: evs_command_execute. */
static int shop_op(void *tstate, uint64_t *t0, uint64_t *t1, uint64_t *items,
                   char *err, size_t errsize)
{
    shop_thread *t = tstate;
    shop_state *s = t->s;
    char name[BANK_NAME_LEN];
    shop_order o;
    evs_command_result res;
    snprintf(name, sizeof name, "order-%u-%llu", t->instance,
             (unsigned long long)t->seq++);
    shop_pick(&o, name, s->customers, s->ncustomers, s->products, s->nproducts,
              below, &t->rng);
    o.cmd.tenant = s->tenant;
    *t0 = now_ns();
    evs_command_execute(&res, s->ex, &o.cmd);
    *t1 = now_ns();
    if (res.outcome == EVS_CMD_COMMITTED) {
        atomic_fetch_add(&s->events, (uint64_t)res.nevents);
        *items += res.nevents;
        for (int i = 0; i < o.nlines; i++)
            atomic_fetch_add(&s->reserved[o.product[i]], o.qty[i]);
    }
    return outcome_of(&res, o.cmd.name, err, errsize);
}

typedef struct product_replay {
    const char *name;
    shop_product p;
    int64_t reserved;
} product_replay;

static int product_replay_one(void *arg, const evs_event *e, char *err,
                              size_t errsize)
{
    product_replay *r = arg;
    shop_product_apply(&r->p, e);
    if (strcmp(e->type, "StockReserved") == 0)
        r->reserved += (int64_t)json_uint(e->data, "\"qty\":");
    if (r->p.stock < 0) {
        scen_msg(err, errsize, "%s oversold: stock %lld at version %lld",
                 r->name, (long long)r->p.stock,
                 (long long)e->stream_version);
        return -1;
    }
    return 0;
}

/* Every product replayed: stock never below zero, reservations equal to
   the committed order lines; the tenant holds exactly the committed
   events. */
static int shop_check(void *state, bench_ctx *ctx, char *err, size_t errsize)
{
    shop_state *s = state;
    for (int i = 0; i < s->nproducts; i++) {
        product_replay r = {s->products[i], {0, 0}, 0};
        if (scen_replay_stream(s->db, s->tenant, s->products[i],
                               product_replay_one, &r, err, errsize) < 0)
            return -1;
        if (r.reserved != atomic_load(&s->reserved[i]) ||
            r.p.stock != s->initial[i] - r.reserved) {
            scen_msg(err, errsize, "%s: %lld reserved in the store (stock "
                     "%lld of %lld), %lld by committed orders",
                     s->products[i], (long long)r.reserved,
                     (long long)r.p.stock,
                     (long long)s->initial[i],
                     (long long)atomic_load(&s->reserved[i]));
            return -1;
        }
    }
    return scen_check_events(s->db, s->tenant, atomic_load(&s->events),
                             "setup and the committed orders", err, errsize);
}

static const bench_target shop_targets[] = {
    {"multi-stream commands/s", "seed 000/001 (EventCore PRD: 2-5 K ops/s)",
     BENCH_OPS_PER_S, 1, 2000, 0},
    {"order p95 (ms)", "seed 001 (EventCore PRD: P95 < 10 ms)",
     BENCH_P95_MS, 0, 10.0, 8},
    {"orders/s", "evstore goal (docs/PERFORMANCE.md, commands: >= 50 K/s)",
     BENCH_OPS_PER_S, 1, 50000, 0},
};

const bench_scenario scen_shop = {
    .name = "shop",
    .title = "Multi-stream e-commerce orders",
    .what = "One operation is one order through the command executor: it "
            "reads the new order's stream and 2-5 distinct product streams "
            "(1000 products, 200 with --quick; every 50th has only 50 in "
            "stock), reserves 1-3 of each (StockReserved on the product), "
            "writes OrderPlaced to the order and OrderRecorded to the "
            "customer's stream (appended without a read), all in one atomic "
            "multi-stream append; out of stock is a rejection. Timed: the "
            "whole command with retries. Items: events written. Check: no "
            "stock below zero, each product's reservations equal the "
            "committed order lines, the tenant holds exactly the committed "
            "events.",
    .item = "events",
    SCEN_LEVELS(write_levels, quick_levels),
    SCEN_TARGETS(shop_targets),
    .setup = shop_setup,
    .thread_init = shop_thread_init,
    .op = shop_op,
    .thread_fini = scen_free,
    .check = shop_check,
    .teardown = shop_teardown,
};
