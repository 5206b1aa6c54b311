/*
 * cmd_export.c -- `evs export [FILE|-]`: everything a store holds, as JSON
 * Lines, the input of `evs import`: every event of the log (every tenant,
 * and the system streams' events: checkpoints) in position order, then
 * every snapshot. Imported into an empty store, it gives a store whose
 * own export is the same bytes.
 */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: evs export [FILE|-]\n"
    "\n"
    "Write everything the store holds to FILE or standard output, one JSON\n"
    "object per line (docs/CLI.md): every event of every tenant in global\n"
    "order, checkpoints included, then every snapshot. 'evs export | evs\n"
    "--db EMPTY import' copies a store: same positions, versions and bytes.\n"
    "A progress line goes to standard error when it is a terminal.\n"
    "\n"
    "Options:\n"
    CLI_HELP_SHARED
    CLI_HELP_EXIT;

static const cli_cmd cmd = {"export", help, cli_no_options};

typedef struct snap_ctx {
    evs_db *db;
    FILE *f;
    uint64_t head;    /* the events' snapshot: later snapshots are left out */
    uint64_t written, later;
    cli_buf line;
    int status;       /* an exit status once something failed */
} snap_ctx;

/* Is version of stream within the exported events (its event at a
 * position <= head)? 1, 0, or -1 after reporting an error. */
static int in_export(snap_ctx *c, const char *tenant, const char *stream, int64_t version)
{
    evs_iter *it = NULL;
    const evs_event *ev;
    int rc = evs_read_stream(&it, c->db, tenant, stream, version, EVS_FORWARD, 1);

    if (rc == 0)
        rc = evs_iter_next(&ev, it);
    if (rc == 0)
        rc = ev->position <= c->head && ev->stream_version == version;
    else if (rc == EVS_ITEROVER)
        rc = 0;
    else
        c->status = cli_lib_err(rc, "export");
    evs_iter_free(it);
    return rc < 0 ? -1 : rc;
}

/* {"kind":"snapshot","tenant":…,"stream":…,"version":…,"schema":…,
 *  "data":… | "data_base64":…,"saved_at":…} */
static int put_snapshot(void *ctx, const char *tenant, const char *stream,
                        const evs_snapshot *snap)
{
    snap_ctx *c = ctx;
    char when[CLI_TIME_LEN];
    size_t vs, ve;
    char err[8];
    const char *d = snap->data ? snap->data : "";
    int in = in_export(c, tenant, stream, snap->version);

    if (in < 0)
        return -1;
    if (in == 0) { /* saved after the events were read: its events are not here */
        c->later++;
        return 0;
    }
    c->line.len = 0;
    cli_buf_puts(&c->line, "{\"kind\":\"snapshot\",\"tenant\":");
    cli_json_put_str(&c->line, tenant, strlen(tenant));
    cli_buf_puts(&c->line, ",\"stream\":");
    cli_json_put_str(&c->line, stream, strlen(stream));
    cli_buf_printf(&c->line, ",\"version\":%" PRId64 ",\"schema\":", snap->version);
    cli_json_put_str(&c->line, snap->schema, strlen(snap->schema));
    /* the data as a JSON value only when the line keeps every byte */
    if (cli_json_check(d, snap->data_len, &vs, &ve, err, sizeof err) == 0 && vs == 0 &&
        ve == snap->data_len && !memchr(d, '\n', snap->data_len) &&
        !memchr(d, '\r', snap->data_len)) {
        cli_buf_puts(&c->line, ",\"data\":");
        cli_buf_put(&c->line, d, snap->data_len);
    } else {
        cli_buf_puts(&c->line, ",\"data_base64\":\"");
        cli_base64_put(&c->line, d, snap->data_len);
        cli_buf_putc(&c->line, '"');
    }
    cli_time_format(when, snap->saved_at);
    cli_buf_printf(&c->line, ",\"saved_at\":\"%s\"}\n", when);
    if (fwrite(c->line.p, 1, c->line.len, c->f) != c->line.len) {
        cli_err("export: cannot write the output: %s", strerror(errno));
        c->status = CLI_EXIT_FAIL;
        return -1;
    }
    c->written++;
    return 0;
}

int cmd_export(cli_ctx *cx, int argc, char **argv)
{
    const char *path;
    evs_db *db = NULL;
    evs_iter *it = NULL;
    const evs_event *ev;
    FILE *f = stdout;
    cli_buf line = {0};
    cli_progress pr;
    snap_ctx sc = {0};
    uint64_t n = 0, head = 0;
    int rc, status = CLI_EXIT_OK;

    cli_getopt_start();
    if ((status = cli_parse_opts(cx, NULL, &cmd, argc, argv)) >= 0)
        return status;
    status = CLI_EXIT_OK;
    if ((status = cli_file_arg(&path, "export", argc, argv)) != 0 ||
        (status = cli_open(&db, cx, EVS_OPEN_READONLY)) != 0)
        return status;
    /* The iterator is a snapshot: appends during the export are not in
     * it, and the file is a consistent copy as of its start. Its head
     * (the marker) bounds the snapshots too. */
    if ((rc = evs_head_position(&head, db, NULL)) < 0 ||
        (rc = evs_read_log(&it, db, 0, 0)) < 0) {
        status = cli_lib_err(rc, "export");
        goto out;
    }
    if (path != NULL && (f = fopen(path, "w")) == NULL) {
        cli_err("export: cannot create %s: %s", path, strerror(errno));
        status = CLI_EXIT_FAIL;
        goto out;
    }
    cli_progress_start(&pr, "export");
    while ((rc = evs_iter_next(&ev, it)) == 0) {
        line.len = 0;
        cli_event_json(&line, ev, CLI_EV_TENANT | CLI_EV_EXACT);
        if (fwrite(line.p, 1, line.len, f) != line.len)
            break;
        n++;
        /* positions are gapless: the position reached is how far */
        if ((n & 1023) == 0)
            cli_progress_show(&pr, n, ev->position, head);
        if (ev->position > head)
            head = ev->position; /* committed between the two calls */
    }
    cli_progress_end(&pr);
    if (rc != 0 && rc != EVS_ITEROVER) {
        status = cli_lib_err(rc, "export");
    } else if (!ferror(f)) {
        sc.db = db;
        sc.f = f;
        sc.head = head;
        rc = evs_snapshot_list(db, NULL, put_snapshot, &sc);
        if (sc.status != 0)
            status = sc.status;
        else if (rc != 0)
            status = cli_lib_err(rc, "export: snapshots");
    }
    if (fflush(f) != 0 || ferror(f)) {
        if (status == CLI_EXIT_OK)
            cli_err("export: cannot write the output: %s", strerror(errno));
        status = CLI_EXIT_FAIL;
    }
    if (path != NULL && fclose(f) != 0 && status == CLI_EXIT_OK) {
        cli_err("export: cannot write %s: %s", path, strerror(errno));
        status = CLI_EXIT_FAIL;
    }
    if (status == CLI_EXIT_OK && pr.on) {
        fprintf(stderr, "exported %" PRIu64 " %s and %" PRIu64 " %s", n,
                n == 1 ? "event" : "events", sc.written,
                sc.written == 1 ? "snapshot" : "snapshots");
        if (sc.later > 0)
            fprintf(stderr, " (%" PRIu64 " saved during the export left out)", sc.later);
        fputc('\n', stderr);
    }
out:
    cli_buf_free(&line);
    cli_buf_free(&sc.line);
    evs_iter_free(it);
    return cli_close(db, status);
}
