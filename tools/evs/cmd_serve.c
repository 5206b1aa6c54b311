/*
 * cmd_serve.c -- `evs serve`: the store as a network server (tools/serve,
 * docs/SERVER.md). This file reads the options and the configuration
 * file, opens the store, and hands both to serve_run.
 */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

static const char help[] =
    "usage: evs serve [--db URI] [--listen ADDR:PORT] [--http ADDR:PORT|off]\n"
    "                 [--tls-cert FILE --tls-key FILE] [--api-keys FILE]\n"
    "                 [--users FILE [--insecure-basic-auth]]\n"
    "                 [--config FILE] [--insecure] [LIMITS]\n"
    "       evs serve --hash-password < PASSWORD\n"
    "\n"
    "Serve the store to many clients until SIGTERM or SIGINT (a graceful\n"
    "stop: appends in flight finish, subscriptions end with UNAVAILABLE).\n"
    "SIGHUP re-reads the API-keys and users files. gRPC (UmaDB's\n"
    "umadb.v1.DCB API and grpc.health.v1.Health) on --listen, HTTP/1.1\n"
    "(/metrics, /health, the HTTP/JSON DCB API, Server-Sent Events) on\n"
    "--http. One log line per\n"
    "start, stop and connection error, on standard error. docs/SERVER.md\n"
    "has the protocols, the mapping onto evstore and the limits.\n"
    "\n"
    "Options:\n"
    "  --listen ADDR:PORT      gRPC (default 127.0.0.1:50051)\n"
    "  --http ADDR:PORT|off    HTTP (default 127.0.0.1:8080)\n"
    "  --tls-cert FILE         PEM certificate chain: serve TLS on both\n"
    "  --tls-key FILE          its PEM private key\n"
    "  --api-keys FILE         require 'authorization: Bearer KEY' (format in\n"
    "                          docs/SERVER.md); default: no authentication\n"
    "  --users FILE            users of KurrentDB's clients: basic credentials\n"
    "                          'NAME HASH [tenants=..] [read-only|read-write]'\n"
    "                          per line (docs/SERVER.md); needs TLS\n"
    "  --insecure-basic-auth   accept --users' basic credentials without TLS\n"
    "  --hash-password         print the hash of the password on standard\n"
    "                          input (one line), for the users file, and exit\n"
    "  --insecure              allow a non-loopback address without TLS\n"
    "  --config FILE           read options from FILE: one 'name = value'\n"
    "                          per line (names as the long options without\n"
    "                          '--', 'insecure = true'); the command line wins\n"
    "Limits (defaults in brackets):\n"
    "  --workers N             threads running store calls [64]\n"
    "  --max-message-bytes N   largest request message [4194304]\n"
    "  --max-streams N         concurrent calls per gRPC connection [100]\n"
    "  --max-connections N     open HTTP connections [10000]\n"
    "  --idle-timeout SECONDS  close a connection idle this long [300]\n"
    "  --keepalive SECONDS     ping an idle gRPC connection this often [60]\n"
    "  --subscriber-buffer N   bytes of events per message to a subscriber,\n"
    "                          the most one slow subscriber holds [1048576]\n"
    "The tenant of a call is its 'evs-tenant' header (absent: the default).\n"
    CLI_HELP_SHARED
    "\n"
    "Exit status: 0 stopped by a signal, 1 could not start or stop cleanly,\n"
    "2 usage error, 4 the store is busy (another process writes it).\n";

enum {
    OPT_LISTEN = 0x100,
    OPT_HTTP,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_API_KEYS,
    OPT_INSECURE,
    OPT_CONFIG,
    OPT_WORKERS,
    OPT_MAX_MESSAGE,
    OPT_MAX_STREAMS,
    OPT_MAX_CONNECTIONS,
    OPT_IDLE,
    OPT_KEEPALIVE,
    OPT_SUB_BUFFER,
    OPT_USERS,
    OPT_INSECURE_BASIC,
    OPT_HASH_PASSWORD,
};

