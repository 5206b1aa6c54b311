/*
 * suite.h -- the scenarios of `evs bench` (issue 6) and what the runner
 * gives them.
 *
 * The runner (suite.c) opens a fresh store (or --db with --force), loads
 * the generated data (gen.h, default 1M events), then runs each selected
 * scenario: setup once, then one timed level per concurrency level
 * (threads calling op in a loop: a warm-up whose operations are counted
 * apart and excluded, then the measured window), then check, then
 * teardown. Every operation ends in exactly one outcome (BENCH_*), and the
 * four counts add up to the operations attempted; the runner verifies
 * that and reports it beside every throughput.
 *
 * Scenarios use the public API only (evstore.h, evstore_command.h), so
 * they run unchanged on every backend.
 */
#ifndef EVS_BENCH_SUITE_H
#define EVS_BENCH_SUITE_H

#include <evstore.h>

#include <stddef.h>
#include <stdint.h>

#include "gen.h"

/* The outcome of one operation. For reads, COMMITTED means "completed
 * with the expected answer". */
enum {
    BENCH_COMMITTED = 0,
    BENCH_REJECTED = 1, /* business rule said no (e.g. insufficient funds,
                           a DCB claim already taken): a correct answer */
    BENCH_CONFLICT = 2, /* still conflicting after the retries */
    BENCH_ERROR = 3     /* anything else: err says what */
};

/* Figures a scenario measures itself, beyond its levels' (scen_scavenge.c:
 * the scavenge's MB/s, the append p99 during it over without): named
 * numbers its BENCH_FIGURE targets are judged on, and its own Markdown and
 * JSON for the report. The runner gives every scenario one
 * (bench_ctx.figures), kept with its results after teardown. */
#define BENCH_MAX_FIGURES 16
typedef struct bench_figure {
    char name[48];   /* e.g. "scavenge_mb_per_s" ("_per_s": a rate,
                        printed with one decimal; else three) */
    double value;
    int threads;     /* the level whose outcomes it depends on */
} bench_figure;

typedef struct bench_figures {
    bench_figure f[BENCH_MAX_FIGURES];
    int n;
    char note[300]; /* why figures are missing (the note of their "not
                       run" targets), or "" */
    char *md;       /* malloc'ed Markdown printed in the scenario's section
                       after its level table, or NULL */
    char *json;     /* malloc'ed JSON object text: report.json's
                       scenarios[].figures, or NULL (null) */
} bench_figures;

/* What every scenario is given. */
typedef struct bench_ctx {
    evs_db *db;
    const char *db_uri;       /* the store's path or URI */
    const gen_config *gen;    /* what was loaded before the scenarios */
    const gen_stats *loaded;  /* and what that produced */
    uint64_t seed;            /* the run's seed (--seed) */
    int quick;                /* --quick: keep setup small */
    /* a fresh tenant name for this scenario's own data ("bench-NAME"), so
       scenarios do not see each other's events */
    const char *tenant;
    bench_figures *figures;   /* the scenario's own figures (above) */
    double warmup, seconds;   /* the levels' warm-up and window (s) */
} bench_ctx;

/* A target a scenario's figures are judged against. */
typedef enum bench_metric {
    BENCH_OPS_PER_S,    /* committed operations per second */
    BENCH_ITEMS_PER_S,  /* items (events written or read) per second */
    BENCH_P50_MS,
    BENCH_P95_MS,
    BENCH_P99_MS,
    BENCH_FIGURE        /* a figure of the scenario's own, not a level's
                           (bench_scenario.target_figures names it) */
} bench_metric;

typedef struct bench_target {
    const char *name;    /* e.g. "single-stream commands/s" */
    const char *source;  /* e.g. "seed 000 (EventCore)" or "evstore goal
                            (docs/PERFORMANCE.md)" */
    bench_metric metric;
    int at_least;        /* 1: measured >= value meets it; 0: <= */
    double value;
    int threads;         /* the level it is judged at; 0 = the best level */
} bench_target;

