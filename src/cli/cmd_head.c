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
    "there is none.\n"
    "\n"
    "Options:\n"
    "  --tenant NAME   that tenant's head\n"
    "  --all-tenants   the head of the whole store\n"
    "  --db URI        the store\n"
    "  -h, --help      this help\n";

enum { OPT_TENANT = 0x100, OPT_ALL_TENANTS, OPT_DB };

static const struct option options[] = {
    {"tenant", required_argument, NULL, OPT_TENANT},
    {"all-tenants", no_argument, NULL, OPT_ALL_TENANTS},
    {"db", required_argument, NULL, OPT_DB},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

int cmd_head(cli_ctx *cx, int argc, char **argv)
{
    const char *tenant = "";
    int all_tenants = 0, have_tenant = 0, c, rc, status;
    uint64_t head = 0;
    evs_db *db = NULL;

    cli_getopt_start();
    while ((c = cli_getopt(argc, argv, "h", options, "head")) != -1) {
        switch (c) {
        case 'h':
            fputs(help, stdout);
            return CLI_EXIT_OK;
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
        return cli_usage("head", "unexpected argument '%s'", argv[optind]);
    if (all_tenants && have_tenant)
        return cli_usage("head", "--tenant and --all-tenants exclude each "
                         "other");

    if ((status = cli_open(&db, cx, EVS_OPEN_READONLY)) != 0)
        return status;
    rc = evs_head_position(&head, db, all_tenants ? NULL : tenant);
    if (rc < 0)
        status = cli_lib_err(rc, NULL);
    else
        printf("%" PRIu64 "\n", head);
    return cli_close(db, status);
}
