/*
 * kurrent.c -- the part of KurrentDB's gRPC protocol that `evs serve`
 * speaks (docs/SERVER.md, "KurrentDB protocol", has the mapping and the
 * status of every call), on evstore's public API:
 *
 *   event_store.client.streams.Streams
 *     Append     client streaming: options, then the proposed messages;
 *                one evs_append of them all (atomic; idempotent by ids);
 *                to "$$STREAM": evs_stream_metadata_set of STREAM
 *     Read       a stream (evs_read_stream) or $all (evs_read_all
 *                forwards, evs_read_query with the "all" query backwards),
 *                one ReadResp per event, $all filters by prefix or POSIX
 *                regex; with `subscription`: catch-up in batches, then
 *                caught_up, then parked in notify.c until a commit
 *                (checkpoints when filtered); fell_behind when a live read
 *                finds a full batch waiting, caught_up again after
 *     Delete     evs_stream_delete (soft delete)
 *     Tombstone  evs_stream_tombstone (hard delete)
 *     BatchAppend UNIMPLEMENTED (not listed by GetSupportedMethods, so the
 *                clients use Append)
 *   kurrentdb.protocol.v2.streams.StreamsService
 *     AppendSession  client streaming: one AppendRequest per stream, all
 *                one evs_append_multi (atomic)
 *   event_store.client.server_features.ServerFeatures
 *     GetSupportedMethods  the implemented calls above and itself
 *
 * Events: type and content type come from the metadata map ("type",
 * "content-type": "application/json" is stored as EVS_CONTENT_JSON, any
 * other as EVS_CONTENT_BINARY and read back as
 * "application/octet-stream"). custom_metadata is stored as evstore's
 * metadata as-is when it is JSON (and not an object whose only key is
 * "$base64"); otherwise as {"$base64":"<its bytes in base64>"}, which a
 * read decodes back: the bytes come back exactly. $all positions: commit
 * and prepare are both evstore's global position.
 *
 * Errors as KurrentDB's clients decode them: the trailing metadata
 * "exception" (stream-deleted, wrong-expected-version,
 * maximum-append-size-exceeded) with its companion keys; a wrong expected
 * version on Append is an AppendResp, as KurrentDB answers it.
 */
#include <inttypes.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "gcall.h"
#include "kurrent/serverfeatures.pb-c.h"
#include "kurrent/shared.pb-c.h"
#include "kurrent/streams.pb-c.h"
#include "kurrent/v2streams.pb-c.h"

#define JSON_TYPE "application/json"
#define BINARY_TYPE "application/octet-stream"
#define B64_KEY "$base64"

typedef EventStore__Client__Streams__AppendReq AppendReq;
typedef EventStore__Client__Streams__AppendResp AppendResp;
typedef EventStore__Client__Streams__ReadReq ReadReq;
typedef EventStore__Client__Streams__ReadReq__Options ReadOptions;
typedef EventStore__Client__Streams__ReadResp ReadResp;
typedef EventStore__Client__Streams__ReadResp__ReadEvent ReadEvent;
typedef EventStore__Client__Streams__ReadResp__ReadEvent__RecordedEvent RecordedEvent;
typedef EventStore__Client__Streams__ReadResp__ReadEvent__RecordedEvent__MetadataEntry MetaEntry;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

static void fail_deleted(gcall *c, const char *stream)
{
    const char *kv[] = {"exception", "stream-deleted", "stream-name", stream};
    gcall_fail_md(c, GS_FAILED_PRECONDITION, kv, 2, "Event stream '%s' is deleted.", stream);
}

/* A wrong expected version outside Append (Delete, Tombstone): the
 * trailers KurrentDB sends, with the expected version as a number
 * (-1 no stream, -2 any, -4 stream exists) and the actual one when the
 * stream has events. */
static void fail_wev(gcall *c, const char *stream, int64_t expected, int64_t actual)
{
    char e[24], a[24];
    snprintf(e, sizeof(e), "%" PRId64, expected);
    snprintf(a, sizeof(a), "%" PRId64, actual);
    const char *kv[] = {"exception", "wrong-expected-version", "stream-name", stream,
                        "expected-version", e, "actual-version", a};
    gcall_fail_md(c, GS_FAILED_PRECONDITION, kv, actual >= 0 ? 4 : 3,
                  "Append failed due to WrongExpectedVersion. Stream: %s, Expected version: "
                  "%s, Actual version: %s", stream, e, actual >= 0 ? a : "no stream");
}

/* Any other library error: the status dcb.c gives it, the library's
 * message. */
static void fail_lib(gcall *c, int rc, const char *what, const char *stream)
{
    if (rc == EVS_EDELETED && stream) {
        fail_deleted(c, stream);
        return;
    }
    int code;
    switch (rc) {
    case EVS_ECONFLICT:
    case EVS_EDUPLICATE:
    case EVS_EDELETED:
    case EVS_EREADONLY:
        code = GS_FAILED_PRECONDITION;
        break;
    case EVS_EINVAL:
    case EVS_ETOOBIG:
        code = GS_INVALID_ARGUMENT;
        break;
    case EVS_ECORRUPT:
        code = GS_DATA_LOSS;
        break;
    case EVS_ENOSPC:
    case EVS_ENOMEM:
        code = GS_RESOURCE_EXHAUSTED;
        break;
    case EVS_ECLOSED:
    case EVS_EBUSY:
    case EVS_EBACKEND:
    case EVS_EIO:
        code = GS_UNAVAILABLE;
        break;
    default:
        code = GS_INTERNAL;
        break;
    }
    const char *detail = evs_last_error();
    gcall_fail(c, code, -1, "%s: %s", what, detail && *detail ? detail : evs_strerror(rc));
}

static void fail_unpack(gcall *c, const char *method, const char *message)
{
    gcall_fail(c, GS_INVALID_ARGUMENT, -1,
               "%s: the request is not a valid event_store.client.streams.%s message (or one "
               "that decodes into more than 16 times its size)", method, message);
}

/* ------------------------------------------------------------------ */
/* Stream names, expected revisions, ids, custom metadata              */
/* ------------------------------------------------------------------ */

/* The stream name of id, malloc'd; NULL after failing the call. */
static char *stream_name(gcall *c, const EventStore__Client__StreamIdentifier *id,
                         const char *what)
{
    if (!id || id->stream_name.len == 0) {
        gcall_fail(c, GS_INVALID_ARGUMENT, -1, "%s: the stream identifier is missing or "
                   "empty; name the stream", what);
        return NULL;
    }
    if (memchr(id->stream_name.data, 0, id->stream_name.len)) {
        gcall_fail(c, GS_INVALID_ARGUMENT, -1, "%s: the stream name holds a NUL byte, which "
                   "no stream name may", what);
        return NULL;
    }
    char *s = strndup((const char *)id->stream_name.data, id->stream_name.len);
    if (!s)
        gcall_fail(c, GS_RESOURCE_EXHAUSTED, -1, "%s: out of memory", what);
    return s;
}

/* An expected revision oneof (the same field numbers in every request):
 * 2 revision, 3 no_stream, 4 any, 5 stream_exists; not set = any. -1 for
 * a revision beyond INT64_MAX. */
static int expected_of(int64_t *out, int which, uint64_t revision)
{
    switch (which) {
    case 2:
        if (revision > INT64_MAX)
            return -1;
        *out = (int64_t)revision;
        return 0;
    case 3:
        *out = EVS_NO_STREAM;
        return 0;
    case 5:
        *out = EVS_STREAM_EXISTS;
        return 0;
    default:
        *out = EVS_ANY;
        return 0;
    }
}

/* A UUID in (either form); 0 or -1. */
static int uuid_in(evs_uuid *out, const EventStore__Client__UUID *u)
{
    memset(out, 0, sizeof(*out));
    if (!u)
        return 0;
    if (u->value_case == EVENT_STORE__CLIENT__UUID__VALUE_STRING)
        return u->string && *u->string ? (evs_uuid_parse(out, u->string) < 0 ? -1 : 0) : 0;
    if (u->value_case == EVENT_STORE__CLIENT__UUID__VALUE_STRUCTURED && u->structured) {
        uint64_t hi = (uint64_t)u->structured->most_significant_bits;
        uint64_t lo = (uint64_t)u->structured->least_significant_bits;
        for (int i = 0; i < 8; i++) {
            out->bytes[i] = (uint8_t)(hi >> (56 - 8 * i));
            out->bytes[8 + i] = (uint8_t)(lo >> (56 - 8 * i));
        }
    }
    return 0;
}

/* custom_metadata -> what evstore stores (malloc'd in *out, or NULL when
 * the bytes can go as they are, or there are none). -1: out of memory. */
