/*
 * cmd_stream.c -- `evs stream meta get|set STREAM`, `evs stream delete
 * STREAM`, `evs stream tombstone STREAM`: a stream's lifecycle
 * (include/evstore.h, "Stream lifecycle": evs_stream_metadata_get/set,
 * evs_stream_delete, evs_stream_tombstone).
 */
#include "cli.h"

#include <inttypes.h>
#include <string.h>

static const char help[] =
    "usage: evs stream meta get STREAM [--tenant NAME]\n"
    "       evs stream meta set STREAM [--max-count N] [--max-age SECONDS]\n"
    "                       [--truncate-before V] [--custom JSON]\n"
    "                       [--expected-meta-version V|any|no-stream]\n"
    "                       [--tenant NAME]\n"
    "       evs stream delete STREAM [--expected-version any|no-stream|exists|N]\n"
    "       evs stream tombstone STREAM [--expected-version any|no-stream|exists|N]\n"
    "\n"
    "A stream's metadata (KurrentDB's $maxCount, $maxAge, $tb and custom\n"
    "keys) decides which of its events reads return; its version numbering\n"
    "never changes, and hidden events stay stored until 'evs scavenge'.\n"
    "\n"
    "meta get   print the metadata as one JSON object: max_count, max_age_s,\n"
    "           truncate_before (0: none), custom, meta_version (null: never\n"
    "           set), stream_version (null: no events), deleted, tombstoned\n"
    "meta set   replace the whole metadata (a rule not given is removed);\n"
    "           print {\"stream\":...,\"meta_version\":N}\n"
    "delete     soft delete: the stream reads as absent; an append to it\n"
    "           continues its version numbering. Print {\"stream\":...,\n"
    "           \"position\":N} (null: nothing to delete, or deleted already)\n"
    "tombstone  hard delete: the stream can never be written or read again;\n"
    "           print {\"stream\":...,\"position\":N}, the tombstone's position\n"
    "\n"
    "Options:\n"
    "  --max-count N        read only the newest N events (0: no limit)\n"
    "  --max-age SECONDS    do not read events older than this (0: no limit)\n"
    "  --truncate-before V  do not read events of a version below V (0: none)\n"
    "  --custom JSON        a JSON object of your own keys (none starting\n"
    "                       with '$'), at most 64 KiB\n"
    "  --expected-meta-version V|any|no-stream\n"
    "                       meta set only if the metadata is at version V\n"
    "                       (no-stream: never set; default any)\n"
    "  --expected-version any|no-stream|exists|N\n"
    "                       delete, tombstone only if the stream is at this\n"
    "                       version (as 'evs append --expect'; default any)\n"
    "  --tenant NAME        tenant (default: the default tenant)\n"
    CLI_HELP_SHARED
    "\n"
    "Exit status: 0 ok, 1 error (also: the stream is tombstoned), 2 usage\n"
    "error, 3 conflict (the expected version did not match), 4 store busy\n"
    "(another process still writes it after --wait).\n";

enum {
    OPT_TENANT = 0x100,
    OPT_MAX_COUNT,
    OPT_MAX_AGE,
    OPT_TRUNCATE_BEFORE,
    OPT_CUSTOM,
    OPT_EXPECTED_META,
    OPT_EXPECTED
};

static const struct option options[] = {
    {"tenant", required_argument, NULL, OPT_TENANT},
    {"max-count", required_argument, NULL, OPT_MAX_COUNT},
    {"max-age", required_argument, NULL, OPT_MAX_AGE},
    {"truncate-before", required_argument, NULL, OPT_TRUNCATE_BEFORE},
    {"custom", required_argument, NULL, OPT_CUSTOM},
    {"expected-meta-version", required_argument, NULL, OPT_EXPECTED_META},
    {"expected-version", required_argument, NULL, OPT_EXPECTED},
    CLI_OPTIONS_END,
};

static const cli_cmd cmd = {"stream", help, options};

typedef enum { ACT_META_GET, ACT_META_SET, ACT_DELETE, ACT_TOMBSTONE } action;

/* What the command line asked for. */
typedef struct request {
    action act;
    const char *stream, *tenant, *custom;
    evs_stream_metadata meta;
    int64_t expected;
    const char *set_flag;    /* a metadata option given (for the check) */
    const char *expect_flag; /* an expected-version option given */
} request;

/* any, no-stream, exists (with_exists) or a version >= 0 */
static int parse_expected(const char *s, int with_exists, int64_t *out)
{
    if (strcmp(s, "any") == 0)
        *out = EVS_ANY;
    else if (strcmp(s, "no-stream") == 0 || strcmp(s, "no_stream") == 0)
        *out = EVS_NO_STREAM;
    else if (with_exists && (strcmp(s, "exists") == 0 || strcmp(s, "stream-exists") == 0 ||
                             strcmp(s, "stream_exists") == 0))
        *out = EVS_STREAM_EXISTS;
    else if (cli_parse_i64(s, out) < 0 || *out < 0)
        return -1;
    return 0;
}

