/*
 * api.c -- the public functions: argument validation, then dispatch to the
 * backend. Every check here runs in the caller's thread, before anything
 * reaches the writer, so a rejected call writes nothing.
 */
#include "core/internal.h"
#include "util/json.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- open / close ------------------------------------------------------ */

int evs_open(evs_db **out, const char *uri, const evs_open_options *opts)
{
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    evs__clear_error();
    if (!out)
        return evs__err(EVS_EINVAL, "evs_open: out is NULL");
    *out = NULL;
    if (!uri || !*uri)
        return evs__err(EVS_EINVAL, "evs_open: empty store uri; give a directory path");
    if (opts) {
        if (opts->version != EVS_OPEN_OPTIONS_VERSION)
            return evs__err(EVS_EINVAL,
                            "evs_open: options version %u, this library knows %d "
                            "(initialise with EVS_OPEN_OPTIONS_INIT)",
                            opts->version, EVS_OPEN_OPTIONS_VERSION);
        o = *opts;
    }
    if (o.segment_size == 0)
        o.segment_size = EVS_DEFAULT_SEGMENT_SIZE;
    if (o.segment_size < (1u << 20) || o.segment_size > (1u << 30))
        return evs__err(EVS_EINVAL,
                        "evs_open: segment_size %u out of range (1 MiB .. 1 GiB)",
                        o.segment_size);
    /* One event's record (data, metadata, names, tags and a 128-byte
     * header) must fit in a segment: keep 64 KiB for everything but data
     * and metadata. */
    uint32_t room = o.segment_size - (64u << 10);
    if (o.max_event_size == 0)
        o.max_event_size = EVS_DEFAULT_MAX_EVENT_SIZE < room ? EVS_DEFAULT_MAX_EVENT_SIZE : room;
    if (o.max_event_size > room)
        return evs__err(EVS_EINVAL,
                        "evs_open: max_event_size %u does not fit in a segment of %u "
                        "bytes (at most %u); raise segment_size or lower max_event_size",
                        o.max_event_size, o.segment_size, room);
    if (o.flags & ~(EVS_OPEN_CREATE | EVS_OPEN_READONLY))
        return evs__err(EVS_EINVAL, "evs_open: unknown flags 0x%x", o.flags);

    if (strncmp(uri, "postgresql://", 13) == 0 || strncmp(uri, "postgres://", 11) == 0)
        return evs__err(EVS_EINVAL,
                        "evs_open: the PostgreSQL backend is not available yet "
                        "in this build (%s)", uri);
    return evs__embedded_open(out, uri, &o);
}

int evs_close(evs_db *db)
{
    if (!db)
        return 0;
    return db->ops->close(db);
}

int evs_uuid_parse(evs_uuid *out, const char *text)
{
    evs__clear_error();
    if (!out || !text)
        return evs__err(EVS_EINVAL, "uuid_parse: NULL argument");
    if (evs__uuid_parse(out, text) != 0)
        return evs__err(EVS_EINVAL, "\"%.64s\" is not a UUID (expected 36 characters "
                        "like 01a2011e-961d-775e-8f45-a0207a72a97d)", text);
    return 0;
}

/* ---- validation -------------------------------------------------------- */

static int check_tenant(const char *tenant, size_t *len)
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
               "name_problem's message says 256");
static const char *name_problem(const char *s, size_t max)
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

static int check_stream(const char *stream)
{
    const char *why = name_problem(stream, EVS_MAX_STREAM_LEN);
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
                       const evs_event_data *e)
{
    int rc;
    const char *why;
    if ((why = name_problem(e->type, EVS_MAX_TYPE_LEN)))
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
                        "the limit of %u (open option max_event_size)",
                        stream, idx, e->data_len + e->metadata_len,
                        db->opts.max_event_size);
    if (e->ntags > EVS_MAX_TAGS)
        return evs__err(EVS_EINVAL, "stream %s, event %zu: %zu tags, at most %d allowed",
                        stream, idx, e->ntags, EVS_MAX_TAGS);
    if (e->ntags > 0 && !e->tags)
        return evs__err(EVS_EINVAL, "stream %s, event %zu: tags is NULL but ntags is %zu",
                        stream, idx, e->ntags);
    for (size_t t = 0; t < e->ntags; t++) {
        if ((why = name_problem(e->tags[t], EVS_MAX_TAG_LEN)))
            return evs__err(EVS_EINVAL, "stream %s, event %zu: tag %zu %s", stream, idx,
                            t, why);
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
    if (db->opts.validate_json) {
        if (e->content_type == EVS_CONTENT_JSON && e->data_len > 0 &&
            (rc = check_json("data", stream, idx, e->data, e->data_len)) < 0)
            return rc;
        if (e->metadata_len > 0 &&
            (rc = check_json("metadata", stream, idx, e->metadata, e->metadata_len)) < 0)
            return rc;
    }
    return 0;
}

