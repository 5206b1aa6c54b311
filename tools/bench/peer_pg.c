/*
 * peer_pg.c -- the PostgreSQL server of the PostgreSQL peers (a given one
 * or a throwaway cluster) and the raw-PostgreSQL peer measured with
 * pgbench (peer_pg.h). Built only with libpq (EVS_BENCH_WITH_PG); without
 * it every entry point says so.
 */
#include "peer_pg.h"

#include "scen_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#if EVS_BENCH_WITH_PG
#include <libpq-fe.h>
#endif

/* ------------------------------------------------------------------ */
/* Programs                                                            */
/* ------------------------------------------------------------------ */

int peer_pg_bindir(char *bin, size_t size, const char *prog, char *err,
                   size_t errsize)
{
    const char *dirs[] = {getenv("PG_BINDIR"), "/usr/lib/postgresql/15/bin"};
    for (int i = 0; i < 2; i++) {
        char p[PATH_MAX];
        if (!dirs[i] || !dirs[i][0])
            continue;
        snprintf(p, sizeof p, "%s/%s", dirs[i], prog);
        if (access(p, X_OK) == 0) {
            snprintf(bin, size, "%s", dirs[i]);
            return 0;
        }
    }
    scen_msg(err, errsize, "%s not found in $PG_BINDIR or "
             "/usr/lib/postgresql/15/bin: install Debian's postgresql-15 "
             "(scripts/install-deps.sh bench) or set PG_BINDIR", prog);
    return -1;
}

/* Runs argv (as the user postgres through runuser when as_owner and we
 * are root), stdout and stderr appended to log (NULL: /dev/null), env
 * ("NAME=value" strings, NULL-terminated) added, in a process group of
 * its own (a Ctrl-C on the terminal is the bench's to handle), with no
 * signal blocked. Returns the exit status, or -1 when it could not run. */
static int run_cmd(char *const argv[], const char *log, int as_owner,
                   char *const env[], const char *cwd)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        setpgid(0, 0);
        int fd = open(log ? log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND,
                      0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        int in = open("/dev/null", O_RDONLY);
        if (in >= 0) {
            dup2(in, 0);
            close(in);
        }
        for (int i = 0; env && env[i]; i++)
            putenv(env[i]);
        if (cwd && chdir(cwd) != 0)
            _exit(126);
        if (as_owner && geteuid() == 0) {
            int n = 0;
            while (argv[n])
                n++;
            char **a = calloc((size_t)n + 5, sizeof *a);
            if (!a)
                _exit(127);
            a[0] = "runuser";
            a[1] = "-u";
            a[2] = "postgres";
            a[3] = "--";
            for (int i = 0; i < n; i++)
                a[4 + i] = argv[i];
            execvp("runuser", a);
            _exit(127);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* The last lines of a log file, for a message. */
static void log_tail(const char *log, char *out, size_t size)
{
    out[0] = 0;
    FILE *f = fopen(log, "r");
    if (!f)
        return;
    char buf[4096];
    size_t n = 0;
    if (fseek(f, 0, SEEK_END) == 0) {
        long end = ftell(f);
        fseek(f, end > (long)sizeof buf - 1 ? end - (long)sizeof buf + 1 : 0,
              SEEK_SET);
        n = fread(buf, 1, sizeof buf - 1, f);
    }
    fclose(f);
    buf[n] = 0;
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = 0;
    /* the last 300 bytes, on one line */
    const char *p = n > 300 ? buf + n - 300 : buf;
    snprintf(out, size, "%s", p);
    for (char *q = out; *q; q++)
        if (*q == '\n')
            *q = ' ';
}

#if EVS_BENCH_WITH_PG

/* ------------------------------------------------------------------ */
/* Conninfo strings                                                    */
/* ------------------------------------------------------------------ */

/* uri re-written as a key='value' conninfo, dbname replaced by db (NULL:
 * kept); shown (may be NULL) gets the same without the password. */
static int conninfo_with_db(const char *uri, const char *db, char *out,
                            size_t size, char *shown, size_t shown_size,
                            char *err, size_t errsize)
{
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(uri, &perr);
    size_t len = 0, slen = 0;
    if (!opts) {
        scen_msg(err, errsize, "not a PostgreSQL connection string: %s",
                 perr ? perr : uri);
        PQfreemem(perr);
        return -1;
    }
    out[0] = 0;
    if (shown)
        shown[0] = 0;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        const char *v = o->val;
        if (strcmp(o->keyword, "dbname") == 0 && db)
            v = db;
        if (!v)
            continue;
        char esc[1024];
        size_t k = 0;
        for (const char *c = v; *c && k + 3 < sizeof esc; c++) {
            if (*c == '\'' || *c == '\\')
                esc[k++] = '\\';
            esc[k++] = *c;
        }
        esc[k] = 0;
        if (len < size)
            len += (size_t)snprintf(out + len, size - len, "%s%s='%s'",
                                    len ? " " : "", o->keyword, esc);
        if (shown && slen < shown_size &&
            strcmp(o->keyword, "password") != 0)
            slen += (size_t)snprintf(shown + slen, shown_size - slen,
                                     "%s%s=%s", slen ? " " : "", o->keyword,
                                     v);
    }
    PQconninfoFree(opts);
    if (len >= size) {
        scen_msg(err, errsize, "connection string too long");
        return -1;
    }
    return 0;
}

static void quiet(void *arg, const char *msg)
{
    (void)arg, (void)msg;
}

static PGconn *pg_connect(const char *conninfo, char *err, size_t errsize)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        scen_msg(err, errsize, "cannot connect: %s",
                 c ? PQerrorMessage(c) : "out of memory");
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, quiet, NULL);
    return c;
}

