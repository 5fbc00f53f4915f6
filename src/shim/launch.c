/* cric_shim_launch: spawn cric-shim, read its sync pipe (fd 3). */
#include "config.h"
#include "shim/proc.h"
#include "shim/shim.h"
#include "shim/shim_proto.h"
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

/* The shim's one-line report: "ok PID", "ready PID" (--wait) or "error TEXT".
 * Returns the pid, or 0 with *e set. */
static int parse_report(const char *sync, int status, const char *id, cric_error **e)
{
    int pid = 0;
    if ((strncmp(sync, "ok ", 3) == 0 && (pid = atoi(sync + 3)) > 0) ||
        (strncmp(sync, "ready ", 6) == 0 && (pid = atoi(sync + 6)) > 0))
        return pid;
    size_t n = strlen(sync);
    while (n && sync[n - 1] == '\n')
        n--;
    if (strncmp(sync, "error ", 6) == 0)
        cric_error_new(e, -EIO, "container '%s': %.*s", id, (int)(n - 6), sync + 6);
    else if (status == -ETIMEDOUT)
        cric_error_new(e, -ETIMEDOUT, "container '%s': cric-shim did not report in time", id);
    else
        cric_error_new(e, status < 0 ? status : -EIO, "container '%s': cric-shim failed (status %d): %.*s", id, status,
                       (int)n, n ? sync : "no message");
    return 0;
}

static void launch_done(int status, struct cric__capture cap[3], void *data)
{
    struct launch_req *l = data;
    cric_error *e = NULL;
    int pid = parse_report(cap[2].data, status, l->id, &e);
    if (!pid && !cap[2].data[0] && cap[1].len) { /* nothing on the sync fd: what it printed */
        cric_error_free(e);
        e = NULL;
        if (status == -ETIMEDOUT)
            cric_error_new(&e, -ETIMEDOUT, "container '%s': cric-shim did not report in time", l->id);
        else
            cric_error_new(&e, -EIO, "container '%s': cric-shim failed (status %d): %s", l->id, status, cap[1].data);
    }
    l->cb(pid, e, l->data);
    cric_error_free(e);
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
    if (o->wait)
        argv[n++] = "--wait";
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

/* ------------------------------------------------------------------ start */

struct start_req {
    uv_pipe_t pipe;
    uv_connect_t connect;
    uv_timer_t timer;
    cric_shim_launch_cb cb;
    void *data;
    char *id;
    char buf[8192];
    size_t len;
    int status; /* 0, or -errno of the connection */
    int closing;
};

static void start_closed(uv_handle_t *h)
{
    struct start_req *q = h->data;
    if (--q->closing > 0)
        return;
    cric_error *e = NULL;
    int pid = 0;
    if (q->status == -ENOENT || q->status == -ECONNREFUSED)
        cric_error_new(&e, -ESRCH, "container '%s': no cric-shim waiting to start it", q->id);
    else
        pid = parse_report(q->buf, q->status, q->id, &e);
    q->cb(pid, e, q->data);
    cric_error_free(e);
    free(q->id);
    free(q);
}

static void start_end(struct start_req *q, int status)
{
    if (q->closing)
        return;
    q->status = status;
    q->buf[q->len] = '\0';
    q->closing = 2;
    uv_close((uv_handle_t *)&q->pipe, start_closed);
    uv_close((uv_handle_t *)&q->timer, start_closed);
}

static void start_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct start_req *q = h->data;
    (void)hint;
    *buf = uv_buf_init(q->buf + q->len, (unsigned)(sizeof(q->buf) - 1 - q->len));
}

static void start_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct start_req *q = st->data;
    (void)buf;
    if (n < 0) {
        start_end(q, n == UV_EOF ? 0 : (int)n);
        return;
    }
    q->len += (size_t)n;
    if (q->len >= sizeof(q->buf) - 1)
        start_end(q, 0);
}

static void start_connected(uv_connect_t *req, int status)
{
    struct start_req *q = req->data;
    if (status < 0) {
        start_end(q, status);
        return;
    }
    uv_read_start((uv_stream_t *)&q->pipe, start_alloc, start_read);
}

static void start_timeout(uv_timer_t *t)
{
    start_end(t->data, -ETIMEDOUT);
}

int cric_shim_start(uv_loop_t *loop, const char *state_dir, const char *id, unsigned timeout_ms,
                    cric_shim_launch_cb cb, void *data, cric_error **err)
{
    struct start_req *q = calloc(1, sizeof(*q));
    _cleanup_free_ char *path = NULL;
    if (!q || !(q->id = strdup(id)) || asprintf(&path, "%s/" CRIC_SHIM_START_SOCK, state_dir) < 0) {
        if (q)
            free(q->id);
        free(q);
        return cric_error_sys(err, -ENOMEM, "container '%s'", id);
    }
    q->cb = cb;
    q->data = data;
    uv_pipe_init(loop, &q->pipe, 0);
    uv_timer_init(loop, &q->timer);
    q->pipe.data = q->timer.data = q->connect.data = q;
    uv_pipe_connect(&q->connect, &q->pipe, path, start_connected);
    uv_timer_start(&q->timer, start_timeout, timeout_ms ? timeout_ms : 130000, 0);
    return 0;
}
