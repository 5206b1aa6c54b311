/*
 * state.c -- <dir>/state: may the index on disk be trusted, and how far is
 * the log known to be durable? (docs/DESIGN.md, "Durability".)
 *
 * The index is written without syncs (the log is the durable copy), so
 * after an OS crash or power loss its file can hold any mix of old and new
 * pages, and a copy made file by file while a writer runs is the same kind
 * of state. LMDB has no page checksums: reading such a file can crash or
 * answer wrongly. So an untrusted index is never read; it is deleted and
 * rebuilt from the log. The state file is what tells the two apart:
 *
 *   read-write open ──▶ state = OPEN (this boot, these files)  fsync'ed
 *                       ... index and log writes ...
 *   clean close ──────▶ index synced ──▶ state = CLEAN          fsync'ed
 *
 * The index is trusted when the files are the ones the state names (same
 * device and inode: not a copy) and the state is CLEAN, or OPEN on this
 * boot (a process crash: the page cache, which holds every index write,
 * survived). Anything else -- a reboot after an unclean stop, a copy, a
 * store from before this file existed -- is a rebuild. The snapshots
 * environment (snapshot.c) is synced on every save, so only a copy loses
 * it.
 *
 * The state also carries the durable position: every position up to it
 * was durable in the log when the state was written (acknowledged, or
 * accepted and synced by recovery). Recovery never cuts below it.
 *
 * A CLEAN state also names each environment's size and modification time:
 * a file changed after the clean close (damaged, or edited by hand) is not
 * read either.
 *
 * File (little-endian), replaced atomically: state.tmp, fsync, rename,
 * fsync of the directory.
 *
 *     OFFSET SIZE  FIELD
 *     0      8     magic "EVSSTAT\0"
 *     8      4     format version (u32) = 1
 *     12     4     flags: bit 0 = OPEN (a writer had it open and has not
 *                  closed it cleanly)
 *     16     16    boot id of the machine that wrote it (Linux
 *                  /proc/sys/kernel/random/boot_id)
 *     32     8     durable position (u64); all ones: unknown (an open
 *                  found the state damaged and has not recovered since)
 *     40     8     st_dev of <dir>/log
 *     48     8     st_ino of <dir>/log
 *     56     32    <dir>/index/data.mdb: st_dev, st_ino, st_size, st_mtim
 *                  (ns since the epoch), u64 each
 *     88     32    <dir>/snapshots/data.mdb: the same
 *     120    4     reserved, zero
 *     124    4     CRC32C of bytes 0..123
 */
#include "embedded/embedded.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATE_MAGIC "EVSSTAT\0"
#define STATE_FORMAT 1u
#define STATE_SIZE 128u
#define STATE_FLAG_OPEN 1u

/* This boot's id. EVS_DEBUG_BOOT_ID overrides it: the power-loss tests
 * open their crash states "after a reboot" that way. All zeros when
 * unknown, which never matches: an unclean stop is then always a rebuild. */
static void boot_id(uint8_t out[16])
{
    char buf[64] = "";
    const char *v = getenv("EVS_DEBUG_BOOT_ID");
    memset(out, 0, 16);
    if (!v) {
        FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
        if (!f)
            return;
        if (!fgets(buf, sizeof(buf), f))
            buf[0] = 0;
        fclose(f);
        buf[strcspn(buf, "\n")] = 0;
        v = buf;
    }
    evs_uuid u;
    if (evs__uuid_parse(&u, v) == 0) {
        memcpy(out, u.bytes, 16);
    } else {
        size_t n = strlen(v);
        memcpy(out, v, n < 16 ? n : 16);
        evs__clear_error();
    }
}

