/*
 * cmd_all.c -- `evs all`: print $all, the events in global order;
 * with --follow, then the events committed later, until Ctrl-C.
 */
#include "cli.h"

#include <string.h>

static const char help[] =
    "usage: evs all [options]\n"
    "\n"
    "Print the events of the store in global position order, one JSON\n"
    "object per line (see docs/CLI.md). Without --all-tenants only the\n"
    "default tenant's (or --tenant's) events, so positions may have gaps.\n"
    "When the default tenant has no events while other tenants do, standard\n"
    "error says which (standard output stays empty).\n"
    "\n"
    "Options:\n"
    "  --from POS      first global position to print (default: 1)\n"
    "  --from end      with --follow: only the events committed after it\n"
    "                  starts (it starts at the head)\n"
    "  --limit N       at most N events (0 = all, the default)\n"
    "  --tenant NAME   that tenant's events\n"
    "  --all-tenants   every tenant's events, each line with its tenant\n"
    "  --follow        then wait for new events and print them as they\n"
    "                  are committed, like 'tail -f', until Ctrl-C\n"
    "                  (SIGINT or SIGTERM: exit 0) or --limit events\n"
    CLI_HELP_SHARED
    CLI_HELP_EXIT;

enum { OPT_FROM = 0x100, OPT_LIMIT, OPT_FOLLOW };

static const struct option options[] = {
    {"from", required_argument, NULL, OPT_FROM},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {"follow", no_argument, NULL, OPT_FOLLOW},
    CLI_SCOPE_OPTIONS,
    CLI_OPTIONS_END,
};

static const cli_cmd cmd = {"all", help, options};

/* --follow: the same events by tracking reads, which wait for commits.
 * Position POS is the token POS - 1 (a token is exclusive). */
static int follow(evs_db *db, const cli_scope *scope, uint64_t from,
                  int from_end, uint64_t limit)
{
    evs_tracking t = EVS_TRACKING_INIT;
    cli_follow f;

    memset(&f, 0, sizeof f);
    if (scope->all_tenants)
        t.all_tenants = 1;
    else
        t.tenant = scope->tenant;
    f.db = db;
    f.filter = &t;
    f.token = from > 0 ? from - 1 : 0;
    if (from_end) {
        /* the store's head: tokens are global, whatever the tenant */
        int rc = evs_head_position(&f.token, db, NULL);
        if (rc < 0)
            return cli_lib_err(rc, "all");
    }
    f.limit = limit;
    f.with_tenant = scope->all_tenants || scope->tenant[0] != '\0';
    f.what = "all";
    cli_follow_signals();
    return cli_follow_run(&f);
}

int cmd_all(cli_ctx *cx, int argc, char **argv)
{
    cli_scope scope = CLI_SCOPE_INIT;
    uint64_t from = 0, limit = 0;
    int c, rc, status, follow_on = 0, from_end = 0;
    uint64_t count = 0;
    evs_db *db = NULL;
    evs_iter *it = NULL;

    cli_getopt_start();
    while ((c = cli_next_opt(&status, cx, &scope, &cmd, argc, argv)) != -1) {
        switch (c) {
        case OPT_FROM:
            from_end = strcmp(optarg, "end") == 0;
            if (!from_end &&
                (status = cli_parse_position(&from, "all", "--from",
                                             optarg)) != 0)
                return status;
            break;
        case OPT_LIMIT:
            if (cli_parse_u64(optarg, &limit) < 0)
                return cli_usage("all", "--limit: '%s' is not a number >= 0",
                                 optarg);
            break;
        case OPT_FOLLOW:
            follow_on = 1;
            break;
        }
    }
    if (status >= 0)
        return status;
    if ((status = cli_no_args("all", argc, argv)) != 0 ||
        (status = cli_scope_check(&scope, "all")) != 0)
        return status;
    if (from_end && !follow_on)
        return cli_usage("all", "--from end is for --follow (without it there "
                         "is nothing after the head to print)");
    if ((status = cli_open(&db, cx, EVS_OPEN_READONLY)) != 0)
        return status;
    if (follow_on) {
        if (!scope.have_tenant && !scope.all_tenants)
            cli_hint_tenants(db, "all");
        return cli_close(db, follow(db, &scope, from, from_end, limit));
    }
    rc = evs_read_all(&it, db, cli_scope_tenant(&scope), from, limit);
    if (rc < 0)
        status = cli_lib_err(rc, NULL);
    else
        status = cli_write_events(it, stdout,
                                  scope.all_tenants || scope.tenant[0] != '\0',
                                  "all", &count);
    if (status == CLI_EXIT_OK && count == 0 && !scope.have_tenant &&
        !scope.all_tenants)
        cli_hint_tenants(db, "all");
    evs_iter_free(it);
    return cli_close(db, status);
}
