/*
 * pg_query_bench.c -- the DCB query on PostgreSQL two ways in one run:
 * the statement prepared for the query's shape (evs__pg_dcb_sql, the
 * default) against evstore.read_query(), the plpgsql function that
 * builds and plans its SQL on every call (EVS_DEBUG_PG_READ_QUERY=
 * function). docs/PERFORMANCE.md, "PostgreSQL: DCB queries as prepared
 * statements".
 *
 *   pg_query_bench URI [TENANT [BOOKS [ROUNDS [BLOCK]]]]
 *
 * On a store `evs bench --db URI --scenarios dcb-query` loaded (its
 * library: types BookLent/BookReturned, tags book:0..BOOKS-1 in tenant
 * TENANT, default bench-dcb-query, 20000 books): ROUNDS rounds (default
 * 20), each BLOCK queries (default 200) of one way then of the other (the
 * order alternating per round, so drift in the machine's load falls on
 * both), one thread, each query a random book's events read to the end.
 * Prints p50/p90/p99 of each way and their ratio. Exit 1 when a query
 * fails or the two ways disagree on a book's event count.
 */
#include "evstore.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* One query: the events of book b; their count, or -1. */
static long query(evs_db *db, const char *tenant, unsigned b)
{
    static const char *const types[] = {"BookLent", "BookReturned"};
    char tag[32];
    snprintf(tag, sizeof tag, "book:%u", b);
    const char *tags[] = {tag};
    evs_query_item item = {.types = types, .ntypes = 2, .tags = tags, .ntags = 1};
    evs_query q = {.items = &item, .nitems = 1};
    evs_iter *it;
    const evs_event *e;
    long n = 0;
    int rc = evs_read_query(&it, db, tenant, &q, 0, EVS_FORWARD, 0);
    if (rc < 0) {
        fprintf(stderr, "pg_query_bench: %s: %s\n", evs_strerror(rc), evs_last_error());
        return -1;
    }
    while ((rc = evs_iter_next(&e, it)) == 0)
        n++;
    evs_iter_free(it);
    if (rc != EVS_ITEROVER) {
        fprintf(stderr, "pg_query_bench: %s: %s\n", evs_strerror(rc), evs_last_error());
        return -1;
    }
    return n;
}

static void report(const char *what, uint64_t *v, size_t n, double *p50)
{
    qsort(v, n, sizeof(*v), cmp);
    *p50 = v[n / 2] / 1e6;
    printf("%-34s %6zu queries  p50 %.3f ms  p90 %.3f ms  p99 %.3f ms\n", what, n, *p50,
           v[n * 9 / 10] / 1e6, v[n * 99 / 100] / 1e6);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 6) {
        fprintf(stderr, "usage: %s URI [TENANT [BOOKS [ROUNDS [BLOCK]]]]\n", argv[0]);
        return 2;
    }
    const char *uri = argv[1], *tenant = argc > 2 ? argv[2] : "bench-dcb-query";
    unsigned books = argc > 3 ? (unsigned)atoi(argv[3]) : 20000;
    int rounds = argc > 4 ? atoi(argv[4]) : 20, block = argc > 5 ? atoi(argv[5]) : 200;
    if (books == 0 || rounds <= 0 || block <= 0) {
        fprintf(stderr, "pg_query_bench: BOOKS, ROUNDS and BLOCK must be > 0\n");
        return 2;
    }
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    o.flags = 0;
    evs_db *db;
    if (evs_open(&db, uri, &o) < 0) {
        fprintf(stderr, "pg_query_bench: %s\n", evs_last_error());
        return 1;
    }
    size_t n = (size_t)rounds * (size_t)block;
    uint64_t *t[2] = {calloc(n, sizeof(uint64_t)), calloc(n, sizeof(uint64_t))};
    long *count = calloc(books, sizeof(long));
    size_t k[2] = {0, 0};
    unsigned seed = 1;
    if (!t[0] || !t[1] || !count)
        return 1;
    for (unsigned b = 0; b < books; b++)
        count[b] = -2;
    for (int r = 0; r < rounds; r++) {
        for (int w = 0; w < 2; w++) {
            int way = (w + r) % 2; /* 0 prepared, 1 function */
            if (way)
                setenv("EVS_DEBUG_PG_READ_QUERY", "function", 1);
            else
                unsetenv("EVS_DEBUG_PG_READ_QUERY");
            for (int i = 0; i < block; i++) {
                unsigned b = (unsigned)rand_r(&seed) % books;
                uint64_t t0 = now_ns();
                long c = query(db, tenant, b);
                t[way][k[way]++] = now_ns() - t0;
                if (c < 0)
                    return 1;
                if (count[b] != -2 && count[b] != c) {
                    fprintf(stderr, "pg_query_bench: book:%u: %ld events one way, %ld the "
                            "other\n", b, count[b], c);
                    return 1;
                }
                count[b] = c;
            }
        }
    }
    unsetenv("EVS_DEBUG_PG_READ_QUERY");
    double p[2];
    report("prepared statement of the shape", t[0], k[0], &p[0]);
    report("evstore.read_query() (function)", t[1], k[1], &p[1]);
    printf("p50 ratio function / prepared: %.2f\n", p[1] / p[0]);
    free(t[0]);
    free(t[1]);
    free(count);
    evs_close(db);
    return 0;
}
