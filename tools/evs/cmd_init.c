/*
 * cmd_init.c -- `evs init`: create the store if it is missing (an
 * embedded store's directory, or the evstore schema in a PostgreSQL
 * database), and say what is there. Idempotent.
 */
#include "cli.h"

#include <inttypes.h>
#include <string.h>

static const char help[] =
    "usage: evs init\n"
    "\n"
    "Create the store named by --db (or $EVS_DB, or ./evstore-data) when it\n"
    "does not exist, then print\n"
    "  {\"store\":...,\"backend\":\"embedded\"|\"postgresql\",\"events\":N}\n"
    "An embedded store is a directory (made with its parents' permission).\n"
    "On PostgreSQL the database must exist (createdb NAME, or CREATE\n"
    "DATABASE); init creates the schema evstore in it, or upgrades an\n"
    "older one (docs/POSTGRES.md). A store that exists is left as it is:\n"
    "init may be run any number of times.\n"
    "\n"
    "Options:\n"
    CLI_HELP_SHARED
    CLI_HELP_EXIT_WRITER;

static const cli_cmd cmd = {"init", help, cli_no_options};

int cmd_init(cli_ctx *cx, int argc, char **argv)
{
    evs_db *db = NULL;
    evs_stats st;
    int rc, status;
    int pg = strncmp(cx->db_uri, "postgresql://", 13) == 0 ||
             strncmp(cx->db_uri, "postgres://", 11) == 0;

    cli_getopt_start();
    if ((status = cli_parse_opts(cx, NULL, &cmd, argc, argv)) >= 0)
        return status;
    if ((status = cli_no_args("init", argc, argv)) != 0 ||
        (status = cli_open(&db, cx, EVS_OPEN_CREATE)) != 0)
        return status;
    if ((rc = evs_stats_get(&st, db)) < 0) {
        status = cli_lib_err(rc, "init");
    } else {
        fputs("{\"store\":", stdout);
        cli_buf b = {0};
        cli_json_put_str(&b, cx->db_uri, strlen(cx->db_uri));
        fwrite(b.p, 1, b.len, stdout);
        cli_buf_free(&b);
        printf(",\"backend\":\"%s\",\"events\":%" PRIu64 "}\n",
               pg ? "postgresql" : "embedded", st.events);
    }
    return cli_close(db, status);
}
