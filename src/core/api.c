/*
 * api.c -- open and close, and the reads: argument validation, then
 * dispatch to the backend. Every check runs in the caller's thread, so a
 * rejected call touches nothing. Appends are in append.c.
 */
#include "core/front.h"
#include "util/json.h"
#include "util/util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int evs__check_db_out(const void *out, const evs_db *db, const char *what)
{
    if (!out || !db)
        return evs__err(EVS_EINVAL, "%s: %s is NULL", what, out ? "db" : "out");
    return 0;
}

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
        if (opts->version < 1 || opts->version > EVS_OPEN_OPTIONS_VERSION)
            return evs__err(EVS_EINVAL,
                            "evs_open: options version %u, this library knows 1..%d "
                            "(initialise with EVS_OPEN_OPTIONS_INIT)",
                            opts->version, EVS_OPEN_OPTIONS_VERSION);
        /* older structs end before the fields their version lacks */
        if (opts->version == 1)
            memcpy(&o, opts, offsetof(evs_open_options, snapshot_keep));
        else if (opts->version == 2)
            memcpy(&o, opts, offsetof(evs_open_options, recovery_notice));
        else if (opts->version == 3)
            memcpy(&o, opts, offsetof(evs_open_options, busy_timeout_ms));
        else if (opts->version == 4)
            memcpy(&o, opts, offsetof(evs_open_options, read_replica_uri));
        else
            o = *opts;
        o.version = EVS_OPEN_OPTIONS_VERSION;
    }
    if (o.snapshot_keep == 0)
        o.snapshot_keep = EVS_DEFAULT_SNAPSHOT_KEEP;
    if (o.snapshot_keep > 1000)
        return evs__err(EVS_EINVAL, "evs_open: snapshot_keep %u out of range (1..1000; "
                        "evs --snapshot-keep, EVS_SNAPSHOT_KEEP)", o.snapshot_keep);
    if (o.segment_size == 0)
        o.segment_size = EVS_DEFAULT_SEGMENT_SIZE;
    if (o.segment_size < (1u << 20) || o.segment_size > (1u << 30))
        return evs__err(EVS_EINVAL,
                        "evs_open: segment_size %u out of range (1 MiB .. 1 GiB; "
                        "evs --segment-size, EVS_SEGMENT_SIZE)",
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
                        "bytes (at most %u); raise segment_size (evs --segment-size, "
                        "EVS_SEGMENT_SIZE) or lower max_event_size (evs "
                        "--max-event-size, EVS_MAX_EVENT_SIZE)",
                        o.max_event_size, o.segment_size, room);
    if (o.flags & ~(EVS_OPEN_CREATE | EVS_OPEN_READONLY))
        return evs__err(EVS_EINVAL, "evs_open: unknown flags 0x%x", o.flags);

    int is_pg = strncmp(uri, "postgresql://", 13) == 0 || strncmp(uri, "postgres://", 11) == 0;
    if (o.read_replica_uri) {
        const char *r = o.read_replica_uri;
        if (!is_pg)
            return evs__err(EVS_EINVAL, "evs_open: read_replica_uri is for PostgreSQL stores; "
                            "%s is not a postgresql:// URI (leave read_replica_uri NULL)", uri);
        if (strncmp(r, "postgresql://", 13) != 0 && strncmp(r, "postgres://", 11) != 0)
            return evs__err(EVS_EINVAL, "evs_open: read_replica_uri \"%s\" is not a "
                            "postgresql:// URI; give the libpq URI of a hot standby", r);
    }

    int rc;
    if (is_pg) {
#if EVS_WITH_POSTGRES
        rc = evs__postgres_open(out, uri, &o);
#else
        return evs__err(EVS_EINVAL, "evs_open: %s is a PostgreSQL URI, but this build of "
                        "evstore has no PostgreSQL backend (built with "
                        "-DEVS_WITH_POSTGRES=OFF); rebuild with it ON, or give a directory",
                        uri);
#endif
    } else {
        rc = evs__embedded_open(out, uri, &o);
    }
    if (rc == 0 && (rc = evs__backend_check((*out)->ops)) < 0) {
        /* the handle is unusable: close it if it can be, keeping the
         * message that says what is missing */
        char msg[256];
        snprintf(msg, sizeof(msg), "%s", evs_last_error());
        if ((*out)->ops && (*out)->ops->close && (*out)->ops->close(*out) < 0) {
            /* nothing to add: the store was never handed out */
        }
        evs__set_error_text(msg);
        *out = NULL;
    }
    return rc;
}

int evs_close(evs_db *db)
{
    if (!db)
        return 0;
    evs__crypto_free(db);
    evs__lc_free(db);
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
    if ((rc = evs__check_tenant(tenant, &tl)) < 0)
        return rc;
    if ((rc = evs__check_stream(stream)) < 0)
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
    return evs__lc_read_stream(out, db, tenant ? tenant : "", stream, from_version, dir,
                               limit);
}

