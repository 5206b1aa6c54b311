/*
 * keys.c -- the embedded store's subject key store (crypto-shredding,
 * core/crypto.c, docs/ERASURE.md): <dir>/keys, one fixed-size slot per
 * (tenant, subject), never in the append-only log, so that a key can be
 * destroyed for real: evs_forget overwrites its slot in place (the key's
 * bytes become zeros, the slot says "forgotten") and fdatasyncs it.
 *
 *   header, 512 bytes
 *   OFFSET SIZE  FIELD
 *   0      8     magic "EVSKEYS\0"
 *   8      4     version, 1 (LE)
 *   12     4     slot size, 512 (LE)
 *   16     496   zeros
 *
 *   slot i at 512 + 512 * i (sector-aligned: one slot is one write)
 *   0      4     state (LE): 1 a key, 2 forgotten (key zeros); 0 unused
 *   4      4     CRC32C of bytes 8..511
 *   8      2     tenant length (LE), 0..128
 *   10     2     subject length (LE), 1..256
 *   12     4     zeros
 *   16     32    the key (zeros when forgotten)
 *   48     128   tenant, zero-padded
 *   176    256   subject, zero-padded
 *   432    80    zeros
 *
 * The file is 0600. Only the writer (the process holding the store's
 * LOCK) writes it: a new slot at the end (written and synced before the
 * key is used, so no event is ever durable under a key that is not),
 * or a slot overwritten by a forget. A slot whose CRC does not match (a
 * write torn by a crash, a flipped bit) is "damaged": its subject's events
 * read redacted and an append under it is refused (EVS_ECORRUPT) until a
 * forget overwrites it -- as long as its names are readable; a slot whose
 * names are damaged too is lost, and its subject would get a new key on
 * its next encrypted append (its old events stay redacted). A partial slot at the end
 * (a crash while adding one) is ignored and overwritten by the next.
 *
 * In memory: a hash of (tenant, subject) -> slot number, built at first
 * use by scanning the file; a lookup reads the slot itself (pread), so a
 * forget by the writer is seen at once by every process. A read-only
 * handle rescans the file's new slots when a name is not in its hash.
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

#define KEYS_HDR 512
#define SLOT 512
#define S_STATE 0
#define S_CRC 4
#define S_TLEN 8
#define S_SLEN 10
#define S_KEY 16
#define S_TENANT 48
#define S_SUBJECT 176
#define ST_KEY 1
#define ST_FORGOTTEN 2
static const char keys_magic[8] = "EVSKEYS";

_Static_assert(S_TENANT + EVS_MAX_TENANT_LEN == S_SUBJECT, "tenant field");
_Static_assert(S_SUBJECT + EVS_MAX_STREAM_LEN <= SLOT, "subject field");

typedef struct kent {
    uint64_t hash;
    uint32_t slot;       /* slot number + 1; 0 = empty */
} kent;

struct evs__keys {
    pthread_mutex_t lock;
    int fd;              /* -1: no file (a read-only handle of a store without
                            one) */
    int writer;
    uint32_t nslots;     /* whole slots scanned */
    kent *tab;           /* open addressing, cap a power of two */
    size_t cap, n;
};

static uint64_t hash_name(const char *tenant, const char *subject)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = tenant; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    h = (h ^ 0xffu) * 1099511628211ull; /* not a byte of UTF-8 */
    for (const char *p = subject; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    return h | 1; /* never 0 */
}

static int io_err(int e, const char *what, const char *path)
{
    return evs__err(e == ENOSPC ? EVS_ENOSPC : EVS_EIO, "key store %s: %s: %s", path, what,
                    strerror(e));
}

static int slot_ok(const uint8_t *b)
{
    uint32_t st = evs__get_le32(b + S_STATE);
    return (st == ST_KEY || st == ST_FORGOTTEN) &&
           evs__get_le32(b + S_CRC) == evs__crc32c(b + 8, SLOT - 8) &&
           evs__get_le16(b + S_TLEN) <= EVS_MAX_TENANT_LEN &&
           evs__get_le16(b + S_SLEN) >= 1 && evs__get_le16(b + S_SLEN) <= EVS_MAX_STREAM_LEN;
}

static int slot_is(const uint8_t *b, const char *tenant, const char *subject)
{
    size_t tl = strlen(tenant), sl = strlen(subject);
    return evs__get_le16(b + S_TLEN) == tl && evs__get_le16(b + S_SLEN) == sl &&
           memcmp(b + S_TENANT, tenant, tl) == 0 && memcmp(b + S_SUBJECT, subject, sl) == 0;
}

