/* What pull.c (in cric-pull) and pullproc.c (in cricd) share. */
#ifndef CRIC_IMAGE_PULLAUTH_H
#define CRIC_IMAGE_PULLAUTH_H

#include <stdint.h>

#include "image/store.h"
#include "util/err.h"

/** Credentials of one pull (CRI AuthConfig).  Never logged, never stored. */
struct cric_pull_auth {
    const char *username;
    const char *password;
    const char *auth;            /* base64 "user:password" */
    const char *identity_token;  /* OAuth2 refresh token for the token server */
    const char *registry_token;  /* a bearer token for the registry */
};

/** Called once per waiter.  img is borrowed (valid during the call) and NULL
 * on failure, when err names the cause. */
typedef void (*cric_pull_cb)(void *data, const struct cric_image *img, const cric_error *err);
/** Optional progress: layer digest, bytes so far, total bytes. */
typedef void (*cric_pull_progress_cb)(void *data, const char *digest, uint64_t bytes, uint64_t total);

#endif
