/*
 * test_powerloss.c -- power loss and OS crashes never lose or hide an
 * acknowledged event (the engine's rules: docs/DESIGN.md "Durability",
 * docs/FORMAT.md "Recovery rules", the store state file).
 *
 * How:
 *
 *   1. A workload runs in a child process (this program re-executed with
 *      --workload) under the LD_PRELOAD shim tests/iorec (evs_iorec), which
 *      journals every operation that changes a file of the store: writes
 *      with their bytes (those through a writable map as the pages that
 *      changed, at the next snapshot point: below), truncations,
 *      fsync/fdatasync/msync of files and directories, creates, renames,
 *      unlinks, mkdir. After each
 *      acknowledged append the workload adds a mark to the journal
 *      (evs_iorec_mark) with what was acknowledged: tenant, stream,
 *      position, version and event number of each event (the event number
 *      gives the id, type, tags and data). The workload crosses several
 *      1 MiB segments, uses single, multi-event, multi-stream, streamless
 *      and checkpoint-moving appends in three tenants, from one thread and
 *      from three, and closes and reopens the store twice. The threaded
 *      phase runs with EVS_DEBUG_PREALLOC_DELAY_MS, so that the writer
 *      makes the segments of its rollovers itself.
 *
 *   2. The journal is replayed. At many crash points (before and after
 *      file and directory syncs, and inside runs of writes) a disk state
 *      is materialised, one at a time, in the store's own directory (so
 *      that the store directory, log/ and the files keep their inode
 *      numbers, which the engine's state file records; files are
 *      hard-linked aside first so that their inodes live on, and a file
 *      unchanged since its last sync gets back the mtime it had then):
 *
 *        power loss     each file holds what it held at its last fsync or
 *                       fdatasync plus any subset of the later writes,
 *                       cut in 512-byte sectors or 4 KiB pages, each kept
 *                       in its old or new version (per file: none, all,
 *                       random, a torn prefix, or all but a few); LMDB's
 *                       meta pages are pages like any other. Directory
 *                       operations after the directory's last fsync
 *                       happened as a prefix, per directory. Opened with
 *                       a fresh EVS_DEBUG_BOOT_ID (a reboot).
 *        process crash  everything written up to the crash point is
 *                       there. Opened with the workload's boot id.
 *
 *   3. Each state is checked in a forked child with a time limit; a
 *      refusal, a crash, a signal or a hang is a failure. First a
 *      read-only open: it may refuse (EVS_ECORRUPT), but what it shows
 *      must be right and hold every acknowledged event. Then the
 *      read-write open, which must succeed; when the state file says OPEN
 *      and the boot id differs, it must not keep the index. Every answer
 *      is compared with the history: the acknowledged events (marks before
 *      the crash point) must all be there, and what is visible must be a
 *      prefix of the history by position that ends at the end of an
 *      append (in-flight appends may or may not be there, whole). Checked:
 *      $all of each tenant and of every tenant, every stream (events,
 *      versions), evs_stream_version, DCB queries by type, tag, both, and
 *      category (with their markers), head and tail tokens, checkpoints,
 *      and snapshots (the workload saves some: a snapshot may be missing,
 *      it is a cache, but one that is found must be one that was saved, at
 *      a version the stream has). Then an append must get position head+1
 *      and the stream's next version, and after a close and reopen
 *      evs_verify must find no problem and count head+1 records.

 * Writes through a shared writable mapping (the writer's index, data.mdb,
 * with MDB_WRITEMAP; LMDB's lock.mdb; the notify file) are journaled by
 * the shim at the next snapshot point (any fsync, fdatasync or msync, an
 * acknowledgement mark, munmap, the last close, exit) as the pages that
 * changed since the previous one (tests/iorec/iorec.c: why that is sound
 * enough). They are then unsynced writes like any other: a power loss
 * keeps any subset of them, torn or whole, until the file's next fsync or
 * msync(MS_SYNC); a process crash keeps all of them up to its point, and
 * no crash point is placed inside the pages of one snapshot (the page
 * cache held them all at once; a power loss after them keeps any subset
 * of them anyway). An msync of a range that does not cover every unsynced
 * write of its file is not counted as a sync (the run prints how many
 * there were). A writable mapping of any store file other than data.mdb,
 * lock.mdb and notify is reported as a failure: nothing in the engine
 * should make one.
 * The store directory's own entry (in its parent, which the test owns) is
 * taken as durable; a missing fsync of that parent after creating the
 * store is reported as a failure of its own.
 *
 * A second test, test_powerloss_scavenge (issue 17), runs the same
 * machinery on another workload, an embedded scavenge with appends beside
 * it, with checks of its own: its comment, "A power loss during a
 * scavenge", below.
 *
 * Variables: EVS_TEST_SEED replays a run (states and workload choices);
 * EVS_POWERLOSS_STATES overrides the number of states (default 300;
 * test_powerloss_scavenge: every key point twice and 30 more);
 * EVS_POWERLOSS_VERBOSE=1 prints every state; EVS_TEST_KEEP=1 keeps the
 * scratch directory (the journal, and a copy of the first failed states);
 * EVS_POWERLOSS_ONLY=i builds and checks state i only and keeps it;
 * EVS_POWERLOSS_SELFTEST=1 makes the model forget the log's fdatasyncs, so
 * that the run must report lost acknowledged events (a check of the
 * checks). `test_powerloss NAME` runs test NAME only. `test_powerloss
 * --check JOURNAL DIR POINT` runs the checks of one kept state in the
 * foreground (for gdb; --check-scavenge for the scavenge's); `--dump
 * JOURNAL` prints it.
 *
 * Replaying: the seed fixes the workload's choices and which states are
 * drawn, but the journal itself depends on thread timing (group commits,
 * the preallocator), so a failure is best kept (EVS_TEST_KEEP=1) rather
 * than replayed.
 */
#include "testutil.h"
#include "core/backend.h"
#include "iorec/iorec.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef EVS_IOREC_PATH
#error "EVS_IOREC_PATH (the evs_iorec shim) must be defined by the build"
#endif

#define SEGMENT_SIZE (1024u * 1024u)
#define DEFAULT_STATES 300
#define STATE_TIMEOUT_S 20
#define BLK 4096u

/* ------------------------------------------------------------------ */
/* The workload's vocabulary: everything about an event follows from    */
/* its number n, so the checker needs only numbers from the journal.    */
/* ------------------------------------------------------------------ */

#define NTENANTS 3
static const char *const tenants[NTENANTS] = {"", "acme", "globex"};
#define NTYPES 4
static const char *const types[NTYPES] = {"Opened", "Deposited", "Withdrawn", "Closed"};
#define NTAGS 5
static const char *const tagnames[NTAGS] = {"customer:1", "customer:2", "region:eu", "vip",
                                            "batch:x"};
#define NCATS 3
static const char *const cats[NCATS] = {"acct", "order", "cart"};
#define NO_STREAM_IDX 0xffffu
#define MAX_STREAMS 64 /* stream indexes 0..63 */
#define MAX_CPS 8

static void stream_name(char *buf, size_t cap, unsigned idx)
{
    snprintf(buf, cap, "%s-%u", cats[idx % NCATS], idx);
}
static void cp_name(char *buf, size_t cap, unsigned idx)
{
    snprintf(buf, cap, "proj-%u", idx);
}
static void ev_id(evs_uuid *u, uint32_t n)
{
    memset(u, 0, sizeof(*u));
    memcpy(u->bytes, "EVPL", 4);
    u->bytes[6] = 0x40;
    u->bytes[8] = 0x80;
    u->bytes[12] = (uint8_t)(n >> 24);
    u->bytes[13] = (uint8_t)(n >> 16);
    u->bytes[14] = (uint8_t)(n >> 8);
    u->bytes[15] = (uint8_t)n;
}
static const char *ev_type(uint32_t n)
{
    return types[(n * 7u) % NTYPES];
}
static unsigned ev_tagmask(uint32_t n)
{
    return (unsigned)((n * 2654435761u) >> 9) % 32u;
}
static size_t ev_tags(const char **out, uint32_t n)
{
    size_t k = 0;
    unsigned m = ev_tagmask(n);
    for (unsigned i = 0; i < NTAGS; i++)
        if (m & (1u << i))
            out[k++] = tagnames[i];
    return k;
}
#define DATA_CAP 7200
static size_t ev_data(char *buf, uint32_t n)
{
    static const char abc[] = "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz";
    size_t pad = (size_t)((n * 7919u) % 7000u), k, j;
    k = (size_t)snprintf(buf, DATA_CAP, "{\"n\":%u,\"p\":\"", n);
    /* 'a' + (n + j) % 26 for each j, 26 at a time (the checks call this
     * for every event they compare) */
    for (j = 0; j < pad;) {
        size_t m = pad - j < 26 ? pad - j : 26;
        memcpy(buf + k, abc + (n + j) % 26, m);
        k += m;
        j += m;
    }
    buf[k++] = '"';
    buf[k++] = '}';
    buf[k] = '\0';
    return k;
}

/* One acknowledged event, as the mark carries it. */
enum { K_STREAM = 0, K_STREAMLESS = 1, K_CHECKPOINT = 2 };
typedef struct ack_ev {
    uint64_t position;
    int64_t version; /* -1 streamless */
    uint64_t token;  /* checkpoint: its token */
    uint32_t n;      /* event number (checkpoint: 0) */
    uint16_t stream; /* stream index; checkpoint: its checkpoint index */
    uint8_t tenant;
    uint8_t kind;
} ack_ev;
#define ACK_MAGIC 0x314b4341u /* "ACK1" */
typedef struct ack_hdr {
    uint32_t magic;
    uint32_t nev;
} ack_hdr;

/* A snapshot saved (and acknowledged) by the workload; its content
 * follows from (tenant, stream, version). */
#define SNAP_MAGIC 0x31504e53u /* "SNP1" */
typedef struct snap_mark {
    uint32_t magic;
    uint8_t tenant;
    uint8_t pad;
    uint16_t stream;
    int64_t version;
} snap_mark;
static size_t snap_data(char *buf, size_t cap, unsigned t, unsigned s, int64_t v)
{
    return (size_t)snprintf(buf, cap, "{\"t\":%u,\"s\":%u,\"v\":%" PRId64 "}", t, s, v);
}

/* The scavenge workload's marks (test_powerloss_scavenge, below): the plan
 * it hands the scavenge, just before the call, and what it returned. */
#define PLAN_MAGIC 0x314e4c50u  /* "PLN1" */
#define SCRES_MAGIC 0x31524353u /* "SCR1" */

/* ------------------------------------------------------------------ */
/* The workload (child process, under the shim)                         */
/* ------------------------------------------------------------------ */

typedef void (*mark_fn)(const void *, size_t);
static mark_fn wl_mark;
static _Atomic uint32_t wl_next_n = 1;
static _Atomic int wl_failed;

typedef struct actor {
    evs_db *db;
    tu_rng rng;
    unsigned first_stream, nstreams; /* its own streams: no conflicts */
    unsigned cp;                     /* its own checkpoint */
    int64_t ver[NTENANTS][MAX_STREAMS];
    int64_t cpver[NTENANTS];
    uint64_t last_pos;
    unsigned appends;
} actor;

/* Events for one part: numbers from the global counter. */
typedef struct part_buf {
    evs_event_data ev[5];
    char data[5][DATA_CAP];
    const char *tags[5][NTAGS];
    uint32_t n[5];
} part_buf;

static void fill_part(part_buf *pb, size_t cnt)
{
    for (size_t i = 0; i < cnt; i++) {
        uint32_t n = atomic_fetch_add(&wl_next_n, 1);
        pb->n[i] = n;
        memset(&pb->ev[i], 0, sizeof(pb->ev[i]));
        ev_id(&pb->ev[i].id, n);
        pb->ev[i].type = ev_type(n);
        pb->ev[i].data_len = ev_data(pb->data[i], n);
        pb->ev[i].data = pb->data[i];
        pb->ev[i].tags = pb->tags[i];
        pb->ev[i].ntags = ev_tags(pb->tags[i], n);
    }
}

static void wl_fail(const char *what, int rc)
{
    fprintf(stderr, "workload: %s failed: %s (%s)\n", what, tu_errname(rc), evs_last_error());
    atomic_store(&wl_failed, 1);
}

/* One random append by actor a; marks it when acknowledged. */
static void actor_step(actor *a)
{
    unsigned t = (unsigned)tu_rng_range(&a->rng, 0, NTENANTS - 1);
    unsigned kind = (unsigned)tu_rng_range(&a->rng, 0, 99);
    part_buf pb[3];
    evs_stream_append parts[3];
    unsigned sidx[3];
    size_t nparts = 1, cnt[3] = {1, 0, 0};
    int streamless = 0, checkpoint = 0;

    if (kind < 35) {
        cnt[0] = 1;
    } else if (kind < 55) {
        cnt[0] = (size_t)tu_rng_range(&a->rng, 2, 5);
    } else if (kind < 70) {
        nparts = (size_t)tu_rng_range(&a->rng, 2, 3);
        for (size_t p = 0; p < nparts; p++)
            cnt[p] = (size_t)tu_rng_range(&a->rng, 1, 3);
    } else if (kind < 85) {
        streamless = 1; /* part 0 without a stream, maybe a stream part too */
        nparts = (size_t)tu_rng_range(&a->rng, 1, 2);
        for (size_t p = 0; p < nparts; p++)
            cnt[p] = (size_t)tu_rng_range(&a->rng, 1, 3);
    } else {
        checkpoint = 1;
        nparts = (size_t)tu_rng_range(&a->rng, 1, 2);
        for (size_t p = 0; p < nparts; p++)
            cnt[p] = (size_t)tu_rng_range(&a->rng, 1, 2);
    }
    /* Distinct streams for the parts. */
    unsigned s0 = (unsigned)tu_rng_range(&a->rng, 0, a->nstreams - 1);
    for (size_t p = 0; p < nparts; p++) {
        sidx[p] = a->first_stream + (s0 + (unsigned)p) % a->nstreams;
        fill_part(&pb[p], cnt[p]);
    }
    char names[3][64];
    for (size_t p = 0; p < nparts; p++) {
        stream_name(names[p], sizeof(names[p]), sidx[p]);
        int stream_less_part = streamless && p == 0;
        int64_t v = a->ver[t][sidx[p]];
        parts[p] = (evs_stream_append){stream_less_part ? NULL : names[p],
                                       stream_less_part ? EVS_ANY
                                       : v < 0          ? EVS_NO_STREAM
                                                        : v,
                                       pb[p].ev, cnt[p]};
    }
    evs_append_result res[3];
    int rc;
    char cpn[64];
    if (!streamless && !checkpoint && nparts == 1) {
        rc = evs_append(&res[0], a->db, tenants[t], parts[0].stream, parts[0].expected_version,
                        parts[0].events, parts[0].nevents);
    } else if (!streamless && !checkpoint) {
        rc = evs_append_multi(res, a->db, tenants[t], parts, nparts);
    } else {
        evs_append_request req = EVS_APPEND_REQUEST_INIT;
        req.tenant = tenants[t];
        req.parts = parts;
        req.nparts = nparts;
        if (checkpoint) {
            cp_name(cpn, sizeof(cpn), a->cp);
            req.checkpoint = cpn;
            req.checkpoint_token = a->last_pos;
        }
        rc = evs_append_ex(res, NULL, a->db, &req);
    }
    if (rc != 0) {
        wl_fail("append", rc);
        return;
    }
    /* The mark: every event of the append, in position order. */
    _Alignas(8) unsigned char mbuf[sizeof(ack_hdr) + 16 * sizeof(ack_ev)];
    ack_hdr *h = (ack_hdr *)mbuf;
    ack_ev *ev = (ack_ev *)(mbuf + sizeof(ack_hdr));
    size_t k = 0;
    uint64_t last = 0;
    for (size_t p = 0; p < nparts; p++) {
        int sl = streamless && p == 0;
        for (size_t i = 0; i < cnt[p]; i++) {
            ack_ev e = {0};
            e.position = res[p].first_position + i;
            e.version = sl ? -1 : res[p].first_version + (int64_t)i;
            e.n = pb[p].n[i];
            e.stream = sl ? NO_STREAM_IDX : (uint16_t)sidx[p];
            e.tenant = (uint8_t)t;
            e.kind = sl ? K_STREAMLESS : K_STREAM;
            ev[k++] = e;
        }
        if (res[p].last_position > last)
            last = res[p].last_position;
        if (!sl)
            a->ver[t][sidx[p]] = res[p].stream_version;
    }
    if (checkpoint) {
        ack_ev e = {0};
        e.position = last + 1;
        e.version = ++a->cpver[t];
        e.token = a->last_pos;
        e.stream = (uint16_t)a->cp;
        e.tenant = (uint8_t)t;
        e.kind = K_CHECKPOINT;
        ev[k++] = e;
        last++;
    }
    h->magic = ACK_MAGIC;
    h->nev = (uint32_t)k;
    wl_mark(mbuf, sizeof(ack_hdr) + k * sizeof(ack_ev));
    a->last_pos = last;
    a->appends++;
    /* Now and then a snapshot of the last stream part (a cache, but kept
     * in an environment of its own that must survive crashes intact);
     * only in the threaded phase, so that the first phase's states have a
     * snapshots environment that was never written. */
    size_t sp = nparts - 1;
    if (a->cp != 0 && !(streamless && sp == 0) && tu_rng_range(&a->rng, 0, 9) == 0) {
        char sd[96];
        size_t sl = snap_data(sd, sizeof(sd), t, sidx[sp], res[sp].stream_version);
        rc = evs_snapshot_save(a->db, tenants[t], names[sp], res[sp].stream_version, "s1",
                               sd, sl);
        if (rc != 0) {
            wl_fail("snapshot save", rc);
            return;
        }
        snap_mark m = {SNAP_MAGIC, (uint8_t)t, 0, (uint16_t)sidx[sp], res[sp].stream_version};
        wl_mark(&m, sizeof(m));
    }
}

