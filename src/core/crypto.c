/*
 * crypto.c -- crypto-shredding (issue 17, docs/ERASURE.md): events whose
 * data (and optionally metadata) is encrypted under a per-subject key, and
 * evs_forget, which destroys the key so that those events read back
 * redacted everywhere. The cryptography is libsodium's
 * (XChaCha20-Poly1305-IETF, randombytes_buf for keys); nothing here is
 * home-made beyond the framing.
 *
 * An encrypted event is marked twice, so that every backend stores it
 * without knowing:
 *   - the tag "$subject:SUBJECT" (callers cannot write '$' tags, so it
 *     cannot be forged; it is indexed like any tag, so a subject's events
 *     can be found with a query);
 *   - its data is an envelope, content type EVS_CONTENT_BINARY; its
 *     metadata too with EVS_EVENT_ENCRYPT_METADATA.
 *
 * The envelope (docs/DESIGN.md, "Crypto-shredding"):
 *
 *   OFFSET SIZE  FIELD
 *   0      4     magic 00 45 56 53 ("\0EVS": no JSON starts with NUL)
 *   4      1     version, 1
 *   5      1     kind: 0 data, 1 metadata
 *   6      1     the plaintext's content type (EVS_CONTENT_JSON/BINARY)
 *   7      1     0
 *   8      24    nonce: the event id (16 bytes), the kind, 7 zeros
 *   32     n+16  XChaCha20-Poly1305 ciphertext of the n plaintext bytes
 *                and its 16-byte tag
 *
 * The additional data is the 8-byte header, the event id (16 bytes), the
 * tenant, a NUL and the subject: an envelope opens only in its own event
 * (ids are unique per store), in its own field, under its own subject.
 * The nonce is the event's id and the field, not random: the event id (16
 * bytes), the kind byte, 7 zero bytes. So an exact retry of an append
 * (same ids, same events) produces the same bytes and is recognised as a
 * retry by the backends (random nonces would make it EVS_EDUPLICATE). Two
 * envelopes under one key share a nonce only when they are of the same
 * event id and field; the store keeps at most one event per id (a
 * different event under a stored id is refused as EVS_EDUPLICATE before
 * anything is written, and keys are per store), so no two stored
 * ciphertexts ever share a nonce (a rejected attempt's ciphertext is
 * never stored; on PostgreSQL it reaches the server and is rolled back).
 * A keyed hash of the plaintext as the
 * nonce (SIV-style) would also survive a store that let an id be stored
 * twice, for a second pass over the data (BLAKE2b: ~0.8 us per 460 B
 * event here, 5 % of an append; docs/PERFORMANCE.md).
 *
 * Keys: 32 random bytes per (tenant, subject), in the backend's key store
 * (subject_key / subject_forget, core/backend.h), cached here per handle
 * for EVS__KEY_TTL_NS (a forget by another handle is seen within that
 * time; a forget on this handle evicts at once).
 */
#include "core/front.h"
#include "util/util.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ENV_HDR 8
#define ENV_NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES /* 24 */
#define ENV_TAG crypto_aead_xchacha20poly1305_ietf_ABYTES      /* 16 */
#define ENV_OVERHEAD (ENV_HDR + ENV_NONCE + ENV_TAG)           /* 48 */
#define ENV_VERSION 1
#define ENV_KIND_DATA 0
#define ENV_KIND_META 1
static const uint8_t env_magic[4] = {0x00, 'E', 'V', 'S'};

_Static_assert(crypto_aead_xchacha20poly1305_ietf_KEYBYTES == 32, "32-byte keys");

/* How long a cached key is trusted before the key store is asked again. */
#define EVS__KEY_TTL_NS 1000000000ull
/* Cache slots per handle (direct-mapped by the name's hash). */
#define CACHE_SLOTS 256
#define NAME_MAX_LEN (EVS_MAX_TENANT_LEN + 1 + EVS_MAX_STREAM_LEN)

typedef struct key_slot {
    uint64_t hash;
    uint64_t expires_ns;   /* 0: empty */
    uint16_t name_len;
    uint8_t forgotten;     /* cached "forgotten" (final: never expires) */
    uint8_t absent;        /* cached "no key" (until expires_ns) */
    uint8_t key[32];
    char name[NAME_MAX_LEN]; /* tenant NUL subject */
} key_slot;

