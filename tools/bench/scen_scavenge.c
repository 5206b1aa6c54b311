/*
 * scen_scavenge.c -- the `scavenge` scenario of `evs bench` (issue 17):
 * how fast evs_scavenge rewrites the log, and what it does to the appends
 * and reads that go on meanwhile.
 *
 * Setup (untimed, its time stated): a store of its own -- on the embedded
 * backend a fresh store with small log segments (1 MiB with --quick, 8
 * MiB in a full run) in a temporary directory beside the bench's store,
 * so that the bench's loaded store is left as it is; on PostgreSQL the
 * bench's database, in the scenario's tenant -- holding LOAD_MB (quick:
 * LOAD_MB_QUICK) of ~500 B..1 KB JSON events in many streams, interleaved
 * (each append: 10 streams x 10 events); then about half of the events
 * made eligible by a mix of rules: a sixth of the streams tombstoned, a
 * sixth soft-deleted, a sixth with max_count 10; the other half stays
 * live.
 *
 * Run (the scenario's own measurement, suite.h `run`): the level's
 * threads (default 16) append single ~750 B events to streams of their own
 * (exact expected versions), together APPEND_RATE per second on a fixed
 * schedule, and one reader reads the first READ_LIMIT events of a random
 * live stream READ_RATE times per second, for a warm-up, then a window of
 * --seconds WITHOUT a scavenge, then -- the same threads going on at the
 * same rates -- WHILE evs_scavenge runs on the calling thread, until it
 * returns. Both windows do the same work per second, so their latencies
 * compare as ratios measured in the same run. Level 1 of the report is
 * the appends without a scavenge, level 2 the appends during it; the
 * reads, the scavenge's figures and the ratios are the scenario's own
 * figures (bench_figures).
 *
 * Check: the scavenge removed exactly the events the rules made eligible,
 * every live stream still reads whole, and every append thread's streams
 * end at their acknowledged versions.
 */
#include "scen_util.h"

#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define LOAD_MB 384u        /* MiB of event data loaded, full run */
#define LOAD_MB_QUICK 16u
#define LOAD_MB_PG 24u      /* PostgreSQL: its load is slower */
#define LOAD_MB_PG_QUICK 2u
#define SEG_MB 8u           /* embedded segment size, full run */
#define SEG_MB_QUICK 1u
#define STREAMS 3000u
#define STREAMS_QUICK 240u
#define PARTS 10            /* streams per load append */
#define PER_PART 10         /* events per stream per load append */
#define MAX_COUNT 10        /* the max_count rule's value */
#define APPEND_RATE 2000.0  /* appends/s, all append threads together */
#define READ_RATE 200.0     /* stream reads/s */
#define READ_LIMIT 100      /* events per read */
#define MAX_APPENDERS 64
#define OWN_STREAMS 5       /* streams per append thread */

enum { PH_WARM = 0, PH_WITHOUT = 1, PH_DURING = 2, PH_STOP = 3 };

typedef struct phase_figs {
    op_counts c;
    samples lat;
    char error[256];
} phase_figs;

typedef struct scav_state scav_state;

typedef struct scav_thread {
    scav_state *s;
    int id;           /* 0..nappenders-1; the reader is nappenders */
    int reader;
    pthread_t th;
    uint64_t rng;
    char stream[OWN_STREAMS][48];
    int64_t version[OWN_STREAMS];
    phase_figs ph[3]; /* PH_WARM, PH_WITHOUT, PH_DURING */
} scav_thread;

struct scav_state {
    evs_db *db;
    int own;                 /* db is ours: closed and removed in teardown */
    int pg;
    char dir[PATH_MAX];      /* the own store's temporary directory */
    char path[PATH_MAX];     /* its store */
    char tenant[EVS_MAX_TENANT_LEN + 1];
    uint32_t seg_size;
    uint32_t nstreams;
    int64_t *len;            /* events loaded per stream */
    uint64_t events, data_bytes, eligible;
    uint32_t tombstoned, deleted, capped;
    double load_s, rules_s;
    evs_stats before, after;
    int before_ok, after_ok;
    /* the run */
    int nappenders;
    _Atomic int phase;
    uint64_t start_ns;
    scav_thread *th;         /* nappenders + 1 (the reader) */
    int ran;
    int scav_rc;
    char scav_err[300];
    evs_scavenge_result res;
    _Atomic uint64_t examined, examined_total;
    struct proc_mark {
        uint64_t syncs, sync_ns;
        double user, sys;
    } pm[3];                 /* at the start of each window and the end */
};

static void proc_mark(struct proc_mark *m)
{
    m->syncs = atomic_load(&g_sync_calls);
    m->sync_ns = atomic_load(&g_sync_ns);
    m->user = cpu_seconds(0);
    m->sys = cpu_seconds(1);
}

/* The events' padding: at least 1000 bytes of text. */
static char g_pad[1024];

static void pad_init(void)
{
    static const char unit[] = "scavenge-bench-padding-";
    for (size_t i = 0; i < sizeof g_pad - 1; i++)
        g_pad[i] = unit[i % (sizeof unit - 1)];
    g_pad[sizeof g_pad - 1] = 0;
}

