/*
 * test_dcb_model.c -- the DCB API against a plain in-memory model.
 *
 * A seeded PRNG drives a few thousand random operations over three tenants,
 * six event types, ten tags (three of them also derived from the payload
 * field "cat" through tag_fields), eight streams and events without a
 * stream:
 *   - appends (evs_append_ex, or evs_dcb_append when the request fits it):
 *     one to three parts of one to three events, some with expected
 *     versions, some with zero to two conditions built from random queries
 *     and a random `after` (or the marker of a read just made);
 *   - retries of earlier appends (same ids), whose conditions would fail;
 *   - queries, forward and backward, with random bounds and limits.
 * Every append outcome (success or EVS_ECONFLICT, each part's status and
 * actual version, conflicts[] positions, positions and versions written)
 * and every query result (exact positions, event fields, tags, marker) is
 * checked against the model. The store is closed and reopened a few times.
 *
 * Deterministic: the seed is fixed unless EVS_TEST_SEED is set; it is
 * printed either way. EVS_MODEL_OPS changes the number of operations,
 * EVS_TEST_VERBOSE=1 prints each one. ctest also runs it with
 * EVS_DEBUG_TERM_HASH_BITS=3 (many terms share a posting list, so every
 * answer depends on the backend's record check).
 */
#include "testutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_SEED 20261122u
#define DEFAULT_OPS 4000
#define NTEN 3       /* tenants that get events; tenant NTEN never does */
#define NTYPES 6     /* T0..T5; index NTYPES is a type never used */
#define NTAGS 10     /* g:0..g:6, cat:0..cat:2; index NTAGS never used */
#define CAT0 7       /* tag index of cat:0 */
#define NCAT 3
#define NSTREAMS 8   /* s0..s7; index NSTREAMS is a stream never used */
#define STREAM_TAG 100 /* query tag >= STREAM_TAG: "$stream:" + stream */
#define MAX_ITEMS 3
#define MAX_TERMS 3
#define MAX_PARTS 3
#define MAX_EVS 3
#define MAX_CONDS 3
#define REMEMBERED 32

static const char *const tenant_arg[NTEN + 1] = {NULL, "ta", "tb", "tz"};
static const char *const tenant_name[NTEN + 1] = {"", "ta", "tb", "tz"};
static const char *const type_name[NTYPES + 1] = {"T0", "T1", "T2", "T3",
                                                  "T4", "T5", "T9"};
static const char *const tag_name[NTAGS + 1] = {
    "g:0", "g:1", "g:2", "g:3", "g:4", "g:5", "g:6",
    "cat:0", "cat:1", "cat:2", "g:99"};
static const char *const stream_name[NSTREAMS + 1] = {
    "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s99"};
static const char *const stream_tag[NSTREAMS + 1] = {
    "$stream:s0", "$stream:s1", "$stream:s2", "$stream:s3", "$stream:s4",
    "$stream:s5", "$stream:s6", "$stream:s7", "$stream:s99"};

/* ------------------------------------------------------------------ */
/* The model                                                           */
/* ------------------------------------------------------------------ */

typedef struct m_event {
    int tenant;
    int stream; /* -1: none */
    int64_t version; /* -1 without a stream */
    int type;
    unsigned tags; /* bit i: tag_name[i] */
} m_event;

typedef struct model {
    m_event *ev; /* ev[p - 1] is position p */
    size_t n, cap;
    int64_t head[NTEN][NSTREAMS];
} model;

typedef struct m_item {
    int ntypes, types[MAX_TERMS];
    int ntags, tags[MAX_TERMS]; /* >= STREAM_TAG: a stream */
} m_item;

typedef struct m_query {
    int nitems;
    m_item items[MAX_ITEMS];
} m_query;

typedef struct m_evdesc {
    int type;
    unsigned tags; /* explicit */
    int cat;       /* -1: no "cat" member */
    int cat_str;   /* "cat" written as a string */
    evs_uuid id;   /* nil: none given */
} m_evdesc;

typedef struct m_part {
    int stream; /* -1: no stream */
    int64_t expected;
    int nev;
    m_evdesc ev[MAX_EVS];
} m_part;

typedef struct m_cond {
    m_query q;
    uint64_t after;
} m_cond;

typedef struct m_req {
    int tenant;
    int nparts;
    m_part parts[MAX_PARTS];
    int nconds;
    m_cond conds[MAX_CONDS];
    int tag_fields; /* tag_fields = {"cat"} */
    int dcb_call;   /* use evs_dcb_append */
} m_req;

typedef struct remembered {
    m_req req;
    evs_append_result res[MAX_PARTS];
} remembered;

static uint64_t seed;

/* Say which operation failed before asserting. */
#define MFAIL(...)                                                           \
    do {                                                                     \
        print_error("op %u (%s), seed %" PRIu64 ": ", tu_op_no, tu_op_desc,  \
                    seed);                                                   \
        print_error(__VA_ARGS__);                                            \
        print_error("\n");                                                   \
        fail();                                                              \
    } while (0)
