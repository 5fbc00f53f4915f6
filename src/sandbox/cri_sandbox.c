/* RuntimeService pod sandbox RPCs: RunPodSandbox, StopPodSandbox,
 * RemovePodSandbox, PodSandboxStatus, ListPodSandbox. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.pb-c.h"
#include "cri/cri.h"
#include "sandbox/sandbox.h"
#include "util/cleanup.h"
#include "util/log.h"

#define RUNTIME_PATH(m) "/runtime.v1.RuntimeService/" m

/* What an async handler needs back in its completion. */
struct pending {
    cric_call *call;
    cricd *d;
};

static struct pending *pending_new(cric_call *call, cricd *d)
{
    struct pending *p = malloc(sizeof(*p));
    if (!p) {
        cric_call_fail(call, GRPC_RESOURCE_EXHAUSTED, "%s: out of memory", cric_call_method(call));
        return NULL;
    }
    p->call = call;
    p->d = d;
    return p;
}

static void on_run_done(void *data, int rc, const cric_error *err, const char *id)
{
    struct pending *p = data;
    cric_call *call = p->call;
    cricd *d = p->d;
    free(p);
    if (rc < 0) {
        LOG_WARN("RunPodSandbox %s failed: %s", id, err ? err->msg : "?");
        cric_call_fail_error(call, err);
        return;
    }
    LOG_INFO("pod sandbox %s ready", id);
    LOG_DEBUG("RunPodSandbox %s: %.3f ms in child processes (%.3f ms spawning)", id,
              cric_sandbox_last_child_ns(d->sandboxes) / 1e6, cric_sandbox_last_spawn_ns(d->sandboxes) / 1e6);
    Runtime__V1__RunPodSandboxResponse resp = RUNTIME__V1__RUN_POD_SANDBOX_RESPONSE__INIT;
    resp.pod_sandbox_id = (char *)id;
    cric_call_reply(call, &resp.base);
}

static void on_run(cric_call *call, const ProtobufCMessage *msg, void *ctx)
{
    cricd *d = ctx;
    const Runtime__V1__RunPodSandboxRequest *req = (const Runtime__V1__RunPodSandboxRequest *)msg;
    const char *handler = req->runtime_handler ? req->runtime_handler : "";
    if (!cric_config_handler(d->cfg, handler)) {
        cric_call_fail(call, GRPC_INVALID_ARGUMENT, "RunPodSandbox: unknown runtime handler '%s'", handler);
        return;
    }
    cric_error *err = NULL;
    /* The pod CIDR may have changed through UpdateRuntimeConfig. */
    cric_sandbox_set_pod_cidr(d->sandboxes, cri_runtime_pod_cidr(d), NULL);
    struct pending *p = pending_new(call, d);
    if (!p)
        return;
    if (cric_sandbox_run(d->sandboxes, req->config, handler, on_run_done, p, &err) < 0) {
        free(p);
        cric_call_fail_error(call, err);
        cric_error_free(err);
    }
}

static void on_simple_done(void *data, int rc, const cric_error *err, const char *id)
{
    struct pending *p = data;
    cric_call *call = p->call;
    cricd *d = p->d;
    free(p);
    LOG_DEBUG("%s %s: %.3f ms in child processes (%.3f ms spawning)", cric_call_method(call), id,
              cric_sandbox_last_child_ns(d->sandboxes) / 1e6, cric_sandbox_last_spawn_ns(d->sandboxes) / 1e6);
    if (rc < 0) {
        LOG_WARN("%s %s failed: %s", cric_call_method(call), id, err ? err->msg : "?");
        cric_call_fail_error(call, err);
        return;
    }
    if (strstr(cric_call_method(call), "Stop")) {
        Runtime__V1__StopPodSandboxResponse resp = RUNTIME__V1__STOP_POD_SANDBOX_RESPONSE__INIT;
        cric_call_reply(call, &resp.base);
    } else {
        Runtime__V1__RemovePodSandboxResponse resp = RUNTIME__V1__REMOVE_POD_SANDBOX_RESPONSE__INIT;
        cric_call_reply(call, &resp.base);
    }
}

static void on_stop(cric_call *call, const ProtobufCMessage *msg, void *ctx)
{
    cricd *d = ctx;
    const Runtime__V1__StopPodSandboxRequest *req = (const Runtime__V1__StopPodSandboxRequest *)msg;
    if (!req->pod_sandbox_id || !*req->pod_sandbox_id) {
        cric_call_fail(call, GRPC_INVALID_ARGUMENT, "StopPodSandbox: pod_sandbox_id is empty");
        return;
    }
    struct pending *p = pending_new(call, d);
    if (p)
        cric_sandbox_stop(d->sandboxes, req->pod_sandbox_id, on_simple_done, p);
}

