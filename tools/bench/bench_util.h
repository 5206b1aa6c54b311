/*
 * bench_util.h -- what the benchmarks share: the micro-benchmarks
 * (bench/NAME_bench.c) and the `evs bench` runner (suite.c): clocks and
 * process counters, the sync probe, latency samples and nearest-rank
 * percentiles, operation accounting (committed / rejected / conflict /
 * error, and the items each operation wrote or read), timed multi-thread
 * levels with their "where the time goes" figures, the machine
 * description, goal rows, and the Markdown/JSON pieces of the reports.
 *
 * Every benchmark links bench_util.c into its own executable: the sync
 * probe works by defining fdatasync and fsync in the executable, which
 * interposes them for the static library and for LMDB alike. `evs` links
 * it too (for `evs bench`), so every evs command goes through the probe's
 * wrappers: the raw system call plus two clock reads, negligible beside a
 * sync.
 */
#ifndef EVS_BENCH_UTIL_H
#define EVS_BENCH_UTIL_H

#include <evstore.h>

#include <limits.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define MAX_LEVELS 16
#define JOIN_TIMEOUT_S 120

/* ---- the program ---- */

/* Call first: names the program in messages, allocates the sync probe's
 * buffers. */
void bench_init(const char *prog);
extern const char *g_prog;

/* The bench's own temp dir; PATH_MAX - 128 leaves room for store names.
 * Removed on exit, also by die(), unless g_keep. */
extern char g_root[PATH_MAX - 128];
extern int g_keep;
/* --json and --md files, opened early; die() removes them half-written. */
extern const char *g_outputs[2];
extern int g_failures; /* errors or broken consistency checks: exit 3 */
/* die()'s exit status: 2 (the default: the micro-benchmarks die mostly on
 * bad arguments); `evs bench` sets 1 ("cannot run") once its arguments
 * are parsed. */
extern int g_die_status;
/* The exit status when a worker thread does not return after its level
 * (the library looks hung): 4 by default; `evs bench` sets 1. */
extern int g_hang_status;

void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void *xcalloc(size_t n, size_t size);
void rm_rf(const char *path);

/* ---- time and process counters ---- */

uint64_t now_ns(void); /* CLOCK_MONOTONIC */
void sleep_s(double s);

/* The signal that asked the run to stop (SIGINT, SIGTERM), 0 while none
 * did. Set by `evs bench`'s signal thread (suite.c); level_run then ends
 * its warm-up or window early (the micro-benchmarks never set it). */
extern _Atomic int g_interrupted;
/* Context switches of the whole process (all threads), voluntary (a
 * thread blocked) plus involuntary (preempted). */
uint64_t ctx_switches(void);
/* The process's CPU seconds: user (sys == 0) or kernel (sys == 1). */
double cpu_seconds(int sys);
/* Busy CPU seconds of the whole machine (every process and kernel thread),
 * from the first line of /proc/stat; -1 if unreadable. */
double machine_busy_s(void);
void loadavg(char *buf, size_t size);

/* Cumulative counters of one block device from /proc/diskstats. */
typedef struct disk_counters {
    uint64_t writes, sectors_written, flushes;
    int ok;
} disk_counters;
extern char g_disk_name[64]; /* e.g. "vda"; "" when unknown */
disk_counters disk_read(void);

/* ---- the sync probe ---- */

/* Every fdatasync/fsync of the process: count and summed nanoseconds. */
extern _Atomic uint64_t g_sync_calls;
extern _Atomic uint64_t g_sync_ns;
/* While g_sync_rec is set, each sync's duration also goes to g_sync_v (a
 * fixed buffer: no allocation inside the wrapper), and syncs slower than
 * SLOW_SYNC_NS to g_slow with the file they synced. */
#define SYNC_SAMPLES_MAX (1u << 20)
extern uint64_t *g_sync_v;
extern _Atomic uint64_t g_sync_n;
extern _Atomic int g_sync_rec;
#define SLOW_SYNC_NS 10000000u
#define SLOW_SYNCS_MAX 4096u
typedef struct slow_sync {
    uint64_t ns;
    char file[64];
} slow_sync;
extern slow_sync *g_slow;
extern _Atomic uint64_t g_slow_n;

/* ---- samples and percentiles ---- */

typedef struct samples {
    uint64_t *v; /* nanoseconds */
    size_t n, cap;
} samples;

void samples_push(samples *s, uint64_t ns);
void samples_append(samples *dst, const samples *src);

/* Latencies in milliseconds; n == 0 means "no samples". */
typedef struct lat_summary {
    size_t n;
    double min, p50, p90, p95, p99, max;
} lat_summary;

/* Sorts s and returns its nearest-rank percentiles. */
lat_summary summarize(samples *s);
int cmp_double(const void *a, const void *b);

/* ---- operation accounting ---- */

/* The outcome of one operation (the values of suite.h's BENCH_*). */
enum { OP_COMMITTED = 0, OP_REJECTED = 1, OP_CONFLICT = 2, OP_ERROR = 3 };

