/*
 * sync_probe.h -- every fdatasync and fsync of the process, counted and
 * timed (sync_probe.c).
 *
 * sync_probe.c defines fdatasync and fsync; linked into an executable,
 * those definitions interpose the C library's for the static evstore
 * library and for shared libraries (LMDB) alike, so the syncs are seen
 * without a hook in the library. It must be one of the executable's own
 * objects (a member of a static archive would not be pulled in for a
 * symbol libc also defines): `evs` has it through the evs_bench_suite
 * object library, each micro-benchmark as a source of its own
 * (tools/bench/CMakeLists.txt). Each wrapper is the raw system call plus
 * two clock reads (~50 ns), negligible beside a sync, and it applies to
 * every `evs` command.
 */
#ifndef EVS_BENCH_SYNC_PROBE_H
#define EVS_BENCH_SYNC_PROBE_H

#include <stdatomic.h>
#include <stdint.h>

/* Every fdatasync/fsync of the process: count and summed nanoseconds. */
extern _Atomic uint64_t g_sync_calls;
extern _Atomic uint64_t g_sync_ns;

/* While g_sync_rec is set, each sync's duration also goes to g_sync_v (a
 * fixed buffer: no allocation inside the wrapper), and syncs slower than
 * SLOW_SYNC_NS to g_slow with the file they synced. The buffers are
 * allocated by sync_probe_init (bench_init calls it); recording must not
 * start before. */
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

/* Allocates the recording buffers, once per process (later calls do
 * nothing). Returns 0, or -1 when out of memory. */
int sync_probe_init(void);

#endif
