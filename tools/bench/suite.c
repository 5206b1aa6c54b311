/*
 * suite.c -- the runner of `evs bench`: checks where the results go,
 * opens the store (a fresh one by default), describes the machine and
 * measures fdatasync, loads the generated data (gen.h), runs each selected
 * scenario (suite.h) level by level through bench_util's level_run,
 * verifies that every level's outcomes add up, and hands the figures to
 * report.c. On PostgreSQL it also runs ANALYZE after each bulk load and
 * EXPLAIN of the hot queries at the end, over a connection of its own
 * (explain.h). Then the peers (peer_sqlite.h): the same data loaded into
 * SQLite and the counterparts of the selected scenarios run through the
 * same run_scenario, for the report's side-by-side ratios.
 *
 * Order matters for honesty and for not wasting a user's time: everything
 * that can refuse (results directory, store, a non-empty store without
 * --force) refuses before anything is measured or written to the store.
 */
#include "explain.h"
#include "peer_pg.h"
#include "peer_sqlite.h"
#include "report.h"
#include "scen_util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

_Static_assert((int)BENCH_COMMITTED == (int)OP_COMMITTED &&
                   (int)BENCH_REJECTED == (int)OP_REJECTED &&
                   (int)BENCH_CONFLICT == (int)OP_CONFLICT &&
                   (int)BENCH_ERROR == (int)OP_ERROR,
               "suite.h's outcomes are bench_util's");

#define PROG "evs bench"
#define DEFAULT_EVENTS 1000000u
#define QUICK_EVENTS 50000u
#define DEFAULT_SECONDS 5.0
#define DEFAULT_WARMUP 1.0
#define QUICK_SECONDS 0.5
#define QUICK_WARMUP 0.2
#define FSYNC_SAMPLES 1000
#define QUICK_FSYNC_SAMPLES 200
#define FSYNC_WRITE 4096

void bench_options_init(bench_options *o)
{
    memset(o, 0, sizeof *o);
    o->warmup = -1;
    o->seed = 1;
    o->plots = 1;
    o->peers = BENCH_PEERS_DEFAULT;
    o->transport = BENCH_TRANSPORT_DEFAULT;
}

/* ------------------------------------------------------------------ */
/* The results directory                                               */
/* ------------------------------------------------------------------ */

/* mkdir -p. */
static int mkdir_p(const char *path, char *err, size_t errsize)
{
    char buf[PATH_MAX];
    struct stat st;
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        snprintf(err, errsize, "%s: path too long", path);
        return -1;
    }
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != 0)
            continue;
        char c = *p;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
            snprintf(err, errsize, "cannot create %.900s: %s", buf,
                     strerror(errno));
            return -1;
        }
        *p = c;
        if (!c)
            break;
    }
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errsize, "%s is not a directory", path);
        return -1;
    }
    return 0;
}

/* The directory exists (created) and takes a file. */
static int check_writable(const char *dir, char *err, size_t errsize)
{
    char path[PATH_MAX];
    if (mkdir_p(dir, err, errsize) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/.evs-bench-write-test-XXXXXX", dir);
    int fd = mkstemp(path);
    if (fd < 0) {
        snprintf(err, errsize, "cannot write in %s: %s", dir,
                 strerror(errno));
        return -1;
    }
    int ok = write(fd, "x", 1) == 1;
    close(fd);
    unlink(path);
    if (!ok) {
        snprintf(err, errsize, "cannot write in %s: %s", dir,
                 strerror(errno));
        return -1;
    }
    return 0;
}

/* The files an earlier run wrote, so that none passes for this run's. */
static void clear_old_results(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    if (!d)
        return;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        const char *dot = strrchr(n, '.');
        int ours = strcmp(n, "report.md") == 0 ||
                   strcmp(n, "report.json") == 0 ||
                   strcmp(n, "gnuplot.log") == 0 ||
                   ((strncmp(n, "latency-", 8) == 0 ||
                     strncmp(n, "throughput.", 11) == 0 ||
                     strncmp(n, "throughput-peers.", 17) == 0) &&
                    dot &&
                    (strcmp(dot, ".png") == 0 || strcmp(dot, ".dat") == 0 ||
                     strcmp(dot, ".gp") == 0));
        if (ours) {
            char path[PATH_MAX];
            snprintf(path, sizeof path, "%s/%s", dir, n);
            unlink(path);
        }
    }
    closedir(d);
}

/* ------------------------------------------------------------------ */
/* Ctrl-C and SIGTERM                                                  */
/* ------------------------------------------------------------------ */

/*
 * SIGINT and SIGTERM are blocked in every thread of the run (the mask is
 * set before the store opens, so the library's threads and the workers
 * inherit it) and taken by one thread in sigwait: no code runs in signal
 * context, and no system call of the store or the workers sees EINTR.
 *
 *   first signal  -> g_interrupted = signo; the level under way ends its
 *                    window, the runner stops between levels (and the
 *                    generator between appends), closes the store, removes
 *                    the fresh one, writes no report, exits 128 + signo
 *   second signal -> the same at once (remove, _exit), for a run that does
 *                    not get to a level's end
 */

static sigset_t sig_set, sig_old;
static pthread_t sig_thread;
static int sig_on;
static _Atomic int sig_done; /* the run is over: the next signal ends the
                                thread */

static void say(const char *s) { (void)!write(STDERR_FILENO, s, strlen(s)); }

static void *sig_main(void *arg)
{
    (void)arg;
    for (;;) {
        int sig;
        if (sigwait(&sig_set, &sig) != 0)
            continue;
        if (atomic_load(&sig_done))
            return NULL;
        int first = 0;
        atomic_compare_exchange_strong(&g_interrupted, &first, sig);
        if (first == 0) {
            say(PROG ": interrupted: stopping after the current step (again "
                     "to stop at once)\n");
            continue;
        }
        say(PROG ": interrupted again: stopping now\n");
        if (g_root[0] && !g_keep)
            rm_rf(g_root);
        peer_pg_emergency_stop(); /* a throwaway cluster (peer_pg.h) */
        _exit(128 + first);
    }
    return NULL;
}

static void signals_take(void)
{
    atomic_store(&g_interrupted, 0);
    atomic_store(&sig_done, 0);
    sigemptyset(&sig_set);
    sigaddset(&sig_set, SIGINT);
    sigaddset(&sig_set, SIGTERM);
    if (pthread_sigmask(SIG_BLOCK, &sig_set, &sig_old) != 0)
        return;
    sig_on = pthread_create(&sig_thread, NULL, sig_main, NULL) == 0;
    if (!sig_on)
        pthread_sigmask(SIG_SETMASK, &sig_old, NULL);
}

/* Back to the caller's handling: the thread is woken by a signal of its
 * own (not cancelled: a cancelled sigwait upsets ASan's stack bookkeeping).
 * A signal that arrives after this is the caller's again. */
static void signals_give_back(void)
{
    if (!sig_on)
        return;
    atomic_store(&sig_done, 1);
    pthread_kill(sig_thread, SIGTERM);
    pthread_join(sig_thread, NULL);
    sig_on = 0;
    pthread_sigmask(SIG_SETMASK, &sig_old, NULL);
}

/* ------------------------------------------------------------------ */
/* The store                                                           */
/* ------------------------------------------------------------------ */

static const char *lib_detail(int rc)
{
    const char *d = evs_last_error();
    return d && d[0] ? d : evs_strerror(rc);
}

/* A PostgreSQL URI (src/core/api.c selects the backend the same way). */
static int is_postgres(const char *uri)
{
    return strncmp(uri, "postgresql://", 13) == 0 ||
           strncmp(uri, "postgres://", 11) == 0;
}

