/*
 * test_scavenge.c -- the embedded store's scavenge (issue 17): the backend
 * entry (db->ops->scavenge, src/embedded/scavenge.c) driven by hand-made
 * plans, so that what it removes is known exactly: every read path after
 * it, a reopen and an index rebuild, appends and a reader during it, and
 * a SIGKILL at every step of it. Embedded only (the log's segments).
 */
#include "testutil.h"

#include "core/backend.h"
#include "embedded/format.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SEG (1024u * 1024u)

static evs_open_options small(void)
{
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    o.segment_size = SEG;
    return o;
}

static evs_db *open_dir(const char *dir)
{
    evs_open_options o = small();
    evs_db *db = NULL;
    TU_OK(evs_open(&db, dir, &o));
    return db;
}

/* ---- the model: every event appended, and whether the plan drops it ---- */

#define NSTREAMS 6
static const char *const tenants[NSTREAMS] = {"", "", "", "", "t2", "t2"};
static const char *const streams[NSTREAMS] = {"a-0", "a-1", "a-2", "a-3", "a-4", "a-5"};

typedef struct mev {
    uint64_t pos;
    int64_t ver;
    int si;        /* stream index */
    int64_t at;
    evs_uuid id;
    char data[400];
    int elig;      /* the plan makes it eligible */
} mev;

typedef struct model {
    mev *v;
    size_t n, cap;
    int64_t next_ver[NSTREAMS];
    int64_t clock;
} model;

static model M;

static void model_reset(void)
{
    free(M.v);
    memset(&M, 0, sizeof(M));
    M.clock = 1600000000000000; /* explicit recorded_at: expiry is exact */
}

/* Append rounds x NSTREAMS batches of `batch` events, pad bytes of data. */
static void populate(evs_db *db, int rounds, int batch, int pad)
{
    evs_event_data ev[64];
    char data[64][400];
    const char *tag_hot[] = {"hot"};
    assert_true(batch <= 64 && pad < 300);
    for (int r = 0; r < rounds; r++) {
        for (int si = 0; si < NSTREAMS; si++) {
            for (int i = 0; i < batch; i++) {
                int64_t v = M.next_ver[si] + i;
                snprintf(data[i], sizeof(data[i]), "{\"s\":%d,\"v\":%" PRId64 ",\"pad\":\"%.*s\"}",
                         si, v, pad,
                         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
                ev[i] = tu_event_id(si % 2 ? "Odd" : "Even", data[i]);
                ev[i].recorded_at = ++M.clock;
                if (si == 5) {
                    ev[i].tags = tag_hot;
                    ev[i].ntags = 1;
                }
            }
            evs_append_result res;
            TU_OK(evs_append(&res, db, tenants[si][0] ? tenants[si] : NULL, streams[si],
                             EVS_ANY, ev, (size_t)batch));
            for (int i = 0; i < batch; i++) {
                if (M.n == M.cap) {
                    M.cap = M.cap ? 2 * M.cap : 1024;
                    M.v = realloc(M.v, M.cap * sizeof(*M.v));
                    assert_non_null(M.v);
                }
                mev *e = &M.v[M.n++];
                memset(e, 0, sizeof(*e));
                e->pos = res.first_position + (uint64_t)i;
                e->ver = M.next_ver[si] + i;
                e->si = si;
                e->at = ev[i].recorded_at;
                e->id = ev[i].id;
                memcpy(e->data, data[i], sizeof(e->data));
            }
            M.next_ver[si] += batch;
        }
    }
}

/* ---- plans ---- */

static evs__scavenge_stream plan_v[NSTREAMS];
static evs__scavenge_plan plan;
static uint64_t progress_calls, progress_last, progress_total;

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
    (void)ctx;
    progress_calls++;
    assert_true(done <= total);
    progress_last = done;
    progress_total = total;
}

/* The plan of the tests (sorted by tenant, stream), and each event's
 * eligibility under it. */
static void make_plan(void)
{
    size_t n = 0;
    /* a-0: versions below a third */
    plan_v[n] = (evs__scavenge_stream){"", "a-0", 0, M.next_ver[0] / 3, 0, M.next_ver[0] - 1};
    n++;
    /* a-2: recorded before its event of version two thirds */
    int64_t cut = 0;
    for (size_t i = 0; i < M.n; i++)
        if (M.v[i].si == 2 && M.v[i].ver == 2 * M.next_ver[2] / 3)
            cut = M.v[i].at;
    plan_v[n] = (evs__scavenge_stream){"", "a-2", 0, 0, cut, M.next_ver[2] - 1};
    n++;
    /* t2/a-4: all but its last */
    plan_v[n] = (evs__scavenge_stream){"t2", "a-4", 0, M.next_ver[4] - 1, 0, M.next_ver[4] - 1};
    n++;
    /* t2/a-5: in the plan, nothing eligible */
    plan_v[n] = (evs__scavenge_stream){"t2", "a-5", 0, 0, 0, M.next_ver[5] - 1};
    n++;
    plan.streams = plan_v;
    plan.nstreams = n;
    plan.progress = on_progress;
    plan.ctx = NULL;
    for (size_t i = 0; i < M.n; i++) {
        mev *e = &M.v[i];
        const evs__scavenge_stream *ps =
            evs__scavenge_find(&plan, tenants[e->si], strlen(tenants[e->si]),
                               streams[e->si], strlen(streams[e->si]));
        e->elig = evs__scavenge_drop(ps, e->ver, e->at);
    }
}

static int scavenge(evs_scavenge_result *res, evs_db *db)
{
    memset(res, 0, sizeof(*res));
    return db->ops->scavenge(res, db, &plan);
}

/* ---- checks ---- */

typedef struct problems {
    unsigned n;
} problems;

static void on_problem(void *ctx, const char *problem)
{
    problems *p = ctx;
    print_message("verify problem: %s\n", problem);
    p->n++;
}

static void assert_verify_clean(evs_db *db)
{
    problems p = {0};
    TU_OK(evs_verify(NULL, db, on_problem, &p));
    assert_int_equal(p.n, 0);
}

static void assert_same(const tu_event_copy *c, const mev *e)
{
    assert_non_null(e);
    assert_int_equal(c->position, e->pos);
    assert_int_equal(c->stream_version, e->ver);
    assert_string_equal(c->stream, streams[e->si]);
    assert_string_equal(c->tenant, tenants[e->si]);
    assert_string_equal(c->data, e->data);
    assert_int_equal(c->recorded_at, e->at);
    assert_true(tu_uuid_eq(&c->id, &e->id));
}