/* JSON of exactly size bytes (size in 200..1000): the stream, a number,
 * and padding. Returns its length. */
static int event_json(char *out, size_t outsize, uint32_t stream, uint64_t n,
                      size_t size)
{
    int h = snprintf(out, outsize, "{\"stream\":%u,\"n\":%llu,\"pad\":\"",
                     stream, (unsigned long long)n);
    size_t padn = size > (size_t)h + 2 ? size - (size_t)h - 2 : 0;
    if ((size_t)h + padn + 3 > outsize)
        padn = outsize - (size_t)h - 3;
    memcpy(out + h, g_pad, padn);
    memcpy(out + h + padn, "\"}", 3);
    return h + (int)padn + 2;
}

static int is_pg(const char *uri)
{
    return uri && (strncmp(uri, "postgresql://", 13) == 0 ||
                   strncmp(uri, "postgres://", 11) == 0);
}

static void stream_name(char *out, size_t size, uint32_t i)
{
    snprintf(out, size, "s-%u", i);
}

/* i % 6: 0 tombstoned, 1 soft-deleted, 2 max_count, 3..5 live */
static int live(uint32_t i) { return i % 6 >= 3; }

/* ------------------------------------------------------------------ */
/* Setup: the store, its data, the rules                               */
/* ------------------------------------------------------------------ */

static int load(scav_state *s, uint64_t want_bytes, uint64_t seed, char *err,
                size_t errsize)
{
    char (*json)[1100] = calloc(PARTS * PER_PART, sizeof *json);
    char (*names)[32] = calloc(PARTS, sizeof *names);
    evs_event_data ev[PARTS][PER_PART];
    evs_stream_append part[PARTS];
    uint64_t rng = scen_seed(seed, 17);
    int rc = 0;
    if (!json || !names) {
        free(json);
        free(names);
        scen_msg(err, errsize, "out of memory");
        return -1;
    }
    while (s->data_bytes < want_bytes) {
        if (atomic_load(&g_interrupted)) {
            scen_msg(err, errsize, "load: interrupted");
            rc = -1;
            break;
        }
        uint32_t base = (uint32_t)scen_below(&rng, s->nstreams);
        for (int p = 0; p < PARTS; p++) {
            uint32_t st = (base + (uint32_t)p) % s->nstreams;
            stream_name(names[p], sizeof names[p], st);
            for (int k = 0; k < PER_PART; k++) {
                char *j = json[p * PER_PART + k];
                size_t size = 500 + (size_t)scen_below(&rng, 501);
                int n = event_json(j, 1100, st, (uint64_t)(s->len[st] + k),
                                   size);
                event_init(&ev[p][k], "Scavengeable", j, (size_t)n);
                s->data_bytes += (uint64_t)n;
            }
            part[p] = (evs_stream_append){names[p], EVS_ANY, ev[p], PER_PART};
        }
        if ((rc = evs_append_multi(NULL, s->db, s->tenant, part, PARTS)) < 0) {
            scen_fail(err, errsize, rc, "load: evs_append_multi");
            break;
        }
        for (int p = 0; p < PARTS; p++)
            s->len[(base + (uint32_t)p) % s->nstreams] += PER_PART;
        s->events += PARTS * PER_PART;
    }
    free(json);
    free(names);
    return rc < 0 ? -1 : 0;
}

static int rules(scav_state *s, char *err, size_t errsize)
{
    char name[32];
    int rc;
    for (uint32_t i = 0; i < s->nstreams; i++) {
        if (live(i) || s->len[i] == 0)
            continue;
        stream_name(name, sizeof name, i);
        switch (i % 6) {
        case 0:
            rc = evs_stream_tombstone(NULL, s->db, s->tenant, name, EVS_ANY);
            s->eligible += (uint64_t)s->len[i];
            s->tombstoned++;
            break;
        case 1:
            rc = evs_stream_delete(NULL, s->db, s->tenant, name, EVS_ANY);
            s->eligible += (uint64_t)s->len[i] - 1; /* the last stays */
            s->deleted++;
            break;
        default: {
            evs_stream_metadata m = EVS_STREAM_METADATA_INIT;
            m.max_count = MAX_COUNT;
            rc = evs_stream_metadata_set(NULL, s->db, s->tenant, name, EVS_ANY,
                                         &m);
            if (s->len[i] > MAX_COUNT)
                s->eligible += (uint64_t)(s->len[i] - MAX_COUNT);
            s->capped++;
            break;
        }
        }
        if (rc < 0) {
            scen_fail(err, errsize, rc, "rules: stream %s", name);
            return -1;
        }
    }
    return 0;
}

static void scav_teardown(void *state)
{
    scav_state *s = state;
    if (!s)
        return;
    if (s->own && s->db) {
        int rc = evs_close(s->db);
        if (rc < 0)
            fprintf(stderr, "evs bench: scavenge: closing its store: %s\n",
                    evs_last_error());
    }
    if (s->own && s->dir[0])
        rm_rf(s->dir);
    if (s->th) {
        for (int t = 0; t <= s->nappenders; t++)
            for (int p = 0; p < 3; p++)
                free(s->th[t].ph[p].lat.v);
        free(s->th);
    }
    free(s->len);
    free(s);
}

