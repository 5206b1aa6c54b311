/*
 * cmd_append.c -- `evs append STREAM TYPE [DATA|-]`: append one event.
 */
#include "cli.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: evs append STREAM TYPE [DATA|-] [options]\n"
    "\n"
    "Append one event to STREAM and print\n"
    "  {\"stream\":...,\"version\":...,\"position\":...}\n"
    "DATA is JSON ('{}' when absent); '-' reads it from standard input.\n"
    "\n"
    "Options:\n"
    "  --expect any|no-stream|exists|N  expected version (default any)\n"
    "  --id UUID                 event id (default: a new UUIDv7); appending\n"
    "                            the same id and event again writes nothing\n"
    "  --tag T                   a tag such as account:42 (repeatable)\n"
    "  --metadata JSON           event metadata\n"
    "  --tenant NAME             tenant (default: the default tenant)\n"
    "  --binary                  DATA is raw bytes, not JSON\n"
    "  --correlation-id UUID     correlation id\n"
    "  --causation-id UUID       causation id\n"
    "  --db URI                  the store\n"
    "  -h, --help                this help\n"
    "\n"
    "Exit status: 0 ok, 1 error, 2 usage error, 3 version conflict.\n";

enum {
    OPT_EXPECT = 0x100,
    OPT_ID,
    OPT_TAG,
    OPT_METADATA,
    OPT_TENANT,
    OPT_BINARY,
    OPT_CORRELATION,
    OPT_CAUSATION
};

static const struct option options[] = {
    {"expect", required_argument, NULL, OPT_EXPECT},
    {"id", required_argument, NULL, OPT_ID},
    {"tag", required_argument, NULL, OPT_TAG},
    {"metadata", required_argument, NULL, OPT_METADATA},
    {"tenant", required_argument, NULL, OPT_TENANT},
    {"binary", no_argument, NULL, OPT_BINARY},
    {"correlation-id", required_argument, NULL, OPT_CORRELATION},
    {"causation-id", required_argument, NULL, OPT_CAUSATION},
    CLI_OPTIONS_END,
};

static const cli_cmd cmd = {"append", help, options};

static int parse_expect(const char *s, int64_t *out)
{
    if (strcmp(s, "any") == 0)
        *out = EVS_ANY;
    else if (strcmp(s, "no-stream") == 0 || strcmp(s, "no_stream") == 0)
        *out = EVS_NO_STREAM;
    else if (strcmp(s, "exists") == 0 || strcmp(s, "stream-exists") == 0 ||
             strcmp(s, "stream_exists") == 0)
        *out = EVS_STREAM_EXISTS;
    else if (cli_parse_i64(s, out) < 0 || *out < 0)
        return -1;
    return 0;
}

static int parse_uuid(evs_uuid *out, const char *s, const char *flag)
{
    if (evs_uuid_parse(out, s) < 0)
        return cli_usage("append", "%s: '%s' is not a UUID "
                         "(xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)", flag, s);
    return 0;
}

