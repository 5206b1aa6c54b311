/*
 * test_command.c -- the command executor (include/evstore_command.h) and
 * evs_read_streams, the one-snapshot read of several streams it is built
 * on.
 *
 * Covered: evs_read_streams (order, from_version, absent streams,
 * snapshot, marker, tenants, bad input); outcomes and results; a handler
 * called once per attempt and each stream read once per attempt (counted
 * by the executor's read hook), with and without the state cache; streams
 * read but not written are checked at commit; retries exhausted; stream
 * discovery (re-discovered after a conflict, bounded); APPEND streams;
 * the DCB form (the unique-username example, raced); concurrent transfers
 * among 100 accounts (money conserved, never negative, counts add up);
 * concurrent orders against scarce stock (never oversold, every order
 * committed or rejected with a reason); the state cache (never stale
 * across two executors, bounded, deep-copied states, tenants); bad input
 * (clear EVS_EINVAL, nothing written: the store's head does not move).
 *
 * Worker threads never call cmocka assertions; they record failures with
 * tu_fail() and the main thread checks after joining.
 */
#include "testutil.h"
#include "evstore_command.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static int64_t json_int(const void *data, const char *key)
{
    char pat[64];
    const char *p;
    snprintf(pat, sizeof pat, "\"%s\":", key);
    p = strstr(data, pat);
    return p ? strtoll(p + strlen(pat), NULL, 10) : 0;
}

/* An account: open flag, balance, and how many events were folded into
 * it (so a test can tell a fold that missed or repeated an event). */
typedef struct account {
    int open;
    int64_t balance;
    int64_t folded;
} account;

static int account_apply(void *state, const evs_event *e)
{
    account *a = state;
    a->folded++;
    if (strcmp(e->type, "Opened") == 0) {
        a->open = 1;
        a->balance += json_int(e->data, "amount");
    } else if (strcmp(e->type, "Deposited") == 0 || strcmp(e->type, "In") == 0) {
        a->balance += json_int(e->data, "amount");
    } else if (strcmp(e->type, "Withdrawn") == 0 || strcmp(e->type, "Out") == 0) {
        a->balance -= json_int(e->data, "amount");
    }
    return 0;
}

static const evs_fold account_fold = {"account", sizeof(account), NULL, account_apply,
                                      NULL, NULL};

