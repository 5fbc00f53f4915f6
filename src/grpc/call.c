/* One gRPC call: request validation and decoding, the handler's answer,
 * deadlines, and the response data provider. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/internal.h"
#include "util/log.h"

#define NV(n, v, vlen) { (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, (vlen), NGHTTP2_NV_FLAG_NONE }

cric_call *cric__call_new(struct cric__conn *c, int32_t stream_id)
{
    cric_call *call = calloc(1, sizeof(*call));
    if (!call)
        return NULL;
    call->conn = c;
    call->stream_id = stream_id;
    call->start_ns = uv_hrtime();
    call->reader.max = c->srv->max_recv;
    call->status = -1;
    call->next = c->calls;
    if (c->calls)
        c->calls->prev = call;
    c->calls = call;
    return call;
}

static void on_timer_closed(uv_handle_t *h) { free(h->data); }

static void call_free(cric_call *call)
{
    if (call->req)
        protobuf_c_message_free_unpacked(call->req, NULL);
    free(call->path);
    free(call->msg);
    free(call->out);
    free(call->status_msg);
    cric_grpc_reader_free(&call->reader);
    if (call->timer_init)
        uv_close((uv_handle_t *)&call->timer, on_timer_closed);
    else
        free(call);
}

/* The request bytes are no longer needed: free them, give back the budget. */
static void release_input(cric_call *call)
{
    cric_grpc_reader_free(&call->reader);
    free(call->msg);
    call->msg = NULL;
    if (call->conn)
        call->conn->in_bytes -= call->in_counted;
    call->in_counted = 0;
}

static void stop_timer(cric_call *call)
{
    if (call->timer_init)
        uv_timer_stop(&call->timer);
}

static void log_call(const cric_call *call, int status, const char *msg)
{
    LOG_DEBUG("grpc %s: %s%s%s (%.3f ms)", call->path ? call->path : "?", cric_grpc_status_name(status),
              msg ? ": " : "", msg ? msg : "", (double)(uv_hrtime() - call->start_ns) / 1e6);
}

void cric__call_detach(cric_call *call)
{
    if (!call->responded && call->path)
        log_call(call, GRPC_CANCELLED, "stream closed before the answer");
    struct cric__conn *c = call->conn;
    release_input(call);
    if (c) {
        if (call->prev)
            call->prev->next = call->next;
        else
            c->calls = call->next;
        if (call->next)
            call->next->prev = call->prev;
        call->prev = call->next = NULL;
        call->conn = NULL;
    }
    stop_timer(call);
    if (call->dispatched && !call->handler_done) {
        /* The handler still owns the call; it is freed by its answer. */
        bool was = call->cancelled;
        call->cancelled = true;
        if (!was && call->on_cancel)
            call->on_cancel(call, call->on_cancel_data); /* may answer, and so free, the call */
        return;
    }
    call_free(call);
}


/* Longest grpc-message sent, encoded: grpc-core refuses more than 8 KiB of
 * metadata by default, and Trailers-Only carries :status and more too. */
#define MAX_STATUS_MSG 4096

static int status_headers(nghttp2_nv *nv, size_t i, char *code, size_t code_size, int status, const char *msg,
                          char **enc)
{
    snprintf(code, code_size, "%d", status);
    nv[i++] = (nghttp2_nv)NV("grpc-status", code, strlen(code));
    if (msg && *msg) {
        size_t len = 0, cost = 0;
        for (; msg[len]; len++) {
            unsigned char ch = (unsigned char)msg[len];
            cost += (ch < 0x20 || ch > 0x7e || ch == '%') ? 3 : 1;
            if (cost > MAX_STATUS_MSG)
                break;
        }
        if (msg[len]) {
            /* cut on a UTF-8 character boundary */
            while (len > 0 && ((unsigned char)msg[len] & 0xc0) == 0x80)
                len--;
            char *cut = strndup(msg, len);
            *enc = cut ? cric_grpc_percent_encode(cut) : NULL;
            free(cut);
        } else {
            *enc = cric_grpc_percent_encode(msg);
        }
        if (*enc)
            nv[i++] = (nghttp2_nv)NV("grpc-message", *enc, strlen(*enc));
    }
    return (int)i;
}

