/*
 * pg_append.c -- appends on PostgreSQL: one round trip per append.
 *
 * The request becomes 23 binary array parameters of evstore.append()
 * (0001_init.sql), which, in one transaction:
 *
 *   lock the head row ─▶ ids already stored? (retry / duplicate)
 *   ─▶ expected versions ─▶ DCB conditions ─▶ insert at head+1..
 *   ─▶ streams, times, head ─▶ pg_notify ─▶ commit (the statement's)
 *
 * The head row lock is held until the commit is visible, so positions
 * become visible in position order: a tracking reader that has seen
 * position p has seen everything below it. The same lock makes the
 * conditions race-free (two appends with the same condition cannot both
 * check before either inserts).
 *
 * If the connection is lost before the answer arrives, the outcome is
 * found out rather than guessed: the old backend is terminated (so that
 * its transaction is settled), and the first event's id is looked up on a
 * new connection. Committed: the append is replayed as a retry, which
 * returns the stored result. Not committed: EVS_EBACKEND saying so.
 */
#include "postgres/pg.h"
#include "util/util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { NPARAMS = 23 };

typedef struct params {
    evs__pgbuf b[NPARAMS];
    const char *vals[NPARAMS];
    int lens[NPARAMS];
    int fmts[NPARAMS];
} params;

static void params_free(params *p)
{
    for (int i = 0; i < NPARAMS; i++)
        evs__pgbuf_free(&p->b[i]);
}

static int text_arr_str(evs__pgbuf *b, const char *s)
{
    return evs__pgarr_bytes(b, s, strlen(s));
}

/* Every flat array of the request; force_given marks every id as the
 * caller's (the replay after a lost connection: generated ids are this
 * append's own, so finding them proves it committed). */
