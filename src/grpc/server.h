/* The CRI gRPC server: HTTP/2 cleartext (prior knowledge) on a unix socket,
 * nghttp2 driven by the daemon's libuv loop.
 *
 * Handlers are registered per full method path.  The server decodes the
 * request with the method's input descriptor and calls the handler on the
 * loop thread.  A handler answers exactly once, now or later (after a child
 * process finished, say): cric_call_reply() or cric_call_fail() for unary
 * methods; cric_call_send() any number of times then cric_call_finish() for
 * server-streaming ones.  The call object stays valid until that answer even
 * when the client has gone (the answer is then dropped); a handler doing long
 * work may poll cric_call_cancelled(). */
#ifndef CRIC_GRPC_SERVER_H
#define CRIC_GRPC_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>
#include <uv.h>

#include "util/err.h"

/* gRPC status codes (grpc/doc/statuscodes.md). */
enum cric_grpc_status {
    GRPC_OK = 0,
    GRPC_CANCELLED = 1,
    GRPC_UNKNOWN = 2,
    GRPC_INVALID_ARGUMENT = 3,
    GRPC_DEADLINE_EXCEEDED = 4,
    GRPC_NOT_FOUND = 5,
    GRPC_ALREADY_EXISTS = 6,
    GRPC_PERMISSION_DENIED = 7,
    GRPC_RESOURCE_EXHAUSTED = 8,
    GRPC_FAILED_PRECONDITION = 9,
    GRPC_ABORTED = 10,
    GRPC_OUT_OF_RANGE = 11,
    GRPC_UNIMPLEMENTED = 12,
    GRPC_INTERNAL = 13,
    GRPC_UNAVAILABLE = 14,
    GRPC_DATA_LOSS = 15,
    GRPC_UNAUTHENTICATED = 16,
};

typedef struct cric_server cric_server;
typedef struct cric_call cric_call;

/** A handler: req is owned by the call and freed after the answer. */
typedef void (*cric_method_fn)(cric_call *call, const ProtobufCMessage *req, void *ctx);

/* Zero sizes/counts take the defaults: 16 MiB, 16 MiB, 1000 streams. */
struct cric_server_opts {
    const char *socket_path;   /* e.g. /run/cricd/cricd.sock (copied) */
    size_t max_recv_msg_size;  /* bytes; larger requests -> RESOURCE_EXHAUSTED */
    size_t max_send_msg_size;  /* bytes; larger responses -> RESOURCE_EXHAUSTED */
    unsigned max_concurrent_streams; /* per connection (HTTP/2 SETTINGS) */
};

int cric_server_new(uv_loop_t *loop, const struct cric_server_opts *opts, cric_server **out, cric_error **err);
/** Registers a method; path is "/runtime.v1.RuntimeService/Version".
 * Registering a path again replaces its handler.  Returns 0 or -ENOMEM.
 * Unregistered paths answer UNIMPLEMENTED. */
int cric_server_register(cric_server *s, const char *path, const ProtobufCMessageDescriptor *in,
                         bool server_streaming, cric_method_fn fn, void *ctx);
/** Binds and listens: parent directories are created, the socket gets mode
 * 0660, a stale socket is replaced, a live server on it is an error (-EADDRINUSE),
 * a non-socket file there is left alone (-EEXIST).  Sets SIGPIPE to SIG_IGN
 * process-wide (a client hanging up mid-write must not kill us). */
int cric_server_start(cric_server *s, cric_error **err);
/** Stops accepting, removes the socket, sends GOAWAY; calls cb once every
 * in-flight call has been answered and every connection closed.  When
 * grace_ms passes first, the remaining connections are closed and their
 * calls cancelled (on_cancel runs; handlers must still answer them). */
void cric_server_shutdown(cric_server *s, uint64_t grace_ms, void (*cb)(void *), void *data);
/** cb runs once, on the loop, when cric_server_shutdown() begins: where a
 * module ends its endless server-streaming calls (event feeds), which would
 * otherwise hold their connection until the grace period is over.  At most
 * four; -ENOSPC past that. */
int cric_server_on_shutdown(cric_server *s, void (*cb)(void *data), void *data);
/** Frees the server after shutdown completed (or after a failed or no
 * start).  Handles still closing are finished by the loop: keep running it
 * until it returns before uv_loop_close(). */
void cric_server_free(cric_server *s);

/** The method path of the call ("/runtime.v1.ImageService/PullImage"). */
const char *cric_call_method(const cric_call *call);
/** Milliseconds left before the client's grpc-timeout, or UINT64_MAX. */
uint64_t cric_call_time_left_ms(const cric_call *call);
/** True once the client went away (RST_STREAM, closed connection) or the
 * deadline passed; the answer will be dropped. */
bool cric_call_cancelled(const cric_call *call);
/** Registers a callback run (once, on the loop) when the call becomes
 * cancelled, so a long-running or streaming handler can stop early; it must
 * still answer (the answer is dropped).  Not run if already cancelled. */
void cric_call_on_cancel(cric_call *call, void (*cb)(cric_call *call, void *data), void *data);

void cric_call_reply(cric_call *call, const ProtobufCMessage *resp);
void cric_call_fail(cric_call *call, enum cric_grpc_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/** Maps a cric_error code (-errno) to a gRPC status and fails with its message:
 * ENOENT/ESRCH -> NOT_FOUND, EEXIST -> ALREADY_EXISTS, EINVAL/ENAMETOOLONG/EBADMSG
 * -> INVALID_ARGUMENT, ETIMEDOUT -> DEADLINE_EXCEEDED, EPERM/EACCES ->
 * PERMISSION_DENIED, ENOSPC/E2BIG/EFBIG/EMSGSIZE/ENOMEM/EMFILE/ENFILE/EDQUOT ->
 * RESOURCE_EXHAUSTED, EBUSY/ENOTEMPTY -> FAILED_PRECONDITION (the object is
 * in a state that forbids it, retrying as-is will not help), EAGAIN/
 * ECONNREFUSED/ECONNRESET/ENOTCONN/EHOSTUNREACH/ENETUNREACH/EPIPE ->
 * UNAVAILABLE (transient, retry), ENOTSUP/EOPNOTSUPP/ENOSYS -> UNIMPLEMENTED,
 * ECANCELED/EINTR -> CANCELLED, ERANGE/EOVERFLOW -> OUT_OF_RANGE,
 * EALREADY/EDEADLK -> ABORTED, EIO/EPROTO -> INTERNAL, anything else ->
 * UNKNOWN.  A NULL err fails with INTERNAL. */
void cric_call_fail_error(cric_call *call, const cric_error *err);
/** Queues one message of a server-streaming answer.  Returns 0 (also when
 * the client is gone: the message is dropped), -EMSGSIZE past
 * max_send_msg_size, -ENOBUFS when the client reads too slowly and 64 MiB
 * are already queued. */
int cric_call_send(cric_call *call, const ProtobufCMessage *msg);
/** Ends a server-streaming call: trailers with status and msg (may be NULL). */
void cric_call_finish(cric_call *call, enum cric_grpc_status status, const char *msg);

#endif