static void actor_init(actor *a, evs_db *db, uint64_t seed, unsigned first, unsigned n,
                       unsigned cp)
{
    memset(a, 0, sizeof(*a));
    a->db = db;
    tu_rng_init(&a->rng, seed);
    a->first_stream = first;
    a->nstreams = n;
    a->cp = cp;
    for (int t = 0; t < NTENANTS; t++) {
        for (int s = 0; s < MAX_STREAMS; s++)
            a->ver[t][s] = -1;
        a->cpver[t] = -1;
    }
}

typedef struct thread_arg {
    actor *a;
    unsigned steps;
} thread_arg;

static void *actor_thread(void *p)
{
    thread_arg *ta = p;
    for (unsigned i = 0; i < ta->steps && !atomic_load(&wl_failed); i++)
        actor_step(ta->a);
    return NULL;
}

static int wl_open(evs_db **db, const char *dir)
{
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    o.segment_size = SEGMENT_SIZE;
    int rc = evs_open(db, dir, &o);
    if (rc != 0)
        wl_fail("open", rc);
    return rc;
}

#define WL_THREADS 3

static int workload_main(const char *dir, uint64_t seed)
{
    wl_mark = (mark_fn)(uintptr_t)dlsym(RTLD_DEFAULT, "evs_iorec_mark");
    if (!wl_mark) {
        fprintf(stderr, "workload: evs_iorec_mark not found: is the shim preloaded?\n");
        return 2;
    }
    evs_db *db;
    actor main_actor, ta[WL_THREADS];
    if (wl_open(&db, dir) != 0)
        return 1;
    actor_init(&main_actor, db, seed ^ 0x5151, 0, 10, 0);
    for (unsigned i = 0; i < 110 && !wl_failed; i++)
        actor_step(&main_actor);
    /* The threaded phase with a slow preallocator (a test hook of the
     * engine): the writer reaches each rollover first and makes the
     * segment itself, the path where the writer and the
     * preallocator once both created the same segment file. */
    setenv("EVS_DEBUG_PREALLOC_DELAY_MS", "20", 1);
    if (evs_close(db) != 0 || wl_open(&db, dir) != 0)
        return 1;
    unsetenv("EVS_DEBUG_PREALLOC_DELAY_MS");
    main_actor.db = db;
    pthread_t th[WL_THREADS];
    thread_arg targ[WL_THREADS];
    for (unsigned t = 0; t < WL_THREADS; t++) {
        actor_init(&ta[t], db, seed ^ (0x777u * (t + 1)), 10 + 10 * t, 10, 1 + t);
        targ[t] = (thread_arg){&ta[t], 70};
        pthread_create(&th[t], NULL, actor_thread, &targ[t]);
    }
    for (unsigned t = 0; t < WL_THREADS; t++)
        pthread_join(th[t], NULL);
    if (wl_failed || evs_close(db) != 0 || wl_open(&db, dir) != 0)
        return 1;
    main_actor.db = db;
    for (unsigned i = 0; i < 70 && !wl_failed; i++)
        actor_step(&main_actor);
    if (evs_close(db) != 0)
        return 1;
    return wl_failed ? 1 : 0;
}

/* ------------------------------------------------------------------ */
/* The journal                                                          */
/* ------------------------------------------------------------------ */

typedef struct op {
    uint8_t op, flags;
    char *path, *path2; /* malloc'd, NUL-terminated */
    uint64_t off, len, ino;
    const unsigned char *data; /* into the mapped journal; NULL: zeros */
} op;

static op *ops;
static size_t nops;