static void slot_fill(uint8_t *b, uint32_t state, const char *tenant, const char *subject,
                      const uint8_t *key)
{
    size_t tl = strlen(tenant), sl = strlen(subject);
    memset(b, 0, SLOT);
    evs__put_le32(b + S_STATE, state);
    evs__put_le16(b + S_TLEN, (uint16_t)tl);
    evs__put_le16(b + S_SLEN, (uint16_t)sl);
    if (key)
        memcpy(b + S_KEY, key, 32);
    memcpy(b + S_TENANT, tenant, tl);
    memcpy(b + S_SUBJECT, subject, sl);
    evs__put_le32(b + S_CRC, evs__crc32c(b + 8, SLOT - 8));
}

static EVS_MUST_USE int tab_put(struct evs__keys *k, uint64_t h, uint32_t slot)
{
    if ((k->n + 1) * 2 > k->cap) {
        size_t nc = k->cap ? k->cap * 2 : 64;
        kent *nt = calloc(nc, sizeof(*nt));
        if (!nt)
            return evs__err(EVS_ENOMEM, "out of memory for the key store's index");
        for (size_t i = 0; i < k->cap; i++)
            if (k->tab[i].slot) {
                size_t j = k->tab[i].hash & (nc - 1);
                while (nt[j].slot)
                    j = (j + 1) & (nc - 1);
                nt[j] = k->tab[i];
            }
        free(k->tab);
        k->tab = nt;
        k->cap = nc;
    }
    size_t j = h & (k->cap - 1);
    while (k->tab[j].slot)
        j = (j + 1) & (k->cap - 1);
    k->tab[j].hash = h;
    k->tab[j].slot = slot + 1;
    k->n++;
    return 0;
}

/* The slot of (tenant, subject) into b (read now) and *slot: 1 found, 0
 * not, or an error. Damaged slots are never found. */
static EVS_MUST_USE int tab_find(struct evs__keys *k, const char *tenant, const char *subject,
                    uint8_t b[SLOT], uint32_t *slot, const char *path)
{
    if (!k->cap || k->fd < 0)
        return 0;
    uint64_t h = hash_name(tenant, subject);
    for (size_t j = h & (k->cap - 1); k->tab[j].slot; j = (j + 1) & (k->cap - 1)) {
        if (k->tab[j].hash != h)
            continue;
        uint32_t s = k->tab[j].slot - 1;
        ssize_t r = pread(k->fd, b, SLOT, KEYS_HDR + (off_t)s * SLOT);
        if (r < 0)
            return io_err(errno, "reading a key", path);
        if (r == SLOT && slot_is(b, tenant, subject)) {
            *slot = s;
            return 1;
        }
    }
    return 0;
}

/* Index the slots from k->nslots to the end of the file. */
static EVS_MUST_USE int scan(struct evs__keys *k, const char *path)
{
    struct stat st;
    if (fstat(k->fd, &st) != 0)
        return io_err(errno, "fstat", path);
    if (st.st_size < KEYS_HDR)
        return 0;
    uint32_t end = (uint32_t)((st.st_size - KEYS_HDR) / SLOT);
    uint8_t buf[SLOT * 16];
    while (k->nslots < end) {
        uint32_t n = end - k->nslots < 16 ? end - k->nslots : 16;
        ssize_t r = pread(k->fd, buf, (size_t)n * SLOT, KEYS_HDR + (off_t)k->nslots * SLOT);
        if (r < 0)
            return io_err(errno, "reading", path);
        n = (uint32_t)(r / SLOT);
        if (n == 0)
            break;
        for (uint32_t i = 0; i < n; i++) {
            const uint8_t *b = buf + (size_t)i * SLOT;
            uint32_t state = evs__get_le32(b + S_STATE);
            /* a damaged slot whose names are plausible is indexed under
             * them: a lookup finds it damaged (EVS_ECORRUPT), rather than
             * not at all, which would make a new key for the subject */
            if ((state != ST_KEY && state != ST_FORGOTTEN) ||
                evs__get_le16(b + S_TLEN) > EVS_MAX_TENANT_LEN ||
                evs__get_le16(b + S_SLEN) < 1 || evs__get_le16(b + S_SLEN) > EVS_MAX_STREAM_LEN)
                continue; /* unused, or unreadable: never found */
            char tenant[EVS_MAX_TENANT_LEN + 1], subject[EVS_MAX_STREAM_LEN + 1];
            size_t tl = evs__get_le16(b + S_TLEN), sl = evs__get_le16(b + S_SLEN);
            memcpy(tenant, b + S_TENANT, tl);
            tenant[tl] = '\0';
            memcpy(subject, b + S_SUBJECT, sl);
            subject[sl] = '\0';
            int rc = tab_put(k, hash_name(tenant, subject), k->nslots + i);
            if (rc < 0)
                return rc;
        }
        k->nslots += n;
    }
    return 0;
}

