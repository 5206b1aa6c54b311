/*
 * main.c -- `evs [--db URI] COMMAND ...`: global options, then hand the
 * rest of the command line to cmd_<name>() (one file per command).
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

typedef int (*cmd_fn)(cli_ctx *, int, char **);

static const struct command {
    const char *name;
    cmd_fn fn;
    const char *summary;
} commands[] = {
    {"init", cmd_init, "create the store (a directory, or the schema on PostgreSQL)"},
    {"append", cmd_append, "append one event (to a stream, or of none)"},
    {"read", cmd_read, "print the events of a stream (--follow: live)"},
    {"all", cmd_all, "print the events of $all, in global order (--follow)"},
    {"query", cmd_query, "print the events matching a DCB query"},
    {"event", cmd_event, "print one event by its id (any tenant)"},
    {"streams", cmd_streams, "list the streams with their event counts"},
    {"tenants", cmd_tenants, "list the tenants with their event counts"},
    {"head", cmd_head, "print the head position"},
    {"tail", cmd_tail, "print the tail token (before the oldest event)"},
    {"token-at", cmd_token_at, "print the tracking token at a time"},
    {"subscribe", cmd_subscribe,
     "print events by filter or consumer group, live, with a checkpoint"},
    {"checkpoint", cmd_checkpoint, "get or set a named consumer's token"},
    {"snapshot", cmd_snapshot, "save or load a stream's snapshot"},
    {"import", cmd_import, "append events from JSON Lines"},
    {"export", cmd_export, "write every event of every tenant as JSON Lines"},
    {"forget", cmd_forget, "destroy a data subject's key (its events read redacted)"},
    {"stats", cmd_stats, "print counts and sizes of the store"},
    {"verify", cmd_verify, "check the log and the index for damage"},
    {"stream", cmd_stream, "a stream's metadata, soft delete, tombstone"},
    {"scavenge", cmd_scavenge, "reclaim the space of deleted and expired events"},
    {"backup", cmd_backup, "copy the store while in use (incremental into a backup)"},
    {"restore", cmd_restore, "make a new store from a backup"},
    {"generate", cmd_generate, "fill a store with realistic test data"},
    {"bench", cmd_bench, "measure: data, scenarios, report (bench-results/)"},
    {"serve", cmd_serve, "serve the store over gRPC (UmaDB's DCB API) and HTTP"},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
    size_t i;

    fputs("usage: evs [--db URI] COMMAND [ARGS...]\n"
          "\n"
          "The store is URI (a directory), else $EVS_DB, else ./evstore-data.\n"
          "\n"
          "Commands:\n",
          f);
    for (i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fputs("\n"
          "Options:\n"
          "  --db URI      the store (also accepted after the command)\n"
          "  --wait SECONDS  how long a command that writes waits for another\n"
          "                process writing the store (default 5, also EVS_WAIT;\n"
          "                0: fail at once)\n"
          "  --segment-size BYTES    log segment size of a new store (1M..1G,\n"
          "                default 64M; also EVS_SEGMENT_SIZE)\n"
          "  --max-event-size BYTES  limit on an event's data + metadata\n"
          "                (default 1M; also EVS_MAX_EVENT_SIZE)\n"
          "  --snapshot-keep N       snapshots kept per stream (1..1000,\n"
          "                default 3; also EVS_SNAPSHOT_KEEP)\n"
          "                (sizes take K, M, G; docs/OPERATIONS.md)\n"
          "  -h, --help    this help; 'evs COMMAND --help' for a command's\n"
          "  --version     print the version\n"
          "\n"
          "Exit status: 0 ok, 1 error, 2 usage error, 3 conflict (expected\n"
          "version or append condition), 4 store busy (another process\n"
          "still writes it after --wait).\n",
          f);
}

/* --wait / EVS_WAIT: SECONDS, a decimal number from 0 (fractions allowed,
 * "0.5"), into milliseconds. Returns 0, or -1 when s is not such a
 * number or is beyond what busy_timeout_ms holds (about 49 days). */
