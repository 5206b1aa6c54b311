/*
 * pg_keys.c -- the PostgreSQL backend's subject key store (crypto-shredding,
 * core/crypto.c, docs/ERASURE.md): the table evstore.subject_keys
 * (migration 0005). A key is made by an INSERT that commits before the
 * events encrypted under it are appended; evs_forget sets it to NULL and
 * records forgotten_at (the row is the "forgotten" mark). PostgreSQL
 * keeps the old row version until VACUUM (the table asks autovacuum to
 * vacuum it after every change) and the WAL until it is recycled:
 * ERASURE.md says what that leaves.
 */
#include "postgres/pg.h"

#include <stdlib.h>
#include <string.h>

/* sql with a on a pooled connection (binary results); a connection found
 * broken is replaced once: these statements are safe to repeat. */
static EVS_MUST_USE int run(evs__pg *s, const char *sql, const evs__pgparams *a,
                            PGresult **res, const char *what)
{
    for (int attempt = 0;; attempt++) {
        evs__pgconn *pc;
        int rc;
        *res = NULL;
        if ((rc = evs__pg_get(s, &pc)) < 0)
            return rc;
        PGresult *r = PQexecParams(pc->c, sql, a->n, NULL, a->vals, a->lens, a->fmts, 1);
        if (PQresultStatus(r) == PGRES_TUPLES_OK) {
            *res = r;
            rc = 0;
        } else {
            rc = evs__pg_fail(pc->c, r, what);
        }
        int lost = rc < 0 && evs__pg_conn_lost(pc->c);
        evs__pg_put(s, pc);
        if (!lost || attempt >= 1)
            return rc;
    }
}

/* A row (key bytea, forgotten bool) into key: 0, EVS_EDELETED, or
 * EVS_ECORRUPT for a key that is not 32 bytes. */
static EVS_MUST_USE int row_key(uint8_t key[32], PGresult *r, const char *subject)
{
    if (PQgetisnull(r, 0, 0) || PQgetvalue(r, 0, 1)[0])
        return EVS_EDELETED;
    if (PQgetlength(r, 0, 0) != 32)
        return evs__err(EVS_ECORRUPT, "evstore.subject_keys: the key of subject \"%s\" is "
                        "%d bytes, not 32", subject, PQgetlength(r, 0, 0));
    memcpy(key, PQgetvalue(r, 0, 0), 32);
    return 0;
}

int evs__pg_subject_key(uint8_t key[32], evs_db *db, const char *tenant,
                        const char *subject, const uint8_t *new_key)
{
    static const char get[] =
        "SELECT key, forgotten_at IS NOT NULL FROM evstore.subject_keys "
        "WHERE tenant = $1::text AND subject = $2::text";
    /* The new row, or the one already there (a concurrent insert that
     * committed after this statement's snapshot: neither; asked again). */
    static const char make[] =
        "WITH ins AS (INSERT INTO evstore.subject_keys (tenant, subject, key) "
        "VALUES ($1::text, $2::text, $3::bytea) ON CONFLICT (tenant, subject) DO NOTHING "
        "RETURNING key, false AS forgotten) "
        "SELECT key, forgotten FROM ins UNION ALL "
        "SELECT key, forgotten_at IS NOT NULL FROM evstore.subject_keys "
        "WHERE tenant = $1::text AND subject = $2::text LIMIT 1";
    evs__pg *s = (evs__pg *)db;
    evs__pgparams a = {.n = 0};
    PGresult *r;
    int rc;
    evs__pgp_text(&a, tenant);
    evs__pgp_text(&a, subject);
    if (new_key && !s->readonly) {
        evs__pgp_bytes(&a, new_key, 32);
        if ((rc = run(s, make, &a, &r, "making a subject key")) < 0)
            return rc;
        if (PQntuples(r) == 1) {
            rc = row_key(key, r, subject);
            PQclear(r);
            return rc;
        }
        PQclear(r);
        evs__pgp_reset(&a);
        evs__pgp_text(&a, tenant);
        evs__pgp_text(&a, subject);
    }
    if ((rc = run(s, get, &a, &r, "reading a subject key")) < 0)
        return rc;
    rc = PQntuples(r) == 1 ? row_key(key, r, subject) : EVS_ENOTFOUND;
    PQclear(r);
    return rc;
}

int evs__pg_subject_forget(evs_db *db, const char *tenant, const char *subject)
{
    static const char forget[] =
        "UPDATE evstore.subject_keys SET key = NULL, "
        "forgotten_at = coalesce(forgotten_at, now()) "
        "WHERE tenant = $1::text AND subject = $2::text RETURNING 1";
    evs__pg *s = (evs__pg *)db;
    evs__pgparams a = {.n = 0};
    PGresult *r;
    int rc;
    if (s->readonly)
        return evs__err(EVS_EREADONLY, "forget: the store is open read-only");
    evs__pgp_text(&a, tenant);
    evs__pgp_text(&a, subject);
    if ((rc = run(s, forget, &a, &r, "forgetting a subject")) < 0)
        return rc;
    rc = PQntuples(r) == 1 ? 0 : EVS_ENOTFOUND;
    PQclear(r);
    return rc;
}
