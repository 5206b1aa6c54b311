/*
 * test_recovery.c -- what opening a damaged store does.
 *
 * The tests know only these layout facts: segments are
 * <dir>/log/<16 hex>.evslog, preallocated with zeros, records are framed
 * with a length and a CRC32C, and bytes 8..11 of a segment hold its
 * little-endian format version. A record may end with zero bytes (padding,
 * a NUL), so the exact end of the log is found with tu_log_end(), which
 * appends a probe to a copy of the store.
 */
#include "testutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static evs_open_options small_segments(void)
{
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    o.segment_size = 1024 * 1024;
    return o;
}

static void open_small(tu_store *s)
{
    evs_open_options o = small_segments();
    tu_store_open_opts(s, &o);
}

/* Append one event per position with data {"p":position}. */
static void append_numbered(tu_store *s, uint64_t n)
{
    uint64_t i, head = tu_head(s->db, NULL);
    char data[64];
    for (i = 0; i < n; i++) {
        snprintf(data, sizeof data, "{\"p\":%" PRIu64 "}", head + i + 1);
        assert_int_equal(tu_append1(s->db, NULL, "rec-1", "Numbered", data),
                         head + i + 1);
    }
}

typedef struct problems {
    unsigned n;
    char first[512];
    int names_position; /* some message contained the wanted text */
    const char *want;
} problems;

static void on_problem(void *ctx, const char *problem)
{
    problems *p = ctx;
    print_message("verify problem: %s\n", problem);
    if (p->n++ == 0)
        snprintf(p->first, sizeof p->first, "%s", problem);
    if (p->want != NULL && strstr(problem, p->want) != NULL)
        p->names_position = 1;
}

static void assert_verify_clean(evs_db *db)
{
    problems p;
    memset(&p, 0, sizeof p);
    TU_OK(evs_verify(NULL, db, on_problem, &p));
    assert_int_equal(p.n, 0);
}

/* The store holds exactly positions 1..n, each with data {"p":position}
 * (events appended by append_numbered). */
static void assert_numbered(evs_db *db, uint64_t n)
{
    tu_events e = {0};
    char data[64];
    size_t i;
    assert_int_equal(tu_head(db, NULL), n);
    TU_OK(tu_read_all(&e, db, NULL, 0, 0));
    assert_int_equal(e.n, n);
    for (i = 0; i < e.n; i++) {
        assert_int_equal(e.v[i].position, i + 1);
        snprintf(data, sizeof data, "{\"p\":%zu}", i + 1);
        assert_string_equal(e.v[i].data, data);
    }
    tu_events_free(&e);
}

/* ------------------------------------------------------------------ */
/* Garbage after the last record                                       */
/* ------------------------------------------------------------------ */