/* Opens the store for writing into *db. A store given by --db is first
 * opened read-only (no lock, no recovery: nothing written) to count its
 * events, and refused when it has some and force is not set; *head is its
 * head position then (0 for a fresh or empty store). */
static int open_store(suite_report *r, const bench_options *o, evs_db **db,
                      uint64_t *head, char *err, size_t errsize)
{
    evs_open_options opts = EVS_OPEN_OPTIONS_INIT;
    int rc;

    *db = NULL;
    *head = 0;
    if (!o->db_uri) {
        make_root(o->dir ? o->dir : o->out); /* dies with status 1 */
        r->fresh = 1;
        snprintf(r->store, sizeof r->store, "%s/store", g_root);
        if ((rc = evs_open(db, r->store, &opts)) < 0) {
            snprintf(err, errsize, "cannot create a store in %.900s: %s",
                     r->store, lib_detail(rc));
            return -1;
        }
        return 0;
    }
    snprintf(r->store, sizeof r->store, "%s", o->db_uri);
    struct stat st;
    if (strstr(o->db_uri, "://") || stat(o->db_uri, &st) == 0) {
        evs_db *ro = NULL;
        evs_stats s;
        opts.flags = EVS_OPEN_READONLY;
        rc = evs_open(&ro, o->db_uri, &opts);
        /* A PostgreSQL database without the evstore schema (EVS_EINVAL
         * from a read-only open) holds no store yet: the writing open
         * below creates it (or says why it cannot). */
        if (rc == EVS_EINVAL && is_postgres(o->db_uri))
            goto create;
        if (rc < 0) {
            snprintf(err, errsize, "--db %s: cannot open the store: %s",
                     o->db_uri, lib_detail(rc));
            return -1;
        }
        rc = evs_stats_get(&s, ro);
        if (rc < 0) {
            snprintf(err, errsize, "--db %s: cannot count its events: %s",
                     o->db_uri, lib_detail(rc));
            evs_close(ro);
            return -1;
        }
        evs_close(ro);
        if (s.events > 0 && !o->force) {
            snprintf(err, errsize,
                     "--db %s holds %llu events: the bench writes into the "
                     "store it measures, so it runs on a fresh store unless "
                     "told otherwise (omit --db, or add --force to write "
                     "into this one)",
                     o->db_uri, (unsigned long long)s.events);
            return -1;
        }
    }
create:
    opts.flags = EVS_OPEN_CREATE;
    if ((rc = evs_open(db, o->db_uri, &opts)) < 0) {
        snprintf(err, errsize, "--db %s: cannot open the store for writing: %s",
                 o->db_uri, lib_detail(rc));
        return -1;
    }
    /* The head as the writer sees it (after recovery, which the read-only
     * look above does not run). */
    evs_stats s;
    if ((rc = evs_stats_get(&s, *db)) < 0) {
        snprintf(err, errsize, "--db %s: cannot count its events: %s",
                 o->db_uri, lib_detail(rc));
        evs_close(*db);
        *db = NULL;
        return -1;
    }
    if (s.events > 0)
        *head = s.head_position;
    return 0;
}

/* The directory whose filesystem holds the store (for the machine
 * description and the fdatasync probe). */
static void store_fs_dir(char *out, size_t size, const suite_report *r)
{
    if (r->fresh) {
        snprintf(out, size, "%s", g_root);
        return;
    }
    snprintf(out, size, "%s", r->store);
    size_t n = strlen(out);
    while (n > 1 && out[n - 1] == '/')
        out[--n] = 0;
    char *slash = strrchr(out, '/');
    if (!slash)
        snprintf(out, size, ".");
    else if (slash == out)
        out[1] = 0;
    else
        *slash = 0;
}

/* PostgreSQL: the bench's own connection to the store's database
 * (explain.h), for ANALYZE and EXPLAIN; c is NULL when it did not open,
 * and error says why (every use then fails with that). */
typedef struct bench_pg {
    explain_conn *c;
    char error[512];
} bench_pg;

static int pg_analyze(bench_pg *pg, char *err, size_t errsize)
{
    if (!pg->c) {
        snprintf(err, errsize, "%s", pg->error);
        return -1;
    }
    return explain_analyze(pg->c, err, errsize);
}

/* ------------------------------------------------------------------ */
/* A level: the scenario's op under level_run                          */
/* ------------------------------------------------------------------ */

typedef struct lvl_arg {
    const bench_scenario *sc;
    void *state;
    int nthreads;
} lvl_arg;

typedef struct lvl_thread {
    const bench_scenario *sc;
    void *ts;
    int own;         /* ts came from thread_init */
    int init_failed; /* thread_init returned NULL */
} lvl_thread;

static void *w_init(void *arg, int id)
{
    lvl_arg *a = arg;
    lvl_thread *t = xcalloc(1, sizeof *t);
    t->sc = a->sc;
    if (a->sc->thread_init) {
        t->ts = a->sc->thread_init(a->state, id, a->nthreads);
        t->own = 1;
        t->init_failed = t->ts == NULL;
    } else {
        t->ts = a->state;
    }
    return t;
}

static int w_op(void *st, uint64_t *t0, uint64_t *t1, uint64_t *items,
                char *err, size_t errsize)
{
    lvl_thread *t = st;
    if (t->init_failed) {
        /* Every operation of this thread is an error; slowed down so that
         * it does not fill memory with samples. */
        *t0 = now_ns();
        sleep_s(0.001);
        *t1 = now_ns();
        snprintf(err, errsize, "thread_init failed (returned NULL)");
        return OP_ERROR;
    }
    uint64_t a = 0, b = 0, c0 = now_ns();
    int rc = t->sc->op(t->ts, &a, &b, items, err, errsize);
    uint64_t c1 = now_ns();
    if (a == 0 || b < a) { /* not timed by the scenario: the whole call */
        a = c0;
        b = c1;
    }
    *t0 = a;
    *t1 = b;
    if (rc < BENCH_COMMITTED || rc > BENCH_ERROR) {
        snprintf(err, errsize, "op returned %d, not a BENCH_* outcome", rc);
        return OP_ERROR;
    }
    if (rc == BENCH_ERROR && !err[0])
        snprintf(err, errsize, "error (the scenario gave no message)");
    return rc;
}

static void w_fini(void *st)
{
    lvl_thread *t = st;
    if (t->own && t->ts && t->sc->thread_fini)
        t->sc->thread_fini(t->ts);
    free(t);
}

static const level_ops scenario_ops = {w_init, NULL, w_fini, w_op};

/* ------------------------------------------------------------------ */
/* A scenario                                                          */
/* ------------------------------------------------------------------ */

/* A peer's scenarios run through run_scenario too: their database, and
 * the counter of their busy retries (NULL: none). */
typedef struct peer_run {
    const char *name;
    const char *uri;
    uint64_t (*retries)(void);
    /* before each level, after the syncfs (NULL: nothing): the
       PostgreSQL peers' CHECKPOINT (peer_pg.h) */
    void (*before_level)(const char *uri);
} peer_run;

