/*
 * front.h -- what the front end's files (api.c, tracking.c) share and no
 * backend sees: validators, the append entry points that may write system
 * streams, and the consumer-group rule.
 */
#ifndef EVS_CORE_FRONT_H
#define EVS_CORE_FRONT_H

#include "core/backend.h"
#include "util/util.h" /* EVS_MUST_USE */

/* Does a consumer group member own this event? The hash of the stream's
 * id part (after the first '-'), or of the event id for an event without
 * a stream (every backend must agree: src/core/tracking.c). */
int evs__group_owns(const evs_event *ev, uint32_t member, uint32_t size);

/* Validators (append.c) shared by the front end's files. Each returns 0 or EVS_EINVAL
 * with a message. */
EVS_MUST_USE int evs__check_tenant(const char *tenant, size_t *len);
/* What is wrong with a name of at most max bytes, or NULL. */
const char *evs__name_problem(const char *s, size_t max);
EVS_MUST_USE int evs__check_query(const evs_query *q, const char *what);
/* A stream name's check: 0 or EVS_EINVAL with a message. */
EVS_MUST_USE int evs__check_stream(const char *stream);
/* qsort comparator of const char * elements (strcmp order). */
int evs__cmp_str_ptr(const void *a, const void *b);
/* evs__append_ex flags */
enum {
    /* evs_restore_append: the events come from a store that accepted them;
     * their JSON is not checked again (a store written with validate_json
     * off exports JSON events that are not valid JSON) */
    EVS__APPEND_RESTORE = 1u << 0,
    /* lifecycle.c: the store's own "$metadata" and "$streamDeleted"
     * events, which evs_append refuses from callers */
    EVS__APPEND_LIFECYCLE = 1u << 1,
    /* lifecycle.c: part 0 is a tombstone (evs__append_req.tombstone) */
    EVS__APPEND_TOMBSTONE = 1u << 2,
};
/* evs_append_ex that may write the trailing nsystem parts to system
 * streams ('$' names: checkpoints); flags: EVS__APPEND_*. */
EVS_MUST_USE int evs__append_ex(evs_append_result *out, uint64_t *conflicts, evs_db *db,
                   const evs_append_request *r, size_t nsystem, unsigned flags);
/* evs_append_ex of a request with a checkpoint update (checkpoint.c) */
EVS_MUST_USE int evs__append_checkpointed(evs_append_result *out, uint64_t *conflicts, evs_db *db,
                             const evs_append_request *r);

/* evs_metrics: a public append call ended with rc; count it as a
 * conflict when it is EVS_ECONFLICT (committed appends and their events
 * are counted in evs__append_ex, once per backend append). Returns rc. */
static inline int evs__count_conflict(evs_db *db, int rc)
{
    if (rc == EVS_ECONFLICT)
        atomic_fetch_add_explicit(&db->metrics.conflicts, 1, memory_order_relaxed);
    return rc;
}

/* EVS_EINVAL naming what is NULL when out or db is NULL, else 0. */
EVS_MUST_USE int evs__check_db_out(const void *out, const evs_db *db, const char *what);

/* Checkpoint NAME is stored as the events of the system stream
 * "$checkpoint-NAME" in the consumer's tenant (checkpoint.c). */
#define EVS__CHECKPOINT_PREFIX "$checkpoint-"
/* The type of every checkpoint event (its data: the token, 8 bytes LE). */
#define EVS__CHECKPOINT_TYPE "$checkpoint"
/* Validate a checkpoint name and write its stream's name into buf (cap
 * bytes: sizeof(EVS__CHECKPOINT_PREFIX) + EVS_MAX_CHECKPOINT_NAME_LEN is
 * enough). 0, or EVS_EINVAL with a message naming `what`. */
EVS_MUST_USE int evs__checkpoint_stream(char *buf, size_t cap, const char *name, const char *what);

/* ---- stream lifecycle (lifecycle.c) ---------------------------------------- */

/* The type of a stream's metadata events ("$$STREAM") and of the
 * stream-less event that announces a change; refused from callers. */
#define EVS__METADATA_TYPE "$metadata"
/* What lifecycle.c stores (docs/DESIGN.md, "Stream lifecycle"), which a
 * restore (append.c) checks: "$$STREAM" metadata streams, and the
 * tenant's "$lifecycle" stream of binary records of EVS__LC_REC_FIXED
 * bytes (byte 0 EVS__LC_REC_FORMAT) followed by the stream's name. */
