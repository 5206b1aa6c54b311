/*
 * peer_mdb.c -- the Message DB peer of `evs bench` (peer_pg.h): the real
 * Message DB (npm @eventide/message-db 1.3.1, tools/bench/messagedb/)
 * installed by its own install.sh into a fresh database, the generated
 * data loaded through its write_message, and the counterparts of the
 * shared scenarios run on its own functions (write_message with the
 * expected version, get_stream_messages, get_category_messages), one
 * libpq connection per thread, with the same payloads, setup data,
 * random choices, answer checks and accounting as the SQLite peer
 * (peer_sqlite.c) and evstore's scenarios.
 *
 * Every connection sets search_path = message_store, public: Message DB's
 * functions call each other and name their table unqualified, as its
 * documentation has clients do. A write_message that raises "Wrong
 * expected version" is a conflict; any other error is an error.
 */
#include "peer_pg.h"

#include "scen_util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if EVS_BENCH_WITH_PG
#include <libpq-fe.h>

#define NAME_LEN 64

int peer_mdb_find(char *dir, size_t size, char *err, size_t errsize)
{
    const char *env = getenv("EVS_BENCH_MESSAGEDB_DIR");
    char p[PATH_MAX + 16];
    if (env && env[0])
        snprintf(dir, size, "%s", env);
    else
        snprintf(dir, size, "%s/node_modules/@eventide/message-db/database",
                 EVS_BENCH_MESSAGEDB_DIR);
    snprintf(p, sizeof p, "%s/install.sh", dir);
    if (access(p, R_OK) != 0) {
        scen_msg(err, errsize, "Message DB is not installed (no %s): run "
                 "`npm ci --prefix tools/bench/messagedb` "
                 "(scripts/install-deps.sh bench does), or set "
                 "EVS_BENCH_MESSAGEDB_DIR to its database/ directory", p);
        return -1;
    }
    return 0;
}

