/*
 * gen.c -- the data generator (gen.h): realistic multi-tenant events,
 * deterministic for a seed, in constant memory whatever the count.
 *
 * How the events come out. The generator works in bursts, each one
 * tenant's activity over a stretch of time:
 *
 *     burst (tenant-00)          burst (tenant-03)     burst (tenant-00)
 *     [Order-17: 3 ev][Account-4: 12 ev][User-9: 1]... [Cart-80: 2 ev]...
 *      \__ part: a run of consecutive events of one live aggregate __/
 *
 * Every tenant keeps a pool of live aggregates (more for the big
 * tenants). A burst visits slots of its tenant's pool in a random order,
 * each at most once, and writes a run of events of the slot's aggregate;
 * a slot whose aggregate is finished (it reached its planned length and
 * wrote its finalize event) gets a new aggregate. So several aggregates
 * of a tenant are alive at once, a long stream is written over many
 * bursts (months apart), and -- since a stream occurs once per burst -- a
 * burst maps onto multi-stream appends whose part order is the generation
 * order: recorded_at increases in log order.
 *
 * Memory is the pools (a few hundred bytes per live aggregate) and fixed
 * buffers; nothing grows with the number of events.
 *
 * Fairness. Tenants are picked per burst at random by weight, but only
 * among tenants not ahead of their share, so the 80/20 split holds to
 * within a burst at any count, not only on average.
 *
 * Payload sizes. A size is drawn first (the bucket, then uniformly in it);
 * the type's fields are written while they fit, line items (orders,
 * carts, invoices, ledger entries...) fill large payloads, and a "notes"
 * string pads the object to the exact size.
 */
#include "gen.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* PRNG: xoshiro256** seeded by splitmix64                             */
/* ------------------------------------------------------------------ */