/* The final status on the wire: Trailers-Only when no response HEADERS went
 * out yet, else trailers after the queued messages. */
static void respond(cric_call *call, int status, const char *msg)
{
    struct cric__conn *c = call->conn;
    if (call->responded || !c)
        return;
    call->responded = true;
    stop_timer(call);
    release_input(call);
    log_call(call, status, msg);
    if (!call->headers_sent) {
        nghttp2_nv nv[6] = {
            NV(":status", "200", 3),
            NV("content-type", "application/grpc", 16),
        };
        char code[16];
        char *enc = NULL;
        size_t n = (size_t)status_headers(nv, 2, code, sizeof(code), status, msg, &enc);
        if (call->accept_identity)
            nv[n++] = (nghttp2_nv)NV("grpc-accept-encoding", "identity", 8);
        call->headers_sent = true;
        nghttp2_submit_response(c->h2, call->stream_id, nv, n, NULL);
        free(enc);
        /* No RST_STREAM when the client is still sending: grpc-core would
         * report it over our status.  What it still sends is discarded. */
    } else {
        call->status = status;
        free(call->status_msg);
        call->status_msg = msg ? strdup(msg) : NULL;
        call->trailers_pending = true;
        if (call->deferred) {
            call->deferred = false;
            nghttp2_session_resume_data(c->h2, call->stream_id);
        }
    }
    cric__conn_flush(c);
}

void cric__call_respond_error(cric_call *call, int status, const char *msg)
{
    respond(call, status, msg);
}

static void on_deadline(uv_timer_t *t)
{
    cric_call *call = t->data;
    bool was = call->cancelled;
    call->cancelled = true;
    respond(call, GRPC_DEADLINE_EXCEEDED, "deadline exceeded");
    if (!was && call->dispatched && !call->handler_done && call->on_cancel)
        call->on_cancel(call, call->on_cancel_data);
}

void cric__call_on_headers_done(cric_call *call)
{
    cric_server *s = call->conn->srv;
    if (!call->path || !call->is_post) {
        respond(call, GRPC_INTERNAL, "a gRPC request is a POST with a :path");
        return;
    }
    if (!call->content_type_ok) {
        respond(call, GRPC_INTERNAL, "content-type must be application/grpc");
        return;
    }
    if (call->bad_timeout) {
        respond(call, GRPC_INVALID_ARGUMENT, "malformed grpc-timeout header");
        return;
    }
    call->method = cric__server_find(s, call->path, strlen(call->path));
    if (!call->method) {
        char m[300];
        snprintf(m, sizeof(m), "unknown method %.256s", call->path);
        respond(call, GRPC_UNIMPLEMENTED, m);
        return;
    }
    if (call->bad_encoding) {
        call->accept_identity = true;
        respond(call, GRPC_UNIMPLEMENTED, "only the identity grpc-encoding is supported");
        return;
    }
    if (call->has_timeout) {
        call->deadline_ns = call->start_ns + call->timeout_ms * 1000000ULL;
        uv_timer_init(s->loop, &call->timer);
        call->timer.data = call;
        call->timer_init = true;
        uv_timer_start(&call->timer, on_deadline, call->timeout_ms, 0);
    }
}