static int build(params *P, const evs__append_req *r, int force_given)
{
    int rc = 0;
    evs__pgbuf *b = P->b;
    size_t n = r->nevents, ntags = 0, nitems = 0, nqt = 0, nqg = 0;
    for (size_t p = 0; p < r->nparts; p++)
        for (size_t i = 0; i < r->parts[p].nevents; i++)
            ntags += r->parts[p].events[i].ntags;
    for (size_t c = 0; c < r->nconds; c++) {
        const evs_query *q = &r->conds[c].fail_if_events_match;
        nitems += q->nitems;
        for (size_t i = 0; i < q->nitems; i++) {
            nqt += q->items[i].ntypes;
            nqg += q->items[i].ntags;
        }
    }

    /* $1 tenant (a plain text value) */
    b[0].len = 0;
    if ((rc = evs__pgbuf_reserve(&b[0], r->tenant_len + 1)) < 0)
        return rc;
    memcpy(b[0].p, r->tenant, r->tenant_len);
    b[0].len = r->tenant_len;

    /* parts */
    if ((rc = evs__pgarr_begin(&b[1], EVS_OID_TEXT, r->nparts)) < 0 ||
        (rc = evs__pgarr_begin(&b[2], EVS_OID_INT8, r->nparts)) < 0 ||
        (rc = evs__pgarr_begin(&b[3], EVS_OID_INT4, r->nparts)) < 0)
        return rc;
    for (size_t p = 0; p < r->nparts; p++)
        if ((rc = evs__pgarr_bytes(&b[1], r->parts[p].stream, r->stream_lens[p])) < 0 ||
            (rc = evs__pgarr_i64(&b[2], r->parts[p].expected_version)) < 0 ||
            (rc = evs__pgarr_i32(&b[3], (int32_t)r->parts[p].nevents)) < 0)
            return rc;

    /* events */
    static const uint32_t ev_oids[] = {EVS_OID_INT4, EVS_OID_UUID, EVS_OID_BOOL,
                                       EVS_OID_TEXT, EVS_OID_INT2, EVS_OID_BYTEA,
                                       EVS_OID_BYTEA, EVS_OID_INT4, EVS_OID_INT4};
    for (int a = 0; a < 9; a++)
        if ((rc = evs__pgarr_begin(&b[4 + a], ev_oids[a], n)) < 0)
            return rc;
    if ((rc = evs__pgarr_begin(&b[13], EVS_OID_TEXT, ntags)) < 0 ||
        (rc = evs__pgarr_begin(&b[14], EVS_OID_UUID, n)) < 0 ||
        (rc = evs__pgarr_begin(&b[15], EVS_OID_UUID, n)) < 0 ||
        (rc = evs__pgarr_begin(&b[16], EVS_OID_INT8, n)) < 0)
        return rc;
    size_t k = 0, toff = 0;
    for (size_t p = 0; p < r->nparts; p++)
        for (size_t i = 0; i < r->parts[p].nevents; i++, k++) {
            const evs_event_data *e = &r->parts[p].events[i];
            if ((rc = evs__pgarr_i32(&b[4], (int32_t)p + 1)) < 0 ||
                (rc = evs__pgarr_bytes(&b[5], r->ids[k].bytes, 16)) < 0 ||
                (rc = evs__pgarr_bool(&b[6], force_given || r->id_given[k])) < 0 ||
                (rc = text_arr_str(&b[7], e->type)) < 0 ||
                (rc = evs__pgarr_i16(&b[8], (int16_t)e->content_type)) < 0 ||
                (rc = evs__pgarr_bytes(&b[9], e->data, e->data_len)) < 0 ||
                (rc = evs__pgarr_bytes(&b[10], e->metadata, e->metadata_len)) < 0 ||
                (rc = evs__pgarr_i32(&b[11], (int32_t)toff)) < 0 ||
                (rc = evs__pgarr_i32(&b[12], (int32_t)e->ntags)) < 0)
                return rc;
            for (size_t t = 0; t < e->ntags; t++)
                if ((rc = text_arr_str(&b[13], e->tags[t])) < 0)
                    return rc;
            toff += e->ntags;
            rc = evs_uuid_is_nil(&e->correlation_id)
                     ? evs__pgarr_null(&b[14])
                     : evs__pgarr_bytes(&b[14], e->correlation_id.bytes, 16);
            if (rc < 0)
                return rc;
            rc = evs_uuid_is_nil(&e->causation_id)
                     ? evs__pgarr_null(&b[15])
                     : evs__pgarr_bytes(&b[15], e->causation_id.bytes, 16);
            if (rc < 0 || (rc = evs__pgarr_i64(&b[16], e->recorded_at)) < 0)
                return rc;
        }

    /* conditions: per condition its after and number of items; per item
     * its numbers of types and tags; all types and tags flat */
    if ((rc = evs__pgarr_begin(&b[17], EVS_OID_INT8, r->nconds)) < 0 ||
        (rc = evs__pgarr_begin(&b[18], EVS_OID_INT4, r->nconds)) < 0 ||
        (rc = evs__pgarr_begin(&b[19], EVS_OID_INT4, nitems)) < 0 ||
        (rc = evs__pgarr_begin(&b[20], EVS_OID_INT4, nitems)) < 0 ||
        (rc = evs__pgarr_begin(&b[21], EVS_OID_TEXT, nqt)) < 0 ||
        (rc = evs__pgarr_begin(&b[22], EVS_OID_TEXT, nqg)) < 0)
        return rc;
    for (size_t c = 0; c < r->nconds; c++) {
        const evs_query *q = &r->conds[c].fail_if_events_match;
        uint64_t after = r->conds[c].after;
        /* positions are bigints: an `after` beyond them matches nothing */
        if ((rc = evs__pgarr_i64(&b[17], after > INT64_MAX ? INT64_MAX : (int64_t)after)) < 0 ||
            (rc = evs__pgarr_i32(&b[18], (int32_t)q->nitems)) < 0)
            return rc;
        for (size_t i = 0; i < q->nitems; i++) {
            const evs_query_item *it = &q->items[i];
            if ((rc = evs__pgarr_i32(&b[19], (int32_t)it->ntypes)) < 0 ||
                (rc = evs__pgarr_i32(&b[20], (int32_t)it->ntags)) < 0)
                return rc;
            for (size_t t = 0; t < it->ntypes; t++)
                if ((rc = text_arr_str(&b[21], it->types[t])) < 0)
                    return rc;
            for (size_t t = 0; t < it->ntags; t++)
                if ((rc = text_arr_str(&b[22], it->tags[t])) < 0)
                    return rc;
        }
    }
    size_t total = 0;
    for (int i = 0; i < NPARAMS; i++) {
        P->vals[i] = b[i].p ? b[i].p : "";
        P->lens[i] = (int)b[i].len;
        P->fmts[i] = 1;
        total += b[i].len;
    }
    /* one protocol message holds every parameter: at most 1 GiB */
    if (total > (1u << 30) - (1u << 20))
        return evs__err(EVS_ETOOBIG, "append of %zu events is %zu bytes encoded, more than "
                        "one PostgreSQL message can carry (1 GiB); split it", n, total);
    return 0;
}

