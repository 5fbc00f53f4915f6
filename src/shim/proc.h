/* Internal to src/shim: run a child through uv_spawn and capture its output
 * (stdout, stderr and optionally fd 3), bounded, until it exited and every
 * pipe hit EOF. */
#ifndef CRIC_SHIM_PROC_H
#define CRIC_SHIM_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "util/err.h"

struct cric__capture {
    char *data; /* NUL-terminated */
    size_t len, max;
    bool truncated;
};

typedef struct cric__proc cric__proc;

/** Called once when done; cap[0..2] are fd 1, 2, 3 (borrowed). status is the
 * exit code, 128+signal, or -ETIMEDOUT. */
typedef void (*cric__proc_cb)(int status, struct cric__capture cap[3], void *data);

/** Spawns argv (argv[0] absolute).  max[i] caps capture i (0 = not captured:
 * fd 3 is not passed at all then).  Returns 0 or -errno with *err set. */
int cric__proc_run(uv_loop_t *loop, const char *const *argv, const size_t max[3], unsigned timeout_ms,
                   cric__proc_cb cb, void *data, cric_error **err);

/** The same with the child's nice value raised to nice (for work nobody waits for). */
int cric__proc_run_nice(uv_loop_t *loop, const char *const *argv, const size_t max[3], unsigned timeout_ms,
                        int nice, cric__proc_cb cb, void *data, cric_error **err);

#endif
