/*
 * cmd_snapshot.c -- `evs snapshot save|load STREAM`: a stream's
 * aggregate state at a version, kept beside the stream (a cache: the
 * newest few per stream, see evs_snapshot_save).
 */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

static const char help[] =
    "usage: evs snapshot save STREAM VERSION --schema NAME\n"
    "                         [--data TEXT | --file PATH|-] [--tenant NAME]\n"
    "       evs snapshot load STREAM [--version V] [--raw] [--tenant NAME]\n"
    "\n"
    "save  store the state of STREAM's aggregate as of stream version\n"
    "      VERSION (0..the stream's last version) under the schema (type)\n"
    "      NAME. The state is the bytes of --data, of the file --file, or of\n"
    "      standard input, stored as they are (any bytes, at most 64 MiB).\n"
    "      Saving a version again replaces it; only the newest few per\n"
    "      stream are kept. Prints\n"
    "        {\"stream\":...,\"version\":...,\"schema\":...,\"bytes\":...}\n"
    "      Opens the store for writing: waits up to --wait (evs --help) for\n"
    "      another process that writes to it, then fails with exit 4.\n"
    "load  print the newest snapshot of STREAM (with --version V: the newest\n"
    "      at or below version V) as one line\n"
    "        {\"stream\":...,\"version\":...,\"schema\":...,\"saved_at\":...,\"data\":...}\n"
    "      with the state as a JSON value when it is valid JSON, else as\n"
    "      \"data_base64\":\"...\"; exit 1 when there is none.\n"
    "\n"
    "Options:\n"
    "  --schema NAME   save: the schema (type) name of the state, required\n"
    "  --data TEXT     save: the state is TEXT\n"
    "  --file PATH     save: the state is the file's bytes ('-': standard\n"
    "                  input, also the default)\n"
    "  --version V     load: the newest snapshot at or below version V\n"
    "  --raw           load: write the state's bytes alone, as stored\n"
    "  --tenant NAME   tenant (default: the default tenant)\n"
    CLI_HELP_SHARED
    "\n"
    "Exit status: 0 ok, 1 error (also: load finds no snapshot), 2 usage\n"
    "error (also: save of a version beyond the stream), 4 store busy (save:\n"
    "another process still writes it after --wait).\n";

enum { OPT_SCHEMA = 0x100, OPT_DATA, OPT_FILE, OPT_VERSION, OPT_RAW,
       OPT_TENANT };

static const struct option options[] = {
    {"schema", required_argument, NULL, OPT_SCHEMA},
    {"data", required_argument, NULL, OPT_DATA},
    {"file", required_argument, NULL, OPT_FILE},
    {"version", required_argument, NULL, OPT_VERSION},
    {"raw", no_argument, NULL, OPT_RAW},
    {"tenant", required_argument, NULL, OPT_TENANT},
    CLI_OPTIONS_END,
};

static const cli_cmd cmd = {"snapshot", help, options};

typedef struct snap_args {
    const char *tenant, *schema, *data, *file, *version;
    int raw;
} snap_args;

/* A stream version argument: 0..INT64_MAX. */
static int parse_version(int64_t *out, const char *what, const char *s)
{
    uint64_t v;

    if (cli_parse_u64(s, &v) < 0 || v > INT64_MAX)
        return cli_usage("snapshot", "%s: '%s' is not a stream version (a "
                         "number >= 0)", what, s);
    *out = (int64_t)v;
    return 0;
}

/* The state to save, from --data, --file or standard input. */
static int read_state(cli_buf *b, const snap_args *a)
{
    FILE *f = stdin;
    const char *name = "standard input";
    int failed;

    if (a->data != NULL) {
        cli_buf_puts(b, a->data);
        return 0;
    }
    if (a->file != NULL && strcmp(a->file, "-") != 0) {
        name = a->file;
        if ((f = fopen(a->file, "rb")) == NULL) {
            cli_err("snapshot: cannot open %s: %s", a->file, strerror(errno));
            return CLI_EXIT_FAIL;
        }
    } else if (a->file == NULL && isatty(STDIN_FILENO)) {
        return cli_usage("snapshot", "save: give the state with --data TEXT "
                         "or --file PATH, or on standard input");
    }
    failed = cli_buf_read_all(b, f) < 0;
    if (failed)
        cli_err("snapshot: cannot read %s: %s", name, strerror(errno));
    if (f != stdin)
        fclose(f);
    return failed ? CLI_EXIT_FAIL : 0;
}

static int save(const cli_ctx *cx, const snap_args *a, const char *stream,
                const char *version_arg)
{
    cli_buf state = {0}, line = {0};
    int64_t version = 0;
    int rc, status;
    evs_db *db = NULL;

    if ((status = parse_version(&version, "VERSION", version_arg)) != 0)
        return status;
    if (a->schema == NULL)
        return cli_usage("snapshot", "save: missing --schema NAME");
    if (a->data != NULL && a->file != NULL)
        return cli_usage("snapshot", "save: --data and --file exclude each "
                         "other");
    if (a->version != NULL || a->raw)
        return cli_usage("snapshot", "save: %s is for 'snapshot load'",
                         a->raw ? "--raw" : "--version");
    if ((status = read_state(&state, a)) != 0)
        goto out;
    if ((status = cli_open(&db, cx, 0)) != 0)
        goto out;
    rc = evs_snapshot_save(db, a->tenant, stream, version, a->schema,
                           state.p, state.len);
    if (rc < 0) {
        status = cli_lib_err(rc, "snapshot");
    } else {
        cli_buf_puts(&line, "{\"stream\":");
        cli_json_put_str(&line, stream, strlen(stream));
        cli_buf_printf(&line, ",\"version\":%" PRId64 ",\"schema\":", version);
        cli_json_put_str(&line, a->schema, strlen(a->schema));
        cli_buf_printf(&line, ",\"bytes\":%zu}\n", state.len);
        fputs(line.p, stdout);
    }
    status = cli_close(db, status);
out:
    cli_buf_free(&state);
    cli_buf_free(&line);
    return status;
}

