/*
 * explore.c -- exploring a store: one event by id, the streams of a
 * tenant, the tenants with their event counts, or whether they have
 * events (evstore.h, "Exploring").
 * Argument validation, then dispatch to the backend; the lists a backend
 * finds arrive through a sink (backend.h) and are copied here into one
 * allocation the caller frees.
 */
#include "core/front.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>

/* ---- one event by id ------------------------------------------------------ */

int evs_read_event(evs_iter **out, evs_db *db, const evs_uuid *id)
{
    evs__clear_error();
    if (!out)
        return evs__err(EVS_EINVAL, "read_event: out is NULL");
    *out = NULL;
    if (!db || !id)
        return evs__err(EVS_EINVAL, "read_event: %s is NULL", db ? "id" : "db");
    /* the ids index gives the position; the log's event there is it
     * (positions and events never change) */
    uint64_t pos = 0;
    int rc = db->ops->event_position(&pos, db, id);
    if (rc == EVS_ENOTFOUND) {
        char text[37];
        evs_uuid_format(text, id);
        return evs__err(EVS_ENOTFOUND, "no event has the id %s (in any tenant)", text);
    }
    if (rc < 0)
        return rc;
    return evs__lc_read_at(out, db, pos);
}

/* ---- the collector behind both lists --------------------------------------- */

/* What a backend reported, strings as offsets into buf (which moves as it
 * grows) until the list is made. */
typedef struct entry {
    size_t t_off, t_len, s_off, s_len;
    int64_t n;
} entry;

typedef struct collector {
    evs__list_sink sink; /* first: the backend's sink is the collector */
    entry *v;
    size_t n, cap;
    char *buf;
    size_t len, buf_cap;
} collector;

/* Copy s[0..len) and a NUL into buf; its offset into *off. */
static EVS_MUST_USE int put_str(collector *c, const char *s, size_t len, size_t *off)
{
    if (evs__grow(&c->buf, &c->buf_cap, c->len + len + 1, 1) < 0)
        return evs__err(EVS_ENOMEM, "out of memory listing");
    *off = c->len;
    if (len)
        memcpy(c->buf + c->len, s, len);
    c->buf[c->len + len] = '\0';
    c->len += len + 1;
    return 0;
}

static int collect(evs__list_sink *sink, const char *tenant, size_t tenant_len,
                   const char *stream, size_t stream_len, int64_t n)
{
    collector *c = (collector *)sink;
    int rc;
    if (evs__grow(&c->v, &c->cap, c->n + 1, sizeof(entry)) < 0)
        return evs__err(EVS_ENOMEM, "out of memory listing");
    entry *e = &c->v[c->n];
    const entry *prev = c->n ? &c->v[c->n - 1] : NULL;
    /* A listing of every tenant's streams names each tenant many times
     * in a row: keep its name once. */
    if (prev && prev->t_len == tenant_len &&
        memcmp(c->buf + prev->t_off, tenant, tenant_len) == 0)
        e->t_off = prev->t_off;
    else if ((rc = put_str(c, tenant, tenant_len, &e->t_off)) < 0)
        return rc;
    e->t_len = tenant_len;
    e->s_off = 0;
    e->s_len = 0;
    if (stream && (rc = put_str(c, stream, stream_len, &e->s_off)) < 0)
        return rc;
    e->s_len = stream_len;
    e->n = n;
    c->n++;
    return 0;
}

static void collector_free(collector *c)
{
    free(c->v);
    free(c->buf);
}

/* ---- streams ---------------------------------------------------------------- */

/* A stream name fragment (prefix, after): at most EVS_MAX_STREAM_LEN bytes
 * of UTF-8. */
static EVS_MUST_USE int check_fragment(const char *s, const char *what)
{
    size_t n = strnlen(s, EVS_MAX_STREAM_LEN + 1);
    if (n > EVS_MAX_STREAM_LEN)
        return evs__err(EVS_EINVAL, "list_streams: %s is longer than %d bytes (a stream "
                        "name's limit)", what, EVS_MAX_STREAM_LEN);
    if (!evs__utf8_valid(s, n))
        return evs__err(EVS_EINVAL, "list_streams: %s is not valid UTF-8", what);
    return 0;
}

