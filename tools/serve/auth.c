/*
 * auth.c -- API keys: bearer tokens, each allowed some tenants (or all),
 * read-only or read-write (docs/SERVER.md, "API keys").
 *
 * The file holds one key per line:
 *
 *     KEY [tenants=T1,T2|*] [read-only|read-write]   # comment
 *
 * ("" in the tenant list is the default tenant; '#' starts a comment at
 * the start of a line or after white space).
 *
 * Keys are kept as their SHA-256 digests and a presented key is hashed
 * and compared with every digest by CRYPTO_memcmp, without stopping at a
 * match: the time a check takes does not depend on how much of a key an
 * attacker got right, nor on its length, nor on which key matched.
 *
 * The set of keys is immutable once loaded; SIGHUP loads a new set and
 * swaps the pointer under s->auth_lock (checks hold it for reading), so a
 * check sees either the old keys or the new ones, never a mix.
 */
#include "serve.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define KEY_DIGEST_LEN 32   /* SHA-256 */
#define KEY_MAX_LEN 4096    /* bytes of one key */
#define KEY_SHORT_LEN 16    /* shorter keys load, with a warning */
#define LINE_MAX_LEN 65536  /* bytes of one line of the file */

typedef struct serve_key {
    unsigned char digest[KEY_DIGEST_LEN];
    int all_tenants;        /* tenants=* (the default) */
    char **tenants;         /* else these ("" is the default tenant) */
    size_t ntenants;
    int read_only;
} serve_key;

struct serve_auth {
    serve_key *keys;
    size_t nkeys;
};

static int digest(unsigned char out[KEY_DIGEST_LEN], const char *key, size_t len)
{
    unsigned int n = 0;
    return EVP_Digest(key, len, out, &n, EVP_sha256(), NULL) == 1 && n == KEY_DIGEST_LEN
               ? 0
               : -1;
}

static void key_clear(serve_key *k)
{
    for (size_t i = 0; i < k->ntenants; i++)
        free(k->tenants[i]);
    free(k->tenants);
    memset(k, 0, sizeof *k);
}

void serve_auth_free(serve_auth *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->nkeys; i++)
        key_clear(&a->keys[i]);
    OPENSSL_cleanse(a->keys, a->nkeys * sizeof *a->keys);
    free(a->keys);
    free(a);
}

/* ------------------------------------------------------------------ */
/* Loading                                                             */
/* ------------------------------------------------------------------ */

static int line_err(char *msg, size_t msglen, const char *path, unsigned line,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int line_err(char *msg, size_t msglen, const char *path, unsigned line,
                    const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    snprintf(msg, msglen, "%s:%u: %s", path, line, detail);
    return -1;
}

/* Parse "tenants=..." (value after the '='), into k. */
static int parse_tenants(serve_key *k, char *value, char *msg, size_t msglen,
                         const char *path, unsigned line)
{
    if (strcmp(value, "*") == 0) {
        k->all_tenants = 1;
        return 0;
    }
    if (*value == '\0')
        return line_err(msg, msglen, path, line,
                        "tenants= is empty: give tenants=T1,T2 (\"\" is the default "
                        "tenant) or tenants=*");
    k->all_tenants = 0;
    size_t n = 1;
    for (const char *p = value; *p; p++)
        n += *p == ',';
    k->tenants = calloc(n, sizeof *k->tenants);
    if (!k->tenants)
        return line_err(msg, msglen, path, line, "out of memory");
    /* Split by hand: strtok_r would merge ",," into one separator, and an
     * empty element must be an error, not silently dropped. */
    char *p = value;
    for (;;) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        const char *name = p;
        if (strcmp(name, "\"\"") == 0)
            name = "";
        else if (*name == '\0')
            return line_err(msg, msglen, path, line,
                            "empty tenant name in tenants= (write \"\" for the default "
                            "tenant)");
        else if (strcmp(name, "*") == 0)
            return line_err(msg, msglen, path, line,
                            "'*' must stand alone: tenants=* allows every tenant");
        if (strlen(name) > EVS_MAX_TENANT_LEN)
            return line_err(msg, msglen, path, line, "tenant name longer than %d bytes",
                            EVS_MAX_TENANT_LEN);
        k->tenants[k->ntenants] = strdup(name);
        if (!k->tenants[k->ntenants])
            return line_err(msg, msglen, path, line, "out of memory");
        k->ntenants++;
        if (!comma)
            break;
        p = comma + 1;
    }
    return 0;
}

