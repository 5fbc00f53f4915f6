/* A child process on the loop: stdin fed from memory, stdout/stderr
 * collected, a timeout that kills the child's whole process group. */
#include "config.h"
#include "cni/cni.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

struct cric_child {
    uv_loop_t *loop;
    uv_process_t proc;
    uv_pipe_t in, out, err;
    uv_timer_t timer;
    uv_write_t wreq;
    char *input;
    size_t input_len;
    struct cric_child_result res;
    size_t out_cap, err_cap, max_output;
    int open_handles;      /* handles not yet closed */
    int streams_open;      /* stdout/stderr not yet at EOF */
    bool exited, done_called, overflow, killed;
    uint64_t start;
    cric_child_done_fn done;
    void *data;
};

static unsigned active_children;
static uint64_t spawn_ns;

uint64_t cric_child_spawn_ns(void)
{
    return spawn_ns;
}

unsigned cric_child_active(void)
{
    return active_children;
}

static void on_close(uv_handle_t *h)
{
    cric_child *c = h->data;
    if (--c->open_handles > 0)
        return;
    free(c->res.out);
    free(c->res.err);
    free(c->input);
    free(c);
    active_children--;
}

static void close_handle(cric_child *c, uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, on_close);
}

static void finish(cric_child *c)
{
    if (c->done_called || !c->exited || c->streams_open > 0)
        return;
    c->done_called = true;
    c->res.elapsed_ns = uv_hrtime() - c->start;
    uv_timer_stop(&c->timer);
    if (c->overflow) {
        cric_error e = { .code = -EFBIG, .msg = "child output too large" };
        c->done(c->data, -EFBIG, &c->res, &e);
    } else {
        c->done(c->data, 0, &c->res, NULL);
    }
    close_handle(c, (uv_handle_t *)&c->in);
    close_handle(c, (uv_handle_t *)&c->out);
    close_handle(c, (uv_handle_t *)&c->err);
    close_handle(c, (uv_handle_t *)&c->timer);
    close_handle(c, (uv_handle_t *)&c->proc);
}

static void kill_group(cric_child *c)
{
    if (c->exited)
        return;
    /* The child leads its own process group (UV_PROCESS_DETACHED): kill
     * helpers it started too, so they cannot hold our pipes open. */
    if (c->proc.pid > 0)
        kill(-c->proc.pid, SIGKILL);
    uv_process_kill(&c->proc, SIGKILL);
}

void cric_child_kill(cric_child *c)
{
    c->killed = true;
    kill_group(c);
}

static void on_timer(uv_timer_t *t)
{
    cric_child *c = t->data;
    if (!c->exited) {
        c->res.timed_out = true;
        kill_group(c);
        return;
    }
    /* Exited but a grandchild still holds stdout/stderr: stop waiting. */
    if (c->streams_open > 0) {
        uv_read_stop((uv_stream_t *)&c->out);
        uv_read_stop((uv_stream_t *)&c->err);
        c->streams_open = 0;
        finish(c);
    }
}

static void on_exit_cb(uv_process_t *p, int64_t status, int sig)
{
    cric_child *c = p->data;
    c->exited = true;
    c->res.exit_status = status;
    c->res.term_signal = sig;
    if (c->streams_open > 0) {
        uv_timer_stop(&c->timer);
        uv_timer_start(&c->timer, on_timer, 2000, 0);
    }
    finish(c);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    cric_child *c = h->data;
    bool is_out = h == (uv_handle_t *)&c->out;
    char **p = is_out ? &c->res.out : &c->res.err;
    size_t *len = is_out ? &c->res.out_len : &c->res.err_len;
    size_t *cap = is_out ? &c->out_cap : &c->err_cap;
    (void)suggested;
    if (*cap - *len < 4096) {
        size_t ncap = *cap ? *cap * 2 : 8192;
        char *n = realloc(*p, ncap + 1);
        if (!n) {
            *buf = uv_buf_init(NULL, 0);
            return;
        }
        *p = n;
        *cap = ncap;
    }
    *buf = uv_buf_init(*p + *len, (unsigned)(*cap - *len));
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    cric_child *c = s->data;
    bool is_out = s == (uv_stream_t *)&c->out;
    (void)buf;
    if (n > 0) {
        size_t *len = is_out ? &c->res.out_len : &c->res.err_len;
        *len += (size_t)n;
        (is_out ? c->res.out : c->res.err)[*len] = '\0';
        if (*len > c->max_output && !c->overflow) {
            c->overflow = true;
            kill_group(c);
        }
        return;
    }
    if (n == 0)
        return;
    /* EOF or error: this stream is done. */
    uv_read_stop(s);
    c->streams_open--;
    finish(c);
}

