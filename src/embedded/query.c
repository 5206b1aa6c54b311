/*
 * query.c -- DCB queries over the index (dcb.events semantics).
 *
 * A query is compiled, in one LMDB transaction, into a tree of sorted
 * position lists:
 *
 *   query  = OR of items              (nitems == 0: the tenant's events)
 *   item   = AND of its tags' lists and the OR of its types' lists
 *            (neither types nor tags: the tenant's events)
 *   leaves = a term's postings (type, tag, or category for a
 *            "$category:NAME" tag), a stream's events ("$stream:NAME",
 *            from stream_events), or a tenant's events
 *
 * Every list can seek to the first entry at or after a position (forward)
 * or the last at or before it (backward): postings with
 * MDB_GET_BOTH_RANGE, the tenant's events with MDB_SET_RANGE, a stream's
 * events by binary search over its versions (positions grow with them).
 * AND is a leapfrog join, OR a merge: a query touches only the postings
 * of its own terms, and a selective term bounds the work of an AND.
 *
 * Postings are keyed by a 64-bit hash of the term, so every candidate is
 * checked against its record before it is returned: a hash collision
 * costs one record read, never a wrong answer.
 *
 * Seeks are monotonic in the plan's direction, so a list already at or
 * past the asked position answers without touching LMDB, and the next
 * entry is tried with one cursor step before a full seek.
 */
#include "embedded/embedded.h"
#include "util/util.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

enum { QN_EMPTY, QN_POSTING, QN_STREAM, QN_TENANT, QN_AND, QN_OR };

typedef struct qnode {
    int kind;
    int valid;          /* positioned on an entry */
    uint64_t pos, loc;  /* that entry */
    uint64_t cost;      /* entries in the list (estimate for AND order) */
    MDB_cursor *cur;    /* leaves */
    uint8_t key[16];    /* posting key (12 B), stream prefix (8 B), tenant (4 B) */
    int64_t head;       /* QN_STREAM: the stream's last version */
    struct qnode **kids; /* QN_AND, QN_OR */
    size_t nkids;
} qnode;

struct evs__qplan {
    evs__emb *s;
    MDB_txn *txn;
    int backward;
    int in_writer;      /* records may be in the group being built */
    uint32_t tid;
    evs_query q;        /* for checking candidates: a deep copy (reads) or
                           the request's own (writer) */
    qnode *root;
    qnode *nodes;
    size_t nnodes;
    qnode **kidv;
    size_t nkidv;
    void *copy;         /* the query copy's storage */
};

/* ---- leaves ------------------------------------------------------------ */

static EVS_MUST_USE int cur_err(int mrc, qnode *n)
{
    n->valid = 0;
    return mrc == MDB_NOTFOUND ? 0 : evs__mdb_err(mrc, "query");
}

static void posting_entry(qnode *n, const MDB_val *v)
{
    n->pos = evs__get_be64(v->mv_data);
    n->loc = evs__get_le64((const uint8_t *)v->mv_data + 8);
    n->valid = 1;
}

static EVS_MUST_USE int posting_seek(qnode *n, uint64_t p, int backward)
{
    MDB_val k = {12, n->key}, v;
    uint8_t vb[16] = {0};
    int mrc;
    if (!backward) {
        if (n->valid && mdb_cursor_get(n->cur, &k, &v, MDB_NEXT_DUP) == 0) {
            posting_entry(n, &v);
            if (n->pos >= p)
                return 0;
        }
        evs__put_be64(vb, p);
        k.mv_size = 12;
        k.mv_data = n->key;
        v.mv_size = 16;
        v.mv_data = vb;
        if ((mrc = mdb_cursor_get(n->cur, &k, &v, MDB_GET_BOTH_RANGE)) != 0)
            return cur_err(mrc, n);
        posting_entry(n, &v);
        return 0;
    }
    if (n->valid && mdb_cursor_get(n->cur, &k, &v, MDB_PREV_DUP) == 0) {
        posting_entry(n, &v);
        if (n->pos <= p)
            return 0;
    }
    k.mv_size = 12;
    k.mv_data = n->key;
    if (p < UINT64_MAX) {
        evs__put_be64(vb, p + 1);
        v.mv_size = 16;
        v.mv_data = vb;
        mrc = mdb_cursor_get(n->cur, &k, &v, MDB_GET_BOTH_RANGE);
        if (mrc == 0)
            mrc = mdb_cursor_get(n->cur, &k, &v, MDB_PREV_DUP);
        else if (mrc == MDB_NOTFOUND &&
                 (mrc = mdb_cursor_get(n->cur, &k, &v, MDB_SET_KEY)) == 0)
            mrc = mdb_cursor_get(n->cur, &k, &v, MDB_LAST_DUP);
    } else {
        mrc = mdb_cursor_get(n->cur, &k, &v, MDB_SET_KEY);
        if (mrc == 0)
            mrc = mdb_cursor_get(n->cur, &k, &v, MDB_LAST_DUP);
    }
    if (mrc != 0)
        return cur_err(mrc, n);
    posting_entry(n, &v);
    return 0;
}

