/*
 * snapshot.c -- aggregate snapshots, in their own LMDB environment
 * <dir>/snapshots (key and value: format.h, the `snapshots` table).
 *
 * Snapshots are not events: they are derived from a stream's events by
 * the application, so they have no log record. They are not derived from
 * the log either, so they cannot live in the index, which is deleted and
 * rebuilt from the log whenever it cannot be trusted (state.c). Their own
 * environment commits durably (an fdatasync of its data file per save;
 * MDB_NOMETASYNC: a crash may lose the newest save, never the
 * environment's integrity), so it survives an OS crash and power loss. A
 * copy made file by file may catch a save half-way, so a copy (other
 * inode than the state file names) starts without snapshots.
 */
#include "embedded/embedded.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Move the snapshots an index of an earlier version kept into the
 * snapshots environment (once: they are deleted from the index). */
static EVS_MUST_USE int migrate(evs__emb *s)
{
    MDB_txn *itxn = NULL, *stxn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int mrc, rc = 0;
    if ((mrc = mdb_txn_begin(s->env, NULL, 0, &itxn)) != 0)
        return evs__mdb_err(mrc, "begin snapshot migration");
    if ((mrc = mdb_txn_begin(s->snap_env, NULL, 0, &stxn)) != 0) {
        rc = evs__mdb_err(mrc, "begin snapshot migration");
        goto out;
    }
    if ((mrc = mdb_cursor_open(itxn, s->db_snapshots, &cur)) != 0) {
        rc = evs__mdb_err(mrc, "snapshot migration cursor");
        goto out;
    }
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        if ((mrc = mdb_put(stxn, s->snap_dbi, &k, &v, 0)) != 0)
            break;
    mdb_cursor_close(cur);
    cur = NULL;
    if (mrc != MDB_NOTFOUND) {
        rc = evs__mdb_err(mrc, "snapshot migration");
        goto out;
    }
    mrc = mdb_txn_commit(stxn);
    stxn = NULL;
    if (mrc != 0) {
        rc = evs__mdb_err(mrc, "snapshot migration commit");
        goto out;
    }
    if ((mrc = mdb_drop(itxn, s->db_snapshots, 0)) != 0) {
        rc = evs__mdb_err(mrc, "snapshot migration: empty the index's copy");
        goto out;
    }
    mrc = mdb_txn_commit(itxn);
    itxn = NULL;
    if (mrc != 0)
        rc = evs__mdb_err(mrc, "snapshot migration commit");
out:
    if (stxn)
        mdb_txn_abort(stxn);
    if (itxn)
        mdb_txn_abort(itxn);
    return rc;
}

int evs__snap_open(evs__emb *s, int readonly)
{
    char path[4096];
    struct stat st;
    int mrc;
    MDB_txn *txn;
    snprintf(path, sizeof(path), "%s/snapshots", s->dir);
    if (readonly && (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)))
        return 0; /* none saved yet: loads find nothing */
    unsigned flags = MDB_NOMETASYNC | MDB_NOTLS | MDB_NORDAHEAD | (readonly ? MDB_RDONLY : 0);
    if (readonly) {
        /* as the index (evs__reader_nolock) */
        int nolock, rc;
        if ((rc = evs__reader_nolock(s, "snapshots", &nolock)) < 0)
            return rc;
        flags |= nolock ? MDB_NOLOCK : 0;
    }
    int restarted = 0;
    for (unsigned gib = 16;; gib /= 4) {
        if ((mrc = mdb_env_create(&s->snap_env)) != 0)
            return evs__mdb_err(mrc, "snapshots: create environment");
        mdb_env_set_maxreaders(s->snap_env, 1024);
        mdb_env_set_mapsize(s->snap_env, (size_t)gib << 30);
        if ((mrc = mdb_env_open(s->snap_env, path, flags, 0644)) == 0)
            break;
        mdb_env_close(s->snap_env);
        s->snap_env = NULL;
        if (readonly && mrc == ENOENT)
            return 0;
        if ((mrc == MDB_INVALID || mrc == MDB_CORRUPTED || mrc == MDB_VERSION_MISMATCH) &&
            !restarted++) {
            /* Snapshots are a cache: a file LMDB cannot read (e.g. its
             * first meta pages torn by a power loss before any save) is
             * started anew rather than refusing the store. */
            if (readonly)
                return 0;
            int rc = evs__env_prepare(s->dir, "snapshots", 1);
            if (rc < 0)
                return rc;
            evs__emb_notice(s, "started the snapshots of %s anew: %s/data.mdb could not "
                            "be read (%s)", s->dir, path, mdb_strerror(mrc));
            continue;
        }
        if ((mrc != EINVAL && mrc != ENOMEM) || gib == 1)
            return evs__mdb_err(mrc, "snapshots: open");
    }
    /* A new environment's meta pages are written unsynced by its first
     * open: make them durable before they are relied on. */
    if (!readonly && (mrc = mdb_env_sync(s->snap_env, 1)) != 0)
        return evs__env_err(s->snap_env, mrc, "snapshots: sync");
    if ((mrc = mdb_txn_begin(s->snap_env, NULL, readonly ? MDB_RDONLY : 0, &txn)) != 0)
        return evs__mdb_err(mrc, "snapshots: begin");
    if ((mrc = mdb_dbi_open(txn, NULL, 0, &s->snap_dbi)) != 0) {
        mdb_txn_abort(txn);
        return evs__mdb_err(mrc, "snapshots: open database");
    }
    if ((mrc = mdb_txn_commit(txn)) != 0)
        return evs__mdb_err(mrc, "snapshots: commit");
    if (!readonly) {
        MDB_stat ist;
        int rc;
        if ((mrc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0)
            return evs__mdb_err(mrc, "begin");
        mrc = mdb_stat(txn, s->db_snapshots, &ist);
        mdb_txn_abort(txn);
        if (mrc == 0 && ist.ms_entries > 0 && (rc = migrate(s)) < 0)
            return rc;
    }
    return 0;
}

