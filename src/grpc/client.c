/* The blocking gRPC client: one nghttp2 client session on a blocking unix
 * socket, driven with poll() one call at a time. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#include "grpc/client.h"
#include "grpc/framing.h"
#include "util/cleanup.h"

/* Messages a client accepts: generous, the server bounds what it sends. */
#define CLIENT_MAX_RECV (64u << 20)

struct cstream {
    int32_t id;
    const ProtobufCMessageDescriptor *desc;
    bool unary;
    cric_client_stream_cb cb;
    void *cb_data;
    int cb_rc;
    struct cric_grpc_reader reader;
    int http_status;
    int grpc_status; /* -1 until seen */
    char *grpc_msg;
    bool closed;
    uint32_t rst_code;
    ProtobufCMessage *resp;
    bool bad_message; /* undecodable or extra message */
    const uint8_t *body;
    size_t body_len, body_off;
};

struct cric_client {
    int fd;
    nghttp2_session *h2;
    struct cstream *cur;
    char *endpoint;
    bool broken; /* connection unusable */
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static bool hdr_is(const uint8_t *n, size_t len, const char *want)
{
    return strlen(want) == len && memcmp(n, want, len) == 0;
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *user)
{
    struct cric_client *c = user;
    struct cstream *st = c->cur;
    if (!st || frame->hd.stream_id != st->id)
        return 0;
    if (hdr_is(name, namelen, ":status")) {
        int v = 0;
        for (size_t i = 0; i < valuelen && i < 3; i++)
            v = v * 10 + (value[i] >= '0' && value[i] <= '9' ? value[i] - '0' : 0);
        st->http_status = v;
    } else if (hdr_is(name, namelen, "grpc-status")) {
        int v;
        st->grpc_status = cric_grpc_status_parse((const char *)value, valuelen, &v) == 0 ? v : GRPC_UNKNOWN;
    } else if (hdr_is(name, namelen, "grpc-message")) {
        free(st->grpc_msg);
        st->grpc_msg = cric_grpc_percent_decode((const char *)value, valuelen);
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t stream_id, const uint8_t *data, size_t len,
                         void *user)
{
    struct cric_client *c = user;
    struct cstream *st = c->cur;
    if (!st || stream_id != st->id || st->cb_rc || st->bad_message)
        return 0;
    while (len > 0) {
        size_t used;
        int r = cric_grpc_reader_feed(&st->reader, data, len, &used);
        data += used;
        len -= used;
        if (r < 0) {
            st->bad_message = true;
            nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_CANCEL);
            return 0;
        }
        if (r == 0)
            continue;
        size_t n;
        static const uint8_t empty[1];
        uint8_t *b = cric_grpc_reader_take(&st->reader, &n);
        ProtobufCMessage *m = protobuf_c_message_unpack(st->desc, NULL, n, b ? b : empty);
        free(b);
        if (!m || (st->unary && st->resp)) {
            if (m)
                protobuf_c_message_free_unpacked(m, NULL);
            st->bad_message = true;
            nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_CANCEL);
            return 0;
        }
        if (st->unary) {
            st->resp = m;
            continue;
        }
        st->cb_rc = st->cb(m, st->cb_data);
        protobuf_c_message_free_unpacked(m, NULL);
        if (st->cb_rc) {
            nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_CANCEL);
            return 0;
        }
    }
    return 0;
}

static int on_stream_close(nghttp2_session *h2, int32_t stream_id, uint32_t error_code, void *user)
{
    struct cric_client *c = user;
    if (c->cur && c->cur->id == stream_id) {
        c->cur->closed = true;
        c->cur->rst_code = error_code;
    }
    return 0;
}

