/*
 * pg_scavenge.c -- evs_scavenge on PostgreSQL: the eligible events of each
 * stream of the plan (core/backend.h, evs__scavenge_drop) deleted in
 * batches of at most PG_SCAVENGE_BATCH rows, each batch its own
 * transaction (one statement), so that no lock is held long and an
 * interrupted scavenge has removed whole batches only: running it again
 * finds what is left. The stream's version (evstore.streams), the head
 * and the positions of the other events are untouched; VACUUM (autovacuum)
 * returns the space to the table, as for any DELETE.
 */
#include "postgres/pg.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>

#define PG_SCAVENGE_BATCH 10000

/* One batch: the row count deleted into *n. The predicate is
 * evs__scavenge_drop's, in SQL; the stream index gives the rows. */
static const char batch_sql[] =
    "WITH gone AS (DELETE FROM evstore.events WHERE position IN ("
    "  SELECT position FROM evstore.events"
    "  WHERE tenant = $1::text AND stream = $2::text AND NOT system"
    "    AND stream_version <> 9223372036854775807"
    "    AND ($3::boolean OR stream_version < $4::bigint"
    "         OR ($5::bigint > 0 AND recorded_at < $5::bigint"
    "             AND stream_version < $6::bigint))"
    "  ORDER BY stream_version LIMIT $7::bigint)"
    " RETURNING 1) SELECT count(*) FROM gone";

int evs__pg_scavenge(evs_scavenge_result *out, evs_db *db, const evs__scavenge_plan *plan)
{
    evs__pg *s = (evs__pg *)db;
    evs__pgparams a = {.n = 0};
    int rc = 0;
    if (s->readonly)
        return evs__err(EVS_EREADONLY, "scavenge: the store is open read-only");
    for (size_t i = 0; i < plan->nstreams && rc == 0; i++) {
        const evs__scavenge_stream *st = &plan->streams[i];
        for (;;) {
            evs__pgconn *pc;
            PGresult *res = NULL;
            evs__pgp_reset(&a);
            evs__pgp_text(&a, st->tenant);
            evs__pgp_text(&a, st->stream);
            evs__pgp_bool(&a, st->drop_all);
            evs__pgp_i64(&a, st->keep_from);
            evs__pgp_i64(&a, st->expire_before);
            evs__pgp_i64(&a, st->last_version);
            evs__pgp_i64(&a, PG_SCAVENGE_BATCH);
            if ((rc = evs__pg_get(s, &pc)) < 0)
                break;
            rc = evs__pg_query_sql(pc->c, batch_sql, &a, &res, "scavenge");
            evs__pg_put(s, pc);
            if (rc < 0)
                break;
            int64_t n = atoll(PQgetvalue(res, 0, 0));
            PQclear(res);
            out->events_removed += (uint64_t)n;
            if (n < PG_SCAVENGE_BATCH)
                break;
        }
        if (plan->progress)
            plan->progress(plan->ctx, i + 1, plan->nstreams);
    }
    evs__pgp_free(&a);
    return rc;
}
