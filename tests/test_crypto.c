/*
 * test_crypto.c -- crypto-shredding (src/core/crypto.c, the key stores
 * src/embedded/keys.c and src/postgres/pg_keys.c; docs/ERASURE.md), on
 * both backends:
 *
 *   - events appended with a subject read back as they were sent (data,
 *     content type, metadata) from a stream, $all, a query (by a clear
 *     tag and by "$subject:NAME") and evs_read_log, flagged
 *     EVS_EVENT_ENCRYPTED; plain events pass untouched (flags 0); the
 *     plaintext is nowhere in the stored bytes;
 *   - evs_forget: those events read back with EVS_EVENT_REDACTED and empty
 *     data (and encrypted metadata), everything else kept, from every read,
 *     an export by `evs export`, a backup taken after the forget (embedded);
 *     other subjects unaffected; idempotent; an unknown subject is
 *     EVS_ENOTFOUND; an append under a forgotten subject is refused and
 *     writes nothing; a reopen keeps keys and forgets; another handle sees
 *     the forget within its key cache's second;
 *   - a damaged envelope, an envelope moved to another event, a missing
 *     or damaged keys file: never a crash, the event redacted (and
 *     EVS_EVENT_DAMAGED where the key exists);
 *   - an exact retry of an encrypted append is a retry, not a duplicate;
 *   - threads making the same new subjects' keys at once: every event
 *     decrypts, also after a reopen (one key per subject won);
 *   - bad input: subject empty or too long, EVS_EVENT_ENCRYPT_METADATA
 *     without a subject, unknown flags, too many tags, invalid JSON, a
 *     forged "$subject:" tag -- each refused with a message, nothing
 *     written.
 *
 * Reads are wrapped with evs__crypto_wrap here as well: the front end's
 * read paths wrap them (lifecycle.c), and a second wrap passes events
 * through (their flags are set), so the test holds either way.
 */
#include "testutil.h"

#include "core/front.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if EVS_WITH_POSTGRES
#include <libpq-fe.h>
#endif

static int setup(void **state) { return tu_setup_store(state); }
static int teardown(void **state) { return tu_teardown_store(state); }

static const char *const SECRET = "{\"name\":\"Ada Lovelace\",\"email\":\"ada@example.org\"}";
static const char *const SECRET_META = "{\"ip\":\"192.0.2.42\"}";

/* An event of subject (NULL: plain) with data json and metadata meta. */
static evs_event_data ev_of(const char *type, const char *json, const char *meta,
                            const char *subject, unsigned flags,
                            const char *const *tags, size_t ntags)
{
    evs_event_data e = tu_event(type, json);
    e.metadata = meta;
    e.metadata_len = meta ? strlen(meta) : 0;
    e.subject = subject;
    e.flags = flags;
    e.tags = tags;
    e.ntags = ntags;
    return e;
}

/* An iterator that records the flags of the events its inner one returns
 * (tu_collect copies events without them). */
typedef struct rec_iter {
    evs_iter base;
    evs_iter *inner;
    unsigned *flags;
    size_t cap, n;
} rec_iter;

static int rec_next(const evs_event **ev, evs_iter *base)
{
    rec_iter *r = (rec_iter *)base;
    int rc = evs_iter_next(ev, r->inner);
    if (rc == 0 && r->n < r->cap)
        r->flags[r->n++] = (*ev)->flags;
    return rc;
}
static int rec_marker(uint64_t *out, const evs_iter *base)
{
    return evs_iter_marker(out, ((const rec_iter *)base)->inner);
}
static void rec_free(evs_iter *base) { (void)base; }
static const evs__iter_ops rec_ops = {rec_next, rec_marker, rec_free};

/* Read every event of it, wrapped, into out; their flags into flags[cap]. */
static void drain(tu_events *out, unsigned *flags, size_t cap, evs_iter *it, evs_db *db)
{
    TU_OK(evs__crypto_wrap(&it, db));
    rec_iter r = {{&rec_ops, db}, it, flags, cap, 0};
    memset(out, 0, sizeof(*out));
    TU_OK(tu_collect(out, &r.base));
    evs_iter_free(it);
}

