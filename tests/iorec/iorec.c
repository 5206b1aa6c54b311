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
 * O_SYNC/O_DSYNC writes (as a write then a file sync), sync_file_range
 * (noted, not a durability point), rename/renameat/renameat2,
 * unlink/unlinkat/rmdir, mkdir/mkdirat, and shared writable mappings of a
 * recorded file (their writes cannot be seen: noted so the test can say
 * so). Reads and mmap'ed reads are not recorded.
 *
 * Threads: one mutex orders journal records and guards the fd table; a
 * record is appended after the real call returned, so a sync's record
 * precedes anything the caller does after it (an acknowledgement mark).
 * A thread-local flag keeps the shim's own calls (dlsym, the journal
 * write) out of the journal.
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
    if (!path)
        return 0;
    if (path[0] == '/') {
        snprintf(full, sizeof(full), "%s", path);
    } else {
        char base[PATH_MAX];
        if (dirfd == AT_FDCWD) {
            if (!getcwd(base, sizeof(base)))
                return 0;
        } else {
            char l[64];
            snprintf(l, sizeof(l), "/proc/self/fd/%d", dirfd);
            ssize_t k = readlink(l, base, sizeof(base) - 1);
            if (k < 0)
                return 0;
            base[k] = '\0';
        }
        snprintf(full, sizeof(full), "%s/%s", base, path);
    }
    /* Collapse "//" and "/./" (LMDB and the engine build plain paths). */
    char *w = full, *r = full;
    while (*r) {
        if (r[0] == '/' && r[1] == '/') { r++; continue; }
        if (r[0] == '/' && r[1] == '.' && (r[2] == '/' || r[2] == '\0')) { r += 2; continue; }
        *w++ = *r++;
    }
    *w = '\0';
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

static void rec_write(int fd, uint64_t off, const void *data, size_t n)
{
    pthread_mutex_lock(&lock);
    if (fds[fd].rel) {
        int z = all_zero(data, n);
        emit(IOREC_WRITE, z ? IOREC_F_ZERO : 0, fds[fd].rel, NULL, off, n,
             fds[fd].ino, z ? NULL : data, z ? 0 : n);
        if (fds[fd].sync)
            emit(IOREC_FSYNC, 0, fds[fd].rel, NULL, 0, 0, fds[fd].ino, NULL, 0);
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
    if (fds[fd].rel)
        emit(op, flags, fds[fd].rel, NULL, off, len, fds[fd].ino, NULL, 0);
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

static void note_mmap(int prot, int flags, int fd)
{
    if (tracked(fd) && (prot & PROT_WRITE) && (flags & MAP_SHARED))
        rec_simple(fd, IOREC_MMAPW, 0, 0, 0);
}
EXPORT void *mmap(void *a, size_t n, int prot, int flags, int fd, off_t off)
{
    REAL(void *, mmap, void *, size_t, int, int, int, off_t);
    void *r = real_mmap(a, n, prot, flags, fd, off);
    if (r != MAP_FAILED)
        note_mmap(prot, flags, fd);
    return r;
}
EXPORT void *mmap64(void *a, size_t n, int prot, int flags, int fd, off_t off)
{
    REAL(void *, mmap64, void *, size_t, int, int, int, off_t);
    void *r = real_mmap64(a, n, prot, flags, fd, off);
    if (r != MAP_FAILED)
        note_mmap(prot, flags, fd);
    return r;
}

/* ---- the workload's own records ----------------------------------------- */

EXPORT void evs_iorec_mark(const void *buf, size_t len)
{
    if (!active)
        return;
    pthread_mutex_lock(&lock);
    emit(IOREC_MARK, 0, NULL, NULL, 0, len, 0, buf, len);
    pthread_mutex_unlock(&lock);
}
