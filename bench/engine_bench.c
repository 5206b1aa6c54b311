/*
 * engine_bench.c -- micro-benchmark of the embedded engine, over the public
 * API only (include/evstore.h).
 *
 * What it measures, each on a fresh store in a temporary directory:
 *
 *   1. the fdatasync floor of the store's filesystem (300 B and 30 KB
 *      writes into a preallocated, zero-filled file);
 *   2. durable single-event appends from 1, 8, 64, 256 threads, each thread
 *      on its own streams with exact expected versions;
 *   3. 100-event appends (one evs_append of 100 events) from 1 and 2
 *      threads;
 *   4. reading a 1000-event stream (contiguous in the log, and interleaved
 *      with other streams), touching every byte of every event's data;
 *   5. reading $all, for every tenant and per tenant;
 *   6. the project's goals and the seeds' targets, with verdicts.
 *
 * Honest accounting (docs/PERFORMANCE.md, DESIGN.md section 4): every
 * operation ends in exactly one of committed / conflict / error, and the
 * four counts are printed beside every throughput. Latency percentiles are
 * nearest-rank percentiles of the sorted per-operation samples, never
 * averages. Operations that start during the warm-up are counted apart and
 * excluded from throughput and latency. Every append is durable when it
 * returns (the library fdatasyncs the log before acknowledging).
 *
 * Beside each append level it records where the time went, so that a goal
 * not met comes with a measured reason: the syncs the library issued (count,
 * duration percentiles, share of the window), the process's CPU time per
 * event, the device's bytes written and cache flushes (/proc/diskstats),
 * and the CPU other programs and kernel threads used meanwhile (/proc/stat),
 * which tells a level that shared the machine.
 *
 * Why fdatasync and fsync are defined in this file: defining the symbols in
 * the executable interposes them for the static library and for shared
 * libraries (LMDB) alike, which is how the syncs are counted and timed
 * without a hook in the library. Each wrapper is the raw system call plus
 * two clock reads (~50 ns), negligible beside a sync.
 */
#include <evstore.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define PROG "engine_bench"
#define PAYLOAD_LEN 300
#define BATCH_EVENTS 100
#define STREAMS_PER_THREAD 4
#define BATCH_STREAMS_PER_THREAD 16
#define READ_STREAM_EVENTS 1000
#define ALL_TENANTS 4
#define ALL_STREAMS_PER_TENANT 50
#define ALL_PASSES 3
#define MAX_LEVELS 16
#define JOIN_TIMEOUT_S 120

/* Phases, for --only. */
#define P_FSYNC 0x1u
#define P_APPEND 0x2u
#define P_BATCH 0x4u
#define P_READ 0x8u
#define P_ALL 0x10u
#define P_EVERY 0x1fu

/* ------------------------------------------------------------------ */
/* Time, sync probe                                                    */
/* ------------------------------------------------------------------ */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static _Atomic uint64_t g_sync_calls;
static _Atomic uint64_t g_sync_ns;
/* While g_sync_rec is set, each sync's duration also goes to g_sync_v (a
 * fixed buffer: no allocation inside the wrapper). */
#define SYNC_SAMPLES_MAX (1u << 20)
static uint64_t *g_sync_v;
static _Atomic uint64_t g_sync_n;
static _Atomic int g_sync_rec;

/* Syncs slower than this are attributed to the file they synced, named
 * by its basename with leading hex digits shown as <n> (the lookup costs a
 * few µs, paid only after a slow sync). */
#define SLOW_SYNC_NS 10000000u
#define SLOW_SYNCS_MAX 4096u
typedef struct slow_sync {
    uint64_t ns;
    char file[64];
} slow_sync;
static slow_sync *g_slow;
static _Atomic uint64_t g_slow_n;

static void slow_sync_name(char *out, size_t size, int fd)
{
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) {
        snprintf(out, size, "?");
        return;
    }
    path[n] = 0;
    const char *base = strrchr(path, '/');
    base = base && base[1] ? base + 1 : path;
    size_t hex = strspn(base, "0123456789abcdefABCDEF");
    if (hex >= 4)
        snprintf(out, size, "<n>%.56s", base + hex);
    else
        snprintf(out, size, "%.60s", base);
}

static void sync_account(uint64_t t0, int fd)
{
    uint64_t d = now_ns() - t0;
    atomic_fetch_add(&g_sync_ns, d);
    atomic_fetch_add(&g_sync_calls, 1);
    if (atomic_load(&g_sync_rec)) {
        uint64_t i = atomic_fetch_add(&g_sync_n, 1);
        if (i < SYNC_SAMPLES_MAX)
            g_sync_v[i] = d;
        if (d > SLOW_SYNC_NS) {
            uint64_t j = atomic_fetch_add(&g_slow_n, 1);
            if (j < SLOW_SYNCS_MAX) {
                g_slow[j].ns = d;
                slow_sync_name(g_slow[j].file, sizeof g_slow[j].file, fd);
            }
        }
    }
}

__attribute__((visibility("default"))) int fdatasync(int fd)
{
    uint64_t t0 = now_ns();
    int rc = (int)syscall(SYS_fdatasync, fd);
    sync_account(t0, fd);
    return rc;
}

__attribute__((visibility("default"))) int fsync(int fd)
{
    uint64_t t0 = now_ns();
    int rc = (int)syscall(SYS_fsync, fd);
    sync_account(t0, fd);
    return rc;
}

static void sleep_s(double s)
{
    struct timespec ts;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Context switches of the whole process (all threads), voluntary (a
 * thread blocked) plus involuntary (preempted). */
static uint64_t ctx_switches(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)ru.ru_nvcsw + (uint64_t)ru.ru_nivcsw;
}

static double cpu_seconds(int sys)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    struct timeval tv = sys ? ru.ru_stime : ru.ru_utime;
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* Cumulative counters of one block device from /proc/diskstats. */
typedef struct disk_counters {
    uint64_t writes, sectors_written, flushes;
    int ok;
} disk_counters;

static char g_disk_name[64]; /* e.g. "vda"; "" when unknown */

static disk_counters disk_read(void)
{
    disk_counters d = {0};
    if (!g_disk_name[0])
        return d;
    FILE *f = fopen("/proc/diskstats", "r");
    if (!f)
        return d;
    char line[512], name[64];
    while (fgets(line, sizeof line, f)) {
        unsigned long long v[17] = {0};
        int n = sscanf(line,
                       " %*u %*u %63s %llu %llu %llu %llu %llu %llu %llu "
                       "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu",
                       name, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
                       &v[7], &v[8], &v[9], &v[10], &v[11], &v[12], &v[13],
                       &v[14], &v[15], &v[16]);
        if (n < 11 || strcmp(name, g_disk_name) != 0)
            continue;
        /* fields after the name: reads, merged, sectors, ms, writes,
         * merged, sectors, ms, in flight, ms, weighted ms, discards x4,
         * flushes, ms flushing */
        d.writes = v[4];
        d.sectors_written = v[6];
        d.flushes = n >= 17 ? v[15] : 0;
        d.ok = 1;
        break;
    }
    fclose(f);
    return d;
}

/* Busy CPU seconds of the whole machine (every process and kernel thread),
 * from the first line of /proc/stat; -1 if unreadable. */
static double machine_busy_s(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    unsigned long long v[8] = {0};
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
                   &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n < 4)
        return -1;
    /* user nice system idle iowait irq softirq steal: all but idle and
     * iowait are busy */
    unsigned long long busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    return (double)busy / (double)sysconf(_SC_CLK_TCK);
}

static void loadavg(char *buf, size_t size)
{
    FILE *f = fopen("/proc/loadavg", "r");
    buf[0] = 0;
    if (f) {
        if (fgets(buf, (int)size, f))
            buf[strcspn(buf, "\n")] = 0;
        fclose(f);
    }
}

/* The bench's own temp dir; PATH_MAX - 128 leaves room for store names.
 * Removed on exit, also by die(), unless --keep. */
static char g_root[PATH_MAX - 128];
static int g_keep;
static void rm_rf(const char *path);
/* --json and --md files, opened early; die() removes them half-written. */
static const char *g_outputs[2];

static void die(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, PROG ": ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (g_root[0] && !g_keep)
        rm_rf(g_root);
    for (int i = 0; i < 2; i++)
        if (g_outputs[i])
            unlink(g_outputs[i]);
    exit(2);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        die("out of memory");
    return p;
}

/* ------------------------------------------------------------------ */
/* Samples and percentiles                                             */
/* ------------------------------------------------------------------ */

typedef struct samples {
    uint64_t *v; /* nanoseconds */
    size_t n, cap;
} samples;

static void samples_push(samples *s, uint64_t ns)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        uint64_t *v = realloc(s->v, cap * sizeof *v);
        if (!v)
            die("out of memory recording latency samples");
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = ns;
}

static void samples_append(samples *dst, const samples *src)
{
    for (size_t i = 0; i < src->n; i++)
        samples_push(dst, src->v[i]);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Latencies in milliseconds; n == 0 means "no samples". */
typedef struct lat_summary {
    size_t n;
    double min, p50, p90, p95, p99, max;
} lat_summary;

/* Nearest-rank percentile of sorted v[0..n). */
static double pct_ms(const uint64_t *v, size_t n, double p)
{
    size_t rank = (size_t)ceil(p / 100.0 * (double)n);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return (double)v[rank - 1] / 1e6;
}

static lat_summary summarize(samples *s)
{
    lat_summary l = {0};
    if (s->n == 0)
        return l;
    qsort(s->v, s->n, sizeof s->v[0], cmp_u64);
    l.n = s->n;
    l.min = (double)s->v[0] / 1e6;
    l.p50 = pct_ms(s->v, s->n, 50);
    l.p90 = pct_ms(s->v, s->n, 90);
    l.p95 = pct_ms(s->v, s->n, 95);
    l.p99 = pct_ms(s->v, s->n, 99);
    l.max = (double)s->v[s->n - 1] / 1e6;
    return l;
}

/* ------------------------------------------------------------------ */
/* Options                                                             */
/* ------------------------------------------------------------------ */

typedef struct options {
    const char *dir; /* parent of the bench's temp dir */
    const char *json_path, *md_path, *label;
    int quick, keep;
    unsigned phases; /* P_* */
    double seconds, warmup;
    int threads[MAX_LEVELS];
    int nthreads;
    int batch_threads[MAX_LEVELS];
    int nbatch_threads;
    long reads;
    long all_events;
    long fsync_samples;
} options;

static void usage(FILE *f)
{
    fprintf(f,
"usage: " PROG " [options]\n"
"\n"
"Micro-benchmark of the embedded evstore engine: fdatasync floor, durable\n"
"appends (1/8/64/256 threads), 100-event batches, 1000-event stream reads,\n"
"$all reads, and the project's goals with verdicts. Markdown to stdout.\n"
"\n"
"  --dir DIR           where the temporary stores go (default: the current\n"
"                      directory); a fresh evs-bench-XXXXXX dir is made in it\n"
"  --quick             short run (~15 s): 1.5 s per level, fewer reads and\n"
"                      events\n"
"  --json FILE         write every figure as JSON to FILE\n"
"  --md FILE           write the Markdown report to FILE as well\n"
"  --seconds S         measured seconds per append level (default 5,\n"
"                      quick 1.5)\n"
"  --warmup S          warm-up seconds per level, not counted (default 0.5,\n"
"                      quick 0.3)\n"
"  --threads LIST      append concurrency levels (default 1,8,64,256)\n"
"  --batch-threads L   100-event batch concurrency levels (default 1,2)\n"
"  --reads N           measured 1000-event stream reads (default 1000,\n"
"                      quick 200)\n"
"  --all-events N      events in the $all store (default 200000, quick 20000)\n"
"  --fsync-samples N   fdatasync samples (default 2000)\n"
"  --only LIST         run only these phases: fsync,append,batch,read,all\n"
"                      (goals of the others show \"not run\")\n"
"  --label TEXT        free text recorded in the report (e.g. the commit)\n"
"  --keep              keep the stores instead of deleting them\n"
"  --help              this text\n");
}

static long parse_long(const char *flag, const char *s, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        die("%s: expected an integer in %ld..%ld, got '%s'", flag, min, max,
            s);
    return v;
}

static double parse_double(const char *flag, const char *s, double min,
                           double max, int min_inclusive)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v > max ||
        (min_inclusive ? v < min : v <= min))
        die("%s: expected a number %s %g and <= %g, got '%s'", flag,
            min_inclusive ? ">=" : ">", min, max, s);
    return v;
}