/* Parse one non-comment line (NUL-terminated, no newline) into k. */
static int parse_line(serve_key *k, char *text, const char *path, unsigned line,
                      char *msg, size_t msglen, int *short_key)
{
    char *save = NULL;
    char *key = strtok_r(text, " \t\r", &save);
    size_t len = strlen(key);
    if (len > KEY_MAX_LEN)
        return line_err(msg, msglen, path, line, "key longer than %d bytes", KEY_MAX_LEN);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c < 0x21 || c > 0x7e)
            return line_err(msg, msglen, path, line,
                            "key holds byte 0x%02x: keys are printable ASCII without "
                            "spaces",
                            c);
    }
    if (strncmp(key, "tenants=", 8) == 0 || strcmp(key, "read-only") == 0 ||
        strcmp(key, "read-write") == 0)
        return line_err(msg, msglen, path, line,
                        "line starts with an option (%.40s), not a key: the format is "
                        "'KEY [tenants=T1,T2|*] [read-only|read-write]'",
                        key);
    *short_key = len < KEY_SHORT_LEN;
    if (digest(k->digest, key, len) < 0)
        return line_err(msg, msglen, path, line, "SHA-256 failed (OpenSSL)");
    OPENSSL_cleanse(key, len);
    k->all_tenants = 1;
    int seen_tenants = 0, seen_mode = 0;
    char *word;
    while ((word = strtok_r(NULL, " \t\r", &save)) != NULL) {
        if (word[0] == '#')
            break; /* a comment after the options */
        if (strncmp(word, "tenants=", 8) == 0) {
            if (seen_tenants++)
                return line_err(msg, msglen, path, line, "tenants= given twice");
            if (parse_tenants(k, word + 8, msg, msglen, path, line) < 0)
                return -1;
        } else if (strcmp(word, "read-only") == 0 || strcmp(word, "read-write") == 0) {
            if (seen_mode++)
                return line_err(msg, msglen, path, line,
                                "access given twice (read-only or read-write, once)");
            k->read_only = word[5] == 'o';
        } else {
            return line_err(msg, msglen, path, line,
                            "unknown option \"%.60s\": expected tenants=T1,T2, tenants=*, "
                            "read-only or read-write",
                            word);
        }
    }
    return 0;
}

