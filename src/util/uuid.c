/* UUIDs: generation (version 7, time-ordered, so that the event-id index
 * grows at its end like the log), and the text form via libuuid. */
#include "evstore.h"
#include "util/util.h"

#include <pthread.h>
#include <sys/random.h>
#include <uuid/uuid.h>

int evs_uuid_is_nil(const evs_uuid *u)
{
    static const evs_uuid nil;
    return memcmp(u->bytes, nil.bytes, 16) == 0;
}

/*
 * RFC 9562 §5.7: 48-bit Unix ms timestamp, version 7, 12 bits rand_a,
 * variant, 62 bits rand_b. Random bits come from getrandom(2) in blocks of
 * 4 KiB per thread so generation costs no system call per id.
 */
static _Thread_local uint8_t rnd_pool[4096];
static _Thread_local size_t rnd_used = sizeof(rnd_pool);

static void fill_random(uint8_t *out, size_t n)
{
    if (rnd_used + n > sizeof(rnd_pool)) {
        size_t got = 0;
        while (got < sizeof(rnd_pool)) {
            ssize_t r = getrandom(rnd_pool + got, sizeof(rnd_pool) - got, 0);
            if (r > 0)
                got += (size_t)r;
        }
        rnd_used = 0;
    }
    memcpy(out, rnd_pool + rnd_used, n);
    rnd_used += n;
}

void evs_uuid_generate(evs_uuid *out)
{
    uint64_t ms = (uint64_t)(evs__now_us() / 1000);
    uint8_t *b = out->bytes;
    b[0] = (uint8_t)(ms >> 40); b[1] = (uint8_t)(ms >> 32);
    b[2] = (uint8_t)(ms >> 24); b[3] = (uint8_t)(ms >> 16);
    b[4] = (uint8_t)(ms >> 8);  b[5] = (uint8_t)ms;
    fill_random(b + 6, 10);
    b[6] = (uint8_t)(0x70 | (b[6] & 0x0F));
    b[8] = (uint8_t)(0x80 | (b[8] & 0x3F));
}

int evs__uuid_parse(evs_uuid *out, const char *text)
{
    uuid_t u;
    if (strlen(text) != 36 || uuid_parse(text, u) != 0)
        return -1;
    memcpy(out->bytes, u, 16);
    return 0;
}

void evs_uuid_format(char out[37], const evs_uuid *u)
{
    uuid_unparse_lower(u->bytes, out);
}