typedef struct rng {
    uint64_t s[4];
} rng;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static void rng_seed(rng *r, uint64_t seed)
{
    int i;

    for (i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [lo, hi]. The modulo bias (< 2^-40 here) does not matter. */
static uint64_t rng_range(rng *r, uint64_t lo, uint64_t hi)
{
    return lo + rng_next(r) % (hi - lo + 1);
}

/* Uniform in [0, 1). */
static double rng_unit(rng *r)
{
    return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* 1 with probability pct/100. */
static int rng_pct(rng *r, unsigned pct) { return rng_next(r) % 100 < pct; }

/* ------------------------------------------------------------------ */
/* Word lists                                                          */
/* ------------------------------------------------------------------ */

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const char *const first_names[] = {
    "Anna", "Ben", "Clara", "David", "Elena", "Felix", "Greta", "Hugo",
    "Ines", "Jonas", "Karin", "Lukas", "Maria", "Nils", "Olga", "Paul",
    "Quinn", "Rosa", "Stefan", "Tara", "Umar", "Vera", "Wei", "Yuki"};
static const char *const last_names[] = {
    "Adler", "Becker", "Costa", "Dubois", "Eriksson", "Fischer", "Garcia",
    "Hoffmann", "Ivanova", "Jensen", "Kowalski", "Lehmann", "Moreau",
    "Nakamura", "Olsen", "Petrov", "Rossi", "Schmidt", "Tanaka", "Weber",
    "Novak", "Silva", "Keller", "Horvat"};
static const char *const streets[] = {
    "Main Street", "Hauptstrasse", "Rue de la Paix", "Via Roma",
    "Oak Avenue", "Bahnhofstrasse", "Kings Road", "Market Square",
    "Elm Street", "Ringstrasse", "Calle Mayor", "Harbour Lane",
    "Mill Road", "Station Road", "Lindenweg", "Park Avenue"};

typedef struct region {
    const char *name, *city, *country, *currency, *locale;
} region;

static const region regions[] = {
    {"eu-west", "Dublin", "IE", "EUR", "en-IE"},
    {"eu-central", "Frankfurt", "DE", "EUR", "de-DE"},
    {"eu-north", "Stockholm", "SE", "SEK", "sv-SE"},
    {"eu-south", "Milan", "IT", "EUR", "it-IT"},
    {"us-east", "New York", "US", "USD", "en-US"},
    {"us-west", "Seattle", "US", "USD", "en-US"},
    {"ap-northeast", "Tokyo", "JP", "JPY", "ja-JP"},
    {"ap-southeast", "Singapore", "SG", "SGD", "en-SG"}};
/* Where the customers are: most in Europe. */
static const unsigned region_weights[] = {20, 25, 8, 10, 15, 8, 7, 7};

static const char *const adjectives[] = {
    "Wireless", "Ergonomic", "Compact", "Premium", "Organic", "Stainless",
    "Portable", "Vintage", "Smart", "Recycled", "Heavy-Duty", "Classic",
    "Ultralight", "Waterproof", "Modular", "Handmade"};
static const char *const nouns[] = {
    "Mouse", "Keyboard", "Desk Lamp", "Backpack", "Coffee Grinder",
    "Water Bottle", "Headphones", "Office Chair", "Notebook", "Monitor Arm",
    "Yoga Mat", "Kettle", "Power Bank", "Sneakers", "Umbrella", "Toolbox"};
static const char *const categories[] = {
    "electronics", "office", "kitchen", "outdoor", "fashion", "sports",
    "home", "tools", "books", "garden"};
static const char *const agents[] = {
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Safari/17.5",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5) Mobile/15E148",
    "shop-app/4.12.0 (Android 14; Pixel 8)",
    "billing-worker/2.3.1", "erp-sync/1.8.4 (batch)",
    "partner-api-client/0.9 (python-requests/2.32)"};
static const char *const words[] = {
    "customer", "requested", "delivery", "before", "noon", "please", "call",
    "on", "arrival", "gift", "wrap", "the", "package", "and", "leave", "it",
    "with", "neighbour", "if", "nobody", "is", "home", "invoice", "should",
    "mention", "purchase", "order", "number", "reference", "agreed", "by",
    "phone", "discount", "applied", "for", "loyal", "account", "manager",
    "approved", "exception", "priority", "handling", "fragile", "items",
    "inside", "contact", "support", "regarding", "missing", "parts",
    "replacement", "shipped", "separately", "warehouse", "confirmed",
    "stock", "level", "after", "audit", "note", "from", "sales", "team"};
static const char *const carriers[] = {"DHL", "UPS", "FedEx", "GLS", "DPD",
                                       "PostNL"};
static const char *const pay_methods[] = {"card", "sepa", "paypal",
                                          "invoice", "apple_pay"};

/* ------------------------------------------------------------------ */
/* Aggregates and their event types                                    */
/* ------------------------------------------------------------------ */

enum { K_USER, K_ORDER, K_PRODUCT, K_ACCOUNT, K_CART, K_INVOICE, NKINDS };

/* A planned stream length: with probability pct %, uniform in [lo, hi]. */
typedef struct len_bucket {
    unsigned pct;
    uint32_t lo, hi;
} len_bucket;

typedef struct kind_info {
    const char *name;        /* aggregate = stream category */
    const char *id_prefix;   /* of its business id */
    unsigned weight;         /* share of new aggregates */
    const char *create, *finalize;
    const char *modify[5];   /* NULL-terminated when fewer */
    len_bucket len[5];       /* pct summing to 100 */
    const char *snapshot;    /* schema, NULL: no snapshots */
    const char *source;      /* the service writing its events */
} kind_info;

/*
 * Stream lengths: most streams short, a few long. Accounts (ledgers) and
 * products (price and stock changes) live longest; carts and invoices
 * are short. No stream exceeds 1000 events.
 */
static const kind_info kinds[NKINDS] = {
    {"User", "USR", 15, "UserRegistered", "UserDeactivated",
     {"UserEmailChanged", "UserProfileUpdated", "UserAddressChanged",
      "UserLoggedIn", "UserPreferencesChanged"},
     {{30, 1, 3}, {45, 4, 20}, {20, 21, 100}, {5, 101, 500}, {0, 0, 0}},
     "UserState.v1", "identity-service"},
    {"Order", "ORD", 30, "OrderPlaced", "OrderShipped",
     {"OrderItemAdded", "OrderItemRemoved", "OrderPaymentAuthorized",
      "OrderShippingAddressChanged", NULL},
     {{5, 1, 1}, {35, 2, 5}, {45, 6, 20}, {13, 21, 100}, {2, 101, 300}},
     "OrderState.v1", "order-service"},
    {"Product", "PRD", 13, "ProductCreated", "ProductDiscontinued",
     {"ProductPriceChanged", "ProductStockAdjusted",
      "ProductDescriptionUpdated", NULL, NULL},
     {{50, 1, 10}, {40, 11, 100}, {10, 101, 1000}, {0, 0, 0}, {0, 0, 0}},
     NULL, "catalog-service"},
    {"Account", "ACC", 12, "AccountOpened", "AccountClosed",
     {"MoneyDeposited", "MoneyWithdrawn", "TransferSent", "TransferReceived",
      "InterestApplied"},
     {{35, 1, 10}, {45, 11, 100}, {15, 101, 500}, {5, 501, 1000}, {0, 0, 0}},
     "AccountState.v1", "ledger-service"},
    {"Cart", "CRT", 20, "CartCreated", "CartCheckedOut",
     {"CartItemAdded", "CartItemRemoved", "CartItemQuantityChanged", NULL,
      NULL},
     {{20, 1, 1}, {60, 2, 10}, {20, 11, 40}, {0, 0, 0}, {0, 0, 0}},
     NULL, "cart-service"},
    {"Invoice", "INV", 15, "InvoiceIssued", "InvoicePaid",
     {"InvoiceLineAdded", "InvoicePaymentReceived", "InvoiceReminderSent",
      NULL, NULL},
     {{15, 1, 1}, {60, 2, 5}, {25, 6, 20}, {0, 0, 0}, {0, 0, 0}},
     NULL, "billing-service"},
};

#define MAX_STREAM_LEN 1000

typedef struct agg {
    int live;
    unsigned kind;
    uint64_t num;       /* the number in the stream name */
    int64_t version;    /* of its last event; -1 before the first */
    uint32_t length;    /* planned events */
    uint64_t burst;     /* the last burst it took part in */
    uint64_t customer;  /* CUS-n it belongs to (products: none) */
    uint64_t product;   /* the product last referenced */
    uint32_t region;
    int64_t amount;     /* cents: balance, total, price */
    uint32_t count;     /* items, stock, transactions */
    char stream[32];
} agg;

typedef struct tenant {
    char name[24];
    double share;       /* of the events */
    uint64_t events;
    uint32_t npool;
    agg *pool;
    uint32_t *order;    /* slot permutation for the current burst */
    uint64_t customers, products; /* ids referenced: 1..n */
} tenant;

/* ------------------------------------------------------------------ */
/* The generator                                                       */
/* ------------------------------------------------------------------ */

#define PAYLOAD_CAP (12 * 1024)
#define META_CAP 1024
#define SNAP_CAP 2048
#define CORPUS_LEN (16 * 1024)
#define HOUR_US INT64_C(3600000000)
#define DAY_US (24 * HOUR_US)

static const uint32_t bucket_lo[GEN_SIZE_BUCKETS] = {GEN_SIZE_0_MIN,
                                                    GEN_SIZE_1_MIN,
                                                    GEN_SIZE_2_MIN};
static const uint32_t bucket_hi[GEN_SIZE_BUCKETS] = {GEN_SIZE_0_MAX,
                                                    GEN_SIZE_1_MAX,
                                                    GEN_SIZE_2_MAX};

struct gen {
    gen_config cfg;
    rng r;
    gen_stats st;
    tenant *tenants;
    uint64_t kind_seq[NKINDS];
    uint64_t seq;            /* events generated */

    /* The current burst and part. */
    uint64_t burst;
    tenant *bt;
    uint64_t burst_left;
    uint32_t burst_slot;     /* slots of bt->order used so far */
    agg *pa;                 /* the part's aggregate */
    uint32_t part_left;
    evs_uuid correlation, last_id;

    /* Time: weight per hour of the week, walked hour by hour. */
    uint32_t hour_w[168];
    int64_t hour;            /* absolute hour (since the epoch) */
    int64_t last_hour;
    double hour_acc, step;
    int64_t last_us;

    /* Stream lengths now: hist[n] streams of n events. */
    uint64_t hist[MAX_STREAM_LEN + 1];

    /* The event handed out. */
    agg *cur;
    char payload[PAYLOAD_CAP + 64];
    char meta[META_CAP];
    char tagbuf[3][64];
    const char *tags[3];
    char snap[SNAP_CAP];
    size_t snap_len;
    char corpus[CORPUS_LEN];
};

void gen_config_init(gen_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->events = 1000000;
    cfg->tenants = 10;
    cfg->seed = 1;
    cfg->end_us = INT64_C(1793491200) * 1000000; /* 2026-11-01T00:00:00Z */
    cfg->months = 6;
    cfg->snapshot_every = 100;
    cfg->batch_events = 1000;
    cfg->progress = 0;
}

/* Weight of an hour of the week (0 = Monday 00:00 UTC): office hours
 * weigh most, with a dip at lunch; evenings and weekends a little. */
static uint32_t hour_weight(int wday, int h)
{
    static const uint32_t weekday[24] = {1, 1, 1, 1, 1, 1, 4, 4,
                                         28, 32, 36, 36, 22, 30, 36, 36,
                                         32, 26, 6, 6, 6, 6, 2, 2};
    static const uint32_t weekend[24] = {1, 1, 1, 1, 1, 1, 1, 1,
                                         4, 4, 4, 4, 4, 4, 4, 4,
                                         4, 4, 4, 4, 2, 2, 2, 2};

    return wday < 5 ? weekday[h] : weekend[h];
}

static uint32_t weight_of_hour(const gen *g, int64_t hour)
{
    int64_t day = hour / 24;

    /* 1970-01-01 was a Thursday (3 with Monday = 0). */
    return g->hour_w[((day + 3) % 7) * 24 + hour % 24];
}

int gen_is_business_hours(int64_t us)
{
    int64_t day = us / DAY_US;
    int wday = (int)((day + 3) % 7);
    int h = (int)((us % DAY_US) / HOUR_US);

    return wday < 5 && h >= 8 && h < 18;
}

int gen_size_bucket(size_t n)
{
    int b;

    for (b = 0; b < GEN_SIZE_BUCKETS; b++)
        if (n >= bucket_lo[b] && n <= bucket_hi[b])
            return b;
    return -1;
}

static void build_corpus(gen *g)
{
    size_t n = 0, sentence = 0;

    while (n < CORPUS_LEN - 1) {
        const char *w = words[rng_next(&g->r) % NELEM(words)];
        size_t wl = strlen(w);

        if (n + wl + 2 >= CORPUS_LEN - 32)
            break;
        if (n > 0)
            g->corpus[n++] = ' ';
        memcpy(g->corpus + n, w, wl);
        if (sentence == 0 && g->corpus[n] >= 'a')
            g->corpus[n] -= 'a' - 'A';
        n += wl;
        if (++sentence >= 6 + rng_next(&g->r) % 10) {
            g->corpus[n++] = '.';
            sentence = 0;
        }
    }
    while (n < CORPUS_LEN)
        g->corpus[n++] = ' ';
}

static void tenants_free(gen *g)
{
    uint32_t i;

    if (g->tenants == NULL)
        return;
    for (i = 0; i < g->cfg.tenants; i++) {
        free(g->tenants[i].pool);
        free(g->tenants[i].order);
    }
    free(g->tenants);
}

/*
 * Shares: the first fifth of the tenants (at least one) share 80 % of the
 * events, the rest 20 %; within each group a Zipf-like 1/rank split, so
 * the tenants differ in size as real ones do. One tenant takes all.
 */
static void tenant_shares(gen *g)
{
    uint32_t n = g->cfg.tenants, top = (n + 4) / 5, i;
    double sum_top = 0, sum_rest = 0;

    if (top >= n) {
        for (i = 0; i < n; i++)
            sum_top += 1.0 / (i + 1);
        for (i = 0; i < n; i++)
            g->tenants[i].share = 1.0 / (i + 1) / sum_top;
        return;
    }
    for (i = 0; i < top; i++)
        sum_top += 1.0 / (i + 1);
    for (i = top; i < n; i++)
        sum_rest += 1.0 / (i - top + 1);
    for (i = 0; i < top; i++)
        g->tenants[i].share = 0.8 / (i + 1) / sum_top;
    for (i = top; i < n; i++)
        g->tenants[i].share = 0.2 / (i - top + 1) / sum_rest;
}

int gen_new(gen **out, const gen_config *cfg, char *err, size_t errsize)
{
    gen *g;
    uint32_t i, j;
    int64_t start_us, end_hour;
    double total_w = 0;

    *out = NULL;
    if (cfg->events < 1) {
        snprintf(err, errsize, "the number of events must be at least 1");
        return EVS_EINVAL;
    }
    if (cfg->tenants < 1 || cfg->tenants > GEN_MAX_TENANTS) {
        snprintf(err, errsize, "the number of tenants must be 1..%d, not %"
                 PRIu32, GEN_MAX_TENANTS, cfg->tenants);
        return EVS_EINVAL;
    }
    if (cfg->months < 1 || cfg->months > GEN_MAX_MONTHS) {
        snprintf(err, errsize, "months must be 1..%d, not %" PRIu32,
                 GEN_MAX_MONTHS, cfg->months);
        return EVS_EINVAL;
    }
    if (cfg->batch_events < 1 || cfg->batch_events > GEN_MAX_BATCH) {
        snprintf(err, errsize, "events per append must be 1..%d, not %"
                 PRIu32, GEN_MAX_BATCH, cfg->batch_events);
        return EVS_EINVAL;
    }
    start_us = cfg->end_us - (int64_t)cfg->months * 2629746 * INT64_C(1000000);
    if (start_us <= 0) {
        snprintf(err, errsize, "the time span must end after 1970 + %" PRIu32
                 " months", cfg->months);
        return EVS_EINVAL;
    }
    if ((g = calloc(1, sizeof *g)) == NULL ||
        (g->tenants = calloc(cfg->tenants, sizeof *g->tenants)) == NULL) {
        free(g);
        snprintf(err, errsize, "out of memory");
        return EVS_ENOMEM;
    }
    g->cfg = *cfg;
    rng_seed(&g->r, cfg->stream_base == 0
                        ? cfg->seed
                        : cfg->seed ^
                              (cfg->stream_base * 0x9e3779b97f4a7c15u));
    build_corpus(g);
    tenant_shares(g);
    for (i = 0; i < cfg->tenants; i++) {
        tenant *t = &g->tenants[i];
        double s = t->share;

        snprintf(t->name, sizeof t->name, "tenant-%02" PRIu32, i);
        /* Bigger tenants have more going on at once. */
        t->npool = 12 + (uint32_t)(s * 600);
        if (t->npool > 256)
            t->npool = 256;
        t->customers = 500 + (uint64_t)(s * 200000);
        t->products = 100 + (uint64_t)(s * 20000);
        t->pool = calloc(t->npool, sizeof *t->pool);
        t->order = calloc(t->npool, sizeof *t->order);
        if (t->pool == NULL || t->order == NULL) {
            tenants_free(g);
            free(g);
            snprintf(err, errsize, "out of memory");
            return EVS_ENOMEM;
        }
        for (j = 0; j < t->npool; j++)
            t->order[j] = j;
    }

    for (i = 0; i < 7; i++)
        for (j = 0; j < 24; j++)
            g->hour_w[i * 24 + j] = hour_weight((int)i, (int)j);
    g->hour = start_us / HOUR_US;
    end_hour = (cfg->end_us - 1) / HOUR_US;
    g->last_hour = end_hour;
    for (int64_t h = g->hour; h <= end_hour; h++)
        total_w += weight_of_hour(g, h);
    g->step = total_w / (double)cfg->events;
    g->hour_acc = 0;
    g->last_us = 0;

    g->st.tenants = cfg->tenants;
    g->st.stream_len_min = 0;
    g->st.first_us = 0;
    *out = g;
    return 0;
}

void gen_free(gen *g)
{
    if (g == NULL)
        return;
    tenants_free(g);
    free(g);
}

const gen_stats *gen_get_stats(const gen *g) { return &g->st; }

/* ------------------------------------------------------------------ */
/* Time and ids                                                        */
/* ------------------------------------------------------------------ */

/*
 * The next recorded_at: the events are spread over the span in
 * proportion to the hour weights (the inverse of the cumulative weight),
 * each step uniform in [0.5, 1.5) of the mean, strictly increasing.
 */
static int64_t next_time(gen *g)
{
    uint32_t w = weight_of_hour(g, g->hour);
    int64_t t;

    g->hour_acc += g->step * (0.5 + rng_unit(&g->r));
    while (g->hour_acc >= w) {
        if (g->hour >= g->last_hour) {
            g->hour_acc = w * 0.999999;
            break;
        }
        g->hour_acc -= w;
        g->hour++;
        w = weight_of_hour(g, g->hour);
    }
    t = g->hour * HOUR_US + (int64_t)(g->hour_acc / w * (double)HOUR_US);
    if (t <= g->last_us)
        t = g->last_us + 1;
    g->last_us = t;
    return t;
}

/* A UUIDv7 layout: 48-bit Unix ms, version, 12 random bits, variant, 62
 * bits. For event ids the low 40 of those are the event's sequence
 * number, so ids never collide within a generation; the rest is random,
 * so another seed gives other ids. */
#define SEQ_MASK ((UINT64_C(1) << 40) - 1)

static void make_uuid(gen *g, evs_uuid *u, int64_t us, int with_seq)
{
    uint64_t ms = (uint64_t)(us / 1000), a = rng_next(&g->r);
    uint64_t b = rng_next(&g->r);
    int i;

    if (with_seq)
        b = (b & ~SEQ_MASK) | (g->seq & SEQ_MASK);
    for (i = 0; i < 6; i++)
        u->bytes[i] = (uint8_t)(ms >> (40 - 8 * i));
    u->bytes[6] = (uint8_t)(0x70 | ((a >> 8) & 0x0f));
    u->bytes[7] = (uint8_t)a;
    u->bytes[8] = (uint8_t)(0x80 | ((b >> 56) & 0x3f));
    for (i = 9; i < 16; i++)
        u->bytes[i] = (uint8_t)(b >> (8 * (15 - i)));
}

/* ------------------------------------------------------------------ */
/* A small JSON writer with roll-back                                  */
/* ------------------------------------------------------------------ */

/*
 * Values are our own ASCII words and numbers: nothing needs escaping.
 * A field that would take the object past `limit` is taken back (jw_end
 * returns 0), so the object never outgrows its target size.
 */
typedef struct jw {
    char *p;
    size_t len, cap, limit;
    int nfields;
    size_t mark;
    int mark_n;
} jw;

static void jw_put(jw *w, const char *s, size_t n)
{
    if (w->len + n > w->cap)
        n = w->cap - w->len; /* cannot happen: limits are far below cap */
    memcpy(w->p + w->len, s, n);
    w->len += n;
}

static void jw_puts(jw *w, const char *s) { jw_put(w, s, strlen(s)); }

static void jw_printf(jw *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void jw_printf(jw *w, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(w->p + w->len, w->cap - w->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        w->len += (size_t)n < w->cap - w->len ? (size_t)n
                                              : w->cap - w->len - 1;
}

/* Start a field: remember where it began, write the key. */
static void jw_key(jw *w, const char *key)
{
    w->mark = w->len;
    w->mark_n = w->nfields;
    if (w->nfields++ > 0)
        jw_put(w, ",", 1);
    jw_put(w, "\"", 1);
    jw_puts(w, key);
    jw_put(w, "\":", 2);
}

/* End a field: keep it if it fits, else take it back. */
static int jw_end(jw *w)
{
    if (w->len <= w->limit)
        return 1;
    w->len = w->mark;
    w->nfields = w->mark_n;
    return 0;
}

static int f_str(jw *w, const char *key, const char *val)
{
    jw_key(w, key);
    jw_put(w, "\"", 1);
    jw_puts(w, val);
    jw_put(w, "\"", 1);
    return jw_end(w);
}

static int f_id(jw *w, const char *key, const char *prefix, uint64_t n)
{
    jw_key(w, key);
    jw_printf(w, "\"%s-%06" PRIu64 "\"", prefix, n);
    return jw_end(w);
}

static int f_int(jw *w, const char *key, int64_t v)
{
    jw_key(w, key);
    jw_printf(w, "%" PRId64, v);
    return jw_end(w);
}

static void put_money(jw *w, int64_t cents)
{
    const char *sign = cents < 0 ? "-" : "";

    if (cents < 0)
        cents = -cents;
    jw_printf(w, "%s%" PRId64 ".%02d", sign, cents / 100, (int)(cents % 100));
}

static int f_money(jw *w, const char *key, int64_t cents)
{
    jw_key(w, key);
    put_money(w, cents);
    return jw_end(w);
}

static int f_uuid(jw *w, const char *key, const evs_uuid *u)
{
    char s[37];

    evs_uuid_format(s, u);
    return f_str(w, key, s);
}

static int f_time(jw *w, const char *key, int64_t us)
{
    time_t secs = (time_t)(us / 1000000);
    struct tm tm;
    char s[40];

    gmtime_r(&secs, &tm);
    snprintf(s, sizeof s, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return f_str(w, key, s);
}

/* ------------------------------------------------------------------ */
/* Payloads                                                            */
/* ------------------------------------------------------------------ */

static const char *pick(rng *r, const char *const *v, size_t n)
{
    return v[rng_next(r) % n];
}

#define PICK(r, v) pick(r, v, NELEM(v))

static uint32_t pick_region(rng *r)
{
    unsigned total = 0, x, i;

    for (i = 0; i < NELEM(region_weights); i++)
        total += region_weights[i];
    x = (unsigned)(rng_next(r) % total);
    for (i = 0; i < NELEM(region_weights) - 1; i++) {
        if (x < region_weights[i])
            return i;
        x -= region_weights[i];
    }
    return i;
}

/* A customer's name, the same every time (a hash of the number). */
static void customer_name(char *out, size_t n, uint64_t c, int with_last)
{
    uint64_t h = c * 0x9e3779b97f4a7c15u;

    if (with_last)
        snprintf(out, n, "%s %s", first_names[(h >> 20) % NELEM(first_names)],
                 last_names[(h >> 40) % NELEM(last_names)]);
    else
        snprintf(out, n, "%s", first_names[(h >> 20) % NELEM(first_names)]);
}

static void product_name(char *out, size_t n, uint64_t p)
{
    uint64_t h = p * 0xd1b54a32d192ed03u;

    snprintf(out, n, "%s %s", adjectives[(h >> 17) % NELEM(adjectives)],
             nouns[(h >> 37) % NELEM(nouns)]);
}

/* A product's list price in cents, the same every time. */
static int64_t product_price(uint64_t p)
{
    uint64_t h = p * 0x94d049bb133111ebu;

    return 199 + (int64_t)((h >> 24) % 49800);
}

static int f_address(gen *g, jw *w, const char *key, const agg *a)
{
    const region *rg = &regions[a->region];

    jw_key(w, key);
    jw_printf(w, "{\"street\":\"%s %u\",\"city\":\"%s\",\"postalCode\":\"%05u\","
              "\"country\":\"%s\"}", PICK(&g->r, streets),
              (unsigned)rng_range(&g->r, 1, 240), rg->city,
              (unsigned)rng_range(&g->r, 1000, 99999), rg->country);
    return jw_end(w);
}

/* One line item: a product, quantity and price. */
static void put_item(gen *g, jw *w, const agg *a, int line)
{
    uint64_t p = rng_range(&g->r, 1, g->bt->products);
    char name[64];

    product_name(name, sizeof name, p);
    jw_printf(w, "{\"line\":%d,\"sku\":\"SKU-%06" PRIu64 "\",\"productId\":"
              "\"PRD-%06" PRIu64 "\",\"name\":\"%s\",\"category\":\"%s\","
              "\"quantity\":%u,\"unitPrice\":", line, p * 7 + 100000, p, name,
              categories[p % NELEM(categories)],
              (unsigned)rng_range(&g->r, 1, 5));
    put_money(w, product_price(p));
    jw_printf(w, ",\"currency\":\"%s\"}", regions[a->region].currency);
}

/* One ledger entry of an account statement. */
static void put_entry(gen *g, jw *w, const agg *a, int line)
{
    jw_printf(w, "{\"line\":%d,\"booking\":\"BK-%010" PRIu64 "\","
              "\"counterparty\":\"DE%02u%016" PRIu64 "\",\"amount\":", line,
              rng_next(&g->r) % 10000000000u, (unsigned)rng_range(&g->r, 10, 99),
              rng_next(&g->r) % 10000000000000000u);
    put_money(w, (int64_t)rng_range(&g->r, 100, 500000) - 150000);
    jw_printf(w, ",\"purpose\":\"%s %s\"}", PICK(&g->r, words),
              PICK(&g->r, words));
}

/* A key -> array field filled with items while they fit, up to fill
 * bytes of the object (at least one item, or none at all). */
static int f_items(gen *g, jw *w, const char *key, const agg *a,
                   size_t fill, int entries)
{
    size_t item_mark;
    int n = 0;

    jw_key(w, key);
    jw_put(w, "[", 1);
    for (;;) {
        item_mark = w->len;
        if (n > 0)
            jw_put(w, ",", 1);
        if (entries)
            put_entry(g, w, a, n + 1);
        else
            put_item(g, w, a, n + 1);
        if (w->len + 1 > w->limit) { /* +1: the "]" */
            w->len = item_mark;
            break;
        }
        n++;
        if (w->len + 1 >= fill)
            break;
    }
    if (n == 0) {
        w->len = w->mark;
        w->nfields = w->mark_n;
        return 0;
    }
    jw_put(w, "]", 1);
    return jw_end(w);
}

static const char *event_type(gen *g, const agg *a)
{
    const kind_info *k = &kinds[a->kind];
    size_t nmod = 0;

    if (a->version == 0)
        return k->create;
    if ((uint32_t)a->version == a->length - 1)
        return k->finalize;
    while (nmod < NELEM(k->modify) && k->modify[nmod] != NULL)
        nmod++;
    return k->modify[rng_next(&g->r) % nmod];
}

/*
 * The fields of event `type` of aggregate a (already at the event's
 * version), and its tags. The aggregate's state (amount, count...)
 * changes with the event as its real counterpart's would.
 */
static void write_fields(gen *g, jw *w, agg *a, const char *type,
                         int64_t now, size_t target)
{
    const region *rg = &regions[a->region];
    char name[64];
    int big = target >= GEN_SIZE_1_MIN;
    size_t fill = big ? target * (55 + rng_next(&g->r) % 30) / 100 : target;
    int64_t cents;

    switch (a->kind) {
    case K_USER:
        f_id(w, "userId", "USR", a->num);
        f_id(w, "customerId", "CUS", a->customer);
        customer_name(name, sizeof name, a->customer, 1);
        if (strcmp(type, "UserRegistered") == 0) {
            char email[96];

            customer_name(email, sizeof email, a->customer, 0);
            for (char *c = email; *c; c++)
                if (*c >= 'A' && *c <= 'Z')
                    *c += 'a' - 'A';
            f_str(w, "name", name);
            jw_key(w, "email");
            jw_printf(w, "\"%s.%" PRIu64 "@example.com\"", email, a->customer);
            jw_end(w);
            f_str(w, "locale", rg->locale);
            f_address(g, w, "address", a);
        } else if (strcmp(type, "UserEmailChanged") == 0) {
            jw_key(w, "newEmail");
            jw_printf(w, "\"user%" PRIu64 ".%u@example.org\"", a->customer,
                      (unsigned)a->version);
            jw_end(w);
            f_str(w, "verified", rng_pct(&g->r, 80) ? "yes" : "pending");
        } else if (strcmp(type, "UserAddressChanged") == 0) {
            f_address(g, w, "address", a);
        } else if (strcmp(type, "UserLoggedIn") == 0) {
            f_str(w, "method", rng_pct(&g->r, 70) ? "password" : "sso");
            jw_key(w, "ip");
            jw_printf(w, "\"203.0.%u.%u\"", (unsigned)rng_range(&g->r, 0, 255),
                      (unsigned)rng_range(&g->r, 1, 254));
            jw_end(w);
        } else {
            f_str(w, "name", name);
            f_str(w, "locale", rg->locale);
            f_str(w, "newsletter", rng_pct(&g->r, 40) ? "weekly" : "never");
        }
        a->count++;
        f_time(w, "at", now);
        if (big)
            f_items(g, w, "recentPurchases", a, fill, 0);
        break;

    case K_ORDER:
        f_id(w, "orderId", "ORD", a->num);
        f_id(w, "customerId", "CUS", a->customer);
        if (strcmp(type, "OrderItemRemoved") == 0) {
            f_id(w, "productId", "PRD", a->product);
            if (a->count > 0)
                a->count--;
            a->amount -= product_price(a->product);
            if (a->amount < 0)
                a->amount = 0;
        } else if (strcmp(type, "OrderPaymentAuthorized") == 0) {
            f_str(w, "method", PICK(&g->r, pay_methods));
            f_money(w, "amount", a->amount);
            f_str(w, "currency", rg->currency);
            jw_key(w, "authorizationCode");
            jw_printf(w, "\"AUTH-%08" PRIX64 "\"",
                      rng_next(&g->r) & 0xffffffffu);
            jw_end(w);
        } else if (strcmp(type, "OrderShippingAddressChanged") == 0) {
            f_address(g, w, "shippingAddress", a);
        } else if (strcmp(type, "OrderShipped") == 0) {
            f_str(w, "carrier", PICK(&g->r, carriers));
            jw_key(w, "trackingNumber");
            jw_printf(w, "\"TRK%012" PRIu64 "\"",
                      rng_next(&g->r) % 1000000000000u);
            jw_end(w);
            f_int(w, "items", a->count);
        } else { /* OrderPlaced, OrderItemAdded */
            a->product = rng_range(&g->r, 1, g->bt->products);
            product_name(name, sizeof name, a->product);
            f_id(w, "productId", "PRD", a->product);
            f_int(w, "quantity", (int64_t)rng_range(&g->r, 1, 4));
            f_money(w, "unitPrice", product_price(a->product));
            f_str(w, "productName", name);
            a->count++;
            a->amount += product_price(a->product);
            if (a->version == 0) {
                f_str(w, "currency", rg->currency);
                f_str(w, "channel", rng_pct(&g->r, 60) ? "web" : "mobile");
                f_address(g, w, "shippingAddress", a);
            }
        }
        f_money(w, "orderTotal", a->amount);
        f_time(w, "at", now);
        if (big)
            f_items(g, w, "items", a, fill, 0);
        break;

    case K_PRODUCT:
        f_id(w, "productId", "PRD", a->num);
        product_name(name, sizeof name, a->num);
        if (strcmp(type, "ProductCreated") == 0) {
            a->amount = product_price(a->num);
            a->count = (uint32_t)rng_range(&g->r, 0, 500);
            f_str(w, "name", name);
            f_str(w, "category", categories[a->num % NELEM(categories)]);
            f_money(w, "price", a->amount);
            f_int(w, "stock", a->count);
        } else if (strcmp(type, "ProductPriceChanged") == 0) {
            f_money(w, "oldPrice", a->amount);
            a->amount =
                a->amount * (int64_t)rng_range(&g->r, 85, 115) / 100 + 1;
            f_money(w, "newPrice", a->amount);
            f_str(w, "reason", rng_pct(&g->r, 50) ? "promotion" : "supplier");
        } else if (strcmp(type, "ProductStockAdjusted") == 0) {
            int64_t d = (int64_t)rng_range(&g->r, 0, 60) - 20;

            if ((int64_t)a->count + d < 0)
                d = -(int64_t)a->count;
            a->count = (uint32_t)((int64_t)a->count + d);
            f_int(w, "delta", d);
            f_int(w, "stock", a->count);
            jw_key(w, "warehouse");
            jw_printf(w, "\"WH-%s-%u\"", rg->country,
                      (unsigned)rng_range(&g->r, 1, 4));
            jw_end(w);
        } else if (strcmp(type, "ProductDescriptionUpdated") == 0) {
            f_str(w, "name", name);
            f_str(w, "summary", "Updated specification and photos");
        } else {
            f_str(w, "reason", "end of life");
            f_int(w, "remainingStock", a->count);
        }
        f_time(w, "at", now);
        if (big)
            f_items(g, w, "relatedProducts", a, fill, 0);
        break;

    case K_ACCOUNT:
        f_id(w, "accountId", "ACC", a->num);
        f_id(w, "customerId", "CUS", a->customer);
        cents = (int64_t)rng_range(&g->r, 500, 250000);
        if (strcmp(type, "AccountOpened") == 0) {
            a->amount = 0;
            jw_key(w, "iban");
            jw_printf(w, "\"%s%02u%016" PRIu64 "\"", rg->country,
                      (unsigned)rng_range(&g->r, 10, 99), a->num * 7919 + 100000);
            jw_end(w);
            f_str(w, "currency", rg->currency);
            f_str(w, "product", rng_pct(&g->r, 70) ? "checking" : "savings");
        } else if (strcmp(type, "MoneyWithdrawn") == 0 ||
                   strcmp(type, "TransferSent") == 0) {
            if (cents > a->amount)
                cents = a->amount;
            a->amount -= cents;
            f_money(w, "amount", cents);
            if (type[0] == 'T')
                f_id(w, "toAccount", "ACC", rng_range(&g->r, 1, 100000));
            f_money(w, "balance", a->amount);
        } else if (strcmp(type, "AccountClosed") == 0) {
            f_money(w, "finalBalance", a->amount);
            f_str(w, "reason", rng_pct(&g->r, 50) ? "customer request"
                                                  : "inactivity");
        } else {
            if (type[0] == 'I')
                cents = a->amount / 400;
            a->amount += cents;
            f_money(w, "amount", cents);
            if (type[0] == 'T')
                f_id(w, "fromAccount", "ACC", rng_range(&g->r, 1, 100000));
            f_money(w, "balance", a->amount);
        }
        a->count++;
        f_time(w, "valueDate", now);
        if (big)
            f_items(g, w, "statementLines", a, fill, 1);
        break;

    case K_CART:
        f_id(w, "cartId", "CRT", a->num);
        f_id(w, "customerId", "CUS", a->customer);
        if (strcmp(type, "CartCheckedOut") == 0) {
            f_int(w, "items", a->count);
            f_money(w, "total", a->amount);
            f_id(w, "orderId", "ORD", rng_range(&g->r, 1, 1000000));
        } else if (strcmp(type, "CartCreated") == 0) {
            f_str(w, "channel", rng_pct(&g->r, 55) ? "web" : "mobile");
            f_str(w, "currency", rg->currency);
        } else {
            if (strcmp(type, "CartItemRemoved") != 0) {
                a->product = rng_range(&g->r, 1, g->bt->products);
                a->count++;
                a->amount += product_price(a->product);
            } else if (a->count > 0) {
                a->count--;
            }
            f_id(w, "productId", "PRD", a->product);
            f_int(w, "quantity", (int64_t)rng_range(&g->r, 1, 3));
            f_money(w, "unitPrice", product_price(a->product));
        }
        f_time(w, "at", now);
        if (big)
            f_items(g, w, "items", a, fill, 0);
        break;

    default: /* K_INVOICE */
        f_id(w, "invoiceId", "INV", a->num);
        f_id(w, "customerId", "CUS", a->customer);
        if (strcmp(type, "InvoiceIssued") == 0) {
            a->amount = (int64_t)rng_range(&g->r, 1000, 900000);
            f_money(w, "amount", a->amount);
            f_str(w, "currency", rg->currency);
            f_int(w, "paymentTermDays", rng_pct(&g->r, 70) ? 30 : 14);
            customer_name(name, sizeof name, a->customer, 1);
            f_str(w, "billTo", name);
        } else if (strcmp(type, "InvoiceLineAdded") == 0) {
            cents = (int64_t)rng_range(&g->r, 500, 50000);
            a->amount += cents;
            f_money(w, "lineAmount", cents);
            f_str(w, "description", PICK(&g->r, nouns));
        } else if (strcmp(type, "InvoiceReminderSent") == 0) {
            f_int(w, "reminder", ++a->count);
            f_str(w, "channel", rng_pct(&g->r, 80) ? "email" : "letter");
        } else {
            f_money(w, "amount", a->amount);
            f_str(w, "method", PICK(&g->r, pay_methods));
        }
        f_time(w, "at", now);
        if (big)
            f_items(g, w, "lines", a, fill, 0);
        break;
    }
}

/* "notes" pads the object to exactly target bytes: ,"notes":"..."} */
#define NOTES_OVERHEAD 12

static size_t write_payload(gen *g, agg *a, const char *type, int64_t now,
                            size_t target)
{
    jw w = {g->payload, 0, sizeof g->payload, target - NOTES_OVERHEAD, 0, 0,
            0};
    size_t pad, off;

    jw_put(&w, "{", 1);
    write_fields(g, &w, a, type, now, target);
    pad = target - NOTES_OVERHEAD - w.len;
    /* From the start of a word (the corpus ends in spaces: room left). */
    off = (size_t)rng_range(&g->r, 0, CORPUS_LEN - 32 - pad);
    while (off < CORPUS_LEN - 32 - pad && g->corpus[off] != ' ')
        off++;
    off++;
    w.limit = w.cap;
    jw_puts(&w, w.nfields > 0 ? ",\"notes\":\"" : " \"notes\":\"");
    jw_put(&w, g->corpus + off, pad);
    jw_put(&w, "\"}", 2);
    return w.len;
}

static size_t write_metadata(gen *g, agg *a, const evs_uuid *corr,
                             const evs_uuid *cause)
{
    jw w = {g->meta, 0, sizeof g->meta, sizeof g->meta, 0, 0, 0};
    uint64_t actor = a->customer ? a->customer
                                 : rng_range(&g->r, 1, g->bt->customers);
    int by_user = rng_pct(&g->r, 65);

    jw_put(&w, "{", 1);
    f_uuid(&w, "correlationId", corr);
    f_uuid(&w, "causationId", cause);
    if (by_user)
        f_id(&w, "userId", "CUS", actor);
    else
        f_str(&w, "userId", "system");
    /* People use browsers and the app; the rest is machines. */
    f_str(&w, "agent", by_user
                           ? agents[rng_next(&g->r) % 4]
                           : agents[4 + rng_next(&g->r) % (NELEM(agents) - 4)]);
    f_str(&w, "source", kinds[a->kind].source);
    jw_key(&w, "ip");
    jw_printf(&w, "\"10.%u.%u.%u\"", (unsigned)rng_range(&g->r, 0, 255),
              (unsigned)rng_range(&g->r, 0, 255),
              (unsigned)rng_range(&g->r, 1, 254));
    jw_end(&w);
    f_str(&w, "tenant", g->bt->name);
    f_int(&w, "schemaVersion", 1);
    jw_put(&w, "}", 1);
    return w.len;
}

static size_t make_tags(gen *g, const agg *a)
{
    size_t n = 0;

    if (a->customer) {
        snprintf(g->tagbuf[n], sizeof g->tagbuf[n], "customer:CUS-%06" PRIu64,
                 a->customer);
        n++;
    }
    if (a->kind != K_PRODUCT) {
        snprintf(g->tagbuf[n], sizeof g->tagbuf[n], "region:%s",
                 regions[a->region].name);
        n++;
    }
    if (a->kind == K_PRODUCT || a->product) {
        snprintf(g->tagbuf[n], sizeof g->tagbuf[n], "product:PRD-%06" PRIu64,
                 a->kind == K_PRODUCT ? a->num : a->product);
        n++;
    }
    for (size_t i = 0; i < n; i++)
        g->tags[i] = g->tagbuf[i];
    return n;
}

/* ------------------------------------------------------------------ */
/* Bursts and parts                                                    */
/* ------------------------------------------------------------------ */

static uint32_t draw_length(gen *g, unsigned kind)
{
    const len_bucket *b = kinds[kind].len;
    unsigned x = (unsigned)(rng_next(&g->r) % 100), i;

    for (i = 0; i < 4 && x >= b[i].pct; i++)
        x -= b[i].pct;
    return (uint32_t)rng_range(&g->r, b[i].lo, b[i].hi);
}

static void new_aggregate(gen *g, agg *a)
{
    unsigned total = 0, x, k;

    for (k = 0; k < NKINDS; k++)
        total += kinds[k].weight;
    x = (unsigned)(rng_next(&g->r) % total);
    for (k = 0; k < NKINDS - 1 && x >= kinds[k].weight; k++)
        x -= kinds[k].weight;
    memset(a, 0, sizeof *a);
    a->live = 1;
    a->kind = k;
    a->num = ++g->kind_seq[k] + g->cfg.stream_base;
    a->version = -1;
    a->length = draw_length(g, k);
    a->customer = k == K_PRODUCT ? 0 : rng_range(&g->r, 1, g->bt->customers);
    a->region = pick_region(&g->r);
    snprintf(a->stream, sizeof a->stream, "%s-%06" PRIu64, kinds[k].name,
             a->num);
    g->st.streams++;
}

/* The tenant of the next burst: at random by share, among the tenants
 * not ahead of their share of what has been generated. */
static tenant *pick_tenant(gen *g)
{
    uint32_t i, n = g->cfg.tenants;
    double total = 0, x;

    for (i = 0; i < n; i++) {
        tenant *t = &g->tenants[i];

        if ((double)t->events <= t->share * (double)g->seq)
            total += t->share;
    }
    x = rng_unit(&g->r) * total;
    for (i = 0; i < n; i++) {
        tenant *t = &g->tenants[i];

        if ((double)t->events > t->share * (double)g->seq)
            continue;
        if (x < t->share)
            return t;
        x -= t->share;
    }
    /* Rounding: the last eligible one. */
    for (i = n; i-- > 0;)
        if ((double)g->tenants[i].events <=
            g->tenants[i].share * (double)g->seq)
            return &g->tenants[i];
    return &g->tenants[0];
}

/* Run lengths: mostly a few events per command or session, sometimes a
 * long batch (an import, a busy ledger day). */
static uint32_t draw_run(gen *g)
{
    unsigned x = (unsigned)(rng_next(&g->r) % 100);

    if (x < 50)
        return (uint32_t)rng_range(&g->r, 1, 3);
    if (x < 85)
        return (uint32_t)rng_range(&g->r, 4, 15);
    return (uint32_t)rng_range(&g->r, 16, 50);
}

/*
 * Events in a burst: up to 2000, less for small runs (at most a fiftieth
 * of them, so that even 1000 events visit every tenant), and never past
 * the tenant's share of the whole run (so the shares come out exact).
 */
static uint64_t draw_burst(gen *g, const tenant *t)
{
    uint64_t hi = g->cfg.events / 50, quota, n;

    if (hi > 2000)
        hi = 2000;
    if (hi < 8)
        hi = 8;
    n = rng_range(&g->r, hi / 10, hi);
    quota = (uint64_t)(t->share * (double)g->cfg.events) + 1;
    quota = quota > t->events ? quota - t->events : 1;
    return n < quota ? n : quota;
}

/* Set up the next part: a new burst when the current one is over. */
static void next_part(gen *g)
{
    for (;;) {
        if (g->bt != NULL && g->burst_left > 0 &&
            g->burst_slot < g->bt->npool) {
            tenant *t = g->bt;
            uint32_t j = (uint32_t)rng_range(&g->r, g->burst_slot,
                                             t->npool - 1);
            uint32_t slot = t->order[j], left;
            agg *a = &t->pool[slot];

            t->order[j] = t->order[g->burst_slot];
            t->order[g->burst_slot++] = slot;
            if (!a->live)
                new_aggregate(g, a);
            a->burst = g->burst;
            left = a->length - (uint32_t)(a->version + 1);
            g->part_left = draw_run(g);
            if (g->part_left > left)
                g->part_left = left;
            if (g->part_left > g->burst_left)
                g->part_left = (uint32_t)g->burst_left;
            g->pa = a;
            /* One workflow per part; a third continue the previous one
             * (a checkout that places an order, a payment that settles
             * an invoice). */
            if (evs_uuid_is_nil(&g->correlation) || !rng_pct(&g->r, 33))
                make_uuid(g, &g->correlation, g->last_us, 0);
            make_uuid(g, &g->last_id, g->last_us, 0); /* the command */
            return;
        }
        g->bt = pick_tenant(g);
        g->burst++;
        g->burst_left = draw_burst(g, g->bt);
        g->burst_slot = 0;
        memset(&g->correlation, 0, sizeof g->correlation);
    }
}

static void count_length(gen *g, int64_t version)
{
    uint64_t len = (uint64_t)version + 1;
    gen_stats *st = &g->st;

    if (len > 1)
        g->hist[len - 1]--;
    g->hist[len]++;
    if (len == 1) {
        st->streams_len_1++;
        st->stream_len_min = 1;
    } else {
        if (len == 2)
            st->streams_len_1--;
        /* The shortest stream may just have grown. */
        while (st->stream_len_min <= MAX_STREAM_LEN &&
               g->hist[st->stream_len_min] == 0)
            st->stream_len_min++;
    }
    if (len == GEN_LONG_STREAM)
        st->streams_len_over_100++;
    if (len > st->stream_len_max)
        st->stream_len_max = len;
}

int gen_next(gen *g, gen_event *out)
{
    evs_event_data *ev = &out->ev;
    uint32_t bucket, x;
    size_t target;
    agg *a;
    int64_t now;
    evs_uuid cause;

    if (g->seq >= g->cfg.events)
        return 1;
    if (g->part_left == 0)
        next_part(g);
    a = g->pa;
    g->part_left--;
    g->burst_left--;
    a->version++;

    memset(out, 0, sizeof *out);
    now = next_time(g);
    ev->type = event_type(g, a);
    x = (uint32_t)(rng_next(&g->r) % 100);
    bucket = x < 70 ? 0 : x < 95 ? 1 : 2;
    target = (size_t)rng_range(&g->r, bucket_lo[bucket], bucket_hi[bucket]);
    ev->data_len = write_payload(g, a, ev->type, now, target);
    ev->data = g->payload;
    ev->content_type = EVS_CONTENT_JSON;

    cause = g->last_id;
    make_uuid(g, &ev->id, now, 1);
    ev->correlation_id = g->correlation;
    ev->causation_id = cause;
    g->last_id = ev->id;
    ev->metadata_len = write_metadata(g, a, &g->correlation, &cause);
    ev->metadata = g->meta;
    ev->ntags = make_tags(g, a);
    ev->tags = g->tags;
    ev->recorded_at = now;

    out->tenant = g->bt->name;
    out->stream = a->stream;
    out->expected_version = a->version == 0 ? EVS_NO_STREAM : a->version - 1;
    out->snapshot_after = g->cfg.snapshot_every > 0 &&
                          kinds[a->kind].snapshot != NULL &&
                          (uint64_t)(a->version + 1) %
                                  g->cfg.snapshot_every == 0;
    if ((uint32_t)a->version + 1 >= a->length)
        a->live = 0; /* finalized: the slot takes a new one */
    g->cur = a;

    /* Statistics. */
    g->seq++;
    g->bt->events++;
    g->st.events++;
    g->st.per_tenant[g->bt - g->tenants]++;
    g->st.data_bytes += ev->data_len;
    g->st.metadata_bytes += ev->metadata_len;
    g->st.size_bucket[bucket]++;
    if (gen_size_bucket(ev->data_len) != (int)bucket)
        g->st.size_other++;
    if (g->st.events == 1)
        g->st.first_us = now;
    g->st.last_us = now;
    if (gen_is_business_hours(now))
        g->st.business_hours++;
    if (out->snapshot_after)
        g->st.snapshots++;
    count_length(g, a->version);
    return 0;
}

void gen_snapshot(gen *g, const char **schema, const void **data,
                  size_t *len)
{
    const agg *a = g->cur;
    const kind_info *k = &kinds[a->kind];
    jw w = {g->snap, 0, sizeof g->snap, sizeof g->snap, 0, 0, 0};

    jw_put(&w, "{", 1);
    f_str(&w, "stream", a->stream);
    f_int(&w, "version", a->version);
    jw_key(&w, "id");
    jw_printf(&w, "\"%s-%06" PRIu64 "\"", k->id_prefix, a->num);
    jw_end(&w);
    if (a->customer)
        f_id(&w, "customerId", "CUS", a->customer);
    f_str(&w, "region", regions[a->region].name);
    f_str(&w, "status", a->live ? "active" : "closed");
    switch (a->kind) {
    case K_ACCOUNT:
        f_money(&w, "balance", a->amount);
        f_str(&w, "currency", regions[a->region].currency);
        f_int(&w, "transactions", a->count);
        break;
    case K_ORDER:
        f_money(&w, "total", a->amount);
        f_int(&w, "items", a->count);
        if (a->product)
            f_id(&w, "lastProductId", "PRD", a->product);
        break;
    default:
        f_int(&w, "changes", a->count);
        break;
    }
    jw_put(&w, "}", 1);
    g->snap_len = w.len;
    *schema = k->snapshot != NULL ? k->snapshot : "State.v1";
    *data = g->snap;
    *len = g->snap_len;
}

/* ------------------------------------------------------------------ */
/* Loading                                                             */
/* ------------------------------------------------------------------ */

/* Payload bytes copied per batch at most: keeps one append well inside a
 * log segment (64 MiB by default). */
#define LOAD_ARENA (16u * 1024u * 1024u)

typedef struct pending_snap {
    const char *stream, *schema;
    int64_t version;
    const void *data;
    size_t len;
} pending_snap;

typedef struct loader {
    evs_db *db;
    const gen_config *cfg;
    evs_event_data *ev;
    evs_stream_append *parts;
    evs_append_result *res;
    pending_snap *snaps;
    size_t n, nparts, nsnaps;
    char tenant[EVS_MAX_TENANT_LEN + 1];
    char *arena;
    size_t used;
    uint64_t stored;          /* events appended so far */
    uint64_t appends;
    /* progress */
    struct timespec t0, last_draw;
    int tty, drawn;
    unsigned last_pct;
} loader;

static double elapsed(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) +
           (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

static void *arena_copy(loader *L, const void *p, size_t n)
{
    char *q = L->arena + L->used;

    if (n > 0)
        memcpy(q, p, n);
    q[n] = '\0';
    L->used += n + 1;
    return q;
}

static void progress(loader *L, int final)
{
    struct timespec now;
    uint64_t total = L->cfg->events;
    unsigned pct = (unsigned)(L->stored * 100 / total);
    double secs, rate;

    if (!L->cfg->progress)
        return;
    clock_gettime(CLOCK_MONOTONIC, &now);
    secs = elapsed(&L->t0, &now);
    rate = secs > 0 ? (double)L->stored / secs : 0;
    if (L->tty) {
        char bar[41];
        unsigned fillc = (unsigned)(L->stored * 40 / total), i;

        if (!final && L->drawn && elapsed(&L->last_draw, &now) < 0.2)
            return;
        for (i = 0; i < 40; i++)
            bar[i] = i < fillc ? '#' : '.';
        bar[40] = '\0';
        fprintf(stderr, "\rgenerate [%s] %3u%% %" PRIu64 "/%" PRIu64
                " events, %.0f events/s", bar, pct, L->stored, total, rate);
        if (rate > 0 && !final)
            fprintf(stderr, ", %.0f s left  ",
                    (double)(total - L->stored) / rate);
        if (final)
            fputs("              \n", stderr);
        fflush(stderr);
        L->last_draw = now;
        L->drawn = 1;
        return;
    }
    /* Not a terminal: a line every 5 %. */
    if (pct / 5 > L->last_pct / 5 || (final && pct != L->last_pct)) {
        fprintf(stderr, "generate: %u%% (%" PRIu64 "/%" PRIu64
                " events, %.1f s, %.0f events/s)\n", pct, L->stored, total,
                secs, rate);
        L->last_pct = pct;
    }
}

static int flush(loader *L, char *err, size_t errsize)
{
    evs_append_request req = EVS_APPEND_REQUEST_INIT;
    size_t i;
    int rc;

    if (L->n == 0)
        return 0;
    req.tenant = L->tenant;
    req.parts = L->parts;
    req.nparts = L->nparts;
    rc = evs_append_ex(L->res, NULL, L->db, &req);
    if (rc < 0) {
        snprintf(err, errsize, "append of %zu events to %zu streams of %s "
                 "failed, the %" PRIu64 " events before it are stored%s: "
                 "%.240s", L->n, L->nparts, L->tenant, L->stored,
                 rc == EVS_ECONFLICT
                     ? " (a generated stream exists already: generate into "
                       "an empty store)"
                     : "",
                 evs_last_error()[0] ? evs_last_error() : evs_strerror(rc));
        return rc;
    }
    L->stored += L->n;
    L->appends++;
    for (i = 0; i < L->nsnaps; i++) {
        pending_snap *s = &L->snaps[i];

        rc = evs_snapshot_save(L->db, L->tenant, s->stream, s->version,
                               s->schema, s->data, s->len);
        if (rc < 0) {
            snprintf(err, errsize, "snapshot of %s at version %" PRId64
                     " failed: %s (the %" PRIu64 " events before it are "
                     "stored)", s->stream, s->version,
                     evs_last_error()[0] ? evs_last_error()
                                         : evs_strerror(rc),
                     L->stored);
            return rc;
        }
    }
    L->n = L->nparts = L->nsnaps = 0;
    L->used = 0;
    progress(L, 0);
    return 0;
}

/* 1 if the event must start a new batch: another tenant, a full batch,
 * or a stream already in the batch that is not its last part (one append
 * numbers its events part by part). */
static int must_flush(const loader *L, const gen_event *e, size_t need)
{
    size_t i;

    if (L->n == 0)
        return 0;
    if (L->n >= L->cfg->batch_events || L->used + need > LOAD_ARENA ||
        strcmp(L->tenant, e->tenant) != 0)
        return 1;
    if (strcmp(L->parts[L->nparts - 1].stream, e->stream) == 0)
        return 0;
    for (i = 0; i + 1 < L->nparts; i++)
        if (strcmp(L->parts[i].stream, e->stream) == 0)
            return 1;
    return 0;
}

static void add(loader *L, gen *g, const gen_event *e)
{
    evs_event_data *ev = &L->ev[L->n];
    evs_stream_append *p;
    const char **tags;
    size_t i;

    if (L->n == 0)
        snprintf(L->tenant, sizeof L->tenant, "%s", e->tenant);
    if (L->nparts == 0 || strcmp(L->parts[L->nparts - 1].stream, e->stream) != 0) {
        p = &L->parts[L->nparts++];
        p->stream = arena_copy(L, e->stream, strlen(e->stream));
        p->expected_version = e->expected_version;
        p->events = ev;
        p->nevents = 0;
    }
    p = &L->parts[L->nparts - 1];
    p->nevents++;
    *ev = e->ev;
    ev->type = arena_copy(L, e->ev.type, strlen(e->ev.type));
    ev->data = arena_copy(L, e->ev.data, e->ev.data_len);
    ev->metadata = arena_copy(L, e->ev.metadata, e->ev.metadata_len);
    /* Align the tag pointer array. */
    L->used = (L->used + 7) & ~(size_t)7;
    tags = (const char **)(void *)(L->arena + L->used);
    L->used += e->ev.ntags * sizeof *tags;
    for (i = 0; i < e->ev.ntags; i++)
        tags[i] = arena_copy(L, e->ev.tags[i], strlen(e->ev.tags[i]));
    ev->tags = tags;
    L->n++;
    if (e->snapshot_after) {
        pending_snap *s = &L->snaps[L->nsnaps++];
        const char *schema;
        const void *data;
        size_t len;

        gen_snapshot(g, &schema, &data, &len);
        s->stream = p->stream;
        s->version = e->expected_version + 1;
        s->schema = arena_copy(L, schema, strlen(schema));
        s->data = arena_copy(L, data, len);
        s->len = len;
    }
}

/* Bytes add() may take for e, with room for alignment. */
static size_t need_for(const gen_event *e)
{
    size_t n = strlen(e->stream) + strlen(e->ev.type) + e->ev.data_len +
               e->ev.metadata_len + 8 + e->ev.ntags * (sizeof(char *) + 1) +
               SNAP_CAP + 64;
    size_t i;

    for (i = 0; i < e->ev.ntags; i++)
        n += strlen(e->ev.tags[i]) + 1;
    return n;
}

int gen_load(evs_db *db, const gen_config *cfg, gen_stats *st, char *err,
             size_t errsize)
{
    loader L;
    gen *g = NULL;
    gen_event e;
    struct timespec t1;
    int rc;

    memset(&L, 0, sizeof L);
    if (err != NULL && errsize > 0)
        err[0] = '\0';
    if ((rc = gen_new(&g, cfg, err, errsize)) < 0)
        return rc;
    L.db = db;
    L.cfg = cfg;
    L.ev = calloc(cfg->batch_events, sizeof *L.ev);
    L.parts = calloc(cfg->batch_events, sizeof *L.parts);
    L.res = calloc(cfg->batch_events, sizeof *L.res);
    L.snaps = calloc(cfg->batch_events, sizeof *L.snaps);
    L.arena = malloc(LOAD_ARENA);
    if (L.ev == NULL || L.parts == NULL || L.res == NULL || L.snaps == NULL ||
        L.arena == NULL) {
        snprintf(err, errsize, "out of memory");
        rc = EVS_ENOMEM;
        goto out;
    }
    L.tty = isatty(STDERR_FILENO);
    clock_gettime(CLOCK_MONOTONIC, &L.t0);
    L.last_draw = L.t0;

    while (gen_next(g, &e) == 0) {
        size_t need = need_for(&e);

        if (must_flush(&L, &e, need)) {
            if ((rc = flush(&L, err, errsize)) < 0)
                goto out;
            if (cfg->stop != NULL && atomic_load(cfg->stop)) {
                snprintf(err, errsize, "stopped after %" PRIu64 " events",
                         L.stored);
                rc = 1;
                goto out;
            }
        }
        add(&L, g, &e);
    }
    if ((rc = flush(&L, err, errsize)) < 0)
        goto out;
    progress(&L, 1);
out:
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (st != NULL) {
        *st = *gen_get_stats(g);
        /* What is stored, when an append failed part way. */
        st->appends = L.appends;
        st->seconds = elapsed(&L.t0, &t1);
    }
    if (rc != 0 && L.cfg != NULL && L.cfg->progress && L.tty && L.drawn)
        fputc('\n', stderr);
    gen_free(g);
    free(L.ev);
    free(L.parts);
    free(L.res);
    free(L.snaps);
    free(L.arena);
    return rc;
}
