/*
 * peer_pg.h -- the PostgreSQL peers of `evs bench` (issue 20;
 * docs/BENCH.md, "Peers"): the server they run on, raw PostgreSQL measured
 * with pgbench (the `postgres` peer), and Message DB (the `messagedb`
 * peer, peer_mdb.c), in the same run as evstore's scenarios.
 *
 * The server is one of (bench_options, suite.h):
 *   --pg-uri URI       a server of the user's (a libpq URI or key=value
 *                      conninfo naming any database the role can connect
 *                      to; the role needs CREATEDB);
 *   --db postgresql:// the server evstore itself runs on in this run;
 *   --pg-throwaway     a PostgreSQL 15 cluster the bench starts itself
 *                      (peer_pg_throwaway_start) and stops and deletes
 *                      after, also on failure, exit() and SIGINT/SIGTERM.
 * Each peer works in a fresh database of its own on it
 * ("evs_bench_raw_PID", "evs_bench_mdb_PID"), dropped at the end unless
 * --keep.
 *
 * Thread rules: everything here is called by the runner's thread, except
 * peer_pg_emergency_stop (any thread, also after a second signal) and the
 * Message DB scenarios' thread functions (peer_mdb.c).
 */
#ifndef EVS_BENCH_PEER_PG_H
#define EVS_BENCH_PEER_PG_H

#include "gen.h"
#include "report.h"
#include "suite.h"

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The Unix-socket "port" of the throwaway cluster (no TCP: it only names
 * the socket file DIR/.s.PGSQL.55432, so clusters never clash). */
#define PEER_PG_THROWAWAY_PORT 55432

/* A PostgreSQL server the peers run on. */
typedef struct pg_server {
    char conninfo[2048];  /* key='value' conninfo of the maintenance
                             database (from the URI given, or the
                             throwaway cluster's) */
    char shown[600];      /* for the report: the URI without a password,
                             or "throwaway cluster in DIR" */
    int throwaway;        /* started by peer_pg_throwaway_start */
    char dir[PATH_MAX];   /* throwaway: its directory (data/, socket,
                             logs), removed by peer_pg_throwaway_stop */
    pid_t postmaster;     /* throwaway: the server's pid, 0 once stopped */
    char version[64];     /* server_version, e.g. "15.18 (Debian ...)" */
    char settings[512];   /* the durability and memory settings, read
                             back with SHOW */
    int same_as_store;    /* 1: the server of --db (evstore on PostgreSQL
                             here) */
} pg_server;

/* The PostgreSQL 15 server programs' directory ($PG_BINDIR, else
 * /usr/lib/postgresql/15/bin) into bin when it has prog (e.g. "pgbench",
 * "initdb"). Returns 0, or -1 with a message saying what to install. */
int peer_pg_bindir(char *bin, size_t size, const char *prog, char *err,
                   size_t errsize);

/*
 * Starts a throwaway cluster in a fresh directory evs-bench-pg-XXXXXX
 * under parent: initdb (as the user postgres through runuser when run as
 * root; the directory is then owned by postgres), listen_addresses = ''
 * (a Unix socket in that directory only), fsync = on, synchronous_commit
 * = on (evstore's durability), max_connections = 300, shared_buffers =
 * 512MB; pg_ctl start. Registers an atexit handler that stops and removes
 * it (so die() and exit() do not leave it running). Fills *s. Returns 0,
 * or -1 with a message (what was made is removed).
 */
int peer_pg_throwaway_start(pg_server *s, const char *parent, char *err,
                            size_t errsize);

/* Stops the throwaway cluster (pg_ctl stop -m fast; SIGQUIT, then
 * SIGKILL, when that fails) and removes its directory. Idempotent; a
 * no-op for a server that is not a throwaway one. */
void peer_pg_throwaway_stop(pg_server *s);

/* The same for the cluster started last, from any thread (the second
 * SIGINT, atexit). */
void peer_pg_emergency_stop(void);

/* A server given by URI (--pg-uri, or --db): connects once to check it
 * and reads its version and settings into *s. Returns 0 or -1 with a
 * message. */
int peer_pg_server_open(pg_server *s, const char *uri, char *err,
                        size_t errsize);

/* CREATE DATABASE name on the server (dropped first if it exists);
 * conninfo gets its conninfo. Returns 0 or -1 with a message. */
int peer_pg_create_db(const pg_server *s, const char *name, char *conninfo,
                      size_t size, char *err, size_t errsize);

