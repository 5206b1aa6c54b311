/*
 * rebuild.c -- building the whole index from the log in bulk (rebuild.h).
 *
 * The replay (evs__idx_apply_record) costs a B-tree search and a random
 * page touch per entry, about eight per event. Here the log is read once
 * and every entry becomes a fixed 32-byte record whose sort key is its
 * LMDB key (plus the position, which orders postings' duplicates):
 *
 *   log ──parse──▶ positions, times   (already in key order: loaded as
 *            │                         they are parsed)
 *            ├───▶ event_ids, stream_events, tenant_events, postings
 *            │        (sorted on the second thread after its parse, kind
 *            │         by kind, while this one loads the kinds already
 *            │         sorted)
 *            └───▶ tenants, streams   (hash tables of names: their heads;
 *                                      sorted and loaded at the end)
 *
 * and each sub-database is filled with MDB_APPEND / MDB_APPENDDUP, which
 * writes its B-tree left to right with full pages and no searches, a
 * chunk of encoded entries at a time (FLAT_ENTS). What remains is LMDB's
 * own cost per entry, on the one thread that may write: about 9 puts per
 * event of `evs generate` (positions, times, tenant_events,
 * stream_events, event_ids, 3.9 postings), 0.1 to 0.3 us each; the
 * postings alone take some 0.85 s per million events (the long lists,
 * sub-databases, about 0.29 us per entry), the whole build about 1.7 to
 * 2 s per million events on a quiet 2-core machine.
 *
 * Memory is bounded by a window of events (WINDOW_DEFAULT): a longer log
 * is parsed window by window; every window but the last leaves its four
 * sorted arrays as runs in unlinked temporary files, and the load merges
 * the runs (a heap over the run readers), so the sub-databases are still
 * written in key order, once.
 *
 *   window 1: [sorted run] ──▶ tmp file ─┐
 *   window 2: [sorted run] ──▶ tmp file ─┼─ merge ──▶ MDB_APPEND
 *   last window: [sorted, in memory] ────┘
 *
 * Ids follow the replay exactly: a tenant or a stream gets the next id
 * when it is first seen in log order, which is what parsing in log order
 * does here.
 */
#include "embedded/rebuild.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

#define WINDOW_DEFAULT (UINT64_C(1) << 19) /* events per window */
#define LOAD_TXN_PUTS (1u << 20)           /* puts per transaction, about */
#define RUN_BUF_ENTS 4096u                 /* a run reader's buffer: 128 KiB */

/* ---- entries and their order ------------------------------------------ */

/*
 * One index entry. The sort key is (k0, k1, k2); v is the location.
 *
 *   kind            k0            k1             k2        LMDB key / value
 *   event_ids       id bytes 0-7  id bytes 8-15  position  id / pos, loc
 *   stream_events   stream id     version        position  sid, ver / pos, loc
 *   tenant_events   tenant id     position       0         tid, pos / loc
 *   postings        tenant id     term hash      position  tid, hash / pos, loc
 */
typedef struct ent {
    uint64_t k0, k1, k2, v;
} ent;

enum { K_IDS, K_SE, K_TE, K_POST, K_N };
static const char *const kind_name[K_N] = {"event_ids", "stream_events",
                                           "tenant_events", "postings"};
/* The order of the sorts and the loads: the quick sorts first, so that
 * the loader waits least (the sort runs behind the parse, on its thread). */
static const int kind_order[K_N] = {K_TE, K_SE, K_IDS, K_POST};

static inline int ent_lt(const ent *a, const ent *b)
{
    if (a->k0 != b->k0)
        return a->k0 < b->k0;
    if (a->k1 != b->k1)
        return a->k1 < b->k1;
    return a->k2 < b->k2;
}

/* Byte d (0 = most significant) of the 24-byte key. */
static inline unsigned ent_byte(const ent *e, unsigned d)
{
    uint64_t w = d < 8 ? e->k0 : d < 16 ? e->k1 : e->k2;
    return (unsigned)(w >> (56 - 8 * (d & 7))) & 0xffu;
}

static void isort(ent *a, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        ent x = a[i];
        size_t j = i;
        while (j > 0 && ent_lt(&x, &a[j - 1])) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = x;
    }
}

/*
 * Stable LSD radix sort of a[0..n) by k0, a byte at a time, into a or tmp
 * (both n entries): returns the one that holds the result. Bytes that all
 * entries share (the high bytes of small ids) cost nothing but their
 * histogram, made for all eight in one pass.
 *
 * Stable is what makes one word enough: entries are made in position
 * order, so a tenant's events, a stream's versions and a term's postings
 * are already in key order among themselves; sorting by tenant, stream or
 * term then gives (tenant, position), (stream, version) and (term,
 * position) order.
 */
static ent *lsd_sort(ent *a, ent *tmp, size_t n)
{
    size_t (*h)[256] = calloc(8, sizeof(*h));
    if (!h) { /* no memory for 16 KiB: sort in place, slowly but right */
        for (size_t i = 0; i < n; i++) { /* stable: key then original order */
            ent x = a[i];
            size_t j = i;
            while (j > 0 && x.k0 < a[j - 1].k0) {
                a[j] = a[j - 1];
                j--;
            }
            a[j] = x;
        }
        return a;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t x = a[i].k0;
        for (unsigned d = 0; d < 8; d++)
            h[d][(x >> (8 * d)) & 0xffu]++;
    }
    for (unsigned d = 0; d < 8 && n > 0; d++) {
        if (h[d][(a[0].k0 >> (8 * d)) & 0xffu] == n)
            continue;
        size_t off[256], sum = 0;
        for (unsigned b = 0; b < 256; b++) {
            off[b] = sum;
            sum += h[d][b];
        }
        for (size_t i = 0; i < n; i++)
            tmp[off[(a[i].k0 >> (8 * d)) & 0xffu]++] = a[i];
        ent *t = a;
        a = tmp;
        tmp = t;
    }
    free(h);
    return a;
}

/* Sort the array of kind k of a window (event ids: by the whole 128-bit
 * id: the first 8 bytes by radix, then runs that share them). */
static void sort_kind(ent **a, ent **tmp, size_t *cap, size_t *tmp_cap, size_t n, int ids)
{
    ent *r = lsd_sort(*a, *tmp, n);
    if (r != *a) {
        *tmp = *a;
        *a = r;
        size_t c = *cap;
        *cap = *tmp_cap;
        *tmp_cap = c;
    }
    if (ids) {
        for (size_t i = 0, j; i < n; i = j) {
            for (j = i + 1; j < n && r[j].k0 == r[i].k0; j++)
                ;
            if (j - i > 1)
                isort(r + i, j - i);
        }
    }
}

/* ---- tenants and streams: first-seen ids and heads --------------------- */

/* A name in the log (the mapping outlives the build) with its ids. For
 * tenants tid is 0 and id the tenant id; for streams id is the stream id
 * and head its last version. */
typedef struct name_ent {
    uint64_t h;
    const char *name;
    uint64_t id;
    int64_t head;
    uint32_t tid;
    uint16_t len;
    uint8_t used;
} name_ent;

typedef struct name_tab {
    name_ent *t;
    size_t cap, n; /* cap: a power of two */
} name_tab;

