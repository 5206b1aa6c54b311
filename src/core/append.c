/*
 * append.c -- appends: validation of names, events, expected versions and
 * DCB queries, event ids, payload-derived tags, and the assembly of the
 * one request a backend sees (core/backend.h). Every check runs in the
 * caller's thread, before anything reaches a backend, so a rejected append
 * writes nothing.
 */
#include "core/front.h"
#include "util/json.h"
#include "util/util.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- validation -------------------------------------------------------- */

int evs__check_tenant(const char *tenant, size_t *len)
{
    if (!tenant) {
        *len = 0;
        return 0;
    }
    size_t n = strnlen(tenant, EVS_MAX_TENANT_LEN + 1);
    if (n > EVS_MAX_TENANT_LEN)
        return evs__err(EVS_EINVAL, "tenant name longer than %d bytes",
                        EVS_MAX_TENANT_LEN);
    if (!evs__utf8_valid(tenant, n))
        return evs__err(EVS_EINVAL, "tenant name is not valid UTF-8");
    *len = n;
    return 0;
}

/* What is wrong with a name (stream, type, tag) of at most max bytes, or
 * NULL when nothing is: callers add the context to the message. */
_Static_assert(EVS_MAX_STREAM_LEN == 256 && EVS_MAX_TYPE_LEN == 256 && EVS_MAX_TAG_LEN == 256,
               "evs__name_problem's message says 256");
const char *evs__name_problem(const char *s, size_t max)
{
    if (!s)
        return "is NULL";
    size_t n = strnlen(s, max + 1);
    if (n == 0)
        return "is empty";
    if (n > max)
        return "is longer than 256 bytes";
    if (!evs__utf8_valid(s, n))
        return "is not valid UTF-8";
    return NULL;
}

int evs__check_stream(const char *stream)
{
    const char *why = evs__name_problem(stream, EVS_MAX_STREAM_LEN);
    return why ? evs__err(EVS_EINVAL, "stream name %s", why) : 0;
}

static int check_expected(int64_t ev, const char *stream)
{
    if (ev >= 0 || ev == EVS_ANY || ev == EVS_NO_STREAM || ev == EVS_STREAM_EXISTS)
        return 0;
    return evs__err(EVS_EINVAL,
                    "stream %s: expected version %lld is not valid (use >= 0, "
                    "EVS_ANY, EVS_NO_STREAM or EVS_STREAM_EXISTS)",
                    stream, (long long)ev);
}

static int check_json(const char *what, const char *stream, size_t idx,
                      const void *buf, size_t len)
{
    char why[160];
    int r = evs__json_check(buf, len, why, sizeof(why));
    if (r == -2)
        return evs__err(EVS_ENOMEM, "out of memory validating JSON");
    if (r != 0)
        return evs__err(EVS_EINVAL,
                        "stream %s, event %zu: %s is not valid JSON (%s); declare "
                        "it EVS_CONTENT_BINARY if it is not JSON",
                        stream, idx, what, why);
    return 0;
}

static int check_event(const evs_db *db, const char *stream, size_t idx,
                       const evs_event_data *e, unsigned flags)
{
    int rc;
    const char *why;
    if ((why = evs__name_problem(e->type, EVS_MAX_TYPE_LEN)))
        return evs__err(EVS_EINVAL, "stream %s, event %zu: type %s", stream, idx, why);
    if (e->content_type != EVS_CONTENT_JSON && e->content_type != EVS_CONTENT_BINARY)
        return evs__err(EVS_EINVAL, "stream %s, event %zu: unknown content type %d",
                        stream, idx, (int)e->content_type);
    if (e->data_len > 0 && !e->data)
        return evs__err(EVS_EINVAL, "stream %s, event %zu: data is NULL but data_len is %zu",
                        stream, idx, e->data_len);
    if (e->metadata_len > 0 && !e->metadata)
        return evs__err(EVS_EINVAL,
                        "stream %s, event %zu: metadata is NULL but metadata_len is %zu",
                        stream, idx, e->metadata_len);
    if (e->data_len > db->opts.max_event_size ||
        e->metadata_len > db->opts.max_event_size - e->data_len)
        return evs__err(EVS_ETOOBIG,
                        "stream %s, event %zu: data + metadata is %zu bytes, over "
                        "the limit of %u; raise max_event_size (evs "
                        "--max-event-size, EVS_MAX_EVENT_SIZE)",
                        stream, idx, e->data_len + e->metadata_len,
                        db->opts.max_event_size);
    if (!(flags & (EVS__APPEND_LIFECYCLE | EVS__APPEND_RESTORE)) &&
        (strcmp(e->type, EVS__METADATA_TYPE) == 0 || strcmp(e->type, EVS__TOMBSTONE_TYPE) == 0))
        return evs__err(EVS_EINVAL, "stream %s, event %zu: type \"%s\" is the store's own "
                        "(stream metadata and tombstones: use evs_stream_metadata_set, "
                        "evs_stream_delete, evs_stream_tombstone); choose another type",
                        stream, idx, e->type);
    if (e->ntags > EVS_MAX_TAGS)
        return evs__err(EVS_EINVAL, "stream %s, event %zu: %zu tags, at most %d allowed",
                        stream, idx, e->ntags, EVS_MAX_TAGS);
    if (e->ntags > 0 && !e->tags)
        return evs__err(EVS_EINVAL, "stream %s, event %zu: tags is NULL but ntags is %zu",
                        stream, idx, e->ntags);
    for (size_t t = 0; t < e->ntags; t++) {
        if ((why = evs__name_problem(e->tags[t], EVS_MAX_TAG_LEN)))
            return evs__err(EVS_EINVAL, "stream %s, event %zu: tag %zu %s", stream, idx,
                            t, why);
        if (strncmp(e->tags[t], EVS__SUBJECT_TAG_PREFIX, strlen(EVS__SUBJECT_TAG_PREFIX)) == 0)
            return evs__err(EVS_EINVAL,
                            "stream %s, event %zu: tag \"%s\" is the store's mark of an "
                            "event encrypted under a subject; set the event's subject "
                            "(evs_event_data.subject) to \"%s\" instead of the tag",
                            stream, idx, e->tags[t],
                            e->tags[t] + strlen(EVS__SUBJECT_TAG_PREFIX));
        if (e->tags[t][0] == '$')
            return evs__err(EVS_EINVAL,
                            "stream %s, event %zu: tag \"%s\" starts with '$', which is "
                            "reserved for the store (e.g. \"$stream:NAME\" in queries)",
                            stream, idx, e->tags[t]);
        for (size_t u = 0; u < t; u++)
            if (strcmp(e->tags[u], e->tags[t]) == 0)
                return evs__err(EVS_EINVAL,
                                "stream %s, event %zu: tag \"%s\" given twice "
                                "(duplicate tags are rejected)",
                                stream, idx, e->tags[t]);
    }
    if (e->recorded_at < 0)
        return evs__err(EVS_EINVAL, "stream %s, event %zu: recorded_at %lld is negative",
                        stream, idx, (long long)e->recorded_at);
    if ((e->subject || e->flags) && (rc = evs__crypto_check(e, stream, idx)) < 0)
        return rc;
    if (db->opts.validate_json && !(flags & EVS__APPEND_RESTORE)) {
        if (e->content_type == EVS_CONTENT_JSON && e->data_len > 0 &&
            (rc = check_json("data", stream, idx, e->data, e->data_len)) < 0)
            return rc;
        if (e->metadata_len > 0 &&
            (rc = check_json("metadata", stream, idx, e->metadata, e->metadata_len)) < 0)
            return rc;
    }
    return 0;
}

