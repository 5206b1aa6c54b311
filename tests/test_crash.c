/*
 * test_crash.c -- kill a writer with SIGKILL at random moments and check
 * that every acknowledged event survives, intact, and that nothing torn is
 * visible.
 *
 * Each cycle forks a child that opens the store itself and appends from
 * several threads (single events, batches, and multi-stream appends),
 * reporting every acknowledged event on a pipe. The parent kills it after
 * a random 1-50 ms (or, every fifth cycle, 0-5 ms after the fork, which
 * may land inside evs_open's recovery), then reopens the store and checks:
 *
 *   - positions are gapless 1..head;
 *   - every acknowledged event is at its position with its id and data;
 *   - every append is entirely present or entirely absent (events carry
 *     their append's id, their index in it and its size);
 *   - evs_verify passes, and so does `evs --db DIR verify`;
 *   - appends continue at head + 1.
 *
 * EVS_CRASH_CYCLES overrides the number of cycles (default 40);
 * EVS_TEST_SEED replays a run.
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define DEFAULT_CYCLES 40
#define CHILD_THREADS 3
#define MAX_APPEND_EVENTS 6
#define NSTREAMS 5

/* What the child reports per acknowledged event (one write() per append,
 * at most MAX_APPEND_EVENTS * 40 bytes < PIPE_BUF, so never torn). */
typedef struct report {
    uint64_t position; /* 0: "store opened"; UINT64_MAX: child error */
    evs_uuid id;
    uint64_t append; /* append id: cycle << 40 | thread << 32 | k */
    uint32_t i;      /* index of the event in its append */
    uint32_t c;      /* events in the append; error: -rc */
} report;

#define REPORT_OPENED 0
#define REPORT_ERROR UINT64_MAX

static evs_open_options store_options(void)
{
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    /* Small segments, so kills also land around segment roll-overs. */
    o.segment_size = 1024 * 1024;
    return o;
}

/* The data of event i of append a (of c events): checkable JSON. */
static size_t event_data(char *buf, size_t cap, uint64_t a, uint32_t i,
                         uint32_t c)
{
    size_t pad = (size_t)((a * 7 + i * 13) % 1500), n, j;
    n = (size_t)snprintf(buf, cap, "{\"a\":%" PRIu64 ",\"i\":%u,\"c\":%u,"
                                   "\"pad\":\"",
                         a, i, c);
    for (j = 0; j < pad && n + 3 < cap; j++)
        buf[n++] = (char)('a' + (a + j) % 26);
    buf[n++] = '"';
    buf[n++] = '}';
    buf[n] = '\0';
    return n;
}

#define DATA_CAP 1700

/* ------------------------------------------------------------------ */
/* The child                                                           */
/* ------------------------------------------------------------------ */

typedef struct child_ctx {
    evs_db *db;
    int wfd;
    uint64_t cycle;
    uint64_t seed;
} child_ctx;

typedef struct child_thread {
    child_ctx *ctx;
    uint32_t idx;
} child_thread;

static void child_write(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            _exit(4);
        p += w;
        len -= (size_t)w;
    }
}

static void child_error(int wfd, int rc)
{
    report r;
    memset(&r, 0, sizeof r);
    r.position = REPORT_ERROR;
    r.c = (uint32_t)-rc;
    child_write(wfd, &r, sizeof r);
    _exit(3);
}

