/*
 * bench_util.c -- the pieces the micro-benchmarks (micro/NAME_bench.c) and
 * `evs bench` share (see bench_util.h). The sync probe is sync_probe.c.
 */
#include "bench_util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

const char *g_prog = "bench";
char g_root[PATH_MAX - 128];
int g_keep;
const char *g_outputs[2];
int g_failures;
int g_die_status = 2;
int g_hang_status = 4;

/* ------------------------------------------------------------------ */
/* Time, process counters                                             */
/* ------------------------------------------------------------------ */

uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void sleep_s(double s)
{
    struct timespec ts;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

_Atomic int g_interrupted;

/* sleep_s, cut short once g_interrupted is set. Polled every 20 ms rather
 * than woken by the signal: the signal thread may not be the sleeper, and
 * the window's end is taken from the operations, not from this sleep. */
static void sleep_unless_interrupted(double s)
{
    uint64_t end = now_ns() + (uint64_t)(s * 1e9);
    for (;;) {
        uint64_t now = now_ns();
        if (atomic_load(&g_interrupted) || now >= end)
            return;
        double left = (double)(end - now) / 1e9;
        sleep_s(left < 0.02 ? left : 0.02);
    }
}

uint64_t ctx_switches(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)ru.ru_nvcsw + (uint64_t)ru.ru_nivcsw;
}

double cpu_seconds(int sys)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    struct timeval tv = sys ? ru.ru_stime : ru.ru_utime;
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

char g_disk_name[64];

disk_counters disk_read(void)
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

double machine_busy_s(void)
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

void loadavg(char *buf, size_t size)
{
    FILE *f = fopen("/proc/loadavg", "r");
    buf[0] = 0;
    if (f) {
        if (fgets(buf, (int)size, f))
            buf[strcspn(buf, "\n")] = 0;
        fclose(f);
    }
}

void die(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", g_prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (g_root[0] && !g_keep)
        rm_rf(g_root);
    for (int i = 0; i < 2; i++)
        if (g_outputs[i])
            unlink(g_outputs[i]);
    exit(g_die_status);
}

void bench_init(const char *prog)
{
    g_prog = prog;
    if (sync_probe_init() != 0)
        die("out of memory");
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        die("out of memory");
    return p;
}

/* ------------------------------------------------------------------ */
/* Random numbers, payloads                                           */
/* ------------------------------------------------------------------ */

uint64_t rng_below_fn(void *rng, uint64_t n)
{
    return rng_below(rng, n);
}

void event_init(evs_event_data *e, const char *type, const char *data,
                size_t len)
{
    memset(e, 0, sizeof *e);
    e->type = type;
    e->data = data;
    e->data_len = len;
    e->content_type = EVS_CONTENT_JSON;
}

uint64_t json_uint(const void *data, const char *key)
{
    const char *p = data ? strstr(data, key) : NULL;
    return p ? strtoull(p + strlen(key), NULL, 10) : 0;
}

/* ------------------------------------------------------------------ */
/* Samples and percentiles                                            */
/* ------------------------------------------------------------------ */

void samples_push(samples *s, uint64_t ns)
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