/* Runs sql; -1 with the server's message unless it succeeded. */
static int pg_exec(PGconn *c, const char *sql, char *err, size_t errsize)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        scen_msg(err, errsize, "%.80s: %s", sql, PQerrorMessage(c));
        PQclear(r);
        return -1;
    }
    PQclear(r);
    return 0;
}

/* The first value of a one-row query, into out ("" on failure). */
static void pg_value(PGconn *c, const char *sql, char *out, size_t size)
{
    PGresult *r = PQexec(c, sql);
    out[0] = 0;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
        !PQgetisnull(r, 0, 0))
        snprintf(out, size, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
}

/* The version and the settings that decide durability and speed. */
static void read_server(pg_server *s, PGconn *c)
{
    static const char *const names[] = {
        "fsync", "synchronous_commit", "wal_sync_method", "full_page_writes",
        "shared_buffers", "max_connections", "max_wal_size"};
    size_t len = 0;
    pg_value(c, "SHOW server_version", s->version, sizeof s->version);
    s->settings[0] = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char q[64], v[64];
        snprintf(q, sizeof q, "SHOW %s", names[i]);
        pg_value(c, q, v, sizeof v);
        if (len < sizeof s->settings)
            len += (size_t)snprintf(s->settings + len,
                                    sizeof s->settings - len, "%s%s=%s",
                                    len ? ", " : "", names[i],
                                    v[0] ? v : "?");
    }
}

int peer_pg_server_open(pg_server *s, const char *uri, char *err,
                        size_t errsize)
{
    char e[512];
    memset(s, 0, sizeof *s);
    if (conninfo_with_db(uri, NULL, s->conninfo, sizeof s->conninfo,
                         s->shown, sizeof s->shown, e, sizeof e) != 0) {
        scen_msg(err, errsize, "%s", e);
        return -1;
    }
    PGconn *c = pg_connect(s->conninfo, e, sizeof e);
    if (!c) {
        scen_msg(err, errsize, "%s", e);
        return -1;
    }
    read_server(s, c);
    PQfinish(c);
    return 0;
}

