/* Internal structures of the gRPC server shared by server.c, conn.c and
 * call.c.  Not for use outside src/grpc (tests and the fuzz target excepted). */
#ifndef CRIC_GRPC_INTERNAL_H
#define CRIC_GRPC_INTERNAL_H

#include <nghttp2/nghttp2.h>

#include "grpc/framing.h"
#include "grpc/server.h"

/* Per-call limit on request header bytes (names + values). */
#define CRIC__GRPC_MAX_HEADER_BYTES (64 * 1024)
/* Per-connection limit on buffered request bytes: 4 x max_recv, at least 64 MiB. */
#define CRIC__GRPC_CONN_BUDGET(max_recv) ((max_recv) * 4 > (64u << 20) ? (max_recv) * 4 : (64u << 20))
/* Per-call limit on queued, not yet sent, streaming output. */
#define CRIC__GRPC_MAX_QUEUED (64u * 1024 * 1024)

struct cric__method {
    char *path;
    const ProtobufCMessageDescriptor *in;
    bool streaming;
    cric_method_fn fn;
    void *ctx;
};

struct cric_server {
    uv_loop_t *loop;
    char *socket_path;
    size_t max_recv, max_send;
    unsigned max_streams;
    struct cric__method *methods;
    size_t n_methods;
    uv_pipe_t listener;
    bool listening;
    bool shutting_down;
    struct cric__conn *conns; /* doubly linked */
    uv_timer_t grace;
    bool grace_active;
    void (*shutdown_cb)(void *);
    void *shutdown_data;
    bool shutdown_done;
    unsigned pending_closes; /* handles (listener, grace timer) still closing */
    bool free_requested;     /* cric_server_free while handles were closing */
    struct {
        void (*cb)(void *);
        void *data;
    } on_shutdown[4];        /* run when shutdown begins */
    size_t n_on_shutdown;
};

struct cric__conn {
    cric_server *srv;
    struct cric__conn *prev, *next;
    nghttp2_session *h2;
    uv_pipe_t pipe;
    bool mem;        /* fuzz/test connection: no socket, output to mem_out or discarded */
    void (*mem_out)(const uint8_t *data, size_t len, void *arg);
    void *mem_out_arg;
    bool writing;    /* a uv_write is in flight */
    bool closing;    /* uv_close called (or, for mem, marked closed) */
    bool goaway;     /* graceful GOAWAY submitted */
    bool in_recv;    /* inside nghttp2_session_mem_recv: no send, no close */
    bool want_close; /* close requested while in_recv */
    struct cric_call *calls; /* live calls bound to a stream, doubly linked */
    size_t in_bytes;         /* request bytes buffered by all its calls */
    char rbuf[16384];
};

struct cric_call {
    struct cric__conn *conn;  /* NULL once the stream is gone */
    struct cric_call *prev, *next;
    int32_t stream_id;
    const struct cric__method *method;
    char *path;               /* as received */
    uint64_t start_ns;        /* uv_hrtime at HEADERS */
    uint64_t deadline_ns;     /* 0 = none */
    uv_timer_t timer;
    bool timer_init;
    size_t header_bytes;
    size_t in_counted;        /* this call's share of conn->in_bytes */
    bool content_type_ok, bad_encoding, bad_timeout, is_post, accept_identity;
    uint64_t timeout_ms;
    bool has_timeout;
    struct cric_grpc_reader reader;
    uint8_t *msg;             /* the request body once complete */
    size_t msg_len;
    bool have_msg;
    ProtobufCMessage *req;    /* decoded request (owned) */
    bool dispatched;          /* handler called; it owns the answer */
    bool handler_done;        /* handler answered (reply/fail/finish) */
    bool responded;           /* final status submitted on the wire */
    bool headers_sent;        /* response HEADERS submitted */
    bool cancelled;
    /* queued response bytes for the data provider */
    uint8_t *out;
    size_t out_len, out_off, out_cap;
    bool trailers_pending;    /* finish(): trailers go after the queued data */
    bool deferred;            /* the data provider returned DEFERRED */
    int status;
    char *status_msg;
    void (*on_cancel)(cric_call *, void *);
    void *on_cancel_data;
};

/* server.c */
const struct cric__method *cric__server_find(const cric_server *s, const char *path, size_t len);
void cric__server_conn_gone(cric_server *s);

/* conn.c */
int cric__conn_init_session(struct cric__conn *c, cric_error **err);
/** Feeds received bytes; protocol errors end the session (GOAWAY then close). */
void cric__conn_feed(struct cric__conn *c, const uint8_t *data, size_t len);
/** Sends what nghttp2 has queued; closes the connection when it is done. */
void cric__conn_flush(struct cric__conn *c);
void cric__conn_close(struct cric__conn *c);
void cric__conn_goaway(struct cric__conn *c);
/** A connection fed from memory (fuzzing, tests); its output goes to
 * out_cb (NULL: discarded). */
int cric__conn_new_mem(cric_server *s, void (*out_cb)(const uint8_t *, size_t, void *), void *arg,
                       struct cric__conn **out, cric_error **err);
void cric__conn_free_mem(struct cric__conn *c);

/* call.c */
cric_call *cric__call_new(struct cric__conn *c, int32_t stream_id);
/** The stream of the call closed (or its connection went away). */
void cric__call_detach(cric_call *call);
void cric__call_on_headers_done(cric_call *call);
void cric__call_on_data(cric_call *call, const uint8_t *data, size_t len);
void cric__call_on_end_stream(cric_call *call);
/** Wire-level failure before or instead of the handler's answer. */
void cric__call_respond_error(cric_call *call, int status, const char *msg);

#endif