/* A count, age or version: a number >= 0. */
static int parse_count(int64_t *out, const char *flag, const char *s)
{
    uint64_t v;

    if (cli_parse_u64(s, &v) < 0 || v > (uint64_t)INT64_MAX)
        return cli_usage("stream", "%s: '%s' is not a number >= 0 (0: no limit)", flag, s);
    *out = (int64_t)v;
    return 0;
}

static int parse_options(request *rq, cli_ctx *cx, int argc, char **argv)
{
    int c, stop, status = 0;

    cli_getopt_start();
    while ((c = cli_next_opt(&stop, cx, NULL, &cmd, argc, argv)) != -1) {
        switch (c) {
        case OPT_TENANT:
            rq->tenant = optarg;
            break;
        case OPT_MAX_COUNT:
            status = parse_count(&rq->meta.max_count, "--max-count", optarg);
            rq->set_flag = "--max-count";
            break;
        case OPT_MAX_AGE:
            status = parse_count(&rq->meta.max_age_s, "--max-age", optarg);
            rq->set_flag = "--max-age";
            break;
        case OPT_TRUNCATE_BEFORE:
            status = parse_count(&rq->meta.truncate_before, "--truncate-before", optarg);
            rq->set_flag = "--truncate-before";
            break;
        case OPT_CUSTOM:
            rq->custom = optarg;
            rq->set_flag = "--custom";
            break;
        case OPT_EXPECTED_META:
            if (parse_expected(optarg, 0, &rq->expected) < 0)
                return cli_usage("stream", "--expected-meta-version: '%s' is not any, "
                                 "no-stream or a metadata version >= 0", optarg);
            rq->expect_flag = "--expected-meta-version";
            break;
        case OPT_EXPECTED:
            if (parse_expected(optarg, 1, &rq->expected) < 0)
                return cli_usage("stream", "--expected-version: '%s' is not any, "
                                 "no-stream, exists or a version >= 0", optarg);
            rq->expect_flag = "--expected-version";
            break;
        }
        if (status != 0)
            return status;
    }
    return stop;
}

/* The positionals: meta get|set STREAM, delete STREAM, tombstone STREAM;
 * and the options that go with the action. */
static int parse_args(request *rq, int argc, char **argv)
{
    int npos = argc - optind, want;
    char **pos = argv + optind;
    const char *verb;

    if (npos < 1)
        return cli_usage("stream", "missing 'meta', 'delete' or 'tombstone'");
    if (strcmp(pos[0], "meta") == 0) {
        if (npos < 2)
            return cli_usage("stream", "meta: missing 'get' or 'set'");
        if (strcmp(pos[1], "get") == 0)
            rq->act = ACT_META_GET;
        else if (strcmp(pos[1], "set") == 0)
            rq->act = ACT_META_SET;
        else
            return cli_usage("stream", "meta: unknown action '%s' (get or set)", pos[1]);
        verb = rq->act == ACT_META_GET ? "meta get" : "meta set";
        want = 3;
    } else if (strcmp(pos[0], "delete") == 0 || strcmp(pos[0], "tombstone") == 0) {
        rq->act = pos[0][0] == 'd' ? ACT_DELETE : ACT_TOMBSTONE;
        verb = pos[0];
        want = 2;
    } else {
        return cli_usage("stream", "unknown action '%s' (meta get, meta set, delete or "
                         "tombstone)", pos[0]);
    }
    if (npos < want)
        return cli_usage("stream", "%s: missing STREAM", verb);
    if (npos > want)
        return cli_usage("stream", "too many arguments ('%s')", pos[want]);
    rq->stream = pos[want - 1];
    if (rq->act != ACT_META_SET && rq->set_flag != NULL)
        return cli_usage("stream", "%s: %s is for 'meta set'", verb, rq->set_flag);
    if (rq->act == ACT_META_GET && rq->expect_flag != NULL)
        return cli_usage("stream", "meta get: %s is for the commands that write",
                         rq->expect_flag);
    if (rq->act == ACT_META_SET && rq->expect_flag != NULL &&
        strcmp(rq->expect_flag, "--expected-version") == 0)
        return cli_usage("stream", "meta set: the metadata has its own version: use "
                         "--expected-meta-version");
    if ((rq->act == ACT_DELETE || rq->act == ACT_TOMBSTONE) && rq->expect_flag != NULL &&
        strcmp(rq->expect_flag, "--expected-meta-version") == 0)
        return cli_usage("stream", "%s: use --expected-version (the stream's version)", verb);
    if (rq->custom != NULL) {
        char err[160];
        size_t vs, ve;

        if (cli_json_check(rq->custom, strlen(rq->custom), &vs, &ve, err, sizeof err) < 0)
            return cli_usage("stream", "--custom is not valid JSON: %s", err);
        rq->meta.custom = rq->custom + vs;
        rq->meta.custom_len = ve - vs;
    }
    return 0;
}

