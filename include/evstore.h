/*
 * evstore.h -- the whole public contract of libevstore.
 *
 * evstore is an event store: streams of immutable events, appended with
 * optimistic concurrency (expected versions, as in KurrentDB), numbered by a
 * gapless global position, isolated by tenant, durable on return.
 *
 * This header is the API reference: each function below says its
 * parameters, the error codes it returns, and its lifetime and thread
 * rules. docs/DESIGN.md says how the engine works and why the semantics
 * are what they are, docs/FORMAT.md the embedded store's files,
 * docs/POSTGRES.md the PostgreSQL backend, evstore_command.h and
 * docs/COMMANDS.md the command executor, docs/CLI.md the `evs` tool.
 *
 * Conventions:
 *   - Every function returns 0 (EVS_OK) or a negative EVS_E* code from the
 *     list below; evs_last_error() then holds a one-line detail message for
 *     the calling thread, e.g. "expected version 4 but stream account-7 is
 *     at 6".
 *   - Outputs come first: `T **out` results belong to the caller and are
 *     released with the matching `*_free`/`evs_close` (NULL-safe).
 *   - Strings are NUL-terminated UTF-8. A tenant of NULL or "" is the
 *     default tenant, except where a function documents NULL as "every
 *     tenant" (administration reads).
 *   - Thread safety: one evs_db may be shared by any number of threads;
 *     an evs_iter belongs to one thread at a time.
 *   - A rejected call writes nothing and leaves the store usable.
 */
#ifndef EVSTORE_H
#define EVSTORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && __GNUC__ >= 4
#define EVS_EXTERN __attribute__((visibility("default")))
#else
#define EVS_EXTERN
#endif

#define EVS_VERSION_STRING "0.1.0"

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

/*
 * One list, generated into the enum and evs_strerror(). Codes are stable.
 */
#define EVS_ERRNO_MAP(XX)                                                    \
    XX(ECONFLICT, -1, "append condition failed")                            \
    XX(ENOTFOUND, -2, "not found")                                          \
    XX(EINVAL, -3, "invalid argument")                                      \
    XX(ECORRUPT, -4, "store data is corrupt")                               \
    XX(ENOSPC, -5, "no space left on device")                               \
    XX(EBACKEND, -6, "backend failure")                                     \
    XX(ENOMEM, -7, "out of memory")                                         \
    XX(EIO, -8, "input/output error")                                       \
    XX(EDUPLICATE, -9, "event id already used by a different event")       \
    XX(ETOOBIG, -10, "event or append too large")                           \
    XX(EFORMAT, -11, "unsupported store format version")                    \
    XX(EBUSY, -12, "store is open for writing by another process")          \
    XX(EREADONLY, -13, "store is open read-only")                           \
    XX(ECLOSED, -14, "store is closing or has failed")                      \
    XX(ITEROVER, -15, "end of iteration")                                   \
    XX(EDELETED, -16, "stream is deleted (tombstoned)")

typedef enum evs_errno {
    EVS_OK = 0,
#define EVS__ERRNO_ENUM(name, val, msg) EVS_##name = (val),
    EVS_ERRNO_MAP(EVS__ERRNO_ENUM)
#undef EVS__ERRNO_ENUM
} evs_errno;

/* Static text for an error code ("unknown error" for anything else). */
EVS_EXTERN const char *evs_strerror(int rc);

/*
 * The detail message of the last failed call made by this thread, or ""
 * if none. Valid until the next evs_* call on this thread.
 */
EVS_EXTERN const char *evs_last_error(void);

/* The library version, e.g. "0.1.0". */
EVS_EXTERN const char *evs_version(void);

/* ------------------------------------------------------------------ */
/* Limits (bytes, excluding the NUL)                                  */
/* ------------------------------------------------------------------ */

/* What each name may hold, and what a call does beyond a limit: the
 * functions below, and docs/DESIGN.md, "Data model and semantics". */

#define EVS_MAX_TENANT_LEN 128
#define EVS_MAX_STREAM_LEN 256
#define EVS_MAX_TYPE_LEN 256
#define EVS_MAX_TAG_LEN 256
#define EVS_MAX_TAGS 64
/* Default limit on data + metadata of one event; see evs_open_options. */
#define EVS_DEFAULT_MAX_EVENT_SIZE (1024u * 1024u)
/* Default size of one log segment file. */
#define EVS_DEFAULT_SEGMENT_SIZE (64u * 1024u * 1024u)

/* ------------------------------------------------------------------ */
/* Data model                                                          */
/* ------------------------------------------------------------------ */

/* A 16-byte UUID in network byte order. All zero means "none". */
typedef struct evs_uuid {
    uint8_t bytes[16];
} evs_uuid;

/* 1 if every byte is zero. */
EVS_EXTERN int evs_uuid_is_nil(const evs_uuid *u);
/* A new time-ordered UUID (RFC 9562 version 7). Thread-safe. */
EVS_EXTERN void evs_uuid_generate(evs_uuid *out);
/* Parse the 36-character text form (any case). Returns 0, or EVS_EINVAL
 * (NULL argument, or malformed: the detail message quotes the text). */
EVS_EXTERN int evs_uuid_parse(evs_uuid *out, const char *text);
/* Write the 36-character lowercase text form and a NUL into out. */
EVS_EXTERN void evs_uuid_format(char out[37], const evs_uuid *u);

/* Expected-version sentinels (values as in KurrentDB). An exact expected
 * version is any value >= 0: the version of the stream's last event. */
#define EVS_ANY (-2)           /* no check */
#define EVS_NO_STREAM (-1)     /* the stream must not exist */
#define EVS_STREAM_EXISTS (-4) /* the stream must have at least one event */

typedef enum evs_content_type {
    EVS_CONTENT_JSON = 0,  /* data is one UTF-8 JSON value (object, array or
                              scalar); validated on append; may be empty */
    EVS_CONTENT_BINARY = 1 /* data is opaque bytes */
} evs_content_type;

/*
 * An event to append. Borrowed by evs_append*: nothing is retained after
 * the call returns.
 */
typedef struct evs_event_data {
    evs_uuid id;           /* nil: the store generates a UUIDv7. Ids are
                              unique per store (across tenants) */
    const char *type;      /* required, 1..EVS_MAX_TYPE_LEN bytes */
    const void *data;      /* may be NULL when data_len is 0 */
    size_t data_len;       /* bytes */
    evs_content_type content_type;
    const void *metadata;  /* JSON (object or any value) or NULL */
    size_t metadata_len;   /* bytes; 0 = no metadata */
    const char *const *tags; /* ntags tags, each 1..EVS_MAX_TAG_LEN bytes */
    size_t ntags;            /* 0..EVS_MAX_TAGS; duplicates are rejected;
                                tags starting with '$' are reserved */
    evs_uuid correlation_id; /* nil = none */
    evs_uuid causation_id;   /* nil = none */
    int64_t recorded_at;     /* µs since the Unix epoch; 0 = now */
    /* Crypto-shredding (docs/ERASURE.md). NULL: stored in clear. Else the
     * data subject (e.g. "person-42", 1..EVS_MAX_STREAM_LEN bytes, UTF-8):
     * data (and metadata with EVS_EVENT_ENCRYPT_METADATA) is encrypted
     * under the subject's key in the tenant (XChaCha20-Poly1305, the key
     * made on the subject's first encrypted append), and the event gets
     * the tag "$subject:SUBJECT" (queryable; type, stream, version,
     * position and the other tags stay in clear). evs_forget destroys the
     * key: from then on the event reads back redacted (EVS_EVENT_REDACTED),
     * and an append under the forgotten subject fails with EVS_EINVAL.
     * JSON data is validated and tags are derived before encryption. */
    const char *subject;
    unsigned flags;          /* EVS_EVENT_ENCRYPT_METADATA (needs subject) */
} evs_event_data;

/* evs_event_data.flags: encrypt the metadata too (needs a subject). */
#define EVS_EVENT_ENCRYPT_METADATA 0x1u

/* evs_event.flags */
/* Stored encrypted under a subject's key (it has the tag
 * "$subject:SUBJECT"); data and metadata are the plaintext when readable. */
#define EVS_EVENT_ENCRYPTED 0x1u
/* Encrypted, content withheld: data (and metadata, if it was encrypted)
 * is empty (""), because the subject was forgotten (evs_forget), the key
 * store has no key for it, or the key does not open the stored envelope
 * (then EVS_EVENT_DAMAGED too). content_type is the original one;
 * everything else is as stored. */
#define EVS_EVENT_REDACTED 0x2u
/* With EVS_EVENT_REDACTED: the subject's key exists but does not open the
 * envelope (a damaged or tampered record). */
#define EVS_EVENT_DAMAGED 0x4u

/*
 * A stored event, as returned by iterators. Every pointer is borrowed from
 * the iterator (zero-copy from the log where possible) and is valid until
 * the next evs_iter_next() or evs_iter_free() on that iterator. Strings are
 * NUL-terminated; data and metadata are followed by a NUL byte that is not
 * counted in their lengths.
 */
typedef struct evs_event {
    uint64_t position;       /* global position, 1-based, gapless */
    int64_t stream_version;  /* 0-based index in the stream; EVS_NO_STREAM
                                (-1) for an event without a stream */
    const char *tenant;      /* "" for the default tenant */
    const char *stream;      /* "" for an event without a stream (DCB) */
    const char *type;
    evs_uuid id;
    evs_uuid correlation_id; /* nil = none */
    evs_uuid causation_id;   /* nil = none */
    int64_t recorded_at;     /* µs since the Unix epoch */
    evs_content_type content_type;
    const void *data;
    size_t data_len;
    const void *metadata;    /* "" when the event has none */
    size_t metadata_len;
    const char *const *tags;
    size_t ntags;
    unsigned flags;          /* EVS_EVENT_ENCRYPTED, EVS_EVENT_REDACTED,
                                EVS_EVENT_DAMAGED; 0 for an event in clear */
} evs_event;

/* ------------------------------------------------------------------ */
/* Opening and closing                                                 */
/* ------------------------------------------------------------------ */

typedef struct evs_db evs_db;

#define EVS_OPEN_CREATE 0x1u   /* create the store if it does not exist */
#define EVS_OPEN_READONLY 0x2u /* no appends; no recovery writes; works on a
                                  store this user cannot write (evs_open) */

/* Version 2 added snapshot_keep, version 3 the recovery callbacks, version
 * 4 busy_timeout_ms, version 5 read_replica_uri; version 1, 2, 3 and 4
 * structs are still accepted (their missing fields take the defaults). */