static int journal_load(const char *path, unsigned char **map, size_t *maplen)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        return -1;
    *maplen = (size_t)st.st_size;
    *map = *maplen ? mmap(NULL, *maplen, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    close(fd);
    if (*maplen && *map == MAP_FAILED)
        return -1;
    size_t cap = 1024, o = 0;
    ops = malloc(cap * sizeof(*ops));
    nops = 0;
    while (o + sizeof(iorec_hdr) <= *maplen) {
        iorec_hdr h;
        memcpy(&h, *map + o, sizeof(h));
        o += sizeof(h);
        size_t dlen = (h.op == IOREC_WRITE && !(h.flags & IOREC_F_ZERO)) || h.op == IOREC_MARK
                          ? (size_t)h.len
                          : 0;
        if (o + h.plen + h.p2len + dlen > *maplen)
            return -1;
        if (nops == cap)
            ops = realloc(ops, (cap *= 2) * sizeof(*ops));
        op *p = &ops[nops++];
        p->op = h.op;
        p->flags = h.flags;
        p->path = strndup((const char *)*map + o, h.plen);
        p->path2 = strndup((const char *)*map + o + h.plen, h.p2len);
        p->off = h.off;
        p->len = h.len;
        p->ino = h.ino;
        o += h.plen + h.p2len;
        p->data = dlen ? *map + o : NULL;
        o += dlen;
    }
    return o == *maplen ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* The history (from the marks)                                         */
/* ------------------------------------------------------------------ */

typedef struct hist_ev {
    ack_ev e;
    uint64_t append_last; /* last position of its append */
    size_t mark_op;       /* index of its mark in ops */
    int present;
} hist_ev;

static hist_ev *hist; /* by position, 1..hist_n */
static char snap_saved[NTENANTS][MAX_STREAMS]; /* streams with a snapshot */
static uint64_t hist_n;
/* For every op index k: the highest position acknowledged before it. */
static uint64_t *acked_before;

static int history_build(char *err, size_t errcap)
{
    uint64_t maxpos = 0;
    for (size_t i = 0; i < nops; i++)
        if (ops[i].op == IOREC_MARK && ops[i].len >= sizeof(ack_hdr)) {
            ack_hdr h;
            ack_ev ev;
            memcpy(&h, ops[i].data, sizeof(h)); /* the journal is not aligned */
            if (h.magic != ACK_MAGIC)
                continue;
            for (uint32_t j = 0; j < h.nev && j < 64 && ops[i].len >= sizeof(h) +
                                     (j + 1) * sizeof(ev); j++) {
                memcpy(&ev, ops[i].data + sizeof(h) + j * sizeof(ev), sizeof(ev));
                if (ev.position > maxpos)
                    maxpos = ev.position;
            }
        }
    hist_n = maxpos;
    hist = calloc(maxpos + 2, sizeof(*hist));
    acked_before = calloc(nops + 1, sizeof(*acked_before));
    uint64_t a = 0;
    for (size_t i = 0; i < nops; i++) {
        acked_before[i] = a;
        if (ops[i].op != IOREC_MARK)
            continue;
        ack_hdr h;
        memcpy(&h, ops[i].data, sizeof(h));
        if (h.magic == SNAP_MAGIC && ops[i].len == sizeof(snap_mark)) {
            snap_mark m;
            memcpy(&m, ops[i].data, sizeof(m));
            if (m.tenant < NTENANTS && m.stream < MAX_STREAMS)
                snap_saved[m.tenant][m.stream] = 1;
            continue;
        }
        if (h.magic == PLAN_MAGIC || h.magic == SCRES_MAGIC)
            continue; /* the scavenge workload's plan and result */
        if (h.magic != ACK_MAGIC || h.nev == 0 || h.nev > 64 ||
            ops[i].len != sizeof(h) + h.nev * sizeof(ack_ev)) {
            snprintf(err, errcap, "mark at op %zu is malformed", i);
            return -1;
        }
        ack_ev ev[64];
        memcpy(ev, ops[i].data + sizeof(h), h.nev * sizeof(ack_ev));
        uint64_t last = ev[h.nev - 1].position;
        for (uint32_t j = 0; j < h.nev; j++) {
            if (ev[j].position != ev[0].position + j || hist[ev[j].position].present) {
                snprintf(err, errcap, "mark at op %zu: position %" PRIu64 " not consecutive or "
                         "acknowledged twice", i, ev[j].position);
                return -1;
            }
            hist[ev[j].position] = (hist_ev){ev[j], last, i, 1};
        }
        if (last > a)
            a = last;
    }
    acked_before[nops] = a;
    for (uint64_t p = 1; p <= hist_n; p++)
        if (!hist[p].present) {
            snprintf(err, errcap, "position %" PRIu64 " of %" PRIu64 " was never acknowledged "
                     "(the workload's appends all succeed, so positions must be gapless)",
                     p, hist_n);
            return -1;
        }
    return 0;
}

/* ------------------------------------------------------------------ */
/* The checker (forked child, one per state)                            */
/* ------------------------------------------------------------------ */

static char chk_where[512]; /* "seed=.. point=.. state=.." for messages */
static int chk_failed;
static int chk_opened; /* the read-write open succeeded */
/* The child's first failure message, for the parent's summary by kind
 * (a shared anonymous page). */
static char *chk_first;
#define CHK_FIRST_CAP 1024
/* The child's view of what the open did with the index: 1 kept (same
 * data.mdb inode), 2 rebuilt, 0 unknown. */
static int *chk_index;
static int chk_power; /* this state is a power loss (a reboot) */

__attribute__((format(printf, 1, 2))) static void chk_fail(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (chk_failed == 0 && chk_first)
        snprintf(chk_first, CHK_FIRST_CAP, "%s", msg);
    if (chk_failed++ < 3)
        fprintf(stderr, "powerloss FAIL %s: %s\n", chk_where, msg);
}

static int tags_equal(const tu_event_copy *c, uint32_t n)
{
    const char *want[NTAGS];
    size_t k = ev_tags(want, n);
    if (c->ntags != k)
        return 0;
    for (size_t i = 0; i < k; i++) {
        size_t j;
        for (j = 0; j < c->ntags; j++)
            if (strcmp(c->tags[j], want[i]) == 0)
                break;
        if (j == c->ntags)
            return 0;
    }
    return 1;
}

/* Compare a read event with history position p; "" if equal. */
static const char *event_diff(const tu_event_copy *c, uint64_t p)
{
    static char why[256];
    const ack_ev *e = &hist[p].e;
    char sname[64] = "", data[DATA_CAP];
    evs_uuid id;
    if (e->kind == K_STREAM)
        stream_name(sname, sizeof(sname), e->stream);
    ev_id(&id, e->n);
    size_t dl = ev_data(data, e->n);
    if (c->position != p)
        snprintf(why, sizeof(why), "position %" PRIu64 " instead of %" PRIu64, c->position, p);
    else if (strcmp(c->tenant, tenants[e->tenant]) != 0)
        snprintf(why, sizeof(why), "tenant \"%s\" instead of \"%s\"", c->tenant,
                 tenants[e->tenant]);
    else if (strcmp(c->stream, sname) != 0)
        snprintf(why, sizeof(why), "stream \"%s\" instead of \"%s\"", c->stream, sname);
    else if (c->stream_version != e->version)
        snprintf(why, sizeof(why), "version %" PRId64 " instead of %" PRId64,
                 c->stream_version, e->version);
    else if (!tu_uuid_eq(&c->id, &id))
        snprintf(why, sizeof(why), "another event id");
    else if (strcmp(c->type, ev_type(e->n)) != 0)
        snprintf(why, sizeof(why), "type %s instead of %s", c->type, ev_type(e->n));
    else if (c->data_len != dl || memcmp(c->data, data, dl) != 0)
        snprintf(why, sizeof(why), "other data (%zu bytes, %zu expected)", c->data_len, dl);
    else if (!tags_equal(c, e->n))
        snprintf(why, sizeof(why), "other tags (%zu)", c->ntags);
    else
        return "";
    return why;
}

/* Compare a read (got) with the positions want[0..nwant). */
static void compare_list(const char *what, const tu_events *got, const uint64_t *want,
                         size_t nwant)
{
    size_t n = got->n < nwant ? got->n : nwant;
    for (size_t i = 0; i < n; i++) {
        const char *d = event_diff(&got->v[i], want[i]);
        if (*d) {
            chk_fail("%s: event %zu (position %" PRIu64 " expected): %s", what, i, want[i], d);
            return;
        }
    }
    if (got->n != nwant)
        chk_fail("%s: %zu events read, %zu expected (first missing/extra position %" PRIu64
                 ")", what, got->n, nwant,
                 got->n < nwant ? want[got->n] : got->v[nwant].position);
}

typedef int (*ev_pred)(const ack_ev *e, const void *ctx);

static size_t select_pos(uint64_t *out, uint64_t head, ev_pred pred, const void *ctx)
{
    size_t k = 0;
    for (uint64_t p = 1; p <= head; p++)
        if (pred(&hist[p].e, ctx))
            out[k++] = p;
    return k;
}

static int pred_tenant(const ack_ev *e, const void *ctx)
{
    int t = *(const int *)ctx;
    return e->kind != K_CHECKPOINT && (t < 0 || e->tenant == t);
}
typedef struct stream_key {
    int tenant;
    unsigned stream;
} stream_key;
static int pred_stream(const ack_ev *e, const void *ctx)
{
    const stream_key *k = ctx;
    return e->kind == K_STREAM && e->tenant == k->tenant && e->stream == k->stream;
}
typedef struct query_model {
    int tenant;
    int type;     /* -1: any */
    unsigned tags; /* mask of tagnames: all required */
    int cat;      /* -1: none; else only streams of cats[cat] */
} query_model;
static int pred_query(const ack_ev *e, const void *ctx)
{
    const query_model *q = ctx;
    if (e->kind == K_CHECKPOINT || e->tenant != q->tenant)
        return 0;
    if (q->type >= 0 && strcmp(ev_type(e->n), types[q->type]) != 0)
        return 0;
    if ((ev_tagmask(e->n) & q->tags) != q->tags)
        return 0;
    if (q->cat >= 0 && (e->kind != K_STREAM || e->stream % NCATS != (unsigned)q->cat))
        return 0;
    return 1;
}

static void verify_cb(void *ctx, const char *problem)
{
    unsigned *n = ctx;
    if ((*n)++ < 3)
        chk_fail("evs_verify: %s", problem);
}

static int chk_open(evs_db **db, const char *dir)
{
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    o.flags = 0; /* the store must be there */
    return evs_open(db, dir, &o);
}

/* Everything about one opened state. Returns the number of failures. */
static int check_state(const char *dir, size_t k)
{
    evs_db *db = NULL;
    uint64_t acked = acked_before[k];
    int rc;
    /* What the state file says, and which data.mdb is there. */
    char path[4096];
    unsigned char sf[128];
    int state_open = -1; /* -1: no valid state file */
    struct stat ist;
    ino_t ino_before = 0;
    snprintf(path, sizeof(path), "%s/state", dir);
    int sfd = open(path, O_RDONLY);
    if (sfd >= 0) {
        if (read(sfd, sf, sizeof(sf)) == (ssize_t)sizeof(sf) && memcmp(sf, "EVSSTAT", 8) == 0)
            state_open = sf[12] & 1;
        close(sfd);
    }
    snprintf(path, sizeof(path), "%s/index/data.mdb", dir);
    if (stat(path, &ist) == 0)
        ino_before = ist.st_ino;
    /* First read-only: it never recovers, so it may refuse a store whose
     * index is not trusted (EVS_ECORRUPT, saying to open it read-write),
     * but what it shows must be true and complete up to the acknowledged
     * events (a trusted index has every commit before its ack). */
    {
        evs_open_options ro = EVS_OPEN_OPTIONS_INIT;
        ro.flags = EVS_OPEN_READONLY;
        rc = evs_open(&db, dir, &ro);
        if (rc != 0 && rc != EVS_ECORRUPT) {
            chk_fail("read-only open: %s (EVS_ECORRUPT or success expected): %s",
                     tu_errname(rc), evs_last_error());
        } else if (rc == 0) {
            uint64_t h = 0;
            tu_events all = {0};
            int t = -1;
            if ((rc = evs_head_position(&h, db, NULL)) != 0)
                chk_fail("read-only open: evs_head_position: %s", tu_errname(rc));
            else if (h < acked || h > hist_n)
                chk_fail("read-only open shows head %" PRIu64 " but %" PRIu64 " was "
                         "acknowledged (and %" PRIu64 " ever written): it read an index it "
                         "should not trust", h, acked, hist_n);
            else if ((rc = tu_read_all(&all, db, NULL, 0, 0)) != 0)
                chk_fail("read-only open: $all: %s: %s", tu_errname(rc), evs_last_error());
            else {
                uint64_t *w = malloc((h + 1) * sizeof(*w));
                compare_list("read-only $all of every tenant", &all, w,
                             select_pos(w, h, pred_tenant, &t));
                free(w);
            }
            tu_events_free(&all);
            evs_close(db);
        }
        db = NULL;
    }
    rc = chk_open(&db, dir);
    if (rc != 0) {
        chk_fail("read-write open failed: %s: %s", tu_errname(rc), evs_last_error());
        return chk_failed;
    }
    chk_opened = 1;
    if (ino_before) {
        int kept = stat(path, &ist) == 0 && ist.st_ino == ino_before;
        if (chk_index)
            *chk_index = kept ? 1 : 2;
        /* After a reboot an index left OPEN may hold any subset of its
         * unsynced pages: it must be deleted unread and rebuilt. */
        if (chk_power && state_open == 1 && kept)
            chk_fail("the state file says OPEN and this is another boot, yet the index "
                     "(data.mdb, same inode) was kept: it may hold any mix of unsynced "
                     "pages");
    }
    uint64_t head = 0;
    if ((rc = evs_head_position(&head, db, NULL)) != 0) {
        chk_fail("evs_head_position: %s", tu_errname(rc));
        goto out;
    }
    if (head < acked) {
        chk_fail("head %" PRIu64 " but position %" PRIu64 " was acknowledged: acknowledged "
                 "events lost", head, acked);
        goto out; /* the comparisons below would only repeat it */
    }
    if (head > hist_n) {
        chk_fail("head %" PRIu64 " beyond every position ever written (%" PRIu64 ")", head,
                 hist_n);
        goto out;
    }
    if (head > 0 && hist[head].append_last != head)
        chk_fail("head %" PRIu64 " is inside an append (which ends at %" PRIu64 "): an "
                 "append is visible in part", head, hist[head].append_last);

    uint64_t *want = malloc((hist_n + 1) * sizeof(*want));
    tu_events got = {0};
    char what[160];
    /* $all: every tenant (administration), then each tenant. */
    for (int t = -1; t < NTENANTS; t++) {
        tu_events_clear(&got);
        rc = tu_read_all(&got, db, t < 0 ? NULL : tenants[t], 0, 0);
        snprintf(what, sizeof(what), "$all of %s%s%s", t < 0 ? "every tenant" : "tenant \"",
                 t < 0 ? "" : tenants[t], t < 0 ? "" : "\"");
        if (rc != 0)
            chk_fail("%s: read failed: %s: %s", what, tu_errname(rc), evs_last_error());
        else
            compare_list(what, &got, want, select_pos(want, head, pred_tenant, &t));
    }
    /* Streams. */
    for (int t = 0; t < NTENANTS; t++)
        for (unsigned s = 0; s < MAX_STREAMS; s++) {
            stream_key sk = {t, s};
            size_t nw = select_pos(want, hist_n, pred_stream, &sk);
            if (nw == 0)
                continue; /* never written */
            nw = select_pos(want, head, pred_stream, &sk);
            char sn[64];
            stream_name(sn, sizeof(sn), s);
            tu_events_clear(&got);
            rc = tu_read_stream(&got, db, tenants[t], sn, 0, EVS_FORWARD, 0);
            snprintf(what, sizeof(what), "stream %s of tenant \"%s\"", sn, tenants[t]);
            if (rc != 0)
                chk_fail("%s: read failed: %s: %s", what, tu_errname(rc), evs_last_error());
            else
                compare_list(what, &got, want, nw);
            int64_t v = -2, wv = nw ? hist[want[nw - 1]].e.version : -1;
            if ((rc = evs_stream_version(&v, db, tenants[t], sn)) != 0 || v != wv)
                chk_fail("%s: evs_stream_version %s, %" PRId64 " instead of %" PRId64, what,
                         tu_errname(rc), v, wv);
            /* A snapshot may be lost (a cache), never wrong. */
            evs_snapshot *snap = NULL;
            rc = evs_snapshot_load(&snap, db, tenants[t], sn, EVS_END);
            if (rc == 0) {
                char sd[96];
                size_t sl = snap_data(sd, sizeof(sd), (unsigned)t, s, snap->version);
                if (!snap_saved[t][s] || snap->version > wv || strcmp(snap->schema, "s1") != 0 ||
                    snap->data_len != sl || memcmp(snap->data, sd, sl) != 0)
                    chk_fail("%s: snapshot at version %" PRId64 " (stream at %" PRId64 ") is "
                             "not one that was saved", what, snap->version, wv);
                evs_snapshot_free(snap);
            } else if (rc != EVS_ENOTFOUND) {
                chk_fail("%s: evs_snapshot_load: %s: %s", what, tu_errname(rc),
                         evs_last_error());
            }
        }
    /* DCB queries: by type, by tag, type and two tags, category. */
    for (int t = 0; t < NTENANTS; t++) {
        query_model qs[NTYPES + NTAGS + 2];
        size_t nq = 0;
        for (int i = 0; i < NTYPES; i++)
            qs[nq++] = (query_model){t, i, 0, -1};
        for (int i = 0; i < NTAGS; i++)
            qs[nq++] = (query_model){t, -1, 1u << i, -1};
        qs[nq++] = (query_model){t, 1, 1u | 8u, -1};
        qs[nq++] = (query_model){t, -1, 0, 1};
        for (size_t i = 0; i < nq; i++) {
            const char *qt[1], *qg[NTAGS + 1];
            size_t ng = 0;
            char catg[64];
            evs_query_item item = {qt, 0, qg, 0};
            if (qs[i].type >= 0)
                qt[item.ntypes++] = types[qs[i].type];
            for (int g = 0; g < NTAGS; g++)
                if (qs[i].tags & (1u << g))
                    qg[ng++] = tagnames[g];
            if (qs[i].cat >= 0) {
                snprintf(catg, sizeof(catg), "%s%s", EVS_CATEGORY_TAG_PREFIX, cats[qs[i].cat]);
                qg[ng++] = catg;
            }
            item.ntags = ng;
            evs_query q = {&item, 1};
            uint64_t marker = 0;
            tu_events_clear(&got);
            rc = tu_read_query(&got, &marker, db, tenants[t], &q, 0, EVS_FORWARD, 0);
            snprintf(what, sizeof(what), "query %zu (type %s, tags 0x%x, category %s) of "
                     "tenant \"%s\"", i, qs[i].type >= 0 ? types[qs[i].type] : "any",
                     qs[i].tags, qs[i].cat >= 0 ? cats[qs[i].cat] : "-", tenants[t]);
            if (rc != 0)
                chk_fail("%s: read failed: %s: %s", what, tu_errname(rc), evs_last_error());
            else
                compare_list(what, &got, want, select_pos(want, head, pred_query, &qs[i]));
            if (rc == 0 && marker != head)
                chk_fail("%s: marker %" PRIu64 " instead of the head %" PRIu64, what, marker,
                         head);
        }
    }
    /* Tokens and checkpoints. */
    uint64_t tok;
    if ((rc = evs_token_head(&tok, db, NULL)) != 0 || tok != head)
        chk_fail("evs_token_head(store): %s, %" PRIu64 " instead of %" PRIu64, tu_errname(rc),
                 tok, head);
    for (int t = 0; t < NTENANTS; t++) {
        size_t nw = select_pos(want, head, pred_tenant, &t);
        uint64_t wh = nw ? want[nw - 1] : 0, wt = nw ? want[0] - 1 : 0;
        if ((rc = evs_token_head(&tok, db, tenants[t])) != 0 || tok != wh)
            chk_fail("evs_token_head(\"%s\"): %s, %" PRIu64 " instead of %" PRIu64, tenants[t],
                     tu_errname(rc), tok, wh);
        if ((rc = evs_token_tail(&tok, db, tenants[t])) != 0 || tok != wt)
            chk_fail("evs_token_tail(\"%s\"): %s, %" PRIu64 " instead of %" PRIu64, tenants[t],
                     tu_errname(rc), tok, wt);
        for (unsigned c = 0; c < MAX_CPS; c++) {
            int found = 0, ever = 0;
            uint64_t wtok = 0;
            for (uint64_t p = 1; p <= hist_n; p++)
                if (hist[p].e.kind == K_CHECKPOINT && hist[p].e.tenant == t &&
                    hist[p].e.stream == c) {
                    ever = 1;
                    if (p <= head)
                        found = 1, wtok = hist[p].e.token;
                }
            if (!ever)
                continue;
            char cn[64];
            cp_name(cn, sizeof(cn), c);
            rc = evs_checkpoint_get(&tok, db, tenants[t], cn);
            if (found ? (rc != 0 || tok != wtok) : rc != EVS_ENOTFOUND)
                chk_fail("checkpoint %s of tenant \"%s\": %s, %" PRIu64 "; expected %s %" PRIu64,
                         cn, tenants[t], tu_errname(rc), rc == 0 ? tok : 0,
                         found ? "token" : "EVS_ENOTFOUND", wtok);
        }
    }
    /* One more append: position head+1, the stream's next version. */
    {
        unsigned s = 0;
        int t = 0;
        int64_t wv = -1;
        for (uint64_t p = head; p >= 1; p--)
            if (hist[p].e.kind == K_STREAM) {
                s = hist[p].e.stream, t = hist[p].e.tenant, wv = hist[p].e.version;
                break;
            }
        char sn[64], data[64];
        stream_name(sn, sizeof(sn), s);
        evs_event_data e = {0};
        e.type = "AfterCrash";
        e.data = data;
        e.data_len = (size_t)snprintf(data, sizeof(data), "{\"k\":%zu}", k);
        evs_uuid_generate(&e.id);
        evs_append_result r;
        rc = evs_append(&r, db, tenants[t], sn, EVS_ANY, &e, 1);
        if (rc != 0)
            chk_fail("append after the crash: %s: %s", tu_errname(rc), evs_last_error());
        else if (r.first_position != head + 1 || r.first_version != wv + 1)
            chk_fail("append after the crash to %s: position %" PRIu64 " version %" PRId64
                     ", expected %" PRIu64 " and %" PRId64 " (reuse of a position or "
                     "version)", sn, r.first_position, r.first_version, head + 1, wv + 1);
    }
    tu_events_free(&got);
    free(want);
out:
    if ((rc = evs_close(db)) != 0)
        chk_fail("close: %s: %s", tu_errname(rc), evs_last_error());
    db = NULL;
    if (chk_failed)
        return chk_failed;
    if ((rc = chk_open(&db, dir)) != 0) {
        chk_fail("reopen after the check failed: %s: %s", tu_errname(rc), evs_last_error());
        return chk_failed;
    }
    unsigned problems = 0;
    uint64_t checked = 0;
    rc = evs_verify(&checked, db, verify_cb, &problems);
    if (rc != 0 || problems != 0)
        chk_fail("evs_verify after reopen: %s, %u problem(s)", tu_errname(rc), problems);
    else if (checked != head + 1)
        chk_fail("evs_verify checked %" PRIu64 " records, %" PRIu64 " expected", checked,
                 head + 1);
    if ((rc = evs_close(db)) != 0)
        chk_fail("close after verify: %s: %s", tu_errname(rc), evs_last_error());
    return chk_failed;
}

/* ------------------------------------------------------------------ */
/* Replaying the journal: files, their durable images, the namespace    */
/* ------------------------------------------------------------------ */

typedef struct file {
    uint64_t ino;
    unsigned char **blk; /* durable image, BLK bytes each; NULL = zeros */
    size_t nblk;
    uint64_t size;       /* durable size */
    size_t *pending;     /* op indexes after the last sync */
    size_t npending, cappending;
    uint64_t mtime_ns;   /* mtime at the last sync (0: unknown) */
} file;

static file *files;
static size_t nfiles, capfiles;

static file *file_get(uint64_t ino, int fresh)
{
    for (size_t i = nfiles; i-- > 0;)
        if (files[i].ino == ino) {
            if (!fresh)
                return &files[i];
            files[i].ino = 0; /* the inode number was reused: a new file */
            break;
        }
    if (nfiles == capfiles)
        files = realloc(files, (capfiles = capfiles ? capfiles * 2 : 64) * sizeof(*files));
    memset(&files[nfiles], 0, sizeof(files[nfiles]));
    files[nfiles].ino = ino;
    return &files[nfiles++];
}

static unsigned char *blk_get(unsigned char ***blk, size_t *nblk, size_t b)
{
    if (b >= *nblk) {
        size_t n = b + 1 > *nblk * 2 ? b + 1 : *nblk * 2;
        *blk = realloc(*blk, n * sizeof(**blk));
        memset(*blk + *nblk, 0, (n - *nblk) * sizeof(**blk));
        *nblk = n;
    }
    if (!(*blk)[b])
        (*blk)[b] = calloc(1, BLK);
    return (*blk)[b];
}

/* Apply op o (a write, truncate or fallocate) to an image. */
static void image_apply(unsigned char ***blk, size_t *nblk, uint64_t *size, const op *o)
{
    if (o->op == IOREC_WRITE) {
        uint64_t off = o->off, end = o->off + o->len;
        while (off < end) {
            size_t b = (size_t)(off / BLK), in = (size_t)(off % BLK);
            size_t k = (size_t)(end - off < BLK - in ? end - off : BLK - in);
            if (!o->data && (b >= *nblk || !(*blk)[b])) {
                off += k;
                continue; /* zeros onto zeros */
            }
            unsigned char *p = blk_get(blk, nblk, b);
            if (o->data)
                memcpy(p + in, o->data + (off - o->off), k);
            else
                memset(p + in, 0, k);
            off += k;
        }
        if (end > *size)
            *size = end;
    } else if (o->op == IOREC_TRUNCATE) {
        uint64_t n = o->len;
        for (size_t b = (size_t)((n + BLK - 1) / BLK); b < *nblk; b++)
            if ((*blk)[b]) {
                free((*blk)[b]);
                (*blk)[b] = NULL;
            }
        if (n % BLK && n / BLK < *nblk && (*blk)[n / BLK])
            memset((*blk)[n / BLK] + n % BLK, 0, BLK - n % BLK);
        *size = n;
    } else if (o->op == IOREC_FALLOC && !(o->flags & IOREC_F_KEEP)) {
        if (o->off + o->len > *size)
            *size = o->off + o->len;
    }
}

static void file_sync(file *f)
{
    for (size_t i = 0; i < f->npending; i++)
        image_apply(&f->blk, &f->nblk, &f->size, &ops[f->pending[i]]);
    f->npending = 0;
}

/* Directory operations, for the namespace at a crash point. */
static size_t *dirops;
static size_t ndirops;

static void parent_of(char *out, size_t cap, const char *path)
{
    const char *s = strrchr(path, '/');
    snprintf(out, cap, "%.*s", s ? (int)(s - path) : 0, path);
}

typedef struct ns_ent {
    char *path;
    uint64_t ino; /* 0 with isdir */
    int isdir;
} ns_ent;

static ns_ent *ns_find(ns_ent *ns, size_t n, const char *path)
{
    for (size_t i = 0; i < n; i++)
        if (ns[i].path && strcmp(ns[i].path, path) == 0)
            return &ns[i];
    return NULL;
}

/* The namespace after the dir ops before k, of which those after their
 * directory's last sync are kept only as a per-directory prefix whose
 * length is drawn from rng (all of them when rng is NULL). */
static size_t ns_build(ns_ent **out, size_t k, tu_rng *rng)
{
    /* Per directory: the last dir sync before k, and the prefix kept. */
    typedef struct dstate {
        char path[256];
        size_t last_sync; /* op index + 1; 0: never */
        size_t npend, keep, seen;
    } dstate;
    dstate ds[32];
    size_t nds = 0;
    char par[256];
    for (size_t j = 0; j < ndirops && dirops[j] < k; j++) {
        const op *o = &ops[dirops[j]];
        parent_of(par, sizeof(par), o->op == IOREC_RENAME ? o->path2 : o->path);
        size_t d;
        for (d = 0; d < nds; d++)
            if (strcmp(ds[d].path, par) == 0)
                break;
        if (d == nds && nds < 32) {
            memset(&ds[nds], 0, sizeof(ds[nds]));
            snprintf(ds[nds].path, sizeof(ds[nds].path), "%s", par);
            nds++;
        }
    }
    for (size_t i = 0; i < k; i++)
        if (ops[i].op == IOREC_DIRSYNC)
            for (size_t d = 0; d < nds; d++)
                if (strcmp(ds[d].path, ops[i].path) == 0)
                    ds[d].last_sync = i + 1;
    for (size_t j = 0; j < ndirops && dirops[j] < k; j++) {
        const op *o = &ops[dirops[j]];
        parent_of(par, sizeof(par), o->op == IOREC_RENAME ? o->path2 : o->path);
        for (size_t d = 0; d < nds; d++)
            if (strcmp(ds[d].path, par) == 0 && dirops[j] >= ds[d].last_sync)
                ds[d].npend++;
    }
    for (size_t d = 0; d < nds; d++) {
        /* The root (the store's parent) is the test's: taken as durable. */
        if (!rng || ds[d].path[0] == '\0')
            ds[d].keep = ds[d].npend;
        else {
            uint64_t r = tu_rng_range(rng, 0, 3);
            ds[d].keep = r == 0   ? 0
                         : r == 1 ? ds[d].npend
                                  : (size_t)tu_rng_range(rng, 0, ds[d].npend);
        }
    }
    ns_ent *ns = calloc(ndirops + 1, sizeof(*ns));
    size_t n = 0;
    for (size_t j = 0; j < ndirops && dirops[j] < k; j++) {
        const op *o = &ops[dirops[j]];
        parent_of(par, sizeof(par), o->op == IOREC_RENAME ? o->path2 : o->path);
        int apply = 1;
        for (size_t d = 0; d < nds; d++)
            if (strcmp(ds[d].path, par) == 0 && dirops[j] >= ds[d].last_sync)
                apply = ds[d].seen++ < ds[d].keep;
        if (!apply)
            continue;
        ns_ent *e;
        switch (o->op) {
        case IOREC_CREATE:
        case IOREC_MKDIR:
            if ((e = ns_find(ns, n, o->path)) == NULL)
                e = &ns[n++], e->path = o->path;
            e->ino = o->ino;
            e->isdir = o->op == IOREC_MKDIR;
            break;
        case IOREC_RENAME: {
            ns_ent *src = ns_find(ns, n, o->path);
            if (!src)
                break;
            ns_ent *dst = ns_find(ns, n, o->path2);
            if (dst)
                dst->path = NULL;
            src->path = o->path2;
            break;
        }
        case IOREC_UNLINK:
            if ((e = ns_find(ns, n, o->path)) != NULL)
                e->path = NULL;
            break;
        }
    }
    *out = ns;
    return n;
}

/* ------------------------------------------------------------------ */
/* Materialising a state in the store's directory                       */
/* ------------------------------------------------------------------ */

static char *ws_root;  /* the shim's root: the store's parent */
static char *keep_dir; /* hard links keeping the workload's inodes */

static void keep_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    if (!d)
        return;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char *p = tu_path_join(dir, de->d_name), k[4096];
        struct stat st;
        if (lstat(p, &st) == 0) {
            if (S_ISDIR(st.st_mode))
                keep_tree(p);
            else if (S_ISREG(st.st_mode)) {
                snprintf(k, sizeof(k), "%s/f%llu", keep_dir, (unsigned long long)st.st_ino);
                if (link(p, k) != 0 && errno != EEXIST)
                    fprintf(stderr, "powerloss: link %s: %s\n", p, strerror(errno));
            }
        }
        free(p);
    }
    closedir(d);
}