static void on_remove(cric_call *call, const ProtobufCMessage *msg, void *ctx)
{
    cricd *d = ctx;
    const Runtime__V1__RemovePodSandboxRequest *req = (const Runtime__V1__RemovePodSandboxRequest *)msg;
    if (!req->pod_sandbox_id || !*req->pod_sandbox_id) {
        cric_call_fail(call, GRPC_INVALID_ARGUMENT, "RemovePodSandbox: pod_sandbox_id is empty");
        return;
    }
    struct pending *p = pending_new(call, d);
    if (p)
        cric_sandbox_remove(d->sandboxes, req->pod_sandbox_id, on_simple_done, p);
}

static Runtime__V1__PodSandboxState cri_state(const struct cric_sandbox *sb)
{
    return sb->state == CRIC_SANDBOX_READY ? RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_READY
                                           : RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_NOTREADY;
}

static void fill_metadata(Runtime__V1__PodSandboxMetadata *md, const struct cric_sandbox *sb)
{
    md->name = sb->name;
    md->uid = sb->uid;
    md->namespace_ = sb->namespace_;
    md->attempt = sb->attempt;
}

static void on_status(cric_call *call, const ProtobufCMessage *msg, void *ctx)
{
    cricd *d = ctx;
    const Runtime__V1__PodSandboxStatusRequest *req = (const Runtime__V1__PodSandboxStatusRequest *)msg;
    const struct cric_sandbox *sb = NULL;
    _cleanup_error_ cric_error *err = NULL;
    if (cric_sandbox_lookup(d->sandboxes, req->pod_sandbox_id, &sb, &err) < 0) {
        cric_call_fail_error(call, err);
        return;
    }
    Runtime__V1__PodSandboxStatusResponse resp = RUNTIME__V1__POD_SANDBOX_STATUS_RESPONSE__INIT;
    Runtime__V1__PodSandboxStatus *st = cric_sandbox_status_new(sb);
    if (!st) {
        cric_call_fail(call, GRPC_RESOURCE_EXHAUSTED, "PodSandboxStatus: out of memory");
        return;
    }
    resp.status = st;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    resp.timestamp = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    _cleanup_free_ char *info = NULL;
    Runtime__V1__PodSandboxStatusResponse__InfoEntry ie = RUNTIME__V1__POD_SANDBOX_STATUS_RESPONSE__INFO_ENTRY__INIT;
    Runtime__V1__PodSandboxStatusResponse__InfoEntry *iep = &ie;
    if (req->verbose && cric_sandbox_info_json(sb, &info, NULL) == 0) {
        ie.key = "info";
        ie.value = info;
        resp.n_info = 1;
        resp.info = &iep;
    }
    cric_call_reply(call, &resp.base);
    cric_sandbox_status_free(st);
}

struct list_ctx {
    const Runtime__V1__PodSandboxFilter *f;
    Runtime__V1__PodSandbox *items;
    Runtime__V1__PodSandboxMetadata *mds;
    Runtime__V1__PodSandbox **ptrs;
    size_t n, cap;
    bool oom;
};

static const char *label_of(const struct cric_sandbox *sb, const char *key)
{
    for (size_t i = 0; i < sb->config->n_labels; i++)
        if (strcmp(sb->config->labels[i]->key, key) == 0)
            return sb->config->labels[i]->value;
    return NULL;
}

static void list_one(const struct cric_sandbox *sb, void *data)
{
    struct list_ctx *c = data;
    const Runtime__V1__PodSandboxFilter *f = c->f;
    if (f) {
        if (f->id && *f->id && strncmp(sb->id, f->id, strlen(f->id)) != 0)
            return;
        if (f->state && f->state->state != cri_state(sb))
            return;
        for (size_t i = 0; i < f->n_label_selector; i++) {
            const char *v = label_of(sb, f->label_selector[i]->key);
            if (!v || strcmp(v, f->label_selector[i]->value) != 0)
                return;
        }
    }
    if (c->n == c->cap || c->oom) {
        c->oom = true;
        return;
    }
    Runtime__V1__PodSandbox *p = &c->items[c->n];
    Runtime__V1__PodSandboxMetadata *md = &c->mds[c->n];
    runtime__v1__pod_sandbox__init(p);
    runtime__v1__pod_sandbox_metadata__init(md);
    fill_metadata(md, sb);
    p->id = (char *)sb->id;
    p->metadata = md;
    p->state = cri_state(sb);
    p->created_at = sb->created_at;
    p->n_labels = sb->config->n_labels;
    p->labels = (Runtime__V1__PodSandbox__LabelsEntry **)sb->config->labels;
    p->n_annotations = sb->config->n_annotations;
    p->annotations = (Runtime__V1__PodSandbox__AnnotationsEntry **)sb->config->annotations;
    p->runtime_handler = sb->runtime_handler;
    c->ptrs[c->n++] = p;
}

