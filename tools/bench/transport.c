/*
 * transport.c -- `evs bench` over gRPC (transport.h): the server started
 * and stopped here, the load generator on gRPC's C core client API, the
 * four transport scenarios, the goals of issue 16 and the report's
 * section.
 *
 * The load generator, in one picture:
 *
 *   driver thread k (k < TP_DRIVERS), its own completion queue
 *     slot i  (i % ndrivers == k): one grpc_channel = one TCP connection,
 *             one call in flight; when its answer (or its stream's end)
 *             comes back, the outcome is recorded and the slot starts the
 *             next call at once, until the level's window is over.
 *
 * A unary call (Append, Head) is one batch of six ops; a streaming call
 * (Read, Subscribe) is a batch that sends the request and waits for the
 * status, plus a chain of RECV_MESSAGE batches. A slot's call is over when
 * every batch it started has completed (s->pending == 0).
 */
#include "transport.h"

#include "report.h"
#include "scen_util.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "serve.h"
#include "umadb.pb-c.h"
#include "kurrent/v2streams.pb-c.h"

#define PROG "evs bench"

#define M_APPEND "/umadb.v1.DCB/Append"
#define M_READ "/umadb.v1.DCB/Read"
#define M_SUBSCRIBE "/umadb.v1.DCB/Subscribe"
#define M_HEAD "/umadb.v1.DCB/Head"
/* KurrentDB's protocol (tools/serve/kurrent.c): AppendSession with one
 * AppendRequest is shaped as a unary call (one message each way) */
#define M_KAPPEND "/kurrentdb.protocol.v2.streams.StreamsService/AppendSession"

#define T_HEAD "bench-grpc-head"
#define T_APPEND "bench-grpc-append-1"
#define T_DCB "bench-grpc-dcb"
#define T_CATCHUP "bench-grpc-catchup"
#define T_APPEND100 "bench-grpc-append-100"
#define T_KAPPEND1 "bench-kurrent-append-1"
#define T_KAPPEND100 "bench-kurrent-append-100"

#define DCB_TAGS 10000u
#define DCB_TAGS_QUICK 1000u
#define CATCHUP_EVENTS 200000u
#define CATCHUP_EVENTS_QUICK 2000u
#define LOAD_BATCH 1000u
#define SUB_BATCH 4096u
#define IDLE_CONNS 1000
#define IDLE_CONNS_QUICK 100
#define CALL_DEADLINE_S 120
#define READY_TIMEOUT_S 60
#define STOP_TIMEOUT_S 60

static const int head_levels[] = {1, 256}, head_quick[] = {1, 8};
static const int append_levels[] = {1, 64, 256}, append_quick[] = {1, 8};
static const int dcb_levels[] = {1, 64}, dcb_quick[] = {1, 8};
static const int catchup_levels[] = {1};
/* DCB and KurrentDB appends side by side (issue 19) */
static const int kv_levels[] = {1, 64, 256}, kv_quick[] = {1, 8};

/* ------------------------------------------------------------------ */
/* The load generator                                                  */
/* ------------------------------------------------------------------ */

enum tp_kind { K_HEAD, K_APPEND1, K_DCB, K_SUB, K_LOAD, K_COUNT, K_KAPPEND };

/*
 * The messages a slot receives are unpacked into a bump arena, emptied
 * after each message: protobuf-c's default allocator makes one malloc per
 * submessage and string, which on catch-up (4096 events a message) made
 * malloc/free two thirds of the load generator's CPU, CPU taken from the
 * server on the same cores. An allocation that does not fit is malloc'd
 * and freed at the reset, and the arena grows to fit next time.
 */
typedef struct tp_arena {
    uint8_t *buf;
    size_t cap, used, want;
    void **big;
    size_t nbig, capbig;
    ProtobufCAllocator pa;
} tp_arena;

typedef struct tp_run tp_run;
typedef struct tp_slot tp_slot;
typedef struct tp_driver tp_driver;

typedef struct tp_tag {
    tp_slot *s;
    int recv; /* 1: the RECV_MESSAGE chain; 0: the request + status batch */
} tp_tag;

struct tp_slot {
    tp_run *run;
    tp_driver *d;
    grpc_channel *ch;
    uint64_t rng;
    grpc_call *call;
    tp_tag tag_main, tag_recv;
    int pending;            /* batches of the call not yet completed */
    int streaming;
    int step;               /* K_DCB: 0 the Read, 1 the Append */
    int cancelled;          /* K_SUB: cancelled after the last event */
    grpc_metadata md;       /* evs-tenant */
    grpc_metadata_array init_md, trail_md;
    grpc_byte_buffer *send_bb, *recv_bb;
    grpc_status_code status;
    grpc_slice details;
    int phase;              /* 0 warm-up, 1 measured */
    uint64_t t0;
    uint64_t ops;           /* operations started */
    uint64_t got;           /* K_SUB, K_COUNT: events received */
    uint64_t last_pos;      /* K_SUB: the last position received */
    uint64_t head;          /* K_DCB: the Read's head */
    char tag[32];           /* K_DCB: the tag of this workflow */
    char why[200];          /* a stream's problem, found on a message */
    uint8_t *buf;           /* packing buffer */
    size_t cap;
    tp_arena arena;         /* unpacked answers (bb_unpack) */
};

struct tp_driver {
    tp_run *run;
    pthread_t th;
    grpc_completion_queue *cq;
    tp_slot **slots;
    int nslots, active;
    op_counts warm, c;
    samples lat;
    uint64_t last_end;
    char error[256];
    char conflict[256];
};

struct tp_run {
    int kind;
    const char *tenant;
    uint64_t warm_end, meas_end; /* ns; meas_end 0: budget mode */
    _Atomic int64_t budget;      /* budget mode: operations left */
    int one_each;                /* budget mode: one operation per slot */
    uint64_t hard_end;           /* calls still running then are cancelled */
    _Atomic int stop;
    uint32_t ntags;              /* K_DCB */
    uint64_t sub_n;              /* K_SUB: events expected */
    _Atomic uint64_t loaded;     /* K_LOAD: events acknowledged */
    int batch;                   /* K_APPEND1, K_KAPPEND: events a call
                                    (0: 1) */
};

/* mixed into the client's random ids (set by transport_run) */
static uint64_t g_salt;

static gpr_timespec deadline_in(double s)
{
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                        gpr_time_from_millis((int64_t)(s * 1000), GPR_TIMESPAN));
}

/* One connection: a channel of its own (local subchannel pool), no
 * retries (nothing is retried behind the bench's back), no limit on the
 * messages received (catch-up batches). */
static grpc_channel *chan_new(const char *target)
{
    grpc_arg a[3];
    a[0].type = GRPC_ARG_INTEGER;
    a[0].key = (char *)GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL;
    a[0].value.integer = 1;
    a[1].type = GRPC_ARG_INTEGER;
    a[1].key = (char *)GRPC_ARG_ENABLE_RETRIES;
    a[1].value.integer = 0;
    a[2].type = GRPC_ARG_INTEGER;
    a[2].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    a[2].value.integer = -1;
    grpc_channel_args args = {3, a};
    grpc_channel_credentials *cr = grpc_insecure_credentials_create();
    grpc_channel *ch = grpc_channel_create(target, cr, &args);
    grpc_channel_credentials_release(cr);
    return ch;
}

static void *arena_alloc(void *ad, size_t n)
{
    tp_arena *a = ad;
    n = (n + 15) & ~(size_t)15;
    if (a->used + n <= a->cap) {
        void *p = a->buf + a->used;
        a->used += n;
        return p;
    }
    a->want = a->used + n > a->want ? a->used + n : a->want;
    if (a->nbig == a->capbig) {
        size_t c = a->capbig ? a->capbig * 2 : 16;
        void **b = realloc(a->big, c * sizeof *b);
        if (!b)
            return NULL;
        a->big = b;
        a->capbig = c;
    }
    void *p = malloc(n);
    if (p)
        a->big[a->nbig++] = p;
    return p;
}

static void arena_free(void *ad, void *p)
{
    (void)ad;
    (void)p; /* all at once, in arena_reset */
}

static void arena_reset(tp_arena *a)
{
    for (size_t i = 0; i < a->nbig; i++)
        free(a->big[i]);
    a->nbig = 0;
    if (a->want > a->cap) {
        size_t cap = a->want * 2 < 65536 ? 65536 : a->want * 2;
        uint8_t *b = malloc(cap);
        if (b) {
            free(a->buf);
            a->buf = b;
            a->cap = cap;
        }
    }
    a->used = 0;
    a->want = 0;
}

static void arena_done(tp_arena *a)
{
    arena_reset(a);
    free(a->buf);
    free(a->big);
    memset(a, 0, sizeof *a);
}

static ProtobufCMessage *bb_unpack(grpc_byte_buffer *bb,
                                   const ProtobufCMessageDescriptor *desc,
                                   tp_arena *a)
{
    grpc_byte_buffer_reader r;
    if (!bb || !grpc_byte_buffer_reader_init(&r, bb))
        return NULL;
    grpc_slice s = grpc_byte_buffer_reader_readall(&r);
    grpc_byte_buffer_reader_destroy(&r);
    a->pa.alloc = arena_alloc;
    a->pa.free = arena_free;
    a->pa.allocator_data = a;
    ProtobufCMessage *m = protobuf_c_message_unpack(
        desc, &a->pa, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
    grpc_slice_unref(s);
    return m;
}

/* The packing buffer, at least n bytes. */
static uint8_t *slot_buf(tp_slot *s, size_t n)
{
    if (n > s->cap) {
        size_t cap = n < 4096 ? 4096 : n * 2;
        uint8_t *b = realloc(s->buf, cap);
        if (!b)
            return NULL;
        s->buf = b;
        s->cap = cap;
    }
    return s->buf;
}

static void uuid_v4(char out[37], uint64_t *rng)
{
    uint8_t b[16];
    uint64_t x = scen_rand(rng), y = scen_rand(rng);
    memcpy(b, &x, 8);
    memcpy(b + 8, &y, 8);
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    static const char hex[] = "0123456789abcdef";
    int o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = 0;
}

/* Starts a call of method with the request req[0..len): unary (one
 * batch) or server-streaming (the request + status batch and the first
 * RECV_MESSAGE). Returns 0, or -1 with a message in err. */
static int call_start(tp_slot *s, const char *method, const void *req,
                      size_t len, int streaming, char *err, size_t errsize)
{
    s->call = grpc_channel_create_call(
        s->ch, NULL, GRPC_PROPAGATE_DEFAULTS, s->d->cq,
        grpc_slice_from_static_string(method), NULL,
        deadline_in(CALL_DEADLINE_S), NULL);
    if (!s->call) {
        snprintf(err, errsize, "%s: grpc_channel_create_call failed", method);
        return -1;
    }
    grpc_metadata_array_init(&s->init_md);
    grpc_metadata_array_init(&s->trail_md);
    grpc_slice sl = grpc_slice_from_copied_buffer(req, len);
    s->send_bb = grpc_raw_byte_buffer_create(&sl, 1);
    grpc_slice_unref(sl);
    s->recv_bb = NULL;
    s->details = grpc_empty_slice();
    s->status = GRPC_STATUS_UNKNOWN;
    s->streaming = streaming;
    s->cancelled = 0;
    s->why[0] = 0;

    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    int n = 0;
    ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[n].data.send_initial_metadata.count = s->run->tenant[0] ? 1 : 0;
    ops[n].data.send_initial_metadata.metadata = &s->md;
    n++;
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n].data.send_message.send_message = s->send_bb;
    n++;
    ops[n].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    n++;
    ops[n].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[n].data.recv_status_on_client.trailing_metadata = &s->trail_md;
    ops[n].data.recv_status_on_client.status = &s->status;
    ops[n].data.recv_status_on_client.status_details = &s->details;
    n++;
    int rn = n;
    ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[n].data.recv_initial_metadata.recv_initial_metadata = &s->init_md;
    n++;
    ops[n].op = GRPC_OP_RECV_MESSAGE;
    ops[n].data.recv_message.recv_message = &s->recv_bb;
    n++;
    grpc_call_error e;
    if (!streaming) {
        e = grpc_call_start_batch(s->call, ops, (size_t)n, &s->tag_main, NULL);
        s->pending = e == GRPC_CALL_OK;
    } else {
        e = grpc_call_start_batch(s->call, ops, (size_t)rn, &s->tag_main, NULL);
        s->pending = e == GRPC_CALL_OK;
        if (e == GRPC_CALL_OK) {
            e = grpc_call_start_batch(s->call, ops + rn, 2, &s->tag_recv, NULL);
            s->pending += e == GRPC_CALL_OK;
            if (e != GRPC_CALL_OK)
                grpc_call_cancel(s->call, NULL);
        }
    }
    if (e != GRPC_CALL_OK) {
        snprintf(err, errsize, "%s: grpc_call_start_batch: error %d", method,
                 (int)e);
        if (s->pending == 0) {
            grpc_call_unref(s->call);
            s->call = NULL;
            grpc_byte_buffer_destroy(s->send_bb);
            s->send_bb = NULL;
            grpc_metadata_array_destroy(&s->init_md);
            grpc_metadata_array_destroy(&s->trail_md);
            grpc_metadata_array_init(&s->init_md);
            grpc_metadata_array_init(&s->trail_md);
        }
        return s->pending ? 0 : -1; /* with a batch out, it ends as an
                                       error through the status */
    }
    return 0;
}