static int parse_list(const char *flag, const char *s, int *out)
{
    int n = 0;
    const char *p = s;
    char buf[32];
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0 || len >= sizeof buf || n == MAX_LEVELS)
            die("%s: expected a comma-separated list of at most %d "
                "positive integers, got '%s'", flag, MAX_LEVELS, s);
        memcpy(buf, p, len);
        buf[len] = 0;
        out[n++] = (int)parse_long(flag, buf, 1, 4096);
        p += len;
        if (*p == ',') {
            p++;
            if (!*p)
                die("%s: trailing comma in '%s'", flag, s);
        }
    }
    if (n == 0)
        die("%s: empty list", flag);
    return n;
}

static unsigned parse_phases(const char *s)
{
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {{"fsync", P_FSYNC}, {"append", P_APPEND},
                 {"batch", P_BATCH}, {"read", P_READ}, {"all", P_ALL}};
    unsigned phases = 0;
    const char *p = s;
    while (*p) {
        size_t len = strcspn(p, ",");
        size_t i;
        for (i = 0; i < sizeof names / sizeof names[0]; i++)
            if (strlen(names[i].name) == len &&
                strncmp(p, names[i].name, len) == 0)
                break;
        if (i == sizeof names / sizeof names[0])
            die("--only: unknown phase in '%s' (phases: fsync, append, "
                "batch, read, all)", s);
        phases |= names[i].bit;
        p += len;
        if (*p == ',' && !*++p)
            die("--only: trailing comma in '%s'", s);
    }
    if (!phases)
        die("--only: empty list");
    return phases;
}

static void parse_args(options *o, int argc, char **argv)
{
    double seconds = -1, warmup = -1;
    long reads = -1, all_events = -1;
    const char *threads = NULL, *batch_threads = NULL;
    memset(o, 0, sizeof *o);
    o->fsync_samples = 2000;
    o->phases = P_EVERY;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        char name[64];
        const char *eq = strchr(a, '=');
        if (strncmp(a, "--", 2) != 0)
            die("unexpected argument '%s' (see --help)", a);
        if (eq) {
            size_t len = (size_t)(eq - a);
            if (len >= sizeof name)
                die("unknown option '%s' (see --help)", a);
            memcpy(name, a, len);
            name[len] = 0;
            val = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", a);
        }
#define FLAG(s) (strcmp(name, s) == 0)
#define NEED_VAL()                                                           \
    do {                                                                     \
        if (!val) {                                                          \
            if (i + 1 >= argc)                                               \
                die("%s needs a value (see --help)", name);                  \
            val = argv[++i];                                                 \
        }                                                                    \
    } while (0)
#define NO_VAL()                                                             \
    do {                                                                     \
        if (val)                                                             \
            die("%s takes no value", name);                                  \
    } while (0)
        if (FLAG("--help")) {
            usage(stdout);
            exit(0);
        } else if (FLAG("--quick")) {
            NO_VAL();
            o->quick = 1;
        } else if (FLAG("--keep")) {
            NO_VAL();
            o->keep = 1;
        } else if (FLAG("--dir")) {
            NEED_VAL();
            if (!*val)
                die("--dir: empty path");
            o->dir = val;
        } else if (FLAG("--json")) {
            NEED_VAL();
            if (!*val)
                die("--json: empty path");
            o->json_path = val;
        } else if (FLAG("--md")) {
            NEED_VAL();
            if (!*val)
                die("--md: empty path");
            o->md_path = val;
        } else if (FLAG("--only")) {
            NEED_VAL();
            o->phases = parse_phases(val);
        } else if (FLAG("--label")) {
            NEED_VAL();
            o->label = val;
        } else if (FLAG("--seconds")) {
            NEED_VAL();
            seconds = parse_double(name, val, 0, 3600, 0);
        } else if (FLAG("--warmup")) {
            NEED_VAL();
            warmup = parse_double(name, val, 0, 600, 1);
        } else if (FLAG("--threads")) {
            NEED_VAL();
            threads = val;
        } else if (FLAG("--batch-threads")) {
            NEED_VAL();
            batch_threads = val;
        } else if (FLAG("--reads")) {
            NEED_VAL();
            reads = parse_long(name, val, 1, 10000000);
        } else if (FLAG("--all-events")) {
            NEED_VAL();
            all_events = parse_long(name, val, 1, 100000000);
        } else if (FLAG("--fsync-samples")) {
            NEED_VAL();
            o->fsync_samples = parse_long(name, val, 1, 10000000);
        } else {
            die("unknown option '%s' (see --help)", name);
        }
#undef FLAG
#undef NEED_VAL
#undef NO_VAL
    }
    o->seconds = seconds > 0 ? seconds : (o->quick ? 1.5 : 5.0);
    o->warmup = warmup >= 0 ? warmup : (o->quick ? 0.3 : 0.5);
    o->reads = reads > 0 ? reads : (o->quick ? 200 : 1000);
    o->all_events = all_events > 0 ? all_events : (o->quick ? 20000 : 200000);
    o->nthreads = parse_list("--threads", threads ? threads : "1,8,64,256",
                             o->threads);
    o->nbatch_threads = parse_list(
        "--batch-threads", batch_threads ? batch_threads : "1,2",
        o->batch_threads);
}

/* ------------------------------------------------------------------ */
/* Machine description                                                 */
/* ------------------------------------------------------------------ */

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

static void trim_nl(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = 0;
}

static void describe_disk(machine *m)
{
    /* /dev/vda1 -> vda1; rotational flag of the device or its parent. */
    const char *base = strrchr(m->fs_source, '/');
    base = base ? base + 1 : m->fs_source;
    snprintf(m->disk, sizeof m->disk, "%s", m->fs_source);
    if (strncmp(m->fs_source, "/dev/", 5) != 0)
        return;
    if (strlen(base) < sizeof g_disk_name)
        memcpy(g_disk_name, base, strlen(base) + 1);
    char path[PATH_MAX];
    const char *fmts[] = {"/sys/class/block/%s/queue/rotational",
                          "/sys/class/block/%s/../queue/rotational"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, fmts[i], base);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        int rot = -1;
        if (fscanf(f, "%d", &rot) != 1)
            rot = -1;
        fclose(f);
        if (rot >= 0) {
            snprintf(m->disk, sizeof m->disk, "%s (%squeue/rotational=%d)",
                     base, strncmp(base, "vd", 2) == 0 ? "virtio, " : "",
                     rot);
            return;
        }
    }
}

/* Longest mount point in /proc/self/mountinfo that contains dir. */
static void describe_fs(machine *m, const char *dir)
{
    char real[PATH_MAX];
    if (!realpath(dir, real))
        snprintf(real, sizeof real, "%s", dir);
    FILE *f = fopen("/proc/self/mountinfo", "r");
    snprintf(m->fs_type, sizeof m->fs_type, "unknown");
    if (!f)
        return;
    char line[4096];
    size_t best = 0;
    while (fgets(line, sizeof line, f)) {
        char mnt[PATH_MAX], opts[256], type[64], src[256];
        /* id parent maj:min root mountpoint options [optional...] - type
         * source superopts */
        if (sscanf(line, "%*s %*s %*s %*s %4095s %255s", mnt, opts) != 2)
            continue;
        char *dash = strstr(line, " - ");
        if (!dash || sscanf(dash + 3, "%63s %255s", type, src) != 2)
            continue;
        size_t len = strlen(mnt);
        int inside = strcmp(mnt, "/") == 0 ||
                     (strncmp(real, mnt, len) == 0 &&
                      (real[len] == '/' || real[len] == 0));
        if (inside && len >= best) {
            best = len;
            snprintf(m->fs_mount, sizeof m->fs_mount, "%s", mnt);
            snprintf(m->fs_opts, sizeof m->fs_opts, "%s", opts);
            snprintf(m->fs_type, sizeof m->fs_type, "%s", type);
            snprintf(m->fs_source, sizeof m->fs_source, "%s", src);
        }
    }
    fclose(f);
    describe_disk(m);
}

static void describe_machine(machine *m, const char *dir)
{
    memset(m, 0, sizeof *m);
    char line[512];
    FILE *f = fopen("/proc/cpuinfo", "r");
    snprintf(m->cpu, sizeof m->cpu, "unknown");
    if (f) {
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, "model name", 10) == 0) {
                char *c = strchr(line, ':');
                if (c) {
                    trim_nl(c);
                    snprintf(m->cpu, sizeof m->cpu, "%s", c + 2);
                }
                break;
            }
        }
        fclose(f);
    }
    m->cores = sysconf(_SC_NPROCESSORS_ONLN);
    f = fopen("/proc/meminfo", "r");
    if (f) {
        unsigned long kb;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemTotal: %lu kB", &kb) == 1)
                m->ram_gib = (double)kb / (1024.0 * 1024.0);
        fclose(f);
    }
    struct utsname u;
    if (uname(&u) == 0)
        snprintf(m->kernel, sizeof m->kernel, "%s %s %s", u.sysname,
                 u.release, u.machine);
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(m->date, sizeof m->date, "%Y-%m-%dT%H:%M:%SZ", &tm);
#ifdef __OPTIMIZE__
    snprintf(m->build, sizeof m->build, "optimized (%s)", "gcc " __VERSION__);
