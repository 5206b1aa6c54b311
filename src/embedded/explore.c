/*
 * explore.c -- the embedded store's exploring reads (evstore.h,
 * "Exploring"; evs_read_event is the front end's, on event_position and
 * read_all): the streams of a tenant (the streams index alone) and the tenants with
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
 * A listing may read millions of keys, so it is a long walk ("Long walks" below):
 * it leaves the gate and renews its snapshot every EVS_READ_RENEW_EVENTS
 * keys or EVS_READ_RENEW_MS, as the iterators do. The sink's add only
 * copies, it never waits inside the gate.
 */
#include "embedded/embedded.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* ---- long walks -------------------------------------------------------------- */

/*
 * A listing of a large store reads many index entries (`evs tenants` on
 * 100 million events: seconds). Under one read transaction inside the
 * gate it would hold up a map growth of this process for all that time
 * (the writer's remap waits for the gate to drain, and new readers wait
 * behind it), and its snapshot would keep every page the writer frees
 * meanwhile, which the index then grows by (index.c, "Long reads"). So a
 * walk does what the iterators do: every EVS_READ_RENEW_EVENTS keys or
 * EVS_READ_RENEW_MS it leaves the gate (a remap may pass), enters again,
 * renews its snapshot and its cursors, and seeks the key after the last
 * one it read.
 *
 * What a walk reports stays what its first snapshot held. The first
 * snapshot's head position and next stream and tenant ids ("seq", written
 * by every commit with "applied") bound what later ones add: events past
 * the head are not counted, streams and tenants whose id is at or past
 * the next id of then are left out, and a stream's version is its last
 * one at or before the head (its stream_events entries, read back from the
 * newest version: only once the snapshot was renewed and only for streams
 * written since). The sub-databases read only gain entries (index.c), so
 * a newer snapshot holds every key of the first.
 */
typedef struct span {
    evs__emb *s;
    MDB_txn *txn;          /* NULL: aborted outside the gate (the map is gone) */
    MDB_cursor *cur[3];    /* the walk's cursors, renewed with its snapshot */
    uint32_t since;        /* keys read since the snapshot was taken */
    uint64_t since_ns;     /* when it was taken */
    unsigned renewals;     /* 0: the first snapshot */
    uint64_t head;         /* the first snapshot's head position */
    uint64_t next_sid;     /* its next stream id (UINT64_MAX: no "seq" yet) */
    uint32_t next_tid;     /* its next tenant id (UINT32_MAX: no "seq" yet) */
} span;

/* A read txn, inside the gate, and the first snapshot's bounds. */
static EVS_MUST_USE int span_begin(span *sp, evs__emb *s)
{
    memset(sp, 0, sizeof(*sp));
    sp->s = s;
    int rc = evs__rtxn_begin(s, &sp->txn);
    if (rc < 0) {
        sp->txn = NULL;
        return rc;
    }
    sp->since_ns = evs__coarse_ns();
    uint64_t loc;
    if ((rc = evs__idx_applied_get(sp->txn, s, &sp->head, &loc)) < 0)
        return rc;
    MDB_val k = {3, "seq"}, v;
    int mrc = mdb_get(sp->txn, s->db_meta, &k, &v);
    if (mrc == 0 && v.mv_size == 12) {
        sp->next_sid = evs__get_le64(v.mv_data);
        sp->next_tid = evs__get_le32((const uint8_t *)v.mv_data + 8);
    } else if (mrc == MDB_NOTFOUND) {
        sp->next_sid = UINT64_MAX; /* a new index: nothing to tell apart */
        sp->next_tid = UINT32_MAX;
    } else {
        return mrc ? evs__mdb_err(mrc, "read sequences")
                   : evs__err(EVS_ECORRUPT, "index: sequences have %zu bytes", v.mv_size);
    }
    return 0;
}

static EVS_MUST_USE int span_cursor(span *sp, int i, MDB_dbi dbi)
{
    int mrc = mdb_cursor_open(sp->txn, dbi, &sp->cur[i]);
    return mrc ? evs__mdb_err(mrc, "open cursor") : 0;
}

/* After one more key: whether the snapshot is due for renewal (the clock
 * is read every 64 keys: it costs 7 ns, a key about 50). */
static int span_due(span *sp)
{
    sp->since++;
    return sp->since >= EVS_READ_RENEW_EVENTS ||
           ((sp->since & 63) == 0 &&
            evs__coarse_ns() - sp->since_ns >= EVS_READ_RENEW_MS * UINT64_C(1000000));
}