/* ---- DCB queries --------------------------------------------------------- */

/* A query as the spec shapes it; what is wrong is said with `what` (e.g.
 * "condition 2") in front. */
int evs__check_query(const evs_query *q, const char *what)
{
    const char *why;
    size_t terms = 0;
    if (q->nitems > EVS_MAX_QUERY_ITEMS)
        return evs__err(EVS_EINVAL, "%s: query has %zu items, at most %d; split the "
                        "read, or tag the events so that fewer items select them",
                        what, q->nitems, EVS_MAX_QUERY_ITEMS);
    if (q->nitems > 0 && !q->items)
        return evs__err(EVS_EINVAL, "%s: query items is NULL but nitems is %zu", what,
                        q->nitems);
    for (size_t i = 0; i < q->nitems; i++) {
        const evs_query_item *it = &q->items[i];
        if ((it->ntypes && !it->types) || (it->ntags && !it->tags))
            return evs__err(EVS_EINVAL, "%s: query item %zu: types or tags is NULL but "
                            "its count is not 0", what, i);
        terms += it->ntypes + it->ntags;
        if (terms > EVS_MAX_QUERY_TERMS)
            return evs__err(EVS_EINVAL, "%s: query has more than %d types and tags in "
                            "all", what, EVS_MAX_QUERY_TERMS);
        for (size_t t = 0; t < it->ntypes; t++)
            if ((why = evs__name_problem(it->types[t], EVS_MAX_TYPE_LEN)))
                return evs__err(EVS_EINVAL, "%s: query item %zu: type %zu %s", what, i,
                                t, why);
        for (size_t t = 0; t < it->ntags; t++) {
            const char *tag = it->tags[t];
            size_t pl = strlen(EVS_STREAM_TAG_PREFIX);
            if (tag && strncmp(tag, EVS_STREAM_TAG_PREFIX, pl) == 0) {
                /* "$stream:NAME": NAME is a stream name (up to 256 bytes) */
                if ((why = evs__name_problem(tag + pl, EVS_MAX_STREAM_LEN)))
                    return evs__err(EVS_EINVAL, "%s: query item %zu: tag %zu: the stream "
                                    "name after \"%s\" %s", what, i, t,
                                    EVS_STREAM_TAG_PREFIX, why);
                continue;
            }
            size_t cl = strlen(EVS_CATEGORY_TAG_PREFIX);
            if (tag && strncmp(tag, EVS_CATEGORY_TAG_PREFIX, cl) == 0) {
                /* "$category:NAME": NAME is a category (a stream name
                 * prefix without '-') */
                if ((why = evs__name_problem(tag + cl, EVS_MAX_STREAM_LEN)))
                    return evs__err(EVS_EINVAL, "%s: query item %zu: tag %zu: the category "
                                    "after \"%s\" %s", what, i, t,
                                    EVS_CATEGORY_TAG_PREFIX, why);
                if (strchr(tag + cl, '-'))
                    return evs__err(EVS_EINVAL, "%s: query item %zu: category \"%s\" "
                                    "contains '-'; a category is the part of a stream "
                                    "name before the first '-'", what, i, tag + cl);
                continue;
            }
            size_t sl = strlen(EVS__SUBJECT_TAG_PREFIX);
            if (tag && strncmp(tag, EVS__SUBJECT_TAG_PREFIX, sl) == 0) {
                /* "$subject:NAME": the events encrypted under subject NAME
                 * (crypto.c), an ordinary tag to the backends */
                if ((why = evs__name_problem(tag + sl, EVS_MAX_STREAM_LEN)))
                    return evs__err(EVS_EINVAL, "%s: query item %zu: tag %zu: the subject "
                                    "after \"%s\" %s", what, i, t,
                                    EVS__SUBJECT_TAG_PREFIX, why);
                continue;
            }
            if ((why = evs__name_problem(tag, EVS_MAX_TAG_LEN)))
                return evs__err(EVS_EINVAL, "%s: query item %zu: tag %zu %s", what, i,
                                t, why);
            if (tag[0] == '$')
                return evs__err(EVS_EINVAL, "%s: query item %zu: tag \"%s\" starts with "
                                "'$', which is reserved; the '$' tags are \"%sNAME\" "
                                "(the events of stream NAME) and \"%sNAME\" (of category "
                                "NAME)", what, i, tag, EVS_STREAM_TAG_PREFIX,
                                EVS_CATEGORY_TAG_PREFIX);
        }
    }
    return 0;
}

/* ---- payload-derived tags ------------------------------------------------ */