#define MCHECK_RC(expr, want)                                                \
    do {                                                                     \
        int m_rc_ = (expr);                                                  \
        if (m_rc_ != (want))                                                 \
            MFAIL("%s returned %d (%s), expected %d (%s): %s", #expr,       \
                  m_rc_, tu_errname(m_rc_), (want), tu_errname(want),        \
                  evs_last_error());                                         \
    } while (0)

static void m_push(model *m, m_event e)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 1024;
        m->ev = realloc(m->ev, m->cap * sizeof *m->ev);
        assert_non_null(m->ev);
    }
    m->ev[m->n++] = e;
}

static int item_matches(const m_item *it, const m_event *e)
{
    int i;
    if (it->ntypes > 0) {
        int any = 0;
        for (i = 0; i < it->ntypes; i++)
            any |= it->types[i] == e->type;
        if (!any)
            return 0;
    }
    for (i = 0; i < it->ntags; i++) {
        int t = it->tags[i];
        if (t >= STREAM_TAG) {
            if (e->stream != t - STREAM_TAG)
                return 0;
        } else if (!(e->tags & (1u << t))) {
            return 0;
        }
    }
    return 1;
}

static int query_matches(const m_query *q, const m_event *e)
{
    int i;
    if (q->nitems == 0)
        return 1;
    for (i = 0; i < q->nitems; i++)
        if (item_matches(&q->items[i], e))
            return 1;
    return 0;
}

/* First position > after of the tenant matching q, or 0. */
static uint64_t first_match_after(const model *m, int tenant,
                                  const m_query *q, uint64_t after)
{
    uint64_t p;
    for (p = after + 1; p <= m->n; p++) {
        const m_event *e = &m->ev[p - 1];
        if (e->tenant == tenant && query_matches(q, e))
            return p;
    }
    return 0;
}

static unsigned final_tags(const m_evdesc *d, int tag_fields)
{
    unsigned t = d->tags;
    if (tag_fields && d->cat >= 0)
        t |= 1u << (CAT0 + d->cat);
    return t;
}

/* ------------------------------------------------------------------ */
/* Rendering model descriptions as API structs                         */
/* ------------------------------------------------------------------ */

typedef struct r_query {
    const char *types[MAX_ITEMS][MAX_TERMS];
    const char *tags[MAX_ITEMS][MAX_TERMS];
    evs_query_item items[MAX_ITEMS];
    evs_query q;
} r_query;

static void render_query(r_query *r, const m_query *m)
{
    int i, j;
    for (i = 0; i < m->nitems; i++) {
        const m_item *it = &m->items[i];
        for (j = 0; j < it->ntypes; j++)
            r->types[i][j] = type_name[it->types[j]];
        for (j = 0; j < it->ntags; j++)
            r->tags[i][j] = it->tags[j] >= STREAM_TAG
                                ? stream_tag[it->tags[j] - STREAM_TAG]
                                : tag_name[it->tags[j]];
        r->items[i].types = it->ntypes ? r->types[i] : NULL;
        r->items[i].ntypes = (size_t)it->ntypes;
        r->items[i].tags = it->ntags ? r->tags[i] : NULL;
        r->items[i].ntags = (size_t)it->ntags;
    }
    r->q.items = m->nitems ? r->items : NULL;
    r->q.nitems = (size_t)m->nitems;
}

static void fmt_query(char *buf, size_t cap, const m_query *q)
{
    size_t len = 0;
    int i, j;
    len += (size_t)snprintf(buf + len, cap - len, "{");
    for (i = 0; i < q->nitems && len < cap; i++) {
        const m_item *it = &q->items[i];
        len += (size_t)snprintf(buf + len, cap - len, "%s[", i ? " | " : "");
        for (j = 0; j < it->ntypes && len < cap; j++)
            len += (size_t)snprintf(buf + len, cap - len, "%s%s",
                                    j ? "," : "", type_name[it->types[j]]);
        for (j = 0; j < it->ntags && len < cap; j++)
            len += (size_t)snprintf(
                buf + len, cap - len, "%s%s", (j || it->ntypes) ? " " : "",
                it->tags[j] >= STREAM_TAG
                    ? stream_tag[it->tags[j] - STREAM_TAG]
                    : tag_name[it->tags[j]]);
        if (len < cap)
            len += (size_t)snprintf(buf + len, cap - len, "]");
    }
    if (len < cap)
        snprintf(buf + len, cap - len, "}");
}

typedef struct r_req {
    char json[MAX_PARTS][MAX_EVS][48];
    const char *tags[MAX_PARTS][MAX_EVS][NTAGS];
    evs_event_data ev[MAX_PARTS][MAX_EVS];
    evs_stream_append parts[MAX_PARTS];
    r_query rq[MAX_CONDS];
    evs_append_condition conds[MAX_CONDS];
    evs_append_request req;
} r_req;

static const char *const cat_field[1] = {"cat"};

