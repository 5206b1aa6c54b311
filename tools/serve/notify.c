/*
 * notify.c -- commit notification for subscriptions: a subscription that
 * has read everything parks here with the head its read saw, and is woken
 * (its next step queued) as soon as a commit moves the head past it.
 *
 * Two sources of commits: this server's own appends (dcb.c and http.c
 * call serve_notify_head with the appended position: no delay at all),
 * and, on PostgreSQL only, other processes: one thread blocks in
 * evs_read_tracking with a timeout, woken by the backend's LISTEN/NOTIFY,
 * then reads the head. (An embedded store has one writing process, this
 * one, so it has no such thread.) The timeout (250 ms) only bounds how
 * late it sees a stop; it is not a poll of the store for events.
 *
 * A waiter parks under notify_lock and is woken there, so a commit between
 * a subscription's read and its park is never missed: the park compares
 * the waiter's head with notify_head first.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <time.h>

#include "serve.h"

static void wake_locked(serve *s, uint64_t head, int all)
{
    serve_waiter **pp = &s->waiters;
    while (*pp) {
        serve_waiter *w = *pp;
        if (all || head > w->seen) {
            *pp = w->next;
            w->next = NULL;
            w->wake(w);
        } else {
            pp = &w->next;
        }
    }
}

void serve_notify_head(serve *s, uint64_t head)
{
    pthread_mutex_lock(&s->notify_lock);
    if (head > s->notify_head) {
        s->notify_head = head;
        wake_locked(s, head, 0);
    }
    pthread_mutex_unlock(&s->notify_lock);
}

int serve_notify_park(serve *s, serve_waiter *w)
{
    pthread_mutex_lock(&s->notify_lock);
    if (s->notify_head > w->seen || atomic_load(&s->stopping)) {
        pthread_mutex_unlock(&s->notify_lock);
        w->wake(w);
        return 0;
    }
    w->next = s->waiters;
    s->waiters = w;
    pthread_mutex_unlock(&s->notify_lock);
    return 1;
}

int serve_notify_unpark(serve *s, serve_waiter *w)
{
    int found = 0;
    pthread_mutex_lock(&s->notify_lock);
    for (serve_waiter **pp = &s->waiters; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            w->next = NULL;
            found = 1;
            break;
        }
    pthread_mutex_unlock(&s->notify_lock);
    return found;
}

void serve_notify_wake_all(serve *s)
{
    pthread_mutex_lock(&s->notify_lock);
    wake_locked(s, 0, 1);
    pthread_mutex_unlock(&s->notify_lock);
}

static void *notify_main(void *arg)
{
    serve *s = arg;
    evs_tracking t = EVS_TRACKING_INIT;
    t.all_tenants = 1;
    uint64_t head = 0;
    if (evs_head_position(&head, s->db, NULL) == 0)
        serve_notify_head(s, head);
    int failing = 0;
    while (!atomic_load(&s->stopping)) {
        evs_iter *it = NULL;
        int rc = evs_read_tracking(&it, s->db, &t, head, 1, 250000);
        evs_iter_free(it);
        if (rc < 0) {
            if (!failing)
                serve_log("commit notification: %s; subscriptions are woken by this "
                          "server's own appends only until it works again",
                          evs_last_error());
            failing = 1;
            struct timespec ts = {0, 250000000};
            nanosleep(&ts, NULL);
        } else {
            failing = 0;
        }
        uint64_t h;
        if (evs_head_position(&h, s->db, NULL) == 0 && h > head) {
            head = h;
            serve_notify_head(s, head);
        }
    }
    return NULL;
}

int serve_notify_start(serve *s)
{
    if (pthread_create(&s->notify_thread, NULL, notify_main, s) != 0)
        return -1;
    s->notify_started = 1;
    return 0;
}

void serve_notify_stop(serve *s)
{
    if (s->notify_started)
        pthread_join(s->notify_thread, NULL);
    s->notify_started = 0;
    serve_notify_wake_all(s);
}