/* ---- append ------------------------------------------------------------ */

/* Per-thread scratch reused across calls: no allocation per append once
 * warm. The caller blocks until the backend is done with it. */
static _Thread_local evs__scratch tls_ids;
static _Thread_local evs__scratch tls_sorted;
static _Thread_local evs__scratch tls_results;

static int cmp_uuid(const void *a, const void *b) { return memcmp(a, b, 16); }

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int evs_append_multi(evs_append_result *out, evs_db *db, const char *tenant,
                     const evs_stream_append *parts, size_t nparts)
{
    int rc;
    size_t tenant_len, nevents = 0;
    evs__clear_error();
    if (!db)
        return evs__err(EVS_EINVAL, "append: db is NULL");
    if (db->opts.flags & EVS_OPEN_READONLY)
        return evs__err(EVS_EREADONLY, "append: the store is open read-only");
    if (!parts || nparts == 0)
        return evs__err(EVS_EINVAL, "append: no streams given (nparts is 0)");
    if (nparts > 65536)
        return evs__err(EVS_EINVAL, "append: %zu streams in one append, at most 65536",
                        nparts);
    if ((rc = check_tenant(tenant, &tenant_len)) < 0)
        return rc;

    for (size_t p = 0; p < nparts; p++) {
        const evs_stream_append *pa = &parts[p];
        const char *why = name_problem(pa->stream, EVS_MAX_STREAM_LEN);
        if (why)
            return evs__err(EVS_EINVAL, "append part %zu: stream name %s", p, why);
        if ((rc = check_expected(pa->expected_version, pa->stream)) < 0)
            return rc;
        if (!pa->events || pa->nevents == 0)
            return evs__err(EVS_EINVAL, "stream %s: no events to append (nevents is 0)",
                            pa->stream);
        if (pa->nevents > (1u << 20))
            return evs__err(EVS_ETOOBIG, "stream %s: %zu events in one append, at most %u",
                            pa->stream, pa->nevents, 1u << 20);
        for (size_t i = 0; i < pa->nevents; i++)
            if ((rc = check_event(db, pa->stream, i, &pa->events[i])) < 0)
                return rc;
        nevents += pa->nevents;
    }

    /* Scratch layout: ids[nevents] | id_given[nevents] | stream_lens[nparts] */
    size_t off_given = nevents * sizeof(evs_uuid);
    size_t off_lens = (off_given + nevents + 7) & ~(size_t)7;
    uint8_t *s = evs__scratch_get(&tls_ids, off_lens + nparts * sizeof(size_t));
    if (!s)
        return evs__err(EVS_ENOMEM, "append: out of memory");
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
        if (!sorted)
            return evs__err(EVS_ENOMEM, "append: out of memory");
        memcpy(sorted, ids, nevents * sizeof(evs_uuid));
        qsort(sorted, nevents, sizeof(evs_uuid), cmp_uuid);
        for (size_t i = 1; i < nevents; i++)
            if (memcmp(&sorted[i - 1], &sorted[i], 16) == 0) {
                char t[37];
                evs_uuid_format(t, &sorted[i]);
                return evs__err(EVS_EINVAL, "append: event id %s given twice in one append", t);
            }
    }
    if (nparts > 1) {
        const char **names = evs__scratch_get(&tls_sorted, nparts * sizeof(char *));
        if (!names)
            return evs__err(EVS_ENOMEM, "append: out of memory");
        for (size_t p = 0; p < nparts; p++)
            names[p] = parts[p].stream;
        qsort(names, nparts, sizeof(char *), cmp_str_ptr);
        for (size_t p = 1; p < nparts; p++)
            if (strcmp(names[p - 1], names[p]) == 0)
                return evs__err(EVS_EINVAL,
                                "append: stream %s appears in two parts; put all its "
                                "events in one part", names[p]);
    }

    evs_append_result *results = out;
    if (!results) {
        results = evs__scratch_get(&tls_results, nparts * sizeof(*results));
        if (!results)
            return evs__err(EVS_ENOMEM, "append: out of memory");
    }
    memset(results, 0, nparts * sizeof(*results));

    evs__append_req req = {
        .tenant = tenant ? tenant : "",
        .tenant_len = tenant_len,
        .parts = parts,
        .nparts = nparts,
        .nevents = nevents,
        .ids = ids,
        .id_given = given,
        .stream_lens = lens,
        .results = results,
    };
    return db->ops->append(db, &req);
}