/* The next RECV_MESSAGE of a stream. */
static int post_recv(tp_slot *s)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &s->recv_bb;
    s->recv_bb = NULL;
    return grpc_call_start_batch(s->call, &op, 1, &s->tag_recv, NULL) ==
                   GRPC_CALL_OK
               ? 0
               : -1;
}

static void call_free(tp_slot *s)
{
    if (s->call)
        grpc_call_unref(s->call);
    s->call = NULL;
    if (s->send_bb)
        grpc_byte_buffer_destroy(s->send_bb);
    s->send_bb = NULL;
    if (s->recv_bb)
        grpc_byte_buffer_destroy(s->recv_bb);
    s->recv_bb = NULL;
    /* destroyed, then empty again: a second call_free is harmless */
    grpc_metadata_array_destroy(&s->init_md);
    grpc_metadata_array_destroy(&s->trail_md);
    grpc_metadata_array_init(&s->init_md);
    grpc_metadata_array_init(&s->trail_md);
    grpc_slice_unref(s->details);
    s->details = grpc_empty_slice();
}

/* "status N (NAME): details" of the finished call. */
static void status_text(const tp_slot *s, char *err, size_t errsize,
                        const char *what)
{
    static const char *const names[] = {
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
        "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
        "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE",
        "DATA_LOSS", "UNAUTHENTICATED"};
    int st = (int)s->status;
    snprintf(err, errsize, "%s: gRPC status %d (%s): %.*s", what, st,
             st >= 0 && st <= 16 ? names[st] : "?",
             (int)GRPC_SLICE_LENGTH(s->details),
             (const char *)GRPC_SLICE_START_PTR(s->details));
}

/* ---- the requests ---- */

static const char *const regions[] = {"north", "south", "east", "west",
                                      "central"};

#define TP_MAX_BATCH 100

/* One ~240 B JSON event of an append (line i of a batch) into json. */
static int entry_json(char *json, size_t size, uint64_t k, int i)
{
    return snprintf(json, size,
                    "{\"ledger\":\"grpc1\",\"entry\":%u,\"amount\":%u,"
                    "\"currency\":\"EUR\",\"booked_by\":\"clerk-%u\","
                    "\"memo\":\"monthly settlement of open items, batch "
                    "%u line %d\",\"approved\":true}",
                    (unsigned)(k % 1000), (unsigned)(100 + k % 9000),
                    (unsigned)(k % 97), (unsigned)(k % 100000), i);
}

static int start_append1(tp_slot *s, char *err, size_t errsize)
{
    static __thread char json[TP_MAX_BATCH][320], uuid[TP_MAX_BATCH][37];
    static __thread Umadb__V1__Event ev[TP_MAX_BATCH];
    static __thread Umadb__V1__Event *evs[TP_MAX_BATCH];
    char t0[48], t1[48];
    int nb = s->run->batch > 0 ? s->run->batch : 1;
    uint64_t k = scen_rand(&s->rng);
    char *tags[2] = {t0, t1};
    snprintf(t0, sizeof t0, "customer:c%u", (unsigned)(k % 100000));
    snprintf(t1, sizeof t1, "region:%s", regions[(k >> 20) % 5]);
    for (int i = 0; i < nb; i++) {
        int n = entry_json(json[i], sizeof json[i], k, i);
        uuid_v4(uuid[i], &s->rng);
        Umadb__V1__Event e = UMADB__V1__EVENT__INIT;
        ev[i] = e;
        evs[i] = &ev[i];
        ev[i].event_type = "EntryPosted";
        ev[i].n_tags = 2;
        ev[i].tags = tags;
        ev[i].has_data = 1;
        ev[i].data.data = (uint8_t *)json[i];
        ev[i].data.len = (size_t)n;
        ev[i].uuid = uuid[i];
    }
    Umadb__V1__AppendRequest rq = UMADB__V1__APPEND_REQUEST__INIT;
    rq.n_events = (size_t)nb;
    rq.events = evs;
    size_t len = umadb__v1__append_request__get_packed_size(&rq);
    uint8_t *b = slot_buf(s, len);
    if (!b) {
        snprintf(err, errsize, "out of memory");
        return -1;
    }
    umadb__v1__append_request__pack(&rq, b);
    return call_start(s, M_APPEND, b, len, 0, err, errsize);
}

/* KurrentDB's AppendSession of run->batch events to one stream of
 * 100,000 (customer-cN, as the DCB append's customer tag), expected
 * revision any: what multiStreamAppend sends for one stream. */
static int start_kappend(tp_slot *s, char *err, size_t errsize)
{
    static __thread char json[TP_MAX_BATCH][320], uuid[TP_MAX_BATCH][37];
    static __thread Kurrentdb__Protocol__V2__Streams__AppendRecord rec[TP_MAX_BATCH];
    static __thread Kurrentdb__Protocol__V2__Streams__AppendRecord *recs[TP_MAX_BATCH];
    char stream[48];
    int nb = s->run->batch > 0 ? s->run->batch : 1;
    uint64_t k = scen_rand(&s->rng);
    snprintf(stream, sizeof stream, "customer-c%u", (unsigned)(k % 100000));
    Kurrentdb__Protocol__V2__Streams__SchemaInfo schema =
        KURRENTDB__PROTOCOL__V2__STREAMS__SCHEMA_INFO__INIT;
    schema.has_format = 1;
    schema.format = KURRENTDB__PROTOCOL__V2__STREAMS__SCHEMA_FORMAT__SCHEMA_FORMAT_JSON;
    schema.name = "EntryPosted";
    for (int i = 0; i < nb; i++) {
        int n = entry_json(json[i], sizeof json[i], k, i);
        uuid_v4(uuid[i], &s->rng);
        Kurrentdb__Protocol__V2__Streams__AppendRecord r =
            KURRENTDB__PROTOCOL__V2__STREAMS__APPEND_RECORD__INIT;
        rec[i] = r;
        recs[i] = &rec[i];
        rec[i].record_id = uuid[i];
        rec[i].schema = &schema;
        rec[i].has_data = 1;
        rec[i].data.data = (uint8_t *)json[i];
        rec[i].data.len = (size_t)n;
    }
    Kurrentdb__Protocol__V2__Streams__AppendRequest rq =
        KURRENTDB__PROTOCOL__V2__STREAMS__APPEND_REQUEST__INIT;
    rq.stream = stream;
    rq.n_records = (size_t)nb;
    rq.records = recs;
    size_t len = kurrentdb__protocol__v2__streams__append_request__get_packed_size(&rq);
    uint8_t *b = slot_buf(s, len);
    if (!b) {
        snprintf(err, errsize, "out of memory");
        return -1;
    }
    kurrentdb__protocol__v2__streams__append_request__pack(&rq, b);
    return call_start(s, M_KAPPEND, b, len, 0, err, errsize);
}

/* The DCB workflow's query: the events with the slot's tag. */
#define DCB_QUERY(q, qi, qis, tagp)                                          \
    Umadb__V1__QueryItem qi = UMADB__V1__QUERY_ITEM__INIT;                   \
    Umadb__V1__QueryItem *qis[1] = {&qi};                                    \
    Umadb__V1__Query q = UMADB__V1__QUERY__INIT;                             \
    char *tagp[1] = {s->tag};                                                \
    qi.n_tags = 1;                                                           \
    qi.tags = tagp;                                                          \
    q.n_items = 1;                                                           \
    q.items = qis

static int start_dcb_read(tp_slot *s, char *err, size_t errsize)
{
    snprintf(s->tag, sizeof s->tag, "item:%u",
             (unsigned)scen_below(&s->rng, s->run->ntags));
    s->head = 0;
    s->step = 0;
    DCB_QUERY(q, qi, qis, tagp);
    Umadb__V1__ReadRequest rq = UMADB__V1__READ_REQUEST__INIT;
    rq.query = &q;
    size_t len = umadb__v1__read_request__get_packed_size(&rq);
    uint8_t *b = slot_buf(s, len);
    if (!b) {
        snprintf(err, errsize, "out of memory");
        return -1;
    }
    umadb__v1__read_request__pack(&rq, b);
    return call_start(s, M_READ, b, len, 1, err, errsize);
}

static int start_dcb_append(tp_slot *s, char *err, size_t errsize)
{
    char json[128], uuid[37];
    DCB_QUERY(q, qi, qis, tagp);
    int n = snprintf(json, sizeof json,
                     "{\"item\":\"%s\",\"claimed_by\":\"client-%u\","
                     "\"after\":%llu}",
                     s->tag, (unsigned)(s->rng % 1000),
                     (unsigned long long)s->head);
    uuid_v4(uuid, &s->rng);
    Umadb__V1__Event ev = UMADB__V1__EVENT__INIT;
    Umadb__V1__Event *evs[1] = {&ev};
    ev.event_type = "ItemClaimed";
    ev.n_tags = 1;
    ev.tags = tagp;
    ev.has_data = 1;
    ev.data.data = (uint8_t *)json;
    ev.data.len = (size_t)n;
    ev.uuid = uuid;
    Umadb__V1__AppendCondition cond = UMADB__V1__APPEND_CONDITION__INIT;
    cond.fail_if_events_match = &q;
    cond.has_after = s->head > 0;
    cond.after = s->head;
    Umadb__V1__AppendRequest rq = UMADB__V1__APPEND_REQUEST__INIT;
    rq.n_events = 1;
    rq.events = evs;
    rq.condition = &cond;
    size_t len = umadb__v1__append_request__get_packed_size(&rq);
    uint8_t *b = slot_buf(s, len);
    if (!b) {
        snprintf(err, errsize, "out of memory");
        return -1;
    }
    umadb__v1__append_request__pack(&rq, b);
    s->step = 1;
    return call_start(s, M_APPEND, b, len, 0, err, errsize);
}