/*
 * What a read returned (in order) against the model's events selected by
 * sel: strict, exactly the non-eligible ones; otherwise (after a crash in
 * the middle) every non-eligible one, and eligible ones perhaps. Same
 * positions and content either way.
 */
static void assert_read(const tu_events *got, int (*sel)(const mev *, int), int arg,
                        int strict, const char *what)
{
    size_t j = 0;
    for (size_t i = 0; i < M.n; i++) {
        const mev *e = &M.v[i];
        if (!sel(e, arg))
            continue;
        if (j < got->n && got->v[j].position == e->pos) {
            if (strict && e->elig) {
                print_message("%s: eligible position %" PRIu64 " was returned\n", what,
                              e->pos);
                fail();
            }
            assert_same(&got->v[j], e);
            j++;
        } else if (!e->elig) {
            print_message("%s: position %" PRIu64 " (stream %s version %" PRId64
                          ") is missing (%zu of %zu returned matched, next %" PRIu64 ")\n",
                          what, e->pos, streams[e->si], e->ver, j, got->n,
                          j < got->n ? got->v[j].position : 0);
            fail();
        }
    }
    if (j != got->n) {
        print_message("%s: %zu events returned, %zu matched the model in order\n", what,
                      got->n, j);
        fail();
    }
}

static int sel_all(const mev *e, int arg) { (void)e; (void)arg; return 1; }
static int sel_tenant(const mev *e, int t) { return (tenants[e->si][0] != 0) == t; }
static int sel_stream(const mev *e, int si) { return e->si == si; }
static int sel_even_default(const mev *e, int arg)
{
    (void)arg;
    return e->si % 2 == 0 && !tenants[e->si][0];
}
static int sel_hot(const mev *e, int arg) { (void)arg; return e->si == 5; }

/* light: the log only (every event, by position) */
static void check_reads_(evs_db *db, int strict, int light)
{
    tu_events got = {0};
    evs_iter *it;
    /* the log */
    TU_OK(evs_read_log(&it, db, 0, 0));
    TU_OK(tu_collect(&got, it));
    evs_iter_free(it);
    assert_read(&got, sel_all, 0, strict, "read_log");
    tu_events_clear(&got);
    if (light) {
        tu_events_free(&got);
        return;
    }
    /* $all of each tenant */
    TU_OK(tu_read_all(&got, db, NULL, 0, 0));
    assert_read(&got, sel_all, 0, strict, "read_all every tenant");
    tu_events_clear(&got);
    TU_OK(tu_read_all(&got, db, "", 0, 0));
    assert_read(&got, sel_tenant, 0, strict, "read_all default");
    tu_events_clear(&got);
    TU_OK(tu_read_all(&got, db, "t2", 0, 0));
    assert_read(&got, sel_tenant, 1, strict, "read_all t2");
    tu_events_clear(&got);
    /* each stream */
    for (int si = 0; si < NSTREAMS; si++) {
        TU_OK(tu_read_stream(&got, db, tenants[si][0] ? tenants[si] : NULL, streams[si], 0,
                             EVS_FORWARD, 0));
        assert_read(&got, sel_stream, si, strict, streams[si]);
        tu_events_clear(&got);
    }
    /* DCB queries: a type, a tag */
    const char *even[] = {"Even"}, *hot[] = {"hot"};
    evs_query_item qi = {even, 1, NULL, 0};
    evs_query q = {&qi, 1};
    TU_OK(tu_read_query(&got, NULL, db, "", &q, 0, EVS_FORWARD, 0));
    assert_read(&got, sel_even_default, 0, strict, "query Even");
    tu_events_clear(&got);
    evs_query_item qh = {NULL, 0, hot, 1};
    evs_query qq = {&qh, 1};
    TU_OK(tu_read_query(&got, NULL, db, "t2", &qq, 0, EVS_FORWARD, 0));
    assert_read(&got, sel_hot, 0, strict, "query hot");
    tu_events_clear(&got);
    /* one event by id; $all from a position inside a hole */
    for (size_t i = 0; i < M.n; i += 97) {
        const mev *e = &M.v[i];
        int rc = evs_read_event(&it, db, &e->id);
        if (e->elig && strict) {
            assert_int_equal(rc, EVS_ENOTFOUND);
            continue;
        }
        if (rc == EVS_ENOTFOUND && e->elig)
            continue;
        TU_OK(rc);
        TU_OK(tu_collect(&got, it));
        evs_iter_free(it);
        assert_int_equal(got.n, 1);
        assert_same(&got.v[0], e);
        tu_events_clear(&got);
    }
    if (strict) {
        for (size_t i = 0; i < M.n; i++) {
            if (!M.v[i].elig || tenants[M.v[i].si][0])
                continue;
            TU_OK(tu_read_all(&got, db, "", M.v[i].pos, 3));
            const mev *want = NULL;
            for (size_t j = i; j < M.n && !want; j++)
                if (!M.v[j].elig && !tenants[M.v[j].si][0])
                    want = &M.v[j];
            assert_true(got.n > 0);
            assert_same(&got.v[0], want);
            tu_events_clear(&got);
            break;
        }
    }
    tu_events_free(&got);
}

static void check_reads(evs_db *db, int strict)
{
    check_reads_(db, strict, 0);
}

static size_t count_elig(void)
{
    size_t n = 0;
    for (size_t i = 0; i < M.n; i++)
        n += M.v[i].elig;
    return n;
}

/* The eligible events in the last (active) segment stay: only sealed
 * segments are rewritten. Returns the active segment's first position
 * (from its header), *nseg the number of segments. */
static uint64_t keep_active(const char *dir, size_t *nseg)
{
    char **segs = tu_segments(dir, nseg);
    size_t len;
    unsigned char *h = tu_read_file(segs[*nseg - 1], &len);
    uint64_t first = 0;
    for (int i = 7; i >= 0; i--)
        first = first << 8 | h[32 + i];
    free(h);
    tu_free_strings(segs, *nseg);
    for (size_t i = 0; i < M.n; i++)
        if (M.v[i].pos >= first)
            M.v[i].elig = 0;
    return first;
}

/* Delete the index: the next open rebuilds it from the log. */
static void drop_index(const char *dir)
{
    char *p = tu_path_join(dir, "index");
    assert_int_equal(tu_rmrf(p), 0);
    free(p);
}

/* ---- plan-driven removal, every read path ---- */

