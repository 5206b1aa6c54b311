/*
 * iorec.c -- an LD_PRELOAD shim that journals every operation that changes
 * the files under one directory, for the power-loss test
 * (tests/test_powerloss.c builds disk states a crash could leave from it).
 *
 * Active only when EVS_IOREC names the journal file; EVS_IOREC_ROOT is the
 * directory whose files are recorded (absolute path). The record format is
 * in iorec.h. What is recorded: creating opens (O_CREAT of an absent file,
 * with the new inode), O_TRUNC, pwrite/pwrite64/write/writev/pwritev(2)
 * with their offset and bytes, ftruncate/truncate, fallocate and
 * posix_fallocate, fsync/fdatasync (of a file or of a directory),
 * O_SYNC/O_DSYNC writes (as a write then a file sync), msync(MS_SYNC),
 * sync_file_range (noted, not a durability point), rename/renameat/
 * renameat2, unlink/unlinkat/rmdir, mkdir/mkdirat, and writes through
 * shared writable mappings of a recorded file (below). Reads and mmap'ed
 * reads are not recorded.
 *
 * Writes through a map. A store into a MAP_SHARED, PROT_WRITE mapping
 * (LMDB's MDB_WRITEMAP: the index's data.mdb; also lock.mdb and the notify
 * file) calls nothing the shim can hook. So mmap/mmap64 of a recorded file
 * registers the mapping (munmap and mremap update it) and keeps a shadow
 * copy of the file as last journaled: its non-zero 4 KiB pages. At every
 * snapshot point -- an fsync/fdatasync of any recorded file or directory
 * (before the real call), an O_SYNC write, msync of any range, every
 * evs_iorec_mark, munmap of the mapping, the close of the file's last
 * recorded descriptor, process exit -- each mapped file is read through a
 * descriptor of the shim's own (pread sees what the map wrote: one page
 * cache), its allocated regions only (SEEK_DATA/SEEK_HOLE: the writer's
 * data.mdb is a sparse file as large as the 64 GiB map, its allocated part
 * a few MB), compared with the shadow page by page, and the pages that
 * changed are journaled as ordinary WRITE records of that file (flag
 * IOREC_F_MAP, runs of adjacent pages in one record), in ascending file
 * order; the shadow is updated. pwrite/truncate of a mapped file update
 * the shadow too, so those bytes are not journaled twice. msync(MS_SYNC)
 * of a range that covers every unsynced write of the file (the shim keeps
 * each file's extent of writes since its last sync record), or fsync/
 * fdatasync of the file, is a sync of the file: FSYNC after the pages.
 * An msync that covers less is journaled as MSYNCR, which the test does
 * not count as a sync (keeping writes unsynced is the safe side).
 *
 * So a write through a map is attributed to the next snapshot point,
 * where a pwrite is journaled where it returned: a coarser model, and
 * sound enough. For a power loss, the pages are unsynced writes like any
 * other until the file's next sync (any subset, torn, old or new); a page
 * stored before an fsync and first journaled at that fsync is journaled
 * before its sync record, and one stored while the sync ran is left to the
 * next point (unsynced: the safe side). For a process crash, a state at a
 * journal point holds the map's content as of the last snapshot point
 * before it, which was the page cache's content then: an older index, and
 * never a torn commit, because LMDB's meta pages are in the same map,
 * pages 0 and 1, read first by the ascending scan, and a commit's data
 * pages are stored before its meta page and are not overwritten before two
 * further commits (LMDB reuses a page only once no meta can reach it); a
 * writer cannot finish two commits during one snapshot, since the shim's
 * lock, held for the scan, stops its next log write and sync. The index
 * lagging behind the log is a state the engine must handle anyway (it
 * replays the log from the index's end), and the test never cuts a
 * process-crash state inside one snapshot's pages.
 *
 * Threads: one mutex orders journal records and guards the fd table and
 * the mappings; a record is appended after the real call returned, so a
 * sync's record precedes anything the caller does after it (an
 * acknowledgement mark). A thread-local flag keeps the shim's own calls
 * (dlsym, the journal write, the snapshot's reads and allocations) out of
 * the journal.
 *
 * evs_iorec_mark(buf, len) puts the caller's own record into the journal,
 * in order with the I/O; the workload finds it with dlsym(RTLD_DEFAULT).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "iorec.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include "../shim_path.h"
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))
#define MAX_FD 65536

typedef struct fd_ent {
    char *rel;  /* path relative to the root; NULL: not recorded */
    uint64_t ino; /* the file's identity in the journal (paths change) */
    int isdir;
    int sync;   /* opened O_SYNC or O_DSYNC */
    int append; /* O_APPEND */
} fd_ent;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static fd_ent fds[MAX_FD];
static int journal_fd = -1;
static char root[PATH_MAX];
static size_t root_len;
static int active;
static __thread int in_hook;

