/*
 * http.c -- the HTTP/1.1 listener (libmicrohttpd): GET /metrics, GET
 * /health, the HTTP/JSON DCB API of the dcb.events conformance suite
 * (GET /read, POST /append) and Server-Sent Events (GET /subscribe).
 * docs/SERVER.md, "HTTP/JSON DCB API", gives every request and answer.
 *
 * Threads: libmicrohttpd runs one thread per connection, so a request's
 * callbacks (the access handler, the content reader, the completion) all
 * run on its connection's thread, one at a time. That is what lets a read
 * keep its evs_iter across content-reader calls (an iterator belongs to
 * one thread at a time) and lets a subscription block in
 * evs_read_tracking: a stream that waits, or a client that reads nothing,
 * holds only its own thread.
 *
 * Memory per connection is bounded: a response body is produced only when
 * libmicrohttpd asks for the next block (STREAM_BLOCK bytes), from a
 * buffer refilled with at most one batch of events (cfg.subscriber_buffer
 * bytes, plus one event); a request body is at most cfg.max_message_bytes
 * (a longer Content-Length is refused with 413 before it is read; a
 * chunked one is read and dropped up to that size, then the connection
 * closed) and only POST /append takes one. Decoding JSON has a budget
 * per request and one for the whole process ("Request memory" below).
 */
#include "serve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>
#include <openssl/evp.h>

#define STREAM_BLOCK (64u * 1024u) /* libmicrohttpd's block for a body */
/* A connection's memory for the request line and headers: a GET /read
 * query of a few thousand tags fits (beyond, libmicrohttpd answers 414).
 * Pages are touched only as a request fills them. */
#define HEADER_MEMORY (256u * 1024u)
#define READ_FILL (64u * 1024u)    /* bytes of events produced per fill of a read */
#define SSE_BATCH 256              /* events per tracking read */
#define SSE_WAIT_US 1000000        /* one wait for commits: then check stopping */
#define SSE_KEEPALIVE_NS (15ull * 1000000000ull) /* a comment when idle this long:
                                                    finds clients that left */
#define SSE_AUTH_NS 1000000000ull  /* re-check a stream's key this often (SIGHUP) */
/* Memory for decoding one request's JSON (body, query, options): 32 x its
 * length + 1 MiB; and for every request body buffered or being decoded at
 * once, process-wide, 256 MiB (as gRPC). gRPC allows 16 x per request, but
 * a jansson tree costs more than a protobuf message: the smallest real
 * events ({"type":"A","tags":["t"],"data":""}, 36 bytes) take about 700
 * bytes each, 20 x, so 16 x refused an append of 10,000 of them; empty
 * objects, 3 bytes each, take 80 x. */
#define DECODE_FACTOR 32u
#define DECODE_SLACK (1u << 20)
#define HTTP_MEMORY_CAP ((size_t)256 << 20)

struct serve_http {
    struct MHD_Daemon *d;
    atomic_uint_fast64_t connections;
    atomic_uint_fast64_t streams; /* open /subscribe responses */
    atomic_int stopping;
    char *cert, *key; /* PEM text, alive as long as the daemon */
};

/* Routes (also the method label of evs_requests_total). */
enum route { R_NONE, R_METRICS, R_HEALTH, R_READ, R_APPEND, R_SUBSCRIBE };
static const char *const route_label[] = {
    "other", "GET /metrics", "GET /health", "GET /read", "POST /append", "GET /subscribe"};

/* One request: the connection's context from its first callback to the
 * completion callback. */
typedef struct http_req {
    enum route route;
    char *body;          /* POST body (NUL-terminated) */
    size_t body_len;
    size_t charged;      /* bytes of body counted in http_memory */
    uint64_t dropped;    /* body bytes read and dropped (too big, or busy) */
    int body_too_big;
    int busy;            /* body dropped: the process-wide cap was reached */
    const char *allow;   /* a 405's Allow header */
    int answered;        /* a response is queued */
    int err_status;      /* refused on the first call: the answer's status */
    char err[256];       /* ... and message */
} http_req;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int stopping(serve *s)
{
    return atomic_load(&s->stopping) || (s->http && atomic_load(&s->http->stopping));
}

/* ------------------------------------------------------------------ */
/* Request memory                                                      */
/* ------------------------------------------------------------------ */

/*
 * jansson builds a whole tree before anything looks at its shape, and a
 * tree costs far more than its text: a 4 MiB body of empty objects
 * "{},{},..." took 320 MB. So jansson allocates through json_alloc and
 * json_free below, which charge the blocks to the budget the calling
 * thread has set (http.c sets one around each decode; every other thread,
 * and every other jansson user in the process, has none and is not
 * counted). A decode that would pass its budget, or take http_memory past
 * HTTP_MEMORY_CAP, gets NULL from the allocator, so jansson fails cleanly
 * and the request is refused (413, or 503 for the process-wide cap).
 *
 * The blocks are plain malloc blocks, sized with malloc_usable_size
 * rather than a header: jansson memory freed with free() (json_dumps'
 * text, as its callers do) and blocks allocated before the functions were
 * installed stay valid either way.
 */
typedef struct http_budget {
    size_t limit; /* bytes this decode may hold */
    size_t used;  /* bytes it holds (also counted in http_memory) */
    int over;     /* 1: passed limit; 2: passed HTTP_MEMORY_CAP */
} http_budget;

static _Thread_local http_budget *tl_budget;
/* Bytes of request bodies buffered plus the budgets' used bytes, over
 * every connection. */
static atomic_size_t http_memory;
/* The connection thread's SSE stream ended because its client left (no
 * error to log). */
static _Thread_local int tl_client_left;

static void *json_alloc(size_t n)
{
    void *p = malloc(n);
    http_budget *b = tl_budget;
    if (!p || !b)
        return p;
    size_t got = malloc_usable_size(p);
    size_t total = atomic_fetch_add(&http_memory, got) + got;
    b->used += got;
    if (b->used > b->limit || total > HTTP_MEMORY_CAP) {
        b->over = b->used > b->limit ? 1 : 2;
        b->used -= got;
        atomic_fetch_sub(&http_memory, got);
        free(p);
        return NULL;
    }
    return p;
}

static void json_free(void *p)
{
    http_budget *b = tl_budget;
    if (p && b) {
        size_t got = malloc_usable_size(p);
        if (got > b->used)
            got = b->used; /* a block from before the budget was set */
        b->used -= got;
        atomic_fetch_sub(&http_memory, got);
    }
    free(p);
}

/* Installed before main: no thread can be inside jansson yet. */
__attribute__((constructor)) static void install_json_alloc(void)
{
    json_set_alloc_funcs(json_alloc, json_free);
}

/* Decode `len` bytes of JSON text under a budget, on this thread, until
 * budget_end (which releases what the budget still counts: the tree's
 * memory stays allocated, it is no longer counted). */
static void budget_begin(http_budget *b, size_t len)
{
    b->limit = DECODE_FACTOR * len + DECODE_SLACK;
    b->used = 0;
    b->over = 0;
    tl_budget = b;
}

static void budget_end(http_budget *b)
{
    atomic_fetch_sub(&http_memory, b->used);
    b->used = 0;
    tl_budget = NULL;
}

/* After a large body: give the decoded tree's memory back to the system.
 * glibc keeps what a thread freed in that thread's arena, so without this
 * a few large appends on different connections leave hundreds of MB
 * resident. */
static void trim(size_t body_len)
{
    if (body_len >= (1u << 20))
        malloc_trim(0);
}

