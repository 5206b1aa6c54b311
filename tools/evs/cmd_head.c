/*
 * cmd_head.c -- `evs head`: print the head position.
 */
#include "cli.h"

#include <inttypes.h>

static const char help[] =
    "usage: evs head [--tenant NAME | --all-tenants]\n"
    "\n"
    "Print the global position of the newest event of the default tenant\n"
    "(or of --tenant, or of the whole store with --all-tenants); 0 when\n"
    "there is none. When it is 0 for the default tenant while other\n"
    "tenants hold events, standard error says which (and how many).\n"
    "\n"
    "Options:\n"
    "  --tenant NAME   that tenant's head\n"
    "  --all-tenants   the head of the whole store\n"
    CLI_HELP_SHARED
    CLI_HELP_EXIT;

static const struct option options[] = {
    CLI_SCOPE_OPTIONS,
    CLI_OPTIONS_END,
};

static const cli_cmd cmd = {"head", help, options};

int cmd_head(cli_ctx *cx, int argc, char **argv)
{
    cli_scope scope = CLI_SCOPE_INIT;
    int rc, status;
    uint64_t head = 0;
    evs_db *db = NULL;

    cli_getopt_start();
    if ((status = cli_parse_opts(cx, &scope, &cmd, argc, argv)) >= 0)
        return status;
    if ((status = cli_no_args("head", argc, argv)) != 0 ||
        (status = cli_scope_check(&scope, "head")) != 0 ||
        (status = cli_open(&db, cx, EVS_OPEN_READONLY)) != 0)
        return status;
    rc = evs_head_position(&head, db, cli_scope_tenant(&scope));
    if (rc < 0)
        status = cli_lib_err(rc, NULL);
    else
        printf("%" PRIu64 "\n", head);
    if (rc == 0 && head == 0 && !scope.have_tenant && !scope.all_tenants) {
        fflush(stdout);
        cli_hint_tenants(db, "head");
    }
    return cli_close(db, status);
}
