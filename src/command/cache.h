/*
 * cache.h -- the executor's state cache: the folded state of a stream,
 * kept between commands so the next read fetches only what came after it.
 *
 * Keyed by (fold, tenant, stream), each entry holding one state at one
 * version. Kept apart from the executor because it is the one structure
 * the executor's threads share (the executor's own context is per thread):
 * its locking, its eviction and the lifetime of its copies are all here.
 * It knows a fold only through evs_fold's state_size, copy and release.
 *
 * A cached state is a starting point, never an answer (docs/COMMANDS.md,
 * "The state cache"): the executor always reads from the cached version
 * on, so what this cache holds can be old but never wrong.
 */
#ifndef EVS_COMMAND_CACHE_H
#define EVS_COMMAND_CACHE_H

#include "evstore_command.h"
#include "util/util.h"

#include <stddef.h>
#include <stdint.h>

typedef struct evs__cache evs__cache;

/*
 * The key's hash, computed once per stream of a command by the caller and
 * passed to every call below for that key. Inline: the executor computes
 * it for each slot it adds. FNV-1a over the tenant, a separator and the
 * stream, seeded with the fold's address, then a final mix so that the top
 * bits (the shard) are good too.
 */
static inline uint64_t evs__cache_hash(const evs_fold *fold, const char *tenant,
                                       size_t tlen, const char *stream, size_t slen)
{
    uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)(uintptr_t)fold;
    for (size_t i = 0; i < tlen; i++)
        h = (h ^ (uint8_t)tenant[i]) * 0x100000001b3ull;
    h = (h ^ 0xff) * 0x100000001b3ull;
    for (size_t i = 0; i < slen; i++)
        h = (h ^ (uint8_t)stream[i]) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

/* A cache of at most `entries` states (>= 1) into *out. Returns 0 or
 * EVS_ENOMEM (with a detail message). */
EVS_MUST_USE int evs__cache_new(evs__cache **out, size_t entries);

/* Release every cached state and the cache. NULL-safe. */
void evs__cache_free(evs__cache *c);

/*
 * Copy the cached state of the key into dst (uninitialized, state_size
 * bytes; untouched for a key without a fold) and its version into
 * *version. Returns 1 (hit), 0 (miss), or the copy callback's error (dst
 * is then uninitialized). Thread-safe; the copy is made under the shard's
 * lock, so fold->copy must not call the executor.
 */
EVS_MUST_USE int evs__cache_get(evs__cache *c, uint64_t hash, const evs_fold *fold,
                                const char *tenant, size_t tlen, const char *stream,
                                size_t slen, void *dst, int64_t *version);

/*
 * Keep a copy of state at version, unless the cache has this version or a
 * newer one. Best effort, so nothing to return: out of memory or a failed
 * copy only leaves the key uncached. Thread-safe.
 */
void evs__cache_put(evs__cache *c, uint64_t hash, const evs_fold *fold, const char *tenant,
                    size_t tlen, const char *stream, size_t slen, const void *state,
                    int64_t version);

/* Add the entries held now and the evictions so far to *entries and
 * *evictions (for evs_executor_stats_get). */
void evs__cache_stats(evs__cache *c, uint64_t *entries, uint64_t *evictions);

#endif
