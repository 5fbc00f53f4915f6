/* Clients of a shim's sockets: one-shot control requests and attach. */
#include "config.h"
#include "shim/shim.h"
#include "shim/shim_proto.h"
#include "util/cleanup.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

/* A frame owned by its write request. */
struct frame_req {
    uv_write_t w;
    unsigned char data[];
};

static void frame_written(uv_write_t *w, int status)
{
    free(w);
}

static int send_frame(uv_stream_t *s, uint8_t type, const void *payload, size_t len)
{
    if (len > CRIC_SHIM_FRAME_MAX)
        return -EMSGSIZE;
    struct frame_req *f = malloc(sizeof(*f) + CRIC_SHIM_FRAME_HDR + len);
    if (!f)
        return -ENOMEM;
    cric_shim_put_hdr(f->data, type, (uint32_t)len);
    if (len)
        memcpy(f->data + CRIC_SHIM_FRAME_HDR, payload, len);
    uv_buf_t b = uv_buf_init((char *)f->data, (unsigned)(CRIC_SHIM_FRAME_HDR + len));
    int r = uv_write(&f->w, s, &b, 1, frame_written);
    if (r < 0)
        free(f);
    return r;
}

/* libuv cuts a long socket path silently: refuse it instead. */
static int check_sock_path(const char *path, cric_error **err)
{
    struct sockaddr_un sa;
    if (strlen(path) >= sizeof(sa.sun_path))
        return cric_error_new(err, -ENAMETOOLONG, "socket path '%s' is too long", path);
    return 0;
}

/* --------------------------------------------------------------- control */

struct ctl_req {
    uv_pipe_t pipe;
    uv_connect_t connect;
    uv_timer_t timer;
    cric_shim_ctl_cb cb;
    void *data;
    char *what; /* "reopen log of '<dir>'" etc. for messages */
    unsigned char in[CRIC_SHIM_FRAME_HDR + 4];
    size_t in_len;
    int result; /* 1 = pending */
    int send_err; /* the request could not be queued (connect failed at once) */
    int closing;
};

static void ctl_closed(uv_handle_t *h)
{
    struct ctl_req *c = h->data;
    if (--c->closing > 0)
        return;
    cric_error *e = NULL;
    if (c->result < 0)
        cric_error_sys(&e, c->result, "%s", c->what);
    c->cb(e, c->data);
    cric_error_free(e);
    free(c->what);
    free(c);
}

static void ctl_finish(struct ctl_req *c, int result)
{
    if (c->closing)
        return;
    c->result = result;
    c->closing = 2;
    uv_close((uv_handle_t *)&c->pipe, ctl_closed);
    uv_close((uv_handle_t *)&c->timer, ctl_closed);
}

static void ctl_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct ctl_req *c = h->data;
    *buf = uv_buf_init((char *)c->in + c->in_len, (unsigned)(sizeof(c->in) - c->in_len));
}

static void ctl_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct ctl_req *c = s->data;
    if (n < 0) {
        ctl_finish(c, n == UV_EOF ? -ECONNRESET : (int)n);
        return;
    }
    c->in_len += (size_t)n;
    if (c->in_len < sizeof(c->in))
        return;
    if (c->in[0] != CRIC_SHIM_FRAME_ACK || cric_shim_get_u32(c->in + 1) != 4)
        ctl_finish(c, -EBADMSG);
    else
        ctl_finish(c, -(int)cric_shim_get_u32(c->in + 5));
}

static void ctl_connected(uv_connect_t *req, int status)
{
    struct ctl_req *c = req->data;
    if (status < 0) {
        ctl_finish(c, status == UV_ENOENT ? -ESRCH : status);
        return;
    }
    if (c->send_err) {
        ctl_finish(c, c->send_err);
        return;
    }
    uv_read_start((uv_stream_t *)&c->pipe, ctl_alloc, ctl_read);
}

static void ctl_timeout(uv_timer_t *t)
{
    ctl_finish(t->data, -ETIMEDOUT);
}