#else
    snprintf(m->build, sizeof m->build, "NOT optimized (%s)",
             "gcc " __VERSION__);
#endif
    describe_fs(m, dir);
}

/* ------------------------------------------------------------------ */
/* Store directories                                                   */
/* ------------------------------------------------------------------ */


static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    if (remove(path) != 0)
        fprintf(stderr, PROG ": cannot remove %s: %s\n", path,
                strerror(errno));
    return 0;
}

static void rm_rf(const char *path)
{
    nftw(path, rm_entry, 32, FTW_DEPTH | FTW_PHYS);
}

static void make_root(const options *o)
{
    const char *parent = o->dir ? o->dir : ".";
    struct stat st;
    if (stat(parent, &st) != 0) {
        if (errno != ENOENT || mkdir(parent, 0755) != 0)
            die("--dir %s: cannot use it: %s", parent, strerror(errno));
    } else if (!S_ISDIR(st.st_mode)) {
        die("--dir %s: not a directory", parent);
    }
    int n = snprintf(g_root, sizeof g_root, "%s/evs-bench-XXXXXX", parent);
    if (n < 0 || (size_t)n >= sizeof g_root)
        die("--dir %s: path too long", parent);
    if (!mkdtemp(g_root))
        die("cannot create a temporary directory in %s: %s", parent,
            strerror(errno));
}

static void store_path(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", g_root, name);
}

static evs_db *open_fresh(const char *name)
{
    char path[PATH_MAX];
    store_path(path, sizeof path, name);
    evs_open_options opts = EVS_OPEN_OPTIONS_INIT;
    evs_db *db = NULL;
    int rc = evs_open(&db, path, &opts);
    if (rc < 0)
        die("evs_open(%s): %s: %s", path, evs_strerror(rc), evs_last_error());
    return db;
}

static void close_store(evs_db *db, const char *name, const options *o)
{
    int rc = evs_close(db);
    if (rc < 0)
        fprintf(stderr, PROG ": evs_close(%s): %s: %s\n", name,
                evs_strerror(rc), evs_last_error());
    if (!o->keep) {
        char path[PATH_MAX];
        store_path(path, sizeof path, name);
        rm_rf(path);
    }
}

/* ------------------------------------------------------------------ */
/* Payloads                                                            */
/* ------------------------------------------------------------------ */

/* Exactly len bytes of valid JSON (len >= 128): an account-like event
 * padded with a note field. */
static void make_payload(char *buf, size_t len, const char *stream,
                         uint64_t seq)
{
    int n = snprintf(buf, len,
                     "{\"account\":\"%.60s\",\"amount\":%llu,"
                     "\"currency\":\"EUR\",\"seq\":%llu,\"note\":\"",
                     stream, (unsigned long long)(seq * 7919 % 100000),
                     (unsigned long long)seq);
    size_t i = (size_t)n;
    while (i < len - 2)
        buf[i++] = 'x';
    buf[len - 2] = '"';
    buf[len - 1] = '}';
}

static void event_init(evs_event_data *e, const char *type, const char *data,
                       size_t len)
{
    memset(e, 0, sizeof *e);
    e->type = type;
    e->data = data;
    e->data_len = len;
    e->content_type = EVS_CONTENT_JSON;
}

/* ------------------------------------------------------------------ */
/* Operation accounting                                                */
/* ------------------------------------------------------------------ */

typedef struct op_counts {
    uint64_t attempted, committed, conflicts, errors;
} op_counts;

static void counts_add(op_counts *a, const op_counts *b)
{
    a->attempted += b->attempted;
    a->committed += b->committed;
    a->conflicts += b->conflicts;
    a->errors += b->errors;
}

static int counts_ok(const op_counts *c)
{
    return c->attempted == c->committed + c->conflicts + c->errors;
}

static int g_failures; /* errors or broken consistency checks: exit 3 */

/* ------------------------------------------------------------------ */
/* 1. fdatasync floor                                                  */
/* ------------------------------------------------------------------ */

typedef struct fsync_result {
    size_t write_size;
    long samples, warmup;
    lat_summary lat;
    double cpu_us; /* process CPU (user+sys) per measured sample */
} fsync_result;

static fsync_result bench_fsync(size_t wsize, long nsamples)
{
    fsync_result r = {0};
    r.write_size = wsize;
    r.samples = nsamples;
    r.warmup = nsamples / 20 > 10 ? nsamples / 20 : 10;
    long total = nsamples + r.warmup;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/fsync-probe", g_root);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        die("cannot create %s: %s", path, strerror(errno));

    /* Preallocate with real zeros, as the log's segments are: fallocate
     * alone leaves unwritten extents whose conversion costs a journal
     * commit on every fdatasync. */
    size_t filesize = (size_t)total * wsize;
    char *zero = xcalloc(1, 1u << 20);
    for (size_t off = 0; off < filesize; off += 1u << 20) {
        size_t n = filesize - off < (1u << 20) ? filesize - off : 1u << 20;
        if (pwrite(fd, zero, n, (off_t)off) != (ssize_t)n)
            die("cannot preallocate %s: %s", path, strerror(errno));
    }
    free(zero);
    if (fsync(fd) != 0)
        die("fsync(%s): %s", path, strerror(errno));

    char *buf = xcalloc(1, wsize);
    memset(buf, 'e', wsize);
    samples s = {0};
    double cpu0 = 0;
    for (long i = 0; i < total; i++) {
        if (i == r.warmup)
            cpu0 = cpu_seconds(0) + cpu_seconds(1);
        uint64_t t0 = now_ns();
        if (pwrite(fd, buf, wsize, (off_t)((size_t)i * wsize)) !=
                (ssize_t)wsize ||
            fdatasync(fd) != 0)
            die("write+fdatasync on %s: %s", path, strerror(errno));
        uint64_t t1 = now_ns();
        if (i >= r.warmup)
            samples_push(&s, t1 - t0);
    }
    r.cpu_us = (cpu_seconds(0) + cpu_seconds(1) - cpu0) * 1e6 /
               (double)nsamples;
    close(fd);
    unlink(path);
    free(buf);
    r.lat = summarize(&s);
    free(s.v);
    return r;
}

/* ------------------------------------------------------------------ */
/* 2 and 3. Concurrent appends                                         */
/* ------------------------------------------------------------------ */

enum { PH_WARMUP = 0, PH_MEASURE = 1, PH_STOP = 2 };

typedef struct append_result {
    int threads;
    int events_per_append;
    double warmup_s, window_s;
    op_counts warm;   /* started during the warm-up: excluded */
    op_counts c;      /* measured */
    double ops_per_s; /* committed appends per second */
    double events_per_s;
    lat_summary lat;
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
} append_result;

typedef struct level_ctx {
    evs_db *db;
    int events_per_append;
    int nstreams;
    _Atomic int phase;
    pthread_barrier_t start;
} level_ctx;

typedef struct worker {
    level_ctx *ctx;
    int id;
    pthread_t th;
    samples s;
    op_counts warm, c;
    uint64_t last_done;
    char error[256];
} worker;

static void *append_worker(void *arg)
{
    worker *w = arg;
    level_ctx *ctx = w->ctx;
    int nev = ctx->events_per_append;
    int nstreams = ctx->nstreams;
    char (*names)[48] = xcalloc((size_t)nstreams, sizeof *names);
    int64_t *versions = xcalloc((size_t)nstreams, sizeof *versions);
    char *payloads = xcalloc((size_t)nev, PAYLOAD_LEN);
    evs_event_data *events = xcalloc((size_t)nev, sizeof *events);

    for (int k = 0; k < nstreams; k++) {
        snprintf(names[k], sizeof names[k], "bench-t%d-%d", w->id, k);
        versions[k] = EVS_NO_STREAM;
    }
    for (int e = 0; e < nev; e++) {
        make_payload(payloads + (size_t)e * PAYLOAD_LEN, PAYLOAD_LEN,
                     names[0], (uint64_t)e);
        event_init(&events[e], nev == 1 ? "Deposited" : "LineAdded",
                   payloads + (size_t)e * PAYLOAD_LEN, PAYLOAD_LEN);
    }

    pthread_barrier_wait(&ctx->start);
    uint64_t seq = 0;
    int phase;
    while ((phase = atomic_load(&ctx->phase)) != PH_STOP) {
        int k = (int)(seq % (uint64_t)nstreams);
        if (nev == 1)
            make_payload(payloads, PAYLOAD_LEN, names[k], seq);
        seq++;
        evs_append_result res;
        memset(&res, 0, sizeof res);
        uint64_t t0 = now_ns();
        int rc = evs_append(&res, ctx->db, NULL, names[k], versions[k],
                            events, (size_t)nev);
        uint64_t t1 = now_ns();

        op_counts *c = phase == PH_MEASURE ? &w->c : &w->warm;
        c->attempted++;
        if (rc == 0) {
            c->committed++;
            versions[k] = res.stream_version;
        } else if (rc == EVS_ECONFLICT) {
            /* Cannot happen with one writer per stream: counted, and the
             * report flags it. */
            c->conflicts++;
            versions[k] = res.stream_version;
        } else {
            c->errors++;
            if (!w->error[0])
                snprintf(w->error, sizeof w->error, "%s: %s",
                         evs_strerror(rc), evs_last_error());
            int64_t v;
            if (evs_stream_version(&v, ctx->db, NULL, names[k]) == 0)
                versions[k] = v;
        }
        if (phase == PH_MEASURE) {
            samples_push(&w->s, t1 - t0);
            w->last_done = t1;
        }
    }
    free(events);
    free(payloads);
    free(versions);
    free(names);
    return NULL;
}

static void join_or_die(pthread_t th)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += JOIN_TIMEOUT_S;
    int rc = pthread_timedjoin_np(th, NULL, &deadline);
    if (rc != 0) {
        fprintf(stderr,
                PROG ": an append thread did not return within %d s after "
                     "the end of its level (%s): the library looks hung\n",
                JOIN_TIMEOUT_S, strerror(rc));
        _exit(4);
    }
}