static int start_sub(tp_slot *s, char *err, size_t errsize)
{
    Umadb__V1__SubscribeRequest rq = UMADB__V1__SUBSCRIBE_REQUEST__INIT;
    rq.has_after = 1;
    rq.after = 0;
    rq.has_batch_size = 1;
    rq.batch_size = SUB_BATCH;
    uint8_t b[64];
    size_t len = umadb__v1__subscribe_request__pack(&rq, b);
    s->got = 0;
    s->last_pos = 0;
    return call_start(s, M_SUBSCRIBE, b, len, 1, err, errsize);
}

static int start_count(tp_slot *s, char *err, size_t errsize)
{
    Umadb__V1__ReadRequest rq = UMADB__V1__READ_REQUEST__INIT;
    rq.has_batch_size = 1;
    rq.batch_size = SUB_BATCH;
    uint8_t b[64];
    size_t len = umadb__v1__read_request__pack(&rq, b);
    s->got = 0;
    s->last_pos = 0;
    return call_start(s, M_READ, b, len, 1, err, errsize);
}

static int start_head(tp_slot *s, char *err, size_t errsize)
{
    Umadb__V1__HeadRequest rq = UMADB__V1__HEAD_REQUEST__INIT;
    uint8_t b[16];
    size_t len = umadb__v1__head_request__pack(&rq, b);
    return call_start(s, M_HEAD, b, len, 0, err, errsize);
}

/* LOAD_BATCH events of ~200 B, the server assigns the ids. */
static int start_load(tp_slot *s, char *err, size_t errsize)
{
    static Umadb__V1__Event ev[LOAD_BATCH];
    static Umadb__V1__Event *evp[LOAD_BATCH];
    static char json[LOAD_BATCH][200];
    static char tag0[] = "catchup", *tags[1] = {tag0};
    /* only one slot loads (see scen_catchup): the static arrays are its */
    for (unsigned i = 0; i < LOAD_BATCH; i++) {
        int n = snprintf(json[i], sizeof json[i],
                         "{\"sensor\":\"s-%u\",\"reading\":%u,\"unit\":"
                         "\"kPa\",\"quality\":\"good\",\"note\":\"periodic "
                         "sample of the catch-up load\",\"seq\":%u}",
                         i % 50, (unsigned)(scen_rand(&s->rng) % 100000), i);
        Umadb__V1__Event e = UMADB__V1__EVENT__INIT;
        ev[i] = e;
        ev[i].event_type = "Reading";
        ev[i].n_tags = 1;
        ev[i].tags = tags;
        ev[i].has_data = 1;
        ev[i].data.data = (uint8_t *)json[i];
        ev[i].data.len = (size_t)n;
        evp[i] = &ev[i];
    }
    Umadb__V1__AppendRequest rq = UMADB__V1__APPEND_REQUEST__INIT;
    rq.n_events = LOAD_BATCH;
    rq.events = evp;
    size_t len = umadb__v1__append_request__get_packed_size(&rq);
    uint8_t *b = slot_buf(s, len);
    if (!b) {
        snprintf(err, errsize, "out of memory");
        return -1;
    }
    umadb__v1__append_request__pack(&rq, b);
    return call_start(s, M_APPEND, b, len, 0, err, errsize);
}

/* ---- the driver ---- */

static void record(tp_driver *d, tp_slot *s, int outcome, uint64_t items,
                   const char *err)
{
    uint64_t t1 = now_ns();
    op_counts *c = s->phase ? &d->c : &d->warm;
    c->attempted++;
    c->items += items;
    switch (outcome) {
    case BENCH_COMMITTED: c->committed++; break;
    case BENCH_REJECTED: c->rejected++; break;
    case BENCH_CONFLICT: c->conflicts++; break;
    default: c->errors++; break;
    }
    if (outcome == BENCH_ERROR && !d->error[0])
        snprintf(d->error, sizeof d->error, "%s", err && err[0] ? err : "error");
    if (s->phase) {
        samples_push(&d->lat, t1 - s->t0);
        if (t1 > d->last_end)
            d->last_end = t1;
    }
}

static void slot_next(tp_driver *d, tp_slot *s);

/* A message of a stream: 1 to read on, 0 to stop (the call was
 * cancelled). */
static int on_message(tp_slot *s)
{
    tp_run *run = s->run;
    if (run->kind == K_DCB) {
        Umadb__V1__ReadResponse *m = (Umadb__V1__ReadResponse *)bb_unpack(
            s->recv_bb, &umadb__v1__read_response__descriptor, &s->arena);
        if (!m) {
            arena_reset(&s->arena);
            snprintf(s->why, sizeof s->why, "Read: a response does not parse");
            return 1;
        }
        if (m->has_head)
            s->head = m->head;
        arena_reset(&s->arena);
        return 1;
    }
    if (run->kind == K_COUNT) {
        Umadb__V1__ReadResponse *m = (Umadb__V1__ReadResponse *)bb_unpack(
            s->recv_bb, &umadb__v1__read_response__descriptor, &s->arena);
        if (!m) {
            arena_reset(&s->arena);
            snprintf(s->why, sizeof s->why, "Read: a response does not parse");
            return 1;
        }
        s->got += m->n_events;
        arena_reset(&s->arena);
        return 1;
    }
    /* K_SUB */
    Umadb__V1__SubscribeResponse *m = (Umadb__V1__SubscribeResponse *)bb_unpack(
        s->recv_bb, &umadb__v1__subscribe_response__descriptor, &s->arena);
    if (!m) {
        arena_reset(&s->arena);
        snprintf(s->why, sizeof s->why, "Subscribe: a response does not parse");
        grpc_call_cancel(s->call, NULL);
        return 0;
    }
    for (size_t i = 0; i < m->n_events; i++) {
        uint64_t p = m->events[i]->position;
        if (p <= s->last_pos && !s->why[0])
            snprintf(s->why, sizeof s->why,
                     "Subscribe: position %llu after %llu (not increasing)",
                     (unsigned long long)p, (unsigned long long)s->last_pos);
        s->last_pos = p;
        s->got++;
    }
    arena_reset(&s->arena);
    if (s->got >= run->sub_n) {
        s->cancelled = 1;
        grpc_call_cancel(s->call, NULL);
        return 0;
    }
    return 1;
}

/* The call is over: its outcome, or its next step. */
static void op_done(tp_driver *d, tp_slot *s)
{
    tp_run *run = s->run;
    char err[300] = "";
    int outcome = BENCH_ERROR;
    uint64_t items = 0;
    int ok = s->status == GRPC_STATUS_OK;

    switch (run->kind) {
    case K_HEAD:
        if (ok)
            outcome = BENCH_COMMITTED;
        else
            status_text(s, err, sizeof err, "Head");
        break;
    case K_APPEND1:
    case K_LOAD: {
        if (!ok) {
            status_text(s, err, sizeof err, "Append");
            break;
        }
        Umadb__V1__AppendResponse *m = (Umadb__V1__AppendResponse *)bb_unpack(
            s->recv_bb, &umadb__v1__append_response__descriptor, &s->arena);
        if (!m || !m->has_position) {
            snprintf(err, sizeof err, "Append: the answer has no position");
        } else {
            outcome = BENCH_COMMITTED;
            items = run->kind == K_LOAD ? LOAD_BATCH
                                        : (uint64_t)(run->batch > 0 ? run->batch : 1);
            if (run->kind == K_LOAD)
                atomic_fetch_add(&run->loaded, LOAD_BATCH);
        }
        arena_reset(&s->arena);
        break;
    }
    case K_KAPPEND: {
        if (!ok) {
            status_text(s, err, sizeof err, "AppendSession");
            break;
        }
        Kurrentdb__Protocol__V2__Streams__AppendSessionResponse *m =
            (Kurrentdb__Protocol__V2__Streams__AppendSessionResponse *)bb_unpack(
                s->recv_bb,
                &kurrentdb__protocol__v2__streams__append_session_response__descriptor,
                &s->arena);
        if (!m || !m->has_position || m->n_output != 1) {
            snprintf(err, sizeof err, "AppendSession: the answer has no position");
        } else {
            outcome = BENCH_COMMITTED;
            items = (uint64_t)(run->batch > 0 ? run->batch : 1);
        }
        arena_reset(&s->arena);
        break;
    }
    case K_DCB:
        if (s->step == 0) {
            if (!ok || s->why[0]) {
                if (s->why[0])
                    snprintf(err, sizeof err, "%s", s->why);
                else
                    status_text(s, err, sizeof err, "Read");
                break;
            }
            call_free(s);
            if (start_dcb_append(s, err, sizeof err) == 0)
                return; /* the second step is under way */
            break;
        }
        if (ok) {
            outcome = BENCH_COMMITTED;
            items = 1;
        } else if (s->status == GRPC_STATUS_FAILED_PRECONDITION) {
            outcome = BENCH_CONFLICT;
            if (!d->conflict[0])
                status_text(s, d->conflict, sizeof d->conflict, "Append");
        } else {
            status_text(s, err, sizeof err, "Append");
        }
        break;
    case K_SUB:
        items = s->got;
        if (s->why[0])
            snprintf(err, sizeof err, "%s", s->why);
        else if (s->cancelled && s->got == run->sub_n)
            outcome = BENCH_COMMITTED;
        else if (s->got != run->sub_n && s->cancelled)
            snprintf(err, sizeof err,
                     "Subscribe: %llu events received, %llu expected",
                     (unsigned long long)s->got,
                     (unsigned long long)run->sub_n);
        else
            status_text(s, err, sizeof err, "Subscribe (before the last event)");
        break;
    case K_COUNT:
        items = s->got;
        if (s->why[0])
            snprintf(err, sizeof err, "%s", s->why);
        else if (ok)
            outcome = BENCH_COMMITTED;
        else
            status_text(s, err, sizeof err, "Read");
        break;
    }
    call_free(s);
    record(d, s, outcome, items, err);
    slot_next(d, s);
}

/* The slot's next operation, or idle once the level is over. */
static void slot_next(tp_driver *d, tp_slot *s)
{
    tp_run *run = s->run;
    char err[300] = "";
    for (;;) {
        uint64_t now = now_ns();
        if (atomic_load(&run->stop) || atomic_load(&g_interrupted))
            break;
        if (run->meas_end) {
            if (now >= run->meas_end)
                break;
            s->phase = now >= run->warm_end;
        } else {
            if (run->one_each && s->ops > 0)
                break;
            if (atomic_fetch_sub(&run->budget, 1) <= 0)
                break;
            s->phase = 1;
        }
        s->ops++;
        s->t0 = now;
        s->why[0] = 0;
        int rc;
        switch (run->kind) {
        case K_HEAD: rc = start_head(s, err, sizeof err); break;
        case K_APPEND1: rc = start_append1(s, err, sizeof err); break;
        case K_DCB: rc = start_dcb_read(s, err, sizeof err); break;
        case K_SUB: rc = start_sub(s, err, sizeof err); break;
        case K_LOAD: rc = start_load(s, err, sizeof err); break;
        case K_KAPPEND: rc = start_kappend(s, err, sizeof err); break;
        default: rc = start_count(s, err, sizeof err); break;
        }
        if (rc == 0)
            return;
        /* could not even start: an error, and this slot stops (a loop of
         * instant failures would only fill memory with samples) */
        record(d, s, BENCH_ERROR, 0, err);
        break;
    }
    d->active--;
}