/* `"stream":S` and, for a tenant other than the default, `"tenant":T`
 * before it (as `evs snapshot load`). */
static void put_head(cli_buf *b, const request *rq)
{
    cli_buf_putc(b, '{');
    if (rq->tenant != NULL && rq->tenant[0] != '\0') {
        cli_buf_puts(b, "\"tenant\":");
        cli_json_put_str(b, rq->tenant, strlen(rq->tenant));
        cli_buf_putc(b, ',');
    }
    cli_buf_puts(b, "\"stream\":");
    cli_json_put_str(b, rq->stream, strlen(rq->stream));
}

/* a version, null when EVS_NO_STREAM */
static void put_version(cli_buf *b, const char *key, int64_t v)
{
    if (v == EVS_NO_STREAM)
        cli_buf_printf(b, ",\"%s\":null", key);
    else
        cli_buf_printf(b, ",\"%s\":%" PRId64, key, v);
}

static int put_out(cli_buf *b)
{
    int status = CLI_EXIT_OK;

    fwrite(b->p, 1, b->len, stdout);
    if (fflush(stdout) != 0) {
        cli_err("stream: cannot write the result to standard output");
        status = CLI_EXIT_FAIL;
    }
    return status;
}

static int meta_get(evs_db *db, const request *rq)
{
    evs_stream_meta_info *info = NULL;
    cli_buf b = {0};
    int rc, status;

    if ((rc = evs_stream_metadata_get(&info, db, rq->tenant, rq->stream)) < 0)
        return cli_lib_err(rc, NULL);
    put_head(&b, rq);
    cli_buf_printf(&b, ",\"max_count\":%" PRId64 ",\"max_age_s\":%" PRId64
                   ",\"truncate_before\":%" PRId64 ",\"custom\":",
                   info->meta.max_count, info->meta.max_age_s, info->meta.truncate_before);
    cli_json_put_value(&b, info->meta.custom, info->meta.custom_len);
    put_version(&b, "meta_version", info->meta_version);
    put_version(&b, "stream_version", info->stream_version);
    cli_buf_printf(&b, ",\"deleted\":%s,\"tombstoned\":%s}\n",
                   info->deleted ? "true" : "false", info->tombstoned ? "true" : "false");
    evs_stream_meta_info_free(info);
    status = put_out(&b);
    cli_buf_free(&b);
    return status;
}

static int write_action(evs_db *db, const request *rq)
{
    cli_buf b = {0};
    int64_t mv = 0;
    uint64_t pos = 0;
    int rc, status;

    switch (rq->act) {
    case ACT_META_SET:
        rc = evs_stream_metadata_set(&mv, db, rq->tenant, rq->stream, rq->expected, &rq->meta);
        break;
    case ACT_DELETE:
        rc = evs_stream_delete(&pos, db, rq->tenant, rq->stream, rq->expected);
        break;
    default:
        rc = evs_stream_tombstone(&pos, db, rq->tenant, rq->stream, rq->expected);
        break;
    }
    if (rc < 0)
        return cli_lib_err(rc, NULL);
    put_head(&b, rq);
    if (rq->act == ACT_META_SET)
        cli_buf_printf(&b, ",\"meta_version\":%" PRId64 "}\n", mv);
    else if (pos == 0)
        cli_buf_puts(&b, ",\"position\":null}\n");
    else
        cli_buf_printf(&b, ",\"position\":%" PRIu64 "}\n", pos);
    status = put_out(&b);
    cli_buf_free(&b);
    return status;
}

int cmd_stream(cli_ctx *cx, int argc, char **argv)
{
    request rq;
    evs_db *db = NULL;
    int status;

    memset(&rq, 0, sizeof rq);
    rq.expected = EVS_ANY;
    if ((status = parse_options(&rq, cx, argc, argv)) >= 0 ||
        (status = parse_args(&rq, argc, argv)) != 0)
        return status;
    if ((status = cli_open(&db, cx, rq.act == ACT_META_GET ? EVS_OPEN_READONLY : 0)) != 0)
        return status;
    status = rq.act == ACT_META_GET ? meta_get(db, &rq) : write_action(db, &rq);
    return cli_close(db, status);
}