#define EVS_OPEN_OPTIONS_VERSION 5
typedef struct evs_open_options {
    unsigned version;        /* EVS_OPEN_OPTIONS_VERSION (1 to 5) */
    unsigned flags;          /* EVS_OPEN_* */
    uint32_t segment_size;   /* bytes per log segment; 0 = default. Used
                                only when creating a store; 1 MiB..1 GiB */
    uint32_t max_event_size; /* bytes of data + metadata of one event; 0 =
                                default (1 MiB, or segment_size - 64 KiB if
                                smaller); at most segment_size - 64 KiB */
    int validate_json;       /* 1 (default): reject invalid JSON data and
                                metadata; 0: store the bytes unchecked */
    uint32_t snapshot_keep;  /* snapshots kept per stream (the newest ones);
                                0 = default (3); 1..1000 */
    /* Embedded store, version 3. Called during evs_open, on the opening
     * thread, for what recovery does beyond catching the index up: the
     * index rebuilt from the log and why, a torn tail cut, files set aside
     * (one line each, no newline; the text is valid during the call).
     * NULL: not told. */
    void (*recovery_notice)(void *ctx, const char *line);
    /* Embedded store, version 3. Called now and then while the index is
     * rebuilt from the log: done and total are events. NULL: not told. */
    void (*recovery_progress)(void *ctx, uint64_t done, uint64_t total);
    void *recovery_ctx;      /* passed to both callbacks */
    /* Embedded store, version 4: milliseconds a read-write open waits for
     * the store's writer lock while another process has the store open
     * for writing, as SQLite's busy_timeout (sqlite3_busy_timeout) waits
     * for its database lock. 0 (default): do not wait, fail at once with
     * EVS_EBUSY. Otherwise evs_open retries every 1 ms, backing off to
     * 20 ms, until the lock is free or the time (CLOCK_MONOTONIC) is up,
     * then fails with EVS_EBUSY and a message saying how long it waited.
     * The wait is for the other process to close the store; it is not a
     * queue (no order among waiters). EVS_OPEN_READONLY opens never
     * wait (evs_open, "Read-only stores"). The PostgreSQL backend
     * ignores it: the server serialises writers from any number of
     * processes itself. */
    uint32_t busy_timeout_ms;
    /* PostgreSQL, version 5: NULL (default), or the libpq URI of a hot
     * standby of the primary that uri names (streaming replication; e.g.
     * "postgresql:///db?host=/run/standby"), copied at open. Reads go to
     * it: iterators (evs_read_stream, _streams, _all, _log, _query,
     * tracking reads and subscriptions) and the small reads (stream
     * versions, heads, tokens, snapshots loaded); appends, checkpoints,
     * snapshot saves, stats, verify and the explore functions stay on
     * the primary. Read-your-writes per handle: a read that would miss an
     * append of this handle (the standby has not replayed it yet) is
     * served by the primary instead, so it never waits for the standby;
     * other writers' appends show up on the standby after its replay lag.
     * Tracking reads on the standby poll its head instead of LISTEN
     * (which a standby does not deliver): woken within 1 ms of a commit
     * while commits stream, within 50 ms after a quiet spell, plus the
     * replay lag (docs/POSTGRES.md, "Reads from a replica"). The open
     * fails with EVS_EINVAL when uri is not a PostgreSQL URI, and with
     * EVS_EBACKEND when the standby is unreachable, not a copy of this
     * server (another system identifier), or has not replayed the
     * primary's current schema within 10 s. */
    const char *read_replica_uri;
} evs_open_options;
#define EVS_OPEN_OPTIONS_INIT                                                \
    { EVS_OPEN_OPTIONS_VERSION, EVS_OPEN_CREATE, 0, 0, 1, 0, NULL, NULL, NULL, 0, NULL }
#define EVS_DEFAULT_SNAPSHOT_KEEP 3

/*
 * Open the store named by uri: a directory path for the embedded backend
 * (created when EVS_OPEN_CREATE is set), or a libpq connection URI
 * ("postgresql://..." or "postgres://...", e.g.
 * "postgresql:///db?host=/run/postgresql") for the PostgreSQL backend,
 * which keeps everything in the database's schema "evstore", applies its
 * migrations on a read-write open and refuses a schema newer than this
 * library (docs/POSTGRES.md). Every function below behaves the same on
 * both backends.
 *
 * Opening the embedded store read-write recovers it (docs/DESIGN.md,
 * "Durability"): the log is the truth. An append that never finished (a
 * torn tail of the last log segment, never acknowledged) is cut; an
 * acknowledged event is never cut: damage to one is EVS_ECORRUPT, naming
 * the record, and the store is left as it is. The index is caught up from
 * the log, or, when it cannot be trusted (the store was not closed before
 * an OS crash or power loss, it is a copy made file by file, or it was
 * made by an older evstore), deleted unread and rebuilt from the log
 * (snapshots live apart and survive; a copy starts without them).
 * recovery_notice says what was done.
 *
 * Only one process may open a store for writing (the embedded store's
 * <dir>/LOCK, an flock); a second read-write open waits up to
 * busy_timeout_ms for it (default 0: it fails at once with EVS_EBUSY).
 * When several processes must write, use the PostgreSQL backend, or one
 * process that writes for the others. EVS_OPEN_READONLY opens
 * take no lock and may run beside the writer (they see what it has
 * committed), except on a store they cannot write (below). A read-only open never recovers, with one exception, as
 * SQLite's readers roll back a hot journal: when the index cannot be
 * trusted and no writer holds the store, it first lets a read-write open
 * rebuild the index (and fails as that open fails: e.g. EVS_ECORRUPT when
 * the log is damaged).
 *
 * Read-only stores (docs/OPERATIONS.md): EVS_OPEN_READONLY works on a store
 * this process cannot write (another user's, `chmod -R a-w`, a read-only
 * mount), with what it needs only read: every read, stats and verify.
 * LMDB's readers write a lock file (index/lock.mdb); when it cannot be
 * written (EACCES, EROFS) the open reads without it (MDB_NOLOCK), which is
 * safe only with no writer, so it holds <dir>/LOCK shared until closed:
 * it fails with EVS_EBUSY when a writer has the store open, and a
 * read-write open meanwhile waits for it (busy_timeout_ms) or fails with
 * EVS_EBUSY. Such a handle cannot wait for commits: a blocking read
 * (evs_read_tracking with a timeout, evs_subscribe) returns the events
 * there are, then EVS_EBACKEND saying why. An index that cannot be trusted
 * is not rebuilt there: EVS_EREADONLY, saying that a read-write open by a
 * user who can write the store must rebuild it. A read-write open of such
 * a store fails with EVS_EREADONLY.
 *
 * Returns EVS_EINVAL (bad uri/options, path is a file, store missing and
 * no EVS_OPEN_CREATE, a non-empty directory that is not a store, a
 * PostgreSQL URI given to a library built with -DEVS_WITH_POSTGRES=OFF),
 * EVS_EBUSY
 * (another process has the store open for writing and did not close it
 * within busy_timeout_ms; the message says how long this open waited; or,
 * read-only, it cannot read beside a writer, above),
 * EVS_EREADONLY (the store cannot be written by this process: a
 * read-write open, or a read-only open whose index would need a rebuild),
 * EVS_EFORMAT (written by
 * a newer evstore), EVS_ECORRUPT (damage to acknowledged records found
 * while recovering: the message names the segment, offset and position,
 * and nothing was cut; run evs_verify for the full report), EVS_EIO,
 * EVS_ENOSPC (no room to recover or rebuild the index: free space and open
 * again; nothing was lost), EVS_ENOMEM, EVS_EBACKEND (PostgreSQL: server unreachable,
 * authentication failed, a schema newer than this library or not
 * evstore's; the message has the server's words). On error *out is NULL.
 */
EVS_EXTERN int evs_open(evs_db **out, const char *uri,
                        const evs_open_options *opts);

/*
 * Close the store. Waits for appends in flight; every iterator must have
 * been freed. NULL-safe. Returns 0, EVS_EIO if the final flush failed, or
 * EVS_ENOSPC (embedded: no room to record the clean close; nothing is
 * lost, the next read-write open rebuilds the index from the log). The
 * handle is freed in every case.
 */
EVS_EXTERN int evs_close(evs_db *db);

/* ------------------------------------------------------------------ */
/* Appending                                                           */
/* ------------------------------------------------------------------ */

/* The outcome of appending to one stream. */
typedef struct evs_append_result {
    int status;              /* 0, or this part's error (EVS_ECONFLICT) */
    int64_t stream_version;  /* success: version of the last event
                                written; conflict: the stream's actual
                                version (EVS_NO_STREAM when absent) */
    int64_t first_version;   /* version of the first event written */
    uint64_t first_position; /* global position of the first event */
    uint64_t last_position;  /* global position of the last event */
} evs_append_result;

/*
 * Append 1..nevents events to one stream, atomically, if the stream's
 * version matches expected_version (EVS_ANY, EVS_NO_STREAM,
 * EVS_STREAM_EXISTS or an exact version >= 0; semantics as in KurrentDB).
 *
 * Returns only after the events are durable (fdatasync of the log).
 * Concurrent appends from many threads are committed in groups by one
 * writer; a failed condition fails only its own append.
 *
 * Idempotency: if every event carries an id and the same events (same ids,
 * same order, same stream, type and data) are already stored, the original
 * result is returned and nothing is written, whatever expected_version is.
 *
 * out may be NULL. Returns 0, EVS_ECONFLICT (out->stream_version holds the
 * actual version), EVS_EDUPLICATE (an id is used by a different event, or
 * only some of the ids are stored), EVS_EINVAL (bad name, type, tag, JSON,
 * nevents == 0, the same id twice in this append, a stream name starting
 * with '$': reserved for system streams), EVS_ETOOBIG (an event
 * over max_event_size, or the append does not fit in one log segment),
 * EVS_EREADONLY, EVS_ECLOSED (closing, or a failed log write/sync made the
 * store refuse appends: reopen it), EVS_ENOSPC (embedded: no room to
 * reserve index space before the write, so nothing was written and the
 * store stays usable: retry once space is free; when the disk fills half
 * way through a write instead, the outcome is unknown as for EVS_EIO),
 * EVS_EIO (the append's outcome is unknown: retry with the same ids; the
 * store refuses appends until reopened), EVS_ENOMEM.
 */
EVS_EXTERN int evs_append(evs_append_result *out, evs_db *db,
                          const char *tenant, const char *stream,
                          int64_t expected_version,
                          const evs_event_data *events, size_t nevents);

