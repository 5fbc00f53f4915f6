/* Layer unpacking with libarchive: blocking, touches no daemon state, so it
 * runs on the libuv thread pool with owned inputs and outputs. */
#ifndef CRIC_IMAGE_UNPACK_H
#define CRIC_IMAGE_UNPACK_H

#include <stdint.h>

#include "util/err.h"

/** Unpacks the layer blob at blob_path (tar, gzip or zstd compressed) into
 * dest_dir/diff (dest_dir must not exist yet; it is created) and writes the
 * unpacked size into dest_dir/size.
 *
 * OCI whiteouts become overlayfs whiteouts: ".wh.NAME" a 0/0 character
 * device NAME, ".wh..wh..opq" the xattr trusted.overlay.opaque=y on its
 * directory.  Owners, modes, times, xattrs (file capabilities), hard links and
 * device nodes are kept.  An entry that is absolute, contains "..", goes
 * through a symlink, or a hard link or relative symlink whose target leaves
 * the layer is refused with an error naming it.
 *
 * expect_diff_id ("sha256:<hex>" of the uncompressed tar, or NULL) is checked
 * after the last byte.  On failure dest_dir may be left partially written:
 * the caller removes it. */
int cric_layer_unpack(const char *blob_path, const char *dest_dir, const char *expect_diff_id, uint64_t *size,
                      cric_error **err);

#endif
