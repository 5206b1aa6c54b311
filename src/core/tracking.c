/*
 * tracking.c -- tokens, tracking reads, subscriptions, checkpoints and
 * snapshots: validation and the backend-independent parts (issue 4).
 *
 * Checkpoints are events of a system stream, "$checkpoint-NAME", in the
 * consumer's tenant: that makes them as durable as events and lets an
 * append carry a checkpoint update in the same atomic commit (one more
 * part, with the checkpoint stream's version as expected version). The
 * backends keep system events out of every tenant read and query.
 */
#include "core/front.h"
#include "util/util.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define CHECKPOINT_PREFIX "$checkpoint-"
#define CHECKPOINT_TYPE "$checkpoint"

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

static int check_db_out(const void *out, const evs_db *db, const char *what)
{
    if (!out || !db)
        return evs__err(EVS_EINVAL, "%s: %s is NULL", what, out ? "db" : "out");
    return 0;
}

int evs_token_head(uint64_t *out, evs_db *db, const char *tenant)
{
    return evs_head_position(out, db, tenant);
}

int evs_token_tail(uint64_t *out, evs_db *db, const char *tenant)
{
    size_t tl;
    int rc;
    evs__clear_error();
    if ((rc = check_db_out(out, db, "token_tail")) < 0 ||
        (rc = evs__check_tenant(tenant, &tl)) < 0)
        return rc;
    return db->ops->token_tail(out, db, tenant ? tenant : NULL);
}

int evs_token_at(uint64_t *out, evs_db *db, int64_t time_us)
{
    int rc;
    evs__clear_error();
    if ((rc = check_db_out(out, db, "token_at")) < 0)
        return rc;
    return db->ops->token_at(out, db, time_us);
}

/* ---- tracking reads -------------------------------------------------------- */

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
    return db->ops->read_tracking(out, db, &p.t, after, limit, wait, deadline, NULL);
}

/* ---- checkpoints ----------------------------------------------------------- */

static int checkpoint_stream(char *buf, size_t cap, const char *name, const char *what)
{
    /* evs__name_problem's length message says 256: check the length here */
    if (name && strnlen(name, EVS_MAX_CHECKPOINT_NAME_LEN + 1) > EVS_MAX_CHECKPOINT_NAME_LEN)
        return evs__err(EVS_EINVAL, "%s: checkpoint name is longer than %d bytes", what,
                        EVS_MAX_CHECKPOINT_NAME_LEN);
    const char *why = evs__name_problem(name, EVS_MAX_CHECKPOINT_NAME_LEN);
    if (why)
        return evs__err(EVS_EINVAL, "%s: checkpoint name %s", what, why);
    snprintf(buf, cap, "%s%s", CHECKPOINT_PREFIX, name);
    return 0;
}

/* The stored token (*found 0 when none) and the checkpoint stream's
 * version (EVS_NO_STREAM when none). */
static int checkpoint_read(evs_db *db, const char *tenant, const char *stream,
                           uint64_t *token, int64_t *version, int *found)
{
    evs_iter *it;
    const evs_event *ev;
    *found = 0;
    *token = 0;
    *version = EVS_NO_STREAM;
    int rc = db->ops->read_stream(&it, db, tenant, stream, EVS_END, EVS_BACKWARD, 1);
    if (rc < 0)
        return rc;
    rc = db->ops->iter_next(&ev, it);
    if (rc == 0) {
        if (ev->data_len != 8 || strcmp(ev->type, CHECKPOINT_TYPE) != 0) {
            rc = evs__err(EVS_ECORRUPT, "checkpoint stream %s: its last event (position %"
                          PRIu64 ") is not a checkpoint", stream, ev->position);
        } else {
            *token = evs__get_le64(ev->data);
            *version = ev->stream_version;
            *found = 1;
        }
    } else if (rc == EVS_ITEROVER) {
        rc = 0;
    }
    db->ops->iter_free(it);
    return rc;
}