/* Out of the gate and in again, on the newest snapshot: every pointer into
 * the map is stale after it and every cursor must seek. */
static EVS_MUST_USE int span_renew(span *sp)
{
    evs__emb *s = sp->s;
    evs__gate_leave(&s->idx_gate);
    int rc = evs__gate_enter(&s->idx_gate);
    if (rc < 0) {
        /* outside, the map gone: end the txn here (its cursors are closed
         * by span_end, which a read-only txn allows after its end) */
        mdb_txn_abort(sp->txn);
        sp->txn = NULL;
        return rc;
    }
    if ((rc = evs__rtxn_renew(s, sp->txn)) < 0)
        return rc;
    for (int i = 0; i < 3; i++) {
        int mrc;
        if (sp->cur[i] && (mrc = mdb_cursor_renew(sp->txn, sp->cur[i])) != 0)
            return evs__mdb_err(mrc, "renew cursor");
    }
    sp->since = 0;
    sp->since_ns = evs__coarse_ns();
    sp->renewals++;
    return 0;
}

static void span_end(span *sp)
{
    for (int i = 0; i < 3; i++)
        if (sp->cur[i])
            mdb_cursor_close(sp->cur[i]);
    if (sp->txn)
        evs__rtxn_end(sp->s, sp->txn);
}

/* ---- streams ---------------------------------------------------------------- */

/* One walk of the streams index: the tenant's part of it is a key range
 * (u32 BE tenant id + name), names in byte order. */
typedef struct walk {
    span sp;            /* cursors: streams, tenants, stream_events */
    const char *prefix;
    size_t plen;
    int system;
    uint64_t left;      /* streams still to report; UINT64_MAX: no limit */
    evs__list_sink *sink;
} walk;

/* The version of stream sid (the newest is *version) at the first
 * snapshot's head: back through its stream_events from the newest. */
static EVS_MUST_USE int version_at_head(walk *w, uint64_t sid, int64_t *version)
{
    uint8_t kb[16];
    evs__put_be64(kb, sid);
    evs__put_be64(kb + 8, (uint64_t)*version);
    MDB_val k = {16, kb}, v;
    int mrc;
    for (mrc = mdb_cursor_get(w->sp.cur[2], &k, &v, MDB_SET_KEY);
         mrc == 0 && k.mv_size == 16 && evs__get_be64(k.mv_data) == sid && v.mv_size == 16;
         mrc = mdb_cursor_get(w->sp.cur[2], &k, &v, MDB_PREV)) {
        if (evs__get_le64(v.mv_data) <= w->sp.head) {
            *version = (int64_t)evs__get_be64((const uint8_t *)k.mv_data + 8);
            return 0;
        }
    }
    if (mrc != 0 && mrc != MDB_NOTFOUND)
        return evs__mdb_err(mrc, "stream_events: read");
    return evs__err(EVS_ECORRUPT, "index: stream id %" PRIu64 " (older than this read) has "
                    "no stream_events entry at or before position %" PRIu64, sid,
                    w->sp.head);
}

/* Report the streams of tenant tid (name tname, a copy: it outlives a
 * renewal) from the first name >= from (> from when exclusive) on. Sets
 * sink->more and stops when one more would exceed the limit. */
