/* The one error contract of cricd: a function that can fail returns 0 (or a
 * non-negative value) on success and a negative errno-style code on failure.
 * Where a person will read it, it also fills *err (last parameter, may be NULL)
 * with a message naming what failed and why.  The caller owns *err and frees it
 * with cric_error_free().  Out-parameters are written only on success. */
#ifndef CRIC_UTIL_ERR_H
#define CRIC_UTIL_ERR_H

#include <stdarg.h>

typedef struct cric_error {
    int code;  /* negative errno-style code */
    char *msg; /* human-readable, never NULL */
} cric_error;

/** Sets *err (if err is non-NULL and *err is NULL) and returns code (< 0). */
int cric_error_new(cric_error **err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/** Like cric_error_new with ": strerror(-code)" appended; code is -errno. */
int cric_error_sys(cric_error **err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/** Prefixes an existing message with "<fmt>: "; returns (*err)->code or -EINVAL. */
int cric_error_prefix(cric_error **err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void cric_error_free(cric_error *err);
/** Frees *err and sets it to NULL. */
void cric_error_clear(cric_error **err);

#endif
