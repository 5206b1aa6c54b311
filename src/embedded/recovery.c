/*
 * recovery.c -- catching the index up with the log on open, truncating a
 * torn tail, and `verify`.
 *
 * What a crash can leave behind. The writer syncs a segment completely
 * before it starts the next one, and acknowledges a group only after its
 * fdatasync, so only the *last group* of the *last segment* can be
 * incomplete. After a process crash its bytes are either all there or
 * missing from some point on; after an OS crash any of its pages may be
 * missing, so valid records can even follow a hole:
 *
 *   ... | rec 41 | rec 42 | ~garbage~ | rec 45 | 000000000000...
 *                 ^ group_first = 42 ...............^ group_first = 42
 *
 * Every record carries group_first, the position of the first record of
 * its write. A damaged record at expected position p is a torn tail when no
 * valid record after it belongs to a later group (group_first > p): then
 * the log is cut back to the start of the append (commit) that p belongs
 * to, so an append is never half-visible. Anything else is damage to
 * acknowledged data: open fails with EVS_ECORRUPT naming the record, and
 * nothing is dropped.
 */
#include "embedded/embedded.h"
#include "embedded/rebuild.h"
#include "util/util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define REPLAY_TXN_EVENTS 65536

/* Is there a valid record of a later group than position p starting in
 * (off, scan_end)? (Records may run past scan_end, up to size.) */
static int later_group_after(const uint8_t *m, uint32_t size, uint32_t scan_end,
                             uint32_t off, uint64_t p, uint64_t *found_pos,
                             uint32_t *found_off)
{
    for (uint32_t q = (off + 8) & ~7u; q < scan_end && q + EVS_REC_FIXED <= size; q += 8) {
        uint32_t len;
        if (evs__get_le32(m + q) != EVS_REC_MAGIC)
            continue;
        if (evs__rec_check(m + q, size - q, &len) != EVS_REC_OK)
            continue;
        if (evs__get_le64(m + q + EVS_REC_OFF_GROUP_FIRST) > p) {
            *found_pos = evs__get_le64(m + q + EVS_REC_OFF_POSITION);
            *found_off = q;
            return 1;
        }
    }
    return 0;
}

/* The end of the last non-zero 8-byte word in m[off, size), or off. A
 * segment is mostly zeros at open: compared 64 KiB at a time (memcmp is
 * vectorised; a word loop over an empty 64 MiB segment took ~10 ms). */
static uint32_t data_end(const uint8_t *m, uint32_t off, uint32_t size)
{
    static const uint8_t zeros[65536];
    uint32_t end = size;
    while (end - off >= sizeof(zeros) &&
           memcmp(m + end - sizeof(zeros), zeros, sizeof(zeros)) == 0)
        end -= (uint32_t)sizeof(zeros);
    while (end > off && evs__get_le64(m + end - 8) == 0)
        end -= 8;
    return end;
}

/* Zero the last segment from off to its last non-zero byte, and sync.
 * *cut: how many bytes were not zero already. */
static EVS_MUST_USE int truncate_tail(evs__emb *s, const uint8_t *m, uint32_t off,
                                      uint32_t *cut)
{
    uint32_t end = data_end(m, off, s->seg_size);
    *cut = end > off ? end - off : 0;
    if (end <= off)
        return 0;
    static const uint8_t zeros[65536];
    for (uint32_t o = off; o < end;) {
        uint32_t n = end - o < sizeof(zeros) ? end - o : (uint32_t)sizeof(zeros);
        if (pwrite(s->wfd, zeros, n, o) != (ssize_t)n)
            return evs__err(errno == ENOSPC ? EVS_ENOSPC : EVS_EIO,
                            "truncating the torn tail of segment %u: %s", s->wseg,
                            strerror(errno));
        o += n;
    }
    if (fdatasync(s->wfd) != 0)
        return evs__err(EVS_EIO, "fdatasync of segment %u: %s", s->wseg, strerror(errno));
    return 0;
}

/*
 * The log ends inside segment `last` (a copy's first hole, or an empty
 * segment whose making failed follows): set the later segments aside
 * (renamed to NNN.evslog.cut-<time>, never deleted) and make `last` the
 * writer's segment. why: for the notice.
 */
static EVS_MUST_USE int set_aside_after(evs__emb *s, uint32_t last, const char *why)
{
    char from[4096], to[4200], path[4096];
    uint32_t n = atomic_load(&s->nsegs);
    long long now = (long long)time(NULL);
    for (uint32_t no = n; no > last; no--) {
        snprintf(from, sizeof(from), "%s/log/%016" PRIx32 ".evslog", s->dir, no);
        snprintf(to, sizeof(to), "%s.cut-%lld", from, now);
        if (rename(from, to) != 0)
            return evs__err(EVS_EIO, "cannot set %s aside: %s", from, strerror(errno));
        uint8_t *m = atomic_load(&s->segs[no - 1].map);
        atomic_store(&s->segs[no - 1].map, NULL);
        if (m)
            munmap(m, s->seg_size);
        atomic_store(&s->nsegs, no - 1);
        evs__emb_notice(s, "set aside %s: %s", to, why);
    }
    if (fsync(s->dir_fd_log) != 0)
        return evs__err(EVS_EIO, "fsync of %s/log: %s", s->dir, strerror(errno));
    snprintf(path, sizeof(path), "%s/log/%016" PRIx32 ".evslog", s->dir, last);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return evs__err(EVS_EIO, "open %s: %s", path, strerror(errno));
    if (s->wfd >= 0)
        close(s->wfd);
    s->wfd = fd;
    s->wseg = last;
    return 0;
}

