/*
 * index.c -- the derived indexes in LMDB (layout: format.h).
 *
 * The environment is opened with MDB_NOSYNC: an index commit is never
 * flushed on its own, because the log already holds every committed event
 * durably and the index records how far it got ("applied"); opening the
 * store replays the log past that point. LMDB stays consistent across a
 * process crash (the page cache holds every write). After an OS crash, or
 * in a copy, its file may mix old and new pages, which LMDB cannot detect:
 * then the index is not read at all but deleted and rebuilt from the log
 * (state.c decides; rebuild.c builds).
 */
#include "embedded/embedded.h"
#include "util/util.h"

#include <errno.h>
#include <stdlib.h>
#include <xxhash.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

static _Thread_local int map_full; /* evs__idx_map_full_take */

int evs__idx_map_full_take(void)
{
    int f = map_full;
    map_full = 0;
    return f;
}

int evs__mdb_err(int mrc, const char *what)
{
    int rc = EVS_EBACKEND;
    if (mrc == MDB_MAP_FULL)
        map_full = 1;
    if (mrc == MDB_MAP_FULL || mrc == ENOSPC)
        rc = EVS_ENOSPC;
    else if (mrc == ENOMEM)
        rc = EVS_ENOMEM;
    else if (mrc == MDB_CORRUPTED || mrc == MDB_PAGE_NOTFOUND || mrc == MDB_INVALID)
        rc = EVS_ECORRUPT;
    else if (mrc == EIO)
        rc = EVS_EIO;
    return evs__err(rc, "index: %s: %s", what, mdb_strerror(mrc));
}

int evs__env_err(MDB_env *env, int mrc, const char *what)
{
    /* LMDB reports a short pwrite (the disk filled half-way through a
     * commit) as EIO: ask the filesystem whether it is full. */
    struct statvfs vfs;
    int fd;
    if ((mrc == EIO || mrc == ENOSPC) && mdb_env_get_fd(env, &fd) == 0 &&
        fstatvfs(fd, &vfs) == 0 && (uint64_t)vfs.f_bavail * vfs.f_frsize < (1u << 20))
        return evs__err(EVS_ENOSPC, "index: %s: the disk is full (%s); free disk space "
                        "and retry", what, mdb_strerror(mrc));
    return evs__mdb_err(mrc, what);
}

/*
 * Read-only stores. An LMDB reader registers in the environment's reader
 * table, lock.mdb, so that a writer does not reuse the pages it reads: a
 * user who cannot write that file (a store of another user, `chmod -R
 * a-w`, a read-only mount) cannot open the environment at all (EACCES;
 * LMDB itself goes lockless on EROFS, unsafely if a writer works through
 * another mount). Such an open reads with MDB_NOLOCK instead, which is
 * safe only while no process writes the store: so it takes the writer's
 * <dir>/LOCK shared and holds it until it closes. A writer that holds it
 * makes this open fail with EVS_EBUSY; a writer that comes later waits
 * (busy_timeout_ms) or fails with EVS_EBUSY. Decided by trying to open
 * lock.mdb for writing, as LMDB would, without creating anything a
 * read-only open could not.
 *
 *   lock.mdb writable ──▶ an ordinary MDB_RDONLY reader (beside a writer)
 *   EACCES / EROFS ─────▶ flock(LOCK, LOCK_SH) ──▶ MDB_RDONLY|MDB_NOLOCK
 */
int evs__reader_nolock(evs__emb *s, const char *name, int *nolock)
{
    char path[4096];
    *nolock = 0;
    snprintf(path, sizeof(path), "%s/%s/lock.mdb", s->dir, name);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
        close(fd);
        return 0;
    }
    int e = errno;
    if (e == ENOENT) {
        /* LMDB would create it: can it? (the directory's write permission) */
        snprintf(path, sizeof(path), "%s/%s", s->dir, name);
        if (faccessat(AT_FDCWD, path, W_OK, AT_EACCESS) == 0)
            return 0;
        e = errno;
        snprintf(path, sizeof(path), "%s/%s/lock.mdb", s->dir, name);
    }
    if (e != EACCES && e != EROFS && e != EPERM)
        return 0; /* not a permission problem: LMDB's open says what it is */
    *nolock = 1;
    if (s->nolock)
        return 0; /* LOCK is held already (the index before the snapshots) */
    char lock[4096];
    snprintf(lock, sizeof(lock), "%s/LOCK", s->dir);
    int lfd = open(lock, O_RDONLY | O_CLOEXEC);
    if (lfd < 0) {
        int le = errno;
        return evs__err(EVS_EREADONLY, "store %s: %s cannot be written (%s), so this "
                        "read-only open must keep writers out while it reads, and it "
                        "cannot open %s to do so: %s", s->dir, path, strerror(e), lock,
                        strerror(le));
    }
    if (flock(lfd, LOCK_SH | LOCK_NB) != 0) {
        int le = errno;
        close(lfd);
        if (le == EWOULDBLOCK)
            return evs__err(EVS_EBUSY, "store %s is open for writing in another process, "
                            "and this read-only open cannot read beside it: %s cannot "
                            "be written (%s), so it cannot take part in the index's "
                            "reader locks; read it after the writer has closed it, or "
                            "as a user who can write the store", s->dir, path,
                            strerror(e));
        return evs__err(EVS_EIO, "cannot lock %s: %s", lock, strerror(le));
    }
    s->lock_fd = lfd;
    s->nolock = 1;
    snprintf(s->notify_why, sizeof(s->notify_why), "this read-only open cannot write "
             "%s/lock.mdb (%s), so it reads without the index's reader locks and keeps "
             "every writer out while it is open: no commit can come", name, strerror(e));
    return 0;
}

