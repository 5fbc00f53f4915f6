/* Pure gRPC wire helpers (see framing.h). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/framing.h"

int cric_grpc_reader_feed(struct cric_grpc_reader *r, const uint8_t *data, size_t len, size_t *used)
{
    size_t off = 0;

    *used = 0;
    while (r->hdr_len < CRIC_GRPC_PREFIX_LEN) {
        if (off == len) {
            *used = off;
            return 0;
        }
        r->hdr[r->hdr_len++] = data[off++];
        if (r->hdr_len == CRIC_GRPC_PREFIX_LEN) {
            *used = off;
            if (r->hdr[0] > 1)
                return -EPROTO;
            r->compressed = r->hdr[0] == 1;
            r->len = (size_t)r->hdr[1] << 24 | (size_t)r->hdr[2] << 16 | (size_t)r->hdr[3] << 8 | r->hdr[4];
            if (r->compressed)
                return -ENOTSUP;
            if (r->len > r->max)
                return -EMSGSIZE;
            r->have = 0;
        }
    }
    size_t n = len - off;
    if (n > r->len - r->have)
        n = r->len - r->have;
    if (r->have + n > r->cap) {
        /* Grow with what arrives, not with what the prefix announces: a
         * 5-byte prefix must not buy 16 MiB. */
        size_t cap = r->cap ? r->cap * 2 : 4096;
        if (cap < r->have + n)
            cap = r->have + n;
        if (cap > r->len)
            cap = r->len;
        uint8_t *b = realloc(r->buf, cap);
        if (!b)
            return -ENOMEM;
        r->buf = b;
        r->cap = cap;
    }
    if (n)
        memcpy(r->buf + r->have, data + off, n);
    r->have += n;
    off += n;
    *used = off;
    return r->have == r->len ? 1 : 0;
}

uint8_t *cric_grpc_reader_take(struct cric_grpc_reader *r, size_t *len)
{
    uint8_t *b = r->buf;
    *len = r->len;
    r->buf = NULL;
    r->cap = 0;
    r->hdr_len = 0;
    r->len = r->have = 0;
    r->compressed = false;
    return b;
}

bool cric_grpc_reader_partial(const struct cric_grpc_reader *r) { return r->hdr_len > 0; }

size_t cric_grpc_reader_announced(const struct cric_grpc_reader *r) { return r->len; }

void cric_grpc_reader_free(struct cric_grpc_reader *r)
{
    free(r->buf);
    r->buf = NULL;
    r->cap = 0;
    r->hdr_len = 0;
    r->len = r->have = 0;
}

int cric_grpc_message_pack(const ProtobufCMessage *msg, size_t max, uint8_t **out, size_t *out_len)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    if (n > max || n > UINT32_MAX)
        return -EMSGSIZE;
    uint8_t *b = malloc(CRIC_GRPC_PREFIX_LEN + n);
    if (!b)
        return -ENOMEM;
    b[0] = 0;
    b[1] = (uint8_t)(n >> 24);
    b[2] = (uint8_t)(n >> 16);
    b[3] = (uint8_t)(n >> 8);
    b[4] = (uint8_t)n;
    protobuf_c_message_pack(msg, b + CRIC_GRPC_PREFIX_LEN);
    *out = b;
    *out_len = CRIC_GRPC_PREFIX_LEN + n;
    return 0;
}

char *cric_grpc_percent_encode(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        n += (*p < 0x20 || *p > 0x7e || *p == '%') ? 3 : 1;
    char *out = malloc(n + 1), *o = out;
    if (!out)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p > 0x7e || *p == '%') {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        } else {
            *o++ = (char)*p;
        }
    }
    *o = 0;
    return out;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

char *cric_grpc_percent_decode(const char *s, size_t len)
{
    char *out = malloc(len + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < len && (hi = hexval(s[i + 1])) >= 0 && (lo = hexval(s[i + 2])) >= 0) {
            *o++ = (char)(hi << 4 | lo);
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = 0;
    return out;
}

int cric_grpc_timeout_parse(const char *s, size_t len, uint64_t *ms)
{
    if (len < 2 || len > 9)
        return -EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i < len - 1; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    /* 8 digits at most, so none of these can overflow 64 bits. */
    switch (s[len - 1]) {
    case 'H': v *= 3600000; break;
    case 'M': v *= 60000; break;
    case 'S': v *= 1000; break;
    case 'm': break;
    case 'u': v = (v + 999) / 1000; break;
    case 'n': v = (v + 999999) / 1000000; break;
    default: return -EINVAL;
    }
    *ms = v;
    return 0;
}

void cric_grpc_timeout_format(uint64_t ms, char *buf, size_t size)
{
    /* At most 8 digits: pick the finest unit that fits, rounding up. */
    if (ms < 100000000ULL)
        snprintf(buf, size, "%llum", (unsigned long long)ms);
    else if ((ms + 999) / 1000 < 100000000ULL)
        snprintf(buf, size, "%lluS", (unsigned long long)((ms + 999) / 1000));
    else if ((ms + 59999) / 60000 < 100000000ULL)
        snprintf(buf, size, "%lluM", (unsigned long long)((ms + 59999) / 60000));
    else {
        uint64_t h = (ms + 3599999) / 3600000;
        snprintf(buf, size, "%lluH", (unsigned long long)(h > 99999999ULL ? 99999999ULL : h));
    }
}

static const char *const status_names[] = {
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED",
};

const char *cric_grpc_status_name(int status)
{
    if (status < 0 || (size_t)status >= sizeof(status_names) / sizeof(status_names[0]))
        return "UNKNOWN_STATUS";
    return status_names[status];
}

enum cric_grpc_status cric_grpc_status_from_errno(int code)
{
    switch (code) {
    case 0: return GRPC_OK;
    case -ENOENT: case -ESRCH: return GRPC_NOT_FOUND;
    case -EEXIST: return GRPC_ALREADY_EXISTS;
    case -EINVAL: case -ENAMETOOLONG: case -EBADMSG: return GRPC_INVALID_ARGUMENT;
    case -ETIMEDOUT: return GRPC_DEADLINE_EXCEEDED;
    case -EPERM: case -EACCES: return GRPC_PERMISSION_DENIED;
    case -ENOSPC: case -E2BIG: case -EFBIG: case -EMSGSIZE: case -ENOMEM: case -EMFILE:
    case -ENFILE: case -EDQUOT: return GRPC_RESOURCE_EXHAUSTED;
    case -EBUSY: case -ENOTEMPTY: return GRPC_FAILED_PRECONDITION;
    case -EAGAIN: case -ECONNREFUSED: case -ECONNRESET: case -ENOTCONN: case -EHOSTUNREACH:
    case -ENETUNREACH: case -EPIPE: return GRPC_UNAVAILABLE;
    case -ENOTSUP: case -ENOSYS: return GRPC_UNIMPLEMENTED;
    case -ECANCELED: case -EINTR: return GRPC_CANCELLED;
    case -ERANGE: case -EOVERFLOW: return GRPC_OUT_OF_RANGE;
    case -EALREADY: case -EDEADLK: return GRPC_ABORTED;
    case -EIO: case -EPROTO: return GRPC_INTERNAL;
    default: return GRPC_UNKNOWN;
    }
}

int cric_grpc_status_parse(const char *s, size_t len, int *status)
{
    if (len == 0 || len > 3)
        return -EINVAL;
    int v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    *status = v;
    return 0;
}
