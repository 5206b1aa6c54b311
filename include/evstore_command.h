/*
 * evstore_command.h -- the command executor: read, decide, write.
 *
 * A command reads the streams it needs, folds their events into state,
 * decides (new events, or a business rejection with a reason), and writes
 * its events atomically on the condition that nothing it read has changed
 * since. On a conflict it starts over, under a retry policy. This is
 * EventCore's command model (multi-stream commands, stream discovery,
 * every stream read is checked at commit), and a DCB form (dcb.events)
 * where the command reads a query instead of streams and its append
 * condition is that query after the read's consistency marker.
 *
 * The executor is built on the public API of evstore.h only
 * (evs_read_streams, evs_read_query, evs_append_ex), so it works with
 * every backend. Conventions are those of evstore.h: 0 or a negative EVS_E*
 * code, evs_last_error() holds the detail message, outputs first, option
 * structs with a version field and an _INIT macro. docs/COMMANDS.md says
 * how the executor works and why.
 *
 *     static const evs_fold account_fold = {
 *         "account", sizeof(account), NULL, account_apply, NULL, NULL};
 *     evs_cmd_stream s[] = {{"account-7", EVS_CMD_READ, &account_fold}};
 *     evs_command cmd = EVS_COMMAND_INIT;
 *     cmd.name = "withdraw";
 *     cmd.streams = s;
 *     cmd.nstreams = 1;
 *     cmd.handle = withdraw_handle;   // emits "Withdrawn" or rejects
 *     cmd.args = &amount;
 *     evs_command_result r;
 *     int rc = evs_command_execute(&r, ex, &cmd);
 *     // rc == 0: r.outcome is EVS_CMD_COMMITTED or EVS_CMD_REJECTED
 *
 * Thread safety: one evs_executor may be shared by any number of threads;
 * callbacks (apply, discover, handle, copy, release, the read hook) run on
 * the thread that called evs_command_execute, and apply/copy/release may
 * run on several threads at once on different states.
 */
#ifndef EVSTORE_COMMAND_H
#define EVSTORE_COMMAND_H

#include "evstore.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Limits                                                              */
/* ------------------------------------------------------------------ */

/* Streams of one command: declared (duplicates counted) + discovered. */
#define EVS_CMD_MAX_STREAMS 1024
/* Reads of one attempt: the declared streams, then at most
 * EVS_CMD_MAX_READS - 1 rounds of discovered streams. */
#define EVS_CMD_MAX_READS 8
/* Bytes of a rejection reason or a result message, with the NUL. */
#define EVS_CMD_REASON_MAX 256

/* ------------------------------------------------------------------ */
/* Folds: how a stream's events become state                           */
/* ------------------------------------------------------------------ */

/*
 * How the events of one stream (or of a DCB query) fold into a state: the
 * kind of aggregate, e.g. "account". Usually a static const shared by every
 * command that reads such streams: with a state cache, the fold's address
 * is part of the cache key, so deposits, withdrawals and transfers that use
 * the same fold share the cached state of an account.
 *
 * The state is a block of state_size bytes that the executor allocates. It
 * is set up by init (NULL: every byte zero), then apply is called once per
 * event of the stream, in version order. apply must depend only on the
 * state and the event (not on the command's arguments, the clock, ...):
 * the cache relies on folding the same events giving the same state.
 * apply returns 0, or a negative EVS_E* code to fail the command (e.g.
 * EVS_ECORRUPT for an event it cannot parse); the command's detail message
 * then names the fold and the event, followed by the message of the last
 * evs_* call apply made, if any.
 *
 * A state that owns memory (pointers) needs copy and release: copy makes
 * dst (state_size bytes of uninitialized memory) an independent deep copy
 * of src and returns 0 or EVS_ENOMEM; release frees what a state owns (not
 * the block itself). NULL copy: memcpy; NULL release: nothing to free.
 * With a state cache, copy runs under a cache lock: it must not call the
 * executor.
 */
