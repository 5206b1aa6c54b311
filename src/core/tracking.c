/*
 * tracking.c -- tokens, tracking reads and subscriptions: validation, and
 * the tracking iterator every backend shares (the consumer-group filter,
 * the marker floor, the wait for the next commit), built on the backend's
 * reads and its two commit primitives (core/backend.h).
 */
#include "core/front.h"
#include "util/util.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* ---- consumer groups ------------------------------------------------------ */

int evs__group_owns(const evs_event *ev, uint32_t member, uint32_t size)
{
    uint64_t h;
    if (ev->stream[0]) {
        const char *id = strchr(ev->stream, '-');
        id = id ? id + 1 : ev->stream;
        h = XXH3_64bits(id, strlen(id));
    } else {
        h = XXH3_64bits(ev->id.bytes, 16);
    }
    return h % size == member;
}

/* ---- tokens ---------------------------------------------------------------- */

int evs_token_head(uint64_t *out, evs_db *db, const char *tenant)
{
    return evs_head_position(out, db, tenant);
}

int evs_token_tail(uint64_t *out, evs_db *db, const char *tenant)
{
    size_t tl;
    int rc;
    evs__clear_error();
    if ((rc = evs__check_db_out(out, db, "token_tail")) < 0 ||
        (rc = evs__check_tenant(tenant, &tl)) < 0)
        return rc;
    return db->ops->token_tail(out, db, tenant ? tenant : NULL);
}

int evs_token_at(uint64_t *out, evs_db *db, int64_t time_us)
{
    int rc;
    evs__clear_error();
    if ((rc = evs__check_db_out(out, db, "token_at")) < 0)
        return rc;
    return db->ops->token_at(out, db, time_us);
}

/* ---- tracking reads -------------------------------------------------------- */

/* A validated tracking read: category and types are folded into query. */
typedef struct evs__tracking {
    const char *tenant;     /* NULL: every tenant (then query is NULL) */
    const evs_query *query; /* NULL: every event */
    uint32_t member, size;  /* consumer group; size 0: none */
} evs__tracking;

/* A validated evs_tracking with category and types folded into a query
 * whose storage lives here. */
typedef struct tracking_plan {
    evs__tracking t;
    evs_query q;
    evs_query_item item;
    const char *cat_tag;
    char cat_buf[sizeof(EVS_CATEGORY_TAG_PREFIX) + EVS_MAX_STREAM_LEN];
} tracking_plan;