static void render_req(r_req *r, const m_req *m)
{
    int p, i, t;
    memset(r, 0, sizeof *r);
    for (p = 0; p < m->nparts; p++) {
        const m_part *mp = &m->parts[p];
        for (i = 0; i < mp->nev; i++) {
            const m_evdesc *d = &mp->ev[i];
            evs_event_data *e = &r->ev[p][i];
            size_t nt = 0;
            for (t = 0; t < NTAGS; t++)
                if (d->tags & (1u << t))
                    r->tags[p][i][nt++] = tag_name[t];
            if (d->cat < 0)
                snprintf(r->json[p][i], sizeof r->json[p][i],
                         "{\"p\":%d,\"i\":%d}", p, i);
            else if (d->cat_str)
                snprintf(r->json[p][i], sizeof r->json[p][i],
                         "{\"i\":%d,\"cat\":\"%d\"}", i, d->cat);
            else
                snprintf(r->json[p][i], sizeof r->json[p][i],
                         "{\"cat\":%d,\"x\":[1,{\"cat\":9}]}", d->cat);
            e->type = type_name[d->type];
            e->data = r->json[p][i];
            e->data_len = strlen(r->json[p][i]);
            e->content_type = EVS_CONTENT_JSON;
            e->tags = nt ? r->tags[p][i] : NULL;
            e->ntags = nt;
            e->id = d->id;
        }
        r->parts[p].stream = mp->stream < 0 ? NULL : stream_name[mp->stream];
        r->parts[p].expected_version = mp->expected;
        r->parts[p].events = r->ev[p];
        r->parts[p].nevents = (size_t)mp->nev;
    }
    for (i = 0; i < m->nconds; i++) {
        render_query(&r->rq[i], &m->conds[i].q);
        r->conds[i].fail_if_events_match = r->rq[i].q;
        r->conds[i].after = m->conds[i].after;
    }
    r->req = (evs_append_request)EVS_APPEND_REQUEST_INIT;
    r->req.tenant = tenant_arg[m->tenant];
    r->req.parts = r->parts;
    r->req.nparts = (size_t)m->nparts;
    r->req.conditions = m->nconds ? r->conds : NULL;
    r->req.nconditions = (size_t)m->nconds;
    if (m->tag_fields) {
        r->req.tag_fields = cat_field;
        r->req.ntag_fields = 1;
    }
}

/* ------------------------------------------------------------------ */
/* Random generation                                                   */
/* ------------------------------------------------------------------ */

static int chance(tu_rng *r, unsigned percent)
{
    return tu_rng_range(r, 0, 99) < percent;
}

/* Pick k distinct values of [0, n) into out. */
static void pick_distinct(tu_rng *r, int *out, int k, int n)
{
    int i, j;
    for (i = 0; i < k; i++) {
        int v;
        do {
            v = (int)tu_rng_range(r, 0, (uint64_t)n - 1);
            for (j = 0; j < i && out[j] != v; j++)
                ;
        } while (j < i);
        out[i] = v;
    }
}

static void gen_item(tu_rng *r, m_item *it)
{
    int i;
    memset(it, 0, sizeof *it);
    it->ntypes = chance(r, 45) ? 0 : (int)tu_rng_range(r, 1, 2);
    it->ntags = chance(r, 35) ? 0 : (int)tu_rng_range(r, 1, 2);
    if (it->ntypes == 0 && it->ntags == 0 && !chance(r, 30))
        it->ntypes = 1; /* match-everything items: about 1 in 20 */
    pick_distinct(r, it->types, it->ntypes, NTYPES);
    for (i = 0; i < it->ntypes; i++)
        if (chance(r, 4))
            it->types[i] = NTYPES; /* a type no event has */
    pick_distinct(r, it->tags, it->ntags, NTAGS);
    for (i = 0; i < it->ntags; i++) {
        unsigned d = (unsigned)tu_rng_range(r, 0, 99);
        if (d < 4)
            it->tags[i] = NTAGS; /* a tag no event has */
        else if (d < 18)
            it->tags[i] = STREAM_TAG +
                          (int)tu_rng_range(r, 0, d < 5 ? NSTREAMS
                                                        : NSTREAMS - 1);
    }
    /* Two stream tags in one item: keep them distinct or not, both are
     * valid queries. */
}

static void gen_query(tu_rng *r, m_query *q)
{
    unsigned d = (unsigned)tu_rng_range(r, 0, 99);
    int i;
    memset(q, 0, sizeof *q);
    q->nitems = d < 6 ? 0 : d < 60 ? 1 : d < 85 ? 2 : 3;
    for (i = 0; i < q->nitems; i++)
        gen_item(r, &q->items[i]);
}