struct evs__crypto {
    pthread_mutex_t lock;
    key_slot slots[CACHE_SLOTS];
};

/* ---- libsodium, the cache ----------------------------------------------------- */

static pthread_once_t sodium_once = PTHREAD_ONCE_INIT;
static int sodium_rc;
static void sodium_start(void)
{
    sodium_rc = sodium_init(); /* 0, or 1 when already initialised */
}

static EVS_MUST_USE int crypto_ready(void)
{
    pthread_once(&sodium_once, sodium_start);
    if (sodium_rc < 0)
        return evs__err(EVS_EBACKEND, "libsodium failed to initialise (sodium_init); "
                        "encrypted events cannot be read or written");
    return 0;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static struct evs__crypto *cache_of(evs_db *db)
{
    struct evs__crypto *c = atomic_load_explicit(&db->crypto, memory_order_acquire);
    if (c)
        return c;
    c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    pthread_mutex_init(&c->lock, NULL);
    struct evs__crypto *expected = NULL;
    if (!atomic_compare_exchange_strong(&db->crypto, &expected, c)) {
        pthread_mutex_destroy(&c->lock);
        free(c);
        return expected;
    }
    return c;
}

void evs__crypto_free(evs_db *db)
{
    struct evs__crypto *c = atomic_exchange(&db->crypto, NULL);
    if (!c)
        return;
    pthread_mutex_destroy(&c->lock);
    sodium_memzero(c, sizeof(*c));
    free(c);
}

/* "tenant\0subject" into name; its length */
static size_t make_name(char name[NAME_MAX_LEN], const char *tenant, const char *subject,
                        size_t subject_len)
{
    size_t tl = strlen(tenant);
    memcpy(name, tenant, tl);
    name[tl] = '\0';
    memcpy(name + tl + 1, subject, subject_len);
    return tl + 1 + subject_len;
}

static uint64_t hash_name(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

/* The key of (tenant, subject): 0; EVS_EDELETED (forgotten) or
 * EVS_ENOTFOUND (none, and not create), no message; or an error. create:
 * make one if there is none. */
static EVS_MUST_USE int get_key(uint8_t key[32], evs_db *db, const char *tenant,
                   const char *subject, size_t subject_len, int create)
{
    char name[NAME_MAX_LEN];
    size_t n = make_name(name, tenant, subject, subject_len);
    uint64_t h = hash_name(name, n);
    struct evs__crypto *c = cache_of(db);
    if (!c)
        return evs__err(EVS_ENOMEM, "out of memory for the key cache");
    key_slot *sl = &c->slots[h % CACHE_SLOTS];
    uint64_t now = now_ns();
    pthread_mutex_lock(&c->lock);
    if (sl->expires_ns && sl->hash == h && sl->name_len == n &&
        memcmp(sl->name, name, n) == 0 && (sl->forgotten || sl->expires_ns > now) &&
        !(sl->absent && create)) {
        int rc = sl->forgotten ? EVS_EDELETED : sl->absent ? EVS_ENOTFOUND : 0;
        if (rc == 0)
            memcpy(key, sl->key, 32);
        pthread_mutex_unlock(&c->lock);
        return rc;
    }
    pthread_mutex_unlock(&c->lock);

    /* the key store; subject_key wants NUL-terminated names */
    char subj[EVS_MAX_STREAM_LEN + 1];
    memcpy(subj, subject, subject_len);
    subj[subject_len] = '\0';
    uint8_t fresh[32];
    if (create)
        randombytes_buf(fresh, sizeof(fresh));
    int rc = db->ops->subject_key(key, db, tenant, subj, create ? fresh : NULL);
    sodium_memzero(fresh, sizeof(fresh));
    if (rc == EVS_EDELETED || rc == EVS_ENOTFOUND) {
        /* cached too: a read of many events of a forgotten subject asks
         * the key store once (a missing key again after the TTL) */
        pthread_mutex_lock(&c->lock);
        sodium_memzero(sl, sizeof(*sl));
        sl->hash = h;
        sl->name_len = (uint16_t)n;
        memcpy(sl->name, name, n);
        sl->forgotten = rc == EVS_EDELETED;
        sl->absent = rc == EVS_ENOTFOUND;
        sl->expires_ns = now + EVS__KEY_TTL_NS;
        pthread_mutex_unlock(&c->lock);
        return rc;
    }
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&c->lock);
    sl->hash = h;
    sl->name_len = (uint16_t)n;
    memcpy(sl->name, name, n);
    sl->forgotten = 0;
    sl->absent = 0;
    memcpy(sl->key, key, 32);
    sl->expires_ns = now + EVS__KEY_TTL_NS;
    pthread_mutex_unlock(&c->lock);
    return 0;
}

static void cache_evict(evs_db *db, const char *tenant, const char *subject)
{
    struct evs__crypto *c = atomic_load_explicit(&db->crypto, memory_order_acquire);
    if (!c)
        return;
    char name[NAME_MAX_LEN];
    size_t n = make_name(name, tenant, subject, strlen(subject));
    key_slot *sl = &c->slots[hash_name(name, n) % CACHE_SLOTS];
    pthread_mutex_lock(&c->lock);
    if (sl->name_len == n && memcmp(sl->name, name, n) == 0)
        sodium_memzero(sl, sizeof(*sl));
    pthread_mutex_unlock(&c->lock);
}

/* ---- envelopes ------------------------------------------------------------------ */

/* The additional data: header, id, tenant NUL subject; its length. */
static size_t make_ad(uint8_t *ad, const uint8_t hdr[ENV_HDR], const evs_uuid *id,
                      const char *tenant, const char *subject, size_t subject_len)
{
    memcpy(ad, hdr, ENV_HDR);
    memcpy(ad + ENV_HDR, id->bytes, 16);
    return ENV_HDR + 16 + make_name((char *)ad + ENV_HDR + 16, tenant, subject, subject_len);
}
#define AD_MAX (ENV_HDR + 16 + NAME_MAX_LEN)

/* Seal len bytes of plain into out (len + ENV_OVERHEAD bytes). */
static void seal(uint8_t *out, const void *plain, size_t len, int kind, int content_type,
                 const evs_uuid *id, const char *tenant, const char *subject,
                 size_t subject_len, const uint8_t key[32])
{
    uint8_t ad[AD_MAX];
    memcpy(out, env_magic, 4);
    out[4] = ENV_VERSION;
    out[5] = (uint8_t)kind;
    out[6] = (uint8_t)content_type;
    out[7] = 0;
    size_t adlen = make_ad(ad, out, id, tenant, subject, subject_len);
    memcpy(out + ENV_HDR, id->bytes, 16);
    memset(out + ENV_HDR + 16, 0, ENV_NONCE - 16);
    out[ENV_HDR + 16] = (uint8_t)kind;
    unsigned long long clen;
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + ENV_HDR + ENV_NONCE, &clen, plain, len,
                                               ad, adlen, NULL, out + ENV_HDR, key);
}