static void test_garbage_tail_truncated(void **state)
{
    tu_store *s = *state; /* not open */
    static const size_t lens[] = {1, 7, 64, 4096, 100};
    uint64_t seed = tu_seed("garbage tail");
    tu_rng rng;
    size_t v, i, nseg = 0;
    uint64_t n;
    char **segs;

    tu_rng_init(&rng, seed);
    open_small(s);
    /* Several segments first, so "the last segment" is not the first. */
    {
        size_t len = 50 * 1000;
        unsigned char *big = calloc(1, len);
        evs_event_data ev;
        assert_non_null(big);
        memset(big, 'x', len);
        ev = tu_event_bin("Big", big, len);
        for (i = 0; i < 50; i++)
            TU_OK(evs_append(NULL, s->db, NULL, "big-1", EVS_ANY, &ev, 1));
        free(big);
    }
    segs = tu_segments(s->dir, &nseg);
    tu_free_strings(segs, nseg);
    assert_true(nseg >= 2);
    n = 50;

    for (v = 0; v < sizeof lens / sizeof lens[0]; v++) {
        char *seg;
        uint64_t end, data_end;
        unsigned char *garbage = malloc(lens[v]), *file;
        size_t flen = 0;
        assert_non_null(garbage);
        for (i = 0; i < lens[v]; i++)
            garbage[i] = (unsigned char)tu_rng_next(&rng);
        if (v == 4)
            memset(garbage, 0xff, lens[v]); /* a huge length, too */
        garbage[0] |= 1; /* non-zero: the tail is visibly damaged */

        {
            char data[64];
            snprintf(data, sizeof data, "{\"v\":%zu}", v);
            tu_append1(s->db, NULL, "rec-2", "Before", data);
            n++;
        }
        tu_store_close(s);
        seg = tu_last_segment(s->dir);
        data_end = tu_data_end(seg);
        end = tu_log_end(s->dir);
        assert_true(end >= data_end);
        tu_write_at(seg, end, garbage, lens[v]);
        print_message("variant %zu: %zu garbage bytes at %s offset %" PRIu64
                      "\n",
                      v, lens[v], seg, end);

        if (v == 0) {
            /* Read-only: the tail is ignored, and left alone. */
            evs_open_options o = small_segments();
            evs_db *db = NULL;
            evs_event_data ev = tu_event("T", "{}");
            o.flags = EVS_OPEN_READONLY;
            TU_OK(evs_open(&db, s->dir, &o));
            assert_int_equal(tu_head(db, NULL), n);
            TU_CHECK(evs_append(NULL, db, NULL, "rec-2", EVS_ANY, &ev, 1),
                     EVS_EREADONLY);
            TU_OK(evs_close(db));
            file = tu_read_file(seg, &flen);
            assert_true(flen >= end + lens[v]);
            assert_memory_equal(file + end, garbage, lens[v]);
            free(file);
        }

        open_small(s);
        assert_int_equal(tu_head(s->db, NULL), n);
        assert_int_equal(tu_stats(s->db).events, n);
        assert_verify_clean(s->db);
        /* The garbage is gone from the file (zeroed or cut off), so the
         * log ends with zeros again after its last record. */
        assert_int_equal(tu_data_end(seg), data_end);
        {
            evs_append_result r;
            evs_event_data ev = tu_event("After", "{\"after\":true}");
            TU_OK(evs_append(&r, s->db, NULL, "rec-2", EVS_ANY, &ev, 1));
            assert_int_equal(r.first_position, n + 1);
            n++;
        }
        assert_verify_clean(s->db);
        free(seg);
        free(garbage);
    }
    tu_store_reopen(s);
    assert_int_equal(tu_head(s->db, NULL), n);
    assert_verify_clean(s->db);
}

/* ------------------------------------------------------------------ */
/* A torn last append                                                  */
/* ------------------------------------------------------------------ */

typedef struct last_append {
    char *seg;
    uint64_t start;    /* log end before the append: where it begins */
    uint64_t end;      /* log end after it */
    uint64_t data_end; /* after its last non-zero byte (<= end) */
    evs_event_data ev[3];
    char data[3][400];
} last_append;

/*
 * Append to stream in a child process that then dies without closing the
 * store (its state file still says open), and make the next opens of this
 * process happen "after a reboot" (EVS_DEBUG_BOOT_ID; unset it when done):
 * the store as a power loss right after that append leaves it, before any
 * damage the test adds.
 */
static void append_then_stop(tu_store *s, const char *stream, const evs_event_data *ev,
                             size_t n)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        evs_open_options o = small_segments();
        evs_db *db = NULL;
        if (evs_open(&db, s->dir, &o) != 0 ||
            evs_append(NULL, db, NULL, stream, EVS_ANY, ev, n) != 0)
            _exit(1);
        _exit(0); /* no evs_close: as if the machine stopped here */
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    setenv("EVS_DEBUG_BOOT_ID", "test-recovery-after-power-loss", 1);
}

/* Append n numbered events, then one append of three events to stream
 * "torn-1" (with ids), closing before and after to measure its bytes. */
