/*
 * cmd_stats.c -- `evs stats`: counts and sizes of the store, as JSON.
 */
#include "cli.h"

#include <inttypes.h>

static const char help[] =
    "usage: evs stats\n"
    "\n"
    "Print one JSON object: events, streams, tenants, head_position,\n"
    "log_bytes, index_bytes, segments and bytes_on_disk (log + index).\n"
    "\n"
    "Options:\n"
    CLI_HELP_SHARED
    CLI_HELP_EXIT;

static const cli_cmd cmd = {"stats", help, cli_no_options};

int cmd_stats(cli_ctx *cx, int argc, char **argv)
{
    evs_stats st;
    evs_db *db = NULL;
    int rc, status;

    cli_getopt_start();
    if ((status = cli_parse_opts(cx, NULL, &cmd, argc, argv)) >= 0)
        return status;
    if ((status = cli_no_args("stats", argc, argv)) != 0 ||
        (status = cli_open(&db, cx, EVS_OPEN_READONLY)) != 0)
        return status;
    rc = evs_stats_get(&st, db);
    if (rc < 0) {
        status = cli_lib_err(rc, NULL);
    } else {
        printf("{\"events\":%" PRIu64 ",\"streams\":%" PRIu64
               ",\"tenants\":%" PRIu64 ",\"head_position\":%" PRIu64
               ",\"log_bytes\":%" PRIu64 ",\"index_bytes\":%" PRIu64
               ",\"segments\":%" PRIu64 ",\"bytes_on_disk\":%" PRIu64 "}\n",
               st.events, st.streams, st.tenants, st.head_position,
               st.log_bytes, st.index_bytes, st.segments,
               st.log_bytes + st.index_bytes);
    }
    return cli_close(db, status);
}