typedef struct evs_fold {
    const char *name;  /* for messages; may be NULL */
    size_t state_size; /* bytes, >= 1 */
    void (*init)(void *state);
    int (*apply)(void *state, const evs_event *ev); /* required */
    int (*copy)(void *dst, const void *src);
    void (*release)(void *state);
} evs_fold;

/* ------------------------------------------------------------------ */
/* Declaring streams                                                   */
/* ------------------------------------------------------------------ */

/*
 * What the executor does with a declared stream (its "expectation").
 *
 * EVS_CMD_READ (0, the default): the stream is read and folded, and the
 * commit requires it to be still at the version read, whether or not the
 * command writes to it (EventCore: every stream read is checked). Written:
 * its expected version is the version read (EVS_NO_STREAM when it had no
 * events). Read only: an append condition (query "$stream:NAME", after
 * the read's marker) checks that no event was added to it.
 *
 * EVS_CMD_APPEND: the stream is not read and has no state; events the
 * command writes to it are appended with EVS_ANY. For streams whose
 * appends commute with everything the command decided on, such as a
 * customer's order history: concurrent commands then do not conflict on
 * it. (Not in EventCore, where every declared stream is read.)
 */
typedef enum evs_cmd_access {
    EVS_CMD_READ = 0,
    EVS_CMD_APPEND = 1
} evs_cmd_access;

/*
 * One stream of a command. The same stream may be declared twice with the
 * same access and fold (e.g. a transfer from an account to itself, which
 * the handler can then reject with a reason): it is read once and both
 * entries show the same state. Declared twice with a different access or
 * fold is EVS_EINVAL. (EventCore rejects every duplicate.)
 */
typedef struct evs_cmd_stream {
    const char *stream;    /* 1..EVS_MAX_STREAM_LEN bytes; borrowed for
                              the call */
    evs_cmd_access access; /* EVS_CMD_READ (default) or EVS_CMD_APPEND */
    const evs_fold *fold;  /* READ: how its events fold; NULL: read only
                              for its version (no state). APPEND: NULL */
} evs_cmd_stream;

/*
 * What discover and handle see of one stream: entries 0..nstreams-1 are
 * the declared streams in declaration order (a duplicate declaration gets
 * its own entry with the same state), then one entry per discovered stream
 * in the order first discovered. The DCB form has one entry, for its query.
 * Valid during the callback only.
 */
typedef struct evs_cmd_state {
    const char *stream;    /* NULL in the DCB form */
    evs_cmd_access access;
    int64_t version;       /* READ: the version folded (EVS_NO_STREAM when
                              the stream has no events); APPEND: EVS_ANY;
                              DCB form: EVS_NO_STREAM */
    uint64_t marker;       /* the head position of the snapshot the state
                              was read from; DCB form: the read's
                              consistency marker; APPEND: 0 */
    uint64_t events;       /* events folded into this state in this
                              attempt (fewer than the stream has when the
                              rest came from the state cache) */
    const void *state;     /* fold->state_size bytes; NULL without a fold */
} evs_cmd_state;

/* The entry of `stream` among s[0..n), or NULL. */
EVS_EXTERN const evs_cmd_state *evs_cmd_state_find(const evs_cmd_state *s,
                                                   size_t n,
                                                   const char *stream);

/* ------------------------------------------------------------------ */
/* Deciding: what a handler returns                                    */
/* ------------------------------------------------------------------ */

/* The decision under construction, owned by the executor (one per
 * attempt); valid during the handler only. */
typedef struct evs_decision evs_decision;

/*
 * Add one event for `stream` to the decision. Everything in ev (type, data,
 * metadata, tags) is copied: the handler's buffers may go away when it
 * returns. stream must be a stream of the command (declared or
 * discovered); in the DCB form it must be NULL (the events belong to no
 * stream; tag them so the command's query finds them). The events of one
 * stream are written in the order emitted; streams in the order of their
 * first event. ev->id nil: the store generates one at each attempt; a
 * caller's id makes the command idempotent as in evs_append.
 *
 * Returns 0, EVS_EINVAL (NULL d or ev, NULL or empty type, a stream the
 * command did not declare or discover, a named stream in the DCB form or
 * NULL in the stream form, more than EVS_MAX_TAGS tags), EVS_ENOMEM. After
 * an error the decision is failed: the command ends with that error and
 * writes nothing, whatever the handler returns.
 */
