/*
 * cmd_append.c -- `evs append STREAM TYPE [DATA|-]`: append one event.
 */
#include "cli.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: evs append STREAM TYPE [DATA|-] [options]\n"
    "       evs append --no-stream TYPE [DATA|-] [options]\n"
    "\n"
    "Append one event to STREAM and print\n"
    "  {\"stream\":...,\"version\":...,\"position\":...}\n"
    "With --no-stream the event belongs to no stream (a DCB event, found by\n"
    "its type and tags with 'evs query'); \"stream\" and \"version\" are null.\n"
    "DATA is JSON ('{}' when absent); '-' reads it from standard input.\n"
    "\n"
    "Options:\n"
    "  --expect any|no-stream|exists|N  expected version (default any)\n"
    "  --no-stream               no STREAM argument: an event of no stream\n"
    "                            (not with --expect; use --fail-if)\n"
    "  --id UUID                 event id (default: a new UUIDv7); appending\n"
    "                            the same id and event again writes nothing\n"
    "  --tag T                   a tag such as account:42 (repeatable)\n"
    "  --tag-field NAME          also tag the event NAME:VALUE when its JSON\n"
    "                            data is an object whose member NAME is a\n"
    "                            string, number, true or false (repeatable)\n"
    "  --fail-if JSON            append only if no event matching this query\n"
    "                            ({\"items\":[...]} as in 'evs query --query')\n"
    "                            is after --after; else write nothing, name\n"
    "                            the first such event's position, exit 3\n"
    "  --after POS               with --fail-if: the marker of the query the\n"
    "                            decision was made on (exclusive; default 0:\n"
    "                            the whole store)\n"
    "  --metadata JSON           event metadata\n"
    "  --subject NAME            encrypt the data under data subject NAME's\n"
    "                            key (crypto-shredding: 'evs forget NAME'\n"
    "                            later redacts it; docs/ERASURE.md)\n"
    "  --encrypt-metadata        with --subject: encrypt the metadata too\n"
    "  --tenant NAME             tenant (default: the default tenant)\n"
    "  --binary                  DATA is raw bytes, not JSON\n"
    "  --correlation-id UUID     correlation id\n"
    "  --causation-id UUID       causation id\n"
    "  --db URI                  the store\n"
    "  -h, --help                this help\n"
    "\n"
    "Exit status: 0 ok, 1 error, 2 usage error, 3 conflict (--expect did not\n"
    "match, or an event matches --fail-if), 4 store busy (another process\n"
    "still writes it after --wait).\n";

