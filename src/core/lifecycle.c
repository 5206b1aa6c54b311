/*
 * lifecycle.c -- stream metadata, soft delete and tombstone, the read
 * filter that makes every read honour them, and the plan of evs_scavenge
 * (evstore.h, "Stream lifecycle"; docs/DESIGN.md, "Stream lifecycle").
 *
 * Everything is stored through the ordinary append, so both backends
 * keep it alike and it is as durable as events:
 *  - "$$STREAM" (a system stream): the stream's metadata, events of type
 *    "$metadata" holding KurrentDB's JSON ({"$maxCount":..,"$maxAge":..,
 *    "$tb":.., custom keys}); its version is the metadata version. A
 *    stream name too long for the prefix gets "$$$" and a hash instead.
 *  - "$lifecycle" (a system stream per tenant): one event per change of a
 *    stream's rules, binary (below), so that a handle's cache of rules is
 *    brought up to date by reading it from where it stopped; its version
 *    says whether anything changed (one stream_version lookup per read).
 *  - an event without a stream, type "$metadata", JSON {"stream":..,
 *    "metadata":{..},"deleted":..}: what $all readers and subscribers see.
 *  - the tombstone: an event of type "$streamDeleted" in the stream itself,
 *    stream version EVS__TOMBSTONE_VERSION, after which the backends refuse
 *    every append to the stream (backend.h, evs__expected_ok).
 */
#include "core/front.h"
#include "util/json.h"
#include "util/util.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <xxhash.h>

#define LC_STREAM EVS__LC_STREAM
#define LC_TYPE EVS__LC_TYPE
#define META_PREFIX EVS__META_PREFIX
#define MAX_CUSTOM (64u * 1024u)
/* the largest $maxCount, $maxAge, $tb: 18 digits, what parse_i64 (and a
 * restore's check) reads back */
#define MAX_RULE 999999999999999999LL
/* "$lifecycle" event data: u8 format 1, u8 flags (LC_TOMBSTONED,
 * LC_BEFORE_ME), 6 zero bytes, i64 LE max_count, max_age_s,
 * truncate_before, then the stream's name (no NUL) */
#define LC_TOMBSTONED 0x1
/* a soft delete without an exact expected version: every event of the
 * stream committed before this record is hidden, whatever truncate_before
 * says (it is a lower bound then): the cache turns the record's position
 * into the version after the stream's last event before it */
#define LC_BEFORE_ME 0x2
#define LC_REC_FORMAT EVS__LC_REC_FORMAT
#define LC_REC_FIXED EVS__LC_REC_FIXED
/* retries of a soft delete that lost a race with an append (EVS_ANY) */
#define DELETE_TRIES 64

typedef struct lc_rules {
    int64_t max_count, max_age_s, tb;
    int tombstoned;
} lc_rules;

typedef struct lc_ent {
    uint64_t hash;
    char *key; /* tenant NUL stream, klen bytes */
    size_t klen;
    lc_rules r;
} lc_ent;

typedef struct lc_ten {
    char *name;
    int64_t version; /* of its "$lifecycle" stream read so far; -1 none */
} lc_ten;

struct evs__lc {
    pthread_mutex_t mu;
    lc_ent *tab; /* open addressing, cap a power of two */
    size_t cap, n;
    lc_ten *tens;
    size_t ntens, tens_cap;
};
typedef struct evs__lc evs__lc;

static int64_t now_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

/* ---- the cache -------------------------------------------------------------- */

static evs__lc *lc_get(evs_db *db)
{
    evs__lc *c = atomic_load(&db->lc);
    if (c)
        return c;
    if (!(c = calloc(1, sizeof(*c))))
        return NULL;
    pthread_mutex_init(&c->mu, NULL);
    evs__lc *expected = NULL;
    if (!atomic_compare_exchange_strong(&db->lc, &expected, c)) {
        pthread_mutex_destroy(&c->mu);
        free(c);
        return expected;
    }
    return c;
}

void evs__lc_free(evs_db *db)
{
    evs__lc *c = db ? atomic_exchange(&db->lc, NULL) : NULL;
    if (!c)
        return;
    for (size_t i = 0; i < c->cap; i++)
        free(c->tab[i].key);
    for (size_t i = 0; i < c->ntens; i++)
        free(c->tens[i].name);
    free(c->tab);
    free(c->tens);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* key = tenant NUL stream into buf (room for both and the NUL) */
static size_t make_key(char *buf, const char *tenant, size_t tl, const char *stream, size_t sl)
{
    memcpy(buf, tenant, tl);
    buf[tl] = '\0';
    memcpy(buf + tl + 1, stream, sl);
    return tl + 1 + sl;
}

#define KEY_CAP (EVS_MAX_TENANT_LEN + 1 + EVS_MAX_STREAM_LEN)

/* The slot of key, or the empty slot where it would go (c->cap > 0). */
static lc_ent *slot(evs__lc *c, const char *key, size_t klen, uint64_t h)
{
    size_t mask = c->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        lc_ent *e = &c->tab[i];
        if (!e->key || (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0))
            return e;
    }
}

/* Caller holds c->mu. 1 and *r when the stream has rules, else 0. */
static int lookup(evs__lc *c, const char *tenant, size_t tl, const char *stream, size_t sl,
                  lc_rules *r)
{
    if (c->n == 0 || tl > EVS_MAX_TENANT_LEN || sl > EVS_MAX_STREAM_LEN)
        return 0;
    char key[KEY_CAP];
    size_t kl = make_key(key, tenant, tl, stream, sl);
    lc_ent *e = slot(c, key, kl, XXH3_64bits(key, kl));
    if (!e->key)
        return 0;
    *r = e->r;
    return 1;
}

/* Caller holds c->mu: set the rules of (tenant, stream); a tombstone is
 * for ever. */
static int upsert(evs__lc *c, const char *tenant, size_t tl, const char *stream, size_t sl,
                  const lc_rules *r)
{
    if ((c->n + 1) * 2 > c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 64;
        lc_ent *nt = calloc(ncap, sizeof(*nt));
        if (!nt)
            return evs__err(EVS_ENOMEM, "out of memory caching stream metadata");
        lc_ent *old = c->tab;
        size_t ocap = c->cap;
        c->tab = nt;
        c->cap = ncap;
        for (size_t i = 0; i < ocap; i++)
            if (old[i].key)
                *slot(c, old[i].key, old[i].klen, old[i].hash) = old[i];
        free(old);
    }
    char key[KEY_CAP];
    size_t kl = make_key(key, tenant, tl, stream, sl);
    uint64_t h = XXH3_64bits(key, kl);
    lc_ent *e = slot(c, key, kl, h);
    if (!e->key) {
        if (!(e->key = malloc(kl)))
            return evs__err(EVS_ENOMEM, "out of memory caching stream metadata");
        memcpy(e->key, key, kl);
        e->klen = kl;
        e->hash = h;
        c->n++;
        e->r.tombstoned = 0;
    }
    int tomb = e->r.tombstoned || r->tombstoned;
    e->r = *r;
    e->r.tombstoned = tomb;
    return 0;
}