static int emit_json(evs_decision *d, const char *stream, const char *type,
                     const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int emit_json(evs_decision *d, const char *stream, const char *type,
                     const char *fmt, ...)
{
    char json[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(json, sizeof json, fmt, ap);
    va_end(ap);
    evs_event_data ev = tu_event(type, json);
    return evs_decision_emit(d, stream, &ev);
}

/* A command over streams with one handler (and optional discover). */
static int run_cmd(evs_command_result *r, evs_executor *ex, const char *tenant,
                   const evs_cmd_stream *s, size_t n, evs_handle_fn handle,
                   evs_discover_fn discover, void *args,
                   const evs_retry_policy *retry)
{
    evs_command cmd = EVS_COMMAND_INIT;
    cmd.name = "test";
    cmd.tenant = tenant;
    cmd.streams = s;
    cmd.nstreams = n;
    cmd.handle = handle;
    cmd.discover = discover;
    cmd.args = args;
    cmd.retry = retry;
    return evs_command_execute(r, ex, &cmd);
}

static evs_executor *new_executor(evs_db *db, size_t cache_entries, evs_read_hook hook,
                                  void *hook_ctx)
{
    evs_executor_options o = EVS_EXECUTOR_OPTIONS_INIT;
    evs_executor *ex = NULL;
    o.cache_entries = cache_entries;
    o.read_hook = hook;
    o.read_hook_ctx = hook_ctx;
    /* short backoffs keep the tests quick */
    o.retry.base_delay_us = 50;
    o.retry.max_delay_us = 2000;
    o.retry.max_attempts = 50;
    TU_OK(evs_executor_new(&ex, db, &o));
    return ex;
}

static evs_executor_stats stats_of(evs_executor *ex)
{
    evs_executor_stats st;
    TU_OK(evs_executor_stats_get(&st, ex));
    return st;
}

/* ---- the read hook: every (attempt, round, stream, from_version) ---- */

typedef struct read_rec {
    unsigned attempt, round;
    char stream[EVS_MAX_STREAM_LEN + 1];
    int64_t from;
} read_rec;

typedef struct reads_log {
    pthread_mutex_t mu;
    read_rec v[256];
    size_t n;
    unsigned queries;
} reads_log;

static void log_reads(void *ctx, const evs_read_trace *t)
{
    reads_log *l = ctx;
    pthread_mutex_lock(&l->mu);
    if (t->query)
        l->queries++;
    for (size_t i = 0; i < t->nstreams && l->n < 256; i++) {
        read_rec *r = &l->v[l->n++];
        r->attempt = t->attempt;
        r->round = t->round;
        snprintf(r->stream, sizeof r->stream, "%s", t->streams[i].stream);
        r->from = t->streams[i].from_version;
    }
    pthread_mutex_unlock(&l->mu);
}

static void reads_reset(reads_log *l)
{
    l->n = 0;
    l->queries = 0;
}

/* How often stream was read in attempt (0: any attempt); *from gets the
 * from_version of the last such read. */
static int reads_of(const reads_log *l, unsigned attempt, const char *stream, int64_t *from)
{
    int n = 0;
    for (size_t i = 0; i < l->n; i++)
        if ((attempt == 0 || l->v[i].attempt == attempt) &&
            strcmp(l->v[i].stream, stream) == 0) {
            n++;
            if (from)
                *from = l->v[i].from;
        }
    return n;
}

/* Replay an account from the store; *negative set if it ever went below
 * zero. */
static int64_t replay_balance(evs_db *db, const char *tenant, const char *stream,
                              int *negative)
{
    tu_events ev = {0};
    account a = {0};
    TU_OK(tu_read_stream(&ev, db, tenant, stream, 0, EVS_FORWARD, 0));
    for (size_t i = 0; i < ev.n; i++) {
        evs_event e = {0};
        e.type = ev.v[i].type;
        e.data = ev.v[i].data;
        account_apply(&a, &e);
        if (a.balance < 0 && negative)
            *negative = 1;
    }
    tu_events_free(&ev);
    return a.balance;
}

/* ------------------------------------------------------------------ */
/* evs_read_streams                                                    */
/* ------------------------------------------------------------------ */

static void test_read_streams_order_and_from(void **state)
{
    tu_store *s = *state;
    uint64_t a0 = tu_append1(s->db, NULL, "a", "E", "{\"n\":0}");
    uint64_t b0 = tu_append1(s->db, NULL, "b", "E", "{\"n\":0}");
    uint64_t a1 = tu_append1(s->db, NULL, "a", "E", "{\"n\":1}");
    uint64_t b1 = tu_append1(s->db, NULL, "b", "E", "{\"n\":1}");
    uint64_t a2 = tu_append1(s->db, NULL, "a", "E", "{\"n\":2}");
    tu_append1(s->db, "other", "c", "E", "{}"); /* another tenant's c */
    (void)a0;

    /* in the order asked, stream by stream; absent streams yield nothing */
    evs_stream_read rd[] = {{"b", 0}, {"c", 0}, {"a", 1}};
    evs_iter *it;
    tu_events ev = {0};
    uint64_t marker = 0;
    TU_OK(evs_read_streams(&it, s->db, NULL, rd, 3));
    TU_CHECK(tu_collect(&ev, it), 0);
    TU_OK(evs_iter_marker(&marker, it));
    evs_iter_free(it);
    assert_int_equal(ev.n, 4);
    const char *want_stream[] = {"b", "b", "a", "a"};
    uint64_t want_pos[] = {b0, b1, a1, a2};
    int64_t want_ver[] = {0, 1, 1, 2};
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(ev.v[i].stream, want_stream[i]);
        assert_int_equal(ev.v[i].position, want_pos[i]);
        assert_int_equal(ev.v[i].stream_version, want_ver[i]);
    }
    /* after the end, the marker is the snapshot's head */
    assert_int_equal(marker, tu_head(s->db, NULL));
    tu_events_free(&ev);

    /* from_version past the end: nothing; the other tenant sees only its c */
    evs_stream_read past[] = {{"a", 3}, {"b", 2}};
    TU_OK(evs_read_streams(&it, s->db, NULL, past, 2));
    TU_CHECK(tu_collect(&ev, it), 0);
    evs_iter_free(it);
    assert_int_equal(ev.n, 0);
    TU_OK(evs_read_streams(&it, s->db, "other", rd, 3));
    TU_CHECK(tu_collect(&ev, it), 0);
    evs_iter_free(it);
    assert_int_equal(ev.n, 1);
    assert_string_equal(ev.v[0].stream, "c");
    assert_string_equal(ev.v[0].tenant, "other");
    tu_events_free(&ev);
}

static void test_read_streams_snapshot(void **state)
{
    tu_store *s = *state;
    tu_append1(s->db, NULL, "x", "E", "{}");
    tu_append1(s->db, NULL, "y", "E", "{}");
    evs_stream_read rd[] = {{"x", 0}, {"y", 0}};
    evs_iter *it;
    tu_events ev = {0};
    TU_OK(evs_read_streams(&it, s->db, NULL, rd, 2));
    /* appended after the read began: not in it, for either stream */
    tu_append1(s->db, NULL, "x", "E", "{}");
    tu_append1(s->db, NULL, "y", "E", "{}");
    TU_CHECK(tu_collect(&ev, it), 0);
    evs_iter_free(it);
    assert_int_equal(ev.n, 2);
    assert_int_equal(ev.v[0].stream_version, 0);
    assert_int_equal(ev.v[1].stream_version, 0);
    tu_events_free(&ev);
}

static void test_read_streams_bad_input(void **state)
{
    tu_store *s = *state;
    evs_iter *it = (evs_iter *)1;
    evs_stream_read ok[] = {{"a", 0}};
    TU_CHECK(evs_read_streams(NULL, s->db, NULL, ok, 1), EVS_EINVAL);
    TU_CHECK(evs_read_streams(&it, NULL, NULL, ok, 1), EVS_EINVAL);
    assert_null(it);
    TU_CHECK(evs_read_streams(&it, s->db, NULL, NULL, 1), EVS_EINVAL);
    TU_CHECK(evs_read_streams(&it, s->db, NULL, ok, 0), EVS_EINVAL);
    TU_ASSERT_ERRMSG();
    evs_stream_read dup[] = {{"a", 0}, {"b", 0}, {"a", 3}};
    TU_CHECK(evs_read_streams(&it, s->db, NULL, dup, 3), EVS_EINVAL);
    assert_non_null(strstr(evs_last_error(), "a"));
    evs_stream_read neg[] = {{"a", -1}};
    TU_CHECK(evs_read_streams(&it, s->db, NULL, neg, 1), EVS_EINVAL);
    evs_stream_read empty[] = {{"", 0}};
    TU_CHECK(evs_read_streams(&it, s->db, NULL, empty, 1), EVS_EINVAL);
    evs_stream_read null_name[] = {{NULL, 0}};
    TU_CHECK(evs_read_streams(&it, s->db, NULL, null_name, 1), EVS_EINVAL);
    evs_stream_read *many = calloc(EVS_MAX_READ_STREAMS + 1, sizeof(*many));
    assert_non_null(many);
    TU_CHECK(evs_read_streams(&it, s->db, NULL, many, EVS_MAX_READ_STREAMS + 1), EVS_EINVAL);
    free(many);
    assert_null(it);
}

/* ------------------------------------------------------------------ */
/* Outcomes                                                            */
/* ------------------------------------------------------------------ */

typedef struct money {
    const char *from, *to;
    int64_t amount;
} money;

static int deposit_handle(evs_decision *d, const evs_cmd_state *s, size_t n, void *args)
{
    const money *m = args;
    return emit_json(d, s[0].stream, "Deposited", "{\"amount\":%" PRId64 "}", m->amount);
}

static int withdraw_handle(evs_decision *d, const evs_cmd_state *s, size_t n, void *args)
{
    const money *m = args;
    const account *a = s[0].state;
    if (a->balance < m->amount)
        return evs_decision_reject(d, 42, "insufficient funds: %" PRId64 " < %" PRId64,
                                   a->balance, m->amount);
    return emit_json(d, s[0].stream, "Withdrawn", "{\"amount\":%" PRId64 "}", m->amount);
}

static void test_outcomes(void **state)
{
    tu_store *s = *state;
    evs_executor *ex = new_executor(s->db, 0, NULL, NULL);
    evs_cmd_stream acct[] = {{"acct-1", EVS_CMD_READ, &account_fold}};
    evs_command_result r;
    money m = {"acct-1", NULL, 70};

    tu_append1(s->db, NULL, "noise", "E", "{}");
    TU_OK(run_cmd(&r, ex, NULL, acct, 1, deposit_handle, NULL, &m, NULL));
    assert_int_equal(r.outcome, EVS_CMD_COMMITTED);
    assert_int_equal(r.error, 0);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(r.nevents, 1);
    assert_int_equal(r.first_position, 2);
    assert_int_equal(r.last_position, 2);
    assert_string_equal(r.reason, "");
    assert_int_equal(tu_version(s->db, NULL, "acct-1"), 0);

    /* rejected: a decision, returned as 0, nothing written */
    uint64_t head = tu_head(s->db, NULL);
    m.amount = 100;
    TU_OK(run_cmd(&r, ex, NULL, acct, 1, withdraw_handle, NULL, &m, NULL));
    assert_int_equal(r.outcome, EVS_CMD_REJECTED);
    assert_int_equal(r.reason_code, 42);
    assert_string_equal(r.reason, "insufficient funds: 70 < 100");
    assert_int_equal(r.attempts, 1);
    assert_int_equal(r.nevents, 0);
    assert_int_equal(tu_head(s->db, NULL), head);

    m.amount = 30;
    TU_OK(run_cmd(&r, ex, NULL, acct, 1, withdraw_handle, NULL, &m, NULL));
    assert_int_equal(r.outcome, EVS_CMD_COMMITTED);
    assert_int_equal(replay_balance(s->db, NULL, "acct-1", NULL), 40);

    evs_executor_stats st = stats_of(ex);
    assert_int_equal(st.commands, 3);
    assert_int_equal(st.committed, 2);
    assert_int_equal(st.rejected, 1);
    assert_int_equal(st.conflicts + st.errors, 0);
    assert_int_equal(st.attempts, 3);
    assert_int_equal(st.handler_calls, 3);
    assert_int_equal(st.reads, 3);
    /* 0 + 1 + 1 events folded: each read saw the whole stream */
    assert_int_equal(st.events_folded, 2);
    evs_executor_free(ex);
}

/* ---- once per attempt -------------------------------------------------- */

typedef struct interfere {
    evs_db *db;
    const char *stream;  /* appended to behind the command's back */
    int times;           /* in the first `times` handler calls */
    int calls;
    int64_t seen_version[8];
    uint64_t seen_marker[8];
} interfere;

/* Reads a, b, c (all READ); writes to a and b only; on its first calls
 * appends to `stream` directly, as a concurrent writer would. */
static int abc_handle(evs_decision *d, const evs_cmd_state *s, size_t n, void *args)
{
    interfere *x = args;
    if (x->calls < 8) {
        x->seen_version[x->calls] = s[1].version;
        x->seen_marker[x->calls] = s[1].marker;
    }
    if (x->calls++ < x->times) {
        evs_event_data ev = tu_event("Deposited", "{\"amount\":1}");
        if (evs_append(NULL, x->db, NULL, x->stream, EVS_ANY, &ev, 1) != 0)
            return EVS_EIO;
    }
    int rc = emit_json(d, "a", "Deposited", "{\"amount\":5}");
    return rc ? rc : emit_json(d, "b", "Deposited", "{\"amount\":5}");
}

static void once_per_attempt(tu_store *s, size_t cache, const char *interfere_with)
{
    reads_log log = {PTHREAD_MUTEX_INITIALIZER, {{0}}, 0, 0};
    evs_executor *ex = new_executor(s->db, cache, log_reads, &log);
    evs_cmd_stream abc[] = {{"a", EVS_CMD_READ, &account_fold},
                            {"b", EVS_CMD_READ, &account_fold},
                            {"c", EVS_CMD_READ, &account_fold}};
    evs_command_result r;
    interfere x = {s->db, interfere_with, 1, 0, {0}, {0}};

    tu_append1(s->db, NULL, "a", "Opened", "{\"amount\":0}");
    tu_append1(s->db, NULL, "b", "Opened", "{\"amount\":0}");
    tu_append1(s->db, NULL, "c", "Opened", "{\"amount\":0}");
    /* warm the cache (when there is one) with a first command */
    interfere warm = {s->db, "a", 0, 0, {0}, {0}};
    TU_OK(run_cmd(&r, ex, NULL, abc, 3, abc_handle, NULL, &warm, NULL));
    assert_int_equal(r.outcome, EVS_CMD_COMMITTED);
    reads_reset(&log);
    evs_executor_stats before = stats_of(ex);

    TU_OK(run_cmd(&r, ex, NULL, abc, 3, abc_handle, NULL, &x, NULL));
    assert_int_equal(r.outcome, EVS_CMD_COMMITTED);
    assert_int_equal(r.attempts, 2);
    assert_int_equal(x.calls, 2); /* the handler: once per attempt */
    const char *names[] = {"a", "b", "c"};
    for (unsigned att = 1; att <= 2; att++)
        for (int i = 0; i < 3; i++) {
            int64_t from = -9;
            if (reads_of(&log, att, names[i], &from) != 1)
                print_error("attempt %u read %s %d times\n", att, names[i],
                            reads_of(&log, att, names[i], NULL));
            assert_int_equal(reads_of(&log, att, names[i], &from), 1);
            /* with a cache, only what is new since the version cached is
             * read: the warm-up read every stream at version 0; attempt 1
             * read a and b at 1 (the warm-up's deposits), c still at 0 */
            int64_t cached = att == 1 ? 0 : i < 2 ? 1 : 0;
            assert_int_equal(from, cache ? cached + 1 : 0);
        }
    assert_int_equal(log.n, 6);
    evs_executor_stats st = stats_of(ex);
    assert_int_equal(st.handler_calls - before.handler_calls, 2);
    assert_int_equal(st.reads - before.reads, 2); /* one evs_read_streams per attempt */
    assert_int_equal(st.streams_read - before.streams_read, 6);
    assert_int_equal(st.conflicted_attempts - before.conflicted_attempts, 1);
    assert_int_equal(st.cache_hits - before.cache_hits, cache ? 6 : 0);
    /* the second attempt saw the interfering event */
    if (strcmp(interfere_with, "b") == 0)
        assert_int_equal(x.seen_version[1], x.seen_version[0] + 1);
    assert_true(x.seen_marker[1] > x.seen_marker[0]);

    /* a got 5 + 5 (warm-up and this command), b as well plus 1 if it was
     * interfered with, c 1 if it was: every state folded exactly once */
    int neg = 0;
    assert_int_equal(replay_balance(s->db, NULL, "a", &neg),
                     10 + (strcmp(interfere_with, "a") == 0));
    assert_int_equal(replay_balance(s->db, NULL, "b", &neg),
                     10 + (strcmp(interfere_with, "b") == 0));
    assert_int_equal(replay_balance(s->db, NULL, "c", &neg),
                     strcmp(interfere_with, "c") == 0);
    evs_executor_free(ex);
}

static void test_once_per_attempt_no_cache(void **state) { once_per_attempt(*state, 0, "b"); }
static void test_once_per_attempt_cache(void **state) { once_per_attempt(*state, 64, "b"); }

/* c is read but not written: a change to it must still fail the commit
 * (EventCore: every stream read is checked), through an append condition. */
static void test_read_only_stream_checked(void **state)
{
    once_per_attempt(*state, 0, "c");
}
static void test_read_only_stream_checked_cache(void **state)
{
    once_per_attempt(*state, 64, "c");
}

/* Retries run out: conflict, nothing of the command written. */
static void test_conflict_exhausted(void **state)
{
    tu_store *s = *state;
    evs_executor *ex = new_executor(s->db, 16, NULL, NULL);
    evs_cmd_stream abc[] = {{"a", EVS_CMD_READ, &account_fold},
                            {"b", EVS_CMD_READ, &account_fold},
                            {"c", EVS_CMD_READ, &account_fold}};
    evs_retry_policy three = {3, 10, 100};
    interfere x = {s->db, "a", 100, 0, {0}, {0}};
    evs_command_result r;
    TU_CHECK(run_cmd(&r, ex, NULL, abc, 3, abc_handle, NULL, &x, &three), EVS_ECONFLICT);
    assert_int_equal(r.outcome, EVS_CMD_CONFLICT);
    assert_int_equal(r.error, EVS_ECONFLICT);
    assert_int_equal(r.attempts, 3);
    assert_int_equal(x.calls, 3);
    assert_non_null(strstr(r.reason, "expected version"));
    assert_non_null(strstr(evs_last_error(), "3 attempt"));
    /* only the interfering events: 3 to a, none to b */
    assert_int_equal(tu_version(s->db, NULL, "a"), 2);
    assert_int_equal(tu_version(s->db, NULL, "b"), EVS_NO_STREAM);
    evs_executor_stats st = stats_of(ex);
    assert_int_equal(st.conflicts, 1);
    assert_int_equal(st.conflicted_attempts, 3);
    evs_executor_free(ex);
}

/* ------------------------------------------------------------------ */
/* Discovery                                                           */
/* ------------------------------------------------------------------ */

/* An alias stream says which account it points at (its last AliasSet). */
typedef struct alias {
    char target[64];
} alias;

static int alias_apply(void *state, const evs_event *e)
{
    alias *a = state;
    const char *p = strstr(e->data, "\"target\":\"");
    if (p) {
        p += strlen("\"target\":\"");
        snprintf(a->target, sizeof a->target, "%.*s", (int)strcspn(p, "\""), p);
    }
    return 0;
}

static const evs_fold alias_fold = {"alias", sizeof(alias), NULL, alias_apply, NULL, NULL};

typedef struct via_alias {
    evs_db *db;
    int calls, discover_calls;
    int repoint;          /* on the first handler call, point the alias at
                             "acct-z" behind the command's back */
    int touch_target;     /* on the first handler call, deposit 1 directly
                             to the discovered account */
    char deposited_to[64];
} via_alias;

static int alias_discover(evs_discovery *dx, const evs_cmd_state *s, size_t n, void *args)
{
    via_alias *v = args;
    const alias *a = s[0].state;
    v->discover_calls++;
    if (!a->target[0])
        return 0;
    evs_cmd_stream t = {a->target, EVS_CMD_READ, &account_fold};
    return evs_discovery_add(dx, &t);
}

static int alias_handle(evs_decision *d, const evs_cmd_state *s, size_t n, void *args)
{
    via_alias *v = args;
    const alias *a = s[0].state;
    const evs_cmd_state *t = evs_cmd_state_find(s, n, a->target);
    v->calls++;
    if (!t)
        return evs_decision_reject(d, 1, "alias %s points nowhere", s[0].stream);
    if (v->calls == 1 && v->repoint) {
        evs_event_data ev = tu_event("AliasSet", "{\"target\":\"acct-z\"}");
        if (evs_append(NULL, v->db, NULL, s[0].stream, EVS_ANY, &ev, 1) != 0)
            return EVS_EIO;
    }
    if (v->calls == 1 && v->touch_target) {
        evs_event_data ev = tu_event("Deposited", "{\"amount\":1}");
        if (evs_append(NULL, v->db, NULL, t->stream, EVS_ANY, &ev, 1) != 0)
            return EVS_EIO;
    }
    snprintf(v->deposited_to, sizeof v->deposited_to, "%s", t->stream);
    return emit_json(d, t->stream, "Deposited", "{\"amount\":10}");
}

static void test_discovery(void **state)
{
    tu_store *s = *state;
    reads_log log = {PTHREAD_MUTEX_INITIALIZER, {{0}}, 0, 0};
    evs_executor *ex = new_executor(s->db, 0, log_reads, &log);
    evs_cmd_stream al[] = {{"alias-1", EVS_CMD_READ, &alias_fold}};
    evs_command_result r;
    tu_append1(s->db, NULL, "alias-1", "AliasSet", "{\"target\":\"acct-y\"}");

    /* the alias is read, then the account it names, each once */
    via_alias v = {s->db, 0, 0, 0, 0, ""};
    TU_OK(run_cmd(&r, ex, NULL, al, 1, alias_handle, alias_discover, &v, NULL));
    assert_int_equal(r.outcome, EVS_CMD_COMMITTED);
    assert_string_equal(v.deposited_to, "acct-y");
    assert_int_equal(v.calls, 1);
    assert_int_equal(v.discover_calls, 2); /* then nothing new: done */
    assert_int_equal(log.n, 2);
    assert_int_equal(log.v[0].round, 0);
    assert_string_equal(log.v[0].stream, "alias-1");
    assert_int_equal(log.v[1].round, 1);
    assert_string_equal(log.v[1].stream, "acct-y");
    assert_int_equal(tu_version(s->db, NULL, "acct-y"), 0);

    /* a conflict on the discovered stream: the retry discovers and reads it
     * again, once */
    reads_reset(&log);
    v = (via_alias){s->db, 0, 0, 0, 1, ""};
    TU_OK(run_cmd(&r, ex, NULL, al, 1, alias_handle, alias_discover, &v, NULL));
    assert_int_equal(r.outcome, EVS_CMD_COMMITTED);
    assert_int_equal(r.attempts, 2);
    for (unsigned att = 1; att <= 2; att++) {
        assert_int_equal(reads_of(&log, att, "alias-1", NULL), 1);
        assert_int_equal(reads_of(&log, att, "acct-y", NULL), 1);
    }
    assert_int_equal(replay_balance(s->db, NULL, "acct-y", NULL), 21);

    /* the alias (read, not written) is repointed between read and commit:
     * the commit fails, the retry discovers the new target */
    reads_reset(&log);
    v = (via_alias){s->db, 0, 0, 1, 0, ""};
    TU_OK(run_cmd(&r, ex, NULL, al, 1, alias_handle, alias_discover, &v, NULL));
    assert_int_equal(r.outcome, EVS_CMD_COMMITTED);
    assert_int_equal(r.attempts, 2);
    assert_string_equal(v.deposited_to, "acct-z");
    assert_int_equal(reads_of(&log, 2, "acct-z", NULL), 1);
    assert_int_equal(reads_of(&log, 2, "acct-y", NULL), 0);
    assert_int_equal(replay_balance(s->db, NULL, "acct-y", NULL), 21);
    assert_int_equal(replay_balance(s->db, NULL, "acct-z", NULL), 10);
    evs_executor_free(ex);
}

/* discover that adds a new stream every time: stopped after
 * EVS_CMD_MAX_READS reads, nothing written */
static int chain_discover(evs_discovery *dx, const evs_cmd_state *s, size_t n, void *args)
{
    char name[32];
    snprintf(name, sizeof name, "chain-%zu", n);
    evs_cmd_stream c = {name, EVS_CMD_READ, NULL};
    return evs_discovery_add(dx, &c);
}

static int count_handle(evs_decision *d, const evs_cmd_state *s, size_t n, void *args)
{
    int *calls = args;
    (*calls)++;
    return emit_json(d, s[0].stream, "Deposited", "{\"amount\":1}");
}

static void test_discovery_bounded(void **state)
{
    tu_store *s = *state;
    reads_log log = {PTHREAD_MUTEX_INITIALIZER, {{0}}, 0, 0};
    evs_executor *ex = new_executor(s->db, 0, log_reads, &log);
    evs_cmd_stream st[] = {{"start", EVS_CMD_READ, NULL}};
    evs_command_result r;
    int calls = 0;
    uint64_t head = tu_head(s->db, NULL);
    TU_CHECK(run_cmd(&r, ex, NULL, st, 1, count_handle, chain_discover, &calls, NULL),
             EVS_EINVAL);
    assert_int_equal(r.outcome, EVS_CMD_ERROR);
    assert_non_null(strstr(r.reason, "EVS_CMD_MAX_READS"));
    assert_int_equal(calls, 0);
    assert_int_equal(log.n, EVS_CMD_MAX_READS); /* one stream per read */
    assert_int_equal(tu_head(s->db, NULL), head);
    evs_executor_free(ex);
}

/* ------------------------------------------------------------------ */
/* APPEND streams and duplicates                                       */
/* ------------------------------------------------------------------ */

static int log_handle(evs_decision *d, const evs_cmd_state *s, size_t n, void *args)
{
    const evs_cmd_state *h = evs_cmd_state_find(s, n, "history");
    if (!h || h->state || h->version != EVS_ANY || h->access != EVS_CMD_APPEND)
        return EVS_EINVAL;
    int rc = emit_json(d, s[0].stream, "Deposited", "{\"amount\":1}");
    return rc ? rc : emit_json(d, "history", "Logged", "{}");
}

static void test_append_stream_not_read(void **state)
{
    tu_store *s = *state;
    reads_log log = {PTHREAD_MUTEX_INITIALIZER, {{0}}, 0, 0};
    evs_executor *ex = new_executor(s->db, 0, log_reads, &log);
    evs_cmd_stream st[] = {{"acct", EVS_CMD_READ, &account_fold},
                           {"history", EVS_CMD_APPEND, NULL}};
    evs_command_result r;
    tu_append1(s->db, NULL, "history", "Logged", "{}");
    TU_OK(run_cmd(&r, ex, NULL, st, 2, log_handle, NULL, NULL, NULL));
    assert_int_equal(r.outcome, EVS_CMD_COMMITTED);
    assert_int_equal(r.nevents, 2);
    assert_int_equal(reads_of(&log, 0, "history", NULL), 0);
    assert_int_equal(reads_of(&log, 0, "acct", NULL), 1);
    assert_int_equal(tu_version(s->db, NULL, "history"), 1);
    evs_executor_free(ex);
}

static int same_state_handle(evs_decision *d, const evs_cmd_state *s, size_t n, void *args)
{
    if (n != 2 || s[0].state != s[1].state || strcmp(s[0].stream, s[1].stream) != 0)
        return EVS_EINVAL;
    return evs_decision_reject(d, 7, "a transfer needs two accounts");
}

static void test_same_stream_twice(void **state)
{
    tu_store *s = *state;
    reads_log log = {PTHREAD_MUTEX_INITIALIZER, {{0}}, 0, 0};
    evs_executor *ex = new_executor(s->db, 0, log_reads, &log);
    evs_cmd_stream st[] = {{"acct", EVS_CMD_READ, &account_fold},
                           {"acct", EVS_CMD_READ, &account_fold}};
    evs_command_result r;
    TU_OK(run_cmd(&r, ex, NULL, st, 2, same_state_handle, NULL, NULL, NULL));
    assert_int_equal(r.outcome, EVS_CMD_REJECTED);
    assert_int_equal(r.reason_code, 7);
    assert_int_equal(reads_of(&log, 1, "acct", NULL), 1);
    evs_executor_free(ex);
}

/* ------------------------------------------------------------------ */
/* Concurrent transfers among 100 accounts                             */
/* ------------------------------------------------------------------ */

#define ACCOUNTS 100
#define OPENING 1000

static int transfer_handle(evs_decision *d, const evs_cmd_state *s, size_t n, void *args)
{
    const money *m = args;
    const account *from = s[0].state;
    if (!from->open || !((const account *)s[1].state)->open)
        return evs_decision_reject(d, 1, "not open");
    if (from->balance < m->amount)
        return evs_decision_reject(d, 2, "insufficient funds: %" PRId64 " < %" PRId64,
                                   from->balance, m->amount);
    int rc = emit_json(d, m->from, "Out", "{\"amount\":%" PRId64 "}", m->amount);
    return rc ? rc : emit_json(d, m->to, "In", "{\"amount\":%" PRId64 "}", m->amount);
}

typedef struct bank_worker {
    evs_executor *ex;
    int id, ops;
    uint64_t seed;
    uint64_t outcomes[4];
} bank_worker;

static void *bank_thread(void *arg)
{
    bank_worker *w = arg;
    tu_rng rng;
    tu_rng_init(&rng, w->seed);
    for (int i = 0; i < w->ops; i++) {
        char from[32], to[32];
        int a = (int)tu_rng_range(&rng, 0, ACCOUNTS - 1);
        int b = (int)tu_rng_range(&rng, 0, ACCOUNTS - 2);
        b += b >= a;
        snprintf(from, sizeof from, "acct-%d", a);
        snprintf(to, sizeof to, "acct-%d", b);
        money m = {from, to, (int64_t)tu_rng_range(&rng, 1, 700)};
        evs_cmd_stream st[] = {{from, EVS_CMD_READ, &account_fold},
                               {to, EVS_CMD_READ, &account_fold}};
        evs_command_result r;
        int rc = run_cmd(&r, w->ex, NULL, st, 2, transfer_handle, NULL, &m, NULL);
        if (r.outcome > EVS_CMD_ERROR) {
            tu_fail("thread %d: outcome %d", w->id, (int)r.outcome);
            continue;
        }
        w->outcomes[r.outcome]++;
        if (r.outcome == EVS_CMD_ERROR)
            tu_fail("thread %d: error %s: %s", w->id, tu_errname(rc), r.reason);
        if (r.outcome == EVS_CMD_REJECTED && !r.reason[0])
            tu_fail("thread %d: rejected without a reason", w->id);
        if ((rc == 0) != (r.outcome == EVS_CMD_COMMITTED || r.outcome == EVS_CMD_REJECTED))
            tu_fail("thread %d: return %d with outcome %d", w->id, rc, (int)r.outcome);
    }
    return NULL;
}

static void transfers(tu_store *s, size_t cache, int threads, int ops)
{
    evs_executor *ex = new_executor(s->db, cache, NULL, NULL);
    for (int i = 0; i < ACCOUNTS; i++) {
        char name[32];
        snprintf(name, sizeof name, "acct-%d", i);
        tu_append1(s->db, NULL, name, "Opened", "{\"amount\":1000}");
    }
    bank_worker w[8];
    pthread_t th[8];
    tu_failures_reset();
    uint64_t seed = tu_seed("transfers");
    for (int t = 0; t < threads; t++) {
        w[t] = (bank_worker){ex, t, ops, seed + (uint64_t)t * 7919, {0}};
        assert_int_equal(pthread_create(&th[t], NULL, bank_thread, &w[t]), 0);
    }
    uint64_t out[4] = {0};
    for (int t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
        for (int o = 0; o < 4; o++)
            out[o] += w[t].outcomes[o];
    }
    TU_ASSERT_NO_THREAD_FAILURES();
    print_message("transfers (cache %zu): %" PRIu64 " committed, %" PRIu64 " rejected, %"
                  PRIu64 " conflict, %" PRIu64 " error\n",
                  cache, out[0], out[1], out[2], out[3]);
    assert_int_equal(out[0] + out[1] + out[2] + out[3], (uint64_t)(threads * ops));
    assert_int_equal(out[EVS_CMD_ERROR], 0);
    assert_true(out[EVS_CMD_COMMITTED] > 0);

    /* conserved exactly, never negative */
    int64_t total = 0;
    int negative = 0;
    for (int i = 0; i < ACCOUNTS; i++) {
        char name[32];
        snprintf(name, sizeof name, "acct-%d", i);
        total += replay_balance(s->db, NULL, name, &negative);
    }
    assert_int_equal(total, (int64_t)ACCOUNTS * OPENING);
    assert_false(negative);
    /* each committed transfer wrote exactly its two events */
    evs_stats st = tu_stats(s->db);
    assert_int_equal(st.events, ACCOUNTS + 2 * out[EVS_CMD_COMMITTED]);
    evs_executor_stats es = stats_of(ex);
    assert_int_equal(es.commands, (uint64_t)(threads * ops));
    assert_int_equal(es.committed, out[0]);
    assert_int_equal(es.rejected, out[1]);
    assert_int_equal(es.conflicts, out[2]);
    assert_int_equal(es.handler_calls, es.attempts);
    assert_int_equal(es.reads, es.attempts);
    evs_executor_free(ex);
}

static void test_transfers_8_threads_cache(void **state) { transfers(*state, 1000, 8, 150); }
static void test_transfers_8_threads_no_cache(void **state) { transfers(*state, 0, 8, 50); }

/* ------------------------------------------------------------------ */
/* Concurrent orders against scarce stock                              */
/* ------------------------------------------------------------------ */

#define NPRODUCTS 10
#define STOCK 20

typedef struct product {
    int exists;
    int64_t stock;
} product;

static int product_apply(void *state, const evs_event *e)
{
    product *p = state;
    if (strcmp(e->type, "ProductAdded") == 0) {
        p->exists = 1;
        p->stock = json_int(e->data, "stock");
    } else if (strcmp(e->type, "StockReserved") == 0) {
        p->stock -= json_int(e->data, "qty");
    }
    return 0;
}

static const evs_fold product_fold = {"product", sizeof(product), NULL, product_apply,
                                      NULL, NULL};

typedef struct order_flag {
    int placed;
} order_flag;

static int order_apply(void *state, const evs_event *e)
{
    ((order_flag *)state)->placed |= strcmp(e->type, "OrderPlaced") == 0;
    return 0;
}

static const evs_fold order_fold = {"order", sizeof(order_flag), NULL, order_apply, NULL,
                                    NULL};

typedef struct order_args {
    const char *order, *customer;
    int nlines;
    const char *product[5];
    int64_t qty[5];
} order_args;

/* states: [0] order, [1] customer (APPEND), [2..] products */
static int order_handle(evs_decision *d, const evs_cmd_state *s, size_t n, void *args)
{
    const order_args *o = args;
    if (((const order_flag *)s[0].state)->placed)
        return evs_decision_reject(d, 1, "order %s already placed", o->order);
    for (int i = 0; i < o->nlines; i++) {
        const product *p = s[2 + i].state;
        if (p->stock < o->qty[i])
            return evs_decision_reject(d, 2, "%s: %" PRId64 " left, %" PRId64 " ordered",
                                       o->product[i], p->stock, o->qty[i]);
    }
    for (int i = 0; i < o->nlines; i++) {
        int rc = emit_json(d, o->product[i], "StockReserved", "{\"qty\":%" PRId64 "}",
                           o->qty[i]);
        if (rc)
            return rc;
    }
    int rc = emit_json(d, o->order, "OrderPlaced", "{\"lines\":%d}", o->nlines);
    return rc ? rc : emit_json(d, o->customer, "OrderRecorded", "{}");
}

typedef struct shop_worker {
    evs_executor *ex;
    int id, ops;
    uint64_t seed;
    uint64_t outcomes[4];
    int64_t reserved[NPRODUCTS]; /* by committed orders */
} shop_worker;

static const char *g_products[NPRODUCTS] = {"p-0", "p-1", "p-2", "p-3", "p-4",
                                            "p-5", "p-6", "p-7", "p-8", "p-9"};

static void *shop_thread(void *arg)
{
    shop_worker *w = arg;
    tu_rng rng;
    tu_rng_init(&rng, w->seed);
    for (int i = 0; i < w->ops; i++) {
        char order[32], customer[32];
        snprintf(order, sizeof order, "order-%d-%d", w->id, i);
        snprintf(customer, sizeof customer, "customer-%d", (int)tu_rng_range(&rng, 0, 4));
        order_args o = {order, customer, (int)tu_rng_range(&rng, 2, 5), {0}, {0}};
        evs_cmd_stream st[7] = {{order, EVS_CMD_READ, &order_fold},
                                {customer, EVS_CMD_APPEND, NULL}};
        int first = (int)tu_rng_range(&rng, 0, NPRODUCTS - 1), idx[5];
        for (int l = 0; l < o.nlines; l++) {
            idx[l] = (first + l * 3) % NPRODUCTS; /* distinct: 3 and 10 coprime */
            o.product[l] = g_products[idx[l]];
            o.qty[l] = (int64_t)tu_rng_range(&rng, 1, 3);
            st[2 + l] = (evs_cmd_stream){o.product[l], EVS_CMD_READ, &product_fold};
        }
        evs_command_result r;
        run_cmd(&r, w->ex, NULL, st, 2 + (size_t)o.nlines, order_handle, NULL, &o, NULL);
        w->outcomes[r.outcome]++;
        if (r.outcome == EVS_CMD_ERROR)
            tu_fail("thread %d: error: %s", w->id, r.reason);
        if (r.outcome == EVS_CMD_REJECTED && (!r.reason[0] || r.reason_code != 2))
            tu_fail("thread %d: rejected with code %d, reason \"%s\"", w->id,
                    r.reason_code, r.reason);
        if (r.outcome == EVS_CMD_COMMITTED)
            for (int l = 0; l < o.nlines; l++)
                w->reserved[idx[l]] += o.qty[l];
    }
    return NULL;
}

static void test_orders_scarce_stock(void **state)
{
    tu_store *s = *state;
    evs_executor *ex = new_executor(s->db, 1000, NULL, NULL);
    for (int p = 0; p < NPRODUCTS; p++)
        tu_append1(s->db, NULL, g_products[p], "ProductAdded", "{\"stock\":20}");
    shop_worker w[8];
    pthread_t th[8];
    tu_failures_reset();
    uint64_t seed = tu_seed("orders");
    for (int t = 0; t < 8; t++) {
        w[t] = (shop_worker){.ex = ex, .id = t, .ops = 40, .seed = seed + (uint64_t)t};
        assert_int_equal(pthread_create(&th[t], NULL, shop_thread, &w[t]), 0);
    }
    uint64_t out[4] = {0};
    int64_t reserved[NPRODUCTS] = {0};
    for (int t = 0; t < 8; t++) {
        pthread_join(th[t], NULL);
        for (int o = 0; o < 4; o++)
            out[o] += w[t].outcomes[o];
        for (int p = 0; p < NPRODUCTS; p++)
            reserved[p] += w[t].reserved[p];
    }
    TU_ASSERT_NO_THREAD_FAILURES();
    print_message("orders: %" PRIu64 " committed, %" PRIu64 " rejected, %" PRIu64
                  " conflict, %" PRIu64 " error\n", out[0], out[1], out[2], out[3]);
    assert_int_equal(out[0] + out[1] + out[2] + out[3], 8 * 40);
    assert_int_equal(out[EVS_CMD_ERROR], 0);
    assert_true(out[EVS_CMD_COMMITTED] > 0);
    assert_true(out[EVS_CMD_REJECTED] > 0); /* stock is scarce: 200 units, ~640 asked */

    for (int p = 0; p < NPRODUCTS; p++) {
        tu_events ev = {0};
        int64_t stock = 0, in_store = 0;
        TU_OK(tu_read_stream(&ev, s->db, NULL, g_products[p], 0, EVS_FORWARD, 0));
        for (size_t i = 0; i < ev.n; i++) {
            if (strcmp(ev.v[i].type, "ProductAdded") == 0)
                stock = json_int(ev.v[i].data, "stock");
            else {
                stock -= json_int(ev.v[i].data, "qty");
                in_store += json_int(ev.v[i].data, "qty");
            }
            if (stock < 0)
                print_error("%s oversold at position %" PRIu64 "\n", g_products[p],
                            ev.v[i].position);
            assert_true(stock >= 0);
        }
        assert_int_equal(in_store, reserved[p]);
        tu_events_free(&ev);
    }
    /* one OrderPlaced per committed order */
    evs_query_item item = {(const char *const[]){"OrderPlaced"}, 1, NULL, 0};
    evs_query q = {&item, 1};
    tu_events ev = {0};
    TU_OK(tu_read_query(&ev, NULL, s->db, NULL, &q, 0, EVS_FORWARD, 0));
    assert_int_equal(ev.n, out[EVS_CMD_COMMITTED]);
    tu_events_free(&ev);
    evs_executor_free(ex);
}

/* ------------------------------------------------------------------ */
/* The DCB form: unique usernames                                      */
/* ------------------------------------------------------------------ */

typedef struct username_state {
    int taken;
} username_state;

static int username_apply(void *state, const evs_event *e)
{
    ((username_state *)state)->taken = strcmp(e->type, "UsernameClaimed") == 0;
    return 0;
}

static const evs_fold username_fold = {"username", sizeof(username_state), NULL,
                                       username_apply, NULL, NULL};

typedef struct claim_args {
    const char *name, *account;
    char tag[64];
    int calls;
} claim_args;

static int claim_handle(evs_decision *d, const evs_cmd_state *s, size_t n, void *args)
{
    claim_args *c = args;
    c->calls++;
    if (n != 1 || s[0].stream != NULL || s[0].version != EVS_NO_STREAM)
        return EVS_EINVAL;
    if (((const username_state *)s[0].state)->taken)
        return evs_decision_reject(d, 1, "username %s is taken", c->name);
    char json[200];
    snprintf(json, sizeof json, "{\"username\":\"%s\",\"account\":\"%s\"}", c->name,
             c->account);
    const char *tags[] = {c->tag};
    evs_event_data ev = tu_event("UsernameClaimed", json);
    ev.tags = tags;
    ev.ntags = 1;
    return evs_decision_emit(d, NULL, &ev);
}

static int claim(evs_command_result *r, evs_executor *ex, claim_args *c)
{
    snprintf(c->tag, sizeof c->tag, "username:%s", c->name);
    const char *types[] = {"UsernameClaimed", "UsernameReleased"};
    const char *tags[] = {c->tag};
    evs_query_item item = {types, 2, tags, 1};
    evs_query q = {&item, 1};
    evs_command cmd = EVS_COMMAND_INIT;
    cmd.name = "claim-username";
    cmd.query = &q;
    cmd.query_fold = &username_fold;
    cmd.handle = claim_handle;
    cmd.args = c;
    return evs_command_execute(r, ex, &cmd);
}

typedef struct claim_worker {
    evs_executor *ex;
    pthread_barrier_t *go;
    int id;
    evs_command_result r;
} claim_worker;

static void *claim_thread(void *arg)
{
    claim_worker *w = arg;
    char acct[32];
    snprintf(acct, sizeof acct, "account-%d", w->id);
    claim_args c = {"bob", acct, "", 0};
    pthread_barrier_wait(w->go);
    claim(&w->r, w->ex, &c);
    return NULL;
}

static void test_dcb_unique_username(void **state)
{
    tu_store *s = *state;
    reads_log log = {PTHREAD_MUTEX_INITIALIZER, {{0}}, 0, 0};
    evs_executor *ex = new_executor(s->db, 0, log_reads, &log);
    evs_command_result r;
    claim_args a1 = {"ada", "account-1", "", 0}, a2 = {"ada", "account-2", "", 0};
    TU_OK(claim(&r, ex, &a1));
    assert_int_equal(r.outcome, EVS_CMD_COMMITTED);
    assert_int_equal(a1.calls, 1);
    assert_int_equal(log.queries, 1);
    assert_int_equal(log.n, 0);
    TU_OK(claim(&r, ex, &a2));
    assert_int_equal(r.outcome, EVS_CMD_REJECTED);
    assert_string_equal(r.reason, "username ada is taken");

    /* 8 threads claim "bob" at once: exactly one wins */
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, 8);
    claim_worker w[8];
    pthread_t th[8];
    for (int t = 0; t < 8; t++) {
        w[t] = (claim_worker){ex, &go, t, {0}};
        assert_int_equal(pthread_create(&th[t], NULL, claim_thread, &w[t]), 0);
    }
    int committed = 0, rejected = 0;
    for (int t = 0; t < 8; t++) {
        pthread_join(th[t], NULL);
        committed += w[t].r.outcome == EVS_CMD_COMMITTED;
        rejected += w[t].r.outcome == EVS_CMD_REJECTED;
    }
    pthread_barrier_destroy(&go);
    assert_int_equal(committed, 1);
    assert_int_equal(rejected, 7);
    evs_query_item item = {(const char *const[]){"UsernameClaimed"}, 1,
                           (const char *const[]){"username:bob"}, 1};
    evs_query q = {&item, 1};
    tu_events ev = {0};
    TU_OK(tu_read_query(&ev, NULL, s->db, NULL, &q, 0, EVS_FORWARD, 0));
    assert_int_equal(ev.n, 1);
    assert_string_equal(ev.v[0].stream, "");
    tu_events_free(&ev);
    evs_executor_free(ex);
}

