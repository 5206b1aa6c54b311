/*
 * test_model.c -- random operations against the store and against a plain
 * in-memory model of it, compared after every operation.
 *
 * Operations: appends to random streams of three tenants with random
 * expected versions (and random ids, sometimes none), idempotent
 * re-sends, reused ids, multi-stream appends, stream reads in both
 * directions, $all reads per tenant and across tenants, versions, heads,
 * stats, and now and then close + reopen + verify.
 *
 * Seeded: the seed is printed; EVS_TEST_SEED replays a run, EVS_MODEL_OPS
 * changes the number of operations, EVS_TEST_VERBOSE=1 prints each one.
 */
#include "testutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_OPS 4000
#define NTENANTS 3
#define NSTREAMS 6
#define MAX_BATCH 3
#define NTAGS 4
#define REMEMBERED 64

static const char *const tenant_arg[NTENANTS] = {NULL, "alpha", "beta"};
static const char *const tenant_name[NTENANTS] = {"", "alpha", "beta"};
static const char *const tag_pool[NTAGS] = {"a:1", "b:2", "c:3", "d:4"};
static const char *const type_pool[3] = {"Created", "Updated", "Deleted"};

/* ------------------------------------------------------------------ */
/* The model                                                           */
/* ------------------------------------------------------------------ */

typedef struct m_event {
    int tenant, stream;
    int64_t version;
    const char *type;
    evs_uuid id;
    int id_known; /* given, or learned from the first read */
    char data[64];
    unsigned tagmask;
} m_event;

typedef struct model {
    m_event *ev; /* ev[p - 1] is position p */
    uint64_t n, cap;
    uint64_t *streams[NTENANTS][NSTREAMS]; /* positions, by version */
    size_t slen[NTENANTS][NSTREAMS], scap[NTENANTS][NSTREAMS];
} model;

/* An append whose events all carried ids, to re-send later. */
typedef struct remembered {
    int tenant, stream;
    size_t n;
    evs_uuid id[MAX_BATCH];
    const char *type[MAX_BATCH];
    char data[MAX_BATCH][64];
    unsigned tagmask[MAX_BATCH];
    evs_append_result result;
} remembered;

static int64_t m_version(const model *m, int t, int s)
{
    return (int64_t)m->slen[t][s] - 1;
}

static uint64_t m_head(const model *m, int t) /* t < 0: all */
{
    uint64_t p;
    if (t < 0)
        return m->n;
    for (p = m->n; p > 0; p--)
        if (m->ev[p - 1].tenant == t)
            return p;
    return 0;
}

static void m_push(model *m, const m_event *e)
{
    int t = e->tenant, s = e->stream;
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 1024;
        m->ev = realloc(m->ev, m->cap * sizeof *m->ev);
        assert_non_null(m->ev);
    }
    m->ev[m->n++] = *e;
    if (m->slen[t][s] == m->scap[t][s]) {
        m->scap[t][s] = m->scap[t][s] ? m->scap[t][s] * 2 : 64;
        m->streams[t][s] =
            realloc(m->streams[t][s], m->scap[t][s] * sizeof(uint64_t));
        assert_non_null(m->streams[t][s]);
    }
    m->streams[t][s][m->slen[t][s]++] = m->n;
}

static void m_free(model *m)
{
    int t, s;
    free(m->ev);
    for (t = 0; t < NTENANTS; t++)
        for (s = 0; s < NSTREAMS; s++)
            free(m->streams[t][s]);
}

static int m_condition_holds(int64_t expected, int64_t version)
{
    switch (expected) {
    case EVS_ANY:
        return 1;
    case EVS_NO_STREAM:
        return version == EVS_NO_STREAM;
    case EVS_STREAM_EXISTS:
        return version >= 0;
    default:
        return expected == version;
    }
}

/* ------------------------------------------------------------------ */
/* Context for failure messages                                        */
/* ------------------------------------------------------------------ */