/*
 * The map. The writer's environment has MDB_WRITEMAP, and LMDB then makes
 * data.mdb exactly as large as the map (ftruncate): a map sized for the
 * largest index (it was 64 GiB) is a file whose apparent size is 64 GiB
 * for five events, which cp, tar and backups without sparse support copy
 * byte by byte. So the map starts at EVS_IDX_MAP_MIN, or the index's size
 * rounded up, and grows with the index:
 *
 *   64 MiB → 128 → 256 → 512 MiB → 1 GiB → 2 GiB → 3 GiB → ...
 *   (doubling up to EVS_IDX_MAP_STEP, then that step at a time)
 *
 * so data.mdb's apparent size stays within 2x (small) or 1 GiB (large) of
 * what the index uses. The writer grows it ahead of a group whose likely
 * growth would not fit (evs__idx_reserve), and again whenever LMDB says
 * MDB_MAP_FULL anyway (writer.c redoes the txn). Growing only extends the
 * file (sparse: no block is needed, no disk space is asked) and remaps it:
 * the blocks behind the index's end stay reserved by evs__idx_reserve, so
 * a full disk is still an EVS_ENOSPC before anything is written.
 *
 * A remap moves the map: no thread of this process may be reading LMDB
 * pages meanwhile (mdb_env_set_mapsize's rule). Readers pass the gate: a
 * counter per slot, incremented on the way in, decremented on the way
 * out; the remapping thread closes the gate and waits until every counter
 * is back to zero, remaps, bumps the gate's generation and opens it. A
 * reader that finds it closed steps back and waits on the gate's lock.
 * Readers hold the gate only while they touch LMDB (one read, one
 * iterator step), never while waiting for anything, so a remap waits
 * microseconds. An iterator's transaction lives between its calls, outside
 * the gate: a transaction holds no pointer into the map, its cursors do,
 * so after a remap (the generation changed) the cursors are re-sought.
 *
 * Readers in other processes (read-only opens) map the file at the size
 * the writer's last commit recorded; when the index outgrows it, LMDB
 * refuses their next transaction with MDB_MAP_RESIZED, and they adopt the
 * new size (mdb_env_set_mapsize(env, 0)) through the same gate and retry.
 *
 * Recovery and rebuild write without MDB_WRITEMAP (pwrite per page): their
 * file grows with what they write, whatever the map; they keep a large map
 * (address space only) and the writer's reopen sets its own.
 */

static _Thread_local unsigned gate_slot = UINT32_MAX;
static _Atomic unsigned gate_slots;

static unsigned my_slot(void)
{
    if (gate_slot == UINT32_MAX)
        gate_slot = atomic_fetch_add(&gate_slots, 1) % EVS_GATE_SLOTS;
    return gate_slot;
}

static void gate_init(evs__gate *g)
{
    if (!g->lock_made) {
        pthread_mutex_init(&g->lock, NULL);
        g->lock_made = 1;
    }
}

int evs__gate_enter(evs__gate *g)
{
    unsigned i = my_slot();
    for (;;) {
        /* seq_cst both: either the remapper sees this count or this
         * thread sees the gate closed (Dekker) */
        atomic_fetch_add(&g->slot[i].n, 1);
        if (!atomic_load(&g->closed))
            break;
        atomic_fetch_sub(&g->slot[i].n, 1);
        pthread_mutex_lock(&g->lock); /* held by the remapper until it is done */
        pthread_mutex_unlock(&g->lock);
    }
    if (atomic_load(&g->broken)) {
        atomic_fetch_sub(&g->slot[i].n, 1);
        return evs__err(EVS_EBACKEND, "index: growing the index's map failed and the map "
                        "is gone; close and reopen the store");
    }
    return 0;
}

void evs__gate_leave(evs__gate *g)
{
    /* another thread's slot when an iterator moved threads: only the sum
     * of the counters means something */
    atomic_fetch_sub(&g->slot[my_slot()].n, 1);
}

/* Close the gate and wait until no reader is inside. */
static void gate_close(evs__gate *g)
{
    pthread_mutex_lock(&g->lock);
    atomic_store(&g->closed, 1);
    for (unsigned spins = 0;; spins++) {
        uint32_t sum = 0;
        for (unsigned i = 0; i < EVS_GATE_SLOTS; i++)
            sum += atomic_load(&g->slot[i].n);
        if (sum == 0)
            break;
        if (spins < 64)
            sched_yield();
        else
            nanosleep(&(struct timespec){0, 20000}, NULL);
    }
}

static void gate_open(evs__gate *g)
{
    atomic_fetch_add(&g->gen, 1);
    atomic_store(&g->closed, 0);
    pthread_mutex_unlock(&g->lock);
}

/* The series' first size: EVS_IDX_MAP_MIN; tests set a smaller one with
 * EVS_DEBUG_INDEX_MAP_MIN=bytes (at least 256 KiB), read when a store is
 * opened, to see the map grow many times on a few thousand events. */
static uint64_t map_min(void)
{
    const char *e = getenv("EVS_DEBUG_INDEX_MAP_MIN");
    unsigned long long v = e ? strtoull(e, NULL, 10) : 0;
    return v >= (256u << 10) && v <= EVS_IDX_MAP_MIN ? v & ~(uint64_t)4095
                                                       : EVS_IDX_MAP_MIN;
}

/* The size of the series (see above) that holds want bytes. */
static uint64_t map_target(const evs__emb *s, uint64_t want)
{
    uint64_t m = s->idx_map_min;
    while (m < want)
        m += m < EVS_IDX_MAP_STEP ? m : EVS_IDX_MAP_STEP;
    return m;
}

