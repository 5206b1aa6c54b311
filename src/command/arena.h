/*
 * arena.h -- the bump allocator behind a command's copies: the events a
 * handler emits, the names of discovered streams, the append condition's
 * tags.
 *
 * All of an attempt's copies die together when the next attempt starts or
 * the command ends, so they need no individual free: an arena hands out
 * 16-byte-aligned pieces of a few blocks, is reset (not freed) per
 * attempt, and keeps its blocks for the next command of the same thread.
 * It is a value inside the executor's per-thread context, so its layout is
 * here; the small, frequent calls are inline, the block management is in
 * arena.c.
 */
#ifndef EVS_COMMAND_ARENA_H
#define EVS_COMMAND_ARENA_H

#include "util/util.h"

#include <stddef.h>
#include <string.h>

typedef struct evs__ablock {
    struct evs__ablock *next;
    size_t cap, used;      /* bytes after the header */
    size_t pad_;           /* keeps the data after the header 16-byte aligned */
} evs__ablock;

typedef struct evs__arena {
    evs__ablock *head, *cur;   /* both NULL for an empty arena */
} evs__arena;

/* n bytes (rounded up to 16), valid until the next reset or free; NULL
 * when out of memory. */
EVS_MUST_USE void *evs__arena_alloc(evs__arena *a, size_t n);

/* A NUL-terminated copy of s[0..len); NULL when out of memory. */
static inline EVS_MUST_USE char *evs__arena_strdup(evs__arena *a, const char *s, size_t len)
{
    char *p = evs__arena_alloc(a, len + 1);
    if (p) {
        memcpy(p, s, len);
        p[len] = 0;
    }
    return p;
}

/* Forget every piece handed out; keep the blocks. */
static inline void evs__arena_reset(evs__arena *a)
{
    a->cur = a->head;
    if (a->cur)
        a->cur->used = 0;
}

/* Between commands: free every block but the first, and the first too if
 * it is larger than max_keep bytes (so one big command's memory does not
 * stay with its thread). */
void evs__arena_trim(evs__arena *a, size_t max_keep);

/* Free every block; the arena is empty and usable again. */
void evs__arena_free(evs__arena *a);

#endif