/* One part of a multi-stream append. */
typedef struct evs_stream_append {
    const char *stream;
    int64_t expected_version; /* as for evs_append */
    const evs_event_data *events;
    size_t nevents; /* >= 1 */
} evs_stream_append;

/*
 * Atomic multi-stream append (EventCore's multi-stream command write):
 * all parts are written or none. A stream may appear in one part only.
 * Events are numbered in part order.
 *
 * out: array of nparts results (may be NULL). On EVS_ECONFLICT every part
 * whose condition failed has status EVS_ECONFLICT and its actual version,
 * and the detail message lists every failing part. Other errors as for
 * evs_append.
 */
EVS_EXTERN int evs_append_multi(evs_append_result *out, evs_db *db,
                                const char *tenant,
                                const evs_stream_append *parts,
                                size_t nparts);

/* ------------------------------------------------------------------ */
/* Dynamic consistency boundaries (DCB, dcb.events)                    */
/* ------------------------------------------------------------------ */

/*
 * One query item: matches an event whose type is one of `types` (ntypes
 * == 0: any type) AND that carries every tag in `tags` (ntags == 0: any
 * tags). An item with neither types nor tags matches every event.
 *
 * Stream membership is queryable like a tag: the tag "$stream:NAME"
 * matches the events of stream NAME (no tag is stored for it; the stream
 * index answers); NAME may be up to EVS_MAX_STREAM_LEN bytes. The tag
 * "$category:NAME" (EVS_CATEGORY_TAG_PREFIX) matches the events of every
 * stream of category NAME (no '-' in NAME). Other tags starting with '$'
 * are reserved. The same type or tag twice in one item
 * is allowed (it changes nothing).
 */
typedef struct evs_query_item {
    const char *const *types; /* ntypes names, each 1..EVS_MAX_TYPE_LEN */
    size_t ntypes;
    const char *const *tags;  /* ntags tags, each 1..EVS_MAX_TAG_LEN */
    size_t ntags;
} evs_query_item;

/*
 * A DCB query: its items are OR'ed. nitems == 0 is the "all" query: it
 * matches every event (as UmaDB's query without items). Limits: at most
 * EVS_MAX_QUERY_ITEMS items and EVS_MAX_QUERY_TERMS types + tags in all.
 */
typedef struct evs_query {
    const evs_query_item *items;
    size_t nitems;
} evs_query;

#define EVS_MAX_QUERY_ITEMS 1024
#define EVS_MAX_QUERY_TERMS 4096
/* The tag prefix that selects a stream's events in a query item. */
#define EVS_STREAM_TAG_PREFIX "$stream:"

/*
 * An append condition (DCB): the append fails with EVS_ECONFLICT if any
 * event of the append's tenant matching fail_if_events_match has a
 * position > after. after == 0 checks the whole store. An after beyond
 * the head is allowed (nothing can match yet).
 */
typedef struct evs_append_condition {
    evs_query fail_if_events_match;
    uint64_t after; /* exclusive; a consistency marker (evs_iter_marker) */
} evs_append_condition;

#define EVS_MAX_CONDITIONS 64
#define EVS_MAX_TAG_FIELDS 64

/* Version 2 added the checkpoint fields, version 3 checkpoint_flags;
 * version 1 and 2 structs are still accepted. */
#define EVS_APPEND_REQUEST_VERSION 3
/*
 * The general append: stream parts with expected versions, DCB append
 * conditions and payload-derived tags, all checked and written as one
 * atomic step inside the group commit.
 */
typedef struct evs_append_request {
    unsigned version;       /* EVS_APPEND_REQUEST_VERSION (1, 2 or 3) */
    const char *tenant;     /* NULL or "": the default tenant */
    /* 1..65536 parts. A part whose stream is NULL holds events that
     * belong to no stream (pure DCB events, found by type and tags only);
     * its expected_version must be EVS_ANY, and at most one part may be
     * such a part. Its result has stream_version and first_version
     * EVS_NO_STREAM. */
    const evs_stream_append *parts;
    size_t nparts;
    /* 0..EVS_MAX_CONDITIONS conditions, all of which must hold. */
    const evs_append_condition *conditions;
    size_t nconditions;
    /*
     * Payload predicates: for each name here (1..254 bytes of UTF-8, not
     * starting with '$'), every JSON event whose data
     * is an object with a top-level member of that name gets the tag
     * "NAME:VALUE": a string's unescaped text, or the JSON text of a
     * number, true or false. null, objects, arrays and absent members
     * give no tag. A derived tag equal to an explicit one is kept once.
     * A derived tag longer than EVS_MAX_TAG_LEN, a string value holding
     * U+0000, or more than EVS_MAX_TAGS tags on one event, is EVS_EINVAL.
     */
    const char *const *tag_fields;
    size_t ntag_fields; /* 0..EVS_MAX_TAG_FIELDS */
    /*
     * A checkpoint update committed atomically with the events (exactly-
     * once projections into the same store): NULL, or the name of a
     * checkpoint of this tenant (see evs_checkpoint_set) to move to
     * checkpoint_token. The rules of evs_checkpoint_set apply: it may not
     * move backward (EVS_EINVAL), nor beyond the head before this append
     * (EVS_EINVAL); the same token is allowed. If another writer moves it
     * between the check and the commit, the whole append fails with
     * EVS_ECONFLICT (the message says so) and nothing is written. A retry
     * (the first event's id is stored) returns the original result,
     * wherever the checkpoint is now. Costs one more (small) event.
     */
    const char *checkpoint;
    uint64_t checkpoint_token;
    /* Version 3: EVS_CHECKPOINT_* flags for the checkpoint; 0 = the rules
     * above. Unknown bits, or flags without a checkpoint, are EVS_EINVAL. */
    unsigned checkpoint_flags;
} evs_append_request;
#define EVS_APPEND_REQUEST_INIT                                              \
    { EVS_APPEND_REQUEST_VERSION, NULL, NULL, 0, NULL, 0, NULL, 0, NULL, 0, 0 }

/*
 * checkpoint_flags (evs_append_request, evs_checkpoint_set_ex): the token
 * is a position in another source, not in this store (UmaDB's
 * tracking_info: the position of the upstream event a processor handled).
 * It is not bounded by this store's head, and it must move strictly
 * forward: a token at or below the stored one fails with EVS_ECONFLICT
 * (the message gives both; UmaDB's "non-increasing tracking position"),
 * and nothing is written. A retry (the first event's id is stored) still
 * returns the original result.
 */
#define EVS_CHECKPOINT_EXTERNAL 0x1u

/*
 * Append as described by req (the one append path: evs_append and
 * evs_append_multi are this without conditions).
 *
 * results: nparts results or NULL, as for evs_append_multi. conflicts:
 * nconditions positions or NULL; on return, conflicts[i] is the position
 * of the first event after conditions[i].after that matches its query,
 * or 0 when that condition held. On EVS_ECONFLICT, a failed expected
 * version shows as results[p].status == EVS_ECONFLICT and a failed
 * condition as conflicts[i] != 0; both are checked, so both may show.
 *
 * Every expected version and every condition is checked, atomically with
 * the write, against the committed store and every append committed before
 * this one in the same group: two concurrent appends with the same
 * condition never both succeed. A retry (its first event id is stored) is
 * answered from the stored events before any condition is checked, as
 * for evs_append.
 *
 * Returns 0; EVS_ECONFLICT when any expected version or condition failed
 * (the detail message lists every failed one, e.g. "condition 0: event at
 * position 17 matches fail_if_events_match (after 12)"); EVS_EINVAL (bad
 * query, tag, tag field, a streamless part with an expected version, and
 * everything evs_append_multi rejects); other codes as evs_append.
 * Semantics: dcb.events (append condition), KurrentDB (expected version),
 * EventCore (multi-stream).
 */
EVS_EXTERN int evs_append_ex(evs_append_result *results, uint64_t *conflicts,
                             evs_db *db, const evs_append_request *req);

/*
 * The DCB append of the specification: 1..nevents events that belong to
 * no stream, appended if `condition` (NULL: none) holds. out (may be
 * NULL) gets the positions; *conflict (may be NULL) the first offending
 * position on EVS_ECONFLICT, else 0. Errors as evs_append_ex.
 */
EVS_EXTERN int evs_dcb_append(evs_append_result *out, uint64_t *conflict,
                              evs_db *db, const char *tenant,
                              const evs_event_data *events, size_t nevents,
                              const evs_append_condition *condition);

/*
 * Restore events read with evs_read_log (an import of an export): as
 * evs_append_multi (expected versions, idempotency, atomicity, errors),
 * except that a part may also be a system stream as evs_read_log returns
 * them: a checkpoint stream "$checkpoint-NAME" (NAME as
 * evs_checkpoint_set takes it), whose every event must have type
 * "$checkpoint" and 8 bytes of EVS_CONTENT_BINARY data; a stream's
 * metadata stream "$$STREAM" (events of type "$metadata" whose JSON data
 * is an object, "$maxCount", "$maxAge" and "$tb" integers >= 0); a
 * tenant's "$lifecycle" stream (type "$lifecycle", binary records of
 * 33..288 bytes as evs_read_log returns them). Anything else starting
 * with '$' is EVS_EINVAL. The store's own types may be restored where
 * the store writes them: "$metadata" in a "$$STREAM" part or among events
 * of no stream, "$streamDeleted" as the only event of a part of the
 * stream it deletes (it is stored as that stream's tombstone, see
 * evs_stream_tombstone); elsewhere EVS_EINVAL. The metadata rules refer
 * to the source's stream versions (truncate_before): docs/CLI.md,
 * "import", says what that means for an import. The checkpoint rules of
 * evs_checkpoint_set (never backward, never beyond the head) are not
 * applied: the events are the source store's history, and their tokens
 * mean the source's positions, so restore them only into a store whose
 * positions are the source's (an empty store, appended in log order;
 * `evs import` does so and skips them otherwise). A part's stream NULL
 * holds events of no stream, as in evs_append_ex. JSON data and metadata
 * are not checked as JSON (whatever validate_json says): they are what a
 * store accepted, and one opened with validate_json off may hold JSON
 * events that are not valid JSON; they are kept byte for byte.
 */
EVS_EXTERN int evs_restore_append(evs_append_result *out, evs_db *db,
                                  const char *tenant,
                                  const evs_stream_append *parts, size_t nparts);

/* ------------------------------------------------------------------ */
/* Reading                                                             */
/* ------------------------------------------------------------------ */

