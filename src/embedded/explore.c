/*
 * explore.c -- the embedded store's exploring reads (evstore.h,
 * "Exploring"): one event by id (event_ids, then the record in the log),
 * the streams of a tenant (the streams index alone) and the tenants with
 * their event counts (tenants, then a walk of tenant_events keys: the
 * index only, no log read).
 *
 * Why count by walking keys rather than keep a counter per tenant: a
 * counter would be one more index entry the writer updates in every group
 * and a rebuild recomputes, and a change of the index format; the walk is
 * index-only, reads nothing of the log, and costs what evs_read_all of the
 * tenant would cost without decoding a record (tens of millions of keys a
 * second). `evs tenants` on a store of a billion events is the case where
 * that would not do, and then a counter can be added without changing
 * this interface.
 *
 * Every read is a short read transaction (evs__rtxn_begin/end: inside the
 * index's gate, so a map grown meanwhile is adopted); the sink's add only
 * copies, it never waits inside it.
 */
#include "embedded/embedded.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* ---- one event by id ------------------------------------------------------ */

/* Yields one decoded record once. The record lives in the log's mapping,
 * which lives as long as the handle: no transaction is kept. */
typedef struct one_iter {
    evs_iter base;
    int done;
    evs_event ev;
    const char **tags;
    size_t tags_cap;
} one_iter;

static int one_next(const evs_event **ev, evs_iter *base)
{
    one_iter *it = (one_iter *)base;
    if (it->done)
        return EVS_ITEROVER;
    it->done = 1;
    *ev = &it->ev;
    return 0;
}

static int one_marker(uint64_t *out, const evs_iter *base)
{
    *out = ((const one_iter *)base)->ev.position;
    return 0;
}

static void one_free(evs_iter *base)
{
    one_iter *it = (one_iter *)base;
    free((void *)it->tags);
    free(it);
}

static const evs__iter_ops one_ops = {
    .next = one_next,
    .marker = one_marker,
    .free = one_free,
};

int evs__emb_read_event(evs_iter **out, evs_db *db, const evs_uuid *id)
{
    evs__emb *s = (evs__emb *)db;
    MDB_txn *txn;
    uint64_t pos, loc;
    int rc;
    if ((rc = evs__rtxn_begin(s, &txn)) < 0)
        return rc;
    rc = evs__idx_id_get(txn, s, id->bytes, &pos, &loc);
    evs__rtxn_end(s, txn);
    if (rc < 0)
        return rc;
    uint32_t seg = evs__loc_seg(loc), off = evs__loc_off(loc), len;
    const uint8_t *m = evs__seg_map(s, seg);
    if (!m || off >= s->seg_size)
        return evs__err(EVS_ECORRUPT, "index points outside the log (segment %u offset %u, "
                        "position %" PRIu64 ")", seg, off, pos);
    int rr = evs__rec_check(m + off, s->seg_size - off, &len);
    if (rr != EVS_REC_OK)
        return evs__err(EVS_ECORRUPT, "log segment %u offset %u: record at position %" PRIu64
                        " is damaged: %s", seg, off, pos, evs__rec_problem(rr));
    one_iter *it = calloc(1, sizeof(*it));
    if (!it)
        return evs__err(EVS_ENOMEM, "out of memory creating an iterator");
    it->base.ops = &one_ops;
    it->base.db = db;
    if ((rc = evs__rec_decode(m + off, &it->ev, &it->tags, &it->tags_cap)) < 0) {
        one_free(&it->base);
        return rc;
    }
    if (it->ev.position != pos || memcmp(it->ev.id.bytes, id->bytes, 16) != 0) {
        one_free(&it->base);
        return evs__err(EVS_ECORRUPT, "index: event_ids entry of position %" PRIu64
                        " points at the record of position %" PRIu64 " (segment %u offset "
                        "%u)", pos, it->ev.position, seg, off);
    }
    *out = &it->base;
    return 0;
}

/* ---- streams ---------------------------------------------------------------- */

/* One walk of the streams index: the tenant's part of it is a key range
 * (u32 BE tenant id + name), names in byte order. */