/* Remap env at size (0: the size the writer recorded), the gate closed.
 * What can fail is tried first, so that LMDB's remap, which leaves no map
 * behind when it fails, does not: the address space, and (the writer) the
 * file's new size. LMDB unmaps the old map before it maps the new one, so
 * the new map needs only what it adds beyond the old (under ulimit -v, a
 * probe of the whole new size beside the old map would refuse what LMDB
 * can do). A reader adopting the writer's size (size 0) probes for
 * data.mdb's size: the writer's file is as large as its map.
 *
 * If LMDB's remap fails all the same (its own ftruncate or mmap: an I/O
 * error, another process' mapping), the environment has no map and
 * pointers into the old one (mdb_env_info, mdb_env_stat and every
 * transaction would read them): the gate is marked broken, readers fail
 * (evs__gate_enter), the writer fails the store (writer.c, commit_group)
 * and touches the environment no more, and closing leaves it alone
 * (store.c). Only a reopen helps. */
static EVS_MUST_USE int remap(evs__emb *s, uint64_t size)
{
    uint64_t probe = size;
    int fd;
    struct stat fst;
    if (!size && mdb_env_get_fd(s->env, &fd) == 0 && fstat(fd, &fst) == 0)
        probe = (uint64_t)fst.st_size;
    if (probe > s->idx_mapsize) {
        uint64_t more = probe - s->idx_mapsize;
        void *p = mmap(NULL, more, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                       -1, 0);
        if (p == MAP_FAILED)
            return evs__err(EVS_ENOMEM, "index: cannot map %llu MiB more for the index of "
                            "%s (%s); raise the address-space limit (ulimit -v)",
                            (unsigned long long)(more >> 20), s->dir, strerror(errno));
        munmap(p, more);
    }
    if (size) {
        if (s->idx_fd >= 0 && ftruncate(s->idx_fd, (off_t)size) != 0) {
            int e = errno;
            return evs__err(e == ENOSPC || e == EFBIG ? EVS_ENOSPC : EVS_EIO,
                            "index: cannot grow %s/index/data.mdb to %llu MiB: %s; nothing "
                            "was written", s->dir, (unsigned long long)(size >> 20),
                            strerror(e));
        }
    }
    int mrc = mdb_env_set_mapsize(s->env, (size_t)size);
    if (mrc != 0) {
        atomic_store(&s->idx_gate.broken, 1);
        return evs__err(EVS_EBACKEND, "index: remapping the index of %s failed (%s); close "
                        "and reopen the store", s->dir, mdb_strerror(mrc));
    }
    MDB_envinfo info;
    if (mdb_env_info(s->env, &info) == 0)
        s->idx_mapsize = info.me_mapsize;
    return 0;
}

int evs__idx_map_grow(evs__emb *s, uint64_t want)
{
    if (want <= s->idx_mapsize)
        return 0;
    gate_close(&s->idx_gate);
    int rc = s->idx_gate.broken ? evs__err(EVS_EBACKEND, "index: the index's map is gone; "
                                           "close and reopen the store")
                                : remap(s, map_target(s, want));
    gate_open(&s->idx_gate);
    return rc;
}

/* A reader's MDB_MAP_RESIZED: adopt the writer's size. Outside the gate. */
static EVS_MUST_USE int adopt_size(evs__emb *s)
{
    gate_close(&s->idx_gate);
    int rc = s->idx_gate.broken ? 0 : remap(s, 0);
    gate_open(&s->idx_gate);
    return rc;
}

/*
 * Long reads. LMDB reuses a page freed by a commit only once no reader's
 * snapshot is older than that commit: a read transaction held across a
 * long read beside a writer keeps every page the writer rewrites
 * meanwhile, and the index grows by all of them (a read-only verify beside
 * a writer: 20x). So long reads (iterators in store.c, verify in
 * recovery.c) renew their transaction every EVS_READ_RENEW_EVENTS events
 * or EVS_READ_RENEW_MS (mdb_txn_reset + mdb_txn_renew, evs__rtxn_renew)
 * and re-seek their cursors where they were. The sub-databases of events
 * (positions, tenant_events, stream_events, postings, event_ids) only ever
 * gain entries (recovery, which drops them, runs before any read), so a
 * newer snapshot holds every entry of an older one: bounded by the
 * position that was the head when the read began, and with the stream
 * heads and tenant ids it looked up then, a read returns exactly what its
 * first snapshot would have.
 */

int evs__rtxn_begin(evs__emb *s, MDB_txn **txn)
{
    for (int tries = 0;; tries++) {
        int rc = evs__gate_enter(&s->idx_gate);
        if (rc < 0)
            return rc;
        int mrc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn);
        if (mrc == 0)
            return 0;
        evs__gate_leave(&s->idx_gate);
        if (mrc != MDB_MAP_RESIZED || tries == 16)
            return evs__mdb_err(mrc, "begin read");
        if ((rc = adopt_size(s)) < 0)
            return rc;
    }
}

void evs__rtxn_end(evs__emb *s, MDB_txn *txn)
{
    if (txn)
        mdb_txn_abort(txn);
    evs__gate_leave(&s->idx_gate);
}