int peer_pg_create_db(const pg_server *s, const char *name, char *conninfo,
                      size_t size, char *err, size_t errsize)
{
    char sql[256];
    PGconn *c = pg_connect(s->conninfo, err, errsize);
    if (!c)
        return -1;
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)",
             name);
    int rc = pg_exec(c, sql, err, errsize);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    if (rc == 0)
        rc = pg_exec(c, sql, err, errsize);
    PQfinish(c);
    if (rc != 0)
        return -1;
    return conninfo_with_db(s->conninfo, name, conninfo, size, NULL, 0, err,
                            errsize);
}

void peer_pg_drop_db(const pg_server *s, const char *name)
{
    char sql[256], e[256];
    PGconn *c = pg_connect(s->conninfo, e, sizeof e);
    if (!c)
        return;
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)",
             name);
    (void)pg_exec(c, sql, e, sizeof e);
    PQfinish(c);
}

int peer_pg_checkpoint(const char *conninfo, char *err, size_t errsize)
{
    PGconn *c = pg_connect(conninfo, err, errsize);
    if (!c)
        return -1;
    int rc = pg_exec(c, "CHECKPOINT", err, errsize);
    PQfinish(c);
    return rc;
}

uint64_t peer_pg_db_bytes(const char *conninfo)
{
    char e[256], v[64];
    PGconn *c = pg_connect(conninfo, e, sizeof e);
    if (!c)
        return 0;
    pg_value(c, "SELECT pg_database_size(current_database())", v, sizeof v);
    PQfinish(c);
    return strtoull(v, NULL, 10);
}

/* ------------------------------------------------------------------ */
/* The throwaway cluster                                               */
/* ------------------------------------------------------------------ */

/* The cluster started last, for peer_pg_emergency_stop. */
static pg_server *g_cluster;
static _Atomic int g_stopping;
static int g_atexit;

static void atexit_stop(void) { peer_pg_emergency_stop(); }

static void stop_cluster(pg_server *s)
{
    char bin[PATH_MAX], e[256], data[PATH_MAX + 8], ctl[PATH_MAX + 16];
    if (!s->throwaway || !s->dir[0])
        return;
    snprintf(data, sizeof data, "%.200s/data", s->dir);
    if (s->postmaster > 0 &&
        peer_pg_bindir(bin, sizeof bin, "pg_ctl", e, sizeof e) == 0) {
        snprintf(ctl, sizeof ctl, "%s/pg_ctl", bin);
        char *argv[] = {ctl, "-D", data, "-m", "fast", "-w", "-t", "30",
                        "stop", NULL};
        if (run_cmd(argv, NULL, 1, NULL, NULL) == 0)
            s->postmaster = 0;
    }
    if (s->postmaster > 0) {
        /* pg_ctl missing or failed (its data gone, a hung server): the
           postmaster, which takes its children with it */
        kill(s->postmaster, SIGQUIT);
        for (int i = 0; i < 20 && kill(s->postmaster, 0) == 0; i++)
            usleep(100000);
        kill(s->postmaster, SIGKILL);
        s->postmaster = 0;
    }
    rm_rf(s->dir);
    s->dir[0] = 0;
}

void peer_pg_emergency_stop(void)
{
    int no = 0;
    if (!g_cluster)
        return;
    if (!atomic_compare_exchange_strong(&g_stopping, &no, 1)) {
        /* another thread is stopping it: wait for that (a second SIGINT
           must not _exit before the directory is gone), 60 s at most */
        for (int i = 0; i < 1200 && atomic_load(&g_stopping); i++)
            usleep(50000);
        return;
    }
    stop_cluster(g_cluster);
    g_cluster = NULL;
    atomic_store(&g_stopping, 0);
}

void peer_pg_throwaway_stop(pg_server *s)
{
    if (g_cluster == s) {
        peer_pg_emergency_stop();
        return;
    }
    stop_cluster(s);
}

