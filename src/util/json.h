/*
 * json.h -- JSON validation and minification for evstore, by simdjson
 * (a well-kept validating parser: ~0.3 µs for a 300-byte document here,
 * where jansson took 8 µs; docs/PERFORMANCE.md).
 */
#ifndef EVS_UTIL_JSON_H
#define EVS_UTIL_JSON_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * 0 if buf[0..len) is one valid JSON value (RFC 8259, UTF-8 checked,
 * surrounding whitespace allowed); -1 if not, with a reason in err; -2 when
 * out of memory. Thread-safe (one parser per thread).
 */
int evs__json_check(const void *buf, size_t len, char *err, size_t errlen);

/*
 * Copy buf without insignificant whitespace into out (room for len bytes);
 * *outlen gets the length. Numbers and strings are kept byte for byte.
 * Does not validate: call evs__json_check first. Returns 0 or -1.
 */
int evs__json_minify(const void *buf, size_t len, char *out, size_t *outlen);

#ifdef __cplusplus
}
#endif
#endif