static int custom_in(char **out, size_t *outlen, const ProtobufCBinaryData *d)
{
    *out = NULL;
    *outlen = 0;
    if (!d->len)
        return 0;
    json_error_t jerr;
    json_t *j = json_loadb((const char *)d->data, d->len, JSON_DECODE_ANY, &jerr);
    int as_is = j && !(json_is_object(j) && json_object_size(j) == 1 &&
                       json_object_get(j, B64_KEY));
    json_decref(j);
    if (as_is)
        return 0;
    size_t bl = 4 * ((d->len + 2) / 3);
    char *b = malloc(bl + 1);
    if (!b)
        return -1;
    EVP_EncodeBlock((unsigned char *)b, d->data, (int)d->len);
    size_t need = bl + sizeof("{\"" B64_KEY "\":\"\"}");
    *out = malloc(need);
    if (!*out) {
        free(b);
        return -1;
    }
    *outlen = (size_t)snprintf(*out, need, "{\"" B64_KEY "\":\"%s\"}", b);
    free(b);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Append                                                              */
/* ------------------------------------------------------------------ */

static void wrong_expected(gcall *c, int64_t expected, int64_t actual)
{
    EventStore__Client__Empty empty = EVENT_STORE__CLIENT__EMPTY__INIT;
    EventStore__Client__Streams__AppendResp__WrongExpectedVersion w =
        EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__WRONG_EXPECTED_VERSION__INIT;
    if (actual >= 0) {
        w.current_revision_option_20_6_0_case =
            EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__WRONG_EXPECTED_VERSION__CURRENT_REVISION_OPTION_20_6_0_CURRENT_REVISION_20_6_0;
        w.current_revision_20_6_0 = (uint64_t)actual;
        w.current_revision_option_case =
            EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__WRONG_EXPECTED_VERSION__CURRENT_REVISION_OPTION_CURRENT_REVISION;
        w.current_revision = (uint64_t)actual;
    } else {
        w.current_revision_option_20_6_0_case =
            EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__WRONG_EXPECTED_VERSION__CURRENT_REVISION_OPTION_20_6_0_NO_STREAM_20_6_0;
        w.no_stream_20_6_0 = &empty;
        w.current_revision_option_case =
            EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__WRONG_EXPECTED_VERSION__CURRENT_REVISION_OPTION_CURRENT_NO_STREAM;
        w.current_no_stream = &empty;
    }
    if (expected >= 0) {
        w.expected_revision_option_20_6_0_case =
            EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__WRONG_EXPECTED_VERSION__EXPECTED_REVISION_OPTION_20_6_0_EXPECTED_REVISION_20_6_0;
        w.expected_revision_20_6_0 = (uint64_t)expected;
        w.expected_revision_option_case =
            EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__WRONG_EXPECTED_VERSION__EXPECTED_REVISION_OPTION_EXPECTED_REVISION;
        w.expected_revision = (uint64_t)expected;
    } else if (expected == EVS_STREAM_EXISTS) {
        w.expected_revision_option_20_6_0_case =
            EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__WRONG_EXPECTED_VERSION__EXPECTED_REVISION_OPTION_20_6_0_STREAM_EXISTS_20_6_0;
        w.stream_exists_20_6_0 = &empty;
        w.expected_revision_option_case =
            EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__WRONG_EXPECTED_VERSION__EXPECTED_REVISION_OPTION_EXPECTED_STREAM_EXISTS;
        w.expected_stream_exists = &empty;
    } else if (expected == EVS_NO_STREAM) {
        /* the 20.6.0 fields have no "no stream": leave them unset */
        w.expected_revision_option_case =
            EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__WRONG_EXPECTED_VERSION__EXPECTED_REVISION_OPTION_EXPECTED_NO_STREAM;
        w.expected_no_stream = &empty;
    } else {
        w.expected_revision_option_20_6_0_case =
            EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__WRONG_EXPECTED_VERSION__EXPECTED_REVISION_OPTION_20_6_0_ANY_20_6_0;
        w.any_20_6_0 = &empty;
        w.expected_revision_option_case =
            EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__WRONG_EXPECTED_VERSION__EXPECTED_REVISION_OPTION_EXPECTED_ANY;
        w.expected_any = &empty;
    }
    AppendResp resp = EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__INIT;
    resp.result_case = EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__RESULT_WRONG_EXPECTED_VERSION;
    resp.wrong_expected_version = &w;
    gcall_reply(c, &resp.base);
}

static void append_success(gcall *c, int64_t revision, uint64_t position)
{
    EventStore__Client__Empty empty = EVENT_STORE__CLIENT__EMPTY__INIT;
    EventStore__Client__Streams__AppendResp__Position pos =
        EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__POSITION__INIT;
    EventStore__Client__Streams__AppendResp__Success ok =
        EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__SUCCESS__INIT;
    if (revision >= 0) {
        ok.current_revision_option_case =
            EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__SUCCESS__CURRENT_REVISION_OPTION_CURRENT_REVISION;
        ok.current_revision = (uint64_t)revision;
    } else {
        ok.current_revision_option_case =
            EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__SUCCESS__CURRENT_REVISION_OPTION_NO_STREAM;
        ok.no_stream = &empty;
    }
    if (position) {
        pos.commit_position = pos.prepare_position = position;
        ok.position_option_case =
            EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__SUCCESS__POSITION_OPTION_POSITION;
        ok.position = &pos;
    } else {
        ok.position_option_case =
            EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__SUCCESS__POSITION_OPTION_NO_POSITION;
        ok.no_position = &empty;
    }
    AppendResp resp = EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__INIT;
    resp.result_case = EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__RESULT_SUCCESS;
    resp.success = &ok;
    gcall_reply(c, &resp.base);
}

static const char *meta_get(const EventStore__Client__Streams__AppendReq__ProposedMessage *m,
                            const char *key)
{
    for (size_t i = 0; i < m->n_metadata; i++)
        if (m->metadata[i]->key && strcmp(m->metadata[i]->key, key) == 0)
            return m->metadata[i]->value;
    return NULL;
}

/* An Append to "$$STREAM": KurrentDB's stream metadata write, one
 * "$metadata" event of JSON {"$maxCount":..,"$maxAge":..,"$tb":.., custom
 * keys}, mapped onto evs_stream_metadata_set of STREAM with the expected
 * revision as the metadata version. */
static void metadata_append(gcall *c, const char *meta_stream, int64_t expected,
                            const EventStore__Client__Streams__AppendReq__ProposedMessage *m)
{
    serve *s = gcall_serve(c);
    const char *stream = meta_stream + 2;
    const char *type = meta_get(m, "type");
    if (!*stream || !type || strcmp(type, "$metadata") != 0) {
        gcall_fail(c, GS_INVALID_ARGUMENT, -1, "Append to %s: a metadata stream takes one "
                   "event of type \"$metadata\" (KurrentDB's stream metadata) for a named "
                   "stream", meta_stream);
        return;
    }
    json_error_t jerr;
    json_t *j = json_loadb((const char *)m->data.data, m->data.len, 0, &jerr);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        gcall_fail(c, GS_INVALID_ARGUMENT, -1, "Append to %s: the $metadata event's data must "
                   "be a JSON object", meta_stream);
        return;
    }
    evs_stream_metadata meta = EVS_STREAM_METADATA_INIT;
    json_t *custom = json_object();
    const char *k;
    json_t *v;
    const char *bad = NULL;
    json_object_foreach(j, k, v) {
        int64_t *dst = strcmp(k, "$maxCount") == 0 ? &meta.max_count
                       : strcmp(k, "$maxAge") == 0  ? &meta.max_age_s
                       : strcmp(k, "$tb") == 0      ? &meta.truncate_before
                                                    : NULL;
        if (dst) {
            if (json_is_null(v))
                continue;
            if (!json_is_integer(v) || json_integer_value(v) < 0) {
                bad = k;
                break;
            }
            *dst = json_integer_value(v);
        } else if (k[0] == '$') {
            bad = k;
            break;
        } else {
            json_object_set(custom, k, v);
        }
    }
    if (bad) {
        gcall_fail(c, GS_INVALID_ARGUMENT, -1, "Append to %s: metadata key \"%.100s\" is not "
                   "supported: evs serve keeps $maxCount, $maxAge and $tb (non-negative "
                   "integers) and custom keys not starting with '$' ($acl and $cacheControl "
                   "are not implemented)", meta_stream, bad);
        json_decref(custom);
        json_decref(j);
        return;
    }
    char *ctext = json_object_size(custom) ? json_dumps(custom, JSON_COMPACT | JSON_PRESERVE_ORDER)
                                           : NULL;
    meta.custom = ctext;
    meta.custom_len = ctext ? strlen(ctext) : 0;
    json_decref(custom);
    json_decref(j);
    int64_t mv = 0;
    uint64_t t0 = gcall_started_ns(c);
    int rc = evs_stream_metadata_set(&mv, s->db, gcall_tenant(c), stream, expected, &meta);
    serve_metrics_append(s->metrics, SERVE_PROTO_GRPC, rc, rc == 0 ? 1 : 0, now_ns() - t0);
    free(ctext);
    if (rc == EVS_ECONFLICT) {
        evs_stream_meta_info *mi = NULL;
        int64_t actual = EVS_NO_STREAM;
        if (evs_stream_metadata_get(&mi, s->db, gcall_tenant(c), stream) == 0)
            actual = mi->meta_version;
        evs_stream_meta_info_free(mi);
        wrong_expected(c, expected, actual);
        return;
    }
    if (rc < 0) {
        fail_lib(c, rc, "Append (stream metadata)", stream);
        return;
    }
    uint64_t head = 0;
    if (evs_head_position(&head, s->db, NULL) == 0)
        serve_notify_head(s, head);
    append_success(c, mv, head);
}