static int tracking_prepare(tracking_plan *p, const evs_tracking *t, const char *what)
{
    size_t tl;
    int rc;
    const char *why;
    memset(p, 0, sizeof(*p));
    if (!t)
        return evs__err(EVS_EINVAL, "%s: the tracking filter is NULL", what);
    if (t->version != EVS_TRACKING_VERSION)
        return evs__err(EVS_EINVAL, "%s: tracking version %u, this library knows %d "
                        "(initialise with EVS_TRACKING_INIT)", what, t->version,
                        EVS_TRACKING_VERSION);
    if (t->all_tenants && (t->tenant || t->category || t->ntypes || t->query))
        return evs__err(EVS_EINVAL, "%s: all_tenants reads every event of every tenant: "
                        "give no tenant, category, types or query with it", what);
    if ((rc = evs__check_tenant(t->tenant, &tl)) < 0)
        return rc;
    if (t->group_size > 1024)
        return evs__err(EVS_EINVAL, "%s: consumer group size %u, at most 1024", what,
                        t->group_size);
    if (t->group_member >= (t->group_size ? t->group_size : 1))
        return evs__err(EVS_EINVAL, "%s: consumer group member %u of a group of size %u; "
                        "members are numbered 0..size-1", what, t->group_member,
                        t->group_size);
    if (t->query && (t->category || t->ntypes))
        return evs__err(EVS_EINVAL, "%s: give either a query or category/types, not both "
                        "(a query item takes types and a \"%sNAME\" tag)", what,
                        EVS_CATEGORY_TAG_PREFIX);
    if (t->ntypes > EVS_MAX_QUERY_TERMS || (t->ntypes && !t->types))
        return evs__err(EVS_EINVAL, "%s: %zu types%s", what, t->ntypes,
                        t->types ? ", at most 4096" : " but types is NULL");
    for (size_t i = 0; i < t->ntypes; i++)
        if ((why = evs__name_problem(t->types[i], EVS_MAX_TYPE_LEN)))
            return evs__err(EVS_EINVAL, "%s: type %zu %s", what, i, why);
    if (t->category) {
        if ((why = evs__name_problem(t->category, EVS_MAX_STREAM_LEN)))
            return evs__err(EVS_EINVAL, "%s: category %s", what, why);
        if (strchr(t->category, '-'))
            return evs__err(EVS_EINVAL, "%s: category \"%s\" contains '-'; a category is "
                            "the part of a stream name before the first '-'", what,
                            t->category);
    }
    if (t->query && (rc = evs__check_query(t->query, what)) < 0)
        return rc;

    p->t.tenant = t->all_tenants ? NULL : t->tenant ? t->tenant : "";
    p->t.member = t->group_member;
    p->t.size = t->group_size >= 2 ? t->group_size : 0;
    p->t.query = t->query;
    if (t->category || t->ntypes) {
        p->item.types = t->types;
        p->item.ntypes = t->ntypes;
        if (t->category) {
            snprintf(p->cat_buf, sizeof(p->cat_buf), "%s%s", EVS_CATEGORY_TAG_PREFIX,
                     t->category);
            p->cat_tag = p->cat_buf;
            p->item.tags = &p->cat_tag;
            p->item.ntags = 1;
        }
        p->q.items = &p->item;
        p->q.nitems = 1;
        p->t.query = &p->q;
    }
    return 0;
}

static int timeout_deadline(int64_t timeout_us, int *wait, uint64_t *deadline_ns,
                            const char *what)
{
    if (timeout_us < 0 && timeout_us != EVS_WAIT_FOREVER)
        return evs__err(EVS_EINVAL, "%s: timeout %lld µs; give 0 (no wait), a positive "
                        "number of µs, or EVS_WAIT_FOREVER", what, (long long)timeout_us);
    *wait = timeout_us != 0;
    *deadline_ns = 0;
    if (timeout_us > 0) {
        uint64_t now = evs__mono_ns();
        /* beyond ~580 years from boot is "forever" */
        if ((uint64_t)timeout_us < (UINT64_MAX - now) / 1000u)
            *deadline_ns = now + (uint64_t)timeout_us * 1000u;
    }
    return 0;
}

/*
 * The tracking iterator: a backend's forward read ($all of a tenant or of
 * every tenant, or a DCB query) after the token, wrapped with what makes
 * it a tracking read on every backend alike:
 *  - the consumer-group filter: only the events the member owns are
 *    returned, and only they count against the limit (the backend's read
 *    then runs without a limit);
 *  - the marker floor: the marker never goes below `after`, the token the
 *    read continued from (a backend read's marker is its lower bound
 *    before the first event);
 *  - the first event read ahead, so that a read that must wait knows
 *    whether anything is there.
 */
typedef struct trk_iter {
    evs_iter base;
    evs_iter *inner;
    const evs_event *peek;  /* read ahead, not yet returned (inner's) */
    uint64_t floor;
    uint64_t left;          /* events still to return; UINT64_MAX: no limit */
    uint32_t member, size;  /* consumer group; size 0: none */
} trk_iter;

static int trk_next(const evs_event **ev, evs_iter *base)
{
    trk_iter *it = (trk_iter *)base;
    if (it->peek) {
        *ev = it->peek;
        it->peek = NULL;
        return 0;
    }
    if (it->left == 0)
        return EVS_ITEROVER;
    for (;;) {
        int rc = it->inner->ops->next(ev, it->inner);
        if (rc != 0)
            return rc;
        if (!it->size || evs__group_owns(*ev, it->member, it->size)) {
            if (it->left != UINT64_MAX)
                it->left--;
            return 0;
        }
    }
}

