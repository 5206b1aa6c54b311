/*
 * Banking through the command executor (include/evstore_command.h): each
 * account is a stream ("account-..."), each command reads the accounts it
 * needs, decides, and writes its events only if nobody changed those
 * accounts meanwhile (the executor retries when somebody did).
 *
 *   EVS_DB=/tmp/bank build/example-banking
 *
 * The store named by EVS_DB is created if missing; without EVS_DB a fresh
 * store in a temporary directory is used. Account names get a random
 * suffix, so the scenario can run again on the same store.
 *
 * Scenario: open three accounts, deposit, withdraw (one withdrawal is
 * rejected: insufficient funds), transfer (one rejected), then 4 threads
 * transfer money around at random. Exits 0 when every check held: the
 * outcomes were the expected ones, money was neither created nor lost,
 * no balance ever went below zero, and every concurrent command ended in
 * exactly one outcome.
 */
#include <evstore.h>
#include <evstore_command.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the account: its state and how events change it ------------------ */

typedef struct account {
    int open;
    long long balance;
} account;

/* The number after "key": in an event's JSON data (a real program would
 * use a JSON parser; our events are written just below). */
static long long json_number(const evs_event *e, const char *key)
{
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\":", key);
    const char *p = strstr(e->data, pattern);
    return p ? strtoll(p + strlen(pattern), NULL, 10) : 0;
}

/* apply: fold one event of an account stream into its state. */
static int account_apply(void *state, const evs_event *e)
{
    account *a = state;
    if (strcmp(e->type, "AccountOpened") == 0)
        a->open = 1;
    else if (strcmp(e->type, "Deposited") == 0 || strcmp(e->type, "TransferredIn") == 0)
        a->balance += json_number(e, "amount");
    else if (strcmp(e->type, "Withdrawn") == 0 || strcmp(e->type, "TransferredOut") == 0)
        a->balance -= json_number(e, "amount");
    return 0;
}

/* Every command that reads an account folds it this way. Sharing one fold
 * lets the executor's state cache reuse an account's state across
 * commands: the next command reads only the events added since. */
static const evs_fold account_fold = {
    .name = "account", .state_size = sizeof(account), .apply = account_apply};

/* ---- the commands: each handler decides from the states it is given ---- */

typedef struct money {
    const char *from, *to; /* the accounts (to is unused but for transfers) */
    long long amount;
} money;

/* Emit one JSON event to a stream (the executor copies it). */
static int emit(evs_decision *d, const char *stream, const char *type, const char *json)
{
    evs_event_data ev = {.type = type, .data = json, .data_len = strlen(json)};
    return evs_decision_emit(d, stream, &ev);
}

static int open_handle(evs_decision *d, const evs_cmd_state *s, size_t n, void *args)
{
    const account *a = s[0].state;
    if (a->open)
        return evs_decision_reject(d, 0, "%s is already open", s[0].stream);
    return emit(d, s[0].stream, "AccountOpened", "{}");
}

static int deposit_handle(evs_decision *d, const evs_cmd_state *s, size_t n, void *args)
{
    const money *m = args;
    const account *a = s[0].state;
    char json[64];
    if (!a->open)
        return evs_decision_reject(d, 0, "%s is not open", s[0].stream);
    snprintf(json, sizeof json, "{\"amount\":%lld}", m->amount);
    return emit(d, s[0].stream, "Deposited", json);
}

static int withdraw_handle(evs_decision *d, const evs_cmd_state *s, size_t n, void *args)
{
    const money *m = args;
    const account *a = s[0].state;
    char json[64];
    if (!a->open)
        return evs_decision_reject(d, 0, "%s is not open", s[0].stream);
    if (a->balance < m->amount)
        return evs_decision_reject(d, 0, "insufficient funds: %s has %lld, asked %lld",
                                   s[0].stream, a->balance, m->amount);
    snprintf(json, sizeof json, "{\"amount\":%lld}", m->amount);
    return emit(d, s[0].stream, "Withdrawn", json);
}

