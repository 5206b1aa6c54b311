/*
 * fixture_tracking.c -- the helpers the tracking programs share (see
 * fixture_tracking.h).
 */
#include "fixture_tracking.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void on_alarm(int sig)
{
    static const char msg[] =
        ": watchdog: a test ran longer than the watchdog allows (a read or "
        "subscription that is never woken?)\n";
    const char *name = program_invocation_short_name;
    (void)sig;
    if (write(2, name, strlen(name)) < 0 ||
        write(2, msg, sizeof msg - 1) < 0) {
        /* nothing more to do */
    }
    _exit(70);
}

void create_store(tu_store *s)
{
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    o.segment_size = SEGMENT_SIZE;
    tu_store_open_opts(s, &o);
}

int setup(void **state)
{
    tu_store *s;
    alarm(WATCHDOG_S);
    tu_failures_reset();
    s = tu_store_new();
    create_store(s);
    *state = s;
    return 0;
}

int setup_closed(void **state)
{
    alarm(WATCHDOG_S);
    tu_failures_reset();
    return tu_setup_store_closed(state);
}

int teardown(void **state)
{
    alarm(0);
    return tu_teardown_store(state);
}

/* One event with an explicit recorded_at; returns its position. */
uint64_t put_at(evs_db *db, const char *tenant, const char *stream,
                const char *type, int64_t recorded_at)
{
    evs_event_data ev = tu_event(type, "{}");
    evs_append_result r;
    ev.recorded_at = recorded_at;
    TU_OK(evs_append(&r, db, tenant, stream, EVS_ANY, &ev, 1));
    return r.first_position;
}

/* A streamless (DCB) event with one tag; returns its position. */
uint64_t put_streamless(evs_db *db, const char *tenant,
                        const char *type, const char *tag)
{
    const char *tags[1] = {tag};
    evs_event_data ev = tu_event(type, "{}");
    evs_append_result r;
    ev.tags = tags;
    ev.ntags = 1;
    TU_OK(evs_dcb_append(&r, NULL, db, tenant, &ev, 1, NULL));
    return r.first_position;
}

uint64_t token_head(evs_db *db, const char *tenant)
{
    uint64_t t = UINT64_MAX;
    TU_OK(evs_token_head(&t, db, tenant));
    return t;
}

uint64_t token_tail(evs_db *db, const char *tenant)
{
    uint64_t t = UINT64_MAX;
    TU_OK(evs_token_tail(&t, db, tenant));
    return t;
}

uint64_t token_at(evs_db *db, int64_t time_us)
{
    uint64_t t = UINT64_MAX;
    TU_OK(evs_token_at(&t, db, time_us));
    return t;
}

/*
 * evs_read_tracking + drain + marker (after the end) + free. Returns the
 * first error. Does not assert: usable from worker threads.
 */
int track(tu_events *out, uint64_t *marker, evs_db *db,
          const evs_tracking *t, uint64_t after, uint64_t limit,
          int64_t timeout_us)
{
    evs_iter *it = NULL;
    int rc = evs_read_tracking(&it, db, t, after, limit, timeout_us);
    if (rc != 0)
        return rc;
    if (it == NULL)
        return EVS_EINVAL; /* the call broke its contract */
    rc = tu_collect(out, it);
    if (rc == 0 && marker != NULL)
        rc = evs_iter_marker(marker, it);
    evs_iter_free(it);
    return rc;
}

/* Run a tracking read with timeout 0; check its positions and marker. */
void expect_track_(evs_db *db, const evs_tracking *t, uint64_t after,
                   uint64_t limit, uint64_t want_marker,
                   const uint64_t *want, size_t nwant,
                   const char *what, const char *file, int line)
{
    tu_events e = {0};
    uint64_t marker = 0xdeadbeef;
    int rc = track(&e, &marker, db, t, after, limit, 0);
    size_t i;
    if (rc != 0)
        tu_report_rc(what, rc, 0, file, line);
    assert_int_equal(rc, 0);
    assert_positions_(&e, want, nwant, what, file, line);
    for (i = 0; i < e.n; i++) {
        if (e.v[i].stream[0] == '$')
            print_error("%s:%d: %s returned the system event %" PRIu64
                        " of %s\n",
                        file, line, what, e.v[i].position, e.v[i].stream);
        assert_true(e.v[i].stream[0] != '$');
    }
    if (marker != want_marker) {
        print_error("%s:%d: %s: marker %" PRIu64 ", expected %" PRIu64 "\n",
                    file, line, what, marker, want_marker);
        assert_int_equal(marker, want_marker);
    }
    tu_events_free(&e);
}

