/*
 * dcb_bench.c -- benchmark of DCB (dynamic consistency boundary) queries
 * and conditional appends of the embedded engine, over the public API
 * only (include/evstore.h).
 *
 * What it measures, on one store in a temporary directory:
 *
 *   1. loading it: N events (default 1,000,000) across 12 tenants, 80 % of
 *      them in 2 tenants (20 % of 12, rounded), in 100-event appends; each
 *      event has 1-3 tags (book:<id>, student:<id>, course:<id>,
 *      region:<one of 5>) and one of 10 types; library and invoice events
 *      belong to no stream, student and course events to streams;
 *   2. query latency from 1 thread, each query over a random key, reading
 *      every result: (a) one selective tag, (b) two types + that tag,
 *      (c) one common type over a big tenant (events/s), (d) the newest
 *      event of a type (backward, limit 1: the invoice-number pattern);
 *   3. the typical DCB command at 1 thread: read by query, take the
 *      consistency marker, decide, append with that condition;
 *   4. conditional single-event appends from 1, 64, 256 threads, each
 *      claiming boundaries nobody else touches (no conflict is possible),
 *      the same appends without a condition as a control, and 64 threads
 *      racing over 100 boundaries, where conflicts are the point;
 *   5. the DCB goals (docs/PERFORMANCE.md), with verdicts, and the seed's
 *      figures.
 *
 * Honest accounting as in engine_bench (docs/PERFORMANCE.md): every
 * operation ends in exactly one of committed / conflict / error and the
 * counts are printed beside every rate; latency percentiles are
 * nearest-rank percentiles of sorted per-operation samples; warm-up
 * operations are excluded and counted apart. Every answer is checked: the
 * bench keeps a model of what it loaded (per book, per type, the last
 * invoice number), so a query that returns a wrong count is an error, and
 * the racing boundaries are read back at the end: a seat number given
 * twice would mean two appends passed the same condition.
 *
 * Options, timed levels, percentiles, the syncfs between phases and the
 * report pieces are bench_util.c's, shared with the other benchmarks; the
 * syncs are counted by sync_probe.c.
 */
#include "bench_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROG "dcb_bench"
#define NTENANTS 12
#define NBIG 2         /* the big tenants: 20 % of 12, rounded */
#define BIG_SHARE 0.80 /* of all events, shared by the big tenants */
#define LOAD_BATCH 100
#define NREGIONS 5
#define PAYLOAD_MAX 512
#define MAX_PASSES 16

/* Phases, for --only (the load always runs). */
#define P_QUERY 0x1u
#define P_WORKLOAD 0x2u
#define P_APPEND 0x4u
#define P_CONTROL 0x8u
#define P_CONTENDED 0x10u

/* ------------------------------------------------------------------ */
/* The data model                                                      */
/* ------------------------------------------------------------------ */

enum {
    T_BOOK_DEFINED,
    T_BOOK_LENT,
    T_BOOK_RETURNED,
    T_BOOK_RESERVED,
    T_STUDENT_REGISTERED,
    T_COURSE_DEFINED,
    T_STUDENT_SUBSCRIBED,
    T_STUDENT_UNSUBSCRIBED,
    T_INVOICE_CREATED,
    T_PAYMENT_RECEIVED,
    NTYPES
};

/* Type names and their share of the events, in percent. */
static const struct {
    const char *name;
    int weight;
} g_types[NTYPES] = {
    {"BookDefined", 4},       {"BookLent", 26},
    {"BookReturned", 22},     {"BookReserved", 5},
    {"StudentRegistered", 5}, {"CourseDefined", 1},
    {"StudentSubscribed", 14}, {"StudentUnsubscribed", 4},
    {"InvoiceCreated", 11},   {"PaymentReceived", 8},
};

static const char *const g_regions[NREGIONS] = {"north", "south", "east",
                                                "west", "central"};

/* What the bench loaded into one tenant: the key spaces, and the counts
 * every query answer is checked against. */
typedef struct tmodel {
    char name[16];
    uint64_t target, loaded;
    uint32_t nbooks, nstudents, ncourses;
    uint64_t types[NTYPES];   /* events per type */
    uint64_t invoices;        /* InvoiceCreated events = the last number */
    uint32_t *book_events;    /* per book: events tagged book:<id> */
    uint32_t *book_loans;     /* per book: BookLent + BookReturned */
    uint8_t *book_lent;       /* per book: its newest loan event is BookLent */
    uint64_t streamless, streamed, tags;
} tmodel;

static tmodel g_tenants[NTENANTS];

static int pick_type(uint64_t *rng)
{
    int r = (int)rng_below(rng, 100);
    for (int t = 0; t < NTYPES; t++) {
        if (r < g_types[t].weight)
            return t;
        r -= g_types[t].weight;
    }
    return NTYPES - 1;
}

/* 80 % of the events to the NBIG big tenants, the rest evenly to the
 * others; key spaces grow with a tenant's events (~50,000 books, 20,000
 * students and 1,000 courses in a big tenant of a 1 M-event store). */
static void tenants_plan(uint64_t events)
{
    uint64_t big = (uint64_t)((double)events * BIG_SHARE) / NBIG;
    uint64_t small = (events - big * NBIG) / (NTENANTS - NBIG);
    uint64_t left = events - big * NBIG - small * (NTENANTS - NBIG);
    for (int i = 0; i < NTENANTS; i++) {
        tmodel *t = &g_tenants[i];
        snprintf(t->name, sizeof t->name, "tenant-%02d", i);
        t->target = i < NBIG ? big : small;
        if (i == NTENANTS - 1)
            t->target += left;
        t->nbooks = (uint32_t)(t->target / 8 > 10 ? t->target / 8 : 10);
        t->nstudents = (uint32_t)(t->target / 20 > 10 ? t->target / 20 : 10);
        t->ncourses = (uint32_t)(t->target / 400 > 5 ? t->target / 400 : 5);
        t->book_events = xcalloc(t->nbooks, sizeof *t->book_events);
        t->book_loans = xcalloc(t->nbooks, sizeof *t->book_loans);
        t->book_lent = xcalloc(t->nbooks, sizeof *t->book_lent);
    }
}

/* ------------------------------------------------------------------ */
/* Events                                                              */
/* ------------------------------------------------------------------ */

enum { S_NONE, S_STUDENT, S_COURSE };

/* One generated event with its own storage. */
typedef struct gen_event {
    int type;
    int skind;      /* S_*: the stream it belongs to */
    uint32_t sid;   /* student or course id of that stream */
    char stream[32];
    char tagbuf[3][48];
    const char *tags[3];
    int ntags;
    uint32_t book;  /* book events: the book; else UINT32_MAX */
    char payload[PAYLOAD_MAX];
    size_t len;
} gen_event;

/* Appends to a JSON object under construction in buf[0..*n). */
static void json_add(char *buf, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void json_add(char *buf, size_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf + *n, PAYLOAD_MAX - *n, fmt, ap);
    va_end(ap);
    if (k > 0)
        *n += (size_t)k < PAYLOAD_MAX - *n ? (size_t)k : PAYLOAD_MAX - 1 - *n;
}

/* Close the object, padded with a note to about want bytes (at most
 * PAYLOAD_MAX - 1). */
static size_t json_finish(char *buf, size_t n, size_t want)
{
    if (want > PAYLOAD_MAX - 1)
        want = PAYLOAD_MAX - 1;
    if (want >= n + 12) {
        json_add(buf, &n, ",\"note\":\"");
        while (n < want - 2)
            buf[n++] = 'x';
        buf[n++] = '"';
    }
    buf[n++] = '}';
    buf[n] = 0;
    return n;
}

static void tag_add(gen_event *g, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void tag_add(gen_event *g, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->tagbuf[g->ntags], sizeof g->tagbuf[0], fmt, ap);
    va_end(ap);
    g->tags[g->ntags] = g->tagbuf[g->ntags];
    g->ntags++;
}

/* A random event of tenant t; invoice: the number an InvoiceCreated gets. */
static void gen_event_make(gen_event *g, const tmodel *t, uint64_t *rng,
                           uint64_t seq, uint64_t invoice)
{
    int ty = pick_type(rng);
    uint32_t book = (uint32_t)rng_below(rng, t->nbooks);
    uint32_t student = (uint32_t)rng_below(rng, t->nstudents);
    uint32_t course = (uint32_t)rng_below(rng, t->ncourses);
    const char *region = g_regions[rng_below(rng, NREGIONS)];
    size_t n = 0;
    g->type = ty;
    g->ntags = 0;
    g->skind = S_NONE;
    g->stream[0] = 0;
    g->book = UINT32_MAX;
    json_add(g->payload, &n, "{\"seq\":%llu", (unsigned long long)seq);
    switch (ty) {
    case T_BOOK_DEFINED:
        tag_add(g, "book:%u", book);
        tag_add(g, "region:%s", region);
        json_add(g->payload, &n, ",\"book\":\"%u\",\"region\":\"%s\"", book,
                 region);
        g->book = book;
        break;
    case T_BOOK_LENT:
    case T_BOOK_RETURNED:
    case T_BOOK_RESERVED:
        tag_add(g, "book:%u", book);
        tag_add(g, "student:%u", student);
        json_add(g->payload, &n, ",\"book\":\"%u\",\"student\":\"%u\"", book,
                 student);
        if (ty == T_BOOK_RESERVED) {
            tag_add(g, "region:%s", region);
            json_add(g->payload, &n, ",\"region\":\"%s\"", region);
        }
        g->book = book;
        break;
    case T_STUDENT_REGISTERED:
    case T_PAYMENT_RECEIVED:
        tag_add(g, "student:%u", student);
        json_add(g->payload, &n, ",\"student\":\"%u\"", student);
        if (ty == T_STUDENT_REGISTERED) {
            tag_add(g, "region:%s", region);
            json_add(g->payload, &n, ",\"region\":\"%s\"", region);
        } else {
            json_add(g->payload, &n, ",\"amount\":%llu",
                     (unsigned long long)(seq * 7919 % 10000));
        }
        g->skind = S_STUDENT;
        g->sid = student;
        break;
    case T_COURSE_DEFINED:
        tag_add(g, "course:%u", course);
        tag_add(g, "region:%s", region);
        json_add(g->payload, &n, ",\"course\":\"%u\",\"capacity\":%u", course,
                 20 + course % 40);
        g->skind = S_COURSE;
        g->sid = course;
        break;
    case T_STUDENT_SUBSCRIBED:
    case T_STUDENT_UNSUBSCRIBED:
        tag_add(g, "student:%u", student);
        tag_add(g, "course:%u", course);
        json_add(g->payload, &n, ",\"student\":\"%u\",\"course\":\"%u\"",
                 student, course);
        g->skind = S_COURSE;
        g->sid = course;
        break;
    case T_INVOICE_CREATED:
        tag_add(g, "student:%u", student);
        tag_add(g, "region:%s", region);
        json_add(g->payload, &n, ",\"student\":\"%u\",\"number\":%llu",
                 student, (unsigned long long)invoice);
        break;
    }
    if (g->skind != S_NONE)
        snprintf(g->stream, sizeof g->stream, "%s-%u",
                 g->skind == S_STUDENT ? "student" : "course", g->sid);
    g->len = json_finish(g->payload, n, 120 + (size_t)rng_below(rng, 200));
}

