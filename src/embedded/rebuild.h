/*
 * rebuild.h -- building the whole index from the log in bulk (rebuild.c).
 *
 * Replaying the log record by record (evs__idx_apply_record) puts every
 * index entry at a random place of its B-tree. A bulk build reads the log
 * once, sorts each sub-database's entries and loads them with MDB_APPEND,
 * which fills the B-tree pages left to right: the same index, several
 * times faster.
 */
#ifndef EVS_EMBEDDED_REBUILD_H
#define EVS_EMBEDDED_REBUILD_H

#include "embedded/embedded.h"

/*
 * Index log records 1..end_position, which lie from location (1, 64) up to
 * end_loc (the location just after record end_position), in s's index.
 *
 * Before: s->env is open read-write with every sub-database empty except
 * `meta` ("format"; "applied" and "seq" may be there and are overwritten)
 * and `snapshots`; no write transaction of this thread is open; the log's
 * records 1..end_position are intact and contiguous (recovery checked
 * their CRCs and decided where the log ends: a torn tail is already cut)
 * and their segments are mapped (evs__seg_map). The writer thread must not
 * commit anything meanwhile.
 *
 * After (returns 0): the index is exactly what replaying records
 * 1..end_position through evs__idx_apply_record into the empty index would
 * have produced: tenant and stream ids in first-seen order from 1, stream
 * heads, stream_events, positions, tenant_events, event_ids, postings
 * (categories, types, tags; a term repeated within one event, or terms
 * whose hashes collide, give one entry), times (running maximum of
 * recorded_at), system streams without tenant_events and postings; meta
 * "applied" = (end_position, end_loc) and "seq". Everything is committed
 * (several transactions, never synced: MDB_NOSYNC as every index write).
 * s->next_stream_id, s->next_tenant_id, s->time_max_us and s->last_stamp
 * (recorded_at of record end_position) are set as the replay sets them;
 * s->head, s->woff and s->next_position are the caller's.
 *
 * While it runs, and after a failure, meta "applied" holds (1, location
 * 0) (when end_position > 0): no record is at location 0, so an open that
 * checks "applied" against the log (recovery.c, index_end_ok) finds it
 * wrong and builds the index again, and position 1, which recovery takes
 * as acknowledged, is in the log. The sub-databases are then partly
 * loaded. The caller should treat a failure like a failed replay (fail
 * the open).
 *
 * Errors: EVS_ECORRUPT (a record out of sequence, a stream version that
 * does not follow its head, an event id indexed twice, a non-empty
 * sub-database: EVS_EINVAL), EVS_ENOMEM, EVS_ENOSPC (index map full or
 * disk full, via evs__mdb_err; also the temporary run files), EVS_EIO,
 * EVS_EBACKEND (other LMDB errors). When the log has several problems the
 * message may name another one than the replay would; the code is the
 * same.
 *
 * Memory: about 470 bytes per event of a window (default 512 Ki events:
 * about 250 MB; EVS_DEBUG_REBUILD_WINDOW=n sets it, 1 .. 2^26), plus the
 * tenant and stream tables (about 80 bytes per stream), whatever the
 * length of the log. A log longer than one window is sorted in runs of
 * one window, written to unlinked temporary files in <dir>/index (about
 * 32 bytes per index entry, some 220 bytes per event, on disk while it
 * runs: 22 GB for 100 M events), then merged (128 KiB per run and
 * sub-database).
 *
 * Threads: a second thread parses each window of the log and sorts it
 * while the calling thread loads (positions and times as they are parsed,
 * the sorted kinds as they are sorted). Only the calling thread writes
 * the index.
 *
 * Progress: when s->base.opts.recovery_progress is set, it is called on
 * the calling thread with (done, end_position): (0, end_position) first,
 * then after each window and during the loads (about every 256 Ki
 * entries), done never decreasing and below end_position, and
 * (end_position, end_position) once, when everything is committed. done
 * is the share of the build's work done, counted in events (the loads of
 * the sorted kinds come after the last window: done is not the number of
 * events fully indexed).
 */
EVS_MUST_USE int evs__idx_bulk_build(evs__emb *s, uint64_t end_position,
                                     uint64_t end_loc);

#endif