int cmd_append(cli_ctx *cx, int argc, char **argv)
{
    evs_event_data ev;
    evs_append_result res;
    const char **tags = NULL;
    size_t ntags = 0;
    const char *metadata = NULL, *tenant = NULL, *data_arg = NULL;
    int binary = 0, c, rc, stop, status = CLI_EXIT_OK, npos;
    int64_t expect = EVS_ANY;
    cli_buf input = {0}, out = {0};
    evs_db *db = NULL;
    char err[160];

    memset(&ev, 0, sizeof ev);
    cli_getopt_start();
    while ((c = cli_next_opt(&stop, cx, NULL, &cmd, argc, argv)) != -1) {
        switch (c) {
        case OPT_EXPECT:
            if (parse_expect(optarg, &expect) < 0) {
                status = cli_usage("append", "--expect: '%s' is not any, "
                                   "no-stream, exists or a version >= 0",
                                   optarg);
                goto out;
            }
            break;
        case OPT_ID:
            if ((status = parse_uuid(&ev.id, optarg, "--id")) != 0)
                goto out;
            break;
        case OPT_CORRELATION:
            if ((status = parse_uuid(&ev.correlation_id, optarg,
                                     "--correlation-id")) != 0)
                goto out;
            break;
        case OPT_CAUSATION:
            if ((status = parse_uuid(&ev.causation_id, optarg,
                                     "--causation-id")) != 0)
                goto out;
            break;
        case OPT_TAG:
            tags = cli_xrealloc(tags, (ntags + 1) * sizeof *tags);
            tags[ntags++] = optarg;
            break;
        case OPT_METADATA:
            metadata = optarg;
            break;
        case OPT_TENANT:
            tenant = optarg;
            break;
        case OPT_BINARY:
            binary = 1;
            break;
        }
    }
    if (stop >= 0) {
        status = stop;
        goto out;
    }
    npos = argc - optind;
    if (npos < 2) {
        status = cli_usage("append", "missing %s",
                           npos == 0 ? "STREAM and TYPE" : "TYPE");
        goto out;
    }
    if (npos > 3) {
        status = cli_usage("append", "too many arguments ('%s')",
                           argv[optind + 3]);
        goto out;
    }
    if (npos == 3)
        data_arg = argv[optind + 2];

    /* The data: an argument, standard input, or {} / nothing. */
    if (data_arg != NULL && strcmp(data_arg, "-") == 0) {
        if (cli_buf_read_all(&input, stdin) < 0) {
            cli_err("append: cannot read standard input");
            status = CLI_EXIT_FAIL;
            goto out;
        }
    } else if (data_arg != NULL) {
        cli_buf_puts(&input, data_arg);
    } else if (!binary) {
        cli_buf_puts(&input, "{}");
    }
    ev.type = argv[optind + 1];
    ev.content_type = binary ? EVS_CONTENT_BINARY : EVS_CONTENT_JSON;
    ev.data = input.p;
    ev.data_len = input.len;
    if (!binary) {
        size_t vs, ve;

        if (cli_json_check(input.p ? input.p : "", input.len, &vs, &ve, err,
                           sizeof err) < 0) {
            status = cli_usage("append", "DATA is not valid JSON: %s", err);
            goto out;
        }
        /* Store the value without the whitespace around it (the newline
         * `echo` adds, say); its text is kept as given. */
        ev.data = input.p + vs;
        ev.data_len = ve - vs;
    }
    if (metadata != NULL) {
        size_t vs, ve, n = strlen(metadata);

        if (cli_json_check(metadata, n, &vs, &ve, err, sizeof err) < 0) {
            status = cli_usage("append", "--metadata is not valid JSON: %s",
                               err);
            goto out;
        }
        ev.metadata = metadata + vs;
        ev.metadata_len = ve - vs;
    }
    ev.tags = tags;
    ev.ntags = ntags;

    if ((status = cli_open(&db, cx, EVS_OPEN_CREATE)) != 0)
        goto out;
    rc = evs_append(&res, db, tenant, argv[optind], expect, &ev, 1);
    if (rc < 0) {
        status = cli_lib_err(rc, NULL);
        goto out;
    }
    cli_buf_puts(&out, "{\"stream\":");
    cli_json_put_str(&out, argv[optind], strlen(argv[optind]));
    cli_buf_printf(&out, ",\"version\":%" PRId64 ",\"position\":%" PRIu64
                   "}\n", res.stream_version, res.last_position);
    fwrite(out.p, 1, out.len, stdout);
    if (fflush(stdout) != 0) {
        cli_err("append: cannot write the result to standard output");
        status = CLI_EXIT_FAIL;
    }
out:
    if (db != NULL)
        status = cli_close(db, status);
    cli_buf_free(&input);
    cli_buf_free(&out);
    free(tags);
    return status;
}