static EVS_MUST_USE int tab_grow(name_tab *tb)
{
    size_t ncap = tb->cap ? tb->cap * 2 : 1024;
    name_ent *nt = calloc(ncap, sizeof(*nt));
    if (!nt)
        return -1;
    for (size_t i = 0; i < tb->cap; i++) {
        if (!tb->t[i].used)
            continue;
        size_t j = tb->t[i].h & (ncap - 1);
        while (nt[j].used)
            j = (j + 1) & (ncap - 1);
        nt[j] = tb->t[i];
    }
    free(tb->t);
    tb->t = nt;
    tb->cap = ncap;
    return 0;
}

/* The entry of (tid, name), added unused-looking (id 0) when absent;
 * NULL when out of memory. */
static EVS_MUST_USE name_ent *tab_get(name_tab *tb, uint32_t tid, const char *name,
                                      size_t len)
{
    if ((tb->n + 1) * 2 > tb->cap && tab_grow(tb) < 0)
        return NULL;
    uint64_t h = XXH3_64bits_withSeed(name, len, tid);
    size_t j = h & (tb->cap - 1);
    for (;; j = (j + 1) & (tb->cap - 1)) {
        name_ent *e = &tb->t[j];
        if (!e->used) {
            e->used = 1;
            e->h = h;
            e->name = name;
            e->len = (uint16_t)len;
            e->tid = tid;
            e->id = 0;
            e->head = EVS_NO_STREAM;
            tb->n++;
            return e;
        }
        if (e->h == h && e->tid == tid && e->len == len && memcmp(e->name, name, len) == 0)
            return e;
    }
}

/* LMDB's default order of the keys (tid BE + name; 't' + name). */
static int name_cmp(const void *pa, const void *pb)
{
    const name_ent *a = *(const name_ent *const *)pa, *b = *(const name_ent *const *)pb;
    if (a->tid != b->tid)
        return a->tid < b->tid ? -1 : 1;
    size_t l = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->name, b->name, l);
    if (c != 0)
        return c;
    return a->len < b->len ? -1 : a->len > b->len ? 1 : 0;
}

/* ---- terms of the postings: dense ids, then sorted by (tenant, hash) --- */

/*
 * A window's postings are entries (term id, -, position, location), the
 * term id dense in first-seen order. Sorting the (much fewer) distinct
 * terms by their key (tenant id, term hash) gives each a rank; a stable
 * sort of the postings by rank then gives LMDB's order, every term's
 * positions ascending, in two or three radix passes over 8-byte digits'
 * worth of rank instead of twelve over the key.
 */
typedef struct term_slot {
    uint64_t hash;
    uint32_t tid;
    uint32_t id1; /* id + 1; 0: an empty slot */
} term_slot;

static void phase(const char *what, uint64_t *t);

/* ---- runs: sorted arrays spilled to a file, read back for the merge ---- */

typedef struct runfile {
    int fd;
    uint64_t len;        /* entries written */
    uint64_t *start, *count;
    size_t nruns, cap;
} runfile;

static EVS_MUST_USE int run_write(runfile *rf, const char *dir, const ent *a, size_t n)
{
    if (rf->fd < 0) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/index/rebuild-%d-%p.tmp", dir, (int)getpid(),
                 (void *)rf);
        rf->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (rf->fd < 0)
            return evs__err(errno == ENOSPC ? EVS_ENOSPC : EVS_EIO,
                            "index rebuild: create %s: %s", path, strerror(errno));
        unlink(path); /* nothing is left behind, whatever happens */
    }
    if (evs__grow(&rf->start, &rf->cap, rf->nruns + 1, sizeof(uint64_t)) < 0)
        return evs__err(EVS_ENOMEM, "index rebuild: out of memory");
    size_t cap2 = rf->cap - 1;
    if (evs__grow(&rf->count, &cap2, rf->cap, sizeof(uint64_t)) < 0)
        return evs__err(EVS_ENOMEM, "index rebuild: out of memory");
    const char *p = (const char *)a;
    size_t left = n * sizeof(ent);
    off_t off = (off_t)(rf->len * sizeof(ent));
    while (left > 0) {
        ssize_t w = pwrite(rf->fd, p, left > (1u << 30) ? (1u << 30) : left, off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return evs__err(w < 0 && errno == ENOSPC ? EVS_ENOSPC : EVS_EIO,
                            "index rebuild: write a temporary run: %s",
                            w < 0 ? strerror(errno) : "short write");
        p += w;
        left -= (size_t)w;
        off += w;
    }
    rf->start[rf->nruns] = rf->len;
    rf->count[rf->nruns] = n;
    rf->nruns++;
    rf->len += n;
    return 0;
}

/* A reader of one run: an array in memory, or a run file read in pieces. */
typedef struct rd {
    const ent *buf;
    size_t n, i;
    int fd;
    uint64_t off, left; /* next entry in the file, entries still there */
    ent *own;           /* buffer for the file */
} rd;

static EVS_MUST_USE int rd_fill(rd *r)
{
    size_t want = r->left < RUN_BUF_ENTS ? (size_t)r->left : RUN_BUF_ENTS;
    size_t got = 0;
    while (got < want * sizeof(ent)) {
        ssize_t g = pread(r->fd, (char *)r->own + got, want * sizeof(ent) - got,
                          (off_t)(r->off * sizeof(ent) + got));
        if (g < 0 && errno == EINTR)
            continue;
        if (g <= 0)
            return evs__err(EVS_EIO, "index rebuild: read a temporary run: %s",
                            g < 0 ? strerror(errno) : "short read");
        got += (size_t)g;
    }
    r->buf = r->own;
    r->n = want;
    r->i = 0;
    r->off += want;
    r->left -= want;
    return 0;
}

/* k-way merge of sorted runs: a binary min-heap of reader indexes. */
typedef struct mrg {
    rd *r;
    size_t nr;
    size_t *heap;
    size_t nh;
} mrg;

static inline const ent *rd_cur(const rd *r) { return &r->buf[r->i]; }

static void heap_down(mrg *m, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, b = i;
        if (l < m->nh && ent_lt(rd_cur(&m->r[m->heap[l]]), rd_cur(&m->r[m->heap[b]])))
            b = l;
        if (l + 1 < m->nh &&
            ent_lt(rd_cur(&m->r[m->heap[l + 1]]), rd_cur(&m->r[m->heap[b]])))
            b = l + 1;
        if (b == i)
            return;
        size_t t = m->heap[i];
        m->heap[i] = m->heap[b];
        m->heap[b] = t;
        i = b;
    }
}

static EVS_MUST_USE int mrg_init(mrg *m)
{
    m->nh = 0;
    if (!(m->heap = malloc((m->nr ? m->nr : 1) * sizeof(size_t))))
        return evs__err(EVS_ENOMEM, "index rebuild: out of memory");
    for (size_t i = 0; i < m->nr; i++) {
        int rc;
        if (m->r[i].i >= m->r[i].n && m->r[i].left > 0 && (rc = rd_fill(&m->r[i])) < 0)
            return rc;
        if (m->r[i].i < m->r[i].n)
            m->heap[m->nh++] = i;
    }
    for (size_t i = m->nh / 2; i-- > 0;)
        heap_down(m, i);
    return 0;
}