int peer_mdb_install(const pg_server *s, const char *pkgdir,
                     const char *dbname, const char *log, char *err,
                     size_t errsize)
{
    char bin[PATH_MAX], e[256];
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(s->conninfo, &perr);
    if (!opts) {
        scen_msg(err, errsize, "%s", perr ? perr : "bad conninfo");
        PQfreemem(perr);
        return -1;
    }
    /* the environment install.sh's psql calls connect with */
    char *env[40];
    int n = 0;
    static char store[40][1100];
    for (PQconninfoOption *o = opts; o->keyword && n < 34; o++) {
        if (!o->val || !o->envvar || strcmp(o->keyword, "dbname") == 0)
            continue;
        snprintf(store[n], sizeof store[n], "%s=%s", o->envvar, o->val);
        env[n] = store[n];
        n++;
    }
    PQconninfoFree(opts);
    snprintf(store[n], sizeof store[n], "DATABASE_NAME=%s", dbname);
    env[n] = store[n];
    n++;
    snprintf(store[n], sizeof store[n], "CREATE_DATABASE=off");
    env[n] = store[n];
    n++;
    if (peer_pg_bindir(bin, sizeof bin, "psql", e, sizeof e) == 0) {
        const char *path = getenv("PATH");
        snprintf(store[n], sizeof store[n], "PATH=%.200s:%.800s", bin,
                 path ? path : "/usr/bin:/bin");
        env[n] = store[n];
        n++;
    }
    env[n] = NULL;

    pid_t pid = fork();
    if (pid < 0) {
        scen_msg(err, errsize, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        setpgid(0, 0);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        for (int i = 0; env[i]; i++)
            putenv(env[i]);
        if (chdir(pkgdir) != 0)
            _exit(126);
        execlp("bash", "bash", "install.sh", (char *)NULL);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) {
            scen_msg(err, errsize, "waitpid: %s", strerror(errno));
            return -1;
        }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        scen_msg(err, errsize, "Message DB's install.sh failed (exit %d): "
                 "see %s", WIFEXITED(st) ? WEXITSTATUS(st) : -1, log);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Connections                                                         */
/* ------------------------------------------------------------------ */

static void quiet(void *arg, const char *msg) { (void)arg, (void)msg; }

static PGconn *mdb_connect(const char *conninfo, char *err, size_t errsize)
{
    char ci[2400];
    snprintf(ci, sizeof ci,
             "%s options='-c search_path=message_store,public'", conninfo);
    PGconn *c = PQconnectdb(ci);
    if (PQstatus(c) != CONNECTION_OK) {
        scen_msg(err, errsize, "messagedb: cannot connect: %s",
                 c ? PQerrorMessage(c) : "out of memory");
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, quiet, NULL);
    static const char *const stmts[][2] = {
        {"w", "SELECT write_message($1, $2, $3, $4::jsonb, $5::jsonb, "
              "$6::bigint)"},
        {"s", "SELECT position, data FROM get_stream_messages($1, $2, $3)"},
        {"c", "SELECT global_position, data FROM "
              "get_category_messages($1, $2, $3)"},
    };
    for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++) {
        PGresult *r = PQprepare(c, stmts[i][0], stmts[i][1], 0, NULL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            scen_msg(err, errsize, "messagedb: preparing %s: %s",
                     stmts[i][1], PQerrorMessage(c));
            PQclear(r);
            PQfinish(c);
            return NULL;
        }
        PQclear(r);
    }
    return c;
}

const char *peer_mdb_store_version(const char *conninfo)
{
    static char v[64];
    char e[256];
    snprintf(v, sizeof v, "?");
    PGconn *c = mdb_connect(conninfo, e, sizeof e);
    if (!c)
        return v;
    PGresult *r = PQexec(c, "SELECT message_store_version()");
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        snprintf(v, sizeof v, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(c);
    return v;
}

/* The error of a failed write: a conflict when Message DB said the
 * expected version was wrong. */
static int write_outcome(const PGresult *r)
{
    const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    return m && strstr(m, "Wrong expected version") ? BENCH_CONFLICT
                                                    : BENCH_ERROR;
}

static void uuid_text(char out[37], const evs_uuid *u)
{
    static const char hex[] = "0123456789abcdef";
    int k = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[k++] = '-';
        out[k++] = hex[u->bytes[i] >> 4];
        out[k++] = hex[u->bytes[i] & 15];
    }
    out[k] = 0;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A fresh UUIDv7-layout id, as peer_sqlite.c's. */
static void new_id(char out[37], uint64_t *rng)
{
    evs_uuid u;
    uint64_t ms = (uint64_t)now_us() / 1000, a = scen_rand(rng),
             b = scen_rand(rng) ^ now_ns();
    for (int i = 0; i < 6; i++)
        u.bytes[i] = (uint8_t)(ms >> (40 - 8 * i));
    for (int i = 6; i < 16; i++)
        u.bytes[i] = (uint8_t)((i < 11 ? a : b) >> (8 * (i % 8)));
    u.bytes[6] = (uint8_t)(0x70 | (u.bytes[6] & 0x0f));
    u.bytes[8] = (uint8_t)(0x80 | (u.bytes[8] & 0x3f));
    uuid_text(out, &u);
}

/* ------------------------------------------------------------------ */
/* A transaction of write_message calls in one libpq pipeline          */
/* ------------------------------------------------------------------ */

typedef struct mdb_tx {
    PGconn *c;
    int pending;  /* commands sent whose results are not read */
    int outcome;  /* BENCH_COMMITTED until a command fails */
    char err[256];
} mdb_tx;

#define FLUSH_EVERY 64

/* Reads results until at most upto commands are pending. */
static void tx_read(mdb_tx *t, int upto)
{
    while (t->pending > upto) {
        PGresult *r = PQgetResult(t->c);
        if (!r) {
            if (t->outcome == BENCH_COMMITTED) {
                t->outcome = BENCH_ERROR;
                scen_msg(t->err, sizeof t->err, "messagedb: pipeline: %s",
                         PQerrorMessage(t->c));
            }
            t->pending = 0;
            return;
        }
        ExecStatusType st = PQresultStatus(r);
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK &&
            t->outcome == BENCH_COMMITTED) {
            t->outcome = st == PGRES_PIPELINE_ABORTED ? BENCH_ERROR
                                                      : write_outcome(r);
            scen_msg(t->err, sizeof t->err, "messagedb: %s",
                     st == PGRES_PIPELINE_ABORTED ? "pipeline aborted"
                                                  : PQresultErrorMessage(r));
        }
        PQclear(r);
        PGresult *end = PQgetResult(t->c); /* the command's NULL */
        PQclear(end);
        t->pending--;
    }
}

static void tx_send(mdb_tx *t, int nparams, const char *stmt,
                    const char *const *vals)
{
    int ok = stmt[0] == 'w'
                 ? PQsendQueryPrepared(t->c, stmt, nparams, vals, NULL, NULL,
                                       0)
                 : PQsendQueryParams(t->c, stmt, 0, NULL, NULL, NULL, NULL,
                                     0);
    if (!ok) {
        if (t->outcome == BENCH_COMMITTED) {
            t->outcome = BENCH_ERROR;
            scen_msg(t->err, sizeof t->err, "messagedb: sending: %s",
                     PQerrorMessage(t->c));
        }
        return;
    }
    t->pending++;
    if (t->pending >= FLUSH_EVERY) {
        PQsendFlushRequest(t->c);
        PQflush(t->c);
        tx_read(t, FLUSH_EVERY / 2);
    }
}

static int tx_begin(mdb_tx *t, PGconn *c)
{
    memset(t, 0, sizeof *t);
    t->c = c;
    t->outcome = BENCH_COMMITTED;
    if (!PQenterPipelineMode(c)) {
        scen_msg(t->err, sizeof t->err, "messagedb: pipeline mode: %s",
                 PQerrorMessage(c));
        return -1;
    }
    tx_send(t, 0, "BEGIN", NULL);
    return 0;
}

static void tx_write(mdb_tx *t, const char *id, const char *stream,
                     const char *type, const char *data, const char *meta,
                     int64_t expected)
{
    char ev[24];
    snprintf(ev, sizeof ev, "%lld", (long long)expected);
    const char *vals[6] = {id, stream, type, data, meta, ev};
    tx_send(t, 6, "w", vals);
}

/* COMMIT, the sync, every result read; ROLLBACK when something failed.
 * Returns the outcome (t->err says why when not committed). */
static int tx_end(mdb_tx *t)
{
    tx_send(t, 0, "COMMIT", NULL);
    if (!PQpipelineSync(t->c) && t->outcome == BENCH_COMMITTED) {
        t->outcome = BENCH_ERROR;
        scen_msg(t->err, sizeof t->err, "messagedb: sync: %s",
                 PQerrorMessage(t->c));
    }
    tx_read(t, 0);
    for (int i = 0; i < 4; i++) { /* the sync's result */
        PGresult *r = PQgetResult(t->c);
        if (!r)
            continue;
        int sync = PQresultStatus(r) == PGRES_PIPELINE_SYNC;
        PQclear(r);
        if (sync)
            break;
    }
    PQexitPipelineMode(t->c);
    if (PQtransactionStatus(t->c) != PQTRANS_IDLE)
        PQclear(PQexec(t->c, "ROLLBACK"));
    return t->outcome;
}

/* ------------------------------------------------------------------ */
/* The load                                                            */
/* ------------------------------------------------------------------ */

/* The category of a generated tenant: its name without '-'. */
static void tenant_category(char *out, size_t size, const char *tenant)
{
    size_t k = 0;
    for (const char *p = tenant; *p && k + 1 < size; p++)
        if (*p != '-')
            out[k++] = *p;
    out[k] = 0;
}

/* buf <- the n bytes at p, NUL-terminated (grown as needed). */
static const char *cstr(char **buf, size_t *cap, const void *p, size_t n)
{
    if (n + 1 > *cap) {
        size_t c = n + 1 > 2 * *cap ? n + 1 : 2 * *cap;
        char *b = realloc(*buf, c);
        if (!b)
            return NULL;
        *buf = b;
        *cap = c;
    }
    if (n)
        memcpy(*buf, p, n);
    (*buf)[n] = 0;
    return *buf;
}

int peer_mdb_load(const char *conninfo, const gen_config *cfg,
                  uint64_t *events, uint64_t *commits, char *err,
                  size_t errsize)
{
    gen *g = NULL;
    gen_event e;
    char tenant[EVS_MAX_TENANT_LEN + 1] = "";
    char *dbuf = NULL, *mbuf = NULL;
    size_t dcap = 0, mcap = 0;
    uint64_t in_tx = 0;
    mdb_tx t;
    int rc, status = -1;

    *events = *commits = 0;
    if (gen_new(&g, cfg, err, errsize) < 0)
        return -1;
    PGconn *c = mdb_connect(conninfo, err, errsize);
    if (!c) {
        gen_free(g);
        return -1;
    }
    while ((rc = gen_next(g, &e)) == 0) {
        if (in_tx && (in_tx >= cfg->batch_events ||
                      strcmp(tenant, e.tenant) != 0)) {
            if (tx_end(&t) != BENCH_COMMITTED) {
                scen_msg(err, errsize, "%s", t.err);
                goto out;
            }
            ++*commits;
            in_tx = 0;
            if (cfg->stop && atomic_load(cfg->stop)) {
                status = 1;
                scen_msg(err, errsize, "stopped after %llu events",
                         (unsigned long long)*events);
                goto out;
            }
        }
        if (!in_tx) {
            if (tx_begin(&t, c) != 0) {
                scen_msg(err, errsize, "%s", t.err);
                goto out;
            }
            snprintf(tenant, sizeof tenant, "%s", e.tenant);
        }
        char cat[EVS_MAX_TENANT_LEN + 1], stream[512], id[37];
        tenant_category(cat, sizeof cat, e.tenant);
        snprintf(stream, sizeof stream, "%s-%s", cat, e.stream);
        uuid_text(id, &e.ev.id);
        const char *d = cstr(&dbuf, &dcap, e.ev.data, e.ev.data_len);
        const char *m = e.ev.metadata && e.ev.metadata_len
                            ? cstr(&mbuf, &mcap, e.ev.metadata,
                                   e.ev.metadata_len)
                            : NULL;
        if (!d || (e.ev.metadata && e.ev.metadata_len && !m)) {
            scen_msg(err, errsize, "out of memory");
            tx_end(&t);
            goto out;
        }
        tx_write(&t, id, stream, e.ev.type, d, m, e.expected_version);
        in_tx++;
        ++*events;
    }
    if (in_tx) {
        if (tx_end(&t) != BENCH_COMMITTED) {
            scen_msg(err, errsize, "%s", t.err);
            goto out;
        }
        ++*commits;
    }
    /* statistics for the planner, as after evstore's load on PostgreSQL */
    PGresult *r = PQexec(c, "ANALYZE message_store.messages");
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        scen_msg(err, errsize, "ANALYZE: %s", PQerrorMessage(c));
        PQclear(r);
        goto out;
    }
    PQclear(r);
    status = 0;
out:
    PQfinish(c);
    gen_free(g);
    free(dbuf);
    free(mbuf);
    return status;
}

