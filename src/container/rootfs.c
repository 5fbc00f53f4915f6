/* Container root filesystems: overlayfs of the image's layers (read-only
 * lower dirs, shared with other containers) and a per-container upper dir. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "container/internal.h"
#include "util/cleanup.h"
#include "util/fs.h"

int cric__rootfs_mount(const char *dir, char *const *layers, cric_error **err)
{
    char upper[4096], work[4096], target[4096];
    snprintf(upper, sizeof(upper), "%s/upper", dir);
    snprintf(work, sizeof(work), "%s/work", dir);
    snprintf(target, sizeof(target), "%s/rootfs", dir);
    int r;
    if ((r = cric_mkdir_p(upper, 0755, err)) < 0 || (r = cric_mkdir_p(work, 0700, err)) < 0 ||
        (r = cric_mkdir_p(target, 0755, err)) < 0)
        return r;
    size_t n = 0;
    while (layers && layers[n])
        n++;
    if (n == 0)
        return cric_error_new(err, -EINVAL, "image has no layers");
    /* overlayfs wants the top layer first.  The mount data is one page. */
    size_t cap = 4096, len = 0;
    _cleanup_free_ char *data = malloc(cap);
    if (!data)
        return -ENOMEM;
    len = (size_t)snprintf(data, cap, "lowerdir=");
    for (size_t i = n; i-- > 0;) {
        if (strchr(layers[i], ':') || strchr(layers[i], ','))
            return cric_error_new(err, -EINVAL, "layer path '%s' cannot be given to overlayfs", layers[i]);
        int w = snprintf(data + len, cap - len, "%s%s", layers[i], i ? ":" : "");
        if (w < 0 || (size_t)w >= cap - len)
            return cric_error_new(err, -E2BIG, "image has too many layers (%zu) for one overlayfs mount", n);
        len += (size_t)w;
    }
    int w = snprintf(data + len, cap - len, ",upperdir=%s,workdir=%s", upper, work);
    if (w < 0 || (size_t)w >= cap - len)
        return cric_error_new(err, -E2BIG, "image has too many layers (%zu) for one overlayfs mount", n);
    if (mount("overlay", target, "overlay", 0, data) < 0)
        return cric_error_sys(err, -errno, "mount overlay on '%s'", target);
    return 0;
}

int cric__rootfs_unmount(const char *dir, cric_error **err)
{
    char target[4096];
    snprintf(target, sizeof(target), "%s/rootfs", dir);
    /* Detach: a straggling process holding a file keeps it busy otherwise. */
    if (umount2(target, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
        return cric_error_sys(err, -errno, "unmount '%s'", target);
    return 0;
}

struct rm_work {
    uv_work_t w;
    char *unmount; /* a container dir whose rootfs to unmount first, or NULL */
    char **dirs;
    int rc;
    void (*cb)(void *, int);
    void *data;
};

static void rm_run(uv_work_t *w)
{
    struct rm_work *rw = w->data;
    /* An overlayfs unmount can take tens of milliseconds: not on the loop. */
    if (rw->unmount && (rw->rc = cric__rootfs_unmount(rw->unmount, NULL)) < 0)
        return;
    for (size_t i = 0; rw->dirs[i]; i++) {
        int r = cric_rm_rf(rw->dirs[i], NULL);
        if (r < 0 && rw->rc == 0)
            rw->rc = r;
    }
}

static void rm_done(uv_work_t *w, int status)
{
    struct rm_work *rw = w->data;
    cric__spec_strv_free(rw->dirs);
    free(rw->unmount);
    rw->cb(rw->data, status < 0 ? status : rw->rc);
    free(rw);
}

int cric__rm_trees(uv_loop_t *loop, const char *unmount, char **dirs, void (*cb)(void *data, int rc), void *data)
{
    struct rm_work *rw = calloc(1, sizeof(*rw));
    if (!rw || (unmount && !(rw->unmount = strdup(unmount)))) {
        free(rw);
        cric__spec_strv_free(dirs);
        return -ENOMEM;
    }
    rw->w.data = rw;
    rw->dirs = dirs;
    rw->cb = cb;
    rw->data = data;
    int r = uv_queue_work(loop, &rw->w, rm_run, rm_done);
    if (r < 0) {
        cric__spec_strv_free(dirs);
        free(rw->unmount);
        free(rw);
    }
    return r;
}