static EVS_MUST_USE int drop_index(MDB_txn *txn, evs__emb *s)
{
    MDB_dbi dbis[] = {s->db_tenants, s->db_streams, s->db_stream_events,
                      s->db_positions, s->db_tenant_events, s->db_event_ids,
                      s->db_postings, s->db_times};
    for (size_t i = 0; i < sizeof(dbis) / sizeof(dbis[0]); i++) {
        int mrc = mdb_drop(txn, dbis[i], 0);
        if (mrc != 0)
            return evs__mdb_err(mrc, "rebuild: empty sub-database");
    }
    MDB_val k = {7, "applied"};
    int mrc = mdb_del(txn, s->db_meta, &k, NULL);
    if (mrc != 0 && mrc != MDB_NOTFOUND)
        return evs__mdb_err(mrc, "rebuild: forget the index's end");
    s->next_stream_id = 1;
    s->next_tenant_id = 1;
    s->time_max_us = INT64_MIN;
    return 0;
}

/* Does the index's last entry agree with the log where it says it ends? */
static int index_end_ok(MDB_txn *txn, evs__emb *s, uint64_t applied, uint64_t L)
{
    MDB_val k, v;
    uint8_t kb[8];
    evs__put_be64(kb, applied);
    k.mv_size = 8;
    k.mv_data = kb;
    if (mdb_get(txn, s->db_positions, &k, &v) != 0 || v.mv_size != 8)
        return 0;
    uint64_t loc = evs__get_le64(v.mv_data);
    const uint8_t *m = evs__seg_map(s, evs__loc_seg(loc));
    uint32_t off = evs__loc_off(loc), len;
    return m && off < s->seg_size &&
           evs__rec_check(m + off, s->seg_size - off, &len) == EVS_REC_OK &&
           evs__get_le64(m + off + EVS_REC_OFF_POSITION) == applied &&
           evs__loc(evs__loc_seg(loc), off + evs__pad8(len)) == L;
}

/* Commit the replay so far and begin the next transaction. */
static EVS_MUST_USE int replay_commit(evs__emb *s, MDB_txn **txn, uint64_t applied,
                                      uint64_t L)
{
    int rc, mrc;
    if ((rc = evs__idx_applied_put(*txn, s, applied, L)) < 0 ||
        (rc = evs__idx_seq_put(*txn, s)) < 0)
        return rc;
    mrc = mdb_txn_commit(*txn);
    *txn = NULL;
    if (mrc != 0)
        return evs__env_err(s->env, mrc, "commit recovery");
    if ((mrc = mdb_txn_begin(s->env, NULL, 0, txn)) != 0) {
        *txn = NULL;
        return evs__mdb_err(mrc, "begin recovery");
    }
    return 0;
}

/*
 * Index the log's records from location `from` (position applied + 1) to
 * position `end`, all checked already, one record at a time (the replay
 * after a trusted index, usually a few groups).
 */
static EVS_MUST_USE int replay(evs__emb *s, MDB_txn **txn, uint64_t applied,
                               uint64_t from, uint64_t end, uint64_t *L)
{
    int rc;
    uint32_t seg = evs__loc_seg(from), off = evs__loc_off(from), len;
    uint64_t total = end - applied, done = 0;
    while (applied < end) {
        const uint8_t *m = evs__seg_map(s, seg);
        if (off + 8 > s->seg_size || evs__get_le32(m + off) != EVS_REC_MAGIC) {
            seg++;
            off = EVS_SEG_HEADER_SIZE;
            continue;
        }
        len = evs__get_le32(m + off + EVS_REC_OFF_LEN);
        if ((rc = evs__idx_apply_record(*txn, s, m + off, evs__loc(seg, off))) < 0)
            return rc;
        applied++;
        off += evs__pad8(len);
        *L = evs__loc(seg, off);
        /* commit at append boundaries only: an append is never half-indexed */
        if (++done % REPLAY_TXN_EVENTS == 0 || applied == end) {
            if (!(evs__get_le16(m + off - evs__pad8(len) + EVS_REC_OFF_FLAGS) &
                  EVS_REC_FLAG_COMMIT_END) && applied != end) {
                done--;
                continue;
            }
            if ((rc = replay_commit(s, txn, applied, *L)) < 0)
                return rc;
            if (s->base.opts.recovery_progress)
                s->base.opts.recovery_progress(s->base.opts.recovery_ctx, done, total);
        }
    }
    return 0;
}