/* ------------------------------------------------------------------ */
/* append-1, batch                                                     */
/* ------------------------------------------------------------------ */

#define STREAMS_PER_THREAD 5
#define MAX_PER_PART 20

typedef struct append_kind {
    const char *prefix;
    int parts, per_part;
} append_kind;

static const append_kind k_append1 = {"ledger1", 1, 1};
static const append_kind k_batch = {"batch", 5, 20};

typedef struct ap_state {
    char conninfo[2048];
    const append_kind *kind;
    uint64_t seed;
    _Atomic uint32_t instances;
    _Atomic uint64_t events; /* committed, warm-up included */
    pthread_mutex_t mu;
    char problem[256];
} ap_state;

typedef struct ap_thread {
    ap_state *s;
    PGconn *c;
    uint64_t rng;
    char stream[STREAMS_PER_THREAD][NAME_LEN];
    int64_t version[STREAMS_PER_THREAD];
    unsigned next;
    char json[MAX_PER_PART][320];
} ap_thread;

static int ap_setup(void **state, bench_ctx *ctx, const append_kind *k,
                    char *err, size_t errsize)
{
    ap_state *s = calloc(1, sizeof *s);
    if (!s) {
        scen_msg(err, errsize, "out of memory");
        return -1;
    }
    snprintf(s->conninfo, sizeof s->conninfo, "%s", ctx->db_uri);
    s->kind = k;
    s->seed = ctx->seed;
    pthread_mutex_init(&s->mu, NULL);
    *state = s;
    return 0;
}

