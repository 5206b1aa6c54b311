/*
 * E-commerce through the command executor (include/evstore_command.h):
 * placing an order reads the order's stream and every ordered product's
 * stream, reserves stock in each product, and records the order in the
 * order and customer streams -- all in one atomic append that fails (and
 * is retried) if any of those products changed after the read.
 *
 *   EVS_DB=/tmp/shop build/example-ecommerce
 *
 * The store named by EVS_DB is created if missing; without EVS_DB a fresh
 * store in a temporary directory is used. Names get a random suffix, so
 * the scenario can run again on the same store.
 *
 * Scenario: add 5 products with little stock, place orders (one rejected
 * for lack of stock, one rejected as a duplicate), cancel one (the cancel
 * command discovers the products to give stock back to from the order
 * itself), then 8 threads place 200 orders for 2-5 products against the
 * scarce stock. Exits 0 when every check held: no product was ever
 * oversold, each product's stock adds up, every order was committed or
 * rejected with a reason, and the counts add up.
 */
#include <evstore.h>
#include <evstore_command.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PRODUCTS 5
#define MAX_LINES 5
#define NAME_LEN 64

/* ---- JSON, the bare minimum for our own events (use a parser in real
 * code) ------------------------------------------------------------------ */

/* The number after "key": at or after p, or 0. */
static long long json_number(const char *p, const char *key)
{
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\":", key);
    p = strstr(p, pattern);
    return p ? strtoll(p + strlen(pattern), NULL, 10) : 0;
}

/* ---- product: stock ------------------------------------------------------ */

typedef struct product {
    int exists;
    long long stock;
} product;

static int product_apply(void *state, const evs_event *e)
{
    product *p = state;
    if (strcmp(e->type, "ProductAdded") == 0) {
        p->exists = 1;
        p->stock = json_number(e->data, "stock");
    } else if (strcmp(e->type, "StockReserved") == 0) {
        p->stock -= json_number(e->data, "qty");
    } else if (strcmp(e->type, "StockReleased") == 0) {
        p->stock += json_number(e->data, "qty");
    }
    return 0;
}

static const evs_fold product_fold = {
    .name = "product", .state_size = sizeof(product), .apply = product_apply};

/* ---- order: placed or not, and its lines --------------------------------- */

typedef struct order_line {
    char product[NAME_LEN];
    long long qty;
} order_line;

typedef struct order {
    int placed, cancelled;
    int nlines;
    order_line lines[MAX_LINES];
} order;

/* OrderPlaced data: {"lines":[{"product":"...","qty":N},...]} */
static int order_apply(void *state, const evs_event *e)
{
    order *o = state;
    if (strcmp(e->type, "OrderPlaced") == 0) {
        o->placed = 1;
        const char *p = e->data;
        while (o->nlines < MAX_LINES && (p = strstr(p, "\"product\":\""))) {
            order_line *l = &o->lines[o->nlines++];
            p += strlen("\"product\":\"");
            size_t n = strcspn(p, "\"");
            snprintf(l->product, sizeof l->product, "%.*s", (int)n, p);
            l->qty = json_number(p, "qty");
        }
    } else if (strcmp(e->type, "OrderCancelled") == 0) {
        o->cancelled = 1;
    }
    return 0;
}

static const evs_fold order_fold = {
    .name = "order", .state_size = sizeof(order), .apply = order_apply};

/* ---- placing an order ----------------------------------------------------- */

typedef struct place_order {
    const char *order, *customer;
    int nlines;
    order_line lines[MAX_LINES];
} place_order;

static int emit(evs_decision *d, const char *stream, const char *type, const char *json)
{
    evs_event_data ev = {.type = type, .data = json, .data_len = strlen(json)};
    return evs_decision_emit(d, stream, &ev);
}