static append_result bench_appends(const options *o, int nthreads, int nev)
{
    append_result r;
    memset(&r, 0, sizeof r);
    r.threads = nthreads;
    r.events_per_append = nev;
    r.warmup_s = o->warmup;

    char name[64];
    snprintf(name, sizeof name, "%s-%dt", nev == 1 ? "append" : "batch",
             nthreads);
    fprintf(stderr, PROG ": %s: %d thread(s), %d event(s) per append, "
                    "%.1f s warm-up + %.1f s\n",
            name, nthreads, nev, o->warmup, o->seconds);

    level_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.db = open_fresh(name);
    ctx.events_per_append = nev;
    ctx.nstreams = nev == 1 ? STREAMS_PER_THREAD : BATCH_STREAMS_PER_THREAD;
    atomic_init(&ctx.phase, PH_WARMUP);
    pthread_barrier_init(&ctx.start, NULL, (unsigned)nthreads + 1);

    worker *ws = xcalloc((size_t)nthreads, sizeof *ws);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 1u << 20);
    for (int t = 0; t < nthreads; t++) {
        ws[t].ctx = &ctx;
        ws[t].id = t;
        int rc = pthread_create(&ws[t].th, &attr, append_worker, &ws[t]);
        if (rc != 0)
            die("pthread_create (thread %d of %d): %s", t, nthreads,
                strerror(rc));
    }
    pthread_attr_destroy(&attr);
    pthread_barrier_wait(&ctx.start);

    sleep_s(o->warmup);
    double u0 = cpu_seconds(0), s0 = cpu_seconds(1);
    double m0 = machine_busy_s();
    uint64_t csw0 = ctx_switches();
    uint64_t sc0 = atomic_load(&g_sync_calls), sn0 = atomic_load(&g_sync_ns);
    disk_counters d0 = disk_read();
    atomic_store(&g_sync_n, 0);
    atomic_store(&g_slow_n, 0);
    atomic_store(&g_sync_rec, 1);
    uint64_t t0 = now_ns();
    atomic_store(&ctx.phase, PH_MEASURE);
    sleep_s(o->seconds);
    atomic_store(&ctx.phase, PH_STOP);
    for (int t = 0; t < nthreads; t++)
        join_or_die(ws[t].th);
    atomic_store(&g_sync_rec, 0);
    r.cpu_user = cpu_seconds(0) - u0;
    r.cpu_sys = cpu_seconds(1) - s0;
    r.csw = ctx_switches() - csw0;
    double m1 = machine_busy_s();
    r.other_cpu_s = m0 >= 0 && m1 >= 0 ? m1 - m0 - r.cpu_user - r.cpu_sys : -1;
    if (r.other_cpu_s < 0 && m0 >= 0 && m1 >= 0)
        r.other_cpu_s = 0; /* tick granularity */
    r.syncs = atomic_load(&g_sync_calls) - sc0;
    r.sync_s = (double)(atomic_load(&g_sync_ns) - sn0) / 1e9;
    disk_counters d1 = disk_read();
    if (d0.ok && d1.ok) {
        r.disk.ok = 1;
        r.disk.writes = d1.writes - d0.writes;
        r.disk.sectors_written = d1.sectors_written - d0.sectors_written;
        r.disk.flushes = d1.flushes - d0.flushes;
    }
    uint64_t nsync = atomic_load(&g_sync_n);
    samples ss = {g_sync_v, nsync < SYNC_SAMPLES_MAX ? nsync : SYNC_SAMPLES_MAX,
                  SYNC_SAMPLES_MAX};
    r.sync_lat = summarize(&ss);
    for (size_t i = 0; i < ss.n; i++)
        r.slow_syncs += ss.v[i] > SLOW_SYNC_NS;
    uint64_t nslow = atomic_load(&g_slow_n);
    for (uint64_t i = 0; i < nslow && i < SLOW_SYNCS_MAX; i++) {
        int k;
        for (k = 0; k < r.nslow_by; k++)
            if (strcmp(r.slow_by[k].file, g_slow[i].file) == 0)
                break;
        if (k == r.nslow_by) {
            if (k == 8)
                k = 7; /* the last slot collects the rest */
            else
                r.nslow_by++;
            snprintf(r.slow_by[k].file, sizeof r.slow_by[k].file, "%s",
                     k == 7 && r.slow_by[7].n ? "(others)" : g_slow[i].file);
        }
        r.slow_by[k].n++;
        r.slow_by[k].ms += (double)g_slow[i].ns / 1e6;
    }

    /* The window ends when the last measured append returned. */
    uint64_t t_end = t0;
    samples all = {0};
    for (int t = 0; t < nthreads; t++) {
        if (ws[t].last_done > t_end)
            t_end = ws[t].last_done;
        counts_add(&r.c, &ws[t].c);
        counts_add(&r.warm, &ws[t].warm);
        samples_append(&all, &ws[t].s);
        free(ws[t].s.v);
        if (ws[t].error[0] && !r.error[0])
            snprintf(r.error, sizeof r.error, "%s", ws[t].error);
    }
    free(ws);
    pthread_barrier_destroy(&ctx.start);
    r.window_s = (double)(t_end - t0) / 1e9;
    if (r.window_s <= 0)
        r.window_s = o->seconds;
    r.ops_per_s = (double)r.c.committed / r.window_s;
    r.events_per_s = r.ops_per_s * nev;
    r.lat = summarize(&all);
    free(all.v);

    evs_stats st;
    int rc = evs_stats_get(&st, ctx.db);
    uint64_t expect = (r.c.committed + r.warm.committed) * (uint64_t)nev;
    if (rc == 0) {
        r.store_events = st.events;
        r.segments = st.segments;
        r.store_check = st.events == expect;
    } else {
        fprintf(stderr, PROG ": evs_stats_get: %s: %s\n", evs_strerror(rc),
                evs_last_error());
    }
    if (!r.store_check) {
        fprintf(stderr,
                PROG ": %s: the store holds %llu events but %llu were "
                     "acknowledged\n",
                name, (unsigned long long)r.store_events,
                (unsigned long long)expect);
        g_failures++;
    }
    if (r.c.errors || r.c.conflicts || r.warm.errors || r.warm.conflicts ||
        !counts_ok(&r.c) || !counts_ok(&r.warm))
        g_failures++;
    close_store(ctx.db, name, o);
    fprintf(stderr,
            PROG ": %s: %.0f appends/s (%.0f events/s), p50 %.3f ms, "
                 "p99 %.3f ms; attempted %llu committed %llu conflicts %llu "
                 "errors %llu\n",
            name, r.ops_per_s, r.events_per_s, r.lat.p50, r.lat.p99,
            (unsigned long long)r.c.attempted,
            (unsigned long long)r.c.committed,
            (unsigned long long)r.c.conflicts, (unsigned long long)r.c.errors);
    return r;
}

/* ------------------------------------------------------------------ */
/* 4. Reading a 1000-event stream                                      */
/* ------------------------------------------------------------------ */

typedef struct read_result {
    const char *layout; /* "contiguous" / "interleaved" */
    const char *what;
    long warmup;
    op_counts c; /* committed = read complete and correct */
    lat_summary lat;
    char error[256];
} read_result;

static void append_or_die(evs_db *db, const char *tenant, const char *stream,
                          const evs_event_data *ev, size_t n)
{
    int rc = evs_append(NULL, db, tenant, stream, EVS_ANY, ev, n);
    if (rc < 0)
        die("prefill append to %s: %s: %s", stream, evs_strerror(rc),
            evs_last_error());
}

static volatile uint64_t g_sink; /* keeps the data-touching loop alive */

/* One full read of a 1000-event stream; 0 or a message in err. */
static int read_stream_once(evs_db *db, const char *stream, char *err,
                            size_t errsize)
{
    evs_iter *it = NULL;
    int rc = evs_read_stream(&it, db, NULL, stream, 0, EVS_FORWARD, 0);
    if (rc < 0) {
        snprintf(err, errsize, "evs_read_stream: %s: %s", evs_strerror(rc),
                 evs_last_error());
        return rc;
    }
    const evs_event *ev;
    int64_t n = 0;
    uint64_t sum = 0;
    while ((rc = evs_iter_next(&ev, it)) == 0) {
        if (ev->stream_version != n) {
            snprintf(err, errsize, "event %lld has version %lld",
                     (long long)n, (long long)ev->stream_version);
            evs_iter_free(it);
            return -1;
        }
        const unsigned char *d = ev->data;
        for (size_t i = 0; i < ev->data_len; i++)
            sum += d[i];
        n++;
    }
    evs_iter_free(it);
    g_sink += sum;
    if (rc != EVS_ITEROVER) {
        snprintf(err, errsize, "evs_iter_next: %s: %s", evs_strerror(rc),
                 evs_last_error());
        return rc;
    }
    if (n != READ_STREAM_EVENTS) {
        snprintf(err, errsize, "read %lld events, expected %d", (long long)n,
                 READ_STREAM_EVENTS);
        return -1;
    }
    return 0;
}

static read_result bench_read_one(evs_db *db, const char *stream,
                                  const char *layout, long nreads)
{
    read_result r;
    memset(&r, 0, sizeof r);
    r.layout = layout;
    r.what = stream;
    r.warmup = nreads / 20 > 10 ? nreads / 20 : 10;
    samples s = {0};
    char err[256];
    for (long i = 0; i < r.warmup + nreads; i++) {
        err[0] = 0;
        uint64_t t0 = now_ns();
        int rc = read_stream_once(db, stream, err, sizeof err);
        uint64_t t1 = now_ns();
        if (i < r.warmup)
            continue;
        r.c.attempted++;
        if (rc == 0) {
            r.c.committed++;
            samples_push(&s, t1 - t0);
        } else {
            r.c.errors++;
            if (!r.error[0])
                snprintf(r.error, sizeof r.error, "%s", err);
        }
    }
    r.lat = summarize(&s);
    free(s.v);
    if (r.c.errors)
        g_failures++;
    fprintf(stderr, PROG ": read %s stream: p50 %.3f ms p95 %.3f ms; "
                    "%llu ok, %llu errors\n",
            layout, r.lat.p50, r.lat.p95, (unsigned long long)r.c.committed,
            (unsigned long long)r.c.errors);
    return r;
}

