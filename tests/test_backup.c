/*
 * test_backup.c -- evs_backup: an online, consistent, incremental copy of
 * an embedded store (src/embedded/backup.c).
 *
 *   - a backup taken while 8 threads append holds exactly the events up
 *     to its position, byte for byte the source's, every acknowledged one
 *     at or below it included, verifies clean and opens without a rebuild;
 *   - a second backup into the same directory copies only the segments
 *     from the previous backup's last one on, and keeps the others (same
 *     inodes);
 *   - refusals: another store's backup, a store directory, a non-empty
 *     directory, a file, a path inside the store, bad arguments -- each
 *     writing nothing;
 *   - a backup by a read-only open while another process (fork) appends;
 *   - a backup process killed (SIGKILL) at random moments leaves a
 *     directory that opens, verifies and holds at least the previous
 *     backup's events, and the next backup into it succeeds;
 *   - a full disk (a small tmpfs; root only): EVS_ENOSPC, the earlier
 *     backup intact, nothing half-made left, the next run succeeds;
 *   - snapshots saved while the backup runs are never of a version past
 *     the backup's log (they are copied before the index);
 *   - an existing empty directory is filled in place (same inode; a
 *     mount point, root only: no rename across filesystems; a failed run
 *     leaves it empty); an interrupted in-place run's leftovers are
 *     started over, with someone else's file among them refused;
 *   - a backup on the writer's handle grows the index's map ahead of the
 *     index copy (a remap would wait for the copy);
 *   - a backup opened read-write, appended to and killed (its state never
 *     says how far its log went) is refused, its event kept;
 *   - PostgreSQL: refused with EVS_EINVAL naming pg_dump.
 */
#include "testutil.h"

#include <lmdb.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SEG (1u << 20)

static evs_db *open_store(const char *dir, unsigned flags)
{
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    evs_db *db = NULL;
    o.flags = flags;
    o.segment_size = SEG;
    int rc = evs_open(&db, dir, &o);
    if (rc != 0)
        fprintf(stderr, "open %s: %s: %s\n", dir, tu_errname(rc), evs_last_error());
    assert_int_equal(rc, 0);
    return db;
}

/* A JSON event of about size bytes, different per (stream, n). */
static evs_event_data make_event(char *buf, size_t size, const char *stream, unsigned n)
{
    int k = snprintf(buf, size, "{\"s\":\"%s\",\"n\":%u,\"pad\":\"", stream, n);
    size_t i = (size_t)k;
    for (; i + 3 < size; i++)
        buf[i] = (char)('a' + (n + i) % 26);
    buf[i++] = '"';
    buf[i++] = '}';
    buf[i] = 0;
    return tu_event("Added", buf);
}

/* Append count events of about size bytes to stream, in appends of up to
 * 16; returns the last position. */
static uint64_t fill(evs_db *db, const char *stream, unsigned count, size_t size)
{
    static char buf[16][4096];
    evs_event_data ev[16];
    evs_append_result r = {0};
    for (unsigned n = 0; n < count;) {
        unsigned k = count - n < 16 ? count - n : 16;
        for (unsigned j = 0; j < k; j++)
            ev[j] = make_event(buf[j], size, stream, n + j);
        TU_OK(evs_append(&r, db, NULL, stream, EVS_ANY, ev, k));
        n += k;
    }
    return r.last_position;
}

static void assert_same_event(const tu_event_copy *a, const tu_event_copy *b)
{
    assert_int_equal(a->position, b->position);
    assert_int_equal(a->stream_version, b->stream_version);
    assert_string_equal(a->tenant, b->tenant);
    assert_string_equal(a->stream, b->stream);
    assert_string_equal(a->type, b->type);
    tu_assert_uuid_equal(&a->id, &b->id);
    tu_assert_uuid_equal(&a->correlation_id, &b->correlation_id);
    tu_assert_uuid_equal(&a->causation_id, &b->causation_id);
    assert_int_equal(a->recorded_at, b->recorded_at);
    assert_int_equal(a->content_type, b->content_type);
    assert_int_equal(a->data_len, b->data_len);
    assert_memory_equal(a->data, b->data, a->data_len);
    assert_int_equal(a->metadata_len, b->metadata_len);
    if (a->metadata_len)
        assert_memory_equal(a->metadata, b->metadata, a->metadata_len);
    assert_int_equal(a->ntags, b->ntags);
    for (size_t i = 0; i < a->ntags; i++)
        assert_string_equal(a->tags[i], b->tags[i]);
}

static void on_notice(void *ctx, const char *line)
{
    int *n = ctx;
    fprintf(stderr, "notice: %s\n", line);
    (*n)++;
}