/* Count n more bytes of request body; 0, or -1 past HTTP_MEMORY_CAP. */
static int charge(http_req *r, size_t n)
{
    size_t total = atomic_fetch_add(&http_memory, n) + n;
    if (total > HTTP_MEMORY_CAP) {
        atomic_fetch_sub(&http_memory, n);
        return -1;
    }
    r->charged += n;
    return 0;
}

static void drop_body(http_req *r)
{
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
    atomic_fetch_sub(&http_memory, r->charged);
    r->charged = 0;
}

/* ------------------------------------------------------------------ */
/* Answers                                                             */
/* ------------------------------------------------------------------ */

static enum MHD_Result queue(struct MHD_Connection *c, serve *s, http_req *r, int status,
                             struct MHD_Response *resp)
{
    if (!resp)
        return MHD_NO;
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    r->answered = 1;
    serve_metrics_request(s->metrics, SERVE_PROTO_HTTP, route_label[r->route], status);
    return ok;
}

static enum MHD_Result reply_text(struct MHD_Connection *c, serve *s, http_req *r,
                                  int status, const char *type, char *text, size_t len)
{
    /* text is malloc'd and handed over */
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", type);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (status == 401)
        MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
    if (status == 405 && r->allow)
        MHD_add_response_header(resp, "Allow", r->allow);
    if (status == 503)
        MHD_add_response_header(resp, "Retry-After", "1");
    return queue(c, s, r, status, resp);
}

/* Answer with a JSON value (consumed). */
static enum MHD_Result reply_json(struct MHD_Connection *c, serve *s, http_req *r,
                                  int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text)
        return MHD_NO;
    size_t len = strlen(text);
    /* a trailing newline, for curl users */
    char *t2 = realloc(text, len + 2);
    if (t2) {
        text = t2;
        text[len++] = '\n';
        text[len] = '\0';
    }
    return reply_text(c, s, r, status, "application/json", text, len);
}

static enum MHD_Result reply_error(struct MHD_Connection *c, serve *s, http_req *r,
                                   int status, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static enum MHD_Result reply_error(struct MHD_Connection *c, serve *s, http_req *r,
                                   int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* json_string wants UTF-8; a message quoting client bytes may not be */
    json_t *m = json_string(msg);
    if (!m)
        m = json_string("bad request (the message was not valid UTF-8)");
    return reply_json(c, s, r, status, json_pack("{s:o}", "error", m));
}

/* The HTTP status of a library error. */
static int status_of(int rc)
{
    switch (rc) {
    case EVS_EINVAL: return 400;
    case EVS_ETOOBIG: return 413;
    case EVS_EDUPLICATE: return 409;
    case EVS_EDELETED: return 410; /* Gone: a tombstoned stream, for good */
    case EVS_ECLOSED:
    case EVS_EREADONLY:
    case EVS_EBUSY: return 503;
    case EVS_ENOSPC: return 507;
    default: return 500;
    }
}

static enum MHD_Result reply_evs_error(struct MHD_Connection *c, serve *s, http_req *r,
                                       int rc)
{
    const char *detail = evs_last_error();
    return reply_error(c, s, r, status_of(rc), "%s%s%s", evs_strerror(rc),
                       *detail ? ": " : "", detail);
}

/* ------------------------------------------------------------------ */
/* JSON in: queries, options, events                                   */
/* ------------------------------------------------------------------ */

/* A DCB query parsed from JSON; the strings point into the JSON value,
 * which must outlive it. */
typedef struct pquery {
    evs_query q;
    evs_query_item *items;
    const char **terms;
} pquery;

static void pquery_free(pquery *pq)
{
    free(pq->items);
    free(pq->terms);
    memset(pq, 0, sizeof *pq);
}

/* Only the keys in `allowed` (NULL-terminated); else an error naming the
 * first other key. */
static int only_keys(json_t *obj, const char *const *allowed, const char *what, char *err,
                     size_t errlen)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            ok |= strcmp(k, *a) == 0;
        if (!ok) {
            size_t off = (size_t)snprintf(err, errlen, "%s: unknown member \"%.60s\" (expected",
                                          what, k);
            for (const char *const *a = allowed; *a && off < errlen; a++)
                off += (size_t)snprintf(err + off, errlen - off, "%s %s",
                                        a == allowed ? "" : ",", *a);
            if (off < errlen)
                snprintf(err + off, errlen - off, ")");
            return -1;
        }
    }
    return 0;
}

/* An array of strings (NULL: none) into terms[*n...]. */
static int string_array(json_t *a, const char **terms, size_t *n, const char *what,
                        size_t item, const char *field, char *err, size_t errlen)
{
    if (!a || json_is_null(a))
        return 0;
    if (!json_is_array(a)) {
        snprintf(err, errlen, "%s: items[%zu].%s must be an array of strings", what, item,
                 field);
        return -1;
    }
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) {
        if (!json_is_string(v)) {
            snprintf(err, errlen, "%s: items[%zu].%s[%zu] must be a string", what, item,
                     field, i);
            return -1;
        }
        terms[(*n)++] = json_string_value(v);
    }
    return 0;
}

/* {"items": [{"types": [...], "tags": [...]}, ...]}; no items (or an
 * empty list) is the query that matches every event. */
static int parse_query(pquery *pq, json_t *j, const char *what, char *err, size_t errlen)
{
    static const char *const qkeys[] = {"items", NULL};
    static const char *const ikeys[] = {"types", "tags", NULL};
    memset(pq, 0, sizeof *pq);
    if (!json_is_object(j)) {
        snprintf(err, errlen,
                 "%s must be an object {\"items\": [{\"types\": [...], \"tags\": [...]}]}",
                 what);
        return -1;
    }
    if (only_keys(j, qkeys, what, err, errlen) < 0)
        return -1;
    json_t *items = json_object_get(j, "items");
    if (!items || json_is_null(items))
        return 0;
    if (!json_is_array(items)) {
        snprintf(err, errlen, "%s: items must be an array", what);
        return -1;
    }
    size_t nitems = json_array_size(items), nterms = 0, i;
    json_t *it;
    json_array_foreach(items, i, it) {
        if (!json_is_object(it)) {
            snprintf(err, errlen, "%s: items[%zu] must be an object {\"types\": [...], "
                     "\"tags\": [...]}", what, i);
            return -1;
        }
        char sub[64];
        snprintf(sub, sizeof sub, "%s: items[%zu]", what, i);
        if (only_keys(it, ikeys, sub, err, errlen) < 0)
            return -1;
        json_t *t = json_object_get(it, "types"), *g = json_object_get(it, "tags");
        nterms += json_is_array(t) ? json_array_size(t) : 0;
        nterms += json_is_array(g) ? json_array_size(g) : 0;
    }
    if (nitems == 0)
        return 0;
    pq->items = calloc(nitems, sizeof *pq->items);
    pq->terms = calloc(nterms ? nterms : 1, sizeof *pq->terms);
    if (!pq->items || !pq->terms) {
        pquery_free(pq);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    size_t n = 0;
    json_array_foreach(items, i, it) {
        evs_query_item *qi = &pq->items[i];
        size_t start = n;
        if (string_array(json_object_get(it, "types"), pq->terms, &n, what, i, "types", err,
                         errlen) < 0)
            goto bad;
        qi->types = pq->terms + start;
        qi->ntypes = n - start;
        start = n;
        if (string_array(json_object_get(it, "tags"), pq->terms, &n, what, i, "tags", err,
                         errlen) < 0)
            goto bad;
        qi->tags = pq->terms + start;
        qi->ntags = n - start;
    }
    pq->q.items = pq->items;
    pq->q.nitems = nitems;
    return 0;
bad:
    pquery_free(pq);
    return -1;
}

/* A non-negative integer member (absent or null: *out unchanged, 0). */
static int get_uint(json_t *obj, const char *key, uint64_t *out, int *present,
                    const char *what, char *err, size_t errlen)
{
    json_t *v = json_object_get(obj, key);
    if (present)
        *present = 0;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        snprintf(err, errlen, "%s: %s must be a non-negative integer", what, key);
        return -1;
    }
    *out = (uint64_t)json_integer_value(v);
    if (present)
        *present = 1;
    return 0;
}