typedef struct evs_iter evs_iter;

typedef enum evs_direction {
    EVS_FORWARD = 0,
    EVS_BACKWARD = 1
} evs_direction;

/* from_version for a backward read that starts at the newest event. */
#define EVS_END (-1)

/*
 * Read a stream. Forward: events with version >= from_version (>= 0),
 * oldest first. Backward: events with version <= from_version (or from
 * the newest when from_version is EVS_END), newest first. At most limit
 * events (0 = no limit). The iterator is a snapshot: it sees the events
 * committed when it was created and never blocks appends.
 *
 * A stream that does not exist yields no events (not an error; use
 * evs_stream_version to tell). Returns 0, EVS_EINVAL, EVS_ENOMEM,
 * EVS_EBACKEND.
 */
EVS_EXTERN int evs_read_stream(evs_iter **out, evs_db *db,
                               const char *tenant, const char *stream,
                               int64_t from_version, evs_direction dir,
                               uint64_t limit);

/* One stream of evs_read_streams. */
typedef struct evs_stream_read {
    const char *stream;   /* 1..EVS_MAX_STREAM_LEN bytes */
    int64_t from_version; /* >= 0: events with version >= from_version */
} evs_stream_read;

#define EVS_MAX_READ_STREAMS 65536

/*
 * Read several streams of one tenant forward, from one snapshot (one
 * index transaction: the versions seen are consistent with each other),
 * stream by stream in the order given; each event's `stream` says whose
 * it is. A stream that does not exist yields nothing. For the command
 * executor and anyone who folds several streams into one decision
 * (EventCore's multi-stream read). 1..EVS_MAX_READ_STREAMS streams; the
 * same stream twice is EVS_EINVAL. Returns 0, EVS_EINVAL (NULL argument,
 * bad name, from_version < 0, nstreams 0 or too many, a duplicate),
 * EVS_ENOMEM, EVS_EBACKEND.
 */
EVS_EXTERN int evs_read_streams(evs_iter **out, evs_db *db, const char *tenant,
                                const evs_stream_read *streams, size_t nstreams);

/*
 * Read $all forward: events with global position >= from_position (0 or 1
 * = from the start), in position order, at most limit (0 = no limit).
 * tenant: that tenant's events only (positions then have gaps, which hold
 * other tenants' events); NULL: every tenant's (administration). A snapshot
 * like evs_read_stream; a tenant with no events yields none. Semantics of
 * $all as in KurrentDB (from_position inclusive), except that events of
 * system streams (checkpoints, names starting with '$') are never
 * returned: they are read through their stream. Stream metadata hides
 * events here as in every read, and a metadata change or soft delete
 * shows as an event without a stream of type "$metadata", a hard delete
 * as its tombstone, type "$streamDeleted" ("Stream lifecycle" below).
 * Returns 0, EVS_EINVAL
 * (out or db NULL, bad tenant name), EVS_ENOMEM, EVS_EBACKEND.
 *
 * Long reads (embedded store; every iterator): the read moves on to newer
 * index snapshots every ~1,000 events or 10 ms, and returns exactly what
 * its first snapshot held, so that a writer beside it can reuse the index
 * pages it frees. An iterator that is neither read to its end nor freed
 * keeps its last snapshot and with it every page freed since: free
 * iterators you stop reading (docs/OPERATIONS.md, "The index file").
 */
EVS_EXTERN int evs_read_all(evs_iter **out, evs_db *db, const char *tenant,
                            uint64_t from_position, uint64_t limit);

/*
 * Read the log: every event of the store, of every tenant and of the
 * system streams too (checkpoints: "$checkpoint-NAME" streams, type
 * "$checkpoint", 8 bytes of binary data, the token little-endian), with
 * global position >= from_position (0 or 1 = from the start), in position
 * order, at most limit (0 = no limit). What `evs export` writes and
 * evs_restore_append takes back: a store's events read this way and
 * appended in that order to an empty store give a store whose log reads
 * the same, position for position, as long as no stream metadata hides
 * events and no scavenge removed any (the read honours the rules and
 * skips the holes, so the copy's positions, and the versions of
 * truncated streams, are renumbered: docs/CLI.md, "export and import").
 * The system streams of stream metadata ("$$NAME", "$lifecycle") are
 * returned too. A snapshot like evs_read_all. Returns
 * 0, EVS_EINVAL (out or db NULL), EVS_ENOMEM, EVS_EBACKEND.
 */
EVS_EXTERN int evs_read_log(evs_iter **out, evs_db *db, uint64_t from_position,
                            uint64_t limit);

/*
 * Next event of the iterator. Returns 0 and sets *ev (borrowed: valid
 * until the next call on this iterator or evs_iter_free), EVS_ITEROVER at
 * the end (and on every later call), EVS_EINVAL (ev or it NULL), or
 * EVS_ECORRUPT (a record failed its check; the message gives its segment,
 * offset and "position N"). One thread at a time per iterator.
 */
EVS_EXTERN int evs_iter_next(const evs_event **ev, evs_iter *it);

/* Release an iterator. NULL-safe. */
EVS_EXTERN void evs_iter_free(evs_iter *it);

/*
 * Read the events of `tenant` that match `query` (DCB read). Forward:
 * events with position > position_bound (0 = from the start), oldest
 * first. Backward: events with position < position_bound (0 = from the
 * newest), newest first. At most limit events (0 = no limit). A snapshot
 * like evs_read_stream. Only the postings of the query's types and tags
 * are touched, never the whole log.
 *
 * Returns 0, EVS_EINVAL (NULL out/db/query, bad tenant, type or tag, too
 * many items or terms, unknown direction), EVS_ENOMEM, EVS_EBACKEND.
 */
EVS_EXTERN int evs_read_query(evs_iter **out, evs_db *db, const char *tenant,
                              const evs_query *query, uint64_t position_bound,
                              evs_direction dir, uint64_t limit);

/*
 * The consistency marker of a read (DCB): the position of the newest event
 * the read has considered, to pass as evs_append_condition.after. Once
 * evs_iter_next returned EVS_ITEROVER, every event up to it that matches
 * was returned. For a forward read stopped by its limit (it returned
 * `limit` events, whether or not more would match) that is the last event
 * returned; otherwise (exhausted, or backward) it is the store's head
 * when the read began (the global head position, whatever the tenant:
 * positions are global), also when nothing matched. Before the end of a
 * forward read it is the last event returned so far, or, before the first,
 * the read's lower bound (capped at that head). Works for every iterator.
 * Returns 0 or EVS_EINVAL (NULL argument).
 */
EVS_EXTERN int evs_iter_marker(uint64_t *out, const evs_iter *it);

/*
 * The version of the stream's last event, or EVS_NO_STREAM (-1) when the
 * stream has no events (returns 0 in both cases). Reads committed state,
 * never blocks appends. Returns EVS_EINVAL (NULL out/db, bad tenant or
 * stream name) or EVS_EBACKEND otherwise.
 */
EVS_EXTERN int evs_stream_version(int64_t *out, evs_db *db,
                                  const char *tenant, const char *stream);

/*
 * The head position (the tracking token of the newest committed event):
 * of the whole store when tenant is NULL, else of that tenant's newest
 * event. 0 when empty. Returns 0, EVS_EINVAL (NULL out/db, bad tenant
 * name), EVS_EBACKEND.
 */
EVS_EXTERN int evs_head_position(uint64_t *out, evs_db *db,
                                 const char *tenant);

typedef struct evs_stats {
    uint64_t events;        /* events in the store, system streams'
                               (checkpoints) included */
    uint64_t streams;       /* streams with at least one event (events
                               without a stream are in no stream; system
                               streams included) */
    uint64_t tenants;       /* tenants with at least one event */
    uint64_t head_position; /* global head */
    uint64_t log_bytes;     /* bytes of log segment files on disk */
    uint64_t index_bytes;   /* bytes of the index files on disk */
    uint64_t segments;      /* number of log segments */
} evs_stats;

/*
 * Counts and sizes of the store, from one snapshot (appends may continue).
 * Returns 0, EVS_EINVAL (NULL argument), EVS_EBACKEND.
 */
EVS_EXTERN int evs_stats_get(evs_stats *out, evs_db *db);

/* Buckets of the evs_metrics histograms. */
#define EVS_METRICS_BUCKETS 24
/*
 * What this handle's appends did since evs_open, for monitoring (the
 * server's /metrics). Counters only grow; a histogram's bucket i counts
 * the observations in (bound(i-1), bound(i)] (not cumulative), the last
 * bucket also everything above.
 */
#define EVS_METRICS_VERSION 1
typedef struct evs_metrics {
    unsigned version;          /* EVS_METRICS_VERSION: set by the caller */
    uint64_t appends;          /* append requests committed (each evs_append*,
                                  evs_dcb_append, evs_restore_append call
                                  that returned 0, retries answered from
                                  stored events included, and each
                                  evs_checkpoint_set* that wrote) */
    uint64_t events;           /* events those appends wrote (a checkpoint's
                                  own event included; a retry writes none) */
    uint64_t conflicts;        /* append requests (evs_checkpoint_set_ex
                                  calls included) refused with EVS_ECONFLICT */
    uint64_t groups;           /* group commits that wrote events (embedded:
                                  one log write and one fdatasync each, one
                                  more when the log moves to a new segment
                                  mid-group; PostgreSQL: one transaction
                                  each) */
    /* Append requests per group (those it refused included): bound(i) =
     * 2^i requests. */
    uint64_t group_size_hist[EVS_METRICS_BUCKETS];
    uint64_t syncs;            /* durability waits: embedded, fdatasync
                                  calls of the log; PostgreSQL, COMMITs of
                                  append transactions (an append committed
                                  alone is one statement whose commit is
                                  implicit: its whole round trip counts) */
    uint64_t sync_ns;          /* total nanoseconds spent in them */
    /* Their latency: bound(i) = 2^i microseconds (1 µs .. ~8.4 s). */
    uint64_t sync_hist[EVS_METRICS_BUCKETS];
} evs_metrics;

/*
 * Fill *out (out->version must be EVS_METRICS_VERSION) with this
 * handle's counters. Thread-safe, lock-free (relaxed atomic reads: the
 * counters may be a few appends apart from each other), never blocks
 * appends. Returns 0, EVS_EINVAL (NULL argument, unknown version).
 */
EVS_EXTERN int evs_metrics_get(evs_metrics *out, evs_db *db);

