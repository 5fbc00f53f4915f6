#include "config.h"
#include "image/manifest.h"
#include "image/json.h"
#include "image/ref.h"
#include "util/cleanup.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

static void desc_clear(struct cric_descriptor *d)
{
    free(d->media_type);
    free(d->digest);
    free(d->os);
    free(d->architecture);
    free(d->variant);
    memset(d, 0, sizeof(*d));
}

void cric_manifest_free(struct cric_manifest *m)
{
    if (!m)
        return;
    free(m->media_type);
    desc_clear(&m->config);
    for (size_t i = 0; i < m->n_layers; i++)
        desc_clear(&m->layers[i]);
    free(m->layers);
    for (size_t i = 0; i < m->n_manifests; i++)
        desc_clear(&m->manifests[i]);
    free(m->manifests);
    free(m);
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static int desc_parse(yajl_val v, const char *what, struct cric_descriptor *d, cric_error **err)
{
    if (!YAJL_IS_OBJECT(v))
        return cric_error_new(err, -EINVAL, "%s is not an object", what);
    const char *mt = cric__json_str(v, "mediaType");
    const char *digest = cric__json_str(v, "digest");
    yajl_val size = cric__json_get(v, "size");
    if (!digest)
        return cric_error_new(err, -EINVAL, "%s has no digest", what);
    if (!cric_digest_valid(digest))
        return cric_error_new(err, -EINVAL, "%s has an unsupported digest '%.80s' (want sha256:<64 hex>)", what,
                              digest);
    if (!YAJL_IS_INTEGER(size) || YAJL_GET_INTEGER(size) < 0)
        return cric_error_new(err, -EINVAL, "%s has no valid size", what);
    d->media_type = strdup(mt ? mt : "");
    d->digest = strdup(digest);
    d->size = YAJL_GET_INTEGER(size);
    yajl_val plat = cric__json_get(v, "platform");
    if (YAJL_IS_OBJECT(plat)) {
        d->os = dup_or_null(cric__json_str(plat, "os"));
        d->architecture = dup_or_null(cric__json_str(plat, "architecture"));
        d->variant = dup_or_null(cric__json_str(plat, "variant"));
    }
    if (!d->media_type || !d->digest) {
        desc_clear(d);
        return cric_error_new(err, -ENOMEM, "%s: out of memory", what);
    }
    return 0;
}

static int layer_compression(const char *mt, enum cric_compression *c)
{
    static const struct {
        const char *mt;
        enum cric_compression c;
    } known[] = {
        {"application/vnd.docker.image.rootfs.diff.tar.gzip", CRIC_COMP_GZIP},
        {"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", CRIC_COMP_GZIP},
        {"application/vnd.oci.image.layer.v1.tar", CRIC_COMP_NONE},
        {"application/vnd.oci.image.layer.v1.tar+gzip", CRIC_COMP_GZIP},
        {"application/vnd.oci.image.layer.v1.tar+zstd", CRIC_COMP_ZSTD},
        {"application/vnd.oci.image.layer.nondistributable.v1.tar", CRIC_COMP_NONE},
        {"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", CRIC_COMP_GZIP},
        {"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", CRIC_COMP_ZSTD},
    };
    for (size_t i = 0; i < ARRAY_SIZE(known); i++)
        if (strcmp(mt, known[i].mt) == 0) {
            *c = known[i].c;
            return 0;
        }
    return -EINVAL;
}

int cric_manifest_parse(const char *data, size_t len, const char *content_type, struct cric_manifest **out,
                        cric_error **err)
{
    if (len > CRIC_MANIFEST_MAX_BYTES)
        return cric_error_new(err, -EFBIG, "manifest is larger than %u bytes", CRIC_MANIFEST_MAX_BYTES);
    yajl_val root = NULL;
    int r = cric__json_parse(data, len, "manifest", &root, err);
    if (r < 0)
        return r;
    struct cric_manifest *m = calloc(1, sizeof(*m));
    if (!m) {
        yajl_tree_free(root);
        return cric_error_new(err, -ENOMEM, "manifest: out of memory");
    }
    r = -EINVAL;
    if (!YAJL_IS_OBJECT(root)) {
        cric_error_new(err, -EINVAL, "manifest is not a JSON object");
        goto fail;
    }
    yajl_val sv = cric__json_get(root, "schemaVersion");
    if (!YAJL_IS_INTEGER(sv) || YAJL_GET_INTEGER(sv) != 2) {
        cric_error_new(err, -EINVAL, "manifest schemaVersion is not 2 (Docker schema 1 is not supported)");
        goto fail;
    }
    const char *mt = cric__json_str(root, "mediaType");
    if (!mt || !*mt)
        mt = content_type;
    /* Content-Type may carry parameters; registries also send text/plain or
     * application/json for OCI documents without mediaType. */
    yajl_val layers = cric__json_get(root, "layers"), manifests = cric__json_get(root, "manifests");
    bool is_index;
    if (mt && (strncmp(mt, CRIC_MT_DOCKER_LIST, strlen(CRIC_MT_DOCKER_LIST)) == 0 ||
               strncmp(mt, CRIC_MT_OCI_INDEX, strlen(CRIC_MT_OCI_INDEX)) == 0)) {
        is_index = true;
    } else if (mt && (strncmp(mt, CRIC_MT_DOCKER_MANIFEST, strlen(CRIC_MT_DOCKER_MANIFEST)) == 0 ||
                      strncmp(mt, CRIC_MT_OCI_MANIFEST, strlen(CRIC_MT_OCI_MANIFEST)) == 0)) {
        is_index = false;
    } else if (mt && strstr(mt, "vnd.docker.distribution.manifest.v1")) {
        cric_error_new(err, -EINVAL, "manifest is Docker schema 1, which is not supported");
        goto fail;
    } else if (manifests && !layers) {
        is_index = true;
    } else if (layers && !manifests) {
        is_index = false;
    } else {
        cric_error_new(err, -EINVAL, "manifest has unknown media type '%.100s'", mt ? mt : "");
        goto fail;
    }
    m->media_type = strdup(mt ? mt : (is_index ? CRIC_MT_OCI_INDEX : CRIC_MT_OCI_MANIFEST));
    if (!m->media_type) {
        r = cric_error_new(err, -ENOMEM, "manifest: out of memory");
        goto fail;
    }
    char what[64];
    if (is_index) {
        m->kind = CRIC_MANIFEST_INDEX;
        if (!YAJL_IS_ARRAY(manifests)) {
            cric_error_new(err, -EINVAL, "manifest list has no 'manifests' array");
            goto fail;
        }
        size_t n = manifests->u.array.len;
        if (n > CRIC_INDEX_MAX_ENTRIES) {
            cric_error_new(err, -EINVAL, "manifest list has more than %d entries", CRIC_INDEX_MAX_ENTRIES);
            goto fail;
        }
        m->manifests = calloc(n ? n : 1, sizeof(*m->manifests));
        if (!m->manifests) {
            r = cric_error_new(err, -ENOMEM, "manifest: out of memory");
            goto fail;
        }
        for (size_t i = 0; i < n; i++) {
            snprintf(what, sizeof(what), "manifest list entry %zu", i);
            if ((r = desc_parse(manifests->u.array.values[i], what, &m->manifests[i], err)) < 0)
                goto fail;
            m->n_manifests++;
        }
    } else {
        m->kind = CRIC_MANIFEST_IMAGE;
        if ((r = desc_parse(cric__json_get(root, "config"), "manifest config", &m->config, err)) < 0)
            goto fail;
        r = -EINVAL;
        if (!YAJL_IS_ARRAY(layers)) {
            cric_error_new(err, -EINVAL, "manifest has no 'layers' array");
            goto fail;
        }
        size_t n = layers->u.array.len;
        if (n > CRIC_MANIFEST_MAX_LAYERS) {
            cric_error_new(err, -EINVAL, "manifest has %zu layers, more than the limit of %d", n,
                           CRIC_MANIFEST_MAX_LAYERS);
            goto fail;
        }
        m->layers = calloc(n ? n : 1, sizeof(*m->layers));
        if (!m->layers) {
            r = cric_error_new(err, -ENOMEM, "manifest: out of memory");
            goto fail;
        }
        for (size_t i = 0; i < n; i++) {
            snprintf(what, sizeof(what), "manifest layer %zu", i);
            if ((r = desc_parse(layers->u.array.values[i], what, &m->layers[i], err)) < 0)
                goto fail;
            m->n_layers++;
            if (layer_compression(m->layers[i].media_type, &m->layers[i].compression) < 0) {
                r = cric_error_new(err, -EINVAL, "manifest layer %zu has unsupported media type '%.100s'", i,
                                   m->layers[i].media_type);
                goto fail;
            }
        }
    }
    yajl_tree_free(root);
    *out = m;
    return 0;
fail:
    yajl_tree_free(root);
    cric_manifest_free(m);
    return r;
}

void cric_platform_host(const char **os, const char **arch, const char **variant)
{
    *os = "linux";
    *variant = NULL;
#if defined(__x86_64__)
    *arch = "amd64";
#elif defined(__aarch64__)
    *arch = "arm64";
#elif defined(__arm__)
    *arch = "arm";
    *variant = "v7";
#elif defined(__i386__)
    *arch = "386";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    *arch = "ppc64le";
#elif defined(__s390x__)
    *arch = "s390x";
#elif defined(__riscv) && __riscv_xlen == 64
    *arch = "riscv64";
#else
    *arch = "unknown";
#endif
}

int cric_manifest_choose(const struct cric_manifest *idx, const char *os, const char *arch, const char *variant,
                         cric_error **err)
{
    int best = -1;
    for (size_t i = 0; i < idx->n_manifests; i++) {
        const struct cric_descriptor *d = &idx->manifests[i];
        if (!d->os || !d->architecture || strcmp(d->os, os) != 0 || strcmp(d->architecture, arch) != 0)
            continue;
        bool dv = d->variant && *d->variant;
        if (variant && dv && strcmp(d->variant, variant) == 0)
            return (int)i; /* exact */
        if (!dv || !variant) {
            if (best < 0)
                best = (int)i;
        }
    }
    if (best >= 0)
        return best;
    char list[512] = "";
    size_t off = 0;
    for (size_t i = 0; i < idx->n_manifests && off < sizeof(list) - 1; i++) {
        const struct cric_descriptor *d = &idx->manifests[i];
        int n = snprintf(list + off, sizeof(list) - off, "%s%s/%s%s%s", i ? ", " : "", d->os ? d->os : "?",
                         d->architecture ? d->architecture : "?", d->variant ? "/" : "",
                         d->variant ? d->variant : "");
        if (n < 0)
            break;
        off += (size_t)n;
    }
    return cric_error_new(err, -ENOENT, "no image for platform %s/%s%s%s in the manifest list (has: %s)", os, arch,
                          variant ? "/" : "", variant ? variant : "", list[0] ? list : "nothing");
}

void cric_image_config_clear(struct cric_image_config *c)
{
    free(c->user);
    cric_strv_free(c->env);
    cric_strv_free(c->entrypoint);
    cric_strv_free(c->cmd);
    free(c->working_dir);
    free(c->stop_signal);
    cric_strv_free(c->exposed_ports);
    cric_strv_free(c->volumes);
    cric_strv_free(c->labels);
    free(c->os);
    free(c->architecture);
    free(c->created);
    memset(c, 0, sizeof(*c));
}

static int labels_strv(yajl_val v, char ***out)
{
    char **r = cric__strv_new();
    if (!r)
        return -ENOMEM;
    if (YAJL_IS_OBJECT(v)) {
        for (size_t i = 0; i < v->u.object.len; i++) {
            yajl_val val = v->u.object.values[i];
            _cleanup_free_ char *kv = NULL;
            if (!YAJL_IS_STRING(val))
                continue;
            if (asprintf(&kv, "%s=%s", v->u.object.keys[i], val->u.string) < 0 || cric__strv_push(&r, kv) < 0) {
                cric_strv_free(r);
                return -ENOMEM;
            }
        }
    }
    *out = r;
    return 0;
}

int cric_image_config_parse(const char *data, size_t len, struct cric_image_config *out, char ***diff_ids,
                            cric_error **err)
{
    if (len > CRIC_CONFIG_MAX_BYTES)
        return cric_error_new(err, -EFBIG, "image config is larger than %u bytes", CRIC_CONFIG_MAX_BYTES);
    yajl_val root = NULL;
    int r = cric__json_parse(data, len, "image config", &root, err);
    if (r < 0)
        return r;
    struct cric_image_config c = {0};
    char **ids = NULL;
    r = -EINVAL;
    if (!YAJL_IS_OBJECT(root)) {
        cric_error_new(err, -EINVAL, "image config is not a JSON object");
        goto fail;
    }
    yajl_val cfg = cric__json_get(root, "config");
    if (cfg && !YAJL_IS_NULL(cfg) && !YAJL_IS_OBJECT(cfg)) {
        cric_error_new(err, -EINVAL, "image config: 'config' is not an object");
        goto fail;
    }
    const char *s;
    c.user = strdup((s = cric__json_str(cfg, "User")) ? s : "");
    c.working_dir = strdup((s = cric__json_str(cfg, "WorkingDir")) ? s : "");
    c.stop_signal = strdup((s = cric__json_str(cfg, "StopSignal")) ? s : "");
    c.os = strdup((s = cric__json_str(root, "os")) ? s : "");
    c.architecture = strdup((s = cric__json_str(root, "architecture")) ? s : "");
    c.created = strdup((s = cric__json_str(root, "created")) ? s : "");
    if (!c.user || !c.working_dir || !c.stop_signal || !c.os || !c.architecture || !c.created) {
        r = cric_error_new(err, -ENOMEM, "image config: out of memory");
        goto fail;
    }
    static const char *const lists[] = {"Env", "Entrypoint", "Cmd"};
    char ***dst[] = {&c.env, &c.entrypoint, &c.cmd};
    for (size_t i = 0; i < 3; i++)
        if ((r = cric__json_strv(cric__json_get(cfg, lists[i]), dst[i])) < 0) {
            cric_error_new(err, r, "image config: '%s' is not a list of strings", lists[i]);
            goto fail;
        }
    if ((r = cric__json_keys(cric__json_get(cfg, "ExposedPorts"), &c.exposed_ports)) < 0 ||
        (r = cric__json_keys(cric__json_get(cfg, "Volumes"), &c.volumes)) < 0) {
        cric_error_new(err, r, "image config: 'ExposedPorts' or 'Volumes' is not an object");
        goto fail;
    }
    if ((r = labels_strv(cric__json_get(cfg, "Labels"), &c.labels)) < 0) {
        cric_error_new(err, r, "image config: out of memory");
        goto fail;
    }
    yajl_val rootfs = cric__json_get(root, "rootfs");
    const char *type = cric__json_str(rootfs, "type");
    if (!type || strcmp(type, "layers") != 0) {
        r = cric_error_new(err, -EINVAL, "image config: rootfs.type is not \"layers\"");
        goto fail;
    }
    if ((r = cric__json_strv(cric__json_get(rootfs, "diff_ids"), &ids)) < 0) {
        cric_error_new(err, r, "image config: rootfs.diff_ids is not a list of strings");
        goto fail;
    }
    if (cric__strv_len(ids) > CRIC_MANIFEST_MAX_LAYERS) {
        r = cric_error_new(err, -EINVAL, "image config: more than %d layers", CRIC_MANIFEST_MAX_LAYERS);
        goto fail;
    }
    for (size_t i = 0; ids[i]; i++)
        if (!cric_digest_valid(ids[i])) {
            r = cric_error_new(err, -EINVAL, "image config: diff_id %zu '%.80s' is not sha256:<64 hex>", i, ids[i]);
            goto fail;
        }
    yajl_tree_free(root);
    *out = c;
    if (diff_ids)
        *diff_ids = ids;
    else
        cric_strv_free(ids);
    return 0;
fail:
    yajl_tree_free(root);
    cric_image_config_clear(&c);
    cric_strv_free(ids);
    return r;
}
