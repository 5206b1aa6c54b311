/*
 * faultfs.c -- an LD_PRELOAD shim that makes one chosen file operation on
 * the files under one directory fail, for tests/test_faults.c (issue 13:
 * I/O errors on every write path).
 *
 * Active only when EVS_FAULT_ROOT names a directory (canonicalized with
 * realpath). For the files under it the shim counts the calls of each kind:
 *
 *   write       write, pwrite, pwrite64, writev, pwritev, pwritev64,
 *               pwritev2 (alias: "pwrite")
 *   fsync       fsync
 *   fdatasync   fdatasync
 *   fallocate   fallocate, fallocate64, posix_fallocate, posix_fallocate64
 *   ftruncate   ftruncate, ftruncate64, truncate
 *   rename      rename, renameat, renameat2 (either path under the root)
 *   create      open, open64, openat, openat64, creat, creat64 with O_CREAT
 *               (alias: "open")
 *   msync       msync of a mapping of a file under the root
 *   sync_file_range
 *   mkdir       mkdir, mkdirat
 *   unlink      unlink, unlinkat, rmdir
 *
 * and, when EVS_FAULT_OP names a kind (or "any": every kind counted
 * together), makes call number EVS_FAULT_AT (1-based, default 1) of that
 * kind fail with EVS_FAULT_ERRNO ("EIO", the default, "ENOSPC", "EDQUOT",
 * "EROFS" or a number); with EVS_FAULT_STICKY=1 every later call of the
 * kind fails too (a dying disk). With EVS_FAULT_SHORT=1 a failing write
 * of at least 2 bytes instead writes the first half and returns that
 * count (a short write); later sticky writes fail outright. A failing
 * call does nothing (the real call is not made).
 *
 * EVS_FAULT_LOG (a file outside the root): one line per injected failure,
 * "<kind> <n> <function> <errno> <short> <path>", appended. EVS_FAULT_COUNTS
 * (a file outside the root): written at exit with "<kind> <count>" lines,
 * the calls counted (failed ones included). EVS_FAULT_VERBOSE=1 prints each
 * injected failure on stderr; otherwise the shim prints nothing.
 *
 * Files outside the root are never failed nor counted; the shim's own
 * calls (the log, /proc reads) are not counted (a thread-local flag).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include "../shim_path.h"
#include <limits.h>
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

enum {
    K_WRITE, K_FSYNC, K_FDATASYNC, K_FALLOCATE, K_FTRUNCATE, K_RENAME,
    K_CREATE, K_MSYNC, K_SFR, K_MKDIR, K_UNLINK, K_NKINDS, K_ANY = K_NKINDS
};
static const char *const kind_names[K_NKINDS + 1] = {
    "write", "fsync", "fdatasync", "fallocate", "ftruncate", "rename",
    "create", "msync", "sync_file_range", "mkdir", "unlink", "any"};

static int active;
static int fault_op = -1; /* a kind, K_ANY, or -1: count only */
static uint64_t fault_at = 1;
static int fault_errno = EIO;
static int sticky, short_write, verbose;
static char root[PATH_MAX];
static size_t root_len;
static char log_path[PATH_MAX], counts_path[PATH_MAX];
static uint64_t counts[K_NKINDS + 1];
static __thread int in_hook;