static int trk_marker(uint64_t *out, const evs_iter *base)
{
    const trk_iter *it = (const trk_iter *)base;
    int rc = it->inner->ops->marker(out, it->inner);
    if (rc == 0 && *out < it->floor)
        *out = it->floor;
    return rc;
}

static void trk_free(evs_iter *base)
{
    trk_iter *it = (trk_iter *)base;
    it->inner->ops->free(it->inner);
    free(it);
}

static const evs__iter_ops trk_ops = {
    .next = trk_next,
    .marker = trk_marker,
    .free = trk_free,
};

/* Open one tracking iterator and read its first event ahead. *got: 1 when
 * there is one (or the read failed: then the error is returned). */
static int trk_open(trk_iter **out, evs_db *db, const evs__tracking *t, uint64_t after,
                    uint64_t limit, int *got)
{
    trk_iter *it = calloc(1, sizeof(*it));
    if (!it)
        return evs__err(EVS_ENOMEM, "out of memory creating a tracking iterator");
    it->base.ops = &trk_ops;
    it->base.db = db;
    it->floor = after;
    it->left = limit ? limit : UINT64_MAX;
    it->member = t->member;
    it->size = t->size;
    /* a bounded read is a subscription's batch: its events must outlive
     * the next step (EVS__READ_RETAIN); with a group filter the limit is
     * counted here */
    uint64_t inner_limit = t->size ? 0 : limit;
    unsigned flags = limit ? EVS__READ_RETAIN : 0;
    int rc = t->query ? evs__lc_read_query(&it->inner, db, t->tenant, t->query, after,
                                           EVS_FORWARD, inner_limit, flags)
                      : evs__lc_read_all(&it->inner, db, t->tenant,
                                         after == UINT64_MAX ? after : after + 1,
                                         inner_limit, flags);
    if (rc < 0) {
        free(it);
        return rc;
    }
    const evs_event *ev;
    rc = trk_next(&ev, &it->base);
    if (rc < 0 && rc != EVS_ITEROVER) {
        trk_free(&it->base);
        return rc;
    }
    *got = rc == 0;
    if (rc == 0)
        it->peek = ev; /* counted against the limit already */
    *out = it;
    return 0;
}

/*
 * A tracking read: read ahead one event; when there is none and the caller
 * waits, wait for the next commit and look again from the head of the
 * snapshot that found nothing (so commits of events that do not match
 * keep the reader waiting, and nothing is scanned twice). The commit
 * number is taken before each look, so a commit between the look and the
 * wait ends the wait at once (no wake-up is lost). wait 0: never;
 * deadline_ns: CLOCK_MONOTONIC, 0 = none; cancel may be NULL.
 */
static int read_tracking(evs_iter **out, evs_db *db, const evs__tracking *t, uint64_t after,
                         uint64_t limit, int wait, uint64_t deadline_ns,
                         const _Atomic int *cancel)
{
    for (;;) {
        uint64_t seq = 0;
        int rc, got;
        trk_iter *it = NULL;
        /* A handle that cannot wait (a read-only open of a store it cannot
         * write) still returns what there is; it fails when it would wait. */
        int cannot_wait = wait && db->ops->commit_seq(&seq, db) < 0;
        if ((rc = trk_open(&it, db, t, after, limit, &got)) < 0)
            return rc;
        if (got || !wait || (cancel && atomic_load(cancel)) ||
            (deadline_ns && evs__mono_ns() >= deadline_ns)) {
            if (cannot_wait)
                evs__clear_error(); /* commit_seq's message: nothing failed */
            *out = &it->base;
            return 0;
        }
        uint64_t head;
        if (it->inner->ops->marker(&head, it->inner) == 0 && head > after)
            after = head; /* exhausted: the head of its snapshot */
        trk_free(&it->base);
        if (cannot_wait) {
            if ((rc = db->ops->commit_seq(&seq, db)) < 0)
                return rc; /* its error again */
            continue;      /* it can now: look again */
        }
        if ((rc = db->ops->wait_commit(db, seq, deadline_ns, cancel)) < 0)
            return rc;
    }
}