#define REAL(ret, name, ...)                                                 \
    static ret (*real_##name)(__VA_ARGS__);                                  \
    if (!real_##name)                                                        \
        real_##name = (ret(*)(__VA_ARGS__))dlsym(RTLD_NEXT, #name)

static ssize_t raw_write(int fd, const void *buf, size_t n)
{
    static ssize_t (*w)(int, const void *, size_t);
    if (!w)
        w = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    const char *p = buf;
    while (n > 0) {
        ssize_t r = w(fd, p, n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

__attribute__((constructor)) static void iorec_init(void)
{
    const char *j = getenv("EVS_IOREC"), *r = getenv("EVS_IOREC_ROOT");
    if (!j || !*j || !r || !*r)
        return;
    in_hook = 1;
    static int (*o)(const char *, int, ...);
    o = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open");
    journal_fd = o(j, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    snprintf(root, sizeof(root), "%s", r);
    root_len = strlen(root);
    while (root_len > 1 && root[root_len - 1] == '/')
        root[--root_len] = '\0';
    active = journal_fd >= 0;
    in_hook = 0;
}

/* Caller holds lock. */
static void emit(uint8_t op, uint8_t flags, const char *p, const char *p2,
                 uint64_t off, uint64_t len, uint64_t ino, const void *data,
                 size_t dlen)
{
    iorec_hdr h = {op, flags, (uint16_t)(p ? strlen(p) : 0),
                   (uint32_t)(p2 ? strlen(p2) : 0), off, len, ino};
    size_t n = sizeof(h) + h.plen + h.p2len + dlen;
    char stackbuf[8192];
    char *b = n <= sizeof(stackbuf) ? stackbuf : malloc(n);
    if (!b)
        abort();
    memcpy(b, &h, sizeof(h));
    if (h.plen)
        memcpy(b + sizeof(h), p, h.plen);
    if (h.p2len)
        memcpy(b + sizeof(h) + h.plen, p2, h.p2len);
    if (dlen)
        memcpy(b + sizeof(h) + h.plen + h.p2len, data, dlen);
    if (raw_write(journal_fd, b, n) != 0)
        abort(); /* a journal with a hole would make the test lie */
    if (b != stackbuf)
        free(b);
}

/* The path of `path` (relative to dirfd) under the root, without the
 * root and its slash, into out; 0 if it is not under the root. */
static int under_root(int dirfd, const char *path, char *out, size_t cap)
{
    char full[PATH_MAX * 2];
    if (!path || !shim_abs_path(dirfd, path, full, sizeof(full)))
        return 0;
    if (strncmp(full, root, root_len) != 0)
        return 0;
    if (full[root_len] == '\0')
        snprintf(out, cap, "%s", "");
    else if (full[root_len] == '/')
        snprintf(out, cap, "%s", full + root_len + 1);
    else
        return 0;
    return 1;
}

static int all_zero(const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i])
            return 0;
    return 1;
}

static int tracked(int fd)
{
    return active && !in_hook && fd >= 0 && fd < MAX_FD && fds[fd].rel;
}

/* ---- writes through shared writable mappings ---------------------------- */

#define PG 4096u
#define MAX_MAPS 64
#define MAX_MFILES 16
#define MAX_DIRT 1024
#define SCAN_CHUNK (256u * 1024u)

/* A mapped file: the shadow of its content as last journaled. */
typedef struct mfile {
    uint64_t ino;
    char *rel;              /* its path (kept current across renames) */
    int rfd;                /* the shim's own read descriptor */
    unsigned char **sh;     /* non-zero pages; NULL = zeros */
    size_t nsh;
    size_t hi;              /* 1 + the highest page the shadow ever held */
    int nmaps;
} mfile;

typedef struct mapping {
    uintptr_t addr;
    size_t len;
    uint64_t foff; /* file offset of addr */
    mfile *f;
} mapping;

static mfile *mfiles[MAX_MFILES];
static mapping maps[MAX_MAPS];
static int nmaps_total; /* registered mappings (read unlocked as a hint) */

/* Per file: the extent of the writes journaled since its last sync record,
 * to tell whether an msync of a range is a sync of every one of them. */
typedef struct dirt {
    uint64_t ino, lo, hi; /* hi == 0: none */
} dirt;
static dirt dirts[MAX_DIRT];
static size_t ndirts;

/* Caller holds lock. */
static void dirt_add(uint64_t ino, uint64_t lo, uint64_t hi)
{
    size_t i;
    for (i = 0; i < ndirts; i++)
        if (dirts[i].ino == ino)
            break;
    if (i == ndirts) {
        if (ndirts == MAX_DIRT) {
            /* Reuse a clean entry (a file missing from a full table is
             * never "covered"); none clean: this write is not noted, so
             * the table stays conservative. */
            for (i = 0; i < ndirts && dirts[i].hi; i++)
                ;
            if (i == ndirts)
                return;
        } else {
            ndirts++;
        }
        dirts[i] = (dirt){ino, lo, hi};
        return;
    }
    if (!dirts[i].hi || lo < dirts[i].lo)
        dirts[i].lo = lo;
    if (hi > dirts[i].hi)
        dirts[i].hi = hi;
}
static void dirt_clear(uint64_t ino)
{
    for (size_t i = 0; i < ndirts; i++)
        if (dirts[i].ino == ino)
            dirts[i].hi = dirts[i].lo = 0;
}
/* 1 if [lo, hi) covers every write journaled since the file's last sync. */
static int dirt_covered(uint64_t ino, uint64_t lo, uint64_t hi)
{
    for (size_t i = 0; i < ndirts; i++)
        if (dirts[i].ino == ino)
            return !dirts[i].hi || (dirts[i].lo >= lo && dirts[i].hi <= hi);
    return ndirts < MAX_DIRT; /* never written (or forgotten when full) */
}

static mfile *mfile_of(uint64_t ino)
{
    for (int i = 0; i < MAX_MFILES; i++)
        if (mfiles[i] && mfiles[i]->ino == ino)
            return mfiles[i];
    return NULL;
}

static int page_zero(const unsigned char *p)
{
    const uint64_t *w = (const uint64_t *)(const void *)p;
    for (size_t i = 0; i < PG / 8; i++)
        if (w[i])
            return 0;
    return 1;
}

static unsigned char **sh_slot(mfile *m, size_t pg)
{
    if (pg >= m->nsh) {
        size_t n = m->nsh ? m->nsh : 256;
        while (n <= pg)
            n *= 2;
        unsigned char **p = realloc(m->sh, n * sizeof(*p));
        if (!p)
            abort();
        memset(p + m->nsh, 0, (n - m->nsh) * sizeof(*p));
        m->sh = p;
        m->nsh = n;
    }
    return &m->sh[pg];
}

/* Set shadow page pg to the PG bytes at p (NULL: zeros). */
static void sh_set(mfile *m, size_t pg, const unsigned char *p)
{
    if (!p || page_zero(p)) {
        if (pg < m->nsh && m->sh[pg]) {
            free(m->sh[pg]);
            m->sh[pg] = NULL;
        }
        return;
    }
    unsigned char **s = sh_slot(m, pg);
    if (!*s && !(*s = malloc(PG)))
        abort();
    if (pg >= m->hi)
        m->hi = pg + 1;
    memcpy(*s, p, PG);
}

static int sh_equal(const mfile *m, size_t pg, const unsigned char *p)
{
    const unsigned char *s = pg < m->nsh ? m->sh[pg] : NULL;
    return s ? memcmp(s, p, PG) == 0 : page_zero(p);
}

/* A pwrite of a mapped file: the shadow takes its bytes (journaled
 * already). Caller holds lock. */
static void sh_write(mfile *m, uint64_t off, const unsigned char *data, size_t n)
{
    _Alignas(8) unsigned char pgbuf[PG];
    uint64_t end = off + n;
    while (off < end) {
        size_t pg = (size_t)(off / PG), in = (size_t)(off % PG);
        size_t k = (size_t)(end - off < PG - in ? end - off : PG - in);
        const unsigned char *s = pg < m->nsh ? m->sh[pg] : NULL;
        if (s)
            memcpy(pgbuf, s, PG);
        else
            memset(pgbuf, 0, PG);
        if (data)
            memcpy(pgbuf + in, data, k);
        else
            memset(pgbuf + in, 0, k);
        sh_set(m, pg, pgbuf);
        if (data)
            data += k;
        off += k;
    }
}

static void sh_truncate(mfile *m, uint64_t size)
{
    size_t first = (size_t)((size + PG - 1) / PG);
    for (size_t pg = first; pg < m->nsh; pg++)
        sh_set(m, pg, NULL);
    if (size % PG && size / PG < m->nsh && m->sh[size / PG]) {
        _Alignas(8) unsigned char pgbuf[PG];
        memcpy(pgbuf, m->sh[size / PG], PG);
        memset(pgbuf + size % PG, 0, PG - size % PG);
        sh_set(m, (size_t)(size / PG), pgbuf);
    }
}

static void emit(uint8_t op, uint8_t flags, const char *p, const char *p2,
                 uint64_t off, uint64_t len, uint64_t ino, const void *data,
                 size_t dlen);

/* Journal pages [pg0, pg0 + n) of m, whose new content is at p (NULL:
 * zeros), as one write. Caller holds lock. */
static void snap_emit(mfile *m, size_t pg0, size_t n, const unsigned char *p)
{
    int z = 1;
    for (size_t i = 0; p && z && i < n; i++)
        z = page_zero(p + i * PG);
    emit(IOREC_WRITE, (uint8_t)(IOREC_F_MAP | (z ? IOREC_F_ZERO : 0)), m->rel, NULL,
         (uint64_t)pg0 * PG, (uint64_t)n * PG, m->ino, z ? NULL : p, z ? 0 : n * PG);
    dirt_add(m->ino, (uint64_t)pg0 * PG, (uint64_t)(pg0 + n) * PG);
}

static _Alignas(64) unsigned char scan_buf[SCAN_CHUNK];

/* Shadow pages in [from, to) (page numbers) that the file no longer has
 * (a hole now): journaled as zeros when record, dropped. */
static void snap_holes(mfile *m, size_t from, size_t to, int record)
{
    size_t run = 0, start = 0;
    if (to > m->nsh)
        to = m->nsh;
    for (size_t pg = from; pg <= to; pg++) {
        int gone = pg < to && m->sh[pg];
        if (gone) {
            if (!run)
                start = pg;
            run++;
            sh_set(m, pg, NULL);
        } else if (run) {
            if (record)
                snap_emit(m, start, run, NULL);
            run = 0;
        }
    }
}

/* The process's page table (/proc/self/pagemap): a store through a map
 * needs the page mapped, so beyond the highest page the shadow ever held
 * only the pages some registered mapping maps (present, or swapped) can
 * have changed. -1: unavailable (then every scan is a full one). */
static int pm_fd = -2;
static uint64_t pm_buf[4096];

/* Compare page pg (content at p) with the shadow; record/update. Returns
 * 1 if it changed. */
static int snap_page(mfile *m, size_t pg, const unsigned char *p, int record)
{
    if (sh_equal(m, pg, p))
        return 0;
    sh_set(m, pg, p);
    if (record)
        snap_emit(m, pg, 1, p);
    return 1;
}

/* Pages [from, to) beyond the shadow's extent, through the page table:
 * the mapped ones are read and compared. Returns -1 if the page table
 * cannot be read (the caller then reads the range). */
static int snap_tail(mfile *m, size_t from, size_t to, int record)
{
    static _Alignas(64) unsigned char pgbuf[PG];
    if (pm_fd == -2) {
        static int (*ro)(const char *, int, ...);
        if (!ro)
            ro = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open");
        pm_fd = ro("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
        if (pm_fd < 0)
            pm_fd = -1;
    }
    if (pm_fd < 0)
        return -1;
    for (int i = 0; i < MAX_MAPS; i++) {
        mapping *mp = &maps[i];
        if (mp->f != m || mp->foff % PG || mp->addr % PG)
            continue;
        size_t f0 = (size_t)(mp->foff / PG), f1 = f0 + mp->len / PG;
        size_t a = from > f0 ? from : f0, b = to < f1 ? to : f1;
        uintptr_t vbase = mp->addr / PG - f0;
        for (size_t pg = a; pg < b;) {
            size_t n = b - pg < 4096 ? b - pg : 4096;
            ssize_t r = pread(pm_fd, pm_buf, n * 8, (off_t)((vbase + pg) * 8));
            if (r != (ssize_t)(n * 8))
                return -1;
            for (size_t j = 0; j < n; j++) {
                if (!(pm_buf[j] >> 62)) /* neither present (63) nor swapped (62) */
                    continue;
                ssize_t k = pread(m->rfd, pgbuf, PG, (off_t)(pg + j) * PG);
                if (k < 0)
                    abort();
                if (k < (ssize_t)PG)
                    memset(pgbuf + k, 0, PG - (size_t)k);
                snap_page(m, pg + j, pgbuf, record);
            }
            pg += n;
        }
    }
    return 0;
}

/* Read pages [p0, p1) of the file and compare them with the shadow.
 * Returns the page where the file ended (p1 if it did not). */
static size_t snap_read(mfile *m, size_t p0, size_t p1, int record)
{
    for (size_t pg = p0; pg < p1;) {
        size_t n = p1 - pg < SCAN_CHUNK / PG ? p1 - pg : SCAN_CHUNK / PG;
        ssize_t r = pread(m->rfd, scan_buf, n * PG, (off_t)pg * PG);
        if (r < 0)
            abort(); /* the journal would miss writes */
        if (r == 0)
            return pg; /* the end of the file */
        if ((size_t)r < n * PG) {
            memset(scan_buf + r, 0, n * PG - (size_t)r);
            n = ((size_t)r + PG - 1) / PG;
        }
        size_t run = 0, start = 0;
        for (size_t i = 0; i <= n; i++) {
            int changed = i < n && !sh_equal(m, pg + i, scan_buf + i * PG);
            if (changed) {
                if (!run)
                    start = i;
                run++;
                sh_set(m, pg + i, scan_buf + i * PG);
            } else if (run) {
                if (record)
                    snap_emit(m, pg + start, run, scan_buf + start * PG);
                run = 0;
            }
        }
        pg += n;
    }
    return p1;
}

/* Compare the file with its shadow; journal the pages that changed (when
 * record; else just load the shadow), in ascending order. Only allocated
 * regions are read (SEEK_DATA/SEEK_HOLE); full: all of them; else, beyond
 * the highest page the shadow ever held, only the pages a registered
 * mapping maps (a filesystem may call reserved blocks data: the
 * writer's runway of fallocated index blocks, 64 MiB, on tmpfs). Full scans
 * are made where a wrong answer would matter most: at a sync of the file,
 * munmap, its last close, exit, and when mapping it. A page stored through
 * the map whose page was reclaimed (unmapped) before an ordinary point is
 * found at the next full scan: later, never lost. Caller holds lock and
 * in_hook. */
static void snap_file(mfile *m, int record, int full)
{
    off_t o = 0;
    size_t done = 0; /* pages below this are compared */
    for (;;) {
        off_t d = lseek(m->rfd, o, SEEK_DATA);
        if (d < 0) {
            snap_holes(m, done, m->nsh, record);
            return;
        }
        off_t h = lseek(m->rfd, d, SEEK_HOLE);
        if (h < 0)
            h = d + (off_t)SCAN_CHUNK;
        size_t p0 = (size_t)(d / PG), p1 = (size_t)((h + PG - 1) / PG);
        if (p0 > done)
            snap_holes(m, done, p0, record);
        if (p0 < done)
            p0 = done;
        if (p0 < p1) {
            size_t mid = full || m->hi > p1 ? p1 : m->hi > p0 ? m->hi : p0;
            size_t end = snap_read(m, p0, mid, record);
            if (end < mid)
                p1 = end;
            else if (mid < p1 && snap_tail(m, mid, p1, record) != 0)
                p1 = snap_read(m, mid, p1, record);
        }
        if (p1 > done)
            done = p1;
        o = (off_t)done * PG;
        if (o <= d)
            o = d + PG;
    }
}

#define SNAP_ALL_FULL UINT64_MAX
/* Every mapped file; a full scan of the file full_ino (a sync of it), of
 * every file with SNAP_ALL_FULL. Caller holds lock and in_hook. */
static void snap_all(uint64_t full_ino)
{
    for (int i = 0; i < MAX_MFILES; i++)
        if (mfiles[i])
            snap_file(mfiles[i], 1,
                      full_ino == SNAP_ALL_FULL || mfiles[i]->ino == full_ino);
}

static void snap_all_locked(uint64_t full_ino)
{
    if (!nmaps_total)
        return;
    pthread_mutex_lock(&lock);
    snap_all(full_ino);
    pthread_mutex_unlock(&lock);
}

static void mfile_drop(mfile *m)
{
    static int (*rc)(int);
    if (!rc)
        rc = (int (*)(int))dlsym(RTLD_NEXT, "close");
    for (int i = 0; i < MAX_MFILES; i++)
        if (mfiles[i] == m)
            mfiles[i] = NULL;
    for (size_t pg = 0; pg < m->nsh; pg++)
        free(m->sh[pg]);
    free(m->sh);
    free(m->rel);
    rc(m->rfd);
    free(m);
}

/* Caller holds lock and in_hook. */
static void map_register(int fd, void *addr, size_t len, off_t off)
{
    mfile *m = mfile_of(fds[fd].ino);
    if (!m) {
        int slot;
        for (slot = 0; slot < MAX_MFILES && mfiles[slot]; slot++)
            ;
        m = calloc(1, sizeof(*m));
        if (slot == MAX_MFILES || !m)
            abort(); /* more mapped files than the test has: extend */
        static int (*ro)(const char *, int, ...);
        if (!ro)
            ro = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open");
        char l[64];
        snprintf(l, sizeof(l), "/proc/self/fd/%d", fd);
        m->rfd = ro(l, O_RDONLY | O_CLOEXEC);
        if (m->rfd < 0)
            abort();
        m->ino = fds[fd].ino;
        m->rel = strdup(fds[fd].rel);
        mfiles[slot] = m;
        /* Everything in the file now is journaled already. */
        snap_file(m, 0, 1);
    }
    for (int i = 0; i < MAX_MAPS; i++)
        if (!maps[i].f) {
            maps[i] = (mapping){(uintptr_t)addr, len, (uint64_t)off, m};
            m->nmaps++;
            nmaps_total++;
            return;
        }
    abort(); /* more mappings than the test makes: extend MAX_MAPS */
}

static mapping *map_find(uintptr_t a)
{
    for (int i = 0; i < MAX_MAPS; i++)
        if (maps[i].f && a >= maps[i].addr && a < maps[i].addr + maps[i].len)
            return &maps[i];
    return NULL;
}

static void rec_write(int fd, uint64_t off, const void *data, size_t n)
{
    pthread_mutex_lock(&lock);
    if (fds[fd].rel) {
        int z = all_zero(data, n);
        emit(IOREC_WRITE, z ? IOREC_F_ZERO : 0, fds[fd].rel, NULL, off, n,
             fds[fd].ino, z ? NULL : data, z ? 0 : n);
        dirt_add(fds[fd].ino, off, off + n);
        mfile *m = nmaps_total ? mfile_of(fds[fd].ino) : NULL;
        if (m)
            sh_write(m, off, data, n);
        if (fds[fd].sync) {
            snap_all(fds[fd].ino); /* a durability point */
            emit(IOREC_FSYNC, 0, fds[fd].rel, NULL, 0, 0, fds[fd].ino, NULL, 0);
            dirt_clear(fds[fd].ino);
        }
    }
    pthread_mutex_unlock(&lock);
}

static void after_open(int fd, const char *rel, int flags, int existed)
{
    struct stat st;
    if (fd < 0 || fd >= MAX_FD || fstat(fd, &st) != 0)
        return;
    pthread_mutex_lock(&lock);
    free(fds[fd].rel);
    fds[fd].rel = strdup(rel);
    fds[fd].ino = (uint64_t)st.st_ino;
    fds[fd].isdir = S_ISDIR(st.st_mode);
    fds[fd].sync = (flags & (O_SYNC | O_DSYNC)) != 0;
    fds[fd].append = (flags & O_APPEND) != 0;
    if ((flags & O_CREAT) && !existed)
        emit(IOREC_CREATE, 0, rel, NULL, 0, 0, (uint64_t)st.st_ino, NULL, 0);
    else if ((flags & O_TRUNC) && S_ISREG(st.st_mode) && (flags & O_ACCMODE) != O_RDONLY)
        emit(IOREC_TRUNCATE, 0, rel, NULL, 0, 0, (uint64_t)st.st_ino, NULL, 0);
    pthread_mutex_unlock(&lock);
}

static int do_openat(int dirfd, const char *path, int flags, mode_t mode)
{
    static int (*real)(int, const char *, int, ...);
    if (!real)
        real = (int (*)(int, const char *, int, ...))dlsym(RTLD_NEXT, "openat");
    char rel[PATH_MAX];
    if (!active || in_hook || !under_root(dirfd, path, rel, sizeof(rel)))
        return real(dirfd, path, flags, mode);
    in_hook = 1;
    struct stat st;
    int existed = fstatat(dirfd, path, &st, 0) == 0;
    int fd = real(dirfd, path, flags, mode);
    if (fd >= 0)
        after_open(fd, rel, flags, existed);
    in_hook = 0;
    return fd;
}

static mode_t va_mode(int flags, va_list ap)
{
    return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
}

EXPORT int open(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t m = va_mode(flags, ap);
    va_end(ap);
    return do_openat(AT_FDCWD, path, flags, m);
}
EXPORT int open64(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t m = va_mode(flags, ap);
    va_end(ap);
    return do_openat(AT_FDCWD, path, flags, m);
}
EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t m = va_mode(flags, ap);
    va_end(ap);
    return do_openat(dirfd, path, flags, m);
}
EXPORT int openat64(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t m = va_mode(flags, ap);
    va_end(ap);
    return do_openat(dirfd, path, flags, m);
}
EXPORT int __open_2(const char *path, int flags) { return do_openat(AT_FDCWD, path, flags, 0); }
EXPORT int __open64_2(const char *path, int flags) { return do_openat(AT_FDCWD, path, flags, 0); }
EXPORT int __openat_2(int d, const char *path, int flags) { return do_openat(d, path, flags, 0); }
EXPORT int __openat64_2(int d, const char *path, int flags) { return do_openat(d, path, flags, 0); }
#define CREAT_FLAGS (O_CREAT | O_WRONLY | O_TRUNC)
EXPORT int creat(const char *path, mode_t m) { return do_openat(AT_FDCWD, path, CREAT_FLAGS, m); }
EXPORT int creat64(const char *path, mode_t m) { return do_openat(AT_FDCWD, path, CREAT_FLAGS, m); }

/* ---- writes ------------------------------------------------------------- */

EXPORT ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    REAL(ssize_t, pwrite, int, const void *, size_t, off_t);
    if (!tracked(fd))
        return real_pwrite(fd, buf, n, off);
    in_hook = 1;
    ssize_t r = real_pwrite(fd, buf, n, off);
    if (r > 0)
        rec_write(fd, (uint64_t)off, buf, (size_t)r);
    in_hook = 0;
    return r;
}
EXPORT ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    REAL(ssize_t, pwrite64, int, const void *, size_t, off_t);
    if (!tracked(fd))
        return real_pwrite64(fd, buf, n, off);
    in_hook = 1;
    ssize_t r = real_pwrite64(fd, buf, n, off);
    if (r > 0)
        rec_write(fd, (uint64_t)off, buf, (size_t)r);
    in_hook = 0;
    return r;
}

static off_t cur_off(int fd)
{
    if (fds[fd].append) {
        struct stat st;
        return fstat(fd, &st) == 0 ? st.st_size : 0;
    }
    return lseek(fd, 0, SEEK_CUR);
}

EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
    REAL(ssize_t, write, int, const void *, size_t);
    if (!tracked(fd))
        return real_write(fd, buf, n);
    in_hook = 1;
    off_t off = cur_off(fd);
    ssize_t r = real_write(fd, buf, n);
    if (r > 0 && off >= 0)
        rec_write(fd, (uint64_t)off, buf, (size_t)r);
    in_hook = 0;
    return r;
}

/* The first r bytes of iov[0..cnt) as one buffer (malloc'd). */
static void *gather(const struct iovec *iov, int cnt, size_t r)
{
    char *b = malloc(r ? r : 1), *p = b;
    if (!b)
        abort();
    for (int i = 0; i < cnt && r > 0; i++) {
        size_t k = iov[i].iov_len < r ? iov[i].iov_len : r;
        memcpy(p, iov[i].iov_base, k);
        p += k;
        r -= k;
    }
    return b;
}

EXPORT ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    REAL(ssize_t, writev, int, const struct iovec *, int);
    if (!tracked(fd))
        return real_writev(fd, iov, cnt);
    in_hook = 1;
    off_t off = cur_off(fd);
    ssize_t r = real_writev(fd, iov, cnt);
    if (r > 0 && off >= 0) {
        void *b = gather(iov, cnt, (size_t)r);
        rec_write(fd, (uint64_t)off, b, (size_t)r);
        free(b);
    }
    in_hook = 0;
    return r;
}