static int scav_setup(void **state, bench_ctx *ctx, char *err, size_t errsize)
{
    scav_state *s = calloc(1, sizeof *s);
    int rc;
    if (!s) {
        scen_msg(err, errsize, "out of memory");
        return -1;
    }
    *state = s;
    pad_init();
    snprintf(s->tenant, sizeof s->tenant, "%s", ctx->tenant);
    s->pg = is_pg(ctx->db_uri);
    s->nstreams = ctx->quick ? STREAMS_QUICK : STREAMS;
    s->len = calloc(s->nstreams, sizeof *s->len);
    if (!s->len) {
        scen_msg(err, errsize, "out of memory");
        return -1;
    }
    if (s->pg) {
        s->db = ctx->db;
    } else {
        /* a store of its own beside the bench's, with small segments */
        char parent[PATH_MAX];
        snprintf(parent, sizeof parent, "%s", ctx->db_uri ? ctx->db_uri : ".");
        snprintf(s->dir, sizeof s->dir, "%s/evs-bench-scavenge-XXXXXX",
                 dirname(parent));
        if (!mkdtemp(s->dir)) {
            scen_msg(err, errsize, "cannot create %s: %s", s->dir,
                     strerror(errno));
            s->dir[0] = 0;
            return -1;
        }
        snprintf(s->path, sizeof s->path, "%.4000s/store", s->dir);
        evs_open_options o = EVS_OPEN_OPTIONS_INIT;
        s->seg_size = (ctx->quick ? SEG_MB_QUICK : SEG_MB) << 20;
        o.segment_size = s->seg_size;
        if ((rc = evs_open(&s->db, s->path, &o)) < 0) {
            scen_fail(err, errsize, rc, "open %s", s->path);
            return -1;
        }
        s->own = 1;
    }
    uint64_t want = (uint64_t)(s->pg ? (ctx->quick ? LOAD_MB_PG_QUICK : LOAD_MB_PG)
                                     : (ctx->quick ? LOAD_MB_QUICK : LOAD_MB))
                    << 20;
    uint64_t t0 = now_ns();
    if (load(s, want, ctx->seed, err, errsize) < 0)
        return -1;
    s->load_s = (double)(now_ns() - t0) / 1e9;
    t0 = now_ns();
    if (rules(s, err, errsize) < 0)
        return -1;
    s->rules_s = (double)(now_ns() - t0) / 1e9;
    fprintf(stderr,
            "evs bench: scavenge: loaded %llu events (%.1f MiB) into %u "
            "streams in %.1f s; %llu eligible\n",
            (unsigned long long)s->events, (double)s->data_bytes / 1048576.0,
            s->nstreams, s->load_s, (unsigned long long)s->eligible);
    return 0;
}

/* ------------------------------------------------------------------ */
/* The run: appends and reads at fixed rates, without, then during      */
/* ------------------------------------------------------------------ */