/* The events of stream, of $all, of the log, of a query by tag. */
enum { R_STREAM, R_ALL, R_LOG, R_QUERY_TAG, R_QUERY_SUBJECT, R_N };
static const char *const rname[R_N] = {"stream", "$all", "log", "query tag",
                                       "query $subject"};

static void read_kind(tu_events *out, unsigned *flags, evs_db *db, int kind)
{
    evs_iter *it = NULL;
    const char *tag = "customer:ada";
    const char *stag = "$subject:person-42";
    evs_query_item item = {0};
    evs_query q = {&item, 1};
    switch (kind) {
    case R_STREAM: TU_OK(evs_read_stream(&it, db, NULL, "customer-1", 0, EVS_FORWARD, 0)); break;
    case R_ALL: TU_OK(evs_read_all(&it, db, NULL, 0, 0)); break;
    case R_LOG: TU_OK(evs_read_log(&it, db, 0, 0)); break;
    case R_QUERY_TAG:
        item.tags = &tag;
        item.ntags = 1;
        TU_OK(evs_read_query(&it, db, NULL, &q, 0, EVS_FORWARD, 0));
        break;
    default:
        item.tags = &stag;
        item.ntags = 1;
        TU_OK(evs_read_query(&it, db, NULL, &q, 0, EVS_FORWARD, 0));
        break;
    }
    drain(out, flags, 16, it, db);
}

/* Three events in customer-1: Ada's (subject person-42, metadata
 * encrypted), a plain one, Bob's (subject person-43, binary data, clear
 * metadata). */
static void append_three(evs_db *db)
{
    static const char *const tags_ada[] = {"customer:ada"};
    static const uint8_t bin[] = {0x00, 0x01, 'E', 'V', 'S', 0xff, 0x80};
    evs_event_data evs[3];
    evs[0] = ev_of("Registered", SECRET, SECRET_META, "person-42",
                   EVS_EVENT_ENCRYPT_METADATA, tags_ada, 1);
    evs[1] = ev_of("Audited", "{\"ok\":true}", "{\"by\":\"system\"}", NULL, 0, NULL, 0);
    evs[2] = tu_event_bin("Photo", bin, sizeof(bin));
    evs[2].subject = "person-43";
    evs[2].metadata = "{\"clear\":1}";
    evs[2].metadata_len = strlen("{\"clear\":1}");
    evs_append_result r;
    TU_OK(evs_append(&r, db, NULL, "customer-1", EVS_ANY, evs, 3));
}

static int has_tag(const tu_event_copy *e, const char *tag)
{
    for (size_t i = 0; i < e->ntags; i++)
        if (strcmp(e->tags[i], tag) == 0)
            return 1;
    return 0;
}

/* Ada's event as sent, or redacted */
static void check_ada(const tu_event_copy *e, unsigned flags, int forgotten)
{
    assert_string_equal(e->type, "Registered");
    assert_int_equal(e->content_type, EVS_CONTENT_JSON);
    assert_true(has_tag(e, "customer:ada"));
    assert_true(has_tag(e, "$subject:person-42"));
    if (!forgotten) {
        assert_int_equal(flags, EVS_EVENT_ENCRYPTED);
        assert_int_equal(e->data_len, strlen(SECRET));
        assert_string_equal(e->data, SECRET);
        assert_string_equal(e->metadata, SECRET_META);
        assert_true(e->data_nul_ok);
    } else {
        assert_int_equal(flags, EVS_EVENT_ENCRYPTED | EVS_EVENT_REDACTED);
        assert_int_equal(e->data_len, 0);
        assert_int_equal(e->metadata_len, 0);
    }
}

