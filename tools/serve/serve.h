/*
 * serve.h -- `evs serve`: one process owns the store and serves it to
 * many clients (docs/SERVER.md).
 *
 *   grpc.c    the gRPC listener (gRPC's C core, libgrpc): calls, the
 *             worker pool that runs store calls, statuses
 *   dcb.c     umadb.v1.DCB (UmaDB's DCB API) on top of the public API
 *   health.c  grpc.health.v1.Health
 *   notify.c  commit notification for subscriptions (pushed, not polled)
 *   http.c    the HTTP/1.1 listener (libmicrohttpd): /metrics, /health,
 *             the HTTP/JSON DCB API, Server-Sent Events
 *   auth.c    API keys (bearer tokens, per tenant, read-only)
 *   metrics.c counters, histograms, the Prometheus text format
 *   serve.c   configuration, start, signals, graceful stop
 *
 * Everything here runs on the public API (include/evstore.h) only.
 */
#ifndef EVS_SERVE_H
#define EVS_SERVE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "evstore.h"

/* The request header (gRPC metadata key, HTTP header) naming the tenant;
 * absent or empty: the default tenant. */
#define SERVE_TENANT_HEADER "evs-tenant"

/* ------------------------------------------------------------------ */
/* Configuration                                                       */
/* ------------------------------------------------------------------ */

typedef struct serve_config {
    const char *db_uri;        /* evs_open URI (directory or postgresql://) */
    const char *listen;        /* gRPC "HOST:PORT" (default 127.0.0.1:50051) */
    const char *http;          /* HTTP "HOST:PORT" (default 127.0.0.1:8080);
                                  "off": no HTTP listener */
    const char *tls_cert;      /* PEM certificate chain; NULL: cleartext */
    const char *tls_key;       /* PEM private key (with tls_cert) */
    const char *api_keys;      /* API-keys file; NULL: no authentication */
    const char *users;         /* users file (basic credentials); NULL: none */
    int insecure_basic_auth;   /* 1: allow --users without TLS */
    int insecure;              /* 1: allow a non-loopback address without TLS */
    unsigned workers;          /* threads running store calls (default 64) */
    uint32_t max_message_bytes;/* largest request message (default 4 MiB) */
    uint32_t max_streams;      /* concurrent calls per connection (100) */
    uint32_t max_connections;  /* open connections, gRPC + HTTP (10000) */
    uint32_t idle_timeout_s;   /* close a connection idle this long (300) */
    uint32_t keepalive_s;      /* PING an idle connection this often (60) */
    uint32_t subscriber_buffer;/* bytes queued per subscription before it
                                  stops reading the store (1 MiB) */
} serve_config;

/* Defaults of everything but db_uri. */
void serve_config_defaults(serve_config *c);

/* ------------------------------------------------------------------ */
/* API keys (auth.c)                                                   */
/* ------------------------------------------------------------------ */

typedef struct serve_auth serve_auth;

#define SERVE_READ 0
#define SERVE_WRITE 1
#define SERVE_ADMIN 2 /* store-wide data (/metrics): a key for every tenant */

/* serve_check results */
#define SERVE_ALLOW 0
#define SERVE_DENY_UNAUTHENTICATED 1 /* no key, or a key not in the file */
#define SERVE_DENY_FORBIDDEN 2       /* key valid, but not for this tenant
                                        or read-only and the call writes */

/* Load an API-keys file (format: docs/SERVER.md "API keys"). Returns 0,
 * or -1 with a message naming the file and line in msg. */
int serve_auth_load(serve_auth **out, const char *keys_path, const char *users_path,
                    char *msg, size_t msglen);
/* A password's salted Argon2id hash (libsodium's crypto_pwhash_str, at
 * its "interactive" cost) into out (at least 128 bytes, NUL-terminated),
 * the form of the users file. 0, or -1 (out of memory). */
int serve_hash_password(const char *password, size_t len, char *out, size_t outlen);
void serve_auth_free(serve_auth *a);

/* ------------------------------------------------------------------ */
/* Metrics (metrics.c)                                                 */
/* ------------------------------------------------------------------ */

typedef struct serve_metrics serve_metrics;

#define SERVE_PROTO_GRPC 0
#define SERVE_PROTO_HTTP 1

/* One subscription's gauge: the position it has delivered up to. */
typedef struct serve_sub_gauge serve_sub_gauge;

serve_metrics *serve_metrics_new(void);
void serve_metrics_free(serve_metrics *m);
/* A finished append: rc is the library's result (0, EVS_ECONFLICT, ...),
 * nevents the events it carried, latency_ns from request to answer. */
void serve_metrics_append(serve_metrics *m, int proto, int rc, size_t nevents,
                          uint64_t latency_ns);
