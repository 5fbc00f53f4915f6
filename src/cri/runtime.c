/* RuntimeService: Version, Status, RuntimeConfig, UpdateRuntimeConfig. */
#include "config.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api.pb-c.h"
#include "cni/cni.h"
#include "cri/cri.h"
#include "image/cri_image.h"
#include "util/cleanup.h"
#include "util/log.h"

struct cric_runtime_state {
    char *pod_cidr; /* from UpdateRuntimeConfig, "" until then */
};

#define RUNTIME_PATH(m) "/runtime.v1.RuntimeService/" m

static void on_version(cric_call *call, const ProtobufCMessage *req, void *ctx)
{
    Runtime__V1__VersionResponse resp = RUNTIME__V1__VERSION_RESPONSE__INIT;
    /* "version" is the kubelet runtime API version this runtime speaks. */
    resp.version = "0.1.0";
    resp.runtime_name = "cricd";
    resp.runtime_version = PACKAGE_VERSION;
    resp.runtime_api_version = "v1";
    cric_call_reply(call, &resp.base);
}

/* Status.  NetworkReady: a CNI config that parses and whose plugins exist, as kubelet
 * expects (it keeps the node NotReady until a network add-on wrote one).  A
 * read of a small local dir, acceptable on the loop thread. */
static void on_status(cric_call *call, const ProtobufCMessage *msg, void *ctx)
{
    cricd *d = ctx;
    const Runtime__V1__StatusRequest *req = (const Runtime__V1__StatusRequest *)msg;

    Runtime__V1__RuntimeCondition runtime_ready = RUNTIME__V1__RUNTIME_CONDITION__INIT;
    runtime_ready.type = "RuntimeReady";
    runtime_ready.status = true;
    Runtime__V1__RuntimeCondition net_ready = RUNTIME__V1__RUNTIME_CONDITION__INIT;
    net_ready.type = "NetworkReady";
    _cleanup_free_ char *why = NULL;
    net_ready.status = cric_cni_ready(d->cfg->network_config_dir,
                                      (const char *const *)d->cfg->network_plugin_dirs, &why);
    if (!net_ready.status) {
        net_ready.reason = "NetworkPluginNotReady";
        net_ready.message = why ? why : "network plugin not ready";
    }
    Runtime__V1__RuntimeCondition *conds[] = { &runtime_ready, &net_ready };
    Runtime__V1__RuntimeStatus status = RUNTIME__V1__RUNTIME_STATUS__INIT;
    status.n_conditions = ARRAY_SIZE(conds);
    status.conditions = conds;

    Runtime__V1__StatusResponse resp = RUNTIME__V1__STATUS_RESPONSE__INIT;
    resp.status = &status;

    /* The default handler is reported as "" (what a pod without
     * runtimeClassName asks for) and again under its own name. */
    size_t nh = d->cfg->runtime_handlers_len + 1;
    _cleanup_free_ Runtime__V1__RuntimeHandler *handlers = calloc(nh, sizeof(*handlers));
    _cleanup_free_ Runtime__V1__RuntimeHandler **hptrs = calloc(nh, sizeof(*hptrs));
    Runtime__V1__RuntimeHandlerFeatures hfeatures = RUNTIME__V1__RUNTIME_HANDLER_FEATURES__INIT;
    if (!handlers || !hptrs) {
        cric_call_fail(call, GRPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    for (size_t i = 0; i < nh; i++) {
        runtime__v1__runtime_handler__init(&handlers[i]);
        handlers[i].name = i == 0 ? "" : d->cfg->runtime_handlers[i - 1].name;
        handlers[i].features = &hfeatures;
        hptrs[i] = &handlers[i];
    }
    resp.n_runtime_handlers = nh;
    resp.runtime_handlers = hptrs;
    Runtime__V1__RuntimeFeatures features = RUNTIME__V1__RUNTIME_FEATURES__INIT;
    resp.features = &features;

    _cleanup_free_ char *config_json = NULL, *pulls_json = NULL;
    Runtime__V1__StatusResponse__InfoEntry config_entry = RUNTIME__V1__STATUS_RESPONSE__INFO_ENTRY__INIT;
    Runtime__V1__StatusResponse__InfoEntry pulls_entry = RUNTIME__V1__STATUS_RESPONSE__INFO_ENTRY__INIT;
    Runtime__V1__StatusResponse__InfoEntry *info[] = { &config_entry, &pulls_entry };
    if (req->verbose) {
        cric_error *err = NULL;
        if (cric_config_to_json(d->cfg, &config_json, &err) < 0 || cri_image_pulls_json(d, &pulls_json, &err) < 0) {
            cric_call_fail_error(call, err);
            cric_error_free(err);
            return;
        }
        config_entry.key = "config";
        config_entry.value = config_json;
        pulls_entry.key = "pulls";
        pulls_entry.value = pulls_json;
        resp.n_info = ARRAY_SIZE(info);
        resp.info = info;
    }
    cric_call_reply(call, &resp.base);
}

static void on_runtime_config(cric_call *call, const ProtobufCMessage *req, void *ctx)
{
    cricd *d = ctx;
    Runtime__V1__LinuxRuntimeConfiguration linux_cfg = RUNTIME__V1__LINUX_RUNTIME_CONFIGURATION__INIT;
    linux_cfg.cgroup_driver = strcmp(d->cfg->cgroup_driver, "systemd") == 0 ? RUNTIME__V1__CGROUP_DRIVER__SYSTEMD
                                                                           : RUNTIME__V1__CGROUP_DRIVER__CGROUPFS;
    Runtime__V1__RuntimeConfigResponse resp = RUNTIME__V1__RUNTIME_CONFIG_RESPONSE__INIT;
    resp.linux = &linux_cfg;
    cric_call_reply(call, &resp.base);
}

/* kubelet sends one CIDR, or two joined by a comma on dual-stack nodes. */
static bool valid_pod_cidr(const char *s)
{
    char buf[256];
    if (strlen(s) >= sizeof(buf))
        return false;
    strcpy(buf, s);
    char *save = NULL;
    int parts = 0;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *slash = strchr(tok, '/');
        if (!slash || !slash[1])
            return false;
        *slash = 0;
        unsigned char addr[16];
        int max;
        if (inet_pton(AF_INET, tok, addr) == 1)
            max = 32;
        else if (inet_pton(AF_INET6, tok, addr) == 1)
            max = 128;
        else
            return false;
        char *end;
        long bits = strtol(slash + 1, &end, 10);
        if (*end || bits < 0 || bits > max)
            return false;
        parts++;
    }
    return parts >= 1 && parts <= 2;
}

static void on_update_runtime_config(cric_call *call, const ProtobufCMessage *msg, void *ctx)
{
    cricd *d = ctx;
    const Runtime__V1__UpdateRuntimeConfigRequest *req = (const Runtime__V1__UpdateRuntimeConfigRequest *)msg;
    /* kubelet sends the node's pod CIDR once it knows it; an empty request
     * changes nothing, as in other runtimes. */
    if (req->runtime_config && req->runtime_config->network_config) {
        const char *cidr = req->runtime_config->network_config->pod_cidr;
        if (cidr && cidr[0] && !valid_pod_cidr(cidr)) {
            cric_call_fail(call, GRPC_INVALID_ARGUMENT, "pod_cidr '%s' is not a CIDR (or two, comma-separated)", cidr);
            return;
        }
        if (cidr && cidr[0] && strcmp(cidr, d->runtime->pod_cidr) != 0) {
            char *copy = strdup(cidr);
            if (!copy) {
                cric_call_fail(call, GRPC_RESOURCE_EXHAUSTED, "out of memory");
                return;
            }
            LOG_INFO("pod CIDR set to %s", copy);
            free(d->runtime->pod_cidr);
            d->runtime->pod_cidr = copy;
        }
    }
    Runtime__V1__UpdateRuntimeConfigResponse resp = RUNTIME__V1__UPDATE_RUNTIME_CONFIG_RESPONSE__INIT;
    cric_call_reply(call, &resp.base);
}

const char *cri_runtime_pod_cidr(const cricd *d)
{
    return d->runtime && d->runtime->pod_cidr ? d->runtime->pod_cidr : "";
}

int cri_runtime_init(cricd *d, cric_error **err)
{
    struct cric_runtime_state *st = calloc(1, sizeof(*st));
    if (!st || !(st->pod_cidr = strdup(""))) {
        free(st);
        return cric_error_new(err, -ENOMEM, "out of memory");
    }
    d->runtime = st;
    static const struct {
        const char *path;
        const ProtobufCMessageDescriptor *in;
        cric_method_fn fn;
    } methods[] = {
        { RUNTIME_PATH("Version"), &runtime__v1__version_request__descriptor, on_version },
        { RUNTIME_PATH("Status"), &runtime__v1__status_request__descriptor, on_status },
        { RUNTIME_PATH("RuntimeConfig"), &runtime__v1__runtime_config_request__descriptor, on_runtime_config },
        { RUNTIME_PATH("UpdateRuntimeConfig"), &runtime__v1__update_runtime_config_request__descriptor,
          on_update_runtime_config },
    };
    for (size_t i = 0; i < ARRAY_SIZE(methods); i++) {
        int r = cric_server_register(d->server, methods[i].path, methods[i].in, false, methods[i].fn, d);
        if (r < 0) {
            cri_runtime_fini(d);
            return cric_error_sys(err, r, "register %s", methods[i].path);
        }
    }
    return 0;
}

void cri_runtime_fini(cricd *d)
{
    if (!d->runtime)
        return;
    free(d->runtime->pod_cidr);
    free(d->runtime);
    d->runtime = NULL;
}