#define PWRITEV_HOOK(name, ...)                                              \
    EXPORT ssize_t name(int fd, const struct iovec *iov, int cnt, off_t off, \
                        ##__VA_ARGS__)

static ssize_t pwritev_common(const char *name, int fd, const struct iovec *iov,
                              int cnt, off_t off, int flags, int has_flags)
{
    ssize_t r;
    if (has_flags) {
        ssize_t (*f)(int, const struct iovec *, int, off_t, int) =
            (ssize_t(*)(int, const struct iovec *, int, off_t, int))dlsym(RTLD_NEXT, name);
        if (!tracked(fd))
            return f(fd, iov, cnt, off, flags);
        in_hook = 1;
        if (off == -1)
            off = cur_off(fd);
        r = f(fd, iov, cnt, off, flags);
    } else {
        ssize_t (*f)(int, const struct iovec *, int, off_t) =
            (ssize_t(*)(int, const struct iovec *, int, off_t))dlsym(RTLD_NEXT, name);
        if (!tracked(fd))
            return f(fd, iov, cnt, off);
        in_hook = 1;
        r = f(fd, iov, cnt, off);
    }
    if (r > 0) {
        void *b = gather(iov, cnt, (size_t)r);
        rec_write(fd, (uint64_t)off, b, (size_t)r);
        free(b);
    }
    in_hook = 0;
    return r;
}
PWRITEV_HOOK(pwritev)
{
    return pwritev_common("pwritev", fd, iov, cnt, off, 0, 0);
}
PWRITEV_HOOK(pwritev64)
{
    return pwritev_common("pwritev64", fd, iov, cnt, off, 0, 0);
}
PWRITEV_HOOK(pwritev2, int flags)
{
    return pwritev_common("pwritev2", fd, iov, cnt, off, flags, 1);
}
PWRITEV_HOOK(pwritev64v2, int flags)
{
    return pwritev_common("pwritev64v2", fd, iov, cnt, off, flags, 1);
}

/* ---- sizes and syncs ---------------------------------------------------- */

static void rec_simple(int fd, uint8_t op, uint8_t flags, uint64_t off, uint64_t len)
{
    pthread_mutex_lock(&lock);
    if (fds[fd].rel) {
        emit(op, flags, fds[fd].rel, NULL, off, len, fds[fd].ino, NULL, 0);
        mfile *m = op == IOREC_TRUNCATE && nmaps_total ? mfile_of(fds[fd].ino) : NULL;
        if (m)
            sh_truncate(m, len);
        if (op == IOREC_FSYNC)
            dirt_clear(fds[fd].ino);
    }
    pthread_mutex_unlock(&lock);
}

EXPORT int ftruncate(int fd, off_t len)
{
    REAL(int, ftruncate, int, off_t);
    if (!tracked(fd))
        return real_ftruncate(fd, len);
    in_hook = 1;
    int r = real_ftruncate(fd, len);
    if (r == 0)
        rec_simple(fd, IOREC_TRUNCATE, 0, 0, (uint64_t)len);
    in_hook = 0;
    return r;
}
EXPORT int ftruncate64(int fd, off_t len)
{
    REAL(int, ftruncate64, int, off_t);
    if (!tracked(fd))
        return real_ftruncate64(fd, len);
    in_hook = 1;
    int r = real_ftruncate64(fd, len);
    if (r == 0)
        rec_simple(fd, IOREC_TRUNCATE, 0, 0, (uint64_t)len);
    in_hook = 0;
    return r;
}
EXPORT int truncate(const char *path, off_t len)
{
    REAL(int, truncate, const char *, off_t);
    char rel[PATH_MAX];
    if (!active || in_hook || !under_root(AT_FDCWD, path, rel, sizeof(rel)))
        return real_truncate(path, len);
    in_hook = 1;
    int r = real_truncate(path, len);
    struct stat st;
    if (r == 0 && stat(path, &st) == 0) {
        pthread_mutex_lock(&lock);
        emit(IOREC_TRUNCATE, 0, rel, NULL, 0, (uint64_t)len, (uint64_t)st.st_ino, NULL, 0);
        mfile *m = nmaps_total ? mfile_of((uint64_t)st.st_ino) : NULL;
        if (m)
            sh_truncate(m, (uint64_t)len);
        pthread_mutex_unlock(&lock);
    }
    in_hook = 0;
    return r;
}

EXPORT int fallocate(int fd, int mode, off_t off, off_t len)
{
    REAL(int, fallocate, int, int, off_t, off_t);
    if (!tracked(fd))
        return real_fallocate(fd, mode, off, len);
    in_hook = 1;
    int r = real_fallocate(fd, mode, off, len);
    if (r == 0)
        rec_simple(fd, IOREC_FALLOC, (mode & FALLOC_FL_KEEP_SIZE) ? IOREC_F_KEEP : 0,
                   (uint64_t)off, (uint64_t)len);
    in_hook = 0;
    return r;
}
EXPORT int fallocate64(int fd, int mode, off_t off, off_t len)
{
    REAL(int, fallocate64, int, int, off_t, off_t);
    if (!tracked(fd))
        return real_fallocate64(fd, mode, off, len);
    in_hook = 1;
    int r = real_fallocate64(fd, mode, off, len);
    if (r == 0)
        rec_simple(fd, IOREC_FALLOC, (mode & FALLOC_FL_KEEP_SIZE) ? IOREC_F_KEEP : 0,
                   (uint64_t)off, (uint64_t)len);
    in_hook = 0;
    return r;
}
EXPORT int posix_fallocate(int fd, off_t off, off_t len)
{
    REAL(int, posix_fallocate, int, off_t, off_t);
    if (!tracked(fd))
        return real_posix_fallocate(fd, off, len);
    in_hook = 1;
    int r = real_posix_fallocate(fd, off, len);
    if (r == 0)
        rec_simple(fd, IOREC_FALLOC, 0, (uint64_t)off, (uint64_t)len);
    in_hook = 0;
    return r;
}
EXPORT int posix_fallocate64(int fd, off_t off, off_t len)
{
    REAL(int, posix_fallocate64, int, off_t, off_t);
    if (!tracked(fd))
        return real_posix_fallocate64(fd, off, len);
    in_hook = 1;
    int r = real_posix_fallocate64(fd, off, len);
    if (r == 0)
        rec_simple(fd, IOREC_FALLOC, 0, (uint64_t)off, (uint64_t)len);
    in_hook = 0;
    return r;
}

static int sync_common(int fd, int (*real)(int))
{
    if (!tracked(fd))
        return real(fd);
    in_hook = 1;
    /* A durability point: what the maps wrote so far is journaled before
     * the sync (and so counts as synced when it is this file's). */
    snap_all_locked(fds[fd].isdir ? 0 : fds[fd].ino);
    int r = real(fd);
    struct stat st;
    /* A file sync carries the file's mtime: the engine compares it (its
     * state file), so the test gives the files it rebuilds the mtime
     * they had. */
    uint64_t mtime = 0;
    if (r == 0 && !fds[fd].isdir && fstat(fd, &st) == 0)
        mtime = (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec;
    if (r == 0)
        rec_simple(fd, fds[fd].isdir ? IOREC_DIRSYNC : IOREC_FSYNC, 0, mtime, 0);
    in_hook = 0;
    return r;
}
EXPORT int fsync(int fd)
{
    REAL(int, fsync, int);
    return sync_common(fd, real_fsync);
}
EXPORT int fdatasync(int fd)
{
    REAL(int, fdatasync, int);
    return sync_common(fd, real_fdatasync);
}
EXPORT int sync_file_range(int fd, off_t off, off_t n, unsigned int flags)
{
    REAL(int, sync_file_range, int, off_t, off_t, unsigned int);
    if (!tracked(fd))
        return real_sync_file_range(fd, off, n, flags);
    in_hook = 1;
    int r = real_sync_file_range(fd, off, n, flags);
    if (r == 0)
        rec_simple(fd, IOREC_SFR, 0, (uint64_t)off, (uint64_t)n);
    in_hook = 0;
    return r;
}

/* ---- the namespace ------------------------------------------------------ */

static int rename_common(int r, const char *a, const char *b, int da, int db)
{
    char ra[PATH_MAX], rb[PATH_MAX];
    if (r == 0 && under_root(da, a, ra, sizeof(ra)) && under_root(db, b, rb, sizeof(rb))) {
        pthread_mutex_lock(&lock);
        emit(IOREC_RENAME, 0, ra, rb, 0, 0, 0, NULL, 0);
        /* Open descriptors now name the new path (only for reading the
         * journal: files are identified by inode). */
        for (int fd = 0; fd < MAX_FD; fd++)
            if (fds[fd].rel && strcmp(fds[fd].rel, ra) == 0) {
                char *n = strdup(rb);
                if (n) {
                    free(fds[fd].rel);
                    fds[fd].rel = n;
                }
            }
        for (int i = 0; i < MAX_MFILES; i++)
            if (mfiles[i] && strcmp(mfiles[i]->rel, ra) == 0) {
                char *n = strdup(rb);
                if (n) {
                    free(mfiles[i]->rel);
                    mfiles[i]->rel = n;
                }
            }
        pthread_mutex_unlock(&lock);
    }
    return r;
}
EXPORT int rename(const char *a, const char *b)
{
    REAL(int, rename, const char *, const char *);
    if (!active || in_hook)
        return real_rename(a, b);
    in_hook = 1;
    int r = rename_common(real_rename(a, b), a, b, AT_FDCWD, AT_FDCWD);
    in_hook = 0;
    return r;
}
EXPORT int renameat(int da, const char *a, int db, const char *b)
{
    REAL(int, renameat, int, const char *, int, const char *);
    if (!active || in_hook)
        return real_renameat(da, a, db, b);
    in_hook = 1;
    int r = rename_common(real_renameat(da, a, db, b), a, b, da, db);
    in_hook = 0;
    return r;
}
EXPORT int renameat2(int da, const char *a, int db, const char *b, unsigned fl)
{
    REAL(int, renameat2, int, const char *, int, const char *, unsigned);
    if (!active || in_hook)
        return real_renameat2(da, a, db, b, fl);
    in_hook = 1;
    int r = rename_common(real_renameat2(da, a, db, b, fl), a, b, da, db);
    in_hook = 0;
    return r;
}

static void rec_path(int r, uint8_t op, uint8_t flags, int dirfd, const char *p)
{
    char rel[PATH_MAX];
    if (r != 0 || !under_root(dirfd, p, rel, sizeof(rel)))
        return;
    uint64_t ino = 0;
    struct stat st;
    if (op == IOREC_MKDIR && fstatat(dirfd, p, &st, 0) == 0)
        ino = (uint64_t)st.st_ino;
    pthread_mutex_lock(&lock);
    emit(op, flags, rel, NULL, 0, 0, ino, NULL, 0);
    pthread_mutex_unlock(&lock);
}
EXPORT int unlink(const char *p)
{
    REAL(int, unlink, const char *);
    if (!active || in_hook)
        return real_unlink(p);
    in_hook = 1;
    int r = real_unlink(p);
    rec_path(r, IOREC_UNLINK, 0, AT_FDCWD, p);
    in_hook = 0;
    return r;
}
EXPORT int rmdir(const char *p)
{
    REAL(int, rmdir, const char *);
    if (!active || in_hook)
        return real_rmdir(p);
    in_hook = 1;
    int r = real_rmdir(p);
    rec_path(r, IOREC_UNLINK, IOREC_F_DIR, AT_FDCWD, p);
    in_hook = 0;
    return r;
}
EXPORT int unlinkat(int d, const char *p, int fl)
{
    REAL(int, unlinkat, int, const char *, int);
    if (!active || in_hook)
        return real_unlinkat(d, p, fl);
    in_hook = 1;
    int r = real_unlinkat(d, p, fl);
    rec_path(r, IOREC_UNLINK, (fl & AT_REMOVEDIR) ? IOREC_F_DIR : 0, d, p);
    in_hook = 0;
    return r;
}
EXPORT int mkdir(const char *p, mode_t m)
{
    REAL(int, mkdir, const char *, mode_t);
    if (!active || in_hook)
        return real_mkdir(p, m);
    in_hook = 1;
    int r = real_mkdir(p, m);
    rec_path(r, IOREC_MKDIR, 0, AT_FDCWD, p);
    in_hook = 0;
    return r;
}
EXPORT int mkdirat(int d, const char *p, mode_t m)
{
    REAL(int, mkdirat, int, const char *, mode_t);
    if (!active || in_hook)
        return real_mkdirat(d, p, m);
    in_hook = 1;
    int r = real_mkdirat(d, p, m);
    rec_path(r, IOREC_MKDIR, 0, d, p);
    in_hook = 0;
    return r;
}

/* ---- descriptors -------------------------------------------------------- */

EXPORT int close(int fd)
{
    REAL(int, close, int);
    if (!active || fd < 0 || fd >= MAX_FD)
        return real_close(fd);
    pthread_mutex_lock(&lock);
    mfile *m = fds[fd].rel && nmaps_total && !in_hook ? mfile_of(fds[fd].ino) : NULL;
    if (m) {
        /* The file's last recorded descriptor: a snapshot point. */
        int others = 0;
        for (int i = 0; i < MAX_FD && !others; i++)
            others = i != fd && fds[i].rel && fds[i].ino == m->ino;
        if (!others) {
            in_hook = 1;
            snap_file(m, 1, 1);
            in_hook = 0;
        }
    }
    free(fds[fd].rel);
    fds[fd].rel = NULL;
    int r = real_close(fd);
    pthread_mutex_unlock(&lock);
    return r;
}

static void copy_fd(int from, int to)
{
    if (to < 0 || to >= MAX_FD || from < 0 || from >= MAX_FD || from == to)
        return;
    pthread_mutex_lock(&lock);
    free(fds[to].rel);
    fds[to] = fds[from];
    fds[to].rel = fds[from].rel ? strdup(fds[from].rel) : NULL;
    pthread_mutex_unlock(&lock);
}
EXPORT int dup(int fd)
{
    REAL(int, dup, int);
    int r = real_dup(fd);
    if (active)
        copy_fd(fd, r);
    return r;
}
EXPORT int dup2(int fd, int to)
{
    REAL(int, dup2, int, int);
    int r = real_dup2(fd, to);
    if (active && r >= 0)
        copy_fd(fd, r);
    return r;
}
EXPORT int dup3(int fd, int to, int fl)
{
    REAL(int, dup3, int, int, int);
    int r = real_dup3(fd, to, fl);
    if (active && r >= 0)
        copy_fd(fd, r);
    return r;
}
/* The third argument is an int or a pointer: passed on as a pointer-sized
 * value, which the x86-64 and AArch64 calling conventions make the same. */
EXPORT int fcntl(int fd, int cmd, ...)
{
    REAL(int, fcntl, int, int, ...);
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    int r = real_fcntl(fd, cmd, arg);
    if (active && r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC))
        copy_fd(fd, r);
    return r;
}

static void note_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    if (!tracked(fd) || !(prot & PROT_WRITE) || !(flags & MAP_SHARED))
        return;
    in_hook = 1;
    pthread_mutex_lock(&lock);
    if (fds[fd].rel) {
        emit(IOREC_MMAPW, 0, fds[fd].rel, NULL, 0, 0, fds[fd].ino, NULL, 0);
        map_register(fd, addr, len, off);
    }
    pthread_mutex_unlock(&lock);
    in_hook = 0;
}
EXPORT void *mmap(void *a, size_t n, int prot, int flags, int fd, off_t off)
{
    REAL(void *, mmap, void *, size_t, int, int, int, off_t);
    void *r = real_mmap(a, n, prot, flags, fd, off);
    if (r != MAP_FAILED)
        note_mmap(r, n, prot, flags, fd, off);
    return r;
}
EXPORT void *mmap64(void *a, size_t n, int prot, int flags, int fd, off_t off)
{
    REAL(void *, mmap64, void *, size_t, int, int, int, off_t);
    void *r = real_mmap64(a, n, prot, flags, fd, off);
    if (r != MAP_FAILED)
        note_mmap(r, n, prot, flags, fd, off);
    return r;
}

