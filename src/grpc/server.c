/* The gRPC server: method table, the listening unix socket, shutdown. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "grpc/internal.h"
#include "util/cleanup.h"
#include "util/fs.h"

int cric_server_new(uv_loop_t *loop, const struct cric_server_opts *opts, cric_server **out, cric_error **err)
{
    cric_server *s = calloc(1, sizeof(*s));
    if (!s)
        return cric_error_new(err, -ENOMEM, "grpc server: out of memory");
    s->loop = loop;
    s->socket_path = opts->socket_path ? strdup(opts->socket_path) : NULL;
    if (opts->socket_path && !s->socket_path) {
        free(s);
        return cric_error_new(err, -ENOMEM, "grpc server: out of memory");
    }
    s->max_recv = opts->max_recv_msg_size ? opts->max_recv_msg_size : 16u << 20;
    s->max_send = opts->max_send_msg_size ? opts->max_send_msg_size : 16u << 20;
    s->max_streams = opts->max_concurrent_streams ? opts->max_concurrent_streams : 1000;
    *out = s;
    return 0;
}

int cric_server_register(cric_server *s, const char *path, const ProtobufCMessageDescriptor *in,
                         bool server_streaming, cric_method_fn fn, void *ctx)
{
    for (size_t i = 0; i < s->n_methods; i++) {
        if (strcmp(s->methods[i].path, path) == 0) {
            /* Re-registering replaces: lets a service take over a stub. */
            s->methods[i] = (struct cric__method){ s->methods[i].path, in, server_streaming, fn, ctx };
            return 0;
        }
    }
    struct cric__method *m = realloc(s->methods, (s->n_methods + 1) * sizeof(*m));
    if (!m)
        return -ENOMEM;
    s->methods = m;
    char *p = strdup(path);
    if (!p)
        return -ENOMEM;
    s->methods[s->n_methods++] = (struct cric__method){ p, in, server_streaming, fn, ctx };
    return 0;
}

const struct cric__method *cric__server_find(const cric_server *s, const char *path, size_t len)
{
    for (size_t i = 0; i < s->n_methods; i++)
        if (strlen(s->methods[i].path) == len && memcmp(s->methods[i].path, path, len) == 0)
            return &s->methods[i];
    return NULL;
}

static void on_connection(uv_stream_t *l, int status)
{
    cric_server *s = l->data;
    if (status < 0 || s->shutting_down)
        return;
    struct cric__conn *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->srv = s;
    if (uv_pipe_init(s->loop, &c->pipe, 0) < 0) {
        free(c);
        return;
    }
    c->pipe.data = c;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    if (uv_accept(l, (uv_stream_t *)&c->pipe) < 0 || cric__conn_init_session(c, NULL) < 0) {
        cric__conn_close(c);
        return;
    }
}

/* A socket file that exists: a live listener makes start fail, a dead one
 * (ECONNREFUSED) is removed; anything that is not a socket is left alone. */
static int clear_stale_socket(const char *path, cric_error **err)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : cric_error_sys(err, -errno, "stat '%s'", path);
    if (!S_ISSOCK(st.st_mode))
        return cric_error_new(err, -EEXIST, "listen on '%s': exists and is not a socket", path);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sa.sun_path))
        return cric_error_new(err, -ENAMETOOLONG, "listen on '%s': path too long for a unix socket", path);
    strcpy(sa.sun_path, path);
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return cric_error_sys(err, -errno, "socket");
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
        return cric_error_new(err, -EADDRINUSE, "listen on '%s': another server is running on it", path);
    if (errno != ECONNREFUSED)
        return cric_error_sys(err, -errno, "listen on '%s': probing the existing socket", path);
    if (unlink(path) < 0 && errno != ENOENT)
        return cric_error_sys(err, -errno, "remove stale socket '%s'", path);
    return 0;
}

static void on_handle_closed(uv_handle_t *h);