int evs_read_tracking(evs_iter **out, evs_db *db, const evs_tracking *t, uint64_t after,
                      uint64_t limit, int64_t timeout_us)
{
    tracking_plan p;
    int rc, wait = 0;
    uint64_t deadline = 0;
    evs__clear_error();
    if (!out)
        return evs__err(EVS_EINVAL, "read_tracking: out is NULL");
    *out = NULL;
    if (!db)
        return evs__err(EVS_EINVAL, "read_tracking: db is NULL");
    if ((rc = tracking_prepare(&p, t, "read_tracking")) < 0 ||
        (rc = timeout_deadline(timeout_us, &wait, &deadline, "read_tracking")) < 0)
        return rc;
    return read_tracking(out, db, &p.t, after, limit, wait, deadline, NULL);
}

/* ---- subscriptions --------------------------------------------------------- */

struct evs_subscription {
    evs_db *db;
    tracking_plan plan;
    void *copy;              /* one block: tenant, category, types, query */
    char *checkpoint;
    uint32_t every_ms, batch;
    uint64_t start;
    evs_subscription_fn fn;
    void *ctx;
    pthread_t thread;
    _Atomic int stop;
    _Atomic uint64_t token;
    int result;
    char msg[1024];
};

/* Deep copy of what the filter points to (the caller's memory is only
 * borrowed for the duration of evs_subscribe). */
static int tracking_copy(evs_tracking *dst, void **block, const evs_tracking *t)
{
    size_t n = 0, nitems = t->query ? t->query->nitems : 0, nptr = t->ntypes;
#define ADD_STR(s) (n += (s) ? strlen(s) + 1 : 0)
    ADD_STR(t->tenant);
    ADD_STR(t->category);
    for (size_t i = 0; i < t->ntypes; i++)
        ADD_STR(t->types[i]);
    for (size_t i = 0; i < nitems; i++) {
        const evs_query_item *it = &t->query->items[i];
        nptr += it->ntypes + it->ntags;
        for (size_t j = 0; j < it->ntypes; j++)
            ADD_STR(it->types[j]);
        for (size_t j = 0; j < it->ntags; j++)
            ADD_STR(it->tags[j]);
    }
#undef ADD_STR
    size_t head = sizeof(evs_query) + nitems * sizeof(evs_query_item) +
                  nptr * sizeof(char *);
    char *b = malloc(head + n + 1);
    if (!b)
        return evs__err(EVS_ENOMEM, "subscribe: out of memory");
    evs_query *q = (evs_query *)b;
    evs_query_item *items = (evs_query_item *)(q + 1);
    const char **ptrs = (const char **)(items + nitems);
    char *txt = b + head;
#define COPY_STR(dst_, s)                                                    \
    do {                                                                     \
        if (s) {                                                             \
            size_t l_ = strlen(s) + 1;                                       \
            memcpy(txt, s, l_);                                              \
            (dst_) = txt;                                                    \
            txt += l_;                                                       \
        }                                                                    \
    } while (0)
    *dst = *t;
    COPY_STR(dst->tenant, t->tenant);
    COPY_STR(dst->category, t->category);
    if (t->ntypes) {
        dst->types = ptrs;
        for (size_t i = 0; i < t->ntypes; i++)
            COPY_STR(*ptrs++, t->types[i]);
    }
    if (t->query) {
        q->items = items;
        q->nitems = nitems;
        for (size_t i = 0; i < nitems; i++) {
            const evs_query_item *it = &t->query->items[i];
            items[i] = *it;
            items[i].types = ptrs;
            for (size_t j = 0; j < it->ntypes; j++)
                COPY_STR(*ptrs++, it->types[j]);
            items[i].tags = ptrs;
            for (size_t j = 0; j < it->ntags; j++)
                COPY_STR(*ptrs++, it->tags[j]);
        }
        dst->query = q;
    }
#undef COPY_STR
    *block = b;
    return 0;
}