static void gen_event(tu_rng *r, m_evdesc *d, int with_id)
{
    int k = (int)tu_rng_range(r, 0, 3), idx[3], i;
    memset(d, 0, sizeof *d);
    d->type = (int)tu_rng_range(r, 0, NTYPES - 1);
    pick_distinct(r, idx, k, NTAGS);
    for (i = 0; i < k; i++)
        d->tags |= 1u << idx[i];
    d->cat = chance(r, 50) ? (int)tu_rng_range(r, 0, NCAT - 1) : -1;
    d->cat_str = chance(r, 30);
    if (with_id)
        evs_uuid_generate(&d->id);
}

static uint64_t gen_after(tu_rng *r, uint64_t head)
{
    unsigned d = (unsigned)tu_rng_range(r, 0, 99);
    if (d < 40) {
        uint64_t back = tu_rng_range(r, 0, 15);
        return back > head ? 0 : head - back;
    }
    if (d < 65)
        return head;
    if (d < 80)
        return tu_rng_range(r, 0, head + 3);
    if (d < 90)
        return 0;
    return head + tu_rng_range(r, 1, 3);
}

/* ------------------------------------------------------------------ */
/* Reads                                                               */
/* ------------------------------------------------------------------ */

static unsigned tags_mask(const evs_event *ev)
{
    unsigned mask = 0;
    size_t i;
    int t;
    for (i = 0; i < ev->ntags; i++) {
        for (t = 0; t < NTAGS; t++)
            if (strcmp(ev->tags[i], tag_name[t]) == 0)
                break;
        if (t == NTAGS)
            MFAIL("event %" PRIu64 " has an unknown tag \"%s\"", ev->position,
                  ev->tags[i]);
        if (mask & (1u << t))
            MFAIL("event %" PRIu64 " has tag \"%s\" twice", ev->position,
                  ev->tags[i]);
        mask |= 1u << t;
    }
    return mask;
}

/* The stored event must be the model's event at its position. */
static void check_event(const model *m, int tenant, const evs_event *ev)
{
    const m_event *e;
    if (ev->position == 0 || ev->position > m->n)
        MFAIL("event at position %" PRIu64 " beyond the model's %zu",
              ev->position, m->n);
    e = &m->ev[ev->position - 1];
    if (e->tenant != tenant || strcmp(ev->tenant, tenant_name[tenant]) != 0)
        MFAIL("event %" PRIu64 ": tenant \"%s\", model tenant \"%s\", read "
              "in tenant \"%s\"",
              ev->position, ev->tenant, tenant_name[e->tenant],
              tenant_name[tenant]);
    if (strcmp(ev->type, type_name[e->type]) != 0)
        MFAIL("event %" PRIu64 ": type %s, model %s", ev->position, ev->type,
              type_name[e->type]);
    if (strcmp(ev->stream, e->stream < 0 ? "" : stream_name[e->stream]) != 0)
        MFAIL("event %" PRIu64 ": stream \"%s\", model \"%s\"", ev->position,
              ev->stream, e->stream < 0 ? "" : stream_name[e->stream]);
    if (ev->stream_version != e->version)
        MFAIL("event %" PRIu64 ": version %" PRId64 ", model %" PRId64,
              ev->position, ev->stream_version, e->version);
    if (tags_mask(ev) != e->tags)
        MFAIL("event %" PRIu64 ": tags mask 0x%x, model 0x%x", ev->position,
              tags_mask(ev), e->tags);
}

/* The answer of the model for a query read; *marker_alt is a second
 * allowed marker (the header leaves a forward read that returned exactly
 * `limit` events with nothing left open: last returned or head). */
static size_t model_query(const model *m, int tenant, const m_query *q,
                          uint64_t bound, evs_direction dir, uint64_t limit,
                          uint64_t *want, uint64_t *marker,
                          uint64_t *marker_alt)
{
    size_t n = 0;
    uint64_t head = m->n, p;
    int more = 0;
    if (dir == EVS_FORWARD) {
        for (p = bound + 1; p <= head; p++) {
            const m_event *e = &m->ev[p - 1];
            if (e->tenant != tenant || !query_matches(q, e))
                continue;
            if (limit && n == limit) {
                more = 1;
                break;
            }
            want[n++] = p;
        }
        if (limit && n == limit) {
            *marker = want[n - 1];
            *marker_alt = more ? want[n - 1] : head;
        } else {
            *marker = *marker_alt = head;
        }
    } else {
        uint64_t start = (bound == 0 || bound - 1 > head) ? head : bound - 1;
        for (p = start; p >= 1; p--) {
            const m_event *e = &m->ev[p - 1];
            if (e->tenant != tenant || !query_matches(q, e))
                continue;
            if (limit && n == limit)
                break;
            want[n++] = p;
        }
        *marker = *marker_alt = head;
    }
    return n;
}

