/*
 * test_explore.c -- exploring a store (evstore.h, "Exploring"): one event
 * by id in any tenant, the streams of a tenant or of every tenant (order,
 * prefix, paging, system streams), the tenants with their event counts
 * (checked against evs_read_all), capped counts, the lists of a large
 * store while a writer appends (and, embedded, grows the index's map),
 * and bad arguments. Runs on both backends (test_explore_pg).
 */
#include "testutil.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Append one event with a fresh id to tenant/stream (NULL: no stream),
 * with tags; returns its id. */
static evs_uuid put(evs_db *db, const char *tenant, const char *stream, const char *type,
                    const char *json, const char *const *tags, size_t ntags)
{
    evs_event_data e = tu_event_id(type, json);
    e.tags = tags;
    e.ntags = ntags;
    evs_stream_append part = {stream, EVS_ANY, &e, 1};
    evs_append_request r = EVS_APPEND_REQUEST_INIT;
    r.tenant = tenant;
    r.parts = &part;
    r.nparts = 1;
    TU_OK(evs_append_ex(NULL, NULL, db, &r));
    return e.id;
}

/* ---- evs_read_event -------------------------------------------------------- */

static void test_read_event(void **state)
{
    tu_store *s = *state;
    const char *tags[] = {"k:v", "color:red"};
    evs_uuid a = put(s->db, NULL, "account-1", "Opened", "{\"n\":1}", NULL, 0);
    evs_uuid b = put(s->db, "tenant-b", "order-7", "Placed", "{\"n\":2}", tags, 2);
    evs_uuid c = put(s->db, "tenant-b", NULL, "Loose", "[1,2]", NULL, 0);
    uint64_t head = tu_head(s->db, NULL);
    TU_OK(evs_checkpoint_set(s->db, "tenant-b", "proj", head));

    evs_iter *it = NULL;
    const evs_event *ev;
    uint64_t marker = 0;

    TU_OK(evs_read_event(&it, s->db, &b));
    TU_OK(evs_iter_next(&ev, it));
    assert_string_equal(ev->tenant, "tenant-b");
    assert_string_equal(ev->stream, "order-7");
    assert_string_equal(ev->type, "Placed");
    assert_int_equal(ev->position, 2);
    assert_int_equal(ev->stream_version, 0);
    tu_assert_uuid_equal(&ev->id, &b);
    assert_int_equal(ev->data_len, 7);
    assert_memory_equal(ev->data, "{\"n\":2}", 7);
    assert_int_equal(ev->ntags, 2);
    assert_string_equal(ev->tags[0], "k:v");
    assert_string_equal(ev->tags[1], "color:red");
    TU_OK(evs_iter_marker(&marker, it));
    assert_int_equal(marker, 2);
    TU_CHECK(evs_iter_next(&ev, it), EVS_ITEROVER);
    TU_CHECK(evs_iter_next(&ev, it), EVS_ITEROVER);
    evs_iter_free(it);

    /* the default tenant's, and an event without a stream */
    TU_OK(evs_read_event(&it, s->db, &a));
    TU_OK(evs_iter_next(&ev, it));
    assert_string_equal(ev->tenant, "");
    assert_string_equal(ev->stream, "account-1");
    assert_int_equal(ev->position, 1);
    evs_iter_free(it);
    TU_OK(evs_read_event(&it, s->db, &c));
    TU_OK(evs_iter_next(&ev, it));
    assert_string_equal(ev->stream, "");
    assert_int_equal(ev->stream_version, EVS_NO_STREAM);
    assert_int_equal(ev->position, 3);
    assert_int_equal(ev->ntags, 0);
    evs_iter_free(it);

    /* a checkpoint's event is found by its id too: find it via its stream */
    tu_events cp = {0};
    TU_OK(tu_read_stream(&cp, s->db, "tenant-b", "$checkpoint-proj", 0, EVS_FORWARD, 0));
    assert_int_equal(cp.n, 1);
    TU_OK(evs_read_event(&it, s->db, &cp.v[0].id));
    TU_OK(evs_iter_next(&ev, it));
    assert_string_equal(ev->stream, "$checkpoint-proj");
    assert_string_equal(ev->tenant, "tenant-b");
    evs_iter_free(it);
    tu_events_free(&cp);

    /* absent: EVS_ENOTFOUND naming the id, *out NULL */
    evs_uuid none;
    evs_uuid_generate(&none);
    char text[37];
    evs_uuid_format(text, &none);
    it = (evs_iter *)&none; /* must be set to NULL */
    TU_CHECK(evs_read_event(&it, s->db, &none), EVS_ENOTFOUND);
    assert_null(it);
    assert_non_null(strstr(evs_last_error(), text));

    /* the event survives a reopen (read from the store, not a cache) */
    tu_store_reopen(s);
    TU_OK(evs_read_event(&it, s->db, &b));
    TU_OK(evs_iter_next(&ev, it));
    assert_string_equal(ev->type, "Placed");
    evs_iter_free(it);
}

