/*
 * cmd_export.c -- `evs export [FILE|-]`: every event of every tenant as
 * JSON Lines, the input of `evs import`.
 */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: evs export [FILE|-]\n"
    "\n"
    "Write every event of every tenant, in global order, one JSON object per\n"
    "line with its tenant (see docs/CLI.md), to FILE or standard output.\n"
    "'evs export | evs --db OTHER import' copies a store.\n"
    "\n"
    "Options:\n"
    "  --db URI        the store\n"
    "  -h, --help      this help\n";

enum { OPT_DB = 0x100 };

static const struct option options[] = {
    {"db", required_argument, NULL, OPT_DB},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

int cmd_export(cli_ctx *cx, int argc, char **argv)
{
    const char *path = NULL;
    evs_db *db = NULL;
    evs_iter *it = NULL;
    FILE *f = stdout;
    int c, rc, status;

    cli_getopt_start();
    while ((c = cli_getopt(argc, argv, "h", options, "export")) != -1) {
        switch (c) {
        case 'h':
            fputs(help, stdout);
            return CLI_EXIT_OK;
        case OPT_DB:
            cx->db_uri = optarg;
            break;
        default:
            return CLI_EXIT_USAGE;
        }
    }
    if (argc - optind > 1)
        return cli_usage("export", "too many arguments ('%s')",
                         argv[optind + 1]);
    if (argc - optind == 1 && strcmp(argv[optind], "-") != 0)
        path = argv[optind];

    if ((status = cli_open(&db, cx, EVS_OPEN_READONLY)) != 0)
        return status;
    /* The iterator is a snapshot: appends during the export are not in
     * it, and the file is a consistent copy as of its start. */
    rc = evs_read_all(&it, db, NULL, 0, 0);
    if (rc < 0) {
        status = cli_lib_err(rc, NULL);
        goto out;
    }
    if (path != NULL && (f = fopen(path, "w")) == NULL) {
        cli_err("export: cannot create %s: %s", path, strerror(errno));
        status = CLI_EXIT_FAIL;
        goto out;
    }
    status = cli_write_events(it, f, 1, "export", NULL);
    if (path != NULL && fclose(f) != 0 && status == CLI_EXIT_OK) {
        cli_err("export: cannot write %s: %s", path, strerror(errno));
        status = CLI_EXIT_FAIL;
    }
out:
    evs_iter_free(it);
    return cli_close(db, status);
}
