/*
 * metrics.c -- the server's counters and histograms, and the /metrics
 * page in the Prometheus text exposition format 0.0.4 (docs/SERVER.md,
 * "Metrics").
 *
 * Hot paths touch only relaxed atomics: an append adds to three counters
 * and one histogram bucket; a subscription stores the position it has
 * delivered into its own gauge. Locks are taken only where a set changes
 * (a new request label set, a subscription opening or closing) and by the
 * scrape, which walks the open subscriptions to compute their lag against
 * the store's head: one pass over a list, no per-event work.
 *
 * Histograms are kept as non-cumulative bucket counts and summed into
 * Prometheus' cumulative `le` buckets when rendered; the library's
 * power-of-two buckets (evs_metrics_get) are converted the same way.
 */
#include "serve.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NPROTO 2
static const char *const proto_name[NPROTO] = {"grpc", "http"};

/* Append results. */
#define RES_OK 0
#define RES_CONFLICT 1
#define RES_ERROR 2
#define NRES 3
static const char *const res_name[NRES] = {"ok", "conflict", "error"};

/* Append latency buckets, upper bounds in nanoseconds (Prometheus'
 * default buckets, extended down to 50 µs: a durable append on this
 * machine takes about 0.1-0.3 ms). */
static const uint64_t lat_bound_ns[] = {
    50000,     100000,    250000,     500000,     1000000,    2500000,
    5000000,   10000000,  25000000,   50000000,   100000000,  250000000,
    500000000, 1000000000, 2500000000, 5000000000, 10000000000};
#define NLAT (sizeof lat_bound_ns / sizeof lat_bound_ns[0])

/* A subscription this many positions behind the head counts as lagging. */
#define LAGGING_POSITIONS 1000

/* Distinct (protocol, method, status) label sets kept; beyond, requests
 * count under method="other" (a bound on the page's size whatever
 * clients send: the callers pass route names, never raw paths). */
#define MAX_REQ_SERIES 256

typedef struct req_series {
    int proto;
    int status;
    char method[64];
    atomic_uint_fast64_t count;
} req_series;

struct serve_sub_gauge {
    serve_sub_gauge *prev, *next;
    int proto;
    atomic_uint_fast64_t position;
};

struct serve_metrics {
    atomic_uint_fast64_t appends[NPROTO][NRES];
    atomic_uint_fast64_t append_events[NPROTO];
    atomic_uint_fast64_t lat_bucket[NPROTO][NLAT + 1]; /* last: +Inf */
    atomic_uint_fast64_t lat_sum_ns[NPROTO];

    pthread_mutex_t req_lock; /* guards req_n and adding series */
    req_series req[MAX_REQ_SERIES];
    atomic_size_t req_n;      /* series in use (read without the lock) */
    atomic_uint_fast64_t req_other[NPROTO];

    pthread_mutex_t sub_lock; /* guards the subscription list */
    serve_sub_gauge *subs;
    uint64_t nsubs[NPROTO];
};

serve_metrics *serve_metrics_new(void)
{
    serve_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    pthread_mutex_init(&m->req_lock, NULL);
    pthread_mutex_init(&m->sub_lock, NULL);
    return m;
}

void serve_metrics_free(serve_metrics *m)
{
    if (!m)
        return;
    /* Gauges still open belong to their subscriptions, which must be
     * closed before this; free what is left rather than leak it. */
    serve_sub_gauge *g = m->subs;
    while (g) {
        serve_sub_gauge *next = g->next;
        free(g);
        g = next;
    }
    pthread_mutex_destroy(&m->req_lock);
    pthread_mutex_destroy(&m->sub_lock);
    free(m);
}

static int proto_ok(int proto)
{
    return proto >= 0 && proto < NPROTO;
}

