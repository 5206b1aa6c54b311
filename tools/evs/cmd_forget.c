/*
 * cmd_forget.c -- `evs forget [--tenant T] SUBJECT`: crypto-shredding
 * (evs_forget; docs/ERASURE.md): destroy a data subject's key, so that
 * every event encrypted under it reads back redacted from then on.
 */
#include "cli.h"

#include <string.h>

static const char help[] =
    "usage: evs forget [--tenant NAME] SUBJECT\n"
    "\n"
    "Destroy the key of data subject SUBJECT (the subject an event was\n"
    "appended with, e.g. person-42): from then on every read, export and\n"
    "later backup returns the events encrypted under it with their data\n"
    "(and encrypted metadata) empty and \"redacted\":true; their type,\n"
    "stream, version, position and tags stay. Cannot be undone; backups\n"
    "taken before still hold the key (docs/ERASURE.md). Forgetting a\n"
    "forgotten subject does nothing and succeeds; a subject that never had\n"
    "a key is an error (exit 1: a typo?). Opens the store for writing:\n"
    "waits up to --wait (evs --help) for another process that writes it.\n"
    "\n"
    "Options:\n"
    "  --tenant NAME   the subject's tenant (default: the default tenant)\n"
    CLI_HELP_SHARED
    CLI_HELP_EXIT_WRITER;

enum { OPT_TENANT = 0x100 };

static const struct option options[] = {
    {"tenant", required_argument, NULL, OPT_TENANT},
    CLI_OPTIONS_END,
};

static const cli_cmd cmd = {"forget", help, options};

int cmd_forget(cli_ctx *cx, int argc, char **argv)
{
    const char *tenant = NULL, *subject;
    int c, rc, status;
    evs_db *db = NULL;

    cli_getopt_start();
    while ((c = cli_next_opt(&status, cx, NULL, &cmd, argc, argv)) != -1)
        if (c == OPT_TENANT)
            tenant = optarg;
    if (status >= 0)
        return status;
    if (argc - optind < 1)
        return cli_usage("forget", "missing SUBJECT (the data subject whose key to destroy)");
    if (argc - optind > 1)
        return cli_usage("forget", "too many arguments (one SUBJECT at a time)");
    subject = argv[optind];
    if ((status = cli_open(&db, cx, 0)) != 0)
        return status;
    rc = evs_forget(db, tenant, subject);
    if (rc < 0)
        status = cli_lib_err(rc, "forget");
    else
        fprintf(stderr, "evs: forget: subject %s%s%s forgotten: its events read redacted "
                "from now on\n", subject, tenant && *tenant ? " of tenant " : "",
                tenant && *tenant ? tenant : "");
    return cli_close(db, status);
}
