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
    "  --db URI        the store\n"
    "  -h, --help      this help\n";

enum { OPT_FROM = 0x100, OPT_LIMIT, OPT_TENANT, OPT_ALL_TENANTS, OPT_DB };

static const struct option options[] = {
    {"from", required_argument, NULL, OPT_FROM},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {"tenant", required_argument, NULL, OPT_TENANT},
    {"all-tenants", no_argument, NULL, OPT_ALL_TENANTS},
    {"db", required_argument, NULL, OPT_DB},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

int cmd_all(cli_ctx *cx, int argc, char **argv)
{
    const char *tenant = "";
    uint64_t from = 0, limit = 0;
    int all_tenants = 0, have_tenant = 0, c, rc, status;
    evs_db *db = NULL;
    evs_iter *it = NULL;

    cli_getopt_start();
    while ((c = cli_getopt(argc, argv, "h", options, "all")) != -1) {
        switch (c) {
        case 'h':
            fputs(help, stdout);
            return CLI_EXIT_OK;
        case OPT_FROM:
            if (cli_parse_u64(optarg, &from) < 0)
                return cli_usage("all", "--from: '%s' is not a position "
                                 "(a number >= 0)", optarg);
            break;
        case OPT_LIMIT:
            if (cli_parse_u64(optarg, &limit) < 0)
                return cli_usage("all", "--limit: '%s' is not a number >= 0",
                                 optarg);
            break;
        case OPT_TENANT:
            tenant = optarg;
            have_tenant = 1;
            break;
        case OPT_ALL_TENANTS:
            all_tenants = 1;
            break;
        case OPT_DB:
            cx->db_uri = optarg;
            break;
        default:
            return CLI_EXIT_USAGE;
        }
    }
    if (argc - optind > 0)
        return cli_usage("all", "unexpected argument '%s'", argv[optind]);
    if (all_tenants && have_tenant)
        return cli_usage("all", "--tenant and --all-tenants exclude each "
                         "other");

    if ((status = cli_open(&db, cx, EVS_OPEN_READONLY)) != 0)
        return status;
    rc = evs_read_all(&it, db, all_tenants ? NULL : tenant, from, limit);
    if (rc < 0)
        status = cli_lib_err(rc, NULL);
    else
        status = cli_write_events(it, stdout, all_tenants || tenant[0] != '\0',
                                  "all", NULL);
    evs_iter_free(it);
    return cli_close(db, status);
}