int cric_server_start(cric_server *s, cric_error **err)
{
    int r;
    const char *path = s->socket_path;
    if (!path || !*path)
        return cric_error_new(err, -EINVAL, "grpc server: no socket path");
    _cleanup_free_ char *dir = strdup(path);
    if (!dir)
        return -ENOMEM;
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = 0;
        r = cric_mkdir_p(dir, 0755, err);
        if (r < 0)
            return r;
    }
    r = clear_stale_socket(path, err);
    if (r < 0)
        return r;
    /* A peer that hangs up while we write must cost an EPIPE, not the process. */
    signal(SIGPIPE, SIG_IGN);
    /* Bind and listen on a temporary name, then rename: the socket appears
     * only once it accepts, so "the file exists" means "ready". */
    _cleanup_free_ char *tmp = NULL;
    if (asprintf(&tmp, "%s.%d.tmp", path, (int)getpid()) < 0)
        return cric_error_new(err, -ENOMEM, "out of memory");
    unlink(tmp);
    r = uv_pipe_init(s->loop, &s->listener, 0);
    if (r < 0)
        return cric_error_new(err, r, "listen on '%s': %s", path, uv_strerror(r));
    s->listener.data = s;
    r = uv_pipe_bind(&s->listener, tmp);
    if (r < 0) {
        cric_error_new(err, r, "bind '%s': %s", tmp, uv_strerror(r));
        goto fail;
    }
    if (chmod(tmp, 0660) < 0) {
        r = cric_error_sys(err, -errno, "chmod '%s'", tmp);
        goto fail_unlink;
    }
    r = uv_listen((uv_stream_t *)&s->listener, 511, on_connection);
    if (r < 0) {
        cric_error_new(err, r, "listen on '%s': %s", path, uv_strerror(r));
        goto fail_unlink;
    }
    if (rename(tmp, path) < 0) {
        r = cric_error_sys(err, -errno, "rename '%s' to '%s'", tmp, path);
        goto fail_unlink;
    }
    s->listening = true;
    return 0;
fail_unlink:
    unlink(tmp);
fail:
    s->pending_closes++;
    uv_close((uv_handle_t *)&s->listener, on_handle_closed);
    return r;
}

static void maybe_done(cric_server *s)
{
    if (!s->shutting_down || s->shutdown_done || s->conns || s->pending_closes)
        return;
    if (s->grace_active) {
        s->grace_active = false;
        s->pending_closes++;
        uv_close((uv_handle_t *)&s->grace, on_handle_closed);
        return;
    }
    s->shutdown_done = true;
    if (s->shutdown_cb)
        s->shutdown_cb(s->shutdown_data);
}

static void server_free_now(cric_server *s)
{
    for (size_t i = 0; i < s->n_methods; i++)
        free(s->methods[i].path);
    free(s->methods);
    free(s->socket_path);
    free(s);
}

static void on_handle_closed(uv_handle_t *h)
{
    cric_server *s = h->data;
    s->pending_closes--;
    if (s->free_requested) {
        if (!s->pending_closes)
            server_free_now(s);
        return;
    }
    maybe_done(s);
}

void cric__server_conn_gone(cric_server *s) { maybe_done(s); }

static void on_grace(uv_timer_t *t)
{
    cric_server *s = t->data;
    /* Grace is over: drop what is still running; handlers that answer later
     * see a cancelled call. */
    for (struct cric__conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        cric__conn_close(c);
    }
}

void cric_server_shutdown(cric_server *s, uint64_t grace_ms, void (*cb)(void *), void *data)
{
    if (s->shutting_down)
        return;
    s->shutting_down = true;
    s->shutdown_cb = cb;
    s->shutdown_data = data;
    if (s->listening) {
        s->listening = false;
        s->pending_closes++;
        uv_close((uv_handle_t *)&s->listener, on_handle_closed);
        unlink(s->socket_path);
    }
    uv_timer_init(s->loop, &s->grace);
    s->grace.data = s;
    s->grace_active = true;
    uv_timer_start(&s->grace, on_grace, grace_ms, 0);
    for (size_t i = 0; i < s->n_on_shutdown; i++)
        s->on_shutdown[i].cb(s->on_shutdown[i].data);
    for (struct cric__conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        cric__conn_goaway(c);
    }
    maybe_done(s);
}

int cric_server_on_shutdown(cric_server *s, void (*cb)(void *data), void *data)
{
    if (s->n_on_shutdown == sizeof(s->on_shutdown) / sizeof(s->on_shutdown[0]))
        return -ENOSPC;
    s->on_shutdown[s->n_on_shutdown].cb = cb;
    s->on_shutdown[s->n_on_shutdown++].data = data;
    return 0;
}

void cric_server_free(cric_server *s)
{
    if (!s)
        return;
    if (s->pending_closes) {
        /* A failed start is still closing its listener: finish in its callback. */
        s->free_requested = true;
        return;
    }
    server_free_now(s);
}
