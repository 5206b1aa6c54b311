/*
 * testutil.h -- helpers shared by the tests/test_*.c programs.
 *
 * Every test program is a cmocka program; these helpers either return a
 * value the test asserts on, or assert themselves (the tu_* functions that
 * take no error output). Helpers that assert must only be called from the
 * cmocka main thread: cmocka's assertions longjmp. Worker threads record
 * failures with tu_fail() and the main thread checks tu_failures().
 */
#ifndef EVS_TESTUTIL_H
#define EVS_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "evstore.h"

/* ------------------------------------------------------------------ */
/* Checked calls                                                       */
/* ------------------------------------------------------------------ */

/*
 * Call expr (an evs_* call returning an int) and assert it returns
 * expected; on mismatch print the call, both codes and evs_last_error().
 */
#define TU_CHECK(expr, expected)                                             \
    do {                                                                     \
        int tu_rc_ = (expr);                                                 \
        int tu_exp_ = (expected);                                            \
        if (tu_rc_ != tu_exp_)                                               \
            tu_report_rc(#expr, tu_rc_, tu_exp_, __FILE__, __LINE__);        \
        assert_int_equal(tu_rc_, tu_exp_);                                   \
    } while (0)
#define TU_OK(expr) TU_CHECK(expr, 0)

/* Print "file:line: expr returned rc (name) but expected e: <last error>". */
void tu_report_rc(const char *expr, int rc, int expected, const char *file,
                  int line);

/* "EVS_ECONFLICT" etc. for a code, "0" for 0, "?" for unknown. */
const char *tu_errname(int rc);

/* Assert evs_last_error() is a non-NULL, non-empty string. */
#define TU_ASSERT_ERRMSG()                                                   \
    do {                                                                     \
        const char *tu_m_ = evs_last_error();                                \
        assert_non_null(tu_m_);                                              \
        assert_true(tu_m_[0] != '\0');                                       \
    } while (0)

/* 1 if s contains n written in decimal as a whole number (not as part of
 * a longer run of digits, and not preceded by '-' unless n < 0). */
int tu_contains_number(const char *s, int64_t n);

/* ------------------------------------------------------------------ */
/* Temporary stores                                                    */
/* ------------------------------------------------------------------ */

/*
 * A test store: tmp is a fresh directory from mkdtemp under $TMPDIR (or
 * /tmp); dir = tmp/db is the store path, not yet created (evs_open with
 * EVS_OPEN_CREATE creates it). db is the open handle or NULL.
 *
 * On PostgreSQL (tu_backend_pg()) dir is instead the URI of a fresh, empty
 * database evs_t_<pid>_<n> made on the server EVS_TEST_PG names (pgdb is
 * its name); tmp is still a scratch directory.
 */
typedef struct tu_store {
    char *tmp;
    char *dir;
    evs_db *db;
    char *pgdb; /* PostgreSQL: the database's name; NULL when embedded */
} tu_store;

/* Make tmp and dir names (on PostgreSQL: create the database); does not
 * open. Asserts. */
tu_store *tu_store_new(void);
/* Close db (if open), remove tmp recursively (on PostgreSQL: drop the
 * database too), free. NULL-safe. */
void tu_store_free(tu_store *s);
/* Open s->dir with default options (creating it); asserts success. */
void tu_store_open(tu_store *s);
/* Open s->dir with opts; asserts success. */
void tu_store_open_opts(tu_store *s, const evs_open_options *opts);
/* Close s->db, asserting evs_close returns 0; sets db to NULL. */
void tu_store_close(tu_store *s);
/* Close then open again with default options. */
void tu_store_reopen(tu_store *s);

/* cmocka group/test setup and teardown: *state = a tu_store, open with
 * default options (tu_setup_store) or not open (tu_setup_store_closed). */
int tu_setup_store(void **state);
int tu_setup_store_closed(void **state);
int tu_teardown_store(void **state);

/* ------------------------------------------------------------------ */
/* Backends: the same test bodies run on every backend                 */
/* ------------------------------------------------------------------ */

/*
 * 1 when the tests run on PostgreSQL: EVS_TEST_BACKEND=postgresql, with
 * EVS_TEST_PG a libpq URI (postgresql://...) of a database on the server
 * where the tests may create and drop databases. 0 for the embedded store
 * (EVS_TEST_BACKEND unset, empty or "embedded"). Asserts on other values.
 */
int tu_backend_pg(void);
/* "embedded" or "postgresql". */
const char *tu_backend_name(void);

/*
 * At the top of a test case that is about the embedded store's files
 * (segments, the index directory, copies, corruption, file locks): on
 * another backend the case is reported as SKIPPED (cmocka's skip()) with
 * reason printed. Nothing else may be left out on PostgreSQL.
 */
#define TU_EMBEDDED_ONLY(reason)                                             \
    do {                                                                     \
        if (tu_backend_pg()) {                                               \
            print_message("SKIPPED on %s: %s\n", tu_backend_name(),          \
                          (reason));                                         \
            skip();                                                          \
        }                                                                    \
    } while (0)

/*
 * PostgreSQL only: the URI of EVS_TEST_PG with database db and the query
 * parameters set[0..nset) ("key=value", percent-encoded as needed)
 * replacing those of the same key. malloc'd. Asserts.
 */
char *tu_pg_uri(const char *db, const char *const *set, size_t nset);
/* Create a fresh, empty database evs_t_<pid>_<n> on EVS_TEST_PG's server;
 * its name into name (n >= 64 bytes). Returns 0, or -1 after printing
 * libpq's message. Does not assert. */
int tu_pg_create_db(char *name, size_t n);
/* Drop it WITH (FORCE) (ending its connections). 0, or -1 as above. */
int tu_pg_drop_db(const char *name);
/* Wait (up to 10 s) until no server process is connected to database
 * name: the sessions of a killed client end when their server processes
 * notice it, and only then is what they were doing (an append still
 * committing) settled. 0, or -1 after printing why (timeout, no server). */
int tu_pg_settle(const char *name);

/* mkdtemp under $TMPDIR or /tmp; returns a malloc'd path or NULL. */
char *tu_mkdtemp(void);
/* rm -rf path. Returns 0 or -1 (errno set). Missing path is 0. */
int tu_rmrf(const char *path);
/* malloc'd "a/b". */
char *tu_path_join(const char *a, const char *b);

/* ------------------------------------------------------------------ */
/* Building events                                                     */
/* ------------------------------------------------------------------ */

/* A JSON event of the given type with data = json (strlen), no id. */
evs_event_data tu_event(const char *type, const char *json);
/* The same with a freshly generated id. */
evs_event_data tu_event_id(const char *type, const char *json);
/* A binary event. */
evs_event_data tu_event_bin(const char *type, const void *data, size_t len);

/* Append one JSON event with EVS_ANY (asserts success); returns its
 * position. */
uint64_t tu_append1(evs_db *db, const char *tenant, const char *stream,
                    const char *type, const char *json);

/* ------------------------------------------------------------------ */
/* Reading into owned copies                                           */
/* ------------------------------------------------------------------ */

/* A deep copy of an evs_event that outlives its iterator. */
typedef struct tu_event_copy {
    uint64_t position;
    int64_t stream_version;
    char *tenant;
    char *stream;
    char *type;
    evs_uuid id;
    evs_uuid correlation_id;
    evs_uuid causation_id;
    int64_t recorded_at;
    evs_content_type content_type;
    char *data; /* NUL-terminated copy; data_len excludes the NUL */
    size_t data_len;
    char *metadata;
    size_t metadata_len;
    char **tags;
    size_t ntags;
    int data_nul_ok;     /* the iterator's data was followed by a NUL */
    int metadata_nul_ok; /* the same for metadata (and it was non-NULL) */
} tu_event_copy;

typedef struct tu_events {
    tu_event_copy *v;
    size_t n;
    size_t cap;
} tu_events;

/*
 * Drain it into out (appending). Returns 0 at EVS_ITEROVER, else the first
 * error evs_iter_next returned (the events before it are in out). Does not
 * free it.
 */
int tu_collect(tu_events *out, evs_iter *it);
/* Assert the events' positions are want[0..nwant), printing both lists
 * with what, file and line otherwise. */
void assert_positions_(const tu_events *e, const uint64_t *want,
                       size_t nwant, const char *what, const char *file,
                       int line);
/* evs_read_stream + tu_collect + evs_iter_free. Returns the first error. */
int tu_read_stream(tu_events *out, evs_db *db, const char *tenant,
                   const char *stream, int64_t from_version,
                   evs_direction dir, uint64_t limit);
/* evs_read_all + tu_collect + evs_iter_free. */
int tu_read_all(tu_events *out, evs_db *db, const char *tenant,
                uint64_t from_position, uint64_t limit);
/*
 * evs_read_query + tu_collect + evs_iter_marker (after the end, into
 * *marker when marker is not NULL) + evs_iter_free. Returns the first
 * error. Does not assert: usable from worker threads.
 */
int tu_read_query(tu_events *out, uint64_t *marker, evs_db *db,
                  const char *tenant, const evs_query *query,
                  uint64_t position_bound, evs_direction dir,
                  uint64_t limit);
void tu_events_free(tu_events *ev);
void tu_events_clear(tu_events *ev);

/* Assert the copy's tags equal tags[0..ntags) as a set. */
void tu_assert_tags(const tu_event_copy *e, const char *const *tags,
                    size_t ntags);
/* Assert two uuids equal; prints both in text form otherwise. */
#define tu_assert_uuid_equal(a, b)                                           \
    tu_assert_uuid_equal_(a, b, __FILE__, __LINE__)
void tu_assert_uuid_equal_(const evs_uuid *a, const evs_uuid *b,
                           const char *file, int line);
int tu_uuid_eq(const evs_uuid *a, const evs_uuid *b);

/* Stats snapshot; asserts success. */
evs_stats tu_stats(evs_db *db);
/* Global head; asserts success. */
uint64_t tu_head(evs_db *db, const char *tenant);
/* Stream version; asserts success. */
int64_t tu_version(evs_db *db, const char *tenant, const char *stream);

/* ------------------------------------------------------------------ */
/* Files of the store                                                  */
/* ------------------------------------------------------------------ */

/* malloc'd sorted list of the full paths of <dir>/log/<16 hex>.evslog.
 * *n receives the count. Asserts the log directory is readable. */
char **tu_segments(const char *dir, size_t *n);
void tu_free_strings(char **v, size_t n);
/* malloc'd path of the highest-numbered segment; asserts one exists. */
char *tu_last_segment(const char *dir);
/* Read a whole file (malloc'd, *len); asserts. */
unsigned char *tu_read_file(const char *path, size_t *len);
/* pwrite len bytes at off; asserts success. */
void tu_write_at(const char *path, uint64_t off, const void *buf,
                 size_t len);
/* Offset just after the last non-zero byte of the file (0 if all zero). */
uint64_t tu_data_end(const char *path);
/*
 * The exact offset in the last segment where the next record would go,
 * i.e. the end of the last record including any zero bytes it ends with
 * (so tu_data_end() may be smaller). Found without knowing the record
 * layout: the closed store at dir is copied, one probe event is appended
 * to the copy, and the probe's first (non-zero) byte is located. Asserts
 * the probe landed in the same segment.
 */
uint64_t tu_log_end(const char *dir);
/* cp -a src dst; asserts success. */
void tu_copy_tree(const char *src, const char *dst);

/* ------------------------------------------------------------------ */
/* The evs command-line tool                                           */
/* ------------------------------------------------------------------ */

/*
 * Run EVS_CLI_PATH with argv[0..] (NULL-terminated, without the program
 * name), stdin from /dev/null, stderr passed through. Returns the exit
 * status (0..255), 128+signal if killed, or -1 if it could not run.
 * *out (if out is not NULL) receives the malloc'd NUL-terminated stdout.
 */
int tu_run_cli(char **out, const char *const *argv);

/* ------------------------------------------------------------------ */
/* Randomness, time, threads                                           */
/* ------------------------------------------------------------------ */

/*
 * The seed for a randomized test: EVS_TEST_SEED from the environment if
 * set, else from the clock and pid. Prints "<name>: seed=N" so a failure
 * can be replayed with EVS_TEST_SEED=N.
 */
uint64_t tu_seed(const char *name);
/* The same, but without EVS_TEST_SEED the seed is dflt (a deterministic
 * run by default). */
uint64_t tu_seed_default(const char *name, uint64_t dflt);

/* xorshift64* generator, one per thread. */
typedef struct tu_rng {
    uint64_t s;
} tu_rng;
void tu_rng_init(tu_rng *r, uint64_t seed);
uint64_t tu_rng_next(tu_rng *r);
/* Uniform in [lo, hi] (inclusive). */
uint64_t tu_rng_range(tu_rng *r, uint64_t lo, uint64_t hi);

/* Realtime clock in µs since the Unix epoch. */
int64_t tu_now_us(void);
/* Sleep ms milliseconds. */
void tu_sleep_ms(unsigned ms);

/*
 * Failures recorded by worker threads (which must not call cmocka
 * assertions). The first message is kept; the count is total.
 */
void tu_fail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
unsigned tu_failures(void);
const char *tu_first_failure(void);
void tu_failures_reset(void);
/* In the main thread: print the first failure and assert none. */
#define TU_ASSERT_NO_THREAD_FAILURES()                                       \
    do {                                                                     \
        if (tu_failures() != 0)                                              \
            print_error("%u thread failure(s); first: %s\n",               \
                        tu_failures(), tu_first_failure());                  \
        assert_int_equal(tu_failures(), 0);                                  \
    } while (0)

/* ------------------------------------------------------------------ */
/* Model tests: what the current operation is, for failure messages    */
/* ------------------------------------------------------------------ */

extern unsigned tu_op_no;      /* number of the operation being checked */
extern char tu_op_desc[512];   /* its description (tu_describe) */
/* Set tu_op_desc; print it too when EVS_TEST_VERBOSE is set. */
void tu_describe(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* EVS_TESTUTIL_H */