/*
 * Events rewritten to carry their derived tags. Everything lives in one
 * malloc'ed block per call (events, tag pointer arrays, tag text); the
 * parts point into it.
 */
typedef struct derive_ctx {
    const evs_append_request *req;
    char *text;              /* tag text of the current event */
    size_t text_len, text_cap;
    size_t *offs;            /* start of each derived tag in text */
    size_t noffs, offs_cap;
    int rc;
    char msg[256];
} derive_ctx;

static void derive_member(void *vctx, const evs__json_item *m)
{
    derive_ctx *d = vctx;
    const evs_append_request *r = d->req;
    if (d->rc)
        return;
    size_t f = 0;
    for (; f < r->ntag_fields; f++)
        if (strlen(r->tag_fields[f]) == m->key_len &&
            memcmp(r->tag_fields[f], m->key, m->key_len) == 0)
            break;
    if (f == r->ntag_fields)
        return;
    const char *val;
    size_t vlen;
    if (m->str) {
        val = m->str;
        vlen = m->str_len;
    } else if (m->raw_len && (m->raw[0] == '-' || (m->raw[0] >= '0' && m->raw[0] <= '9') ||
                              m->raw[0] == 't' || m->raw[0] == 'f')) {
        val = m->raw; /* number, true, false as written */
        vlen = m->raw_len;
    } else {
        return; /* null, object, array: no tag */
    }
    size_t n = m->key_len + 1 + vlen;
    if (n > EVS_MAX_TAG_LEN) {
        d->rc = EVS_EINVAL;
        snprintf(d->msg, sizeof(d->msg), "tag derived from field \"%s\" would be %zu bytes, "
                 "over %d; do not derive tags from long values", r->tag_fields[f], n,
                 EVS_MAX_TAG_LEN);
        return;
    }
    if (memchr(val, '\0', vlen)) {
        d->rc = EVS_EINVAL;
        snprintf(d->msg, sizeof(d->msg), "field \"%s\" holds a string with U+0000, which "
                 "a tag cannot hold", r->tag_fields[f]);
        return;
    }
    if (evs__grow(&d->text, &d->text_cap, d->text_len + n + 1, 1) < 0 ||
        evs__grow(&d->offs, &d->offs_cap, d->noffs + 1, sizeof(size_t)) < 0) {
        d->rc = EVS_ENOMEM;
        snprintf(d->msg, sizeof(d->msg), "out of memory deriving tags");
        return;
    }
    char *p = d->text + d->text_len;
    memcpy(p, m->key, m->key_len);
    p[m->key_len] = ':';
    memcpy(p + m->key_len + 1, val, vlen);
    p[n] = '\0';
    d->offs[d->noffs++] = d->text_len;
    d->text_len += n + 1;
}

/*
 * Build *arena: copies of the parts and events with derived tags added.
 * Derived tags follow the explicit ones; a tag already present is not
 * added again.
 */
static int derive_tags(void **arena, evs_stream_append **parts_out,
                       const evs_append_request *r)
{
    derive_ctx d = {.req = r};
    size_t nev = 0;
    for (size_t p = 0; p < r->nparts; p++)
        nev += r->parts[p].nevents;
    /* pass 1: derived tags of every event, text back to back; per event
     * the number of derived tags */
    size_t *count = calloc(nev ? nev : 1, sizeof(size_t));
    if (!count)
        return evs__err(EVS_ENOMEM, "out of memory deriving tags");
    size_t k = 0;
    int rc = 0;
    for (size_t p = 0; p < r->nparts && !rc; p++)
        for (size_t i = 0; i < r->parts[p].nevents; i++, k++) {
            const evs_event_data *e = &r->parts[p].events[i];
            size_t before = d.noffs;
            if (e->content_type != EVS_CONTENT_JSON || e->data_len == 0)
                continue;
            const char *c = e->data;
            size_t j = 0;
            while (j < e->data_len && (c[j] == ' ' || c[j] == '\t' || c[j] == '\n' ||
                                       c[j] == '\r'))
                j++;
            if (j == e->data_len || c[j] != '{')
                continue; /* not an object: no derived tags */
            size_t where;
            char err[128];
            int jr = evs__json_object_items(e->data, e->data_len, derive_member, &d,
                                            &where, err, sizeof(err));
            if (jr == -2 || d.rc == EVS_ENOMEM) {
                rc = evs__err(EVS_ENOMEM, "out of memory deriving tags");
                break;
            }
            if (jr < 0) {
                rc = evs__err(EVS_EINVAL, "stream %s, event %zu: data is not valid JSON "
                              "(%s); tags cannot be derived from it",
                              r->parts[p].stream ? r->parts[p].stream : "(none)", i, err);
                break;
            }
            if (d.rc) {
                rc = evs__err(d.rc, "stream %s, event %zu: %s",
                              r->parts[p].stream ? r->parts[p].stream : "(none)", i, d.msg);
                break;
            }
            count[k] = d.noffs - before;
        }
    if (rc) {
        free(count);
        free(d.text);
        free(d.offs);
        return rc;
    }
    /* pass 2: one block: parts | events | tag pointer arrays | text */
    size_t ntagptr = 0;
    k = 0;
    for (size_t p = 0; p < r->nparts; p++)
        for (size_t i = 0; i < r->parts[p].nevents; i++, k++)
            ntagptr += r->parts[p].events[i].ntags + count[k];
    size_t sz = r->nparts * sizeof(evs_stream_append) + nev * sizeof(evs_event_data) +
                ntagptr * sizeof(char *) + d.text_len + 1;
    uint8_t *blk = malloc(sz);
    if (!blk) {
        free(count);
        free(d.text);
        free(d.offs);
        return evs__err(EVS_ENOMEM, "out of memory deriving tags");
    }
    evs_stream_append *np = (evs_stream_append *)blk;
    evs_event_data *ne = (evs_event_data *)(np + r->nparts);
    const char **tp = (const char **)(ne + nev);
    char *text = (char *)(tp + ntagptr);
    if (d.text_len)
        memcpy(text, d.text, d.text_len);
    k = 0;
    size_t o = 0;
    for (size_t p = 0; p < r->nparts; p++) {
        np[p] = r->parts[p];
        np[p].events = ne;
        for (size_t i = 0; i < r->parts[p].nevents; i++, k++) {
            const evs_event_data *e = &r->parts[p].events[i];
            *ne = *e;
            const char **tags = tp;
            size_t nt = 0;
            for (size_t t = 0; t < e->ntags; t++)
                tags[nt++] = e->tags[t];
            for (size_t t = 0; t < count[k]; t++, o++) {
                const char *dt = text + d.offs[o];
                size_t u = 0;
                while (u < nt && strcmp(tags[u], dt) != 0)
                    u++;
                if (u == nt)
                    tags[nt++] = dt;
            }
            ne->tags = tags;
            ne->ntags = nt;
            tp += nt;
            ne++;
        }
    }
    free(count);
    free(d.text);
    free(d.offs);
    *arena = blk;
    *parts_out = np;
    return 0;
}

