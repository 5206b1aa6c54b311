/*
 * cmd_verify.c -- `evs verify`: check every log record and the index.
 */
#include "cli.h"

#include <inttypes.h>

static const char help[] =
    "usage: evs verify\n"
    "\n"
    "Check every log record's checksum, that positions are contiguous, and\n"
    "the index against the log. Prints each problem on a line of its own,\n"
    "then 'verify: N records checked, M problems'; a progress line goes to\n"
    "standard error when it is a terminal. Exit status 0 when the\n"
    "store is clean, 1 when anything is damaged (or the store cannot be\n"
    "opened because it is).\n"
    "\n"
    "Options:\n"
    CLI_HELP_SHARED
    "\n"
    "Exit status: 0 clean, 1 damage found (or another error), 2 usage\n"
    "error.\n";

static const cli_cmd cmd = {"verify", help, cli_no_options};

typedef struct verify_ctx {
    uint64_t nproblems;
    cli_progress progress;
} verify_ctx;

static void on_problem(void *ctx, const char *problem)
{
    verify_ctx *v = ctx;

    cli_progress_end(&v->progress); /* a problem line is not overwritten */
    printf("%s\n", problem);
    fflush(stdout);
    v->nproblems++;
}

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
    verify_ctx *v = ctx;

    cli_progress_show(&v->progress, done, done, total);
}

int cmd_verify(cli_ctx *cx, int argc, char **argv)
{
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    uint64_t checked = 0;
    verify_ctx v = {0};
    evs_db *db = NULL;
    int rc, status;

    cli_getopt_start();
    if ((status = cli_parse_opts(cx, NULL, &cmd, argc, argv)) >= 0)
        return status;
    /* Not cli_open: damage that stops the store from opening is a finding
     * here, not a failure (and a missing store keeps the library's
     * message). */
    if ((status = cli_no_args("verify", argc, argv)) != 0 ||
        (status = cli_check_db(cx)) != 0)
        return status;

    /* Read-only: verify reports what is on disk and repairs nothing (a
     * torn tail is left for the next writer's recovery to truncate). */
    o.flags = EVS_OPEN_READONLY;
    int progress_shown = 0;
    cli_open_options(&o, &progress_shown);
    rc = evs_open(&db, cx->db_uri, &o);
    if (rc == EVS_ECORRUPT) {
        /* Damage found while opening is what verify is for: report it as
         * a problem, not as a failure to run. */
        printf("%s\n", cli_lib_detail(rc));
        printf("verify: 0 records checked, 1 problems (the store cannot be "
               "opened)\n");
        fflush(stdout);
        return CLI_EXIT_FAIL;
    }
    if (rc < 0)
        return cli_lib_err(rc, NULL);

    cli_progress_start(&v.progress, "verify");
    rc = evs_verify_ex(&checked, db, on_problem, on_progress, &v);
    cli_progress_end(&v.progress);
    if (rc < 0 && rc != EVS_ECORRUPT) {
        status = cli_lib_err(rc, "verify");
    } else {
        if (rc == EVS_ECORRUPT && v.nproblems == 0) {
            /* Damage without a callback line: print the summary reason. */
            printf("%s\n", cli_lib_detail(rc));
            v.nproblems = 1;
        }
        printf("verify: %" PRIu64 " records checked, %" PRIu64 " problems\n",
               checked, v.nproblems);
        status = v.nproblems > 0 ? CLI_EXIT_FAIL : CLI_EXIT_OK;
    }
    if (fflush(stdout) != 0)
        status = CLI_EXIT_FAIL;
    return cli_close(db, status);
}
