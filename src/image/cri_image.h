/* The CRI ImageService on the daemon (init/fini declared in cri/cri.h). */
#ifndef CRIC_IMAGE_CRI_IMAGE_H
#define CRIC_IMAGE_CRI_IMAGE_H

#include "daemon.h"
#include "image/store.h"

/** The daemon's image store, for the container and sandbox modules (loop
 * thread only).  NULL before cri_image_init succeeded. */
struct cric_image_store *cri_image_store(const cricd *d);

#endif