static void sub_fail(evs_subscription *sub, int rc)
{
    sub->result = rc;
    snprintf(sub->msg, sizeof(sub->msg), "%s", evs_last_error());
}

static void *sub_main(void *arg)
{
    evs_subscription *sub = arg;
    evs_db *db = sub->db;
    const evs_event **evp = malloc(sub->batch * sizeof(*evp));
    evs_event *evs = malloc(sub->batch * sizeof(*evs));
    size_t *tag_off = malloc(sub->batch * sizeof(*tag_off));
    const char **tags = NULL;
    size_t tags_cap = 0;
    uint64_t token = sub->start, stored = sub->start, last_store = evs__mono_ns();
    const char *tenant = sub->plan.t.tenant;
    int rc = 0;
    if (!evp || !evs || !tag_off) {
        rc = evs__err(EVS_ENOMEM, "subscription: out of memory");
        sub_fail(sub, rc);
        goto out;
    }
    while (!atomic_load(&sub->stop)) {
        evs_iter *it;
        const evs_event *ev;
        size_t n = 0, ntags = 0;
        rc = read_tracking(&it, db, &sub->plan.t, token, sub->batch, 1, 0, &sub->stop);
        if (rc < 0) {
            sub_fail(sub, rc);
            break;
        }
        /* The event structs and tag arrays are the iterator's and change
         * with every step: copy them (the strings and data they point to
         * stay valid until the iterator is freed). */
        while ((rc = evs_iter_next(&ev, it)) == 0) {
            evs[n] = *ev;
            if (evs__grow(&tags, &tags_cap, ntags + ev->ntags + 1, sizeof(*tags)) < 0) {
                rc = evs__err(EVS_ENOMEM, "subscription: out of memory");
                break;
            }
            if (ev->ntags)
                memcpy(tags + ntags, ev->tags, ev->ntags * sizeof(*tags));
            tag_off[n++] = ntags;
            ntags += ev->ntags;
        }
        if (rc != EVS_ITEROVER) {
            sub_fail(sub, rc);
            evs_iter_free(it);
            break;
        }
        uint64_t next;
        evs_iter_marker(&next, it);
        for (size_t i = 0; i < n; i++) {
            evs[i].tags = tags + tag_off[i];
            evp[i] = &evs[i];
        }
        int cb = n ? sub->fn(sub->ctx, evp, n, next) : 0;
        evs_iter_free(it);
        if (cb != 0) { /* the batch is not acknowledged */
            sub->result = cb;
            snprintf(sub->msg, sizeof(sub->msg), "the subscription's callback stopped it "
                     "with %d", cb);
            break;
        }
        token = next;
        atomic_store(&sub->token, token);
        if (sub->checkpoint && token > stored &&
            (sub->every_ms == 0 ||
             evs__mono_ns() - last_store >= (uint64_t)sub->every_ms * 1000000u)) {
            if ((rc = evs_checkpoint_set(db, tenant, sub->checkpoint, token)) < 0) {
                sub_fail(sub, rc);
                break;
            }
            stored = token;
            last_store = evs__mono_ns();
        }
    }
    /* the batches accepted so far are done, however the run ended */
    if (sub->checkpoint && token > stored &&
        (rc = evs_checkpoint_set(db, tenant, sub->checkpoint, token)) < 0 && sub->result == 0)
        sub_fail(sub, rc);
out:
    free(evp);
    free(evs);
    free(tag_off);
    free(tags);
    return NULL;
}

