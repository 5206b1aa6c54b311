/*
 * cmd_subscribe.c -- `evs subscribe`: a tracking reader on the command
 * line. Prints the events matching a filter (tenant, category, types or
 * a DCB query, consumer group member I of N) catch-up-then-live, and
 * keeps its token in a named checkpoint.
 *
 * Why the tracking-read loop of cli_follow.c and not evs_subscribe: the
 * CLI must stop exactly after --limit events and store, as the
 * checkpoint, the token after the last event it printed; a subscription
 * delivers whole batches and checkpoints them whole. And the process
 * holds the store read-only while it runs, so `evs append` and other
 * writers go on beside it; the checkpoint, which needs a writable open,
 * is stored once, when the subscriber stops (evs_subscribe would need the
 * write lock for the whole run).
 */
#include "cli.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: evs subscribe [options]\n"
    "\n"
    "Print the events of the default tenant (or of --tenant) that match the\n"
    "filter, oldest first, one JSON object per line (as 'evs all' prints\n"
    "them), then wait for new ones and print them as they are committed,\n"
    "until Ctrl-C (SIGINT or SIGTERM: exit 0) or --limit events. On\n"
    "stopping, prints 'token: N' on standard error: every event up to N has\n"
    "been considered; '--after N' resumes there.\n"
    "\n"
    "Filter (no filter: every event of the tenant):\n"
    "  --category C      events of streams of category C (the stream name\n"
    "                    up to the first '-': account-42 is in 'account')\n"
    "  --type T          events of type T (repeatable: any of them)\n"
    "  --query JSON      a DCB query as in 'evs query --query' instead of\n"
    "                    --category and --type (a '$category:C' tag selects\n"
    "                    a category there)\n"
    "  --group I/N       consumer group member I of N (0 <= I < N <= 1024):\n"
    "                    only the events of the streams that hash to I; the\n"
    "                    N members together see every event once, each\n"
    "                    stream's in order\n"
    "\n"
    "Where to start and stop:\n"
    "  --checkpoint NAME start after the token stored as NAME (in the\n"
    "                    tenant) if there is one, else after --after; when\n"
    "                    stopping, store the token after the last event\n"
    "                    printed as NAME (if any was printed, or NAME is\n"
    "                    new). This opens the store for writing for a\n"
    "                    moment, waiting up to --wait (evs --help) for\n"
    "                    another process that writes, else exit 4\n"
    "  --after TOKEN     start after this token (exclusive; default 0: from\n"
    "                    the first event); see 'evs tail', 'evs token-at'\n"
    "  --limit N         stop after N events (0 = no limit, the default)\n"
    "  --tenant NAME     tenant (default: the default tenant)\n"
    CLI_HELP_SHARED
    "\n"
    "Exit status: 0 ok (also when stopped by Ctrl-C), 1 error (also: the\n"
    "checkpoint could not be stored), 2 usage error, 4 store busy (the\n"
    "checkpoint: another process still writes the store after --wait).\n";

enum {
    OPT_TENANT = 0x100,
    OPT_CATEGORY,
    OPT_TYPE,
    OPT_QUERY,
    OPT_GROUP,
    OPT_CHECKPOINT,
    OPT_AFTER,
    OPT_LIMIT
};

static const struct option options[] = {
    {"tenant", required_argument, NULL, OPT_TENANT},
    {"category", required_argument, NULL, OPT_CATEGORY},
    {"type", required_argument, NULL, OPT_TYPE},
    {"query", required_argument, NULL, OPT_QUERY},
    {"group", required_argument, NULL, OPT_GROUP},
    {"checkpoint", required_argument, NULL, OPT_CHECKPOINT},
    {"after", required_argument, NULL, OPT_AFTER},
    {"limit", required_argument, NULL, OPT_LIMIT},
    CLI_OPTIONS_END,
};

static const cli_cmd cmd = {"subscribe", help, options};

#define MAX_GROUP_SIZE 1024 /* evs_tracking.group_size */

/* "I/N" with 0 <= I < N <= MAX_GROUP_SIZE. Returns 0 or a usage error. */
static int parse_group(uint32_t *member, uint32_t *size, const char *s)
{
    const char *slash = strchr(s, '/');
    char ibuf[24];
    uint64_t i, n;

    if (slash == NULL || (size_t)(slash - s) >= sizeof ibuf)
        return cli_usage("subscribe", "--group: '%s' is not I/N (member I "
                         "of a group of N, e.g. 0/4)", s);
    memcpy(ibuf, s, (size_t)(slash - s));
    ibuf[slash - s] = '\0';
    if (cli_parse_u64(ibuf, &i) < 0 || cli_parse_u64(slash + 1, &n) < 0)
        return cli_usage("subscribe", "--group: '%s' is not I/N (member I "
                         "of a group of N, e.g. 0/4)", s);
    if (n < 1 || n > MAX_GROUP_SIZE)
        return cli_usage("subscribe", "--group: the group size must be "
                         "1..%d, not %" PRIu64, MAX_GROUP_SIZE, n);
    if (i >= n)
        return cli_usage("subscribe", "--group: member %" PRIu64 " is not "
                         "below the group size %" PRIu64 " (members are "
                         "0..%" PRIu64 ")", i, n, n - 1);
    *member = (uint32_t)i;
    *size = (uint32_t)n;
    return 0;
}