typedef struct walk {
    evs__emb *s;
    MDB_cursor *cur;
    const char *prefix;
    size_t plen;
    int system;
    uint64_t left;      /* streams still to report; UINT64_MAX: no limit */
    evs__list_sink *sink;
} walk;

/* Report the streams of tenant tid (name tname) from the first name >=
 * from (exclusive of it when exclusive) on. Sets sink->more and stops
 * when one more would exceed the limit. */
static EVS_MUST_USE int tenant_streams(walk *w, uint32_t tid, const char *tname, size_t tlen,
                                       const char *from, size_t flen, int exclusive)
{
    uint8_t kb[4 + EVS_MAX_STREAM_LEN];
    MDB_val k, v;
    int rc;
    evs__put_be32(kb, tid);
    memcpy(kb + 4, from, flen);
    k.mv_size = 4 + flen;
    k.mv_data = kb;
    int mrc = mdb_cursor_get(w->cur, &k, &v, MDB_SET_RANGE);
    for (;;) {
        if (mrc == MDB_NOTFOUND)
            return 0;
        if (mrc != 0)
            return evs__mdb_err(mrc, "streams: read");
        if (k.mv_size < 4 || evs__get_be32(k.mv_data) != tid)
            return 0; /* past the tenant's range */
        const char *name = (const char *)k.mv_data + 4;
        size_t nlen = k.mv_size - 4;
        if (exclusive && nlen == flen && memcmp(name, from, flen) == 0) {
            mrc = mdb_cursor_get(w->cur, &k, &v, MDB_NEXT);
            continue;
        }
        if (nlen < w->plen || memcmp(name, w->prefix, w->plen) != 0)
            return 0; /* past the prefix's range (names >= it are sorted) */
        if (!w->system && nlen > 0 && name[0] == '$') {
            /* every '$' name sorts before "%": jump over all of them */
            k.mv_size = 5;
            k.mv_data = kb;
            kb[4] = '$' + 1;
            mrc = mdb_cursor_get(w->cur, &k, &v, MDB_SET_RANGE);
            continue;
        }
        if (v.mv_size != 16)
            return evs__err(EVS_ECORRUPT, "index: the streams entry of a stream of %zu "
                            "bytes has a value of %zu bytes", nlen, v.mv_size);
        if (w->left == 0) {
            w->sink->more = 1;
            return 0;
        }
        int64_t version = (int64_t)evs__get_le64((const uint8_t *)v.mv_data + 8);
        if ((rc = w->sink->add(w->sink, tname, tlen, name, nlen, version)) < 0)
            return rc;
        if (w->left != UINT64_MAX)
            w->left--;
        mrc = mdb_cursor_get(w->cur, &k, &v, MDB_NEXT);
    }
}

/* Where a tenant's walk starts: after `after` when it is past the prefix,
 * else at the prefix. */
static EVS_MUST_USE int tenant_walk(walk *w, uint32_t tid, const char *tname, size_t tlen,
                                    const char *after)
{
    if (after && strcmp(after, w->prefix) >= 0)
        return tenant_streams(w, tid, tname, tlen, after, strlen(after), 1);
    return tenant_streams(w, tid, tname, tlen, w->prefix, w->plen, 0);
}

