/*
 * test_rebuild.c -- the bulk index build (src/embedded/rebuild.c) makes
 * exactly the index that replaying the log record by record makes.
 *
 * Each case writes a store through the public API (tenants, streams,
 * events without a stream, tags that repeat the type, checkpoints in
 * system streams, imported recorded_at out of order, random event ids,
 * several 1 MiB segments), then, on the open handle, compares every
 * sub-database but `snapshots` key by key and value by value:
 *
 *   index from the appends  ==  replay (evs__idx_apply_record)
 *                           ==  evs__idx_bulk_build (one window, and
 *                               windows of 1, 7 and 1000 events: the
 *                               merge of runs)
 *
 * and `evs verify` passes. The whole program runs twice: in a child with
 * term hashes cut to 3 bits (EVS_DEBUG_TERM_HASH_BITS: almost every term
 * collides, also within one event) and with full hashes.
 */
#include "testutil.h"

#include "embedded/embedded.h"
#include "embedded/rebuild.h"
#include "util/util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- a dump of the index ------------------------------------------------ */

typedef struct kv {
    int db;
    size_t kl, vl;
    uint8_t *k, *v;
} kv;

typedef struct dump {
    kv *e;
    size_t n, cap;
} dump;

static const char *const db_names[] = {"meta", "tenants", "streams", "stream_events",
                                       "positions", "tenant_events", "event_ids",
                                       "postings", "times"};

static MDB_dbi dbi_of(evs__emb *s, int i)
{
    MDB_dbi d[] = {s->db_meta, s->db_tenants, s->db_streams, s->db_stream_events,
                   s->db_positions, s->db_tenant_events, s->db_event_ids,
                   s->db_postings, s->db_times};
    return d[i];
}

static void dump_free(dump *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->e[i].k);
        free(d->e[i].v);
    }
    free(d->e);
    memset(d, 0, sizeof(*d));
}

/* Every entry of every sub-database but snapshots, in order (MDB_NEXT
 * visits each duplicate of the postings). */
static void dump_index(evs__emb *s, dump *d)
{
    MDB_txn *txn;
    memset(d, 0, sizeof(*d));
    assert_int_equal(mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn), 0);
    for (int i = 0; i < (int)(sizeof(db_names) / sizeof(db_names[0])); i++) {
        MDB_cursor *cur;
        MDB_val k, v;
        assert_int_equal(mdb_cursor_open(txn, dbi_of(s, i), &cur), 0);
        for (int op = MDB_FIRST; mdb_cursor_get(cur, &k, &v, op) == 0; op = MDB_NEXT) {
            assert_int_equal(evs__grow(&d->e, &d->cap, d->n + 1, sizeof(kv)), 0);
            kv *e = &d->e[d->n++];
            e->db = i;
            e->kl = k.mv_size;
            e->vl = v.mv_size;
            e->k = malloc(k.mv_size + 1);
            e->v = malloc(v.mv_size + 1);
            assert_non_null(e->k);
            assert_non_null(e->v);
            memcpy(e->k, k.mv_data, k.mv_size);
            memcpy(e->v, v.mv_data, v.mv_size);
        }
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
}

static void print_hex(const char *what, const uint8_t *p, size_t n)
{
    char buf[1024];
    size_t o = 0;
    for (size_t i = 0; i < n && o + 3 < sizeof(buf); i++)
        o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%02x", p[i]);
    buf[o] = '\0';
    print_message("    %s (%zu bytes): %s\n", what, n, buf);
}

static void print_kv(const char *label, const kv *e)
{
    print_message("  %s: %s\n", label, e ? db_names[e->db] : "(none)");
    if (e) {
        print_hex("key", e->k, e->kl);
        print_hex("value", e->v, e->vl);
    }
}