void samples_append(samples *dst, const samples *src)
{
    for (size_t i = 0; i < src->n; i++)
        samples_push(dst, src->v[i]);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* min, 1..99, then the tail. */
const double curve_pct[CURVE_POINTS] = {
    0,    1,    2,    3,    4,    5,    6,    7,    8,    9,    10,   11,
    12,   13,   14,   15,   16,   17,   18,   19,   20,   21,   22,   23,
    24,   25,   26,   27,   28,   29,   30,   31,   32,   33,   34,   35,
    36,   37,   38,   39,   40,   41,   42,   43,   44,   45,   46,   47,
    48,   49,   50,   51,   52,   53,   54,   55,   56,   57,   58,   59,
    60,   61,   62,   63,   64,   65,   66,   67,   68,   69,   70,   71,
    72,   73,   74,   75,   76,   77,   78,   79,   80,   81,   82,   83,
    84,   85,   86,   87,   88,   89,   90,   91,   92,   93,   94,   95,
    96,   97,   98,   99,   99.5, 99.9, 99.99, 100};

/* Nearest-rank percentile of sorted v[0..n): the value at rank
 * ceil(p/100 * n), at least 1. In integers, p in hundredths of a percent:
 * in doubles p/100 * n lands just above a whole number for some n (99.9 %
 * of 1000 gives 999.0000000000001, rank 1000 instead of 999). */
static double pct_ms(const uint64_t *v, size_t n, double p)
{
    uint64_t bp = (uint64_t)llround(p * 100.0); /* 99.99 -> 9999 */
    size_t rank = (size_t)((bp * (uint64_t)n + 9999) / 10000);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return (double)v[rank - 1] / 1e6;
}

lat_summary summarize(samples *s)
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

int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ------------------------------------------------------------------ */
/* Options                                                            */
/* ------------------------------------------------------------------ */

long parse_long(const char *flag, const char *s, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        die("%s: expected an integer in %ld..%ld, got '%s'", flag, min, max,
            s);
    return v;
}

double parse_double(const char *flag, const char *s, double min,
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

int parse_list(const char *flag, const char *s, int *out)
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

void arg_split(const char *a, char *name, size_t size, const char **val)
{
    const char *eq = strchr(a, '=');
    *val = NULL;
    if (strncmp(a, "--", 2) != 0)
        die("unexpected argument '%s' (see --help)", a);
    if (eq) {
        size_t len = (size_t)(eq - a);
        if (len >= size)
            die("unknown option '%s' (see --help)", a);
        memcpy(name, a, len);
        name[len] = 0;
        *val = eq + 1;
    } else {
        snprintf(name, size, "%s", a);
    }
}

const char *arg_value(const char *name, const char *val, int argc,
                      char **argv, int *i)
{
    if (val)
        return val;
    if (*i + 1 >= argc)
        die("%s needs a value (see --help)", name);
    return argv[++*i];
}

void arg_no_value(const char *name, const char *val)
{
    if (val)
        die("%s takes no value", name);
}

/* --only LIST: bit i for names[i]. */
static unsigned parse_phases(const char *s, const char *const *names, int n)
{
    char all[256] = "";
    for (int i = 0; i < n; i++)
        snprintf(all + strlen(all), sizeof all - strlen(all), "%s%s",
                 i ? ", " : "", names[i]);
    unsigned phases = 0;
    for (const char *p = s; *p;) {
        size_t len = strcspn(p, ",");
        int i;
        for (i = 0; i < n; i++)
            if (strlen(names[i]) == len && strncmp(p, names[i], len) == 0)
                break;
        if (i == n)
            die("--only: unknown phase in '%s' (phases: %s)", s, all);
        phases |= 1u << i;
        p += len;
        if (*p == ',' && !*++p)
            die("--only: trailing comma in '%s'", s);
    }
    if (!phases)
        die("--only: empty list");
    return phases;
}

/* own's value val into its destination. */
static void own_set(const bench_opt *o, const char *val)
{
    long v = 0;
    if (o->kind == BOPT_SECONDS || o->kind == BOPT_SECONDS0) {
        *(double *)o->dst = parse_double(o->name, val, 0, o->fmax,
                                         o->kind == BOPT_SECONDS0);
        return;
    }
    v = parse_long(o->name, val, o->min, o->max);
    switch (o->kind) {
    case BOPT_LONG: *(long *)o->dst = v; break;
    case BOPT_INT: *(int *)o->dst = (int)v; break;
    case BOPT_UINT: *(unsigned *)o->dst = (unsigned)v; break;
    case BOPT_U64: *(uint64_t *)o->dst = (uint64_t)v; break;
    default: break;
    }
}

/* The default of own, not given. */
static void own_default(const bench_opt *o, int quick)
{
    double d = quick ? o->quick_def : o->def;
    switch (o->kind) {
    case BOPT_LONG: *(long *)o->dst = (long)d; break;
    case BOPT_INT: *(int *)o->dst = (int)d; break;
    case BOPT_UINT: *(unsigned *)o->dst = (unsigned)d; break;
    case BOPT_U64: *(uint64_t *)o->dst = (uint64_t)d; break;
    case BOPT_SECONDS:
    case BOPT_SECONDS0: *(double *)o->dst = d; break;
    default: break;
    }
}

/* bench_begin's parsing (bench_util.h). */
static void parse_args(bench_opts *b, int argc, char **argv,
                       const char *const *phases, int nphases,
                       void (*usage)(FILE *), const bench_opt *own, int nown)
{
    /* per own option: given; a level list's text, parsed at the end */
    char *given = xcalloc((size_t)nown, 1);
    const char **levels = xcalloc((size_t)nown, sizeof *levels);
    memset(b, 0, sizeof *b);
    b->phases = (1u << nphases) - 1;
    for (int i = 1; i < argc; i++) {
        const char *val;
        char name[64];
        int k;
        arg_split(argv[i], name, sizeof name, &val);
        if (strcmp(name, "--help") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(name, "--quick") == 0) {
            arg_no_value(name, val);
            b->quick = 1;
        } else if (strcmp(name, "--keep") == 0) {
            arg_no_value(name, val);
            b->keep = 1;
        } else if (strcmp(name, "--dir") == 0 ||
                   strcmp(name, "--json") == 0 ||
                   strcmp(name, "--md") == 0) {
            val = arg_value(name, val, argc, argv, &i);
            if (!*val)
                die("%s: empty path", name);
            *(name[2] == 'd' ? &b->dir
              : name[2] == 'j' ? &b->json_path
                               : &b->md_path) = val;
        } else if (strcmp(name, "--label") == 0) {
            b->label = arg_value(name, val, argc, argv, &i);
        } else if (strcmp(name, "--only") == 0) {
            b->phases = parse_phases(arg_value(name, val, argc, argv, &i),
                                     phases, nphases);
        } else {
            for (k = 0; k < nown && strcmp(name, own[k].name) != 0; k++)
                ;
            if (k == nown)
                die("unknown option '%s' (see --help)", name);
            val = arg_value(name, val, argc, argv, &i);
            given[k] = 1;
            if (own[k].kind == BOPT_LEVELS)
                levels[k] = val;
            else
                own_set(&own[k], val);
        }
    }
    for (int k = 0; k < nown; k++) {
        if (own[k].kind == BOPT_LEVELS)
            *own[k].n = parse_list(own[k].name,
                                   given[k] ? levels[k] : own[k].levels_def,
                                   own[k].dst);
        else if (!given[k])
            own_default(&own[k], b->quick);
    }
    free(given);
    free(levels);
}

/* ------------------------------------------------------------------ */
/* Machine description                                                */
/* ------------------------------------------------------------------ */

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

void describe_machine(machine *m, const char *dir)
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

int fsync_probe(const char *dir, long n, size_t wsize, lat_summary *out,
                double *cpu_us, char *err, size_t errsize)
{
    long warm = n / 20 > 10 ? n / 20 : 10, total = n + warm;
    size_t filesize = (size_t)total * wsize;
    char path[PATH_MAX];
    char *buf = NULL;
    samples s = {0};
    int rc = -1;

    memset(out, 0, sizeof *out);
    if (snprintf(path, sizeof path, "%s/.evs-fsync-probe-XXXXXX", dir) >=
        (int)sizeof path) {
        snprintf(err, errsize, "%s: path too long", dir);
        return -1;
    }
    int fd = mkstemp(path);
    if (fd < 0) {
        snprintf(err, errsize, "cannot create a file in %s: %s", dir,
                 strerror(errno));
        return -1;
    }
    /* Preallocated with real zeros, as the log's segments are: an
     * unwritten extent would cost a journal commit on every fdatasync. */
    if (!(buf = calloc(1, 1u << 20)) || !(s.v = calloc((size_t)n, 8))) {
        snprintf(err, errsize, "out of memory");
        goto out;
    }
    s.cap = (size_t)n;
    for (size_t off = 0; off < filesize; off += 1u << 20) {
        size_t len = filesize - off < (1u << 20) ? filesize - off : 1u << 20;
        if (pwrite(fd, buf, len, (off_t)off) != (ssize_t)len) {
            snprintf(err, errsize, "writing %s: %s", path, strerror(errno));
            goto out;
        }
    }
    if (fsync(fd) != 0) {
        snprintf(err, errsize, "fsync(%s): %s", path, strerror(errno));
        goto out;
    }
    memset(buf, 'e', wsize);
    double cpu0 = 0;
    for (long i = 0; i < total; i++) {
        if (i == warm && cpu_us)
            cpu0 = cpu_seconds(0) + cpu_seconds(1);
        uint64_t t0 = now_ns();
        if (pwrite(fd, buf, wsize, (off_t)((size_t)i * wsize)) !=
                (ssize_t)wsize ||
            fdatasync(fd) != 0) {
            snprintf(err, errsize, "write+fdatasync on %s: %s", path,
                     strerror(errno));
            goto out;
        }
        if (i >= warm)
            s.v[s.n++] = now_ns() - t0;
    }
    if (cpu_us)
        *cpu_us = (cpu_seconds(0) + cpu_seconds(1) - cpu0) * 1e6 / (double)n;
    *out = summarize(&s);
    rc = 0;
out:
    close(fd);
    unlink(path);
    free(buf);
    free(s.v);
    return rc;
}

int sync_fs(const char *dir, double *secs, uint64_t *bytes, char *err,
            size_t errsize)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) {
        if (err)
            snprintf(err, errsize, "cannot open %s: %s", dir, strerror(errno));
        return -1;
    }
    disk_counters d0 = bytes ? disk_read() : (disk_counters){0};
    uint64_t t0 = now_ns();
    int rc = syncfs(fd);
    int e = errno;
    if (secs)
        *secs = (double)(now_ns() - t0) / 1e9;
    if (bytes) {
        disk_counters d1 = disk_read();
        *bytes = d0.ok && d1.ok ? (d1.sectors_written - d0.sectors_written) * 512u : 0;
    }
    close(fd);
    if (rc != 0) {
        if (err)
            snprintf(err, errsize, "syncfs(%s): %s", dir, strerror(e));
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* A run                                                              */
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

/* Opens the outputs, makes g_root, describes the machine, notes the
 * start. */
static void bench_start(bench_run *run, const bench_opts *o)
{
    run->version = evs_version();
    run->json = o->json_path ? open_output(o->json_path, "--json") : NULL;
    g_outputs[0] = o->json_path;
    run->md = o->md_path ? open_output(o->md_path, "--md") : NULL;
    g_outputs[1] = o->md_path;

    g_keep = o->keep;
    make_root(o->dir);
    if (!realpath(g_root, run->root))
        snprintf(run->root, sizeof run->root, "%s", g_root);
    describe_machine(&run->m, g_root);
#ifndef __OPTIMIZE__
    fprintf(stderr, "%s: warning: built without optimization\n", g_prog);
#endif
    fprintf(stderr, "%s: stores in %s (%s on %s)\n", g_prog, run->root,
            run->m.fs_type, run->m.disk);
    loadavg(run->load_start, sizeof run->load_start);
    run->t0 = now_ns();
}

static void bench_stop(bench_run *run)
{
    run->total_s = (double)(now_ns() - run->t0) / 1e9;
    loadavg(run->load_end, sizeof run->load_end);
}

static int bench_finish(bench_run *run, const bench_opts *o,
                        void (*write_md)(FILE *, const void *),
                        void (*write_json)(FILE *, const void *),
                        const void *report)
{
    write_md(stdout, report);
    fflush(stdout);
    if (run->md) {
        write_md(run->md, report);
        close_output(run->md, o->md_path);
    }
    if (run->json) {
        write_json(run->json, report);
        close_output(run->json, o->json_path);
    }
    if (!o->keep)
        rm_rf(g_root);
    else
        fprintf(stderr, "%s: stores kept in %s\n", g_prog, run->root);
    if (g_failures) {
        fprintf(stderr,
                "%s: %d check(s) failed (errors, wrong answers, conflicts "
                "where none can be, or counts that do not match the "
                "store): see the report\n",
                g_prog, g_failures);
        return 3;
    }
    return 0;
}

void bench_begin(bench_run *run, bench_opts *b, const char *prog, int argc,
                 char **argv, const char *const *phases, int nphases,
                 void (*usage)(FILE *), const bench_opt *own, int nown)
{
    bench_init(prog);
    parse_args(b, argc, argv, phases, nphases, usage, own, nown);
    bench_start(run, b);
}

int bench_end(bench_run *run, const bench_opts *o, void (*goals)(void *),
              void (*write_md)(FILE *, const void *),
              void (*write_json)(FILE *, const void *), void *report)
{
    bench_stop(run);
    goals(report);
    return bench_finish(run, o, write_md, write_json, report);
}

/* ------------------------------------------------------------------ */
/* Store directories                                                  */
/* ------------------------------------------------------------------ */

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    if (remove(path) != 0)
        fprintf(stderr, "%s: cannot remove %s: %s\n", g_prog, path,
                strerror(errno));
    return 0;
}

void rm_rf(const char *path)
{
    nftw(path, rm_entry, 32, FTW_DEPTH | FTW_PHYS);
}

void make_root(const char *dir)
{
    const char *parent = dir ? dir : ".";
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

void store_path(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", g_root, name);
}

evs_db *open_fresh(const char *name)
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

void close_store(evs_db *db, const char *name, evs_stats *end)
{
    if (end && evs_stats_get(end, db) < 0)
        fprintf(stderr, "%s: evs_stats_get: %s\n", g_prog, evs_last_error());
    int rc = evs_close(db);
    if (rc < 0)
        fprintf(stderr, "%s: evs_close(%s): %s: %s\n", g_prog, name,
                evs_strerror(rc), evs_last_error());
    if (!g_keep) {
        char path[PATH_MAX];
        store_path(path, sizeof path, name);
        rm_rf(path);
    }
}


/* ------------------------------------------------------------------ */
/* Operation accounting                                               */
/* ------------------------------------------------------------------ */

void counts_add(op_counts *a, const op_counts *b)
{
    a->attempted += b->attempted;
    a->committed += b->committed;
    a->conflicts += b->conflicts;
    a->errors += b->errors;
    a->rejected += b->rejected;
    a->items += b->items;
}

int counts_ok(const op_counts *c)
{
    return c->attempted ==
           c->committed + c->rejected + c->conflicts + c->errors;
}

/* ------------------------------------------------------------------ */
/* Timed levels                                                        */
/* ------------------------------------------------------------------ */

enum { PH_WARMUP = 0, PH_MEASURE = 1, PH_STOP = 2 };

typedef struct level_ctx {
    const level_ops *ops;
    void *arg;
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

static void *level_worker(void *arg)
{
    worker *w = arg;
    level_ctx *ctx = w->ctx;
    void *state = ctx->ops->init(ctx->arg, w->id);
    char err[256];

    pthread_barrier_wait(&ctx->start);
    int phase;
    while ((phase = atomic_load(&ctx->phase)) != PH_STOP) {
        uint64_t t0 = 0, t1 = 0, items = 0;
        int outcome;
        err[0] = 0;
        if (ctx->ops->op_outcome) {
            outcome = ctx->ops->op_outcome(state, &t0, &t1, &items, err,
                                           sizeof err);
        } else {
            int rc = ctx->ops->op(state, &t0, &t1, err, sizeof err);
            outcome = rc == 0                ? OP_COMMITTED
                      : rc == EVS_ECONFLICT ? OP_CONFLICT
                                            : OP_ERROR;
        }
        op_counts *c = phase == PH_MEASURE ? &w->c : &w->warm;
        c->attempted++;
        c->items += items;
        if (outcome == OP_COMMITTED) {
            c->committed++;
        } else if (outcome == OP_REJECTED) {
            c->rejected++;
        } else if (outcome == OP_CONFLICT) {
            c->conflicts++;
        } else {
            c->errors++;
            if (outcome != OP_ERROR && !err[0])
                snprintf(err, sizeof err, "the operation returned %d, "
                         "not an outcome", outcome);
            if (!w->error[0])
                snprintf(w->error, sizeof w->error, "%s", err);
        }
        if (phase == PH_MEASURE) {
            samples_push(&w->s, t1 - t0);
            /* the return, not t1: an operation may check its answer
             * after the part it times, and the window holds all of it */
            w->last_done = now_ns();
        }
    }
    ctx->ops->fini(state);
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
                "%s: a worker thread did not return within %d s after "
                "the end of its level (%s): the library looks hung\n",
                g_prog, JOIN_TIMEOUT_S, strerror(rc));
        if (g_root[0] && !g_keep)
            rm_rf(g_root);
        _exit(g_hang_status);
    }
}

void level_run(level_result *r, const level_ops *ops, void *arg,
               int nthreads, int events_per_op, double warmup,
               double seconds)
{
    memset(r, 0, sizeof *r);
    r->threads = nthreads;
    r->events_per_append = events_per_op;
    r->warmup_s = warmup;

    level_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.ops = ops;
    ctx.arg = arg;
    atomic_init(&ctx.phase, PH_WARMUP);
    pthread_barrier_init(&ctx.start, NULL, (unsigned)nthreads + 1);

    worker *ws = xcalloc((size_t)nthreads, sizeof *ws);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 1u << 20);
    for (int t = 0; t < nthreads; t++) {
        ws[t].ctx = &ctx;
        ws[t].id = t;
        int rc = pthread_create(&ws[t].th, &attr, level_worker, &ws[t]);
        if (rc != 0)
            die("pthread_create (thread %d of %d): %s", t, nthreads,
                strerror(rc));
    }
    pthread_attr_destroy(&attr);
    pthread_barrier_wait(&ctx.start);

    sleep_unless_interrupted(warmup);
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
    sleep_unless_interrupted(seconds);
    atomic_store(&ctx.phase, PH_STOP);
    for (int t = 0; t < nthreads; t++)
        join_or_die(ws[t].th);
    atomic_store(&g_sync_rec, 0);
    r->cpu_user = cpu_seconds(0) - u0;
    r->cpu_sys = cpu_seconds(1) - s0;
    r->csw = ctx_switches() - csw0;
    double m1 = machine_busy_s();
    r->other_cpu_s =
        m0 >= 0 && m1 >= 0 ? m1 - m0 - r->cpu_user - r->cpu_sys : -1;
    if (r->other_cpu_s < 0 && m0 >= 0 && m1 >= 0)
        r->other_cpu_s = 0; /* tick granularity */
    r->syncs = atomic_load(&g_sync_calls) - sc0;
    r->sync_s = (double)(atomic_load(&g_sync_ns) - sn0) / 1e9;
    disk_counters d1 = disk_read();
    if (d0.ok && d1.ok) {
        r->disk.ok = 1;
        r->disk.writes = d1.writes - d0.writes;
        r->disk.sectors_written = d1.sectors_written - d0.sectors_written;
        r->disk.flushes = d1.flushes - d0.flushes;
    }
    uint64_t nsync = atomic_load(&g_sync_n);
    samples ss = {g_sync_v, nsync < SYNC_SAMPLES_MAX ? nsync : SYNC_SAMPLES_MAX,
                  SYNC_SAMPLES_MAX};
    r->sync_lat = summarize(&ss);
    for (size_t i = 0; i < ss.n; i++)
        r->slow_syncs += ss.v[i] > SLOW_SYNC_NS;
    uint64_t nslow = atomic_load(&g_slow_n);
    for (uint64_t i = 0; i < nslow && i < SLOW_SYNCS_MAX; i++) {
        int k;
        for (k = 0; k < r->nslow_by; k++)
            if (strcmp(r->slow_by[k].file, g_slow[i].file) == 0)
                break;
        if (k == r->nslow_by) {
            if (k == 8)
                k = 7; /* the last slot collects the rest */
            else
                r->nslow_by++;
            snprintf(r->slow_by[k].file, sizeof r->slow_by[k].file, "%s",
                     k == 7 && r->slow_by[7].n ? "(others)" : g_slow[i].file);
        }
        r->slow_by[k].n++;
        r->slow_by[k].ms += (double)g_slow[i].ns / 1e6;
    }

    /* The window ends when the last measured operation returned. */
    uint64_t t_end = t0;
    samples all = {0};
    for (int t = 0; t < nthreads; t++) {
        if (ws[t].last_done > t_end)
            t_end = ws[t].last_done;
        counts_add(&r->c, &ws[t].c);
        counts_add(&r->warm, &ws[t].warm);
        samples_append(&all, &ws[t].s);
        free(ws[t].s.v);
        if (ws[t].error[0] && !r->error[0])
            snprintf(r->error, sizeof r->error, "%s", ws[t].error);
    }
    free(ws);
    pthread_barrier_destroy(&ctx.start);
    r->window_s = (double)(t_end - t0) / 1e9;
    if (r->window_s <= 0)
        r->window_s = seconds;
    r->ops_per_s = (double)r->c.committed / r->window_s;
    r->events_per_s = r->ops_per_s * events_per_op;
    r->items_per_s = ops->op_outcome ? (double)r->c.items / r->window_s
                                     : r->events_per_s;
    r->lat = summarize(&all); /* sorts all.v */
    for (int i = 0; i < CURVE_POINTS && all.n; i++)
        r->curve_ms[i] = pct_ms(all.v, all.n, curve_pct[i]);
    free(all.v);
}

