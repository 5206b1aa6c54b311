/* Error codes and the per-thread detail message. */
#include "core/error.h"
#include "evstore.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_error[1024];

const char *evs_strerror(int rc)
{
    switch (rc) {
    case EVS_OK:
        return "ok";
#define EVS__ERRNO_STR(name, val, msg) case EVS_##name: return msg;
        EVS_ERRNO_MAP(EVS__ERRNO_STR)
#undef EVS__ERRNO_STR
    default:
        return "unknown error";
    }
}

const char *evs_last_error(void) { return last_error; }

void evs__clear_error(void) { last_error[0] = '\0'; }

void evs__set_error_text(const char *msg)
{
    snprintf(last_error, sizeof(last_error), "%s", msg);
}

int evs__err(int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof(last_error), fmt, ap);
    va_end(ap);
    return rc;
}

const char *evs_version(void) { return EVS_VERSION_STRING; }