/* The next entry in order (copied to *out): 1, 0 at the end, or an error. */
static EVS_MUST_USE int mrg_next(mrg *m, ent *out)
{
    if (m->nh == 0)
        return 0;
    rd *r = &m->r[m->heap[0]];
    *out = r->buf[r->i++];
    if (r->i >= r->n) {
        int rc;
        if (r->left > 0) {
            if ((rc = rd_fill(r)) < 0)
                return rc;
        } else {
            m->heap[0] = m->heap[--m->nh];
        }
    }
    if (m->nh > 1)
        heap_down(m, 0);
    return 1;
}

/* ---- progress ------------------------------------------------------------ */

/*
 * recovery_progress, when set: done / total (total = end_position) is the
 * share of the build's work done, in events' worth. The shares below are
 * the phases' times measured on 1 M generated events (the parse overlaps
 * the positions load; the sorts overlap the loads).
 */
#define PROG_PARSE 0.12
static const double kind_share[K_N] = {0.16, 0.15, 0.05, 0.52}; /* by kind */

typedef struct prog {
    evs__emb *s;
    uint64_t total, last; /* last: the last "done" reported */
    double base, span;    /* the kind being loaded: its share */
    uint64_t kents;       /* its entries */
    uint64_t next;        /* report when that many are loaded */
} prog;

/* frac of the work done; frac > 1: all of it, the build has ended */
static void prog_at(prog *p, double frac)
{
    if (!p || !p->s->base.opts.recovery_progress)
        return;
    uint64_t d = frac > 1.0 ? p->total : (uint64_t)((double)p->total * frac);
    if (frac <= 1.0 && d >= p->total)
        d = p->total ? p->total - 1 : 0; /* total only at the end */
    if (d < p->last)
        d = p->last;
    p->last = d;
    p->s->base.opts.recovery_progress(p->s->base.opts.recovery_ctx, d, p->total);
}

/* Within a kind's load (seen of its entries loaded): every 256 Ki. */
static inline void prog_ents(prog *p, size_t seen)
{
    if (p && p->kents && seen >= p->next) {
        prog_at(p, p->base + p->span * (double)seen / (double)p->kents);
        p->next = seen + (1u << 18);
    }
}

/* ---- loading ----------------------------------------------------------- */

/* Commit *txn (if any), then begin a new one with a cursor on dbi. */
static EVS_MUST_USE int txn_next(evs__emb *s, MDB_txn **txn, MDB_cursor **cur, MDB_dbi dbi)
{
    int mrc;
    if (*txn) {
        *cur = NULL; /* a write transaction's cursors end with it */
        mrc = mdb_txn_commit(*txn);
        *txn = NULL;
        if (mrc != 0)
            return evs__env_err(s->env, mrc, "index rebuild: commit");
    }
    if ((mrc = mdb_txn_begin(s->env, NULL, 0, txn)) != 0) {
        *txn = NULL;
        return evs__mdb_err(mrc, "index rebuild: begin");
    }
    if ((mrc = mdb_cursor_open(*txn, dbi, cur)) != 0) {
        *cur = NULL;
        return evs__mdb_err(mrc, "index rebuild: open cursor");
    }
    return 0;
}

static EVS_MUST_USE int txn_end(evs__emb *s, MDB_txn **txn, MDB_cursor **cur)
{
    *cur = NULL;
    int mrc = *txn ? mdb_txn_commit(*txn) : 0;
    *txn = NULL;
    return mrc ? evs__env_err(s->env, mrc, "index rebuild: commit") : 0;
}

static MDB_dbi kind_dbi(evs__emb *s, int k)
{
    return k == K_IDS ? s->db_event_ids
           : k == K_SE ? s->db_stream_events
           : k == K_TE ? s->db_tenant_events
                       : s->db_postings;
}

/*
 * The loads encode a chunk of entries (FLAT_ENTS) into a flat buffer of
 * LMDB keys and values first, then put the chunk: measured on 1 M
 * stream_events, the merge and the encoding interleaved with each put
 * made a put cost about 250 ns, against some 100 ns for the same puts in
 * a row after 25 ms of merging (LMDB's code and data stay in the caches).
 */
#define FLAT_ENTS 16384u

/*
 * Load the sub-database of kind k (not the postings) from the merge of
 * its sorted runs, with MDB_APPEND. Sets *dup_pos to the smallest
 * position whose event id an earlier position already has (what the
 * replay fails on first).
 */
static EVS_MUST_USE int load_kind(evs__emb *s, int k, mrg *m, uint64_t *dup_pos, prog *pg)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_dbi dbi = kind_dbi(s, k);
    size_t ks = k == K_TE ? 12 : 16, vs = k == K_TE ? 8 : 16;
    uint8_t *fb = malloc((size_t)FLAT_ENTS * 32);
    ent e, prev = {0, 0, 0, 0};
    int have_prev = 0, rc = 0, mrc, more = 1;
    size_t puts = 0, seen = 0;

    if (!fb) {
        rc = evs__err(EVS_ENOMEM, "index rebuild: out of memory");
        goto out;
    }
    if ((rc = txn_next(s, &txn, &cur, dbi)) < 0)
        goto out;
    while (more) {
        size_t nf = 0;
        while (nf < FLAT_ENTS && (rc = mrg_next(m, &e)) == 1) {
            if (k == K_IDS && have_prev && prev.k0 == e.k0 && prev.k1 == e.k1) {
                /* an event id indexed twice: the replay refuses the later one */
                if (e.k2 < *dup_pos)
                    *dup_pos = e.k2;
                continue;
            }
            uint8_t *p = fb + 32 * nf++;
            if (k == K_TE) {
                evs__put_be32(p, (uint32_t)e.k0);
                evs__put_be64(p + 4, e.k1);
                evs__put_le64(p + 16, e.v);
            } else { /* event_ids, stream_events */
                evs__put_be64(p, e.k0);
                evs__put_be64(p + 8, e.k1);
                evs__put_le64(p + 16, e.k2);
                evs__put_le64(p + 24, e.v);
            }
            prev = e;
            have_prev = 1;
        }
        if (rc < 0)
            goto out;
        more = rc == 1;
        if (puts >= LOAD_TXN_PUTS) {
            if ((rc = txn_next(s, &txn, &cur, dbi)) < 0)
                goto out;
            puts = 0;
        }
        for (size_t i = 0; i < nf; i++) {
            MDB_val key = {ks, fb + 32 * i}, val = {vs, fb + 32 * i + 16};
            if ((mrc = mdb_cursor_put(cur, &key, &val, MDB_APPEND)) != 0) {
                rc = evs__mdb_err(mrc, kind_name[k]);
                goto out;
            }
        }
        puts += nf;
        seen += nf;
        prog_ents(pg, seen);
    }
    rc = txn_end(s, &txn, &cur);
out:
    if (txn)
        mdb_txn_abort(txn);
    free(fb);
    return rc;
}

/*
 * Load the postings from the merge of their sorted runs: a chunk of whole
 * posting lists at a time (see FLAT_ENTS), each list in one MDB_MULTIPLE
 * put (the first duplicate makes the key, with MDB_APPEND; the rest
 * follow with MDB_APPENDDUP), so LMDB grows each list once instead of
 * per entry. Terms of one event that share a hash give one entry, as
 * mdb_put of an existing key and duplicate leaves it.
 */