static void make_last_append(tu_store *s, uint64_t n, last_append *la)
{
    size_t i;
    append_numbered(s, n);
    tu_store_close(s);
    la->seg = tu_last_segment(s->dir);
    la->start = tu_log_end(s->dir);
    open_small(s);
    for (i = 0; i < 3; i++) {
        size_t k;
        int len = snprintf(la->data[i], sizeof la->data[i],
                           "{\"p\":%" PRIu64 ",\"pad\":\"",
                           tu_head(s->db, NULL) + i + 1);
        for (k = 0; k < 300; k++)
            la->data[i][len++] = (char)('a' + (k + i) % 26);
        la->data[i][len++] = '"';
        la->data[i][len++] = '}';
        la->data[i][len] = '\0';
        la->ev[i] = tu_event_id("Torn", la->data[i]);
    }
    /*
     * A torn append is one that was never acknowledged: it was being
     * written when the machine stopped. So the append runs in a child that
     * dies without closing the store (its state file still says the store
     * is open), and the test later opens the store "after a reboot"
     * (EVS_DEBUG_BOOT_ID), as after a power loss. Damage to an append that
     * was acknowledged is never cut (test_durability.c).
     */
    tu_store_close(s);
    append_then_stop(s, "torn-1", la->ev, 3);
    la->end = tu_log_end(s->dir);
    la->data_end = tu_data_end(la->seg);
    {
        char *seg = tu_last_segment(s->dir);
        /* Both measurements are of the same segment. */
        assert_string_equal(seg, la->seg);
        free(seg);
    }
    assert_true(la->end > la->start);
    assert_in_range(la->data_end, la->start + 1, la->end);
    print_message("last append: %s bytes %" PRIu64 "..%" PRIu64 "\n",
                  la->seg, la->start, la->end);
}

/* After the last append was damaged: it is gone as a whole, the rest is
 * intact, and the same events (same ids) can be appended again. */
static void assert_last_append_gone(tu_store *s, last_append *la,
                                    uint64_t n)
{
    evs_append_result r;
    assert_numbered(s->db, n);
    assert_int_equal(tu_version(s->db, NULL, "torn-1"), EVS_NO_STREAM);
    assert_verify_clean(s->db);
    TU_OK(evs_append(&r, s->db, NULL, "torn-1", EVS_NO_STREAM, la->ev, 3));
    assert_int_equal(r.first_position, n + 1);
    assert_int_equal(r.last_position, n + 3);
    assert_verify_clean(s->db);
    unsetenv("EVS_DEBUG_BOOT_ID");
}

static void zero_range(const char *path, uint64_t from, uint64_t to)
{
    size_t len = (size_t)(to - from);
    unsigned char *z = calloc(1, len ? len : 1);
    assert_non_null(z);
    tu_write_at(path, from, z, len);
    free(z);
}

static void test_torn_append_second_half_zeroed(void **state)
{
    tu_store *s = *state;
    last_append la;
    memset(&la, 0, sizeof la);
    open_small(s);
    make_last_append(s, 5, &la);
    zero_range(la.seg, la.start + (la.end - la.start) / 2, la.end);
    open_small(s);
    assert_last_append_gone(s, &la, 5);
    free(la.seg);
}

static void test_torn_append_last_byte_zeroed(void **state)
{
    tu_store *s = *state;
    last_append la;
    memset(&la, 0, sizeof la);
    open_small(s);
    make_last_append(s, 4, &la);
    /* The last non-zero byte: certainly part of the append. */
    zero_range(la.seg, la.data_end - 1, la.data_end);
    open_small(s);
    assert_last_append_gone(s, &la, 4);
    free(la.seg);
}

static void test_torn_append_only_first_bytes(void **state)
{
    tu_store *s = *state;
    last_append la;
    memset(&la, 0, sizeof la);
    open_small(s);
    make_last_append(s, 6, &la);
    /* Only the first 16 bytes reached the disk. */
    zero_range(la.seg, la.start + 16, la.end);
    open_small(s);
    assert_last_append_gone(s, &la, 6);
    free(la.seg);
}

/* A partial copy of a valid append after the real last append: a record
 * that starts well (plausible length, maybe a valid header) but ends too
 * soon. Everything real stays; the copy goes. */
