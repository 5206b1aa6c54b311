/*
 * pg_append.c -- appends on PostgreSQL: one round trip per append.
 *
 * The request becomes 23 binary parameters of evstore.append() (the
 * tenant and 22 arrays, built with pg_wire.c's builder; 0001_init.sql),
 * which, in one transaction:
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
#include <time.h>

/* ---- the parameters ------------------------------------------------------------ */

/* evstore.append()'s parameters (0001_init.sql), in order: the tenant;
 * per part; per event; per condition; the conditions' items (four arrays
 * from C_ITEMS on: i_ntypes, i_ntags, q_types, q_tags). */
enum {
    P_TENANT,
    P_STREAMS, P_EXPECTED, P_COUNTS,
    E_PART, E_IDS, E_GIVEN, E_TYPES, E_CONTENT, E_DATA, E_META, E_TOFF, E_NTAGS, E_TAGS,
    E_CORR, E_CAUS, E_AT,
    C_AFTER, C_NITEMS, C_ITEMS,
    NPARAMS = C_ITEMS + 4
};
_Static_assert(NPARAMS == EVS_PG_MAXPARAMS, "evstore.append() takes the most parameters");

/* Every flat array of the request; force_given marks every id as the
 * caller's (the replay after a lost connection: generated ids are this
 * append's own, so finding them proves it committed). */
