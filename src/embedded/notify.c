/*
 * notify.c -- waking blocking readers when a group commits.
 *
 * A tracking reader with nothing to read sleeps until the next commit,
 * and must wake within microseconds of it, also when it lives in another
 * process (a read-only open, e.g. `evs all --follow` beside the
 * application that writes). Both ends share one 32-bit word in a small
 * file, <dir>/notify, mapped MAP_SHARED:
 *
 *   writer, after the index commit:   seq++ ; FUTEX_WAKE(&seq, all)
 *   reader:   s0 = seq ; begin read txn ; nothing new?  FUTEX_WAIT(&seq, s0)
 *
 * No wake-up is lost: the writer bumps seq only after its commit is
 * visible, and the reader reads seq before its snapshot, so a commit its
 * snapshot missed has changed seq (or is about to), and FUTEX_WAIT
 * returns at once when seq is no longer s0. The futex is not
 * process-private, so a waiter in another process is woken by the same
 * call. The writer wakes unconditionally (one syscall per group, ~0.5 µs:
 * cheaper than keeping a waiter count right across processes that may
 * die while waiting).
 *
 * The file holds nothing durable: a new store creates it, a stale one is
 * reused as is (seq only has to change, never to mean anything).
 *
 *   OFFSET SIZE  FIELD
 *   0      8     magic "EVSNTFY\0"
 *   64     4     seq (u32, native byte order: a futex word)
 *   4096         file size
 */
#include "embedded/embedded.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define NOTIFY_SIZE 4096u
#define NOTIFY_MAGIC "EVSNTFY"

struct evs__notify {
    char magic[8];
    uint8_t reserved[56];
    _Atomic uint32_t seq;
};

int evs__notify_open(evs__emb *s)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof(path), "%s/notify", s->dir);
    s->notify = NULL;
    int prot = PROT_READ | PROT_WRITE;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 && s->readonly) {
        /* waiting needs only to read the word (another process bumps it) */
        fd = open(path, O_RDONLY | O_CLOEXEC);
        prot = PROT_READ;
    }
    if (fd < 0)
        return evs__err(errno == ENOSPC ? EVS_ENOSPC : EVS_EIO,
                        "cannot open %s for commit notifications: %s", path,
                        strerror(errno));
    /* Sized by writing zeros, not ftruncate: a sparse page written through
     * the mapping on a full disk would be a SIGBUS, not an error. */
    static const uint8_t zeros[NOTIFY_SIZE];
    int e = 0;
    if (fstat(fd, &st) != 0) {
        e = errno;
    } else if (st.st_size < (off_t)NOTIFY_SIZE) {
        size_t n = NOTIFY_SIZE - (size_t)st.st_size;
        ssize_t w = prot == PROT_READ ? -1 : pwrite(fd, zeros + st.st_size, n, st.st_size);
        if (prot == PROT_READ)
            e = EINVAL; /* too short, and this open cannot size it */
        else if (w != (ssize_t)n)
            e = w < 0 ? errno : ENOSPC; /* a short write: the disk is full */
    }
    if (e) {
        close(fd);
        return evs__err(e == ENOSPC ? EVS_ENOSPC : EVS_EIO, "cannot size %s: %s", path,
                        strerror(e));
    }
    void *m = mmap(NULL, NOTIFY_SIZE, prot, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        e = errno;
        close(fd);
        return evs__err(e == ENOMEM ? EVS_ENOMEM : EVS_EIO, "cannot map %s: %s", path,
                        strerror(e));
    }
    s->notify = m;
    s->notify_fd = fd;
    s->notify_ro = prot == PROT_READ;
    if (prot != PROT_READ && memcmp(s->notify->magic, NOTIFY_MAGIC, 8) != 0)
        memcpy(s->notify->magic, NOTIFY_MAGIC, 8);
    return 0;
}

void evs__notify_close(evs__emb *s)
{
    if (s->notify)
        munmap(s->notify, NOTIFY_SIZE);
    if (s->notify && s->notify_fd >= 0)
        close(s->notify_fd);
    s->notify = NULL;
}

void evs__notify_kick(evs__emb *s)
{
    if (!s->notify)
        return;
    /* A read-only mapping cannot bump the word: then only the waiters
     * already asleep wake (see evs__notify_wait for the others). */
    if (!s->notify_ro)
        atomic_fetch_add_explicit(&s->notify->seq, 1, memory_order_seq_cst);
    syscall(SYS_futex, &s->notify->seq, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

uint32_t evs__notify_seq(evs__emb *s)
{
    return s->notify ? atomic_load_explicit(&s->notify->seq, memory_order_seq_cst) : 0;
}

int evs__notify_wait(evs__emb *s, uint32_t seq, uint64_t deadline_ns)
{
    if (!s->notify)
        return evs__err(EVS_EBACKEND, "cannot wait for commits on %s: %s; a read-only "
                        "open of a store it cannot write reads without waiting",
                        s->dir, s->notify_why[0] ? s->notify_why
                                                 : "the notify file is not open");
    struct timespec ts, *tp = NULL;
    if (deadline_ns || s->notify_ro) {
        uint64_t now = evs__mono_ns();
        if (deadline_ns && now >= deadline_ns)
            return 0;
        uint64_t left = deadline_ns ? deadline_ns - now : UINT64_MAX;
        /* A kick from this process cannot change a read-only word, so a
         * waiter that checked its cancel flag just before the kick would
         * sleep on: such waits end every 50 ms to look again. */
        if (s->notify_ro && left > 50000000u)
            left = 50000000u;
        ts.tv_sec = (time_t)(left / 1000000000u);
        ts.tv_nsec = (long)(left % 1000000000u);
        tp = &ts;
    }
    /* EAGAIN (seq moved), EINTR and ETIMEDOUT all mean "look again" */
    syscall(SYS_futex, &s->notify->seq, FUTEX_WAIT, seq, tp, NULL, 0);
    return 0;
}
