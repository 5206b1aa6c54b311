/*
 * pg_read.c -- reads on PostgreSQL: paged iterators, the commit waits of
 * tracking reads (LISTEN/NOTIFY, or polling a hot standby), reads from a
 * replica, DCB queries as statements per query shape, tokens, snapshots.
 *
 * An iterator is a snapshot without holding a transaction open: its first
 * page (fetched when it is created) also returns the head, and every later
 * page is bounded by `position <= that head`. Positions are assigned and
 * made visible in commit order (pg_append.c), so the events up to a head
 * that was visible are exactly the committed ones, on any later
 * connection: pages never see a later commit, and no connection is held
 * between pages.
 *
 * Pages are 1000 rows (or the limit), in binary format; an event's
 * pointers point into the page's PGresult (libpq ends every value with a
 * NUL) except its tags, which are copied out of the array value.
 */
#include "postgres/pg.h"
#include "util/util.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define PAGE_ROWS 1000

/* ---- running a read ------------------------------------------------------------ */

static int64_t clamp64(uint64_t v)
{
    return v > INT64_MAX ? INT64_MAX : (int64_t)v;
}

/*
 * Run a prepared statement on a pooled connection: *res holds its rows
 * (binary results when binary). A connection that turns out to be broken
 * (the server restarted since it was pooled) is replaced once: reads are
 * safe to repeat.
 */
static int query_as(evs__pg *s, const char *stmt, const char *sql, const evs__pgparams *a,
                    int binary, PGresult **res, const char *what);

static int query(evs__pg *s, const char *stmt, const evs__pgparams *a, int binary,
                 PGresult **res, const char *what)
{
    return query_as(s, stmt, NULL, a, binary, res, what);
}

/* Prepare a DCB shape's statement (evs__pg_dcb_sql) on c and run it. */
static int prepare_run(PGconn *c, const char *stmt, const char *sql, const evs__pgparams *a,
                       int binary, PGresult **res, const char *what)
{
    Oid types[EVS_PG_MAXPARAMS];
    evs__pg_dcb_types(types, a->n);
    PGresult *r = PQprepare(c, stmt, sql, a->n, types);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        return evs__pg_fail(c, r, what);
    PQclear(r);
    return evs__pg_query(c, stmt, a, binary, res, what);
}

/* A DCB shape's SQL as the unnamed statement: planned with the values. */
static int run_unnamed(PGconn *c, const char *sql, const evs__pgparams *a, int binary,
                       PGresult **res, const char *what)
{
    Oid types[EVS_PG_MAXPARAMS];
    evs__pg_dcb_types(types, a->n);
    *res = NULL;
    PGresult *r = PQexecParams(c, sql, a->n, types, a->vals, a->lens, a->fmts, binary);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK)
        return evs__pg_fail(c, r, what);
    *res = r;
    return 0;
}

/*
 * As query; with sql and stmt NULL, sql runs as the unnamed statement;
 * with sql and stmt, stmt is a DCB shape's statement, prepared on a
 * connection the first time it is used there (the server answers 26000,
 * "prepared statement does not exist": a new connection, or a shape not
 * seen on it before).
 */
static int query_as(evs__pg *s, const char *stmt, const char *sql, const evs__pgparams *a,
                    int binary, PGresult **res, const char *what)
{
    for (int attempt = 0;; attempt++) {
        evs__pgconn *pc;
        int rc;
        *res = NULL;
        if ((rc = evs__pg_get(s, &pc)) < 0)
            return rc;
        if (!stmt)
            rc = run_unnamed(pc->c, sql, a, binary, res, what);
        else
            rc = evs__pg_query(pc->c, stmt, a, binary, res, what);
        if (rc < 0 && stmt && sql && !evs__pg_conn_lost(pc->c) &&
            strstr(evs_last_error(), "(SQLSTATE 26000)") != NULL)
            rc = prepare_run(pc->c, stmt, sql, a, binary, res, what);
        int lost = rc < 0 && evs__pg_conn_lost(pc->c);
        /* On a hot standby, a statement may be cancelled by the replay of
         * a change it conflicts with (SQLSTATE 40001, "conflict with
         * recovery", e.g. a vacuum on the primary removing rows its
         * snapshot could still see); it is safe to run again. */
        int conflict = rc == EVS_EBACKEND && s->readonly &&
                       strstr(evs_last_error(), "(SQLSTATE 40001)") != NULL;
        evs__pg_put(s, pc);
        if (!(lost && attempt < 1) && !(conflict && attempt < 3))
            return rc;
    }
}

/* ---- reads from a replica ------------------------------------------------------- */

/* The replica was seen at head h: reads of this handle up to h may go
 * there. */
static void note_seen(evs__pg *s, uint64_t h)
{
    uint64_t v = atomic_load(&s->replica_seen);
    while (h > v && !atomic_compare_exchange_weak(&s->replica_seen, &v, h)) {
    }
}

evs__pg *evs__pg_reader(evs__pg *s)
{
    if (!s->replica)
        return s;
    return atomic_load(&s->written) <= atomic_load(&s->replica_seen) ? s->replica : s;
}

/* ---- iterators ---------------------------------------------------------------- */

enum { IT_STREAM_FWD, IT_STREAM_BWD, IT_ALL, IT_TENANT, IT_QUERY, IT_STREAMS };

