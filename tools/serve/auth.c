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
 * Users (--users FILE, the basic credentials of KurrentDB's clients: an
 * "authorization: Basic base64(user:password)" header) are one a line:
 *
 *     NAME HASH [tenants=T1,T2|*] [read-only|read-write]   # comment
 *
 * HASH is libsodium's crypto_pwhash_str string ("$argon2id$v=19$...",
 * made by `evs serve --hash-password`): only a salted, slow hash of each
 * password is kept. A verified password is remembered as the SHA-256 of
 * "user:password" beside its user (under cache_lock), so only the first
 * call of a user with a password, and each wrong password, costs one
 * Argon2id verification (tens of milliseconds, on the thread checking).
 *
 * The set of keys and users is immutable once loaded (but for that
 * cache); SIGHUP loads a new set and swaps the pointer under s->auth_lock
 * (checks hold it for reading), so a check sees either the old keys and
 * users or the new ones, never a mix.
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
#include <sodium.h>

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
    /* users only (--users): */
    char *user;             /* the user name */
    char *pwhash;           /* crypto_pwhash_str string */
    unsigned char ok[KEY_DIGEST_LEN]; /* SHA-256 of "user:password" last
                                         verified (under cache_lock) */
    int ok_set;
} serve_key;

struct serve_auth {
    serve_key *keys;
    size_t nkeys;
    serve_key *users;
    size_t nusers;
    pthread_mutex_t cache_lock; /* guards users[].ok, ok_set */
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
    free(k->user);
    free(k->pwhash);
    OPENSSL_cleanse(k, sizeof *k);
}

void serve_auth_free(serve_auth *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->nkeys; i++)
        key_clear(&a->keys[i]);
    OPENSSL_cleanse(a->keys, a->nkeys * sizeof *a->keys);
    free(a->keys);
    for (size_t i = 0; i < a->nusers; i++)
        key_clear(&a->users[i]);
    free(a->users);
    pthread_mutex_destroy(&a->cache_lock);
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

static int parse_options(serve_key *k, char **save, const char *path, unsigned line,
                         char *msg, size_t msglen);

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
    return parse_options(k, &save, path, line, msg, msglen);
}

/* Parse one non-comment line of the users file: NAME HASH [options]. */
static int parse_user_line(serve_key *k, char *text, const char *path, unsigned line,
                           char *msg, size_t msglen)
{
    char *save = NULL;
    char *name = strtok_r(text, " \t\r", &save);
    char *hash = strtok_r(NULL, " \t\r", &save);
    if (strlen(name) > 255 || strchr(name, ':'))
        return line_err(msg, msglen, path, line,
                        "user name longer than 255 bytes or holding ':' (basic "
                        "credentials are 'user:password')");
    if (!hash || strncmp(hash, "$argon2", 7) != 0 || strlen(hash) >= crypto_pwhash_STRBYTES)
        return line_err(msg, msglen, path, line,
                        "expected 'NAME HASH [tenants=T1,T2|*] [read-only|read-write]' "
                        "with HASH a libsodium password hash ($argon2id$...): make one "
                        "with 'evs serve --hash-password' (the password on standard "
                        "input)");
    k->user = strdup(name);
    k->pwhash = strdup(hash);
    if (!k->user || !k->pwhash)
        return line_err(msg, msglen, path, line, "out of memory");
    return parse_options(k, &save, path, line, msg, msglen);
}

