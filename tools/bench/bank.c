/*
 * bank.c -- the bank domain of the command benchmarks (bank.h).
 */
#include "bank.h"

#include "bench_util.h"

#include <stdio.h>
#include <string.h>

/* Opened sets the balance; Deposited and TransferredIn add; Withdrawn and
   TransferredOut subtract. */
int bank_account_apply(void *state, const evs_event *e)
{
    bank_account *a = state;
    int64_t amount = (int64_t)json_uint(e->data, "\"amount\":");
    if (strcmp(e->type, "Opened") == 0) {
        a->open = 1;
        a->balance = amount;
    } else if (strcmp(e->type, "Deposited") == 0 ||
               strcmp(e->type, "TransferredIn") == 0) {
        a->balance += amount;
    } else {
        a->balance -= amount;
    }
    return 0;
}

const evs_fold bank_account_fold = {"account", sizeof(bank_account), NULL,
                                    bank_account_apply, NULL, NULL};

/* s[0] the account the command is about, s[1] a transfer's other one. */
static int bank_handle(evs_decision *d, const evs_cmd_state *s, size_t n,
                       void *args)
{
    static const char *const types[] = {"Deposited", "Withdrawn",
                                        "TransferredOut"};
    const bank_cmd *c = args;
    const bank_account *a = s[0].state;
    char json[64];
    evs_event_data ev;
    size_t len;
    int rc;
    if (!a->open)
        return evs_decision_reject(d, 1, "%s is not open", c->from_name);
    if (c->kind != BANK_DEPOSIT && a->balance < c->amount)
        return evs_decision_reject(d, 2, "insufficient funds: %lld < %lld",
                                   (long long)a->balance,
                                   (long long)c->amount);
    len = (size_t)snprintf(json, sizeof json, "{\"amount\":%lld}",
                           (long long)c->amount);
    event_init(&ev, types[c->kind], json, len);
    rc = evs_decision_emit(d, c->from_name, &ev);
    if (rc == 0 && c->kind == BANK_TRANSFER) {
        event_init(&ev, "TransferredIn", json, len);
        rc = evs_decision_emit(d, c->to_name, &ev);
    }
    return rc;
}

void bank_pick(bank_cmd *c, char (*accounts)[BANK_NAME_LEN], int naccounts,
               uint64_t (*below)(void *rng, uint64_t n), void *rng)
{
    int r = (int)below(rng, 100);
    memset(c, 0, sizeof *c);
    c->kind = r < 45 ? BANK_DEPOSIT : r < 90 ? BANK_WITHDRAW : BANK_TRANSFER;
    c->from = (int)below(rng, (uint64_t)naccounts);
    c->amount = 1 + (int64_t)below(rng, 1000);
    c->to = -1;
    if (c->kind == BANK_TRANSFER) {
        c->to = (int)below(rng, (uint64_t)naccounts - 1);
        c->to += c->to >= c->from;
    }
    c->from_name = accounts[c->from];
    c->to_name = c->to >= 0 ? accounts[c->to] : NULL;
    c->st[0] = (evs_cmd_stream){c->from_name, EVS_CMD_READ, &bank_account_fold};
    if (c->to >= 0)
        c->st[1] = (evs_cmd_stream){c->to_name, EVS_CMD_READ, &bank_account_fold};
    c->cmd = (evs_command)EVS_COMMAND_INIT;
    c->cmd.name = c->kind == BANK_DEPOSIT    ? "deposit"
                  : c->kind == BANK_WITHDRAW ? "withdraw"
                                             : "transfer";
    c->cmd.streams = c->st;
    c->cmd.nstreams = c->to >= 0 ? 2 : 1;
    c->cmd.handle = bank_handle;
    c->cmd.args = c;
}
