/*
 * cli_util.c -- the helpers every `evs` subcommand shares (see cli.h).
 */
#include "cli.h"

#include <errno.h>
#include <unistd.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

/* The longest piece of an argument a message quotes whole. */
#define ECHO_CAP 80

static int err_argc;
static char **err_argv;

void cli_err_args(int argc, char **argv)
{
    err_argc = argc;
    err_argv = argv;
}

/* The first place in p where a command-line argument longer than
 * ECHO_CAP bytes (or the value of such a "--flag=value") is quoted, or
 * NULL; *len gets its length. */
static const char *long_arg_in(const char *p, size_t *len)
{
    const char *best = NULL;
    int i, k;

    for (i = 1; i < err_argc; i++) {
        for (k = 0; k < 2; k++) {
            const char *a = err_argv[i], *h;
            size_t n;

            if (k == 1) {
                if (strncmp(a, "--", 2) != 0 || strchr(a, '=') == NULL)
                    break;
                a = strchr(a, '=') + 1;
            }
            n = strlen(a);
            if (n <= ECHO_CAP || (h = strstr(p, a)) == NULL)
                continue;
            if (best == NULL || h < best || (h == best && n > *len)) {
                best = h;
                *len = n;
            }
        }
    }
    return best;
}

/* Write the message to stderr with every long argument it quotes cut to
 * its first ECHO_CAP bytes and "… (N bytes)": a 120 KB argument must not
 * fill the terminal. Done here, once, and not where each message is made:
 * dozens of messages quote arguments, and the library's quote names. */
static void put_capped(const char *fmt, va_list ap)
{
    char *msg, *p;
    const char *hit;
    size_t len = 0, keep;

    if (vasprintf(&msg, fmt, ap) < 0) {
        fputs(fmt, stderr);
        return;
    }
    for (p = msg; (hit = long_arg_in(p, &len)) != NULL; p = (char *)hit + len) {
        keep = ECHO_CAP;
        while (keep > 0 && ((unsigned char)hit[keep] & 0xC0) == 0x80)
            keep--; /* not inside a UTF-8 sequence */
        fwrite(p, 1, (size_t)(hit - p) + keep, stderr);
        fprintf(stderr, "\u2026 (%zu bytes)", len);
    }
    fputs(p, stderr);
    free(msg);
}

void cli_err(const char *fmt, ...)
{
    va_list ap;

    fputs("evs: ", stderr);
    va_start(ap, fmt);
    put_capped(fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "evs: %s: ", cmd);
    va_start(ap, fmt);
    put_capped(fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see 'evs %s --help')\n", cmd);
    return CLI_EXIT_USAGE;
}

int cli_exit_for(int rc)
{
    /* EVS_EINVAL from the library is always about what the user gave us
     * (a name, a type, a tag, JSON, the --db path): a usage error. */
    if (rc == EVS_EINVAL)
        return CLI_EXIT_USAGE;
    if (rc == EVS_ECONFLICT)
        return CLI_EXIT_CONFLICT;
    if (rc == EVS_EBUSY)
        return CLI_EXIT_BUSY;
    return CLI_EXIT_FAIL;
}

const char *cli_lib_detail(int rc)
{
    const char *detail = evs_last_error();

    if (detail == NULL || detail[0] == '\0')
        detail = evs_strerror(rc);
    return detail;
}

int cli_lib_err(int rc, const char *what)
{
    const char *detail = cli_lib_detail(rc);

    if (what != NULL)
        cli_err("%s: %s", what, detail);
    else
        cli_err("%s", detail);
    return cli_exit_for(rc);
}

int cli_check_db(const cli_ctx *cx)
{
    if (cx->db_uri[0] == '\0') {
        cli_err("the store path is empty (give --db PATH or set EVS_DB)");
        return CLI_EXIT_USAGE;
    }
    return 0;
}

/* What recovery did on open (the index rebuilt, a torn tail cut): one
 * line on stderr each. */
static void on_recovery_notice(void *ctx, const char *line)
{
    int *progress_shown = ctx;
    if (*progress_shown)
        fputc('\n', stderr);
    *progress_shown = 0;
    fprintf(stderr, "evs: %s\n", line);
}