EVS_EXTERN int evs_decision_emit(evs_decision *d, const char *stream,
                                 const evs_event_data *ev);

#if defined(__GNUC__)
#define EVS__PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define EVS__PRINTF(f, a)
#endif
/*
 * Reject the command (a business rule failed): nothing is written and the
 * outcome is EVS_CMD_REJECTED with code and the formatted reason (cut to
 * EVS_CMD_REASON_MAX - 1 bytes). code is the caller's (0 if unused). A
 * second rejection keeps the first. Rejecting and emitting in one decision
 * is EVS_EINVAL at the end of the handler. Returns 0, or EVS_EINVAL (d or
 * fmt NULL).
 */
EVS_EXTERN int evs_decision_reject(evs_decision *d, int code,
                                   const char *fmt, ...) EVS__PRINTF(3, 4);

/* ------------------------------------------------------------------ */
/* Discovering streams                                                 */
/* ------------------------------------------------------------------ */

/* The discovered streams under construction; valid during discover. */
typedef struct evs_discovery evs_discovery;

/*
 * Ask for one more stream (EventCore's stream resolver). The name is
 * copied. A stream the command already has (declared or discovered) with
 * the same access and fold is ignored, so discover may ask for the same
 * streams every time it is called; with another access or fold it is
 * EVS_EINVAL. Returns 0, EVS_EINVAL (NULL argument, bad name, APPEND with
 * a fold, EVS_CMD_MAX_STREAMS reached), EVS_ENOMEM; after an error the
 * command ends with it.
 */
EVS_EXTERN int evs_discovery_add(evs_discovery *dx, const evs_cmd_stream *s);

/* ------------------------------------------------------------------ */
/* Commands                                                            */
/* ------------------------------------------------------------------ */

/*
 * discover (optional, stream form only): called after each read with
 * every state so far; it adds the further streams it needs. The executor
 * reads the new ones only (one evs_read_streams call), folds them and calls
 * discover again, until it adds nothing new; more than EVS_CMD_MAX_READS
 * reads in one attempt is EVS_EINVAL. Returns 0 or a negative EVS_E* code
 * (the command ends with it).
 *
 * handle (required): decides from the states, by calling
 * evs_decision_emit one or more times or evs_decision_reject once. Called
 * exactly once per attempt, after every read. Returns 0, or a negative
 * EVS_E* code to end the command with that error (nothing written).
 * Deciding nothing (no event, no rejection) is EVS_EINVAL.
 *
 * args is passed to both unchanged.
 */
typedef int (*evs_discover_fn)(evs_discovery *dx, const evs_cmd_state *s,
                               size_t n, void *args);
typedef int (*evs_handle_fn)(evs_decision *d, const evs_cmd_state *s,
                             size_t n, void *args);

/*
 * The retry policy: at most max_attempts attempts (>= 1; 1 = no retry).
 * Before attempt k + 1 (after k conflicts) the executor sleeps a uniformly
 * random time in [0, min(max_delay_us, base_delay_us * 2^(k-1))]
 * microseconds ("full jitter" exponential backoff). base_delay_us 0: retry
 * at once. Only EVS_ECONFLICT is retried.
 */
typedef struct evs_retry_policy {
    unsigned max_attempts; /* >= 1 */
    uint32_t base_delay_us;
    uint32_t max_delay_us; /* >= base_delay_us */
} evs_retry_policy;
#define EVS_RETRY_POLICY_INIT { 10, 100, 20000 }

#define EVS_COMMAND_VERSION 1
/*
 * A command: either streams (the stream form) or query + query_fold (the
 * DCB form), never both. Everything is borrowed for the call.
 */