/*
 * Verify the store: every log record's CRC, contiguous positions, and the
 * index against the log (every entry present and pointing at the right
 * record, no extra entries). cb (may be NULL) is called once per problem
 * with a one-line description naming the segment, offset and "position N"
 * (at most 1000 calls). checked (may be NULL) receives the number of log
 * records (= events) checked. Runs on a snapshot: appends may continue
 * (the embedded store checks the events up to the head it started at, as
 * in one snapshot, while it renews its index snapshot as long reads do,
 * evs_read_all). cb runs on the calling thread, between verify's reads
 * of the index, never inside one (the embedded store holds the problems
 * it finds until it is out of the index, at most about 1,000 records
 * later): cb may read the store and append to it. Returns 0 when clean, EVS_ECORRUPT when any
 * problem was found, EVS_EINVAL (db NULL), EVS_EBACKEND (the index could
 * not be read). May take seconds per million events: every record is read
 * and CRC-checked.
 */
typedef void (*evs_verify_fn)(void *ctx, const char *problem);
EVS_EXTERN int evs_verify(uint64_t *checked, evs_db *db, evs_verify_fn cb,
                          void *ctx);

/*
 * evs_verify, telling progress (for a progress bar): progress (may be
 * NULL) is called on the calling thread, with the same ctx as cb, as
 * done of total events are checked; total is the store's head position
 * when the check began. Embedded: every 65,536 records and at the end.
 * PostgreSQL: the check is a few statements over the whole table, and
 * done advances by a share of total after each. Errors as evs_verify.
 */
typedef void (*evs_progress_fn)(void *ctx, uint64_t done, uint64_t total);
EVS_EXTERN int evs_verify_ex(uint64_t *checked, evs_db *db, evs_verify_fn cb,
                             evs_progress_fn progress, void *ctx);

/* ------------------------------------------------------------------ */
/* Stream lifecycle: metadata, deletion, scavenge                      */
/* ------------------------------------------------------------------ */

/*
 * A stream's metadata (KurrentDB's stream metadata: $maxCount, $maxAge,
 * $tb and custom keys). The rules decide which of the stream's events
 * reads return; they never change the stream's version numbering, and an
 * event they hide stays stored until evs_scavenge removes it (so raising
 * max_count or lowering truncate_before before a scavenge shows the
 * events again, as in KurrentDB). An event of version v of a stream whose
 * last version is h is read iff
 *     v >= truncate_before                  (when truncate_before > 0)
 * and v > h - max_count                     (when max_count > 0)
 * and recorded_at >= now - max_age_s * 10^6 (when max_age_s > 0).
 * The rules apply at once, to every read of the stream's events:
 * evs_read_stream, evs_read_streams, evs_aggregate_load, evs_read_all,
 * evs_read_log, evs_read_query, evs_read_tracking and subscriptions,
 * evs_read_event (docs/DESIGN.md, "Stream lifecycle"). They do not apply
 * to expected versions (which see the stream's version) nor to DCB
 * append conditions (which see every event still stored: a hidden event
 * may still fail a condition until it is scavenged, never the reverse).
 */
typedef struct evs_stream_metadata {
    int64_t max_count;       /* > 0: only the newest max_count events are
                                read; 0: no limit */
    int64_t max_age_s;       /* > 0: events recorded more than this many
                                seconds ago are not read; 0: no limit */
    int64_t truncate_before; /* > 0: events with a lower version are not
                                read; 0: none */
    const char *custom;      /* NULL, or a JSON object of the caller's own
                                keys (none may start with '$'), custom_len
                                bytes, at most 64 KiB */
    size_t custom_len;
} evs_stream_metadata;
#define EVS_STREAM_METADATA_INIT { 0, 0, 0, NULL, 0 }

/* What evs_stream_metadata_get returns (the caller's; free it with
 * evs_stream_meta_info_free). */
typedef struct evs_stream_meta_info {
    evs_stream_metadata meta; /* the rules in force; custom is "{}" when
                                 none was set (NUL-terminated, owned by
                                 this struct) */
    int64_t meta_version;     /* version of the metadata: 0 after the first
                                 evs_stream_metadata_set, EVS_NO_STREAM when
                                 never set */
    int64_t stream_version;   /* the stream's last version (EVS_NO_STREAM
                                 when it has no events; a soft-deleted
                                 stream keeps its version) */
    int deleted;              /* 1: soft-deleted and not written since
                                 (truncate_before is beyond the last
                                 version, so reads see nothing) */
    int tombstoned;           /* 1: hard-deleted (evs_stream_tombstone) */
} evs_stream_meta_info;

/*
 * The metadata of a stream. Returns 0 (also for a stream that has neither
 * events nor metadata: everything 0, the versions EVS_NO_STREAM), EVS_EINVAL
 * (NULL out/db, bad tenant or stream name), EVS_ECORRUPT (a stored
 * metadata event that is not what evs_stream_metadata_set writes),
 * EVS_ENOMEM, EVS_EBACKEND. A tombstoned stream is not an error here:
 * tombstoned is set.
 */
EVS_EXTERN int evs_stream_metadata_get(evs_stream_meta_info **out, evs_db *db,
                                       const char *tenant, const char *stream);
EVS_EXTERN void evs_stream_meta_info_free(evs_stream_meta_info *info);

/*
 * Replace the metadata of stream (KurrentDB's metadata write: the whole
 * metadata, not a patch) if its metadata version is expected_meta_version
 * (EVS_ANY, EVS_NO_STREAM: never set, or an exact meta_version), durable
 * on return. The stream need not exist. *meta_version (may be NULL) gets
 * the new metadata version. Stored as an event of type "$metadata" in
 * the system stream "$$STREAM" (JSON: {"$maxCount":..,"$maxAge":..,
 * "$tb":..} and the custom keys), which evs_read_stream reads and no
 * $all, query or tracking read returns; and, in the same append, as an
 * event without a stream of type "$metadata" whose data is
 * {"stream":STREAM,"metadata":{...},"deleted":false|true}, which $all,
 * tracking reads and subscriptions return, so that a subscriber learns of
 * every metadata change and soft delete (docs/DESIGN.md, "Stream
 * lifecycle"). The types "$metadata" and "$streamDeleted" are the
 * store's: evs_append refuses them. Returns 0, EVS_ECONFLICT (the
 * metadata version differs: the message gives it), EVS_EDELETED (the
 * stream is tombstoned), EVS_EINVAL (NULL db/meta, bad names, a negative
 * field, custom not a JSON object or with a key starting with '$', custom
 * over 64 KiB), EVS_EREADONLY, and the errors of evs_append.
 */
EVS_EXTERN int evs_stream_metadata_set(int64_t *meta_version, evs_db *db,
                                       const char *tenant, const char *stream,
                                       int64_t expected_meta_version,
                                       const evs_stream_metadata *meta);

/*
 * Soft delete (KurrentDB's Delete): if the stream's version matches
 * expected_version (as for evs_append), set its truncate_before to its
 * last version + 1, keeping the rest of its metadata: from then on it
 * reads as absent (no events from any read; evs_stream_meta_info.deleted), and
 * an append to it continues its version numbering (expected versions see
 * the last version, which a soft delete does not change). Atomic with
 * respect to appends: an append that commits first makes the delete fail
 * (exact expected version) or includes that append in the delete
 * (EVS_ANY). Idempotent: deleting a deleted stream, or a stream without
 * events, writes nothing and returns 0. It writes what
 * evs_stream_metadata_set writes, so subscribers see it as a "$metadata"
 * event without a stream whose data says "deleted": true. *position (may
 * be NULL) gets the position of that event (0 when nothing was written).
 * Returns 0,
 * EVS_ECONFLICT (expected version failed; the message gives the version),
 * EVS_EDELETED (tombstoned), EVS_EINVAL, EVS_EREADONLY, and the errors of
 * evs_append.
 */
EVS_EXTERN int evs_stream_delete(uint64_t *position, evs_db *db, const char *tenant,
                                 const char *stream, int64_t expected_version);

/*
 * Hard delete (KurrentDB's Tombstone): if the stream's version matches
 * expected_version, append the tombstone, an event of type
 * "$streamDeleted" with stream version INT64_MAX (KurrentDB's
 * DeletedStream number) and no data, atomically with the check. From then
 * on the stream can never be written again: appends to it, metadata sets
 * and reads of it (evs_read_stream, evs_read_streams, evs_aggregate_load,
 * evs_stream_version) fail with EVS_EDELETED; its events are hidden from
 * every read, except the tombstone itself, which $all, evs_read_log, DCB
 * queries that match it (its stream's "$stream:NAME" tag, its type),
 * tracking reads and subscriptions return (so a projection learns of
 * it). Idempotent:
 * tombstoning a tombstoned stream returns 0. *position (may be NULL) gets
 * the tombstone's position. Returns 0, EVS_ECONFLICT, EVS_EINVAL,
 * EVS_EREADONLY, and the errors of evs_append.
 */
EVS_EXTERN int evs_stream_tombstone(uint64_t *position, evs_db *db, const char *tenant,
                                    const char *stream, int64_t expected_version);

#define EVS_SCAVENGE_OPTIONS_VERSION 1
typedef struct evs_scavenge_options {
    unsigned version;          /* EVS_SCAVENGE_OPTIONS_VERSION */
    /* Called on the calling thread as done of total bytes of log
     * (embedded) or streams of the plan (PostgreSQL) are done. NULL: not
     * told. */
    evs_progress_fn progress;
    void *ctx;
} evs_scavenge_options;
#define EVS_SCAVENGE_OPTIONS_INIT { EVS_SCAVENGE_OPTIONS_VERSION, NULL, NULL }

typedef struct evs_scavenge_result {
    uint64_t streams;            /* streams whose rules made events eligible */
    uint64_t events_removed;     /* events physically removed */
    uint64_t segments_examined;  /* embedded: sealed segments looked at */
    uint64_t segments_rewritten; /* embedded: segments written anew */
    uint64_t segments_resumed;   /* embedded: finished by an interrupted
                                    scavenge, not redone */
    uint64_t bytes_before;       /* embedded: log bytes of the rewritten
                                    segments before, and after */
    uint64_t bytes_after;
    uint64_t elapsed_us;         /* wall time of the call */
} evs_scavenge_result;

