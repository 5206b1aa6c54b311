/*
 * executor.c -- the command executor (include/evstore_command.h; how and
 * why in docs/COMMANDS.md): validating a command, its per-thread execution
 * context, the attempts (read, discover, fold, handle, commit), retries
 * with backoff, and the executor's counters.
 *
 * A layer on the public API only (evs_read_streams, evs_read_query,
 * evs_iter_*, evs_append_ex), so it runs on every backend and sees nothing
 * of the front end's or a backend's internals; of the rest of the library
 * it takes only the leaf helpers of core/error.h (the detail message) and
 * util/util.h (evs__grow, the clock). Its two data structures are apart,
 * each with one job: cache.c, the state cache its threads share, and
 * arena.c, the allocator of an attempt's copies.
 *
 * One attempt of the stream form:
 *
 *   slots (one per distinct stream)      reads                 append
 *   ------------------------------      -----                 ------
 *   state from the cache or init  ──▶  evs_read_streams of    parts: written
 *                                      every READ slot, from  streams, READ ones
 *                                      cached version + 1     expecting the version
 *                                      (one snapshot)         folded, APPEND ones
 *   discover ──▶ new slots ────────▶  one more read of the   EVS_ANY;
 *      (at most EVS_CMD_MAX_READS      new slots only         conditions: READ
 *       reads an attempt)                                     slots not written,
 *   handle ──▶ decision (events copied into the arena)  ──▶  "$stream:NAME" after
 *                                                             their read's marker
 *
 * A conflict (EVS_ECONFLICT) starts the next attempt after a backoff; the
 * cache then supplies what was folded, and the read fetches only what
 * changed.
 */
#include "command/arena.h"
#include "command/cache.h"
#include "core/error.h"
#include "evstore_command.h"
#include "util/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------ */
/* The executor                                                        */
/* ------------------------------------------------------------------ */

enum {
    ST_COMMANDS, ST_COMMITTED, ST_REJECTED, ST_CONFLICTS, ST_ERRORS, ST_ATTEMPTS,
    ST_HANDLER_CALLS, ST_CONFLICTED_ATTEMPTS, ST_READS, ST_STREAMS_READ,
    ST_EVENTS_FOLDED, ST_CACHE_HITS, ST_CACHE_MISSES, ST_BACKOFF_US, ST_N
};

struct evs_executor {
    evs_db *db;
    evs_retry_policy retry;
    evs_read_hook hook;
    void *hook_ctx;
    evs__cache *cache;
    _Atomic uint64_t stats[ST_N];
};

static EVS_MUST_USE int check_policy(const evs_retry_policy *p, const char *whose)
{
    if (p->max_attempts == 0)
        return evs__err(EVS_EINVAL, "%s: max_attempts is 0 (give at least 1: 1 attempt "
                        "= no retry)", whose);
    if (p->max_delay_us < p->base_delay_us)
        return evs__err(EVS_EINVAL, "%s: max_delay_us %u is below base_delay_us %u",
                        whose, (unsigned)p->max_delay_us,
                        (unsigned)p->base_delay_us);
    return 0;
}

int evs_executor_new(evs_executor **out, evs_db *db, const evs_executor_options *opts)
{
    evs_executor_options dflt = EVS_EXECUTOR_OPTIONS_INIT;
    int rc;
    evs__clear_error();
    if (!out)
        return evs__err(EVS_EINVAL, "executor_new: out is NULL");
    *out = NULL;
    if (!db)
        return evs__err(EVS_EINVAL, "executor_new: db is NULL");
    if (!opts)
        opts = &dflt;
    if (opts->version != EVS_EXECUTOR_OPTIONS_VERSION)
        return evs__err(EVS_EINVAL, "executor_new: options version %u (this library "
                        "knows %u)", opts->version, EVS_EXECUTOR_OPTIONS_VERSION);
    if ((rc = check_policy(&opts->retry, "executor_new: retry policy")) < 0)
        return rc;
    evs_executor *ex = calloc(1, sizeof(*ex));
    if (!ex)
        return evs__err(EVS_ENOMEM, "out of memory creating an executor");
    ex->db = db;
    ex->retry = opts->retry;
    ex->hook = opts->read_hook;
    ex->hook_ctx = opts->read_hook_ctx;
    if (opts->cache_entries && (rc = evs__cache_new(&ex->cache, opts->cache_entries)) < 0) {
        free(ex);
        return rc;
    }
    *out = ex;
    return 0;
}

void evs_executor_free(evs_executor *ex)
{
    if (!ex)
        return;
    evs__cache_free(ex->cache);
    free(ex);
}

int evs_executor_stats_get(evs_executor_stats *out, const evs_executor *ex)
{
    evs__clear_error();
    if (!out || !ex)
        return evs__err(EVS_EINVAL, "executor_stats_get: %s is NULL", out ? "ex" : "out");
    evs_executor *e = (evs_executor *)ex; /* atomics are read, not written */
    uint64_t v[ST_N];
    for (int i = 0; i < ST_N; i++)
        v[i] = atomic_load_explicit(&e->stats[i], memory_order_relaxed);
    memset(out, 0, sizeof(*out));
    out->commands = v[ST_COMMANDS];
    out->committed = v[ST_COMMITTED];
    out->rejected = v[ST_REJECTED];
    out->conflicts = v[ST_CONFLICTS];
    out->errors = v[ST_ERRORS];
    out->attempts = v[ST_ATTEMPTS];
    out->handler_calls = v[ST_HANDLER_CALLS];
    out->conflicted_attempts = v[ST_CONFLICTED_ATTEMPTS];
    out->reads = v[ST_READS];
    out->streams_read = v[ST_STREAMS_READ];
    out->events_folded = v[ST_EVENTS_FOLDED];
    out->cache_hits = v[ST_CACHE_HITS];
    out->cache_misses = v[ST_CACHE_MISSES];
    out->backoff_us = v[ST_BACKOFF_US];
    if (e->cache)
        evs__cache_stats(e->cache, &out->cache_entries, &out->cache_evictions);
    return 0;
}

