/* ContainerStatus and ListContainers.  Responses borrow strings from the
 * containers (valid until the caller answers, on the same loop turn) and
 * own only what they allocate, through a small arena. */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "container/arena.h"
#include "container/internal.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/yj.h"

static Runtime__V1__ContainerState cri_state(const struct ctr *c)
{
    switch (c->state) {
    case CTR_CREATED:
        return RUNTIME__V1__CONTAINER_STATE__CONTAINER_CREATED;
    case CTR_RUNNING:
        return RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING;
    case CTR_EXITED:
        return RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED;
    default:
        return RUNTIME__V1__CONTAINER_STATE__CONTAINER_UNKNOWN;
    }
}

struct status_box {
    Runtime__V1__ContainerStatusResponse resp; /* first: the box is the response */
    struct arena a;
};

#define GS(g, s) yajl_gen_string((g), (const unsigned char *)(s), strlen(s))

/* verbose info: {"pid", "sandboxID", "runtimeHandler", "runtime", "bundle",
 * "rootfs", "shimStateDir", "runtimeSpec": <config.json>} */
static char *verbose_info(const struct ctr *c)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    if (!g)
        return NULL;
    yajl_gen_map_open(g);
    GS(g, "id");
    GS(g, c->id);
    GS(g, "pid");
    yajl_gen_integer(g, c->state == CTR_RUNNING || c->state == CTR_CREATED ? c->pid : 0);
    GS(g, "sandboxID");
    GS(g, c->sandbox_id);
    GS(g, "runtimeHandler");
    GS(g, c->handler);
    GS(g, "runtime");
    GS(g, c->runtime);
    GS(g, "runtimeRoot");
    GS(g, c->runtime_root);
    GS(g, "bundle");
    GS(g, c->dir);
    GS(g, "shimStateDir");
    GS(g, c->state_dir);
    GS(g, "removing");
    yajl_gen_bool(g, c->removing);
    char path[4096];
    snprintf(path, sizeof(path), "%s/config.json", c->dir);
    _cleanup_free_ char *spec = NULL;
    if (cric_read_file(path, 4 << 20, &spec, NULL, NULL) == 0) {
        yajl_val v = yajl_tree_parse(spec, NULL, 0);
        if (v) {
            GS(g, "runtimeSpec");
            cric_yj_gen_value(g, v);
            yajl_tree_free(v);
        }
    }
    yajl_gen_map_close(g);
    const unsigned char *buf;
    size_t len;
    yajl_gen_get_buf(g, &buf, &len);
    char *out = strndup((const char *)buf, len);
    yajl_gen_free(g);
    return out;
}

int cric_container_status(struct cric_container_service *svc, const char *id, bool verbose,
                          Runtime__V1__ContainerStatusResponse **out, cric_error **err)
{
    struct ctr *c = cric__ctr_find(svc, id, err);
    if (!c)
        return (*err)->code;
    struct status_box *box = calloc(1, sizeof(*box));
    if (!box)
        return cric_error_sys(err, -ENOMEM, "ContainerStatus");
    struct arena *a = &box->a;
    box->resp = (Runtime__V1__ContainerStatusResponse)RUNTIME__V1__CONTAINER_STATUS_RESPONSE__INIT;
    Runtime__V1__ContainerStatus *st = arena_calloc(a, 1, sizeof(*st));
    Runtime__V1__ImageSpec *is = arena_calloc(a, 1, sizeof(*is));
    Runtime__V1__ContainerUser *cu = arena_calloc(a, 1, sizeof(*cu));
    Runtime__V1__LinuxContainerUser *lu = arena_calloc(a, 1, sizeof(*lu));
    if (a->failed)
        goto oom;
    *st = (Runtime__V1__ContainerStatus)RUNTIME__V1__CONTAINER_STATUS__INIT;
    *is = (Runtime__V1__ImageSpec)RUNTIME__V1__IMAGE_SPEC__INIT;
    *cu = (Runtime__V1__ContainerUser)RUNTIME__V1__CONTAINER_USER__INIT;
    *lu = (Runtime__V1__LinuxContainerUser)RUNTIME__V1__LINUX_CONTAINER_USER__INIT;
    const Runtime__V1__ContainerConfig *cfg = c->config;
    st->id = c->id;
    st->metadata = cfg->metadata;
    st->state = cri_state(c);
    st->created_at = c->created_at;
    st->started_at = c->started_at;
    st->finished_at = c->finished_at;
    st->exit_code = c->exit_code;
    is->image = c->image_name;
    if (cfg->image)
        is->user_specified_image = cfg->image->user_specified_image;
    st->image = is;
    st->image_ref = c->image_ref;
    st->image_id = c->image_id;
    st->reason = c->reason;
    st->message = c->message;
    COPY_MAP(a, st->n_labels, st->labels, Runtime__V1__ContainerStatus__LabelsEntry,
             RUNTIME__V1__CONTAINER_STATUS__LABELS_ENTRY__INIT, cfg->n_labels, cfg->labels);
    COPY_MAP(a, st->n_annotations, st->annotations, Runtime__V1__ContainerStatus__AnnotationsEntry,
             RUNTIME__V1__CONTAINER_STATUS__ANNOTATIONS_ENTRY__INIT, cfg->n_annotations, cfg->annotations);
    st->n_mounts = cfg->n_mounts;
    st->mounts = cfg->mounts;
    st->log_path = c->log_path;
    if (cfg->linux && cfg->linux->resources) {
        Runtime__V1__ContainerResources *r = arena_calloc(a, 1, sizeof(*r));
        if (r) {
            *r = (Runtime__V1__ContainerResources)RUNTIME__V1__CONTAINER_RESOURCES__INIT;
            r->linux = cfg->linux->resources;
            st->resources = r;
        }
    }
    lu->uid = c->uid;
    lu->gid = c->gid;
    cu->linux = lu;
    st->user = cu;
    st->stop_signal = cric_signal_to_cri(c->stop_signal);
    box->resp.status = st;
    if (verbose) {
        Runtime__V1__ContainerStatusResponse__InfoEntry *ie = arena_calloc(a, 1, sizeof(*ie));
        Runtime__V1__ContainerStatusResponse__InfoEntry **iv = arena_calloc(a, 1, sizeof(*iv));
        char *info = arena_add(a, verbose_info(c));
        if (ie && iv && info) {
            *ie = (Runtime__V1__ContainerStatusResponse__InfoEntry)
                RUNTIME__V1__CONTAINER_STATUS_RESPONSE__INFO_ENTRY__INIT;
            ie->key = "info";
            ie->value = info;
            iv[0] = ie;
            box->resp.info = iv;
            box->resp.n_info = 1;
        }
    }
    if (a->failed)
        goto oom;
    *out = &box->resp;
    return 0;
oom:
    arena_free(a);
    free(box);
    return cric_error_sys(err, -ENOMEM, "ContainerStatus");
}