static void test_read_event_bad_args(void **state)
{
    tu_store *s = *state;
    evs_iter *it = NULL;
    evs_uuid id;
    evs_uuid_generate(&id);
    TU_CHECK(evs_read_event(NULL, s->db, &id), EVS_EINVAL);
    TU_ASSERT_ERRMSG();
    TU_CHECK(evs_read_event(&it, NULL, &id), EVS_EINVAL);
    assert_null(it);
    TU_CHECK(evs_read_event(&it, s->db, NULL), EVS_EINVAL);
    assert_null(it);
    assert_non_null(strstr(evs_last_error(), "id"));
}

/* ---- evs_list_streams -------------------------------------------------------- */

/* The list as "tenant/stream=version" lines, for one comparison. */
static char *render(const evs_stream_list *l)
{
    size_t cap = 64, len = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    out[0] = '\0';
    for (size_t i = 0; i < l->count; i++) {
        char line[700];
        int n = snprintf(line, sizeof line, "%s/%s=%" PRId64 "\n", l->streams[i].tenant,
                         l->streams[i].stream, l->streams[i].last_version);
        while (len + (size_t)n + 1 > cap) {
            cap *= 2;
            out = realloc(out, cap);
            assert_non_null(out);
        }
        memcpy(out + len, line, (size_t)n + 1);
        len += (size_t)n;
    }
    return out;
}

static void expect_list(evs_db *db, const evs_list_streams_options *o, const char *want,
                        int more)
{
    evs_stream_list *l = NULL;
    TU_OK(evs_list_streams(&l, db, o));
    assert_non_null(l);
    char *got = render(l);
    if (strcmp(got, want) != 0)
        print_error("list_streams: got\n%swant\n%s", got, want);
    assert_string_equal(got, want);
    assert_int_equal(l->more, more);
    free(got);
    evs_stream_list_free(l);
}

static void fill_streams(evs_db *db)
{
    put(db, NULL, "order-1", "A", "{}", NULL, 0);
    put(db, NULL, "account-2", "A", "{}", NULL, 0);
    put(db, NULL, "account-10", "A", "{}", NULL, 0);
    put(db, NULL, "account-2", "A", "{}", NULL, 0);
    put(db, NULL, "b", "A", "{}", NULL, 0);
    put(db, NULL, NULL, "Loose", "{}", NULL, 0); /* in no stream */
    put(db, "t2", "account-2", "A", "{}", NULL, 0);
    put(db, "t1", "x", "A", "{}", NULL, 0);
    put(db, "t1", "x", "A", "{}", NULL, 0);
    put(db, "t1", "x", "A", "{}", NULL, 0);
    TU_OK(evs_checkpoint_set(db, NULL, "p", 1));
    TU_OK(evs_checkpoint_set(db, NULL, "p", 2));
    TU_OK(evs_checkpoint_set(db, "t1", "q", 3));
}

