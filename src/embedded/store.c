/*
 * store.c -- the embedded backend: open/close, reads and iterators, stats.
 */
#include "embedded/embedded.h"
#include "util/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int emb_close(evs_db *db);
static int emb_read_stream(evs_iter **out, evs_db *db, const char *tenant,
                           const char *stream, int64_t from_version,
                           evs_direction dir, uint64_t limit);
static int emb_read_all(evs_iter **out, evs_db *db, const char *tenant,
                        uint64_t from_position, uint64_t limit, unsigned flags);
static int emb_read_query(evs_iter **out, evs_db *db, const char *tenant,
                          const evs_query *query, uint64_t bound, evs_direction dir,
                          uint64_t limit, unsigned flags);
static int emb_read_streams(evs_iter **out, evs_db *db, const char *tenant,
                            const evs_stream_read *streams, size_t n);
static int emb_iter_next(const evs_event **ev, evs_iter *it);
static int emb_iter_marker(uint64_t *out, const evs_iter *it);
static void emb_iter_free(evs_iter *it);
static int emb_stream_version(int64_t *out, evs_db *db, const char *tenant,
                              const char *stream);
static int emb_head(uint64_t *out, evs_db *db, const char *tenant);
static int emb_stats(evs_stats *out, evs_db *db);
static int emb_commit_seq(uint64_t *out, evs_db *db);
static int emb_wait_commit(evs_db *db, uint64_t seq, uint64_t deadline_ns,
                           const _Atomic int *cancel);
static void emb_wake_readers(evs_db *db);
static int emb_token_tail(uint64_t *out, evs_db *db, const char *tenant);
static int emb_event_position(uint64_t *out, evs_db *db, const evs_uuid *id);
static int emb_token_at(uint64_t *out, evs_db *db, int64_t time_us);

static const evs__iter_ops emb_iter_ops = {
    .next = emb_iter_next,
    .marker = emb_iter_marker,
    .free = emb_iter_free,
};

static const evs__backend_ops emb_ops = {
    .version = EVS__BACKEND_VERSION,
    .name = "embedded",
    .commit_seq_exact = 1, /* notify.c: bumped after the index commit, before
                              the callers are woken */
    .append = evs__emb_append,
    .read_stream = emb_read_stream,
    .read_all = emb_read_all,
    .read_query = emb_read_query,
    .read_streams = emb_read_streams,
    .stream_version = emb_stream_version,
    .head_position = emb_head,
    .stats = emb_stats,
    .commit_seq = emb_commit_seq,
    .wait_commit = emb_wait_commit,
    .wake_readers = emb_wake_readers,
    .token_tail = emb_token_tail,
    .event_position = emb_event_position,
    .token_at = emb_token_at,
    .snapshot_save = evs__emb_snapshot_save,
    .snapshot_load = evs__emb_snapshot_load,
    .snapshot_list = evs__emb_snapshot_list,
    .list_streams = evs__emb_list_streams,
    .list_tenants = evs__emb_list_tenants,
    .verify = evs__emb_verify,
    .backup = evs__emb_backup,
    .scavenge = evs__emb_scavenge,
    .subject_key = evs__emb_subject_key,
    .subject_forget = evs__emb_subject_forget,
    .close = emb_close,
};

/* ---- open / close -------------------------------------------------------- */

static EVS_MUST_USE int prepare_dir(const char *path, int create)
{
    struct stat st;
    char sub[4096];
    if (stat(path, &st) != 0) {
        if (errno != ENOENT)
            return evs__err(EVS_EIO, "cannot access store %s: %s", path, strerror(errno));
        if (!create)
            return evs__err(EVS_EINVAL, "no store at %s (open it with EVS_OPEN_CREATE to "
                            "create one)", path);
        /* EEXIST: another process creating the same store got there first
         * (eight `evs append` started at once on a new store) */
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            return evs__err(errno == ENOSPC ? EVS_ENOSPC : EVS_EIO,
                            "cannot create store directory %s: %s", path, strerror(errno));
        /* its entry in the parent is durable before any event is in it */
        int e = evs__fsync_parent(path);
        if (e)
            return evs__err(EVS_EIO, "cannot sync the directory holding %s: %s", path,
                            strerror(e));
        if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            return evs__err(EVS_EINVAL, "%s is a file, not a store directory", path);
    } else if (!S_ISDIR(st.st_mode)) {
        return evs__err(EVS_EINVAL, "%s is a file, not a store directory", path);
    }
    snprintf(sub, sizeof(sub), "%s/log", path);
    if (stat(sub, &st) != 0) {
        if (!create)
            return evs__err(EVS_EINVAL, "no store at %s (it has no log/ directory)", path);
        /* Only turn an empty directory into a store, never someone's data. */
        DIR *d = opendir(path);
        int entries = 0;
        if (d) {
            struct dirent *de;
            while ((de = readdir(d)) != NULL)
                if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
                    strcmp(de->d_name, "LOCK") && strcmp(de->d_name, "index") &&
                    strcmp(de->d_name, "log")) /* made meanwhile by a racing creator */
                    entries++;
            closedir(d);
        }
        if (entries && stat(sub, &st) == 0 && S_ISDIR(st.st_mode))
            return 0; /* a racing creator made the store meanwhile */
        if (entries)
            return evs__err(EVS_EINVAL, "%s is not empty and is not an evstore store "
                            "(no log/ directory); refusing to create a store in it", path);
        if (mkdir(sub, 0755) != 0 && errno != EEXIST)
            return evs__err(errno == ENOSPC ? EVS_ENOSPC : EVS_EIO, "cannot create %s: %s",
                            sub, strerror(errno));
        int e = evs__fsync_dir(path);
        if (e)
            return evs__err(EVS_EIO, "cannot sync directory %s: %s", path, strerror(e));
    } else if (!S_ISDIR(st.st_mode)) {
        return evs__err(EVS_EINVAL, "%s is not a store (log is not a directory)", path);
    }
    return 0;
}

void evs__emb_notice(evs__emb *s, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    if (!s->base.opts.recovery_notice)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    s->base.opts.recovery_notice(s->base.opts.recovery_ctx, line);
}

/*
 * Why a read-write open of the store at path would be refused for want of
 * permission (the text, in a static buffer), or NULL when it may be tried:
 * its LOCK cannot be opened for writing (EACCES, EROFS), or, missing,
 * cannot be created.
 */