/* tenant_events: key tid(4 BE) + position(8 BE) -> location; an entry of
 * another tenant leaves n invalid (the list has ended). */
static void tenant_entry(qnode *n, const MDB_val *k, const MDB_val *v)
{
    if (k->mv_size != 12 || memcmp(k->mv_data, n->key, 4) != 0) {
        n->valid = 0;
        return;
    }
    n->pos = evs__get_be64((const uint8_t *)k->mv_data + 4);
    n->loc = evs__get_le64(v->mv_data);
    n->valid = 1;
}

static EVS_MUST_USE int tenant_seek(qnode *n, uint64_t p, int backward)
{
    MDB_val k, v;
    uint8_t kb[12];
    int mrc;
    if (n->valid &&
        mdb_cursor_get(n->cur, &k, &v, backward ? MDB_PREV : MDB_NEXT) == 0) {
        tenant_entry(n, &k, &v);
        if (!n->valid || (backward ? n->pos <= p : n->pos >= p))
            return 0;
    }
    memcpy(kb, n->key, 4);
    if (!backward) {
        evs__put_be64(kb + 4, p);
        k.mv_size = 12;
        k.mv_data = kb;
        if ((mrc = mdb_cursor_get(n->cur, &k, &v, MDB_SET_RANGE)) != 0)
            return cur_err(mrc, n);
        tenant_entry(n, &k, &v);
        return 0;
    }
    /* the last key <= (tid, p): just before (tid, p + 1) */
    if (p == UINT64_MAX) {
        evs__put_be32(kb, evs__get_be32(n->key) + 1);
        evs__put_be64(kb + 4, 0);
    } else {
        evs__put_be64(kb + 4, p + 1);
    }
    k.mv_size = 12;
    k.mv_data = kb;
    mrc = mdb_cursor_get(n->cur, &k, &v, MDB_SET_RANGE);
    mrc = mrc == MDB_NOTFOUND ? mdb_cursor_get(n->cur, &k, &v, MDB_LAST)
                              : mrc == 0 ? mdb_cursor_get(n->cur, &k, &v, MDB_PREV) : mrc;
    if (mrc != 0)
        return cur_err(mrc, n);
    tenant_entry(n, &k, &v);
    return 0;
}

/* stream_events: key sid(8 BE) + version(8 BE) -> position, location */
static EVS_MUST_USE int stream_at(qnode *n, int64_t version)
{
    uint8_t kb[16];
    memcpy(kb, n->key, 8);
    evs__put_be64(kb + 8, (uint64_t)version);
    MDB_val k = {16, kb}, v;
    int mrc = mdb_cursor_get(n->cur, &k, &v, MDB_SET_KEY);
    if (mrc != 0)
        return mrc == MDB_NOTFOUND
                   ? evs__err(EVS_ECORRUPT, "index: stream_events has no version %lld "
                              "below the stream's head", (long long)version)
                   : evs__mdb_err(mrc, "query");
    n->pos = evs__get_le64(v.mv_data);
    n->loc = evs__get_le64((const uint8_t *)v.mv_data + 8);
    n->valid = 1;
    return 0;
}

/* The stream's first entry with a version >= version: *found 0 when it
 * has none (the cursor is then anywhere). Versions may have gaps: a
 * scavenge removes events, and a tombstone has version INT64_MAX. */
