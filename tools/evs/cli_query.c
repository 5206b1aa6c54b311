/*
 * cli_query.c -- DCB queries for `evs query` and `evs append --fail-if`:
 * from the shorthand flags (--type, --tag, --or) or from the
 * specification's JSON shape (cli.h). JSON is read with the CLI's
 * simdjson readers (cli_json.c); the names themselves (empty, too long,
 * reserved '$' tags, not UTF-8) are left to the library, which checks
 * every query it is given and says what is wrong.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Shorthand flags                                                     */
/* ------------------------------------------------------------------ */

void cli_qflags_add(cli_qflags *f, cli_qterm_kind kind, const char *text)
{
    f->terms = cli_xrealloc(f->terms, (f->n + 1) * sizeof *f->terms);
    f->terms[f->n].kind = kind;
    f->terms[f->n].text = text;
    f->n++;
}

void cli_qflags_free(cli_qflags *f)
{
    free(f->terms);
    f->terms = NULL;
    f->n = 0;
}

/* An array of n names in the arena (n may be 0: NULL). */
static const char **names(cli_arena *a, size_t n)
{
    return n > 0 ? cli_arena_alloc(a, n * sizeof(const char *)) : NULL;
}

int cli_query_from_flags(evs_query *out, cli_arena *a, const cli_qflags *f,
                         char *err, size_t errlen)
{
    evs_query_item *items;
    size_t nitems = 1, i, k;

    memset(out, 0, sizeof *out);
    if (f->n == 0)
        return 0; /* no flag: every event */
    for (i = 0; i < f->n; i++)
        nitems += f->terms[i].kind == CLI_QTERM_OR;
    items = cli_arena_alloc(a, nitems * sizeof *items);
    memset(items, 0, nitems * sizeof *items);

    /* Count, allocate, fill: the flags of item k run up to its --or. */
    for (i = 0, k = 0; i < f->n; i++) {
        if (f->terms[i].kind == CLI_QTERM_OR)
            k++;
        else if (f->terms[i].kind == CLI_QTERM_TYPE)
            items[k].ntypes++;
        else
            items[k].ntags++;
    }
    for (k = 0; k < nitems; k++) {
        if (items[k].ntypes + items[k].ntags == 0) {
            snprintf(err, errlen, "--or needs --type or --tag flags on both "
                     "sides (an empty item would match every event; for "
                     "every event give no --type, --tag or --or at all)");
            return -1;
        }
        items[k].types = names(a, items[k].ntypes);
        items[k].tags = names(a, items[k].ntags);
        items[k].ntypes = items[k].ntags = 0;
    }
    for (i = 0, k = 0; i < f->n; i++) {
        evs_query_item *it = &items[k];

        if (f->terms[i].kind == CLI_QTERM_OR)
            k++;
        else if (f->terms[i].kind == CLI_QTERM_TYPE)
            ((const char **)it->types)[it->ntypes++] = f->terms[i].text;
        else
            ((const char **)it->tags)[it->ntags++] = f->terms[i].text;
    }
    out->items = items;
    out->nitems = nitems;
    return 0;
}

/* ------------------------------------------------------------------ */
/* JSON                                                                */
/* ------------------------------------------------------------------ */

/* How much of a value to quote in a message. */
static int clip(const cli_json_member *m)
{
    return m->val_len > 40 ? 40 : (int)m->val_len;
}

static int is_null(const cli_json_member *m)
{
    return m->val_len == 4 && memcmp(m->val, "null", 4) == 0;
}

/* One item's "types" or "tags": an array of strings, or null for none. */
static int item_names(cli_arena *a, const cli_json_member *m, size_t item,
                      const char *const **out, size_t *n, char *err,
                      size_t errlen)
{
    const char **s;
    int count;

    if (*out != NULL || *n != 0) {
        snprintf(err, errlen, "items[%zu]: key \"%s\" appears twice", item,
                 m->key);
        return -1;
    }
    if (is_null(m))
        return 0;
    count = cli_json_strings(a, m->val, m->val_len, &s);
    if (count < 0) {
        snprintf(err, errlen, "items[%zu]: \"%s\" must be an array of "
                 "strings, not %.*s", item, m->key, clip(m), m->val);
        return -1;
    }
    *out = s;
    *n = (size_t)count;
    return 0;
}

/* Item number i (0-based, as the library counts them) from its JSON. */
static int parse_item(cli_arena *a, const cli_json_member *v, size_t i,
                      evs_query_item *it, char *err, size_t errlen)
{
    cli_json_member *m;
    char why[160];
    int nm = cli_json_object(a, v->val, v->val_len, &m, why, sizeof why), k;

    if (nm < 0) {
        snprintf(err, errlen, "items[%zu] must be an object such as "
                 "{\"types\":[\"A\"],\"tags\":[\"k:v\"]}, not %.*s", i,
                 clip(v), v->val);
        return -1;
    }
    for (k = 0; k < nm; k++) {
        int rc;

        if (strcmp(m[k].key, "types") == 0) {
            rc = item_names(a, &m[k], i, &it->types, &it->ntypes, err,
                            errlen);
        } else if (strcmp(m[k].key, "tags") == 0) {
            rc = item_names(a, &m[k], i, &it->tags, &it->ntags, err, errlen);
        } else {
            snprintf(err, errlen, "items[%zu]: unknown key \"%.64s\" (an "
                     "item has \"types\" and \"tags\")", i, m[k].key);
            rc = -1;
        }
        if (rc < 0)
            return -1;
    }
    return 0;
}

int cli_query_from_json(evs_query *out, cli_arena *a, const char *p,
                        size_t n, char *err, size_t errlen)
{
    cli_json_member *top, *elems = NULL;
    const cli_json_member *items = NULL;
    evs_query_item *qi;
    char why[160];
    int ntop, nitems = 0, k;

    memset(out, 0, sizeof *out);
    if (cli_json_check(p, n, NULL, NULL, why, sizeof why) < 0) {
        snprintf(err, errlen, "not valid JSON: %s", why);
        return -1;
    }
    ntop = cli_json_object(a, p, n, &top, why, sizeof why);
    if (ntop < 0) {
        snprintf(err, errlen, "must be an object such as "
                 "{\"items\":[{\"types\":[\"A\"],\"tags\":[\"k:v\"]}]}");
        return -1;
    }
    for (k = 0; k < ntop; k++) {
        if (strcmp(top[k].key, "items") != 0) {
            snprintf(err, errlen, "unknown key \"%.64s\" (a query has "
                     "\"items\")", top[k].key);
            return -1;
        }
        if (items != NULL) {
            snprintf(err, errlen, "key \"items\" appears twice");
            return -1;
        }
        items = &top[k];
    }
    if (items == NULL || is_null(items))
        return 0; /* every event */
    nitems = cli_json_array(a, items->val, items->val_len, &elems, why,
                            sizeof why);
    if (nitems < 0) {
        snprintf(err, errlen, "\"items\" must be an array of items, not "
                 "%.*s", clip(items), items->val);
        return -1;
    }
    qi = cli_arena_alloc(a, (size_t)nitems * sizeof *qi + 1);
    memset(qi, 0, (size_t)nitems * sizeof *qi);
    for (k = 0; k < nitems; k++)
        if (parse_item(a, &elems[k], (size_t)k, &qi[k], err, errlen) < 0)
            return -1;
    out->items = qi;
    out->nitems = (size_t)nitems;
    return 0;
}
