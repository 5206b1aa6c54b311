/*
 * bank.h -- the bank domain of the command benchmarks, the seeds'
 * single-stream financial commands (EventCore, seeds 000/001): accounts
 * folded from their streams, and deposits, withdrawals and transfers
 * decided by one command handler. `evs bench`'s bank scenario
 * (scen_commands.c) and command_bench (micro/command_bench.c) both run
 * it through the command executor (include/evstore_command.h).
 *
 * An account's stream: Opened {"amount":N} (the opening balance), then
 * Deposited, Withdrawn, TransferredOut, TransferredIn, each {"amount":N}.
 */
#ifndef EVS_BENCH_BANK_H
#define EVS_BENCH_BANK_H

#include <evstore_command.h>

#include <stdint.h>

/* Room for an account's (or a product's, shop.h) stream name. */
#define BANK_NAME_LEN 32

typedef struct bank_account {
    int open;
    int64_t balance;
} bank_account;

/* Folds one event into a bank_account (the fold's apply). */
int bank_account_apply(void *state, const evs_event *e);
extern const evs_fold bank_account_fold;

enum { BANK_DEPOSIT, BANK_WITHDRAW, BANK_TRANSFER };

/* One command, ready for evs_command_execute once the caller has set
 * cmd.tenant (if any); it points into itself, so it stays where
 * bank_pick made it until the call returns. */
typedef struct bank_cmd {
    evs_command cmd;
    evs_cmd_stream st[2];
    int kind;          /* BANK_* */
    int from, to;      /* accounts[] indexes; to is -1 unless a transfer */
    int64_t amount;
    const char *from_name, *to_name;
} bank_cmd;

/*
 * A random command over accounts[0..naccounts) (at least 2): 45 %
 * deposits, 45 % withdrawals, 10 % transfers to another account, of 1 to
 * 1000, accounts uniformly at random. below(rng, n) is the caller's
 * generator, uniform in [0, n); the draws are, in this order, the kind,
 * the account, the amount and, for a transfer, the other account.
 *
 * The handler rejects (evs_decision_reject) a command on an account that
 * is not open (code 1) and a withdrawal or transfer larger than the
 * balance (code 2, "insufficient funds: balance < amount"); otherwise a
 * transfer writes TransferredOut to from and TransferredIn to to in one
 * atomic append.
 */
void bank_pick(bank_cmd *c, char (*accounts)[BANK_NAME_LEN], int naccounts,
               uint64_t (*below)(void *rng, uint64_t n), void *rng);

#endif
