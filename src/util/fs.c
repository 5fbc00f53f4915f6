#define _GNU_SOURCE
#include "config.h"
#include "util/fs.h"
#include "util/cleanup.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int cric_mkdir_p(const char *path, mode_t mode, cric_error **err)
{
    _cleanup_free_ char *p = strdup(path);
    if (!p)
        return cric_error_sys(err, -ENOMEM, "mkdir '%s'", path);
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(p, mode) < 0 && errno != EEXIST)
                return cric_error_sys(err, -errno, "mkdir '%s'", p);
            *s = c;
            if (c == '\0')
                break;
        }
    }
    struct stat st;
    if (stat(path, &st) < 0)
        return cric_error_sys(err, -errno, "stat '%s'", path);
    if (!S_ISDIR(st.st_mode))
        return cric_error_new(err, -ENOTDIR, "'%s' exists and is not a directory", path);
    return 0;
}

int cric_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode, cric_error **err)
{
    _cleanup_free_ char *tmp = NULL;
    if (asprintf(&tmp, "%s.tmp.%d", path, (int)getpid()) < 0)
        return cric_error_sys(err, -ENOMEM, "write '%s'", path);
    _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return cric_error_sys(err, -errno, "create '%s'", tmp);
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int e = -errno;
            unlink(tmp);
            return cric_error_sys(err, e, "write '%s'", tmp);
        }
        p += n;
        len -= (size_t)n;
    }
    if (fsync(fd) < 0) {
        int e = -errno;
        unlink(tmp);
        return cric_error_sys(err, e, "fsync '%s'", tmp);
    }
    if (rename(tmp, path) < 0) {
        int e = -errno;
        unlink(tmp);
        return cric_error_sys(err, e, "rename '%s' to '%s'", tmp, path);
    }
    _cleanup_free_ char *dir = strdup(path);
    if (dir) {
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir) {
            *slash = '\0';
            _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dfd >= 0)
                fsync(dfd);
        }
    }
    return 0;
}

int cric_write_file_replace(const char *path, const void *data, size_t len, mode_t mode, cric_error **err)
{
    _cleanup_free_ char *tmp = NULL;
    if (asprintf(&tmp, "%s.tmp", path) < 0)
        return cric_error_sys(err, -ENOMEM, "write '%s'", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return cric_error_sys(err, -errno, "create '%s'", tmp);
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = -errno;
            close(fd);
            unlink(tmp);
            return cric_error_sys(err, e, "write '%s'", tmp);
        }
        p += n;
        len -= (size_t)n;
    }
    if (close(fd) < 0) {
        int e = -errno;
        unlink(tmp);
        return cric_error_sys(err, e, "write '%s'", tmp);
    }
    if (rename(tmp, path) < 0) {
        int e = -errno;
        unlink(tmp);
        return cric_error_sys(err, e, "rename '%s' to '%s'", tmp, path);
    }
    return 0;
}

int cric_read_file(const char *path, size_t max, char **out, size_t *out_len, cric_error **err)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cric_error_sys(err, -errno, "open '%s'", path);
    /* Read up to max + 1 bytes so that a file of exactly max bytes passes. */
    size_t cap = max < 4096 ? max + 1 : 4096, len = 0;
    _cleanup_free_ char *buf = malloc(cap + 1);
    if (!buf)
        return cric_error_sys(err, -ENOMEM, "read '%s'", path);
    for (;;) {
        if (len == cap) {
            if (cap > max)
                return cric_error_new(err, -EFBIG, "'%s' is larger than %zu bytes", path, max);
            cap = cap * 2 > max ? max + 1 : cap * 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb)
                return cric_error_sys(err, -ENOMEM, "read '%s'", path);
            buf = nb;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return cric_error_sys(err, -errno, "read '%s'", path);
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > max)
        return cric_error_new(err, -EFBIG, "'%s' is larger than %zu bytes", path, max);
    buf[len] = '\0';
    if (out_len)
        *out_len = len;
    *out = TAKE_PTR(buf);
    return 0;
}

static int rm_one(const char *fpath, const struct stat *sb, int typeflag, struct FTW *ftwbuf)
{
    (void)sb;
    (void)ftwbuf;
    int r = typeflag == FTW_DP ? rmdir(fpath) : unlink(fpath);
    if (r < 0 && errno != ENOENT)
        return -errno;
    return 0;
}

int cric_rm_rf(const char *path, cric_error **err)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : cric_error_sys(err, -errno, "stat '%s'", path);
    if (!S_ISDIR(st.st_mode)) {
        if (unlink(path) < 0 && errno != ENOENT)
            return cric_error_sys(err, -errno, "unlink '%s'", path);
        return 0;
    }
    int r = nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
    if (r < 0)
        return cric_error_sys(err, r == -1 ? -errno : r, "remove '%s'", path);
    if (r > 0)
        return cric_error_sys(err, -r, "remove '%s'", path);
    return 0;
}

char *cric_helper_path(const char *name)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = '\0';
            char *p = NULL;
            if (asprintf(&p, "%s/%s", self, name) >= 0) {
                if (access(p, X_OK) == 0)
                    return p;
                free(p);
            }
        }
    }
    char *p = NULL;
    if (asprintf(&p, "%s/%s", LIBEXECDIR, name) < 0)
        return NULL;
    return p;
}
