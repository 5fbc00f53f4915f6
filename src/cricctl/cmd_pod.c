/* cricctl runp, stopp, rmp, pods, inspectp (like crictl's). */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <yajl/yajl_gen.h>

#include "api.pb-c.h"
#include "cricctl/cricctl.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/pbjson.h"

int cricctl_cmd_runp(struct cricctl *ctl, int argc, char **argv)
{
    static const struct option longopts[] = {
        { "runtime", required_argument, NULL, 'r' },
        { NULL, 0, NULL, 0 },
    };
    const char *handler = "";
    int c;
    while ((c = getopt_long(argc, argv, "r:", longopts, NULL)) != -1) {
        if (c != 'r')
            return 2;
        handler = optarg;
    }
    if (optind + 1 != argc)
        return cricctl_fail("usage: runp [-r HANDLER] POD-CONFIG.json") + 1;
    const char *path = argv[optind];
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    _cleanup_error_ cric_error *err = NULL;
    if (cric_read_file(strcmp(path, "-") == 0 ? "/dev/stdin" : path, 4 * 1024 * 1024, &text, &len, &err) < 0)
        return cricctl_fail("%s", err->msg);
    ProtobufCMessage *cfg = NULL;
    if (cric_pbjson_decode(&runtime__v1__pod_sandbox_config__descriptor, text, len, &cfg, &err) < 0)
        return cricctl_fail("pod config '%s': %s", path, err->msg);
    Runtime__V1__RunPodSandboxRequest req = RUNTIME__V1__RUN_POD_SANDBOX_REQUEST__INIT;
    req.config = (Runtime__V1__PodSandboxConfig *)cfg;
    req.runtime_handler = (char *)handler;
    ProtobufCMessage *m = NULL;
    int r = cricctl_call(ctl, "RuntimeService", "RunPodSandbox", &req.base,
                         &runtime__v1__run_pod_sandbox_response__descriptor, &m);
    protobuf_c_message_free_unpacked(cfg, NULL);
    if (r)
        return r;
    printf("%s\n", ((Runtime__V1__RunPodSandboxResponse *)m)->pod_sandbox_id);
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}

static int each_id(struct cricctl *ctl, int argc, char **argv, const char *method, const char *verb)
{
    if (argc < 2)
        return cricctl_fail("usage: %s POD-ID...", argv[0]) + 1;
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        ProtobufCMessage *m = NULL;
        int r;
        if (strcmp(method, "StopPodSandbox") == 0) {
            Runtime__V1__StopPodSandboxRequest req = RUNTIME__V1__STOP_POD_SANDBOX_REQUEST__INIT;
            req.pod_sandbox_id = argv[i];
            r = cricctl_call(ctl, "RuntimeService", method, &req.base,
                             &runtime__v1__stop_pod_sandbox_response__descriptor, &m);
        } else {
            Runtime__V1__RemovePodSandboxRequest req = RUNTIME__V1__REMOVE_POD_SANDBOX_REQUEST__INIT;
            req.pod_sandbox_id = argv[i];
            r = cricctl_call(ctl, "RuntimeService", method, &req.base,
                             &runtime__v1__remove_pod_sandbox_response__descriptor, &m);
        }
        if (r) {
            rc = r;
            continue;
        }
        printf("%s sandbox %s\n", verb, argv[i]);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    return rc;
}

int cricctl_cmd_stopp(struct cricctl *ctl, int argc, char **argv)
{
    return each_id(ctl, argc, argv, "StopPodSandbox", "Stopped");
}

int cricctl_cmd_rmp(struct cricctl *ctl, int argc, char **argv)
{
    return each_id(ctl, argc, argv, "RemovePodSandbox", "Removed");
}