int evs__emb_list_streams(evs_db *db, const char *tenant, const char *prefix,
                          const char *after_tenant, const char *after, uint64_t limit,
                          int system, evs__list_sink *sink)
{
    evs__emb *s = (evs__emb *)db;
    MDB_txn *txn;
    MDB_cursor *tcur = NULL;
    uint32_t tid;
    int rc, mrc;
    walk w = {s, NULL, prefix, strlen(prefix), system, limit ? limit : UINT64_MAX, sink};
    if ((rc = evs__rtxn_begin(s, &txn)) < 0)
        return rc;
    if ((mrc = mdb_cursor_open(txn, s->db_streams, &w.cur)) != 0) {
        rc = evs__mdb_err(mrc, "streams: open cursor");
        goto out;
    }
    if (tenant) {
        rc = evs__idx_tenant_get(txn, s, tenant, strlen(tenant), &tid);
        if (rc == 0)
            rc = tenant_walk(&w, tid, tenant, strlen(tenant), after);
        else if (rc == EVS_ENOTFOUND)
            rc = 0;
        goto out;
    }
    /* every tenant, in name order: the tenants index is 't' + name */
    if ((mrc = mdb_cursor_open(txn, s->db_tenants, &tcur)) != 0) {
        rc = evs__mdb_err(mrc, "tenants: open cursor");
        goto out;
    }
    uint8_t kb[1 + EVS_MAX_TENANT_LEN];
    size_t atl = after_tenant ? strlen(after_tenant) : 0;
    kb[0] = 't';
    memcpy(kb + 1, after_tenant ? after_tenant : "", atl);
    MDB_val k = {1 + atl, kb}, v;
    for (mrc = mdb_cursor_get(tcur, &k, &v, MDB_SET_RANGE); mrc == 0 && !sink->more;
         mrc = mdb_cursor_get(tcur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < 1 || ((const char *)k.mv_data)[0] != 't')
            break;
        if (v.mv_size != 4) {
            rc = evs__err(EVS_ECORRUPT, "index: a tenants entry has a value of %zu bytes",
                          v.mv_size);
            goto out;
        }
        const char *tname = (const char *)k.mv_data + 1;
        size_t tlen = k.mv_size - 1;
        int same = after_tenant && tlen == atl && memcmp(tname, after_tenant, atl) == 0;
        if ((rc = tenant_walk(&w, evs__get_le32(v.mv_data), tname, tlen,
                              same ? after : NULL)) < 0)
            goto out;
    }
    if (mrc != 0 && mrc != MDB_NOTFOUND)
        rc = evs__mdb_err(mrc, "tenants: read");
out:
    if (tcur)
        mdb_cursor_close(tcur);
    if (w.cur)
        mdb_cursor_close(w.cur);
    evs__rtxn_end(s, txn);
    return rc;
}

/* ---- tenants ---------------------------------------------------------------- */

/* The number of tenant_events keys of tenant tid: its events outside
 * system streams (which have no tenant_events entry). */
static EVS_MUST_USE int count_events(MDB_cursor *cur, uint32_t tid, uint64_t *n)
{
    uint8_t kb[12] = {0};
    evs__put_be32(kb, tid);
    MDB_val k = {12, kb}, v;
    *n = 0;
    int mrc;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
         mrc == 0 && k.mv_size == 12 && evs__get_be32(k.mv_data) == tid;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        (*n)++;
    return mrc == 0 || mrc == MDB_NOTFOUND ? 0 : evs__mdb_err(mrc, "tenant_events: read");
}

int evs__emb_list_tenants(evs_db *db, evs__list_sink *sink)
{
    evs__emb *s = (evs__emb *)db;
    MDB_txn *txn;
    MDB_cursor *tcur = NULL, *ecur = NULL;
    int rc, mrc;
    if ((rc = evs__rtxn_begin(s, &txn)) < 0)
        return rc;
    if ((mrc = mdb_cursor_open(txn, s->db_tenants, &tcur)) != 0 ||
        (mrc = mdb_cursor_open(txn, s->db_tenant_events, &ecur)) != 0) {
        rc = evs__mdb_err(mrc, "tenants: open cursor");
        goto out;
    }
    MDB_val k = {1, "t"}, v;
    for (mrc = mdb_cursor_get(tcur, &k, &v, MDB_SET_RANGE); mrc == 0;
         mrc = mdb_cursor_get(tcur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < 1 || ((const char *)k.mv_data)[0] != 't')
            break;
        if (v.mv_size != 4) {
            rc = evs__err(EVS_ECORRUPT, "index: a tenants entry has a value of %zu bytes",
                          v.mv_size);
            goto out;
        }
        uint64_t n;
        if ((rc = count_events(ecur, evs__get_le32(v.mv_data), &n)) < 0 ||
            (rc = sink->add(sink, (const char *)k.mv_data + 1, k.mv_size - 1, NULL, 0,
                            (int64_t)n)) < 0)
            goto out;
    }
    if (mrc != 0 && mrc != MDB_NOTFOUND)
        rc = evs__mdb_err(mrc, "tenants: read");
out:
    if (ecur)
        mdb_cursor_close(ecur);
    if (tcur)
        mdb_cursor_close(tcur);
    evs__rtxn_end(s, txn);
    return rc;
}
