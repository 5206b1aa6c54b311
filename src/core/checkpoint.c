/*
 * checkpoint.c -- checkpoints and snapshots.
 *
 * Checkpoints are events of a system stream, "$checkpoint-NAME", in the
 * consumer's tenant: that makes them as durable as events and lets an
 * append carry a checkpoint update in the same atomic commit (one more
 * part, with the checkpoint stream's version as expected version). The
 * backends keep system events out of every tenant read and query.
 * Snapshots are the backend's (snapshot_save/snapshot_load): here only
 * their validation and evs_aggregate_load, which joins a snapshot with the
 * events after it.
 */
#include "core/front.h"
#include "util/util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>


/* ---- checkpoints ----------------------------------------------------------- */

int evs__checkpoint_stream(char *buf, size_t cap, const char *name, const char *what)
{
    /* evs__name_problem's length message says 256: check the length here */
    if (name && strnlen(name, EVS_MAX_CHECKPOINT_NAME_LEN + 1) > EVS_MAX_CHECKPOINT_NAME_LEN)
        return evs__err(EVS_EINVAL, "%s: checkpoint name is longer than %d bytes", what,
                        EVS_MAX_CHECKPOINT_NAME_LEN);
    const char *why = evs__name_problem(name, EVS_MAX_CHECKPOINT_NAME_LEN);
    if (why)
        return evs__err(EVS_EINVAL, "%s: checkpoint name %s", what, why);
    snprintf(buf, cap, "%s%s", EVS__CHECKPOINT_PREFIX, name);
    return 0;
}

/* The stored token (*found 0 when none) and the checkpoint stream's
 * version (EVS_NO_STREAM when none). */
static int checkpoint_read(evs_db *db, const char *tenant, const char *stream,
                           uint64_t *token, int64_t *version, int *found)
{
    evs_iter *it;
    const evs_event *ev;
    *found = 0;
    *token = 0;
    *version = EVS_NO_STREAM;
    int rc = db->ops->read_stream(&it, db, tenant, stream, EVS_END, EVS_BACKWARD, 1);
    if (rc < 0)
        return rc;
    rc = it->ops->next(&ev, it);
    if (rc == 0) {
        if (ev->data_len != 8 || strcmp(ev->type, EVS__CHECKPOINT_TYPE) != 0) {
            rc = evs__err(EVS_ECORRUPT, "checkpoint stream %s: its last event (position %"
                          PRIu64 ") is not a checkpoint", stream, ev->position);
        } else {
            *token = evs__get_le64(ev->data);
            *version = ev->stream_version;
            *found = 1;
        }
    } else if (rc == EVS_ITEROVER) {
        rc = 0;
    }
    it->ops->free(it);
    return rc;
}

int evs_checkpoint_get(uint64_t *out, evs_db *db, const char *tenant, const char *name)
{
    char stream[sizeof(EVS__CHECKPOINT_PREFIX) + EVS_MAX_CHECKPOINT_NAME_LEN];
    size_t tl;
    int64_t version;
    int found, rc;
    evs__clear_error();
    if ((rc = evs__check_db_out(out, db, "checkpoint_get")) < 0 ||
        (rc = evs__check_tenant(tenant, &tl)) < 0 ||
        (rc = evs__checkpoint_stream(stream, sizeof(stream), name, "checkpoint_get")) < 0)
        return rc;
    if ((rc = checkpoint_read(db, tenant ? tenant : "", stream, out, &version, &found)) < 0)
        return rc;
    if (!found)
        return evs__err(EVS_ENOTFOUND, "checkpoint \"%s\" is not stored in tenant \"%s\"",
                        name, tenant ? tenant : "");
    return 0;
}

/*
 * Can the checkpoint move to token? 0: yes, 1: it is there already.
 * flags: EVS_CHECKPOINT_*. An external token (a position of another
 * source, UmaDB's tracking_info) has no head bound and must move strictly
 * forward: the same or a lower one is a conflict, as UmaDB's
 * "non-increasing tracking position" is, not a bad argument.
 */