/* States: [0] the order, [1] the customer (not read), [2..] the products. */
static int place_handle(evs_decision *d, const evs_cmd_state *s, size_t n, void *args)
{
    const place_order *po = args;
    const order *o = s[0].state;
    if (o->placed)
        return evs_decision_reject(d, 1, "order %s was already placed", po->order);
    for (int i = 0; i < po->nlines; i++) {
        const product *p = s[2 + i].state;
        if (!p->exists)
            return evs_decision_reject(d, 2, "no product %s", po->lines[i].product);
        if (p->stock < po->lines[i].qty)
            return evs_decision_reject(d, 3, "%s has %lld left, %lld ordered",
                                       po->lines[i].product, p->stock, po->lines[i].qty);
    }
    char json[1024];
    size_t len = (size_t)snprintf(json, sizeof json, "{\"customer\":\"%s\",\"lines\":[",
                                  po->customer);
    for (int i = 0; i < po->nlines; i++) {
        char one[200];
        snprintf(one, sizeof one, "{\"order\":\"%s\",\"qty\":%lld}", po->order,
                 po->lines[i].qty);
        int rc = emit(d, po->lines[i].product, "StockReserved", one);
        if (rc)
            return rc;
        len += (size_t)snprintf(json + len, sizeof json - len,
                                "%s{\"product\":\"%s\",\"qty\":%lld}", i ? "," : "",
                                po->lines[i].product, po->lines[i].qty);
    }
    snprintf(json + len, sizeof json - len, "]}");
    int rc = emit(d, po->order, "OrderPlaced", json);
    char rec[200];
    snprintf(rec, sizeof rec, "{\"order\":\"%s\"}", po->order);
    return rc ? rc : emit(d, po->customer, "OrderRecorded", rec);
}

static evs_command_outcome place(evs_executor *ex, place_order *po, evs_command_result *r)
{
    /* The order must still be unplaced and every product unchanged at
     * commit (READ); the customer stream is only appended to (APPEND), so
     * two orders of one customer do not conflict. */
    evs_cmd_stream streams[2 + MAX_LINES] = {
        {po->order, EVS_CMD_READ, &order_fold},
        {po->customer, EVS_CMD_APPEND, NULL}};
    for (int i = 0; i < po->nlines; i++)
        streams[2 + i] = (evs_cmd_stream){po->lines[i].product, EVS_CMD_READ, &product_fold};
    evs_command cmd = EVS_COMMAND_INIT;
    cmd.name = "place-order";
    cmd.streams = streams;
    cmd.nstreams = 2 + (size_t)po->nlines;
    cmd.handle = place_handle;
    cmd.args = po;
    evs_command_execute(r, ex, &cmd);
    return r->outcome;
}

/* ---- cancelling: the products come from the order itself ----------------- */

/* discover: once the order is read, ask for the streams of its products
 * (the executor reads them in one more read, then calls handle). */
static int cancel_discover(evs_discovery *dx, const evs_cmd_state *s, size_t n, void *args)
{
    const order *o = s[0].state;
    for (int i = 0; i < o->nlines; i++) {
        evs_cmd_stream p = {o->lines[i].product, EVS_CMD_READ, &product_fold};
        int rc = evs_discovery_add(dx, &p);
        if (rc)
            return rc;
    }
    return 0;
}

static int cancel_handle(evs_decision *d, const evs_cmd_state *s, size_t n, void *args)
{
    const order *o = s[0].state;
    if (!o->placed || o->cancelled)
        return evs_decision_reject(d, 4, "order %s is %s", s[0].stream,
                                   o->placed ? "already cancelled" : "not placed");
    char json[200];
    snprintf(json, sizeof json, "{\"order\":\"%s\"}", s[0].stream);
    int rc = emit(d, s[0].stream, "OrderCancelled", json);
    for (int i = 0; i < o->nlines && rc == 0; i++) {
        snprintf(json, sizeof json, "{\"order\":\"%s\",\"qty\":%lld}", s[0].stream,
                 o->lines[i].qty);
        rc = emit(d, o->lines[i].product, "StockReleased", json);
    }
    return rc;
}

static evs_command_outcome cancel(evs_executor *ex, const char *order_stream,
                                  evs_command_result *r)
{
    evs_cmd_stream streams[1] = {{order_stream, EVS_CMD_READ, &order_fold}};
    evs_command cmd = EVS_COMMAND_INIT;
    cmd.name = "cancel-order";
    cmd.streams = streams;
    cmd.nstreams = 1;
    cmd.discover = cancel_discover;
    cmd.handle = cancel_handle;
    evs_command_execute(r, ex, &cmd);
    return r->outcome;
}

/* ---- checks ---------------------------------------------------------------- */

static int g_failed;

static void check(int ok, const char *what)
{
    printf("%s  %s\n", ok ? "ok  " : "FAIL", what);
    g_failed |= !ok;
}