/*
 * Reclaim the space of the events no read returns any more: events of
 * tombstoned streams (not the tombstone), events below truncate_before
 * (soft delete included), beyond max_count and older than max_age, as the
 * rules stand when the scavenge starts; the last event of a stream is
 * kept unless the stream is tombstoned (its version survives an index
 * rebuild). Online: appends and reads go on (embedded: each rewritten
 * segment replaces the old one in one rename; a reader meanwhile reads
 * the old or the new file, never neither). The positions of surviving
 * events never change: $all, tokens and checkpoints skip the holes.
 * Resumable: an interrupted scavenge (crash, kill, power loss) leaves a
 * valid store, and the next evs_scavenge continues after the segments it
 * finished when its plan is the same (rules, stream heads and expiry cut
 * as they stand then; otherwise it starts over). PostgreSQL: deletes the rows in batches of 10,000, each its
 * own transaction. The active (last) segment of the embedded log is never
 * rewritten. out (may be NULL) gets the summary; opts may be NULL.
 * Returns 0, EVS_EINVAL (db NULL, bad opts), EVS_EREADONLY, EVS_ENOSPC
 * (no room for a rewritten segment: nothing of it was changed), EVS_EIO,
 * EVS_ECORRUPT (a damaged record in a segment: that segment is left as
 * it is and the scavenge stops there; the segments before it are done),
 * EVS_ENOMEM, EVS_EBACKEND. Semantics: KurrentDB's scavenge.
 */
EVS_EXTERN int evs_scavenge(evs_scavenge_result *out, evs_db *db,
                            const evs_scavenge_options *opts);

/* ------------------------------------------------------------------ */
/* Crypto-shredding (erasure of a data subject)                        */
/* ------------------------------------------------------------------ */

/*
 * Forget a data subject of tenant (NULL: the default tenant): destroy its
 * key (evs_event_data.subject), durably before returning. From then on
 * every read of the events encrypted under it (every read function, the
 * tracking reads and subscriptions, evs_read_log and so exports, backups
 * taken afterwards, evs serve) returns them with EVS_EVENT_REDACTED and
 * empty data (and metadata, if it was encrypted); nothing else of them
 * changes. An append under a forgotten subject fails with EVS_EINVAL (the
 * name cannot be reused: choose another). Other handles on the store see
 * the forget within one second (their key caches expire). What this
 * protects and what it does not (backups taken before, PostgreSQL's WAL
 * and dead rows, the filesystem): docs/ERASURE.md. Embedded: the key's
 * slot in <dir>/keys is overwritten with zeros and synced; PostgreSQL: the
 * key's column in evstore.subject_keys is set to NULL.
 * Returns 0 (also when the subject was already forgotten: idempotent),
 * EVS_ENOTFOUND (the subject never had a key: nothing was written),
 * EVS_EINVAL (db NULL, bad tenant, subject NULL, empty, longer than
 * EVS_MAX_STREAM_LEN or not UTF-8), EVS_EREADONLY, EVS_EIO, EVS_ENOSPC,
 * EVS_ECORRUPT (a damaged key file), EVS_EBACKEND, EVS_ENOMEM.
 * Thread-safe.
 */
EVS_EXTERN int evs_forget(evs_db *db, const char *tenant, const char *subject);

/* ------------------------------------------------------------------ */
/* Online backup (embedded store)                                      */
/* ------------------------------------------------------------------ */

#define EVS_BACKUP_OPTIONS_VERSION 1
typedef struct evs_backup_options {
    unsigned version;        /* EVS_BACKUP_OPTIONS_VERSION */
    unsigned flags;          /* reserved: 0 */
    /* Called now and then on the calling thread: done and total are
     * bytes (total is an estimate and may grow). NULL: not told. */
    void (*progress)(void *ctx, uint64_t done, uint64_t total);
    void *progress_ctx;
} evs_backup_options;
#define EVS_BACKUP_OPTIONS_INIT { EVS_BACKUP_OPTIONS_VERSION, 0, NULL, NULL }

typedef struct evs_backup_result {
    uint64_t position;        /* the backup holds exactly the events at
                                 positions 1..position */
    uint64_t segments_copied; /* log segments written */
    uint64_t segments_reused; /* log segments an earlier backup in the
                                 directory had already (incremental) */
    uint64_t bytes_copied;    /* bytes written: segments, index, snapshots */
    uint64_t bytes_reused;    /* bytes of the reused segments */
    int incremental;          /* 1: dest_dir held an earlier backup */
} evs_backup_result;

/*
 * Back the embedded store up into the directory dest_dir while it is in
 * use: appends and reads go on. The writer is held back only while LMDB
 * copies the index's two meta pages, with one exception in the process
 * that makes the backup: the index copy (one pass over index/data.mdb, at
 * disk speed) holds the index's map in place, so if the writer of the
 * same handle must grow the map meanwhile, that append, and every read
 * of the handle begun after it, wait until the copy ends. On a read-write
 * handle the backup first grows the map to leave room for half the index
 * again (at most 1 GiB), so only an index that grows by more than that
 * during the copy waits; on a read-only handle, its reads wait when the
 * writer (another process) grew the map during the copy. Works on a
 * handle opened read-write
 * (called beside its writer threads) or EVS_OPEN_READONLY (e.g. `evs
 * backup` beside an application that writes the store), on any thread.
 *
 * What the backup holds: every event acknowledged up to a position P,
 * taken when the call starts (the index's committed end, which is never
 * ahead of the durable log), and nothing after it; out->position is P,
 * also written to dest_dir/BACKUP. The backup is itself a store: the log
 * segments up to P (the last one with zeros after P's record), a
 * consistent copy of the index (so it opens without a rebuild) and of the
 * snapshots (copied just before the index: none is of a stream version
 * past P), a state file naming its own files, and BACKUP (a text file:
 * the source's path, its identity -- the id of event 1 --, P, the time,
 * the bytes copied). evs_verify passes on it. Restore = open dest_dir as
 * a store where it is; or back the backup up (evs_backup on a read-only
 * handle of it) into a new directory and delete that one's BACKUP (`evs
 * restore`); or mv it within its filesystem. A file-by-file copy (cp -a)
 * opens too, but as a copy: its index is rebuilt and it starts without
 * snapshots (docs/OPERATIONS.md, "Backup and restore").
 *
 * dest_dir: a path that does not exist (a new backup: made in
 * dest_dir.tmp-XXXXXX beside it and renamed to dest_dir when complete),
 * an empty directory, e.g. a mount point (a new backup made in it, its
 * state file written last: a run that is killed leaves dest_dir/backup.tmp
 * and part of the files, which the next run into it deletes and starts
 * over; one that fails leaves it empty), or a directory holding an
 * earlier backup of this store
 * (incremental: log segments that were already complete in it -- sealed
 * segments never change -- are kept, after checking that the store
 * still has the earlier backup's event at its position; the rest is
 * written under temporary names and renamed into place, so an
 * interrupted or failed incremental backup leaves a directory that still
 * opens with at least the earlier backup's events). It must lie outside
 * the store's directory. dest_dir's parent must exist. An interrupted new
 * backup may leave dest_dir.tmp-XXXXXX behind: delete it.
 *
 * A backup of an empty store has no identity and is taken as a backup of
 * any store.
 *
 * opts may be NULL (defaults); out may be NULL. Threads: any thread, any
 * number at once on one handle (into different directories; a second
 * backup into a directory another one is writing is EVS_EBUSY); not
 * during or after evs_close. The progress callback runs on the calling
 * thread, between copies (it holds nothing up).
 *
 * Returns 0; EVS_EINVAL (db or dest_dir NULL or empty, opts of an unknown
 * version or with flags set, dest_dir not a directory, not empty and not
 * a backup, inside the store, a backup of another store -- another first
 * event, another segment size --, or of another history -- its event at
 * its position differs from this store's, or this store ends before it
 * (restored from an older backup?) --, a backup that was opened and
 * written to since -- its log holds events after the backup's that are
 * not this store's, also when that writer was killed --; or the store is
 * a PostgreSQL one: back it up with
 * pg_dump or pg_basebackup); EVS_EBUSY (dest_dir is open for writing, or
 * another backup into it runs); EVS_ENOSPC (dest_dir's disk is full: the
 * earlier backup there is still good; free space and retry); EVS_EIO;
 * EVS_ECORRUPT (the store's index or log cannot be read where the backup
 * needs it: run evs_verify); EVS_EFORMAT (dest_dir/BACKUP was written by
 * a newer evstore); EVS_ENOMEM. On error out->position is 0.
 */
EVS_EXTERN int evs_backup(evs_backup_result *out, evs_db *db, const char *dest_dir,
                          const evs_backup_options *opts);

/* ------------------------------------------------------------------ */
/* Exploring: one event by id, the streams and tenants of a store      */
/* ------------------------------------------------------------------ */

/*
 * Read the one event whose id is *id, whatever its tenant or stream
 * (system streams included): an iterator that yields it once, then
 * EVS_ITEROVER, so the event's pointers follow the iterator's rules
 * (valid until the next evs_iter_next or evs_iter_free); ev->tenant says
 * whose it is. evs_iter_marker gives its position once it is read. One
 * lookup in the ids index (embedded: event_ids, PostgreSQL: the events'
 * unique id index), then a read of the log at that position
 * (evs_read_log with a limit of 1). Free it with evs_iter_free, before
 * evs_close; one thread at a time, as every iterator.
 *
 * An event its stream's metadata or tombstone hides (evs_stream_metadata
 * _set, "Stream lifecycle") gives an iterator that yields nothing; one a
 * scavenge removed is EVS_ENOTFOUND on PostgreSQL and may be either on
 * the embedded store.
 *
 * Returns 0; EVS_ENOTFOUND (no such event; *out is NULL; the message
 * names the id); EVS_EINVAL (NULL out, db or id; *out is NULL);
 * EVS_ECORRUPT (embedded: the record failed its check, the message gives
 * segment, offset and position); EVS_ENOMEM; EVS_EBACKEND.
 */
EVS_EXTERN int evs_read_event(evs_iter **out, evs_db *db, const evs_uuid *id);

/* One stream of evs_list_streams. */
typedef struct evs_stream_info {
    const char *tenant;    /* "" for the default tenant */
    const char *stream;    /* 1..EVS_MAX_STREAM_LEN bytes */
    int64_t last_version;  /* the version of its last event (>= 0): the
                              stream holds last_version + 1 events */
} evs_stream_info;

/* The streams found, in (tenant, stream) byte order (strcmp order; the
 * default tenant "" first). Caller's: evs_stream_list_free. */
typedef struct evs_stream_list {
    const evs_stream_info *streams; /* count entries; strings live in the
                                       list */
    size_t count;
    int more;              /* 1: the limit stopped the list and at least one
                              more stream matches: ask again after the last
                              one (after_tenant/after = its names) */
} evs_stream_list;