static ssize_t read_body(nghttp2_session *h2, int32_t stream_id, uint8_t *buf, size_t length, uint32_t *flags,
                         nghttp2_data_source *src, void *user)
{
    struct cstream *st = src->ptr;
    size_t n = st->body_len - st->body_off;
    if (n > length)
        n = length;
    memcpy(buf, st->body + st->body_off, n);
    st->body_off += n;
    if (st->body_off == st->body_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static int parse_endpoint(const char *ep, struct sockaddr_un *sa, cric_error **err)
{
    const char *path = ep;
    if (strncmp(ep, "unix://", 7) == 0)
        path = ep + 7;
    else if (strncmp(ep, "unix:", 5) == 0)
        path = ep + 5;
    if (path[0] != '/')
        return cric_error_new(err, -EINVAL, "endpoint '%s': expected unix:///path, unix:/path or /path", ep);
    if (strlen(path) >= sizeof(sa->sun_path))
        return cric_error_new(err, -ENAMETOOLONG, "endpoint '%s': socket path too long", ep);
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    strcpy(sa->sun_path, path);
    return 0;
}

/* Sends everything nghttp2 has queued; blocks (bounded by deadline). */
static int flush_out(struct cric_client *c, uint64_t deadline, cric_error **err)
{
    for (;;) {
        const uint8_t *p;
        ssize_t n = nghttp2_session_mem_send(c->h2, &p);
        if (n < 0)
            return cric_error_new(err, -EPROTO, "%s: HTTP/2: %s", c->endpoint, nghttp2_strerror((int)n));
        if (n == 0)
            return 0;
        size_t off = 0;
        while (off < (size_t)n) {
            ssize_t w = send(c->fd, p + off, (size_t)n - off, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w >= 0) {
                off += (size_t)w;
                continue;
            }
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                return cric_error_sys(err, -errno, "%s: send", c->endpoint);
            struct pollfd pfd = { c->fd, POLLOUT, 0 };
            uint64_t now = now_ms();
            int to = deadline ? (deadline > now ? (int)(deadline - now) : 0) : -1;
            int r = poll(&pfd, 1, to);
            if (r == 0)
                return cric_error_new(err, -ETIMEDOUT, "%s: send: timed out", c->endpoint);
            if (r < 0 && errno != EINTR)
                return cric_error_sys(err, -errno, "%s: poll", c->endpoint);
        }
    }
}

/* Reads once (waiting at most until deadline); returns 0, -ETIMEDOUT, <0. */
static int read_in(struct cric_client *c, uint64_t deadline, cric_error **err)
{
    struct pollfd pfd = { c->fd, POLLIN, 0 };
    uint64_t now = now_ms();
    int to = deadline ? (deadline > now ? (int)(deadline - now) : 0) : -1;
    int r = poll(&pfd, 1, to);
    if (r == 0)
        return -ETIMEDOUT;
    if (r < 0)
        return errno == EINTR ? 0 : cric_error_sys(err, -errno, "%s: poll", c->endpoint);
    uint8_t buf[65536];
    ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return 0;
        return cric_error_sys(err, -errno, "%s: recv", c->endpoint);
    }
    if (n == 0)
        return cric_error_new(err, -ECONNRESET, "%s: connection closed by the server", c->endpoint);
    ssize_t m = nghttp2_session_mem_recv(c->h2, buf, (size_t)n);
    if (m < 0)
        return cric_error_new(err, -EPROTO, "%s: HTTP/2: %s", c->endpoint, nghttp2_strerror((int)m));
    return 0;
}

int cric_client_connect(const char *endpoint, uint64_t timeout_ms, cric_client **out, cric_error **err)
{
    struct sockaddr_un sa;
    int r = parse_endpoint(endpoint, &sa, err);
    if (r < 0)
        return r;
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return cric_error_sys(err, -errno, "socket");
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return cric_error_sys(err, -errno, "connect to '%s'", sa.sun_path);
    struct cric_client *c = calloc(1, sizeof(*c));
    if (!c || !(c->endpoint = strdup(sa.sun_path))) {
        free(c);
        return cric_error_new(err, -ENOMEM, "out of memory");
    }
    c->fd = -1;
    nghttp2_session_callbacks *cbs;
    if (nghttp2_session_callbacks_new(&cbs) != 0) {
        cric_client_free(c);
        return cric_error_new(err, -ENOMEM, "out of memory");
    }
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    r = nghttp2_session_client_new(&c->h2, cbs, c);
    nghttp2_session_callbacks_del(cbs);
    if (r != 0) {
        c->h2 = NULL;
        cric_client_free(c);
        return cric_error_new(err, -ENOMEM, "nghttp2: %s", nghttp2_strerror(r));
    }
    c->fd = TAKE_FD(fd);
    nghttp2_settings_entry iv[] = {
        { NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
        { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 4 << 20 },
    };
    nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, 2);
    nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, 16 << 20);
    r = flush_out(c, timeout_ms ? now_ms() + timeout_ms : 0, err);
    if (r < 0) {
        cric_client_free(c);
        return r;
    }
    *out = c;
    return 0;
}