static int checkpoint_allowed(evs_db *db, const char *name, uint64_t token, unsigned flags,
                              int found, uint64_t stored, const char *what)
{
    uint64_t head;
    int rc;
    if (flags & EVS_CHECKPOINT_EXTERNAL) {
        if (found && token <= stored)
            return evs__err(EVS_ECONFLICT, "%s: external checkpoint \"%s\" is at %" PRIu64
                            "; it only moves strictly forward, so %" PRIu64 " is refused "
                            "(nothing was written)", what, name, stored, token);
        return 0;
    }
    if (found && token < stored)
        return evs__err(EVS_EINVAL, "%s: checkpoint \"%s\" is at %" PRIu64 "; it may only "
                        "move forward, not back to %" PRIu64, what, name, stored, token);
    if (found && token == stored)
        return 1;
    if ((rc = db->ops->head_position(&head, db, NULL)) < 0)
        return rc;
    if (token > head)
        return evs__err(EVS_EINVAL, "%s: token %" PRIu64 " for checkpoint \"%s\" is beyond "
                        "the store's head (%" PRIu64 ")", what, token, name, head);
    return 0;
}

/* The event that records a checkpoint: 8 bytes, the token (LE). */
static void checkpoint_event(evs_event_data *e, uint8_t data[8], uint64_t token)
{
    memset(e, 0, sizeof(*e));
    evs__put_le64(data, token);
    e->type = EVS__CHECKPOINT_TYPE;
    e->data = data;
    e->data_len = 8;
    e->content_type = EVS_CONTENT_BINARY;
}

int evs_checkpoint_set(evs_db *db, const char *tenant, const char *name, uint64_t token)
{
    return evs_checkpoint_set_ex(db, tenant, name, token, 0);
}

static int checkpoint_set(evs_db *db, const char *tenant, const char *name, uint64_t token,
                          unsigned flags);

int evs_checkpoint_set_ex(evs_db *db, const char *tenant, const char *name, uint64_t token,
                          unsigned flags)
{
    evs__clear_error();
    if (!db)
        return evs__err(EVS_EINVAL, "checkpoint_set: db is NULL");
    if (flags & ~EVS_CHECKPOINT_EXTERNAL)
        return evs__err(EVS_EINVAL, "checkpoint_set: unknown flags 0x%x (known: "
                        "EVS_CHECKPOINT_EXTERNAL 0x%x)", flags, EVS_CHECKPOINT_EXTERNAL);
    return evs__count_conflict(db, checkpoint_set(db, tenant, name, token, flags));
}

static int checkpoint_set(evs_db *db, const char *tenant, const char *name, uint64_t token,
                          unsigned flags)
{
    char stream[sizeof(EVS__CHECKPOINT_PREFIX) + EVS_MAX_CHECKPOINT_NAME_LEN];
    size_t tl;
    int rc;
    if (db->opts.flags & EVS_OPEN_READONLY)
        return evs__err(EVS_EREADONLY, "checkpoint_set: the store is open read-only");
    if ((rc = evs__check_tenant(tenant, &tl)) < 0 ||
        (rc = evs__checkpoint_stream(stream, sizeof(stream), name, "checkpoint_set")) < 0)
        return rc;
    tenant = tenant ? tenant : "";
    /* Optimistic: a concurrent setter makes the append conflict; then look
     * again (a higher token stored meanwhile makes ours a backward move;
     * for an external one, the same token too). */
    for (int attempt = 0;; attempt++) {
        uint64_t stored;
        int64_t version;
        int found;
        if ((rc = checkpoint_read(db, tenant, stream, &stored, &version, &found)) < 0)
            return rc;
        if ((rc = checkpoint_allowed(db, name, token, flags, found, stored,
                                     "checkpoint_set")) != 0)
            return rc > 0 ? 0 : rc;
        evs_event_data e;
        uint8_t data[8];
        checkpoint_event(&e, data, token);
        evs_stream_append part = {stream, version, &e, 1};
        evs_append_request r = EVS_APPEND_REQUEST_INIT;
        r.tenant = tenant;
        r.parts = &part;
        r.nparts = 1;
        rc = evs__append_ex(NULL, NULL, db, &r, 1, 0);
        if (rc != EVS_ECONFLICT || attempt >= 1000)
            return rc;
    }
}

/* The id of the checkpoint event of a checkpointed append whose first
 * event has a caller-given id: derived from that id and the checkpoint's
 * name, so that a retry of the whole request (same ids) is recognised as
 * one and answered from the stored events. A UUIDv8 (RFC 9562). */
static void checkpoint_event_id(evs_uuid *out, const evs_uuid *first, const char *name)
{
    uint8_t buf[16 + EVS_MAX_CHECKPOINT_NAME_LEN];
    size_t n = strlen(name);
    memcpy(buf, first->bytes, 16);
    memcpy(buf + 16, name, n);
    XXH128_hash_t h = XXH3_128bits(buf, 16 + n);
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, h);
    memcpy(out->bytes, c.digest, 16);
    out->bytes[6] = (uint8_t)((out->bytes[6] & 0x0f) | 0x80);
    out->bytes[8] = (uint8_t)((out->bytes[8] & 0x3f) | 0x80);
}

