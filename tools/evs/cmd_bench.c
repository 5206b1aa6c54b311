/*
 * cmd_bench.c -- `evs bench`: the performance validation suite
 * (docs/BENCH.md). Parses and checks the options (every usage error before
 * anything runs), then hands over to the runner (tools/bench/suite.c).
 */
#include "cli.h"

#include "suite.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: evs bench [OPTIONS]\n"
    "\n"
    "Measure evstore: generate realistic data (default 1,000,000 events)\n"
    "into a fresh store, run every scenario at several concurrency levels,\n"
    "and write OUT/report.md (targets with verdicts, per-level tables,\n"
    "environment), OUT/report.json (every figure) and PNG plots. The\n"
    "Markdown summary is printed at the end. docs/BENCH.md explains it all.\n"
    "\n"
    "Options:\n"
    "  --db URI          run on this store instead of a fresh one; a store\n"
    "                    that holds events needs --force ($EVS_DB is\n"
    "                    ignored: the bench never writes into a store by\n"
    "                    default)\n"
    "  --force           allow a --db store that is not empty\n"
    "  --dir DIR         where the fresh store's temporary directory goes\n"
    "                    (default: OUT)\n"
    "  --out DIR         results directory, created (default bench-results)\n"
    "  --scenarios LIST  only these scenarios, comma-separated (default all;\n"
    "                    --list names them)\n"
    "  --threads LIST    concurrency levels for every scenario, e.g. 1,8,64\n"
    "                    (default: each scenario's own)\n"
    "  --events N        events generated before the scenarios (default\n"
    "                    1000000; --quick 50000)\n"
    "  --seconds S       measured seconds per level (default 5; --quick 0.5)\n"
    "  --warmup S        warm-up seconds per level, excluded (default 1;\n"
    "                    --quick 0.2)\n"
    "  --seed N          seed of the generator and the scenarios (default 1)\n"
    "  --quick           the short run: under a minute on 2 cores\n"
    "  --keep            keep the fresh store (its path is printed)\n"
    "  --no-plots        do not run gnuplot\n"
    "  --peers LIST      the alternatives measured in the same run on the\n"
    "                    same data, for the side-by-side ratios: sqlite,\n"
    "                    postgres (raw PostgreSQL with pgbench), messagedb\n"
    "                    (Message DB); none: evstore alone. Default: every\n"
    "                    peer that can run here (sqlite; the PostgreSQL\n"
    "                    ones when a server is given: --pg-uri, --db\n"
    "                    postgresql://..., or --pg-throwaway)\n"
    "  --pg-uri URI      the PostgreSQL server of the postgres and messagedb\n"
    "                    peers (the role needs CREATEDB; each peer works in\n"
    "                    a fresh database, dropped after)\n"
    "  --pg-throwaway    start a throwaway PostgreSQL 15 cluster for them\n"
    "                    (under --dir, else --out; Unix socket only, fsync\n"
    "                    on), stopped and deleted after\n"
    "  --transport T     grpc: also run the scenarios over gRPC against an\n"
    "                    `evs serve` the bench starts (default in a full\n"
    "                    run; with --quick, a small pass); none: in-process\n"
    "                    only (default with --quick)\n"
    "  --label TEXT      recorded in the report, e.g. the git commit\n"
    "                    (default $EVS_BENCH_LABEL)\n"
    "  --list            print the scenarios and exit\n"
    "  -h, --help        this help\n"
    "\n"
    "Exit status: 0 done; 1 cannot run (results directory not writable,\n"
    "store cannot be opened or is not empty without --force, data not\n"
    "loaded); 2 usage error; 3 a scenario failed (setup, an operation\n"
    "error, outcomes that do not add up, or its check); 130/143 stopped by\n"
    "SIGINT/SIGTERM (the fresh store removed, no report written).\n";

enum {
    OPT_FORCE = 0x100,
    OPT_DIR,
    OPT_OUT,
    OPT_SCENARIOS,
    OPT_THREADS,
    OPT_EVENTS,
    OPT_SECONDS,
    OPT_WARMUP,
    OPT_SEED,
    OPT_QUICK,
    OPT_KEEP,
    OPT_NO_PLOTS,
    OPT_LABEL,
    OPT_LIST,
    OPT_PEERS,
    OPT_TRANSPORT,
    OPT_PG_URI,
    OPT_PG_THROWAWAY
};

static const struct option options[] = {
    {"force", no_argument, NULL, OPT_FORCE},
    {"dir", required_argument, NULL, OPT_DIR},
    {"out", required_argument, NULL, OPT_OUT},
    {"scenarios", required_argument, NULL, OPT_SCENARIOS},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"events", required_argument, NULL, OPT_EVENTS},
    {"seconds", required_argument, NULL, OPT_SECONDS},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"seed", required_argument, NULL, OPT_SEED},
    {"quick", no_argument, NULL, OPT_QUICK},
    {"keep", no_argument, NULL, OPT_KEEP},
    {"no-plots", no_argument, NULL, OPT_NO_PLOTS},
    {"label", required_argument, NULL, OPT_LABEL},
    {"list", no_argument, NULL, OPT_LIST},
    {"peers", required_argument, NULL, OPT_PEERS},
    {"transport", required_argument, NULL, OPT_TRANSPORT},
    {"pg-uri", required_argument, NULL, OPT_PG_URI},
    {"pg-throwaway", no_argument, NULL, OPT_PG_THROWAWAY},
    CLI_OPTIONS_END,
};