typedef struct pg_iter {
    evs_iter base;
    evs__pg *s;
    int kind;
    PGresult *res;       /* the current page */
    int row, nrows;
    int short_page;      /* the page had fewer rows than asked: the last */
    uint64_t snap_head;  /* the head of the first page */
    int have_head;
    uint64_t left;       /* events still to return (limit) */
    int backward;
    int exhausted;       /* the read reached its end (not its limit) */
    uint64_t last_pos;
    /* where the next page starts */
    char *tenant, *stream;
    int64_t next_version;  /* stream reads */
    uint64_t next_pos;     /* $all: first position; query: exclusive bound */
    evs__pgparams qarr;    /* query: i_ntypes, i_ntags, q_types, q_tags */
    char *dcb_sql;         /* query: its shape's statement (evs__pg_dcb_sql), or
                              NULL: evstore.read_query with qarr */
    char dcb_name[EVS_PG_DCB_NAME];
    int dcb_prepared;      /* 1: named, prepared per connection; 0: unnamed */
    char **dcb_terms;      /* its parameters after the fixed ones */
    size_t dcb_nterms;
    char **mnames;         /* read_streams */
    int64_t *mfrom;
    size_t mn, mi;
    evs__pgparams par;     /* the next page's parameters */
    /* EVS__READ_RETAIN (a subscription's batch): keep every page and tag
     * text until the iterator is freed, as the front end holds the events
     * of a batch across next calls. Other reads keep only the current. */
    int retain;
    int system;            /* IT_ALL: EVS__READ_SYSTEM (evs_read_log) */
    void **kept;           /* retained pages (PGresult) and tag blocks */
    int *kept_res;         /* 1: kept[i] is a PGresult */
    size_t nkept, kept_cap, kept_res_cap;
    /* the current event */
    evs_event ev;
    const char **tags;
    size_t tags_cap;
    char *tagtext;
    size_t tagtext_cap;
} pg_iter;

const evs__iter_ops evs__pg_iter_ops = {
    .next = evs__pg_iter_next,
    .marker = evs__pg_iter_marker,
    .free = evs__pg_iter_free,
};

static int iter_new(pg_iter **out, evs__pg *s, int kind, uint64_t limit)
{
    pg_iter *it = calloc(1, sizeof(*it));
    if (!it)
        return evs__err(EVS_ENOMEM, "out of memory creating an iterator");
    it->base.ops = &evs__pg_iter_ops;
    it->base.db = &s->base;
    it->s = s;
    it->kind = kind;
    it->left = limit ? limit : UINT64_MAX;
    *out = it;
    return 0;
}

void evs__pg_iter_free(evs_iter *base)
{
    pg_iter *it = (pg_iter *)base;
    if (!it)
        return;
    PQclear(it->res);
    for (size_t i = 0; i < it->nkept; i++) {
        if (it->kept_res[i])
            PQclear(it->kept[i]);
        else
            free(it->kept[i]);
    }
    free(it->kept);
    free(it->kept_res);
    free(it->tenant);
    free(it->stream);
    evs__pgp_free(&it->qarr);
    free(it->dcb_sql);
    for (size_t i = 0; i < it->dcb_nterms; i++)
        free(it->dcb_terms[i]);
    free(it->dcb_terms);
    evs__pgp_free(&it->par);
    if (it->mnames)
        for (size_t i = 0; i < it->mn; i++)
            free(it->mnames[i]);
    free(it->mnames);
    free(it->mfrom);
    free((void *)it->tags);
    free(it->tagtext);
    free(it);
}

static int keep(pg_iter *it, void *p, int is_res)
{
    if (evs__grow(&it->kept, &it->kept_cap, it->nkept + 1, sizeof(void *)) < 0 ||
        evs__grow(&it->kept_res, &it->kept_res_cap, it->nkept + 1, sizeof(int)) < 0) {
        if (is_res)
            PQclear(p);
        else
            free(p);
        return evs__err(EVS_ENOMEM, "out of memory reading");
    }
    it->kept[it->nkept] = p;
    it->kept_res[it->nkept++] = is_res;
    return 0;
}

