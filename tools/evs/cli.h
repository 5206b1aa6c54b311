/*
 * cli.h -- what the `evs` subcommands share: exit statuses, error
 * reporting, option parsing, a growable buffer, a small arena, JSON
 * reading and writing, DCB queries from flags or JSON, base64, RFC 3339
 * time, the one-line JSON form of an event, and following (tracking reads
 * printed until a signal).
 *
 * Every subcommand is `int cmd_<name>(cli_ctx *cx, int argc, char **argv)`
 * with argv[0] the command name; it returns the process exit status.
 */
#ifndef EVS_CLI_H
#define EVS_CLI_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "evstore.h"

/* ------------------------------------------------------------------ */
/* Exit statuses (docs/CLI.md "Exit status")                           */
/* ------------------------------------------------------------------ */

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1     /* anything else: I/O, corruption... */
#define CLI_EXIT_USAGE 2    /* bad flag, argument, number, name or JSON */
#define CLI_EXIT_CONFLICT 3 /* expected version or append condition */
#define CLI_EXIT_BUSY 4     /* EVS_EBUSY: another process writes the store */

typedef struct cli_ctx {
    const char *db_uri; /* --db, else $EVS_DB, else "./evstore-data" */
    int db_given;       /* 1: --db before the command (`evs bench` uses a
                           store only when told on its command line) */
} cli_ctx;

int cmd_init(cli_ctx *cx, int argc, char **argv);
int cmd_append(cli_ctx *cx, int argc, char **argv);
int cmd_read(cli_ctx *cx, int argc, char **argv);
int cmd_all(cli_ctx *cx, int argc, char **argv);
int cmd_import(cli_ctx *cx, int argc, char **argv);
int cmd_export(cli_ctx *cx, int argc, char **argv);
int cmd_forget(cli_ctx *cx, int argc, char **argv);
int cmd_stats(cli_ctx *cx, int argc, char **argv);
int cmd_verify(cli_ctx *cx, int argc, char **argv);
int cmd_stream(cli_ctx *cx, int argc, char **argv);
int cmd_scavenge(cli_ctx *cx, int argc, char **argv);
int cmd_backup(cli_ctx *cx, int argc, char **argv);
int cmd_restore(cli_ctx *cx, int argc, char **argv);
int cmd_head(cli_ctx *cx, int argc, char **argv);
int cmd_query(cli_ctx *cx, int argc, char **argv);
int cmd_event(cli_ctx *cx, int argc, char **argv);
int cmd_streams(cli_ctx *cx, int argc, char **argv);
int cmd_tenants(cli_ctx *cx, int argc, char **argv);

/* When the default tenant has no events but other tenants do, say so on
 * standard error ("evs: WHAT: the default tenant has no events; tenants
 * with events: t1 (812), ...; use --tenant NAME or --all-tenants"), so
 * that a read of a store made by `evs generate` does not silently print
 * nothing. Prints nothing otherwise, or when the look fails (a hint, not
 * the command's result). Standard output is untouched (cmd_tenants.c). */
void cli_hint_tenants(evs_db *db, const char *what);
int cmd_tail(cli_ctx *cx, int argc, char **argv);
int cmd_token_at(cli_ctx *cx, int argc, char **argv);
int cmd_subscribe(cli_ctx *cx, int argc, char **argv);
int cmd_checkpoint(cli_ctx *cx, int argc, char **argv);
int cmd_snapshot(cli_ctx *cx, int argc, char **argv);
int cmd_generate(cli_ctx *cx, int argc, char **argv);
int cmd_bench(cli_ctx *cx, int argc, char **argv);
int cmd_serve(cli_ctx *cx, int argc, char **argv);

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

#if defined(__GNUC__)
#define CLI_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CLI_PRINTF(a, b)
#endif

/* "evs: <message>\n" on stderr. */
void cli_err(const char *fmt, ...) CLI_PRINTF(1, 2);

/* "evs: CMD: <message> (see 'evs CMD --help')" on stderr; returns
 * CLI_EXIT_USAGE. */
int cli_usage(const char *cmd, const char *fmt, ...) CLI_PRINTF(2, 3);

/* The exit status for a library error code: EVS_EINVAL -> 2,
 * EVS_ECONFLICT -> 3, EVS_EBUSY -> 4, anything else -> 1. */
int cli_exit_for(int rc);

/* Report a failed library call as "evs: [WHAT: ]<detail>" (the detail is
 * evs_last_error(), or evs_strerror(rc) when that is empty) and return
 * cli_exit_for(rc). what may be NULL. */
int cli_lib_err(int rc, const char *what);