static void run_scenario(suite_report *r, scen_result *s, evs_db *db,
                         bench_pg *pg, const char *fsdir, int idx, int nsc,
                         const peer_run *peer)
{
    const bench_scenario *sc = s->sc;
    const bench_options *o = r->o;
    char err[512] = "";
    void *state = NULL;
    bench_ctx ctx;
    const char *who = peer ? peer->name : "";
    const char *sep = peer ? ": " : "";

    snprintf(s->tenant, sizeof s->tenant, "bench-%s", sc->name);
    memset(&ctx, 0, sizeof ctx);
    ctx.db = db;
    ctx.db_uri = peer ? peer->uri : r->store;
    ctx.gen = &r->gen;
    ctx.loaded = &r->gst;
    ctx.seed = o->seed;
    ctx.quick = o->quick;
    ctx.tenant = s->tenant;
    ctx.figures = &s->fig;
    ctx.warmup = r->warmup;
    ctx.seconds = r->seconds;
    s->check = -1;
    s->accounting_ok = 1;

    fprintf(stderr, PROG ": [%d/%d] %s%s%s: setup\n", idx + 1, nsc, who, sep,
            sc->name);
    uint64_t t0 = now_ns();
    int rc = sc->setup ? sc->setup(&state, &ctx, err, sizeof err) : 0;
    s->setup_s = (double)(now_ns() - t0) / 1e9;
    if (rc != 0) {
        snprintf(s->setup_error, sizeof s->setup_error, "%s",
                 err[0] ? err : "setup failed (no message)");
        fprintf(stderr, PROG ": %s%s%s: SETUP FAILED: %s\n", who, sep,
                sc->name, s->setup_error);
        s->failed = 1;
        if (sc->teardown && state)
            sc->teardown(state);
        return;
    }
    s->ran = 1;
    /* PostgreSQL: the setup was a bulk load too (dcb-query writes 160 K
     * events of a new tenant): statistics for it, as after the data load.
     * Without them the planner takes the new tenant for an empty one
     * (docs/PERFORMANCE.md, "PostgreSQL backend"). Untimed, stated. */
    if (!peer && is_postgres(r->store)) {
        char aerr[512];
        uint64_t a0 = now_ns();
        int arc = pg_analyze(pg, aerr, sizeof aerr);
        double as = (double)(now_ns() - a0) / 1e9;
        r->analyze_s += as;
        if (arc < 0) {
            r->analyzed = 0;
            fprintf(stderr, PROG ": %s: ANALYZE after setup failed: %s\n",
                    sc->name, aerr);
        } else {
            fprintf(stderr, PROG ": [%d/%d] %s: ANALYZE after setup: %.1f s\n",
                    idx + 1, nsc, sc->name, as);
        }
    }

    const int *levels = o->nthreads ? o->threads
                        : o->quick  ? sc->quick_levels
                                    : sc->levels;
    int nlevels = o->nthreads ? o->nthreads
                  : o->quick  ? sc->nquick_levels
                              : sc->nlevels;
    if (nlevels > BENCH_MAX_LEVELS)
        nlevels = BENCH_MAX_LEVELS;
    if (sc->run && !atomic_load(&g_interrupted)) {
        /* the scenario's own measurement (suite.h); its levels are then
         * checked below as the runner's are */
        fprintf(stderr, PROG ": [%d/%d] %s%s%s: its own measurement\n",
                idx + 1, nsc, who, sep, sc->name);
        sync_fs(fsdir, NULL, NULL, NULL, 0);
        err[0] = 0;
        if (sc->run(state, &ctx, levels, nlevels, s->lv, &s->n, err,
                    sizeof err) != 0) {
            s->failed = 1;
            if (!s->fig.note[0])
                snprintf(s->fig.note, sizeof s->fig.note, "%s",
                         err[0] ? err : "failed (no message)");
            fprintf(stderr, PROG ": %s%s%s: FAILED: %s\n", who, sep,
                    sc->name, err[0] ? err : "(no message)");
        }
        if (s->n > BENCH_MAX_LEVELS)
            s->n = BENCH_MAX_LEVELS;
        nlevels = 0; /* not the runner's levels */
    }
    for (int i = 0; i < s->n && sc->run; i++) {
        const level_result *lv = &s->lv[i];
        if (!counts_ok(&lv->c) || !counts_ok(&lv->warm)) {
            s->accounting_ok = 0;
            s->failed = 1;
            fprintf(stderr, PROG ": %s%s%s: ACCOUNTING BROKEN at level %d\n",
                    who, sep, sc->name, i + 1);
        }
        if (lv->c.errors || lv->warm.errors) {
            s->failed = 1;
            fprintf(stderr, PROG ": %s%s%s: %llu error(s); first: %s\n", who,
                    sep, sc->name,
                    (unsigned long long)(lv->c.errors + lv->warm.errors),
                    lv->error);
        }
    }
    for (int i = 0; i < nlevels && !atomic_load(&g_interrupted); i++) {
        lvl_arg a = {sc, state, levels[i]};
        level_result *lv = &s->lv[s->n++];
        fprintf(stderr,
                PROG ": [%d/%d] %s%s%s, %d thread%s: %.1f s warm-up + %.1f s\n",
                idx + 1, nsc, who, sep, sc->name, levels[i],
                levels[i] == 1 ? "" : "s", r->warmup, r->seconds);
        /* so that one level's writeback does not land in the next one's
         * window */
        sync_fs(fsdir, NULL, NULL, NULL, 0);
        if (peer && peer->before_level)
            peer->before_level(peer->uri);
        uint64_t retries0 = peer && peer->retries ? peer->retries() : 0;
        level_run(lv, &scenario_ops, &a, levels[i], 1, r->warmup,
                  r->seconds);
        if (peer && peer->retries)
            s->retries[s->n - 1] = peer->retries() - retries0;
        if (!counts_ok(&lv->c) || !counts_ok(&lv->warm)) {
            s->accounting_ok = 0;
            s->failed = 1;
            fprintf(stderr,
                    PROG ": %s%s%s, %d threads: ACCOUNTING BROKEN: attempted "
                         "%llu != committed %llu + rejected %llu + "
                         "conflicts %llu + errors %llu\n",
                    who, sep, sc->name, levels[i],
                    (unsigned long long)lv->c.attempted,
                    (unsigned long long)lv->c.committed,
                    (unsigned long long)lv->c.rejected,
                    (unsigned long long)lv->c.conflicts,
                    (unsigned long long)lv->c.errors);
        }
        if (lv->c.errors || lv->warm.errors) {
            s->failed = 1;
            fprintf(stderr, PROG ": %s%s%s, %d threads: %llu error(s); "
                    "first: %s\n", who, sep, sc->name, levels[i],
                    (unsigned long long)(lv->c.errors + lv->warm.errors),
                    lv->error);
        }
    }

    if (sc->check && !atomic_load(&g_interrupted)) {
        err[0] = 0;
        t0 = now_ns();
        rc = sc->check(state, &ctx, err, sizeof err);
        s->check_s = (double)(now_ns() - t0) / 1e9;
        s->check = rc != 0;
        if (rc != 0) {
            snprintf(s->check_error, sizeof s->check_error, "%s",
                     err[0] ? err : "check failed (no message)");
            s->failed = 1;
            fprintf(stderr, PROG ": %s%s%s: CHECK FAILED: %s\n", who, sep,
                    sc->name, s->check_error);
        }
    }
    if (sc->teardown)
        sc->teardown(state);
}

/* ------------------------------------------------------------------ */
/* The peers (peer_sqlite.h): the same data, the shared scenarios       */
/* ------------------------------------------------------------------ */