static const struct option options[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"http", required_argument, NULL, OPT_HTTP},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"api-keys", required_argument, NULL, OPT_API_KEYS},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"users", required_argument, NULL, OPT_USERS},
    {"insecure-basic-auth", no_argument, NULL, OPT_INSECURE_BASIC},
    {"hash-password", no_argument, NULL, OPT_HASH_PASSWORD},
    {"config", required_argument, NULL, OPT_CONFIG},
    {"workers", required_argument, NULL, OPT_WORKERS},
    {"max-message-bytes", required_argument, NULL, OPT_MAX_MESSAGE},
    {"max-streams", required_argument, NULL, OPT_MAX_STREAMS},
    {"max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS},
    {"idle-timeout", required_argument, NULL, OPT_IDLE},
    {"keepalive", required_argument, NULL, OPT_KEEPALIVE},
    {"subscriber-buffer", required_argument, NULL, OPT_SUB_BUFFER},
    CLI_OPTIONS_END,
};

static const cli_cmd cmd = {"serve", help, options};

/* Strings kept for the life of the process (config file values). */
static char *keep(const char *s)
{
    char *p = strdup(s);
    if (!p) {
        cli_err("serve: out of memory");
        exit(CLI_EXIT_FAIL);
    }
    return p;
}

static int set_u32(uint32_t *out, const char *name, const char *v, uint32_t max)
{
    uint64_t n;
    if (cli_parse_u64(v, &n) < 0 || n > max)
        return cli_usage("serve", "--%s: '%s' is not a whole number up to %u", name, v, max);
    *out = (uint32_t)n;
    return 0;
}

/* Apply one option (from the command line or the file) to cfg. */
static int apply(serve_config *cfg, cli_ctx *cx, int opt, const char *name, const char *v)
{
    uint32_t u = 0;
    int rc;
    switch (opt) {
    case OPT_LISTEN: cfg->listen = v; return 0;
    case OPT_HTTP: cfg->http = v; return 0;
    case OPT_TLS_CERT: cfg->tls_cert = v; return 0;
    case OPT_TLS_KEY: cfg->tls_key = v; return 0;
    case OPT_API_KEYS: cfg->api_keys = v; return 0;
    case OPT_USERS: cfg->users = v; return 0;
    case OPT_INSECURE_BASIC:
        if (v && strcmp(v, "true") != 0 && strcmp(v, "false") != 0)
            return cli_usage("serve", "insecure-basic-auth: give true or false (got '%s')", v);
        cfg->insecure_basic_auth = !v || strcmp(v, "true") == 0;
        return 0;
    case OPT_INSECURE:
        if (v && strcmp(v, "true") != 0 && strcmp(v, "false") != 0)
            return cli_usage("serve", "insecure: give true or false (got '%s')", v);
        cfg->insecure = !v || strcmp(v, "true") == 0;
        return 0;
    case OPT_WORKERS:
        if ((rc = set_u32(&u, name, v, 4096)) != 0)
            return rc;
        cfg->workers = u;
        return 0;
    case OPT_MAX_MESSAGE: return set_u32(&cfg->max_message_bytes, name, v, 1u << 30);
    case OPT_MAX_STREAMS: return set_u32(&cfg->max_streams, name, v, 1u << 20);
    case OPT_MAX_CONNECTIONS: return set_u32(&cfg->max_connections, name, v, 1u << 24);
    case OPT_IDLE: return set_u32(&cfg->idle_timeout_s, name, v, 86400u * 365);
    case OPT_KEEPALIVE: return set_u32(&cfg->keepalive_s, name, v, 86400u);
    case OPT_SUB_BUFFER: return set_u32(&cfg->subscriber_buffer, name, v, 1u << 30);
    case CLI_OPT_DB:
        if (!cx->db_given) {
            cx->db_uri = v;
            cx->db_given = 1;
        }
        return 0;
    }
    return cli_usage("serve", "unknown option '%s'", name);
}

