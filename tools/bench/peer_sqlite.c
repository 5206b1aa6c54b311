/*
 * peer_sqlite.c -- the SQLite peer of `evs bench` (peer_sqlite.h): the
 * schema, the loader of the generated data, and the counterparts of the
 * shared scenarios. Each counterpart does what its evstore scenario does
 * (scen_appends.c, scen_tracking.c, scen_dcb.c): the same payloads, the
 * same setup data written the same way (rounds, interleaving, batch
 * sizes), the same random choices, the same answer checks, the same
 * timed part. Where SQLite needs something evstore does for itself (a
 * stream's version read to check the expected version, the condition of a
 * DCB append), the counterpart does it in the write transaction, as a
 * careful user would.
 */
#include "peer_sqlite.h"

#include "scen_util.h"

#include <sqlite3.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define TAG_LEN 48
#define NAME_LEN 48

static _Atomic uint64_t g_retries;

uint64_t peer_sqlite_retries(void) { return atomic_load(&g_retries); }

const char *peer_sqlite_version(void) { return sqlite3_libversion(); }

/* journal_mode=WAL is persistent (set once, when the database is made);
 * the others are per connection. busy_timeout is set first, by
 * sqlite3_busy_timeout, so that nothing after it fails at once on a lock
 * another connection holds. */
static const char wal_pragma[] = "PRAGMA journal_mode=WAL;";
static const char pragmas[] =
    "PRAGMA synchronous=FULL; PRAGMA cache_size=-32768;";

const char *peer_sqlite_pragmas(void)
{
    return "journal_mode=WAL (set when the database is made), then on every "
           "connection busy_timeout=5000, synchronous=FULL, "
           "cache_size=-32768 (32 MiB)";
}

static const char schema[] =
    "CREATE TABLE events(\n"
    "  position INTEGER PRIMARY KEY,  -- the global position (rowid)\n"
    "  tenant TEXT NOT NULL,\n"
    "  stream TEXT,                   -- NULL: a DCB event outside streams\n"
    "  version INTEGER,               -- 0-based in its stream\n"
    "  id BLOB NOT NULL UNIQUE,       -- the 16-byte event id\n"
    "  type TEXT NOT NULL,\n"
    "  data BLOB NOT NULL,\n"
    "  metadata BLOB,\n"
    "  correlation_id BLOB,\n"
    "  causation_id BLOB,\n"
    "  recorded_at INTEGER NOT NULL,  -- microseconds since the epoch\n"
    "  UNIQUE(tenant, stream, version));\n"
    "CREATE INDEX events_tenant_position ON events(tenant, position);\n"
    "CREATE INDEX events_tenant_type ON events(tenant, type, position);\n"
    "CREATE TABLE event_tags(\n"
    "  tenant TEXT NOT NULL,\n"
    "  tag TEXT NOT NULL,\n"
    "  position INTEGER NOT NULL,\n"
    "  PRIMARY KEY(tenant, tag, position)) WITHOUT ROWID;";

const char *peer_sqlite_schema(void) { return schema; }

uint64_t peer_sqlite_bytes(const char *path)
{
    char wal[PATH_MAX + 8];
    struct stat st;
    uint64_t n = 0;
    if (stat(path, &st) == 0)
        n += (uint64_t)st.st_size;
    snprintf(wal, sizeof wal, "%s-wal", path);
    if (stat(wal, &st) == 0)
        n += (uint64_t)st.st_size;
    return n;
}

/* ------------------------------------------------------------------ */
/* Connections                                                         */
/* ------------------------------------------------------------------ */

/* A connection and the statements every scenario uses. */
typedef struct sq_conn {
    sqlite3 *db;
    sqlite3_stmt *ins;  /* an event; its position is last_insert_rowid */
    sqlite3_stmt *tag;  /* a tag of it */
    sqlite3_stmt *ver;  /* a stream's version */
} sq_conn;

static void sq_msg(char *err, size_t errsize, sqlite3 *db, const char *what)
{
    scen_msg(err, errsize, "sqlite: %s: %s", what,
             db ? sqlite3_errmsg(db) : "cannot allocate a connection");
}

static int sq_exec(sqlite3 *db, const char *sql, char *err, size_t errsize)
{
    char *m = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &m) != SQLITE_OK) {
        scen_msg(err, errsize, "sqlite: %.80s: %s", sql, m ? m : "failed");
        sqlite3_free(m);
        return -1;
    }
    return 0;
}

static void sq_close(sq_conn *c)
{
    if (!c)
        return;
    sqlite3_finalize(c->ins);
    sqlite3_finalize(c->tag);
    sqlite3_finalize(c->ver);
    sqlite3_close(c->db);
    memset(c, 0, sizeof *c);
}

/* Opens path (create: a new database, the schema made) with the pragmas
 * and prepares the statements. */
static int sq_open(sq_conn *c, const char *path, int create, char *err,
                   size_t errsize)
{
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
                (create ? SQLITE_OPEN_CREATE : 0);
    memset(c, 0, sizeof *c);
    if (sqlite3_open_v2(path, &c->db, flags, NULL) != SQLITE_OK) {
        sq_msg(err, errsize, c->db, path);
        sq_close(c);
        return -1;
    }
    sqlite3_busy_timeout(c->db, PEER_SQLITE_BUSY_MS);
    if ((create && sq_exec(c->db, wal_pragma, err, errsize) != 0) ||
        sq_exec(c->db, pragmas, err, errsize) != 0 ||
        (create && sq_exec(c->db, schema, err, errsize) != 0)) {
        sq_close(c);
        return -1;
    }
    if (sqlite3_prepare_v2(c->db,
                           "INSERT INTO events(tenant, stream, version, id, "
                           "type, data, metadata, correlation_id, "
                           "causation_id, recorded_at) VALUES(?1, ?2, ?3, "
                           "?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                           -1, &c->ins, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c->db,
                           "INSERT INTO event_tags(tenant, tag, position) "
                           "VALUES(?1, ?2, ?3)",
                           -1, &c->tag, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c->db,
                           "SELECT max(version) FROM events WHERE tenant = "
                           "?1 AND stream = ?2",
                           -1, &c->ver, NULL) != SQLITE_OK) {
        sq_msg(err, errsize, c->db, "preparing the statements");
        sq_close(c);
        return -1;
    }
    return 0;
}

static int sq_prepare(sq_conn *c, sqlite3_stmt **st, const char *sql,
                      char *err, size_t errsize)
{
    if (sqlite3_prepare_v2(c->db, sql, -1, st, NULL) != SQLITE_OK) {
        sq_msg(err, errsize, c->db, sql);
        return -1;
    }
    return 0;
}

/* BEGIN IMMEDIATE: SQLITE_OK, SQLITE_BUSY still after
 * PEER_SQLITE_ATTEMPTS attempts (each waiting up to the busy timeout),
 * or another error. */
