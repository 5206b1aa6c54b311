/*
 * cmd_import.c -- `evs import [FILE|-]`: append events read as JSON Lines
 * (the shape `evs export` writes), in large atomic batches, and restore
 * the checkpoints and snapshots of an export when every event keeps its
 * position (importer, "Exact").
 *
 * Order. The store numbers the events of one evs_append_ex call in part
 * order, each part one stream (or the events of no stream: "stream":null,
 * kept as stream "" here, a name no stream has). A batch therefore keeps the file's order
 * only while every event either continues the batch's last part or starts
 * a new stream. So the batch is flushed (written) before an event when:
 *
 *   - the batch is full (--batch events, or BATCH_BYTES of payload);
 *   - the event's tenant differs from the batch's (one tenant per call);
 *   - the event's stream is in the batch but is not its last part:
 *
 *         file:   a1 a2 b1 a3        batch: [a: a1 a2] [b: b1]
 *                          ^^ a is not the last part -> flush, then a3
 *
 *   - the event is the tombstone ("$streamDeleted") of a stream in the
 *     batch: the store keeps a tombstone only as a part of its own.
 *
 * Stream lifecycle. The metadata streams "$$STREAM", the "$lifecycle"
 * records and the store's own event types go through evs_restore_append
 * in either mode (only checkpoints need an exact import). An export
 * leaves out what stream metadata hides, so a stream may be numbered
 * lower here than in the file: fix_truncate moves truncate-before into
 * this store's numbering after the import.
 *
 * Idempotency. Every exported event carries its id, and the store answers
 * an append of already-stored ids with the original result, writing
 * nothing: re-importing a file is a no-op, and an import that stopped can
 * be run again. A part is new when its first position is past the head
 * read just before the call. When a batch straddles what is stored and
 * what is not (a rerun with another --batch), or the store rejects it, the
 * batch is replayed one event at a time: the good events before a bad one
 * go in and the error names the bad one's line.
 */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char help[] =
    "usage: evs import [FILE|-] [--batch N]\n"
    "\n"
    "Append the events of FILE (default: standard input), JSON Lines in the\n"
    "shape 'evs export' writes, keeping their ids, tenants, streams, data,\n"
    "metadata, tags, correlation and causation ids, recorded_at and global\n"
    "order. Events whose ids are already stored are not written again, so\n"
    "importing the same file twice writes nothing the second time.\n"
    "Into an empty store every event keeps its position, and the file's\n"
    "checkpoints and snapshots are restored too: the copy's export is the\n"
    "same bytes. Into a store holding other events, the events are appended\n"
    "after them (new positions) and checkpoints and snapshots are left out;\n"
    "standard error says so.\n"
    "Stream metadata, soft deletes and tombstones are restored either way; a\n"
    "stream whose first events the file left out (hidden or scavenged in the\n"
    "source) is numbered from a lower version here, and its truncate-before\n"
    "is moved to match (docs/CLI.md, \"import\").\n"
    "Prints 'imported N events' on standard error, and a progress line\n"
    "when it is a terminal.\n"
    "\n"
    "Options:\n"
    "  --batch N       events per atomic append (default 1000)\n"
    "  --db URI        the store (created when missing)\n"
    "  -h, --help      this help\n"
    "\n"
    "Exit status: 0 ok, 1 error (also: a bad line; the events before it are\n"
    "stored), 2 usage error, 4 store busy (another process still writes it\n"
    "after --wait).\n";

enum { OPT_BATCH = 0x100 };

static const struct option options[] = {
    {"batch", required_argument, NULL, OPT_BATCH},
    CLI_OPTIONS_END,
};

static const cli_cmd cmd = {"import", help, options};

#define DEFAULT_BATCH 1000
#define MAX_BATCH 100000
/* Payload bytes after which a batch is written whatever its count: keeps
 * memory and the size of one append bounded. */
#define BATCH_BYTES (16u * 1024u * 1024u)
/* The store's names an export holds (include/evstore.h, "Stream
 * lifecycle", and evs_restore_append) */
#define CHECKPOINT_PREFIX "$checkpoint-"
#define STORE_TYPE_METADATA "$metadata"
#define STORE_TYPE_TOMBSTONE "$streamDeleted"

/* ------------------------------------------------------------------ */
/* One line                                                            */
/* ------------------------------------------------------------------ */

typedef struct line_event {
    const char *tenant;
    const char *stream;
    evs_event_data ev;
    uint64_t position; /* the source's position; 0: the line has none */
    int64_t version;   /* the source's stream version; -1: none (ignored but
                          to see whether a stream was renumbered) */
    int is_snapshot;   /* a snapshot line: tenant, stream and snap */
    evs_snapshot snap;
} line_event;

enum {
    K_POSITION, K_TENANT, K_STREAM, K_VERSION, K_TYPE, K_ID, K_CONTENT_TYPE,
    K_DATA, K_DATA_BASE64, K_METADATA, K_METADATA_BASE64, K_TAGS,
    K_CORRELATION, K_CAUSATION, K_RECORDED_AT, K_KIND, K_SCHEMA, K_SAVED_AT,
    NKEYS
};

static const char *const keys[NKEYS] = {
    "position", "tenant", "stream", "version", "type", "id", "content_type",
    "data", "data_base64", "metadata", "metadata_base64", "tags",
    "correlation_id", "causation_id", "recorded_at", "kind", "schema",
    "saved_at",
};

/* The keys of a snapshot line ("kind":"snapshot"); every other key of an
 * event line is an error there, and these three are errors in an event
 * line. */
static const unsigned char snapshot_key[NKEYS] = {
    [K_TENANT] = 1, [K_STREAM] = 1, [K_VERSION] = 1, [K_DATA] = 1,
    [K_DATA_BASE64] = 1, [K_KIND] = 1, [K_SCHEMA] = 1, [K_SAVED_AT] = 1,
};