/* The one-line JSON form of a loaded snapshot. */
static void snapshot_json(cli_buf *b, const char *tenant, const char *stream,
                          const evs_snapshot *s)
{
    char when[CLI_TIME_LEN], err[8];
    const char *data = s->data != NULL ? s->data : "";
    size_t vs, ve;

    cli_buf_putc(b, '{');
    if (tenant != NULL && tenant[0] != '\0') {
        cli_buf_puts(b, "\"tenant\":");
        cli_json_put_str(b, tenant, strlen(tenant));
        cli_buf_putc(b, ',');
    }
    cli_buf_puts(b, "\"stream\":");
    cli_json_put_str(b, stream, strlen(stream));
    cli_buf_printf(b, ",\"version\":%" PRId64 ",\"schema\":", s->version);
    cli_json_put_str(b, s->schema, strlen(s->schema));
    cli_time_format(when, s->saved_at);
    cli_buf_printf(b, ",\"saved_at\":\"%s\"", when);
    /* As event lines print data: the JSON value itself when the bytes
     * are JSON, else base64, so every byte survives and the line stays
     * JSON. */
    if (cli_json_check(data, s->data_len, &vs, &ve, err, sizeof err) == 0) {
        cli_buf_puts(b, ",\"data\":");
        cli_json_put_value(b, data + vs, ve - vs);
    } else {
        cli_buf_puts(b, ",\"data_base64\":\"");
        cli_base64_put(b, data, s->data_len);
        cli_buf_putc(b, '"');
    }
    cli_buf_puts(b, "}\n");
}

static int load(const cli_ctx *cx, const snap_args *a, const char *stream)
{
    cli_buf line = {0};
    int64_t max_version = EVS_END;
    evs_snapshot *s = NULL;
    int rc, status;
    evs_db *db = NULL;

    if (a->version != NULL &&
        (status = parse_version(&max_version, "--version", a->version)) != 0)
        return status;
    if (a->schema != NULL || a->data != NULL || a->file != NULL)
        return cli_usage("snapshot", "load: %s is for 'snapshot save'",
                         a->schema != NULL ? "--schema"
                         : a->data != NULL ? "--data" : "--file");
    if ((status = cli_open(&db, cx, EVS_OPEN_READONLY)) != 0)
        return status;
    rc = evs_snapshot_load(&s, db, a->tenant, stream, max_version);
    if (rc < 0) {
        status = cli_lib_err(rc, "snapshot");
    } else {
        if (a->raw)
            fwrite(s->data != NULL ? s->data : "", 1, s->data_len, stdout);
        else {
            snapshot_json(&line, a->tenant, stream, s);
            fwrite(line.p, 1, line.len, stdout);
        }
        if (fflush(stdout) != 0 || ferror(stdout)) {
            cli_err("snapshot: cannot write the output: %s", strerror(errno));
            status = CLI_EXIT_FAIL;
        }
    }
    evs_snapshot_free(s);
    cli_buf_free(&line);
    return cli_close(db, status);
}

int cmd_snapshot(cli_ctx *cx, int argc, char **argv)
{
    snap_args a;
    const char *verb;
    int c, status, nargs;

    memset(&a, 0, sizeof a);
    cli_getopt_start();
    while ((c = cli_next_opt(&status, cx, NULL, &cmd, argc, argv)) != -1) {
        switch (c) {
        case OPT_SCHEMA:
            a.schema = optarg;
            break;
        case OPT_DATA:
            a.data = optarg;
            break;
        case OPT_FILE:
            a.file = optarg;
            break;
        case OPT_VERSION:
            a.version = optarg;
            break;
        case OPT_RAW:
            a.raw = 1;
            break;
        case OPT_TENANT:
            a.tenant = optarg;
            break;
        }
    }
    if (status >= 0)
        return status;
    if (argc - optind < 1)
        return cli_usage("snapshot", "missing 'save' or 'load'");
    verb = argv[optind];
    if (strcmp(verb, "save") == 0)
        nargs = 3;
    else if (strcmp(verb, "load") == 0)
        nargs = 2;
    else
        return cli_usage("snapshot", "unknown action '%s' (save or load)",
                         verb);
    if (argc - optind < 2)
        return cli_usage("snapshot", "%s: missing STREAM", verb);
    if (nargs == 3 && argc - optind < 3)
        return cli_usage("snapshot", "save: missing VERSION");
    if (argc - optind > nargs)
        return cli_usage("snapshot", "too many arguments ('%s')",
                         argv[optind + nargs]);
    if (nargs == 3)
        return save(cx, &a, argv[optind + 1], argv[optind + 2]);
    return load(cx, &a, argv[optind + 1]);
}