typedef struct plist {
    uint8_t key[12];
    size_t off, n; /* its duplicates in the chunk's buffer */
} plist;

static EVS_MUST_USE int post_flush(evs__emb *s, MDB_txn **txn, MDB_cursor **cur,
                                   size_t *puts, const plist *l, size_t nl, uint8_t *dv)
{
    int rc, mrc;
    if (*puts >= LOAD_TXN_PUTS) { /* a new transaction at a new key only */
        if ((rc = txn_next(s, txn, cur, s->db_postings)) < 0)
            return rc;
        *puts = 0;
    }
    for (size_t i = 0; i < nl; i++) {
        MDB_val key = {12, (void *)l[i].key}, val = {16, dv + 16 * l[i].off};
        if ((mrc = mdb_cursor_put(*cur, &key, &val, MDB_APPEND)) != 0)
            return evs__mdb_err(mrc, "postings");
        if (l[i].n > 1) {
            MDB_val d[2] = {{16, dv + 16 * (l[i].off + 1)}, {l[i].n - 1, NULL}};
            if ((mrc = mdb_cursor_put(*cur, &key, d, MDB_MULTIPLE | MDB_APPENDDUP)) != 0)
                return evs__mdb_err(mrc, "postings");
            if (d[1].mv_size != l[i].n - 1)
                return evs__err(EVS_EBACKEND, "index: postings: %zu of %zu entries stored",
                                d[1].mv_size + 1, l[i].n);
        }
        *puts += l[i].n;
    }
    return 0;
}

static EVS_MUST_USE int load_postings(evs__emb *s, mrg *m, prog *pg)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    uint8_t *dv = NULL;
    plist *l = NULL;
    size_t ndv = 0, dv_cap = 0, nl = 0, l_cap = 0, puts = 0, seen = 0;
    ent e, prev = {0, 0, 0, 0};
    int have_prev = 0, rc;

    if ((rc = txn_next(s, &txn, &cur, s->db_postings)) < 0)
        goto out;
    while ((rc = mrg_next(m, &e)) == 1) {
        if (have_prev && prev.k0 == e.k0 && prev.k1 == e.k1) {
            if (prev.k2 == e.k2)
                continue;
            l[nl - 1].n++;
        } else {
            if (ndv >= FLAT_ENTS) { /* the chunk ends before a new list */
                if ((rc = post_flush(s, &txn, &cur, &puts, l, nl, dv)) < 0)
                    goto out;
                seen += ndv;
                prog_ents(pg, seen);
                ndv = nl = 0;
            }
            if (nl == l_cap && evs__grow(&l, &l_cap, nl + 1, sizeof(*l)) < 0) {
                rc = evs__err(EVS_ENOMEM, "index rebuild: out of memory");
                goto out;
            }
            evs__put_be32(l[nl].key, (uint32_t)e.k0);
            evs__put_be64(l[nl].key + 4, e.k1);
            l[nl].off = ndv;
            l[nl].n = 1;
            nl++;
        }
        if (ndv == dv_cap && evs__grow(&dv, &dv_cap, ndv + 1, 16) < 0) {
            rc = evs__err(EVS_ENOMEM, "index rebuild: out of memory");
            goto out;
        }
        evs__put_be64(dv + 16 * ndv, e.k2);
        evs__put_le64(dv + 16 * ndv + 8, e.v);
        ndv++;
        prev = e;
        have_prev = 1;
    }
    if (rc < 0)
        goto out;
    if (nl > 0 && (rc = post_flush(s, &txn, &cur, &puts, l, nl, dv)) < 0)
        goto out;
    rc = txn_end(s, &txn, &cur);
out:
    if (txn)
        mdb_txn_abort(txn);
    free(dv);
    free(l);
    return rc;
}

/* Load tenants and streams (their heads), sorted into key order. */
static EVS_MUST_USE int load_names(evs__emb *s, name_tab *tenants, name_tab *streams)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    name_ent **v = NULL;
    uint8_t kb[4 + EVS_MAX_STREAM_LEN + EVS_MAX_TENANT_LEN], vb[16];
    MDB_val key = {0, kb}, val = {0, vb};
    int rc = 0, mrc;
    size_t nmax = tenants->n > streams->n ? tenants->n : streams->n;

    if (nmax && !(v = malloc(nmax * sizeof(*v)))) {
        rc = evs__err(EVS_ENOMEM, "index rebuild: out of memory");
        goto out;
    }
    for (int pass = 0; pass < 2; pass++) {
        name_tab *tb = pass == 0 ? tenants : streams;
        size_t n = 0;
        for (size_t i = 0; i < tb->cap; i++)
            if (tb->t[i].used)
                v[n++] = &tb->t[i];
        if (n == 0)
            continue;
        qsort(v, n, sizeof(*v), name_cmp);
        for (size_t i = 0; i < n; i++) {
            if (i % LOAD_TXN_PUTS == 0 &&
                (rc = txn_next(s, &txn, &cur, pass == 0 ? s->db_tenants : s->db_streams)) < 0)
                goto out;
            if (pass == 0) {
                kb[0] = 't';
                memcpy(kb + 1, v[i]->name, v[i]->len);
                key.mv_size = 1 + (size_t)v[i]->len;
                evs__put_le32(vb, (uint32_t)v[i]->id);
                val.mv_size = 4;
            } else {
                evs__put_be32(kb, v[i]->tid);
                memcpy(kb + 4, v[i]->name, v[i]->len);
                key.mv_size = 4 + (size_t)v[i]->len;
                evs__put_le64(vb, v[i]->id);
                evs__put_le64(vb + 8, (uint64_t)v[i]->head);
                val.mv_size = 16;
            }
            if ((mrc = mdb_cursor_put(cur, &key, &val, MDB_APPEND)) != 0) {
                rc = evs__mdb_err(mrc, pass == 0 ? "tenants" : "streams");
                goto out;
            }
        }
        if ((rc = txn_end(s, &txn, &cur)) < 0)
            goto out;
    }
out:
    if (txn)
        mdb_txn_abort(txn);
    free(v);
    return rc;
}

/* ---- parsing one window of the log -------------------------------------- */