/* Fetch the next page into it->res. */
static int fetch(pg_iter *it)
{
    evs__pgparams *a = &it->par;
    const char *stmt = NULL, *sql = NULL;
    /* (a consumer-group reader's read has no limit: the front end counts) */
    uint64_t want = it->left > PAGE_ROWS ? PAGE_ROWS : it->left;
    int64_t bound = it->have_head ? clamp64(it->snap_head) : INT64_MAX;
    int rc;
    evs__pgp_reset(a);
    switch (it->kind) {
    case IT_STREAM_FWD:
    case IT_STREAM_BWD:
        stmt = it->kind == IT_STREAM_FWD ? "evs_read_stream_fwd" : "evs_read_stream_bwd";
        evs__pgp_text(a, it->tenant);
        evs__pgp_text(a, it->stream);
        evs__pgp_i64(a, it->next_version);
        evs__pgp_i64(a, bound);
        evs__pgp_i64(a, (int64_t)want);
        break;
    case IT_ALL:
        stmt = it->system ? "evs_read_log" : "evs_read_all";
        evs__pgp_i64(a, clamp64(it->next_pos));
        evs__pgp_i64(a, bound);
        evs__pgp_i64(a, (int64_t)want);
        break;
    case IT_TENANT:
        /* unnamed, planned with the values each time (~0.3 ms): a
         * prepared statement's generic plan cannot tell that tenant = $1
         * is selective and walks events_pkey filtering on the tenant,
         * measured at 32-59 ms a page (300 K events, 10 tenants) against
         * 0.25 ms on events_tenant (docs/PERFORMANCE.md) */
        sql = evs__pg_statement("evs_read_tenant");
        evs__pgp_text(a, it->tenant);
        evs__pgp_i64(a, clamp64(it->next_pos));
        evs__pgp_i64(a, bound);
        evs__pgp_i64(a, (int64_t)want);
        break;
    case IT_QUERY:
        stmt = !it->dcb_sql ? "evs_read_query" : it->dcb_prepared ? it->dcb_name : NULL;
        evs__pgp_text(a, it->tenant);
        if (!it->backward) {
            evs__pgp_i64(a, clamp64(it->next_pos));
            evs__pgp_i64(a, bound == INT64_MAX ? INT64_MAX : bound + 1);
        } else {
            evs__pgp_i64(a, 0);
            uint64_t hi = it->next_pos;
            if (bound != INT64_MAX && (hi == 0 || hi > (uint64_t)bound + 1))
                hi = (uint64_t)bound + 1;
            evs__pgp_i64(a, hi == 0 ? INT64_MAX : clamp64(hi));
        }
        if (it->dcb_sql) {
            evs__pgp_i64(a, (int64_t)want);
            for (size_t i = 0; i < it->dcb_nterms; i++)
                evs__pgp_text(a, it->dcb_terms[i]);
            break;
        }
        evs__pgp_bool(a, it->backward);
        evs__pgp_i64(a, (int64_t)want);
        for (int i = 0; i < 4; i++)
            evs__pgp_borrow(a, &it->qarr, i);
        break;
    case IT_STREAMS: {
        stmt = "evs_read_streams";
        evs__pgp_text(a, it->tenant);
        int names = evs__pgarr_begin(a, EVS_OID_TEXT, it->mn - it->mi);
        int froms = names < 0 ? names : evs__pgarr_begin(a, EVS_OID_INT8, it->mn - it->mi);
        if (froms < 0)
            return froms;
        for (size_t i = it->mi; i < it->mn; i++)
            if ((rc = evs__pgarr_text(a, names, it->mnames[i])) < 0 ||
                (rc = evs__pgarr_i64(a, froms, it->mfrom[i])) < 0)
                return rc;
        evs__pgp_i64(a, bound);
        evs__pgp_i64(a, (int64_t)want);
        break;
    }
    }
    if (it->res && it->retain) {
        rc = keep(it, it->res, 1); /* on failure keep() has cleared it */
        it->res = NULL;
        if (rc < 0)
            return rc;
    } else {
        PQclear(it->res);
    }
    it->res = NULL;
    PGresult *r;
    if ((rc = query_as(it->s, stmt, it->kind == IT_QUERY ? it->dcb_sql : sql, a, 1, &r,
                       "read")) < 0)
        return rc;
    it->res = r;
    it->row = 0;
    it->nrows = PQntuples(r);
    if (it->nrows < 1 || PQnfields(r) != 14)
        return evs__err(EVS_EBACKEND, "read: unexpected result shape from PostgreSQL");
    if (!it->have_head) {
        it->snap_head = (uint64_t)evs__pg_i64(PQgetvalue(r, 0, 0));
        it->have_head = 1;
    }
    if (PQgetisnull(r, 0, 1)) /* only the head: nothing matched */
        it->nrows = 0;
    it->short_page = (uint64_t)it->nrows < want;
    return 0;
}

/* The binary text[] value of the current row into it->tags. */
static int decode_tags(pg_iter *it, const char *p, int len)
{
    it->ev.ntags = 0;
    it->ev.tags = it->tags;
    if (len < 12)
        return evs__err(EVS_EBACKEND, "read: malformed tags array");
    uint32_t ndim = evs__get_be32((const uint8_t *)p);
    if (ndim == 0)
        return 0;
    if (ndim != 1 || len < 20)
        return evs__err(EVS_EBACKEND, "read: malformed tags array");
    size_t n = evs__get_be32((const uint8_t *)p + 12);
    size_t bytes = (size_t)len;
    char *t;
    if (evs__grow(&it->tags, &it->tags_cap, n ? n : 1, sizeof(char *)) < 0)
        return evs__err(EVS_ENOMEM, "out of memory reading tags");
    if (it->retain) {
        int rc;
        if (!(t = malloc(bytes)))
            return evs__err(EVS_ENOMEM, "out of memory reading tags");
        if ((rc = keep(it, t, 0)) < 0)
            return rc;
    } else {
        if (evs__grow(&it->tagtext, &it->tagtext_cap, bytes, 1) < 0)
            return evs__err(EVS_ENOMEM, "out of memory reading tags");
        t = it->tagtext;
    }
    const char *q = p + 20, *end = p + len;
    for (size_t i = 0; i < n; i++) {
        if (q + 4 > end)
            return evs__err(EVS_EBACKEND, "read: malformed tags array");
        uint32_t l = evs__get_be32((const uint8_t *)q);
        q += 4;
        if (l == UINT32_MAX || q + l > end)
            return evs__err(EVS_EBACKEND, "read: malformed tags array");
        /* each element's 4-byte length is room for its NUL */
        memcpy(t, q, l);
        t[l] = '\0';
        it->tags[i] = t;
        t += l + 1;
        q += l;
    }
    it->ev.tags = it->tags;
    it->ev.ntags = n;
    return 0;
}

static void uuid_at(evs_uuid *u, PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col) || PQgetlength(r, row, col) != 16)
        memset(u, 0, sizeof(*u));
    else
        memcpy(u->bytes, PQgetvalue(r, row, col), 16);
}

static int decode(pg_iter *it)
{
    PGresult *r = it->res;
    int row = it->row;
    evs_event *e = &it->ev;
    e->position = (uint64_t)evs__pg_i64(PQgetvalue(r, row, 1));
    e->stream_version = evs__pg_i64(PQgetvalue(r, row, 2));
    e->tenant = PQgetvalue(r, row, 3);
    e->stream = PQgetvalue(r, row, 4);
    e->type = PQgetvalue(r, row, 5);
    uuid_at(&e->id, r, row, 6);
    uuid_at(&e->correlation_id, r, row, 7);
    uuid_at(&e->causation_id, r, row, 8);
    e->recorded_at = evs__pg_i64(PQgetvalue(r, row, 9));
    const uint8_t *ct = (const uint8_t *)PQgetvalue(r, row, 10);
    e->content_type = (evs_content_type)(((unsigned)ct[0] << 8) | ct[1]);
    e->data = PQgetvalue(r, row, 11);
    e->data_len = (size_t)PQgetlength(r, row, 11);
    e->metadata = PQgetvalue(r, row, 12);
    e->metadata_len = (size_t)PQgetlength(r, row, 12);
    return decode_tags(it, PQgetvalue(r, row, 13), PQgetlength(r, row, 13));
}