/* Is p (len bytes) an envelope of this kind? */
static int is_envelope(const void *p, size_t len, int kind)
{
    const uint8_t *b = p;
    return len >= ENV_OVERHEAD && memcmp(b, env_magic, 4) == 0 && b[4] == ENV_VERSION &&
           b[5] == kind;
}

/* Open an envelope into out (len - ENV_OVERHEAD bytes and a NUL): 0 or -1. */
static int open_env(uint8_t *out, const uint8_t *env, size_t len, const evs_uuid *id,
                    const char *tenant, const char *subject, size_t subject_len,
                    const uint8_t key[32])
{
    uint8_t ad[AD_MAX];
    size_t adlen = make_ad(ad, env, id, tenant, subject, subject_len);
    unsigned long long plen;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, &plen, NULL, env + ENV_HDR + ENV_NONCE,
                                                   len - ENV_HDR - ENV_NONCE, ad, adlen,
                                                   env + ENV_HDR, key) != 0)
        return -1;
    out[plen] = '\0';
    return 0;
}

/* ---- the append path ----------------------------------------------------------- */

int evs__crypto_check(const evs_event_data *e, const char *stream, size_t idx)
{
    if (e->flags & ~EVS_EVENT_ENCRYPT_METADATA)
        return evs__err(EVS_EINVAL, "stream %s, event %zu: unknown flags 0x%x (known: "
                        "EVS_EVENT_ENCRYPT_METADATA 0x%x)", stream, idx, e->flags,
                        EVS_EVENT_ENCRYPT_METADATA);
    if (!e->subject) {
        if (e->flags & EVS_EVENT_ENCRYPT_METADATA)
            return evs__err(EVS_EINVAL, "stream %s, event %zu: EVS_EVENT_ENCRYPT_METADATA "
                            "needs a subject (the key is the subject's); set subject",
                            stream, idx);
        return 0;
    }
    const char *why = evs__name_problem(e->subject, EVS_MAX_STREAM_LEN);
    if (why)
        return evs__err(EVS_EINVAL, "stream %s, event %zu: subject %s", stream, idx, why);
    if (e->ntags + 1 > EVS_MAX_TAGS)
        return evs__err(EVS_EINVAL, "stream %s, event %zu: an event with a subject has at "
                        "most %d tags of its own (the store adds \"%sSUBJECT\"), it has %zu",
                        stream, idx, EVS_MAX_TAGS - 1, EVS__SUBJECT_TAG_PREFIX, e->ntags);
    return 0;
}

