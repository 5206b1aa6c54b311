/*
 * backup.c -- evs_backup on the embedded store: a consistent copy made
 * beside the writer, incremental over sealed log segments.
 *
 * The position. The index never gets ahead of the durable log (writer.c:
 * a group's index commit follows its fdatasync), and a committed index
 * transaction is a consistent snapshot. So the backup copies the index
 * (mdb_env_copyfd2: one read transaction; LMDB holds the writer's next
 * commit back only while it copies the two meta pages; in this process a
 * remap waits for the whole copy: make_room), reads the copy's `applied`
 * = (P, L), and then copies the log up to location L.
 * Every record up to position P is in the log, durable, and never
 * rewritten (recovery cuts nothing at or below an acknowledged position),
 * whatever the writer does meanwhile:
 *
 *   source  seg 1 | seg 2 | ... | seg k [ records ... L | later records ]
 *   backup  seg 1 | seg 2 | ... | seg k [ records ... L | zeros ........ ]
 *           index/data.mdb (the copy: applied = P, L), snapshots/data.mdb
 *           (a copy), state (CLEAN, durable P, naming the backup's own
 *           files), BACKUP (what, from where, up to where)
 *
 * The snapshots are copied just before the index: a snapshot is saved at
 * a version its stream has in the index then, so none is past P.
 *
 * The state file names the backup's own inodes and says CLEAN, so an open
 * of the backup trusts its index and snapshots and treats its log as an
 * original (state.c): it opens as it is, with no rebuild.
 *
 * Incremental. A segment before the one holding L is sealed (the writer
 * syncs a segment before it starts the next, and never writes it again),
 * so a later backup into the same directory rewrites only the segments
 * from the previous backup's last one on, and those a scavenge rewrote
 * since (each rewrite bumps the header's scavenge count: another header,
 * segment_reusable). Before it reuses anything it
 * checks that the store still has the previous backup's history: the
 * record at the previous position is byte for byte the one in the backup
 * (a store restored from an older backup and written to since has other
 * records there: refused, not mixed; one a scavenge removed since leaves
 * a hole in a scavenged segment and no index entry: the last record the
 * source still has before it is compared instead, same_but_scavenged);
 * and that DEST's log holds nothing
 * after that record but the source's own records (an interrupted run's):
 * DEST opened as a store and appended to is refused, also when the
 * writer was killed and never recorded how far its log went.
 *
 * Interruptions. A new backup is made in DEST.tmp-XXXXXX and renamed to
 * DEST when complete; into an existing empty directory (perhaps a mount
 * point, where the rename would fail), in DEST itself: SCRATCH first, the
 * state last, SCRATCH removed after it, so a directory holding SCRATCH
 * and no BACKUP is an unfinished one, started over by the next run. An
 * incremental one writes every file under a
 * temporary name and renames it into place in an order that keeps the
 * directory a usable store at every step: segments first, in increasing
 * order (each one a superset of the one it replaces, synced, the directory
 * synced after each rename), then the index, the snapshots, BACKUP and
 * the state. Killed half-way, the backup opens as a store holding at least
 * the previous backup's events (an index the state does not name is
 * rebuilt from the log on open).
 *
 *     BACKUP (text, one "key value" per line)
 *     evstore-backup 1
 *     store       the source store's directory (absolute)
 *     identity    the event id of position 1 ("-" for an empty store)
 *     segment_size  bytes
 *     position    P: the backup holds exactly the events 1..P
 *     record      segment and offset of the record at P (0 0 when P = 0)
 *     segments    the number of log segments in the backup
 *     time        when it was made, UTC (ISO 8601)
 *     bytes_copied, bytes_reused, segments_copied, segments_reused
 */
#include "embedded/embedded.h"
#include "util/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BACKUP_FILE "BACKUP"
#define BACKUP_FORMAT 1
#define SCRATCH "backup.tmp"   /* the index and snapshot copies before they
                                  are renamed into place */
#define COPY_CHUNK (1u << 20)
/* every path buffer: the front end limits DEST to 3000 bytes, realpath to
 * PATH_MAX */
#define PATH_BUF (PATH_MAX + 512)

/* What a previous backup's BACKUP file says. */
typedef struct prev_backup {
    char identity[40];
    uint64_t seg_size;
    uint64_t position;
    uint32_t rec_seg, rec_off; /* the record at position */
    uint32_t segments;
} prev_backup;

typedef struct bk {
    evs__emb *s;
    const evs_backup_options *opts;
    evs_backup_result *res;
    char dest[PATH_BUF];
    char work[PATH_BUF];   /* where the files are written: DEST, or the
                              temporary directory of a new backup */
    int incremental;
    int in_place;          /* a new backup filled into DEST, an existing
                              empty directory (or one an interrupted such
                              backup left: leftovers) */
    int leftovers;
    int lock_fd;           /* DEST/LOCK, flock'ed: no writer, no other backup */
    prev_backup prev;
    uint64_t position, loc, rec_loc;
    char identity[40];
    uint64_t total, done;  /* progress, bytes */
    int scav_locked;       /* holds s->scav_lock (scavenge.c) */
} bk;

/* A path (PATH_BUF bytes) from a format; long input is cut, never overrun. */
static void pathf(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pathf(char *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, PATH_BUF, fmt, ap);
    va_end(ap);
}

static EVS_MUST_USE int io_err(int e, const char *what, const char *path)
{
    if (e == ENOSPC || e == EDQUOT)
        return evs__err(EVS_ENOSPC, "backup: %s %s: %s (free space there; the previous "
                        "backup, if any, is still good)", what, path, strerror(e));
    return evs__err(EVS_EIO, "backup: %s %s: %s", what, path, strerror(e));
}

static EVS_MUST_USE int write_all(int fd, const void *buf, size_t n, const char *path)
{
    const uint8_t *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return io_err(w < 0 ? errno : ENOSPC, "cannot write", path);
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static EVS_MUST_USE int sync_dir(const char *path)
{
    int e = evs__fsync_dir(path);
    return e ? io_err(e, "cannot sync directory", path) : 0;
}

static void progress(bk *b, uint64_t n)
{
    b->done += n;
    if (b->opts->progress)
        b->opts->progress(b->opts->progress_ctx, b->done,
                          b->total > b->done ? b->total : b->done);
}

static EVS_MUST_USE int make_dir(const char *path)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return io_err(errno, "cannot create directory", path);
    return 0;
}