/* ------------------------------------------------------------------ */
/* The state cache                                                     */
/* ------------------------------------------------------------------ */

typedef struct expect_balance {
    int64_t want;  /* the balance the handler must see */
    int64_t seen;
} expect_balance;

static int check_balance_handle(evs_decision *d, const evs_cmd_state *s, size_t n,
                                void *args)
{
    expect_balance *x = args;
    x->seen = ((const account *)s[0].state)->balance;
    return emit_json(d, s[0].stream, "Deposited", "{\"amount\":1}");
}

/* Two executors, each with its own cache, write the same stream in turn:
 * each must see the other's writes (a cached state is only a start). */
static void test_cache_never_stale(void **state)
{
    tu_store *s = *state;
    evs_executor *a = new_executor(s->db, 16, NULL, NULL);
    evs_executor *b = new_executor(s->db, 16, NULL, NULL);
    evs_cmd_stream st[] = {{"shared", EVS_CMD_READ, &account_fold}};
    evs_command_result r;
    for (int i = 0; i < 20; i++) {
        expect_balance x = {i, -1};
        TU_OK(run_cmd(&r, i % 3 ? a : b, NULL, st, 1, check_balance_handle, NULL, &x, NULL));
        assert_int_equal(r.outcome, EVS_CMD_COMMITTED);
        assert_int_equal(r.attempts, 1); /* no stale expected version */
        assert_int_equal(x.seen, x.want);
    }
    evs_executor_stats sa = stats_of(a);
    assert_true(sa.cache_hits > 0);
    /* every event was folded once by each executor at most, never twice */
    evs_executor_stats sb = stats_of(b);
    assert_true(sa.events_folded <= 20 && sb.events_folded <= 20);
    evs_executor_free(a);
    evs_executor_free(b);
}

