/* A blocking gRPC client over HTTP/2 cleartext on a unix socket, for cricctl
 * and tests.  One call at a time per client; not thread-safe (use one client
 * per thread).  Shares the framing code with the server (grpc/framing.h). */
#ifndef CRIC_GRPC_CLIENT_H
#define CRIC_GRPC_CLIENT_H

#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "grpc/server.h" /* enum cric_grpc_status */
#include "util/err.h"

typedef struct cric_client cric_client;

/** Connects to endpoint: "unix:///path", "unix:/path" or "/path".
 * timeout_ms bounds the connect and the HTTP/2 handshake (0 = none). */
int cric_client_connect(const char *endpoint, uint64_t timeout_ms, cric_client **out, cric_error **err);

/** Unary call.  Transport failure: returns <0 with err.  Otherwise returns 0
 * and sets *status (enum cric_grpc_status); on GRPC_OK *resp is the decoded
 * response (free with protobuf_c_message_free_unpacked(resp, NULL)); on other
 * statuses *resp = NULL and *status_msg (malloc'd, caller frees, may be NULL)
 * holds the decoded grpc-message.  timeout_ms 0 = none (else sent as
 * grpc-timeout, and the client also stops waiting a little after it). */
int cric_client_call(cric_client *c, const char *path, const ProtobufCMessage *req,
                     const ProtobufCMessageDescriptor *resp_desc, uint64_t timeout_ms,
                     ProtobufCMessage **resp, int *status, char **status_msg, cric_error **err);

/** Server streaming: cb gets each message (freed by the client after cb
 * returns); a non-zero cb return cancels the call (RST_STREAM) and is then
 * returned. */
typedef int (*cric_client_stream_cb)(const ProtobufCMessage *msg, void *data);
int cric_client_stream(cric_client *c, const char *path, const ProtobufCMessage *req,
                       const ProtobufCMessageDescriptor *resp_desc, uint64_t timeout_ms,
                       cric_client_stream_cb cb, void *data, int *status, char **status_msg,
                       cric_error **err);

void cric_client_free(cric_client *c);

#endif
