/*
 * log.c -- segment files and the record codec. Formats: format.h.
 *
 * Segments are created whole (header + zeros to their full size, synced,
 * then renamed into place) so that later appends overwrite zeros in place:
 * fdatasync then has only data blocks to flush, never file size or
 * allocation metadata (measured: 0.089 ms per sync, against 0.158 ms into
 * fallocate's unwritten extents; docs/PERFORMANCE.md).
 */
#include "embedded/embedded.h"
#include "util/util.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- segments ---------------------------------------------------------- */

static EVS_MUST_USE int map_segment(evs__emb *s, uint32_t no, int fd, const char *path);
static void seg_path(char *buf, size_t n, const evs__emb *s, uint32_t no,
                     const char *suffix);

/*
 * A read-only open sees segments that a writer in another process created
 * after it opened: map them when the index first points into them.
 */
static const uint8_t *map_later_segments(evs__emb *s, uint32_t seg)
{
    char path[4096];
    const uint8_t *m = NULL;
    pthread_mutex_lock(&s->map_lock);
    for (uint32_t no = atomic_load(&s->nsegs) + 1; no <= seg && no <= EVS_MAX_SEGMENTS; no++) {
        seg_path(path, sizeof(path), s, no, "");
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            break;
        uint8_t h[EVS_SEG_HEADER_SIZE];
        int ok = pread(fd, h, sizeof(h), 0) == (ssize_t)sizeof(h) &&
                 memcmp(h, EVS_SEG_MAGIC, 8) == 0 &&
                 evs__get_le32(h + 60) == evs__crc32c(h, 60) &&
                 evs__get_le64(h + 24) == s->seg_size;
        if (ok) {
            s->segs[no - 1].first_position = evs__get_le64(h + 32);
            ok = map_segment(s, no, fd, path) == 0;
        }
        close(fd);
        if (!ok)
            break;
        atomic_store_explicit(&s->nsegs, no, memory_order_release);
    }
    if (seg <= atomic_load(&s->nsegs))
        m = atomic_load_explicit(&s->segs[seg - 1].map, memory_order_acquire);
    pthread_mutex_unlock(&s->map_lock);
    return m;
}

const uint8_t *evs__seg_map(evs__emb *s, uint32_t seg)
{
    if (seg == 0)
        return NULL;
    if (seg > atomic_load_explicit(&s->nsegs, memory_order_acquire))
        return s->readonly ? map_later_segments(s, seg) : NULL;
    return atomic_load_explicit(&s->segs[seg - 1].map, memory_order_acquire);
}

static void seg_path(char *buf, size_t n, const evs__emb *s, uint32_t no,
                     const char *suffix)
{
    snprintf(buf, n, "%s/log/%016" PRIx32 ".evslog%s", s->dir, no, suffix);
}

static EVS_MUST_USE int io_err(int e, const char *what, const char *path)
{
    return evs__err(e == ENOSPC ? EVS_ENOSPC : EVS_EIO, "%s %s: %s", what, path,
                    strerror(e));
}

static void header_encode(uint8_t *h, uint32_t no, uint32_t size, uint64_t first)
{
    memset(h, 0, EVS_SEG_HEADER_SIZE);
    memcpy(h, EVS_SEG_MAGIC, 8);
    evs__put_le32(h + 8, EVS_LOG_FORMAT);
    evs__put_le32(h + 12, EVS_SEG_HEADER_SIZE);
    evs__put_le64(h + 16, no);
    evs__put_le64(h + 24, size);
    evs__put_le64(h + 32, first);
    evs__put_le32(h + 60, evs__crc32c(h, 60));
}