/* Where the next page starts, after the event just decoded. */
static void advance(pg_iter *it)
{
    const evs_event *e = &it->ev;
    switch (it->kind) {
    case IT_STREAM_FWD:
        /* a tombstone (version INT64_MAX) is a stream's last event */
        if (e->stream_version == EVS__TOMBSTONE_VERSION)
            it->short_page = 1;
        else
            it->next_version = e->stream_version + 1;
        break;
    case IT_STREAM_BWD:
        it->next_version = e->stream_version - 1;
        break;
    case IT_ALL:
    case IT_TENANT:
        it->next_pos = e->position + 1;
        break;
    case IT_QUERY:
        it->next_pos = e->position; /* exclusive either way */
        break;
    case IT_STREAMS:
        while (it->mi < it->mn && strcmp(it->mnames[it->mi], e->stream) != 0)
            it->mi++;
        /* after a tombstone (INT64_MAX) nothing of the stream follows:
         * the next page starts at it again, and step() skips it there */
        if (it->mi < it->mn)
            it->mfrom[it->mi] = e->stream_version == EVS__TOMBSTONE_VERSION
                                    ? EVS__TOMBSTONE_VERSION
                                    : e->stream_version + 1;
        break;
    }
}

/* One event of the read, group filter not applied. */
static int step(pg_iter *it)
{
    int rc;
    if (it->left == 0)
        return EVS_ITEROVER;
    if (it->row >= it->nrows) {
        if (it->short_page || (it->kind == IT_STREAM_BWD && it->next_version < 0)) {
            it->exhausted = 1;
            it->left = 0;
            return EVS_ITEROVER;
        }
        if ((rc = fetch(it)) < 0)
            return rc;
        if (it->nrows == 0) {
            it->exhausted = 1;
            it->left = 0;
            return EVS_ITEROVER;
        }
    }
    if ((rc = decode(it)) < 0)
        return rc;
    it->row++;
    /* read_streams: a tombstone returned on an earlier page is the first
     * row of the next one again (its stream's from is INT64_MAX) */
    if (it->kind == IT_STREAMS && it->ev.stream_version == EVS__TOMBSTONE_VERSION &&
        it->mi < it->mn && it->mfrom[it->mi] == EVS__TOMBSTONE_VERSION &&
        strcmp(it->mnames[it->mi], it->ev.stream) == 0)
        return step(it);
    it->last_pos = it->ev.position;
    advance(it);
    return 0;
}

int evs__pg_iter_next(const evs_event **ev, evs_iter *base)
{
    pg_iter *it = (pg_iter *)base;
    int rc = step(it);
    if (rc != 0)
        return rc;
    if (it->left != UINT64_MAX)
        it->left--;
    *ev = &it->ev;
    return 0;
}

int evs__pg_iter_marker(uint64_t *out, const evs_iter *base)
{
    const pg_iter *it = (const pg_iter *)base;
    *out = it->backward || it->exhausted ? it->snap_head : it->last_pos;
    return 0;
}

/*
 * Finish creating an iterator: fetch its first page (the snapshot).
 * With a replica the first page is read there, whatever evs__pg_reader
 * says (its head tells whether it has caught up); the primary reads it
 * again when the replica is behind what this handle wrote
 * (read-your-writes), or cannot answer. The iterator then stays on the
 * server of its first page: its later pages are bounded by that server's
 * head.
 */
static int iter_start(evs_iter **out, pg_iter *it)
{
    evs__pg *home = it->s;
    int rc;
    if (home->replica) {
        it->s = home->replica;
        rc = fetch(it);
        if (rc == 0)
            note_seen(home, it->snap_head);
        if ((rc == 0 && it->snap_head < atomic_load(&home->written)) || rc == EVS_EBACKEND) {
            it->s = home;
            it->have_head = 0;
            rc = fetch(it);
            /* what the primary showed, the standby must show too before
             * it serves this handle again: reads never go back in time */
            uint64_t w = atomic_load(&home->written);
            while (rc == 0 && it->snap_head > w &&
                   !atomic_compare_exchange_weak(&home->written, &w, it->snap_head)) {
            }
        }
    } else {
        rc = fetch(it);
    }
    if (rc < 0) {
        evs__pg_iter_free(&it->base);
        return rc;
    }
    *out = &it->base;
    return 0;
}

int evs__pg_read_stream(evs_iter **out, evs_db *db, const char *tenant, const char *stream,
                        int64_t from_version, evs_direction dir, uint64_t limit)
{
    pg_iter *it = NULL;
    int rc;
    if ((rc = iter_new(&it, (evs__pg *)db, dir == EVS_FORWARD ? IT_STREAM_FWD : IT_STREAM_BWD,
                       limit)) < 0)
        return rc;
    it->backward = dir == EVS_BACKWARD;
    it->next_version = it->backward && from_version == EVS_END ? INT64_MAX : from_version;
    if (!(it->tenant = strdup(tenant)) || !(it->stream = strdup(stream))) {
        evs__pg_iter_free(&it->base);
        return evs__err(EVS_ENOMEM, "out of memory creating an iterator");
    }
    return iter_start(out, it);
}

int evs__pg_read_all(evs_iter **out, evs_db *db, const char *tenant, uint64_t from_position,
                     uint64_t limit, unsigned flags)
{
    pg_iter *it = NULL;
    int rc;
    if ((rc = iter_new(&it, (evs__pg *)db, tenant ? IT_TENANT : IT_ALL, limit)) < 0)
        return rc;
    it->retain = (flags & EVS__READ_RETAIN) != 0;
    it->system = !tenant && (flags & EVS__READ_SYSTEM);
    it->next_pos = from_position;
    if (tenant && !(it->tenant = strdup(tenant))) {
        evs__pg_iter_free(&it->base);
        return evs__err(EVS_ENOMEM, "out of memory creating an iterator");
    }
    if ((rc = iter_start(out, it)) < 0)
        return rc;
    it->last_pos = from_position - 1 < it->snap_head ? from_position - 1 : it->snap_head;
    return 0;
}

