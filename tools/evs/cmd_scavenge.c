/*
 * cmd_scavenge.c -- `evs scavenge`: reclaim the space of the events no
 * read returns any more (evs_scavenge, include/evstore.h).
 */
#include "cli.h"

#include <inttypes.h>
#include <string.h>
#include <unistd.h>

static const char help[] =
    "usage: evs scavenge [--json]\n"
    "\n"
    "Physically remove the events no read returns any more: those of\n"
    "tombstoned streams (not the tombstone), below a stream's truncate-before\n"
    "(soft deletes too), beyond its max count or older than its max age, as\n"
    "the rules stand when it starts ('evs stream meta set'); a stream's last\n"
    "event stays unless it is tombstoned. Online: other processes' reads go\n"
    "on (an embedded store is written by one process at a time: this one,\n"
    "while it runs). Resumable: run it again after an interruption and it\n"
    "goes on after the segments it finished. The positions of the events\n"
    "that stay never change. Embedded: sealed log segments holding such\n"
    "events are rewritten (the last, active segment never is); PostgreSQL:\n"
    "the rows are deleted in batches.\n"
    "\n"
    "Prints a summary: streams, events removed, segments examined, rewritten\n"
    "and resumed, log bytes of the rewritten segments before and after,\n"
    "seconds and MB/s of log rewritten. A progress line goes to standard\n"
    "error when it is a terminal.\n"
    "\n"
    "Options:\n"
    "  --json          the summary as one JSON object\n"
    CLI_HELP_SHARED
    CLI_HELP_EXIT_WRITER;

enum { OPT_JSON = 0x100 };

static const struct option options[] = {
    {"json", no_argument, NULL, OPT_JSON},
    CLI_OPTIONS_END,
};

static const cli_cmd cmd = {"scavenge", help, options};

/* The progress line: bytes of log examined (embedded) or events
 * (PostgreSQL), on a terminal only, at most 4 times a second. */
typedef struct progress {
    int on, shown, pg;
    struct timespec last;
} progress;

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
    progress *p = ctx;
    struct timespec now;

    if (!p->on)
        return;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (p->shown && done < total &&
        (double)(now.tv_sec - p->last.tv_sec) + (now.tv_nsec - p->last.tv_nsec) / 1e9 < 0.25)
        return;
    p->last = now;
    if (p->pg)
        fprintf(stderr, "\rscavenge: %" PRIu64 " of %" PRIu64 " events examined", done, total);
    else
        fprintf(stderr, "\rscavenge: %.1f of %.1f MB of log examined", done / 1e6, total / 1e6);
    if (total > 0 && done <= total)
        fprintf(stderr, " (%.0f %%)", 100.0 * (double)done / (double)total);
    fputs("\033[K", stderr);
    fflush(stderr);
    p->shown = 1;
}

int cmd_scavenge(cli_ctx *cx, int argc, char **argv)
{
    evs_scavenge_options opts = EVS_SCAVENGE_OPTIONS_INIT;
    evs_scavenge_result res;
    progress pr;
    evs_db *db = NULL;
    int c, rc, status, json = 0;
    double secs, mbs;

    cli_getopt_start();
    while ((c = cli_next_opt(&status, cx, NULL, &cmd, argc, argv)) != -1)
        if (c == OPT_JSON)
            json = 1;
    if (status >= 0)
        return status;
    if ((status = cli_no_args("scavenge", argc, argv)) != 0 ||
        (status = cli_open(&db, cx, 0)) != 0)
        return status;
    memset(&pr, 0, sizeof pr);
    memset(&res, 0, sizeof res);
    pr.on = isatty(STDERR_FILENO);
    pr.pg = strncmp(cx->db_uri, "postgresql://", 13) == 0 ||
            strncmp(cx->db_uri, "postgres://", 11) == 0;
    opts.progress = on_progress;
    opts.ctx = &pr;
    rc = evs_scavenge(&res, db, &opts);
    if (pr.shown)
        fputc('\n', stderr);
    if (rc < 0)
        return cli_close(db, cli_lib_err(rc, "scavenge"));
    secs = (double)res.elapsed_us / 1e6;
    /* the log written anew: the rewritten segments' bytes, before */
    mbs = secs > 0 ? (double)res.bytes_before / 1e6 / secs : 0;
    if (json)
        printf("{\"streams\":%" PRIu64 ",\"events_removed\":%" PRIu64
               ",\"segments_examined\":%" PRIu64 ",\"segments_rewritten\":%" PRIu64
               ",\"segments_resumed\":%" PRIu64 ",\"bytes_before\":%" PRIu64
               ",\"bytes_after\":%" PRIu64 ",\"seconds\":%.3f,\"mb_per_s\":%.1f}\n",
               res.streams, res.events_removed, res.segments_examined,
               res.segments_rewritten, res.segments_resumed, res.bytes_before,
               res.bytes_after, secs, mbs);
    else
        printf("scavenge: %" PRIu64 " streams, %" PRIu64 " events removed; segments: %" PRIu64
               " examined, %" PRIu64 " rewritten, %" PRIu64 " resumed; %" PRIu64
               " bytes before, %" PRIu64 " after; %.3f s, %.1f MB/s of log rewritten\n",
               res.streams, res.events_removed, res.segments_examined,
               res.segments_rewritten, res.segments_resumed, res.bytes_before,
               res.bytes_after, secs, mbs);
    status = CLI_EXIT_OK;
    if (fflush(stdout) != 0) {
        cli_err("scavenge: cannot write the summary to standard output");
        status = CLI_EXIT_FAIL;
    }
    return cli_close(db, status);
}