static void test_cache_bounded_and_tenants(void **state)
{
    tu_store *s = *state;
    evs_executor *ex = new_executor(s->db, 4, NULL, NULL);
    evs_command_result r;
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 20; i++) {
            char name[32];
            snprintf(name, sizeof name, "acct-%d", i);
            evs_cmd_stream st[] = {{name, EVS_CMD_READ, &account_fold}};
            expect_balance x = {round, -1};
            /* the same stream name in two tenants: two states */
            TU_OK(run_cmd(&r, ex, "t1", st, 1, check_balance_handle, NULL, &x, NULL));
            assert_int_equal(x.seen, round);
            x.seen = -1;
            TU_OK(run_cmd(&r, ex, "t2", st, 1, check_balance_handle, NULL, &x, NULL));
            assert_int_equal(x.seen, round);
        }
    evs_executor_stats st = stats_of(ex);
    assert_true(st.cache_entries <= 4);
    assert_true(st.cache_evictions > 0);
    evs_executor_free(ex);
}

/* A state that owns memory: every event's type, kept in a malloc'd list.
 * copy/release must deep-copy and free (ASan checks the rest). */
typedef struct history {
    char **types;
    size_t n;
} history;

static int history_apply(void *state, const evs_event *e)
{
    history *h = state;
    char **v = realloc(h->types, (h->n + 1) * sizeof(*v));
    if (!v)
        return EVS_ENOMEM;
    h->types = v;
    if (!(v[h->n] = strdup(e->type)))
        return EVS_ENOMEM;
    h->n++;
    return 0;
}

