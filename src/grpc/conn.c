/* One HTTP/2 connection: bytes in from the socket (or a buffer, for the
 * fuzz target) into nghttp2, frames out through uv_write. */
#include "config.h"

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/internal.h"

/* Output gathered per uv_write, at most. */
#define WRITE_CHUNK (256 * 1024)

struct write_req {
    uv_write_t req;
    struct cric__conn *conn;
    size_t len;
    uint8_t data[];
};

static bool header_is(const uint8_t *name, size_t len, const char *want)
{
    return strlen(want) == len && memcmp(name, want, len) == 0;
}

static int on_begin_headers(nghttp2_session *h2, const nghttp2_frame *frame, void *user)
{
    struct cric__conn *c = user;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    cric_call *call = cric__call_new(c, frame->hd.stream_id);
    if (!call)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    nghttp2_session_set_stream_user_data(h2, frame->hd.stream_id, call);
    return 0;
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *user)
{
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0; /* request trailers carry nothing we use */
    cric_call *call = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
    if (!call)
        return 0;
    call->header_bytes += namelen + valuelen + 32;
    if (call->header_bytes > CRIC__GRPC_MAX_HEADER_BYTES)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets just this stream */
    if (header_is(name, namelen, ":path")) {
        free(call->path);
        call->path = strndup((const char *)value, valuelen);
        if (!call->path)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    } else if (header_is(name, namelen, ":method")) {
        call->is_post = valuelen == 4 && memcmp(value, "POST", 4) == 0;
    } else if (header_is(name, namelen, "content-type")) {
        /* application/grpc, application/grpc+proto, application/grpc;... */
        call->content_type_ok = valuelen >= 16 && memcmp(value, "application/grpc", 16) == 0 &&
                                (valuelen == 16 || value[16] == '+' || value[16] == ';');
    } else if (header_is(name, namelen, "grpc-timeout")) {
        call->bad_timeout = cric_grpc_timeout_parse((const char *)value, valuelen, &call->timeout_ms) < 0;
        call->has_timeout = !call->bad_timeout;
    } else if (header_is(name, namelen, "grpc-encoding")) {
        call->bad_encoding = !(valuelen == 8 && memcmp(value, "identity", 8) == 0);
    }
    return 0;
}

static int on_frame_recv(nghttp2_session *h2, const nghttp2_frame *frame, void *user)
{
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
        return 0;
    cric_call *call = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
    if (!call)
        return 0;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
        cric__call_on_headers_done(call);
    if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
        cric__call_on_end_stream(call);
    return 0;
}

static int on_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t stream_id, const uint8_t *data, size_t len,
                         void *user)
{
    cric_call *call = nghttp2_session_get_stream_user_data(h2, stream_id);
    if (call)
        cric__call_on_data(call, data, len);
    return 0;
}

static int on_stream_close(nghttp2_session *h2, int32_t stream_id, uint32_t error_code, void *user)
{
    cric_call *call = nghttp2_session_get_stream_user_data(h2, stream_id);
    if (call) {
        nghttp2_session_set_stream_user_data(h2, stream_id, NULL);
        cric__call_detach(call);
    }
    return 0;
}

static void start_read(struct cric__conn *c);

int cric__conn_init_session(struct cric__conn *c, cric_error **err)
{
    nghttp2_session_callbacks *cbs;
    nghttp2_option *opt;
    int r;

    if (nghttp2_session_callbacks_new(&cbs) != 0)
        return cric_error_new(err, -ENOMEM, "grpc: out of memory");
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    if (nghttp2_option_new(&opt) != 0) {
        nghttp2_session_callbacks_del(cbs);
        return cric_error_new(err, -ENOMEM, "grpc: out of memory");
    }
    /* Bound what a peer can make us queue (pings, settings acks). */
    nghttp2_option_set_max_outbound_ack(opt, 1000);
    nghttp2_option_set_max_settings(opt, 64);
    r = nghttp2_session_server_new2(&c->h2, cbs, c, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    if (r != 0)
        return cric_error_new(err, -ENOMEM, "grpc: nghttp2 session: %s", nghttp2_strerror(r));

    nghttp2_settings_entry iv[] = {
        { NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, c->srv->max_streams },
        { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20 },
        { NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, CRIC__GRPC_MAX_HEADER_BYTES },
    };
    nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
    /* A larger connection window keeps big requests from stalling on updates. */
    nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, 16 << 20);
    if (!c->mem)
        start_read(c);
    cric__conn_flush(c);
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct cric__conn *c = h->data;
    *buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct cric__conn *c = s->data;
    if (n < 0) {
        /* EOF or error: a half-closed peer gets nothing more from us either. */
        cric__conn_close(c);
        return;
    }
    if (n > 0)
        cric__conn_feed(c, (const uint8_t *)buf->base, (size_t)n);
}