int evs_subscribe(evs_subscription **out, evs_db *db, const evs_subscription_options *opts,
                  evs_subscription_fn fn, void *ctx)
{
    int rc;
    evs__clear_error();
    if (!out)
        return evs__err(EVS_EINVAL, "subscribe: out is NULL");
    *out = NULL;
    if (!db || !opts || !fn)
        return evs__err(EVS_EINVAL, "subscribe: %s is NULL",
                        !db ? "db" : !opts ? "opts" : "fn");
    if (opts->version != EVS_SUBSCRIPTION_OPTIONS_VERSION)
        return evs__err(EVS_EINVAL, "subscribe: options version %u, this library knows %d "
                        "(initialise with EVS_SUBSCRIPTION_OPTIONS_INIT)", opts->version,
                        EVS_SUBSCRIPTION_OPTIONS_VERSION);
    tracking_plan check;
    if ((rc = tracking_prepare(&check, &opts->filter, "subscribe")) < 0)
        return rc;
    if (opts->checkpoint) {
        char stream[sizeof(EVS__CHECKPOINT_PREFIX) + EVS_MAX_CHECKPOINT_NAME_LEN];
        if ((rc = evs__checkpoint_stream(stream, sizeof(stream), opts->checkpoint,
                                    "subscribe")) < 0)
            return rc;
        if (opts->filter.all_tenants)
            return evs__err(EVS_EINVAL, "subscribe: a checkpoint belongs to a tenant; "
                            "an all_tenants subscription cannot have one");
        if (db->opts.flags & EVS_OPEN_READONLY)
            return evs__err(EVS_EREADONLY, "subscribe: checkpoint \"%s\" cannot be stored: "
                            "the store is open read-only", opts->checkpoint);
    }
    if (opts->batch_size > 1000000)
        return evs__err(EVS_EINVAL, "subscribe: batch_size %u, at most 1000000",
                        opts->batch_size);
    evs_subscription *sub = calloc(1, sizeof(*sub));
    if (!sub)
        return evs__err(EVS_ENOMEM, "subscribe: out of memory");
    evs_tracking t;
    if ((rc = tracking_copy(&t, &sub->copy, &opts->filter)) < 0)
        goto fail;
    if ((rc = tracking_prepare(&sub->plan, &t, "subscribe")) < 0)
        goto fail;
    sub->db = db;
    sub->fn = fn;
    sub->ctx = ctx;
    sub->every_ms = opts->checkpoint_every_ms;
    sub->batch = opts->batch_size ? opts->batch_size : 256;
    sub->start = opts->from;
    if (opts->checkpoint) {
        uint64_t stored;
        if (!(sub->checkpoint = strdup(opts->checkpoint))) {
            rc = evs__err(EVS_ENOMEM, "subscribe: out of memory");
            goto fail;
        }
        rc = evs_checkpoint_get(&stored, db, t.tenant, opts->checkpoint);
        if (rc == 0)
            sub->start = stored;
        else if (rc != EVS_ENOTFOUND)
            goto fail;
        evs__clear_error();
    }
    atomic_store(&sub->token, sub->start);
    if (pthread_create(&sub->thread, NULL, sub_main, sub) != 0) {
        rc = evs__err(EVS_ENOMEM, "subscribe: cannot start a thread");
        goto fail;
    }
    *out = sub;
    return 0;
fail:
    free(sub->checkpoint);
    free(sub->copy);
    free(sub);
    return rc;
}

void evs_subscription_stop(evs_subscription *sub)
{
    if (!sub)
        return;
    atomic_store(&sub->stop, 1);
    sub->db->ops->wake_readers(sub->db);
}

uint64_t evs_subscription_token(const evs_subscription *sub)
{
    return sub ? atomic_load(&((evs_subscription *)sub)->token) : 0;
}

int evs_subscription_free(evs_subscription *sub)
{
    if (!sub)
        return 0;
    evs_subscription_stop(sub);
    pthread_join(sub->thread, NULL);
    int rc = sub->result;
    if (rc != 0)
        evs__set_error_text(sub->msg);
    else
        evs__clear_error();
    free(sub->checkpoint);
    free(sub->copy);
    free(sub);
    return rc;
}
