/*
 * transport.h -- the transport dimension of `evs bench` (issue 16,
 * "Performance"; docs/BENCH.md, "Transport"): the same kinds of work as
 * the in-process scenarios, done by clients over gRPC against `evs serve`,
 * and reported beside the in-process figures of the same run.
 *
 * The runner (suite.c) calls transport_run after evstore's own scenarios.
 * It starts `evs serve` itself: fork + exec of /proc/self/exe "serve" on a
 * free loopback port (127.0.0.1, cleartext, --http off), on a fresh store
 * directory (embedded) or on the --db PostgreSQL URI, with the server's
 * stderr in a log file beside that store. It waits until the server
 * answers umadb.v1.DCB/Head, runs the scenarios below, sends SIGTERM and
 * checks that the server exited with status 0.
 *
 * The load generator is gRPC's C core client API (grpc_channel_create with
 * insecure credentials, grpc_channel_create_call, grpc_call_start_batch)
 * with protobuf-c messages from the server's own umadb.pb-c.h. One
 * connection is one grpc_channel with a local subchannel pool (gRPC would
 * otherwise share one TCP connection between channels to the same
 * address). Each connection has one call in flight; the calls are driven
 * by TP_DRIVERS threads at most, each with its own completion queue and an
 * equal share of the connections (not one thread per connection).
 *
 *   grpc-head       one Head (no store work but the head's lookup): the
 *                   round trip's floor; at 1 and 256 connections (--quick:
 *                   1, 8).
 *   grpc-append-1   one Append of one ~240 B JSON event (two tags, uuid
 *                   set by the client, no condition), durable when
 *                   acknowledged; at 1 and 256 connections (--quick: 1, 8).
 *                   Check: the tenant holds exactly the acknowledged events
 *                   (read back over gRPC).
 *   grpc-dcb        the DCB workflow: Read with a tag query (one of 10,000
 *                   tags, 1,000 with --quick), then Append of one event
 *                   with that tag on the condition fail_if_events_match =
 *                   the same query after the read's head.
 *                   FAILED_PRECONDITION is a conflict (not retried).
 *                   Timed: read + append. At 1 and 64 connections.
 *   grpc-catchup    Subscribe from 0 (batch_size 4096) over a tenant of N
 *                   events (200,000; --quick 2,000) loaded beforehand by
 *                   Append of 1,000-event batches (timed apart); one
 *                   operation is one whole catch-up, until the last event
 *                   arrives (then the call is cancelled). Items: events.
 *   grpc-idle       run first, on the fresh server: 1,000 connections
 *                   (--quick 100), each does one Head and stays open; then
 *                   the server's VmRSS (/proc/PID/status) and its open
 *                   sockets (/proc/PID/fd). The server's RSS is read again
 *                   after the other scenarios.
 *
 * Every operation ends in one outcome (suite.h's BENCH_*); per level the
 * counts add up to the operations attempted, warm-up operations are
 * counted apart, latency is each measured operation's, nearest-rank
 * percentiles, as in the in-process scenarios.
 *
 * Thread rules: transport_run is called by one thread; it calls
 * grpc_init/grpc_shutdown itself.
 */
#ifndef EVS_BENCH_TRANSPORT_H
#define EVS_BENCH_TRANSPORT_H

#include "bench_util.h"

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <jansson.h>

#define TP_DRIVERS 2      /* client threads driving the calls, at most */
#define TP_MAX_LEVELS 4
#define TP_NSCEN 7        /* head, append-1, dcb, catchup, append-100 and
                             KurrentDB's append-1 / append-100 (idle apart) */
enum { TP_HEAD, TP_APPEND, TP_DCB, TP_CATCHUP, TP_APPEND100, TP_KAPPEND1,
       TP_KAPPEND100 }; /* their index in sc[] */