/* Remove every file under dir (the directories stay: their inodes are the
 * workload's); directories not in the namespace are moved aside. */
static void clear_tree(const char *rel, ns_ent *ns, size_t nns)
{
    char *dir = tu_path_join(ws_root, rel);
    DIR *d = opendir(dir);
    struct dirent *de;
    if (d) {
        while ((de = readdir(d)) != NULL) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                continue;
            char r[1024];
            snprintf(r, sizeof(r), "%s%s%s", rel, *rel ? "/" : "", de->d_name);
            char *p = tu_path_join(ws_root, r);
            struct stat st;
            if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
                clear_tree(r, ns, nns);
                ns_ent *e = ns_find(ns, nns, r);
                if (!e || !e->isdir) {
                    char k[4096];
                    snprintf(k, sizeof(k), "%s/d%llu", keep_dir, (unsigned long long)st.st_ino);
                    if (rename(p, k) != 0)
                        tu_rmrf(p);
                }
            } else {
                unlink(p);
            }
            free(p);
        }
        closedir(d);
    }
    free(dir);
}

/* How the unsynced writes of one file fare in a power-loss state. */
enum { KEEP_NONE, KEEP_ALL, KEEP_RANDOM, KEEP_PREFIX, KEEP_MOST, NKEEP };
static const char *const keep_names[NKEEP] = {"none", "all", "random", "torn-prefix", "most"};

typedef struct keep_policy {
    int how;
    unsigned gran;   /* 512 or 4096 */
    uint64_t cut;    /* KEEP_PREFIX: granules kept, in write order */
    uint64_t seen;
    tu_rng *rng;
} keep_policy;

static int keep_next(keep_policy *kp)
{
    switch (kp->how) {
    case KEEP_NONE:
        return 0;
    case KEEP_ALL:
        return 1;
    case KEEP_RANDOM:
        return (int)(tu_rng_next(kp->rng) & 1);
    case KEEP_PREFIX:
        return kp->seen++ < kp->cut;
    default:
        return tu_rng_range(kp->rng, 0, 9) != 0;
    }
}

static int write_image(int fd, unsigned char **blk, size_t nblk, uint64_t size)
{
    if (ftruncate(fd, (off_t)size) != 0)
        return -1;
    for (size_t b = 0; b < nblk && (uint64_t)b * BLK < size; b++)
        if (blk[b]) {
            uint64_t n = size - (uint64_t)b * BLK < BLK ? size - (uint64_t)b * BLK : BLK;
            if (pwrite(fd, blk[b], n, (off_t)b * BLK) != (ssize_t)n)
                return -1;
        }
    return 0;
}

/* The file's content at op k: its durable image, then its pending ops
 * (those before k) kept as kp says, granule by granule, each granule
 * written in the version it had just after the write that is kept. */
static int materialise_file(int fd, file *f, size_t k, keep_policy *kp)
{
    if (write_image(fd, f->blk, f->nblk, f->size) != 0)
        return -1;
    size_t n = 0;
    while (n < f->npending && f->pending[n] < k)
        n++;
    if (n == 0)
        return 0;
    /* The cache's view, block by block, copied from the image on touch. */
    size_t nov = f->nblk;
    for (size_t i = 0; i < n; i++) {
        const op *o = &ops[f->pending[i]];
        if (o->op == IOREC_WRITE && (o->off + o->len + BLK - 1) / BLK > nov)
            nov = (size_t)((o->off + o->len + BLK - 1) / BLK);
    }
    unsigned char **ov = calloc(nov + 1, sizeof(*ov));
    size_t novn = nov + 1;
    uint64_t size = f->size;
    if (kp->how == KEEP_PREFIX) {
        uint64_t total = 0;
        for (size_t i = 0; i < n; i++) {
            const op *o = &ops[f->pending[i]];
            total += o->op == IOREC_WRITE
                         ? (o->off + o->len + kp->gran - 1) / kp->gran - o->off / kp->gran
                         : 1;
        }
        kp->cut = tu_rng_range(kp->rng, 0, total);
        kp->seen = 0;
    }
    for (size_t i = 0; i < n; i++) {
        const op *o = &ops[f->pending[i]];
        for (uint64_t b = o->off / BLK; o->op == IOREC_WRITE && b * BLK < o->off + o->len; b++)
            if (!ov[b]) {
                ov[b] = malloc(BLK);
                if (b < f->nblk && f->blk[b])
                    memcpy(ov[b], f->blk[b], BLK);
                else
                    memset(ov[b], 0, BLK);
            }
        uint64_t oldsize = size;
        image_apply(&ov, &novn, &size, o);
        if (o->op == IOREC_WRITE) {
            for (uint64_t g = o->off / kp->gran * kp->gran; g < o->off + o->len; g += kp->gran) {
                if (!keep_next(kp))
                    continue;
                uint64_t end = g + kp->gran < size ? g + kp->gran : size;
                for (uint64_t x = g; x < end;) {
                    uint64_t b = x / BLK, in = x % BLK;
                    uint64_t m = end - x < BLK - in ? end - x : BLK - in;
                    if (pwrite(fd, ov[b] + in, m, (off_t)x) != (ssize_t)m)
                        return -1;
                    x += m;
                }
            }
        } else if (keep_next(kp)) {
            if (o->op == IOREC_TRUNCATE || size > oldsize) {
                if (ftruncate(fd, (off_t)size) != 0)
                    return -1;
            }
        }
    }
    for (size_t b = 0; b < novn; b++)
        free(ov[b]);
    free(ov);
    return 0;
}

static int is_base(const char *rel, const char *name)
{
    const char *b = strrchr(rel, '/');
    return strcmp(b ? b + 1 : rel, name) == 0;
}

static int skip_file(const char *rel)
{
    /* Nothing durable; the engine recreates it (docs/FORMAT.md). */
    const char *b = strrchr(rel, '/');
    return strcmp(b ? b + 1 : rel, "notify") == 0;
}

/* Build the state at op k in the store's directory. power: the power-loss
 * model with rng; else everything up to k. Describes the choices into
 * desc. Returns 0 or -1 (errno). */