/* ---- the answer ------------------------------------------------------------- */

static void fmt_expected(char *buf, size_t n, int64_t ev)
{
    if (ev == EVS_ANY)
        snprintf(buf, n, "any");
    else if (ev == EVS_NO_STREAM)
        snprintf(buf, n, "no stream");
    else if (ev == EVS_STREAM_EXISTS)
        snprintf(buf, n, "stream exists");
    else
        snprintf(buf, n, "%lld", (long long)ev);
}

static int expected_ok(int64_t expected, int64_t actual)
{
    switch (expected) {
    case EVS_ANY: return 1;
    case EVS_NO_STREAM: return actual == EVS_NO_STREAM;
    case EVS_STREAM_EXISTS: return actual >= 0;
    default: return actual == expected;
    }
}

static int bad_answer(const char *what)
{
    return evs__err(EVS_EBACKEND, "append: unexpected answer from evstore.append() (%s)",
                    what);
}

/* Fill the request's results from the function's row (text format). */
static int finish(evs__append_req *r, PGresult *res)
{
    if (PQntuples(res) != 1 || PQnfields(res) != 8)
        return bad_answer("shape");
    int status = atoi(PQgetvalue(res, 0, 0));
    size_t np = r->nparts;
    int64_t *a = malloc(4 * np * sizeof(int64_t) + (r->nconds + 1) * sizeof(int64_t));
    if (!a)
        return evs__err(EVS_ENOMEM, "append: out of memory");
    int64_t *ver = a, *fver = a + np, *fpos = a + 2 * np, *lpos = a + 3 * np,
            *conf = a + 4 * np;
    int rc = 0;
    char idt[37];

    switch (status) {
    case 0:
    case 2:
        if (evs__pg_parse_i64_array(PQgetvalue(res, 0, 1), ver, np) != (long)np ||
            evs__pg_parse_i64_array(PQgetvalue(res, 0, 2), fver, np) != (long)np ||
            evs__pg_parse_i64_array(PQgetvalue(res, 0, 3), fpos, np) != (long)np ||
            evs__pg_parse_i64_array(PQgetvalue(res, 0, 4), lpos, np) != (long)np) {
            rc = bad_answer("results");
            break;
        }
        for (size_t p = 0; p < np; p++) {
            evs_append_result *x = &r->results[p];
            x->status = 0;
            x->stream_version = ver[p];
            x->first_version = fver[p];
            x->first_position = (uint64_t)fpos[p];
            x->last_position = (uint64_t)lpos[p];
        }
        break;
    case 1: {
        char msg[1024];
        size_t mlen = 0, nfail = 0;
        msg[0] = '\0';
        if (evs__pg_parse_i64_array(PQgetvalue(res, 0, 1), ver, np) != (long)np ||
            evs__pg_parse_i64_array(PQgetvalue(res, 0, 5), conf, r->nconds) != (long)r->nconds) {
            rc = bad_answer("conflict");
            break;
        }
        for (size_t p = 0; p < np; p++) {
            const evs_stream_append *pa = &r->parts[p];
            r->results[p].stream_version = ver[p];
            if (expected_ok(pa->expected_version, ver[p]))
                continue;
            char e[32];
            fmt_expected(e, sizeof(e), pa->expected_version);
            r->results[p].status = EVS_ECONFLICT;
            if (mlen < sizeof(msg))
                mlen += (size_t)snprintf(msg + mlen, sizeof(msg) - mlen,
                                         "%sexpected version %s but stream %s is at %lld%s",
                                         nfail ? "; " : "", e, pa->stream, (long long)ver[p],
                                         ver[p] == EVS_NO_STREAM ? " (no stream)" : "");
            nfail++;
        }
        for (size_t c = 0; c < r->nconds; c++) {
            r->conflicts[c] = (uint64_t)conf[c];
            if (!conf[c])
                continue;
            if (mlen < sizeof(msg))
                mlen += (size_t)snprintf(msg + mlen, sizeof(msg) - mlen,
                                         "%scondition %zu: the event at position %" PRId64
                                         " matches fail_if_events_match (after %" PRIu64 ")",
                                         nfail ? "; " : "", c, conf[c], r->conds[c].after);
            nfail++;
        }
        rc = evs__err(EVS_ECONFLICT, "%s", msg);
        break;
    }
    case 3: {
        size_t k = (size_t)atol(PQgetvalue(res, 0, 6));
        if (k >= r->nevents) {
            rc = bad_answer("duplicate index");
            break;
        }
        evs_uuid_format(idt, &r->ids[k]);
        rc = evs__err(EVS_EDUPLICATE, "event id %s (event %zu of this append) is already "
                      "stored at position %s; ids must be unique", idt, k,
                      PQgetvalue(res, 0, 7));
        break;
    }
    case 4: {
        size_t k = (size_t)atol(PQgetvalue(res, 0, 6));
        if (k >= r->nevents || evs__pg_parse_i64_array(PQgetvalue(res, 0, 3), fpos, 1) != 1) {
            rc = bad_answer("retry");
            break;
        }
        evs_uuid_format(idt, &r->ids[k]);
        if (PQgetisnull(res, 0, 7))
            rc = evs__err(EVS_EDUPLICATE, "the first event of this append is already stored "
                          "(at position %" PRId64 ") but event %zu (%s) is not: a retry must "
                          "resend exactly the same events", fpos[0], k,
                          r->id_given[k] ? idt : "no id");
        else
            rc = evs__err(EVS_EDUPLICATE, "event id %s is already used by a different event "
                          "(position %s); ids must be unique", idt, PQgetvalue(res, 0, 7));
        break;
    }
    default:
        rc = bad_answer("status");
    }
    free(a);
    return rc;
}

