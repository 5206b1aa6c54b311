/*
 * cmd_event.c -- `evs event ID`: one event by its id, in any tenant.
 */
#include "cli.h"

static const char help[] =
    "usage: evs event ID\n"
    "\n"
    "Print the event whose id is ID (a UUID, as in the \"id\" of event\n"
    "lines), whatever its tenant or stream, as one event line (see\n"
    "docs/CLI.md) with its \"tenant\". One lookup in the id index.\n"
    "\n"
    "Options:\n"
    CLI_HELP_SHARED
    "\n"
    "Exit status: 0 ok, 1 error (also: no event has that id), 2 usage\n"
    "error (ID missing or not a UUID).\n";

static const cli_cmd cmd = {"event", help, cli_no_options};

int cmd_event(cli_ctx *cx, int argc, char **argv)
{
    int rc, status;
    evs_db *db = NULL;
    evs_iter *it = NULL;
    evs_uuid id;

    cli_getopt_start();
    if ((status = cli_parse_opts(cx, NULL, &cmd, argc, argv)) >= 0)
        return status;
    if (optind >= argc)
        return cli_usage("event", "the event's ID is missing");
    if (optind + 1 < argc)
        return cli_usage("event", "one ID at a time (unexpected '%s')", argv[optind + 1]);
    if (evs_uuid_parse(&id, argv[optind]) < 0)
        return cli_usage("event", "'%s' is not an event id (a UUID such as "
                         "01a2011e-961d-775e-8f45-a0207a72a97d)", argv[optind]);
    if ((status = cli_open(&db, cx, EVS_OPEN_READONLY)) != 0)
        return status;
    rc = evs_read_event(&it, db, &id);
    if (rc < 0)
        status = cli_lib_err(rc, "event");
    else
        status = cli_write_events(it, stdout, 1, "event", NULL);
    evs_iter_free(it);
    return cli_close(db, status);
}