static void on_event(tp_tag *t, int success)
{
    tp_slot *s = t->s;
    if (t->recv) {
        if (success && s->recv_bb) {
            int more = on_message(s);
            grpc_byte_buffer_destroy(s->recv_bb);
            s->recv_bb = NULL;
            if (more && post_recv(s) == 0)
                return;
        }
    }
    if (--s->pending > 0)
        return;
    op_done(s->d, s);
}

static void *driver_main(void *arg)
{
    tp_driver *d = arg;
    tp_run *run = d->run;
    d->active = d->nslots;
    for (int i = 0; i < d->nslots; i++)
        slot_next(d, d->slots[i]);
    int cancelled = 0;
    while (d->active > 0) {
        grpc_event ev = grpc_completion_queue_next(d->cq, deadline_in(0.1),
                                                   NULL);
        if (ev.type == GRPC_OP_COMPLETE)
            on_event(ev.tag, ev.success);
        else if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (!cancelled && (now_ns() > run->hard_end ||
                           atomic_load(&g_interrupted))) {
            /* calls still out long after the window: cancel them (each
             * then ends as an error, or as a cut-short stream) */
            atomic_store(&run->stop, 1);
            for (int i = 0; i < d->nslots; i++)
                if (d->slots[i]->call)
                    grpc_call_cancel(d->slots[i]->call, NULL);
            if (!d->error[0] && !atomic_load(&g_interrupted))
                snprintf(d->error, sizeof d->error,
                         "calls still running long after the window: "
                         "cancelled");
            cancelled = 1;
        }
    }
    return NULL;
}

static double proc_cpu_s(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long long ut = 0, st = 0;
    /* after ")": state ppid pgrp session tty tpgid flags minflt cminflt
     * majflt cmajflt utime stime */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
               &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/*
 * Runs one level of run->kind over nconns connections (ch[i], one slot
 * each): a warm-up and a measured window (seconds > 0), or a budget of
 * operations (seconds <= 0: budget operations, all measured). Fills *lv.
 */
static void run_level(tp_run *run, grpc_channel **ch, int nconns, pid_t server,
                      double warmup, double seconds, int64_t budget,
                      uint64_t seed, tp_level *lv)
{
    int nd = nconns >= 8 ? TP_DRIVERS : 1;
    tp_driver d[TP_DRIVERS];
    tp_slot *slots = xcalloc((size_t)nconns, sizeof *slots);
    memset(d, 0, sizeof d);
    memset(lv, 0, sizeof *lv);
    lv->conns = nconns;
    lv->drivers = nd;
    for (int k = 0; k < nd; k++) {
        d[k].run = run;
        d[k].cq = grpc_completion_queue_create_for_next(NULL);
        d[k].slots = xcalloc((size_t)nconns / (size_t)nd + 1, sizeof(tp_slot *));
    }
    for (int i = 0; i < nconns; i++) {
        tp_slot *s = &slots[i];
        tp_driver *dk = &d[i % nd];
        s->run = run;
        s->d = dk;
        s->ch = ch[i];
        /* event ids are unique store-wide: every level of every
         * scenario (and every run, for a --db store given with --force)
         * draws its own */
        s->rng = scen_seed(seed ^ ((uint64_t)run->kind << 56) ^
                               ((uint64_t)run->batch << 40) ^ g_salt,
                           i);
        s->tag_main.s = s;
        s->tag_recv.s = s;
        s->tag_recv.recv = 1;
        s->md.key = grpc_slice_from_static_string(SERVE_TENANT_HEADER);
        s->md.value = grpc_slice_from_copied_string(run->tenant);
        s->details = grpc_empty_slice();
        dk->slots[dk->nslots++] = s;
    }
    atomic_store(&run->stop, 0);
    uint64_t start = now_ns();
    if (seconds > 0) {
        run->warm_end = start + (uint64_t)(warmup * 1e9);
        run->meas_end = run->warm_end + (uint64_t)(seconds * 1e9);
        run->hard_end = run->meas_end + (uint64_t)CALL_DEADLINE_S * 1000000000u;
    } else {
        run->warm_end = start;
        run->meas_end = 0;
        atomic_store(&run->budget, budget);
        run->hard_end = start + (uint64_t)CALL_DEADLINE_S * 2 * 1000000000u;
    }
    double ccpu0 = cpu_seconds(0) + cpu_seconds(1);
    double scpu0 = proc_cpu_s(server);
    for (int k = 0; k < nd; k++)
        if (pthread_create(&d[k].th, NULL, driver_main, &d[k]) != 0)
            die("cannot start a load generator thread");
    for (int k = 0; k < nd; k++)
        pthread_join(d[k].th, NULL);
    lv->client_cpu_s = cpu_seconds(0) + cpu_seconds(1) - ccpu0;
    double scpu1 = proc_cpu_s(server);
    lv->server_cpu_s = scpu0 >= 0 && scpu1 >= 0 ? scpu1 - scpu0 : -1;

    samples all = {0};
    uint64_t last = 0;
    for (int k = 0; k < nd; k++) {
        counts_add(&lv->warm, &d[k].warm);
        counts_add(&lv->c, &d[k].c);
        samples_append(&all, &d[k].lat);
        free(d[k].lat.v);
        if (d[k].last_end > last)
            last = d[k].last_end;
        if (d[k].error[0] && !lv->error[0])
            snprintf(lv->error, sizeof lv->error, "%s", d[k].error);
        if (d[k].conflict[0] && !lv->conflict[0])
            snprintf(lv->conflict, sizeof lv->conflict, "%s", d[k].conflict);
        grpc_completion_queue_shutdown(d[k].cq);
        while (grpc_completion_queue_next(d[k].cq, gpr_inf_future(GPR_CLOCK_REALTIME),
                                          NULL).type != GRPC_QUEUE_SHUTDOWN)
            ;
        grpc_completion_queue_destroy(d[k].cq);
        free(d[k].slots);
    }
    lv->window_s = last > run->warm_end ? (double)(last - run->warm_end) / 1e9
                   : seconds > 0        ? seconds
                                        : 0;
    lv->lat = summarize(&all);
    free(all.v);
    if (lv->window_s > 0) {
        lv->ops_per_s = (double)lv->c.committed / lv->window_s;
        lv->items_per_s = (double)lv->c.items / lv->window_s;
    }
    for (int i = 0; i < nconns; i++) {
        grpc_slice_unref(slots[i].md.value);
        grpc_slice_unref(slots[i].details);
        free(slots[i].buf);
        arena_done(&slots[i].arena);
    }
    free(slots);
}

/* ------------------------------------------------------------------ */
/* The server                                                          */
/* ------------------------------------------------------------------ */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* The last lines of the server's log, on one line, into out. */
static void log_tail(const char *path, char *out, size_t size)
{
    out[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char buf[4096];
    if (fseek(f, 0, SEEK_END) == 0) {
        long end = ftell(f);
        fseek(f, end > (long)sizeof buf - 1 ? end - (long)sizeof buf + 1 : 0,
              SEEK_SET);
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    while (n && buf[n - 1] == '\n')
        buf[--n] = 0;
    const char *p = buf;
    for (int lines = 0; n > 0 && lines < 3; n--)
        if (buf[n - 1] == '\n' && ++lines == 3)
            p = buf + n;
    size_t len = strlen(p);
    if (len >= size)
        len = size - 1;
    memcpy(out, p, len);
    out[len] = 0;
    for (char *q = out; *q; q++)
        if (*q == '\n' || *q == '|')
            *q = ' ';
}

/* One unary Head on a channel of its own, waiting for the connection at
 * most timeout_s. Returns the gRPC status (0 OK), or -1 when the call
 * could not be made. */
static int head_once(const char *target, double timeout_s)
{
    grpc_channel *ch = chan_new(target);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    grpc_call *call = grpc_channel_create_call(
        ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
        grpc_slice_from_static_string(M_HEAD), NULL, deadline_in(timeout_s),
        NULL);
    int rc = -1;
    grpc_metadata_array im, tm;
    grpc_metadata_array_init(&im);
    grpc_metadata_array_init(&tm);
    grpc_byte_buffer *resp = NULL;
    grpc_status_code st = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();
    grpc_slice req = grpc_empty_slice(); /* HeadRequest: no fields */
    grpc_byte_buffer *rb = grpc_raw_byte_buffer_create(&req, 1);
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = rb;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &im;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &resp;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &tm;
    ops[5].data.recv_status_on_client.status = &st;
    ops[5].data.recv_status_on_client.status_details = &details;
    if (call && grpc_call_start_batch(call, ops, 6, (void *)1, NULL) ==
                    GRPC_CALL_OK) {
        grpc_event ev = grpc_completion_queue_next(
            cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        rc = ev.type == GRPC_OP_COMPLETE ? (int)st : -1;
    }
    if (resp)
        grpc_byte_buffer_destroy(resp);
    grpc_byte_buffer_destroy(rb);
    grpc_metadata_array_destroy(&im);
    grpc_metadata_array_destroy(&tm);
    grpc_slice_unref(details);
    if (call)
        grpc_call_unref(call);
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME),
                                      NULL).type != GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
    grpc_channel_destroy(ch);
    return rc;
}

static int server_start(transport_result *t, const transport_config *cfg)
{
    int port = free_port();
    if (port <= 0) {
        snprintf(t->note, sizeof t->note,
                 "no free loopback port for the server: %s", strerror(errno));
        return -1;
    }
    snprintf(t->listen, sizeof t->listen, "127.0.0.1:%d", port);
    snprintf(t->server_db, sizeof t->server_db, "%s", cfg->db_uri);
    snprintf(t->log_path, sizeof t->log_path, "%s", cfg->log_path);
    int logfd = open(cfg->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                     0644);
    if (logfd < 0) {
        snprintf(t->note, sizeof t->note, "cannot create the server's log %.300s: %s",
                 cfg->log_path, strerror(errno));
        return -1;
    }
    fprintf(stderr, PROG ": grpc: starting evs serve on %s (store %s, log %s)\n",
            t->listen, cfg->db_uri, cfg->log_path);
    uint64_t t0 = now_ns();
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(t->note, sizeof t->note, "fork: %s", strerror(errno));
        close(logfd);
        return -1;
    }
    if (pid == 0) {
        /* async-signal-safe calls only until exec */
        sigset_t none;
        sigemptyset(&none);
        dup2(logfd, STDOUT_FILENO);
        dup2(logfd, STDERR_FILENO);
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0)
            dup2(nul, STDIN_FILENO);
        /* the bench's own files (its store, among them) are not the
         * server's */
        syscall(SYS_close_range, 3u, ~0u, 0u);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execl("/proc/self/exe", "evs", "serve", "--db", cfg->db_uri, "--listen",
              t->listen, "--http", "off", (char *)NULL);
        _exit(127);
    }
    close(logfd);
    t->pid = pid;
    /* until it answers Head (or exits, or READY_TIMEOUT_S pass) */
    for (;;) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            char tail[300];
            log_tail(cfg->log_path, tail, sizeof tail);
            snprintf(t->note, sizeof t->note,
                     "evs serve exited at start (%s %d): %s",
                     WIFEXITED(st) ? "status" : "signal",
                     WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), tail);
            t->pid = 0;
            return -1;
        }
        if (head_once(t->listen, 0.5) == GRPC_STATUS_OK)
            break;
        if (now_ns() - t0 > (uint64_t)READY_TIMEOUT_S * 1000000000u ||
            atomic_load(&g_interrupted)) {
            snprintf(t->note, sizeof t->note,
                     "evs serve did not answer Head within %d s", READY_TIMEOUT_S);
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            t->pid = 0;
            return -1;
        }
        sleep_s(0.05);
    }
    t->start_s = (double)(now_ns() - t0) / 1e9;
    fprintf(stderr, PROG ": grpc: server pid %d answers after %.2f s\n",
            (int)pid, t->start_s);
    return 0;
}