/* The query as the four arrays of evstore.read_query() ($6..$9). */
static int query_arrays(evs__pgparams *qa, const evs_query *q)
{
    size_t nt = 0, ng = 0;
    for (size_t i = 0; i < q->nitems; i++) {
        nt += q->items[i].ntypes;
        ng += q->items[i].ntags;
    }
    int a = evs__pgarr_query_begin(qa, q->nitems, nt, ng);
    return a < 0 ? a : evs__pgarr_query(qa, a, q);
}

/* The prepared statement of the query's shape and its terms (copies: the
 * query is the caller's only during the call). 1: too many terms, read
 * through evstore.read_query instead. */
static int dcb_shape(pg_iter *it, const evs_query *q)
{
    size_t n;
    /* EVS_DEBUG_PG_READ_QUERY=function: through evstore.read_query(), as
     * before the prepared shapes (for measuring one against the other in
     * one run, docs/PERFORMANCE.md; read at every query) */
    const char *dbg = getenv("EVS_DEBUG_PG_READ_QUERY");
    if (dbg && strcmp(dbg, "function") == 0)
        return 1;
    int rc = evs__pg_dcb_sql(&it->dcb_sql, it->dcb_name, &n, &it->dcb_prepared, q,
                             it->backward);
    if (rc != 0)
        return rc;
    if (n && !(it->dcb_terms = calloc(n, sizeof(char *))))
        return evs__err(EVS_ENOMEM, "out of memory reading a query");
    for (size_t i = 0; i < q->nitems && it->dcb_nterms < n; i++) {
        const evs_query_item *qi = &q->items[i];
        for (size_t t = 0; t < qi->ntypes + qi->ntags; t++) {
            const char *v = t < qi->ntypes ? qi->types[t] : qi->tags[t - qi->ntypes];
            if (t >= qi->ntypes && strncmp(v, EVS_STREAM_TAG_PREFIX,
                                           strlen(EVS_STREAM_TAG_PREFIX)) == 0)
                v += strlen(EVS_STREAM_TAG_PREFIX);
            else if (t >= qi->ntypes && strncmp(v, "$category:", 10) == 0)
                v += 10;
            if (!(it->dcb_terms[it->dcb_nterms] = strdup(v)))
                return evs__err(EVS_ENOMEM, "out of memory reading a query");
            it->dcb_nterms++;
        }
    }
    return 0;
}

int evs__pg_read_query(evs_iter **out, evs_db *db, const char *tenant,
                       const evs_query *query_, uint64_t bound, evs_direction dir,
                       uint64_t limit, unsigned flags)
{
    pg_iter *it = NULL;
    int rc;
    if ((rc = iter_new(&it, (evs__pg *)db, IT_QUERY, limit)) < 0)
        return rc;
    it->retain = (flags & EVS__READ_RETAIN) != 0;
    it->backward = dir == EVS_BACKWARD;
    it->next_pos = bound;
    if (!(it->tenant = strdup(tenant))) {
        evs__pg_iter_free(&it->base);
        return evs__err(EVS_ENOMEM, "out of memory creating an iterator");
    }
    if ((rc = dcb_shape(it, query_)) < 0 ||
        (rc == 1 && (rc = query_arrays(&it->qarr, query_)) < 0)) {
        evs__pg_iter_free(&it->base);
        return rc;
    }
    if ((rc = iter_start(out, it)) < 0)
        return rc;
    it->last_pos = it->backward ? 0 : bound < it->snap_head ? bound : it->snap_head;
    return 0;
}

int evs__pg_read_streams(evs_iter **out, evs_db *db, const char *tenant,
                         const evs_stream_read *streams, size_t n)
{
    pg_iter *it = NULL;
    int rc;
    if ((rc = iter_new(&it, (evs__pg *)db, IT_STREAMS, 0)) < 0)
        return rc;
    it->mnames = calloc(n, sizeof(char *));
    it->mfrom = calloc(n, sizeof(int64_t));
    it->tenant = strdup(tenant);
    if (!it->mnames || !it->mfrom || !it->tenant) {
        evs__pg_iter_free(&it->base);
        return evs__err(EVS_ENOMEM, "out of memory reading %zu streams", n);
    }
    it->mn = n;
    for (size_t i = 0; i < n; i++) {
        it->mfrom[i] = streams[i].from_version;
        if (!(it->mnames[i] = strdup(streams[i].stream))) {
            evs__pg_iter_free(&it->base);
            return evs__err(EVS_ENOMEM, "out of memory reading %zu streams", n);
        }
    }
    return iter_start(out, it);
}

/* ---- tracking reads ------------------------------------------------------------ */

/*
 * One LISTEN connection per store, on its own thread, turns commit
 * notifications (pg_notify in evstore.append) into a bump of notify_seq
 * and a broadcast. A waiter notes notify_seq before it reads: a commit its
 * read did not see notifies after the read's snapshot, so the sequence has
 * moved by the time it waits, or moves while it waits. PostgreSQL delivers
 * a notification only once its transaction is no longer in progress, so
 * the read that follows a wake-up sees the commit.
 */
static int listen_connect(evs__pg *s, PGconn **out)
{
    PGconn *c;
    int rc = evs__pg_connect(s, &c);
    if (rc < 0)
        return rc;
    PGresult *r = PQexec(c, "LISTEN evstore_commit");
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        rc = evs__pg_fail(c, r, "LISTEN");
        PQfinish(c);
        return rc;
    }
    PQclear(r);
    *out = c;
    return 0;
}