/* What a BENCH_FIGURE target is judged on (bench_scenario.target_figures):
 * the figure's name (bench_figure.name; also report.json's metric) and its
 * unit in the report, e.g. "MB/s". */
typedef struct bench_target_figure {
    const char *figure;
    const char *unit;
} bench_target_figure;

struct level_result;

typedef struct bench_scenario {
    const char *name;   /* selectable name, e.g. "bank" (lowercase, '-') */
    const char *title;  /* e.g. "Single-stream financial commands" */
    const char *what;   /* one paragraph: what one operation is, what is
                           timed, what the items are */
    const char *item;   /* what items count, e.g. "events"; NULL: none */
    const int *levels;  /* default concurrency levels (threads), full run */
    int nlevels;
    const int *quick_levels; /* the same for --quick */
    int nquick_levels;
    const bench_target *targets;
    int ntargets;

    /* Once, before the levels (not timed): create the scenario's data.
       Returns 0 or -1 with a message in err (the scenario is then
       reported as failed and the others still run). */
    int (*setup)(void **state, bench_ctx *ctx, char *err, size_t errsize);
    /* In each thread of a level, before the start; NULL = no state. */
    void *(*thread_init)(void *state, int thread, int nthreads);
    /* One operation: returns a BENCH_* outcome; sets *t0 and *t1
       (CLOCK_MONOTONIC ns) around what is timed; adds the items it wrote
       or read to *items; on BENCH_ERROR writes what failed to err. */
    int (*op)(void *tstate, uint64_t *t0, uint64_t *t1, uint64_t *items,
              char *err, size_t errsize);
    void (*thread_fini)(void *tstate);
    /* After the levels: check the store agrees with the outcomes (e.g.
       balances, versions, counts). NULL = nothing to check. Returns 0 or
       -1 with a message (the report shows it; the run's exit status is 3). */
    int (*check)(void *state, bench_ctx *ctx, char *err, size_t errsize);
    void (*teardown)(void *state);
    /* Instead of the runner's levels (NULL: the levels as above): the
       scenario's own measurement, after setup and before check, given the
       level list (--threads or its own); fills lv[0..*n) (at most
       BENCH_MAX_LEVELS) as level_run does -- the runner checks their
       accounting and errors as any level's -- and its figures into
       ctx->figures; stops early once g_interrupted is set. Returns 0, or
       -1 with a message in err (the scenario is then failed; the levels
       it filled are still reported). */
    int (*run)(void *state, bench_ctx *ctx, const int *levels, int nlevels,
               struct level_result *lv, int *n, char *err, size_t errsize);
    /* ntargets entries, the figure of each BENCH_FIGURE target (others:
       {NULL, NULL}); NULL when the scenario has none */
    const bench_target_figure *target_figures;
} bench_scenario;

/* Every scenario, in report order (scenarios.c); NULL-terminated. */
extern const bench_scenario *const bench_scenarios[];

/* The scenario named name, or NULL. */
const bench_scenario *bench_scenario_find(const char *name);

/* ------------------------------------------------------------------ */
/* The runner (suite.c), called by `evs bench` (tools/evs/cmd_bench.c)  */
/* ------------------------------------------------------------------ */

/*
 * What the runner does with a scenario, beyond the comments above:
 *   - thread_init NULL: op gets the scenario's state (setup's *state) as
 *     its tstate; thread_init returning NULL is an error of every
 *     operation of that thread (counted, reported, the scenario failed);
 *   - op must set *t0 <= *t1; when it leaves them 0 (or t1 < t0), the
 *     whole call is timed instead;
 *   - an op returning anything but a BENCH_* outcome counts as an error;
 *   - items/s is the items the measured operations reported (whatever
 *     their outcome) over the measured window; ops/s is committed ones;
 *   - a scenario fails (exit status 3, the others still run) when its
 *     setup fails, an operation ends in BENCH_ERROR, the counts of a level
 *     do not add up, or its check fails.
 */