static EVS_MUST_USE int tenant_streams(walk *w, uint32_t tid, const char *tname, size_t tlen,
                                       const char *from, size_t flen, int exclusive)
{
    /* + 1: the name after a name n is n + "\0" (names hold no NUL) */
    uint8_t kb[4 + EVS_MAX_STREAM_LEN + 1];
    MDB_cursor *cur = w->sp.cur[0];
    MDB_val k, v;
    int rc;
    evs__put_be32(kb, tid);
    memcpy(kb + 4, from, flen);
    k.mv_size = 4 + flen;
    if (exclusive)
        kb[k.mv_size++] = '\0';
    k.mv_data = kb;
    int mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    for (;;) {
        if (mrc == MDB_NOTFOUND)
            return 0;
        if (mrc != 0)
            return evs__mdb_err(mrc, "streams: read");
        if (k.mv_size < 4 || evs__get_be32(k.mv_data) != tid)
            return 0; /* past the tenant's range */
        const char *name = (const char *)k.mv_data + 4;
        size_t nlen = k.mv_size - 4;
        if (nlen < w->plen || memcmp(name, w->prefix, w->plen) != 0)
            return 0; /* past the prefix's range (names >= it are sorted) */
        if (!w->system && nlen > 0 && name[0] == '$') {
            /* every '$' name sorts before "%": jump over all of them */
            k.mv_size = 5;
            k.mv_data = kb;
            kb[4] = '$' + 1;
            mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
            continue;
        }
        if (v.mv_size != 16 || nlen > EVS_MAX_STREAM_LEN)
            return evs__err(EVS_ECORRUPT, "index: the streams entry of a stream of %zu "
                            "bytes has a value of %zu bytes", nlen, v.mv_size);
        uint64_t sid = evs__get_le64(v.mv_data);
        int64_t version = (int64_t)evs__get_le64((const uint8_t *)v.mv_data + 8);
        /* a renewed snapshot: streams made since are not this read's */
        int mine = !w->sp.renewals || sid < w->sp.next_sid;
        if (mine && w->sp.renewals && (rc = version_at_head(w, sid, &version)) < 0)
            return rc;
        if (mine && w->left == 0) {
            w->sink->more = 1;
            return 0;
        }
        if (mine && (rc = w->sink->add(w->sink, tname, tlen, name, nlen, version)) < 0)
            return rc;
        if (mine && w->left != UINT64_MAX)
            w->left--;
        if (span_due(&w->sp)) {
            memcpy(kb + 4, name, nlen);
            kb[4 + nlen] = '\0';
            if ((rc = span_renew(&w->sp)) < 0)
                return rc;
            k.mv_size = 5 + nlen;
            k.mv_data = kb;
            mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        } else {
            mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }
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
    uint32_t tid;
    int rc, mrc;
    walk w = {.prefix = prefix, .plen = strlen(prefix), .system = system,
              .left = limit ? limit : UINT64_MAX, .sink = sink};
    if ((rc = span_begin(&w.sp, s)) < 0 || (rc = span_cursor(&w.sp, 0, s->db_streams)) < 0 ||
        (rc = span_cursor(&w.sp, 2, s->db_stream_events)) < 0)
        goto out;
    if (tenant) {
        rc = evs__idx_tenant_get(w.sp.txn, s, tenant, strlen(tenant), &tid);
        if (rc == 0)
            rc = tenant_walk(&w, tid, tenant, strlen(tenant), after);
        else if (rc == EVS_ENOTFOUND)
            rc = 0;
        goto out;
    }
    /* every tenant, in name order: the tenants index is 't' + name; the
     * name is copied (sink->add and the seek after a renewal need it) */
    if ((rc = span_cursor(&w.sp, 1, s->db_tenants)) < 0)
        goto out;
    uint8_t kb[1 + EVS_MAX_TENANT_LEN + 1];
    size_t atl = after_tenant ? strlen(after_tenant) : 0;
    kb[0] = 't';
    memcpy(kb + 1, after_tenant ? after_tenant : "", atl);
    MDB_val k = {1 + atl, kb}, v;
    for (mrc = mdb_cursor_get(w.sp.cur[1], &k, &v, MDB_SET_RANGE); mrc == 0 && !sink->more;) {
        if (k.mv_size < 1 || ((const char *)k.mv_data)[0] != 't')
            break;
        if (v.mv_size != 4 || k.mv_size - 1 > EVS_MAX_TENANT_LEN) {
            rc = evs__err(EVS_ECORRUPT, "index: a tenants entry of %zu bytes has a value "
                          "of %zu bytes", k.mv_size, v.mv_size);
            goto out;
        }
        uint32_t t = evs__get_le32(v.mv_data);
        size_t tlen = k.mv_size - 1;
        memcpy(kb + 1, (const char *)k.mv_data + 1, tlen);
        int same = after_tenant && tlen == atl && memcmp(kb + 1, after_tenant, atl) == 0;
        unsigned renewals = w.sp.renewals;
        if ((!w.sp.renewals || t < w.sp.next_tid) &&
            (rc = tenant_walk(&w, t, (const char *)kb + 1, tlen, same ? after : NULL)) < 0)
            goto out;
        if (renewals != w.sp.renewals || span_due(&w.sp)) {
            if (renewals == w.sp.renewals && (rc = span_renew(&w.sp)) < 0)
                goto out;
            kb[1 + tlen] = '\0'; /* the tenant after this one */
            k.mv_size = 2 + tlen;
            k.mv_data = kb;
            mrc = mdb_cursor_get(w.sp.cur[1], &k, &v, MDB_SET_RANGE);
        } else {
            mrc = mdb_cursor_get(w.sp.cur[1], &k, &v, MDB_NEXT);
        }
    }
    if (mrc != 0 && mrc != MDB_NOTFOUND)
        rc = evs__mdb_err(mrc, "tenants: read");
out:
    span_end(&w.sp);
    return rc;
}

/* ---- tenants ---------------------------------------------------------------- */

/* The number of tenant_events keys of tenant tid at or before the first
 * snapshot's head, up to cap (0: all): its events outside system streams
 * (which have no tenant_events entry). */
static EVS_MUST_USE int count_events(span *sp, uint32_t tid, uint64_t cap, uint64_t *n)
{
    MDB_cursor *cur = sp->cur[1];
    uint8_t kb[12] = {0};
    evs__put_be32(kb, tid);
    MDB_val k = {12, kb}, v;
    int rc, mrc;
    *n = 0;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
         mrc == 0 && (!cap || *n < cap);) {
        if (k.mv_size != 12 || evs__get_be32(k.mv_data) != tid)
            break;
        uint64_t pos = evs__get_be64((const uint8_t *)k.mv_data + 4);
        if (pos > sp->head)
            break; /* a renewed snapshot's: not this read's */
        (*n)++;
        if (span_due(sp)) {
            evs__put_be64(kb + 4, pos + 1);
            if ((rc = span_renew(sp)) < 0)
                return rc;
            k.mv_size = 12;
            k.mv_data = kb;
            mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        } else {
            mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }
    }
    return mrc == 0 || mrc == MDB_NOTFOUND ? 0 : evs__mdb_err(mrc, "tenant_events: read");
}