/* ---- a lost connection ---------------------------------------------------------- */

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/*
 * The connection to backend `pid` broke while an append was in flight.
 * Settle that backend's transaction (terminate it and wait until it is
 * gone), then ask whether the append's first event is stored.
 * *committed: 1 yes, 0 no. Any failure here leaves the outcome unknown.
 */
static int settle(evs__pg *s, int pid, const evs_uuid *first, int *committed)
{
    evs__pgconn *pc;
    int rc;
    char pids[16];
    *committed = 0;
    if ((rc = evs__pg_get(s, &pc)) < 0)
        return rc;
    snprintf(pids, sizeof(pids), "%d", pid);
    const char *v1[1] = {pids};
    PGresult *res = PQexecParams(pc->c, "SELECT pg_terminate_backend(pid) FROM "
                                 "pg_stat_activity WHERE pid = $1::int", 1, NULL, v1,
                                 NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = evs__pg_fail(pc->c, res, "append: settling a lost connection");
        evs__pg_put(s, pc);
        return rc;
    }
    PQclear(res);
    /* Only a backend seen gone has settled its transaction: while it may
     * still run, "not stored yet" proves nothing (it could commit after
     * the lookup), so the outcome stays unknown. */
    int gone = 0;
    for (int i = 0; i < 1000; i++) {
        res = PQexecParams(pc->c, "SELECT 1 FROM pg_stat_activity WHERE pid = $1::int", 1,
                           NULL, v1, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            rc = evs__pg_fail(pc->c, res, "append: settling a lost connection");
            evs__pg_put(s, pc);
            return rc;
        }
        gone = PQntuples(res) == 0;
        PQclear(res);
        if (gone)
            break;
        sleep_ms(10);
    }
    if (!gone) {
        evs__pg_put(s, pc);
        return evs__err(EVS_EIO, "the old server process %d did not end within 10 s", pid);
    }
    const char *v2[1] = {(const char *)first->bytes};
    int l2[1] = {16}, f2[1] = {1};
    res = PQexecPrepared(pc->c, "evs_event_position", 1, v2, l2, f2, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = evs__pg_fail(pc->c, res, "append: settling a lost connection");
        evs__pg_put(s, pc);
        return rc;
    }
    *committed = PQntuples(res) > 0;
    PQclear(res);
    evs__pg_put(s, pc);
    return 0;
}