/* ---- BACKUP ------------------------------------------------------------- */

static EVS_MUST_USE int read_backup_file(bk *b)
{
    char path[PATH_BUF], line[PATH_BUF];
    prev_backup *p = &b->prev;
    int format = 0, have_pos = 0, have_size = 0, have_rec = 0, have_segs = 0;
    pathf(path, "%s/%s", b->dest, BACKUP_FILE);
    FILE *f = fopen(path, "re");
    if (!f)
        return io_err(errno, "cannot read", path);
    memset(p, 0, sizeof(*p));
    while (fgets(line, sizeof(line), f)) {
        char key[32], val[64];
        unsigned long long a, c;
        line[strcspn(line, "\n")] = 0;
        if (sscanf(line, "%31s %63s", key, val) != 2)
            continue;
        if (!strcmp(key, "evstore-backup"))
            format = atoi(val);
        else if (!strcmp(key, "identity"))
            snprintf(p->identity, sizeof(p->identity), "%.39s", val);
        else if (!strcmp(key, "segment_size") && sscanf(val, "%llu", &a) == 1)
            p->seg_size = a, have_size = 1;
        else if (!strcmp(key, "position") && sscanf(val, "%llu", &a) == 1)
            p->position = a, have_pos = 1;
        else if (!strcmp(key, "segments") && sscanf(val, "%llu", &a) == 1)
            p->segments = (uint32_t)a, have_segs = 1;
        else if (!strcmp(key, "record") && sscanf(line, "%*s %llu %llu", &a, &c) == 2)
            p->rec_seg = (uint32_t)a, p->rec_off = (uint32_t)c, have_rec = 1;
    }
    fclose(f);
    if (format != BACKUP_FORMAT || !have_pos || !have_size || !have_rec || !have_segs ||
        !p->identity[0])
        return evs__err(format > BACKUP_FORMAT ? EVS_EFORMAT : EVS_EINVAL,
                        "backup: %s is not a backup file this evstore (%s) can read "
                        "(format %d); back up into a new directory", path,
                        EVS_VERSION_STRING, format);
    return 0;
}

