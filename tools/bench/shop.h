/*
 * shop.h -- the e-commerce domain of the command benchmarks, the seeds'
 * multi-stream orders (EventCore, seeds 000/001): products folded from
 * their streams, and an order command that reserves stock in 2-5 of them.
 * `evs bench`'s shop scenario (scen_commands.c) and command_bench
 * (micro/command_bench.c) both run it through the command executor.
 *
 * A product's stream: ProductAdded {"stock":N}, then StockReserved
 * {"order":"...","qty":N}. An order writes, in one atomic append, a
 * StockReserved to each product, OrderPlaced to the order's stream (which
 * must not exist yet) and OrderRecorded to the customer's stream
 * (declared EVS_CMD_APPEND: written, not read, no version check).
 */
#ifndef EVS_BENCH_SHOP_H
#define EVS_BENCH_SHOP_H

#include "bank.h" /* BANK_NAME_LEN */

#include <evstore_command.h>

#include <stdint.h>

#define SHOP_MAX_LINES 5

typedef struct shop_product {
    int exists;
    int64_t stock;
} shop_product;

/* Folds one event into a shop_product (the fold's apply). */
int shop_product_apply(void *state, const evs_event *e);
extern const evs_fold shop_product_fold;

/* One order, ready for evs_command_execute once the caller has set
 * cmd.tenant (if any); it points into itself, so it stays where
 * shop_pick made it until the call returns. */
typedef struct shop_order {
    evs_command cmd;
    evs_cmd_stream st[2 + SHOP_MAX_LINES]; /* order, customer, products */
    char order[48];
    const char *customer;
    int nlines;
    int product[SHOP_MAX_LINES];           /* products[] indexes, distinct */
    const char *product_name[SHOP_MAX_LINES];
    int64_t qty[SHOP_MAX_LINES];
} shop_order;

/*
 * A random order named order (a new stream: at most 47 bytes) by one of
 * customers[0..ncustomers), of 2 to SHOP_MAX_LINES distinct products of
 * products[0..nproducts) (at least SHOP_MAX_LINES), 1 to 3 of each.
 * below(rng, n) is the caller's generator, uniform in [0, n); the draws
 * are, in this order, the customer, the number of lines, then each line's
 * product (drawn again while it repeats an earlier line's) and quantity.
 *
 * The handler rejects (evs_decision_reject) an order whose stream exists
 * (code 1) and one a product cannot serve (code 2: not added, or less
 * stock than ordered).
 */
void shop_pick(shop_order *o, const char *order, char (*customers)[BANK_NAME_LEN],
               int ncustomers, char (*products)[BANK_NAME_LEN], int nproducts,
               uint64_t (*below)(void *rng, uint64_t n), void *rng);

#endif