static void server_stop(transport_result *t)
{
    if (t->pid <= 0)
        return;
    kill(t->pid, SIGTERM);
    uint64_t t0 = now_ns();
    int st = 0;
    pid_t w;
    while ((w = waitpid(t->pid, &st, WNOHANG)) == 0 &&
           now_ns() - t0 < (uint64_t)STOP_TIMEOUT_S * 1000000000u)
        sleep_s(0.01);
    if (w == 0) {
        kill(t->pid, SIGKILL);
        waitpid(t->pid, &st, 0);
        snprintf(t->exit_note, sizeof t->exit_note,
                 "did not exit within %d s of SIGTERM: killed", STOP_TIMEOUT_S);
        t->exit_status = -1;
    } else if (w < 0) {
        snprintf(t->exit_note, sizeof t->exit_note, "waitpid: %s",
                 strerror(errno));
        t->exit_status = -1;
    } else if (WIFEXITED(st)) {
        t->exit_status = WEXITSTATUS(st);
        if (t->exit_status != 0)
            snprintf(t->exit_note, sizeof t->exit_note,
                     "exited with status %d after SIGTERM", t->exit_status);
    } else {
        t->exit_status = -1;
        snprintf(t->exit_note, sizeof t->exit_note,
                 "killed by signal %d after SIGTERM", WTERMSIG(st));
    }
    t->stop_s = (double)(now_ns() - t0) / 1e9;
    fprintf(stderr, PROG ": grpc: server stopped %.2f s after SIGTERM: %s\n",
            t->stop_s, t->exit_status == 0 ? "exit status 0" : t->exit_note);
    if (t->stop_s > 1.0) {
        log_tail(t->log_path, t->stop_log, sizeof t->stop_log);
        fprintf(stderr, PROG ": grpc: the server's log ends: %s\n", t->stop_log);
    }
    if (t->exit_status != 0) {
        t->failed = 1;
        char tail[300];
        log_tail(t->log_path, tail, sizeof tail);
        snprintf(t->note, sizeof t->note, "evs serve %s; its log ends: %s",
                 t->exit_note, tail);
    }
    t->pid = 0;
}

/* VmRSS, RssAnon, RssFile of pid, kB (-1 unknown). */
static void proc_rss(pid_t pid, long *rss, long *anon, long *file)
{
    char path[64], line[256];
    *rss = *anon = *file = -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0)
            *rss = strtol(line + 6, NULL, 10);
        else if (strncmp(line, "RssAnon:", 8) == 0)
            *anon = strtol(line + 8, NULL, 10);
        else if (strncmp(line, "RssFile:", 8) == 0)
            *file = strtol(line + 8, NULL, 10);
    }
    fclose(f);
}

static long proc_sockets(pid_t pid)
{
    char path[64], link[128], target[128];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(link, sizeof link, "%s/%.20s", path, e->d_name);
        ssize_t len = readlink(link, target, sizeof target - 1);
        if (len > 0) {
            target[len] = 0;
            n += strncmp(target, "socket:", 7) == 0;
        }
    }
    closedir(d);
    return n;
}

/* ------------------------------------------------------------------ */
/* The scenarios                                                       */
/* ------------------------------------------------------------------ */

static grpc_channel **chans_new(const char *target, int n)
{
    grpc_channel **ch = xcalloc((size_t)n, sizeof *ch);
    for (int i = 0; i < n; i++)
        ch[i] = chan_new(target);
    return ch;
}

static void chans_free(grpc_channel **ch, int n)
{
    for (int i = 0; i < n; i++)
        grpc_channel_destroy(ch[i]);
    free(ch);
}

/* One Head per connection, untimed: every connection open before a
 * level starts. Returns 0 or -1 with a message. */
static int connect_all(transport_result *t, grpc_channel **ch, int n,
                       char *err, size_t errsize)
{
    tp_run run;
    tp_level lv;
    memset(&run, 0, sizeof run);
    run.kind = K_HEAD;
    run.tenant = "";
    run.one_each = 1;
    run_level(&run, ch, n, t->pid, 0, 0, n, 1, &lv);
    if (lv.c.committed != (uint64_t)n) {
        snprintf(err, errsize, "opening %d connections: %llu Heads answered; "
                 "first error: %s", n, (unsigned long long)lv.c.committed,
                 lv.error[0] ? lv.error : "none");
        return -1;
    }
    return 0;
}

/* The tenant's events, counted by reading them all over gRPC. */
static int count_events(transport_result *t, grpc_channel *ch,
                        const char *tenant, uint64_t *n, char *err,
                        size_t errsize)
{
    tp_run run;
    tp_level lv;
    memset(&run, 0, sizeof run);
    run.kind = K_COUNT;
    run.tenant = tenant;
    run_level(&run, &ch, 1, t->pid, 0, 0, 1, 1, &lv);
    if (lv.c.committed != 1) {
        snprintf(err, errsize, "reading the tenant %s back: %s", tenant,
                 lv.error);
        return -1;
    }
    *n = lv.c.items;
    return 0;
}

static void level_note(const tp_scen *sc, const tp_level *lv)
{
    fprintf(stderr,
            PROG ": grpc: %s, %d connection%s: %llu attempted, %llu ok, %llu "
                 "conflicts, %llu errors; %.1f ops/s, %.1f %s/s, p50 %.3f ms, "
                 "p99 %.3f ms\n",
            sc->name, lv->conns, lv->conns == 1 ? "" : "s",
            (unsigned long long)lv->c.attempted,
            (unsigned long long)lv->c.committed,
            (unsigned long long)lv->c.conflicts,
            (unsigned long long)lv->c.errors, lv->ops_per_s, lv->items_per_s,
            sc->item ? sc->item : "items", lv->lat.p50, lv->lat.p99);
    if (lv->error[0])
        fprintf(stderr, PROG ": grpc: %s: first error: %s\n", sc->name,
                lv->error);
    if (lv->conflict[0])
        fprintf(stderr, PROG ": grpc: %s: first conflict: %s\n", sc->name,
                lv->conflict);
}

/* The levels of one scenario; each level's connections opened (and
 * answered a Head) before its window. */
static void run_levels(transport_result *t, tp_scen *sc, tp_run *run,
                       const int *levels, int nlevels,
                       const transport_config *cfg)
{
    for (int i = 0; i < nlevels && !atomic_load(&g_interrupted); i++) {
        int n = levels[i];
        char err[400];
        fprintf(stderr, PROG ": grpc: %s, %d connection%s: %.1f s warm-up + "
                        "%.1f s\n", sc->name, n, n == 1 ? "" : "s",
                cfg->warmup, cfg->seconds);
        grpc_channel **ch = chans_new(t->listen, n);
        if (connect_all(t, ch, n, err, sizeof err) != 0) {
            sc->failed = 1;
            snprintf(sc->error, sizeof sc->error, "%s", err);
            fprintf(stderr, PROG ": grpc: %s: %s\n", sc->name, err);
            chans_free(ch, n);
            return;
        }
        tp_level *lv = &sc->lv[sc->n++];
        run_level(run, ch, n, t->pid, cfg->warmup, cfg->seconds, 0,
                  cfg->seed + (uint64_t)i * 7919u, lv);
        chans_free(ch, n);
        if (lv->c.errors || lv->warm.errors || !counts_ok(&lv->c) ||
            !counts_ok(&lv->warm))
            sc->failed = 1;
        level_note(sc, lv);
    }
    sc->ran = 1;
}

static uint64_t committed_all(const tp_scen *sc)
{
    uint64_t n = 0;
    for (int i = 0; i < sc->n; i++)
        n += sc->lv[i].c.committed + sc->lv[i].warm.committed;
    return n;
}

/* Check: the tenant holds exactly the committed events (per_op per
 * committed operation). */
static void check_tenant_n(transport_result *t, tp_scen *sc, const char *tenant,
                           uint64_t per_op)
{
    char err[400];
    uint64_t n = 0, want = committed_all(sc) * per_op;
    grpc_channel *ch = chan_new(t->listen);
    if (count_events(t, ch, tenant, &n, err, sizeof err) != 0) {
        sc->check = 1;
        snprintf(sc->error, sizeof sc->error, "check: %s", err);
    } else if (n != want) {
        sc->check = 1;
        snprintf(sc->error, sizeof sc->error,
                 "check: the tenant %s holds %llu events, %llu appends were "
                 "acknowledged", tenant, (unsigned long long)n,
                 (unsigned long long)want);
    } else {
        sc->check = 0;
    }
    if (sc->check == 1) {
        sc->failed = 1;
        fprintf(stderr, PROG ": grpc: %s: CHECK FAILED: %s\n", sc->name,
                sc->error);
    }
    grpc_channel_destroy(ch);
}

static void check_tenant(transport_result *t, tp_scen *sc, const char *tenant)
{
    check_tenant_n(t, sc, tenant, 1);
}

static void tp_scen_head(transport_result *t, const transport_config *cfg)
{
    tp_scen *sc = &t->sc[TP_HEAD];
    tp_run run;
    memset(&run, 0, sizeof run);
    run.kind = K_HEAD;
    run.tenant = t->tenant[TP_HEAD];
    if (cfg->quick)
        run_levels(t, sc, &run, head_quick, SCEN_COUNT(head_quick), cfg);
    else
        run_levels(t, sc, &run, head_levels, SCEN_COUNT(head_levels), cfg);
}

static void tp_scen_append(transport_result *t, const transport_config *cfg)
{
    tp_scen *sc = &t->sc[TP_APPEND];
    tp_run run;
    memset(&run, 0, sizeof run);
    run.kind = K_APPEND1;
    run.tenant = t->tenant[TP_APPEND];
    if (cfg->quick)
        run_levels(t, sc, &run, append_quick, SCEN_COUNT(append_quick), cfg);
    else
        run_levels(t, sc, &run, append_levels, SCEN_COUNT(append_levels), cfg);
    if (sc->ran && !atomic_load(&g_interrupted))
        check_tenant(t, sc, t->tenant[TP_APPEND]);
}

