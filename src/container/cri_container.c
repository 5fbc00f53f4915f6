/* RuntimeService container RPCs: thin wrappers over src/container. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api.pb-c.h"
#include "container/container.h"
#include "cri/cri.h"
#include "image/cri_image.h"
#include "util/cleanup.h"
#include "util/log.h"

#define RUNTIME_PATH(m) "/runtime.v1.RuntimeService/" m


static void fail(cric_call *call, const char *id, const cric_error *err)
{
    LOG_WARN("%s %s failed: %s", cric_call_method(call), id ? id : "", err ? err->msg : "?");
    cric_call_fail_error(call, err);
}

static void on_create_done(void *data, int rc, const cric_error *err, const char *id)
{
    cric_call *call = data;
    if (rc < 0) {
        fail(call, id, err);
        return;
    }
    LOG_INFO("container %s created", id);
    Runtime__V1__CreateContainerResponse resp = RUNTIME__V1__CREATE_CONTAINER_RESPONSE__INIT;
    resp.container_id = (char *)id;
    cric_call_reply(call, &resp.base);
}

static void on_create(cric_call *call, const ProtobufCMessage *msg, void *ctx)
{
    cricd *d = ctx;
    cric_error *err = NULL;
    if (cric_container_create(d->containers, (const Runtime__V1__CreateContainerRequest *)msg, on_create_done, call,
                              &err) < 0) {
        fail(call, "", err);
        cric_error_free(err);
    }
}

/* Start, Stop, Remove, Update, Reopen answer an empty message. */
static void on_empty_done(void *data, int rc, const cric_error *err, const char *id)
{
    cric_call *call = data;
    if (rc < 0) {
        fail(call, id, err);
        return;
    }
    const char *m = cric_call_method(call);
    LOG_DEBUG("%s %s done", m, id);
    /* All these responses are empty messages: any of their descriptors
     * encodes to zero bytes. */
    Runtime__V1__StartContainerResponse resp = RUNTIME__V1__START_CONTAINER_RESPONSE__INIT;
    cric_call_reply(call, &resp.base);
}

static void on_start(cric_call *call, const ProtobufCMessage *msg, void *ctx)
{
    cricd *d = ctx;
    cric_container_start(d->containers, ((const Runtime__V1__StartContainerRequest *)msg)->container_id,
                         on_empty_done, call);
}

static void on_stop(cric_call *call, const ProtobufCMessage *msg, void *ctx)
{
    cricd *d = ctx;
    const Runtime__V1__StopContainerRequest *req = (const Runtime__V1__StopContainerRequest *)msg;
    cric_container_stop(d->containers, req->container_id, req->timeout, on_empty_done, call);
}

static void on_remove(cric_call *call, const ProtobufCMessage *msg, void *ctx)
{
    cricd *d = ctx;
    cric_container_remove(d->containers, ((const Runtime__V1__RemoveContainerRequest *)msg)->container_id,
                          on_empty_done, call);
}

static void on_status(cric_call *call, const ProtobufCMessage *msg, void *ctx)
{
    cricd *d = ctx;
    const Runtime__V1__ContainerStatusRequest *req = (const Runtime__V1__ContainerStatusRequest *)msg;
    Runtime__V1__ContainerStatusResponse *resp = NULL;
    cric_error *err = NULL;
    if (cric_container_status(d->containers, req->container_id, req->verbose, &resp, &err) < 0) {
        cric_call_fail_error(call, err);
        cric_error_free(err);
        return;
    }
    cric_call_reply(call, &resp->base);
    cric_container_status_free(resp);
}

static void on_list(cric_call *call, const ProtobufCMessage *msg, void *ctx)
{
    cricd *d = ctx;
    const Runtime__V1__ListContainersRequest *req = (const Runtime__V1__ListContainersRequest *)msg;
    Runtime__V1__ListContainersResponse *resp = NULL;
    cric_error *err = NULL;
    if (cric_container_list(d->containers, req->filter, &resp, &err) < 0) {
        cric_call_fail_error(call, err);
        cric_error_free(err);
        return;
    }
    cric_call_reply(call, &resp->base);
    cric_container_list_free(resp);
}

static void on_exec_done(void *data, int rc, const cric_error *err, const Runtime__V1__ExecSyncResponse *resp)
{
    cric_call *call = data;
    if (rc < 0) {
        fail(call, "", err);
        return;
    }
    cric_call_reply(call, &resp->base);
}