int peer_pg_throwaway_start(pg_server *s, const char *parent, char *err,
                            size_t errsize)
{
    char bin[PATH_MAX], prog[PATH_MAX + 16], abs[PATH_MAX], data[PATH_MAX],
        log[PATH_MAX], conf[PATH_MAX], tail[400], e[512];
    memset(s, 0, sizeof *s);
    if (peer_pg_bindir(bin, sizeof bin, "initdb", err, errsize) != 0 ||
        peer_pg_bindir(bin, sizeof bin, "pg_ctl", err, errsize) != 0)
        return -1;
    if (!realpath(parent, abs)) {
        scen_msg(err, errsize, "%s: %s", parent, strerror(errno));
        return -1;
    }
    if (strlen(abs) + 40 > 100) {
        scen_msg(err, errsize, "--pg-throwaway: the cluster's Unix socket "
                 "under %s would be longer than a socket path may be (107 "
                 "bytes): give a shorter --dir (e.g. --dir /tmp)", abs);
        return -1;
    }
    snprintf(s->dir, sizeof s->dir, "%s/evs-bench-pg-XXXXXX", abs);
    if (!mkdtemp(s->dir)) {
        scen_msg(err, errsize, "cannot create %s: %s", s->dir,
                 strerror(errno));
        s->dir[0] = 0;
        return -1;
    }
    s->throwaway = 1;
    g_cluster = s;
    if (!g_atexit) {
        atexit(atexit_stop);
        g_atexit = 1;
    }
    snprintf(data, sizeof data, "%.200s/data", s->dir);
    snprintf(log, sizeof log, "%.200s/postgres.log", s->dir);
    if (geteuid() == 0) {
        /* initdb and postgres refuse to run as root: the user postgres
           runs them and owns the directory */
        char *chown_argv[] = {"chown", "postgres:", s->dir, NULL};
        char *test_argv[] = {"test", "-w", s->dir, NULL};
        if (run_cmd(chown_argv, NULL, 0, NULL, NULL) != 0) {
            scen_msg(err, errsize, "--pg-throwaway: running as root, but "
                     "%s cannot be given to the user postgres (is there "
                     "one? Debian's postgresql-15 makes it)", s->dir);
            goto fail;
        }
        chmod(s->dir, 0700);
        if (run_cmd(test_argv, NULL, 1, NULL, NULL) != 0) {
            scen_msg(err, errsize, "--pg-throwaway: the user postgres cannot "
                     "reach %s (a parent directory is not searchable): give "
                     "a --dir under a world-searchable path such as /tmp",
                     s->dir);
            goto fail;
        }
    }
    snprintf(prog, sizeof prog, "%s/initdb", bin);
    {
        char ilog[PATH_MAX];
        snprintf(ilog, sizeof ilog, "%.200s/initdb.log", s->dir);
        char *argv[] = {prog, "-D", data, "-U", "postgres", "-A", "trust",
                        "-E", "UTF8", "--locale=C.UTF-8", NULL};
        if (run_cmd(argv, ilog, 1, NULL, NULL) != 0) {
            log_tail(ilog, tail, sizeof tail);
            scen_msg(err, errsize, "--pg-throwaway: initdb failed: %s", tail);
            goto fail;
        }
    }
    snprintf(conf, sizeof conf, "%.300s/postgresql.conf", data);
    FILE *f = fopen(conf, "a");
    if (!f) {
        scen_msg(err, errsize, "cannot append to %s: %s", conf,
                 strerror(errno));
        goto fail;
    }
    fprintf(f,
            "\n# evs bench --pg-throwaway (tools/bench/peer_pg.c)\n"
            "listen_addresses = ''\n"
            "unix_socket_directories = '%s'\n"
            "port = %d\n"
            "fsync = on\n"
            "synchronous_commit = on\n"
            "max_connections = 300\n"
            "shared_buffers = 512MB\n"
            "logging_collector = off\n"
            "log_min_messages = warning\n",
            s->dir, PEER_PG_THROWAWAY_PORT);
    fclose(f);
    snprintf(prog, sizeof prog, "%s/pg_ctl", bin);
    {
        char *argv[] = {prog, "-D", data, "-l", log, "-w", "-t", "60",
                        "start", NULL};
        int rc = run_cmd(argv, NULL, 1, NULL, NULL);
        /* the postmaster's pid, also when pg_ctl gave up waiting */
        char pidf[PATH_MAX + 16];
        snprintf(pidf, sizeof pidf, "%s/postmaster.pid", data);
        FILE *pf = fopen(pidf, "r");
        if (pf) {
            long pid = 0;
            if (fscanf(pf, "%ld", &pid) == 1 && pid > 0)
                s->postmaster = (pid_t)pid;
            fclose(pf);
        }
        if (rc != 0) {
            log_tail(log, tail, sizeof tail);
            scen_msg(err, errsize, "--pg-throwaway: the server did not "
                     "start: %s", tail);
            goto fail;
        }
    }
    snprintf(s->conninfo, sizeof s->conninfo,
             "host='%.200s' port='%d' user='postgres' dbname='postgres'", s->dir,
             PEER_PG_THROWAWAY_PORT);
    snprintf(s->shown, sizeof s->shown,
             "throwaway cluster in %.200s (Unix socket only; stopped and "
             "deleted after)", s->dir);
    PGconn *c = pg_connect(s->conninfo, e, sizeof e);
    if (!c) {
        scen_msg(err, errsize, "--pg-throwaway: %s", e);
        goto fail;
    }
    read_server(s, c);
    PQfinish(c);
    return 0;
fail:
    peer_pg_throwaway_stop(s);
    return -1;
}