typedef struct build {
    evs__emb *s;
    uint64_t end_position, end_loc;
    uint64_t window;
    /* where the parse is */
    uint32_t seg, off;
    uint64_t next_pos;       /* next position expected */
    int scav_seen;           /* a scavenged segment was parsed: positions and
                                stream versions may have gaps (format.h) */
    /* ids and heads */
    name_tab tenants, streams;
    uint64_t next_sid;
    uint32_t next_tid;
    const char *last_tenant; /* a one-entry cache before the tenant table */
    size_t last_tenant_len;
    uint32_t last_tid;
    int64_t time_max, last_at;
    /* this window */
    ent *a[K_N];
    size_t n[K_N], cap[K_N];
    uint64_t *locs;
    uint64_t *lpos;          /* the position of each of locs (gaps after a
                                scavenge) */
    size_t nlocs;
    int64_t *tm_at;
    uint64_t *tm_pos;
    size_t ntm, tm_cap, tm_cap2;
    runfile runs[K_N];
    /* sort scratch: the main thread's (ids, streams, tenants), the
     * postings thread's */
    ent *mtmp, *ptmp;
    size_t mtmp_cap, ptmp_cap;
    /* the window's terms */
    term_slot *tt;
    size_t tt_cap;            /* a power of two */
    ent *terms, *terms_tmp;   /* k0 = k1 = hash, k2 = id, v = tenant id */
    size_t nterms, terms_cap, terms_tmp_cap;
    uint32_t *rank;           /* [term id] = place in key order */
    size_t rank_cap;
    /* the sorting thread: sorted[k] is set when kind k of the window is
     * in order (under mu) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int sorted[K_N];
    /* the parse, on the same thread before the sort: how far it is
     * (events and times entries of the window that the loader may take),
     * whether it ended, its error (code and message: evs_last_error() is
     * the thread's own); stop asks it to end early (under mu) */
    size_t pub_locs, pub_tm;
    int parsed, perr, stop;
    char pmsg[512];
    prog pg;
} build;

/* Ask for transparent huge pages for a big array: a few hundred page
 * faults instead of one per 4 KiB first touched. Advice only. */
static void advise_huge(void *p, size_t bytes)
{
    uintptr_t a = ((uintptr_t)p + (UINT64_C(1) << 21) - 1) & ~(uintptr_t)((UINT64_C(1) << 21) - 1);
    uintptr_t e = ((uintptr_t)p + bytes) & ~(uintptr_t)((UINT64_C(1) << 21) - 1);
    if (p && e > a)
        (void)madvise((void *)a, e - a, MADV_HUGEPAGE);
}

static EVS_MUST_USE int grow_ents(ent **a, size_t *cap, size_t need)
{
    size_t old = *cap;
    if (evs__grow(a, cap, need, sizeof(ent)) < 0)
        return evs__err(EVS_ENOMEM, "index rebuild: out of memory");
    if (*cap != old)
        advise_huge(*a, *cap * sizeof(ent));
    return 0;
}

static inline EVS_MUST_USE int push(build *b, int k, uint64_t k0, uint64_t k1, uint64_t k2,
                                     uint64_t v)
{
    int rc;
    if (b->n[k] == b->cap[k] && (rc = grow_ents(&b->a[k], &b->cap[k], b->n[k] + 1)) < 0)
        return rc;
    ent *e = &b->a[k][b->n[k]++];
    e->k0 = k0;
    e->k1 = k1;
    e->k2 = k2;
    e->v = v;
    return 0;
}

static EVS_MUST_USE int tt_grow(build *b)
{
    size_t ncap = b->tt_cap ? b->tt_cap * 2 : 4096;
    term_slot *nt = calloc(ncap, sizeof(*nt));
    if (!nt)
        return evs__err(EVS_ENOMEM, "index rebuild: out of memory");
    for (size_t i = 0; i < b->tt_cap; i++) {
        term_slot *o = &b->tt[i];
        if (!o->id1)
            continue;
        size_t j = (size_t)(((o->hash ^ o->tid) * UINT64_C(0x9E3779B97F4A7C15)) >> 20) & (ncap - 1);
        while (nt[j].id1)
            j = (j + 1) & (ncap - 1);
        nt[j] = *o;
    }
    free(b->tt);
    b->tt = nt;
    b->tt_cap = ncap;
    return 0;
}

static inline EVS_MUST_USE int push_term(build *b, uint32_t tid, unsigned kind,
                                         const char *text, size_t len, uint64_t pos,
                                         uint64_t loc)
{
    uint8_t key[12];
    int rc;
    evs__term_key(key, tid, kind, text, len);
    uint64_t h = evs__get_be64(key + 4);
    if ((b->nterms + 1) * 2 > b->tt_cap && (rc = tt_grow(b)) < 0)
        return rc;
    size_t j = (size_t)(((h ^ tid) * UINT64_C(0x9E3779B97F4A7C15)) >> 20) & (b->tt_cap - 1);
    for (;; j = (j + 1) & (b->tt_cap - 1)) {
        term_slot *t = &b->tt[j];
        if (t->id1 == 0) {
            if (b->nterms == b->terms_cap &&
                evs__grow(&b->terms, &b->terms_cap, b->nterms + 1, sizeof(ent)) < 0)
                return evs__err(EVS_ENOMEM, "index rebuild: out of memory");
            ent *e = &b->terms[b->nterms];
            e->k0 = e->k1 = h;
            e->k2 = b->nterms;
            e->v = tid;
            t->hash = h;
            t->tid = tid;
            t->id1 = (uint32_t)++b->nterms;
            return push(b, K_POST, b->nterms - 1, 0, pos, loc);
        }
        if (t->hash == h && t->tid == tid)
            return push(b, K_POST, t->id1 - 1, 0, pos, loc);
    }
}

/* Scratch for sorting the window's postings (before the thread starts:
 * the thread allocates nothing). */
static EVS_MUST_USE int post_sort_prepare(build *b)
{
    size_t n = b->n[K_POST], nt = b->nterms;
    int rc;
    if ((rc = grow_ents(&b->ptmp, &b->ptmp_cap, n)) < 0)
        return rc;
    if (evs__grow(&b->terms_tmp, &b->terms_tmp_cap, nt, sizeof(ent)) < 0 ||
        evs__grow(&b->rank, &b->rank_cap, nt, sizeof(uint32_t)) < 0)
        return evs__err(EVS_ENOMEM, "index rebuild: out of memory");
    return 0;
}

/* Sort the window's postings into key order (tenant id, hash, position)
 * and give them back their keys. */
static void post_sort(build *b)
{
    size_t nt = b->nterms, n = b->n[K_POST];
    /* the terms by (tenant, hash): by hash, then stably by tenant */
    ent *r = lsd_sort(b->terms, b->terms_tmp, nt);
    ent *other = r == b->terms ? b->terms_tmp : b->terms;
    for (size_t i = 0; i < nt; i++)
        r[i].k0 = r[i].v;
    ent *sorted = lsd_sort(r, other, nt);
    for (size_t i = 0; i < nt; i++)
        b->rank[sorted[i].k2] = (uint32_t)i;
    ent *a = b->a[K_POST];
    for (size_t i = 0; i < n; i++)
        a[i].k0 = b->rank[a[i].k0];
    sort_kind(&b->a[K_POST], &b->ptmp, &b->cap[K_POST], &b->ptmp_cap, n, 0);
    a = b->a[K_POST];
    for (size_t i = 0; i < n; i++) {
        const ent *tm = &sorted[a[i].k0];
        a[i].k0 = tm->v;
        a[i].k1 = tm->k1;
    }
}

/* The sorting thread: every kind of the window in turn, in the order the
 * loader takes them. Allocates nothing (post_sort_prepare did). */
