/*
 * pg_pool.c -- connections to the store's database: each session set up
 * the same way, and a pool of up to EVS_PG_POOL_MAX per handle.
 *
 * libpq connections are not thread-safe, and a statement holds its
 * connection until its whole answer is read, so every thread takes a
 * connection of its own from the pool for each statement (or transaction)
 * and gives it back. Connections are made on first need, each with the
 * backend's statements prepared (pg_wire.c); a connection that broke, or
 * was left inside a transaction, is dropped when it comes back, and its
 * slot is made again on the next need.
 */
#include "postgres/pg.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

/*
 * TCP keepalives on every connection (the socket's options, whatever the
 * URI says): a server or network that vanishes without a reset (a dropped
 * route, a VM paused) is noticed after ~25 s of silence (10 s idle, then 3
 * probes 5 s apart) instead of the kernel's two hours, so a statement or
 * the LISTEN connection fails and is retried instead of hanging. Unix
 * sockets refuse the options: nothing to do there, a local peer cannot
 * vanish silently.
 */
static void keepalive(PGconn *c)
{
    int fd = PQsocket(c), on = 1, idle = 10, intvl = 5, cnt = 3;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) != 0)
        return;
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

/* The library never prints: server notices and warnings are dropped. */
static void quiet(void *arg, const PGresult *res)
{
}

int evs__pg_connect(evs__pg *s, PGconn **out)
{
    *out = NULL;
    PGconn *c = PQconnectdb(s->uri);
    if (!c)
        return evs__err(EVS_ENOMEM, "out of memory connecting to PostgreSQL");
    if (PQstatus(c) != CONNECTION_OK) {
        char msg[512];
        /* libpq adds a hint line: keep the first */
        evs__pg_first_line(msg, sizeof(msg), PQerrorMessage(c));
        PQfinish(c);
        return evs__err(EVS_EBACKEND, "cannot connect to PostgreSQL: %s", msg);
    }
    PQsetNoticeReceiver(c, quiet, NULL);
    keepalive(c);
    /* Appends rely on READ COMMITTED (a fresh snapshot per statement after
     * the head lock); a database default of another level must not apply.
     * No JIT: every statement here is short, and a misestimated one (stale
     * statistics after a bulk load) was seen spending 160 ms compiling a
     * 1000-row page (`evs bench --db`, EXPLAIN section). */
    int rc = evs__pg_exec(c, s->readonly
                                 ? "SET default_transaction_isolation = 'read committed'; "
                                   "SET default_transaction_read_only = on; "
                                   "SET client_min_messages = warning; SET jit = off"
                                 : "SET default_transaction_isolation = 'read committed'; "
                                   "SET synchronous_commit = on; "
                                   "SET client_min_messages = warning; SET jit = off",
                          NULL, "session setup");
    if (rc < 0) {
        PQfinish(c);
        return rc;
    }
    *out = c;
    return 0;
}

void evs__pg_pool_init(evs__pg *s)
{
    pthread_mutex_init(&s->pool_lock, NULL);
    pthread_cond_init(&s->pool_cond, NULL);
}

void evs__pg_backend_of(PGconn *c, evs__pgbackend *b)
{
    b->pid = PQbackendPID(c);
    b->started[0] = 0;
    PGresult *r = PQexec(c, "SELECT backend_start::text FROM pg_stat_activity "
                            "WHERE pid = pg_backend_pid()");
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
        snprintf(b->started, sizeof(b->started), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
}

void evs__pg_pool_first(evs__pg *s, PGconn *c)
{
    s->pool[0].c = c;
    evs__pg_backend_of(c, &s->pool[0].backend);
    s->pool_made = 1;
}

void evs__pg_pool_close(evs__pg *s)
{
    for (int i = 0; i < EVS_PG_POOL_MAX; i++)
        if (s->pool[i].c)
            PQfinish(s->pool[i].c);
    pthread_mutex_destroy(&s->pool_lock);
    pthread_cond_destroy(&s->pool_cond);
}

int evs__pg_get(evs__pg *s, evs__pgconn **out)
{
    int rc;
    pthread_mutex_lock(&s->pool_lock);
    for (;;) {
        for (int i = 0; i < s->pool_made; i++)
            if (!s->pool[i].in_use && s->pool[i].c) {
                s->pool[i].in_use = 1;
                pthread_mutex_unlock(&s->pool_lock);
                *out = &s->pool[i];
                return 0;
            }
        /* a free slot (never made, or dropped after a failure) */
        for (int i = 0; i < EVS_PG_POOL_MAX; i++)
            if (!s->pool[i].in_use && !s->pool[i].c) {
                s->pool[i].in_use = 1;
                if (i >= s->pool_made)
                    s->pool_made = i + 1;
                pthread_mutex_unlock(&s->pool_lock);
                PGconn *c;
                if ((rc = evs__pg_connect(s, &c)) == 0 && (rc = evs__pg_prepare_all(c)) < 0)
                    PQfinish(c);
                if (rc < 0) {
                    pthread_mutex_lock(&s->pool_lock);
                    s->pool[i].in_use = 0;
                    pthread_cond_signal(&s->pool_cond);
                    pthread_mutex_unlock(&s->pool_lock);
                    return rc;
                }
                evs__pg_backend_of(c, &s->pool[i].backend);
                s->pool[i].c = c;
                *out = &s->pool[i];
                return 0;
            }
        pthread_cond_wait(&s->pool_cond, &s->pool_lock);
    }
}

void evs__pg_put(evs__pg *s, evs__pgconn *pc)
{
    if (!pc)
        return;
    PGconn *drop = NULL;
    pthread_mutex_lock(&s->pool_lock);
    /* a broken session, or one left inside a transaction, is not reused */
    if (pc->c && (PQstatus(pc->c) != CONNECTION_OK ||
                  PQtransactionStatus(pc->c) != PQTRANS_IDLE)) {
        drop = pc->c;
        pc->c = NULL;
    }
    pc->in_use = 0;
    pthread_cond_signal(&s->pool_cond);
    pthread_mutex_unlock(&s->pool_lock);
    if (drop)
        PQfinish(drop);
}