/* ------------------------------------------------------------------ */
/* One execution: slots, entries, the thread's context                 */
/* ------------------------------------------------------------------ */

/* One distinct stream of the command (the DCB form has one, stream NULL). */
typedef struct slot {
    const char *stream;    /* declared: the caller's; discovered: arena */
    size_t len;
    evs_cmd_access access;
    const evs_fold *fold;
    void *state;           /* the state block; kept with the slot for
                              the next command of this thread */
    size_t state_cap;      /* its bytes */
    int live;              /* state holds a state (to release) */
    int cached;            /* the state came from the cache this attempt */
    uint64_t hash;         /* cache key hash */
    int64_t version;       /* folded so far; EVS_NO_STREAM */
    uint64_t marker;
    uint64_t events;       /* folded this attempt */
    unsigned round;        /* the read round that read it */
    size_t nev;            /* events emitted to it */
    size_t part;           /* its part in the append */
} slot;

struct evs_decision {
    struct exec *cx;
    int error;             /* first emit error */
    char errmsg[512];      /* its message (the handler may call evs_*) */
    int rejected, code;
    char reason[EVS_CMD_REASON_MAX];
};

struct evs_discovery {
    struct exec *cx;
    int error;
    char errmsg[512];
};

typedef struct exec {
    int in_use, keep;      /* a thread's context: see exec_get */
    evs_executor *ex;
    const evs_command *cmd;
    const char *name;
    const char *tenant;    /* never NULL */
    size_t tlen;
    int dcb;

    slot *slots;
    size_t nslots, cap_slots, ndecl_slots;
    size_t *entry_slot;    /* entry -> slot */
    evs_cmd_state *entries;
    size_t nentries, cap_entries, cap_entry_slot, ndecl_entries;

    evs_stream_read *reads;
    size_t *read_slot;
    size_t cap_reads, cap_read_slot;
    uint64_t markers[EVS_CMD_MAX_READS];

    evs_decision d;
    evs_event_data *ev;    /* emitted, in emission order */
    size_t *ev_slot;
    size_t nev, cap_ev, cap_ev_slot;
    evs_event_data *pev;   /* grouped by part */
    size_t cap_pev;
    evs_stream_append *parts;
    evs_append_result *results;
    size_t cap_parts, cap_results;
    evs_query_item *items;
    const char **item_tags;
    size_t cap_items, cap_item_tags;
    evs_append_condition conds[EVS_CMD_MAX_READS];
    uint64_t conflicts[EVS_CMD_MAX_READS];

    evs__arena ar;
    uint64_t st[ST_N];     /* counted here, added to the executor's once */
    evs_command_result *out;
} exec;