const level_result *level_find(const level_result *a, int n, int threads)
{
    for (int i = 0; i < n; i++)
        if (a[i].threads == threads)
            return &a[i];
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Goals                                                              */
/* ------------------------------------------------------------------ */

int clean(const op_counts *c)
{
    return c->attempted > 0 && c->committed == c->attempted;
}

static const char *verdict(int ok) { return ok ? "met" : "not met"; }

void counts_str(char *buf, size_t size, const op_counts *c)
{
    snprintf(buf, size, "%llu/%llu/%llu/%llu",
             (unsigned long long)c->attempted,
             (unsigned long long)c->committed,
             (unsigned long long)c->conflicts, (unsigned long long)c->errors);
}

goal *goal_add(goal *list, int *n, const char *name, const char *target)
{
    goal *g = &list[(*n)++];
    snprintf(g->name, sizeof g->name, "%s", name);
    g->target = target;
    return g;
}

void goal_not_run(goal *g)
{
    snprintf(g->measured, sizeof g->measured, "-");
    g->verdict = "not run";
}

void goal_set(goal *g, int ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->measured, sizeof g->measured, fmt, ap);
    va_end(ap);
    g->verdict = verdict(ok);
}

/* ------------------------------------------------------------------ */
/* Markdown                                                            */
/* ------------------------------------------------------------------ */

