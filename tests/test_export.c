/*
 * test_export.c -- what a lossless export and import are built on, on
 * every backend: evs_read_log (every event, checkpoints included, in
 * position order), evs_restore_append (a log appended back into an empty
 * store reads the same, position for position, and its checkpoints work),
 * evs_snapshot_list (every snapshot, in byte order of tenant and stream)
 * and evs_snapshot_restore (saved_at kept), and their bad input.
 */
#include "testutil.h"

#include <cmocka.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int setup(void **state) { return tu_setup_store(state); }
static int teardown(void **state) { return tu_teardown_store(state); }

static int read_log(tu_events *out, evs_db *db, uint64_t from, uint64_t limit)
{
    evs_iter *it = NULL;
    int rc = evs_read_log(&it, db, from, limit);
    if (rc == 0)
        rc = tu_collect(out, it);
    evs_iter_free(it);
    return rc;
}

/* A source store: two tenants, streams, an event of no stream, binary
 * data, metadata, tags, a checkpoint per tenant (one moved twice, one
 * committed with an append), snapshots. */
static void fill(evs_db *db)
{
    evs_event_data ev[2];
    const char *tags[] = {"user:1", "x"};
    evs_append_request req = EVS_APPEND_REQUEST_INIT;
    evs_stream_append part;

    tu_append1(db, NULL, "acct-1", "Opened", "{\"owner\":\"ann\"}");
    ev[0] = tu_event_id("Deposited", "{\n  \"amount\": 5\n}");
    ev[0].metadata = "{\"by\":\"bob\"}";
    ev[0].metadata_len = strlen(ev[0].metadata);
    ev[0].tags = tags;
    ev[0].ntags = 2;
    evs_uuid_generate(&ev[0].correlation_id);
    ev[1] = tu_event_bin("Blob", "\0\1\2\377", 4);
    TU_OK(evs_append(NULL, db, NULL, "acct-1", 0, ev, 2));
    TU_OK(evs_checkpoint_set(db, NULL, "proj", 2));
    tu_append1(db, "acme", "ab-1", "Opened", "{}");
    tu_append1(db, "acme", "a-1", "Opened", "{}");
    ev[0] = tu_event("Registered", "{\"name\":\"x\"}");
    TU_OK(evs_dcb_append(NULL, NULL, db, "acme", ev, 1, NULL));
    TU_OK(evs_checkpoint_set(db, NULL, "proj", 5));
    /* a checkpoint committed with an append */
    ev[0] = tu_event("Noted", "{}");
    part = (evs_stream_append){"b-1", EVS_ANY, ev, 1};
    req.tenant = "acme";
    req.parts = &part;
    req.nparts = 1;
    req.checkpoint = "feed";
    req.checkpoint_token = 6;
    TU_OK(evs_append_ex(NULL, NULL, db, &req));
    TU_OK(evs_snapshot_save(db, NULL, "acct-1", 0, "Acct/v1", "{\"b\":0}", 7));
    TU_OK(evs_snapshot_save(db, NULL, "acct-1", 2, "Acct/v1", "\0bin", 4));
    TU_OK(evs_snapshot_save(db, "acme", "ab-1", 0, "S", "{}", 2));
    TU_OK(evs_snapshot_save(db, "acme", "a-1", 0, "S", "[]", 2));
    TU_OK(evs_snapshot_save(db, "acme", "b-1", 0, "S", "", 0));
}

static void test_read_log_has_every_event(void **state)
{
    tu_store *s = *state;
    tu_events log = {0}, all = {0};
    uint64_t head = 0;

    fill(s->db);
    TU_OK(evs_head_position(&head, s->db, NULL));
    TU_OK(read_log(&log, s->db, 0, 0));
    TU_OK(tu_read_all(&all, s->db, NULL, 0, 0));
    /* every position, gapless, checkpoint events among them */
    assert_int_equal(log.n, head);
    for (size_t i = 0; i < log.n; i++)
        assert_int_equal(log.v[i].position, i + 1);
    size_t ncp = 0;
    for (size_t i = 0; i < log.n; i++)
        if (log.v[i].stream[0] == '$') {
            ncp++;
            assert_string_equal(log.v[i].type, "$checkpoint");
            assert_int_equal(log.v[i].data_len, 8);
            assert_int_equal(log.v[i].content_type, EVS_CONTENT_BINARY);
        }
    assert_int_equal(ncp, 3);
    assert_int_equal(all.n, head - ncp); /* $all skips them */
    assert_string_equal(log.v[3].stream, "$checkpoint-proj");

    /* from and limit as evs_read_all's */
    tu_events part = {0};
    TU_OK(read_log(&part, s->db, 3, 2));
    assert_int_equal(part.n, 2);
    assert_int_equal(part.v[0].position, 3);
    assert_int_equal(part.v[1].position, 4);
    tu_events_free(&part);
    TU_OK(read_log(&part, s->db, head + 1, 0));
    assert_int_equal(part.n, 0);
    tu_events_free(&part);
    tu_events_free(&log);
    tu_events_free(&all);

    evs_iter *it = (evs_iter *)1;
    TU_CHECK(evs_read_log(&it, NULL, 0, 0), EVS_EINVAL);
    assert_null(it);
    TU_CHECK(evs_read_log(NULL, s->db, 0, 0), EVS_EINVAL);
}