/*
 * An append with a checkpoint update: the caller's parts plus one part
 * that appends the checkpoint event to "$checkpoint-NAME" with the version
 * read here as expected version, so that a concurrent move of the
 * checkpoint fails the whole append. The part is added also when the
 * token equals the stored one: it is what guards the append. r is a
 * version-3 request (evs_append_ex copies older ones into one).
 */
int evs__append_checkpointed(evs_append_result *out, uint64_t *conflicts, evs_db *db,
                             const evs_append_request *r)
{
    char stream[sizeof(EVS__CHECKPOINT_PREFIX) + EVS_MAX_CHECKPOINT_NAME_LEN];
    size_t tl;
    uint64_t stored, pos;
    int64_t version;
    int found, rc, retry = 0;
    if (db->opts.flags & EVS_OPEN_READONLY)
        return evs__err(EVS_EREADONLY, "append: the store is open read-only");
    if ((rc = evs__check_tenant(r->tenant, &tl)) < 0 ||
        (rc = evs__checkpoint_stream(stream, sizeof(stream), r->checkpoint, "append")) < 0)
        return rc;
    if (!r->parts || r->nparts == 0 || r->nparts > 65536 || !r->parts[0].events ||
        r->parts[0].nevents == 0)
        return evs__err(EVS_EINVAL, "append: no events to append (give 1..65536 parts of "
                        "at least one event)");
    const char *tenant = r->tenant ? r->tenant : "";
    const evs_uuid *first = &r->parts[0].events[0].id;
    if ((rc = checkpoint_read(db, tenant, stream, &stored, &version, &found)) < 0)
        return rc;
    /* A retry (its first event is stored) is answered from the stored
     * events, whatever the checkpoint has done since. */
    if (!evs_uuid_is_nil(first)) {
        rc = db->ops->event_position(&pos, db, first);
        if (rc == 0)
            retry = 1;
        else if (rc != EVS_ENOTFOUND)
            return rc;
    }
    if (!retry &&
        (rc = checkpoint_allowed(db, r->checkpoint, r->checkpoint_token, r->checkpoint_flags,
                                 found, stored, "append")) < 0)
        return rc;

    evs_stream_append *parts = malloc((r->nparts + 1) * sizeof(*parts));
    evs_append_result *res = malloc((r->nparts + 1) * sizeof(*res));
    if (!parts || !res) {
        free(parts);
        free(res);
        return evs__err(EVS_ENOMEM, "append: out of memory");
    }
    evs_event_data e;
    uint8_t data[8];
    checkpoint_event(&e, data, r->checkpoint_token);
    if (!evs_uuid_is_nil(first))
        checkpoint_event_id(&e.id, first, r->checkpoint);
    memcpy(parts, r->parts, r->nparts * sizeof(*parts));
    parts[r->nparts] = (evs_stream_append){stream, version, &e, 1};
    evs_append_request r2 = *r;
    r2.checkpoint = NULL;
    r2.parts = parts;
    r2.nparts = r->nparts + 1;
    rc = evs__append_ex(res, conflicts, db, &r2, 1, 0);
    if (rc == EVS_ECONFLICT && res[r->nparts].status == EVS_ECONFLICT)
        rc = evs__err(EVS_ECONFLICT, "checkpoint \"%s\" was moved by another writer while "
                      "this append was prepared; nothing was written (read it again and "
                      "retry); %s", r->checkpoint, evs_last_error());
    if (out)
        memcpy(out, res, r->nparts * sizeof(*out));
    free(parts);
    free(res);
    return rc;
}

/* ---- snapshots ------------------------------------------------------------- */

static int snapshot_args(evs_db *db, const char *tenant, const char *stream,
                         const char *what)
{
    size_t tl;
    const char *why;
    int rc;
    if (!db)
        return evs__err(EVS_EINVAL, "%s: db is NULL", what);
    if ((rc = evs__check_tenant(tenant, &tl)) < 0)
        return rc;
    if ((why = evs__name_problem(stream, EVS_MAX_STREAM_LEN)))
        return evs__err(EVS_EINVAL, "%s: stream name %s", what, why);
    return 0;
}