void cric__call_on_data(cric_call *call, const uint8_t *data, size_t len)
{
    struct cric__conn *c = call->conn;
    while (len > 0 && !call->responded && !call->dispatched && call->method) {
        if (c->in_bytes + len > CRIC__GRPC_CONN_BUDGET(c->srv->max_recv)) {
            respond(call, GRPC_RESOURCE_EXHAUSTED, "too many request bytes in flight on this connection");
            return;
        }
        size_t used;
        int r = cric_grpc_reader_feed(&call->reader, data, len, &used);
        data += used;
        len -= used;
        c->in_bytes += used;
        call->in_counted += used;
        if (r == -EMSGSIZE) {
            char m[128];
            snprintf(m, sizeof(m), "request message of %zu bytes exceeds the limit of %zu bytes",
                     cric_grpc_reader_announced(&call->reader), call->reader.max);
            respond(call, GRPC_RESOURCE_EXHAUSTED, m);
        } else if (r == -ENOTSUP) {
            call->accept_identity = true;
            respond(call, GRPC_UNIMPLEMENTED, "compressed messages are not supported");
        } else if (r == -ENOMEM) {
            respond(call, GRPC_RESOURCE_EXHAUSTED, "out of memory for the request");
        } else if (r < 0) {
            respond(call, GRPC_INTERNAL, "invalid message prefix");
        } else if (r == 1) {
            if (call->have_msg) {
                respond(call, GRPC_INVALID_ARGUMENT, "more than one request message for a unary method");
                return;
            }
            call->msg = cric_grpc_reader_take(&call->reader, &call->msg_len);
            call->have_msg = true;
        }
    }
}

void cric__call_on_end_stream(cric_call *call)
{
    if (call->responded || call->dispatched || !call->method)
        return;
    if (cric_grpc_reader_partial(&call->reader)) {
        respond(call, GRPC_INVALID_ARGUMENT, "truncated request message");
        return;
    }
    if (!call->have_msg) {
        respond(call, GRPC_INVALID_ARGUMENT, "missing request message");
        return;
    }
    static const uint8_t empty[1];
    call->req = protobuf_c_message_unpack(call->method->in, NULL, call->msg_len, call->msg ? call->msg : empty);
    release_input(call);
    if (!call->req) {
        char m[200];
        snprintf(m, sizeof(m), "cannot decode the request as %.128s", call->method->in->name);
        respond(call, GRPC_INVALID_ARGUMENT, m);
        return;
    }
    call->dispatched = true;
    call->method->fn(call, call->req, call->method->ctx);
}

/* Data provider: queued bytes, then (once finished) trailers. */
static ssize_t read_out(nghttp2_session *h2, int32_t stream_id, uint8_t *buf, size_t length, uint32_t *flags,
                        nghttp2_data_source *src, void *user)
{
    cric_call *call = src->ptr;
    size_t n = call->out_len - call->out_off;
    if (n > length)
        n = length;
    if (n)
        memcpy(buf, call->out + call->out_off, n);
    call->out_off += n;
    if (call->out_off == call->out_len) {
        call->out_off = call->out_len = 0;
        if (call->out_cap > 65536) {
            /* a drained burst: do not keep its buffer for the stream's life */
            free(call->out);
            call->out = NULL;
            call->out_cap = 0;
        }
        if (call->trailers_pending) {
            nghttp2_nv nv[2];
            char code[16];
            char *enc = NULL;
            int k = status_headers(nv, 0, code, sizeof(code), call->status, call->status_msg, &enc);
            *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
            call->trailers_pending = false;
            int r = nghttp2_submit_trailer(h2, stream_id, nv, (size_t)k);
            free(enc);
            if (r != 0)
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
            return (ssize_t)n;
        }
        if (n == 0) {
            call->deferred = true;
            return NGHTTP2_ERR_DEFERRED;
        }
    }
    return (ssize_t)n;
}

/* Appends a packed message to the output queue. */
static int queue_out(cric_call *call, uint8_t *data, size_t len)
{
    if (call->out_off > 0 && call->out_off * 2 >= call->out_len) {
        memmove(call->out, call->out + call->out_off, call->out_len - call->out_off);
        call->out_len -= call->out_off;
        call->out_off = 0;
    }
    if (call->out_len - call->out_off + len > CRIC__GRPC_MAX_QUEUED)
        return -ENOBUFS;
    if (!call->out) {
        call->out = data; /* common unary case: no copy */
        call->out_len = call->out_cap = len;
        return 0;
    }
    if (call->out_len + len > call->out_cap) {
        size_t cap = call->out_cap * 2;
        if (cap < call->out_len + len)
            cap = call->out_len + len;
        uint8_t *n = realloc(call->out, cap);
        if (!n)
            return -ENOMEM;
        call->out = n;
        call->out_cap = cap;
    }
    memcpy(call->out + call->out_len, data, len);
    call->out_len += len;
    free(data);
    return 0;
}