static void test_scavenge_plan(void **state)
{
    tu_store *s = *state;
    model_reset();
    s->db = open_dir(s->dir);
    populate(s->db, 40, 40, 250);
    /* a few more in a new segment, so that the segments before are sealed
     * with a committed record after them */
    evs_stats st0 = tu_stats(s->db);
    assert_true(st0.segments >= 4);
    make_plan();
    size_t elig = count_elig();
    assert_true(elig > 1000);
    size_t nseg;
    uint64_t last_first = keep_active(s->dir, &nseg);
    size_t elig_sealed = count_elig();

    /* a reader in another handle (as another process would: read-only,
     * beside the writer) that mapped the segments before */
    evs_open_options ro = small();
    ro.flags = EVS_OPEN_READONLY;
    evs_db *early = NULL;
    TU_OK(evs_open(&early, s->dir, &ro));
    check_reads(early, 0);

    evs_scavenge_result r;
    progress_calls = 0;
    TU_OK(scavenge(&r, s->db));
    print_message("scavenge: %" PRIu64 " removed, %" PRIu64 " examined, %" PRIu64
                  " rewritten, %" PRIu64 " -> %" PRIu64 " bytes\n", r.events_removed,
                  r.segments_examined, r.segments_rewritten, r.bytes_before, r.bytes_after);
    assert_int_equal(r.events_removed, elig_sealed);
    assert_int_equal(r.segments_examined, nseg - 1);
    assert_true(r.segments_rewritten >= 1 && r.segments_rewritten <= r.segments_examined);
    assert_int_equal(r.segments_resumed, 0);
    assert_true(r.bytes_after < r.bytes_before);
    assert_true(progress_calls >= r.segments_examined);
    assert_int_equal(progress_last, progress_total);

    evs_stats st = tu_stats(s->db);
    assert_int_equal(st.events, M.n - elig_sealed);
    assert_int_equal(st.head_position, M.v[M.n - 1].pos);
    assert_true(st.log_bytes < st0.log_bytes);
    check_reads(s->db, 1);
    assert_verify_clean(s->db);
    check_reads(early, 1);
    assert_verify_clean(early);
    TU_OK(evs_close(early));
    /* the writer's handle, still open, maps no replaced file: their
     * blocks are free already */
    FILE *mf = fopen("/proc/self/maps", "r");
    assert_non_null(mf);
    char line[8192];
    int mapped = 0, deleted = 0;
    while (fgets(line, sizeof(line), mf)) {
        mapped += strstr(line, ".evslog") != NULL;
        deleted += strstr(line, ".evslog (deleted)") != NULL;
    }
    fclose(mf);
    assert_true(mapped >= (int)nseg);
    assert_int_equal(deleted, 0);
    /* a backup of it (position 1 is gone: the backup's identity is "-") */
    char bdir[4200];
    snprintf(bdir, sizeof(bdir), "%s/backup", s->tmp);
    evs_backup_result br;
    TU_OK(evs_backup(&br, s->db, bdir, NULL));
    evs_db *bdb = open_dir(bdir);
    assert_verify_clean(bdb);
    check_reads(bdb, 1);
    TU_OK(evs_close(bdb));

    /* appends go on; versions continue */
    populate(s->db, 1, 5, 10);
    for (int si = 0; si < NSTREAMS; si++)
        assert_int_equal(tu_version(s->db, tenants[si][0] ? tenants[si] : NULL, streams[si]),
                         M.next_ver[si] - 1);
    check_reads(s->db, 1);

    /* again: nothing left to remove in the sealed segments */
    for (size_t i = 0; i < M.n; i++)
        if (M.v[i].elig && M.v[i].pos >= last_first)
            M.v[i].elig = 0;
    TU_OK(scavenge(&r, s->db));
    assert_int_equal(r.events_removed, 0);
    assert_int_equal(r.segments_rewritten, 0);

    /* a reopen; an index rebuilt from the log */
    tu_store_close(s);
    s->db = open_dir(s->dir);
    assert_verify_clean(s->db);
    check_reads(s->db, 1);
    tu_store_close(s);
    drop_index(s->dir);
    s->db = open_dir(s->dir);
    assert_verify_clean(s->db);
    check_reads(s->db, 1);
    st = tu_stats(s->db);
    assert_int_equal(st.events, M.n - elig_sealed);
    /* a read-only open beside the writer */
    evs_db *rdb = NULL;
    TU_OK(evs_open(&rdb, s->dir, &ro));
    check_reads(rdb, 1);
    TU_OK(evs_close(rdb));
    tu_store_close(s);
    model_reset();
}

/* ---- a tombstoned stream (verify's stream count on INT64_MAX) ---- */

static void test_scavenge_tombstone(void **state)
{
    tu_store *s = *state;
    s->db = open_dir(s->dir);
    evs_event_data ev[50];
    char data[50][300];
    for (int r = 0; r < 60; r++) {
        const char *stream = r % 2 ? "keep-1" : "gone-1";
        for (int i = 0; i < 50; i++) {
            snprintf(data[i], sizeof(data[i]), "{\"r\":%d,\"i\":%d,\"pad\":\"%0250d\"}", r, i, 0);
            ev[i] = tu_event("E", data[i]);
        }
        TU_OK(evs_append(NULL, s->db, NULL, stream, EVS_ANY, ev, 50));
    }
    uint64_t tpos = 0;
    TU_OK(evs_stream_tombstone(&tpos, s->db, NULL, "gone-1", EVS_ANY));
    assert_true(tpos > 0);
    assert_verify_clean(s->db); /* a head of INT64_MAX */
    /* a record after, in a new segment: the ones before are sealed */
    evs_stats st = tu_stats(s->db);
    static const evs__scavenge_stream ent[] = {
        {"", "gone-1", 1, 0, 0, EVS__TOMBSTONE_VERSION},
    };
    evs__scavenge_plan p = {ent, 1, NULL, NULL};
    evs_scavenge_result r = {0};
    TU_OK(s->db->ops->scavenge(&r, s->db, &p));
    assert_true(r.events_removed > 0);
    evs_stats st2 = tu_stats(s->db);
    assert_int_equal(st2.events, st.events - r.events_removed);
    assert_verify_clean(s->db);
    tu_store_close(s);
    drop_index(s->dir);
    s->db = open_dir(s->dir);
    assert_verify_clean(s->db);
    assert_int_equal(tu_stats(s->db).events, st2.events);
    /* the tombstone stays; the stream cannot be written */
    evs_event_data one = tu_event("E", "{}");
    assert_int_equal(evs_append(NULL, s->db, NULL, "gone-1", EVS_ANY, &one, 1), EVS_EDELETED);
    tu_store_close(s);
}

/* ---- online: appends and a reader during the scavenge ---- */

#define WRITERS 8
#define PER_WRITER 4000 /* at most; they append until told to stop */
static _Atomic int stop_writers;
static _Atomic uint64_t appended;

typedef struct online {
    evs_db *db;
    int idx, n;
    uint64_t pos[PER_WRITER];
    _Atomic int *writers_done;
    uint64_t *seen;
    size_t nseen, seen_cap;
    int bad;
} online;