/* Also list system streams ('$' names: "$checkpoint-NAME"). */
#define EVS_LIST_SYSTEM 0x1u

#define EVS_LIST_STREAMS_OPTIONS_VERSION 1
typedef struct evs_list_streams_options {
    unsigned version;         /* EVS_LIST_STREAMS_OPTIONS_VERSION */
    const char *tenant;       /* NULL or "": the default tenant */
    int all_tenants;          /* 1: the streams of every tenant (tenant must
                                 be NULL) */
    const char *prefix;       /* NULL or "": every name; else only streams
                                 whose name starts with it (bytes). A prefix
                                 starting with '$' lists system streams
                                 (as EVS_LIST_SYSTEM) */
    const char *after_tenant; /* paging with all_tenants: list the streams
                                 after (after_tenant, after) in the order
                                 above; set both or neither */
    const char *after;        /* NULL: from the first; else only streams
                                 whose name sorts after it (exclusive) */
    uint64_t limit;           /* at most this many streams; 0: no limit (the
                                 whole list is in memory: page a large
                                 store) */
    unsigned flags;           /* EVS_LIST_* */
} evs_list_streams_options;
#define EVS_LIST_STREAMS_OPTIONS_INIT                                        \
    { EVS_LIST_STREAMS_OPTIONS_VERSION, NULL, 0, NULL, NULL, NULL, 0, 0 }

/*
 * The streams of a tenant (or of every tenant), each with its last
 * version, in name order, from the streams index alone: no event is read.
 * Embedded: one seek, then one index entry per stream listed (the prefix
 * and `after` are seeks, system streams one seek past them). PostgreSQL:
 * the rows of evstore.streams in the range; with a database collation
 * other than C the server sorts the tenant's matching streams into byte
 * order first. Streams without events do not exist; events without a
 * stream are in none.
 * System streams are left out unless flags has EVS_LIST_SYSTEM or the
 * prefix starts with '$'. One snapshot: a list is consistent in itself
 * (a long one is read, on the embedded store, in renewed snapshots, as a
 * long read is, and reports what the first held: streams created
 * meanwhile are left out, versions are those of then);
 * pages are each their own snapshot (a stream created between two pages
 * shows in the later page only if it sorts after the first page's end).
 *
 * *out is the caller's (evs_stream_list_free), also when empty. Returns
 * 0; EVS_EINVAL (NULL out, db or opts, unknown version, bad tenant, a
 * tenant with all_tenants, a prefix or after longer than
 * EVS_MAX_STREAM_LEN or not UTF-8, after_tenant without all_tenants or
 * without after, after without after_tenant with all_tenants, unknown
 * flags; *out is NULL); EVS_ENOMEM; EVS_EBACKEND. Any thread, as every
 * read; the list is plain memory, independent of db (it may outlive
 * evs_close).
 */
EVS_EXTERN int evs_list_streams(evs_stream_list **out, evs_db *db,
                                const evs_list_streams_options *opts);
/* NULL-safe. */
EVS_EXTERN void evs_stream_list_free(evs_stream_list *list);

/* One tenant of evs_list_tenants. */
typedef struct evs_tenant_info {
    const char *tenant;    /* "" for the default tenant */
    uint64_t events;       /* its events, system streams' not counted: what
                              evs_read_all of the tenant returns */
} evs_tenant_info;

/* Caller's: evs_tenant_list_free. */
typedef struct evs_tenant_list {
    const evs_tenant_info *tenants; /* count entries, in name (strcmp)
                                       order; strings live in the list */
    size_t count;
} evs_tenant_list;

/*
 * Every tenant that has at least one event (a tenant whose only events
 * are checkpoints is listed with events 0), with its number of events,
 * from one snapshot. Cost: the tenants are one index entry each; the
 * counts are index-only but linear in events: the embedded store walks
 * the keys of its tenant_events index (no log read; about 20 million keys
 * a second with the index in the page cache: `evs tenants` on 1 million
 * events takes 50 ms), PostgreSQL counts the rows of the index
 * events_tenant (an index-only scan where the visibility map allows).
 * Seconds for a store of 100 million events: the embedded store's walk
 * renews its snapshot as a long read does (every 1024 keys or 10 ms), so
 * it holds up neither the writer nor the index's growth, and still
 * reports what the first snapshot held (events after its head are not
 * counted, tenants created meanwhile are not listed).
 *
 * *out is the caller's (evs_tenant_list_free), also when empty. Returns
 * 0, EVS_EINVAL (NULL out or db; *out is NULL), EVS_ENOMEM, EVS_EBACKEND.
 * Any thread, as every read; the list is plain memory, independent of db.
 */
EVS_EXTERN int evs_list_tenants(evs_tenant_list **out, evs_db *db);

/*
 * evs_list_tenants with every count stopped at cap: a tenant's events is
 * min(its events, cap), so events == cap means "cap or more". cap 1 tells
 * only whether each tenant has events, at one index seek per tenant
 * whatever the store's size (embedded: its first tenant_events key;
 * PostgreSQL: an EXISTS on events_tenant); cap 0 counts all, as
 * evs_list_tenants. The same list otherwise: every tenant, in name order.
 * Errors, lifetime and threads as evs_list_tenants.
 */
EVS_EXTERN int evs_list_tenants_capped(evs_tenant_list **out, evs_db *db, uint64_t cap);
/* NULL-safe. */
EVS_EXTERN void evs_tenant_list_free(evs_tenant_list *list);


/* ------------------------------------------------------------------ */
/* Tracking: tokens, blocking reads, subscriptions, consumer groups    */
/* (the EAF/Axon tracking event processor; groups as in Message DB)    */
/* ------------------------------------------------------------------ */

/*
 * A tracking token is a global position meaning "every event up to and
 * including this position has been seen": a read after token T yields the
 * events with position > T. A tenant's reader uses global positions too
 * (it sees gaps), so every token compares with every other as a plain
 * integer (<, ==, >). 0 is before the first event.
 */

/* The head token: the newest committed event of the store (tenant NULL:
 * an atomic load) or of a tenant (one index lookup). 0 when empty. Reading
 * after it yields only events committed later. Same as evs_head_position.
 * Returns 0, EVS_EINVAL (NULL out/db, bad tenant), EVS_EBACKEND. */
EVS_EXTERN int evs_token_head(uint64_t *out, evs_db *db, const char *tenant);

/* The tail token: just before the oldest event of the tenant (NULL: of
 * the store, which is always 0), so that reading after it yields every
 * event. 0 for a tenant without events. One index lookup. Returns 0,
 * EVS_EINVAL, EVS_EBACKEND. */
EVS_EXTERN int evs_token_tail(uint64_t *out, evs_db *db, const char *tenant);

/*
 * The token at a time: just before the first event, in position order,
 * whose recorded_at is >= time_us (µs since the Unix epoch); the head
 * token when no event is that recent. Reading after it yields that event
 * and everything after it (recorded_at grows with position for events the
 * store stamps; events imported with their own recorded_at may be out of
 * order, and are then returned by position, not by time). A tenant's
 * reader may use it as is (tokens are global). One lookup in a sparse
 * time index (an entry wherever the running maximum of recorded_at
 * grows). Returns 0, EVS_EINVAL (NULL argument), EVS_EBACKEND.
 */
EVS_EXTERN int evs_token_at(uint64_t *out, evs_db *db, int64_t time_us);

/* The tag prefix that selects a category's events in a query item: the
 * category of a stream is its name up to the first '-' (the whole name
 * when it has none), as in Message DB: "account-42" is in "account". */
#define EVS_CATEGORY_TAG_PREFIX "$category:"

/*
 * What a tracking reader reads. Events of system streams (names starting
 * with '$', such as checkpoints) are never returned.
 */
#define EVS_TRACKING_VERSION 1
typedef struct evs_tracking {
    unsigned version;          /* EVS_TRACKING_VERSION */
    const char *tenant;        /* NULL or "": the default tenant */
    int all_tenants;           /* 1: every tenant's events (administration);
                                  tenant must be NULL and there may be no
                                  category, types or query */
    const char *category;      /* NULL: any; else only events of streams of
                                  this category (1..EVS_MAX_STREAM_LEN bytes,
                                  no '-': EVS_EINVAL) */
    const char *const *types;  /* ntypes event types, OR'ed; 0: any type */
    size_t ntypes;             /* 0..EVS_MAX_QUERY_TERMS */
    const evs_query *query;    /* NULL: none; else a DCB query (then
                                  category and types must be unset: put
                                  them in the query's items, with a
                                  "$category:NAME" tag) */
    /* Consumer group (Message DB's consumer_group_member/size): with
     * group_size >= 2, only the events of streams that belong to member
     * group_member (0..group_size-1): XXH3-64 of the stream's id part
     * (the name after the first '-', the whole name without one) modulo
     * group_size. Each stream belongs to exactly one member, so the
     * members together see every event once and each stream in order.
     * Events without a stream are shared out by their event id. */
    uint32_t group_member;     /* < group_size (0 when group_size is 0) */
    uint32_t group_size;       /* 0 or 1: no consumer group; at most 1024 */
} evs_tracking;
#define EVS_TRACKING_INIT { EVS_TRACKING_VERSION, NULL, 0, NULL, NULL, 0, NULL, 0, 0 }

/* timeout_us of evs_read_tracking: wait as long as it takes. */
#define EVS_WAIT_FOREVER (-1)

/*
 * Tracking read (mayBlock): up to limit (0 = no limit) events matching
 * *t with position > after, oldest first. When there are none, waits up
 * to timeout_us µs (0: no wait; EVS_WAIT_FOREVER) for commits that bring
 * one, woken by the commit itself (a futex in the store directory's
 * `notify` file, so also across processes: a read-only open is woken by
 * the writing process); then returns an iterator that may be empty.
 * Commits of events that do not match do not end the wait.
 *
 * The next token is evs_iter_marker(it) once the iterator has returned
 * EVS_ITEROVER: every event up to it has been considered, also those that
 * did not match (so a filtered reader never re-reads them); it is never
 * below `after` (also when `after` is beyond the head). A snapshot like
 * evs_read_stream.
 *
 * Returns 0, EVS_EINVAL (NULL out/db/t, unknown version, bad names, a
 * query with category/types, all_tenants with a filter, group_member >=
 * group_size, group_size > 1024, timeout_us < 0 other than
 * EVS_WAIT_FOREVER), EVS_ENOMEM, EVS_EBACKEND (also: the handle cannot
 * wait, because the notify file could not be opened or it reads a
 * read-only store (evs_open), and there was no event to return; the
 * message says why; with timeout_us 0 it works without waiting).
 */