static EVS_MUST_USE int write_backup_file(bk *b)
{
    char path[PATH_BUF], tmp[PATH_BUF], text[PATH_BUF + 1024], when[32];
    char store[PATH_BUF];
    time_t now = time(NULL);
    struct tm tm;
    evs_backup_result *r = b->res;
    gmtime_r(&now, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (!realpath(b->s->dir, store))
        pathf(store, "%s", b->s->dir);
    int n = snprintf(text, sizeof(text),
                     "evstore-backup %d\nstore %s\nidentity %s\nsegment_size %u\n"
                     "position %" PRIu64 "\nrecord %u %u\nsegments %u\ntime %s\n"
                     "bytes_copied %" PRIu64 "\nbytes_reused %" PRIu64 "\n"
                     "segments_copied %" PRIu64 "\nsegments_reused %" PRIu64 "\n",
                     BACKUP_FORMAT, store, b->identity, b->s->seg_size, b->position,
                     b->position ? evs__loc_seg(b->rec_loc) : 0,
                     b->position ? evs__loc_off(b->rec_loc) : 0, evs__loc_seg(b->loc), when,
                     r->bytes_copied, r->bytes_reused, r->segments_copied,
                     r->segments_reused);
    pathf(path, "%s/%s", b->work, BACKUP_FILE);
    pathf(tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return io_err(errno, "cannot create", tmp);
    int rc = write_all(fd, text, (size_t)n, tmp);
    if (rc == 0 && fsync(fd) != 0)
        rc = io_err(errno, "cannot sync", tmp);
    close(fd);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = io_err(errno, "cannot rename", tmp);
    if (rc < 0)
        unlink(tmp);
    return rc < 0 ? rc : sync_dir(b->work);
}

/* ---- LMDB copies ---------------------------------------------------------- */

/* Copy env (a consistent snapshot) to the new file path, synced. *mrc:
 * LMDB's code when the copy itself failed (else 0). */
static EVS_MUST_USE int copy_env(bk *b, MDB_env *env, const char *path, int *mrc)
{
    struct stat st;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), rc = 0;
    if (fd < 0)
        return io_err(errno, "cannot create", path);
    *mrc = mdb_env_copyfd2(env, fd, 0);
    if (*mrc != 0)
        rc = *mrc > 0 ? io_err(*mrc, "cannot copy an LMDB environment to", path)
                      : evs__mdb_err(*mrc, "backup: copy an LMDB environment");
    else if (fsync(fd) != 0)
        rc = io_err(errno, "cannot sync", path);
    if (rc == 0 && fstat(fd, &st) == 0)
        b->res->bytes_copied += (uint64_t)st.st_size;
    close(fd);
    return rc;
}

/*
 * Room in the index's map before its copy. The copy is made inside the
 * index's gate (copy_index), for as long as LMDB takes to write the file
 * out; a remap in this process -- the writer growing the map for a group
 * that does not fit -- waits for the copy, and with it that group's
 * appends and every read of this handle that comes after the remap
 * began. So a backup on the writer's handle first grows the map to leave
 * free room for half the index again (at least a quarter of the map's
 * first size, at most EVS_IDX_MAP_STEP): only an index that grows by more
 * than that during the copy makes appends and reads wait.
 *
 * The map may only be remapped while no write transaction is open: the
 * writer does it at its next group (evs__idx_reserve reads idx_room_ask
 * and clears it), or, when no group is being committed, this thread,
 * holding the committer's role (s->busy, as an inline committer does)
 * meanwhile. Best effort: after a second of neither, or when growing
 * fails (the writer will meet the same at its next group), the copy goes
 * ahead. A read-only handle has no map of its own to grow: its readers
 * wait only when the writer (another process) grew the map during the
 * copy and they adopt the new size.
 */
static void make_room(bk *b)
{
    evs__emb *s = b->s;
    MDB_envinfo info;
    MDB_stat st;
    MDB_txn *txn;
    uint64_t used = 0;
    if (s->readonly || s->idx_fd < 0)
        return;
    if (evs__rtxn_begin(s, &txn) < 0) {
        evs__clear_error(); /* the copy says why */
        return;
    }
    if (mdb_env_info(s->env, &info) == 0 && mdb_env_stat(s->env, &st) == 0)
        used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    evs__rtxn_end(s, txn);
    uint64_t room = used / 2;
    if (room < s->idx_map_min / 4)
        room = s->idx_map_min / 4;
    if (room > EVS_IDX_MAP_STEP)
        room = EVS_IDX_MAP_STEP;
    atomic_store(&s->idx_room_ask, room);
    for (int i = 0; i < 1000 && atomic_load(&s->idx_room_ask); i++) {
        pthread_mutex_lock(&s->qlock);
        int mine = !s->busy && !s->failed, failed = s->failed;
        if (mine)
            s->busy = 1;
        pthread_mutex_unlock(&s->qlock);
        if (failed)
            break; /* no more groups: the copy cannot be held up */
        if (mine) {
            /* need 0: only the asked room (and the usual runway) */
            if (evs__idx_reserve(s, 0) < 0)
                evs__clear_error();
            pthread_mutex_lock(&s->qlock);
            s->busy = 0;
            if (s->writer_idle) /* appends queued meanwhile, or a stop */
                pthread_cond_signal(&s->qcond);
            pthread_mutex_unlock(&s->qlock);
            break;
        }
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    uint64_t left = room;
    atomic_compare_exchange_strong(&s->idx_room_ask, &left, 0);
}

/*
 * The index's copy, made inside its gate (index.c, "The map"): a remap in
 * this process (the writer growing the map) waits until the copy is
 * done (make_room makes that rare); a map that a writer in another
 * process grew is adopted (evs__rtxn_begin) and the copy tried again.
 */
static EVS_MUST_USE int copy_index(bk *b, const char *path)
{
    for (int tries = 0;; tries++) {
        MDB_txn *txn;
        int mrc, rc = evs__rtxn_begin(b->s, &txn);
        if (rc < 0)
            return rc;
        uint64_t before = b->res->bytes_copied;
        rc = copy_env(b, b->s->env, path, &mrc);
        evs__rtxn_end(b->s, txn);
        /* outside the gate: the caller's callback may take its time */
        progress(b, b->res->bytes_copied - before);
        if (rc < 0 && mrc == MDB_MAP_RESIZED && tries < 16) {
            evs__clear_error();
            continue;
        }
        return rc;
    }
}

/* The copy's end: *pos = applied, *loc = the log location just after it,
 * *rec_loc = the location of the record at *pos. */
static EVS_MUST_USE int copy_applied(const char *path, uint64_t *pos, uint64_t *loc,
                                     uint64_t *rec_loc)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi meta, positions;
    MDB_val k = {7, "applied"}, v;
    int rc = 0, mrc;
    *pos = 0;
    *loc = evs__loc(1, EVS_SEG_HEADER_SIZE);
    *rec_loc = 0;
    if ((mrc = mdb_env_create(&env)) != 0)
        return evs__mdb_err(mrc, "backup: read the index copy");
    mdb_env_set_maxdbs(env, 16);
    if ((mrc = mdb_env_open(env, path, MDB_RDONLY | MDB_NOLOCK | MDB_NOSUBDIR |
                            MDB_NOTLS, 0644)) != 0 ||
        (mrc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) != 0) {
        rc = evs__mdb_err(mrc, "backup: read the index copy");
        goto out;
    }
    mrc = mdb_dbi_open(txn, "meta", 0, &meta);
    if (mrc == MDB_NOTFOUND)
        goto out; /* a store never written: nothing in it */
    if (mrc != 0 || (mrc = mdb_get(txn, meta, &k, &v)) != 0) {
        if (mrc == MDB_NOTFOUND)
            goto out;
        rc = evs__mdb_err(mrc, "backup: read the index copy's end");
        goto out;
    }
    if (v.mv_size != 16) {
        rc = evs__err(EVS_ECORRUPT, "backup: the index's applied position has %zu bytes",
                      v.mv_size);
        goto out;
    }
    *pos = evs__get_le64(v.mv_data);
    *loc = evs__get_le64((const uint8_t *)v.mv_data + 8);
    if (*pos == 0)
        goto out;
    uint8_t kb[8];
    evs__put_be64(kb, *pos);
    k.mv_size = 8;
    k.mv_data = kb;
    if ((mrc = mdb_dbi_open(txn, "positions", 0, &positions)) != 0 ||
        (mrc = mdb_get(txn, positions, &k, &v)) != 0 || v.mv_size != 8) {
        rc = evs__err(EVS_ECORRUPT, "backup: the index has no entry for its last "
                      "position %" PRIu64 " (%s); run `evs verify`", *pos,
                      mrc ? mdb_strerror(mrc) : "bad value");
        goto out;
    }
    *rec_loc = evs__get_le64(v.mv_data);
out:
    if (txn)
        mdb_txn_abort(txn);
    mdb_env_close(env);
    return rc;
}

/* ---- the log ------------------------------------------------------------- */

/* The source's record at loc, checked: *len, or an error. */
static EVS_MUST_USE int source_record(evs__emb *s, uint64_t loc, uint64_t pos,
                                      const uint8_t **rec, uint32_t *len)
{
    uint32_t seg = evs__loc_seg(loc), off = evs__loc_off(loc);
    const uint8_t *m = evs__seg_map(s, seg);
    if (!m || off < EVS_SEG_HEADER_SIZE || off >= s->seg_size ||
        evs__rec_check(m + off, s->seg_size - off, len) != EVS_REC_OK ||
        evs__get_le64(m + off + EVS_REC_OFF_POSITION) != pos)
        return evs__err(EVS_ECORRUPT, "backup: the record at position %" PRIu64 " (log "
                        "segment %u offset %u) cannot be read; run `evs verify`", pos,
                        seg, off);
    *rec = m + off;
    return 0;
}

/* Is the backup's segment no in work/log the source's sealed segment? */
static int segment_reusable(bk *b, uint32_t no, const uint8_t *src)
{
    char path[PATH_BUF];
    uint8_t h[EVS_SEG_HEADER_SIZE];
    struct stat st;
    pathf(path, "%s/log/%016" PRIx32 ".evslog", b->work, no);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    int ok = fstat(fd, &st) == 0 && (uint64_t)st.st_size == b->s->seg_size &&
             pread(fd, h, sizeof(h), 0) == (ssize_t)sizeof(h) &&
             memcmp(h, src, sizeof(h)) == 0;
    close(fd);
    return ok;
}

/* The end of the last non-zero 8-byte word of m[off, size), or off
 * (recovery.c has the same for the log it opens). */
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

/*
 * Copy segment no: bytes [0, end) of the source, zeros after; as
 * NNN.evslog.tmp, synced, then renamed into place and the directory
 * synced. The zeros are allocated (fallocate) rather than written where
 * the filesystem can: a backup's last segment is mostly empty, and a
 * restored store appends into it without meeting a full disk.
 */
static EVS_MUST_USE int copy_segment(bk *b, uint32_t no, const uint8_t *m, uint32_t end)
{
    static const uint8_t zeros[COPY_CHUNK];
    char path[PATH_BUF], tmp[PATH_BUF], dir[PATH_BUF];
    uint32_t size = b->s->seg_size;
    uint64_t written = 0;
    int rc = 0;
    pathf(dir, "%s/log", b->work);
    pathf(path, "%s/%016" PRIx32 ".evslog", dir, no);
    pathf(tmp, "%s.tmp", path);
    end = data_end(m, EVS_SEG_HEADER_SIZE, end);
    if (end < EVS_SEG_HEADER_SIZE)
        end = EVS_SEG_HEADER_SIZE;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return io_err(errno, "cannot create", tmp);
    for (uint32_t off = 0; rc == 0 && off < end;) {
        uint32_t n = end - off < COPY_CHUNK ? end - off : COPY_CHUNK;
        rc = write_all(fd, m + off, n, tmp);
        off += n;
        written += n;
        if (rc == 0)
            progress(b, n);
    }
    if (rc == 0 && end < size && fallocate(fd, 0, (off_t)end, (off_t)(size - end)) == 0) {
        progress(b, size - end);
    } else if (rc == 0 && end < size) {
        if (errno != EOPNOTSUPP && errno != ENOSYS)
            rc = io_err(errno, "cannot allocate", tmp);
        for (uint32_t off = end; rc == 0 && off < size;) {
            uint32_t n = size - off < COPY_CHUNK ? size - off : COPY_CHUNK;
            rc = write_all(fd, zeros, n, tmp);
            off += n;
            written += n;
            if (rc == 0)
                progress(b, n);
        }
    }
    if (rc == 0 && fdatasync(fd) != 0)
        rc = io_err(errno, "cannot sync", tmp);
    close(fd);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = io_err(errno, "cannot rename", tmp);
    if (rc < 0) {
        unlink(tmp);
        return rc;
    }
    b->res->segments_copied++;
    b->res->bytes_copied += written;
    /* in order: segment no+1 never has its name before segment no has its
     * new content (a log with a hole would not open) */
    return sync_dir(dir);
}

/* The backup's segments 1..(the one holding L). */
static EVS_MUST_USE int copy_log(bk *b)
{
    evs__emb *s = b->s;
    uint32_t last = evs__loc_seg(b->loc), end = evs__loc_off(b->loc);
    char path[PATH_BUF];
    /* segments after the new end (only in a directory whose log went
     * further, checked to be this store's: check_previous) would follow
     * a log that ends in `last`: away first */
    for (uint32_t no = last + 1; b->incremental; no++) {
        pathf(path, "%s/log/%016" PRIx32 ".evslog", b->work, no);
        if (unlink(path) != 0)
            break;
    }
    pathf(path, "%s/log", b->work);
    int rc;
    if (b->incremental && (rc = sync_dir(path)) < 0)
        return rc;
    for (uint32_t no = 1; no <= last; no++) {
        /* a read-only handle: the file a scavenge of another process
         * rewrote since this handle mapped it (under scav_lock) */
        const uint8_t *m = evs__scav_refresh(s, no);
        if (!m)
            return evs__err(EVS_ECORRUPT, "backup: log segment %u of %s cannot be read "
                            "(the index ends in segment %u)", no, s->dir, last);
        /* sealed in the previous backup too: the same bytes (same history,
         * checked before), unless a scavenge rewrote it since: every rewrite
         * gives the segment another header (its scavenge count, scavenge.c) */
        if (b->incremental && no < b->prev.segments && segment_reusable(b, no, m)) {
            b->res->segments_reused++;
            b->res->bytes_reused += s->seg_size;
            continue;
        }
        rc = copy_segment(b, no, m, no == last ? end : s->seg_size);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- the destination ------------------------------------------------------ */

/* Delete a new backup's directory (only the names it makes); keep_top:
 * keep work itself and its LOCK, which this run holds (an empty directory
 * filled in place). */
static void remove_work(const char *work, int keep_top)
{
    static const char *const dirs[] = {"log", "index", "snapshots", SCRATCH, ""};
    char path[PATH_BUF];
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        pathf(path, "%s/%s", work, dirs[i]);
        DIR *d = opendir(path);
        if (!d)
            continue;
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            char f[PATH_BUF];
            if (de->d_name[0] == '.' || (keep_top && !dirs[i][0] &&
                                         !strcmp(de->d_name, "LOCK")))
                continue;
            pathf(f, "%s/%s", path, de->d_name);
            unlink(f); /* the subdirectories fail here and go below */
        }
        closedir(d);
        if (dirs[i][0])
            rmdir(path);
    }
    if (!keep_top)
        rmdir(work);
}

/* Is dir empty (. and .. only)? */
static int dir_empty(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return 0;
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            n++;
    closedir(d);
    return n == 0;
}

/* Does dir hold only what an interrupted new backup made in place left
 * (SCRATCH, which it makes first and removes last, and the names it
 * makes), and neither BACKUP nor state? */
static int dir_leftovers(const char *path)
{
    static const char *const ours[] = {"LOCK", SCRATCH, "log", "index", "snapshots",
                                       "keys", "keys.tmp"};
    DIR *d = opendir(path);
    if (!d)
        return 0;
    struct dirent *de;
    int scratch = 0, other = 0;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        size_t i = 0;
        while (i < sizeof(ours) / sizeof(ours[0]) && strcmp(de->d_name, ours[i]))
            i++;
        if (i == sizeof(ours) / sizeof(ours[0]))
            other = 1;
        else if (!strcmp(de->d_name, SCRATCH))
            scratch = 1;
    }
    closedir(d);
    return scratch && !other;
}

