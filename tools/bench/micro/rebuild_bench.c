/*
 * rebuild_bench.c -- rebuilding the index from the log: the record-by-
 * record replay (evs__idx_apply_record, what recovery did) against the
 * bulk build (evs__idx_bulk_build, src/embedded/rebuild.c).
 *
 *   rebuild_bench DIR [--runs N] [--writemap] [--verify] [--bulk-only] [--progress]
 *
 * DIR is an existing store, e.g. made by `evs --db DIR generate --events
 * 1000000`. It is opened read-write; each run builds the index of all its
 * events into a fresh LMDB environment in DIR/index-bench (deleted after),
 * as an open after `rm -r DIR/index` would, once by replay and once in
 * bulk, and prints the rates. The log is read through the page cache: run
 * once before measuring (the first run warms it). --writemap opens the
 * bench environments with MDB_WRITEMAP (as the index once was);
 * without it, LMDB writes pages with pwrite at commit. --verify runs `evs
 * verify` on the last bulk-built index and compares its entry counts with
 * the replay's. --progress prints the recovery_progress calls of the bulk
 * builds (done/total, seconds since the build began) on stderr.
 */
#include "embedded/embedded.h"
#include "embedded/rebuild.h"
#include "util/util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define REPLAY_TXN_EVENTS 65536 /* as recovery.c */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double prog_t0;
static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
    (void)ctx;
    fprintf(stderr, "progress %" PRIu64 "/%" PRIu64 " (%.0f%%) at %.3f s\n", done, total,
            total ? 100.0 * (double)done / (double)total : 100.0, now_s() - prog_t0);
}

static int die(const char *what, int rc)
{
    fprintf(stderr, "rebuild_bench: %s: %s (%d)\n", what, evs_last_error(), rc);
    exit(1);
}

/* Point s at a new, empty environment in path (what evs__idx_open makes). */
static void fresh_env(evs__emb *s, const char *path, int writemap)
{
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir -p '%s'", path, path);
    if (system(cmd) != 0)
        exit(1);
    MDB_txn *txn;
    unsigned flags = MDB_NOSYNC | MDB_NOMETASYNC | MDB_NOTLS | MDB_NORDAHEAD |
                     (writemap ? MDB_WRITEMAP : 0);
    if (mdb_env_create(&s->env) || mdb_env_set_maxdbs(s->env, 16) ||
        mdb_env_set_mapsize(s->env, (size_t)64 << 30) ||
        mdb_env_open(s->env, path, flags, 0644) || mdb_txn_begin(s->env, NULL, 0, &txn)) {
        fprintf(stderr, "rebuild_bench: cannot open an environment in %s\n", path);
        exit(1);
    }
    struct { const char *name; MDB_dbi *dbi; } dbs[] = {
        {"meta", &s->db_meta}, {"tenants", &s->db_tenants}, {"streams", &s->db_streams},
        {"stream_events", &s->db_stream_events}, {"positions", &s->db_positions},
        {"tenant_events", &s->db_tenant_events}, {"event_ids", &s->db_event_ids},
        {"postings", &s->db_postings}, {"times", &s->db_times},
        {"snapshots", &s->db_snapshots},
    };
    for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
        unsigned df = dbs[i].dbi == &s->db_postings ? MDB_DUPSORT | MDB_DUPFIXED : 0;
        if (mdb_dbi_open(txn, dbs[i].name, MDB_CREATE | df, dbs[i].dbi) != 0)
            exit(1);
    }
    uint8_t b[4];
    evs__put_le32(b, EVS_INDEX_FORMAT);
    MDB_val k = {6, "format"}, v = {4, b};
    if (mdb_put(txn, s->db_meta, &k, &v, 0) || mdb_txn_commit(txn))
        exit(1);
    s->next_stream_id = 1;
    s->next_tenant_id = 1;
    s->time_max_us = INT64_MIN;
}