static void test_partial_copy_after_tail(void **state)
{
    tu_store *s = *state;
    last_append la;
    size_t len = 0;
    unsigned char *file;
    uint64_t half;
    tu_events e = {0};

    memset(&la, 0, sizeof la);
    open_small(s);
    make_last_append(s, 5, &la);
    file = tu_read_file(la.seg, &len);
    half = (la.end - la.start) / 2;
    tu_write_at(la.seg, la.end, file + la.start, (size_t)half);
    free(file);

    open_small(s);
    assert_int_equal(tu_head(s->db, NULL), 8);
    TU_OK(tu_read_stream(&e, s->db, NULL, "torn-1", 0, EVS_FORWARD, 0));
    assert_int_equal(e.n, 3);
    assert_string_equal(e.v[2].data, la.data[2]);
    tu_assert_uuid_equal(&e.v[2].id, &la.ev[2].id);
    tu_events_free(&e);
    assert_verify_clean(s->db);
    assert_int_equal(tu_data_end(la.seg), la.data_end);
    append_numbered(s, 1);
    assert_int_equal(tu_head(s->db, NULL), 9);
    assert_verify_clean(s->db);
    free(la.seg);
}

/* ------------------------------------------------------------------ */
/* Corruption inside the log                                           */
/* ------------------------------------------------------------------ */

#define MARKER "MARKER-7f3a"

static void test_flipped_byte_named_by_verify(void **state)
{
    tu_store *s = *state;
    size_t nseg = 0, i, found = 0;
    char **segs;
    problems p;
    tu_events e = {0};
    int rc;

    open_small(s);
    for (i = 1; i <= 10; i++) {
        char data[64];
        if (i == 7)
            snprintf(data, sizeof data, "{\"p\":7,\"m\":\"" MARKER "\"}");
        else
            snprintf(data, sizeof data, "{\"p\":%zu}", i);
        tu_append1(s->db, NULL, i % 2 ? "odd-1" : "even-1", "T", data);
    }
    tu_store_close(s);

    segs = tu_segments(s->dir, &nseg);
    for (i = 0; i < nseg; i++) {
        size_t len = 0;
        unsigned char *buf = tu_read_file(segs[i], &len);
        unsigned char *m = memmem(buf, len, MARKER, strlen(MARKER));
        if (m != NULL) {
            unsigned char flipped = (unsigned char)(m[3] ^ 0x20);
            assert_null(memmem(m + 1, len - (size_t)(m + 1 - buf), MARKER,
                               strlen(MARKER)));
            tu_write_at(segs[i], (uint64_t)(m + 3 - buf), &flipped, 1);
            found++;
        }
        free(buf);
    }
    tu_free_strings(segs, nseg);
    /* The data is stored as given, once. */
    assert_int_equal(found, 1);

    open_small(s);
    memset(&p, 0, sizeof p);
    p.want = "position 7";
    TU_CHECK(evs_verify(NULL, s->db, on_problem, &p), EVS_ECORRUPT);
    assert_true(p.n >= 1);
    if (!p.names_position)
        print_error("no verify message names \"position 7\"; first: %s\n",
                    p.first);
    assert_true(p.names_position);

    /* Reading it fails; reading around it does not. */
    rc = tu_read_all(&e, s->db, NULL, 0, 0);
    TU_CHECK(rc, EVS_ECORRUPT);
    TU_ASSERT_ERRMSG();
    assert_int_equal(e.n, 6);
    tu_events_clear(&e);
    rc = tu_read_stream(&e, s->db, NULL, "odd-1", 0, EVS_FORWARD, 0);
    TU_CHECK(rc, EVS_ECORRUPT);
    assert_int_equal(e.n, 3); /* positions 1, 3, 5 */
    tu_events_clear(&e);
    TU_OK(tu_read_all(&e, s->db, NULL, 8, 0));
    assert_int_equal(e.n, 3);
    tu_events_clear(&e);
    TU_OK(tu_read_stream(&e, s->db, NULL, "even-1", 0, EVS_FORWARD, 0));
    assert_int_equal(e.n, 5);
    tu_events_free(&e);
    tu_store_close(s);

    {
        const char *argv[] = {"--db", s->dir, "verify", NULL};
        char *out = NULL;
        rc = tu_run_cli(&out, argv);
        print_message("evs verify exited %d:\n%s\n", rc, out ? out : "");
        free(out);
        /* It ran (not 127: exec failed; not >= 128: crashed) and failed. */
        assert_in_range(rc, 1, 125);
    }
}

/* ------------------------------------------------------------------ */
/* A store written by a newer evstore                                  */
/* ------------------------------------------------------------------ */