static int build(evs__pgparams *P, const evs__append_req *r, int force_given)
{
    int rc = 0;
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
    evs__pgp_reset(P);
    evs__pgp_bytes(P, r->tenant, r->tenant_len);

    /* parts */
    if ((rc = evs__pgarr_begin(P, EVS_OID_TEXT, r->nparts)) < 0 ||
        (rc = evs__pgarr_begin(P, EVS_OID_INT8, r->nparts)) < 0 ||
        (rc = evs__pgarr_begin(P, EVS_OID_INT4, r->nparts)) < 0)
        return rc;
    for (size_t p = 0; p < r->nparts; p++)
        if ((rc = evs__pgarr_bytes(P, P_STREAMS, r->parts[p].stream, r->stream_lens[p])) < 0 ||
            (rc = evs__pgarr_i64(P, P_EXPECTED, r->parts[p].expected_version)) < 0 ||
            (rc = evs__pgarr_i32(P, P_COUNTS, (int32_t)r->parts[p].nevents)) < 0)
            return rc;

    /* events */
    static const uint32_t ev_oids[] = {EVS_OID_INT4, EVS_OID_UUID, EVS_OID_BOOL,
                                       EVS_OID_TEXT, EVS_OID_INT2, EVS_OID_BYTEA,
                                       EVS_OID_BYTEA, EVS_OID_INT4, EVS_OID_INT4,
                                       EVS_OID_TEXT, EVS_OID_UUID, EVS_OID_UUID,
                                       EVS_OID_INT8};
    for (int a = E_PART; a <= E_AT; a++)
        if ((rc = evs__pgarr_begin(P, ev_oids[a - E_PART], a == E_TAGS ? ntags : n)) < 0)
            return rc;
    size_t k = 0, toff = 0;
    for (size_t p = 0; p < r->nparts; p++)
        for (size_t i = 0; i < r->parts[p].nevents; i++, k++) {
            const evs_event_data *e = &r->parts[p].events[i];
            if ((rc = evs__pgarr_i32(P, E_PART, (int32_t)p + 1)) < 0 ||
                (rc = evs__pgarr_bytes(P, E_IDS, r->ids[k].bytes, 16)) < 0 ||
                (rc = evs__pgarr_bool(P, E_GIVEN, force_given || r->id_given[k])) < 0 ||
                (rc = evs__pgarr_text(P, E_TYPES, e->type)) < 0 ||
                (rc = evs__pgarr_i16(P, E_CONTENT, (int16_t)e->content_type)) < 0 ||
                (rc = evs__pgarr_bytes(P, E_DATA, e->data, e->data_len)) < 0 ||
                (rc = evs__pgarr_bytes(P, E_META, e->metadata, e->metadata_len)) < 0 ||
                (rc = evs__pgarr_i32(P, E_TOFF, (int32_t)toff)) < 0 ||
                (rc = evs__pgarr_i32(P, E_NTAGS, (int32_t)e->ntags)) < 0)
                return rc;
            for (size_t t = 0; t < e->ntags; t++)
                if ((rc = evs__pgarr_text(P, E_TAGS, e->tags[t])) < 0)
                    return rc;
            toff += e->ntags;
            rc = evs_uuid_is_nil(&e->correlation_id)
                     ? evs__pgarr_null(P, E_CORR)
                     : evs__pgarr_bytes(P, E_CORR, e->correlation_id.bytes, 16);
            if (rc < 0)
                return rc;
            rc = evs_uuid_is_nil(&e->causation_id)
                     ? evs__pgarr_null(P, E_CAUS)
                     : evs__pgarr_bytes(P, E_CAUS, e->causation_id.bytes, 16);
            if (rc < 0 || (rc = evs__pgarr_i64(P, E_AT, e->recorded_at)) < 0)
                return rc;
        }

    /* conditions: per condition its after and number of items, then the
     * items of them all */
    if ((rc = evs__pgarr_begin(P, EVS_OID_INT8, r->nconds)) < 0 ||
        (rc = evs__pgarr_begin(P, EVS_OID_INT4, r->nconds)) < 0 ||
        (rc = evs__pgarr_query_begin(P, nitems, nqt, nqg)) < 0)
        return rc;
    for (size_t c = 0; c < r->nconds; c++) {
        const evs_query *q = &r->conds[c].fail_if_events_match;
        uint64_t after = r->conds[c].after;
        /* positions are bigints: an `after` beyond them matches nothing */
        if ((rc = evs__pgarr_i64(P, C_AFTER, after > INT64_MAX ? INT64_MAX : (int64_t)after)) < 0 ||
            (rc = evs__pgarr_i32(P, C_NITEMS, (int32_t)q->nitems)) < 0 ||
            (rc = evs__pgarr_query(P, C_ITEMS, q)) < 0)
            return rc;
    }
    /* one protocol message holds every parameter: at most 1 GiB */
    size_t total = evs__pgp_size(P);
    if (total > (1u << 30) - (1u << 20))
        return evs__err(EVS_ETOOBIG, "append of %zu events is %zu bytes encoded, more than "
                        "one PostgreSQL message can carry (1 GiB); split it", n, total);
    return 0;
}

/* ---- the answer ------------------------------------------------------------- */

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
        r->retried = status == 2; /* answered from the stored events */
        for (size_t p = 0; p < np; p++) {
            evs_append_result *x = &r->results[p];
            x->status = 0;
            x->stream_version = ver[p];
            x->first_version = fver[p];
            x->first_position = (uint64_t)fpos[p];
            x->last_position = (uint64_t)lpos[p];
        }
        break;
    case 1: /* a failed expected version or condition: the front end writes the message */
        if (evs__pg_parse_i64_array(PQgetvalue(res, 0, 1), ver, np) != (long)np ||
            evs__pg_parse_i64_array(PQgetvalue(res, 0, 5), conf, r->nconds) != (long)r->nconds) {
            rc = bad_answer("conflict");
            break;
        }
        for (size_t p = 0; p < np; p++) {
            r->results[p].stream_version = ver[p];
            if (!evs__expected_ok(r->parts[p].expected_version, ver[p]))
                r->results[p].status = EVS_ECONFLICT;
        }
        for (size_t c = 0; c < r->nconds; c++)
            r->conflicts[c] = (uint64_t)conf[c];
        rc = EVS_ECONFLICT;
        break;
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
 * The connection to server process b broke while an append was in flight.
 * Settle that process's transaction (terminate it and wait until it is
 * gone), then ask whether the append's first event is stored.
 * *committed: 1 yes, 0 no. Any failure here leaves the outcome unknown.
 * The process is named by pid and backend_start: after a server restart
 * the pid may belong to another session, which must not be terminated
 * (and the old process is gone with the old server).
 */