void md_lat_cells(FILE *f, const lat_summary *l)
{
    fprintf(f, " %.3f | %.3f | %.3f | %.3f | %.3f |", l->p50, l->p90,
            l->p95, l->p99, l->max);
}

void md_machine_rows(FILE *f, const machine *m, const char *label,
                     const char *version, const char *root)
{
    fprintf(f, "| | |\n|---|---|\n");
    fprintf(f, "| date (UTC) | %s |\n", m->date);
    if (label)
        fprintf(f, "| label | %s |\n", label);
    fprintf(f, "| evstore | %s |\n", version);
    fprintf(f, "| bench build | %s |\n", m->build);
    fprintf(f, "| CPU | %s |\n", m->cpu);
    fprintf(f, "| cores (online) | %ld |\n", m->cores);
    fprintf(f, "| RAM | %.1f GiB |\n", m->ram_gib);
    fprintf(f, "| kernel | %s |\n", m->kernel);
    fprintf(f, "| store dir | %s |\n", root);
    fprintf(f, "| filesystem | %s on %s, mounted at %s (%s) |\n", m->fs_type,
            m->disk, m->fs_mount, m->fs_opts);
}

void md_run_rows(FILE *f, const bench_run *run, double setup_s)
{
    fprintf(f, "| total run time | %.1f s", run->total_s);
    if (setup_s >= 0)
        fprintf(f, " (setup %.1f s)", setup_s);
    fprintf(f, " |\n| /proc/loadavg at start / end | %s / %s |\n\n",
            run->load_start, run->load_end);
}