/* Progress of an index rebuild, on a terminal only. */
static void on_recovery_progress(void *ctx, uint64_t done, uint64_t total)
{
    int *progress_shown = ctx;
    if (!isatty(STDERR_FILENO) || total == 0)
        return;
    fprintf(stderr, "\revs: indexing the log: %" PRIu64 " of %" PRIu64 " events (%.0f%%)",
            done, total, 100.0 * (double)done / (double)total);
    *progress_shown = done < total;
    if (done >= total)
        fputc('\n', stderr);
}

/* ------------------------------------------------------------------ */
/* Store options: global flags and EVS_* variables                     */
/* ------------------------------------------------------------------ */

/* What --segment-size, --max-event-size and --snapshot-keep (or their
 * variables) chose; 0: the library's default. Process-wide, as the flags
 * are: main sets them before the command runs, cli_open_options hands
 * them to every open. */
static uint32_t cfg_segment_size, cfg_max_event_size, cfg_snapshot_keep;

static const struct store_option {
    const char *flag, *var, *limits;
    uint32_t *value;
    uint64_t min, max;
    int is_size;
} store_options[CLI_NSTORE_OPTIONS] = {
    {"--segment-size", "EVS_SEGMENT_SIZE",
     "bytes per log segment, 1M..1G (used only when a store is created)",
     &cfg_segment_size, 1u << 20, 1u << 30, 1},
    {"--max-event-size", "EVS_MAX_EVENT_SIZE",
     "bytes of data + metadata of one event, 1..1G-64K, and at most the "
     "segment size - 64K",
     &cfg_max_event_size, 1, (1u << 30) - (64u << 10), 1},
    {"--snapshot-keep", "EVS_SNAPSHOT_KEEP",
     "snapshots kept per stream, 1..1000", &cfg_snapshot_keep, 1, 1000, 0},
};

/* Digits with an optional K, M or G (powers of 1024, any case; "KiB" and
 * "KB" too). Returns 0, or -1 when s is not such a size. */
static int parse_size(const char *s, uint64_t *out)
{
    char num[24];
    size_t n = strspn(s, "0123456789");
    const char *suf = s + n;
    uint64_t v, mul = 1;

    if (n == 0 || n >= sizeof num)
        return -1;
    memcpy(num, s, n);
    num[n] = '\0';
    if (cli_parse_u64(num, &v) < 0)
        return -1;
    if (*suf != '\0') {
        switch (*suf) {
        case 'k': case 'K': mul = 1u << 10; break;
        case 'm': case 'M': mul = 1u << 20; break;
        case 'g': case 'G': mul = 1u << 30; break;
        default: return -1;
        }
        suf++;
        if (*suf != '\0' && strcmp(suf, "B") != 0 && strcmp(suf, "iB") != 0)
            return -1;
    }
    if (v > UINT64_MAX / mul)
        return -1;
    *out = v * mul;
    return 0;
}

/* The store option a flag ("--segment-size", also "--segment-size=V")
 * or a variable names, or -1. */
static int store_option_find(const char *name, size_t *namelen)
{
    int i;

    *namelen = strcspn(name, "=");
    for (i = 0; i < CLI_NSTORE_OPTIONS; i++)
        if ((strlen(store_options[i].flag) == *namelen &&
             strncmp(name, store_options[i].flag, *namelen) == 0) ||
            strcmp(name, store_options[i].var) == 0)
            return i;
    return -1;
}

int cli_store_option(const char *name, const char *text)
{
    size_t namelen;
    int i = store_option_find(name, &namelen);
    const struct store_option *so;
    uint64_t v;
    int bad;

    if (i < 0) {
        cli_err("unknown option '%s' (see 'evs --help')", name);
        return CLI_EXIT_USAGE;
    }
    so = &store_options[i];
    bad = so->is_size ? parse_size(text, &v) : cli_parse_u64(text, &v);
    if (bad < 0 || v < so->min || v > so->max) {
        cli_err("%.*s: '%s' is not valid: %s%s (see 'evs --help')",
                (int)namelen, name, text, so->limits,
                so->is_size ? "; bytes, or a number with K, M or G" : "");
        return CLI_EXIT_USAGE;
    }
    *so->value = (uint32_t)v;
    return 0;
}