/*
 * Write back everything dirty on the store's filesystem (syncfs) and say
 * what it cost. The index is written without syncs, so a phase leaves
 * dirty LMDB pages that the kernel writes back up to 30 s later, on the
 * disk the next phase's fdatasyncs use: each timed phase starts with a
 * flush, so it does not pay for an earlier one, and ends with one, which
 * measures the write-back it left behind.
 */
typedef struct flush_result {
    double s;        /* the syncfs call */
    uint64_t bytes;  /* the device wrote meanwhile (0: unknown) */
} flush_result;

static flush_result flush_fs(void)
{
    flush_result r = {0, 0};
    char err[PATH_MAX + 64];
    if (sync_fs(g_root, &r.s, &r.bytes, err, sizeof err) != 0)
        die("%s", err);
    return r;
}

/* ------------------------------------------------------------------ */
/* Options                                                             */
/* ------------------------------------------------------------------ */

typedef struct options {
    bench_opts b; /* --dir, --json, --md, --label, --quick, --keep, --only
                     (P_*) */
    uint64_t events, seed;
    double seconds, warmup;
    int threads[MAX_LEVELS];
    int nthreads;
    int race_threads, boundaries;
    long queries, commands;
    int passes;
} options;

static void usage(FILE *f)
{
    fprintf(f,
"usage: " PROG " [options]\n"
"\n"
"Benchmark of DCB queries and conditional appends on one embedded store:\n"
"load (12 tenants, 80/20), query latency, the read-decide-append command,\n"
"conditional appends (1/64/256 threads, and 64 threads racing over 100\n"
"boundaries), and issue 3's goals with verdicts. Markdown to stdout.\n"
"\n"
"  --dir DIR              where the temporary store goes (default: the\n"
"                         current directory)\n"
"  --quick                short run: 100,000 events, 1.5 s per level, fewer\n"
"                         queries\n"
"  --events N             events loaded (default 1000000, quick 100000)\n"
"  --seed N               seed of the generator (default 42)\n"
"  --json FILE            write every figure as JSON to FILE\n"
"  --md FILE              write the Markdown report to FILE as well\n"
"  --seconds S            measured seconds per append level (default 5,\n"
"                         quick 1.5)\n"
"  --warmup S             warm-up seconds per level (default 0.5, quick 0.3)\n"
"  --threads LIST         conditional append levels (default 1,64,256)\n"
"  --race-threads N       threads of the contended level (default 64)\n"
"  --boundaries N         boundaries they race over (default 100)\n"
"  --queries N            measured queries per kind (default 20000, quick\n"
"                         5000)\n"
"  --passes N             passes of the broad query (default 5, quick 3)\n"
"  --commands N           measured read-decide-append commands (default\n"
"                         5000, quick 1000)\n"
"  --only LIST            run only these phases after the load: query,\n"
"                         workload, append, control, contended\n"
"  --label TEXT           free text recorded in the report\n"
"  --keep                 keep the store instead of deleting it\n"
"  --help                 this text\n"
"\n"
"Exit status: 0; 2 bad arguments or unusable directory; 3 an operation\n"
"failed, a query answered wrongly, or a count did not match the store.\n");
}

/* Names the program, parses argv into o, starts the run. */
static void begin(options *o, bench_run *run, int argc, char **argv)
{
    static const char *const phases[] = {"query", "workload", "append",
                                         "control", "contended"};
    const bench_opt own[] = {
        BENCH_OPT_U64("--events", &o->events, 1000, 100000000, 1000000, 100000),
        BENCH_OPT_U64("--seed", &o->seed, 0, LONG_MAX, 42, 42),
        BENCH_OPT_SECONDS("--seconds", &o->seconds, 3600, 5.0, 1.5),
        BENCH_OPT_SECONDS0("--warmup", &o->warmup, 600, 0.5, 0.3),
        BENCH_OPT_LEVELS("--threads", o->threads, &o->nthreads, "1,64,256"),
        BENCH_OPT_INT("--race-threads", &o->race_threads, 1, 4096, 64, 64),
        BENCH_OPT_INT("--boundaries", &o->boundaries, 1, 1000000, 100, 100),
        BENCH_OPT_LONG("--queries", &o->queries, 1, 100000000, 20000, 5000),
        BENCH_OPT_INT("--passes", &o->passes, 1, MAX_PASSES, 5, 3),
        BENCH_OPT_LONG("--commands", &o->commands, 1, 100000000, 5000, 1000),
    };
    memset(o, 0, sizeof *o);
    bench_begin(run, &o->b, PROG, argc, argv, phases, BENCH_COUNT(phases), usage,
                own, BENCH_COUNT(own));
}

/* ------------------------------------------------------------------ */
/* 1. Load                                                             */
/* ------------------------------------------------------------------ */

typedef struct load_result {
    uint64_t events;
    op_counts c;         /* per 100-event append */
    double wall_s;       /* the whole load loop, generating events too */
    double append_s;     /* inside evs_append_ex */
    lat_summary lat;     /* per append */
    uint64_t syncs;
    double cpu_s;        /* process CPU over the load */
    uint64_t disk_bytes; /* the device wrote during the load */
    flush_result after;  /* the write-back it left behind */
    evs_stats st;        /* after the load */
    int store_check;     /* store events == loaded events */
    char error[256];
} load_result;

/* Apply a committed event to its tenant's model. */
static void model_add(tmodel *t, const gen_event *g)
{
    t->loaded++;
    t->types[g->type]++;
    t->tags += (uint64_t)g->ntags;
    if (g->skind == S_NONE)
        t->streamless++;
    else
        t->streamed++;
    if (g->type == T_INVOICE_CREATED)
        t->invoices++;
    if (g->book != UINT32_MAX) {
        t->book_events[g->book]++;
        if (g->type == T_BOOK_LENT || g->type == T_BOOK_RETURNED) {
            t->book_loans[g->book]++;
            t->book_lent[g->book] = g->type == T_BOOK_LENT;
        }
    }
}

/*
 * One 100-event append of tenant t: the streamless events in one part,
 * each stream's events in a part of their own (expected version any),
 * all written atomically by one evs_append_ex.
 */
static int load_batch(evs_db *db, tmodel *t, gen_event *gen, size_t n,
                      uint64_t *ns, char *err, size_t errsize)
{
    evs_event_data ev[LOAD_BATCH];
    evs_stream_append parts[LOAD_BATCH];
    size_t order[LOAD_BATCH], nparts = 0, k = 0;
    uint8_t placed[LOAD_BATCH] = {0};

    /* part 0: the streamless events, if any */
    for (size_t i = 0; i < n; i++)
        if (gen[i].skind == S_NONE) {
            order[k++] = i;
            placed[i] = 1;
        }
    if (k)
        parts[nparts++] = (evs_stream_append){NULL, EVS_ANY, NULL, k};
    for (size_t i = 0; i < n; i++) {
        if (placed[i])
            continue;
        size_t first = k;
        for (size_t j = i; j < n; j++)
            if (!placed[j] && gen[j].skind == gen[i].skind &&
                gen[j].sid == gen[i].sid) {
                order[k++] = j;
                placed[j] = 1;
            }
        parts[nparts++] =
            (evs_stream_append){gen[i].stream, EVS_ANY, NULL, k - first};
    }
    for (size_t i = 0, p = 0, left = 0; i < n; i++) {
        const gen_event *g = &gen[order[i]];
        if (left == 0) {
            parts[p].events = &ev[i];
            left = parts[p++].nevents;
        }
        left--;
        event_init(&ev[i], g_types[g->type].name, g->payload, g->len);
        ev[i].tags = g->tags;
        ev[i].ntags = (size_t)g->ntags;
    }
    evs_append_request req = EVS_APPEND_REQUEST_INIT;
    req.tenant = t->name;
    req.parts = parts;
    req.nparts = nparts;
    uint64_t t0 = now_ns();
    int rc = evs_append_ex(NULL, NULL, db, &req);
    *ns = now_ns() - t0;
    if (rc < 0)
        snprintf(err, errsize, "%s: %s", evs_strerror(rc), evs_last_error());
    return rc;
}