static void bench_reads(const options *o, read_result out[2])
{
    fprintf(stderr, PROG ": stream reads: prefilling\n");
    evs_db *db = open_fresh("read");
    char *payloads = xcalloc(BATCH_EVENTS, PAYLOAD_LEN);
    evs_event_data ev[BATCH_EVENTS];
    for (int e = 0; e < BATCH_EVENTS; e++) {
        make_payload(payloads + (size_t)e * PAYLOAD_LEN, PAYLOAD_LEN,
                     "order-1", (uint64_t)e);
        event_init(&ev[e], "ItemAdded", payloads + (size_t)e * PAYLOAD_LEN,
                   PAYLOAD_LEN);
    }
    /* contiguous: ten appends of 100 events, back to back. */
    for (int b = 0; b < READ_STREAM_EVENTS / BATCH_EVENTS; b++)
        append_or_die(db, NULL, "order-contiguous", ev, BATCH_EVENTS);
    /* interleaved: 10 events of the stream, then 10 events to each of 9
     * other streams, so the stream spans ten times its size in the log. */
    char other[48];
    for (int round = 0; round < READ_STREAM_EVENTS / 10; round++) {
        append_or_die(db, NULL, "order-interleaved", ev, 10);
        for (int k = 0; k < 9; k++) {
            snprintf(other, sizeof other, "order-other%d", k);
            append_or_die(db, NULL, other, ev + 10, 10);
        }
    }
    free(payloads);
    out[0] = bench_read_one(db, "order-contiguous", "contiguous", o->reads);
    out[1] = bench_read_one(db, "order-interleaved", "interleaved", o->reads);
    close_store(db, "read", o);
}

/* ------------------------------------------------------------------ */
/* 5. Reading $all                                                     */
/* ------------------------------------------------------------------ */

static const char *const g_tenants[ALL_TENANTS] = {"", "tenant-a",
                                                   "tenant-b", "tenant-c"};

typedef struct all_result {
    const char *scope; /* "all tenants" or a tenant name */
    uint64_t expected; /* events the scope holds */
    op_counts c;       /* per pass: committed = correct full pass */
    double seconds[ALL_PASSES];
    double median_s;
    double events_per_s; /* at the median pass */
    char error[256];
} all_result;

typedef struct all_bench {
    uint64_t events;
    double prefill_s;
    all_result every;               /* tenant NULL */
    all_result tenant[ALL_TENANTS]; /* one per tenant */
    all_result tenants_total;       /* the per-tenant reads added up */
} all_bench;