static void test_list_streams(void **state)
{
    tu_store *s = *state;
    evs_list_streams_options o = EVS_LIST_STREAMS_OPTIONS_INIT;
    fill_streams(s->db);

    /* the default tenant, byte order, system streams left out */
    expect_list(s->db, &o,
                "/account-10=0\n/account-2=1\n/b=0\n/order-1=0\n", 0);
    /* a prefix */
    o.prefix = "account-";
    expect_list(s->db, &o, "/account-10=0\n/account-2=1\n", 0);
    o.prefix = "zz";
    expect_list(s->db, &o, "", 0);
    /* system streams: by flag, or a '$' prefix */
    o.prefix = NULL;
    o.flags = EVS_LIST_SYSTEM;
    expect_list(s->db, &o,
                "/$checkpoint-p=1\n/account-10=0\n/account-2=1\n/b=0\n/order-1=0\n", 0);
    o.flags = 0;
    o.prefix = "$";
    expect_list(s->db, &o, "/$checkpoint-p=1\n", 0);
    o.prefix = NULL;

    /* paging: limit and after */
    o.limit = 2;
    expect_list(s->db, &o, "/account-10=0\n/account-2=1\n", 1);
    o.after = "account-2";
    expect_list(s->db, &o, "/b=0\n/order-1=0\n", 0);
    o.limit = 1;
    o.after = "b";
    expect_list(s->db, &o, "/order-1=0\n", 0);
    o.after = "az"; /* not a stream: the ones after it */
    expect_list(s->db, &o, "/b=0\n", 1);
    o.after = "order-1";
    expect_list(s->db, &o, "", 0);
    o.limit = 0;
    o.after = "a";
    o.prefix = "account-2";
    expect_list(s->db, &o, "/account-2=1\n", 0);
    o.after = "account-2"; /* the prefix itself, excluded */
    expect_list(s->db, &o, "", 0);
    o.after = NULL;
    o.prefix = NULL;

    /* another tenant; a tenant without streams */
    o.tenant = "t1";
    expect_list(s->db, &o, "t1/x=2\n", 0);
    o.flags = EVS_LIST_SYSTEM;
    expect_list(s->db, &o, "t1/$checkpoint-q=0\nt1/x=2\n", 0);
    o.flags = 0;
    o.tenant = "nobody";
    expect_list(s->db, &o, "", 0);

    /* every tenant, in (tenant, stream) order, paged across tenants */
    o.tenant = NULL;
    o.all_tenants = 1;
    const char *all = "/account-10=0\n/account-2=1\n/b=0\n/order-1=0\nt1/x=2\nt2/account-2=0\n";
    expect_list(s->db, &o, all, 0);
    o.prefix = "account-2";
    expect_list(s->db, &o, "/account-2=1\nt2/account-2=0\n", 0);
    o.prefix = NULL;
    o.limit = 4;
    expect_list(s->db, &o, "/account-10=0\n/account-2=1\n/b=0\n/order-1=0\n", 1);
    o.after_tenant = "";
    o.after = "order-1";
    expect_list(s->db, &o, "t1/x=2\nt2/account-2=0\n", 0);
    o.after_tenant = "t0"; /* not a tenant: from the next one */
    o.after = "zzz";
    expect_list(s->db, &o, "t1/x=2\nt2/account-2=0\n", 0);
    o.after_tenant = "t1";
    o.after = "x";
    o.limit = 1;
    expect_list(s->db, &o, "t2/account-2=0\n", 0);

    /* a page walk returns every stream once */
    evs_list_streams_options p = EVS_LIST_STREAMS_OPTIONS_INIT;
    p.all_tenants = 1;
    p.limit = 1;
    char walked[1024] = "", at[EVS_MAX_TENANT_LEN + 1], as[EVS_MAX_STREAM_LEN + 1];
    int pages = 0;
    for (;;) {
        evs_stream_list *l = NULL;
        TU_OK(evs_list_streams(&l, s->db, &p));
        char *r = render(l);
        strcat(walked, r);
        free(r);
        pages++;
        int more = l->more;
        if (l->count) {
            snprintf(at, sizeof at, "%s", l->streams[l->count - 1].tenant);
            snprintf(as, sizeof as, "%s", l->streams[l->count - 1].stream);
            p.after_tenant = at;
            p.after = as;
        }
        evs_stream_list_free(l);
        if (!more)
            break;
        assert_true(pages < 20);
    }
    assert_string_equal(walked, all);
    assert_int_equal(pages, 6);
}