static void bench_load(evs_db *db, const options *o, load_result *r)
{
    memset(r, 0, sizeof *r);
    r->events = o->events;
    fprintf(stderr, PROG ": loading %llu events in %d-event appends\n",
            (unsigned long long)o->events, LOAD_BATCH);
    gen_event *gen = xcalloc(LOAD_BATCH, sizeof *gen);
    uint64_t rng = o->seed, left = o->events, seq = 0;
    samples s = {0};
    char err[256];
    flush_fs();
    double cpu0 = cpu_seconds(0) + cpu_seconds(1);
    uint64_t sc0 = atomic_load(&g_sync_calls);
    disk_counters d0 = disk_read();
    uint64_t t0 = now_ns(), in_append = 0;
    while (left > 0) {
        /* the tenant, weighted by the events it still has to get */
        uint64_t pick = rng_below(&rng, left);
        tmodel *t = g_tenants;
        for (int i = 0; i < NTENANTS; i++) {
            t = &g_tenants[i];
            uint64_t rest = t->target - t->loaded;
            if (pick < rest)
                break;
            pick -= rest;
        }
        uint64_t rest = t->target - t->loaded;
        size_t n = rest < LOAD_BATCH ? (size_t)rest : LOAD_BATCH;
        uint64_t invoice = t->invoices;
        for (size_t i = 0; i < n; i++) {
            gen_event_make(&gen[i], t, &rng, ++seq, invoice + 1);
            invoice += gen[i].type == T_INVOICE_CREATED;
        }
        uint64_t ns;
        int rc = load_batch(db, t, gen, n, &ns, err, sizeof err);
        in_append += ns;
        samples_push(&s, ns);
        r->c.attempted++;
        if (rc == 0) {
            r->c.committed++;
            for (size_t i = 0; i < n; i++)
                model_add(t, &gen[i]);
        } else {
            r->c.errors++;
            if (!r->error[0])
                snprintf(r->error, sizeof r->error, "%s", err);
            t->target -= n; /* not loaded: the model must not count it */
        }
        left -= n;
    }
    r->wall_s = (double)(now_ns() - t0) / 1e9;
    r->cpu_s = cpu_seconds(0) + cpu_seconds(1) - cpu0;
    r->syncs = atomic_load(&g_sync_calls) - sc0;
    disk_counters d1 = disk_read();
    r->disk_bytes = d0.ok && d1.ok
                        ? (d1.sectors_written - d0.sectors_written) * 512u
                        : 0;
    r->after = flush_fs();
    r->append_s = (double)in_append / 1e9;
    r->lat = summarize(&s);
    free(s.v);
    free(gen);

    uint64_t loaded = 0;
    for (int i = 0; i < NTENANTS; i++)
        loaded += g_tenants[i].loaded;
    int rc = evs_stats_get(&r->st, db);
    r->store_check = rc == 0 && r->st.events == loaded &&
                     r->st.tenants == NTENANTS;
    if (!r->store_check) {
        fprintf(stderr, PROG ": load: the store holds %llu events in %llu "
                        "tenants, %llu were acknowledged in %d\n",
                (unsigned long long)r->st.events,
                (unsigned long long)r->st.tenants,
                (unsigned long long)loaded, NTENANTS);
        g_failures++;
    }
    if (r->c.errors)
        g_failures++;
    fprintf(stderr, PROG ": loaded %llu events in %.1f s (%.0f events/s)\n",
            (unsigned long long)loaded, r->wall_s,
            (double)loaded / r->wall_s);
}

/* ------------------------------------------------------------------ */
/* Reading by query                                                    */
/* ------------------------------------------------------------------ */

static volatile uint64_t g_sink; /* keeps the data-touching loops alive */

/* One query item: types and tags. */
typedef struct qitem {
    const char *types[2];
    const char *tags[1];
    char tag[64];
    evs_query_item item;
    evs_query q;
} qitem;