/*
 * Recovery on a read-write open. First the log is checked from where the
 * index ends (from its start when the index is empty) to find where it
 * really ends; then the records up to there are indexed.
 *
 * Where the check meets a damaged or missing record at position p:
 *
 *   p <= A (the acknowledged frontier: the state file's durable position,
 *           a trusted index's end)            -> EVS_ECORRUPT, nothing cut
 *   original files, a later group intact after the damage (it was written
 *           after p's group was synced)        -> EVS_ECORRUPT, nothing cut
 *   original files, not the last segment      -> EVS_ECORRUPT (the writer
 *           syncs a segment before the next)
 *   otherwise (a torn last group; or a copy, whose log is a prefix of the
 *           original's up to its first hole)  -> cut back to the start of
 *           p's append; a copy's later segments are set aside
 */
int evs__recover(evs__emb *s, const evs__trust *t)
{
    MDB_txn *txn = NULL;
    int rc = 0, mrc;
    uint64_t applied, L, A = t->durable;

    if (atomic_load(&s->nsegs) == 0 && (rc = evs__seg_create(s, 1, 1, NULL)) < 0)
        return rc;

    if ((mrc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
        return evs__mdb_err(mrc, "begin recovery");
    if ((rc = evs__idx_applied_get(txn, s, &applied, &L)) < 0)
        goto out;
    /* A trusted index's end was acknowledged: its commit followed the
     * log's fdatasync. */
    if (applied > A)
        A = applied;
    /* An index of an older format, or one that disagrees with the log
     * where it says it ends, is rebuilt; the log check below then finds
     * any damage at or before A. */
    if (s->idx_upgrade || s->scav_pending ||
        (applied > 0 && !index_end_ok(txn, s, applied, L))) {
        /* a scavenge stopped half-way (scavenge.c): emptied here, in place,
         * so that read-only handles of other processes see the rebuild */
        if (!s->idx_upgrade && !s->scav_pending)
            evs__emb_notice(s, "rebuilding the index of %s: its end (position %" PRIu64
                            ") does not match the log", s->dir, applied);
        if ((rc = drop_index(txn, s)) < 0)
            goto out;
        applied = 0;
        L = evs__loc(1, EVS_SEG_HEADER_SIZE);
        s->idx_upgrade = 0;
    }

    /* ---- check: where does the log end? ---- */
    uint32_t nsegs = atomic_load(&s->nsegs);
    uint32_t seg = evs__loc_seg(L), off = evs__loc_off(L);
    uint64_t expect = applied + 1;
    uint32_t app_seg = seg, app_off = off; /* start of the append being read */
    uint64_t end = applied, Lend = L;       /* the last complete append */
    if (seg == 0 || seg > nsegs) {
        rc = evs__err(EVS_ECORRUPT, "index points at log segment %u but the log has %u",
                      seg, nsegs);
        goto out;
    }
    for (;;) {
        const uint8_t *m = evs__seg_map(s, seg);
        int last = (seg == nsegs);
        /* A scavenged segment (sealed, never the last): the records a
         * scavenge removed are holes, and whatever it kept was complete
         * (sealed segments hold whole appends), also an append whose
         * COMMIT_END record it removed. */
        int holes = !last && evs__seg_scavenged(m);
        uint32_t len = 0;
        if (holes) {
            uint32_t next = evs__seg_skip_hole(m, off, s->seg_size);
            if (next != off || (off + 8 <= s->seg_size &&
                                evs__get_le32(m + off) == EVS_REC_MAGIC &&
                                evs__get_le64(m + off + EVS_REC_OFF_POSITION) > expect)) {
                /* everything before the hole is complete */
                end = expect - 1;
                Lend = evs__loc(seg, off);
                app_seg = seg;
                off = app_off = next;
            }
            if (off + 8 > s->seg_size && s->segs[seg].first_position >= expect) {
                expect = s->segs[seg].first_position;
                end = expect - 1;
                seg++;
                off = app_off = EVS_SEG_HEADER_SIZE;
                app_seg = seg;
                continue;
            }
        }
        int rr = off + 8 <= s->seg_size ? evs__rec_check(m + off, s->seg_size - off, &len)
                                        : EVS_REC_ZERO;
        if (rr == EVS_REC_OK && holes &&
            evs__get_le64(m + off + EVS_REC_OFF_POSITION) > expect)
            expect = evs__get_le64(m + off + EVS_REC_OFF_POSITION); /* removed before it */
        if (rr == EVS_REC_OK && evs__get_le64(m + off + EVS_REC_OFF_POSITION) != expect)
            rr = EVS_REC_BAD_LAYOUT; /* a valid record out of sequence */
        if (rr == EVS_REC_OK) {
            int commit_end = evs__get_le16(m + off + EVS_REC_OFF_FLAGS) & EVS_REC_FLAG_COMMIT_END;
            s->last_stamp = (int64_t)evs__get_le64(m + off + EVS_REC_OFF_RECORDED_AT);
            expect++;
            off += evs__pad8(len);
            if (commit_end) {
                end = expect - 1;
                Lend = evs__loc(seg, off);
                app_seg = seg;
                app_off = off;
            }
            continue;
        }
        int clean_end = rr == EVS_REC_ZERO && end == expect - 1; /* no append cut short */
        /* The normal end of a full segment: the next one starts here. */
        if (!last && clean_end && s->segs[seg].first_position == expect) {
            seg++;
            off = app_off = EVS_SEG_HEADER_SIZE;
            app_seg = seg;
            continue;
        }
        /* An empty last segment that does not start here is one whose
         * making failed after it got its name (the writer then went on in
         * this one, or stopped): it holds nothing; set it aside. */
        if (clean_end && seg + 1 == nsegs &&
            data_end(evs__seg_map(s, nsegs), EVS_SEG_HEADER_SIZE, s->seg_size) ==
                EVS_SEG_HEADER_SIZE) {
            if ((rc = set_aside_after(s, seg, "an empty segment whose making failed "
                                      "(it starts after where the log ends)")) < 0)
                goto out;
            nsegs = seg;
            continue;
        }
        const char *what = rr == EVS_REC_ZERO ? "missing" : evs__rec_problem(rr);
        if (expect <= A) {
            rc = evs__err(EVS_ECORRUPT,
                          "log segment %u offset %u: the record at position %" PRIu64
                          " is damaged (%s), but positions up to %" PRIu64 " were "
                          "acknowledged as durable: evstore will not cut them. Keep "
                          "this store as it is, run `evs verify` for a full report, and "
                          "restore the log from a backup", seg, off, expect, what, A);
            goto out;
        }
        if (t->frontier_unknown && (!clean_end || data_end(m, off, s->seg_size) > off)) {
            rc = evs__err(EVS_ECORRUPT,
                          "log segment %u offset %u: the record at position %" PRIu64
                          " is %s, and the store's state file is damaged, so evstore "
                          "cannot tell whether it was acknowledged: nothing is cut. Run "
                          "`evs verify`; to accept losing the events from position %"
                          PRIu64 " on, as a torn write would, delete %s/state and open "
                          "the store again", seg, off, expect, what, end + 1, s->dir);
            goto out;
        }
        if (t->log_original) {
            uint64_t fpos;
            uint32_t foff;
            if (!last) {
                rc = evs__err(EVS_ECORRUPT,
                              "log segment %u offset %u: the record at position %" PRIu64
                              " is %s and it is not in the last segment, so it was "
                              "durable: this is damage, not a torn write. Run `evs "
                              "verify` for a full report and restore the log from a "
                              "backup", seg, off, expect, what);
                goto out;
            }
            if (later_group_after(m, s->seg_size, data_end(m, off, s->seg_size), off,
                                  expect, &fpos, &foff)) {
                rc = evs__err(EVS_ECORRUPT,
                              "log segment %u offset %u: the record at position %" PRIu64
                              " is %s but a later group (position %" PRIu64 " at offset "
                              "%u) is intact, so it was durable: this is damage, not a "
                              "torn write. Run `evs verify` for a full report and "
                              "restore the log from a backup", seg, off, expect, what,
                              fpos, foff);
                goto out;
            }
        } else if (!last) {
            /* a copy: its log ends here; what follows is beyond the copy */
            if ((rc = set_aside_after(s, app_seg, "it lies after the end of this copy's "
                                      "log")) < 0)
                goto out;
            nsegs = app_seg;
        }
        /* a torn tail (or the clean end): cut back to the last complete
         * append */
        uint32_t cut;
        if ((rc = truncate_tail(s, evs__seg_map(s, app_seg), app_off, &cut)) < 0)
            goto out;
        if (cut && t->log_original)
            evs__emb_notice(s, "cut a torn tail of %u bytes at log segment %u offset %u: "
                            "an append from position %" PRIu64 " that never finished "
                            "(never acknowledged)", cut, app_seg, app_off, end + 1);
        else if (cut)
            evs__emb_notice(s, "this copy's log ends at position %" PRIu64 ": cut %u bytes "
                            "after it at log segment %u offset %u (written while the "
                            "copy was made)", end, cut, app_seg, app_off);
        break;
    }
    /* What was accepted is made durable before anything builds on it: a
     * process that died before its fdatasync left its last group in the
     * page cache only. */
    if (fdatasync(s->wfd) != 0) {
        rc = evs__err(EVS_EIO, "fdatasync of log segment %u: %s", s->wseg, strerror(errno));
        goto out;
    }

    /* ---- index what the check accepted ---- */
    if (end > 0 && applied == 0) {
        /* an empty index: built in bulk (rebuild.c), after the drop above
         * is committed (it runs its own transactions) */
        mrc = mdb_txn_commit(txn);
        txn = NULL;
        if (mrc != 0) {
            rc = evs__env_err(s->env, mrc, "commit recovery");
            goto out;
        }
        if ((rc = evs__idx_bulk_build(s, end, Lend)) < 0) /* reports progress */
            goto out;
        if ((mrc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0) {
            txn = NULL;
            rc = evs__mdb_err(mrc, "begin recovery");
            goto out;
        }
    } else if (end > applied && (rc = replay(s, &txn, applied, L, end, &L)) < 0) {
        goto out;
    }
    /* The writer goes on where the last complete append ended: app_off of
     * app_seg, the last segment (Lend may name the previous one when the
     * last is still empty). */
    if (s->wseg != app_seg) {
        rc = evs__err(EVS_ECORRUPT, "recovery: the log ends in segment %u but the last "
                      "segment is %u", app_seg, s->wseg);
        goto out;
    }
    s->woff = app_off;
    s->next_position = end + 1;
    if ((rc = evs__idx_applied_put(txn, s, end, Lend)) < 0 ||
        (rc = evs__idx_seq_put(txn, s)) < 0)
        goto out;
    mrc = mdb_txn_commit(txn);
    txn = NULL;
    if (mrc != 0) {
        rc = evs__env_err(s->env, mrc, "commit recovery");
        goto out;
    }
    atomic_store(&s->head, end);
out:
    if (txn)
        mdb_txn_abort(txn);
    return rc;
}

/* ---- verify ------------------------------------------------------------- */

/*
 * The caller's callbacks (problems, progress) must not run inside the
 * index gate: one that reads the store would wait for a map growth that
 * waits for the gate to drain, and any would hold up the writer's growth
 * meanwhile. So the walk reports into `inner`, which keeps the messages
 * (up to the cap the front end reports) in `held`, and vflush() hands
 * them to the caller's sink each time the walk is out of the gate.
 */
typedef struct vheld {
    char *p;            /* messages, each NUL-terminated */
    size_t len, cap;
    size_t n;           /* messages held */
    uint64_t delivered; /* inner.problems already passed on */
    int oom;
} vheld;

typedef struct vctx {
    evs__verify_sink *sink; /* inner: what problem() reports into */
    evs__verify_sink *out;  /* the caller's */
    MDB_cursor *pcur;     /* on the postings */
    uint64_t postings;    /* expected number of postings */
    uint64_t streamless;  /* events without a stream */
    uint64_t unread;      /* damaged records: their index entries are unknown */
    uint64_t system;      /* events of system streams (no tenant_events) */
    uint64_t scavenged;   /* segments a scavenge rewrote (format.h) */
} vctx;

#define problem(v, ...) evs__verify_problem((v)->sink, __VA_ARGS__)

static void vhold(void *ctx, const char *msg)
{
    vheld *h = ctx;
    size_t l = strlen(msg) + 1;
    if (h->len + l > h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 4096;
        while (cap < h->len + l)
            cap *= 2;
        char *p = realloc(h->p, cap);
        if (!p) {
            h->oom = 1; /* the message is lost, the count is not */
            return;
        }
        h->p = p;
        h->cap = cap;
    }
    memcpy(h->p + h->len, msg, l);
    h->len += l;
    h->n++;
}

/* Out of the gate: pass the held problems, and how far the walk is, on. */
static void vflush(const evs__verify_sink *inner, evs__verify_sink *out, vheld *h,
                   uint64_t done)
{
    const char *m = h->p;
    for (size_t i = 0; i < h->n; i++, m += strlen(m) + 1)
        evs__verify_problem(out, "%s", m);
    /* counted beyond the cap (not held), or lost to a full memory */
    uint64_t rest = inner->problems - h->delivered - h->n;
    if (h->oom && rest > 0)
        evs__verify_problem(out, "(verify: out of memory keeping problem messages; "
                            "%" PRIu64 " more problems were counted)", rest);
    else
        out->problems += rest;
    h->delivered = inner->problems;
    h->len = h->n = 0;
    h->oom = 0;
    evs__verify_tick(out, done);
}
static uint64_t entries(MDB_txn *txn, MDB_dbi dbi)
{
    MDB_stat st;
    return mdb_stat(txn, dbi, &st) == 0 ? st.ms_entries : 0;
}

static void verify_index_entry(evs__emb *s, MDB_txn *txn, vctx *v, const uint8_t *rec,
                               uint32_t seg, uint32_t off)
{
    uint64_t pos = evs__get_le64(rec + EVS_REC_OFF_POSITION);
    uint64_t loc = evs__loc(seg, off), ipos, iloc, sid;
    int64_t version = (int64_t)evs__get_le64(rec + EVS_REC_OFF_VERSION), head;
    uint8_t kb[16];
    MDB_val k, val;
    uint32_t tid;
    size_t tl = evs__get_le16(rec + EVS_REC_OFF_TENANT_LEN);
    size_t sl = evs__get_le16(rec + EVS_REC_OFF_STREAM_LEN);
    const char *tenant = (const char *)rec + EVS_REC_OFF_VAR;
    const char *stream = tenant + tl + 1;

    evs__put_be64(kb, pos);
    k.mv_size = 8;
    k.mv_data = kb;
    if (mdb_get(txn, s->db_positions, &k, &val) != 0 || val.mv_size != 8 ||
        evs__get_le64(val.mv_data) != loc)
        problem(v, "index: position %" PRIu64 " is missing from or wrong in the "
                "positions index (segment %u offset %u)", pos, seg, off);
    if (evs__idx_id_get(txn, s, rec + EVS_REC_OFF_ID, &ipos, &iloc) != 0 ||
        ipos != pos || iloc != loc)
        problem(v, "index: the event id of position %" PRIu64 " is missing from or "
                "wrong in the event id index", pos);
    if (evs__idx_tenant_get(txn, s, tenant, tl, &tid) != 0) {
        problem(v, "index: tenant \"%s\" of position %" PRIu64 " is not indexed",
                tenant, pos);
        return;
    }
    int system = evs__is_system_stream(stream, sl);
    evs__put_be32(kb, tid);
    evs__put_be64(kb + 4, pos);
    k.mv_size = 12;
    int te = mdb_get(txn, s->db_tenant_events, &k, &val);
    if (system) {
        v->system++;
        if (te == 0)
            problem(v, "index: position %" PRIu64 " (system stream %s) is in its "
                    "tenant's index, where system events never are", pos, stream);
    } else if (te != 0 || val.mv_size != 8 || evs__get_le64(val.mv_data) != loc) {
        problem(v, "index: position %" PRIu64 " is missing from or wrong in its "
                "tenant's index", pos);
    }
    /* postings: the category (events with a stream), the type and every
     * tag; none for system events. Terms of one event whose hashes
     * collide share one entry (same key, same value): count keys once. */
    uint8_t pk[66][12], pv[16];
    evs__put_be64(pv, pos);
    evs__put_le64(pv + 8, loc);
    evs__terms terms;
    unsigned kind;
    const char *term;
    size_t l, nk = 0;
    evs__terms_init(&terms, rec);
    while (!system && nk < 66 && evs__terms_next(&terms, &kind, &term, &l)) {
        evs__term_key(pk[nk], tid, kind, term, l);
        size_t j = 0;
        while (j < nk && memcmp(pk[j], pk[nk], 12) != 0)
            j++;
        if (j < nk)
            continue;
        k.mv_size = 12;
        k.mv_data = pk[nk++];
        val.mv_size = 16;
        val.mv_data = pv;
        if (mdb_cursor_get(v->pcur, &k, &val, MDB_GET_BOTH) != 0)
            problem(v, "index: the %s \"%.*s\" of position %" PRIu64 " is missing from "
                    "the postings", kind == EVS_TERM_CATEGORY ? "category"
                    : kind == EVS_TERM_TYPE ? "type" : "tag", (int)l, term, pos);
        v->postings++;
    }
    if (sl == 0) {
        v->streamless++;
        return;
    }
    if (evs__idx_stream_get(txn, s, tid, stream, sl, &sid, &head) != 0 || sid == 0 ||
        head < version) {
        problem(v, "index: stream %s of position %" PRIu64 " is missing or its head "
                "(%lld) is below version %lld", stream, pos, (long long)head,
                (long long)version);
        return;
    }
    evs__put_be64(kb, sid);
    evs__put_be64(kb + 8, (uint64_t)version);
    k.mv_size = 16;
    k.mv_data = kb;
    if (mdb_get(txn, s->db_stream_events, &k, &val) != 0 || val.mv_size != 16 ||
        evs__get_le64(val.mv_data) != pos ||
        evs__get_le64((const uint8_t *)val.mv_data + 8) != loc)
        problem(v, "index: stream %s version %lld (position %" PRIu64 ") is missing "
                "from or wrong in the stream index", stream, (long long)version, pos);
}

/* The walk of evs__emb_verify: *n = records checked; problems into inner
 * (held until vflush), progress to out between gate passes. */
static int verify_walk(uint64_t *n_out, evs__emb *s, evs__verify_sink *inner,
                       evs__verify_sink *out, vheld *held)
{
    MDB_txn *txn = NULL;
    vctx v = {inner, out, NULL, 0, 0, 0, 0, 0};
    uint64_t applied, L, n = 0, gaps = 0;
    int rc, mrc;

    /*
     * A read transaction held for the whole walk would keep every page the
     * writer frees meanwhile from being reused, and the index would grow
     * by what the writer rewrites during the walk (20x measured beside a
     * writer). So the counts are taken first, in the first snapshot, and
     * the walk renews its snapshot every EVS_READ_RENEW_EVENTS records:
     * entries are only ever added, so a later snapshot has every entry of
     * positions <= applied that the first one had, and no other.
     */
    if ((rc = evs__rtxn_begin(s, &txn)) < 0)
        return rc;
    if ((rc = evs__idx_applied_get(txn, s, &applied, &L)) < 0) {
        evs__rtxn_end(s, txn);
        return rc;
    }
    struct { const char *name; MDB_dbi dbi; uint64_t have; } counted[] = {
        {"positions", s->db_positions, 0},
        {"event_ids", s->db_event_ids, 0},
        {"tenant_events", s->db_tenant_events, 0},
        {"stream_events", s->db_stream_events, 0},
        {"postings", s->db_postings, 0},
    };
    for (size_t i = 0; i < sizeof(counted) / sizeof(counted[0]); i++)
        counted[i].have = entries(txn, counted[i].dbi);
    /*
     * Every stream's head is the version of its last stream_events entry,
     * and (unless a scavenge removed events: checked after the walk) it
     * has one entry per version 0..head, or 0..v and a tombstone (version
     * EVS__TOMBSTONE_VERSION, which follows any v). Counted per stream:
     * a sum of heads would overflow on a tombstone.
     */
    MDB_cursor *cur, *scur = NULL;
    uint64_t count_bad = 0;
    char count_bad_name[160] = "";
    int heads_mrc = mdb_cursor_open(txn, s->db_streams, &cur);
    if (heads_mrc == 0 && (heads_mrc = mdb_cursor_open(txn, s->db_stream_events, &scur)) != 0)
        mdb_cursor_close(cur);
    if (heads_mrc == 0) {
        MDB_val k, val;
        int op = MDB_FIRST;
        while (mdb_cursor_get(cur, &k, &val, op) == 0) {
            op = MDB_NEXT;
            if (val.mv_size != 16 || k.mv_size < 4)
                continue;
            uint64_t sid = evs__get_le64(val.mv_data);
            int64_t head = (int64_t)evs__get_le64((const uint8_t *)val.mv_data + 8);
            int nl = k.mv_size - 4 > 100 ? 100 : (int)(k.mv_size - 4);
            const char *name = (const char *)k.mv_data + 4;
            uint8_t kb[16];
            evs__put_be64(kb, sid);
            evs__put_be64(kb + 8, 0);
            MDB_val sk = {16, kb}, sv;
            uint64_t cnt = 0;
            int64_t last = EVS_NO_STREAM, prev = EVS_NO_STREAM;
            int sop = MDB_SET_RANGE;
            while (mdb_cursor_get(scur, &sk, &sv, sop) == 0 && sk.mv_size == 16 &&
                   evs__get_be64(sk.mv_data) == sid) {
                sop = MDB_NEXT;
                prev = last;
                last = (int64_t)evs__get_be64((const uint8_t *)sk.mv_data + 8);
                cnt++;
            }
            if (last != head) {
                problem(&v, "index: stream %.*s has head %lld but its last event in the "
                        "stream index has version %lld", nl, name, (long long)head,
                        (long long)last);
                continue;
            }
            uint64_t want = head == EVS__TOMBSTONE_VERSION ? (uint64_t)(prev + 2)
                                                           : (uint64_t)(head + 1);
            if (cnt != want && count_bad++ == 0)
                snprintf(count_bad_name, sizeof(count_bad_name), "%.*s (%" PRIu64
                         " events, versions up to %lld)", nl, name, cnt,
                         (long long)(head == EVS__TOMBSTONE_VERSION ? prev : head));
        }
        mdb_cursor_close(scur);
        mdb_cursor_close(cur);
    }
    if ((mrc = mdb_cursor_open(txn, s->db_postings, &v.pcur)) != 0) {
        evs__rtxn_end(s, txn);
        return evs__mdb_err(mrc, "verify: open cursor");
    }
    uint64_t renewed = evs__coarse_ns();
    uint32_t since = 0;
    uint32_t last_seg = evs__loc_seg(L), last_off = evs__loc_off(L);
    uint64_t expect = 1;
    for (uint32_t seg = 1; seg <= last_seg; seg++) {
        const uint8_t *m = evs__scav_refresh(s, seg); /* evs__seg_map, current */
        if (!m) {
            problem(&v, "segment %u is missing", seg);
            break;
        }
        if (s->segs[seg - 1].first_position != expect)
            problem(&v, "segment %u header says it starts at position %" PRIu64
                    " but position %" PRIu64 " is next", seg,
                    s->segs[seg - 1].first_position, expect);
        uint32_t end = seg == last_seg ? last_off : s->seg_size;
        uint32_t off = EVS_SEG_HEADER_SIZE;
        /* a scavenged segment: holes where records were removed, and gaps
         * in positions there (format.h); elsewhere both are damage */
        int holes = evs__seg_scavenged(m);
        if (holes)
            v.scavenged++;
        while (off < end) {
            uint32_t len = 0;
            if (holes && (off = evs__seg_skip_hole(m, off, s->seg_size)) >= end)
                break;
            int rr = evs__rec_check(m + off, s->seg_size - off, &len);
            if (rr == EVS_REC_ZERO && seg != last_seg)
                break; /* unused end of a full segment */
            if (rr != EVS_REC_OK) {
                /* Name the record: its header's position when the header is
                 * readable, else the position expected there. */
                uint64_t hp = evs__get_le32(m + off) == EVS_REC_MAGIC &&
                                      off + EVS_REC_FIXED <= s->seg_size
                                  ? evs__get_le64(m + off + EVS_REC_OFF_POSITION)
                                  : 0;
                if (holes && hp > expect && hp <= applied) {
                    gaps += hp - expect; /* removed before it (scavenge) */
                    expect = hp;
                }
                uint64_t named = hp == expect ? hp : expect;
                v.unread++;
                problem(&v, "log segment %u offset %u: record at position %" PRIu64
                        " is damaged: %s", seg, off, named, evs__rec_problem(rr));
                uint32_t rl = off + 12 <= s->seg_size ? evs__get_le32(m + off + EVS_REC_OFF_LEN) : 0;
                if (rr == EVS_REC_BAD_CRC || rr == EVS_REC_BAD_LAYOUT) {
                    if (rl >= EVS_REC_FIXED && rl <= s->seg_size - off) {
                        off += evs__pad8(rl);
                        expect++;
                        continue;
                    }
                }
                /* cannot find the next record: resume at the next segment */
                if (seg < last_seg)
                    expect = s->segs[seg].first_position;
                break;
            }
            uint64_t pos = evs__get_le64(m + off + EVS_REC_OFF_POSITION);
            if (holes && pos > expect) {
                gaps += pos - expect; /* removed by a scavenge */
                expect = pos;
            }
            if (pos != expect) {
                problem(&v, "log segment %u offset %u: position %" PRIu64
                        " where %" PRIu64 " was expected", seg, off, pos, expect);
                expect = pos;
            }
            if (pos <= applied && ++since >= EVS_READ_RENEW_EVENTS / 4) {
                uint64_t now = evs__coarse_ns();
                if (since >= EVS_READ_RENEW_EVENTS ||
                    now - renewed >= EVS_READ_RENEW_MS * UINT64_C(1000000)) {
                    /* out of the gate (a remap may run; the caller's
                     * callbacks run), then a new snapshot */
                    evs__gate_leave(&s->idx_gate);
                    vflush(inner, out, held, n);
                    if ((rc = evs__gate_enter(&s->idx_gate)) < 0) {
                        mdb_cursor_close(v.pcur);
                        mdb_txn_abort(txn);
                        return rc;
                    }
                    if ((rc = evs__rtxn_renew(s, txn)) < 0 ||
                        ((mrc = mdb_cursor_renew(txn, v.pcur)) != 0 &&
                         (rc = evs__mdb_err(mrc, "verify: renew cursor")) < 0)) {
                        mdb_cursor_close(v.pcur);
                        evs__rtxn_end(s, txn);
                        return rc;
                    }
                    renewed = now;
                    since = 0;
                }
            }
            if (pos <= applied)
                verify_index_entry(s, txn, &v, m + off, seg, off);
            n++;
            expect++;
            off += evs__pad8(len);
        }
        /* the removed tail of a scavenged segment */
        uint64_t next = seg < last_seg ? s->segs[seg].first_position : applied + 1;
        if (holes && next > expect) {
            gaps += next - expect;
            expect = next;
        }
    }
    if (expect - 1 != applied)
        problem(&v, "the log holds positions up to %" PRIu64 " but the index says %" PRIu64,
                expect - 1, applied);
    mdb_cursor_close(v.pcur);
    evs__rtxn_end(s, txn);
    /* the counts of the first snapshot, against what the walk found */
    uint64_t events = applied - gaps; /* what the log holds */
    uint64_t want[] = {events, events, events - v.system, events - v.streamless,
                       v.postings};
    /* the last three counts come from reading every record: only exact
     * when none was damaged (each damaged one is reported already) */
    size_t ncounted = sizeof(counted) / sizeof(counted[0]) - (v.unread ? 3 : 0);
    for (size_t i = 0; i < ncounted; i++)
        if (counted[i].have != want[i])
            problem(&v, "index: %s has %" PRIu64 " entries where the log's %" PRIu64
                    " events need %" PRIu64, counted[i].name, counted[i].have, events,
                    want[i]);
    if (heads_mrc != 0)
        problem(&v, "index: the streams index cannot be read: %s", mdb_strerror(heads_mrc));
    else if (!v.unread && !v.scavenged && count_bad)
        problem(&v, "index: %" PRIu64 " streams have versions missing from the stream "
                "index (and no scavenge removed any), e.g. %s", count_bad, count_bad_name);
    *n_out = n;
    return 0;
}

int evs__emb_verify(uint64_t *checked, evs_db *db, evs__verify_sink *sink)
{
    vheld held = {0};
    evs__verify_sink inner = {vhold, &held, 0, NULL, 0};
    uint64_t n = 0;
    evs__emb *s = (evs__emb *)db;
    /* no scavenge of this handle deletes index entries during the walk,
     * whose snapshots must only ever gain entries (scavenge.c) */
    pthread_mutex_lock(&s->scav_lock);
    int rc = verify_walk(&n, s, &inner, sink, &held);
    pthread_mutex_unlock(&s->scav_lock);
    vflush(&inner, sink, &held, n);
    free(held.p);
    if (checked)
        *checked = n;
    return rc; /* 0: the front end counts the problems */
}