/* ---- conflicts ------------------------------------------------------------ */

static void fmt_expected(char *buf, size_t n, int64_t ev)
{
    if (ev == EVS_ANY)
        snprintf(buf, n, "any");
    else if (ev == EVS_NO_STREAM)
        snprintf(buf, n, "no stream");
    else if (ev == EVS_STREAM_EXISTS)
        snprintf(buf, n, "stream exists");
    else
        snprintf(buf, n, "%lld", (long long)ev);
}

/* The message of an append the backend refused with EVS_ECONFLICT: every
 * part whose expected version failed, then every failed condition, as
 * the backend marked them in results[] and conflicts[]. */
static int conflict_message(const evs__append_req *r)
{
    char msg[1024];
    size_t mlen = 0, nfail = 0;
    msg[0] = '\0';
    for (size_t p = 0; p < r->nparts; p++) {
        const evs_append_result *x = &r->results[p];
        if (x->status != EVS_ECONFLICT)
            continue;
        char e[32];
        fmt_expected(e, sizeof(e), r->parts[p].expected_version);
        if (mlen < sizeof(msg))
            mlen += (size_t)snprintf(msg + mlen, sizeof(msg) - mlen,
                                     "%sexpected version %s but stream %s is at %lld%s",
                                     nfail ? "; " : "", e, r->parts[p].stream,
                                     (long long)x->stream_version,
                                     x->stream_version == EVS_NO_STREAM ? " (no stream)" : "");
        nfail++;
    }
    for (size_t c = 0; c < r->nconds; c++) {
        if (!r->conflicts[c])
            continue;
        if (mlen < sizeof(msg))
            mlen += (size_t)snprintf(msg + mlen, sizeof(msg) - mlen,
                                     "%scondition %zu: the event at position %" PRIu64
                                     " matches fail_if_events_match (after %" PRIu64 ")",
                                     nfail ? "; " : "", c, r->conflicts[c], r->conds[c].after);
        nfail++;
    }
    return evs__err(EVS_ECONFLICT, "%s", msg);
}

/* ---- append ------------------------------------------------------------ */

/* Per-thread scratch reused across calls: no allocation per append once
 * warm. The caller blocks until the backend is done with it. */
static _Thread_local evs__scratch tls_ids;
static _Thread_local evs__scratch tls_sorted;
static _Thread_local evs__scratch tls_results;
static _Thread_local evs__scratch tls_parts;
static _Thread_local evs__scratch tls_tomb;

static int cmp_uuid(const void *a, const void *b) { return memcmp(a, b, 16); }

int evs__cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static const char *part_name(const evs_stream_append *pa)
{
    return pa->stream ? pa->stream : "(no stream)";
}

/* Checks of the request that do not need derived tags. */
static int check_request(const evs_db *db, const evs_append_request *r, size_t nsystem,
                         unsigned flags, size_t *tenant_len, size_t *nevents)
{
    int rc;
    size_t streamless = 0;
    const char *why;
    if (r->version < 1 || r->version > EVS_APPEND_REQUEST_VERSION)
        return evs__err(EVS_EINVAL, "append: request version %u, this library knows 1..%d "
                        "(initialise with EVS_APPEND_REQUEST_INIT)", r->version,
                        EVS_APPEND_REQUEST_VERSION);
    if (!r->parts || r->nparts == 0)
        return evs__err(EVS_EINVAL, "append: no streams given (nparts is 0)");
    if (r->nparts > 65536)
        return evs__err(EVS_EINVAL, "append: %zu streams in one append, at most 65536",
                        r->nparts);
    if ((rc = evs__check_tenant(r->tenant, tenant_len)) < 0)
        return rc;
    if (r->nconditions > EVS_MAX_CONDITIONS)
        return evs__err(EVS_EINVAL, "append: %zu conditions, at most %d; merge their "
                        "queries into one (items are OR'ed)", r->nconditions,
                        EVS_MAX_CONDITIONS);
    if (r->nconditions && !r->conditions)
        return evs__err(EVS_EINVAL, "append: conditions is NULL but nconditions is %zu",
                        r->nconditions);
    for (size_t c = 0; c < r->nconditions; c++) {
        char what[48];
        snprintf(what, sizeof(what), "append condition %zu", c);
        if ((rc = evs__check_query(&r->conditions[c].fail_if_events_match, what)) < 0)
            return rc;
    }
    if (r->ntag_fields > EVS_MAX_TAG_FIELDS)
        return evs__err(EVS_EINVAL, "append: %zu tag fields, at most %d", r->ntag_fields,
                        EVS_MAX_TAG_FIELDS);
    if (r->ntag_fields && !r->tag_fields)
        return evs__err(EVS_EINVAL, "append: tag_fields is NULL but ntag_fields is %zu",
                        r->ntag_fields);
    for (size_t f = 0; f < r->ntag_fields; f++) {
        if ((why = evs__name_problem(r->tag_fields[f], EVS_MAX_TAG_LEN - 2)))
            return evs__err(EVS_EINVAL, "append: tag field %zu %s", f,
                            strcmp(why, "is longer than 256 bytes") ? why
                                                                   : "is longer than 254 bytes");
        if (r->tag_fields[f][0] == '$')
            return evs__err(EVS_EINVAL, "append: tag field \"%s\" starts with '$', which is "
                            "reserved", r->tag_fields[f]);
    }
    *nevents = 0;
    for (size_t p = 0; p < r->nparts; p++) {
        const evs_stream_append *pa = &r->parts[p];
        if (!pa->stream) {
            if (++streamless > 1)
                return evs__err(EVS_EINVAL, "append: more than one part without a stream; "
                                "put all events without a stream in one part");
            if (pa->expected_version != EVS_ANY)
                return evs__err(EVS_EINVAL, "append part %zu has no stream, so its "
                                "expected_version must be EVS_ANY (got %lld); use an "
                                "append condition instead", p, (long long)pa->expected_version);
        } else {
            if ((why = evs__name_problem(pa->stream, EVS_MAX_STREAM_LEN)))
                return evs__err(EVS_EINVAL, "append part %zu: stream name %s", p, why);
            if (pa->stream[0] == '$' && p + nsystem < r->nparts)
                return evs__err(EVS_EINVAL, "append part %zu: stream %s starts with '$', "
                                "which is reserved for the store's system streams "
                                "(checkpoints); choose another name", p, pa->stream);
            if ((rc = check_expected(pa->expected_version, pa->stream)) < 0)
                return rc;
        }
        if (!pa->events || pa->nevents == 0)
            return evs__err(EVS_EINVAL, "stream %s: no events to append (nevents is 0)",
                            part_name(pa));
        if (pa->nevents > (1u << 20))
            return evs__err(EVS_ETOOBIG, "stream %s: %zu events in one append, at most %u",
                            part_name(pa), pa->nevents, 1u << 20);
        for (size_t i = 0; i < pa->nevents; i++)
            if ((rc = check_event(db, part_name(pa), i, &pa->events[i], flags)) < 0)
                return rc;
        *nevents += pa->nevents;
    }
    return 0;
}