static const char *events_word(uint64_t n)
{
    return n == 1 ? "event" : "events";
}

static int is_null(const char *v, size_t n)
{
    return n == 4 && memcmp(v, "null", 4) == 0;
}

/* A string member; NULL (and an error) when it is not a string. */
static const char *get_string(const cli_json_member *m, char *err,
                              size_t errlen)
{
    if (m->str == NULL)
        snprintf(err, errlen, "\"%s\" must be a string", m->key);
    return m->str;
}

/* An optional UUID member: a string, or null / absent for none. */
static int get_uuid(const cli_json_member *m, evs_uuid *out, char *err,
                    size_t errlen)
{
    const char *s;

    if (is_null(m->val, m->val_len))
        return 0;
    if ((s = get_string(m, err, errlen)) == NULL)
        return -1;
    if (evs_uuid_parse(out, s) < 0) {
        snprintf(err, errlen, "\"%s\" is not a UUID: \"%.40s\"", m->key, s);
        return -1;
    }
    return 0;
}

/* A snapshot line's fields (the keys are checked), into le->snap. */
static int parse_snapshot(cli_arena *a, const cli_json_member *const *by_key,
                          line_event *le, char *err, size_t errlen)
{
    const cli_json_member *m;
    int64_t v;
    void *bytes;

    le->is_snapshot = 1;
    if (by_key[K_STREAM] == NULL || by_key[K_VERSION] == NULL ||
        by_key[K_SCHEMA] == NULL || by_key[K_SAVED_AT] == NULL) {
        snprintf(err, errlen, "a snapshot line needs \"stream\", \"version\", "
                 "\"schema\", \"data\" (or \"data_base64\") and \"saved_at\"");
        return -1;
    }
    if ((le->stream = get_string(by_key[K_STREAM], err, errlen)) == NULL ||
        (le->snap.schema = get_string(by_key[K_SCHEMA], err, errlen)) == NULL)
        return -1;
    m = by_key[K_VERSION];
    if (m->str != NULL || cli_parse_i64(cli_arena_strndup(a, m->val, m->val_len), &v) < 0 ||
        v < 0) {
        snprintf(err, errlen, "\"version\" must be a stream version (a number >= 0)");
        return -1;
    }
    le->snap.version = v;
    if ((by_key[K_DATA] != NULL) == (by_key[K_DATA_BASE64] != NULL)) {
        snprintf(err, errlen, by_key[K_DATA] ? "both \"data\" and \"data_base64\""
                                             : "missing \"data\" (or \"data_base64\")");
        return -1;
    }
    if (by_key[K_DATA] != NULL) {
        le->snap.data = by_key[K_DATA]->val;
        le->snap.data_len = by_key[K_DATA]->val_len;
    } else {
        const char *s = get_string(by_key[K_DATA_BASE64], err, errlen);

        if (s == NULL)
            return -1;
        if (cli_base64_decode(a, s, strlen(s), &bytes, &le->snap.data_len) < 0) {
            snprintf(err, errlen, "\"data_base64\" is not base64");
            return -1;
        }
        le->snap.data = bytes;
    }
    m = by_key[K_SAVED_AT];
    if (m->str == NULL || cli_time_parse(&le->snap.saved_at, m->str, strlen(m->str)) < 0 ||
        le->snap.saved_at <= 0) {
        snprintf(err, errlen, "\"saved_at\" is not an RFC 3339 time after 1970 such as "
                 "2026-11-22T02:19:18.123456Z");
        return -1;
    }
    return 0;
}