void evs__snap_close(evs__emb *s)
{
    if (s->snap_env)
        mdb_env_close(s->snap_env);
    s->snap_env = NULL;
}

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
                           size_t len, int64_t saved_at)
{
    evs__emb *s = (evs__emb *)db;
    MDB_txn *txn;
    MDB_cursor *cur = NULL;
    uint8_t kb[EVS_MAX_TENANT_LEN + EVS_MAX_STREAM_LEN + 16];
    uint32_t tid;
    uint64_t sid = 0;
    int64_t head = EVS_NO_STREAM;
    size_t schl = strlen(schema);
    MDB_txn *itxn;
    int mrc, rc = evs__rtxn_begin(s, &itxn);
    if (rc < 0)
        return rc;
    rc = evs__idx_tenant_get(itxn, s, tenant, strlen(tenant), &tid);
    if (rc == 0)
        rc = evs__idx_stream_get(itxn, s, tid, stream, strlen(stream), &sid, &head);
    evs__rtxn_end(s, itxn);
    if (rc == EVS_ENOTFOUND || (rc == 0 && sid == 0))
        return evs__err(EVS_EINVAL, "snapshot_save: stream %s does not exist; a snapshot "
                        "is of a stream's events", stream);
    if (rc < 0)
        return rc;
    if (version > head)
        return evs__err(EVS_EINVAL, "snapshot_save: version %lld is beyond stream %s, "
                        "which is at version %lld", (long long)version, stream,
                        (long long)head);
    if ((mrc = mdb_txn_begin(s->snap_env, NULL, 0, &txn)) != 0)
        return evs__mdb_err(mrc, "begin snapshot write");
    size_t plen = snap_key(kb, tenant, stream, version);
    MDB_val k = {plen + 8, kb}, v = {8 + 2 + schl + 1 + len + 1, NULL};
    if ((mrc = mdb_put(txn, s->snap_dbi, &k, &v, MDB_RESERVE)) != 0) {
        rc = evs__mdb_err(mrc, "snapshot insert");
        goto out;
    }
    uint8_t *p = v.mv_data;
    evs__put_le64(p, (uint64_t)(saved_at ? saved_at : evs__now_us()));
    evs__put_le16(p + 8, (uint16_t)schl);
    memcpy(p + 10, schema, schl + 1);
    if (len)
        memcpy(p + 11 + schl, data, len);
    p[11 + schl + len] = 0;

    /* keep the newest snapshot_keep: the oldest come first */
    size_t n = 0;
    uint32_t keep = s->base.opts.snapshot_keep ? s->base.opts.snapshot_keep
                                               : EVS_DEFAULT_SNAPSHOT_KEEP;
    if ((mrc = mdb_cursor_open(txn, s->snap_dbi, &cur)) != 0) {
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
        return evs__env_err(s->snap_env, mrc, "snapshot commit");
    return 0;
out:
    if (cur)
        mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return rc;
}

/* A stored snapshot (key k, its tenant and stream taking plen bytes; value
 * v) as fields pointing into v. 0, or EVS_ECORRUPT naming the stream. */
static int snap_decode(evs_snapshot *out, const MDB_val *k, const MDB_val *v, size_t plen,
                       const char *stream)
{
    const uint8_t *p = v->mv_data;
    size_t schl = v->mv_size >= 10 ? evs__get_le16(p + 8) : 0;
    if (v->mv_size < 12 + schl || k->mv_size != plen + 8 || p[10 + schl] != 0 ||
        p[v->mv_size - 1] != 0)
        return evs__err(EVS_ECORRUPT, "snapshots: a snapshot of stream %s is malformed",
                        stream);
    out->version = (int64_t)evs__get_be64((const uint8_t *)k->mv_data + plen);
    out->saved_at = (int64_t)evs__get_le64(p);
    out->schema = (const char *)p + 10;
    out->data = p + 11 + schl;
    out->data_len = v->mv_size - 12 - schl;
    return 0;
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
    if (!s->snap_env)
        return evs__err(EVS_ENOTFOUND, "stream %s has no snapshot", stream);
    int mrc = mdb_txn_begin(s->snap_env, NULL, MDB_RDONLY, &txn);
    if (mrc != 0)
        return evs__mdb_err(mrc, "begin read");
    if ((mrc = mdb_cursor_open(txn, s->snap_dbi, &cur)) != 0) {
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
    evs_snapshot view;
    if ((rc = snap_decode(&view, &k, &v, plen, stream)) < 0)
        goto out;
    evs_snapshot *snap = malloc(sizeof(*snap) + v.mv_size);
    if (!snap) {
        rc = evs__err(EVS_ENOMEM, "out of memory loading a snapshot of %zu bytes",
                      view.data_len);
        goto out;
    }
    /* the same fields, pointing into a copy of the value */
    uint8_t *copy = (uint8_t *)(snap + 1);
    memcpy(copy, v.mv_data, v.mv_size);
    *snap = view;
    snap->schema = (const char *)copy + ((const uint8_t *)view.schema - (const uint8_t *)v.mv_data);
    snap->data = copy + ((const uint8_t *)view.data - (const uint8_t *)v.mv_data);
    *out = snap;
out:
    if (cur)
        mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return rc;
}

/* The walk re-opens its read transaction every SNAP_LIST_PAGE snapshots
 * (after the last key seen), so that a long export does not keep LMDB from
 * reusing the pages that saves free meanwhile. */
#define SNAP_LIST_PAGE 256

int evs__emb_snapshot_list(evs_db *db, const char *tenant, evs_snapshot_fn fn, void *ctx)
{
    evs__emb *s = (evs__emb *)db;
    uint8_t last[EVS_MAX_TENANT_LEN + EVS_MAX_STREAM_LEN + 16];
    size_t last_len = 0, tl = tenant ? strlen(tenant) + 1 : 0; /* with its NUL */
    int rc = 0, more = 1;
    if (!s->snap_env)
        return 0;
    if (tenant)
        memcpy(last, tenant, tl);
    while (more && rc == 0) {
        MDB_txn *txn;
        MDB_cursor *cur;
        int mrc = mdb_txn_begin(s->snap_env, NULL, MDB_RDONLY, &txn);
        if (mrc != 0)
            return evs__mdb_err(mrc, "snapshots: begin read");
        if ((mrc = mdb_cursor_open(txn, s->snap_dbi, &cur)) != 0) {
            mdb_txn_abort(txn);
            return evs__mdb_err(mrc, "snapshots: open cursor");
        }
        MDB_val k = {last_len ? last_len : tl, last}, v;
        mrc = k.mv_size ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE)
                        : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        /* a page starts at the last key seen: skip it */
        if (mrc == 0 && last_len && k.mv_size == last_len && !memcmp(k.mv_data, last, last_len))
            mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        more = 0;
        for (int n = 0; mrc == 0 && rc == 0; n++) {
            const char *kt = k.mv_data;
            size_t ktl = strnlen(kt, k.mv_size);
            if (tenant && (ktl + 1 != tl || memcmp(kt, tenant, tl) != 0))
                break; /* past the tenant's keys */
            if (n == SNAP_LIST_PAGE) {
                more = 1;
                break;
            }
            const char *ks = kt + ktl + 1;
            size_t kl = ktl + 1 < k.mv_size ? strnlen(ks, k.mv_size - ktl - 1) : k.mv_size;
            evs_snapshot snap;
            if (ktl + 1 + kl + 1 + 8 != k.mv_size || k.mv_size > sizeof(last)) {
                rc = evs__err(EVS_ECORRUPT, "snapshots: a key of %zu bytes is malformed",
                              k.mv_size);
                break;
            }
            if ((rc = snap_decode(&snap, &k, &v, ktl + kl + 2, ks)) < 0)
                break;
            memcpy(last, k.mv_data, k.mv_size);
            last_len = k.mv_size;
            rc = fn(ctx, kt, ks, &snap);
            if (rc == 0)
                mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }
        if (rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND)
            rc = evs__mdb_err(mrc, "snapshots: walk");
        mdb_cursor_close(cur);
        mdb_txn_abort(txn);
    }
    return rc;
}