/* Fail with rc and a message prefixed by the command's name. */
static EVS_MUST_USE int cmd_err(exec *cx, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int cmd_err(exec *cx, int rc, const char *fmt, ...)
{
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return evs__err(rc, "command %s: %s", cx->name, msg);
}

/* Prefix the current detail message (set by a store call or a callback)
 * with the command's name and what was being done (what may be NULL); a
 * callback that returned an error without a message gets one naming the
 * code. */
static EVS_MUST_USE int cmd_wrap(exec *cx, int rc, const char *what)
{
    char msg[900];
    snprintf(msg, sizeof(msg), "%s", evs_last_error());
    if (!msg[0])
        snprintf(msg, sizeof(msg), "%s", evs_strerror(rc));
    if (!what)
        return evs__err(rc, "command %s: %s", cx->name, msg);
    return evs__err(rc, "command %s: %s: %s", cx->name, what, msg);
}

static EVS_MUST_USE int valid_fold(exec *cx, const evs_fold *f, const char *stream)
{
    if (!f->apply)
        return cmd_err(cx, EVS_EINVAL, "stream %s: fold %s has no apply function",
                       stream ? stream : "(query)", f->name ? f->name : "(unnamed)");
    if (f->state_size == 0)
        return cmd_err(cx, EVS_EINVAL, "stream %s: fold %s has state_size 0 (give the "
                       "size of its state; use no fold for a stream read only for its "
                       "version)", stream ? stream : "(query)",
                       f->name ? f->name : "(unnamed)");
    return 0;
}

static EVS_MUST_USE int valid_stream(exec *cx, const evs_cmd_stream *s, const char *what,
                                     size_t i)
{
    if (!s->stream || !s->stream[0])
        return cmd_err(cx, EVS_EINVAL, "%s stream %zu has %s name", what, i,
                       s->stream ? "an empty" : "a NULL");
    size_t len = strlen(s->stream);
    if (len > EVS_MAX_STREAM_LEN)
        return cmd_err(cx, EVS_EINVAL, "%s stream %zu: name of %zu bytes (at most %d)",
                       what, i, len, EVS_MAX_STREAM_LEN);
    if (s->access != EVS_CMD_READ && s->access != EVS_CMD_APPEND)
        return cmd_err(cx, EVS_EINVAL, "stream %s: unknown access %d", s->stream,
                       (int)s->access);
    if (s->access == EVS_CMD_APPEND && s->fold)
        return cmd_err(cx, EVS_EINVAL, "stream %s: an APPEND stream is not read, so it "
                       "cannot have a fold", s->stream);
    if (s->fold)
        return valid_fold(cx, s->fold, s->stream);
    return 0;
}

static const char *access_name(evs_cmd_access a)
{
    return a == EVS_CMD_READ ? "read" : "append";
}

static int slot_find(const exec *cx, const char *stream, size_t len, size_t *at)
{
    for (size_t i = 0; i < cx->nslots; i++)
        if (cx->slots[i].len == len && memcmp(cx->slots[i].stream, stream, len) == 0) {
            *at = i;
            return 1;
        }
    return 0;
}

/* Add a slot (its state block allocated, not initialized). */
static EVS_MUST_USE int slot_add(exec *cx, const char *stream, size_t len,
                                 evs_cmd_access access, const evs_fold *fold)
{
    size_t old_cap = cx->cap_slots;
    if (evs__grow(&cx->slots, &cx->cap_slots, cx->nslots + 1, sizeof(slot)) < 0)
        return cmd_err(cx, EVS_ENOMEM, "out of memory");
    if (cx->cap_slots > old_cap) /* new slots own no state block yet */
        memset(cx->slots + old_cap, 0, (cx->cap_slots - old_cap) * sizeof(slot));
    slot *s = &cx->slots[cx->nslots];
    void *block = s->state;
    size_t cap = s->state_cap;
    memset(s, 0, sizeof(*s));
    s->state = block;
    s->state_cap = cap;
    s->stream = stream;
    s->len = len;
    s->access = access;
    s->fold = fold;
    s->version = EVS_NO_STREAM;
    if (fold && cap < fold->state_size) {
        void *p = realloc(block, fold->state_size);
        if (!p)
            return cmd_err(cx, EVS_ENOMEM, "out of memory for the state of %s",
                           stream ? stream : "the query");
        s->state = p;
        s->state_cap = fold->state_size;
    }
    if (cx->ex->cache && access == EVS_CMD_READ && stream)
        s->hash = evs__cache_hash(fold, cx->tenant, cx->tlen, stream, len);
    cx->nslots++;
    return 0;
}

static EVS_MUST_USE int entry_add(exec *cx, size_t slot_index)
{
    if (evs__grow(&cx->entries, &cx->cap_entries, cx->nentries + 1, sizeof(evs_cmd_state)) < 0 ||
        evs__grow(&cx->entry_slot, &cx->cap_entry_slot, cx->nentries + 1, sizeof(size_t)) < 0)
        return cmd_err(cx, EVS_ENOMEM, "out of memory");
    cx->entry_slot[cx->nentries++] = slot_index;
    return 0;
}

static void slot_release(slot *s)
{
    if (s->live && s->fold->release)
        s->fold->release(s->state);
    s->live = 0;
}

static void exec_destroy(void *p)
{
    exec *cx = p;
    if (!cx)
        return;
    for (size_t i = 0; i < cx->cap_slots; i++) {
        if (i < cx->nslots)
            slot_release(&cx->slots[i]);
        free(cx->slots[i].state);
    }
    free(cx->slots);
    free(cx->entries);
    free(cx->entry_slot);
    free(cx->reads);
    free(cx->read_slot);
    free(cx->ev);
    free(cx->ev_slot);
    free(cx->pev);
    free(cx->parts);
    free(cx->results);
    free(cx->items);
    free(cx->item_tags);
    evs__arena_free(&cx->ar);
    free(cx);
}

/*
 * Each thread keeps its execution context (arrays, state blocks, arena)
 * for its next command, so a command allocates nothing once its thread has
 * run one like it; freed when the thread exits. A command run from inside
 * another's callback gets a fresh context.
 */
static pthread_once_t g_tl_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_tl_key;
static int g_tl_ok;

static void tl_init(void)
{
    g_tl_ok = pthread_key_create(&g_tl_key, exec_destroy) == 0;
}

static EVS_MUST_USE exec *exec_get(void)
{
    pthread_once(&g_tl_once, tl_init);
    exec *cx = g_tl_ok ? pthread_getspecific(g_tl_key) : NULL;
    if (cx && !cx->in_use) {
        cx->in_use = 1;
        return cx;
    }
    if (!(cx = calloc(1, sizeof(*cx))))
        return NULL;
    cx->in_use = 1;
    if (g_tl_ok && !pthread_getspecific(g_tl_key) && pthread_setspecific(g_tl_key, cx) == 0)
        cx->keep = 1;
    return cx;
}

/* Release the command's states; keep the context for the thread's next
 * command (its arena trimmed to one block), or free it. */
static void exec_put(exec *cx)
{
    for (size_t i = 0; i < cx->nslots; i++)
        slot_release(&cx->slots[i]);
    cx->nslots = cx->nentries = cx->nev = 0;
    if (!cx->keep) {
        exec_destroy(cx);
        return;
    }
    evs__arena_trim(&cx->ar, 65536);
    cx->in_use = 0;
}

/* Sort helper for duplicate detection among many declared streams. */
static int cmp_decl(const void *a, const void *b)
{
    const evs_cmd_stream *x = *(const evs_cmd_stream *const *)a;
    const evs_cmd_stream *y = *(const evs_cmd_stream *const *)b;
    return strcmp(x->stream, y->stream);
}

/* Validate the command and build the declared slots and entries. */
static EVS_MUST_USE int exec_setup(exec *cx)
{
    const evs_command *cmd = cx->cmd;
    int rc;
    if (cmd->query && cmd->nstreams)
        return cmd_err(cx, EVS_EINVAL, "declares both streams and a query (give one: "
                       "streams, or a query for the DCB form)");
    if (!cmd->query && cmd->nstreams == 0)
        return cmd_err(cx, EVS_EINVAL, "declares no stream and no query");
    if (cmd->query) {
        if (cmd->discover)
            return cmd_err(cx, EVS_EINVAL, "discover is for the stream form; a DCB "
                           "command reads only its query");
        if (cmd->query_fold && (rc = valid_fold(cx, cmd->query_fold, NULL)) < 0)
            return rc;
        cx->dcb = 1;
        if ((rc = slot_add(cx, NULL, 0, EVS_CMD_READ, cmd->query_fold)) < 0 ||
            (rc = entry_add(cx, 0)) < 0)
            return rc;
        cx->ndecl_slots = cx->nslots;
        cx->ndecl_entries = cx->nentries;
        return 0;
    }
    if (cmd->query_fold)
        return cmd_err(cx, EVS_EINVAL, "query_fold without a query");
    if (!cmd->streams)
        return cmd_err(cx, EVS_EINVAL, "streams is NULL with nstreams %zu", cmd->nstreams);
    if (cmd->nstreams > EVS_CMD_MAX_STREAMS)
        return cmd_err(cx, EVS_EINVAL, "%zu streams declared (at most %d)", cmd->nstreams,
                       EVS_CMD_MAX_STREAMS);
    for (size_t i = 0; i < cmd->nstreams; i++)
        if ((rc = valid_stream(cx, &cmd->streams[i], "declared", i)) < 0)
            return rc;
    /* Duplicates must agree: sorted for many streams, pairwise for few. */
    if (cmd->nstreams > 32) {
        const evs_cmd_stream **v = malloc(cmd->nstreams * sizeof(*v));
        if (!v)
            return cmd_err(cx, EVS_ENOMEM, "out of memory");
        for (size_t i = 0; i < cmd->nstreams; i++)
            v[i] = &cmd->streams[i];
        qsort(v, cmd->nstreams, sizeof(*v), cmp_decl);
        rc = 0;
        for (size_t i = 1; i < cmd->nstreams && rc == 0; i++)
            if (strcmp(v[i - 1]->stream, v[i]->stream) == 0 &&
                (v[i - 1]->access != v[i]->access || v[i - 1]->fold != v[i]->fold))
                rc = cmd_err(cx, EVS_EINVAL, "stream %s is declared twice with different "
                             "expectations (%s, %s; folds %s)", v[i]->stream,
                             access_name(v[i - 1]->access), access_name(v[i]->access),
                             v[i - 1]->fold == v[i]->fold ? "the same" : "different");
        free(v);
        if (rc < 0)
            return rc;
    }
    for (size_t i = 0; i < cmd->nstreams; i++) {
        const evs_cmd_stream *s = &cmd->streams[i];
        size_t len = strlen(s->stream), at;
        if (slot_find(cx, s->stream, len, &at)) {
            slot *o = &cx->slots[at];
            if (o->access != s->access || o->fold != s->fold)
                return cmd_err(cx, EVS_EINVAL, "stream %s is declared twice with different "
                               "expectations (%s, %s; folds %s)", s->stream,
                               access_name(o->access), access_name(s->access),
                               o->fold == s->fold ? "the same" : "different");
        } else {
            at = cx->nslots;
            if ((rc = slot_add(cx, s->stream, len, s->access, s->fold)) < 0)
                return rc;
        }
        if ((rc = entry_add(cx, at)) < 0)
            return rc;
    }
    cx->ndecl_slots = cx->nslots;
    cx->ndecl_entries = cx->nentries;
    return 0;
}

/* Give a slot its starting state for this attempt: the cached one, or a
 * fresh one (init or zeroes). */
static EVS_MUST_USE int slot_start(exec *cx, slot *s)
{
    slot_release(s);
    s->version = s->access == EVS_CMD_APPEND ? EVS_ANY : EVS_NO_STREAM;
    s->marker = 0;
    s->events = 0;
    s->cached = 0;
    s->nev = 0;
    s->round = 0;
    if (s->access != EVS_CMD_READ)
        return 0;
    evs__cache *c = cx->ex->cache;
    if (c && s->stream) {
        int64_t v = EVS_NO_STREAM;
        int hit = evs__cache_get(c, s->hash, s->fold, cx->tenant, cx->tlen, s->stream,
                                 s->len, s->state, &v);
        if (hit < 0)
            return cmd_wrap(cx, hit, "copying a cached state");
        if (hit) {
            s->version = v;
            s->live = s->fold != NULL;
            s->cached = 1;
            cx->st[ST_CACHE_HITS]++;
            return 0;
        }
        cx->st[ST_CACHE_MISSES]++;
    }
    if (s->fold) {
        if (s->fold->init)
            s->fold->init(s->state);
        else
            memset(s->state, 0, s->fold->state_size);
        s->live = 1;
    }
    return 0;
}

static void fill_entries(exec *cx)
{
    for (size_t i = 0; i < cx->nentries; i++) {
        const slot *s = &cx->slots[cx->entry_slot[i]];
        evs_cmd_state *e = &cx->entries[i];
        e->stream = s->stream;
        e->access = s->access;
        e->version = cx->dcb ? EVS_NO_STREAM : s->version;
        e->marker = s->marker;
        e->events = s->events;
        e->state = s->fold ? s->state : NULL;
    }
}

static EVS_MUST_USE int fold_event(exec *cx, slot *s, const evs_event *e)
{
    s->events++;
    cx->st[ST_EVENTS_FOLDED]++;
    if (!s->fold)
        return 0;
    evs__clear_error();
    int rc = s->fold->apply(s->state, e);
    if (rc == 0)
        return 0;
    if (rc > 0)
        return cmd_err(cx, EVS_EINVAL, "fold %s returned %d for the event at position %llu "
                       "(return 0 or a negative EVS_E* code)",
                       s->fold->name ? s->fold->name : "(unnamed)", rc,
                       (unsigned long long)e->position);
    char what[400];
    snprintf(what, sizeof(what), "fold %s, event at position %llu (%s)",
             s->fold->name ? s->fold->name : "(unnamed)", (unsigned long long)e->position,
             e->type);
    return cmd_wrap(cx, rc, what);
}

/* Read slots [first, nslots) that are READ, in one evs_read_streams call,
 * and fold their events. */
static EVS_MUST_USE int read_round(exec *cx, size_t first, unsigned round,
                                   unsigned attempt)
{
    evs_executor *ex = cx->ex;
    size_t n = 0;
    int rc;
    if (evs__grow(&cx->reads, &cx->cap_reads, cx->nslots, sizeof(evs_stream_read)) < 0 ||
        evs__grow(&cx->read_slot, &cx->cap_read_slot, cx->nslots, sizeof(size_t)) < 0)
        return cmd_err(cx, EVS_ENOMEM, "out of memory");
    for (size_t i = first; i < cx->nslots; i++) {
        slot *s = &cx->slots[i];
        s->round = round;
        if (s->access != EVS_CMD_READ)
            continue;
        cx->reads[n].stream = s->stream;
        cx->reads[n].from_version = s->version + 1;
        cx->read_slot[n++] = i;
    }
    if (n == 0)
        return 0;
    if (ex->hook) {
        evs_read_trace t = {cx->name, attempt, round, cx->reads, n, NULL};
        ex->hook(ex->hook_ctx, &t);
    }
    evs_iter *it;
    if ((rc = evs_read_streams(&it, ex->db, cx->tenant, cx->reads, n)) < 0)
        return cmd_wrap(cx, rc, "reading its streams");
    cx->st[ST_READS]++;
    cx->st[ST_STREAMS_READ] += n;
    const evs_event *e;
    size_t k = 0;
    int mine = 0; /* rc already carries this executor's message */
    /* Events come stream by stream in the order asked (absent or caught-up
     * streams yield nothing), so one forward walk matches them. */
    while ((rc = evs_iter_next(&e, it)) == 0) {
        while (k < n && strcmp(e->stream, cx->reads[k].stream) != 0)
            k++;
        if (k == n) {
            rc = cmd_err(cx, EVS_ECORRUPT, "the read returned an event of stream %s, which "
                         "was not asked for or came out of order", e->stream);
            mine = 1;
            break;
        }
        slot *s = &cx->slots[cx->read_slot[k]];
        if (e->stream_version != s->version + 1) {
            rc = cmd_err(cx, EVS_ECORRUPT, "stream %s: read version %lld after version "
                         "%lld", s->stream, (long long)e->stream_version,
                         (long long)s->version);
            mine = 1;
            break;
        }
        s->version = e->stream_version;
        if ((rc = fold_event(cx, s, e)) < 0) {
            mine = 1;
            break;
        }
    }
    if (rc == EVS_ITEROVER) {
        uint64_t marker = 0;
        rc = evs_iter_marker(&marker, it);
        cx->markers[round] = marker;
        for (size_t j = 0; j < n; j++)
            cx->slots[cx->read_slot[j]].marker = marker;
    } else if (!mine) {
        rc = cmd_wrap(cx, rc, "reading its streams");
    }
    evs_iter_free(it);
    if (rc < 0)
        return rc;
    if (ex->cache)
        for (size_t j = 0; j < n; j++) {
            slot *s = &cx->slots[cx->read_slot[j]];
            /* a cache hit with nothing new is already cached; an absent
             * stream (a new order, say) costs nothing to read again and
             * would only push useful states out */
            if (!(s->cached && s->events == 0) && s->version != EVS_NO_STREAM)
                evs__cache_put(ex->cache, s->hash, s->fold, cx->tenant, cx->tlen,
                               s->stream, s->len, s->state, s->version);
        }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Discovery and decisions                                             */
/* ------------------------------------------------------------------ */

const evs_cmd_state *evs_cmd_state_find(const evs_cmd_state *s, size_t n,
                                        const char *stream)
{
    if (!s || !stream)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (s[i].stream && strcmp(s[i].stream, stream) == 0)
            return &s[i];
    return NULL;
}

int evs_discovery_add(evs_discovery *dx, const evs_cmd_stream *s)
{
    if (!dx || !s)
        return evs__err(EVS_EINVAL, "discovery_add: %s is NULL", dx ? "stream" : "dx");
    if (dx->error)
        return dx->error;
    exec *cx = dx->cx;
    size_t len, at;
    int rc = valid_stream(cx, s, "discovered", cx->nentries);
    if (rc == 0) {
        len = strlen(s->stream);
        if (slot_find(cx, s->stream, len, &at)) {
            slot *o = &cx->slots[at];
            if (o->access != s->access || o->fold != s->fold)
                rc = cmd_err(cx, EVS_EINVAL, "stream %s discovered with other expectations "
                             "than it has (%s, %s; folds %s)", s->stream,
                             access_name(o->access), access_name(s->access),
                             o->fold == s->fold ? "the same" : "different");
            else
                return 0;
        } else if (cx->nentries >= EVS_CMD_MAX_STREAMS) {
            rc = cmd_err(cx, EVS_EINVAL, "discovering stream %s: the command has %d "
                         "streams already (EVS_CMD_MAX_STREAMS)", s->stream,
                         EVS_CMD_MAX_STREAMS);
        } else {
            const char *name = evs__arena_strdup(&cx->ar, s->stream, len);
            if (!name)
                rc = cmd_err(cx, EVS_ENOMEM, "out of memory");
            else if ((rc = slot_add(cx, name, len, s->access, s->fold)) == 0)
                rc = entry_add(cx, cx->nslots - 1);
        }
    }
    if (rc < 0) {
        dx->error = rc;
        snprintf(dx->errmsg, sizeof(dx->errmsg), "%s", evs_last_error());
    }
    return rc;
}

static EVS_MUST_USE int decision_fail(evs_decision *d, int rc)
{
    d->error = rc;
    snprintf(d->errmsg, sizeof(d->errmsg), "%s", evs_last_error());
    return rc;
}

int evs_decision_emit(evs_decision *d, const char *stream, const evs_event_data *ev)
{
    if (!d || !ev)
        return evs__err(EVS_EINVAL, "decision_emit: %s is NULL", d ? "ev" : "d");
    if (d->error)
        return d->error;
    exec *cx = d->cx;
    size_t at = 0;
    if (cx->dcb) {
        if (stream)
            return decision_fail(d, cmd_err(cx, EVS_EINVAL, "handler emitted an event to "
                                 "stream %s, but a DCB command writes events without a "
                                 "stream (emit to NULL)", stream));
    } else {
        if (!stream)
            return decision_fail(d, cmd_err(cx, EVS_EINVAL, "handler emitted an event "
                                 "without a stream (only the DCB form writes such "
                                 "events)"));
        if (!slot_find(cx, stream, strlen(stream), &at))
            return decision_fail(d, cmd_err(cx, EVS_EINVAL, "handler emitted an event to "
                                 "stream %s, which the command did not declare or "
                                 "discover", stream));
    }
    if (!ev->type || !ev->type[0])
        return decision_fail(d, cmd_err(cx, EVS_EINVAL, "handler emitted an event with %s "
                             "type", ev->type ? "an empty" : "no"));
    if ((ev->data_len && !ev->data) || (ev->metadata_len && !ev->metadata) ||
        (ev->ntags && !ev->tags))
        return decision_fail(d, cmd_err(cx, EVS_EINVAL, "handler emitted an event with "
                             "%s NULL and a non-zero count",
                             ev->ntags && !ev->tags ? "tags"
                             : ev->data_len && !ev->data ? "data" : "metadata"));
    if (ev->ntags > EVS_MAX_TAGS)
        return decision_fail(d, cmd_err(cx, EVS_EINVAL, "handler emitted an event with %zu "
                             "tags (at most %d)", ev->ntags, EVS_MAX_TAGS));
    if (evs__grow(&cx->ev, &cx->cap_ev, cx->nev + 1, sizeof(evs_event_data)) < 0 ||
        evs__grow(&cx->ev_slot, &cx->cap_ev_slot, cx->nev + 1, sizeof(size_t)) < 0)
        return decision_fail(d, cmd_err(cx, EVS_ENOMEM, "out of memory"));
    evs_event_data c = *ev;
    evs__arena *a = &cx->ar;
    int oom = !(c.type = evs__arena_strdup(a, ev->type, strlen(ev->type)));
    if (!oom && ev->data_len)
        oom = !(c.data = evs__arena_strdup(a, ev->data, ev->data_len));
    if (!oom && ev->metadata_len)
        oom = !(c.metadata = evs__arena_strdup(a, ev->metadata, ev->metadata_len));
    if (!oom && ev->ntags) {
        const char **tags = evs__arena_alloc(a, ev->ntags * sizeof(*tags));
        oom = !tags;
        for (size_t i = 0; !oom && i < ev->ntags; i++) {
            tags[i] = NULL; /* a NULL tag stays NULL: the store reports it */
            if (ev->tags[i])
                oom = !(tags[i] = evs__arena_strdup(a, ev->tags[i], strlen(ev->tags[i])));
        }
        c.tags = tags;
    }
    if (oom)
        return decision_fail(d, cmd_err(cx, EVS_ENOMEM, "out of memory copying an event"));
    cx->ev[cx->nev] = c;
    cx->ev_slot[cx->nev++] = at;
    cx->slots[at].nev++;
    return 0;
}

int evs_decision_reject(evs_decision *d, int code, const char *fmt, ...)
{
    if (!d || !fmt)
        return evs__err(EVS_EINVAL, "decision_reject: %s is NULL", d ? "fmt" : "d");
    if (d->rejected)
        return 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->reason, sizeof(d->reason), fmt, ap);
    va_end(ap);
    d->rejected = 1;
    d->code = code;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Attempts                                                            */
/* ------------------------------------------------------------------ */

enum { A_COMMITTED, A_REJECTED, A_CONFLICT };

/* Read, discover and fold for the stream form. */
static EVS_MUST_USE int read_streams_phase(exec *cx, unsigned attempt)
{
    const evs_command *cmd = cx->cmd;
    int rc;
    size_t first = 0;
    for (unsigned round = 0;; round++) {
        if ((rc = read_round(cx, first, round, attempt)) < 0)
            return rc;
        if (!cmd->discover)
            return 0;
        size_t before = cx->nslots;
        evs_discovery dx = {cx, 0, {0}};
        fill_entries(cx);
        evs__clear_error();
        rc = cmd->discover(&dx, cx->entries, cx->nentries, cmd->args);
        if (dx.error) {
            evs__set_error_text(dx.errmsg);
            return dx.error;
        }
        if (rc < 0)
            return cmd_wrap(cx, rc, "discover");
        if (rc > 0)
            return cmd_err(cx, EVS_EINVAL, "discover returned %d (return 0 or a negative "
                           "EVS_E* code)", rc);
        if (cx->nslots == before)
            return 0;
        if (round + 1 >= EVS_CMD_MAX_READS)
            return cmd_err(cx, EVS_EINVAL, "discover still adds streams (%s, ...) after %d "
                           "reads (EVS_CMD_MAX_READS): a chain of discoveries that does "
                           "not settle", cx->slots[before].stream, EVS_CMD_MAX_READS);
        for (size_t i = before; i < cx->nslots; i++)
            if ((rc = slot_start(cx, &cx->slots[i])) < 0)
                return rc;
        first = before;
    }
}

static EVS_MUST_USE int read_query_phase(exec *cx, unsigned attempt)
{
    evs_executor *ex = cx->ex;
    slot *s = &cx->slots[0];
    int rc;
    if (ex->hook) {
        evs_read_trace t = {cx->name, attempt, 0, NULL, 0, cx->cmd->query};
        ex->hook(ex->hook_ctx, &t);
    }
    evs_iter *it;
    if ((rc = evs_read_query(&it, ex->db, cx->tenant, cx->cmd->query, 0, EVS_FORWARD, 0)) < 0)
        return cmd_wrap(cx, rc, "reading its query");
    cx->st[ST_READS]++;
    const evs_event *e;
    int mine = 0;
    while ((rc = evs_iter_next(&e, it)) == 0)
        if ((rc = fold_event(cx, s, e)) < 0) {
            mine = 1;
            break;
        }
    if (rc == EVS_ITEROVER)
        rc = evs_iter_marker(&s->marker, it);
    else if (!mine)
        rc = cmd_wrap(cx, rc, "reading its query");
    evs_iter_free(it);
    cx->markers[0] = s->marker;
    return rc;
}

/* Turn the decision into one evs_append_ex request and send it. */
static EVS_MUST_USE int commit(exec *cx)
{
    const evs_command *cmd = cx->cmd;
    size_t nparts = 0;
    int rc;
    /* parts in the order of each stream's first event */
    for (size_t i = 0; i < cx->nslots; i++)
        cx->slots[i].part = SIZE_MAX;
    for (size_t i = 0; i < cx->nev; i++) {
        slot *s = &cx->slots[cx->ev_slot[i]];
        if (s->part == SIZE_MAX)
            s->part = nparts++;
    }
    if (evs__grow(&cx->parts, &cx->cap_parts, nparts, sizeof(*cx->parts)) < 0 ||
        evs__grow(&cx->results, &cx->cap_results, nparts, sizeof(*cx->results)) < 0 ||
        evs__grow(&cx->pev, &cx->cap_pev, cx->nev, sizeof(*cx->pev)) < 0)
        return cmd_err(cx, EVS_ENOMEM, "out of memory");
    size_t off = 0;
    for (size_t i = 0; i < cx->nslots; i++) {
        slot *s = &cx->slots[i];
        if (s->part == SIZE_MAX)
            continue;
        evs_stream_append *p = &cx->parts[s->part];
        p->stream = s->stream;
        p->expected_version = cx->dcb || s->access == EVS_CMD_APPEND ? EVS_ANY : s->version;
        p->nevents = 0;
        p->events = NULL;
    }
    /* the parts' event ranges, in part order */
    for (size_t p = 0; p < nparts; p++) {
        for (size_t i = 0; i < cx->nslots; i++)
            if (cx->slots[i].part == p) {
                cx->parts[p].events = cx->pev + off;
                off += cx->slots[i].nev;
                break;
            }
    }
    for (size_t i = 0; i < cx->nev; i++) {
        evs_stream_append *p = &cx->parts[cx->slots[cx->ev_slot[i]].part];
        ((evs_event_data *)p->events)[p->nevents++] = cx->ev[i];
    }

    /* conditions: the DCB query, or the READ streams read but not written */
    size_t ncond = 0;
    if (cx->dcb) {
        cx->conds[0].fail_if_events_match = *cmd->query;
        cx->conds[0].after = cx->markers[0];
        ncond = 1;
    } else {
        size_t nitems = 0;
        for (size_t i = 0; i < cx->nslots; i++)
            nitems += cx->slots[i].access == EVS_CMD_READ && cx->slots[i].nev == 0;
        if (evs__grow(&cx->items, &cx->cap_items, nitems, sizeof(*cx->items)) < 0 ||
            evs__grow(&cx->item_tags, &cx->cap_item_tags, nitems, sizeof(*cx->item_tags)) < 0)
            return cmd_err(cx, EVS_ENOMEM, "out of memory");
        size_t k = 0;
        for (unsigned r = 0; r < EVS_CMD_MAX_READS; r++) {
            size_t first = k;
            for (size_t i = 0; i < cx->nslots; i++) {
                slot *s = &cx->slots[i];
                if (s->access != EVS_CMD_READ || s->nev != 0 || s->round != r)
                    continue;
                size_t pl = strlen(EVS_STREAM_TAG_PREFIX);
                char *tag = evs__arena_alloc(&cx->ar, pl + s->len + 1);
                if (!tag)
                    return cmd_err(cx, EVS_ENOMEM, "out of memory");
                memcpy(tag, EVS_STREAM_TAG_PREFIX, pl);
                memcpy(tag + pl, s->stream, s->len + 1);
                cx->item_tags[k] = tag;
                cx->items[k].types = NULL;
                cx->items[k].ntypes = 0;
                cx->items[k].tags = &cx->item_tags[k];
                cx->items[k].ntags = 1;
                k++;
            }
            if (k > first) {
                cx->conds[ncond].fail_if_events_match.items = &cx->items[first];
                cx->conds[ncond].fail_if_events_match.nitems = k - first;
                cx->conds[ncond].after = cx->markers[r];
                ncond++;
            }
        }
    }
    evs_append_request req = EVS_APPEND_REQUEST_INIT;
    req.tenant = cmd->tenant;
    req.parts = cx->parts;
    req.nparts = nparts;
    req.conditions = ncond ? cx->conds : NULL;
    req.nconditions = ncond;
    rc = evs_append_ex(cx->results, ncond ? cx->conflicts : NULL, cx->ex->db, &req);
    if (rc == EVS_ECONFLICT) {
        cx->st[ST_CONFLICTED_ATTEMPTS]++;
        snprintf(cx->out->reason, sizeof(cx->out->reason), "%s", evs_last_error());
        return A_CONFLICT;
    }
    if (rc < 0)
        return cmd_wrap(cx, rc, "appending its events");
    cx->out->first_position = cx->results[0].first_position;
    cx->out->last_position = cx->results[nparts - 1].last_position;
    cx->out->nevents = cx->nev;
    return A_COMMITTED;
}

static EVS_MUST_USE int run_attempt(exec *cx, unsigned attempt)
{
    const evs_command *cmd = cx->cmd;
    int rc;

    /* Start over: the discovered streams go (discovery runs again on the
     * new states), the decision is emptied. */
    for (size_t i = cx->ndecl_slots; i < cx->nslots; i++)
        slot_release(&cx->slots[i]);
    cx->nslots = cx->ndecl_slots;
    cx->nentries = cx->ndecl_entries;
    evs__arena_reset(&cx->ar);
    cx->nev = 0;
    memset(&cx->d, 0, sizeof(cx->d));
    cx->d.cx = cx;
    for (size_t i = 0; i < cx->nslots; i++)
        if ((rc = slot_start(cx, &cx->slots[i])) < 0)
            return rc;

    if ((rc = cx->dcb ? read_query_phase(cx, attempt) : read_streams_phase(cx, attempt)) < 0)
        return rc;

    fill_entries(cx);
    evs__clear_error();
    cx->st[ST_HANDLER_CALLS]++;
    rc = cmd->handle(&cx->d, cx->entries, cx->nentries, cmd->args);
    if (cx->d.error) {
        evs__set_error_text(cx->d.errmsg);
        return cx->d.error;
    }
    if (rc < 0)
        return cmd_wrap(cx, rc, "handler");
    if (rc > 0)
        return cmd_err(cx, EVS_EINVAL, "handler returned %d (return 0 or a negative EVS_E* "
                       "code)", rc);
    if (cx->d.rejected && cx->nev)
        return cmd_err(cx, EVS_EINVAL, "handler both emitted %zu event(s) and rejected "
                       "(\"%s\"): decide one", cx->nev, cx->d.reason);
    if (cx->d.rejected) {
        cx->out->reason_code = cx->d.code;
        snprintf(cx->out->reason, sizeof(cx->out->reason), "%s", cx->d.reason);
        return A_REJECTED;
    }
    if (cx->nev == 0)
        return cmd_err(cx, EVS_EINVAL, "handler decided nothing: emit at least one event "
                       "or reject with a reason");
    return commit(cx);
}

/* ------------------------------------------------------------------ */
/* Backoff                                                             */
/* ------------------------------------------------------------------ */

static _Thread_local uint64_t tl_rng;

static uint64_t rng_next(void)
{
    if (tl_rng == 0)
        tl_rng = (evs__mono_ns() ^ (uint64_t)(uintptr_t)&tl_rng) | 1;
    /* xorshift64* */
    tl_rng ^= tl_rng >> 12;
    tl_rng ^= tl_rng << 25;
    tl_rng ^= tl_rng >> 27;
    return tl_rng * 0x2545f4914f6cdd1dull;
}

/* Full jitter: uniform in [0, min(cap, base * 2^(conflicts-1))] µs. */
static uint64_t backoff_us(const evs_retry_policy *p, unsigned conflicts)
{
    if (p->base_delay_us == 0)
        return 0;
    uint64_t d = p->base_delay_us;
    for (unsigned i = 1; i < conflicts && d < p->max_delay_us; i++)
        d *= 2;
    if (d > p->max_delay_us)
        d = p->max_delay_us;
    return rng_next() % (d + 1);
}

static void sleep_us(uint64_t us)
{
    struct timespec ts = {(time_t)(us / 1000000u), (long)(us % 1000000u) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ------------------------------------------------------------------ */
/* evs_command_execute                                                 */
/* ------------------------------------------------------------------ */

int evs_command_execute(evs_command_result *out, evs_executor *ex, const evs_command *cmd)
{
    int rc = 0;
    evs__clear_error();
    if (!out)
        return evs__err(EVS_EINVAL, "command_execute: out is NULL");
    memset(out, 0, sizeof(*out));
    out->outcome = EVS_CMD_ERROR;
    if (!ex || !cmd) {
        rc = evs__err(EVS_EINVAL, "command_execute: %s is NULL", ex ? "cmd" : "ex");
        goto fail_early;
    }
    if (cmd->version != EVS_COMMAND_VERSION) {
        rc = evs__err(EVS_EINVAL, "command_execute: command version %u (this library knows "
                      "%u)", cmd->version, EVS_COMMAND_VERSION);
        goto fail_early;
    }

    exec *cx = exec_get();
    if (!cx) {
        rc = evs__err(EVS_ENOMEM, "command_execute: out of memory");
        goto fail_early;
    }
    cx->ex = ex;
    cx->cmd = cmd;
    cx->out = out;
    cx->name = cmd->name && cmd->name[0] ? cmd->name : "(unnamed)";
    cx->tenant = cmd->tenant ? cmd->tenant : "";
    cx->tlen = strlen(cx->tenant);
    cx->dcb = 0;
    cx->nslots = cx->nentries = cx->nev = 0;
    cx->ndecl_slots = cx->ndecl_entries = 0;
    memset(cx->st, 0, sizeof(cx->st));
    cx->st[ST_COMMANDS] = 1;

    const evs_retry_policy *policy = cmd->retry ? cmd->retry : &ex->retry;
    int outcome = -1;
    if (!cmd->handle)
        rc = cmd_err(cx, EVS_EINVAL, "has no handle function");
    else if (cmd->retry && (rc = check_policy(cmd->retry, "retry policy")) < 0)
        rc = cmd_wrap(cx, rc, NULL);
    else
        rc = exec_setup(cx);

    for (unsigned attempt = 1; rc == 0; attempt++) {
        out->attempts = attempt;
        cx->st[ST_ATTEMPTS]++;
        int r = run_attempt(cx, attempt);
        if (r < 0) {
            rc = r;
            break;
        }
        if (r != A_CONFLICT || attempt >= policy->max_attempts) {
            outcome = r;
            break;
        }
        uint64_t us = backoff_us(policy, attempt);
        if (us) {
            sleep_us(us);
            cx->st[ST_BACKOFF_US] += us;
        }
    }

    if (rc < 0) {
        out->outcome = EVS_CMD_ERROR;
        out->error = rc;
        snprintf(out->reason, sizeof(out->reason), "%s", evs_last_error());
        cx->st[ST_ERRORS]++;
    } else if (outcome == A_COMMITTED) {
        out->outcome = EVS_CMD_COMMITTED;
        out->reason[0] = 0;
        cx->st[ST_COMMITTED]++;
    } else if (outcome == A_REJECTED) {
        out->outcome = EVS_CMD_REJECTED;
        cx->st[ST_REJECTED]++;
    } else {
        char last[EVS_CMD_REASON_MAX];
        snprintf(last, sizeof(last), "%s", out->reason);
        out->outcome = EVS_CMD_CONFLICT;
        rc = out->error = cmd_err(cx, EVS_ECONFLICT, "conflict in each of %u attempt(s); "
                                  "the last: %s", out->attempts, last);
        cx->st[ST_CONFLICTS]++;
    }
    if (rc == 0)
        evs__clear_error();
    for (int i = 0; i < ST_N; i++)
        if (cx->st[i])
            atomic_fetch_add_explicit(&ex->stats[i], cx->st[i], memory_order_relaxed);
    exec_put(cx);
    return rc;

fail_early:
    out->error = rc;
    snprintf(out->reason, sizeof(out->reason), "%s", evs_last_error());
    if (ex) {
        atomic_fetch_add_explicit(&ex->stats[ST_COMMANDS], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&ex->stats[ST_ERRORS], 1, memory_order_relaxed);
    }
    return rc;
}