static void k_append(gcall *c, const uint8_t *req, size_t len)
{
    serve *s = gcall_serve(c);
    const char *tenant = gcall_tenant(c);
    if (gcall_truncated(c)) {
        char max[24];
        snprintf(max, sizeof(max), "%" PRIu32, s->cfg.max_message_bytes);
        const char *kv[] = {"exception", "maximum-append-size-exceeded",
                            "maximum-append-size", max};
        gcall_fail_md(c, GS_INVALID_ARGUMENT, kv, 2,
                      "Maximum Append Size of %s bytes exceeded (evs serve "
                      "--max-message-bytes); nothing was written", max);
        return;
    }
    size_t cap = 16, n = 0, pos = 0, mlen;
    const uint8_t *msg;
    AppendReq **msgs = calloc(cap, sizeof(*msgs));
    evs_event_data *ev = NULL;
    char **meta = NULL;
    char *stream = NULL;
    if (!msgs) {
        gcall_fail(c, GS_RESOURCE_EXHAUSTED, -1, "Append: out of memory");
        return;
    }
    while (gcall_next_message(req, len, &pos, &msg, &mlen)) {
        if (n == cap) {
            AppendReq **nm = realloc(msgs, 2 * cap * sizeof(*nm));
            if (!nm) {
                gcall_fail(c, GS_RESOURCE_EXHAUSTED, -1, "Append: out of memory");
                goto out;
            }
            msgs = nm;
            cap *= 2;
        }
        msgs[n] = event_store__client__streams__append_req__unpack(gcall_allocator(c), mlen,
                                                                   msg);
        if (!msgs[n]) {
            fail_unpack(c, "Append", "AppendReq");
            goto out;
        }
        n++;
    }
    if (n == 0 || msgs[0]->content_case != EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__CONTENT_OPTIONS) {
        gcall_fail(c, GS_INVALID_ARGUMENT, -1, "Append: the first message must carry the "
                   "options (stream identifier and expected revision)");
        goto out;
    }
    const EventStore__Client__Streams__AppendReq__Options *o = msgs[0]->options;
    if (!(stream = stream_name(c, o->stream_identifier, "Append")))
        goto out;
    int64_t expected;
    if (expected_of(&expected, (int)o->expected_stream_revision_case, o->revision) < 0) {
        gcall_fail(c, GS_INVALID_ARGUMENT, -1, "Append: expected revision %" PRIu64
                   " is beyond the largest stream revision", o->revision);
        goto out;
    }
    size_t nev = n - 1;
    if (stream[0] == '$' && stream[1] == '$') {
        if (nev != 1 || msgs[1]->content_case !=
                            EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__CONTENT_PROPOSED_MESSAGE)
            gcall_fail(c, GS_INVALID_ARGUMENT, -1, "Append to %s: a metadata stream takes "
                       "exactly one $metadata event per append", stream);
        else
            metadata_append(c, stream, expected, msgs[1]->proposed_message);
        goto out;
    }
    ev = calloc(nev ? nev : 1, sizeof(*ev));
    meta = calloc(nev ? nev : 1, sizeof(*meta));
    if (!ev || !meta) {
        gcall_fail(c, GS_RESOURCE_EXHAUSTED, -1, "Append: out of memory");
        goto out;
    }
    for (size_t i = 0; i < nev; i++) {
        const AppendReq *r = msgs[i + 1];
        if (r->content_case != EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__CONTENT_PROPOSED_MESSAGE) {
            gcall_fail(c, GS_INVALID_ARGUMENT, -1, "Append: message %zu is not a proposed "
                       "message (only the first carries the options)", i + 1);
            goto out;
        }
        const EventStore__Client__Streams__AppendReq__ProposedMessage *m = r->proposed_message;
        const char *type = meta_get(m, "type");
        const char *ct = meta_get(m, "content-type");
        if (!type || !*type) {
            gcall_fail(c, GS_INVALID_ARGUMENT, -1, "Append: event %zu has no \"type\" in its "
                       "metadata; give the event type", i);
            goto out;
        }
        if (uuid_in(&ev[i].id, m->id) < 0) {
            gcall_fail(c, GS_INVALID_ARGUMENT, -1, "Append: event %zu: its id is not a UUID",
                       i);
            goto out;
        }
        ev[i].type = type;
        ev[i].data = m->data.data;
        ev[i].data_len = m->data.len;
        ev[i].content_type =
            ct && strcmp(ct, JSON_TYPE) == 0 ? EVS_CONTENT_JSON : EVS_CONTENT_BINARY;
        if (custom_in(&meta[i], &ev[i].metadata_len, &m->custom_metadata) < 0) {
            gcall_fail(c, GS_RESOURCE_EXHAUSTED, -1, "Append: out of memory");
            goto out;
        }
        if (meta[i]) {
            ev[i].metadata = meta[i];
        } else if (m->custom_metadata.len) {
            ev[i].metadata = m->custom_metadata.data;
            ev[i].metadata_len = m->custom_metadata.len;
        }
    }
    uint64_t t0 = gcall_started_ns(c);
    if (nev == 0) {
        /* No events: KurrentDB checks the expected revision and answers
         * with the stream's; nothing is written. */
        int64_t v;
        int rc = evs_stream_version(&v, s->db, tenant, stream);
        if (rc < 0) {
            fail_lib(c, rc, "Append", stream);
            goto out;
        }
        int okv = expected == EVS_ANY || (expected == EVS_NO_STREAM && v < 0) ||
                  (expected == EVS_STREAM_EXISTS && v >= 0) || expected == v;
        if (okv)
            append_success(c, v, 0);
        else
            wrong_expected(c, expected, v);
        goto out;
    }
    evs_append_result res;
    memset(&res, 0, sizeof(res));
    int rc = evs_append(&res, s->db, tenant, stream, expected, ev, nev);
    serve_metrics_append(s->metrics, SERVE_PROTO_GRPC, rc, rc == 0 ? nev : 0, now_ns() - t0);
    if (rc == 0) {
        serve_notify_head(s, res.last_position);
        append_success(c, res.stream_version, res.last_position);
    } else if (rc == EVS_ECONFLICT) {
        wrong_expected(c, expected, res.stream_version);
    } else if (rc == EVS_ETOOBIG) {
        char max[24];
        snprintf(max, sizeof(max), "%" PRIu32, s->cfg.max_message_bytes);
        const char *kv[] = {"exception", "maximum-append-size-exceeded",
                            "maximum-append-size", max};
        const char *detail = evs_last_error();
        gcall_fail_md(c, GS_INVALID_ARGUMENT, kv, 2, "Append: %s",
                      detail && *detail ? detail : evs_strerror(rc));
    } else {
        fail_lib(c, rc, "Append", stream);
    }
out:
    if (meta)
        for (size_t i = 0; i + 1 < n; i++)
            free(meta[i]);
    free(meta);
    free(ev);
    free(stream);
    for (size_t i = 0; i < n; i++)
        if (msgs[i])
            event_store__client__streams__append_req__free_unpacked(msgs[i],
                                                                     gcall_free_allocator());
    free(msgs);
}

/* ------------------------------------------------------------------ */
/* Read                                                                */
/* ------------------------------------------------------------------ */

/* A $all filter (KurrentDB's FilterOptions): on the stream name or the
 * event type, a POSIX extended regular expression or prefixes. */
typedef struct kfilter {
    int on;               /* 0 none, 1 stream name, 2 event type */
    int has_regex;
    regex_t re;
    char **prefixes;
    size_t nprefixes;
    uint64_t interval;    /* subscriptions: a checkpoint every this many
                             events considered */
} kfilter;

typedef struct kreader {
    evs_iter *it;
    uint64_t remaining;   /* events still to send */
    int structured_ids;   /* the client asked for structured UUIDs */
    int skip_system;      /* $all: leave out system streams */
    kfilter f;
} kreader;

static void kfilter_free(kfilter *f)
{
    if (f->has_regex)
        regfree(&f->re);
    for (size_t i = 0; i < f->nprefixes; i++)
        free(f->prefixes[i]);
    free(f->prefixes);
    memset(f, 0, sizeof(*f));
}