/* A finished request of any kind: method name ("umadb.v1.DCB/Read",
 * "GET /read"), status (gRPC status code or HTTP status). */
void serve_metrics_request(serve_metrics *m, int proto, const char *method, int status);
serve_sub_gauge *serve_metrics_sub_open(serve_metrics *m, int proto);
void serve_metrics_sub_position(serve_sub_gauge *g, uint64_t position);
void serve_metrics_sub_close(serve_metrics *m, serve_sub_gauge *g);

/* ------------------------------------------------------------------ */
/* Commit notification (notify.c)                                      */
/* ------------------------------------------------------------------ */

/* A waiter parked until the store's head passes a position. */
typedef struct serve_waiter serve_waiter;
struct serve_waiter {
    serve_waiter *next;
    uint64_t seen;              /* the head the waiter's last read saw */
    void (*wake)(serve_waiter *w); /* called once, on a notify thread or
                                      an appending worker; must not block */
};

/* ------------------------------------------------------------------ */
/* The server                                                          */
/* ------------------------------------------------------------------ */

typedef struct serve_grpc serve_grpc;
typedef struct serve_http serve_http;

typedef struct serve {
    serve_config cfg;
    evs_db *db;
    serve_metrics *metrics;
    pthread_rwlock_t auth_lock; /* guards auth (replaced on SIGHUP) */
    serve_auth *auth;           /* NULL: no authentication */
    atomic_uint auth_gen;       /* bumped by every reload of the keys */
    atomic_int stopping;        /* 1 once SIGTERM/SIGINT arrived */
    /* notify.c */
    pthread_mutex_t notify_lock;
    uint64_t notify_head;       /* highest head known (under notify_lock) */
    serve_waiter *waiters;      /* parked (under notify_lock) */
    pthread_t notify_thread;
    int notify_started;
    serve_grpc *grpc;
    serve_http *http;
} serve;

/* Serve the open store db until SIGTERM/SIGINT, then close it; returns
 * the process exit status. Logs to stderr, one line per event. Call with
 * SIGTERM, SIGINT and SIGHUP blocked in every thread (serve_block_signals
 * before opening the store): the server waits for them with sigwait. */
int serve_run(const serve_config *cfg, evs_db *db);
void serve_block_signals(void);
/* 0, or -1 with a message: a non-loopback address without TLS needs
 * cfg->insecure; tls_cert and tls_key go together. */
int serve_config_check(const serve_config *cfg, char *msg, size_t msglen);

/* Log one line to stderr: "evs serve: <time> <message>". Thread-safe. */
void serve_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Check a request's credentials (auth.c). authorization: the header's
 * value ("Bearer KEY" or "Basic base64(user:password)") or NULL; tenant: "" for the default. Returns
 * SERVE_ALLOW, or a SERVE_DENY_* with a message for the client in msg.
 * Allows everything when no API-keys file is configured. Thread-safe. */
int serve_check(serve *s, const char *authorization, const char *tenant, int access,
                char *msg, size_t msglen);
/* The tenant bound to the credentials of an "authorization" value: when
 * they name an API key or a user limited to exactly one tenant
 * (tenants=T), copy T into out and return 1; else 0. Checks nothing (the
 * call's serve_check does): for calls whose clients cannot send the tenant
 * header (KurrentDB's). Thread-safe. */
int serve_bound_tenant(serve *s, const char *authorization, char *out, size_t outlen);
/* Re-read the API-keys file (SIGHUP). Keeps the old keys on error. */
void serve_reload_keys(serve *s);

/* notify.c: start/stop the thread that watches for commits by other
 * processes; tell waiters about a head; park a waiter: returns 1 when
 * parked, 0 when it was woken at once (the head is already past w->seen,
 * or the server is stopping). */
int serve_notify_start(serve *s);
void serve_notify_stop(serve *s);
void serve_notify_head(serve *s, uint64_t head);
int serve_notify_park(serve *s, serve_waiter *w);
/* Remove a parked waiter (returns 1 if it was parked, 0 if already woken). */
int serve_notify_unpark(serve *s, serve_waiter *w);
/* Wake every parked waiter (stopping: they see s->stopping). */
void serve_notify_wake_all(serve *s);

/* grpc.c */
int serve_grpc_start(serve *s, char *msg, size_t msglen);
void serve_grpc_stop(serve *s);  /* graceful: see docs/SERVER.md */
uint64_t serve_grpc_connections(serve *s);

/* http.c */
int serve_http_start(serve *s, char *msg, size_t msglen);
void serve_http_stop(serve *s);
uint64_t serve_http_connections(serve *s);

/* metrics.c: the whole /metrics page (malloc'd, *len bytes). */
char *serve_metrics_render(serve *s, size_t *len);

#endif
