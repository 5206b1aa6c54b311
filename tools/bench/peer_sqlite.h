/*
 * peer_sqlite.h -- SQLite as the embedded alternative in `evs bench`
 * (issue 20; docs/BENCH.md, "Peers"): the same generated data loaded into
 * a SQLite database the way a careful user would set it up, and the
 * scenarios that make sense on it, run by the same runner (suite.c) with
 * the same accounting, so the report can put evstore's figure and
 * SQLite's side by side, measured in the same run.
 *
 * The database (one file, WAL mode, synchronous=FULL: a commit returns
 * after its WAL frames were fsync'ed, the durability evstore's appends
 * have):
 *
 *   events(position INTEGER PRIMARY KEY,      -- the global position
 *          tenant TEXT, stream TEXT,           -- stream NULL: DCB event
 *          version INTEGER,                    -- 0-based in its stream
 *          id BLOB UNIQUE, type TEXT, data BLOB, metadata BLOB,
 *          correlation_id BLOB, causation_id BLOB, recorded_at INTEGER,
 *          UNIQUE(tenant, stream, version))
 *   index events_tenant_position(tenant, position)  -- catch-up pages
 *   index events_tenant_type(tenant, type, position) -- queries by type
 *   event_tags(tenant, tag, position, PRIMARY KEY(tenant, tag, position))
 *          WITHOUT ROWID                       -- queries by tag
 *
 * journal_mode=WAL set when the database is made (it persists); every
 * connection: busy_timeout=5000 (first), synchronous=FULL,
 * cache_size=-32768 (32 MiB). Writers take the write lock up front (BEGIN
 * IMMEDIATE), read what they must check inside the transaction, write,
 * commit. A BEGIN that is still SQLITE_BUSY after the busy timeout is
 * retried, up to PEER_SQLITE_ATTEMPTS attempts in all (as the command
 * executor's 10); one still busy after them is a conflict. Every retry is
 * counted (peer_sqlite_retries).
 *
 * Thread rules: every scenario thread opens its own connection
 * (SQLITE_OPEN_NOMUTEX); nothing here is shared between threads but the
 * retry counter (atomic).
 */
#ifndef EVS_BENCH_PEER_SQLITE_H
#define EVS_BENCH_PEER_SQLITE_H

#include "gen.h"
#include "suite.h"

#include <stddef.h>
#include <stdint.h>

#define PEER_SQLITE_ATTEMPTS 10
#define PEER_SQLITE_BUSY_MS 5000

/* The SQLite counterpart of the evstore scenario named name ("append-1",
 * "batch", "aggregate", "stream-batches", "dcb-query", "dcb-workflow"), or
 * NULL when the scenario has none. The counterpart has the same name and
 * levels, no targets; its setup takes the database's path from
 * ctx->db_uri (ctx->db is not used) and its own data goes to ctx->tenant
 * in that database. */
const bench_scenario *peer_sqlite_scenario(const char *name);

/* The library's version, e.g. "3.40.1" (static). */
const char *peer_sqlite_version(void);

/* The pragmas and the schema, one line each, for the report (static). */
const char *peer_sqlite_pragmas(void);
const char *peer_sqlite_schema(void);

/* BEGIN IMMEDIATE retries after SQLITE_BUSY since the process started
 * (every scenario, warm-up included); the runner takes the difference
 * around each level. */
uint64_t peer_sqlite_retries(void);

/*
 * Creates the database at path (which must not exist) with the schema,
 * then loads cfg's generated events (gen_new/gen_next: the same events,
 * ids, timestamps and tags evstore was given) in transactions of one
 * tenant's consecutive events, at most cfg->batch_events each, as
 * gen_load appends them. Snapshots are not loaded (no shared scenario
 * reads them). Stops between transactions once *cfg->stop is set.
 * Fills *events and *commits. Returns 0, 1 when stopped, or -1 with a
 * message in err (what was committed stays).
 */
int peer_sqlite_load(const char *path, const gen_config *cfg,
                     uint64_t *events, uint64_t *commits, char *err,
                     size_t errsize);

/* The size of the database file and its -wal beside it, in bytes (0 when
 * absent). */
uint64_t peer_sqlite_bytes(const char *path);

#endif