static void history_release(void *state)
{
    history *h = state;
    for (size_t i = 0; i < h->n; i++)
        free(h->types[i]);
    free(h->types);
}

static int history_copy(void *dst, const void *src)
{
    const history *s = src;
    history *d = dst;
    d->n = 0;
    d->types = calloc(s->n + 1, sizeof(char *));
    if (!d->types)
        return EVS_ENOMEM;
    for (; d->n < s->n; d->n++)
        if (!(d->types[d->n] = strdup(s->types[d->n]))) {
            history_release(d);
            return EVS_ENOMEM;
        }
    return 0;
}

static const evs_fold history_fold = {"history", sizeof(history), NULL, history_apply,
                                      history_copy, history_release};

static int history_handle(evs_decision *d, const evs_cmd_state *s, size_t n, void *args)
{
    const history *h = s[0].state;
    size_t *want = args;
    if (h->n != *want)
        return evs_decision_reject(d, 1, "history has %zu events, expected %zu", h->n, *want);
    for (size_t i = 0; i < h->n; i++)
        if (strcmp(h->types[i], i % 2 ? "B" : "A") != 0)
            return evs_decision_reject(d, 2, "event %zu is %s", i, h->types[i]);
    return emit_json(d, s[0].stream, h->n % 2 ? "B" : "A", "{}");
}