static void kreader_free(void *p)
{
    kreader *r = p;
    if (!r)
        return;
    evs_iter_free(r->it);
    kfilter_free(&r->f);
    free(r);
}

/* Take the request's filter in; 0, or -1 after failing the call. */
static int kfilter_in(gcall *c, kfilter *f, const ReadOptions *o)
{
    memset(f, 0, sizeof(*f));
    if (o->filter_option_case != EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__FILTER_OPTION_FILTER ||
        !o->filter)
        return 0;
    const EventStore__Client__Streams__ReadReq__Options__FilterOptions *fo = o->filter;
    const EventStore__Client__Streams__ReadReq__Options__FilterOptions__Expression *x = NULL;
    if (fo->filter_case == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__FILTER_OPTIONS__FILTER_STREAM_IDENTIFIER) {
        f->on = 1;
        x = fo->stream_identifier;
    } else if (fo->filter_case == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__FILTER_OPTIONS__FILTER_EVENT_TYPE) {
        f->on = 2;
        x = fo->event_type;
    }
    uint64_t window =
        fo->window_case == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__FILTER_OPTIONS__WINDOW_MAX &&
                fo->max > 0 ? fo->max : 32;
    f->interval = window * (fo->checkpointintervalmultiplier ? fo->checkpointintervalmultiplier : 1);
    if (!x)
        return 0;
    if (x->regex && *x->regex) {
        int rc = regcomp(&f->re, x->regex, REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            char err[256];
            regerror(rc, &f->re, err, sizeof(err));
            gcall_fail(c, GS_INVALID_ARGUMENT, -1, "Read: the filter's regular expression "
                       "\"%.200s\" does not compile as a POSIX extended one: %s", x->regex, err);
            return -1;
        }
        f->has_regex = 1;
    }
    if (x->n_prefix) {
        f->prefixes = calloc(x->n_prefix, sizeof(*f->prefixes));
        if (!f->prefixes) {
            gcall_fail(c, GS_RESOURCE_EXHAUSTED, -1, "Read: out of memory");
            return -1;
        }
        for (size_t i = 0; i < x->n_prefix; i++) {
            if (!(f->prefixes[i] = strdup(x->prefix[i] ? x->prefix[i] : ""))) {
                gcall_fail(c, GS_RESOURCE_EXHAUSTED, -1, "Read: out of memory");
                return -1;
            }
            f->nprefixes++;
        }
    }
    return 0;
}

static int kfilter_match(const kfilter *f, const evs_event *e)
{
    if (!f->on)
        return 1;
    const char *v = f->on == 1 ? e->stream : e->type;
    if (f->has_regex && regexec(&f->re, v, 0, NULL, 0) != 0)
        return 0;
    if (f->nprefixes) {
        for (size_t i = 0; i < f->nprefixes; i++)
            if (strncmp(v, f->prefixes[i], strlen(f->prefixes[i])) == 0)
                return 1;
        return 0;
    }
    return 1;
}

/* The custom metadata bytes of a stored event: a {"$base64": ...}
 * wrapper decoded (malloc'd in *buf), else the stored bytes. */
static ProtobufCBinaryData custom_out(const evs_event *e, uint8_t **buf)
{
    ProtobufCBinaryData d = {e->metadata_len, (uint8_t *)e->metadata};
    *buf = NULL;
    if (!e->metadata_len || ((const char *)e->metadata)[0] != '{' ||
        !memmem(e->metadata, e->metadata_len, B64_KEY, sizeof(B64_KEY) - 1))
        return d;
    json_error_t jerr;
    json_t *j = json_loadb(e->metadata, e->metadata_len, 0, &jerr);
    json_t *v = j && json_is_object(j) && json_object_size(j) == 1
                    ? json_object_get(j, B64_KEY) : NULL;
    if (v && json_is_string(v)) {
        size_t l = json_string_length(v);
        uint8_t *out = malloc(l / 4 * 3 + 3);
        int n = out ? EVP_DecodeBlock(out, (const unsigned char *)json_string_value(v),
                                      (int)l) : -1;
        if (n >= 0) {
            /* EVP_DecodeBlock counts the padding's zero bytes */
            if (l >= 1 && json_string_value(v)[l - 1] == '=')
                n--;
            if (l >= 2 && json_string_value(v)[l - 2] == '=')
                n--;
            d.data = out;
            d.len = (size_t)n;
            *buf = out;
        } else {
            free(out);
        }
    }
    json_decref(j);
    return d;
}

/* Send e as a ReadResp, then `next`. */
static void send_event(gcall *c, kreader *r, const evs_event *e, gcall_step next)
{
    EventStore__Client__Streams__ReadResp__ReadEvent__RecordedEvent__MetadataEntry m[3];
    EventStore__Client__Streams__ReadResp__ReadEvent__RecordedEvent__MetadataEntry *mp[3];
    char created[24], uuid[37];
    snprintf(created, sizeof(created), "%" PRId64, e->recorded_at * 10); /* 100 ns ticks */
    const char *keys[3] = {"type", "content-type", "created"};
    const char *vals[3] = {e->type, e->content_type == EVS_CONTENT_JSON ? JSON_TYPE : BINARY_TYPE,
                           created};
    for (int i = 0; i < 3; i++) {
        EventStore__Client__Streams__ReadResp__ReadEvent__RecordedEvent__MetadataEntry init =
            EVENT_STORE__CLIENT__STREAMS__READ_RESP__READ_EVENT__RECORDED_EVENT__METADATA_ENTRY__INIT;
        m[i] = init;
        m[i].key = (char *)keys[i];
        m[i].value = (char *)vals[i];
        mp[i] = &m[i];
    }
    EventStore__Client__UUID id = EVENT_STORE__CLIENT__UUID__INIT;
    EventStore__Client__UUID__Structured st = EVENT_STORE__CLIENT__UUID__STRUCTURED__INIT;
    if (r->structured_ids) {
        uint64_t hi = 0, lo = 0;
        for (int i = 0; i < 8; i++) {
            hi = hi << 8 | e->id.bytes[i];
            lo = lo << 8 | e->id.bytes[8 + i];
        }
        st.most_significant_bits = (int64_t)hi;
        st.least_significant_bits = (int64_t)lo;
        id.value_case = EVENT_STORE__CLIENT__UUID__VALUE_STRUCTURED;
        id.structured = &st;
    } else {
        evs_uuid_format(uuid, &e->id);
        id.value_case = EVENT_STORE__CLIENT__UUID__VALUE_STRING;
        id.string = uuid;
    }
    EventStore__Client__StreamIdentifier sid = EVENT_STORE__CLIENT__STREAM_IDENTIFIER__INIT;
    sid.stream_name.data = (uint8_t *)e->stream;
    sid.stream_name.len = strlen(e->stream);
    char *meta_name = NULL;
    if (!e->stream[0] && strcmp(e->type, "$metadata") == 0) {
        /* the store's notice of a metadata change or soft delete: shown
         * in $all as KurrentDB shows it, in the stream "$$STREAM" */
        json_error_t jerr;
        json_t *j = json_loadb(e->data, e->data_len, 0, &jerr);
        json_t *sn = j ? json_object_get(j, "stream") : NULL;
        if (sn && json_is_string(sn) && (meta_name = malloc(json_string_length(sn) + 3))) {
            memcpy(meta_name, "$$", 2);
            memcpy(meta_name + 2, json_string_value(sn), json_string_length(sn) + 1);
            sid.stream_name.data = (uint8_t *)meta_name;
            sid.stream_name.len = json_string_length(sn) + 2;
        }
        json_decref(j);
    }
    RecordedEvent re = EVENT_STORE__CLIENT__STREAMS__READ_RESP__READ_EVENT__RECORDED_EVENT__INIT;
    re.id = &id;
    re.stream_identifier = &sid;
    re.stream_revision = e->stream_version >= 0 ? (uint64_t)e->stream_version : 0;
    re.prepare_position = re.commit_position = e->position;
    re.n_metadata = 3;
    re.metadata = mp;
    uint8_t *buf;
    re.custom_metadata = custom_out(e, &buf);
    re.data.data = (uint8_t *)e->data;
    re.data.len = e->data_len;
    ReadEvent rev = EVENT_STORE__CLIENT__STREAMS__READ_RESP__READ_EVENT__INIT;
    rev.event = &re;
    rev.position_case = EVENT_STORE__CLIENT__STREAMS__READ_RESP__READ_EVENT__POSITION_COMMIT_POSITION;
    rev.commit_position = e->position;
    ReadResp resp = EVENT_STORE__CLIENT__STREAMS__READ_RESP__INIT;
    resp.content_case = EVENT_STORE__CLIENT__STREAMS__READ_RESP__CONTENT_EVENT;
    resp.event = &rev;
    gcall_send(c, &resp.base, next);
    free(buf);
    free(meta_name);
}