/* ---- one request alone ---------------------------------------------------------- */

static int run(evs__pg *s, evs__append_req *r, params *P, int *lost_pid)
{
    evs__pgconn *pc;
    int rc;
    *lost_pid = 0;
    if ((rc = evs__pg_get(s, &pc)) < 0)
        return rc;
    int pid = PQbackendPID(pc->c);
    PGresult *res = PQexecPrepared(pc->c, "evs_append", NPARAMS, P->vals, P->lens, P->fmts, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        if (evs__pg_conn_lost(pc->c) || !res)
            *lost_pid = pid;
        rc = evs__pg_fail(pc->c, res, "append");
        evs__pg_put(s, pc);
        return rc;
    }
    rc = finish(r, res);
    PQclear(res);
    evs__pg_put(s, pc);
    return rc;
}

/* After the connection to backend `pid` broke under request r (alone or
 * in a group): did it commit? Returns r's outcome. */
static int after_loss(evs__pg *s, evs__append_req *r, params *P, int pid)
{
    char lost[512];
    int rc, committed;
    snprintf(lost, sizeof(lost), "%s", evs_last_error());
    if (settle(s, pid, &r->ids[0], &committed) < 0)
        return evs__err(EVS_EIO, "%s; the connection was lost during the append and "
                        "whether it committed is unknown (%s): retry with the same event ids",
                        lost, evs_last_error());
    if (!committed)
        return evs__err(EVS_EBACKEND, "%s; the connection was lost during the append, which "
                        "did not commit (nothing was written): retry it", lost);
    /* committed: replay it as a retry, which answers the stored result */
    if ((rc = build(P, r, 1)) < 0)
        return rc;
    return run(s, r, P, &pid);
}

static int run_alone(evs__pg *s, evs__append_req *r, params *P)
{
    int pid;
    int rc = run(s, r, P, &pid);
    if (rc < 0 && pid)
        rc = after_loss(s, r, P, pid);
    return rc;
}

/* ---- group commit ----------------------------------------------------------------- */

/*
 * Every append holds the head row lock until its commit is durable, so
 * appends one transaction each would commit one fsync at a time. Instead,
 * appends that arrive while one is committing queue up, and the next
 * leader commits them all in one transaction, pipelined in one round trip:
 *
 *   BEGIN; SELECT evstore.append(r1); ...; SELECT evstore.append(rn); COMMIT
 *
 * evstore.append() returns a status instead of raising, so a conflict
 * fails only its own request, and later requests of the group see the
 * earlier ones (same transaction), as in the embedded writer. An error
 * that aborts the transaction (which evstore.append() never raises for a
 * validated request) makes the leader run every request of the group
 * alone. A caller that finds nothing queued and no commit running commits
 * its own append alone, at once.
 */
struct evs__pg_req {
    evs__append_req *core;
    params *P;
    int rc;
    int done, lead;
    char msg[1024];
    pthread_cond_t cv;
    evs__pg_req *next;
};

static void req_done(evs__pg_req *q, int rc)
{
    q->rc = rc;
    snprintf(q->msg, sizeof(q->msg), "%s", rc < 0 ? evs_last_error() : "");
}

static void run_each(evs__pg *s, evs__pg_req *batch)
{
    for (evs__pg_req *q = batch; q; q = q->next)
        req_done(q, run_alone(s, q->core, q->P));
}

