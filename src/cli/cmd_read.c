/*
 * cmd_read.c -- `evs read STREAM`: print the events of one stream.
 */
#include "cli.h"

#include <string.h>

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
    CLI_HELP_SHARED;

enum { OPT_FROM = 0x100, OPT_BACKWARD, OPT_LIMIT, OPT_TENANT };

static const struct option options[] = {
    {"from", required_argument, NULL, OPT_FROM},
    {"backward", no_argument, NULL, OPT_BACKWARD},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {"tenant", required_argument, NULL, OPT_TENANT},
    CLI_OPTIONS_END,
};

static const cli_cmd cmd = {"read", help, options};

int cmd_read(cli_ctx *cx, int argc, char **argv)
{
    const char *tenant = NULL;
    int64_t from = 0;
    uint64_t limit = 0, from_u;
    int have_from = 0, backward = 0, c, rc, status;
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
        }
    }
    if (status >= 0)
        return status;
    if (argc - optind < 1)
        return cli_usage("read", "missing STREAM");
    if (argc - optind > 1)
        return cli_usage("read", "too many arguments ('%s')",
                         argv[optind + 1]);
    if (backward && !have_from)
        from = EVS_END;

    if ((status = cli_open(&db, cx, EVS_OPEN_READONLY)) != 0)
        return status;
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
