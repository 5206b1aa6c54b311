/*
 * front.h -- what the front end's files (api.c, tracking.c) share and no
 * backend sees: validators, the append entry points that may write system
 * streams, and the consumer-group rule.
 */
#ifndef EVS_CORE_FRONT_H
#define EVS_CORE_FRONT_H

#include "core/backend.h"

/* Does a consumer group member own this event? The hash of the stream's
 * id part (after the first '-'), or of the event id for an event without
 * a stream (every backend must agree: src/core/tracking.c). */
int evs__group_owns(const evs_event *ev, uint32_t member, uint32_t size);

/* Validators shared by the API files (api.c). Each returns 0 or EVS_EINVAL
 * with a message. */
int evs__check_tenant(const char *tenant, size_t *len);
/* What is wrong with a name of at most max bytes, or NULL. */
const char *evs__name_problem(const char *s, size_t max);
int evs__check_query(const evs_query *q, const char *what);
/* evs_append_ex that may write the trailing nsystem parts to system
 * streams ('$' names: checkpoints) */
int evs__append_ex(evs_append_result *out, uint64_t *conflicts, evs_db *db,
                   const evs_append_request *r, size_t nsystem);
/* evs_append_ex of a request with a checkpoint update (tracking.c) */
int evs__append_checkpointed(evs_append_result *out, uint64_t *conflicts, evs_db *db,
                             const evs_append_request *r);

#endif