/* The options after a key or a user's hash (strtok_r state in *save). */
static int parse_options(serve_key *k, char **save, const char *path, unsigned line,
                         char *msg, size_t msglen)
{
    k->all_tenants = 1;
    int seen_tenants = 0, seen_mode = 0;
    char *word;
    while ((word = strtok_r(NULL, " \t\r", save)) != NULL) {
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

/* Load the keys (users = 0) or users (1) of path into a. */
static int load_file(serve_auth *a, const char *path, int users, char *msg, size_t msglen)
{
    const char *what = users ? "users file" : "API-keys file";
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(msg, msglen, "cannot open %s %s: %s", what, path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
        /* As ssh does with a private key, but a warning: refusing would
         * take a server down over a mode a deployment tool chose. */
        serve_log("warning: %s %s is readable by group or others "
                  "(mode %04o): chmod 600 %s",
                  what, path, (unsigned)(st.st_mode & 07777), path);

    serve_key **arr = users ? &a->users : &a->keys;
    size_t *count = users ? &a->nusers : &a->nkeys;
    char *buf = NULL;
    size_t bufcap = 0, cap = 0;
    ssize_t got;
    unsigned line = 0, nshort = 0, first_short = 0;
    int rc = -1;
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
        if (*count == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            serve_key *nk = realloc(*arr, ncap * sizeof *nk);
            if (!nk) {
                line_err(msg, msglen, path, line, "out of memory");
                goto out;
            }
            *arr = nk;
            cap = ncap;
        }
        serve_key *k = &(*arr)[*count];
        memset(k, 0, sizeof *k);
        int short_key = 0;
        if ((users ? parse_user_line(k, p, path, line, msg, msglen)
                   : parse_line(k, p, path, line, msg, msglen, &short_key)) < 0) {
            key_clear(k);
            goto out;
        }
        for (size_t i = 0; i < *count; i++)
            if (users ? strcmp((*arr)[i].user, k->user) == 0
                      : CRYPTO_memcmp((*arr)[i].digest, k->digest, KEY_DIGEST_LEN) == 0) {
                key_clear(k);
                line_err(msg, msglen, path, line,
                         users ? "duplicate user (the same name is on an earlier line)"
                               : "duplicate key (the same key is on an earlier line)");
                goto out;
            }
        (*count)++;
        if (short_key && nshort++ == 0)
            first_short = line;
    }
    if (ferror(f)) {
        snprintf(msg, msglen, "cannot read %s %s: %s", what, path, strerror(errno));
        goto out;
    }
    if (*count == 0) {
        snprintf(msg, msglen,
                 users ? "users file %s holds no user (every basic credential would be "
                         "refused): add lines 'NAME HASH [tenants=T1,T2|*] "
                         "[read-only|read-write]'"
                       : "API-keys file %s holds no key (every request would be refused): "
                         "add lines 'KEY [tenants=T1,T2|*] [read-only|read-write]'",
                 path);
        goto out;
    }
    if (nshort)
        serve_log("warning: %s: %u key(s) shorter than %d bytes (first on line %u): use "
                  "long random keys, e.g. openssl rand -hex 32",
                  path, nshort, KEY_SHORT_LEN, first_short);
    rc = 0;
out:
    if (buf) {
        OPENSSL_cleanse(buf, bufcap);
        free(buf);
    }
    fclose(f);
    return rc;
}

int serve_auth_load(serve_auth **out, const char *keys_path, const char *users_path,
                    char *msg, size_t msglen)
{
    *out = NULL;
    if (users_path && sodium_init() < 0) {
        snprintf(msg, msglen, "libsodium failed to initialise (sodium_init)");
        return -1;
    }
    serve_auth *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(msg, msglen, "out of memory loading the API keys and users");
        return -1;
    }
    pthread_mutex_init(&a->cache_lock, NULL);
    if ((keys_path && load_file(a, keys_path, 0, msg, msglen) < 0) ||
        (users_path && load_file(a, users_path, 1, msg, msglen) < 0)) {
        serve_auth_free(a);
        return -1;
    }
    *out = a;
    return 0;
}

int serve_hash_password(const char *password, size_t len, char *out, size_t outlen)
{
    if (outlen < crypto_pwhash_STRBYTES || sodium_init() < 0)
        return -1;
    return crypto_pwhash_str(out, password, len, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                             crypto_pwhash_MEMLIMIT_INTERACTIVE) == 0
               ? 0
               : -1;
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

/* The base64 text of an "authorization" value "Basic X" (scheme in any
 * case), or NULL. */
static const char *basic_token(const char *value, size_t *len)
{
    while (*value == ' ' || *value == '\t')
        value++;
    if (strncasecmp(value, "Basic", 5) != 0 || (value[5] != ' ' && value[5] != '\t'))
        return NULL;
    value += 5;
    while (*value == ' ' || *value == '\t')
        value++;
    size_t n = strlen(value);
    while (n > 0 && (value[n - 1] == ' ' || value[n - 1] == '\t'))
        n--;
    *len = n;
    return n ? value : NULL;
}

static char dummy_hash[crypto_pwhash_STRBYTES];
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;
static void make_dummy(void)
{
    if (serve_hash_password("x", 1, dummy_hash, sizeof dummy_hash) < 0)
        dummy_hash[0] = 0;
}

/* Check basic credentials (base64 text b64, len bytes) against a's users,
 * under the read lock. Returns the user, or NULL with *bad set. */
static const serve_key *check_user(serve_auth *a, const char *b64, size_t len,
                                   const char **bad)
{
    unsigned char cred[1024];
    size_t n = 0;
    if (sodium_base642bin(cred, sizeof cred - 1, b64, len, NULL, &n, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0) {
        *bad = "malformed basic credentials: send 'authorization: Basic "
               "base64(user:password)'";
        return NULL;
    }
    cred[n] = 0;
    unsigned char *colon = memchr(cred, ':', n);
    const serve_key *u = NULL;
    if (colon) {
        size_t ulen = (size_t)(colon - cred);
        for (size_t i = 0; i < a->nusers; i++)
            if (strlen(a->users[i].user) == ulen && memcmp(a->users[i].user, cred, ulen) == 0)
                u = &a->users[i];
    }
    *bad = "wrong user name or password";
    if (!colon) {
        *bad = "malformed basic credentials: 'user:password' has no ':'";
        u = NULL;
    } else if (!u) {
        /* An unknown user costs a verification too: the time does not
         * tell which names exist. */
        pthread_once(&dummy_once, make_dummy);
        if (dummy_hash[0] && crypto_pwhash_str_verify(dummy_hash, "y", 1) == 0)
            u = NULL; /* never: "y" is not the dummy's password */
    } else {
        unsigned char d[KEY_DIGEST_LEN];
        int known = 0, have_d = digest(d, (const char *)cred, n) == 0;
        if (have_d) {
            pthread_mutex_lock(&a->cache_lock);
            known = u->ok_set && CRYPTO_memcmp(u->ok, d, KEY_DIGEST_LEN) == 0;
            pthread_mutex_unlock(&a->cache_lock);
        }
        if (!known) {
            const char *pw = (const char *)colon + 1;
            size_t pwlen = n - (size_t)(colon - cred) - 1;
            known = crypto_pwhash_str_verify(u->pwhash, pw, pwlen) == 0;
            if (known && have_d) { /* remembered (SHA-256 of user:password) */
                pthread_mutex_lock(&a->cache_lock);
                serve_key *w = (serve_key *)u;
                memcpy(w->ok, d, KEY_DIGEST_LEN);
                w->ok_set = 1;
                pthread_mutex_unlock(&a->cache_lock);
            }
        }
        OPENSSL_cleanse(d, sizeof d);
        if (!known)
            u = NULL;
    }
    OPENSSL_cleanse(cred, sizeof cred);
    if (u)
        *bad = NULL;
    return u;
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
    size_t len = 0, blen = 0;
    const char *key = authorization && *authorization ? bearer_key(authorization, &len) : NULL;
    const char *basic = authorization && *authorization && !key
                            ? basic_token(authorization, &blen)
                            : NULL;
    if (!authorization || !*authorization)
        bad = "missing authorization header: send 'authorization: Bearer KEY'";
    else if (!key && !basic)
        bad = "malformed authorization header: send 'authorization: Bearer KEY'";
    else if (key && (len > KEY_MAX_LEN || digest(d, key, len) < 0))
        bad = "unknown API key";
    pthread_rwlock_rdlock(&s->auth_lock);
    serve_auth *a = s->auth;
    int rc = SERVE_ALLOW;
    if (!a)
        goto out;
    if (!bad && basic && a->nusers == 0)
        bad = "basic credentials (user and password) are not accepted here: no users "
              "are configured (--users); send 'authorization: Bearer KEY'";
    if (bad) {
        snprintf(msg, msglen, "%s%s", bad,
                 a->nusers && !basic ? " or 'authorization: Basic base64(user:password)'"
                                     : "");
        rc = SERVE_DENY_UNAUTHENTICATED;
        goto out;
    }
    const serve_key *found = NULL;
    if (basic) {
        found = check_user(a, basic, blen, &bad);
    } else {
        /* Every key is compared, match or not (see the top of the file). */
        for (size_t i = 0; i < a->nkeys; i++) {
            int same = CRYPTO_memcmp(a->keys[i].digest, d, KEY_DIGEST_LEN) == 0;
            if (same && !found)
                found = &a->keys[i];
        }
        bad = "unknown API key";
    }
    const char *who = basic ? "user" : "API key";
    if (!found) {
        snprintf(msg, msglen, "%s", bad);
        rc = SERVE_DENY_UNAUTHENTICATED;
    } else if (access == SERVE_ADMIN && !found->all_tenants) {
        /* /metrics shows every tenant's activity (head position, append
         * rates): a key limited to some tenants must not see it. */
        snprintf(msg, msglen, "this %s is limited to some tenants and cannot read "
                              "/metrics (store-wide figures): use a %s with tenants=*",
                 who, basic ? "user" : "key");
        rc = SERVE_DENY_FORBIDDEN;
    } else if (!key_allows_tenant(found, tenant)) {
        snprintf(msg, msglen, "%s not allowed for tenant \"%.*s\"", who,
                 EVS_MAX_TENANT_LEN, tenant);
        rc = SERVE_DENY_FORBIDDEN;
    } else if (access == SERVE_WRITE && found->read_only) {
        snprintf(msg, msglen, "read-only %s cannot append", who);
        rc = SERVE_DENY_FORBIDDEN;
    }
out:
    pthread_rwlock_unlock(&s->auth_lock);
    return rc;
}

int serve_bound_tenant(serve *s, const char *authorization, char *out, size_t outlen)
{
    if (!authorization || !*authorization)
        return 0;
    size_t len = 0, blen = 0;
    const char *key = bearer_key(authorization, &len);
    const char *basic = key ? NULL : basic_token(authorization, &blen);
    unsigned char d[KEY_DIGEST_LEN];
    char name[256];
    size_t nlen = 0;
    if (key && (len > KEY_MAX_LEN || digest(d, key, len) < 0))
        return 0;
    if (basic) {
        unsigned char cred[1024];
        size_t n = 0;
        if (sodium_base642bin(cred, sizeof cred, basic, blen, NULL, &n, NULL,
                              sodium_base64_VARIANT_ORIGINAL) != 0)
            return 0;
        unsigned char *colon = memchr(cred, ':', n);
        nlen = colon ? (size_t)(colon - cred) : 0;
        if (colon && nlen < sizeof name)
            memcpy(name, cred, nlen);
        OPENSSL_cleanse(cred, sizeof cred);
        if (!colon || nlen >= sizeof name)
            return 0;
    } else if (!key) {
        return 0;
    }
    int rc = 0;
    pthread_rwlock_rdlock(&s->auth_lock);
    const serve_auth *a = s->auth;
    const serve_key *found = NULL;
    if (a && key)
        for (size_t i = 0; i < a->nkeys; i++)
            if (CRYPTO_memcmp(a->keys[i].digest, d, KEY_DIGEST_LEN) == 0 && !found)
                found = &a->keys[i];
    if (a && basic)
        for (size_t i = 0; i < a->nusers; i++)
            if (strlen(a->users[i].user) == nlen && memcmp(a->users[i].user, name, nlen) == 0)
                found = &a->users[i];
    if (found && !found->all_tenants && found->ntenants == 1 &&
        strlen(found->tenants[0]) < outlen) {
        strcpy(out, found->tenants[0]);
        rc = 1;
    }
    pthread_rwlock_unlock(&s->auth_lock);
    return rc;
}

void serve_reload_keys(serve *s)
{
    if (!s->cfg.api_keys && !s->cfg.users) {
        serve_log("SIGHUP: no API-keys or users file configured (--api-keys, --users), "
                  "nothing to reload");
        return;
    }
    char msg[1024];
    serve_auth *fresh = NULL;
    if (serve_auth_load(&fresh, s->cfg.api_keys, s->cfg.users, msg, sizeof msg) < 0) {
        serve_log("API keys not reloaded, the old ones stay in force: %s", msg);
        return;
    }
    size_t n = fresh->nkeys, nu = fresh->nusers;
    pthread_rwlock_wrlock(&s->auth_lock);
    serve_auth *old = s->auth;
    s->auth = fresh;
    atomic_fetch_add(&s->auth_gen, 1); /* open streams check their key again */
    pthread_rwlock_unlock(&s->auth_lock);
    serve_auth_free(old);
    if (s->cfg.users)
        serve_log("API keys reloaded from %s and users from %s: %zu key(s), %zu user(s)",
                  s->cfg.api_keys ? s->cfg.api_keys : "(none)", s->cfg.users, n, nu);
    else
        serve_log("API keys reloaded from %s: %zu key(s)", s->cfg.api_keys, n);
}
