/*
 * snapshot.c -- aggregate snapshots, a cache in the index (layout: the
 * `snapshots` sub-database in format.h).
 *
 * Snapshots are not events: they are derived from a stream's events by
 * the application, so losing one costs a longer load, never a wrong
 * answer. They therefore live only in LMDB (no log record, no fdatasync)
 * and are saved in their own short write transaction, outside the group
 * commit: LMDB serialises it with the writer's transaction, which it
 * delays by a few microseconds at most.
 */
#include "embedded/embedded.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>

/* tenant NUL stream NUL [u64 BE version]; returns the prefix length */
static size_t snap_key(uint8_t *kb, const char *tenant, const char *stream, int64_t version)
{
    size_t tl = strlen(tenant), sl = strlen(stream);
    memcpy(kb, tenant, tl + 1);
    memcpy(kb + tl + 1, stream, sl + 1);
    evs__put_be64(kb + tl + sl + 2, (uint64_t)version);
    return tl + sl + 2;
}

int evs__emb_snapshot_save(evs_db *db, const char *tenant, const char *stream,
                           int64_t version, const char *schema, const void *data,
                           size_t len)
{
    evs__emb *s = (evs__emb *)db;
    MDB_txn *txn;
    MDB_cursor *cur = NULL;
    uint8_t kb[EVS_MAX_TENANT_LEN + EVS_MAX_STREAM_LEN + 16];
    uint32_t tid;
    uint64_t sid = 0;
    int64_t head = EVS_NO_STREAM;
    size_t schl = strlen(schema);
    int mrc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (mrc != 0)
        return evs__mdb_err(mrc, "begin snapshot write");
    int rc = evs__idx_tenant_get(txn, s, tenant, strlen(tenant), &tid);
    if (rc == 0)
        rc = evs__idx_stream_get(txn, s, tid, stream, strlen(stream), &sid, &head);
    if (rc == EVS_ENOTFOUND || (rc == 0 && sid == 0)) {
        rc = evs__err(EVS_EINVAL, "snapshot_save: stream %s does not exist; a snapshot "
                      "is of a stream's events", stream);
        goto out;
    }
    if (rc < 0)
        goto out;
    if (version > head) {
        rc = evs__err(EVS_EINVAL, "snapshot_save: version %lld is beyond stream %s, "
                      "which is at version %lld", (long long)version, stream,
                      (long long)head);
        goto out;
    }
    size_t plen = snap_key(kb, tenant, stream, version);
    MDB_val k = {plen + 8, kb}, v = {8 + 2 + schl + 1 + len + 1, NULL};
    if ((mrc = mdb_put(txn, s->db_snapshots, &k, &v, MDB_RESERVE)) != 0) {
        rc = evs__mdb_err(mrc, "snapshot insert");
        goto out;
    }
    uint8_t *p = v.mv_data;
    evs__put_le64(p, (uint64_t)evs__now_us());
    evs__put_le16(p + 8, (uint16_t)schl);
    memcpy(p + 10, schema, schl + 1);
    if (len)
        memcpy(p + 11 + schl, data, len);
    p[11 + schl + len] = 0;

    /* keep the newest snapshot_keep: the oldest come first */
    size_t n = 0;
    uint32_t keep = s->base.opts.snapshot_keep ? s->base.opts.snapshot_keep
                                               : EVS_DEFAULT_SNAPSHOT_KEEP;
    if ((mrc = mdb_cursor_open(txn, s->db_snapshots, &cur)) != 0) {
        rc = evs__mdb_err(mrc, "open cursor");
        goto out;
    }
    uint8_t first[sizeof(kb)];
    snap_key(first, tenant, stream, 0);
    k.mv_size = plen + 8;
    k.mv_data = first;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
         mrc == 0 && k.mv_size == plen + 8 && memcmp(k.mv_data, first, plen) == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        n++;
    if (mrc != 0 && mrc != MDB_NOTFOUND) {
        rc = evs__mdb_err(mrc, "snapshot scan");
        goto out;
    }
    k.mv_size = plen + 8;
    k.mv_data = first;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); n > keep && mrc == 0; n--) {
        if ((mrc = mdb_cursor_del(cur, 0)) != 0)
            break;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
    }
    if (mrc != 0 && mrc != MDB_NOTFOUND) {
        rc = evs__mdb_err(mrc, "snapshot prune");
        goto out;
    }
    mdb_cursor_close(cur);
    cur = NULL;
    if ((mrc = mdb_txn_commit(txn)) != 0)
        return evs__mdb_err(mrc, "snapshot commit");
    return 0;
out:
    if (cur)
        mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return rc;
}

int evs__emb_snapshot_load(evs_snapshot **out, evs_db *db, const char *tenant,
                           const char *stream, int64_t max_version)
{
    evs__emb *s = (evs__emb *)db;
    MDB_txn *txn;
    MDB_cursor *cur = NULL;
    uint8_t kb[EVS_MAX_TENANT_LEN + EVS_MAX_STREAM_LEN + 16];
    int rc = 0;
    *out = NULL;
    int mrc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (mrc != 0)
        return evs__mdb_err(mrc, "begin read");
    if ((mrc = mdb_cursor_open(txn, s->db_snapshots, &cur)) != 0) {
        rc = evs__mdb_err(mrc, "open cursor");
        goto out;
    }
    size_t plen = snap_key(kb, tenant, stream, max_version == EVS_END ? INT64_MAX : max_version);
    MDB_val k = {plen + 8, kb}, v;
    /* the largest key <= (prefix, max_version) */
    mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    if (mrc == MDB_NOTFOUND)
        mrc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    else if (mrc == 0 && (k.mv_size != plen + 8 || memcmp(k.mv_data, kb, plen + 8) != 0))
        mrc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
    if (mrc == MDB_NOTFOUND || (mrc == 0 && (k.mv_size != plen + 8 ||
                                             memcmp(k.mv_data, kb, plen) != 0))) {
        rc = evs__err(EVS_ENOTFOUND, "stream %s has no snapshot%s", stream,
                      max_version == EVS_END ? "" : " at or below that version");
        goto out;
    }
    if (mrc != 0) {
        rc = evs__mdb_err(mrc, "snapshot lookup");
        goto out;
    }
    const uint8_t *p = v.mv_data;
    size_t schl = v.mv_size >= 10 ? evs__get_le16(p + 8) : 0;
    if (v.mv_size < 12 + schl) {
        rc = evs__err(EVS_ECORRUPT, "index: a snapshot of stream %s is malformed", stream);
        goto out;
    }
    size_t dlen = v.mv_size - 12 - schl;
    evs_snapshot *snap = malloc(sizeof(*snap) + v.mv_size);
    if (!snap) {
        rc = evs__err(EVS_ENOMEM, "out of memory loading a snapshot of %zu bytes", dlen);
        goto out;
    }
    uint8_t *copy = (uint8_t *)(snap + 1);
    memcpy(copy, p, v.mv_size);
    snap->version = (int64_t)evs__get_be64((const uint8_t *)k.mv_data + plen);
    snap->saved_at = (int64_t)evs__get_le64(copy);
    snap->schema = (const char *)copy + 10;
    snap->data = copy + 11 + schl;
    snap->data_len = dlen;
    *out = snap;
out:
    if (cur)
        mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return rc;
}