void md_goals(FILE *f, const goal *g, int n)
{
    fprintf(f, "| goal | target | measured | verdict |\n|---|---|---|---|\n");
    for (int i = 0; i < n; i++)
        fprintf(f, "| %s | %s | %s | **%s** |\n", g[i].name, g[i].target,
                g[i].measured, g[i].verdict);
}

void md_level_results(FILE *f, const level_result *a, int n)
{
    char cs[96];
    int batch = n > 0 && a[0].events_per_append > 1;
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
}

void md_level_costs(FILE *f, const level_result *a, int n, const machine *m,
                    const char *intro, const char *sync_ref)
{
    if (intro)
        fprintf(f, "%s", intro);
    else
        fprintf(f,
                "\nWhere the time goes, over the same windows. syncs: "
                "fdatasync/fsync calls the process made; events/sync: mean "
                "group-commit size; sync p50/p99/max: duration of those "
                "calls inside the engine%s; sync busy: "
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
                sync_ref, m->cores, m->cores,
                g_disk_name[0] ? g_disk_name : "unknown");
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

/* ------------------------------------------------------------------ */
/* JSON                                                               */
/* ------------------------------------------------------------------ */

void json_str(FILE *f, const char *s)
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

void json_lat(FILE *f, const lat_summary *l)
{
    fprintf(f,
            "{\"samples\": %zu, \"min_ms\": %.6f, \"p50_ms\": %.6f, "
            "\"p90_ms\": %.6f, \"p95_ms\": %.6f, \"p99_ms\": %.6f, "
            "\"max_ms\": %.6f}",
            l->n, l->min, l->p50, l->p90, l->p95, l->p99, l->max);
}

void json_counts(FILE *f, const op_counts *c)
{
    fprintf(f,
            "{\"attempted\": %llu, \"committed\": %llu, \"rejected\": %llu, "
            "\"conflicts\": %llu, \"errors\": %llu}",
            (unsigned long long)c->attempted,
            (unsigned long long)c->committed,
            (unsigned long long)c->rejected,
            (unsigned long long)c->conflicts, (unsigned long long)c->errors);
}

static void json_machine(FILE *f, const machine *m)
{
    const struct {
        const char *key, *val;
    } strs[] = {{"fs_type", m->fs_type}, {"fs_source", m->fs_source},
                {"disk", m->disk},       {"fs_mount", m->fs_mount},
                {"fs_options", m->fs_opts}, {"build", m->build}};
    fprintf(f, "{\"cpu\": ");
    json_str(f, m->cpu);
    fprintf(f, ", \"cores\": %ld, \"ram_gib\": %.2f, \"kernel\": ", m->cores,
            m->ram_gib);
    json_str(f, m->kernel);
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        fprintf(f, ", \"%s\": ", strs[i].key);
        json_str(f, strs[i].val);
    }
    fprintf(f, "}");
}

