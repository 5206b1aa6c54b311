/*
 * bench_util.h -- what the benchmarks share: the micro-benchmarks
 * (micro/NAME_bench.c) and the `evs bench` runner (suite.c) with its
 * scenarios: the program's options and exit paths, clocks and process
 * counters, a random generator and payload helpers, latency samples and
 * nearest-rank percentiles, operation accounting (committed / rejected /
 * conflict / error, and the items each operation wrote or read), timed
 * multi-thread levels with their "where the time goes" figures, the
 * machine description and the fdatasync probe, goal rows, and the
 * Markdown/JSON pieces of the reports.
 *
 * The syncs those figures count come from the sync probe (sync_probe.h),
 * which every executable that links bench_util.c links too.
 */
#ifndef EVS_BENCH_UTIL_H
#define EVS_BENCH_UTIL_H

#include <evstore.h>

#include "sync_probe.h"

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

/* ---- random numbers, payloads ---- */

/* splitmix64: small, fast, and the same sequence for the same seed. */
static inline uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n) (0 when n is 0). */
static inline uint64_t rng_below(uint64_t *s, uint64_t n)
{
    return n ? rng_next(s) % n : 0;
}

/* rng_below on a uint64_t state given as void * (bank.h, shop.h). */
uint64_t rng_below_fn(void *rng, uint64_t n);

/* ev <- a JSON event of type with data[0..len), no tags, id and time
 * left to the store. */
void event_init(evs_event_data *e, const char *type, const char *data,
                size_t len);

/* The number after key (e.g. "\"amount\":") in a NUL-terminated JSON
 * text, 0 when absent (or data is NULL). Only for the benchmarks' own flat
 * payloads; unsigned (strtoull) for their 64-bit checksums, which a signed
 * caller casts back. */
uint64_t json_uint(const void *data, const char *key);

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

/*
 * A benchmark's own option, for bench_begin: its name, the kind of
 * value and where it goes, the range it must be in, and the value it gets
 * when not given (quick_def with --quick). Made with the BENCH_OPT_*
 * macros below, which check the destination's type (the conditional
 * `1 ? (p) : (T *)0` draws a warning when p is not a T *).
 */
typedef enum bench_opt_kind {
    BOPT_LONG,     /* long in [min, max] */
    BOPT_INT,      /* int in [min, max] */
    BOPT_UINT,     /* unsigned in [min, max] */
    BOPT_U64,      /* uint64_t in [min, max] */
    BOPT_SECONDS,  /* double in (0, fmax] */
    BOPT_SECONDS0, /* double in [0, fmax] */
    BOPT_LEVELS    /* parse_list into int[MAX_LEVELS], the count in *n */
} bench_opt_kind;

typedef struct bench_opt {
    const char *name;           /* "--seconds" */
    bench_opt_kind kind;
    void *dst;
    long min, max;              /* integers */
    double fmax;                /* seconds */
    double def, quick_def;      /* numbers (whole ones for integers) */
    const char *levels_def;     /* BOPT_LEVELS: the list when not given */
    int *n;                     /* BOPT_LEVELS: the count */
} bench_opt;

#define BENCH_OPT_INT_(nm, k, T, p, lo, hi, d, qd)                          \
    {nm, k, (1 ? (p) : (T *)0), lo, hi, 0, d, qd, NULL, NULL}
#define BENCH_OPT_LONG(nm, p, lo, hi, d, qd)                                \
    BENCH_OPT_INT_(nm, BOPT_LONG, long, p, lo, hi, d, qd)
#define BENCH_OPT_INT(nm, p, lo, hi, d, qd)                                 \
    BENCH_OPT_INT_(nm, BOPT_INT, int, p, lo, hi, d, qd)
#define BENCH_OPT_UINT(nm, p, lo, hi, d, qd)                                \
    BENCH_OPT_INT_(nm, BOPT_UINT, unsigned, p, lo, hi, d, qd)