/* What is at dest: nothing (a new backup, made beside it and renamed), an
 * empty directory (a new backup made in it: it may be a mount point, and
 * a rename onto it would fail after the whole copy, from another
 * filesystem), an earlier backup (incremental), or something else
 * (refused). */
static EVS_MUST_USE int examine_dest(bk *b, const char *dest)
{
    struct stat st;
    char path[PATH_BUF], src[PATH_BUF], parent[PATH_BUF], tmp[PATH_BUF];
    if (strlen(dest) >= sizeof(b->dest) - 64)
        return evs__err(EVS_EINVAL, "backup: destination path is too long");
    pathf(b->dest, "%s", dest);
    /* strip trailing slashes: DEST.tmp-XXXXXX must be a sibling */
    size_t n = strlen(b->dest);
    while (n > 1 && b->dest[n - 1] == '/')
        b->dest[--n] = 0;

    /* DEST must not be the store or inside it */
    pathf(tmp, "%s", b->dest);
    char *slash = strrchr(tmp, '/');
    if (slash == tmp)
        pathf(parent, "/");
    else if (slash) {
        *slash = 0;
        pathf(parent, "%s", tmp);
    } else
        pathf(parent, ".");
    char rparent[PATH_BUF];
    if (!realpath(parent, rparent))
        return evs__err(EVS_EINVAL, "backup: the directory that should hold %s (%s) "
                        "cannot be used: %s; create it first", b->dest, parent,
                        strerror(errno));
    if (realpath(b->s->dir, src)) {
        size_t sl = strlen(src);
        const char *base = slash ? slash + 1 : tmp;
        char full[PATH_BUF];
        pathf(full, "%s/%s", strcmp(rparent, "/") ? rparent : "", base);
        if (!strcmp(full, src) || (!strncmp(rparent, src, sl) &&
                                   (rparent[sl] == '/' || rparent[sl] == 0)))
            return evs__err(EVS_EINVAL, "backup: %s is the store's own directory or "
                            "inside it; back up to a directory outside %s", b->dest, src);
    }

    if (lstat(b->dest, &st) != 0) {
        if (errno != ENOENT)
            return io_err(errno, "cannot access", b->dest);
        return 0; /* new */
    }
    if (!S_ISDIR(st.st_mode))
        return evs__err(EVS_EINVAL, "backup: %s exists and is not a directory; give a new "
                        "or empty directory, or an earlier backup of this store", b->dest);
    pathf(path, "%s/%s", b->dest, BACKUP_FILE);
    if (access(path, F_OK) == 0) {
        b->incremental = 1;
        return 0;
    }
    if (dir_empty(b->dest) || (b->leftovers = dir_leftovers(b->dest)) != 0) {
        b->in_place = 1;
        return 0;
    }
    pathf(path, "%s/" SCRATCH, b->dest);
    if (access(path, F_OK) == 0)
        return evs__err(EVS_EINVAL, "backup: %s holds what an interrupted backup left (%s) "
                        "and other files, and is not a backup (no BACKUP file); refusing "
                        "to write into it: empty it, or give a new or empty directory",
                        b->dest, SCRATCH);
    pathf(path, "%s/log", b->dest);
    if (access(path, F_OK) == 0)
        return evs__err(EVS_EINVAL, "backup: %s is a store, not a backup made by evs "
                        "backup (it has no BACKUP file); refusing to write into it: give "
                        "a new or empty directory", b->dest);
    return evs__err(EVS_EINVAL, "backup: %s is not empty and is not an evstore backup (no "
                    "BACKUP file); give a new or empty directory, or an earlier backup of "
                    "this store", b->dest);
}