/* Store the token as the checkpoint: the read-only handle is closed, the
 * store opened for writing just for this. */
static int store_checkpoint(evs_db **db, const cli_ctx *cx,
                            const char *tenant, const char *name,
                            uint64_t token)
{
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    int rc;

    evs_close(*db);
    *db = NULL;
    o.flags = 0; /* writable; the store exists */
    o.busy_timeout_ms = cli_wait_ms; /* --wait: for a writer to close */
    rc = evs_open(db, cx->db_uri, &o);
    if (rc == 0)
        rc = evs_checkpoint_set(*db, tenant, name, token);
    if (rc < 0) {
        cli_err("subscribe: checkpoint %s not stored: %s (resume with "
                "--after %" PRIu64 ")", name, cli_lib_detail(rc), token);
        return rc == EVS_EBUSY ? CLI_EXIT_BUSY : CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

int cmd_subscribe(cli_ctx *cx, int argc, char **argv)
{
    evs_tracking t = EVS_TRACKING_INIT;
    cli_arena arena = {0};
    evs_query q;
    const char *json = NULL, *checkpoint = NULL;
    const char **types = NULL;
    size_t ntypes = 0;
    uint64_t after = 0, stored = 0;
    int c, rc, status, have_stored = 0;
    evs_db *db = NULL;
    cli_follow f;
    char err[320];

    memset(&f, 0, sizeof f);
    cli_getopt_start();
    while ((c = cli_next_opt(&status, cx, NULL, &cmd, argc, argv)) != -1) {
        switch (c) {
        case OPT_TENANT:
            t.tenant = optarg;
            break;
        case OPT_CATEGORY:
            t.category = optarg;
            break;
        case OPT_TYPE:
            types = cli_xrealloc(types, (ntypes + 1) * sizeof *types);
            types[ntypes++] = optarg;
            break;
        case OPT_QUERY:
            json = optarg;
            break;
        case OPT_GROUP:
            if ((status = parse_group(&t.group_member, &t.group_size,
                                      optarg)) != 0)
                goto out;
            break;
        case OPT_CHECKPOINT:
            checkpoint = optarg;
            break;
        case OPT_AFTER:
            if ((status = cli_parse_position(&after, "subscribe", "--after",
                                             optarg)) != 0)
                goto out;
            break;
        case OPT_LIMIT:
            if (cli_parse_u64(optarg, &f.limit) < 0) {
                status = cli_usage("subscribe", "--limit: '%s' is not a "
                                   "number >= 0", optarg);
                goto out;
            }
            break;
        }
    }
    if (status >= 0)
        goto out;
    if ((status = cli_no_args("subscribe", argc, argv)) != 0)
        goto out;
    if (json != NULL && (t.category != NULL || ntypes > 0)) {
        status = cli_usage("subscribe", "--query and --category/--type "
                           "exclude each other (put them in the query: "
                           "\"types\", and a \"$category:C\" tag)");
        goto out;
    }
    if (json != NULL) {
        if (cli_query_from_json(&q, &arena, json, strlen(json), err,
                                sizeof err) < 0) {
            status = cli_usage("subscribe", "--query: %s", err);
            goto out;
        }
        t.query = &q;
    }
    t.types = types;
    t.ntypes = ntypes;

    if ((status = cli_open(&db, cx, EVS_OPEN_READONLY)) != 0)
        goto out;
    if (checkpoint != NULL) {
        rc = evs_checkpoint_get(&stored, db, t.tenant, checkpoint);
        if (rc == 0) {
            have_stored = 1;
            after = stored;
        } else if (rc != EVS_ENOTFOUND) {
            status = cli_lib_err(rc, "subscribe");
            goto close;
        }
    }
    f.db = db;
    f.filter = &t;
    f.token = after;
    f.with_tenant = t.tenant != NULL && t.tenant[0] != '\0';
    f.what = "subscribe";
    cli_follow_signals();
    status = cli_follow_run(&f);
    /* After a read error the token is still that of the last batch
     * printed whole, so it is reported and stored as after a stop. After
     * a write error we cannot tell what reached the reader: the
     * checkpoint stays where it was (at-least-once). */
    if (status == CLI_EXIT_USAGE)
        goto close; /* a filter the library refused: nothing was read */
    if (!ferror(stdout))
        fprintf(stderr, "token: %" PRIu64 "\n", f.token);
    /* Stored when events were printed (or to create the checkpoint), not
     * when the token only moved over events that did not match: such a
     * run would write a checkpoint event each time (the token passes the
     * previous run's own checkpoint event) and need the write lock for
     * nothing; the next run merely reads those events again. */
    if (checkpoint != NULL && !ferror(stdout) && f.token > 0 &&
        (!have_stored || (f.count > 0 && f.token > stored))) {
        int st = store_checkpoint(&db, cx, t.tenant, checkpoint, f.token);

        if (status == CLI_EXIT_OK)
            status = st;
    }
close:
    status = cli_close(db, status);
out:
    free(types);
    cli_arena_reset(&arena);
    return status;
}
