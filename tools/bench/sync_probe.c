/*
 * sync_probe.c -- fdatasync and fsync, counted and timed for the
 * benchmarks (sync_probe.h says why they are defined here and how they
 * get into the executables).
 */
#include "sync_probe.h"

#include "bench_util.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

_Atomic uint64_t g_sync_calls;
_Atomic uint64_t g_sync_ns;
uint64_t *g_sync_v;
_Atomic uint64_t g_sync_n;
_Atomic int g_sync_rec;

slow_sync *g_slow;
_Atomic uint64_t g_slow_n;

int sync_probe_init(void)
{
    /* once per process: `evs bench`'s runner may be called again (tests) */
    if (!g_sync_v && !(g_sync_v = calloc(SYNC_SAMPLES_MAX, sizeof *g_sync_v)))
        return -1;
    if (!g_slow && !(g_slow = calloc(SLOW_SYNCS_MAX, sizeof *g_slow)))
        return -1;
    return 0;
}

/* A slow sync is attributed to the file it synced, named by its basename
 * with leading hex digits shown as <n> (the lookup costs a few µs, paid
 * only after a slow sync). */
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
