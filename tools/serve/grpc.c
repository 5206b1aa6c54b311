/*
 * grpc.c -- the gRPC listener of `evs serve`, on gRPC's C core (libgrpc):
 * HTTP/2, TLS, flow control, keepalive and message limits are gRPC's;
 * this file accepts calls of any method (generic, unregistered calls),
 * checks API keys, runs each call's steps on a pool of worker threads (a
 * store call may block: an append waits for its group's fdatasync) and
 * sends the answers.
 *
 * Threads: two completion-queue threads run every completion (never a
 * store call); cfg.workers worker threads run handlers and steps. A call
 * has one owner at a time (gcall.h); the close operation, which
 * completes when the client cancels or the call ends, runs beside it and
 * only sets a flag or takes a parked call back.
 *
 * A streaming call has at most one message in flight: the next batch is
 * read from the store only after gRPC took the previous one within the
 * client's flow-control window. A client that stops reading therefore
 * holds one message and gRPC's window, never a growing queue, and its
 * subscription resumes from the store where it left off.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <jansson.h>

#include "gcall.h"
#include "umadb_wire.pb-c.h"

typedef struct tag {
    void (*done)(struct tag *t, int ok);
} tag;

typedef struct job {
    struct job *next;
    void (*run)(struct job *j);
} job;

struct gcall {
    serve_grpc *g;
    grpc_call *call;
    const gcall_method *m;
    char method[160];
    char tenant[256];
    tag accept_tag, recv_tag, close_tag, send_tag;
    grpc_call_details details;
    grpc_metadata_array md;
    grpc_byte_buffer *recv_bb;
    int close_cancelled;    /* written by gRPC when the close op completes */
    atomic_int client_gone; /* the close op completed */
    atomic_int refs;        /* the driving flow + the close op */
    int sent_md;
    int finishing;          /* the batch in flight carries the status */
    int status;
    gcall_step next;
    job j;
    serve_waiter w;
    void *state;
    void (*free_state)(void *);
    uint64_t started_ns;
    grpc_byte_buffer *send_bb;
    grpc_slice status_slice;
    int has_status_slice;
    grpc_metadata trailer;
    int has_trailer;
    grpc_metadata trailers[4]; /* gcall_fail_md's */
    size_t ntrailers;
    uint8_t *cs_buf;        /* client streaming: the messages so far */
    size_t cs_len, cs_cap;
    int cs_truncated;
    int cs;                 /* the method is client streaming */
    size_t queued;          /* request bytes counted in g->queued_bytes */
    unsigned auth_gen;      /* s->auth_gen when the key was last checked */
    uint64_t park_seen;     /* gcall_park waiting for its headers to go */
    gcall_step park_next;
    ProtobufCAllocator alloc; /* the request's decoding budget */
    size_t alloc_used, alloc_budget;
    gcall *live_prev, *live_next;
};

