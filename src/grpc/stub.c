/* Temporary stubs so dependants can link while the transport is written. */
#include "config.h"
#include <errno.h>
#include <stdlib.h>
#include "grpc/client.h"
#include "grpc/server.h"

int cric_server_new(uv_loop_t *loop, const struct cric_server_opts *opts, cric_server **out, cric_error **err)
{ return cric_error_new(err, -ENOTSUP, "grpc server: not implemented yet"); }
int cric_server_register(cric_server *s, const char *path, const ProtobufCMessageDescriptor *in,
                         bool server_streaming, cric_method_fn fn, void *ctx) { return -ENOTSUP; }
int cric_server_start(cric_server *s, cric_error **err) { return cric_error_new(err, -ENOTSUP, "not implemented"); }
void cric_server_shutdown(cric_server *s, uint64_t grace_ms, void (*cb)(void *), void *data) { if (cb) cb(data); }
void cric_server_free(cric_server *s) {}
const char *cric_call_method(const cric_call *call) { return ""; }
uint64_t cric_call_time_left_ms(const cric_call *call) { return UINT64_MAX; }
bool cric_call_cancelled(const cric_call *call) { return true; }
void cric_call_reply(cric_call *call, const ProtobufCMessage *resp) {}
void cric_call_fail(cric_call *call, enum cric_grpc_status status, const char *fmt, ...) {}
void cric_call_fail_error(cric_call *call, const cric_error *err) {}
int cric_call_send(cric_call *call, const ProtobufCMessage *msg) { return -ENOTSUP; }
void cric_call_finish(cric_call *call, enum cric_grpc_status status, const char *msg) {}
int cric_client_connect(const char *endpoint, uint64_t timeout_ms, cric_client **out, cric_error **err)
{ return cric_error_new(err, -ENOTSUP, "grpc client: not implemented yet"); }
int cric_client_call(cric_client *c, const char *path, const ProtobufCMessage *req,
                     const ProtobufCMessageDescriptor *resp_desc, uint64_t timeout_ms,
                     ProtobufCMessage **resp, int *status, char **status_msg, cric_error **err)
{ return cric_error_new(err, -ENOTSUP, "not implemented"); }
int cric_client_stream(cric_client *c, const char *path, const ProtobufCMessage *req,
                       const ProtobufCMessageDescriptor *resp_desc, uint64_t timeout_ms,
                       cric_client_stream_cb cb, void *data, int *status, char **status_msg, cric_error **err)
{ return cric_error_new(err, -ENOTSUP, "not implemented"); }
void cric_client_free(cric_client *c) {}