/* DEST/LOCK, flock'ed: no store open on DEST for writing, no other
 * backup into it. */
static EVS_MUST_USE int lock_dest(bk *b)
{
    char path[PATH_BUF];
    pathf(path, "%s/LOCK", b->dest);
    b->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (b->lock_fd < 0)
        return io_err(errno, "cannot open", path);
    if (flock(b->lock_fd, LOCK_EX | LOCK_NB) != 0)
        return evs__err(EVS_EBUSY, "backup: %s is in use (%s is locked: it is open for "
                        "writing, or another backup into it is running); retry when it "
                        "is closed", b->dest, path);
    return 0;
}

/* An earlier backup in DEST: lock it, read it, and check that it is this
 * store's and can be brought forward. */
static EVS_MUST_USE int open_previous(bk *b)
{
    int rc;
    if ((rc = lock_dest(b)) < 0)
        return rc;
    if ((rc = read_backup_file(b)) < 0)
        return rc;
    if (b->prev.seg_size != b->s->seg_size)
        return evs__err(EVS_EINVAL, "backup: %s holds a backup of another store (segment "
                        "size %" PRIu64 ", this store's is %u); back up into a new "
                        "directory", b->dest, b->prev.seg_size, b->s->seg_size);
    return 0;
}

/*
 * What DEST's log holds after the earlier backup's record at P: its last
 * valid record (*q its position, *loc its location; *q = 0 when there is
 * none), and *junk when non-zero bytes that are not a record follow it.
 * Records after P come from an interrupted incremental backup (the
 * source's own) or from appends to DEST opened as a store (check_previous
 * tells the two apart). The log is read, not DEST's state: a store killed
 * after an append never wrote its durable position there.
 *
 * Only the last segment holding records is walked (segments before it
 * are full); the segments are numbered from 1 without holes.
 */
