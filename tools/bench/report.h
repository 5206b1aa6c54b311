/*
 * report.h -- what the `evs bench` runner (suite.c) measured, and the
 * report written from it (report.c): OUT/report.md, OUT/report.json and the
 * plots. Private to tools/bench.
 */
#ifndef EVS_BENCH_REPORT_H
#define EVS_BENCH_REPORT_H

#include "bench_util.h"
#include "gen.h"
#include "index_rebuild.h"
#include "suite.h"
#include "transport.h"

#include <limits.h>

/* One scenario's results. */
typedef struct scen_result {
    const bench_scenario *sc;
    char tenant[80];      /* the ctx.tenant it was given */
    int ran;              /* setup succeeded and its levels ran */
    int failed;           /* see suite.h: setup, errors, accounting, check */
    int accounting_ok;    /* every level's counts (warm-up too) add up */
    int check;            /* -1: no check; 0: held; 1: failed */
    char setup_error[512];
    char check_error[512];
    double setup_s, check_s;
    level_result lv[BENCH_MAX_LEVELS];
    int n;
    /* a peer's scenario: SQLITE_BUSY retries per level, warm-up included
       (0 for evstore's) */
    uint64_t retries[BENCH_MAX_LEVELS];
    /* the figures it measured itself (suite.h; most have none) */
    bench_figures fig;
} scen_result;

/* A peer (suite.h, BENCH_PEER_*): another store loaded with the same
 * generated data, running the counterparts of the selected scenarios
 * that have one (peer_sqlite.h) after evstore's, in the same run. */
typedef struct peer_result {
    const char *name;     /* "sqlite" */
    const char *title;    /* "SQLite" */
    int requested;        /* in --peers (or the default) */
    int ran;              /* loaded, and its scenarios ran */
    int failed;           /* its load or one of its scenarios failed */
    char note[512];       /* why it did not run, or its load's error */
    char version[64];
    const char *pragmas;  /* its configuration, for the report */
    const char *schema;   /* its schema (SQL), for the report */
    char path[PATH_MAX];  /* its database */
    uint64_t load_events, load_commits;
    double load_s;
    uint64_t bytes;       /* its database's size at the end */
    scen_result *sr;      /* the counterparts */
    const scen_result **evs; /* evstore's result for each of them */
    int nsr;
    /* the PostgreSQL peers (peer_pg.h); NULL / "" for SQLite */
    const char *retries_what; /* what scen_result.retries count (NULL:
                                 none are counted, no line) */
    const char *load_how;     /* how the data was loaded (NULL: SQLite's
                                 text); load_events 0: not loaded */
    char compare[400];        /* which evstore figures it is put beside */
    char server[700];         /* its PostgreSQL server and settings */
} peer_result;

#define BENCH_NPEERS 3

/* A target judged against the figures. */
typedef struct target_result {
    const bench_scenario *sc;
    const bench_target *t;
    int have;             /* a level to judge it on exists */
    int threads;          /* the level judged */
    double measured;
    const char *verdict;  /* "met", "not met", "not run" */
    char note[200];       /* why, when not plainly met / not met */
} target_result;

/* PostgreSQL only: EXPLAIN (ANALYZE, BUFFERS) of one hot query, run on
 * the loaded data after the scenarios (explain.h). */
typedef struct explain_entry {
    char *name, *params, *index, *plan;
    int used;       /* 1 the intended index was used; 0 not; -1 n/a */
    int failed;     /* the EXPLAIN failed: plan holds the message */
    double exec_ms; /* the plan's Execution Time; < 0 unknown */
} explain_entry;

typedef struct suite_report {
    const bench_options *o;
    double seconds, warmup; /* the levels' window and warm-up */
    const char *label;
    const char *version;
    char date[40];
    machine m;
    char store[PATH_MAX];   /* the store's path (or URI) */
    int fresh;              /* 1: a fresh store in a temp dir */
    /* fdatasync latency at start */
    int fsync_ok;
    long fsync_n;
    size_t fsync_bytes;
    lat_summary fsync;
    char fsync_dir[PATH_MAX];
    char fsync_error[256];
    /* the data load */
    gen_config gen;
    gen_stats gst;
    int gen_ok;             /* 1 loaded, 0 failed */
    double gen_s;           /* wall time of gen_load */
    char gen_error[512];
    /* the index rebuilt from the log after the load (embedded stores) */
    rebuild_figure rebuild;
    /* the scenarios */
    scen_result *sr;
    int nsr;
    target_result *tr;
    int ntr;
    /* the store at the end */
    evs_stats end;
    int end_ok;
    double total_s;
    char load_start[64], load_end[64];
    int status;             /* the exit status */
    /* PostgreSQL: the EXPLAIN section (explain_run 0: not a PostgreSQL
     * store, or the data did not load) */
    int explain_run;
    int analyzed;            /* ANALYZE ran after the load */
    double analyze_s;
    char explain_error[512]; /* the capture stopped: why */
    explain_entry *ex;
    int nex;
    /* the peers, in BENCH_PEER_* order */
    peer_result peers[BENCH_NPEERS];
    /* the transport dimension (transport.h) */
    transport_result tp;
    /* plots */
    int plots_drawn;        /* 1: every PNG drawn */
    char plots_note[400];   /* why not, when not */
} suite_report;

/* Judges every target of the run's scenarios (fills r->tr, r->ntr). */
void report_targets(suite_report *r);

/* The number formats shared by the Markdown and the JSON test: ops/s and
 * items/s with one decimal, milliseconds with three. */
#define RATE_FMT "%.1f"
#define MS_FMT "%.3f"

/* Writes the .dat and .gp files of the plots in dir and runs gnuplot on
 * them (unless plots is 0); sets r->plots_drawn and r->plots_note. */
void report_plots(suite_report *r, const char *dir, int plots);

/* Writes dir/report.md and dir/report.json. Returns 0, or -1 with a
 * message in err. */
int report_write(const suite_report *r, const char *dir, char *err,
                 size_t errsize);

/* The summary (title, targets table, scenario outcomes) to f. */
void report_summary_md(FILE *f, const suite_report *r, const char *dir);

#endif
