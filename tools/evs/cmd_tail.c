/*
 * cmd_tail.c -- `evs tail`: print the tail token, the one before the
 * oldest event (evs head prints the newest).
 */
#include "cli.h"

#include <inttypes.h>

static const char help[] =
    "usage: evs tail [--tenant NAME | --all-tenants]\n"
    "\n"
    "Print the tail token of the default tenant (or of --tenant, or of the\n"
    "whole store with --all-tenants): the global position just before its\n"
    "oldest event, so that reading after it ('evs subscribe --after N')\n"
    "yields every event. 0 for the whole store, and for a tenant without\n"
    "events.\n"
    "\n"
    "Options:\n"
    "  --tenant NAME   that tenant's tail\n"
    "  --all-tenants   the tail of the whole store (0)\n"
    CLI_HELP_SHARED
    CLI_HELP_EXIT;

static const struct option options[] = {
    CLI_SCOPE_OPTIONS,
    CLI_OPTIONS_END,
};

static const cli_cmd cmd = {"tail", help, options};

int cmd_tail(cli_ctx *cx, int argc, char **argv)
{
    cli_scope scope = CLI_SCOPE_INIT;
    int rc, status;
    uint64_t tail = 0;
    evs_db *db = NULL;

    cli_getopt_start();
    if ((status = cli_parse_opts(cx, &scope, &cmd, argc, argv)) >= 0)
        return status;
    if ((status = cli_no_args("tail", argc, argv)) != 0 ||
        (status = cli_scope_check(&scope, "tail")) != 0 ||
        (status = cli_open(&db, cx, EVS_OPEN_READONLY)) != 0)
        return status;
    rc = evs_token_tail(&tail, db, cli_scope_tenant(&scope));
    if (rc < 0)
        status = cli_lib_err(rc, NULL);
    else
        printf("%" PRIu64 "\n", tail);
    return cli_close(db, status);
}