static EVS_MUST_USE int dest_log_end(bk *b, uint64_t *q, uint64_t *loc, int *junk)
{
    const prev_backup *p = &b->prev;
    char path[PATH_BUF];
    struct stat st;
    uint32_t first = p->position ? p->rec_seg : 1, top = first - 1;
    *q = *loc = 0;
    *junk = 0;
    for (uint32_t no = first;; no++) {
        pathf(path, "%s/log/%016" PRIx32 ".evslog", b->dest, no);
        if (stat(path, &st) != 0)
            break;
        top = no;
    }
    for (uint32_t no = top; no >= first && no > 0 && !*q && !*junk; no--) {
        pathf(path, "%s/log/%016" PRIx32 ".evslog", b->dest, no);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) != 0) {
            int e = errno;
            if (fd >= 0)
                close(fd);
            return io_err(e, "cannot read", path);
        }
        size_t size = (size_t)st.st_size;
        if (size <= EVS_SEG_HEADER_SIZE) {
            close(fd);
            continue;
        }
        const uint8_t *m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
        close(fd);
        if (m == MAP_FAILED)
            return io_err(errno, "cannot map", path);
        /* in P's segment, from P's record (the earlier ones are the
         * backup's, checked by same_record) */
        uint32_t off = no == p->rec_seg && p->position ? p->rec_off : EVS_SEG_HEADER_SIZE;
        uint32_t len, last = 0, end = off;
        while ((size_t)off + 8 <= size &&
               evs__rec_check(m + off, size - off, &len) == EVS_REC_OK) {
            last = off;
            off += evs__pad8(len);
            end = off;
        }
        if (last && !(no == p->rec_seg && last == p->rec_off)) {
            *q = evs__get_le64(m + last + EVS_REC_OFF_POSITION);
            *loc = evs__loc(no, last);
        }
        /* anything but zeros after the last record: a torn append */
        if (end < size && data_end(m, end & ~7u, (uint32_t)size) > (end & ~7u))
            *junk = 1;
        munmap((void *)m, size);
        if (no == p->rec_seg && p->position)
            break; /* nothing after P */
    }
    return 0;
}

/* Is the record at position pos, location loc of the source the same,
 * byte for byte, in the backup's log? */
static EVS_MUST_USE int same_record(bk *b, uint64_t pos, uint64_t loc, int *same)
{
    char path[PATH_BUF];
    const uint8_t *rec;
    uint32_t len;
    *same = 0;
    if (source_record(b->s, loc, pos, &rec, &len) < 0) {
        evs__clear_error();
        return 0;
    }
    uint8_t *mine = malloc(len);
    if (!mine)
        return evs__err(EVS_ENOMEM, "backup: out of memory");
    pathf(path, "%s/log/%016" PRIx32 ".evslog", b->dest, evs__loc_seg(loc));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    *same = fd >= 0 && pread(fd, mine, len, evs__loc_off(loc)) == (ssize_t)len &&
            memcmp(mine, rec, len) == 0;
    if (fd >= 0)
        close(fd);
    free(mine);
    return 0;
}

/* The source's location of position pos (from its index). */
static EVS_MUST_USE int source_loc(evs__emb *s, uint64_t pos, uint64_t *loc)
{
    MDB_txn *txn;
    uint8_t kb[8];
    MDB_val k = {8, kb}, v = {0, NULL};
    evs__put_be64(kb, pos);
    int rc = evs__rtxn_begin(s, &txn);
    if (rc < 0)
        return rc;
    int mrc = mdb_get(txn, s->db_positions, &k, &v);
    if (mrc == 0 && v.mv_size == 8)
        *loc = evs__get_le64(v.mv_data);
    evs__rtxn_end(s, txn);
    if (mrc != 0 || v.mv_size != 8)
        return evs__err(EVS_ECORRUPT, "backup: position %" PRIu64 " is not in the "
                        "store's index; run `evs verify`", pos);
    return 0;
}

/* The source's last record before loc (segment and offset), in segment
 * order, skipping the holes of scavenged segments: 1 and *at, *pos; 0
 * when there is none (a scavenge removed every record before loc). */
static int source_last_before(evs__emb *s, uint64_t loc, uint64_t *at, uint64_t *pos)
{
    for (uint32_t no = evs__loc_seg(loc); no >= 1; no--) {
        const uint8_t *m = evs__scav_refresh(s, no);
        if (!m)
            return 0;
        int holes = evs__seg_scavenged(m);
        uint32_t size = s->seg_size, limit = no == evs__loc_seg(loc) ? evs__loc_off(loc) : size;
        uint32_t off = EVS_SEG_HEADER_SIZE, last = 0, len;
        for (;;) {
            if (holes)
                off = evs__seg_skip_hole(m, off, size);
            if (off >= limit || off + 8 > size || evs__get_le64(m + off) == 0 ||
                evs__rec_check(m + off, size - off, &len) != EVS_REC_OK)
                break;
            last = off;
            off += evs__pad8(len);
        }
        if (last) {
            *at = evs__loc(no, last);
            *pos = evs__get_le64(m + last + EVS_REC_OFF_POSITION);
            return 1;
        }
    }
    return 0;
}

/*
 * The previous backup's last record (position pos at loc) is not the
 * source's: is it a record a scavenge removed since? Then the source has
 * a hole there, in a scavenged segment, and no position pos in its index;
 * and the history is checked on the last record the source still has
 * before it, byte for byte the backup's (none left: nothing to compare,
 * as for the identity). *same 1 when so.
 */
static EVS_MUST_USE int same_but_scavenged(bk *b, uint64_t pos, uint64_t loc, int *same)
{
    evs__emb *s = b->s;
    uint32_t seg = evs__loc_seg(loc), off = evs__loc_off(loc), len;
    const uint8_t *m = evs__scav_refresh(s, seg);
    uint64_t at, q, sloc;
    *same = 0;
    if (!m || !evs__seg_scavenged(m) || off < EVS_SEG_HEADER_SIZE || off >= s->seg_size ||
        evs__rec_check(m + off, s->seg_size - off, &len) != EVS_REC_ZERO)
        return 0;
    int rc = source_loc(s, pos, &sloc);
    if (rc == 0)
        return 0; /* the source has position pos elsewhere: another history */
    if (rc != EVS_ECORRUPT)
        return rc;
    evs__clear_error();
    if (!source_last_before(s, loc, &at, &q)) {
        *same = 1;
        return 0;
    }
    return same_record(b, q, at, same);
}