static const cli_cmd cmd = {"bench", help, options};

/* Every scenario's name, comma-separated, for messages. */
static void scenario_names(char *out, size_t size)
{
    size_t len = 0;
    out[0] = 0;
    for (int i = 0; bench_scenarios[i] && len < size; i++)
        len += (size_t)snprintf(out + len, size - len, "%s%s", i ? ", " : "",
                                bench_scenarios[i]->name);
}

static int parse_scenarios(bench_options *o, const char *list)
{
    const char *p = list;
    char name[128], all[2048];

    o->nscenarios = 0;
    for (;;) {
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof name)
            return cli_usage("bench", "--scenarios: '%s' is not a "
                             "comma-separated list of names", list);
        memcpy(name, p, len);
        name[len] = 0;
        const bench_scenario *sc = bench_scenario_find(name);
        if (!sc) {
            scenario_names(all, sizeof all);
            return cli_usage("bench", "--scenarios: unknown scenario '%s' "
                             "(scenarios: %s)", name, all);
        }
        int dup = 0;
        for (int i = 0; i < o->nscenarios; i++)
            dup |= o->scenarios[i] == sc;
        if (!dup) {
            if (o->nscenarios == BENCH_MAX_SCENARIOS)
                return cli_usage("bench", "--scenarios: too many names");
            o->scenarios[o->nscenarios++] = sc;
        }
        p += len;
        if (!*p)
            break;
        p++; /* the comma */
    }
    return 0;
}

/* --peers: sqlite, postgres, messagedb, or none alone. */
static int parse_peers(bench_options *o, const char *list)
{
    const char *p = list;
    char name[64];
    int none = 0;

    o->peers = 0;
    o->peers_given = 1;
    for (;;) {
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof name)
            return cli_usage("bench", "--peers: '%s' is not a "
                             "comma-separated list of peers (sqlite, "
                             "postgres, messagedb, or none)", list);
        memcpy(name, p, len);
        name[len] = 0;
        if (strcmp(name, "sqlite") == 0)
            o->peers |= BENCH_PEER_SQLITE;
        else if (strcmp(name, "postgres") == 0)
            o->peers |= BENCH_PEER_POSTGRES;
        else if (strcmp(name, "messagedb") == 0)
            o->peers |= BENCH_PEER_MESSAGEDB;
        else if (strcmp(name, "none") == 0)
            none = 1;
        else
            return cli_usage("bench", "--peers: unknown peer '%s' "
                             "(peers: sqlite, postgres, messagedb, or "
                             "none)", name);
        p += len;
        if (!*p)
            break;
        p++;
    }
    if (none && o->peers)
        return cli_usage("bench", "--peers: 'none' cannot be combined with "
                         "a peer ('%s')", list);
    return 0;
}

static int parse_threads(bench_options *o, const char *list)
{
    const char *p = list;
    char num[32];

    o->nthreads = 0;
    for (;;) {
        size_t len = strcspn(p, ",");
        uint64_t v;
        if (len == 0 || len >= sizeof num)
            return cli_usage("bench", "--threads: '%s' is not a "
                             "comma-separated list of thread counts", list);
        memcpy(num, p, len);
        num[len] = 0;
        if (cli_parse_u64(num, &v) != 0 || v < 1 || v > 4096)
            return cli_usage("bench", "--threads: '%s' is not a thread "
                             "count (1..4096)", num);
        if (o->nthreads == BENCH_MAX_LEVELS)
            return cli_usage("bench", "--threads: at most %d levels",
                             BENCH_MAX_LEVELS);
        o->threads[o->nthreads++] = (int)v;
        p += len;
        if (!*p)
            break;
        p++;
    }
    return 0;
}

static int parse_seconds(double *out, const char *flag, const char *s,
                         int zero_ok)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < 0 ||
        (!zero_ok && v == 0) || v > 3600)
        return cli_usage("bench", "%s: '%s' is not a number of seconds "
                         "(%s 3600)", flag, s, zero_ok ? "0 to" : "over 0, up to");
    *out = v;
    return 0;
}

/* The command line, for the report. */
static char *command_line(int argc, char **argv)
{
    cli_buf b = {0};
    cli_buf_puts(&b, "evs");
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        cli_buf_putc(&b, ' ');
        if (a[0] && strcspn(a, " \t'\"$`\\|&;<>()*?") == strlen(a)) {
            cli_buf_puts(&b, a);
            continue;
        }
        cli_buf_putc(&b, '\'');
        for (; *a; a++) {
            if (*a == '\'')
                cli_buf_puts(&b, "'\\''");
            else
                cli_buf_putc(&b, *a);
        }
        cli_buf_putc(&b, '\'');
    }
    cli_buf_putc(&b, 0);
    return b.p;
}