static int ctl_request(uv_loop_t *loop, const char *state_dir, const char *what, uint8_t type,
                       const void *payload, size_t len, cric_shim_ctl_cb cb, void *data, cric_error **err)
{
    _cleanup_free_ char *path = NULL;
    if (asprintf(&path, "%s/" CRIC_SHIM_CONTROL_SOCK, state_dir) < 0)
        return cric_error_sys(err, -ENOMEM, "%s of '%s'", what, state_dir);
    int r = check_sock_path(path, err);
    if (r < 0)
        return r;
    struct ctl_req *c = calloc(1, sizeof(*c));
    if (!c || asprintf(&c->what, "%s of shim '%s'", what, state_dir) < 0) {
        free(c);
        return cric_error_sys(err, -ENOMEM, "%s of '%s'", what, state_dir);
    }
    c->cb = cb;
    c->data = data;
    c->result = 1;
    uv_pipe_init(loop, &c->pipe, 0);
    uv_timer_init(loop, &c->timer);
    c->pipe.data = c->timer.data = c->connect.data = c;
    uv_pipe_connect(&c->connect, &c->pipe, path, ctl_connected);
    /* On an immediate connect failure this fails too; the connect callback reports it. */
    c->send_err = send_frame((uv_stream_t *)&c->pipe, type, payload, len);
    uv_timer_start(&c->timer, ctl_timeout, 10000, 0);
    return 0;
}

int cric_shim_reopen_log(uv_loop_t *loop, const char *state_dir, cric_shim_ctl_cb cb, void *data, cric_error **err)
{
    return ctl_request(loop, state_dir, "reopen log", CRIC_SHIM_FRAME_REOPEN_LOG, NULL, 0, cb, data, err);
}

int cric_shim_resize(uv_loop_t *loop, const char *state_dir, unsigned rows, unsigned cols, cric_shim_ctl_cb cb,
                     void *data, cric_error **err)
{
    if (rows > 65535 || cols > 65535)
        return cric_error_new(err, -EINVAL, "terminal size %ux%u out of range", rows, cols);
    unsigned char p[4] = {(unsigned char)(rows >> 8), (unsigned char)rows, (unsigned char)(cols >> 8),
                          (unsigned char)cols};
    return ctl_request(loop, state_dir, "resize terminal", CRIC_SHIM_FRAME_RESIZE, p, 4, cb, data, err);
}

int cric_shim_signal(uv_loop_t *loop, const char *state_dir, int sig, cric_shim_ctl_cb cb, void *data,
                     cric_error **err)
{
    if (sig <= 0 || sig >= 65)
        return cric_error_new(err, -EINVAL, "signal %d out of range", sig);
    unsigned char p[1] = {(unsigned char)sig};
    return ctl_request(loop, state_dir, "signal", CRIC_SHIM_FRAME_SIGNAL, p, 1, cb, data, err);
}

int cric_shim_close_stdin(uv_loop_t *loop, const char *state_dir, cric_shim_ctl_cb cb, void *data,
                          cric_error **err)
{
    return ctl_request(loop, state_dir, "close stdin", CRIC_SHIM_FRAME_CLOSE_STDIN, NULL, 0, cb, data, err);
}

/* ---------------------------------------------------------------- attach */

struct cric_shim_attach {
    uv_pipe_t pipe;
    uv_connect_t connect;
    struct cric_shim_attach_cbs cbs;
    void *data;
    unsigned char hdr[CRIC_SHIM_FRAME_HDR];
    size_t hdr_len;
    uint32_t remaining;
    int status;
    bool closing;
    char buf[65536];
};

static void attach_closed(uv_handle_t *h)
{
    cric_shim_attach *a = h->data;
    if (a->cbs.on_close)
        a->cbs.on_close(a, a->status, a->data);
    free(a);
}

static void attach_end(cric_shim_attach *a, int status)
{
    if (a->closing)
        return;
    a->closing = true;
    a->status = status;
    uv_close((uv_handle_t *)&a->pipe, attach_closed);
}

static void attach_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    cric_shim_attach *a = h->data;
    *buf = uv_buf_init(a->buf, sizeof(a->buf));
}