/* Assert two dumps are equal; print the first difference. */
static void assert_same(const char *what, const dump *a, const dump *b)
{
    size_t n = a->n < b->n ? a->n : b->n;
    for (size_t i = 0; i < n; i++) {
        const kv *x = &a->e[i], *y = &b->e[i];
        if (x->db != y->db || x->kl != y->kl || x->vl != y->vl ||
            memcmp(x->k, y->k, x->kl) != 0 || memcmp(x->v, y->v, x->vl) != 0) {
            print_message("%s: entry %zu differs\n", what, i);
            print_kv("expected", x);
            print_kv("got", y);
            fail();
        }
    }
    if (a->n != b->n) {
        print_message("%s: %zu entries expected, %zu found\n", what, a->n, b->n);
        print_kv("first extra", a->n > n ? &a->e[n] : &b->e[n]);
        fail();
    }
}

/* ---- emptying the index, replaying the log, building it in bulk -------- */

static void applied_of(evs__emb *s, uint64_t *pos, uint64_t *loc)
{
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(evs__idx_applied_get(txn, s, pos, loc), 0);
    mdb_txn_abort(txn);
}

/* What recovery does before it rebuilds (recovery.c, drop_index). */
static void empty_index(evs__emb *s)
{
    MDB_txn *txn;
    MDB_dbi dbis[] = {s->db_tenants, s->db_streams, s->db_stream_events,
                      s->db_positions, s->db_tenant_events, s->db_event_ids,
                      s->db_postings, s->db_times};
    /* recovery writes into an environment with a 64 GiB map; this is the
     * writer's, whose map grows ahead of each group (index.c): make room
     * for the replay's and the bulk build's large transactions */
    TU_OK(evs__idx_map_grow(s, (uint64_t)1 << 30));
    assert_int_equal(mdb_txn_begin(s->env, NULL, 0, &txn), 0);
    for (size_t i = 0; i < sizeof(dbis) / sizeof(dbis[0]); i++)
        assert_int_equal(mdb_drop(txn, dbis[i], 0), 0);
    MDB_val k = {7, "applied"};
    mdb_del(txn, s->db_meta, &k, NULL);
    assert_int_equal(mdb_txn_commit(txn), 0);
    s->next_stream_id = 1;
    s->next_tenant_id = 1;
    s->time_max_us = INT64_MIN;
}

/* The replay of recovery.c: every record through evs__idx_apply_record. */
static void replay(evs__emb *s, uint64_t end_pos, uint64_t end_loc)
{
    MDB_txn *txn;
    uint32_t seg = 1, off = EVS_SEG_HEADER_SIZE;
    uint64_t pos = 1, in_txn = 0;
    empty_index(s);
    assert_int_equal(mdb_txn_begin(s->env, NULL, 0, &txn), 0);
    while (pos <= end_pos) {
        const uint8_t *m = evs__seg_map(s, seg);
        assert_non_null(m);
        if (off + EVS_REC_FIXED > s->seg_size || evs__get_le32(m + off) == 0) {
            seg++;
            off = EVS_SEG_HEADER_SIZE;
            continue;
        }
        uint32_t len;
        assert_int_equal(evs__rec_check(m + off, s->seg_size - off, &len), EVS_REC_OK);
        assert_int_equal(evs__get_le64(m + off + EVS_REC_OFF_POSITION), pos);
        TU_OK(evs__idx_apply_record(txn, s, m + off, evs__loc(seg, off)));
        off += evs__pad8(len);
        pos++;
        if (++in_txn == 65536) {
            assert_int_equal(mdb_txn_commit(txn), 0);
            assert_int_equal(mdb_txn_begin(s->env, NULL, 0, &txn), 0);
            in_txn = 0;
        }
    }
    assert_int_equal(evs__loc(seg, off), end_loc);
    TU_OK(evs__idx_applied_put(txn, s, end_pos, end_loc));
    TU_OK(evs__idx_seq_put(txn, s));
    assert_int_equal(mdb_txn_commit(txn), 0);
}

static void bulk(evs__emb *s, uint64_t end_pos, uint64_t end_loc, const char *window)
{
    if (window)
        setenv("EVS_DEBUG_REBUILD_WINDOW", window, 1);
    else
        unsetenv("EVS_DEBUG_REBUILD_WINDOW");
    empty_index(s);
    int64_t stamp = s->last_stamp;
    s->last_stamp = 0;
    TU_OK(evs__idx_bulk_build(s, end_pos, end_loc));
    if (end_pos > 0)
        assert_true(s->last_stamp == stamp);
    unsetenv("EVS_DEBUG_REBUILD_WINDOW");
}