/* DROP DATABASE IF EXISTS name WITH (FORCE); errors are ignored. */
void peer_pg_drop_db(const pg_server *s, const char *name);

/* ---- the `postgres` peer: raw PostgreSQL, measured with pgbench ---- */

/* The raw-PostgreSQL counterpart of evstore's scenario name ("append-1":
 * single-row INSERTs; "batch": 100-row INSERT ... SELECT), or NULL. Its
 * op is NULL: the levels are run by peer_pgbench_level, not by the
 * runner's threads. */
const bench_scenario *peer_pgbench_scenario(const char *name);

/* The table the pgbench scripts insert into (SQL, static). */
const char *peer_pgbench_schema(void);

/* Creates that table in the database conninfo names. */
int peer_pgbench_prepare(const char *conninfo, char *err, size_t errsize);

/*
 * One level of s (s->sc from peer_pgbench_scenario) into s->lv[s->n++]:
 * a warm-up pgbench run (ceil(warmup) s, counted apart) and the measured
 * one (max(1, round(seconds)) s: pgbench -T takes whole seconds) with
 * clients clients, -M prepared, -j min(clients, cores), the per-
 * transaction log (-l) for the latencies; the pgbench output and logs go
 * to workdir. attempted = logged transactions + clients aborted (errors);
 * committed = logged ones not "failed". *rows += the rows committed.
 * Returns 0, or -1 with a message in err when pgbench could not run.
 */
int peer_pgbench_level(scen_result *s, const char *conninfo,
                       const char *workdir, int clients, double warmup,
                       double seconds, uint64_t *rows, char *err,
                       size_t errsize);

/* The table holds rows rows of the scenario s->sc->name's tenant. */
int peer_pgbench_check(const char *conninfo, const scen_result *s,
                       uint64_t rows, char *err, size_t errsize);

/* ---- the `messagedb` peer (peer_mdb.c) ---- */

#define PEER_MDB_VERSION "1.3.1" /* tools/bench/messagedb/package.json */

/* The Message DB counterpart of evstore's scenario name ("append-1",
 * "batch", "aggregate", "stream-batches" (a category read)), or NULL. Its
 * setup takes the database's conninfo from ctx->db_uri. */
const bench_scenario *peer_mdb_scenario(const char *name);

/* The package's database/ directory (its install.sh and SQL files):
 * $EVS_BENCH_MESSAGEDB_DIR, else tools/bench/messagedb/node_modules/
 * @eventide/message-db/database in the source tree. Returns 0, or -1
 * with a message saying how to install it (npm ci). */
int peer_mdb_find(char *dir, size_t size, char *err, size_t errsize);

/*
 * Installs Message DB into the fresh database dbname on s by running the
 * package's own database/install.sh (bash) with CREATE_DATABASE=off,
 * DATABASE_NAME=dbname and the server's connection in PG* variables
 * (PGHOST, PGPORT, PGUSER, PGPASSWORD, ...; the programs of PG_BINDIR
 * first in PATH), its output in log. Returns 0 or -1 with a message.
 */
int peer_mdb_install(const pg_server *s, const char *pkgdir,
                     const char *dbname, const char *log, char *err,
                     size_t errsize);

/* message_store_version() of the database (static buffer). */
const char *peer_mdb_store_version(const char *conninfo);

/*
 * Loads cfg's generated events into Message DB through write_message with
 * each event's expected version, one transaction per run of one tenant's
 * events (at most cfg->batch_events), the calls of a transaction sent in
 * one libpq pipeline. Stream "tenantNN-<stream>": the tenant (without its
 * '-') is the category. Stops between transactions once *cfg->stop is
 * set. Returns 0, 1 when stopped, or -1 with a message.
 */
int peer_mdb_load(const char *conninfo, const gen_config *cfg,
                  uint64_t *events, uint64_t *commits, char *err,
                  size_t errsize);

/* The size of the database (pg_database_size), 0 when unknown. */
uint64_t peer_pg_db_bytes(const char *conninfo);

/* CHECKPOINT on the server of conninfo: PostgreSQL's dirty buffers
 * written and synced, so that a bulk load's (or the previous level's)
 * writeback does not land in the next measured window -- what the
 * runner's syncfs between levels does for the embedded store and SQLite,
 * whose dirty pages are the kernel's. Needs a superuser or pg_checkpoint.
 * Returns 0 or -1 with a message. */
int peer_pg_checkpoint(const char *conninfo, char *err, size_t errsize);

#endif