/*
 * The backup at dest holds exactly positions 1..pos, each the source's
 * event byte for byte; evs_verify is clean. rw: also open it read-write
 * and check that nothing had to be recovered (no rebuild, nothing cut).
 */
static void check_backup(evs_db *src, const char *dest, uint64_t pos, int rw)
{
    evs_db *b = open_store(dest, EVS_OPEN_READONLY);
    uint64_t checked = 0;
    TU_OK(evs_verify(&checked, b, NULL, NULL));
    assert_int_equal(checked, pos);
    assert_int_equal(tu_head(b, NULL), pos);
    tu_events x = {0}, y = {0};
    TU_OK(tu_read_all(&x, b, NULL, 1, 0));
    TU_OK(tu_read_all(&y, src, NULL, 1, pos));
    assert_int_equal(x.n, pos);
    assert_int_equal(y.n, pos);
    for (size_t i = 0; i < x.n; i++)
        assert_same_event(&x.v[i], &y.v[i]);
    tu_events_free(&x);
    tu_events_free(&y);
    TU_OK(evs_close(b));
    if (rw) {
        evs_open_options o = EVS_OPEN_OPTIONS_INIT;
        int notices = 0;
        o.flags = 0;
        o.recovery_notice = on_notice;
        o.recovery_ctx = &notices;
        TU_OK(evs_open(&b, dest, &o));
        assert_int_equal(notices, 0);
        assert_int_equal(tu_head(b, NULL), pos);
        TU_OK(evs_close(b));
    }
}

static char *backup_path(const tu_store *s, const char *name)
{
    return tu_path_join(s->tmp, name);
}

/* ---- a backup while 8 threads append ----------------------------------- */

#define NTHREADS 8
#define MAX_ACKS 20000

typedef struct appender {
    evs_db *db;
    int no;
    _Atomic int *stop;
    uint64_t pos[MAX_ACKS]; /* acknowledged positions */
    evs_uuid id[MAX_ACKS];  /* and ids */
    size_t n;
    int rc;
} appender;

static void *append_main(void *arg)
{
    appender *a = arg;
    char stream[32], buf[2][1024];
    snprintf(stream, sizeof(stream), "acct-%d", a->no);
    for (unsigned i = 0; !atomic_load(a->stop) && a->n + 2 <= MAX_ACKS; i++) {
        unsigned k = 1 + i % 2;
        evs_event_data ev[2];
        evs_append_result r;
        for (unsigned j = 0; j < k; j++) {
            ev[j] = make_event(buf[j], 300 + (i * 37 + j) % 700, stream, i);
            evs_uuid_generate(&ev[j].id);
        }
        int rc = evs_append(&r, a->db, NULL, stream, EVS_ANY, ev, k);
        if (rc != 0) {
            a->rc = rc;
            return NULL;
        }
        for (unsigned j = 0; j < k; j++) {
            a->pos[a->n] = r.first_position + j;
            a->id[a->n++] = ev[j].id;
        }
    }
    return NULL;
}

static void test_backup_while_appending(void **state)
{
    TU_EMBEDDED_ONLY("evs_backup copies the embedded store's files");
    tu_store *s = *state;
    s->db = open_store(s->dir, EVS_OPEN_CREATE);
    fill(s->db, "seed-1", 400, 1000); /* a sealed segment before the threads */
    _Atomic int stop = 0;
    appender *a = calloc(NTHREADS, sizeof(*a));
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        a[i].db = s->db;
        a[i].no = i;
        a[i].stop = &stop;
        assert_int_equal(pthread_create(&th[i], NULL, append_main, &a[i]), 0);
    }
    /* let them write a few segments' worth, then back up beside them */
    while (tu_head(s->db, NULL) < 3000)
        usleep(2000);
    char *dest = backup_path(s, "bk");
    evs_backup_result r;
    TU_OK(evs_backup(&r, s->db, dest, NULL));
    uint64_t after = tu_head(s->db, NULL);
    while (tu_head(s->db, NULL) < after + 500) /* and they go on */
        usleep(2000);
    atomic_store(&stop, 1);
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(a[i].rc, 0);
    }
    fprintf(stderr, "backup at position %" PRIu64 " (head then %" PRIu64 ", at the end %"
            PRIu64 "): %" PRIu64 " segments, %" PRIu64 " bytes\n", r.position, after,
            tu_head(s->db, NULL), r.segments_copied, r.bytes_copied);
    assert_true(r.position >= 3000 && r.position <= after);
    assert_int_equal(r.incremental, 0);
    assert_int_equal(r.segments_reused, 0);
    assert_true(r.segments_copied >= 3);
    assert_true(tu_head(s->db, NULL) > r.position);

    check_backup(s->db, dest, r.position, 0);
    /* every acknowledged event at or below the position is there, with
     * its id */
    evs_db *b = open_store(dest, EVS_OPEN_READONLY);
    size_t acked = 0;
    for (int i = 0; i < NTHREADS; i++)
        for (size_t j = 0; j < a[i].n; j++) {
            if (a[i].pos[j] > r.position)
                continue;
            tu_events e = {0};
            TU_OK(tu_read_all(&e, b, NULL, a[i].pos[j], 1));
            assert_int_equal(e.n, 1);
            assert_int_equal(e.v[0].position, a[i].pos[j]);
            tu_assert_uuid_equal(&e.v[0].id, &a[i].id[j]);
            tu_events_free(&e);
            acked++;
        }
    assert_int_equal(acked + 400, r.position);
    TU_OK(evs_close(b));
    /* BACKUP records the position */
    char *bf = tu_path_join(dest, "BACKUP");
    size_t len;
    char *text = (char *)tu_read_file(bf, &len);
    char want[64];
    snprintf(want, sizeof(want), "\nposition %" PRIu64 "\n", r.position);
    assert_non_null(strstr(text, want));
    free(text);
    free(bf);
    /* it opens read-write as it is: no rebuild, nothing cut */
    check_backup(s->db, dest, r.position, 1);
    free(a);
    free(dest);
}