int evs_append_ex(evs_append_result *out, uint64_t *conflicts, evs_db *db,
                  const evs_append_request *r)
{
    evs_append_request req = EVS_APPEND_REQUEST_INIT;
    evs__clear_error();
    if (!db || !r)
        return evs__err(EVS_EINVAL, "append: %s is NULL", db ? "request" : "db");
    /* An older struct ends before the fields its version lacks: copy only
     * what it has, the rest stays as EVS_APPEND_REQUEST_INIT sets it. */
    _Static_assert(EVS_APPEND_REQUEST_VERSION == 3,
                   "a new request version: copy version 3 structs by their size below");
    if (r->version == 1)
        memcpy(&req, r, offsetof(evs_append_request, checkpoint));
    else if (r->version == 2)
        memcpy(&req, r, offsetof(evs_append_request, checkpoint_flags));
    else if (r->version == EVS_APPEND_REQUEST_VERSION)
        req = *r;
    else
        return evs__err(EVS_EINVAL, "append: request version %u, this library knows 1..%d "
                        "(initialise with EVS_APPEND_REQUEST_INIT)", r->version,
                        EVS_APPEND_REQUEST_VERSION);
    req.version = EVS_APPEND_REQUEST_VERSION;
    if (req.checkpoint_flags & ~EVS_CHECKPOINT_EXTERNAL)
        return evs__err(EVS_EINVAL, "append: unknown checkpoint_flags 0x%x (known: "
                        "EVS_CHECKPOINT_EXTERNAL 0x%x)", req.checkpoint_flags,
                        EVS_CHECKPOINT_EXTERNAL);
    if (req.checkpoint_flags && !req.checkpoint)
        return evs__err(EVS_EINVAL, "append: checkpoint_flags 0x%x but no checkpoint; name "
                        "the checkpoint (checkpoint) or leave the flags 0",
                        req.checkpoint_flags);
    if (req.checkpoint)
        return evs__count_conflict(db, evs__append_checkpointed(out, conflicts, db, &req));
    return evs__count_conflict(db, evs__append_ex(out, conflicts, db, &req, 0, 0));
}

