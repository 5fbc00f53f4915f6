/* Docker-style image references, normalised the way containerd and kubelet
 * do: "busybox" -> "docker.io/library/busybox:latest". */
#ifndef CRIC_IMAGE_REF_H
#define CRIC_IMAGE_REF_H

#include <stdbool.h>

#include "util/err.h"

struct cric_image_ref {
    char *domain;  /* "docker.io", "localhost:5000" */
    char *path;    /* "library/busybox" */
    char *tag;     /* NULL when only a digest was given */
    char *digest;  /* "sha256:<64 hex>" or NULL */
};

/** Parses and normalises s.  A reference with neither tag nor digest gets
 * tag "latest".  -EINVAL with a message naming s when invalid. */
int cric_image_ref_parse(const char *s, struct cric_image_ref *out, cric_error **err);
void cric_image_ref_clear(struct cric_image_ref *r);

/** "domain/path" (caller frees). */
char *cric_image_ref_repo(const struct cric_image_ref *r);
/** "domain/path:tag" or NULL when the reference has no tag (caller frees). */
char *cric_image_ref_tagged(const struct cric_image_ref *r);
/** "domain/path:tag@digest", the full normalised form (caller frees). */
char *cric_image_ref_string(const struct cric_image_ref *r);

/** Whether s is "sha256:" followed by exactly 64 lowercase hex digits. */
bool cric_digest_valid(const char *s);

#endif