int evs_checkpoint_get(uint64_t *out, evs_db *db, const char *tenant, const char *name)
{
    char stream[sizeof(CHECKPOINT_PREFIX) + EVS_MAX_CHECKPOINT_NAME_LEN];
    size_t tl;
    int64_t version;
    int found, rc;
    evs__clear_error();
    if ((rc = check_db_out(out, db, "checkpoint_get")) < 0 ||
        (rc = evs__check_tenant(tenant, &tl)) < 0 ||
        (rc = checkpoint_stream(stream, sizeof(stream), name, "checkpoint_get")) < 0)
        return rc;
    if ((rc = checkpoint_read(db, tenant ? tenant : "", stream, out, &version, &found)) < 0)
        return rc;
    if (!found)
        return evs__err(EVS_ENOTFOUND, "checkpoint \"%s\" is not stored in tenant \"%s\"",
                        name, tenant ? tenant : "");
    return 0;
}

/* Can the checkpoint move to token? 0: yes, 1: it is there already. */
static int checkpoint_allowed(evs_db *db, const char *name, uint64_t token, int found,
                              uint64_t stored, const char *what)
{
    uint64_t head;
    int rc;
    if (found && token < stored)
        return evs__err(EVS_EINVAL, "%s: checkpoint \"%s\" is at %" PRIu64 "; it may only "
                        "move forward, not back to %" PRIu64, what, name, stored, token);
    if (found && token == stored)
        return 1;
    if ((rc = db->ops->head_position(&head, db, NULL)) < 0)
        return rc;
    if (token > head)
        return evs__err(EVS_EINVAL, "%s: token %" PRIu64 " for checkpoint \"%s\" is beyond "
                        "the store's head (%" PRIu64 ")", what, token, name, head);
    return 0;
}

/* The event that records a checkpoint: 8 bytes, the token (LE). */
static void checkpoint_event(evs_event_data *e, uint8_t data[8], uint64_t token)
{
    memset(e, 0, sizeof(*e));
    evs__put_le64(data, token);
    e->type = CHECKPOINT_TYPE;
    e->data = data;
    e->data_len = 8;
    e->content_type = EVS_CONTENT_BINARY;
}

int evs_checkpoint_set(evs_db *db, const char *tenant, const char *name, uint64_t token)
{
    char stream[sizeof(CHECKPOINT_PREFIX) + EVS_MAX_CHECKPOINT_NAME_LEN];
    size_t tl;
    int rc;
    evs__clear_error();
    if (!db)
        return evs__err(EVS_EINVAL, "checkpoint_set: db is NULL");
    if (db->opts.flags & EVS_OPEN_READONLY)
        return evs__err(EVS_EREADONLY, "checkpoint_set: the store is open read-only");
    if ((rc = evs__check_tenant(tenant, &tl)) < 0 ||
        (rc = checkpoint_stream(stream, sizeof(stream), name, "checkpoint_set")) < 0)
        return rc;
    tenant = tenant ? tenant : "";
    /* Optimistic: a concurrent setter makes the append conflict; then look
     * again (a higher token stored meanwhile makes ours a backward move). */
    for (int attempt = 0;; attempt++) {
        uint64_t stored;
        int64_t version;
        int found;
        if ((rc = checkpoint_read(db, tenant, stream, &stored, &version, &found)) < 0)
            return rc;
        if ((rc = checkpoint_allowed(db, name, token, found, stored, "checkpoint_set")) != 0)
            return rc > 0 ? 0 : rc;
        evs_event_data e;
        uint8_t data[8];
        checkpoint_event(&e, data, token);
        evs_stream_append part = {stream, version, &e, 1};
        evs_append_request r = EVS_APPEND_REQUEST_INIT;
        r.tenant = tenant;
        r.parts = &part;
        r.nparts = 1;
        rc = evs__append_ex(NULL, NULL, db, &r, 1);
        if (rc != EVS_ECONFLICT || attempt >= 1000)
            return rc;
    }
}

/* The id of the checkpoint event of a checkpointed append whose first
 * event has a caller-given id: derived from that id and the checkpoint's
 * name, so that a retry of the whole request (same ids) is recognised as
 * one and answered from the stored events. A UUIDv8 (RFC 9562). */
static void checkpoint_event_id(evs_uuid *out, const evs_uuid *first, const char *name)
{
    uint8_t buf[16 + EVS_MAX_CHECKPOINT_NAME_LEN];
    size_t n = strlen(name);
    memcpy(buf, first->bytes, 16);
    memcpy(buf + 16, name, n);
    XXH128_hash_t h = XXH3_128bits(buf, 16 + n);
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, h);
    memcpy(out->bytes, c.digest, 16);
    out->bytes[6] = (uint8_t)((out->bytes[6] & 0x0f) | 0x80);
    out->bytes[8] = (uint8_t)((out->bytes[8] & 0x3f) | 0x80);
}