static void test_list_streams_bad_args(void **state)
{
    tu_store *s = *state;
    evs_stream_list *l = NULL;
    evs_list_streams_options o = EVS_LIST_STREAMS_OPTIONS_INIT;
    char longname[EVS_MAX_STREAM_LEN + 2];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    put(s->db, NULL, "a-1", "A", "{}", NULL, 0);

    TU_CHECK(evs_list_streams(NULL, s->db, &o), EVS_EINVAL);
    TU_CHECK(evs_list_streams(&l, NULL, &o), EVS_EINVAL);
    assert_null(l);
    TU_CHECK(evs_list_streams(&l, s->db, NULL), EVS_EINVAL);
#define BAD(field, value, words)                                             \
    do {                                                                     \
        evs_list_streams_options b_ = EVS_LIST_STREAMS_OPTIONS_INIT;         \
        b_.field = value;                                                    \
        l = (evs_stream_list *)&b_;                                          \
        TU_CHECK(evs_list_streams(&l, s->db, &b_), EVS_EINVAL);              \
        assert_null(l);                                                      \
        if (!strstr(evs_last_error(), words))                                \
            print_error("message: %s\n", evs_last_error());                  \
        assert_non_null(strstr(evs_last_error(), words));                    \
    } while (0)
    BAD(version, 99, "version");
    BAD(all_tenants, 2, "all_tenants");
    BAD(prefix, longname, "prefix");
    BAD(prefix, "\xff", "UTF-8");
    BAD(after, longname, "after");
    BAD(after_tenant, "t", "after_tenant");
    BAD(flags, 0x80, "flags");
    BAD(tenant, longname, "tenant");
#undef BAD
    o.all_tenants = 1;
    o.tenant = "t";
    TU_CHECK(evs_list_streams(&l, s->db, &o), EVS_EINVAL);
    o.tenant = NULL;
    o.after = "a";
    TU_CHECK(evs_list_streams(&l, s->db, &o), EVS_EINVAL);
    assert_non_null(strstr(evs_last_error(), "after_tenant"));
    o.after = NULL;
    o.after_tenant = "";
    TU_CHECK(evs_list_streams(&l, s->db, &o), EVS_EINVAL);
    /* and a good call still works after them */
    o.after_tenant = NULL;
    TU_OK(evs_list_streams(&l, s->db, &o));
    assert_int_equal(l->count, 1);
    evs_stream_list_free(l);
    evs_stream_list_free(NULL);
}

/* ---- evs_list_tenants -------------------------------------------------------- */

static uint64_t count_all(evs_db *db, const char *tenant)
{
    tu_events e = {0};
    TU_OK(tu_read_all(&e, db, tenant, 0, 0));
    uint64_t n = e.n;
    tu_events_free(&e);
    return n;
}

static void test_list_tenants(void **state)
{
    tu_store *s = *state;
    evs_tenant_list *l = NULL;

    /* empty store: an empty list */
    TU_OK(evs_list_tenants(&l, s->db));
    assert_non_null(l);
    assert_int_equal(l->count, 0);
    evs_tenant_list_free(l);

    tu_rng r;
    tu_rng_init(&r, tu_seed_default("test_list_tenants", 14));
    const char *names[] = {"", "tenant-00", "tenant-01", "ü-tenant"};
    uint64_t want[4] = {0};
    for (int i = 0; i < 300; i++) {
        size_t t = (size_t)tu_rng_range(&r, 1, 3);
        if (tu_rng_range(&r, 0, 9) == 0)
            t = 0;
        char stream[32];
        snprintf(stream, sizeof stream, "s-%d", (int)tu_rng_range(&r, 0, 20));
        put(s->db, names[t], tu_rng_range(&r, 0, 5) == 0 ? NULL : stream, "E", "{}",
            NULL, 0);
        want[t]++;
    }
    /* checkpoints are not counted; a tenant with only a checkpoint is
     * listed with 0 */
    TU_OK(evs_checkpoint_set(s->db, "tenant-01", "c", 5));
    TU_OK(evs_checkpoint_set(s->db, "only-checkpoints", "c", 5));

    TU_OK(evs_list_tenants(&l, s->db));
    const char *order[] = {"", "only-checkpoints", "tenant-00", "tenant-01", "ü-tenant"};
    const uint64_t *cnt[] = {&want[0], NULL, &want[1], &want[2], &want[3]};
    assert_int_equal(l->count, 5);
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal(l->tenants[i].tenant, order[i]);
        assert_int_equal(l->tenants[i].events, cnt[i] ? *cnt[i] : 0);
        assert_int_equal(l->tenants[i].events, count_all(s->db, order[i]));
    }
    evs_tenant_list_free(l);

    tu_store_reopen(s);
    TU_OK(evs_list_tenants(&l, s->db));
    assert_int_equal(l->count, 5);
    assert_int_equal(l->tenants[2].events, want[1]);
    evs_tenant_list_free(l);

    TU_CHECK(evs_list_tenants(NULL, s->db), EVS_EINVAL);
    l = (evs_tenant_list *)&r;
    TU_CHECK(evs_list_tenants(&l, NULL), EVS_EINVAL);
    assert_null(l);
    evs_tenant_list_free(NULL);
}