/* After the index copy fixed the position: is the previous backup of
 * this store, with this store's history up to its position? */
static EVS_MUST_USE int check_previous(bk *b)
{
    const prev_backup *p = &b->prev;
    int same = 0, rc;
    if (strcmp(p->identity, "-") && strcmp(b->identity, "-") &&
        strcmp(p->identity, b->identity))
        return evs__err(EVS_EINVAL, "backup: %s holds a backup of another store (its "
                        "first event is %s, this store's is %s); back up into a new "
                        "directory", b->dest, p->identity, b->identity);
    if (p->position > b->position)
        return evs__err(EVS_EINVAL, "backup: %s holds a backup up to position %" PRIu64
                        " but this store ends at %" PRIu64 " (was it restored from an "
                        "older backup?); back up into a new directory", b->dest,
                        p->position, b->position);
    if (p->position > 0 &&
        (rc = same_record(b, p->position, evs__loc(p->rec_seg, p->rec_off), &same)) < 0)
        return rc;
    /* a scavenge may have removed it since */
    if (p->position > 0 && !same &&
        (rc = same_but_scavenged(b, p->position, evs__loc(p->rec_seg, p->rec_off),
                                 &same)) < 0)
        return rc;
    if (p->position > 0 && !same)
        return evs__err(EVS_EINVAL, "backup: the event at position %" PRIu64 " in %s "
                        "differs from this store's (another history: the store was "
                        "restored from an older backup and written to since, or the "
                        "backup was damaged); back up into a new directory", p->position,
                        b->dest);
    /* The directory's log goes further than its backup: the source's own
     * records (an interrupted incremental backup), or events appended to
     * the directory (it was opened as a store and written to: refused,
     * this would drop them). */
    uint64_t q, dloc, loc = 0;
    int junk;
    if ((rc = dest_log_end(b, &q, &dloc, &junk)) < 0)
        return rc;
    if (junk)
        return evs__err(EVS_EINVAL, "backup: %s's log holds data after its last event "
                        "that is not a whole record (it was opened and written to since "
                        "its backup, and the writer was killed); back up into a new "
                        "directory", b->dest);
    if (q > 0 && q <= p->position)
        return evs__err(EVS_EINVAL, "backup: %s's log holds position %" PRIu64 " after "
                        "its backup's position %" PRIu64 " (it was changed since its "
                        "backup); back up into a new directory", b->dest, q, p->position);
    if (q > p->position) {
        if (q > b->position)
            return evs__err(EVS_EINVAL, "backup: %s holds events up to position %" PRIu64
                            ", after this store's end (%" PRIu64 "): it was opened and "
                            "written to since its backup; back up into a new directory",
                            b->dest, q, b->position);
        if ((rc = source_loc(b->s, q, &loc)) < 0)
            return rc;
        same = 0;
        if (loc == dloc && (rc = same_record(b, q, loc, &same)) < 0)
            return rc;
        if (!same)
            return evs__err(EVS_EINVAL, "backup: %s holds events after its backup's "
                            "position %" PRIu64 " (up to %" PRIu64 ") that are not this "
                            "store's: it was opened and written to since; back up into a "
                            "new directory", b->dest, p->position, q);
    }
    return 0;
}

/* Rename the scratch copy name (in SCRATCH) to sub/data.mdb. */
static EVS_MUST_USE int install_env(bk *b, const char *name, const char *sub)
{
    char from[PATH_BUF], to[PATH_BUF], dir[PATH_BUF];
    int rc;
    pathf(from, "%s/" SCRATCH "/%s", b->work, name);
    pathf(dir, "%s/%s", b->work, sub);
    pathf(to, "%s/data.mdb", dir);
    if ((rc = make_dir(dir)) < 0)
        return rc;
    if (rename(from, to) != 0)
        return io_err(errno, "cannot rename", from);
    return sync_dir(dir);
}

/* ---- the entry ------------------------------------------------------------ */