static void test_cache_deep_copied_states(void **state)
{
    tu_store *s = *state;
    evs_executor *ex = new_executor(s->db, 2, NULL, NULL);
    evs_command_result r;
    for (size_t i = 0; i < 12; i++) {
        /* h1 every time, h2 and h3 in turn: evictions of live states */
        const char *other = i % 2 ? "h2" : "h3";
        evs_cmd_stream st1[] = {{"h1", EVS_CMD_READ, &history_fold}};
        size_t want = i;
        TU_OK(run_cmd(&r, ex, NULL, st1, 1, history_handle, NULL, &want, NULL));
        if (r.outcome != EVS_CMD_COMMITTED)
            print_error("h1 at %zu: %s\n", i, r.reason);
        assert_int_equal(r.outcome, EVS_CMD_COMMITTED);
        evs_cmd_stream st2[] = {{other, EVS_CMD_READ, &history_fold}};
        want = i / 2;
        TU_OK(run_cmd(&r, ex, NULL, st2, 1, history_handle, NULL, &want, NULL));
        assert_int_equal(r.outcome, EVS_CMD_COMMITTED);
    }
    evs_executor_free(ex); /* releases the cached states */
}

/* ------------------------------------------------------------------ */
/* Errors from callbacks                                               */
/* ------------------------------------------------------------------ */