static EVS_MUST_USE int map_segment(evs__emb *s, uint32_t no, int fd, const char *path)
{
    void *m = mmap(NULL, s->seg_size, PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
        return io_err(errno, "mmap", path);
    atomic_store_explicit(&s->segs[no - 1].map, (uint8_t *)m, memory_order_release);
    return 0;
}

/*
 * Fill a new segment file with zeros to its full size and sync it. The
 * zeros go to disk 256 KiB at a time (sync_file_range): one fdatasync of
 * 64 MiB of dirty pages held the appenders' log syncs up for 70-90 ms in
 * the engine benchmark; small steps let them through in between.
 */
static EVS_MUST_USE int fill_zeros(evs__emb *s, int fd, const char *path, int paced)
{
    static const uint8_t zeros[1u << 16];
    const size_t step = 256u << 10;
    for (size_t off = 0; off < s->seg_size; off += sizeof(zeros)) {
        size_t n = s->seg_size - off < sizeof(zeros) ? s->seg_size - off : sizeof(zeros);
        ssize_t w = pwrite(fd, zeros, n, (off_t)off);
        if (w != (ssize_t)n)
            return io_err(w < 0 ? errno : ENOSPC, "preallocate", path);
        if ((off + n) % step == 0 &&
            sync_file_range(fd, (off64_t)(off + n - step), (off64_t)step,
                            SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                SYNC_FILE_RANGE_WAIT_AFTER) != 0)
            return io_err(errno, "sync_file_range", path);
        /* Ahead of need, leave the disk to the log between steps; once the
         * writer waits for this segment, go flat out. */
        if (paced && (off + n) % step == 0 && !atomic_load(&s->prep_urgent)) {
            struct timespec ts = {0, 500 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    if (fdatasync(fd) != 0)
        return io_err(errno, "fdatasync", path);
    return 0;
}

/* Test hook: the preallocator sleeps this long before taking each
 * request, so that the writer reaches the rollover first
 * (tests/test_durability.c). */
static unsigned prealloc_delay_ms(void)
{
    const char *v = getenv("EVS_DEBUG_PREALLOC_DELAY_MS");
    return v ? (unsigned)strtoul(v, NULL, 10) : 0;
}

/*
 * The preallocator thread zero-fills the next segment (as NNN.evslog.tmp)
 * while the current one is still filling, so that rolling over costs a
 * header write and a rename instead of writing 64 MiB of zeros while every
 * appender waits (measured: 150 ms stalls when the writer zero-filled).
 *
 * Exactly one party owns a segment file. The preallocator owns segment
 * prep_no from the moment it sets prep_busy until it publishes prep_fd; the
 * writer owns it once it has taken prep_fd, or once it has withdrawn the
 * request (take_prepared sets prep_no to the segment without prep_busy, so
 * the preallocator never starts on it). Without the withdrawal, a request
 * the preallocator had not yet picked up when the writer made the segment
 * itself would later be opened with O_TRUNC and zero-filled while the
 * writer wrote records into it.
 */
static void *prealloc_main(void *arg)
{
    evs__emb *s = arg;
    char tmp[4096];
    unsigned delay_ms = prealloc_delay_ms();
    uint32_t delayed = 0; /* the request already delayed once */
    pthread_mutex_lock(&s->prep_lock);
    for (;;) {
        while (!s->prep_stop && (s->prep_want == 0 || s->prep_want == s->prep_no))
            pthread_cond_wait(&s->prep_cond, &s->prep_lock);
        if (s->prep_stop)
            break;
        uint32_t no = s->prep_want;
        if (delay_ms && delayed != no) {
            delayed = no;
            pthread_mutex_unlock(&s->prep_lock);
            struct timespec ts = {delay_ms / 1000, (long)(delay_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
            pthread_mutex_lock(&s->prep_lock);
            continue; /* the writer may have withdrawn it meanwhile */
        }
        /* requests only move forward, and a segment the writer withdrew
         * (prep_no) is never claimed: one owner per segment file */
        assert(no > s->prep_no);
        s->prep_no = no;
        s->prep_busy = 1;
        pthread_mutex_unlock(&s->prep_lock);

        int fd = -1, rc;
        seg_path(tmp, sizeof(tmp), s, no, ".tmp");
        fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        rc = fd < 0 ? io_err(errno, "create", tmp) : fill_zeros(s, fd, tmp, 1);
        if (rc < 0 && fd >= 0) {
            close(fd);
            unlink(tmp);
            fd = -1;
        }

        pthread_mutex_lock(&s->prep_lock);
        /* the writer waits while prep_busy, so it withdrew nothing; and it
         * took or dropped the last made file before asking for this one */
        assert(s->prep_no == no && s->prep_fd < 0);
        s->prep_fd = fd;
        s->prep_busy = 0;
        pthread_cond_broadcast(&s->prep_cond);
    }
    pthread_mutex_unlock(&s->prep_lock);
    return NULL;
}

int evs__prealloc_start(evs__emb *s)
{
    s->prep_fd = -1;
    if (pthread_create(&s->prep_thread, NULL, prealloc_main, s) != 0)
        return evs__err(EVS_ENOMEM, "cannot start the segment preallocator thread");
    s->prep_started = 1;
    return 0;
}

/* Close and delete a prepared file nobody will use (lock held or the
 * thread stopped). */
static void drop_prepared(evs__emb *s)
{
    char tmp[4096];
    if (s->prep_fd < 0)
        return;
    close(s->prep_fd);
    seg_path(tmp, sizeof(tmp), s, s->prep_no, ".tmp");
    unlink(tmp);
    s->prep_fd = -1;
}

void evs__prealloc_stop(evs__emb *s)
{
    if (!s->prep_started)
        return;
    pthread_mutex_lock(&s->prep_lock);
    s->prep_stop = 1;
    pthread_cond_broadcast(&s->prep_cond);
    pthread_mutex_unlock(&s->prep_lock);
    pthread_join(s->prep_thread, NULL);
    s->prep_started = 0;
    drop_prepared(s);
}

void evs__prealloc_request(evs__emb *s, uint32_t no)
{
    if (!s->prep_started)
        return;
    pthread_mutex_lock(&s->prep_lock);
    if (s->prep_want < no) {
        s->prep_want = no;
        pthread_cond_broadcast(&s->prep_cond);
    }
    pthread_mutex_unlock(&s->prep_lock);
}

/* The prepared file for segment no, waiting for it if it is being made;
 * -1 if there is none, and then the caller owns the making of segment no:
 * the request is withdrawn so that the preallocator never touches it. */
static EVS_MUST_USE int take_prepared(evs__emb *s, uint32_t no)
{
    int fd = -1;
    if (!s->prep_started)
        return -1;
    pthread_mutex_lock(&s->prep_lock);
    atomic_store(&s->prep_urgent, 1);
    while (s->prep_busy)
        pthread_cond_wait(&s->prep_cond, &s->prep_lock);
    atomic_store(&s->prep_urgent, 0);
    if (s->prep_no == no && s->prep_fd >= 0) {
        fd = s->prep_fd;
        s->prep_fd = -1;
    } else {
        /* asked for at most the segment after the writer's, which is no */
        assert(s->prep_no <= no);
        drop_prepared(s); /* made for another segment: never used */
        s->prep_no = no;
        if (s->prep_want < no)
            s->prep_want = no;
    }
    pthread_mutex_unlock(&s->prep_lock);
    return fd;
}

/*
 * Create segment `no` (the next one) and make it the writer's current
 * segment. The file appears under its final name only once it is complete
 * and synced, so recovery never meets a half-made segment.
 */
int evs__seg_create(evs__emb *s, uint32_t no, uint64_t first_position, int *named)
{
    char tmp[4096], path[4096];
    uint8_t h[EVS_SEG_HEADER_SIZE];
    int fd, rc = 0;
    /* segments are numbered from 1 with no gap: only the one after the
     * last is made, and only by the process that writes */
    assert(!s->readonly && no == atomic_load(&s->nsegs) + 1);
    if (no > EVS_MAX_SEGMENTS)
        return evs__err(EVS_ENOSPC, "the log has reached %u segments; copy it to "
                        "a store created with a larger segment_size (evs "
                        "--segment-size, EVS_SEGMENT_SIZE)", EVS_MAX_SEGMENTS);
    seg_path(tmp, sizeof(tmp), s, no, ".tmp");
    seg_path(path, sizeof(path), s, no, "");
    fd = take_prepared(s, no);
    if (fd < 0) {
        fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
            return io_err(errno, "create", tmp);
        if ((rc = fill_zeros(s, fd, tmp, 0)) < 0)
            goto out;
    }
    header_encode(h, no, s->seg_size, first_position);
    if (pwrite(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h)) {
        rc = io_err(errno, "write header of", tmp);
        goto out;
    }
    if (fdatasync(fd) != 0) {
        rc = io_err(errno, "fdatasync", tmp);
        goto out;
    }
    if (rename(tmp, path) != 0) {
        rc = io_err(errno, "rename", tmp);
        goto out;
    }
    /* From here on the segment has its final name: a failure leaves it
     * behind, empty, and whether its name is durable is unknown. The
     * caller must not go on writing the previous segment (recovery sets
     * such an empty last segment aside, recovery.c). */
    if (named)
        *named = 1;
    if (fsync(s->dir_fd_log) != 0) {
        rc = io_err(errno, "fsync directory of", path);
        goto out;
    }
    if ((rc = map_segment(s, no, fd, path)) < 0)
        goto out;
    s->segs[no - 1].first_position = first_position;
    atomic_store_explicit(&s->nsegs, no, memory_order_release);
    if (s->wfd >= 0)
        close(s->wfd);
    s->wfd = fd;
    fd = -1;
    s->wseg = no;
    s->woff = EVS_SEG_HEADER_SIZE;
out:
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    }
    return rc;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/*
 * Find, check and map every segment. Segments must be numbered 1..N with
 * no gap, all of the same size, with valid headers.
 */
int evs__segs_open(evs__emb *s, int readonly)
{
    char path[4096];
    uint32_t *nos = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    snprintf(path, sizeof(path), "%s/log", s->dir);
    DIR *d = opendir(path);
    if (!d)
        return io_err(errno, "open directory", path);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        size_t len = strlen(name);
        if (len == 16 + 11 && strcmp(name + 16, ".evslog.tmp") == 0) {
            /* a segment whose creation was interrupted: never used */
            if (!readonly) {
                snprintf(path, sizeof(path), "%s/log/%s", s->dir, name);
                unlink(path);
            }
            continue;
        }
        if (len != 16 + 7 || strcmp(name + 16, ".evslog") != 0)
            continue;
        char *end;
        unsigned long long v = strtoull(name, &end, 16);
        if (end != name + 16 || v == 0 || v > EVS_MAX_SEGMENTS)
            continue;
        if (evs__grow(&nos, &cap, n + 1, sizeof(*nos)) < 0) {
            rc = evs__err(EVS_ENOMEM, "out of memory listing segments");
            goto out;
        }
        nos[n++] = (uint32_t)v;
    }
    if (n > 1)
        qsort(nos, n, sizeof(*nos), cmp_u32);
    for (size_t i = 0; i < n; i++) {
        uint32_t no = nos[i];
        if (no != i + 1) {
            rc = evs__err(EVS_ECORRUPT, "log segment %zu is missing (found segment %u)",
                          i + 1, no);
            goto out;
        }
        seg_path(path, sizeof(path), s, no, "");
        int last = (i + 1 == n);
        int fd = open(path, (last && !readonly ? O_RDWR : O_RDONLY) | O_CLOEXEC);
        if (fd < 0) {
            rc = io_err(errno, "open", path);
            goto out;
        }
        uint8_t h[EVS_SEG_HEADER_SIZE];
        struct stat st;
        if (pread(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h) || fstat(fd, &st) != 0) {
            close(fd);
            rc = evs__err(EVS_ECORRUPT, "segment %s: cannot read its header", path);
            goto out;
        }
        if (memcmp(h, EVS_SEG_MAGIC, 8) != 0) {
            close(fd);
            rc = evs__err(EVS_ECORRUPT, "segment %s: bad magic, not an evstore log", path);
            goto out;
        }
        uint32_t fmt = evs__get_le32(h + 8);
        if (fmt != EVS_LOG_FORMAT) {
            close(fd);
            rc = evs__err(fmt > EVS_LOG_FORMAT ? EVS_EFORMAT : EVS_ECORRUPT,
                          "segment %s has log format %u; this evstore (%s) reads "
                          "format %u%s", path, fmt, EVS_VERSION_STRING,
                          EVS_LOG_FORMAT,
                          fmt > EVS_LOG_FORMAT ? ": upgrade evstore to open it" : "");
            goto out;
        }
        if (evs__get_le32(h + 60) != evs__crc32c(h, 60) ||
            evs__get_le64(h + 16) != no) {
            close(fd);
            rc = evs__err(EVS_ECORRUPT, "segment %s: header is damaged (CRC or number)",
                          path);
            goto out;
        }
        uint64_t size = evs__get_le64(h + 24);
        if (i == 0)
            s->seg_size = (uint32_t)size;
        if (size < (1u << 20) || size > (1u << 30)) {
            close(fd);
            rc = evs__err(EVS_ECORRUPT, "segment %s: its header gives a segment size of "
                          "%llu bytes, outside 1 MiB .. 1 GiB (a damaged header)", path,
                          (unsigned long long)size);
            goto out;
        }
        if (size != s->seg_size) {
            close(fd);
            rc = evs__err(EVS_ECORRUPT, "segment %s: its header gives a segment size of "
                          "%llu bytes, but the store's first segment gives %u: every "
                          "segment of a store has the same size (a segment of another "
                          "store?)", path, (unsigned long long)size, s->seg_size);
            goto out;
        }
        if ((uint64_t)st.st_size != size) {
            close(fd);
            rc = evs__err(EVS_ECORRUPT, "segment %s: the file is %lld bytes, but a segment "
                          "is %llu bytes (its header says so): the file was %s; restore it "
                          "from a backup (evs verify lists what is readable)", path,
                          (long long)st.st_size, (unsigned long long)size,
                          (uint64_t)st.st_size < size ? "cut short" : "extended");
            goto out;
        }
        s->segs[no - 1].first_position = evs__get_le64(h + 32);
        rc = map_segment(s, no, fd, path);
        if (last && !readonly && rc == 0) {
            s->wfd = fd;
            s->wseg = no;
        } else {
            close(fd);
        }
        if (rc < 0)
            goto out;
        atomic_store_explicit(&s->nsegs, no, memory_order_release);
    }
out:
    closedir(d);
    free(nos);
    return rc;
}

/* ---- records ----------------------------------------------------------- */

size_t evs__rec_size(size_t tenant_len, size_t stream_len, const evs_event_data *e)
{
    size_t n = EVS_REC_FIXED + tenant_len + 1 + stream_len + 1 + strlen(e->type) + 1 +
               e->metadata_len + 1 + e->data_len + 1;
    for (size_t t = 0; t < e->ntags; t++)
        n += strlen(e->tags[t]) + 1;
    return n;
}

void evs__rec_encode(uint8_t *p, uint32_t len, const char *tenant,
                     size_t tenant_len, const char *stream, size_t stream_len,
                     const evs_event_data *e, const evs_uuid *id)
{
    size_t type_len = strlen(e->type);
    memset(p, 0, EVS_REC_FIXED);
    evs__put_le32(p + EVS_REC_OFF_MAGIC, EVS_REC_MAGIC);
    evs__put_le32(p + EVS_REC_OFF_LEN, len);
    evs__put_le16(p + EVS_REC_OFF_FLAGS, e->recorded_at ? 0 : EVS_REC_FLAG_STAMP_TIME);
    evs__put_le16(p + EVS_REC_OFF_TENANT_LEN, (uint16_t)tenant_len);
    evs__put_le64(p + EVS_REC_OFF_RECORDED_AT, (uint64_t)e->recorded_at);
    memcpy(p + EVS_REC_OFF_ID, id->bytes, 16);
    memcpy(p + EVS_REC_OFF_CORRELATION, e->correlation_id.bytes, 16);
    memcpy(p + EVS_REC_OFF_CAUSATION, e->causation_id.bytes, 16);
    evs__put_le16(p + EVS_REC_OFF_STREAM_LEN, (uint16_t)stream_len);
    evs__put_le16(p + EVS_REC_OFF_TYPE_LEN, (uint16_t)type_len);
    evs__put_le16(p + EVS_REC_OFF_NTAGS, (uint16_t)e->ntags);
    p[EVS_REC_OFF_CONTENT] = (uint8_t)e->content_type;
    evs__put_le32(p + EVS_REC_OFF_META_LEN, (uint32_t)e->metadata_len);
    evs__put_le32(p + EVS_REC_OFF_DATA_LEN, (uint32_t)e->data_len);
    uint8_t *v = p + EVS_REC_OFF_VAR;
    memcpy(v, tenant, tenant_len); v += tenant_len; *v++ = 0;
    memcpy(v, stream, stream_len); v += stream_len; *v++ = 0;
    memcpy(v, e->type, type_len); v += type_len; *v++ = 0;
    uint8_t *tags_start = v;
    for (size_t t = 0; t < e->ntags; t++) {
        size_t tl = strlen(e->tags[t]);
        memcpy(v, e->tags[t], tl); v += tl; *v++ = 0;
    }
    evs__put_le32(p + EVS_REC_OFF_TAGS_LEN, (uint32_t)(v - tags_start));
    if (e->metadata_len)
        memcpy(v, e->metadata, e->metadata_len);
    v += e->metadata_len; *v++ = 0;
    if (e->data_len)
        memcpy(v, e->data, e->data_len);
    v += e->data_len; *v++ = 0;
    /* len came from evs__rec_size of this event: the record fills it
     * exactly (short: stale bytes inside it; long: the next one overrun) */
    assert(len >= EVS_REC_FIXED && (size_t)(v - p) == len);
    /* padding to 8 bytes is zero so the log holds no stale bytes */
    memset(v, 0, evs__pad8(len) - len);
}

int evs__rec_check(const uint8_t *p, size_t avail, uint32_t *len_out)
{
    if (avail < 8)
        return EVS_REC_ZERO;
    uint32_t magic = evs__get_le32(p);
    if (magic != EVS_REC_MAGIC) {
        if (magic == 0 && evs__get_le32(p + 4) == 0)
            return EVS_REC_ZERO;
        return EVS_REC_BAD_MAGIC;
    }
    if (avail < EVS_REC_FIXED)
        return EVS_REC_BAD_LEN;
    uint32_t len = evs__get_le32(p + EVS_REC_OFF_LEN);
    if (len < EVS_REC_FIXED || len > avail)
        return EVS_REC_BAD_LEN;
    if (evs__get_le32(p + EVS_REC_OFF_CRC) != evs__crc32c(p + 8, len - 8))
        return EVS_REC_BAD_CRC;
    uint64_t need = (uint64_t)EVS_REC_FIXED + evs__get_le16(p + EVS_REC_OFF_TENANT_LEN) + 1 +
                    evs__get_le16(p + EVS_REC_OFF_STREAM_LEN) + 1 +
                    evs__get_le16(p + EVS_REC_OFF_TYPE_LEN) + 1 +
                    evs__get_le32(p + EVS_REC_OFF_TAGS_LEN) +
                    evs__get_le32(p + EVS_REC_OFF_META_LEN) + 1 +
                    evs__get_le32(p + EVS_REC_OFF_DATA_LEN) + 1;
    if (need != len)
        return EVS_REC_BAD_LAYOUT;
    *len_out = len;
    return EVS_REC_OK;
}

const char *evs__rec_problem(int rc)
{
    switch (rc) {
    case EVS_REC_ZERO: return "zeros where a record should be";
    case EVS_REC_BAD_MAGIC: return "bad record magic";
    case EVS_REC_BAD_LEN: return "impossible record length";
    case EVS_REC_BAD_CRC: return "CRC32C mismatch";
    case EVS_REC_BAD_LAYOUT: return "field lengths do not add up";
    default: return "ok";
    }
}

int evs__rec_decode(const uint8_t *p, evs_event *ev, const char ***tags,
                    size_t *tags_cap)
{
    ev->position = evs__get_le64(p + EVS_REC_OFF_POSITION);
    ev->stream_version = (int64_t)evs__get_le64(p + EVS_REC_OFF_VERSION);
    ev->recorded_at = (int64_t)evs__get_le64(p + EVS_REC_OFF_RECORDED_AT);
    memcpy(ev->id.bytes, p + EVS_REC_OFF_ID, 16);
    memcpy(ev->correlation_id.bytes, p + EVS_REC_OFF_CORRELATION, 16);
    memcpy(ev->causation_id.bytes, p + EVS_REC_OFF_CAUSATION, 16);
    ev->content_type = (evs_content_type)p[EVS_REC_OFF_CONTENT];
    const char *v = (const char *)p + EVS_REC_OFF_VAR;
    ev->tenant = v;
    v += evs__get_le16(p + EVS_REC_OFF_TENANT_LEN) + 1;
    ev->stream = v;
    v += evs__get_le16(p + EVS_REC_OFF_STREAM_LEN) + 1;
    ev->type = v;
    v += evs__get_le16(p + EVS_REC_OFF_TYPE_LEN) + 1;
    size_t ntags = evs__get_le16(p + EVS_REC_OFF_NTAGS);
    if (ntags > *tags_cap) {
        const char **t = realloc((void *)*tags, ntags * sizeof(char *));
        if (!t)
            return evs__err(EVS_ENOMEM, "out of memory decoding tags");
        *tags = t;
        *tags_cap = ntags;
    }
    for (size_t i = 0; i < ntags; i++) {
        (*tags)[i] = v;
        v += strlen(v) + 1;
    }
    ev->tags = *tags;
    ev->ntags = ntags;
    ev->metadata_len = evs__get_le32(p + EVS_REC_OFF_META_LEN);
    ev->metadata = v;
    v += ev->metadata_len + 1;
    ev->data_len = evs__get_le32(p + EVS_REC_OFF_DATA_LEN);
    ev->data = v;
    return 0;
}

const uint8_t *evs__rec_at(evs__emb *s, uint64_t loc)
{
    uint32_t seg = evs__loc_seg(loc), off = evs__loc_off(loc);
    /* Records of the group being built are not on disk yet. */
    if (seg == s->wseg && s->gbuf_len > 0 && off >= s->woff &&
        off < s->woff + s->gbuf_len)
        return s->gbuf + (off - s->woff);
    const uint8_t *m = evs__seg_map(s, seg);
    if (!m || off >= s->seg_size)
        return NULL;
    return m + off;
}