/* ---- incremental ------------------------------------------------------- */

static ino_t inode_of(const char *dir, unsigned seg)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof(path), "%s/log/%016x.evslog", dir, seg);
    assert_int_equal(stat(path, &st), 0);
    return st.st_ino;
}

static void test_backup_incremental(void **state)
{
    TU_EMBEDDED_ONLY("evs_backup copies the embedded store's files");
    tu_store *s = *state;
    s->db = open_store(s->dir, EVS_OPEN_CREATE);
    fill(s->db, "order-1", 4000, 1000); /* ~4.5 MiB: 5 segments */
    char *dest = backup_path(s, "bk");
    evs_backup_result r1, r2, r3;
    TU_OK(evs_backup(&r1, s->db, dest, NULL));
    evs_stats st = tu_stats(s->db);
    assert_int_equal(r1.position, 4000);
    assert_int_equal(r1.segments_copied, st.segments);
    assert_int_equal(r1.segments_reused, 0);
    assert_true(r1.segments_copied >= 4);
    ino_t first = inode_of(dest, 1), second = inode_of(dest, 2);

    fill(s->db, "order-2", 3000, 1000);
    st = tu_stats(s->db);
    TU_OK(evs_backup(&r2, s->db, dest, NULL));
    fprintf(stderr, "first: %" PRIu64 " segments (%" PRIu64 " bytes); second: %" PRIu64
            " copied (%" PRIu64 " bytes), %" PRIu64 " reused (%" PRIu64 " bytes)\n",
            r1.segments_copied, r1.bytes_copied, r2.segments_copied, r2.bytes_copied,
            r2.segments_reused, r2.bytes_reused);
    assert_int_equal(r2.incremental, 1);
    assert_int_equal(r2.position, 7000);
    /* the first backup's last segment was still filling: copied again;
     * those before it were sealed: kept */
    assert_int_equal(r2.segments_reused, r1.segments_copied - 1);
    assert_int_equal(r2.segments_copied, st.segments - r2.segments_reused);
    assert_int_equal(r2.bytes_reused, r2.segments_reused * SEG);
    assert_true(r2.bytes_copied > 0 && r2.bytes_copied < r1.bytes_copied + 4 * SEG);
    assert_true(inode_of(dest, 1) == first && inode_of(dest, 2) == second);
    check_backup(s->db, dest, 7000, 0);

    /* nothing new: only the last segment (and the index) */
    TU_OK(evs_backup(&r3, s->db, dest, NULL));
    assert_int_equal(r3.position, 7000);
    assert_int_equal(r3.segments_copied, 1);
    assert_int_equal(r3.segments_reused, st.segments - 1);
    check_backup(s->db, dest, 7000, 1);

    /* the same from a read-only handle of the store */
    tu_store_close(s);
    s->db = open_store(s->dir, EVS_OPEN_READONLY);
    TU_OK(evs_backup(&r3, s->db, dest, NULL));
    assert_int_equal(r3.segments_copied, 1);
    check_backup(s->db, dest, 7000, 0);
    free(dest);
}

/* ---- refusals ------------------------------------------------------------ */

static void assert_refused(evs_db *db, const char *dest, int code, const char *words)
{
    evs_backup_result r;
    r.position = 77;
    int rc = evs_backup(&r, db, dest, NULL);
    if (rc != code)
        fprintf(stderr, "backup to %s: %s: %s\n", dest, tu_errname(rc), evs_last_error());
    assert_int_equal(rc, code);
    assert_int_equal(r.position, 0);
    if (!strstr(evs_last_error(), words))
        fprintf(stderr, "message \"%s\" lacks \"%s\"\n", evs_last_error(), words);
    assert_non_null(strstr(evs_last_error(), words));
}