static EVS_MUST_USE int check_list_streams(const evs_list_streams_options *o)
{
    int rc;
    size_t tl;
    if (o->version != EVS_LIST_STREAMS_OPTIONS_VERSION)
        return evs__err(EVS_EINVAL, "list_streams: options version %u (this library "
                        "knows %d: start from EVS_LIST_STREAMS_OPTIONS_INIT)", o->version,
                        EVS_LIST_STREAMS_OPTIONS_VERSION);
    if (o->all_tenants != 0 && o->all_tenants != 1)
        return evs__err(EVS_EINVAL, "list_streams: all_tenants is %d (give 0 or 1)",
                        o->all_tenants);
    if (o->all_tenants && o->tenant)
        return evs__err(EVS_EINVAL, "list_streams: all_tenants lists every tenant's "
                        "streams; tenant must be NULL with it");
    if ((rc = evs__check_tenant(o->tenant, &tl)) < 0)
        return rc;
    if (o->prefix && (rc = check_fragment(o->prefix, "prefix")) < 0)
        return rc;
    if (o->after && (rc = check_fragment(o->after, "after")) < 0)
        return rc;
    if (o->after_tenant && !o->all_tenants)
        return evs__err(EVS_EINVAL, "list_streams: after_tenant pages a list of every "
                        "tenant's streams (all_tenants); a tenant's list pages with "
                        "after alone");
    if (o->all_tenants && !o->after_tenant != !o->after)
        return evs__err(EVS_EINVAL, "list_streams: with all_tenants, page with both "
                        "after_tenant and after (the last stream's tenant and name), "
                        "or neither");
    if (o->after_tenant && (rc = evs__check_tenant(o->after_tenant, &tl)) < 0)
        return evs__err(rc, "list_streams: after_tenant: %s", evs_last_error());
    if (o->flags & ~EVS_LIST_SYSTEM)
        return evs__err(EVS_EINVAL, "list_streams: unknown flags 0x%x (known: "
                        "EVS_LIST_SYSTEM)", o->flags & ~EVS_LIST_SYSTEM);
    return 0;
}

int evs_list_streams(evs_stream_list **out, evs_db *db, const evs_list_streams_options *opts)
{
    int rc;
    evs__clear_error();
    if (!out)
        return evs__err(EVS_EINVAL, "list_streams: out is NULL");
    *out = NULL;
    if (!db || !opts)
        return evs__err(EVS_EINVAL, "list_streams: %s is NULL", db ? "opts" : "db");
    if ((rc = check_list_streams(opts)) < 0)
        return rc;
    const char *prefix = opts->prefix ? opts->prefix : "";
    int system = (opts->flags & EVS_LIST_SYSTEM) || prefix[0] == '$';
    collector c = {.sink = {.add = collect}};
    rc = db->ops->list_streams(db, opts->all_tenants ? NULL : opts->tenant ? opts->tenant : "",
                               prefix, opts->after_tenant, opts->after, opts->limit, system,
                               &c.sink);
    if (rc == 0) {
        evs_stream_list *l = malloc(sizeof(*l) + c.n * sizeof(evs_stream_info) + c.len);
        if (!l) {
            rc = evs__err(EVS_ENOMEM, "out of memory listing %zu streams", c.n);
        } else {
            evs_stream_info *v = (evs_stream_info *)(l + 1);
            char *strs = (char *)(v + c.n);
            if (c.len)
                memcpy(strs, c.buf, c.len);
            for (size_t i = 0; i < c.n; i++) {
                v[i].tenant = strs + c.v[i].t_off;
                v[i].stream = strs + c.v[i].s_off;
                v[i].last_version = c.v[i].n;
            }
            l->streams = v;
            l->count = c.n;
            l->more = c.sink.more;
            *out = l;
        }
    }
    collector_free(&c);
    return rc;
}

void evs_stream_list_free(evs_stream_list *list)
{
    free(list);
}

/* ---- tenants ---------------------------------------------------------------- */

int evs_list_tenants(evs_tenant_list **out, evs_db *db)
{
    return evs_list_tenants_capped(out, db, 0);
}

int evs_list_tenants_capped(evs_tenant_list **out, evs_db *db, uint64_t cap)
{
    int rc;
    evs__clear_error();
    if (!out)
        return evs__err(EVS_EINVAL, "list_tenants: out is NULL");
    *out = NULL;
    if (!db)
        return evs__err(EVS_EINVAL, "list_tenants: db is NULL");
    collector c = {.sink = {.add = collect}};
    rc = db->ops->list_tenants(db, cap, &c.sink);
    if (rc == 0) {
        evs_tenant_list *l = malloc(sizeof(*l) + c.n * sizeof(evs_tenant_info) + c.len);
        if (!l) {
            rc = evs__err(EVS_ENOMEM, "out of memory listing %zu tenants", c.n);
        } else {
            evs_tenant_info *v = (evs_tenant_info *)(l + 1);
            char *strs = (char *)(v + c.n);
            if (c.len)
                memcpy(strs, c.buf, c.len);
            for (size_t i = 0; i < c.n; i++) {
                v[i].tenant = strs + c.v[i].t_off;
                v[i].events = (uint64_t)c.v[i].n;
            }
            l->tenants = v;
            l->count = c.n;
            *out = l;
        }
    }
    collector_free(&c);
    return rc;
}

void evs_tenant_list_free(evs_tenant_list *list)
{
    free(list);
}
