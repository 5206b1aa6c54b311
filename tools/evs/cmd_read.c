/*
 * cmd_read.c -- `evs read STREAM`: print the events of one stream; with
 * --follow, then the events appended to it later, until Ctrl-C.
 */
#include "cli.h"

#include <string.h>

#define FOLLOW_CHUNK 1024 /* versions per catch-up read */

static const char help[] =
    "usage: evs read STREAM [options]\n"
    "\n"
    "Print the events of STREAM, one JSON object per line (see docs/CLI.md).\n"
    "A stream that does not exist prints nothing.\n"
    "\n"
    "Options:\n"
    "  --from V        first version to print (default: 0, or the newest\n"
    "                  with --backward)\n"
    "  --backward      newest first\n"
    "  --limit N       at most N events (0 = all, the default)\n"
    "  --tenant NAME   tenant (default: the default tenant)\n"
    "  --follow        then wait for new events of STREAM and print them as\n"
    "                  they are committed, like 'tail -f', until Ctrl-C\n"
    "                  (SIGINT or SIGTERM: exit 0) or --limit events; the\n"
    "                  stream need not exist yet (not with --backward)\n"
    CLI_HELP_SHARED
    CLI_HELP_EXIT;

enum { OPT_FROM = 0x100, OPT_BACKWARD, OPT_LIMIT, OPT_TENANT, OPT_FOLLOW };

static const struct option options[] = {
    {"from", required_argument, NULL, OPT_FROM},
    {"backward", no_argument, NULL, OPT_BACKWARD},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {"tenant", required_argument, NULL, OPT_TENANT},
    {"follow", no_argument, NULL, OPT_FOLLOW},
    CLI_OPTIONS_END,
};

static const cli_cmd cmd = {"read", help, options};

/*
 * --follow. The events already there come from stream reads, from
 * version `from` on, a chunk at a time (so Ctrl-C is seen between
 * chunks). The read that finds the end of the stream has as marker the
 * store's head when it began: every later event of the stream is after
 * it. From there, tracking reads with the DCB query "$stream:NAME" wait
 * for the stream's new events; commits to other streams do not wake
 * them.
 */
static int follow(evs_db *db, const char *tenant, const char *stream,
                  int64_t from, uint64_t limit)
{
    char tag[sizeof EVS_STREAM_TAG_PREFIX + EVS_MAX_STREAM_LEN];
    const char *tags[1] = {tag};
    evs_query_item item = {NULL, 0, tags, 1};
    evs_query q = {&item, 1};
    evs_tracking t = EVS_TRACKING_INIT;
    int with_tenant = tenant != NULL && tenant[0] != '\0';
    cli_follow f;
    int rc, status;

    memset(&f, 0, sizeof f);
    cli_follow_signals();
    for (;;) {
        uint64_t want = FOLLOW_CHUNK, n = 0;
        evs_iter *it = NULL;

        if (limit != 0 && limit - f.count < want)
            want = limit - f.count;
        rc = evs_read_stream(&it, db, tenant, stream, from, EVS_FORWARD,
                             want);
        if (rc < 0)
            return cli_lib_err(rc, NULL);
        status = cli_write_events(it, stdout, with_tenant, "read", &n);
        if (status == CLI_EXIT_OK && (rc = evs_iter_marker(&f.token, it)) < 0)
            status = cli_lib_err(rc, "read");
        evs_iter_free(it);
        if (status != CLI_EXIT_OK)
            return status;
        f.count += n;
        from += (int64_t)n;
        if ((limit != 0 && f.count >= limit) || cli_follow_stopping())
            return CLI_EXIT_OK;
        if (n < want)
            break; /* the end of the stream: f.token is the head */
    }
    /* The stream's name was checked by the reads above, so it fits. */
    snprintf(tag, sizeof tag, "%s%s", EVS_STREAM_TAG_PREFIX, stream);
    t.tenant = tenant;
    t.query = &q;
    f.db = db;
    f.filter = &t;
    f.limit = limit;
    f.from_version = from; /* --from beyond the stream's end: not before */
    f.with_tenant = with_tenant;
    f.what = "read";
    return cli_follow_run(&f);
}

int cmd_read(cli_ctx *cx, int argc, char **argv)
{
    const char *tenant = NULL;
    int64_t from = 0;
    uint64_t limit = 0, from_u;
    int have_from = 0, backward = 0, follow_on = 0, c, rc, status;
    evs_db *db = NULL;
    evs_iter *it = NULL;

    cli_getopt_start();
    while ((c = cli_next_opt(&status, cx, NULL, &cmd, argc, argv)) != -1) {
        switch (c) {
        case OPT_FROM:
            if (cli_parse_u64(optarg, &from_u) < 0 || from_u > INT64_MAX)
                return cli_usage("read", "--from: '%s' is not a version "
                                 "(a number >= 0)", optarg);
            from = (int64_t)from_u;
            have_from = 1;
            break;
        case OPT_BACKWARD:
            backward = 1;
            break;
        case OPT_LIMIT:
            if (cli_parse_u64(optarg, &limit) < 0)
                return cli_usage("read", "--limit: '%s' is not a number >= 0",
                                 optarg);
            break;
        case OPT_TENANT:
            tenant = optarg;
            break;
        case OPT_FOLLOW:
            follow_on = 1;
            break;
        }
    }
    if (status >= 0)
        return status;
    if (argc - optind < 1)
        return cli_usage("read", "missing STREAM");
    if (argc - optind > 1)
        return cli_usage("read", "too many arguments ('%s')",
                         argv[optind + 1]);
    if (backward && follow_on)
        return cli_usage("read", "--follow reads forward; it does not go "
                         "with --backward");
    if (backward && !have_from)
        from = EVS_END;

    if ((status = cli_open(&db, cx, EVS_OPEN_READONLY)) != 0)
        return status;
    if (follow_on)
        return cli_close(db, follow(db, tenant, argv[optind], from, limit));
    rc = evs_read_stream(&it, db, tenant, argv[optind], from,
                         backward ? EVS_BACKWARD : EVS_FORWARD, limit);
    if (rc < 0)
        status = cli_lib_err(rc, NULL);
    else
        status = cli_write_events(it, stdout,
                                  tenant != NULL && tenant[0] != '\0', "read",
                                  NULL);
    evs_iter_free(it);
    return cli_close(db, status);
}
