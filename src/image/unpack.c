#include "config.h"
#include "image/unpack.h"
#include "util/cleanup.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#define WH_PREFIX ".wh."
#define WH_OPAQUE ".wh..wh..opq"
#define ENTRY_MAX 1000000 /* entries per layer: bounded by design */

struct raw_src {
    struct archive *raw;  /* decompressing reader, format "raw" */
    EVP_MD_CTX *md;       /* sha256 of the uncompressed stream (the diff ID) */
    char buf[128 * 1024];
    bool eof;
};

static la_ssize_t raw_read(struct archive *a, void *data, const void **out)
{
    struct raw_src *src = data;
    if (src->eof)
        return 0;
    la_ssize_t n = archive_read_data(src->raw, src->buf, sizeof(src->buf));
    if (n < 0) {
        archive_set_error(a, archive_errno(src->raw) ? archive_errno(src->raw) : EIO, "%s",
                          archive_error_string(src->raw) ? archive_error_string(src->raw) : "read error");
        return -1;
    }
    if (n == 0)
        src->eof = true;
    else
        EVP_DigestUpdate(src->md, src->buf, (size_t)n);
    *out = src->buf;
    return n;
}

/* Normalises a tar path in place: strips "./" and trailing '/'.  Refuses
 * absolute paths and ".." components. */
static int clean_path(char *p, const char *what, const char *orig, cric_error **err)
{
    if (p[0] == '/')
        return cric_error_new(err, -EPERM, "layer entry '%.200s': %s is an absolute path", orig, what);
    char *w = p;
    for (char *r = p; *r;) {
        char *slash = strchr(r, '/');
        size_t n = slash ? (size_t)(slash - r) : strlen(r);
        if (n == 2 && r[0] == '.' && r[1] == '.')
            return cric_error_new(err, -EPERM, "layer entry '%.200s': %s contains '..'", orig, what);
        if (!(n == 0 || (n == 1 && r[0] == '.'))) {
            if (w != p)
                *w++ = '/';
            memmove(w, r, n);
            w += n;
        }
        r += n;
        if (*r == '/')
            r++;
    }
    *w = '\0';
    return 0;
}

/* Opens directory rel (cleaned) under rootfd without following any symlink;
 * creates missing components (mode 0755). */
static int open_dir_safe(int rootfd, const char *rel, const char *orig, bool create, int *out, cric_error **err)
{
    int fd = dup(rootfd);
    if (fd < 0)
        return cric_error_sys(err, -errno, "layer entry '%.200s'", orig);
    _cleanup_free_ char *copy = strdup(rel);
    if (!copy) {
        close(fd);
        return -ENOMEM;
    }
    char *save = NULL;
    for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        int nfd = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (nfd < 0 && errno == ENOENT && create) {
            if (mkdirat(fd, c, 0755) < 0 && errno != EEXIST) {
                int e = -errno;
                close(fd);
                return cric_error_sys(err, e, "layer entry '%.200s': create directory '%s'", orig, c);
            }
            nfd = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        if (nfd < 0) {
            int e = errno;
            close(fd);
            if (e == ELOOP || e == ENOTDIR)
                return cric_error_new(err, -EPERM, "layer entry '%.200s' goes through a symlink or non-directory '%s'",
                                      orig, c);
            return cric_error_sys(err, -e, "layer entry '%.200s': open '%s'", orig, c);
        }
        close(fd);
        fd = nfd;
    }
    *out = fd;
    return 0;
}