/* Open <dir>/keys (the writer creates it) and index it. */
static EVS_MUST_USE int keys_open(struct evs__keys *k, evs__emb *s, const char *path)
{
    k->writer = !s->readonly;
    k->fd = open(path, (k->writer ? O_RDWR | O_CREAT : O_RDONLY) | O_CLOEXEC, 0600);
    if (k->fd < 0) {
        if (errno == ENOENT && !k->writer)
            return 0; /* no key yet: every lookup finds nothing */
        return io_err(errno, "open", path);
    }
    uint8_t hdr[KEYS_HDR];
    ssize_t r = pread(k->fd, hdr, KEYS_HDR, 0);
    if (r < 0)
        return io_err(errno, "reading", path);
    if (r < KEYS_HDR) {
        if (!k->writer)
            return 0; /* being created by the writer: nothing in it yet */
        memset(hdr, 0, sizeof(hdr));
        memcpy(hdr, keys_magic, 8);
        evs__put_le32(hdr + 8, 1);
        evs__put_le32(hdr + 12, SLOT);
        if (pwrite(k->fd, hdr, KEYS_HDR, 0) != KEYS_HDR || fdatasync(k->fd) != 0)
            return io_err(errno ? errno : EIO, "writing the header", path);
        int e = evs__fsync_parent(path);
        if (e)
            return io_err(e, "syncing its directory", path);
        return 0;
    }
    if (memcmp(hdr, keys_magic, 8) != 0 || evs__get_le32(hdr + 8) != 1 ||
        evs__get_le32(hdr + 12) != SLOT)
        return evs__err(EVS_ECORRUPT, "key store %s: not an evstore key file (bad magic, "
                        "version or slot size); restore it from a backup", path);
    return scan(k, path);
}

/* The handle's key store, opened on first use; *path gets its name. */
static EVS_MUST_USE int keys_get(struct evs__keys **out, evs__emb *s, char *path, size_t cap)
{
    snprintf(path, cap, "%s/keys", s->dir);
    struct evs__keys *k = atomic_load(&s->keys);
    if (k) {
        *out = k;
        return 0;
    }
    k = calloc(1, sizeof(*k));
    if (!k)
        return evs__err(EVS_ENOMEM, "out of memory for the key store");
    pthread_mutex_init(&k->lock, NULL);
    k->fd = -1;
    int rc = keys_open(k, s, path);
    struct evs__keys *expected = NULL;
    if (rc < 0 || !atomic_compare_exchange_strong(&s->keys, &expected, k)) {
        if (k->fd >= 0)
            close(k->fd);
        free(k->tab);
        pthread_mutex_destroy(&k->lock);
        free(k);
        if (rc < 0)
            return rc;
        k = expected;
    }
    *out = k;
    return 0;
}

void evs__keys_close(evs__emb *s)
{
    struct evs__keys *k = atomic_exchange(&s->keys, NULL);
    if (!k)
        return;
    if (k->fd >= 0)
        close(k->fd);
    free(k->tab);
    pthread_mutex_destroy(&k->lock);
    free(k);
}

int evs__emb_subject_key(uint8_t key[32], evs_db *db, const char *tenant,
                         const char *subject, const uint8_t *new_key)
{
    evs__emb *s = (evs__emb *)db;
    struct evs__keys *k;
    char path[4200];
    uint8_t b[SLOT];
    uint32_t slot;
    int rc = keys_get(&k, s, path, sizeof(path));
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&k->lock);
    if (k->fd < 0 && !k->writer) {
        /* a reader of a store whose file did not exist yet: look again */
        k->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (k->fd < 0 && errno != ENOENT) {
            rc = io_err(errno, "open", path);
            goto out;
        }
    }
    rc = tab_find(k, tenant, subject, b, &slot, path);
    if (rc == 0 && !k->writer && k->fd >= 0) {
        if ((rc = scan(k, path)) < 0)
            goto out;
        rc = tab_find(k, tenant, subject, b, &slot, path);
    }
    if (rc < 0)
        goto out;
    if (rc == 1) {
        if (!slot_ok(b))
            rc = evs__err(EVS_ECORRUPT, "key store %s: the slot of subject \"%s\" is "
                          "damaged (CRC mismatch); its events read redacted", path, subject);
        else if (evs__get_le32(b + S_STATE) == ST_FORGOTTEN)
            rc = EVS_EDELETED;
        else {
            memcpy(key, b + S_KEY, 32);
            rc = 0;
        }
        goto out;
    }
    if (!new_key || !k->writer) {
        rc = EVS_ENOTFOUND;
        goto out;
    }
    /* a new slot at the end, durable before the key is used */
    slot_fill(b, ST_KEY, tenant, subject, new_key);
    errno = 0;
    if (pwrite(k->fd, b, SLOT, KEYS_HDR + (off_t)k->nslots * SLOT) != SLOT ||
        fdatasync(k->fd) != 0) {
        rc = io_err(errno ? errno : EIO, "writing a new key", path);
        goto out;
    }
    if ((rc = tab_put(k, hash_name(tenant, subject), k->nslots)) < 0)
        goto out;
    k->nslots++;
    memcpy(key, new_key, 32);
    rc = 0;