static void on_problem(void *ctx, const char *problem)
{
    (void)ctx;
    print_message("verify problem: %s\n", problem);
}

/*
 * The three indexes of the open store s->db must agree, for every window
 * size; then reopening the store finds the bulk-built index good.
 */
static void check_rebuild(tu_store *st)
{
    evs__emb *s = (evs__emb *)st->db;
    uint64_t end_pos, end_loc;
    dump live, rep, b;
    static const char *const windows[] = {NULL, "1", "7", "1000"};

    applied_of(s, &end_pos, &end_loc);
    uint64_t sid = s->next_stream_id, tid = s->next_tenant_id;
    int64_t tmax = s->time_max_us;
    dump_index(s, &live);

    replay(s, end_pos, end_loc);
    dump_index(s, &rep);
    assert_same("replay vs the appends' index", &live, &rep);

    for (size_t w = 0; w < sizeof(windows) / sizeof(windows[0]); w++) {
        print_message("bulk build, window %s\n", windows[w] ? windows[w] : "default");
        bulk(s, end_pos, end_loc, windows[w]);
        dump_index(s, &b);
        assert_same("bulk build vs replay", &rep, &b);
        dump_free(&b);
        assert_int_equal(s->next_stream_id, sid);
        assert_int_equal(s->next_tenant_id, tid);
        assert_true(s->time_max_us == tmax);
        uint64_t checked = 0;
        TU_OK(evs_verify(&checked, st->db, on_problem, NULL));
        assert_int_equal(checked, end_pos);
    }
    dump_free(&rep);

    /* the next open takes the built index as it is */
    tu_store_close(st);
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    tu_store_open_opts(st, &o);
    dump_index((evs__emb *)st->db, &b);
    assert_same("reopened vs the appends' index", &live, &b);
    dump_free(&b);
    dump_free(&live);
}

/* ---- stores with varied content ----------------------------------------- */

static uint64_t rng_state;
static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

static tu_store *open_small(void)
{
    tu_store *st = tu_store_new();
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    o.segment_size = 1024 * 1024;
    o.validate_json = 0;
    tu_store_open_opts(st, &o);
    return st;
}

static void fill(evs_db *db, unsigned appends, uint64_t seed)
{
    static const char *const tenants[] = {NULL, "acme", "globex", "t-3"};
    static const char *const types[] = {"Created", "Updated", "Deleted", "Shipped",
                                        "order", "customer:1"};
    static const char *const cats[] = {"order", "user", "plain", "a-b", "x"};
    static char payload[40000];
    evs_event_data ev[12];
    char tagbuf[12][6][32];
    const char *tags[12][6];
    char names[4][64];
    evs_stream_append parts[4];

    rng_state = seed * 2654435761u + 1;
    memset(payload, 'p', sizeof(payload));
    for (unsigned a = 0; a < appends; a++) {
        const char *tenant = tenants[rnd(4)];
        if (rnd(20) == 0) { /* a checkpoint: an event of a system stream */
            uint64_t head = 0;
            TU_OK(evs_head_position(&head, db, tenant));
            TU_OK(evs_checkpoint_set(db, tenant, rnd(2) ? "proj" : "other", head));
            continue;
        }
        size_t nparts = 1 + rnd(3), used = 0;
        for (size_t p = 0; p < nparts; p++) {
            size_t n = 1 + rnd(4);
            int streamless = rnd(6) == 0;
            if (streamless) {
                for (size_t q = 0; q < p; q++)
                    if (parts[q].stream == NULL)
                        streamless = 0; /* one streamless part at most */
            }
            if (streamless) {
                parts[p].stream = NULL;
            } else {
                /* distinct stream names per append: a part index suffix */
                snprintf(names[p], sizeof(names[p]), "%s%s%u.%zu", cats[rnd(5)],
                         rnd(2) ? "-" : "", rnd(40), p);
                parts[p].stream = names[p];
            }
            parts[p].expected_version = EVS_ANY;
            parts[p].events = &ev[used];
            parts[p].nevents = n;
            for (size_t i = 0; i < n; i++, used++) {
                evs_event_data *e = &ev[used];
                memset(e, 0, sizeof(*e));
                e->type = types[rnd(6)];
                size_t len = rnd(10) == 0 ? 5000 + rnd(30000) : 10 + rnd(600);
                e->data = payload;
                e->data_len = len;
                e->content_type = EVS_CONTENT_BINARY;
                size_t nt = rnd(6);
                for (size_t t = 0; t < nt; t++) {
                    /* unique within the event; some equal the type's text */
                    if (t == 0 && rnd(3) == 0)
                        snprintf(tagbuf[used][t], 32, "%s", e->type);
                    else
                        snprintf(tagbuf[used][t], 32, "k%zu:%u", t, rnd(50));
                    tags[used][t] = tagbuf[used][t];
                }
                e->tags = tags[used];
                e->ntags = nt;
                if (rnd(4) == 0) /* imported: out of order, also in the past */
                    e->recorded_at = INT64_C(1700000000000000) + (int64_t)rnd(1000000) * 1000;
                if (rnd(3) == 0) /* a random (not time-ordered) id */
                    for (int b = 0; b < 16; b++)
                        e->id.bytes[b] = (uint8_t)rnd(256);
            }
        }
        evs_append_request req = EVS_APPEND_REQUEST_INIT;
        req.tenant = tenant;
        req.parts = parts;
        req.nparts = nparts;
        TU_OK(evs_append_ex(NULL, NULL, db, &req));
        if (rnd(30) == 0 && parts[0].stream)
            evs_snapshot_save(db, tenant, parts[0].stream, 0, "s", "{}", 2);
    }
}

