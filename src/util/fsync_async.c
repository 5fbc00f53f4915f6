#define _GNU_SOURCE
#include "config.h"
#include "util/fsync_async.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct fsync_job {
    uv_work_t req;
    int parent_levels;
    int rc;
    char *what;                 /* the path that failed first */
    cric_fsync_done_fn done;
    void *data;
    char path[];
};

static int fsync_path(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return r;
}

/* Thread pool: works on a copy so j->path stays whole for the error. */
static void fsync_run(uv_work_t *req)
{
    struct fsync_job *j = req->data;
    char *p = strdup(j->path);
    if (!p) {
        j->rc = -ENOMEM;
        return;
    }
    int flags = O_RDONLY;
    for (int level = 0; level <= j->parent_levels; level++) {
        if (level > 0) {
            char *slash = strrchr(p, '/');
            if (!slash || slash == p)
                break;
            *slash = '\0';
            flags = O_RDONLY | O_DIRECTORY;
        }
        int r = fsync_path(p, flags);
        if (r < 0 && j->rc == 0) {
            j->rc = r;
            j->what = strdup(p);
        }
    }
    free(p);
}

static void fsync_after(uv_work_t *req, int status)
{
    struct fsync_job *j = req->data;
    int rc = status < 0 ? status : j->rc;
    cric_error *e = NULL;
    if (rc < 0)
        cric_error_sys(&e, rc, "fsync '%s'", j->what ? j->what : j->path);
    if (j->done)
        j->done(j->data, rc, e);
    else
        cric_error_free(e);
    free(j->what);
    free(j);
}

int cric_fsync_async(uv_loop_t *loop, const char *path, int parent_levels, cric_fsync_done_fn done, void *data,
                     cric_error **err)
{
    size_t pl = strlen(path) + 1;
    struct fsync_job *j = calloc(1, sizeof(*j) + pl);
    if (!j)
        return cric_error_sys(err, -ENOMEM, "fsync '%s'", path);
    memcpy(j->path, path, pl);
    j->parent_levels = parent_levels;
    j->done = done;
    j->data = data;
    j->req.data = j;
    int r = uv_queue_work(loop, &j->req, fsync_run, fsync_after);
    if (r < 0) {
        free(j);
        return cric_error_new(err, r, "fsync '%s': %s", path, uv_strerror(r));
    }
    return 0;
}