/* What each peer is, and whether it was asked for. */
static void peers_init(suite_report *r, unsigned peers)
{
    peer_result *p = &r->peers[0];
    p->name = "sqlite";
    p->title = "SQLite";
    p->requested = (peers & BENCH_PEER_SQLITE) != 0;
    snprintf(p->version, sizeof p->version, "%s", peer_sqlite_version());
    p->pragmas = peer_sqlite_pragmas();
    p->schema = peer_sqlite_schema();
    p->retries_what = "BEGIN IMMEDIATE still SQLITE_BUSY after the busy "
                      "timeout, tried again; warm-up included";
    if (!p->requested)
        snprintf(p->note, sizeof p->note, "not requested (--peers)");
    /* the PostgreSQL peers (peer_pg.h; run_pg_peers) */
    p = &r->peers[1];
    p->name = "postgres";
    p->title = "PostgreSQL";
    p->requested = (peers & BENCH_PEER_POSTGRES) != 0;
    p->pragmas = "the server's (the environment's \"PostgreSQL peers' "
                 "server\" row)";
    p->schema = peer_pgbench_schema();
    p->load_how = "none: pgbench inserts into an empty table";
    if (!p->requested)
        snprintf(p->note, sizeof p->note, "not requested (--peers)");
    p = &r->peers[2];
    p->name = "messagedb";
    p->title = "Message DB";
    p->requested = (peers & BENCH_PEER_MESSAGEDB) != 0;
    snprintf(p->version, sizeof p->version, "%s", PEER_MDB_VERSION);
    p->pragmas = "the server's (the environment's \"PostgreSQL peers' "
                 "server\" row); every connection "
                 "sets search_path = message_store, public";
    p->schema =
        "-- Message DB's own: its database/ scripts, run by its install.sh\n"
        "CREATE TABLE message_store.messages (\n"
        "  global_position bigserial NOT NULL,  -- the primary key\n"
        "  position bigint NOT NULL,\n"
        "  time TIMESTAMP WITHOUT TIME ZONE DEFAULT (now() AT TIME ZONE "
        "'utc') NOT NULL,\n"
        "  stream_name text NOT NULL,\n"
        "  type text NOT NULL,\n"
        "  data jsonb,\n"
        "  metadata jsonb,\n"
        "  id UUID NOT NULL DEFAULT gen_random_uuid());\n"
        "CREATE UNIQUE INDEX messages_id ON message_store.messages (id);\n"
        "CREATE UNIQUE INDEX messages_stream ON message_store.messages "
        "(stream_name, position);\n"
        "CREATE INDEX messages_category ON message_store.messages (\n"
        "  message_store.category(stream_name), global_position,\n"
        "  message_store.category(metadata->>'correlationStreamName'));\n"
        "-- and its functions (write_message, get_stream_messages,\n"
        "-- get_category_messages, ...), views and grants";
    p->load_how = "the same generated events (ids, types, payloads, "
                  "metadata; Message DB has no tags and stamps its own "
                  "time), no snapshots, through write_message with each "
                  "event's expected version, one transaction per tenant's "
                  "run of events (the calls sent in one libpq pipeline), "
                  "stream tenantNN-<stream> (the tenant is the category), "
                  "then ANALYZE";
    if (!p->requested)
        snprintf(p->note, sizeof p->note, "not requested (--peers)");
}

/* The SQLite peer, after evstore's scenarios: its database beside the
 * store (in the fresh store's temporary directory, or in a temporary
 * directory of its own under --dir / --out when --db was given), the
 * generated data loaded, then the counterpart of each selected scenario
 * that has one. dir_made: the temporary directory made here (removed by
 * the caller), or "". */
static void run_sqlite(suite_report *r, const bench_options *o,
                       const scen_result *evs, int nevs, const char *fsdir,
                       char *dir_made, size_t dir_size)
{
    peer_result *p = &r->peers[0];
    char dir[PATH_MAX], err[512] = "";
    int n = 0;

    dir_made[0] = 0;
    for (int i = 0; i < nevs; i++)
        n += peer_sqlite_scenario(evs[i].sc->name) != NULL;
    if (n == 0) {
        snprintf(p->note, sizeof p->note,
                 "skipped: none of the selected scenarios has a SQLite "
                 "counterpart (append-1, batch, aggregate, stream-batches, "
                 "dcb-query, dcb-workflow)");
        fprintf(stderr, PROG ": sqlite: %s\n", p->note);
        return;
    }
    if (r->fresh) {
        snprintf(dir, sizeof dir, "%s", g_root);
    } else {
        snprintf(dir, sizeof dir, "%s/evs-bench-sqlite-XXXXXX",
                 o->dir ? o->dir : o->out);
        if (!mkdtemp(dir)) {
            p->failed = 1;
            snprintf(p->note, sizeof p->note, "cannot create %.400s: %s", dir,
                     strerror(errno));
            fprintf(stderr, PROG ": sqlite: %s\n", p->note);
            return;
        }
        snprintf(dir_made, dir_size, "%s", dir);
    }
    snprintf(p->path, sizeof p->path, "%.*s/peer-sqlite.db",
             (int)(sizeof p->path - 20), dir);
    fprintf(stderr, PROG ": sqlite: loading the same %llu events into %s\n",
            (unsigned long long)r->gen.events, p->path);
    gen_config cfg = r->gen;
    cfg.progress = 0;
    uint64_t t0 = now_ns();
    int rc = peer_sqlite_load(p->path, &cfg, &p->load_events,
                              &p->load_commits, err, sizeof err);
    p->load_s = (double)(now_ns() - t0) / 1e9;
    if (rc != 0) {
        if (rc < 0)
            p->failed = 1;
        snprintf(p->note, sizeof p->note, "loading the data failed: %.480s",
                 err);
        fprintf(stderr, PROG ": sqlite: %s\n", p->note);
        return;
    }
    fprintf(stderr, PROG ": sqlite: %llu events in %.1f s (%.0f events/s)\n",
            (unsigned long long)p->load_events, p->load_s,
            p->load_s > 0 ? (double)p->load_events / p->load_s : 0.0);
    p->sr = xcalloc((size_t)n, sizeof *p->sr);
    p->evs = xcalloc((size_t)n, sizeof *p->evs);
    for (int i = 0; i < nevs; i++) {
        const bench_scenario *sc = peer_sqlite_scenario(evs[i].sc->name);
        if (!sc)
            continue;
        p->sr[p->nsr].sc = sc;
        p->sr[p->nsr].check = -1;
        p->sr[p->nsr].accounting_ok = 1;
        p->evs[p->nsr++] = &evs[i];
    }
    p->ran = 1;
    peer_run pr = {"sqlite", p->path, peer_sqlite_retries, NULL};
    for (int i = 0; i < p->nsr && !atomic_load(&g_interrupted); i++) {
        run_scenario(r, &p->sr[i], NULL, NULL, fsdir, i, p->nsr, &pr);
        p->failed |= p->sr[i].failed;
    }
    p->bytes = peer_sqlite_bytes(p->path);
}

/* The PostgreSQL peers (peer_pg.h), after SQLite: both skipped with one
 * note, or marked failed with it. */
/* Before a PostgreSQL peer's level (peer_run.before_level) and after its
 * load: CHECKPOINT, the server's counterpart of the syncfs between levels
 * (its dirty buffers are its own, not the kernel's). Not timed; a server
 * that refuses it (no superuser, no pg_checkpoint) is said once. */
static int g_checkpoint_refused;

static void pg_checkpoint(const char *conninfo)
{
    char err[512];
    if (g_checkpoint_refused)
        return;
    if (peer_pg_checkpoint(conninfo, err, sizeof err) != 0) {
        g_checkpoint_refused = 1;
        fprintf(stderr, PROG ": CHECKPOINT between levels refused, left "
                "out: %s\n", err);
    }
}

static void pg_peers_note(suite_report *r, int failed, const char *msg)
{
    for (int i = 1; i <= 2; i++) {
        peer_result *p = &r->peers[i];
        if (!p->requested || p->ran || p->note[0])
            continue;
        p->failed |= failed;
        snprintf(p->note, sizeof p->note, "%s", msg);
        fprintf(stderr, PROG ": %s: %s\n", p->name, p->note);
    }
}