static int ap1_setup(void **state, bench_ctx *ctx, char *err, size_t errsize)
{
    return ap_setup(state, ctx, &k_append1, err, errsize);
}

static int apb_setup(void **state, bench_ctx *ctx, char *err, size_t errsize)
{
    return ap_setup(state, ctx, &k_batch, err, errsize);
}

static void ap_problem(ap_state *s, const char *msg)
{
    scen_first_problem(&s->mu, s->problem, sizeof s->problem, msg);
}

/* As scen_appends.c's and peer_sqlite.c's threads: 5 fresh streams per
   thread of every level, the same ~240 B JSON. (Message DB has no tags.) */
static void *ap_thread_init(void *state, int thread, int nthreads)
{
    ap_state *s = state;
    ap_thread *t = calloc(1, sizeof *t);
    char err[256];
    uint32_t inst;
    (void)thread, (void)nthreads;
    if (!t)
        return NULL;
    t->s = s;
    if (!(t->c = mdb_connect(s->conninfo, err, sizeof err))) {
        ap_problem(s, err);
        free(t);
        return NULL;
    }
    inst = atomic_fetch_add(&s->instances, 1);
    t->rng = scen_seed(s->seed ^ 0x5A11, (int)inst);
    for (int i = 0; i < STREAMS_PER_THREAD; i++) {
        snprintf(t->stream[i], NAME_LEN, "%s-%u-%d", s->kind->prefix, inst, i);
        t->version[i] = EVS_NO_STREAM;
    }
    for (int j = 0; j < s->kind->per_part; j++)
        scen_ledger_json(t->json[j], sizeof t->json[j], s->kind->prefix, j, inst);
    return t;
}

/* append-1: one write_message with the expected version, autocommitted
   (durable: synchronous_commit on). batch: one transaction of 5 x 20
   write_message calls, each with its expected version, in one pipeline.
   Timed: all of it, lock waits included. */