EVS_EXTERN int evs_read_tracking(evs_iter **out, evs_db *db, const evs_tracking *t,
                                 uint64_t after, uint64_t limit, int64_t timeout_us);

/*
 * A subscription: a thread that reads *filter catch-up-then-live and
 * calls back per batch. It never skips an event and never delivers one
 * twice within a run; across runs, the checkpoint decides (at-least-once
 * from the stored token, or exactly-once when the callback stores its
 * checkpoint atomically with its own append, see evs_append_request).
 */
typedef struct evs_subscription evs_subscription;

/*
 * Called on the subscription's thread with 1..batch_size events in
 * position order (every pointer valid only during the call) and the token
 * after the batch. Return 0 to accept the batch and go on; any other value
 * refuses the batch (its token is not taken, nor stored as checkpoint),
 * stops the subscription and becomes the result of evs_subscription_free.
 */
typedef int (*evs_subscription_fn)(void *ctx, const evs_event *const *events,
                                   size_t n, uint64_t token);

#define EVS_SUBSCRIPTION_OPTIONS_VERSION 1
typedef struct evs_subscription_options {
    unsigned version;          /* EVS_SUBSCRIPTION_OPTIONS_VERSION */
    evs_tracking filter;       /* what to read (EVS_TRACKING_INIT: the
                                  default tenant's events) */
    uint64_t from;             /* start after this token when there is no
                                  stored checkpoint (0: from the start) */
    const char *checkpoint;    /* NULL: none. Else the name of a checkpoint
                                  of the filter's tenant: start after it if
                                  stored, and store the token after the
                                  batches the callback accepted (every
                                  checkpoint_every_ms, and when stopping) */
    uint32_t checkpoint_every_ms; /* 0: after every batch */
    uint32_t batch_size;       /* events per callback; 0 = 256 */
} evs_subscription_options;
#define EVS_SUBSCRIPTION_OPTIONS_INIT                                        \
    { EVS_SUBSCRIPTION_OPTIONS_VERSION, EVS_TRACKING_INIT, 0, NULL, 0, 0 }

/*
 * Start a subscription on a new thread. Returns 0, EVS_EINVAL (NULL
 * argument, bad options as for evs_read_tracking, bad checkpoint name,
 * all_tenants with a checkpoint), EVS_EREADONLY (a checkpoint on a
 * read-only open), EVS_ENOMEM, EVS_EBACKEND. The subscription must be
 * freed before evs_close.
 */
EVS_EXTERN int evs_subscribe(evs_subscription **out, evs_db *db,
                             const evs_subscription_options *opts,
                             evs_subscription_fn fn, void *ctx);

/* Ask the subscription to stop after the current batch. Returns at once;
 * thread-safe; may be called from the callback. NULL-safe. */
EVS_EXTERN void evs_subscription_stop(evs_subscription *sub);

/* The token after the last batch the callback accepted (from any thread;
 * NULL-safe: 0). */
EVS_EXTERN uint64_t evs_subscription_token(const evs_subscription *sub);

/*
 * Stop (if running), wait for the thread, store the checkpoint (if any:
 * the token after the last accepted batch, however the run ended) and
 * free. Returns 0 when it was stopped by evs_subscription_stop, the
 * callback's non-zero value when the callback stopped it, or the negative
 * EVS_E* error that ended it (evs_last_error() then has its message).
 * NULL-safe (returns 0). Must not be called from the callback.
 */
EVS_EXTERN int evs_subscription_free(evs_subscription *sub);

/* ------------------------------------------------------------------ */
/* Checkpoints                                                         */
/* ------------------------------------------------------------------ */

/*
 * A checkpoint is a named consumer's token, stored in the store per
 * tenant, durably (as an event of type "$checkpoint" whose data is the
 * token, 8 bytes little-endian, in the system stream "$checkpoint-NAME",
 * which no read of $all, query or tracking read returns; evs_read_stream
 * reads it). Names are 1..EVS_MAX_CHECKPOINT_NAME_LEN bytes of UTF-8.
 */
#define EVS_MAX_CHECKPOINT_NAME_LEN 200

/* The stored token. Returns 0, EVS_ENOTFOUND (never stored in this
 * tenant: the message names the checkpoint and tenant), EVS_EINVAL (NULL
 * out/db, bad tenant or name), EVS_ECORRUPT, EVS_EBACKEND. */
EVS_EXTERN int evs_checkpoint_get(uint64_t *out, evs_db *db, const char *tenant,
                                  const char *name);

/*
 * Store token as checkpoint `name` of the tenant, durable on return. A
 * checkpoint only moves forward: a token below the stored one is
 * EVS_EINVAL (the message gives both), the same token is a no-op, a token
 * beyond the store's head is EVS_EINVAL. Concurrent setters are
 * serialised: the highest token wins. Returns 0, EVS_EINVAL, EVS_EREADONLY,
 * and the errors of evs_append.
 */
EVS_EXTERN int evs_checkpoint_set(evs_db *db, const char *tenant, const char *name,
                                  uint64_t token);

/*
 * evs_checkpoint_set with flags: 0 is evs_checkpoint_set;
 * EVS_CHECKPOINT_EXTERNAL stores a position of another source (no head
 * bound; it must increase: the same or a lower token is EVS_ECONFLICT).
 * Unknown flags are EVS_EINVAL. Other errors as evs_checkpoint_set.
 */
EVS_EXTERN int evs_checkpoint_set_ex(evs_db *db, const char *tenant, const char *name,
                                     uint64_t token, unsigned flags);

/* ------------------------------------------------------------------ */
/* Snapshots                                                           */
/* ------------------------------------------------------------------ */

/*
 * A snapshot is the serialized state of a stream's aggregate at a stream
 * version, with the name of its schema (so a reader can tell an old
 * shape). Snapshots are a cache kept beside the events, not among them
 * (embedded: in their own environment, <dir>/snapshots, which survives
 * index rebuilds; a copy of the store starts without them): only the
 * newest snapshot_keep per stream are kept (evs_open_options), and a
 * crash of the machine may lose the newest ones (a load then starts from
 * an older one or from the first event: slower, never wrong).
 */
typedef struct evs_snapshot {
    int64_t version;      /* the last stream version the state includes */
    const char *schema;   /* NUL-terminated, 1..EVS_MAX_TYPE_LEN bytes */
    const void *data;     /* data_len bytes, followed by a NUL */
    size_t data_len;
    int64_t saved_at;     /* µs since the Unix epoch */
} evs_snapshot;

#define EVS_MAX_SNAPSHOT_SIZE (64u * 1024u * 1024u)

/*
 * Save a snapshot of stream at version (0..the stream's version). Saving
 * a version again replaces it. Returns 0, EVS_EINVAL (NULL db, bad names,
 * data NULL with data_len > 0, version < 0, a stream that does not exist
 * or a version beyond its last: the message gives the stream's version),
 * EVS_ETOOBIG (over EVS_MAX_SNAPSHOT_SIZE), EVS_EREADONLY, EVS_ENOSPC,
 * EVS_EIO (the snapshot may or may not be saved; events are not
 * affected), EVS_EBACKEND. On return the save survives a crash of the
 * process. A crash of the machine (power loss) may lose the newest save
 * of the embedded store: it syncs the snapshot's pages once
 * (MDB_NOMETASYNC), not the page that makes them current, so an older
 * snapshot or none is found after such a crash (slower loads, never
 * wrong ones: snapshots are a cache). On PostgreSQL it is durable when it
 * returns 0 (a committed transaction).
 */
EVS_EXTERN int evs_snapshot_save(evs_db *db, const char *tenant, const char *stream,
                                 int64_t version, const char *schema,
                                 const void *data, size_t data_len);

/*
 * The newest snapshot (highest version) of stream with version <=
 * max_version (EVS_END: of all). "Keep the newest K" counts by version
 * too: a version older than the K kept ones is not kept when saved. *out
 * is the caller's (evs_snapshot_free). Returns 0, EVS_ENOTFOUND (none),
 * EVS_EINVAL, EVS_ENOMEM, EVS_EBACKEND.
 */
EVS_EXTERN int evs_snapshot_load(evs_snapshot **out, evs_db *db, const char *tenant,
                                 const char *stream, int64_t max_version);
EVS_EXTERN void evs_snapshot_free(evs_snapshot *snap);

/*
 * Every stored snapshot of tenant (NULL: of every tenant), for export and
 * backup tools: fn is called once per snapshot with its tenant, stream and
 * the snapshot (all borrowed: valid during the call only), ordered by
 * tenant and stream as byte strings (strcmp order, on both backends), then
 * by version ascending. fn returns 0 to go on; any other value stops the
 * walk and is returned. The walk is not one snapshot: a snapshot saved or
 * pruned meanwhile may or may not be seen, every other one is seen once.
 * fn may read db (the walk holds no index snapshot) but must not save or
 * restore snapshots from the same thread on the embedded backend (the
 * walk holds a read transaction of the snapshots environment). Returns
 * 0, fn's non-zero value, EVS_EINVAL (db or fn NULL, bad tenant name),
 * EVS_ECORRUPT (a malformed snapshot record), EVS_ENOMEM, EVS_EBACKEND.
 */
typedef int (*evs_snapshot_fn)(void *ctx, const char *tenant, const char *stream,
                               const evs_snapshot *snap);
EVS_EXTERN int evs_snapshot_list(evs_db *db, const char *tenant, evs_snapshot_fn fn,
                                 void *ctx);

/*
 * Save snap (as evs_snapshot_list gave it, from an export) for stream:
 * evs_snapshot_save of snap->version, snap->schema and snap->data, keeping
 * snap->saved_at (0: now) instead of the time of the call. Errors as
 * evs_snapshot_save, and EVS_EINVAL when snap is NULL or saved_at < 0.
 */
EVS_EXTERN int evs_snapshot_restore(evs_db *db, const char *tenant, const char *stream,
                                    const evs_snapshot *snap);

/*
 * Load an aggregate in one call: *snap gets the newest snapshot (NULL
 * when there is none: not an error) and *events the stream's events after
 * it (from version snap->version + 1, or 0), oldest first. Both are the
 * caller's. Returns 0, EVS_EINVAL, EVS_ENOMEM, EVS_EBACKEND; on error both
 * are NULL.
 */
EVS_EXTERN int evs_aggregate_load(evs_snapshot **snap, evs_iter **events, evs_db *db,
                                  const char *tenant, const char *stream);

#ifdef __cplusplus
}
#endif
#endif /* EVSTORE_H */