typedef struct evs_command {
    unsigned version;         /* EVS_COMMAND_VERSION */
    const char *name;         /* for messages, e.g. "withdraw"; NULL ok */
    const char *tenant;       /* NULL or "": the default tenant */
    const evs_cmd_stream *streams; /* stream form: 1..EVS_CMD_MAX_STREAMS */
    size_t nstreams;
    const evs_query *query;   /* DCB form: read forward from the start */
    const evs_fold *query_fold; /* DCB form: folds the query's events */
    evs_discover_fn discover; /* optional; stream form only */
    evs_handle_fn handle;     /* required */
    void *args;
    const evs_retry_policy *retry; /* NULL: the executor's policy */
} evs_command;
#define EVS_COMMAND_INIT                                                     \
    { EVS_COMMAND_VERSION, NULL, NULL, NULL, 0, NULL, NULL, NULL, NULL,      \
      NULL, NULL }

typedef enum evs_command_outcome {
    EVS_CMD_COMMITTED = 0, /* the events are durable */
    EVS_CMD_REJECTED = 1,  /* the handler rejected; nothing written */
    EVS_CMD_CONFLICT = 2,  /* every attempt conflicted; nothing written */
    EVS_CMD_ERROR = 3      /* an error; see error and evs_last_error() */
} evs_command_outcome;

typedef struct evs_command_result {
    evs_command_outcome outcome;
    int error;               /* the return code of evs_command_execute */
    unsigned attempts;       /* attempts started (the handler ran in each,
                                except an attempt that failed before it) */
    uint64_t first_position; /* committed: position of the first event */
    uint64_t last_position;  /* committed: position of the last event */
    size_t nevents;          /* committed: events written */
    int reason_code;         /* rejected: the handler's code */
    char reason[EVS_CMD_REASON_MAX]; /* rejected: the handler's reason;
                                conflict: the last conflict's detail
                                (e.g. "expected version 4 but stream
                                account-7 is at 6"); error: the detail
                                message; committed: "" */
} evs_command_result;

/* ------------------------------------------------------------------ */
/* The executor                                                        */
/* ------------------------------------------------------------------ */

typedef struct evs_executor evs_executor;

/* What a read hook is told before each read of an attempt. */
typedef struct evs_read_trace {
    const char *command;  /* the command's name ("(unnamed)" when none) */
    unsigned attempt;     /* 1-based */
    unsigned round;       /* 0: the declared streams; 1, 2, ...: the
                             streams discovered after round - 1 */
    const evs_stream_read *streams; /* stream form: what evs_read_streams
                             is asked for (from_version > 0 when the rest
                             of the stream came from the state cache) */
    size_t nstreams;
    const evs_query *query; /* DCB form: the query; else NULL */
} evs_read_trace;

/* Called on the executing thread before each read; must not call the
 * executor. For tests (count reads per stream and attempt) and tracing. */
typedef void (*evs_read_hook)(void *ctx, const evs_read_trace *t);

#define EVS_EXECUTOR_OPTIONS_VERSION 1
typedef struct evs_executor_options {
    unsigned version;        /* EVS_EXECUTOR_OPTIONS_VERSION */
    evs_retry_policy retry;  /* default for commands without their own */
    /*
     * Entries of the state cache; 0 (default): no cache. With a cache, the
     * state of each stream read with a fold (or its version alone, without
     * a fold) is kept, keyed by (tenant, stream, fold) with the version
     * folded; the next attempt or command that reads the stream copies it
     * and reads only the events after that version, in the same one
     * evs_read_streams call (absent streams are not cached). The version
     * a command writes with is always the version of the state it folded,
     * so a cached state is never stale: at worst it is older and the read
     * catches it up. Least recently used entries are evicted. Requires
     * folds whose apply depends only on the state and the event, and
     * copy/release for states that own memory.
     */
    size_t cache_entries;
    evs_read_hook read_hook; /* NULL: none */
    void *read_hook_ctx;
} evs_executor_options;
#define EVS_EXECUTOR_OPTIONS_INIT                                            \
    { EVS_EXECUTOR_OPTIONS_VERSION, EVS_RETRY_POLICY_INIT, 0, NULL, NULL }

/*
 * Create an executor for db (opts NULL: defaults). db must outlive it:
 * free the executor before evs_close. Returns 0, EVS_EINVAL (NULL out or
 * db, wrong options version, max_attempts 0, max_delay_us <
 * base_delay_us), EVS_ENOMEM. On error *out is NULL.
 */
