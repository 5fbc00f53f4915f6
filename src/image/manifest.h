/* Image manifests (Docker schema 2, OCI), manifest lists / OCI indexes, and
 * image configs.  Pure parsing: no I/O. */
#ifndef CRIC_IMAGE_MANIFEST_H
#define CRIC_IMAGE_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "image/store.h"
#include "util/err.h"

#define CRIC_MANIFEST_MAX_BYTES (4u << 20)
#define CRIC_CONFIG_MAX_BYTES (8u << 20)
#define CRIC_MANIFEST_MAX_LAYERS 128
#define CRIC_INDEX_MAX_ENTRIES 1024

#define CRIC_MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define CRIC_MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define CRIC_MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define CRIC_MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
/** The Accept header value of a manifest request. */
#define CRIC_MANIFEST_ACCEPT \
    CRIC_MT_OCI_INDEX ", " CRIC_MT_DOCKER_LIST ", " CRIC_MT_OCI_MANIFEST ", " CRIC_MT_DOCKER_MANIFEST

enum cric_compression { CRIC_COMP_NONE, CRIC_COMP_GZIP, CRIC_COMP_ZSTD };

struct cric_descriptor {
    char *media_type;
    char *digest;   /* validated "sha256:<hex>" */
    int64_t size;   /* >= 0 */
    char *os, *architecture, *variant;  /* index entries only, may be NULL */
    enum cric_compression compression;  /* layers only */
};

enum cric_manifest_kind { CRIC_MANIFEST_IMAGE, CRIC_MANIFEST_INDEX };

struct cric_manifest {
    enum cric_manifest_kind kind;
    char *media_type;
    struct cric_descriptor config;     /* IMAGE */
    struct cric_descriptor *layers;    /* IMAGE */
    size_t n_layers;
    struct cric_descriptor *manifests; /* INDEX */
    size_t n_manifests;
};

/** Parses a manifest or index.  content_type is the registry's Content-Type
 * (may be NULL); the document's own mediaType wins when present. */
int cric_manifest_parse(const char *data, size_t len, const char *content_type, struct cric_manifest **out,
                        cric_error **err);
void cric_manifest_free(struct cric_manifest *m);

/** This node's platform in OCI terms (GOOS/GOARCH/variant). */
void cric_platform_host(const char **os, const char **arch, const char **variant);
/** Picks the entry of an index for os/arch/variant (variant may be NULL).
 * Returns its index, or -ENOENT with a message listing what is there. */
int cric_manifest_choose(const struct cric_manifest *idx, const char *os, const char *arch, const char *variant,
                         cric_error **err);

/** Parses an image config blob: the runtime config and rootfs.diff_ids. */
int cric_image_config_parse(const char *data, size_t len, struct cric_image_config *cfg, char ***diff_ids,
                            cric_error **err);
void cric_image_config_clear(struct cric_image_config *cfg);

#endif