/*
 * Read *t in pages of `page` events, each after the previous page's
 * marker, until a page comes back empty; the pages together must be the
 * unpaged read (limits count returned events only, and markers never skip
 * or repeat one, also when events are skipped for a group or a system
 * stream).
 */
void expect_paging_(evs_db *db, const evs_tracking *t, uint64_t page,
                    const char *file, int line)
{
    tu_events whole = {0}, paged = {0};
    uint64_t after = 0, marker = 0, head = tu_head(db, NULL);
    size_t i, rounds = 0;
    TU_OK(track(&whole, NULL, db, t, 0, 0, 0));
    for (;;) {
        size_t before = paged.n;
        TU_OK(track(&paged, &marker, db, t, after, page, 0));
        if (paged.n - before > page)
            print_error("%s:%d: a page of %zu events, limit %" PRIu64 "\n",
                        file, line, paged.n - before, page);
        assert_true(paged.n - before <= page);
        if (paged.n > before && marker != paged.v[paged.n - 1].position &&
            paged.n - before == page)
            print_error("%s:%d: a full page ends at %" PRIu64 " but its "
                        "marker is %" PRIu64 "\n",
                        file, line, paged.v[paged.n - 1].position, marker);
        if (paged.n - before == page)
            assert_int_equal(marker, paged.v[paged.n - 1].position);
        assert_true(marker >= after);
        if (paged.n == before) {
            assert_int_equal(marker, head);
            break;
        }
        after = marker;
        assert_true(++rounds < 100000);
    }
    if (paged.n != whole.n)
        print_error("%s:%d: %zu events in pages of %" PRIu64 ", %zu "
                    "unpaged\n",
                    file, line, paged.n, page, whole.n);
    assert_int_equal(paged.n, whole.n);
    for (i = 0; i < whole.n; i++)
        assert_int_equal(paged.v[i].position, whole.v[i].position);
    tu_events_free(&whole);
    tu_events_free(&paged);
}

/* Store state a rejected call must leave as it was, and a check that the
 * store still takes an append at head + 1 afterwards. */
void assert_unchanged_and_usable(evs_db *db, const evs_stats *b,
                                 const char *file, int line)
{
    evs_stats a = tu_stats(db);
    evs_append_result r;
    evs_event_data ev = tu_event("Valid", "{\"valid\":true}");
    if (a.events != b->events || a.head_position != b->head_position)
        print_error("%s:%d: the rejected call changed the store: events "
                    "%" PRIu64 " -> %" PRIu64 ", head %" PRIu64
                    " -> %" PRIu64 "\n",
                    file, line, b->events, a.events, b->head_position,
                    a.head_position);
    assert_int_equal(a.events, b->events);
    assert_int_equal(a.head_position, b->head_position);
    assert_int_equal(a.streams, b->streams);
    TU_OK(evs_append(&r, db, NULL, "valid-1", EVS_ANY, &ev, 1));
    assert_int_equal(r.first_position, b->head_position + 1);
}

/* An integer member "key":N of a JSON text (-1 if absent). */
int64_t json_int(const char *json, const char *key)
{
    char pat[64];
    const char *p;
    snprintf(pat, sizeof pat, "\"%s\":", key);
    p = json ? strstr(json, pat) : NULL;
    return p ? strtoll(p + strlen(pat), NULL, 10) : -1;
}

/* Positions of the user (non-system) events of a tenant ("": default;
 * NULL: all), read with evs_read_all. malloc'd, *n set. */
uint64_t *user_positions(evs_db *db, const char *tenant, size_t *n)
{
    tu_events e = {0};
    uint64_t *v;
    size_t i, k = 0;
    TU_OK(tu_read_all(&e, db, tenant, 0, 0));
    v = malloc((e.n + 1) * sizeof *v);
    assert_non_null(v);
    for (i = 0; i < e.n; i++)
        if (e.v[i].stream[0] != '$')
            v[k++] = e.v[i].position;
    tu_events_free(&e);
    *n = k;
    return v;
}

void save_text(evs_db *db, const char *tenant, const char *stream,
               int64_t version, const char *text)
{
    TU_OK(evs_snapshot_save(db, tenant, stream, version, "acct.v1", text,
                            strlen(text)));
}
