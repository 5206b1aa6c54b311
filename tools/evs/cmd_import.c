/*
 * cmd_import.c -- `evs import [FILE|-]`: append events read as JSON Lines
 * (the shape `evs export` writes), in large atomic batches.
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
    "Prints 'imported N events' on standard error.\n"
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

/* ------------------------------------------------------------------ */
/* One line                                                            */
/* ------------------------------------------------------------------ */

typedef struct line_event {
    const char *tenant;
    const char *stream;
    evs_event_data ev;
} line_event;

enum {
    K_POSITION, K_TENANT, K_STREAM, K_VERSION, K_TYPE, K_ID, K_CONTENT_TYPE,
    K_DATA, K_DATA_BASE64, K_METADATA, K_METADATA_BASE64, K_TAGS,
    K_CORRELATION, K_CAUSATION, K_RECORDED_AT, NKEYS
};

static const char *const keys[NKEYS] = {
    "position", "tenant", "stream", "version", "type", "id", "content_type",
    "data", "data_base64", "metadata", "metadata_base64", "tags",
    "correlation_id", "causation_id", "recorded_at",
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
    /* position and version are the source store's; this store numbers
     * the events itself (the same numbers when importing into an empty
     * store). */
    if (by_key[K_TENANT] != NULL &&
        (le->tenant = get_string(by_key[K_TENANT], err, errlen)) == NULL)
        return -1;
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
    int progress;     /* stderr is a terminal */
    int progress_shown;
    struct timespec last_progress;
} importer;

static size_t hash_str(const char *s)
{
    size_t h = 14695981039346656037u; /* FNV-1a */

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
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

static void show_progress(importer *im, size_t line)
{
    struct timespec now;

    if (!im->progress)
        return;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (im->progress_shown &&
        (now.tv_sec - im->last_progress.tv_sec) * 1000000000L +
                (now.tv_nsec - im->last_progress.tv_nsec) <
            250000000L)
        return;
    im->last_progress = now;
    im->progress_shown = 1;
    fprintf(stderr, "\rimport: line %zu, %" PRIu64 " events imported, %" PRIu64
            " already in the store", line, im->written, im->present);
    fflush(stderr);
}

static void end_progress(importer *im)
{
    if (im->progress_shown) {
        fputc('\n', stderr);
        im->progress_shown = 0;
    }
}

/* Append n parts of the batch as one atomic step; a part of stream ""
 * holds the events of no stream. Returns the library's code. */
static int append_parts(importer *im, evs_stream_append *sa, size_t n,
                        evs_append_result *res)
{
    evs_append_request req = EVS_APPEND_REQUEST_INIT;
    size_t i;

    for (i = 0; i < n; i++)
        if (sa[i].stream[0] == '\0')
            sa[i].stream = NULL;
    req.tenant = im->tenant;
    req.parts = sa;
    req.nparts = n;
    return evs_append_ex(res, NULL, im->db, &req);
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

            if ((rc = evs_head_position(&head, im->db, NULL)) == 0)
                rc = append_parts(im, &one, 1, &res);
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
    if ((rc = evs_head_position(&head, im->db, NULL)) == 0)
        rc = append_parts(im, sa, im->nparts, res);
    if (rc == 0) {
        for (i = 0; i < im->nparts; i++) {
            if (res[i].first_position > head)
                im->written += im->parts[i].n;
            else
                im->present += im->parts[i].n;
        }
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
        if (im->n > 0) {
            int full = im->n == im->max ||
                       im->bytes + le.ev.data_len + le.ev.metadata_len >
                           BATCH_BYTES;
            int other_tenant = strcmp(im->tenant, le.tenant) != 0;

            pidx = find_part(im, le.stream, &slot);
            if (full || other_tenant ||
                (pidx >= 0 && (size_t)pidx != im->nparts - 1)) {
                if ((status = flush(im)) != 0)
                    goto out;
                show_progress(im, lineno);
            }
        }
        pidx = find_part(im, le.stream, &slot);
        add_event(im, &le, lineno, slot, pidx);
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
    im.parts = cli_xmalloc(im.max * sizeof *im.parts);
    if (im.table == NULL) {
        cli_err("out of memory");
        status = CLI_EXIT_FAIL;
        goto out;
    }
    im.progress = isatty(STDERR_FILENO);

    im.name = path != NULL ? path : "standard input";
    status = run(&im, in);
    fprintf(stderr, "imported %" PRIu64 " %s", im.written,
            events_word(im.written));
    if (im.present > 0)
        fprintf(stderr, " (%" PRIu64 " %s already in the store)",
                im.present, im.present == 1 ? "was" : "were");
    fputc('\n', stderr);
out:
    status = cli_close(im.db, status);
    if (path != NULL)
        fclose(in);
    cli_arena_reset(&im.arena);
    free(im.table);
    free(im.events);
    free(im.lines);
    free(im.parts);
    return status;
}
