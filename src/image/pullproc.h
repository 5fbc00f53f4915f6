/* cricd's side of pulling: each distinct pull runs in a cric-pull helper
 * process (so that cricd links neither libcurl nor libarchive nor libcrypto),
 * spawned with uv_spawn and read through pipes on the loop; cricd writes the
 * image record when the helper's answer arrives.  Same contract as pull.h:
 * two pulls of the same reference with the same credentials share one. */
#ifndef CRIC_IMAGE_PULLPROC_H
#define CRIC_IMAGE_PULLPROC_H

#include <uv.h>

#include "config/config.h"
#include "image/pullauth.h"
#include "image/store.h"
#include "util/err.h"

struct cric_pullproc;

/** helper: path of cric-pull; cfg (images.* keys) must outlive the object. */
int cric_pullproc_new(uv_loop_t *loop, struct cric_image_store *store, const struct cric_config *cfg,
                      const char *helper, struct cric_pullproc **out, cric_error **err);
/** Kills the helpers (their pulls fail now: "cricd is shutting down"), frees
 * itself once their handles are closed (keep running the loop), then calls
 * done(data): only then may the store be freed. */
void cric_pullproc_close(struct cric_pullproc *p, void (*done)(void *), void *data);
/** Starts pulling ref: -EINVAL (with err) for an invalid reference; else cb
 * is called exactly once, later, from the loop. */
int cric_pullproc_pull(struct cric_pullproc *p, const char *ref, const struct cric_pull_auth *auth, cric_pull_cb cb,
                       cric_pull_progress_cb progress, void *data, cric_error **err);
/** The latest per-layer progress of the pulls in flight as a JSON object
 * {"<reference>": {"layers": [{"digest", "done", "total"}, ...]}} (malloc'd
 * into *out); finished pulls are gone from it.  Never holds credentials. */
int cric_pullproc_progress_json(struct cric_pullproc *p, char **out, cric_error **err);

#endif