static int settle(evs__pg *s, const evs__pgbackend *b, const evs_uuid *first, int *committed)
{
    static const char *what = "append: settling a lost connection";
    evs__pgconn *pc;
    PGresult *res;
    int rc, gone = 0;
    char pids[16];
    *committed = 0;
    if ((rc = evs__pg_get(s, &pc)) < 0)
        return rc;
    snprintf(pids, sizeof(pids), "%d", b->pid);
    evs__pgparams a = {.n = 0};
    evs__pgp_literal(&a, pids);
    evs__pgp_literal(&a, b->started);
    static const char *match = " FROM pg_stat_activity WHERE pid = $1::int AND "
                               "($2 = '' OR backend_start::text = $2)";
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(pid)%s", match);
    if ((rc = evs__pg_query_sql(pc->c, sql, &a, NULL, what)) < 0)
        goto out;
    /* Only a backend seen gone has settled its transaction: while it may
     * still run, "not stored yet" proves nothing (it could commit after
     * the lookup), so the outcome stays unknown. */
    snprintf(sql, sizeof(sql), "SELECT 1%s", match);
    for (int i = 0; i < 1000; i++) {
        if ((rc = evs__pg_query_sql(pc->c, sql, &a, &res, what)) < 0)
            goto out;
        gone = PQntuples(res) == 0;
        PQclear(res);
        if (gone)
            break;
        sleep_ms(10);
    }
    if (!gone) {
        rc = evs__err(EVS_EIO, "the old server process %d did not end within 10 s", b->pid);
        goto out;
    }
    evs__pgp_reset(&a);
    evs__pgp_bytes(&a, first->bytes, 16);
    if ((rc = evs__pg_query(pc->c, "evs_event_position", &a, 0, &res, what)) < 0)
        goto out;
    *committed = PQntuples(res) > 0;
    PQclear(res);
out:
    evs__pg_put(s, pc);
    return rc;
}

/* ---- one request alone ---------------------------------------------------------- */

static int run(evs__pg *s, evs__append_req *r, const evs__pgparams *P, evs__pgbackend *lost)
{
    evs__pgconn *pc;
    int rc;
    lost->pid = 0;
    if ((rc = evs__pg_get(s, &pc)) < 0)
        return rc;
    uint64_t t0 = evs__mono_ns();
    PGresult *res = evs__pg_exec_prepared(pc->c, "evs_append", P, 0);
    uint64_t t1 = evs__mono_ns();
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        if (evs__pg_conn_lost(pc->c) || !res)
            *lost = pc->backend;
        rc = evs__pg_fail(pc->c, res, "append");
        evs__pg_put(s, pc);
        return rc;
    }
    rc = finish(r, res);
    PQclear(res);
    if (rc == 0 && !r->retried) {
        /* a transaction of its own; its commit is the statement's, so the
         * whole round trip is what evs_metrics sees as its sync */
        evs__metrics_group(&s->base, 1);
        evs__metrics_sync(&s->base, t1 - t0);
    }
    evs__pg_put(s, pc);
    return rc;
}

/* After the connection to server process b broke under request r (alone
 * or in a group): did it commit? Returns r's outcome. */