static void check_bob(const tu_event_copy *e, unsigned flags)
{
    assert_string_equal(e->type, "Photo");
    assert_int_equal(flags, EVS_EVENT_ENCRYPTED);
    assert_int_equal(e->content_type, EVS_CONTENT_BINARY);
    assert_int_equal(e->data_len, 7);
    assert_memory_equal(e->data, "\x00\x01" "EVS\xff\x80", 7);
    assert_string_equal(e->metadata, "{\"clear\":1}"); /* not encrypted */
    assert_true(has_tag(e, "$subject:person-43"));
}

/* Every read kind: Ada (forgotten or not), the plain one, Bob. */
static void check_reads(evs_db *db, int ada_forgotten)
{
    for (int k = 0; k < R_N; k++) {
        tu_events got;
        unsigned flags[16] = {0};
        read_kind(&got, flags, db, k);
        print_message("read %s: %zu events\n", rname[k], got.n);
        if (k == R_QUERY_TAG || k == R_QUERY_SUBJECT) {
            assert_int_equal(got.n, 1);
            check_ada(&got.v[0], flags[0], ada_forgotten);
        } else {
            assert_int_equal(got.n, 3);
            check_ada(&got.v[0], flags[0], ada_forgotten);
            assert_int_equal(flags[1], 0);
            assert_string_equal(got.v[1].data, "{\"ok\":true}");
            assert_string_equal(got.v[1].metadata, "{\"by\":\"system\"}");
            check_bob(&got.v[2], flags[2]);
        }
        tu_events_free(&got);
    }
}

/* Does the plaintext appear in what the backend stores? */
static int stored_anywhere(tu_store *s, const char *needle)
{
#if EVS_WITH_POSTGRES
    if (tu_backend_pg()) {
        PGconn *c = PQconnectdb(s->dir);
        assert_int_equal(PQstatus(c), CONNECTION_OK);
        const char *p[1] = {needle};
        PGresult *r = PQexecParams(c, "SELECT count(*) FROM evstore.events WHERE "
                                   "position(convert_to($1, 'UTF8') in data) > 0 OR "
                                   "position(convert_to($1, 'UTF8') in metadata) > 0",
                                   1, NULL, p, NULL, NULL, 0);
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        int n = atoi(PQgetvalue(r, 0, 0));
        PQclear(r);
        PQfinish(c);
        return n > 0;
    }
#endif
    size_t nsegs;
    char **segs = tu_segments(s->dir, &nsegs);
    int found = 0;
    for (size_t i = 0; i < nsegs; i++) {
        size_t len;
        unsigned char *b = tu_read_file(segs[i], &len);
        if (b && memmem(b, len, needle, strlen(needle)))
            found = 1;
        free(b);
    }
    tu_free_strings(segs, nsegs);
    return found;
}

/* ---- the cases ---------------------------------------------------------------- */

static void test_roundtrip_and_forget(void **state)
{
    tu_store *s = *state;
    append_three(s->db);
    check_reads(s->db, 0);
    assert_false(stored_anywhere(s, "Lovelace"));
    assert_false(stored_anywhere(s, "192.0.2.42"));
    assert_true(stored_anywhere(s, "system")); /* the plain event's metadata */

    /* a reopen keeps the keys */
    tu_store_reopen(s);
    check_reads(s->db, 0);

    TU_OK(evs_forget(s->db, NULL, "person-42"));
    check_reads(s->db, 1);
    TU_OK(evs_forget(s->db, NULL, "person-42")); /* idempotent */
    TU_CHECK(evs_forget(s->db, NULL, "person-99"), EVS_ENOTFOUND);
    TU_ASSERT_ERRMSG();
    TU_CHECK(evs_forget(s->db, "other-tenant", "person-43"), EVS_ENOTFOUND);

    /* no new key for a forgotten subject: refused, nothing written */
    uint64_t head0, head1;
    TU_OK(evs_head_position(&head0, s->db, NULL));
    evs_event_data e = ev_of("Registered", "{}", NULL, "person-42", 0, NULL, 0);
    TU_CHECK(evs_append(NULL, s->db, NULL, "customer-1", EVS_ANY, &e, 1), EVS_EINVAL);
    assert_non_null(strstr(evs_last_error(), "forgotten"));
    TU_OK(evs_head_position(&head1, s->db, NULL));
    assert_int_equal(head0, head1);

    /* the forget survives a reopen; person-43 still reads */
    tu_store_reopen(s);
    check_reads(s->db, 1);
}

