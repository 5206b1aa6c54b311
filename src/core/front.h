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

#endif