#define REAL(ret, name, ...)                                                 \
    static ret (*real_##name)(__VA_ARGS__);                                  \
    if (!real_##name)                                                        \
        real_##name = (ret(*)(__VA_ARGS__))dlsym(RTLD_NEXT, #name)

static int raw_open(const char *p, int flags, mode_t m)
{
    static int (*o)(const char *, int, ...);
    if (!o)
        o = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open");
    return o(p, flags, m);
}

static void raw_write_all(int fd, const char *p, size_t n)
{
    static ssize_t (*w)(int, const void *, size_t);
    if (!w)
        w = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    while (n > 0) {
        ssize_t r = w(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return;
        p += r;
        n -= (size_t)r;
    }
}

static int raw_close(int fd)
{
    static int (*c)(int);
    if (!c)
        c = (int (*)(int))dlsym(RTLD_NEXT, "close");
    return c(fd);
}

static int parse_errno(const char *s)
{
    if (!s || !*s || strcmp(s, "EIO") == 0)
        return EIO;
    if (strcmp(s, "ENOSPC") == 0)
        return ENOSPC;
    if (strcmp(s, "EDQUOT") == 0)
        return EDQUOT;
    if (strcmp(s, "EROFS") == 0)
        return EROFS;
    int v = atoi(s);
    return v > 0 ? v : EIO;
}

__attribute__((constructor)) static void faultfs_init(void)
{
    const char *r = getenv("EVS_FAULT_ROOT");
    if (!r || !*r)
        return;
    in_hook = 1;
    if (!realpath(r, root)) {
        in_hook = 0;
        return;
    }
    root_len = strlen(root);
    while (root_len > 1 && root[root_len - 1] == '/')
        root[--root_len] = '\0';
    const char *op = getenv("EVS_FAULT_OP");
    if (op && *op) {
        if (strcmp(op, "pwrite") == 0)
            op = "write";
        else if (strcmp(op, "open") == 0)
            op = "create";
        for (int k = 0; k <= K_ANY; k++)
            if (strcmp(op, kind_names[k]) == 0)
                fault_op = k;
    }
    const char *at = getenv("EVS_FAULT_AT");
    if (at && *at)
        fault_at = strtoull(at, NULL, 10);
    if (fault_at == 0)
        fault_at = 1;
    fault_errno = parse_errno(getenv("EVS_FAULT_ERRNO"));
    const char *v = getenv("EVS_FAULT_STICKY");
    sticky = v && strcmp(v, "1") == 0;
    v = getenv("EVS_FAULT_SHORT");
    short_write = v && strcmp(v, "1") == 0;
    v = getenv("EVS_FAULT_VERBOSE");
    verbose = v && strcmp(v, "1") == 0;
    v = getenv("EVS_FAULT_LOG");
    if (v)
        snprintf(log_path, sizeof(log_path), "%s", v);
    v = getenv("EVS_FAULT_COUNTS");
    if (v)
        snprintf(counts_path, sizeof(counts_path), "%s", v);
    active = 1;
    in_hook = 0;
}

__attribute__((destructor)) static void faultfs_fini(void)
{
    if (!active || !counts_path[0])
        return;
    in_hook = 1;
    int fd = raw_open(counts_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
        char b[1024];
        size_t k = 0;
        for (int i = 0; i <= K_ANY; i++)
            k += (size_t)snprintf(b + k, sizeof(b) - k, "%s %llu\n", kind_names[i],
                                  (unsigned long long)__atomic_load_n(
                                      &counts[i], __ATOMIC_SEQ_CST));
        raw_write_all(fd, b, k);
        raw_close(fd);
    }
    in_hook = 0;
}

/* ---- which files are under the root ------------------------------------- */

static int prefix_ok(const char *full)
{
    if (strncmp(full, root, root_len) != 0)
        return 0;
    return full[root_len] == '\0' || full[root_len] == '/' ||
           (root_len == 1 && root[0] == '/');
}

static int fd_under(int fd)
{
    if (!active || in_hook || fd < 0)
        return 0;
    char l[64], p[PATH_MAX];
    snprintf(l, sizeof(l), "/proc/self/fd/%d", fd);
    ssize_t k = readlink(l, p, sizeof(p) - 1);
    if (k <= 0)
        return 0;
    p[k] = '\0';
    return prefix_ok(p);
}

static int path_under(int dirfd, const char *path)
{
    if (!active || in_hook || !path)
        return 0;
    char full[PATH_MAX * 2];
    if (!shim_abs_path(dirfd, path, full, sizeof(full)))
        return 0;
    return prefix_ok(full);
}

/* The file mapped at addr, via /proc/self/maps: 1 if it is under the root. */
static int addr_under(const void *addr)
{
    if (!active || in_hook)
        return 0;
    in_hook = 1;
    int fd = raw_open("/proc/self/maps", O_RDONLY | O_CLOEXEC, 0);
    int found = 0;
    if (fd >= 0) {
        static __thread char buf[1 << 16];
        char line[PATH_MAX + 256];
        size_t ll = 0;
        ssize_t n;
        uintptr_t a = (uintptr_t)addr;
        while (!found && (n = read(fd, buf, sizeof(buf))) > 0) {
            for (ssize_t i = 0; i < n && !found; i++) {
                if (buf[i] != '\n') {
                    if (ll + 1 < sizeof(line))
                        line[ll++] = buf[i];
                    continue;
                }
                line[ll] = '\0';
                ll = 0;
                unsigned long lo, hi;
                if (sscanf(line, "%lx-%lx", &lo, &hi) != 2 || a < lo || a >= hi)
                    continue;
                char *slash = strchr(line, '/');
                found = slash && prefix_ok(slash) ? 1 : -1;
            }
        }
        raw_close(fd);
    }
    in_hook = 0;
    return found == 1;
}

/* ---- the decision -------------------------------------------------------- */

/* Count a call of kind k; 1 when it must fail (0: go on), 2 when it must
 * be a short write. */
static int decide(int k, const char *fn, int fd, const char *path)
{
    uint64_t n = __atomic_add_fetch(&counts[k], 1, __ATOMIC_SEQ_CST);
    uint64_t na = __atomic_add_fetch(&counts[K_ANY], 1, __ATOMIC_SEQ_CST);
    uint64_t t;
    if (fault_op == K_ANY)
        t = na;
    else if (fault_op == k)
        t = n;
    else
        return 0;
    if (t != fault_at && !(sticky && t > fault_at))
        return 0;
    int shortw = short_write && k == K_WRITE && t == fault_at;
    in_hook = 1;
    char p[PATH_MAX] = "";
    if (path) {
        snprintf(p, sizeof(p), "%s", path);
    } else if (fd >= 0) {
        char l[64];
        snprintf(l, sizeof(l), "/proc/self/fd/%d", fd);
        ssize_t z = readlink(l, p, sizeof(p) - 1);
        p[z > 0 ? z : 0] = '\0';
    }
    char line[PATH_MAX + 128];
    int len = snprintf(line, sizeof(line), "%s %llu %s %d %d %s\n", kind_names[k],
                       (unsigned long long)t, fn, fault_errno, shortw, p);
    if (len > (int)sizeof(line) - 1)
        len = (int)sizeof(line) - 1;
    if (log_path[0]) {
        int lfd = raw_open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (lfd >= 0) {
            raw_write_all(lfd, line, (size_t)len);
            raw_close(lfd);
        }
    }
    if (verbose) {
        raw_write_all(2, "faultfs: ", 9);
        raw_write_all(2, line, (size_t)len);
    }
    in_hook = 0;
    return shortw ? 2 : 1;
}

#define FAIL_RET(v)                                                          \
    do {                                                                     \
        errno = fault_errno;                                                 \
        return (v);                                                          \
    } while (0)

/* ---- writes -------------------------------------------------------------- */

EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
    REAL(ssize_t, write, int, const void *, size_t);
    if (fd_under(fd)) {
        int d = decide(K_WRITE, "write", fd, NULL);
        if (d == 2 && n >= 2)
            return real_write(fd, buf, n / 2);
        if (d)
            FAIL_RET(-1);
    }
    return real_write(fd, buf, n);
}

EXPORT ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    REAL(ssize_t, pwrite, int, const void *, size_t, off_t);
    if (fd_under(fd)) {
        int d = decide(K_WRITE, "pwrite", fd, NULL);
        if (d == 2 && n >= 2)
            return real_pwrite(fd, buf, n / 2, off);
        if (d)
            FAIL_RET(-1);
    }
    return real_pwrite(fd, buf, n, off);
}

EXPORT ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    REAL(ssize_t, pwrite64, int, const void *, size_t, off_t);
    if (fd_under(fd)) {
        int d = decide(K_WRITE, "pwrite64", fd, NULL);
        if (d == 2 && n >= 2)
            return real_pwrite64(fd, buf, n / 2, off);
        if (d)
            FAIL_RET(-1);
    }
    return real_pwrite64(fd, buf, n, off);
}