/* Capped counts: min(count, cap); cap 1 says whether a tenant has events
 * (what the CLI's hint asks), cap 0 counts all. */
static void test_list_tenants_capped(void **state)
{
    tu_store *s = *state;
    evs_tenant_list *l = NULL;
    for (int i = 0; i < 7; i++)
        put(s->db, "seven", "s-1", "E", "{}", NULL, 0);
    put(s->db, "one", NULL, "E", "{}", NULL, 0);
    TU_OK(evs_checkpoint_set(s->db, "zero", "c", 1));
    const uint64_t caps[] = {0, 1, 2, 7, 8, UINT64_MAX};
    for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
        uint64_t cap = caps[c];
        TU_OK(evs_list_tenants_capped(&l, s->db, cap));
        assert_int_equal(l->count, 3);
        assert_string_equal(l->tenants[0].tenant, "one");
        assert_string_equal(l->tenants[1].tenant, "seven");
        assert_string_equal(l->tenants[2].tenant, "zero");
        assert_int_equal(l->tenants[0].events, 1);
        assert_int_equal(l->tenants[1].events, cap && cap < 7 ? cap : 7);
        assert_int_equal(l->tenants[2].events, 0);
        evs_tenant_list_free(l);
    }
    TU_CHECK(evs_list_tenants_capped(NULL, s->db, 1), EVS_EINVAL);
    l = (evs_tenant_list *)s;
    TU_CHECK(evs_list_tenants_capped(&l, NULL, 1), EVS_EINVAL);
    assert_null(l);
}

/*
 * The lists of a store while a writer thread appends. A listing of more
 * than a thousand keys is read in renewed snapshots on the embedded store
 * (explore.c, "Long walks"), with the index's map started small so that
 * it grows (a remap) many times meanwhile: the lists must still be those
 * of one snapshot (fixed tenants exact; the busy tenant's count and its
 * growing stream's version between what was committed before and after
 * the call; tenants and streams created meanwhile either absent or
 * whole), and nothing may deadlock.
 */
#define GROW_TENANTS 150 /* fixed tenants, GROW_STREAMS streams each */
#define GROW_STREAMS 60  /* (6 on PostgreSQL: the renewals are the embedded store's) */
#define GROW_EVENTS 4    /* events per fixed stream */
#define GROW_BATCH 20    /* events per writer append */

typedef struct grow_writer {
    evs_db *db;
    atomic_int stop;
    /* batches: begun counts a batch before its first append, done after
     * its last, so that what a list saw is between done before the call
     * and begun after it */
    atomic_uint_fast64_t begun, done;
} grow_writer;

/* Appends GROW_BATCH events to tenant "z-busy" (listed last, after the
 * renewals): GROW_BATCH - 1 to stream "g" (its version grows) and one to
 * a new stream "n-<batch>", in one request (one snapshot has all of it or
 * none); every fifth batch then a new tenant "m-new-<batch>" with
 * GROW_BATCH events in one stream. */