#define BENCH_MAX_SCENARIOS 64
#define BENCH_MAX_LEVELS 16

/* The peers (docs/BENCH.md, "Peers"): other stores measured in the same
 * run on the same generated data, for the report's side-by-side ratios.
 * The PostgreSQL peers (peer_pg.h: raw PostgreSQL measured with pgbench,
 * and Message DB) run on a PostgreSQL server: --pg-uri, the --db server
 * when evstore itself runs on PostgreSQL, or a throwaway cluster the bench
 * starts (--pg-throwaway); without one they are skipped and the report
 * says why. */
#define BENCH_PEER_SQLITE 1u
#define BENCH_PEER_POSTGRES 2u
#define BENCH_PEER_MESSAGEDB 4u
#define BENCH_PEERS_PG (BENCH_PEER_POSTGRES | BENCH_PEER_MESSAGEDB)
#define BENCH_PEERS_DEFAULT (BENCH_PEER_SQLITE | BENCH_PEERS_PG)
/* every peer that can run here: SQLite always, the PostgreSQL ones when
   a server is available (see above) */

/* The transport dimension (transport.h; docs/BENCH.md, "Transport"): the
 * scenarios over gRPC against an `evs serve` the bench starts. */
#define BENCH_TRANSPORT_DEFAULT (-1) /* grpc in a full run, none with quick */
#define BENCH_TRANSPORT_NONE 0
#define BENCH_TRANSPORT_GRPC 1

typedef struct bench_options {
    const char *db_uri;  /* NULL: a fresh store in a temporary directory
                            under dir, removed after unless keep */
    int force;           /* allow a db_uri that already holds events */
    const char *dir;     /* parent of the fresh store's directory; NULL:
                            out */
    const char *out;     /* results directory (created); NULL:
                            "bench-results" */
    const char *label;   /* free text in the report (e.g. the commit);
                            NULL: $EVS_BENCH_LABEL, else none */
    const bench_scenario *scenarios[BENCH_MAX_SCENARIOS];
    int nscenarios;      /* 0: every scenario, in report order */
    int threads[BENCH_MAX_LEVELS];
    int nthreads;        /* 0: each scenario's own levels */
    uint64_t events;     /* generated before the scenarios; 0: 1000000,
                            or 50000 with quick */
    double seconds;      /* measured seconds per level; <= 0: default */
    double warmup;       /* warm-up seconds per level; < 0: default */
    uint64_t seed;       /* generator and scenarios; default 1 */
    int quick;           /* the short run (< 1 minute on 2 cores) */
    int keep;            /* keep the fresh store */
    int plots;           /* 1 (default): draw the PNGs with gnuplot */
    unsigned peers;      /* BENCH_PEER_* bits (default
                            BENCH_PEERS_DEFAULT); 0: no peer */
    int peers_given;     /* --peers named them (a PostgreSQL peer asked
                            for without a server is then a usage error) */
    const char *pg_uri;  /* --pg-uri: the PostgreSQL peers' server; NULL:
                            db_uri when it is PostgreSQL */
    int pg_throwaway;    /* --pg-throwaway: start a PostgreSQL 15 cluster
                            for them (under dir, else out), removed after */
    int transport;       /* the transport dimension (transport.h):
                            BENCH_TRANSPORT_GRPC, _NONE, or _DEFAULT
                            (grpc in a full run, none with quick) */
    const char *command; /* the command line, quoted in the report */
} bench_options;

void bench_options_init(bench_options *o);

/* Runs the suite and writes the report (OUT/report.md, report.json, the
 * plots); prints progress on stderr and the Markdown summary on stdout.
 * Returns the exit status: 0; 1 cannot run (results directory not
 * writable, store cannot be opened or is not empty without force, the
 * data could not be loaded, the report could not be written); 3 a
 * scenario failed (see above). Usage errors (2) are the caller's. */
int bench_suite_run(const bench_options *o);

#endif
