/*
 * util.h -- small helpers that depend on nothing else in evstore:
 * CRC32C, growable arrays and per-thread scratch buffers, UUID parsing,
 * clocks, directory fsync, little/big-endian codecs, UTF-8 check; and
 * EVS_MUST_USE for internal functions whose result must not be dropped.
 */
#ifndef EVS_UTIL_H
#define EVS_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * EVS_MUST_USE marks an internal function whose result must be looked at:
 * an error code, or a pointer that is NULL on failure. GCC warns about a
 * call that drops it, even through a (void) cast; where dropping it is
 * right (best-effort cleanup on a path that already failed), the call
 * site says why and writes EVS_IGNORE(call).
 */
#define EVS_MUST_USE __attribute__((warn_unused_result))
#define EVS_IGNORE(expr) ((void)!(expr))

/* CRC32C (Castagnoli, as in iSCSI), computed by ISA-L's crc32_iscsi. */
uint32_t evs__crc32c(const void *buf, size_t len);

/*
 * Make room for `need` elements of `size` bytes in the array *bufp (a
 * pointer to the array pointer) whose capacity is *cap elements, doubling.
 * Returns 0, or -1 when out of memory (the array is then unchanged).
 */
EVS_MUST_USE int evs__grow(void *bufp, size_t *cap, size_t need, size_t size);

/*
 * A per-thread scratch buffer, reused across calls so hot paths do not
 * allocate per call; freed when the thread exits. Declare it
 * `static _Thread_local evs__scratch x;`. evs__scratch_get returns the
 * buffer with room for `need` bytes, or NULL when out of memory.
 */
typedef struct evs__scratch {
    void *buf;
    size_t cap;
} evs__scratch;
EVS_MUST_USE void *evs__scratch_get(evs__scratch *s, size_t need);

/* Parse the 36-character text form of a UUID: 0, or -1 if malformed. */
struct evs_uuid;
EVS_MUST_USE int evs__uuid_parse(struct evs_uuid *out, const char *text);

/* Wall clock, µs since the Unix epoch. */
int64_t evs__now_us(void);
/* fsync the directory at path (its entries: files created, renamed or
 * deleted in it become durable). Returns 0 or an errno value. */
EVS_MUST_USE int evs__fsync_dir(const char *path);
/* fsync the directory that holds path. Returns 0 or an errno value. */
EVS_MUST_USE int evs__fsync_parent(const char *path);
/* Monotonic clock, ns. */
uint64_t evs__mono_ns(void);

/* 1 if buf[0..len) is well-formed UTF-8 with no NUL byte. */
int evs__utf8_valid(const char *buf, size_t len);

/* Fixed-width codecs. Log records are little-endian; index keys are
 * big-endian so that LMDB's byte order is numeric order. */
static inline void evs__put_le16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static inline void evs__put_le32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void evs__put_le64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static inline uint16_t evs__get_le16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t evs__get_le32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t evs__get_le64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static inline void evs__put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);  p[3] = (uint8_t)v;
}
static inline void evs__put_be64(uint8_t *p, uint64_t v)
{
    evs__put_be32(p, (uint32_t)(v >> 32));
    evs__put_be32(p + 4, (uint32_t)v);
}
static inline uint32_t evs__get_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}
static inline uint64_t evs__get_be64(const uint8_t *p)
{
    return ((uint64_t)evs__get_be32(p) << 32) | evs__get_be32(p + 4);
}

#ifdef __cplusplus
}
#endif
#endif