/* Decode JSON text under a budget (budget_begin: the caller's). NULL
 * with a message in err, and *status 400 (not JSON), 413 (it needs more
 * memory than its budget) or 503 (the process-wide cap). */
static json_t *parse_json(const char *text, size_t len, const char *what, int *status,
                          char *err, size_t errlen)
{
    json_error_t e;
    http_budget *b = tl_budget;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &e);
    if (j)
        return j;
    if (b && b->over == 1) {
        *status = 413;
        snprintf(err, errlen, "%s needs more than %zu MiB of memory to decode (%u x its "
                 "%zu bytes + 1 MiB): send fewer or bigger items per request", what,
                 (b->limit + (1u << 20) - 1) >> 20, DECODE_FACTOR, len);
    } else if (b && b->over == 2) {
        *status = 503;
        snprintf(err, errlen, "the server is decoding %zu MiB of requests at once, its "
                 "limit: retry later", HTTP_MEMORY_CAP >> 20);
    } else {
        *status = 400;
        snprintf(err, errlen, "%s is not valid JSON: %s (line %d, column %d)", what, e.text,
                 e.line, e.column);
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* JSON out: one event                                                 */
/* ------------------------------------------------------------------ */

/* {"position","type","tags","data","id"[,"stream"][,"metadata"]} as one
 * line, appended to buf. data is the event's bytes as a string (what
 * POST /append and UmaDB's gRPC clients stored); bytes that are not
 * UTF-8, or hold a NUL (which POST /append could not take back as a
 * string), come as base64 with "dataEncoding": "base64". */
static json_t *event_json(const evs_event *ev)
{
    json_t *o = json_object();
    json_t *tags = json_array();
    if (!o || !tags) {
        json_decref(o);
        json_decref(tags);
        return NULL;
    }
    json_object_set_new(o, "position", json_integer((json_int_t)ev->position));
    json_object_set_new(o, "type", json_string(ev->type));
    for (size_t i = 0; i < ev->ntags; i++)
        json_array_append_new(tags, json_string(ev->tags[i]));
    json_object_set_new(o, "tags", tags);
    json_t *data = NULL;
    if (!ev->data_len || !memchr(ev->data, 0, ev->data_len))
        data = json_stringn(ev->data ? ev->data : "", ev->data_len);
    if (!data && ev->data_len < ((size_t)1 << 30)) {
        size_t cap = 4 * ((ev->data_len + 2) / 3) + 1;
        char *b64 = malloc(cap);
        if (b64) {
            EVP_EncodeBlock((unsigned char *)b64, ev->data, (int)ev->data_len);
            data = json_string(b64);
            free(b64);
            json_object_set_new(o, "dataEncoding", json_string("base64"));
        }
    }
    json_object_set_new(o, "data", data ? data : json_null());
    char id[37];
    evs_uuid_format(id, &ev->id);
    json_object_set_new(o, "id", json_string(id));
    if (ev->stream && *ev->stream)
        json_object_set_new(o, "stream", json_string(ev->stream));
    if (ev->metadata_len > 0) {
        json_t *md = json_loadb(ev->metadata, ev->metadata_len, 0, NULL);
        if (!md)
            md = json_stringn(ev->metadata, ev->metadata_len);
        if (md)
            json_object_set_new(o, "metadata", md);
    }
    return o;
}

/* ------------------------------------------------------------------ */
/* Streamed bodies: /read and /subscribe                               */
/* ------------------------------------------------------------------ */

typedef struct http_stream {
    serve *s;
    int sse;
    json_t *qroot;        /* the query's JSON (pq's strings point into it) */
    pquery pq;
    evs_tracking t;
    char tenant[EVS_MAX_TENANT_LEN + 1];
    /* /read: one fill at a time, each from a fresh iterator (an iterator
     * kept for the whole response would pin its snapshot, and with it the
     * index pages freed since, for as long as the client takes) */
    evs_iter *it;         /* the first fill's (opened by do_read) */
    uint64_t bound;       /* evs_read_query's exclusive bound: the last position sent */
    uint64_t head;        /* the tenant's head when the read began: nothing above */
    uint64_t remaining;   /* events the limit still allows (has_limit) */
    int has_limit;
    int backwards;
    char *authorization;  /* /subscribe: the request's header, re-checked */
    uint64_t auth_ns;     /* when it was last checked */
    uint64_t after;       /* /subscribe: the token delivered up to */
    serve_sub_gauge *gauge;
    char *buf;
    size_t len, off, cap;
    int nevents;          /* /read: events written so far */
    int done;             /* nothing more to produce */
    int failed;           /* end with an error */
    uint64_t last_out_ns;
    int fd;               /* /subscribe: the client's socket, -1 unknown */
} http_stream;

static void stream_free(void *cls)
{
    http_stream *st = cls;
    if (!st)
        return;
    evs_iter_free(st->it);
    if (st->gauge) {
        serve_metrics_sub_close(st->s->metrics, st->gauge);
        if (st->s->http)
            atomic_fetch_sub(&st->s->http->streams, 1);
    }
    pquery_free(&st->pq);
    json_decref(st->qroot);
    free(st->authorization);
    free(st->buf);
    free(st);
}

static int buf_add(http_stream *st, const char *p, size_t n)
{
    if (st->len + n + 1 > st->cap) {
        size_t ncap = st->cap ? st->cap : 4096;
        while (ncap < st->len + n + 1)
            ncap *= 2;
        char *nb = realloc(st->buf, ncap);
        if (!nb)
            return -1;
        st->buf = nb;
        st->cap = ncap;
    }
    memcpy(st->buf + st->len, p, n);
    st->len += n;
    return 0;
}

static int buf_addf(http_stream *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int buf_addf(http_stream *st, const char *fmt, ...)
{
    char tmp[1200];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    return buf_add(st, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static int buf_add_event(http_stream *st, const evs_event *ev)
{
    json_t *j = event_json(ev);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text)
        return -1;
    int rc = buf_add(st, text, strlen(text));
    free(text);
    return rc;
}

/* Hand out what is buffered; 0 when the buffer is empty. */
static size_t drain(http_stream *st, char *out, size_t max)
{
    size_t n = st->len - st->off;
    if (n > max)
        n = max;
    memcpy(out, st->buf + st->off, n);
    st->off += n;
    if (st->off == st->len)
        st->off = st->len = 0;
    return n;
}

/* One fill of a /read: up to READ_FILL bytes of events from st->bound,
 * from an iterator freed before returning. Events are never changed once
 * written, so the fills make up the one answer the first read would have
 * given: positions up to st->head (forward; a backward read starts below
 * it), in order, within the limit. Returns 0, EVS_ITEROVER at the end, or
 * an error. */
static int read_fill(http_stream *st)
{
    int rc = 0;
    evs_iter *it = st->it;
    st->it = NULL;
    if (!it)
        rc = evs_read_query(&it, st->s->db, st->tenant, &st->pq.q, st->bound,
                            st->backwards ? EVS_BACKWARD : EVS_FORWARD,
                            st->has_limit ? st->remaining : 0);
    const evs_event *ev;
    while (rc == 0 && st->len < READ_FILL) {
        if (st->has_limit && st->remaining == 0) {
            rc = EVS_ITEROVER;
            break;
        }
        if ((rc = evs_iter_next(&ev, it)) < 0)
            break;
        if (!st->backwards && ev->position > st->head) {
            rc = EVS_ITEROVER; /* appended after the read began */
            break;
        }
        st->bound = ev->position;
        st->remaining -= st->has_limit;
        if ((st->nevents++ ? buf_add(st, ",\n", 2) : 0) < 0 || buf_add_event(st, ev) < 0)
            rc = EVS_ENOMEM;
    }
    evs_iter_free(it);
    return rc;
}

/* /read: a JSON array, READ_FILL bytes of events at a time. */
static ssize_t read_reader(void *cls, uint64_t pos, char *out, size_t max)
{
    http_stream *st = cls;
    for (;;) {
        if (st->len > st->off)
            return (ssize_t)drain(st, out, max);
        if (st->failed)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (st->done)
            return MHD_CONTENT_READER_END_OF_STREAM;
        int rc = read_fill(st);
        if (rc == EVS_ITEROVER) {
            if (buf_add(st, "]\n", 2) < 0)
                st->failed = 1;
            st->done = 1;
        } else if (rc < 0) {
            /* The status line is gone: all a reader of a broken read can be
             * told is a body that does not end (chunked, unterminated). */
            serve_log("HTTP /read failed after %d events: %s: %s", st->nevents,
                      evs_strerror(rc), evs_last_error());
            st->failed = 1;
            st->len = st->off = 0;
        }
    }
}

/* How long a subscription may stay silent: SSE_KEEPALIVE_NS, or less
 * when the idle timeout is shorter (it would close the connection). */
static uint64_t keepalive_ns(serve *s)
{
    uint64_t idle = (uint64_t)s->cfg.idle_timeout_s * 1000000000u;
    return idle && idle / 2 < SSE_KEEPALIVE_NS ? idle / 2 : SSE_KEEPALIVE_NS;
}

/* Has the subscriber hung up? Checked after each wait without events, so
 * that a client that went away frees its thread within a wait, not at
 * the next event or keepalive. A client that only half-closes is taken
 * as gone too (an SSE client sends nothing after its request). */
static int client_left(const http_stream *st)
{
    if (st->fd < 0)
        return 0;
    struct pollfd p = {st->fd, POLLRDHUP, 0};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* /subscribe: "id: POSITION\ndata: EVENT\n\n" per event, catch-up then
 * live. Blocks in evs_read_tracking (SSE_WAIT_US at a time, woken by
 * commits) until there is something to send, the server stops, or it is
 * time for a keepalive comment. */
static ssize_t sse_reader(void *cls, uint64_t pos, char *out, size_t max)
{
    http_stream *st = cls;
    serve *s = st->s;
    for (;;) {
        if (st->len > st->off) {
            st->last_out_ns = now_ns();
            return (ssize_t)drain(st, out, max);
        }
        if (st->done)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (stopping(s)) {
            buf_addf(st, "event: error\ndata: {\"error\":\"server is shutting down: "
                         "reconnect with after=%" PRIu64 "\"}\n\n",
                     st->after);
            st->done = 1;
            continue;
        }
        if (now_ns() - st->auth_ns >= SSE_AUTH_NS) {
            char msg[256];
            st->auth_ns = now_ns();
            if (serve_check(s, st->authorization, st->tenant, SERVE_READ, msg, sizeof msg) !=
                SERVE_ALLOW) {
                json_t *e = json_pack("{s:s+,s:I}", "error",
                                      "the API key is no longer valid for this stream: ",
                                      msg, "after", (json_int_t)st->after);
                char *text = e ? json_dumps(e, JSON_COMPACT) : NULL;
                json_decref(e);
                buf_addf(st, "event: error\ndata: %s\n\n", text ? text : "{}");
                free(text);
                serve_log("HTTP /subscribe ended: %s", msg);
                st->done = 1;
                continue;
            }
        }
        evs_iter *it = NULL;
        int rc = evs_read_tracking(&it, s->db, &st->t, st->after, SSE_BATCH, SSE_WAIT_US);
        const evs_event *ev;
        while (rc == 0 && (rc = evs_iter_next(&ev, it)) == 0) {
            if (buf_addf(st, "id: %" PRIu64 "\ndata: ", ev->position) < 0 ||
                buf_add_event(st, ev) < 0 || buf_add(st, "\n\n", 2) < 0) {
                rc = EVS_ENOMEM;
                break;
            }
            if (st->len >= s->cfg.subscriber_buffer)
                break; /* the marker is then this event: nothing skipped */
        }
        if (rc == 0 || rc == EVS_ITEROVER) {
            uint64_t m = st->after;
            if (evs_iter_marker(&m, it) == 0 && m > st->after)
                st->after = m;
            serve_metrics_sub_position(st->gauge, st->after);
        } else {
            const char *detail = evs_last_error();
            char msg[600];
            snprintf(msg, sizeof msg, "%s%s%s", evs_strerror(rc), *detail ? ": " : "", detail);
            json_t *e = json_pack("{s:s?,s:I}", "error", msg, "after", (json_int_t)st->after);
            char *text = e ? json_dumps(e, JSON_COMPACT) : NULL;
            json_decref(e);
            st->len = st->off = 0;
            buf_addf(st, "event: error\ndata: %s\n\n", text ? text : "{}");
            free(text);
            st->done = 1;
        }
        evs_iter_free(it);
        if (st->len == 0 && client_left(st)) {
            tl_client_left = 1; /* not an error: see on_mhd_log */
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (st->len == 0 && now_ns() - st->last_out_ns >= keepalive_ns(s))
            buf_add(st, ": keepalive\n\n", 13);
    }
}

static struct MHD_Response *stream_response(http_stream *st, const char *type)
{
    struct MHD_Response *resp = MHD_create_response_from_callback(
        MHD_SIZE_UNKNOWN, STREAM_BLOCK, st->sse ? sse_reader : read_reader, st, stream_free);
    if (!resp)
        return NULL;
    MHD_add_response_header(resp, "Content-Type", type);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (st->sse)
        MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    return resp;
}

/* ------------------------------------------------------------------ */
/* Endpoints                                                           */
/* ------------------------------------------------------------------ */

static const char *tenant_of(struct MHD_Connection *c)
{
    const char *t = MHD_lookup_connection_value(c, MHD_HEADER_KIND, SERVE_TENANT_HEADER);
    return t ? t : "";
}

static enum MHD_Result do_metrics(struct MHD_Connection *c, serve *s, http_req *r)
{
    size_t len = 0;
    char *text = serve_metrics_render(s, &len);
    if (!text)
        return reply_error(c, s, r, 500, "out of memory rendering the metrics");
    return reply_text(c, s, r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
}

static enum MHD_Result do_health(struct MHD_Connection *c, serve *s, http_req *r)
{
    int down = stopping(s);
    return reply_json(c, s, r, down ? 503 : 200,
                      json_pack("{s:s}", "status", down ? "not serving" : "serving"));
}

/* A URL argument's JSON, decoded under a budget; NULL with *status and
 * a message in err. */
static json_t *arg_json(const char *text, const char *what, int *status, char *err,
                        size_t errlen)
{
    http_budget b;
    size_t len = strlen(text);
    budget_begin(&b, len);
    json_t *j = parse_json(text, len, what, status, err, errlen);
    budget_end(&b);
    return j;
}

/* The query=JSON argument (absent: every event) into st. */
static int stream_query(http_stream *st, struct MHD_Connection *c, int *status, char *err,
                        size_t errlen)
{
    const char *q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "query");
    *status = 400;
    if (!q || !*q)
        return 0;
    st->qroot = arg_json(q, "the query parameter", status, err, errlen);
    if (!st->qroot)
        return -1;
    return parse_query(&st->pq, st->qroot, "query", err, errlen);
}

static http_stream *stream_new(serve *s, struct MHD_Connection *c, int sse)
{
    http_stream *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->s = s;
    st->sse = sse;
    st->fd = -1;
    snprintf(st->tenant, sizeof st->tenant, "%s", tenant_of(c));
    return st;
}

static enum MHD_Result do_read(struct MHD_Connection *c, serve *s, http_req *r)
{
    static const char *const okeys[] = {"from", "after", "limit", "backwards", NULL};
    char err[1024];
    int status = 400;
    http_stream *st = stream_new(s, c, 0);
    if (!st)
        return reply_error(c, s, r, 500, "out of memory");
    if (strlen(tenant_of(c)) > EVS_MAX_TENANT_LEN) {
        stream_free(st);
        return reply_error(c, s, r, 400, "%s header longer than %d bytes",
                           SERVE_TENANT_HEADER, EVS_MAX_TENANT_LEN);
    }
    if (stream_query(st, c, &status, err, sizeof err) < 0)
        goto bad;
    uint64_t from = 0, after = 0, limit = 0;
    int has_from = 0, has_after = 0, backwards = 0;
    const char *o = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "options");
    if (o && *o) {
        json_t *opt = arg_json(o, "the options parameter", &status, err, sizeof err);
        if (!opt)
            goto bad;
        int bad = !json_is_object(opt);
        if (bad)
            snprintf(err, sizeof err, "options must be an object {\"from\": N, \"limit\": N, "
                     "\"backwards\": true|false}");
        bad = bad || only_keys(opt, okeys, "options", err, sizeof err) < 0 ||
              get_uint(opt, "from", &from, &has_from, "options", err, sizeof err) < 0 ||
              get_uint(opt, "after", &after, &has_after, "options", err, sizeof err) < 0 ||
              get_uint(opt, "limit", &limit, NULL, "options", err, sizeof err) < 0;
        json_t *b = bad ? NULL : json_object_get(opt, "backwards");
        if (b && !json_is_null(b)) {
            if (!json_is_boolean(b)) {
                snprintf(err, sizeof err, "options: backwards must be true or false");
                bad = 1;
            } else {
                backwards = json_is_true(b);
            }
        }
        json_decref(opt);
        if (bad)
            goto bad;
        if (has_from && has_after) {
            snprintf(err, sizeof err, "options: give from (inclusive) or after "
                     "(exclusive), not both");
            goto bad;
        }
        if (has_after && backwards) {
            snprintf(err, sizeof err, "options: after is for forward reads; a backward "
                     "read starts at from (inclusive)");
            goto bad;
        }
    }
    /* The answer is the events up to the tenant's head now: later fills
     * (read_fill) start from the last position sent and stop there. */
    int rc = evs_head_position(&st->head, s->db, st->tenant);
    if (rc < 0) {
        stream_free(st);
        return reply_evs_error(c, s, r, rc);
    }
    /* evs_read_query's bound is exclusive both ways: forward reads
     * position > bound, backward position < bound. */
    st->backwards = backwards;
    st->has_limit = limit > 0; /* 0: no limit, as evs_read_query */
    st->remaining = limit;
    if (backwards) {
        uint64_t top = has_from && from < st->head ? from : st->head;
        st->bound = top + 1;
        if (top == 0)
            st->done = 1; /* nothing is at or before position 0 */
    } else {
        st->bound = has_after ? after : (from > 0 ? from - 1 : 0);
    }
    if (st->done) {
        buf_add(st, "[]\n", 3);
    } else {
        rc = evs_read_query(&st->it, s->db, st->tenant, &st->pq.q, st->bound,
                            backwards ? EVS_BACKWARD : EVS_FORWARD, limit);
        if (rc < 0) {
            stream_free(st);
            return reply_evs_error(c, s, r, rc);
        }
        buf_add(st, "[", 1);
    }
    struct MHD_Response *resp = stream_response(st, "application/json");
    if (!resp) {
        stream_free(st);
        return MHD_NO;
    }
    return queue(c, s, r, 200, resp);
bad:
    stream_free(st);
    return reply_error(c, s, r, status, "%s", err);
}

static enum MHD_Result do_subscribe(struct MHD_Connection *c, serve *s, http_req *r)
{
    char err[1024];
    int status = 400;
    http_stream *st = stream_new(s, c, 1);
    if (!st)
        return reply_error(c, s, r, 500, "out of memory");
    if (strlen(tenant_of(c)) > EVS_MAX_TENANT_LEN) {
        stream_free(st);
        return reply_error(c, s, r, 400, "%s header longer than %d bytes",
                           SERVE_TENANT_HEADER, EVS_MAX_TENANT_LEN);
    }
    if (stream_query(st, c, &status, err, sizeof err) < 0)
        goto bad;
    /* The Last-Event-ID a reconnecting EventSource sends, else after=N. An
     * EventSource reconnects to the same URL, after= included, and adds
     * the header with the last id it got: the header is always the newer
     * of the two. */
    const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID");
    const char *what = "the Last-Event-ID header";
    if (!a || !*a) {
        a = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "after");
        what = "after";
    }
    if (a && *a) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(a, &end, 10);
        if (errno || *end || *a < '0' || *a > '9') {
            snprintf(err, sizeof err, "%s must be a position (a non-negative integer), "
                     "not \"%.40s\"", what, a);
            goto bad;
        }
        st->after = v;
    }
    st->t = (evs_tracking)EVS_TRACKING_INIT;
    st->t.tenant = st->tenant;
    st->t.query = st->pq.q.nitems ? &st->pq.q : NULL;
    /* Check the filter now, so a bad one is a 400, not a broken stream. */
    evs_iter *probe = NULL;
    int rc = evs_read_tracking(&probe, s->db, &st->t, st->after, 1, 0);
    evs_iter_free(probe);
    if (rc < 0) {
        stream_free(st);
        return reply_evs_error(c, s, r, rc);
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    st->fd = ci ? (int)ci->connect_fd : -1;
    /* Kept to check again while the stream lasts: a key removed by SIGHUP
     * must not go on reading. */
    const char *az = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    st->auth_ns = now_ns();
    if (az && !(st->authorization = strdup(az))) {
        stream_free(st);
        return reply_error(c, s, r, 500, "out of memory");
    }
    st->gauge = serve_metrics_sub_open(s->metrics, SERVE_PROTO_HTTP);
    if (!st->gauge) {
        stream_free(st);
        return reply_error(c, s, r, 500, "out of memory");
    }
    atomic_fetch_add(&s->http->streams, 1);
    serve_metrics_sub_position(st->gauge, st->after);
    st->last_out_ns = now_ns();
    /* A first comment, so the client sees the headers at once. */
    buf_addf(st, ": subscribed after %" PRIu64 "\n\n", st->after);
    struct MHD_Response *resp = stream_response(st, "text/event-stream");
    if (!resp) {
        stream_free(st);
        return MHD_NO;
    }
    return queue(c, s, r, 200, resp);
bad:
    stream_free(st);
    return reply_error(c, s, r, status, "%s", err);
}

/* The events of an append, parsed; strings point into the JSON. */
typedef struct pappend {
    evs_event_data *events;
    size_t nevents;
    const char **tags;
    char **metadata;
    unsigned char **decoded; /* data sent as base64, decoded */
    pquery cond_q;
    evs_append_condition cond;
    int has_cond;
} pappend;

static void pappend_free(pappend *pa)
{
    for (size_t i = 0; pa->metadata && i < pa->nevents; i++)
        free(pa->metadata[i]);
    for (size_t i = 0; pa->decoded && i < pa->nevents; i++)
        free(pa->decoded[i]);
    free(pa->metadata);
    free(pa->decoded);
    free(pa->events);
    free(pa->tags);
    pquery_free(&pa->cond_q);
}

static int parse_event(pappend *pa, size_t i, json_t *e, size_t *ntag, char *err,
                       size_t errlen)
{
    static const char *const ekeys[] = {"type",     "tags", "data", "dataEncoding",
                                        "metadata", "id",   NULL};
    char what[48];
    snprintf(what, sizeof what, "events[%zu]", i);
    evs_event_data *ev = &pa->events[i];
    if (!json_is_object(e)) {
        snprintf(err, errlen, "%s must be an object {\"type\": \"...\", \"tags\": [...], "
                 "\"data\": \"...\"}", what);
        return -1;
    }
    if (only_keys(e, ekeys, what, err, errlen) < 0)
        return -1;
    json_t *type = json_object_get(e, "type");
    if (!json_is_string(type)) {
        snprintf(err, errlen, "%s: type must be a string (the event type)", what);
        return -1;
    }
    ev->type = json_string_value(type);
    ev->content_type = EVS_CONTENT_BINARY;
    json_t *data = json_object_get(e, "data");
    if (data && !json_is_null(data)) {
        if (!json_is_string(data)) {
            snprintf(err, errlen, "%s: data must be a string (send objects as their JSON "
                     "text, as the dcb.events clients do with JSON.stringify)", what);
            return -1;
        }
        ev->data = json_string_value(data);
        ev->data_len = json_string_length(data);
    }
    json_t *enc = json_object_get(e, "dataEncoding");
    if (enc && !json_is_null(enc)) {
        if (!json_is_string(enc) || strcmp(json_string_value(enc), "base64") != 0) {
            snprintf(err, errlen, "%s: dataEncoding must be \"base64\" (data is then the "
                     "bytes in base64, as /read gives data that is not UTF-8 or holds a "
                     "NUL), or absent", what);
            return -1;
        }
        size_t n = ev->data_len;
        const char *in = ev->data ? ev->data : "";
        unsigned char *out = malloc(n / 4 * 3 + 1);
        int got = n % 4 == 0 && n <= INT32_MAX && out
                      ? EVP_DecodeBlock(out, (const unsigned char *)in, (int)n)
                      : -1;
        if (got < 0) {
            free(out);
            snprintf(err, errlen, "%s: data is not valid base64 (dataEncoding is \"base64\": "
                     "groups of 4 characters A-Z a-z 0-9 + /, padded with =)", what);
            return -1;
        }
        /* EVP_DecodeBlock counts the padding as zero bytes */
        if (n >= 1 && in[n - 1] == '=')
            got--;
        if (n >= 2 && in[n - 2] == '=')
            got--;
        pa->decoded[i] = out;
        ev->data = (const char *)out;
        ev->data_len = (size_t)got;
    }
    json_t *tags = json_object_get(e, "tags");
    if (tags && !json_is_null(tags)) {
        if (!json_is_array(tags)) {
            snprintf(err, errlen, "%s: tags must be an array of strings", what);
            return -1;
        }
        ev->tags = pa->tags + *ntag;
        size_t k;
        json_t *t;
        json_array_foreach(tags, k, t) {
            if (!json_is_string(t)) {
                snprintf(err, errlen, "%s: tags[%zu] must be a string", what, k);
                return -1;
            }
            pa->tags[(*ntag)++] = json_string_value(t);
        }
        ev->ntags = json_array_size(tags);
    }
    json_t *md = json_object_get(e, "metadata");
    if (md && !json_is_null(md)) {
        const char *k;
        json_t *v;
        int ok = json_is_object(md);
        json_object_foreach(md, k, v) ok = ok && json_is_string(v);
        if (!ok) {
            snprintf(err, errlen, "%s: metadata must be an object of string values "
                     "({\"key\": \"value\", ...})", what);
            return -1;
        }
        if (json_object_size(md) > 0) {
            /* members in the order given, as the gRPC side stores them */
            pa->metadata[i] = json_dumps(md, JSON_COMPACT);
            if (!pa->metadata[i]) {
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            ev->metadata = pa->metadata[i];
            ev->metadata_len = strlen(pa->metadata[i]);
        }
    }
    json_t *id = json_object_get(e, "id");
    if (id && !json_is_null(id)) {
        if (!json_is_string(id) || evs_uuid_parse(&ev->id, json_string_value(id)) < 0) {
            snprintf(err, errlen, "%s: id must be a UUID string "
                     "(xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)", what);
            return -1;
        }
    }
    return 0;
}

static int parse_append(pappend *pa, json_t *root, char *err, size_t errlen)
{
    static const char *const rkeys[] = {"events", "condition", NULL};
    static const char *const ckeys[] = {"failIfEventsMatch", "after", "afterPosition", NULL};
    memset(pa, 0, sizeof *pa);
    if (!json_is_object(root)) {
        snprintf(err, errlen, "the request body must be an object {\"events\": [...], "
                 "\"condition\": {...}}");
        return -1;
    }
    if (only_keys(root, rkeys, "the request body", err, errlen) < 0)
        return -1;
    json_t *events = json_object_get(root, "events");
    if (!json_is_array(events) || json_array_size(events) == 0) {
        snprintf(err, errlen, "events must be a non-empty array of events {\"type\": "
                 "\"...\", \"tags\": [...], \"data\": \"...\"}");
        return -1;
    }
    size_t n = json_array_size(events), ntags = 0, i;
    json_t *e;
    json_array_foreach(events, i, e) {
        json_t *t = json_is_object(e) ? json_object_get(e, "tags") : NULL;
        ntags += json_is_array(t) ? json_array_size(t) : 0;
    }
    pa->events = calloc(n, sizeof *pa->events);
    pa->metadata = calloc(n, sizeof *pa->metadata);
    pa->decoded = calloc(n, sizeof *pa->decoded);
    pa->tags = calloc(ntags ? ntags : 1, sizeof *pa->tags);
    pa->nevents = n;
    if (!pa->events || !pa->metadata || !pa->decoded || !pa->tags) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    size_t nt = 0;
    json_array_foreach(events, i, e) {
        if (parse_event(pa, i, e, &nt, err, errlen) < 0)
            return -1;
    }
    json_t *cond = json_object_get(root, "condition");
    if (cond && !json_is_null(cond)) {
        if (!json_is_object(cond)) {
            snprintf(err, errlen, "condition must be an object {\"failIfEventsMatch\": "
                     "{\"items\": [...]}, \"after\": N}");
            return -1;
        }
        if (only_keys(cond, ckeys, "condition", err, errlen) < 0)
            return -1;
        json_t *q = json_object_get(cond, "failIfEventsMatch");
        if (!q) {
            snprintf(err, errlen, "condition: failIfEventsMatch is missing (a query "
                     "{\"items\": [...]})");
            return -1;
        }
        if (parse_query(&pa->cond_q, q, "condition.failIfEventsMatch", err, errlen) < 0)
            return -1;
        uint64_t after = 0;
        int has1 = 0, has2 = 0;
        if (get_uint(cond, "after", &after, &has1, "condition", err, errlen) < 0 ||
            get_uint(cond, "afterPosition", &after, &has2, "condition", err, errlen) < 0)
            return -1;
        if (has1 && has2) {
            snprintf(err, errlen, "condition: give after or afterPosition, not both");
            return -1;
        }
        pa->cond.fail_if_events_match = pa->cond_q.q;
        pa->cond.after = after;
        pa->has_cond = 1;
    }
    return 0;
}

static enum MHD_Result do_append(struct MHD_Connection *c, serve *s, http_req *r)
{
    char err[1024];
    /* The latency counts from the complete body: a slow upload is the
     * client's time, not the store's. */
    uint64_t t0 = now_ns();
    if (r->body_too_big)
        return reply_error(c, s, r, 413, "request body larger than %" PRIu32
                           " bytes (the server's max message size)",
                           s->cfg.max_message_bytes);
    if (r->busy)
        return reply_error(c, s, r, 503, "the server holds %zu MiB of request bodies, its "
                           "limit: retry later", HTTP_MEMORY_CAP >> 20);
    /* The tree is counted until it is freed: the budget spans the decode,
     * the append and the free. */
    http_budget b;
    int status = 400;
    size_t body_len = r->body_len;
    budget_begin(&b, body_len);
    json_t *root = parse_json(r->body ? r->body : "", r->body_len, "the request body",
                              &status, err, sizeof err);
    drop_body(r); /* the tree holds what is needed */
    pappend pa;
    memset(&pa, 0, sizeof pa);
    if (root && parse_append(&pa, root, err, sizeof err) < 0) {
        if (b.over) {
            status = b.over == 1 ? 413 : 503;
            snprintf(err, sizeof err, "the request body needs more memory than its "
                     "decoding budget (%zu MiB)", (b.limit + (1u << 20) - 1) >> 20);
        }
        pappend_free(&pa);
        json_decref(root);
        root = NULL;
    }
    if (!root) {
        budget_end(&b);
        trim(body_len);
        return reply_error(c, s, r, status, "%s", err);
    }
    evs_append_result res;
    memset(&res, 0, sizeof res);
    uint64_t conflict = 0;
    int rc = evs_dcb_append(&res, &conflict, s->db, tenant_of(c), pa.events, pa.nevents,
                            pa.has_cond ? &pa.cond : NULL);
    uint64_t lat = now_ns() - t0;
    if (rc == 0)
        serve_notify_head(s, res.last_position); /* wake gRPC subscriptions */
    serve_metrics_append(s->metrics, SERVE_PROTO_HTTP, rc, pa.nevents, lat);
    pappend_free(&pa);
    json_decref(root);
    budget_end(&b);
    trim(body_len);
    json_int_t us = (json_int_t)(lat / 1000u);
    if (rc == 0)
        return reply_json(c, s, r, 200,
                          json_pack("{s:I,s:b,s:I,s:I}", "durationInMicroseconds", us,
                                    "appendConditionFailed", 0, "firstPosition",
                                    (json_int_t)res.first_position, "lastPosition",
                                    (json_int_t)res.last_position));
    if (rc == EVS_ECONFLICT)
        /* The conformance suite's clients take any status but 200 as a
         * failed request, and read a failed condition from the body. */
        return reply_json(c, s, r, 200,
                          json_pack("{s:I,s:b,s:I,s:s}", "durationInMicroseconds", us,
                                    "appendConditionFailed", 1, "conflictPosition",
                                    (json_int_t)conflict, "message", evs_last_error()));
    return reply_evs_error(c, s, r, rc);
}

/* ------------------------------------------------------------------ */
/* The access handler                                                  */
/* ------------------------------------------------------------------ */

static enum route route_of(const char *url, const char **want_method)
{
    static const struct {
        const char *path, *method;
        enum route r;
    } routes[] = {{"/metrics", "GET", R_METRICS},   {"/health", "GET", R_HEALTH},
                  {"/read", "GET", R_READ},         {"/append", "POST", R_APPEND},
                  {"/subscribe", "GET", R_SUBSCRIBE}};
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (strcmp(url, routes[i].path) == 0) {
            *want_method = routes[i].method;
            return routes[i].r;
        }
    return R_NONE;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    serve *s = cls;
    http_req *r = *con_cls;
    if (!r) {
        /* First call: only the headers are in. An answer queued now makes
         * libmicrohttpd close the connection after it (it cannot know what
         * follows), so requests are answered on the next call, with the
         * request complete, and the connection is kept alive. Refusals of
         * a request with a body (a POST, or any with a length or chunks)
         * are the exception: answered at once, the body unread. */
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        *con_cls = r;
        const char *want = NULL;
        r->route = route_of(url, &want);
        if (r->route == R_NONE) {
            r->err_status = 404;
            snprintf(r->err, sizeof r->err,
                     "no such endpoint %.100s: the endpoints are GET /read, POST /append, "
                     "GET /subscribe, GET /metrics, GET /health",
                     url);
        } else if (strcmp(method, want) != 0) {
            r->err_status = 405;
            r->allow = want;
            snprintf(r->err, sizeof r->err, "%s takes %s, not %.20s", url, want, method);
            r->route = R_NONE; /* counted as method="other": it is not that route */
        }
        /* A body is refused before it is read: on every route but POST
         * /append, and there beyond --max-message-bytes by its length. */
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        const char *te = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Transfer-Encoding");
        int has_body = (cl && strspn(cl, " \t0") != strlen(cl)) || te;
        unsigned long long clen = cl ? strtoull(cl, NULL, 10) : 0;
        if (r->err_status) {
            /* answered below */
        } else if (has_body && r->route != R_APPEND) {
            r->err_status = 413;
            snprintf(r->err, sizeof r->err, "%s takes no request body", url);
        } else if (r->route == R_APPEND && clen > s->cfg.max_message_bytes) {
            r->err_status = 413;
            snprintf(r->err, sizeof r->err, "request body of %llu bytes is larger than %" PRIu32
                     " bytes (the server's --max-message-bytes)", clen,
                     s->cfg.max_message_bytes);
        } else if (r->route == R_APPEND &&
                   atomic_load(&http_memory) + clen > HTTP_MEMORY_CAP) {
            r->err_status = 503;
            snprintf(r->err, sizeof r->err, "the server holds %zu MiB of request bodies, its "
                     "limit: retry later", HTTP_MEMORY_CAP >> 20);
        } else if (r->route == R_HEALTH) {
            /* no credentials: probes need none */
        } else if (stopping(s)) {
            r->err_status = 503;
            snprintf(r->err, sizeof r->err, "the server is shutting down");
        } else {
            const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
            int v = serve_check(s, auth, tenant_of(c),
                                r->route == R_APPEND    ? SERVE_WRITE
                                : r->route == R_METRICS ? SERVE_ADMIN
                                                        : SERVE_READ,
                                r->err, sizeof r->err);
            if (v == SERVE_DENY_UNAUTHENTICATED)
                r->err_status = 401;
            else if (v != SERVE_ALLOW)
                r->err_status = 403;
        }
        if (r->err_status && (has_body || strcmp(method, "POST") == 0))
            return reply_error(c, s, r, r->err_status, "%s", r->err);
        return MHD_YES;
    }
    if (r->answered) {
        /* A body after an early answer: drop it. */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->err_status && *upload_data_size > 0) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (r->body_too_big || r->busy || r->body_len + n > s->cfg.max_message_bytes ||
            charge(r, n) < 0) {
            /* A body without a length (chunked) found too big or with the
             * server's memory full: read and dropped, so the answer can be
             * a 413 or 503, up to the message size; beyond, the connection
             * is closed. */
            if (!r->body_too_big && r->body_len + n <= s->cfg.max_message_bytes)
                r->busy = 1;
            else
                r->body_too_big = 1;
            drop_body(r);
            r->dropped += n;
            return r->dropped > s->cfg.max_message_bytes ? MHD_NO : MHD_YES;
        }
        char *nb = realloc(r->body, r->body_len + n + 1);
        if (!nb)
            return MHD_NO;
        memcpy(nb + r->body_len, upload_data, n);
        r->body = nb;
        r->body_len += n;
        r->body[r->body_len] = '\0';
        return MHD_YES;
    }
    if (r->err_status)
        return reply_error(c, s, r, r->err_status, "%s", r->err);
    switch (r->route) {
    case R_HEALTH: return do_health(c, s, r);
    case R_METRICS: return do_metrics(c, s, r);
    case R_READ: return do_read(c, s, r);
    case R_APPEND: return do_append(c, s, r);
    case R_SUBSCRIBE: return do_subscribe(c, s, r);
    default: return MHD_NO;
    }
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    http_req *r = *con_cls;
    if (!r)
        return;
    drop_body(r);
    free(r);
    *con_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    serve_http *h = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED)
        atomic_fetch_add(&h->connections, 1);
    else if (toe == MHD_CONNECTION_NOTIFY_CLOSED)
        atomic_fetch_sub(&h->connections, 1);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    /* A subscriber hanging up is how SSE streams end: libmicrohttpd calls
     * the reader's END_WITH_ERROR an application error, on this thread,
     * right after it returned. */
    if (tl_client_left && strstr(line, "application error generating response")) {
        tl_client_left = 0;
        return;
    }
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    serve_log("HTTP: %s", line);
}

/* ------------------------------------------------------------------ */
/* Start and stop                                                      */
/* ------------------------------------------------------------------ */

static char *read_file(const char *path, char *msg, size_t msglen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(msg, msglen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    char *p = NULL;
    size_t len = 0, cap = 0, n;
    char chunk[8192];
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (len + n + 1 > cap) {
            cap = (len + n + 1) * 2;
            char *np = realloc(p, cap);
            if (!np) {
                free(p);
                fclose(f);
                snprintf(msg, msglen, "out of memory reading %s", path);
                return NULL;
            }
            p = np;
        }
        memcpy(p + len, chunk, n);
        len += n;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad || len == 0) {
        free(p);
        snprintf(msg, msglen, "cannot read %s: %s", path, bad ? strerror(errno) : "empty file");
        return NULL;
    }
    p[len] = '\0';
    return p;
}

/* "HOST:PORT" ("[V6]:PORT"; HOST empty: every interface) into addr. */
static int resolve(struct sockaddr_storage *addr, socklen_t *addrlen, const char *spec,
                   char *msg, size_t msglen)
{
    const char *colon = strrchr(spec, ':');
    if (!colon || !colon[1]) {
        snprintf(msg, msglen, "--http %s: expected HOST:PORT (e.g. 127.0.0.1:8080), or off",
                 spec);
        return -1;
    }
    char host[256];
    size_t hl = (size_t)(colon - spec);
    if (hl >= sizeof host) {
        snprintf(msg, msglen, "--http %s: host name too long", spec);
        return -1;
    }
    memcpy(host, spec, hl);
    host[hl] = '\0';
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    char *end;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (errno || *end || port > 65535 || colon[1] == '-' || colon[1] == '+') {
        snprintf(msg, msglen, "--http %s: port must be 0..65535", spec);
        return -1;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int g = getaddrinfo(*host ? host : NULL, colon + 1, &hints, &res);
    if (g != 0 || !res) {
        snprintf(msg, msglen, "--http %s: cannot resolve %s: %s", spec, host,
                 gai_strerror(g));
        return -1;
    }
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static int is_loopback(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)a;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)a;
        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
    }
    return 0;
}

int serve_http_start(serve *s, char *msg, size_t msglen)
{
    const char *spec = s->cfg.http;
    if (!spec || strcmp(spec, "off") == 0)
        return 0;
    struct sockaddr_storage addr;
    socklen_t addrlen = 0;
    if (resolve(&addr, &addrlen, spec, msg, msglen) < 0)
        return -1;
    int tls = s->cfg.tls_cert != NULL;
    if (tls && !s->cfg.tls_key) {
        snprintf(msg, msglen, "--tls-cert needs --tls-key (the certificate's private key)");
        return -1;
    }
    if (!tls && !is_loopback(&addr) && !s->cfg.insecure) {
        snprintf(msg, msglen,
                 "--http %s is not a loopback address and no TLS is configured: give "
                 "--tls-cert and --tls-key, or --insecure to serve cleartext HTTP there",
                 spec);
        return -1;
    }
    if (tls && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        snprintf(msg, msglen, "this libmicrohttpd is built without TLS: the HTTP listener "
                 "cannot use --tls-cert (use --http off, or a loopback address behind a "
                 "TLS proxy)");
        return -1;
    }
    serve_http *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(msg, msglen, "out of memory");
        return -1;
    }
    if (tls) {
        h->cert = read_file(s->cfg.tls_cert, msg, msglen);
        h->key = h->cert ? read_file(s->cfg.tls_key, msg, msglen) : NULL;
        if (!h->key) {
            free(h->cert);
            free(h);
            return -1;
        }
    }
    /* poll(), not select(): select() cannot watch a descriptor >= 1024
     * (FD_SETSIZE), and libmicrohttpd refuses such connections, though
     * the process raised its descriptor limit for gRPC and HTTP clients
     * alike. epoll does not go with a thread per connection. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_ERROR_LOG | MHD_USE_ITC | MHD_USE_POLL;
    if (addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (tls)
        flags |= MHD_USE_TLS;
    s->http = h;
    unsigned limit = s->cfg.max_connections ? s->cfg.max_connections : 10000;
    unsigned timeout = s->cfg.idle_timeout_s;
    /* The logger first: libmicrohttpd logs the options after it. */
    if (tls)
        h->d = MHD_start_daemon(
            flags, 0, NULL, NULL, on_request, s,
            MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
            MHD_OPTION_SOCK_ADDR, &addr,
            MHD_OPTION_CONNECTION_LIMIT, limit,
            MHD_OPTION_CONNECTION_TIMEOUT, timeout,
            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HEADER_MEMORY,
            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
            MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
            MHD_OPTION_HTTPS_MEM_CERT, h->cert,
            MHD_OPTION_HTTPS_MEM_KEY, h->key,
            MHD_OPTION_END);
    else
        h->d = MHD_start_daemon(
            flags, 0, NULL, NULL, on_request, s,
            MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
            MHD_OPTION_SOCK_ADDR, &addr,
            MHD_OPTION_CONNECTION_LIMIT, limit,
            MHD_OPTION_CONNECTION_TIMEOUT, timeout,
            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HEADER_MEMORY,
            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
            MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
            MHD_OPTION_END);
    if (!h->d) {
        snprintf(msg, msglen, "cannot start the HTTP listener on %s%s (address in use? "
                 "bad certificate or key?)", spec, tls ? " with TLS" : "");
        s->http = NULL;
        free(h->cert);
        free(h->key);
        free(h);
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    serve_log("HTTP listening on %s (port %u, %s)", spec, info ? info->port : 0u,
              tls ? "TLS" : "cleartext");
    return 0;
}

void serve_http_stop(serve *s)
{
    serve_http *h = s->http;
    if (!h)
        return;
    /* Subscriptions notice within SSE_WAIT_US and end their streams with
     * an error event; reads and appends in flight finish; then the
     * daemon closes every connection and joins its threads. */
    atomic_store(&h->stopping, 1);
    MHD_socket ls = MHD_quiesce_daemon(h->d);
    /* Give the subscriptions the time to send their last event (they
     * wake within SSE_WAIT_US); a client that reads nothing does not
     * hold the stop longer than that. */
    for (int i = 0; i < 300 && atomic_load(&h->streams) > 0; i++)
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    MHD_stop_daemon(h->d);
    if (ls != MHD_INVALID_SOCKET)
        close(ls);
    s->http = NULL;
    free(h->cert);
    free(h->key);
    free(h);
    serve_log("HTTP listener stopped");
}

uint64_t serve_http_connections(serve *s)
{
    serve_http *h = s->http;
    return h ? atomic_load(&h->connections) : 0;
}