/* Run the query, compare with the model; returns the marker. */
static uint64_t check_query(const model *m, evs_db *db, int tenant,
                            const m_query *q, uint64_t bound,
                            evs_direction dir, uint64_t limit)
{
    uint64_t *want = malloc((m->n + 1) * sizeof *want);
    uint64_t marker = 0, alt = 0, got_marker = 0;
    size_t n, i = 0;
    r_query rq;
    evs_iter *it = NULL;
    const evs_event *ev;
    int rc;

    assert_non_null(want);
    n = model_query(m, tenant, q, bound, dir, limit, want, &marker, &alt);
    render_query(&rq, q);
    MCHECK_RC(evs_read_query(&it, db, tenant_arg[tenant], &rq.q, bound, dir,
                             limit),
              0);
    while ((rc = evs_iter_next(&ev, it)) == 0) {
        if (i >= n)
            MFAIL("read returned position %" PRIu64 " after the %zu "
                  "expected",
                  ev->position, n);
        if (ev->position != want[i])
            MFAIL("read returned position %" PRIu64 " as result %zu, "
                  "expected %" PRIu64,
                  ev->position, i, want[i]);
        check_event(m, tenant, ev);
        if (dir == EVS_FORWARD) {
            MCHECK_RC(evs_iter_marker(&got_marker, it), 0);
            if (got_marker != ev->position)
                MFAIL("marker %" PRIu64 " during a forward read, last "
                      "returned %" PRIu64,
                      got_marker, ev->position);
        }
        i++;
    }
    if (rc != EVS_ITEROVER)
        MFAIL("evs_iter_next returned %d (%s): %s", rc, tu_errname(rc),
              evs_last_error());
    if (i != n)
        MFAIL("read returned %zu events, expected %zu (first missing "
              "%" PRIu64 ")",
              i, n, want[i]);
    MCHECK_RC(evs_iter_marker(&got_marker, it), 0);
    if (got_marker != marker && got_marker != alt)
        MFAIL("marker %" PRIu64 ", expected %" PRIu64 "%s", got_marker,
              marker, alt != marker ? " (or the head)" : "");
    evs_iter_free(it);
    free(want);
    return got_marker;
}

static void gen_read(tu_rng *r, const model *m, uint64_t *bound,
                     evs_direction *dir, uint64_t *limit)
{
    *dir = chance(r, 50) ? EVS_FORWARD : EVS_BACKWARD;
    *bound = chance(r, 30) ? 0 : tu_rng_range(r, 0, m->n + 2);
    *limit = chance(r, 40) ? 0 : tu_rng_range(r, 1, 5);
}

static void op_query(model *m, evs_db *db, tu_rng *r)
{
    m_query q;
    uint64_t bound, limit;
    evs_direction dir;
    int tenant = chance(r, 5) ? NTEN : (int)tu_rng_range(r, 0, NTEN - 1);
    char qs[400];
    gen_query(r, &q);
    gen_read(r, m, &bound, &dir, &limit);
    fmt_query(qs, sizeof qs, &q);
    tu_describe("query tenant \"%s\" %s %s bound %" PRIu64 " limit %" PRIu64,
             tenant_name[tenant], qs,
             dir == EVS_FORWARD ? "forward" : "backward", bound, limit);
    check_query(m, db, tenant, &q, bound, dir, limit);
}

/* ------------------------------------------------------------------ */
/* Appends                                                             */
/* ------------------------------------------------------------------ */

static int version_ok(int64_t expected, int64_t actual)
{
    if (expected == EVS_ANY)
        return 1;
    if (expected == EVS_NO_STREAM)
        return actual == -1;
    if (expected == EVS_STREAM_EXISTS)
        return actual >= 0;
    return expected == actual;
}

static const char *part_label(const m_part *p)
{
    return p->stream < 0 ? "(none)" : stream_name[p->stream];
}

static void describe_req(const char *what, const m_req *q)
{
    char buf[480], qs[200];
    size_t len = 0;
    int i;
    len += (size_t)snprintf(buf + len, sizeof buf - len,
                            "%s tenant \"%s\"%s%s:", what,
                            tenant_name[q->tenant],
                            q->tag_fields ? " tag_fields" : "",
                            q->dcb_call ? " (evs_dcb_append)" : "");
    for (i = 0; i < q->nparts && len < sizeof buf; i++)
        len += (size_t)snprintf(buf + len, sizeof buf - len,
                                " [%s exp %" PRId64 " x%d]",
                                part_label(&q->parts[i]),
                                q->parts[i].expected, q->parts[i].nev);
    for (i = 0; i < q->nconds && len < sizeof buf; i++) {
        fmt_query(qs, sizeof qs, &q->conds[i].q);
        len += (size_t)snprintf(buf + len, sizeof buf - len,
                                " if-none %s after %" PRIu64, qs,
                                q->conds[i].after);
    }
    tu_describe("%s", buf);
}

/* Call the store with the rendered request. */
static int call_append(evs_db *db, const m_req *q, r_req *rr,
                       evs_append_result *res, uint64_t *conf)
{
    render_req(rr, q);
    memset(res, 0xcd, MAX_PARTS * sizeof *res);
    memset(conf, 0xcd, MAX_CONDS * sizeof *conf);
    if (q->dcb_call)
        return evs_dcb_append(res, conf, db, tenant_arg[q->tenant],
                              rr->ev[0], (size_t)q->parts[0].nev,
                              q->nconds ? &rr->conds[0] : NULL);
    return evs_append_ex(res, conf, db, &rr->req);
}

