// JSON through simdjson: validation by its DOM parser, raw spans and
// unescaped strings by its on-demand parser. Error codes throughout; the
// only exceptions are std::bad_alloc from our own buffers, caught at each
// extern "C" function (this is called from C).
#include "util/json.h"

#include <simdjson.h>

#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <string_view>
#include <utility>

using simdjson::error_code;
namespace od = simdjson::ondemand;

namespace {
// One parser of each kind per thread, destroyed (with its buffers) at
// thread exit.
thread_local simdjson::dom::parser tl_parser;
thread_local od::parser tl_od_parser;
// The text copied with SIMDJSON_PADDING bytes after it, which both parsers
// may read past the end.
thread_local std::string tl_padded;

// Deeper than the DOM parser's default limit is invalid anyway; the limit
// bounds the recursion of locate().
constexpr int MAX_DEPTH = simdjson::DEFAULT_MAX_DEPTH;

const char *copy_padded(const void *buf, size_t len)
{
    tl_padded.resize(len + simdjson::SIMDJSON_PADDING); // may throw
    if (len > 0)
        std::memcpy(&tl_padded[0], buf, len);
    std::memset(&tl_padded[len], 0, simdjson::SIMDJSON_PADDING);
    return tl_padded.data();
}

bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// simdjson's messages name its internals ("tape"); these name the mistake.
const char *reason(error_code rc)
{
    switch (rc) {
    case simdjson::EMPTY:
        return "no JSON value (the text is empty)";
    case simdjson::TAPE_ERROR:
    case simdjson::INCOMPLETE_ARRAY_OR_OBJECT:
        return "bad structure (a missing or extra comma, colon, key, "
               "brace or bracket)";
    case simdjson::TRAILING_CONTENT:
        return "unexpected text after the JSON value";
    case simdjson::DEPTH_ERROR:
        return "nesting too deep";
    case simdjson::STRING_ERROR:
        return "invalid string (a bad escape or a lone surrogate)";
    case simdjson::UNESCAPED_CHARS:
        return "control character in a string (escape it)";
    case simdjson::UNCLOSED_STRING:
        return "unterminated string";
    case simdjson::T_ATOM_ERROR:
    case simdjson::F_ATOM_ERROR:
    case simdjson::N_ATOM_ERROR:
        return "invalid literal (expected a JSON value)";
    case simdjson::NUMBER_ERROR:
        return "invalid number, or out of range (an integer beyond 64 bits, "
               "a float beyond double)";
    case simdjson::UTF8_ERROR:
        return "invalid UTF-8";
    default:
        return simdjson::error_message(rc);
    }
}

// ------------------------------------------------------------------
// Finding where invalid text goes wrong
// ------------------------------------------------------------------
//
// The DOM parser says whether the text is JSON, not where it is not. The
// on-demand parser stops at the offending token when every value is
// visited and every scalar read, and then reports its position.

error_code walk(od::value v, int depth);

error_code walk_object(od::object o, int depth)
{
    for (auto member : o) {
        od::field f;
        std::string_view key;
        error_code rc = std::move(member).get(f);
        if (rc == simdjson::SUCCESS)
            rc = f.unescaped_key().get(key);
        if (rc == simdjson::SUCCESS)
            rc = walk(f.value(), depth);
        if (rc != simdjson::SUCCESS)
            return rc;
    }
    return simdjson::SUCCESS;
}

error_code walk_array(od::array a, int depth)
{
    for (auto element : a) {
        od::value v;
        error_code rc = std::move(element).get(v);
        if (rc == simdjson::SUCCESS)
            rc = walk(v, depth);
        if (rc != simdjson::SUCCESS)
            return rc;
    }
    return simdjson::SUCCESS;
}

error_code walk(od::value v, int depth)
{
    od::json_type type;
    error_code rc = v.type().get(type);

    if (rc != simdjson::SUCCESS)
        return rc;
    if (depth >= MAX_DEPTH)
        return simdjson::DEPTH_ERROR;
    switch (type) {
    case od::json_type::object: {
        od::object o;
        if ((rc = v.get_object().get(o)) != simdjson::SUCCESS)
            return rc;
        return walk_object(o, depth + 1);
    }
    case od::json_type::array: {
        od::array a;
        if ((rc = v.get_array().get(a)) != simdjson::SUCCESS)
            return rc;
        return walk_array(a, depth + 1);
    }
    case od::json_type::string: {
        std::string_view s;
        return v.get_string().get(s);
    }
    case od::json_type::number: {
        od::number n;
        return v.get_number().get(n);
    }
    case od::json_type::boolean: {
        bool b;
        return v.get_bool().get(b);
    }
    case od::json_type::null: {
        bool b = false;
        rc = v.is_null().get(b);
        return rc != simdjson::SUCCESS ? rc : b ? simdjson::SUCCESS
                                                : simdjson::N_ATOM_ERROR;
    }
    }
    return simdjson::SUCCESS;
}

// The offset of the token where the padded text p[0..len) stops being
// JSON, or EVS__JSON_NOWHERE; *found gets the on-demand parser's error.
size_t locate(const char *p, size_t len, error_code *found)
{
    od::document doc;
    od::json_type type;
    const char *at = nullptr;
    error_code rc = tl_od_parser
                        .iterate(p, len, len + simdjson::SIMDJSON_PADDING)
                        .get(doc);

    *found = rc;
    if (rc != simdjson::SUCCESS)
        return EVS__JSON_NOWHERE; // stage 1 (UTF-8, strings) has no place
    if ((rc = doc.type().get(type)) == simdjson::SUCCESS) {
        switch (type) {
        case od::json_type::object:
        case od::json_type::array: {
            od::value v;
            if ((rc = doc.get_value().get(v)) == simdjson::SUCCESS)
                rc = walk(v, 0);
            break;
        }
        case od::json_type::string: {
            std::string_view s;
            rc = doc.get_string().get(s);
            break;
        }
        case od::json_type::number: {
            od::number n;
            rc = doc.get_number().get(n);
            break;
        }
        case od::json_type::boolean: {
            bool b;
            rc = doc.get_bool().get(b);
            break;
        }
        case od::json_type::null: {
            bool b = false;
            if ((rc = doc.is_null().get(b)) == simdjson::SUCCESS && !b)
                rc = simdjson::N_ATOM_ERROR;
            break;
        }
        }
    }
    // After the whole value, any token left is trailing text.
    if (doc.current_location().get(at) != simdjson::SUCCESS)
        return EVS__JSON_NOWHERE;
    if (rc == simdjson::SUCCESS)
        rc = simdjson::TRAILING_CONTENT;
    *found = rc;
    if (at < p)
        return EVS__JSON_NOWHERE;
    return size_t(at - p) < len ? size_t(at - p) : len;
}

// evs__json_check_at on the padded copy p.
EVS_MUST_USE int check_padded(const char *p, size_t len, size_t *where, char *err,
                              size_t errlen)
{
    simdjson::dom::element root;
    error_code rc = tl_parser.parse(p, len, false).get(root);
    error_code found = simdjson::SUCCESS;
    size_t at;

    *where = EVS__JSON_NOWHERE;
    if (rc == simdjson::SUCCESS)
        return 0;
    if (rc == simdjson::MEMALLOC)
        return -2;
    at = rc == simdjson::EMPTY ? EVS__JSON_NOWHERE : locate(p, len, &found);
    // The DOM parser's verdict and reason stand, but "trailing content"
    // says more than its generic structure error.
    if (rc == simdjson::TAPE_ERROR && found == simdjson::TRAILING_CONTENT)
        rc = found;
    *where = at;
    if (err && errlen)
        std::snprintf(err, errlen, "%s", reason(rc));
    return -1;
}

// ------------------------------------------------------------------
// Members and elements with their raw text
// ------------------------------------------------------------------

// Fill it from v: the raw span, mapped from the padded copy p back into
// the caller's buf, and a string's unescaped text.
EVS_MUST_USE error_code describe(od::value v, const char *p, const char *buf,
                                 evs__json_item *it)
{
    std::string_view raw;
    od::json_type type;
    error_code rc = v.type().get(type);

    if (rc != simdjson::SUCCESS)
        return rc;
    it->str = nullptr;
    it->str_len = 0;
    if (type == od::json_type::object) {
        od::object o;
        if ((rc = v.get_object().get(o)) == simdjson::SUCCESS)
            rc = o.raw_json().get(raw);
    } else if (type == od::json_type::array) {
        od::array a;
        if ((rc = v.get_array().get(a)) == simdjson::SUCCESS)
            rc = a.raw_json().get(raw);
    } else {
        raw = v.raw_json_token(); // does not consume v
        if (type == od::json_type::string) {
            std::string_view s;
            if ((rc = v.get_string().get(s)) == simdjson::SUCCESS) {
                it->str = s.data();
                it->str_len = s.size();
            }
        }
    }
    if (rc != simdjson::SUCCESS)
        return rc;
    // A span runs to the next token, so it may end in whitespace.
    size_t n = raw.size();
    while (n > 0 && is_space(raw[n - 1]))
        n--;
    it->raw = buf + (raw.data() - p);
    it->raw_len = n;
    return simdjson::SUCCESS;
}

EVS_MUST_USE int items(const void *buf, size_t len, bool object, evs__json_item_fn fn,
                       void *ctx, size_t *where, char *err, size_t errlen)
{
    const char *p = copy_padded(buf, len);
    od::document doc;
    od::json_type type;
    error_code rc;
    int r;

    if ((r = check_padded(p, len, where, err, errlen)) != 0)
        return r;
    rc = tl_od_parser.iterate(p, len, len + simdjson::SIMDJSON_PADDING)
             .get(doc);
    if (rc == simdjson::SUCCESS)
        rc = doc.type().get(type);
    if (rc == simdjson::SUCCESS &&
        type != (object ? od::json_type::object : od::json_type::array)) {
        size_t at = 0;
        while (at < len && is_space(p[at]))
            at++;
        *where = at;
        if (err && errlen)
            std::snprintf(err, errlen, "expected a JSON %s",
                          object ? "object" : "array");
        return -1;
    }
    if (rc == simdjson::SUCCESS && object) {
        od::object o;
        if ((rc = doc.get_object().get(o)) == simdjson::SUCCESS) {
            for (auto member : o) {
                od::field f;
                std::string_view key;
                evs__json_item it;
                if ((rc = std::move(member).get(f)) != simdjson::SUCCESS ||
                    (rc = f.unescaped_key().get(key)) != simdjson::SUCCESS ||
                    (rc = describe(f.value(), p, static_cast<const char *>(buf),
                                   &it)) != simdjson::SUCCESS)
                    break;
                it.key = key.data();
                it.key_len = key.size();
                fn(ctx, &it);
            }
        }
    } else if (rc == simdjson::SUCCESS) {
        od::array a;
        if ((rc = doc.get_array().get(a)) == simdjson::SUCCESS) {
            for (auto element : a) {
                od::value v;
                evs__json_item it;
                if ((rc = std::move(element).get(v)) != simdjson::SUCCESS ||
                    (rc = describe(v, p, static_cast<const char *>(buf),
                                   &it)) != simdjson::SUCCESS)
                    break;
                it.key = nullptr;
                it.key_len = 0;
                fn(ctx, &it);
            }
        }
    }
    if (rc == simdjson::SUCCESS)
        return 0;
    // The text is valid, so only a resource can run out here.
    if (rc == simdjson::MEMALLOC)
        return -2;
    *where = EVS__JSON_NOWHERE;
    if (err && errlen)
        std::snprintf(err, errlen, "%s", reason(rc));
    return -1;
}

// Run f, which may throw std::bad_alloc (or, defensively, anything else):
// an exception must not cross into C, so it becomes -2 for out of memory
// or -1 with what in err.
template <typename F>
int guarded(char *err, size_t errlen, const char *what, F f)
{
    try {
        return f();
    } catch (const std::bad_alloc &) {
        return -2;
    } catch (...) {
        if (err && errlen)
            std::snprintf(err, errlen, "%s", what);
        return -1;
    }
}
} // namespace

extern "C" int evs__json_check(const void *buf, size_t len, char *err, size_t errlen)
{
    return guarded(err, errlen, "JSON check failed", [&] {
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
    });
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

extern "C" int evs__json_check_at(const void *buf, size_t len, size_t *where,
                                  char *err, size_t errlen)
{
    *where = EVS__JSON_NOWHERE;
    return guarded(err, errlen, "JSON check failed", [&] {
        return check_padded(copy_padded(buf, len), len, where, err, errlen);
    });
}

extern "C" int evs__json_object_items(const void *buf, size_t len,
                                      evs__json_item_fn fn, void *ctx,
                                      size_t *where, char *err, size_t errlen)
{
    *where = EVS__JSON_NOWHERE;
    return guarded(err, errlen, "JSON read failed", [&] {
        return items(buf, len, true, fn, ctx, where, err, errlen);
    });
}

extern "C" int evs__json_array_items(const void *buf, size_t len,
                                     evs__json_item_fn fn, void *ctx,
                                     size_t *where, char *err, size_t errlen)
{
    *where = EVS__JSON_NOWHERE;
    return guarded(err, errlen, "JSON read failed", [&] {
        return items(buf, len, false, fn, ctx, where, err, errlen);
    });
}