static void *sort_main(void *arg)
{
    build *b = arg;
    uint64_t t = 0;
    phase(NULL, &t);
    for (int i = 0; i < K_N; i++) {
        int k = kind_order[i];
        if (k == K_POST)
            post_sort(b);
        else
            sort_kind(&b->a[k], &b->mtmp, &b->cap[k], &b->mtmp_cap, b->n[k], k == K_IDS);
        pthread_mutex_lock(&b->mu);
        b->sorted[k] = 1;
        pthread_cond_broadcast(&b->cv);
        pthread_mutex_unlock(&b->mu);
        phase(k == K_IDS ? "sorted event_ids" : k == K_SE ? "sorted stream_events"
              : k == K_TE ? "sorted tenant_events" : "sorted postings", &t);
    }
    return NULL;
}

static EVS_MUST_USE int parse_window(build *b);

/* The second thread, for one window: the parse, then the sort. The
 * loader takes positions and times as they are parsed (load_positions). */
static void *work_main(void *arg)
{
    build *b = arg;
    uint64_t t = 0;
    phase(NULL, &t);
    int rc = parse_window(b);
    if (rc == 0)
        rc = post_sort_prepare(b);
    pthread_mutex_lock(&b->mu);
    b->pub_locs = b->nlocs;
    b->pub_tm = b->ntm;
    b->parsed = 1;
    if (rc < 0) {
        b->perr = rc;
        snprintf(b->pmsg, sizeof(b->pmsg), "%s", evs_last_error());
        for (int k = 0; k < K_N; k++)
            b->sorted[k] = 1; /* nobody waits for a sort that will not come */
    }
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    phase("parse", &t);
    if (rc == 0)
        sort_main(b);
    return NULL;
}