/* One pass; returns events read or -1 with err set. */
static int64_t read_all_once(evs_db *db, const char *tenant, char *err,
                             size_t errsize)
{
    evs_iter *it = NULL;
    int rc = evs_read_all(&it, db, tenant, 0, 0);
    if (rc < 0) {
        snprintf(err, errsize, "evs_read_all: %s: %s", evs_strerror(rc),
                 evs_last_error());
        return -1;
    }
    const evs_event *ev;
    int64_t n = 0;
    uint64_t last = 0, sum = 0;
    while ((rc = evs_iter_next(&ev, it)) == 0) {
        if (ev->position <= last) {
            snprintf(err, errsize, "position %llu after %llu",
                     (unsigned long long)ev->position,
                     (unsigned long long)last);
            evs_iter_free(it);
            return -1;
        }
        if (tenant && strcmp(ev->tenant, tenant) != 0) {
            snprintf(err, errsize, "tenant '%s' read event of tenant '%s'",
                     tenant, ev->tenant);
            evs_iter_free(it);
            return -1;
        }
        last = ev->position;
        if (ev->data_len)
            sum += ((const unsigned char *)ev->data)[ev->data_len - 1];
        n++;
    }
    evs_iter_free(it);
    g_sink += sum;
    if (rc != EVS_ITEROVER) {
        snprintf(err, errsize, "evs_iter_next: %s: %s", evs_strerror(rc),
                 evs_last_error());
        return -1;
    }
    return n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void all_finish(all_result *r)
{
    double sorted[ALL_PASSES];
    memcpy(sorted, r->seconds, sizeof sorted);
    qsort(sorted, ALL_PASSES, sizeof sorted[0], cmp_double);
    r->median_s = sorted[ALL_PASSES / 2];
    r->events_per_s =
        r->median_s > 0 ? (double)r->expected / r->median_s : 0;
    if (r->c.errors)
        g_failures++;
}

static void all_pass(evs_db *db, all_result *r, const char *tenant,
                     int measured, int pass)
{
    char err[256] = "";
    uint64_t t0 = now_ns();
    int64_t n = read_all_once(db, tenant, err, sizeof err);
    double s = (double)(now_ns() - t0) / 1e9;
    if (!measured)
        return;
    r->c.attempted++;
    r->seconds[pass] = s;
    if (n >= 0 && (uint64_t)n == r->expected) {
        r->c.committed++;
    } else {
        r->c.errors++;
        if (!r->error[0]) {
            if (n >= 0)
                snprintf(err, sizeof err, "read %lld events, expected %llu",
                         (long long)n, (unsigned long long)r->expected);
            snprintf(r->error, sizeof r->error, "%s", err);
        }
    }
}

static void bench_all(const options *o, all_bench *b)
{
    memset(b, 0, sizeof *b);
    b->events = (uint64_t)o->all_events;
    fprintf(stderr, PROG ": $all: prefilling %llu events\n",
            (unsigned long long)b->events);
    evs_db *db = open_fresh("all");
    char *payloads = xcalloc(BATCH_EVENTS, PAYLOAD_LEN);
    evs_event_data ev[BATCH_EVENTS];
    for (int e = 0; e < BATCH_EVENTS; e++) {
        make_payload(payloads + (size_t)e * PAYLOAD_LEN, PAYLOAD_LEN,
                     "acct-1", (uint64_t)e);
        event_init(&ev[e], "Deposited", payloads + (size_t)e * PAYLOAD_LEN,
                   PAYLOAD_LEN);
    }
    /* Batches of up to 100 events, tenants in turn, 50 streams each. */
    uint64_t per_tenant[ALL_TENANTS] = {0};
    uint64_t done = 0, batch = 0;
    uint64_t t0 = now_ns();
    char stream[48];
    while (done < b->events) {
        size_t n = b->events - done < BATCH_EVENTS ? b->events - done
                                                   : BATCH_EVENTS;
        int t = (int)(batch % ALL_TENANTS);
        snprintf(stream, sizeof stream, "acct-%llu",
                 (unsigned long long)(batch / ALL_TENANTS %
                                      ALL_STREAMS_PER_TENANT));
        append_or_die(db, g_tenants[t], stream, ev, n);
        per_tenant[t] += n;
        done += n;
        batch++;
    }
    b->prefill_s = (double)(now_ns() - t0) / 1e9;
    free(payloads);

    b->every.scope = "all tenants (tenant NULL)";
    b->every.expected = b->events;
    for (int t = 0; t < ALL_TENANTS; t++) {
        b->tenant[t].scope = g_tenants[t][0] ? g_tenants[t] : "default (\"\")";
        b->tenant[t].expected = per_tenant[t];
    }
    b->tenants_total.scope = "each tenant in turn (4 reads)";
    b->tenants_total.expected = b->events;

    fprintf(stderr, PROG ": $all: reading (1 warm-up pass + %d)\n",
            ALL_PASSES);
    for (int pass = -1; pass < ALL_PASSES; pass++) {
        int measured = pass >= 0;
        all_pass(db, &b->every, NULL, measured, measured ? pass : 0);
        double sum = 0;
        int ok = 1;
        for (int t = 0; t < ALL_TENANTS; t++) {
            all_pass(db, &b->tenant[t], g_tenants[t], measured,
                     measured ? pass : 0);
            if (measured) {
                sum += b->tenant[t].seconds[pass];
                ok &= b->tenant[t].c.errors == 0;
            }
        }
        if (measured) {
            b->tenants_total.c.attempted++;
            b->tenants_total.seconds[pass] = sum;
            if (ok)
                b->tenants_total.c.committed++;
            else
                b->tenants_total.c.errors++;
        }
    }
    all_finish(&b->every);
    for (int t = 0; t < ALL_TENANTS; t++)
        all_finish(&b->tenant[t]);
    all_finish(&b->tenants_total);
    fprintf(stderr, PROG ": $all: %.0f events/s (every tenant), %.0f "
                    "events/s (per tenant)\n",
            b->every.events_per_s, b->tenants_total.events_per_s);
    close_store(db, "all", o);
}

/* ------------------------------------------------------------------ */
/* 6. Goals                                                            */
/* ------------------------------------------------------------------ */

typedef struct goal {
    char name[96];
    const char *target;
    char measured[160];
    const char *verdict; /* "met", "not met", "not run" */
} goal;

typedef struct report {
    const options *o;
    machine m;
    const char *version;
    char root[PATH_MAX];
    fsync_result fs[2];
    append_result app[MAX_LEVELS];
    int napp;
    append_result batch[MAX_LEVELS];
    int nbatch;
    read_result rd[2];
    all_bench all;
    goal goals[8], seeds[4];
    int ngoals, nseeds;
    double total_s;
    char load_start[64], load_end[64]; /* /proc/loadavg */
} report;

static const append_result *find_level(const append_result *a, int n,
                                       int threads)
{
    for (int i = 0; i < n; i++)
        if (a[i].threads == threads)
            return &a[i];
    return NULL;
}

/* A level whose operations did not all commit cannot meet a goal. */
static int clean(const op_counts *c)
{
    return c->attempted > 0 && c->committed == c->attempted;
}

static const char *verdict(int ok) { return ok ? "met" : "not met"; }

static void counts_str(char *buf, size_t size, const op_counts *c)
{
    snprintf(buf, size, "%llu/%llu/%llu/%llu",
             (unsigned long long)c->attempted,
             (unsigned long long)c->committed,
             (unsigned long long)c->conflicts, (unsigned long long)c->errors);
}

/* Append a goal row named name with its target; fill it in with
 * goal_set or goal_not_run. */
static goal *goal_add(goal *list, int *n, const char *name, const char *target)
{
    goal *g = &list[(*n)++];
    snprintf(g->name, sizeof g->name, "%s", name);
    g->target = target;
    return g;
}

static void goal_not_run(goal *g)
{
    snprintf(g->measured, sizeof g->measured, "-");
    g->verdict = "not run";
}

static void goal_set(goal *g, int ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void goal_set(goal *g, int ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->measured, sizeof g->measured, fmt, ap);
    va_end(ap);
    g->verdict = verdict(ok);
}

static void compute_goals(report *r)
{
    goal *g;
    const append_result *a;
    char name[96];

    g = goal_add(r->goals, &r->ngoals, "durable appends, 1 thread", ">= 8,000 appends/s");
    if ((a = find_level(r->app, r->napp, 1)))
        goal_set(g, clean(&a->c) && a->ops_per_s >= 8000, "%.0f appends/s", a->ops_per_s);
    else
        goal_not_run(g);

    g = goal_add(r->goals, &r->ngoals, "durable appends, 64 threads",
                 ">= 200,000 appends/s and p95 <= 1 ms");
    if ((a = find_level(r->app, r->napp, 64)))
        goal_set(g, clean(&a->c) && a->ops_per_s >= 200000 && a->lat.p95 <= 1.0,
                 "%.0f appends/s, p95 %.3f ms", a->ops_per_s, a->lat.p95);
    else
        goal_not_run(g);

    /* At most 4 batch rows fit beside the 4 other goals. */
    for (int i = 0; i < r->nbatch && i < 4; i++) {
        a = &r->batch[i];
        snprintf(name, sizeof name, "100-event batches, %d thread%s", a->threads,
                 a->threads == 1 ? "" : "s");
        g = goal_add(r->goals, &r->ngoals, name, ">= 1,000,000 events/s");
        goal_set(g, clean(&a->c) && a->events_per_s >= 1e6, "%.0f events/s",
                 a->events_per_s);
    }
    if (r->nbatch == 0)
        goal_not_run(goal_add(r->goals, &r->ngoals, "100-event batches",
                              ">= 1,000,000 events/s"));

    /* Interleaved first: it is the layout a real aggregate has. */
    int ran_reads = (r->o->phases & P_READ) != 0;
    for (int i = 1; i >= 0; i--) {
        const read_result *rd = &r->rd[i];
        snprintf(name, sizeof name, "read a 1000-event stream (%s)",
                 i ? "interleaved" : "contiguous");
        g = goal_add(r->goals, &r->ngoals, name, "p50 <= 0.5 ms (p95 shown)");
        if (ran_reads)
            goal_set(g, clean(&rd->c) && rd->lat.p50 <= 0.5, "p50 %.3f ms, p95 %.3f ms",
                     rd->lat.p50, rd->lat.p95);
        else
            goal_not_run(g);
    }

    /* The seeds' targets, for context. */
    g = goal_add(r->seeds, &r->nseeds, "single append", "< 10 ms (judged on p99, 1 thread)");
    if ((a = find_level(r->app, r->napp, 1)))
        goal_set(g, clean(&a->c) && a->lat.p99 < 10, "p99 %.3f ms", a->lat.p99);
    else
        goal_not_run(g);

    g = goal_add(r->seeds, &r->nseeds, "100-event batch", "< 50 ms (judged on p99, 1 thread)");
    if ((a = find_level(r->batch, r->nbatch, 1)))
        goal_set(g, clean(&a->c) && a->lat.p99 < 50, "p99 %.3f ms", a->lat.p99);
    else
        goal_not_run(g);

    g = goal_add(r->seeds, &r->nseeds, "1000-event aggregate load",
                 "< 20 ms (judged on p99, interleaved stream)");
    if (ran_reads)
        goal_set(g, clean(&r->rd[1].c) && r->rd[1].lat.p99 < 20, "p99 %.3f ms",
                 r->rd[1].lat.p99);
    else
        goal_not_run(g);

    g = goal_add(r->seeds, &r->nseeds, "P95 latency",
                 "< 10 ms (worst append p95 over all levels)");
    double worst = 0;
    int worst_t = 0, ok = r->napp > 0;
    for (int i = 0; i < r->napp; i++) {
        ok &= clean(&r->app[i].c);
        if (r->app[i].lat.p95 >= worst) {
            worst = r->app[i].lat.p95;
            worst_t = r->app[i].threads;
        }
    }
    if (r->napp)
        goal_set(g, ok && worst < 10, "p95 %.3f ms (%d thread%s)", worst, worst_t,
                 worst_t == 1 ? "" : "s");
    else
        goal_not_run(g);
}

/* ------------------------------------------------------------------ */
/* Markdown                                                            */
/* ------------------------------------------------------------------ */

static void md_lat_cells(FILE *f, const lat_summary *l)
{
    fprintf(f, " %.3f | %.3f | %.3f | %.3f | %.3f |", l->p50, l->p90,
            l->p95, l->p99, l->max);
}

/* The results table and the where-the-time-goes table of appends. */
static void md_append_tables(FILE *f, const append_result *a, int n,
                             const machine *m, const char *not_run,
                             int explain)
{
    char cs[96];
    if (n == 0) {
        fprintf(f, "%s", not_run);
        return;
    }
    int batch = a[0].events_per_append > 1;
    fprintf(f, "| threads | %sattempted/committed/conflicts/errors | %s | "
               "p50 | p90 | p95 | p99 | max | warm-up excluded |\n"
               "|---|---|---|---|---|---|---|---|---|\n",
            batch ? "batches " : "", batch ? "events/s" : "appends/s");
    for (int i = 0; i < n; i++) {
        counts_str(cs, sizeof cs, &a[i].c);
        fprintf(f, "| %d | %s | %.0f |", a[i].threads, cs,
                batch ? a[i].events_per_s : a[i].ops_per_s);
        md_lat_cells(f, &a[i].lat);
        fprintf(f, " %llu |\n", (unsigned long long)a[i].warm.attempted);
    }
    if (!explain)
        fprintf(f, "\nWhere the time goes (columns as in section 2):\n\n");
    else
        fprintf(f,
                "\nWhere the time goes, over the same windows. syncs: "
                "fdatasync/fsync calls the process made; events/sync: mean "
                "group-commit size; sync p50/p99/max: duration of those "
                "calls inside the engine (compare section 1); sync busy: "
                "their summed time / window; CPU/event: process CPU time "
                "(user+sys, all threads) per committed event; csw/event: "
                "the process's context switches per committed event; CPU: "
                "process CPU / window (%ld cores = %ld00%%); disk: bytes "
                "the device (%s) wrote per committed event, and its cache "
                "flushes, from /proc/diskstats (the whole device: anything "
                "else writing counts too); slow syncs: syncs over 10 ms; "
                "segments: log segment files in the store at the end of "
                "the level; other CPU: busy CPU of the whole machine "
                "(/proc/stat) minus this process's, i.e. kernel threads "
                "(writeback, journal) and any other program — a high value "
                "means the level shared the machine.\n\n",
                m->cores, m->cores, g_disk_name[0] ? g_disk_name : "unknown");
    fprintf(f, "| threads | syncs | events/sync | sync p50 | sync p99 | "
               "sync max | sync busy | CPU/event | csw/event | CPU | "
               "disk B/event | disk flushes | slow syncs | segments | "
               "other CPU |\n"
               "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
               "\n");
    for (int i = 0; i < n; i++) {
        double events = (double)a[i].c.committed * a[i].events_per_append;
        fprintf(f, "| %d | %llu | %.1f | %.3f | %.3f | %.3f | %.0f%% | "
                   "%.1f µs | %.2f | %.0f%% |",
                a[i].threads, (unsigned long long)a[i].syncs,
                a[i].syncs ? events / (double)a[i].syncs : 0.0,
                a[i].sync_lat.p50, a[i].sync_lat.p99, a[i].sync_lat.max,
                100.0 * a[i].sync_s / a[i].window_s,
                events > 0 ? (a[i].cpu_user + a[i].cpu_sys) * 1e6 / events
                           : 0.0,
                events > 0 ? (double)a[i].csw / events : 0.0,
                100.0 * (a[i].cpu_user + a[i].cpu_sys) / a[i].window_s);
        if (a[i].disk.ok && events > 0)
            fprintf(f, " %.0f | %llu |",
                    (double)a[i].disk.sectors_written * 512.0 / events,
                    (unsigned long long)a[i].disk.flushes);
        else
            fprintf(f, " - | - |");
        fprintf(f, " %llu | %llu |", (unsigned long long)a[i].slow_syncs,
                (unsigned long long)a[i].segments);
        if (a[i].other_cpu_s >= 0)
            fprintf(f, " %.0f%% |\n", 100.0 * a[i].other_cpu_s /
                                          a[i].window_s);
        else
            fprintf(f, " - |\n");
    }
    int any = 0;
    for (int i = 0; i < n; i++)
        any |= a[i].nslow_by > 0;
    if (!any)
        return;
    fprintf(f, "\nSyncs over 10 ms, by the file synced (count x, summed "
               "time; syncs run in several threads, so the times may "
               "overlap):\n\n");
    for (int i = 0; i < n; i++) {
        if (!a[i].nslow_by)
            continue;
        fprintf(f, "- %d thread%s:", a[i].threads,
                a[i].threads == 1 ? "" : "s");
        for (int k = 0; k < a[i].nslow_by; k++)
            fprintf(f, "%s %llu x `%s` (%.0f ms)", k ? "," : "",
                    (unsigned long long)a[i].slow_by[k].n,
                    a[i].slow_by[k].file, a[i].slow_by[k].ms);
        fprintf(f, "\n");
    }
}

static void write_md(FILE *f, const report *r)
{
    const options *o = r->o;
    const machine *m = &r->m;
    const char *not_run = "_Not run (--only)._\n";
    char cs[96];

    fprintf(f, "# evstore engine benchmark\n\n");
    fprintf(f, "| | |\n|---|---|\n");
    fprintf(f, "| date (UTC) | %s |\n", m->date);
    if (o->label)
        fprintf(f, "| label | %s |\n", o->label);
    fprintf(f, "| evstore | %s |\n", r->version);
    fprintf(f, "| bench build | %s |\n", m->build);
    fprintf(f, "| CPU | %s |\n", m->cpu);
    fprintf(f, "| cores (online) | %ld |\n", m->cores);
    fprintf(f, "| RAM | %.1f GiB |\n", m->ram_gib);
    fprintf(f, "| kernel | %s |\n", m->kernel);
    fprintf(f, "| store dir | %s |\n", r->root);
    fprintf(f, "| filesystem | %s on %s, mounted at %s (%s) |\n", m->fs_type,
            m->disk, m->fs_mount, m->fs_opts);
    fprintf(f, "| mode | %s: %.1f s measured per level after %.1f s warm-up "
               "(not counted) |\n",
            o->quick ? "quick" : "full", o->seconds, o->warmup);
    fprintf(f, "| total run time | %.1f s |\n", r->total_s);
    fprintf(f, "| /proc/loadavg at start / end | %s / %s |\n\n",
            r->load_start, r->load_end);

    fprintf(f,
            "Durability: every append returns only after the library has "
            "fdatasync'ed the log; nothing below is measured with syncing "
            "off. Payloads are %d B JSON objects (validated by the store), "
            "no metadata, no tags, ids generated by the store. Latency "
            "percentiles are nearest-rank percentiles of every measured "
            "operation's own wall time (sorted samples, no averaging), in "
            "milliseconds. Counts are attempted/committed/conflicts/errors "
            "and add up; operations that started during the warm-up are "
            "excluded and listed apart.\n\n",
            PAYLOAD_LEN);

    fprintf(f, "## 1. fdatasync floor of the store's filesystem\n\n");
    fprintf(f, "pwrite of N bytes at the end of the data in a "
               "preallocated, zero-filled file, then fdatasync; warm-up "
               "samples excluded.\n\n");
    if (!(o->phases & P_FSYNC))
        fprintf(f, "%s", not_run);
    else
        fprintf(f, "| write | samples | p50 | p90 | p95 | p99 | max | "
                   "1/p50 | CPU/sample |\n"
                   "|---|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; (o->phases & P_FSYNC) && i < 2; i++) {
        const fsync_result *s = &r->fs[i];
        fprintf(f, "| %zu B | %zu (+%ld warm-up) |", s->write_size, s->lat.n,
                s->warmup);
        md_lat_cells(f, &s->lat);
        fprintf(f, " %.0f /s | %.1f µs |\n",
                s->lat.p50 > 0 ? 1000.0 / s->lat.p50 : 0, s->cpu_us);
    }

    fprintf(f, "\n## 2. Durable single-event appends\n\n");
    fprintf(f, "Thread t appends one event per call to its own streams "
               "bench-t<t>-0..%d in turn, with the exact expected version, "
               "on a fresh store per level.\n\n",
            STREAMS_PER_THREAD - 1);
    md_append_tables(f, r->app, r->napp, m, not_run, 1);

    fprintf(f, "\n## 3. 100-event batches\n\n");
    fprintf(f, "One evs_append of 100 events to one stream per call, each "
               "thread cycling over %d streams of its own, exact expected "
               "version. Counts and latency are per batch.\n\n",
            BATCH_STREAMS_PER_THREAD);
    md_append_tables(f, r->batch, r->nbatch, m, not_run, r->napp == 0);

    fprintf(f, "\n## 4. Reading a 1000-event stream\n\n");
    fprintf(f, "evs_read_stream (forward, from version 0) + evs_iter_next "
               "to the end + evs_iter_free, summing every byte of every "
               "event's data and checking versions 0..999 in order; one "
               "thread, warm page cache. contiguous: the stream was "
               "written as 10 appends of 100 events; interleaved: 10 "
               "events at a time between 90 events of 9 other streams.\n\n");
    if (!(o->phases & P_READ))
        fprintf(f, "%s", not_run);
    else
        fprintf(f, "| layout | reads attempted/ok/conflicts/errors | p50 | "
                   "p90 | p95 | p99 | max | events/s at p50 | warm-up "
                   "excluded |\n|---|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; (o->phases & P_READ) && i < 2; i++) {
        const read_result *rd = &r->rd[i];
        counts_str(cs, sizeof cs, &rd->c);
        fprintf(f, "| %s | %s |", rd->layout, cs);
        md_lat_cells(f, &rd->lat);
        fprintf(f, " %.0f | %ld reads |\n",
                rd->lat.p50 > 0 ? READ_STREAM_EVENTS / (rd->lat.p50 / 1e3)
                                : 0,
                rd->warmup);
    }

    fprintf(f, "\n## 5. Reading $all\n\n");
    fprintf(f, "%llu events (300 B) in %d tenants x %d streams, written as "
               "100-event appends in %.2f s. Each pass iterates to the end "
               "checking that positions increase (and the tenant); one "
               "warm-up pass, then %d passes; events/s at the median "
               "pass.\n\n",
            (unsigned long long)r->all.events, ALL_TENANTS,
            ALL_STREAMS_PER_TENANT, r->all.prefill_s, ALL_PASSES);
    const all_result *rows[2 + ALL_TENANTS];
    int nrows = 0;
    if (!(o->phases & P_ALL))
        fprintf(f, "%s", not_run);
    else
        fprintf(f, "| scope | events | passes attempted/ok/conflicts/errors "
                   "| median pass | min | max | events/s |\n"
                   "|---|---|---|---|---|---|---|\n");
    if (o->phases & P_ALL) {
        rows[nrows++] = &r->all.every;
        rows[nrows++] = &r->all.tenants_total;
        for (int t = 0; t < ALL_TENANTS; t++)
            rows[nrows++] = &r->all.tenant[t];
    }
    for (int i = 0; i < nrows; i++) {
        const all_result *a = rows[i];
        double mn = a->seconds[0], mx = a->seconds[0];
        for (int p = 1; p < ALL_PASSES; p++) {
            mn = a->seconds[p] < mn ? a->seconds[p] : mn;
            mx = a->seconds[p] > mx ? a->seconds[p] : mx;
        }
        counts_str(cs, sizeof cs, &a->c);
        fprintf(f, "| %s | %llu | %s | %.2f ms | %.2f ms | %.2f ms | %.0f |\n",
                a->scope, (unsigned long long)a->expected, cs,
                a->median_s * 1e3, mn * 1e3, mx * 1e3, a->events_per_s);
    }

    fprintf(f, "\n## 6. Goals\n\n");
    fprintf(f, "| goal | target | measured | verdict |\n|---|---|---|---|\n");
    for (int i = 0; i < r->ngoals; i++)
        fprintf(f, "| %s | %s | %s | **%s** |\n", r->goals[i].name,
                r->goals[i].target, r->goals[i].measured,
                r->goals[i].verdict);
    fprintf(f, "\nThe seeds' targets, for context:\n\n");
    fprintf(f, "| target | threshold | measured | verdict |\n"
               "|---|---|---|---|\n");
    for (int i = 0; i < r->nseeds; i++)
        fprintf(f, "| %s | %s | %s | %s |\n", r->seeds[i].name,
                r->seeds[i].target, r->seeds[i].measured,
                r->seeds[i].verdict);

    int nerr = 0;
    for (int i = 0; i < r->napp; i++)
        nerr += r->app[i].error[0] != 0 || !r->app[i].store_check;
    for (int i = 0; i < r->nbatch; i++)
        nerr += r->batch[i].error[0] != 0 || !r->batch[i].store_check;
    nerr += r->rd[0].error[0] != 0 || r->rd[1].error[0] != 0;
    nerr += r->all.every.error[0] != 0;
    for (int t = 0; t < ALL_TENANTS; t++)
        nerr += r->all.tenant[t].error[0] != 0;
    if (nerr) {
        fprintf(f, "\n## Errors and failed checks\n\n");
        for (int i = 0; i < r->napp; i++) {
            if (r->app[i].error[0])
                fprintf(f, "- appends, %d threads, first error: %s\n",
                        r->app[i].threads, r->app[i].error);
            if (!r->app[i].store_check)
                fprintf(f, "- appends, %d threads: store holds %llu events, "
                           "%llu acknowledged\n",
                        r->app[i].threads,
                        (unsigned long long)r->app[i].store_events,
                        (unsigned long long)(r->app[i].c.committed +
                                             r->app[i].warm.committed));
        }
        for (int i = 0; i < r->nbatch; i++) {
            if (r->batch[i].error[0])
                fprintf(f, "- batches, %d threads, first error: %s\n",
                        r->batch[i].threads, r->batch[i].error);
            if (!r->batch[i].store_check)
                fprintf(f, "- batches, %d threads: store holds %llu events, "
                           "%llu acknowledged\n",
                        r->batch[i].threads,
                        (unsigned long long)r->batch[i].store_events,
                        (unsigned long long)((r->batch[i].c.committed +
                                              r->batch[i].warm.committed) *
                                             BATCH_EVENTS));
        }
        for (int i = 0; i < 2; i++)
            if (r->rd[i].error[0])
                fprintf(f, "- stream read (%s), first error: %s\n",
                        r->rd[i].layout, r->rd[i].error);
        if (r->all.every.error[0])
            fprintf(f, "- $all read, first error: %s\n", r->all.every.error);
        for (int t = 0; t < ALL_TENANTS; t++)
            if (r->all.tenant[t].error[0])
                fprintf(f, "- $all read of tenant %s, first error: %s\n",
                        r->all.tenant[t].scope, r->all.tenant[t].error);
    }
}

/* ------------------------------------------------------------------ */
/* JSON                                                                */
/* ------------------------------------------------------------------ */

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void json_lat(FILE *f, const lat_summary *l)
{
    fprintf(f,
            "{\"samples\": %zu, \"min_ms\": %.6f, \"p50_ms\": %.6f, "
            "\"p90_ms\": %.6f, \"p95_ms\": %.6f, \"p99_ms\": %.6f, "
            "\"max_ms\": %.6f}",
            l->n, l->min, l->p50, l->p90, l->p95, l->p99, l->max);
}

static void json_counts(FILE *f, const op_counts *c)
{
    fprintf(f,
            "{\"attempted\": %llu, \"committed\": %llu, \"conflicts\": %llu, "
            "\"errors\": %llu}",
            (unsigned long long)c->attempted,
            (unsigned long long)c->committed,
            (unsigned long long)c->conflicts, (unsigned long long)c->errors);
}

static void json_append(FILE *f, const append_result *a)
{
    fprintf(f, "    {\"threads\": %d, \"events_per_append\": %d, "
               "\"warmup_s\": %.3f, \"window_s\": %.6f,\n     \"counts\": ",
            a->threads, a->events_per_append, a->warmup_s, a->window_s);
    json_counts(f, &a->c);
    fprintf(f, ",\n     \"warmup_excluded\": ");
    json_counts(f, &a->warm);
    fprintf(f, ",\n     \"appends_per_s\": %.1f, \"events_per_s\": %.1f,\n"
               "     \"latency\": ",
            a->ops_per_s, a->events_per_s);
    json_lat(f, &a->lat);
    fprintf(f, ",\n     \"sync_latency\": ");
    json_lat(f, &a->sync_lat);
    fprintf(f, ", \"syncs_over_10ms\": %llu, \"segments\": %llu",
            (unsigned long long)a->slow_syncs,
            (unsigned long long)a->segments);
    fprintf(f, ",\n     \"syncs_over_10ms_by_file\": [");
    for (int k = 0; k < a->nslow_by; k++) {
        fprintf(f, "%s{\"file\": ", k ? ", " : "");
        json_str(f, a->slow_by[k].file);
        fprintf(f, ", \"count\": %llu, \"ms\": %.3f}",
                (unsigned long long)a->slow_by[k].n, a->slow_by[k].ms);
    }
    fprintf(f, "]");
    fprintf(f, ",\n     \"disk\": {\"device\": ");
    json_str(f, g_disk_name);
    fprintf(f, ", \"measured\": %s, \"writes\": %llu, \"bytes_written\": "
               "%llu, \"flushes\": %llu}",
            a->disk.ok ? "true" : "false", (unsigned long long)a->disk.writes,
            (unsigned long long)a->disk.sectors_written * 512ull,
            (unsigned long long)a->disk.flushes);
    fprintf(f, ",\n     \"syncs\": %llu, \"events_per_sync\": %.3f, "
               "\"sync_busy_s\": %.6f, \"cpu_user_s\": %.3f, "
               "\"cpu_sys_s\": %.3f, \"other_cpu_s\": %.3f, "
               "\"context_switches\": %llu,\n"
               "     \"store_events\": %llu, "
               "\"store_matches_acknowledged\": %s, \"first_error\": ",
            (unsigned long long)a->syncs,
            a->syncs ? (double)a->c.committed * a->events_per_append /
                           (double)a->syncs
                     : 0.0,
            a->sync_s, a->cpu_user, a->cpu_sys, a->other_cpu_s,
            (unsigned long long)a->csw,
            (unsigned long long)a->store_events,
            a->store_check ? "true" : "false");
    json_str(f, a->error);
    fprintf(f, "}");
}

static void json_all(FILE *f, const all_result *a)
{
    fprintf(f, "{\"scope\": ");
    json_str(f, a->scope);
    fprintf(f, ", \"events\": %llu, \"passes\": ",
            (unsigned long long)a->expected);
    json_counts(f, &a->c);
    fprintf(f, ", \"pass_s\": [");
    for (int p = 0; p < ALL_PASSES; p++)
        fprintf(f, "%s%.6f", p ? ", " : "", a->seconds[p]);
    fprintf(f, "], \"median_s\": %.6f, \"events_per_s\": %.1f, "
               "\"first_error\": ",
            a->median_s, a->events_per_s);
    json_str(f, a->error);
    fprintf(f, "}");
}

static void write_json_all(FILE *f, const report *r)
{
    fprintf(f, "{\"events\": %llu, \"tenants\": %d, \"prefill_s\": %.3f,\n"
               "    \"every_tenant\": ",
            (unsigned long long)r->all.events, ALL_TENANTS,
            r->all.prefill_s);
    json_all(f, &r->all.every);
    fprintf(f, ",\n    \"per_tenant_total\": ");
    json_all(f, &r->all.tenants_total);
    fprintf(f, ",\n    \"per_tenant\": [\n");
    for (int t = 0; t < ALL_TENANTS; t++) {
        fprintf(f, "      ");
        json_all(f, &r->all.tenant[t]);
        fprintf(f, "%s\n", t + 1 < ALL_TENANTS ? "," : "");
    }
    fprintf(f, "    ]}");
}

static void write_json_goals(FILE *f, const goal *g, int n, const char *k1,
                             const char *k2)
{
    for (int i = 0; i < n; i++) {
        fprintf(f, "    {\"%s\": ", k1);
        json_str(f, g[i].name);
        fprintf(f, ", \"%s\": ", k2);
        json_str(f, g[i].target);
        fprintf(f, ", \"measured\": ");
        json_str(f, g[i].measured);
        fprintf(f, ", \"verdict\": ");
        json_str(f, g[i].verdict);
        fprintf(f, "}%s\n", i + 1 < n ? "," : "");
    }
}

static void write_json(FILE *f, const report *r)
{
    const options *o = r->o;
    const machine *m = &r->m;
    fprintf(f, "{\n  \"benchmark\": \"engine_bench\",\n  \"date\": ");
    json_str(f, m->date);
    fprintf(f, ",\n  \"label\": ");
    json_str(f, o->label ? o->label : "");
    fprintf(f, ",\n  \"evstore_version\": ");
    json_str(f, r->version);
    fprintf(f, ",\n  \"machine\": {\"cpu\": ");
    json_str(f, m->cpu);
    fprintf(f, ", \"cores\": %ld, \"ram_gib\": %.2f, \"kernel\": ", m->cores,
            m->ram_gib);
    json_str(f, m->kernel);
    fprintf(f, ", \"fs_type\": ");
    json_str(f, m->fs_type);
    fprintf(f, ", \"fs_source\": ");
    json_str(f, m->fs_source);
    fprintf(f, ", \"disk\": ");
    json_str(f, m->disk);
    fprintf(f, ", \"fs_mount\": ");
    json_str(f, m->fs_mount);
    fprintf(f, ", \"fs_options\": ");
    json_str(f, m->fs_opts);
    fprintf(f, ", \"build\": ");
    json_str(f, m->build);
    fprintf(f, "},\n  \"store_dir\": ");
    json_str(f, r->root);
    fprintf(f, ",\n  \"config\": {\"quick\": %s, \"seconds\": %.3f, "
               "\"warmup_s\": %.3f, \"payload_bytes\": %d, "
               "\"streams_per_thread\": %d, \"batch_events\": %d, "
               "\"batch_streams_per_thread\": %d, \"reads\": %ld, "
               "\"all_events\": %ld, \"fsync_samples\": %ld, "
               "\"durability\": \"fdatasync before every append returns\", "
               "\"percentiles\": \"nearest-rank over sorted per-op "
               "samples\"},\n",
            o->quick ? "true" : "false", o->seconds, o->warmup, PAYLOAD_LEN,
            STREAMS_PER_THREAD, BATCH_EVENTS, BATCH_STREAMS_PER_THREAD,
            o->reads, o->all_events, o->fsync_samples);

    fprintf(f, "  \"fdatasync\": [\n");
    for (int i = 0; (o->phases & P_FSYNC) && i < 2; i++) {
        fprintf(f, "    {\"write_bytes\": %zu, \"warmup_samples\": %ld, "
                   "\"cpu_us_per_sample\": %.2f, \"latency\": ",
                r->fs[i].write_size, r->fs[i].warmup, r->fs[i].cpu_us);
        json_lat(f, &r->fs[i].lat);
        fprintf(f, "}%s\n", i == 0 ? "," : "");
    }
    fprintf(f, "  ],\n  \"appends\": [\n");
    for (int i = 0; i < r->napp; i++) {
        json_append(f, &r->app[i]);
        fprintf(f, "%s\n", i + 1 < r->napp ? "," : "");
    }
    fprintf(f, "  ],\n  \"batches\": [\n");
    for (int i = 0; i < r->nbatch; i++) {
        json_append(f, &r->batch[i]);
        fprintf(f, "%s\n", i + 1 < r->nbatch ? "," : "");
    }
    fprintf(f, "  ],\n  \"stream_reads\": [\n");
    for (int i = 0; (o->phases & P_READ) && i < 2; i++) {
        fprintf(f, "    {\"layout\": ");
        json_str(f, r->rd[i].layout);
        fprintf(f, ", \"events_per_read\": %d, \"warmup_reads\": %ld, "
                   "\"counts\": ",
                READ_STREAM_EVENTS, r->rd[i].warmup);
        json_counts(f, &r->rd[i].c);
        fprintf(f, ", \"latency\": ");
        json_lat(f, &r->rd[i].lat);
        fprintf(f, ", \"first_error\": ");
        json_str(f, r->rd[i].error);
        fprintf(f, "}%s\n", i == 0 ? "," : "");
    }
    fprintf(f, "  ],\n  \"read_all\": ");
    if (o->phases & P_ALL)
        write_json_all(f, r);
    else
        fprintf(f, "null");
    fprintf(f, ",\n  \"goals\": [\n");
    write_json_goals(f, r->goals, r->ngoals, "goal", "target");
    fprintf(f, "  ],\n  \"seed_targets\": [\n");
    write_json_goals(f, r->seeds, r->nseeds, "target", "threshold");
    fprintf(f, "  ],\n  \"total_s\": %.3f,\n  \"loadavg_start\": ",
            r->total_s);
    json_str(f, r->load_start);
    fprintf(f, ",\n  \"loadavg_end\": ");
    json_str(f, r->load_end);
    fprintf(f, ",\n  \"failed_checks\": %d\n}\n", g_failures);
}

/* ------------------------------------------------------------------ */
/* Main                                                                */
/* ------------------------------------------------------------------ */

static FILE *open_output(const char *path, const char *flag)
{
    FILE *f = fopen(path, "w");
    if (!f)
        die("%s %s: cannot write: %s", flag, path, strerror(errno));
    return f;
}

static void close_output(FILE *f, const char *path)
{
    if (fflush(f) != 0 || ferror(f) || fclose(f) != 0)
        die("writing %s failed: %s", path, strerror(errno));
}

int main(int argc, char **argv)
{
    static report r; /* large: keep it off the stack */
    options o;
    parse_args(&o, argc, argv);
    r.o = &o;
    r.version = evs_version();

    /* Fail on unwritable outputs before spending minutes measuring. */
    FILE *json = o.json_path ? open_output(o.json_path, "--json") : NULL;
    g_outputs[0] = o.json_path;
    FILE *md = o.md_path ? open_output(o.md_path, "--md") : NULL;
    g_outputs[1] = o.md_path;

    g_keep = o.keep;
    make_root(&o);
    if (!realpath(g_root, r.root))
        snprintf(r.root, sizeof r.root, "%s", g_root);
    describe_machine(&r.m, g_root);
#ifndef __OPTIMIZE__
    fprintf(stderr, PROG ": warning: built without optimization\n");
#endif
    fprintf(stderr, PROG ": stores in %s (%s on %s)\n", r.root, r.m.fs_type,
            r.m.disk);

    g_sync_v = xcalloc(SYNC_SAMPLES_MAX, sizeof *g_sync_v);
    g_slow = xcalloc(SLOW_SYNCS_MAX, sizeof *g_slow);
    loadavg(r.load_start, sizeof r.load_start);
    uint64_t t_start = now_ns();
    if (o.phases & P_FSYNC) {
        fprintf(stderr, PROG ": fdatasync floor: %ld samples\n",
                o.fsync_samples);
        r.fs[0] = bench_fsync(PAYLOAD_LEN, o.fsync_samples);
        long big = o.fsync_samples / 4 > 0 ? o.fsync_samples / 4 : 1;
        r.fs[1] = bench_fsync((size_t)PAYLOAD_LEN * BATCH_EVENTS, big);
    }
    for (int i = 0; (o.phases & P_APPEND) && i < o.nthreads; i++)
        r.app[r.napp++] = bench_appends(&o, o.threads[i], 1);
    for (int i = 0; (o.phases & P_BATCH) && i < o.nbatch_threads; i++)
        r.batch[r.nbatch++] =
            bench_appends(&o, o.batch_threads[i], BATCH_EVENTS);
    if (o.phases & P_READ)
        bench_reads(&o, r.rd);
    if (o.phases & P_ALL)
        bench_all(&o, &r.all);
    r.total_s = (double)(now_ns() - t_start) / 1e9;
    loadavg(r.load_end, sizeof r.load_end);

    compute_goals(&r);
    write_md(stdout, &r);
    fflush(stdout);
    if (md) {
        write_md(md, &r);
        close_output(md, o.md_path);
    }
    if (json) {
        write_json(json, &r);
        close_output(json, o.json_path);
    }
    if (!o.keep)
        rm_rf(g_root);
    else
        fprintf(stderr, PROG ": stores kept in %s\n", r.root);
    if (g_failures) {
        fprintf(stderr,
                PROG ": %d check(s) failed (errors, conflicts or counts "
                     "that do not match the store): see the report\n",
                g_failures);
        return 3;
    }
    return 0;
}