static void bump(evs__pg *s)
{
    pthread_mutex_lock(&s->nlock);
    s->notify_seq++;
    pthread_cond_broadcast(&s->ncond);
    pthread_mutex_unlock(&s->nlock);
}

/* The longest the listener waits without anything from the server. */
#define LISTEN_QUIET_MS 30000

typedef struct listener_arg {
    evs__pg *s;
    PGconn *c;
} listener_arg;

static void *listener_main(void *arg)
{
    listener_arg *la = arg;
    evs__pg *s = la->s;
    PGconn *c = la->c;
    free(la);
    for (;;) {
        struct pollfd fds[2] = {{s->listener_efd, POLLIN, 0}, {-1, POLLIN, 0}};
        if (!c) {
            /* reconnect; wake every waiter, as notifications were missed */
            if (poll(fds, 1, 200) > 0)
                break;
            if (listen_connect(s, &c) == 0)
                bump(s);
            continue;
        }
        fds[1].fd = PQsocket(c);
        int ready = poll(fds, 2, LISTEN_QUIET_MS);
        if (ready < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (ready == 0) {
            /* Nothing for a while: wake the waiters anyway, so that a
             * notification lost with a connection that died silently
             * (before keepalives notice, pg_pool.c) delays a tracking
             * read by at most this long, never for ever. */
            bump(s);
            continue;
        }
        if (fds[0].revents)
            break;
        if (!PQconsumeInput(c)) {
            PQfinish(c);
            c = NULL;
            bump(s);
            continue;
        }
        int got = 0;
        PGnotify *n;
        while ((n = PQnotifies(c)) != NULL) {
            PQfreemem(n);
            got = 1;
        }
        if (got)
            bump(s);
    }
    if (c)
        PQfinish(c);
    return NULL;
}

static int poller_start(evs__pg *s);

static int listener_start(evs__pg *s)
{
    int rc = 0;
    pthread_mutex_lock(&s->nlock);
    if (s->listener_started) {
        pthread_mutex_unlock(&s->nlock);
        return 0;
    }
    if (s->poll_commits) {
        rc = poller_start(s);
        goto out;
    }
    listener_arg *la = malloc(sizeof(*la));
    if (!la) {
        rc = evs__err(EVS_ENOMEM, "out of memory starting the tracking listener");
        goto out;
    }
    la->s = s;
    if ((rc = listen_connect(s, &la->c)) < 0) {
        free(la);
        goto out;
    }
    s->listener_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->listener_efd < 0 || pthread_create(&s->listener, NULL, listener_main, la) != 0) {
        PQfinish(la->c);
        free(la);
        if (s->listener_efd >= 0)
            close(s->listener_efd);
        s->listener_efd = -1;
        rc = evs__err(EVS_EBACKEND, "cannot start the tracking listener thread");
        goto out;
    }
    s->listener_started = 1;
out:
    pthread_mutex_unlock(&s->nlock);
    return rc;
}

/*
 * Commit waits on a hot standby (a replica, or a standby opened as the
 * store): a standby runs no LISTEN and delivers no NOTIFY, so a thread
 * polls its head (`SELECT position FROM evstore.head`, one index-free
 * row) while anyone waits, and bumps notify_seq when it moves. The
 * standby replays commits in WAL order, which is position order (the
 * head lock, pg_append.c), so a head it shows has every position below
 * it: reads after a bump never skip an event, as on the primary. The
 * interval is 1 ms after a change, doubling up to 50 ms while nothing
 * changes; with nobody waiting it does not poll at all. A bump for a
 * head that a waiter's read already saw only makes it look once more.
 */
#define POLL_MIN_NS 1000000ull   /* 1 ms */
#define POLL_MAX_NS 50000000ull  /* 50 ms */
#define POLL_RETRY_NS 200000000ull /* 200 ms after a failed poll */

static void *poller_main(void *arg)
{
    evs__pg *s = arg;
    evs__pg *rd = s->replica ? s->replica : s;
    PGconn *c = NULL;
    uint64_t last = UINT64_MAX, interval = POLL_MIN_NS;
    pthread_mutex_lock(&s->nlock);
    while (!s->listener_stop) {
        if (s->waiters == 0) {
            pthread_cond_wait(&s->pcond, &s->nlock);
            interval = POLL_MIN_NS;
            continue;
        }
        pthread_mutex_unlock(&s->nlock);
        long long head = -1;
        if (!c && evs__pg_connect(rd, &c) < 0)
            c = NULL;
        if (c) {
            PGresult *r = PQexec(c, "SELECT position FROM evstore.head");
            if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
                head = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
            PQclear(r);
            if (head < 0 && PQstatus(c) != CONNECTION_OK) {
                PQfinish(c);
                c = NULL;
            }
        }
        if (head >= 0 && s->replica)
            note_seen(s, (uint64_t)head);
        pthread_mutex_lock(&s->nlock);
        if (head >= 0 && (uint64_t)head != last) {
            last = (uint64_t)head;
            s->notify_seq++;
            pthread_cond_broadcast(&s->ncond);
            interval = POLL_MIN_NS;
        } else if (head < 0) {
            interval = POLL_RETRY_NS;
        } else if ((interval *= 2) > POLL_MAX_NS) {
            interval = POLL_MAX_NS;
        }
        if (s->listener_stop)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t at = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + interval;
        ts.tv_sec = (time_t)(at / 1000000000u);
        ts.tv_nsec = (long)(at % 1000000000u);
        pthread_cond_timedwait(&s->pcond, &s->nlock, &ts);
    }
    pthread_mutex_unlock(&s->nlock);
    if (c)
        PQfinish(c);
    return NULL;
}

