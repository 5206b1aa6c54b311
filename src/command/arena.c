/*
 * arena.c -- the arena's blocks (arena.h says what it is for).
 *
 * Blocks form a list that is walked forward and never shrunk during a
 * command: when the current block is full, the next one (kept from an
 * earlier attempt or command) is reused, or a new one of 8 KiB (or the
 * request's size, if larger) is appended.
 */
#include "command/arena.h"

#include <stdlib.h>

void *evs__arena_alloc(evs__arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    for (;;) {
        evs__ablock *b = a->cur;
        if (b && b->cap - b->used >= n) {
            void *p = (char *)(b + 1) + b->used;
            b->used += n;
            return p;
        }
        if (b && b->next) {
            a->cur = b->next;
            a->cur->used = 0;
            continue;
        }
        size_t cap = n > 8192 ? n : 8192;
        evs__ablock *nb = malloc(sizeof(evs__ablock) + cap);
        if (!nb)
            return NULL;
        nb->next = NULL;
        nb->cap = cap;
        nb->used = 0;
        if (b)
            b->next = nb;
        else
            a->head = nb;
        a->cur = nb;
    }
}

void evs__arena_free(evs__arena *a)
{
    for (evs__ablock *b = a->head, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    a->head = a->cur = NULL;
}

void evs__arena_trim(evs__arena *a, size_t max_keep)
{
    evs__ablock *b = a->head;
    if (!b)
        return;
    for (evs__ablock *n = b->next, *next; n; n = next) {
        next = n->next;
        free(n);
    }
    b->next = NULL;
    a->cur = b;
    if (b->cap > max_keep)
        evs__arena_free(a);
}