/* ------------------------------------------------------------------ */
/* The raw-PostgreSQL peer: pgbench                                    */
/* ------------------------------------------------------------------ */

static const char raw_schema[] =
    "CREATE TABLE events(\n"
    "  position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
    "  tenant text NOT NULL,\n"
    "  stream text NOT NULL,\n"
    "  version bigint NOT NULL,      -- 0-based in its stream\n"
    "  id uuid NOT NULL UNIQUE,\n"
    "  type text NOT NULL,\n"
    "  data jsonb NOT NULL,\n"
    "  metadata jsonb,\n"
    "  recorded_at timestamptz NOT NULL DEFAULT now(),\n"
    "  UNIQUE (tenant, stream, version));";

const char *peer_pgbench_schema(void) { return raw_schema; }

int peer_pgbench_prepare(const char *conninfo, char *err, size_t errsize)
{
    PGconn *c = pg_connect(conninfo, err, errsize);
    if (!c)
        return -1;
    int rc = pg_exec(c, raw_schema, err, errsize);
    PQfinish(c);
    return rc;
}

/* The ~240 B JSON event of scen_appends.c's threads (ledger entry), with
 * a space after each ':' (pgbench takes ":name" for a variable). */
#define RAW_JSON                                                           \
    "{\"ledger\": \"ledger1\", \"entry\": 1, \"amount\": 137, "              \
    "\"currency\": \"EUR\", \"booked_by\": \"clerk-1\", \"memo\": "         \
    "\"monthly settlement of open items, batch 1 line 1\", \"approved\": "  \
    "true}"

/* One transaction of each scenario: the pgbench script. The variable v
 * (-D v=-1) is the client's stream version, kept across its transactions;
 * run (-D run=N) makes every pgbench run's streams new. */
static const char script_insert1[] =
    "\\set v :v + 1\n"
    "INSERT INTO events(tenant, stream, version, id, type, data) VALUES "
    "('bench-append-1', 'ledger1-' || :run || '-' || :client_id, :v, "
    "gen_random_uuid(), 'EntryPosted', '" RAW_JSON "');\n";
static const char script_batch[] =
    "\\set v :v + 100\n"
    "INSERT INTO events(tenant, stream, version, id, type, data) SELECT "
    "'bench-batch', 'batch-' || :run || '-' || :client_id, :v - 100 + g, "
    "gen_random_uuid(), 'EntryPosted', '" RAW_JSON "' FROM "
    "generate_series(1, 100) g;\n";