/* dev, ino, size, mtime (ns) of a file; zeros when it is missing */
static void file_id(const char *path, uint64_t id[4])
{
    struct stat st;
    memset(id, 0, 4 * sizeof(*id));
    if (stat(path, &st) == 0) {
        id[0] = (uint64_t)st.st_dev;
        id[1] = (uint64_t)st.st_ino;
        id[2] = (uint64_t)st.st_size;
        id[3] = (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec;
    }
}

/* Is the file the one named at b (n fields: 2 = same file, 4 = also
 * unchanged)? */
static int same_file(const uint8_t *b, const uint64_t id[4], int n)
{
    if (id[1] == 0)
        return 0;
    for (int i = 0; i < n; i++)
        if (evs__get_le64(b + 8 * i) != id[i])
            return 0;
    return 1;
}

int evs__state_judge(const char *dir, evs__trust *j)
{
    char path[4096];
    uint8_t b[STATE_SIZE], boot[16];
    uint64_t id[4];
    memset(j, 0, sizeof(*j));
    j->log_original = 1;
    snprintf(j->why, sizeof(j->why), "the store has no state file (it was made by an "
             "older evstore)");

    snprintf(path, sizeof(path), "%s/state", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT)
            return evs__err(EVS_EIO, "cannot read %s: %s", path, strerror(errno));
        return 0;
    }
    ssize_t n = read(fd, b, sizeof(b));
    close(fd);
    if (n != (ssize_t)sizeof(b) || memcmp(b, STATE_MAGIC, 8) != 0 ||
        evs__get_le32(b + 124) != evs__crc32c(b, 124)) {
        /* Damaged (it is replaced atomically, so not by a crash): trust
         * nothing in it, and since how far the log was durable is unknown,
         * let recovery cut nothing (a torn tail is then refused too). */
        snprintf(j->why, sizeof(j->why), "its state file is damaged");
        j->frontier_unknown = 1;
        return 0;
    }
    if (evs__get_le32(b + 8) != STATE_FORMAT)
        return evs__err(evs__get_le32(b + 8) > STATE_FORMAT ? EVS_EFORMAT : EVS_ECORRUPT,
                        "%s has format %u; this evstore (%s) reads format %u", path,
                        evs__get_le32(b + 8), EVS_VERSION_STRING, STATE_FORMAT);
    uint32_t flags = evs__get_le32(b + 12);
    int clean = !(flags & STATE_FLAG_OPEN);
    j->durable = evs__get_le64(b + 32);
    if (j->durable == EVS_DURABLE_UNKNOWN) {
        /* written by an open that found a damaged state file and has not
         * recovered since: still unknown */
        j->durable = 0;
        j->frontier_unknown = 1;
    }

    snprintf(path, sizeof(path), "%s/log", dir);
    file_id(path, id);
    j->log_original = same_file(b + 40, id, 2);
    snprintf(path, sizeof(path), "%s/index/data.mdb", dir);
    file_id(path, id);
    int same_index = same_file(b + 56, id, 2), index_missing = id[1] == 0;
    int changed_index = clean && !same_file(b + 56, id, 4);
    /* synced on every save: after any stop the same file is trusted,
     * unless it changed after a clean close */
    snprintf(path, sizeof(path), "%s/snapshots/data.mdb", dir);
    file_id(path, id);
    j->snapshots_trusted = same_file(b + 88, id, clean ? 4 : 2);
    boot_id(boot);
    int same_boot = memcmp(boot, b + 16, 16) == 0 &&
                    memcmp(boot, (const uint8_t[16]){0}, 16) != 0;

    if (!j->log_original)
        snprintf(j->why, sizeof(j->why), "its files are not the ones it was written "
                 "with (a copy of the store); the index is derived from the log, which "
                 "holds every event");
    else if (!same_index && index_missing)
        snprintf(j->why, sizeof(j->why), "index/data.mdb is missing; the index is "
                 "derived from the log, which holds every event");
    else if (!same_index)
        snprintf(j->why, sizeof(j->why), "index/data.mdb is not the file this store "
                 "wrote (replaced, or copied from elsewhere); the index is derived from "
                 "the log, which holds every event");
    else if (changed_index)
        snprintf(j->why, sizeof(j->why), "index/data.mdb changed after the store was "
                 "closed; the index is derived from the log, which holds every event");
    else if ((flags & STATE_FLAG_OPEN) && !same_boot)
        snprintf(j->why, sizeof(j->why), "it was not closed before the machine stopped "
                 "(an OS crash or power loss)");
    else {
        j->index_trusted = 1;
        j->why[0] = 0;
    }
    return 0;
}

int evs__state_write(const char *dir, int open_flag, uint64_t durable)
{
    char path[4096], tmp[4096];
    uint8_t b[STATE_SIZE];
    uint64_t id[4];
    int rc = 0;
    memset(b, 0, sizeof(b));
    memcpy(b, STATE_MAGIC, 8);
    evs__put_le32(b + 8, STATE_FORMAT);
    evs__put_le32(b + 12, open_flag ? STATE_FLAG_OPEN : 0);
    boot_id(b + 16);
    evs__put_le64(b + 32, durable);
    const char *files[] = {"log", "index/data.mdb", "snapshots/data.mdb"};
    const int at[] = {40, 56, 88}, nf[] = {2, 4, 4};
    for (int f = 0; f < 3; f++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[f]);
        file_id(path, id);
        for (int i = 0; i < nf[f]; i++)
            evs__put_le64(b + at[f] + 8 * i, id[i]);
    }
    evs__put_le32(b + 124, evs__crc32c(b, 124));

    snprintf(path, sizeof(path), "%s/state", dir);
    snprintf(tmp, sizeof(tmp), "%s/state.tmp", dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return evs__err(errno == ENOSPC ? EVS_ENOSPC : EVS_EIO, "cannot write %s: %s",
                        tmp, strerror(errno));
    ssize_t w = write(fd, b, sizeof(b));
    int e = w == (ssize_t)sizeof(b) ? 0 : w < 0 ? errno : ENOSPC;
    if (!e && fsync(fd) != 0)
        e = errno;
    close(fd);
    if (!e && rename(tmp, path) != 0)
        e = errno;
    if (e) {
        unlink(tmp);
        return evs__err(e == ENOSPC ? EVS_ENOSPC : EVS_EIO, "cannot write %s: %s", path,
                        strerror(e));
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0)
        rc = evs__err(EVS_EIO, "cannot sync directory %s: %s", dir, strerror(errno));
    if (dfd >= 0)
        close(dfd);
    return rc;
}
