/*
 * shim_path.h -- the absolute, "//"- and "/./"-free form of a path given
 * to an *at() call, for the test shims (tests/iorec, tests/faultfs) that
 * decide whether a call touches the store under test. Header-only: each
 * shim is its own shared library.
 */
#ifndef EVS_TESTS_SHIM_PATH_H
#define EVS_TESTS_SHIM_PATH_H

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <unistd.h>

/* path, relative to dirfd (AT_FDCWD: the working directory), made absolute
 * into full (at least 2 * PATH_MAX bytes). Returns 0 when it cannot be
 * (the working directory or dirfd unknown). */
static inline int shim_abs_path(int dirfd, const char *path, char *full, size_t cap)
{
    if (path[0] == '/') {
        snprintf(full, cap, "%s", path);
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
        snprintf(full, cap, "%s/%s", base, path);
    }
    /* Collapse "//" and "/./" (LMDB and the engine build plain paths). */
    char *w = full, *r = full;
    while (*r) {
        if (r[0] == '/' && r[1] == '/') { r++; continue; }
        if (r[0] == '/' && r[1] == '.' && (r[2] == '/' || r[2] == '\0')) { r += 2; continue; }
        *w++ = *r++;
    }
    *w = '\0';
    return 1;
}

#endif