/* No DEST.tmp-* left in dir. */
static void assert_no_tmp(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "ls -d '%s'/*.tmp-* >/dev/null 2>&1", dir);
    assert_int_not_equal(system(cmd), 0);
}

static void test_backup_refusals(void **state)
{
    TU_EMBEDDED_ONLY("evs_backup copies the embedded store's files");
    tu_store *s = *state;
    s->db = open_store(s->dir, EVS_OPEN_CREATE);
    fill(s->db, "a-1", 10, 100);
    char *dest = backup_path(s, "bk");
    evs_backup_result r;
    TU_OK(evs_backup(&r, s->db, dest, NULL));
    char *bf = tu_path_join(dest, "BACKUP");
    size_t len0, len1;
    unsigned char *before = tu_read_file(bf, &len0);

    /* another store (same segment size): its backup is not this one's */
    char *other = backup_path(s, "other");
    evs_db *o = open_store(other, EVS_OPEN_CREATE);
    fill(o, "b-1", 10, 100);
    assert_refused(o, dest, EVS_EINVAL, "another store");
    unsigned char *after = tu_read_file(bf, &len1);
    assert_int_equal(len0, len1);
    assert_memory_equal(before, after, len0);
    free(after);
    check_backup(s->db, dest, 10, 0);

    /* a store that is not a backup, a non-empty directory, a file */
    assert_refused(s->db, other, EVS_EINVAL, "not a backup");
    TU_OK(evs_close(o));
    char *junk = backup_path(s, "junk");
    assert_int_equal(mkdir(junk, 0755), 0);
    char *jf = tu_path_join(junk, "notes.txt");
    FILE *f = fopen(jf, "w");
    fputs("mine\n", f);
    fclose(f);
    assert_refused(s->db, junk, EVS_EINVAL, "not empty");
    assert_refused(s->db, jf, EVS_EINVAL, "not a directory");
    /* inside the store, the store itself, a missing parent */
    char *inside = tu_path_join(s->dir, "bk");
    assert_refused(s->db, inside, EVS_EINVAL, "inside");
    assert_refused(s->db, s->dir, EVS_EINVAL, "inside");
    char *noparent = backup_path(s, "no/such/dir");
    assert_refused(s->db, noparent, EVS_EINVAL, "create it first");
    /* arguments */
    TU_CHECK(evs_backup(&r, NULL, dest, NULL), EVS_EINVAL);
    TU_CHECK(evs_backup(&r, s->db, NULL, NULL), EVS_EINVAL);
    TU_CHECK(evs_backup(&r, s->db, "", NULL), EVS_EINVAL);
    evs_backup_options bo = EVS_BACKUP_OPTIONS_INIT;
    bo.version = 99;
    TU_CHECK(evs_backup(&r, s->db, dest, &bo), EVS_EINVAL);
    assert_non_null(strstr(evs_last_error(), "EVS_BACKUP_OPTIONS_INIT"));
    bo.version = EVS_BACKUP_OPTIONS_VERSION;
    bo.flags = 4;
    TU_CHECK(evs_backup(&r, s->db, dest, &bo), EVS_EINVAL);
    assert_no_tmp(s->tmp);
    /* an empty directory is a new backup; NULL out is allowed */
    char *empty = backup_path(s, "empty");
    assert_int_equal(mkdir(empty, 0755), 0);
    TU_OK(evs_backup(NULL, s->db, empty, NULL));
    check_backup(s->db, empty, 10, 0);
    /* the backup itself written to: refused, its events kept */
    evs_db *w = open_store(empty, 0);
    fill(w, "c-1", 1, 100);
    TU_OK(evs_close(w));
    assert_refused(s->db, empty, EVS_EINVAL, "written to since");
    w = open_store(empty, EVS_OPEN_READONLY);
    assert_int_equal(tu_head(w, NULL), 11);
    TU_OK(evs_close(w));
    assert_no_tmp(s->tmp);

    free(before);
    free(bf);
    free(dest);
    free(other);
    free(junk);
    free(jf);
    free(inside);
    free(noparent);
    free(empty);
}

/* ---- read-only open beside a writer process ------------------------------ */

