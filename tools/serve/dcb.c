/*
 * dcb.c -- umadb.v1.DCB, UmaDB's DCB API, on evstore's public API
 * (docs/SERVER.md, "UmaDB's DCB API", has the mapping):
 *
 *   Read        evs_read_query, batch by batch (one message in flight)
 *   Subscribe   evs_read_query from `after`, then parked in notify.c until
 *               a commit passes the head the read saw
 *   Append      evs_append_ex: events of no stream, the condition, the
 *               tracking info as an external checkpoint (same commit)
 *   Head        evs_head_position of the request's tenant
 *   GetTrackingInfo  evs_checkpoint_get
 *
 * Events: UmaDB's data bytes are stored as EVS_CONTENT_BINARY, exactly;
 * its metadata (key/value strings) as a JSON object in evstore's
 * metadata; a uuid "" lets the store assign one.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "gcall.h"
#include "umadb_wire.pb-c.h"

/* Events per response: UmaDB's default and maximum batch_size. */
#define BATCH_DEFAULT 1024u
#define BATCH_MAX 4096u

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

/* Fail the call with the status and UmaDB error type for a library
 * error, and the library's message. */
static void fail_lib(gcall *c, int rc, const char *what)
{
    int code, type;
    switch (rc) {
    case EVS_ECONFLICT:
    case EVS_EDUPLICATE:
    case EVS_EDELETED: /* a tombstoned stream: KurrentDB's StreamDeleted is
                          FAILED_PRECONDITION too */
        code = GS_FAILED_PRECONDITION;
        type = UMA_INTEGRITY;
        break;
    case EVS_EINVAL:
    case EVS_ETOOBIG:
        code = GS_INVALID_ARGUMENT;
        type = UMA_INVALID_ARGUMENT;
        break;
    case EVS_ECORRUPT:
        code = GS_DATA_LOSS;
        type = UMA_CORRUPTION;
        break;
    case EVS_ENOSPC:
    case EVS_ENOMEM:
        code = GS_RESOURCE_EXHAUSTED;
        type = UMA_IO;
        break;
    case EVS_EREADONLY:
        code = GS_FAILED_PRECONDITION;
        type = UMA_IO;
        break;
    case EVS_ECLOSED:
    case EVS_EBUSY:
    case EVS_EBACKEND:
    case EVS_EIO:
        code = GS_UNAVAILABLE;
        type = UMA_IO;
        break;
    default:
        code = GS_INTERNAL;
        type = UMA_INTERNAL;
        break;
    }
    const char *detail = evs_last_error();
    gcall_fail(c, code, type, "%s: %s", what, detail && *detail ? detail : evs_strerror(rc));
}

/* A request that did not unpack. */
static void fail_unpack(gcall *c, const char *method, const char *message)
{
    gcall_fail(c, GS_INVALID_ARGUMENT, UMA_SERIALIZATION,
               "%s: the request is not a valid umadb.v1.%s message (or one that decodes into "
               "more than 16 times its size)", method, message);
}

/* The end of a streaming call the client left, or the server stopping. */
static void fail_done(gcall *c)
{
    if (atomic_load(&gcall_serve(c)->stopping))
        gcall_fail(c, GS_UNAVAILABLE, UMA_IO,
                   "the server is shutting down; resume from your last position on "
                   "another server or after it restarts");
    else
        gcall_fail(c, GS_CANCELLED, -1, "cancelled by the client");
}

/* ------------------------------------------------------------------ */
/* Events out: evs_event -> SequencedEvent                             */
/* ------------------------------------------------------------------ */

/* A batch's messages and the bytes they point to, freed together: a bump
 * arena of 64 KiB chunks (a catch-up builds thousands of small structs a
 * batch; one malloc each was most of the server's CPU there). */
typedef struct batch {
    Umadb__Wire__SequencedEvent **seq;
    size_t n, cap;
    size_t bytes;      /* payload bytes so far (the message-size cap) */
    void **blocks;     /* the arena's chunks */
    size_t nblocks, capblocks;
    char *cur;         /* free space of the current chunk */
    size_t left;
} batch;

#define ARENA_CHUNK ((size_t)64 << 10)