static void read_step(gcall *c)
{
    kreader *r = gcall_state(c);
    if (gcall_done(c)) {
        gcall_fail(c, GS_CANCELLED, -1, "cancelled by the client");
        return;
    }
    for (;;) {
        if (r->remaining == 0) {
            gcall_end(c);
            return;
        }
        const evs_event *e;
        int rc = evs_iter_next(&e, r->it);
        if (rc == EVS_ITEROVER) {
            gcall_end(c);
            return;
        }
        if (rc < 0) {
            fail_lib(c, rc, "Read", NULL);
            return;
        }
        if ((r->skip_system && e->stream[0] == '$') || !kfilter_match(&r->f, e))
            continue;
        r->remaining--;
        send_event(c, r, e, read_step);
        return;
    }
}

static void not_found(gcall *c, const char *stream)
{
    EventStore__Client__StreamIdentifier sid = EVENT_STORE__CLIENT__STREAM_IDENTIFIER__INIT;
    sid.stream_name.data = (uint8_t *)stream;
    sid.stream_name.len = strlen(stream);
    EventStore__Client__Streams__ReadResp__StreamNotFound nf =
        EVENT_STORE__CLIENT__STREAMS__READ_RESP__STREAM_NOT_FOUND__INIT;
    nf.stream_identifier = &sid;
    ReadResp resp = EVENT_STORE__CLIENT__STREAMS__READ_RESP__INIT;
    resp.content_case = EVENT_STORE__CLIENT__STREAMS__READ_RESP__CONTENT_STREAM_NOT_FOUND;
    resp.stream_not_found = &nf;
    gcall_send(c, &resp.base, gcall_end);
}

/* ------------------------------------------------------------------ */
/* Subscriptions (Read with `subscription`)                            */
/* ------------------------------------------------------------------ */

/* A subscription reads what is stored in batches (each read a snapshot),
 * sends caught_up once a read comes back empty, then parks until a commit
 * passes the head that read saw, and reads again from the last event
 * sent. */
typedef struct ksub {
    kreader r;            /* it (the current read), structured_ids */
    char *stream;         /* NULL: $all */
    int64_t next_version; /* stream: the next version to send */
    uint64_t next_pos;    /* $all: the next position to send */
    uint64_t seen;        /* the global head before the current read */
    uint64_t since;       /* filtered: events considered since the last
                             checkpoint */
    uint64_t checkpoint;  /* > 0: a checkpoint at this position to send */
    int caught_up;
    serve_sub_gauge *gauge;
    serve_metrics *metrics;
} ksub;

#define SUB_BATCH 512u

static void ksub_free(void *p)
{
    ksub *k = p;
    if (!k)
        return;
    if (k->gauge)
        serve_metrics_sub_close(k->metrics, k->gauge);
    evs_iter_free(k->r.it);
    kfilter_free(&k->r.f);
    free(k->stream);
    free(k);
}

static void sub_step(gcall *c);

/* The wall clock now, as the subscription messages' timestamps. */
static void now_timestamp(EventStore__Client__Timestamp *t)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    *t = (EventStore__Client__Timestamp)EVENT_STORE__CLIENT__TIMESTAMP__INIT;
    t->seconds = ts.tv_sec;
    t->nanos = (int32_t)ts.tv_nsec;
}

static void sub_checkpoint(gcall *c)
{
    ksub *k = gcall_state(c);
    EventStore__Client__Timestamp t;
    now_timestamp(&t);
    EventStore__Client__Streams__ReadResp__Checkpoint cp =
        EVENT_STORE__CLIENT__STREAMS__READ_RESP__CHECKPOINT__INIT;
    cp.commit_position = cp.prepare_position = k->checkpoint;
    cp.timestamp = &t;
    ReadResp resp = EVENT_STORE__CLIENT__STREAMS__READ_RESP__INIT;
    resp.content_case = EVENT_STORE__CLIENT__STREAMS__READ_RESP__CONTENT_CHECKPOINT;
    resp.checkpoint = &cp;
    k->checkpoint = 0;
    gcall_send(c, &resp.base, sub_step);
}

static void sub_caught_up(gcall *c)
{
    ksub *k = gcall_state(c);
    EventStore__Client__Timestamp t;
    now_timestamp(&t);
    EventStore__Client__Streams__ReadResp__CaughtUp cu =
        EVENT_STORE__CLIENT__STREAMS__READ_RESP__CAUGHT_UP__INIT;
    cu.timestamp = &t;
    ReadResp resp = EVENT_STORE__CLIENT__STREAMS__READ_RESP__INIT;
    resp.content_case = EVENT_STORE__CLIENT__STREAMS__READ_RESP__CONTENT_CAUGHT_UP;
    resp.caught_up = &cu;
    k->caught_up = 1;
    gcall_send(c, &resp.base, sub_step);
}

/* A live subscription (caught up) whose read found a full batch: it is
 * SUB_BATCH or more events behind the head and reads from the store
 * until a read comes back short, then sends caught_up again. */
static void sub_fell_behind(gcall *c)
{
    ksub *k = gcall_state(c);
    EventStore__Client__Timestamp t;
    now_timestamp(&t);
    EventStore__Client__Streams__ReadResp__FellBehind fb =
        EVENT_STORE__CLIENT__STREAMS__READ_RESP__FELL_BEHIND__INIT;
    fb.timestamp = &t;
    ReadResp resp = EVENT_STORE__CLIENT__STREAMS__READ_RESP__INIT;
    resp.content_case = EVENT_STORE__CLIENT__STREAMS__READ_RESP__CONTENT_FELL_BEHIND;
    resp.fell_behind = &fb;
    k->caught_up = 0;
    gcall_send(c, &resp.base, sub_step);
}

static void sub_step(gcall *c)
{
    ksub *k = gcall_state(c);
    serve *s = gcall_serve(c);
    const char *tenant = gcall_tenant(c);
    if (gcall_done(c)) {
        if (atomic_load(&s->stopping))
            gcall_fail(c, GS_UNAVAILABLE, -1, "the server is shutting down; resubscribe "
                       "from your last position after it restarts");
        else
            gcall_fail(c, GS_CANCELLED, -1, "cancelled by the client");
        return;
    }
    if (!gcall_still_allowed(c))
        return;
    if (k->checkpoint) {
        sub_checkpoint(c);
        return;
    }
    for (;;) {
        int rc;
        if (!k->r.it) {
            if ((rc = evs_head_position(&k->seen, s->db, NULL)) < 0) {
                fail_lib(c, rc, "Read (subscription)", k->stream);
                return;
            }
            rc = k->stream ? evs_read_stream(&k->r.it, s->db, tenant, k->stream,
                                             k->next_version, EVS_FORWARD, SUB_BATCH)
                           : evs_read_all(&k->r.it, s->db, tenant, k->next_pos, SUB_BATCH);
            if (rc < 0) {
                fail_lib(c, rc, "Read (subscription)", k->stream);
                return;
            }
            k->r.remaining = 0; /* events this read returned */
        }
        const evs_event *e;
        rc = evs_iter_next(&e, k->r.it);
        if (rc == EVS_ITEROVER) {
            uint64_t got = k->r.remaining;
            evs_iter_free(k->r.it);
            k->r.it = NULL;
            if (got == SUB_BATCH && k->caught_up) {
                sub_fell_behind(c); /* then reads on (k->r.it is NULL) */
                return;
            }
            if (got == SUB_BATCH)
                continue; /* a full batch: more may be stored */
            if (!k->caught_up) {
                sub_caught_up(c);
                return;
            }
            gcall_park(c, k->seen, sub_step);
            return;
        }
        if (rc < 0) {
            fail_lib(c, rc, "Read (subscription)", k->stream);
            return;
        }
        k->r.remaining++;
        if (k->stream)
            k->next_version = e->stream_version + 1;
        else
            k->next_pos = e->position + 1;
        if (!k->stream && e->stream[0] == '$')
            continue;
        int match = kfilter_match(&k->r.f, e);
        if (k->r.f.on && ++k->since >= k->r.f.interval) {
            k->since = 0;
            k->checkpoint = e->position; /* sent after this event, if any */
        }
        if (!match) {
            if (k->checkpoint) {
                sub_checkpoint(c);
                return;
            }
            continue;
        }
        serve_metrics_sub_position(k->gauge, e->position);
        send_event(c, &k->r, e, sub_step);
        return;
    }
}