int evs_append(evs_append_result *out, evs_db *db, const char *tenant,
               const char *stream, int64_t expected_version,
               const evs_event_data *events, size_t nevents)
{
    evs_stream_append part = {stream, expected_version, events, nevents};
    return evs_append_multi(out, db, tenant, &part, 1);
}

/* ---- reads ------------------------------------------------------------- */

int evs_read_stream(evs_iter **out, evs_db *db, const char *tenant,
                    const char *stream, int64_t from_version,
                    evs_direction dir, uint64_t limit)
{
    int rc;
    size_t tl;
    evs__clear_error();
    if (!out)
        return evs__err(EVS_EINVAL, "read_stream: out is NULL");
    *out = NULL;
    if (!db)
        return evs__err(EVS_EINVAL, "read_stream: db is NULL");
    if ((rc = check_tenant(tenant, &tl)) < 0)
        return rc;
    if ((rc = check_stream(stream)) < 0)
        return rc;
    if (dir != EVS_FORWARD && dir != EVS_BACKWARD)
        return evs__err(EVS_EINVAL, "read_stream: unknown direction %d", (int)dir);
    if (dir == EVS_FORWARD && from_version < 0)
        return evs__err(EVS_EINVAL,
                        "read_stream: forward reads start at a version >= 0, got %lld",
                        (long long)from_version);
    if (dir == EVS_BACKWARD && from_version < 0 && from_version != EVS_END)
        return evs__err(EVS_EINVAL,
                        "read_stream: backward reads start at a version >= 0 or "
                        "EVS_END, got %lld", (long long)from_version);
    return db->ops->read_stream(out, db, tenant ? tenant : "", stream, from_version,
                                dir, limit);
}

int evs_read_all(evs_iter **out, evs_db *db, const char *tenant,
                 uint64_t from_position, uint64_t limit)
{
    int rc;
    size_t tl;
    evs__clear_error();
    if (!out)
        return evs__err(EVS_EINVAL, "read_all: out is NULL");
    *out = NULL;
    if (!db)
        return evs__err(EVS_EINVAL, "read_all: db is NULL");
    if ((rc = check_tenant(tenant, &tl)) < 0)
        return rc;
    return db->ops->read_all(out, db, tenant, from_position ? from_position : 1, limit);
}

int evs_iter_next(const evs_event **ev, evs_iter *it)
{
    if (!ev || !it)
        return evs__err(EVS_EINVAL, "iter_next: NULL argument");
    return it->db->ops->iter_next(ev, it);
}

void evs_iter_free(evs_iter *it)
{
    if (it)
        it->db->ops->iter_free(it);
}

int evs_stream_version(int64_t *out, evs_db *db, const char *tenant,
                       const char *stream)
{
    int rc;
    size_t tl;
    evs__clear_error();
    if (!out || !db)
        return evs__err(EVS_EINVAL, "stream_version: NULL argument");
    if ((rc = check_tenant(tenant, &tl)) < 0)
        return rc;
    if ((rc = check_stream(stream)) < 0)
        return rc;
    return db->ops->stream_version(out, db, tenant ? tenant : "", stream);
}

int evs_head_position(uint64_t *out, evs_db *db, const char *tenant)
{
    int rc;
    size_t tl;
    evs__clear_error();
    if (!out || !db)
        return evs__err(EVS_EINVAL, "head_position: NULL argument");
    if ((rc = check_tenant(tenant, &tl)) < 0)
        return rc;
    return db->ops->head_position(out, db, tenant);
}

int evs_stats_get(evs_stats *out, evs_db *db)
{
    evs__clear_error();
    if (!out || !db)
        return evs__err(EVS_EINVAL, "stats: NULL argument");
    memset(out, 0, sizeof(*out));
    return db->ops->stats(out, db);
}

int evs_verify(uint64_t *checked, evs_db *db, evs_verify_fn cb, void *ctx)
{
    evs__clear_error();
    if (!db)
        return evs__err(EVS_EINVAL, "verify: db is NULL");
    return db->ops->verify(checked, db, cb, ctx);
}