static void sleep_until(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static void note_error(phase_figs *f, char *msg)
{
    if (!f->error[0])
        snprintf(f->error, sizeof f->error, "%s", msg);
}

static int do_append(scav_thread *t, uint64_t n, uint64_t *t0, uint64_t *t1,
                     char *err, size_t errsize)
{
    scav_state *s = t->s;
    char json[1100];
    int i = (int)(n % OWN_STREAMS);
    size_t size = 500 + (size_t)scen_below(&t->rng, 501);
    int len = event_json(json, sizeof json, (uint32_t)t->id, n, size);
    evs_event_data ev;
    evs_append_result res;
    event_init(&ev, "Appended", json, (size_t)len);
    *t0 = now_ns();
    int rc = evs_append(&res, s->db, s->tenant, t->stream[i], t->version[i],
                        &ev, 1);
    *t1 = now_ns();
    if (rc == 0) {
        t->version[i]++;
        return OP_COMMITTED;
    }
    scen_fail(err, errsize, rc, "append to %s at version %lld", t->stream[i],
              (long long)t->version[i]);
    return rc == EVS_ECONFLICT ? OP_CONFLICT : OP_ERROR;
}

static int do_read(scav_thread *t, uint64_t *t0, uint64_t *t1, uint64_t *items,
                   char *err, size_t errsize)
{
    scav_state *s = t->s;
    char name[32];
    uint32_t i;
    do /* a live stream with events */
        i = (uint32_t)scen_below(&t->rng, s->nstreams);
    while (!live(i) || s->len[i] == 0);
    stream_name(name, sizeof name, i);
    int64_t want = s->len[i] < READ_LIMIT ? s->len[i] : READ_LIMIT, got = 0;
    evs_iter *it = NULL;
    const evs_event *e;
    *t0 = now_ns();
    int rc = evs_read_stream(&it, s->db, s->tenant, name, 0, EVS_FORWARD,
                             READ_LIMIT);
    while (rc == 0 && (rc = evs_iter_next(&e, it)) == 0) {
        if (e->stream_version != got) {
            *t1 = now_ns();
            evs_iter_free(it);
            scen_msg(err, errsize, "read of %s: version %lld where %lld was "
                     "expected", name, (long long)e->stream_version,
                     (long long)got);
            return OP_ERROR;
        }
        got++;
    }
    *t1 = now_ns();
    evs_iter_free(it);
    *items += (uint64_t)got;
    if (rc != EVS_ITEROVER) {
        scen_fail(err, errsize, rc, "read of live stream %s", name);
        return OP_ERROR;
    }
    if (got != want) {
        scen_msg(err, errsize, "read of live stream %s: %lld events, %lld "
                 "expected", name, (long long)got, (long long)want);
        return OP_ERROR;
    }
    return OP_COMMITTED;
}

static void *worker(void *arg)
{
    scav_thread *t = arg;
    scav_state *s = t->s;
    double rate = t->reader ? READ_RATE : APPEND_RATE / s->nappenders;
    uint64_t period = (uint64_t)(1e9 / rate);
    /* the appenders' schedules interleave */
    uint64_t next = s->start_ns +
                    (t->reader ? 0
                               : (uint64_t)((double)t->id * 1e9 / APPEND_RATE));
    char err[256];
    for (uint64_t n = 0;; n++) {
        uint64_t now = now_ns();
        if (next > now)
            sleep_until(next);
        else if (now - next > 100000000u)
            next = now; /* over 100 ms behind: no burst to catch up */
        next += period;
        int ph = atomic_load(&s->phase);
        if (ph == PH_STOP || atomic_load(&g_interrupted))
            break;
        uint64_t t0 = 0, t1 = 0, items = 0;
        err[0] = 0;
        int rc = t->reader ? do_read(t, &t0, &t1, &items, err, sizeof err)
                           : do_append(t, n, &t0, &t1, err, sizeof err);
        phase_figs *f = &t->ph[ph];
        f->c.attempted++;
        f->c.items += t->reader ? items : rc == OP_COMMITTED;
        if (rc == OP_COMMITTED)
            f->c.committed++;
        else if (rc == OP_CONFLICT)
            f->c.conflicts++;
        else
            f->c.errors++;
        if (rc != OP_COMMITTED)
            note_error(f, err);
        samples_push(&f->lat, t1 - t0);
    }
    return NULL;
}

static void scav_progress(void *ctx, uint64_t done, uint64_t total)
{
    scav_state *s = ctx;
    atomic_store(&s->examined, done);
    atomic_store(&s->examined_total, total);
}

/* Nearest-rank percentile of sorted v[0..n) as bench_util.c takes it. */
static double pct_ms(const uint64_t *v, size_t n, double p)
{
    uint64_t bp = (uint64_t)llround(p * 100.0);
    size_t rank = (size_t)((bp * (uint64_t)n + 9999) / 10000);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return (double)v[rank - 1] / 1e6;
}

/* The merged figures of one phase of the appenders (reader 0) or of the
 * reader (reader 1). */
static void merge(scav_state *s, int ph, int reader, op_counts *c, samples *all,
                  char *error, size_t errsize)
{
    memset(c, 0, sizeof *c);
    error[0] = 0;
    for (int t = 0; t <= s->nappenders; t++) {
        scav_thread *x = &s->th[t];
        if (x->reader != reader)
            continue;
        counts_add(c, &x->ph[ph].c);
        samples_append(all, &x->ph[ph].lat);
        if (!error[0] && x->ph[ph].error[0])
            snprintf(error, errsize, "%s", x->ph[ph].error);
    }
}

static void fill_level(level_result *l, scav_state *s, int ph, double window_s,
                       double warmup_s)
{
    samples all = {0};
    memset(l, 0, sizeof *l);
    l->threads = s->nappenders;
    l->events_per_append = 1;
    l->warmup_s = warmup_s;
    l->window_s = window_s > 0 ? window_s : 1e-9;
    merge(s, ph, 0, &l->c, &all, l->error, sizeof l->error);
    if (ph == PH_WITHOUT) {
        samples w = {0};
        char e[256];
        merge(s, PH_WARM, 0, &l->warm, &w, e, sizeof e);
        free(w.v);
        if (!l->error[0] && e[0])
            snprintf(l->error, sizeof l->error, "warm-up: %.200s", e);
    }
    l->ops_per_s = (double)l->c.committed / l->window_s;
    l->events_per_s = l->ops_per_s;
    l->items_per_s = (double)l->c.items / l->window_s;
    l->lat = summarize(&all);
    for (int i = 0; i < CURVE_POINTS && all.n; i++)
        l->curve_ms[i] = pct_ms(all.v, all.n, curve_pct[i]);
    l->other_cpu_s = -1;
    free(all.v);
}

static void add_figure(bench_figures *fg, const char *name, double v, int threads)
{
    if (fg->n >= BENCH_MAX_FIGURES)
        return;
    bench_figure *f = &fg->f[fg->n++];
    snprintf(f->name, sizeof f->name, "%s", name);
    f->value = v;
    f->threads = threads;
}

static double ratio(double a, double b) { return b > 0 ? a / b : 0; }

static json_t *j_phase(const op_counts *c, const lat_summary *l, double win)
{
    return json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:f, s:{s:I, s:f, s:f, s:f, s:f, s:f, s:f}}",
        "attempted", (json_int_t)c->attempted, "committed",
        (json_int_t)c->committed, "conflicts", (json_int_t)c->conflicts,
        "errors", (json_int_t)c->errors, "items", (json_int_t)c->items,
        "per_s", win > 0 ? (double)c->committed / win : 0.0, "latency_ms",
        "samples", (json_int_t)l->n, "min", l->min, "p50", l->p50, "p90",
        l->p90, "p95", l->p95, "p99", l->p99, "max", l->max);
}