static void count_one(const struct cric_sandbox *sb, void *data)
{
    (void)sb;
    (*(size_t *)data)++;
}

static void on_list(cric_call *call, const ProtobufCMessage *msg, void *ctx)
{
    cricd *d = ctx;
    const Runtime__V1__ListPodSandboxRequest *req = (const Runtime__V1__ListPodSandboxRequest *)msg;
    size_t total = 0;
    cric_sandbox_foreach(d->sandboxes, count_one, &total);
    struct list_ctx c = { .f = req->filter, .cap = total };
    c.items = calloc(total + 1, sizeof(*c.items));
    c.mds = calloc(total + 1, sizeof(*c.mds));
    c.ptrs = calloc(total + 1, sizeof(*c.ptrs));
    if (!c.items || !c.mds || !c.ptrs) {
        cric_call_fail(call, GRPC_RESOURCE_EXHAUSTED, "ListPodSandbox: out of memory");
    } else {
        cric_sandbox_foreach(d->sandboxes, list_one, &c);
        Runtime__V1__ListPodSandboxResponse resp = RUNTIME__V1__LIST_POD_SANDBOX_RESPONSE__INIT;
        resp.n_items = c.n;
        resp.items = c.ptrs;
        cric_call_reply(call, &resp.base);
    }
    free(c.items);
    free(c.mds);
    free(c.ptrs);
}

static void on_net_check(void *data, const char *id, int rc, const char *msg)
{
    (void)data;
    if (rc < 0)
        LOG_WARN("pod sandbox %s: network check (CNI CHECK) failed: %s", id, msg ? msg : "?");
    else
        LOG_INFO("pod sandbox %s: network check (CNI CHECK) passed", id);
}

int cri_sandbox_init(cricd *d, cric_error **err)
{
    const struct cric_config *cfg = d->cfg;
    struct cric_sandbox_opts o = {
        .root = cfg->root,
        .state = cfg->state,
        .cni_plugin_dirs = (const char *const *)cfg->network_plugin_dirs,
        .cni_config_dir = cfg->network_config_dir,
        .cni_cache_dir = cfg->network_cache_dir && *cfg->network_cache_dir ? cfg->network_cache_dir : NULL,
        .cgroup_parent = cfg->sandbox_cgroup_parent,
        .cgroup_driver = cfg->cgroup_driver,
        .cni_timeout_ms = cfg->network_plugin_timeout * 1000,
        .shm_size = cfg->sandbox_shm_size,
        .net_check_cb = on_net_check,
    };
    /* Finer than the config's seconds, for tests. */
    const char *t = getenv("CRICD_CNI_TIMEOUT_MS");
    if (t && *t)
        o.cni_timeout_ms = strtoull(t, NULL, 10);
    int r = cric_sandbox_service_new(d->loop, &o, &d->sandboxes, err);
    if (r < 0)
        return cric_error_prefix(err, "sandboxes");
    static const struct {
        const char *path;
        const ProtobufCMessageDescriptor *desc;
        cric_method_fn fn;
    } methods[] = {
        { RUNTIME_PATH("RunPodSandbox"), &runtime__v1__run_pod_sandbox_request__descriptor, on_run },
        { RUNTIME_PATH("StopPodSandbox"), &runtime__v1__stop_pod_sandbox_request__descriptor, on_stop },
        { RUNTIME_PATH("RemovePodSandbox"), &runtime__v1__remove_pod_sandbox_request__descriptor, on_remove },
        { RUNTIME_PATH("PodSandboxStatus"), &runtime__v1__pod_sandbox_status_request__descriptor, on_status },
        { RUNTIME_PATH("ListPodSandbox"), &runtime__v1__list_pod_sandbox_request__descriptor, on_list },
    };
    for (size_t i = 0; i < ARRAY_SIZE(methods); i++) {
        r = cric_server_register(d->server, methods[i].path, methods[i].desc, false, methods[i].fn, d);
        if (r < 0)
            return cric_error_sys(err, r, "register %s", methods[i].path);
    }
    return 0;
}

void cri_sandbox_fini(cricd *d)
{
    if (d->sandboxes)
        cric_sandbox_service_close(d->sandboxes, NULL, NULL);
    d->sandboxes = NULL;
}