static void *child_appender(void *arg)
{
    child_thread *t = arg;
    child_ctx *ctx = t->ctx;
    tu_rng rng;
    uint64_t k;
    char names[NSTREAMS][16];
    size_t si;

    for (si = 0; si < NSTREAMS; si++)
        snprintf(names[si], sizeof names[si], "crash-%zu", si);
    tu_rng_init(&rng, ctx->seed * 31 + t->idx);
    for (k = 0;; k++) {
        uint64_t a = ctx->cycle << 40 | (uint64_t)t->idx << 32 | k;
        char data[MAX_APPEND_EVENTS][DATA_CAP];
        evs_event_data ev[MAX_APPEND_EVENTS];
        evs_append_result res[2];
        report rep[MAX_APPEND_EVENTS];
        unsigned kind = (unsigned)tu_rng_range(&rng, 0, 9);
        uint32_t c, i;
        int rc;

        if (kind < 6)
            c = 1;
        else
            c = (uint32_t)tu_rng_range(&rng, 2, MAX_APPEND_EVENTS);
        for (i = 0; i < c; i++) {
            size_t n = event_data(data[i], sizeof data[i], a, i, c);
            ev[i] = tu_event("Crashy", data[i]);
            ev[i].data_len = n;
            evs_uuid_generate(&ev[i].id);
        }
        if (kind < 8) {
            si = (size_t)tu_rng_range(&rng, 0, NSTREAMS - 1);
            rc = evs_append(&res[0], ctx->db, NULL, names[si], EVS_ANY, ev,
                            c);
            res[1] = res[0];
        } else {
            /* Two parts: events [0, split) and [split, c). */
            evs_stream_append parts[2];
            uint32_t split = 1 + (uint32_t)tu_rng_range(&rng, 0, c - 2);
            size_t s0 = (size_t)tu_rng_range(&rng, 0, NSTREAMS - 1);
            size_t s1 = (s0 + 1 + (size_t)tu_rng_range(&rng, 0,
                                                       NSTREAMS - 2)) %
                        NSTREAMS;
            parts[0] = (evs_stream_append){names[s0], EVS_ANY, ev, split};
            parts[1] =
                (evs_stream_append){names[s1], EVS_ANY, ev + split, c - split};
            rc = evs_append_multi(res, ctx->db, NULL, parts, 2);
        }
        if (rc != 0)
            child_error(ctx->wfd, rc);
        for (i = 0; i < c; i++) {
            memset(&rep[i], 0, sizeof rep[i]);
            /* Parts are numbered in order, so the whole append is one
             * range of positions starting at the first part's. */
            rep[i].position = res[0].first_position + i;
            rep[i].id = ev[i].id;
            rep[i].append = a;
            rep[i].i = i;
            rep[i].c = c;
        }
        child_write(ctx->wfd, rep, c * sizeof rep[0]);
    }
    return NULL;
}

static void child_main(const char *dir, uint64_t cycle, uint64_t seed,
                       int wfd)
{
    evs_open_options o = store_options();
    child_ctx ctx;
    child_thread t[CHILD_THREADS];
    pthread_t th[CHILD_THREADS];
    report opened;
    int rc, i;

    ctx.db = NULL;
    rc = evs_open(&ctx.db, dir, &o);
    if (rc != 0)
        child_error(wfd, rc);
    memset(&opened, 0, sizeof opened);
    opened.position = REPORT_OPENED;
    child_write(wfd, &opened, sizeof opened);
    ctx.wfd = wfd;
    ctx.cycle = cycle;
    ctx.seed = seed;
    for (i = 0; i < CHILD_THREADS; i++) {
        t[i].ctx = &ctx;
        t[i].idx = (uint32_t)i;
        if (pthread_create(&th[i], NULL, child_appender, &t[i]) != 0)
            _exit(5);
    }
    for (;;)
        pause(); /* until SIGKILL */
}

/* ------------------------------------------------------------------ */
/* The parent                                                          */
/* ------------------------------------------------------------------ */

typedef struct acked {
    report *v;
    size_t n, cap;
} acked;

typedef struct reader {
    int fd;
    unsigned char buf[64 * sizeof(report)];
    size_t len;
    int eof;
    int opened;
    int child_rc; /* an error the child reported, else 0 */
} reader;

static void acked_push(acked *a, const report *r)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 1024;
        a->v = realloc(a->v, a->cap * sizeof *a->v);
        if (a->v == NULL)
            abort();
    }
    a->v[a->n++] = *r;
}

/* Read what is available (waiting at most timeout_ms) into acked. */
static void drain(reader *rd, acked *a, int timeout_ms)
{
    struct pollfd p;
    ssize_t r;

    if (rd->eof)
        return;
    p.fd = rd->fd;
    p.events = POLLIN;
    p.revents = 0;
    if (poll(&p, 1, timeout_ms) <= 0)
        return;
    r = read(rd->fd, rd->buf + rd->len, sizeof rd->buf - rd->len);
    if (r == 0) {
        rd->eof = 1;
        return;
    }
    if (r < 0)
        return;
    rd->len += (size_t)r;
    while (rd->len >= sizeof(report)) {
        report rep;
        memcpy(&rep, rd->buf, sizeof rep);
        memmove(rd->buf, rd->buf + sizeof rep, rd->len - sizeof rep);
        rd->len -= sizeof rep;
        if (rep.position == REPORT_OPENED)
            rd->opened = 1;
        else if (rep.position == REPORT_ERROR)
            rd->child_rc = -(int)rep.c;
        else
            acked_push(a, &rep);
    }
}