/* The report's figures: Markdown and JSON (ctx->figures). */
static void report(scav_state *s, bench_figures *fg, const level_result *lv,
                   int n, const lat_summary rd[2], const op_counts rc[2])
{
    const evs_scavenge_result *r = &s->res;
    double el = (double)r->elapsed_us / 1e6;
    int ok = s->ran && s->scav_rc == 0;
    double mbs = ok && el > 0 ? (double)r->bytes_before / 1e6 / el : 0;
    uint64_t examined = atomic_load(&s->examined);
    double xmbs = ok && el > 0 ? (double)examined / 1e6 / el : 0;
    double evs_s = ok && el > 0 ? (double)r->events_removed / el : 0;
    int have2 = n >= 2;
    double ap50 = have2 ? ratio(lv[1].lat.p50, lv[0].lat.p50) : 0;
    double ap99 = have2 ? ratio(lv[1].lat.p99, lv[0].lat.p99) : 0;
    double rp50 = ratio(rd[1].p50, rd[0].p50), rp99 = ratio(rd[1].p99, rd[0].p99);

    if (ok && !s->pg && r->bytes_before > 0)
        add_figure(fg, "scavenge_mb_per_s", mbs, s->nappenders);
    else if (ok && s->pg)
        snprintf(fg->note, sizeof fg->note,
                 "PostgreSQL: the scavenge deletes rows and reports no log "
                 "bytes (events removed/s instead)");
    else if (ok)
        snprintf(fg->note, sizeof fg->note,
                 "the scavenge rewrote no segment");
    if (ok) {
        add_figure(fg, "scavenge_events_removed_per_s", evs_s, s->nappenders);
        if (!s->pg)
            add_figure(fg, "scavenge_examined_mb_per_s", xmbs, s->nappenders);
    }
    if (ok && have2 && lv[0].lat.n && lv[1].lat.n) {
        add_figure(fg, "append_p99_ratio", ap99, s->nappenders);
        add_figure(fg, "append_p50_ratio", ap50, s->nappenders);
        if (rd[0].n && rd[1].n) {
            add_figure(fg, "read_p99_ratio", rp99, s->nappenders);
            add_figure(fg, "read_p50_ratio", rp50, s->nappenders);
        }
    }
    if (!ok && !fg->note[0])
        snprintf(fg->note, sizeof fg->note, "%s",
                 s->scav_err[0] ? s->scav_err : "the scavenge did not run");

    /* Markdown */
    char *md = NULL;
    size_t mdlen = 0;
    FILE *f = open_memstream(&md, &mdlen);
    if (f) {
        if (s->pg)
            fprintf(f, "**Store.** The bench's PostgreSQL database, tenant "
                       "`%s`: ", s->tenant);
        else
            fprintf(f, "**Store.** An embedded store of its own (%s), %u MiB "
                       "segments: ", s->path, s->seg_size >> 20);
        fprintf(f, "%llu events (%.1f MiB of data, 500-1000 B each) in %u "
                   "streams, loaded in %.2f s; rules set in %.2f s: %u "
                   "streams tombstoned, %u soft-deleted, %u with max_count "
                   "%d, so %llu events (%.1f %%) eligible. ",
                (unsigned long long)s->events,
                (double)s->data_bytes / 1048576.0, s->nstreams, s->load_s,
                s->rules_s, s->tombstoned, s->deleted, s->capped, MAX_COUNT,
                (unsigned long long)s->eligible,
                s->events ? 100.0 * (double)s->eligible / (double)s->events : 0);
        if (!s->pg && s->before_ok)
            fprintf(f, "Log on disk before: %.1f MiB in %llu segments%s",
                    (double)s->before.log_bytes / 1048576.0,
                    (unsigned long long)s->before.segments,
                    s->after_ok ? "" : ".");
        if (!s->pg && s->after_ok)
            fprintf(f, ", after: %.1f MiB (allocated blocks: the rewritten "
                       "segments are sparse).",
                    (double)s->after.log_bytes / 1048576.0);
        fprintf(f, "\n\n");
        if (!s->ran)
            fprintf(f, "**The scavenge did not run.**\n\n");
        else if (s->scav_rc != 0)
            fprintf(f, "**The scavenge failed: %s.**\n\n", s->scav_err);
        else {
            fprintf(f, "**Scavenge** (on the bench's thread, while the "
                       "appends and reads below went on): %.3f s; %llu events "
                       "removed of %llu streams",
                    el, (unsigned long long)r->events_removed,
                    (unsigned long long)r->streams);
            if (!s->pg)
                fprintf(f, "; %llu segments examined (%.1f MB), %llu "
                           "rewritten: %.1f MB before, %.1f MB after; "
                           "**%.1f MB/s of log rewritten** (bytes of the "
                           "rewritten segments before / elapsed, MB = "
                           "10^6 bytes), %.1f MB/s examined",
                        (unsigned long long)r->segments_examined,
                        (double)examined / 1e6,
                        (unsigned long long)r->segments_rewritten,
                        (double)r->bytes_before / 1e6,
                        (double)r->bytes_after / 1e6, mbs, xmbs);
            fprintf(f, "; %.1f events removed/s.\n\n", evs_s);
        }
        fprintf(f, "Rows 1 and 2 of the table above: the appends without a "
                   "scavenge and during it (%d thread%s, together %.0f "
                   "appends/s on a fixed schedule; timed: the evs_append "
                   "call). The reads of a live stream (its first %d events, "
                   "%.0f/s, one thread) beside them:\n\n",
                s->nappenders, s->nappenders == 1 ? "" : "s", APPEND_RATE,
                READ_LIMIT, READ_RATE);
        fprintf(f, "| phase | window s | appends | append p50 ms | append "
                   "p99 ms | append max ms | reads | read p50 ms | read p99 "
                   "ms | read max ms |\n|---|---|---|---|---|---|---|---|---|"
                   "---|\n");
        static const char *const names[2] = {"without a scavenge",
                                             "during the scavenge"};
        for (int p = 0; p < 2 && p < n; p++)
            fprintf(f, "| %s | %.3f | %llu | %.3f | %.3f | %.3f | %llu | "
                       "%.3f | %.3f | %.3f |\n",
                    names[p], lv[p].window_s,
                    (unsigned long long)lv[p].c.attempted, lv[p].lat.p50,
                    lv[p].lat.p99, lv[p].lat.max,
                    (unsigned long long)rc[p].attempted, rd[p].p50, rd[p].p99,
                    rd[p].max);
        if (have2)
            fprintf(f, "| during ÷ without | | | %.2f | %.2f | %.2f | | %.2f "
                       "| %.2f | %.2f |\n",
                    ap50, ap99, ratio(lv[1].lat.max, lv[0].lat.max), rp50,
                    rp99, ratio(rd[1].max, rd[0].max));
        for (int p = 0; p < 2 && p < n; p++)
            fprintf(f, "%s %s: %.2f s of CPU (user %.2f + sys %.2f) in %.3f "
                       "s, %llu fdatasync/fsync calls (%.2f s inside them)%s",
                    p ? "" : "\nThe process over the windows (every thread: "
                             "appends, reads, the scavenge):",
                    p ? "during" : "without", lv[p].cpu_user + lv[p].cpu_sys,
                    lv[p].cpu_user, lv[p].cpu_sys, lv[p].window_s,
                    (unsigned long long)lv[p].syncs, lv[p].sync_s,
                    p + 1 < n ? ";" : ".\n");
        if (rc[0].errors + rc[1].errors)
            fprintf(f, "\nRead errors: %llu.\n",
                    (unsigned long long)(rc[0].errors + rc[1].errors));
        fclose(f);
        fg->md = md;
    }

    /* JSON */
    json_t *o = json_object();
    json_object_set_new(
        o, "store",
        json_pack("{s:s, s:s?, s:I, s:I, s:I, s:I, s:f, s:f, s:I, s:I, s:I, "
                  "s:I, s:i}",
                  "backend", s->pg ? "postgresql" : "embedded", "path",
                  s->pg ? NULL : s->path, "segment_size",
                  (json_int_t)s->seg_size, "streams", (json_int_t)s->nstreams,
                  "events", (json_int_t)s->events, "data_bytes",
                  (json_int_t)s->data_bytes, "load_s", s->load_s, "rules_s",
                  s->rules_s, "eligible_events", (json_int_t)s->eligible,
                  "tombstoned_streams", (json_int_t)s->tombstoned,
                  "deleted_streams", (json_int_t)s->deleted,
                  "max_count_streams", (json_int_t)s->capped, "max_count",
                  MAX_COUNT));
    json_t *st = json_object_get(o, "store");
    if (!s->pg && s->before_ok)
        json_object_set_new(st, "log_bytes_before",
                            json_integer((json_int_t)s->before.log_bytes));
    if (!s->pg && s->after_ok)
        json_object_set_new(st, "log_bytes_after",
                            json_integer((json_int_t)s->after.log_bytes));
    json_object_set_new(
        o, "scavenge",
        json_pack("{s:b, s:s?, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, "
                  "s:f, s:f, s:f}",
                  "ok", ok, "error", ok ? NULL : fg->note, "streams",
                  (json_int_t)r->streams, "events_removed",
                  (json_int_t)r->events_removed, "segments_examined",
                  (json_int_t)r->segments_examined, "segments_rewritten",
                  (json_int_t)r->segments_rewritten, "segments_resumed",
                  (json_int_t)r->segments_resumed, "bytes_before",
                  (json_int_t)r->bytes_before, "bytes_after",
                  (json_int_t)r->bytes_after, "bytes_examined",
                  (json_int_t)examined, "elapsed_s", el, "mb_per_s", mbs,
                  "examined_mb_per_s", xmbs, "events_removed_per_s", evs_s));
    json_object_set_new(o, "append_threads", json_integer(s->nappenders));
    json_object_set_new(o, "append_rate_per_s", json_real(APPEND_RATE));
    json_object_set_new(o, "read_rate_per_s", json_real(READ_RATE));
    json_object_set_new(o, "read_limit", json_integer(READ_LIMIT));
    json_t *phs = json_array();
    static const char *const keys[2] = {"without", "during"};
    for (int p = 0; p < 2 && p < n; p++) {
        json_t *x = json_pack("{s:s, s:f}", "phase", keys[p], "window_s",
                              lv[p].window_s);
        json_object_set_new(x, "appends",
                            j_phase(&lv[p].c, &lv[p].lat, lv[p].window_s));
        json_object_set_new(x, "reads", j_phase(&rc[p], &rd[p], lv[p].window_s));
        json_array_append_new(phs, x);
    }
    json_object_set_new(o, "phases", phs);
    json_object_set_new(o, "ratios",
                        have2 ? json_pack("{s:f, s:f, s:f, s:f}", "append_p50",
                                          ap50, "append_p99", ap99, "read_p50",
                                          rp50, "read_p99", rp99)
                              : json_null());
    fg->json = json_dumps(o, JSON_COMPACT);
    json_decref(o);
}

