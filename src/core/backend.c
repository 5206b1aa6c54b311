/*
 * backend.c -- the completeness check of a backend's table of functions
 * (core/backend.h): a backend built against another version of the
 * interface, or with an entry left NULL, is refused when it opens, with a
 * message that names what is missing, instead of crashing later.
 */
#include "core/backend.h"

#include <stddef.h>
#include <string.h>

int evs__backend_check(const evs__backend_ops *ops)
{
    if (!ops)
        return evs__err(EVS_EBACKEND, "backend: no table of functions");
    if (ops->version != EVS__BACKEND_VERSION)
        return evs__err(EVS_EBACKEND, "backend %s: built for backend interface version %u, "
                        "this library has version %d", ops->name ? ops->name : "(unnamed)",
                        ops->version, EVS__BACKEND_VERSION);
    static const struct {
        size_t off;
        const char *name;
    } entries[] = {
#define E(f) {offsetof(evs__backend_ops, f), #f}
        E(name), E(append), E(read_stream), E(read_all), E(read_query), E(read_streams),
        E(stream_version), E(head_position), E(stats), E(verify), E(commit_seq),
        E(wait_commit), E(wake_readers), E(event_position), E(token_tail), E(token_at),
        E(snapshot_save), E(snapshot_load), E(snapshot_list),
        E(list_streams), E(list_tenants), E(backup), E(scavenge), E(subject_key),
        E(subject_forget), E(close),
#undef E
    };
    for (size_t i = 0; i < sizeof(entries) / sizeof(entries[0]); i++) {
        const void *const *slot = (const void *const *)((const char *)ops + entries[i].off);
        if (!*slot)
            return evs__err(EVS_EBACKEND, "backend %s: entry %s is missing",
                            ops->name ? ops->name : "(unnamed)", entries[i].name);
    }
    return 0;
}

/* (tenant, stream) order as byte strings, lengths given */
static int cmp_name(const char *a, size_t al, const char *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    return c ? c : (al > bl) - (al < bl);
}

const evs__scavenge_stream *evs__scavenge_find(const evs__scavenge_plan *plan,
                                               const char *tenant, size_t tenant_len,
                                               const char *stream, size_t stream_len)
{
    size_t lo = 0, hi = plan ? plan->nstreams : 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const evs__scavenge_stream *s = &plan->streams[mid];
        int c = cmp_name(s->tenant, strlen(s->tenant), tenant, tenant_len);
        if (c == 0)
            c = cmp_name(s->stream, strlen(s->stream), stream, stream_len);
        if (c == 0)
            return s;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}