static int bad_apply(void *state, const evs_event *e)
{
    return strcmp(e->type, "Bad") == 0 ? EVS_ECORRUPT : 0;
}

static const evs_fold bad_fold = {"picky", 8, NULL, bad_apply, NULL, NULL};

static int nomem_handle(evs_decision *d, const evs_cmd_state *s, size_t n, void *args)
{
    return EVS_ENOMEM;
}

static void test_callback_errors(void **state)
{
    tu_store *s = *state;
    evs_executor *ex = new_executor(s->db, 0, NULL, NULL);
    evs_command_result r;
    int calls = 0;
    tu_append1(s->db, NULL, "picky", "Bad", "{}");
    uint64_t head = tu_head(s->db, NULL);
    evs_cmd_stream st[] = {{"picky", EVS_CMD_READ, &bad_fold}};
    TU_CHECK(run_cmd(&r, ex, NULL, st, 1, count_handle, NULL, &calls, NULL), EVS_ECORRUPT);
    assert_int_equal(r.outcome, EVS_CMD_ERROR);
    assert_int_equal(r.error, EVS_ECORRUPT);
    assert_non_null(strstr(r.reason, "picky"));
    assert_int_equal(calls, 0);
    evs_cmd_stream ok[] = {{"fine", EVS_CMD_READ, &account_fold}};
    TU_CHECK(run_cmd(&r, ex, NULL, ok, 1, nomem_handle, NULL, NULL, NULL), EVS_ENOMEM);
    assert_int_equal(r.outcome, EVS_CMD_ERROR);
    assert_non_null(strstr(evs_last_error(), "handler"));
    assert_int_equal(tu_head(s->db, NULL), head);
    evs_executor_stats es = stats_of(ex);
    assert_int_equal(es.errors, 2);
    evs_executor_free(ex);
}

/* ------------------------------------------------------------------ */
/* Bad input: clear EVS_EINVAL, nothing written                        */
/* ------------------------------------------------------------------ */

static int undeclared_handle(evs_decision *d, const evs_cmd_state *s, size_t n, void *args)
{
    int rc = emit_json(d, s[0].stream, "Deposited", "{\"amount\":1}");
    /* the error is kept even if the handler ignores it */
    (void)emit_json(d, "elsewhere", "Deposited", "{\"amount\":1}");
    return rc;
}

static int nothing_handle(evs_decision *d, const evs_cmd_state *s, size_t n, void *args)
{
    int *calls = args;
    if (calls)
        (*calls)++;
    return 0;
}

static int both_handle(evs_decision *d, const evs_cmd_state *s, size_t n, void *args)
{
    emit_json(d, s[0].stream, "Deposited", "{\"amount\":1}");
    return evs_decision_reject(d, 1, "changed my mind");
}

static int positive_handle(evs_decision *d, const evs_cmd_state *s, size_t n, void *args)
{
    return 1;
}

static int bad_json_handle(evs_decision *d, const evs_cmd_state *s, size_t n, void *args)
{
    int rc = emit_json(d, s[0].stream, "Deposited", "{\"amount\":1}");
    return rc ? rc : emit_json(d, s[1].stream, "Deposited", "{not json");
}

static int stream_in_dcb_handle(evs_decision *d, const evs_cmd_state *s, size_t n,
                                void *args)
{
    return emit_json(d, "some-stream", "X", "{}");
}

/* Run cmd expecting EVS_EINVAL with a message containing `needle`. */
static void expect_einval_(evs_executor *ex, const evs_command *cmd, const char *needle,
                           const char *file, int line)
{
    evs_command_result r;
    int rc = evs_command_execute(&r, ex, cmd);
    if (rc != EVS_EINVAL || !strstr(evs_last_error(), needle))
        print_error("%s:%d: rc %s, message \"%s\" (wanted EVS_EINVAL and \"%s\")\n", file,
                    line, tu_errname(rc), evs_last_error(), needle);
    assert_int_equal(rc, EVS_EINVAL);
    assert_non_null(strstr(evs_last_error(), needle));
    assert_int_equal(r.outcome, EVS_CMD_ERROR);
    assert_int_equal(r.error, EVS_EINVAL);
    assert_non_null(strstr(r.reason, needle));
}
#define EXPECT_EINVAL(ex, cmd, needle) expect_einval_(ex, cmd, needle, __FILE__, __LINE__)