/* The raw-PostgreSQL peer: pgbench's levels of the counterparts of the
 * selected scenarios, in a fresh database, dropped after unless keep. */
static void run_pgbench_peer(suite_report *r, const bench_options *o,
                             const pg_server *srv, const scen_result *evs,
                             int nevs, const char *fsdir, const char *work)
{
    peer_result *p = &r->peers[1];
    char db[64], ci[2400], err[512] = "";
    int n = 0;
    for (int i = 0; i < nevs; i++)
        n += peer_pgbench_scenario(evs[i].sc->name) != NULL;
    if (n == 0) {
        snprintf(p->note, sizeof p->note, "skipped: none of the selected "
                 "scenarios has a raw-PostgreSQL counterpart (append-1, "
                 "batch)");
        return;
    }
    snprintf(p->version, sizeof p->version, "%s", srv->version);
    snprintf(db, sizeof db, "evs_bench_raw_%ld", (long)getpid());
    snprintf(p->path, sizeof p->path, "%s on %.3000s", db,
             srv->shown);
    if (peer_pg_create_db(srv, db, ci, sizeof ci, err, sizeof err) != 0 ||
        peer_pgbench_prepare(ci, err, sizeof err) != 0) {
        p->failed = 1;
        snprintf(p->note, sizeof p->note, "cannot make its database: %.450s",
                 err);
        fprintf(stderr, PROG ": postgres: %s\n", p->note);
        peer_pg_drop_db(srv, db);
        return;
    }
    p->sr = xcalloc((size_t)n, sizeof *p->sr);
    p->evs = xcalloc((size_t)n, sizeof *p->evs);
    for (int i = 0; i < nevs; i++) {
        const bench_scenario *sc = peer_pgbench_scenario(evs[i].sc->name);
        if (!sc)
            continue;
        p->sr[p->nsr].sc = sc;
        p->sr[p->nsr].check = -1;
        p->sr[p->nsr].accounting_ok = 1;
        p->evs[p->nsr++] = &evs[i];
    }
    p->ran = 1;
    for (int i = 0; i < p->nsr && !atomic_load(&g_interrupted); i++) {
        scen_result *s = &p->sr[i];
        const bench_scenario *sc = s->sc;
        const int *levels = o->nthreads ? o->threads
                            : o->quick  ? sc->quick_levels
                                        : sc->levels;
        int nlevels = o->nthreads ? o->nthreads
                      : o->quick  ? sc->nquick_levels
                                  : sc->nlevels;
        uint64_t rows = 0;
        snprintf(s->tenant, sizeof s->tenant, "bench-%s", sc->name);
        s->ran = 1;
        for (int l = 0; l < nlevels && l < BENCH_MAX_LEVELS &&
                        !atomic_load(&g_interrupted); l++) {
            fprintf(stderr, PROG ": [%d/%d] postgres: %s, %d client%s: "
                    "pgbench\n", i + 1, p->nsr, sc->name, levels[l],
                    levels[l] == 1 ? "" : "s");
            sync_fs(fsdir, NULL, NULL, NULL, 0);
            pg_checkpoint(ci);
            if (peer_pgbench_level(s, ci, work, levels[l], r->warmup,
                                   r->seconds, &rows, err, sizeof err) != 0) {
                s->failed = 1;
                snprintf(s->setup_error, sizeof s->setup_error, "%s", err);
                fprintf(stderr, PROG ": postgres: %s: %s\n", sc->name, err);
                break;
            }
            const level_result *lv = &s->lv[s->n - 1];
            if (!counts_ok(&lv->c) || !counts_ok(&lv->warm))
                s->accounting_ok = 0;
            if (lv->c.errors || lv->warm.errors) {
                s->failed = 1;
                fprintf(stderr, PROG ": postgres: %s, %d clients: errors; "
                        "first: %s\n", sc->name, levels[l], lv->error);
            }
        }
        s->failed |= !s->accounting_ok;
        if (!atomic_load(&g_interrupted) && !s->setup_error[0]) {
            uint64_t t0 = now_ns();
            s->check = peer_pgbench_check(ci, s, rows, s->check_error,
                                          sizeof s->check_error) != 0;
            s->check_s = (double)(now_ns() - t0) / 1e9;
            s->failed |= s->check == 1;
        }
        p->failed |= s->failed;
    }
    p->bytes = peer_pg_db_bytes(ci);
    if (o->keep)
        fprintf(stderr, PROG ": postgres: database %s kept\n", db);
    else
        peer_pg_drop_db(srv, db);
}

/* The Message DB peer: installed by its own install.sh into a fresh
 * database, the data loaded, the counterparts run through run_scenario. */
static void run_mdb_peer(suite_report *r, const bench_options *o,
                         const pg_server *srv, const scen_result *evs,
                         int nevs, const char *fsdir, const char *work)
{
    peer_result *p = &r->peers[2];
    char db[64], ci[2400], pkg[PATH_MAX], log[PATH_MAX], err[512] = "";
    int n = 0;
    for (int i = 0; i < nevs; i++)
        n += peer_mdb_scenario(evs[i].sc->name) != NULL;
    if (n == 0) {
        snprintf(p->note, sizeof p->note, "skipped: none of the selected "
                 "scenarios has a Message DB counterpart (append-1, batch, "
                 "aggregate, stream-batches)");
        return;
    }
    if (peer_mdb_find(pkg, sizeof pkg, err, sizeof err) != 0) {
        p->failed = o->peers_given;
        snprintf(p->note, sizeof p->note, "%s%.480s",
                 o->peers_given ? "" : "skipped: ", err);
        fprintf(stderr, PROG ": messagedb: %s\n", p->note);
        return;
    }
    snprintf(db, sizeof db, "evs_bench_mdb_%ld", (long)getpid());
    snprintf(p->path, sizeof p->path, "%s on %.3000s", db,
             srv->shown);
    snprintf(log, sizeof log, "%.*s/messagedb-install.log",
             (int)sizeof log - 32, work);
    fprintf(stderr, PROG ": messagedb: installing Message DB %s into %s "
            "(its install.sh)\n", PEER_MDB_VERSION, db);
    if (peer_pg_create_db(srv, db, ci, sizeof ci, err, sizeof err) != 0 ||
        peer_mdb_install(srv, pkg, db, log, err, sizeof err) != 0) {
        p->failed = 1;
        snprintf(p->note, sizeof p->note, "cannot install it: %.470s", err);
        fprintf(stderr, PROG ": messagedb: %s\n", p->note);
        peer_pg_drop_db(srv, db);
        return;
    }
    snprintf(p->version, sizeof p->version, "%s (message_store_version %s)",
             PEER_MDB_VERSION, peer_mdb_store_version(ci));
    fprintf(stderr, PROG ": messagedb: loading the same %llu events\n",
            (unsigned long long)r->gen.events);
    gen_config cfg = r->gen;
    cfg.progress = 0;
    uint64_t t0 = now_ns();
    int rc = peer_mdb_load(ci, &cfg, &p->load_events, &p->load_commits, err,
                           sizeof err);
    p->load_s = (double)(now_ns() - t0) / 1e9;
    if (rc != 0) {
        p->failed = rc < 0;
        snprintf(p->note, sizeof p->note, "loading the data failed: %.470s",
                 err);
        fprintf(stderr, PROG ": messagedb: %s\n", p->note);
    } else {
        fprintf(stderr, PROG ": messagedb: %llu events in %.1f s (%.0f "
                "events/s)\n", (unsigned long long)p->load_events, p->load_s,
                p->load_s > 0 ? (double)p->load_events / p->load_s : 0.0);
        p->sr = xcalloc((size_t)n, sizeof *p->sr);
        p->evs = xcalloc((size_t)n, sizeof *p->evs);
        for (int i = 0; i < nevs; i++) {
            const bench_scenario *sc = peer_mdb_scenario(evs[i].sc->name);
            if (!sc)
                continue;
            p->sr[p->nsr].sc = sc;
            p->sr[p->nsr].check = -1;
            p->sr[p->nsr].accounting_ok = 1;
            p->evs[p->nsr++] = &evs[i];
        }
        p->ran = 1;
        peer_run pr = {"messagedb", ci, NULL, pg_checkpoint};
        for (int i = 0; i < p->nsr && !atomic_load(&g_interrupted); i++) {
            run_scenario(r, &p->sr[i], NULL, NULL, fsdir, i, p->nsr, &pr);
            p->failed |= p->sr[i].failed;
        }
    }
    p->bytes = peer_pg_db_bytes(ci);
    if (o->keep)
        fprintf(stderr, PROG ": messagedb: database %s kept\n", db);
    else
        peer_pg_drop_db(srv, db);
}