static void *writer_main(void *arg)
{
    online *o = arg;
    char stream[32], data[64];
    snprintf(stream, sizeof(stream), "w-%d", o->idx);
    /* until stopped, then 20 more: the scavenge runs among appends */
    int left = 20;
    for (int i = 0; i < PER_WRITER && left > 0; i++) {
        if (atomic_load(&stop_writers))
            left--;
        snprintf(data, sizeof(data), "{\"w\":%d,\"i\":%d}", o->idx, i);
        evs_event_data ev = tu_event("W", data);
        evs_append_result res;
        if (evs_append(&res, o->db, NULL, stream, EVS_ANY, &ev, 1) != 0) {
            o->bad = 1;
            break;
        }
        o->pos[i] = res.first_position;
        o->n = i + 1;
        atomic_fetch_add(&appended, 1);
    }
    atomic_fetch_add(o->writers_done, 1);
    return NULL;
}

static void *reader_main(void *arg)
{
    online *o = arg;
    uint64_t last = 0;
    for (;;) {
        int done = atomic_load(o->writers_done) == WRITERS;
        uint64_t head = 0;
        if (evs_head_position(&head, o->db, NULL) != 0) {
            o->bad = 2;
            return NULL;
        }
        evs_iter *it;
        if (evs_read_all(&it, o->db, NULL, last + 1, 0) != 0) {
            o->bad = 3;
            return NULL;
        }
        const evs_event *ev;
        int rc;
        while ((rc = evs_iter_next(&ev, it)) == 0) {
            if (ev->position <= last) {
                o->bad = 4;
                break;
            }
            last = ev->position;
            if (o->nseen == o->seen_cap) {
                o->seen_cap = o->seen_cap ? 2 * o->seen_cap : 4096;
                o->seen = realloc(o->seen, o->seen_cap * sizeof(*o->seen));
            }
            o->seen[o->nseen++] = last;
        }
        evs_iter_free(it);
        if (rc != EVS_ITEROVER && !o->bad) {
            print_message("reader: %s\n", evs_last_error());
            o->bad = 5;
        }
        if (o->bad || (done && last >= head))
            return NULL;
    }
}

static void test_scavenge_online(void **state)
{
    tu_store *s = *state;
    model_reset();
    s->db = open_dir(s->dir);
    populate(s->db, 20, 40, 250); /* ~2.4 MiB: three segments */
    make_plan();

    _Atomic int wdone = 0;
    atomic_store(&stop_writers, 0);
    atomic_store(&appended, 0);
    online w[WRITERS], rd;
    pthread_t wt[WRITERS], rt;
    memset(&rd, 0, sizeof(rd));
    rd.db = s->db;
    rd.writers_done = &wdone;
    assert_int_equal(pthread_create(&rt, NULL, reader_main, &rd), 0);
    for (int i = 0; i < WRITERS; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        w[i].db = s->db;
        w[i].idx = i;
        w[i].writers_done = &wdone;
        assert_int_equal(pthread_create(&wt[i], NULL, writer_main, &w[i]), 0);
    }
    while (atomic_load(&appended) < 8 * WRITERS)
        usleep(1000);
    evs_scavenge_result r;
    TU_OK(scavenge(&r, s->db));
    uint64_t during = atomic_load(&appended);
    atomic_store(&stop_writers, 1);
    for (int i = 0; i < WRITERS; i++)
        pthread_join(wt[i], NULL);
    assert_int_equal(atomic_load(&wdone), WRITERS);
    pthread_join(rt, NULL);
    assert_int_equal(rd.bad, 0);
    assert_true(r.events_removed > 0);
    print_message("online: %" PRIu64 " removed in %" PRIu64 " segments while %d writers "
                  "appended (%" PRIu64 " appends before it returned, %" PRIu64 " in all); "
                  "the reader saw %zu events\n", r.events_removed, r.segments_rewritten,
                  WRITERS, during, atomic_load(&appended), rd.nseen);

    /* the log now: the model's non-eligible events all there, eligible
     * ones only where their segment was not rewritten (the active one),
     * and every acknowledged append */
    tu_events got = {0};
    evs_iter *it;
    TU_OK(evs_read_log(&it, s->db, 0, 0));
    TU_OK(tu_collect(&got, it));
    evs_iter_free(it);
    size_t gone = 0, j = 0;
    for (size_t i = 0; i < M.n; i++) {
        while (j < got.n && got.v[j].position < M.v[i].pos)
            j++;
        int present = j < got.n && got.v[j].position == M.v[i].pos;
        if (!present) {
            assert_true(M.v[i].elig);
            gone++;
        } else {
            assert_same(&got.v[j], &M.v[i]);
        }
    }
    assert_int_equal(gone, r.events_removed);
    for (int i = 0; i < WRITERS; i++) {
        assert_int_equal(w[i].bad, 0);
        for (int k = 0; k < w[i].n; k++) {
            size_t lo = 0, hi = got.n;
            while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                if (got.v[mid].position < w[i].pos[k])
                    lo = mid + 1;
                else
                    hi = mid;
            }
            assert_true(lo < got.n && got.v[lo].position == w[i].pos[k]);
        }
    }
    /* the reader saw every surviving event once, in order (seen is
     * strictly increasing: checked as it read) */
    size_t k = 0;
    for (size_t i = 0; i < got.n; i++) {
        while (k < rd.nseen && rd.seen[k] < got.v[i].position)
            k++;
        assert_true(k < rd.nseen && rd.seen[k] == got.v[i].position);
    }
    tu_events_free(&got);
    free(rd.seen);
    assert_verify_clean(s->db);
    tu_store_close(s);
    model_reset();
}

/* ---- SIGKILL at every step ---- */

static uint32_t progress_done_segment(const char *dir)
{
    char path[4400];
    unsigned char b[32];
    snprintf(path, sizeof(path), "%s/scavenge", dir);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, b, sizeof(b));
    close(fd);
    if (n != 32)
        return 0;
    return (uint32_t)b[12] | (uint32_t)b[13] << 8 | (uint32_t)b[14] << 16 |
           (uint32_t)b[15] << 24;
}