static void attach_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    cric_shim_attach *a = s->data;
    if (n < 0) {
        attach_end(a, n == UV_EOF ? 0 : (int)n);
        return;
    }
    const char *p = buf->base;
    size_t left = (size_t)n;
    while (left > 0 && !a->closing) {
        if (a->hdr_len < CRIC_SHIM_FRAME_HDR) {
            size_t k = CRIC_SHIM_FRAME_HDR - a->hdr_len;
            if (k > left)
                k = left;
            memcpy(a->hdr + a->hdr_len, p, k);
            a->hdr_len += k;
            p += k;
            left -= k;
            if (a->hdr_len == CRIC_SHIM_FRAME_HDR) {
                a->remaining = cric_shim_get_u32(a->hdr + 1);
                if (a->remaining == 0)
                    a->hdr_len = 0;
            }
            continue;
        }
        size_t k = left < a->remaining ? left : a->remaining;
        uint8_t type = a->hdr[0];
        if ((type == CRIC_SHIM_FRAME_STDOUT || type == CRIC_SHIM_FRAME_STDERR) && a->cbs.on_output)
            a->cbs.on_output(a, type, p, k, a->data);
        p += k;
        left -= k;
        a->remaining -= (uint32_t)k;
        if (a->remaining == 0)
            a->hdr_len = 0;
    }
}

static void attach_connected(uv_connect_t *req, int status)
{
    cric_shim_attach *a = req->data;
    if (a->closing)
        return;
    if (status < 0) {
        attach_end(a, status == UV_ENOENT ? -ESRCH : status);
        return;
    }
    uv_read_start((uv_stream_t *)&a->pipe, attach_alloc, attach_read);
}

int cric_shim_attach_open(uv_loop_t *loop, const char *state_dir, const struct cric_shim_attach_cbs *cbs,
                          void *data, cric_shim_attach **out, cric_error **err)
{
    _cleanup_free_ char *path = NULL;
    if (asprintf(&path, "%s/" CRIC_SHIM_ATTACH_SOCK, state_dir) < 0)
        return cric_error_sys(err, -ENOMEM, "attach to '%s'", state_dir);
    int r = check_sock_path(path, err);
    if (r < 0)
        return r;
    cric_shim_attach *a = calloc(1, sizeof(*a));
    if (!a)
        return cric_error_sys(err, -ENOMEM, "attach to '%s'", state_dir);
    a->cbs = *cbs;
    a->data = data;
    uv_pipe_init(loop, &a->pipe, 0);
    a->pipe.data = a->connect.data = a;
    uv_pipe_connect(&a->connect, &a->pipe, path, attach_connected);
    *out = a;
    return 0;
}

int cric_shim_attach_write(cric_shim_attach *a, const void *buf, size_t len)
{
    if (a->closing)
        return -EPIPE;
    const char *p = buf;
    while (len > 0) {
        size_t k = len > CRIC_SHIM_FRAME_MAX ? CRIC_SHIM_FRAME_MAX : len;
        int r = send_frame((uv_stream_t *)&a->pipe, CRIC_SHIM_FRAME_STDIN, p, k);
        if (r < 0)
            return r;
        p += k;
        len -= k;
    }
    return 0;
}

int cric_shim_attach_close_stdin(cric_shim_attach *a)
{
    return a->closing ? -EPIPE : send_frame((uv_stream_t *)&a->pipe, CRIC_SHIM_FRAME_CLOSE_STDIN, NULL, 0);
}

int cric_shim_attach_resize(cric_shim_attach *a, unsigned rows, unsigned cols)
{
    if (a->closing)
        return -EPIPE;
    if (rows > 65535 || cols > 65535)
        return -EINVAL;
    unsigned char p[4] = {(unsigned char)(rows >> 8), (unsigned char)rows, (unsigned char)(cols >> 8),
                          (unsigned char)cols};
    return send_frame((uv_stream_t *)&a->pipe, CRIC_SHIM_FRAME_RESIZE, p, 4);
}

void cric_shim_attach_close(cric_shim_attach *a)
{
    attach_end(a, 0);
}
