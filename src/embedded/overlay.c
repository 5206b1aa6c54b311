/* overlay.c -- the group commit's overlay table (overlay.h). */
#include "embedded/overlay.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

static uint64_t ov_hash(int kind, uint32_t tid, const void *key, size_t len)
{
    uint64_t h = XXH3_64bits_withSeed(key, len, ((uint64_t)kind << 32) | tid);
    return h ? h : 1;
}

void evs__ov_reset(evs__overlay *ov)
{
    ov->gen++;
    ov->count = 0;
    ov->nstreams = 0;
    ov->ntenants = 0;
    if (ov->gen == 0) { /* wrapped: old entries could look current */
        if (ov->t)
            memset(ov->t, 0, ov->cap * sizeof(*ov->t));
        ov->gen = 1;
    }
}

void evs__ov_free(evs__overlay *ov)
{
    free(ov->t);
    free(ov->streams);
    free(ov->tenants);
    memset(ov, 0, sizeof(*ov));
}

static int same(const evs__ov_entry *e, uint64_t h, int kind, uint32_t tid,
                const void *key, size_t len)
{
    return e->hash == h && e->kind == kind && e->tid == tid && e->key_len == len &&
           memcmp(e->key, key, len) == 0;
}

evs__ov_entry *evs__ov_find(evs__overlay *ov, int kind, uint32_t tid,
                            const void *key, size_t len)
{
    if (ov->count == 0)
        return NULL;
    uint64_t h = ov_hash(kind, tid, key, len);
    for (size_t i = h & (ov->cap - 1);; i = (i + 1) & (ov->cap - 1)) {
        evs__ov_entry *e = &ov->t[i];
        if (e->gen != ov->gen)
            return NULL;
        if (same(e, h, kind, tid, key, len))
            return e;
    }
}

static EVS_MUST_USE int ov_grow(evs__overlay *ov, size_t want)
{
    size_t cap = ov->cap ? ov->cap : 1024;
    while (cap < want * 2)
        cap *= 2;
    if (cap == ov->cap)
        return 0;
    evs__ov_entry *t = calloc(cap, sizeof(*t));
    if (!t)
        return -1;
    for (size_t i = 0; i < ov->cap; i++) {
        evs__ov_entry *e = &ov->t[i];
        if (e->gen != ov->gen)
            continue;
        size_t j = e->hash & (cap - 1);
        while (t[j].gen == ov->gen)
            j = (j + 1) & (cap - 1);
        t[j] = *e;
    }
    /* the stream and tenant lists point into the old table: re-point them */
    size_t ns = 0, nt = 0;
    for (size_t j = 0; j < cap; j++) {
        if (t[j].gen != ov->gen)
            continue;
        if (t[j].kind == OV_STREAM)
            ov->streams[ns++] = &t[j];
        else if (t[j].kind == OV_TENANT)
            ov->tenants[nt++] = &t[j];
    }
    free(ov->t);
    ov->t = t;
    ov->cap = cap;
    return 0;
}

int evs__ov_reserve(evs__overlay *ov, size_t n)
{
    if (ov->count + n > ov->cap / 2 && ov_grow(ov, ov->count + n) < 0)
        return -1;
    if (evs__grow(&ov->tenants, &ov->tenants_cap, ov->ntenants + n, sizeof(*ov->tenants)) < 0 ||
        evs__grow(&ov->streams, &ov->streams_cap, ov->nstreams + n, sizeof(*ov->streams)) < 0)
        return -1;
    return 0;
}

evs__ov_entry *evs__ov_add(evs__overlay *ov, int kind, uint32_t tid,
                           const void *key, size_t len)
{
    /* Only the room this entry needs, so that after evs__ov_reserve(n) any
     * n adds allocate nothing and cannot fail: the writer relies on it. */
    if ((ov->count + 1 > ov->cap / 2 && ov_grow(ov, ov->count + 1) < 0) ||
        (kind == OV_TENANT &&
         evs__grow(&ov->tenants, &ov->tenants_cap, ov->ntenants + 1, sizeof(*ov->tenants)) < 0) ||
        (kind == OV_STREAM &&
         evs__grow(&ov->streams, &ov->streams_cap, ov->nstreams + 1, sizeof(*ov->streams)) < 0))
        return NULL;
    uint64_t h = ov_hash(kind, tid, key, len);
    size_t i = h & (ov->cap - 1);
    while (ov->t[i].gen == ov->gen)
        i = (i + 1) & (ov->cap - 1);
    evs__ov_entry *e = &ov->t[i];
    memset(e, 0, sizeof(*e));
    e->hash = h;
    e->gen = ov->gen;
    e->kind = (uint8_t)kind;
    e->tid = tid;
    e->key = key;
    e->key_len = len;
    ov->count++;
    if (kind == OV_STREAM)
        ov->streams[ov->nstreams++] = e;
    else if (kind == OV_TENANT)
        ov->tenants[ov->ntenants++] = e;
    return e;
}