static void test_backup_readonly_beside_writer(void **state)
{
    TU_EMBEDDED_ONLY("evs_backup copies the embedded store's files");
    tu_store *s = *state;
    s->db = open_store(s->dir, EVS_OPEN_CREATE);
    fill(s->db, "x-1", 500, 800);
    tu_store_close(s);
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* the application: holds the writer lock and appends until killed */
        evs_open_options o = EVS_OPEN_OPTIONS_INIT;
        evs_db *db;
        o.segment_size = SEG;
        if (evs_open(&db, s->dir, &o) != 0)
            _exit(3);
        char buf[1024];
        for (unsigned i = 0;; i++) {
            evs_event_data ev = make_event(buf, 600, "y-1", i);
            evs_append_result r;
            if (evs_append(&r, db, NULL, "y-1", EVS_ANY, &ev, 1) != 0)
                _exit(4);
            if (i == 200 && write(ready[1], "x", 1) != 1)
                _exit(5);
        }
    }
    close(ready[1]);
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    close(ready[0]);
    s->db = open_store(s->dir, EVS_OPEN_READONLY);
    char *dest = backup_path(s, "bk");
    evs_backup_result r1, r2;
    TU_OK(evs_backup(&r1, s->db, dest, NULL));
    usleep(100 * 1000);
    TU_OK(evs_backup(&r2, s->db, dest, NULL));
    kill(pid, SIGKILL);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status)); /* it was still appending */
    fprintf(stderr, "beside the writer: %" PRIu64 ", then %" PRIu64 " (%" PRIu64
            " copied, %" PRIu64 " reused)\n", r1.position, r2.position, r2.segments_copied,
            r2.segments_reused);
    assert_true(r1.position > 700);
    assert_true(r2.position > r1.position);
    assert_int_equal(r2.incremental, 1);
    /* compare with the store as the killed writer left it (read-write
     * open: recovery) */
    tu_store_close(s);
    s->db = open_store(s->dir, 0);
    assert_true(tu_head(s->db, NULL) >= r2.position);
    check_backup(s->db, dest, r2.position, 1);
    free(dest);
}

/* ---- interrupted backups ------------------------------------------------- */

static void test_backup_interrupted(void **state)
{
    TU_EMBEDDED_ONLY("evs_backup copies the embedded store's files");
    tu_store *s = *state;
    s->db = open_store(s->dir, EVS_OPEN_CREATE);
    fill(s->db, "k-1", 3000, 1000);
    char *dest = backup_path(s, "bk");
    evs_backup_result r;
    TU_OK(evs_backup(&r, s->db, dest, NULL));
    uint64_t prev = r.position;
    /* how long one incremental backup of the next step takes */
    unsigned seed = (unsigned)time(NULL);
    const char *env = getenv("EVS_TEST_SEED");
    if (env)
        seed = (unsigned)strtoul(env, NULL, 10);
    fprintf(stderr, "seed %u\n", seed);
    srand(seed);
    int killed = 0, finished = 0;
    for (int round = 0; round < 6; round++) {
        fill(s->db, "k-2", 1200, 1000);
        uint64_t head = tu_head(s->db, NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            /* as `evs backup`: a read-only open beside the writer (an
             * LMDB handle must not be used across fork) */
            evs_open_options o = EVS_OPEN_OPTIONS_INIT;
            evs_db *db;
            o.flags = EVS_OPEN_READONLY;
            if (evs_open(&db, s->dir, &o) != 0)
                _exit(11);
            int rc = evs_backup(NULL, db, dest, NULL);
            _exit(rc == 0 ? 0 : 10);
        }
        /* 0 .. 40 ms (a backup here takes ~10-60 ms); the first at once */
        if (round > 0)
            usleep((useconds_t)(rand() % 40000));
        kill(pid, SIGKILL);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (WIFEXITED(status)) {
            assert_int_equal(WEXITSTATUS(status), 0);
            finished++;
        } else {
            killed++;
        }
        /* the directory opens, verifies and holds at least the previous
         * backup's events, each the store's */
        evs_db *b = open_store(dest, EVS_OPEN_READONLY);
        uint64_t have = tu_head(b, NULL);
        TU_OK(evs_close(b));
        assert_true(have >= prev && have <= head);
        check_backup(s->db, dest, have, 0);
        /* and the next backup into it succeeds */
        if (round % 2 == 1) {
            TU_OK(evs_backup(&r, s->db, dest, NULL));
            assert_int_equal(r.position, head);
            assert_int_equal(r.incremental, 1);
            check_backup(s->db, dest, head, 0);
            prev = head;
        } else {
            prev = have;
        }
    }
    fprintf(stderr, "%d backups killed, %d finished\n", killed, finished);
    assert_true(killed > 0);
    free(dest);
}

/* ---- a full disk ------------------------------------------------------------- */

