/* Durability off the loop: fsync a file and its parent directories on the
 * libuv thread pool. */
#ifndef CRIC_UTIL_FSYNC_ASYNC_H
#define CRIC_UTIL_FSYNC_ASYNC_H

#include <uv.h>

#include "util/err.h"

/** Runs on the loop when the work is over: rc is 0 or the first -errno met,
 * err (NULL on success) names the path that failed; done owns err and must
 * free or pass it on. */
typedef void (*cric_fsync_done_fn)(void *data, int rc, cric_error *err);

/** Queues on loop's thread pool an fsync of path and then of its first
 * parent_levels parent directories (a record's new directory entries become
 * durable too).  Every level is tried even if one fails.  The path is copied
 * and opened on the pool thread, so if a newer version was renamed over it in
 * the meantime that one is made durable, which is as good.  done (may be
 * NULL) runs exactly once, on the loop, unless this returns < 0 (then it
 * never runs); the caller keeps data and whatever done needs alive until
 * then, and the loop must run until then (uv_loop_close would fail
 * otherwise). */
int cric_fsync_async(uv_loop_t *loop, const char *path, int parent_levels, cric_fsync_done_fn done, void *data,
                     cric_error **err);

#endif
