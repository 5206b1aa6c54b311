/*
 * test_generate.c -- the data generator of `evs generate` and `evs bench`
 * (tools/bench/gen.h): its distributions checked statistically on
 * a 100K-event run, its determinism, and that gen_load stores exactly
 * what it generated.
 *
 * The distributions are measured here from the events themselves, not
 * taken from gen_stats, and then compared with gen_stats too.
 */
#include "testutil.h"

#include "gen.h"
#include "util/json.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_STAT 100000

/* ------------------------------------------------------------------ */
/* A small map: stream name -> what the test knows of it               */
/* ------------------------------------------------------------------ */

typedef struct stream_rec {
    char name[40];
    char tenant[24];
    int64_t len;         /* events seen */
    int64_t snap_version;/* last version with snapshot_after; -1: none */
    int used;
} stream_rec;

typedef struct stream_map {
    stream_rec *v;
    size_t mask, n;
} stream_map;

static void map_init(stream_map *m, size_t cap)
{
    size_t n = 1;

    while (n < cap * 2)
        n *= 2;
    m->v = calloc(n, sizeof *m->v);
    assert_non_null(m->v);
    m->mask = n - 1;
    m->n = 0;
}

/* Streams are per tenant: the key is tenant + stream. */
static stream_rec *map_get(stream_map *m, const char *tenant,
                           const char *stream)
{
    size_t h = 14695981039346656037u, i;
    const char *p;

    for (p = tenant; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211u;
    for (p = stream; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211u;
    for (i = h & m->mask;; i = (i + 1) & m->mask) {
        stream_rec *r = &m->v[i];

        if (!r->used) {
            assert_true(m->n < m->mask / 2);
            assert_true(strlen(stream) < sizeof r->name);
            r->used = 1;
            strcpy(r->name, stream);
            strcpy(r->tenant, tenant);
            r->snap_version = -1;
            m->n++;
            return r;
        }
        if (strcmp(r->name, stream) == 0 && strcmp(r->tenant, tenant) == 0)
            return r;
    }
}

static int cmp_u64_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? 1 : x > y ? -1 : 0;
}

static int cmp_uuid(const void *a, const void *b)
{
    return memcmp(a, b, sizeof(evs_uuid));
}

/* Weekday (Monday-Friday) 08:00-18:00 UTC, computed here on its own. */
static int business_hours(int64_t us)
{
    int64_t day = us / (INT64_C(86400) * 1000000);
    int64_t sec = (us / 1000000) % 86400;
    int wday = (int)((day + 3) % 7); /* 1970-01-01: Thursday; Monday 0 */

    return wday < 5 && sec >= 8 * 3600 && sec < 18 * 3600;
}

static int snapshot_kind(const char *stream)
{
    return strncmp(stream, "Account-", 8) == 0 ||
           strncmp(stream, "Order-", 6) == 0 ||
           strncmp(stream, "User-", 5) == 0;
}

/* ------------------------------------------------------------------ */
/* Distributions on 100K events                                        */
/* ------------------------------------------------------------------ */

static void test_distributions(void **state)
{
    gen_config cfg;
    gen *g;
    gen_event e;
    char err[256];
    stream_map m;
    uint64_t per_tenant[GEN_MAX_TENANTS] = {0}, bucket[GEN_SIZE_BUCKETS] = {0};
    uint64_t n = 0, top = 0, biz = 0, snaps = 0, long_streams = 0, i;
    uint64_t len1 = 0;
    int64_t last_us = 0, min_len = INT64_MAX, max_len = 0;
    evs_uuid *ids;
    const gen_stats *st;
    double pct;

    (void)state;
    gen_config_init(&cfg);
    cfg.events = N_STAT;
    TU_OK(gen_new(&g, &cfg, err, sizeof err));
    map_init(&m, 20000);
    ids = malloc(N_STAT * sizeof *ids);
    assert_non_null(ids);

    while (gen_next(g, &e) == 0) {
        int b = gen_size_bucket(e.ev.data_len), t;
        stream_rec *r;

        assert_true(n < N_STAT);
        /* Valid JSON, data and metadata, and the size in a bucket. */
        if (evs__json_check(e.ev.data, e.ev.data_len, err, sizeof err) != 0)
            fail_msg("event %" PRIu64 ": payload is not JSON (%s): %.*s", n,
                     err, (int)e.ev.data_len, (const char *)e.ev.data);
        if (evs__json_check(e.ev.metadata, e.ev.metadata_len, err,
                            sizeof err) != 0)
            fail_msg("event %" PRIu64 ": metadata is not JSON (%s)", n, err);
        assert_true(b >= 0);
        bucket[b]++;
        assert_true(strncmp(e.tenant, "tenant-", 7) == 0);
        t = atoi(e.tenant + 7);
        assert_true(t >= 0 && t < (int)cfg.tenants);
        per_tenant[t]++;
        /* recorded_at strictly increasing, inside the span. */
        assert_true(e.ev.recorded_at > last_us);
        assert_true(e.ev.recorded_at < cfg.end_us);
        assert_true(e.ev.recorded_at >=
                    cfg.end_us - (int64_t)cfg.months * 31 * 86400 * 1000000);
        last_us = e.ev.recorded_at;
        biz += business_hours(e.ev.recorded_at);
        /* Expected versions chain per stream. */
        r = map_get(&m, e.tenant, e.stream);
        assert_int_equal(e.expected_version,
                         r->len == 0 ? EVS_NO_STREAM : r->len - 1);
        r->len++;
        if (r->len == 100)
            long_streams++;
        if (e.snapshot_after) {
            assert_true(snapshot_kind(e.stream));
            assert_int_equal(r->len % cfg.snapshot_every, 0);
            snaps++;
        } else if (snapshot_kind(e.stream)) {
            assert_true(r->len % cfg.snapshot_every != 0);
        }
        assert_true(e.ev.ntags >= 1 && e.ev.ntags <= 3);
        assert_false(evs_uuid_is_nil(&e.ev.id));
        assert_false(evs_uuid_is_nil(&e.ev.correlation_id));
        assert_false(evs_uuid_is_nil(&e.ev.causation_id));
        ids[n++] = e.ev.id;
    }
    assert_int_equal(n, N_STAT);
    assert_int_equal(gen_next(g, &e), 1);

    /* Ids unique. */
    qsort(ids, n, sizeof *ids, cmp_uuid);
    for (i = 1; i < n; i++)
        assert_true(memcmp(&ids[i - 1], &ids[i], sizeof *ids) != 0);
    free(ids);

    /* 80/20: the top 20 % of the tenants hold 75-85 % of the events. */
    qsort(per_tenant, cfg.tenants, sizeof per_tenant[0], cmp_u64_desc);
    for (i = 0; i < (cfg.tenants + 4) / 5; i++)
        top += per_tenant[i];
    pct = 100.0 * (double)top / (double)n;
    print_message("top 20%% of tenants: %.2f%% of the events\n", pct);
    assert_true(pct >= 75.0 && pct <= 85.0);
    for (i = 0; i < cfg.tenants; i++)
        assert_true(per_tenant[i] > 0);

    /* Payload sizes: 70/25/5 within 2 points. */
    {
        static const double want[GEN_SIZE_BUCKETS] = {70, 25, 5};
        int b;

        for (b = 0; b < GEN_SIZE_BUCKETS; b++) {
            pct = 100.0 * (double)bucket[b] / (double)n;
            print_message("size bucket %d: %.2f%% (want %.0f%%)\n", b, pct,
                          want[b]);
            assert_true(pct >= want[b] - 2 && pct <= want[b] + 2);
        }
    }

    /* Stream lengths: 1..1000, some long ones. */
    for (i = 0; i <= m.mask; i++) {
        if (!m.v[i].used)
            continue;
        if (m.v[i].len < min_len)
            min_len = m.v[i].len;
        if (m.v[i].len > max_len)
            max_len = m.v[i].len;
        len1 += m.v[i].len == 1;
    }
    print_message("streams: %zu, lengths %" PRId64 "..%" PRId64
                  ", %" PRIu64 " of 1 event, %" PRIu64 " of >= 100\n", m.n,
                  min_len, max_len, len1, long_streams);
    assert_int_equal(min_len, 1);
    assert_true(max_len <= 1000);
    assert_true(long_streams >= 10);

    /* Business hours: most events. */
    pct = 100.0 * (double)biz / (double)n;
    print_message("business hours: %.2f%%\n", pct);
    assert_true(pct >= 70.0);

    /* gen_stats agrees. */
    st = gen_get_stats(g);
    assert_int_equal(st->events, n);
    assert_int_equal(st->streams, m.n);
    assert_int_equal(st->snapshots, snaps);
    assert_int_equal(st->size_other, 0);
    assert_int_equal(st->stream_len_min, (uint64_t)min_len);
    assert_int_equal(st->stream_len_max, (uint64_t)max_len);
    assert_int_equal(st->streams_len_1, len1);
    assert_int_equal(st->streams_len_over_100, long_streams);
    assert_int_equal(st->business_hours, biz);
    assert_int_equal(st->last_us, last_us);
    {
        uint64_t sum = 0, bsum = 0;

        for (i = 0; i < cfg.tenants; i++)
            sum += st->per_tenant[i];
        for (i = 0; i < GEN_SIZE_BUCKETS; i++)
            bsum += st->size_bucket[i];
        assert_int_equal(sum, n);
        assert_int_equal(bsum, n);
    }
    gen_free(g);
    free(m.v);
}

/* ------------------------------------------------------------------ */
/* Determinism                                                         */
/* ------------------------------------------------------------------ */

static void test_determinism(void **state)
{
    gen_config cfg;
    gen *a, *b, *c;
    gen_event ea, eb, ec;
    char err[256];
    uint64_t i, same_id = 0, same_data = 0;

    (void)state;
    gen_config_init(&cfg);
    cfg.events = 20000;
    cfg.seed = 7;
    TU_OK(gen_new(&a, &cfg, err, sizeof err));
    TU_OK(gen_new(&b, &cfg, err, sizeof err));
    cfg.seed = 8;
    TU_OK(gen_new(&c, &cfg, err, sizeof err));
    for (i = 0; i < cfg.events; i++) {
        assert_int_equal(gen_next(a, &ea), 0);
        assert_int_equal(gen_next(b, &eb), 0);
        assert_int_equal(gen_next(c, &ec), 0);
        tu_assert_uuid_equal(&ea.ev.id, &eb.ev.id);
        assert_string_equal(ea.tenant, eb.tenant);
        assert_string_equal(ea.stream, eb.stream);
        assert_string_equal(ea.ev.type, eb.ev.type);
        assert_int_equal(ea.ev.recorded_at, eb.ev.recorded_at);
        assert_int_equal(ea.ev.data_len, eb.ev.data_len);
        assert_memory_equal(ea.ev.data, eb.ev.data, ea.ev.data_len);
        assert_int_equal(ea.ev.metadata_len, eb.ev.metadata_len);
        assert_memory_equal(ea.ev.metadata, eb.ev.metadata,
                            ea.ev.metadata_len);
        same_id += tu_uuid_eq(&ea.ev.id, &ec.ev.id);
        same_data += ea.ev.data_len == ec.ev.data_len &&
                     memcmp(ea.ev.data, ec.ev.data, ea.ev.data_len) == 0;
    }
    /* Another seed: other ids, other payloads. */
    assert_int_equal(same_id, 0);
    assert_true(same_data < cfg.events / 100);
    assert_int_equal(gen_get_stats(a)->data_bytes,
                     gen_get_stats(b)->data_bytes);
    gen_free(a);
    gen_free(b);
    gen_free(c);
}

/* ------------------------------------------------------------------ */
/* Loading                                                             */
/* ------------------------------------------------------------------ */

static void test_load(void **state)
{
    tu_store *s = *state;
    gen_config cfg;
    gen_stats *st = malloc(sizeof *st);
    gen *g;
    gen_event e;
    evs_iter *it;
    const evs_event *ev;
    evs_stats ss;
    stream_map m;
    char err[512];
    uint64_t i, checked = 0, snaps_checked = 0, tenants = 0;

    assert_non_null(st);
    gen_config_init(&cfg);
    cfg.events = 30000;
    cfg.seed = 3;
    cfg.snapshot_every = 20;
    cfg.batch_events = 500;
    TU_OK(gen_load(s->db, &cfg, st, err, sizeof err));
    assert_int_equal(st->events, cfg.events);
    assert_true(st->appends >= cfg.events / cfg.batch_events);
    assert_true(st->snapshots > 0);

    ss = tu_stats(s->db);
    assert_int_equal(ss.events, st->events);
    assert_int_equal(ss.head_position, st->events);
    assert_int_equal(ss.streams, st->streams);
    for (i = 0; i < cfg.tenants; i++)
        tenants += st->per_tenant[i] > 0;
    assert_int_equal(ss.tenants, tenants);

    /* The log holds the generated events in generation order. */
    map_init(&m, 10000);
    TU_OK(gen_new(&g, &cfg, err, sizeof err));
    TU_OK(evs_read_all(&it, s->db, NULL, 0, 0));
    while (gen_next(g, &e) == 0) {
        stream_rec *r = map_get(&m, e.tenant, e.stream);

        TU_OK(evs_iter_next(&ev, it));
        assert_string_equal(ev->tenant, e.tenant);
        assert_string_equal(ev->stream, e.stream);
        assert_int_equal(ev->stream_version, e.expected_version + 1);
        tu_assert_uuid_equal(&ev->id, &e.ev.id);
        assert_int_equal(ev->recorded_at, e.ev.recorded_at);
        assert_int_equal(ev->data_len, e.ev.data_len);
        assert_memory_equal(ev->data, e.ev.data, e.ev.data_len);
        assert_int_equal(ev->ntags, e.ev.ntags);
        r->len = e.expected_version + 2;
        if (e.snapshot_after)
            r->snap_version = e.expected_version + 1;
        checked++;
    }
    TU_CHECK(evs_iter_next(&ev, it), EVS_ITEROVER);
    evs_iter_free(it);
    assert_int_equal(checked, cfg.events);
    gen_free(g);

    /* Every stream's version; the newest snapshot of every stream that
     * has one loads. */
    for (i = 0; i <= m.mask; i++) {
        stream_rec *r = &m.v[i];
        int64_t v;

        if (!r->used)
            continue;
        TU_OK(evs_stream_version(&v, s->db, r->tenant, r->name));
        assert_int_equal(v, r->len - 1);
        if (r->snap_version >= 0) {
            evs_snapshot *snap = NULL;

            TU_OK(evs_snapshot_load(&snap, s->db, r->tenant, r->name,
                                    EVS_END));
            assert_int_equal(snap->version, r->snap_version);
            assert_true(strstr(snap->schema, "State.v1") != NULL);
            if (evs__json_check(snap->data, snap->data_len, err,
                                sizeof err) != 0)
                fail_msg("snapshot of %s is not JSON: %s", r->name, err);
            evs_snapshot_free(snap);
            snaps_checked++;
        }
    }
    assert_int_equal(m.n, st->streams);
    assert_true(snaps_checked > 0);
    print_message("loaded %" PRIu64 " events, %" PRIu64 " streams, %" PRIu64
                  " snapshots (%" PRIu64 " streams with one) in %" PRIu64
                  " appends, %.2f s\n", st->events, st->streams,
                  st->snapshots, snaps_checked, st->appends, st->seconds);
    free(m.v);
    free(st);
}

/* A store that has the streams already: the conflict is reported, with
 * how much was stored; stream_base avoids it. */
static void test_load_conflict(void **state)
{
    tu_store *s = *state;
    gen_config cfg;
    char err[512];
    int rc;

    gen_config_init(&cfg);
    cfg.events = 2000;
    cfg.seed = 11;
    TU_OK(gen_load(s->db, &cfg, NULL, err, sizeof err));
    cfg.seed = 12;
    rc = gen_load(s->db, &cfg, NULL, err, sizeof err);
    assert_int_equal(rc, EVS_ECONFLICT);
    assert_non_null(strstr(err, "empty store"));
    assert_non_null(strstr(err, "stored"));

    /* With stream_base past the head, the same seed goes in again: other
     * streams, other ids. */
    cfg.seed = 11;
    cfg.stream_base = tu_head(s->db, NULL);
    TU_OK(gen_load(s->db, &cfg, NULL, err, sizeof err));
    assert_int_equal(tu_head(s->db, NULL), cfg.stream_base + cfg.events);
}

static void test_bad_config(void **state)
{
    gen_config cfg;
    gen *g = (gen *)1;
    char err[256];

    (void)state;
    gen_config_init(&cfg);
    cfg.events = 0;
    assert_int_equal(gen_new(&g, &cfg, err, sizeof err), EVS_EINVAL);
    assert_null(g);
    assert_non_null(strstr(err, "events"));

    gen_config_init(&cfg);
    cfg.tenants = 0;
    assert_int_equal(gen_new(&g, &cfg, err, sizeof err), EVS_EINVAL);
    cfg.tenants = GEN_MAX_TENANTS + 1;
    assert_int_equal(gen_new(&g, &cfg, err, sizeof err), EVS_EINVAL);
    assert_non_null(strstr(err, "tenants"));

    gen_config_init(&cfg);
    cfg.months = 0;
    assert_int_equal(gen_new(&g, &cfg, err, sizeof err), EVS_EINVAL);
    gen_config_init(&cfg);
    cfg.batch_events = 0;
    assert_int_equal(gen_new(&g, &cfg, err, sizeof err), EVS_EINVAL);

    /* One tenant, a few events: fine. */
    gen_config_init(&cfg);
    cfg.tenants = 1;
    cfg.events = 3;
    TU_OK(gen_new(&g, &cfg, err, sizeof err));
    gen_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_distributions),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test_setup_teardown(test_load, tu_setup_store,
                                        tu_teardown_store),
        cmocka_unit_test_setup_teardown(test_load_conflict, tu_setup_store,
                                        tu_teardown_store),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