/* Start the poller (nlock held). */
static int poller_start(evs__pg *s)
{
    s->listener_stop = 0;
    if (pthread_create(&s->listener, NULL, poller_main, s) != 0)
        return evs__err(EVS_EBACKEND, "cannot start the replica's commit poller thread");
    s->listener_started = 1;
    return 0;
}

void evs__pg_listener_stop(evs__pg *s)
{
    if (!s->listener_started)
        return;
    if (s->poll_commits) {
        pthread_mutex_lock(&s->nlock);
        s->listener_stop = 1;
        pthread_cond_broadcast(&s->pcond);
        pthread_mutex_unlock(&s->nlock);
        pthread_join(s->listener, NULL);
        s->listener_started = 0;
        return;
    }
    uint64_t one = 1;
    if (write(s->listener_efd, &one, sizeof(one)) < 0) {
        /* an eventfd write fails only on overflow: it is readable anyway */
    }
    pthread_join(s->listener, NULL);
    close(s->listener_efd);
    s->listener_efd = -1;
    s->listener_started = 0;
}

/* wake_readers: a pretend commit, so that every wait_commit returns and
 * its caller looks at its cancel flag again. */
void evs__pg_wake_readers(evs_db *db)
{
    evs__pg *s = (evs__pg *)db;
    pthread_mutex_lock(&s->nlock);
    s->notify_seq++;
    pthread_cond_broadcast(&s->ncond);
    pthread_mutex_unlock(&s->nlock);
}

/* commit_seq: the listener must run before the number is read, or a
 * commit between the read and the start of LISTEN would be missed. */
int evs__pg_commit_seq(uint64_t *out, evs_db *db)
{
    evs__pg *s = (evs__pg *)db;
    int rc = listener_start(s);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&s->nlock);
    *out = s->notify_seq;
    pthread_mutex_unlock(&s->nlock);
    return 0;
}

int evs__pg_wait_commit(evs_db *db, uint64_t seq, uint64_t deadline_ns,
                        const _Atomic int *cancel)
{
    evs__pg *s = (evs__pg *)db;
    struct timespec ts;
    if (deadline_ns) {
        ts.tv_sec = (time_t)(deadline_ns / 1000000000u);
        ts.tv_nsec = (long)(deadline_ns % 1000000000u);
    }
    pthread_mutex_lock(&s->nlock);
    if (s->poll_commits && s->waiters++ == 0)
        pthread_cond_signal(&s->pcond); /* the poller idles without waiters */
    while (s->notify_seq == seq && !(cancel && atomic_load(cancel))) {
        if (!deadline_ns)
            pthread_cond_wait(&s->ncond, &s->nlock);
        else if (pthread_cond_timedwait(&s->ncond, &s->nlock, &ts) == ETIMEDOUT)
            break;
    }
    if (s->poll_commits)
        s->waiters--;
    pthread_mutex_unlock(&s->nlock);
    return 0;
}

/* ---- small reads ----------------------------------------------------------------- */

/* A single bigint (text result) of a one-row answer; *null when NULL or
 * no row. */
static int one_i64(evs__pg *s, const char *stmt, const evs__pgparams *a, int64_t *v,
                   int *null, const char *what)
{
    PGresult *r;
    int rc = query(s, stmt, a, 0, &r, what);
    if (rc < 0)
        return rc;
    *null = PQntuples(r) == 0 || PQgetisnull(r, 0, 0);
    *v = *null ? 0 : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return 0;
}

int evs__pg_stream_version(int64_t *out, evs_db *db, const char *tenant, const char *stream)
{
    evs__pgparams a = {.n = 0};
    int null, rc;
    int64_t v;
    evs__pgp_text(&a, tenant);
    evs__pgp_text(&a, stream);
    if ((rc = one_i64(evs__pg_reader((evs__pg *)db), "evs_stream_version", &a, &v, &null, "stream_version")) < 0)
        return rc;
    *out = null ? EVS_NO_STREAM : v;
    return 0;
}

int evs__pg_head(uint64_t *out, evs_db *db, const char *tenant)
{
    evs__pgparams a = {.n = 0};
    int null, rc;
    int64_t v;
    if (tenant)
        evs__pgp_text(&a, tenant);
    evs__pg *rd = evs__pg_reader((evs__pg *)db);
    if ((rc = one_i64(rd, tenant ? "evs_tenant_head" : "evs_head", &a, &v, &null,
                      "head_position")) < 0)
        return rc;
    *out = null ? 0 : (uint64_t)v;
    if (!tenant && rd != (evs__pg *)db)
        note_seen((evs__pg *)db, *out);
    return 0;
}

int evs__pg_token_tail(uint64_t *out, evs_db *db, const char *tenant)
{
    evs__pgparams a = {.n = 0};
    int null, rc;
    int64_t v;
    *out = 0;
    if (!tenant)
        return 0; /* positions start at 1 and are never removed */
    evs__pgp_text(&a, tenant);
    if ((rc = one_i64(evs__pg_reader((evs__pg *)db), "evs_tenant_tail", &a, &v, &null, "token_tail")) < 0)
        return rc;
    *out = null ? 0 : (uint64_t)v - 1;
    return 0;
}

int evs__pg_token_at(uint64_t *out, evs_db *db, int64_t time_us)
{
    evs__pgparams a = {.n = 0};
    int null, rc;
    int64_t v;
    evs__pgp_i64(&a, time_us);
    if ((rc = one_i64(evs__pg_reader((evs__pg *)db), "evs_token_at", &a, &v, &null, "token_at")) < 0)
        return rc;
    *out = null ? 0 : (uint64_t)v;
    return 0;
}

int evs__pg_event_position(uint64_t *out, evs_db *db, const evs_uuid *id)
{
    evs__pgparams a = {.n = 0};
    int null, rc;
    int64_t v;
    evs__pgp_bytes(&a, id->bytes, 16);
    if ((rc = one_i64(evs__pg_reader((evs__pg *)db), "evs_event_position", &a, &v, &null, "event lookup")) < 0)
        return rc;
    if (null)
        return EVS_ENOTFOUND;
    *out = (uint64_t)v;
    return 0;
}