static void *grow_write(void *arg)
{
    grow_writer *w = arg;
    static const char *tags[] = {"k:v", "color:red", "size:xl"};
    evs_event_data e[GROW_BATCH], f[GROW_BATCH];
    char stream[32], tenant[32];
    for (uint64_t b = 0; !atomic_load(&w->stop) && tu_failures() == 0; b++) {
        atomic_fetch_add(&w->begun, 1);
        for (int i = 0; i < GROW_BATCH; i++) {
            e[i] = tu_event_id("Grew", "{\"x\":1}");
            e[i].tags = tags;
            e[i].ntags = 3;
            f[i] = tu_event_id("New", "{}");
        }
        snprintf(stream, sizeof stream, "n-%06" PRIu64, b);
        snprintf(tenant, sizeof tenant, "m-new-%06" PRIu64, b);
        evs_stream_append parts[2] = {{"g", EVS_ANY, e, GROW_BATCH - 1},
                                      {stream, EVS_NO_STREAM, e + GROW_BATCH - 1, 1}};
        evs_append_request r = EVS_APPEND_REQUEST_INIT;
        r.tenant = "z-busy";
        r.parts = parts;
        r.nparts = 2;
        int rc = evs_append_ex(NULL, NULL, w->db, &r);
        if (rc == 0 && b % 5 == 0) {
            evs_stream_append p = {"s", EVS_NO_STREAM, f, GROW_BATCH};
            evs_append_request r2 = EVS_APPEND_REQUEST_INIT;
            r2.tenant = tenant;
            r2.parts = &p;
            r2.nparts = 1;
            rc = evs_append_ex(NULL, NULL, w->db, &r2);
        }
        if (rc != 0) {
            tu_fail("writer: append: %s: %s", tu_errname(rc), evs_last_error());
            break;
        }
        atomic_fetch_add(&w->done, 1);
    }
    return NULL;
}

/* In the main thread while the writer runs: a failure is recorded (a
 * cmocka assertion would leave the writer running on a closed store). */