/* --config FILE: "name = value" lines, '#' comments. */
static int read_config(serve_config *cfg, cli_ctx *cx, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        cli_err("serve: --config %s: %s", path, strerror(errno));
        return CLI_EXIT_USAGE;
    }
    char line[4096];
    int lineno = 0, status = 0;
    while (!status && fgets(line, sizeof(line), f)) {
        lineno++;
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        size_t l = strlen(p);
        while (l && (p[l - 1] == '\n' || p[l - 1] == '\r' || p[l - 1] == ' ' ||
                     p[l - 1] == '\t'))
            p[--l] = 0;
        if (!*p || *p == '#')
            continue;
        char *eq = strchr(p, '=');
        if (!eq) {
            cli_err("serve: %s:%d: expected 'name = value'", path, lineno);
            status = CLI_EXIT_USAGE;
            break;
        }
        char *name = p, *value = eq + 1;
        char *ne = eq;
        while (ne > name && (ne[-1] == ' ' || ne[-1] == '\t'))
            ne--;
        *ne = 0;
        while (*value == ' ' || *value == '\t')
            value++;
        int opt = -1;
        for (const struct option *o = options; o->name; o++)
            if (strcmp(o->name, name) == 0)
                opt = o->val;
        if (opt < 0 || opt == OPT_CONFIG || opt == OPT_HASH_PASSWORD || opt == 'h') {
            cli_err("serve: %s:%d: unknown setting '%s' (the settings are the long options "
                    "of 'evs serve --help' without '--')", path, lineno, name);
            status = CLI_EXIT_USAGE;
            break;
        }
        status = apply(cfg, cx, opt, name, keep(value));
    }
    fclose(f);
    return status;
}

/* --hash-password: the first line of standard input, hashed. */
static int print_hash(void)
{
    char pw[4096], out[256];
    if (!fgets(pw, sizeof(pw), stdin)) {
        cli_err("serve: --hash-password: give the password on standard input (one line)");
        return CLI_EXIT_USAGE;
    }
    size_t l = strlen(pw);
    while (l && (pw[l - 1] == '\n' || pw[l - 1] == '\r'))
        pw[--l] = 0;
    if (l == 0) {
        cli_err("serve: --hash-password: the password is empty");
        return CLI_EXIT_USAGE;
    }
    int rc = serve_hash_password(pw, l, out, sizeof(out));
    memset(pw, 0, sizeof(pw));
    if (rc < 0) {
        cli_err("serve: --hash-password: hashing failed (out of memory?)");
        return CLI_EXIT_FAIL;
    }
    printf("%s\n", out);
    return 0;
}

int cmd_serve(cli_ctx *cx, int argc, char **argv)
{
    serve_config cfg;
    serve_config_defaults(&cfg);
    struct {
        int opt;
        const char *name, *value;
    } given[64];
    size_t ngiven = 0;
    const char *config = NULL;
    int c, status, hash_password = 0;

    cli_getopt_start();
    while ((c = cli_next_opt(&status, cx, NULL, &cmd, argc, argv)) != -1) {
        if (c == OPT_CONFIG) {
            config = optarg;
            continue;
        }
        if (c == OPT_HASH_PASSWORD) {
            hash_password = 1;
            continue;
        }
        if (ngiven == sizeof(given) / sizeof(given[0]))
            return cli_usage("serve", "too many options");
        const char *name = "?";
        for (const struct option *o = options; o->name; o++)
            if (o->val == c)
                name = o->name;
        given[ngiven].opt = c;
        given[ngiven].name = name;
        given[ngiven].value = c == OPT_INSECURE || c == OPT_INSECURE_BASIC ? NULL : optarg;
        ngiven++;
    }
    if (status >= 0)
        return status;
    if ((status = cli_no_args("serve", argc, argv)) != 0)
        return status;
    if (hash_password)
        return print_hash();
    /* The file first, then the command line over it. The global --db
     * (before the command) was taken by cli_next_opt into cx already and
     * wins over the file's db too. */
    if (config && (status = read_config(&cfg, cx, config)) != 0)
        return status;
    for (size_t i = 0; i < ngiven; i++)
        if ((status = apply(&cfg, cx, given[i].opt, given[i].name, given[i].value)) != 0)
            return status;
    char msg[1024];
    if (serve_config_check(&cfg, msg, sizeof(msg)) < 0)
        return cli_usage("serve", "%s", msg);
    cfg.db_uri = cx->db_uri;
    /* Signals are blocked before any thread starts (the store's own
     * threads included): the server waits for them with sigwait. */
    serve_block_signals();
    evs_db *db = NULL;
    if ((status = cli_open(&db, cx, EVS_OPEN_CREATE)) != 0)
        return status;
    return serve_run(&cfg, db);
}