int evs__crypto_seal(void **arena, const evs_stream_append **parts_out, evs_db *db,
                     const char *tenant, const evs_stream_append *parts, size_t nparts,
                     const evs_uuid *ids)
{
    int rc;
    size_t nev = 0, nsealed = 0, ntagptr = 0, bytes = 0;
    *arena = NULL;
    *parts_out = parts;
    for (size_t p = 0; p < nparts; p++)
        for (size_t i = 0; i < parts[p].nevents; i++) {
            const evs_event_data *e = &parts[p].events[i];
            nev++;
            if (!e->subject)
                continue;
            nsealed++;
            ntagptr += e->ntags + 1;
            bytes += sizeof(EVS__SUBJECT_TAG_PREFIX) + strlen(e->subject) + 8;
            bytes += e->data_len + ENV_OVERHEAD + 8;
            if (e->flags & EVS_EVENT_ENCRYPT_METADATA)
                bytes += e->metadata_len + ENV_OVERHEAD + 8;
        }
    if (nsealed == 0)
        return 0;
    if ((rc = crypto_ready()) < 0)
        return rc;
    /* one block: parts | events | tag pointers | tag text and envelopes */
    size_t sz = nparts * sizeof(evs_stream_append) + nev * sizeof(evs_event_data) +
                ntagptr * sizeof(char *) + bytes;
    uint8_t *blk = malloc(sz);
    if (!blk)
        return evs__err(EVS_ENOMEM, "append: out of memory encrypting %zu events", nsealed);
    evs_stream_append *np = (evs_stream_append *)blk;
    evs_event_data *ne = (evs_event_data *)(np + nparts);
    const char **tp = (const char **)(ne + nev);
    uint8_t *b = (uint8_t *)(tp + ntagptr);
    size_t k = 0;
    for (size_t p = 0; p < nparts; p++) {
        np[p] = parts[p];
        np[p].events = ne;
        for (size_t i = 0; i < parts[p].nevents; i++, k++, ne++) {
            const evs_event_data *e = &parts[p].events[i];
            *ne = *e;
            if (!e->subject)
                continue;
            size_t sl = strlen(e->subject);
            uint8_t key[32];
            rc = get_key(key, db, tenant, e->subject, sl, 1);
            if (rc == EVS_EDELETED || rc == EVS_ENOTFOUND) {
                rc = evs__err(EVS_EINVAL, "stream %s, event %zu: subject \"%s\" was "
                              "forgotten (evs_forget): nothing can be encrypted under it "
                              "any more; use another subject name",
                              parts[p].stream && parts[p].stream[0] ? parts[p].stream
                                                                    : "(none)",
                              i, e->subject);
                goto fail;
            }
            if (rc < 0)
                goto fail;
            /* the subject tag first, then the caller's */
            char *tag = (char *)b;
            memcpy(tag, EVS__SUBJECT_TAG_PREFIX, sizeof(EVS__SUBJECT_TAG_PREFIX) - 1);
            memcpy(tag + sizeof(EVS__SUBJECT_TAG_PREFIX) - 1, e->subject, sl + 1);
            b += (sizeof(EVS__SUBJECT_TAG_PREFIX) + sl + 7) & ~(size_t)7;
            tp[0] = tag;
            if (e->ntags)
                memcpy(tp + 1, e->tags, e->ntags * sizeof(char *));
            ne->tags = tp;
            ne->ntags = e->ntags + 1;
            tp += e->ntags + 1;
            seal(b, e->data, e->data_len, ENV_KIND_DATA, e->content_type, &ids[k], tenant,
                 e->subject, sl, key);
            ne->data = b;
            ne->data_len = e->data_len + ENV_OVERHEAD;
            ne->content_type = EVS_CONTENT_BINARY;
            b += (ne->data_len + 7) & ~(size_t)7;
            if (e->flags & EVS_EVENT_ENCRYPT_METADATA) {
                seal(b, e->metadata, e->metadata_len, ENV_KIND_META, 0, &ids[k], tenant,
                     e->subject, sl, key);
                ne->metadata = b;
                ne->metadata_len = e->metadata_len + ENV_OVERHEAD;
                b += (ne->metadata_len + 7) & ~(size_t)7;
            }
            sodium_memzero(key, sizeof(key));
        }
    }
    *arena = blk;
    *parts_out = (const evs_stream_append *)blk;
    return 0;
fail:
    sodium_memzero(blk, sz);
    free(blk);
    return rc;
}

