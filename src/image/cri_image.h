/* The CRI ImageService on the daemon (init/fini declared in cri/cri.h). */
#ifndef CRIC_IMAGE_CRI_IMAGE_H
#define CRIC_IMAGE_CRI_IMAGE_H

#include "daemon.h"
#include "image/store.h"

/** The daemon's image store, for the container and sandbox modules (loop
 * thread only).  NULL before cri_image_init succeeded. */
struct cric_image_store *cri_image_store(const cricd *d);

/** The pulls in flight with their latest per-layer progress, as JSON for
 * Status verbose's "pulls" key (see cric_pullproc_progress_json). */
int cri_image_pulls_json(cricd *d, char **out, cric_error **err);

#endif
