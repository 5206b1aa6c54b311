/*
 * lifecycle_bench.c -- what stream metadata costs a read (issue 17):
 * evs_read_stream of a 10-event stream in a tenant that never had rules,
 * in a tenant where another stream has rules, and of a stream with a
 * max_count, timed alternately in one run (the machine is shared: compare
 * the ratios). Not in run.sh: run it by hand.
 *
 *   build/lifecycle_bench [STORE_DIR_OR_POSTGRES_URI [READS]]
 *
 * The default store is a fresh directory under /tmp; a PostgreSQL URI
 * must name an empty database (the schema is created). READS per arm per
 * round, default 200,000 (use ~5,000 on PostgreSQL).
 */
#include "evstore.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "lifecycle_bench: %s: %s\n", what, evs_last_error());
    exit(3);
}

/* µs per evs_read_stream of the whole stream, n reads */
static double reads(evs_db *db, const char *tenant, const char *stream, int n, size_t want)
{
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        evs_iter *it;
        const evs_event *ev;
        size_t got = 0;
        if (evs_read_stream(&it, db, tenant, stream, 0, EVS_FORWARD, 0) != 0)
            die("read_stream");
        while (evs_iter_next(&ev, it) == 0)
            got++;
        evs_iter_free(it);
        if (got != want) {
            fprintf(stderr, "lifecycle_bench: %s/%s read %zu events, expected %zu\n", tenant,
                    stream, got, want);
            exit(3);
        }
    }
    return (now_s() - t0) / n * 1e6;
}

int main(int argc, char **argv)
{
    char tmp[] = "/tmp/evs-lc-bench-XXXXXX";
    const char *uri = argc > 1 ? argv[1] : NULL;
    char path[64];
    if (!uri) {
        if (!mkdtemp(tmp)) {
            perror("mkdtemp");
            return 2;
        }
        snprintf(path, sizeof(path), "%s/db", tmp);
        uri = path;
    }
    int n = argc > 2 ? atoi(argv[2]) : 200000;
    if (n <= 0)
        n = 1;
    evs_db *db;
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    if (evs_open(&db, uri, &o) != 0)
        die("open");
    evs_event_data ev[10];
    memset(ev, 0, sizeof(ev));
    for (int i = 0; i < 10; i++) {
        ev[i].type = "Ticked";
        ev[i].data = "{\"i\":1}";
        ev[i].data_len = 7;
    }
    if (evs_append(NULL, db, "plain", "s-1", EVS_ANY, ev, 10) != 0 ||
        evs_append(NULL, db, "rules", "s-1", EVS_ANY, ev, 10) != 0 ||
        evs_append(NULL, db, "rules", "capped-1", EVS_ANY, ev, 10) != 0)
        die("append");
    evs_stream_metadata m = EVS_STREAM_METADATA_INIT;
    m.max_count = 100;
    if (evs_stream_metadata_set(NULL, db, "rules", "other-1", EVS_ANY, &m) != 0)
        die("metadata_set");
    m.max_count = 5;
    if (evs_stream_metadata_set(NULL, db, "rules", "capped-1", EVS_ANY, &m) != 0)
        die("metadata_set");
    printf("evs_read_stream of a 10-event stream, %d reads per arm per round, µs per read\n"
           "| round | tenant without rules | tenant with rules (other stream) | "
           "stream with max_count 5 (5 returned) |\n|---|---|---|---|\n", n);
    for (int r = 1; r <= 3; r++) {
        double a = reads(db, "plain", "s-1", n, 10);
        double b = reads(db, "rules", "s-1", n, 10);
        double c = reads(db, "rules", "capped-1", n, 5);
        printf("| %d | %.2f | %.2f | %.2f |\n", r, a, b, c);
    }
    if (evs_close(db) != 0)
        die("close");
    if (argc <= 1) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
        if (system(cmd) != 0)
            fprintf(stderr, "lifecycle_bench: could not remove %s\n", tmp);
    }
    return 0;
}