int evs__append_ex(evs_append_result *out, uint64_t *conflicts, evs_db *db,
                   const evs_append_request *r, size_t nsystem, unsigned flags)
{
    int rc;
    size_t tenant_len, nevents = 0;
    void *arena = NULL, *sealed = NULL;
    if (db->opts.flags & EVS_OPEN_READONLY)
        return evs__err(EVS_EREADONLY, "append: the store is open read-only");
    if ((rc = check_request(db, r, nsystem, flags, &tenant_len, &nevents)) < 0)
        return rc;

    size_t nparts = r->nparts;
    const evs_stream_append *parts = r->parts;
    if (r->ntag_fields) {
        evs_stream_append *np = NULL;
        if ((rc = derive_tags(&arena, &np, r)) < 0)
            return rc;
        parts = np;
        /* the derived tags must fit the same limits */
        for (size_t p = 0; p < nparts && rc == 0; p++)
            for (size_t i = 0; i < parts[p].nevents; i++)
                if (parts[p].events[i].ntags > EVS_MAX_TAGS) {
                    rc = evs__err(EVS_EINVAL, "stream %s, event %zu: %zu tags with the "
                                  "derived ones, at most %d allowed", part_name(&parts[p]),
                                  i, parts[p].events[i].ntags, EVS_MAX_TAGS);
                    break;
                }
        if (rc < 0)
            goto out;
    }
    /* streamless parts reach the backend as stream "" */
    for (size_t p = 0; p < nparts; p++)
        if (!parts[p].stream) {
            evs_stream_append *cp = evs__scratch_get(&tls_parts, nparts * sizeof(*cp));
            if (!cp) {
                rc = evs__err(EVS_ENOMEM, "append: out of memory");
                goto out;
            }
            memcpy(cp, parts, nparts * sizeof(*cp));
            cp[p].stream = "";
            parts = cp;
            break;
        }

    /* Scratch layout: ids[nevents] | id_given[nevents] | stream_lens[nparts] */
    size_t off_given = nevents * sizeof(evs_uuid);
    size_t off_lens = (off_given + nevents + 7) & ~(size_t)7;
    size_t off_conf = off_lens + nparts * sizeof(size_t);
    uint8_t *s = evs__scratch_get(&tls_ids, off_conf + r->nconditions * sizeof(uint64_t));
    if (!s) {
        rc = evs__err(EVS_ENOMEM, "append: out of memory");
        goto out;
    }
    evs_uuid *ids = (evs_uuid *)s;
    uint8_t *given = s + off_given;
    size_t *lens = (size_t *)(s + off_lens);
    size_t k = 0;
    for (size_t p = 0; p < nparts; p++) {
        lens[p] = strlen(parts[p].stream);
        for (size_t i = 0; i < parts[p].nevents; i++, k++) {
            const evs_event_data *e = &parts[p].events[i];
            given[k] = !evs_uuid_is_nil(&e->id);
            if (given[k])
                ids[k] = e->id;
            else
                evs_uuid_generate(&ids[k]);
        }
    }

    /* The same id twice in one append, or the same stream in two parts,
     * cannot be what the caller meant. */
    if (nevents > 1) {
        evs_uuid *sorted = evs__scratch_get(&tls_sorted, nevents * sizeof(evs_uuid));
        if (!sorted) {
            rc = evs__err(EVS_ENOMEM, "append: out of memory");
            goto out;
        }
        memcpy(sorted, ids, nevents * sizeof(evs_uuid));
        qsort(sorted, nevents, sizeof(evs_uuid), cmp_uuid);
        for (size_t i = 1; i < nevents; i++)
            if (memcmp(&sorted[i - 1], &sorted[i], 16) == 0) {
                char t[37];
                evs_uuid_format(t, &sorted[i]);
                rc = evs__err(EVS_EINVAL, "append: event id %s given twice in one append", t);
                goto out;
            }
    }
    if (nparts > 1) {
        const char **names = evs__scratch_get(&tls_sorted, nparts * sizeof(char *));
        if (!names) {
            rc = evs__err(EVS_ENOMEM, "append: out of memory");
            goto out;
        }
        for (size_t p = 0; p < nparts; p++)
            names[p] = parts[p].stream;
        qsort(names, nparts, sizeof(char *), evs__cmp_str_ptr);
        for (size_t p = 1; p < nparts; p++)
            if (names[p][0] && strcmp(names[p - 1], names[p]) == 0) {
                rc = evs__err(EVS_EINVAL,
                              "append: stream %s appears in two parts; put all its "
                              "events in one part", names[p]);
                goto out;
            }
    }

    /* events with a subject: data (and metadata) sealed under the
     * subject's key, tag "$subject:SUBJECT" added (crypto.c) */
    if ((rc = evs__crypto_seal(&sealed, &parts, db, r->tenant ? r->tenant : "", parts,
                               nparts, ids)) < 0)
        goto out;

    evs_append_result *results = out;
    if (!results) {
        results = evs__scratch_get(&tls_results, nparts * sizeof(*results));
        if (!results) {
            rc = evs__err(EVS_ENOMEM, "append: out of memory");
            goto out;
        }
    }
    memset(results, 0, nparts * sizeof(*results));
    if (!conflicts)
        conflicts = (uint64_t *)(s + off_conf);
    if (r->nconditions)
        memset(conflicts, 0, r->nconditions * sizeof(*conflicts));

    /* a tombstone part: one "$streamDeleted" event of a stream, which only
     * lifecycle.c (and a restore of its events) may write */
    uint8_t *tomb = NULL;
    if (flags & (EVS__APPEND_LIFECYCLE | EVS__APPEND_RESTORE))
        for (size_t p = 0; p < nparts; p++)
            if (lens[p] > 0 && parts[p].stream[0] != '$' && parts[p].nevents == 1 &&
                strcmp(parts[p].events[0].type, EVS__TOMBSTONE_TYPE) == 0) {
                if (!tomb) {
                    if (!(tomb = evs__scratch_get(&tls_tomb, nparts))) {
                        rc = evs__err(EVS_ENOMEM, "append: out of memory");
                        goto out;
                    }
                    memset(tomb, 0, nparts);
                }
                tomb[p] = 1;
            }
    evs__append_req req = {
        .tombstone = tomb,
        .tenant = r->tenant ? r->tenant : "",
        .tenant_len = tenant_len,
        .parts = parts,
        .nparts = nparts,
        .nevents = nevents,
        .ids = ids,
        .id_given = given,
        .stream_lens = lens,
        .results = results,
        .conds = r->conditions,
        .nconds = r->nconditions,
        .conflicts = conflicts,
    };
    rc = db->ops->append(db, &req);
    for (size_t p = 0; rc == EVS_ECONFLICT && p < nparts; p++)
        if (results[p].status == EVS_ECONFLICT &&
            results[p].stream_version == EVS__TOMBSTONE_VERSION)
            rc = evs__err(EVS_EDELETED, "append: stream %s is deleted (tombstoned): it can "
                          "never be written again; nothing was written", parts[p].stream);
    if (rc == EVS_ECONFLICT)
        rc = conflict_message(&req);
    if (rc == 0) {
        /* evs_metrics: one committed request; a retry wrote nothing */
        atomic_fetch_add_explicit(&db->metrics.appends, 1, memory_order_relaxed);
        if (!req.retried)
            atomic_fetch_add_explicit(&db->metrics.events, nevents, memory_order_relaxed);
    }
out:
    free(arena);
    free(sealed);
    return rc;
}

int evs_append_multi(evs_append_result *out, evs_db *db, const char *tenant,
                     const evs_stream_append *parts, size_t nparts)
{
    evs_append_request r = EVS_APPEND_REQUEST_INIT;
    r.tenant = tenant;
    r.parts = parts;
    r.nparts = nparts;
    /* evs_append_multi has no streamless parts */
    for (size_t p = 0; parts && p < nparts; p++)
        if (!parts[p].stream)
            return evs__err(EVS_EINVAL, "append part %zu: stream name is NULL", p);
    return evs_append_ex(out, NULL, db, &r);
}

/* ---- restoring the store's lifecycle events (lifecycle.c) ---------------- */

/* The shapes lifecycle.c writes and reads back; a restored event that
 * is not in them would make every later read of its stream's metadata
 * (or of the whole tenant, for "$lifecycle") fail with EVS_ECORRUPT. */

