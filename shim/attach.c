/* Attach and control sockets: frames per shim_proto.h.  Output is fanned
 * out to every attach client; one that lags more than CSHIM_CLIENT_BACKLOG
 * behind is disconnected so it can never hold the container back. */
#define _GNU_SOURCE
#include "shim/cshim.h"

#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

static int listen_unix(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    unlink(path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

static void ep_set(struct cshim_srv *s, int op, int fd, uint32_t events, uint64_t tag)
{
    struct epoll_event ev = {.events = events, .data.u64 = tag};
    epoll_ctl(s->epfd, op, fd, &ev);
}

int cshim_srv_listen(struct cshim_srv *s, const char *state_dir)
{
    for (int i = 0; i < CSHIM_CLIENTS_MAX; i++)
        s->clients[i].fd = -1;
    int r = cshim_path(s->attach_path, state_dir, CRIC_SHIM_ATTACH_SOCK);
    if (r == 0)
        r = cshim_path(s->control_path, state_dir, CRIC_SHIM_CONTROL_SOCK);
    if (r < 0)
        return r;
    s->attach_fd = listen_unix(s->attach_path);
    if (s->attach_fd < 0)
        return s->attach_fd;
    s->control_fd = listen_unix(s->control_path);
    if (s->control_fd < 0)
        return s->control_fd;
    ep_set(s, EPOLL_CTL_ADD, s->attach_fd, EPOLLIN, CSHIM_TAG(CSHIM_EV_ATTACH_LISTEN, 0));
    ep_set(s, EPOLL_CTL_ADD, s->control_fd, EPOLLIN, CSHIM_TAG(CSHIM_EV_CONTROL_LISTEN, 0));
    return 0;
}

static void client_close(struct cshim_srv *s, struct cshim_client *c)
{
    if (c->fd < 0)
        return;
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->out);
    free(c->in);
    memset(c, 0, sizeof(*c));
    c->fd = -1;
}

void cshim_srv_accept(struct cshim_srv *s, int listen_fd, bool attach)
{
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
            return;
        int i = 0;
        while (i < CSHIM_CLIENTS_MAX && s->clients[i].fd >= 0)
            i++;
        if (i == CSHIM_CLIENTS_MAX) {
            cshim_warn("too many attach/control connections, refusing one");
            close(fd);
            continue;
        }
        struct cshim_client *c = &s->clients[i];
        memset(c, 0, sizeof(*c));
        c->in = malloc(CSHIM_CLIENT_IN);
        if (!c->in) {
            close(fd);
            c->fd = -1;
            continue;
        }
        c->fd = fd;
        c->attach = attach;
        ep_set(s, EPOLL_CTL_ADD, fd, EPOLLIN, CSHIM_TAG(CSHIM_EV_CLIENT, i));
    }
}

static void client_update(struct cshim_srv *s, int idx)
{
    struct cshim_client *c = &s->clients[idx];
    uint32_t ev = (c->paused ? 0 : EPOLLIN) | (c->out_len ? EPOLLOUT : 0);
    ep_set(s, EPOLL_CTL_MOD, c->fd, ev, CSHIM_TAG(CSHIM_EV_CLIENT, idx));
}

/* Queues bytes for a client; false if it lags too far behind (then closed). */
static bool client_send(struct cshim_srv *s, int idx, const void *buf, size_t len)
{
    struct cshim_client *c = &s->clients[idx];
    const char *p = buf;
    if (c->out_len == 0) {
        while (len > 0) {
            ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN)
                    break;
                client_close(s, c);
                return false;
            }
            p += n;
            len -= (size_t)n;
        }
        if (len == 0)
            return true;
    }
    if (c->out_len + len > CSHIM_CLIENT_BACKLOG) {
        cshim_warn("attach client too slow, disconnecting it");
        client_close(s, c);
        return false;
    }
    if (c->out_len + len > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 65536;
        while (cap < c->out_len + len)
            cap *= 2;
        char *o = realloc(c->out, cap);
        if (!o) {
            client_close(s, c);
            return false;
        }
        c->out = o;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, p, len);
    bool was_empty = c->out_len == 0;
    c->out_len += len;
    if (was_empty)
        client_update(s, idx);
    return true;
}