static void k_subscribe(gcall *c, const ReadOptions *o)
{
    serve *s = gcall_serve(c);
    const char *tenant = gcall_tenant(c);
    ksub *k = calloc(1, sizeof(*k));
    if (!k) {
        gcall_fail(c, GS_RESOURCE_EXHAUSTED, -1, "Read (subscription): out of memory");
        return;
    }
    k->metrics = s->metrics;
    gcall_set_state(c, k, ksub_free);
    k->r.structured_ids = !(o->uuid_option && o->uuid_option->content_case ==
                            EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__UUIDOPTION__CONTENT_STRING);
    if (o->read_direction == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__READ_DIRECTION__Backwards) {
        gcall_fail(c, GS_INVALID_ARGUMENT, -1, "Read: a subscription goes forwards only");
        return;
    }
    int rc;
    if (o->stream_option_case == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__STREAM_OPTION_STREAM) {
        const EventStore__Client__Streams__ReadReq__Options__StreamOptions *so = o->stream;
        if (!(k->stream = stream_name(c, so->stream_identifier, "Read (subscription)")))
            return;
        int64_t v = EVS_NO_STREAM;
        rc = evs_stream_version(&v, s->db, tenant, k->stream);
        if (rc < 0) {
            fail_lib(c, rc, "Read (subscription)", k->stream);
            return;
        }
        switch (so->revision_option_case) {
        case EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__STREAM_OPTIONS__REVISION_OPTION_REVISION:
            /* after the revision given (KurrentDB's subscription checkpoint) */
            k->next_version = so->revision >= INT64_MAX ? INT64_MAX : (int64_t)so->revision + 1;
            break;
        case EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__STREAM_OPTIONS__REVISION_OPTION_END:
            k->next_version = v + 1;
            break;
        default:
            k->next_version = 0;
            break;
        }
    } else if (o->stream_option_case == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__STREAM_OPTION_ALL) {
        const EventStore__Client__Streams__ReadReq__Options__AllOptions *ao = o->all;
        uint64_t head = 0;
        if (kfilter_in(c, &k->r.f, o) < 0)
            return;
        if ((rc = evs_head_position(&head, s->db, NULL)) < 0) {
            fail_lib(c, rc, "Read (subscription)", NULL);
            return;
        }
        switch (ao->all_option_case) {
        case EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__ALL_OPTIONS__ALL_OPTION_POSITION:
            /* after the position given */
            k->next_pos = ao->position ? ao->position->commit_position + 1 : 1;
            break;
        case EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__ALL_OPTIONS__ALL_OPTION_END:
            k->next_pos = head + 1;
            break;
        default:
            k->next_pos = 1;
            break;
        }
    } else {
        gcall_fail(c, GS_INVALID_ARGUMENT, -1, "Read: name a stream or $all in the options");
        return;
    }
    k->gauge = serve_metrics_sub_open(s->metrics, SERVE_PROTO_GRPC);
    char id[37];
    evs_uuid u;
    if (RAND_bytes(u.bytes, (int)sizeof(u.bytes)) != 1)
        memset(u.bytes, 0, sizeof(u.bytes));
    evs_uuid_format(id, &u);
    EventStore__Client__Streams__ReadResp__SubscriptionConfirmation conf =
        EVENT_STORE__CLIENT__STREAMS__READ_RESP__SUBSCRIPTION_CONFIRMATION__INIT;
    conf.subscription_id = id;
    ReadResp resp = EVENT_STORE__CLIENT__STREAMS__READ_RESP__INIT;
    resp.content_case = EVENT_STORE__CLIENT__STREAMS__READ_RESP__CONTENT_CONFIRMATION;
    resp.confirmation = &conf;
    gcall_send(c, &resp.base, sub_step);
}

static void k_read(gcall *c, const uint8_t *req, size_t len)
{
    serve *s = gcall_serve(c);
    const char *tenant = gcall_tenant(c);
    ReadReq *rq = event_store__client__streams__read_req__unpack(gcall_allocator(c), len, req);
    if (!rq) {
        fail_unpack(c, "Read", "ReadReq");
        return;
    }
    char *stream = NULL;
    const ReadOptions *o = rq->options;
    if (!o) {
        gcall_fail(c, GS_INVALID_ARGUMENT, -1, "Read: the request has no options");
        goto out;
    }
    if (o->count_option_case == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__COUNT_OPTION_SUBSCRIPTION) {
        k_subscribe(c, o);
        goto out;
    }
    kreader *r = calloc(1, sizeof(*r));
    if (!r) {
        gcall_fail(c, GS_RESOURCE_EXHAUSTED, -1, "Read: out of memory");
        goto out;
    }
    gcall_set_state(c, r, kreader_free);
    if (o->stream_option_case == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__STREAM_OPTION_ALL &&
        kfilter_in(c, &r->f, o) < 0)
        goto out;
    r->remaining = o->count_option_case == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__COUNT_OPTION_COUNT
                       ? o->count : UINT64_MAX;
    r->structured_ids = !(o->uuid_option && o->uuid_option->content_case ==
                          EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__UUIDOPTION__CONTENT_STRING);
    int backwards = o->read_direction == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__READ_DIRECTION__Backwards;
    int rc;
    if (o->stream_option_case == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__STREAM_OPTION_STREAM) {
        const EventStore__Client__Streams__ReadReq__Options__StreamOptions *so = o->stream;
        if (!(stream = stream_name(c, so->stream_identifier, "Read")))
            goto out;
        int tomb = 0, absent = 1;
        int64_t last = EVS_NO_STREAM;
        if (stream[0] == '$') {
            /* a system stream ("$$STREAM": its metadata): no metadata of
             * its own */
            rc = evs_stream_version(&last, s->db, tenant, stream);
            absent = last < 0;
        } else {
            evs_stream_meta_info *mi = NULL;
            rc = evs_stream_metadata_get(&mi, s->db, tenant, stream);
            if (rc == 0) {
                tomb = mi->tombstoned;
                absent = mi->stream_version < 0 || mi->deleted;
                last = mi->stream_version;
                evs_stream_meta_info_free(mi);
            }
        }
        if (rc < 0) {
            fail_lib(c, rc, "Read", stream);
            goto out;
        }
        if (tomb) {
            fail_deleted(c, stream);
            goto out;
        }
        if (absent) {
            not_found(c, stream);
            goto out;
        }
        int64_t from;
        switch (so->revision_option_case) {
        case EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__STREAM_OPTIONS__REVISION_OPTION_REVISION:
            from = so->revision > INT64_MAX ? INT64_MAX : (int64_t)so->revision;
            break;
        case EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__STREAM_OPTIONS__REVISION_OPTION_END:
            from = backwards ? EVS_END : (last < INT64_MAX ? last + 1 : INT64_MAX);
            break;
        default: /* start */
            from = 0;
            break;
        }
        rc = evs_read_stream(&r->it, s->db, tenant, stream, from,
                             backwards ? EVS_BACKWARD : EVS_FORWARD, 0);
        if (rc < 0) {
            fail_lib(c, rc, "Read", stream);
            goto out;
        }
    } else if (o->stream_option_case == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__STREAM_OPTION_ALL) {
        const EventStore__Client__Streams__ReadReq__Options__AllOptions *ao = o->all;
        uint64_t head = 0;
        rc = evs_head_position(&head, s->db, NULL);
        if (rc < 0) {
            fail_lib(c, rc, "Read", NULL);
            goto out;
        }
        int at_pos = ao->all_option_case ==
                     EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__ALL_OPTIONS__ALL_OPTION_POSITION;
        int at_end = ao->all_option_case ==
                     EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__ALL_OPTIONS__ALL_OPTION_END;
        uint64_t p = at_pos && ao->position ? ao->position->commit_position : 0;
        if (!backwards) {
            /* forwards: from the position, inclusive; from the end: nothing */
            uint64_t from = at_end ? (head < UINT64_MAX ? head + 1 : head) : p;
            r->skip_system = 1;
            rc = evs_read_all(&r->it, s->db, tenant, from ? from : 1, 0);
        } else {
            /* backwards: before the position (exclusive), or from the end;
             * from the start: nothing */
            evs_query all;
            memset(&all, 0, sizeof(all));
            uint64_t bound = at_pos ? p : 0;
            if (!at_pos && !at_end)
                r->remaining = 0;
            if (at_pos && p <= 1)
                r->remaining = 0;
            r->skip_system = 1;
            rc = evs_read_query(&r->it, s->db, tenant, &all, at_pos && p > 1 ? bound : 0,
                                EVS_BACKWARD, 0);
        }
        if (rc < 0) {
            fail_lib(c, rc, "Read", NULL);
            goto out;
        }
    } else {
        gcall_fail(c, GS_INVALID_ARGUMENT, -1, "Read: name a stream or $all in the options");
        goto out;
    }
    event_store__client__streams__read_req__free_unpacked(rq, gcall_free_allocator());
    free(stream);
    read_step(c);
    return;
out:
    free(stream);
    event_store__client__streams__read_req__free_unpacked(rq, gcall_free_allocator());
}

/* ------------------------------------------------------------------ */
/* Delete and Tombstone                                                */
/* ------------------------------------------------------------------ */

/* Both requests and answers have the same shape: options { stream
 * identifier, expected revision }, and a position or no_position. */