void serve_metrics_append(serve_metrics *m, int proto, int rc, size_t nevents,
                          uint64_t latency_ns)
{
    if (!m || !proto_ok(proto))
        return;
    int res = rc == 0 ? RES_OK : rc == EVS_ECONFLICT ? RES_CONFLICT : RES_ERROR;
    atomic_fetch_add_explicit(&m->appends[proto][res], 1, memory_order_relaxed);
    if (rc == 0)
        atomic_fetch_add_explicit(&m->append_events[proto], nevents, memory_order_relaxed);
    size_t b = 0;
    while (b < NLAT && latency_ns > lat_bound_ns[b])
        b++;
    atomic_fetch_add_explicit(&m->lat_bucket[proto][b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->lat_sum_ns[proto], latency_ns, memory_order_relaxed);
}

void serve_metrics_request(serve_metrics *m, int proto, const char *method, int status)
{
    if (!m || !proto_ok(proto))
        return;
    if (!method)
        method = "other";
    /* Series are only ever appended, each fully written before req_n
     * grows (release), so readers scan [0, req_n) without the lock. */
    size_t n = atomic_load_explicit(&m->req_n, memory_order_acquire);
    for (size_t i = 0; i < n; i++) {
        req_series *r = &m->req[i];
        if (r->proto == proto && r->status == status && strcmp(r->method, method) == 0) {
            atomic_fetch_add_explicit(&r->count, 1, memory_order_relaxed);
            return;
        }
    }
    pthread_mutex_lock(&m->req_lock);
    n = atomic_load_explicit(&m->req_n, memory_order_relaxed);
    for (size_t i = 0; i < n; i++) {
        req_series *r = &m->req[i];
        if (r->proto == proto && r->status == status && strcmp(r->method, method) == 0) {
            atomic_fetch_add_explicit(&r->count, 1, memory_order_relaxed);
            pthread_mutex_unlock(&m->req_lock);
            return;
        }
    }
    if (n == MAX_REQ_SERIES || strlen(method) >= sizeof m->req[0].method) {
        atomic_fetch_add_explicit(&m->req_other[proto], 1, memory_order_relaxed);
    } else {
        req_series *r = &m->req[n];
        r->proto = proto;
        r->status = status;
        snprintf(r->method, sizeof r->method, "%s", method);
        atomic_store_explicit(&r->count, 1, memory_order_relaxed);
        atomic_store_explicit(&m->req_n, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&m->req_lock);
}

serve_sub_gauge *serve_metrics_sub_open(serve_metrics *m, int proto)
{
    if (!m || !proto_ok(proto))
        return NULL;
    serve_sub_gauge *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->proto = proto;
    pthread_mutex_lock(&m->sub_lock);
    g->next = m->subs;
    if (m->subs)
        m->subs->prev = g;
    m->subs = g;
    m->nsubs[proto]++;
    pthread_mutex_unlock(&m->sub_lock);
    return g;
}

void serve_metrics_sub_position(serve_sub_gauge *g, uint64_t position)
{
    if (g)
        atomic_store_explicit(&g->position, position, memory_order_relaxed);
}

void serve_metrics_sub_close(serve_metrics *m, serve_sub_gauge *g)
{
    if (!m || !g)
        return;
    pthread_mutex_lock(&m->sub_lock);
    if (g->prev)
        g->prev->next = g->next;
    else
        m->subs = g->next;
    if (g->next)
        g->next->prev = g->prev;
    m->nsubs[g->proto]--;
    pthread_mutex_unlock(&m->sub_lock);
    free(g);
}

/* ------------------------------------------------------------------ */
/* Rendering                                                           */
/* ------------------------------------------------------------------ */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t ncap = b->cap * 2 + (size_t)n + 1;
        char *np = realloc(b->p, ncap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = ncap;
    }
}

static void sb_head(sbuf *b, const char *name, const char *type, const char *help)
{
    sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value with \, " and newline escaped as the format wants. */
static void sb_label(sbuf *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\')
            sb_printf(b, "\\\\");
        else if (*v == '"')
            sb_printf(b, "\\\"");
        else if (*v == '\n')
            sb_printf(b, "\\n");
        else
            sb_printf(b, "%c", *v);
    }
}

static uint64_t ld(atomic_uint_fast64_t *a)
{
    return atomic_load_explicit(a, memory_order_relaxed);
}

/* A bound in seconds from nanoseconds, as Prometheus writes them. */
static void sb_seconds(sbuf *b, uint64_t ns)
{
    sb_printf(b, "%.9g", (double)ns / 1e9);
}

static void render_appends(sbuf *b, serve_metrics *m)
{
    sb_head(b, "evs_appends_total", "counter",
            "Append requests answered, by protocol and result (ok, conflict: a "
            "failed append condition, error: anything else).");
    for (int p = 0; p < NPROTO; p++)
        for (int r = 0; r < NRES; r++)
            sb_printf(b, "evs_appends_total{protocol=\"%s\",result=\"%s\"} %" PRIu64 "\n",
                      proto_name[p], res_name[r], ld(&m->appends[p][r]));
    sb_head(b, "evs_append_events_total", "counter",
            "Events written by successful append requests.");
    for (int p = 0; p < NPROTO; p++)
        sb_printf(b, "evs_append_events_total{protocol=\"%s\"} %" PRIu64 "\n", proto_name[p],
                  ld(&m->append_events[p]));
    sb_head(b, "evs_append_latency_seconds", "histogram",
            "Append requests from request to answer (durable on success), in seconds.");
    for (int p = 0; p < NPROTO; p++) {
        uint64_t cum = 0;
        for (size_t i = 0; i < NLAT; i++) {
            cum += ld(&m->lat_bucket[p][i]);
            sb_printf(b, "evs_append_latency_seconds_bucket{protocol=\"%s\",le=\"",
                      proto_name[p]);
            sb_seconds(b, lat_bound_ns[i]);
            sb_printf(b, "\"} %" PRIu64 "\n", cum);
        }
        cum += ld(&m->lat_bucket[p][NLAT]);
        sb_printf(b,
                  "evs_append_latency_seconds_bucket{protocol=\"%s\",le=\"+Inf\"} %" PRIu64
                  "\n",
                  proto_name[p], cum);
        sb_printf(b, "evs_append_latency_seconds_sum{protocol=\"%s\"} ", proto_name[p]);
        sb_seconds(b, ld(&m->lat_sum_ns[p]));
        sb_printf(b, "\nevs_append_latency_seconds_count{protocol=\"%s\"} %" PRIu64 "\n",
                  proto_name[p], cum);
    }
}

static void render_requests(sbuf *b, serve_metrics *m)
{
    sb_head(b, "evs_requests_total", "counter",
            "Requests answered, by protocol, method (gRPC method or HTTP route) and "
            "status (gRPC status code or HTTP status).");
    size_t n = atomic_load_explicit(&m->req_n, memory_order_acquire);
    for (size_t i = 0; i < n; i++) {
        req_series *r = &m->req[i];
        sb_printf(b, "evs_requests_total{protocol=\"%s\",method=\"", proto_name[r->proto]);
        sb_label(b, r->method);
        sb_printf(b, "\",code=\"%d\"} %" PRIu64 "\n", r->status, ld(&r->count));
    }
    for (int p = 0; p < NPROTO; p++) {
        uint64_t other = ld(&m->req_other[p]);
        if (other)
            sb_printf(b,
                      "evs_requests_total{protocol=\"%s\",method=\"other\",code=\"other\"} "
                      "%" PRIu64 "\n",
                      proto_name[p], other);
    }
}

static void render_subscriptions(sbuf *b, serve *s)
{
    serve_metrics *m = s->metrics;
    uint64_t head = 0;
    if (evs_head_position(&head, s->db, NULL) < 0)
        head = 0;
    uint64_t nsubs[NPROTO], maxlag[NPROTO] = {0}, lagsum[NPROTO] = {0};
    uint64_t lagging[NPROTO] = {0};
    pthread_mutex_lock(&m->sub_lock);
    memcpy(nsubs, m->nsubs, sizeof nsubs);
    for (serve_sub_gauge *g = m->subs; g; g = g->next) {
        uint64_t pos = atomic_load_explicit(&g->position, memory_order_relaxed);
        uint64_t lag = head > pos ? head - pos : 0;
        if (lag > maxlag[g->proto])
            maxlag[g->proto] = lag;
        lagsum[g->proto] += lag;
        lagging[g->proto] += lag > LAGGING_POSITIONS;
    }
    pthread_mutex_unlock(&m->sub_lock);

    sb_head(b, "evs_subscriptions", "gauge", "Open subscriptions.");
    for (int p = 0; p < NPROTO; p++)
        sb_printf(b, "evs_subscriptions{protocol=\"%s\"} %" PRIu64 "\n", proto_name[p],
                  nsubs[p]);
    sb_head(b, "evs_subscription_lag_positions", "gauge",
            "The largest lag of an open subscription: the store's head position minus "
            "the position it has delivered up to.");
    for (int p = 0; p < NPROTO; p++)
        sb_printf(b, "evs_subscription_lag_positions{protocol=\"%s\"} %" PRIu64 "\n",
                  proto_name[p], maxlag[p]);
    /* Gauges, not a histogram: these are recomputed at each scrape and go
     * down when subscriptions catch up or close, which PromQL would take
     * for counter resets of a histogram. */
    sb_head(b, "evs_subscription_lag_sum_positions", "gauge",
            "The lags of the open subscriptions added up, in positions (divided by "
            "evs_subscriptions: the mean lag).");
    for (int p = 0; p < NPROTO; p++)
        sb_printf(b, "evs_subscription_lag_sum_positions{protocol=\"%s\"} %" PRIu64 "\n",
                  proto_name[p], lagsum[p]);
    sb_head(b, "evs_subscriptions_lagging", "gauge",
            "Open subscriptions more than 1000 positions behind the head.");
    for (int p = 0; p < NPROTO; p++)
        sb_printf(b, "evs_subscriptions_lagging{protocol=\"%s\"} %" PRIu64 "\n",
                  proto_name[p], lagging[p]);
}

static void render_store(sbuf *b, serve *s)
{
    sb_head(b, "evs_connections", "gauge", "Open client connections, by protocol.");
    sb_printf(b, "evs_connections{protocol=\"grpc\"} %" PRIu64 "\n",
              serve_grpc_connections(s));
    sb_printf(b, "evs_connections{protocol=\"http\"} %" PRIu64 "\n",
              serve_http_connections(s));

    evs_stats st;
    if (evs_stats_get(&st, s->db) == 0) {
        sb_head(b, "evs_store_bytes", "gauge",
                "Bytes of the store's files on disk (log segments, index).");
        sb_printf(b, "evs_store_bytes{kind=\"log\"} %" PRIu64 "\n", st.log_bytes);
        sb_printf(b, "evs_store_bytes{kind=\"index\"} %" PRIu64 "\n", st.index_bytes);
        sb_head(b, "evs_store_events", "gauge",
                "Events in the store (system streams' included).");
        sb_printf(b, "evs_store_events %" PRIu64 "\n", st.events);
        sb_head(b, "evs_head_position", "gauge", "The store's head (global) position.");
        sb_printf(b, "evs_head_position %" PRIu64 "\n", st.head_position);
    }

    evs_metrics lm;
    memset(&lm, 0, sizeof lm);
    lm.version = EVS_METRICS_VERSION;
    if (evs_metrics_get(&lm, s->db) != 0)
        return;
    sb_head(b, "evs_store_appends_total", "counter",
            "Append requests the store committed (library counter, every protocol and "
            "retries answered from stored events included).");
    sb_printf(b, "evs_store_appends_total %" PRIu64 "\n", lm.appends);
    sb_head(b, "evs_store_append_events_total", "counter",
            "Events the store's committed appends wrote (library counter).");
    sb_printf(b, "evs_store_append_events_total %" PRIu64 "\n", lm.events);
    sb_head(b, "evs_store_conflicts_total", "counter",
            "Append requests the store refused with EVS_ECONFLICT: a failed condition, "
            "expected version or non-increasing tracking position (library counter).");
    sb_printf(b, "evs_store_conflicts_total %" PRIu64 "\n", lm.conflicts);
    sb_head(b, "evs_group_commits_total", "counter",
            "Group commits that wrote events (embedded: one log write and one fdatasync "
            "each, two when the log moves to a new segment; PostgreSQL: one transaction "
            "each).");
    sb_printf(b, "evs_group_commits_total %" PRIu64 "\n", lm.groups);

    /* Group size: bucket i counts groups of (2^(i-1), 2^i] requests, the
     * last one everything above; no sum is kept by the library. */
    sb_head(b, "evs_group_commit_size", "histogram",
            "Append requests per group commit (no _sum: the library does not keep it).");
    uint64_t cum = 0;
    for (int i = 0; i < EVS_METRICS_BUCKETS - 1; i++) {
        cum += lm.group_size_hist[i];
        sb_printf(b, "evs_group_commit_size_bucket{le=\"%" PRIu64 "\"} %" PRIu64 "\n",
                  (uint64_t)1 << i, cum);
    }
    cum += lm.group_size_hist[EVS_METRICS_BUCKETS - 1];
    sb_printf(b, "evs_group_commit_size_bucket{le=\"+Inf\"} %" PRIu64 "\n", cum);
    sb_printf(b, "evs_group_commit_size_count %" PRIu64 "\n", cum);

    /* Sync latency: bucket i counts (2^(i-1), 2^i] microseconds. */
    sb_head(b, "evs_sync_seconds", "histogram",
            "Durability waits of group commits (embedded: fdatasync of the log; "
            "PostgreSQL: COMMIT), in seconds.");
    cum = 0;
    for (int i = 0; i < EVS_METRICS_BUCKETS - 1; i++) {
        cum += lm.sync_hist[i];
        sb_printf(b, "evs_sync_seconds_bucket{le=\"");
        sb_seconds(b, ((uint64_t)1 << i) * 1000u);
        sb_printf(b, "\"} %" PRIu64 "\n", cum);
    }
    cum += lm.sync_hist[EVS_METRICS_BUCKETS - 1];
    sb_printf(b, "evs_sync_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", cum);
    sb_printf(b, "evs_sync_seconds_sum ");
    sb_seconds(b, lm.sync_ns);
    /* The buckets' total, not lm.syncs (read a moment apart): Prometheus
     * wants _count equal to the +Inf bucket. */
    sb_printf(b, "\nevs_sync_seconds_count %" PRIu64 "\n", cum);
}

char *serve_metrics_render(serve *s, size_t *len)
{
    sbuf b = {malloc(16384), 0, 16384, 0};
    if (!b.p)
        return NULL;
    render_appends(&b, s->metrics);
    render_requests(&b, s->metrics);
    render_subscriptions(&b, s);
    render_store(&b, s);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