static int ap_op(void *tstate, uint64_t *t0, uint64_t *t1, uint64_t *items,
                 char *err, size_t errsize)
{
    ap_thread *t = tstate;
    ap_state *s = t->s;
    const append_kind *k = s->kind;
    int slot[5];
    int outcome;
    char id[37];
    for (int p = 0; p < k->parts; p++)
        slot[p] = (int)(t->next++ % STREAMS_PER_THREAD);
    *t0 = now_ns();
    if (k->parts == 1 && k->per_part == 1) {
        char ev[24];
        int i = slot[0];
        new_id(id, &t->rng);
        snprintf(ev, sizeof ev, "%lld", (long long)t->version[i]);
        const char *vals[6] = {id, t->stream[i],
                               t->version[i] < 0 ? "EntryOpened"
                                                 : "EntryPosted",
                               t->json[0], NULL, ev};
        PGresult *r = PQexecPrepared(t->c, "w", 6, vals, NULL, NULL, 0);
        *t1 = now_ns();
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            outcome = write_outcome(r);
            scen_msg(err, errsize, "messagedb: %s", PQresultErrorMessage(r));
            PQclear(r);
            return outcome;
        }
        PQclear(r);
        t->version[i]++;
    } else {
        mdb_tx tx;
        if (tx_begin(&tx, t->c) != 0) {
            *t1 = now_ns();
            scen_msg(err, errsize, "%s", tx.err);
            return BENCH_ERROR;
        }
        for (int p = 0; p < k->parts; p++) {
            int i = slot[p];
            for (int j = 0; j < k->per_part; j++) {
                new_id(id, &t->rng);
                tx_write(&tx, id, t->stream[i],
                         j == 0 ? "EntryOpened" : "EntryPosted", t->json[j],
                         NULL, t->version[i] + j);
            }
        }
        outcome = tx_end(&tx);
        *t1 = now_ns();
        if (outcome != BENCH_COMMITTED) {
            scen_msg(err, errsize, "%s", tx.err);
            return outcome;
        }
        for (int p = 0; p < k->parts; p++)
            t->version[slot[p]] += k->per_part;
    }
    *items += (uint64_t)(k->parts * k->per_part);
    atomic_fetch_add(&s->events, (uint64_t)(k->parts * k->per_part));
    return BENCH_COMMITTED;
}

/* Every stream of the thread at the version its commits left
   (stream_version). */
static void ap_thread_fini(void *tstate)
{
    ap_thread *t = tstate;
    if (!t)
        return;
    for (int i = 0; i < STREAMS_PER_THREAD; i++) {
        const char *vals[1] = {t->stream[i]};
        PGresult *r = PQexecParams(t->c, "SELECT stream_version($1)", 1,
                                   NULL, vals, NULL, NULL, 0);
        char msg[256];
        int64_t v = EVS_NO_STREAM;
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            snprintf(msg, sizeof msg, "%s: cannot read its version: %s",
                     t->stream[i], PQerrorMessage(t->c));
            ap_problem(t->s, msg);
            PQclear(r);
            break;
        }
        if (!PQgetisnull(r, 0, 0))
            v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
        if (v != t->version[i]) {
            snprintf(msg, sizeof msg, "%s is at version %lld, its committed "
                     "writes left it at %lld", t->stream[i], (long long)v,
                     (long long)t->version[i]);
            ap_problem(t->s, msg);
            break;
        }
    }
    PQfinish(t->c);
    free(t);
}

/* The category holds exactly the events the committed operations wrote. */
static int ap_check(void *state, bench_ctx *ctx, char *err, size_t errsize)
{
    ap_state *s = state;
    (void)ctx;
    if (s->problem[0]) {
        scen_msg(err, errsize, "%s", s->problem);
        return -1;
    }
    PGconn *c = mdb_connect(s->conninfo, err, errsize);
    if (!c)
        return -1;
    const char *vals[1] = {s->kind->prefix};
    PGresult *r = PQexecParams(c, "SELECT count(*) FROM messages WHERE "
                               "category(stream_name) = $1",
                               1, NULL, vals, NULL, NULL, 0);
    int rc = -1;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        scen_msg(err, errsize, "counting: %s", PQerrorMessage(c));
    } else {
        uint64_t n = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
        if (n != atomic_load(&s->events))
            scen_msg(err, errsize, "the category %s holds %llu messages, "
                     "the committed writes wrote %llu", s->kind->prefix,
                     (unsigned long long)n,
                     (unsigned long long)atomic_load(&s->events));
        else
            rc = 0;
    }
    PQclear(r);
    PQfinish(c);
    return rc;
}