static const char *cannot_write(const char *path)
{
    static _Thread_local char why[512];
    char lock[4096];
    snprintf(lock, sizeof(lock), "%s/LOCK", path);
    int fd = open(lock, O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
        close(fd);
        return NULL;
    }
    int e = errno, missing = e == ENOENT;
    if (missing && faccessat(AT_FDCWD, path, W_OK, AT_EACCESS) == 0)
        return NULL;
    if (missing)
        e = errno;
    if (e != EACCES && e != EROFS && e != EPERM)
        return NULL;
    snprintf(why, sizeof(why), "%s is not writable (%s)",
             missing ? "its directory" : "its LOCK file", strerror(e));
    return why;
}

/*
 * A read-only open never reads an index it cannot trust (state.c). Like a
 * SQLite reader that rolls back a hot journal, it first lets a read-write
 * open rebuild the index when no writer holds the store; a writer that
 * holds it has made the index trusted already (its state file names this
 * boot and its files before it writes the index), so seeing EVS_EBUSY,
 * look again.
 */
static EVS_MUST_USE int readonly_recover(const char *path, const evs_open_options *opts)
{
    evs__trust t;
    int rc;
    for (int tries = 0; tries < 50; tries++) {
        if ((rc = evs__state_judge(path, &t)) < 0)
            return rc;
        if (t.index_trusted)
            return 0;
        const char *denied = cannot_write(path);
        if (denied)
            return evs__err(EVS_EREADONLY, "store %s: its index cannot be trusted (%s), "
                            "and this read-only open cannot rebuild it: %s; the index "
                            "must be rebuilt from the log by a read-write open (e.g. "
                            "`evs append`, or evs_open without EVS_OPEN_READONLY) of a "
                            "user who can write the store", path, t.why, denied);
        evs_open_options o = *opts;
        o.flags &= ~(EVS_OPEN_READONLY | EVS_OPEN_CREATE);
        o.busy_timeout_ms = 0; /* a held lock means look again, below */
        evs_db *db = NULL;
        rc = evs__embedded_open(&db, path, &o);
        if (rc == 0)
            return emb_close(db);
        if (rc != EVS_EBUSY) {
            char why[1024];
            snprintf(why, sizeof(why), "%s", evs_last_error());
            return evs__err(rc, "%s (while rebuilding the index for a read-only open: "
                            "%s)", why, t.why);
        }
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return evs__err(EVS_EBUSY, "store %s: its index cannot be trusted (%s) and the "
                    "writer holding it has not rebuilt it yet; retry", path, t.why);
}

/*
 * Take the writer lock, waiting up to timeout_ms for the process holding
 * it, as SQLite's busy timeout does: flock has no timed wait, so poll,
 * first every millisecond (a writer that is about to close frees it
 * soon) and then at most every 20 ms (a long holder costs little).
 */
static EVS_MUST_USE int lock_writer(int fd, const char *path, const char *lock_path,
                                    uint32_t timeout_ms)
{
    int64_t start = (int64_t)(evs__mono_ns() / 1000000u), waited = 0;
    long sleep_ms = 1;
    for (;;) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            return 0;
        if (errno != EWOULDBLOCK && errno != EINTR)
            return evs__err(EVS_EIO, "cannot lock %s: %s", lock_path, strerror(errno));
        waited = (int64_t)(evs__mono_ns() / 1000000u) - start;
        if (waited >= (int64_t)timeout_ms)
            break;
        int64_t left = (int64_t)timeout_ms - waited;
        struct timespec ts = {0, (long)(left < sleep_ms ? left : sleep_ms) * 1000000L};
        nanosleep(&ts, NULL);
        if (sleep_ms < 20)
            sleep_ms = sleep_ms * 2 > 20 ? 20 : sleep_ms * 2;
    }
    if (timeout_ms == 0)
        return evs__err(EVS_EBUSY, "store %s is open for writing in another process "
                        "(%s is locked) and busy_timeout_ms is 0 (no wait); only one "
                        "process writes an embedded store at a time: wait for it to "
                        "close, open read-only, or, when several processes must write, "
                        "use the PostgreSQL backend (or one process writing for all)",
                        path, lock_path);
    return evs__err(EVS_EBUSY, "store %s is open for writing in another process "
                    "(%s is locked); waited %" PRId64 " ms (busy_timeout_ms %" PRIu32 ") "
                    "and it is still open; only one process writes an embedded store "
                    "at a time: wait longer, or, when several processes must write, use "
                    "the PostgreSQL backend (or one process writing for all)",
                    path, lock_path, waited, timeout_ms);
}