static void write_cb(uv_write_t *w, int status)
{
    cric_child *c = w->data;
    (void)status; /* a child that exits without reading stdin is not an error */
    close_handle(c, (uv_handle_t *)&c->in);
}

int cric_child_run(uv_loop_t *loop, const struct cric_child_opts *opts, cric_child_done_fn done, void *data,
                   cric_child **out, cric_error **err)
{
    cric_child *c = calloc(1, sizeof(*c));
    if (!c)
        return cric_error_sys(err, -ENOMEM, "run '%s'", opts->file);
    c->loop = loop;
    c->done = done;
    c->data = data;
    c->max_output = opts->max_output ? opts->max_output : 1024 * 1024;
    c->res.out = calloc(1, 1);
    c->res.err = calloc(1, 1);
    if (opts->input && opts->input_len) {
        c->input = malloc(opts->input_len);
        if (c->input)
            memcpy(c->input, opts->input, opts->input_len);
        c->input_len = opts->input_len;
    }
    if (!c->res.out || !c->res.err || (opts->input_len && !c->input)) {
        free(c->res.out);
        free(c->res.err);
        free(c->input);
        free(c);
        return cric_error_sys(err, -ENOMEM, "run '%s'", opts->file);
    }
    uv_pipe_init(loop, &c->in, 0);
    uv_pipe_init(loop, &c->out, 0);
    uv_pipe_init(loop, &c->err, 0);
    uv_timer_init(loop, &c->timer);
    c->in.data = c->out.data = c->err.data = c->timer.data = c->proc.data = c;
    c->open_handles = 4;
    active_children++;

    uv_stdio_container_t stdio[3] = {
        { .flags = UV_CREATE_PIPE | UV_READABLE_PIPE, .data.stream = (uv_stream_t *)&c->in },
        { .flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&c->out },
        { .flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&c->err },
    };
    uv_process_options_t po = {
        .exit_cb = on_exit_cb,
        .file = opts->file,
        .args = opts->argv,
        .env = opts->env,
        .flags = UV_PROCESS_DETACHED,
        .stdio_count = 3,
        .stdio = stdio,
    };
    c->start = uv_hrtime();
    int r = uv_spawn(loop, &c->proc, &po);
    spawn_ns += uv_hrtime() - c->start;
    if (r < 0) {
        /* The process handle was initialised by uv_spawn and must be closed too. */
        c->open_handles++;
        c->done_called = true;
        close_handle(c, (uv_handle_t *)&c->proc);
        close_handle(c, (uv_handle_t *)&c->in);
        close_handle(c, (uv_handle_t *)&c->out);
        close_handle(c, (uv_handle_t *)&c->err);
        close_handle(c, (uv_handle_t *)&c->timer);
        return cric_error_new(err, r, "run '%s': %s", opts->file, uv_strerror(r));
    }
    c->open_handles++;
    c->streams_open = 2;
    uv_read_start((uv_stream_t *)&c->out, alloc_cb, read_cb);
    uv_read_start((uv_stream_t *)&c->err, alloc_cb, read_cb);
    if (c->input_len) {
        uv_buf_t b = uv_buf_init(c->input, (unsigned)c->input_len);
        c->wreq.data = c;
        if (uv_write(&c->wreq, (uv_stream_t *)&c->in, &b, 1, write_cb) < 0)
            close_handle(c, (uv_handle_t *)&c->in);
    } else {
        close_handle(c, (uv_handle_t *)&c->in);
    }
    if (opts->timeout_ms)
        uv_timer_start(&c->timer, on_timer, opts->timeout_ms, 0);
    if (out)
        *out = c;
    return 0;
}