/* ---- evs_forget ------------------------------------------------------------------ */

int evs_forget(evs_db *db, const char *tenant, const char *subject)
{
    int rc;
    size_t tl;
    const char *why;
    evs__clear_error();
    if (!db)
        return evs__err(EVS_EINVAL, "forget: db is NULL");
    if ((rc = evs__check_tenant(tenant, &tl)) < 0)
        return rc;
    if ((why = evs__name_problem(subject, EVS_MAX_STREAM_LEN)))
        return evs__err(EVS_EINVAL, "forget: subject %s", why);
    if (db->opts.flags & EVS_OPEN_READONLY)
        return evs__err(EVS_EREADONLY, "forget: the store is open read-only");
    if (!tenant)
        tenant = "";
    rc = db->ops->subject_forget(db, tenant, subject);
    /* evict even on failure: the next read asks the key store again */
    cache_evict(db, tenant, subject);
    if (rc == EVS_ENOTFOUND)
        return evs__err(EVS_ENOTFOUND, "forget: subject \"%s\"%s%s%s has no key (no event "
                        "was ever encrypted under it); nothing to forget", subject,
                        *tenant ? " of tenant \"" : "", tenant, *tenant ? "\"" : "");
    return rc;
}

/* ---- the read path: the decrypting iterator --------------------------------------- */

typedef struct crypt_iter {
    evs_iter base;
    evs_iter *inner;
    int retain;
    evs_event ev;          /* the event returned (not retain) */
    uint8_t *buf;          /* data plaintext, then metadata plaintext */
    size_t cap;
    void **kept;           /* retain: every event block returned */
    size_t nkept, kept_cap;
} crypt_iter;

static int crypt_marker(uint64_t *out, const evs_iter *base)
{
    const crypt_iter *it = (const crypt_iter *)base;
    return it->inner->ops->marker(out, it->inner);
}

static void crypt_free(evs_iter *base)
{
    crypt_iter *it = (crypt_iter *)base;
    if (it->inner)
        it->inner->ops->free(it->inner);
    if (it->buf) {
        sodium_memzero(it->buf, it->cap);
        free(it->buf);
    }
    for (size_t i = 0; i < it->nkept; i++)
        free(it->kept[i]);
    free(it->kept);
    free(it);
}

/* The subject of an event marked "$subject:", or NULL. */
static const char *subject_of(const evs_event *e, size_t *len)
{
    const size_t pl = sizeof(EVS__SUBJECT_TAG_PREFIX) - 1;
    for (size_t t = 0; t < e->ntags; t++)
        if (strncmp(e->tags[t], EVS__SUBJECT_TAG_PREFIX, pl) == 0) {
            *len = strlen(e->tags[t] + pl);
            return e->tags[t] + pl;
        }
    return NULL;
}