static void test_newer_format_refused(void **state)
{
    tu_store *s = *state;
    static const unsigned char ff[4] = {0xff, 0xff, 0xff, 0xff};
    size_t nseg = 0, len = 0;
    char **segs;
    unsigned char *buf;
    evs_db *db = (evs_db *)&db; /* not NULL, to see it reset */
    evs_open_options o = small_segments();

    open_small(s);
    append_numbered(s, 3);
    tu_store_close(s);
    segs = tu_segments(s->dir, &nseg);
    assert_true(nseg >= 1);
    tu_write_at(segs[0], 8, ff, 4);

    TU_CHECK(evs_open(&db, s->dir, &o), EVS_EFORMAT);
    TU_ASSERT_ERRMSG();
    assert_null(db);
    o.flags = EVS_OPEN_READONLY;
    db = (evs_db *)&db;
    TU_CHECK(evs_open(&db, s->dir, &o), EVS_EFORMAT);
    assert_null(db);
    o.flags = 0;
    TU_CHECK(evs_open(&db, s->dir, &o), EVS_EFORMAT);

    /* A refused open leaves the files as they were. */
    buf = tu_read_file(segs[0], &len);
    assert_true(len >= 12);
    assert_memory_equal(buf + 8, ff, 4);
    free(buf);
    tu_free_strings(segs, nseg);
}

/* ------------------------------------------------------------------ */
/* Snapshots across an index rebuild                                   */
/* ------------------------------------------------------------------ */

static int64_t snapshot_version(evs_db *db, const char *stream)
{
    evs_snapshot *snap = NULL;
    int rc = evs_snapshot_load(&snap, db, NULL, stream, EVS_END);
    if (rc == EVS_ENOTFOUND)
        return -1;
    TU_OK(rc);
    int64_t v = snap->version;
    assert_string_equal((const char *)snap->data, "{\"balance\":2}");
    evs_snapshot_free(snap);
    return v;
}

/* The index is rebuilt after a power loss (its state file says a writer
 * had it open on another boot); snapshots live apart and survive. A copy
 * starts without them (a save may have been caught half-way). */
static void test_snapshots_survive_index_rebuild(void **state)
{
    tu_store *s = *state;
    open_small(s);
    append_numbered(s, 3);
    tu_append1(s->db, NULL, "acc-1", "Opened", "{}");
    tu_append1(s->db, NULL, "acc-1", "Deposited", "{}");
    TU_OK(evs_snapshot_save(s->db, NULL, "acc-1", 1, "v1", "{\"balance\":2}", 13));
    tu_store_close(s);
    evs_event_data ev = tu_event("Deposited", "{}");
    append_then_stop(s, "acc-1", &ev, 1);
    open_small(s);
    unsetenv("EVS_DEBUG_BOOT_ID");
    assert_int_equal(tu_head(s->db, NULL), 6);
    assert_int_equal(tu_version(s->db, NULL, "acc-1"), 2);
    assert_int_equal(snapshot_version(s->db, "acc-1"), 1);
    assert_verify_clean(s->db);
    tu_store_close(s);

    char cmd[8192], copy[4200];
    snprintf(copy, sizeof copy, "%s/copy", s->tmp);
    snprintf(cmd, sizeof cmd, "cp -a '%s' '%s'", s->dir, copy);
    assert_int_equal(system(cmd), 0);
    evs_open_options o = small_segments();
    evs_db *db = NULL;
    TU_OK(evs_open(&db, copy, &o));
    assert_int_equal(tu_head(db, NULL), 6);
    assert_int_equal(snapshot_version(db, "acc-1"), -1);
    assert_verify_clean(db);
    TU_OK(evs_close(db));
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, tu_setup_store_closed, \
                                              tu_teardown_store)
    const struct CMUnitTest tests[] = {
        T(test_garbage_tail_truncated),
        T(test_torn_append_second_half_zeroed),
        T(test_torn_append_last_byte_zeroed),
        T(test_torn_append_only_first_bytes),
        T(test_partial_copy_after_tail),
        T(test_flipped_byte_named_by_verify),
        T(test_newer_format_refused),
        T(test_snapshots_survive_index_rebuild),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
