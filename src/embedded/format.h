/*
 * format.h -- the embedded store's on-disk formats. docs/FORMAT.md is the
 * long form of this file; the two must agree.
 *
 * A store directory:
 *
 *     <dir>/LOCK                    flock'ed by the process that has it open
 *     <dir>/log/%016llx.evslog      log segments, numbered from 1
 *     <dir>/index/data.mdb          LMDB environment: the derived indexes
 *     <dir>/snapshots/data.mdb      LMDB environment: snapshots (snapshot.c)
 *     <dir>/notify                  commit notifications (notify.c)
 *     <dir>/state                   may the index be trusted? (state.c)
 *
 * The log is the source of truth. The index can always be rebuilt from it.
 *
 * Segment file (preallocated to segment_size bytes, zero-filled):
 *
 *     OFFSET SIZE  FIELD
 *     0      8     magic "EVSTLOG\0"
 *     8      4     format version (u32 LE) = EVS_LOG_FORMAT
 *     12     4     header size (u32 LE) = 64
 *     16     8     segment number (u64 LE), 1-based
 *     24     8     segment size in bytes (u64 LE)
 *     32     8     first position (u64 LE): global position of its first record
 *     40     4     flags (u32 LE): bit 0 = SCAVENGED (was reserved, zero)
 *     44     16    reserved, zero
 *     60     4     CRC32C of bytes 0..59 (u32 LE)
 *     64     ...   records, each padded to a multiple of 8 bytes, then zeros
 *
 * Record (all integers little-endian):
 *
 *     OFFSET SIZE  FIELD
 *     0      4     magic 0x31525645 ("EVR1")
 *     4      4     CRC32C of bytes 8..length-1
 *     8      4     length: header + body, before padding
 *     12     2     flags: bit 0 = COMMIT_END (last record of its append)
 *     14     2     tenant length (bytes, without NUL)
 *     16     8     global position
 *     24     8     stream version (i64)
 *     32     8     commit_first: position of the first record of its append
 *     40     8     group_first: position of the first record written by the
 *                  same write+fdatasync (used to tell a torn tail from damage)
 *     48     8     recorded_at (i64, µs since the Unix epoch)
 *     56     16    event id
 *     72     16    correlation id (zero = none)
 *     88     16    causation id (zero = none)
 *     104    2     stream name length
 *     106    2     type length
 *     108    2     number of tags
 *     110    1     content type (0 JSON, 1 binary)
 *     111    1     reserved, zero
 *     112    4     metadata length
 *     116    4     data length
 *     120    4     tags area length (bytes, NULs included)
 *     124    4     reserved, zero
 *     128    ...   tenant NUL, stream NUL, type NUL, each tag NUL,
 *                  metadata NUL, data NUL
 */
#ifndef EVS_EMBEDDED_FORMAT_H
#define EVS_EMBEDDED_FORMAT_H

#include <stdint.h>

#define EVS_LOG_FORMAT 1u
#define EVS_SEG_MAGIC "EVSTLOG"         /* 8 bytes with the NUL */
#define EVS_SEG_HEADER_SIZE 64u

/*
 * A SCAVENGED segment (scavenge.c) was rewritten by evs_scavenge: its
 * surviving records are at the offsets they always had, and the records
 * it removed are holes of zeros (sparse, never written). Every reader of
 * the log skips zero 8-byte words in a scavenged segment to the next
 * record, and accepts gaps in positions and stream versions there; in a
 * segment without the flag, zeros before its end are damage as ever.
 */
#define EVS_SEG_OFF_FLAGS 40
#define EVS_SEG_FLAG_SCAVENGED 0x1u

static inline int evs__seg_scavenged(const uint8_t *m)
{
    return m && (m[EVS_SEG_OFF_FLAGS] & EVS_SEG_FLAG_SCAVENGED) != 0;
}

/* In a scavenged segment m of size bytes: the offset of the first
 * non-zero 8-byte word at or after off (a multiple of 8), the next
 * record; size when the rest is zeros. */
static inline uint32_t evs__seg_skip_hole(const uint8_t *m, uint32_t off, uint32_t size)
{
    while (off + 8 <= size) {
        uint64_t w;
        __builtin_memcpy(&w, m + off, 8);
        if (w)
            return off;
        off += 8;
    }
    return size;
}

#define EVS_REC_MAGIC 0x31525645u
#define EVS_REC_FIXED 128u              /* header + fixed body */
#define EVS_REC_FLAG_COMMIT_END 0x1u
/* Set in a pre-encoded record while recorded_at is still to be stamped by
 * the writer; never written to disk. */
#define EVS_REC_FLAG_STAMP_TIME 0x8000u

