/*
 * json.h -- JSON validation, minification and raw-span reading for
 * evstore, by simdjson (a well-kept validating parser: ~0.3 µs for a
 * 300-byte document here, where jansson took 8 µs; docs/PERFORMANCE.md).
 *
 * Every function here accepts exactly what evs__json_check accepts, so a
 * tool built on them agrees with the library about what is JSON.
 */
#ifndef EVS_UTIL_JSON_H
#define EVS_UTIL_JSON_H

#include <stddef.h>

#include "util/util.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * 0 if buf[0..len) is one valid JSON value (RFC 8259, UTF-8 checked,
 * surrounding whitespace allowed); -1 if not, with a reason in err; -2 when
 * out of memory. Thread-safe (one parser per thread).
 */
EVS_MUST_USE int evs__json_check(const void *buf, size_t len, char *err, size_t errlen);

/*
 * Copy buf without insignificant whitespace into out (room for len bytes);
 * *outlen gets the length. Numbers and strings are kept byte for byte.
 * Does not validate: call evs__json_check first. Returns 0 or -1.
 */
EVS_MUST_USE int evs__json_minify(const void *buf, size_t len, char *out, size_t *outlen);

/* *where when the place of an error is not known. */
#define EVS__JSON_NOWHERE ((size_t)-1)

/*
 * evs__json_check, saying where: on -1, *where gets the byte offset in buf
 * of the token at which the text stops being JSON (best effort: simdjson's
 * validating parser gives no place, so its on-demand parser walks the text
 * again to find one), or EVS__JSON_NOWHERE; err gets a short reason such as
 * "unterminated string". Thread-safe; keeps a per-thread copy of the
 * longest text seen, freed at thread exit.
 */
EVS_MUST_USE int evs__json_check_at(const void *buf, size_t len, size_t *where,
                                    char *err, size_t errlen);

/*
 * One member of an object, or one element of an array, as handed to an
 * evs__json_item_fn. raw is the value's text as it is in the caller's buf
 * (numbers keep their digits, nothing re-encoded), so it lives as long as
 * buf does. key and str are unescaped UTF-8, which may hold U+0000; they
 * live in the thread's parser and are valid only during the call.
 */
typedef struct evs__json_item {
    const char *key; /* member name; NULL for an array element */
    size_t key_len;
    const char *raw; /* the value's JSON text, without surrounding space */
    size_t raw_len;
    const char *str; /* a string value, unescaped; NULL for other types */
    size_t str_len;
} evs__json_item;

typedef void (*evs__json_item_fn)(void *ctx, const evs__json_item *item);

/*
 * Check buf[0..len) as evs__json_check_at does; then, when it is an object
 * (an array), call fn for each member (element) in order. Returns 0, -1
 * with *where and err as for evs__json_check_at ("expected a JSON object"
 * when the text is JSON of another type), or -2 when out of memory.
 * Duplicate names are handed out as they come.
 */
EVS_MUST_USE int evs__json_object_items(const void *buf, size_t len, evs__json_item_fn fn,
                                        void *ctx, size_t *where, char *err,
                                        size_t errlen);
EVS_MUST_USE int evs__json_array_items(const void *buf, size_t len, evs__json_item_fn fn,
                                       void *ctx, size_t *where, char *err,
                                       size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