/* Drain for ms milliseconds of wall time (the kill moment is random; the
 * verdict never depends on it). */
static void drain_for(reader *rd, acked *a, unsigned ms)
{
    int64_t end = tu_now_us() + (int64_t)ms * 1000;
    for (;;) {
        int64_t left = end - tu_now_us();
        if (left <= 0 || rd->eof)
            break;
        drain(rd, a, (int)((left + 999) / 1000));
    }
}

typedef struct problems {
    unsigned n;
} problems;

static void on_problem(void *ctx, const char *problem)
{
    ((problems *)ctx)->n++;
    print_error("verify: %s\n", problem);
}

static int cmp_report_pos(const void *x, const void *y)
{
    const report *a = x, *b = y;
    return a->position < b->position ? -1 : a->position > b->position;
}

/* Check the reopened store against everything acknowledged so far. */
static void check_store(evs_db *db, acked *a, uint64_t cycle)
{
    tu_events e = {0};
    char want[DATA_CAP];
    size_t i, j;
    uint64_t head = tu_head(db, NULL);
    problems pr = {0};
    uint64_t checked = 0;

    TU_OK(tu_read_all(&e, db, NULL, 0, 0));
    assert_int_equal(e.n, head);
    for (i = 0; i < e.n; i++)
        assert_int_equal(e.v[i].position, i + 1);

    /* Every acknowledged event, at its position, intact. */
    qsort(a->v, a->n, sizeof *a->v, cmp_report_pos);
    for (j = 0; j < a->n; j++) {
        const report *r = &a->v[j];
        const tu_event_copy *ev;
        if (j > 0 && a->v[j - 1].position == r->position)
            print_error("position %" PRIu64 " acknowledged twice\n",
                        r->position);
        assert_true(j == 0 || a->v[j - 1].position < r->position);
        if (r->position > e.n)
            print_error("cycle %" PRIu64 ": acknowledged position %" PRIu64
                        " is missing (head %zu)\n",
                        cycle, r->position, e.n);
        assert_in_range(r->position, 1, e.n);
        ev = &e.v[r->position - 1];
        tu_assert_uuid_equal(&ev->id, &r->id);
        event_data(want, sizeof want, r->append, r->i, r->c);
        assert_string_equal(ev->data, want);
    }

    /* Every append entirely present or entirely absent: each event with
     * i == 0 is followed by the rest of its append, in order. */
    for (i = 0; i < e.n;) {
        uint64_t ap;
        unsigned ei, ec, k;
        assert_int_equal(sscanf(e.v[i].data,
                                "{\"a\":%" SCNu64 ",\"i\":%u,\"c\":%u,", &ap,
                                &ei, &ec),
                         3);
        if (ei != 0)
            print_error("position %" PRIu64 ": event %u of append %" PRIu64
                        " without its first event\n",
                        e.v[i].position, ei, ap);
        assert_int_equal(ei, 0);
        assert_in_range(ec, 1, MAX_APPEND_EVENTS);
        if (i + ec > e.n)
            print_error("append %" PRIu64 " at position %" PRIu64
                        " is torn: %u of its %u events stored\n",
                        ap, e.v[i].position, (unsigned)(e.n - i), ec);
        assert_true(i + ec <= e.n);
        for (k = 0; k < ec; k++) {
            event_data(want, sizeof want, ap, k, ec);
            assert_string_equal(e.v[i + k].data, want);
        }
        i += ec;
    }
    tu_events_free(&e);

    TU_OK(evs_verify(&checked, db, on_problem, &pr));
    assert_int_equal(pr.n, 0);
    assert_true(checked > 0);
}