int cli_store_option_index(const char *flag)
{
    size_t namelen;
    int i = store_option_find(flag, &namelen);

    /* a variable's name is not a flag */
    return i >= 0 && strncmp(flag, "--", 2) == 0 ? i : -1;
}

int cli_store_options_from_env(const int given[CLI_NSTORE_OPTIONS])
{
    int i, rc;

    for (i = 0; i < CLI_NSTORE_OPTIONS; i++) {
        const char *v = getenv(store_options[i].var);

        if (given[i] || v == NULL || v[0] == '\0')
            continue;
        if ((rc = cli_store_option(store_options[i].var, v)) != 0)
            return rc;
    }
    return 0;
}

uint32_t cli_wait_ms = CLI_WAIT_DEFAULT_MS;

void cli_open_options(evs_open_options *o, int *progress_shown)
{
    o->busy_timeout_ms = cli_wait_ms;
    if (cfg_segment_size != 0)
        o->segment_size = cfg_segment_size;
    if (cfg_max_event_size != 0)
        o->max_event_size = cfg_max_event_size;
    if (cfg_snapshot_keep != 0)
        o->snapshot_keep = cfg_snapshot_keep;
    o->recovery_notice = on_recovery_notice;
    o->recovery_progress = on_recovery_progress;
    o->recovery_ctx = progress_shown;
}

int cli_open(evs_db **out, const cli_ctx *cx, unsigned flags)
{
    evs_open_options o = EVS_OPEN_OPTIONS_INIT;
    struct stat st;
    int rc, progress_shown = 0;

    *out = NULL;
    if ((rc = cli_check_db(cx)) != 0)
        return rc;
    o.flags = flags;
    cli_open_options(&o, &progress_shown);
    rc = evs_open(out, cx->db_uri, &o);
    if (rc == EVS_EINVAL && !(flags & EVS_OPEN_CREATE) &&
        strstr(cx->db_uri, "://") == NULL && stat(cx->db_uri, &st) != 0 &&
        errno == ENOENT) {
        /* The library's message speaks of EVS_OPEN_CREATE; say it in
         * the CLI's words. */
        cli_err("no store at %s (evs init, evs append or evs import creates one; "
                "--db or EVS_DB names another)", cx->db_uri);
        return CLI_EXIT_USAGE;
    }
    if (rc == EVS_EBUSY && !(flags & EVS_OPEN_READONLY)) {
        /* The library's message speaks of busy_timeout_ms; say it in the
         * CLI's words. */
        if (cli_wait_ms == 0)
            cli_err("store %s is open for writing in another process, and --wait "
                    "is 0 (no wait); only one process writes a store at a time: "
                    "give --wait SECONDS (or EVS_WAIT) to wait for it; when several "
                    "processes must write, use a PostgreSQL store", cx->db_uri);
        else
            cli_err("store %s is still open for writing in another process after "
                    "waiting %.1f s (--wait); only one process writes a store at a "
                    "time: wait longer (--wait SECONDS or EVS_WAIT); when several "
                    "processes must write, use a PostgreSQL store", cx->db_uri,
                    cli_wait_ms / 1000.0);
        return CLI_EXIT_BUSY;
    }
    if (rc < 0)
        return cli_lib_err(rc, NULL);
    return 0;
}

int cli_close(evs_db *db, int status)
{
    int rc = evs_close(db);

    if (rc < 0) {
        int st = cli_lib_err(rc, "close");
        return status != CLI_EXIT_OK ? status : st;
    }
    return status;
}

/* ------------------------------------------------------------------ */
/* Options                                                             */
/* ------------------------------------------------------------------ */

void cli_getopt_start(void)
{
    /* 0 makes glibc reinitialise its scanning state (a second command
     * parsed in one process, as main does after the global options). */
    optind = 0;
    opterr = 0;
}

#define OPT_ERR 0x7fff /* returned by getopt_cmd after a usage error */