/* Appends of batch events a call, DCB (kind K_APPEND1) or KurrentDB
 * (K_KAPPEND), at 1/64/256 connections (1/8 with --quick). */
static void tp_scen_batch(transport_result *t, const transport_config *cfg, int which,
                          int kind, int batch)
{
    tp_scen *sc = &t->sc[which];
    tp_run run;
    memset(&run, 0, sizeof run);
    run.kind = kind;
    run.batch = batch;
    run.tenant = t->tenant[which];
    if (cfg->quick)
        run_levels(t, sc, &run, kv_quick, SCEN_COUNT(kv_quick), cfg);
    else
        run_levels(t, sc, &run, kv_levels, SCEN_COUNT(kv_levels), cfg);
    if (sc->ran && !atomic_load(&g_interrupted))
        check_tenant_n(t, sc, t->tenant[which], (uint64_t)batch);
}

static void tp_scen_dcb(transport_result *t, const transport_config *cfg)
{
    tp_scen *sc = &t->sc[TP_DCB];
    tp_run run;
    memset(&run, 0, sizeof run);
    run.kind = K_DCB;
    run.tenant = t->tenant[TP_DCB];
    run.ntags = cfg->quick ? DCB_TAGS_QUICK : DCB_TAGS;
    if (cfg->quick)
        run_levels(t, sc, &run, dcb_quick, SCEN_COUNT(dcb_quick), cfg);
    else
        run_levels(t, sc, &run, dcb_levels, SCEN_COUNT(dcb_levels), cfg);
    if (sc->ran && !atomic_load(&g_interrupted))
        check_tenant(t, sc, t->tenant[TP_DCB]);
}

static void tp_scen_catchup(transport_result *t, const transport_config *cfg)
{
    tp_scen *sc = &t->sc[TP_CATCHUP];
    uint64_t n = cfg->quick ? CATCHUP_EVENTS_QUICK : CATCHUP_EVENTS;
    int64_t batches = (int64_t)((n + LOAD_BATCH - 1) / LOAD_BATCH);
    tp_run run;
    tp_level lv;
    memset(&run, 0, sizeof run);
    run.kind = K_LOAD;
    run.tenant = t->tenant[TP_CATCHUP];
    fprintf(stderr, PROG ": grpc: %s: loading %llu events (Append of %u-event "
                    "batches)\n", sc->name,
            (unsigned long long)(batches * LOAD_BATCH), LOAD_BATCH);
    grpc_channel *ch = chan_new(t->listen);
    /* one connection, one batch in flight: start_load's static arrays */
    uint64_t t0 = now_ns();
    run_level(&run, &ch, 1, t->pid, 0, 0, batches, cfg->seed, &lv);
    t->load_s = (double)(now_ns() - t0) / 1e9;
    t->load_events = atomic_load(&run.loaded);
    if (lv.c.committed != (uint64_t)batches) {
        sc->failed = 1;
        snprintf(sc->error, sizeof sc->error, "loading the events: %llu of %lld "
                 "batches acknowledged; first error: %s",
                 (unsigned long long)lv.c.committed, (long long)batches,
                 lv.error);
        fprintf(stderr, PROG ": grpc: %s: %s\n", sc->name, sc->error);
        grpc_channel_destroy(ch);
        return;
    }
    fprintf(stderr, PROG ": grpc: %s: %llu events loaded in %.1f s (%.0f "
                    "events/s)\n", sc->name,
            (unsigned long long)t->load_events, t->load_s,
            t->load_s > 0 ? (double)t->load_events / t->load_s : 0.0);
    grpc_channel_destroy(ch);
    memset(&run, 0, sizeof run);
    run.kind = K_SUB;
    run.tenant = t->tenant[TP_CATCHUP];
    run.sub_n = t->load_events;
    run_levels(t, sc, &run, catchup_levels, SCEN_COUNT(catchup_levels), cfg);
}

static void tp_scen_idle(transport_result *t, const transport_config *cfg)
{
    int n = cfg->quick ? IDLE_CONNS_QUICK : IDLE_CONNS;
    t->idle_conns = n;
    long a, f;
    proc_rss(t->pid, &t->rss_before_kb, &a, &f);
    fprintf(stderr, PROG ": grpc: grpc-idle: opening %d connections (one Head "
                    "each)\n", n);
    grpc_channel **ch = chans_new(t->listen, n);
    tp_run run;
    tp_level lv;
    memset(&run, 0, sizeof run);
    run.kind = K_HEAD;
    run.tenant = "";
    run.one_each = 1;
    run_level(&run, ch, n, t->pid, 0, 0, n, cfg->seed, &lv);
    t->idle_ok = lv.c.committed;
    t->idle_ran = 1;
    if (lv.c.committed != (uint64_t)n) {
        snprintf(t->idle_error, sizeof t->idle_error,
                 "%llu of %d Heads answered; first error: %.180s",
                 (unsigned long long)lv.c.committed, n, lv.error);
        t->failed = 1;
    }
    sleep_s(0.5); /* settle: the answers' buffers returned */
    proc_rss(t->pid, &t->rss_kb, &t->rss_anon_kb, &t->rss_file_kb);
    t->idle_sockets = proc_sockets(t->pid);
    fprintf(stderr, PROG ": grpc: grpc-idle: %llu connections open: server "
                    "VmRSS %ld kB (before %ld kB), %ld sockets\n",
            (unsigned long long)t->idle_ok, t->rss_kb, t->rss_before_kb,
            t->idle_sockets);
    chans_free(ch, n);
}

static const tp_scen scen_defs[TP_NSCEN] = {
    [TP_HEAD] = {.name = "grpc-head",
     .title = "Head round trips: the transport's floor",
     .what = "One operation is one umadb.v1.DCB/Head (the tenant's head "
             "position: a lookup, no disk, no log): what a call costs "
             "over gRPC on this machine before the store does any work. "
             "Timed: from the call's start to its status. No items, no "
             "in-process counterpart.",
     .item = NULL,
     .inproc = NULL},
    [TP_APPEND] = {.name = "grpc-append-1",
     .title = "Single-event appends over gRPC",
     .what = "One operation is one umadb.v1.DCB/Append of one ~240 B JSON "
             "event with two tags and a uuid set by the client, no "
             "condition; durable when acknowledged (the server answers "
             "after the store's fdatasync). Timed: from the call's start to "
             "its status. Items: events written. Check: the tenant holds "
             "exactly the acknowledged events (read back over gRPC).",
     .item = "events",
     .inproc = "append-1"},
    [TP_DCB] = {.name = "grpc-dcb",
     .title = "DCB workflow over gRPC: Read, then conditional Append",
     .what = "One operation is a Read of one tag's events (a random tag of "
             "10,000; 1,000 with --quick) followed by an Append of one "
             "event with that tag on the condition fail_if_events_match = "
             "the same query, after = the read's head. FAILED_PRECONDITION "
             "is a conflict (not retried). Timed: Read + Append. Items: "
             "events written. Check: the tenant holds exactly the "
             "committed events. (The in-process dcb-workflow runs the "
             "command executor on courses with retries: the same pattern, "
             "more work per operation.)",
     .item = "events",
     .inproc = "dcb-workflow"},
    [TP_CATCHUP] = {.name = "grpc-catchup",
     .title = "Catch-up over Subscribe",
     .what = "One operation is one Subscribe from 0 (batch_size 4096) over "
             "a tenant holding N events (200,000; 2,000 with --quick), "
             "until the last event arrives; the call is then cancelled. "
             "Every message is unpacked and every position checked to "
             "grow. Items: events received. (The in-process catchup reads "
             "1000-event batches of the whole store with evs_read_tracking.)",
     .item = "events",
     .inproc = "catchup"},
    [TP_APPEND100] = {.name = "grpc-append-100",
     .title = "100-event appends over gRPC (DCB)",
     .what = "One operation is one umadb.v1.DCB/Append of 100 ~240 B JSON "
             "events (two tags each, uuids set by the client), no "
             "condition; durable when acknowledged. At 1, 64 and 256 "
             "connections, beside kurrent-append-100. Items: events "
             "written. Check: the tenant holds exactly 100 events per "
             "acknowledged append.",
     .item = "events",
     .inproc = "batch"},
    [TP_KAPPEND1] = {.name = "kurrent-append-1",
     .title = "Single-event appends through KurrentDB's protocol",
     .what = "One operation is one kurrentdb.protocol.v2.streams."
             "StreamsService/AppendSession (client streaming, one "
             "AppendRequest: what the KurrentDB clients' multiStreamAppend "
             "sends) of one event like grpc-append-1's (JSON, a record id) "
             "to one stream of 100,000, expected revision any. Compare "
             "with grpc-append-1 (the DCB Append) of the same run. Items: "
             "events written. Check: the tenant holds exactly the "
             "acknowledged events.",
     .item = "events",
     .inproc = "append-1"},
    [TP_KAPPEND100] = {.name = "kurrent-append-100",
     .title = "100-event appends through KurrentDB's protocol",
     .what = "As kurrent-append-1 with 100 events in the AppendRequest "
             "(one stream, one atomic append). Compare with "
             "grpc-append-100 of the same run. Check: the tenant holds "
             "exactly 100 events per acknowledged append.",
     .item = "events",
     .inproc = "batch"},
};

void transport_run(transport_result *t, const transport_config *cfg)
{
    t->requested = 1;
    t->exit_status = -1;
    memcpy(t->sc, scen_defs, sizeof scen_defs);
    /* tenants of this run only: a --db store given with --force may hold
     * an earlier run's */
    unsigned run_id = (unsigned)(now_ns() / 1000000u) ^ (unsigned)getpid();
    g_salt = now_ns() * 0x9E3779B97F4A7C15ULL;
    snprintf(t->tenant[TP_HEAD], sizeof t->tenant[0], "%s-%08x", T_HEAD, run_id);
    snprintf(t->tenant[TP_APPEND], sizeof t->tenant[0], "%s-%08x", T_APPEND,
             run_id);
    snprintf(t->tenant[TP_DCB], sizeof t->tenant[0], "%s-%08x", T_DCB, run_id);
    snprintf(t->tenant[TP_CATCHUP], sizeof t->tenant[0], "%s-%08x", T_CATCHUP,
             run_id);
    snprintf(t->tenant[TP_APPEND100], sizeof t->tenant[0], "%s-%08x", T_APPEND100,
             run_id);
    snprintf(t->tenant[TP_KAPPEND1], sizeof t->tenant[0], "%s-%08x", T_KAPPEND1,
             run_id);
    snprintf(t->tenant[TP_KAPPEND100], sizeof t->tenant[0], "%s-%08x", T_KAPPEND100,
             run_id);
    for (int i = 0; i < TP_NSCEN; i++)
        t->sc[i].check = -1;
    grpc_init();
    t->grpc_version = grpc_version_string();
    if (server_start(t, cfg) != 0) {
        t->failed = 1;
        fprintf(stderr, PROG ": grpc: %s\n", t->note);
        grpc_shutdown();
        transport_goals(t);
        return;
    }
    t->ran = 1;
    /* idle first: the server as 1,000 clients find it when they connect,
     * its RSS not yet holding what the scenarios leave behind (mapped
     * log segments, allocator arenas); that is read at the end */
    if (!atomic_load(&g_interrupted))
        tp_scen_idle(t, cfg);
    if (!atomic_load(&g_interrupted))
        tp_scen_head(t, cfg);
    if (!atomic_load(&g_interrupted))
        tp_scen_append(t, cfg);
    if (!atomic_load(&g_interrupted))
        tp_scen_dcb(t, cfg);
    if (!atomic_load(&g_interrupted))
        tp_scen_catchup(t, cfg);
    /* DCB and KurrentDB appends, each pair back to back */
    if (!atomic_load(&g_interrupted))
        tp_scen_batch(t, cfg, TP_KAPPEND1, K_KAPPEND, 1);
    if (!atomic_load(&g_interrupted))
        tp_scen_batch(t, cfg, TP_APPEND100, K_APPEND1, 100);
    if (!atomic_load(&g_interrupted))
        tp_scen_batch(t, cfg, TP_KAPPEND100, K_KAPPEND, 100);
    proc_rss(t->pid, &t->rss_end_kb, &t->rss_end_anon_kb, &t->rss_end_file_kb);
    server_stop(t);
    grpc_shutdown();
    for (int i = 0; i < TP_NSCEN; i++)
        t->failed |= t->sc[i].failed;
    transport_goals(t);
}