static void ap_teardown(void *state)
{
    ap_state *s = state;
    if (!s)
        return;
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static const int append_levels[] = {1, 8, 64};
static const int append_quick[] = {1, 8};
static const int batch_levels[] = {1, 2, 8};
static const int batch_quick[] = {1, 2};

static const bench_scenario mdb_append1 = {
    .name = "append-1",
    .title = "Message DB: single-message writes with the expected version",
    .what = "One operation: SELECT write_message(id, stream, type, ~240 B "
            "JSON, NULL, expected_version), autocommitted (durable: "
            "synchronous_commit on), on one of the thread's own 5 streams "
            "ledger1-T-i, round robin. write_message takes the advisory "
            "lock of the stream's category (ledger1: every thread's) until "
            "commit, reads the stream's version, checks it, inserts. "
            "Timed: the call, lock waits included. Items: messages "
            "written.",
    .item = "events",
    SCEN_LEVELS(append_levels, append_quick),
    .setup = ap1_setup,
    .thread_init = ap_thread_init,
    .op = ap_op,
    .thread_fini = ap_thread_fini,
    .check = ap_check,
    .teardown = ap_teardown,
};

static const bench_scenario mdb_batch = {
    .name = "batch",
    .title = "Message DB: 100 write_message calls in one transaction",
    .what = "One operation: BEGIN, 20 write_message calls (each with its "
            "expected version) to each of 5 of the thread's own streams, "
            "COMMIT, sent in one libpq pipeline. Timed: the transaction. "
            "Items: messages written (100 per operation).",
    .item = "events",
    SCEN_LEVELS(batch_levels, batch_quick),
    .setup = apb_setup,
    .thread_init = ap_thread_init,
    .op = ap_op,
    .thread_fini = ap_thread_fini,
    .check = ap_check,
    .teardown = ap_teardown,
};

/* ------------------------------------------------------------------ */
/* Readers                                                             */
/* ------------------------------------------------------------------ */

typedef struct rd_thread {
    void *s;
    PGconn *c;
    uint64_t rng, sink;
} rd_thread;

static rd_thread *rd_open(void *s, const char *conninfo, uint64_t rng)
{
    rd_thread *t = calloc(1, sizeof *t);
    char err[256];
    if (!t)
        return NULL;
    t->s = s;
    t->rng = rng;
    if (!(t->c = mdb_connect(conninfo, err, sizeof err))) {
        fprintf(stderr, "evs bench: %s\n", err);
        free(t);
        return NULL;
    }
    return t;
}

static void rd_fini(void *tstate)
{
    rd_thread *t = tstate;
    if (!t)
        return;
    PQfinish(t->c);
    free(t);
}

/* ------------------------------------------------------------------ */
/* aggregate: a 1000-message stream read (get_stream_messages)          */
/* ------------------------------------------------------------------ */

#define AGG_ROUND 10

typedef struct agg_state {
    char conninfo[2048];
    uint64_t seed;
    int nstreams;
    char (*names)[32];
    int64_t *balance;
} agg_state;

static void agg_teardown(void *state)
{
    agg_state *s = state;
    if (!s)
        return;
    free(s->names);
    free(s->balance);
    free(s);
}

static int64_t agg_amount(int64_t v) { return v % 100 + 1; }

/* scen_tracking.c's setup: 32 streams (8 quick) of exactly 1000 messages,
   written in rounds of 10 to every stream, one transaction a round. */
static int agg_setup(void **state, bench_ctx *ctx, char *err, size_t errsize)
{
    agg_state *s = calloc(1, sizeof *s);
    PGconn *c = NULL;
    uint64_t rng = scen_seed(ctx->seed ^ 0xA66A, 0);
    if (!s) {
        scen_msg(err, errsize, "out of memory");
        return -1;
    }
    snprintf(s->conninfo, sizeof s->conninfo, "%s", ctx->db_uri);
    s->seed = ctx->seed;
    s->nstreams = ctx->quick ? 8 : 32;
    s->names = calloc((size_t)s->nstreams, sizeof *s->names);
    s->balance = calloc((size_t)s->nstreams, sizeof *s->balance);
    if (!s->names || !s->balance) {
        scen_msg(err, errsize, "out of memory");
        goto fail;
    }
    for (int i = 0; i < s->nstreams; i++)
        snprintf(s->names[i], sizeof s->names[i], "Account-%04d", i);
    if (!(c = mdb_connect(s->conninfo, err, errsize)))
        goto fail;
    for (int64_t done = 0; done < 1000; done += AGG_ROUND) {
        mdb_tx tx;
        if (tx_begin(&tx, c) != 0) {
            scen_msg(err, errsize, "%s", tx.err);
            goto fail;
        }
        for (int i = 0; i < s->nstreams; i++) {
            for (int64_t v = done; v < done + AGG_ROUND; v++) {
                char js[256], id[37];
                snprintf(js, sizeof js, "{\"account\":\"%s\","
                         "\"amount\":%lld,\"currency\":\"EUR\","
                         "\"reference\":\"invoice %lld of the "
                         "account's history\"}",
                         s->names[i], (long long)agg_amount(v), (long long)v);
                new_id(id, &rng);
                tx_write(&tx, id, s->names[i],
                         v == 0 ? "AccountOpened" : "Deposited", js, NULL,
                         v - 1);
                s->balance[i] += agg_amount(v);
            }
        }
        if (tx_end(&tx) != BENCH_COMMITTED) {
            scen_msg(err, errsize, "writing the aggregates: %s", tx.err);
            goto fail;
        }
    }
    PQclear(PQexec(c, "ANALYZE messages"));
    PQfinish(c);
    *state = s;
    return 0;
fail:
    PQfinish(c);
    agg_teardown(s);
    return -1;
}

static void *agg_thread_init(void *state, int thread, int nthreads)
{
    agg_state *s = state;
    (void)nthreads;
    return rd_open(s, s->conninfo, scen_seed(s->seed ^ 0xA66, thread));
}

/* One load: get_stream_messages(stream, 0, 1000) of a random stream, every
   amount folded. Correct when the balance and count are the stream's. */
static int agg_op(void *tstate, uint64_t *t0, uint64_t *t1, uint64_t *items,
                  char *err, size_t errsize)
{
    rd_thread *t = tstate;
    agg_state *s = t->s;
    int i = (int)scen_below(&t->rng, (uint64_t)s->nstreams);
    int64_t bal = 0, n = 0, disorder = 0;
    const char *vals[3] = {s->names[i], "0", "1000"};
    *t0 = now_ns();
    PGresult *r = PQexecPrepared(t->c, "s", 3, vals, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        n = PQntuples(r);
        for (int k = 0; k < n; k++) {
            disorder |= strtoll(PQgetvalue(r, k, 0), NULL, 10) != k;
            bal += (int64_t)json_uint(PQgetvalue(r, k, 1), "\"amount\":");
        }
    }
    *t1 = now_ns();
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        scen_msg(err, errsize, "messagedb: get_stream_messages: %s",
                 PQresultErrorMessage(r));
        PQclear(r);
        return BENCH_ERROR;
    }
    PQclear(r);
    *items += (uint64_t)n;
    if (bal != s->balance[i] || n != 1000 || disorder) {
        scen_msg(err, errsize, "%s: balance %lld over %lld messages%s; "
                 "expected %lld over 1000", s->names[i], (long long)bal,
                 (long long)n, disorder ? " out of order" : "",
                 (long long)s->balance[i]);
        return BENCH_ERROR;
    }
    return BENCH_COMMITTED;
}

