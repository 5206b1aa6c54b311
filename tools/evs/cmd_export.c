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
    CLI_HELP_SHARED
    CLI_HELP_EXIT;

static const cli_cmd cmd = {"export", help, cli_no_options};

int cmd_export(cli_ctx *cx, int argc, char **argv)
{
    const char *path;
    evs_db *db = NULL;
    evs_iter *it = NULL;
    FILE *f = stdout;
    int rc, status;

    cli_getopt_start();
    if ((status = cli_parse_opts(cx, NULL, &cmd, argc, argv)) >= 0)
        return status;
    if ((status = cli_file_arg(&path, "export", argc, argv)) != 0 ||
        (status = cli_open(&db, cx, EVS_OPEN_READONLY)) != 0)
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