static void test_scavenge_sigkill(void **state)
{
    tu_store *s = *state;
    model_reset();
    s->db = open_dir(s->dir);
    populate(s->db, 24, 40, 250); /* ~2.9 MiB: three segments, two sealed */
    make_plan();
    tu_store_close(s);
    size_t nseg;
    (void)keep_active(s->dir, &nseg);
    /* A process crash keeps the page cache: what is durable on a disk
     * does not matter here (power loss is another test), so the ~70 runs
     * go to a tmpfs when there is one, where fsync costs nothing. */
    char shm[] = "/dev/shm/evs-scavenge-XXXXXX";
    const char *base = access("/dev/shm", W_OK) == 0 && mkdtemp(shm) ? shm : s->tmp;
    char pristine[4200], work[4200];
    snprintf(pristine, sizeof(pristine), "%s/pristine", base);
    tu_copy_tree(s->dir, pristine);

    int kills = 0, resumed_seen = 0, completed = 0;
    for (int at = 1; at <= 200 && !completed; at++) {
        snprintf(work, sizeof(work), "%s/work-%d", base, at);
        tu_copy_tree(pristine, work);
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid == 0) {
            char n[16];
            snprintf(n, sizeof(n), "%d", at);
            setenv("EVS_DEBUG_SCAVENGE_KILL", n, 1);
            setenv("EVS_DEBUG_SCAVENGE_TXN", "32", 1);
            evs_open_options o = small();
            evs_db *db = NULL;
            if (evs_open(&db, work, &o) != 0)
                _exit(2);
            evs_scavenge_result r;
            memset(&r, 0, sizeof(r));
            plan.progress = NULL;
            if (db->ops->scavenge(&r, db, &plan) != 0)
                _exit(3);
            _exit(evs_close(db) == 0 ? 0 : 4);
        }
        int st = 0;
        assert_true(pid > 0);
        assert_int_equal(waitpid(pid, &st, 0), pid);
        if (WIFEXITED(st)) {
            assert_int_equal(WEXITSTATUS(st), 0);
            completed = 1;
        } else {
            assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
            kills++;
        }
        uint32_t done = progress_done_segment(work);
        if (getenv("EVS_TEST_VERBOSE"))
            print_message("killed at step %d (done %u)\n", at, done);
        evs_db *db = open_dir(work);
        assert_verify_clean(db);
        /* every read path at every 8th step, the log at each */
        check_reads_(db, completed, at % 8 != 1);
        evs_scavenge_result r;
        TU_OK(scavenge(&r, db));
        assert_int_equal(r.segments_resumed, completed ? 0 : done);
        resumed_seen += r.segments_resumed > 0;
        check_reads_(db, 1, at % 8 != 1);
        assert_verify_clean(db);
        TU_OK(evs_close(db));
        assert_int_equal(tu_rmrf(work), 0);
    }
    print_message("sigkill: killed at %d steps, then completed; %d resumed\n", kills,
                  resumed_seen);
    if (base == shm)
        assert_int_equal(tu_rmrf(shm), 0);
    assert_true(completed);
    assert_true(kills >= 50);
    assert_true(resumed_seen > 0);
    model_reset();
}

/* ---- damage: holes only count as holes where the header says so ---- */

/* The offset of the k-th record (0-based) of segment file path, parsing
 * lengths; asserts it exists. */
static uint32_t record_offset(const char *path, int k)
{
    size_t len;
    unsigned char *b = tu_read_file(path, &len);
    uint32_t off = 64;
    for (int i = 0; i < k; i++) {
        uint32_t rl = (uint32_t)b[off + 8] | (uint32_t)b[off + 9] << 8 |
                      (uint32_t)b[off + 10] << 16 | (uint32_t)b[off + 11] << 24;
        assert_true(rl >= 128 && off + rl < len);
        off += (rl + 7) & ~7u;
    }
    assert_true(b[off] != 0);
    free(b);
    return off;
}

static unsigned verify_problems(evs_db *db)
{
    problems p = {0};
    int rc = evs_verify(NULL, db, on_problem, &p);
    assert_true(rc == 0 || rc == EVS_ECORRUPT);
    return p.n;
}

static void test_scavenge_damage(void **state)
{
    tu_store *s = *state;
    model_reset();
    s->db = open_dir(s->dir);
    populate(s->db, 16, 40, 250);
    make_plan();
    tu_store_close(s);
    char copy[4200], copy2[4200], seg1[4300];
    snprintf(copy, sizeof(copy), "%s/copy", s->tmp);
    snprintf(copy2, sizeof(copy2), "%s/copy2", s->tmp);
    tu_copy_tree(s->dir, copy);

    /* zeros in the middle of a segment a scavenge never rewrote: damage,
     * for evs_verify and for the scavenge (which leaves it as it is) */
    snprintf(seg1, sizeof(seg1), "%s/log/%016x.evslog", s->dir, 1);
    uint32_t off = record_offset(seg1, 100), next = record_offset(seg1, 101);
    static const unsigned char zeros[4096];
    tu_write_at(seg1, off, zeros, next - off);
    tu_copy_tree(s->dir, copy2);
    evs_db *db = open_dir(s->dir); /* its index is trusted: opens */
    assert_true(verify_problems(db) > 0);
    evs_scavenge_result r;
    assert_int_equal(scavenge(&r, db), EVS_ECORRUPT);
    TU_ASSERT_ERRMSG();
    assert_int_equal(r.segments_rewritten, 0);
    TU_OK(evs_close(db));
    /* a copy rebuilds its index from the log: the gap is damage there */
    evs_open_options o = small();
    evs_db *rdb = NULL;
    assert_int_equal(evs_open(&rdb, copy2, &o), EVS_ECORRUPT);
    TU_ASSERT_ERRMSG();

    /* a damaged record in a scavenged segment: reported, never a crash;
     * and so is a rebuild over it */
    s->db = open_dir(copy);
    TU_OK(scavenge(&r, s->db));
    assert_true(r.segments_rewritten >= 1);
    tu_store_close(s);
    snprintf(seg1, sizeof(seg1), "%s/log/%016x.evslog", copy, 1);
    size_t len;
    unsigned char *b = tu_read_file(seg1, &len);
    assert_true(b[40] & 1); /* SCAVENGED */
    uint32_t at = 64;
    while (at < len && b[at] == 0)
        at += 8; /* the first survivor */
    assert_true(at < len);
    unsigned char flip = b[at + 200] ^ 0x5a;
    free(b);
    tu_write_at(seg1, at + 200, &flip, 1);
    s->db = open_dir(copy);
    assert_true(verify_problems(s->db) > 0);
    tu_events got = {0};
    evs_iter *it;
    TU_OK(evs_read_log(&it, s->db, 0, 0));
    assert_int_equal(tu_collect(&got, it), EVS_ECORRUPT);
    evs_iter_free(it);
    tu_events_free(&got);
    assert_int_equal(scavenge(&r, s->db), EVS_ECORRUPT);
    tu_store_close(s);
    drop_index(copy);
    assert_int_equal(evs_open(&rdb, copy, &o), EVS_ECORRUPT);
    TU_ASSERT_ERRMSG();
    model_reset();
}