int evs__rtxn_renew(evs__emb *s, MDB_txn *txn)
{
    mdb_txn_reset(txn);
    for (int tries = 0;; tries++) {
        int mrc = mdb_txn_renew(txn);
        if (mrc == 0)
            return 0;
        if (mrc != MDB_MAP_RESIZED || tries == 16)
            return evs__mdb_err(mrc, "renew read");
        evs__gate_leave(&s->idx_gate);
        int rc = adopt_size(s);
        int erc = evs__gate_enter(&s->idx_gate);
        if (erc < 0) {
            /* the map is gone: stay "inside" for the caller's leave */
            atomic_fetch_add(&s->idx_gate.slot[my_slot()].n, 1);
            return erc;
        }
        if (rc < 0)
            return rc;
    }
}

int evs__idx_open(evs__emb *s, int readonly, int writemap)
{
    char path[4096];
    int mrc;
    MDB_txn *txn = NULL;
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, evs__term_hash_debug_init);
    s->idx_map_min = map_min();
    const char *gw = getenv("EVS_DEBUG_GROUP_WAIT");
    s->debug_group_wait = gw ? strtoul(gw, NULL, 10) : 0;
    snprintf(path, sizeof(path), "%s/index", s->dir);
    if (!readonly && mkdir(path, 0755) != 0 && errno != EEXIST)
        return evs__err(EVS_EIO, "create %s: %s", path, strerror(errno));
    /*
     * writemap: the writer's environment, after recovery. Dirty pages are
     * written in place in a writable map, so a commit costs a few µs
     * instead of a pwrite per page (measured without it: +140 µs per group
     * commit, -30 % appends/s at 64 threads; docs/PERFORMANCE.md). The
     * file is then sparse (its apparent size is the map), and a store into
     * a page whose block the filesystem cannot allocate is a SIGBUS: so the
     * writer reserves blocks ahead of every group (evs__idx_reserve) and
     * refuses a group with EVS_ENOSPC before it writes anything.
     * Recovery and rebuild run without it (pages written with pwrite at
     * commit: a full disk is an error return), then the environment is
     * reopened. The writer's map starts small and grows ("The map"
     * above); readers take the size the writer recorded; recovery and
     * rebuild (no writemap: the file grows by their writes) map 64 GiB of
     * address space, roughly 400 M events. Where the address space is
     * limited (ulimit -v, valgrind) a 64 GiB map fails: then they try
     * smaller ones, down to 1 GiB.
     */
    unsigned flags = MDB_NOSYNC | MDB_NOMETASYNC | MDB_NOTLS | MDB_NORDAHEAD;
    if (readonly) {
        int nolock, rc;
        if ((rc = evs__reader_nolock(s, "index", &nolock)) < 0)
            return rc;
        flags |= MDB_RDONLY | (nolock ? MDB_NOLOCK : 0);
    } else if (writemap)
        flags |= MDB_WRITEMAP;
    gate_init(&s->idx_gate);
    /* 0: the size recorded in the file; the writer's starts at the
     * smallest, which LMDB raises to the index's size */
    uint64_t size = readonly ? 0 : writemap ? s->idx_map_min : (uint64_t)64 << 30;
    for (;;) {
        if ((mrc = mdb_env_create(&s->env)) != 0)
            return evs__mdb_err(mrc, "create environment");
        mdb_env_set_maxdbs(s->env, 16);
        mdb_env_set_maxreaders(s->env, 1024);
        if (size)
            mdb_env_set_mapsize(s->env, (size_t)size);
        if ((mrc = mdb_env_open(s->env, path, flags, 0644)) == 0)
            break;
        mdb_env_close(s->env);
        s->env = NULL;
        if ((mrc != EINVAL && mrc != ENOMEM) || (size && size <= (1u << 30)))
            return evs__mdb_err(mrc, "open");
        size = size ? size / 4 : (uint64_t)16 << 30;
    }
    MDB_envinfo info;
    s->idx_mapsize = mdb_env_info(s->env, &info) == 0 ? info.me_mapsize : 0;
    s->idx_fd = -1;
    if (writemap && mdb_env_get_fd(s->env, &s->idx_fd) != 0)
        s->idx_fd = -1;
    if (writemap) {
        /* LMDB raised the map to the index's size if it was larger: room
         * to write, before the first transaction */
        MDB_stat st;
        uint64_t used = mdb_env_stat(s->env, &st) == 0
                            ? ((uint64_t)info.me_last_pgno + 1) * st.ms_psize : 0;
        int rc = evs__idx_map_grow(s, used + s->idx_map_min / 2);
        if (rc < 0)
            return rc;
    }
    /* a writer elsewhere may have grown the map since it was opened (no
     * other thread can read yet) */
    for (int tries = 0;
         (mrc = mdb_txn_begin(s->env, NULL, readonly ? MDB_RDONLY : 0, &txn)) ==
             MDB_MAP_RESIZED && tries < 16; tries++)
        if ((mrc = mdb_env_set_mapsize(s->env, 0)) != 0)
            break;
    if (mrc != 0)
        return evs__mdb_err(mrc, "begin");
    unsigned cf = readonly ? 0 : MDB_CREATE;
    struct { const char *name; MDB_dbi *dbi; } dbs[] = {
        {"meta", &s->db_meta},
        {"tenants", &s->db_tenants},
        {"streams", &s->db_streams},
        {"stream_events", &s->db_stream_events},
        {"positions", &s->db_positions},
        {"tenant_events", &s->db_tenant_events},
        {"event_ids", &s->db_event_ids},
        {"postings", &s->db_postings},
        {"times", &s->db_times},
        {"snapshots", &s->db_snapshots},
    };
    for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
        unsigned df = dbs[i].dbi == &s->db_postings ? MDB_DUPSORT | MDB_DUPFIXED : 0;
        if ((mrc = mdb_dbi_open(txn, dbs[i].name, cf | df, dbs[i].dbi)) != 0) {
            mdb_txn_abort(txn);
            if (readonly && mrc == MDB_NOTFOUND)
                return evs__err(EVS_ECORRUPT, "index: sub-database %s is missing; "
                                "open the store read-write once to rebuild it",
                                dbs[i].name);
            return evs__mdb_err(mrc, dbs[i].name);
        }
    }
    /* index format */
    MDB_val k = {6, "format"}, v;
    mrc = mdb_get(txn, s->db_meta, &k, &v);
    if (mrc == MDB_NOTFOUND && !readonly) {
        uint8_t b[4];
        evs__put_le32(b, EVS_INDEX_FORMAT);
        v.mv_size = 4;
        v.mv_data = b;
        mrc = mdb_put(txn, s->db_meta, &k, &v, 0);
    } else if (mrc == 0) {
        uint32_t f = v.mv_size == 4 ? evs__get_le32(v.mv_data) : 0;
        if (f >= 1 && f < EVS_INDEX_FORMAT && !readonly) {
            /* an older index: recovery rebuilds it from the log */
            uint8_t b[4];
            evs__put_le32(b, EVS_INDEX_FORMAT);
            v.mv_size = 4;
            v.mv_data = b;
            mrc = mdb_put(txn, s->db_meta, &k, &v, 0);
            s->idx_upgrade = 1;
        } else if (f >= 1 && f < EVS_INDEX_FORMAT) {
            mdb_txn_abort(txn);
            return evs__err(EVS_EFORMAT, "index format %u is older than this evstore's "
                            "(%u); open the store read-write once to upgrade it", f,
                            EVS_INDEX_FORMAT);
        } else if (f != EVS_INDEX_FORMAT) {
            mdb_txn_abort(txn);
            return evs__err(f > EVS_INDEX_FORMAT ? EVS_EFORMAT : EVS_ECORRUPT,
                            "index format %u; this evstore (%s) reads format %u",
                            f, EVS_VERSION_STRING, EVS_INDEX_FORMAT);
        }
    }
    if (mrc != 0 && mrc != MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        return evs__mdb_err(mrc, "read format");
    }
    /* sequences */
    k.mv_size = 3;
    k.mv_data = "seq";
    s->next_stream_id = 1;
    s->next_tenant_id = 1;
    /* Absent in a new index. Unreadable, the next ids are unknown, and a
     * writer that guessed would give two streams one id: an index to
     * rebuild (a reader does not need them). */
    mrc = mdb_get(txn, s->db_meta, &k, &v);
    if (mrc == 0 && v.mv_size == 12) {
        s->next_stream_id = evs__get_le64(v.mv_data);
        s->next_tenant_id = evs__get_le32((const uint8_t *)v.mv_data + 8);
    } else if (mrc != MDB_NOTFOUND && !readonly) {
        mdb_txn_abort(txn);
        return mrc ? evs__mdb_err(mrc, "read sequences")
                   : evs__err(EVS_ECORRUPT, "index: sequences have %zu bytes", v.mv_size);
    }
    int rc = evs__idx_time_max(txn, s, &s->time_max_us);
    if (rc < 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    if ((mrc = mdb_txn_commit(txn)) != 0)
        return evs__env_err(s->env, mrc, "commit");
    s->idx_fd = -1;
    if (!readonly && mdb_env_get_fd(s->env, &s->idx_fd) != 0)
        s->idx_fd = -1;
    s->idx_used = s->idx_reserved = s->idx_growth = 0; /* a new file size: reserve anew */
    return 0;
}