/* The PostgreSQL peers: their server (--pg-uri, the --db server, or a
 * throwaway cluster started here and stopped and removed after), which
 * evstore figures they stand beside, then each peer. */
static void run_pg_peers(suite_report *r, const bench_options *o,
                         const scen_result *evs, int nevs, const char *fsdir)
{
    peer_result *pp = &r->peers[1], *pm = &r->peers[2];
    const char *uri = o->pg_uri     ? o->pg_uri
                      : is_postgres(r->store) ? r->store
                                              : NULL;
    char err[512] = "", work[PATH_MAX];
    static pg_server srv;

    if (!pp->requested && !pm->requested)
        return;
    if (!uri && !o->pg_throwaway) {
        pg_peers_note(r, 0, "skipped: no PostgreSQL server (give --pg-uri "
                      "URI, run the bench with --db postgresql://..., or "
                      "add --pg-throwaway)");
        return;
    }
    if (!r->gen_ok) {
        pg_peers_note(r, 0, "skipped: the data could not be loaded into "
                      "evstore");
        return;
    }
    if (atomic_load(&g_interrupted))
        return;
    snprintf(work, sizeof work, "%s/evs-bench-pgpeers-XXXXXX",
             o->dir ? o->dir : o->out);
    if (!mkdtemp(work)) {
        snprintf(err, sizeof err, "cannot create %.400s: %s", work,
                 strerror(errno));
        pg_peers_note(r, 1, err);
        return;
    }
    if (o->pg_throwaway) {
        fprintf(stderr, PROG ": starting a throwaway PostgreSQL cluster\n");
        if (peer_pg_throwaway_start(&srv, o->dir ? o->dir : o->out, err,
                                    sizeof err) != 0) {
            pg_peers_note(r, 1, err);
            rm_rf(work);
            return;
        }
        fprintf(stderr, PROG ": PostgreSQL %s in %s\n", srv.version,
                srv.dir);
    } else if (peer_pg_server_open(&srv, uri, err, sizeof err) != 0) {
        char msg[700];
        snprintf(msg, sizeof msg, "the PostgreSQL server (%s): %.500s",
                 o->pg_uri ? "--pg-uri" : "--db", err);
        pg_peers_note(r, 1, msg);
        rm_rf(work);
        return;
    }
    srv.same_as_store = !o->pg_throwaway && !o->pg_uri &&
                        is_postgres(r->store);
    for (int i = 1; i <= 2; i++) {
        peer_result *p = &r->peers[i];
        snprintf(p->server, sizeof p->server, "%.400s; %.280s", srv.shown,
                 srv.settings);
        if (srv.same_as_store)
            snprintf(p->compare, sizeof p->compare,
                     "beside evstore on PostgreSQL, on the same server "
                     "(this run's --db)");
        else if (is_postgres(r->store))
            snprintf(p->compare, sizeof p->compare,
                     "beside evstore on PostgreSQL (--db), the peer on "
                     "the server of %s",
                     o->pg_throwaway ? "--pg-throwaway" : "--pg-uri");
        else
            snprintf(p->compare, sizeof p->compare,
                     "beside evstore's embedded figures (this run's store "
                     "is embedded; run the bench with --db "
                     "postgresql://... for evstore on PostgreSQL)");
    }
    if (pp->requested && !atomic_load(&g_interrupted))
        run_pgbench_peer(r, o, &srv, evs, nevs, fsdir, work);
    if (pm->requested && !atomic_load(&g_interrupted))
        run_mdb_peer(r, o, &srv, evs, nevs, fsdir, work);
    if (srv.throwaway) {
        fprintf(stderr, PROG ": stopping and removing the throwaway "
                "cluster %s\n", srv.dir);
        peer_pg_throwaway_stop(&srv);
    }
    if (o->keep)
        fprintf(stderr, PROG ": pgbench's and install.sh's logs kept in "
                "%s\n", work);
    else
        rm_rf(work);
}

/* ------------------------------------------------------------------ */
/* The transport (transport.h): evstore's scenarios over gRPC           */
/* ------------------------------------------------------------------ */

/* `evs serve` on a fresh store directory (in the fresh store's temporary
 * directory, or in one of its own under --dir / --out when --db named an
 * embedded store), or on the --db PostgreSQL database; its log beside.
 * dir_made: the temporary directory made here (removed by the caller), or
 * "". */
static void run_transport(suite_report *r, const bench_options *o,
                          char *dir_made, size_t dir_size)
{
    transport_result *t = &r->tp;
    int want = o->transport == BENCH_TRANSPORT_GRPC ||
               (o->transport == BENCH_TRANSPORT_DEFAULT && !o->quick);
    dir_made[0] = 0;
    if (!want) {
        snprintf(t->note, sizeof t->note, "%s",
                 o->transport == BENCH_TRANSPORT_NONE
                     ? "not run (--transport none)"
                     : "skipped in the quick run (--transport grpc runs a "
                       "small pass)");
        transport_goals(t);
        return;
    }
    if (!r->gen_ok || atomic_load(&g_interrupted)) {
        t->requested = 1;
        snprintf(t->note, sizeof t->note,
                 "skipped: the data could not be loaded into evstore");
        transport_goals(t);
        return;
    }
    char dir[PATH_MAX], db[PATH_MAX], log[PATH_MAX];
    if (r->fresh) {
        snprintf(dir, sizeof dir, "%s", g_root);
    } else {
        snprintf(dir, sizeof dir, "%s/evs-bench-grpc-XXXXXX",
                 o->dir ? o->dir : o->out);
        if (!mkdtemp(dir)) {
            t->requested = 1;
            t->failed = 1;
            snprintf(t->note, sizeof t->note, "cannot create %.400s: %s", dir,
                     strerror(errno));
            fprintf(stderr, PROG ": grpc: %s\n", t->note);
            transport_goals(t);
            return;
        }
        snprintf(dir_made, dir_size, "%s", dir);
    }
    if (is_postgres(r->store))
        snprintf(db, sizeof db, "%s", r->store);
    else
        snprintf(db, sizeof db, "%.*s/grpc-store", (int)sizeof db - 16, dir);
    snprintf(log, sizeof log, "%.*s/serve.log", (int)sizeof log - 16, dir);
    transport_config cfg = {db, log, o->quick, r->seconds, r->warmup, o->seed};
    transport_run(t, &cfg);
}

/* ------------------------------------------------------------------ */
/* PostgreSQL: EXPLAIN of the hot queries                              */
/* ------------------------------------------------------------------ */

static char *xstrdup_or(const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d)
        die("out of memory");
    return d;
}