/* Every operation ends in exactly one outcome, so attempted = committed +
 * rejected + conflicts + errors (counts_ok). rejected and items were added
 * for `evs bench`; the micro-benchmarks leave them 0 (their operations
 * are either appends or checked reads: no business rule). */
typedef struct op_counts {
    uint64_t attempted, committed, conflicts, errors;
    uint64_t rejected; /* a business rule said no: a correct answer */
    uint64_t items;    /* items (events written or read) the operations
                          reported, whatever their outcome */
} op_counts;

void counts_add(op_counts *a, const op_counts *b);
/* 1 when attempted = committed + rejected + conflicts + errors. */
int counts_ok(const op_counts *c);
/* "attempted/committed/conflicts/errors" (the micro-benchmarks' form;
 * rejected is not shown: they never have any) */
void counts_str(char *buf, size_t size, const op_counts *c);
/* A run whose operations did not all commit cannot meet a goal. */
int clean(const op_counts *c);

/* ---- options ---- */

/* The options every benchmark has: --dir, --json, --md, --label, --quick,
 * --keep, --only (phases: a bit per name), --help. */
typedef struct bench_opts {
    const char *dir, *json_path, *md_path, *label;
    int quick, keep;
    unsigned phases; /* default: every phase */
} bench_opts;

/* A benchmark's own option: handles name (its inline value val, or
 * arg_value's) and returns 1, or returns 0 for an unknown option. */
typedef int (*bench_opt_fn)(void *ctx, const char *name, const char *val,
                            int argc, char **argv, int *i);

/* Parses argv: the common options into b, the others through own; dies on
 * an unknown one. phases: the --only names, bit i for names[i]. */
void bench_parse_args(bench_opts *b, int argc, char **argv,
                      const char *const *phases, int nphases,
                      void (*usage)(FILE *), bench_opt_fn own, void *ctx);

long parse_long(const char *flag, const char *s, long min, long max);
double parse_double(const char *flag, const char *s, double min, double max,
                    int min_inclusive);
/* A comma-separated list of at most MAX_LEVELS integers in 1..4096 into
 * out; returns how many. */
int parse_list(const char *flag, const char *s, int *out);
/* Split argument a ("--name" or "--name=value") into name and *val (NULL
 * without '='); dies on anything else. */
void arg_split(const char *a, char *name, size_t size, const char **val);
/* The option's value: the inline one, or the next argument. */
const char *arg_value(const char *name, const char *val, int argc,
                      char **argv, int *i);
void arg_no_value(const char *name, const char *val);

/* ---- the machine ---- */

typedef struct machine {
    char cpu[160];
    long cores;
    double ram_gib;
    char kernel[300];
    char fs_type[64], fs_source[256], fs_mount[PATH_MAX], fs_opts[256];
    char disk[320]; /* e.g. "vda (non-rotational, virtio)" */
    char date[40];
    char build[64];
} machine;

/* Describes the machine and the filesystem holding dir (sets
 * g_disk_name). */
void describe_machine(machine *m, const char *dir);

/* The disk's sync latency as the store sees it: n writes of wsize bytes,
 * each followed by fdatasync, into a preallocated temporary file in dir
 * (removed after), after n/20 (at least 10) unmeasured ones. Returns 0
 * with the latencies in *out, or -1 with a message in err (never dies). */
int fsync_probe(const char *dir, long n, size_t wsize, lat_summary *out,
                char *err, size_t errsize);

/* ---- a run ---- */

/* What every report records about its run. */
typedef struct bench_run {
    machine m;
    const char *version;
    char root[PATH_MAX];
    FILE *json, *md;
    uint64_t t0;
    double total_s;
    char load_start[64], load_end[64];
} bench_run;

/* Opens the --json and --md files (failing before minutes are spent
 * measuring), makes g_root, describes the machine, notes the start. */
void bench_start(bench_run *run, const bench_opts *o);
/* Notes the end: total time, load average. */
void bench_stop(bench_run *run);
/* Writes the report to stdout and the --md file, the figures to the --json
 * file, removes g_root unless --keep; returns the exit status (3 when a
 * check failed). */
int bench_finish(bench_run *run, const bench_opts *o,
                 void (*write_md)(FILE *, const void *),
                 void (*write_json)(FILE *, const void *),
                 const void *report);

/* ---- stores ---- */

/* Creates g_root: a fresh evs-bench-XXXXXX dir in dir (NULL: "."). */
void make_root(const char *dir);
void store_path(char *out, size_t size, const char *name);
/* A store named name in g_root, created; dies on failure. */
evs_db *open_fresh(const char *name);
/* Closes it and, unless g_keep, deletes it. */
void close_store(evs_db *db, const char *name);

void event_init(evs_event_data *e, const char *type, const char *data,
                size_t len);

/* ---- timed levels ---- */

/*
 * A level: nthreads threads repeat one operation, first for a warm-up
 * (operations that start in it are counted apart and are in neither
 * throughput nor latency), then for a measured window that ends when the
 * last measured operation returns.
 *
 * ops->init runs in each thread before the start and returns its state;
 * ops->op runs one operation and returns 0 (committed), EVS_ECONFLICT, or
 * another negative code (an error, described in err), and sets *t0 and *t1
 * to the start and end of what is timed (the latency sample);
 * ops->fini frees the state.
 */