/* The first half of iov (total bytes) as a new vector in out (at most
 * cap entries); returns its count. */
static int half_iov(struct iovec *out, int cap, const struct iovec *iov, int cnt)
{
    size_t total = 0;
    for (int i = 0; i < cnt; i++)
        total += iov[i].iov_len;
    size_t want = total / 2;
    int k = 0;
    for (int i = 0; i < cnt && want > 0 && k < cap; i++) {
        out[k] = iov[i];
        if (out[k].iov_len > want)
            out[k].iov_len = want;
        want -= out[k].iov_len;
        if (out[k].iov_len)
            k++;
    }
    return k;
}

EXPORT ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    REAL(ssize_t, writev, int, const struct iovec *, int);
    if (fd_under(fd)) {
        int d = decide(K_WRITE, "writev", fd, NULL);
        if (d == 2) {
            struct iovec h[64];
            int k = half_iov(h, 64, iov, cnt);
            if (k > 0)
                return real_writev(fd, h, k);
        }
        if (d)
            FAIL_RET(-1);
    }
    return real_writev(fd, iov, cnt);
}

#define PWRITEV(name)                                                        \
    EXPORT ssize_t name(int fd, const struct iovec *iov, int cnt, off_t off)  \
    {                                                                        \
        REAL(ssize_t, name, int, const struct iovec *, int, off_t);          \
        if (fd_under(fd)) {                                                  \
            int d = decide(K_WRITE, #name, fd, NULL);                        \
            if (d == 2) {                                                    \
                struct iovec h[64];                                          \
                int k = half_iov(h, 64, iov, cnt);                           \
                if (k > 0)                                                   \
                    return real_##name(fd, h, k, off);                       \
            }                                                                \
            if (d)                                                           \
                FAIL_RET(-1);                                                \
        }                                                                    \
        return real_##name(fd, iov, cnt, off);                               \
    }
PWRITEV(pwritev)
PWRITEV(pwritev64)

#define PWRITEV2(name)                                                       \
    EXPORT ssize_t name(int fd, const struct iovec *iov, int cnt, off_t off,  \
                        int fl)                                              \
    {                                                                        \
        REAL(ssize_t, name, int, const struct iovec *, int, off_t, int);     \
        if (fd_under(fd)) {                                                  \
            int d = decide(K_WRITE, #name, fd, NULL);                        \
            if (d == 2) {                                                    \
                struct iovec h[64];                                          \
                int k = half_iov(h, 64, iov, cnt);                           \
                if (k > 0)                                                   \
                    return real_##name(fd, h, k, off, fl);                   \
            }                                                                \
            if (d)                                                           \
                FAIL_RET(-1);                                                \
        }                                                                    \
        return real_##name(fd, iov, cnt, off, fl);                           \
    }
PWRITEV2(pwritev2)
PWRITEV2(pwritev64v2)

/* ---- syncs --------------------------------------------------------------- */

EXPORT int fsync(int fd)
{
    REAL(int, fsync, int);
    if (fd_under(fd) && decide(K_FSYNC, "fsync", fd, NULL))
        FAIL_RET(-1);
    return real_fsync(fd);
}

EXPORT int fdatasync(int fd)
{
    REAL(int, fdatasync, int);
    if (fd_under(fd) && decide(K_FDATASYNC, "fdatasync", fd, NULL))
        FAIL_RET(-1);
    return real_fdatasync(fd);
}

EXPORT int sync_file_range(int fd, off_t off, off_t n, unsigned int flags)
{
    REAL(int, sync_file_range, int, off_t, off_t, unsigned int);
    if (fd_under(fd) && decide(K_SFR, "sync_file_range", fd, NULL))
        FAIL_RET(-1);
    return real_sync_file_range(fd, off, n, flags);
}

EXPORT int msync(void *a, size_t n, int flags)
{
    REAL(int, msync, void *, size_t, int);
    if (addr_under(a) && decide(K_MSYNC, "msync", -1, "(map)"))
        FAIL_RET(-1);
    return real_msync(a, n, flags);
}

/* ---- sizes --------------------------------------------------------------- */

EXPORT int fallocate(int fd, int mode, off_t off, off_t len)
{
    REAL(int, fallocate, int, int, off_t, off_t);
    if (fd_under(fd) && decide(K_FALLOCATE, "fallocate", fd, NULL))
        FAIL_RET(-1);
    return real_fallocate(fd, mode, off, len);
}

EXPORT int fallocate64(int fd, int mode, off_t off, off_t len)
{
    REAL(int, fallocate64, int, int, off_t, off_t);
    if (fd_under(fd) && decide(K_FALLOCATE, "fallocate64", fd, NULL))
        FAIL_RET(-1);
    return real_fallocate64(fd, mode, off, len);
}

/* posix_fallocate returns the error number (errno is not set). */
EXPORT int posix_fallocate(int fd, off_t off, off_t len)
{
    REAL(int, posix_fallocate, int, off_t, off_t);
    if (fd_under(fd) && decide(K_FALLOCATE, "posix_fallocate", fd, NULL))
        return fault_errno;
    return real_posix_fallocate(fd, off, len);
}

EXPORT int posix_fallocate64(int fd, off_t off, off_t len)
{
    REAL(int, posix_fallocate64, int, off_t, off_t);
    if (fd_under(fd) && decide(K_FALLOCATE, "posix_fallocate64", fd, NULL))
        return fault_errno;
    return real_posix_fallocate64(fd, off, len);
}

EXPORT int ftruncate(int fd, off_t len)
{
    REAL(int, ftruncate, int, off_t);
    if (fd_under(fd) && decide(K_FTRUNCATE, "ftruncate", fd, NULL))
        FAIL_RET(-1);
    return real_ftruncate(fd, len);
}

EXPORT int ftruncate64(int fd, off_t len)
{
    REAL(int, ftruncate64, int, off_t);
    if (fd_under(fd) && decide(K_FTRUNCATE, "ftruncate64", fd, NULL))
        FAIL_RET(-1);
    return real_ftruncate64(fd, len);
}

EXPORT int truncate(const char *p, off_t len)
{
    REAL(int, truncate, const char *, off_t);
    if (path_under(AT_FDCWD, p) && decide(K_FTRUNCATE, "truncate", -1, p))
        FAIL_RET(-1);
    return real_truncate(p, len);
}

/* ---- names --------------------------------------------------------------- */

EXPORT int rename(const char *a, const char *b)
{
    REAL(int, rename, const char *, const char *);
    if ((path_under(AT_FDCWD, a) || path_under(AT_FDCWD, b)) &&
        decide(K_RENAME, "rename", -1, b))
        FAIL_RET(-1);
    return real_rename(a, b);
}

EXPORT int renameat(int da, const char *a, int db, const char *b)
{
    REAL(int, renameat, int, const char *, int, const char *);
    if ((path_under(da, a) || path_under(db, b)) &&
        decide(K_RENAME, "renameat", -1, b))
        FAIL_RET(-1);
    return real_renameat(da, a, db, b);
}

EXPORT int renameat2(int da, const char *a, int db, const char *b, unsigned fl)
{
    REAL(int, renameat2, int, const char *, int, const char *, unsigned);
    if ((path_under(da, a) || path_under(db, b)) &&
        decide(K_RENAME, "renameat2", -1, b))
        FAIL_RET(-1);
    return real_renameat2(da, a, db, b, fl);
}

EXPORT int mkdir(const char *p, mode_t m)
{
    REAL(int, mkdir, const char *, mode_t);
    if (path_under(AT_FDCWD, p) && decide(K_MKDIR, "mkdir", -1, p))
        FAIL_RET(-1);
    return real_mkdir(p, m);
}

EXPORT int mkdirat(int d, const char *p, mode_t m)
{
    REAL(int, mkdirat, int, const char *, mode_t);
    if (path_under(d, p) && decide(K_MKDIR, "mkdirat", -1, p))
        FAIL_RET(-1);
    return real_mkdirat(d, p, m);
}

EXPORT int unlink(const char *p)
{
    REAL(int, unlink, const char *);
    if (path_under(AT_FDCWD, p) && decide(K_UNLINK, "unlink", -1, p))
        FAIL_RET(-1);
    return real_unlink(p);
}

EXPORT int unlinkat(int d, const char *p, int fl)
{
    REAL(int, unlinkat, int, const char *, int);
    if (path_under(d, p) && decide(K_UNLINK, "unlinkat", -1, p))
        FAIL_RET(-1);
    return real_unlinkat(d, p, fl);
}

EXPORT int rmdir(const char *p)
{
    REAL(int, rmdir, const char *);
    if (path_under(AT_FDCWD, p) && decide(K_UNLINK, "rmdir", -1, p))
        FAIL_RET(-1);
    return real_rmdir(p);
}

/* ---- creating opens ------------------------------------------------------ */

static int do_openat(const char *fn, int dirfd, const char *path, int flags,
                     mode_t mode)
{
    static int (*real)(int, const char *, int, ...);
    if (!real)
        real = (int (*)(int, const char *, int, ...))dlsym(RTLD_NEXT, "openat");
    if ((flags & O_CREAT) && path_under(dirfd, path) &&
        decide(K_CREATE, fn, -1, path))
        FAIL_RET(-1);
    return real(dirfd, path, flags, mode);
}

static mode_t va_mode(int flags, va_list ap)
{
    if (flags & (O_CREAT | O_TMPFILE))
        return (mode_t)va_arg(ap, int);
    return 0;
}

EXPORT int open(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t m = va_mode(flags, ap);
    va_end(ap);
    return do_openat("open", AT_FDCWD, path, flags, m);
}

EXPORT int open64(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t m = va_mode(flags, ap);
    va_end(ap);
    return do_openat("open64", AT_FDCWD, path, flags, m);
}

EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t m = va_mode(flags, ap);
    va_end(ap);
    return do_openat("openat", dirfd, path, flags, m);
}

EXPORT int openat64(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t m = va_mode(flags, ap);
    va_end(ap);
    return do_openat("openat64", dirfd, path, flags, m);
}

EXPORT int creat(const char *path, mode_t m)
{
    return do_openat("creat", AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, m);
}

EXPORT int creat64(const char *path, mode_t m)
{
    return do_openat("creat64", AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, m);
}
