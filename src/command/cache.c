/*
 * cache.c -- the executor's state cache (cache.h says what it is for).
 *
 * Sharded so that 256 callers do not queue on one mutex: the shard is
 * chosen by the key's hash, each shard is a chained hash table with an LRU
 * list (most recent first) and a fixed share of the entries. An entry holds
 * the state of one (tenant, stream, fold) at one version; it is only ever
 * replaced by a newer version, so a slow command cannot push an older
 * state over a newer one.
 *
 *   shard = hash >> 60            bucket = hash & (nbuckets - 1)
 *
 *   entry block: [ centry | tenant NUL stream NUL | pad to 16 | state ]
 *
 * One allocation per entry: the key and the state live in the entry's own
 * block, the state on a 16-byte boundary.
 */
#include "command/cache.h"
#include "core/error.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_SHARDS 16

typedef struct centry {
    struct centry *hnext;       /* bucket chain */
    struct centry *prev, *next; /* LRU list */
    uint64_t hash;
    const evs_fold *fold;
    int64_t version;
    uint32_t tlen, slen;
    void *state;                /* NULL without a fold */
    char key[];                 /* tenant NUL stream NUL, then the state */
} centry;

typedef struct cshard {
    pthread_mutex_t mu;
    centry **buckets;
    size_t nbuckets; /* a power of two */
    size_t n, cap;
    centry lru;      /* sentinel: lru.next is the most recent */
    uint64_t evictions;
} cshard;

struct evs__cache {
    cshard shards[CACHE_SHARDS];
    unsigned nshards;
};

static void lru_unlink(centry *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
}

static void lru_push_front(cshard *sh, centry *e)
{
    e->prev = &sh->lru;
    e->next = sh->lru.next;
    sh->lru.next->prev = e;
    sh->lru.next = e;
}

static centry **cache_find(cshard *sh, uint64_t hash, const evs_fold *fold,
                           const char *tenant, size_t tlen, const char *stream,
                           size_t slen)
{
    centry **pp = &sh->buckets[hash & (sh->nbuckets - 1)];
    for (; *pp; pp = &(*pp)->hnext) {
        centry *e = *pp;
        if (e->hash == hash && e->fold == fold && e->tlen == tlen && e->slen == slen &&
            memcmp(e->key, tenant, tlen) == 0 && memcmp(e->key + tlen + 1, stream, slen) == 0)
            return pp;
    }
    return pp;
}

static void centry_free(centry *e)
{
    if (e->state && e->fold->release)
        e->fold->release(e->state);
    free(e);
}

/* fold->copy's result: 0 or its negative code. */
static EVS_MUST_USE int state_copy(const evs_fold *fold, void *dst, const void *src)
{
    if (fold->copy)
        return fold->copy(dst, src);
    memcpy(dst, src, fold->state_size);
    return 0;
}

void evs__cache_free(evs__cache *c)
{
    if (!c)
        return;
    for (unsigned i = 0; i < c->nshards; i++) {
        cshard *sh = &c->shards[i];
        for (centry *e = sh->lru.next, *next; e != &sh->lru; e = next) {
            next = e->next;
            centry_free(e);
        }
        free(sh->buckets);
        pthread_mutex_destroy(&sh->mu);
    }
    free(c);
}

int evs__cache_new(evs__cache **out, size_t entries)
{
    evs__cache *c = calloc(1, sizeof(*c));
    if (!c)
        return evs__err(EVS_ENOMEM, "out of memory creating the state cache");
    c->nshards = entries < CACHE_SHARDS ? 1 : CACHE_SHARDS;
    for (unsigned i = 0; i < c->nshards; i++) {
        cshard *sh = &c->shards[i];
        pthread_mutex_init(&sh->mu, NULL);
        sh->lru.next = sh->lru.prev = &sh->lru;
        sh->cap = entries / c->nshards + (i < entries % c->nshards);
        sh->nbuckets = 8;
        while (sh->nbuckets < sh->cap)
            sh->nbuckets *= 2;
        sh->buckets = calloc(sh->nbuckets, sizeof(*sh->buckets));
        if (!sh->buckets) {
            c->nshards = i + 1;
            evs__cache_free(c);
            return evs__err(EVS_ENOMEM, "out of memory creating the state cache");
        }
    }
    *out = c;
    return 0;
}