static void test_varied(void **state)
{
    (void)state;
    tu_store *st = open_small();
    fill(st->db, 700, 1);
    evs__emb *s = (evs__emb *)st->db;
    print_message("%u segments\n", (unsigned)atomic_load(&s->nsegs));
    assert_true(atomic_load(&s->nsegs) >= 3);
    check_rebuild(st);
    tu_store_free(st);
}

static void test_empty(void **state)
{
    (void)state;
    tu_store *st = open_small();
    check_rebuild(st);
    tu_store_free(st);
}

/* One stream, many events: long posting lists, one tenant. */
static void test_one_stream(void **state)
{
    (void)state;
    tu_store *st = open_small();
    evs_event_data ev[500];
    const char *tags[] = {"same"};
    memset(ev, 0, sizeof(ev));
    for (int i = 0; i < 500; i++) {
        ev[i].type = i % 2 ? "A" : "B";
        ev[i].data = "{}";
        ev[i].data_len = 2;
        ev[i].tags = tags;
        ev[i].ntags = 1;
    }
    for (int r = 0; r < 10; r++)
        TU_OK(evs_append(NULL, st->db, NULL, "only", EVS_ANY, ev, 500));
    check_rebuild(st);
    tu_store_free(st);
}

/* Enough entries for several load chunks of every kind (rebuild.c,
 * FLAT_ENTS) and several windows: lists that cross a chunk's end, a
 * chunk of one long list. */
static void test_chunks(void **state)
{
    (void)state;
    tu_store *st = open_small();
    evs__emb *s = (evs__emb *)st->db;
    evs_event_data ev[1000];
    const char *tags[2];
    char tag[32];
    memset(ev, 0, sizeof(ev));
    for (int r = 0; r < 40; r++) {
        for (int i = 0; i < 1000; i++) {
            ev[i].type = i % 3 ? "A" : "B";
            ev[i].data = "{}";
            ev[i].data_len = 2;
            ev[i].tags = tags;
            ev[i].ntags = 0;
        }
        snprintf(tag, sizeof(tag), "batch-%d", r);
        tags[0] = tag;
        tags[1] = "everywhere";
        ev[0].ntags = 2; /* one short list per batch, one long one */
        for (int i = 1; i < 1000; i++)
            ev[i].ntags = 1 + (i % 2);
        char stream[32];
        snprintf(stream, sizeof(stream), "s%d-x", r % 7);
        TU_OK(evs_append(NULL, st->db, r % 2 ? "acme" : NULL, stream, EVS_ANY, ev, 1000));
    }
    uint64_t end_pos, end_loc;
    dump rep, b;
    applied_of(s, &end_pos, &end_loc);
    replay(s, end_pos, end_loc);
    dump_index(s, &rep);
    static const char *const windows[] = {NULL, "15000"};
    for (size_t w = 0; w < 2; w++) {
        bulk(s, end_pos, end_loc, windows[w]);
        dump_index(s, &b);
        assert_same("bulk build vs replay", &rep, &b);
        dump_free(&b);
    }
    dump_free(&rep);
    tu_store_free(st);
}