static void expect(evs_command_outcome got, evs_command_outcome want, const char *what,
                   const evs_command_result *r)
{
    static const char *names[] = {"committed", "rejected", "conflict", "error"};
    char line[600];
    snprintf(line, sizeof line, "%s: %s%s%s", what, names[got], r->reason[0] ? " -- " : "",
             r->reason);
    check(got == want, line);
}

/* Replay a product from the store: its final stock, and whether it ever
 * went below zero (oversold). Counts its reservations and releases. */
static long long audit_product(evs_db *db, const char *stream, int *oversold,
                               long long *reserved, long long *released)
{
    product p = {0};
    evs_iter *it;
    const evs_event *e;
    if (evs_read_stream(&it, db, NULL, stream, 0, EVS_FORWARD, 0) != 0)
        return -1;
    while (evs_iter_next(&e, it) == 0) {
        product_apply(&p, e);
        if (strcmp(e->type, "StockReserved") == 0)
            *reserved += json_number(e->data, "qty");
        if (strcmp(e->type, "StockReleased") == 0)
            *released += json_number(e->data, "qty");
        if (p.stock < 0)
            *oversold = 1;
    }
    evs_iter_free(it);
    return p.stock;
}

/* ---- concurrent orders ----------------------------------------------------- */

#define THREADS 8
#define ORDERS 25
#define STOCK 40

static char g_products[PRODUCTS][NAME_LEN];
static char g_run[16];

typedef struct worker {
    evs_executor *ex;
    int id;
    unsigned seed;
    int outcomes[4];
    int unexplained;      /* rejections without a reason */
    long long committed_qty[PRODUCTS];
} worker;

static void *order_randomly(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < ORDERS; i++) {
        char order_stream[NAME_LEN], customer[NAME_LEN];
        place_order po = {.order = order_stream, .customer = customer,
                          .nlines = 2 + rand_r(&w->seed) % 4};
        snprintf(order_stream, sizeof order_stream, "order-%s-%d-%d", g_run, w->id, i);
        snprintf(customer, sizeof customer, "customer-%s-%d", g_run,
                 rand_r(&w->seed) % 10);
        int first = rand_r(&w->seed) % PRODUCTS, idx[MAX_LINES];
        for (int l = 0; l < po.nlines; l++) { /* distinct products */
            idx[l] = (first + l) % PRODUCTS;
            snprintf(po.lines[l].product, NAME_LEN, "%s", g_products[idx[l]]);
            po.lines[l].qty = 1 + rand_r(&w->seed) % 3;
        }
        evs_command_result r;
        evs_command_outcome o = place(w->ex, &po, &r);
        w->outcomes[o]++;
        if (o == EVS_CMD_REJECTED && !r.reason[0])
            w->unexplained++;
        if (o == EVS_CMD_COMMITTED)
            for (int l = 0; l < po.nlines; l++)
                w->committed_qty[idx[l]] += po.lines[l].qty;
    }
    return NULL;
}