int evs__emb_list_tenants(evs_db *db, uint64_t cap, evs__list_sink *sink)
{
    evs__emb *s = (evs__emb *)db;
    span sp;
    int rc, mrc;
    /* 't' + name, copied: sink->add and the seek after a renewal need it */
    uint8_t kb[1 + EVS_MAX_TENANT_LEN + 1];
    if ((rc = span_begin(&sp, s)) < 0 || (rc = span_cursor(&sp, 0, s->db_tenants)) < 0 ||
        (rc = span_cursor(&sp, 1, s->db_tenant_events)) < 0)
        goto out;
    MDB_val k = {1, "t"}, v;
    for (mrc = mdb_cursor_get(sp.cur[0], &k, &v, MDB_SET_RANGE); mrc == 0;) {
        if (k.mv_size < 1 || ((const char *)k.mv_data)[0] != 't')
            break;
        if (v.mv_size != 4 || k.mv_size - 1 > EVS_MAX_TENANT_LEN) {
            rc = evs__err(EVS_ECORRUPT, "index: a tenants entry of %zu bytes has a value "
                          "of %zu bytes", k.mv_size, v.mv_size);
            goto out;
        }
        uint32_t tid = evs__get_le32(v.mv_data);
        size_t tlen = k.mv_size - 1;
        memcpy(kb, k.mv_data, k.mv_size);
        unsigned renewals = sp.renewals;
        uint64_t n;
        /* a renewed snapshot: tenants made since are not this read's */
        if (!sp.renewals || tid < sp.next_tid) {
            if ((rc = count_events(&sp, tid, cap, &n)) < 0 ||
                (rc = sink->add(sink, (const char *)kb + 1, tlen, NULL, 0, (int64_t)n)) < 0)
                goto out;
        }
        if (renewals != sp.renewals || span_due(&sp)) {
            if (renewals == sp.renewals && (rc = span_renew(&sp)) < 0)
                goto out;
            kb[1 + tlen] = '\0'; /* the tenant after this one */
            k.mv_size = 2 + tlen;
            k.mv_data = kb;
            mrc = mdb_cursor_get(sp.cur[0], &k, &v, MDB_SET_RANGE);
        } else {
            mrc = mdb_cursor_get(sp.cur[0], &k, &v, MDB_NEXT);
        }
    }
    if (mrc != 0 && mrc != MDB_NOTFOUND)
        rc = evs__mdb_err(mrc, "tenants: read");
out:
    span_end(&sp);
    return rc;
}