/* Append ev (one event of the log) back, as `evs import` does. */
static void restore_one(evs_db *db, const tu_event_copy *e)
{
    evs_event_data d = {0};
    evs_stream_append part;
    evs_append_result res;

    d.id = e->id;
    d.type = e->type;
    d.data = e->data;
    d.data_len = e->data_len;
    d.content_type = e->content_type;
    d.metadata = e->metadata_len ? e->metadata : NULL;
    d.metadata_len = e->metadata_len;
    d.tags = (const char *const *)e->tags;
    d.ntags = e->ntags;
    d.correlation_id = e->correlation_id;
    d.causation_id = e->causation_id;
    d.recorded_at = e->recorded_at;
    part = (evs_stream_append){e->stream[0] ? e->stream : NULL, EVS_ANY, &d, 1};
    TU_OK(evs_restore_append(&res, db, e->tenant, &part, 1));
    assert_int_equal(res.first_position, e->position);
}

typedef struct snap_rec {
    char tenant[64], stream[64], schema[64];
    int64_t version, saved_at;
    char data[16];
    size_t data_len;
} snap_rec;

typedef struct snap_list {
    snap_rec v[16];
    size_t n;
    int stop_after; /* return 7 from the callback after this many; 0: never */
} snap_list;

static int on_snap(void *ctx, const char *tenant, const char *stream, const evs_snapshot *sn)
{
    snap_list *l = ctx;
    assert_true(l->n < 16);
    snap_rec *r = &l->v[l->n++];
    snprintf(r->tenant, sizeof r->tenant, "%s", tenant);
    snprintf(r->stream, sizeof r->stream, "%s", stream);
    snprintf(r->schema, sizeof r->schema, "%s", sn->schema);
    r->version = sn->version;
    r->saved_at = sn->saved_at;
    assert_true(sn->data_len <= sizeof r->data);
    memcpy(r->data, sn->data, sn->data_len);
    r->data_len = sn->data_len;
    return l->stop_after && (int)l->n == l->stop_after ? 7 : 0;
}

static void test_snapshot_list_order_and_stop(void **state)
{
    tu_store *s = *state;
    snap_list l = {0};

    fill(s->db);
    TU_OK(evs_snapshot_list(s->db, NULL, on_snap, &l));
    /* tenant "" before "acme"; in acme "a-1" < "ab-1" < "b-1" (bytes) */
    const char *want[][2] = {{"", "acct-1"}, {"", "acct-1"}, {"acme", "a-1"},
                             {"acme", "ab-1"}, {"acme", "b-1"}};
    assert_int_equal(l.n, 5);
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal(l.v[i].tenant, want[i][0]);
        assert_string_equal(l.v[i].stream, want[i][1]);
        assert_true(l.v[i].saved_at > 0);
    }
    assert_int_equal(l.v[0].version, 0);
    assert_int_equal(l.v[1].version, 2);
    assert_int_equal(l.v[1].data_len, 4);
    assert_memory_equal(l.v[1].data, "\0bin", 4);
    assert_int_equal(l.v[4].data_len, 0);

    /* one tenant */
    memset(&l, 0, sizeof l);
    TU_OK(evs_snapshot_list(s->db, "acme", on_snap, &l));
    assert_int_equal(l.n, 3);
    memset(&l, 0, sizeof l);
    TU_OK(evs_snapshot_list(s->db, "nobody", on_snap, &l));
    assert_int_equal(l.n, 0);
    /* the callback stops the walk; its value comes back */
    memset(&l, 0, sizeof l);
    l.stop_after = 2;
    assert_int_equal(evs_snapshot_list(s->db, NULL, on_snap, &l), 7);
    assert_int_equal(l.n, 2);

    TU_CHECK(evs_snapshot_list(NULL, NULL, on_snap, &l), EVS_EINVAL);
    TU_CHECK(evs_snapshot_list(s->db, NULL, NULL, &l), EVS_EINVAL);
}