static int shell(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int shell(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    fflush(stdout);
    fflush(stderr);
    int st = system(cmd);
    return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static char *g_mnt; /* the small tmpfs while the case has one */

static int mount_tmpfs(const char *dir, const char *size)
{
    return shell("mount -t tmpfs -o size=%s tmpfs '%s' 2>/dev/null", size, dir);
}

static int teardown_mnt(void **state)
{
    if (g_mnt) {
        if (shell("umount '%s' 2>/dev/null || umount -l '%s'", g_mnt, g_mnt) != 0)
            fprintf(stderr, "cannot unmount %s\n", g_mnt);
        rmdir(g_mnt);
        free(g_mnt);
        g_mnt = NULL;
    }
    return tu_teardown_store(state);
}

static void test_backup_disk_full(void **state)
{
    TU_EMBEDDED_ONLY("evs_backup copies the embedded store's files");
    tu_store *s = *state;
    if (geteuid() != 0) {
        print_message("SKIPPED: not root: cannot mount a tmpfs (the disk-full case "
                      "needs one)\n");
        skip();
    }
    g_mnt = tu_path_join(s->tmp, "mnt");
    assert_int_equal(mkdir(g_mnt, 0755), 0);
    if (shell("mount -t tmpfs -o size=8m tmpfs '%s'", g_mnt) != 0) {
        rmdir(g_mnt);
        free(g_mnt);
        g_mnt = NULL;
        print_message("SKIPPED: mount -t tmpfs failed (the disk-full case needs it)\n");
        skip();
    }
    s->db = open_store(s->dir, EVS_OPEN_CREATE);
    fill(s->db, "f-1", 2000, 1000);
    char *dest = tu_path_join(g_mnt, "bk"), *fresh = tu_path_join(g_mnt, "new");
    evs_backup_result r;
    TU_OK(evs_backup(&r, s->db, dest, NULL));
    assert_int_equal(r.position, 2000);
    fill(s->db, "f-2", 6000, 1000); /* ~7 MiB more: does not fit */
    assert_refused(s->db, dest, EVS_ENOSPC, "still good");
    fprintf(stderr, "full: %s\n", evs_last_error());
    assert_refused(s->db, fresh, EVS_ENOSPC, "No space");
    /* the earlier backup is as it was; nothing half-made is left */
    check_backup(s->db, dest, 2000, 0);
    assert_no_tmp(g_mnt);
    assert_int_not_equal(shell("ls '%s'/log/*.tmp '%s'/backup.tmp >/dev/null 2>&1", dest,
                               dest), 0);
    /* room again: the next run brings it forward */
    assert_int_equal(shell("mount -o remount,size=64m '%s'", g_mnt), 0);
    TU_OK(evs_backup(&r, s->db, dest, NULL));
    assert_int_equal(r.position, 8000);
    assert_int_equal(r.incremental, 1);
    check_backup(s->db, dest, 8000, 1);
    tu_store_close(s);
    free(dest);
    free(fresh);
}

/* ---- snapshots are never past the backup's log (B1) ------------------------ */

typedef struct snap_writer {
    evs_db *db;
    int calls;
} snap_writer;

/* At every progress call (between the copies): one more event of s-1
 * and a snapshot at its new version. */
static void append_and_snapshot(void *ctx, uint64_t done, uint64_t total)
{
    snap_writer *w = ctx;
    (void)done;
    (void)total;
    if (w->calls++ >= 8)
        return;
    char buf[256];
    evs_event_data ev = make_event(buf, 120, "s-1", 100 + (unsigned)w->calls);
    evs_append_result r;
    TU_OK(evs_append(&r, w->db, NULL, "s-1", EVS_ANY, &ev, 1));
    TU_OK(evs_snapshot_save(w->db, NULL, "s-1", r.first_version, "state-v1", "{}", 2));
}

static void test_backup_snapshots_within_log(void **state)
{
    TU_EMBEDDED_ONLY("evs_backup copies the embedded store's files");
    tu_store *s = *state;
    s->db = open_store(s->dir, EVS_OPEN_CREATE);
    fill(s->db, "s-1", 3, 100);
    TU_OK(evs_snapshot_save(s->db, NULL, "s-1", 2, "state-v1", "{}", 2));
    char *dest = backup_path(s, "bk");
    snap_writer w = {s->db, 0};
    evs_backup_options bo = EVS_BACKUP_OPTIONS_INIT;
    bo.progress = append_and_snapshot;
    bo.progress_ctx = &w;
    evs_backup_result r;
    TU_OK(evs_backup(&r, s->db, dest, &bo));
    assert_true(w.calls >= 2);
    /* whatever was saved while it ran: the backup's newest snapshot of
     * s-1 is of a version its log has */
    evs_db *b = open_store(dest, EVS_OPEN_READONLY);
    int64_t version = tu_version(b, NULL, "s-1");
    evs_snapshot *snap = NULL;
    TU_OK(evs_snapshot_load(&snap, b, NULL, "s-1", EVS_END));
    fprintf(stderr, "backup at position %" PRIu64 ": s-1 at version %" PRId64
            ", newest snapshot at %" PRId64 " (the store: %" PRId64 ")\n", r.position,
            version, snap->version, tu_version(s->db, NULL, "s-1"));
    assert_true(snap->version <= version);
    assert_int_equal(version + 1, (int64_t)r.position);
    evs_snapshot_free(snap);
    TU_OK(evs_close(b));
    check_backup(s->db, dest, r.position, 1);
    free(dest);
}

/* ---- an empty directory (a mount point) is filled in place (B2) ----------- */


static void test_backup_empty_dir_in_place(void **state)
{
    TU_EMBEDDED_ONLY("evs_backup copies the embedded store's files");
    tu_store *s = *state;
    struct stat st0, st1;
    s->db = open_store(s->dir, EVS_OPEN_CREATE);
    fill(s->db, "p-1", 1500, 1000); /* 2 segments */
    /* the directory itself is the backup: same inode, nothing beside it */
    char *empty = backup_path(s, "empty");
    assert_int_equal(mkdir(empty, 0755), 0);
    assert_int_equal(stat(empty, &st0), 0);
    evs_backup_result r;
    TU_OK(evs_backup(&r, s->db, empty, NULL));
    assert_int_equal(r.position, 1500);
    assert_int_equal(r.incremental, 0);
    assert_int_equal(stat(empty, &st1), 0);
    assert_true(st0.st_ino == st1.st_ino);
    assert_no_tmp(s->tmp);
    check_backup(s->db, empty, 1500, 1);
    fill(s->db, "p-2", 10, 100);
    TU_OK(evs_backup(&r, s->db, empty, NULL));
    assert_int_equal(r.incremental, 1);
    check_backup(s->db, empty, 1510, 0);

    /* what a killed in-place backup leaves (its scratch directory, part
     * of the log): started over; with a file of someone else's: refused */
    char *left = backup_path(s, "left");
    char p[4096];
    assert_int_equal(mkdir(left, 0755), 0);
    snprintf(p, sizeof(p), "%s/backup.tmp", left);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/log", left);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/log/0000000000000001.evslog", left);
    FILE *f = fopen(p, "w");
    fputs("half a segment", f);
    fclose(f);
    snprintf(p, sizeof(p), "%s/notes.txt", left);
    f = fopen(p, "w");
    fputs("mine\n", f);
    fclose(f);
    assert_refused(s->db, left, EVS_EINVAL, "interrupted backup left");
    assert_int_equal(unlink(p), 0);
    TU_OK(evs_backup(&r, s->db, left, NULL));
    assert_int_equal(r.incremental, 0);
    check_backup(s->db, left, 1510, 0);

    /* a mount point (root only): the backup on that filesystem, in it */
    if (geteuid() == 0) {
        g_mnt = tu_path_join(s->tmp, "mnt");
        assert_int_equal(mkdir(g_mnt, 0755), 0);
        if (mount_tmpfs(g_mnt, "1m") != 0) {
            fprintf(stderr, "mount -t tmpfs failed: the mount point case not run\n");
            rmdir(g_mnt);
            free(g_mnt);
            g_mnt = NULL;
        } else {
            /* too small: refused, and the mount point is left empty */
            assert_refused(s->db, g_mnt, EVS_ENOSPC, "No space");
            assert_int_equal(shell("[ -z \"$(ls -A '%s')\" ]", g_mnt), 0);
            assert_int_equal(shell("mount -o remount,size=16m '%s'", g_mnt), 0);
            TU_OK(evs_backup(&r, s->db, g_mnt, NULL));
            assert_int_equal(r.position, 1510);
            check_backup(s->db, g_mnt, 1510, 0);
            assert_no_tmp(s->tmp);
        }
    } else {
        fprintf(stderr, "not root: the mount point case not run (the same inode "
                "check above covers it)\n");
    }
    free(empty);
    free(left);
}

/* ---- the map has room before the index copy (B3) ------------------------- */

/* Bytes of the index in use (LMDB's last page + 1) and the map (the
 * writer's data.mdb is as large as its map). A second read-only,
 * lock-free handle on the file: it reads only the meta pages. */
static void index_use(const char *dir, uint64_t *used, uint64_t *map)
{
    char p[4096];
    MDB_env *env;
    MDB_envinfo info;
    MDB_stat st;
    struct stat fst;
    snprintf(p, sizeof(p), "%s/index", dir);
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_open(env, p, MDB_RDONLY | MDB_NOLOCK, 0644), 0);
    assert_int_equal(mdb_env_info(env, &info), 0);
    assert_int_equal(mdb_env_stat(env, &st), 0);
    mdb_env_close(env);
    *used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    snprintf(p, sizeof(p), "%s/index/data.mdb", dir);
    assert_int_equal(stat(p, &fst), 0);
    *map = (uint64_t)fst.st_size;
}

