/*
 * cmd_checkpoint.c -- `evs checkpoint get|set NAME`: a named consumer's
 * stored tracking token (what `evs subscribe --checkpoint` keeps).
 */
#include "cli.h"

#include <inttypes.h>
#include <string.h>

static const char help[] =
    "usage: evs checkpoint get NAME [--tenant NAME]\n"
    "       evs checkpoint set NAME TOKEN [--tenant NAME]\n"
    "\n"
    "A checkpoint is a named consumer's tracking token, stored in the store\n"
    "per tenant ('evs subscribe --checkpoint NAME' reads and stores it).\n"
    "\n"
    "get  print the stored token; exit 1 when NAME was never stored in\n"
    "     the tenant\n"
    "set  store TOKEN (a global position, at most the head) as NAME. A\n"
    "     checkpoint only moves forward: a TOKEN below the stored one is\n"
    "     refused (exit 2); the same one changes nothing. Opens the store\n"
    "     for writing: waits up to --wait (evs --help) for another process\n"
    "     that writes to it, then fails with exit 4.\n"
    "\n"
    "Options:\n"
    "  --tenant NAME   tenant (default: the default tenant)\n"
    CLI_HELP_SHARED
    "\n"
    "Exit status: 0 ok, 1 error (also: get of a NAME never stored), 2 usage\n"
    "error (also: set of a TOKEN below the stored one or beyond the head),\n"
    "4 store busy (set: another process still writes it after --wait).\n";

enum { OPT_TENANT = 0x100 };

static const struct option options[] = {
    {"tenant", required_argument, NULL, OPT_TENANT},
    CLI_OPTIONS_END,
};

static const cli_cmd cmd = {"checkpoint", help, options};

int cmd_checkpoint(cli_ctx *cx, int argc, char **argv)
{
    const char *tenant = NULL, *verb, *name;
    uint64_t token = 0;
    int c, rc, status, set, nargs;
    evs_db *db = NULL;

    cli_getopt_start();
    while ((c = cli_next_opt(&status, cx, NULL, &cmd, argc, argv)) != -1)
        if (c == OPT_TENANT)
            tenant = optarg;
    if (status >= 0)
        return status;
    if (argc - optind < 1)
        return cli_usage("checkpoint", "missing 'get' or 'set'");
    verb = argv[optind];
    if (strcmp(verb, "get") == 0)
        set = 0;
    else if (strcmp(verb, "set") == 0)
        set = 1;
    else
        return cli_usage("checkpoint", "unknown action '%s' (get or set)",
                         verb);
    nargs = set ? 3 : 2;
    if (argc - optind < 2)
        return cli_usage("checkpoint", "%s: missing NAME", verb);
    name = argv[optind + 1];
    if (set && argc - optind < 3)
        return cli_usage("checkpoint", "set: missing TOKEN");
    if (argc - optind > nargs)
        return cli_usage("checkpoint", "too many arguments ('%s')",
                         argv[optind + nargs]);
    if (set && cli_parse_position(&token, "checkpoint", "TOKEN",
                                  argv[optind + 2]) != 0)
        return CLI_EXIT_USAGE;

    if ((status = cli_open(&db, cx, set ? 0 : EVS_OPEN_READONLY)) != 0)
        return status;
    if (set) {
        rc = evs_checkpoint_set(db, tenant, name, token);
    } else {
        rc = evs_checkpoint_get(&token, db, tenant, name);
        if (rc == 0)
            printf("%" PRIu64 "\n", token);
    }
    if (rc < 0)
        status = cli_lib_err(rc, "checkpoint");
    return cli_close(db, status);
}