static void test_restore_copies_exactly(void **state)
{
    tu_store *s = *state;
    tu_store *c = tu_store_new();
    tu_events log = {0}, copy = {0};
    snap_list src = {0}, dst = {0};
    uint64_t tok = 0;

    fill(s->db);
    TU_OK(read_log(&log, s->db, 0, 0));
    tu_store_open(c);
    for (size_t i = 0; i < log.n; i++)
        restore_one(c->db, &log.v[i]);
    TU_OK(evs_snapshot_list(s->db, NULL, on_snap, &src));
    for (size_t i = 0; i < src.n; i++) {
        evs_snapshot sn = {src.v[i].version, src.v[i].schema, src.v[i].data,
                           src.v[i].data_len, src.v[i].saved_at};
        TU_OK(evs_snapshot_restore(c->db, src.v[i].tenant, src.v[i].stream, &sn));
    }
    /* the copy's log is the source's, field for field */
    TU_OK(read_log(&copy, c->db, 0, 0));
    assert_int_equal(copy.n, log.n);
    for (size_t i = 0; i < log.n; i++) {
        const tu_event_copy *a = &log.v[i], *b = &copy.v[i];
        assert_int_equal(a->position, b->position);
        assert_int_equal(a->stream_version, b->stream_version);
        assert_string_equal(a->tenant, b->tenant);
        assert_string_equal(a->stream, b->stream);
        assert_string_equal(a->type, b->type);
        tu_assert_uuid_equal(&a->id, &b->id);
        tu_assert_uuid_equal(&a->correlation_id, &b->correlation_id);
        assert_int_equal(a->recorded_at, b->recorded_at);
        assert_int_equal(a->content_type, b->content_type);
        assert_int_equal(a->data_len, b->data_len);
        assert_memory_equal(a->data, b->data, a->data_len);
        assert_int_equal(a->metadata_len, b->metadata_len);
        if (a->metadata_len)
            assert_memory_equal(a->metadata, b->metadata, a->metadata_len);
        tu_assert_tags(b, (const char *const *)a->tags, a->ntags);
    }
    /* its checkpoints work */
    TU_OK(evs_checkpoint_get(&tok, c->db, NULL, "proj"));
    assert_int_equal(tok, 5);
    TU_OK(evs_checkpoint_get(&tok, c->db, "acme", "feed"));
    assert_int_equal(tok, 6);
    TU_OK(evs_checkpoint_set(c->db, NULL, "proj", 6));
    /* its snapshots are the source's, saved_at included */
    TU_OK(evs_snapshot_list(c->db, NULL, on_snap, &dst));
    assert_int_equal(dst.n, src.n);
    for (size_t i = 0; i < src.n; i++) {
        assert_string_equal(dst.v[i].stream, src.v[i].stream);
        assert_int_equal(dst.v[i].version, src.v[i].version);
        assert_int_equal(dst.v[i].saved_at, src.v[i].saved_at);
        assert_int_equal(dst.v[i].data_len, src.v[i].data_len);
        assert_memory_equal(dst.v[i].data, src.v[i].data, src.v[i].data_len);
    }
    /* restoring the same log again writes nothing (idempotent) */
    uint64_t head = 0;
    restore_one(c->db, &log.v[2]);
    TU_OK(evs_head_position(&head, c->db, NULL));
    assert_int_equal(head, log.n + 1); /* + the checkpoint set above */
    tu_events_free(&log);
    tu_events_free(&copy);
    tu_store_free(c);
}

