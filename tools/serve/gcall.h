/*
 * gcall.h -- one gRPC call as the service handlers (dcb.c, health.c) see
 * it; grpc.c owns the call's life.
 *
 * Threads: a handler and every `next` step run on a worker thread (they
 * may block on the store). At any moment exactly one party drives a call
 * forward: a worker running its step, a send in flight, or a parked
 * waiter. A step must end by calling exactly one of gcall_reply,
 * gcall_fail, gcall_send, gcall_end or gcall_park, and must not touch the
 * call after that call returns (it may already be freed).
 */
#ifndef EVS_SERVE_GCALL_H
#define EVS_SERVE_GCALL_H

#include <protobuf-c/protobuf-c.h>
#include <stdint.h>

#include "serve.h"

typedef struct gcall gcall;

/* A step of a call; runs on a worker. */
typedef void (*gcall_step)(gcall *c);

/* The handler of a method: req is the request message's bytes (valid
 * during the call). */
typedef void (*gcall_handler)(gcall *c, const uint8_t *req, size_t len);

typedef struct gcall_method {
    const char *path;      /* "/umadb.v1.DCB/Append" */
    gcall_handler handler;
    int access;            /* SERVE_READ or SERVE_WRITE (API keys) */
} gcall_method;

/* The methods whose client sends a stream of messages (KurrentDB's
 * Append), NULL-terminated paths (kurrent.c): their handler runs once the
 * client half-closes, and req holds every message, each as a 4-byte
 * little-endian length then its bytes (gcall_next_message); at most
 * max_message_bytes in all, else the handler runs early with
 * gcall_truncated 1. */
extern const char *const serve_client_streaming[];

/* dcb.c, health.c: their methods, NULL-terminated. */
extern const gcall_method serve_dcb_methods[];
extern const gcall_method serve_health_methods[];
extern const gcall_method serve_kurrent_methods[]; /* kurrent.c */

/* gRPC status codes used here (grpc/status.h has the full list). */
#define GS_OK 0
#define GS_CANCELLED 1
#define GS_UNKNOWN 2
#define GS_INVALID_ARGUMENT 3
#define GS_NOT_FOUND 5
#define GS_PERMISSION_DENIED 7
#define GS_RESOURCE_EXHAUSTED 8
#define GS_FAILED_PRECONDITION 9
#define GS_UNIMPLEMENTED 12
#define GS_INTERNAL 13
#define GS_UNAVAILABLE 14
#define GS_DATA_LOSS 15
#define GS_UNAUTHENTICATED 16

serve *gcall_serve(gcall *c);
/* The request's tenant ("" for the default), at most 255 bytes. */
const char *gcall_tenant(gcall *c);
/* 1 once the client cancelled or went away, or the server is stopping. */
int gcall_done(gcall *c);
/* Nanoseconds (CLOCK_MONOTONIC) when the call arrived. */
uint64_t gcall_started_ns(gcall *c);

/* The allocator to unpack the request with (free it with
 * gcall_free_allocator(), which needs no call): it counts
 * the decoded bytes against the call's budget (16 x the request's bytes +
 * 1 MiB) and the server's (256 MiB), so that a small message of many empty
 * entries cannot make the server run out of memory; unpacking fails (NULL)
 * beyond them. */
ProtobufCAllocator *gcall_allocator(gcall *c);
ProtobufCAllocator *gcall_free_allocator(void);

/* A long call (a subscription) asks, at each step, whether its key still
 * holds: after a SIGHUP reload of the API keys it is checked again (free
 * otherwise). Returns 1 when it holds; else fails the call with
 * UNAUTHENTICATED or PERMISSION_DENIED and returns 0 (the step must then
 * not touch the call). */
int gcall_still_allowed(gcall *c);

/* Per-call state of a streaming handler, freed with the call. */
void gcall_set_state(gcall *c, void *state, void (*free_fn)(void *));
void *gcall_state(gcall *c);

/* Unary: send msg and status OK. */
void gcall_reply(gcall *c, const ProtobufCMessage *msg);
/* Any call: end with status code and a message (also sent in the
 * details trailer as umadb.v1.ErrorResponse when error_type >= 0). */
void gcall_fail(gcall *c, int code, int error_type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Any call: end with status code and message, and trailing metadata:
 * nkv pairs of ASCII key and value (KurrentDB's "exception" etc.; at most
 * 4 pairs). */
void gcall_fail_md(gcall *c, int code, const char *const *kv, size_t nkv, const char *fmt,
                   ...) __attribute__((format(printf, 5, 6)));

/* A client-streaming request (serve_client_streaming): the next of its
 * messages from offset *pos (start with 0) into msg and mlen; 1 when one
 * was there, 0 at the end. */
int gcall_next_message(const uint8_t *req, size_t len, size_t *pos, const uint8_t **msg,
                       size_t *mlen);
/* 1 when the client streamed more than max_message_bytes: req holds only
 * the first messages. */
int gcall_truncated(gcall *c);

/* Streaming: send one message; once it is on its way (gRPC's flow
 * control took it), `next` runs on a worker. If the call ended
 * meanwhile, it is finished instead and next never runs. */
void gcall_send(gcall *c, const ProtobufCMessage *msg, gcall_step next);
/* Streaming: end with status OK. */
void gcall_end(gcall *c);
/* Streaming: wait until the store's head passes `seen` (or the call ends:
 * then `next` still runs and sees gcall_done). */
void gcall_park(gcall *c, uint64_t seen, gcall_step next);

/* The ErrorResponse error types of UmaDB. */
#define UMA_IO 0
#define UMA_SERIALIZATION 1
#define UMA_INTEGRITY 2
#define UMA_CORRUPTION 3
#define UMA_INTERNAL 4
#define UMA_AUTHENTICATION 5
#define UMA_INVALID_ARGUMENT 6

#endif