static void qitem_set(qitem *qi, const char *type0, const char *type1,
                      const char *tag_fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void qitem_set(qitem *qi, const char *type0, const char *type1,
                      const char *tag_fmt, ...)
{
    memset(qi, 0, sizeof *qi);
    qi->types[0] = type0;
    qi->types[1] = type1;
    qi->item.types = qi->types;
    qi->item.ntypes = type0 ? (type1 ? 2 : 1) : 0;
    if (tag_fmt) {
        va_list ap;
        va_start(ap, tag_fmt);
        vsnprintf(qi->tag, sizeof qi->tag, tag_fmt, ap);
        va_end(ap);
        qi->tags[0] = qi->tag;
        qi->item.tags = qi->tags;
        qi->item.ntags = 1;
    }
    qi->q.items = &qi->item;
    qi->q.nitems = 1;
}

/* What one read returned. */
typedef struct read_out {
    uint64_t n;          /* events */
    uint64_t marker;     /* evs_iter_marker at the end */
    uint64_t last_pos;   /* position of the last event returned */
    int last_type_lent;  /* the last event's type is BookLent */
    uint64_t number;     /* the last event's "number" or "seat" */
} read_out;

/*
 * Read every event of the query, touching every byte of its data, and
 * check that each one carries the item's tag and one of its types; then
 * take the marker. key: a payload number to note from the last event
 * (NULL: none). Returns 0 or a negative code with err set.
 */
static int read_query(evs_db *db, const char *tenant, const qitem *qi,
                      evs_direction dir, uint64_t limit, const char *key,
                      read_out *out, char *err, size_t errsize)
{
    evs_iter *it = NULL;
    memset(out, 0, sizeof *out);
    int rc = evs_read_query(&it, db, tenant, &qi->q, 0, dir, limit);
    if (rc < 0) {
        snprintf(err, errsize, "evs_read_query: %s: %s", evs_strerror(rc),
                 evs_last_error());
        return rc;
    }
    const evs_event *ev;
    uint64_t sum = 0;
    while ((rc = evs_iter_next(&ev, it)) == 0) {
        const unsigned char *d = ev->data;
        for (size_t i = 0; i < ev->data_len; i++)
            sum += d[i];
        int ok = qi->item.ntypes == 0;
        for (size_t i = 0; i < qi->item.ntypes && !ok; i++)
            ok = strcmp(ev->type, qi->types[i]) == 0;
        int tagged = qi->item.ntags == 0;
        for (size_t i = 0; i < ev->ntags && !tagged; i++)
            tagged = strcmp(ev->tags[i], qi->tag) == 0;
        if (!ok || !tagged) {
            snprintf(err, errsize, "position %llu (%s) does not match the "
                                   "query (type %s, tag %s)",
                     (unsigned long long)ev->position, ev->type,
                     qi->types[0] ? qi->types[0] : "-",
                     qi->item.ntags ? qi->tag : "-");
            evs_iter_free(it);
            return -1;
        }
        out->n++;
        out->last_pos = ev->position;
        out->last_type_lent = strcmp(ev->type, "BookLent") == 0;
        if (key)
            out->number = json_uint(ev->data, key);
    }
    g_sink += sum;
    if (rc != EVS_ITEROVER) {
        snprintf(err, errsize, "evs_iter_next: %s: %s", evs_strerror(rc),
                 evs_last_error());
        evs_iter_free(it);
        return rc;
    }
    evs_iter_marker(&out->marker, it);
    evs_iter_free(it);
    if (out->marker < out->last_pos) {
        snprintf(err, errsize, "marker %llu is before the last event read "
                               "(%llu)",
                 (unsigned long long)out->marker,
                 (unsigned long long)out->last_pos);
        return -1;
    }
    return 0;
}

/*
 * The append of a DCB command: one event carrying the boundary's tag
 * (qi.tag) and a second one (tag2), appended with the condition "no event
 * matching qi after `after`" (conditional == 0: no condition).
 */
typedef struct command {
    qitem qi;
    char tag2[48];
    const char *tags[2];
    char payload[PAYLOAD_MAX];
    size_t len;
} command;

static int command_append(command *c, evs_db *db, const char *tenant,
                          const char *type, int conditional, uint64_t after,
                          char *err, size_t errsize)
{
    c->tags[0] = c->qi.tag;
    c->tags[1] = c->tag2;
    evs_event_data ev;
    event_init(&ev, type, c->payload, c->len);
    ev.tags = c->tags;
    ev.ntags = 2;
    evs_append_condition cond = {c->qi.q, after};
    int rc = evs_dcb_append(NULL, NULL, db, tenant, &ev, 1,
                            conditional ? &cond : NULL);
    if (rc < 0)
        snprintf(err, errsize, "evs_dcb_append: %s: %s", evs_strerror(rc),
                 evs_last_error());
    return rc;
}

/* ------------------------------------------------------------------ */
/* 2. Query latency                                                    */
/* ------------------------------------------------------------------ */

enum { Q_TAG, Q_TYPES_TAG, Q_LAST, NQUERY };

typedef struct query_result {
    const char *name, *what;
    long warmup;
    op_counts c;         /* committed = answered and checked */
    uint64_t events;     /* returned by the measured queries */
    uint64_t max_events;
    lat_summary lat;
    char error[256];
} query_result;

static void bench_query(evs_db *db, const options *o, int kind,
                        query_result *r)
{
    static const char *const names[NQUERY] = {
        "(a) selective: tag book:X", "(b) types [BookLent, BookReturned] + tag "
                                     "book:X",
        "(d) newest InvoiceCreated (backward, limit 1)"};
    static const char *const whats[NQUERY] = {
        "a random book of a big tenant", "a random book of a big tenant",
        "a random tenant of the 12"};
    memset(r, 0, sizeof *r);
    r->name = names[kind];
    r->what = whats[kind];
    r->warmup = o->queries / 20 > 10 ? o->queries / 20 : 10;
    uint64_t rng = o->seed ^ (0x51ull + (uint64_t)kind);
    samples s = {0};
    qitem qi;
    read_out out;
    char err[256];
    for (long i = 0; i < r->warmup + o->queries; i++) {
        const tmodel *t;
        uint64_t expect, number = 0;
        evs_direction dir = EVS_FORWARD;
        uint64_t limit = 0;
        if (kind == Q_LAST) {
            t = &g_tenants[rng_below(&rng, NTENANTS)];
            qitem_set(&qi, "InvoiceCreated", NULL, NULL);
            expect = t->invoices ? 1 : 0;
            number = t->invoices;
            dir = EVS_BACKWARD;
            limit = 1;
        } else {
            t = &g_tenants[rng_below(&rng, NBIG)];
            uint32_t book = (uint32_t)rng_below(&rng, t->nbooks);
            if (kind == Q_TAG) {
                qitem_set(&qi, NULL, NULL, "book:%u", book);
                expect = t->book_events[book];
            } else {
                qitem_set(&qi, "BookLent", "BookReturned", "book:%u", book);
                expect = t->book_loans[book];
            }
        }
        err[0] = 0;
        uint64_t t0 = now_ns();
        int rc = read_query(db, t->name, &qi, dir, limit,
                            kind == Q_LAST ? "\"number\":" : NULL, &out, err,
                            sizeof err);
        uint64_t t1 = now_ns();
        if (rc == 0 && out.n != expect) {
            snprintf(err, sizeof err, "%s of %s: %llu events, expected %llu",
                     qi.tag[0] ? qi.tag : "InvoiceCreated", t->name,
                     (unsigned long long)out.n, (unsigned long long)expect);
            rc = -1;
        } else if (rc == 0 && kind == Q_LAST && out.number != number) {
            snprintf(err, sizeof err, "newest invoice of %s has number %llu, "
                                      "expected %llu",
                     t->name, (unsigned long long)out.number,
                     (unsigned long long)number);
            rc = -1;
        }
        if (i < r->warmup)
            continue;
        r->c.attempted++;
        if (rc == 0) {
            r->c.committed++;
            samples_push(&s, t1 - t0);
            r->events += out.n;
            if (out.n > r->max_events)
                r->max_events = out.n;
        } else {
            r->c.errors++;
            if (!r->error[0])
                snprintf(r->error, sizeof r->error, "%s", err);
        }
    }
    r->lat = summarize(&s);
    free(s.v);
    if (r->c.errors)
        g_failures++;
    fprintf(stderr, PROG ": query %s: p50 %.4f ms p99 %.4f ms; %llu ok, "
                    "%llu errors\n",
            r->name, r->lat.p50, r->lat.p99,
            (unsigned long long)r->c.committed,
            (unsigned long long)r->c.errors);
}

/* (c): every BookLent event of the first big tenant, several passes. */
typedef struct broad_result {
    const char *tenant;
    uint64_t expected;
    op_counts c;         /* per pass */
    int passes;
    double seconds[MAX_PASSES];
    double median_s, min_s, max_s, events_per_s;
    char error[256];
} broad_result;

static void bench_broad(evs_db *db, const options *o, broad_result *r)
{
    memset(r, 0, sizeof *r);
    const tmodel *t = &g_tenants[0];
    r->tenant = t->name;
    r->expected = t->types[T_BOOK_LENT];
    r->passes = o->passes;
    qitem qi;
    qitem_set(&qi, "BookLent", NULL, NULL);
    read_out out;
    char err[256];
    for (int pass = -1; pass < r->passes; pass++) {
        err[0] = 0;
        uint64_t t0 = now_ns();
        int rc = read_query(db, t->name, &qi, EVS_FORWARD, 0, NULL, &out, err,
                            sizeof err);
        double sec = (double)(now_ns() - t0) / 1e9;
        if (pass < 0)
            continue; /* warm-up pass */
        r->c.attempted++;
        r->seconds[pass] = sec;
        if (rc == 0 && out.n == r->expected) {
            r->c.committed++;
        } else {
            r->c.errors++;
            if (!r->error[0])
                snprintf(r->error, sizeof r->error, "%s",
                         rc == 0 ? "wrong number of events" : err);
        }
    }
    double sorted[MAX_PASSES];
    memcpy(sorted, r->seconds, sizeof sorted);
    qsort(sorted, (size_t)r->passes, sizeof sorted[0], cmp_double);
    r->median_s = sorted[r->passes / 2];
    r->min_s = sorted[0];
    r->max_s = sorted[r->passes - 1];
    r->events_per_s = r->median_s > 0 ? (double)r->expected / r->median_s : 0;
    if (r->c.errors)
        g_failures++;
    fprintf(stderr, PROG ": query (c) broad: %llu events, %.0f events/s\n",
            (unsigned long long)r->expected, r->events_per_s);
}

/* ------------------------------------------------------------------ */
/* 3. The typical command: read, decide, conditional append            */
/* ------------------------------------------------------------------ */

typedef struct workload_result {
    long warmup;
    op_counts c;
    lat_summary total, read, append; /* per command, and its two steps */
    uint64_t events_read;
    double wall_s;       /* measured commands, back to back */
    double cpu_s;        /* process CPU over them */
    uint64_t csw;
    uint64_t syncs;
    lat_summary sync_lat;
    double sync_s;
    uint64_t disk_bytes; /* the device wrote during the measured commands */
    flush_result after;  /* the write-back they left behind */
    char error[256];
} workload_result;

/*
 * A book's loans: read its BookLent/BookReturned events, decide the next
 * one (returned if it is lent, else lent), and append it on the condition
 * that no such event of the book came after the read's marker.
 */
static void bench_workload(evs_db *db, const options *o, workload_result *r)
{
    memset(r, 0, sizeof *r);
    r->warmup = o->commands / 20 > 10 ? o->commands / 20 : 10;
    fprintf(stderr, PROG ": read-decide-append: %ld commands (+%ld "
                    "warm-up)\n",
            o->commands, r->warmup);
    uint64_t rng = o->seed ^ 0xc0ffeeull;
    samples tot = {0}, rd = {0}, ap = {0};
    command c;
    read_out out;
    char err[256];
    double cpu0 = 0;
    uint64_t csw0 = 0, sc0 = 0, sn0 = 0, t_start = 0;
    disk_counters d0 = {0};
    flush_fs();
    for (long i = 0; i < r->warmup + o->commands; i++) {
        if (i == r->warmup) {
            d0 = disk_read();
            cpu0 = cpu_seconds(0) + cpu_seconds(1);
            csw0 = ctx_switches();
            sc0 = atomic_load(&g_sync_calls);
            sn0 = atomic_load(&g_sync_ns);
            atomic_store(&g_sync_n, 0);
            atomic_store(&g_sync_rec, 1);
            t_start = now_ns();
        }
        tmodel *t = &g_tenants[rng_below(&rng, NBIG)];
        uint32_t book = (uint32_t)rng_below(&rng, t->nbooks);
        uint32_t student = (uint32_t)rng_below(&rng, t->nstudents);
        qitem_set(&c.qi, "BookLent", "BookReturned", "book:%u", book);
        err[0] = 0;

        uint64_t t0 = now_ns();
        int rc = read_query(db, t->name, &c.qi, EVS_FORWARD, 0, NULL, &out,
                            err, sizeof err);
        uint64_t t1 = now_ns(), t2 = t1;
        if (rc == 0 && (out.n != t->book_loans[book] ||
                        (out.n && out.last_type_lent != t->book_lent[book]))) {
            snprintf(err, sizeof err, "book:%u of %s: %llu loan events, the "
                                      "last one %s; expected %u, the last "
                                      "one %s", book, t->name,
                     (unsigned long long)out.n,
                     out.last_type_lent ? "BookLent" : "BookReturned",
                     t->book_loans[book],
                     t->book_lent[book] ? "BookLent" : "BookReturned");
            rc = -1;
        }
        int lend = 0;
        if (rc == 0) {
            /* decide: the book's state is its newest loan event */
            lend = !out.last_type_lent;
            size_t n = 0;
            json_add(c.payload, &n, "{\"book\":\"%u\",\"student\":\"%u\"",
                     book, student);
            c.len = json_finish(c.payload, n, 160);
            snprintf(c.tag2, sizeof c.tag2, "student:%u", student);
            rc = command_append(&c, db, t->name,
                                lend ? "BookLent" : "BookReturned", 1,
                                out.marker, err, sizeof err);
            t2 = now_ns();
        }
        if (rc == 0) {
            t->book_loans[book]++;
            t->book_events[book]++;
            t->book_lent[book] = (uint8_t)lend;
            t->types[lend ? T_BOOK_LENT : T_BOOK_RETURNED]++;
            t->loaded++;
        }
        if (i < r->warmup)
            continue;
        r->c.attempted++;
        if (rc == 0) {
            r->c.committed++;
            samples_push(&tot, t2 - t0);
            samples_push(&rd, t1 - t0);
            samples_push(&ap, t2 - t1);
            r->events_read += out.n;
        } else {
            /* one writer: a conflict is as wrong as an error */
            if (rc == EVS_ECONFLICT)
                r->c.conflicts++;
            else
                r->c.errors++;
            if (!r->error[0])
                snprintf(r->error, sizeof r->error, "%s", err);
        }
    }
    r->wall_s = (double)(now_ns() - t_start) / 1e9;
    atomic_store(&g_sync_rec, 0);
    r->cpu_s = cpu_seconds(0) + cpu_seconds(1) - cpu0;
    r->csw = ctx_switches() - csw0;
    r->syncs = atomic_load(&g_sync_calls) - sc0;
    r->sync_s = (double)(atomic_load(&g_sync_ns) - sn0) / 1e9;
    disk_counters d1 = disk_read();
    r->disk_bytes = d0.ok && d1.ok
                        ? (d1.sectors_written - d0.sectors_written) * 512u
                        : 0;
    r->after = flush_fs();
    uint64_t nsync = atomic_load(&g_sync_n);
    samples ss = {g_sync_v, nsync < SYNC_SAMPLES_MAX ? nsync : SYNC_SAMPLES_MAX,
                  SYNC_SAMPLES_MAX};
    r->sync_lat = summarize(&ss);
    r->total = summarize(&tot);
    r->read = summarize(&rd);
    r->append = summarize(&ap);
    free(tot.v);
    free(rd.v);
    free(ap.v);
    if (r->c.errors || r->c.conflicts)
        g_failures++;
    fprintf(stderr, PROG ": read-decide-append: p50 %.3f ms (read %.3f, "
                    "append %.3f), p99 %.3f ms\n",
            r->total.p50, r->read.p50, r->append.p50, r->total.p99);
}

/* ------------------------------------------------------------------ */
/* 4. Conditional appends                                              */
/* ------------------------------------------------------------------ */

/*
 * Claims: each append registers a student under an email nobody has used
 * (the DCB uniqueness example): type StudentRegistered + tag
 * email:<level>.<thread>.<n>, on the condition that no such event exists
 * after the marker of a read the thread made when it started. No two
 * appends share a boundary, so a conflict would be a bug. Without a
 * condition (the control), the same events are appended unconditionally.
 */
typedef struct claim_ctx {
    evs_db *db;
    int level;       /* makes every level's tags new */
    int conditional;
} claim_ctx;

/* One thread of a claims or race level. */
typedef struct op_state {
    void *ctx;      /* claim_ctx or race_ctx */
    int id;
    const char *tenant;
    uint64_t rng, seq, marker;
    command c;
} op_state;

static op_state *op_state_new(void *ctx, int id, const char *tenant)
{
    op_state *w = xcalloc(1, sizeof *w);
    w->ctx = ctx;
    w->id = id;
    w->tenant = tenant;
    return w;
}

static void op_state_free(void *state) { free(state); }

static void *claim_init(void *arg, int id)
{
    claim_ctx *ctx = arg;
    op_state *w = op_state_new(ctx, id, g_tenants[id % NTENANTS].name);
    snprintf(w->c.tag2, sizeof w->c.tag2, "region:%s",
             g_regions[id % NREGIONS]);
    /* the marker: a read of this thread's (empty) boundary */
    qitem_set(&w->c.qi, "StudentRegistered", NULL, "email:%d.%d.start",
              ctx->level, id);
    read_out out;
    char err[256];
    if (read_query(ctx->db, w->tenant, &w->c.qi, EVS_FORWARD, 0, NULL, &out,
                   err, sizeof err) < 0)
        die("claims: the first read of thread %d failed: %s", id, err);
    w->marker = out.marker;
    return w;
}

static int claim_op(void *state, uint64_t *t0, uint64_t *t1, char *err,
                    size_t errsize)
{
    op_state *w = state;
    claim_ctx *ctx = w->ctx;
    command *c = &w->c;
    w->seq++;
    snprintf(c->qi.tag, sizeof c->qi.tag, "email:%d.%d.%llu", ctx->level,
             w->id, (unsigned long long)w->seq);
    size_t n = 0;
    json_add(c->payload, &n, "{\"student\":\"n%d.%d.%llu\",\"email\":\"%s\"",
             ctx->level, w->id, (unsigned long long)w->seq, c->qi.tag + 6);
    c->len = json_finish(c->payload, n, 160);
    *t0 = now_ns();
    int rc = command_append(c, ctx->db, w->tenant, "StudentRegistered",
                            ctx->conditional, w->marker, err, errsize);
    *t1 = now_ns();
    return rc;
}


/*
 * The race: nboundaries courses of the first big tenant hand out seat
 * numbers. A command reads the course's newest StudentSubscribed
 * (backward, limit 1) and its marker, and appends the next seat on the
 * condition that no StudentSubscribed of the course came after the
 * marker. Latency is the whole command; a conflict is a lost race.
 */
typedef struct race_ctx {
    evs_db *db;
    int level, nboundaries;
    uint64_t seed;
} race_ctx;

static void *race_init(void *arg, int id)
{
    race_ctx *ctx = arg;
    op_state *w = op_state_new(ctx, id, g_tenants[0].name);
    w->rng = ctx->seed ^ (0x7ace0000ull + (uint64_t)id);
    return w;
}

static int race_op(void *state, uint64_t *t0, uint64_t *t1, char *err,
                   size_t errsize)
{
    op_state *w = state;
    race_ctx *ctx = w->ctx;
    const char *tenant = w->tenant;
    int k = (int)rng_below(&w->rng, (uint64_t)ctx->nboundaries);
    command *c = &w->c;
    qitem_set(&c->qi, "StudentSubscribed", NULL, "course:race%d-%d",
              ctx->level, k);
    read_out out;
    *t0 = now_ns();
    int rc = read_query(ctx->db, tenant, &c->qi, EVS_BACKWARD, 1, "\"seat\":",
                        &out, err, errsize);
    if (rc == 0) {
        w->seq++;
        size_t n = 0;
        json_add(c->payload, &n, "{\"course\":\"race%d-%d\",\"student\":"
                                 "\"r%d.%llu\",\"seat\":%llu",
                 ctx->level, k, w->id, (unsigned long long)w->seq,
                 (unsigned long long)out.number + 1);
        c->len = json_finish(c->payload, n, 160);
        snprintf(c->tag2, sizeof c->tag2, "student:r%d.%llu", w->id,
                 (unsigned long long)w->seq);
        rc = command_append(c, ctx->db, tenant, "StudentSubscribed", 1,
                            out.marker, err, errsize);
    }
    *t1 = now_ns();
    return rc;
}


/* Every course's seats must be 1, 2, 3, ... in position order, and add up
 * to the committed commands: two appends passing the same condition would
 * give a seat twice. Returns the number of seats read. */
static uint64_t race_check(evs_db *db, const race_ctx *ctx, char *problem,
                           size_t size)
{
    uint64_t seats = 0;
    for (int k = 0; k < ctx->nboundaries && !problem[0]; k++) {
        qitem qi;
        qitem_set(&qi, "StudentSubscribed", NULL, "course:race%d-%d",
                  ctx->level, k);
        evs_iter *it;
        int rc = evs_read_query(&it, db, g_tenants[0].name, &qi.q, 0,
                                EVS_FORWARD, 0);
        if (rc < 0) {
            snprintf(problem, size, "reading course %d: %s", k,
                     evs_last_error());
            break;
        }
        const evs_event *ev;
        uint64_t expect = 1;
        while ((rc = evs_iter_next(&ev, it)) == 0) {
            uint64_t seat = json_uint(ev->data, "\"seat\":");
            if (seat != expect) {
                snprintf(problem, size, "course race%d-%d: seat %llu at "
                                        "position %llu, expected seat %llu "
                                        "(two appends passed one condition)",
                         ctx->level, k, (unsigned long long)seat,
                         (unsigned long long)ev->position,
                         (unsigned long long)expect);
                break;
            }
            expect++;
            seats++;
        }
        if (rc != EVS_ITEROVER && !problem[0])
            snprintf(problem, size, "reading course %d: %s", k,
                     evs_last_error());
        evs_iter_free(it);
    }
    return seats;
}

typedef struct level_check {
    uint64_t before;     /* store events before the level */
    flush_result after;  /* the write-back the level left behind */
    uint64_t seats;      /* race: seats read back */
    char problem[256];
} level_check;

/* The store must hold exactly the acknowledged events; a level with
 * fresh boundaries must have no conflict at all. */
static void check_level(evs_db *db, level_result *r, level_check *chk,
                        int conflicts_allowed, const char *name)
{
    evs_stats st;
    uint64_t expect = chk->before + r->c.committed + r->warm.committed;
    int rc = evs_stats_get(&st, db);
    r->store_events = rc == 0 ? st.events : 0;
    r->segments = rc == 0 ? st.segments : 0;
    r->store_check = rc == 0 && st.events == expect;
    if (!r->store_check) {
        fprintf(stderr, PROG ": %s: the store holds %llu events, expected "
                        "%llu\n",
                name, (unsigned long long)(rc == 0 ? st.events : 0),
                (unsigned long long)expect);
        g_failures++;
    }
    if (r->c.errors || r->warm.errors || !counts_ok(&r->c) ||
        !counts_ok(&r->warm) ||
        (!conflicts_allowed && (r->c.conflicts || r->warm.conflicts)))
        g_failures++;
    fprintf(stderr,
            PROG ": %s: %.0f appends/s, p50 %.3f ms, p95 %.3f ms, p99 %.3f "
                 "ms; attempted %llu committed %llu conflicts %llu errors "
                 "%llu\n",
            name, r->ops_per_s, r->lat.p50, r->lat.p95, r->lat.p99,
            (unsigned long long)r->c.attempted,
            (unsigned long long)r->c.committed,
            (unsigned long long)r->c.conflicts,
            (unsigned long long)r->c.errors);
}

static uint64_t store_events(evs_db *db)
{
    evs_stats st;
    if (evs_stats_get(&st, db) < 0)
        die("evs_stats_get: %s", evs_last_error());
    return st.events;
}

static int g_level_seq; /* numbers the levels: every level's tags are new */

static void bench_claims(evs_db *db, const options *o, int nthreads,
                         int conditional, level_result *r, level_check *chk)
{
    static const level_ops ops = {claim_init, claim_op, op_state_free, NULL};
    char name[64];
    snprintf(name, sizeof name, "%s-%dt",
             conditional ? "conditional" : "unconditional", nthreads);
    fprintf(stderr, PROG ": %s: %.1f s warm-up + %.1f s\n", name, o->warmup,
            o->seconds);
    claim_ctx ctx = {db, ++g_level_seq, conditional};
    memset(chk, 0, sizeof *chk);
    chk->before = store_events(db);
    flush_fs();
    level_run(r, &ops, &ctx, nthreads, 1, o->warmup, o->seconds);
    chk->after = flush_fs();
    check_level(db, r, chk, 0, name);
}

static void bench_race(evs_db *db, const options *o, level_result *r,
                       level_check *chk)
{
    static const level_ops ops = {race_init, race_op, op_state_free, NULL};
    char name[64];
    snprintf(name, sizeof name, "race-%dt-%db", o->race_threads,
             o->boundaries);
    fprintf(stderr, PROG ": %s: %.1f s warm-up + %.1f s\n", name, o->warmup,
            o->seconds);
    race_ctx ctx = {db, ++g_level_seq, o->boundaries, o->seed};
    memset(chk, 0, sizeof *chk);
    chk->before = store_events(db);
    flush_fs();
    level_run(r, &ops, &ctx, o->race_threads, 1, o->warmup, o->seconds);
    chk->after = flush_fs();
    check_level(db, r, chk, 1, name);
    chk->seats = race_check(db, &ctx, chk->problem, sizeof chk->problem);
    if (!chk->problem[0] && chk->seats != r->c.committed + r->warm.committed)
        snprintf(chk->problem, sizeof chk->problem,
                 "%llu seats read back, %llu commands committed",
                 (unsigned long long)chk->seats,
                 (unsigned long long)(r->c.committed + r->warm.committed));
    if (chk->problem[0]) {
        fprintf(stderr, PROG ": %s: %s\n", name, chk->problem);
        g_failures++;
    }
}

/* ------------------------------------------------------------------ */
/* 5. Goals                                                            */
/* ------------------------------------------------------------------ */

typedef struct report {
    const options *o;
    bench_run run;
    load_result load;
    query_result q[NQUERY];
    broad_result broad;
    workload_result wl;
    level_result cond[MAX_LEVELS], ctrl[MAX_LEVELS], race;
    level_check cond_chk[MAX_LEVELS], ctrl_chk[MAX_LEVELS], race_chk;
    int ncond, nctrl, ran_race;
    evs_stats end;
    goal goals[4], seeds[4];
    int ngoals, nseeds;
} report;

static void compute_goals(void *report_)
{
    report *r = report_;
    const options *o = r->o;
    goal *g;
    const level_result *a;
    const query_result *q = &r->q[Q_TAG];

    g = goal_add(r->goals, &r->ngoals, "selective query (tag book:X), 1 thread",
                 "p50 <= 20 µs (p95 shown)");
    if (o->b.phases & P_QUERY)
        goal_set(g, clean(&q->c) && q->lat.p50 <= 0.020,
                 "p50 %.1f µs, p95 %.1f µs", q->lat.p50 * 1e3,
                 q->lat.p95 * 1e3);
    else
        goal_not_run(g);

    g = goal_add(r->goals, &r->ngoals, "conditional appends, 256 threads",
                 ">= 150,000 appends/s and p95 <= 2 ms");
    if ((a = level_find(r->cond, r->ncond, 256)))
        goal_set(g, clean(&a->c) && a->ops_per_s >= 150000 && a->lat.p95 <= 2.0,
                 "%.0f appends/s, p95 %.3f ms", a->ops_per_s, a->lat.p95);
    else
        goal_not_run(g);

    g = goal_add(r->goals, &r->ngoals,
                 "read, decide, conditional append (1 thread)",
                 "p50 <= 0.2 ms (p95 shown)");
    if (o->b.phases & P_WORKLOAD)
        goal_set(g, clean(&r->wl.c) && r->wl.total.p50 <= 0.2,
                 "p50 %.3f ms, p95 %.3f ms", r->wl.total.p50, r->wl.total.p95);
    else
        goal_not_run(g);

    /* The seed (dynamic-streams-eventstore-go on PostgreSQL, 8-core i7,
     * 1M+ events) reports averages; ours are percentiles. */
    g = goal_add(r->seeds, &r->nseeds, "query by BookID", "0.12 ms average");
    if (o->b.phases & P_QUERY)
        goal_set(g, clean(&q->c), "p50 %.4f ms, p99 %.4f ms", q->lat.p50,
                 q->lat.p99);
    else
        goal_not_run(g);
    g = goal_add(r->seeds, &r->nseeds, "single conditional append",
                 "2.55 ms average");
    if ((a = level_find(r->cond, r->ncond, 1)))
        goal_set(g, clean(&a->c), "p50 %.3f ms, p99 %.3f ms (1 thread)",
                 a->lat.p50, a->lat.p99);
    else
        goal_not_run(g);
    g = goal_add(r->seeds, &r->nseeds,
                 "typical workload (query, logic, append)",
                 "3.56 ms average");
    if (o->b.phases & P_WORKLOAD)
        goal_set(g, clean(&r->wl.c), "p50 %.3f ms, p99 %.3f ms",
                 r->wl.total.p50, r->wl.total.p99);
    else
        goal_not_run(g);
    for (int i = 0; i < r->nseeds; i++)
        if (strcmp(r->seeds[i].verdict, "met") == 0)
            r->seeds[i].verdict = "measured";
}

/* ------------------------------------------------------------------ */
/* Markdown                                                            */
/* ------------------------------------------------------------------ */

/* A level's results and where its time went; explain: describe the
 * columns (the first such table of the report). */
static void md_levels(FILE *f, const report *r, const level_result *a,
                      const level_check *chk, int n, int explain)
{
    md_level_results(f, a, n);
    md_level_costs(f, a, n, &r->run.m,
                   explain ? NULL : "\nWhere the time goes (columns as "
                                    "above):\n\n",
                   "");
    fprintf(f, "\nWrite-back the level left behind: a syncfs of the store's "
               "filesystem right after it, and what the device wrote "
               "meanwhile, per event the level committed (warm-up "
               "included)%s:\n\n| threads | syncfs | device wrote | per "
               "event |\n|---|---|---|---|\n",
            explain ? " (each level starts after such a syncfs, so it does "
                      "not pay for the one before)"
                    : "");
    for (int i = 0; i < n; i++) {
        uint64_t ev = a[i].c.committed + a[i].warm.committed;
        fprintf(f, "| %d | %.2f s | %.1f MiB | %.0f B |\n", a[i].threads,
                chk[i].after.s, (double)chk[i].after.bytes / 1048576.0,
                ev ? (double)chk[i].after.bytes / (double)ev : 0);
    }
}

static void write_md(FILE *f, const void *report_)
{
    const report *r = report_;
    const options *o = r->o;
    const machine *m = &r->run.m;
    const load_result *ld = &r->load;
    const char *not_run = "_Not run (--only)._\n";
    char cs[96];

    fprintf(f, "# evstore DCB benchmark\n\n");
    md_machine_rows(f, m, o->b.label, r->run.version, r->run.root);
    fprintf(f, "| mode | %s: %llu events, seed %llu; %.1f s measured per "
               "append level after %.1f s warm-up (not counted) |\n",
            o->b.quick ? "quick" : "full", (unsigned long long)o->events,
            (unsigned long long)o->seed, o->seconds, o->warmup);
    md_run_rows(f, &r->run, -1);
    fprintf(f,
            "Every append returns only after the library has fdatasync'ed "
            "the log. Latency percentiles are nearest-rank percentiles of "
            "every measured operation's own wall time (sorted samples), in "
            "milliseconds. Counts are attempted/committed/conflicts/errors "
            "and add up; warm-up operations are excluded and listed apart. "
            "Every query answer is checked against the bench's model of "
            "what it loaded; a wrong answer counts as an error.\n\n");

    fprintf(f, "## 1. The store\n\n");
    fprintf(f, "%llu events in %d tenants, %d of them (the big ones) with "
               "%.0f %% of the events, in %d-event appends (evs_append_ex: "
               "the streamless events in one part, each stream's in its own, "
               "expected version any) from 1 thread. 10 event types, 1-3 "
               "tags an event: book:<id> (selective), student:<id>, "
               "course:<id>, region:<one of 5> (broad); JSON payloads of "
               "120-320 B; library and invoice events belong to no stream, "
               "student and course events to streams student-<id> and "
               "course-<id>.\n\n",
            (unsigned long long)ld->events, NTENANTS, NBIG, BIG_SHARE * 100,
            LOAD_BATCH);
    counts_str(cs, sizeof cs, &ld->c);
    fprintf(f, "| appends attempted/committed/conflicts/errors | events/s "
               "(load loop) | events/s (inside evs_append_ex) | p50 | p90 | "
               "p95 | p99 | max | events/sync | CPU/event (generating "
               "events too) |\n"
               "|---|---|---|---|---|---|---|---|---|---|\n");
    fprintf(f, "| %s | %.0f | %.0f |", cs,
            ld->wall_s > 0 ? (double)ld->st.events / ld->wall_s : 0,
            ld->append_s > 0 ? (double)ld->st.events / ld->append_s : 0);
    md_lat_cells(f, &ld->lat);
    fprintf(f, " %.1f | %.1f µs |\n\n",
            ld->syncs ? (double)ld->st.events / (double)ld->syncs : 0,
            ld->st.events ? ld->cpu_s * 1e6 / (double)ld->st.events : 0);
    fprintf(f, "After the load: %llu events, %llu streams, %llu tenants, "
               "log %.0f MiB in %llu segments, index %.0f MiB. The device "
               "wrote %.0f B per event during the load, and %.0f B per "
               "event more (%.0f MiB) in the syncfs right after it, which "
               "took %.2f s: the index pages not written back yet (the "
               "load started after a syncfs too).\n\n",
            (unsigned long long)ld->st.events,
            (unsigned long long)ld->st.streams,
            (unsigned long long)ld->st.tenants,
            (double)ld->st.log_bytes / 1048576.0,
            (unsigned long long)ld->st.segments,
            (double)ld->st.index_bytes / 1048576.0,
            ld->st.events ? (double)ld->disk_bytes / (double)ld->st.events : 0,
            ld->st.events ? (double)ld->after.bytes / (double)ld->st.events
                          : 0,
            (double)ld->after.bytes / 1048576.0, ld->after.s);
    fprintf(f, "| tenant | events | streamless | in streams | tags/event | "
               "books | students | courses | BookLent | InvoiceCreated |\n"
               "|---|---|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < NTENANTS; i++) {
        const tmodel *t = &g_tenants[i];
        uint64_t ev = t->streamless + t->streamed;
        fprintf(f, "| %s | %llu | %llu | %llu | %.2f | %u | %u | %u | %llu "
                   "| %llu |\n",
                t->name, (unsigned long long)ev,
                (unsigned long long)t->streamless,
                (unsigned long long)t->streamed,
                ev ? (double)t->tags / (double)ev : 0, t->nbooks,
                t->nstudents, t->ncourses,
                (unsigned long long)t->types[T_BOOK_LENT],
                (unsigned long long)t->invoices);
    }

    fprintf(f, "\n## 2. Query latency\n\n");
    fprintf(f, "evs_read_query + evs_iter_next to the end (summing every "
               "byte of every event's data, checking type and tag) + "
               "evs_iter_marker + evs_iter_free; 1 thread, warm page "
               "cache, a new random key per query; the count of events "
               "returned is checked against the model.\n\n");
    if (!(o->b.phases & P_QUERY)) {
        fprintf(f, "%s", not_run);
    } else {
        fprintf(f, "| query | key | queries attempted/ok/conflicts/errors "
                   "| events returned (mean / max) | p50 | p90 | p95 | p99 | "
                   "max | warm-up excluded |\n"
                   "|---|---|---|---|---|---|---|---|---|---|\n");
        for (int k = 0; k < NQUERY; k++) {
            const query_result *q = &r->q[k];
            counts_str(cs, sizeof cs, &q->c);
            fprintf(f, "| %s | %s | %s | %.2f / %llu |", q->name, q->what, cs,
                    q->c.committed ? (double)q->events / (double)q->c.committed
                                   : 0,
                    (unsigned long long)q->max_events);
            md_lat_cells(f, &q->lat);
            fprintf(f, " %ld |\n", q->warmup);
        }
        const broad_result *b = &r->broad;
        counts_str(cs, sizeof cs, &b->c);
        fprintf(f, "\n(c) broad: every BookLent event of %s (type only), "
                   "forward; one warm-up pass, then %d; events/s at the "
                   "median pass.\n\n",
                b->tenant, b->passes);
        fprintf(f, "| events | passes attempted/ok/conflicts/errors | median "
                   "pass | min | max | events/s |\n"
                   "|---|---|---|---|---|---|\n");
        fprintf(f, "| %llu | %s | %.2f ms | %.2f ms | %.2f ms | %.0f |\n",
                (unsigned long long)b->expected, cs, b->median_s * 1e3,
                b->min_s * 1e3, b->max_s * 1e3, b->events_per_s);
    }

    fprintf(f, "\n## 3. Read, decide, conditional append (1 thread)\n\n");
    fprintf(f, "The seed's typical workload: read a random book's BookLent "
               "and BookReturned events (types + tag book:X, every result), "
               "take the marker, decide (returned if lent, else lent), and "
               "evs_dcb_append the event with the condition \"no such event "
               "of the book after the marker\". One writer, so a conflict "
               "would be a bug.\n\n");
    if (!(o->b.phases & P_WORKLOAD)) {
        fprintf(f, "%s", not_run);
    } else {
        const workload_result *w = &r->wl;
        counts_str(cs, sizeof cs, &w->c);
        fprintf(f, "| step | commands attempted/committed/conflicts/errors | "
                   "p50 | p90 | p95 | p99 | max | warm-up excluded |\n"
                   "|---|---|---|---|---|---|---|---|\n");
        fprintf(f, "| whole command | %s |", cs);
        md_lat_cells(f, &w->total);
        fprintf(f, " %ld |\n| read (query + marker) | |", w->warmup);
        md_lat_cells(f, &w->read);
        fprintf(f, " |\n| conditional append | |");
        md_lat_cells(f, &w->append);
        double n = (double)(w->c.committed ? w->c.committed : 1);
        fprintf(f, " |\n\nWhere the time goes: %.2f events read per "
                   "command; %llu syncs (%.2f per command), sync p50 %.3f "
                   "ms, p99 %.3f ms, %.1f µs per command inside fdatasync "
                   "(%.0f %% of the wall time); CPU %.1f µs per command "
                   "(%.0f %% of the wall time); %.2f context switches per "
                   "command; %.0f commands/s back to back. The device wrote "
                   "%.0f B per command during the commands and %.0f B per "
                   "command in the syncfs after them (%.2f s; the commands "
                   "started after a syncfs too).\n",
                (double)w->events_read / n, (unsigned long long)w->syncs,
                (double)w->syncs / n, w->sync_lat.p50, w->sync_lat.p99,
                w->sync_s * 1e6 / n,
                w->wall_s > 0 ? 100.0 * w->sync_s / w->wall_s : 0,
                w->cpu_s * 1e6 / n,
                w->wall_s > 0 ? 100.0 * w->cpu_s / w->wall_s : 0,
                (double)w->csw / n, w->wall_s > 0 ? n / w->wall_s : 0,
                (double)w->disk_bytes / n,
                (double)w->after.bytes / (double)(w->c.attempted + w->warmup),
                w->after.s);
    }

    fprintf(f, "\n## 4. Conditional appends\n\n");
    fprintf(f, "Each thread appends one StudentRegistered event per call "
               "(evs_dcb_append, no stream, tags email:<unique> and "
               "region:<r>, 160 B) to tenant <thread mod 12>, on the "
               "condition that no StudentRegistered event with that email "
               "tag exists after the marker of a read the thread made at "
               "its start: every append claims a boundary nobody else "
               "touches, so there can be no conflict. The store is the "
               "loaded one (it grows by each level).\n\n");
    if (!(o->b.phases & P_APPEND))
        fprintf(f, "%s", not_run);
    else
        md_levels(f, r, r->cond, r->cond_chk, r->ncond, 1);

    fprintf(f, "\n### Control: the same appends without a condition\n\n");
    fprintf(f, "The same events, evs_dcb_append with condition NULL: the "
               "difference is the cost of checking the condition.\n\n");
    if (!(o->b.phases & P_CONTROL))
        fprintf(f, "%s", not_run);
    else
        md_levels(f, r, r->ctrl, r->ctrl_chk, r->nctrl,
                  !(o->b.phases & P_APPEND));

    fprintf(f, "\n### Contended: %d threads racing over %d boundaries\n\n",
            o->race_threads, o->boundaries);
    fprintf(f, "%d courses of %s hand out seat numbers. A command reads the "
               "course's newest StudentSubscribed (types + tag "
               "course:<c>, backward, limit 1) and its marker, then appends "
               "seat + 1 on the condition that no StudentSubscribed of the "
               "course came after the marker; latency is the whole command "
               "(read + append), and a conflict is a lost race (not "
               "retried). Afterwards every course is read back: its seats "
               "must be 1, 2, 3, ... with none given twice, and their "
               "number must equal the committed commands.\n\n",
            o->boundaries, g_tenants[0].name);
    if (!r->ran_race) {
        fprintf(f, "%s", not_run);
    } else {
        md_levels(f, r, &r->race, &r->race_chk, 1,
                  !(o->b.phases & (P_APPEND | P_CONTROL)));
        fprintf(f, "\nConflict rate %.1f %% of the commands; seats read "
                   "back: %llu (%s).\n",
                r->race.c.attempted ? 100.0 * (double)r->race.c.conflicts /
                                          (double)r->race.c.attempted
                                    : 0,
                (unsigned long long)r->race_chk.seats,
                r->race_chk.problem[0] ? r->race_chk.problem
                                       : "every seat once, in order");
    }
    fprintf(f, "\nAt the end the store held %llu events, log %.0f MiB in "
               "%llu segments, index %.0f MiB.\n",
            (unsigned long long)r->end.events,
            (double)r->end.log_bytes / 1048576.0,
            (unsigned long long)r->end.segments,
            (double)r->end.index_bytes / 1048576.0);

    fprintf(f, "\n## 5. Goals\n\n");
    md_goals(f, r->goals, r->ngoals);
    fprintf(f, "\nThe seed's figures (dynamic-streams-eventstore-go on "
               "PostgreSQL, another machine, averages), for context:\n\n");
    fprintf(f, "| operation | seed | measured here |\n|---|---|---|\n");
    for (int i = 0; i < r->nseeds; i++)
        fprintf(f, "| %s | %s | %s |\n", r->seeds[i].name, r->seeds[i].target,
                r->seeds[i].measured);

    const char *errs[8][2] = {{"load", ld->error},
                              {"query (a)", r->q[Q_TAG].error},
                              {"query (b)", r->q[Q_TYPES_TAG].error},
                              {"query (d)", r->q[Q_LAST].error},
                              {"query (c)", r->broad.error},
                              {"read-decide-append", r->wl.error},
                              {"contended", r->race.error},
                              {"contended, read back", r->race_chk.problem}};
    int nerr = !ld->store_check || g_failures;
    for (int i = 0; i < 8; i++)
        nerr += errs[i][1][0] != 0;
    if (!nerr)
        return;
    fprintf(f, "\n## Errors and failed checks\n\n");
    fprintf(f, "%d check(s) failed.\n\n", g_failures);
    if (!ld->store_check)
        fprintf(f, "- load: the store's counts do not match what was "
                   "acknowledged\n");
    for (int i = 0; i < 8; i++)
        if (errs[i][1][0])
            fprintf(f, "- %s, first error: %s\n", errs[i][0], errs[i][1]);
    for (int i = 0; i < r->ncond; i++)
        if (r->cond[i].error[0] || !r->cond[i].store_check ||
            r->cond[i].c.conflicts)
            fprintf(f, "- conditional appends, %d threads: %s%s\n",
                    r->cond[i].threads,
                    r->cond[i].store_check ? "" : "store count mismatch; ",
                    r->cond[i].error[0] ? r->cond[i].error
                                        : "conflicts on fresh boundaries");
    for (int i = 0; i < r->nctrl; i++)
        if (r->ctrl[i].error[0] || !r->ctrl[i].store_check)
            fprintf(f, "- unconditional appends, %d threads: %s%s\n",
                    r->ctrl[i].threads,
                    r->ctrl[i].store_check ? "" : "store count mismatch; ",
                    r->ctrl[i].error);
}

/* ------------------------------------------------------------------ */
/* JSON                                                                */
/* ------------------------------------------------------------------ */

static void json_flush(FILE *f, const char *key, const flush_result *fl)
{
    fprintf(f, "\"%s\": {\"syncfs_s\": %.3f, \"device_bytes\": %llu}", key,
            fl->s, (unsigned long long)fl->bytes);
}

/* The levels, and beside them (same order) the write-back each left. */
static void json_levels(FILE *f, const char *key, const level_result *a,
                        const level_check *chk, int n)
{
    fprintf(f, "  \"%s\": [\n", key);
    for (int i = 0; i < n; i++) {
        json_level(f, &a[i]);
        fprintf(f, "%s\n", i + 1 < n ? "," : "");
    }
    fprintf(f, "  ],\n  \"%s_writeback\": [", key);
    for (int i = 0; i < n; i++) {
        fprintf(f, "%s{", i ? ", " : "");
        json_flush(f, "after", &chk[i].after);
        fprintf(f, "}");
    }
    fprintf(f, "],\n");
}

static void write_json(FILE *f, const void *report_)
{
    const report *r = report_;
    const options *o = r->o;
    const load_result *ld = &r->load;
    json_head(f, "dcb_bench", &r->run, o->b.label);
    fprintf(f, "  \"config\": {\"quick\": %s, \"events\": %llu, \"seed\": "
               "%llu, \"tenants\": %d, \"big_tenants\": %d, \"big_share\": "
               "%.2f, \"load_batch\": %d, \"seconds\": %.3f, \"warmup_s\": "
               "%.3f, \"queries\": %ld, \"passes\": %d, \"commands\": %ld, "
               "\"race_threads\": %d, \"boundaries\": %d},\n",
            o->b.quick ? "true" : "false", (unsigned long long)o->events,
            (unsigned long long)o->seed, NTENANTS, NBIG, BIG_SHARE,
            LOAD_BATCH, o->seconds, o->warmup, o->queries, o->passes,
            o->commands, o->race_threads, o->boundaries);
    fprintf(f, "  \"load\": {\"events\": %llu, \"appends\": ",
            (unsigned long long)ld->st.events);
    json_counts(f, &ld->c);
    fprintf(f, ", \"wall_s\": %.3f, \"append_s\": %.3f, \"events_per_s\": "
               "%.1f, \"syncs\": %llu, \"cpu_s\": %.3f, \"device_bytes\": "
               "%llu, ",
            ld->wall_s, ld->append_s,
            ld->wall_s > 0 ? (double)ld->st.events / ld->wall_s : 0,
            (unsigned long long)ld->syncs, ld->cpu_s,
            (unsigned long long)ld->disk_bytes);
    json_flush(f, "writeback_after", &ld->after);
    fprintf(f, ", \"latency\": ");
    json_lat(f, &ld->lat);
    fprintf(f, ", \"streams\": %llu, \"log_bytes\": %llu, \"index_bytes\": "
               "%llu, \"segments\": %llu, \"store_matches\": %s, "
               "\"first_error\": ",
            (unsigned long long)ld->st.streams,
            (unsigned long long)ld->st.log_bytes,
            (unsigned long long)ld->st.index_bytes,
            (unsigned long long)ld->st.segments,
            ld->store_check ? "true" : "false");
    json_str(f, ld->error);
    fprintf(f, ",\n    \"tenants\": [");
    for (int i = 0; i < NTENANTS; i++) {
        const tmodel *t = &g_tenants[i];
        fprintf(f, "%s\n      {\"name\": \"%s\", \"events\": %llu, "
                   "\"streamless\": %llu, \"books\": %u, \"students\": %u, "
                   "\"courses\": %u}",
                i ? "," : "", t->name,
                (unsigned long long)(t->streamless + t->streamed),
                (unsigned long long)t->streamless, t->nbooks, t->nstudents,
                t->ncourses);
    }
    fprintf(f, "]},\n  \"queries\": [\n");
    for (int k = 0; (o->b.phases & P_QUERY) && k < NQUERY; k++) {
        const query_result *q = &r->q[k];
        fprintf(f, "    {\"query\": ");
        json_str(f, q->name);
        fprintf(f, ", \"warmup\": %ld, \"counts\": ", q->warmup);
        json_counts(f, &q->c);
        fprintf(f, ", \"events_returned\": %llu, \"max_events\": %llu, "
                   "\"latency\": ",
                (unsigned long long)q->events,
                (unsigned long long)q->max_events);
        json_lat(f, &q->lat);
        fprintf(f, ", \"first_error\": ");
        json_str(f, q->error);
        fprintf(f, "}%s\n", k + 1 < NQUERY ? "," : "");
    }
    fprintf(f, "  ],\n  \"broad_query\": ");
    if (o->b.phases & P_QUERY) {
        fprintf(f, "{\"tenant\": \"%s\", \"events\": %llu, \"passes\": ",
                r->broad.tenant, (unsigned long long)r->broad.expected);
        json_counts(f, &r->broad.c);
        fprintf(f, ", \"median_s\": %.6f, \"events_per_s\": %.1f}",
                r->broad.median_s, r->broad.events_per_s);
    } else {
        fprintf(f, "null");
    }
    fprintf(f, ",\n  \"workload\": ");
    if (o->b.phases & P_WORKLOAD) {
        const workload_result *w = &r->wl;
        fprintf(f, "{\"warmup\": %ld, \"counts\": ", w->warmup);
        json_counts(f, &w->c);
        fprintf(f, ",\n    \"latency\": ");
        json_lat(f, &w->total);
        fprintf(f, ",\n    \"read_latency\": ");
        json_lat(f, &w->read);
        fprintf(f, ",\n    \"append_latency\": ");
        json_lat(f, &w->append);
        fprintf(f, ",\n    \"sync_latency\": ");
        json_lat(f, &w->sync_lat);
        fprintf(f, ",\n    \"events_read\": %llu, \"wall_s\": %.6f, "
                   "\"cpu_s\": %.6f, \"syncs\": %llu, \"sync_s\": %.6f, "
                   "\"context_switches\": %llu, \"device_bytes\": %llu, ",
                (unsigned long long)w->events_read, w->wall_s, w->cpu_s,
                (unsigned long long)w->syncs, w->sync_s,
                (unsigned long long)w->csw,
                (unsigned long long)w->disk_bytes);
        json_flush(f, "writeback_after", &w->after);
        fprintf(f, ", \"first_error\": ");
        json_str(f, w->error);
        fprintf(f, "}");
    } else {
        fprintf(f, "null");
    }
    fprintf(f, ",\n");
    json_levels(f, "conditional_appends", r->cond, r->cond_chk, r->ncond);
    json_levels(f, "unconditional_appends", r->ctrl, r->ctrl_chk, r->nctrl);
    json_levels(f, "contended", &r->race, &r->race_chk, r->ran_race);
    fprintf(f, "  \"contended_seats_read_back\": %llu, \"contended_check\": ",
            (unsigned long long)r->race_chk.seats);
    json_str(f, r->race_chk.problem);
    fprintf(f, ",\n");
    json_tail(f, &r->run, r->goals, r->ngoals, "seed_figures", r->seeds,
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
    tenants_plan(o.events);
    evs_db *db = open_fresh("dcb");
    bench_load(db, &o, &r.load);
    if (o.b.phases & P_QUERY) {
        for (int k = 0; k < NQUERY; k++)
            bench_query(db, &o, k, &r.q[k]);
        bench_broad(db, &o, &r.broad);
    }
    if (o.b.phases & P_WORKLOAD)
        bench_workload(db, &o, &r.wl);
    for (int i = 0; i < o.nthreads; i++) {
        if (o.b.phases & P_APPEND) {
            bench_claims(db, &o, o.threads[i], 1, &r.cond[r.ncond],
                         &r.cond_chk[r.ncond]);
            r.ncond++;
        }
        if (o.b.phases & P_CONTROL) {
            bench_claims(db, &o, o.threads[i], 0, &r.ctrl[r.nctrl],
                         &r.ctrl_chk[r.nctrl]);
            r.nctrl++;
        }
    }
    if (o.b.phases & P_CONTENDED) {
        bench_race(db, &o, &r.race, &r.race_chk);
        r.ran_race = 1;
    }
    close_store(db, "dcb", &r.end);
    return bench_end(&r.run, &o.b, compute_goals, write_md, write_json, &r);
}
