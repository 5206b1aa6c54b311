/*
 * cmd_token_at.c -- `evs token-at TIME`: the tracking token just before
 * the first event recorded at or after TIME.
 */
#include "cli.h"

#include <inttypes.h>
#include <string.h>

static const char help[] =
    "usage: evs token-at TIME\n"
    "\n"
    "Print the tracking token at TIME: the global position just before the\n"
    "first event (in position order) recorded at or after TIME, or the head\n"
    "when no event is that recent. Reading after it ('evs subscribe --after\n"
    "N', or 'evs all --from N+1') starts at that event.\n"
    "\n"
    "TIME is RFC 3339 / ISO 8601 with a UTC offset, e.g.\n"
    "2026-11-22T10:00:00Z or 2026-11-22T11:00:00.5+01:00; a date\n"
    "2026-11-22 (midnight UTC); or microseconds since the Unix epoch.\n"
    "\n"
    "Tokens are global positions: the token is the same whatever the\n"
    "tenant, and any tenant's reader may use it.\n"
    "\n"
    "Options:\n"
    CLI_HELP_SHARED
    CLI_HELP_EXIT;

static const cli_cmd cmd = {"token-at", help, cli_no_options};

/* Digits (optionally after '-'): µs since the epoch; YYYY-MM-DD: that
 * day's midnight UTC; else RFC 3339 by cli_time_parse. */
static int parse_time(int64_t *us, const char *s)
{
    size_t n = strlen(s);

    if (cli_parse_i64(s, us) == 0)
        return 0;
    if (n == 10) {
        char full[32];

        snprintf(full, sizeof full, "%sT00:00:00Z", s);
        return cli_time_parse(us, full, strlen(full));
    }
    return cli_time_parse(us, s, n);
}

int cmd_token_at(cli_ctx *cx, int argc, char **argv)
{
    int64_t when;
    uint64_t token = 0;
    int rc, status;
    evs_db *db = NULL;

    cli_getopt_start();
    if ((status = cli_parse_opts(cx, NULL, &cmd, argc, argv)) >= 0)
        return status;
    if (argc - optind < 1)
        return cli_usage("token-at", "missing TIME");
    if (argc - optind > 1)
        return cli_usage("token-at", "too many arguments ('%s')",
                         argv[optind + 1]);
    if (parse_time(&when, argv[optind]) < 0)
        return cli_usage("token-at", "'%s' is not a time (RFC 3339 such as "
                         "2026-11-22T10:00:00Z, a date 2026-11-22, or "
                         "microseconds since the epoch)", argv[optind]);
    if ((status = cli_open(&db, cx, EVS_OPEN_READONLY)) != 0)
        return status;
    rc = evs_token_at(&token, db, when);
    if (rc < 0)
        status = cli_lib_err(rc, NULL);
    else
        printf("%" PRIu64 "\n", token);
    return cli_close(db, status);
}