/* ---- ENOSPC while the new segment is written (tests/faultfs) ---- */

#ifndef EVS_FAULTFS_PATH
#error "EVS_FAULTFS_PATH must name the evs_faultfs shim"
#endif

/* The child, under the shim (every write under <dir>/log counted; the Nth
 * fails with ENOSPC): a scavenge must fail with EVS_ENOSPC, leave no temp
 * file, and the store verify clean. Its exit status says which failed. */
static int enospc_child(const char *dir, int64_t keep_from, int64_t last)
{
    evs_open_options o = small();
    evs_db *db = NULL;
    if (evs_open(&db, dir, &o) != 0) {
        fprintf(stderr, "enospc child: open: %s\n", evs_last_error());
        return 10;
    }
    evs__scavenge_stream e = {"", "a-0", 0, keep_from, 0, last};
    evs__scavenge_plan p = {&e, 1, NULL, NULL};
    evs_scavenge_result r;
    memset(&r, 0, sizeof(r));
    int rc = db->ops->scavenge(&r, db, &p);
    if (rc != EVS_ENOSPC) {
        fprintf(stderr, "enospc child: scavenge returned %d: %s\n", rc, evs_last_error());
        return 11;
    }
    if (evs_verify(NULL, db, NULL, NULL) != 0)
        return 12;
    if (evs_close(db) != 0)
        return 13;
    char cmd[4400];
    snprintf(cmd, sizeof(cmd), "ls '%s'/log | grep -q scav", dir);
    if (system(cmd) == 0)
        return 14; /* a temp file left */
    return 0;
}

static void test_scavenge_enospc(void **state)
{
    tu_store *s = *state;
    model_reset();
    s->db = open_dir(s->dir);
    populate(s->db, 16, 40, 250);
    tu_store_close(s);
    int64_t keep_from = M.next_ver[0] / 2, last = M.next_ver[0] - 1;
    plan_v[0] = (evs__scavenge_stream){"", "a-0", 0, keep_from, 0, last};
    plan.streams = plan_v;
    plan.nstreams = 1;
    plan.progress = NULL;
    for (size_t i = 0; i < M.n; i++)
        M.v[i].elig = M.v[i].si == 0 && M.v[i].ver < keep_from;
    size_t nseg;
    (void)keep_active(s->dir, &nseg);
    /* the header's write, a survivor run's */
    static const char *const at[] = {"1", "3"};
    for (size_t k = 0; k < 2; k++) {
        char root[4400], kf[32], lf[32];
        snprintf(root, sizeof(root), "%s/log", s->dir);
        snprintf(kf, sizeof(kf), "%" PRId64, keep_from);
        snprintf(lf, sizeof(lf), "%" PRId64, last);
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid == 0) {
            setenv("LD_PRELOAD", EVS_FAULTFS_PATH, 1);
            setenv("EVS_FAULT_ROOT", root, 1);
            setenv("EVS_FAULT_OP", "write", 1);
            setenv("EVS_FAULT_AT", at[k], 1);
            setenv("EVS_FAULT_ERRNO", "ENOSPC", 1);
            const char *ao = getenv("ASAN_OPTIONS");
            char abuf[1024];
            snprintf(abuf, sizeof(abuf), "%s%sverify_asan_link_order=0", ao ? ao : "",
                     ao && *ao ? ":" : "");
            setenv("ASAN_OPTIONS", abuf, 1);
            execl("/proc/self/exe", "test_scavenge", "--enospc-child", s->dir, kf, lf,
                  (char *)NULL);
            _exit(127);
        }
        int st = 0;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    }
    /* nothing was removed; the next scavenge does it all */
    s->db = open_dir(s->dir);
    assert_verify_clean(s->db);
    assert_int_equal(tu_stats(s->db).events, M.n);
    check_reads(s->db, 0);
    evs_scavenge_result r;
    TU_OK(scavenge(&r, s->db));
    assert_int_equal(r.events_removed, count_elig());
    check_reads(s->db, 1);
    assert_verify_clean(s->db);
    tu_store_close(s);
    model_reset();
}

/* ---- readers during scavenges: what they decode never changes ---- */

static _Atomic int stop_readers;

typedef struct rdstat {
    evs_db *db;
    uint64_t reads, events, errors, garbage;
    char msg[512];
} rdstat;

/* Well-formed and one of the model's: a stream, a type and data as
 * populate writes them (a record turned to zeros under the reader has
 * none of them). */
static int well_formed(const evs_event *ev)
{
    return ev->stream && strncmp(ev->stream, "a-", 2) == 0 && ev->type &&
           (strcmp(ev->type, "Odd") == 0 || strcmp(ev->type, "Even") == 0) &&
           ev->data_len > 6 && memcmp(ev->data, "{\"s\":", 5) == 0 &&
           ((const char *)ev->data)[ev->data_len - 1] == '}';
}

static void *scan_main(void *arg)
{
    rdstat *r = arg;
    while (!atomic_load(&stop_readers)) {
        evs_iter *it;
        if (evs_read_log(&it, r->db, 0, 0) != 0) {
            r->errors++;
            snprintf(r->msg, sizeof(r->msg), "%s", evs_last_error());
            continue;
        }
        const evs_event *ev;
        int rc;
        while ((rc = evs_iter_next(&ev, it)) == 0) {
            r->events++;
            if (!well_formed(ev))
                r->garbage++;
        }
        if (rc != EVS_ITEROVER) {
            r->errors++;
            snprintf(r->msg, sizeof(r->msg), "%s", evs_last_error());
        }
        evs_iter_free(it);
        r->reads++;
    }
    return NULL;
}

/* Lines of /proc/self/maps naming a deleted log segment: replaced maps
 * still mapped. */
static int deleted_segment_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[8192];
    int n = 0;
    assert_non_null(f);
    while (fgets(line, sizeof(line), f))
        n += strstr(line, ".evslog (deleted)") != NULL;
    fclose(f);
    return n;
}