static int scav_run(void *state, bench_ctx *ctx, const int *levels, int nlevels,
                    struct level_result *lv, int *n, char *err, size_t errsize)
{
    scav_state *s = state;
    bench_figures *fg = ctx->figures;
    int rc = 0;
    *n = 0;
    s->nappenders = nlevels > 0 ? levels[0] : 1;
    if (s->nappenders < 1)
        s->nappenders = 1;
    if (s->nappenders > MAX_APPENDERS)
        s->nappenders = MAX_APPENDERS;
    s->th = calloc((size_t)s->nappenders + 1, sizeof *s->th);
    if (!s->th) {
        scen_msg(err, errsize, "out of memory");
        return -1;
    }
    if (!s->pg)
        s->before_ok = evs_stats_get(&s->before, s->db) == 0;

    atomic_store(&s->phase, PH_WARM);
    s->start_ns = now_ns() + 1000000u;
    int started = 0;
    for (int t = 0; t <= s->nappenders; t++) {
        scav_thread *x = &s->th[t];
        x->s = s;
        x->id = t;
        x->reader = t == s->nappenders;
        x->rng = scen_seed(ctx->seed, 1000 + t);
        for (int i = 0; i < OWN_STREAMS; i++) {
            snprintf(x->stream[i], sizeof x->stream[i], "app-%d-%d", t, i);
            x->version[i] = EVS_NO_STREAM;
        }
        if (pthread_create(&x->th, NULL, worker, x) != 0) {
            scen_msg(err, errsize, "pthread_create: %s", strerror(errno));
            rc = -1;
            break;
        }
        started++;
    }
    uint64_t t_warm = now_ns(), t_a = t_warm, t_b = t_warm, t_end = t_warm;
    if (rc == 0) {
        sleep_s(ctx->warmup);
        t_a = now_ns();
        proc_mark(&s->pm[0]);
        atomic_store(&s->phase, PH_WITHOUT);
        sleep_s(ctx->seconds);
        t_b = now_ns();
        proc_mark(&s->pm[1]);
        atomic_store(&s->phase, PH_DURING);
        if (!atomic_load(&g_interrupted)) {
            evs_scavenge_options so = EVS_SCAVENGE_OPTIONS_INIT;
            so.progress = scav_progress;
            so.ctx = s;
            s->ran = 1;
            s->scav_rc = evs_scavenge(&s->res, s->db, &so);
            if (s->scav_rc != 0)
                scen_fail(s->scav_err, sizeof s->scav_err, s->scav_rc,
                          "evs_scavenge");
        }
        t_end = now_ns();
        proc_mark(&s->pm[2]);
    }
    atomic_store(&s->phase, PH_STOP);
    for (int t = 0; t < started; t++)
        pthread_join(s->th[t].th, NULL);
    if (rc < 0)
        return -1;
    if (!s->pg)
        s->after_ok = evs_stats_get(&s->after, s->db) == 0;

