/*
 * scen_util.c -- helpers shared by the scenarios (scen_util.h).
 */
#include "scen_util.h"

#include <stdlib.h>
#include <string.h>

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

void scen_event(evs_event_data *ev, const char *type, const char *data,
                size_t len)
{
    memset(ev, 0, sizeof *ev);
    ev->type = type;
    ev->data = data;
    ev->data_len = len;
    ev->content_type = EVS_CONTENT_JSON;
}

int64_t scen_json_int(const void *data, const char *key)
{
    const char *p = data ? strstr(data, key) : NULL;
    return p ? strtoll(p + strlen(key), NULL, 10) : 0;
}

int scen_count_events(uint64_t *n, evs_db *db, const char *tenant, char *err,
                      size_t errsize)
{
    evs_iter *it = NULL;
    const evs_event *ev;
    int rc;
    *n = 0;
    if ((rc = evs_read_all(&it, db, tenant, 0, 0)) < 0) {
        scen_fail(err, errsize, rc, "reading the events of %s", tenant);
        return -1;
    }
    while ((rc = evs_iter_next(&ev, it)) == 0)
        (*n)++;
    if (rc != EVS_ITEROVER) {
        scen_fail(err, errsize, rc, "reading the events of %s", tenant);
        evs_iter_free(it);
        return -1;
    }
    evs_iter_free(it);
    return 0;
}
