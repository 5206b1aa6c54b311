/*
 * iorec.h -- the journal written by the evs_iorec LD_PRELOAD shim
 * (tests/iorec/iorec.c) and read by tests/test_powerloss.c.
 *
 * The journal is a sequence of records, in the order the operations
 * returned (one mutex orders them across threads):
 *
 *   offset  size  field
 *   0       1     op (IOREC_* below)
 *   1       1     flags (IOREC_F_*)
 *   2       2     path length (bytes, no NUL), relative to EVS_IOREC_ROOT
 *   4       4     path2 length (rename: the destination), else 0
 *   8       8     off   (write, fallocate, msync-range: file offset;
 *                        fsync: the file's mtime in ns after the sync,
 *                        0 = unknown)
 *   16      8     len   (write: bytes; truncate: new size; fallocate: len;
 *                        msync-range: bytes; mark: bytes)
 *   24      8     ino   the file's inode: its identity (a file keeps it
 *                       across renames; an fd's path may be stale). For
 *                       create/mkdir the new inode; 0 for rename/unlink
 *   32      ...   path, path2, then len data bytes for WRITE and MARK
 *                 (not for WRITE with IOREC_F_ZERO: all-zero data)
 *
 * Only operations on files under EVS_IOREC_ROOT are recorded, and only
 * successful ones (a failed call changed nothing we model).
 *
 * Writes through a writable shared mapping are not seen when they happen:
 * the shim compares the mapped file with its shadow copy at every snapshot
 * point (any fsync/fdatasync/msync, evs_iorec_mark, munmap, the close of
 * the file's last descriptor, process exit) and journals the pages that
 * changed as WRITE records with IOREC_F_MAP, just before that point's own
 * record (iorec.c says why this is sound enough). The WRITE records of one
 * such snapshot of one file are consecutive; a process crash never splits
 * them (the page cache held all of them at once).
 */
#ifndef EVS_IOREC_H
#define EVS_IOREC_H

#include <stdint.h>

enum {
    IOREC_CREATE = 'C',   /* a new file appeared at path (O_CREAT, absent before) */
    IOREC_WRITE = 'W',    /* len bytes at off */
    IOREC_TRUNCATE = 'T', /* size set to len (ftruncate, or O_TRUNC: 0) */
    IOREC_FALLOC = 'A',   /* fallocate off,len; F_KEEP if KEEP_SIZE */
    IOREC_FSYNC = 'S',    /* fsync/fdatasync of a regular file, or an
                             O_SYNC/O_DSYNC write */
    IOREC_DIRSYNC = 'D',  /* fsync/fdatasync of a directory */
    IOREC_RENAME = 'R',   /* path -> path2 */
    IOREC_UNLINK = 'U',   /* unlink path (a file) or rmdir (F_DIR) */
    IOREC_MKDIR = 'K',    /* mkdir path */
    IOREC_MMAPW = 'M',    /* path mapped MAP_SHARED + PROT_WRITE: its
                             writes through the map are journaled at the
                             snapshot points (IOREC_F_MAP writes) */
    IOREC_MSYNCR = 'Y',   /* msync(MS_SYNC) of a file range off,len that
                             does not cover every unsynced write of the
                             file: not modelled as a durability point
                             (the test keeps those writes unsynced) */
    IOREC_SFR = 'F',      /* sync_file_range (not a durability point) */
    IOREC_MARK = 'X'      /* evs_iorec_mark(): len bytes of the caller's */
};

#define IOREC_F_ZERO 0x1u /* WRITE: the data is all zero, not stored */
#define IOREC_F_KEEP 0x2u /* FALLOC: FALLOC_FL_KEEP_SIZE */
#define IOREC_F_DIR 0x4u  /* UNLINK: rmdir */
#define IOREC_F_MAP 0x8u  /* WRITE: pages changed through a writable shared
                             mapping, found at a snapshot point */

typedef struct iorec_hdr {
    uint8_t op;
    uint8_t flags;
    uint16_t plen;
    uint32_t p2len;
    uint64_t off;
    uint64_t len;
    uint64_t ino;
} iorec_hdr;

#endif /* EVS_IOREC_H */