/* What a command takes where a user gave a negative number. */
static const char *negative_hint(const char *cmd)
{
    if (strcmp(cmd, "token-at") == 0)
        return "TIME is RFC 3339 (2026-11-22T10:00:00Z), a date "
               "(2026-11-22) or microseconds since 1970 (a time before 1970 "
               "goes after '--': evs token-at -- -1)";
    return "tokens, positions, versions and counts are numbers >= 0";
}

/* getopt_long, with errors printed by cli_usage(cmd, ...): returns an
 * option's value, -1 at the end, or OPT_ERR. */
static int getopt_cmd(int argc, char **argv, const struct option *longopts,
                      const char *cmd)
{
    const char *arg;
    int c;

    /* A leading ':' makes a missing value return ':' rather than '?'. */
    c = getopt_long(argc, argv, ":h", longopts, NULL);
    if (c != '?' && c != ':')
        return c;
    /* glibc has stepped past a bad long option; a bad short one inside a
     * cluster ("-xh") is known only by optopt. */
    arg = argv[optind - 1];
    if (c == ':') {
        if (strncmp(arg, "--", 2) == 0)
            cli_usage(cmd, "option '%s' needs a value", arg);
        else
            cli_usage(cmd, "option '-%c' needs a value", optopt);
    } else if (optopt != 0 && strncmp(arg, "--", 2) == 0) {
        cli_usage(cmd, "option '%s' takes no value", arg);
    } else if (optopt >= '0' && optopt <= '9') {
        /* "-1": a value, not an option (no option is a digit). glibc has
         * stepped past "-1" but is still inside "-12". */
        if (!(arg[0] == '-' && arg[1] == optopt) && optind < argc)
            arg = argv[optind];
        cli_usage(cmd, "'%s' is a negative number, which is not a value "
                  "here: %s", arg, negative_hint(cmd));
    } else if (optopt != 0) {
        cli_usage(cmd, "unknown option '-%c'", optopt);
    } else {
        cli_usage(cmd, "unknown option '%s'", arg);
    }
    return OPT_ERR;
}

int cli_next_opt(int *stop, cli_ctx *cx, cli_scope *scope,
                 const cli_cmd *cmd, int argc, char **argv)
{
    int c;

    *stop = -1;
    for (;;) {
        c = getopt_cmd(argc, argv, cmd->options, cmd->name);
        switch (c) {
        case -1:
            return -1;
        case 'h':
            fputs(cmd->help, stdout);
            *stop = CLI_EXIT_OK;
            return -1;
        case CLI_OPT_DB:
            cx->db_uri = optarg;
            break;
        case CLI_OPT_TENANT:
            scope->tenant = optarg;
            scope->have_tenant = 1;
            break;
        case CLI_OPT_ALL_TENANTS:
            scope->all_tenants = 1;
            break;
        case OPT_ERR:
            *stop = CLI_EXIT_USAGE;
            return -1;
        default:
            return c;
        }
    }
}

const struct option cli_no_options[] = {
    CLI_OPTIONS_END,
};

int cli_parse_opts(cli_ctx *cx, cli_scope *scope, const cli_cmd *cmd,
                   int argc, char **argv)
{
    int stop;

    /* The table holds only shared options: nothing comes back but -1. */
    while (cli_next_opt(&stop, cx, scope, cmd, argc, argv) != -1)
        continue;
    return stop;
}

int cli_no_args(const char *cmd, int argc, char **argv)
{
    if (argc - optind > 0)
        return cli_usage(cmd, "unexpected argument '%s'", argv[optind]);
    return 0;
}

int cli_file_arg(const char **path, const char *cmd, int argc, char **argv)
{
    *path = NULL;
    if (argc - optind > 1)
        return cli_usage(cmd, "too many arguments ('%s')", argv[optind + 1]);
    if (argc - optind == 1 && strcmp(argv[optind], "-") != 0)
        *path = argv[optind];
    return 0;
}

int cli_scope_check(const cli_scope *scope, const char *cmd)
{
    if (scope->all_tenants && scope->have_tenant)
        return cli_usage(cmd, "--tenant and --all-tenants exclude each "
                         "other");
    return 0;
}