struct serve_grpc {
    serve *s;
    grpc_server *server;
    grpc_completion_queue *cq;
    grpc_resource_quota *quota;
    pthread_t cq_threads[2];
    int ncq;
    /* worker pool */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    job *head, *tail;
    int workers_stop;
    pthread_t *workers;
    unsigned nworkers;
    /* live calls, for the shutdown log */
    gcall *live;
    uint64_t nlive;
    /* request bytes received and waiting for a worker (bounded) */
    atomic_size_t queued_bytes;
    /* bytes of decoded requests alive (bounded) */
    atomic_size_t decoded_bytes;
    /* shutdown */
    tag shutdown_tag;
    int shut_done;
    pthread_cond_t shut_cond;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#define CONTAINER(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Memory bounds against clients that send many or amplifying requests
 * (docs/SERVER.md, "Limits"): request bytes waiting for a worker, and
 * bytes of decoded messages (protobuf-c builds a struct per entry: 2
 * bytes of an empty Event decode into ~150), in all and per call. */
#define QUEUED_BYTES_MAX ((size_t)256 << 20)
#define DECODED_BYTES_MAX ((size_t)256 << 20)
#define DECODE_FACTOR 16 /* a call may decode into 16 x its bytes + 1 MiB */

/* ------------------------------------------------------------------ */
/* Worker pool                                                         */
/* ------------------------------------------------------------------ */

static void pool_push(serve_grpc *g, job *j)
{
    pthread_mutex_lock(&g->lock);
    j->next = NULL;
    if (g->tail)
        g->tail->next = j;
    else
        g->head = j;
    g->tail = j;
    pthread_cond_signal(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

static void *worker_main(void *arg)
{
    serve_grpc *g = arg;
    pthread_mutex_lock(&g->lock);
    for (;;) {
        while (!g->head && !g->workers_stop)
            pthread_cond_wait(&g->cond, &g->lock);
        if (!g->head)
            break;
        job *j = g->head;
        g->head = j->next;
        if (!g->head)
            g->tail = NULL;
        pthread_mutex_unlock(&g->lock);
        j->run(j);
        pthread_mutex_lock(&g->lock);
    }
    pthread_mutex_unlock(&g->lock);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Calls                                                               */
/* ------------------------------------------------------------------ */

serve *gcall_serve(gcall *c) { return c->g->s; }
const char *gcall_tenant(gcall *c) { return c->tenant; }
uint64_t gcall_started_ns(gcall *c) { return c->started_ns; }
void *gcall_state(gcall *c) { return c->state; }

int gcall_done(gcall *c)
{
    return atomic_load(&c->client_gone) || atomic_load(&c->g->s->stopping);
}

void gcall_set_state(gcall *c, void *state, void (*free_fn)(void *))
{
    c->state = state;
    c->free_state = free_fn;
}

/* protobuf-c's allocator for a call's request: every block carries its
 * size and server in front, counted against the call's budget and the
 * server's. Freeing needs no call (gcall_free_allocator): a request may be
 * freed after the step's last gcall_* call, when the call may be gone. */
typedef struct {
    serve_grpc *g;
    size_t size;
    max_align_t pad[];
} ablock;

static void *pb_alloc(void *data, size_t size)
{
    gcall *c = data;
    size_t need = sizeof(ablock) + size;
    if (c->alloc_used + need > c->alloc_budget)
        return NULL;
    size_t was = atomic_fetch_add(&c->g->decoded_bytes, need);
    if (was + need > DECODED_BYTES_MAX) {
        atomic_fetch_sub(&c->g->decoded_bytes, need);
        return NULL;
    }
    ablock *b = malloc(need);
    if (!b) {
        atomic_fetch_sub(&c->g->decoded_bytes, need);
        return NULL;
    }
    b->g = c->g;
    b->size = need;
    c->alloc_used += need; /* frees do not give budget back */
    return b->pad;
}

static void pb_free(void *data, void *p)
{
    (void)data;
    if (!p)
        return;
    ablock *b = (ablock *)((char *)p - offsetof(ablock, pad));
    atomic_fetch_sub(&b->g->decoded_bytes, b->size);
    free(b);
}

static ProtobufCAllocator free_allocator = {NULL, pb_free, NULL};

ProtobufCAllocator *gcall_allocator(gcall *c) { return &c->alloc; }
ProtobufCAllocator *gcall_free_allocator(void) { return &free_allocator; }

static void call_unref(gcall *c)
{
    if (atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    serve_grpc *g = c->g;
    pthread_mutex_lock(&g->lock);
    if (c->live_prev)
        c->live_prev->live_next = c->live_next;
    else
        g->live = c->live_next;
    if (c->live_next)
        c->live_next->live_prev = c->live_prev;
    g->nlive--;
    if (g->nlive == 0)
        pthread_cond_broadcast(&g->shut_cond);
    pthread_mutex_unlock(&g->lock);
    if (c->queued)
        atomic_fetch_sub(&g->queued_bytes, c->queued);
    if (c->free_state)
        c->free_state(c->state);
    if (c->recv_bb)
        grpc_byte_buffer_destroy(c->recv_bb);
    free(c->cs_buf);
    grpc_call_details_destroy(&c->details);
    grpc_metadata_array_destroy(&c->md);
    if (c->call)
        grpc_call_unref(c->call);
    free(c);
}

static void send_done(tag *t, int ok);

/* Start a batch: initial metadata when not sent yet, then msg (may be
 * NULL), then the status when code >= 0. */
static void start_send(gcall *c, grpc_byte_buffer *msg, int code, const char *text,
                       const uint8_t *details, size_t details_len)
{
    grpc_op ops[3];
    size_t n = 0;
    memset(ops, 0, sizeof(ops));
    if (!c->sent_md) {
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[n].data.send_initial_metadata.count = 0;
        n++;
        c->sent_md = 1;
    }
    if (msg) {
        c->send_bb = msg;
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].data.send_message.send_message = msg;
        n++;
    }
    if (code >= 0) {
        c->finishing = 1;
        c->status = code;
        c->status_slice = grpc_slice_from_copied_string(text ? text : "");
        c->has_status_slice = 1;
        ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
        ops[n].data.send_status_from_server.status = (grpc_status_code)code;
        ops[n].data.send_status_from_server.status_details = &c->status_slice;
        if (details && details_len) {
            c->trailer.key = grpc_slice_from_static_string("grpc-status-details-bin");
            c->trailer.value = grpc_slice_from_copied_buffer((const char *)details, details_len);
            c->has_trailer = 1;
            ops[n].data.send_status_from_server.trailing_metadata_count = 1;
            ops[n].data.send_status_from_server.trailing_metadata = &c->trailer;
        } else if (c->ntrailers) {
            ops[n].data.send_status_from_server.trailing_metadata_count = c->ntrailers;
            ops[n].data.send_status_from_server.trailing_metadata = c->trailers;
        }
        n++;
    }
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, &c->send_tag, NULL);
    if (e != GRPC_CALL_OK) {
        serve_log("gRPC call %s: could not start a send (grpc_call_error %d)", c->method,
                  (int)e);
        send_done(&c->send_tag, 0);
    }
}

static void run_next(job *j)
{
    gcall *c = CONTAINER(j, gcall, j);
    gcall_step next = c->next;
    c->next = NULL;
    next(c);
}

static void send_done(tag *t, int ok)
{
    gcall *c = CONTAINER(t, gcall, send_tag);
    if (c->send_bb) {
        grpc_byte_buffer_destroy(c->send_bb);
        c->send_bb = NULL;
    }
    if (c->has_status_slice) {
        grpc_slice_unref(c->status_slice);
        c->has_status_slice = 0;
    }
    if (c->has_trailer) {
        grpc_slice_unref(c->trailer.value);
        c->has_trailer = 0;
    }
    for (size_t i = 0; i < c->ntrailers; i++) {
        grpc_slice_unref(c->trailers[i].key);
        grpc_slice_unref(c->trailers[i].value);
    }
    c->ntrailers = 0;
    if (c->finishing) {
        /* Unknown methods under one label: a client must not be able to
         * grow /metrics without bound by inventing method names. */
        serve_metrics_request(c->g->s->metrics, SERVE_PROTO_GRPC,
                              c->m ? c->m->path + 1 : "unknown", c->status);
        call_unref(c);
        return;
    }
    if (!ok && !gcall_done(c)) {
        /* The message could not be sent but the close op has not told us
         * yet: the call is over for gRPC anyway. */
        start_send(c, NULL, GS_CANCELLED, "the message could not be sent", NULL, 0);
        return;
    }
    /* The step decides (it sees gcall_done when the call is over). */
    c->j.run = run_next;
    pool_push(c->g, &c->j);
}

/* Serialize msg into a byte buffer. */
static grpc_byte_buffer *pack(const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    grpc_slice sl = grpc_slice_malloc(len);
    protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(sl));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
    grpc_slice_unref(sl);
    return bb;
}

void gcall_reply(gcall *c, const ProtobufCMessage *msg)
{
    start_send(c, pack(msg), GS_OK, "", NULL, 0);
}

void gcall_send(gcall *c, const ProtobufCMessage *msg, gcall_step next)
{
    c->next = next;
    start_send(c, pack(msg), -1, NULL, NULL, 0);
}

void gcall_end(gcall *c)
{
    start_send(c, NULL, GS_OK, "", NULL, 0);
}

void gcall_fail(gcall *c, int code, int error_type, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    int tn = vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    /* Cut to a whole UTF-8 character: clients decode the message as a
     * proto3 string and refuse invalid UTF-8. */
    if (tn >= (int)sizeof(text)) {
        size_t l = sizeof(text) - 1;
        while (l > 0 && ((unsigned char)text[l] & 0xc0) == 0x80)
            l--;
        text[l] = 0;
    }
    /* The details UmaDB's clients decode: umadb.v1.ErrorResponse. */
    uint8_t det[sizeof(text) + 32];
    size_t n = 0;
    if (error_type >= 0) {
        Umadb__Wire__ErrorResponse er = UMADB__WIRE__ERROR_RESPONSE__INIT;
        er.has_message = 1;
        er.message.data = (uint8_t *)text;
        er.message.len = strlen(text);
        er.has_error_type = 1; /* sent also when 0 (IO) */
        er.error_type = (Umadb__Wire__ErrorResponse__ErrorType)error_type;
        if (umadb__wire__error_response__get_packed_size(&er) <= sizeof(det))
            n = umadb__wire__error_response__pack(&er, det);
    }
    start_send(c, NULL, code, text, n ? det : NULL, n);
}

void gcall_fail_md(gcall *c, int code, const char *const *kv, size_t nkv, const char *fmt,
                   ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    int tn = vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (tn >= (int)sizeof(text)) { /* a whole UTF-8 character, as gcall_fail */
        size_t l = sizeof(text) - 1;
        while (l > 0 && ((unsigned char)text[l] & 0xc0) == 0x80)
            l--;
        text[l] = 0;
    }
    size_t max = sizeof(c->trailers) / sizeof(c->trailers[0]);
    c->ntrailers = 0;
    for (size_t i = 0; i < nkv && i < max; i++) {
        /* A text header value may hold printable ASCII only (gRPC refuses
         * the whole status otherwise): any other byte (a stream name's
         * UTF-8) is sent as '?'. */
        char v[512];
        size_t l = 0;
        for (const char *p = kv[2 * i + 1]; *p && l < sizeof(v) - 1; p++)
            v[l++] = *p >= 0x20 && *p <= 0x7e ? *p : '?';
        v[l] = 0;
        c->trailers[i].key = grpc_slice_from_copied_string(kv[2 * i]);
        c->trailers[i].value = grpc_slice_from_copied_string(v);
        c->ntrailers++;
    }
    start_send(c, NULL, code, text, NULL, 0);
}

int gcall_next_message(const uint8_t *req, size_t len, size_t *pos, const uint8_t **msg,
                       size_t *mlen)
{
    if (*pos + 4 > len)
        return 0;
    const uint8_t *p = req + *pos;
    size_t l = (size_t)p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16 | (size_t)p[3] << 24;
    if (l > len - *pos - 4)
        return 0;
    *msg = p + 4;
    *mlen = l;
    *pos += 4 + l;
    return 1;
}

int gcall_truncated(gcall *c) { return c->cs_truncated; }

static void waiter_wake(serve_waiter *w)
{
    gcall *c = CONTAINER(w, gcall, w);
    c->j.run = run_next;
    pool_push(c->g, &c->j);
}

static void park_after_headers(gcall *c)
{
    gcall_park(c, c->park_seen, c->park_next);
}

void gcall_park(gcall *c, uint64_t seen, gcall_step next)
{
    if (!c->sent_md) {
        /* A streaming call that has nothing to send yet still answers
         * with its headers: clients (tonic, grpc-js) wait for them before
         * they hand the stream to the application. */
        c->park_seen = seen;
        c->park_next = next;
        c->next = park_after_headers;
        start_send(c, NULL, -1, NULL, NULL, 0);
        return;
    }
    c->next = next;
    c->w.seen = seen;
    c->w.wake = waiter_wake;
    /* Once parked, a commit may wake the call and another worker finish
     * and free it at any moment: hold it for the check below. */
    atomic_fetch_add(&c->refs, 1);
    if (serve_notify_park(c->g->s, &c->w)) {
        /* The close op may have run between our read and the park:
         * whoever takes the waiter back drives the call. */
        if (gcall_done(c) && serve_notify_unpark(c->g->s, &c->w))
            waiter_wake(&c->w);
    }
    call_unref(c);
}

static void close_done(tag *t, int ok)
{
    gcall *c = CONTAINER(t, gcall, close_tag);
    atomic_store(&c->client_gone, 1);
    if (serve_notify_unpark(c->g->s, &c->w))
        waiter_wake(&c->w);
    call_unref(c);
}

static void run_handler(job *j)
{
    gcall *c = CONTAINER(j, gcall, j);
    grpc_byte_buffer_reader r;
    if (!grpc_byte_buffer_reader_init(&r, c->recv_bb)) {
        gcall_fail(c, GS_INVALID_ARGUMENT, UMA_SERIALIZATION,
                   "%s: the request message could not be read (compressed with an "
                   "algorithm this server does not know?)", c->method);
        return;
    }
    grpc_slice sl = grpc_byte_buffer_reader_readall(&r);
    grpc_byte_buffer_reader_destroy(&r);
    grpc_byte_buffer_destroy(c->recv_bb);
    c->recv_bb = NULL;
    atomic_fetch_sub(&c->g->queued_bytes, c->queued);
    c->queued = 0;
    c->alloc_budget = DECODE_FACTOR * GRPC_SLICE_LENGTH(sl) + ((size_t)1 << 20);
    c->m->handler(c, GRPC_SLICE_START_PTR(sl), GRPC_SLICE_LENGTH(sl));
    grpc_slice_unref(sl);
}

static void run_cs_handler(job *j)
{
    gcall *c = CONTAINER(j, gcall, j);
    c->alloc_budget = DECODE_FACTOR * c->cs_len + ((size_t)1 << 20);
    c->m->handler(c, c->cs_buf ? c->cs_buf : (const uint8_t *)"", c->cs_len);
}

/* Client streaming: one more message in (or the end of the stream). */
static void cs_recv_done(gcall *c, int ok)
{
    if (!ok) {
        gcall_fail(c, GS_INVALID_ARGUMENT, UMA_INVALID_ARGUMENT,
                   "%s: the call ended before the client finished its messages", c->method);
        return;
    }
    if (c->recv_bb) {
        grpc_byte_buffer_reader r;
        if (!grpc_byte_buffer_reader_init(&r, c->recv_bb)) {
            gcall_fail(c, GS_INVALID_ARGUMENT, UMA_SERIALIZATION,
                       "%s: a request message could not be read (compressed with an "
                       "algorithm this server does not know?)", c->method);
            return;
        }
        grpc_slice sl = grpc_byte_buffer_reader_readall(&r);
        grpc_byte_buffer_reader_destroy(&r);
        grpc_byte_buffer_destroy(c->recv_bb);
        c->recv_bb = NULL;
        size_t l = GRPC_SLICE_LENGTH(sl);
        size_t max = c->g->s->cfg.max_message_bytes;
        size_t was = atomic_fetch_add(&c->g->queued_bytes, 4 + l);
        if (was + 4 + l > QUEUED_BYTES_MAX) {
            atomic_fetch_sub(&c->g->queued_bytes, 4 + l);
            grpc_slice_unref(sl);
            gcall_fail(c, GS_RESOURCE_EXHAUSTED, UMA_IO,
                       "%s: the server holds %zu MiB of requests waiting for a worker; retry "
                       "shortly", c->method, QUEUED_BYTES_MAX >> 20);
            return;
        }
        c->queued += 4 + l; /* counted until the call ends (call_unref) */
        if (c->cs_len + 4 + l > max) {
            grpc_slice_unref(sl);
            c->cs_truncated = 1;
        } else {
            if (c->cs_len + 4 + l > c->cs_cap) {
                size_t nc = c->cs_cap ? c->cs_cap : 4096;
                while (nc < c->cs_len + 4 + l)
                    nc *= 2;
                uint8_t *nb = realloc(c->cs_buf, nc);
                if (!nb) {
                    grpc_slice_unref(sl);
                    gcall_fail(c, GS_RESOURCE_EXHAUSTED, UMA_IO, "%s: out of memory",
                               c->method);
                    return;
                }
                c->cs_buf = nb;
                c->cs_cap = nc;
            }
            uint8_t *p = c->cs_buf + c->cs_len;
            p[0] = (uint8_t)l;
            p[1] = (uint8_t)(l >> 8);
            p[2] = (uint8_t)(l >> 16);
            p[3] = (uint8_t)(l >> 24);
            memcpy(p + 4, GRPC_SLICE_START_PTR(sl), l);
            c->cs_len += 4 + l;
            grpc_slice_unref(sl);
            grpc_op op;
            memset(&op, 0, sizeof(op));
            op.op = GRPC_OP_RECV_MESSAGE;
            op.data.recv_message.recv_message = &c->recv_bb;
            if (grpc_call_start_batch(c->call, &op, 1, &c->recv_tag, NULL) != GRPC_CALL_OK)
                cs_recv_done(c, 0);
            return;
        }
    }
    c->j.run = run_cs_handler;
    pool_push(c->g, &c->j);
}

static void recv_done(tag *t, int ok)
{
    gcall *c = CONTAINER(t, gcall, recv_tag);
    if (c->cs) {
        cs_recv_done(c, ok);
        return;
    }
    if (!ok || !c->recv_bb) {
        gcall_fail(c, GS_INVALID_ARGUMENT, UMA_INVALID_ARGUMENT,
                   "%s: the call ended before its request message arrived", c->method);
        return;
    }
    size_t len = grpc_byte_buffer_length(c->recv_bb);
    size_t was = atomic_fetch_add(&c->g->queued_bytes, len);
    if (was + len > QUEUED_BYTES_MAX) {
        atomic_fetch_sub(&c->g->queued_bytes, len);
        gcall_fail(c, GS_RESOURCE_EXHAUSTED, UMA_IO,
                   "%s: the server holds %zu MiB of requests waiting for a worker; retry "
                   "shortly", c->method, QUEUED_BYTES_MAX >> 20);
        return;
    }
    c->queued = len;
    c->j.run = run_handler;
    pool_push(c->g, &c->j);
}

static const gcall_method *find_method(const char *path)
{
    const gcall_method *tables[] = {serve_dcb_methods, serve_health_methods,
                                    serve_kurrent_methods};
    for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
        for (const gcall_method *m = tables[t]; m->path; m++)
            if (strcmp(m->path, path) == 0)
                return m;
    return NULL;
}

/* The value of request header key, NUL-terminated into buf, or NULL.
 * *too_long: the value did not fit (buf then holds "") . */
static const char *header(const grpc_metadata_array *md, const char *key, char *buf,
                          size_t cap, int *too_long)
{
    size_t kl = strlen(key);
    *too_long = 0;
    for (size_t i = 0; i < md->count; i++) {
        const grpc_slice *k = &md->metadata[i].key;
        if (GRPC_SLICE_LENGTH(*k) == kl && memcmp(GRPC_SLICE_START_PTR(*k), key, kl) == 0) {
            size_t vl = GRPC_SLICE_LENGTH(md->metadata[i].value);
            if (vl >= cap) {
                *too_long = 1;
                buf[0] = 0;
                return buf;
            }
            memcpy(buf, GRPC_SLICE_START_PTR(md->metadata[i].value), vl);
            buf[vl] = 0;
            return buf;
        }
    }
    return NULL;
}

int gcall_still_allowed(gcall *c)
{
    serve *s = c->g->s;
    unsigned gen = atomic_load(&s->auth_gen);
    if (gen == c->auth_gen)
        return 1;
    c->auth_gen = gen;
    char authz[4096 + 16], msg[512];
    int too_long;
    const char *az = header(&c->md, "authorization", authz, sizeof(authz), &too_long);
    int rc = serve_check(s, az, c->tenant, c->m->access, msg, sizeof(msg));
    if (rc == SERVE_ALLOW)
        return 1;
    gcall_fail(c, rc == SERVE_DENY_UNAUTHENTICATED ? GS_UNAUTHENTICATED : GS_PERMISSION_DENIED,
               UMA_AUTHENTICATION, "the API keys were reloaded and this call's no longer "
               "holds: %s", msg);
    return 0;
}

static void post_accept(serve_grpc *g);

static void accept_done(tag *t, int ok)
{
    gcall *c = CONTAINER(t, gcall, accept_tag);
    serve_grpc *g = c->g;
    if (!ok) { /* the server is shutting down */
        grpc_call_details_destroy(&c->details);
        grpc_metadata_array_destroy(&c->md);
        if (c->call)
            grpc_call_unref(c->call);
        free(c);
        return;
    }
    post_accept(g);
    c->started_ns = now_ns();
    atomic_store(&c->refs, 2);
    pthread_mutex_lock(&g->lock);
    c->live_next = g->live;
    if (g->live)
        g->live->live_prev = c;
    g->live = c;
    g->nlive++;
    pthread_mutex_unlock(&g->lock);

    size_t ml = GRPC_SLICE_LENGTH(c->details.method);
    if (ml >= sizeof(c->method))
        ml = sizeof(c->method) - 1;
    memcpy(c->method, GRPC_SLICE_START_PTR(c->details.method), ml);
    c->method[ml] = 0;
    /* UmaDB's older service name. */
    static const char old[] = "/umadb.UmaDBService/";
    char path[sizeof(c->method) + 16];
    if (strncmp(c->method, old, sizeof(old) - 1) == 0)
        snprintf(path, sizeof(path), "/umadb.v1.DCB/%s", c->method + sizeof(old) - 1);
    else
        snprintf(path, sizeof(path), "%s", c->method);
    c->m = find_method(path);
    for (size_t i = 0; c->m && serve_client_streaming[i]; i++)
        c->cs |= strcmp(serve_client_streaming[i], c->m->path) == 0;

    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &c->close_cancelled;
    if (grpc_call_start_batch(c->call, &op, 1, &c->close_tag, NULL) != GRPC_CALL_OK)
        close_done(&c->close_tag, 0);

    serve *s = g->s;
    char authz[4096 + 16], msg[512]; /* auth.c: keys up to 4096 bytes */
    int long_tenant, long_authz;
    const char *tn = header(&c->md, SERVE_TENANT_HEADER, c->tenant, sizeof(c->tenant),
                            &long_tenant);
    if (!tn)
        c->tenant[0] = 0;
    const char *az = header(&c->md, "authorization", authz, sizeof(authz), &long_authz);
    if (!c->m) {
        gcall_fail(c, GS_UNIMPLEMENTED, -1,
                   "method %s is not served here (evs serve serves umadb.v1.DCB, "
                   "grpc.health.v1.Health and part of KurrentDB's "
                   "event_store.client.streams.Streams; docs/SERVER.md)", c->method);
        return;
    }
    int health = strncmp(c->m->path, "/grpc.health.v1.", 16) == 0;
    if (atomic_load(&s->stopping) && !health) { /* health answers NOT_SERVING */
        gcall_fail(c, GS_UNAVAILABLE, UMA_IO, "the server is shutting down; retry on "
                   "another server or after it restarts");
        return;
    }
    if (long_tenant || long_authz) {
        gcall_fail(c, GS_INVALID_ARGUMENT, UMA_INVALID_ARGUMENT,
                   "the %s header is longer than %zu bytes",
                   long_tenant ? SERVE_TENANT_HEADER : "authorization",
                   (long_tenant ? sizeof(c->tenant) : sizeof(authz)) - 1);
        return;
    }
    /* KurrentDB's clients ask which calls the server has before they send
     * any credentials (as KurrentDB, it needs no key: it says nothing of
     * the data). */
    int features = strcmp(c->m->path, "/event_store.client.server_features.ServerFeatures/"
                                      "GetSupportedMethods") == 0;
    /* KurrentDB's clients cannot send an evs-tenant header: without one,
     * a key or user limited to exactly one tenant works in that tenant
     * (docs/SERVER.md, "KurrentDB protocol"). */
    if (!tn && az && (strncmp(c->m->path, "/event_store.", 13) == 0 ||
                      strncmp(c->m->path, "/kurrentdb.", 11) == 0))
        (void)serve_bound_tenant(s, az, c->tenant, sizeof(c->tenant));
    if (!health && !features) {
        c->auth_gen = atomic_load(&s->auth_gen);
        int rc = serve_check(s, az, c->tenant, c->m->access, msg, sizeof(msg));
        if (rc == SERVE_DENY_UNAUTHENTICATED) {
            gcall_fail(c, GS_UNAUTHENTICATED, UMA_AUTHENTICATION, "%s", msg);
            return;
        }
        if (rc != SERVE_ALLOW && (strncmp(c->m->path, "/event_store.", 13) == 0 ||
                                  strncmp(c->m->path, "/kurrentdb.", 11) == 0)) {
            /* what KurrentDB's clients read as AccessDeniedError */
            static const char *const kv[] = {"exception", "access-denied"};
            gcall_fail_md(c, GS_PERMISSION_DENIED, kv, 1, "%s", msg);
            return;
        }
        if (rc != SERVE_ALLOW) {
            gcall_fail(c, GS_PERMISSION_DENIED, UMA_AUTHENTICATION, "%s", msg);
            return;
        }
    }
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &c->recv_bb;
    if (grpc_call_start_batch(c->call, &op, 1, &c->recv_tag, NULL) != GRPC_CALL_OK)
        recv_done(&c->recv_tag, 0);
}

static void post_accept(serve_grpc *g)
{
    gcall *c = calloc(1, sizeof(*c));
    if (!c) {
        serve_log("out of memory accepting a gRPC call");
        return;
    }
    c->g = g;
    c->accept_tag.done = accept_done;
    c->recv_tag.done = recv_done;
    c->close_tag.done = close_done;
    c->send_tag.done = send_done;
    grpc_call_details_init(&c->details);
    grpc_metadata_array_init(&c->md);
    c->alloc.alloc = pb_alloc;
    c->alloc.free = pb_free;
    c->alloc.allocator_data = c;
    grpc_call_error e = grpc_server_request_call(g->server, &c->call, &c->details, &c->md,
                                                 g->cq, g->cq, &c->accept_tag);
    if (e != GRPC_CALL_OK) {
        if (!atomic_load(&g->s->stopping))
            serve_log("cannot wait for gRPC calls (grpc_call_error %d): one accept slot "
                      "of 64 is lost", (int)e);
        grpc_call_details_destroy(&c->details);
        grpc_metadata_array_destroy(&c->md);
        free(c);
    }
}

static void *cq_main(void *arg)
{
    serve_grpc *g = arg;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(g->cq, gpr_inf_future(GPR_CLOCK_REALTIME),
                                                   NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        tag *t = ev.tag;
        t->done(t, ev.success);
    }
    return NULL;
}

static void shutdown_done(tag *t, int ok)
{
    serve_grpc *g = CONTAINER(t, serve_grpc, shutdown_tag);
    pthread_mutex_lock(&g->lock);
    g->shut_done = 1;
    pthread_cond_broadcast(&g->shut_cond);
    pthread_mutex_unlock(&g->lock);
}

/* gRPC's own log lines (connection errors among them) go to ours. */
static void grpc_log_fn(gpr_log_func_args *args)
{
    serve_log("gRPC: %s", args->message);
}

static char *read_file(const char *path, char *msg, size_t msglen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(msg, msglen, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    size_t got;
    while (buf && (got = fread(buf + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf) {
        snprintf(msg, msglen, "out of memory reading %s", path);
        return NULL;
    }
    buf[len] = 0;
    return buf;
}

static int ms_arg(uint32_t seconds)
{
    uint64_t ms = (uint64_t)seconds * 1000;
    return seconds == 0 || ms > INT32_MAX ? INT32_MAX : (int)ms;
}

int serve_grpc_start(serve *s, char *msg, size_t msglen)
{
    serve_grpc *g = calloc(1, sizeof(*g));
    if (!g) {
        snprintf(msg, msglen, "out of memory");
        return -1;
    }
    g->s = s;
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
    pthread_cond_init(&g->shut_cond, NULL);
    g->shutdown_tag.done = shutdown_done;
    s->grpc = g;

    gpr_set_log_function(grpc_log_fn);
    gpr_set_log_verbosity(GPR_LOG_SEVERITY_ERROR);
    grpc_init();

    const serve_config *cfg = &s->cfg;
    g->quota = grpc_resource_quota_create("evs-serve");
    grpc_arg args[10];
    size_t na = 0;
#define INT_ARG(k, v)                                                                       \
    do {                                                                                    \
        args[na].type = GRPC_ARG_INTEGER;                                                   \
        args[na].key = (char *)(k);                                                         \
        args[na].value.integer = (int)(v);                                                  \
        na++;                                                                               \
    } while (0)
    INT_ARG(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, cfg->max_message_bytes);
    INT_ARG(GRPC_ARG_MAX_CONCURRENT_STREAMS, cfg->max_streams);
    /* 0 = never (gRPC's INT_MAX); long values are clamped to it. */
    INT_ARG(GRPC_ARG_MAX_CONNECTION_IDLE_MS, ms_arg(cfg->idle_timeout_s));
    INT_ARG(GRPC_ARG_KEEPALIVE_TIME_MS, ms_arg(cfg->keepalive_s));
    INT_ARG(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20000);
    /* Clients may ping an idle connection every 10 s (grpc-js and the C
     * core default to none; some clients send keepalives every 10 s). */
    INT_ARG(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
    INT_ARG(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    INT_ARG(GRPC_ARG_ENABLE_CHANNELZ, 1);
    args[na].type = GRPC_ARG_POINTER;
    args[na].key = (char *)GRPC_ARG_RESOURCE_QUOTA;
    args[na].value.pointer.p = g->quota;
    args[na].value.pointer.vtable = grpc_resource_quota_arg_vtable();
    na++;
#undef INT_ARG
    grpc_channel_args ca = {na, args};
    g->server = grpc_server_create(&ca, NULL);
    g->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(g->server, g->cq, NULL);

    grpc_server_credentials *creds;
    if (cfg->tls_cert) {
        char *cert = read_file(cfg->tls_cert, msg, msglen);
        char *key = cert ? read_file(cfg->tls_key, msg, msglen) : NULL;
        if (!cert || !key) {
            free(cert);
            grpc_server_destroy(g->server);
            g->server = NULL;
            return -1;
        }
        grpc_ssl_pem_key_cert_pair pair = {key, cert};
        creds = grpc_ssl_server_credentials_create_ex(
            NULL, &pair, 1, GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE, NULL);
        free(cert);
        free(key);
    } else {
        creds = grpc_insecure_server_credentials_create();
    }
    int port = creds ? grpc_server_add_http2_port(g->server, cfg->listen, creds) : 0;
    if (creds)
        grpc_server_credentials_release(creds);
    if (port <= 0) {
        grpc_server_destroy(g->server);
        g->server = NULL;
        snprintf(msg, msglen, "cannot listen for gRPC on %s (address in use, not an address "
                 "of this machine, or a bad TLS certificate or key)", cfg->listen);
        return -1;
    }
    /* Threads first: a server that is started must have completion-queue
     * threads, or its stop would wait for ever. */
    g->nworkers = 0;
    g->workers = calloc(cfg->workers, sizeof(*g->workers));
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 1024 * 1024);
    int failed = !g->workers;
    for (unsigned i = 0; !failed && i < cfg->workers; i++) {
        if (pthread_create(&g->workers[i], &attr, worker_main, g) != 0) {
            snprintf(msg, msglen, "cannot start worker thread %u of %u (lower --workers?)", i,
                     cfg->workers);
            failed = 1;
        } else {
            g->nworkers++;
        }
    }
    pthread_attr_destroy(&attr);
    for (int i = 0; !failed && i < 2; i++)
        if (pthread_create(&g->cq_threads[g->ncq], NULL, cq_main, g) == 0)
            g->ncq++;
    if (!failed && g->ncq == 0) {
        snprintf(msg, msglen, "cannot start the gRPC completion-queue threads");
        failed = 1;
    }
    if (failed) {
        if (!g->workers)
            snprintf(msg, msglen, "out of memory");
        grpc_server_destroy(g->server); /* never started */
        g->server = NULL;
        return -1;
    }
    grpc_server_start(g->server);
    /* Calls waiting to be accepted: the accepting completion posts the
     * next one, so this many can arrive at the same instant. */
    for (int i = 0; i < 64; i++)
        post_accept(g);
    serve_log("gRPC listening on %s (%s)", cfg->listen, cfg->tls_cert ? "TLS" : "cleartext h2c");
    return 0;
}

void serve_grpc_stop(serve *s)
{
    serve_grpc *g = s->grpc;
    if (!g)
        return;
    if (g->server) {
        grpc_server_shutdown_and_notify(g->server, g->cq, &g->shutdown_tag);
        /* Parked subscriptions wake, see the server stopping and end with
         * UNAVAILABLE; appends in flight finish. */
        serve_notify_wake_all(s);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 5;
        pthread_mutex_lock(&g->lock);
        while (!g->shut_done &&
               pthread_cond_timedwait(&g->shut_cond, &g->lock, &until) != ETIMEDOUT)
            ;
        uint64_t left = g->nlive;
        pthread_mutex_unlock(&g->lock);
        if (!g->shut_done) {
            /* Clients that stopped reading hold their calls open. */
            serve_log("stopping: cancelling %" PRIu64 " gRPC calls still open after 5 s",
                      left);
            grpc_server_cancel_all_calls(g->server);
            pthread_mutex_lock(&g->lock);
            while (!g->shut_done)
                pthread_cond_wait(&g->shut_cond, &g->lock);
            pthread_mutex_unlock(&g->lock);
        }
        /* gRPC reports the shutdown when its connections are gone, which
         * may be before our calls have run their last completion: the
         * workers and the queue stay until every call is freed. (A store
         * call that never returns keeps us here; a second SIGTERM exits:
         * serve.c.) */
        pthread_mutex_lock(&g->lock);
        while (g->nlive > 0)
            pthread_cond_wait(&g->shut_cond, &g->lock);
        pthread_mutex_unlock(&g->lock);
    }
    pthread_mutex_lock(&g->lock);
    g->workers_stop = 1;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
    for (unsigned i = 0; i < g->nworkers; i++)
        pthread_join(g->workers[i], NULL);
    if (g->cq)
        grpc_completion_queue_shutdown(g->cq);
    for (int i = 0; i < g->ncq; i++)
        pthread_join(g->cq_threads[i], NULL);
    if (g->server)
        grpc_server_destroy(g->server);
    if (g->cq)
        grpc_completion_queue_destroy(g->cq);
    if (g->quota)
        grpc_resource_quota_unref(g->quota);
    free(g->workers);
    pthread_mutex_destroy(&g->lock);
    pthread_cond_destroy(&g->cond);
    pthread_cond_destroy(&g->shut_cond);
    free(g);
    s->grpc = NULL;
    grpc_shutdown();
}

/* Open gRPC connections, from channelz: the server's sockets. */
uint64_t serve_grpc_connections(serve *s)
{
    if (!s->grpc)
        return 0;
    char *servers = grpc_channelz_get_servers(0);
    if (!servers)
        return 0;
    uint64_t n = 0;
    json_t *root = json_loads(servers, 0, NULL);
    gpr_free(servers);
    json_t *list = root ? json_object_get(root, "server") : NULL;
    size_t i;
    json_t *srv;
    json_array_foreach(list, i, srv) {
        const char *id = json_string_value(
            json_object_get(json_object_get(srv, "ref"), "serverId"));
        if (!id)
            continue;
        intptr_t sid = (intptr_t)strtoll(id, NULL, 10);
        intptr_t start = 0;
        for (;;) {
            char *socks = grpc_channelz_get_server_sockets(sid, start, 1000);
            if (!socks)
                break;
            json_t *sr = json_loads(socks, 0, NULL);
            gpr_free(socks);
            json_t *refs = sr ? json_object_get(sr, "socketRef") : NULL;
            size_t k;
            json_t *ref;
            intptr_t last = start;
            json_array_foreach(refs, k, ref) {
                n++;
                const char *sk = json_string_value(json_object_get(ref, "socketId"));
                if (sk)
                    last = (intptr_t)strtoll(sk, NULL, 10);
            }
            int end = !sr || json_is_true(json_object_get(sr, "end")) ||
                      json_array_size(refs) == 0;
            json_decref(sr);
            if (end)
                break;
            start = last + 1;
        }
    }
    json_decref(root);
    return n;
}