int evs__env_prepare(const char *dir, const char *name, int discard)
{
    char path[4096];
    int e = 0;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (mkdir(path, 0755) == 0)
        e = evs__fsync_dir(dir);
    else if (errno != EEXIST)
        e = errno;
    const char *names[] = {"data.mdb", "lock.mdb"};
    for (size_t i = 0; !e && discard && i < 2; i++) {
        snprintf(path, sizeof(path), "%s/%s/%s", dir, name, names[i]);
        if (unlink(path) != 0 && errno != ENOENT)
            e = errno;
    }
    /* data.mdb exists, durably, before the state file names it (state.c) */
    snprintf(path, sizeof(path), "%s/%s/data.mdb", dir, name);
    int fd = e ? -1 : open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) {
        close(fd);
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        e = evs__fsync_dir(path);
    } else if (!e && errno != EEXIST) {
        e = errno;
    }
    if (e)
        return evs__err(e == ENOSPC ? EVS_ENOSPC : EVS_EIO, "cannot prepare %s/%s: %s",
                        dir, name, strerror(e));
    return 0;
}

int evs__idx_reserve(evs__emb *s, uint64_t need)
{
    MDB_envinfo info;
    MDB_stat st;
    /* never mdb_env_info on an environment without a map (remap) */
    if (atomic_load(&s->idx_gate.broken))
        return evs__err(EVS_EBACKEND, "index: the index's map is gone after a failed "
                        "growth; close and reopen the store");
    if (s->idx_fd < 0 || mdb_env_info(s->env, &info) != 0 || mdb_env_stat(s->env, &st) != 0)
        return 0;
    uint64_t used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    if (s->idx_used && used > s->idx_used && used - s->idx_used > s->idx_growth)
        s->idx_growth = used - s->idx_used;
    s->idx_used = used;
    /* The map: room for what this group likely adds (need is a worst case
     * hundreds of times what groups add: a map sized by it would be as
     * sparse as a fixed one). More than that is an MDB_MAP_FULL, after
     * which writer.c grows the map and redoes the txn. */
    uint64_t likely = 8 * s->idx_growth > s->idx_map_min / 4 ? 8 * s->idx_growth
                                                              : s->idx_map_min / 4;
    uint64_t want = used + (need < likely ? need : likely);
    int rc = evs__idx_map_grow(s, want);
    if (rc < 0)
        return rc;
    /* a backup about to copy the index asks for room ahead (backup.c:
     * while it copies, a remap would wait for it): best effort, as on
     * the backup's side. Claimed first, so that a growth cannot start
     * after the backup gave up waiting and began its copy; a failure
     * fails this group only when it broke the map. */
    uint64_t ask = atomic_exchange(&s->idx_room_ask, 0);
    if (ask && evs__idx_map_grow(s, used + ask) < 0) {
        if (atomic_load(&s->idx_gate.broken))
            return evs__err(EVS_EBACKEND, "index: the index's map is gone after a failed "
                            "growth; close and reopen the store");
        evs__clear_error();
    }
    uint64_t runway = EVS_IDX_RUNWAY;
    if (runway < 4 * s->idx_growth)
        runway = 4 * s->idx_growth;
    /* KEEP_SIZE: blocks without a larger file size (the writer's file is
     * as large as the map already; recovery's grows by its pwrites). On a
     * disk too small for the runway, this group's worst case is enough. */
    uint64_t have = s->idx_reserved > used ? s->idx_reserved - used : 0;
    uint64_t floor = need < runway ? need : runway;
    if (!s->idx_noreserve && (have < runway / 2 || have < floor)) {
        int e = 0;
        if (fallocate(s->idx_fd, FALLOC_FL_KEEP_SIZE, (off_t)used, (off_t)runway) == 0)
            s->idx_reserved = used + runway;
        else if ((e = errno) == ENOSPC && have < floor &&
                 fallocate(s->idx_fd, FALLOC_FL_KEEP_SIZE, (off_t)used, (off_t)floor) == 0)
            s->idx_reserved = used + floor;
        else if (e == EOPNOTSUPP || e == ENOSYS)
            s->idx_noreserve = 1; /* such a filesystem: only the free-space check */
        else if (have < floor)
            return evs__err(e == ENOSPC ? EVS_ENOSPC : EVS_EIO,
                            "index: cannot reserve %llu MiB for the index in %s/index: "
                            "%s; nothing was written: free disk space and retry",
                            (unsigned long long)((floor + (1u << 20) - 1) >> 20), s->dir,
                            strerror(e ? e : errno));
    }
    have = s->idx_noreserve || s->idx_reserved < used ? 0 : s->idx_reserved - used;
    s->idx_have = have;
    if (need <= have)
        return 0;
    /* More than the reserved runway could be written: the filesystem must
     * have room for the rest (the bound is the worst case, far above what
     * a group writes in practice). */
    struct statvfs vfs;
    if (fstatvfs(s->idx_fd, &vfs) == 0 &&
        (uint64_t)vfs.f_bavail * vfs.f_frsize < need - have + EVS_IDX_RUNWAY)
        return evs__err(EVS_ENOSPC, "index: this append could need up to %llu MiB more "
                        "index space in %s/index and the disk has %llu MiB free; nothing "
                        "was written: free disk space and retry",
                        (unsigned long long)((need - have) >> 20), s->dir,
                        (unsigned long long)(((uint64_t)vfs.f_bavail * vfs.f_frsize) >> 20));
    return 0;
}