void cric_container_status_free(Runtime__V1__ContainerStatusResponse *resp)
{
    if (!resp)
        return;
    struct status_box *box = (struct status_box *)resp;
    arena_free(&box->a);
    free(box);
}

struct list_box {
    Runtime__V1__ListContainersResponse resp;
    struct arena a;
};

static bool labels_match(const Runtime__V1__ContainerConfig *cfg, const Runtime__V1__ContainerFilter *f)
{
    for (size_t i = 0; i < f->n_label_selector; i++) {
        bool ok = false;
        for (size_t j = 0; j < cfg->n_labels && !ok; j++)
            ok = strcmp(cfg->labels[j]->key, f->label_selector[i]->key) == 0 &&
                 strcmp(cfg->labels[j]->value, f->label_selector[i]->value) == 0;
        if (!ok)
            return false;
    }
    return true;
}

int cric_container_list(struct cric_container_service *svc, const Runtime__V1__ContainerFilter *f,
                        Runtime__V1__ListContainersResponse **out, cric_error **err)
{
    struct list_box *box = calloc(1, sizeof(*box));
    if (!box)
        return cric_error_sys(err, -ENOMEM, "ListContainers");
    struct arena *a = &box->a;
    box->resp = (Runtime__V1__ListContainersResponse)RUNTIME__V1__LIST_CONTAINERS_RESPONSE__INIT;
    Runtime__V1__Container **v = arena_calloc(a, svc->n, sizeof(*v));
    Runtime__V1__Container *cs = arena_calloc(a, svc->n, sizeof(*cs));
    Runtime__V1__ImageSpec *is = arena_calloc(a, svc->n, sizeof(*is));
    size_t n = 0;
    for (size_t i = 0; v && cs && is && i < svc->n; i++) {
        struct ctr *c = svc->v[i];
        /* Creating containers are not there yet for kubelet. */
        if (c->state == CTR_CREATING)
            continue;
        if (f) {
            if (f->id && f->id[0] && strncmp(c->id, f->id, strlen(f->id)) != 0)
                continue;
            if (f->pod_sandbox_id && f->pod_sandbox_id[0] &&
                strncmp(c->sandbox_id, f->pod_sandbox_id, strlen(f->pod_sandbox_id)) != 0)
                continue;
            if (f->state && f->state->state != cri_state(c))
                continue;
            if (!labels_match(c->config, f))
                continue;
        }
        Runtime__V1__Container *x = &cs[n];
        *x = (Runtime__V1__Container)RUNTIME__V1__CONTAINER__INIT;
        x->id = c->id;
        x->pod_sandbox_id = c->sandbox_id;
        x->metadata = c->config->metadata;
        is[n] = (Runtime__V1__ImageSpec)RUNTIME__V1__IMAGE_SPEC__INIT;
        is[n].image = c->image_name;
        x->image = &is[n];
        x->image_ref = c->image_ref;
        x->image_id = c->image_id;
        x->state = cri_state(c);
        x->created_at = c->created_at;
        COPY_MAP(a, x->n_labels, x->labels, Runtime__V1__Container__LabelsEntry,
                 RUNTIME__V1__CONTAINER__LABELS_ENTRY__INIT, c->config->n_labels, c->config->labels);
        COPY_MAP(a, x->n_annotations, x->annotations, Runtime__V1__Container__AnnotationsEntry,
                 RUNTIME__V1__CONTAINER__ANNOTATIONS_ENTRY__INIT, c->config->n_annotations,
                 c->config->annotations);
        v[n++] = x;
    }
    if (a->failed) {
        arena_free(a);
        free(box);
        return cric_error_sys(err, -ENOMEM, "ListContainers");
    }
    box->resp.containers = v;
    box->resp.n_containers = n;
    *out = &box->resp;
    return 0;
}

void cric_container_list_free(Runtime__V1__ListContainersResponse *resp)
{
    if (!resp)
        return;
    struct list_box *box = (struct list_box *)resp;
    arena_free(&box->a);
    free(box);
}