static EVS_MUST_USE int stream_ge(qnode *n, uint64_t version, int *found, uint64_t *at)
{
    uint8_t kb[16];
    memcpy(kb, n->key, 8);
    evs__put_be64(kb + 8, version);
    MDB_val k = {16, kb}, v;
    int mrc = mdb_cursor_get(n->cur, &k, &v, MDB_SET_RANGE);
    *found = 0;
    if (mrc == MDB_NOTFOUND)
        return 0;
    if (mrc != 0)
        return evs__mdb_err(mrc, "query");
    if (k.mv_size != 16 || memcmp(k.mv_data, n->key, 8) != 0)
        return 0;
    *found = 1;
    *at = evs__get_be64((const uint8_t *)k.mv_data + 8);
    n->pos = evs__get_le64(v.mv_data);
    n->loc = evs__get_le64((const uint8_t *)v.mv_data + 8);
    return 0;
}

/* The version of the stream's first entry whose position is >= p, or -1:
 * a binary search over versions 0..head that steps over gaps. */
static EVS_MUST_USE int stream_first_at(qnode *n, uint64_t p, int64_t *out)
{
    uint64_t lo = 0, hi = (uint64_t)n->head;
    int rc, found;
    *out = -1;
    while (lo <= hi) {
        uint64_t mid = lo + (hi - lo) / 2, at;
        if ((rc = stream_ge(n, mid, &found, &at)) < 0)
            return rc;
        if (!found || n->pos >= p) {
            if (found)
                *out = (int64_t)at;
            if (mid == 0)
                break;
            hi = mid - 1;
        } else {
            lo = at + 1; /* every version up to `at` is before p */
        }
    }
    return 0;
}

/* Step the cursor (op MDB_PREV or MDB_LAST) to the entry before it: n
 * takes it when it is the stream's, else n is exhausted. */
static EVS_MUST_USE int stream_prev(qnode *n, MDB_cursor_op op)
{
    MDB_val k, v;
    int mrc = mdb_cursor_get(n->cur, &k, &v, op);
    n->valid = 0;
    if (mrc == MDB_NOTFOUND || (mrc == 0 && (k.mv_size != 16 ||
                                             memcmp(k.mv_data, n->key, 8) != 0)))
        return 0; /* no entry of the stream there */
    if (mrc != 0)
        return evs__mdb_err(mrc, "query");
    n->pos = evs__get_le64(v.mv_data);
    n->loc = evs__get_le64((const uint8_t *)v.mv_data + 8);
    n->valid = 1;
    return 0;
}

static EVS_MUST_USE int stream_seek(qnode *n, uint64_t p, int backward)
{
    MDB_val k, v;
    if (n->valid &&
        mdb_cursor_get(n->cur, &k, &v, backward ? MDB_PREV : MDB_NEXT) == 0 &&
        k.mv_size == 16 && memcmp(k.mv_data, n->key, 8) == 0) {
        n->pos = evs__get_le64(v.mv_data);
        n->loc = evs__get_le64((const uint8_t *)v.mv_data + 8);
        if (backward ? n->pos <= p : n->pos >= p)
            return 0;
    }
    /* forward: the first entry whose position >= p; backward: the entry
     * before the first whose position > p (or the stream's last) */
    int64_t first;
    int rc;
    n->valid = 0;
    if (!backward) {
        if ((rc = stream_first_at(n, p, &first)) < 0 || first < 0)
            return rc;
        return stream_at(n, first);
    }
    if (p == UINT64_MAX)
        first = -1;
    else if ((rc = stream_first_at(n, p + 1, &first)) < 0)
        return rc;
    if (first >= 0) {
        if ((rc = stream_at(n, first)) < 0)
            return rc;
    } else {
        /* the stream's last entry: before the first key beyond it */
        uint8_t kb[16];
        memcpy(kb, n->key, 8);
        memset(kb + 8, 0xff, 8);
        MDB_val kk = {16, kb};
        int mrc = mdb_cursor_get(n->cur, &kk, &v, MDB_SET_RANGE);
        if (mrc != 0 && mrc != MDB_NOTFOUND)
            return evs__mdb_err(mrc, "query");
        return stream_prev(n, mrc == MDB_NOTFOUND ? MDB_LAST : MDB_PREV);
    }
    /* the cursor is on the first entry past p: the one before it */
    return stream_prev(n, MDB_PREV);
}

