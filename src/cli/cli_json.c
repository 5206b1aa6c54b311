/*
 * cli_json.c -- a JSON scanner that validates RFC 8259 text and reports
 * the raw spans of values, without building a tree (cli.h says why).
 *
 * Recursive descent over a byte string; nesting is limited to
 * MAX_DEPTH, above jansson's 2048, so that anything the library accepted
 * is accepted here too, with a stack of a few hundred KiB at most.
 */
#include "cli.h"

#include <string.h>

#define MAX_DEPTH 4096

typedef struct scan {
    const char *p;
    size_t n;
    size_t i;
    int depth;
    const char *err; /* first error, a static message */
    size_t err_at;
} scan;

static int fail(scan *s, const char *msg)
{
    if (s->err == NULL) {
        s->err = msg;
        s->err_at = s->i;
    }
    return -1;
}

static void skip_ws(scan *s)
{
    while (s->i < s->n) {
        char c = s->p[s->i];

        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        s->i++;
    }
}

/* Length of the well-formed UTF-8 sequence at p[0..n) (no overlong forms,
 * no surrogates, at most U+10FFFF), or 0. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return n >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (n < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f))
            return 0;
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (n < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 ||
            (p[3] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f))
            return 0;
        return 4;
    }
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int scan_value(scan *s);

/* At the opening quote. */
static int scan_string(scan *s)
{
    s->i++;
    for (;;) {
        unsigned char c;

        if (s->i >= s->n)
            return fail(s, "unterminated string");
        c = (unsigned char)s->p[s->i];
        if (c == '"') {
            s->i++;
            return 0;
        }
        if (c == '\\') {
            int k;

            s->i++;
            if (s->i >= s->n)
                return fail(s, "unterminated string");
            switch (s->p[s->i]) {
            case '"': case '\\': case '/': case 'b':
            case 'f': case 'n': case 'r': case 't':
                s->i++;
                break;
            case 'u':
                s->i++;
                for (k = 0; k < 4; k++, s->i++)
                    if (s->i >= s->n || hexval(s->p[s->i]) < 0)
                        return fail(s, "invalid \\u escape in string");
                break;
            default:
                return fail(s, "invalid escape in string");
            }
        } else if (c < 0x20) {
            return fail(s, "control character in string (escape it)");
        } else {
            size_t len = utf8_len((const unsigned char *)s->p + s->i,
                                  s->n - s->i);

            if (len == 0)
                return fail(s, "invalid UTF-8 in string");
            s->i += len;
        }
    }
}

static int scan_digits(scan *s)
{
    size_t start = s->i;

    while (s->i < s->n && s->p[s->i] >= '0' && s->p[s->i] <= '9')
        s->i++;
    return s->i > start ? 0 : fail(s, "invalid number");
}

static int scan_number(scan *s)
{
    if (s->p[s->i] == '-')
        s->i++;
    if (s->i < s->n && s->p[s->i] == '0')
        s->i++;
    else if (scan_digits(s) < 0)
        return -1;
    if (s->i < s->n && s->p[s->i] == '.') {
        s->i++;
        if (scan_digits(s) < 0)
            return -1;
    }
    if (s->i < s->n && (s->p[s->i] == 'e' || s->p[s->i] == 'E')) {
        s->i++;
        if (s->i < s->n && (s->p[s->i] == '+' || s->p[s->i] == '-'))
            s->i++;
        if (scan_digits(s) < 0)
            return -1;
    }
    return 0;
}

static int scan_literal(scan *s, const char *word)
{
    size_t len = strlen(word);

    if (s->n - s->i < len || memcmp(s->p + s->i, word, len) != 0)
        return fail(s, "invalid literal (expected a JSON value)");
    s->i += len;
    return 0;
}

static int scan_object(scan *s)
{
    s->i++;
    skip_ws(s);
    if (s->i < s->n && s->p[s->i] == '}') {
        s->i++;
        return 0;
    }
    for (;;) {
        if (s->i >= s->n || s->p[s->i] != '"')
            return fail(s, "expected a string key");
        if (scan_string(s) < 0)
            return -1;
        skip_ws(s);
        if (s->i >= s->n || s->p[s->i] != ':')
            return fail(s, "expected ':'");
        s->i++;
        skip_ws(s);
        if (scan_value(s) < 0)
            return -1;
        skip_ws(s);
        if (s->i < s->n && s->p[s->i] == ',') {
            s->i++;
            skip_ws(s);
            continue;
        }
        if (s->i < s->n && s->p[s->i] == '}') {
            s->i++;
            return 0;
        }
        return fail(s, "expected ',' or '}'");
    }
}

static int scan_array(scan *s)
{
    s->i++;
    skip_ws(s);
    if (s->i < s->n && s->p[s->i] == ']') {
        s->i++;
        return 0;
    }
    for (;;) {
        if (scan_value(s) < 0)
            return -1;
        skip_ws(s);
        if (s->i < s->n && s->p[s->i] == ',') {
            s->i++;
            skip_ws(s);
            continue;
        }
        if (s->i < s->n && s->p[s->i] == ']') {
            s->i++;
            return 0;
        }
        return fail(s, "expected ',' or ']'");
    }
}