/* recovery.c's replay: every record through evs__idx_apply_record. */
static void replay(evs__emb *s, uint64_t end_pos, uint64_t end_loc)
{
    MDB_txn *txn;
    int rc;
    uint32_t seg = 1, off = EVS_SEG_HEADER_SIZE;
    uint64_t pos = 1, in_txn = 0;
    if (mdb_txn_begin(s->env, NULL, 0, &txn))
        exit(1);
    while (pos <= end_pos) {
        const uint8_t *m = evs__seg_map(s, seg);
        if (off + EVS_REC_FIXED > s->seg_size || evs__get_le32(m + off) == 0) {
            seg++;
            off = EVS_SEG_HEADER_SIZE;
            continue;
        }
        uint32_t len = evs__get_le32(m + off + EVS_REC_OFF_LEN);
        if ((rc = evs__idx_apply_record(txn, s, m + off, evs__loc(seg, off))) < 0)
            die("replay", rc);
        off += evs__pad8(len);
        pos++;
        if (++in_txn == REPLAY_TXN_EVENTS) {
            if (evs__idx_applied_put(txn, s, pos - 1, evs__loc(seg, off)) < 0 ||
                evs__idx_seq_put(txn, s) < 0 || mdb_txn_commit(txn) ||
                mdb_txn_begin(s->env, NULL, 0, &txn))
                die("replay commit", -1);
            in_txn = 0;
        }
    }
    if (evs__idx_applied_put(txn, s, end_pos, end_loc) < 0 || evs__idx_seq_put(txn, s) < 0 ||
        mdb_txn_commit(txn))
        die("replay commit", -1);
}

/* Pages the environment uses (its size on disk). */
static double env_mib(evs__emb *s)
{
    MDB_envinfo info;
    MDB_stat st;
    if (mdb_env_info(s->env, &info) != 0 || mdb_env_stat(s->env, &st) != 0)
        return 0;
    return (double)(info.me_last_pgno + 1) * st.ms_psize / 1048576.0;
}

static void counts(evs__emb *s, uint64_t out[9])
{
    MDB_txn *txn;
    MDB_dbi d[] = {s->db_tenants, s->db_streams, s->db_stream_events, s->db_positions,
                   s->db_tenant_events, s->db_event_ids, s->db_postings, s->db_times,
                   s->db_meta};
    if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn))
        exit(1);
    for (int i = 0; i < 9; i++) {
        MDB_stat st;
        out[i] = mdb_stat(txn, d[i], &st) == 0 ? st.ms_entries : 0;
    }
    mdb_txn_abort(txn);
}

