/*
 * serve.c -- `evs serve`: configuration defaults and checks, start, the
 * signal loop (SIGHUP reloads the API keys; SIGTERM and SIGINT stop
 * gracefully), stop, and the log.
 *
 * Stopping (docs/SERVER.md, "Stopping"): new calls and requests are
 * refused with UNAVAILABLE / 503; appends already received finish and are
 * answered; subscriptions end with UNAVAILABLE and a message; after 5 s
 * the calls still open (clients that stopped reading) are cancelled; then
 * the store is closed cleanly.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "serve.h"

void serve_config_defaults(serve_config *c)
{
    memset(c, 0, sizeof(*c));
    c->listen = "127.0.0.1:50051";
    c->http = "127.0.0.1:8080";
    c->workers = 64;
    c->max_message_bytes = 4u << 20;
    c->max_streams = 100;
    c->max_connections = 10000;
    c->idle_timeout_s = 300;
    c->keepalive_s = 60;
    c->subscriber_buffer = 1u << 20;
}

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void serve_log(const char *fmt, ...)
{
    char when[40];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&log_lock);
    fprintf(stderr, "evs serve: %s.%03ldZ ", when, ts.tv_nsec / 1000000);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    fflush(stderr);
    pthread_mutex_unlock(&log_lock);
    va_end(ap);
}

/* Is the host of "HOST:PORT" a loopback address? */
static int loopback(const char *addr)
{
    if (strncmp(addr, "127.", 4) == 0 || strncmp(addr, "localhost:", 10) == 0 ||
        strncmp(addr, "[::1]:", 6) == 0 || strncmp(addr, "ipv4:127.", 9) == 0)
        return 1;
    return 0;
}

int serve_config_check(const serve_config *cfg, char *msg, size_t msglen)
{
    if (!cfg->tls_cert != !cfg->tls_key) {
        snprintf(msg, msglen, "--tls-cert and --tls-key go together (a PEM certificate "
                 "chain and its private key)");
        return -1;
    }
    if (!cfg->tls_cert && !cfg->insecure) {
        const char *addrs[2] = {cfg->listen, cfg->http};
        for (int i = 0; i < 2; i++)
            if (addrs[i] && strcmp(addrs[i], "off") != 0 && !loopback(addrs[i])) {
                snprintf(msg, msglen, "%s is not a loopback address and there is no TLS: "
                         "give --tls-cert and --tls-key, or --insecure to serve cleartext "
                         "to the network anyway", addrs[i]);
                return -1;
            }
    }
    if (cfg->users && !cfg->tls_cert && !cfg->insecure_basic_auth) {
        snprintf(msg, msglen, "--users without TLS would take passwords in the clear: give "
                 "--tls-cert and --tls-key, or --insecure-basic-auth to accept basic "
                 "credentials over cleartext anyway");
        return -1;
    }
    if (cfg->workers < 1 || cfg->workers > 4096) {
        snprintf(msg, msglen, "--workers must be 1..4096 (got %u)", cfg->workers);
        return -1;
    }
    if (cfg->max_message_bytes < 1024 || cfg->max_message_bytes > (1u << 30)) {
        snprintf(msg, msglen, "--max-message-bytes must be 1 KiB..1 GiB");
        return -1;
    }
    if (cfg->max_streams < 1 || cfg->max_connections < 1) {
        snprintf(msg, msglen, "--max-streams and --max-connections must be at least 1");
        return -1;
    }
    if (cfg->subscriber_buffer < 1024) {
        snprintf(msg, msglen, "--subscriber-buffer must be at least 1024 bytes");
        return -1;
    }
    return 0;
}

void serve_block_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* Each connection is a file descriptor: raise the soft limit to the hard
 * one (1,024 by default would refuse the 1,025th client). */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* During a stop, SIGINT (a second Ctrl-C) exits at once: for a store call
 * that never returns or a client that never goes. Nothing acknowledged is
 * lost: every answer was sent after its append was durable. More SIGTERMs
 * (orchestrators repeat them) change nothing; SIGKILL ends it too. */
static void *second_signal(void *arg)
{
    sigset_t *set = arg;
    int sig = 0;
    while (sigwait(set, &sig) != 0 || sig != SIGINT)
        ;
    serve_log("SIGINT while stopping: exiting now (the next open recovers the store)");
    _exit(1);
    return NULL;
}

int serve_run(const serve_config *cfg, evs_db *db)
{
    serve *s = calloc(1, sizeof(*s));
    char msg[1024];
    int status = 0;
    if (!s) {
        fprintf(stderr, "evs serve: out of memory\n");
        evs_close(db);
        return 1;
    }
    s->cfg = *cfg;
    s->db = db;
    /* Writer first: a SIGHUP reload must not wait behind a stream of
     * requests checking keys. */
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&s->auth_lock, &ra);
    pthread_rwlockattr_destroy(&ra);
    pthread_mutex_init(&s->notify_lock, NULL);
    raise_nofile();
    s->metrics = serve_metrics_new();
    if (!s->metrics) {
        serve_log("out of memory");
        status = 1;
        goto close;
    }
    if ((cfg->api_keys || cfg->users) &&
        serve_auth_load(&s->auth, cfg->api_keys, cfg->users, msg, sizeof(msg)) < 0) {
        serve_log("%s", msg);
        status = 2;
        goto close;
    }
    /* Commits by other processes: only on PostgreSQL. An embedded store
     * has one writing process, this one, whose appends wake subscriptions
     * themselves (dcb.c, http.c): a thread woken by every commit would be
     * one more hop on each append's path. */
    int pg = strncmp(cfg->db_uri, "postgresql://", 13) == 0 ||
             strncmp(cfg->db_uri, "postgres://", 11) == 0;
    if (pg && serve_notify_start(s) < 0) {
        serve_log("cannot start the commit notification thread");
        status = 1;
        goto close;
    }
    if (serve_grpc_start(s, msg, sizeof(msg)) < 0) {
        serve_log("%s", msg);
        status = 1;
        goto stop;
    }
    if (cfg->http && strcmp(cfg->http, "off") != 0 &&
        serve_http_start(s, msg, sizeof(msg)) < 0) {
        serve_log("%s", msg);
        status = 1;
        goto stop;
    }
    serve_log("serving %s%s", cfg->db_uri,
              !s->auth        ? " (no API keys: every client is allowed)"
              : !cfg->users   ? " (API keys required)"
              : cfg->api_keys ? " (API keys or users' basic credentials required)"
                              : " (users' basic credentials required)");

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            serve_reload_keys(s);
            continue;
        }
        serve_log("stopping (%s): refusing new calls, finishing appends in flight (SIGINT "
                  "exits at once)", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        static sigset_t again;
        again = set;
        pthread_t t;
        if (pthread_create(&t, NULL, second_signal, &again) == 0)
            pthread_detach(t);
        break;
    }
stop:
    atomic_store(&s->stopping, 1);
    serve_notify_wake_all(s);
    serve_http_stop(s);
    serve_grpc_stop(s);
    serve_notify_stop(s);
close: {
    int rc = evs_close(s->db);
    if (rc < 0) {
        serve_log("closing the store: %s", evs_last_error());
        if (!status)
            status = 1;
    }
}
    serve_log("stopped");
    serve_auth_free(s->auth);
    serve_metrics_free(s->metrics);
    pthread_rwlock_destroy(&s->auth_lock);
    pthread_mutex_destroy(&s->notify_lock);
    free(s);
    return status;
}