/*
 * An append with a checkpoint update: the caller's parts plus one part
 * that appends the checkpoint event to "$checkpoint-NAME" with the version
 * read here as expected version, so that a concurrent move of the
 * checkpoint fails the whole append. The part is added also when the
 * token equals the stored one: it is what guards the append.
 */
int evs__append_checkpointed(evs_append_result *out, uint64_t *conflicts, evs_db *db,
                             const evs_append_request *r)
{
    char stream[sizeof(CHECKPOINT_PREFIX) + EVS_MAX_CHECKPOINT_NAME_LEN];
    size_t tl;
    uint64_t stored, pos;
    int64_t version;
    int found, rc, retry = 0;
    if (db->opts.flags & EVS_OPEN_READONLY)
        return evs__err(EVS_EREADONLY, "append: the store is open read-only");
    if ((rc = evs__check_tenant(r->tenant, &tl)) < 0 ||
        (rc = checkpoint_stream(stream, sizeof(stream), r->checkpoint, "append")) < 0)
        return rc;
    if (!r->parts || r->nparts == 0 || r->nparts > 65536 || !r->parts[0].events ||
        r->parts[0].nevents == 0)
        return evs__err(EVS_EINVAL, "append: no events to append (give 1..65536 parts of "
                        "at least one event)");
    const char *tenant = r->tenant ? r->tenant : "";
    const evs_uuid *first = &r->parts[0].events[0].id;
    if ((rc = checkpoint_read(db, tenant, stream, &stored, &version, &found)) < 0)
        return rc;
    /* A retry (its first event is stored) is answered from the stored
     * events, whatever the checkpoint has done since. */
    if (!evs_uuid_is_nil(first)) {
        rc = db->ops->event_position(&pos, db, first);
        if (rc == 0)
            retry = 1;
        else if (rc != EVS_ENOTFOUND)
            return rc;
    }
    if (!retry &&
        (rc = checkpoint_allowed(db, r->checkpoint, r->checkpoint_token, found, stored,
                                 "append")) < 0)
        return rc;

    evs_stream_append *parts = malloc((r->nparts + 1) * sizeof(*parts));
    evs_append_result *res = malloc((r->nparts + 1) * sizeof(*res));
    if (!parts || !res) {
        free(parts);
        free(res);
        return evs__err(EVS_ENOMEM, "append: out of memory");
    }
    evs_event_data e;
    uint8_t data[8];
    checkpoint_event(&e, data, r->checkpoint_token);
    if (!evs_uuid_is_nil(first))
        checkpoint_event_id(&e.id, first, r->checkpoint);
    memcpy(parts, r->parts, r->nparts * sizeof(*parts));
    parts[r->nparts] = (evs_stream_append){stream, version, &e, 1};
    evs_append_request r2 = *r;
    r2.checkpoint = NULL;
    r2.parts = parts;
    r2.nparts = r->nparts + 1;
    rc = evs__append_ex(res, conflicts, db, &r2, 1);
    if (rc == EVS_ECONFLICT && res[r->nparts].status == EVS_ECONFLICT)
        rc = evs__err(EVS_ECONFLICT, "checkpoint \"%s\" was moved by another writer while "
                      "this append was prepared; nothing was written (read it again and "
                      "retry); %s", r->checkpoint, evs_last_error());
    if (out)
        memcpy(out, res, r->nparts * sizeof(*out));
    free(parts);
    free(res);
    return rc;
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
        rc = db->ops->read_tracking(&it, db, &sub->plan.t, token, sub->batch, 1, 0,
                                    &sub->stop);
        if (rc < 0) {
            sub_fail(sub, rc);
            break;
        }
        /* The event structs and tag arrays are the iterator's and change
         * with every step: copy them (the strings and data they point to
         * stay valid until the iterator is freed). */
        while ((rc = db->ops->iter_next(&ev, it)) == 0) {
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
            db->ops->iter_free(it);
            break;
        }
        uint64_t next;
        db->ops->iter_marker(&next, it);
        for (size_t i = 0; i < n; i++) {
            evs[i].tags = tags + tag_off[i];
            evp[i] = &evs[i];
        }
        int cb = n ? sub->fn(sub->ctx, evp, n, next) : 0;
        db->ops->iter_free(it);
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
        char stream[sizeof(CHECKPOINT_PREFIX) + EVS_MAX_CHECKPOINT_NAME_LEN];
        if ((rc = checkpoint_stream(stream, sizeof(stream), opts->checkpoint,
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

/* ---- snapshots ------------------------------------------------------------- */

static int snapshot_args(evs_db *db, const char *tenant, const char *stream,
                         const char *what)
{
    size_t tl;
    const char *why;
    int rc;
    if (!db)
        return evs__err(EVS_EINVAL, "%s: db is NULL", what);
    if ((rc = evs__check_tenant(tenant, &tl)) < 0)
        return rc;
    if ((why = evs__name_problem(stream, EVS_MAX_STREAM_LEN)))
        return evs__err(EVS_EINVAL, "%s: stream name %s", what, why);
    return 0;
}

int evs_snapshot_save(evs_db *db, const char *tenant, const char *stream, int64_t version,
                      const char *schema, const void *data, size_t data_len)
{
    const char *why;
    int rc;
    evs__clear_error();
    if ((rc = snapshot_args(db, tenant, stream, "snapshot_save")) < 0)
        return rc;
    if (db->opts.flags & EVS_OPEN_READONLY)
        return evs__err(EVS_EREADONLY, "snapshot_save: the store is open read-only");
    if ((why = evs__name_problem(schema, EVS_MAX_TYPE_LEN)))
        return evs__err(EVS_EINVAL, "snapshot_save: schema name %s", why);
    if (version < 0)
        return evs__err(EVS_EINVAL, "snapshot_save: version %lld; a snapshot is taken at "
                        "a stream version >= 0", (long long)version);
    if (!data && data_len)
        return evs__err(EVS_EINVAL, "snapshot_save: data is NULL but data_len is %zu",
                        data_len);
    if (data_len > EVS_MAX_SNAPSHOT_SIZE)
        return evs__err(EVS_ETOOBIG, "snapshot_save: %zu bytes, at most %u", data_len,
                        EVS_MAX_SNAPSHOT_SIZE);
    return db->ops->snapshot_save(db, tenant ? tenant : "", stream, version, schema, data,
                                  data_len);
}

int evs_snapshot_load(evs_snapshot **out, evs_db *db, const char *tenant,
                      const char *stream, int64_t max_version)
{
    int rc;
    evs__clear_error();
    if (!out)
        return evs__err(EVS_EINVAL, "snapshot_load: out is NULL");
    *out = NULL;
    if ((rc = snapshot_args(db, tenant, stream, "snapshot_load")) < 0)
        return rc;
    if (max_version < 0 && max_version != EVS_END)
        return evs__err(EVS_EINVAL, "snapshot_load: max_version %lld; give a version >= 0 "
                        "or EVS_END", (long long)max_version);
    return db->ops->snapshot_load(out, db, tenant ? tenant : "", stream, max_version);
}

void evs_snapshot_free(evs_snapshot *snap)
{
    free(snap);
}

int evs_aggregate_load(evs_snapshot **snap, evs_iter **events, evs_db *db,
                       const char *tenant, const char *stream)
{
    int rc;
    evs__clear_error();
    if (!snap || !events)
        return evs__err(EVS_EINVAL, "aggregate_load: %s is NULL", snap ? "events" : "snap");
    *snap = NULL;
    *events = NULL;
    if ((rc = snapshot_args(db, tenant, stream, "aggregate_load")) < 0)
        return rc;
    tenant = tenant ? tenant : "";
    rc = db->ops->snapshot_load(snap, db, tenant, stream, EVS_END);
    if (rc == EVS_ENOTFOUND) {
        evs__clear_error();
        rc = 0;
    }
    if (rc < 0)
        return rc;
    int64_t from = *snap ? (*snap)->version + 1 : 0;
    if ((rc = db->ops->read_stream(events, db, tenant, stream, from, EVS_FORWARD, 0)) < 0) {
        evs_snapshot_free(*snap);
        *snap = NULL;
    }
    return rc;
}