int evs__idx_time_max(MDB_txn *txn, evs__emb *s, int64_t *us)
{
    MDB_cursor *cur;
    MDB_val k, v;
    *us = INT64_MIN;
    int mrc = mdb_cursor_open(txn, s->db_times, &cur);
    if (mrc != 0)
        return evs__mdb_err(mrc, "times: open cursor");
    mrc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    if (mrc == 0 && k.mv_size == 8)
        *us = (int64_t)(evs__get_be64(k.mv_data) ^ (UINT64_C(1) << 63));
    mdb_cursor_close(cur);
    return mrc == 0 || mrc == MDB_NOTFOUND ? 0 : evs__mdb_err(mrc, "times: last");
}

int evs__idx_tenant_get(MDB_txn *txn, evs__emb *s, const char *tenant,
                        size_t len, uint32_t *id)
{
    uint8_t kb[1 + EVS_MAX_TENANT_LEN];
    kb[0] = 't';
    memcpy(kb + 1, tenant, len);
    MDB_val k = {1 + len, kb}, v;
    int mrc = mdb_get(txn, s->db_tenants, &k, &v);
    if (mrc == MDB_NOTFOUND)
        return EVS_ENOTFOUND;
    if (mrc != 0)
        return evs__mdb_err(mrc, "tenant lookup");
    *id = evs__get_le32(v.mv_data);
    return 0;
}

int evs__idx_tenant_put(MDB_txn *txn, evs__emb *s, const char *tenant,
                        size_t len, uint32_t *id)
{
    int rc = evs__idx_tenant_get(txn, s, tenant, len, id);
    if (rc != EVS_ENOTFOUND)
        return rc;
    *id = s->next_tenant_id++;
    return evs__idx_tenant_insert(txn, s, tenant, len, *id);
}

int evs__idx_tenant_insert(MDB_txn *txn, evs__emb *s, const char *tenant,
                           size_t len, uint32_t id)
{
    uint8_t kb[1 + EVS_MAX_TENANT_LEN], vb[4];
    kb[0] = 't';
    memcpy(kb + 1, tenant, len);
    evs__put_le32(vb, id);
    MDB_val k = {1 + len, kb}, v = {4, vb};
    int mrc = mdb_put(txn, s->db_tenants, &k, &v, 0);
    return mrc ? evs__mdb_err(mrc, "tenant insert") : 0;
}

