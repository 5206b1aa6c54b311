/*
 * cmd_generate.c -- `evs generate`: fill a store with realistic
 * multi-tenant test data (tools/bench/gen.h; docs/BENCH.md "Data
 * generator"), deterministic for a seed, in batched appends.
 */
#include "cli.h"
#include "gen.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: evs generate [--events N] [--tenants N] [--seed N] [--months N]\n"
    "                    [--snapshot-every N] [--batch N] [--force] [--quiet]\n"
    "\n"
    "Append N realistic events (users, orders, products, accounts, carts,\n"
    "invoices with create -> modify -> finalize lifecycles; JSON payloads of\n"
    "70 % 100-500 B, 25 % 1-5 KB, 5 % 5-10 KB; correlation and causation\n"
    "metadata; tags; business-hour timestamps over the months before\n"
    "2026-11-01) across tenants tenant-00.. with an 80/20 split, and save a\n"
    "snapshot every --snapshot-every events of the accounts, orders and\n"
    "users. The same seed gives the same events, ids included. Refuses a\n"
    "store that holds events unless --force. Prints a JSON summary on\n"
    "standard output; progress on standard error.\n"
    "\n"
    "Options:\n"
    "  --events N          events to generate (default 1000000)\n"
    "  --tenants N         tenants, 1..1000 (default 10)\n"
    "  --seed N            seed (default 1)\n"
    "  --months N          months of timestamps, 1..600 (default 6)\n"
    "  --snapshot-every N  events between snapshots; 0 = none (default 100)\n"
    "  --batch N           events per atomic append, 1..65536 (default 1000)\n"
    "  --force             add to a store that already holds events\n"
    "  --quiet             no progress and no closing line on standard error\n"
    "  --db URI            the store (created when missing)\n"
    "  -h, --help          this help\n"
    "\n"
    "Exit status: 0 ok, 1 error (a failed append), 2 usage error (also: a\n"
    "store that holds events, without --force), 4 store busy (another\n"
    "process still writes it after --wait).\n";

enum {
    OPT_EVENTS = 0x100,
    OPT_TENANTS,
    OPT_SEED,
    OPT_MONTHS,
    OPT_SNAPSHOT_EVERY,
    OPT_BATCH,
    OPT_FORCE,
    OPT_QUIET
};

static const struct option options[] = {
    {"events", required_argument, NULL, OPT_EVENTS},
    {"tenants", required_argument, NULL, OPT_TENANTS},
    {"seed", required_argument, NULL, OPT_SEED},
    {"months", required_argument, NULL, OPT_MONTHS},
    {"snapshot-every", required_argument, NULL, OPT_SNAPSHOT_EVERY},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"force", no_argument, NULL, OPT_FORCE},
    {"quiet", no_argument, NULL, OPT_QUIET},
    CLI_OPTIONS_END,
};

static const cli_cmd cmd = {"generate", help, options};

/* A number flag in [lo, hi]: 0, or a usage error. */
static int number(uint64_t *out, const char *flag, const char *s, uint64_t lo,
                  uint64_t hi)
{
    if (cli_parse_u64(s, out) < 0 || *out < lo || *out > hi)
        return cli_usage("generate", "%s: '%s' is not a number from %" PRIu64
                         " to %" PRIu64, flag, s, lo, hi);
    return 0;
}

int cmd_generate(cli_ctx *cx, int argc, char **argv)
{
    gen_config cfg;
    gen_stats *st = NULL;
    evs_stats before;
    evs_db *db = NULL;
    uint64_t v;
    char err[512];
    int c, rc, status, force = 0, quiet = 0;

    gen_config_init(&cfg);
    cli_getopt_start();
    while ((c = cli_next_opt(&status, cx, NULL, &cmd, argc, argv)) != -1) {
        switch (c) {
        case OPT_EVENTS:
            if ((rc = number(&v, "--events", optarg, 1, UINT64_C(1) << 40)))
                return rc;
            cfg.events = v;
            break;
        case OPT_TENANTS:
            if ((rc = number(&v, "--tenants", optarg, 1, GEN_MAX_TENANTS)))
                return rc;
            cfg.tenants = (uint32_t)v;
            break;
        case OPT_SEED:
            if ((rc = number(&v, "--seed", optarg, 0, UINT64_MAX)))
                return rc;
            cfg.seed = v;
            break;
        case OPT_MONTHS:
            if ((rc = number(&v, "--months", optarg, 1, GEN_MAX_MONTHS)))
                return rc;
            cfg.months = (uint32_t)v;
            break;
        case OPT_SNAPSHOT_EVERY:
            if ((rc = number(&v, "--snapshot-every", optarg, 0, 1000000)))
                return rc;
            cfg.snapshot_every = (uint32_t)v;
            break;
        case OPT_BATCH:
            if ((rc = number(&v, "--batch", optarg, 1, GEN_MAX_BATCH)))
                return rc;
            cfg.batch_events = (uint32_t)v;
            break;
        case OPT_FORCE:
            force = 1;
            break;
        case OPT_QUIET:
            quiet = 1;
            break;
        }
    }
    if (status >= 0)
        return status;
    if ((status = cli_no_args("generate", argc, argv)) != 0)
        return status;
    cfg.progress = !quiet;

    if ((status = cli_open(&db, cx, EVS_OPEN_CREATE)) != 0)
        return status;
    if ((rc = evs_stats_get(&before, db)) < 0) {
        status = cli_lib_err(rc, "generate");
        goto out;
    }
    if (before.events > 0 && !force) {
        cli_err("generate: %s already holds %" PRIu64 " events; generate "
                "fills an empty store (--force to add to it anyway)",
                cx->db_uri, before.events);
        status = CLI_EXIT_USAGE;
        goto out;
    }
    /* Added to a store with events: stream numbers above its head, so
     * that they are new whatever generated the events there. */
    if (before.events > 0)
        cfg.stream_base = before.head_position;
    /* gen_stats is large (per-tenant counts): not on the stack. */
    st = cli_xmalloc(sizeof *st);
    rc = gen_load(db, &cfg, st, err, sizeof err);
    if (rc < 0) {
        cli_err("generate: %s", err);
        status = CLI_EXIT_FAIL;
        goto out;
    }
    printf("{\"events\":%" PRIu64 ",\"streams\":%" PRIu64
           ",\"snapshots\":%" PRIu64 ",\"tenants\":%" PRIu32
           ",\"appends\":%" PRIu64 ",\"data_bytes\":%" PRIu64
           ",\"metadata_bytes\":%" PRIu64 ",\"seed\":%" PRIu64
           ",\"seconds\":%.3f,\"events_per_s\":%.0f}\n",
           st->events, st->streams, st->snapshots, st->tenants, st->appends,
           st->data_bytes, st->metadata_bytes, cfg.seed, st->seconds,
           st->seconds > 0 ? (double)st->events / st->seconds : 0.0);
    if (!quiet)
        fprintf(stderr, "generated %" PRIu64 " events in %" PRIu64
                " streams of %" PRIu32 " tenants, %" PRIu64 " snapshots, "
                "%.1f MB of data and metadata, in %.1f s (%.0f events/s)\n",
                st->events, st->streams, st->tenants, st->snapshots,
                (double)(st->data_bytes + st->metadata_bytes) / 1e6,
                st->seconds,
                st->seconds > 0 ? (double)st->events / st->seconds : 0.0);
    fflush(stdout);
out:
    free(st);
    return cli_close(db, status);
}
