/* Small filesystem helpers shared by every module. */
#ifndef CRIC_UTIL_FS_H
#define CRIC_UTIL_FS_H

#include <stddef.h>
#include <sys/types.h>

#include "util/err.h"

/** mkdir -p with the given mode for created components. */
int cric_mkdir_p(const char *path, mode_t mode, cric_error **err);
/** Writes data to path atomically: temp file in the same directory, fsync,
 * rename, fsync of the directory.  A crash leaves the old or the new file. */
int cric_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode, cric_error **err);
/** Replaces path whole without any fsync: writes "<path>.tmp" (created with
 * mode) and renames it over path.  Readers and a crash of the process see the
 * old or the new content, never half a file; durability against a machine
 * crash is the caller's (cric_fsync_async, or not needed for derived files).
 * Cheap enough for the loop thread. */
int cric_write_file_replace(const char *path, const void *data, size_t len, mode_t mode, cric_error **err);
/** Reads a whole file (at most max bytes) into a NUL-terminated buffer the
 * caller frees.  -EFBIG past max. */
int cric_read_file(const char *path, size_t max, char **out, size_t *out_len, cric_error **err);
/** Removes a tree (no symlink following, stays on one filesystem). -ENOENT is success. */
int cric_rm_rf(const char *path, cric_error **err);
/** Returns a malloc'd path of a helper binary: the directory of the running
 * executable first (so a build tree uses its own helpers), then LIBEXECDIR. */
char *cric_helper_path(const char *name);

#endif