static int after_loss(evs__pg *s, evs__append_req *r, evs__pgparams *P,
                      const evs__pgbackend *b)
{
    char lost[512];
    int rc, committed;
    snprintf(lost, sizeof(lost), "%s", evs_last_error());
    if (settle(s, b, &r->ids[0], &committed) < 0)
        return evs__err(EVS_EIO, "%s; the connection was lost during the append and "
                        "whether it committed is unknown (%s): retry with the same event ids",
                        lost, evs_last_error());
    if (!committed)
        return evs__err(EVS_EBACKEND, "%s; the connection was lost during the append, which "
                        "did not commit (nothing was written): retry it", lost);
    /* committed: replay it as a retry, which answers the stored result */
    if ((rc = build(P, r, 1)) < 0)
        return rc;
    evs__pgbackend again;
    rc = run(s, r, P, &again);
    /* the lost transaction wrote the events, most likely for this very
     * append (evs_metrics counts them; a caller's own retry that lost its
     * connection is counted as writing too) */
    r->retried = 0;
    return rc;
}

static int run_alone(evs__pg *s, evs__append_req *r, evs__pgparams *P)
{
    evs__pgbackend lost;
    int rc = run(s, r, P, &lost);
    if (rc < 0 && lost.pid)
        rc = after_loss(s, r, P, &lost);
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
    evs__pgparams *P;
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
    evs__pgbackend backend = pc->backend;
    int sent = PQenterPipelineMode(c) &&
              PQsendQueryParams(c, "BEGIN", 0, NULL, NULL, NULL, NULL, 0);
    for (evs__pg_req *q = batch; q && sent; q = q->next)
        sent = evs__pg_send_prepared(c, "evs_append", q->P);
    sent = sent && PQsendQueryParams(c, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) &&
           PQpipelineSync(c);

    /* the answers: BEGIN, one per request, COMMIT, then the sync */
    PGresult **res = calloc((size_t)n, sizeof(*res));
    int ok = sent && res != NULL, lost = !sent;
    /* the COMMIT's time (evs_metrics): from the last append's answer to
     * the COMMIT's */
    uint64_t t_last = 0, t_commit = 0;
    for (int k = 0; k < n + 2 && !lost; k++) {
        PGresult *r = PQgetResult(c), *x;
        if (!r) {
            lost = 1;
            break;
        }
        if (k == n + 1)
            t_commit = evs__mono_ns();
        while ((x = PQgetResult(c)) != NULL) /* a query's results end with NULL */
            PQclear(x);
        if (k == n)
            t_last = evs__mono_ns();
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
        int k = 0, wrote = 0;
        for (evs__pg_req *q = batch; q; q = q->next, k++) {
            evs__clear_error();
            req_done(q, finish(q->core, res[k]));
            wrote |= q->rc == 0 && !q->core->retried;
        }
        if (wrote) {
            evs__metrics_group(&s->base, (uint64_t)n);
            evs__metrics_sync(&s->base, t_commit - t_last);
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
        req_done(q, after_loss(s, q->core, q->P, &backend));
}

int evs__pg_append(evs_db *db, evs__append_req *r)
{
    evs__pg *s = (evs__pg *)db;
    evs__pgparams P = {.n = 0};
    int rc;
    if ((rc = build(&P, r, 0)) < 0) {
        evs__pgp_free(&P);
        return rc;
    }
    evs__pg_req me = {.core = r, .P = &P};
    pthread_mutex_lock(&s->qlock);
    if (s->closing) {
        pthread_mutex_unlock(&s->qlock);
        evs__pgp_free(&P);
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
    evs__pgp_free(&P);
    if (me.rc < 0) {
        evs__set_error_text(me.msg);
        return me.rc;
    }
    evs__clear_error();
    return 0;
}

void evs__pg_append_init(evs__pg *s)
{
    pthread_mutex_init(&s->qlock, NULL);
    pthread_cond_init(&s->qidle, NULL);
}

void evs__pg_append_close(evs__pg *s)
{
    pthread_mutex_lock(&s->qlock);
    s->closing = 1;
    while (s->busy)
        pthread_cond_wait(&s->qidle, &s->qlock);
    pthread_mutex_unlock(&s->qlock);
    pthread_mutex_destroy(&s->qlock);
    pthread_cond_destroy(&s->qidle);
}
