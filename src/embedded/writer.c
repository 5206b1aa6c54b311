/*
 * writer.c -- group commit.
 *
 * Callers encode their records in their own threads and queue them. A
 * caller that finds nothing queued and no commit running commits inline;
 * otherwise the writer thread takes everything queued as one group while
 * the callers sleep:
 *
 *   ┌ begin LMDB write txn
 *   │ phase A, for each request in queue order: idempotency (event ids) and
 *   │   expected versions, checked against the txn plus this group's
 *   │   overlay; failed → that request alone fails, nothing of it is kept;
 *   │   ok → number, CRC and copy its records into the group buffer
 *   │ the syncer thread: one pwrite of the group buffer, one fdatasync;
 *   │ meanwhile phase B: the group's index entries into the txn
 *   │ commit the txn (no sync: the log is the durable copy)
 *   └ publish the new head, wake the group's callers
 *
 * A request is acknowledged only after fdatasync, and becomes visible to
 * readers only with the txn commit, so readers never see a non-durable
 * event. If the log write or sync fails, the group fails and the store
 * refuses further appends (after a failed fsync the page cache cannot be
 * trusted): the caller must reopen, which recovers from the log.
 */
#include "embedded/embedded.h"
#include "embedded/overlay.h"
#include "util/util.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Per-part state the writer needs while checking one request. */
typedef struct part_state {
    uint64_t sid;
    int64_t version;
} part_state;


/* ---- helpers ----------------------------------------------------------- */

/* Fail request r alone: the group goes on without it. Returns 0, for
 * stage_req's `return req_fail(...)`; callers that fail every request of a
 * group have no use for it. */