static void test_scavenge_readers(void **state)
{
    tu_store *s = *state;
    model_reset();
    s->db = open_dir(s->dir);
    populate(s->db, 24, 40, 250); /* three segments, two sealed */
    int before = deleted_segment_maps();

    /* an event borrowed before the scavenges, kept across them */
    evs_iter *held;
    const evs_event *hev;
    TU_OK(evs_read_log(&held, s->db, 0, 0));
    TU_OK(evs_iter_next(&hev, held));
    assert_true(well_formed(hev));
    assert_int_equal(hev->position, 1); /* a-0 version 0: removed below */
    char hstream[64], htype[64], hdata[400];
    snprintf(hstream, sizeof(hstream), "%s", hev->stream);
    snprintf(htype, sizeof(htype), "%s", hev->type);
    assert_true(hev->data_len < sizeof(hdata));
    memcpy(hdata, hev->data, hev->data_len);
    size_t hlen = hev->data_len;

    enum { NREADERS = 3 };
    rdstat rs[NREADERS];
    pthread_t rt[NREADERS];
    atomic_store(&stop_readers, 0);
    for (int i = 0; i < NREADERS; i++) {
        memset(&rs[i], 0, sizeof(rs[i]));
        rs[i].db = s->db;
        assert_int_equal(pthread_create(&rt[i], NULL, scan_main, &rs[i]), 0);
    }
    /* the same segments scavenged again and again, each time with more
     * of a-0 and a-4 eligible, appends in between */
    uint64_t removed = 0, rewritten = 0;
    for (int k = 1; k <= 6; k++) {
        usleep(20000);
        int64_t last0 = M.next_ver[0] - 1, last4 = M.next_ver[4] - 1;
        plan_v[0] = (evs__scavenge_stream){"", "a-0", 0, k * M.next_ver[0] / 8, 0, last0};
        plan_v[1] = (evs__scavenge_stream){"t2", "a-4", 0, k * M.next_ver[4] / 8, 0, last4};
        evs__scavenge_plan p = {plan_v, 2, NULL, NULL};
        evs_scavenge_result r = {0};
        TU_OK(s->db->ops->scavenge(&r, s->db, &p));
        removed += r.events_removed;
        rewritten += r.segments_rewritten;
        populate(s->db, 1, 10, 250);
    }
    usleep(20000);
    atomic_store(&stop_readers, 1);
    uint64_t reads = 0, events = 0;
    for (int i = 0; i < NREADERS; i++) {
        pthread_join(rt[i], NULL);
        if (rs[i].errors)
            print_message("reader %d: %s\n", i, rs[i].msg);
        assert_int_equal(rs[i].errors, 0);
        assert_int_equal(rs[i].garbage, 0);
        reads += rs[i].reads;
        events += rs[i].events;
    }
    print_message("readers: %" PRIu64 " reads, %" PRIu64 " events during %" PRIu64
                  " segment rewrites (%" PRIu64 " events removed)\n", reads, events,
                  rewritten, removed);
    assert_true(rewritten >= 6);
    assert_true(reads > 0);
    /* the borrowed event reads as it did (its record was removed: its old
     * map is still mapped, for this iterator) */
    assert_string_equal(hev->stream, hstream);
    assert_string_equal(hev->type, htype);
    assert_int_equal(hev->data_len, hlen);
    assert_memory_equal(hev->data, hdata, hlen);
    assert_true(deleted_segment_maps() > before);
    evs_iter_free(held);
    /* no reader left: every replaced map is gone, and its blocks with it */
    assert_int_equal(deleted_segment_maps(), before);
    assert_verify_clean(s->db);
    tu_store_close(s);
    model_reset();
}

/* ---- a read-only follower across a writer killed mid-scavenge ---- */

static void test_scavenge_follower(void **state)
{
    tu_store *s = *state;
    model_reset();
    s->db = open_dir(s->dir);
    populate(s->db, 24, 40, 250);
    make_plan();
    tu_store_close(s);
    evs_open_options ro = small();
    ro.flags = EVS_OPEN_READONLY;
    evs_db *f = NULL;
    TU_OK(evs_open(&f, s->dir, &ro));
    uint64_t h0 = 0;
    TU_OK(evs_head_position(&h0, f, NULL));
    assert_int_equal(h0, M.n);
    /* steps 3..5: pending, after the first and second index transactions */
    for (int at = 3; at <= 5; at++) {
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid == 0) {
            char n[16];
            snprintf(n, sizeof(n), "%d", at);
            setenv("EVS_DEBUG_SCAVENGE_KILL", n, 1);
            setenv("EVS_DEBUG_SCAVENGE_TXN", "32", 1);
            evs_open_options o = small();
            evs_db *db = NULL;
            if (evs_open(&db, s->dir, &o) != 0)
                _exit(2);
            evs_scavenge_result r;
            memset(&r, 0, sizeof(r));
            plan.progress = NULL;
            if (db->ops->scavenge(&r, db, &plan) != 0)
                _exit(4);
            _exit(3);
        }
        int st = 0;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        /* another writer: recovers (rebuilds the index), appends */
        pid = fork();
        if (pid == 0) {
            evs_open_options o = small();
            evs_db *db = NULL;
            if (evs_open(&db, s->dir, &o) != 0)
                _exit(2);
            evs_event_data ev[5];
            for (int i = 0; i < 5; i++)
                ev[i] = tu_event("After", "{}");
            if (evs_append(NULL, db, NULL, "after", EVS_ANY, ev, 5) != 0)
                _exit(3);
            _exit(evs_close(db) == 0 ? 0 : 4);
        }
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
        /* the follower, open throughout, sees them */
        uint64_t h = 0;
        TU_OK(evs_head_position(&h, f, NULL));
        assert_int_equal(h, h0 + 5);
        tu_events got = {0};
        evs_iter *it;
        TU_OK(evs_read_log(&it, f, h0 + 1, 0));
        TU_OK(tu_collect(&got, it));
        evs_iter_free(it);
        assert_int_equal(got.n, 5);
        for (size_t i = 0; i < got.n; i++)
            assert_string_equal(got.v[i].stream, "after");
        tu_events_free(&got);
        h0 = h;
    }
    TU_OK(evs_close(f));
    s->db = open_dir(s->dir);
    assert_verify_clean(s->db);
    tu_store_close(s);
    model_reset();
}

/* ---- incremental backups after scavenges ---- */

static unsigned verify_dir_problems(const char *dir)
{
    evs_open_options o = small();
    o.flags = EVS_OPEN_READONLY; /* a backup directory stays untouched */
    evs_db *db = NULL;
    TU_OK(evs_open(&db, dir, &o));
    problems p = {0};
    int rc = evs_verify(NULL, db, on_problem, &p);
    assert_true(rc == 0 || rc == EVS_ECORRUPT);
    TU_OK(evs_close(db));
    return p.n;
}

static uint64_t dir_events(const char *dir)
{
    evs_open_options o = small();
    o.flags = EVS_OPEN_READONLY;
    evs_db *db = NULL;
    TU_OK(evs_open(&db, dir, &o));
    uint64_t n = tu_stats(db).events;
    TU_OK(evs_close(db));
    return n;
}