/* ---- snapshots ------------------------------------------------------------------ */

int evs__pg_snapshot_save(evs_db *db, const char *tenant, const char *stream, int64_t version,
                          const char *schema, const void *data, size_t len, int64_t saved_at)
{
    evs__pg *s = (evs__pg *)db;
    evs__pgparams a = {.n = 0};
    int null, rc;
    int64_t v;
    uint32_t keep = s->base.opts.snapshot_keep ? s->base.opts.snapshot_keep
                                               : EVS_DEFAULT_SNAPSHOT_KEEP;
    evs__pgp_text(&a, tenant);
    evs__pgp_text(&a, stream);
    evs__pgp_i64(&a, version);
    evs__pgp_text(&a, schema);
    evs__pgp_bytes(&a, data, len);
    evs__pgp_i32(&a, (int32_t)keep);
    evs__pgp_i64(&a, saved_at ? saved_at : evs__now_us());
    if ((rc = one_i64(s, "evs_snapshot_save", &a, &v, &null, "snapshot_save")) < 0)
        return rc;
    if (v < 0)
        return evs__err(EVS_EINVAL, "snapshot_save: stream %s does not exist; a snapshot "
                        "is of a stream's events", stream);
    if (version > v)
        return evs__err(EVS_EINVAL, "snapshot_save: version %lld is beyond stream %s, "
                        "which is at version %lld", (long long)version, stream, (long long)v);
    return 0;
}

int evs__pg_snapshot_load(evs_snapshot **out, evs_db *db, const char *tenant,
                          const char *stream, int64_t max_version)
{
    evs__pgparams a = {.n = 0};
    PGresult *r;
    int rc;
    *out = NULL;
    evs__pgp_text(&a, tenant);
    evs__pgp_text(&a, stream);
    evs__pgp_i64(&a, max_version == EVS_END ? INT64_MAX : max_version);
    if ((rc = query(evs__pg_reader((evs__pg *)db), "evs_snapshot_load", &a, 1, &r, "snapshot_load")) < 0)
        return rc;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return evs__err(EVS_ENOTFOUND, "stream %s has no snapshot%s", stream,
                        max_version == EVS_END ? "" : " at or below that version");
    }
    size_t schl = (size_t)PQgetlength(r, 0, 2), dlen = (size_t)PQgetlength(r, 0, 3);
    evs_snapshot *snap = malloc(sizeof(*snap) + schl + 1 + dlen + 1);
    if (!snap) {
        PQclear(r);
        return evs__err(EVS_ENOMEM, "out of memory loading a snapshot of %zu bytes", dlen);
    }
    char *schema = (char *)(snap + 1), *data = schema + schl + 1;
    memcpy(schema, PQgetvalue(r, 0, 2), schl);
    schema[schl] = '\0';
    memcpy(data, PQgetvalue(r, 0, 3), dlen);
    data[dlen] = '\0';
    snap->version = evs__pg_i64(PQgetvalue(r, 0, 0));
    snap->saved_at = evs__pg_i64(PQgetvalue(r, 0, 1));
    snap->schema = schema;
    snap->data = data;
    snap->data_len = dlen;
    PQclear(r);
    *out = snap;
    return 0;
}

/* Snapshots are listed a page at a time, each page after the last key
 * seen, in byte order of (tenant, stream) (COLLATE "C": the embedded
 * store's order, whatever the database's collation), then version. */
#define SNAP_LIST_PAGE 1000 /* = the LIMIT of evs_snapshot_list*, pg_wire.c */

int evs__pg_snapshot_list(evs_db *db, const char *tenant, evs_snapshot_fn fn, void *ctx)
{
    evs__pg *s = (evs__pg *)db;
    char *last_tenant = strdup(tenant ? tenant : ""), *last_stream = strdup("");
    int64_t last_version = -1;
    int rc = 0, n = SNAP_LIST_PAGE;
    if (!last_tenant || !last_stream) {
        rc = evs__err(EVS_ENOMEM, "snapshot_list: out of memory");
        goto out;
    }
    while (rc == 0 && n == SNAP_LIST_PAGE) {
        evs__pgparams a = {.n = 0};
        PGresult *r;
        if (tenant) {
            evs__pgp_text(&a, tenant);
        } else {
            evs__pgp_text(&a, last_tenant);
        }
        evs__pgp_text(&a, last_stream);
        evs__pgp_i64(&a, last_version);
        if ((rc = query(evs__pg_reader(s),
                        tenant ? "evs_snapshot_list_tenant" : "evs_snapshot_list", &a, 1, &r,
                        "snapshot_list")) < 0)
            break;
        n = PQntuples(r);
        for (int i = 0; i < n && rc == 0; i++) {
            evs_snapshot snap = {
                .version = evs__pg_i64(PQgetvalue(r, i, 2)),
                .saved_at = evs__pg_i64(PQgetvalue(r, i, 3)),
                .schema = PQgetvalue(r, i, 4),
                .data = PQgetvalue(r, i, 5),
                .data_len = (size_t)PQgetlength(r, i, 5),
            };
            rc = fn(ctx, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), &snap);
        }
        if (rc == 0 && n > 0) {
            free(last_tenant);
            free(last_stream);
            last_tenant = strdup(PQgetvalue(r, n - 1, 0));
            last_stream = strdup(PQgetvalue(r, n - 1, 1));
            last_version = evs__pg_i64(PQgetvalue(r, n - 1, 2));
            if (!last_tenant || !last_stream)
                rc = evs__err(EVS_ENOMEM, "snapshot_list: out of memory");
        }
        PQclear(r);
    }
out:
    free(last_tenant);
    free(last_stream);
    return rc;
}
