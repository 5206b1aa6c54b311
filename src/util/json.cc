// JSON validation through simdjson's DOM parser (error codes, no
// exceptions escape: this is called from C).
#include "util/json.h"

#include <simdjson.h>

#include <cstdio>
#include <cstring>
#include <new>

namespace {
// One parser per thread, destroyed (with its buffers) at thread exit.
thread_local simdjson::dom::parser tl_parser;
}

extern "C" int evs__json_check(const void *buf, size_t len, char *err, size_t errlen)
{
    try {
        simdjson::dom::element doc;
        // parse() copies into the parser's padded buffer when needed.
        auto rc = tl_parser.parse(static_cast<const char *>(buf), len, true).get(doc);
        if (rc == simdjson::SUCCESS)
            return 0;
        if (rc == simdjson::MEMALLOC)
            return -2;
        if (err && errlen)
            std::snprintf(err, errlen, "%s", simdjson::error_message(rc));
        return -1;
    } catch (const std::bad_alloc &) {
        return -2;
    } catch (...) {
        if (err && errlen)
            std::snprintf(err, errlen, "JSON check failed");
        return -1;
    }
}

extern "C" int evs__json_minify(const void *buf, size_t len, char *out, size_t *outlen)
{
    size_t n = 0;
    auto rc = simdjson::minify(static_cast<const char *>(buf), len, out, n);
    if (rc != simdjson::SUCCESS)
        return -1;
    *outlen = n;
    return 0;
}
