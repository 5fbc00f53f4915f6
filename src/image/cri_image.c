/* ImageService: PullImage, ListImages, ImageStatus, RemoveImage, ImageFsInfo.
 * Thin handlers over the store (store.c) and the pull helpers (pullproc.c). */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.pb-c.h"
#include "cri/cri.h"
#include "image/cri_image.h"
#include "image/pullproc.h"
#include "image/store.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/log.h"

struct cric_image_service {
    cricd *d;
    struct cric_image_store *store;
    struct cric_pullproc *puller;
};

#define IMAGE_PATH(m) "/runtime.v1.ImageService/" m

struct cric_image_store *cri_image_store(const cricd *d) { return d->images ? d->images->store : NULL; }

int cri_image_pulls_json(cricd *d, char **out, cric_error **err)
{
    return cric_pullproc_progress_json(d->images ? d->images->puller : NULL, out, err);
}

/* ---- Image messages ---- */

struct image_msg {
    Runtime__V1__Image img;
    Runtime__V1__Int64Value uid;
    Runtime__V1__ImageSpec spec;
    char username[256];
};

/* Fills m from img; pointers borrow from img (valid until the store changes). */
static void image_msg_fill(struct image_msg *m, const struct cric_image *img)
{
    runtime__v1__image__init(&m->img);
    runtime__v1__int64_value__init(&m->uid);
    runtime__v1__image_spec__init(&m->spec);
    m->img.id = img->id;
    m->img.n_repo_tags = 0;
    while (img->repo_tags[m->img.n_repo_tags])
        m->img.n_repo_tags++;
    m->img.repo_tags = img->repo_tags;
    while (img->repo_digests[m->img.n_repo_digests])
        m->img.n_repo_digests++;
    m->img.repo_digests = img->repo_digests;
    m->img.size = img->size;
    m->img.pinned = img->pinned;
    m->spec.image = img->id;
    m->img.spec = &m->spec;
    /* USER is "name|uid[:group]": a number is reported as uid, else username. */
    const char *u = img->config.user;
    char *end = NULL;
    if (u[0]) {
        long long v = strtoll(u, &end, 10);
        if (end != u && (*end == '\0' || *end == ':') && v >= 0) {
            m->uid.value = v;
            m->img.uid = &m->uid;
        } else {
            size_t n = strcspn(u, ":");
            snprintf(m->username, sizeof(m->username), "%.*s", (int)n, u);
            m->img.username = m->username;
        }
    }
}

static const char *spec_image(const Runtime__V1__ImageSpec *spec)
{
    return spec && spec->image ? spec->image : "";
}

/* ---- handlers ---- */

struct pull_ctx {
    struct cric_image_service *s;
    cric_call *call;
    char *ref;
    struct timespec start;
};

static void pull_done(void *data, const struct cric_image *img, const cric_error *err)
{
    struct pull_ctx *pc = data;
    if (!img) {
        LOG_INFO("%s", err->msg);
        cric_call_fail_error(pc->call, err);
    } else {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        LOG_INFO("pulled image '%s' as %s (%.2fs)", pc->ref, img->id,
                 (double)(now.tv_sec - pc->start.tv_sec) + (now.tv_nsec - pc->start.tv_nsec) / 1e9);
        Runtime__V1__PullImageResponse resp = RUNTIME__V1__PULL_IMAGE_RESPONSE__INIT;
        resp.image_ref = img->id;
        cric_call_reply(pc->call, &resp.base);
    }
    free(pc->ref);
    free(pc);
}