#define BENCH_OPT_U64(nm, p, lo, hi, d, qd)                                 \
    BENCH_OPT_INT_(nm, BOPT_U64, uint64_t, p, lo, hi, d, qd)
/* Seconds: > 0 (SECONDS) or >= 0 (SECONDS0), at most hi. */
#define BENCH_OPT_SECONDS(nm, p, hi, d, qd)                                 \
    {nm, BOPT_SECONDS, (1 ? (p) : (double *)0), 0, 0, hi, d, qd, NULL, NULL}
#define BENCH_OPT_SECONDS0(nm, p, hi, d, qd)                                \
    {nm, BOPT_SECONDS0, (1 ? (p) : (double *)0), 0, 0, hi, d, qd, NULL, NULL}
#define BENCH_OPT_LEVELS(nm, p, np, d)                                      \
    {nm, BOPT_LEVELS, (1 ? (p) : (int *)0), 0, 0, 0, 0, 0, d,              \
     (1 ? (np) : (int *)0)}

/* The elements of an array (not a pointer). */
#define BENCH_COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

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
 * with the latencies in *out and, when cpu_us is not NULL, the process's
 * CPU time (user + sys) per measured sync in *cpu_us, or -1 with a message
 * in err (never dies). */
int fsync_probe(const char *dir, long n, size_t wsize, lat_summary *out,
                double *cpu_us, char *err, size_t errsize);

/* Writes back every dirty page of the filesystem holding dir (syncfs):
 * the index is written without syncs, so a phase leaves dirty pages that
 * the kernel would otherwise write back during the next one. *secs: how
 * long the syncfs took; *bytes: what the device wrote meanwhile (0 when
 * unknown); either may be NULL. Returns 0, or -1 with "cannot open DIR:
 * ..." or "syncfs(DIR): ..." in err (when not NULL). */
int sync_fs(const char *dir, double *secs, uint64_t *bytes, char *err,
            size_t errsize);

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

/*
 * A micro-benchmark's main is bench_begin, its phases, bench_end.
 *
 * bench_begin names the program (bench_init), parses argv: the common
 * options into b, the benchmark's own (own[0..nown)) where their table
 * says, every own option not given set to its default (dies on an unknown
 * option or a bad value; phases: the --only names, bit i for phases[i];
 * --help prints usage to stdout and exits 0); then opens the --json and
 * --md files (failing before minutes are spent measuring), makes g_root,
 * describes the machine and notes the start.
 */
void bench_begin(bench_run *run, bench_opts *b, const char *prog, int argc,
                 char **argv, const char *const *phases, int nphases,
                 void (*usage)(FILE *), const bench_opt *own, int nown);
/* bench_end notes the end (total time, load average), calls goals(report)
 * (the verdicts, which may look at the whole run), writes the report to
 * stdout and the --md file and the figures to the --json file, removes
 * g_root unless --keep; returns the exit status (3 when a check failed). */
int bench_end(bench_run *run, const bench_opts *o, void (*goals)(void *),
              void (*write_md)(FILE *, const void *),
              void (*write_json)(FILE *, const void *), void *report);

/* ---- stores ---- */

/* Creates g_root: a fresh evs-bench-XXXXXX dir in dir (NULL: "."). */
void make_root(const char *dir);
void store_path(char *out, size_t size, const char *name);
/* A store named name in g_root, created; dies on failure. */
evs_db *open_fresh(const char *name);
/* Closes it and, unless g_keep, deletes it; first, when end is not NULL,
 * its evs_stats_get into *end (a failure is said on stderr). */
void close_store(evs_db *db, const char *name, evs_stats *end);

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
/* The rows after a report's mode row: the total run time (with the
 * setup's share when setup_s >= 0) and the load averages at start and
 * end; then the table's end. */
void md_run_rows(FILE *f, const bench_run *run, double setup_s);
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