static void test_kill_writer(void **state)
{
    tu_store *s = *state; /* not open */
    const char *env = getenv("EVS_CRASH_CYCLES");
    unsigned cycles = env ? (unsigned)atoi(env) : DEFAULT_CYCLES;
    uint64_t seed = tu_seed("crash");
    evs_open_options o = store_options();
    acked a = {0};
    tu_rng rng;
    unsigned cycle, cycles_with_acks = 0;

    tu_rng_init(&rng, seed);
    if (cycles < 1)
        cycles = 1;

    /* Create the store, with one event in it. */
    tu_store_open_opts(s, &o);
    {
        char data[DATA_CAP];
        evs_event_data ev;
        evs_append_result r;
        report rep;
        size_t n = event_data(data, sizeof data, UINT64_C(0xffffffffff), 0,
                              1);
        ev = tu_event("Crashy", data);
        ev.data_len = n;
        evs_uuid_generate(&ev.id);
        TU_OK(evs_append(&r, s->db, NULL, "crash-parent", EVS_ANY, &ev, 1));
        memset(&rep, 0, sizeof rep);
        rep.position = r.first_position;
        rep.id = ev.id;
        rep.append = UINT64_C(0xffffffffff);
        rep.c = 1;
        acked_push(&a, &rep);
    }
    tu_store_close(s);

    for (cycle = 1; cycle <= cycles; cycle++) {
        int pfd[2], status;
        pid_t pid;
        reader rd;
        size_t before = a.n;
        int early = cycle % 5 == 0;
        unsigned delay = early ? (unsigned)tu_rng_range(&rng, 0, 5)
                               : (unsigned)tu_rng_range(&rng, 1, 50);
        uint64_t head;

        assert_int_equal(pipe(pfd), 0);
        fflush(stdout);
        fflush(stderr);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(pfd[0]);
            child_main(s->dir, cycle, seed + cycle, pfd[1]);
            _exit(0);
        }
        close(pfd[1]);
        memset(&rd, 0, sizeof rd);
        rd.fd = pfd[0];

        if (!early) {
            /* Wait (generously) until the child has the store open and an
             * append acknowledged, so that every such cycle kills a
             * working writer; then let it append for the random delay. */
            int64_t give_up = tu_now_us() + 120 * 1000000LL;
            while ((!rd.opened || a.n == before) && !rd.eof &&
                   rd.child_rc == 0 && tu_now_us() < give_up)
                drain(&rd, &a, 100);
            if (!rd.opened || a.n == before)
                print_error("cycle %u: the child did not open the store and "
                            "append (child error %d %s)\n",
                            cycle, rd.child_rc, tu_errname(rd.child_rc));
            assert_true(rd.opened);
            assert_true(a.n > before);
        }
        drain_for(&rd, &a, delay);
        kill(pid, SIGKILL);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        while (!rd.eof)
            drain(&rd, &a, 1000);
        close(pfd[0]);
        if (rd.child_rc != 0)
            print_error("cycle %u: the child's append failed with %d (%s)\n",
                        cycle, rd.child_rc, tu_errname(rd.child_rc));
        assert_int_equal(rd.child_rc, 0);
        /* Killed by us, not dead of something else. */
        if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL))
            print_error("cycle %u: child status 0x%x\n", cycle, status);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        if (!early)
            cycles_with_acks++;

        /* Reopen (recovery), check, and append on. */
        tu_store_open_opts(s, &o);
        check_store(s->db, &a, cycle);
        head = tu_head(s->db, NULL);
        {
            char data[DATA_CAP];
            uint64_t ap = (uint64_t)cycle << 40 | UINT64_C(0xffffffff);
            evs_event_data ev;
            evs_append_result r;
            report rep;
            size_t n = event_data(data, sizeof data, ap, 0, 1);
            ev = tu_event("Crashy", data);
            ev.data_len = n;
            evs_uuid_generate(&ev.id);
            TU_OK(evs_append(&r, s->db, NULL, "crash-parent", EVS_ANY, &ev,
                             1));
            assert_int_equal(r.first_position, head + 1);
            memset(&rep, 0, sizeof rep);
            rep.position = r.first_position;
            rep.id = ev.id;
            rep.append = ap;
            rep.c = 1;
            acked_push(&a, &rep);
        }
        tu_store_close(s);

        {
            const char *argv[] = {"--db", s->dir, "verify", NULL};
            char *out = NULL;
            int rc = tu_run_cli(&out, argv);
            if (rc != 0)
                print_error("cycle %u: evs verify exited %d:\n%s\n", cycle,
                            rc, out ? out : "");
            assert_int_equal(rc, 0);
            free(out);
        }
        print_message("cycle %u: killed after %u ms%s, %zu acknowledged, "
                      "head %" PRIu64 "\n",
                      cycle, delay, early ? " from fork" : "", a.n - before,
                      head);
    }
    print_message("%u cycles killed a writer that had appended\n",
                  cycles_with_acks);
    free(a.v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kill_writer,
                                        tu_setup_store_closed,
                                        tu_teardown_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
