/*
 * cli_json.c -- JSON for the CLI: reading and checking through the
 * library's simdjson wrappers (src/util/json.h), which hand out the raw
 * text of values (cli.h says why that matters); writing strings through
 * jansson.
 */
#include "cli.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "util/json.h"
#include "util/util.h"

/* ------------------------------------------------------------------ */
/* Checking                                                            */
/* ------------------------------------------------------------------ */

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* "REASON at column C" or "REASON at line L column C" for the byte offset
 * where in p[0..n); just "REASON" when the place is not known. */
static void format_err(char *err, size_t errlen, const char *reason,
                       const char *p, size_t n, size_t where)
{
    size_t line = 1, col = 1, k;

    if (errlen == 0)
        return;
    if (where == EVS__JSON_NOWHERE) {
        snprintf(err, errlen, "%s", reason);
        return;
    }
    for (k = 0; k < where && k < n; k++) {
        if (p[k] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    if (line == 1)
        snprintf(err, errlen, "%s at column %zu", reason, col);
    else
        snprintf(err, errlen, "%s at line %zu column %zu", reason, line, col);
}

/* A failed evs__json_* call as a message in err. */
static void report(int rc, const char *reason, const char *p, size_t n,
                   size_t where, char *err, size_t errlen)
{
    if (rc == -2)
        snprintf(err, errlen, "out of memory reading JSON");
    else
        format_err(err, errlen, reason, p, n, where);
}

int cli_json_check(const char *p, size_t n, size_t *vstart, size_t *vend,
                   char *err, size_t errlen)
{
    char reason[160];
    size_t where, s = 0, e = n;
    int rc = evs__json_check_at(p, n, &where, reason, sizeof reason);

    if (rc < 0) {
        report(rc, reason, p, n, where, err, errlen);
        return -1;
    }
    /* Valid JSON starts and ends with a token: trimming the JSON
     * whitespace around it leaves exactly the value. */
    while (s < e && is_space(p[s]))
        s++;
    while (e > s && is_space(p[e - 1]))
        e--;
    if (vstart)
        *vstart = s;
    if (vend)
        *vend = e;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Writing                                                             */
/* ------------------------------------------------------------------ */

void cli_json_minify(cli_buf *b, const char *p, size_t n)
{
    size_t len = 0;

    cli_buf_reserve(b, n);
    if (evs__json_minify(p, n, b->p + b->len, &len) == 0)
        b->len += len;
    else /* not JSON after all: keep it as it is */
        cli_buf_put(b, p, n);
}

void cli_json_put_value(cli_buf *b, const char *p, size_t n)
{
    if (memchr(p, '\n', n) != NULL || memchr(p, '\r', n) != NULL)
        cli_json_minify(b, p, n);
    else
        cli_buf_put(b, p, n);
}

/* s[0..n) with each byte that does not start a well-formed UTF-8 sequence
 * replaced by U+FFFD, in a new buffer. Names the library hands out are
 * UTF-8 already (it checks them on append), so this is for the odd case. */
static void to_utf8(cli_buf *out, const char *s, size_t n)
{
    size_t i = 0, k;

    while (i < n) {
        for (k = 1; k <= 4 && i + k <= n; k++)
            if (evs__utf8_valid(s + i, k))
                break;
        if (k <= 4 && i + k <= n) {
            cli_buf_put(out, s + i, k);
            i += k;
        } else {
            cli_buf_puts(out, "\xef\xbf\xbd");
            i++;
        }
    }
}

void cli_json_put_str(cli_buf *b, const char *s, size_t n)
{
    cli_buf fixed = {0};
    json_t *js = json_stringn(s, n);
    size_t len;

    if (js == NULL) { /* not UTF-8 (or out of memory) */
        to_utf8(&fixed, s, n);
        js = json_stringn(fixed.p ? fixed.p : "", fixed.len);
        n = fixed.len;
        if (js == NULL) {
            cli_err("out of memory");
            exit(CLI_EXIT_FAIL);
        }
    }
    /* At most 6 bytes ("\u001F") per input byte, and the quotes. */
    cli_buf_reserve(b, 6 * n + 2);
    len = json_dumpb(js, b->p + b->len, 6 * n + 2, JSON_ENCODE_ANY);
    b->len += len;
    json_decref(js);
    cli_buf_free(&fixed);
}

/* ------------------------------------------------------------------ */
/* Reading objects and arrays                                          */
/* ------------------------------------------------------------------ */

typedef struct collect {
    cli_arena *a;
    cli_json_member *m;
    size_t n, cap;
    int key_has_nul; /* a name holds U+0000: not usable as C text */
} collect;

/* A copy in the arena, or NULL when the text holds U+0000 (it would cut
 * a C string short). */
static char *text_copy(cli_arena *a, const char *s, size_t n)
{
    if (s == NULL || memchr(s, '\0', n) != NULL)
        return NULL;
    return cli_arena_strndup(a, s, n);
}

static void grow(collect *c)
{
    cli_json_member *bigger;

    if (c->n < c->cap)
        return;
    c->cap = c->cap ? c->cap * 2 : 16;
    bigger = cli_arena_alloc(c->a, c->cap * sizeof *bigger);
    if (c->n > 0)
        memcpy(bigger, c->m, c->n * sizeof *c->m);
    c->m = bigger;
}

/* One member of an object (key set) or element of an array (key NULL). */
static void on_item(void *ctx, const evs__json_item *it)
{
    collect *c = ctx;
    cli_json_member *m;

    grow(c);
    m = &c->m[c->n++];
    m->key = NULL;
    if (it->key != NULL &&
        (m->key = text_copy(c->a, it->key, it->key_len)) == NULL) {
        c->key_has_nul = 1;
        m->key = "";
    }
    m->val = it->raw;
    m->val_len = it->raw_len;
    m->str = text_copy(c->a, it->str, it->str_len);
}

/* The members or elements of p[0..n), walked by items
 * (evs__json_object_items or _array_items): cli_json_object and
 * cli_json_array. */
static int read_items(cli_arena *a,
                      int (*items)(const void *, size_t, evs__json_item_fn,
                                   void *, size_t *, char *, size_t),
                      const char *p, size_t n, cli_json_member **out,
                      char *err, size_t errlen)
{
    collect c = {a, NULL, 0, 0, 0};
    char reason[160];
    size_t where;
    int rc = items(p, n, on_item, &c, &where, reason, sizeof reason);

    if (rc < 0) {
        report(rc, reason, p, n, where, err, errlen);
        return -1;
    }
    if (c.key_has_nul) {
        snprintf(err, errlen, "a key holds \\u0000");
        return -1;
    }
    *out = c.m;
    return (int)c.n;
}

int cli_json_object(cli_arena *a, const char *p, size_t n,
                    cli_json_member **out, char *err, size_t errlen)
{
    return read_items(a, evs__json_object_items, p, n, out, err, errlen);
}

int cli_json_array(cli_arena *a, const char *p, size_t n,
                   cli_json_member **out, char *err, size_t errlen)
{
    return read_items(a, evs__json_array_items, p, n, out, err, errlen);
}

int cli_json_strings(cli_arena *a, const char *p, size_t n,
                     const char ***out)
{
    cli_json_member *m = NULL;
    const char **s;
    char err[160]; /* unused: the caller says what is wrong */
    int count = cli_json_array(a, p, n, &m, err, sizeof err), i;

    if (count < 0)
        return -1;
    s = cli_arena_alloc(a, ((size_t)count + 1) * sizeof *s);
    for (i = 0; i < count; i++)
        if ((s[i] = m[i].str) == NULL)
            return -1;
    s[count] = NULL;
    *out = s;
    return count;
}