static const int raw_append_levels[] = {1, 8, 32, 64};
static const int raw_append_quick[] = {1, 32};
static const int raw_batch_levels[] = {1, 2, 8};
static const int raw_batch_quick[] = {1, 2};

static const bench_scenario raw_append1 = {
    .name = "append-1",
    .title = "raw PostgreSQL (pgbench): single-row INSERT transactions",
    .what = "One operation: one pgbench transaction, an autocommitted "
            "INSERT of one ~240 B JSON row (jsonb) with a fresh "
            "gen_random_uuid() id into the events table below (primary "
            "key, UNIQUE(id), UNIQUE(tenant, stream, version): each client "
            "writes its own stream, versions 0, 1, 2...), -M prepared, one "
            "connection per client. No expected-version read: the plain "
            "insert a store on PostgreSQL costs at least. Timed: pgbench's "
            "per-transaction latency (-l). Items: rows written.",
    .item = "rows",
    SCEN_LEVELS(raw_append_levels, raw_append_quick),
};

static const bench_scenario raw_batch = {
    .name = "batch",
    .title = "raw PostgreSQL (pgbench): 100-row INSERT ... SELECT",
    .what = "One operation: one pgbench transaction, an autocommitted "
            "INSERT ... SELECT of 100 such rows (generate_series) into the "
            "client's own stream. Timed: pgbench's per-transaction latency "
            "(-l). Items: rows written (100 per operation).",
    .item = "rows",
    SCEN_LEVELS(raw_batch_levels, raw_batch_quick),
};

const bench_scenario *peer_pgbench_scenario(const char *name)
{
    if (strcmp(name, "append-1") == 0)
        return &raw_append1;
    if (strcmp(name, "batch") == 0)
        return &raw_batch;
    return NULL;
}

/* One pgbench run: its counts into *c, its latencies into *lat (may be
 * NULL), its duration into *secs. */