#define EVS__META_PREFIX "$$"
#define EVS__LC_STREAM "$lifecycle"
#define EVS__LC_TYPE "$lifecycle"
#define EVS__LC_REC_FORMAT 1
#define EVS__LC_REC_FIXED 32
/* Every read of events goes through these: the backend's read, wrapped
 * with the lifecycle filter when the tenant has rules (stream metadata,
 * tombstones), then with the decryption of crypto-shredded events
 * (evs__crypto_wrap_ex, flags passed on). Arguments validated, as the
 * backend entries of the same names take them; tenant "" for the
 * default; read_all's tenant NULL: every tenant. */
EVS_MUST_USE int evs__lc_read_stream(evs_iter **out, evs_db *db, const char *tenant,
                                     const char *stream, int64_t from_version,
                                     evs_direction dir, uint64_t limit);
EVS_MUST_USE int evs__lc_read_streams(evs_iter **out, evs_db *db, const char *tenant,
                                      const evs_stream_read *streams, size_t nstreams);
EVS_MUST_USE int evs__lc_read_all(evs_iter **out, evs_db *db, const char *tenant,
                                  uint64_t from_position, uint64_t limit, unsigned flags);
EVS_MUST_USE int evs__lc_read_query(evs_iter **out, evs_db *db, const char *tenant,
                                    const evs_query *query, uint64_t position_bound,
                                    evs_direction dir, uint64_t limit, unsigned flags);
/* evs_read_event: the event at position if a read returns it (an
 * iterator that yields it or nothing; decrypted). */
EVS_MUST_USE int evs__lc_read_at(evs_iter **out, evs_db *db, uint64_t position);
/* The lowest version of stream a read returns (0 when no rule hides any;
 * EVS_EDELETED when tombstoned): evs_aggregate_load drops a snapshot below
 * it. */
EVS_MUST_USE int evs__lc_stream_floor(int64_t *out, evs_db *db, const char *tenant,
                                      const char *stream);
/* evs_close: free the cache. */
void evs__lc_free(evs_db *db);

/* ---- crypto-shredding (crypto.c, docs/ERASURE.md) ---------------------------- */

/* The tag that marks an event encrypted under SUBJECT: "$subject:SUBJECT"
 * (added by the append path; '$' tags are refused from callers, so it
 * cannot be forged; queryable). */
#define EVS__SUBJECT_TAG_PREFIX "$subject:"
/*
 * Replace *it with an iterator that returns each event of *it with its
 * encrypted data (and metadata) decrypted, or redacted with
 * EVS_EVENT_REDACTED (evstore.h), passing marker() through. Plain events
 * pass through untouched (no copy, no allocation). A decrypted event is
 * valid until the next call on the iterator (evs__crypto_wrap_ex with
 * EVS__READ_RETAIN: until the iterator is freed). 0; or EVS_ENOMEM, and
 * *it is freed and NULL. *it NULL: 0, nothing done.
 */
EVS_MUST_USE int evs__crypto_wrap(evs_iter **it, evs_db *db);
EVS_MUST_USE int evs__crypto_wrap_ex(evs_iter **it, evs_db *db, unsigned read_flags);
/*
 * The append path: a copy of the request's parts in which every event
 * with a subject has its data (and metadata) replaced by envelopes and
 * the tag "$subject:SUBJECT" added, in *arena (the caller frees it);
 * *parts_out points into it, or is parts itself when no event has a
 * subject (then *arena stays NULL). ids: the event ids in part order (the
 * envelopes are bound to them). Subjects are validated here. 0, EVS_EINVAL
 * (a bad subject or flags; a forgotten subject), EVS_ENOMEM, or the key
 * store's error.
 */
EVS_MUST_USE int evs__crypto_seal(void **arena, const evs_stream_append **parts_out,
                                  evs_db *db, const char *tenant,
                                  const evs_stream_append *parts, size_t nparts,
                                  const evs_uuid *ids);
/* Validate one event's subject and flags (check_event): 0 or EVS_EINVAL. */
EVS_MUST_USE int evs__crypto_check(const evs_event_data *e, const char *stream, size_t idx);
/* evs_close: free the key cache (wiping the keys). */
void evs__crypto_free(evs_db *db);

#endif
