/*
 * shop.c -- the e-commerce domain of the command benchmarks (shop.h).
 */
#include "shop.h"

#include "bench_util.h"

#include <stdio.h>
#include <string.h>

int shop_product_apply(void *state, const evs_event *e)
{
    shop_product *p = state;
    if (strcmp(e->type, "ProductAdded") == 0) {
        p->exists = 1;
        p->stock = (int64_t)json_uint(e->data, "\"stock\":");
    } else if (strcmp(e->type, "StockReserved") == 0) {
        p->stock -= (int64_t)json_uint(e->data, "\"qty\":");
    }
    return 0;
}

const evs_fold shop_product_fold = {"product", sizeof(shop_product), NULL,
                                    shop_product_apply, NULL, NULL};

/* An order's state: whether its stream has any event. */
typedef struct placed {
    int placed;
} placed;

static int order_apply(void *state, const evs_event *e)
{
    ((placed *)state)->placed = 1;
    return 0;
}

static const evs_fold order_fold = {"order", sizeof(placed), NULL,
                                    order_apply, NULL, NULL};

/* s[0] the order, s[1] the customer (append only), s[2..] the products. */
static int order_handle(evs_decision *d, const evs_cmd_state *s, size_t n,
                        void *args)
{
    const shop_order *o = args;
    char json[512], one[96];
    evs_event_data ev;
    size_t len, l1;
    int rc;
    if (((const placed *)s[0].state)->placed)
        return evs_decision_reject(d, 1, "order %s exists", o->order);
    for (int i = 0; i < o->nlines; i++) {
        const shop_product *p = s[2 + i].state;
        if (!p->exists || p->stock < o->qty[i])
            return evs_decision_reject(d, 2, "%s: %lld left, %lld ordered",
                                       o->product_name[i],
                                       (long long)p->stock,
                                       (long long)o->qty[i]);
    }
    len = (size_t)snprintf(json, sizeof json,
                           "{\"customer\":\"%s\",\"lines\":[", o->customer);
    for (int i = 0; i < o->nlines; i++) {
        const char *name = o->product_name[i];
        l1 = (size_t)snprintf(one, sizeof one,
                              "{\"order\":\"%s\",\"qty\":%lld}", o->order,
                              (long long)o->qty[i]);
        event_init(&ev, "StockReserved", one, l1);
        if ((rc = evs_decision_emit(d, name, &ev)) < 0)
            return rc;
        len += (size_t)snprintf(json + len, sizeof json - len,
                                "%s{\"product\":\"%s\",\"qty\":%lld}",
                                i ? "," : "", name, (long long)o->qty[i]);
    }
    len += (size_t)snprintf(json + len, sizeof json - len, "]}");
    event_init(&ev, "OrderPlaced", json, len);
    if ((rc = evs_decision_emit(d, o->order, &ev)) < 0)
        return rc;
    len = (size_t)snprintf(json, sizeof json, "{\"order\":\"%s\"}", o->order);
    event_init(&ev, "OrderRecorded", json, len);
    return evs_decision_emit(d, o->customer, &ev);
}

void shop_pick(shop_order *o, const char *order, char (*customers)[BANK_NAME_LEN],
               int ncustomers, char (*products)[BANK_NAME_LEN], int nproducts,
               uint64_t (*below)(void *rng, uint64_t n), void *rng)
{
    memset(o, 0, sizeof *o);
    snprintf(o->order, sizeof o->order, "%s", order);
    o->customer = customers[below(rng, (uint64_t)ncustomers)];
    o->nlines = 2 + (int)below(rng, SHOP_MAX_LINES - 1);
    o->st[0] = (evs_cmd_stream){o->order, EVS_CMD_READ, &order_fold};
    o->st[1] = (evs_cmd_stream){o->customer, EVS_CMD_APPEND, NULL};
    for (int i = 0; i < o->nlines; i++) {
        int p, dup;
        do { /* distinct products */
            p = (int)below(rng, (uint64_t)nproducts);
            dup = 0;
            for (int j = 0; j < i; j++)
                dup |= o->product[j] == p;
        } while (dup);
        o->product[i] = p;
        o->product_name[i] = products[p];
        o->qty[i] = 1 + (int64_t)below(rng, 3);
        o->st[2 + i] = (evs_cmd_stream){products[p], EVS_CMD_READ,
                                        &shop_product_fold};
    }
    o->cmd = (evs_command)EVS_COMMAND_INIT;
    o->cmd.name = "place-order";
    o->cmd.streams = o->st;
    o->cmd.nstreams = 2 + (size_t)o->nlines;
    o->cmd.handle = order_handle;
    o->cmd.args = o;
}