static int materialise(size_t k, int power, tu_rng *rng, char *desc, size_t dcap)
{
    ns_ent *ns;
    size_t nns = ns_build(&ns, k, power ? rng : NULL);
    size_t dl = 0;
    unsigned gran = power && (tu_rng_next(rng) & 1) ? 512 : 4096;
    if (power)
        dl += (size_t)snprintf(desc + dl, dcap - dl, "sectors %u;", gran);
    clear_tree("", ns, nns);
    /* Directories first (in journal order, so parents come first). */
    for (size_t i = 0; i < nns; i++) {
        if (!ns[i].path || !ns[i].isdir)
            continue;
        char *p = tu_path_join(ws_root, ns[i].path), kp[4096];
        struct stat st;
        if (stat(p, &st) != 0) {
            snprintf(kp, sizeof(kp), "%s/d%llu", keep_dir, (unsigned long long)ns[i].ino);
            if (rename(kp, p) != 0 && mkdir(p, 0755) != 0) {
                free(p);
                free(ns);
                return -1;
            }
        }
        free(p);
    }
    for (size_t i = 0; i < nns; i++) {
        if (!ns[i].path || ns[i].isdir || skip_file(ns[i].path))
            continue;
        char *p = tu_path_join(ws_root, ns[i].path), kp[4096];
        snprintf(kp, sizeof(kp), "%s/f%llu", keep_dir, (unsigned long long)ns[i].ino);
        if (link(kp, p) != 0 && errno != ENOENT)
            fprintf(stderr, "powerloss: link %s: %s\n", p, strerror(errno));
        int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0644);
        free(p);
        if (fd < 0) {
            free(ns);
            return -1;
        }
        file *f = file_get(ns[i].ino, 0);
        keep_policy kpol = {KEEP_ALL, gran, 0, 0, rng};
        if (power)
            kpol.how = (int)tu_rng_range(rng, 0, NKEEP - 1);
        size_t npend = 0;
        while (npend < f->npending && f->pending[npend] < k)
            npend++;
        if (power && npend && dl < dcap)
            dl += (size_t)snprintf(desc + dl, dcap - dl, " %s:%s(%zu unsynced)", ns[i].path,
                                   keep_names[kpol.how], npend);
        int rc = materialise_file(fd, f, k, &kpol);
        /* Unchanged since its last sync: the mtime it had then (the
         * engine's state file compares it). Else the file was written
         * after that sync, and now is as good a time as any. */
        if (rc == 0 && f->mtime_ns && (npend == 0 || kpol.how == KEEP_NONE)) {
            struct timespec ts[2] = {{0, UTIME_OMIT},
                                     {(time_t)(f->mtime_ns / 1000000000u),
                                      (long)(f->mtime_ns % 1000000000u)}};
            rc = futimens(fd, ts);
        }
        close(fd);
        if (rc != 0) {
            free(ns);
            return -1;
        }
    }
    if (!power)
        snprintf(desc, dcap, "everything written");
    free(ns);
    return 0;
}

/* ------------------------------------------------------------------ */
/* The test                                                             */
/* ------------------------------------------------------------------ */

static char *self_path;

/* Everything the replay allocated (the sanitizer build checks leaks). */
static void replay_free(unsigned char *map, size_t maplen)
{
    for (size_t i = 0; i < nops; i++) {
        free(ops[i].path);
        free(ops[i].path2);
    }
    free(ops);
    ops = NULL;
    nops = 0;
    for (size_t i = 0; i < nfiles; i++) {
        for (size_t b = 0; b < files[i].nblk; b++)
            free(files[i].blk[b]);
        free(files[i].blk);
        free(files[i].pending);
    }
    free(files);
    files = NULL;
    nfiles = capfiles = 0;
    free(dirops);
    free(hist);
    free(acked_before);
    dirops = NULL;
    hist = NULL;
    acked_before = NULL;
    if (chk_first)
        munmap(chk_first, CHK_FIRST_CAP + 64);
    chk_first = NULL;
    chk_index = NULL;
    if (map && maplen)
        munmap(map, maplen);
    free(ws_root);
    free(keep_dir);
    ws_root = keep_dir = NULL;
}