/* ---- the tree ------------------------------------------------------------ */

static int reached(const qnode *n, uint64_t p, int backward)
{
    return n->valid && (backward ? n->pos <= p : n->pos >= p);
}

static EVS_MUST_USE int node_seek(qnode *n, uint64_t p, int backward)
{
    int rc;
    if (reached(n, p, backward))
        return 0;
    switch (n->kind) {
    case QN_EMPTY:
        n->valid = 0;
        return 0;
    case QN_POSTING:
        return posting_seek(n, p, backward);
    case QN_TENANT:
        return tenant_seek(n, p, backward);
    case QN_STREAM:
        return stream_seek(n, p, backward);
    case QN_OR: {
        qnode *best = NULL;
        for (size_t i = 0; i < n->nkids; i++) {
            qnode *c = n->kids[i];
            if ((rc = node_seek(c, p, backward)) < 0)
                return rc;
            if (c->valid && (!best || (backward ? c->pos > best->pos : c->pos < best->pos)))
                best = c;
        }
        n->valid = best != NULL;
        if (best) {
            n->pos = best->pos;
            n->loc = best->loc;
        }
        return 0;
    }
    case QN_AND: {
        /* leapfrog: move the target to each list's next entry until all
         * lists agree on it */
        uint64_t target = p;
        size_t agree = 0, i = 0;
        while (agree < n->nkids) {
            qnode *c = n->kids[i];
            if ((rc = node_seek(c, target, backward)) < 0)
                return rc;
            if (!c->valid) {
                n->valid = 0;
                return 0;
            }
            if (c->pos == target) {
                agree++;
            } else {
                target = c->pos;
                agree = 1;
            }
            i = (i + 1) % n->nkids;
        }
        n->valid = 1;
        n->pos = target;
        n->loc = n->kids[0]->loc;
        return 0;
    }
    }
    return evs__err(EVS_EBACKEND, "query: unknown node kind %d", n->kind);
}

/* ---- compiling ------------------------------------------------------------- */

static qnode *node_new(evs__qplan *pl, int kind)
{
    qnode *n = &pl->nodes[pl->nnodes++];
    memset(n, 0, sizeof(*n));
    n->kind = kind;
    return n;
}

static EVS_MUST_USE int leaf_cursor(evs__qplan *pl, qnode *n, MDB_dbi dbi)
{
    int mrc = mdb_cursor_open(pl->txn, dbi, &n->cur);
    return mrc ? evs__mdb_err(mrc, "query: open cursor") : 0;
}

static EVS_MUST_USE int term_leaf(evs__qplan *pl, qnode **out, unsigned kind,
                                  const char *text)
{
    evs__emb *s = pl->s;
    size_t pl_len = strlen(EVS_STREAM_TAG_PREFIX);
    int rc;
    qnode *n;
    if (kind == EVS_TERM_TAG && strncmp(text, EVS_STREAM_TAG_PREFIX, pl_len) == 0) {
        uint64_t sid;
        int64_t head;
        const char *name = text + pl_len;
        if ((rc = evs__idx_stream_get(pl->txn, s, pl->tid, name, strlen(name), &sid,
                                      &head)) < 0)
            return rc;
        if (sid == 0) {
            *out = node_new(pl, QN_EMPTY);
            return 0;
        }
        n = node_new(pl, QN_STREAM);
        evs__put_be64(n->key, sid);
        n->head = head;
        n->cost = (uint64_t)head + 1;
        *out = n;
        return leaf_cursor(pl, n, s->db_stream_events);
    }
    size_t cl = strlen(EVS_CATEGORY_TAG_PREFIX);
    if (kind == EVS_TERM_TAG && strncmp(text, EVS_CATEGORY_TAG_PREFIX, cl) == 0) {
        kind = EVS_TERM_CATEGORY;
        text += cl;
    }
    n = node_new(pl, QN_POSTING);
    evs__term_key(n->key, pl->tid, kind, text, strlen(text));
    if ((rc = leaf_cursor(pl, n, s->db_postings)) < 0)
        return rc;
    MDB_val k = {12, n->key}, v;
    size_t count = 0;
    int mrc = mdb_cursor_get(n->cur, &k, &v, MDB_SET_KEY);
    if (mrc == MDB_NOTFOUND) {
        n->kind = QN_EMPTY;
    } else if (mrc != 0 || (mrc = mdb_cursor_count(n->cur, &count)) != 0) {
        return evs__mdb_err(mrc, "query: postings lookup");
    }
    n->cost = count;
    *out = n;
    return 0;
}

