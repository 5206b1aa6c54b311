/*
 * index_rebuild.c -- how fast the index is rebuilt from the log
 * (index_rebuild.h).
 *
 * Two figures over the same log, both with the log in the page cache (the
 * load just wrote it):
 *
 *   bulk build   the index emptied as recovery empties it, then
 *                evs__idx_bulk_build (src/embedded/rebuild.c) alone;
 *   reopen       <store>/index deleted, then a read-write evs_open: the
 *                whole open, with whatever rebuild recovery runs (the
 *                record-by-record replay, or the bulk build once recovery
 *                calls it).
 *
 * This file reaches into the embedded backend (embedded.h) for the first
 * figure; everything else in src/bench uses the public API.
 */
#include "index_rebuild.h"

#include "embedded/embedded.h"
#include "embedded/rebuild.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Empty every derived sub-database (as recovery does before a rebuild)
 * and time the bulk build of the whole log into it. */
static int time_bulk_build(rebuild_figure *f, evs_db *db)
{
    evs__emb *s = (evs__emb *)db;
    MDB_txn *txn;
    uint64_t end_pos, end_loc;
    int rc;
    if (mdb_txn_begin(s->env, NULL, 0, &txn) != 0) {
        snprintf(f->error, sizeof f->error, "index: cannot begin a transaction");
        return -1;
    }
    if ((rc = evs__idx_applied_get(txn, s, &end_pos, &end_loc)) < 0) {
        mdb_txn_abort(txn);
        snprintf(f->error, sizeof f->error, "index: %s", evs_last_error());
        return -1;
    }
    MDB_dbi dbis[] = {s->db_tenants, s->db_streams, s->db_stream_events,
                      s->db_positions, s->db_tenant_events, s->db_event_ids,
                      s->db_postings, s->db_times};
    for (size_t i = 0; i < sizeof(dbis) / sizeof(dbis[0]); i++) {
        if (mdb_drop(txn, dbis[i], 0) != 0) {
            mdb_txn_abort(txn);
            snprintf(f->error, sizeof f->error, "index: cannot empty it");
            return -1;
        }
    }
    if (mdb_txn_commit(txn) != 0) {
        snprintf(f->error, sizeof f->error, "index: cannot empty it");
        return -1;
    }
    s->next_stream_id = 1;
    s->next_tenant_id = 1;
    s->time_max_us = INT64_MIN;
    double t0 = now_s();
    rc = evs__idx_bulk_build(s, end_pos, end_loc);
    f->bulk_s = now_s() - t0;
    f->events = end_pos;
    if (rc < 0) {
        snprintf(f->error, sizeof f->error, "bulk build: %s", evs_last_error());
        return -1;
    }
    return 0;
}

int bench_index_rebuild(rebuild_figure *f, evs_db **db, const char *path)
{
    evs_open_options opts = EVS_OPEN_OPTIONS_INIT;
    char cmd[8192];
    int rc, ok = 1;

    memset(f, 0, sizeof(*f));
    f->run = 1;
    rc = evs_close(*db);
    *db = NULL;
    if (rc < 0) {
        snprintf(f->error, sizeof f->error, "close: %s", evs_last_error());
        ok = 0;
    }
    if (ok && (rc = evs_open(db, path, &opts)) < 0) {
        snprintf(f->error, sizeof f->error, "open: %s", evs_last_error());
        ok = 0;
    }
    if (ok && time_bulk_build(f, *db) < 0)
        ok = 0;
    if (*db && (rc = evs_close(*db)) < 0 && ok) {
        snprintf(f->error, sizeof f->error, "close: %s", evs_last_error());
        ok = 0;
    }
    *db = NULL;
    if (ok) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s/index'", path);
        if (strchr(path, '\'') || system(cmd) != 0) {
            snprintf(f->error, sizeof f->error, "cannot delete %s/index", path);
            ok = 0;
        }
    }
    double t0 = now_s();
    rc = evs_open(db, path, &opts);
    if (ok)
        f->reopen_s = now_s() - t0;
    if (rc < 0) {
        *db = NULL;
        if (ok)
            snprintf(f->error, sizeof f->error, "open after deleting the index: %s",
                     evs_last_error());
        return -1;
    }
    f->ok = ok;
    return 0;
}
