/*
 * fixture_tracking.h -- what the tracking programs share (test_tokens,
 * test_tracking_reads, test_blocking_reads, test_subscriptions,
 * test_groups, test_checkpoints, test_snapshots): their store setup with a
 * watchdog, tracking reads checked against expected positions and
 * markers, and the check that a rejected call wrote nothing.
 *
 * The contract checked is the "Tracking", "Checkpoints" and "Snapshots"
 * sections of include/evstore.h and the checkpoint fields of
 * evs_append_request. Worker threads and subscription callbacks never call
 * cmocka assertions (they longjmp); they record failures with tu_fail()
 * and the main thread checks after joining.
 *
 * Timing: the machine running the suite is shared and noisy, so waits are
 * checked with a lower bound (a timed read never returns early) and only a
 * generous upper bound (timeout + 2 s, or "well before a long timeout").
 * A watchdog (alarm) ends a test that hangs, e.g. a read that is never
 * woken, with a message instead of the ctest timeout: each program's
 * main() installs on_alarm for SIGALRM, and setup/setup_closed arm it.
 */
#ifndef EVS_FIXTURE_TRACKING_H
#define EVS_FIXTURE_TRACKING_H

#include "testutil.h"

#define WATCHDOG_S 240

#define STRS(...) ((const char *const[]){__VA_ARGS__})
#define NSTRS(...) (sizeof(STRS(__VA_ARGS__)) / sizeof(const char *))

/*
 * Stores are created with 1 MiB log segments: creating the first default
 * (64 MiB) segment costs a third of a second, more than most tests, and
 * small segments make the longer tests read across segment roll-overs.
 * (segment_size is only used when creating: later opens use defaults.)
 */
#define SEGMENT_SIZE (1024u * 1024u)

/* The most events a recording subscriber or group member keeps. */
#define REC_MAX 8192

/* CLOCK_MONOTONIC in µs. */
int64_t mono_us(void);
/* SIGALRM handler: print which program's watchdog fired, exit 70. */
void on_alarm(int sig);

/* Open s->dir with SEGMENT_SIZE segments (creating it); asserts. */
void create_store(tu_store *s);
/* cmocka setup/teardown: arm the watchdog, reset thread failures, and a
 * store created with create_store (setup) or not open (setup_closed). */
int setup(void **state);
int setup_closed(void **state);
int teardown(void **state);

/* One event with an explicit recorded_at; returns its position. */
uint64_t put_at(evs_db *db, const char *tenant, const char *stream,
                const char *type, int64_t recorded_at);
/* A streamless (DCB) event with one tag; returns its position. */
uint64_t put_streamless(evs_db *db, const char *tenant, const char *type,
                        const char *tag);

/* evs_token_head / evs_token_tail / evs_token_at; assert success. */
uint64_t token_head(evs_db *db, const char *tenant);
uint64_t token_tail(evs_db *db, const char *tenant);
uint64_t token_at(evs_db *db, int64_t time_us);

/*
 * evs_read_tracking + drain + marker (after the end) + free. Returns the
 * first error. Does not assert: usable from worker threads.
 */
int track(tu_events *out, uint64_t *marker, evs_db *db,
          const evs_tracking *t, uint64_t after, uint64_t limit,
          int64_t timeout_us);

/* An expected list of positions (two arguments: array, count). */
#define PL(...)                                                              \
    ((const uint64_t[]){__VA_ARGS__}),                                       \
        (sizeof((const uint64_t[]){__VA_ARGS__}) / sizeof(uint64_t))
#define NONE NULL, 0
#define ASSERT_POSITIONS(e, what, list)                                      \
    assert_positions_(e, list, what, __FILE__, __LINE__)

/* Run a tracking read with timeout 0; check its positions, that no system
 * event is among them, and its marker. */
void expect_track_(evs_db *db, const evs_tracking *t, uint64_t after,
                   uint64_t limit, uint64_t want_marker,
                   const uint64_t *want, size_t nwant, const char *what,
                   const char *file, int line);
#define EXPECT_TRACK(db, t, after, limit, marker, what, list)                \
    expect_track_(db, t, after, limit, marker, list, what, __FILE__, __LINE__)

/* Read *t in pages of `page` events; the pages together must be the
 * unpaged read (see fixture_tracking.c). */
void expect_paging_(evs_db *db, const evs_tracking *t, uint64_t page,
                    const char *file, int line);
#define EXPECT_PAGING(db, t, page)                                           \
    expect_paging_(db, t, page, __FILE__, __LINE__)

/* Store state a rejected call must leave as it was, and a check that the
 * store still takes an append at head + 1 afterwards. */
void assert_unchanged_and_usable(evs_db *db, const evs_stats *b,
                                 const char *file, int line);
/* Run a call that must be rejected with code, with a message, writing
 * nothing. */
#define REJECT(db, expr, code)                                               \
    do {                                                                     \
        evs_stats b_ = tu_stats(db);                                         \
        TU_CHECK(expr, code);                                                \
        TU_ASSERT_ERRMSG();                                                  \
        assert_unchanged_and_usable(db, &b_, __FILE__, __LINE__);            \
    } while (0)

/* An integer member "key":N of a JSON text (-1 if absent). */
int64_t json_int(const char *json, const char *key);
/* Positions of the user (non-system) events of a tenant ("": default;
 * NULL: all), read with evs_read_all. malloc'd, *n set. */
uint64_t *user_positions(evs_db *db, const char *tenant, size_t *n);

/* Save a snapshot of schema "acct.v1" with text as its data; asserts. */
void save_text(evs_db *db, const char *tenant, const char *stream,
               int64_t version, const char *text);

#endif /* EVS_FIXTURE_TRACKING_H */