const char *cli_scope_tenant(const cli_scope *scope)
{
    return scope->all_tenants ? NULL : scope->tenant;
}

int cli_parse_u64(const char *s, uint64_t *out)
{
    unsigned long long v;
    char *end;

    if (s[0] < '0' || s[0] > '9')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = (uint64_t)v;
    return 0;
}

int cli_parse_i64(const char *s, int64_t *out)
{
    long long v;
    char *end;

    if (!((s[0] >= '0' && s[0] <= '9') ||
          (s[0] == '-' && s[1] >= '0' && s[1] <= '9')))
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = (int64_t)v;
    return 0;
}

int cli_parse_position(uint64_t *out, const char *cmd, const char *flag,
                       const char *s)
{
    if (cli_parse_u64(s, out) < 0)
        return cli_usage(cmd, "%s: '%s' is not a position (a number >= 0)",
                         flag, s);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Memory                                                              */
/* ------------------------------------------------------------------ */

static void oom(void)
{
    cli_err("out of memory");
    exit(CLI_EXIT_FAIL);
}

void *cli_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (p == NULL)
        oom();
    return p;
}

void *cli_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);

    if (q == NULL)
        oom();
    return q;
}

void cli_buf_reserve(cli_buf *b, size_t n)
{
    size_t cap;

    if (b->cap - b->len > n)
        return;
    cap = b->cap ? b->cap : 256;
    while (cap - b->len <= n) {
        if (cap > SIZE_MAX / 2)
            oom();
        cap *= 2;
    }
    b->p = cli_xrealloc(b->p, cap);
    b->cap = cap;
}