static void delete_common(gcall *c, const EventStore__Client__StreamIdentifier *sid,
                          int which, uint64_t revision, int hard)
{
    serve *s = gcall_serve(c);
    const char *tenant = gcall_tenant(c);
    const char *what = hard ? "Tombstone" : "Delete";
    char *stream = stream_name(c, sid, what);
    if (!stream)
        return;
    int64_t expected;
    if (expected_of(&expected, which, revision) < 0) {
        gcall_fail(c, GS_INVALID_ARGUMENT, -1, "%s: expected revision %" PRIu64
                   " is beyond the largest stream revision", what, revision);
        free(stream);
        return;
    }
    uint64_t pos = 0;
    int rc = hard ? evs_stream_tombstone(&pos, s->db, tenant, stream, expected)
                  : evs_stream_delete(&pos, s->db, tenant, stream, expected);
    if (rc == EVS_ECONFLICT) {
        int64_t v = EVS_NO_STREAM;
        if (evs_stream_version(&v, s->db, tenant, stream) < 0)
            v = EVS_NO_STREAM;
        fail_wev(c, stream, expected, v);
        free(stream);
        return;
    }
    if (rc < 0) {
        fail_lib(c, rc, what, stream);
        free(stream);
        return;
    }
    free(stream);
    if (pos)
        serve_notify_head(s, pos);
    EventStore__Client__Empty empty = EVENT_STORE__CLIENT__EMPTY__INIT;
    if (hard) {
        EventStore__Client__Streams__TombstoneResp__Position p =
            EVENT_STORE__CLIENT__STREAMS__TOMBSTONE_RESP__POSITION__INIT;
        EventStore__Client__Streams__TombstoneResp resp =
            EVENT_STORE__CLIENT__STREAMS__TOMBSTONE_RESP__INIT;
        if (pos) {
            p.commit_position = p.prepare_position = pos;
            resp.position_option_case =
                EVENT_STORE__CLIENT__STREAMS__TOMBSTONE_RESP__POSITION_OPTION_POSITION;
            resp.position = &p;
        } else {
            resp.position_option_case =
                EVENT_STORE__CLIENT__STREAMS__TOMBSTONE_RESP__POSITION_OPTION_NO_POSITION;
            resp.no_position = &empty;
        }
        gcall_reply(c, &resp.base);
    } else {
        EventStore__Client__Streams__DeleteResp__Position p =
            EVENT_STORE__CLIENT__STREAMS__DELETE_RESP__POSITION__INIT;
        EventStore__Client__Streams__DeleteResp resp =
            EVENT_STORE__CLIENT__STREAMS__DELETE_RESP__INIT;
        if (pos) {
            p.commit_position = p.prepare_position = pos;
            resp.position_option_case =
                EVENT_STORE__CLIENT__STREAMS__DELETE_RESP__POSITION_OPTION_POSITION;
            resp.position = &p;
        } else {
            resp.position_option_case =
                EVENT_STORE__CLIENT__STREAMS__DELETE_RESP__POSITION_OPTION_NO_POSITION;
            resp.no_position = &empty;
        }
        gcall_reply(c, &resp.base);
    }
}

static void k_delete(gcall *c, const uint8_t *req, size_t len)
{
    EventStore__Client__Streams__DeleteReq *rq =
        event_store__client__streams__delete_req__unpack(gcall_allocator(c), len, req);
    if (!rq) {
        fail_unpack(c, "Delete", "DeleteReq");
        return;
    }
    if (!rq->options)
        gcall_fail(c, GS_INVALID_ARGUMENT, -1, "Delete: the request has no options");
    else
        delete_common(c, rq->options->stream_identifier,
                      (int)rq->options->expected_stream_revision_case, rq->options->revision, 0);
    event_store__client__streams__delete_req__free_unpacked(rq, gcall_free_allocator());
}

static void k_tombstone(gcall *c, const uint8_t *req, size_t len)
{
    EventStore__Client__Streams__TombstoneReq *rq =
        event_store__client__streams__tombstone_req__unpack(gcall_allocator(c), len, req);
    if (!rq) {
        fail_unpack(c, "Tombstone", "TombstoneReq");
        return;
    }
    if (!rq->options)
        gcall_fail(c, GS_INVALID_ARGUMENT, -1, "Tombstone: the request has no options");
    else
        delete_common(c, rq->options->stream_identifier,
                      (int)rq->options->expected_stream_revision_case, rq->options->revision, 1);
    event_store__client__streams__tombstone_req__free_unpacked(rq, gcall_free_allocator());
}

/* ------------------------------------------------------------------ */
/* kurrentdb.protocol.v2.streams.StreamsService/AppendSession          */
/* ------------------------------------------------------------------ */

typedef Kurrentdb__Protocol__V2__Streams__AppendRequest V2AppendRequest;
typedef Kurrentdb__Protocol__V2__Streams__AppendRecord V2Record;

static void fail_too_big(gcall *c)
{
    char max[24];
    snprintf(max, sizeof(max), "%" PRIu32, gcall_serve(c)->cfg.max_message_bytes);
    const char *kv[] = {"exception", "maximum-append-size-exceeded", "maximum-append-size", max};
    gcall_fail_md(c, GS_INVALID_ARGUMENT, kv, 2,
                  "Maximum Append Size of %s bytes exceeded (evs serve --max-message-bytes); "
                  "nothing was written", max);
}

/* A record's properties -> a JSON object (malloc'd text, NULL when none).
 * 0, -1 out of memory, -2 a struct or list value (not kept). */
static int properties_in(char **out, const V2Record *r)
{
    *out = NULL;
    if (!r->n_properties)
        return 0;
    json_t *o = json_object();
    int rc = o ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < r->n_properties; i++) {
        const Kurrentdb__Protocol__V2__Streams__Value *v = r->properties[i]->value;
        json_t *j = NULL;
        switch (v ? v->kind_case : KURRENTDB__PROTOCOL__V2__STREAMS__VALUE__KIND__NOT_SET) {
        case KURRENTDB__PROTOCOL__V2__STREAMS__VALUE__KIND_NUMBER_VALUE:
            j = json_real(v->number_value);
            break;
        case KURRENTDB__PROTOCOL__V2__STREAMS__VALUE__KIND_STRING_VALUE:
            j = json_string(v->string_value ? v->string_value : "");
            break;
        case KURRENTDB__PROTOCOL__V2__STREAMS__VALUE__KIND_BOOL_VALUE:
            j = json_boolean(v->bool_value);
            break;
        case KURRENTDB__PROTOCOL__V2__STREAMS__VALUE__KIND_STRUCT_VALUE:
        case KURRENTDB__PROTOCOL__V2__STREAMS__VALUE__KIND_LIST_VALUE:
            rc = -2;
            continue;
        default:
            j = json_null();
            break;
        }
        const char *k = r->properties[i]->key ? r->properties[i]->key : "";
        if (!j || json_object_set_new(o, k, j) < 0)
            rc = -1;
    }
    if (rc == 0 && !(*out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER)))
        rc = -1;
    json_decref(o);
    return rc;
}