/* ------------------------------------------------------------------ */
/* Goals                                                               */
/* ------------------------------------------------------------------ */

static const tp_level *tp_find(const tp_scen *sc, int conns)
{
    for (int i = 0; i < sc->n; i++)
        if (sc->lv[i].conns == conns)
            return &sc->lv[i];
    return NULL;
}

static void goal_judge(tp_goal *g, const tp_level *lv, double v, int at_least,
                       double target, const char *missing)
{
    if (!lv) {
        g->verdict = "not run";
        snprintf(g->note, sizeof g->note, "%s", missing);
        return;
    }
    g->have = 1;
    g->measured = v;
    int ok = at_least ? v >= target : v <= target;
    if (lv->c.errors || lv->warm.errors) {
        ok = 0;
        snprintf(g->note, sizeof g->note, "the level had errors");
    }
    g->verdict = ok ? "met" : "not met";
}

void transport_goals(transport_result *t)
{
    tp_goal *g = t->goals;
    memset(g, 0, sizeof t->goals);
    g[0].name = "durable appends/s at 256 connections";
    g[0].target = ">= 50,000";
    g[0].unit = "appends/s";
    g[1].name = "append p50 at 1 connection";
    g[1].target = "<= 0.3 ms";
    g[1].unit = "ms";
    g[2].name = "catch-up over Subscribe";
    g[2].target = ">= 1,000,000 events/s";
    g[2].unit = "events/s";
    g[3].name = "server RSS with 1,000 idle connections";
    g[3].target = "< 200 MB";
    g[3].unit = "MB";
    const char *nr = !t->requested ? "transport not run"
                     : !t->ran     ? "the server did not start"
                                   : NULL;
    if (nr) {
        for (int i = 0; i < TP_NGOALS; i++) {
            g[i].verdict = "not run";
            snprintf(g[i].note, sizeof g[i].note, "%s", nr);
        }
        return;
    }
    const tp_level *a256 = tp_find(&t->sc[TP_APPEND], 256),
                   *a1 = tp_find(&t->sc[TP_APPEND], 1);
    goal_judge(&g[0], a256, a256 ? a256->ops_per_s : 0, 1, 50000,
               "judged at 256 connections, not in this run (--quick)");
    goal_judge(&g[1], a1, a1 ? a1->lat.p50 : 0, 0, 0.3,
               "no level of 1 connection ran");
    const tp_level *c1 = tp_find(&t->sc[TP_CATCHUP], 1);
    goal_judge(&g[2], c1, c1 ? c1->items_per_s : 0, 1, 1e6,
               "grpc-catchup did not run");
    if (c1 && t->load_events < CATCHUP_EVENTS) {
        g[2].verdict = "not run"; /* the figure is shown, not judged */
        snprintf(g[2].note, sizeof g[2].note,
                 "judged over 200,000 events; this run had %llu (--quick)",
                 (unsigned long long)t->load_events);
    }
    if (!t->idle_ran || t->rss_kb < 0) {
        g[3].verdict = "not run";
        snprintf(g[3].note, sizeof g[3].note, "grpc-idle did not run");
    } else {
        g[3].have = 1;
        g[3].measured = (double)t->rss_kb * 1024.0 / 1e6;
        int ok = g[3].measured < 200 && t->idle_ok >= IDLE_CONNS;
        g[3].verdict = ok ? "met" : "not met";
        if (t->idle_ok < IDLE_CONNS) {
            g[3].verdict = "not run";
            snprintf(g[3].note, sizeof g[3].note,
                     "%llu connections open, not 1,000 (--quick)",
                     (unsigned long long)t->idle_ok);
        }
    }
}

/* ------------------------------------------------------------------ */
/* The report                                                          */
/* ------------------------------------------------------------------ */

static const scen_result *inproc_find(const suite_report *r, const char *name)
{
    if (!name)
        return NULL;
    for (int i = 0; i < r->nsr; i++)
        if (r->sr[i].ran && strcmp(r->sr[i].sc->name, name) == 0)
            return &r->sr[i];
    return NULL;
}

/* The in-process level to set beside a gRPC level of conns connections:
 * the same number of threads, else the nearest below, else the first. */
static const level_result *inproc_level(const scen_result *s, int conns)
{
    const level_result *best = NULL;
    if (!s)
        return NULL;
    for (int i = 0; i < s->n; i++) {
        const level_result *l = &s->lv[i];
        if (l->threads <= conns && (!best || l->threads > best->threads))
            best = l;
    }
    return best ? best : s->n ? &s->lv[0] : NULL;
}

static void md_num(FILE *f, const char *fmt, double v, int have)
{
    if (have)
        fprintf(f, fmt, v);
    else
        fprintf(f, "-");
}

static void md_goal_rows(FILE *f, const transport_result *t)
{
    fprintf(f, "| goal (issue 16) | target | measured | verdict | note |\n"
               "|---|---|---|---|---|\n");
    for (int i = 0; i < TP_NGOALS; i++) {
        const tp_goal *g = &t->goals[i];
        fprintf(f, "| %s | %s | ", g->name, g->target);
        if (g->have)
            fprintf(f, strcmp(g->unit, "ms") == 0 ? "%.3f %s" : "%.1f %s",
                    g->measured, g->unit);
        else
            fprintf(f, "-");
        fprintf(f, " | %s | %s |\n", g->verdict, g->note[0] ? g->note : "");
    }
    fprintf(f, "\n");
}

static void md_compare(FILE *f, const suite_report *r)
{
    const transport_result *t = &r->tp;
    fprintf(f, "| scenario | connections | in-process scenario (threads) | "
               "in-process ops/s | gRPC ops/s | in-process items/s | gRPC "
               "items/s | in-process p50 ms | gRPC p50 ms | in-process p99 "
               "ms | gRPC p99 ms |\n"
               "|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < TP_NSCEN; i++) {
        const tp_scen *sc = &t->sc[i];
        const scen_result *ip = inproc_find(r, sc->inproc);
        for (int k = 0; k < sc->n; k++) {
            const tp_level *lv = &sc->lv[k];
            const level_result *il = inproc_level(ip, lv->conns);
            fprintf(f, "| `%s` | %d | ", sc->name, lv->conns);
            if (il)
                fprintf(f, "`%s` (%d) | ", sc->inproc, il->threads);
            else if (sc->inproc)
                fprintf(f, "`%s` not run | ", sc->inproc);
            else
                fprintf(f, "none | ");
            md_num(f, RATE_FMT, il ? il->ops_per_s : 0, il != NULL);
            fprintf(f, " | " RATE_FMT " | ", lv->ops_per_s);
            md_num(f, RATE_FMT, il ? il->items_per_s : 0, il != NULL);
            fprintf(f, " | ");
            md_num(f, RATE_FMT, lv->items_per_s, sc->item != NULL);
            fprintf(f, " | ");
            md_num(f, MS_FMT, il ? il->lat.p50 : 0, il != NULL);
            fprintf(f, " | " MS_FMT " | ", lv->lat.p50);
            md_num(f, MS_FMT, il ? il->lat.p99 : 0, il != NULL);
            fprintf(f, " | " MS_FMT " |\n", lv->lat.p99);
        }
    }
    fprintf(f, "\n");
}

void transport_md_summary(FILE *f, const suite_report *r)
{
    const transport_result *t = &r->tp;
    if (!t->requested)
        return;
    fprintf(f, "## Over the network: gRPC\n\n");
    if (!t->ran) {
        fprintf(f, "**Not measured: %s.**\n\n", t->note);
        return;
    }
    fprintf(f, "`evs serve` on %s, load generated by this process over "
               "gRPC (C core %s), beside the in-process figures of this "
               "run. Details: \"Over the network: gRPC, details\" in "
               "report.md.\n\n",
            t->listen, t->grpc_version ? t->grpc_version : "?");
    md_goal_rows(f, t);
    md_compare(f, r);
    if (t->failed)
        fprintf(f, "**The transport run had failures**: %s\n\n",
                t->note[0] ? t->note : "see the details");
}

void transport_md_env(FILE *f, const suite_report *r)
{
    const transport_result *t = &r->tp;
    fprintf(f, "| transport | ");
    if (!t->requested)
        fprintf(f, "%s", t->note[0] ? t->note : "not run");
    else if (!t->ran)
        fprintf(f, "FAILED: %s", t->note);
    else
        fprintf(f, "gRPC (C core %s): `evs serve` on %s, store %s, "
                   "started in %.2f s, exit status after SIGTERM %d%s%s "
                   "(stopped in %.2f s%s%s)",
                t->grpc_version ? t->grpc_version : "?", t->listen,
                t->server_db, t->start_s, t->exit_status,
                t->exit_note[0] ? ": " : "", t->exit_note, t->stop_s,
                t->stop_log[0] ? "; its log ends: " : "", t->stop_log);
    fprintf(f, " |\n");
}