typedef struct level_ops {
    void *(*init)(void *ctx, int id);
    int (*op)(void *state, uint64_t *t0, uint64_t *t1, char *err,
              size_t errsize);
    void (*fini)(void *state);
    /* Instead of op when set (`evs bench`): returns an OP_* outcome (any
     * other value counts as an error) and adds the items it wrote or read
     * to *items. */
    int (*op_outcome)(void *state, uint64_t *t0, uint64_t *t1,
                      uint64_t *items, char *err, size_t errsize);
} level_ops;

/* The latency curve every level keeps (for the plots): the nearest-rank
 * percentile at each of curve_pct[] (0 is the minimum, 100 the maximum). */
#define CURVE_POINTS 104
extern const double curve_pct[CURVE_POINTS];

typedef struct level_result {
    int threads;
    int events_per_append;
    double warmup_s, window_s;
    op_counts warm;   /* started during the warm-up: excluded */
    op_counts c;      /* measured */
    double ops_per_s; /* committed operations per second */
    double events_per_s;
    double items_per_s; /* op_outcome: measured c.items / window; else
                           events_per_s */
    lat_summary lat;
    double curve_ms[CURVE_POINTS]; /* latency at curve_pct[i] */
    uint64_t syncs;   /* fdatasync/fsync calls during the window */
    double sync_s;    /* seconds inside them (summed over threads) */
    double cpu_user, cpu_sys; /* CPU seconds during the window */
    double other_cpu_s;       /* machine busy CPU not ours (-1: unknown) */
    uint64_t csw;             /* context switches of the process */
    lat_summary sync_lat;     /* each fdatasync/fsync in the window */
    uint64_t slow_syncs;      /* of them, those over 10 ms */
    struct {
        char file[64];
        uint64_t n;
        double ms;
    } slow_by[8];             /* the slow ones by file synced */
    int nslow_by;
    uint64_t segments;        /* log segments in the store at the end */
    disk_counters disk;       /* device counters, window deltas */
    uint64_t store_events;    /* evs_stats_get after the level */
    int store_check;          /* 1: store events == committed events */
    char error[256];          /* first error message, if any */
} level_result;

/* Runs a level; fills every field but segments, store_events and
 * store_check (the caller's checks). events_per_op: events one committed
 * operation writes. Ends early (a shorter window) once g_interrupted is
 * set. */
void level_run(level_result *r, const level_ops *ops, void *ctx,
               int nthreads, int events_per_op, double warmup,
               double seconds);
/* The level of a[0..n) with that many threads, or NULL. */
const level_result *level_find(const level_result *a, int n, int threads);

/* ---- goals ---- */

typedef struct goal {
    char name[96];
    const char *target;
    char measured[160];
    const char *verdict; /* "met", "not met", "not run" */
} goal;

/* Append a goal row named name with its target to list (*n rows); fill it
 * in with goal_set or goal_not_run. */
goal *goal_add(goal *list, int *n, const char *name, const char *target);
void goal_not_run(goal *g);
void goal_set(goal *g, int ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- Markdown ---- */

/* " p50 | p90 | p95 | p99 | max |" cells, milliseconds. */
void md_lat_cells(FILE *f, const lat_summary *l);
/* The report's first table, up to its filesystem row: date, label (if
 * any), evstore version, build, CPU, cores, RAM, kernel, store dir. */
void md_machine_rows(FILE *f, const machine *m, const char *label,
                     const char *version, const char *root);
/* The goals table: goal, target, measured, verdict. */
void md_goals(FILE *f, const goal *g, int n);
/* Levels' results: threads, counts, ops/s (events/s when an op writes
 * several events), latency, warm-up excluded. */
void md_level_results(FILE *f, const level_result *a, int n);
/* Where the time went in each level. intro: NULL for the full explanation
 * of the columns (sync_ref, e.g. " (compare section 1)", is put after the
 * sync columns' description), else printed instead of it. */
void md_level_costs(FILE *f, const level_result *a, int n, const machine *m,
                    const char *intro, const char *sync_ref);

/* ---- JSON ---- */

void json_str(FILE *f, const char *s);
void json_lat(FILE *f, const lat_summary *l);
void json_counts(FILE *f, const op_counts *c);
void json_level(FILE *f, const level_result *a);
/* The report's opening members (benchmark, date, label, version, machine,
 * store dir), and its closing ones with the closing brace: the goals
 * (keys goal, target), the seeds' figures under seeds_key (keys k1, k2),
 * total time, load averages, failed checks. */
void json_head(FILE *f, const char *bench, const bench_run *run,
               const char *label);
void json_tail(FILE *f, const bench_run *run, const goal *goals, int ngoals,
               const char *seeds_key, const goal *seeds, int nseeds,
               const char *k1, const char *k2);

#endif /* EVS_BENCH_UTIL_H */
