/* RuntimeService stats RPCs: ContainerStats, ListContainerStats,
 * PodSandboxStats, ListPodSandboxStats (kubelet's CRI stats provider). */
#include "config.h"

#include <errno.h>

#include "api.pb-c.h"
#include "container/container.h"
#include "cri/cri.h"
#include "util/log.h"

#define RUNTIME_PATH(m) "/runtime.v1.RuntimeService/" m

static void fail(cric_call *call, const cric_error *err)
{
    /* An unknown id is the caller's business (kubelet races removals). */
    if (err && err->code == -ENOENT)
        LOG_DEBUG("%s: %s", cric_call_method(call), err->msg);
    else
        LOG_WARN("%s failed: %s", cric_call_method(call), err ? err->msg : "?");
    cric_call_fail_error(call, err);
}

static void on_ctr_list_done(void *data, int rc, const cric_error *err,
                             const Runtime__V1__ListContainerStatsResponse *resp)
{
    if (rc < 0)
        fail(data, err);
    else
        cric_call_reply(data, &resp->base);
}

static void on_ctr_one_done(void *data, int rc, const cric_error *err,
                            const Runtime__V1__ListContainerStatsResponse *resp)
{
    if (rc < 0 || resp->n_stats != 1) {
        cric_error *e = NULL;
        if (rc >= 0)
            cric_error_new(&e, -ENOENT, "container removed while its stats were read");
        fail(data, e ? e : err);
        cric_error_free(e);
        return;
    }
    Runtime__V1__ContainerStatsResponse one = RUNTIME__V1__CONTAINER_STATS_RESPONSE__INIT;
    one.stats = resp->stats[0];
    cric_call_reply(data, &one.base);
}

static void on_container_stats(cric_call *call, const ProtobufCMessage *msg, void *ctx)
{
    cricd *d = ctx;
    const Runtime__V1__ContainerStatsRequest *req = (const Runtime__V1__ContainerStatsRequest *)msg;
    if (!req->container_id || !req->container_id[0]) {
        cric_call_fail(call, GRPC_INVALID_ARGUMENT, "container_id is empty");
        return;
    }
    cric_container_stats(d->containers, req->container_id, NULL, on_ctr_one_done, call);
}

static void on_list_container_stats(cric_call *call, const ProtobufCMessage *msg, void *ctx)
{
    cricd *d = ctx;
    const Runtime__V1__ListContainerStatsRequest *req = (const Runtime__V1__ListContainerStatsRequest *)msg;
    cric_container_stats(d->containers, NULL, req->filter, on_ctr_list_done, call);
}

static void on_pod_list_done(void *data, int rc, const cric_error *err,
                             const Runtime__V1__ListPodSandboxStatsResponse *resp)
{
    if (rc < 0)
        fail(data, err);
    else
        cric_call_reply(data, &resp->base);
}

static void on_pod_one_done(void *data, int rc, const cric_error *err,
                            const Runtime__V1__ListPodSandboxStatsResponse *resp)
{
    if (rc < 0 || resp->n_stats != 1) {
        cric_error *e = NULL;
        if (rc >= 0)
            cric_error_new(&e, -ENOENT, "pod sandbox removed while its stats were read");
        fail(data, e ? e : err);
        cric_error_free(e);
        return;
    }
    Runtime__V1__PodSandboxStatsResponse one = RUNTIME__V1__POD_SANDBOX_STATS_RESPONSE__INIT;
    one.stats = resp->stats[0];
    cric_call_reply(data, &one.base);
}

static void on_pod_stats(cric_call *call, const ProtobufCMessage *msg, void *ctx)
{
    cricd *d = ctx;
    const Runtime__V1__PodSandboxStatsRequest *req = (const Runtime__V1__PodSandboxStatsRequest *)msg;
    if (!req->pod_sandbox_id || !req->pod_sandbox_id[0]) {
        cric_call_fail(call, GRPC_INVALID_ARGUMENT, "pod_sandbox_id is empty");
        return;
    }
    cric_container_pod_stats(d->containers, req->pod_sandbox_id, NULL, on_pod_one_done, call);
}

static void on_list_pod_stats(cric_call *call, const ProtobufCMessage *msg, void *ctx)
{
    cricd *d = ctx;
    const Runtime__V1__ListPodSandboxStatsRequest *req = (const Runtime__V1__ListPodSandboxStatsRequest *)msg;
    cric_container_pod_stats(d->containers, NULL, req->filter, on_pod_list_done, call);
}

int cri_stats_register(cricd *d, cric_error **err)
{
    static const struct {
        const char *path;
        const ProtobufCMessageDescriptor *desc;
        cric_method_fn fn;
    } methods[] = {
        {RUNTIME_PATH("ContainerStats"), &runtime__v1__container_stats_request__descriptor, on_container_stats},
        {RUNTIME_PATH("ListContainerStats"), &runtime__v1__list_container_stats_request__descriptor,
         on_list_container_stats},
        {RUNTIME_PATH("PodSandboxStats"), &runtime__v1__pod_sandbox_stats_request__descriptor, on_pod_stats},
        {RUNTIME_PATH("ListPodSandboxStats"), &runtime__v1__list_pod_sandbox_stats_request__descriptor,
         on_list_pod_stats},
    };
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        int r = cric_server_register(d->server, methods[i].path, methods[i].desc, false, methods[i].fn, d);
        if (r < 0)
            return cric_error_sys(err, r, "register %s", methods[i].path);
    }
    return 0;
}