#define GROW_EQ(a, b)                                                        \
    do {                                                                     \
        uint64_t a_ = (uint64_t)(a), b_ = (uint64_t)(b);                     \
        if (a_ != b_)                                                        \
            tu_fail("line %d: %s is %" PRIu64 ", expected %" PRIu64,        \
                    __LINE__, #a, a_, b_);                                   \
    } while (0)

static uint64_t index_file_size(const char *dir)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/index/data.mdb", dir);
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static void test_list_while_growing(void **state)
{
    tu_store *s = *state;
    int pg = tu_backend_pg();
    if (!pg) {
        /* a first map of 256 KiB: it grows many times below */
        tu_store_close(s);
        assert_int_equal(setenv("EVS_DEBUG_INDEX_MAP_MIN", "262144", 1), 0);
        tu_store_open(s);
    }
    int nstreams = pg ? 6 : GROW_STREAMS;
    char tenant[32], stream[GROW_STREAMS][32];
    evs_event_data e[GROW_STREAMS * GROW_EVENTS];
    evs_stream_append parts[GROW_STREAMS];
    for (int t = 0; t < GROW_TENANTS; t++) {
        snprintf(tenant, sizeof tenant, "a-fixed-%03d", t);
        for (int i = 0; i < nstreams; i++) {
            snprintf(stream[i], sizeof stream[i], "s-%d", i);
            for (int j = 0; j < GROW_EVENTS; j++)
                e[i * GROW_EVENTS + j] = tu_event_id("E", "{}");
            parts[i] = (evs_stream_append){stream[i], EVS_ANY, e + i * GROW_EVENTS,
                                           GROW_EVENTS};
        }
        evs_append_request r = EVS_APPEND_REQUEST_INIT;
        r.tenant = tenant;
        r.parts = parts;
        r.nparts = (size_t)nstreams;
        TU_OK(evs_append_ex(NULL, NULL, s->db, &r));
    }
    uint64_t size0 = pg ? 0 : index_file_size(s->dir);

    grow_writer w = {.db = s->db};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, grow_write, &w), 0);
    unsigned rounds = 0;
    int64_t t0 = tu_now_us();
    /* until the map grew 4x (embedded: two remaps) with 3 rounds at least,
     * or 2 s */
    while (tu_failures() == 0 &&
           (rounds < 3 || (!pg && index_file_size(s->dir) < 4 * size0)) &&
           tu_now_us() - t0 < 2000000) {
        rounds++;
        /* tenants: fixed exact, busy within the commits around the call,
         * a new tenant whole, no tenant without events */
        evs_tenant_list *tl = NULL;
        uint64_t before = atomic_load(&w.done);
        int rc = evs_list_tenants(&tl, s->db);
        if (rc != 0) {
            tu_fail("list_tenants: %s: %s", tu_errname(rc), evs_last_error());
            break;
        }
        uint64_t after = atomic_load(&w.begun);
        size_t fixed = 0, busy = 0, nt = 0;
        uint64_t nb = 0; /* z-busy's batches in the list's snapshot */
        for (size_t i = 0; i < tl->count; i++) {
            const evs_tenant_info *ti = &tl->tenants[i];
            if (i > 0 && strcmp(tl->tenants[i - 1].tenant, ti->tenant) >= 0)
                tu_fail("tenants out of order: %s then %s", tl->tenants[i - 1].tenant,
                         ti->tenant);
            if (strncmp(ti->tenant, "a-fixed-", 8) == 0) {
                fixed++;
                GROW_EQ(ti->events, (uint64_t)nstreams * GROW_EVENTS);
            } else if (strcmp(ti->tenant, "z-busy") == 0) {
                busy++;
                nb = ti->events / GROW_BATCH;
                GROW_EQ(ti->events % GROW_BATCH, 0);
                if (ti->events < before * GROW_BATCH || ti->events > after * GROW_BATCH)
                    tu_fail("busy: %" PRIu64 " events listed, %" PRIu64 " batches "
                             "committed before the call and %" PRIu64 " begun after",
                             ti->events, before, after);
            } else if (strncmp(ti->tenant, "m-new-", 6) == 0) {
                GROW_EQ(ti->events, GROW_BATCH);
                nt++;
            } else {
                tu_fail("unexpected tenant %s", ti->tenant);
            }
        }
        GROW_EQ(fixed, GROW_TENANTS);
        if (busy > 1)
            tu_fail("busy listed %zu times", busy);
        /* one snapshot: the new tenants of the batches z-busy has (the
         * last one's may not be committed yet) */
        if (nt + 1 < (nb + 4) / 5 || nt > (nb + 4) / 5)
            tu_fail("tenants: %zu new tenants listed beside %" PRIu64 " batches of z-busy",
                    nt, nb);
        evs_tenant_list_free(tl);

        /* streams of every tenant, no limit */
        evs_stream_list *sl = NULL;
        evs_list_streams_options o = EVS_LIST_STREAMS_OPTIONS_INIT;
        o.all_tenants = 1;
        before = atomic_load(&w.done);
        rc = evs_list_streams(&sl, s->db, &o);
        if (rc != 0) {
            tu_fail("list_streams: %s: %s", tu_errname(rc), evs_last_error());
            break;
        }
        after = atomic_load(&w.begun);
        size_t nfixed = 0, nnew = 0, nbusy = 0;
        uint64_t gb = 0; /* z-busy's batches by the version of its "g" */
        for (size_t i = 0; i < sl->count; i++) {
            const evs_stream_info *si = &sl->streams[i];
            if (i > 0) {
                int c = strcmp(sl->streams[i - 1].tenant, si->tenant);
                if (c > 0 || (c == 0 && strcmp(sl->streams[i - 1].stream, si->stream) >= 0))
                    tu_fail("streams out of order: %s/%s then %s/%s",
                             sl->streams[i - 1].tenant, sl->streams[i - 1].stream,
                             si->tenant, si->stream);
            }
            if (strncmp(si->tenant, "a-fixed-", 8) == 0) {
                nfixed++;
                GROW_EQ(si->last_version, GROW_EVENTS - 1);
            } else if (strncmp(si->tenant, "m-new-", 6) == 0) {
                GROW_EQ(si->last_version, GROW_BATCH - 1);
            } else if (strcmp(si->stream, "g") == 0) {
                uint64_t n = (uint64_t)si->last_version + 1; /* (GROW_BATCH - 1) a batch */
                gb = n / (GROW_BATCH - 1);
                GROW_EQ(n % (GROW_BATCH - 1), 0);
                if (n < before * (GROW_BATCH - 1) || n > after * (GROW_BATCH - 1))
                    tu_fail("busy/g: version %" PRId64 " listed, %" PRIu64 " batches "
                             "committed before the call and %" PRIu64 " begun after",
                             si->last_version, before, after);
            } else {
                nbusy++;
                GROW_EQ(si->last_version, 0);
            }
            nnew += strncmp(si->tenant, "m-new-", 6) == 0;
        }
        GROW_EQ(nfixed, (uint64_t)GROW_TENANTS * nstreams);
        /* one snapshot: a stream n-* per batch "g" has, and the new
         * tenants of those batches */
        GROW_EQ(nbusy, gb);
        if (nnew + 1 < (gb + 4) / 5 || nnew > (gb + 4) / 5)
            tu_fail("streams: %zu new tenants listed beside %" PRIu64 " batches of z-busy",
                    nnew, gb);
        if (nbusy < before || nbusy > after)
            tu_fail("busy: %zu n-* streams listed, %" PRIu64 " batches committed before "
                     "the call and %" PRIu64 " begun after", nbusy, before, after);
        if (nnew < (before + 4) / 5 || nnew > (after + 4) / 5)
            tu_fail("%zu new-* tenants' streams listed, %" PRIu64 " batches committed "
                     "before the call and %" PRIu64 " begun after", nnew, before, after);
        evs_stream_list_free(sl);
    }
    atomic_store(&w.stop, 1);
    pthread_join(th, NULL);
    if (!pg)
        assert_int_equal(unsetenv("EVS_DEBUG_INDEX_MAP_MIN"), 0);
    TU_ASSERT_NO_THREAD_FAILURES();
    uint64_t size1 = pg ? 0 : index_file_size(s->dir);
    print_message("%u rounds of both lists beside %" PRIu64 " appends; data.mdb %" PRIu64
                  " bytes before, %" PRIu64 " after\n", rounds,
                  (uint64_t)atomic_load(&w.done), size0, size1);
    /* the map grew (remapped) while the lists were read */
    if (!pg)
        assert_true(size1 >= 2 * size0);
}