/* The same person in another tenant is another subject. */
static void test_tenants_are_separate(void **state)
{
    tu_store *s = *state;
    evs_event_data e = ev_of("Registered", SECRET, NULL, "person-42", 0, NULL, 0);
    TU_OK(evs_append(NULL, s->db, "acme", "c-1", EVS_ANY, &e, 1));
    TU_OK(evs_append(NULL, s->db, "globex", "c-1", EVS_ANY, &e, 1));
    TU_OK(evs_forget(s->db, "acme", "person-42"));
    const char *tenants[2] = {"acme", "globex"};
    for (int t = 0; t < 2; t++) {
        evs_iter *it = NULL;
        tu_events got;
        unsigned flags[4];
        TU_OK(evs_read_stream(&it, s->db, tenants[t], "c-1", 0, EVS_FORWARD, 0));
        drain(&got, flags, 4, it, s->db);
        assert_int_equal(got.n, 1);
        assert_int_equal(flags[0], t == 0 ? EVS_EVENT_ENCRYPTED | EVS_EVENT_REDACTED
                                          : EVS_EVENT_ENCRYPTED);
        assert_int_equal(got.v[0].data_len, t == 0 ? 0 : strlen(SECRET));
        tu_events_free(&got);
    }
}

/* Another handle's cached key expires within a second of the forget. */
static void test_other_handle_sees_forget(void **state)
{
    tu_store *s = *state;
    evs_event_data e = ev_of("Registered", SECRET, NULL, "person-7", 0, NULL, 0);
    TU_OK(evs_append(NULL, s->db, NULL, "c-7", EVS_ANY, &e, 1));
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    o.flags = EVS_OPEN_READONLY;
    evs_db *ro = NULL;
    TU_OK(evs_open(&ro, s->dir, &o));
    for (int round = 0; round < 2; round++) {
        evs_iter *it = NULL;
        tu_events got;
        unsigned flags[4];
        TU_OK(evs_read_stream(&it, ro, NULL, "c-7", 0, EVS_FORWARD, 0));
        drain(&got, flags, 4, it, ro);
        assert_int_equal(got.n, 1);
        assert_int_equal(flags[0], round == 0 ? EVS_EVENT_ENCRYPTED
                                              : EVS_EVENT_ENCRYPTED | EVS_EVENT_REDACTED);
        tu_events_free(&got);
        if (round == 0) {
            TU_CHECK(evs_forget(ro, NULL, "person-7"), EVS_EREADONLY);
            TU_OK(evs_forget(s->db, NULL, "person-7"));
            tu_sleep_ms(1100);
        }
    }
    TU_OK(evs_close(ro));
}

/* An exact retry (same ids, same events) is recognised as a retry: the
 * envelopes are deterministic for a given event. */
static void test_retry_is_idempotent(void **state)
{
    tu_store *s = *state;
    evs_event_data e = ev_of("Registered", SECRET, SECRET_META, "person-8",
                             EVS_EVENT_ENCRYPT_METADATA, NULL, 0);
    evs_uuid_generate(&e.id);
    evs_append_result r1, r2;
    TU_OK(evs_append(&r1, s->db, NULL, "c-8", EVS_NO_STREAM, &e, 1));
    TU_OK(evs_append(&r2, s->db, NULL, "c-8", EVS_NO_STREAM, &e, 1));
    assert_int_equal(r1.last_position, r2.last_position);
    /* the same id with other data is a duplicate, as for plain events */
    e.data = "{\"name\":\"Someone else\"}";
    e.data_len = strlen(e.data);
    TU_CHECK(evs_append(NULL, s->db, NULL, "c-8", EVS_ANY, &e, 1), EVS_EDUPLICATE);
}