static int parse_wait(const char *s, uint32_t *ms)
{
    double secs = 0, scale = 0.1;
    int digits = 0;
    const char *p = s;

    for (; *p >= '0' && *p <= '9'; p++, digits++)
        secs = secs * 10 + (*p - '0');
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++, digits++, scale /= 10)
            secs += (*p - '0') * scale;
    if (digits == 0 || *p != '\0' || secs * 1000 > 4294967295.0)
        return -1;
    *ms = (uint32_t)(secs * 1000 + 0.5);
    return 0;
}

static const struct command *find(const char *name)
{
    size_t i;

    for (i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

int main(int argc, char **argv)
{
    const struct command *cmd;
    cli_ctx cx;
    int store_given[CLI_NSTORE_OPTIONS] = {0}, k;
    const char *env = getenv("EVS_DB");
    int i, wait_given = 0;

    cx.db_uri = env != NULL && env[0] != '\0' ? env : "./evstore-data";
    cx.db_given = 0;
    cli_err_args(argc, argv);

    /* Global options stop at the first word that is not one: the
     * command. A hand parser, because getopt would permute the command's
     * own options into ours. */
    for (i = 1; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];

        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return CLI_EXIT_OK;
        } else if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
            printf("evs %s (libevstore %s)\n", EVS_VERSION_STRING,
                   evs_version());
            return CLI_EXIT_OK;
        } else if (strcmp(a, "--db") == 0) {
            if (i + 1 >= argc) {
                cli_err("option '--db' needs a value (see 'evs --help')");
                return CLI_EXIT_USAGE;
            }
            cx.db_uri = argv[++i];
            cx.db_given = 1;
        } else if (strncmp(a, "--db=", 5) == 0) {
            cx.db_uri = a + 5;
            cx.db_given = 1;
        } else if (strcmp(a, "--wait") == 0 || strncmp(a, "--wait=", 7) == 0) {
            const char *v = a[6] == '=' ? a + 7 : i + 1 < argc ? argv[++i] : NULL;
            if (v == NULL) {
                cli_err("option '--wait' needs a value (see 'evs --help')");
                return CLI_EXIT_USAGE;
            }
            if (parse_wait(v, &cli_wait_ms) != 0) {
                cli_err("--wait: '%s' is not a number of seconds (0 or more, e.g. 5 "
                        "or 0.5) (see 'evs --help')", v);
                return CLI_EXIT_USAGE;
            }
            wait_given = 1;
        } else if ((k = cli_store_option_index(a)) >= 0) {
            /* --segment-size, --max-event-size, --snapshot-keep */
            const char *eq = strchr(a, '=');
            const char *v = eq != NULL ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
            if (v == NULL) {
                cli_err("option '%s' needs a value (see 'evs --help')", a);
                return CLI_EXIT_USAGE;
            }
            if (cli_store_option(a, v) != 0)
                return CLI_EXIT_USAGE;
            store_given[k] = 1;
        } else {
            cli_err("unknown option '%s' (see 'evs --help')", a);
            return CLI_EXIT_USAGE;
        }
    }
    env = getenv("EVS_WAIT");
    if (!wait_given && env != NULL && env[0] != '\0' &&
        parse_wait(env, &cli_wait_ms) != 0) {
        cli_err("EVS_WAIT: '%s' is not a number of seconds (0 or more, e.g. 5 or "
                "0.5) (see 'evs --help')", env);
        return CLI_EXIT_USAGE;
    }
    if (cli_store_options_from_env(store_given) != 0)
        return CLI_EXIT_USAGE;
    if (i >= argc) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[i], "help") == 0) {
        /* `evs help CMD` is `evs CMD --help`. */
        static char help_flag[] = "--help";
        char *hargv[3];

        if (i + 1 >= argc) {
            usage(stdout);
            return CLI_EXIT_OK;
        }
        cmd = find(argv[i + 1]);
        if (cmd == NULL) {
            cli_err("unknown command '%s' (see 'evs --help')", argv[i + 1]);
            return CLI_EXIT_USAGE;
        }
        hargv[0] = argv[i + 1];
        hargv[1] = help_flag;
        hargv[2] = NULL;
        return cmd->fn(&cx, 2, hargv);
    }
    cmd = find(argv[i]);
    if (cmd == NULL) {
        cli_err("unknown command '%s' (see 'evs --help')", argv[i]);
        return CLI_EXIT_USAGE;
    }
    cli_getopt_start();
    return cmd->fn(&cx, argc - i, argv + i);
}