void cli_buf_put(cli_buf *b, const void *p, size_t n)
{
    cli_buf_reserve(b, n);
    if (n > 0)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void cli_buf_puts(cli_buf *b, const char *s)
{
    cli_buf_put(b, s, strlen(s));
}

void cli_buf_putc(cli_buf *b, char c)
{
    cli_buf_reserve(b, 1);
    b->p[b->len++] = c;
    b->p[b->len] = '\0';
}

void cli_buf_printf(cli_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    cli_buf_reserve(b, 64);
    va_start(ap, fmt);
    n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= b->cap - b->len) {
        cli_buf_reserve(b, (size_t)n);
        va_start(ap, fmt);
        vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

void cli_buf_free(cli_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

int cli_buf_read_all(cli_buf *b, FILE *f)
{
    size_t n;

    for (;;) {
        cli_buf_reserve(b, 65536);
        n = fread(b->p + b->len, 1, b->cap - b->len - 1, f);
        b->len += n;
        b->p[b->len] = '\0';
        if (n == 0)
            break;
    }
    return ferror(f) ? -1 : 0;
}

/* Arena blocks: a header, then the bytes. Big requests get a block of
 * their own, so a 1 MiB event does not waste a 64 KiB block's tail. */
struct cli_arena_block {
    cli_arena_block *next;
    size_t used, size;
    _Alignas(max_align_t) unsigned char data[];
};

#define ARENA_BLOCK (64u * 1024u)

void *cli_arena_alloc(cli_arena *a, size_t n)
{
    cli_arena_block *blk = a->head;
    size_t al = _Alignof(max_align_t);
    size_t need = (n + al - 1) & ~(al - 1);
    void *p;

    if (blk == NULL || blk->size - blk->used < need) {
        size_t size = need > ARENA_BLOCK / 4 ? need : ARENA_BLOCK;

        blk = cli_xmalloc(sizeof *blk + size);
        blk->used = 0;
        blk->size = size;
        if (size == ARENA_BLOCK || a->head == NULL) {
            blk->next = a->head;
            a->head = blk;
        } else {
            /* Keep the current small block in front for later requests. */
            blk->next = a->head->next;
            a->head->next = blk;
        }
    }
    p = blk->data + blk->used;
    blk->used += need;
    return p;
}

char *cli_arena_strndup(cli_arena *a, const char *p, size_t n)
{
    char *s = cli_arena_alloc(a, n + 1);

    if (n > 0)
        memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

void cli_arena_reset(cli_arena *a)
{
    cli_arena_block *blk = a->head, *next;

    for (; blk != NULL; blk = next) {
        next = blk->next;
        free(blk);
    }
    a->head = NULL;
}

/* ------------------------------------------------------------------ */
/* Base64, by OpenSSL                                                  */
/* ------------------------------------------------------------------ */

void cli_base64_put(cli_buf *b, const void *p, size_t n)
{
    const unsigned char *src = p;
    /* EVP_EncodeBlock takes an int length: encode in chunks that are a
     * multiple of 3 bytes, so the pieces join without padding. */
    const size_t chunk = 3u * 1024u * 1024u;

    while (n > 0) {
        size_t take = n < chunk ? n : chunk;
        size_t outmax = 4 * ((take + 2) / 3);
        int w;

        cli_buf_reserve(b, outmax + 1);
        w = EVP_EncodeBlock((unsigned char *)b->p + b->len, src, (int)take);
        b->len += (size_t)w;
        b->p[b->len] = '\0';
        src += take;
        n -= take;
    }
}

static int b64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '+' || c == '/';
}

int cli_base64_decode(cli_arena *a, const char *p, size_t n, void **out,
                      size_t *outlen)
{
    unsigned char *dst;
    size_t pad = 0, i;
    int w;

    /* EVP_DecodeBlock skips whitespace and does not report padding; we
     * want the strict form: length a multiple of 4, '=' only at the end. */
    if (n % 4 != 0 || n / 4 > (size_t)INT32_MAX / 3)
        return -1;
    if (n > 0 && p[n - 1] == '=')
        pad = (n > 1 && p[n - 2] == '=') ? 2 : 1;
    for (i = 0; i < n - pad; i++)
        if (!b64_char(p[i]))
            return -1;
    dst = cli_arena_alloc(a, n / 4 * 3 + 1);
    if (n == 0) {
        *out = dst;
        *outlen = 0;
        return 0;
    }
    w = EVP_DecodeBlock(dst, (const unsigned char *)p, (int)n);
    if (w < 0 || (size_t)w < pad)
        return -1;
    *out = dst;
    *outlen = (size_t)w - pad;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Time                                                                */
/* ------------------------------------------------------------------ */

/* Days since 1970-01-01 of a proleptic Gregorian date, and back
 * (H. Hinnant's algorithms; exact for every int year we can meet). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t era;
    unsigned yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    int64_t era;
    unsigned doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = (unsigned)(z - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

void cli_time_format(char out[CLI_TIME_LEN], int64_t us)
{
    int64_t secs = us / 1000000, frac = us % 1000000, days, sod, y;
    unsigned m, d;

    if (frac < 0) { /* floor, so that times before 1970 print right */
        frac += 1000000;
        secs -= 1;
    }
    days = secs / 86400;
    sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days -= 1;
    }
    civil_from_days(days, &y, &m, &d);
    snprintf(out, CLI_TIME_LEN, "%04" PRId64 "-%02u-%02uT%02d:%02d:%02d.%06dZ",
             y, m, d, (int)(sod / 3600), (int)(sod / 60 % 60),
             (int)(sod % 60), (int)frac);
}

/* n decimal digits at s, or -1. */
static int digits(const char *s, size_t n)
{
    int v = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int cli_time_parse(int64_t *us, const char *s, size_t n)
{
    static const unsigned mdays[12] = {31, 29, 31, 30, 31, 30,
                                       31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, sec, frac = 0, scale = 100000, off = 0;
    size_t i;

    /* YYYY-MM-DDTHH:MM:SS */
    if (n < 20 || s[4] != '-' || s[7] != '-' ||
        (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || s[13] != ':' ||
        s[16] != ':')
        return -1;
    y = digits(s, 4);
    mo = digits(s + 5, 2);
    d = digits(s + 8, 2);
    h = digits(s + 11, 2);
    mi = digits(s + 14, 2);
    sec = digits(s + 17, 2);
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 ||
        mi > 59 || sec < 0 || sec > 59 || (unsigned)d > mdays[mo - 1])
        return -1;
    if (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
        return -1;
    i = 19;
    if (i < n && s[i] == '.') {
        size_t start = ++i;

        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
            frac += (s[i] - '0') * scale;
            scale /= 10;
        }
        if (i == start)
            return -1;
    }
    if (i + 1 == n && (s[i] == 'Z' || s[i] == 'z')) {
        off = 0;
    } else if (i + 6 == n && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        int oh = digits(s + i + 1, 2), om = digits(s + i + 4, 2);

        if (oh < 0 || oh > 23 || om < 0 || om > 59)
            return -1;
        off = (oh * 60 + om) * 60 * (s[i] == '-' ? -1 : 1);
    } else {
        return -1;
    }
    *us = ((days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 +
            h * 3600 + mi * 60 + sec - off) *
           1000000) +
          frac;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Events as JSON Lines                                                */
/* ------------------------------------------------------------------ */

static void put_uuid(cli_buf *b, const char *key, const evs_uuid *u)
{
    char text[37];

    evs_uuid_format(text, u);
    cli_buf_printf(b, ",\"%s\":\"%s\"", key, text);
}

/* A JSON payload (data or metadata): embedded as JSON when it is valid
 * JSON, else -- the store was written with validate_json off -- as
 * "<key>_base64", which keeps every byte and still makes a valid line. */
static void put_payload(cli_buf *b, const char *key, const void *p, size_t n,
                        int is_data, int exact)
{
    const char *s = p ? p : "";
    size_t vs, ve;
    char err[8];

    /* exact: only when the line gives these bytes back (import takes
     * "metadata":null for no metadata, not for the 4 bytes null) */
    if (cli_json_check(s, n, &vs, &ve, err, sizeof err) == 0 &&
        (!exact || (vs == 0 && ve == n && !memchr(s, '\n', n) && !memchr(s, '\r', n) &&
                    (is_data || n != 4 || memcmp(s, "null", 4) != 0)))) {
        cli_buf_printf(b, ",\"%s\":", key);
        cli_json_put_value(b, s + vs, ve - vs);
        return;
    }
    if (is_data)
        cli_buf_puts(b, ",\"content_type\":\"json\"");
    cli_buf_printf(b, ",\"%s_base64\":\"", key);
    cli_base64_put(b, s, n);
    cli_buf_putc(b, '"');
}

void cli_event_json(cli_buf *b, const evs_event *ev, int flags)
{
    char when[CLI_TIME_LEN];
    size_t i;
    int exact = (flags & CLI_EV_EXACT) != 0;

    cli_buf_printf(b, "{\"position\":%" PRIu64, ev->position);
    if (flags & CLI_EV_TENANT) {
        cli_buf_puts(b, ",\"tenant\":");
        cli_json_put_str(b, ev->tenant, strlen(ev->tenant));
    }
    if (ev->stream[0] != '\0') {
        cli_buf_puts(b, ",\"stream\":");
        cli_json_put_str(b, ev->stream, strlen(ev->stream));
        cli_buf_printf(b, ",\"version\":%" PRId64, ev->stream_version);
    } else { /* an event of no stream (a DCB event): no name is empty */
        cli_buf_puts(b, ",\"stream\":null,\"version\":null");
    }
    cli_buf_puts(b, ",\"type\":");
    cli_json_put_str(b, ev->type, strlen(ev->type));
    put_uuid(b, "id", &ev->id);
    if (ev->flags & EVS_EVENT_REDACTED) {
        cli_buf_puts(b, ",\"data\":null"); /* withheld: "redacted" below */
    } else if (ev->content_type == EVS_CONTENT_BINARY) {
        cli_buf_puts(b, ",\"content_type\":\"binary\",\"data_base64\":\"");
        cli_base64_put(b, ev->data ? ev->data : "", ev->data_len);
        cli_buf_putc(b, '"');
    } else {
        put_payload(b, "data", ev->data, ev->data_len, 1, exact);
    }
    if (ev->metadata_len > 0)
        put_payload(b, "metadata", ev->metadata, ev->metadata_len, 0, exact);
    cli_buf_puts(b, ",\"tags\":[");
    for (i = 0; i < ev->ntags; i++) {
        if (i > 0)
            cli_buf_putc(b, ',');
        cli_json_put_str(b, ev->tags[i], strlen(ev->tags[i]));
    }
    cli_buf_putc(b, ']');
    /* crypto-shredding: content withheld (docs/ERASURE.md) */
    if (ev->flags & EVS_EVENT_REDACTED)
        cli_buf_puts(b, (ev->flags & EVS_EVENT_DAMAGED) ? ",\"redacted\":true,\"damaged\":true"
                                                         : ",\"redacted\":true");
    if (!evs_uuid_is_nil(&ev->correlation_id))
        put_uuid(b, "correlation_id", &ev->correlation_id);
    if (!evs_uuid_is_nil(&ev->causation_id))
        put_uuid(b, "causation_id", &ev->causation_id);
    cli_time_format(when, ev->recorded_at);
    cli_buf_printf(b, ",\"recorded_at\":\"%s\"}\n", when);
}

int cli_write_events(evs_iter *it, FILE *f, int flags, const char *what,
                     uint64_t *count)
{
    const evs_event *ev;
    cli_buf line = {0};
    uint64_t n = 0;
    int rc, status = CLI_EXIT_OK;

    while ((rc = evs_iter_next(&ev, it)) == 0) {
        line.len = 0;
        cli_event_json(&line, ev, flags);
        if (fwrite(line.p, 1, line.len, f) != line.len)
            break;
        n++;
    }
    if (rc != 0 && rc != EVS_ITEROVER)
        status = cli_lib_err(rc, what);
    if (fflush(f) != 0 || ferror(f)) {
        cli_err("%s: cannot write the output: %s", what, strerror(errno));
        status = CLI_EXIT_FAIL;
    }
    if (count != NULL)
        *count = n;
    cli_buf_free(&line);
    return status;
}

/* ------------------------------------------------------------------ */
/* Progress                                                            */
/* ------------------------------------------------------------------ */

static double seconds_since(const struct timespec *t0, const struct timespec *t1)
{
    return (double)(t1->tv_sec - t0->tv_sec) + (double)(t1->tv_nsec - t0->tv_nsec) / 1e9;
}

void cli_progress_start(cli_progress *p, const char *what)
{
    memset(p, 0, sizeof *p);
    p->what = what;
    p->on = isatty(STDERR_FILENO);
    clock_gettime(CLOCK_MONOTONIC, &p->start);
    p->last = p->start;
}

/* "12 s", "3 min 05 s", "2 h 10 min" */
static void put_duration(char *out, size_t cap, double s)
{
    uint64_t t = s < 0 ? 0 : (uint64_t)(s + 0.5);

    if (t < 60)
        snprintf(out, cap, "%" PRIu64 " s", t);
    else if (t < 3600)
        snprintf(out, cap, "%" PRIu64 " min %02" PRIu64 " s", t / 60, t % 60);
    else
        snprintf(out, cap, "%" PRIu64 " h %02" PRIu64 " min", t / 3600, t / 60 % 60);
}

void cli_progress_show(cli_progress *p, uint64_t count, uint64_t done, uint64_t total)
{
    struct timespec now;
    double el, rate;
    char left[32];

    if (!p->on)
        return;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (p->shown && seconds_since(&p->last, &now) < 0.25)
        return;
    p->last = now;
    el = seconds_since(&p->start, &now);
    rate = el > 0 ? (double)count / el : 0;
    fprintf(stderr, "\r%s: %" PRIu64 " events", p->what, count);
    if (total > 0 && done <= total) {
        fprintf(stderr, " (%.0f %%)", 100.0 * (double)done / (double)total);
    }
    if (el >= 0.5)
        fprintf(stderr, ", %.0f events/s", rate);
    if (total > 0 && done > 0 && done <= total && el >= 1.0) {
        put_duration(left, sizeof left, el * (double)(total - done) / (double)done);
        fprintf(stderr, ", about %s left", left);
    }
    fputs("\033[K", stderr); /* clear what a longer line left */
    fflush(stderr);
    p->shown = 1;
}

void cli_progress_end(cli_progress *p)
{
    if (p->shown) {
        fputc('\n', stderr);
        p->shown = 0;
    }
}