static int usage(void)
{
    fprintf(stderr, "usage: rebuild_bench DIR [--runs N] [--writemap] [--verify] [--bulk-only] [--progress]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *dir = NULL;
    int runs = 3, writemap = 0, verify = 0, bulk_only = 0, progress = 0, rc;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--writemap") == 0)
            writemap = 1;
        else if (strcmp(argv[i], "--verify") == 0)
            verify = 1;
        else if (strcmp(argv[i], "--progress") == 0)
            progress = 1;
        else if (strcmp(argv[i], "--bulk-only") == 0)
            bulk_only = 1; /* for profiling */
        else if (!dir && argv[i][0] != '-')
            dir = argv[i];
        else
            return usage();
    }
    if (!dir || runs < 1)
        return usage();
    evs_db *db;
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    o.flags = 0;
    if ((rc = evs_open(&db, dir, &o)) != 0)
        die("open", rc);
    evs__emb *s = (evs__emb *)db;
    uint64_t end_pos, end_loc;
    MDB_txn *txn;
    if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) ||
        evs__idx_applied_get(txn, s, &end_pos, &end_loc) < 0)
        die("applied", -1);
    mdb_txn_abort(txn);

    /* keep the store's own environment aside; the runs use fresh ones */
    MDB_env *own = s->env;
    MDB_dbi own_dbi[10] = {s->db_meta, s->db_tenants, s->db_streams, s->db_stream_events,
                           s->db_positions, s->db_tenant_events, s->db_event_ids,
                           s->db_postings, s->db_times, s->db_snapshots};
    uint64_t own_sid = s->next_stream_id, c_rep[9], c_bulk[9];
    uint32_t own_tid = s->next_tenant_id;
    int64_t own_tmax = s->time_max_us;
    char path[4096];
    snprintf(path, sizeof(path), "%s/index-bench", dir);

    /* warm the page cache with the log; this first build also maps the
     * log's pages into the process (the later runs find them mapped) */
    fresh_env(s, path, writemap);
    double tw = now_s();
    if ((rc = evs__idx_bulk_build(s, end_pos, end_loc)) < 0)
        die("bulk build", rc);
    tw = now_s() - tw;
    mdb_env_close(s->env);
    printf("first bulk build (log pages not yet mapped in this process): %.3f s "
           "(%.0f events/s)\n", tw, end_pos / tw);

    printf("index rebuild of %" PRIu64 " events (%s)\n", end_pos,
           writemap ? "MDB_WRITEMAP" : "no MDB_WRITEMAP");
    double rep_sum = 0, bulk_sum = 0, rep_mib = 0, bulk_mib = 0;
    for (int r = 0; r < runs; r++) {
        double t0 = now_s(), t1 = t0;
        if (!bulk_only) {
            fresh_env(s, path, writemap);
            t0 = now_s();
            replay(s, end_pos, end_loc);
            t1 = now_s();
            counts(s, c_rep);
            rep_mib = env_mib(s);
            mdb_env_close(s->env);
        }

        fresh_env(s, path, writemap);
        if (progress) {
            s->base.opts.recovery_progress = on_progress;
            prog_t0 = now_s();
        }
        double t2 = now_s();
        if ((rc = evs__idx_bulk_build(s, end_pos, end_loc)) < 0)
            die("bulk build", rc);
        double t3 = now_s();
        s->base.opts.recovery_progress = NULL;
        counts(s, c_bulk);
        bulk_mib = env_mib(s);
        if (!bulk_only && memcmp(c_rep, c_bulk, sizeof(c_rep)) != 0) {
            fprintf(stderr, "rebuild_bench: the two indexes have different entry counts\n");
            return 3;
        }
        if (verify && r == runs - 1) {
            uint64_t checked;
            if ((rc = evs_verify(&checked, db, NULL, NULL)) != 0)
                die("verify", rc);
            printf("verify: %" PRIu64 " events checked, no problem\n", checked);
        }
        mdb_env_close(s->env);
        rep_sum += t1 - t0;
        bulk_sum += t3 - t2;
        printf("run %d: replay %.3f s (%.0f events/s), bulk build %.3f s (%.0f events/s), "
               "%.1fx\n", r + 1, t1 - t0, end_pos / (t1 - t0), t3 - t2,
               end_pos / (t3 - t2), (t1 - t0) / (t3 - t2));
    }
    printf("mean: replay %.0f events/s, bulk build %.0f events/s\n",
           end_pos * runs / rep_sum, end_pos * runs / bulk_sum);
    printf("index size: replay %.1f MiB, bulk build %.1f MiB\n", rep_mib, bulk_mib);
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    if (system(cmd) != 0)
        return 1;

    s->env = own;
    s->db_meta = own_dbi[0]; s->db_tenants = own_dbi[1]; s->db_streams = own_dbi[2];
    s->db_stream_events = own_dbi[3]; s->db_positions = own_dbi[4];
    s->db_tenant_events = own_dbi[5]; s->db_event_ids = own_dbi[6];
    s->db_postings = own_dbi[7]; s->db_times = own_dbi[8]; s->db_snapshots = own_dbi[9];
    s->next_stream_id = own_sid;
    s->next_tenant_id = own_tid;
    s->time_max_us = own_tmax;
    if ((rc = evs_close(db)) != 0)
        die("close", rc);
    return 0;
}