static int sq_begin(sqlite3 *db)
{
    int rc = SQLITE_BUSY;
    for (int a = 0; a < PEER_SQLITE_ATTEMPTS; a++) {
        if (a)
            atomic_fetch_add(&g_retries, 1);
        rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if (rc != SQLITE_BUSY)
            return rc;
    }
    return rc;
}

static void sq_rollback(sqlite3 *db)
{
    if (!sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

/* The stream's version (EVS_NO_STREAM when it has no event) into *v. */
static int sq_version(sq_conn *c, const char *tenant, const char *stream,
                      int64_t *v)
{
    int rc;
    sqlite3_reset(c->ver);
    sqlite3_bind_text(c->ver, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(c->ver, 2, stream, -1, SQLITE_STATIC);
    rc = sqlite3_step(c->ver);
    if (rc != SQLITE_ROW)
        return rc;
    *v = sqlite3_column_type(c->ver, 0) == SQLITE_NULL
             ? EVS_NO_STREAM
             : sqlite3_column_int64(c->ver, 0);
    sqlite3_reset(c->ver);
    return SQLITE_OK;
}

static int is_nil(const evs_uuid *u)
{
    for (int i = 0; i < 16; i++)
        if (u->bytes[i])
            return 0;
    return 1;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A fresh event id, UUIDv7 layout (the store makes evstore's): the ms
 * time, then random bits, the version and variant bits set. */
static void new_id(evs_uuid *u, uint64_t *rng)
{
    uint64_t ms = (uint64_t)now_us() / 1000, a = scen_rand(rng),
             b = scen_rand(rng) ^ now_ns();
    for (int i = 0; i < 6; i++)
        u->bytes[i] = (uint8_t)(ms >> (40 - 8 * i));
    for (int i = 6; i < 16; i++)
        u->bytes[i] = (uint8_t)((i < 11 ? a : b) >> (8 * (i % 8)));
    u->bytes[6] = (uint8_t)(0x70 | (u->bytes[6] & 0x0f));
    u->bytes[8] = (uint8_t)(0x80 | (u->bytes[8] & 0x3f));
}

/* Inserts one event (stream NULL: a DCB event) and its tags, in the
 * caller's transaction. id NULL: ev->id, else id. */
static int sq_insert(sq_conn *c, const char *tenant, const char *stream,
                     int64_t version, const evs_event_data *ev,
                     const evs_uuid *id)
{
    sqlite3_stmt *s = c->ins;
    int rc;
    if (!id)
        id = &ev->id;
    sqlite3_reset(s);
    sqlite3_bind_text(s, 1, tenant, -1, SQLITE_STATIC);
    if (stream) {
        sqlite3_bind_text(s, 2, stream, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 3, version);
    } else {
        sqlite3_bind_null(s, 2);
        sqlite3_bind_null(s, 3);
    }
    sqlite3_bind_blob(s, 4, id->bytes, 16, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, ev->type, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, 6, ev->data ? ev->data : "", (int)ev->data_len,
                      SQLITE_STATIC);
    if (ev->metadata && ev->metadata_len)
        sqlite3_bind_blob(s, 7, ev->metadata, (int)ev->metadata_len,
                          SQLITE_STATIC);
    else
        sqlite3_bind_null(s, 7);
    if (!is_nil(&ev->correlation_id))
        sqlite3_bind_blob(s, 8, ev->correlation_id.bytes, 16, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, 8);
    if (!is_nil(&ev->causation_id))
        sqlite3_bind_blob(s, 9, ev->causation_id.bytes, 16, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, 9);
    sqlite3_bind_int64(s, 10, ev->recorded_at ? ev->recorded_at : now_us());
    if ((rc = sqlite3_step(s)) != SQLITE_DONE)
        return rc;
    sqlite3_int64 pos = sqlite3_last_insert_rowid(c->db);
    for (size_t i = 0; i < ev->ntags; i++) {
        sqlite3_reset(c->tag);
        sqlite3_bind_text(c->tag, 1, tenant, -1, SQLITE_STATIC);
        sqlite3_bind_text(c->tag, 2, ev->tags[i], -1, SQLITE_STATIC);
        sqlite3_bind_int64(c->tag, 3, pos);
        if ((rc = sqlite3_step(c->tag)) != SQLITE_DONE)
            return rc;
    }
    return SQLITE_OK;
}

/* Counts the tenant's events into *n. */
static int sq_count(sq_conn *c, const char *tenant, uint64_t *n, char *err,
                    size_t errsize)
{
    sqlite3_stmt *st = NULL;
    if (sq_prepare(c, &st, "SELECT count(*) FROM events WHERE tenant = ?1",
                   err, errsize) != 0)
        return -1;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sq_msg(err, errsize, c->db, "counting events");
        sqlite3_finalize(st);
        return -1;
    }
    *n = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return 0;
}

/* ------------------------------------------------------------------ */
/* The load                                                            */
/* ------------------------------------------------------------------ */

int peer_sqlite_load(const char *path, const gen_config *cfg,
                     uint64_t *events, uint64_t *commits, char *err,
                     size_t errsize)
{
    sq_conn c;
    gen *g = NULL;
    gen_event e;
    char tenant[EVS_MAX_TENANT_LEN + 1] = "";
    uint64_t in_tx = 0;
    int rc, status = -1;
    struct stat st;

    *events = *commits = 0;
    if (stat(path, &st) == 0) {
        scen_msg(err, errsize, "sqlite: %s exists already", path);
        return -1;
    }
    if ((rc = gen_new(&g, cfg, err, errsize)) < 0)
        return -1;
    if (sq_open(&c, path, 1, err, errsize) != 0) {
        gen_free(g);
        return -1;
    }
    while ((rc = gen_next(g, &e)) == 0) {
        /* one transaction per run of one tenant's events, at most
           batch_events: gen_load's appends */
        if (in_tx && (in_tx >= cfg->batch_events ||
                      strcmp(tenant, e.tenant) != 0)) {
            if (sq_exec(c.db, "COMMIT", err, errsize) != 0)
                goto out;
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
            if (sq_begin(c.db) != SQLITE_OK) {
                sq_msg(err, errsize, c.db, "BEGIN IMMEDIATE");
                goto out;
            }
            snprintf(tenant, sizeof tenant, "%s", e.tenant);
        }
        if ((rc = sq_insert(&c, e.tenant, e.stream, e.expected_version + 1,
                            &e.ev, NULL)) != SQLITE_OK) {
            sq_msg(err, errsize, c.db, "inserting a generated event");
            goto out;
        }
        in_tx++;
        ++*events;
    }
    if (in_tx) {
        if (sq_exec(c.db, "COMMIT", err, errsize) != 0)
            goto out;
        ++*commits;
    }
    /* statistics for the planner, as a careful user runs after a bulk
       load (SQLite 3.40 does not gather them by itself) */
    if (sq_exec(c.db, "ANALYZE", err, errsize) != 0)
        goto out;
    status = 0;
out:
    sq_rollback(c.db);
    sq_close(&c);
    gen_free(g);
    return status;
}

/* ------------------------------------------------------------------ */
/* append-1, batch                                                     */
/* ------------------------------------------------------------------ */

#define STREAMS_PER_THREAD 5
#define MAX_PARTS 5
#define MAX_PER_PART 20

typedef struct append_kind {
    const char *prefix;
    int parts, per_part;
} append_kind;

typedef struct ap_state {
    char path[PATH_MAX];
    char tenant[EVS_MAX_TENANT_LEN + 1];
    const append_kind *kind;
    uint64_t seed;
    _Atomic uint32_t instances;
    _Atomic uint64_t events; /* committed, warm-up included */
    pthread_mutex_t mu;
    char problem[256];
} ap_state;

typedef struct ap_thread {
    ap_state *s;
    sq_conn c;
    uint64_t rng;
    char stream[STREAMS_PER_THREAD][NAME_LEN];
    int64_t version[STREAMS_PER_THREAD];
    unsigned next;
    char json[MAX_PER_PART][320];
    char tag[2][64];
    const char *tags[2];
    evs_event_data ev[MAX_PER_PART];
} ap_thread;

static const append_kind k_append1 = {"ledger1", 1, 1};
static const append_kind k_batch = {"batch", 5, 20};

static int ap_setup(void **state, bench_ctx *ctx, const append_kind *k,
                    char *err, size_t errsize)
{
    ap_state *s = calloc(1, sizeof *s);
    if (!s) {
        scen_msg(err, errsize, "out of memory");
        return -1;
    }
    snprintf(s->path, sizeof s->path, "%s", ctx->db_uri);
    snprintf(s->tenant, sizeof s->tenant, "%s", ctx->tenant);
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

/* The first problem a thread found, for the check. */
static void ap_problem(ap_state *s, const char *msg)
{
    scen_first_problem(&s->mu, s->problem, sizeof s->problem, msg);
}

/* As scen_appends.c's thread: 5 fresh streams per thread of every level,
   the same ~240 B JSON, the same two tags. */
static void *ap_thread_init(void *state, int thread, int nthreads)
{
    ap_state *s = state;
    ap_thread *t = calloc(1, sizeof *t);
    char err[256];
    uint32_t inst;
    (void)nthreads;
    if (!t)
        return NULL;
    t->s = s;
    if (sq_open(&t->c, s->path, 0, err, sizeof err) != 0) {
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
    scen_ledger_tags(t->tag, inst);
    t->tags[0] = t->tag[0];
    t->tags[1] = t->tag[1];
    for (int j = 0; j < s->kind->per_part; j++) {
        int n = scen_ledger_json(t->json[j], sizeof t->json[j], s->kind->prefix, j, inst);
        event_init(&t->ev[j], j == 0 ? "EntryOpened" : "EntryPosted",
                   t->json[j], (size_t)n);
        t->ev[j].tags = t->tags;
        t->ev[j].ntags = 2;
    }
    return t;
}

/* One append of parts streams x per_part events, the next streams in
   turn: BEGIN IMMEDIATE, each stream's version read and compared with the
   expected one, the events and their tags inserted, COMMIT (durable: the
   WAL fsync'ed). Timed: all of that, busy waits and retries included. */
static int ap_op(void *tstate, uint64_t *t0, uint64_t *t1, uint64_t *items,
                 char *err, size_t errsize)
{
    ap_thread *t = tstate;
    ap_state *s = t->s;
    const append_kind *k = s->kind;
    int slot[MAX_PARTS];
    int64_t newv[MAX_PARTS];
    int rc, outcome = BENCH_ERROR;
    for (int p = 0; p < k->parts; p++)
        slot[p] = (int)(t->next++ % STREAMS_PER_THREAD);
    *t0 = now_ns();
    rc = sq_begin(t->c.db);
    if (rc == SQLITE_BUSY) {
        *t1 = now_ns();
        scen_msg(err, errsize, "sqlite: still busy after %d attempts of %d "
                 "ms", PEER_SQLITE_ATTEMPTS, PEER_SQLITE_BUSY_MS);
        return BENCH_CONFLICT;
    }
    if (rc != SQLITE_OK) {
        sq_msg(err, errsize, t->c.db, "BEGIN IMMEDIATE");
        goto fail;
    }
    for (int p = 0; p < k->parts; p++) {
        int i = slot[p];
        int64_t v;
        if ((rc = sq_version(&t->c, s->tenant, t->stream[i], &v)) !=
            SQLITE_OK) {
            sq_msg(err, errsize, t->c.db, "reading a stream's version");
            goto fail;
        }
        if (v != t->version[i]) {
            /* cannot happen with a thread's own streams: say so */
            scen_msg(err, errsize, "%s is at version %lld, expected %lld",
                     t->stream[i], (long long)v, (long long)t->version[i]);
            t->version[i] = v;
            outcome = BENCH_CONFLICT;
            goto fail;
        }
        for (int j = 0; j < k->per_part; j++) {
            evs_uuid id;
            new_id(&id, &t->rng);
            if ((rc = sq_insert(&t->c, s->tenant, t->stream[i], v + 1 + j,
                                &t->ev[j], &id)) != SQLITE_OK) {
                sq_msg(err, errsize, t->c.db, "inserting an event");
                goto fail;
            }
        }
        newv[p] = v + k->per_part;
    }
    if ((rc = sqlite3_exec(t->c.db, "COMMIT", NULL, NULL, NULL)) !=
        SQLITE_OK) {
        sq_msg(err, errsize, t->c.db, "COMMIT");
        goto fail;
    }
    *t1 = now_ns();
    for (int p = 0; p < k->parts; p++)
        t->version[slot[p]] = newv[p];
    *items += (uint64_t)(k->parts * k->per_part);
    atomic_fetch_add(&s->events, (uint64_t)(k->parts * k->per_part));
    return BENCH_COMMITTED;
fail:
    sq_rollback(t->c.db);
    *t1 = now_ns();
    return outcome;
}

/* Every stream of the thread at the version its commits left. */
static void ap_thread_fini(void *tstate)
{
    ap_thread *t = tstate;
    if (!t)
        return;
    for (int i = 0; i < STREAMS_PER_THREAD; i++) {
        char msg[256];
        int64_t v = 0;
        if (sq_version(&t->c, t->s->tenant, t->stream[i], &v) != SQLITE_OK) {
            snprintf(msg, sizeof msg, "%s: cannot read its version: %s",
                     t->stream[i], sqlite3_errmsg(t->c.db));
            ap_problem(t->s, msg);
            break;
        }
        if (v != t->version[i]) {
            snprintf(msg, sizeof msg, "%s is at version %lld, its committed "
                     "appends left it at %lld", t->stream[i], (long long)v,
                     (long long)t->version[i]);
            ap_problem(t->s, msg);
            break;
        }
    }
    sq_close(&t->c);
    free(t);
}

static int ap_check(void *state, bench_ctx *ctx, char *err, size_t errsize)
{
    ap_state *s = state;
    sq_conn c;
    uint64_t n = 0;
    (void)ctx;
    if (s->problem[0]) {
        scen_msg(err, errsize, "%s", s->problem);
        return -1;
    }
    if (sq_open(&c, s->path, 0, err, errsize) != 0)
        return -1;
    int rc = sq_count(&c, s->tenant, &n, err, errsize);
    sq_close(&c);
    if (rc != 0)
        return -1;
    if (n != atomic_load(&s->events)) {
        scen_msg(err, errsize, "the tenant holds %llu events, the committed "
                 "appends wrote %llu", (unsigned long long)n,
                 (unsigned long long)atomic_load(&s->events));
        return -1;
    }
    return 0;
}

static void ap_teardown(void *state)
{
    ap_state *s = state;
    if (!s)
        return;
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static const int append_levels[] = {1, 8, 64, 256};
static const int append_quick[] = {1, 8};
static const int batch_levels[] = {1, 2, 8};
static const int batch_quick[] = {1, 2};

static const bench_scenario sq_append1 = {
    .name = "append-1",
    .title = "SQLite: single-event appends into the loaded database",
    .what = "One operation: BEGIN IMMEDIATE, the stream's version read and "
            "compared with the expected one, one ~240 B JSON event inserted "
            "with its two tags, COMMIT (WAL fsync'ed), on one of the "
            "thread's own 5 streams, round robin. Timed: all of it, busy "
            "waits and retries included. Items: events written.",
    .item = "events",
    SCEN_LEVELS(append_levels, append_quick),
    .setup = ap1_setup,
    .thread_init = ap_thread_init,
    .op = ap_op,
    .thread_fini = ap_thread_fini,
    .check = ap_check,
    .teardown = ap_teardown,
};

static const bench_scenario sq_batch = {
    .name = "batch",
    .title = "SQLite: batched writes, 100 events over 5 streams",
    .what = "One operation: one transaction (BEGIN IMMEDIATE ... COMMIT) "
            "writing 20 events to each of 5 of the thread's own streams, "
            "each stream's version read and checked first. Timed: the "
            "transaction. Items: events written (100 per operation).",
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
/* Readers: a connection and a statement per thread                    */
/* ------------------------------------------------------------------ */

typedef struct rd_thread {
    void *s;
    sq_conn c;
    sqlite3_stmt *q;
    uint64_t rng, sink;
} rd_thread;

static rd_thread *rd_open(void *s, const char *path, const char *sql,
                          uint64_t rng)
{
    rd_thread *t = calloc(1, sizeof *t);
    char err[256];
    if (!t)
        return NULL;
    t->s = s;
    t->rng = rng;
    if (sq_open(&t->c, path, 0, err, sizeof err) != 0 ||
        sq_prepare(&t->c, &t->q, sql, err, sizeof err) != 0) {
        fprintf(stderr, "evs bench: %s\n", err);
        sq_close(&t->c);
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
    sqlite3_finalize(t->q);
    sq_close(&t->c);
    free(t);
}

/* ------------------------------------------------------------------ */
/* aggregate: a 1000-event stream read and folded                      */
/* ------------------------------------------------------------------ */

#define AGG_ROUND 10

typedef struct agg_state {
    char path[PATH_MAX];
    char tenant[EVS_MAX_TENANT_LEN + 1];
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

/* scen_tracking.c's setup: 32 streams (8 quick) of exactly 1000 events,
   written in rounds of 10 events to every stream, one transaction a
   round. */
static int agg_setup(void **state, bench_ctx *ctx, char *err, size_t errsize)
{
    agg_state *s = calloc(1, sizeof *s);
    sq_conn c = {0};
    uint64_t rng = scen_seed(ctx->seed ^ 0xA66A, 0);
    if (!s) {
        scen_msg(err, errsize, "out of memory");
        return -1;
    }
    snprintf(s->path, sizeof s->path, "%s", ctx->db_uri);
    snprintf(s->tenant, sizeof s->tenant, "%s", ctx->tenant);
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
    if (sq_open(&c, s->path, 0, err, errsize) != 0)
        goto fail;
    for (int64_t done = 0; done < 1000; done += AGG_ROUND) {
        if (sq_begin(c.db) != SQLITE_OK) {
            sq_msg(err, errsize, c.db, "BEGIN IMMEDIATE");
            goto fail;
        }
        for (int i = 0; i < s->nstreams; i++) {
            for (int64_t v = done; v < done + AGG_ROUND; v++) {
                char js[256];
                evs_event_data ev;
                evs_uuid id;
                int n = snprintf(js, sizeof js, "{\"account\":\"%s\","
                                 "\"amount\":%lld,\"currency\":\"EUR\","
                                 "\"reference\":\"invoice %lld of the "
                                 "account's history\"}",
                                 s->names[i], (long long)agg_amount(v),
                                 (long long)v);
                event_init(&ev, v == 0 ? "AccountOpened" : "Deposited", js,
                           (size_t)n);
                new_id(&id, &rng);
                if (sq_insert(&c, s->tenant, s->names[i], v, &ev, &id) !=
                    SQLITE_OK) {
                    sq_msg(err, errsize, c.db, "writing the aggregates");
                    goto fail;
                }
                s->balance[i] += agg_amount(v);
            }
        }
        if (sq_exec(c.db, "COMMIT", err, errsize) != 0)
            goto fail;
    }
    sq_close(&c);
    *state = s;
    return 0;
fail:
    if (c.db)
        sq_rollback(c.db);
    sq_close(&c);
    agg_teardown(s);
    return -1;
}

static void *agg_thread_init(void *state, int thread, int nthreads)
{
    agg_state *s = state;
    (void)nthreads;
    return rd_open(s, s->path,
                   "SELECT version, data FROM events WHERE tenant = ?1 AND "
                   "stream = ?2 ORDER BY version",
                   scen_seed(s->seed ^ 0xA66, thread));
}

/* One load: every event of a random stream in version order, each
   amount folded (as evs_aggregate_load and the fold). Timed: the query
   and the fold. Correct when the balance and count are the stream's. */
static int agg_op(void *tstate, uint64_t *t0, uint64_t *t1, uint64_t *items,
                  char *err, size_t errsize)
{
    rd_thread *t = tstate;
    agg_state *s = t->s;
    int i = (int)scen_below(&t->rng, (uint64_t)s->nstreams);
    int64_t bal = 0, n = 0, disorder = 0;
    int rc;
    *t0 = now_ns();
    sqlite3_reset(t->q);
    sqlite3_bind_text(t->q, 1, s->tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(t->q, 2, s->names[i], -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(t->q)) == SQLITE_ROW) {
        /* as text: sqlite3_column_text NUL-terminates the blob, which
           json_uint needs */
        const unsigned char *d = sqlite3_column_text(t->q, 1);
        disorder |= sqlite3_column_int64(t->q, 0) != n;
        bal += (int64_t)json_uint(d, "\"amount\":");
        n++;
    }
    *t1 = now_ns();
    sqlite3_reset(t->q);
    if (rc != SQLITE_DONE) {
        sq_msg(err, errsize, t->c.db, "reading a stream");
        return BENCH_ERROR;
    }
    *items += (uint64_t)n;
    if (bal != s->balance[i] || n != 1000 || disorder) {
        scen_msg(err, errsize, "%s: balance %lld over %lld events%s; "
                 "expected %lld over 1000", s->names[i], (long long)bal,
                 (long long)n, disorder ? " out of order" : "",
                 (long long)s->balance[i]);
        return BENCH_ERROR;
    }
    return BENCH_COMMITTED;
}

static const int read_levels[] = {1, 2, 8};
static const int read_quick[] = {1, 2};

static const bench_scenario sq_aggregate = {
    .name = "aggregate",
    .title = "SQLite: 1000-event stream read and folded",
    .what = "One operation: SELECT version, data FROM events WHERE tenant "
            "AND stream ORDER BY version (the UNIQUE(tenant, stream, "
            "version) index) for a random one of 32 streams (8 quick) of "
            "exactly 1000 events written interleaved, every amount folded. "
            "Timed: the query and the fold. Items: events folded.",
    .item = "events",
    SCEN_LEVELS(read_levels, read_quick),
    .setup = agg_setup,
    .thread_init = agg_thread_init,
    .op = agg_op,
    .thread_fini = rd_fini,
    .teardown = agg_teardown,
};

/* ------------------------------------------------------------------ */
/* stream-batches: 1000-event pages in position order                  */
/* ------------------------------------------------------------------ */

#define BATCH 1000

typedef struct trk_state {
    char path[PATH_MAX];
    uint64_t seed;
    char tenant[32];
    uint64_t tail, head;
} trk_state;

static int trk_setup(void **state, bench_ctx *ctx, char *err, size_t errsize)
{
    trk_state *s;
    sq_conn c;
    sqlite3_stmt *st = NULL;
    if (!ctx->loaded || ctx->loaded->events == 0) {
        scen_msg(err, errsize, "needs the generated data");
        return -1;
    }
    if (!(s = calloc(1, sizeof *s))) {
        scen_msg(err, errsize, "out of memory");
        return -1;
    }
    snprintf(s->path, sizeof s->path, "%s", ctx->db_uri);
    s->seed = ctx->seed;
    scen_gen_tenant(s->tenant, sizeof s->tenant, scen_biggest_tenant(ctx));
    if (sq_open(&c, s->path, 0, err, errsize) != 0) {
        free(s);
        return -1;
    }
    if (sq_prepare(&c, &st, "SELECT min(position), max(position) FROM events "
                   "WHERE tenant = ?1", err, errsize) != 0)
        goto fail;
    sqlite3_bind_text(st, 1, s->tenant, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW ||
        sqlite3_column_type(st, 0) == SQLITE_NULL) {
        scen_msg(err, errsize, "%s has no events in the SQLite database",
                 s->tenant);
        goto fail;
    }
    s->tail = (uint64_t)sqlite3_column_int64(st, 0) - 1;
    s->head = (uint64_t)sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    sq_close(&c);
    *state = s;
    return 0;
fail:
    sqlite3_finalize(st);
    sq_close(&c);
    free(s);
    return -1;
}

static void *trk_thread_init(void *state, int thread, int nthreads)
{
    trk_state *s = state;
    (void)nthreads;
    return rd_open(s, s->path,
                   "SELECT position, type, data FROM events WHERE tenant = "
                   "?1 AND position > ?2 ORDER BY position LIMIT 1000",
                   scen_seed(s->seed ^ 0x57EA, thread));
}

/* One page: up to 1000 events of the biggest generated tenant after a
   random position between its tail and head, every event's data
   touched. Timed: the query to its last row. A page short of 1000 must
   have reached the tenant's head. */
static int trk_op(void *tstate, uint64_t *t0, uint64_t *t1, uint64_t *items,
                  char *err, size_t errsize)
{
    rd_thread *t = tstate;
    trk_state *s = t->s;
    uint64_t after = s->tail + scen_below(&t->rng, s->head - s->tail);
    uint64_t n = 0, prev = after;
    int rc, disorder = 0;
    *t0 = now_ns();
    sqlite3_reset(t->q);
    sqlite3_bind_text(t->q, 1, s->tenant, -1, SQLITE_STATIC);
    sqlite3_bind_int64(t->q, 2, (sqlite3_int64)after);
    while ((rc = sqlite3_step(t->q)) == SQLITE_ROW) {
        uint64_t pos = (uint64_t)sqlite3_column_int64(t->q, 0);
        const unsigned char *d = sqlite3_column_blob(t->q, 2);
        int len = sqlite3_column_bytes(t->q, 2);
        disorder |= pos <= prev;
        prev = pos;
        t->sink += (uint64_t)len + (len ? d[0] : 0);
        n++;
    }
    *t1 = now_ns();
    sqlite3_reset(t->q);
    if (rc != SQLITE_DONE) {
        sq_msg(err, errsize, t->c.db, "reading a page");
        return BENCH_ERROR;
    }
    *items += n;
    if (disorder || (n < BATCH && prev < s->head)) {
        scen_msg(err, errsize, "%llu events after position %llu, the last at "
                 "%llu%s, but %s's head is %llu", (unsigned long long)n,
                 (unsigned long long)after, (unsigned long long)prev,
                 disorder ? " (out of order)" : "", s->tenant,
                 (unsigned long long)s->head);
        return BENCH_ERROR;
    }
    return BENCH_COMMITTED;
}

static const bench_scenario sq_batches = {
    .name = "stream-batches",
    .title = "SQLite: 1000-event pages in position order",
    .what = "One operation: SELECT position, type, data FROM events WHERE "
            "tenant AND position > a random position between the biggest "
            "generated tenant's first and last ORDER BY position LIMIT 1000 "
            "(the (tenant, position) index), every event's data touched. "
            "Timed: the query to its last row. Items: events read.",
    .item = "events",
    SCEN_LEVELS(read_levels, read_quick),
    .setup = trk_setup,
    .thread_init = trk_thread_init,
    .op = trk_op,
    .thread_fini = rd_fini,
    .teardown = scen_free,
};

/* ------------------------------------------------------------------ */
/* dcb-query                                                           */
/* ------------------------------------------------------------------ */

#define MAX_LOANS 12

typedef struct q_state {
    char path[PATH_MAX];
    char tenant[EVS_MAX_TENANT_LEN + 1];
    uint64_t seed;
    uint32_t nbooks;
    uint8_t *loans;
} q_state;

static const char *const loan_types[] = {"BookLent", "BookReturned"};

static uint32_t book_events(const q_state *s, uint32_t b)
{
    return 1 + s->loans[b] + (b * 7u) % 3;
}

static void q_teardown(void *state)
{
    q_state *s = state;
    if (!s)
        return;
    free(s->loans);
    free(s);
}

/* scen_dcb.c's library, the same books and loans (the same generator and
   seed), written in rounds (every book's event r in round r),
   transactions of 1000 events. */
static int q_setup(void **state, bench_ctx *ctx, char *err, size_t errsize)
{
    static const char *const regions[] = {"north", "south", "east", "west",
                                          "central"};
    q_state *s = calloc(1, sizeof *s);
    sq_conn c = {0};
    uint64_t rng, idrng = scen_seed(ctx->seed ^ 0xB00D, 0);
    uint32_t maxev = 0, n = 0;
    if (!s) {
        scen_msg(err, errsize, "out of memory");
        return -1;
    }
    snprintf(s->path, sizeof s->path, "%s", ctx->db_uri);
    snprintf(s->tenant, sizeof s->tenant, "%s", ctx->tenant);
    s->seed = ctx->seed;
    s->nbooks = ctx->quick ? 2000 : 20000;
    if (!(s->loans = calloc(s->nbooks, 1))) {
        scen_msg(err, errsize, "out of memory");
        goto fail;
    }
    rng = scen_seed(ctx->seed ^ 0xB00C, 0);
    for (uint32_t b = 0; b < s->nbooks; b++) {
        s->loans[b] = (uint8_t)scen_below(&rng, MAX_LOANS + 1);
        if (book_events(s, b) > maxev)
            maxev = book_events(s, b);
    }
    if (sq_open(&c, s->path, 0, err, errsize) != 0)
        goto fail;
    for (uint32_t r = 0; r < maxev; r++) {
        for (uint32_t b = 0; b < s->nbooks; b++) {
            char json[160], tags[2][TAG_LEN];
            const char *tagp[2] = {tags[0], tags[1]};
            evs_event_data ev;
            evs_uuid id;
            const char *type;
            int len;
            if (r >= book_events(s, b))
                continue;
            type = r == 0 ? "BookDefined"
                   : r <= s->loans[b] ? loan_types[(r - 1) % 2]
                                      : "BookReserved";
            len = snprintf(json, sizeof json,
                           "{\"book\":\"%u\",\"student\":\"s%u\","
                           "\"branch\":\"%s\",\"event\":%u}",
                           b, (b * 31u + r) % 5000, regions[b % 5], r);
            event_init(&ev, type, json, (size_t)len);
            snprintf(tags[0], TAG_LEN, "book:%u", b);
            if (r == 0)
                snprintf(tags[1], TAG_LEN, "region:%s", regions[b % 5]);
            else
                snprintf(tags[1], TAG_LEN, "student:s%u",
                         (b * 31u + r) % 5000);
            ev.tags = tagp;
            ev.ntags = 2;
            if (n == 0 && sq_begin(c.db) != SQLITE_OK) {
                sq_msg(err, errsize, c.db, "BEGIN IMMEDIATE");
                goto fail;
            }
            new_id(&id, &idrng);
            if (sq_insert(&c, s->tenant, NULL, 0, &ev, &id) != SQLITE_OK) {
                sq_msg(err, errsize, c.db, "writing the library");
                goto fail;
            }
            if (++n == 1000) {
                if (sq_exec(c.db, "COMMIT", err, errsize) != 0)
                    goto fail;
                n = 0;
            }
        }
    }
    if (n && sq_exec(c.db, "COMMIT", err, errsize) != 0)
        goto fail;
    /* the library is a bulk load too: statistics, as after the data */
    if (sq_exec(c.db, "ANALYZE", err, errsize) != 0)
        goto fail;
    sq_close(&c);
    *state = s;
    return 0;
fail:
    if (c.db)
        sq_rollback(c.db);
    sq_close(&c);
    q_teardown(s);
    return -1;
}

/* The DCB query: events of the types carrying the tag, by the tag index
   (event_tags' primary key), joined to events by position. */
#define DCB_SQL(types)                                                       \
    "SELECT e.position, e.type, e.data FROM event_tags t JOIN events e ON " \
    "e.position = t.position WHERE t.tenant = ?1 AND t.tag = ?2 AND "       \
    "e.type IN (" types ") ORDER BY t.position"

static void *q_thread_init(void *state, int thread, int nthreads)
{
    q_state *s = state;
    (void)nthreads;
    return rd_open(s, s->path, DCB_SQL("'BookLent', 'BookReturned'"),
                   scen_seed(s->seed ^ 0xD0B, thread));
}

static int q_op(void *tstate, uint64_t *t0, uint64_t *t1, uint64_t *items,
                char *err, size_t errsize)
{
    rd_thread *t = tstate;
    q_state *s = t->s;
    uint32_t b = (uint32_t)scen_below(&t->rng, s->nbooks);
    char tag[TAG_LEN];
    uint64_t n = 0;
    int rc, badtype = 0;
    snprintf(tag, sizeof tag, "book:%u", b);
    *t0 = now_ns();
    sqlite3_reset(t->q);
    sqlite3_bind_text(t->q, 1, s->tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(t->q, 2, tag, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(t->q)) == SQLITE_ROW) {
        const char *type = (const char *)sqlite3_column_text(t->q, 1);
        const unsigned char *d = sqlite3_column_blob(t->q, 2);
        int len = sqlite3_column_bytes(t->q, 2);
        n++;
        t->sink += (uint64_t)len + (len ? d[0] : 0);
        badtype |= strcmp(type, "BookLent") != 0 &&
                   strcmp(type, "BookReturned") != 0;
    }
    *t1 = now_ns();
    sqlite3_reset(t->q);
    if (rc != SQLITE_DONE) {
        sq_msg(err, errsize, t->c.db, "DCB query");
        return BENCH_ERROR;
    }
    *items += n;
    if (n != s->loans[b] || badtype) {
        scen_msg(err, errsize, "query of %s returned %llu events%s, setup "
                 "wrote %u", tag, (unsigned long long)n,
                 badtype ? " (one of another type)" : "", s->loans[b]);
        return BENCH_ERROR;
    }
    return BENCH_COMMITTED;
}

static const bench_scenario sq_query = {
    .name = "dcb-query",
    .title = "SQLite: selective query by tag and type",
    .what = "One operation: the events of types BookLent or BookReturned "
            "tagged book:X for a random book X of the same library as "
            "evstore's (event_tags' (tenant, tag, position) key, joined to "
            "events by position, in position order), every event's data "
            "touched. Timed: the query to its last row. Items: events "
            "returned; count and types checked.",
    .item = "events",
    SCEN_LEVELS(read_levels, read_quick),
    .setup = q_setup,
    .thread_init = q_thread_init,
    .op = q_op,
    .thread_fini = rd_fini,
    .teardown = q_teardown,
};

/* ------------------------------------------------------------------ */
/* dcb-workflow: query, decide, conditional append                     */
/* ------------------------------------------------------------------ */

typedef struct c_state {
    char path[PATH_MAX];
    char tenant[EVS_MAX_TENANT_LEN + 1];
    uint64_t seed;
    uint32_t ncourses;
    int64_t *capacity;
    _Atomic int64_t *subs, *unsubs;
} c_state;

typedef struct c_thread {
    c_state *s;
    sq_conn c;
    sqlite3_stmt *q;
    uint64_t rng, seq;
    uint64_t idrng; /* event ids: apart, so that rng draws evstore's choices */
    int id;
} c_thread;

#define COURSE_TYPES "'CourseDefined', 'StudentSubscribed', " \
                     "'StudentUnsubscribed'"

static void c_teardown(void *state)
{
    c_state *s = state;
    if (!s)
        return;
    free(s->capacity);
    free((void *)s->subs);
    free((void *)s->unsubs);
    free(s);
}

/* scen_dcb.c's courses: the same capacities, defined 100 a transaction. */
static int c_setup(void **state, bench_ctx *ctx, char *err, size_t errsize)
{
    c_state *s = calloc(1, sizeof *s);
    sq_conn c = {0};
    uint64_t idrng = scen_seed(ctx->seed ^ 0xC0DF, 0);
    if (!s) {
        scen_msg(err, errsize, "out of memory");
        return -1;
    }
    snprintf(s->path, sizeof s->path, "%s", ctx->db_uri);
    snprintf(s->tenant, sizeof s->tenant, "%s", ctx->tenant);
    s->seed = ctx->seed;
    s->ncourses = ctx->quick ? 500 : 5000;
    s->capacity = calloc(s->ncourses, sizeof *s->capacity);
    s->subs = calloc(s->ncourses, sizeof *s->subs);
    s->unsubs = calloc(s->ncourses, sizeof *s->unsubs);
    if (!s->capacity || !s->subs || !s->unsubs) {
        scen_msg(err, errsize, "out of memory");
        goto fail;
    }
    if (sq_open(&c, s->path, 0, err, errsize) != 0)
        goto fail;
    for (uint32_t k = 0; k < s->ncourses; k++) {
        char json[64], tag[TAG_LEN];
        const char *tagp[1] = {tag};
        evs_event_data ev;
        evs_uuid id;
        int len;
        s->capacity[k] = 10 + (int64_t)(k % 20);
        len = snprintf(json, sizeof json, "{\"course\":\"%u\","
                       "\"capacity\":%lld}", k, (long long)s->capacity[k]);
        event_init(&ev, "CourseDefined", json, (size_t)len);
        snprintf(tag, TAG_LEN, "course:%u", k);
        ev.tags = tagp;
        ev.ntags = 1;
        if (k % 100 == 0 && sq_begin(c.db) != SQLITE_OK) {
            sq_msg(err, errsize, c.db, "BEGIN IMMEDIATE");
            goto fail;
        }
        new_id(&id, &idrng);
        if (sq_insert(&c, s->tenant, NULL, 0, &ev, &id) != SQLITE_OK) {
            sq_msg(err, errsize, c.db, "defining the courses");
            goto fail;
        }
        if ((k % 100 == 99 || k + 1 == s->ncourses) &&
            sq_exec(c.db, "COMMIT", err, errsize) != 0)
            goto fail;
    }
    sq_close(&c);
    *state = s;
    return 0;
fail:
    if (c.db)
        sq_rollback(c.db);
    sq_close(&c);
    c_teardown(s);
    return -1;
}

static void *c_thread_init(void *state, int thread, int nthreads)
{
    c_state *s = state;
    c_thread *t = calloc(1, sizeof *t);
    char err[256];
    if (!t)
        return NULL;
    t->s = s;
    t->id = thread;
    t->rng = scen_seed(s->seed ^ (0xC0DE + (uint64_t)nthreads), thread);
    t->idrng = (scen_seed(s->seed ^ 0x1D5, thread) ^ now_ns()) | 1;
    if (sq_open(&t->c, s->path, 0, err, sizeof err) != 0 ||
        sq_prepare(&t->c, &t->q, DCB_SQL(COURSE_TYPES), err, sizeof err) !=
            0) {
        fprintf(stderr, "evs bench: %s\n", err);
        sq_close(&t->c);
        free(t);
        return NULL;
    }
    return t;
}

static void c_thread_fini(void *tstate)
{
    c_thread *t = tstate;
    if (!t)
        return;
    sqlite3_finalize(t->q);
    sq_close(&t->c);
    free(t);
}

/* Folds a course's events (the query bound and stepped by the caller)
   into *capacity, *taken; *defined. */
static int c_fold(c_thread *t, uint32_t course, int *defined,
                  int64_t *capacity, int64_t *taken)
{
    char tag[TAG_LEN];
    int rc;
    snprintf(tag, sizeof tag, "course:%u", course);
    *defined = 0;
    *capacity = *taken = 0;
    sqlite3_reset(t->q);
    sqlite3_bind_text(t->q, 1, t->s->tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(t->q, 2, tag, -1, SQLITE_TRANSIENT);
    while ((rc = sqlite3_step(t->q)) == SQLITE_ROW) {
        const char *type = (const char *)sqlite3_column_text(t->q, 1);
        if (type[0] == 'C') {
            *defined = 1;
            *capacity = (int64_t)json_uint(sqlite3_column_text(t->q, 2),
                                           "\"capacity\":");
        } else if (type[7] == 'S') {
            ++*taken;
        } else if (type[7] == 'U') {
            --*taken;
        }
    }
    sqlite3_reset(t->q);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* One command: BEGIN IMMEDIATE (the write lock: no other writer can add
   a matching event until COMMIT, so the DCB condition "nothing matching
   came after the read" holds by construction), the course's events
   queried and folded, the decision, the event inserted with its two tags,
   COMMIT. Full or empty: ROLLBACK, rejected. Still busy after the
   attempts: a conflict. Timed: all of it. */
static int c_op(void *tstate, uint64_t *t0, uint64_t *t1, uint64_t *items,
                char *err, size_t errsize)
{
    c_thread *t = tstate;
    c_state *s = t->s;
    uint32_t course = (uint32_t)scen_below(&t->rng, s->ncourses);
    int subscribe = (int)scen_below(&t->rng, 2);
    char ctag[TAG_LEN], stag[TAG_LEN], student[32], json[160];
    const char *tags[2] = {ctag, stag};
    int64_t capacity, taken;
    int defined, rc, outcome = BENCH_ERROR;
    evs_event_data ev;
    evs_uuid id;
    snprintf(ctag, sizeof ctag, "course:%u", course);
    snprintf(student, sizeof student, "t%d.%llu", t->id,
             (unsigned long long)t->seq++);
    snprintf(stag, sizeof stag, "student:%s", student);
    *t0 = now_ns();
    rc = sq_begin(t->c.db);
    if (rc == SQLITE_BUSY) {
        *t1 = now_ns();
        scen_msg(err, errsize, "sqlite: still busy after %d attempts of %d "
                 "ms", PEER_SQLITE_ATTEMPTS, PEER_SQLITE_BUSY_MS);
        return BENCH_CONFLICT;
    }
    if (rc != SQLITE_OK) {
        sq_msg(err, errsize, t->c.db, "BEGIN IMMEDIATE");
        goto fail;
    }
    if (c_fold(t, course, &defined, &capacity, &taken) != SQLITE_OK) {
        sq_msg(err, errsize, t->c.db, "the course's query");
        goto fail;
    }
    if (!defined) {
        scen_msg(err, errsize, "%s is not defined", ctag);
        goto fail;
    }
    if ((subscribe && taken >= capacity) || (!subscribe && taken == 0)) {
        outcome = BENCH_REJECTED;
        goto fail;
    }
    int len = snprintf(json, sizeof json,
                       "{\"course\":\"%u\",\"student\":\"%s\",\"seat\":%lld}",
                       course, student,
                       (long long)(subscribe ? taken + 1 : taken));
    event_init(&ev, subscribe ? "StudentSubscribed" : "StudentUnsubscribed",
               json, (size_t)len);
    ev.tags = tags;
    ev.ntags = 2;
    new_id(&id, &t->idrng);
    if (sq_insert(&t->c, s->tenant, NULL, 0, &ev, &id) != SQLITE_OK) {
        sq_msg(err, errsize, t->c.db, "inserting the event");
        goto fail;
    }
    if (sqlite3_exec(t->c.db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        sq_msg(err, errsize, t->c.db, "COMMIT");
        goto fail;
    }
    *t1 = now_ns();
    *items += 1;
    atomic_fetch_add(subscribe ? &s->subs[course] : &s->unsubs[course], 1);
    return BENCH_COMMITTED;
fail:
    sq_rollback(t->c.db);
    *t1 = now_ns();
    return outcome;
}

/* As scen_dcb.c's check: every course replayed in position order, seats
   1, 2, 3... never given twice, never over capacity, the stored
   (un)subscriptions equal to the committed ones. */
static int c_check(void *state, bench_ctx *ctx, char *err, size_t errsize)
{
    c_state *s = state;
    c_thread *t = c_thread_init(s, 0, 1);
    int rc = -1;
    (void)ctx;
    if (!t) {
        scen_msg(err, errsize, "sqlite: cannot open %s", s->path);
        return -1;
    }
    for (uint32_t k = 0; k < s->ncourses; k++) {
        char ctag[TAG_LEN];
        int64_t taken = 0, capacity = 0, subs = 0, unsubs = 0;
        int step;
        snprintf(ctag, sizeof ctag, "course:%u", k);
        sqlite3_reset(t->q);
        sqlite3_bind_text(t->q, 1, s->tenant, -1, SQLITE_STATIC);
        sqlite3_bind_text(t->q, 2, ctag, -1, SQLITE_STATIC);
        while ((step = sqlite3_step(t->q)) == SQLITE_ROW) {
            const char *type = (const char *)sqlite3_column_text(t->q, 1);
            const unsigned char *d = sqlite3_column_text(t->q, 2);
            int64_t seat = (int64_t)json_uint(d, "\"seat\":");
            if (type[0] == 'C') {
                capacity = (int64_t)json_uint(d, "\"capacity\":");
                continue;
            }
            int sub = type[7] == 'S';
            if ((sub && seat != taken + 1) || (!sub && seat != taken)) {
                scen_msg(err, errsize, "%s: seat %lld at position %lld with "
                         "%lld taken before it", ctag, (long long)seat,
                         (long long)sqlite3_column_int64(t->q, 0),
                         (long long)taken);
                goto out;
            }
            taken += sub ? 1 : -1;
            subs += sub;
            unsubs += !sub;
            if (taken < 0 || taken > capacity) {
                scen_msg(err, errsize, "%s: %lld taken of %lld", ctag,
                         (long long)taken, (long long)capacity);
                goto out;
            }
        }
        if (step != SQLITE_DONE) {
            sq_msg(err, errsize, t->c.db, "reading a course");
            goto out;
        }
        if (subs != atomic_load(&s->subs[k]) ||
            unsubs != atomic_load(&s->unsubs[k])) {
            scen_msg(err, errsize, "%s: %lld subscriptions and %lld "
                     "unsubscriptions stored, %lld and %lld committed", ctag,
                     (long long)subs, (long long)unsubs,
                     (long long)atomic_load(&s->subs[k]),
                     (long long)atomic_load(&s->unsubs[k]));
            goto out;
        }
    }
    rc = 0;
out:
    sqlite3_reset(t->q);
    c_thread_fini(t);
    return rc;
}

static const int course_levels[] = {1, 8, 64, 256};
static const int course_quick[] = {1, 8};

static const bench_scenario sq_workflow = {
    .name = "dcb-workflow",
    .title = "SQLite: query, decide, conditional append in one transaction",
    .what = "One operation: BEGIN IMMEDIATE, the course's CourseDefined / "
            "StudentSubscribed / StudentUnsubscribed events queried by tag "
            "and folded, subscribe (half) or unsubscribe decided, the event "
            "inserted with its two tags, COMMIT; full or empty: ROLLBACK, "
            "rejected. The write lock held from the query to the commit is "
            "SQLite's form of the DCB condition. The same 5,000 courses "
            "(500 quick). Timed: all of it, busy waits and retries "
            "included. Items: events written. Check: as evstore's.",
    .item = "events",
    SCEN_LEVELS(course_levels, course_quick),
    .setup = c_setup,
    .thread_init = c_thread_init,
    .op = c_op,
    .thread_fini = c_thread_fini,
    .check = c_check,
    .teardown = c_teardown,
};

/* ------------------------------------------------------------------ */

static const bench_scenario *const sq_scenarios[] = {
    &sq_append1, &sq_batch, &sq_aggregate, &sq_batches, &sq_query,
    &sq_workflow, NULL};

const bench_scenario *peer_sqlite_scenario(const char *name)
{
    for (int i = 0; name && sq_scenarios[i]; i++)
        if (strcmp(sq_scenarios[i]->name, name) == 0)
            return sq_scenarios[i];
    return NULL;
}