static const int read_levels[] = {1, 2, 8};
static const int read_quick[] = {1, 2};

static const bench_scenario mdb_aggregate = {
    .name = "aggregate",
    .title = "Message DB: 1000-message stream read and folded",
    .what = "One operation: get_stream_messages(stream, 0, 1000) (the "
            "messages_stream index) of a random one of 32 streams (8 "
            "quick) of exactly 1000 messages written interleaved, every "
            "amount folded. Timed: the call and the fold. Items: messages "
            "folded.",
    .item = "events",
    SCEN_LEVELS(read_levels, read_quick),
    .setup = agg_setup,
    .thread_init = agg_thread_init,
    .op = agg_op,
    .thread_fini = rd_fini,
    .teardown = agg_teardown,
};

/* ------------------------------------------------------------------ */
/* stream-batches: a category read, 1000-message pages                 */
/* ------------------------------------------------------------------ */

#define BATCH 1000

typedef struct cat_state {
    char conninfo[2048];
    uint64_t seed;
    char category[32];
    uint64_t tail, head;
} cat_state;

static int cat_setup(void **state, bench_ctx *ctx, char *err, size_t errsize)
{
    cat_state *s;
    char tenant[32];
    if (!ctx->loaded || ctx->loaded->events == 0) {
        scen_msg(err, errsize, "needs the generated data");
        return -1;
    }
    if (!(s = calloc(1, sizeof *s))) {
        scen_msg(err, errsize, "out of memory");
        return -1;
    }
    snprintf(s->conninfo, sizeof s->conninfo, "%s", ctx->db_uri);
    s->seed = ctx->seed;
    scen_gen_tenant(tenant, sizeof tenant, scen_biggest_tenant(ctx));
    tenant_category(s->category, sizeof s->category, tenant);
    PGconn *c = mdb_connect(s->conninfo, err, errsize);
    if (!c) {
        free(s);
        return -1;
    }
    const char *vals[1] = {s->category};
    PGresult *r = PQexecParams(c, "SELECT min(global_position), "
                               "max(global_position) FROM messages WHERE "
                               "category(stream_name) = $1",
                               1, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQgetisnull(r, 0, 0)) {
        scen_msg(err, errsize, "the category %s has no messages: %s",
                 s->category, PQerrorMessage(c));
        PQclear(r);
        PQfinish(c);
        free(s);
        return -1;
    }
    s->tail = strtoull(PQgetvalue(r, 0, 0), NULL, 10) - 1;
    s->head = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    PQfinish(c);
    *state = s;
    return 0;
}