static void test_bad_input(void **state)
{
    tu_store *s = *state;
    evs_executor *ex = new_executor(s->db, 16, NULL, NULL);
    evs_command_result r;
    int calls = 0;
    tu_append1(s->db, NULL, "acct", "Opened", "{\"amount\":5}");
    uint64_t head = tu_head(s->db, NULL);
    evs_cmd_stream one[] = {{"acct", EVS_CMD_READ, &account_fold}};
    evs_cmd_stream two[] = {{"acct", EVS_CMD_READ, &account_fold},
                            {"acct-2", EVS_CMD_READ, &account_fold}};
    evs_command c = EVS_COMMAND_INIT;
    c.name = "bad";
    c.streams = one;
    c.nstreams = 1;
    c.handle = nothing_handle;
    c.args = &calls;

    /* the handler writes to an undeclared stream */
    c.handle = undeclared_handle;
    EXPECT_EINVAL(ex, &c, "elsewhere");
    /* the handler returns nothing */
    c.handle = nothing_handle;
    EXPECT_EINVAL(ex, &c, "decided nothing");
    assert_int_equal(calls, 1);
    /* emits and rejects; returns a positive number */
    c.handle = both_handle;
    EXPECT_EINVAL(ex, &c, "both emitted");
    c.handle = positive_handle;
    EXPECT_EINVAL(ex, &c, "returned 1");
    /* an event the store rejects (invalid JSON): the other part is not
     * written either */
    c.handle = bad_json_handle;
    c.streams = two;
    c.nstreams = 2;
    EXPECT_EINVAL(ex, &c, "JSON");
    assert_int_equal(tu_head(s->db, NULL), head);

    /* the handler is never called for what follows */
    calls = 0;
    c.handle = nothing_handle;
    /* the same stream declared twice with different expectations */
    evs_cmd_stream dup_access[] = {{"acct", EVS_CMD_READ, &account_fold},
                                   {"acct", EVS_CMD_APPEND, NULL}};
    c.streams = dup_access;
    c.nstreams = 2;
    EXPECT_EINVAL(ex, &c, "declared twice");
    evs_cmd_stream dup_fold[] = {{"acct", EVS_CMD_READ, &account_fold},
                                 {"acct", EVS_CMD_READ, &product_fold}};
    c.streams = dup_fold;
    EXPECT_EINVAL(ex, &c, "declared twice");
    /* the same with more than 32 streams (the sorted check) */
    evs_cmd_stream many[40];
    char names[40][16];
    for (int i = 0; i < 40; i++) {
        snprintf(names[i], sizeof names[i], "m-%d", i % 39);
        many[i] = (evs_cmd_stream){names[i], i == 39 ? EVS_CMD_APPEND : EVS_CMD_READ, NULL};
    }
    c.streams = many;
    c.nstreams = 40;
    EXPECT_EINVAL(ex, &c, "m-0 is declared twice");
    /* a retry policy of zero attempts; a cap below the base delay */
    c.streams = one;
    c.nstreams = 1;
    evs_retry_policy zero = {0, 100, 1000}, inverted = {3, 1000, 10};
    c.retry = &zero;
    EXPECT_EINVAL(ex, &c, "max_attempts is 0");
    c.retry = &inverted;
    EXPECT_EINVAL(ex, &c, "max_delay_us");
    c.retry = NULL;
    /* shapes */
    evs_cmd_stream app_fold[] = {{"acct", EVS_CMD_APPEND, &account_fold}};
    c.streams = app_fold;
    EXPECT_EINVAL(ex, &c, "cannot have a fold");
    evs_fold no_apply = {"none", 8, NULL, NULL, NULL, NULL};
    evs_fold no_size = {"empty", 0, NULL, account_apply, NULL, NULL};
    evs_cmd_stream bad_fold1[] = {{"acct", EVS_CMD_READ, &no_apply}};
    evs_cmd_stream bad_fold2[] = {{"acct", EVS_CMD_READ, &no_size}};
    c.streams = bad_fold1;
    EXPECT_EINVAL(ex, &c, "no apply");
    c.streams = bad_fold2;
    EXPECT_EINVAL(ex, &c, "state_size 0");
    evs_cmd_stream empty_name[] = {{"", EVS_CMD_READ, NULL}};
    evs_cmd_stream null_name[] = {{NULL, EVS_CMD_READ, NULL}};
    char longname[EVS_MAX_STREAM_LEN + 2];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    evs_cmd_stream long_name[] = {{longname, EVS_CMD_READ, NULL}};
    evs_cmd_stream bad_access[] = {{"acct", (evs_cmd_access)9, NULL}};
    c.streams = empty_name;
    EXPECT_EINVAL(ex, &c, "empty name");
    c.streams = null_name;
    EXPECT_EINVAL(ex, &c, "NULL name");
    c.streams = long_name;
    EXPECT_EINVAL(ex, &c, "257 bytes");
    c.streams = bad_access;
    EXPECT_EINVAL(ex, &c, "unknown access");
    c.streams = one;
    c.nstreams = EVS_CMD_MAX_STREAMS + 1;
    EXPECT_EINVAL(ex, &c, "streams declared");
    c.nstreams = 0;
    EXPECT_EINVAL(ex, &c, "no stream and no query");
    evs_query all = {NULL, 0};
    c.nstreams = 1;
    c.query = &all;
    EXPECT_EINVAL(ex, &c, "both streams and a query");
    c.nstreams = 0;
    c.discover = chain_discover;
    EXPECT_EINVAL(ex, &c, "discover is for the stream form");
    c.discover = NULL;
    c.query = NULL;
    c.nstreams = 1;
    c.handle = NULL;
    EXPECT_EINVAL(ex, &c, "no handle");
    c.handle = nothing_handle;
    c.version = 99;
    EXPECT_EINVAL(ex, &c, "version 99");
    c.version = EVS_COMMAND_VERSION;
    assert_int_equal(calls, 0);

    /* the DCB form writes events without a stream */
    evs_command d = EVS_COMMAND_INIT;
    d.query = &all;
    d.handle = stream_in_dcb_handle;
    EXPECT_EINVAL(ex, &d, "some-stream");

    /* NULL arguments */
    TU_CHECK(evs_command_execute(NULL, ex, &c), EVS_EINVAL);
    TU_CHECK(evs_command_execute(&r, NULL, &c), EVS_EINVAL);
    assert_int_equal(r.outcome, EVS_CMD_ERROR);
    TU_CHECK(evs_command_execute(&r, ex, NULL), EVS_EINVAL);
    TU_CHECK(evs_decision_emit(NULL, "x", NULL), EVS_EINVAL);
    TU_CHECK(evs_decision_reject(NULL, 0, "x"), EVS_EINVAL);
    TU_CHECK(evs_discovery_add(NULL, NULL), EVS_EINVAL);
    TU_CHECK(evs_executor_stats_get(NULL, ex), EVS_EINVAL);
    assert_null(evs_cmd_state_find(NULL, 0, "x"));

    /* executor options */
    evs_executor *e2 = (evs_executor *)1;
    evs_executor_options o = EVS_EXECUTOR_OPTIONS_INIT;
    o.retry.max_attempts = 0;
    TU_CHECK(evs_executor_new(&e2, s->db, &o), EVS_EINVAL);
    assert_null(e2);
    assert_non_null(strstr(evs_last_error(), "max_attempts is 0"));
    o = (evs_executor_options)EVS_EXECUTOR_OPTIONS_INIT;
    o.version = 7;
    TU_CHECK(evs_executor_new(&e2, s->db, &o), EVS_EINVAL);
    TU_CHECK(evs_executor_new(&e2, NULL, NULL), EVS_EINVAL);
    TU_CHECK(evs_executor_new(NULL, s->db, NULL), EVS_EINVAL);
    evs_executor_free(NULL);

    /* nothing was written by any of it, and the executor still works */
    assert_int_equal(tu_head(s->db, NULL), head);
    money m = {"acct", NULL, 1};
    TU_OK(run_cmd(&r, ex, NULL, one, 1, deposit_handle, NULL, &m, NULL));
    assert_int_equal(r.outcome, EVS_CMD_COMMITTED);
    assert_int_equal(r.first_position, head + 1);
    evs_executor_free(ex);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, tu_setup_store, tu_teardown_store)
    const struct CMUnitTest tests[] = {
        T(test_read_streams_order_and_from),
        T(test_read_streams_snapshot),
        T(test_read_streams_bad_input),
        T(test_outcomes),
        T(test_once_per_attempt_no_cache),
        T(test_once_per_attempt_cache),
        T(test_read_only_stream_checked),
        T(test_read_only_stream_checked_cache),
        T(test_conflict_exhausted),
        T(test_discovery),
        T(test_discovery_bounded),
        T(test_append_stream_not_read),
        T(test_same_stream_twice),
        T(test_transfers_8_threads_cache),
        T(test_transfers_8_threads_no_cache),
        T(test_orders_scarce_stock),
        T(test_dcb_unique_username),
        T(test_cache_never_stale),
        T(test_cache_bounded_and_tenants),
        T(test_cache_deep_copied_states),
        T(test_callback_errors),
        T(test_bad_input),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
