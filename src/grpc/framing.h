/* Pure gRPC wire helpers shared by the server and the client: the 5-byte
 * message prefix, grpc-message percent-encoding, grpc-timeout values and the
 * errno -> status mapping.  No I/O, no loop. */
#ifndef CRIC_GRPC_FRAMING_H
#define CRIC_GRPC_FRAMING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "grpc/server.h"

#define CRIC_GRPC_PREFIX_LEN 5

/** Incremental reader of length-prefixed messages; input may be split
 * anywhere.  Zero-initialise, then set max (largest message accepted). */
struct cric_grpc_reader {
    size_t max;
    uint8_t hdr[CRIC_GRPC_PREFIX_LEN];
    size_t hdr_len;   /* prefix bytes seen of the current message */
    uint8_t *buf;     /* body being collected (owned), grown as it arrives */
    size_t cap;       /* allocated size of buf */
    size_t len;       /* body length announced by the prefix */
    size_t have;      /* body bytes collected */
    bool compressed;  /* flag byte of the current message */
};

/** Feeds bytes.  Returns 1 when a whole message is ready (*used tells how
 * many input bytes were consumed; take it with cric_grpc_reader_take, then
 * feed the rest), 0 when all input was consumed without completing one,
 * -EMSGSIZE when the announced length exceeds max, -ENOTSUP when the
 * compressed flag is set, -EPROTO for a flag byte other than 0/1. */
int cric_grpc_reader_feed(struct cric_grpc_reader *r, const uint8_t *data, size_t len, size_t *used);
/** Hands over the completed message body (malloc'd, may be NULL when len is 0)
 * and resets the reader for the next message. */
uint8_t *cric_grpc_reader_take(struct cric_grpc_reader *r, size_t *len);
/** True while part of a message has been read. */
bool cric_grpc_reader_partial(const struct cric_grpc_reader *r);
void cric_grpc_reader_free(struct cric_grpc_reader *r);
/** Announced length of the message being read (valid once its prefix is in). */
size_t cric_grpc_reader_announced(const struct cric_grpc_reader *r);

/** Packs msg behind a prefix into a new malloc'd buffer: returns 0,
 * -EMSGSIZE when the packed message exceeds max (or 4 GiB), -ENOMEM. */
int cric_grpc_message_pack(const ProtobufCMessage *msg, size_t max, uint8_t **out, size_t *out_len);

/** grpc-message encoding: bytes outside 0x20..0x7e and '%' become %XX.
 * Returns a malloc'd string or NULL on ENOMEM. */
char *cric_grpc_percent_encode(const char *s);
/** Decodes len bytes of s; malformed escapes are kept verbatim (as the gRPC
 * spec asks of receivers).  Returns a malloc'd NUL-terminated string. */
char *cric_grpc_percent_decode(const char *s, size_t len);

/** Parses a grpc-timeout value (1-8 digits + one of H M S m u n) into
 * milliseconds, rounded up.  Returns 0 or -EINVAL. */
int cric_grpc_timeout_parse(const char *s, size_t len, uint64_t *ms);
/** Formats ms as a grpc-timeout value into buf (at least 16 bytes). */
void cric_grpc_timeout_format(uint64_t ms, char *buf, size_t size);

/** "OK", "CANCELLED", ... ; "UNKNOWN_STATUS" outside the range. */
const char *cric_grpc_status_name(int status);
/** The status a cric_error code (-errno) maps to; see server.h. */
enum cric_grpc_status cric_grpc_status_from_errno(int code);
/** Parses a decimal grpc-status header value; -EINVAL if malformed. */
int cric_grpc_status_parse(const char *s, size_t len, int *status);

#endif