typedef struct restore_meta_walk {
    const char *bad; /* a "$maxCount", "$maxAge" or "$tb" that is not an
                        integer >= 0 of at most 18 digits */
} restore_meta_walk;

static void restore_meta_item(void *ctx, const evs__json_item *item)
{
    restore_meta_walk *w = ctx;
    static const char *const known[] = {"$maxCount", "$maxAge", "$tb"};
    for (int k = 0; k < 3; k++) {
        if (item->key_len != strlen(known[k]) || memcmp(item->key, known[k], item->key_len))
            continue;
        int ok = item->raw_len > 0 && item->raw_len <= 18;
        for (size_t i = 0; ok && i < item->raw_len; i++)
            ok = item->raw[i] >= '0' && item->raw[i] <= '9';
        if (!ok && !w->bad)
            w->bad = known[k];
    }
}

/* An event of a "$$STREAM" metadata stream: type "$metadata", JSON data
 * that is an object whose store keys are integers >= 0. */
static int restore_check_meta(const evs_stream_append *pa, size_t p, size_t i)
{
    const evs_event_data *e = &pa->events[i];
    restore_meta_walk w = {NULL};
    size_t where;
    char err[128];
    int jr;
    if (!e->type || strcmp(e->type, EVS__METADATA_TYPE) != 0 ||
        e->content_type != EVS_CONTENT_JSON)
        return evs__err(EVS_EINVAL, "restore_append part %zu: stream %s, event %zu: a stream "
                        "metadata event has type \"%s\" and JSON data, not type \"%s\" with "
                        "%s data", p, pa->stream, i, EVS__METADATA_TYPE,
                        e->type ? e->type : "(NULL)",
                        e->content_type == EVS_CONTENT_BINARY ? "binary" : "JSON");
    if (!e->data || e->data_len == 0)
        return evs__err(EVS_EINVAL, "restore_append part %zu: stream %s, event %zu: a stream "
                        "metadata event's data is a JSON object, not empty", p, pa->stream, i);
    jr = evs__json_object_items(e->data, e->data_len, restore_meta_item, &w, &where, err,
                                sizeof(err));
    if (jr == -2)
        return evs__err(EVS_ENOMEM, "restore_append: out of memory checking stream metadata");
    if (jr != 0)
        return evs__err(EVS_EINVAL, "restore_append part %zu: stream %s, event %zu: stream "
                        "metadata is not a JSON object: %s", p, pa->stream, i, err);
    if (w.bad)
        return evs__err(EVS_EINVAL, "restore_append part %zu: stream %s, event %zu: stream "
                        "metadata key \"%s\" must be an integer >= 0", p, pa->stream, i, w.bad);
    return 0;
}

/* An event of a tenant's "$lifecycle" stream: type "$lifecycle", binary,
 * u8 format 1, u8 flags, 6 bytes, three i64 LE >= 0, then a stream name
 * that is not a system stream's (the flags are lifecycle.c's to read). */
static int restore_check_lc(const evs_stream_append *pa, size_t p, size_t i)
{
    const evs_event_data *e = &pa->events[i];
    const uint8_t *d = e->data;
    if (!e->type || strcmp(e->type, EVS__LC_TYPE) != 0 ||
        e->content_type != EVS_CONTENT_BINARY || !d || e->data_len <= EVS__LC_REC_FIXED ||
        e->data_len - EVS__LC_REC_FIXED > EVS_MAX_STREAM_LEN)
        return evs__err(EVS_EINVAL, "restore_append part %zu: stream %s, event %zu: a "
                        "lifecycle record has type \"%s\" and %d to %d bytes of binary data, "
                        "not type \"%s\" with %zu bytes of %s", p, pa->stream, i,
                        EVS__LC_TYPE, EVS__LC_REC_FIXED + 1,
                        EVS__LC_REC_FIXED + EVS_MAX_STREAM_LEN, e->type ? e->type : "(NULL)",
                        e->data_len, e->content_type == EVS_CONTENT_BINARY ? "binary" : "JSON");
    int ok = d[0] == EVS__LC_REC_FORMAT;
    for (int f = 0; ok && f < 3; f++)
        ok = (int64_t)evs__get_le64(d + 8 + 8 * f) >= 0;
    size_t sl = e->data_len - EVS__LC_REC_FIXED;
    const char *name = (const char *)d + EVS__LC_REC_FIXED;
    ok = ok && name[0] != '$' && !memchr(name, '\0', sl);
    if (ok) {
        char s[EVS_MAX_STREAM_LEN + 1];
        memcpy(s, name, sl);
        s[sl] = '\0';
        ok = evs__name_problem(s, EVS_MAX_STREAM_LEN) == NULL;
    }
    if (!ok)
        return evs__err(EVS_EINVAL, "restore_append part %zu: stream %s, event %zu: not a "
                        "lifecycle record of format %d (three counts >= 0 and a stream name "
                        "after 8 bytes, as evs_read_log returns them)", p, pa->stream, i,
                        EVS__LC_REC_FORMAT);
    return 0;
}

/* Where the store's own event types may be restored: "$metadata" in a
 * "$$STREAM" part or among events of no stream (the announcement),
 * "$streamDeleted" alone in a part of the stream it deletes (so that
 * evs__append_ex stores it as the tombstone). */
static int restore_check_types(const evs_stream_append *pa, size_t p)
{
    for (size_t i = 0; pa->events && i < pa->nevents; i++) {
        const char *type = pa->events[i].type;
        if (!type)
            continue; /* check_request names it */
        if (strcmp(type, EVS__TOMBSTONE_TYPE) == 0 &&
            (!pa->stream || pa->stream[0] == '$' || pa->nevents != 1))
            return evs__err(EVS_EINVAL, "restore_append part %zu: event %zu is a tombstone "
                            "(type \"%s\"), which must be the only event of its part, in the "
                            "stream it deletes (this part: %s, %zu events)", p, i,
                            EVS__TOMBSTONE_TYPE, pa->stream ? pa->stream : "no stream",
                            pa->nevents);
        if (strcmp(type, EVS__METADATA_TYPE) == 0 && pa->stream &&
            strncmp(pa->stream, EVS__META_PREFIX, strlen(EVS__META_PREFIX)) != 0)
            return evs__err(EVS_EINVAL, "restore_append part %zu: event %zu has type \"%s\", "
                            "which only a stream's metadata stream (\"%sSTREAM\") or an event "
                            "of no stream may have, not stream %s", p, i, EVS__METADATA_TYPE,
                            EVS__META_PREFIX, pa->stream);
    }
    return 0;
}