static void on_exec_sync(cric_call *call, const ProtobufCMessage *msg, void *ctx)
{
    cricd *d = ctx;
    cric_container_exec_sync(d->containers, (const Runtime__V1__ExecSyncRequest *)msg, on_exec_done, call);
}

static void on_update(cric_call *call, const ProtobufCMessage *msg, void *ctx)
{
    cricd *d = ctx;
    cric_container_update_resources(d->containers, (const Runtime__V1__UpdateContainerResourcesRequest *)msg,
                                    on_empty_done, call);
}

static void on_reopen(cric_call *call, const ProtobufCMessage *msg, void *ctx)
{
    cricd *d = ctx;
    cric_container_reopen_log(d->containers, ((const Runtime__V1__ReopenContainerLogRequest *)msg)->container_id,
                              on_empty_done, call);
}

static void on_events(cric_call *call, const ProtobufCMessage *msg, void *ctx)
{
    (void)msg;
    cricd *d = ctx;
    int r = cric_container_events_subscribe(d->containers, call);
    if (r < 0)
        cric_call_finish(call, r == -ENOMEM ? GRPC_RESOURCE_EXHAUSTED : GRPC_UNAVAILABLE,
                         r == -ENOMEM ? "out of memory" : "cricd is shutting down");
}

/* Event feeds never end on their own: end them when shutdown begins, so
 * that their connections do not hold the shutdown for its whole grace. */
static void on_server_shutdown(void *data)
{
    cricd *d = data;
    if (d->containers)
        cric_container_events_close(d->containers);
}

int cri_container_init(cricd *d, cric_error **err)
{
    const struct cric_config *cfg = d->cfg;
    struct cric_container_opts o = {
        .root = cfg->root,
        .state = cfg->state,
        .cfg = cfg,
        .images = cri_image_store(d),
        .sandboxes = d->sandboxes,
    };
    if (!o.images)
        return cric_error_new(err, -EINVAL, "containers: the image module is not running");
    int r = cric_container_service_new(d->loop, &o, &d->containers, err);
    if (r < 0)
        return cric_error_prefix(err, "containers");
    static const struct {
        const char *path;
        const ProtobufCMessageDescriptor *desc;
        cric_method_fn fn;
    } methods[] = {
        {RUNTIME_PATH("CreateContainer"), &runtime__v1__create_container_request__descriptor, on_create},
        {RUNTIME_PATH("StartContainer"), &runtime__v1__start_container_request__descriptor, on_start},
        {RUNTIME_PATH("StopContainer"), &runtime__v1__stop_container_request__descriptor, on_stop},
        {RUNTIME_PATH("RemoveContainer"), &runtime__v1__remove_container_request__descriptor, on_remove},
        {RUNTIME_PATH("ContainerStatus"), &runtime__v1__container_status_request__descriptor, on_status},
        {RUNTIME_PATH("ListContainers"), &runtime__v1__list_containers_request__descriptor, on_list},
        {RUNTIME_PATH("ExecSync"), &runtime__v1__exec_sync_request__descriptor, on_exec_sync},
        {RUNTIME_PATH("UpdateContainerResources"), &runtime__v1__update_container_resources_request__descriptor,
         on_update},
        {RUNTIME_PATH("ReopenContainerLog"), &runtime__v1__reopen_container_log_request__descriptor, on_reopen},
    };
    for (size_t i = 0; i < ARRAY_SIZE(methods); i++) {
        r = cric_server_register(d->server, methods[i].path, methods[i].desc, false, methods[i].fn, d);
        if (r < 0)
            return cric_error_sys(err, r, "register %s", methods[i].path);
    }
    r = cric_server_register(d->server, RUNTIME_PATH("GetContainerEvents"), &runtime__v1__get_events_request__descriptor,
                             true, on_events, d);
    if (r < 0 || (r = cric_server_on_shutdown(d->server, on_server_shutdown, d)) < 0)
        return cric_error_sys(err, r, "register GetContainerEvents");
    return cri_stats_register(d, err);
}

void cri_container_fini(cricd *d)
{
    if (d->containers)
        cric_container_service_close(d->containers, NULL, NULL);
    d->containers = NULL;
}