#define MCHECK_INT(a, b)                                                     \
    do {                                                                     \
        int64_t ma_ = (int64_t)(a), mb_ = (int64_t)(b);                      \
        if (ma_ != mb_)                                                      \
            print_error("op %u (%s): %s = %" PRId64 " but the model says "   \
                        "%" PRId64 "\n",                                     \
                        tu_op_no, tu_op_desc, #a, ma_, mb_);                 \
        assert_int_equal(ma_, mb_);                                          \
    } while (0)

#define MCHECK_RC(expr, want)                                                \
    do {                                                                     \
        int mrc_ = (expr), mw_ = (want);                                     \
        if (mrc_ != mw_) {                                                   \
            print_error("op %u (%s):\n", tu_op_no, tu_op_desc);              \
            tu_report_rc(#expr, mrc_, mw_, __FILE__, __LINE__);              \
        }                                                                    \
        assert_int_equal(mrc_, mw_);                                         \
    } while (0)

/* ------------------------------------------------------------------ */
/* Comparing the store with the model                                  */
/* ------------------------------------------------------------------ */

static void check_event(model *m, const tu_event_copy *e, uint64_t want_pos)
{
    m_event *me;
    char stream[16];
    unsigned mask = 0;
    size_t i, j;

    MCHECK_INT(e->position, want_pos);
    me = &m->ev[want_pos - 1];
    snprintf(stream, sizeof stream, "s-%d", me->stream);
    if (strcmp(e->tenant, tenant_name[me->tenant]) != 0 ||
        strcmp(e->stream, stream) != 0 || strcmp(e->type, me->type) != 0 ||
        strcmp(e->data, me->data) != 0)
        print_error("op %u (%s): position %" PRIu64 " is %s/%s %s %s; the "
                    "model has %s/%s %s %s\n",
                    tu_op_no, tu_op_desc, want_pos, e->tenant, e->stream, e->type,
                    e->data, tenant_name[me->tenant], stream, me->type,
                    me->data);
    assert_string_equal(e->tenant, tenant_name[me->tenant]);
    assert_string_equal(e->stream, stream);
    assert_string_equal(e->type, me->type);
    assert_string_equal(e->data, me->data);
    MCHECK_INT(e->stream_version, me->version);
    if (me->id_known) {
        tu_assert_uuid_equal(&e->id, &me->id);
    } else {
        assert_int_equal(evs_uuid_is_nil(&e->id), 0);
        me->id = e->id;
        me->id_known = 1;
    }
    for (i = 0; i < e->ntags; i++) {
        for (j = 0; j < NTAGS; j++)
            if (strcmp(e->tags[i], tag_pool[j]) == 0)
                mask |= 1u << j;
    }
    MCHECK_INT(e->ntags, __builtin_popcount(me->tagmask));
    MCHECK_INT(mask, me->tagmask);
}

static void check_read_stream(model *m, evs_db *db, int t, int s,
                              int64_t from, evs_direction dir,
                              uint64_t limit)
{
    tu_events e = {0};
    char stream[16];
    int64_t v = m_version(m, t, s), first, k;
    size_t want_n = 0, i;

    snprintf(stream, sizeof stream, "s-%d", s);
    tu_describe("read_stream %s/%s from %" PRId64 " %s limit %" PRIu64,
             tenant_name[t], stream, from,
             dir == EVS_FORWARD ? "forward" : "backward", limit);
    MCHECK_RC(tu_read_stream(&e, db, tenant_arg[t], stream, from, dir, limit),
              0);
    if (dir == EVS_FORWARD) {
        first = from;
        if (v >= from)
            want_n = (size_t)(v - from + 1);
    } else {
        first = from == EVS_END || from > v ? v : from;
        if (first >= 0)
            want_n = (size_t)(first + 1);
    }
    if (limit != 0 && want_n > limit)
        want_n = (size_t)limit;
    MCHECK_INT(e.n, want_n);
    for (i = 0; i < e.n; i++) {
        k = dir == EVS_FORWARD ? first + (int64_t)i : first - (int64_t)i;
        check_event(m, &e.v[i], m->streams[t][s][k]);
    }
    tu_events_free(&e);
}

static void check_read_all(model *m, evs_db *db, int t, uint64_t from,
                           uint64_t limit)
{
    tu_events e = {0};
    uint64_t p;
    size_t i = 0;

    tu_describe("read_all %s from %" PRIu64 " limit %" PRIu64,
             t < 0 ? "(every tenant)" : tenant_name[t], from, limit);
    MCHECK_RC(tu_read_all(&e, db, t < 0 ? NULL : tenant_name[t], from, limit),
              0);
    for (p = from > 0 ? from : 1; p <= m->n; p++) {
        if (t >= 0 && m->ev[p - 1].tenant != t)
            continue;
        if (limit != 0 && i == limit)
            break;
        if (i >= e.n) {
            print_error("op %u (%s): the store stops before position %" PRIu64
                        "\n",
                        tu_op_no, tu_op_desc, p);
            MCHECK_INT(e.n, i + 1);
        }
        check_event(m, &e.v[i], p);
        i++;
    }
    MCHECK_INT(e.n, i);
    tu_events_free(&e);
}

static void check_counts(model *m, evs_db *db)
{
    evs_stats st;
    uint64_t streams = 0, tenants = 0;
    int t, s;

    tu_describe("stats");
    for (t = 0; t < NTENANTS; t++) {
        int any = 0;
        for (s = 0; s < NSTREAMS; s++)
            if (m->slen[t][s] > 0) {
                streams++;
                any = 1;
            }
        tenants += (uint64_t)any;
    }
    MCHECK_RC(evs_stats_get(&st, db), 0);
    MCHECK_INT(st.events, m->n);
    MCHECK_INT(st.head_position, m->n);
    MCHECK_INT(st.streams, streams);
    MCHECK_INT(st.tenants, tenants);
}

/* ------------------------------------------------------------------ */
/* Operations                                                          */
/* ------------------------------------------------------------------ */

static int64_t random_expected(tu_rng *r, int64_t v)
{
    switch (tu_rng_range(r, 0, 9)) {
    case 0:
    case 1:
        return EVS_ANY;
    case 2:
        return EVS_NO_STREAM;
    case 3:
        return EVS_STREAM_EXISTS;
    case 4:
        return v + 1;
    case 5:
        return v > 0 ? v - 1 : (int64_t)tu_rng_range(r, 0, 3);
    case 6:
        return (int64_t)tu_rng_range(r, 0, 20);
    default:
        return v; /* the right one (EVS_NO_STREAM when absent) */
    }
}

/* Build n random events; ids given with probability 7/10 each (all given
 * if all_ids). */
static void random_events(tu_rng *r, evs_event_data *ev, size_t n,
                          char data[][64], const char **tagv,
                          unsigned *tagmask, int all_ids)
{
    size_t i, j;
    for (i = 0; i < n; i++) {
        size_t nt = 0;
        snprintf(data[i], 64, "{\"r\":%" PRIu64 "}",
                 tu_rng_next(r) % 1000000);
        ev[i] = tu_event(type_pool[tu_rng_range(r, 0, 2)], data[i]);
        if (all_ids || tu_rng_range(r, 0, 9) < 7)
            evs_uuid_generate(&ev[i].id);
        tagmask[i] = (unsigned)tu_rng_range(r, 0, (1u << NTAGS) - 1);
        for (j = 0; j < NTAGS; j++)
            if (tagmask[i] & (1u << j))
                tagv[i * NTAGS + nt++] = tag_pool[j];
        ev[i].tags = tagv + i * NTAGS;
        ev[i].ntags = nt;
    }
}

static void model_append(model *m, int t, int s, const evs_event_data *ev,
                         const unsigned *tagmask, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        m_event me;
        memset(&me, 0, sizeof me);
        me.tenant = t;
        me.stream = s;
        me.version = m_version(m, t, s) + 1;
        me.type = ev[i].type;
        me.id = ev[i].id;
        me.id_known = !evs_uuid_is_nil(&ev[i].id);
        snprintf(me.data, sizeof me.data, "%.*s", (int)ev[i].data_len,
                 (const char *)ev[i].data);
        me.tagmask = tagmask[i];
        m_push(m, &me);
    }
}

static void op_append(model *m, evs_db *db, tu_rng *r, remembered *mem,
                      size_t *nmem)
{
    int t = (int)tu_rng_range(r, 0, NTENANTS - 1);
    int s = (int)tu_rng_range(r, 0, NSTREAMS - 1);
    size_t n = (size_t)tu_rng_range(r, 1, MAX_BATCH), i;
    int64_t v = m_version(m, t, s), expected = random_expected(r, v);
    evs_event_data ev[MAX_BATCH];
    char data[MAX_BATCH][64];
    const char *tagv[MAX_BATCH * NTAGS];
    unsigned tagmask[MAX_BATCH];
    evs_append_result res;
    char stream[16];
    int ok = m_condition_holds(expected, v), all_ids = 1;

    snprintf(stream, sizeof stream, "s-%d", s);
    random_events(r, ev, n, data, tagv, tagmask, 0);
    tu_describe("append %zu to %s/%s expected %" PRId64 " (at %" PRId64 ")", n,
             tenant_name[t], stream, expected, v);
    memset(&res, 0xcd, sizeof res);
    MCHECK_RC(evs_append(&res, db, tenant_arg[t], stream, expected, ev, n),
              ok ? 0 : EVS_ECONFLICT);
    if (!ok) {
        MCHECK_INT(res.status, EVS_ECONFLICT);
        MCHECK_INT(res.stream_version, v);
        return;
    }
    MCHECK_INT(res.status, 0);
    MCHECK_INT(res.first_position, m->n + 1);
    MCHECK_INT(res.last_position, m->n + n);
    MCHECK_INT(res.first_version, v + 1);
    MCHECK_INT(res.stream_version, v + (int64_t)n);
    model_append(m, t, s, ev, tagmask, n);

    for (i = 0; i < n; i++)
        if (evs_uuid_is_nil(&ev[i].id))
            all_ids = 0;
    if (all_ids) {
        remembered *rm = &mem[*nmem < REMEMBERED ? (*nmem)++
                                                 : tu_rng_range(r, 0,
                                                                REMEMBERED -
                                                                    1)];
        rm->tenant = t;
        rm->stream = s;
        rm->n = n;
        rm->result = res;
        for (i = 0; i < n; i++) {
            rm->id[i] = ev[i].id;
            rm->type[i] = ev[i].type;
            memcpy(rm->data[i], data[i], sizeof rm->data[i]);
            rm->tagmask[i] = tagmask[i];
        }
    }
}

static void build_remembered(const remembered *rm, evs_event_data *ev,
                             const char **tagv)
{
    size_t i, j;
    for (i = 0; i < rm->n; i++) {
        size_t nt = 0;
        ev[i] = tu_event(rm->type[i], rm->data[i]);
        ev[i].id = rm->id[i];
        for (j = 0; j < NTAGS; j++)
            if (rm->tagmask[i] & (1u << j))
                tagv[i * NTAGS + nt++] = tag_pool[j];
        ev[i].tags = tagv + i * NTAGS;
        ev[i].ntags = nt;
    }
}

static void op_resend(model *m, evs_db *db, tu_rng *r, remembered *mem,
                      size_t nmem, int damage)
{
    remembered *rm;
    evs_event_data ev[MAX_BATCH];
    const char *tagv[MAX_BATCH * NTAGS];
    char stream[16], other[64];
    evs_append_result res;
    int64_t expected;

    if (nmem == 0)
        return;
    rm = &mem[tu_rng_range(r, 0, nmem - 1)];
    build_remembered(rm, ev, tagv);
    snprintf(stream, sizeof stream, "s-%d", rm->stream);
    expected = random_expected(r, m_version(m, rm->tenant, rm->stream));
    if (damage) {
        /* The same id for other data. */
        size_t k = (size_t)tu_rng_range(r, 0, rm->n - 1);
        snprintf(other, sizeof other, "{\"other\":%zu}", k);
        ev[k].data = other;
        ev[k].data_len = strlen(other);
    }
    tu_describe("%s of an append of %zu to %s/%s expected %" PRId64,
             damage ? "damaged re-send" : "re-send", rm->n,
             tenant_name[rm->tenant], stream, expected);
    memset(&res, 0xcd, sizeof res);
    MCHECK_RC(evs_append(&res, db, tenant_arg[rm->tenant], stream, expected,
                         ev, rm->n),
              damage ? EVS_EDUPLICATE : 0);
    if (!damage) {
        MCHECK_INT(res.first_position, rm->result.first_position);
        MCHECK_INT(res.last_position, rm->result.last_position);
        MCHECK_INT(res.first_version, rm->result.first_version);
        MCHECK_INT(res.stream_version, rm->result.stream_version);
    }
}

static void op_multi(model *m, evs_db *db, tu_rng *r)
{
    int t = (int)tu_rng_range(r, 0, NTENANTS - 1);
    size_t nparts = (size_t)tu_rng_range(r, 2, 3), i;
    int streams[3];
    char names[3][16];
    evs_stream_append parts[3];
    evs_event_data ev[3][2];
    char data[3][2][64];
    const char *tagv[3][2 * NTAGS];
    unsigned tagmask[3][2];
    evs_append_result res[3];
    int64_t v[3];
    int ok = 1, used = 0;
    uint64_t next;
    char desc[160];
    size_t dl = 0;

    for (i = 0; i < nparts; i++) {
        do
            streams[i] = (int)tu_rng_range(r, 0, NSTREAMS - 1);
        while (used & (1 << streams[i]));
        used |= 1 << streams[i];
        snprintf(names[i], sizeof names[i], "s-%d", streams[i]);
        v[i] = m_version(m, t, streams[i]);
        parts[i].stream = names[i];
        parts[i].expected_version = random_expected(r, v[i]);
        parts[i].nevents = (size_t)tu_rng_range(r, 1, 2);
        random_events(r, ev[i], parts[i].nevents, data[i], tagv[i],
                      tagmask[i], 0);
        parts[i].events = ev[i];
        if (!m_condition_holds(parts[i].expected_version, v[i]))
            ok = 0;
        dl += (size_t)snprintf(desc + dl, sizeof desc - dl,
                               " %s:%zu@%" PRId64 "(at %" PRId64 ")",
                               names[i], parts[i].nevents,
                               parts[i].expected_version, v[i]);
    }
    tu_describe("multi in %s:%s", tenant_name[t], desc);
    memset(res, 0xcd, sizeof res);
    MCHECK_RC(evs_append_multi(res, db, tenant_arg[t], parts, nparts),
              ok ? 0 : EVS_ECONFLICT);
    if (!ok) {
        for (i = 0; i < nparts; i++) {
            if (!m_condition_holds(parts[i].expected_version, v[i])) {
                MCHECK_INT(res[i].status, EVS_ECONFLICT);
                MCHECK_INT(res[i].stream_version, v[i]);
            } else {
                MCHECK_INT(res[i].status, 0);
            }
        }
        return;
    }
    next = m->n + 1;
    for (i = 0; i < nparts; i++) {
        MCHECK_INT(res[i].status, 0);
        MCHECK_INT(res[i].first_position, next);
        MCHECK_INT(res[i].last_position, next + parts[i].nevents - 1);
        MCHECK_INT(res[i].first_version, v[i] + 1);
        MCHECK_INT(res[i].stream_version, v[i] + (int64_t)parts[i].nevents);
        next += parts[i].nevents;
        model_append(m, t, streams[i], ev[i], tagmask[i], parts[i].nevents);
    }
}

static void op_read_stream(model *m, evs_db *db, tu_rng *r)
{
    int t = (int)tu_rng_range(r, 0, NTENANTS - 1);
    int s = (int)tu_rng_range(r, 0, NSTREAMS - 1);
    int64_t v = m_version(m, t, s);
    uint64_t limit = tu_rng_range(r, 0, 2) == 0 ? tu_rng_range(r, 1, 5) : 0;
    uint64_t hi = v >= 0 ? (uint64_t)v + 2 : 2;
    if (tu_rng_range(r, 0, 1) == 0)
        check_read_stream(m, db, t, s, (int64_t)tu_rng_range(r, 0, hi),
                          EVS_FORWARD, limit);
    else
        check_read_stream(m, db, t, s,
                          tu_rng_range(r, 0, 2) == 0
                              ? EVS_END
                              : (int64_t)tu_rng_range(r, 0, hi),
                          EVS_BACKWARD, limit);
}

static void op_read_all(model *m, evs_db *db, tu_rng *r)
{
    int t = (int)tu_rng_range(r, 0, NTENANTS) - 1; /* -1: all */
    uint64_t from = tu_rng_range(r, 0, 3) == 0 ? 0
                                                : tu_rng_range(r, 0, m->n + 2);
    uint64_t limit = tu_rng_range(r, 0, 1) == 0 ? tu_rng_range(r, 1, 20) : 0;
    check_read_all(m, db, t, from, limit);
}

static void op_versions_and_heads(model *m, evs_db *db)
{
    int t, s;
    uint64_t h;
    tu_describe("versions and heads");
    for (t = 0; t < NTENANTS; t++) {
        for (s = 0; s < NSTREAMS; s++) {
            char stream[16];
            int64_t v;
            snprintf(stream, sizeof stream, "s-%d", s);
            MCHECK_RC(evs_stream_version(&v, db, tenant_arg[t], stream), 0);
            MCHECK_INT(v, m_version(m, t, s));
        }
        MCHECK_RC(evs_head_position(&h, db, tenant_name[t]), 0);
        MCHECK_INT(h, m_head(m, t));
    }
    MCHECK_RC(evs_head_position(&h, db, NULL), 0);
    MCHECK_INT(h, m_head(m, -1));
}

static void check_verify(evs_db *db)
{
    uint64_t checked = 0;
    tu_describe("verify");
    MCHECK_RC(evs_verify(&checked, db, NULL, NULL), 0);
}

static void test_model(void **state)
{
    tu_store *s = *state;
    model m;
    remembered *mem = calloc(REMEMBERED, sizeof *mem);
    size_t nmem = 0;
    const char *env = getenv("EVS_MODEL_OPS");
    unsigned nops = env ? (unsigned)atoi(env) : DEFAULT_OPS;
    uint64_t seed = tu_seed("model");
    unsigned reopens = 0;
    tu_rng r;

    assert_non_null(mem);
    memset(&m, 0, sizeof m);
    tu_rng_init(&r, seed);

    for (tu_op_no = 1; tu_op_no <= nops; tu_op_no++) {
        unsigned dice = (unsigned)tu_rng_range(&r, 0, 999);
        if (dice < 400)
            op_append(&m, s->db, &r, mem, &nmem);
        else if (dice < 470)
            op_resend(&m, s->db, &r, mem, nmem, 0);
        else if (dice < 500)
            op_resend(&m, s->db, &r, mem, nmem, 1);
        else if (dice < 620)
            op_multi(&m, s->db, &r);
        else if (dice < 790)
            op_read_stream(&m, s->db, &r);
        else if (dice < 900)
            op_read_all(&m, s->db, &r);
        else if (dice < 960)
            op_versions_and_heads(&m, s->db);
        else if (dice < 992)
            check_counts(&m, s->db);
        else {
            tu_describe("close and reopen");
            tu_store_reopen(s);
            reopens++;
            check_verify(s->db);
        }
    }
    tu_describe("final check");
    check_read_all(&m, s->db, -1, 0, 0);
    op_versions_and_heads(&m, s->db);
    check_counts(&m, s->db);
    check_verify(s->db);
    tu_store_reopen(s);
    check_read_all(&m, s->db, -1, 0, 0);
    check_counts(&m, s->db);
    print_message("%u operations, %" PRIu64 " events, %u reopens\n", nops,
                  m.n, reopens);
    m_free(&m);
    free(mem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_model, tu_setup_store,
                                        tu_teardown_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