int evs__embedded_open(evs_db **out, const char *path, const evs_open_options *opts)
{
    int rc;
    int readonly = (opts->flags & EVS_OPEN_READONLY) != 0;
    int create = (opts->flags & EVS_OPEN_CREATE) && !readonly;
    char buf[4096];
    evs__trust trust;

    if (strlen(path) > 3000)
        return evs__err(EVS_EINVAL, "store path is too long");
    if ((rc = prepare_dir(path, create)) < 0)
        return rc;
    if (readonly && (rc = readonly_recover(path, opts)) < 0)
        return rc;

    evs__emb *s = calloc(1, sizeof(*s));
    if (!s)
        return evs__err(EVS_ENOMEM, "out of memory opening the store");
    s->base.ops = &emb_ops;
    s->base.opts = *opts;
    s->lock_fd = s->dir_fd_log = s->wfd = s->notify_fd = s->idx_fd = -1;
    s->seg_size = opts->segment_size;
    pthread_mutex_init(&s->qlock, NULL);
    pthread_cond_init(&s->qcond, NULL);
    pthread_mutex_init(&s->sync_lock, NULL);
    pthread_mutex_init(&s->map_lock, NULL);
    pthread_mutex_init(&s->scav_run, NULL);
    pthread_mutex_init(&s->scav_lock, NULL);
    pthread_mutex_init(&s->maps_lock, NULL);
    pthread_mutex_init(&s->prep_lock, NULL);
    pthread_cond_init(&s->prep_cond, NULL);
    s->prep_fd = -1;
    pthread_cond_init(&s->sync_cond, NULL);
    if (!(s->dir = strdup(path)) || !(s->segs = calloc(EVS_MAX_SEGMENTS, sizeof(evs__seg)))) {
        rc = evs__err(EVS_ENOMEM, "out of memory opening the store");
        goto fail;
    }

    /*
     * One read-write process at a time: the log has a single writer.
     * Read-only opens take no lock: they read only what the index says is
     * committed, which recovery never truncates, so they can run beside
     * the writer (e.g. `evs read` while an application appends).
     */
    if (!readonly) {
        snprintf(buf, sizeof(buf), "%s/LOCK", path);
        s->lock_fd = open(buf, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (s->lock_fd < 0) {
            int e = errno;
            if (e == EACCES || e == EROFS || e == EPERM)
                rc = evs__err(EVS_EREADONLY, "store %s cannot be written (cannot open %s "
                              "for writing: %s); read-only opens still read it", path,
                              buf, strerror(e));
            else
                rc = evs__err(EVS_EIO, "cannot open %s: %s", buf, strerror(e));
            goto fail;
        }
        if ((rc = lock_writer(s->lock_fd, path, buf, opts->busy_timeout_ms)) < 0)
            goto fail;
    }
    s->readonly = readonly;
    snprintf(buf, sizeof(buf), "%s/log", path);
    s->dir_fd_log = open(buf, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dir_fd_log < 0) {
        rc = evs__err(EVS_EIO, "cannot open %s: %s", buf, strerror(errno));
        goto fail;
    }
    if ((rc = evs__segs_open(s, readonly)) < 0)
        goto fail;
    /* Judged under the lock: no writer can change the state meanwhile. */
    if ((rc = evs__state_judge(path, &trust)) < 0)
        goto fail;
    if (readonly && !trust.index_trusted) {
        rc = evs__err(EVS_ECORRUPT, "store %s: its index cannot be trusted (%s); a "
                      "read-write open rebuilds it from the log", path, trust.why);
        goto fail;
    }
    if (!readonly) {
        /* an interrupted scavenge may leave an index to rebuild (scavenge.c) */
        if ((rc = evs__scav_open(s, &trust)) < 0)
            goto fail;
        /* The state names this boot and these files, durably, before
         * anything in the index or the log is written (state.c). */
        int rebuild = !trust.index_trusted;
        if (rebuild && atomic_load(&s->nsegs) > 0)
            evs__emb_notice(s, "rebuilding the index of %s from the log: %s", path,
                            trust.why);
        if ((rc = evs__env_prepare(path, "index", rebuild)) < 0 ||
            (rc = evs__env_prepare(path, "snapshots", !trust.snapshots_trusted)) < 0 ||
            (rc = evs__state_write(path, 1, trust.frontier_unknown ? EVS_DURABLE_UNKNOWN
                                                                   : trust.durable)) < 0)
            goto fail;
    }
    rc = evs__idx_open(s, readonly, 0);
    if (rc == EVS_ECORRUPT && !readonly) {
        /* The log is the truth: an index LMDB cannot read (e.g. its first
         * meta pages cut short by a full disk or an I/O error while it was
         * made) is made anew, never a reason to refuse the store. */
        char why[1024];
        snprintf(why, sizeof(why), "%s", evs_last_error());
        if (s->env)
            mdb_env_close(s->env);
        s->env = NULL;
        evs__emb_notice(s, "rebuilding the index of %s from the log: %s", path, why);
        if ((rc = evs__env_prepare(path, "index", 1)) < 0 ||
            (rc = evs__state_write(path, 1, trust.frontier_unknown ? EVS_DURABLE_UNKNOWN
                                                                   : trust.durable)) < 0)
            goto fail;
        rc = evs__idx_open(s, 0, 0);
    }
    if (rc < 0 || (rc = evs__snap_open(s, readonly)) < 0)
        goto fail;
    /* Blocking reads need it; a read-only open of a store in a directory it
     * cannot write still reads (its reads just cannot wait, and say why).
     * A nolock reader keeps writers out (evs__reader_nolock): nothing to
     * wait for, notify_why says so. */
    if (!s->nolock && (rc = evs__notify_open(s)) < 0) {
        if (!readonly)
            goto fail;
        snprintf(s->notify_why, sizeof(s->notify_why), "%s", evs_last_error());
        evs__clear_error();
    }
    if (!readonly) {
        if ((rc = evs__recover(s, &trust)) < 0 || (rc = evs__scav_recovered(s)) < 0 ||
            (rc = evs__state_write(path, 1, atomic_load(&s->head))) < 0)
            goto fail;
        /* recovered without MDB_WRITEMAP; the writer's environment has it
         * (evs__idx_open) */
        mdb_env_close(s->env);
        s->env = NULL;
        if ((rc = evs__idx_open(s, 0, 1)) < 0)
            goto fail;
        if ((rc = evs__prealloc_start(s)) < 0 || (rc = evs__writer_start(s)) < 0)
            goto fail;
    } else {
        /* An index whose end cannot be read fails the open here rather
         * than every read later (each read begins by reading it). */
        MDB_txn *txn;
        uint64_t applied = 0, L;
        if ((rc = evs__rtxn_begin(s, &txn)) < 0)
            goto fail;
        rc = evs__idx_applied_get(txn, s, &applied, &L);
        evs__rtxn_end(s, txn);
        if (rc < 0)
            goto fail;
        atomic_store(&s->head, applied);
    }
    *out = &s->base;
    return 0;
fail:
    {
        char keep[1024];
        snprintf(keep, sizeof(keep), "%s", evs_last_error());
        s->open_failed = 1;
        emb_close(&s->base);
        evs__set_error_text(keep);
    }
    return rc;
}

static int emb_close(evs_db *db)
{
    evs__emb *s = (evs__emb *)db;
    int rc = 0;
    evs__writer_stop(s);
    evs__prealloc_stop(s);
    evs__notify_close(s);
    if (getenv("EVS_DEBUG_WRITER") && s->groups)
        fprintf(stderr, "evstore writer: %llu groups, %.1f events/group, per group: "
                "stage %.1f us, write+sync %.1f us, commit %.1f us, wake %.1f us\n",
                (unsigned long long)s->groups, (double)s->grouped_events / s->groups,
                s->ns_stage / 1e3 / s->groups, s->ns_sync / 1e3 / s->groups,
                s->ns_commit / 1e3 / s->groups, s->ns_wake / 1e3 / s->groups);
    if (s->env && atomic_load(&s->idx_gate.broken)) {
        /* A remap failed half-way (index.c, remap): LMDB may still hold
         * the old map's address with the new size, so mdb_env_close could
         * unmap whatever has been mapped there since, and mdb_env_sync
         * would write through it. The environment is left as it is (its
         * descriptors and memory, until the process ends); the state file
         * still says "open", so the next open recovers from the log. The
         * snapshots are another, healthy environment: synced as always. */
        if (!s->readonly && s->snap_env && mdb_env_sync(s->snap_env, 1) != 0)
            rc = evs__err(EVS_EIO, "flushing the snapshots on close failed");
    } else if (s->env) {
        /* A clean close: the index synced, then the state says so (the next
         * open trusts the index, also after a reboot). The log is synced
         * already: every group was. */
        if (!s->readonly && !s->open_failed) {
            if (mdb_env_sync(s->env, 1) != 0 ||
                (s->snap_env && mdb_env_sync(s->snap_env, 1) != 0))
                rc = evs__err(EVS_EIO, "flushing the index on close failed");
            else if (!s->failed)
                rc = evs__state_write(s->dir, 0, atomic_load(&s->head));
        }
        mdb_env_close(s->env);
    }
    evs__snap_close(s);
    evs__keys_close(s);
    evs__scav_close(s);
    if (s->segs) {
        uint32_t n = atomic_load(&s->nsegs);
        for (uint32_t i = 0; i < n; i++) {
            uint8_t *m = atomic_load(&s->segs[i].map);
            if (m)
                munmap(m, s->seg_size);
        }
        free(s->segs);
    }
    if (s->wfd >= 0)
        close(s->wfd);
    if (s->dir_fd_log >= 0)
        close(s->dir_fd_log);
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* releases the flock */
    pthread_mutex_destroy(&s->qlock);
    pthread_cond_destroy(&s->qcond);
    pthread_mutex_destroy(&s->sync_lock);
    pthread_mutex_destroy(&s->map_lock);
    pthread_mutex_destroy(&s->scav_run);
    pthread_mutex_destroy(&s->scav_lock);
    pthread_mutex_destroy(&s->maps_lock);
    pthread_mutex_destroy(&s->prep_lock);
    pthread_cond_destroy(&s->prep_cond);
    pthread_cond_destroy(&s->sync_cond);
    evs__ov_free(&s->ov);
    free(s->staged);
    free(s->gbuf);
    free(s->wparts);
    free(s->wake);
    free(s->dir);
    free(s);
    return rc;
}

/* ---- iterators ---------------------------------------------------------- */

enum { IT_EMPTY, IT_STREAM_FWD, IT_STREAM_BWD, IT_ALL, IT_TENANT, IT_QUERY, IT_STREAMS };

typedef struct emb_iter {
    evs_iter base;
    evs__emb *s;
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_dbi dbi;
    int kind;
    int started;
    uint8_t prefix[8];
    size_t plen;
    uint8_t start[16];
    size_t slen;
    uint64_t left;
    evs__qplan *plan;    /* IT_QUERY */
    uint64_t next_from;  /* IT_QUERY: where the next seek starts */
    int backward;
    int exhausted;       /* the read reached its end (not its limit) */
    int skip_system;     /* $all of every tenant: skip system streams' events */
    uint64_t snap_head;  /* the head position in this read's snapshot */
    uint64_t last_pos;   /* forward: last position returned (or the bound) */
    uint64_t *msid;      /* IT_STREAMS: stream id (0 = absent), from version */
    int64_t *mfrom;
    size_t mn, mi;       /* IT_STREAMS: number of streams, the current one */
    evs_event ev;
    const char **tags;
    size_t tags_cap;
    /*
     * Long reads (index.c, "Long reads"). Entries are read from the index
     * a batch at a time, in one pass through the gate (iter_fetch), and
     * their records decoded from the log outside it. txn lives between
     * fetches outside the gate; it is renewed every EVS_READ_RENEW_EVENTS
     * events or EVS_READ_RENEW_MS, and after a remap, and the cursor then
     * re-seeks the last key it read; it is reset (its snapshot let go) at
     * the end of the read and when a caller keeps it longer than
     * EVS_READ_RENEW_MS. Entries past snap_head are not this read's.
     */
    int in_gate;         /* inside s->idx_gate (until the read's setup ends) */
    int live;            /* txn holds a snapshot (0: reset, renew to read) */
    uint64_t gen;        /* the gate's generation the cursors are valid in */
    uint64_t map_gen;    /* the segment maps' generation pinned (evs__maps_pin):
                            the events handed out point into the maps */
    uint64_t renewed_ns; /* when txn's snapshot was taken */
    uint32_t since;      /* entries read since */
    int reseek;          /* the cursor must re-seek last_key */
    uint8_t last_key[16];
    size_t last_klen;
    int end_reached;     /* the last fetch found the end: the batch is all */
    int fetch_rc;        /* an error the last fetch met after its entries */
    char fetch_msg[256];
    unsigned bn, bi;     /* entries in the batch, the next one to return */
    struct iter_ent {
        uint64_t pos, loc;
        const uint8_t *rec; /* IT_QUERY: the record, checked; else NULL */
    } batch[64];
} emb_iter;

/* Inside the gate for one fetch; renew the snapshot when it is due. */
static EVS_MUST_USE int iter_enter(emb_iter *it)
{
    evs__emb *s = it->s;
    int rc = evs__gate_enter(&s->idx_gate);
    if (rc < 0)
        return rc;
    uint64_t now = 0;
    if (it->live &&
        atomic_load_explicit(&s->idx_gate.gen, memory_order_relaxed) == it->gen &&
        it->since < EVS_READ_RENEW_EVENTS &&
        (now = evs__coarse_ns()) - it->renewed_ns < EVS_READ_RENEW_MS * UINT64_C(1000000))
        return 0;
    if (!now)
        now = evs__coarse_ns();
    int mrc = 0;
    if ((rc = evs__rtxn_renew(s, it->txn)) == 0 && it->cur &&
        (mrc = mdb_cursor_renew(it->txn, it->cur)) != 0)
        rc = evs__mdb_err(mrc, "renew cursor");
    if (rc == 0 && it->plan)
        rc = evs__qplan_renew(it->plan);
    if (rc < 0) {
        evs__gate_leave(&s->idx_gate);
        return rc;
    }
    it->live = 1;
    it->gen = atomic_load(&s->idx_gate.gen);
    it->renewed_ns = now;
    it->since = 0;
    it->reseek = it->started;
    return 0;
}

/* The end of a read's setup: out of the gate until its first call. */
static void iter_ready(emb_iter *it)
{
    if (it->in_gate)
        evs__gate_leave(&it->s->idx_gate);
    it->in_gate = 0;
}

static EVS_MUST_USE int iter_new(emb_iter **out, evs__emb *s, uint64_t limit)
{
    emb_iter *it = calloc(1, sizeof(*it));
    if (!it)
        return evs__err(EVS_ENOMEM, "out of memory creating an iterator");
    it->base.ops = &emb_iter_ops;
    it->base.db = &s->base;
    it->s = s;
    it->left = limit ? limit : UINT64_MAX;
    it->map_gen = evs__maps_pin(s);
    int rc = evs__rtxn_begin(s, &it->txn);
    if (rc < 0) {
        evs__maps_unpin(s, it->map_gen);
        free(it);
        return rc;
    }
    it->in_gate = 1;
    it->live = 1;
    it->gen = atomic_load(&s->idx_gate.gen);
    it->renewed_ns = evs__coarse_ns();
    uint64_t loc;
    if ((rc = evs__idx_applied_get(it->txn, s, &it->snap_head, &loc)) < 0) {
        evs__rtxn_end(s, it->txn);
        evs__maps_unpin(s, it->map_gen);
        free(it);
        return rc;
    }
    *out = it;
    return 0;
}

static EVS_MUST_USE int iter_cursor(emb_iter *it, MDB_dbi dbi)
{
    it->dbi = dbi;
    int mrc = mdb_cursor_open(it->txn, dbi, &it->cur);
    return mrc ? evs__mdb_err(mrc, "open cursor") : 0;
}

static int emb_read_stream(evs_iter **out, evs_db *db, const char *tenant,
                           const char *stream, int64_t from_version,
                           evs_direction dir, uint64_t limit)
{
    evs__emb *s = (evs__emb *)db;
    emb_iter *it;
    int rc;
    uint32_t tid;
    uint64_t sid = 0;
    int64_t head;
    if ((rc = iter_new(&it, s, limit)) < 0)
        return rc;
    it->kind = IT_EMPTY;
    rc = evs__idx_tenant_get(it->txn, s, tenant, strlen(tenant), &tid);
    if (rc == 0)
        rc = evs__idx_stream_get(it->txn, s, tid, stream, strlen(stream), &sid, &head);
    else if (rc == EVS_ENOTFOUND)
        rc = 0;
    it->backward = dir == EVS_BACKWARD;
    if (rc == 0 && sid != 0) {
        it->kind = dir == EVS_FORWARD ? IT_STREAM_FWD : IT_STREAM_BWD;
        evs__put_be64(it->prefix, sid);
        it->plen = 8;
        uint64_t v = (dir == EVS_BACKWARD && from_version == EVS_END) ? UINT64_MAX
                                                                     : (uint64_t)from_version;
        evs__put_be64(it->start, sid);
        evs__put_be64(it->start + 8, v);
        it->slen = 16;
        rc = iter_cursor(it, s->db_stream_events);
    }
    if (rc < 0) {
        emb_iter_free(&it->base);
        return rc;
    }
    iter_ready(it);
    *out = &it->base;
    return 0;
}

static int emb_read_all(evs_iter **out, evs_db *db, const char *tenant,
                        uint64_t from_position, uint64_t limit, unsigned flags)
{
    /* EVS__READ_RETAIN holds without effort: events point into the log's
     * mapping, which lives as long as the handle */
    evs__emb *s = (evs__emb *)db;
    emb_iter *it;
    int rc;
    uint32_t tid;
    if ((rc = iter_new(&it, s, limit)) < 0)
        return rc;
    it->last_pos = from_position - 1 < it->snap_head ? from_position - 1 : it->snap_head;
    if (!tenant) {
        it->kind = IT_ALL;
        it->skip_system = !(flags & EVS__READ_SYSTEM);
        evs__put_be64(it->start, from_position);
        it->slen = 8;
        rc = iter_cursor(it, s->db_positions);
    } else {
        rc = evs__idx_tenant_get(it->txn, s, tenant, strlen(tenant), &tid);
        if (rc == EVS_ENOTFOUND) {
            it->kind = IT_EMPTY;
            rc = 0;
        } else if (rc == 0) {
            it->kind = IT_TENANT;
            evs__put_be32(it->prefix, tid);
            it->plen = 4;
            evs__put_be32(it->start, tid);
            evs__put_be64(it->start + 4, from_position);
            it->slen = 12;
            rc = iter_cursor(it, s->db_tenant_events);
        }
    }
    if (rc < 0) {
        emb_iter_free(&it->base);
        return rc;
    }
    iter_ready(it);
    *out = &it->base;
    return 0;
}

static int emb_read_query(evs_iter **out, evs_db *db, const char *tenant,
                          const evs_query *query, uint64_t bound, evs_direction dir,
                          uint64_t limit, unsigned flags)
{
    (void)flags; /* as emb_read_all */
    evs__emb *s = (evs__emb *)db;
    emb_iter *it;
    uint32_t tid;
    int rc;
    if ((rc = iter_new(&it, s, limit)) < 0)
        return rc;
    it->kind = IT_EMPTY;
    it->backward = dir == EVS_BACKWARD;
    it->last_pos = it->backward ? 0 : bound < it->snap_head ? bound : it->snap_head;
    rc = evs__idx_tenant_get(it->txn, s, tenant, strlen(tenant), &tid);
    if (rc == EVS_ENOTFOUND) {
        rc = 0;
    } else if (rc == 0) {
        if (it->backward)
            it->next_from = bound == 0 || bound - 1 > it->snap_head ? it->snap_head
                                                                     : bound - 1;
        else
            it->next_from = bound + 1;
        if ((it->backward ? it->next_from > 0 : bound < it->snap_head) &&
            (rc = evs__qplan_new(&it->plan, s, it->txn, tid, query, it->backward, 0)) == 0)
            it->kind = IT_QUERY;
    }
    if (rc < 0) {
        emb_iter_free(&it->base);
        return rc;
    }
    iter_ready(it);
    *out = &it->base;
    return 0;
}

/* Several streams from one snapshot, one after another (the command
 * executor's read: one read transaction, no per-stream round trips). */
static int emb_read_streams(evs_iter **out, evs_db *db, const char *tenant,
                            const evs_stream_read *streams, size_t n)
{
    evs__emb *s = (evs__emb *)db;
    emb_iter *it;
    uint32_t tid;
    int rc;
    if ((rc = iter_new(&it, s, 0)) < 0)
        return rc;
    it->kind = IT_EMPTY;
    rc = evs__idx_tenant_get(it->txn, s, tenant, strlen(tenant), &tid);
    if (rc == EVS_ENOTFOUND) {
        rc = 0;
    } else if (rc == 0) {
        it->msid = calloc(n, sizeof(*it->msid));
        it->mfrom = calloc(n, sizeof(*it->mfrom));
        if (!it->msid || !it->mfrom)
            rc = evs__err(EVS_ENOMEM, "out of memory reading %zu streams", n);
        for (size_t i = 0; rc == 0 && i < n; i++) {
            int64_t head;
            rc = evs__idx_stream_get(it->txn, s, tid, streams[i].stream,
                                     strlen(streams[i].stream), &it->msid[i], &head);
            it->mfrom[i] = streams[i].from_version;
        }
        it->mn = n;
        if (rc == 0 && (rc = iter_cursor(it, s->db_stream_events)) == 0)
            it->kind = IT_STREAMS;
    }
    if (rc < 0) {
        emb_iter_free(&it->base);
        return rc;
    }
    iter_ready(it);
    *out = &it->base;
    return 0;
}

/* After a renew: the cursor on the entry after (forward) or before
 * (backward) last_key, the last one returned. Returns an MDB code. */
static EVS_MUST_USE int reseek(emb_iter *it, MDB_val *k, MDB_val *v, int backward)
{
    it->reseek = 0;
    k->mv_size = it->last_klen;
    k->mv_data = it->last_key;
    int mrc = mdb_cursor_get(it->cur, k, v, MDB_SET_RANGE);
    if (mrc == MDB_NOTFOUND && backward)
        return mdb_cursor_get(it->cur, k, v, MDB_LAST);
    if (mrc != 0)
        return mrc;
    if (backward || (k->mv_size == it->last_klen &&
                     memcmp(k->mv_data, it->last_key, it->last_klen) == 0))
        return mdb_cursor_get(it->cur, k, v, backward ? MDB_PREV : MDB_NEXT);
    return 0;
}

/* IT_STREAMS: position the cursor on the next entry, moving on to the next
 * stream when one ends (at its head in this read's snapshot). Returns an
 * MDB code. */
static EVS_MUST_USE int streams_step(emb_iter *it, MDB_val *k, MDB_val *v)
{
    for (;;) {
        int mrc;
        if (it->started) {
            mrc = it->reseek ? reseek(it, k, v, 0) : mdb_cursor_get(it->cur, k, v, MDB_NEXT);
            if (mrc == 0 && k->mv_size == 16 && memcmp(k->mv_data, it->prefix, 8) == 0 &&
                evs__get_le64(v->mv_data) <= it->snap_head)
                return 0;
            if (mrc != 0 && mrc != MDB_NOTFOUND)
                return mrc;
            it->started = 0;
            it->mi++;
        }
        while (it->mi < it->mn && it->msid[it->mi] == 0)
            it->mi++;
        if (it->mi >= it->mn)
            return MDB_NOTFOUND;
        it->started = 1;
        it->reseek = 0;
        evs__put_be64(it->prefix, it->msid[it->mi]);
        evs__put_be64(it->start, it->msid[it->mi]);
        evs__put_be64(it->start + 8, (uint64_t)it->mfrom[it->mi]);
        k->mv_size = 16;
        k->mv_data = it->start;
        mrc = mdb_cursor_get(it->cur, k, v, MDB_SET_RANGE);
        if (mrc == 0 && k->mv_size == 16 && memcmp(k->mv_data, it->prefix, 8) == 0 &&
            evs__get_le64(v->mv_data) <= it->snap_head)
            return 0;
        if (mrc != 0 && mrc != MDB_NOTFOUND)
            return mrc;
        it->started = 0;
        it->mi++;
    }
}

/* IT_QUERY: the next match into e. 1, 0 at the end (or past this read's
 * head, in a renewed snapshot), or an error. */
static EVS_MUST_USE int query_fetch(emb_iter *it, struct iter_ent *e)
{
    int r = evs__qplan_seek(it->plan, it->next_from, &e->pos, &e->loc, &e->rec);
    if (r <= 0)
        return r;
    if (!it->backward && e->pos > it->snap_head)
        return 0;
    it->next_from = it->backward ? e->pos - 1 : e->pos + 1;
    return 1;
}

static int emb_iter_marker(uint64_t *out, const evs_iter *base)
{
    const emb_iter *it = (const emb_iter *)base;
    *out = it->backward || it->exhausted ? it->snap_head : it->last_pos;
    return 0;
}

/* Position the cursor on the first entry of a backward read: the largest
 * key <= start. */
static EVS_MUST_USE int seek_backward(emb_iter *it, MDB_val *k, MDB_val *v)
{
    k->mv_size = it->slen;
    k->mv_data = it->start;
    int mrc = mdb_cursor_get(it->cur, k, v, MDB_SET_RANGE);
    if (mrc == MDB_NOTFOUND)
        return mdb_cursor_get(it->cur, k, v, MDB_LAST);
    if (mrc != 0)
        return mrc;
    if (k->mv_size == it->slen && memcmp(k->mv_data, it->start, it->slen) == 0)
        return 0;
    return mdb_cursor_get(it->cur, k, v, MDB_PREV);
}

static EVS_MUST_USE int iter_fetch(emb_iter *it);
static EVS_MUST_USE int iter_decode(emb_iter *it, const struct iter_ent *e);

static int emb_iter_next(const evs_event **ev, evs_iter *base)
{
    emb_iter *it = (emb_iter *)base;
    int rc;
    for (;;) {
        if (it->kind == IT_EMPTY) {
            it->exhausted = 1;
            return EVS_ITEROVER;
        }
        if (it->left == 0)
            return EVS_ITEROVER;
        if (it->bi == it->bn) {
            if (it->fetch_rc < 0) {
                rc = it->fetch_rc;
                it->fetch_rc = 0;
                evs__set_error_text(it->fetch_msg);
                return rc;
            }
            if (it->end_reached) {
                it->left = 0;
                it->exhausted = 1;
                return EVS_ITEROVER;
            }
            if ((rc = iter_fetch(it)) < 0)
                return rc;
            continue;
        }
        /* a caller slower than EVS_READ_RENEW_MS per batch: let the
         * snapshot go now (no page is touched), the next fetch renews it;
         * looked at every 8 events (the clock costs 7 ns, an event 40) */
        if ((it->bi & 7) == 0 && it->live &&
            evs__coarse_ns() - it->renewed_ns >= EVS_READ_RENEW_MS * UINT64_C(1000000)) {
            mdb_txn_reset(it->txn);
            it->live = 0;
        }
        const struct iter_ent *e = &it->batch[it->bi++];
        if ((rc = iter_decode(it, e)) < 0)
            return rc;
        it->last_pos = e->pos;
        if (rc == 1)
            continue; /* removed by a scavenge after this entry was read */
        if (it->skip_system && it->ev.stream[0] == '$')
            continue; /* skipped events do not count against the limit */
        it->left--;
        *ev = &it->ev;
        return 0;
    }
}

/* The record of an entry, checked (its CRC) and decoded into it->ev: 0;
 * 1 when a scavenge removed the record since the entry was read. */
static EVS_MUST_USE int iter_decode(emb_iter *it, const struct iter_ent *e)
{
    const uint8_t *rec = e->rec;
    if (!rec) {
        uint32_t seg = evs__loc_seg(e->loc), off = evs__loc_off(e->loc), len;
        const uint8_t *m = evs__seg_map(it->s, seg);
        if (!m || off >= it->s->seg_size)
            return evs__err(EVS_ECORRUPT, "index points outside the log (segment %u "
                            "offset %u)", seg, off);
        int rr = evs__rec_check(m + off, it->s->seg_size - off, &len);
        if (rr == EVS_REC_ZERO && evs__seg_scavenged(m))
            return 1; /* a hole: a scavenge removed it (scavenge.c) */
        if (rr != EVS_REC_OK)
            return evs__err(EVS_ECORRUPT, "log segment %u offset %u: record at position "
                            "%" PRIu64 " is damaged: %s", seg, off, e->pos,
                            evs__rec_problem(rr));
        rec = m + off;
    }
    return evs__rec_decode(rec, &it->ev, &it->tags, &it->tags_cap);
}

static EVS_MUST_USE int cursor_fetch(emb_iter *it, struct iter_ent *e);

/*
 * The next batch of entries (at most the read's limit, at most 64), in one
 * pass through the gate: what the gate costs is paid per batch, not per
 * event. An error after some entries waits in fetch_rc until they are
 * returned; the end lets the snapshot go at once.
 */
static EVS_MUST_USE int iter_fetch(emb_iter *it)
{
    int rc = iter_enter(it);
    if (rc < 0)
        return rc;
    size_t cap = sizeof(it->batch) / sizeof(it->batch[0]);
    size_t want = it->left < cap ? (size_t)it->left : cap;
    it->bi = it->bn = 0;
    while (it->bn < want) {
        struct iter_ent *e = &it->batch[it->bn];
        int r = it->kind == IT_QUERY ? query_fetch(it, e) : cursor_fetch(it, e);
        if (r == 1) {
            it->bn++;
            continue;
        }
        if (r == 0) {
            it->end_reached = 1;
            mdb_txn_reset(it->txn);
            it->live = 0;
        } else if (it->bn == 0) {
            rc = r;
        } else {
            it->fetch_rc = r;
            snprintf(it->fetch_msg, sizeof(it->fetch_msg), "%s", evs_last_error());
        }
        break;
    }
    it->since += it->bn;
    /* the key the cursor is on (the batch's last entry), for a re-seek
     * after a renew; once per batch (a copy per entry costs more) */
    MDB_val k, v;
    if (it->cur && it->bn > 0 && !it->end_reached && !it->fetch_rc &&
        mdb_cursor_get(it->cur, &k, &v, MDB_GET_CURRENT) == 0 &&
        k.mv_size <= sizeof(it->last_key)) {
        memcpy(it->last_key, k.mv_data, k.mv_size);
        it->last_klen = k.mv_size;
    }
    evs__gate_leave(&it->s->idx_gate);
    return rc;
}

/* The cursor kinds: the next entry into e. 1, 0 at the end (or past this
 * read's head, in a renewed snapshot), or an error. */
static EVS_MUST_USE int cursor_fetch(emb_iter *it, struct iter_ent *e)
{
    MDB_val k, v;
    int mrc;
    if (it->kind == IT_STREAMS) {
        mrc = streams_step(it, &k, &v);
    } else if (!it->started) {
        it->started = 1;
        if (it->kind == IT_STREAM_BWD) {
            mrc = seek_backward(it, &k, &v);
        } else {
            k.mv_size = it->slen;
            k.mv_data = it->start;
            mrc = mdb_cursor_get(it->cur, &k, &v, MDB_SET_RANGE);
        }
    } else if (it->reseek) {
        mrc = reseek(it, &k, &v, it->kind == IT_STREAM_BWD);
    } else {
        mrc = mdb_cursor_get(it->cur, &k, &v, it->kind == IT_STREAM_BWD ? MDB_PREV : MDB_NEXT);
    }
    /* a backward read begun on a renewed snapshot: skip what came after
     * this read's head */
    while (mrc == 0 && it->kind == IT_STREAM_BWD && k.mv_size == 16 &&
           memcmp(k.mv_data, it->prefix, 8) == 0 && evs__get_le64(v.mv_data) > it->snap_head)
        mrc = mdb_cursor_get(it->cur, &k, &v, MDB_PREV);
    if (mrc == MDB_NOTFOUND)
        return 0;
    if (mrc != 0)
        return evs__mdb_err(mrc, "read");
    uint64_t epos = it->kind == IT_ALL ? evs__get_be64(k.mv_data)
                    : it->kind == IT_TENANT ? evs__get_be64((const uint8_t *)k.mv_data + 4)
                                            : evs__get_le64(v.mv_data);
    if ((it->plen && (k.mv_size < it->plen || memcmp(k.mv_data, it->prefix, it->plen) != 0)) ||
        epos > it->snap_head) /* the end, or past this read's head (a renewed snapshot) */
        return 0;
    e->pos = epos;
    e->loc = it->kind == IT_STREAM_FWD || it->kind == IT_STREAM_BWD || it->kind == IT_STREAMS
                 ? evs__get_le64((const uint8_t *)v.mv_data + 8)
                 : evs__get_le64(v.mv_data);
    e->rec = NULL;
    return 1;
}

static void emb_iter_free(evs_iter *base)
{
    emb_iter *it = (emb_iter *)base;
    /* closing cursors and ending a read txn touch no page: outside the gate */
    iter_ready(it);
    evs__qplan_free(it->plan);
    free(it->msid);
    free(it->mfrom);
    if (it->cur)
        mdb_cursor_close(it->cur);
    if (it->txn)
        mdb_txn_abort(it->txn);
    free((void *)it->tags);
    evs__maps_unpin(it->s, it->map_gen);
    free(it);
}

/* ---- commit notification ------------------------------------------------- */

/* The notify word (notify.c): bumped by every commit of any process. */
static int emb_commit_seq(uint64_t *out, evs_db *db)
{
    evs__emb *s = (evs__emb *)db;
    if (!s->notify)
        return evs__notify_wait(s, 0, 0); /* the error: this handle cannot wait */
    *out = evs__notify_seq(s);
    return 0;
}

/* See notify.c for why no wake-up is lost between commit_seq and here. */
static int emb_wait_commit(evs_db *db, uint64_t seq, uint64_t deadline_ns,
                           const _Atomic int *cancel)
{
    evs__emb *s = (evs__emb *)db;
    if (cancel && atomic_load(cancel))
        return 0;
    return evs__notify_wait(s, (uint32_t)seq, deadline_ns);
}

static void emb_wake_readers(evs_db *db)
{
    evs__notify_kick((evs__emb *)db);
}

/* ---- tokens --------------------------------------------------------------- */

static int emb_event_position(uint64_t *out, evs_db *db, const evs_uuid *id)
{
    evs__emb *s = (evs__emb *)db;
    MDB_txn *txn;
    uint64_t loc;
    int rc = evs__rtxn_begin(s, &txn);
    if (rc < 0)
        return rc;
    rc = evs__idx_id_get(txn, s, id->bytes, out, &loc);
    evs__rtxn_end(s, txn);
    return rc;
}

/* The position of a tenant's first (last = 0) or last (last = 1) event, 0
 * when it has none: one seek in tenant_events. */
static EVS_MUST_USE int tenant_edge(uint64_t *out, evs__emb *s, const char *tenant, int last)
{
    MDB_txn *txn;
    MDB_cursor *cur = NULL;
    uint32_t tid;
    *out = 0;
    int mrc, rc = evs__rtxn_begin(s, &txn);
    if (rc < 0)
        return rc;
    rc = evs__idx_tenant_get(txn, s, tenant, strlen(tenant), &tid);
    if (rc == EVS_ENOTFOUND) {
        rc = 0;
        goto out;
    }
    if (rc < 0)
        goto out;
    if ((mrc = mdb_cursor_open(txn, s->db_tenant_events, &cur)) != 0) {
        rc = evs__mdb_err(mrc, "open cursor");
        goto out;
    }
    /* first: the first key >= (tid, 0); last: the key just before (tid + 1, 0) */
    uint8_t kb[12] = {0};
    evs__put_be32(kb, last ? tid + 1 : tid);
    MDB_val k = {12, kb}, v;
    mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    if (last && mrc == MDB_NOTFOUND)
        mrc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    else if (last && mrc == 0)
        mrc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
    if (mrc == 0 && k.mv_size == 12 && evs__get_be32(k.mv_data) == tid)
        *out = evs__get_be64((const uint8_t *)k.mv_data + 4);
    else if (mrc != 0 && mrc != MDB_NOTFOUND)
        rc = evs__mdb_err(mrc, "tenant_events lookup");
out:
    if (cur)
        mdb_cursor_close(cur);
    evs__rtxn_end(s, txn);
    return rc;
}

static int emb_token_tail(uint64_t *out, evs_db *db, const char *tenant)
{
    uint64_t first;
    *out = 0;
    if (!tenant)
        return 0; /* positions start at 1 and are never removed */
    int rc = tenant_edge(&first, (evs__emb *)db, tenant, 0);
    if (rc == 0 && first > 0)
        *out = first - 1;
    return rc;
}

/*
 * The times index has an entry (t, p) wherever the running maximum of
 * recorded_at grows: p is the first position whose event reached t. So
 * the first event with recorded_at >= t is the entry at or after t — one
 * cursor seek — even when imports put older times after newer ones
 * (format.h).
 */
static int emb_token_at(uint64_t *out, evs_db *db, int64_t time_us)
{
    evs__emb *s = (evs__emb *)db;
    MDB_txn *txn;
    MDB_cursor *cur = NULL;
    uint64_t head, L;
    int mrc, rc = evs__rtxn_begin(s, &txn);
    if (rc < 0)
        return rc;
    if ((mrc = mdb_cursor_open(txn, s->db_times, &cur)) != 0) {
        rc = evs__mdb_err(mrc, "open cursor");
        goto out;
    }
    uint8_t kb[8];
    evs__time_key(kb, time_us);
    MDB_val k = {8, kb}, v;
    mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    if (mrc == 0 && v.mv_size == 8) {
        *out = evs__get_le64(v.mv_data) - 1;
    } else if (mrc == MDB_NOTFOUND) {
        /* nothing that recent: the head (of this snapshot) */
        rc = evs__idx_applied_get(txn, s, &head, &L);
        *out = head;
    } else {
        rc = mrc ? evs__mdb_err(mrc, "times lookup")
                 : evs__err(EVS_ECORRUPT, "index: a times entry has a bad value");
    }
out:
    if (cur)
        mdb_cursor_close(cur);
    evs__rtxn_end(s, txn);
    return rc;
}

/* ---- small reads ---------------------------------------------------------- */

static int emb_stream_version(int64_t *out, evs_db *db, const char *tenant,
                              const char *stream)
{
    evs__emb *s = (evs__emb *)db;
    MDB_txn *txn;
    uint32_t tid;
    uint64_t sid;
    int rc = evs__rtxn_begin(s, &txn);
    if (rc < 0)
        return rc;
    *out = EVS_NO_STREAM;
    rc = evs__idx_tenant_get(txn, s, tenant, strlen(tenant), &tid);
    if (rc == 0)
        rc = evs__idx_stream_get(txn, s, tid, stream, strlen(stream), &sid, out);
    else if (rc == EVS_ENOTFOUND)
        rc = 0;
    evs__rtxn_end(s, txn);
    return rc;
}

static int emb_head(uint64_t *out, evs_db *db, const char *tenant)
{
    evs__emb *s = (evs__emb *)db;
    if (!tenant && !s->readonly) {
        *out = atomic_load_explicit(&s->head, memory_order_acquire);
        return 0;
    }
    if (!tenant) { /* a writer elsewhere may have moved it: ask the index */
        MDB_txn *t;
        uint64_t loc;
        int rc = evs__rtxn_begin(s, &t);
        if (rc < 0)
            return rc;
        rc = evs__idx_applied_get(t, s, out, &loc);
        evs__rtxn_end(s, t);
        return rc;
    }
    return tenant_edge(out, s, tenant, 1);
}

static int emb_stats(evs_stats *out, evs_db *db)
{
    evs__emb *s = (evs__emb *)db;
    MDB_txn *txn;
    MDB_stat st;
    uint64_t applied = 0, L = 0; /* as an empty index when it cannot be read */
    char path[4096];
    struct stat fst;
    int rc = evs__rtxn_begin(s, &txn);
    if (rc < 0)
        return rc;
    rc = evs__idx_applied_get(txn, s, &applied, &L);
    out->events = applied;
    /* after a scavenge, fewer events than positions */
    if (mdb_stat(txn, s->db_positions, &st) == 0)
        out->events = st.ms_entries;
    out->head_position = applied;
    if (mdb_stat(txn, s->db_streams, &st) == 0)
        out->streams = st.ms_entries;
    if (mdb_stat(txn, s->db_tenants, &st) == 0)
        out->tenants = st.ms_entries;
    evs__rtxn_end(s, txn);
    out->segments = atomic_load(&s->nsegs);
    if (evs__loc_seg(L) > out->segments) /* read-only: a writer rolled on */
        out->segments = evs__loc_seg(L);
    /* blocks on disk: a scavenged segment is sparse (scavenge.c) */
    out->log_bytes = 0;
    for (uint64_t no = 1; no <= out->segments; no++) {
        snprintf(path, sizeof(path), "%s/log/%016" PRIx64 ".evslog", s->dir, no);
        out->log_bytes += stat(path, &fst) == 0 ? (uint64_t)fst.st_blocks * 512u
                                                : s->seg_size;
    }
    snprintf(path, sizeof(path), "%s/index/data.mdb", s->dir);
    if (stat(path, &fst) == 0)
        out->index_bytes = (uint64_t)fst.st_blocks * 512u;
    return rc;
}
