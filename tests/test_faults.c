/*
 * test_faults.c -- I/O errors on every write path: a failed write never
 * loses an acknowledged event nor acknowledges a lost one.
 *
 * A workload runs in a child process under the LD_PRELOAD shim tests/faultfs
 * (evs_faultfs), which makes the Nth call of one kind (write, fsync,
 * fdatasync, fallocate, ftruncate, rename, create, msync, sync_file_range,
 * mkdir, unlink, or any of them) on the store's files fail with EIO or
 * ENOSPC, once, or from then on (sticky: a dying disk), or as a short write.
 * The workload (1 MiB segments, so segments roll over): create the store,
 * single-thread appends, multi-event appends, a checkpoint moved with an
 * append and with evs_checkpoint_set, a snapshot save, appends from 4
 * threads, close, reopen, more of the same, close. After an append fails
 * with EVS_EIO or EVS_ECLOSED it closes and reopens (the documented
 * remedy). Every acknowledged append and every failed call (code and
 * message) goes to a trace file outside the shim's root, fdatasync'ed.
 *
 * Checks per run:
 *   - the child is never killed by a signal and never hangs (alarm);
 *   - every failed call returned a code its documentation lists for a
 *     failing disk, with a non-empty message: evs_open EVS_EIO/EVS_ENOSPC
 *     (EVS_ECORRUPT is a failure: no fault here damages an acknowledged
 *     record); evs_close EVS_EIO/EVS_ENOSPC; the appends (evs_append,
 *     evs_append_multi, evs_append_ex, evs_checkpoint_set) EVS_EIO,
 *     EVS_ENOSPC, and EVS_ECLOSED only after an append of the same handle
 *     failed with EVS_EIO/EVS_ENOSPC; evs_snapshot_save EVS_ENOSPC,
 *     EVS_EIO or EVS_EBACKEND (its documented list);
 *   - then the parent's child (no shim) opens the store read-write: the
 *     open succeeds, every acknowledged event is in $all at its position
 *     with its stream, version, id and data, no id is stored twice, stream
 *     versions are at least the acknowledged ones, the acknowledged
 *     checkpoint is kept (or moved further by an append whose outcome was
 *     unknown), an acknowledged snapshot loads, evs_verify is clean, an
 *     append gets the next position, and evs_close returns 0.
 *
 * No fault here damages an acknowledged record (a failed or short write
 * of the log only tears the unacknowledged tail), so a refused open is
 * always a failure, EVS_ECORRUPT included.
 *
 * Two test cases: test_faults_fresh (the workload from an empty
 * directory: store creation included) and test_faults_rebuild (from a
 * store of 500 acknowledged events left open "before a reboot", via
 * EVS_DEBUG_BOOT_ID: the first open rebuilds the index under the fault).
 * Each first makes a dry run without a fault to count the calls of each
 * kind, then samples N per kind (every N of the kinds with few calls; the
 * first 8 writes also as short writes; the first, last, middle and random
 * ones of the others; errno, sticky and short chosen at random) within a
 * wall-clock budget. Stores live under /dev/shm when it is writable (the
 * shim makes the faults, the file system does not matter; tmpfs keeps
 * the syncs cheap), else under $TMPDIR.
 *
 * A third case, test_faults_remap, fails each ftruncate of a smaller
 * workload in turn, among them LMDB's own inside a growth of the index's
 * map, which leaves the environment without a map: the appends after it
 * must fail (not crash), and every acknowledged event must be there after
 * a reopen, in the same process and in another.
 *
 * A table of op kind x outcome is printed per case ("not hit": the run
 * made fewer calls of the kind than N; "no error": the fault fired and
 * every call succeeded, e.g. an advisory sync_file_range; "errors ok":
 * calls failed with documented codes and every check held). Variables:
 * EVS_TEST_SEED (the sampling and modes), EVS_FAULT_SECONDS (the budget of
 * both cases together, default 32), EVS_FAULT_ONLY=
 * "kind:N[:EIO|ENOSPC][:sticky][:short]" (one verbose run per case; its
 * directory is kept), EVS_TEST_KEEP=1 (keep failed runs' directories),
 * EVS_FAULT_SELFTEST=1 (a check of the checks: one acknowledged event is
 * changed in the expectations, so every run must fail).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#ifndef EVS_FAULTFS_PATH
#error "EVS_FAULTFS_PATH must name the evs_faultfs shim"
#endif

#define SEG (1u << 20)
#define CHILD_TIMEOUT_S 60
#define CHECK_TIMEOUT_S 60

static char *self_path;

/* ------------------------------------------------------------------ */
/* The workload (in the child, under the shim)                         */
/* ------------------------------------------------------------------ */

static int trace_fd = -1;
static unsigned session; /* 1 + the number of successful opens before */