int evs_read_streams(evs_iter **out, evs_db *db, const char *tenant,
                     const evs_stream_read *streams, size_t nstreams)
{
    int rc;
    size_t tl;
    evs__clear_error();
    if (!out)
        return evs__err(EVS_EINVAL, "read_streams: out is NULL");
    *out = NULL;
    if (!db || !streams)
        return evs__err(EVS_EINVAL, "read_streams: %s is NULL", db ? "streams" : "db");
    if ((rc = evs__check_tenant(tenant, &tl)) < 0)
        return rc;
    if (nstreams == 0 || nstreams > EVS_MAX_READ_STREAMS)
        return evs__err(EVS_EINVAL, "read_streams: %zu streams (give 1..%d)", nstreams,
                        EVS_MAX_READ_STREAMS);
    for (size_t i = 0; i < nstreams; i++) {
        if ((rc = evs__check_stream(streams[i].stream)) < 0)
            return evs__err(rc, "read_streams: stream %zu: %s", i, evs_last_error());
        if (streams[i].from_version < 0)
            return evs__err(EVS_EINVAL, "read_streams: stream %s: from_version %lld "
                            "(give a version >= 0)", streams[i].stream,
                            (long long)streams[i].from_version);
    }
    const char **names = malloc(nstreams * sizeof(*names));
    if (!names)
        return evs__err(EVS_ENOMEM, "out of memory reading %zu streams", nstreams);
    for (size_t i = 0; i < nstreams; i++)
        names[i] = streams[i].stream;
    qsort(names, nstreams, sizeof(*names), evs__cmp_str_ptr);
    for (size_t i = 1; i < nstreams; i++)
        if (strcmp(names[i - 1], names[i]) == 0) {
            rc = evs__err(EVS_EINVAL, "read_streams: stream %s is listed twice", names[i]);
            break;
        }
    free(names);
    if (rc < 0)
        return rc;
    return evs__lc_read_streams(out, db, tenant ? tenant : "", streams, nstreams);
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
    if ((rc = evs__check_tenant(tenant, &tl)) < 0)
        return rc;
    return evs__lc_read_all(out, db, tenant, from_position ? from_position : 1, limit, 0);
}

int evs_read_log(evs_iter **out, evs_db *db, uint64_t from_position, uint64_t limit)
{
    evs__clear_error();
    if (!out)
        return evs__err(EVS_EINVAL, "read_log: out is NULL");
    *out = NULL;
    if (!db)
        return evs__err(EVS_EINVAL, "read_log: db is NULL");
    return evs__lc_read_all(out, db, NULL, from_position ? from_position : 1, limit,
                            EVS__READ_SYSTEM);
}

int evs_read_query(evs_iter **out, evs_db *db, const char *tenant, const evs_query *query,
                   uint64_t position_bound, evs_direction dir, uint64_t limit)
{
    int rc;
    size_t tl;
    evs__clear_error();
    if (!out)
        return evs__err(EVS_EINVAL, "read_query: out is NULL");
    *out = NULL;
    if (!db || !query)
        return evs__err(EVS_EINVAL, "read_query: %s is NULL", db ? "query" : "db");
    if ((rc = evs__check_tenant(tenant, &tl)) < 0)
        return rc;
    if (dir != EVS_FORWARD && dir != EVS_BACKWARD)
        return evs__err(EVS_EINVAL, "read_query: unknown direction %d", (int)dir);
    if ((rc = evs__check_query(query, "read_query")) < 0)
        return rc;
    return evs__lc_read_query(out, db, tenant ? tenant : "", query, position_bound, dir,
                              limit, 0);
}

int evs_iter_marker(uint64_t *out, const evs_iter *it)
{
    if (!out || !it)
        return evs__err(EVS_EINVAL, "iter_marker: NULL argument");
    return it->ops->marker(out, it);
}

int evs_iter_next(const evs_event **ev, evs_iter *it)
{
    if (!ev || !it)
        return evs__err(EVS_EINVAL, "iter_next: NULL argument");
    return it->ops->next(ev, it);
}

void evs_iter_free(evs_iter *it)
{
    if (it)
        it->ops->free(it);
}

int evs_stream_version(int64_t *out, evs_db *db, const char *tenant,
                       const char *stream)
{
    int rc;
    size_t tl;
    evs__clear_error();
    if (!out || !db)
        return evs__err(EVS_EINVAL, "stream_version: NULL argument");
    if ((rc = evs__check_tenant(tenant, &tl)) < 0)
        return rc;
    if ((rc = evs__check_stream(stream)) < 0)
        return rc;
    if ((rc = db->ops->stream_version(out, db, tenant ? tenant : "", stream)) < 0)
        return rc;
    if (*out == EVS__TOMBSTONE_VERSION)
        return evs__err(EVS_EDELETED, "stream_version: stream %s is deleted (tombstoned)",
                        stream);
    return 0;
}

int evs_head_position(uint64_t *out, evs_db *db, const char *tenant)
{
    int rc;
    size_t tl;
    evs__clear_error();
    if (!out || !db)
        return evs__err(EVS_EINVAL, "head_position: NULL argument");
    if ((rc = evs__check_tenant(tenant, &tl)) < 0)
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
    return evs_verify_ex(checked, db, cb, NULL, ctx);
}

int evs_verify_ex(uint64_t *checked, evs_db *db, evs_verify_fn cb, evs_progress_fn progress,
                  void *ctx)
{
    evs__clear_error();
    if (!db)
        return evs__err(EVS_EINVAL, "verify: db is NULL");
    evs__verify_sink sink = {cb, ctx, 0, progress, 0};
    int rc = progress ? db->ops->head_position(&sink.total, db, NULL) : 0;
    if (rc < 0)
        return rc;
    rc = db->ops->verify(checked, db, &sink);
    if (rc == 0)
        evs__verify_tick(&sink, sink.total);
    if (rc == 0 && sink.problems)
        rc = evs__err(EVS_ECORRUPT, "verify found %" PRIu64 " problem%s", sink.problems,
                      sink.problems == 1 ? "" : "s");
    return rc;
}