void transport_md(FILE *f, const suite_report *r)
{
    const transport_result *t = &r->tp;
    if (!t->requested || !t->ran)
        return;
    fprintf(f, "## Over the network: gRPC, details\n\n");
    fprintf(f, "The server: `evs serve --db %s --listen %s --http off`, "
               "started by the bench (fork + exec of itself), answered Head "
               "%.2f s after the fork; its stderr went to `%s`; exit status "
               "after SIGTERM: %d%s%s. Same machine, same 2 cores: the load "
               "generator's CPU is taken from the server's. Client: gRPC's "
               "C core (%s), one channel (own subchannel pool = own TCP "
               "connection) per connection, one call in flight per "
               "connection, at most %d client threads each with its own "
               "completion queue, retries off, cleartext over loopback. "
               "CPU columns: seconds of CPU during the level, warm-up "
               "included.\n\n",
            t->server_db, t->listen, t->start_s, t->log_path, t->exit_status,
            t->exit_note[0] ? ", " : "", t->exit_note,
            t->grpc_version ? t->grpc_version : "?", TP_DRIVERS);
    for (int i = 0; i < TP_NSCEN; i++) {
        const tp_scen *sc = &t->sc[i];
        /* "### gRPC: `NAME`", not "### `NAME`": that form is kept for
         * evstore's own scenarios (tests/test_bench.c reads them) */
        fprintf(f, "### gRPC: `%s`: %s\n\n%s\n\n", sc->name, sc->title,
                sc->what);
        if (i == TP_CATCHUP && t->load_events)
            fprintf(f, "Load before it (not timed as the scenario): %llu "
                       "events in %.2f s by Append of %u-event batches, one "
                       "in flight (" RATE_FMT " events/s).\n\n",
                    (unsigned long long)t->load_events, t->load_s, LOAD_BATCH,
                    t->load_s > 0 ? (double)t->load_events / t->load_s : 0.0);
        fprintf(f, "Outcome: **%s**%s%s. Check: %s.\n\n",
                sc->failed ? "FAILED" : sc->ran ? "ok" : "not run",
                sc->error[0] ? ": " : "", sc->error,
                sc->check < 0 ? "none" : sc->check == 0 ? "held" : "failed");
        if (!sc->n)
            continue;
        fprintf(f, "| connections | client threads | attempted | committed | "
                   "rejected | conflicts | errors | ops/s | items/s | p50 ms "
                   "| p90 ms | p95 ms | p99 ms | max ms | warm-up excluded "
                   "(attempted) | client CPU s | server CPU s |\n"
                   "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
                   "---|---|---|\n");
        for (int k = 0; k < sc->n; k++) {
            const tp_level *l = &sc->lv[k];
            fprintf(f, "| %d | %d | %llu | %llu | %llu | %llu | %llu | "
                       RATE_FMT " | " RATE_FMT " | " MS_FMT " | " MS_FMT
                       " | " MS_FMT " | " MS_FMT " | " MS_FMT " | %llu | "
                       "%.2f | %.2f |\n",
                    l->conns, l->drivers, (unsigned long long)l->c.attempted,
                    (unsigned long long)l->c.committed,
                    (unsigned long long)l->c.rejected,
                    (unsigned long long)l->c.conflicts,
                    (unsigned long long)l->c.errors, l->ops_per_s,
                    l->items_per_s, l->lat.p50, l->lat.p90, l->lat.p95,
                    l->lat.p99, l->lat.max,
                    (unsigned long long)l->warm.attempted, l->client_cpu_s,
                    l->server_cpu_s);
        }
        fprintf(f, "\n");
        int notes = 0;
        for (int k = 0; k < sc->n; k++) {
            notes += sc->lv[k].error[0] || sc->lv[k].conflict[0];
            if (sc->lv[k].error[0])
                fprintf(f, "- %d connection%s: first error: %s\n",
                        sc->lv[k].conns, sc->lv[k].conns == 1 ? "" : "s",
                        sc->lv[k].error);
            if (sc->lv[k].conflict[0])
                fprintf(f, "- %d connection%s: first conflict: %s\n",
                        sc->lv[k].conns, sc->lv[k].conns == 1 ? "" : "s",
                        sc->lv[k].conflict);
        }
        if (notes)
            fprintf(f, "\n");
    }
    fprintf(f, "### gRPC: `grpc-idle`: idle connections\n\n");
    if (!t->idle_ran) {
        fprintf(f, "Not run.\n\n");
        return;
    }
    fprintf(f, "%d connections opened at once, each one Head (default "
               "tenant), then left open; 0.5 s later the server's "
               "/proc/PID/status and /proc/PID/fd were read. Run first, "
               "on the freshly started server (its RSS is mostly the "
               "store's mapped log segment: RssFile); after the scenarios "
               "above, with these connections closed, the server's VmRSS "
               "was %.1f MB (RssAnon %.1f MB, RssFile %.1f MB).%s%s\n\n"
               "| connections | Heads answered | server sockets | VmRSS "
               "before, MB | VmRSS with them, MB | RssAnon MB | RssFile MB | "
               "per connection, kB |\n|---|---|---|---|---|---|---|---|\n"
               "| %d | %llu | %ld | %.1f | %.1f | %.1f | %.1f | %.1f |\n\n",
            t->idle_conns, (double)t->rss_end_kb * 1024 / 1e6,
            (double)t->rss_end_anon_kb * 1024 / 1e6,
            (double)t->rss_end_file_kb * 1024 / 1e6,
            t->idle_error[0] ? " First error: " : "",
            t->idle_error,
            t->idle_conns, (unsigned long long)t->idle_ok, t->idle_sockets,
            (double)t->rss_before_kb * 1024 / 1e6,
            (double)t->rss_kb * 1024 / 1e6,
            (double)t->rss_anon_kb * 1024 / 1e6,
            (double)t->rss_file_kb * 1024 / 1e6,
            t->idle_ok ? (double)(t->rss_kb - t->rss_before_kb) /
                             (double)t->idle_ok * 1.024
                       : 0.0);
}

static json_t *jreal(double v) { return json_real(isfinite(v) ? v : 0.0); }

static json_t *j_tp_counts(const op_counts *c)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "attempted",
                     (json_int_t)c->attempted, "committed",
                     (json_int_t)c->committed, "rejected",
                     (json_int_t)c->rejected, "conflicts",
                     (json_int_t)c->conflicts, "errors",
                     (json_int_t)c->errors, "items", (json_int_t)c->items);
}

static json_t *j_tp_level(const tp_level *l)
{
    json_t *o = json_pack(
        "{s:i, s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o}",
        "connections", l->conns, "client_threads", l->drivers, "attempted",
        (json_int_t)l->c.attempted, "committed", (json_int_t)l->c.committed,
        "rejected", (json_int_t)l->c.rejected, "conflicts",
        (json_int_t)l->c.conflicts, "errors", (json_int_t)l->c.errors,
        "items", (json_int_t)l->c.items, "ops_per_s", jreal(l->ops_per_s),
        "items_per_s", jreal(l->items_per_s), "window_s", jreal(l->window_s));
    json_object_set_new(
        o, "latency_ms",
        json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:o}", "samples",
                  (json_int_t)l->lat.n, "min", jreal(l->lat.min), "p50",
                  jreal(l->lat.p50), "p90", jreal(l->lat.p90), "p95",
                  jreal(l->lat.p95), "p99", jreal(l->lat.p99), "max",
                  jreal(l->lat.max)));
    json_object_set_new(o, "accounting_ok",
                        json_boolean(counts_ok(&l->c) && counts_ok(&l->warm)));
    json_object_set_new(o, "warmup_excluded", j_tp_counts(&l->warm));
    json_object_set_new(o, "client_cpu_s", jreal(l->client_cpu_s));
    json_object_set_new(o, "server_cpu_s", jreal(l->server_cpu_s));
    json_object_set_new(o, "first_error",
                        l->error[0] ? json_string(l->error) : json_null());
    json_object_set_new(o, "first_conflict", l->conflict[0]
                                                  ? json_string(l->conflict)
                                                  : json_null());
    return o;
}

json_t *transport_json(const suite_report *r)
{
    const transport_result *t = &r->tp;
    json_t *o = json_object();
    json_object_set_new(o, "requested", json_boolean(t->requested));
    json_object_set_new(o, "ran", json_boolean(t->ran));
    json_object_set_new(o, "failed", json_boolean(t->failed));
    json_object_set_new(o, "note", t->note[0] ? json_string(t->note)
                                              : json_null());
    if (!t->ran) {
        json_object_set_new(o, "scenarios", json_array());
        json_object_set_new(o, "goals", json_array());
        return o;
    }
    json_object_set_new(
        o, "server",
        json_pack("{s:s, s:s, s:s, s:o, s:o, s:i, s:s?, s:s?}", "store",
                  t->server_db, "listen", t->listen, "log", t->log_path,
                  "start_s", jreal(t->start_s), "stop_s", jreal(t->stop_s),
                  "exit_status", t->exit_status, "exit_note",
                  t->exit_note[0] ? t->exit_note : NULL, "stop_log_tail",
                  t->stop_log[0] ? t->stop_log : NULL));
    json_object_set_new(o, "grpc_version",
                        json_string(t->grpc_version ? t->grpc_version : ""));
    json_object_set_new(o, "client_threads_max", json_integer(TP_DRIVERS));
    json_t *sa = json_array();
    for (int i = 0; i < TP_NSCEN; i++) {
        const tp_scen *sc = &t->sc[i];
        const scen_result *ip = inproc_find(r, sc->inproc);
        json_t *js = json_pack(
            "{s:s, s:s, s:s, s:s?, s:s?, s:b, s:b, s:s}", "name", sc->name,
            "title", sc->title, "what", sc->what, "item", sc->item,
            "in_process", sc->inproc, "ran", sc->ran, "failed", sc->failed,
            "check", sc->check < 0 ? "none" : sc->check == 0 ? "held" : "failed");
        json_object_set_new(js, "error", sc->error[0] ? json_string(sc->error)
                                                      : json_null());
        json_t *lvs = json_array();
        for (int k = 0; k < sc->n; k++) {
            json_t *jl = j_tp_level(&sc->lv[k]);
            const level_result *il = inproc_level(ip, sc->lv[k].conns);
            json_object_set_new(
                jl, "in_process",
                il ? json_pack("{s:s, s:i, s:o, s:o, s:o, s:o}", "scenario",
                               sc->inproc, "threads", il->threads,
                               "ops_per_s", jreal(il->ops_per_s),
                               "items_per_s", jreal(il->items_per_s),
                               "p50_ms", jreal(il->lat.p50), "p99_ms",
                               jreal(il->lat.p99))
                   : json_null());
            json_array_append_new(lvs, jl);
        }
        json_object_set_new(js, "levels", lvs);
        if (i == TP_CATCHUP)
            json_object_set_new(
                js, "load",
                json_pack("{s:I, s:o, s:i}", "events",
                          (json_int_t)t->load_events, "seconds",
                          jreal(t->load_s), "batch_events", LOAD_BATCH));
        json_array_append_new(sa, js);
    }
    json_object_set_new(o, "scenarios", sa);
    json_object_set_new(
        o, "idle",
        t->idle_ran
            ? json_pack("{s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
                        "s:I, s:s?}",
                        "connections", t->idle_conns, "heads_ok",
                        (json_int_t)t->idle_ok, "server_sockets",
                        (json_int_t)t->idle_sockets, "rss_before_kb",
                        (json_int_t)t->rss_before_kb, "rss_kb",
                        (json_int_t)t->rss_kb, "rss_anon_kb",
                        (json_int_t)t->rss_anon_kb, "rss_file_kb",
                        (json_int_t)t->rss_file_kb, "rss_end_kb",
                        (json_int_t)t->rss_end_kb, "rss_end_anon_kb",
                        (json_int_t)t->rss_end_anon_kb, "rss_end_file_kb",
                        (json_int_t)t->rss_end_file_kb, "error",
                        t->idle_error[0] ? t->idle_error : NULL)
            : json_null());
    json_t *ga = json_array();
    for (int i = 0; i < TP_NGOALS; i++) {
        const tp_goal *g = &t->goals[i];
        json_array_append_new(
            ga, json_pack("{s:s, s:s, s:s, s:o, s:s, s:s?}", "name", g->name,
                          "target", g->target, "unit", g->unit, "measured",
                          g->have ? jreal(g->measured) : json_null(),
                          "verdict", g->verdict, "note",
                          g->note[0] ? g->note : NULL));
    }
    json_object_set_new(o, "goals", ga);
    return o;
}