EVS_EXTERN int evs_executor_new(evs_executor **out, evs_db *db,
                                const evs_executor_options *opts);

/* Free the executor and its cache (releasing every cached state). No
 * command may be running on it. NULL-safe. */
EVS_EXTERN void evs_executor_free(evs_executor *ex);

/*
 * Execute a command: per attempt, read every declared READ stream in one
 * evs_read_streams call (one snapshot), fold, discover (one more read per
 * round, of the new streams only), call handle once, and append the
 * decision atomically with evs_append_ex: each written READ stream expects
 * the version read, each APPEND stream EVS_ANY, each READ stream not
 * written is guarded by an append condition; the DCB form appends its
 * events (no stream) on the condition that nothing matching its query came
 * after the read's marker. On EVS_ECONFLICT, back off and start over, up
 * to the retry policy's max_attempts. A stream is never read twice in one
 * attempt.
 *
 * out (required) receives the outcome. Returns:
 *   0               committed (out->outcome EVS_CMD_COMMITTED, positions
 *                   and attempts) or rejected by the handler
 *                   (EVS_CMD_REJECTED, reason and code): check outcome;
 *   EVS_ECONFLICT   every attempt conflicted (EVS_CMD_CONFLICT; reason is
 *                   the last conflict's detail);
 *   EVS_EINVAL      bad command (NULL out/ex/cmd/handle, wrong version,
 *                   neither or both forms, no or too many streams, a bad or
 *                   empty stream name, a stream declared twice with another
 *                   access or fold, APPEND with a fold, a fold without apply
 *                   or with state_size 0, discover in the DCB form, a retry
 *                   policy with max_attempts 0 or max_delay_us <
 *                   base_delay_us), a handler that emitted to an undeclared
 *                   stream, decided nothing, or both emitted and rejected,
 *                   discovery still adding streams after EVS_CMD_MAX_READS
 *                   reads, and every EVS_EINVAL of the store's calls (e.g.
 *                   an event with invalid JSON);
 *   EVS_ECORRUPT    a stream read returned versions out of sequence;
 *   any code returned by apply, copy, discover or handle, or by the
 *   store (EVS_ENOMEM, EVS_EBACKEND, EVS_EIO, EVS_ECLOSED, ...; after
 *   EVS_EIO/EVS_ENOSPC the append's outcome is unknown, as for evs_append).
 * Every error writes nothing (except the unknown outcome just named) and
 * sets out->outcome EVS_CMD_ERROR, out->error and evs_last_error().
 */
EVS_EXTERN int evs_command_execute(evs_command_result *out, evs_executor *ex,
                                   const evs_command *cmd);

/* Counters since the executor was created (each read on its own; they
 * add up once no command is running). */
typedef struct evs_executor_stats {
    uint64_t commands;       /* evs_command_execute calls that ran */
    uint64_t committed, rejected, conflicts, errors; /* their outcomes */
    uint64_t attempts;       /* attempts started */
    uint64_t handler_calls;  /* handle callbacks */
    uint64_t conflicted_attempts; /* appends that returned EVS_ECONFLICT */
    uint64_t reads;          /* evs_read_streams / evs_read_query calls */
    uint64_t streams_read;   /* streams passed to evs_read_streams */
    uint64_t events_folded;  /* events read (and applied, for streams
                                with a fold) */
    uint64_t cache_hits;     /* READ streams whose state came from the
                                cache */
    uint64_t cache_misses;   /* READ streams read from version 0 with a
                                cache configured (absent streams, such as
                                a new order's, are never cached) */
    uint64_t cache_evictions;
    uint64_t cache_entries;  /* entries held now */
    uint64_t backoff_us;     /* microseconds slept between attempts */
} evs_executor_stats;

/* Returns 0 or EVS_EINVAL (NULL argument). */
EVS_EXTERN int evs_executor_stats_get(evs_executor_stats *out,
                                      const evs_executor *ex);

#ifdef __cplusplus
}
#endif
#endif /* EVSTORE_COMMAND_H */