static void commit_group(evs__pg *s, evs__pg_req *batch)
{
    evs__pgconn *pc;
    int rc, n = 0;
    for (evs__pg_req *q = batch; q; q = q->next)
        n++;
    if (n == 1) {
        run_each(s, batch);
        return;
    }
    if ((rc = evs__pg_get(s, &pc)) < 0) {
        for (evs__pg_req *q = batch; q; q = q->next)
            req_done(q, rc);
        return;
    }
    PGconn *c = pc->c;
    int pid = PQbackendPID(c), sent = PQenterPipelineMode(c) &&
              PQsendQueryParams(c, "BEGIN", 0, NULL, NULL, NULL, NULL, 0);
    for (evs__pg_req *q = batch; q && sent; q = q->next)
        sent = PQsendQueryPrepared(c, "evs_append", NPARAMS, q->P->vals, q->P->lens,
                                   q->P->fmts, 0);
    sent = sent && PQsendQueryParams(c, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) &&
           PQpipelineSync(c);

    /* the answers: BEGIN, one per request, COMMIT, then the sync */
    PGresult **res = calloc((size_t)n, sizeof(*res));
    int ok = sent && res != NULL, lost = !sent;
    for (int k = 0; k < n + 2 && !lost; k++) {
        PGresult *r = PQgetResult(c), *x;
        if (!r) {
            lost = 1;
            break;
        }
        while ((x = PQgetResult(c)) != NULL) /* a query's results end with NULL */
            PQclear(x);
        ExecStatusType st = PQresultStatus(r);
        if (k == 0 || k == n + 1) {
            ok &= st == PGRES_COMMAND_OK;
            PQclear(r);
        } else {
            ok &= st == PGRES_TUPLES_OK;
            if (res)
                res[k - 1] = r;
            else
                PQclear(r);
        }
    }
    if (!lost) {
        PGresult *r = PQgetResult(c);
        lost = !r || PQresultStatus(r) != PGRES_PIPELINE_SYNC;
        PQclear(r);
    }
    if (lost || evs__pg_conn_lost(c))
        lost = 1, ok = 0;
    if (!lost)
        PQexitPipelineMode(c);
    if (ok) {
        int k = 0;
        for (evs__pg_req *q = batch; q; q = q->next, k++) {
            evs__clear_error();
            req_done(q, finish(q->core, res[k]));
        }
    } else if (!lost) {
        /* an error aborted the transaction: nothing of the group is
         * written; each request alone decides its own fate */
        PQclear(PQexec(c, "ROLLBACK"));
    }
    for (int k = 0; res && k < n; k++)
        PQclear(res[k]);
    free(res);
    evs__pg_put(s, pc);
    if (ok)
        return;
    if (!lost) {
        run_each(s, batch);
        return;
    }
    evs__err(EVS_EBACKEND, "append: PostgreSQL: the connection was lost during a group "
             "commit");
    for (evs__pg_req *q = batch; q; q = q->next)
        req_done(q, after_loss(s, q->core, q->P, pid));
}

int evs__pg_append(evs_db *db, evs__append_req *r)
{
    evs__pg *s = (evs__pg *)db;
    params P;
    int rc;
    memset(&P, 0, sizeof(P));
    if ((rc = build(&P, r, 0)) < 0) {
        params_free(&P);
        return rc;
    }
    evs__pg_req me = {.core = r, .P = &P};
    pthread_mutex_lock(&s->qlock);
    if (s->closing) {
        pthread_mutex_unlock(&s->qlock);
        params_free(&P);
        return evs__err(EVS_ECLOSED, "append: the store is being closed");
    }
    pthread_cond_init(&me.cv, NULL);
    if (s->qtail)
        s->qtail->next = &me;
    else
        s->qhead = &me;
    s->qtail = &me;
    if (!s->busy) {
        s->busy = 1;
        me.lead = 1;
    }
    while (!me.done && !me.lead)
        pthread_cond_wait(&me.cv, &s->qlock);
    if (!me.done) {
        /* the leader: commit everything queued (me first) as one group */
        evs__pg_req *batch = s->qhead;
        s->qhead = s->qtail = NULL;
        pthread_mutex_unlock(&s->qlock);
        commit_group(s, batch);
        pthread_mutex_lock(&s->qlock);
        for (evs__pg_req *q = batch, *next; q; q = next) {
            next = q->next;
            q->done = 1;
            if (q != &me)
                pthread_cond_signal(&q->cv);
        }
        /* hand the lead to the first of those who queued meanwhile */
        if (s->qhead) {
            s->qhead->lead = 1;
            pthread_cond_signal(&s->qhead->cv);
        } else {
            s->busy = 0;
            pthread_cond_broadcast(&s->qidle);
        }
    }
    pthread_mutex_unlock(&s->qlock);
    pthread_cond_destroy(&me.cv);
    params_free(&P);
    if (me.rc < 0) {
        evs__set_error_text(me.msg);
        return me.rc;
    }
    evs__clear_error();
    return 0;
}