static void k_append_session(gcall *c, const uint8_t *req, size_t len)
{
    serve *s = gcall_serve(c);
    const char *tenant = gcall_tenant(c);
    if (gcall_truncated(c)) {
        fail_too_big(c);
        return;
    }
    size_t cap = 8, n = 0, pos = 0, mlen, nev = 0;
    const uint8_t *msg;
    V2AppendRequest **msgs = calloc(cap, sizeof(*msgs));
    evs_stream_append *parts = NULL;
    evs_append_result *res = NULL;
    evs_event_data *ev = NULL;
    char **meta = NULL;
    if (!msgs) {
        gcall_fail(c, GS_RESOURCE_EXHAUSTED, -1, "AppendSession: out of memory");
        return;
    }
    while (gcall_next_message(req, len, &pos, &msg, &mlen)) {
        if (n == cap) {
            V2AppendRequest **nm = realloc(msgs, 2 * cap * sizeof(*nm));
            if (!nm) {
                gcall_fail(c, GS_RESOURCE_EXHAUSTED, -1, "AppendSession: out of memory");
                goto out;
            }
            msgs = nm;
            cap *= 2;
        }
        msgs[n] = kurrentdb__protocol__v2__streams__append_request__unpack(gcall_allocator(c),
                                                                           mlen, msg);
        if (!msgs[n]) {
            gcall_fail(c, GS_INVALID_ARGUMENT, -1, "AppendSession: a message is not a valid "
                       "kurrentdb.protocol.v2.streams.AppendRequest");
            goto out;
        }
        nev += msgs[n]->n_records;
        n++;
    }
    if (n == 0) {
        gcall_fail(c, GS_INVALID_ARGUMENT, -1, "AppendSession: no AppendRequest was sent");
        goto out;
    }
    parts = calloc(n, sizeof(*parts));
    res = calloc(n, sizeof(*res));
    ev = calloc(nev ? nev : 1, sizeof(*ev));
    meta = calloc(nev ? nev : 1, sizeof(*meta));
    if (!parts || !res || !ev || !meta) {
        gcall_fail(c, GS_RESOURCE_EXHAUSTED, -1, "AppendSession: out of memory");
        goto out;
    }
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        const V2AppendRequest *r = msgs[i];
        if (!r->stream || !*r->stream) {
            gcall_fail(c, GS_INVALID_ARGUMENT, -1, "AppendSession: request %zu names no "
                       "stream", i);
            goto out;
        }
        if (!r->n_records) {
            gcall_fail(c, GS_INVALID_ARGUMENT, -1, "AppendSession: request %zu (stream %s) "
                       "has no records", i, r->stream);
            goto out;
        }
        int64_t x = r->has_expected_revision ? r->expected_revision : EVS_ANY;
        if (x < 0 && x != EVS_ANY && x != EVS_NO_STREAM && x != EVS_STREAM_EXISTS) {
            gcall_fail(c, GS_INVALID_ARGUMENT, -1, "AppendSession: request %zu: expected "
                       "revision %" PRId64 " is none of -1 (no stream), -2 (any), -4 (stream "
                       "exists) or a revision", i, x);
            goto out;
        }
        parts[i].stream = r->stream;
        parts[i].expected_version = x;
        parts[i].events = &ev[at];
        parts[i].nevents = r->n_records;
        for (size_t j = 0; j < r->n_records; j++, at++) {
            const V2Record *rec = r->records[j];
            const char *type = rec->schema && rec->schema->name ? rec->schema->name : NULL;
            if (!type || !*type) {
                gcall_fail(c, GS_INVALID_ARGUMENT, -1, "AppendSession: stream %s, record %zu "
                           "has no schema name (the event type)", r->stream, j);
                goto out;
            }
            if (rec->record_id && *rec->record_id &&
                evs_uuid_parse(&ev[at].id, rec->record_id) < 0) {
                gcall_fail(c, GS_INVALID_ARGUMENT, -1, "AppendSession: stream %s, record %zu: "
                           "record_id \"%.64s\" is not a UUID", r->stream, j, rec->record_id);
                goto out;
            }
            ev[at].type = type;
            ev[at].data = rec->data.data;
            ev[at].data_len = rec->data.len;
            ev[at].content_type = rec->schema->has_format &&
                                          rec->schema->format ==
                                              KURRENTDB__PROTOCOL__V2__STREAMS__SCHEMA_FORMAT__SCHEMA_FORMAT_JSON
                                      ? EVS_CONTENT_JSON : EVS_CONTENT_BINARY;
            int prc = properties_in(&meta[at], rec);
            if (prc == -2) {
                gcall_fail(c, GS_INVALID_ARGUMENT, -1, "AppendSession: stream %s, record %zu: "
                           "a property holds a struct or list value; evs serve keeps null, "
                           "number, string and bool properties", r->stream, j);
                goto out;
            }
            if (prc < 0) {
                gcall_fail(c, GS_RESOURCE_EXHAUSTED, -1, "AppendSession: out of memory");
                goto out;
            }
            if (meta[at]) {
                ev[at].metadata = meta[at];
                ev[at].metadata_len = strlen(meta[at]);
            }
        }
    }
    uint64_t t0 = gcall_started_ns(c);
    int rc = evs_append_multi(res, s->db, tenant, parts, n);
    serve_metrics_append(s->metrics, SERVE_PROTO_GRPC, rc, rc == 0 ? nev : 0, now_ns() - t0);
    if (rc == EVS_ECONFLICT) {
        for (size_t i = 0; i < n; i++)
            if (res[i].status == EVS_ECONFLICT) {
                fail_wev(c, parts[i].stream, parts[i].expected_version, res[i].stream_version);
                goto out;
            }
    }
    if (rc == EVS_EDELETED) {
        for (size_t i = 0; i < n; i++) {
            int64_t v;
            if (evs_stream_version(&v, s->db, tenant, parts[i].stream) == EVS_EDELETED) {
                fail_deleted(c, parts[i].stream);
                goto out;
            }
        }
    }
    if (rc == EVS_ETOOBIG) {
        fail_too_big(c);
        goto out;
    }
    if (rc < 0) {
        fail_lib(c, rc, "AppendSession", NULL);
        goto out;
    }
    Kurrentdb__Protocol__V2__Streams__AppendResponse *outs = calloc(n, sizeof(*outs));
    Kurrentdb__Protocol__V2__Streams__AppendResponse **outp = calloc(n, sizeof(*outp));
    if (!outs || !outp) {
        free(outs);
        free(outp);
        gcall_fail(c, GS_RESOURCE_EXHAUSTED, -1, "AppendSession: out of memory (the append "
                   "was written)");
        goto out;
    }
    uint64_t last = 0;
    for (size_t i = 0; i < n; i++) {
        Kurrentdb__Protocol__V2__Streams__AppendResponse init =
            KURRENTDB__PROTOCOL__V2__STREAMS__APPEND_RESPONSE__INIT;
        outs[i] = init;
        outs[i].stream = (char *)parts[i].stream;
        outs[i].has_stream_revision = 1;
        outs[i].stream_revision = res[i].stream_version;
        outp[i] = &outs[i];
        if (res[i].last_position > last)
            last = res[i].last_position;
    }
    serve_notify_head(s, last);
    Kurrentdb__Protocol__V2__Streams__AppendSessionResponse resp =
        KURRENTDB__PROTOCOL__V2__STREAMS__APPEND_SESSION_RESPONSE__INIT;
    resp.n_output = n;
    resp.output = outp;
    resp.has_position = 1;
    resp.position = (int64_t)last;
    gcall_reply(c, &resp.base);
    free(outs);
    free(outp);
out:
    if (meta)
        for (size_t i = 0; i < nev; i++)
            free(meta[i]);
    free(meta);
    free(ev);
    free(res);
    free(parts);
    for (size_t i = 0; i < n; i++)
        kurrentdb__protocol__v2__streams__append_request__free_unpacked(msgs[i],
                                                                        gcall_free_allocator());
    free(msgs);
}

/* ------------------------------------------------------------------ */
/* BatchAppend and ServerFeatures                                      */
/* ------------------------------------------------------------------ */

static void k_batch_append(gcall *c, const uint8_t *req, size_t len)
{
    (void)req;
    (void)len;
    gcall_fail(c, GS_UNIMPLEMENTED, -1, "BatchAppend is not implemented by evs serve; "
               "GetSupportedMethods does not list it, so KurrentDB clients use Append");
}

static void k_features(gcall *c, const uint8_t *req, size_t len)
{
    (void)req;
    (void)len;
    static const char *const list[][2] = {
        {"read", "event_store.client.streams.streams"},
        {"append", "event_store.client.streams.streams"},
        {"delete", "event_store.client.streams.streams"},
        {"tombstone", "event_store.client.streams.streams"},
        {"getsupportedmethods", "event_store.client.server_features.serverfeatures"},
        {"appendsession", "kurrentdb.protocol.v2.streams.streamsservice"},
    };
    enum { N = sizeof(list) / sizeof(list[0]) };
    EventStore__Client__ServerFeatures__SupportedMethod m[N], *mp[N];
    for (size_t i = 0; i < N; i++) {
        EventStore__Client__ServerFeatures__SupportedMethod init =
            EVENT_STORE__CLIENT__SERVER_FEATURES__SUPPORTED_METHOD__INIT;
        m[i] = init;
        m[i].method_name = (char *)list[i][0];
        m[i].service_name = (char *)list[i][1];
        mp[i] = &m[i];
    }
    EventStore__Client__ServerFeatures__SupportedMethods resp =
        EVENT_STORE__CLIENT__SERVER_FEATURES__SUPPORTED_METHODS__INIT;
    resp.n_methods = N;
    resp.methods = mp;
    resp.event_store_server_version = (char *)"24.10.0";
    gcall_reply(c, &resp.base);
}

const gcall_method serve_kurrent_methods[] = {
    {"/event_store.client.streams.Streams/Append", k_append, SERVE_WRITE},
    {"/event_store.client.streams.Streams/Read", k_read, SERVE_READ},
    {"/event_store.client.streams.Streams/Delete", k_delete, SERVE_WRITE},
    {"/event_store.client.streams.Streams/Tombstone", k_tombstone, SERVE_WRITE},
    {"/event_store.client.streams.Streams/BatchAppend", k_batch_append, SERVE_WRITE},
    {"/kurrentdb.protocol.v2.streams.StreamsService/AppendSession", k_append_session,
     SERVE_WRITE},
    {"/event_store.client.server_features.ServerFeatures/GetSupportedMethods", k_features,
     SERVE_READ},
    {NULL, NULL, 0},
};

const char *const serve_client_streaming[] = {
    "/event_store.client.streams.Streams/Append",
    "/kurrentdb.protocol.v2.streams.StreamsService/AppendSession",
    NULL,
};