static void check_head(const model *m, evs_db *db)
{
    uint64_t h = 0;
    MCHECK_RC(evs_head_position(&h, db, NULL), 0);
    if (h != m->n)
        MFAIL("head %" PRIu64 ", model %zu", h, m->n);
}

/* Append q; compare with the model; apply it to the model on success.
 * Returns 1 when written. */
static int do_append(model *m, evs_db *db, const m_req *q,
                     evs_append_result *out)
{
    r_req *rr = malloc(sizeof *rr);
    evs_append_result res[MAX_PARTS];
    uint64_t conf[MAX_CONDS], want_conf[MAX_CONDS];
    int want_status[MAX_PARTS], fail = 0, rc, p, i;
    int64_t actual[MAX_PARTS];
    char msg[1024];

    assert_non_null(rr);
    for (p = 0; p < q->nparts; p++) {
        const m_part *mp = &q->parts[p];
        actual[p] = mp->stream < 0 ? -1 : m->head[q->tenant][mp->stream];
        want_status[p] = mp->stream < 0 || version_ok(mp->expected, actual[p])
                             ? 0
                             : EVS_ECONFLICT;
        fail |= want_status[p] != 0;
    }
    for (i = 0; i < q->nconds; i++) {
        want_conf[i] = first_match_after(m, q->tenant, &q->conds[i].q,
                                         q->conds[i].after);
        fail |= want_conf[i] != 0;
    }
    rc = call_append(db, q, rr, res, conf);
    snprintf(msg, sizeof msg, "%s", evs_last_error());
    if (rc != (fail ? EVS_ECONFLICT : 0))
        MFAIL("append returned %d (%s), the model says %s: %s", rc,
              tu_errname(rc), fail ? "EVS_ECONFLICT" : "0", msg);
    for (i = 0; i < q->nconds; i++) {
        if (conf[i] != want_conf[i])
            MFAIL("conflicts[%d] = %" PRIu64 ", model %" PRIu64, i, conf[i],
                  want_conf[i]);
        if (want_conf[i] != 0 && !tu_contains_number(msg, (int64_t)want_conf[i]))
            MFAIL("message \"%s\" does not name position %" PRIu64, msg,
                  want_conf[i]);
    }
    for (p = 0; p < q->nparts; p++) {
        if (res[p].status != want_status[p])
            MFAIL("part %d (%s): status %d, model %d", p,
                  part_label(&q->parts[p]), res[p].status, want_status[p]);
        if (want_status[p] != 0) {
            if (res[p].stream_version != actual[p])
                MFAIL("part %d: actual version %" PRId64 ", model %" PRId64,
                      p, res[p].stream_version, actual[p]);
            if (!strstr(msg, stream_name[q->parts[p].stream]))
                MFAIL("message \"%s\" does not name stream %s", msg,
                      stream_name[q->parts[p].stream]);
        }
    }
    if (fail) {
        check_head(m, db);
        free(rr);
        return 0;
    }
    /* Written: positions in part order, versions per stream. */
    for (p = 0; p < q->nparts; p++) {
        const m_part *mp = &q->parts[p];
        uint64_t first = m->n + 1;
        int64_t v0 = mp->stream < 0 ? -1 : actual[p] + 1;
        int64_t vlast = mp->stream < 0 ? -1 : actual[p] + mp->nev;
        if (res[p].first_position != first ||
            res[p].last_position != first + (uint64_t)mp->nev - 1 ||
            res[p].first_version != v0 || res[p].stream_version != vlast)
            MFAIL("part %d (%s): positions %" PRIu64 "..%" PRIu64
                  " versions %" PRId64 "..%" PRId64 ", model %" PRIu64
                  "..%" PRIu64 " versions %" PRId64 "..%" PRId64,
                  p, part_label(mp), res[p].first_position,
                  res[p].last_position, res[p].first_version,
                  res[p].stream_version, first,
                  first + (uint64_t)mp->nev - 1, v0, vlast);
        for (i = 0; i < mp->nev; i++) {
            m_event e;
            e.tenant = q->tenant;
            e.stream = mp->stream;
            e.version = mp->stream < 0 ? -1 : actual[p] + 1 + i;
            e.type = mp->ev[i].type;
            e.tags = final_tags(&mp->ev[i], q->tag_fields);
            m_push(m, e);
        }
        if (mp->stream >= 0)
            m->head[q->tenant][mp->stream] = vlast;
    }
    if (out != NULL)
        memcpy(out, res, sizeof res);
    check_head(m, db);
    free(rr);
    return 1;
}