static void json_goals(FILE *f, const goal *g, int n, const char *k1,
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

void json_head(FILE *f, const char *bench, const bench_run *run,
               const char *label)
{
    fprintf(f, "{\n  \"benchmark\": \"%s\",\n  \"date\": ", bench);
    json_str(f, run->m.date);
    fprintf(f, ",\n  \"label\": ");
    json_str(f, label ? label : "");
    fprintf(f, ",\n  \"evstore_version\": ");
    json_str(f, run->version);
    fprintf(f, ",\n  \"machine\": ");
    json_machine(f, &run->m);
    fprintf(f, ",\n  \"store_dir\": ");
    json_str(f, run->root);
    fprintf(f, ",\n");
}

void json_tail(FILE *f, const bench_run *run, const goal *goals, int ngoals,
               const char *seeds_key, const goal *seeds, int nseeds,
               const char *k1, const char *k2)
{
    fprintf(f, "  \"goals\": [\n");
    json_goals(f, goals, ngoals, "goal", "target");
    fprintf(f, "  ],\n  \"%s\": [\n", seeds_key);
    json_goals(f, seeds, nseeds, k1, k2);
    fprintf(f, "  ],\n  \"total_s\": %.3f,\n  \"loadavg_start\": ",
            run->total_s);
    json_str(f, run->load_start);
    fprintf(f, ",\n  \"loadavg_end\": ");
    json_str(f, run->load_end);
    fprintf(f, ",\n  \"failed_checks\": %d\n}\n", g_failures);
}

void json_level(FILE *f, const level_result *a)
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