static EVS_MUST_USE int tenant_leaf(evs__qplan *pl, qnode **out)
{
    qnode *n = node_new(pl, QN_TENANT);
    evs__put_be32(n->key, pl->tid);
    n->cost = UINT64_MAX / 4;
    *out = n;
    return leaf_cursor(pl, n, pl->s->db_tenant_events);
}

static int by_cost(const void *a, const void *b)
{
    const qnode *x = *(qnode *const *)a, *y = *(qnode *const *)b;
    return x->cost < y->cost ? -1 : x->cost > y->cost;
}

static qnode **kids_new(evs__qplan *pl, size_t n)
{
    qnode **k = pl->kidv + pl->nkidv;
    pl->nkidv += n;
    return k;
}

static EVS_MUST_USE int compile_item(evs__qplan *pl, qnode **out, const evs_query_item *it)
{
    int rc;
    if (it->ntypes == 0 && it->ntags == 0)
        return tenant_leaf(pl, out);
    qnode *types = NULL;
    if (it->ntypes == 1) {
        if ((rc = term_leaf(pl, &types, EVS_TERM_TYPE, it->types[0])) < 0)
            return rc;
    } else if (it->ntypes > 1) {
        types = node_new(pl, QN_OR);
        types->kids = kids_new(pl, it->ntypes);
        for (size_t t = 0; t < it->ntypes; t++) {
            qnode *c;
            if ((rc = term_leaf(pl, &c, EVS_TERM_TYPE, it->types[t])) < 0)
                return rc;
            if (c->kind != QN_EMPTY) {
                types->kids[types->nkids++] = c;
                types->cost += c->cost;
            }
        }
        if (types->nkids == 0)
            types->kind = QN_EMPTY;
    }
    if (it->ntags == 0) {
        *out = types;
        return 0;
    }
    qnode *and = node_new(pl, QN_AND);
    and->kids = kids_new(pl, it->ntags + 1);
    for (size_t t = 0; t < it->ntags; t++) {
        qnode *c;
        if ((rc = term_leaf(pl, &c, EVS_TERM_TAG, it->tags[t])) < 0)
            return rc;
        and->kids[and->nkids++] = c;
        if (c->kind == QN_EMPTY)
            and->kind = QN_EMPTY;
    }
    if (types) {
        and->kids[and->nkids++] = types;
        if (types->kind == QN_EMPTY)
            and->kind = QN_EMPTY;
    }
    if (and->kind == QN_AND)
        qsort(and->kids, and->nkids, sizeof(qnode *), by_cost);
    *out = and->nkids == 1 ? and->kids[0] : and;
    return 0;
}

/* Copy the query (types and tags) into one block the plan owns. */
static EVS_MUST_USE int copy_query(evs__qplan *pl, const evs_query *q)
{
    size_t nstr = 0, bytes = 0;
    for (size_t i = 0; i < q->nitems; i++) {
        const evs_query_item *it = &q->items[i];
        nstr += it->ntypes + it->ntags;
        for (size_t t = 0; t < it->ntypes; t++)
            bytes += strlen(it->types[t]) + 1;
        for (size_t t = 0; t < it->ntags; t++)
            bytes += strlen(it->tags[t]) + 1;
    }
    size_t sz = q->nitems * sizeof(evs_query_item) + nstr * sizeof(char *) + bytes;
    uint8_t *b = malloc(sz ? sz : 1);
    if (!b)
        return evs__err(EVS_ENOMEM, "out of memory compiling a query");
    evs_query_item *items = (evs_query_item *)b;
    const char **sp = (const char **)(items + q->nitems);
    char *text = (char *)(sp + nstr);
    for (size_t i = 0; i < q->nitems; i++) {
        const evs_query_item *it = &q->items[i];
        items[i].ntypes = it->ntypes;
        items[i].ntags = it->ntags;
        items[i].types = sp;
        for (size_t t = 0; t < it->ntypes; t++) {
            size_t l = strlen(it->types[t]) + 1;
            memcpy(text, it->types[t], l);
            *sp++ = text;
            text += l;
        }
        items[i].tags = sp;
        for (size_t t = 0; t < it->ntags; t++) {
            size_t l = strlen(it->tags[t]) + 1;
            memcpy(text, it->tags[t], l);
            *sp++ = text;
            text += l;
        }
    }
    pl->copy = b;
    pl->q.items = items;
    pl->q.nitems = q->nitems;
    return 0;
}