static size_t stream_key(uint8_t *kb, uint32_t tid, const char *stream, size_t len)
{
    evs__put_be32(kb, tid);
    memcpy(kb + 4, stream, len);
    return 4 + len;
}

int evs__idx_stream_get(MDB_txn *txn, evs__emb *s, uint32_t tid,
                        const char *stream, size_t len, uint64_t *sid,
                        int64_t *version)
{
    uint8_t kb[4 + EVS_MAX_STREAM_LEN];
    MDB_val k = {stream_key(kb, tid, stream, len), kb}, v;
    int mrc = mdb_get(txn, s->db_streams, &k, &v);
    if (mrc == MDB_NOTFOUND) {
        *sid = 0;
        *version = EVS_NO_STREAM;
        return 0;
    }
    if (mrc != 0)
        return evs__mdb_err(mrc, "stream lookup");
    *sid = evs__get_le64(v.mv_data);
    *version = (int64_t)evs__get_le64((const uint8_t *)v.mv_data + 8);
    return 0;
}

int evs__idx_stream_put(MDB_txn *txn, evs__emb *s, uint32_t tid,
                        const char *stream, size_t len, uint64_t sid,
                        int64_t version)
{
    uint8_t kb[4 + EVS_MAX_STREAM_LEN], vb[16];
    evs__put_le64(vb, sid);
    evs__put_le64(vb + 8, (uint64_t)version);
    MDB_val k = {stream_key(kb, tid, stream, len), kb}, v = {16, vb};
    int mrc = mdb_put(txn, s->db_streams, &k, &v, 0);
    return mrc ? evs__mdb_err(mrc, "stream update") : 0;
}

/*
 * Tests force term hash collisions with EVS_DEBUG_TERM_HASH_BITS=n (1..63):
 * only the low n bits of each hash are kept, so many terms share a list
 * and every answer depends on the record check. A store written so must
 * always be opened so (the postings would not be found otherwise).
 */
static uint64_t term_mask = UINT64_MAX;

void evs__term_hash_debug_init(void)
{
    const char *e = getenv("EVS_DEBUG_TERM_HASH_BITS");
    int bits = e ? atoi(e) : 0;
    term_mask = bits >= 1 && bits <= 63 ? (UINT64_C(1) << bits) - 1 : UINT64_MAX;
}

void evs__term_key(uint8_t key[12], uint32_t tid, unsigned kind, const char *text,
                   size_t len)
{
    evs__put_be32(key, tid);
    evs__put_be64(key + 4, XXH3_64bits_withSeed(text, len, kind) & term_mask);
}

static EVS_MUST_USE int posting_put(MDB_txn *txn, evs__emb *s, uint32_t tid,
                                    unsigned kind, const char *text, size_t len,
                                    const uint8_t val[16])
{
    uint8_t kb[12];
    evs__term_key(kb, tid, kind, text, len);
    MDB_val k = {12, kb}, v = {16, (void *)val};
    int mrc = mdb_put(txn, s->db_postings, &k, &v, 0);
    return mrc ? evs__mdb_err(mrc, "postings insert") : 0;
}

int evs__idx_event_put(MDB_txn *txn, evs__emb *s, uint32_t tid, uint64_t sid,
                       int64_t version, uint64_t position, uint64_t loc,
                       const uint8_t *rec)
{
    uint8_t kb[16], vb[16];
    MDB_val k, v;
    int mrc, rc;
    const uint8_t *id = rec + EVS_REC_OFF_ID;

    /* stream_events: (stream id, version) -> position, location */
    if (sid != 0) {
        evs__put_be64(kb, sid);
        evs__put_be64(kb + 8, (uint64_t)version);
        evs__put_le64(vb, position);
        evs__put_le64(vb + 8, loc);
        k.mv_size = 16; k.mv_data = kb; v.mv_size = 16; v.mv_data = vb;
        if ((mrc = mdb_put(txn, s->db_stream_events, &k, &v, 0)) != 0)
            return evs__mdb_err(mrc, "stream_events insert");
    }

    /* positions: position -> location; always the largest key */
    evs__put_be64(kb, position);
    evs__put_le64(vb, loc);
    k.mv_size = 8; k.mv_data = kb; v.mv_size = 8; v.mv_data = vb;
    if ((mrc = mdb_put(txn, s->db_positions, &k, &v, MDB_APPEND)) != 0)
        return evs__mdb_err(mrc, "positions insert");

    /* times: where the running maximum of recorded_at grows (once per group
     * for events the writer stamps: they share the group's clock read) */
    int64_t at = (int64_t)evs__get_le64(rec + EVS_REC_OFF_RECORDED_AT);
    if (at > s->time_max_us) {
        uint8_t tk[8], tv[8];
        evs__time_key(tk, at);
        evs__put_le64(tv, position);
        MDB_val k2 = {8, tk}, v2 = {8, tv};
        if ((mrc = mdb_put(txn, s->db_times, &k2, &v2, MDB_APPEND)) != 0)
            return evs__mdb_err(mrc, "times insert");
        s->time_max_us = at;
    }

    const char *p = (const char *)rec + EVS_REC_OFF_VAR;
    p += evs__get_le16(rec + EVS_REC_OFF_TENANT_LEN) + 1;
    const char *stream = p;
    size_t sl = evs__get_le16(rec + EVS_REC_OFF_STREAM_LEN);
    p += sl + 1;
    /* system events (checkpoints) are found through their stream only */
    int system = evs__is_system_stream(stream, sl);

    /* tenant_events: (tenant id, position) -> location */
    evs__put_be32(kb, tid);
    evs__put_be64(kb + 4, position);
    k.mv_size = 12;
    if (!system && (mrc = mdb_put(txn, s->db_tenant_events, &k, &v, 0)) != 0)
        return evs__mdb_err(mrc, "tenant_events insert");

    /* event_ids: id -> position, location */
    evs__put_le64(vb, position);
    evs__put_le64(vb + 8, loc);
    k.mv_size = 16; k.mv_data = (void *)id; v.mv_size = 16;
    if ((mrc = mdb_put(txn, s->db_event_ids, &k, &v, MDB_NOOVERWRITE)) != 0) {
        if (mrc == MDB_KEYEXIST)
            return evs__err(EVS_ECORRUPT, "index: event id at position %llu is "
                            "already indexed", (unsigned long long)position);
        return evs__mdb_err(mrc, "event_ids insert");
    }

    /* postings: the category, the type, then each tag -> position (BE, the
     * sort order), location */
    if (system)
        return 0;
    evs__put_be64(vb, position);
    evs__put_le64(vb + 8, loc);
    evs__terms t;
    unsigned kind;
    const char *text;
    size_t tlen;
    evs__terms_init(&t, rec);
    while (evs__terms_next(&t, &kind, &text, &tlen))
        if ((rc = posting_put(txn, s, tid, kind, text, tlen, vb)) < 0)
            return rc;
    return 0;
}