/* n zeroed bytes, aligned for any struct, alive until batch_free. */
static void *balloc(batch *b, size_t n)
{
    n = n ? (n + 15) & ~(size_t)15 : 16;
    if (b->left < n) {
        if (b->nblocks == b->capblocks) {
            size_t nc = b->capblocks ? b->capblocks * 2 : 16;
            void **nb = realloc(b->blocks, nc * sizeof(*nb));
            if (!nb)
                return NULL;
            b->blocks = nb;
            b->capblocks = nc;
        }
        size_t cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;
        char *chunk = malloc(cap);
        if (!chunk)
            return NULL;
        b->blocks[b->nblocks++] = chunk;
        b->cur = chunk;
        b->left = cap;
    }
    void *p = b->cur;
    b->cur += n;
    b->left -= n;
    memset(p, 0, n);
    return p;
}

static char *bstrdup(batch *b, const char *s, size_t n)
{
    char *p = balloc(b, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

/* A bytes field out: points at p (n bytes, kept alive by the batch). */
static ProtobufCBinaryData bin(const void *p, size_t n)
{
    ProtobufCBinaryData d = {n, (uint8_t *)p};
    return d;
}

/* A bytes field in, as a NUL-terminated string allocated in b; NULL with
 * *nul set when it holds a NUL byte (no name, tag or type may), or out of
 * memory. */
static const char *cstr(batch *b, const ProtobufCBinaryData *d, int *nul)
{
    *nul = d->len && memchr(d->data, 0, d->len) != NULL;
    if (*nul)
        return NULL;
    return bstrdup(b, d->len ? (const char *)d->data : "", d->len);
}

static void batch_free(batch *b)
{
    for (size_t i = 0; i < b->nblocks; i++)
        free(b->blocks[i]);
    free(b->blocks);
    free(b->seq);
    memset(b, 0, sizeof(*b));
}

/* Metadata JSON -> entries: an object's members in order (a string's
 * text, any other value's compact JSON); an array of [key, value] string
 * pairs (how metadata_in keeps a key given twice) pair by pair; anything
 * else one entry with key "" and the JSON text. */
static Umadb__Wire__MetadataEntry *entry(batch *b, const char *k, size_t kl, const char *v,
                                         size_t vl)
{
    Umadb__Wire__MetadataEntry *me = balloc(b, sizeof(*me));
    char *kc = bstrdup(b, k, kl), *vc = bstrdup(b, v, vl);
    if (!me || !kc || !vc)
        return NULL;
    umadb__wire__metadata_entry__init(me);
    me->has_key = me->has_value = 1;
    me->key = bin(kc, kl);
    me->value = bin(vc, vl);
    return me;
}

static int pairs(json_t *j)
{
    size_t i;
    json_t *p;
    if (!json_is_array(j) || json_array_size(j) == 0)
        return 0;
    json_array_foreach(j, i, p) {
        if (!json_is_array(p) || json_array_size(p) != 2 ||
            !json_is_string(json_array_get(p, 0)) || !json_is_string(json_array_get(p, 1)))
            return 0;
    }
    return 1;
}

static int metadata_out(batch *b, Umadb__Wire__Event *e, const evs_event *ev)
{
    if (!ev->metadata_len)
        return 0;
    json_error_t jerr;
    json_t *j = json_loadb(ev->metadata, ev->metadata_len, JSON_DECODE_ANY, &jerr);
    size_t n = j && json_is_object(j) ? json_object_size(j) : pairs(j) ? json_array_size(j) : 1;
    e->metadata = balloc(b, (n ? n : 1) * sizeof(*e->metadata));
    int rc = e->metadata ? 0 : -1;
    if (rc == 0 && j && json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v) {
            Umadb__Wire__MetadataEntry *me;
            if (json_is_string(v)) {
                me = entry(b, k, strlen(k), json_string_value(v), json_string_length(v));
            } else {
                char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
                me = t ? entry(b, k, strlen(k), t, strlen(t)) : NULL;
                free(t);
            }
            if (!me) {
                rc = -1;
                break;
            }
            e->metadata[e->n_metadata++] = me;
        }
    } else if (rc == 0 && pairs(j)) {
        size_t i;
        json_t *p;
        json_array_foreach(j, i, p) {
            json_t *k = json_array_get(p, 0), *v = json_array_get(p, 1);
            Umadb__Wire__MetadataEntry *me =
                entry(b, json_string_value(k), json_string_length(k), json_string_value(v),
                      json_string_length(v));
            if (!me) {
                rc = -1;
                break;
            }
            e->metadata[e->n_metadata++] = me;
        }
    } else if (rc == 0) {
        Umadb__Wire__MetadataEntry *me = entry(b, "", 0, ev->metadata, ev->metadata_len);
        if (me)
            e->metadata[e->n_metadata++] = me;
        else
            rc = -1;
    }
    json_decref(j);
    return rc;
}

static int batch_add(batch *b, const evs_event *ev)
{
    if (b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 64;
        Umadb__Wire__SequencedEvent **ns = realloc(b->seq, nc * sizeof(*ns));
        if (!ns)
            return -1;
        b->seq = ns;
        b->cap = nc;
    }
    Umadb__Wire__SequencedEvent *se = balloc(b, sizeof(*se));
    Umadb__Wire__Event *e = balloc(b, sizeof(*e));
    if (!se || !e)
        return -1;
    umadb__wire__sequenced_event__init(se);
    umadb__wire__event__init(e);
    se->has_position = 1;
    se->position = ev->position;
    se->event = e;
    size_t tl = strlen(ev->type);
    char *type = bstrdup(b, ev->type, tl);
    uint8_t *data = balloc(b, ev->data_len);
    char *uuid = balloc(b, 37);
    if (!type || !data || !uuid)
        return -1;
    memcpy(data, ev->data, ev->data_len);
    evs_uuid_format(uuid, &ev->id);
    e->has_event_type = e->has_data = e->has_uuid = 1;
    e->event_type = bin(type, tl);
    e->data = bin(data, ev->data_len);
    e->uuid = bin(uuid, 36);
    if (ev->ntags) {
        e->tags = balloc(b, ev->ntags * sizeof(*e->tags));
        if (!e->tags)
            return -1;
        for (size_t i = 0; i < ev->ntags; i++) {
            size_t l = strlen(ev->tags[i]);
            char *t = bstrdup(b, ev->tags[i], l);
            if (!t)
                return -1;
            e->tags[i] = bin(t, l);
        }
        e->n_tags = ev->ntags;
    }
    if (metadata_out(b, e, ev) < 0)
        return -1;
    b->seq[b->n++] = se;
    b->bytes += ev->data_len + ev->metadata_len + strlen(ev->type) + 64;
    for (size_t i = 0; i < ev->ntags; i++)
        b->bytes += strlen(ev->tags[i]) + 2;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Queries in                                                          */
/* ------------------------------------------------------------------ */

/* Strings of a query, in the arena a. Returns 0, -1 (out of memory) or
 * -2 (a NUL byte in a type or tag). */
static int strings_in(batch *a, const char ***out, const ProtobufCBinaryData *in, size_t n)
{
    *out = NULL;
    if (!n)
        return 0;
    const char **v = balloc(a, n * sizeof(*v));
    if (!v)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int nul;
        if (!(v[i] = cstr(a, &in[i], &nul)))
            return nul ? -2 : -1;
    }
    *out = v;
    return 0;
}

static int query_in(batch *a, evs_query *q, const Umadb__Wire__Query *pq)
{
    memset(q, 0, sizeof(*q));
    if (!pq || pq->n_items == 0)
        return 0;
    evs_query_item *items = balloc(a, pq->n_items * sizeof(*items));
    if (!items)
        return -1;
    for (size_t i = 0; i < pq->n_items; i++) {
        const char **types, **tags;
        int rc;
        if ((rc = strings_in(a, &types, pq->items[i]->types, pq->items[i]->n_types)) < 0 ||
            (rc = strings_in(a, &tags, pq->items[i]->tags, pq->items[i]->n_tags)) < 0)
            return rc;
        items[i].types = types;
        items[i].ntypes = pq->items[i]->n_types;
        items[i].tags = tags;
        items[i].ntags = pq->items[i]->n_tags;
    }
    q->items = items;
    q->nitems = pq->n_items;
    return 0;
}

/* Fail a call whose request could not be taken in (query_in's codes). */
static void fail_in(gcall *c, int rc, const char *what)
{
    if (rc == -2)
        gcall_fail(c, GS_INVALID_ARGUMENT, UMA_INVALID_ARGUMENT,
                   "%s: a type, tag, name or metadata key holds a NUL byte, which none may",
                   what);
    else
        gcall_fail(c, GS_RESOURCE_EXHAUSTED, UMA_INTERNAL, "%s: out of memory", what);
}

/* ------------------------------------------------------------------ */
/* Read and Subscribe                                                  */
/* ------------------------------------------------------------------ */

typedef struct reader {
    ProtobufCMessage *req;  /* the unpacked request */
    ProtobufCAllocator *alloc; /* its allocator (gcall_allocator) */
    batch strings;          /* the query's strings */
    evs_query q;
    int backwards;
    uint64_t bound;         /* evs_read_query's position_bound (exclusive) */
    uint32_t batch;
    int has_limit;
    uint64_t remaining;     /* with a limit: events still to send */
    uint64_t head;          /* Read: the tenant's head when it began */
    int sent_any;
    int finished;           /* the last message is in flight */
    int finished_empty;     /* nothing can match: one empty response */
    serve_sub_gauge *gauge; /* Subscribe */
    serve_metrics *metrics;
} reader;

static void reader_free(void *p)
{
    reader *r = p;
    if (!r)
        return;
    if (r->gauge)
        serve_metrics_sub_close(r->metrics, r->gauge);
    batch_free(&r->strings);
    if (r->req)
        protobuf_c_message_free_unpacked(r->req, r->alloc);
    free(r);
}

/* The state of a Read or Subscribe call, owning the unpacked request
 * rq; NULL after failing the call. */
static reader *reader_start(gcall *c, ProtobufCMessage *rq, const Umadb__Wire__Query *query,
                            const char *what)
{
    reader *r = calloc(1, sizeof(*r));
    if (!r) {
        protobuf_c_message_free_unpacked(rq, gcall_free_allocator());
        fail_in(c, -1, what);
        return NULL;
    }
    r->req = rq;
    r->alloc = gcall_free_allocator();
    r->metrics = gcall_serve(c)->metrics;
    gcall_set_state(c, r, reader_free);
    int qrc = query_in(&r->strings, &r->q, query);
    if (qrc < 0) {
        fail_in(c, qrc, what);
        return NULL;
    }
    return r;
}

static uint32_t batch_size(int has, uint32_t v)
{
    if (!has)
        return BATCH_DEFAULT;
    return v < 1 ? 1 : v > BATCH_MAX ? BATCH_MAX : v; /* UmaDB: clamp(1, 4096) */
}

/* Read up to `limit` events from r->bound into b. *exhausted: the read
 * ended (not the limit or the size cap); *marker: evs_iter_marker then. */
static int read_some(gcall *c, reader *r, batch *b, uint64_t limit, int stop_past_head,
                     int *exhausted, uint64_t *marker)
{
    serve *s = gcall_serve(c);
    evs_iter *it = NULL;
    int rc = evs_read_query(&it, s->db, gcall_tenant(c), &r->q, r->bound,
                            r->backwards ? EVS_BACKWARD : EVS_FORWARD, limit);
    if (rc < 0)
        return rc;
    const evs_event *ev;
    *exhausted = 0;
    uint64_t cap = s->cfg.subscriber_buffer;
    while (b->n < limit && (b->n == 0 || b->bytes < cap)) {
        rc = evs_iter_next(&ev, it);
        if (rc == EVS_ITEROVER) {
            *exhausted = 1;
            break;
        }
        if (rc < 0) {
            evs_iter_free(it);
            return rc;
        }
        r->bound = ev->position;
        if (stop_past_head && ev->position > r->head) {
            *exhausted = 1; /* newer than the head the read began with */
            break;
        }
        if (batch_add(b, ev) < 0) {
            evs_iter_free(it);
            return EVS_ENOMEM;
        }
    }
    if (marker && evs_iter_marker(marker, it) < 0)
        *marker = 0;
    evs_iter_free(it);
    return 0;
}

static void read_step(gcall *c);

static void read_send(gcall *c, reader *r, batch *b, int last)
{
    Umadb__Wire__ReadResponse resp = UMADB__WIRE__READ_RESPONSE__INIT;
    resp.events = b->seq;
    resp.n_events = b->n;
    /* UmaDB's head: the captured head without a limit, else the batch's
     * last position (absent when there is none). */
    uint64_t head = r->has_limit ? (b->n ? b->seq[b->n - 1]->position : 0) : r->head;
    resp.has_head = head > 0;
    resp.head = head;
    r->sent_any = 1;
    r->finished = last;
    gcall_send(c, &resp.base, read_step);
}

static void read_step(gcall *c)
{
    reader *r = gcall_state(c);
    if (r->finished) {
        gcall_end(c);
        return;
    }
    if (gcall_done(c)) {
        fail_done(c);
        return;
    }
    if (!gcall_still_allowed(c))
        return;
    uint64_t want = r->batch;
    if (r->has_limit && r->remaining < want)
        want = r->remaining;
    if (want == 0) {
        gcall_end(c);
        return;
    }
    batch b = {0};
    int exhausted = 0;
    int rc = read_some(c, r, &b, want, !r->backwards, &exhausted, NULL);
    if (rc < 0) {
        batch_free(&b);
        fail_lib(c, rc, "Read");
        return;
    }
    if (b.n == 0) {
        if (r->sent_any) {
            batch_free(&b);
            gcall_end(c);
            return;
        }
        read_send(c, r, &b, 1); /* one empty response: the head */
        batch_free(&b);
        return;
    }
    if (r->has_limit)
        r->remaining -= b.n;
    int last = exhausted || (r->has_limit && r->remaining == 0);
    read_send(c, r, &b, last);
    batch_free(&b);
}

static void dcb_read(gcall *c, const uint8_t *req, size_t len)
{
    serve *s = gcall_serve(c);
    Umadb__Wire__ReadRequest *rq =
        umadb__wire__read_request__unpack(gcall_allocator(c), len, req);
    if (!rq) {
        fail_unpack(c, "Read", "ReadRequest");
        return;
    }
    if (rq->has_subscribe && rq->subscribe) {
        umadb__wire__read_request__free_unpacked(rq, gcall_free_allocator());
        gcall_fail(c, GS_INVALID_ARGUMENT, UMA_INVALID_ARGUMENT,
                   "The `subscribe` argument of `read()` has been deprecated. Please call "
                   "the `subscribe()` method instead.");
        return;
    }
    reader *r = reader_start(c, &rq->base, rq->query, "Read");
    if (!r)
        return;
    r->backwards = rq->has_backwards && rq->backwards;
    r->batch = batch_size(rq->has_batch_size, rq->batch_size);
    r->has_limit = rq->has_limit;
    r->remaining = rq->limit;
    int rc = evs_head_position(&r->head, s->db, gcall_tenant(c));
    if (rc < 0) {
        fail_lib(c, rc, "Read");
        return;
    }
    if (r->has_limit && r->remaining == 0) {
        gcall_end(c); /* UmaDB: a limit of 0 sends nothing */
        return;
    }
    if (!r->backwards) {
        /* start is inclusive; position_bound is exclusive */
        r->bound = rq->has_start && rq->start > 0 ? rq->start - 1 : 0;
    } else {
        /* Backwards from min(start, head) inclusive: the bound is
         * exclusive, and events appended after the head was taken are
         * never read (they would use up the batch's limit). */
        uint64_t top = r->head;
        if (rq->has_start && rq->start < top)
            top = rq->start;
        if (top == 0) {
            r->finished_empty = 1; /* one empty response with the head */
        }
        r->bound = top + 1;
    }
    if (r->finished_empty) {
        batch b = {0};
        read_send(c, r, &b, 1);
        return;
    }
    read_step(c);
}

static void sub_step(gcall *c)
{
    reader *r = gcall_state(c);
    if (gcall_done(c)) {
        fail_done(c);
        return;
    }
    if (!gcall_still_allowed(c)) /* a key removed by SIGHUP: no more events */
        return;
    batch b = {0};
    int exhausted = 0;
    uint64_t marker = 0;
    int rc = read_some(c, r, &b, r->batch, 0, &exhausted, &marker);
    if (rc < 0) {
        batch_free(&b);
        fail_lib(c, rc, "Subscribe");
        return;
    }
    if (b.n == 0) {
        batch_free(&b);
        /* Everything up to the marker was considered: wait for a commit
         * beyond it. */
        if (marker > r->bound)
            r->bound = marker;
        gcall_park(c, marker, sub_step);
        return;
    }
    serve_metrics_sub_position(r->gauge, r->bound);
    Umadb__Wire__SubscribeResponse resp = UMADB__WIRE__SUBSCRIBE_RESPONSE__INIT;
    resp.events = b.seq;
    resp.n_events = b.n;
    gcall_send(c, &resp.base, sub_step);
    batch_free(&b);
}

static void dcb_subscribe(gcall *c, const uint8_t *req, size_t len)
{
    serve *s = gcall_serve(c);
    Umadb__Wire__SubscribeRequest *rq =
        umadb__wire__subscribe_request__unpack(gcall_allocator(c), len, req);
    if (!rq) {
        fail_unpack(c, "Subscribe", "SubscribeRequest");
        return;
    }
    if (rq->has_after && rq->after == UINT64_MAX) {
        umadb__wire__subscribe_request__free_unpacked(rq, gcall_free_allocator());
        gcall_end(c); /* UmaDB: nothing can come after the last position */
        return;
    }
    reader *r = reader_start(c, &rq->base, rq->query, "Subscribe");
    if (!r)
        return;
    r->batch = batch_size(rq->has_batch_size, rq->batch_size);
    r->bound = rq->has_after ? rq->after : 0;
    r->gauge = serve_metrics_sub_open(s->metrics, SERVE_PROTO_GRPC);
    serve_metrics_sub_position(r->gauge, r->bound);
    sub_step(c);
}

/* ------------------------------------------------------------------ */
/* Append                                                              */
/* ------------------------------------------------------------------ */

/* Metadata entries -> JSON (malloc'd text; NULL when none): an object of
 * the members in order; when a key is given twice, an array of [key,
 * value] pairs instead, so that nothing is lost. Returns 0, -1 (out of
 * memory), -2 (a NUL byte in a key or value), -3 (not UTF-8). */
static int metadata_in(char **out, size_t *len, const Umadb__Wire__Event *e)
{
    *out = NULL;
    *len = 0;
    if (!e->n_metadata)
        return 0;
    json_t *o = json_object(), *a = json_array();
    int rc = o && a ? 0 : -1, dup = 0;
    for (size_t i = 0; rc == 0 && i < e->n_metadata; i++) {
        const ProtobufCBinaryData *k = &e->metadata[i]->key, *v = &e->metadata[i]->value;
        if ((k->len && memchr(k->data, 0, k->len)) || (v->len && memchr(v->data, 0, v->len))) {
            rc = -2;
            break;
        }
        char *ks = strndup(k->len ? (const char *)k->data : "", k->len);
        json_t *vs = json_stringn(v->len ? (const char *)v->data : "", v->len);
        json_t *ks_j = ks ? json_stringn(ks, k->len) : NULL;
        if (!ks || !vs || !ks_j) {
            rc = ks && (!vs || !ks_j) ? -3 : -1;
        } else {
            dup |= json_object_get(o, ks) != NULL;
            if (json_object_set(o, ks, vs) < 0 ||
                json_array_append_new(a, json_pack("[OO]", ks_j, vs)) < 0)
                rc = -1;
        }
        free(ks);
        json_decref(vs);
        json_decref(ks_j);
    }
    if (rc == 0) {
        *out = json_dumps(dup ? a : o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!*out)
            rc = -1;
        else
            *len = strlen(*out);
    }
    json_decref(o);
    json_decref(a);
    return rc;
}

static void dcb_append(gcall *c, const uint8_t *req, size_t len)
{
    serve *s = gcall_serve(c);
    const char *tenant = gcall_tenant(c);
    Umadb__Wire__AppendRequest *rq =
        umadb__wire__append_request__unpack(gcall_allocator(c), len, req);
    if (!rq) {
        fail_unpack(c, "Append", "AppendRequest");
        return;
    }
    size_t n = rq->n_events;
    evs_event_data *ev = calloc(n ? n : 1, sizeof(*ev));
    char **meta = calloc(n ? n : 1, sizeof(*meta));
    batch strings = {0};
    int rc = 0, nul;
    uint64_t position = 0;
    if (!ev || !meta) {
        fail_in(c, -1, "Append");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const Umadb__Wire__Event *e = rq->events[i];
        const char *type = cstr(&strings, &e->event_type, &nul);
        const char *uuid = type ? cstr(&strings, &e->uuid, &nul) : NULL;
        const char **tags = NULL;
        int trc = uuid ? strings_in(&strings, &tags, e->tags, e->n_tags) : nul ? -2 : -1;
        if (!type || !uuid || trc < 0) {
            fail_in(c, trc, "Append");
            goto out;
        }
        if (*uuid && evs_uuid_parse(&ev[i].id, uuid) < 0) {
            gcall_fail(c, GS_INVALID_ARGUMENT, UMA_INVALID_ARGUMENT,
                       "Append: event %zu: uuid \"%.64s\" is not a UUID (give the "
                       "8-4-4-4-12 hexadecimal form, or \"\" to let the server assign one)",
                       i, uuid);
            goto out;
        }
        ev[i].type = type;
        ev[i].data = e->data.data;
        ev[i].data_len = e->data.len;
        ev[i].content_type = EVS_CONTENT_BINARY;
        ev[i].tags = tags;
        ev[i].ntags = e->n_tags;
        int mr = metadata_in(&meta[i], &ev[i].metadata_len, e);
        if (mr == -3) {
            gcall_fail(c, GS_INVALID_ARGUMENT, UMA_INVALID_ARGUMENT,
                       "Append: event %zu: a metadata key or value is not UTF-8", i);
            goto out;
        }
        if (mr < 0) {
            fail_in(c, mr, "Append");
            goto out;
        }
        ev[i].metadata = meta[i];
    }
    evs_append_condition cond;
    memset(&cond, 0, sizeof(cond));
    int has_cond = rq->condition != NULL;
    if (has_cond) {
        int qrc = query_in(&strings, &cond.fail_if_events_match,
                           rq->condition->fail_if_events_match);
        if (qrc < 0) {
            fail_in(c, qrc, "Append");
            goto out;
        }
        cond.after = rq->condition->has_after ? rq->condition->after : 0;
    }
    const Umadb__Wire__TrackingInfo *ti = rq->tracking_info;
    const char *source = NULL;
    if (ti) {
        source = cstr(&strings, &ti->source, &nul);
        if (!source) {
            fail_in(c, nul ? -2 : -1, "Append");
            goto out;
        }
        if (!*source) {
            gcall_fail(c, GS_INVALID_ARGUMENT, UMA_INVALID_ARGUMENT,
                       "Append: tracking_info.source is empty; name the source whose "
                       "position you record");
            goto out;
        }
    }
    uint64_t t0 = gcall_started_ns(c);
    if (n == 0) {
        /* No events: the condition is checked, then the tracking
         * position stored (not atomically with the check: nothing else is
         * written), and the answer is 0, as UmaDB's. */
        if (has_cond) {
            evs_iter *it = NULL;
            const evs_event *e;
            rc = evs_read_query(&it, s->db, tenant, &cond.fail_if_events_match, cond.after,
                                EVS_FORWARD, 1);
            if (rc == 0 && (rc = evs_iter_next(&e, it)) == 0) {
                uint64_t at = e->position;
                evs_iter_free(it);
                serve_metrics_append(s->metrics, SERVE_PROTO_GRPC, EVS_ECONFLICT, 0,
                                     now_ns() - t0);
                gcall_fail(c, GS_FAILED_PRECONDITION, UMA_INTEGRITY,
                           "Append: condition failed: the event at position %" PRIu64
                           " matches fail_if_events_match (after %" PRIu64 ")",
                           at, cond.after);
                goto out;
            }
            evs_iter_free(it);
            if (rc != EVS_ITEROVER) {
                fail_lib(c, rc, "Append");
                goto out;
            }
            rc = 0;
        }
        if (ti)
            rc = evs_checkpoint_set_ex(s->db, tenant, source, ti->position,
                                       EVS_CHECKPOINT_EXTERNAL);
        position = 0; /* UmaDB's answer when nothing was appended */
    } else {
        evs_stream_append part = {NULL, EVS_ANY, ev, n};
        evs_append_request ar = EVS_APPEND_REQUEST_INIT;
        ar.tenant = tenant;
        ar.parts = &part;
        ar.nparts = 1;
        ar.conditions = has_cond ? &cond : NULL;
        ar.nconditions = has_cond ? 1 : 0;
        if (ti) {
            ar.checkpoint = source;
            ar.checkpoint_token = ti->position;
            ar.checkpoint_flags = EVS_CHECKPOINT_EXTERNAL;
        }
        evs_append_result res;
        rc = evs_append_ex(&res, NULL, s->db, &ar);
        if (rc == 0) {
            position = res.last_position;
            serve_notify_head(s, position);
        }
    }
    serve_metrics_append(s->metrics, SERVE_PROTO_GRPC, rc, rc == 0 ? n : 0, now_ns() - t0);
    if (rc < 0) {
        fail_lib(c, rc, "Append");
        goto out;
    }
    Umadb__Wire__AppendResponse resp = UMADB__WIRE__APPEND_RESPONSE__INIT;
    resp.has_position = 1;
    resp.position = position;
    gcall_reply(c, &resp.base);
out:
    if (meta)
        for (size_t i = 0; i < n; i++)
            free(meta[i]);
    free(meta);
    free(ev);
    batch_free(&strings);
    umadb__wire__append_request__free_unpacked(rq, gcall_free_allocator());
}

/* ------------------------------------------------------------------ */
/* Head and GetTrackingInfo                                            */
/* ------------------------------------------------------------------ */

static void dcb_head(gcall *c, const uint8_t *req, size_t len)
{
    serve *s = gcall_serve(c);
    Umadb__Wire__HeadRequest *rq =
        umadb__wire__head_request__unpack(gcall_allocator(c), len, req);
    if (!rq) {
        fail_unpack(c, "Head", "HeadRequest");
        return;
    }
    umadb__wire__head_request__free_unpacked(rq, gcall_free_allocator());
    uint64_t head = 0;
    int rc = evs_head_position(&head, s->db, gcall_tenant(c));
    if (rc < 0) {
        fail_lib(c, rc, "Head");
        return;
    }
    Umadb__Wire__HeadResponse resp = UMADB__WIRE__HEAD_RESPONSE__INIT;
    resp.has_position = head > 0; /* absent: no events yet */
    resp.position = head;
    gcall_reply(c, &resp.base);
}

static void dcb_tracking(gcall *c, const uint8_t *req, size_t len)
{
    serve *s = gcall_serve(c);
    Umadb__Wire__TrackingRequest *rq =
        umadb__wire__tracking_request__unpack(gcall_allocator(c), len, req);
    if (!rq) {
        fail_unpack(c, "GetTrackingInfo", "TrackingRequest");
        return;
    }
    batch strings = {0};
    int nul;
    const char *source = cstr(&strings, &rq->source, &nul);
    umadb__wire__tracking_request__free_unpacked(rq, gcall_free_allocator());
    if (!source || !*source) {
        if (!source)
            fail_in(c, nul ? -2 : -1, "GetTrackingInfo");
        else
            gcall_fail(c, GS_INVALID_ARGUMENT, UMA_INVALID_ARGUMENT,
                       "GetTrackingInfo: source is empty; name the source whose position "
                       "you recorded");
        batch_free(&strings);
        return;
    }
    uint64_t pos = 0;
    int rc = evs_checkpoint_get(&pos, s->db, gcall_tenant(c), source);
    batch_free(&strings);
    if (rc < 0 && rc != EVS_ENOTFOUND) {
        fail_lib(c, rc, "GetTrackingInfo");
        return;
    }
    Umadb__Wire__TrackingResponse resp = UMADB__WIRE__TRACKING_RESPONSE__INIT;
    resp.has_position = rc == 0;
    resp.position = pos;
    gcall_reply(c, &resp.base);
}

const gcall_method serve_dcb_methods[] = {
    {"/umadb.v1.DCB/Read", dcb_read, SERVE_READ},
    {"/umadb.v1.DCB/Subscribe", dcb_subscribe, SERVE_READ},
    {"/umadb.v1.DCB/Append", dcb_append, SERVE_WRITE},
    {"/umadb.v1.DCB/Head", dcb_head, SERVE_READ},
    {"/umadb.v1.DCB/GetTrackingInfo", dcb_tracking, SERVE_READ},
    {NULL, NULL, 0},
};