int evs_restore_append(evs_append_result *out, evs_db *db, const char *tenant,
                       const evs_stream_append *parts, size_t nparts)
{
    evs_append_request r = EVS_APPEND_REQUEST_INIT;
    evs__clear_error();
    if (!db)
        return evs__err(EVS_EINVAL, "restore_append: db is NULL");
    r.tenant = tenant;
    r.parts = parts;
    r.nparts = nparts;
    /* The system streams a log holds, each in the shape its reader
     * (checkpoint.c, lifecycle.c) relies on; check_request checks the
     * rest. */
    for (size_t p = 0; parts && p < nparts; p++) {
        const evs_stream_append *pa = &parts[p];
        int rc;
        if ((rc = restore_check_types(pa, p)) < 0)
            return rc;
        if (!pa->stream || pa->stream[0] != '$')
            continue;
        if (strncmp(pa->stream, EVS__META_PREFIX, strlen(EVS__META_PREFIX)) == 0 &&
            pa->stream[strlen(EVS__META_PREFIX)] != '\0') {
            for (size_t i = 0; pa->events && i < pa->nevents; i++)
                if ((rc = restore_check_meta(pa, p, i)) < 0)
                    return rc;
            continue;
        }
        if (strcmp(pa->stream, EVS__LC_STREAM) == 0) {
            for (size_t i = 0; pa->events && i < pa->nevents; i++)
                if ((rc = restore_check_lc(pa, p, i)) < 0)
                    return rc;
            continue;
        }
        size_t pl = strlen(EVS__CHECKPOINT_PREFIX);
        char stream[sizeof(EVS__CHECKPOINT_PREFIX) + EVS_MAX_CHECKPOINT_NAME_LEN];
        if (strncmp(pa->stream, EVS__CHECKPOINT_PREFIX, pl) != 0)
            return evs__err(EVS_EINVAL, "restore_append part %zu: stream %s starts with '$' "
                            "but is not a system stream this library knows (only "
                            "\"%sNAME\", checkpoints; \"%sSTREAM\", stream metadata; "
                            "\"%s\", lifecycle records)", p, pa->stream,
                            EVS__CHECKPOINT_PREFIX, EVS__META_PREFIX, EVS__LC_STREAM);
        if ((rc = evs__checkpoint_stream(stream, sizeof(stream), pa->stream + pl,
                                         "restore_append")) < 0)
            return rc;
        for (size_t i = 0; pa->events && i < pa->nevents; i++) {
            const evs_event_data *e = &pa->events[i];
            if (!e->type || strcmp(e->type, EVS__CHECKPOINT_TYPE) != 0 || e->data_len != 8 ||
                !e->data || e->content_type != EVS_CONTENT_BINARY)
                return evs__err(EVS_EINVAL, "restore_append: stream %s, event %zu: a "
                                "checkpoint event has type \"%s\" and 8 bytes of binary "
                                "data (the token), not type \"%s\" with %zu bytes of %s",
                                pa->stream, i, EVS__CHECKPOINT_TYPE,
                                e->type ? e->type : "(NULL)", e->data_len,
                                e->content_type == EVS_CONTENT_BINARY ? "binary" : "JSON");
        }
    }
    if (db->opts.flags & EVS_OPEN_READONLY)
        return evs__err(EVS_EREADONLY, "restore_append: the store is open read-only");
    return evs__count_conflict(db, evs__append_ex(out, NULL, db, &r, nparts,
                                                  EVS__APPEND_RESTORE));
}

int evs_append(evs_append_result *out, evs_db *db, const char *tenant,
               const char *stream, int64_t expected_version,
               const evs_event_data *events, size_t nevents)
{
    evs_stream_append part = {stream, expected_version, events, nevents};
    return evs_append_multi(out, db, tenant, &part, 1);
}

int evs_dcb_append(evs_append_result *out, uint64_t *conflict, evs_db *db,
                   const char *tenant, const evs_event_data *events, size_t nevents,
                   const evs_append_condition *condition)
{
    evs_stream_append part = {NULL, EVS_ANY, events, nevents};
    evs_append_request r = EVS_APPEND_REQUEST_INIT;
    uint64_t c = 0;
    r.tenant = tenant;
    r.parts = &part;
    r.nparts = 1;
    r.conditions = condition;
    r.nconditions = condition ? 1 : 0;
    int rc = evs_append_ex(out, &c, db, &r);
    if (conflict)
        *conflict = c;
    return rc;
}

/* ---- metrics ------------------------------------------------------------ */

int evs_metrics_get(evs_metrics *out, evs_db *db)
{
    evs__clear_error();
    if (!out || !db)
        return evs__err(EVS_EINVAL, "metrics_get: %s is NULL", out ? "db" : "out");
    if (out->version != EVS_METRICS_VERSION)
        return evs__err(EVS_EINVAL, "metrics_get: version %u, this library knows %d "
                        "(set out->version = EVS_METRICS_VERSION)", out->version,
                        EVS_METRICS_VERSION);
    const evs__metrics *m = &db->metrics;
#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)
    out->appends = LOAD(m->appends);
    out->events = LOAD(m->events);
    out->conflicts = LOAD(m->conflicts);
    out->groups = LOAD(m->groups);
    out->syncs = LOAD(m->syncs);
    out->sync_ns = LOAD(m->sync_ns);
    for (int i = 0; i < EVS_METRICS_BUCKETS; i++) {
        out->group_size_hist[i] = LOAD(m->group_size_hist[i]);
        out->sync_hist[i] = LOAD(m->sync_hist[i]);
    }
#undef LOAD
    return 0;
}