static void test_restore_bad_input(void **state)
{
    tu_store *s = *state;
    uint64_t token = 3, head = 0;
    evs_event_data ev = tu_event_bin("$checkpoint", &token, 8);
    evs_stream_append part = {"$checkpoint-x", EVS_ANY, &ev, 1};
    evs_snapshot sn = {0, "S", "{}", 2, -5};

    tu_append1(s->db, NULL, "a-1", "E", "{}");
    /* a '$' stream this library does not know */
    part.stream = "$other";
    TU_CHECK(evs_restore_append(NULL, s->db, NULL, &part, 1), EVS_EINVAL);
    TU_ASSERT_ERRMSG();
    /* a checkpoint stream whose event is not a checkpoint */
    part.stream = "$checkpoint-x";
    ev = tu_event("$checkpoint", "{}");
    TU_CHECK(evs_restore_append(NULL, s->db, NULL, &part, 1), EVS_EINVAL);
    assert_non_null(strstr(evs_last_error(), "8 bytes of binary data"));
    ev = tu_event_bin("Other", &token, 8);
    TU_CHECK(evs_restore_append(NULL, s->db, NULL, &part, 1), EVS_EINVAL);
    ev = tu_event_bin("$checkpoint", &token, 7);
    TU_CHECK(evs_restore_append(NULL, s->db, NULL, &part, 1), EVS_EINVAL);
    /* a bad checkpoint name */
    part.stream = "$checkpoint-";
    ev = tu_event_bin("$checkpoint", &token, 8);
    TU_CHECK(evs_restore_append(NULL, s->db, NULL, &part, 1), EVS_EINVAL);
    TU_CHECK(evs_restore_append(NULL, NULL, NULL, &part, 1), EVS_EINVAL);
    /* nothing was written */
    TU_OK(evs_head_position(&head, s->db, NULL));
    assert_int_equal(head, 1);
    /* evs_append still refuses system streams */
    part.stream = "$checkpoint-x";
    TU_CHECK(evs_append_multi(NULL, s->db, NULL, &part, 1), EVS_EINVAL);
    /* a good one goes in, and the checkpoint reads */
    TU_OK(evs_restore_append(NULL, s->db, NULL, &part, 1));
    TU_OK(evs_checkpoint_get(&token, s->db, NULL, "x"));
    assert_int_equal(token, 3);

    TU_CHECK(evs_snapshot_restore(s->db, NULL, "a-1", NULL), EVS_EINVAL);
    TU_CHECK(evs_snapshot_restore(s->db, NULL, "a-1", &sn), EVS_EINVAL);
    TU_ASSERT_ERRMSG();
    sn.saved_at = 0; /* now */
    TU_OK(evs_snapshot_restore(s->db, NULL, "a-1", &sn));
    sn.version = 5; /* beyond the stream */
    TU_CHECK(evs_snapshot_restore(s->db, NULL, "a-1", &sn), EVS_EINVAL);

    /* read-only */
    tu_store_close(s);
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    o.flags = EVS_OPEN_READONLY;
    TU_OK(evs_open(&s->db, s->dir, &o));
    TU_CHECK(evs_restore_append(NULL, s->db, NULL, &part, 1), EVS_EREADONLY);
    sn.version = 0;
    TU_CHECK(evs_snapshot_restore(s->db, NULL, "a-1", &sn), EVS_EREADONLY);
}

/* A store written with validate_json off may hold JSON events that are
 * not valid JSON: its log restores into a store that checks JSON, byte
 * for byte. */
static void test_restore_unchecked_json(void **state)
{
    tu_store *s = *state;
    tu_store *c = tu_store_new();
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    evs_event_data ev = tu_event_id("Odd", "{not json");
    tu_events log = {0}, copy = {0};

    tu_store_close(s);
    o.validate_json = 0;
    tu_store_open_opts(s, &o);
    ev.metadata = "also not";
    ev.metadata_len = 8;
    TU_OK(evs_append(NULL, s->db, NULL, "o-1", EVS_ANY, &ev, 1));
    TU_OK(read_log(&log, s->db, 0, 0));
    assert_int_equal(log.n, 1);
    tu_store_open(c); /* validate_json on */
    TU_CHECK(evs_append(NULL, c->db, NULL, "o-1", EVS_ANY, &ev, 1), EVS_EINVAL);
    restore_one(c->db, &log.v[0]);
    TU_OK(read_log(&copy, c->db, 0, 0));
    assert_int_equal(copy.n, 1);
    assert_int_equal(copy.v[0].content_type, EVS_CONTENT_JSON);
    assert_int_equal(copy.v[0].data_len, 9);
    assert_memory_equal(copy.v[0].data, "{not json", 9);
    assert_int_equal(copy.v[0].metadata_len, 8);
    assert_memory_equal(copy.v[0].metadata, "also not", 8);
    tu_events_free(&log);
    tu_events_free(&copy);
    tu_store_free(c);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_read_log_has_every_event),
        T(test_snapshot_list_order_and_stop),
        T(test_restore_copies_exactly),
        T(test_restore_bad_input),
        T(test_restore_unchecked_json),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
