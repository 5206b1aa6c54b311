/* util.c -- the helpers of util.h that are not inline. */
#include "util/util.h"
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <errno.h>

#include <isa-l/crc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

/* ---- per-thread scratch ------------------------------------------------ */

#define EVS_MAX_SCRATCH 16
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static _Thread_local evs__scratch *scratch_reg[EVS_MAX_SCRATCH];
static _Thread_local int scratch_n;

static void scratch_free_all(void *arg)
{
    (void)arg;
    for (int i = 0; i < scratch_n; i++) {
        free(scratch_reg[i]->buf);
        scratch_reg[i]->buf = NULL;
        scratch_reg[i]->cap = 0;
    }
    scratch_n = 0;
}

static void scratch_key_init(void) { pthread_key_create(&scratch_key, scratch_free_all); }

int evs__grow(void *bufp, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 16;
    while (c < need) {
        if (c > SIZE_MAX / 2)
            return -1;
        c *= 2;
    }
    if (c > SIZE_MAX / size)
        return -1;
    void *old;
    memcpy(&old, bufp, sizeof(old));
    void *p = realloc(old, c * size);
    if (!p)
        return -1;
    memcpy(bufp, &p, sizeof(p));
    *cap = c;
    return 0;
}

void *evs__scratch_get(evs__scratch *s, size_t need)
{
    int first = s->buf == NULL;
    if (evs__grow(&s->buf, &s->cap, need < 4096 ? 4096 : need, 1) < 0)
        return NULL;
    if (first && s->buf) { /* first allocation on this thread: free it at exit */
        pthread_once(&scratch_once, scratch_key_init);
        if (scratch_n < EVS_MAX_SCRATCH)
            scratch_reg[scratch_n++] = s;
        pthread_setspecific(scratch_key, scratch_reg);
    }
    return s->buf;
}

uint32_t evs__crc32c(const void *buf, size_t len)
{
    /* crc32_iscsi takes an int length; records are far below 2 GiB, but
     * feed it in chunks anyway so no caller has to care. */
    const unsigned char *p = buf;
    uint32_t crc = 0xFFFFFFFFu;
    while (len > 0) {
        int chunk = len > (1u << 30) ? (1 << 30) : (int)len;
        crc = crc32_iscsi((unsigned char *)p, chunk, crc);
        p += chunk;
        len -= (size_t)chunk;
    }
    return crc ^ 0xFFFFFFFFu;
}

int64_t evs__now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

uint64_t evs__mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int evs__utf8_valid(const char *buf, size_t len)
{
    const unsigned char *s = (const unsigned char *)buf;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t n;
        uint32_t cp;
        if (c == 0)
            return 0;
        if (c < 0x80) { i++; continue; }
        if ((c & 0xE0) == 0xC0) { n = 1; cp = c & 0x1F; }
        else if ((c & 0xF0) == 0xE0) { n = 2; cp = c & 0x0F; }
        else if ((c & 0xF8) == 0xF0) { n = 3; cp = c & 0x07; }
        else return 0;
        if (i + n >= len)
            return 0; /* truncated sequence */
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        /* overlong forms, surrogates and values past U+10FFFF */
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
            (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += n + 1;
    }
    return 1;
}

int evs__fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    int e = fsync(fd) != 0 ? errno : 0;
    close(fd);
    return e;
}

int evs__fsync_parent(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n >= sizeof(buf))
        return ENAMETOOLONG;
    memcpy(buf, path, n + 1);
    while (n > 1 && buf[n - 1] == '/')
        buf[--n] = 0;
    char *slash = strrchr(buf, '/');
    if (!slash)
        return evs__fsync_dir(".");
    if (slash == buf)
        slash[1] = 0;
    else
        *slash = 0;
    return evs__fsync_dir(buf);
}
