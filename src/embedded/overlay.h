/*
 * overlay.h -- what the group being committed has changed, before its
 * index entries are in the LMDB txn.
 *
 * The writer checks every request of a group first (phase A) and puts the
 * group's index entries into LMDB only while the log's fdatasync runs on
 * the syncer thread (phase B). Between the two, a request must still see
 * the streams, tenants and event ids of the requests before it in the
 * same group: they are here. Lookups try the overlay first, then the txn.
 *
 * One open-addressing table (xxHash3 of kind, tenant id and key bytes),
 * emptied per group by bumping a generation number.
 */
#ifndef EVS_EMBEDDED_OVERLAY_H
#define EVS_EMBEDDED_OVERLAY_H

#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

enum { OV_TENANT = 1, OV_STREAM = 2, OV_ID = 3 };

typedef struct evs__ov_entry {
    uint64_t hash;
    uint32_t gen;
    uint8_t kind;
    uint8_t is_new;     /* tenant created / stream created in this group */
    uint8_t dirty;      /* OV_STREAM, OV_TENANT: changed since last put in the txn */
    uint32_t tid;       /* OV_STREAM: its tenant id (part of the key); else 0 */
    const char *key;    /* name (borrowed from the request) or 16-byte id */
    size_t key_len;
    uint64_t a;         /* OV_STREAM: stream id; OV_ID: position;
                           OV_TENANT: the tenant id */
    int64_t b;          /* OV_STREAM: head version; OV_ID: location */
} evs__ov_entry;

typedef struct evs__overlay {
    evs__ov_entry *t;
    size_t cap;         /* power of two */
    size_t count;
    uint32_t gen;
    /* the group's stream and tenant entries, for phase B (re-pointed
     * when the table grows) */
    evs__ov_entry **streams;
    size_t nstreams, streams_cap;
    evs__ov_entry **tenants; /* tenants first seen in this group */
    size_t ntenants, tenants_cap;
} evs__overlay;

void evs__ov_reset(evs__overlay *ov);
void evs__ov_free(evs__overlay *ov);
evs__ov_entry *evs__ov_find(evs__overlay *ov, int kind, uint32_t tid,
                            const void *key, size_t len);
/* Insert (the key must not be present). NULL when out of memory, never
 * within the room made by evs__ov_reserve. */
EVS_MUST_USE evs__ov_entry *evs__ov_add(evs__overlay *ov, int kind, uint32_t tid,
                                        const void *key, size_t len);
/* Make room for n more entries of any kinds now, so that adding them
 * allocates nothing (it cannot fail) and pointers returned by find/add
 * stay valid while they are added. 0, or -1 when out of memory. */
EVS_MUST_USE int evs__ov_reserve(evs__overlay *ov, size_t n);

#endif