enum {
    OPT_EXPECT = 0x100,
    OPT_ID,
    OPT_TAG,
    OPT_METADATA,
    OPT_TENANT,
    OPT_BINARY,
    OPT_CORRELATION,
    OPT_CAUSATION,
    OPT_NO_STREAM,
    OPT_TAG_FIELD,
    OPT_FAIL_IF,
    OPT_AFTER,
    OPT_SUBJECT,
    OPT_ENCRYPT_METADATA
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
    {"no-stream", no_argument, NULL, OPT_NO_STREAM},
    {"tag-field", required_argument, NULL, OPT_TAG_FIELD},
    {"fail-if", required_argument, NULL, OPT_FAIL_IF},
    {"after", required_argument, NULL, OPT_AFTER},
    {"subject", required_argument, NULL, OPT_SUBJECT},
    {"encrypt-metadata", no_argument, NULL, OPT_ENCRYPT_METADATA},
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

/* Add s to the growing array *arr of *n names. */
static void push_name(const char ***arr, size_t *n, const char *s)
{
    *arr = cli_xrealloc(*arr, (*n + 1) * sizeof **arr);
    (*arr)[(*n)++] = s;
}

/* What the options and positionals asked for, checked. */
typedef struct request {
    const char *stream; /* NULL with --no-stream */
    const char *type;
    const char *data_arg; /* NULL, "-" or the text */
    const char *metadata, *tenant, *fail_if;
    const char **tags, **tag_fields;
    size_t ntags, ntag_fields;
    int binary, no_stream, have_expect, have_after;
    int64_t expect;
    uint64_t after;
    evs_event_data ev;
} request;

static int parse_options(request *rq, cli_ctx *cx, int argc, char **argv)
{
    int c, stop, status;

    cli_getopt_start();
    while ((c = cli_next_opt(&stop, cx, NULL, &cmd, argc, argv)) != -1) {
        switch (c) {
        case OPT_EXPECT:
            if (parse_expect(optarg, &rq->expect) < 0)
                return cli_usage("append", "--expect: '%s' is not any, "
                                 "no-stream, exists or a version >= 0",
                                 optarg);
            rq->have_expect = 1;
            break;
        case OPT_ID:
            if ((status = parse_uuid(&rq->ev.id, optarg, "--id")) != 0)
                return status;
            break;
        case OPT_CORRELATION:
            if ((status = parse_uuid(&rq->ev.correlation_id, optarg,
                                     "--correlation-id")) != 0)
                return status;
            break;
        case OPT_CAUSATION:
            if ((status = parse_uuid(&rq->ev.causation_id, optarg,
                                     "--causation-id")) != 0)
                return status;
            break;
        case OPT_TAG:
            push_name(&rq->tags, &rq->ntags, optarg);
            break;
        case OPT_TAG_FIELD:
            push_name(&rq->tag_fields, &rq->ntag_fields, optarg);
            break;
        case OPT_METADATA:
            rq->metadata = optarg;
            break;
        case OPT_SUBJECT:
            rq->ev.subject = optarg;
            break;
        case OPT_ENCRYPT_METADATA:
            rq->ev.flags |= EVS_EVENT_ENCRYPT_METADATA;
            break;
        case OPT_TENANT:
            rq->tenant = optarg;
            break;
        case OPT_BINARY:
            rq->binary = 1;
            break;
        case OPT_NO_STREAM:
            rq->no_stream = 1;
            break;
        case OPT_FAIL_IF:
            rq->fail_if = optarg;
            break;
        case OPT_AFTER:
            if ((status = cli_parse_position(&rq->after, "append", "--after",
                                             optarg)) != 0)
                return status;
            rq->have_after = 1;
            break;
        }
    }
    return stop;
}

/* The positionals: [STREAM] TYPE [DATA|-], and the flags that go
 * together. */
static int parse_args(request *rq, int argc, char **argv)
{
    int want = rq->no_stream ? 1 : 2, npos = argc - optind;
    char **pos = argv + optind;

    if (rq->no_stream && rq->have_expect)
        return cli_usage("append", "--expect is for appends to a stream; an "
                         "event of --no-stream has no version to expect (use "
                         "--fail-if)");
    if (rq->have_after && rq->fail_if == NULL)
        return cli_usage("append", "--after goes with --fail-if");
    if (npos < want)
        return cli_usage("append", "missing %s",
                         npos == 0 && want == 2 ? "STREAM and TYPE" : "TYPE");
    if (npos > want + 1)
        return cli_usage("append", "too many arguments ('%s')", pos[want + 1]);
    rq->stream = rq->no_stream ? NULL : pos[0];
    rq->type = pos[want - 1];
    rq->data_arg = npos > want ? pos[want] : NULL;
    return 0;
}

/* The event's data and metadata into rq->ev (input holds the data). */
static int load_payload(request *rq, cli_buf *input)
{
    evs_event_data *ev = &rq->ev;
    char err[160];
    size_t vs, ve;

    /* The data: an argument, standard input, or {} / nothing. */
    if (rq->data_arg != NULL && strcmp(rq->data_arg, "-") == 0) {
        if (cli_buf_read_all(input, stdin) < 0) {
            cli_err("append: cannot read standard input");
            return CLI_EXIT_FAIL;
        }
    } else if (rq->data_arg != NULL) {
        cli_buf_puts(input, rq->data_arg);
    } else if (!rq->binary) {
        cli_buf_puts(input, "{}");
    }
    ev->type = rq->type;
    ev->content_type = rq->binary ? EVS_CONTENT_BINARY : EVS_CONTENT_JSON;
    ev->data = input->p;
    ev->data_len = input->len;
    if (!rq->binary) {
        if (cli_json_check(input->p ? input->p : "", input->len, &vs, &ve,
                           err, sizeof err) < 0)
            return cli_usage("append", "DATA is not valid JSON: %s", err);
        /* Store the value without the whitespace around it (the newline
         * `echo` adds, say); its text is kept as given. */
        ev->data = input->p + vs;
        ev->data_len = ve - vs;
    }
    if (rq->metadata != NULL) {
        if (cli_json_check(rq->metadata, strlen(rq->metadata), &vs, &ve, err,
                           sizeof err) < 0)
            return cli_usage("append", "--metadata is not valid JSON: %s",
                             err);
        ev->metadata = rq->metadata + vs;
        ev->metadata_len = ve - vs;
    }
    ev->tags = rq->tags;
    ev->ntags = rq->ntags;
    return 0;
}

/* A failed append, reported. A failed --fail-if alone is told in the
 * CLI's words with the first offending position; anything else (also a
 * failed --expect beside it) in the library's, which lists every failed
 * check. */
static int append_failed(int rc, const request *rq,
                         const evs_append_result *res, uint64_t conflict)
{
    if (rc == EVS_ECONFLICT && conflict != 0 && res->status != EVS_ECONFLICT) {
        cli_err("append: --fail-if: the event at position %" PRIu64
                " matches (after %" PRIu64 "); nothing written", conflict,
                rq->after);
        return CLI_EXIT_CONFLICT;
    }
    return cli_lib_err(rc, NULL);
}

static int print_result(const request *rq, const evs_append_result *res)
{
    cli_buf out = {0};
    int status = CLI_EXIT_OK;

    cli_buf_puts(&out, "{\"stream\":");
    if (rq->stream != NULL) {
        cli_json_put_str(&out, rq->stream, strlen(rq->stream));
        cli_buf_printf(&out, ",\"version\":%" PRId64, res->stream_version);
    } else {
        cli_buf_puts(&out, "null,\"version\":null");
    }
    cli_buf_printf(&out, ",\"position\":%" PRIu64 "}\n", res->last_position);
    fwrite(out.p, 1, out.len, stdout);
    if (fflush(stdout) != 0) {
        cli_err("append: cannot write the result to standard output");
        status = CLI_EXIT_FAIL;
    }
    cli_buf_free(&out);
    return status;
}

int cmd_append(cli_ctx *cx, int argc, char **argv)
{
    request rq;
    evs_stream_append part;
    evs_append_condition cond;
    evs_append_request req = EVS_APPEND_REQUEST_INIT;
    evs_append_result res;
    uint64_t conflict = 0;
    cli_arena arena = {0};
    cli_buf input = {0};
    evs_db *db = NULL;
    char err[320];
    int rc, status;

    memset(&rq, 0, sizeof rq);
    memset(&res, 0, sizeof res);
    rq.expect = EVS_ANY;
    if ((status = parse_options(&rq, cx, argc, argv)) >= 0 ||
        (status = parse_args(&rq, argc, argv)) != 0 ||
        (status = load_payload(&rq, &input)) != 0)
        goto out;
    memset(&cond, 0, sizeof cond);
    if (rq.fail_if != NULL) {
        if (cli_query_from_json(&cond.fail_if_events_match, &arena,
                                rq.fail_if, strlen(rq.fail_if), err,
                                sizeof err) < 0) {
            status = cli_usage("append", "--fail-if: %s", err);
            goto out;
        }
        cond.after = rq.after;
        req.conditions = &cond;
        req.nconditions = 1;
    }
    part.stream = rq.stream;
    part.expected_version = rq.expect;
    part.events = &rq.ev;
    part.nevents = 1;
    req.tenant = rq.tenant;
    req.parts = &part;
    req.nparts = 1;
    req.tag_fields = rq.tag_fields;
    req.ntag_fields = rq.ntag_fields;

    if ((status = cli_open(&db, cx, EVS_OPEN_CREATE)) != 0)
        goto out;
    rc = evs_append_ex(&res, &conflict, db, &req);
    status = rc < 0 ? append_failed(rc, &rq, &res, conflict)
                    : print_result(&rq, &res);
out:
    if (db != NULL)
        status = cli_close(db, status);
    cli_buf_free(&input);
    cli_arena_reset(&arena);
    free(rq.tags);
    free(rq.tag_fields);
    return status;
}