static lc_ten *tenant_slot(evs__lc *c, const char *tenant)
{
    for (size_t i = 0; i < c->ntens; i++)
        if (strcmp(c->tens[i].name, tenant) == 0)
            return &c->tens[i];
    if (evs__grow(&c->tens, &c->tens_cap, c->ntens + 1, sizeof(*c->tens)) < 0)
        return NULL;
    lc_ten *t = &c->tens[c->ntens];
    if (!(t->name = strdup(tenant)))
        return NULL;
    t->version = EVS_NO_STREAM;
    c->ntens++;
    return t;
}

static void rec_encode(uint8_t *buf, const lc_rules *r, unsigned flags, const char *stream,
                       size_t sl)
{
    memset(buf, 0, LC_REC_FIXED);
    buf[0] = LC_REC_FORMAT;
    buf[1] = (uint8_t)((r->tombstoned ? LC_TOMBSTONED : 0) | flags);
    evs__put_le64(buf + 8, (uint64_t)r->max_count);
    evs__put_le64(buf + 16, (uint64_t)r->max_age_s);
    evs__put_le64(buf + 24, (uint64_t)r->tb);
    memcpy(buf + LC_REC_FIXED, stream, sl);
}

/* The version of the last event of stream (sl bytes) positioned before
 * `position`, EVS_NO_STREAM when none: one backward query of its stream
 * tag. */
static int version_before(evs_db *db, const char *tenant, const char *stream, size_t sl,
                          uint64_t position, int64_t *out)
{
    char tag[sizeof(EVS_STREAM_TAG_PREFIX) + EVS_MAX_STREAM_LEN];
    snprintf(tag, sizeof(tag), "%s%.*s", EVS_STREAM_TAG_PREFIX, (int)sl, stream);
    const char *tags[1] = {tag};
    evs_query_item item = {NULL, 0, tags, 1};
    evs_query q = {&item, 1};
    evs_iter *it;
    const evs_event *ev;
    *out = EVS_NO_STREAM;
    int rc = db->ops->read_query(&it, db, tenant, &q, position, EVS_BACKWARD, 1, 0);
    if (rc < 0)
        return rc;
    if ((rc = it->ops->next(&ev, it)) == 0)
        *out = ev->stream_version;
    it->ops->free(it);
    return rc == EVS_ITEROVER ? 0 : rc;
}

/* Caller holds c->mu: apply tenant's "$lifecycle" events after t->version
 * up to `upto`. */
static int load(evs_db *db, evs__lc *c, lc_ten *t, const char *tenant, int64_t upto)
{
    evs_iter *it;
    const evs_event *ev;
    int rc = db->ops->read_stream(&it, db, tenant, LC_STREAM, t->version + 1, EVS_FORWARD,
                                  (uint64_t)(upto - t->version));
    if (rc < 0)
        return rc;
    while ((rc = it->ops->next(&ev, it)) == 0) {
        const uint8_t *d = ev->data;
        size_t sl = ev->data_len - LC_REC_FIXED;
        if (ev->data_len <= LC_REC_FIXED || d[0] != LC_REC_FORMAT ||
            sl > EVS_MAX_STREAM_LEN) {
            rc = evs__err(EVS_ECORRUPT, "stream metadata: event %" PRId64 " of tenant \"%s\"'s "
                          "\"%s\" stream (position %" PRIu64 ") is not a lifecycle record",
                          ev->stream_version, tenant, LC_STREAM, ev->position);
            break;
        }
        lc_rules r = {(int64_t)evs__get_le64(d + 8), (int64_t)evs__get_le64(d + 16),
                      (int64_t)evs__get_le64(d + 24), d[1] & LC_TOMBSTONED};
        int64_t after;
        if ((d[1] & LC_BEFORE_ME) &&
            (rc = version_before(db, tenant, (const char *)d + LC_REC_FIXED, sl, ev->position,
                                 &after)) < 0)
            break;
        if ((d[1] & LC_BEFORE_ME) && after + 1 > r.tb)
            r.tb = after + 1;
        if ((rc = upsert(c, tenant, strlen(tenant), (const char *)d + LC_REC_FIXED, sl, &r)) < 0)
            break;
        t->version = ev->stream_version;
    }
    it->ops->free(it);
    return rc == EVS_ITEROVER ? 0 : rc;
}

/* The version of tenant's "$lifecycle" stream. Where the backend's commit
 * number is exact (backend.h, commit_seq_exact), each thread remembers its
 * last answer with the number it was read under: while the number has not
 * moved no commit came in, and the lookup (0.3 µs of a 1.4 µs stream read,
 * docs/PERFORMANCE.md) is skipped. */
typedef struct lc_memo {
    uint64_t db_id;
    uint64_t seq;
    int64_t version;
    size_t tenant_len;
    char tenant[EVS_MAX_TENANT_LEN + 1];
} lc_memo;
static _Thread_local lc_memo tls_memo;
static _Atomic uint64_t next_db_id = 1;

static int lc_version(evs_db *db, const char *tenant, int64_t *v)
{
    uint64_t seq = 0, id = 0;
    size_t tl = strlen(tenant);
    int exact = db->ops->commit_seq_exact && tl <= EVS_MAX_TENANT_LEN &&
                db->ops->commit_seq(&seq, db) == 0;
    if (exact) {
        if (!(id = atomic_load(&db->fe_id))) {
            uint64_t want = atomic_fetch_add(&next_db_id, 1), none = 0;
            id = atomic_compare_exchange_strong(&db->fe_id, &none, want) ? want : none;
        }
        lc_memo *m = &tls_memo;
        if (m->db_id == id && m->seq == seq && m->tenant_len == tl &&
            memcmp(m->tenant, tenant, tl) == 0) {
            *v = m->version;
            return 0;
        }
    }
    int rc = db->ops->stream_version(v, db, tenant, LC_STREAM);
    if (rc == 0 && exact) {
        lc_memo *m = &tls_memo;
        m->db_id = id;
        m->seq = seq; /* taken before the lookup: a commit between only makes
                         the answer newer */
        m->version = *v;
        m->tenant_len = tl;
        memcpy(m->tenant, tenant, tl);
    }
    return rc;
}

/* Bring the cache up to date with tenant's "$lifecycle" stream; *any = 0
 * when the tenant never had rules (nothing else is done then). */
static int lc_sync(evs_db *db, const char *tenant, int *any, evs__lc **cache)
{
    int64_t v;
    int rc = lc_version(db, tenant, &v);
    *any = 0;
    *cache = NULL;
    if (rc < 0 || v == EVS_NO_STREAM)
        return rc;
    evs__lc *c = lc_get(db);
    if (!c)
        return evs__err(EVS_ENOMEM, "out of memory caching stream metadata");
    pthread_mutex_lock(&c->mu);
    lc_ten *t = tenant_slot(c, tenant);
    if (!t)
        rc = evs__err(EVS_ENOMEM, "out of memory caching stream metadata");
    else if (t->version < v)
        rc = load(db, c, t, tenant, v);
    pthread_mutex_unlock(&c->mu);
    *any = rc == 0;
    *cache = c;
    return rc;
}