/* One level: conns connections, one call in flight each. */
typedef struct tp_level {
    int conns;
    int drivers;          /* client threads used */
    op_counts warm;       /* started during the warm-up: excluded */
    op_counts c;          /* measured */
    double window_s;      /* measured window, to the last measured answer */
    double ops_per_s;     /* committed operations per second */
    double items_per_s;   /* items of the measured operations per second */
    lat_summary lat;      /* ms */
    double client_cpu_s;  /* this process's CPU (user + sys) in the window */
    double server_cpu_s;  /* the server's (from /proc/PID/stat) */
    char error[256];      /* the first error, if any */
    char conflict[256];   /* the first conflict's message, if any */
} tp_level;

typedef struct tp_scen {
    const char *name;     /* "grpc-append-1" */
    const char *title;
    const char *what;
    const char *item;     /* "events"; NULL: none */
    const char *inproc;   /* the in-process scenario it is compared with;
                             NULL: none */
    int ran, failed;
    char error[512];      /* setup or check failure */
    int check;            /* -1 none; 0 held; 1 failed */
    tp_level lv[TP_MAX_LEVELS];
    int n;
} tp_scen;

/* A goal of issue 16, judged on this run's figures. */
typedef struct tp_goal {
    const char *name;
    const char *target;   /* e.g. ">= 50,000 appends/s at 256 connections" */
    int have;             /* measured */
    double measured;
    const char *unit;
    const char *verdict;  /* "met", "not met", "not run" */
    char note[160];
} tp_goal;

#define TP_NGOALS 4

typedef struct transport_result {
    int requested;        /* 1: --transport grpc (or the full run's default) */
    int ran;              /* the server started and the scenarios ran */
    int failed;           /* server, scenario errors, checks, exit status */
    char note[512];       /* why it did not run, or what failed */
    char server_db[4096]; /* the store the server served */
    char listen[64];      /* 127.0.0.1:PORT */
    char log_path[4096];  /* the server's stderr */
    pid_t pid;
    double start_s;       /* fork to the first answered Head */
    double stop_s;        /* SIGTERM to its exit */
    char stop_log[300];   /* the end of its log when the stop took > 1 s */
    int exit_status;      /* the server's after SIGTERM (-1: not seen) */
    char exit_note[160];  /* how it ended, when not with status 0 */
    const char *grpc_version;
    char tenant[TP_NSCEN][80]; /* the scenarios' tenants, this run's own */
    tp_scen sc[TP_NSCEN]; /* in TP_* order */
    /* catch-up's data load */
    uint64_t load_events;
    double load_s;
    /* idle connections */
    int idle_ran;
    int idle_conns;       /* connections asked */
    uint64_t idle_ok;     /* Heads answered */
    long idle_sockets;    /* the server's open sockets with them open */
    long rss_before_kb, rss_kb, rss_anon_kb, rss_file_kb;
    /* the server after every scenario, the idle connections closed */
    long rss_end_kb, rss_end_anon_kb, rss_end_file_kb;
    char idle_error[256];
    tp_goal goals[TP_NGOALS];
} transport_result;

/* What transport_run needs from the runner. */
typedef struct transport_config {
    const char *db_uri;   /* the server's store: a fresh directory (created
                             by the server) or a PostgreSQL URI */
    const char *log_path; /* the server's stderr, created */
    int quick;
    double seconds, warmup; /* per level, as the in-process levels */
    uint64_t seed;
} transport_config;

/* Runs the transport dimension into *t (zeroed first; requested set).
 * Never fails as a whole: what went wrong is in t->failed and t->note
 * and the scenarios' errors. Progress on stderr. Stops between steps once
 * g_interrupted is set. */
void transport_run(transport_result *t, const transport_config *cfg);

/* Judges the goals of issue 16 (fills t->goals). */
void transport_goals(transport_result *t);

struct suite_report;

/* The report's section "Over the network: gRPC" (the in-process figures
 * of the same run beside, from r's scenario results), to f. */
void transport_md(FILE *f, const struct suite_report *r);
/* A one-row-per-goal table for the summary (nothing when not requested). */
void transport_md_summary(FILE *f, const struct suite_report *r);
/* The environment row ("| transport | ... |"). */
void transport_md_env(FILE *f, const struct suite_report *r);
/* report.json's "transport" member (new reference). */
json_t *transport_json(const struct suite_report *r);

#endif