/* The registered mappings that [a, a+n) overlaps: snapshot their files
 * (a snapshot point), unmap, then forget or trim them. */
EXPORT int munmap(void *a, size_t n)
{
    REAL(int, munmap, void *, size_t);
    if (!active || in_hook || !nmaps_total)
        return real_munmap(a, n);
    uintptr_t lo = (uintptr_t)a, hi = lo + n;
    in_hook = 1;
    pthread_mutex_lock(&lock);
    int hit = 0;
    for (int i = 0; i < MAX_MAPS; i++)
        if (maps[i].f && maps[i].addr < hi && lo < maps[i].addr + maps[i].len) {
            snap_file(maps[i].f, 1, 1);
            hit = 1;
        }
    int r = real_munmap(a, n);
    if (r == 0 && hit)
        for (int i = 0; i < MAX_MAPS; i++) {
            mapping *m = &maps[i];
            if (!m->f || !(m->addr < hi && lo < m->addr + m->len))
                continue;
            if (lo <= m->addr && hi >= m->addr + m->len) {
                mfile *f = m->f;
                m->f = NULL;
                nmaps_total--;
                if (--f->nmaps == 0)
                    mfile_drop(f);
            } else if (lo <= m->addr) { /* the head went */
                m->foff += hi - m->addr;
                m->len -= hi - m->addr;
                m->addr = hi;
            } else if (hi >= m->addr + m->len) { /* the tail went */
                m->len = lo - m->addr;
            } /* a hole in the middle: kept whole (only msync looks it up) */
        }
    pthread_mutex_unlock(&lock);
    in_hook = 0;
    return r;
}

