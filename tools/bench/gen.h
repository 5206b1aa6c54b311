/*
 * gen.h -- the data generator of `evs generate` and `evs bench` (issue 6,
 * after the EAF seed 003_b0f487ca093f1521.txt): realistic multi-tenant
 * event data, deterministic for a given seed.
 *
 * Shape of the data (the defaults; docs/BENCH.md is the reference):
 *   - tenants "tenant-00" .. "tenant-NN" (cfg.tenants, >= 1; default 10),
 *     80/20: about 80 % of the events go to the first 20 % of the tenants;
 *   - aggregates User, Order, Product, Account, Cart, Invoice (streams
 *     "<Aggregate>-<id>", e.g. "Order-000123"; the category is the
 *     aggregate name), each with a lifecycle: a create event, modify
 *     events, a finalize event (e.g. OrderPlaced, OrderItemAdded...,
 *     OrderShipped);
 *   - stream lengths from 1 to 1000 events (a skewed distribution: most
 *     streams short, a few long);
 *   - payloads of realistic JSON: 70 % 100-500 B, 25 % 1-5 KB, 5 % 5-10 KB;
 *   - metadata with correlation and causation ids (also set in the
 *     event's correlation_id / causation_id), and tags ("customer:ID",
 *     "region:R", "product:ID" as the aggregate has them);
 *   - recorded_at spread over cfg.months months before cfg.end_us, on
 *     business hours (most events 08:00-18:00 on weekdays), increasing in
 *     log order;
 *   - a snapshot (evs_snapshot_save) every cfg.snapshot_every events of
 *     the aggregates that have them (Account, Order, User).
 *
 * Thread rules: a gen is used by one thread at a time; gen_load is
 * synchronous.
 *
 * Refinements made with the implementation (gen.c), all additions:
 *   - the size buckets as constants (GEN_SIZE_*: 1 KB = 1024 B, the
 *     buckets are [100, 500], [1024, 5119], [5120, 10240]) and
 *     gen_size_bucket() to classify a size;
 *   - gen_is_business_hours(), the definition the statistics use;
 *   - gen_stats.metadata_bytes; streams_len_over_100 counts the streams
 *     of at least GEN_LONG_STREAM (100) events;
 *   - limits GEN_MAX_MONTHS and GEN_MAX_BATCH checked by gen_new;
 *   - gen_config.stream_base, so that generating twice into one store
 *     does not collide on stream names or ids;
 *   - gen_config.stop, so that an interrupted `evs bench` stops loading.
 */
#ifndef EVS_BENCH_GEN_H
#define EVS_BENCH_GEN_H

#include <evstore.h>

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define GEN_MAX_TENANTS 1000
#define GEN_SIZE_BUCKETS 3 /* 100-500 B, 1-5 KB, 5-10 KB */
#define GEN_SIZE_0_MIN 100
#define GEN_SIZE_0_MAX 500
#define GEN_SIZE_1_MIN 1024
#define GEN_SIZE_1_MAX 5119
#define GEN_SIZE_2_MIN 5120
#define GEN_SIZE_2_MAX 10240
#define GEN_MAX_MONTHS 600
#define GEN_MAX_BATCH 65536  /* parts of one evs_append_ex at most */
#define GEN_LONG_STREAM 100  /* streams_len_over_100 counts >= this */

typedef struct gen_config {
    uint64_t events;        /* events to generate, >= 1; default 1000000 */
    uint32_t tenants;       /* 1..GEN_MAX_TENANTS; default 10 */
    uint64_t seed;          /* default 1 */
    int64_t end_us;         /* newest timestamp, µs since the epoch;
                               default 2026-11-01T00:00:00Z (fixed, so the
                               data does not depend on the clock) */
    uint32_t months;        /* span of the timestamps; default 6 */
    uint32_t snapshot_every;/* events between snapshots; 0 = none;
                               default 100 */
    uint32_t batch_events;  /* events per append when loading; default
                               1000 */
    int progress;           /* 0: silent; 1: a bar on a terminal (stderr),
                               plain lines otherwise */
    uint64_t stream_base;   /* added to every stream number (default 0), and
                               mixed into the seed when not 0: a second
                               generation into the same store (evs generate
                               --force sets the store's head position) gets
                               other stream names and event ids */
    const _Atomic int *stop;/* NULL (default), or gen_load stops between
                               appends once *stop is non-zero (set by
                               another thread: `evs bench` on Ctrl-C) */
} gen_config;

/* Fills cfg with the defaults above. */
void gen_config_init(gen_config *cfg);

/* What a generation produced (the test checks its distributions). */
typedef struct gen_stats {
    uint64_t events, streams, snapshots, appends;
    uint64_t data_bytes;                   /* payload bytes */
    uint64_t metadata_bytes;               /* metadata bytes */
    uint64_t size_bucket[GEN_SIZE_BUCKETS];/* events per payload bucket */
    uint64_t size_other;                   /* payloads outside them: 0 */
    uint32_t tenants;
    uint64_t per_tenant[GEN_MAX_TENANTS];  /* events per tenant */
    uint64_t stream_len_min, stream_len_max;
    uint64_t streams_len_1, streams_len_over_100; /* counts: streams of
                                     exactly 1, of >= GEN_LONG_STREAM */
    int64_t first_us, last_us;             /* recorded_at range */
    uint64_t business_hours;               /* events on weekdays 08-18
                                              UTC (gen_is_business_hours) */
    double seconds;                        /* wall time of gen_load */
    /* Stream lengths are those reached so far: a stream still alive when
     * the count is reached ends short of its planned length. */
} gen_stats;

/* One generated event, borrowed until the next gen_next/gen_free. */
typedef struct gen_event {
    const char *tenant;
    const char *stream;
    int64_t expected_version; /* the stream's version before this event
                                 (EVS_NO_STREAM for its first) */
    evs_event_data ev;        /* id set (deterministic), recorded_at set */
    int snapshot_after;       /* 1: save a snapshot after this event */
} gen_event;

typedef struct gen gen;

/* A generator for cfg (copied). Returns 0, or EVS_EINVAL with a message
 * in err (zero events, zero or too many tenants, months or batch_events
 * out of range, a span starting before 1970), or EVS_ENOMEM. */
int gen_new(gen **out, const gen_config *cfg, char *err, size_t errsize);
/* The next event: 0, or 1 after the last one. */
int gen_next(gen *g, gen_event *out);
/* The snapshot state of the event just returned (a JSON document, its
 * schema name), for gen_event.snapshot_after. Borrowed like gen_next's. */
void gen_snapshot(gen *g, const char **schema, const void **data,
                  size_t *len);
/* Statistics of what has been generated so far. */
const gen_stats *gen_get_stats(const gen *g);
void gen_free(gen *g);

/* The bucket of a payload of n bytes (0..GEN_SIZE_BUCKETS-1), or -1. */
int gen_size_bucket(size_t n);
/* 1 if us (µs since the epoch) is on a weekday (Monday-Friday), 08:00 to
 * 18:00 UTC. */
int gen_is_business_hours(int64_t us);

/* Generates cfg->events events into db in batched appends (each append:
 * one tenant, several streams, exact expected versions) and saves the
 * snapshots; fills *st (may be NULL). Returns 0; 1 when *cfg->stop became
 * non-zero (a message in err; what was appended stays); or the evs_* error
 * code of the first failed call with a message in err (what was appended
 * stays; the message says how much). */
int gen_load(evs_db *db, const gen_config *cfg, gen_stats *st, char *err,
             size_t errsize);

#endif