static cshard *cache_shard(evs__cache *c, uint64_t hash)
{
    return &c->shards[c->nshards == 1 ? 0 : hash >> 60];
}

int evs__cache_get(evs__cache *c, uint64_t hash, const evs_fold *fold, const char *tenant,
                   size_t tlen, const char *stream, size_t slen, void *dst,
                   int64_t *version)
{
    cshard *sh = cache_shard(c, hash);
    int rc = 0;
    pthread_mutex_lock(&sh->mu);
    centry *e = *cache_find(sh, hash, fold, tenant, tlen, stream, slen);
    if (e) {
        lru_unlink(e);
        lru_push_front(sh, e);
        rc = e->state ? state_copy(fold, dst, e->state) : 0;
        if (rc == 0) {
            *version = e->version;
            rc = 1;
        }
    }
    pthread_mutex_unlock(&sh->mu);
    return rc;
}

void evs__cache_put(evs__cache *c, uint64_t hash, const evs_fold *fold, const char *tenant,
                    size_t tlen, const char *stream, size_t slen, const void *state,
                    int64_t version)
{
    cshard *sh = cache_shard(c, hash);
    pthread_mutex_lock(&sh->mu);
    centry **pp = cache_find(sh, hash, fold, tenant, tlen, stream, slen);
    centry *e = *pp;
    if (e) {
        lru_unlink(e);
        if (e->version >= version) {
            lru_push_front(sh, e);
            goto out;
        }
        if (e->state) {
            if (fold->release)
                fold->release(e->state);
            if (state_copy(fold, e->state, state) != 0) {
                /* the entry's state is gone: drop the entry */
                *pp = e->hnext;
                sh->n--;
                free(e);
                goto out;
            }
        }
        e->version = version;
        lru_push_front(sh, e);
        goto out;
    }
    if (sh->cap == 0)
        goto out;
    if (sh->n >= sh->cap) {
        centry *old = sh->lru.prev;
        centry **op = cache_find(sh, old->hash, old->fold, old->key, old->tlen,
                                 old->key + old->tlen + 1, old->slen);
        *op = old->hnext;
        lru_unlink(old);
        centry_free(old);
        sh->n--;
        sh->evictions++;
        /* the bucket chain may have changed under pp */
        pp = cache_find(sh, hash, fold, tenant, tlen, stream, slen);
    }
    size_t koff = tlen + slen + 2;
    size_t soff = (koff + 15) & ~(size_t)15;
    size_t hdr = (sizeof(centry) + 15) & ~(size_t)15;
    e = malloc(hdr + soff + (fold ? fold->state_size : 0));
    if (!e)
        goto out;
    e->hash = hash;
    e->fold = fold;
    e->version = version;
    e->tlen = (uint32_t)tlen;
    e->slen = (uint32_t)slen;
    memcpy(e->key, tenant, tlen);
    e->key[tlen] = 0;
    memcpy(e->key + tlen + 1, stream, slen);
    e->key[tlen + 1 + slen] = 0;
    /* key[] starts at offsetof(centry, key); the state goes on a 16-byte
     * boundary of the block */
    e->state = fold ? (char *)e + hdr + soff : NULL;
    if (e->state && state_copy(fold, e->state, state) != 0) {
        free(e);
        goto out;
    }
    e->hnext = NULL;
    *pp = e;
    lru_push_front(sh, e);
    sh->n++;
out:
    pthread_mutex_unlock(&sh->mu);
}

void evs__cache_stats(evs__cache *c, uint64_t *entries, uint64_t *evictions)
{
    for (unsigned i = 0; i < c->nshards; i++) {
        cshard *sh = &c->shards[i];
        pthread_mutex_lock(&sh->mu);
        *entries += sh->n;
        *evictions += sh->evictions;
        pthread_mutex_unlock(&sh->mu);
    }
}
