/* Scope-bound cleanup and explicit ownership hand-off. */
#ifndef CRIC_UTIL_CLEANUP_H
#define CRIC_UTIL_CLEANUP_H

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "util/err.h"

static inline void cric__freep(void *p) { free(*(void **)p); }
static inline void cric__closep(int *fd)
{
    if (*fd >= 0) {
        int saved = errno;
        close(*fd);
        errno = saved;
    }
}
static inline void cric__fclosep(FILE **f)
{
    if (*f)
        fclose(*f);
}
static inline void cric__closedirp(DIR **d)
{
    if (*d)
        closedir(*d);
}
static inline void cric__errorp(cric_error **e) { cric_error_free(*e); }

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(cric__freep)
#define _cleanup_close_ _cleanup_(cric__closep)
#define _cleanup_fclose_ _cleanup_(cric__fclosep)
#define _cleanup_closedir_ _cleanup_(cric__closedirp)
#define _cleanup_error_ _cleanup_(cric__errorp)

/** Takes ownership out of a cleanup variable: returns its value, leaves NULL. */
#define TAKE_PTR(p)                      \
    ({                                   \
        __typeof__(p) take_ptr__ = (p);  \
        (p) = NULL;                      \
        take_ptr__;                      \
    })
/** Same for a file descriptor: returns it and leaves -1. */
#define TAKE_FD(fd)                \
    ({                             \
        int take_fd__ = (fd);      \
        (fd) = -1;                 \
        take_fd__;                 \
    })

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