static void wait_sorted(build *b, int k)
{
    pthread_mutex_lock(&b->mu);
    while (!b->sorted[k])
        pthread_cond_wait(&b->cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
}

/*
 * Load positions and times of the window the other thread parses (keys
 * already in order), as it parses them: both cursors in one transaction.
 * Returns when the parse has ended and all it found is loaded.
 */
static EVS_MUST_USE int load_positions(build *b, uint64_t first)
{
    evs__emb *s = b->s;
    MDB_txn *txn = NULL;
    MDB_cursor *cp = NULL, *ct = NULL;
    uint8_t kb[8], vb[8];
    MDB_val key = {8, kb}, val = {8, vb};
    size_t dp = 0, dt = 0, in_txn = 0, np, nt;
    int rc = 0, mrc, parsed;
    for (;;) {
        pthread_mutex_lock(&b->mu);
        while (!b->parsed && b->pub_locs == dp && b->pub_tm == dt)
            pthread_cond_wait(&b->cv, &b->mu);
        np = b->pub_locs;
        nt = b->pub_tm;
        parsed = b->parsed;
        rc = b->perr;
        pthread_mutex_unlock(&b->mu);
        if (rc < 0) {
            rc = evs__err(rc, "%s", b->pmsg);
            goto out;
        }
        if (np > dp || nt > dt) {
            if (!txn || in_txn >= LOAD_TXN_PUTS) {
                if ((rc = txn_next(s, &txn, &cp, s->db_positions)) < 0)
                    goto out;
                if ((mrc = mdb_cursor_open(txn, s->db_times, &ct)) != 0) {
                    rc = evs__mdb_err(mrc, "index rebuild: open cursor");
                    goto out;
                }
                in_txn = 0;
            }
            in_txn += (np - dp) + (nt - dt);
            for (; dp < np; dp++) {
                evs__put_be64(kb, b->lpos[dp]);
                evs__put_le64(vb, b->locs[dp]);
                if ((mrc = mdb_cursor_put(cp, &key, &val, MDB_APPEND)) != 0) {
                    rc = evs__mdb_err(mrc, "positions");
                    goto out;
                }
            }
            for (; dt < nt; dt++) {
                evs__time_key(kb, b->tm_at[dt]);
                evs__put_le64(vb, b->tm_pos[dt]);
                if ((mrc = mdb_cursor_put(ct, &key, &val, MDB_APPEND)) != 0) {
                    rc = evs__mdb_err(mrc, "times");
                    goto out;
                }
            }
        }
        if (parsed && dp == np && dt == nt)
            break;
    }
    rc = txn_end(s, &txn, &cp);
out:
    if (txn)
        mdb_txn_abort(txn);
    return rc;
}

static EVS_MUST_USE int bad_record(build *b, const char *what)
{
    return evs__err(EVS_ECORRUPT, "index rebuild: log segment %u offset %u: %s where "
                    "position %" PRIu64 " was expected", b->seg, b->off, what, b->next_pos);
}

/* Parse up to one window of records into b's arrays. */
static EVS_MUST_USE int parse_window(build *b)
{
    evs__emb *s = b->s;
    const uint8_t *m = evs__seg_map(s, b->seg);
    int rc;
    for (size_t k = 0; k < K_N; k++)
        b->n[k] = 0;
    b->nlocs = 0;
    b->ntm = 0;
    if (b->nterms) {
        memset(b->tt, 0, b->tt_cap * sizeof(*b->tt));
        b->nterms = 0;
    }
    while (b->next_pos <= b->end_position && b->nlocs < b->window) {
        if (!m)
            return bad_record(b, "a missing segment");
        int holes = evs__seg_scavenged(m);
        b->scav_seen |= holes;
        if (b->off + EVS_REC_FIXED > s->seg_size || evs__get_le32(m + b->off) == 0) {
            if (holes) {
                /* a hole where a scavenge removed records */
                uint32_t nx = evs__seg_skip_hole(m, b->off, s->seg_size);
                if (nx + EVS_REC_FIXED <= s->seg_size) {
                    if (nx == b->off) /* not zeros, not a record */
                        return bad_record(b, "no valid record");
                    b->off = nx;
                    continue;
                }
                /* its tail removed */
                if (b->seg < atomic_load(&s->nsegs) &&
                    s->segs[b->seg].first_position > b->next_pos)
                    b->next_pos = s->segs[b->seg].first_position;
                if (b->next_pos > b->end_position)
                    break;
            }
            /* the unused end of a full segment */
            if (b->seg >= atomic_load(&s->nsegs))
                return bad_record(b, "the end of the log");
            b->seg++;
            b->off = EVS_SEG_HEADER_SIZE;
            m = evs__seg_map(s, b->seg);
            continue;
        }
        const uint8_t *rec = m + b->off;
        uint32_t len = evs__get_le32(rec + EVS_REC_OFF_LEN);
        /* the next record's header, while this one is parsed */
        if (b->off + evs__pad8(len) + 128 <= s->seg_size) {
            __builtin_prefetch(rec + evs__pad8(len));
            __builtin_prefetch(rec + evs__pad8(len) + 64);
        }
        if (evs__get_le32(rec) != EVS_REC_MAGIC || len < EVS_REC_FIXED ||
            len > s->seg_size - b->off)
            return bad_record(b, "no valid record");
        uint64_t pos = evs__get_le64(rec + EVS_REC_OFF_POSITION);
        if (holes && pos > b->next_pos && pos <= b->end_position)
            b->next_pos = pos; /* the records before it were removed */
        if (pos != b->next_pos)
            return bad_record(b, "a record out of sequence");
        uint64_t loc = evs__loc(b->seg, b->off);
        size_t tl = evs__get_le16(rec + EVS_REC_OFF_TENANT_LEN);
        size_t sl = evs__get_le16(rec + EVS_REC_OFF_STREAM_LEN);
        const char *tenant = (const char *)rec + EVS_REC_OFF_VAR;
        const char *stream = tenant + tl + 1;
        int64_t version = (int64_t)evs__get_le64(rec + EVS_REC_OFF_VERSION);
        int64_t at = (int64_t)evs__get_le64(rec + EVS_REC_OFF_RECORDED_AT);

        /* tenant: first seen, next id */
        uint32_t tid;
        if (b->last_tenant && tl == b->last_tenant_len && memcmp(tenant, b->last_tenant, tl) == 0) {
            tid = b->last_tid;
        } else {
            name_ent *te = tab_get(&b->tenants, 0, tenant, tl);
            if (!te)
                return evs__err(EVS_ENOMEM, "index rebuild: out of memory");
            if (te->id == 0)
                te->id = b->next_tid++;
            tid = (uint32_t)te->id;
            b->last_tenant = tenant;
            b->last_tenant_len = tl;
            b->last_tid = tid;
        }
        /* stream: first seen, next id; versions follow the head */
        uint64_t sid = 0;
        if (sl == 0) {
            if (version != EVS_NO_STREAM)
                return evs__err(EVS_ECORRUPT, "log record at position %llu has no stream "
                                "but version %lld", (unsigned long long)pos,
                                (long long)version);
        } else {
            name_ent *se = tab_get(&b->streams, tid, stream, sl);
            if (!se)
                return evs__err(EVS_ENOMEM, "index rebuild: out of memory");
            if (se->id == 0)
                se->id = b->next_sid++;
            /* a tombstone follows any version (evs_stream_tombstone) */
            /* after a scavenge, a stream's versions may have gaps (only
             * ever upward) */
            if (version != se->head + 1 &&
                !(version == EVS__TOMBSTONE_VERSION && se->head != EVS__TOMBSTONE_VERSION) &&
                !(b->scav_seen && version > se->head))
                return evs__err(EVS_ECORRUPT,
                                "log record at position %llu has version %lld of stream %s, "
                                "but the stream is at %lld", (unsigned long long)pos,
                                (long long)version, stream, (long long)se->head);
            se->head = version;
            sid = se->id;
            if ((rc = push(b, K_SE, sid, (uint64_t)version, pos, loc)) < 0)
                return rc;
        }
        b->lpos[b->nlocs] = pos;
        b->locs[b->nlocs++] = loc;
        if (at > b->time_max) {
            /* at most one per event: the arrays have a window's room */
            b->tm_at[b->ntm] = at;
            b->tm_pos[b->ntm++] = pos;
            b->time_max = at;
        }
        b->last_at = at;
        const uint8_t *id = rec + EVS_REC_OFF_ID;
        if ((rc = push(b, K_IDS, evs__get_be64(id), evs__get_be64(id + 8), pos, loc)) < 0)
            return rc;
        /* system events (checkpoints): found through their stream only */
        if (!evs__is_system_stream(stream, sl)) {
            if ((rc = push(b, K_TE, tid, pos, 0, loc)) < 0)
                return rc;
            evs__terms t;
            unsigned kind;
            const char *text;
            size_t tlen;
            evs__terms_init(&t, rec);
            while (evs__terms_next(&t, &kind, &text, &tlen))
                if ((rc = push_term(b, tid, kind, text, tlen, pos, loc)) < 0)
                    return rc;
        }
        b->next_pos++;
        b->off += evs__pad8(len);
        if ((b->nlocs & 8191) == 0) { /* let the loader take what is parsed */
            pthread_mutex_lock(&b->mu);
            b->pub_locs = b->nlocs;
            b->pub_tm = b->ntm;
            int stop = b->stop;
            pthread_cond_broadcast(&b->cv);
            pthread_mutex_unlock(&b->mu);
            if (stop)
                return evs__err(EVS_EINVAL, "index rebuild: stopped");
        }
    }
    if (b->next_pos > b->end_position && evs__loc(b->seg, b->off) != b->end_loc)
        return evs__err(EVS_ECORRUPT, "index rebuild: position %" PRIu64 " ends at "
                        "segment %u offset %u, not at segment %u offset %u",
                        b->end_position, b->seg, b->off, evs__loc_seg(b->end_loc),
                        evs__loc_off(b->end_loc));
    return 0;
}

/* ---- the build ------------------------------------------------------------ */

static EVS_MUST_USE int meta_put(evs__emb *s, uint64_t applied, uint64_t loc, int seq,
                                 int check_empty)
{
    MDB_txn *txn = NULL;
    int rc = 0, mrc;
    if ((mrc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
        return evs__mdb_err(mrc, "index rebuild: begin");
    if (check_empty) {
        MDB_dbi dbis[] = {s->db_tenants, s->db_streams, s->db_stream_events,
                          s->db_positions, s->db_tenant_events, s->db_event_ids,
                          s->db_postings, s->db_times};
        for (size_t i = 0; i < sizeof(dbis) / sizeof(dbis[0]); i++) {
            MDB_stat st;
            if ((mrc = mdb_stat(txn, dbis[i], &st)) != 0) {
                rc = evs__mdb_err(mrc, "index rebuild: stat");
                goto out;
            }
            if (st.ms_entries != 0) {
                rc = evs__err(EVS_EINVAL, "index rebuild: the index is not empty");
                goto out;
            }
        }
    }
    if ((rc = evs__idx_applied_put(txn, s, applied, loc)) < 0 ||
        (seq && (rc = evs__idx_seq_put(txn, s)) < 0))
        goto out;
    mrc = mdb_txn_commit(txn);
    txn = NULL;
    if (mrc != 0)
        rc = evs__env_err(s->env, mrc, "index rebuild: commit");
out:
    if (txn)
        mdb_txn_abort(txn);
    return rc;
}

static uint64_t window_size(void)
{
    const char *e = getenv("EVS_DEBUG_REBUILD_WINDOW");
    long long w = e ? atoll(e) : 0;
    /* at most 2^26 events: a window's term ids and ranks fit 32 bits */
    return w >= 1 ? (uint64_t)(w < (1LL << 26) ? w : (1LL << 26)) : WINDOW_DEFAULT;
}

/* Load every sorted kind: the merge of the file runs and the last window. */
static EVS_MUST_USE int load_all(build *b)
{
    int rc = 0;
    uint64_t dup_pos = UINT64_MAX;
    rd *r = NULL;
    mrg m = {0};
    double base = PROG_PARSE;
    for (int ki = 0; ki < K_N && rc == 0; ki++) {
        int k = kind_order[ki];
        uint64_t t = 0;
        phase(NULL, &t);
        wait_sorted(b, k);
        phase("wait for the sort", &t);
        runfile *rf = &b->runs[k];
        size_t nr = rf->nruns + 1;
        if (!(r = calloc(nr, sizeof(*r)))) {
            rc = evs__err(EVS_ENOMEM, "index rebuild: out of memory");
            break;
        }
        for (size_t i = 0; i < rf->nruns; i++) {
            r[i].fd = rf->fd;
            r[i].off = rf->start[i];
            r[i].left = rf->count[i];
            if (!(r[i].own = malloc(RUN_BUF_ENTS * sizeof(ent)))) {
                rc = evs__err(EVS_ENOMEM, "index rebuild: out of memory");
                break;
            }
        }
        r[nr - 1].buf = b->a[k];
        r[nr - 1].n = b->n[k];
        r[nr - 1].fd = -1;
        m.r = r;
        m.nr = nr;
        b->pg.base = base;
        b->pg.span = kind_share[k];
        b->pg.kents = rf->len + b->n[k];
        b->pg.next = 1u << 18;
        if (rc == 0 && (rc = mrg_init(&m)) == 0)
            rc = k == K_POST ? load_postings(b->s, &m, &b->pg)
                             : load_kind(b->s, k, &m, &dup_pos, &b->pg);
        base += kind_share[k];
        if (rc == 0)
            prog_at(&b->pg, base);
        phase(kind_name[k], &t);
        for (size_t i = 0; i < nr; i++)
            free(r[i].own);
        free(r);
        r = NULL;
        free(m.heap);
        m.heap = NULL;
        /* the next kinds have their own runs: free what this one needed */
        if (rf->fd >= 0) {
            close(rf->fd);
            rf->fd = -1;
        }
        if (rc == 0 && k == K_IDS && dup_pos != UINT64_MAX)
            rc = evs__err(EVS_ECORRUPT, "index: event id at position %llu is "
                          "already indexed", (unsigned long long)dup_pos);
    }
    return rc;
}

/* EVS_DEBUG_REBUILD set: the time of each phase on stderr. */
static void phase(const char *what, uint64_t *t)
{
    static _Atomic int on = -1; /* both threads come here */
    if (atomic_load(&on) < 0)
        atomic_store(&on, getenv("EVS_DEBUG_REBUILD") != NULL);
    uint64_t now = evs__mono_ns();
    if (on && what)
        fprintf(stderr, "rebuild: %-26s %8.3f s\n", what, (double)(now - *t) / 1e9);
    *t = now;
}

int evs__idx_bulk_build(evs__emb *s, uint64_t end_position, uint64_t end_loc)
{
    uint64_t t = 0;
    phase(NULL, &t);
    build b;
    int rc = 0, sorter_on = 0;
    pthread_t sorter;

    memset(&b, 0, sizeof(b));
    b.s = s;
    b.end_position = end_position;
    b.end_loc = end_loc;
    b.window = window_size();
    b.seg = 1;
    b.off = EVS_SEG_HEADER_SIZE;
    b.next_pos = 1;
    b.next_sid = 1;
    b.next_tid = 1;
    b.time_max = INT64_MIN;
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.cv, NULL);
    for (int k = 0; k < K_N; k++) {
        b.runs[k].fd = -1;
        b.sorted[k] = 1; /* nothing to sort before the first window */
    }

    /* Until the end, "applied" is (1, location 0): no record is at
     * location 0, so an open that finds a half-built index (a crash, a
     * failure) sees its end disagree with the log and rebuilds it; and
     * position 1, which recovery may take as acknowledged, is in the log. */
    if ((rc = meta_put(s, end_position ? 1 : 0, 0, 0, 1)) < 0)
        return rc;

    size_t win = end_position < b.window ? (size_t)end_position : (size_t)b.window;
    if (win > 0) {
        if (!(b.locs = malloc(win * sizeof(uint64_t))) ||
            !(b.lpos = malloc(win * sizeof(uint64_t)))) {
            rc = evs__err(EVS_ENOMEM, "index rebuild: out of memory");
            goto out;
        }
        for (int k = 0; k < K_POST; k++) {
            if (!(b.a[k] = malloc(win * sizeof(ent)))) {
                rc = evs__err(EVS_ENOMEM, "index rebuild: out of memory");
                goto out;
            }
            b.cap[k] = win;
        }
        if (!(b.mtmp = malloc(win * sizeof(ent)))) {
            rc = evs__err(EVS_ENOMEM, "index rebuild: out of memory");
            goto out;
        }
        b.mtmp_cap = win;
        if (!(b.tm_at = malloc(win * sizeof(int64_t))) ||
            !(b.tm_pos = malloc(win * sizeof(uint64_t)))) {
            rc = evs__err(EVS_ENOMEM, "index rebuild: out of memory");
            goto out;
        }
        b.tm_cap = b.tm_cap2 = win;
        advise_huge(b.mtmp, win * sizeof(ent));
        advise_huge(b.locs, win * sizeof(uint64_t));
        for (int k = 0; k < K_POST; k++)
            advise_huge(b.a[k], win * sizeof(ent));
    }
    b.pg.s = s;
    b.pg.total = end_position;
    prog_at(&b.pg, 0.0);
    while (b.next_pos <= end_position) {
        uint64_t first = b.next_pos;
        /* the parse, then the sort, on a second thread while this one
         * loads positions and times as they are parsed, then (every
         * window but the last) writes the sorted runs */
        memset(b.sorted, 0, sizeof(b.sorted));
        b.parsed = 0;
        b.perr = 0;
        b.pub_locs = b.pub_tm = 0;
        sorter_on = pthread_create(&sorter, NULL, work_main, &b) == 0;
        if (!sorter_on)
            work_main(&b);
        if ((rc = load_positions(&b, first)) < 0)
            goto out;
        phase("load positions, times", &t);
        prog_at(&b.pg, PROG_PARSE * (double)(b.next_pos - 1) / (double)end_position);
        if (b.next_pos > end_position)
            break; /* the last window stays in memory for the merge */
        for (int ki = 0; ki < K_N; ki++) {
            int k = kind_order[ki];
            wait_sorted(&b, k);
            if ((rc = run_write(&b.runs[k], s->dir, b.a[k], b.n[k])) < 0)
                goto out;
        }
        if (sorter_on)
            pthread_join(sorter, NULL);
        sorter_on = 0;
        phase("write runs", &t);
    }
    if ((rc = load_all(&b)) < 0)
        goto out;
    phase("load sorted kinds", &t);
    if ((rc = load_names(s, &b.tenants, &b.streams)) < 0)
        goto out;
    phase("load tenants, streams", &t);
    s->next_stream_id = b.next_sid;
    s->next_tenant_id = b.next_tid;
    s->time_max_us = b.time_max;
    if (end_position > 0)
        s->last_stamp = b.last_at;
    if ((rc = meta_put(s, end_position, end_loc, 1, 0)) == 0)
        prog_at(&b.pg, 2.0);
out:
    if (sorter_on) {
        pthread_mutex_lock(&b.mu);
        b.stop = 1; /* a parse still running ends at its next publication */
        pthread_mutex_unlock(&b.mu);
        pthread_join(sorter, NULL);
    }
    for (int k = 0; k < K_N; k++) {
        free(b.a[k]);
        if (b.runs[k].fd >= 0)
            close(b.runs[k].fd);
        free(b.runs[k].start);
        free(b.runs[k].count);
    }
    free(b.locs);
    free(b.lpos);
    free(b.mtmp);
    free(b.ptmp);
    free(b.tt);
    free(b.terms);
    free(b.terms_tmp);
    free(b.rank);
    free(b.tm_at);
    free(b.tm_pos);
    free(b.tenants.t);
    free(b.streams.t);
    pthread_mutex_destroy(&b.mu);
    pthread_cond_destroy(&b.cv);
    return rc;
}