static int whiteout(int rootfd, char *path, const char *orig, cric_error **err)
{
    char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const char *dir = slash ? path : "";
    if (slash)
        *slash = '\0';
    _cleanup_close_ int dfd = -1;
    int r = open_dir_safe(rootfd, dir, orig, true, &dfd, err);
    if (r < 0)
        return r;
    if (strcmp(base, WH_OPAQUE) == 0) {
        if (fsetxattr(dfd, "trusted.overlay.opaque", "y", 1, 0) < 0)
            return cric_error_sys(err, -errno, "layer entry '%.200s': set trusted.overlay.opaque", orig);
        return 0;
    }
    const char *name = base + strlen(WH_PREFIX);
    if (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || strchr(name, '/'))
        return cric_error_new(err, -EPERM, "layer entry '%.200s' is an invalid whiteout", orig);
    if (unlinkat(dfd, name, 0) < 0 && errno == EISDIR)
        unlinkat(dfd, name, AT_REMOVEDIR);
    if (mknodat(dfd, name, S_IFCHR | 0, makedev(0, 0)) < 0)
        return cric_error_sys(err, -errno, "layer entry '%.200s': create whiteout '%s'", orig, name);
    return 0;
}

/* A relative symlink target may not climb above the layer root. */
static bool symlink_escapes(const char *entry_path, const char *target)
{
    if (target[0] == '/')
        return false; /* resolved inside the container's root at run time */
    int depth = 0;
    for (const char *p = entry_path; *p; p++)
        if (*p == '/')
            depth++;
    for (const char *r = target; *r;) {
        const char *slash = strchr(r, '/');
        size_t n = slash ? (size_t)(slash - r) : strlen(r);
        if (n == 2 && r[0] == '.' && r[1] == '.') {
            if (--depth < 0)
                return true;
        } else if (n > 0 && !(n == 1 && r[0] == '.')) {
            depth++;
        }
        r += n;
        if (*r == '/')
            r++;
    }
    return false;
}

/* overlayfs interprets trusted.overlay.* (redirect, metacopy, opaque): a
 * layer must not smuggle those in; our own opaque marker is set separately. */
static void filter_xattrs(struct archive_entry *e)
{
    if (archive_entry_xattr_reset(e) == 0)
        return;
    bool bad = false;
    const char *name;
    const void *val;
    size_t size;
    while (archive_entry_xattr_next(e, &name, &val, &size) == ARCHIVE_OK)
        if (strncmp(name, "trusted.overlay.", 16) == 0)
            bad = true;
    if (!bad)
        return;
    struct {
        char *name;
        void *val;
        size_t size;
    } keep[64];
    size_t n = 0;
    archive_entry_xattr_reset(e);
    while (archive_entry_xattr_next(e, &name, &val, &size) == ARCHIVE_OK && n < ARRAY_SIZE(keep)) {
        if (strncmp(name, "trusted.overlay.", 16) == 0)
            continue;
        keep[n].name = strdup(name);
        keep[n].val = malloc(size ? size : 1);
        if (!keep[n].name || !keep[n].val) {
            free(keep[n].name);
            free(keep[n].val);
            continue;
        }
        memcpy(keep[n].val, val, size);
        keep[n].size = size;
        n++;
    }
    archive_entry_xattr_clear(e);
    for (size_t i = 0; i < n; i++) {
        archive_entry_xattr_add_entry(e, keep[i].name, keep[i].val, keep[i].size);
        free(keep[i].name);
        free(keep[i].val);
    }
}