    fill_level(&lv[0], s, PH_WITHOUT, (double)(t_b - t_a) / 1e9,
               (double)(t_a - t_warm) / 1e9);
    fill_level(&lv[1], s, PH_DURING, (double)(t_end - t_b) / 1e9, 0);
    for (int p = 0; p < 2; p++) { /* the process over each window */
        lv[p].syncs = s->pm[p + 1].syncs - s->pm[p].syncs;
        lv[p].sync_s = (double)(s->pm[p + 1].sync_ns - s->pm[p].sync_ns) / 1e9;
        lv[p].cpu_user = s->pm[p + 1].user - s->pm[p].user;
        lv[p].cpu_sys = s->pm[p + 1].sys - s->pm[p].sys;
    }
    *n = 2;
    lat_summary rd[2];
    op_counts rcs[2];
    for (int p = 0; p < 2; p++) {
        samples all = {0};
        char e[256];
        merge(s, p == 0 ? PH_WITHOUT : PH_DURING, 1, &rcs[p], &all, e, sizeof e);
        rd[p] = summarize(&all);
        free(all.v);
        if (e[0] && !err[0])
            scen_msg(err, errsize, "a read %s the scavenge failed: %s",
                     p == 0 ? "without" : "during", e);
    }
    report(s, fg, lv, *n, rd, rcs);
    if (s->scav_rc != 0) {
        scen_msg(err, errsize, "%s", s->scav_err);
        return -1;
    }
    if (err[0])
        return -1; /* a read failed */
    if (atomic_load(&g_interrupted)) {
        scen_msg(err, errsize, "interrupted");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Check                                                               */
/* ------------------------------------------------------------------ */

static int count_stream(evs_db *db, const char *tenant, const char *stream,
                        int64_t *count, char *err, size_t errsize)
{
    evs_iter *it = NULL;
    const evs_event *e;
    int rc = evs_read_stream(&it, db, tenant, stream, 0, EVS_FORWARD, 0);
    *count = 0;
    while (rc == 0 && (rc = evs_iter_next(&e, it)) == 0)
        (*count)++;
    evs_iter_free(it);
    if (rc != EVS_ITEROVER) {
        scen_fail(err, errsize, rc, "reading %s", stream);
        return -1;
    }
    return 0;
}

static int scav_check(void *state, bench_ctx *ctx, char *err, size_t errsize)
{
    scav_state *s = state;
    char name[32];
    int64_t got;
    (void)ctx;
    if (!s->ran || s->scav_rc != 0)
        return 0; /* the run said why */
    if (s->res.events_removed != s->eligible) {
        scen_msg(err, errsize, "the scavenge removed %llu events; the rules "
                 "made %llu eligible", (unsigned long long)s->res.events_removed,
                 (unsigned long long)s->eligible);
        return -1;
    }
    for (uint32_t i = 0; i < s->nstreams; i++) {
        if (!live(i) && i % 6 != 2)
            continue;
        stream_name(name, sizeof name, i);
        if (count_stream(s->db, s->tenant, name, &got, err, errsize) < 0)
            return -1;
        int64_t want = live(i) ? s->len[i]
                       : s->len[i] < MAX_COUNT ? s->len[i] : MAX_COUNT;
        if (got != want) {
            scen_msg(err, errsize, "stream %s reads %lld events after the "
                     "scavenge, %lld expected", name, (long long)got,
                     (long long)want);
            return -1;
        }
    }
    for (int t = 0; t < s->nappenders; t++)
        for (int i = 0; i < OWN_STREAMS; i++) {
            scav_thread *x = &s->th[t];
            if (count_stream(s->db, s->tenant, x->stream[i], &got, err,
                             errsize) < 0)
                return -1;
            if (got != x->version[i] + 1) {
                scen_msg(err, errsize, "stream %s holds %lld events, %lld "
                         "acknowledged", x->stream[i], (long long)got,
                         (long long)(x->version[i] + 1));
                return -1;
            }
        }
    return 0;
}

/* ------------------------------------------------------------------ */

static const int scav_levels[] = {16};
static const int scav_quick[] = {16};

static const bench_target scav_targets[] = {
    {"scavenge rate: log rewritten", "evstore goal (issue 17)", BENCH_FIGURE,
     1, 200, 0},
    {"append p99 during a scavenge ÷ without", "evstore goal (issue 17)",
     BENCH_FIGURE, 0, 2, 0},
};
static const bench_target_figure scav_target_figures[] = {
    {"scavenge_mb_per_s", "MB/s"},
    {"append_p99_ratio", "×"},
};

const bench_scenario scen_scavenge = {
    .name = "scavenge",
    .title = "Scavenge while appending and reading",
    .what = "A store of its own (embedded: a fresh store with 8 MiB "
            "segments, 1 MiB with --quick, beside the bench's; PostgreSQL: "
            "the bench's database, the scenario's tenant) loaded with 384 "
            "MiB (quick: 16; PostgreSQL 24 and 2) of 500 B-1 KB JSON events "
            "interleaved over 3,000 streams (quick: 240); a sixth of the "
            "streams tombstoned, a sixth soft-deleted, a sixth with "
            "max_count 10: about half the events eligible. Then the level's "
            "threads (16) append single events to their own streams, 2,000/s "
            "together on a fixed schedule, and one thread reads the first "
            "100 events of a random live stream 200 times a second: for the "
            "warm-up, a window of --seconds without a scavenge (level row "
            "1), then while evs_scavenge runs, until it returns (row 2). "
            "Timed: the evs_append call. Items: events written. Goals: the "
            "log rewritten at 200 MB/s or more, and append p99 during the "
            "scavenge within 2x of without (issue 17). Check: the scavenge "
            "removed exactly the eligible events; live and max_count streams "
            "read what they should; the append streams hold the "
            "acknowledged events.",
    .item = "events",
    SCEN_LEVELS(scav_levels, scav_quick),
    SCEN_TARGETS(scav_targets),
    .setup = scav_setup,
    .check = scav_check,
    .teardown = scav_teardown,
    .run = scav_run,
    .target_figures = scav_target_figures,
};