/* A read-only open explores as well (the CLI's commands open read-only). */
static void test_explore_readonly(void **state)
{
    tu_store *s = *state;
    evs_uuid id = put(s->db, "t", "s-1", "E", "{}", NULL, 0);
    tu_store_close(s);
    evs_open_options ro = EVS_OPEN_OPTIONS_INIT;
    ro.flags = EVS_OPEN_READONLY;
    tu_store_open_opts(s, &ro);
    evs_iter *it = NULL;
    const evs_event *ev;
    TU_OK(evs_read_event(&it, s->db, &id));
    TU_OK(evs_iter_next(&ev, it));
    assert_string_equal(ev->tenant, "t");
    evs_iter_free(it);
    evs_list_streams_options o = EVS_LIST_STREAMS_OPTIONS_INIT;
    o.all_tenants = 1;
    expect_list(s->db, &o, "t/s-1=0\n", 0);
    evs_tenant_list *l = NULL;
    TU_OK(evs_list_tenants(&l, s->db));
    assert_int_equal(l->count, 1);
    assert_int_equal(l->tenants[0].events, 1);
    evs_tenant_list_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_read_event, tu_setup_store, tu_teardown_store),
        cmocka_unit_test_setup_teardown(test_read_event_bad_args, tu_setup_store,
                                        tu_teardown_store),
        cmocka_unit_test_setup_teardown(test_list_streams, tu_setup_store, tu_teardown_store),
        cmocka_unit_test_setup_teardown(test_list_streams_bad_args, tu_setup_store,
                                        tu_teardown_store),
        cmocka_unit_test_setup_teardown(test_list_tenants, tu_setup_store, tu_teardown_store),
        cmocka_unit_test_setup_teardown(test_explore_readonly, tu_setup_store,
                                        tu_teardown_store),
        cmocka_unit_test_setup_teardown(test_list_tenants_capped, tu_setup_store,
                                        tu_teardown_store),
        cmocka_unit_test_setup_teardown(test_list_while_growing, tu_setup_store,
                                        tu_teardown_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