static void test_scavenge_backup(void **state)
{
    tu_store *s = *state;
    model_reset();
    s->db = open_dir(s->dir);
    populate(s->db, 24, 40, 250);
    char bk[4200];
    snprintf(bk, sizeof(bk), "%s/bk", s->tmp);
    evs_backup_options bo = EVS_BACKUP_OPTIONS_INIT;
    evs_backup_result br;

    /* 1. the same segment scavenged twice, a backup after each: the
     * second must not reuse the first's copy */
    int64_t last0 = M.next_ver[0] - 1;
    plan_v[0] = (evs__scavenge_stream){"", "a-0", 0, M.next_ver[0] / 4, 0, last0};
    evs__scavenge_plan p = {plan_v, 1, NULL, NULL};
    evs_scavenge_result r = {0};
    TU_OK(s->db->ops->scavenge(&r, s->db, &p));
    assert_true(r.segments_rewritten >= 1);
    TU_OK(evs_backup(&br, s->db, bk, &bo));
    plan_v[0].keep_from = M.next_ver[0] / 2;
    memset(&r, 0, sizeof(r));
    TU_OK(s->db->ops->scavenge(&r, s->db, &p));
    assert_true(r.segments_rewritten >= 1 && r.events_removed > 0);
    TU_OK(evs_backup(&br, s->db, bk, &bo));
    assert_int_equal(br.incremental, 1);
    assert_int_equal(verify_dir_problems(bk), 0);
    assert_int_equal(dir_events(bk), tu_stats(s->db).events);

    /* 2. the previous backup's last event removed by a scavenge since:
     * the next incremental backup still recognises it */
    evs_event_data one = tu_event("Last", "{\"s\":9}");
    evs_append_result ar;
    TU_OK(evs_append(&ar, s->db, NULL, "last-1", EVS_ANY, &one, 1));
    TU_OK(evs_backup(&br, s->db, bk, &bo));
    assert_int_equal(br.position, ar.first_position);
    populate(s->db, 12, 40, 250); /* seals its segment */
    evs_event_data more = tu_event("Last", "{\"s\":10}");
    TU_OK(evs_append(NULL, s->db, NULL, "last-1", EVS_ANY, &more, 1));
    evs__scavenge_stream e = {"", "last-1", 0, 1, 0, 1};
    evs__scavenge_plan p2 = {&e, 1, NULL, NULL};
    memset(&r, 0, sizeof(r));
    TU_OK(s->db->ops->scavenge(&r, s->db, &p2));
    assert_int_equal(r.events_removed, 1);
    memset(&br, 0, sizeof(br));
    TU_OK(evs_backup(&br, s->db, bk, &bo));
    assert_int_equal(br.incremental, 1);
    assert_int_equal(verify_dir_problems(bk), 0);
    assert_int_equal(dir_events(bk), tu_stats(s->db).events);
    tu_store_close(s);
    model_reset();
}

/* ---- a resumed scavenge under another plan starts over ---- */

static void test_scavenge_replan(void **state)
{
    tu_store *s = *state;
    model_reset();
    s->db = open_dir(s->dir);
    populate(s->db, 24, 40, 250);
    make_plan();
    tu_store_close(s);
    char pristine[4200];
    snprintf(pristine, sizeof(pristine), "%s/pristine", s->tmp);
    tu_copy_tree(s->dir, pristine);
    /* killed after segment 1 is done (the smallest such step) */
    int killed_done = 0;
    for (int at = 1; at <= 200 && !killed_done; at++) {
        assert_int_equal(tu_rmrf(s->dir), 0);
        tu_copy_tree(pristine, s->dir);
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid == 0) {
            char n[16];
            snprintf(n, sizeof(n), "%d", at);
            setenv("EVS_DEBUG_SCAVENGE_KILL", n, 1);
            evs_open_options o = small();
            evs_db *db = NULL;
            if (evs_open(&db, s->dir, &o) != 0)
                _exit(2);
            evs_scavenge_result r;
            memset(&r, 0, sizeof(r));
            plan.progress = NULL;
            if (db->ops->scavenge(&r, db, &plan) != 0)
                _exit(3);
            _exit(evs_close(db) == 0 ? 0 : 4);
        }
        int st = 0;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        killed_done = WIFSIGNALED(st) && progress_done_segment(s->dir) >= 1;
    }
    assert_true(killed_done);
    /* another plan: a-1, never in the first, tombstoned */
    evs__scavenge_stream e2[NSTREAMS + 1];
    size_t n = 0;
    for (size_t i = 0; i < plan.nstreams; i++) {
        e2[n++] = plan_v[i];
        if (i == 0)
            e2[n++] = (evs__scavenge_stream){"", "a-1", 1, 0, 0, M.next_ver[1] - 1};
    }
    evs__scavenge_plan p2 = {e2, n, NULL, NULL};
    s->db = open_dir(s->dir);
    evs_scavenge_result r = {0};
    TU_OK(s->db->ops->scavenge(&r, s->db, &p2));
    assert_int_equal(r.segments_resumed, 0);
    /* nothing left for it: segment 1 was examined again */
    memset(&r, 0, sizeof(r));
    TU_OK(s->db->ops->scavenge(&r, s->db, &p2));
    assert_int_equal(r.events_removed, 0);
    /* a-1's events in sealed segments are gone */
    size_t nseg;
    uint64_t first = keep_active(s->dir, &nseg);
    tu_events got = {0};
    evs_iter *it;
    TU_OK(evs_read_log(&it, s->db, 0, 0));
    TU_OK(tu_collect(&got, it));
    evs_iter_free(it);
    for (size_t i = 0; i < got.n; i++)
        assert_false(strcmp(got.v[i].stream, "a-1") == 0 && got.v[i].position < first);
    tu_events_free(&got);
    assert_verify_clean(s->db);
    tu_store_close(s);
    model_reset();
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--enospc-child") == 0)
        return enospc_child(argv[2], strtoll(argv[3], NULL, 10), strtoll(argv[4], NULL, 10));
    if (argc > 1)
        cmocka_set_test_filter(argv[1]); /* one test: its name */
    if (tu_backend_pg()) {
        print_message("test_scavenge: the embedded store's log only\n");
        return 0;
    }
#define T(fn) cmocka_unit_test_setup_teardown(fn, tu_setup_store_closed, tu_teardown_store)
    const struct CMUnitTest tests[] = {
        T(test_scavenge_plan),
        T(test_scavenge_tombstone),
        T(test_scavenge_online),
        T(test_scavenge_sigkill),
        T(test_scavenge_enospc),
        T(test_scavenge_damage),
        T(test_scavenge_readers),
        T(test_scavenge_follower),
        T(test_scavenge_backup),
        T(test_scavenge_replan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