int evs__qplan_new(evs__qplan **out, evs__emb *s, MDB_txn *txn, uint32_t tid,
                   const evs_query *q, int backward, int in_writer)
{
    int rc;
    *out = NULL;
    evs__qplan *pl = calloc(1, sizeof(*pl));
    if (!pl)
        return evs__err(EVS_ENOMEM, "out of memory compiling a query");
    pl->s = s;
    pl->txn = txn;
    pl->tid = tid;
    pl->backward = backward;
    pl->in_writer = in_writer;
    size_t terms = 0;
    for (size_t i = 0; i < q->nitems; i++)
        terms += q->items[i].ntypes + q->items[i].ntags;
    /* per item at most: its leaves, an OR of types, an AND; plus the root */
    size_t maxn = terms + 2 * q->nitems + 2;
    pl->nodes = calloc(maxn, sizeof(qnode));
    pl->kidv = calloc(terms + 2 * q->nitems + 1, sizeof(qnode *));
    if (!pl->nodes || !pl->kidv) {
        evs__qplan_free(pl);
        return evs__err(EVS_ENOMEM, "out of memory compiling a query");
    }
    /* An iterator outlives its caller's query: copy it. The writer's plan
     * lives only while the append's request does: borrow it. */
    if (!in_writer && (rc = copy_query(pl, q)) < 0)
        goto fail;
    if (in_writer)
        pl->q = *q;
    int all = q->nitems == 0;
    for (size_t i = 0; i < q->nitems; i++)
        if (q->items[i].ntypes == 0 && q->items[i].ntags == 0)
            all = 1;
    if (all) { /* some item matches every event: the tenant's events */
        pl->q.nitems = 0;
        if ((rc = tenant_leaf(pl, &pl->root)) < 0)
            goto fail;
    } else {
        qnode *or = node_new(pl, QN_OR);
        or->kids = kids_new(pl, q->nitems);
        for (size_t i = 0; i < q->nitems; i++) {
            qnode *c;
            if ((rc = compile_item(pl, &c, &q->items[i])) < 0)
                goto fail;
            if (c->kind != QN_EMPTY)
                or->kids[or->nkids++] = c;
        }
        if (or->nkids == 0)
            or->kind = QN_EMPTY;
        pl->root = or->nkids == 1 ? or->kids[0] : or;
    }
    *out = pl;
    return 0;
fail:
    evs__qplan_free(pl);
    return rc;
}

int evs__qplan_renew(evs__qplan *pl)
{
    for (size_t i = 0; i < pl->nnodes; i++) {
        qnode *n = &pl->nodes[i];
        n->valid = 0; /* the cursors' positions are gone: the next seek searches */
        int mrc = n->cur ? mdb_cursor_renew(pl->txn, n->cur) : 0;
        if (mrc != 0)
            return evs__mdb_err(mrc, "query: renew cursor");
    }
    return 0;
}

void evs__qplan_free(evs__qplan *pl)
{
    if (!pl)
        return;
    for (size_t i = 0; i < pl->nnodes; i++)
        if (pl->nodes[i].cur)
            mdb_cursor_close(pl->nodes[i].cur);
    free(pl->nodes);
    free(pl->kidv);
    free(pl->copy);
    free(pl);
}

/* ---- matching a record ------------------------------------------------------ */