out:
    memset(b, 0, sizeof(b));
    pthread_mutex_unlock(&k->lock);
    return rc;
}

int evs__emb_subject_forget(evs_db *db, const char *tenant, const char *subject)
{
    evs__emb *s = (evs__emb *)db;
    struct evs__keys *k;
    char path[4200];
    uint8_t b[SLOT];
    uint32_t slot;
    if (s->readonly)
        return evs__err(EVS_EREADONLY, "forget: the store is open read-only");
    int rc = keys_get(&k, s, path, sizeof(path));
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&k->lock);
    rc = tab_find(k, tenant, subject, b, &slot, path);
    if (rc <= 0) {
        rc = rc < 0 ? rc : EVS_ENOTFOUND;
        goto out;
    }
    if (slot_ok(b) && evs__get_le32(b + S_STATE) == ST_FORGOTTEN) {
        rc = 0; /* idempotent */
        goto out;
    }
    /* overwrite the slot in place: the key's bytes become zeros */
    slot_fill(b, ST_FORGOTTEN, tenant, subject, NULL);
    errno = 0;
    if (pwrite(k->fd, b, SLOT, KEYS_HDR + (off_t)slot * SLOT) != SLOT ||
        fdatasync(k->fd) != 0) {
        rc = io_err(errno ? errno : EIO, "overwriting a key", path);
        goto out;
    }
    rc = 0;
out:
    pthread_mutex_unlock(&k->lock);
    return rc;
}

/* ---- backups ------------------------------------------------------------------- */

int evs__keys_backup(evs__emb *s, const char *dir)
{
    char src[4200], tmp[4200], dst[4200];
    snprintf(src, sizeof(src), "%s/keys", s->dir);
    snprintf(tmp, sizeof(tmp), "%s/keys.tmp", dir);
    snprintf(dst, sizeof(dst), "%s/keys", dir);
    /* this process's forgets wait for the copy (other processes cannot
     * write the file: only the writer does) */
    struct evs__keys *k = atomic_load(&s->keys);
    uint8_t buf[1 << 16];
    if (k)
        pthread_mutex_lock(&k->lock);
    int rc = 0, in = open(src, O_RDONLY | O_CLOEXEC), out = -1;
    if (in < 0) {
        if (errno != ENOENT)
            rc = io_err(errno, "open", src);
        else if (unlink(dst) != 0 && errno != ENOENT)
            rc = io_err(errno, "removing the backup's old copy", dst);
        goto done;
    }
    out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) {
        rc = io_err(errno, "creating", tmp);
        goto done;
    }
    for (;;) {
        ssize_t r = read(in, buf, sizeof(buf));
        if (r < 0) {
            rc = io_err(errno, "reading", src);
            goto done;
        }
        if (r == 0)
            break;
        if (write(out, buf, (size_t)r) != r) {
            rc = io_err(errno ? errno : ENOSPC, "writing", tmp);
            goto done;
        }
    }
    if (fsync(out) != 0) {
        rc = io_err(errno, "syncing", tmp);
        goto done;
    }
    if (rename(tmp, dst) != 0) {
        rc = io_err(errno, "renaming into place", dst);
        goto done;
    }
    int e = evs__fsync_dir(dir);
    if (e)
        rc = io_err(e, "syncing the directory of", dst);
done:
    explicit_bzero(buf, sizeof(buf));
    if (k)
        pthread_mutex_unlock(&k->lock);
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    if (rc < 0)
        unlink(tmp);
    return rc;
}