int cmd_bench(cli_ctx *cx, int argc, char **argv)
{
    bench_options o;
    const char *db_before = cx->db_uri;
    int c, stop, status, list = 0;
    uint64_t u;

    bench_options_init(&o);
    cli_getopt_start();
    while ((c = cli_next_opt(&stop, cx, NULL, &cmd, argc, argv)) != -1) {
        status = 0;
        switch (c) {
        case OPT_FORCE: o.force = 1; break;
        case OPT_DIR:
        case OPT_OUT:
            if (!optarg[0])
                return cli_usage("bench", "--%s: empty path",
                                 c == OPT_DIR ? "dir" : "out");
            *(c == OPT_DIR ? &o.dir : &o.out) = optarg;
            break;
        case OPT_SCENARIOS: status = parse_scenarios(&o, optarg); break;
        case OPT_THREADS: status = parse_threads(&o, optarg); break;
        case OPT_EVENTS:
            if (cli_parse_u64(optarg, &u) != 0 || u < 1 ||
                u > 10000000000ull)
                return cli_usage("bench", "--events: '%s' is not a count of "
                                 "events (1..10000000000)", optarg);
            o.events = u;
            break;
        case OPT_SECONDS:
            status = parse_seconds(&o.seconds, "--seconds", optarg, 0);
            break;
        case OPT_WARMUP:
            status = parse_seconds(&o.warmup, "--warmup", optarg, 1);
            break;
        case OPT_SEED:
            if (cli_parse_u64(optarg, &u) != 0)
                return cli_usage("bench", "--seed: '%s' is not a number >= "
                                 "0", optarg);
            o.seed = u;
            break;
        case OPT_QUICK: o.quick = 1; break;
        case OPT_KEEP: o.keep = 1; break;
        case OPT_NO_PLOTS: o.plots = 0; break;
        case OPT_LABEL: o.label = optarg; break;
        case OPT_LIST: list = 1; break;
        case OPT_PEERS: status = parse_peers(&o, optarg); break;
        case OPT_PG_URI:
            if (!optarg[0])
                return cli_usage("bench", "--pg-uri: empty URI");
            o.pg_uri = optarg;
            break;
        case OPT_PG_THROWAWAY: o.pg_throwaway = 1; break;
        case OPT_TRANSPORT:
            if (strcmp(optarg, "grpc") == 0)
                o.transport = BENCH_TRANSPORT_GRPC;
            else if (strcmp(optarg, "none") == 0)
                o.transport = BENCH_TRANSPORT_NONE;
            else
                return cli_usage("bench", "--transport: unknown transport "
                                 "'%s' (grpc, or none)", optarg);
            break;
        default: return CLI_EXIT_USAGE;
        }
        if (status != 0)
            return status;
    }
    if (stop >= 0)
        return stop;
    if ((status = cli_no_args("bench", argc, argv)) != 0)
        return status;
    if (list) {
        for (int i = 0; bench_scenarios[i]; i++)
            printf("%-20s %s\n", bench_scenarios[i]->name,
                   bench_scenarios[i]->title ? bench_scenarios[i]->title
                                             : "");
        return CLI_EXIT_OK;
    }
    /* --db counts only on the command line: after the command (cx->db_uri
     * changed while parsing) or before it (cx->db_given, set by main). */
    if (cx->db_uri != db_before || cx->db_given) {
        if ((status = cli_check_db(cx)) != 0)
            return status;
        o.db_uri = cx->db_uri;
    } else if (o.force) {
        return cli_usage("bench", "--force needs --db (the default store "
                         "is a fresh one)");
    }
    /* The PostgreSQL peers' server: one source at most; asked for by name
     * without one, say how to give one (by default they are skipped and
     * the report says why). */
    if (o.pg_uri && o.pg_throwaway)
        return cli_usage("bench", "--pg-uri and --pg-throwaway: give one "
                         "PostgreSQL server for the peers, not both");
    int pg_store = o.db_uri && (strncmp(o.db_uri, "postgresql://", 13) == 0 ||
                                strncmp(o.db_uri, "postgres://", 11) == 0);
    if (o.peers_given && (o.peers & BENCH_PEERS_PG) && !o.pg_uri &&
        !o.pg_throwaway && !pg_store)
        return cli_usage("bench", "--peers %s needs a PostgreSQL server: "
                         "give --pg-uri URI, run the bench with --db "
                         "postgresql://..., or add --pg-throwaway",
                         (o.peers & BENCH_PEER_POSTGRES) ? "postgres"
                                                         : "messagedb");
    char *line = command_line(argc, argv);
    o.command = line;
    status = bench_suite_run(&o);
    free(line);
    return status;
}
