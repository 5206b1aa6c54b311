/*
 * cmd_all.c -- `evs all`: print $all, the events in global order.
 */
#include "cli.h"

#include <string.h>

static const char help[] =
    "usage: evs all [options]\n"
    "\n"
    "Print the events of the store in global position order, one JSON\n"
    "object per line (see docs/CLI.md). Without --all-tenants only the\n"
    "default tenant's (or --tenant's) events, so positions may have gaps.\n"
    "\n"
    "Options:\n"
    "  --from POS      first global position to print (default: 1)\n"
    "  --limit N       at most N events (0 = all, the default)\n"
    "  --tenant NAME   that tenant's events\n"
    "  --all-tenants   every tenant's events, each line with its tenant\n"
    CLI_HELP_SHARED;

enum { OPT_FROM = 0x100, OPT_LIMIT };

static const struct option options[] = {
    {"from", required_argument, NULL, OPT_FROM},
    {"limit", required_argument, NULL, OPT_LIMIT},
    CLI_SCOPE_OPTIONS,
    CLI_OPTIONS_END,
};

static const cli_cmd cmd = {"all", help, options};

int cmd_all(cli_ctx *cx, int argc, char **argv)
{
    cli_scope scope = CLI_SCOPE_INIT;
    uint64_t from = 0, limit = 0;
    int c, rc, status;
    evs_db *db = NULL;
    evs_iter *it = NULL;

    cli_getopt_start();
    while ((c = cli_next_opt(&status, cx, &scope, &cmd, argc, argv)) != -1) {
        switch (c) {
        case OPT_FROM:
            if ((status = cli_parse_position(&from, "all", "--from",
                                             optarg)) != 0)
                return status;
            break;
        case OPT_LIMIT:
            if (cli_parse_u64(optarg, &limit) < 0)
                return cli_usage("all", "--limit: '%s' is not a number >= 0",
                                 optarg);
            break;
        }
    }
    if (status >= 0)
        return status;
    if ((status = cli_no_args("all", argc, argv)) != 0 ||
        (status = cli_scope_check(&scope, "all")) != 0 ||
        (status = cli_open(&db, cx, EVS_OPEN_READONLY)) != 0)
        return status;
    rc = evs_read_all(&it, db, cli_scope_tenant(&scope), from, limit);
    if (rc < 0)
        status = cli_lib_err(rc, NULL);
    else
        status = cli_write_events(it, stdout,
                                  scope.all_tenants || scope.tenant[0] != '\0',
                                  "all", NULL);
    evs_iter_free(it);
    return cli_close(db, status);
}
