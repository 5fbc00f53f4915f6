/* cric_shim_launch: spawn cric-shim, read its sync pipe (fd 3). */
#include "config.h"
#include "shim/proc.h"
#include "shim/shim.h"
#include "util/cleanup.h"
#include "util/fs.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct launch_req {
    cric_shim_launch_cb cb;
    void *data;
    char *id;
};

static void launch_done(int status, struct cric__capture cap[3], void *data)
{
    struct launch_req *l = data;
    const char *sync = cap[2].data;
    cric_error *e = NULL;
    int pid = 0;
    if (strncmp(sync, "ok ", 3) == 0 && (pid = atoi(sync + 3)) > 0) {
        l->cb(pid, NULL, l->data);
    } else {
        size_t n = strlen(sync);
        while (n && sync[n - 1] == '\n')
            n--;
        if (strncmp(sync, "error ", 6) == 0)
            cric_error_new(&e, -EIO, "container '%s': %.*s", l->id, (int)(n - 6), sync + 6);
        else if (status == -ETIMEDOUT)
            cric_error_new(&e, -ETIMEDOUT, "container '%s': cric-shim did not report in time", l->id);
        else
            cric_error_new(&e, -EIO, "container '%s': cric-shim failed (status %d): %s", l->id, status,
                           cap[1].len ? cap[1].data : "no message");
        l->cb(0, e, l->data);
        cric_error_free(e);
    }
    free(l->id);
    free(l);
}

int cric_shim_launch(uv_loop_t *loop, const struct cric_shim_opts *o, cric_shim_launch_cb cb, void *data,
                     cric_error **err)
{
    if (!o->id || !o->bundle || !o->runtime || !o->state_dir)
        return cric_error_new(err, -EINVAL, "cric_shim_launch: id, bundle, runtime and state_dir are required");
    int r = cric_mkdir_p(o->state_dir, 0700, err);
    if (r < 0)
        return r;
    if (o->exits_dir && (r = cric_mkdir_p(o->exits_dir, 0700, err)) < 0)
        return r;
    _cleanup_free_ char *shim = o->shim_path ? strdup(o->shim_path) : cric_helper_path("cric-shim");
    if (!shim)
        return cric_error_sys(err, -ENOMEM, "container '%s'", o->id);
    char size[32];
    snprintf(size, sizeof(size), "%" PRIu64, o->log_size_max);
    const char *argv[32];
    size_t n = 0;
    argv[n++] = shim;
    argv[n++] = "--id", argv[n++] = o->id;
    argv[n++] = "--bundle", argv[n++] = o->bundle;
    argv[n++] = "--runtime", argv[n++] = o->runtime;
    argv[n++] = "--state-dir", argv[n++] = o->state_dir;
    argv[n++] = "--sync-fd", argv[n++] = "3";
    if (o->runtime_root)
        argv[n++] = "--runtime-root", argv[n++] = o->runtime_root;
    if (o->systemd_cgroup)
        argv[n++] = "--systemd-cgroup";
    if (o->exits_dir)
        argv[n++] = "--exit-dir", argv[n++] = o->exits_dir;
    if (o->log_path)
        argv[n++] = "--log", argv[n++] = o->log_path;
    if (o->log_size_max)
        argv[n++] = "--log-size-max", argv[n++] = size;
    if (o->terminal)
        argv[n++] = "--terminal";
    if (o->stdin_open)
        argv[n++] = "--stdin";
    if (o->start)
        argv[n++] = "--start";
    argv[n] = NULL;
    struct launch_req *l = calloc(1, sizeof(*l));
    if (!l || !(l->id = strdup(o->id))) {
        free(l);
        return cric_error_sys(err, -ENOMEM, "container '%s'", o->id);
    }
    l->cb = cb;
    l->data = data;
    static const size_t max[3] = {4096, 4096, 8192};
    r = cric__proc_run(loop, argv, max, o->timeout_ms ? o->timeout_ms : 130000, launch_done, l, err);
    if (r < 0) {
        cric_error_prefix(err, "container '%s': start cric-shim", o->id);
        free(l->id);
        free(l);
    }
    return r;
}