/* The detail text of a failed library call: evs_last_error(), or
 * evs_strerror(rc) when that is empty. */
const char *cli_lib_detail(int rc);

/* 0, or -- when the store path is empty -- a message and CLI_EXIT_USAGE.
 * cli_open checks this first; a command opening the store itself calls
 * it. */
int cli_check_db(const cli_ctx *cx);

/* Open the store for a command. flags: EVS_OPEN_CREATE for writers,
 * EVS_OPEN_READONLY for readers. On failure prints the reason and returns
 * the exit status (> 0); returns 0 with *out set on success. */
/* Set o's recovery callbacks: what recovery did, one line each on stderr
 * ("evs: ..."), and rebuild progress on a terminal. progress_shown lives
 * as long as the open. */
void cli_open_options(evs_open_options *o, int *progress_shown);

/* How long a read-write open waits for another process's writer lock
 * (evs_open_options.busy_timeout_ms, which cli_open_options sets): the
 * global option --wait SECONDS, else $EVS_WAIT, else CLI_WAIT_DEFAULT_MS. */
#define CLI_WAIT_DEFAULT_MS 5000u
extern uint32_t cli_wait_ms;
int cli_open(evs_db **out, const cli_ctx *cx, unsigned flags);

/* Close, reporting a failed final flush. Returns the exit status to use
 * given the status the command had so far. */
int cli_close(evs_db *db, int status);

/* Store options from the global flags --segment-size, --max-event-size,
 * --snapshot-keep and their variables EVS_SEGMENT_SIZE, EVS_MAX_EVENT_SIZE,
 * EVS_SNAPSHOT_KEEP (docs/OPERATIONS.md), in that order; cli_open_options
 * passes what was set to every open. */
#define CLI_NSTORE_OPTIONS 3

/* Set the store option named by its flag (the text up to a '=') or its
 * variable from text (sizes take K, M, G). Returns 0, or reports a
 * message naming the limits and returns CLI_EXIT_USAGE. */
int cli_store_option(const char *name, const char *text);

/* The index (0..CLI_NSTORE_OPTIONS-1) of a store option's flag
 * ("--segment-size" or "--segment-size=V"), or -1 when it is not one. */
int cli_store_option_index(const char *flag);

/* Set each store option whose flag was not given (given[i] == 0) from its
 * variable, when that is set and not empty. Returns 0 or CLI_EXIT_USAGE. */
int cli_store_options_from_env(const int given[CLI_NSTORE_OPTIONS]);

/* Remember the command line, so that error messages quote a long argument
 * (over 80 bytes) cut, not whole. */
void cli_err_args(int argc, char **argv);

/* ------------------------------------------------------------------ */
/* Option parsing (getopt_long with our own one-line messages)         */
/* ------------------------------------------------------------------ */

/*
 * Every command describes itself with a cli_cmd and parses its options
 * with cli_next_opt, which handles the options they all share:
 *
 *     -h, --help      print the command's help on stdout, exit 0
 *     --db URI        the store (cx->db_uri)
 *
 * and, for the commands whose table holds CLI_SCOPE_OPTIONS (reads across
 * streams), --tenant NAME and --all-tenants into a cli_scope. A command's
 * own option values start at 0x100; a table ends with CLI_OPTIONS_END.
 */
enum { CLI_OPT_DB = 0x7f00, CLI_OPT_TENANT, CLI_OPT_ALL_TENANTS };

#define CLI_SCOPE_OPTIONS                                   \
    {"tenant", required_argument, NULL, CLI_OPT_TENANT},    \
    {"all-tenants", no_argument, NULL, CLI_OPT_ALL_TENANTS}

#define CLI_OPTIONS_END                             \
    {"db", required_argument, NULL, CLI_OPT_DB},    \
    {"help", no_argument, NULL, 'h'},               \
    {NULL, 0, NULL, 0}

typedef struct cli_cmd {
    const char *name;              /* "all": the name in messages */
    const char *help;              /* printed by -h, --help */
    const struct option *options;  /* ends with CLI_OPTIONS_END */
} cli_cmd;

/* The option table of a command with no options of its own. */
extern const struct option cli_no_options[];

/* The last lines of most commands' help: the shared options. */
#define CLI_HELP_SHARED                        \
    "  --db URI        the store\n"            \
    "  -h, --help      this help\n"

/* The last lines of the help of a command whose exit statuses are the
 * usual ones (docs/CLI.md "Exit status"): one that only reads, one that
 * opens the store for writing (and so may find it busy). */
#define CLI_HELP_EXIT                                                     \
    "\n"                                                                  \
    "Exit status: 0 ok, 1 error, 2 usage error.\n"
