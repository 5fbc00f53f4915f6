/* HTTP client on the daemon's libuv loop: libcurl's multi interface driven
 * by uv_poll (sockets) and uv_timer (curl's timeouts).  Nothing blocks. */
#ifndef CRIC_IMAGE_HTTP_H
#define CRIC_IMAGE_HTTP_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "util/err.h"

struct cric_http;
struct cric_http_req;

typedef void (*cric_http_done_fn)(struct cric_http_req *req, void *data);

struct cric_http_tls {
    const char *ca_file;      /* extra CA bundle, or NULL */
    const char *client_cert;  /* PEM, or NULL */
    const char *client_key;
    bool insecure;            /* skip TLS verification */
};

struct cric_http_opts {
    const char *url;
    const char *accept;              /* Accept header or NULL */
    const char *authorization;       /* full Authorization header value or NULL (never logged) */
    const char *post_form;           /* non-NULL: POST this urlencoded body instead of GET (copied) */
    struct cric_http_tls tls;
    /* Body goes to fd (2xx only) when fd >= 0, else into memory up to max_body. */
    int fd;
    size_t max_body;
    int64_t expect_size;             /* > 0: more bytes than this is an error */
    bool sha256;                     /* compute the body's digest */
    unsigned connect_timeout_s;
    unsigned low_speed_timeout_s;    /* abort after this long without progress */
    void (*progress)(void *data, uint64_t bytes);  /* optional, per received chunk */
};

/** The result, valid in the done callback. */
struct cric_http_result {
    long status;             /* HTTP status, 0 when no response */
    int curl_code;           /* CURLcode, 0 = transfer completed */
    const char *error;       /* curl's message when curl_code != 0 */
    const char *body;        /* memory mode: NUL-terminated */
    size_t body_len;         /* bytes received (both modes) */
    const char *content_type;
    const char *www_authenticate;
    char digest[72];         /* "sha256:<hex>" when opts.sha256 */
    bool too_large;          /* body exceeded max_body / expect_size */
    bool write_failed;       /* writing to fd failed */
};

int cric_http_new(uv_loop_t *loop, struct cric_http **out, cric_error **err);
/** Cancels every request (their callbacks are not called) and closes the
 * handles; frees itself once they are closed. */
void cric_http_close(struct cric_http *h);

/** Starts a GET (or a form POST); done is called exactly once unless cancelled. */
int cric_http_get(struct cric_http *h, const struct cric_http_opts *opts, cric_http_done_fn done, void *data,
                  struct cric_http_req **out, cric_error **err);
const struct cric_http_result *cric_http_result(const struct cric_http_req *req);
/** Cancels a request in flight (no callback) or frees a finished one. */
void cric_http_req_free(struct cric_http_req *req);

#endif
