/* Pulling images from registries (OCI distribution API) into the store, on
 * the daemon's loop: manifests and blobs through the libcurl-multi client,
 * digests checked while bytes stream in, layers unpacked on the thread pool.
 * Two pulls of the same reference with the same credentials share one. */
#ifndef CRIC_IMAGE_PULL_H
#define CRIC_IMAGE_PULL_H

#include <stdint.h>
#include <uv.h>

#include "config/config.h"
#include "image/pullauth.h"
#include "image/store.h"
#include "util/err.h"

struct cric_puller;

/** cfg (images.* keys) must outlive the puller. */
int cric_puller_new(uv_loop_t *loop, struct cric_image_store *store, const struct cric_config *cfg,
                    struct cric_puller **out, cric_error **err);
/** Fails every pull in flight (their callbacks run with an error now), then
 * frees the puller once its handles and thread-pool jobs are done (keep
 * running the loop) and calls done(data) (may be NULL): only then may the
 * store be freed. */
void cric_puller_close(struct cric_puller *p, void (*done)(void *), void *data);

/** Starts pulling ref.  -EINVAL (with err) for an invalid reference; else cb
 * is called exactly once, later, from the loop. */
int cric_puller_pull(struct cric_puller *p, const char *ref, const struct cric_pull_auth *auth, cric_pull_cb cb,
                     cric_pull_progress_cb progress, void *data, cric_error **err);

#endif