/* A transfer reads two accounts and writes to both, atomically. */
static int transfer_handle(evs_decision *d, const evs_cmd_state *s, size_t n, void *args)
{
    const money *m = args;
    const account *from = s[0].state, *to = s[1].state;
    char json[400];
    if (strcmp(m->from, m->to) == 0)
        return evs_decision_reject(d, 0, "a transfer needs two accounts");
    if (!from->open || !to->open)
        return evs_decision_reject(d, 0, "%s is not open", from->open ? m->to : m->from);
    if (from->balance < m->amount)
        return evs_decision_reject(d, 0, "insufficient funds: %s has %lld, asked %lld",
                                   m->from, from->balance, m->amount);
    snprintf(json, sizeof json, "{\"amount\":%lld,\"to\":\"%s\"}", m->amount, m->to);
    int rc = emit(d, m->from, "TransferredOut", json);
    snprintf(json, sizeof json, "{\"amount\":%lld,\"from\":\"%s\"}", m->amount, m->from);
    return rc ? rc : emit(d, m->to, "TransferredIn", json);
}

/* Run a command over one or two accounts. */
static evs_command_outcome run(evs_executor *ex, const char *name, evs_handle_fn handle,
                               money *m, evs_command_result *r)
{
    evs_cmd_stream streams[2] = {{m->from, EVS_CMD_READ, &account_fold},
                                 {m->to, EVS_CMD_READ, &account_fold}};
    evs_command cmd = EVS_COMMAND_INIT;
    cmd.name = name;
    cmd.streams = streams;
    cmd.nstreams = m->to ? 2 : 1;
    cmd.handle = handle;
    cmd.args = m;
    evs_command_execute(r, ex, &cmd); /* r->outcome says what happened */
    return r->outcome;
}

/* ---- checks ------------------------------------------------------------- */

static int g_failed;

static void check(int ok, const char *what)
{
    printf("%s  %s\n", ok ? "ok  " : "FAIL", what);
    g_failed |= !ok;
}

static const char *outcome_name(evs_command_outcome o)
{
    static const char *names[] = {"committed", "rejected", "conflict", "error"};
    return names[o];
}

/* Expect an outcome; print the reason of a rejection or an error. */
static void expect(evs_command_outcome got, evs_command_outcome want, const char *what,
                   const evs_command_result *r)
{
    char line[600];
    snprintf(line, sizeof line, "%s: %s%s%s", what, outcome_name(got),
             r->reason[0] ? " -- " : "", r->reason);
    check(got == want, line);
}

/* Read an account straight from the store (not through the executor) and
 * check its balance never went below zero. Returns the final balance. */
static long long audit(evs_db *db, const char *stream, int *went_negative)
{
    account a = {0};
    evs_iter *it;
    const evs_event *e;
    if (evs_read_stream(&it, db, NULL, stream, 0, EVS_FORWARD, 0) != 0)
        return -1;
    while (evs_iter_next(&e, it) == 0) {
        account_apply(&a, e);
        if (a.balance < 0)
            *went_negative = 1;
    }
    evs_iter_free(it);
    return a.balance;
}

/* ---- concurrent transfers ------------------------------------------------ */

#define THREADS 4
#define TRANSFERS 100

typedef struct worker {
    evs_executor *ex;
    const char **accounts;
    unsigned seed;
    int outcomes[4]; /* per evs_command_outcome */
} worker;

static void *transfer_randomly(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < TRANSFERS; i++) {
        int a = rand_r(&w->seed) % 3, b = (a + 1 + rand_r(&w->seed) % 2) % 3;
        money m = {w->accounts[a], w->accounts[b], 1 + rand_r(&w->seed) % 40};
        evs_command_result r;
        w->outcomes[run(w->ex, "transfer", transfer_handle, &m, &r)]++;
    }
    return NULL;
}