static int do_call(cric_client *c, const char *path, const ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *resp_desc, uint64_t timeout_ms, bool unary,
                   cric_client_stream_cb cb, void *data, ProtobufCMessage **resp, int *status,
                   char **status_msg, cric_error **err)
{
    if (c->broken)
        return cric_error_new(err, -ENOTCONN, "%s: connection is broken", c->endpoint);
    _cleanup_free_ uint8_t *body = NULL;
    size_t body_len;
    int r = cric_grpc_message_pack(req, UINT32_MAX, &body, &body_len);
    if (r < 0)
        return cric_error_new(err, r, "%s: cannot pack the request", path);
    struct cstream st = {
        .desc = resp_desc, .unary = unary, .cb = cb, .cb_data = data, .grpc_status = -1,
        .body = body, .body_len = body_len,
    };
    st.reader.max = CLIENT_MAX_RECV;
    char tbuf[32];
    nghttp2_nv nv[8];
    size_t n = 0;
#define ADD(k, v) nv[n++] = (nghttp2_nv){ (uint8_t *)(k), (uint8_t *)(v), strlen(k), strlen(v), NGHTTP2_NV_FLAG_NONE }
    ADD(":method", "POST");
    ADD(":scheme", "http");
    ADD(":path", path);
    ADD(":authority", "localhost");
    ADD("content-type", "application/grpc");
    ADD("te", "trailers");
    ADD("user-agent", "cricd-client/" PACKAGE_VERSION);
    if (timeout_ms) {
        cric_grpc_timeout_format(timeout_ms, tbuf, sizeof(tbuf));
        ADD("grpc-timeout", tbuf);
    }
#undef ADD
    nghttp2_data_provider prd = { .source.ptr = &st, .read_callback = read_body };
    st.id = nghttp2_submit_request(c->h2, NULL, nv, n, &prd, NULL);
    if (st.id < 0)
        return cric_error_new(err, -EPROTO, "%s: cannot start a stream: %s", c->endpoint, nghttp2_strerror(st.id));
    c->cur = &st;
    /* The server enforces the deadline; the client waits a little longer so
     * that the server's status wins, and gives up on its own after that. */
    uint64_t deadline = timeout_ms ? now_ms() + timeout_ms + 200 : 0;
    bool timed_out = false;
    r = 0;
    while (!st.closed) {
        r = flush_out(c, deadline, err);
        if (r < 0)
            break;
        if (st.closed)
            break;
        r = read_in(c, deadline, err);
        if (r == -ETIMEDOUT) {
            timed_out = true;
            nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, st.id, NGHTTP2_CANCEL);
            flush_out(c, now_ms() + 100, NULL);
            /* The stream must be gone before st (on this stack) is: else
             * the connection cannot be used again. */
            if (!st.closed)
                c->broken = true;
            r = 0;
            break;
        }
        if (r < 0)
            break;
    }
    if (r >= 0 && st.closed)
        r = flush_out(c, deadline, err); /* window updates, RST acks */
    c->cur = NULL;
    cric_grpc_reader_free(&st.reader);
    if (r < 0) {
        c->broken = true;
        if (st.resp)
            protobuf_c_message_free_unpacked(st.resp, NULL);
        free(st.grpc_msg);
        return r;
    }
    if (st.cb_rc) {
        free(st.grpc_msg);
        return st.cb_rc;
    }
    int code;
    char *msg = TAKE_PTR(st.grpc_msg);
    if (timed_out) {
        code = GRPC_DEADLINE_EXCEEDED;
        free(msg);
        msg = strdup("deadline exceeded (no answer from the server in time)");
    } else if (st.bad_message) {
        code = GRPC_INTERNAL;
        free(msg);
        msg = strdup("cannot decode the response message");
    } else if (st.grpc_status >= 0) {
        code = st.grpc_status;
    } else if (st.rst_code) {
        code = GRPC_UNAVAILABLE;
        free(msg);
        msg = NULL;
        if (asprintf(&msg, "stream reset by the server: %s", nghttp2_http2_strerror(st.rst_code)) < 0)
            msg = NULL;
    } else if (st.http_status != 200) {
        code = GRPC_UNKNOWN;
        free(msg);
        if (asprintf(&msg, "HTTP status %d", st.http_status) < 0)
            msg = NULL;
    } else {
        code = GRPC_INTERNAL;
        free(msg);
        msg = strdup("response without grpc-status");
    }
    if (code == GRPC_OK && unary && !st.resp) {
        code = GRPC_INTERNAL;
        msg = strdup("OK response without a message");
    }
    *status = code;
    if (unary) {
        if (code == GRPC_OK) {
            *resp = st.resp;
        } else {
            if (st.resp)
                protobuf_c_message_free_unpacked(st.resp, NULL);
            *resp = NULL;
        }
    }
    if (code == GRPC_OK) {
        free(msg);
        msg = NULL;
    }
    if (status_msg)
        *status_msg = msg;
    else
        free(msg);
    return 0;
}

int cric_client_call(cric_client *c, const char *path, const ProtobufCMessage *req,
                     const ProtobufCMessageDescriptor *resp_desc, uint64_t timeout_ms,
                     ProtobufCMessage **resp, int *status, char **status_msg, cric_error **err)
{
    return do_call(c, path, req, resp_desc, timeout_ms, true, NULL, NULL, resp, status, status_msg, err);
}

int cric_client_stream(cric_client *c, const char *path, const ProtobufCMessage *req,
                       const ProtobufCMessageDescriptor *resp_desc, uint64_t timeout_ms,
                       cric_client_stream_cb cb, void *data, int *status, char **status_msg, cric_error **err)
{
    return do_call(c, path, req, resp_desc, timeout_ms, false, cb, data, NULL, status, status_msg, err);
}

void cric_client_free(cric_client *c)
{
    if (!c)
        return;
    if (c->h2 && !c->broken) {
        nghttp2_session_terminate_session(c->h2, NGHTTP2_NO_ERROR);
        flush_out(c, now_ms() + 100, NULL);
    }
    nghttp2_session_del(c->h2);
    if (c->fd >= 0)
        close(c->fd);
    free(c->endpoint);
    free(c);
}