static int pgbench_run(const bench_scenario *sc, const char *conninfo,
                       const char *workdir, int clients, int secs_int,
                       int run, op_counts *c, samples *lat, double *secs,
                       char *err, size_t errsize)
{
    char bin[PATH_MAX], prog[PATH_MAX + 16], script[PATH_MAX],
        out[PATH_MAX], prefix[PATH_MAX], cl[16], jb[16], tb[16], rv[32],
        tail[400];
    int rows = strcmp(sc->name, "batch") == 0 ? 100 : 1;
    if (peer_pg_bindir(bin, sizeof bin, "pgbench", err, errsize) != 0)
        return -1;
    snprintf(prog, sizeof prog, "%s/pgbench", bin);
    snprintf(script, sizeof script, "%s/%s.sql", workdir, sc->name);
    FILE *f = fopen(script, "w");
    if (!f) {
        scen_msg(err, errsize, "cannot write %s: %s", script,
                 strerror(errno));
        return -1;
    }
    fputs(rows == 100 ? script_batch : script_insert1, f);
    fclose(f);
    snprintf(out, sizeof out, "%s/pgbench-%s-%d.out", workdir, sc->name, run);
    snprintf(prefix, sizeof prefix, "%s/pgbench-%s-%d.log", workdir, sc->name,
             run);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int jobs = clients < cores ? clients : (int)(cores > 0 ? cores : 1);
    snprintf(cl, sizeof cl, "%d", clients);
    snprintf(jb, sizeof jb, "%d", jobs);
    snprintf(tb, sizeof tb, "%d", secs_int);
    snprintf(rv, sizeof rv, "run=%d", run);
    char lp[PATH_MAX + 16];
    snprintf(lp, sizeof lp, "--log-prefix=%s", prefix);
    char *argv[] = {prog, "-n", "-M", "prepared", "-c", cl, "-j", jb,
                    "-T", tb, "-D", "v=-1", "-D", rv, "-f", script, "-l",
                    lp, (char *)conninfo, NULL};
    unlink(out);
    int rc = run_cmd(argv, out, 0, NULL, NULL);
    /* pgbench's summary: the duration (from "tps = X (without initial
       connection time)" and the count), and the clients it aborted */
    uint64_t processed = 0, failed = 0, aborted = 0;
    double tps = 0;
    f = fopen(out, "r");
    if (f) {
        char line[1024];
        while (fgets(line, sizeof line, f)) {
            unsigned long long v;
            double d;
            if (sscanf(line, "number of transactions actually processed: "
                       "%llu", &v) == 1)
                processed = v;
            else if (sscanf(line, "number of failed transactions: %llu",
                            &v) == 1)
                failed = v;
            else if (sscanf(line, "tps = %lf (without initial connection",
                            &d) == 1)
                tps = d;
            else if (strstr(line, "client ") &&
                     strstr(line, " aborted in command"))
                aborted++;
        }
        fclose(f);
    }
    if (rc != 0 && rc != 2) {
        log_tail(out, tail, sizeof tail);
        scen_msg(err, errsize, "pgbench exited with status %d: %s", rc, tail);
        return -1;
    }
    /* the per-transaction logs: PREFIX.PID and PREFIX.PID.THREAD */
    uint64_t logged = 0, logged_failed = 0;
    char ls[PATH_MAX + 64];
    const char *slash = strrchr(prefix, '/');
    DIR *d = opendir(workdir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (strncmp(e->d_name, slash + 1, strlen(slash + 1)) != 0 ||
                e->d_name[strlen(slash + 1)] != '.')
                continue;
            snprintf(ls, sizeof ls, "%s/%s", workdir, e->d_name);
            FILE *lf = fopen(ls, "r");
            if (!lf)
                continue;
            char line[256];
            while (fgets(line, sizeof line, lf)) {
                int cid;
                long txn;
                char t[32];
                if (sscanf(line, "%d %ld %31s", &cid, &txn, t) != 3)
                    continue;
                logged++;
                if (t[0] < '0' || t[0] > '9') {
                    logged_failed++;
                    continue;
                }
                if (lat)
                    samples_push(lat, strtoull(t, NULL, 10) * 1000u);
            }
            fclose(lf);
            unlink(ls);
        }
        closedir(d);
    }
    if (logged != processed + failed && processed + failed > 0) {
        scen_msg(err, errsize, "pgbench reported %llu transactions "
                 "processed and %llu failed, its log has %llu",
                 (unsigned long long)processed, (unsigned long long)failed,
                 (unsigned long long)logged);
        /* counted as they are: the accounting check will say it */
    }
    c->attempted += logged + aborted;
    c->committed += logged - logged_failed;
    c->errors += logged_failed + aborted;
    c->items += (logged - logged_failed) * (uint64_t)rows;
    if (aborted && !err[0]) {
        log_tail(out, tail, sizeof tail);
        scen_msg(err, errsize, "%llu pgbench client(s) aborted: %s",
                 (unsigned long long)aborted, tail);
    }
    *secs = tps > 0 ? (double)(logged - logged_failed) / tps : secs_int;
    return 0;
}

int peer_pgbench_level(scen_result *s, const char *conninfo,
                       const char *workdir, int clients, double warmup,
                       double seconds, uint64_t *rows, char *err,
                       size_t errsize)
{
    static int run = 0;
    level_result *l = &s->lv[s->n++];
    samples lat = {0};
    double secs = 0, wsecs = 0;
    int per = strcmp(s->sc->name, "batch") == 0 ? 100 : 1;
    char e1[256] = "", e2[256] = "";
    memset(l, 0, sizeof *l);
    l->threads = clients;
    l->events_per_append = per;
    if (warmup > 0 &&
        pgbench_run(s->sc, conninfo, workdir, clients, (int)ceil(warmup),
                    ++run, &l->warm, NULL, &wsecs, e1, sizeof e1) != 0) {
        scen_msg(err, errsize, "warm-up: %s", e1);
        return -1;
    }
    int secs_int = (int)lround(seconds);
    if (secs_int < 1)
        secs_int = 1;
    if (pgbench_run(s->sc, conninfo, workdir, clients, secs_int, ++run,
                    &l->c, &lat, &secs, e2, sizeof e2) != 0) {
        scen_msg(err, errsize, "%s", e2);
        return -1;
    }
    l->warmup_s = warmup > 0 ? ceil(warmup) : 0;
    l->window_s = secs;
    l->ops_per_s = secs > 0 ? (double)l->c.committed / secs : 0;
    l->events_per_s = l->ops_per_s * per;
    l->items_per_s = l->events_per_s;
    l->lat = summarize(&lat);
    free(lat.v);
    l->other_cpu_s = -1;
    snprintf(l->error, sizeof l->error, "%s", e2[0] ? e2 : e1);
    *rows += (l->warm.committed + l->c.committed) * (uint64_t)per;
    return 0;
}