int main(void)
{
    const char *path = getenv("EVS_DB");
    char tmp[] = "/tmp/evs-ecommerce-XXXXXX";
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
    evs_executor_options opts = EVS_EXECUTOR_OPTIONS_INIT;
    opts.cache_entries = 10000; /* product and order states */
    evs_executor *ex;
    if (evs_executor_new(&ex, db, &opts) != 0) {
        fprintf(stderr, "executor: %s\n", evs_last_error());
        return 1;
    }

    evs_uuid u;
    char id[37];
    evs_uuid_generate(&u);
    evs_uuid_format(id, &u);
    snprintf(g_run, sizeof g_run, "%s", id + 24);
    printf("store %s, run %s\n\n", path, g_run);

    /* Products are added with plain appends: no decision to make. */
    for (int p = 0; p < PRODUCTS; p++) {
        char json[64];
        snprintf(g_products[p], NAME_LEN, "product-%s-%d", g_run, p);
        snprintf(json, sizeof json, "{\"stock\":%d}", STOCK);
        evs_event_data ev = {.type = "ProductAdded", .data = json, .data_len = strlen(json)};
        if (evs_append(NULL, db, NULL, g_products[p], EVS_NO_STREAM, &ev, 1) != 0) {
            fprintf(stderr, "add product: %s\n", evs_last_error());
            return 1;
        }
    }
    printf("%d products with %d in stock each\n", PRODUCTS, STOCK);

    evs_command_result r;
    char o1[NAME_LEN], o2[NAME_LEN], c1[NAME_LEN];
    snprintf(o1, sizeof o1, "order-%s-first", g_run);
    snprintf(o2, sizeof o2, "order-%s-too-big", g_run);
    snprintf(c1, sizeof c1, "customer-%s-ada", g_run);
    place_order po = {.order = o1, .customer = c1, .nlines = 2};
    po.lines[0].qty = 3;
    po.lines[1].qty = 2;
    snprintf(po.lines[0].product, NAME_LEN, "%s", g_products[0]);
    snprintf(po.lines[1].product, NAME_LEN, "%s", g_products[1]);
    expect(place(ex, &po, &r), EVS_CMD_COMMITTED, "order 3 x product 0 + 2 x product 1", &r);
    printf("      (%zu events written atomically to 4 streams, positions %llu..%llu)\n",
           r.nevents, (unsigned long long)r.first_position,
           (unsigned long long)r.last_position);
    expect(place(ex, &po, &r), EVS_CMD_REJECTED, "the same order again", &r);
    po.order = o2;
    po.lines[1].qty = STOCK;
    expect(place(ex, &po, &r), EVS_CMD_REJECTED, "an order for more than the stock", &r);
    expect(cancel(ex, o1, &r), EVS_CMD_COMMITTED, "cancel the first order", &r);
    expect(cancel(ex, o1, &r), EVS_CMD_REJECTED, "cancel it again", &r);

    /* 8 threads order 2-5 products each; stock runs out. */
    worker w[THREADS];
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) {
        w[t] = (worker){.ex = ex, .id = t, .seed = 77u + (unsigned)t};
        pthread_create(&th[t], NULL, order_randomly, &w[t]);
    }
    int total[4] = {0}, unexplained = 0;
    long long committed_qty[PRODUCTS] = {0};
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        for (int o = 0; o < 4; o++)
            total[o] += w[t].outcomes[o];
        unexplained += w[t].unexplained;
        for (int p = 0; p < PRODUCTS; p++)
            committed_qty[p] += w[t].committed_qty[p];
    }
    char line[300];
    snprintf(line, sizeof line, "%d concurrent orders: %d committed + %d rejected + %d "
             "conflict + %d error add up, with no error", THREADS * ORDERS,
             total[EVS_CMD_COMMITTED], total[EVS_CMD_REJECTED], total[EVS_CMD_CONFLICT],
             total[EVS_CMD_ERROR]);
    check(total[0] + total[1] + total[2] + total[3] == THREADS * ORDERS &&
              total[EVS_CMD_ERROR] == 0, line);
    check(unexplained == 0, "every rejected order has a reason");

    /* Audit every product from the store. */
    int oversold = 0, adds_up = 1;
    for (int p = 0; p < PRODUCTS; p++) {
        long long reserved = 0, released = 0;
        long long stock = audit_product(db, g_products[p], &oversold, &reserved, &released);
        /* the first order took 3 of product 0 and 2 of product 1, the
         * cancel gave them back; the rest are the concurrent orders */
        long long first = p == 0 ? 3 : p == 1 ? 2 : 0;
        adds_up &= stock == STOCK - reserved + released &&
                   reserved == first + committed_qty[p] && released == first;
        printf("      %s: %lld left (%lld reserved, %lld released)\n", g_products[p], stock,
               reserved, released);
    }
    check(!oversold, "no product was ever oversold");
    check(adds_up, "each product's stock = initial - reserved + released, and its "
                   "reservations are exactly those of the committed orders");

    evs_executor_stats st;
    evs_executor_stats_get(&st, ex);
    printf("\nexecutor: %llu commands, %llu attempts, %llu conflicts retried, "
           "%llu reads of %llu streams\n",
           (unsigned long long)st.commands, (unsigned long long)st.attempts,
           (unsigned long long)st.conflicted_attempts, (unsigned long long)st.reads,
           (unsigned long long)st.streams_read);
    evs_executor_free(ex);
    evs_close(db);
    printf("%s\n", g_failed ? "SOME CHECKS FAILED" : "every check held");
    return g_failed ? 1 : 0;
}