static void test_backup_map_room(void **state)
{
    TU_EMBEDDED_ONLY("evs_backup copies the embedded store's files");
    tu_store *s = *state;
    /* a 256 KiB first map: it grows many times below */
    assert_int_equal(setenv("EVS_DEBUG_INDEX_MAP_MIN", "262144", 1), 0);
    s->db = open_store(s->dir, EVS_OPEN_CREATE);
    assert_int_equal(unsetenv("EVS_DEBUG_INDEX_MAP_MIN"), 0);
    uint64_t used = 0, map = 0;
    /* until the map has less free room than half the index */
    for (int i = 0; i < 400; i++) {
        fill(s->db, "m-1", 64, 100);
        index_use(s->dir, &used, &map);
        if (used >= (1u << 20) && map - used < used / 2)
            break;
    }
    fprintf(stderr, "before: index %" PRIu64 " bytes, map %" PRIu64 "\n", used, map);
    assert_true(used >= (1u << 20) && map - used < used / 2);
    char *dest = backup_path(s, "bk");
    evs_backup_result r;
    TU_OK(evs_backup(&r, s->db, dest, NULL));
    uint64_t used2, map2;
    index_use(s->dir, &used2, &map2);
    fprintf(stderr, "after: index %" PRIu64 " bytes, map %" PRIu64 "\n", used2, map2);
    /* grown ahead of the copy: room for half the index again */
    assert_true(map2 >= used + used / 2);
    check_backup(s->db, dest, r.position, 0);
    /* appends go on as before */
    fill(s->db, "m-2", 500, 100);
    free(dest);
}