#define EVS_REC_OFF_MAGIC 0
#define EVS_REC_OFF_CRC 4
#define EVS_REC_OFF_LEN 8
#define EVS_REC_OFF_FLAGS 12
#define EVS_REC_OFF_TENANT_LEN 14
#define EVS_REC_OFF_POSITION 16
#define EVS_REC_OFF_VERSION 24
#define EVS_REC_OFF_COMMIT_FIRST 32
#define EVS_REC_OFF_GROUP_FIRST 40
#define EVS_REC_OFF_RECORDED_AT 48
#define EVS_REC_OFF_ID 56
#define EVS_REC_OFF_CORRELATION 72
#define EVS_REC_OFF_CAUSATION 88
#define EVS_REC_OFF_STREAM_LEN 104
#define EVS_REC_OFF_TYPE_LEN 106
#define EVS_REC_OFF_NTAGS 108
#define EVS_REC_OFF_CONTENT 110
#define EVS_REC_OFF_META_LEN 112
#define EVS_REC_OFF_DATA_LEN 116
#define EVS_REC_OFF_TAGS_LEN 120
#define EVS_REC_OFF_VAR 128

static inline uint32_t evs__pad8(uint32_t n) { return (n + 7u) & ~7u; }

/*
 * LMDB sub-databases (keys big-endian so byte order is numeric order):
 *
 *   meta           "format"  -> u32 LE index format (EVS_INDEX_FORMAT)
 *                  "applied" -> u64 LE last position indexed,
 *                               u64 LE log location just after it
 *                  "seq"     -> u64 LE next stream id, u32 LE next tenant id
 *   tenants        't' + tenant name -> u32 LE tenant id
 *   streams        u32 BE tenant id + stream name -> u64 LE stream id,
 *                                                   i64 LE head version
 *   stream_events  u64 BE stream id + u64 BE version -> u64 LE position,
 *                                                       u64 LE location
 *   positions      u64 BE position -> u64 LE location
 *   tenant_events  u32 BE tenant id + u64 BE position -> u64 LE location
 *   event_ids      16-byte id -> u64 LE position, u64 LE location
 *   postings       (MDB_DUPSORT | MDB_DUPFIXED) u32 BE tenant id + u64 BE
 *                  term hash -> sorted duplicates of u64 BE position +
 *                  u64 LE location: one entry per event for its type and
 *                  one per tag. The term hash is XXH3-64 of the type (seed
 *                  EVS_TERM_TYPE) or tag (seed EVS_TERM_TAG). Two terms may
 *                  share a hash: readers check every candidate against its
 *                  record, so a collision costs a read, never a wrong answer.
 *                  An event with a stream also has a posting for its
 *                  category (seed EVS_TERM_CATEGORY): the stream name up
 *                  to the first '-' (all of it without one).
 *   times          i64 BE (sign bit flipped) recorded_at (µs) -> u64 LE
 *                  position: wherever the running maximum of recorded_at
 *                  (over positions 1..p) grows, the first position p with
 *                  that maximum. Events the writer stamps share their
 *                  group's clock read, so that is about one entry per
 *                  group; the map is monotonic even when imported
 *                  recorded_at values are not.
 *   snapshots      only in indexes of earlier versions: moved to
 *                  <dir>/snapshots (same key and value) on the first
 *                  read-write open, then empty. There, one unnamed
 *                  database: tenant name, NUL, stream name, NUL, u64 BE
 *                  version -> i64 LE saved_at, u16 LE schema length,
 *                  schema, NUL, data, NUL. Keyed by names (not ids), and
 *                  apart from the index: the index is deleted and rebuilt
 *                  whenever it cannot be trusted, and snapshots are not
 *                  derived from the log.
 *
 * Events without a stream (stream name length 0, version -1) have no
 * streams / stream_events entries. Events of system streams (names
 * starting with '$': checkpoints) have no tenant_events and no postings
 * entries: no tenant read or query finds them; they are read through
 * their stream.
 *
 * A location is (segment number << 32) | byte offset in the segment.
 * Formats 1 (no postings) and 2 (no categories, times, hidden system
 * events) are upgraded on a read-write open by rebuilding the index from
 * the log.
 */
#define EVS_INDEX_FORMAT 3u
#define EVS_TERM_TYPE 1u
#define EVS_TERM_TAG 2u
#define EVS_TERM_CATEGORY 3u

/* A system stream's name starts with '$' (reserved for the store). */
static inline int evs__is_system_stream(const char *name, size_t len)
{
    return len > 0 && name[0] == '$';
}

/* The category of a stream name: its length up to the first '-'. */
static inline size_t evs__category_len(const char *name, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (name[i] == '-')
            return i;
    return len;
}

static inline uint64_t evs__loc(uint32_t seg, uint32_t off)
{
    return ((uint64_t)seg << 32) | off;
}
static inline uint32_t evs__loc_seg(uint64_t loc) { return (uint32_t)(loc >> 32); }
static inline uint32_t evs__loc_off(uint64_t loc) { return (uint32_t)loc; }

#endif