static int snapshot_save(evs_db *db, const char *tenant, const char *stream, int64_t version,
                         const char *schema, const void *data, size_t data_len,
                         int64_t saved_at, const char *what)
{
    const char *why;
    int rc;
    if ((rc = snapshot_args(db, tenant, stream, what)) < 0)
        return rc;
    if (db->opts.flags & EVS_OPEN_READONLY)
        return evs__err(EVS_EREADONLY, "%s: the store is open read-only", what);
    if ((why = evs__name_problem(schema, EVS_MAX_TYPE_LEN)))
        return evs__err(EVS_EINVAL, "%s: schema name %s", what, why);
    if (version < 0)
        return evs__err(EVS_EINVAL, "%s: version %lld; a snapshot is taken at "
                        "a stream version >= 0", what, (long long)version);
    if (!data && data_len)
        return evs__err(EVS_EINVAL, "%s: data is NULL but data_len is %zu", what,
                        data_len);
    if (data_len > EVS_MAX_SNAPSHOT_SIZE)
        return evs__err(EVS_ETOOBIG, "%s: %zu bytes, at most %u", what, data_len,
                        EVS_MAX_SNAPSHOT_SIZE);
    return db->ops->snapshot_save(db, tenant ? tenant : "", stream, version, schema, data,
                                  data_len, saved_at);
}

int evs_snapshot_save(evs_db *db, const char *tenant, const char *stream, int64_t version,
                      const char *schema, const void *data, size_t data_len)
{
    evs__clear_error();
    return snapshot_save(db, tenant, stream, version, schema, data, data_len, 0,
                         "snapshot_save");
}

int evs_snapshot_restore(evs_db *db, const char *tenant, const char *stream,
                         const evs_snapshot *snap)
{
    evs__clear_error();
    if (!snap)
        return evs__err(EVS_EINVAL, "snapshot_restore: snap is NULL");
    if (snap->saved_at < 0)
        return evs__err(EVS_EINVAL, "snapshot_restore: saved_at %lld is before 1970; give "
                        "microseconds since the Unix epoch, or 0 for now",
                        (long long)snap->saved_at);
    return snapshot_save(db, tenant, stream, snap->version, snap->schema, snap->data,
                         snap->data_len, snap->saved_at, "snapshot_restore");
}

int evs_snapshot_list(evs_db *db, const char *tenant, evs_snapshot_fn fn, void *ctx)
{
    size_t tl;
    int rc;
    evs__clear_error();
    if (!db || !fn)
        return evs__err(EVS_EINVAL, "snapshot_list: %s is NULL", db ? "fn" : "db");
    if (tenant && (rc = evs__check_tenant(tenant, &tl)) < 0)
        return rc;
    return db->ops->snapshot_list(db, tenant, fn, ctx);
}

int evs_snapshot_load(evs_snapshot **out, evs_db *db, const char *tenant,
                      const char *stream, int64_t max_version)
{
    int rc;
    evs__clear_error();
    if (!out)
        return evs__err(EVS_EINVAL, "snapshot_load: out is NULL");
    *out = NULL;
    if ((rc = snapshot_args(db, tenant, stream, "snapshot_load")) < 0)
        return rc;
    if (max_version < 0 && max_version != EVS_END)
        return evs__err(EVS_EINVAL, "snapshot_load: max_version %lld; give a version >= 0 "
                        "or EVS_END", (long long)max_version);
    return db->ops->snapshot_load(out, db, tenant ? tenant : "", stream, max_version);
}

void evs_snapshot_free(evs_snapshot *snap)
{
    free(snap);
}

int evs_aggregate_load(evs_snapshot **snap, evs_iter **events, evs_db *db,
                       const char *tenant, const char *stream)
{
    int rc;
    evs__clear_error();
    if (!snap || !events)
        return evs__err(EVS_EINVAL, "aggregate_load: %s is NULL", snap ? "events" : "snap");
    *snap = NULL;
    *events = NULL;
    if ((rc = snapshot_args(db, tenant, stream, "aggregate_load")) < 0)
        return rc;
    tenant = tenant ? tenant : "";
    /* stream metadata: a snapshot of events no read returns any more
     * (truncated, deleted) is not used */
    int64_t floor;
    if ((rc = evs__lc_stream_floor(&floor, db, tenant, stream)) < 0)
        return rc;
    rc = db->ops->snapshot_load(snap, db, tenant, stream, EVS_END);
    if (rc == EVS_ENOTFOUND) {
        evs__clear_error();
        rc = 0;
    }
    if (rc < 0)
        return rc;
    if (*snap && (*snap)->version < floor) {
        evs_snapshot_free(*snap);
        *snap = NULL;
    }
    int64_t from = *snap ? (*snap)->version + 1 : 0;
    if ((rc = evs__lc_read_stream(events, db, tenant, stream, from, EVS_FORWARD, 0)) < 0) {
        evs_snapshot_free(*snap);
        *snap = NULL;
    }
    return rc;
}