static void *cat_thread_init(void *state, int thread, int nthreads)
{
    cat_state *s = state;
    (void)nthreads;
    return rd_open(s, s->conninfo, scen_seed(s->seed ^ 0x57EA, thread));
}

/* One page: get_category_messages(category, after + 1, 1000) after a
   random position between the category's first and last, every message's
   data touched. A page short of 1000 must have reached the head. */
static int cat_op(void *tstate, uint64_t *t0, uint64_t *t1, uint64_t *items,
                  char *err, size_t errsize)
{
    rd_thread *t = tstate;
    cat_state *s = t->s;
    uint64_t after = s->tail + scen_below(&t->rng, s->head - s->tail);
    uint64_t n = 0, prev = after;
    int disorder = 0;
    char from[24];
    snprintf(from, sizeof from, "%llu", (unsigned long long)after + 1);
    const char *vals[3] = {s->category, from, "1000"};
    *t0 = now_ns();
    PGresult *r = PQexecPrepared(t->c, "c", 3, vals, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        n = (uint64_t)PQntuples(r);
        for (uint64_t k = 0; k < n; k++) {
            uint64_t pos = strtoull(PQgetvalue(r, (int)k, 0), NULL, 10);
            int len = PQgetlength(r, (int)k, 1);
            disorder |= pos <= prev;
            prev = pos;
            t->sink += (uint64_t)len +
                       (len ? (uint8_t)PQgetvalue(r, (int)k, 1)[0] : 0);
        }
    }
    *t1 = now_ns();
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        scen_msg(err, errsize, "messagedb: get_category_messages: %s",
                 PQresultErrorMessage(r));
        PQclear(r);
        return BENCH_ERROR;
    }
    PQclear(r);
    *items += n;
    if (disorder || (n < BATCH && prev < s->head)) {
        scen_msg(err, errsize, "%llu messages after position %llu, the last "
                 "at %llu%s, but %s's head is %llu", (unsigned long long)n,
                 (unsigned long long)after, (unsigned long long)prev,
                 disorder ? " (out of order)" : "", s->category,
                 (unsigned long long)s->head);
        return BENCH_ERROR;
    }
    return BENCH_COMMITTED;
}

static const bench_scenario mdb_category = {
    .name = "stream-batches",
    .title = "Message DB: category read, 1000-message pages",
    .what = "One operation: get_category_messages(category, position, "
            "1000) (the messages_category index) from a random position "
            "between the first and last of the biggest generated tenant's "
            "category (the tenant is the category: the same events "
            "evstore's page reads), every message's data touched. Timed: "
            "the call. Items: messages read.",
    .item = "events",
    SCEN_LEVELS(read_levels, read_quick),
    .setup = cat_setup,
    .thread_init = cat_thread_init,
    .op = cat_op,
    .thread_fini = rd_fini,
    .teardown = scen_free,
};

static const bench_scenario *const mdb_scenarios[] = {
    &mdb_append1, &mdb_batch, &mdb_aggregate, &mdb_category, NULL};

const bench_scenario *peer_mdb_scenario(const char *name)
{
    for (int i = 0; mdb_scenarios[i]; i++)
        if (strcmp(mdb_scenarios[i]->name, name) == 0)
            return mdb_scenarios[i];
    return NULL;
}

#else /* !EVS_BENCH_WITH_PG */

int peer_mdb_find(char *dir, size_t size, char *err, size_t errsize)
{
    (void)dir, (void)size;
    scen_msg(err, errsize, "built without PostgreSQL");
    return -1;
}
int peer_mdb_install(const pg_server *s, const char *pkgdir,
                     const char *dbname, const char *log, char *err,
                     size_t errsize)
{
    (void)s, (void)pkgdir, (void)dbname, (void)log;
    scen_msg(err, errsize, "built without PostgreSQL");
    return -1;
}
const char *peer_mdb_store_version(const char *conninfo)
{
    (void)conninfo;
    return "";
}
int peer_mdb_load(const char *conninfo, const gen_config *cfg,
                  uint64_t *events, uint64_t *commits, char *err,
                  size_t errsize)
{
    (void)conninfo, (void)cfg;
    *events = *commits = 0;
    scen_msg(err, errsize, "built without PostgreSQL");
    return -1;
}
const bench_scenario *peer_mdb_scenario(const char *name)
{
    (void)name;
    return NULL;
}
#endif