int evs__emb_backup(evs_backup_result *out, evs_db *db, const char *dest,
                    const evs_backup_options *opts)
{
    evs__emb *s = (evs__emb *)db;
    char path[PATH_BUF], scratch[PATH_BUF];
    bk *b = calloc(1, sizeof(*b));
    int rc = 0, made_work = 0;
    if (!b)
        return evs__err(EVS_ENOMEM, "backup: out of memory");
    b->s = s;
    b->opts = opts;
    b->res = out;
    b->lock_fd = -1;
    memset(out, 0, sizeof(*out));

    if ((rc = examine_dest(b, dest)) < 0)
        goto out;
    if (b->incremental) {
        if ((rc = open_previous(b)) < 0)
            goto out;
        pathf(b->work, "%s", b->dest);
    } else if (b->in_place) {
        /* SCRATCH first (the mark of an unfinished backup here, removed
         * after the state is written), then the log */
        if ((rc = lock_dest(b)) < 0)
            goto out;
        pathf(b->work, "%s", b->dest);
        pathf(scratch, "%s/" SCRATCH, b->work);
        if (b->leftovers) {
            remove_work(b->work, 1); /* an interrupted run's: start over */
            if ((rc = sync_dir(b->work)) < 0)
                goto out;
        }
        made_work = 1;
        pathf(path, "%s/log", b->work);
        if ((rc = make_dir(scratch)) < 0 || (rc = sync_dir(b->work)) < 0 ||
            (rc = make_dir(path)) < 0)
            goto out;
    } else {
        pathf(b->work, "%s.tmp-XXXXXX", b->dest);
        if (!mkdtemp(b->work)) {
            rc = io_err(errno, "cannot create", b->work);
            goto out;
        }
        made_work = 1;
        chmod(b->work, 0755); /* mkdtemp makes it 0700 */
        pathf(path, "%s/log", b->work);
        if ((rc = make_dir(path)) < 0)
            goto out;
    }
    out->incremental = b->incremental;
    pathf(scratch, "%s/" SCRATCH, b->work);
    if (!b->in_place)
        remove_work(scratch, 0); /* a killed backup's leftovers */
    if ((rc = make_dir(scratch)) < 0)
        goto out;

    /* the progress total: the index and the log up to its end now (the
     * index copy may end a little later) */
    {
        MDB_envinfo info;
        MDB_stat st;
        uint64_t head = 0, loc = 0;
        MDB_txn *txn;
        if (evs__rtxn_begin(s, &txn) == 0) {
            if (mdb_env_info(s->env, &info) == 0 && mdb_env_stat(s->env, &st) == 0)
                b->total = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
            if (evs__idx_applied_get(txn, s, &head, &loc) < 0)
                evs__clear_error();
            evs__rtxn_end(s, txn);
        } else {
            evs__clear_error(); /* only the estimate: the copy below says why */
        }
        uint32_t segs = evs__loc_seg(loc), first = 1;
        if (b->incremental && b->prev.segments > 0)
            first = b->prev.segments;
        if (segs >= first)
            b->total += (uint64_t)(segs - first + 1) * s->seg_size;
    }

    /* 1. the snapshots, before the index: a snapshot is saved at a
     * version no later than its stream's in the index then, and the index
     * only grows, so every snapshot copied here is of events the index
     * copy below holds. Copied after it, a snapshot saved in between could
     * be of a version past the backup's end. (None yet: the backup has
     * none either.) */
    if (s->snap_env) {
        pathf(path, "%s/snapshots.mdb", scratch);
        int mrc;
        uint64_t before = out->bytes_copied;
        if ((rc = copy_env(b, s->snap_env, path, &mrc)) < 0)
            goto out;
        progress(b, out->bytes_copied - before);
    }

    /* 2. the index: fixes the position */
    make_room(b);
    /* no scavenge of this handle swaps a segment between the index copy
     * and the log copy (scavenge.c) */
    pthread_mutex_lock(&s->scav_lock);
    b->scav_locked = 1;
    pathf(path, "%s/index.mdb", scratch);
    if ((rc = copy_index(b, path)) < 0 ||
        (rc = copy_applied(path, &b->position, &b->loc, &b->rec_loc)) < 0)
        goto out;
    if (evs__loc_seg(b->loc) == 0 || evs__loc_off(b->loc) < EVS_SEG_HEADER_SIZE ||
        evs__loc_off(b->loc) > s->seg_size) {
        rc = evs__err(EVS_ECORRUPT, "backup: the index ends at a bad log location "
                      "(segment %u offset %u); run `evs verify`", evs__loc_seg(b->loc),
                      evs__loc_off(b->loc));
        goto out;
    }
    snprintf(b->identity, sizeof(b->identity), "-");
    /* a scavenge may have removed position 1: then the identity is unknown
     * ("-", which any previous backup accepts) */
    const uint8_t *m1 = evs__seg_map(s, 1);
    if (b->position > 0 && !(evs__seg_scavenged(m1) &&
                             evs__get_le32(m1 + EVS_SEG_HEADER_SIZE) == 0)) {
        const uint8_t *rec;
        uint32_t len;
        if ((rc = source_record(s, evs__loc(1, EVS_SEG_HEADER_SIZE), 1, &rec, &len)) < 0)
            goto out;
        evs_uuid id;
        memcpy(id.bytes, rec + EVS_REC_OFF_ID, 16);
        evs_uuid_format(b->identity, &id);
    }
    if (b->incremental && (rc = check_previous(b)) < 0)
        goto out;

    /* 3. the log up to the index's end */
    if ((rc = copy_log(b)) < 0)
        goto out;
    pthread_mutex_unlock(&s->scav_lock);
    b->scav_locked = 0;

    /* 4. into place; then BACKUP, then the state that names them */
    if ((rc = install_env(b, "index.mdb", "index")) < 0 ||
        (s->snap_env && (rc = install_env(b, "snapshots.mdb", "snapshots")) < 0))
        goto out;
    /* BACKUP before the state: killed between the two, the directory's
     * log holds BACKUP's position already (and its index, which the old
     * state does not name, is rebuilt on open) */
    out->position = b->position;
    /* the subject keys as they are now, after the index copy: every key
     * of an event up to P exists by then, and a key forgotten before now
     * is not in the copy (keys.c, docs/ERASURE.md) */
    if ((rc = evs__keys_backup(s, b->work)) < 0 ||
        (rc = write_backup_file(b)) < 0 ||
        (rc = evs__state_write(b->work, 0, b->position)) < 0)
        goto out;
    if (b->in_place)
        made_work = 0; /* complete: kept whatever follows */
    rmdir(scratch);
    if (b->in_place && (rc = sync_dir(b->work)) < 0)
        goto out;
    if (!b->incremental && !b->in_place) {
        if (rename(b->work, b->dest) != 0) {
            rc = io_err(errno, "cannot rename the finished backup to", b->dest);
            goto out;
        }
        made_work = 0;
        int e = evs__fsync_parent(b->dest);
        if (e) {
            rc = io_err(e, "cannot sync the directory holding", b->dest);
            goto out;
        }
    }
out:
    if (b->scav_locked)
        pthread_mutex_unlock(&s->scav_lock);
    if (rc < 0) {
        char keep[1024];
        snprintf(keep, sizeof(keep), "%s", evs_last_error());
        if (made_work)
            remove_work(b->work, b->in_place);
        if (made_work && b->in_place) {
            pathf(path, "%s/LOCK", b->work); /* DEST empty again */
            unlink(path);
        }
        else if (b->work[0]) {
            /* an incremental backup's scratch; its renamed files stay (each
             * one leaves the backup usable) */
            pathf(scratch, "%s/" SCRATCH, b->work);
            remove_work(scratch, 0);
        }
        evs__set_error_text(keep);
        out->position = 0;
    }
    if (b->lock_fd >= 0)
        close(b->lock_fd);
    free(b);
    return rc;
}