EXPORT void *mremap(void *old, size_t oldn, size_t n, int flags, ...)
{
    REAL(void *, mremap, void *, size_t, size_t, int, ...);
    void *want = NULL;
    if (flags & MREMAP_FIXED) {
        va_list ap;
        va_start(ap, flags);
        want = va_arg(ap, void *);
        va_end(ap);
    }
    if (!active || in_hook || !nmaps_total)
        return real_mremap(old, oldn, n, flags, want);
    in_hook = 1;
    pthread_mutex_lock(&lock);
    mapping *m = map_find((uintptr_t)old);
    if (m)
        snap_file(m->f, 1, 1);
    void *r = real_mremap(old, oldn, n, flags, want);
    if (r != MAP_FAILED && m && m->addr == (uintptr_t)old) {
        m->addr = (uintptr_t)r;
        m->len = n;
    }
    pthread_mutex_unlock(&lock);
    in_hook = 0;
    return r;
}

/* msync of any range is a snapshot point; MS_SYNC of a registered mapping
 * is a sync of its file when the range covers every write of the file
 * since its last sync (else MSYNCR: not counted as a sync). */
EXPORT int msync(void *a, size_t n, int flags)
{
    REAL(int, msync, void *, size_t, int);
    if (!active || in_hook || !nmaps_total)
        return real_msync(a, n, flags);
    in_hook = 1;
    pthread_mutex_lock(&lock);
    mapping *m = map_find((uintptr_t)a);
    snap_all(m && (flags & MS_SYNC) ? m->f->ino : 0);
    mapping mc = m ? *m : (mapping){0, 0, 0, NULL};
    uint64_t ino = m ? m->f->ino : 0;
    pthread_mutex_unlock(&lock);
    int r = real_msync(a, n, flags);
    if (r == 0 && mc.f && (flags & MS_SYNC)) {
        pthread_mutex_lock(&lock);
        mfile *f = mfile_of(ino);
        if (f) {
            uint64_t lo = mc.foff + ((uintptr_t)a - mc.addr), hi = lo + n;
            if (dirt_covered(ino, lo, hi)) {
                struct stat st;
                uint64_t mtime = 0;
                if (fstat(f->rfd, &st) == 0)
                    mtime = (uint64_t)st.st_mtim.tv_sec * 1000000000u +
                            (uint64_t)st.st_mtim.tv_nsec;
                emit(IOREC_FSYNC, 0, f->rel, NULL, mtime, 0, ino, NULL, 0);
                dirt_clear(ino);
            } else {
                emit(IOREC_MSYNCR, 0, f->rel, NULL, lo, n, ino, NULL, 0);
            }
        }
        pthread_mutex_unlock(&lock);
    }
    in_hook = 0;
    return r;
}

__attribute__((destructor)) static void iorec_fini(void)
{
    if (!active || in_hook)
        return;
    in_hook = 1;
    snap_all_locked(SNAP_ALL_FULL); /* process exit: a snapshot point */
    in_hook = 0;
}

/* ---- the workload's own records ----------------------------------------- */

EXPORT void evs_iorec_mark(const void *buf, size_t len)
{
    if (!active)
        return;
    int was = in_hook;
    in_hook = 1;
    pthread_mutex_lock(&lock);
    snap_all(0); /* the maps' writes before the acknowledgement */
    emit(IOREC_MARK, 0, NULL, NULL, 0, len, 0, buf, len);
    pthread_mutex_unlock(&lock);
    in_hook = was;
}
