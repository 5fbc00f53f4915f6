#include "config.h"
#include "util/err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int error_set(cric_error **err, int code, const char *suffix, const char *fmt, va_list ap)
{
    if (code >= 0)
        code = -EINVAL;
    if (!err || *err)
        return code;
    cric_error *e = calloc(1, sizeof(*e));
    if (!e)
        return code;
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    if (msg && suffix) {
        char *full = NULL;
        if (asprintf(&full, "%s: %s", msg, suffix) >= 0) {
            free(msg);
            msg = full;
        }
    }
    e->code = code;
    e->msg = msg ? msg : strdup("out of memory");
    *err = e;
    return code;
}

int cric_error_new(cric_error **err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = error_set(err, code, NULL, fmt, ap);
    va_end(ap);
    return r;
}

int cric_error_sys(cric_error **err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = error_set(err, code, strerror(code < 0 ? -code : code), fmt, ap);
    va_end(ap);
    return r;
}

int cric_error_prefix(cric_error **err, const char *fmt, ...)
{
    if (!err || !*err)
        return -EINVAL;
    va_list ap;
    va_start(ap, fmt);
    char *prefix = NULL;
    int n = vasprintf(&prefix, fmt, ap);
    va_end(ap);
    if (n >= 0) {
        char *full = NULL;
        if (asprintf(&full, "%s: %s", prefix, (*err)->msg) >= 0) {
            free((*err)->msg);
            (*err)->msg = full;
        }
        free(prefix);
    }
    return (*err)->code;
}

void cric_error_free(cric_error *err)
{
    if (!err)
        return;
    free(err->msg);
    free(err);
}

void cric_error_clear(cric_error **err)
{
    if (err && *err) {
        cric_error_free(*err);
        *err = NULL;
    }
}