static int scan_value(scan *s)
{
    int rc;

    if (s->i >= s->n)
        return fail(s, "unexpected end of input (expected a JSON value)");
    if (++s->depth > MAX_DEPTH)
        return fail(s, "nesting too deep");
    switch (s->p[s->i]) {
    case '{': rc = scan_object(s); break;
    case '[': rc = scan_array(s); break;
    case '"': rc = scan_string(s); break;
    case 't': rc = scan_literal(s, "true"); break;
    case 'f': rc = scan_literal(s, "false"); break;
    case 'n': rc = scan_literal(s, "null"); break;
    case '-': case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        rc = scan_number(s);
        break;
    default:
        rc = fail(s, "unexpected character (expected a JSON value)");
    }
    s->depth--;
    return rc;
}

/* "MSG at column C" or "MSG at line L column C". */
static void format_err(const scan *s, char *err, size_t errlen)
{
    size_t line = 1, col = 1, k;

    if (errlen == 0)
        return;
    for (k = 0; k < s->err_at && k < s->n; k++) {
        if (s->p[k] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    if (line == 1)
        snprintf(err, errlen, "%s at column %zu", s->err, col);
    else
        snprintf(err, errlen, "%s at line %zu column %zu", s->err, line, col);
}

int cli_json_check(const char *p, size_t n, size_t *vstart, size_t *vend,
                   char *err, size_t errlen)
{
    scan s = {p, n, 0, 0, NULL, 0};
    size_t start;

    skip_ws(&s);
    if (s.i == n) {
        snprintf(err, errlen, "no JSON value (the text is empty)");
        return -1;
    }
    start = s.i;
    if (scan_value(&s) == 0) {
        if (vstart)
            *vstart = start;
        if (vend)
            *vend = s.i;
        skip_ws(&s);
        if (s.i == n)
            return 0;
        fail(&s, "unexpected text after the JSON value");
    }
    format_err(&s, err, errlen);
    return -1;
}

/* ------------------------------------------------------------------ */
/* Writing                                                             */
/* ------------------------------------------------------------------ */

void cli_json_minify(cli_buf *b, const char *p, size_t n)
{
    size_t i, run = 0;
    int in_str = 0, esc = 0;

    cli_buf_reserve(b, n);
    for (i = 0; i < n; i++) {
        char c = p[i];

        if (in_str) {
            if (esc)
                esc = 0;
            else if (c == '\\')
                esc = 1;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            cli_buf_put(b, p + run, i - run);
            run = i + 1;
        }
    }
    cli_buf_put(b, p + run, n - run);
}

void cli_json_put_value(cli_buf *b, const char *p, size_t n)
{
    if (memchr(p, '\n', n) != NULL || memchr(p, '\r', n) != NULL)
        cli_json_minify(b, p, n);
    else
        cli_buf_put(b, p, n);
}

void cli_json_put_str(cli_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i = 0, run = 0;

    cli_buf_putc(b, '"');
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        const char *rep = NULL;
        char u[7];
        size_t len = 1;

        if (c == '"')
            rep = "\\\"";
        else if (c == '\\')
            rep = "\\\\";
        else if (c == '\n')
            rep = "\\n";
        else if (c == '\r')
            rep = "\\r";
        else if (c == '\t')
            rep = "\\t";
        else if (c < 0x20) {
            memcpy(u, "\\u00", 4);
            u[4] = hex[c >> 4];
            u[5] = hex[c & 15];
            u[6] = '\0';
            rep = u;
        } else if (c >= 0x80) {
            len = utf8_len((const unsigned char *)s + i, n - i);
            if (len == 0) {
                rep = "\\ufffd";
                len = 1;
            }
        }
        if (rep != NULL) {
            cli_buf_put(b, s + run, i - run);
            cli_buf_puts(b, rep);
            run = i + len;
        }
        i += len;
    }
    cli_buf_put(b, s + run, n - run);
    cli_buf_putc(b, '"');
}

/* ------------------------------------------------------------------ */
/* Reading objects, arrays and strings                                 */
/* ------------------------------------------------------------------ */

int cli_json_object(cli_arena *a, const char *p, size_t n,
                    cli_json_member **out, char *err, size_t errlen)
{
    scan s = {p, n, 0, 0, NULL, 0};
    cli_json_member *m = NULL;
    size_t count = 0, cap = 0;

    skip_ws(&s);
    if (s.i >= n || p[s.i] != '{') {
        fail(&s, "expected a JSON object");
        goto bad;
    }
    s.i++;
    skip_ws(&s);
    if (s.i < n && p[s.i] == '}') {
        s.i++;
        goto end;
    }
    for (;;) {
        size_t kstart = s.i, vstart;

        if (s.i >= n || p[s.i] != '"') {
            fail(&s, "expected a string key");
            goto bad;
        }
        if (scan_string(&s) < 0)
            goto bad;
        if (count == cap) {
            cli_json_member *bigger;

            cap = cap ? cap * 2 : 16;
            bigger = cli_arena_alloc(a, cap * sizeof *bigger);
            if (count > 0)
                memcpy(bigger, m, count * sizeof *m);
            m = bigger;
        }
        m[count].key = cli_json_string(a, p + kstart, s.i - kstart);
        if (m[count].key == NULL) {
            s.i = kstart;
            fail(&s, "key is not valid text");
            goto bad;
        }
        skip_ws(&s);
        if (s.i >= n || p[s.i] != ':') {
            fail(&s, "expected ':'");
            goto bad;
        }
        s.i++;
        skip_ws(&s);
        vstart = s.i;
        if (scan_value(&s) < 0)
            goto bad;
        m[count].val = p + vstart;
        m[count].val_len = s.i - vstart;
        count++;
        skip_ws(&s);
        if (s.i < n && p[s.i] == ',') {
            s.i++;
            skip_ws(&s);
            continue;
        }
        if (s.i < n && p[s.i] == '}') {
            s.i++;
            break;
        }
        fail(&s, "expected ',' or '}'");
        goto bad;
    }
end:
    skip_ws(&s);
    if (s.i != n) {
        fail(&s, "unexpected text after the JSON object");
        goto bad;
    }
    *out = m;
    return (int)count;
bad:
    format_err(&s, err, errlen);
    return -1;
}

int cli_json_array(cli_arena *a, const char *p, size_t n, const char ***vals,
                   size_t **lens)
{
    scan s = {p, n, 0, 0, NULL, 0};
    size_t count = 0, k;
    const char **v = NULL;
    size_t *l = NULL;

    if (n == 0 || p[0] != '[')
        return -1;
    /* Count first (the text is valid), then fill. */
    for (k = 0; k < 2; k++) {
        size_t idx = 0;

        s.i = 1;
        skip_ws(&s);
        if (k == 1) {
            v = cli_arena_alloc(a, (count ? count : 1) * sizeof *v);
            l = cli_arena_alloc(a, (count ? count : 1) * sizeof *l);
            *vals = v;
            *lens = l;
        }
        while (s.i < n && p[s.i] != ']') {
            size_t start = s.i;

            if (scan_value(&s) < 0)
                return -1;
            if (k == 1) {
                v[idx] = p + start;
                l[idx] = s.i - start;
            }
            idx++;
            skip_ws(&s);
            if (s.i < n && p[s.i] == ',') {
                s.i++;
                skip_ws(&s);
            }
        }
        count = idx;
    }
    return (int)count;
}

static void put_utf8(char **o, unsigned cp)
{
    unsigned char *q = (unsigned char *)*o;

    if (cp < 0x80) {
        *q++ = (unsigned char)cp;
    } else if (cp < 0x800) {
        *q++ = (unsigned char)(0xc0 | (cp >> 6));
        *q++ = (unsigned char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        *q++ = (unsigned char)(0xe0 | (cp >> 12));
        *q++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        *q++ = (unsigned char)(0x80 | (cp & 0x3f));
    } else {
        *q++ = (unsigned char)(0xf0 | (cp >> 18));
        *q++ = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
        *q++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        *q++ = (unsigned char)(0x80 | (cp & 0x3f));
    }
    *o = (char *)q;
}

static unsigned hex4(const char *p)
{
    return (unsigned)(hexval(p[0]) << 12 | hexval(p[1]) << 8 |
                      hexval(p[2]) << 4 | hexval(p[3]));
}

char *cli_json_string(cli_arena *a, const char *p, size_t n)
{
    char *out, *o;
    size_t i;

    if (n < 2 || p[0] != '"' || p[n - 1] != '"')
        return NULL;
    /* Decoded text is never longer than the literal. */
    out = o = cli_arena_alloc(a, n);
    for (i = 1; i < n - 1; i++) {
        unsigned cp;

        if (p[i] != '\\') {
            *o++ = p[i];
            continue;
        }
        i++;
        switch (p[i]) {
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u':
            cp = hex4(p + i + 1);
            i += 4;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                unsigned lo;

                if (i + 6 >= n - 1 || p[i + 1] != '\\' || p[i + 2] != 'u')
                    return NULL; /* a lone surrogate is not text */
                lo = hex4(p + i + 3);
                if (lo < 0xdc00 || lo > 0xdfff)
                    return NULL;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                i += 6;
            } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                return NULL;
            }
            if (cp == 0)
                return NULL; /* would cut a C string short */
            put_utf8(&o, cp);
            break;
        default: /* '"', '\\', '/' */
            *o++ = p[i];
        }
    }
    *o = '\0';
    return out;
}
