/*
 * error.h -- the detail message behind every error code.
 *
 * Every layer (front end, backends, command executor) reports an error by
 * setting this thread's detail message (read with evs_last_error()) and
 * returning the code. The message says what was wrong and how to fix it.
 * A leaf: it includes nothing of the library.
 */
#ifndef EVS_CORE_ERROR_H
#define EVS_CORE_ERROR_H

#include <stdarg.h>

/* Set this thread's detail message and return rc (for `return evs__err(…)`). */
int evs__err(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Set the detail message verbatim. */
void evs__set_error_text(const char *msg);
/* Empty this thread's detail message (a call that succeeds leaves none). */
void evs__clear_error(void);

#endif