static void gen_req(model *m, evs_db *db, tu_rng *r, m_req *q)
{
    int p, i, used[NSTREAMS] = {0}, streamless = 0;
    int with_ids = chance(r, 50);
    unsigned d;

    memset(q, 0, sizeof *q);
    q->tenant = (int)tu_rng_range(r, 0, NTEN - 1);
    d = (unsigned)tu_rng_range(r, 0, 99);
    q->nparts = d < 65 ? 1 : d < 90 ? 2 : 3;
    for (p = 0; p < q->nparts; p++) {
        m_part *mp = &q->parts[p];
        if (!streamless && chance(r, 35)) {
            streamless = 1;
            mp->stream = -1;
            mp->expected = EVS_ANY;
        } else {
            int64_t h;
            do
                mp->stream = (int)tu_rng_range(r, 0, NSTREAMS - 1);
            while (used[mp->stream]);
            used[mp->stream] = 1;
            h = m->head[q->tenant][mp->stream];
            d = (unsigned)tu_rng_range(r, 0, 9);
            mp->expected = d < 5   ? EVS_ANY
                           : d == 5 ? EVS_NO_STREAM
                           : d == 6 ? EVS_STREAM_EXISTS
                           : d < 9  ? h
                                    : (int64_t)tu_rng_range(
                                          r, 0, (uint64_t)(h + 2));
        }
        mp->nev = chance(r, 70) ? 1 : (int)tu_rng_range(r, 2, MAX_EVS);
        for (i = 0; i < mp->nev; i++)
            gen_event(r, &mp->ev[i], with_ids);
    }
    d = (unsigned)tu_rng_range(r, 0, 99);
    q->nconds = d < 35 ? 0 : d < 80 ? 1 : d < 95 ? 2 : 3;
    for (i = 0; i < q->nconds; i++) {
        gen_query(r, &q->conds[i].q);
        if (chance(r, 30)) {
            /* The DCB way: read the boundary, use the read's marker. */
            uint64_t bound, limit;
            evs_direction dir;
            gen_read(r, m, &bound, &dir, &limit);
            if (chance(r, 50)) {
                bound = 0;
                limit = dir == EVS_BACKWARD ? 1 : 0;
            }
            tu_describe("decision read for a condition");
            q->conds[i].after =
                check_query(m, db, q->tenant, &q->conds[i].q, bound, dir,
                            limit);
        } else {
            q->conds[i].after = gen_after(r, m->n);
        }
    }
    q->tag_fields = chance(r, 40);
    q->dcb_call = q->nparts == 1 && q->parts[0].stream < 0 &&
                  q->nconds <= 1 && !q->tag_fields && chance(r, 60);
}

static void remember(remembered *mem, size_t *nmem, const m_req *q,
                     const evs_append_result *res)
{
    int p, i;
    for (p = 0; p < q->nparts; p++)
        for (i = 0; i < q->parts[p].nev; i++)
            if (evs_uuid_is_nil(&q->parts[p].ev[i].id))
                return;
    remembered *slot = &mem[*nmem % REMEMBERED];
    slot->req = *q;
    memcpy(slot->res, res, sizeof slot->res);
    (*nmem)++;
}

static void op_append(model *m, evs_db *db, tu_rng *r, remembered *mem,
                      size_t *nmem, unsigned *stats)
{
    m_req q;
    evs_append_result res[MAX_PARTS];
    gen_req(m, db, r, &q);
    describe_req("append", &q);
    if (do_append(m, db, &q, res)) {
        stats[0]++;
        remember(mem, nmem, &q, res);
    } else {
        stats[1]++;
    }
}

/* Re-send a stored append: the original results, nothing written, even
 * though its conditions (and, with the extra one, certainly) fail now. */
static void op_retry(model *m, evs_db *db, tu_rng *r, remembered *mem,
                     size_t nmem)
{
    remembered *rm;
    m_req q;
    r_req *rr;
    evs_append_result res[MAX_PARTS];
    uint64_t conf[MAX_CONDS];
    int rc, p, i;
    size_t before = m->n;

    if (nmem == 0)
        return;
    rm = &mem[tu_rng_range(r, 0, (nmem < REMEMBERED ? nmem : REMEMBERED) - 1)];
    q = rm->req;
    if (q.nconds < MAX_CONDS && chance(r, 50)) {
        /* Add "no event of the tenant at all": fails (the events are
         * there). */
        memset(&q.conds[q.nconds], 0, sizeof q.conds[q.nconds]);
        q.nconds++;
        q.dcb_call = q.dcb_call && q.nconds == 1;
    }
    for (i = 0; i < q.nconds; i++)
        q.conds[i].after = 0;
    describe_req("retry", &q);
    rr = malloc(sizeof *rr);
    assert_non_null(rr);
    rc = call_append(db, &q, rr, res, conf);
    if (rc != 0)
        MFAIL("retry returned %d (%s): %s", rc, tu_errname(rc),
              evs_last_error());
    for (p = 0; p < q.nparts; p++) {
        const evs_append_result *a = &res[p], *b = &rm->res[p];
        if (a->status != 0 || a->first_position != b->first_position ||
            a->last_position != b->last_position ||
            a->first_version != b->first_version ||
            a->stream_version != b->stream_version)
            MFAIL("retry part %d: status %d positions %" PRIu64 "..%" PRIu64
                  " versions %" PRId64 "..%" PRId64 ", originally %" PRIu64
                  "..%" PRIu64 " versions %" PRId64 "..%" PRId64,
                  p, a->status, a->first_position, a->last_position,
                  a->first_version, a->stream_version, b->first_position,
                  b->last_position, b->first_version, b->stream_version);
    }
    for (i = 0; i < q.nconds; i++)
        if (conf[i] != 0)
            MFAIL("retry: conflicts[%d] = %" PRIu64 ", expected 0", i,
                  conf[i]);
    assert_int_equal(m->n, before);
    check_head(m, db);
    free(rr);
}