static int crypt_next(const evs_event **out, evs_iter *base)
{
    crypt_iter *it = (crypt_iter *)base;
    const evs_event *e;
    int rc = it->inner->ops->next(&e, it->inner);
    if (rc < 0)
        return rc;
    /* the fast path: an encrypted event's stored content type is binary
     * and it has the subject tag (an event this wrapper already returned
     * has its flags set: a read wrapped twice) */
    size_t sl;
    const char *subject;
    if (e->content_type != EVS_CONTENT_BINARY || e->flags ||
        !(subject = subject_of(e, &sl))) {
        *out = e;
        return 0;
    }
    int whole = is_envelope(e->data, e->data_len, ENV_KIND_DATA);
    int meta = is_envelope(e->metadata, e->metadata_len, ENV_KIND_META);
    size_t dlen = whole ? e->data_len - ENV_OVERHEAD : 0;
    size_t mlen = meta ? e->metadata_len - ENV_OVERHEAD : 0;
    size_t need = dlen + 1 + mlen + 1;
    evs_event *ev = &it->ev;
    uint8_t *buf;
    if (it->retain) {
        /* one block per event: the event, then its plaintexts */
        if (evs__grow(&it->kept, &it->kept_cap, it->nkept + 1, sizeof(void *)) < 0)
            return evs__err(EVS_ENOMEM, "out of memory decrypting events");
        uint8_t *blk = malloc(sizeof(evs_event) + need);
        if (!blk)
            return evs__err(EVS_ENOMEM, "out of memory decrypting events");
        it->kept[it->nkept++] = blk;
        ev = (evs_event *)blk;
        buf = blk + sizeof(evs_event);
    } else {
        if (need > it->cap) {
            uint8_t *nb = malloc(need);
            if (!nb)
                return evs__err(EVS_ENOMEM, "out of memory decrypting events");
            if (it->buf) {
                sodium_memzero(it->buf, it->cap);
                free(it->buf);
            }
            it->buf = nb;
            it->cap = need;
        }
        buf = it->buf;
    }
    *ev = *e;
    const uint8_t *hdr = e->data;
    ev->content_type = whole && hdr[6] == EVS_CONTENT_JSON ? EVS_CONTENT_JSON
                                                           : EVS_CONTENT_BINARY;
    ev->flags = EVS_EVENT_ENCRYPTED;
    uint8_t key[32];
    if ((rc = crypto_ready()) < 0)
        return rc;
    if (!whole)
        rc = 2; /* the data is not an envelope: damaged */
    else
        rc = get_key(key, it->base.db, e->tenant, subject, sl, 0);
    if (rc == EVS_ECORRUPT) {
        evs__clear_error();
        rc = 1; /* a damaged key: redacted, never a failed read */
    } else if (rc < 0 && rc != EVS_EDELETED && rc != EVS_ENOTFOUND) {
        return rc; /* the key store failed (a lost connection): may be retried */
    }
    if (rc == 0 &&
        (open_env(buf, e->data, e->data_len, &e->id, e->tenant, subject, sl, key) != 0 ||
         (meta && open_env(buf + dlen + 1, e->metadata, e->metadata_len, &e->id, e->tenant,
                           subject, sl, key) != 0)))
        rc = 1; /* damaged */
    sodium_memzero(key, sizeof(key));
    if (rc == 0) {
        ev->data = buf;
        ev->data_len = dlen;
        if (meta) {
            ev->metadata = buf + dlen + 1;
            ev->metadata_len = mlen;
        }
    } else {
        ev->flags |= EVS_EVENT_REDACTED | (rc >= 1 ? EVS_EVENT_DAMAGED : 0);
        ev->data = "";
        ev->data_len = 0;
        if (meta) {
            ev->metadata = "";
            ev->metadata_len = 0;
        }
    }
    *out = ev;
    return 0;
}

static const evs__iter_ops crypt_ops = {
    .next = crypt_next,
    .marker = crypt_marker,
    .free = crypt_free,
};

int evs__crypto_wrap_ex(evs_iter **itp, evs_db *db, unsigned read_flags)
{
    if (!*itp)
        return 0;
    crypt_iter *it = calloc(1, sizeof(*it));
    if (!it) {
        (*itp)->ops->free(*itp);
        *itp = NULL;
        return evs__err(EVS_ENOMEM, "out of memory for a read");
    }
    it->base.ops = &crypt_ops;
    it->base.db = db;
    it->inner = *itp;
    it->retain = (read_flags & EVS__READ_RETAIN) != 0;
    *itp = &it->base;
    return 0;
}

int evs__crypto_wrap(evs_iter **itp, evs_db *db)
{
    return evs__crypto_wrap_ex(itp, db, 0);
}
