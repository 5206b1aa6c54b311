/*
 * index_rebuild.c -- how fast the index is rebuilt from the log
 * (index_rebuild.h).
 *
 * <store>/index deleted, then a read-write evs_open timed: the whole
 * open, with the bulk build recovery runs when it cannot trust the index
 * (src/embedded/rebuild.c), as after an OS crash or in a copy. The log is
 * in the page cache (the load just wrote it).
 */
#include "index_rebuild.h"

#include "bench_util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bench_index_rebuild(rebuild_figure *f, evs_db **db, const char *path)
{
    evs_open_options opts = EVS_OPEN_OPTIONS_INIT;
    char cmd[8192];
    int rc, ok = 1;

    memset(f, 0, sizeof(*f));
    f->run = 1;
    rc = evs_close(*db);
    *db = NULL;
    if (rc < 0) {
        snprintf(f->error, sizeof f->error, "close: %s", evs_last_error());
        ok = 0;
    }
    if (ok) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s/index'", path);
        if (strchr(path, '\'') || system(cmd) != 0) {
            snprintf(f->error, sizeof f->error, "cannot delete %s/index", path);
            ok = 0;
        }
    }
    uint64_t t0 = now_ns();
    rc = evs_open(db, path, &opts);
    if (ok)
        f->reopen_s = (double)(now_ns() - t0) / 1e9;
    if (rc == 0 && evs_head_position(&f->events, *db, NULL) < 0 && ok) {
        snprintf(f->error, sizeof f->error, "head: %s", evs_last_error());
        ok = 0;
    }
    if (rc < 0) {
        *db = NULL;
        if (ok)
            snprintf(f->error, sizeof f->error, "open after deleting the index: %s",
                     evs_last_error());
        return -1;
    }
    f->ok = ok;
    return 0;
}