int main(void)
{
    const char *path = getenv("EVS_DB");
    char tmp[] = "/tmp/evs-banking-XXXXXX";
    if (!path || !path[0]) {
        if (!mkdtemp(tmp)) {
            perror("mkdtemp");
            return 1;
        }
        path = tmp;
        printf("EVS_DB is not set: using a fresh store in %s (remove it when done)\n", path);
    }
    evs_db *db;
    if (evs_open(&db, path, NULL) != 0) {
        fprintf(stderr, "open %s: %s\n", path, evs_last_error());
        return 1;
    }
    /* An executor with a state cache of 1,000 account states. */
    evs_executor_options opts = EVS_EXECUTOR_OPTIONS_INIT;
    opts.cache_entries = 1000;
    evs_executor *ex;
    if (evs_executor_new(&ex, db, &opts) != 0) {
        fprintf(stderr, "executor: %s\n", evs_last_error());
        return 1;
    }

    /* Unique account names for this run. */
    evs_uuid u;
    char id[37], alice[64], bob[64], carol[64];
    evs_uuid_generate(&u);
    evs_uuid_format(id, &u);
    snprintf(alice, sizeof alice, "account-%s-alice", id + 24);
    snprintf(bob, sizeof bob, "account-%s-bob", id + 24);
    snprintf(carol, sizeof carol, "account-%s-carol", id + 24);
    printf("store %s, accounts %s, %s, %s\n\n", path, alice, bob, carol);

    evs_command_result r;
    money m;

    m = (money){alice, NULL, 0};
    expect(run(ex, "open", open_handle, &m, &r), EVS_CMD_COMMITTED, "open alice", &r);
    m.from = bob;
    expect(run(ex, "open", open_handle, &m, &r), EVS_CMD_COMMITTED, "open bob", &r);
    m.from = carol;
    expect(run(ex, "open", open_handle, &m, &r), EVS_CMD_COMMITTED, "open carol", &r);
    m.from = alice;
    expect(run(ex, "open", open_handle, &m, &r), EVS_CMD_REJECTED, "open alice again", &r);

    m = (money){alice, NULL, 100};
    expect(run(ex, "deposit", deposit_handle, &m, &r), EVS_CMD_COMMITTED, "deposit 100 to alice", &r);
    m = (money){bob, NULL, 50};
    expect(run(ex, "deposit", deposit_handle, &m, &r), EVS_CMD_COMMITTED, "deposit 50 to bob", &r);
    m = (money){alice, NULL, 30};
    expect(run(ex, "withdraw", withdraw_handle, &m, &r), EVS_CMD_COMMITTED, "withdraw 30 from alice", &r);

    /* A rejection is a decision, not an error: nothing is written. */
    int64_t bob_before = -9, bob_after = -9;
    evs_stream_version(&bob_before, db, NULL, bob);
    m = (money){bob, NULL, 80};
    expect(run(ex, "withdraw", withdraw_handle, &m, &r), EVS_CMD_REJECTED, "withdraw 80 from bob", &r);
    evs_stream_version(&bob_after, db, NULL, bob);
    check(bob_before == bob_after, "the rejected withdrawal wrote nothing to bob's account");

    m = (money){alice, carol, 50};
    expect(run(ex, "transfer", transfer_handle, &m, &r), EVS_CMD_COMMITTED, "transfer 50 alice -> carol", &r);
    printf("      (%zu events at positions %llu..%llu, %u attempt(s))\n", r.nevents,
           (unsigned long long)r.first_position, (unsigned long long)r.last_position,
           r.attempts);
    m = (money){bob, alice, 500};
    expect(run(ex, "transfer", transfer_handle, &m, &r), EVS_CMD_REJECTED, "transfer 500 bob -> alice", &r);

    /* Money moves between the three accounts from 4 threads at once. */
    const char *accounts[3] = {alice, bob, carol};
    worker w[THREADS];
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) {
        w[t] = (worker){ex, accounts, 1234u + (unsigned)t, {0}};
        pthread_create(&th[t], NULL, transfer_randomly, &w[t]);
    }
    int total[4] = {0};
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        for (int o = 0; o < 4; o++)
            total[o] += w[t].outcomes[o];
    }
    char line[200];
    snprintf(line, sizeof line, "%d concurrent transfers: %d committed + %d rejected + %d "
             "conflict + %d error add up, with no error", THREADS * TRANSFERS,
             total[EVS_CMD_COMMITTED], total[EVS_CMD_REJECTED], total[EVS_CMD_CONFLICT],
             total[EVS_CMD_ERROR]);
    check(total[0] + total[1] + total[2] + total[3] == THREADS * TRANSFERS &&
              total[EVS_CMD_ERROR] == 0, line);

    /* Audit from the store itself. */
    int negative = 0;
    long long a = audit(db, alice, &negative), b = audit(db, bob, &negative),
              c = audit(db, carol, &negative);
    snprintf(line, sizeof line, "balances alice %lld + bob %lld + carol %lld = 120 "
             "(100 + 50 deposited - 30 withdrawn)", a, b, c);
    check(a + b + c == 120, line);
    check(!negative, "no balance ever went below zero");

    evs_executor_stats st;
    evs_executor_stats_get(&st, ex);
    printf("\nexecutor: %llu commands, %llu attempts, %llu conflicts retried, "
           "%llu reads, %llu cache hits\n",
           (unsigned long long)st.commands, (unsigned long long)st.attempts,
           (unsigned long long)st.conflicted_attempts, (unsigned long long)st.reads,
           (unsigned long long)st.cache_hits);
    evs_executor_free(ex);
    evs_close(db);
    printf("%s\n", g_failed ? "SOME CHECKS FAILED" : "every check held");
    return g_failed ? 1 : 0;
}