void cshim_srv_broadcast(struct cshim_srv *s, int stream, const char *buf, size_t len)
{
    unsigned char hdr[CRIC_SHIM_FRAME_HDR];
    cric_shim_put_hdr(hdr, (uint8_t)stream, (uint32_t)len);
    for (int i = 0; i < CSHIM_CLIENTS_MAX; i++) {
        if (s->clients[i].fd < 0 || !s->clients[i].attach)
            continue;
        if (client_send(s, i, hdr, sizeof(hdr)))
            client_send(s, i, buf, len);
    }
}

static void stdin_close(struct cshim_srv *s)
{
    if (s->stdin_fd < 0)
        return;
    if (s->stdin_is_pty) {
        static const char eot = 4; /* ^D: EOF for the reader of a terminal */
        (void)!write(s->stdin_fd, &eot, 1);
        return;
    }
    if (s->stdin_watch)
        epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->stdin_fd, NULL);
    s->stdin_watch = false;
    close(s->stdin_fd);
    s->stdin_fd = -1;
}

/* Returns bytes taken (may be fewer than len if stdin is full: then the
 * client is paused until stdin drains). */
static size_t stdin_feed(struct cshim_srv *s, int idx, const char *buf, size_t len)
{
    if (s->stdin_fd < 0)
        return len; /* stdin closed or never open: drop */
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(s->stdin_fd, buf + done, len - done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                s->clients[idx].paused = true;
                if (!s->stdin_watch) {
                    ep_set(s, EPOLL_CTL_ADD, s->stdin_fd, EPOLLOUT, CSHIM_TAG(CSHIM_EV_STDIN, 0));
                    s->stdin_watch = true;
                }
                return done;
            }
            return len; /* reader gone: drop */
        }
        done += (size_t)n;
    }
    return done;
}

static void ack(struct cshim_srv *s, int idx, int err)
{
    if (s->clients[idx].attach)
        return;
    unsigned char f[CRIC_SHIM_FRAME_HDR + 4];
    cric_shim_put_hdr(f, CRIC_SHIM_FRAME_ACK, 4);
    uint32_t e = (uint32_t)err;
    f[5] = (unsigned char)(e >> 24);
    f[6] = (unsigned char)(e >> 16);
    f[7] = (unsigned char)(e >> 8);
    f[8] = (unsigned char)e;
    client_send(s, idx, f, sizeof(f));
}

static int do_resize(struct cshim_srv *s, const unsigned char *p)
{
    if (s->pty_fd < 0)
        return ENOTTY;
    struct winsize ws = {.ws_row = (unsigned short)(p[0] << 8 | p[1]), .ws_col = (unsigned short)(p[2] << 8 | p[3])};
    return ioctl(s->pty_fd, TIOCSWINSZ, &ws) < 0 ? errno : 0;
}