int evs__idx_id_get(MDB_txn *txn, evs__emb *s, const uint8_t id[16],
                    uint64_t *position, uint64_t *loc)
{
    MDB_val k = {16, (void *)id}, v;
    int mrc = mdb_get(txn, s->db_event_ids, &k, &v);
    if (mrc == MDB_NOTFOUND)
        return EVS_ENOTFOUND;
    if (mrc != 0)
        return evs__mdb_err(mrc, "event id lookup");
    *position = evs__get_le64(v.mv_data);
    *loc = evs__get_le64((const uint8_t *)v.mv_data + 8);
    return 0;
}

int evs__idx_applied_get(MDB_txn *txn, evs__emb *s, uint64_t *pos, uint64_t *loc)
{
    MDB_val k = {7, "applied"}, v;
    int mrc = mdb_get(txn, s->db_meta, &k, &v);
    if (mrc == MDB_NOTFOUND) {
        *pos = 0;
        *loc = evs__loc(1, EVS_SEG_HEADER_SIZE);
        return 0;
    }
    if (mrc != 0)
        return evs__mdb_err(mrc, "read applied position");
    if (v.mv_size != 16)
        return evs__err(EVS_ECORRUPT, "index: applied position has %zu bytes", v.mv_size);
    *pos = evs__get_le64(v.mv_data);
    *loc = evs__get_le64((const uint8_t *)v.mv_data + 8);
    return 0;
}

int evs__idx_applied_put(MDB_txn *txn, evs__emb *s, uint64_t pos, uint64_t loc)
{
    uint8_t vb[16];
    evs__put_le64(vb, pos);
    evs__put_le64(vb + 8, loc);
    MDB_val k = {7, "applied"}, v = {16, vb};
    int mrc = mdb_put(txn, s->db_meta, &k, &v, 0);
    return mrc ? evs__mdb_err(mrc, "write applied position") : 0;
}

int evs__idx_seq_put(MDB_txn *txn, evs__emb *s)
{
    uint8_t vb[12];
    evs__put_le64(vb, s->next_stream_id);
    evs__put_le32(vb + 8, s->next_tenant_id);
    MDB_val k = {3, "seq"}, v = {12, vb};
    int mrc = mdb_put(txn, s->db_meta, &k, &v, 0);
    return mrc ? evs__mdb_err(mrc, "write sequences") : 0;
}

int evs__idx_apply_record(MDB_txn *txn, evs__emb *s, const uint8_t *rec, uint64_t loc)
{
    int rc;
    uint32_t tid = 0; /* set by evs__idx_tenant_put when it returns 0 */
    uint64_t sid = 0;
    int64_t head;
    size_t tl = evs__get_le16(rec + EVS_REC_OFF_TENANT_LEN);
    size_t sl = evs__get_le16(rec + EVS_REC_OFF_STREAM_LEN);
    const char *tenant = (const char *)rec + EVS_REC_OFF_VAR;
    const char *stream = tenant + tl + 1;
    int64_t version = (int64_t)evs__get_le64(rec + EVS_REC_OFF_VERSION);
    uint64_t position = evs__get_le64(rec + EVS_REC_OFF_POSITION);

    if ((rc = evs__idx_tenant_put(txn, s, tenant, tl, &tid)) < 0)
        return rc;
    if (sl == 0) { /* an event without a stream */
        if (version != EVS_NO_STREAM)
            return evs__err(EVS_ECORRUPT, "log record at position %llu has no stream "
                            "but version %lld", (unsigned long long)position,
                            (long long)version);
    } else {
        if ((rc = evs__idx_stream_get(txn, s, tid, stream, sl, &sid, &head)) < 0)
            return rc;
        if (sid == 0)
            sid = s->next_stream_id++;
        if (version != head + 1)
            return evs__err(EVS_ECORRUPT,
                            "log record at position %llu has version %lld of stream %s, "
                            "but the stream is at %lld", (unsigned long long)position,
                            (long long)version, stream, (long long)head);
        if ((rc = evs__idx_stream_put(txn, s, tid, stream, sl, sid, version)) < 0)
            return rc;
    }
    return evs__idx_event_put(txn, s, tid, sid, version, position, loc, rec);
}