static int explain_cb(void *ctx, const explained *e)
{
    suite_report *r = ctx;
    r->ex = realloc(r->ex, (size_t)(r->nex + 1) * sizeof *r->ex);
    if (!r->ex)
        die("out of memory");
    explain_entry *x = &r->ex[r->nex++];
    x->name = xstrdup_or(e->name);
    x->params = xstrdup_or(e->params);
    x->index = xstrdup_or(e->index);
    x->plan = xstrdup_or(e->plan);
    x->used = e->used;
    x->failed = e->failed;
    x->exec_ms = e->exec_ms;
    return 0;
}

/* After the scenarios, on the loaded data: the backend's hot queries
 * explained with parameters sampled from the biggest generated tenant, and
 * the query the dcb-query scenario runs (scen_dcb.c: a book's BookLent /
 * BookReturned events by its tag) when that scenario ran. */
static void run_explain(suite_report *r, bench_pg *pg)
{
    static const char *const loan_types[] = {"BookLent", "BookReturned"};
    static const char *const book_tag[] = {"book:0"};
    static const evs_query_item item = {loan_types, 2, book_tag, 1};
    static const evs_query dcb_query = {&item, 1};
    explain_extra extra[1];
    size_t nextra = 0;
    char tenant[EVS_MAX_TENANT_LEN + 1];
    bench_ctx ctx;

    memset(&ctx, 0, sizeof ctx);
    ctx.gen = &r->gen;
    ctx.loaded = &r->gst;
    scen_gen_tenant(tenant, sizeof tenant, scen_biggest_tenant(&ctx));
    for (int i = 0; i < r->nsr; i++)
        if (r->sr[i].ran && strcmp(r->sr[i].sc->name, "dcb-query") == 0) {
            extra[nextra].name = "DCB query (dcb-query scenario)";
            extra[nextra].tenant = r->sr[i].tenant;
            extra[nextra].query = &dcb_query;
            nextra++;
        }
    fprintf(stderr, PROG ": EXPLAIN (ANALYZE, BUFFERS) of the hot queries\n");
    r->explain_run = 1;
    int rc = -1;
    if (pg->c)
        rc = explain_hot_queries(pg->c, tenant, extra, nextra, explain_cb, r,
                                 r->explain_error, sizeof r->explain_error);
    else
        snprintf(r->explain_error, sizeof r->explain_error, "%s", pg->error);
    if (rc != 0)
        fprintf(stderr, PROG ": EXPLAIN stopped: %s\n", r->explain_error);
    for (int i = 0; i < r->nex; i++)
        if (r->ex[i].failed)
            fprintf(stderr, PROG ": EXPLAIN of %s failed: %s\n", r->ex[i].name,
                    r->ex[i].plan);
}

/* ------------------------------------------------------------------ */
/* The run                                                             */
/* ------------------------------------------------------------------ */

/* The rebuild figure of the report; a store that does not open again
 * fails the run as a failed load would (nothing to run the scenarios on). */
static void measure_index_rebuild(suite_report *r, evs_db **db)
{
    fprintf(stderr, PROG ": index rebuild from the log\n");
    if (bench_index_rebuild(&r->rebuild, db, r->store) != 0) {
        r->gen_ok = 0;
        snprintf(r->gen_error, sizeof r->gen_error,
                 "the store did not open again after the index rebuild: %.400s",
                 r->rebuild.error);
        fprintf(stderr, PROG ": %s\n", r->gen_error);
        return;
    }
    const rebuild_figure *b = &r->rebuild;
    if (b->ok)
        fprintf(stderr, PROG ": %llu events: open without an index %.2f s "
                "(%.0f events/s)\n", (unsigned long long)b->events, b->reopen_s,
                b->reopen_s > 0 ? (double)b->events / b->reopen_s : 0.0);
    else
        fprintf(stderr, PROG ": index rebuild: %s\n", b->error);
}

static int suite_run(const bench_options *o_in);

/* Free n scenario results and the figures their scenarios allocated
 * (bench_figures.md, .json). NULL-safe. */
static void free_results(scen_result *sr, int n)
{
    for (int i = 0; sr && i < n; i++) {
        free(sr[i].fig.md);
        free(sr[i].fig.json);
    }
    free(sr);
}

int bench_suite_run(const bench_options *o)
{
    signals_take();
    int status = suite_run(o);
    signals_give_back();
    return status;
}