/* recovery_progress: from (0, total), never backwards, never past total,
 * (total, total) once, at the end. */
typedef struct prog_rec {
    uint64_t calls, last, total, at_end;
    int backwards;
} prog_rec;

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
    prog_rec *p = ctx;
    if (p->calls == 0)
        assert_true(done == 0);
    if (done < p->last || done > total)
        p->backwards = 1;
    if (done == total)
        p->at_end++;
    p->calls++;
    p->last = done;
    p->total = total;
}

static void test_progress(void **state)
{
    (void)state;
    tu_store *st = open_small();
    fill(st->db, 300, 3);
    evs__emb *s = (evs__emb *)st->db;
    uint64_t end_pos, end_loc;
    applied_of(s, &end_pos, &end_loc);
    static const char *const windows[] = {NULL, "100"};
    for (size_t w = 0; w < 2; w++) {
        prog_rec p;
        memset(&p, 0, sizeof(p));
        s->base.opts.recovery_progress = on_progress;
        s->base.opts.recovery_ctx = &p;
        if (windows[w])
            setenv("EVS_DEBUG_REBUILD_WINDOW", windows[w], 1);
        empty_index(s);
        TU_OK(evs__idx_bulk_build(s, end_pos, end_loc));
        unsetenv("EVS_DEBUG_REBUILD_WINDOW");
        s->base.opts.recovery_progress = NULL;
        s->base.opts.recovery_ctx = NULL;
        assert_true(p.calls >= 6);
        assert_false(p.backwards);
        assert_true(p.total == end_pos);
        assert_true(p.last == end_pos);
        assert_true(p.at_end == 1);
    }
    tu_store_free(st);
}

/* A non-empty index is refused; a build that fails leaves an index the
 * next open rebuilds. */
static void test_refusals(void **state)
{
    (void)state;
    tu_store *st = open_small();
    fill(st->db, 60, 2);
    evs__emb *s = (evs__emb *)st->db;
    uint64_t end_pos, end_loc;
    dump before, after;
    applied_of(s, &end_pos, &end_loc);
    dump_index(s, &before);

    TU_CHECK(evs__idx_bulk_build(s, end_pos, end_loc), EVS_EINVAL);
    TU_ASSERT_ERRMSG();

    /* the log does not end where the caller says: nothing trustworthy */
    empty_index(s);
    TU_CHECK(evs__idx_bulk_build(s, end_pos, evs__loc(1, EVS_SEG_HEADER_SIZE)),
             EVS_ECORRUPT);
    TU_ASSERT_ERRMSG();
    TU_CHECK(evs__idx_bulk_build(s, end_pos + 1, end_loc), EVS_ECORRUPT);
    TU_ASSERT_ERRMSG();
    tu_store_close(st);
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    tu_store_open_opts(st, &o);
    dump_index((evs__emb *)st->db, &after);
    assert_same("the index after a failed build and an open", &before, &after);
    dump_free(&before);
    dump_free(&after);
    tu_store_free(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_varied),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_one_stream),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_chunks),
        cmocka_unit_test(test_progress),
    };
    int child_failed = 0;
    if (!getenv("EVS_DEBUG_TERM_HASH_BITS")) {
        /* before anything reads the variable (once per process) */
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            setenv("EVS_DEBUG_TERM_HASH_BITS", "3", 1);
            _exit(cmocka_run_group_tests_name("rebuild (term hashes of 3 bits)", tests,
                                              NULL, NULL) ? 1 : 0);
        }
        int st = 0;
        if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
            WEXITSTATUS(st) != 0)
            child_failed = 1;
    }
    int rc = cmocka_run_group_tests_name("rebuild", tests, NULL, NULL);
    return rc || child_failed;
}