/* Every event of every tenant, by the all-query and by $all. */
static void check_everything(const model *m, evs_db *db)
{
    int t;
    m_query all;
    memset(&all, 0, sizeof all);
    for (t = 0; t <= NTEN; t++) {
        tu_events e = {0};
        size_t i, k = 0;
        tu_describe("full check of tenant \"%s\"", tenant_name[t]);
        check_query(m, db, t, &all, 0, EVS_FORWARD, 0);
        check_query(m, db, t, &all, 0, EVS_BACKWARD, 0);
        MCHECK_RC(tu_read_all(&e, db, tenant_name[t], 0, 0), 0);
        for (i = 0; i < m->n; i++) {
            const m_event *me = &m->ev[i];
            if (me->tenant != t)
                continue;
            if (k >= e.n || e.v[k].position != i + 1 ||
                e.v[k].stream_version != me->version ||
                strcmp(e.v[k].stream,
                       me->stream < 0 ? "" : stream_name[me->stream]) != 0)
                MFAIL("$all of tenant \"%s\": entry %zu differs from the "
                      "model's position %zu",
                      tenant_name[t], k, i + 1);
            k++;
        }
        if (k != e.n)
            MFAIL("$all of tenant \"%s\": %zu events, model %zu",
                  tenant_name[t], e.n, k);
        tu_events_free(&e);
    }
    check_head(m, db);
}

static void test_dcb_model(void **state)
{
    tu_store *s = *state;
    model m;
    remembered *mem = calloc(REMEMBERED, sizeof *mem);
    size_t nmem = 0;
    const char *env = getenv("EVS_MODEL_OPS");
    const char *bits = getenv("EVS_DEBUG_TERM_HASH_BITS");
    unsigned nops = env ? (unsigned)atoi(env) : DEFAULT_OPS;
    unsigned reopens = 0, queries = 0, retries = 0, stats[2] = {0, 0};
    tu_rng r;
    int t, k;

    assert_non_null(mem);
    seed = tu_seed_default("dcb model", DEFAULT_SEED);
    if (bits != NULL)
        print_message("EVS_DEBUG_TERM_HASH_BITS=%s: term hashes collide\n",
                      bits);
    memset(&m, 0, sizeof m);
    for (t = 0; t < NTEN; t++)
        for (k = 0; k < NSTREAMS; k++)
            m.head[t][k] = -1;
    tu_rng_init(&r, seed);

    for (tu_op_no = 1; tu_op_no <= nops; tu_op_no++) {
        unsigned dice = (unsigned)tu_rng_range(&r, 0, 999);
        if (dice < 450) {
            op_append(&m, s->db, &r, mem, &nmem, stats);
        } else if (dice < 500) {
            op_retry(&m, s->db, &r, mem, nmem);
            retries++;
        } else if (dice < 995) {
            op_query(&m, s->db, &r);
            queries++;
        } else {
            tu_describe("stats");
            {
                evs_stats st = tu_stats(s->db);
                if (st.events != m.n || st.head_position != m.n)
                    MFAIL("stats: %" PRIu64 " events head %" PRIu64
                          ", model %zu",
                          st.events, st.head_position, m.n);
            }
        }
        if (tu_op_no == nops / 3 || tu_op_no == 2 * nops / 3 ||
            tu_rng_range(&r, 0, 999) == 0) {
            tu_describe("close and reopen");
            tu_store_reopen(s);
            reopens++;
            check_everything(&m, s->db);
        }
    }
    tu_describe("final check");
    check_everything(&m, s->db);
    MCHECK_RC(evs_verify(NULL, s->db, NULL, NULL), 0);
    tu_store_reopen(s);
    check_everything(&m, s->db);
    print_message("%u operations: %u appends written, %u conflicts, %u "
                  "retries, %u queries, %u reopens; %zu events\n",
                  nops, stats[0], stats[1], retries, queries, reopens, m.n);
    /* The run must have exercised both outcomes. */
    assert_true(stats[0] > nops / 10);
    assert_true(stats[1] > nops / 20);
    free(m.ev);
    free(mem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dcb_model, tu_setup_store,
                                        tu_teardown_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