static int suite_run(const bench_options *o_in)
{
    bench_options o = *o_in;
    static suite_report r;
    char err[1024] = "";
    char fsdir[PATH_MAX];
    evs_db *db = NULL;
    bench_pg pg = {NULL, ""};

    memset(&r, 0, sizeof r);
    if (!o.out)
        o.out = "bench-results";
    r.o = &o;
    r.seconds = o.seconds > 0 ? o.seconds
                : o.quick     ? QUICK_SECONDS
                              : DEFAULT_SECONDS;
    r.warmup = o.warmup >= 0 ? o.warmup
               : o.quick     ? QUICK_WARMUP
                             : DEFAULT_WARMUP;
    r.label = o.label ? o.label : getenv("EVS_BENCH_LABEL");
    if (r.label && !r.label[0])
        r.label = NULL;
    r.version = evs_version();

    bench_init(PROG);
    g_die_status = 1;
    g_hang_status = 1;
    g_keep = o.keep;

    /* 1. Where the results go: before anything else. */
    if (check_writable(o.out, err, sizeof err) != 0) {
        fprintf(stderr, PROG ": --out: %s\n", err);
        return 1;
    }
    if (o.dir && strcmp(o.dir, o.out) != 0 && !o.db_uri &&
        check_writable(o.dir, err, sizeof err) != 0) {
        fprintf(stderr, PROG ": --dir: %s\n", err);
        return 1;
    }

    /* 2. The store. */
    uint64_t head = 0;
    if (open_store(&r, &o, &db, &head, err, sizeof err) != 0) {
        fprintf(stderr, PROG ": %s\n", err);
        if (r.fresh && !o.keep)
            rm_rf(g_root);
        return 1;
    }
    if (is_postgres(r.store) &&
        explain_open(&pg.c, r.store, pg.error, sizeof pg.error) != 0)
        fprintf(stderr, PROG ": no connection of its own to %s (no ANALYZE, "
                        "no EXPLAIN): %s\n", r.store, pg.error);
    clear_old_results(o.out);
    uint64_t t_start = now_ns();
    loadavg(r.load_start, sizeof r.load_start);

    /* 3. The environment, and fdatasync as the store's filesystem does
     * it. */
    store_fs_dir(fsdir, sizeof fsdir, &r);
    describe_machine(&r.m, r.fresh ? g_root : r.store);
    snprintf(r.date, sizeof r.date, "%s", r.m.date);
#ifndef __OPTIMIZE__
    fprintf(stderr, PROG ": warning: built without optimization\n");
#endif
    fprintf(stderr, PROG ": store %s (%s on %s)\n", r.store, r.m.fs_type,
            r.m.disk);
    r.fsync_n = o.quick ? QUICK_FSYNC_SAMPLES : FSYNC_SAMPLES;
    r.fsync_bytes = FSYNC_WRITE;
    snprintf(r.fsync_dir, sizeof r.fsync_dir, "%s", fsdir);
    r.fsync_ok = fsync_probe(fsdir, r.fsync_n, r.fsync_bytes, &r.fsync, NULL,
                             r.fsync_error, sizeof r.fsync_error) == 0;
    if (r.fsync_ok)
        fprintf(stderr, PROG ": fdatasync of %zu B: p50 %.3f ms, p99 %.3f ms\n",
                r.fsync_bytes, r.fsync.p50, r.fsync.p99);
    else
        fprintf(stderr, PROG ": fdatasync probe failed: %s\n", r.fsync_error);

    /* 4. The data. */
    gen_config_init(&r.gen);
    r.gen.events = o.events ? o.events
                   : o.quick ? QUICK_EVENTS
                             : DEFAULT_EVENTS;
    r.gen.seed = o.seed;
    r.gen.progress = 1;
    /* --db --force on a store with events: stream numbers above its head,
     * as `evs generate --force` does, so that the generated streams are
     * new (no expected-version clash) and their event ids differ. */
    r.gen.stream_base = head;
    r.gen.stop = &g_interrupted;
    fprintf(stderr, PROG ": generating %llu events\n",
            (unsigned long long)r.gen.events);
    uint64_t t0 = now_ns();
    int rc = gen_load(db, &r.gen, &r.gst, r.gen_error, sizeof r.gen_error);
    r.gen_s = (double)(now_ns() - t0) / 1e9;
    r.gen_ok = rc == 0;
    if (atomic_load(&g_interrupted)) {
        /* said below */
    } else if (!r.gen_ok) {
        if (!r.gen_error[0])
            snprintf(r.gen_error, sizeof r.gen_error, "%s", evs_strerror(rc));
        fprintf(stderr, PROG ": loading the data failed: %s\n", r.gen_error);
    } else {
        fprintf(stderr, PROG ": %llu events in %.1f s (%.0f events/s)\n",
                (unsigned long long)r.gst.events, r.gen_s,
                r.gen_s > 0 ? (double)r.gst.events / r.gen_s : 0.0);
    }

    /* PostgreSQL: statistics for the planner, as autovacuum would gather
     * them after a bulk load (the load takes less than its first round;
     * without them the scenarios would measure plans made blind). */
    if (r.gen_ok && is_postgres(r.store) && !atomic_load(&g_interrupted)) {
        t0 = now_ns();
        rc = pg_analyze(&pg, err, sizeof err);
        r.analyze_s = (double)(now_ns() - t0) / 1e9;
        r.analyzed = rc == 0;
        if (rc == 0)
            fprintf(stderr, PROG ": ANALYZE after the load: %.1f s\n", r.analyze_s);
        else
            fprintf(stderr, PROG ": ANALYZE after the load failed: %s\n", err);
    }

    /* The index rebuilt from the log (embedded stores; index_rebuild.c):
     * closes the store and opens it again. */
    if (r.gen_ok && !is_postgres(r.store) && !atomic_load(&g_interrupted))
        measure_index_rebuild(&r, &db);

    /* 5. The scenarios. */
    const bench_scenario *all[BENCH_MAX_SCENARIOS];
    int nsc = 0;
    if (o.nscenarios) {
        for (int i = 0; i < o.nscenarios; i++)
            all[nsc++] = o.scenarios[i];
    } else {
        for (int i = 0; bench_scenarios[i] && nsc < BENCH_MAX_SCENARIOS; i++)
            all[nsc++] = bench_scenarios[i];
    }
    r.sr = xcalloc((size_t)nsc, sizeof *r.sr);
    r.nsr = nsc;
    for (int i = 0; i < nsc; i++) {
        r.sr[i].sc = all[i];
        r.sr[i].check = -1;
        r.sr[i].accounting_ok = 1;
    }
    if (r.gen_ok)
        for (int i = 0; i < nsc && !atomic_load(&g_interrupted); i++)
            run_scenario(&r, &r.sr[i], db, &pg, fsdir, i, nsc, NULL);

    /* 6. PostgreSQL: the plans of the hot queries on the loaded data. */
    if (r.gen_ok && is_postgres(r.store) && !atomic_load(&g_interrupted))
        run_explain(&r, &pg);

    /* 6a. The transport: the scenarios over gRPC against `evs serve`
     * (transport.h), on a store of its own (or the same PostgreSQL
     * database), after evstore's in-process scenarios. */
    char tp_dir[PATH_MAX] = "";
    run_transport(&r, &o, tp_dir, sizeof tp_dir);
    if (tp_dir[0]) {
        if (o.keep)
            fprintf(stderr, PROG ": gRPC server's store kept in %s\n", tp_dir);
        else
            rm_rf(tp_dir);
    }

    /* 6b. The peers: the same data and the shared scenarios on another
     * store, after evstore's (which so ran on a machine the peer had not
     * yet touched). */
    char peer_dir[PATH_MAX] = "";
    peers_init(&r, o.peers);
    if (r.peers[0].requested && !atomic_load(&g_interrupted)) {
        if (!r.gen_ok)
            snprintf(r.peers[0].note, sizeof r.peers[0].note,
                     "skipped: the data could not be loaded into evstore");
        else
            run_sqlite(&r, &o, r.sr, nsc, fsdir, peer_dir, sizeof peer_dir);
    }
    if (peer_dir[0]) {
        if (o.keep)
            fprintf(stderr, PROG ": SQLite database kept in %s\n", peer_dir);
        else
            rm_rf(peer_dir);
    }
    run_pg_peers(&r, &o, r.sr, nsc, fsdir);

    /* 7. The end. */
    explain_close(pg.c);
    r.end_ok = evs_stats_get(&r.end, db) == 0;
    rc = evs_close(db);
    if (rc < 0)
        fprintf(stderr, PROG ": closing the store: %s\n", lib_detail(rc));
    if (r.fresh) {
        if (o.keep)
            fprintf(stderr, PROG ": store kept in %s\n", r.store);
        else
            rm_rf(g_root);
    }
    int sig = atomic_load(&g_interrupted);
    if (sig) {
        /* Figures of a cut run would pass for a whole one: none written
         * (the earlier run's files were cleared above). */
        fprintf(stderr, PROG ": interrupted by %s: no report written\n",
                sig == SIGINT ? "SIGINT" : "SIGTERM");
        free_results(r.sr, r.nsr);
        for (int i = 0; i < BENCH_NPEERS; i++) {
            free_results(r.peers[i].sr, r.peers[i].nsr);
            free((void *)r.peers[i].evs);
        }
        return 128 + sig;
    }
    r.total_s = (double)(now_ns() - t_start) / 1e9;
    loadavg(r.load_end, sizeof r.load_end);

    r.status = 0;
    if (!r.gen_ok) {
        r.status = 1;
    } else {
        for (int i = 0; i < nsc; i++)
            if (r.sr[i].failed)
                r.status = 3;
        for (int i = 0; i < BENCH_NPEERS; i++)
            if (r.peers[i].failed)
                r.status = 3;
        if (r.tp.failed)
            r.status = 3;
    }
    report_targets(&r);
    report_plots(&r, o.out, o.plots);
    if (report_write(&r, o.out, err, sizeof err) != 0) {
        fprintf(stderr, PROG ": writing the report: %s\n", err);
        r.status = 1;
    }
    report_summary_md(stdout, &r, o.out);
    fflush(stdout);
    if (r.status == 3)
        fprintf(stderr,
                PROG ": a scenario failed (setup, an error, outcomes that do "
                     "not add up, or its check): see %s/report.md\n",
                o.out);
    free_results(r.sr, r.nsr);
    free(r.tr);
    for (int i = 0; i < BENCH_NPEERS; i++) {
        free_results(r.peers[i].sr, r.peers[i].nsr);
        free((void *)r.peers[i].evs);
    }
    for (int i = 0; i < r.nex; i++) {
        free(r.ex[i].name);
        free(r.ex[i].params);
        free(r.ex[i].index);
        free(r.ex[i].plan);
    }
    free(r.ex);
    return r.status;
}
