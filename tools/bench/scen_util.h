/*
 * scen_util.h -- what the scenarios of `evs bench` (scen_*.c) share beyond
 * bench_util.h (whose now_ns is their clock, and event_init and json_uint
 * their payload helpers): a per-thread random generator, error text, the
 * checks' replays, and the extern declarations of every scenario (listed
 * in report order in scenarios.c). Private to tools/bench.
 */
#ifndef EVS_BENCH_SCEN_UTIL_H
#define EVS_BENCH_SCEN_UTIL_H

#include "bench_util.h"
#include "suite.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

/* xorshift64*: a cheap per-thread generator, deterministic per seed. */
static inline uint64_t scen_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* A non-zero generator state from a seed and a thread number. */
static inline uint64_t scen_seed(uint64_t seed, int thread)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ULL + (uint64_t)thread + 1;
    s ^= s >> 31;
    return s ? s : 0x1234567u;
}

/* Uniform in [0, n). */
static inline uint64_t scen_below(uint64_t *s, uint64_t n)
{
    return n ? scen_rand(s) % n : 0;
}

/* The elements of an array (not a pointer). */
#define SCEN_COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* bench_scenario's level and target fields from the arrays, counted by
   the compiler. */
#define SCEN_LEVELS(full, quick)                                             \
    .levels = (full), .nlevels = SCEN_COUNT(full), .quick_levels = (quick), \
    .nquick_levels = SCEN_COUNT(quick)
#define SCEN_TARGETS(t) .targets = (t), .ntargets = SCEN_COUNT(t)

/* The append scenarios' payload (scen_appends.c and the peers'): the
   ~240-byte JSON of entry j of a ledger written by instance inst, into
   out (320 bytes is enough); returns its length. */
int scen_ledger_json(char *out, size_t size, const char *ledger, int j, unsigned inst);

/* Their two tags: "customer:c<inst>" and "region:<one of five>". */
void scen_ledger_tags(char tag[2][64], unsigned inst);

/* Keep the first problem a thread reports, under mu, into buf. */
void scen_first_problem(pthread_mutex_t *mu, char *buf, size_t size, const char *msg);

/* free() as a thread_fini or teardown, for state that owns nothing. */
void scen_free(void *state);

/* err <- "what: evs message (code text)" for a failed evs_* call. */
void scen_fail(char *err, size_t errsize, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* err <- the formatted text. */
void scen_msg(char *err, size_t errsize, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The generator's tenant i ("tenant-00"...: see gen.h). */
void scen_gen_tenant(char *out, size_t outsize, uint32_t i);

/* Sums the generator's tenant shares: the tenant holding most events. */
uint32_t scen_biggest_tenant(const bench_ctx *ctx);

/* Calls each(arg, e, err, errsize) on every event of the stream, oldest
   first, and stops at the first call that returns non-zero (it wrote err).
   Returns 0, or -1 with a message in err. For the scenarios' checks. */
int scen_replay_stream(evs_db *db, const char *tenant, const char *stream,
                       int (*each)(void *arg, const evs_event *e, char *err,
                                   size_t errsize),
                       void *arg, char *err, size_t errsize);

/* The tenant holds exactly want events, counted by reading them all (who:
   what wrote them, for the message). Returns 0 or -1 with a message in
   err. */
int scen_check_events(evs_db *db, const char *tenant, uint64_t want,
                      const char *who, char *err, size_t errsize);

/* The scenarios, one per scen_*.c definition. */
extern const bench_scenario scen_bank, scen_shop, scen_batch, scen_append1,
    scen_append5, scen_dcb_query, scen_dcb_workflow, scen_aggregate,
    scen_aggregate_snapshot, scen_stream_batches, scen_tokens, scen_catchup,
    scen_mixed, scen_scavenge, scen_crypto;

#endif