static int start_response(cric_call *call)
{
    nghttp2_nv nv[] = {
        NV(":status", "200", 3),
        NV("content-type", "application/grpc", 16),
    };
    nghttp2_data_provider prd = { .source.ptr = call, .read_callback = read_out };
    call->headers_sent = true;
    return nghttp2_submit_response(call->conn->h2, call->stream_id, nv, 2, &prd);
}

static bool answer_dropped(cric_call *call)
{
    call->handler_done = true;
    if (!call->conn) {
        call_free(call);
        return true;
    }
    return call->responded;
}

void cric_call_reply(cric_call *call, const ProtobufCMessage *resp)
{
    if (call->handler_done || answer_dropped(call))
        return;
    uint8_t *data;
    size_t len;
    int r = cric_grpc_message_pack(resp, call->conn->srv->max_send, &data, &len);
    if (r == -EMSGSIZE) {
        char m[128];
        snprintf(m, sizeof(m), "response message of %zu bytes exceeds the limit of %zu bytes",
                 protobuf_c_message_get_packed_size(resp), call->conn->srv->max_send);
        respond(call, GRPC_RESOURCE_EXHAUSTED, m);
        return;
    }
    if (r < 0 || queue_out(call, data, len) < 0) {
        if (r == 0)
            free(data);
        respond(call, GRPC_RESOURCE_EXHAUSTED, "out of memory for the response");
        return;
    }
    if (!call->headers_sent) {
        if (start_response(call) != 0) {
            call->responded = true;
            return;
        }
    } else if (call->deferred) {
        /* a streaming method answering its last message with reply() */
        call->deferred = false;
        nghttp2_session_resume_data(call->conn->h2, call->stream_id);
    }
    respond(call, GRPC_OK, NULL);
}

void cric_call_fail(cric_call *call, enum cric_grpc_status status, const char *fmt, ...)
{
    if (call->handler_done || answer_dropped(call))
        return;
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    respond(call, status == GRPC_OK ? GRPC_UNKNOWN : status, msg);
    free(msg);
}

void cric_call_fail_error(cric_call *call, const cric_error *err)
{
    if (!err) {
        cric_call_fail(call, GRPC_INTERNAL, "internal error");
        return;
    }
    cric_call_fail(call, cric_grpc_status_from_errno(err->code), "%s", err->msg);
}

int cric_call_send(cric_call *call, const ProtobufCMessage *msg)
{
    if (call->handler_done)
        return -EINVAL;
    if (!call->conn || call->responded)
        return 0;
    uint8_t *data;
    size_t len;
    int r = cric_grpc_message_pack(msg, call->conn->srv->max_send, &data, &len);
    if (r < 0)
        return r;
    r = queue_out(call, data, len);
    if (r < 0) {
        free(data);
        return r;
    }
    if (!call->headers_sent) {
        if (start_response(call) != 0)
            return -EIO;
    } else if (call->deferred) {
        call->deferred = false;
        nghttp2_session_resume_data(call->conn->h2, call->stream_id);
    }
    cric__conn_flush(call->conn);
    return 0;
}

void cric_call_finish(cric_call *call, enum cric_grpc_status status, const char *msg)
{
    if (call->handler_done || answer_dropped(call))
        return;
    respond(call, status, msg);
}

const char *cric_call_method(const cric_call *call) { return call->path ? call->path : ""; }

uint64_t cric_call_time_left_ms(const cric_call *call)
{
    if (!call->deadline_ns)
        return UINT64_MAX;
    uint64_t now = uv_hrtime();
    return now >= call->deadline_ns ? 0 : (call->deadline_ns - now) / 1000000;
}

bool cric_call_cancelled(const cric_call *call) { return call->cancelled; }

void cric_call_on_cancel(cric_call *call, void (*cb)(cric_call *, void *), void *data)
{
    call->on_cancel = cb;
    call->on_cancel_data = data;
}