static void trace(int sync, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void trace(int sync, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    for (int i = 0; i < n; i++)
        if (line[i] == '\n')
            line[i] = ' ';
    line[n++] = '\n';
    if (write(trace_fd, line, (size_t)n) != n)
        _exit(3);
    if (sync && fdatasync(trace_fd) != 0)
        _exit(3);
}

static void trace_err(const char *call, int rc)
{
    const char *m = evs_last_error();
    trace(1, "E %u %s %d %s", session, call, rc, m ? m : "");
}

/* Event data for key k: JSON of 1.5-3.5 KB, checkable. */
static size_t make_data(char *buf, size_t cap, uint64_t k)
{
    size_t pad = 1500 + (size_t)((k * 2654435761u) % 2000);
    size_t n = (size_t)snprintf(buf, cap, "{\"k\":%" PRIu64 ",\"p\":\"", k);
    for (size_t j = 0; j < pad && n + 3 < cap; j++)
        buf[n++] = (char)('a' + (k + j * 7) % 26);
    buf[n++] = '"';
    buf[n++] = '}';
    buf[n] = '\0';
    return n;
}
#define DATA_CAP 4096

static void id_hex(char out[33], const evs_uuid *u)
{
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", u->bytes[i]);
}

typedef struct wl {
    evs_db *db;
    volatile int broken; /* an append failed: stop, close, reopen */
    pthread_mutex_t mu;
} wl;

/* Append n events (keys k0..) to stream; traces acks and errors. */
static int wl_append(wl *w, const char *stream, uint64_t k0, size_t n)
{
    evs_event_data ev[8];
    static __thread char data[8][DATA_CAP];
    for (size_t i = 0; i < n; i++) {
        size_t len = make_data(data[i], DATA_CAP, k0 + i);
        ev[i] = tu_event_id("T", data[i]);
        ev[i].data_len = len;
    }
    evs_append_result r;
    int rc = evs_append(&r, w->db, NULL, stream, EVS_ANY, ev, n);
    if (rc != 0) {
        trace_err(n > 1 ? "append_n" : "append", rc);
        w->broken = 1;
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        char h[33];
        id_hex(h, &ev[i].id);
        trace(i + 1 == n, "A %" PRIu64 " %" PRId64 " %s %s %" PRIu64,
              r.first_position + i, r.first_version + (int64_t)i, stream, h, k0 + i);
    }
    return 0;
}

typedef struct thr {
    wl *w;
    unsigned t, phase, n;
} thr;

static void *thr_main(void *arg)
{
    thr *a = arg;
    char stream[32];
    for (unsigned i = 0; i < a->n && !a->w->broken; i++) {
        snprintf(stream, sizeof(stream), "t%u-%u", a->t, i % 3);
        uint64_t k = ((uint64_t)a->phase << 32) | ((uint64_t)(a->t + 1) << 20) | i;
        if (wl_append(a->w, stream, k, 1 + (i % 4 == 3)) != 0)
            break;
    }
    return NULL;
}

static void on_notice(void *ctx, const char *line)
{
    (void)ctx;
    trace(0, "N %u %s", session + 1, line);
}

static int wl_open(wl *w, const char *dir)
{
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    o.segment_size = SEG;
    o.recovery_notice = on_notice;
    int rc = evs_open(&w->db, dir, &o);
    if (rc != 0) {
        trace_err("open", rc);
        w->db = NULL;
        return rc;
    }
    session++;
    w->broken = 0;
    trace(1, "S %u", session);
    return 0;
}

static void wl_close(wl *w)
{
    int rc = evs_close(w->db);
    w->db = NULL;
    if (rc != 0)
        trace_err("close", rc);
    else
        trace(1, "X %u", session);
}

/* One phase: appends, multi, checkpoint, snapshot, threads. */
static void wl_phase(wl *w, unsigned phase)
{
    char stream[32];
    uint64_t base = (uint64_t)phase << 32;
    for (unsigned i = 0; i < 120 && !w->broken; i++) {
        snprintf(stream, sizeof(stream), "a-%u", i % 5);
        wl_append(w, stream, base + i, 1);
    }
    for (unsigned i = 0; i < 12 && !w->broken; i++) {
        snprintf(stream, sizeof(stream), "m-%u", i % 3);
        wl_append(w, stream, base + 1000 + i * 8, 5);
    }
    if (!w->broken) {
        /* An append that moves checkpoint "proj" to the head. */
        uint64_t head = 0;
        if (evs_head_position(&head, w->db, NULL) == 0) {
            char d[DATA_CAP];
            uint64_t k = base + 2000;
            evs_event_data ev = tu_event_id("T", d);
            ev.data_len = make_data(d, sizeof(d), k);
            evs_stream_append part = {"c-0", EVS_ANY, &ev, 1};
            evs_append_request req = EVS_APPEND_REQUEST_INIT;
            req.parts = &part;
            req.nparts = 1;
            req.checkpoint = "proj";
            req.checkpoint_token = head;
            evs_append_result r;
            int rc = evs_append_ex(&r, NULL, w->db, &req);
            if (rc != 0) {
                trace_err("append_ex", rc);
                w->broken = 1;
            } else {
                char h[33];
                id_hex(h, &ev.id);
                trace(0, "A %" PRIu64 " %" PRId64 " c-0 %s %" PRIu64, r.first_position,
                      r.first_version, h, k);
                trace(1, "C %" PRIu64, head);
            }
        }
    }
    if (!w->broken) {
        uint64_t head = 0;
        if (evs_head_position(&head, w->db, NULL) == 0) {
            int rc = evs_checkpoint_set(w->db, NULL, "proj", head);
            if (rc != 0) {
                trace_err("checkpoint_set", rc);
                if (rc == EVS_EIO || rc == EVS_ECLOSED || rc == EVS_ENOSPC)
                    w->broken = 1;
            } else {
                trace(1, "C %" PRIu64, head);
            }
        }
    }
    if (!w->broken) {
        char snap[600];
        memset(snap, 's', sizeof(snap));
        int rc = evs_snapshot_save(w->db, NULL, "a-0", 0, "S1", snap, sizeof(snap));
        if (rc != 0)
            trace_err("snapshot_save", rc);
        else
            trace(1, "P a-0 0");
    }
    if (!w->broken) {
        pthread_t th[4];
        thr a[4];
        for (unsigned t = 0; t < 4; t++) {
            a[t] = (thr){w, t, phase, 60};
            pthread_create(&th[t], NULL, thr_main, &a[t]);
        }
        for (unsigned t = 0; t < 4; t++)
            pthread_join(th[t], NULL);
    }
}

/* A store whose index cannot be trusted: 500 acknowledged appends, then
 * the process ends without evs_close (the state stays OPEN); the workload
 * then opens it "after a reboot" (EVS_DEBUG_BOOT_ID), so its first open
 * rebuilds the index from the log under the faults. Run without the shim. */
static int seed_main(const char *dir, const char *trace_path)
{
    trace_fd = open(trace_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (trace_fd < 0)
        return 2;
    wl w = {0};
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    o.segment_size = SEG;
    if (evs_open(&w.db, dir, &o) != 0)
        return 2;
    char stream[32];
    for (unsigned i = 0; i < 500; i++) {
        snprintf(stream, sizeof(stream), "r-%u", i % 4);
        if (wl_append(&w, stream, (3ull << 32) | i, 1) != 0)
            return 2;
    }
    _exit(0); /* no evs_close: an unclean stop */
}

/* argv: dir trace */
static int workload_main(const char *dir, const char *trace_path)
{
    trace_fd = open(trace_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (trace_fd < 0)
        return 2;
    wl w = {0};
    unsigned opens = 0, retries = 0;
    for (unsigned phase = 1; phase <= 2;) {
        if (!w.db) {
            if (opens++ >= 5)
                break;
            if (wl_open(&w, dir) != 0)
                continue; /* open again (a transient fault) */
        }
        wl_phase(&w, phase);
        if (w.broken) {
            /* The documented remedy: close and reopen; run the phase
             * again (once). */
            wl_close(&w);
            if (retries++ >= 1)
                phase++;
            continue;
        }
        if (phase == 1)
            wl_close(&w); /* reopen mid-way */
        phase++;
    }
    if (w.db)
        wl_close(&w);
    trace(1, "D");
    close(trace_fd);
    return 0;
}

/* ------------------------------------------------------------------ */
/* The parent: runs and checks                                         */
/* ------------------------------------------------------------------ */

typedef struct ackrec {
    uint64_t pos;
    int64_t ver;
    char stream[32];
    char id[33];
    uint64_t k;
} ackrec;

typedef struct run {
    char tmp[PATH_MAX - 64], root[PATH_MAX - 32], dir[PATH_MAX], trace[PATH_MAX],
        flog[PATH_MAX], counts[PATH_MAX], report[PATH_MAX];
    const char *kind;
    uint64_t at;
    int eno; /* EIO or ENOSPC */
    int sticky, shortw;
    int verbose;
    int rebuild; /* start from seed_main's store, "after a reboot" */
} run;

enum { O_NOFAULT, O_CLEAN, O_ERRORS, O_FAIL, O_NOUT };
static const char *const out_names[O_NOUT] = {"not hit", "no error", "errors ok",
                                              "FAIL"};

static const char *const kinds[] = {"write", "fsync", "fdatasync", "fallocate",
                                    "ftruncate", "rename", "create", "msync",
                                    "sync_file_range", "mkdir", "unlink", "any"};
#define NKINDS (sizeof kinds / sizeof kinds[0])

static int kind_index(const char *k)
{
    for (size_t i = 0; i < NKINDS; i++)
        if (strcmp(kinds[i], k) == 0)
            return (int)i;
    return -1;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (len)
            *len = 0;
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    size_t r;
    while ((r = fread(b + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n < 2)
            b = realloc(b, cap *= 2);
    }
    b[n] = '\0';
    fclose(f);
    if (len)
        *len = n;
    return b;
}

static int run_setup(run *r)
{
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    snprintf(r->tmp, sizeof(r->tmp), "%s/evs-faults-XXXXXX", base);
    if (!mkdtemp(r->tmp))
        return -1;
    char *rp = realpath(r->tmp, NULL);
    snprintf(r->tmp, sizeof(r->tmp), "%s", rp);
    free(rp);
    snprintf(r->root, sizeof(r->root), "%s/root", r->tmp);
    if (mkdir(r->root, 0755) != 0)
        return -1;
    snprintf(r->dir, sizeof(r->dir), "%s/db", r->root);
    snprintf(r->trace, sizeof(r->trace), "%s/trace", r->tmp);
    snprintf(r->flog, sizeof(r->flog), "%s/faults", r->tmp);
    snprintf(r->counts, sizeof(r->counts), "%s/counts", r->tmp);
    snprintf(r->report, sizeof(r->report), "%s/report", r->tmp);
    return 0;
}

/* fork, the child with the default crash-signal handlers (cmocka's would
 * run the test's cleanup inside the child): a crash is then a signal the
 * parent sees. */
static pid_t fork_child(void)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGALRM};
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
            signal(sigs[i], SIG_DFL);
    }
    return pid;
}

/* Run the workload under the shim; the wait status. */
static int run_workload(run *r)
{
    pid_t pid = fork_child();
    if (pid == 0) {
        char at[32];
        snprintf(at, sizeof(at), "%" PRIu64, r->at);
        setenv("LD_PRELOAD", EVS_FAULTFS_PATH, 1);
        setenv("EVS_FAULT_ROOT", r->root, 1);
        setenv("EVS_FAULT_LOG", r->flog, 1);
        setenv("EVS_FAULT_COUNTS", r->counts, 1);
        if (r->kind) {
            setenv("EVS_FAULT_OP", r->kind, 1);
            setenv("EVS_FAULT_AT", at, 1);
            setenv("EVS_FAULT_ERRNO", r->eno == ENOSPC ? "ENOSPC" : "EIO", 1);
            setenv("EVS_FAULT_STICKY", r->sticky ? "1" : "0", 1);
            setenv("EVS_FAULT_SHORT", r->shortw ? "1" : "0", 1);
        } else {
            unsetenv("EVS_FAULT_OP");
        }
        if (r->verbose)
            setenv("EVS_FAULT_VERBOSE", "1", 1);
        const char *ao = getenv("ASAN_OPTIONS");
        char abuf[1024];
        snprintf(abuf, sizeof(abuf), "%s%sverify_asan_link_order=0", ao ? ao : "",
                 ao && *ao ? ":" : "");
        setenv("ASAN_OPTIONS", abuf, 1);
        if (r->rebuild)
            setenv("EVS_DEBUG_BOOT_ID", "6c3f0a4e-1b2c-4d5e-8f70-0123456789ab", 1);
        alarm(CHILD_TIMEOUT_S); /* kept across exec */
        execl(self_path, self_path, "--workload", r->dir, r->trace, (char *)NULL);
        _exit(127);
    }
    int st = -1;
    while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return pid > 0 ? st : -1;
}

/* Counts of the dry run: kind -> calls. */
static uint64_t counts_of(const char *path, const char *kind)
{
    char *b = slurp(path, NULL);
    uint64_t v = 0;
    if (!b)
        return 0;
    for (char *l = strtok(b, "\n"); l; l = strtok(NULL, "\n")) {
        char k[64];
        unsigned long long n;
        if (sscanf(l, "%63s %llu", k, &n) == 2 && strcmp(k, kind) == 0)
            v = n;
    }
    free(b);
    return v;
}

/* Problems of one run, appended into a buffer. */
typedef struct probs {
    char text[8192];
    size_t n;
    unsigned count;
} probs;

static void prob(probs *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void prob(probs *p, const char *fmt, ...)
{
    p->count++;
    if (p->n + 200 >= sizeof(p->text))
        return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(p->text + p->n, sizeof(p->text) - p->n - 2, fmt, ap);
    va_end(ap);
    if (k > 0) {
        p->n += (size_t)k;
        if (p->n > sizeof(p->text) - 3)
            p->n = sizeof(p->text) - 3;
        p->text[p->n++] = '\n';
        p->text[p->n] = '\0';
    }
}

/* The codes each call may return under a failing disk. */
static int code_ok(const char *call, int rc, int session_failed)
{
    if (strcmp(call, "open") == 0)
        return rc == EVS_EIO || rc == EVS_ENOSPC;
    if (strcmp(call, "close") == 0)
        return rc == EVS_EIO || rc == EVS_ENOSPC;
    if (strcmp(call, "snapshot_save") == 0)
        return rc == EVS_ENOSPC || rc == EVS_EIO || rc == EVS_EBACKEND;
    /* append, append_n, append_ex, checkpoint_set */
    if (rc == EVS_EIO || rc == EVS_ENOSPC)
        return 1;
    return rc == EVS_ECLOSED && session_failed;
}

typedef struct parsed {
    ackrec *acks;
    size_t nacks, cap;
    uint64_t ckpt; /* acknowledged checkpoint token (0: none) */
    int ckpt_acked, snap_acked, done, errors;
} parsed;

static void parse_trace(run *r, parsed *pa, probs *p)
{
    char *b = slurp(r->trace, NULL);
    memset(pa, 0, sizeof(*pa));
    if (!b)
        return;
    /* ECLOSED is allowed when an append of the same session failed with
     * EVS_EIO/EVS_ENOSPC (anywhere in the session: threads race). */
    unsigned failed_sessions[64] = {0};
    for (char *l = b; *l;) {
        char *e = strchr(l, '\n');
        if (e)
            *e = '\0';
        unsigned s;
        char call[32];
        int rc, off = 0;
        if (sscanf(l, "E %u %31s %d %n", &s, call, &rc, &off) == 3 &&
            strcmp(call, "open") && strcmp(call, "close") &&
            strcmp(call, "snapshot_save") && (rc == EVS_EIO || rc == EVS_ENOSPC) &&
            s < 64)
            failed_sessions[s] = 1;
        if (!e)
            break;
        *e = '\n';
        l = e + 1;
    }
    for (char *l = strtok(b, "\n"); l; l = strtok(NULL, "\n")) {
        if (l[0] == 'A') {
            ackrec a;
            unsigned long long pos, k;
            long long ver;
            if (sscanf(l, "A %llu %lld %31s %32s %llu", &pos, &ver, a.stream, a.id, &k) != 5) {
                prob(p, "bad trace line: %s", l);
                continue;
            }
            a.pos = pos;
            a.ver = ver;
            a.k = k;
            if (pa->nacks == pa->cap)
                pa->acks = realloc(pa->acks, (pa->cap = pa->cap ? 2 * pa->cap : 256) *
                                                 sizeof(ackrec));
            pa->acks[pa->nacks++] = a;
        } else if (l[0] == 'C') {
            unsigned long long t;
            if (sscanf(l, "C %llu", &t) == 1 && t >= pa->ckpt) {
                pa->ckpt = t;
                pa->ckpt_acked = 1;
            }
        } else if (l[0] == 'P') {
            pa->snap_acked = 1;
        } else if (l[0] == 'D') {
            pa->done = 1;
        } else if (l[0] == 'E') {
            unsigned s;
            char call[32];
            int rc, off = 0;
            pa->errors++;
            if (sscanf(l, "E %u %31s %d %n", &s, call, &rc, &off) < 3) {
                prob(p, "bad trace line: %s", l);
                continue;
            }
            const char *msg = off > 0 ? l + off : "";
            if (!code_ok(call, rc, s < 64 && failed_sessions[s]))
                prob(p, "evs_%s returned %s (%d), not a documented code for an I/O "
                        "failure: \"%s\"", call, tu_errname(rc), rc, msg);
            if (!msg[0])
                prob(p, "evs_%s returned %s with an empty message", call, tu_errname(rc));
        }
    }
    free(b);
}

static int hexval(char c)
{
    return c <= '9' ? c - '0' : c - 'a' + 10;
}

/* The check, in a forked child without the shim; problems into the
 * report file. */
static int check_child(run *r, parsed *pa)
{
    probs p = {0};
    evs_db *db = NULL;
    /* A check of the checks: one acknowledged event's data changed. */
    if (getenv("EVS_FAULT_SELFTEST") && pa->nacks)
        pa->acks[pa->nacks / 2].k++;
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    o.segment_size = SEG;
    int rc = evs_open(&db, r->dir, &o);
    if (rc != 0) {
        prob(&p, "reopen without faults failed: %s (%d): %s", tu_errname(rc), rc,
             evs_last_error());
        goto out;
    }
    tu_events all = {0};
    rc = tu_read_all(&all, db, NULL, 1, 0);
    if (rc != 0)
        prob(&p, "read $all: %s: %s", tu_errname(rc), evs_last_error());
    /* $all hides system streams: index by position. */
    uint64_t maxpos = 0;
    for (size_t i = 0; i < all.n; i++)
        if (all.v[i].position > maxpos)
            maxpos = all.v[i].position;
    tu_event_copy **bypos = calloc(maxpos + 2, sizeof(*bypos));
    for (size_t i = 0; i < all.n; i++)
        bypos[all.v[i].position] = &all.v[i];
    /* no id twice */
    for (size_t i = 1; i < all.n; i++)
        if (all.v[i].position <= all.v[i - 1].position)
            prob(&p, "$all out of order at position %" PRIu64, all.v[i].position);
    unsigned lost = 0;
    for (size_t i = 0; i < pa->nacks; i++) {
        const ackrec *a = &pa->acks[i];
        tu_event_copy *e = a->pos <= maxpos ? bypos[a->pos] : NULL;
        if (!e) {
            if (lost++ < 5)
                prob(&p, "acknowledged event at position %" PRIu64 " (stream %s v%" PRId64
                         ") is missing (head %" PRIu64 ")", a->pos, a->stream, a->ver, maxpos);
            continue;
        }
        evs_uuid id;
        for (int j = 0; j < 16; j++)
            id.bytes[j] = (uint8_t)(hexval(a->id[2 * j]) << 4 | hexval(a->id[2 * j + 1]));
        char data[DATA_CAP];
        size_t dl = make_data(data, sizeof(data), a->k);
        if (strcmp(e->stream, a->stream) || e->stream_version != a->ver ||
            !tu_uuid_eq(&e->id, &id) || e->data_len != dl || memcmp(e->data, data, dl)) {
            if (lost++ < 5)
                prob(&p, "acknowledged event at position %" PRIu64 " differs: stored %s v%" PRId64
                         " (%zu bytes), acknowledged %s v%" PRId64 " (%zu bytes)%s", a->pos,
                     e->stream, e->stream_version, e->data_len, a->stream, a->ver, dl,
                     tu_uuid_eq(&e->id, &id) ? "" : ", other id");
        }
    }
    if (lost > 5)
        prob(&p, "... %u acknowledged events lost or changed in all", lost);
    /* ids unique */
    for (size_t i = 0; i < all.n; i++)
        for (size_t j = i + 1; j < all.n && j < i + 64; j++)
            if (tu_uuid_eq(&all.v[i].id, &all.v[j].id))
                prob(&p, "event id stored twice: positions %" PRIu64 " and %" PRIu64,
                     all.v[i].position, all.v[j].position);
    free(bypos);
    tu_events_free(&all);
    if (pa->ckpt_acked) {
        uint64_t t = 0;
        rc = evs_checkpoint_get(&t, db, NULL, "proj");
        if (rc != 0 || t < pa->ckpt)
            prob(&p, "checkpoint proj: rc %s, token %" PRIu64 ", acknowledged %" PRIu64,
                 tu_errname(rc), t, pa->ckpt);
    }
    if (pa->snap_acked) {
        evs_snapshot *sn = NULL;
        rc = evs_snapshot_load(&sn, db, NULL, "a-0", EVS_END);
        if (rc != 0)
            prob(&p, "acknowledged snapshot of a-0 does not load: %s: %s", tu_errname(rc),
                 evs_last_error());
        evs_snapshot_free(sn);
    }
    char vmsg[512] = "";
    uint64_t checked = 0;
    rc = evs_verify(&checked, db, NULL, NULL);
    if (rc != 0) {
        snprintf(vmsg, sizeof(vmsg), "%s", evs_last_error());
        prob(&p, "evs_verify: %s: %s", tu_errname(rc), vmsg);
    }
    uint64_t head = 0;
    evs_head_position(&head, db, NULL);
    evs_event_data ev = tu_event_id("After", "{}");
    evs_append_result ar;
    rc = evs_append(&ar, db, NULL, "after-fault", EVS_ANY, &ev, 1);
    if (rc != 0)
        prob(&p, "append after reopen: %s: %s", tu_errname(rc), evs_last_error());
    else if (ar.first_position != head + 1)
        prob(&p, "append after reopen got position %" PRIu64 ", head was %" PRIu64,
             ar.first_position, head);
    rc = evs_close(db);
    if (rc != 0)
        prob(&p, "close after check: %s: %s", tu_errname(rc), evs_last_error());
out:;
    FILE *f = fopen(r->report, "w");
    if (f) {
        fputs(p.text, f);
        fclose(f);
    }
    return p.count ? 1 : 0;
}

/* One run; returns the outcome, problems appended into p. */
static int one_run(run *r, probs *p, uint64_t *counted)
{
    if (r->rebuild) {
        fflush(stdout);
        fflush(stderr);
        pid_t sp = fork();
        if (sp == 0) {
            alarm(CHILD_TIMEOUT_S);
            _exit(seed_main(r->dir, r->trace));
        }
        int sst = -1;
        while (sp > 0 && waitpid(sp, &sst, 0) < 0 && errno == EINTR)
            ;
        if (sp < 0 || !WIFEXITED(sst) || WEXITSTATUS(sst) != 0) {
            prob(p, "could not make the store to rebuild");
            return O_FAIL;
        }
    }
    int st = run_workload(r);
    if (st < 0) {
        prob(p, "could not run the workload");
        return O_FAIL;
    }
    if (WIFSIGNALED(st)) {
        prob(p, "the workload was killed by signal %d (%s)%s", WTERMSIG(st),
             strsignal(WTERMSIG(st)), WTERMSIG(st) == SIGALRM ? ": it hung" : "");
    } else if (WEXITSTATUS(st) != 0) {
        prob(p, "the workload exited %d", WEXITSTATUS(st));
    }
    if (counted && r->kind == NULL) {
        for (size_t i = 0; i < NKINDS; i++)
            counted[i] = counts_of(r->counts, kinds[i]);
    }
    parsed pa;
    parse_trace(r, &pa, p);
    if (!pa.done && !WIFSIGNALED(st))
        prob(p, "the workload did not finish");
    pid_t pid = fork_child();
    if (pid == 0) {
        alarm(CHECK_TIMEOUT_S);
        _exit(check_child(r, &pa));
    }
    int cst = -1;
    while (pid > 0 && waitpid(pid, &cst, 0) < 0 && errno == EINTR)
        ;
    if (pid < 0 || WIFSIGNALED(cst))
        prob(p, "the check (reopen without faults) was killed by signal %d%s",
             pid < 0 ? -1 : WTERMSIG(cst),
             pid > 0 && WTERMSIG(cst) == SIGALRM ? ": it hung" : "");
    else if (WEXITSTATUS(cst) != 0) {
        char *rep = slurp(r->report, NULL);
        if (rep) {
            for (char *l = strtok(rep, "\n"); l; l = strtok(NULL, "\n"))
                prob(p, "%s", l);
            free(rep);
        } else {
            prob(p, "the check exited %d", WEXITSTATUS(cst));
        }
    }
    size_t fl = 0;
    char *fired = slurp(r->flog, &fl);
    free(fired);
    free(pa.acks);
    if (p->count)
        return O_FAIL;
    if (fl == 0)
        return O_NOFAULT;
    return pa.errors ? O_ERRORS : O_CLEAN;
}

static void run_cleanup(run *r, int keep)
{
    if (!keep)
        tu_rmrf(r->tmp);
}

/* ------------------------------------------------------------------ */
/* The test                                                            */
/* ------------------------------------------------------------------ */

typedef struct failure {
    char desc[160];
    char first[1200];
} failure;

static void describe(char *d, size_t n, const run *r)
{
    snprintf(d, n, "%s:%" PRIu64 ":%s%s%s", r->kind, r->at,
             r->eno == ENOSPC ? "ENOSPC" : "EIO", r->sticky ? ":sticky" : "",
             r->shortw ? ":short" : "");
}

static void campaign(int rebuild, double share)
{
    uint64_t seed = tu_seed(rebuild ? "test_faults_rebuild" : "test_faults_fresh");
    tu_rng rng;
    tu_rng_init(&rng, seed);
    const char *keepv = getenv("EVS_TEST_KEEP");
    int keep = keepv && strcmp(keepv, "1") == 0;
    const char *sv = getenv("EVS_FAULT_SECONDS");
    double budget = (sv ? atof(sv) : 32.0) * share;
    const char *only = getenv("EVS_FAULT_ONLY");

    unsigned table[NKINDS][O_NOUT];
    memset(table, 0, sizeof(table));
    failure fails[64];
    unsigned nfails = 0, nruns = 0, total_fail = 0;

    if (only && *only) {
        run r = {0};
        char kbuf[64] = "";
        unsigned long long at = 1;
        char rest[128] = "";
        sscanf(only, "%63[^:]:%llu%127s", kbuf, &at, rest);
        assert_true(kind_index(kbuf) >= 0);
        assert_int_equal(run_setup(&r), 0);
        r.kind = kinds[kind_index(kbuf)];
        r.at = at;
        r.eno = strstr(rest, "ENOSPC") ? ENOSPC : EIO;
        r.sticky = strstr(rest, "sticky") != NULL;
        r.shortw = strstr(rest, "short") != NULL;
        r.verbose = 1;
        r.rebuild = rebuild;
        probs p = {0};
        int oc = one_run(&r, &p, NULL);
        char d[160];
        describe(d, sizeof(d), &r);
        print_message("%s: %s (store kept in %s)\n%s", d, out_names[oc], r.tmp, p.text);
        char *tr = slurp(r.trace, NULL);
        if (tr) {
            /* errors only */
            for (char *l = strtok(tr, "\n"); l; l = strtok(NULL, "\n"))
                if (l[0] == 'E' || l[0] == 'S' || l[0] == 'X' || l[0] == 'N')
                    print_message("  trace: %s\n", l);
            free(tr);
        }
        assert_int_not_equal(oc, O_FAIL);
        return;
    }

    /* Dry run: how many calls of each kind the workload makes. */
    uint64_t counted[NKINDS] = {0};
    int64_t t0 = tu_now_us();
    {
        run r = {0};
        assert_int_equal(run_setup(&r), 0);
        r.rebuild = rebuild;
        probs p = {0};
        int oc = one_run(&r, &p, counted);
        if (oc == O_FAIL)
            print_error("dry run (no fault) failed:\n%s", p.text);
        assert_int_not_equal(oc, O_FAIL);
        run_cleanup(&r, 0);
    }
    double dry_s = (double)(tu_now_us() - t0) / 1e6;
    print_message("%s: dry run: %.2f s; calls under the store:",
                  rebuild ? "index rebuilt at the first open" : "fresh store", dry_s);
    for (size_t i = 0; i < NKINDS; i++)
        print_message(" %s=%" PRIu64, kinds[i], counted[i]);
    print_message("\n");

    /* The plan: per kind, the first calls, the last ones, and samples. */
    typedef struct planned {
        int kind;
        uint64_t at;
        int shortw; /* -1: chosen at random (write and any only) */
    } planned;
    static planned plan[8192];
    size_t nplan = 0;
    /* First (never cut by the budget): the first writes create the index
     * and snapshot environments and the state and notify files; each as a
     * short write. */
    for (uint64_t n = 1; n <= 8 && n <= counted[0]; n++)
        plan[nplan++] = (planned){0, n, 1};
    size_t nfixed = nplan;
    unsigned budget_runs = (unsigned)(budget / (dry_s > 0.02 ? dry_s * 0.8 : 0.016));
    if (budget_runs < 24)
        budget_runs = 24;
    if (budget_runs > 4000)
        budget_runs = 4000;
    /* Every call of the kinds with few calls; the rest of the budget
     * shared by the others. */
    size_t active_kinds = 0;
    for (size_t i = 0; i < NKINDS; i++)
        active_kinds += counted[i] > 0;
    uint64_t alloc[NKINDS] = {0};
    unsigned base = active_kinds ? budget_runs / (unsigned)active_kinds : 0, used = 0,
             big = 0;
    for (size_t i = 0; i < NKINDS; i++) {
        alloc[i] = counted[i] < base ? counted[i] : base;
        used += (unsigned)alloc[i];
        big += counted[i] > base;
    }
    for (size_t i = 0; i < NKINDS && big; i++)
        if (counted[i] > base) {
            alloc[i] += (budget_runs - used) / big;
            if (alloc[i] > counted[i])
                alloc[i] = counted[i];
        }
    for (size_t i = 0; i < NKINDS; i++) {
        uint64_t c = counted[i];
        if (!c)
            continue;
        /* Calls vary with thread timing: the last ones may not happen. */
        uint64_t fixed[] = {1, 2, 3, c, c > 1 ? c - 1 : 1, c / 2 + 1};
        uint64_t chosen[1024];
        size_t nch = 0;
        uint64_t per_kind = alloc[i] < 1024 ? alloc[i] : 1024;
        for (size_t j = 0; j < sizeof fixed / sizeof fixed[0] && nch < per_kind; j++) {
            int dup = 0;
            for (size_t q = 0; q < nch; q++)
                dup |= chosen[q] == fixed[j];
            if (!dup && fixed[j] >= 1 && fixed[j] <= c)
                chosen[nch++] = fixed[j];
        }
        unsigned tries = 0;
        while (nch < per_kind && nch < c && nch < 1024 && tries++ < 10000) {
            uint64_t v = tu_rng_range(&rng, 1, c);
            int dup = 0;
            for (size_t q = 0; q < nch; q++)
                dup |= chosen[q] == v;
            if (!dup)
                chosen[nch++] = v;
        }
        for (size_t q = 0; q < nch && nplan < 8192; q++)
            plan[nplan++] = (planned){(int)i, chosen[q], -1};
    }

    /* Shuffle so that a budget cut leaves every kind sampled. */
    for (size_t i = nplan; i > nfixed + 1; i--) {
        size_t j = (size_t)tu_rng_range(&rng, nfixed, i - 1);
        planned t = plan[i - 1];
        plan[i - 1] = plan[j];
        plan[j] = t;
    }
    print_message("plan: %zu runs (budget %.0f s, seed %" PRIu64 ")\n", nplan, budget, seed);

    int64_t start = tu_now_us();
    for (size_t i = 0; i < nplan; i++) {
        if ((double)(tu_now_us() - start) / 1e6 > budget) {
            print_message("budget reached after %zu of %zu runs\n", i, nplan);
            break;
        }
        run r = {0};
        assert_int_equal(run_setup(&r), 0);
        r.kind = kinds[plan[i].kind];
        r.at = plan[i].at;
        r.rebuild = rebuild;
        r.eno = tu_rng_range(&rng, 0, 9) < 3 ? ENOSPC : EIO;
        r.sticky = tu_rng_range(&rng, 0, 3) == 0;
        r.shortw = plan[i].shortw >= 0 ? plan[i].shortw
                   : (plan[i].kind == 0 || plan[i].kind == (int)NKINDS - 1) &&
                         tu_rng_range(&rng, 0, 2) == 0;
        probs p = {0};
        int oc = one_run(&r, &p, NULL);
        nruns++;
        table[plan[i].kind][oc]++;
        if (oc == O_FAIL) {
            total_fail++;
            if (nfails < 64) {
                describe(fails[nfails].desc, sizeof(fails[nfails].desc), &r);
                char *fl = slurp(r.flog, NULL);
                char fired[300] = "";
                if (fl) {
                    char *nl = strchr(fl, '\n');
                    if (nl)
                        *nl = '\0';
                    snprintf(fired, sizeof(fired), "%s", fl);
                    free(fl);
                }
                snprintf(fails[nfails].first, sizeof(fails[nfails].first),
                         "first fault: %s\n%.900s", fired, p.text);
                nfails++;
            }
        }
        run_cleanup(&r, keep && oc == O_FAIL);
    }
    double el = (double)(tu_now_us() - start) / 1e6;
    print_message("%u runs in %.1f s\n", nruns, el);
    print_message("%-16s %8s %8s %10s %6s\n", "op kind", out_names[0], out_names[1],
                  out_names[2], out_names[3]);
    for (size_t i = 0; i < NKINDS; i++) {
        if (!counted[i])
            continue;
        print_message("%-16s %8u %8u %10u %6u\n", kinds[i], table[i][0], table[i][1],
                      table[i][2], table[i][3]);
    }
    for (unsigned i = 0; i < nfails; i++)
        print_error("FAILED %s (replay: EVS_FAULT_ONLY=%s)\n%s", fails[i].desc,
                    fails[i].desc, fails[i].first);
    if (total_fail)
        print_error("%u of %u runs failed (seed %" PRIu64 ")\n", total_fail, nruns, seed);
    assert_int_equal(total_fail, 0);
}

/* The workload from an empty directory: creating the store, appends,
 * rollovers, checkpoint, snapshot, close, reopen. */
static void test_faults_fresh(void **state)
{
    (void)state;
    TU_EMBEDDED_ONLY("faults of the embedded store's files");
    campaign(0, 0.55);
}

/* The same from a store left open "before a reboot": the first open
 * rebuilds the index from the log under the faults. */
static void test_faults_rebuild(void **state)
{
    (void)state;
    TU_EMBEDDED_ONLY("faults of the embedded store's files");
    campaign(1, 0.45);
}

/* ------------------------------------------------------------------ */
/* A failed remap of the index's map                                   */
/* ------------------------------------------------------------------ */

/*
 * The writer grows the index's map (index.c, "The map"): it extends
 * data.mdb with ftruncate, then LMDB unmaps the old map, calls ftruncate
 * itself and maps the new size. When LMDB's ftruncate fails (the N-th
 * ftruncate of the run, N sampled over all of them, so the pre-check's
 * and LMDB's own are both hit), the environment is left without a map:
 * the append gets an error, and the next append must get one too (it
 * crashed in mdb_env_info before), and close must not crash. Then an open
 * without the shim finds every acknowledged event. A 256 KiB first map
 * (EVS_DEBUG_INDEX_MAP_MIN) makes 6,000 events grow it several times.
 */
#define REMAP_BATCH 100
#define REMAP_BATCHES 60

/* Append batch b (events k = b * REMAP_BATCH ..): 0 or the error code. */
static int remap_append(evs_db *db, unsigned b, evs_append_result *r)
{
    static evs_event_data ev[REMAP_BATCH];
    static char data[REMAP_BATCH][32], tags[REMAP_BATCH][4][24];
    static const char *tp[REMAP_BATCH][4];
    static const unsigned mod[] = {7, 101, 1009, 100003};
    for (unsigned i = 0; i < REMAP_BATCH; i++) {
        uint64_t k = (uint64_t)b * REMAP_BATCH + i;
        snprintf(data[i], sizeof(data[i]), "{\"k\":%" PRIu64 "}", k);
        ev[i] = tu_event("T", data[i]);
        for (int j = 0; j < 4; j++) {
            snprintf(tags[i][j], sizeof(tags[i][j]), "%c:%u", 'a' + j,
                     (unsigned)(k % mod[j]));
            tp[i][j] = tags[i][j];
        }
        ev[i].tags = tp[i];
        ev[i].ntags = 4;
    }
    char stream[32];
    snprintf(stream, sizeof(stream), "m-%u", b % 8);
    return evs_append(r, db, NULL, stream, EVS_ANY, ev, REMAP_BATCH);
}

/* A failed call's trace line; *lost: a remap left an environment
 * without a map (evs_close then keeps it: remap_main). */
static void remap_note(int fd, char tag, int rc, int *lost)
{
    dprintf(fd, "%c %d %s\n", tag, rc, evs_last_error());
    if (strstr(evs_last_error(), "remapping the index"))
        *lost = 1;
}

/* The child, under the shim. Trace lines: "O rc msg" evs_open failed;
 * "P rc msg" the reopen after close or its append failed;
 * "A first last b" an acknowledged append of batch b; "E rc msg" a failed
 * one; "F rc msg" the append after it when it
 * failed too (then the child stops appending); "C rc" evs_close. */
static int remap_main(const char *dir, const char *trace_path)
{
    int fd = open(trace_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return 2;
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    o.segment_size = SEG;
    evs_db *db;
    int rc = evs_open(&db, dir, &o), lost = 0;
    if (rc != 0) {
        remap_note(fd, 'O', rc, &lost);
        close(fd);
        if (lost)
            _exit(0); /* see the end */
        return 0;
    }
    for (unsigned b = 0; b < REMAP_BATCHES; b++) {
        evs_append_result r;
        if ((rc = remap_append(db, b, &r)) == 0) {
            dprintf(fd, "A %" PRIu64 " %" PRIu64 " %u\n", r.first_position,
                    r.last_position, b);
            continue;
        }
        remap_note(fd, 'E', rc, &lost);
        /* the next append: an error or an acknowledgement, never a crash */
        if ((rc = remap_append(db, ++b, &r)) == 0) {
            dprintf(fd, "A %" PRIu64 " %" PRIu64 " %u\n", r.first_position,
                    r.last_position, b);
            continue;
        }
        remap_note(fd, 'F', rc, &lost);
        break;
    }
    dprintf(fd, "C %d\n", evs_close(db));
    /* the documented remedy, in this process (which may keep an
     * environment left without a map): reopen, append */
    if ((rc = evs_open(&db, dir, &o)) != 0) {
        remap_note(fd, 'P', rc, &lost);
    } else {
        evs_append_result r;
        if ((rc = remap_append(db, REMAP_BATCHES + 1, &r)) == 0)
            dprintf(fd, "A %" PRIu64 " %" PRIu64 " %u\n", r.first_position,
                    r.last_position, REMAP_BATCHES + 1);
        else
            remap_note(fd, 'P', rc, &lost);
        dprintf(fd, "C %d\n", evs_close(db));
    }
    close(fd);
    /* evs_close leaves an environment without a map alone, on purpose
     * (store.c): no leak check (LeakSanitizer's runs at exit) then */
    if (lost)
        _exit(0);
    return 0;
}

/* Run remap_main under the shim, ftruncate number at failing (0: none);
 * the wait status. */
static int remap_run(run *r, uint64_t at)
{
    pid_t pid = fork_child();
    if (pid == 0) {
        char a[32];
        snprintf(a, sizeof(a), "%" PRIu64, at);
        setenv("LD_PRELOAD", EVS_FAULTFS_PATH, 1);
        setenv("EVS_FAULT_ROOT", r->root, 1);
        setenv("EVS_FAULT_LOG", r->flog, 1);
        setenv("EVS_FAULT_COUNTS", r->counts, 1);
        if (at) {
            setenv("EVS_FAULT_OP", "ftruncate", 1);
            setenv("EVS_FAULT_AT", a, 1);
            setenv("EVS_FAULT_ERRNO", "ENOSPC", 1);
            setenv("EVS_FAULT_STICKY", "0", 1);
            setenv("EVS_FAULT_SHORT", "0", 1);
        } else {
            unsetenv("EVS_FAULT_OP");
        }
        setenv("EVS_DEBUG_INDEX_MAP_MIN", "262144", 1);
        const char *ao = getenv("ASAN_OPTIONS");
        char abuf[1024];
        snprintf(abuf, sizeof(abuf), "%s%sverify_asan_link_order=0", ao ? ao : "",
                 ao && *ao ? ":" : "");
        setenv("ASAN_OPTIONS", abuf, 1);
        alarm(CHILD_TIMEOUT_S);
        execl(self_path, self_path, "--remap", r->dir, r->trace, (char *)NULL);
        _exit(127);
    }
    int st = -1;
    while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return pid > 0 ? st : -1;
}

/* Check one run: the child's trace, then the store opened without the
 * shim. Returns the number of problems (printed); *remap_hit: the run's
 * failed append was LMDB's remap failing. */
static unsigned remap_check(run *r, uint64_t at, int st, int *remap_hit)
{
    unsigned bad = 0;
    uint64_t acked = 0;
    uint64_t kat[(REMAP_BATCHES + 2) * REMAP_BATCH + 1]; /* position -> k + 1; 0: not acked */
    memset(kat, 0, sizeof(kat));
    int closed = 0, failed = 0;
    *remap_hit = 0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        print_error("ftruncate %" PRIu64 ": the child %s %d\n", at,
                    WIFSIGNALED(st) ? "was killed by signal" : "exited with",
                    WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
        bad++;
    }
    char *tr = slurp(r->trace, NULL);
    for (char *l = tr ? strtok(tr, "\n") : NULL; l; l = strtok(NULL, "\n")) {
        unsigned long long a, b;
        unsigned batch;
        int rc;
        char msg[1024] = "";
        if (sscanf(l, "A %llu %llu %u", &a, &b, &batch) == 3) {
            if (b > acked)
                acked = b;
            for (uint64_t p = a; p <= b && p < sizeof(kat) / sizeof(kat[0]); p++)
                kat[p] = (uint64_t)batch * REMAP_BATCH + (p - a) + 1;
        } else if (sscanf(l, "E %d %1023[^\n]", &rc, msg) >= 1) {
            failed = 1;
            if (strstr(msg, "remapping the index"))
                *remap_hit = 1;
            if (rc >= 0 || !msg[0]) {
                print_error("ftruncate %" PRIu64 ": append failed with %d, message "
                            "\"%s\"\n", at, rc, msg);
                bad++;
            }
        } else if (sscanf(l, "F %d %1023[^\n]", &rc, msg) >= 1) {
            if (rc >= 0 || !msg[0]) {
                print_error("ftruncate %" PRIu64 ": the next append returned %d, "
                            "message \"%s\"\n", at, rc, msg);
                bad++;
            }
        } else if (sscanf(l, "P %d %1023[^\n]", &rc, msg) >= 1 && failed) {
            /* (a fault that fires in the reopen itself may fail it) */
            print_error("ftruncate %" PRIu64 ": reopened in the same process: %d %s\n",
                        at, rc, msg);
            bad++;
        } else if (l[0] == 'C' || (sscanf(l, "O %d %1023[^\n]", &rc, msg) == 2 &&
                                    rc < 0)) {
            closed = 1; /* a failed open is a documented outcome */
        }
    }
    free(tr);
    if (!closed && !bad) {
        print_error("ftruncate %" PRIu64 ": the child did not reach evs_close\n", at);
        bad++;
    }
    /* every acknowledged event, opened without the shim */
    evs_db *db;
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    o.segment_size = SEG;
    int rc = evs_open(&db, r->dir, &o);
    if (rc != 0) {
        print_error("ftruncate %" PRIu64 ": reopen: %s: %s\n", at, tu_errname(rc),
                    evs_last_error());
        return bad + 1;
    }
    evs_iter *it;
    const evs_event *ev;
    uint64_t n = 0;
    char want[32];
    if ((rc = evs_read_all(&it, db, NULL, 0, 0)) == 0) {
        while (n < acked && (rc = evs_iter_next(&ev, it)) == 0) {
            n++;
            if (n < sizeof(kat) / sizeof(kat[0]) && !kat[n])
                continue; /* not acknowledged: an append that failed */
            snprintf(want, sizeof(want), "{\"k\":%" PRIu64 "}",
                     n < sizeof(kat) / sizeof(kat[0]) ? kat[n] - 1 : 0);
            if (ev->position != n || ev->data_len != strlen(want) ||
                memcmp(ev->data, want, ev->data_len) != 0) {
                print_error("ftruncate %" PRIu64 ": event %" PRIu64 " is at position %"
                            PRIu64 " with data %.*s\n", at, n, ev->position,
                            (int)ev->data_len, (const char *)ev->data);
                bad++;
                break;
            }
        }
        evs_iter_free(it);
    }
    if (n < acked) {
        print_error("ftruncate %" PRIu64 ": %" PRIu64 " events acknowledged, %" PRIu64
                    " found (%s)\n", at, acked, n, rc ? evs_last_error() : "");
        bad++;
    }
    if ((rc = evs_verify(NULL, db, NULL, NULL)) != 0) {
        print_error("ftruncate %" PRIu64 ": verify: %s: %s\n", at, tu_errname(rc),
                    evs_last_error());
        bad++;
    }
    evs_append_result res;
    if ((rc = remap_append(db, REMAP_BATCHES, &res)) != 0) {
        print_error("ftruncate %" PRIu64 ": append after reopen: %s: %s\n", at,
                    tu_errname(rc), evs_last_error());
        bad++;
    }
    if ((rc = evs_close(db)) != 0) {
        print_error("ftruncate %" PRIu64 ": close: %s\n", at, evs_last_error());
        bad++;
    }
    return bad;
}

static void test_faults_remap(void **state)
{
    (void)state;
    TU_EMBEDDED_ONLY("faults of the embedded store's files");
    run r;
    memset(&r, 0, sizeof(r));
    /* the dry run: how many ftruncates */
    assert_int_equal(run_setup(&r), 0);
    int st = remap_run(&r, 0), hit;
    uint64_t n = counts_of(r.counts, "ftruncate");
    unsigned bad = remap_check(&r, 0, st, &hit);
    run_cleanup(&r, 0);
    assert_int_equal(bad, 0);
    print_message("dry run: %" PRIu64 " ftruncates\n", n);
    assert_true(n >= 4); /* the map grew */
    unsigned remaps = 0, failures = 0;
    for (uint64_t at = 1; at <= n && at <= 32; at++) {
        memset(&r, 0, sizeof(r));
        assert_int_equal(run_setup(&r), 0);
        st = remap_run(&r, at);
        unsigned b = remap_check(&r, at, st, &hit);
        remaps += hit;
        failures += b;
        run_cleanup(&r, b != 0 && getenv("EVS_TEST_KEEP"));
    }
    print_message("%" PRIu64 " runs, %u with LMDB's remap failing\n",
                  n < 32 ? n : 32, remaps);
    assert_int_equal(failures, 0);
    assert_true(remaps > 0); /* the case this test is for was hit */
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--seed") == 0)
        return seed_main(argv[2], argv[3]);
    if (argc == 4 && strcmp(argv[1], "--workload") == 0)
        return workload_main(argv[2], argv[3]);
    if (argc == 4 && strcmp(argv[1], "--remap") == 0)
        return remap_main(argv[2], argv[3]);
    self_path = realpath("/proc/self/exe", NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_faults_fresh),
        cmocka_unit_test(test_faults_rebuild),
        cmocka_unit_test(test_faults_remap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