static int extract(struct archive *in, struct archive *out, int rootfd, const char *diff_dir, uint64_t *size,
                   cric_error **err)
{
    struct archive_entry *e;
    uint64_t total = 0;
    unsigned long count = 0;
    for (;;) {
        int r = archive_read_next_header(in, &e);
        if (r == ARCHIVE_EOF)
            break;
        if (r < ARCHIVE_WARN)
            return cric_error_new(err, -EINVAL, "layer is not a valid tar archive: %s",
                                  archive_error_string(in) ? archive_error_string(in) : "read error");
        if (++count > ENTRY_MAX)
            return cric_error_new(err, -E2BIG, "layer has more than %d entries", ENTRY_MAX);
        const char *orig_c = archive_entry_pathname(e);
        if (!orig_c)
            return cric_error_new(err, -EINVAL, "layer entry %lu has no path", count);
        _cleanup_free_ char *orig = strdup(orig_c), *path = strdup(orig_c);
        if (!orig || !path)
            return -ENOMEM;
        if ((r = clean_path(path, "the path", orig, err)) < 0)
            return r;
        if (!*path)
            continue; /* the layer root itself */
        const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        if (strncmp(base, WH_PREFIX, strlen(WH_PREFIX)) == 0) {
            if ((r = whiteout(rootfd, path, orig, err)) < 0)
                return r;
            continue;
        }
        _cleanup_free_ char *full = NULL, *link_full = NULL;
        if (asprintf(&full, "%s/%s", diff_dir, path) < 0)
            return -ENOMEM;
        const char *hl = archive_entry_hardlink(e);
        if (hl) {
            _cleanup_free_ char *hlc = strdup(hl);
            if (!hlc)
                return -ENOMEM;
            if ((r = clean_path(hlc, "the hard link target", orig, err)) < 0)
                return r;
            if (!*hlc)
                return cric_error_new(err, -EPERM, "layer entry '%.200s': hard link to the layer root", orig);
            /* The target's directories must be real ones inside the layer. */
            char *hslash = strrchr(hlc, '/');
            if (hslash) {
                *hslash = '\0';
                _cleanup_close_ int hfd = -1;
                if ((r = open_dir_safe(rootfd, hlc, orig, false, &hfd, err)) < 0)
                    return r;
                *hslash = '/';
            }
            if (asprintf(&link_full, "%s/%s", diff_dir, hlc) < 0)
                return -ENOMEM;
            archive_entry_set_hardlink(e, link_full);
        }
        const char *sl = archive_entry_symlink(e);
        if (sl && archive_entry_filetype(e) == AE_IFLNK && symlink_escapes(path, sl))
            return cric_error_new(err, -EPERM, "layer entry '%.200s': symlink target '%.200s' leaves the layer", orig,
                                  sl);
        archive_entry_set_pathname(e, full);
        filter_xattrs(e);
        r = archive_write_header(out, e);
        if (r < ARCHIVE_WARN)
            return cric_error_new(err, archive_errno(out) > 0 ? -archive_errno(out) : -EIO,
                                  "layer entry '%.200s': %s", orig,
                                  archive_error_string(out) ? archive_error_string(out) : "cannot extract");
        if (archive_entry_filetype(e) == AE_IFREG && !hl && archive_entry_size(e) > 0) {
            const void *buf;
            size_t len;
            la_int64_t off;
            for (;;) {
                r = archive_read_data_block(in, &buf, &len, &off);
                if (r == ARCHIVE_EOF)
                    break;
                if (r < ARCHIVE_WARN)
                    return cric_error_new(err, -EINVAL, "layer entry '%.200s': %s", orig,
                                          archive_error_string(in) ? archive_error_string(in) : "read error");
                if (archive_write_data_block(out, buf, len, off) < ARCHIVE_WARN)
                    return cric_error_new(err, archive_errno(out) > 0 ? -archive_errno(out) : -EIO,
                                          "layer entry '%.200s': write: %s", orig,
                                          archive_error_string(out) ? archive_error_string(out) : "error");
            }
            total += (uint64_t)archive_entry_size(e);
        }
        if (archive_write_finish_entry(out) < ARCHIVE_WARN)
            return cric_error_new(err, archive_errno(out) > 0 ? -archive_errno(out) : -EIO,
                                  "layer entry '%.200s': %s", orig,
                                  archive_error_string(out) ? archive_error_string(out) : "cannot extract");
    }
    *size = total;
    return 0;
}