#define CLI_HELP_EXIT_WRITER                                              \
    "\n"                                                                  \
    "Exit status: 0 ok, 1 error, 2 usage error, 4 store busy (another\n"  \
    "process still writes it after --wait).\n"

/* What --tenant and --all-tenants chose. */
typedef struct cli_scope {
    const char *tenant; /* --tenant NAME, else "" (the default tenant) */
    int have_tenant;
    int all_tenants;
} cli_scope;

#define CLI_SCOPE_INIT {"", 0, 0}

/* Start parsing argv (argv[0] is the command name). */
void cli_getopt_start(void);

/* The next of the command's own options (getopt_long, permuting: options
 * may follow positionals; optarg holds its value), the shared ones handled
 * here. Returns -1 when parsing is over; *stop is then the exit status to
 * return at once (CLI_EXIT_OK after --help, CLI_EXIT_USAGE after a usage
 * error, already reported), or -1 to go on with the positionals
 * argv[optind..argc-1]. scope may be NULL when the table has no
 * CLI_SCOPE_OPTIONS. */
int cli_next_opt(int *stop, cli_ctx *cx, cli_scope *scope,
                 const cli_cmd *cmd, int argc, char **argv);

/* cli_next_opt for a command with no options of its own: returns *stop. */
int cli_parse_opts(cli_ctx *cx, cli_scope *scope, const cli_cmd *cmd,
                   int argc, char **argv);

/* After the options: 0 when no positional is left, else a usage error
 * "unexpected argument" and CLI_EXIT_USAGE. */
int cli_no_args(const char *cmd, int argc, char **argv);

/* After the options: the optional [FILE|-] positional. *path gets FILE,
 * or NULL for none or "-" (the standard stream). Returns 0, or reports
 * "too many arguments" and returns CLI_EXIT_USAGE. */
int cli_file_arg(const char **path, const char *cmd, int argc, char **argv);

/* 0, or -- when both --tenant and --all-tenants were given -- a usage
 * error and CLI_EXIT_USAGE. */
int cli_scope_check(const cli_scope *scope, const char *cmd);

/* The tenant argument of evs_read_all or evs_head_position for scope:
 * NULL (every tenant) with --all-tenants, else the tenant. */
const char *cli_scope_tenant(const cli_scope *scope);

/* Strict numbers: the whole text, decimal, no sign for unsigned, in
 * range. Return 0, or -1 when the text is not such a number. */
int cli_parse_u64(const char *s, uint64_t *out);
int cli_parse_i64(const char *s, int64_t *out);

/* A global position flag: 0 with *out set, or a usage error "CMD: FLAG:
 * 'S' is not a position (a number >= 0)" and CLI_EXIT_USAGE. */
int cli_parse_position(uint64_t *out, const char *cmd, const char *flag,
                       const char *s);

/* ------------------------------------------------------------------ */
/* Growable buffer                                                     */
/* ------------------------------------------------------------------ */

typedef struct cli_buf {
    char *p;
    size_t len;
    size_t cap;
} cli_buf;

/* Make room for n more bytes (aborts on out of memory: a CLI has nothing
 * better to do). */
void cli_buf_reserve(cli_buf *b, size_t n);
void cli_buf_put(cli_buf *b, const void *p, size_t n);
void cli_buf_puts(cli_buf *b, const char *s);
void cli_buf_putc(cli_buf *b, char c);
void cli_buf_printf(cli_buf *b, const char *fmt, ...) CLI_PRINTF(2, 3);
void cli_buf_free(cli_buf *b);

/* Read a whole stream (stdin) into b. Returns 0 or -1 (errno set). */
int cli_buf_read_all(cli_buf *b, FILE *f);

/* malloc/realloc/strdup that abort with a message on failure. */
void *cli_xmalloc(size_t n);
void *cli_xrealloc(void *p, size_t n);

/* ------------------------------------------------------------------ */
/* Arena: many small allocations freed together                        */
/* ------------------------------------------------------------------ */

typedef struct cli_arena_block cli_arena_block;
typedef struct cli_arena {
    cli_arena_block *head;
} cli_arena;

/* n bytes aligned for any type; stable until cli_arena_reset. */
void *cli_arena_alloc(cli_arena *a, size_t n);
/* A NUL-terminated copy of n bytes of p. */
char *cli_arena_strndup(cli_arena *a, const char *p, size_t n);
void cli_arena_reset(cli_arena *a);

/* ------------------------------------------------------------------ */
/* JSON (RFC 8259), by simdjson, without building a tree               */
/* ------------------------------------------------------------------ */