static int run_workload(const char *flag, const char *journal, const char *root,
                        const char *dir, uint64_t seed, const char *boot)
{
    pid_t pid = fork();
    if (pid == 0) {
        char s[32];
        snprintf(s, sizeof(s), "%" PRIu64, seed);
        setenv("LD_PRELOAD", EVS_IOREC_PATH, 1);
        setenv("EVS_IOREC", journal, 1);
        setenv("EVS_IOREC_ROOT", root, 1);
        setenv("EVS_DEBUG_BOOT_ID", boot, 1);
        /* Under ASan the shim (built without it) is loaded first. */
        const char *ao = getenv("ASAN_OPTIONS");
        char abuf[1024];
        snprintf(abuf, sizeof(abuf), "%s%sverify_asan_link_order=0", ao ? ao : "",
                 ao && *ao ? ":" : "");
        setenv("ASAN_OPTIONS", abuf, 1);
        execl(self_path, self_path, flag, dir, s, (char *)NULL);
        _exit(127);
    }
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

typedef struct point {
    size_t k;
    int power;
} point;

/* Failures by kind: the first message with its numbers blanked. */
#define MAX_KINDS 32
typedef struct fail_kind {
    char key[256];
    char example[CHK_FIRST_CAP + 128];
    unsigned n;
} fail_kind;
static fail_kind kinds[MAX_KINDS];
static unsigned nkinds;

static void count_kind(const char *msg, const char *where)
{
    char key[256];
    size_t k = 0;
    for (const char *p = msg; *p && k + 2 < sizeof(key); p++) {
        if (*p >= '0' && *p <= '9') {
            if (k == 0 || key[k - 1] != '#')
                key[k++] = '#';
        } else {
            key[k++] = *p;
        }
    }
    key[k] = '\0';
    for (unsigned i = 0; i < nkinds; i++)
        if (strcmp(kinds[i].key, key) == 0) {
            kinds[i].n++;
            return;
        }
    if (nkinds < MAX_KINDS) {
        snprintf(kinds[nkinds].key, sizeof(kinds[nkinds].key), "%s", key);
        snprintf(kinds[nkinds].example, sizeof(kinds[nkinds].example), "%s: %s", where, msg);
        kinds[nkinds++].n = 1;
    }
}

static int cmp_point(const void *a, const void *b)
{
    const point *x = a, *y = b;
    return x->k < y->k ? -1 : x->k > y->k ? 1 : x->power - y->power;
}

static const char *op_name(int o)
{
    switch (o) {
    case IOREC_CREATE: return "create";
    case IOREC_WRITE: return "write";
    case IOREC_TRUNCATE: return "truncate";
    case IOREC_FALLOC: return "fallocate";
    case IOREC_FSYNC: return "fsync";
    case IOREC_DIRSYNC: return "dir-fsync";
    case IOREC_RENAME: return "rename";
    case IOREC_UNLINK: return "unlink";
    case IOREC_MKDIR: return "mkdir";
    case IOREC_MMAPW: return "mmap-write";
    case IOREC_SFR: return "sync_file_range";
    case IOREC_MSYNCR: return "msync-range";
    case IOREC_MARK: return "ack";
    default: return "?";
    }
}

/* A power-loss test: its workload (this program with flag), the crash
 * points it draws from the journal, and the checks of one state. */
typedef struct pl_test {
    const char *name;          /* for messages and the seed */
    const char *flag;          /* the workload: --workload, --workload-scavenge */
    unsigned default_states;   /* 0: the points function decides */
    /* After the history is built: 0, or -1 with a message printed. */
    int (*prepare)(uint64_t seed);
    /* The crash points (malloc'd, *npts of them), for nstates states;
     * first_mark: the journal's first mark. */
    point *(*points)(size_t *npts, unsigned nstates, size_t first_mark, tu_rng *rng);
    /* In the parent before state pi is checked (may be NULL). */
    void (*before_state)(size_t pi, int power, tu_rng *rng);
    /* The checks of one state (a forked child): the number of failures. */
    int (*check)(const char *dir, size_t k);
    /* More summary lines (may be NULL). */
    void (*report)(void);
} pl_test;

/* Crash points of the append workload: before and after every sync, and
 * inside write runs, from the first acknowledgement on; the state after
 * the clean close among them. */
static point *points_appends(size_t *npts_out, unsigned nstates, size_t first_mark,
                             tu_rng *rng)
{
    size_t ncand = 0;
    size_t *cand = malloc((nops * 2 + 2) * sizeof(*cand));
    for (size_t i = first_mark; i < nops; i++) {
        if (ops[i].op == IOREC_FSYNC || ops[i].op == IOREC_DIRSYNC) {
            cand[ncand++] = i;
            cand[ncand++] = i + 1;
        } else if (ops[i].op == IOREC_WRITE && i + 1 < nops && ops[i + 1].op == IOREC_WRITE &&
                   !((ops[i].flags & ops[i + 1].flags & IOREC_F_MAP) &&
                     ops[i].ino == ops[i + 1].ino)) {
            /* Not inside the pages one snapshot found changed in a mapped
             * file: the page cache held them all at once, so a process
             * crash cannot split them, and a power loss after them keeps
             * any subset anyway. */
            cand[ncand++] = i + 1;
        }
    }
    cand[ncand++] = nops;
    point *pts = malloc((nstates + 1) * sizeof(*pts));
    size_t npts = 0;
    pts[npts++] = (point){nops, 1}; /* after the clean close: must all be there */
    for (unsigned i = 1; i < nstates; i++)
        pts[npts++] = (point){cand[tu_rng_range(rng, 0, ncand - 1)],
                              tu_rng_range(rng, 0, 4) != 0};
    free(cand);
    *npts_out = npts;
    return pts;
}

static void powerloss_run(const pl_test *t)
{
    uint64_t seed = tu_seed(t->name);
    nkinds = 0; /* the summary by kind is per test */
    memset(snap_saved, 0, sizeof(snap_saved));
    tu_rng rng;
    tu_rng_init(&rng, seed);
    const char *e = getenv("EVS_POWERLOSS_STATES");
    unsigned nstates = e && *e ? (unsigned)strtoul(e, NULL, 10) : t->default_states;
    int verbose = getenv("EVS_POWERLOSS_VERBOSE") != NULL;
    int keep = getenv("EVS_TEST_KEEP") != NULL;
    /* EVS_POWERLOSS_SELFTEST=1: the model forgets the log's fdatasyncs, so
     * power-loss states lose acknowledged events: the run must fail (a
     * check of the checks). */
    int selftest = getenv("EVS_POWERLOSS_SELFTEST") != NULL;
    /* EVS_POWERLOSS_ONLY=i: build state i only and keep it (post-mortem). */
    const char *only_s = getenv("EVS_POWERLOSS_ONLY");
    long only = only_s && *only_s ? strtol(only_s, NULL, 10) : -1;
    int64_t t0 = tu_now_us();

    /* tmpfs when there is one: the checks fsync a lot, and the power-loss
     * model is the journal's, not the file system's. */
    const char *old_tmp = getenv("TMPDIR");
    struct stat sst;
    if (!old_tmp && stat("/dev/shm", &sst) == 0 && access("/dev/shm", W_OK) == 0)
        setenv("TMPDIR", "/dev/shm", 1);
    char *tmp = tu_mkdtemp();
    if (!old_tmp)
        unsetenv("TMPDIR");
    assert_non_null(tmp);
    char *journal = tu_path_join(tmp, "journal");
    ws_root = tu_path_join(tmp, "ws");
    keep_dir = tu_path_join(tmp, "keep");
    char *dir = tu_path_join(ws_root, "db");
    assert_int_equal(mkdir(ws_root, 0755), 0);
    assert_int_equal(mkdir(keep_dir, 0755), 0);
    /* Boot ids look like /proc/sys/kernel/random/boot_id: UUIDs. */
    char wboot[64];
    evs_uuid bu;
    evs_uuid_generate(&bu);
    evs_uuid_format(wboot, &bu);

    int wrc = run_workload(t->flag, journal, ws_root, dir, seed, wboot);
    if (wrc != 0)
        print_error("%s: seed=%" PRIu64 ": the workload failed (exit %d)\n", t->name, seed,
                    wrc);
    assert_int_equal(wrc, 0);
    int64_t t_wl = tu_now_us();

    unsigned char *map;
    size_t maplen;
    assert_int_equal(journal_load(journal, &map, &maplen), 0);
    char err[512] = "";
    int hrc = history_build(err, sizeof(err));
    if (hrc != 0)
        print_error("%s: seed=%" PRIu64 ": %s\n", t->name, seed, err);
    assert_int_equal(hrc, 0);
    assert_true(hist_n > 0);
    assert_int_equal(t->prepare ? t->prepare(seed) : 0, 0);
    keep_tree(ws_root);

    unsigned failures = 0, model_failures = 0;
    /* What the model cannot see, and the store directory's own entry. */
    size_t first_mark = nops, nsync = 0, ndsync = 0, nwrite = 0, segs = 0, nmapw = 0,
           nmsyncr = 0;
    int root_synced_after_mkdir = 0, mkdir_at = -1;
    for (size_t i = 0; i < nops; i++) {
        const op *o = &ops[i];
        if (o->op == IOREC_MARK && first_mark == nops)
            first_mark = i;
        nsync += o->op == IOREC_FSYNC;
        ndsync += o->op == IOREC_DIRSYNC;
        nwrite += o->op == IOREC_WRITE;
        if (o->op == IOREC_RENAME && strstr(o->path2, ".evslog"))
            segs++;
        if (o->op == IOREC_MKDIR && strcmp(o->path, "db") == 0)
            mkdir_at = (int)i;
        if (o->op == IOREC_DIRSYNC && o->path[0] == '\0' && mkdir_at >= 0)
            root_synced_after_mkdir = 1;
        nmapw += o->op == IOREC_WRITE && (o->flags & IOREC_F_MAP);
        nmsyncr += o->op == IOREC_MSYNCR;
        if (o->op == IOREC_MMAPW && !skip_file(o->path) && !is_base(o->path, "lock.mdb") &&
            !is_base(o->path, "data.mdb")) {
            int seen = 0;
            for (size_t j = 0; j < i; j++)
                seen |= ops[j].op == IOREC_MMAPW && strcmp(ops[j].path, o->path) == 0;
            if (!seen) {
                print_error("powerloss FAIL seed=%" PRIu64 ": %s is mapped shared and "
                            "writable (op %zu): only the index (data.mdb), lock.mdb and "
                            "the notify file are expected to be\n", seed, o->path, i);
                model_failures++;
            }
        }
    }
    if (mkdir_at >= 0 && !root_synced_after_mkdir) {
        print_error("powerloss FAIL seed=%" PRIu64 ": evs_open created the store directory "
                    "(op %d) but never fsynced its parent: a power loss can lose the whole "
                    "store with its acknowledged events (the states below take that entry "
                    "as durable)\n", seed, mkdir_at);
        model_failures++;
    }
    print_message("%s: journal %zu ops (%zu writes, %zu of them through a map; "
                  "%zu file syncs, %zu partial msyncs not counted as syncs, %zu dir syncs, "
                  "%zu segment renames), %" PRIu64 " events acknowledged, workload %.1f s\n",
                  t->name, nops, nwrite, nmapw, nsync, nmsyncr, ndsync, segs, hist_n,
                  (double)(t_wl - t0) / 1e6);

    size_t npts = 0;
    point *pts = t->points(&npts, nstates, first_mark, &rng);
    qsort(pts, npts, sizeof(*pts), cmp_point);

    /* Replay, materialising each state as its point comes. */
    chk_first = mmap(NULL, CHK_FIRST_CAP + 64, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(chk_first != MAP_FAILED);
    chk_index = (int *)(void *)(chk_first + CHK_FIRST_CAP);
    unsigned idx_seen[2][3] = {{0}}; /* [power][*chk_index] of opened states */
    dirops = malloc((nops + 1) * sizeof(*dirops));
    ndirops = 0;
    size_t applied = 0;
    unsigned built = 0, opened = 0, compared = 0, npower = 0;
    char bootbuf[96], desc[2048];
    for (size_t pi = 0; pi < npts; pi++) {
        size_t k = pts[pi].k;
        for (; applied < k; applied++) {
            const op *o = &ops[applied];
            file *f;
            switch (o->op) {
            case IOREC_CREATE:
                file_get(o->ino, 1);
                dirops[ndirops++] = applied;
                break;
            case IOREC_MKDIR:
            case IOREC_RENAME:
            case IOREC_UNLINK:
                dirops[ndirops++] = applied;
                break;
            case IOREC_WRITE:
            case IOREC_TRUNCATE:
            case IOREC_FALLOC:
                f = file_get(o->ino, 0);
                if (f->npending == f->cappending)
                    f->pending = realloc(f->pending, (f->cappending = f->cappending
                                                                          ? f->cappending * 2
                                                                          : 64) *
                                                         sizeof(*f->pending));
                f->pending[f->npending++] = applied;
                break;
            case IOREC_FSYNC:
                f = file_get(o->ino, 0);
                if (!(selftest && strstr(o->path, ".evslog")))
                    file_sync(f);
                f->mtime_ns = o->off;
                break;
            default:
                break;
            }
        }
        int power = pts[pi].power;
        unsigned failures_before = failures;
        uint64_t sseed = tu_rng_next(&rng);
        if (only >= 0 && (long)pi != only)
            continue;
        tu_rng srng;
        tu_rng_init(&srng, sseed);
        desc[0] = '\0';
        if (materialise(k, power, &srng, desc, sizeof(desc)) != 0) {
            print_error("powerloss: cannot build state %zu: %s\n", pi, strerror(errno));
            failures++;
            continue;
        }
        built++;
        npower += power;
        snprintf(chk_where, sizeof(chk_where),
                 "seed=%" PRIu64 " state=%zu point=%zu/%zu (after %s %s) %s acked=%" PRIu64,
                 seed, pi, k, nops, k ? op_name(ops[k - 1].op) : "-", k ? ops[k - 1].path : "",
                 power ? "power-loss" : "process-crash", acked_before[k]);
        if (verbose)
            print_message("%s: %s\n", chk_where, desc);
        if (power) {
            evs_uuid_generate(&bu);
            evs_uuid_format(bootbuf, &bu);
        } else
            snprintf(bootbuf, sizeof(bootbuf), "%s", wboot);
        fflush(stdout);
        fflush(stderr);
        chk_first[0] = '\0';
        *chk_index = 0;
        chk_power = power;
        if (t->before_state)
            t->before_state(pi, power, &srng);
        pid_t pid = fork();
        if (pid == 0) {
            /* A crash of the check is reported by the parent as one (not
             * caught by cmocka's handlers, which would run the rest of the
             * tests in this child). */
            signal(SIGSEGV, SIG_DFL);
            signal(SIGBUS, SIG_DFL);
            signal(SIGILL, SIG_DFL);
            signal(SIGFPE, SIG_DFL);
            signal(SIGABRT, SIG_DFL);
            setenv("EVS_DEBUG_BOOT_ID", bootbuf, 1);
            alarm(STATE_TIMEOUT_S);
            chk_failed = 0;
            int n = t->check(dir, k);
            if (n && !verbose)
                fprintf(stderr, "    state: %s\n", desc);
            _exit(!chk_opened ? 2 : n ? 1 : 0);
        }
        int st = 0;
        assert_true(pid > 0);
        assert_int_equal(waitpid(pid, &st, 0), pid);
        if (WIFSIGNALED(st)) {
            char m[CHK_FIRST_CAP + 64];
            snprintf(m, sizeof(m), "the check %s (signal %d)%s%s",
                     WTERMSIG(st) == SIGALRM ? "hung" : "crashed", WTERMSIG(st),
                     chk_first[0] ? " after: " : "", chk_first);
            print_error("powerloss FAIL %s: %s\n    state: %s\n", chk_where, m, desc);
            count_kind(m, chk_where);
            failures++;
        } else {
            if (verbose)
                print_message("    exit %d, index %s\n", WEXITSTATUS(st),
                              *chk_index == 1   ? "kept"
                              : *chk_index == 2 ? "rebuilt"
                                                : "absent before the open");
            if (WEXITSTATUS(st) != 2)
                idx_seen[power][*chk_index]++;
            opened += WEXITSTATUS(st) != 2;
            compared += WEXITSTATUS(st) != 2;
            if (WEXITSTATUS(st) != 0) {
                failures++;
                count_kind(chk_first, chk_where);
            }
        }
        if (keep && failures > failures_before && failures <= 5) {
            /* The failed state again, unopened, for a post-mortem (a copy:
             * its inodes differ from the workload's). */
            char *cp = malloc(strlen(tmp) + 32);
            sprintf(cp, "%s/failed-%zu", tmp, pi);
            tu_rng_init(&srng, sseed);
            if (materialise(k, power, &srng, desc, sizeof(desc)) == 0) {
                tu_copy_tree(dir, cp);
                print_message("    kept as %s\n", cp);
            }
            free(cp);
        }
        if (only >= 0) {
            /* Build it again, unopened, for a post-mortem. */
            tu_rng_init(&srng, sseed);
            materialise(k, power, &srng, desc, sizeof(desc));
            print_message("%s: state %ld is in %s (EVS_DEBUG_BOOT_ID=%s): %s\n", t->name,
                          only, dir, bootbuf, desc);
            break;
        }
    }
    print_message("%s: seed=%" PRIu64 ": %u states built (%u power loss, %u "
                  "process crash), %u opened, %u compared, %u failed; %u model failure(s); "
                  "%.1f s\n", t->name, seed, built, npower, built - npower, opened, compared,
                  failures, model_failures, (double)(tu_now_us() - t0) / 1e6);

    print_message("%s: the open kept / rebuilt the index / found none: power "
                  "loss %u/%u/%u, process crash %u/%u/%u\n", t->name, idx_seen[1][1],
                  idx_seen[1][2], idx_seen[1][0], idx_seen[0][1], idx_seen[0][2],
                  idx_seen[0][0]);
    if (!selftest)
        for (unsigned i = 0; i < nkinds; i++)
            print_message("%s: %u state(s) failed with: %s\n      first: %s\n", t->name,
                          kinds[i].n, kinds[i].key, kinds[i].example);
    if (t->report)
        t->report();
    if (!keep && only < 0)
        tu_rmrf(tmp);
    else
        print_message("%s: kept %s\n", t->name, tmp);
    free(pts);
    free(dir);
    free(journal);
    free(tmp);
    replay_free(map, maplen);
    if (selftest) {
        /* The model lost the log's syncs: the checks must have noticed. */
        print_message("%s: self-test: %u failed states (some expected)\n", t->name,
                      failures);
        assert_true(failures > 0);
        return;
    }
    assert_int_equal(failures + model_failures, 0);
}

static void test_powerloss(void **state)
{
    (void)state;
    TU_EMBEDDED_ONLY("power loss of the embedded store's files");
    static const pl_test t = {"test_powerloss", "--workload", DEFAULT_STATES, NULL,
                              points_appends, NULL, check_state, NULL};
    powerloss_run(&t);
}

/* ------------------------------------------------------------------ */
/* A power loss during a scavenge (issue 17)                            */
/* ------------------------------------------------------------------ */

/*
 * test_powerloss_scavenge: the machinery above with another workload and
 * other checks. The child appends events (the vocabulary above, each
 * recorded_at SC_T0 + its number) to six streams of two tenants across
 * several 1 MiB segments, closes and reopens the store, then runs the
 * embedded scavenge (the backend entry with a hand-made plan, as
 * tests/test_scavenge.c does, so that which events are eligible is known
 * exactly) while a thread appends to three of the streams, two of them in
 * the plan (the plan's progress callback waits for two of its appends
 * after each segment, so appends fall between the segments as well as
 * inside their steps); then a few appends and a clean close. Index
 * transactions of SC_TXN events (EVS_DEBUG_SCAVENGE_TXN), so that step 3
 * of a segment spans several. The plan, in a mark just before the call:
 * all but the last event of stream 0, versions below a half of stream 1
 * and below two thirds of stream 4, events recorded before stream 2's
 * version at two thirds, stream 3 in the plan with nothing eligible,
 * stream 5 not in it.
 *
 * Crash points, from the plan's mark to the end of the journal: every
 * "key" point, before and after each operation but a write on the
 * scavenge's files (the .evslog.scav temporary, the progress file and its
 * temporary) and each rename, unlink and directory sync, is checked both
 * as a process crash and as a power loss (one draw); the other points
 * (the appends' syncs, inside write runs) are drawn, SC_MORE_STATES of
 * them. When the key points alone are more than the number of states
 * asked (EVS_POWERLOSS_STATES), a sample of them is checked. A process
 * crash where the journal's index may be torn is checked as a power loss
 * instead (sc_taint_build says why): so the states of a process crash in
 * the middle of step 3 (the index partly updated) are not among them;
 * tests/test_scavenge.c kills a scavenge at each of its index
 * transactions for those.
 *
 * Each state (in a third of them, first a read-only open, which may
 * refuse: what it shows is right and holds every non-eligible event up to
 * its head): the read-write open succeeds; it leaves no segment pending
 * and no temporary segment file; the head is acknowledged (or later) and
 * ends an append; evs_read_log, every stream, and a DCB query per tenant
 * return every non-eligible event up to the head at its position with its
 * content (an eligible one may be there or not, and is right when there),
 * and the streams' versions; evs_verify is clean and counts exactly the
 * records read; a second scavenge with the plan succeeds, every
 * non-eligible event is still there and no eligible one is left before
 * the last segment; an append gets position head+1; after a reopen
 * evs_verify is clean and counts the records left. `test_powerloss
 * --check-scavenge JOURNAL DIR POINT` runs these checks on a kept state.
 */

#define SC_NSTREAMS 6
#define SC_T0 INT64_C(1700000000000000) /* recorded_at = SC_T0 + n, in µs */
/* The setup appends about this much: five sealed segments and a sixth. */
#define SC_LOG_BYTES (5u * SEGMENT_SIZE + SEGMENT_SIZE / 4)
#define SC_TXN "16"
#define SC_MAX_APPENDS 150 /* by the thread during the scavenge */
/* States: every key point twice, and this many drawn among the others
 * (EVS_POWERLOSS_STATES sets the total instead). */
#define SC_MORE_STATES 30
/* Each stream's tenant (an index into tenants[]). */
static const uint8_t sc_tenant[SC_NSTREAMS] = {0, 0, 0, 0, 1, 1};

typedef struct plan_ent {
    uint16_t stream; /* stream index; its tenant is sc_tenant[stream] */
    uint16_t drop_all;
    uint32_t pad;
    int64_t keep_from, expire_before, last_version;
} plan_ent;
typedef struct plan_mark {
    uint32_t magic, n;
    plan_ent e[SC_NSTREAMS];
} plan_mark;
typedef struct scres_mark {
    uint32_t magic, appends; /* the thread's appends during the scavenge */
    evs_scavenge_result r;
} scres_mark;

static evs__scavenge_stream sc_plan_v[SC_NSTREAMS];
static char sc_names[SC_NSTREAMS][64];
static evs__scavenge_plan sc_plan;

static int cmp_bytes(const char *a, const char *b)
{
    size_t al = strlen(a), bl = strlen(b);
    int c = memcmp(a, b, al < bl ? al : bl);
    return c ? c : (al > bl) - (al < bl);
}
static int cmp_plan_ent(const void *a, const void *b)
{
    const evs__scavenge_stream *x = a, *y = b;
    int c = cmp_bytes(x->tenant, y->tenant);
    return c ? c : cmp_bytes(x->stream, y->stream);
}

/* The plan of a plan mark (sorted as evs__scavenge_find wants it). */
static void sc_plan_build(const plan_mark *pm)
{
    memset(&sc_plan, 0, sizeof(sc_plan));
    for (uint32_t i = 0; i < pm->n && i < SC_NSTREAMS; i++) {
        const plan_ent *e = &pm->e[i];
        stream_name(sc_names[i], sizeof(sc_names[i]), e->stream);
        sc_plan_v[i] = (evs__scavenge_stream){tenants[sc_tenant[e->stream % SC_NSTREAMS]],
                                              sc_names[i], e->drop_all, e->keep_from,
                                              e->expire_before, e->last_version};
    }
    qsort(sc_plan_v, pm->n, sizeof(sc_plan_v[0]), cmp_plan_ent);
    sc_plan.streams = sc_plan_v;
    sc_plan.nstreams = pm->n;
}

/* Does the plan make event e eligible? */
static int sc_elig_ev(const ack_ev *e)
{
    if (e->kind != K_STREAM)
        return 0;
    char sn[64];
    stream_name(sn, sizeof(sn), e->stream);
    const char *t = tenants[e->tenant];
    return evs__scavenge_drop(evs__scavenge_find(&sc_plan, t, strlen(t), sn, strlen(sn)),
                              e->version, SC_T0 + (int64_t)e->n);
}

/* ---- the workload (child process, under the shim) ---- */

static int64_t sc_ver[SC_NSTREAMS];
static uint32_t sc_n2[8192]; /* stream 2: the event number of each version */
static uint64_t sc_bytes;
static _Atomic unsigned sc_appends;
static _Atomic int sc_stop;
static uint64_t sc_seed;

/* Append cnt events to stream si (its exact expected version); marks them
 * once acknowledged. */
static int sc_append(evs_db *db, unsigned si, size_t cnt)
{
    part_buf pb;
    char name[64];
    fill_part(&pb, cnt);
    for (size_t i = 0; i < cnt; i++) {
        pb.ev[i].recorded_at = SC_T0 + (int64_t)pb.n[i];
        sc_bytes += pb.ev[i].data_len + 160;
    }
    stream_name(name, sizeof(name), si);
    evs_append_result res;
    int rc = evs_append(&res, db, tenants[sc_tenant[si]], name,
                        sc_ver[si] < 0 ? EVS_NO_STREAM : sc_ver[si], pb.ev, cnt);
    if (rc != 0) {
        wl_fail("append", rc);
        return rc;
    }
    _Alignas(8) unsigned char mbuf[sizeof(ack_hdr) + 5 * sizeof(ack_ev)];
    ack_hdr *h = (ack_hdr *)mbuf;
    ack_ev *ev = (ack_ev *)(mbuf + sizeof(ack_hdr));
    for (size_t i = 0; i < cnt; i++) {
        ev[i] = (ack_ev){0};
        ev[i].position = res.first_position + i;
        ev[i].version = res.first_version + (int64_t)i;
        ev[i].n = pb.n[i];
        ev[i].stream = (uint16_t)si;
        ev[i].tenant = sc_tenant[si];
        ev[i].kind = K_STREAM;
        if (si == 2 && ev[i].version >= 0 &&
            ev[i].version < (int64_t)(sizeof(sc_n2) / sizeof(sc_n2[0])))
            sc_n2[ev[i].version] = pb.n[i];
    }
    h->magic = ACK_MAGIC;
    h->nev = (uint32_t)cnt;
    wl_mark(mbuf, sizeof(ack_hdr) + cnt * sizeof(ack_ev));
    sc_ver[si] = res.stream_version;
    return 0;
}

static void sleep_ms(long ms)
{
    nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000L}, NULL);
}

/* During the scavenge: appends to streams 1 and 4 (in the plan, nothing
 * new eligible) and 5 (not in it), one every millisecond or so. */