int peer_pgbench_check(const char *conninfo, const scen_result *s,
                       uint64_t rows, char *err, size_t errsize)
{
    char sql[160], v[64];
    PGconn *c = pg_connect(conninfo, err, errsize);
    if (!c)
        return -1;
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM events WHERE tenant = 'bench-%s'",
             s->sc->name);
    pg_value(c, sql, v, sizeof v);
    PQfinish(c);
    if (!v[0]) {
        scen_msg(err, errsize, "cannot count the table's rows");
        return -1;
    }
    if (strtoull(v, NULL, 10) != rows) {
        scen_msg(err, errsize, "the table holds %s rows of bench-%s, the "
                 "committed transactions wrote %llu", v, s->sc->name,
                 (unsigned long long)rows);
        return -1;
    }
    return 0;
}

#else /* !EVS_BENCH_WITH_PG */

static void no_pg(char *err, size_t errsize)
{
    scen_msg(err, errsize, "this evs was built without PostgreSQL "
             "(EVS_WITH_POSTGRES=OFF): no PostgreSQL peers");
}

int peer_pg_throwaway_start(pg_server *s, const char *parent, char *err,
                            size_t errsize)
{
    (void)parent;
    memset(s, 0, sizeof *s);
    no_pg(err, errsize);
    return -1;
}
void peer_pg_throwaway_stop(pg_server *s) { (void)s; }
void peer_pg_emergency_stop(void) {}
int peer_pg_server_open(pg_server *s, const char *uri, char *err,
                        size_t errsize)
{
    (void)uri;
    memset(s, 0, sizeof *s);
    no_pg(err, errsize);
    return -1;
}
int peer_pg_create_db(const pg_server *s, const char *name, char *conninfo,
                      size_t size, char *err, size_t errsize)
{
    (void)s, (void)name, (void)conninfo, (void)size;
    no_pg(err, errsize);
    return -1;
}
void peer_pg_drop_db(const pg_server *s, const char *name)
{
    (void)s, (void)name;
}
uint64_t peer_pg_db_bytes(const char *conninfo)
{
    (void)conninfo;
    return 0;
}
int peer_pg_checkpoint(const char *conninfo, char *err, size_t errsize)
{
    (void)conninfo;
    no_pg(err, errsize);
    return -1;
}
const char *peer_pgbench_schema(void) { return ""; }
int peer_pgbench_prepare(const char *conninfo, char *err, size_t errsize)
{
    (void)conninfo;
    no_pg(err, errsize);
    return -1;
}
const bench_scenario *peer_pgbench_scenario(const char *name)
{
    (void)name;
    return NULL;
}
int peer_pgbench_level(scen_result *s, const char *conninfo,
                       const char *workdir, int clients, double warmup,
                       double seconds, uint64_t *rows, char *err,
                       size_t errsize)
{
    (void)s, (void)conninfo, (void)workdir, (void)clients, (void)warmup,
        (void)seconds, (void)rows;
    no_pg(err, errsize);
    return -1;
}
int peer_pgbench_check(const char *conninfo, const scen_result *s,
                       uint64_t rows, char *err, size_t errsize)
{
    (void)conninfo, (void)s, (void)rows;
    no_pg(err, errsize);
    return -1;
}
#endif