static int parse_line(cli_arena *a, const char *p, size_t n, line_event *le,
                      char *err, size_t errlen)
{
    const cli_json_member *by_key[NKEYS] = {0};
    cli_json_member *m;
    const char *ctype = NULL;
    int count, i, k;

    memset(le, 0, sizeof *le);
    le->tenant = "";
    le->ev.content_type = EVS_CONTENT_JSON;
    count = cli_json_object(a, p, n, &m, err, errlen);
    if (count < 0)
        return -1;
    for (i = 0; i < count; i++) {
        for (k = 0; k < NKEYS && strcmp(m[i].key, keys[k]) != 0; k++)
            ;
        if (k == NKEYS) {
            snprintf(err, errlen, "unknown key \"%.64s\"", m[i].key);
            return -1;
        }
        if (by_key[k] != NULL) {
            snprintf(err, errlen, "key \"%s\" appears twice", keys[k]);
            return -1;
        }
        by_key[k] = &m[i];
    }
    if (by_key[K_TENANT] != NULL &&
        (le->tenant = get_string(by_key[K_TENANT], err, errlen)) == NULL)
        return -1;
    if (by_key[K_KIND] != NULL) {
        const char *kind = get_string(by_key[K_KIND], err, errlen);

        if (kind == NULL)
            return -1;
        if (strcmp(kind, "snapshot") == 0) {
            for (k = 0; k < NKEYS; k++)
                if (by_key[k] != NULL && !snapshot_key[k]) {
                    snprintf(err, errlen, "key \"%s\" is not one of a snapshot line",
                             keys[k]);
                    return -1;
                }
            return parse_snapshot(a, by_key, le, err, errlen);
        }
        if (strcmp(kind, "event") != 0) {
            snprintf(err, errlen, "\"kind\" must be \"event\" (or absent) or "
                     "\"snapshot\", not \"%.32s\"", kind);
            return -1;
        }
    }
    for (k = K_SCHEMA; k <= K_SAVED_AT; k++)
        if (by_key[k] != NULL) {
            snprintf(err, errlen, "key \"%s\" is one of a snapshot line (\"kind\":"
                     "\"snapshot\"), not of an event", keys[k]);
            return -1;
        }
    /* version is the source store's: this store numbers the events
     * itself (the same numbers when importing into an empty store).
     * position is kept to see that it does. */
    if (by_key[K_POSITION] != NULL && !is_null(by_key[K_POSITION]->val,
                                               by_key[K_POSITION]->val_len)) {
        const cli_json_member *pm = by_key[K_POSITION];

        if (pm->str != NULL ||
            cli_parse_u64(cli_arena_strndup(a, pm->val, pm->val_len), &le->position) < 0 ||
            le->position == 0) {
            snprintf(err, errlen, "\"position\" must be a global position (a number >= 1)");
            return -1;
        }
    }
    le->version = -1;
    if (by_key[K_VERSION] != NULL && by_key[K_VERSION]->str == NULL &&
        !is_null(by_key[K_VERSION]->val, by_key[K_VERSION]->val_len) &&
        (cli_parse_i64(cli_arena_strndup(a, by_key[K_VERSION]->val, by_key[K_VERSION]->val_len),
                       &le->version) < 0 || le->version < 0))
        le->version = -1;
    if (by_key[K_STREAM] == NULL) {
        snprintf(err, errlen, "missing \"stream\"");
        return -1;
    }
    /* null: an event of no stream, "" inside the importer (a stream name
     * is never empty). */
    if (is_null(by_key[K_STREAM]->val, by_key[K_STREAM]->val_len))
        le->stream = "";
    else if ((le->stream = get_string(by_key[K_STREAM], err, errlen)) == NULL)
        return -1;
    else if (le->stream[0] == '\0') {
        snprintf(err, errlen, "\"stream\" is empty (null is an event of no "
                 "stream)");
        return -1;
    }
    if (by_key[K_TYPE] == NULL) {
        snprintf(err, errlen, "missing \"type\"");
        return -1;
    }
    if ((le->ev.type = get_string(by_key[K_TYPE], err, errlen)) == NULL)
        return -1;
    if (by_key[K_ID] != NULL &&
        get_uuid(by_key[K_ID], &le->ev.id, err, errlen) < 0)
        return -1;
    if (by_key[K_CORRELATION] != NULL &&
        get_uuid(by_key[K_CORRELATION], &le->ev.correlation_id, err,
                 errlen) < 0)
        return -1;
    if (by_key[K_CAUSATION] != NULL &&
        get_uuid(by_key[K_CAUSATION], &le->ev.causation_id, err,
                 errlen) < 0)
        return -1;

    /* Data: "data" (a JSON value, stored as its text) or "data_base64"
     * (bytes, binary unless content_type says json). */
    if (by_key[K_CONTENT_TYPE] != NULL) {
        ctype = get_string(by_key[K_CONTENT_TYPE], err, errlen);
        if (ctype == NULL)
            return -1;
        if (strcmp(ctype, "json") != 0 && strcmp(ctype, "binary") != 0) {
            snprintf(err, errlen, "\"content_type\" must be \"json\" or "
                     "\"binary\", not \"%.32s\"", ctype);
            return -1;
        }
    }
    if ((by_key[K_DATA] != NULL) == (by_key[K_DATA_BASE64] != NULL)) {
        snprintf(err, errlen, by_key[K_DATA] ? "both \"data\" and "
                 "\"data_base64\"" : "missing \"data\" (or \"data_base64\")");
        return -1;
    }
    if (by_key[K_DATA] != NULL) {
        if (ctype != NULL && strcmp(ctype, "binary") == 0) {
            snprintf(err, errlen, "binary data must be given as "
                     "\"data_base64\"");
            return -1;
        }
        le->ev.data = by_key[K_DATA]->val;
        le->ev.data_len = by_key[K_DATA]->val_len;
    } else {
        const cli_json_member *d = by_key[K_DATA_BASE64];
        const char *s = get_string(d, err, errlen);
        void *bytes;

        if (s == NULL)
            return -1;
        if (cli_base64_decode(a, s, strlen(s), &bytes, &le->ev.data_len) < 0) {
            snprintf(err, errlen, "\"data_base64\" is not base64");
            return -1;
        }
        le->ev.data = bytes;
        le->ev.content_type = ctype != NULL && strcmp(ctype, "json") == 0
                                  ? EVS_CONTENT_JSON
                                  : EVS_CONTENT_BINARY;
    }

    /* Metadata: a JSON value (null = none) or "metadata_base64". */
    if (by_key[K_METADATA] != NULL && by_key[K_METADATA_BASE64] != NULL) {
        snprintf(err, errlen, "both \"metadata\" and \"metadata_base64\"");
        return -1;
    }
    if (by_key[K_METADATA] != NULL &&
        !is_null(by_key[K_METADATA]->val, by_key[K_METADATA]->val_len)) {
        le->ev.metadata = by_key[K_METADATA]->val;
        le->ev.metadata_len = by_key[K_METADATA]->val_len;
    } else if (by_key[K_METADATA_BASE64] != NULL) {
        const char *s = get_string(by_key[K_METADATA_BASE64], err, errlen);
        void *bytes;

        if (s == NULL)
            return -1;
        if (cli_base64_decode(a, s, strlen(s), &bytes,
                              &le->ev.metadata_len) < 0) {
            snprintf(err, errlen, "\"metadata_base64\" is not base64");
            return -1;
        }
        le->ev.metadata = bytes;
    }

    if (by_key[K_TAGS] != NULL &&
        !is_null(by_key[K_TAGS]->val, by_key[K_TAGS]->val_len)) {
        const char **tags;
        int nt = cli_json_strings(a, by_key[K_TAGS]->val,
                                  by_key[K_TAGS]->val_len, &tags);

        if (nt < 0) {
            snprintf(err, errlen, "\"tags\" must be an array of strings");
            return -1;
        }
        le->ev.tags = tags;
        le->ev.ntags = (size_t)nt;
    }

    if (by_key[K_RECORDED_AT] != NULL &&
        !is_null(by_key[K_RECORDED_AT]->val, by_key[K_RECORDED_AT]->val_len)) {
        const char *s = get_string(by_key[K_RECORDED_AT], err, errlen);

        if (s == NULL)
            return -1;
        if (cli_time_parse(&le->ev.recorded_at, s, strlen(s)) < 0) {
            snprintf(err, errlen, "\"recorded_at\" is not an RFC 3339 time "
                     "such as 2026-11-22T02:19:18.123456Z: \"%.40s\"", s);
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* The batch                                                           */
/* ------------------------------------------------------------------ */

typedef struct part {
    const char *stream;
    size_t first, n; /* events[first .. first+n) */
} part;

typedef struct importer {
    evs_db *db;
    size_t max;             /* --batch */
    const char *tenant;     /* of every event in the batch */
    evs_event_data *events; /* max */
    size_t *lines;          /* line of each event */
    uint64_t *positions;    /* the line's "position" of each event, 0: none */
    int64_t *versions;      /* the line's "version" of each event, -1: none */
    size_t n;
    part *parts; /* max */
    size_t nparts;
    int *table; /* stream -> part index + 1; 0 = empty */
    size_t table_mask;
    size_t bytes;
    cli_arena arena; /* the batch's copies of everything */

    const char *name; /* of the input, for messages */
    uint64_t written; /* events appended by this import */
    uint64_t present; /* events found already stored */
    cli_progress progress;
    uint64_t bytes_read, input_size; /* input_size 0: not known (a pipe) */

    /* Exact (lossless) import: every event gets the position it has in
     * the file, so the file's checkpoint events (whose tokens are
     * positions) and snapshots (of stream versions) mean the same here
     * and are restored too. It holds from the start when the store is
     * empty, or when it already holds the file's events at their
     * positions (a re-run); it ends where a line's position differs from
     * the one the store gives it (the store held other events, or the
     * file has gaps). Otherwise the events are appended as any append
     * (new positions) and checkpoints and snapshots are left out. */
    int mode_known;       /* decided at the first event line */
    int exact;
    uint64_t head0;       /* the store's head before the import */
    uint64_t next_new;    /* exact: the position of the next new event */
    uint64_t snapshots;   /* restored */
    uint64_t skipped_checkpoints, skipped_snapshots;
    size_t inexact_line;  /* where exactness ended (0: it held or never did) */

    /* Streams renumbered (an event stored at another version than its
     * line's: the source hid or had scavenged its first events, or this
     * store held the stream already) and streams with lifecycle rules:
     * after the import, a truncate-before in the source's numbering is
     * moved into this store's (fix_truncate). */
    struct renum **rtab;
    size_t rcap, rn;
    uint64_t retruncated;
} importer;

typedef struct renum {
    struct renum *next;
    char *key; /* tenant NUL stream NUL */
    int64_t delta; /* source version - version here */
    int delta_known, rules;
} renum;

static size_t hash_str(const char *s)
{
    size_t h = 14695981039346656037u; /* FNV-1a */

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

/* ---- renumbered streams and streams with rules ----------------------------- */

static size_t hash_key(const char *tenant, const char *stream, size_t sl)
{
    size_t h = hash_str(tenant) * 1099511628211u;

    for (size_t i = 0; i < sl; i++)
        h = (h ^ (unsigned char)stream[i]) * 1099511628211u;
    return h;
}

/* The entry of (tenant, stream[0..sl)); added when add, else NULL when
 * missing. */
static renum *renum_get(importer *im, const char *tenant, const char *stream, size_t sl,
                        int add)
{
    size_t tl = strlen(tenant), h = hash_key(tenant, stream, sl);
    renum *r;

    for (r = im->rcap ? im->rtab[h & (im->rcap - 1)] : NULL; r != NULL; r = r->next)
        if (strcmp(r->key, tenant) == 0 && strlen(r->key + tl + 1) == sl &&
            memcmp(r->key + tl + 1, stream, sl) == 0)
            return r;
    if (!add)
        return NULL;
    if ((im->rn + 1) * 2 > im->rcap) {
        size_t ncap = im->rcap ? im->rcap * 2 : 64;
        renum **nt = cli_xmalloc(ncap * sizeof *nt);

        memset(nt, 0, ncap * sizeof *nt);
        for (size_t i = 0; i < im->rcap; i++)
            while ((r = im->rtab[i]) != NULL) {
                const char *k = r->key;
                size_t b = hash_key(k, k + strlen(k) + 1, strlen(k + strlen(k) + 1)) &
                           (ncap - 1);

                im->rtab[i] = r->next;
                r->next = nt[b];
                nt[b] = r;
            }
        free(im->rtab);
        im->rtab = nt;
        im->rcap = ncap;
    }
    r = cli_xmalloc(sizeof *r);
    memset(r, 0, sizeof *r);
    r->key = cli_xmalloc(tl + sl + 2);
    memcpy(r->key, tenant, tl + 1);
    memcpy(r->key + tl + 1, stream, sl);
    r->key[tl + 1 + sl] = '\0';
    h &= im->rcap - 1;
    r->next = im->rtab[h];
    im->rtab[h] = r;
    im->rn++;
    return r;
}

static void renum_free(importer *im)
{
    for (size_t i = 0; i < im->rcap; i++)
        while (im->rtab[i] != NULL) {
            renum *r = im->rtab[i];

            im->rtab[i] = r->next;
            free(r->key);
            free(r);
        }
    free(im->rtab);
}

/* An event of the source's version `line_version` was stored here at
 * `stored`: remember how far the stream was renumbered (the first
 * such event of a stream decides; 0 is remembered only for a stream
 * with rules, the others need no entry). */
static void note_version(importer *im, const char *stream, const evs_event_data *ev,
                         int64_t line_version, int64_t stored)
{
    renum *r;
    int64_t delta;

    if (stream == NULL || stream[0] == '\0' || stream[0] == '$' || line_version < 0 ||
        stored < 0 || strcmp(ev->type, STORE_TYPE_TOMBSTONE) == 0)
        return;
    delta = line_version - stored;
    r = renum_get(im, im->tenant, stream, strlen(stream), delta != 0);
    if (r != NULL && !r->delta_known) {
        r->delta = delta;
        r->delta_known = 1;
    }
}

/* A "$lifecycle" line: its stream has rules (the record's name follows
 * 32 bytes: evs_restore_append checked the shape). */
static void note_rules(importer *im, const line_event *le)
{
    if (strcmp(le->stream, "$lifecycle") != 0 || le->ev.content_type != EVS_CONTENT_BINARY ||
        le->ev.data_len <= 32)
        return;
    renum_get(im, le->tenant, (const char *)le->ev.data + 32, le->ev.data_len - 32, 1)->rules =
        1;
}

/* After the import: a truncate-before (and so a soft delete) counts the
 * source's versions. Where this store numbered a stream's events lower
 * (the source had hidden or scavenged its first events, which an export
 * leaves out), set it in this store's numbering, so that the same events
 * read and an append after a soft delete reads as in the source: the
 * source's truncate-before minus the shift, or 0 for a stream none of
 * whose events were imported and that has none here. One metadata write
 * per such stream (evs_stream_metadata_set: its metadata version is one
 * more than the source's). Returns an exit status. */
static int fix_truncate(importer *im)
{
    for (size_t i = 0; i < im->rcap; i++)
        for (renum *r = im->rtab[i]; r != NULL; r = r->next) {
            const char *tenant = r->key, *stream = r->key + strlen(r->key) + 1;
            evs_stream_meta_info *info = NULL;
            evs_stream_metadata m;
            int64_t tb;
            int rc;

            if (!r->rules)
                continue;
            if ((rc = evs_stream_metadata_get(&info, im->db, tenant, stream)) < 0) {
                cli_err("import: after the import, stream %s: %s", stream, cli_lib_detail(rc));
                return cli_exit_for(rc);
            }
            tb = info->meta.truncate_before;
            if (info->tombstoned || tb == 0)
                tb = -1; /* nothing to move */
            else if (r->delta_known)
                tb = tb > r->delta ? tb - r->delta : 0;
            else if (info->stream_version == EVS_NO_STREAM)
                tb = 0;
            else
                tb = -1;
            if (tb >= 0 && tb != info->meta.truncate_before) {
                m = info->meta;
                m.truncate_before = tb;
                rc = evs_stream_metadata_set(NULL, im->db, tenant, stream, info->meta_version,
                                             &m);
                if (rc < 0) {
                    cli_err("import: after the import, moving the truncate-before of stream "
                            "%s from %" PRId64 " to %" PRId64 ": %s", stream,
                            info->meta.truncate_before, tb, cli_lib_detail(rc));
                    evs_stream_meta_info_free(info);
                    return cli_exit_for(rc);
                }
                im->retruncated++;
            }
            evs_stream_meta_info_free(info);
        }
    return 0;
}

/* The part index of stream in the batch, or -1. *slot gets its slot. */
static long find_part(const importer *im, const char *stream, size_t *slot)
{
    size_t i = hash_str(stream) & im->table_mask;

    while (im->table[i] != 0) {
        if (strcmp(im->parts[im->table[i] - 1].stream, stream) == 0) {
            *slot = i;
            return im->table[i] - 1;
        }
        i = (i + 1) & im->table_mask;
    }
    *slot = i;
    return -1;
}

static void *copy_bytes(cli_arena *a, const void *p, size_t n)
{
    /* With a NUL after, as the store gives them back. */
    char *q = cli_arena_alloc(a, n + 1);

    if (n > 0)
        memcpy(q, p, n);
    q[n] = '\0';
    return q;
}

static void add_event(importer *im, const line_event *le, size_t line,
                      size_t slot, long pidx)
{
    evs_event_data *ev = &im->events[im->n];
    const char **tags = NULL;
    size_t i;

    if (im->n == 0)
        im->tenant = cli_arena_strndup(&im->arena, le->tenant,
                                       strlen(le->tenant));
    *ev = le->ev;
    ev->type = cli_arena_strndup(&im->arena, le->ev.type, strlen(le->ev.type));
    ev->data = copy_bytes(&im->arena, le->ev.data, le->ev.data_len);
    ev->metadata = le->ev.metadata_len
                       ? copy_bytes(&im->arena, le->ev.metadata,
                                    le->ev.metadata_len)
                       : NULL;
    if (le->ev.ntags > 0) {
        tags = cli_arena_alloc(&im->arena, le->ev.ntags * sizeof *tags);
        for (i = 0; i < le->ev.ntags; i++)
            tags[i] = cli_arena_strndup(&im->arena, le->ev.tags[i],
                                        strlen(le->ev.tags[i]));
    }
    ev->tags = tags;
    im->lines[im->n] = line;
    im->positions[im->n] = le->position;
    im->versions[im->n] = le->version;
    if (pidx < 0) {
        part *pt = &im->parts[im->nparts];

        pt->stream = cli_arena_strndup(&im->arena, le->stream,
                                       strlen(le->stream));
        pt->first = im->n;
        pt->n = 0;
        im->table[slot] = (int)++im->nparts;
        pidx = (long)im->nparts - 1;
    }
    im->parts[pidx].n++;
    im->n++;
    im->bytes += le->ev.data_len + le->ev.metadata_len;
}

static void reset_batch(importer *im)
{
    memset(im->table, 0, (im->table_mask + 1) * sizeof *im->table);
    cli_arena_reset(&im->arena);
    im->n = im->nparts = im->bytes = 0;
    im->tenant = NULL;
}

static void show_progress(importer *im)
{
    cli_progress_show(&im->progress, im->written + im->present, im->bytes_read,
                      im->input_size);
}

static void end_progress(importer *im)
{
    cli_progress_end(&im->progress);
}

/* The store's own types: a stream's metadata (and its announcement, an
 * event of no stream) and a tombstone, which only evs_restore_append
 * writes from an import. */
static int store_type(const char *type)
{
    return strcmp(type, STORE_TYPE_METADATA) == 0 || strcmp(type, STORE_TYPE_TOMBSTONE) == 0;
}

/* A checkpoint stream: its events hold positions, kept only by an exact
 * import. The other system streams ("$$STREAM" metadata, "$lifecycle")
 * are restored by any import. */
static int checkpoint_stream(const char *stream)
{
    return strncmp(stream, CHECKPOINT_PREFIX, strlen(CHECKPOINT_PREFIX)) == 0;
}

/* Append n parts of the batch as one atomic step; a part of stream ""
 * holds the events of no stream. Returns the library's code. */
static int append_parts(importer *im, evs_stream_append *sa, size_t n,
                        evs_append_result *res)
{
    evs_append_request req = EVS_APPEND_REQUEST_INIT;
    size_t i, j;
    int lifecycle = 0;

    for (i = 0; i < n; i++) {
        if (sa[i].stream[0] == '\0')
            sa[i].stream = NULL;
        else if (sa[i].stream[0] == '$')
            lifecycle = 1;
        for (j = 0; !lifecycle && j < sa[i].nevents; j++)
            lifecycle = store_type(sa[i].events[j].type);
    }
    /* exact: the same call, with checkpoint streams allowed; else the
     * stream lifecycle's events need it too */
    if (im->exact || lifecycle)
        return evs_restore_append(res, im->db, im->tenant, sa, n);
    req.tenant = im->tenant;
    req.parts = sa;
    req.nparts = n;
    return evs_append_ex(res, NULL, im->db, &req);
}

/* Exact mode no longer holds from line on: say so once. store_pos: where
 * the event would be stored, 0: the store holds another event at file_pos. */
static void end_exact(importer *im, size_t line, uint64_t file_pos, uint64_t store_pos)
{
    char where[64];

    end_progress(im);
    if (store_pos != 0)
        snprintf(where, sizeof where, "would be stored at %" PRIu64, store_pos);
    else
        snprintf(where, sizeof where, "the store holds another event there");
    cli_err("import: line %zu of %s has position %" PRIu64 " but %s (the store holds "
            "other events, or the file has gaps): from there on the events are appended "
            "with new positions, and checkpoints and snapshots are left out", line,
            im->name, file_pos, where);
    im->exact = 0;
    im->inexact_line = line;
}

/* After a batch in exact mode: did each part land where the file says? */
static void check_positions(importer *im, const evs_append_result *res)
{
    for (size_t i = 0; im->exact && i < im->nparts; i++) {
        uint64_t want = im->positions[im->parts[i].first];

        if (want != 0 && res[i].first_position != want)
            end_exact(im, im->lines[im->parts[i].first], want, res[i].first_position);
    }
}

/* One event at a time, to get past a batch that straddles stored and new
 * events, and to name the line of an event the store rejects. */
static int replay_one_by_one(importer *im)
{
    size_t pi, i;

    for (pi = 0; pi < im->nparts; pi++) {
        const part *pt = &im->parts[pi];

        for (i = pt->first; i < pt->first + pt->n; i++) {
            evs_stream_append one = {pt->stream, EVS_ANY, &im->events[i], 1};
            evs_append_result res;
            uint64_t head = 0;
            int rc;

            if ((rc = evs_head_position(&head, im->db, NULL)) == 0) {
                /* a new event must come at the next position, or the
                 * checkpoints after it would mean other events */
                if (im->exact && im->positions[i] > head && im->positions[i] != head + 1)
                    end_exact(im, im->lines[i], im->positions[i], head + 1);
                if (!im->exact && checkpoint_stream(pt->stream)) {
                    im->skipped_checkpoints++;
                    continue;
                }
                rc = append_parts(im, &one, 1, &res);
            }
            if (rc < 0) {
                end_progress(im);
                cli_err("import: line %zu of %s: %s; the %" PRIu64
                        " %s before it are in the store", im->lines[i],
                        im->name, cli_lib_detail(rc),
                        im->written + im->present,
                        events_word(im->written + im->present));
                return CLI_EXIT_FAIL;
            }
            if (res.first_position > head)
                im->written++;
            else
                im->present++;
            note_version(im, pt->stream, &im->events[i], im->versions[i], res.first_version);
            if (im->exact && im->positions[i] != 0 && res.first_position != im->positions[i])
                end_exact(im, im->lines[i], im->positions[i], res.first_position);
        }
    }
    return 0;
}

static int flush(importer *im)
{
    evs_stream_append *sa;
    evs_append_result *res;
    uint64_t head = 0;
    size_t i;
    int rc, status = 0;

    if (im->n == 0)
        return 0;
    sa = cli_xmalloc(im->nparts * sizeof *sa);
    res = cli_xmalloc(im->nparts * sizeof *res);
    for (i = 0; i < im->nparts; i++) {
        sa[i].stream = im->parts[i].stream;
        sa[i].expected_version = EVS_ANY;
        sa[i].events = &im->events[im->parts[i].first];
        sa[i].nevents = im->parts[i].n;
    }
    rc = evs_head_position(&head, im->db, NULL);
    if (rc == 0 && im->exact) {
        /* the batch's first new event must come at head + 1 (the later
         * ones follow it: run() checked), else its checkpoints would be
         * written at other positions than the file's: one at a time */
        for (i = 0; i < im->n; i++)
            if (im->positions[i] > head) {
                if (im->positions[i] != head + 1) {
                    end_exact(im, im->lines[i], im->positions[i], head + 1);
                    status = replay_one_by_one(im);
                    goto done;
                }
                break;
            }
    }
    if (rc == 0)
        rc = append_parts(im, sa, im->nparts, res);
    if (rc == 0) {
        for (i = 0; i < im->nparts; i++) {
            if (res[i].first_position > head)
                im->written += im->parts[i].n;
            else
                im->present += im->parts[i].n;
            note_version(im, im->parts[i].stream, &im->events[im->parts[i].first],
                         im->versions[im->parts[i].first], res[i].first_version);
        }
        check_positions(im, res);
    } else if (rc == EVS_EDUPLICATE || rc == EVS_EINVAL ||
               rc == EVS_ETOOBIG) {
        /* Something in the batch: find it (the call wrote nothing). */
        status = replay_one_by_one(im);
    } else {
        end_progress(im);
        cli_err("import: %s (stopped at line %zu; the %" PRIu64
                " %s before it are in the store)", cli_lib_detail(rc),
                im->lines[0], im->written + im->present,
                events_word(im->written + im->present));
        status = CLI_EXIT_FAIL;
    }
done:
    free(sa);
    free(res);
    reset_batch(im);
    return status;
}

/* ------------------------------------------------------------------ */
/* The command                                                         */
/* ------------------------------------------------------------------ */

static int is_blank(const char *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
            return 0;
    return 1;
}

/* Decide exact mode at the first event line (importer, "Exact"). */
static int decide_mode(importer *im, const line_event *le)
{
    evs_iter *it = NULL;
    const evs_event *ev;
    int rc;

    im->mode_known = 1;
    if ((rc = evs_head_position(&im->head0, im->db, NULL)) < 0)
        return cli_lib_err(rc, "import");
    im->next_new = im->head0 + 1;
    if (im->head0 == 0) {
        im->exact = 1;
        return 0;
    }
    /* a re-run: the store holds this line's event at its position */
    im->exact = 0;
    if (le->position == 0 || le->position > im->head0 || evs_uuid_is_nil(&le->ev.id))
        return 0;
    if ((rc = evs_read_log(&it, im->db, le->position, 1)) == 0 &&
        (rc = evs_iter_next(&ev, it)) == 0)
        im->exact = ev->position == le->position &&
                    memcmp(&ev->id, &le->ev.id, sizeof ev->id) == 0;
    evs_iter_free(it);
    if (rc < 0 && rc != EVS_ITEROVER)
        return cli_lib_err(rc, "import");
    return 0;
}

/* Exact mode, a line at or below the head the import started from: does
 * the store hold this event there? If not, exactness ends here (after
 * writing the batch, which is still exact). Returns an exit status. */
static int check_stored(importer *im, const line_event *le, size_t lineno)
{
    evs_iter *it = NULL;
    const evs_event *ev;
    int same = 0, rc, status;

    if ((rc = evs_read_log(&it, im->db, le->position, 1)) == 0 &&
        (rc = evs_iter_next(&ev, it)) == 0)
        same = ev->position == le->position && !evs_uuid_is_nil(&le->ev.id) &&
               memcmp(&ev->id, &le->ev.id, sizeof ev->id) == 0;
    evs_iter_free(it);
    if (rc < 0 && rc != EVS_ITEROVER)
        return cli_lib_err(rc, "import");
    if (same)
        return 0;
    if ((status = flush(im)) != 0)
        return status;
    if (im->exact)
        end_exact(im, lineno, le->position, 0);
    return 0;
}

/* One snapshot line: restored in exact mode, else counted as left out. */
static int snapshot_line(importer *im, const line_event *le, size_t lineno)
{
    int rc;

    if (!im->exact) {
        im->skipped_snapshots++;
        return 0;
    }
    if ((rc = evs_snapshot_restore(im->db, le->tenant, le->stream, &le->snap)) < 0) {
        end_progress(im);
        cli_err("import: line %zu of %s: snapshot of %s at version %" PRId64 ": %s; the %"
                PRIu64 " %s before it are in the store", lineno, im->name, le->stream,
                le->snap.version, cli_lib_detail(rc), im->written + im->present,
                events_word(im->written + im->present));
        return CLI_EXIT_FAIL;
    }
    im->snapshots++;
    return 0;
}

static int run(importer *im, FILE *in)
{
    cli_arena line_arena = {0};
    char *buf = NULL, err[256];
    size_t bufcap = 0, lineno = 0;
    ssize_t len;
    int status = 0;

    while ((len = getline(&buf, &bufcap, in)) >= 0) {
        line_event le;
        size_t slot = 0;
        long pidx;

        lineno++;
        im->bytes_read += (uint64_t)len;
        if (is_blank(buf, (size_t)len))
            continue;
        cli_arena_reset(&line_arena);
        if (parse_line(&line_arena, buf, (size_t)len, &le, err, sizeof err) <
            0) {
            /* Write what came before, so that the message is true. */
            if ((status = flush(im)) != 0)
                goto out;
            end_progress(im);
            cli_err("import: line %zu of %s: %s; the %" PRIu64
                    " %s before it are in the store",
                    lineno, im->name, err, im->written + im->present,
                    events_word(im->written + im->present));
            status = CLI_EXIT_FAIL;
            goto out;
        }
        if (le.is_snapshot) { /* after the events it is of */
            if ((status = flush(im)) != 0 ||
                (status = snapshot_line(im, &le, lineno)) != 0)
                goto out;
            continue;
        }
        if (!im->mode_known && (status = decide_mode(im, &le)) != 0)
            goto out;
        /* exact: an event the store should hold already must be there (a
         * re-run), and a new one must come at the next position */
        if (im->exact && le.position != 0 && le.position <= im->head0 &&
            (status = check_stored(im, &le, lineno)) != 0)
            goto out;
        if (im->exact && le.position > im->head0) {
            if (le.position != im->next_new) {
                if ((status = flush(im)) != 0) /* while still exact */
                    goto out;
                if (im->exact)
                    end_exact(im, lineno, le.position, im->next_new);
            } else {
                im->next_new++;
            }
        } else if (im->exact && le.position == 0) {
            im->next_new++;
        }
        if (!im->exact && checkpoint_stream(le.stream)) {
            im->skipped_checkpoints++;
            continue;
        }
        if (im->n > 0) {
            int full = im->n == im->max ||
                       im->bytes + le.ev.data_len + le.ev.metadata_len >
                           BATCH_BYTES;
            int other_tenant = strcmp(im->tenant, le.tenant) != 0;

            pidx = find_part(im, le.stream, &slot);
            /* a tombstone is a part of its own (the store keeps it as
             * the stream's tombstone only then: evs_restore_append) */
            if (full || other_tenant ||
                (pidx >= 0 && (size_t)pidx != im->nparts - 1) ||
                (pidx >= 0 && strcmp(le.ev.type, STORE_TYPE_TOMBSTONE) == 0)) {
                if ((status = flush(im)) != 0)
                    goto out;
                show_progress(im);
            }
        }
        pidx = find_part(im, le.stream, &slot);
        add_event(im, &le, lineno, slot, pidx);
        note_rules(im, &le);
    }
    if (ferror(in)) {
        int err_no = errno;

        if ((status = flush(im)) != 0)
            goto out;
        end_progress(im);
        cli_err("import: cannot read %s after line %zu: %s; the %" PRIu64
                " %s before it are in the store", im->name, lineno,
                strerror(err_no), im->written + im->present,
                events_word(im->written + im->present));
        status = CLI_EXIT_FAIL;
        goto out;
    }
    status = flush(im);
out:
    end_progress(im);
    free(buf);
    cli_arena_reset(&line_arena);
    return status;
}

int cmd_import(cli_ctx *cx, int argc, char **argv)
{
    importer im;
    uint64_t batch = DEFAULT_BATCH;
    const char *path;
    FILE *in = stdin;
    size_t tsize = 1;
    int c, status;

    memset(&im, 0, sizeof im);
    cli_getopt_start();
    while ((c = cli_next_opt(&status, cx, NULL, &cmd, argc, argv)) != -1) {
        switch (c) {
        case OPT_BATCH:
            if (cli_parse_u64(optarg, &batch) < 0 || batch < 1 ||
                batch > MAX_BATCH)
                return cli_usage("import", "--batch: '%s' is not a number "
                                 "from 1 to %d", optarg, MAX_BATCH);
            break;
        }
    }
    if (status >= 0)
        return status;
    if ((status = cli_file_arg(&path, "import", argc, argv)) != 0)
        return status;

    if (path != NULL && (in = fopen(path, "r")) == NULL) {
        cli_err("import: cannot open %s: %s", path, strerror(errno));
        return CLI_EXIT_FAIL;
    }
    if ((status = cli_open(&im.db, cx, EVS_OPEN_CREATE)) != 0) {
        if (path != NULL)
            fclose(in);
        return status;
    }

    im.max = (size_t)batch;
    while (tsize < 2 * im.max)
        tsize *= 2;
    im.table_mask = tsize - 1;
    im.table = calloc(tsize, sizeof *im.table);
    im.events = cli_xmalloc(im.max * sizeof *im.events);
    im.lines = cli_xmalloc(im.max * sizeof *im.lines);
    im.positions = cli_xmalloc(im.max * sizeof *im.positions);
    im.versions = cli_xmalloc(im.max * sizeof *im.versions);
    im.parts = cli_xmalloc(im.max * sizeof *im.parts);
    if (im.table == NULL) {
        cli_err("out of memory");
        status = CLI_EXIT_FAIL;
        goto out;
    }
    cli_progress_start(&im.progress, "import");
    {
        struct stat st;

        if (fstat(fileno(in), &st) == 0 && S_ISREG(st.st_mode))
            im.input_size = (uint64_t)st.st_size;
    }

    im.name = path != NULL ? path : "standard input";
    status = run(&im, in);
    if (status == 0)
        status = fix_truncate(&im);
    fprintf(stderr, "imported %" PRIu64 " %s", im.written,
            events_word(im.written));
    if (im.present > 0)
        fprintf(stderr, " (%" PRIu64 " %s already in the store)",
                im.present, im.present == 1 ? "was" : "were");
    if (im.snapshots > 0)
        fprintf(stderr, " and %" PRIu64 " %s", im.snapshots,
                im.snapshots == 1 ? "snapshot" : "snapshots");
    fputc('\n', stderr);
    if (im.mode_known && !im.exact && im.inexact_line == 0)
        fprintf(stderr, "the store held %" PRIu64 " %s before: the file's events were "
                "appended after %s, with new positions\n", im.head0, events_word(im.head0),
                im.head0 == 1 ? "it" : "them");
    if (im.retruncated > 0)
        fprintf(stderr, "renumbered: %" PRIu64 " %s with stream metadata had %s first "
                "events left out of the file (hidden or scavenged in the source), so %s "
                "numbered from a lower version here: %s truncate-before was moved to match "
                "(a new metadata version)\n", im.retruncated,
                im.retruncated == 1 ? "stream" : "streams",
                im.retruncated == 1 ? "its" : "their", im.retruncated == 1 ? "it is" : "they are",
                im.retruncated == 1 ? "its" : "their");
    if (im.skipped_checkpoints + im.skipped_snapshots > 0)
        fprintf(stderr, "left out: %" PRIu64 " checkpoint %s and %" PRIu64 " %s (their "
                "tokens and versions are the source store's positions; import into an "
                "empty store to keep them)\n", im.skipped_checkpoints,
                events_word(im.skipped_checkpoints), im.skipped_snapshots,
                im.skipped_snapshots == 1 ? "snapshot" : "snapshots");
out:
    status = cli_close(im.db, status);
    if (path != NULL)
        fclose(in);
    cli_arena_reset(&im.arena);
    free(im.table);
    free(im.events);
    free(im.lines);
    free(im.positions);
    free(im.versions);
    renum_free(&im);
    free(im.parts);
    return status;
}