static void *sc_appender(void *p)
{
    evs_db *db = p;
    tu_rng rng;
    static const unsigned si[3] = {1, 4, 5};
    tu_rng_init(&rng, sc_seed ^ 0xa99e);
    while (!atomic_load(&sc_stop) && !atomic_load(&wl_failed) &&
           atomic_load(&sc_appends) < SC_MAX_APPENDS) {
        if (sc_append(db, si[tu_rng_range(&rng, 0, 2)], (size_t)tu_rng_range(&rng, 1, 3)) != 0)
            break;
        atomic_fetch_add(&sc_appends, 1);
        sleep_ms(1);
    }
    return NULL;
}

/* After each segment: let the thread append twice (at most 2 s). */
static void sc_progress(void *ctx, uint64_t done, uint64_t total)
{
    (void)ctx;
    (void)done;
    (void)total;
    unsigned want = atomic_load(&sc_appends) + 2;
    for (int i = 0; i < 2000 && atomic_load(&sc_appends) < want &&
                    atomic_load(&sc_appends) < SC_MAX_APPENDS && !atomic_load(&wl_failed);
         i++)
        sleep_ms(1);
}

static int workload_scavenge_main(const char *dir, uint64_t seed)
{
    wl_mark = (mark_fn)(uintptr_t)dlsym(RTLD_DEFAULT, "evs_iorec_mark");
    if (!wl_mark) {
        fprintf(stderr, "workload: evs_iorec_mark not found: is the shim preloaded?\n");
        return 2;
    }
    sc_seed = seed;
    tu_rng rng;
    tu_rng_init(&rng, seed ^ 0x5ca7);
    for (unsigned i = 0; i < SC_NSTREAMS; i++)
        sc_ver[i] = -1;
    evs_db *db;
    if (wl_open(&db, dir) != 0)
        return 1;
    while (sc_bytes < SC_LOG_BYTES && !wl_failed)
        if (sc_append(db, (unsigned)tu_rng_range(&rng, 0, SC_NSTREAMS - 1),
                      (size_t)tu_rng_range(&rng, 1, 5)) != 0)
            return 1;
    if (evs_close(db) != 0 || wl_open(&db, dir) != 0)
        return 1;
    for (unsigned i = 0; i < SC_NSTREAMS; i++)
        if (sc_ver[i] < 6) {
            fprintf(stderr, "workload: stream %u has only %" PRId64 " versions\n", i,
                    sc_ver[i] + 1);
            return 1;
        }
    if (sc_ver[2] >= (int64_t)(sizeof(sc_n2) / sizeof(sc_n2[0]))) {
        fprintf(stderr, "workload: stream 2 is too long for sc_n2\n");
        return 1;
    }
    plan_mark pm;
    memset(&pm, 0, sizeof(pm));
    pm.magic = PLAN_MAGIC;
    /* stream, drop_all, pad, keep_from, expire_before, last_version */
    pm.e[pm.n++] = (plan_ent){0, 0, 0, sc_ver[0], 0, sc_ver[0]}; /* all but the last */
    pm.e[pm.n++] = (plan_ent){1, 0, 0, sc_ver[1] / 2, 0, sc_ver[1]};
    pm.e[pm.n++] = (plan_ent){2, 0, 0, 0, SC_T0 + (int64_t)sc_n2[2 * sc_ver[2] / 3], sc_ver[2]};
    pm.e[pm.n++] = (plan_ent){3, 0, 0, 0, 0, sc_ver[3]}; /* nothing eligible */
    pm.e[pm.n++] = (plan_ent){4, 0, 0, 2 * sc_ver[4] / 3, 0, sc_ver[4]};
    wl_mark(&pm, sizeof(pm));
    sc_plan_build(&pm);
    sc_plan.progress = sc_progress;
    setenv("EVS_DEBUG_SCAVENGE_TXN", SC_TXN, 1);
    pthread_t th;
    if (pthread_create(&th, NULL, sc_appender, db) != 0)
        return 1;
    for (int i = 0; i < 2000 && atomic_load(&sc_appends) < 2 && !wl_failed; i++)
        sleep_ms(1); /* the thread is appending when the scavenge starts */
    scres_mark m;
    memset(&m, 0, sizeof(m));
    int rc = db->ops->scavenge(&m.r, db, &sc_plan);
    atomic_store(&sc_stop, 1);
    pthread_join(th, NULL);
    if (rc != 0) {
        wl_fail("scavenge", rc);
        return 1;
    }
    m.magic = SCRES_MAGIC;
    m.appends = atomic_load(&sc_appends);
    wl_mark(&m, sizeof(m));
    for (int i = 0; i < 4 && !wl_failed; i++)
        if (sc_append(db, (unsigned)tu_rng_range(&rng, 0, SC_NSTREAMS - 1), 2) != 0)
            return 1;
    if (evs_close(db) != 0)
        return 1;
    return wl_failed ? 1 : 0;
}

/* ---- the parent: the plan, the eligible events, the crash points ---- */

static size_t sc_plan_op; /* the plan's mark in ops */
static uint8_t *sc_elig;  /* by position: the plan makes it eligible */
static scres_mark sc_res;

static int sc_prepare(uint64_t seed)
{
    int have_plan = 0, have_res = 0;
    for (size_t i = 0; i < nops; i++) {
        if (ops[i].op != IOREC_MARK || ops[i].len < 4)
            continue;
        uint32_t magic;
        memcpy(&magic, ops[i].data, 4);
        if (magic == PLAN_MAGIC && ops[i].len == sizeof(plan_mark) && !have_plan) {
            plan_mark pm;
            memcpy(&pm, ops[i].data, sizeof(pm));
            sc_plan_build(&pm);
            sc_plan_op = i;
            have_plan = 1;
        } else if (magic == SCRES_MAGIC && ops[i].len == sizeof(scres_mark)) {
            memcpy(&sc_res, ops[i].data, sizeof(sc_res));
            have_res = 1;
        }
    }
    if (!have_plan || !have_res) {
        print_error("test_powerloss_scavenge: seed=%" PRIu64 ": the journal has no %s mark\n",
                    seed, have_plan ? "result" : "plan");
        return -1;
    }
    free(sc_elig);
    sc_elig = calloc(hist_n + 2, 1);
    uint64_t nelig = 0;
    for (uint64_t p = 1; p <= hist_n; p++)
        nelig += sc_elig[p] = (uint8_t)sc_elig_ev(&hist[p].e);
    print_message("test_powerloss_scavenge: %" PRIu64 " events, %" PRIu64 " eligible; the "
                  "scavenge removed %" PRIu64 " from %" PRIu64 " of %" PRIu64 " segments, "
                  "%" PRIu64 " -> %" PRIu64 " bytes, with %u appends beside it\n", hist_n,
                  nelig, sc_res.r.events_removed, sc_res.r.segments_rewritten,
                  sc_res.r.segments_examined, sc_res.r.bytes_before, sc_res.r.bytes_after,
                  sc_res.appends);
    /* The workload must have exercised what this test is about. */
    if (sc_res.r.segments_rewritten < 4 || sc_res.r.events_removed == 0 || sc_res.appends < 2) {
        print_error("test_powerloss_scavenge: seed=%" PRIu64 ": the workload's scavenge "
                    "rewrote %" PRIu64 " segments (4 or more expected) with %u appends beside "
                    "it (2 or more expected)\n", seed, sc_res.r.segments_rewritten,
                    sc_res.appends);
        return -1;
    }
    return 0;
}

/* An operation on the scavenge's own files, or one that changes a
 * directory: the points around it are key. */
static int sc_key_op(const op *o)
{
    if (o->op == IOREC_RENAME || o->op == IOREC_UNLINK || o->op == IOREC_DIRSYNC)
        return 1;
    if (o->op == IOREC_WRITE || o->op == IOREC_MARK)
        return 0; /* the temporaries' writes: drawn among the others */
    return strstr(o->path, ".evslog.scav") || is_base(o->path, "scavenge") ||
           is_base(o->path, "scavenge.tmp");
}

static unsigned sc_nkey, sc_key_checked, sc_tainted;

/*
 * Process-crash states the journal cannot give faithfully. The shim takes
 * the index's pages at snapshot points (tests/iorec/iorec.c), and a
 * snapshot holds a consistent index only because no writer can finish two
 * commits during one scan: the appends' writer stops at its next log
 * write. The scavenge's index transactions (step 3) write no log between
 * them, so a snapshot that the appending thread takes during step 3 may
 * pair a meta page with data pages of later commits: an index no real
 * process crash leaves (LMDB's pages are all in the page cache at once).
 * Such a state lasts until the scavenge's own next sync after its rename
 * (a snapshot while no scavenge transaction runs). Marks, by op index k,
 * the crash points in those spans: from the first index page taken inside
 * a step 3 to that sync. Those points are checked as power losses (whose
 * index is never trusted), never as process crashes.
 */
static uint8_t *sc_taint;

static void sc_taint_build(void)
{
    int st = 0, tainted = 0;
    size_t from = 0;
    free(sc_taint);
    sc_taint = calloc(nops + 2, 1);
    for (size_t i = sc_plan_op; i < nops; i++) {
        const op *o = &ops[i];
        int prog = o->op == IOREC_WRITE && is_base(o->path, "scavenge.tmp") && o->data &&
                   o->off == 0 && o->len >= 20;
        uint32_t pend = prog ? (uint32_t)o->data[16] | (uint32_t)o->data[17] << 8 |
                                   (uint32_t)o->data[18] << 16 | (uint32_t)o->data[19] << 24
                             : 0;
        int idx_page = o->op == IOREC_WRITE && (o->flags & IOREC_F_MAP) &&
                       is_base(o->path, "data.mdb") && strstr(o->path, "index/") != NULL;
        if (st == 0 && prog && pend) {
            st = 1; /* step 2 */
        } else if (st == 1 && o->op == IOREC_DIRSYNC) {
            st = 2; /* step 2 durable: step 3 may begin */
            tainted = 0;
        } else if (st == 2 && idx_page && !tainted) {
            tainted = 1;
            from = i + 1;
        } else if (st == 2 && o->op == IOREC_RENAME && strstr(o->path, ".evslog.scav")) {
            st = 3; /* step 4: the transactions are over */
        } else if ((st == 3 && (o->op == IOREC_FSYNC || o->op == IOREC_DIRSYNC)) ||
                   (st == 2 && prog)) {
            for (size_t k = from; tainted && k <= i + 1; k++)
                sc_taint[k] = 1;
            st = 0;
        }
    }
    for (size_t k = from; st >= 2 && tainted && k <= nops; k++)
        sc_taint[k] = 1;
}

static point *sc_points(size_t *npts_out, unsigned nstates, size_t first_mark, tu_rng *rng)
{
    (void)first_mark;
    size_t nkey = 0, noth = 0;
    sc_taint_build();
    sc_tainted = 0;
    size_t *key = malloc((nops * 2 + 2) * sizeof(*key));
    size_t *oth = malloc((nops * 2 + 2) * sizeof(*oth));
    for (size_t i = sc_plan_op; i < nops; i++) {
        if (sc_key_op(&ops[i])) {
            if (nkey == 0 || key[nkey - 1] != i)
                key[nkey++] = i;
            key[nkey++] = i + 1;
        } else if (ops[i].op == IOREC_FSYNC) {
            oth[noth++] = i; /* the appends' syncs */
            oth[noth++] = i + 1;
        } else if (ops[i].op == IOREC_WRITE && i + 1 < nops && ops[i + 1].op == IOREC_WRITE &&
                   !((ops[i].flags & ops[i + 1].flags & IOREC_F_MAP) &&
                     ops[i].ino == ops[i + 1].ino)) {
            oth[noth++] = i + 1; /* as points_appends: not inside one map snapshot */
        }
    }
    if (nkey == 0 || key[nkey - 1] != nops)
        key[nkey++] = nops; /* after the clean close */
    if (nstates == 0)
        nstates = (unsigned)(2 * nkey + SC_MORE_STATES);
    point *pts = malloc((2 * nkey + nstates + 2) * sizeof(*pts));
    size_t npts = 0;
    sc_nkey = (unsigned)nkey;
    if (2 * nkey <= nstates) {
        for (size_t i = 0; i < nkey; i++) {
            pts[npts++] = (point){key[i], 0};
            pts[npts++] = (point){key[i], 1};
        }
        sc_key_checked = (unsigned)nkey;
        while (npts < nstates && noth > 0)
            pts[npts++] = (point){oth[tu_rng_range(rng, 0, noth - 1)],
                                  tu_rng_range(rng, 0, 3) != 0};
    } else {
        /* a sample of the key points, each in one of its two kinds */
        for (size_t i = 0; i < nkey && npts < nstates; i++) {
            size_t j = i + (size_t)tu_rng_range(rng, 0, nkey - 1 - i);
            size_t x = key[i];
            key[i] = key[j];
            key[j] = x;
            pts[npts++] = (point){key[i], (int)(tu_rng_next(rng) & 1)};
        }
        sc_key_checked = (unsigned)npts;
    }
    for (size_t i = 0; i < npts; i++)
        if (!pts[i].power && sc_taint[pts[i].k]) {
            pts[i].power = 1;
            sc_tainted++;
        }
    free(key);
    free(oth);
    *npts_out = npts;
    return pts;
}

/* ---- the checks of one state ---- */

static int sc_chk_ro;           /* this state: a read-only open first */
static unsigned sc_seen_pending[2], sc_seen_temp[2], sc_states[2]; /* [power] */

/* The progress file's pending segment: -1 when there is no valid file. */
static long sc_pending(const char *dir)
{
    char path[4096];
    unsigned char b[32];
    snprintf(path, sizeof(path), "%s/scavenge", dir);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, b, sizeof(b));
    close(fd);
    if (n != (ssize_t)sizeof(b) || memcmp(b, "EVSSCAV", 8) != 0)
        return -1;
    return (long)((uint32_t)b[16] | (uint32_t)b[17] << 8 | (uint32_t)b[18] << 16 |
                  (uint32_t)b[19] << 24);
}

/* log/: the number of temporary segment files (*.evslog.scav), and the
 * first position of the last segment that starts at or before head (an
 * empty segment after it does not seal it: the scavenge leaves that one
 * alone), 0 if none. */
static unsigned sc_log_scan(const char *dir, uint64_t head, uint64_t *last_first)
{
    char path[4096];
    unsigned temps = 0;
    char best[64] = "";
    snprintf(path, sizeof(path), "%s/log", dir);
    DIR *d = opendir(path);
    struct dirent *de;
    *last_first = 0;
    if (!d)
        return 0;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len > 5 && strcmp(de->d_name + len - 5, ".scav") == 0) {
            temps++;
            continue;
        }
        if (len != 16 + 7 || strcmp(de->d_name + 16, ".evslog") != 0)
            continue;
        char f[4096 + 64];
        unsigned char h[64];
        snprintf(f, sizeof(f), "%s/%s", path, de->d_name);
        int fd = open(f, O_RDONLY);
        if (fd < 0)
            continue;
        ssize_t n = pread(fd, h, sizeof(h), 0);
        close(fd);
        if (n != (ssize_t)sizeof(h))
            continue;
        uint64_t first = 0;
        for (int i = 7; i >= 0; i--)
            first = first << 8 | h[32 + i];
        if (first <= head && strcmp(de->d_name, best) > 0) {
            snprintf(best, sizeof(best), "%s", de->d_name);
            *last_first = first;
        }
    }
    closedir(d);
    return temps;
}