static void start_read(struct cric__conn *c)
{
    if (uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) < 0)
        cric__conn_close(c);
}

void cric__conn_feed(struct cric__conn *c, const uint8_t *data, size_t len)
{
    if (c->closing)
        return;
    c->in_recv = true;
    ssize_t n = nghttp2_session_mem_recv(c->h2, data, len);
    c->in_recv = false;
    if (n < 0) {
        /* Bad preface, flood, bad frame: say GOAWAY, then hang up. */
        if (nghttp2_session_terminate_session(c->h2, NGHTTP2_PROTOCOL_ERROR) != 0) {
            cric__conn_close(c);
            return;
        }
    }
    if (c->want_close) {
        cric__conn_close(c);
        return;
    }
    cric__conn_flush(c);
}

static void on_write(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    struct cric__conn *c = w->conn;
    free(w);
    c->writing = false;
    if (status < 0) {
        cric__conn_close(c);
        return;
    }
    cric__conn_flush(c);
}

void cric__conn_flush(struct cric__conn *c)
{
    if (c->in_recv || c->closing || c->writing)
        return;
    struct write_req *w = NULL;
    size_t cap = 0;
    for (;;) {
        const uint8_t *p;
        ssize_t n = nghttp2_session_mem_send(c->h2, &p);
        if (n < 0) {
            free(w);
            cric__conn_close(c);
            return;
        }
        if (n == 0)
            break;
        if (c->mem) {
            if (c->mem_out)
                c->mem_out(p, (size_t)n, c->mem_out_arg);
            continue;
        }
        if (!w || w->len + (size_t)n > cap) {
            size_t ncap = cap ? cap * 2 : 16384;
            while (ncap < (w ? w->len : 0) + (size_t)n)
                ncap *= 2;
            struct write_req *nw = realloc(w, sizeof(*w) + ncap);
            if (!nw) {
                free(w);
                cric__conn_close(c);
                return;
            }
            if (!w)
                nw->len = 0;
            w = nw;
            cap = ncap;
        }
        memcpy(w->data + w->len, p, (size_t)n);
        w->len += (size_t)n;
        if (w->len >= WRITE_CHUNK)
            break;
    }
    if (w) {
        w->conn = c;
        uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)w->len);
        if (uv_write(&w->req, (uv_stream_t *)&c->pipe, &b, 1, on_write) < 0) {
            free(w);
            cric__conn_close(c);
            return;
        }
        c->writing = true;
        return;
    }
    if (!nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2))
        cric__conn_close(c);
}

void cric__conn_goaway(struct cric__conn *c)
{
    if (c->goaway || c->closing)
        return;
    c->goaway = true;
    nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(c->h2),
                          NGHTTP2_NO_ERROR, NULL, 0);
    cric__conn_flush(c);
}

/* Every call still bound to the connection loses its stream. */
static void detach_calls(struct cric__conn *c)
{
    while (c->calls) {
        cric_call *call = c->calls;
        if (c->h2)
            nghttp2_session_set_stream_user_data(c->h2, call->stream_id, NULL);
        cric__call_detach(call); /* unlinks it */
    }
}

static void on_close(uv_handle_t *h)
{
    struct cric__conn *c = h->data;
    cric_server *s = c->srv;
    nghttp2_session_del(c->h2);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
    /* The last client gone: hand freed connection memory back to the kernel,
     * so that a burst of clients does not leave the idle daemon large. */
    if (!s->conns)
        malloc_trim(0);
    cric__server_conn_gone(s);
}

void cric__conn_close(struct cric__conn *c)
{
    if (c->closing)
        return;
    if (c->in_recv) {
        c->want_close = true;
        return;
    }
    c->closing = true;
    detach_calls(c);
    if (c->mem)
        return;
    uv_close((uv_handle_t *)&c->pipe, on_close);
}

int cric__conn_new_mem(cric_server *s, void (*out_cb)(const uint8_t *, size_t, void *), void *arg,
                       struct cric__conn **out, cric_error **err)
{
    struct cric__conn *c = calloc(1, sizeof(*c));
    if (!c)
        return cric_error_new(err, -ENOMEM, "grpc: out of memory");
    c->srv = s;
    c->mem = true;
    c->mem_out = out_cb;
    c->mem_out_arg = arg;
    int r = cric__conn_init_session(c, err);
    if (r < 0) {
        free(c);
        return r;
    }
    *out = c;
    return 0;
}

void cric__conn_free_mem(struct cric__conn *c)
{
    if (!c)
        return;
    c->in_recv = false;
    c->closing = true;
    detach_calls(c);
    nghttp2_session_del(c->h2);
    free(c);
}