static int req_fail(evs__emb_req *r, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int req_fail(evs__emb_req *r, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
    va_end(ap);
    r->rc = rc;
    return 0;
}

#ifndef NDEBUG
/*
 * The group buffer as it is about to be written is what recovery relies
 * on (FORMAT.md, "Recovery rules"): whole records, 8-aligned and back to
 * back, at positions gbuf_first, gbuf_first + 1, ... next_position - 1
 * with no gap, each naming gbuf_first as its group and the first record
 * of its append as commit_first, the last one ending an append, and no
 * STAMP_TIME flag left. Debug builds only: it reads every record.
 */
static int group_ok(const evs__emb *s)
{
    uint64_t pos = s->gbuf_first, commit_first = pos;
    size_t off = 0;
    uint16_t flags = 0;
    while (off < s->gbuf_len) {
        const uint8_t *rec = s->gbuf + off;
        uint32_t len;
        if (evs__rec_check(rec, s->gbuf_len - off, &len) != EVS_REC_OK ||
            evs__get_le64(rec + EVS_REC_OFF_POSITION) != pos ||
            evs__get_le64(rec + EVS_REC_OFF_GROUP_FIRST) != s->gbuf_first ||
            evs__get_le64(rec + EVS_REC_OFF_COMMIT_FIRST) != commit_first)
            return 0;
        flags = evs__get_le16(rec + EVS_REC_OFF_FLAGS);
        if (flags & EVS_REC_FLAG_STAMP_TIME)
            return 0;
        off += evs__pad8(len);
        pos++;
        if (flags & EVS_REC_FLAG_COMMIT_END)
            commit_first = pos;
    }
    return off == s->gbuf_len && pos == s->next_position &&
           (flags & EVS_REC_FLAG_COMMIT_END);
}
#endif

/* Write the group buffer at the current offset and sync it. */
static EVS_MUST_USE int flush_group(evs__emb *s)
{
    size_t done = 0;
    /* the write stays inside the current segment, after its header, on a
     * record boundary: a record never spans two segments */
    assert(s->wfd >= 0 && s->woff >= EVS_SEG_HEADER_SIZE && s->woff % 8 == 0 &&
           s->woff + s->gbuf_len <= s->seg_size);
    /* a segment's first record has the position its header names */
    assert(s->woff > EVS_SEG_HEADER_SIZE ||
           s->gbuf_first == s->segs[s->wseg - 1].first_position);
    /* what recovery expects of a group (group_ok says what) */
    assert(s->gbuf_len > 0 && group_ok(s));
    while (done < s->gbuf_len) {
        ssize_t w = pwrite(s->wfd, s->gbuf + done, s->gbuf_len - done,
                           (off_t)s->woff + (off_t)done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return evs__err(w < 0 && errno == ENOSPC ? EVS_ENOSPC : EVS_EIO,
                            "log write to segment %u failed: %s", s->wseg,
                            w < 0 ? strerror(errno) : "short write");
        done += (size_t)w;
    }
    uint64_t t0 = evs__mono_ns();
    int src = fdatasync(s->wfd);
    evs__metrics_sync(&s->base, evs__mono_ns() - t0);
    if (src != 0)
        return evs__err(EVS_EIO, "fdatasync of log segment %u failed: %s", s->wseg,
                        strerror(errno));
    s->woff += (uint32_t)s->gbuf_len;
    s->gbuf_len = 0;
    return 0;
}


/* ---- lookups: this group's overlay first, then the txn ------------------ */

static EVS_MUST_USE int tenant_lookup(evs__emb *s, MDB_txn *txn, const char *t,
                                      size_t len, uint32_t *tid)
{
    evs__ov_entry *e = evs__ov_find(&s->ov, OV_TENANT, 0, t, len);
    if (e) {
        *tid = (uint32_t)e->a;
        return 0;
    }
    int rc = evs__idx_tenant_get(txn, s, t, len, tid);
    if (rc == EVS_ENOTFOUND) {
        *tid = 0;
        return 0;
    }
    return rc;
}

static EVS_MUST_USE int id_lookup(evs__emb *s, MDB_txn *txn, const uint8_t id[16],
                                  uint64_t *pos, uint64_t *loc)
{
    evs__ov_entry *e = evs__ov_find(&s->ov, OV_ID, 0, id, 16);
    if (e) {
        *pos = e->a;
        *loc = (uint64_t)e->b;
        return 0;
    }
    return evs__idx_id_get(txn, s, id, pos, loc);
}

static EVS_MUST_USE int stream_lookup(evs__emb *s, MDB_txn *txn, uint32_t tid,
                                      const char *name, size_t len, uint64_t *sid,
                                      int64_t *version)
{
    *sid = 0;
    *version = EVS_NO_STREAM;
    if (tid == 0 || len == 0) /* new tenant, or events without a stream */
        return 0;
    evs__ov_entry *e = evs__ov_find(&s->ov, OV_STREAM, tid, name, len);
    if (e) {
        *sid = e->a;
        *version = e->b;
        return 0;
    }
    return evs__idx_stream_get(txn, s, tid, name, len, sid, version);
}

/* ---- phase A: check and stage one request ------------------------------ */

/*
 * Idempotency: the request's first event id is already stored. It is a
 * retry if every event is stored, in the same order, with the same body;
 * then its original result is returned. Anything else is EVS_EDUPLICATE.
 */
static EVS_MUST_USE int check_retry(evs__emb *s, MDB_txn *txn, evs__emb_req *r,
                                    uint64_t first_pos)
{
    evs__append_req *c = r->core;
    char idt[37];
    size_t k = 0;
    for (size_t p = 0; p < c->nparts; p++) {
        const uint8_t *first = NULL, *last = NULL;
        for (size_t i = 0; i < c->parts[p].nevents; i++, k++) {
            uint64_t pos, loc;
            evs_uuid_format(idt, &c->ids[k]);
            int rc = c->id_given[k] ? id_lookup(s, txn, c->ids[k].bytes, &pos, &loc)
                                    : EVS_ENOTFOUND;
            if (rc == EVS_ENOTFOUND)
                return req_fail(r, EVS_EDUPLICATE,
                                "the first event of this append is already stored (at "
                                "position %" PRIu64 ") but event %zu (%s) is not: a "
                                "retry must resend exactly the same events",
                                first_pos, k, c->id_given[k] ? idt : "no id");
            if (rc < 0)
                return rc;
            const uint8_t *stored = evs__rec_at(s, loc);
            const uint8_t *mine = r->enc + r->rec_off[k];
            uint32_t sl = stored ? evs__get_le32(stored + EVS_REC_OFF_LEN) : 0;
            uint32_t ml = evs__get_le32(mine + EVS_REC_OFF_LEN);
            /* Same event = same bytes from the id on: ids, stream, type,
             * tags, metadata, data (the tenant is compared too). */
            if (pos != first_pos + k || !stored || sl != ml ||
                memcmp(stored + EVS_REC_OFF_ID, mine + EVS_REC_OFF_ID,
                       ml - EVS_REC_OFF_ID) != 0 ||
                memcmp(stored + EVS_REC_OFF_TENANT_LEN, mine + EVS_REC_OFF_TENANT_LEN, 2) != 0)
                return req_fail(r, EVS_EDUPLICATE,
                                "event id %s is already used by a different event "
                                "(position %" PRIu64 "); ids must be unique",
                                idt, pos);
            if (!first)
                first = stored;
            last = stored;
        }
        evs_append_result *res = &c->results[p];
        res->status = 0;
        res->first_version = (int64_t)evs__get_le64(first + EVS_REC_OFF_VERSION);
        res->stream_version = (int64_t)evs__get_le64(last + EVS_REC_OFF_VERSION);
        res->first_position = evs__get_le64(first + EVS_REC_OFF_POSITION);
        res->last_position = evs__get_le64(last + EVS_REC_OFF_POSITION);
    }
    r->rc = 0;
    r->retry = 1;
    c->retried = 1;
    return 0;
}

static EVS_MUST_USE int index_pending(evs__emb *s, MDB_txn *txn);
static EVS_MUST_USE int index_again(evs__emb *s, MDB_txn **txn, int64_t ms0, int rc,
                                    int *grown);

/*
 * The request's DCB conditions, against the txn. Every earlier request of
 * this group is indexed into the txn first (index_pending), so a condition
 * sees them: two appends with the same condition in one group cannot both
 * pass. That can fill the map (MDB_MAP_FULL): then index_again grows it
 * and puts every staged entry into a new txn (*txn), as phase B does,
 * whether or not part of the group is in the log already (a rollover
 * flushed it). ms0, grown: index_again's. A failed condition's
 * conflicts[] entry gets the matching event's position; returns the
 * number of failed conditions, or < 0 for an error that breaks the group.
 */
static EVS_MUST_USE int check_conditions(evs__emb *s, MDB_txn **txnp, int64_t ms0,
                                         int *grown, evs__emb_req *r, uint32_t tid)
{
    evs__append_req *c = r->core;
    int rc, failed = 0;
    if (c->nconds == 0 || tid == 0) /* a tenant without events matches nothing */
        return 0;
    if ((rc = index_pending(s, *txnp)) < 0 &&
        (rc = index_again(s, txnp, ms0, rc, grown)) < 0)
        return rc;
    MDB_txn *txn = *txnp;
    for (size_t i = 0; i < c->nconds; i++) {
        const evs_append_condition *cd = &c->conds[i];
        evs__qplan *pl;
        uint64_t pos = 0, loc;
        const uint8_t *rec;
        if (cd->after == UINT64_MAX)
            continue;
        if ((rc = evs__qplan_new(&pl, s, txn, tid, &cd->fail_if_events_match, 0, 1)) < 0)
            return rc;
        rc = evs__qplan_seek(pl, cd->after + 1, &pos, &loc, &rec);
        evs__qplan_free(pl);
        if (rc < 0)
            return rc;
        if (rc == 0)
            continue;
        c->conflicts[i] = pos; /* the front end writes the message */
        failed++;
    }
    return failed;
}

/*
 * Check one request and, if it may be written, number its records, copy
 * them into the group buffer and note its index entries (s->staged and the
 * overlay). *txnp: the group's txn, which check_conditions may replace
 * (ms0, grown: its). Returns < 0 only for failures that break the whole
 * group; a failed condition is recorded in r->rc.
 */
static EVS_MUST_USE int stage_req(evs__emb *s, MDB_txn **txnp, evs__emb_req *r,
                                  int64_t stamp, int64_t ms0, int *grown, int *flushed)
{
    evs__append_req *c = r->core;
    MDB_txn *txn = *txnp; /* until check_conditions */
    uint32_t tid = 0;
    int rc;
    r->rc = 0;
    r->retry = 0;

    if ((rc = tenant_lookup(s, txn, c->tenant, c->tenant_len, &tid)) < 0)
        return rc;

    /* idempotency by event id */
    for (size_t k = 0; k < c->nevents; k++) {
        if (!c->id_given[k])
            continue;
        uint64_t pos, loc;
        rc = id_lookup(s, txn, c->ids[k].bytes, &pos, &loc);
        if (rc == EVS_ENOTFOUND)
            continue;
        if (rc < 0)
            return rc;
        if (k == 0)
            return check_retry(s, txn, r, pos);
        char idt[37];
        evs_uuid_format(idt, &c->ids[k]);
        return req_fail(r, EVS_EDUPLICATE,
                        "event id %s (event %zu of this append) is already stored at "
                        "position %" PRIu64 "; ids must be unique", idt, k, pos);
    }

    /* expected versions: check every part, report every failure */
    if (evs__grow(&s->wparts, &s->wparts_cap, c->nparts, sizeof(part_state)) < 0)
        return evs__err(EVS_ENOMEM, "out of memory checking an append");
    part_state *w_parts = s->wparts;
    size_t nconf = 0;
    for (size_t p = 0; p < c->nparts; p++) {
        const evs_stream_append *pa = &c->parts[p];
        if ((rc = stream_lookup(s, txn, tid, pa->stream, c->stream_lens[p],
                                &w_parts[p].sid, &w_parts[p].version)) < 0)
            return rc;
        c->results[p].stream_version = w_parts[p].version;
        if (!evs__expected_ok(pa->expected_version, w_parts[p].version)) {
            c->results[p].status = EVS_ECONFLICT; /* the front end writes the message */
            nconf++;
        }
    }
    rc = check_conditions(s, txnp, ms0, grown, r, tid);
    txn = *txnp; /* a full map there continues in a new txn */
    if (rc < 0)
        return rc;
    if (nconf || rc > 0) {
        r->rc = EVS_ECONFLICT;
        return 0;
    }

    /* room in the current segment; an append never spans two segments */
    if (s->woff + s->gbuf_len + r->enc_len > s->seg_size) {
        if (s->gbuf_len > 0) {
            if ((rc = flush_group(s)) < 0)
                return rc;
            *flushed = 1;
        }
        int named = 0;
        if ((rc = evs__seg_create(s, s->wseg + 1, s->next_position, &named)) < 0) {
            if (named)
                *flushed = 1; /* the log's files changed: only a reopen
                                 (recovery) can reconcile them */
            return rc;
        }
        s->gbuf_first = s->next_position;
    }
    /* after a rollover it fits: evs__emb_append refused an append larger
     * than a segment */
    assert(s->woff + s->gbuf_len + r->enc_len <= s->seg_size);
    /* group_first names the first record of this write */
    assert(s->gbuf_len > 0 || s->gbuf_first == s->next_position);
    if (evs__grow(&s->gbuf, &s->gbuf_cap, s->gbuf_len + r->enc_len, 1) < 0 ||
        evs__grow(&s->staged, &s->staged_cap, s->nstaged + c->nevents, sizeof(evs__staged)) < 0)
        return evs__err(EVS_ENOMEM, "out of memory staging a group");
    if (evs__ov_reserve(&s->ov, c->nevents + c->nparts + 1) < 0)
        return evs__err(EVS_ENOMEM, "out of memory staging a group");

    if (tid == 0) {
        tid = s->next_tenant_id++;
        evs__ov_entry *e = evs__ov_add(&s->ov, OV_TENANT, 0, c->tenant, c->tenant_len);
        assert(e); /* evs__ov_reserve made room: adding cannot fail */
        e->a = tid; /* not e->tid: that is part of the entry's key */
        e->is_new = 1;
        e->dirty = 1;
    }

    uint64_t pos = s->next_position, commit_first = pos;
    uint32_t base = s->woff + (uint32_t)s->gbuf_len;
    size_t k = 0;
    for (size_t p = 0; p < c->nparts; p++) {
        const evs_stream_append *pa = &c->parts[p];
        int streamless = c->stream_lens[p] == 0;
        uint64_t sid = w_parts[p].sid || streamless ? w_parts[p].sid : s->next_stream_id++;
        int64_t v = w_parts[p].version;
        evs_append_result *res = &c->results[p];
        res->status = 0;
        res->first_version = streamless ? EVS_NO_STREAM
                             : c->tombstone && c->tombstone[p] ? EVS__TOMBSTONE_VERSION
                                                               : v + 1;
        res->first_position = pos;
        for (size_t i = 0; i < pa->nevents; i++, k++, pos++) {
            uint8_t *rec = r->enc + r->rec_off[k];
            uint32_t len = evs__get_le32(rec + EVS_REC_OFF_LEN);
            uint16_t flags = evs__get_le16(rec + EVS_REC_OFF_FLAGS);
            if (flags & EVS_REC_FLAG_STAMP_TIME)
                evs__put_le64(rec + EVS_REC_OFF_RECORDED_AT, (uint64_t)stamp);
            flags = (k + 1 == c->nevents) ? EVS_REC_FLAG_COMMIT_END : 0;
            if (c->tombstone && c->tombstone[p])
                v = EVS__TOMBSTONE_VERSION; /* its one event: evs_stream_tombstone */
            else if (!streamless)
                v++;
            evs__put_le16(rec + EVS_REC_OFF_FLAGS, flags);
            evs__put_le64(rec + EVS_REC_OFF_POSITION, pos);
            evs__put_le64(rec + EVS_REC_OFF_VERSION, (uint64_t)v);
            evs__put_le64(rec + EVS_REC_OFF_COMMIT_FIRST, commit_first);
            evs__put_le64(rec + EVS_REC_OFF_GROUP_FIRST, s->gbuf_first);
            evs__put_le32(rec + EVS_REC_OFF_CRC, evs__crc32c(rec + 8, len - 8));
            uint64_t loc = evs__loc(s->wseg, base + r->rec_off[k]);
            evs__staged *st = &s->staged[s->nstaged++];
            st->tid = tid;
            st->sid = sid;
            st->version = v;
            st->position = pos;
            st->loc = loc;
            st->rec = rec;
            evs__ov_entry *e = evs__ov_add(&s->ov, OV_ID, 0, rec + EVS_REC_OFF_ID, 16);
            assert(e); /* as for the tenant above */
            e->a = pos;
            e->b = (int64_t)loc;
        }
        res->stream_version = v;
        res->last_position = pos - 1;
        if (streamless)
            continue;
        evs__ov_entry *e = evs__ov_find(&s->ov, OV_STREAM, tid, pa->stream, c->stream_lens[p]);
        if (!e)
            e = evs__ov_add(&s->ov, OV_STREAM, tid, pa->stream, c->stream_lens[p]);
        assert(e); /* as for the tenant above */
        e->a = sid;
        e->b = v;
        e->dirty = 1;
    }
    memcpy(s->gbuf + s->gbuf_len, r->enc, r->enc_len);
    s->gbuf_len += r->enc_len;
    s->next_position = pos;
    return 0;
}

/* ---- phase B: the group's index entries --------------------------------- */

/*
 * Put the index entries of the staged events not indexed yet (from
 * s->nindexed), and of the tenants and stream heads changed since the
 * last call. Runs once per group in phase B, and also in phase A before a
 * request with DCB conditions is checked (check_conditions).
 */
static EVS_MUST_USE int index_pending(evs__emb *s, MDB_txn *txn)
{
    int rc;
    evs__overlay *ov = &s->ov;
    for (size_t i = 0; i < ov->ntenants; i++) {
        evs__ov_entry *e = ov->tenants[i];
        if (!e->dirty)
            continue;
        if ((rc = evs__idx_tenant_insert(txn, s, e->key, e->key_len, (uint32_t)e->a)) < 0)
            return rc;
        e->dirty = 0;
    }
    for (size_t i = s->nindexed; i < s->nstaged; i++) {
        evs__staged *st = &s->staged[i];
        if ((rc = evs__idx_event_put(txn, s, st->tid, st->sid, st->version, st->position,
                                     st->loc, st->rec)) < 0)
            return rc;
    }
    s->nindexed = s->nstaged;
    for (size_t i = 0; i < ov->nstreams; i++) {
        evs__ov_entry *e = ov->streams[i];
        if (!e->dirty)
            continue;
        if ((rc = evs__idx_stream_put(txn, s, e->tid, e->key, e->key_len, e->a, e->b)) < 0)
            return rc;
        e->dirty = 0;
    }
    return 0;
}

/* ---- the syncer: pwrite + fdatasync while the writer indexes ------------ */

static void *syncer_main(void *arg)
{
    evs__emb *s = arg;
    pthread_mutex_lock(&s->sync_lock);
    for (;;) {
        while (!s->sync_job && !s->sync_stop)
            pthread_cond_wait(&s->sync_cond, &s->sync_lock);
        if (!s->sync_job)
            break;
        pthread_mutex_unlock(&s->sync_lock);
        int rc = flush_group(s);
        pthread_mutex_lock(&s->sync_lock);
        s->sync_rc = rc;
        if (rc < 0)
            snprintf(s->sync_msg, sizeof(s->sync_msg), "%s", evs_last_error());
        s->sync_job = 0;
        pthread_cond_broadcast(&s->sync_cond);
    }
    pthread_mutex_unlock(&s->sync_lock);
    return NULL;
}

/* Groups smaller than this are synced inline: handing them to the syncer
 * costs two thread switches, more than their index work. */
#define EVS_PIPELINE_MIN_EVENTS 8

/* ---- one group ---------------------------------------------------------- */

static void fail_store(evs__emb *s, const char *why)
{
    pthread_mutex_lock(&s->qlock);
    s->failed = 1;
    snprintf(s->failed_msg, sizeof(s->failed_msg),
             "the store stopped accepting appends after an error (%s); close "
             "and reopen it to recover from the log", why);
    pthread_mutex_unlock(&s->qlock);
}

/*
 * The index's map was full (MDB_MAP_FULL: the group grew the index more
 * than evs__idx_reserve made room for): grow the map and put the index
 * entries of every request staged so far again into a new txn (*txn), in
 * phase B, at the commit, or in phase A before a DCB condition is checked
 * (check_conditions). Nothing else of the group is in the txn, and the
 * staged records, their stamp and the overlay stay as they are: the group
 * goes on, whether or not some of it reached the log. rc: the failure;
 * returned as it is when it was not a full map.
 */
static EVS_MUST_USE int index_again(evs__emb *s, MDB_txn **txn, int64_t ms0, int rc,
                                    int *grown)
{
    while (rc < 0 && evs__idx_map_full_take() && (*grown)++ < 16) {
        if (*txn)
            mdb_txn_abort(*txn);
        *txn = NULL;
        if ((rc = evs__idx_map_grow(s, s->idx_mapsize + 1)) < 0)
            return rc;
        int mrc = mdb_txn_begin(s->env, NULL, 0, txn);
        if (mrc != 0) {
            *txn = NULL;
            return evs__mdb_err(mrc, "begin write");
        }
        for (size_t i = 0; i < s->ov.ntenants; i++)
            s->ov.tenants[i]->dirty = 1;
        for (size_t i = 0; i < s->ov.nstreams; i++)
            s->ov.streams[i]->dirty = 1;
        s->nindexed = 0;
        s->time_max_us = ms0;
        rc = index_pending(s, *txn);
    }
    return rc;
}

static void commit_group(evs__emb *s, evs__emb_req *reqs, evs__emb_req *me)
{
    MDB_txn *txn = NULL;
    int rc = 0, mrc, flushed = 0, any = 0;
    char why[512] = "";
    uint64_t pos0 = s->next_position, sid0 = s->next_stream_id;
    uint32_t tid0 = s->next_tenant_id;
    int64_t ms0 = s->time_max_us;
    int grown = 0; /* times the map grew for this group (MDB_MAP_FULL) */

    /* A remap that failed half-way left LMDB without a map (index.c,
     * remap): nothing may touch s->env again, and only a reopen helps */
    if (s->idx_gate.broken && !s->failed)
        fail_store(s, "growing the index's map failed and left no map");
    if (s->failed) {
        for (evs__emb_req *r = reqs; r; r = r->next)
            req_fail(r, EVS_ECLOSED, "%s", s->failed_msg);
        goto wake;
    }
    /* everything numbered is committed and published: a group that failed
     * before its log write gave its positions back */
    assert(atomic_load_explicit(&s->head, memory_order_relaxed) + 1 == s->next_position);
    /*
     * Index space first: a full disk fails the group before its log write,
     * and the store stays usable. The group is cut where its worst-case
     * index growth goes past the reserved runway (a large group on a
     * nearly full disk): the rest waits for the next group, and a first
     * request that alone cannot be reserved fails with EVS_ENOSPC.
     */
    uint64_t need = reqs->idx_worst;
    evs__emb_req *last = reqs;
    if ((rc = evs__idx_reserve(s, need)) < 0)
        goto fail;
    while (last->next) {
        uint64_t more = need + last->next->idx_worst;
        /* past the runway: ask the filesystem (rare: a large group) */
        if (more > s->idx_have && (rc = evs__idx_reserve(s, more)) < 0) {
            if (s->idx_gate.broken) /* its map growth failed half-way */
                goto fail;
            rc = 0;
            evs__clear_error();
            break;
        }
        last = last->next;
        need = more;
    }
    if (last->next) {
        evs__emb_req *rest = last->next, *tail = rest;
        last->next = NULL;
        while (tail->next)
            tail = tail->next;
        pthread_mutex_lock(&s->qlock);
        tail->next = s->qhead;
        s->qhead = rest;
        if (!s->qtail)
            s->qtail = tail;
        pthread_mutex_unlock(&s->qlock);
    }
    (void)evs__idx_map_full_take();
    if ((mrc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0) {
        rc = evs__mdb_err(mrc, "begin write");
        goto fail;
    }
    int64_t stamp = evs__now_us();
    if (stamp < s->last_stamp)
        stamp = s->last_stamp;
    s->last_stamp = stamp;
    s->gbuf_len = 0;
    s->gbuf_first = s->next_position;
    s->nstaged = s->nindexed = 0;
    evs__ov_reset(&s->ov);

    uint64_t t0 = evs__mono_ns(), nreq = 0;
    for (evs__emb_req *r = reqs; r; r = r->next, nreq++) {
        /* a full map is handled inside (check_conditions): the group goes
         * on in a new txn, its stamp and staged records unchanged */
        if ((rc = stage_req(s, &txn, r, stamp, ms0, &grown, &flushed)) < 0)
            goto fail;
        if (r->rc == 0 && !r->retry)
            any = 1;
    }
    uint64_t t1 = evs__mono_ns();
    if (s->nstaged >= EVS_PIPELINE_MIN_EVENTS && s->gbuf_len > 0) {
        /* log write and sync on the syncer, index entries here meanwhile */
        pthread_mutex_lock(&s->sync_lock);
        s->sync_job = 1;
        pthread_cond_broadcast(&s->sync_cond);
        pthread_mutex_unlock(&s->sync_lock);
        int irc = index_pending(s, txn);
        if (irc < 0)
            irc = index_again(s, &txn, ms0, irc, &grown);
        char imsg[512];
        if (irc < 0)
            snprintf(imsg, sizeof(imsg), "%s", evs_last_error());
        pthread_mutex_lock(&s->sync_lock);
        while (s->sync_job)
            pthread_cond_wait(&s->sync_cond, &s->sync_lock);
        rc = s->sync_rc;
        pthread_mutex_unlock(&s->sync_lock);
        if (rc < 0) {
            evs__set_error_text(s->sync_msg);
            flushed = 1; /* some bytes may have reached the log */
            goto fail;
        }
        if (irc < 0) {
            evs__set_error_text(imsg);
            rc = irc;
            flushed = 1;
            goto fail;
        }
    } else {
        if (s->gbuf_len > 0 && (rc = flush_group(s)) < 0) {
            flushed = 1;
            goto fail;
        }
        if ((rc = index_pending(s, txn)) < 0 &&
            (rc = index_again(s, &txn, ms0, rc, &grown)) < 0) {
            flushed = 1;
            goto fail;
        }
    }
    uint64_t t2 = evs__mono_ns();
    s->ns_stage += t1 - t0;
    s->ns_sync += t2 - t1;
    if (any) {
        /* the index never gets ahead of the durable log: every staged
         * record is written and fdatasynced (recovery takes the index's
         * end as acknowledged), and all of them are in the txn */
        assert(s->gbuf_len == 0 && s->nstaged > 0 && s->nindexed == s->nstaged);
#ifndef NDEBUG
        /* the index's end is the last staged record, which ends where the
         * next write starts */
        const evs__staged *end = &s->staged[s->nstaged - 1];
        uint32_t end_len = evs__get_le32(end->rec + EVS_REC_OFF_LEN);
        assert(end->position == s->next_position - 1 &&
               end->loc + evs__pad8(end_len) == evs__loc(s->wseg, s->woff));
#endif
        for (;;) {
            if ((rc = evs__idx_applied_put(txn, s, s->next_position - 1,
                                           evs__loc(s->wseg, s->woff))) == 0 &&
                (rc = evs__idx_seq_put(txn, s)) == 0) {
                mrc = mdb_txn_commit(txn);
                txn = NULL;
                rc = mrc ? evs__env_err(s->env, mrc, "commit") : 0;
            }
            if (rc == 0)
                break;
            if ((rc = index_again(s, &txn, ms0, rc, &grown)) < 0) {
                flushed = 1;
                goto fail;
            }
        }
        s->groups++;
        s->grouped_events += s->next_position - pos0;
        evs__metrics_group(&s->base, nreq); /* every request it decided */
        if (s->woff > s->seg_size / 2)
            evs__prealloc_request(s, s->wseg + 1);
        s->ns_commit += evs__mono_ns() - t2;
        /* the committed position only grows: this group wrote events */
        assert(s->next_position - 1 > atomic_load_explicit(&s->head, memory_order_relaxed));
        atomic_store_explicit(&s->head, s->next_position - 1, memory_order_seq_cst);
        evs__notify_kick(s); /* wake blocked tracking reads */
    } else {
        mdb_txn_abort(txn);
        txn = NULL;
    }
    goto wake;

fail:
    /* an error: the requests still at rc 0 are failed with it below */
    assert(rc < 0);
    snprintf(why, sizeof(why), "%s", evs_last_error());
    if (txn)
        mdb_txn_abort(txn);
    s->next_position = pos0;
    s->next_stream_id = sid0;
    s->next_tenant_id = tid0;
    s->time_max_us = ms0;
    s->gbuf_len = 0;
    /* Nothing reached the log: the store stays usable. Otherwise the log
     * may hold events the index does not: only a reopen can reconcile.
     * Nor can a store whose index map is gone go on (a remap failed). */
    if (flushed || s->idx_gate.broken)
        fail_store(s, why);
    for (evs__emb_req *r = reqs; r; r = r->next)
        if (r->rc == 0)
            req_fail(r, rc, "%s%s", why,
                     flushed ? " (the outcome of this append is unknown: reopen "
                               "the store and retry with the same event ids)" : "");
wake:;
    /*
     * Waking hundreds of callers one futex call at a time costs ~4 µs each,
     * during which nothing is committed. Instead the callers wake each
     * other in a binary tree: the leader wakes the first, and every woken
     * caller wakes its two children before returning, so the work runs on
     * all cores in parallel. The leader itself (me) needs no wake-up.
     */
    uint64_t tw = evs__mono_ns();
    size_t n = 0;
    for (evs__emb_req *r = reqs; r; r = r->next) {
        if (r == me)
            continue;
        if (evs__grow(&s->wake, &s->wake_cap, n + 1, sizeof(*s->wake)) < 0) {
            /* no memory for the tree: wake everyone directly */
            for (evs__emb_req *q = reqs, *next; q; q = next) {
                next = q->next;
                if (q == me)
                    continue;
                q->kids[0] = q->kids[1] = NULL;
                sem_post(&q->done);
            }
            return;
        }
        s->wake[n++] = r;
    }
    for (size_t i = 0; i < n; i++) {
        s->wake[i]->kids[0] = 2 * i + 1 < n ? s->wake[2 * i + 1] : NULL;
        s->wake[i]->kids[1] = 2 * i + 2 < n ? s->wake[2 * i + 2] : NULL;
    }
    if (n)
        sem_post(&s->wake[0]->done);
    s->ns_wake += evs__mono_ns() - tw;
}

/*
 * Who commits. A caller that finds the queue empty and no commit running
 * commits its own append inline ("leader"): a lone appender pays no
 * thread switch. Everyone else queues and sleeps, and the writer thread
 * commits groups back to back while the queue is non-empty — handing the
 * role from caller to caller instead costs a thread switch per group
 * (docs/DESIGN.md).
 */
static void *writer_main(void *arg)
{
    evs__emb *s = arg;
    pthread_mutex_lock(&s->qlock);
    for (;;) {
        /* scav_want: a scavenge's index transaction goes first (scavenge.c) */
        while (s->busy || s->scav_want || (!s->qhead && !s->stopping)) {
            s->writer_idle = 1;
            pthread_cond_wait(&s->qcond, &s->qlock);
        }
        s->writer_idle = 0;
        if (!s->qhead && s->stopping)
            break;
        evs__emb_req *batch = s->qhead;
        s->qhead = s->qtail = NULL;
        s->busy = 1;
        pthread_mutex_unlock(&s->qlock);
        commit_group(s, batch, NULL);
        pthread_mutex_lock(&s->qlock);
        s->busy = 0;
    }
    pthread_mutex_unlock(&s->qlock);
    return NULL;
}


static void syncer_stop(evs__emb *s);

int evs__writer_start(evs__emb *s)
{
    if (pthread_create(&s->syncer, NULL, syncer_main, s) != 0)
        return evs__err(EVS_ENOMEM, "cannot start the syncer thread");
    s->syncer_started = 1;
    if (pthread_create(&s->writer, NULL, writer_main, s) != 0)
        return evs__err(EVS_ENOMEM, "cannot start the writer thread");
    s->writer_started = 1;
    return 0;
}

void evs__writer_stop(evs__emb *s)
{
    if (s->writer_started) {
        pthread_mutex_lock(&s->qlock);
        s->stopping = 1;
        pthread_cond_signal(&s->qcond);
        pthread_mutex_unlock(&s->qlock);
        pthread_join(s->writer, NULL);
        s->writer_started = 0;
    }
    syncer_stop(s);
}

static void syncer_stop(evs__emb *s)
{
    if (!s->syncer_started)
        return;
    pthread_mutex_lock(&s->sync_lock);
    s->sync_stop = 1;
    pthread_cond_broadcast(&s->sync_cond);
    pthread_mutex_unlock(&s->sync_lock);
    pthread_join(s->syncer, NULL);
    s->syncer_started = 0;
}

/* ---- the caller's side -------------------------------------------------- */

/*
 * Test hook: EVS_DEBUG_GROUP_WAIT=n (2..1024) makes a caller that is about
 * to commit inline wait, up to 10 s, until n appends are queued (itself
 * included), so that a test forms one group of appends in the order they
 * were queued (tests/test_index_size.c). While it waits it is the
 * committer (s->busy): the others queue behind it. Read at open
 * (index.c, into s->debug_group_wait): no getenv on the append path.
 */
static void group_wait(evs__emb *s)
{
    unsigned long n = s->debug_group_wait;
    if (n < 2 || n > 1024)
        return;
    for (int ms = 0; ms < 10000; ms++) {
        unsigned long q = 0;
        pthread_mutex_lock(&s->qlock);
        for (evs__emb_req *r = s->qhead; r; r = r->next)
            q++;
        pthread_mutex_unlock(&s->qlock);
        if (q >= n)
            return;
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
}

static _Thread_local evs__scratch tls_enc;  /* encoded records */
static _Thread_local evs__scratch tls_offs; /* offset of each record */

int evs__emb_append(evs_db *db, evs__append_req *c)
{
    evs__emb *s = (evs__emb *)db;
    size_t total = 0, k = 0;
    int rc;

    /* offs[k]: offset of record k in enc; lens[k]: its encoded size */
    uint32_t *offs = evs__scratch_get(&tls_offs, 2 * c->nevents * sizeof(uint32_t));
    if (!offs)
        return evs__err(EVS_ENOMEM, "out of memory encoding an append");
    uint32_t *lens = offs + c->nevents;
    uint64_t limit = s->seg_size - EVS_SEG_HEADER_SIZE;
    for (size_t p = 0; p < c->nparts; p++)
        for (size_t i = 0; i < c->parts[p].nevents; i++, k++) {
            size_t n = evs__rec_size(c->tenant_len, c->stream_lens[p],
                                     &c->parts[p].events[i]);
            lens[k] = (uint32_t)(n < limit ? n : limit);
            offs[k] = (uint32_t)(total < limit ? total : limit);
            total += evs__pad8(lens[k]);
            if (total > limit)
                return evs__err(EVS_ETOOBIG,
                                "append of %zu events is over %" PRIu64 " bytes encoded, "
                                "more than fits in one log segment; split it or "
                                "create the store with a larger segment_size "
                                "(evs --segment-size, EVS_SEGMENT_SIZE)",
                                c->nevents, limit);
        }
    uint8_t *enc = evs__scratch_get(&tls_enc, total);
    if (!enc)
        return evs__err(EVS_ENOMEM, "out of memory encoding an append");
    k = 0;
    for (size_t p = 0; p < c->nparts; p++)
        for (size_t i = 0; i < c->parts[p].nevents; i++, k++) {
            evs__rec_encode(enc + offs[k], lens[k], c->tenant,
                            c->tenant_len, c->parts[p].stream, c->stream_lens[p],
                            &c->parts[p].events[i], &c->ids[k]);
        }

    evs__emb_req r;
    uint64_t ntags = 0;
    for (size_t p = 0; p < c->nparts; p++)
        for (size_t i = 0; i < c->parts[p].nevents; i++)
            ntags += c->parts[p].events[i].ntags;
    r.idx_worst = evs__idx_worst(c->nevents, ntags);
    r.core = c;
    r.enc = enc;
    r.enc_len = total;
    r.rec_off = offs;
    r.rc = 0;
    r.msg[0] = '\0';
    r.next = NULL;
    r.kids[0] = r.kids[1] = NULL;
    if (sem_init(&r.done, 0, 0) != 0)
        return evs__err(EVS_ENOMEM, "sem_init failed");

    pthread_mutex_lock(&s->qlock);
    if (s->failed) {
        rc = evs__err(EVS_ECLOSED, "%s", s->failed_msg);
        pthread_mutex_unlock(&s->qlock);
        sem_destroy(&r.done);
        return rc;
    }
    if (s->qtail)
        s->qtail->next = &r;
    else
        s->qhead = &r;
    s->qtail = &r;
    int inline_commit = !s->busy && !s->scav_want && s->qhead == &r;
    if (inline_commit)
        s->busy = 1;
    else if (s->writer_idle)
        pthread_cond_signal(&s->qcond);
    pthread_mutex_unlock(&s->qlock);

    if (inline_commit) {
        group_wait(s);
        pthread_mutex_lock(&s->qlock);
        evs__emb_req *batch = s->qhead; /* me, and whoever queued since */
        s->qhead = s->qtail = NULL;
        pthread_mutex_unlock(&s->qlock);
        commit_group(s, batch, &r);
        pthread_mutex_lock(&s->qlock);
        s->busy = 0;
        if (s->qhead && s->writer_idle)
            pthread_cond_signal(&s->qcond);
        pthread_mutex_unlock(&s->qlock);
    } else {
        while (sem_wait(&r.done) != 0 && errno == EINTR)
            ;
    }
    /* pass the wake-up on (see commit_group); r.kids are still asleep */
    if (r.kids[0])
        sem_post(&r.kids[0]->done);
    if (r.kids[1])
        sem_post(&r.kids[1]->done);
    sem_destroy(&r.done);
    if (r.rc < 0) {
        evs__set_error_text(r.msg);
        return r.rc;
    }
    evs__clear_error();
    return 0;
}