static void test_bad_input(void **state)
{
    tu_store *s = *state;
    char longname[EVS_MAX_STREAM_LEN + 2];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    const char *many[EVS_MAX_TAGS];
    char names[EVS_MAX_TAGS][8];
    for (int i = 0; i < EVS_MAX_TAGS; i++) {
        snprintf(names[i], sizeof(names[i]), "t%d", i);
        many[i] = names[i];
    }
    static const char *const forged[] = {"$subject:p"};
    struct {
        evs_event_data e;
        const char *says;
    } bad[] = {
        {ev_of("T", "{}", NULL, "", 0, NULL, 0), "subject is empty"},
        {ev_of("T", "{}", NULL, longname, 0, NULL, 0), "subject is longer"},
        {ev_of("T", "{}", "{}", NULL, EVS_EVENT_ENCRYPT_METADATA, NULL, 0), "needs a subject"},
        {ev_of("T", "{}", NULL, "p", 0x80, NULL, 0), "unknown flags"},
        {ev_of("T", "{}", NULL, "p", 0, many, EVS_MAX_TAGS), "at most 63 tags"},
        {ev_of("T", "{\"a\":", NULL, "p", 0, NULL, 0), "not valid JSON"},
        {ev_of("T", "{}", NULL, NULL, 0, forged, 1), "the store's mark"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        TU_CHECK(evs_append(NULL, s->db, NULL, "c-bad", EVS_ANY, &bad[i].e, 1), EVS_EINVAL);
        print_message("refused: %s\n", evs_last_error());
        assert_non_null(strstr(evs_last_error(), bad[i].says));
    }
    uint64_t head;
    TU_OK(evs_head_position(&head, s->db, NULL));
    assert_int_equal(head, 0);
    /* nothing was written, not even a key */
    TU_CHECK(evs_forget(s->db, NULL, "p"), EVS_ENOTFOUND);
    TU_CHECK(evs_forget(NULL, NULL, "p"), EVS_EINVAL);
    TU_CHECK(evs_forget(s->db, NULL, NULL), EVS_EINVAL);
    TU_CHECK(evs_forget(s->db, NULL, ""), EVS_EINVAL);
    TU_CHECK(evs_forget(s->db, NULL, longname), EVS_EINVAL);
    /* a query by "$subject:" is allowed, by another '$' tag not */
    evs_iter *it = NULL;
    const char *tag = "$subject:";
    evs_query_item item = {.tags = &tag, .ntags = 1};
    evs_query q = {&item, 1};
    TU_CHECK(evs_read_query(&it, s->db, NULL, &q, 0, EVS_FORWARD, 0), EVS_EINVAL);
}

/* Threads making the same new subjects' keys at once (the key store's
 * race: one key per subject wins, every thread encrypts under it). */
#define RACE_THREADS 6
#define RACE_EVENTS 15
typedef struct race_arg {
    evs_db *db;
    int t;
} race_arg;

static void *race_thread(void *p)
{
    race_arg *a = p;
    for (int i = 0; i < RACE_EVENTS; i++) {
        char stream[32], subject[32], json[64];
        snprintf(stream, sizeof(stream), "race-%d", a->t);
        snprintf(subject, sizeof(subject), "racer-%d", i % 5);
        snprintf(json, sizeof(json), "{\"t\":%d,\"i\":%d}", a->t, i);
        evs_event_data e = ev_of("Raced", json, NULL, subject, 0, NULL, 0);
        int rc = evs_append(NULL, a->db, NULL, stream, EVS_ANY, &e, 1);
        if (rc != 0)
            tu_fail("thread %d, event %d: %s: %s", a->t, i, tu_errname(rc),
                    evs_last_error());
    }
    return NULL;
}

static void test_concurrent_first_keys(void **state)
{
    tu_store *s = *state;
    pthread_t th[RACE_THREADS];
    race_arg args[RACE_THREADS];
    tu_failures_reset();
    for (int t = 0; t < RACE_THREADS; t++) {
        args[t] = (race_arg){s->db, t};
        assert_int_equal(pthread_create(&th[t], NULL, race_thread, &args[t]), 0);
    }
    for (int t = 0; t < RACE_THREADS; t++)
        pthread_join(th[t], NULL);
    TU_ASSERT_NO_THREAD_FAILURES();
    /* every event decrypts, from a fresh handle too (keys as stored) */
    for (int round = 0; round < 2; round++) {
        if (round == 1)
            tu_store_reopen(s);
        tu_events got;
        unsigned flags[RACE_THREADS * RACE_EVENTS];
        evs_iter *it = NULL;
        TU_OK(evs_read_all(&it, s->db, NULL, 0, 0));
        drain(&got, flags, RACE_THREADS * RACE_EVENTS, it, s->db);
        assert_int_equal(got.n, RACE_THREADS * RACE_EVENTS);
        for (size_t i = 0; i < got.n; i++) {
            assert_int_equal(flags[i], EVS_EVENT_ENCRYPTED);
            assert_true(got.v[i].data_len > 0 && got.v[i].data[0] == '{');
        }
        tu_events_free(&got);
    }
}

/* ---- damaged envelopes: a fake inner iterator --------------------------------- */

typedef struct fake_iter {
    evs_iter base;
    const evs_event *evs;
    size_t n, i;
} fake_iter;

static int fake_next(const evs_event **ev, evs_iter *base)
{
    fake_iter *f = (fake_iter *)base;
    if (f->i >= f->n)
        return EVS_ITEROVER;
    *ev = &f->evs[f->i++];
    return 0;
}
static int fake_marker(uint64_t *out, const evs_iter *base)
{
    (void)base;
    *out = 4242;
    return 0;
}
static void fake_free(evs_iter *base) { free(base); }
static const evs__iter_ops fake_ops = {fake_next, fake_marker, fake_free};

static void test_damaged_envelopes(void **state)
{
    tu_store *s = *state;
    evs_event_data e[2] = {ev_of("A", SECRET, SECRET_META, "person-9",
                                 EVS_EVENT_ENCRYPT_METADATA, NULL, 0),
                           ev_of("B", "{\"other\":1}", NULL, "person-9", 0, NULL, 0)};
    TU_OK(evs_append(NULL, s->db, NULL, "c-9", EVS_ANY, e, 2));
    /* the stored events, unwrapped: evs_read_log through the backend */
    evs_iter *raw = NULL;
    TU_OK(s->db->ops->read_all(&raw, s->db, NULL, 1, 0, EVS__READ_SYSTEM));
    const evs_event *ev;
    evs_event stored[2];
    uint8_t *copies[2], *mcopy = NULL;
    const char *tagv[2][4];
    for (int i = 0; i < 2; i++) {
        TU_OK(evs_iter_next(&ev, raw));
        stored[i] = *ev;
        copies[i] = malloc(ev->data_len + 1);
        memcpy(copies[i], ev->data, ev->data_len + 1);
        stored[i].data = copies[i];
        for (size_t t = 0; t < ev->ntags && t < 4; t++)
            tagv[i][t] = strdup(ev->tags[t]);
        stored[i].tags = tagv[i];
        stored[i].tenant = "";
        stored[i].stream = "c-9";
        stored[i].type = i ? "B" : "A";
        assert_int_equal(ev->content_type, EVS_CONTENT_BINARY);
        assert_int_equal(ev->data_len, (i ? strlen("{\"other\":1}") : strlen(SECRET)) + 48);
        if (i == 0) {
            mcopy = malloc(ev->metadata_len + 1);
            memcpy(mcopy, ev->metadata, ev->metadata_len + 1);
            stored[0].metadata = mcopy;
        } else {
            stored[1].metadata = "";
        }
    }
    evs_iter_free(raw);

    /* fakes: intact; a flipped ciphertext byte; A's envelope in B's
     * event (bound to A's id); truncated; the tag without an envelope */
    evs_event fk[6];
    uint8_t flipped[512], truncated[40];
    fk[0] = stored[0];
    fk[1] = stored[0];
    memcpy(flipped, copies[0], stored[0].data_len);
    flipped[40] ^= 1;
    fk[1].data = flipped;
    fk[2] = stored[1];
    fk[2].data = copies[0];
    fk[2].data_len = stored[0].data_len;
    fk[3] = stored[0];
    memcpy(truncated, copies[0], sizeof(truncated));
    fk[3].data = truncated;
    fk[3].data_len = sizeof(truncated);
    fk[4] = stored[1];
    fk[4].data = "plain bytes";
    fk[4].data_len = 11;
    fk[5] = stored[1];
    fake_iter *f = calloc(1, sizeof(*f));
    f->base.ops = &fake_ops;
    f->base.db = s->db;
    f->evs = fk;
    f->n = 6;
    evs_iter *it = &f->base;
    TU_OK(evs__crypto_wrap(&it, s->db));
    uint64_t m;
    TU_OK(evs_iter_marker(&m, it));
    assert_int_equal(m, 4242);
    const unsigned want[6] = {
        EVS_EVENT_ENCRYPTED,
        EVS_EVENT_ENCRYPTED | EVS_EVENT_REDACTED | EVS_EVENT_DAMAGED,
        EVS_EVENT_ENCRYPTED | EVS_EVENT_REDACTED | EVS_EVENT_DAMAGED,
        EVS_EVENT_ENCRYPTED | EVS_EVENT_REDACTED | EVS_EVENT_DAMAGED,
        EVS_EVENT_ENCRYPTED | EVS_EVENT_REDACTED | EVS_EVENT_DAMAGED,
        EVS_EVENT_ENCRYPTED,
    };
    for (int i = 0; i < 6; i++) {
        TU_OK(evs_iter_next(&ev, it));
        print_message("fake %d: flags %u, %zu bytes\n", i, ev->flags, ev->data_len);
        assert_int_equal(ev->flags, want[i]);
        if (ev->flags & EVS_EVENT_REDACTED) {
            assert_int_equal(ev->data_len, 0);
        } else if (i == 0) {
            assert_string_equal(ev->data, SECRET);
            assert_string_equal(ev->metadata, SECRET_META);
        } else {
            assert_string_equal(ev->data, "{\"other\":1}");
        }
    }
    TU_CHECK(evs_iter_next(&ev, it), EVS_ITEROVER);
    evs_iter_free(it);
    for (int i = 0; i < 2; i++) {
        free(copies[i]);
        for (size_t t = 0; t < stored[i].ntags && t < 4; t++)
            free((void *)tagv[i][t]);
    }
    free(mcopy);
}

/* Embedded: the keys file removed or damaged: events read redacted, no
 * crash; a later append under a live subject makes a new key. */
static void test_keys_file_missing_or_damaged(void **state)
{
    tu_store *s = *state;
    TU_EMBEDDED_ONLY("the embedded store's keys file");
    append_three(s->db);
    tu_store_close(s);
    char *keys = tu_path_join(s->dir, "keys");
    struct stat st;
    assert_int_equal(stat(keys, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* a flipped bit in person-42's key slot (the first, at 512) */
    int fd = open(keys, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, 512 + 20), 1);
    b ^= 1;
    assert_int_equal(pwrite(fd, &b, 1, 512 + 20), 1);
    close(fd);
    tu_store_open(s);
    {
        tu_events got;
        unsigned flags[16];
        read_kind(&got, flags, s->db, R_STREAM);
        assert_int_equal(got.n, 3);
        assert_int_equal(flags[0], EVS_EVENT_ENCRYPTED | EVS_EVENT_REDACTED |
                                       EVS_EVENT_DAMAGED);
        check_bob(&got.v[2], flags[2]);
        tu_events_free(&got);
    }
    /* an append under the damaged subject is refused */
    evs_event_data e = ev_of("X", "{}", NULL, "person-42", 0, NULL, 0);
    TU_CHECK(evs_append(NULL, s->db, NULL, "c-x", EVS_ANY, &e, 1), EVS_ECORRUPT);
    tu_store_close(s);

    /* the file gone */
    assert_int_equal(unlink(keys), 0);
    tu_store_open(s);
    {
        tu_events got;
        unsigned flags[16];
        read_kind(&got, flags, s->db, R_ALL);
        assert_int_equal(got.n, 3);
        assert_int_equal(flags[0], EVS_EVENT_ENCRYPTED | EVS_EVENT_REDACTED);
        assert_int_equal(flags[1], 0);
        assert_int_equal(flags[2], EVS_EVENT_ENCRYPTED | EVS_EVENT_REDACTED);
        tu_events_free(&got);
    }
    TU_OK(evs_append(NULL, s->db, NULL, "c-x", EVS_ANY, &e, 1));
    free(keys);
}

/* Embedded: a backup taken after the forget holds no key of the subject;
 * one taken before still does (docs/ERASURE.md says so). */
static void test_backup_after_forget(void **state)
{
    tu_store *s = *state;
    TU_EMBEDDED_ONLY("evs_backup is the embedded store's");
    append_three(s->db);
    char *before = tu_path_join(s->tmp, "backup-before");
    char *after = tu_path_join(s->tmp, "backup-after");
    evs_backup_result br;
    TU_OK(evs_backup(&br, s->db, before, NULL));
    TU_OK(evs_forget(s->db, NULL, "person-42"));
    TU_OK(evs_backup(&br, s->db, after, NULL));
    for (int k = 0; k < 2; k++) {
        evs_db *db = NULL;
        TU_OK(evs_open(&db, k ? after : before, NULL));
        tu_events got;
        unsigned flags[16];
        read_kind(&got, flags, db, R_LOG);
        assert_int_equal(got.n, 3);
        check_ada(&got.v[0], flags[0], k == 1);
        check_bob(&got.v[2], flags[2]);
        tu_events_free(&got);
        TU_OK(evs_close(db));
    }
    free(before);
    free(after);
}

/* `evs export` after a forget: the subject's event redacted, marked. */
static void test_export_after_forget(void **state)
{
    tu_store *s = *state;
    append_three(s->db);
    TU_OK(evs_forget(s->db, NULL, "person-42"));
    tu_store_close(s);
    char *out = NULL;
    const char *argv[] = {"--db", s->dir, "export", NULL};
    assert_int_equal(tu_run_cli(&out, argv), 0);
    print_message("%s", out);
    assert_null(strstr(out, "Lovelace"));
    assert_null(strstr(out, "192.0.2.42"));
    const char *ada = strstr(out, "\"Registered\"");
    assert_non_null(ada);
    const char *eol = strchr(ada, '\n');
    const char *red = strstr(ada, "\"redacted\":true");
    assert_true(red && red < eol);
    assert_non_null(strstr(out, "$subject:person-42"));
    /* Bob's binary data, decrypted: "AAFFVlP/gA==" */
    assert_non_null(strstr(out, "AAFFVlP/gA=="));
    free(out);
    tu_store_open(s);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_roundtrip_and_forget),
        T(test_tenants_are_separate),
        T(test_other_handle_sees_forget),
        T(test_retry_is_idempotent),
        T(test_concurrent_first_keys),
        T(test_bad_input),
        T(test_damaged_envelopes),
        T(test_keys_file_missing_or_damaged),
        T(test_backup_after_forget),
        T(test_export_after_forget),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