static void on_pull(cric_call *call, const ProtobufCMessage *msg, void *ctx)
{
    cricd *d = ctx;
    struct cric_image_service *s = d->images;
    const Runtime__V1__PullImageRequest *req = (const Runtime__V1__PullImageRequest *)msg;
    const char *ref = spec_image(req->image);
    struct cric_pull_auth auth = {0};
    if (req->auth) {
        auth.username = req->auth->username;
        auth.password = req->auth->password;
        auth.auth = req->auth->auth;
        auth.identity_token = req->auth->identity_token;
        auth.registry_token = req->auth->registry_token;
    }
    struct pull_ctx *pc = calloc(1, sizeof(*pc));
    if (!pc || !(pc->ref = strdup(ref))) {
        free(pc);
        cric_call_fail(call, GRPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    pc->s = s;
    pc->call = call;
    clock_gettime(CLOCK_MONOTONIC, &pc->start);
    LOG_DEBUG("pulling image '%s'%s", ref, req->auth ? " with credentials" : "");
    cric_error *err = NULL;
    if (cric_pullproc_pull(s->puller, ref, &auth, pull_done, NULL, pc, &err) < 0) {
        cric_call_fail_error(call, err);
        cric_error_free(err);
        free(pc->ref);
        free(pc);
    }
}

static void on_list(cric_call *call, const ProtobufCMessage *msg, void *ctx)
{
    cricd *d = ctx;
    struct cric_image_service *s = d->images;
    const Runtime__V1__ListImagesRequest *req = (const Runtime__V1__ListImagesRequest *)msg;
    const char *filter = req->filter ? spec_image(req->filter->image) : "";
    size_t n = 0;
    const struct cric_image *const *all = cric_image_store_list(s->store, &n);
    const struct cric_image *one = NULL;
    if (filter[0]) {
        n = 0;
        if (cric_image_store_lookup(s->store, filter, &one, NULL) == 0) {
            all = &one;
            n = 1;
        }
    }
    _cleanup_free_ struct image_msg *msgs = calloc(n ? n : 1, sizeof(*msgs));
    _cleanup_free_ Runtime__V1__Image **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
    if (!msgs || !ptrs) {
        cric_call_fail(call, GRPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        image_msg_fill(&msgs[i], all[i]);
        ptrs[i] = &msgs[i].img;
    }
    Runtime__V1__ListImagesResponse resp = RUNTIME__V1__LIST_IMAGES_RESPONSE__INIT;
    resp.n_images = n;
    resp.images = ptrs;
    cric_call_reply(call, &resp.base);
}

static void on_status(cric_call *call, const ProtobufCMessage *msg, void *ctx)
{
    cricd *d = ctx;
    struct cric_image_service *s = d->images;
    const Runtime__V1__ImageStatusRequest *req = (const Runtime__V1__ImageStatusRequest *)msg;
    const struct cric_image *img = NULL;
    cric_error *err = NULL;
    Runtime__V1__ImageStatusResponse resp = RUNTIME__V1__IMAGE_STATUS_RESPONSE__INIT;
    int r = cric_image_store_lookup(s->store, spec_image(req->image), &img, &err);
    if (r == -ENOENT) {
        cric_call_reply(call, &resp.base); /* absent: OK with no image */
        return;
    }
    if (r < 0) {
        cric_call_fail_error(call, err);
        cric_error_free(err);
        return;
    }
    struct image_msg m;
    image_msg_fill(&m, img);
    resp.image = &m.img;
    _cleanup_free_ char *json = NULL;
    Runtime__V1__ImageStatusResponse__InfoEntry entry = RUNTIME__V1__IMAGE_STATUS_RESPONSE__INFO_ENTRY__INIT;
    Runtime__V1__ImageStatusResponse__InfoEntry *info[] = {&entry};
    if (req->verbose && cric_image_to_json(img, &json, NULL) == 0) {
        entry.key = "info";
        entry.value = json;
        resp.n_info = 1;
        resp.info = info;
    }
    cric_call_reply(call, &resp.base);
}

static void on_remove(cric_call *call, const ProtobufCMessage *msg, void *ctx)
{
    cricd *d = ctx;
    struct cric_image_service *s = d->images;
    const Runtime__V1__RemoveImageRequest *req = (const Runtime__V1__RemoveImageRequest *)msg;
    const char *ref = spec_image(req->image);
    cric_error *err = NULL;
    int r = cric_image_store_remove(s->store, ref, &err);
    if (r < 0 && r != -ENOENT) {
        if (r == -EPERM)
            cric_call_fail(call, GRPC_FAILED_PRECONDITION, "%s", err->msg);
        else
            cric_call_fail_error(call, err);
        cric_error_free(err);
        return;
    }
    if (r == 0) {
        LOG_INFO("removed image '%s'", ref);
        cric_image_store_gc_queue(s->d->loop, s->store, NULL, NULL);
    }
    Runtime__V1__RemoveImageResponse resp = RUNTIME__V1__REMOVE_IMAGE_RESPONSE__INIT;
    cric_call_reply(call, &resp.base);
}

struct fsinfo_job {
    uv_work_t work;
    cric_call *call;
    char *dir;
    uint64_t bytes, inodes;
    int r;
    cric_error *err;
};

static void fsinfo_work(uv_work_t *w)
{
    struct fsinfo_job *j = w->data;
    j->r = cric_image_store_usage(j->dir, &j->bytes, &j->inodes, &j->err);
}

static void fsinfo_after(uv_work_t *w, int status)
{
    struct fsinfo_job *j = w->data;
    if (j->r < 0) {
        cric_call_fail_error(j->call, j->err);
    } else {
        Runtime__V1__FilesystemIdentifier id = RUNTIME__V1__FILESYSTEM_IDENTIFIER__INIT;
        Runtime__V1__UInt64Value bytes = RUNTIME__V1__UINT64_VALUE__INIT, inodes = RUNTIME__V1__UINT64_VALUE__INIT;
        Runtime__V1__FilesystemUsage u = RUNTIME__V1__FILESYSTEM_USAGE__INIT;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        u.timestamp = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
        id.mountpoint = j->dir;
        bytes.value = j->bytes;
        inodes.value = j->inodes;
        u.fs_id = &id;
        u.used_bytes = &bytes;
        u.inodes_used = &inodes;
        Runtime__V1__FilesystemUsage *list[] = {&u};
        Runtime__V1__ImageFsInfoResponse resp = RUNTIME__V1__IMAGE_FS_INFO_RESPONSE__INIT;
        resp.n_image_filesystems = 1;
        resp.image_filesystems = list;
        cric_call_reply(j->call, &resp.base);
    }
    cric_error_free(j->err);
    free(j->dir);
    free(j);
}

static void on_fsinfo(cric_call *call, const ProtobufCMessage *msg, void *ctx)
{
    cricd *d = ctx;
    struct cric_image_service *s = d->images;
    struct fsinfo_job *j = calloc(1, sizeof(*j));
    if (!j || !(j->dir = strdup(cric_image_store_dir(s->store)))) {
        free(j);
        cric_call_fail(call, GRPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    j->call = call;
    j->work.data = j;
    if (uv_queue_work(d->loop, &j->work, fsinfo_work, fsinfo_after) < 0) {
        free(j->dir);
        free(j);
        cric_call_fail(call, GRPC_INTERNAL, "cannot queue the usage walk");
    }
}

/* Called once the puller is gone: nothing refers to the store any more. */
static void service_free(void *data)
{
    struct cric_image_service *s = data;
    cric_image_store_free(s->store);
    free(s);
}

int cri_image_init(cricd *d, cric_error **err)
{
    struct cric_image_service *s = calloc(1, sizeof(*s));
    if (!s)
        return cric_error_sys(err, -ENOMEM, "image service");
    s->d = d;
    int r = cric_image_store_open(d->cfg->root, &s->store, err);
    if (r < 0)
        goto fail;
    if ((r = cric_image_store_set_pinned(s->store, d->cfg->images_pinned, err)) < 0)
        goto fail;
    char *helper = cric_helper_path("cric-pull");
    r = helper ? cric_pullproc_new(d->loop, s->store, d->cfg, helper, &s->puller, err)
               : cric_error_sys(err, -ENOMEM, "image service");
    free(helper);
    if (r < 0)
        goto fail;
    static const struct {
        const char *path;
        const ProtobufCMessageDescriptor *in;
        cric_method_fn fn;
    } methods[] = {
        {IMAGE_PATH("PullImage"), &runtime__v1__pull_image_request__descriptor, on_pull},
        {IMAGE_PATH("ListImages"), &runtime__v1__list_images_request__descriptor, on_list},
        {IMAGE_PATH("ImageStatus"), &runtime__v1__image_status_request__descriptor, on_status},
        {IMAGE_PATH("RemoveImage"), &runtime__v1__remove_image_request__descriptor, on_remove},
        {IMAGE_PATH("ImageFsInfo"), &runtime__v1__image_fs_info_request__descriptor, on_fsinfo},
    };
    for (size_t i = 0; i < ARRAY_SIZE(methods); i++)
        if ((r = cric_server_register(d->server, methods[i].path, methods[i].in, false, methods[i].fn, d)) < 0) {
            cric_error_sys(err, r, "register %s", methods[i].path);
            goto fail;
        }
    d->images = s;
    return 0;
fail:
    if (s->puller) {
        cric_pullproc_close(s->puller, service_free, s);
        return r;
    }
    service_free(s);
    return r;
}

void cri_image_fini(cricd *d)
{
    struct cric_image_service *s = d->images;
    if (!s)
        return;
    /* Pulls in flight fail now (their helpers are killed); the puller frees
     * itself (then the store) once the helpers' handles are closed: the
     * daemon keeps running the loop after fini. */
    d->images = NULL;
    cric_pullproc_close(s->puller, service_free, s);
}