/*
 * Why raw text and not a tree (jansson's, say): output embeds the stored
 * bytes of data and metadata as they are, and import stores the bytes of a
 * value as they appear in the line. Parsing into a tree and dumping it
 * again would rewrite numbers (1.10 -> 1.1000000000000001) and change the
 * bytes, so export -> import would not round-trip. simdjson's on-demand
 * parser hands out the raw text of each value instead, after its DOM
 * parser has checked the whole text (src/util/json.h) -- the same check
 * the library makes, so evs and the library agree on what is JSON
 * (integers beyond 64 bits are not).
 */

/* Check that p[0..n) is one JSON value with optional surrounding
 * whitespace. Returns 0 and sets [*vstart, *vend) to the value without
 * the whitespace (either pointer may be NULL), or -1 with a message such
 * as "unterminated string at column 7" in err (the place is simdjson's
 * best effort, and left out when it has none). */
int cli_json_check(const char *p, size_t n, size_t *vstart, size_t *vend,
                   char *err, size_t errlen);

/* Append the valid JSON text p[0..n) to b without whitespace outside
 * strings (so that it fits on one line). */
void cli_json_minify(cli_buf *b, const char *p, size_t n);

/* Append the JSON value p[0..n) (known valid) to b, on one line: as it
 * is when it holds no line break, else minified. */
void cli_json_put_value(cli_buf *b, const char *p, size_t n);

/* Append s[0..n) as a JSON string literal, by jansson (bytes that are not
 * valid UTF-8 become U+FFFD). */
void cli_json_put_str(cli_buf *b, const char *s, size_t n);

/* One member of a read object. */
typedef struct cli_json_member {
    const char *key; /* decoded, NUL-terminated (in the arena) */
    const char *val; /* raw text of the value, in the caller's text */
    size_t val_len;
    const char *str; /* a string value decoded, NUL-terminated (in the
                      * arena); NULL when the value is not a string or
                      * holds U+0000 */
} cli_json_member;

/* Read the object p[0..n) (whitespace around it allowed) into its
 * members, in order, allocated in the arena; val points into p. Returns
 * the count, or -1 with a message in err (not JSON, not an object, a key
 * holding U+0000). */
int cli_json_object(cli_arena *a, const char *p, size_t n,
                    cli_json_member **out, char *err, size_t errlen);

/* Read the array p[0..n) (whitespace around it allowed) into its
 * elements, in order, allocated in the arena (key NULL; val points into
 * p). Returns the count, or -1 with a message in err (not JSON, not an
 * array). */
int cli_json_array(cli_arena *a, const char *p, size_t n,
                   cli_json_member **out, char *err, size_t errlen);

/* Read the array of strings p[0..n) into a NULL-terminated array of
 * decoded strings in the arena. Returns the count, or -1 when p is not an
 * array of strings (or a string holds U+0000). */
int cli_json_strings(cli_arena *a, const char *p, size_t n,
                     const char ***out);

/* ------------------------------------------------------------------ */
/* DCB queries (cli_query.c)                                           */
/* ------------------------------------------------------------------ */

/*
 * A query comes either as the specification's JSON,
 *
 *     {"items":[{"types":["A","B"],"tags":["k:v"]}, ...]}
 *
 * (items OR'ed; in an item, any of its types AND all of its tags; "items"
 * absent, null or [] = every event), or as shorthand flags collected in
 * the order given: --type T and --tag K:V add to the current item, --or
 * starts the next one. No flag at all is the query of every event.
 * Everything built lives in the arena; names point into argv or the JSON
 * text's arena copies.
 */
typedef enum { CLI_QTERM_TYPE, CLI_QTERM_TAG, CLI_QTERM_OR } cli_qterm_kind;

typedef struct cli_qterm {
    cli_qterm_kind kind;
    const char *text; /* NULL for CLI_QTERM_OR */
} cli_qterm;

typedef struct cli_qflags {
    cli_qterm *terms;
    size_t n;
} cli_qflags;

/* Record one shorthand flag. */
void cli_qflags_add(cli_qflags *f, cli_qterm_kind kind, const char *text);
void cli_qflags_free(cli_qflags *f);

/* Build the query of the flags. Returns 0, or -1 with a message in err
 * (an --or with no --type or --tag on one side of it). */
int cli_query_from_flags(evs_query *out, cli_arena *a, const cli_qflags *f,
                         char *err, size_t errlen);

/* Parse the JSON text p[0..n) of a query. Returns 0, or -1 with a message
 * in err naming what is wrong and where (not JSON, an unknown key, an item
 * that is not an object, "types" that is not an array of strings...).
 * Names are checked by the library when the query is used. */
