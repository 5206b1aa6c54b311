/*
 * index_rebuild.h -- `evs bench`'s measurement of rebuilding the embedded
 * store's index from its log (index_rebuild.c), after the data load.
 * Private to tools/bench.
 */
#ifndef EVS_BENCH_INDEX_REBUILD_H
#define EVS_BENCH_INDEX_REBUILD_H

#include <evstore.h>

#include <stdint.h>

typedef struct rebuild_figure {
    int run;           /* measured: an embedded store whose data loaded */
    int ok;            /* measured */
    uint64_t events;   /* events indexed (the log's head) */
    double reopen_s;   /* evs_open after deleting <store>/index: what
                          recovery does when it cannot trust the index */
    char error[512];   /* when not ok */
} rebuild_figure;

/*
 * Close *db (the embedded store at path), delete <path>/index and time
 * the read-write evs_open that rebuilds it.
 * *db is the store open again (same default options) on return, or NULL
 * if it could not be reopened (then -1). Failures of the measurement
 * itself leave f->ok 0 with f->error and return 0 when the store reopened.
 */
int bench_index_rebuild(rebuild_figure *f, evs_db **db, const char *path);

#endif
