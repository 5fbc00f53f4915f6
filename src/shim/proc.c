#include "config.h"
#include "shim/proc.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

struct cric__proc {
    uv_process_t proc;
    uv_pipe_t pipes[3];
    uv_timer_t timer;
    struct cric__capture cap[3];
    int npipes;
    int open_handles;
    int eofs; /* pipes still open for reading */
    int status;
    bool exited, timed_out, finishing;
    cric__proc_cb cb;
    void *data;
};

static void proc_finish(cric__proc *p);

static void on_close(uv_handle_t *h)
{
    cric__proc *p = h->data;
    if (--p->open_handles > 0)
        return;
    if (p->cb) /* NULL when uv_spawn failed: the caller got the error */
        p->cb(p->timed_out ? -ETIMEDOUT : p->status, p->cap, p->data);
    for (int i = 0; i < 3; i++)
        free(p->cap[i].data);
    free(p);
}

static void close_pipe(cric__proc *p, int i)
{
    uv_handle_t *h = (uv_handle_t *)&p->pipes[i];
    if (!uv_is_closing(h)) {
        uv_close(h, on_close);
        p->eofs--;
    }
}

static void maybe_finish(cric__proc *p)
{
    if (p->exited && p->eofs == 0)
        proc_finish(p);
}

static void proc_finish(cric__proc *p)
{
    if (p->finishing)
        return;
    p->finishing = true;
    for (int i = 0; i < p->npipes; i++)
        close_pipe(p, i);
    uv_close((uv_handle_t *)&p->timer, on_close);
    uv_close((uv_handle_t *)&p->proc, on_close);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    static char scratch[65536]; /* loop thread only; copied out right away */
    (void)h;
    (void)hint;
    *buf = uv_buf_init(scratch, sizeof(scratch));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    cric__proc *p = s->data;
    int i = (int)((uv_pipe_t *)s - p->pipes);
    if (n < 0) {
        close_pipe(p, i);
        maybe_finish(p);
        return;
    }
    struct cric__capture *c = &p->cap[i];
    size_t take = (size_t)n;
    if (c->len + take > c->max) {
        take = c->max - c->len;
        c->truncated = true;
    }
    memcpy(c->data + c->len, buf->base, take);
    c->len += take;
    c->data[c->len] = '\0';
}

static void on_exit_cb(uv_process_t *proc, int64_t status, int sig)
{
    cric__proc *p = proc->data;
    p->exited = true;
    p->status = sig ? 128 + sig : (int)status;
    uv_timer_stop(&p->timer);
    maybe_finish(p);
}

static void on_timeout(uv_timer_t *t)
{
    cric__proc *p = t->data;
    p->timed_out = true;
    if (!p->exited)
        uv_process_kill(&p->proc, SIGKILL);
    /* A detached grandchild may keep a pipe open: stop waiting for EOF. */
    for (int i = 0; i < p->npipes; i++)
        close_pipe(p, i);
    maybe_finish(p);
}

int cric__proc_run(uv_loop_t *loop, const char *const *argv, const size_t max[3], unsigned timeout_ms,
                   cric__proc_cb cb, void *data, cric_error **err)
{
    return cric__proc_run_nice(loop, argv, max, timeout_ms, 0, cb, data, err);
}

int cric__proc_run_nice(uv_loop_t *loop, const char *const *argv, const size_t max[3], unsigned timeout_ms,
                        int nice, cric__proc_cb cb, void *data, cric_error **err)
{
    cric__proc *p = calloc(1, sizeof(*p));
    if (!p)
        return cric_error_sys(err, -ENOMEM, "run '%s'", argv[0]);
    p->npipes = max[2] ? 3 : 2;
    for (int i = 0; i < p->npipes; i++) {
        p->cap[i].max = max[i];
        p->cap[i].data = malloc(max[i] + 1);
        if (!p->cap[i].data) {
            for (int j = 0; j <= i; j++)
                free(p->cap[j].data);
            free(p);
            return cric_error_sys(err, -ENOMEM, "run '%s'", argv[0]);
        }
        p->cap[i].data[0] = '\0';
        uv_pipe_init(loop, &p->pipes[i], 0);
        p->pipes[i].data = p;
    }
    uv_stdio_container_t stdio[4];
    stdio[0].flags = UV_IGNORE;
    for (int i = 0; i < p->npipes; i++) {
        stdio[i + 1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
        stdio[i + 1].data.stream = (uv_stream_t *)&p->pipes[i];
    }
    uv_process_options_t o = {
        .exit_cb = on_exit_cb,
        .file = argv[0],
        .args = (char **)argv,
        .stdio_count = p->npipes + 1,
        .stdio = stdio,
    };
    p->proc.data = p;
    int r = uv_spawn(loop, &p->proc, &o);
    uv_timer_init(loop, &p->timer);
    p->timer.data = p;
    p->cb = cb;
    p->data = data;
    p->open_handles = p->npipes + 2;
    p->eofs = p->npipes;
    if (r < 0) {
        /* uv_spawn failed: no exit_cb will come; close everything, but do not call cb */
        cric_error_new(err, r, "run '%s': %s", argv[0], uv_strerror(r));
        p->cb = NULL;
        for (int i = 0; i < p->npipes; i++)
            uv_close((uv_handle_t *)&p->pipes[i], on_close);
        uv_close((uv_handle_t *)&p->timer, on_close);
        uv_close((uv_handle_t *)&p->proc, on_close); /* the last one frees p */
        return r;
    }
    /* Best effort, right after the fork: a Go runtime's later threads
     * inherit it from its main thread. */
    if (nice)
        uv_os_setpriority(p->proc.pid, nice);
    for (int i = 0; i < p->npipes; i++)
        uv_read_start((uv_stream_t *)&p->pipes[i], on_alloc, on_read);
    if (timeout_ms)
        uv_timer_start(&p->timer, on_timeout, timeout_ms, 0);
    return 0;
}
