/*
 * scen_util.c -- helpers shared by the scenarios (scen_util.h).
 */
#include "scen_util.h"

#include <stdlib.h>
#include <string.h>

void scen_free(void *state) { free(state); }

int scen_ledger_json(char *out, size_t size, const char *ledger, int j, unsigned inst)
{
    return snprintf(out, size,
                    "{\"ledger\":\"%s\",\"entry\":%d,\"amount\":%d,"
                    "\"currency\":\"EUR\",\"booked_by\":\"clerk-%u\","
                    "\"memo\":\"monthly settlement of open items, "
                    "batch %u line %d\",\"approved\":true}",
                    ledger, j, 100 + 37 * j, inst % 97, inst, j);
}

void scen_ledger_tags(char tag[2][64], unsigned inst)
{
    static const char *const regions[] = {"north", "south", "east", "west", "central"};
    snprintf(tag[0], 64, "customer:c%u", inst);
    snprintf(tag[1], 64, "region:%s", regions[inst % 5]);
}

void scen_first_problem(pthread_mutex_t *mu, char *buf, size_t size, const char *msg)
{
    pthread_mutex_lock(mu);
    if (!buf[0])
        snprintf(buf, size, "%s", msg);
    pthread_mutex_unlock(mu);
}

void scen_msg(char *err, size_t errsize, const char *fmt, ...)
{
    va_list ap;
    if (!err || !errsize)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errsize, fmt, ap);
    va_end(ap);
}

void scen_fail(char *err, size_t errsize, int rc, const char *fmt, ...)
{
    va_list ap;
    size_t n;
    if (!err || !errsize)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errsize, fmt, ap);
    va_end(ap);
    n = strlen(err);
    /* evs_last_error() first: it is the thread's, and the caller's
       formatting above made no evs_* call */
    if (n < errsize)
        snprintf(err + n, errsize - n, ": %s (%s)",
                 *evs_last_error() ? evs_last_error() : "no detail",
                 evs_strerror(rc));
}

void scen_gen_tenant(char *out, size_t outsize, uint32_t i)
{
    snprintf(out, outsize, "tenant-%02u", i);
}

uint32_t scen_biggest_tenant(const bench_ctx *ctx)
{
    uint32_t best = 0;
    if (!ctx->loaded)
        return 0;
    for (uint32_t i = 1; i < ctx->loaded->tenants && i < GEN_MAX_TENANTS; i++)
        if (ctx->loaded->per_tenant[i] > ctx->loaded->per_tenant[best])
            best = i;
    return best;
}

int scen_replay_stream(evs_db *db, const char *tenant, const char *stream,
                       int (*each)(void *arg, const evs_event *e, char *err,
                                   size_t errsize),
                       void *arg, char *err, size_t errsize)
{
    evs_iter *it = NULL;
    const evs_event *e;
    int rc;
    if ((rc = evs_read_stream(&it, db, tenant, stream, 0, EVS_FORWARD, 0)) <
        0) {
        scen_fail(err, errsize, rc, "reading %s", stream);
        return -1;
    }
    while ((rc = evs_iter_next(&e, it)) == 0) {
        if (each(arg, e, err, errsize) != 0) {
            evs_iter_free(it);
            return -1;
        }
    }
    evs_iter_free(it);
    if (rc != EVS_ITEROVER) {
        scen_fail(err, errsize, rc, "reading %s", stream);
        return -1;
    }
    return 0;
}

int scen_check_events(evs_db *db, const char *tenant, uint64_t want,
                      const char *who, char *err, size_t errsize)
{
    evs_iter *it = NULL;
    const evs_event *ev;
    uint64_t n = 0;
    int rc;
    if ((rc = evs_read_all(&it, db, tenant, 0, 0)) < 0) {
        scen_fail(err, errsize, rc, "reading the events of %s", tenant);
        return -1;
    }
    while ((rc = evs_iter_next(&ev, it)) == 0)
        n++;
    evs_iter_free(it);
    if (rc != EVS_ITEROVER) {
        scen_fail(err, errsize, rc, "reading the events of %s", tenant);
        return -1;
    }
    if (n != want) {
        scen_msg(err, errsize, "the tenant holds %llu events, %s wrote %llu",
                 (unsigned long long)n, who, (unsigned long long)want);
        return -1;
    }
    return 0;
}
