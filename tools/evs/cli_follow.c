/*
 * cli_follow.c -- the loop behind `evs all --follow`, `evs read --follow`
 * and `evs subscribe`: tracking reads that print what they return, until
 * a signal or a limit (see cli.h).
 *
 * Why slices and not one long wait: evs_read_tracking blocks on a futex
 * that only a commit wakes, and a signal handler may do no more than set
 * a flag. Each read waits at most CLI_FOLLOW_SLICE_US, then the loop looks
 * at the flag; so Ctrl-C takes effect within a slice, while a commit still
 * wakes the reader at once (the slice bounds the reaction to a signal,
 * never the latency of an event).
 *
 *     token T --read_tracking(after T, wait <= slice)--> events | none
 *        ^                                                  |
 *        +---- T = evs_iter_marker(it) <-- print, flush ----+
 */
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

#define CLI_FOLLOW_SLICE_US 250000 /* reaction time to SIGINT/SIGTERM */
#define CLI_FOLLOW_BATCH 1024      /* events per read, then a flush */

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
    stop_signal = sig;
}

void cli_follow_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    /* SA_RESTART: writes to a slow pipe are not cut short by the signal
     * (the slice ends the wait anyway). SA_RESETHAND: a second Ctrl-C
     * kills at once, should stopping ever hang. */
    sa.sa_flags = SA_RESTART | SA_RESETHAND;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int cli_follow_stopping(void)
{
    return stop_signal != 0;
}

/* Print the events of one read (skipping those below f->from_version),
 * then flush. Returns 0 or the exit status after an error, reported. */
static int print_batch(cli_follow *f, evs_iter *it, cli_buf *line)
{
    const evs_event *ev;
    int rc;

    while ((rc = evs_iter_next(&ev, it)) == 0) {
        if (f->from_version > 0 && ev->stream_version < f->from_version)
            continue;
        line->len = 0;
        cli_event_json(line, ev, f->with_tenant);
        if (fwrite(line->p, 1, line->len, stdout) != line->len)
            break;
        f->count++;
    }
    if (rc != 0 && rc != EVS_ITEROVER)
        return cli_lib_err(rc, f->what);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_err("%s: cannot write the output: %s", f->what, strerror(errno));
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

int cli_follow_run(cli_follow *f)
{
    cli_buf line = {0};
    int rc, status = CLI_EXIT_OK;

    while (!cli_follow_stopping() && (f->limit == 0 || f->count < f->limit)) {
        uint64_t want = CLI_FOLLOW_BATCH, next;
        evs_iter *it = NULL;

        if (f->limit != 0 && f->limit - f->count < want)
            want = f->limit - f->count;
        rc = evs_read_tracking(&it, f->db, f->filter, f->token, want,
                               CLI_FOLLOW_SLICE_US);
        if (rc < 0) {
            status = cli_lib_err(rc, f->what);
            break;
        }
        status = print_batch(f, it, &line);
        /* After a write error the marker may lie beyond what was
         * written: keep the token of the last complete batch. */
        if (status == CLI_EXIT_OK && (rc = evs_iter_marker(&next, it)) < 0)
            status = cli_lib_err(rc, f->what);
        else if (status == CLI_EXIT_OK)
            f->token = next;
        evs_iter_free(it);
        if (status != CLI_EXIT_OK)
            break;
    }
    cli_buf_free(&line);
    return status;
}