int serve_auth_load(serve_auth **out, const char *path, char *msg, size_t msglen)
{
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(msg, msglen, "cannot open API-keys file %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
        /* As ssh does with a private key, but a warning: refusing would
         * take a server down over a mode a deployment tool chose. */
        serve_log("warning: API-keys file %s is readable by group or others "
                  "(mode %04o): chmod 600 %s",
                  path, (unsigned)(st.st_mode & 07777), path);

    serve_auth *a = calloc(1, sizeof *a);
    char *buf = NULL;
    size_t bufcap = 0, cap = 0;
    ssize_t got;
    unsigned line = 0, nshort = 0, first_short = 0;
    int rc = -1;
    if (!a) {
        snprintf(msg, msglen, "out of memory loading %s", path);
        goto out;
    }
    while ((got = getline(&buf, &bufcap, f)) >= 0) {
        line++;
        size_t n = (size_t)got;
        if (n > 0 && buf[n - 1] == '\n')
            buf[--n] = '\0';
        if (n > LINE_MAX_LEN) {
            line_err(msg, msglen, path, line, "line longer than %d bytes", LINE_MAX_LEN);
            goto out;
        }
        if (memchr(buf, '\0', n) != NULL) {
            line_err(msg, msglen, path, line, "line holds a NUL byte");
            goto out;
        }
        char *p = buf;
        while (*p == ' ' || *p == '\t' || *p == '\r')
            p++;
        if (*p == '\0' || *p == '#')
            continue;
        if (a->nkeys == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            serve_key *nk = realloc(a->keys, ncap * sizeof *nk);
            if (!nk) {
                line_err(msg, msglen, path, line, "out of memory");
                goto out;
            }
            a->keys = nk;
            cap = ncap;
        }
        serve_key *k = &a->keys[a->nkeys];
        memset(k, 0, sizeof *k);
        int short_key = 0;
        if (parse_line(k, p, path, line, msg, msglen, &short_key) < 0) {
            key_clear(k);
            goto out;
        }
        for (size_t i = 0; i < a->nkeys; i++)
            if (CRYPTO_memcmp(a->keys[i].digest, k->digest, KEY_DIGEST_LEN) == 0) {
                key_clear(k);
                line_err(msg, msglen, path, line,
                         "duplicate key (the same key is on an earlier line)");
                goto out;
            }
        a->nkeys++;
        if (short_key && nshort++ == 0)
            first_short = line;
    }
    if (ferror(f)) {
        snprintf(msg, msglen, "cannot read API-keys file %s: %s", path, strerror(errno));
        goto out;
    }
    if (a->nkeys == 0) {
        snprintf(msg, msglen,
                 "API-keys file %s holds no key (every request would be refused): add "
                 "lines 'KEY [tenants=T1,T2|*] [read-only|read-write]'",
                 path);
        goto out;
    }
    if (nshort)
        serve_log("warning: %s: %u key(s) shorter than %d bytes (first on line %u): use "
                  "long random keys, e.g. openssl rand -hex 32",
                  path, nshort, KEY_SHORT_LEN, first_short);
    *out = a;
    a = NULL;
    rc = 0;
out:
    if (buf) {
        OPENSSL_cleanse(buf, bufcap);
        free(buf);
    }
    fclose(f);
    serve_auth_free(a);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Checking                                                            */
/* ------------------------------------------------------------------ */

/* The key of an "authorization" header value: "Bearer KEY" (scheme in any
 * case, spaces around). NULL when the value is not of that form. */
static const char *bearer_key(const char *value, size_t *len)
{
    while (*value == ' ' || *value == '\t')
        value++;
    if (strncasecmp(value, "Bearer", 6) != 0 || (value[6] != ' ' && value[6] != '\t'))
        return NULL;
    value += 6;
    while (*value == ' ' || *value == '\t')
        value++;
    size_t n = strlen(value);
    while (n > 0 && (value[n - 1] == ' ' || value[n - 1] == '\t'))
        n--;
    if (n == 0)
        return NULL;
    *len = n;
    return value;
}

static int key_allows_tenant(const serve_key *k, const char *tenant)
{
    if (k->all_tenants)
        return 1;
    for (size_t i = 0; i < k->ntenants; i++)
        if (strcmp(k->tenants[i], tenant) == 0)
            return 1;
    return 0;
}

int serve_check(serve *s, const char *authorization, const char *tenant, int access,
                char *msg, size_t msglen)
{
    if (!tenant)
        tenant = "";
    /* The header is parsed and the key digested before the lock: the read
     * section stays short, so a SIGHUP's write lock is not held off by a
     * stream of overlapping checks. */
    const char *bad = NULL;
    unsigned char d[KEY_DIGEST_LEN];
    size_t len = 0;
    const char *key = authorization && *authorization ? bearer_key(authorization, &len) : NULL;
    if (!authorization || !*authorization)
        bad = "missing authorization header: send 'authorization: Bearer KEY'";
    else if (!key)
        bad = "malformed authorization header: send 'authorization: Bearer KEY'";
    else if (len > KEY_MAX_LEN || digest(d, key, len) < 0)
        bad = "unknown API key";
    pthread_rwlock_rdlock(&s->auth_lock);
    const serve_auth *a = s->auth;
    int rc = SERVE_ALLOW;
    if (!a)
        goto out;
    if (bad) {
        snprintf(msg, msglen, "%s", bad);
        rc = SERVE_DENY_UNAUTHENTICATED;
        goto out;
    }
    /* Every key is compared, match or not (see the top of the file). */
    const serve_key *found = NULL;
    for (size_t i = 0; i < a->nkeys; i++) {
        int same = CRYPTO_memcmp(a->keys[i].digest, d, KEY_DIGEST_LEN) == 0;
        if (same && !found)
            found = &a->keys[i];
    }
    if (!found) {
        snprintf(msg, msglen, "unknown API key");
        rc = SERVE_DENY_UNAUTHENTICATED;
    } else if (access == SERVE_ADMIN && !found->all_tenants) {
        /* /metrics shows every tenant's activity (head position, append
         * rates): a key limited to some tenants must not see it. */
        snprintf(msg, msglen, "this API key is limited to some tenants and cannot read "
                              "/metrics (store-wide figures): use a key with tenants=*");
        rc = SERVE_DENY_FORBIDDEN;
    } else if (!key_allows_tenant(found, tenant)) {
        snprintf(msg, msglen, "API key not allowed for tenant \"%.*s\"",
                 EVS_MAX_TENANT_LEN, tenant);
        rc = SERVE_DENY_FORBIDDEN;
    } else if (access == SERVE_WRITE && found->read_only) {
        snprintf(msg, msglen, "read-only API key cannot append");
        rc = SERVE_DENY_FORBIDDEN;
    }
out:
    pthread_rwlock_unlock(&s->auth_lock);
    return rc;
}

void serve_reload_keys(serve *s)
{
    if (!s->cfg.api_keys) {
        serve_log("SIGHUP: no API-keys file configured (--api-keys), nothing to reload");
        return;
    }
    char msg[1024];
    serve_auth *fresh = NULL;
    if (serve_auth_load(&fresh, s->cfg.api_keys, msg, sizeof msg) < 0) {
        serve_log("API keys not reloaded, the old ones stay in force: %s", msg);
        return;
    }
    size_t n = fresh->nkeys;
    pthread_rwlock_wrlock(&s->auth_lock);
    serve_auth *old = s->auth;
    s->auth = fresh;
    atomic_fetch_add(&s->auth_gen, 1); /* open streams check their key again */
    pthread_rwlock_unlock(&s->auth_lock);
    serve_auth_free(old);
    serve_log("API keys reloaded from %s: %zu key(s)", s->cfg.api_keys, n);
}