/* Consumes c->in; false if the client was closed. */
static bool client_process(struct cshim_srv *s, int idx)
{
    struct cshim_client *c = &s->clients[idx];
    while (c->in_off < c->in_len && !c->paused) {
        char *p = c->in + c->in_off;
        size_t avail = c->in_len - c->in_off;
        if (c->hdr_len < CRIC_SHIM_FRAME_HDR) {
            size_t n = CRIC_SHIM_FRAME_HDR - c->hdr_len;
            if (n > avail)
                n = avail;
            memcpy(c->hdr + c->hdr_len, p, n);
            c->hdr_len += n;
            c->in_off += n;
            if (c->hdr_len < CRIC_SHIM_FRAME_HDR)
                break;
            c->remaining = cric_shim_get_u32(c->hdr + 1);
            c->small_len = 0;
            if (c->remaining > CRIC_SHIM_FRAME_MAX) {
                client_close(s, c);
                return false;
            }
        } else {
            uint8_t type = c->hdr[0];
            size_t n = avail < c->remaining ? avail : c->remaining;
            if (type == CRIC_SHIM_FRAME_STDIN) {
                n = stdin_feed(s, idx, p, n);
            } else if (type == CRIC_SHIM_FRAME_RESIZE || type == CRIC_SHIM_FRAME_SIGNAL) {
                size_t k = n;
                if (c->small_len + k > sizeof(c->small))
                    k = sizeof(c->small) - c->small_len;
                memcpy(c->small + c->small_len, p, k);
                c->small_len += k;
            }
            c->in_off += n;
            c->remaining -= (uint32_t)n;
        }
        if (c->hdr_len == CRIC_SHIM_FRAME_HDR && c->remaining == 0) {
            int e = 0;
            switch (c->hdr[0]) {
            case CRIC_SHIM_FRAME_STDIN:
                break;
            case CRIC_SHIM_FRAME_CLOSE_STDIN:
                stdin_close(s);
                break;
            case CRIC_SHIM_FRAME_RESIZE:
                e = c->small_len == 4 ? do_resize(s, c->small) : EINVAL;
                break;
            case CRIC_SHIM_FRAME_SIGNAL:
                if (c->small_len != 1 || c->small[0] == 0 || c->small[0] >= 65)
                    e = EINVAL;
                else if (s->container <= 0)
                    e = ESRCH;
                else if (kill(s->container, c->small[0]) < 0)
                    e = errno;
                break;
            case CRIC_SHIM_FRAME_REOPEN_LOG:
                e = -cshim_logw_reopen(s->logw);
                if (e)
                    cshim_warn("reopening log '%s': %s", s->logw->path, strerror(e));
                break;
            default:
                e = EINVAL;
            }
            if (c->hdr[0] != CRIC_SHIM_FRAME_STDIN)
                ack(s, idx, e);
            if (c->fd < 0)
                return false;
            c->hdr_len = 0;
        }
    }
    if (c->in_off == c->in_len)
        c->in_off = c->in_len = 0;
    return true;
}

void cshim_srv_client_event(struct cshim_srv *s, int idx, uint32_t events)
{
    struct cshim_client *c = &s->clients[idx];
    if (c->fd < 0)
        return;
    if ((events & EPOLLOUT) && c->out_len) {
        ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            client_close(s, c);
            return;
        }
        if (n > 0) {
            memmove(c->out, c->out + n, c->out_len - (size_t)n);
            c->out_len -= (size_t)n;
            if (c->out_len == 0)
                client_update(s, idx);
        }
    }
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !c->paused) {
        ssize_t n = read(c->fd, c->in, CSHIM_CLIENT_IN);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            client_close(s, c);
            return;
        }
        if (n > 0) {
            c->in_off = 0;
            c->in_len = (size_t)n;
            if (client_process(s, idx) && c->paused)
                client_update(s, idx);
        }
    }
}

void cshim_srv_stdin_writable(struct cshim_srv *s)
{
    if (s->stdin_watch && s->stdin_fd >= 0)
        epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->stdin_fd, NULL);
    s->stdin_watch = false;
    for (int i = 0; i < CSHIM_CLIENTS_MAX; i++) {
        struct cshim_client *c = &s->clients[i];
        if (c->fd < 0 || !c->paused)
            continue;
        c->paused = false;
        if (client_process(s, i) && c->fd >= 0)
            client_update(s, i);
    }
}

void cshim_srv_shutdown(struct cshim_srv *s)
{
    for (int i = 0; i < CSHIM_CLIENTS_MAX; i++) {
        struct cshim_client *c = &s->clients[i];
        if (c->fd >= 0 && c->out_len) {
            /* last output: a short blocking flush */
            int fl = fcntl(c->fd, F_GETFL);
            fcntl(c->fd, F_SETFL, fl & ~O_NONBLOCK);
            struct timeval tv = {1, 0};
            setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
            cshim_write_all(c->fd, c->out, c->out_len);
        }
        client_close(s, c);
    }
    if (s->attach_fd >= 0) {
        close(s->attach_fd);
        unlink(s->attach_path);
    }
    if (s->control_fd >= 0) {
        close(s->control_fd);
        unlink(s->control_path);
    }
    s->attach_fd = s->control_fd = -1;
}