int cli_query_from_json(evs_query *out, cli_arena *a, const char *p,
                        size_t n, char *err, size_t errlen);

/* ------------------------------------------------------------------ */
/* Base64 (RFC 4648, with padding)                                     */
/* ------------------------------------------------------------------ */

void cli_base64_put(cli_buf *b, const void *p, size_t n);
/* Decode into the arena. Returns 0, or -1 when the text is not base64. */
int cli_base64_decode(cli_arena *a, const char *p, size_t n, void **out,
                      size_t *outlen);

/* ------------------------------------------------------------------ */
/* Time: RFC 3339 UTC with microseconds                                */
/* ------------------------------------------------------------------ */

#define CLI_TIME_LEN 64
/* "2026-11-22T02:19:18.123456Z" */
void cli_time_format(char out[CLI_TIME_LEN], int64_t us);
/* Parse RFC 3339 (any offset, 0..9 fraction digits; digits past the
 * microsecond are dropped). Returns 0 or -1. */
int cli_time_parse(int64_t *us, const char *s, size_t n);

/* ------------------------------------------------------------------ */
/* Events as JSON Lines                                                */
/* ------------------------------------------------------------------ */

/* cli_event_json flags */
enum {
    CLI_EV_TENANT = 1, /* include the "tenant" key */
    /* every byte as stored (export): JSON data or metadata that the line
     * would change (whitespace around the value, a value over several
     * lines) is written as "data_base64"/"metadata_base64" instead */
    CLI_EV_EXACT = 2,
};

/* Append the one-line JSON form of ev and a newline to b (docs/CLI.md
 * "Event lines"). flags: CLI_EV_*. */
void cli_event_json(cli_buf *b, const evs_event *ev, int flags);

/* Write every event of it to f as JSON Lines, then flush f. On a read or
 * write error prints "evs: WHAT: ..." and returns the exit status; else
 * returns 0. *count (may be NULL) receives the number of events written.
 * flags: CLI_EV_*. */
int cli_write_events(evs_iter *it, FILE *f, int flags, const char *what,
                     uint64_t *count);

/* ------------------------------------------------------------------ */
/* Progress on a terminal (export, import, verify)                     */
/* ------------------------------------------------------------------ */

/* One line on standard error, rewritten at most 4 times a second, only
 * when standard error is a terminal: "WHAT: 1200000 events of 5000000
 * (24 %), 310000 events/s, about 12 s left". */
typedef struct cli_progress {
    const char *what; /* the command */
    int on;           /* stderr is a terminal */
    int shown;        /* a line is on screen (end it with a newline) */
    struct timespec start, last;
} cli_progress;

void cli_progress_start(cli_progress *p, const char *what);
/* count: events so far (for the rate); done of total: the measure of how
 * far (events, or bytes of the input), total 0 = unknown (then no
 * percentage and no time left). */
void cli_progress_show(cli_progress *p, uint64_t count, uint64_t done, uint64_t total);
/* End the line (if one is shown), before any other message. */
void cli_progress_end(cli_progress *p);

/* ------------------------------------------------------------------ */
/* Following: tracking reads until a signal (cli_follow.c)             */
/* ------------------------------------------------------------------ */

/*
 * `all --follow`, `read --follow` and `subscribe` print what tracking
 * reads return, batch by batch (each flushed), waiting for commits when
 * there is nothing new, until SIGINT or SIGTERM (a clean stop, exit 0)
 * or a limit.
 */
typedef struct cli_follow {
    evs_db *db;
    const evs_tracking *filter;
    uint64_t token;   /* in: read after it; out: the token after every
                       * event considered (printed or filtered out) */
    uint64_t limit;   /* stop once count reaches it; 0: no limit */
    uint64_t count;   /* in/out: events printed so far */
    int64_t from_version; /* > 0: skip events of a lower stream version
                           * (read --follow --from V beyond the stream) */
    int with_tenant;  /* event lines carry "tenant" */
    const char *what; /* the command, for messages */
} cli_follow;

/* Make SIGINT and SIGTERM set the flag cli_follow_run stops on (a second
 * one then kills as usual). Call before the first read. */
void cli_follow_signals(void);

/* 1 once SIGINT or SIGTERM arrived (after cli_follow_signals). */
int cli_follow_stopping(void);

/* Read and print until a signal or f->limit. Returns 0 (stopped by
 * either), or the exit status after a read or write error, reported.
 * f->token and f->count are kept current, also on error. */
int cli_follow_run(cli_follow *f);

#endif /* EVS_CLI_H */
