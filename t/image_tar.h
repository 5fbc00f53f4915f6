/* Test helper: writes crafted tar layers with libarchive. */
#ifndef T_IMAGE_TAR_H
#define T_IMAGE_TAR_H
#include <stddef.h>

enum tar_kind { T_FILE, T_DIR, T_SYMLINK, T_HARDLINK, T_CHR };
struct tar_ent {
    enum tar_kind kind;
    const char *path;
    const char *data;  /* file content, or link target */
    unsigned mode;
    unsigned uid, gid;
    const char *xattr_name, *xattr_val;
};
/** Writes ents as a tar to path; compression "none", "gzip" or "zstd".
 * Returns the uncompressed diff ID ("sha256:…") in diff_id (72 bytes). */
int t_write_tar(const char *path, const struct tar_ent *ents, size_t n, const char *compression, char *diff_id);
#endif