static int has_tag(const char *stream, size_t sl, const char *tags, size_t ntags,
                   const char *want)
{
    size_t pl = strlen(EVS_STREAM_TAG_PREFIX), cl = strlen(EVS_CATEGORY_TAG_PREFIX);
    if (strncmp(want, EVS_STREAM_TAG_PREFIX, pl) == 0)
        return sl > 0 && strlen(want + pl) == sl && memcmp(want + pl, stream, sl) == 0;
    if (strncmp(want, EVS_CATEGORY_TAG_PREFIX, cl) == 0) {
        size_t n = evs__category_len(stream, sl);
        return sl > 0 && strlen(want + cl) == n && memcmp(want + cl, stream, n) == 0;
    }
    for (size_t i = 0; i < ntags; i++) {
        size_t l = strlen(tags);
        if (strcmp(tags, want) == 0)
            return 1;
        tags += l + 1;
    }
    return 0;
}

int evs__query_matches(const evs_query *q, const uint8_t *rec)
{
    const char *stream = (const char *)rec + EVS_REC_OFF_VAR +
                         evs__get_le16(rec + EVS_REC_OFF_TENANT_LEN) + 1;
    size_t sl = evs__get_le16(rec + EVS_REC_OFF_STREAM_LEN);
    if (evs__is_system_stream(stream, sl))
        return 0; /* no query sees checkpoints, not even "$stream:$checkpoint-x" */
    if (q->nitems == 0)
        return 1;
    const char *type = stream + sl + 1;
    size_t tl = evs__get_le16(rec + EVS_REC_OFF_TYPE_LEN);
    const char *tags = type + tl + 1;
    size_t ntags = evs__get_le16(rec + EVS_REC_OFF_NTAGS);
    for (size_t i = 0; i < q->nitems; i++) {
        const evs_query_item *it = &q->items[i];
        int ok = it->ntypes == 0;
        for (size_t t = 0; t < it->ntypes && !ok; t++)
            ok = strlen(it->types[t]) == tl && memcmp(it->types[t], type, tl) == 0;
        for (size_t t = 0; t < it->ntags && ok; t++)
            ok = has_tag(stream, sl, tags, ntags, it->tags[t]);
        if (ok)
            return 1;
    }
    return 0;
}

/* ---- running ---------------------------------------------------------------- */

int evs__qplan_seek(evs__qplan *pl, uint64_t from, uint64_t *pos, uint64_t *loc,
                    const uint8_t **rec)
{
    evs__emb *s = pl->s;
    int rc;
    for (;;) {
        if ((rc = node_seek(pl->root, from, pl->backward)) < 0)
            return rc;
        if (!pl->root->valid)
            return 0;
        uint64_t p = pl->root->pos, l = pl->root->loc;
        const uint8_t *r;
        if (pl->in_writer) {
            r = evs__rec_at(s, l);
            if (!r)
                return evs__err(EVS_ECORRUPT, "index points outside the log (position "
                                "%" PRIu64 ")", p);
        } else {
            uint32_t seg = evs__loc_seg(l), off = evs__loc_off(l), len;
            const uint8_t *m = evs__seg_map(s, seg);
            if (!m || off >= s->seg_size)
                return evs__err(EVS_ECORRUPT, "index points outside the log (segment %u "
                                "offset %u)", seg, off);
            int rr = evs__rec_check(m + off, s->seg_size - off, &len);
            if (rr == EVS_REC_ZERO && evs__seg_scavenged(m)) {
                /* a scavenge removed it after the plan's snapshot: no match */
                if (pl->backward) {
                    if (p == 0)
                        return 0;
                    from = p - 1;
                } else {
                    from = p + 1;
                }
                continue;
            }
            if (rr != EVS_REC_OK)
                return evs__err(EVS_ECORRUPT, "log segment %u offset %u: record at "
                                "position %" PRIu64 " is damaged: %s", seg, off, p,
                                evs__rec_problem(rr));
            r = m + off;
        }
        if (evs__query_matches(&pl->q, r)) {
            *pos = p;
            *loc = l;
            *rec = r;
            return 1;
        }
        /* a term hash collision: not a match, look further */
        if (pl->backward) {
            if (p == 0)
                return 0;
            from = p - 1;
        } else {
            from = p + 1;
        }
    }
}