static void ago(int64_t ns, char *buf, size_t n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t s = ((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec - ns) / 1000000000;
    if (s < 60)
        snprintf(buf, n, "%llds ago", (long long)(s < 0 ? 0 : s));
    else if (s < 3600)
        snprintf(buf, n, "%lldm ago", (long long)s / 60);
    else if (s < 86400)
        snprintf(buf, n, "%lldh ago", (long long)s / 3600);
    else
        snprintf(buf, n, "%lldd ago", (long long)s / 86400);
}

int cricctl_cmd_pods(struct cricctl *ctl, int argc, char **argv)
{
    static const struct option longopts[] = {
        { "id", required_argument, NULL, 'i' },   { "state", required_argument, NULL, 's' },
        { "label", required_argument, NULL, 'l' }, { "name", required_argument, NULL, 'n' },
        { "quiet", no_argument, NULL, 'q' },      { "output", required_argument, NULL, 'o' },
        { NULL, 0, NULL, 0 },
    };
    Runtime__V1__PodSandboxFilter f = RUNTIME__V1__POD_SANDBOX_FILTER__INIT;
    Runtime__V1__PodSandboxStateValue sv = RUNTIME__V1__POD_SANDBOX_STATE_VALUE__INIT;
    Runtime__V1__PodSandboxFilter__LabelSelectorEntry labels[32], *lp[32];
    const char *name = NULL;
    bool quiet = false, filtered = false;
    int c, r;
    while ((c = getopt_long(argc, argv, "qo:", longopts, NULL)) != -1) {
        switch (c) {
        case 'i':
            f.id = optarg;
            filtered = true;
            break;
        case 's':
            if (strcasecmp(optarg, "ready") == 0 || strcasecmp(optarg, "SANDBOX_READY") == 0)
                sv.state = RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_READY;
            else if (strcasecmp(optarg, "notready") == 0 || strcasecmp(optarg, "SANDBOX_NOTREADY") == 0)
                sv.state = RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_NOTREADY;
            else
                return cricctl_fail("--state: '%s' is neither ready nor notready", optarg) + 1;
            f.state = &sv;
            filtered = true;
            break;
        case 'l': {
            char *eq = strchr(optarg, '=');
            if (!eq || f.n_label_selector == 32)
                return cricctl_fail("--label: expected KEY=VALUE (at most 32), got '%s'", optarg) + 1;
            *eq = '\0';
            runtime__v1__pod_sandbox_filter__label_selector_entry__init(&labels[f.n_label_selector]);
            labels[f.n_label_selector].key = optarg;
            labels[f.n_label_selector].value = eq + 1;
            lp[f.n_label_selector] = &labels[f.n_label_selector];
            f.n_label_selector++;
            f.label_selector = lp;
            filtered = true;
            break;
        }
        case 'n':
            name = optarg;
            break;
        case 'q':
            quiet = true;
            break;
        case 'o':
            if ((r = cricctl_set_output(ctl, optarg)))
                return r;
            break;
        default:
            return 2;
        }
    }
    if (optind < argc)
        return cricctl_fail("pods: unexpected argument '%s'", argv[optind]) + 1;
    Runtime__V1__ListPodSandboxRequest req = RUNTIME__V1__LIST_POD_SANDBOX_REQUEST__INIT;
    if (filtered)
        req.filter = &f;
    ProtobufCMessage *m = NULL;
    if ((r = cricctl_call(ctl, "RuntimeService", "ListPodSandbox", &req.base,
                          &runtime__v1__list_pod_sandbox_response__descriptor, &m)))
        return r;
    Runtime__V1__ListPodSandboxResponse *resp = (Runtime__V1__ListPodSandboxResponse *)m;
    /* --name is a substring match on the client side, as in crictl. */
    size_t k = 0;
    for (size_t i = 0; i < resp->n_items; i++) {
        if (name && !(resp->items[i]->metadata && strstr(resp->items[i]->metadata->name, name))) {
            protobuf_c_message_free_unpacked(&resp->items[i]->base, NULL);
            continue;
        }
        resp->items[k++] = resp->items[i];
    }
    resp->n_items = k;
    if (quiet) {
        for (size_t i = 0; i < resp->n_items; i++)
            printf("%s\n", resp->items[i]->id);
    } else if (ctl->output != CRICCTL_OUT_TABLE) {
        r = cricctl_print_message(ctl, m);
    } else {
        printf("%-13s  %-14s  %-8s  %-30s  %-15s  %-7s  %s\n", "POD ID", "CREATED", "STATE", "NAME", "NAMESPACE",
               "ATTEMPT", "RUNTIME");
        for (size_t i = 0; i < resp->n_items; i++) {
            const Runtime__V1__PodSandbox *p = resp->items[i];
            char when[32];
            ago(p->created_at, when, sizeof(when));
            printf("%-13.13s  %-14s  %-8s  %-30s  %-15s  %-7u  %s\n", p->id, when,
                   p->state == RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_READY ? "Ready" : "NotReady",
                   p->metadata ? p->metadata->name : "", p->metadata ? p->metadata->namespace_ : "",
                   p->metadata ? p->metadata->attempt : 0, p->runtime_handler[0] ? p->runtime_handler : "(default)");
        }
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return r;
}

/* {"status": <PodSandboxStatus>, "info": <parsed info JSON>} like crictl. */
static int inspect_json(const Runtime__V1__PodSandboxStatusResponse *s, char **out)
{
    yajl_gen g = cricctl_json_begin(true);
    cricctl_json_message(g, "status", (const ProtobufCMessage *)s->status);
    for (size_t i = 0; i < s->n_info; i++)
        cricctl_json_info(g, s->info[i]->key, s->info[i]->value);
    return cricctl_json_end(g, out);
}

int cricctl_cmd_inspectp(struct cricctl *ctl, int argc, char **argv)
{
    ctl->output = CRICCTL_OUT_JSON;
    int r = cricctl_parse_output_opt(ctl, argc, argv);
    if (r)
        return r;
    if (optind >= argc)
        return cricctl_fail("usage: inspectp [-o json|yaml] POD-ID...") + 1;
    int rc = 0;
    for (int i = optind; i < argc; i++) {
        Runtime__V1__PodSandboxStatusRequest req = RUNTIME__V1__POD_SANDBOX_STATUS_REQUEST__INIT;
        req.pod_sandbox_id = argv[i];
        req.verbose = true;
        ProtobufCMessage *m = NULL;
        if ((r = cricctl_call(ctl, "RuntimeService", "PodSandboxStatus", &req.base,
                              &runtime__v1__pod_sandbox_status_response__descriptor, &m))) {
            rc = r;
            continue;
        }
        _cleanup_free_ char *json = NULL;
        if (inspect_json((const Runtime__V1__PodSandboxStatusResponse *)m, &json) < 0)
            rc = cricctl_fail("inspectp: out of memory");
        else if ((r = cricctl_print_json(ctl, json)))
            rc = r;
        protobuf_c_message_free_unpacked(m, NULL);
    }
    return rc;
}