int cric_layer_unpack(const char *blob_path, const char *dest_dir, const char *expect_diff_id, uint64_t *size_out,
                      cric_error **err)
{
    _cleanup_free_ char *diff = NULL, *size_path = NULL;
    if (asprintf(&diff, "%s/diff", dest_dir) < 0 || asprintf(&size_path, "%s/size", dest_dir) < 0)
        return cric_error_sys(err, -ENOMEM, "unpack layer");
    if (mkdir(dest_dir, 0700) < 0)
        return cric_error_sys(err, -errno, "create '%s'", dest_dir);
    if (mkdir(diff, 0755) < 0)
        return cric_error_sys(err, -errno, "create '%s'", diff);
    _cleanup_close_ int rootfd = open(diff, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return cric_error_sys(err, -errno, "open '%s'", diff);

    int r = 0;
    _cleanup_close_ int sfd = -1;
    struct raw_src *src = calloc(1, sizeof(*src));
    struct archive *in = NULL, *out = NULL;
    if (!src || !(src->md = EVP_MD_CTX_new()) || !EVP_DigestInit_ex(src->md, EVP_sha256(), NULL) ||
        !(src->raw = archive_read_new()) || !(in = archive_read_new()) || !(out = archive_write_disk_new())) {
        r = cric_error_sys(err, -ENOMEM, "unpack layer");
        goto done;
    }
    archive_read_support_filter_gzip(src->raw);
    archive_read_support_filter_zstd(src->raw);
    archive_read_support_format_raw(src->raw);
    if (archive_read_open_filename(src->raw, blob_path, 128 * 1024) != ARCHIVE_OK) {
        r = cric_error_new(err, -EIO, "open layer '%s': %s", blob_path, archive_error_string(src->raw));
        goto done;
    }
    struct archive_entry *re;
    int hr = archive_read_next_header(src->raw, &re);
    if (hr != ARCHIVE_OK) {
        r = cric_error_new(err, -EINVAL, "layer '%s' is empty or unreadable: %s", blob_path,
                           archive_error_string(src->raw) ? archive_error_string(src->raw) : "no data");
        goto done;
    }
    archive_read_support_format_tar(in);
    archive_read_support_format_gnutar(in);
    if (archive_read_open(in, src, NULL, raw_read, NULL) != ARCHIVE_OK) {
        r = cric_error_new(err, -EINVAL, "layer is not a valid tar archive: %s",
                           archive_error_string(in) ? archive_error_string(in) : "read error");
        goto done;
    }
    archive_write_disk_set_options(out, ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME |
                                            ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                            ARCHIVE_EXTRACT_SECURE_NODOTDOT);
    uint64_t size = 0;
    if ((r = extract(in, out, rootfd, diff, &size, err)) < 0)
        goto done;
    if (archive_write_close(out) != ARCHIVE_OK) {
        r = cric_error_new(err, -EIO, "finish layer '%s': %s", dest_dir, archive_error_string(out));
        goto done;
    }
    /* The diff ID covers the whole uncompressed stream, padding included. */
    const void *dummy;
    while (!src->eof) {
        la_ssize_t n = raw_read(in, src, &dummy);
        if (n < 0) {
            r = cric_error_new(err, -EINVAL, "layer: %s", archive_error_string(in));
            goto done;
        }
    }
    if (expect_diff_id) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned mdlen = 0;
        EVP_DigestFinal_ex(src->md, md, &mdlen);
        char hex[7 + 64 + 1] = "sha256:";
        for (unsigned i = 0; i < mdlen && i < 32; i++)
            snprintf(hex + 7 + 2 * i, 3, "%02x", md[i]);
        if (strcmp(hex, expect_diff_id) != 0) {
            r = cric_error_new(err, -EBADMSG, "layer content digest %s does not match the image config's diff ID %s",
                               hex, expect_diff_id);
            goto done;
        }
    }
    char num[32];
    int n = snprintf(num, sizeof(num), "%" PRIu64 "\n", size);
    sfd = open(size_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (sfd < 0 || write(sfd, num, (size_t)n) != n) {
        r = cric_error_sys(err, -errno, "write '%s'", size_path);
        goto done;
    }
    *size_out = size;
done:
    if (out)
        archive_write_free(out);
    if (in)
        archive_read_free(in);
    if (src) {
        if (src->raw)
            archive_read_free(src->raw);
        EVP_MD_CTX_free(src->md);
        free(src);
    }
    return r;
}