/*
 * A read (got, in order) against the history's positions up to upto that
 * pred selects: each event read is one of them, with its content; each
 * non-eligible one is there. Returns how many (eligible) ones were not
 * read, or -1 after a failure.
 */
static long sc_compare(const char *what, const tu_events *got, ev_pred pred, const void *ctx,
                       uint64_t upto)
{
    size_t j = 0;
    long missing = 0;
    for (uint64_t p = 1; p <= upto; p++) {
        if (!pred(&hist[p].e, ctx))
            continue;
        if (j < got->n && got->v[j].position == p) {
            const char *d = event_diff(&got->v[j], p);
            if (!*d && got->v[j].recorded_at != SC_T0 + (int64_t)hist[p].e.n)
                d = "another recorded_at";
            if (*d) {
                chk_fail("%s: position %" PRIu64 " (%s): %s", what, p,
                         sc_elig[p] ? "eligible" : "not eligible", d);
                return -1;
            }
            j++;
        } else if (!sc_elig[p]) {
            char sn[64];
            stream_name(sn, sizeof(sn), hist[p].e.stream);
            chk_fail("%s: position %" PRIu64 " (stream %s of tenant \"%s\", version %" PRId64
                     ", not eligible) is missing", what, p, sn, tenants[hist[p].e.tenant],
                     hist[p].e.version);
            return -1;
        } else {
            missing++;
        }
    }
    if (j != got->n) {
        chk_fail("%s: %zu events read, the one at %" PRIu64 " unexpected there (%zu matched "
                 "the history up to %" PRIu64 ")", what, got->n, got->v[j].position, j, upto);
        return -1;
    }
    return missing;
}

static int sc_read_log(tu_events *got, evs_db *db)
{
    evs_iter *it = NULL;
    tu_events_clear(got);
    int rc = evs_read_log(&it, db, 0, 0);
    if (rc == 0) {
        rc = tu_collect(got, it);
        evs_iter_free(it);
    }
    return rc;
}

static int sc_verify(evs_db *db, const char *when, uint64_t want)
{
    unsigned problems = 0;
    uint64_t checked = 0;
    int rc = evs_verify(&checked, db, verify_cb, &problems);
    if (rc != 0 || problems != 0) {
        chk_fail("evs_verify %s: %s, %u problem(s)", when, tu_errname(rc), problems);
        return -1;
    }
    if (checked != want) {
        chk_fail("evs_verify %s checked %" PRIu64 " records, %" PRIu64 " expected (the "
                 "events read)", when, checked, want);
        return -1;
    }
    return 0;
}

static int check_scav_state(const char *dir, size_t k)
{
    uint64_t acked = acked_before[k], head = 0, last_first = 0;
    int all = -1, rc;
    long pending = sc_pending(dir), missing = 0;
    evs_db *db = NULL;
    tu_events got = {0};
    char path[4096], what[160];
    struct stat ist;
    ino_t ino_before = 0;
    snprintf(path, sizeof(path), "%s/index/data.mdb", dir);
    if (stat(path, &ist) == 0)
        ino_before = ist.st_ino;
    if (sc_chk_ro) {
        /* It may refuse; what it shows must be right. */
        evs_open_options ro = EVS_OPEN_OPTIONS_INIT;
        ro.flags = EVS_OPEN_READONLY;
        rc = evs_open(&db, dir, &ro);
        if (rc != 0 && rc != EVS_ECORRUPT) {
            chk_fail("read-only open: %s (EVS_ECORRUPT or success expected): %s",
                     tu_errname(rc), evs_last_error());
        } else if (rc == 0) {
            uint64_t h = 0;
            if ((rc = evs_head_position(&h, db, NULL)) != 0)
                chk_fail("read-only open: evs_head_position: %s", tu_errname(rc));
            else if (h < acked || h > hist_n)
                chk_fail("read-only open shows head %" PRIu64 " but %" PRIu64 " was "
                         "acknowledged (and %" PRIu64 " ever written)", h, acked, hist_n);
            else if ((rc = sc_read_log(&got, db)) != 0)
                chk_fail("read-only open: evs_read_log: %s: %s", tu_errname(rc),
                         evs_last_error());
            else
                (void)sc_compare("read-only evs_read_log", &got, pred_tenant, &all, h);
            evs_close(db);
        }
        db = NULL;
    }
    rc = chk_open(&db, dir);
    if (rc != 0) {
        chk_fail("read-write open failed: %s: %s", tu_errname(rc), evs_last_error());
        goto out_free;
    }
    chk_opened = 1;
    /* (for the summary only: an index rebuilt in place keeps its inode) */
    if (ino_before && chk_index)
        *chk_index = stat(path, &ist) == 0 && ist.st_ino == ino_before ? 1 : 2;
    long p2 = sc_pending(dir);
    if (p2 > 0)
        chk_fail("after the open the progress file still says segment %ld pending (before "
                 "it: %ld)", p2, pending);
    if ((rc = evs_head_position(&head, db, NULL)) != 0) {
        chk_fail("evs_head_position: %s", tu_errname(rc));
        goto out;
    }
    if (sc_log_scan(dir, head, &last_first) != 0)
        chk_fail("a temporary segment file (*.evslog.scav) is left after the open");
    if (head < acked || head > hist_n) {
        chk_fail("head %" PRIu64 ", but %" PRIu64 " was acknowledged and %" PRIu64 " ever "
                 "written", head, acked, hist_n);
        goto out;
    }
    if (head > 0 && hist[head].append_last != head)
        chk_fail("head %" PRIu64 " is inside an append (which ends at %" PRIu64 ")", head,
                 hist[head].append_last);
    /* The log, every stream, a query per tenant. */
    if ((rc = sc_read_log(&got, db)) != 0) {
        chk_fail("evs_read_log: %s: %s", tu_errname(rc), evs_last_error());
        goto out;
    }
    if ((missing = sc_compare("evs_read_log", &got, pred_tenant, &all, head)) < 0)
        goto out;
    for (unsigned si = 0; si < SC_NSTREAMS; si++) {
        stream_key sk = {sc_tenant[si], si};
        char sn[64];
        stream_name(sn, sizeof(sn), si);
        snprintf(what, sizeof(what), "stream %s of tenant \"%s\"", sn, tenants[sc_tenant[si]]);
        tu_events_clear(&got);
        rc = tu_read_stream(&got, db, tenants[sc_tenant[si]], sn, 0, EVS_FORWARD, 0);
        if (rc != 0)
            chk_fail("%s: read failed: %s: %s", what, tu_errname(rc), evs_last_error());
        else
            (void)sc_compare(what, &got, pred_stream, &sk, head);
        int64_t v = -2, wv = -1;
        for (uint64_t p = head; p >= 1 && wv < 0; p--)
            if (pred_stream(&hist[p].e, &sk))
                wv = hist[p].e.version;
        if ((rc = evs_stream_version(&v, db, tenants[sc_tenant[si]], sn)) != 0 || v != wv)
            chk_fail("%s: evs_stream_version %s, %" PRId64 " instead of %" PRId64, what,
                     tu_errname(rc), v, wv);
    }
    for (int t = 0; t < 2; t++) {
        /* tenant "": type Deposited; tenant acme: the tag vip */
        query_model qm = t == 0 ? (query_model){0, 1, 0, -1} : (query_model){1, -1, 8u, -1};
        const char *qt[1] = {types[1]}, *qg[1] = {tagnames[3]};
        evs_query_item item = {qt, t == 0 ? 1 : 0, qg, t == 0 ? 0 : 1};
        evs_query q = {&item, 1};
        uint64_t marker = 0;
        snprintf(what, sizeof(what), "query %s of tenant \"%s\"", t == 0 ? "type Deposited" :
                 "tag vip", tenants[t]);
        tu_events_clear(&got);
        rc = tu_read_query(&got, &marker, db, tenants[t], &q, 0, EVS_FORWARD, 0);
        if (rc != 0)
            chk_fail("%s: read failed: %s: %s", what, tu_errname(rc), evs_last_error());
        else
            (void)sc_compare(what, &got, pred_query, &qm, head);
    }
    if (chk_failed || sc_verify(db, "after the open", head - (uint64_t)missing) < 0)
        goto out;
    /* A second scavenge completes what the first began. */
    evs_scavenge_result r;
    memset(&r, 0, sizeof(r));
    if ((rc = db->ops->scavenge(&r, db, &sc_plan)) != 0) {
        chk_fail("a second scavenge failed: %s: %s", tu_errname(rc), evs_last_error());
        goto out;
    }
    if ((rc = sc_read_log(&got, db)) != 0) {
        chk_fail("evs_read_log after a second scavenge: %s: %s", tu_errname(rc),
                 evs_last_error());
        goto out;
    }
    if ((missing = sc_compare("evs_read_log after a second scavenge", &got, pred_tenant, &all,
                              head)) < 0)
        goto out;
    for (size_t i = 0; i < got.n; i++)
        if (sc_elig[got.v[i].position] && got.v[i].position < last_first) {
            chk_fail("after a second scavenge (%" PRIu64 " removed, %" PRIu64 " segments "
                     "rewritten, %" PRIu64 " resumed) the eligible event at position %" PRIu64
                     " is still there, before the last segment (from %" PRIu64 ")",
                     r.events_removed, r.segments_rewritten, r.segments_resumed,
                     got.v[i].position, last_first);
            break;
        }
    if (chk_failed)
        goto out; /* evs_verify after it: below, after a reopen */
    /* One more append: position head+1 (stream 5 is in no plan). */
    {
        stream_key sk = {sc_tenant[5], 5};
        int64_t wv = -1;
        for (uint64_t p = head; p >= 1 && wv < 0; p--)
            if (pred_stream(&hist[p].e, &sk))
                wv = hist[p].e.version;
        char sn[64], data[64];
        stream_name(sn, sizeof(sn), 5);
        evs_event_data e = {0};
        e.type = "AfterCrash";
        e.data = data;
        e.data_len = (size_t)snprintf(data, sizeof(data), "{\"k\":%zu}", k);
        evs_uuid_generate(&e.id);
        evs_append_result ar;
        rc = evs_append(&ar, db, tenants[sc_tenant[5]], sn, EVS_ANY, &e, 1);
        if (rc != 0)
            chk_fail("append after the crash: %s: %s", tu_errname(rc), evs_last_error());
        else if (ar.first_position != head + 1 || ar.first_version != wv + 1)
            chk_fail("append after the crash to %s: position %" PRIu64 " version %" PRId64
                     ", expected %" PRIu64 " and %" PRId64, sn, ar.first_position,
                     ar.first_version, head + 1, wv + 1);
    }
out:
    if ((rc = evs_close(db)) != 0)
        chk_fail("close: %s: %s", tu_errname(rc), evs_last_error());
    db = NULL;
    if (!chk_failed) {
        if ((rc = chk_open(&db, dir)) != 0) {
            chk_fail("reopen after the check failed: %s: %s", tu_errname(rc),
                     evs_last_error());
        } else {
            (void)sc_verify(db, "after a reopen", head + 1 - (uint64_t)missing);
            if ((rc = evs_close(db)) != 0)
                chk_fail("close after verify: %s: %s", tu_errname(rc), evs_last_error());
        }
    }
out_free:
    tu_events_free(&got);
    return chk_failed;
}

/* In the parent, the state built: what it holds of the scavenge. */
static void sc_before_state(size_t pi, int power, tu_rng *rng)
{
    (void)rng;
    char *dir = tu_path_join(ws_root, "db");
    uint64_t lf;
    sc_chk_ro = pi % 3 == 1;
    sc_states[power]++;
    sc_seen_pending[power] += sc_pending(dir) > 0;
    sc_seen_temp[power] += sc_log_scan(dir, UINT64_MAX, &lf) > 0;
    free(dir);
}

static void sc_report(void)
{
    print_message("test_powerloss_scavenge: %u key crash points, %u of them checked (as "
                  "both a process crash and a power loss when all are); states with a "
                  "segment pending: %u of %u power loss, %u of %u process crash; with a "
                  "temporary segment file: %u and %u; %u process-crash points checked as "
                  "power losses (the journal's index may be torn there: sc_taint_build)\n",
                  sc_nkey, sc_key_checked, sc_seen_pending[1], sc_states[1],
                  sc_seen_pending[0], sc_states[0], sc_seen_temp[1], sc_seen_temp[0],
                  sc_tainted);
    free(sc_elig);
    free(sc_taint);
    sc_elig = NULL;
    sc_taint = NULL;
}

static void test_powerloss_scavenge(void **state)
{
    (void)state;
    TU_EMBEDDED_ONLY("power loss of the embedded store's files during its scavenge");
    static const pl_test t = {"test_powerloss_scavenge", "--workload-scavenge",
                              0, sc_prepare, sc_points, sc_before_state,
                              check_scav_state, sc_report};
    powerloss_run(&t);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--workload") == 0)
        return workload_main(argv[2], strtoull(argv[3], NULL, 10));
    if (argc == 4 && strcmp(argv[1], "--workload-scavenge") == 0)
        return workload_scavenge_main(argv[2], strtoull(argv[3], NULL, 10));
    if (argc == 3 && strcmp(argv[1], "--dump") == 0) {
        /* Post-mortem: the journal, one operation a line. */
        unsigned char *map;
        size_t maplen;
        if (journal_load(argv[2], &map, &maplen) != 0)
            return 2;
        for (size_t i = 0; i < nops; i++)
            printf("%zu %s %s%s%s off=%" PRIu64 " len=%" PRIu64 " ino=%" PRIu64 "%s%s\n", i,
                   op_name(ops[i].op), ops[i].path, ops[i].path2[0] ? " -> " : "",
                   ops[i].path2, ops[i].off, ops[i].len, ops[i].ino,
                   ops[i].op == IOREC_WRITE && !ops[i].data ? " zeros" : "",
                   ops[i].op == IOREC_WRITE && (ops[i].flags & IOREC_F_MAP) ? " map" : "");
        return 0;
    }
    if (argc == 5 && (strcmp(argv[1], "--check") == 0 ||
                      strcmp(argv[1], "--check-scavenge") == 0)) {
        /* Post-mortem: test_powerloss --check JOURNAL STORE_DIR POINT runs
         * the checks of one state (a kept copy) in this process, against
         * the history of a kept journal; EVS_DEBUG_BOOT_ID as printed. */
        unsigned char *map;
        size_t maplen;
        char err[512] = "";
        if (journal_load(argv[2], &map, &maplen) != 0 || history_build(err, sizeof(err)) != 0) {
            fprintf(stderr, "cannot load %s %s\n", argv[2], err);
            return 2;
        }
        snprintf(chk_where, sizeof(chk_where), "%s point %s", argv[3], argv[4]);
        size_t k = (size_t)strtoull(argv[4], NULL, 10);
        if (strcmp(argv[1], "--check") == 0)
            return check_state(argv[3], k) ? 1 : 0;
        return sc_prepare(0) == 0 && check_scav_state(argv[3], k) == 0 ? 0 : 1;
    }
    self_path = realpath("/proc/self/exe", NULL);
    if (argc == 2)
        cmocka_set_test_filter(argv[1]); /* one test: its name */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_powerloss),
        cmocka_unit_test(test_powerloss_scavenge),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(self_path);
    return rc;
}