/* The rules of one stream, synced (0 and *has 0 when none). */
static int stream_rules(evs_db *db, const char *tenant, const char *stream, lc_rules *r,
                        int *has)
{
    int any;
    evs__lc *c;
    int rc = lc_sync(db, tenant, &any, &c);
    *has = 0;
    memset(r, 0, sizeof(*r));
    if (rc < 0 || !any)
        return rc;
    pthread_mutex_lock(&c->mu);
    *has = lookup(c, tenant, strlen(tenant), stream, strlen(stream), r);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

/* The lowest version a read returns under r for a stream at `last`. */
static int64_t floor_of(const lc_rules *r, int64_t last)
{
    int64_t lo = r->tb > 0 ? r->tb : 0;
    if (r->max_count > 0 && last >= 0 && last - r->max_count + 1 > lo)
        lo = last - r->max_count + 1;
    return lo;
}

/* recorded_at below which max_age_s hides events, 0: none */
static int64_t age_cut(const lc_rules *r, int64_t now)
{
    if (r->max_age_s <= 0 || r->max_age_s > now / 1000000)
        return 0;
    return now - r->max_age_s * 1000000;
}

/* ---- the read filter ------------------------------------------------------- */

typedef struct seen_tenant {
    char *name;
    int any;
} seen_tenant;

typedef struct lc_iter {
    evs_iter base;
    evs_iter *inner;
    evs__lc *c;          /* NULL until a tenant with rules is seen */
    int all_tenants;     /* a read of every tenant: rules looked up per event */
    uint64_t left;       /* UINT64_MAX: no limit */
    int64_t now;         /* µs, when the read began */
    int stop_below;      /* a backward stream read: stop under `floor` */
    int64_t floor;
    uint64_t only;       /* evs_read_event: the one position returned, 0: any */
    seen_tenant *seen;   /* every-tenant reads: which tenants have rules */
    size_t nseen, seen_cap, last_seen;
    /* max_count needs the stream's last version: the last one looked up */
    char head_key[KEY_CAP];
    size_t head_klen;
    int64_t head;
} lc_iter;

static int tenant_any(lc_iter *it, const char *tenant, int *any)
{
    if (it->last_seen < it->nseen && strcmp(it->seen[it->last_seen].name, tenant) == 0) {
        *any = it->seen[it->last_seen].any;
        return 0;
    }
    for (size_t i = 0; i < it->nseen; i++)
        if (strcmp(it->seen[i].name, tenant) == 0) {
            it->last_seen = i;
            *any = it->seen[i].any;
            return 0;
        }
    evs__lc *c;
    int rc = lc_sync(it->base.db, tenant, any, &c);
    if (rc < 0)
        return rc;
    if (c)
        it->c = c;
    if (evs__grow(&it->seen, &it->seen_cap, it->nseen + 1, sizeof(*it->seen)) < 0 ||
        !(it->seen[it->nseen].name = strdup(tenant)))
        return evs__err(EVS_ENOMEM, "out of memory reading");
    it->seen[it->nseen].any = *any;
    it->last_seen = it->nseen++;
    return 0;
}

/* Is ev returned under its stream's rules? */
static int visible(lc_iter *it, const evs_event *ev, int *vis)
{
    int rc, any = it->c != NULL;
    *vis = 1;
    if (!ev->stream[0] || ev->stream[0] == '$')
        return 0; /* no rules for events without a stream and system streams */
    if (it->all_tenants && (rc = tenant_any(it, ev->tenant, &any)) < 0)
        return rc;
    if (!any || !it->c)
        return 0;
    lc_rules r;
    size_t tl = strlen(ev->tenant), sl = strlen(ev->stream);
    pthread_mutex_lock(&it->c->mu);
    int has = lookup(it->c, ev->tenant, tl, ev->stream, sl, &r);
    pthread_mutex_unlock(&it->c->mu);
    if (!has)
        return 0;
    int64_t v = ev->stream_version;
    if (r.tombstoned) {
        *vis = v == EVS__TOMBSTONE_VERSION; /* $all shows the tombstone */
        return 0;
    }
    int64_t cut = age_cut(&r, it->now);
    if ((r.tb > 0 && v < r.tb) || (cut && ev->recorded_at < cut)) {
        *vis = 0;
        return 0;
    }
    if (r.max_count > 0) {
        char key[KEY_CAP];
        size_t kl = make_key(key, ev->tenant, tl, ev->stream, sl);
        if (kl != it->head_klen || memcmp(key, it->head_key, kl) != 0) {
            int64_t h;
            if ((rc = it->base.db->ops->stream_version(&h, it->base.db, ev->tenant,
                                                       ev->stream)) < 0)
                return rc;
            memcpy(it->head_key, key, kl);
            it->head_klen = kl;
            it->head = h;
        }
        if (v <= it->head - r.max_count)
            *vis = 0;
    }
    return 0;
}

static int lc_next(const evs_event **ev, evs_iter *base)
{
    lc_iter *it = (lc_iter *)base;
    if (it->left == 0)
        return EVS_ITEROVER;
    for (;;) {
        int rc = it->inner->ops->next(ev, it->inner), vis;
        if (rc != 0)
            return rc;
        if ((it->stop_below && (*ev)->stream_version < it->floor) ||
            (it->only && (*ev)->position != it->only)) {
            it->left = 0;
            return EVS_ITEROVER;
        }
        if ((rc = visible(it, *ev, &vis)) < 0)
            return rc;
        if (vis) {
            if (it->left != UINT64_MAX)
                it->left--;
            return 0;
        }
    }
}

static int lc_marker(uint64_t *out, const evs_iter *base)
{
    const lc_iter *it = (const lc_iter *)base;
    return it->inner->ops->marker(out, it->inner);
}

static void lc_iter_free(evs_iter *base)
{
    lc_iter *it = (lc_iter *)base;
    it->inner->ops->free(it->inner);
    for (size_t i = 0; i < it->nseen; i++)
        free(it->seen[i].name);
    free(it->seen);
    free(it);
}

static const evs__iter_ops lc_ops = {
    .next = lc_next,
    .marker = lc_marker,
    .free = lc_iter_free,
};

/* Wrap *inner (taken over: freed on error). */
static int wrap(evs_iter **out, evs_db *db, evs_iter *inner, evs__lc *c, const char *tenant,
                uint64_t limit)
{
    lc_iter *it = calloc(1, sizeof(*it));
    if (!it) {
        inner->ops->free(inner);
        return evs__err(EVS_ENOMEM, "out of memory reading");
    }
    it->base.ops = &lc_ops;
    it->base.db = db;
    it->inner = inner;
    it->c = c;
    it->all_tenants = tenant == NULL;
    it->left = limit ? limit : UINT64_MAX;
    it->now = now_us();
    it->head = EVS_NO_STREAM;
    *out = &it->base;
    return 0;
}

static int deleted_error(const char *what, const char *tenant, const char *stream)
{
    return evs__err(EVS_EDELETED, "%s: stream %s%s%s%s is deleted (tombstoned); its events "
                    "are gone for good", what, stream, tenant[0] ? " of tenant \"" : "",
                    tenant, tenant[0] ? "\"" : "");
}

static int lc_read_stream(evs_iter **out, evs_db *db, const char *tenant, const char *stream,
                        int64_t from_version, evs_direction dir, uint64_t limit)
{
    lc_rules r;
    int has, rc;
    if ((rc = stream_rules(db, tenant, stream, &r, &has)) < 0)
        return rc;
    if (!has)
        return db->ops->read_stream(out, db, tenant, stream, from_version, dir, limit);
    if (r.tombstoned)
        return deleted_error("read_stream", tenant, stream);
    int64_t last = EVS_NO_STREAM;
    if (r.max_count > 0 && (rc = db->ops->stream_version(&last, db, tenant, stream)) < 0)
        return rc;
    int64_t lo = floor_of(&r, last);
    int64_t cut = age_cut(&r, now_us());
    if (dir == EVS_FORWARD && from_version < lo)
        from_version = lo;
    evs_iter *inner;
    if ((rc = db->ops->read_stream(&inner, db, tenant, stream, from_version, dir,
                                   cut ? 0 : limit)) < 0)
        return rc;
    evs__lc *c = atomic_load(&db->lc);
    if ((rc = wrap(out, db, inner, c, tenant, limit)) < 0)
        return rc;
    lc_iter *it = (lc_iter *)*out;
    it->stop_below = dir == EVS_BACKWARD;
    it->floor = lo;
    if (r.max_count > 0) {
        /* the filter's max count from the same last version as the floor:
         * an append meanwhile must not hide the first events of a page the
         * backend limited */
        it->head_klen = make_key(it->head_key, tenant, strlen(tenant), stream, strlen(stream));
        it->head = last;
    }
    return 0;
}

static int lc_read_streams(evs_iter **out, evs_db *db, const char *tenant,
                         const evs_stream_read *streams, size_t nstreams)
{
    int any, rc;
    evs__lc *c;
    if ((rc = lc_sync(db, tenant, &any, &c)) < 0)
        return rc;
    if (!any)
        return db->ops->read_streams(out, db, tenant, streams, nstreams);
    /* raise each stream's from_version to its floor; the filter does the
     * rest (max age) */
    evs_stream_read *v = malloc(nstreams * sizeof(*v));
    if (!v)
        return evs__err(EVS_ENOMEM, "out of memory reading %zu streams", nstreams);
    size_t tl = strlen(tenant);
    for (size_t i = 0; i < nstreams && rc == 0; i++) {
        lc_rules r;
        v[i] = streams[i];
        pthread_mutex_lock(&c->mu);
        int has = lookup(c, tenant, tl, streams[i].stream, strlen(streams[i].stream), &r);
        pthread_mutex_unlock(&c->mu);
        if (!has)
            continue;
        if (r.tombstoned) {
            rc = deleted_error("read_streams", tenant, streams[i].stream);
            break;
        }
        int64_t last = EVS_NO_STREAM;
        if (r.max_count > 0 &&
            (rc = db->ops->stream_version(&last, db, tenant, streams[i].stream)) < 0)
            break;
        int64_t lo = floor_of(&r, last);
        if (v[i].from_version < lo)
            v[i].from_version = lo;
    }
    evs_iter *inner = NULL;
    if (rc == 0)
        rc = db->ops->read_streams(&inner, db, tenant, v, nstreams);
    free(v);
    if (rc < 0)
        return rc;
    return wrap(out, db, inner, c, tenant, 0);
}

static int lc_read_all(evs_iter **out, evs_db *db, const char *tenant, uint64_t from_position,
                     uint64_t limit, unsigned flags)
{
    int any = 1, rc;
    evs__lc *c = NULL;
    if (tenant && (rc = lc_sync(db, tenant, &any, &c)) < 0)
        return rc;
    if (!any)
        return db->ops->read_all(out, db, tenant, from_position, limit, flags);
    evs_iter *inner;
    if ((rc = db->ops->read_all(&inner, db, tenant, from_position, 0, flags)) < 0)
        return rc;
    return wrap(out, db, inner, c, tenant, limit);
}

static int lc_read_query(evs_iter **out, evs_db *db, const char *tenant, const evs_query *query,
                       uint64_t position_bound, evs_direction dir, uint64_t limit,
                       unsigned flags)
{
    int any, rc;
    evs__lc *c;
    if ((rc = lc_sync(db, tenant, &any, &c)) < 0)
        return rc;
    if (!any)
        return db->ops->read_query(out, db, tenant, query, position_bound, dir, limit, flags);
    evs_iter *inner;
    if ((rc = db->ops->read_query(&inner, db, tenant, query, position_bound, dir, 0, flags)) < 0)
        return rc;
    return wrap(out, db, inner, c, tenant, limit);
}

/* ---- the reads, filtered and then decrypted (crypto.c) ------------------------ */

int evs__lc_read_stream(evs_iter **out, evs_db *db, const char *tenant, const char *stream,
                        int64_t from_version, evs_direction dir, uint64_t limit)
{
    int rc = lc_read_stream(out, db, tenant, stream, from_version, dir, limit);
    return rc < 0 ? rc : evs__crypto_wrap(out, db);
}

int evs__lc_read_streams(evs_iter **out, evs_db *db, const char *tenant,
                         const evs_stream_read *streams, size_t nstreams)
{
    int rc = lc_read_streams(out, db, tenant, streams, nstreams);
    return rc < 0 ? rc : evs__crypto_wrap(out, db);
}

int evs__lc_read_all(evs_iter **out, evs_db *db, const char *tenant, uint64_t from_position,
                     uint64_t limit, unsigned flags)
{
    int rc = lc_read_all(out, db, tenant, from_position, limit, flags);
    return rc < 0 ? rc : evs__crypto_wrap_ex(out, db, flags);
}

int evs__lc_read_query(evs_iter **out, evs_db *db, const char *tenant, const evs_query *query,
                       uint64_t position_bound, evs_direction dir, uint64_t limit,
                       unsigned flags)
{
    int rc = lc_read_query(out, db, tenant, query, position_bound, dir, limit, flags);
    return rc < 0 ? rc : evs__crypto_wrap_ex(out, db, flags);
}

int evs__lc_read_at(evs_iter **out, evs_db *db, uint64_t position)
{
    evs_iter *inner;
    int rc = db->ops->read_all(&inner, db, NULL, position, 1, EVS__READ_SYSTEM);
    if (rc < 0)
        return rc;
    if ((rc = wrap(out, db, inner, NULL, NULL, 1)) < 0)
        return rc;
    ((lc_iter *)*out)->only = position;
    return evs__crypto_wrap(out, db);
}

int evs__lc_stream_floor(int64_t *out, evs_db *db, const char *tenant, const char *stream)
{
    lc_rules r;
    int has, rc;
    *out = 0;
    if ((rc = stream_rules(db, tenant, stream, &r, &has)) < 0 || !has)
        return rc;
    if (r.tombstoned)
        return deleted_error("aggregate_load", tenant, stream);
    int64_t last = EVS_NO_STREAM;
    if (r.max_count > 0 && (rc = db->ops->stream_version(&last, db, tenant, stream)) < 0)
        return rc;
    *out = floor_of(&r, last);
    return 0;
}

/* ---- JSON ------------------------------------------------------------------- */

typedef struct jbuf {
    char *p;
    size_t n, cap;
    int oom;
} jbuf;

static void jput(jbuf *b, const char *s, size_t n)
{
    if (b->oom || evs__grow(&b->p, &b->cap, b->n + n + 1, 1) < 0) {
        b->oom = 1;
        return;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void jputs(jbuf *b, const char *s)
{
    jput(b, s, strlen(s));
}

/* s[0..n) as a JSON string */
static void jstr(jbuf *b, const char *s, size_t n)
{
    jput(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        char esc[8];
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\';
            esc[1] = (char)ch;
            jput(b, esc, 2);
        } else if (ch < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", ch);
            jput(b, esc, 6);
        } else {
            jput(b, (const char *)&s[i], 1);
        }
    }
    jput(b, "\"", 1);
}

static void jint(jbuf *b, const char *key, int64_t v, int *first)
{
    char num[32];
    if (!*first)
        jput(b, ",", 1);
    *first = 0;
    jstr(b, key, strlen(key));
    snprintf(num, sizeof(num), ":%" PRId64, v);
    jputs(b, num);
}

/* Walking a metadata object: the known keys into m, the others, as
 * "key":raw, into custom. */
typedef struct meta_walk {
    evs_stream_metadata *m;
    jbuf *custom;
    int custom_first;
    int dollar_key; /* a custom object with a '$' key (set's check) */
    const char *bad; /* a known key with a value that is not an integer >= 0 */
} meta_walk;

static int parse_i64(const char *raw, size_t n, int64_t *out)
{
    int64_t v = 0;
    if (n == 0 || n > 18)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (raw[i] < '0' || raw[i] > '9')
            return -1;
        v = v * 10 + (raw[i] - '0');
    }
    *out = v;
    return 0;
}

static void meta_item(void *ctx, const evs__json_item *item)
{
    meta_walk *w = ctx;
    static const char *const known[] = {"$maxCount", "$maxAge", "$tb"};
    for (int k = 0; k < 3; k++)
        if (item->key_len == strlen(known[k]) && memcmp(item->key, known[k], item->key_len) == 0) {
            int64_t v;
            if (parse_i64(item->raw, item->raw_len, &v) < 0) {
                w->bad = known[k];
                return;
            }
            if (k == 0)
                w->m->max_count = v;
            else if (k == 1)
                w->m->max_age_s = v;
            else
                w->m->truncate_before = v;
            return;
        }
    if (item->key_len > 0 && item->key[0] == '$')
        w->dollar_key = 1;
    if (!w->custom)
        return;
    if (!w->custom_first)
        jput(w->custom, ",", 1);
    w->custom_first = 0;
    jstr(w->custom, item->key, item->key_len);
    jput(w->custom, ":", 1);
    jput(w->custom, item->raw, item->raw_len);
}

/* The stored JSON of m (custom already checked). */
static int meta_json(jbuf *b, const evs_stream_metadata *m)
{
    int first = 1;
    jput(b, "{", 1);
    if (m->max_count > 0)
        jint(b, "$maxCount", m->max_count, &first);
    if (m->max_age_s > 0)
        jint(b, "$maxAge", m->max_age_s, &first);
    if (m->truncate_before > 0)
        jint(b, "$tb", m->truncate_before, &first);
    if (m->custom && m->custom_len) {
        meta_walk w = {.m = &(evs_stream_metadata)EVS_STREAM_METADATA_INIT, .custom = b,
                       .custom_first = first};
        size_t where;
        char err[128];
        if (evs__json_object_items(m->custom, m->custom_len, meta_item, &w, &where, err,
                                   sizeof(err)) != 0)
            return evs__err(EVS_EINVAL, "stream metadata: custom is not a JSON object");
    }
    jput(b, "}", 1);
    return b->oom ? evs__err(EVS_ENOMEM, "out of memory writing stream metadata") : 0;
}

/* ---- metadata ---------------------------------------------------------------- */

/* The metadata stream of stream into buf (room for EVS_MAX_STREAM_LEN + 1). */
static void meta_stream(char *buf, const char *stream)
{
    size_t sl = strlen(stream);
    if (sl + strlen(META_PREFIX) <= EVS_MAX_STREAM_LEN) {
        snprintf(buf, EVS_MAX_STREAM_LEN + 1, "%s%s", META_PREFIX, stream);
        return;
    }
    /* "$$$": no "$$" + user stream starts so (user names never start
     * with '$'), so a hashed name cannot be another stream's */
    XXH128_hash_t h = XXH3_128bits(stream, sl);
    snprintf(buf, EVS_MAX_STREAM_LEN + 1, "%s$%016llx%016llx", META_PREFIX,
             (unsigned long long)h.high64, (unsigned long long)h.low64);
}

/* A user stream's name (not a system stream). */
static int check_user_stream(const char *stream, const char *what)
{
    int rc = evs__check_stream(stream);
    if (rc < 0)
        return rc;
    if (stream[0] == '$')
        return evs__err(EVS_EINVAL, "%s: stream %s starts with '$': system streams have no "
                        "metadata and cannot be deleted", what, stream);
    return 0;
}

/* The stored metadata: *m (custom into *custom, "{}" when none), its
 * version, from the last event of the metadata stream. */
static int meta_read(evs_db *db, const char *tenant, const char *stream, evs_stream_metadata *m,
                     jbuf *custom, int64_t *meta_version)
{
    char ms[EVS_MAX_STREAM_LEN + 1];
    evs_iter *it;
    const evs_event *ev;
    meta_stream(ms, stream);
    memset(m, 0, sizeof(*m));
    *meta_version = EVS_NO_STREAM;
    int rc = db->ops->read_stream(&it, db, tenant, ms, EVS_END, EVS_BACKWARD, 1);
    if (rc < 0)
        return rc;
    rc = it->ops->next(&ev, it);
    if (rc == 0) {
        meta_walk w = {.m = m, .custom = custom, .custom_first = 1};
        size_t where;
        char err[128];
        if (custom)
            jput(custom, "{", 1);
        if (strcmp(ev->type, EVS__METADATA_TYPE) != 0 ||
            evs__json_object_items(ev->data, ev->data_len, meta_item, &w, &where, err,
                                   sizeof(err)) != 0 || w.bad)
            rc = evs__err(EVS_ECORRUPT, "stream metadata of %s: the event at position %" PRIu64
                          " of %s is not stream metadata", stream, ev->position, ms);
        else
            *meta_version = ev->stream_version;
        if (custom)
            jput(custom, "}", 1);
    } else if (rc == EVS_ITEROVER) {
        rc = 0;
        if (custom)
            jputs(custom, "{}");
    }
    it->ops->free(it);
    if (rc == 0 && custom && custom->oom)
        rc = evs__err(EVS_ENOMEM, "out of memory reading stream metadata");
    return rc;
}

/* A soft delete without an exact expected version stores a lower bound
 * as $tb; the cache knows the exact one (LC_BEFORE_ME): raise m's. */
static int exact_tb(evs_db *db, const char *tenant, const char *stream, evs_stream_metadata *m)
{
    lc_rules r;
    int has;
    int rc = stream_rules(db, tenant, stream, &r, &has);
    if (rc == 0 && has && r.tb > m->truncate_before)
        m->truncate_before = r.tb;
    return rc;
}

static int check_names(evs_db *db, const char *tenant, const char *stream, const char *what)
{
    size_t tl;
    int rc;
    if (!db)
        return evs__err(EVS_EINVAL, "%s: db is NULL", what);
    if ((rc = evs__check_tenant(tenant, &tl)) < 0)
        return rc;
    return check_user_stream(stream, what);
}

/* The arguments of a write (delete, tombstone): names, expected version
 * (what evs_append takes), a store open for writing. */
static int check_write(evs_db *db, const char *tenant, const char *stream, int64_t expected,
                       const char *what)
{
    int rc = check_names(db, tenant, stream, what);
    if (rc < 0)
        return rc;
    if (expected < 0 && expected != EVS_ANY && expected != EVS_NO_STREAM &&
        expected != EVS_STREAM_EXISTS)
        return evs__err(EVS_EINVAL, "%s: expected version %" PRId64 " (give EVS_ANY, "
                        "EVS_NO_STREAM, EVS_STREAM_EXISTS or a version >= 0)", what, expected);
    if (db->opts.flags & EVS_OPEN_READONLY)
        return evs__err(EVS_EREADONLY, "%s: the store is open read-only", what);
    return 0;
}

/* The "$lifecycle" record of a change of stream's rules as event *e, in
 * rec (LC_REC_FIXED + EVS_MAX_STREAM_LEN bytes). */
static void lc_event(evs_event_data *e, uint8_t *rec, const lc_rules *r, unsigned flags,
                     const char *stream, size_t sl)
{
    rec_encode(rec, r, flags, stream, sl);
    memset(e, 0, sizeof(*e));
    e->type = LC_TYPE;
    e->data = rec;
    e->data_len = LC_REC_FIXED + sl;
    e->content_type = EVS_CONTENT_BINARY;
}

/* Append lifecycle.c's parts, the last nsystem to system streams, with
 * cond (NULL: none). */
static int lc_append(evs_append_result *res, uint64_t *conflict, evs_db *db, const char *tenant,
                     const evs_stream_append *parts, size_t nparts, size_t nsystem,
                     const evs_append_condition *cond)
{
    evs_append_request req = EVS_APPEND_REQUEST_INIT;
    req.tenant = tenant;
    req.parts = parts;
    req.nparts = nparts;
    req.conditions = cond;
    req.nconditions = cond ? 1 : 0;
    return evs__append_ex(res, conflict, db, &req, nsystem, EVS__APPEND_LIFECYCLE);
}

int evs_stream_metadata_get(evs_stream_meta_info **out, evs_db *db, const char *tenant,
                            const char *stream)
{
    int rc;
    evs__clear_error();
    if (!out)
        return evs__err(EVS_EINVAL, "stream_metadata_get: out is NULL");
    *out = NULL;
    if ((rc = check_names(db, tenant, stream, "stream_metadata_get")) < 0)
        return rc;
    tenant = tenant ? tenant : "";
    evs_stream_metadata m;
    jbuf custom = {0};
    int64_t mv, sv;
    if ((rc = meta_read(db, tenant, stream, &m, &custom, &mv)) < 0 ||
        (rc = exact_tb(db, tenant, stream, &m)) < 0 ||
        (rc = db->ops->stream_version(&sv, db, tenant, stream)) < 0) {
        free(custom.p);
        return rc;
    }
    evs_stream_meta_info *info = malloc(sizeof(*info) + custom.n + 1);
    if (!info) {
        free(custom.p);
        return evs__err(EVS_ENOMEM, "out of memory reading stream metadata");
    }
    char *text = (char *)(info + 1);
    memcpy(text, custom.p, custom.n + 1);
    free(custom.p);
    info->meta = m;
    info->meta.custom = text;
    info->meta.custom_len = strlen(text);
    info->meta_version = mv;
    info->stream_version = sv;
    info->tombstoned = sv == EVS__TOMBSTONE_VERSION;
    info->deleted = !info->tombstoned && m.truncate_before > 0 && sv >= 0 &&
                    m.truncate_before > sv;
    *out = info;
    return 0;
}

void evs_stream_meta_info_free(evs_stream_meta_info *info)
{
    free(info);
}

/* Append a metadata change: the announcement (an event without a
 * stream), the metadata event (expected_meta), the "$lifecycle" record;
 * cond (may be NULL) must hold. */
static int meta_write(evs_append_result res[3], uint64_t *conflict, evs_db *db,
                      const char *tenant, const char *stream, int64_t expected_meta,
                      const evs_stream_metadata *m, int deleted, unsigned lc_flags,
                      const evs_append_condition *cond)
{
    jbuf meta = {0}, ann = {0};
    char ms[EVS_MAX_STREAM_LEN + 1];
    uint8_t rec[LC_REC_FIXED + EVS_MAX_STREAM_LEN];
    int rc;
    size_t sl = strlen(stream);
    if ((rc = meta_json(&meta, m)) < 0)
        goto out;
    jputs(&ann, "{\"stream\":");
    jstr(&ann, stream, sl);
    jputs(&ann, ",\"metadata\":");
    jput(&ann, meta.p, meta.n);
    jputs(&ann, deleted ? ",\"deleted\":true" : ",\"deleted\":false");
    /* a delete without an exact expected version hides every event of
     * the stream before this one; $tb is then only a lower bound */
    jputs(&ann, (lc_flags & LC_BEFORE_ME) ? ",\"beforeThisEvent\":true}" : "}");
    if (ann.oom) {
        rc = evs__err(EVS_ENOMEM, "out of memory writing stream metadata");
        goto out;
    }
    meta_stream(ms, stream);
    lc_rules r = {m->max_count, m->max_age_s, m->truncate_before, 0};
    evs_event_data ev[3];
    memset(ev, 0, 2 * sizeof(ev[0]));
    ev[0].type = EVS__METADATA_TYPE;
    ev[0].data = ann.p;
    ev[0].data_len = ann.n;
    ev[1].type = EVS__METADATA_TYPE;
    ev[1].data = meta.p;
    ev[1].data_len = meta.n;
    lc_event(&ev[2], rec, &r, lc_flags, stream, sl);
    evs_stream_append parts[3] = {
        {NULL, EVS_ANY, &ev[0], 1},
        {ms, expected_meta, &ev[1], 1},
        {LC_STREAM, EVS_ANY, &ev[2], 1},
    };
    rc = lc_append(res, conflict, db, tenant, parts, 3, 2, cond);
out:
    free(meta.p);
    free(ann.p);
    return rc;
}

int evs_stream_metadata_set(int64_t *meta_version, evs_db *db, const char *tenant,
                            const char *stream, int64_t expected_meta_version,
                            const evs_stream_metadata *meta)
{
    int rc;
    evs__clear_error();
    if ((rc = check_names(db, tenant, stream, "stream_metadata_set")) < 0)
        return rc;
    if (!meta)
        return evs__err(EVS_EINVAL, "stream_metadata_set: meta is NULL");
    tenant = tenant ? tenant : "";
    if (meta->max_count > MAX_RULE || meta->max_age_s > MAX_RULE ||
        meta->truncate_before > MAX_RULE)
        return evs__err(EVS_EINVAL, "stream_metadata_set: max_count, max_age_s and "
                        "truncate_before are at most %lld (0: no limit), got %" PRId64
                        ", %" PRId64 " and %" PRId64, (long long)MAX_RULE, meta->max_count,
                        meta->max_age_s, meta->truncate_before);
    if (meta->max_count < 0 || meta->max_age_s < 0 || meta->truncate_before < 0)
        return evs__err(EVS_EINVAL, "stream_metadata_set: max_count, max_age_s and "
                        "truncate_before must be >= 0 (0: none), got %" PRId64 ", %" PRId64
                        " and %" PRId64, meta->max_count, meta->max_age_s,
                        meta->truncate_before);
    if (expected_meta_version < 0 && expected_meta_version != EVS_ANY &&
        expected_meta_version != EVS_NO_STREAM && expected_meta_version != EVS_STREAM_EXISTS)
        return evs__err(EVS_EINVAL, "stream_metadata_set: expected metadata version %" PRId64
                        " (give EVS_ANY, EVS_NO_STREAM, EVS_STREAM_EXISTS or a version >= 0)",
                        expected_meta_version);
    if (meta->custom_len > 0 && !meta->custom)
        return evs__err(EVS_EINVAL, "stream_metadata_set: custom is NULL but custom_len is %zu",
                        meta->custom_len);
    if (meta->custom_len > MAX_CUSTOM)
        return evs__err(EVS_EINVAL, "stream_metadata_set: custom is %zu bytes, at most %u",
                        meta->custom_len, MAX_CUSTOM);
    if (meta->custom_len > 0) {
        evs_stream_metadata scratch = EVS_STREAM_METADATA_INIT;
        meta_walk w = {.m = &scratch};
        size_t where;
        char err[128];
        int jr = evs__json_object_items(meta->custom, meta->custom_len, meta_item, &w, &where,
                                        err, sizeof(err));
        if (jr == -2)
            return evs__err(EVS_ENOMEM, "out of memory checking stream metadata");
        if (jr != 0)
            return evs__err(EVS_EINVAL, "stream_metadata_set: custom is not a JSON object: "
                            "%s; give an object such as {\"owner\":\"team-a\"}", err);
        if (w.dollar_key || w.bad || scratch.max_count || scratch.max_age_s ||
            scratch.truncate_before)
            return evs__err(EVS_EINVAL, "stream_metadata_set: custom has a key starting with "
                            "'$', which is reserved for the store's own keys ($maxCount, "
                            "$maxAge, $tb: set them with the struct's fields)");
    }
    if (db->opts.flags & EVS_OPEN_READONLY)
        return evs__err(EVS_EREADONLY, "stream_metadata_set: the store is open read-only");
    int64_t sv;
    if ((rc = db->ops->stream_version(&sv, db, tenant, stream)) < 0)
        return rc;
    if (sv == EVS__TOMBSTONE_VERSION)
        return deleted_error("stream_metadata_set", tenant, stream);
    evs_append_result res[3];
    rc = meta_write(res, NULL, db, tenant, stream, expected_meta_version, meta,
                    meta->truncate_before > 0 && sv >= 0 && meta->truncate_before > sv, 0,
                    NULL);
    if (rc == EVS_ECONFLICT)
        rc = evs__err(EVS_ECONFLICT, "stream_metadata_set: the metadata of stream %s is at "
                      "version %" PRId64 ", not the expected %" PRId64 "; nothing was written",
                      stream, res[1].stream_version, expected_meta_version);
    if (rc == 0 && meta_version)
        *meta_version = res[1].stream_version;
    return evs__count_conflict(db, rc);
}

/* The stream's last version and the position of its last event. */
static int stream_last(evs_db *db, const char *tenant, const char *stream, int64_t *version,
                       uint64_t *position)
{
    evs_iter *it;
    const evs_event *ev;
    *version = EVS_NO_STREAM;
    *position = 0;
    int rc = db->ops->read_stream(&it, db, tenant, stream, EVS_END, EVS_BACKWARD, 1);
    if (rc < 0)
        return rc;
    rc = it->ops->next(&ev, it);
    if (rc == 0) {
        *version = ev->stream_version;
        *position = ev->position;
    }
    it->ops->free(it);
    return rc == EVS_ITEROVER ? 0 : rc;
}

int evs_stream_delete(uint64_t *position, evs_db *db, const char *tenant, const char *stream,
                      int64_t expected_version)
{
    int rc;
    evs__clear_error();
    if (position)
        *position = 0;
    if ((rc = check_write(db, tenant, stream, expected_version, "stream_delete")) < 0)
        return rc;
    tenant = tenant ? tenant : "";
    for (int attempt = 0; attempt < DELETE_TRIES; attempt++) {
        int64_t last, mv;
        uint64_t lastpos;
        evs_stream_metadata m;
        jbuf custom = {0};
        if ((rc = stream_last(db, tenant, stream, &last, &lastpos)) < 0)
            return rc;
        if (last == EVS__TOMBSTONE_VERSION)
            return deleted_error("stream_delete", tenant, stream);
        if (!evs__expected_ok(expected_version, last))
            return evs__count_conflict(
                db, evs__err(EVS_ECONFLICT, "stream_delete: expected version %" PRId64
                             " but stream %s is at %" PRId64 "; nothing was deleted",
                             expected_version, stream, last));
        if (last == EVS_NO_STREAM)
            return 0; /* nothing to delete */
        if ((rc = meta_read(db, tenant, stream, &m, &custom, &mv)) < 0 ||
            (rc = exact_tb(db, tenant, stream, &m)) < 0) {
            free(custom.p);
            return rc;
        }
        if (m.truncate_before > last) {
            free(custom.p);
            return 0; /* deleted already */
        }
        m.truncate_before = last + 1;
        m.custom = custom.p;
        m.custom_len = custom.n;
        /* An exact expected version: no event of the stream after the one
         * read (the $stream:NAME tag), so the delete covers exactly the
         * versions the check saw. Otherwise (EVS_ANY, EVS_STREAM_EXISTS)
         * every event committed before the delete, whoever wins a race:
         * the cache finds the version from the record's position
         * (LC_BEFORE_ME), and a busy stream cannot starve the delete. */
        char tag[sizeof(EVS_STREAM_TAG_PREFIX) + EVS_MAX_STREAM_LEN];
        snprintf(tag, sizeof(tag), "%s%s", EVS_STREAM_TAG_PREFIX, stream);
        const char *tags[1] = {tag};
        evs_query_item item = {NULL, 0, tags, 1};
        evs_append_condition cond = {{&item, 1}, lastpos};
        int exact = expected_version >= 0;
        evs_append_result res[3];
        uint64_t conflict = 0;
        rc = meta_write(res, &conflict, db, tenant, stream, mv, &m, 1,
                        exact ? 0 : LC_BEFORE_ME, exact ? &cond : NULL);
        free(custom.p);
        if (rc == 0) {
            if (position)
                *position = res[0].first_position;
            return 0;
        }
        if (rc != EVS_ECONFLICT)
            return rc;
        /* an append or a metadata change came first: look again */
        evs__clear_error();
    }
    return evs__count_conflict(db, evs__err(EVS_ECONFLICT, "stream_delete: stream %s kept "
                                            "changing during %d attempts; nothing was deleted, "
                                            "try again", stream, DELETE_TRIES));
}

int evs_stream_tombstone(uint64_t *position, evs_db *db, const char *tenant, const char *stream,
                         int64_t expected_version)
{
    int rc;
    evs__clear_error();
    if (position)
        *position = 0;
    if ((rc = check_write(db, tenant, stream, expected_version, "stream_tombstone")) < 0)
        return rc;
    tenant = tenant ? tenant : "";
    size_t sl = strlen(stream);
    jbuf data = {0};
    jputs(&data, "{\"stream\":");
    jstr(&data, stream, sl);
    jputs(&data, "}");
    if (data.oom)
        return evs__err(EVS_ENOMEM, "out of memory writing a tombstone");
    uint8_t rec[LC_REC_FIXED + EVS_MAX_STREAM_LEN];
    lc_rules r = {0, 0, 0, 1};
    evs_event_data ev[2];
    memset(ev, 0, sizeof(ev[0]));
    ev[0].type = EVS__TOMBSTONE_TYPE;
    ev[0].data = data.p;
    ev[0].data_len = data.n;
    lc_event(&ev[1], rec, &r, 0, stream, sl);
    evs_stream_append parts[2] = {
        {stream, expected_version, &ev[0], 1},
        {LC_STREAM, EVS_ANY, &ev[1], 1},
    };
    evs_append_result res[2];
    rc = lc_append(res, NULL, db, tenant, parts, 2, 1, NULL);
    free(data.p);
    if (rc == EVS_EDELETED) {
        /* tombstoned already (idempotent): its position */
        int64_t last;
        uint64_t pos;
        evs__clear_error();
        if ((rc = stream_last(db, tenant, stream, &last, &pos)) < 0)
            return rc;
        if (position)
            *position = pos;
        return 0;
    }
    if (rc == 0 && position)
        *position = res[0].first_position;
    return evs__count_conflict(db, rc);
}

/* ---- scavenge ------------------------------------------------------------------ */

typedef struct plan_build {
    evs__scavenge_stream *v;
    size_t n, cap;
    char *names; /* tenant NUL stream NUL of each entry, as offsets */
    size_t nlen, ncap;
    size_t *off;
} plan_build;

static int cmp_plan(const void *a, const void *b)
{
    const evs__scavenge_stream *x = a, *y = b;
    int c = strcmp(x->tenant, y->tenant);
    return c ? c : strcmp(x->stream, y->stream);
}

int evs_scavenge(evs_scavenge_result *out, evs_db *db, const evs_scavenge_options *opts)
{
    evs_scavenge_result res;
    int rc = 0;
    evs__clear_error();
    if (!db)
        return evs__err(EVS_EINVAL, "scavenge: db is NULL");
    if (opts && opts->version != EVS_SCAVENGE_OPTIONS_VERSION)
        return evs__err(EVS_EINVAL, "scavenge: options version %u, this library knows %d "
                        "(initialise with EVS_SCAVENGE_OPTIONS_INIT)", opts->version,
                        EVS_SCAVENGE_OPTIONS_VERSION);
    if (db->opts.flags & EVS_OPEN_READONLY)
        return evs__err(EVS_EREADONLY, "scavenge: the store is open read-only");
    memset(&res, 0, sizeof(res));
    uint64_t t0 = evs__mono_ns();
    int64_t now = now_us();

    /* every tenant's rules, synced; then one plan entry per stream whose
     * rules make something eligible */
    evs_tenant_list *tl = NULL;
    if ((rc = evs_list_tenants_capped(&tl, db, 1)) < 0)
        return rc;
    plan_build pb = {0};
    for (size_t t = 0; t < tl->count && rc == 0; t++) {
        int any;
        evs__lc *c;
        const char *tenant = tl->tenants[t].tenant;
        if ((rc = lc_sync(db, tenant, &any, &c)) < 0 || !any)
            continue;
        pthread_mutex_lock(&c->mu);
        size_t tlen = strlen(tenant);
        for (size_t i = 0; i < c->cap && rc == 0; i++) {
            lc_ent *e = &c->tab[i];
            if (!e->key || e->klen <= tlen || memcmp(e->key, tenant, tlen) != 0 ||
                e->key[tlen] != '\0')
                continue;
            const char *stream = e->key + tlen + 1;
            size_t sl = e->klen - tlen - 1;
            if (evs__grow(&pb.v, &pb.cap, pb.n + 1, sizeof(*pb.v)) < 0 ||
                evs__grow(&pb.names, &pb.ncap, pb.nlen + tlen + sl + 2, 1) < 0) {
                rc = evs__err(EVS_ENOMEM, "scavenge: out of memory");
                break;
            }
            evs__scavenge_stream *s = &pb.v[pb.n];
            memset(s, 0, sizeof(*s));
            /* names as offsets until the buffer stops moving */
            s->tenant = (const char *)(uintptr_t)pb.nlen;
            memcpy(pb.names + pb.nlen, tenant, tlen + 1);
            pb.nlen += tlen + 1;
            s->stream = (const char *)(uintptr_t)pb.nlen;
            memcpy(pb.names + pb.nlen, stream, sl);
            pb.names[pb.nlen + sl] = '\0';
            pb.nlen += sl + 1;
            s->drop_all = e->r.tombstoned;
            s->keep_from = e->r.tb; /* max_count needs the last version: below */
            s->expire_before = age_cut(&e->r, now);
            s->last_version = e->r.max_count; /* parked: resolved below */
            pb.n++;
        }
        pthread_mutex_unlock(&c->mu);
    }
    evs_tenant_list_free(tl);
    size_t keep = 0;
    for (size_t i = 0; i < pb.n && rc == 0; i++) {
        evs__scavenge_stream *s = &pb.v[i];
        s->tenant = pb.names + (uintptr_t)s->tenant;
        s->stream = pb.names + (uintptr_t)s->stream;
        int64_t max_count = s->last_version, last;
        if ((rc = db->ops->stream_version(&last, db, s->tenant, s->stream)) < 0)
            break;
        s->last_version = last;
        if (last == EVS_NO_STREAM)
            continue;
        if (!s->drop_all) {
            lc_rules r = {max_count, 0, s->keep_from, 0};
            int64_t lo = floor_of(&r, last);
            s->keep_from = lo < last ? lo : last; /* the last event stays */
            if (s->keep_from <= 0 && !s->expire_before)
                continue; /* nothing eligible */
        }
        pb.v[keep++] = *s;
    }
    if (rc == 0) {
        qsort(pb.v, keep, sizeof(*pb.v), cmp_plan);
        evs__scavenge_plan plan = {pb.v, keep, opts ? opts->progress : NULL,
                                   opts ? opts->ctx : NULL};
        res.streams = keep;
        if (keep > 0)
            rc = db->ops->scavenge(&res, db, &plan);
    }
    free(pb.v);
    free(pb.names);
    res.elapsed_us = (evs__mono_ns() - t0) / 1000;
    if (out)
        *out = res;
    return rc;
}