/* ---- a backup written to and killed is refused (B4) ---------------------- */

static void test_backup_written_then_killed(void **state)
{
    TU_EMBEDDED_ONLY("evs_backup copies the embedded store's files");
    tu_store *s = *state;
    s->db = open_store(s->dir, EVS_OPEN_CREATE);
    fill(s->db, "w-1", 20, 100);
    char *dest = backup_path(s, "bk");
    evs_backup_result r;
    TU_OK(evs_backup(&r, s->db, dest, NULL));
    fill(s->db, "w-1", 20, 100);
    /* DEST opened as a store, appended to, the process killed: its state
     * never says how far its log went */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        evs_open_options o = EVS_OPEN_OPTIONS_INIT;
        evs_db *db;
        char buf[256];
        o.segment_size = SEG;
        if (evs_open(&db, dest, &o) != 0)
            _exit(3);
        evs_event_data ev = make_event(buf, 100, "mine-1", 1);
        evs_append_result ar;
        if (evs_append(&ar, db, NULL, "mine-1", EVS_ANY, &ev, 1) != 0)
            _exit(4);
        raise(SIGKILL);
        _exit(5);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_refused(s->db, dest, EVS_EINVAL, "written to");
    /* its event is kept */
    evs_db *w = open_store(dest, 0);
    assert_int_equal(tu_head(w, NULL), 21);
    assert_int_equal(tu_version(w, NULL, "mine-1"), 0);
    TU_OK(evs_close(w));
    assert_refused(s->db, dest, EVS_EINVAL, "written to");
    free(dest);
}

/* ---- PostgreSQL ------------------------------------------------------------ */

static void test_backup_postgres_refused(void **state)
{
    tu_store *s = *state;
    tu_store_open(s);
    if (!tu_backend_pg()) {
        /* the embedded store backs up: covered above; here the argument
         * check that needs no files */
        TU_CHECK(evs_backup(NULL, s->db, "", NULL), EVS_EINVAL);
        return;
    }
    char *dest = backup_path(s, "bk");
    TU_CHECK(evs_backup(NULL, s->db, dest, NULL), EVS_EINVAL);
    assert_non_null(strstr(evs_last_error(), "pg_dump"));
    struct stat st;
    assert_int_not_equal(stat(dest, &st), 0);
    free(dest);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, tu_setup_store_closed, tu_teardown_store)
    const struct CMUnitTest tests[] = {
        T(test_backup_while_appending),
        T(test_backup_incremental),
        T(test_backup_refusals),
        T(test_backup_readonly_beside_writer),
        T(test_backup_interrupted),
        cmocka_unit_test_setup_teardown(test_backup_disk_full, tu_setup_store_closed,
                                        teardown_mnt),
        T(test_backup_snapshots_within_log),
        cmocka_unit_test_setup_teardown(test_backup_empty_dir_in_place, tu_setup_store_closed,
                                        teardown_mnt),
        T(test_backup_map_room),
        T(test_backup_written_then_killed),
        T(test_backup_postgres_refused),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
