/* cricctl create, start, stop, rm, ps, inspect, exec. */
#include "config.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <yajl/yajl_gen.h>

#include "api.pb-c.h"
#include "cricctl/cricctl.h"
#include "cricctl/cmd_container.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/pbjson.h"

int cricctl__load_json(const char *path, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out)
{
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    cric_error *err = NULL;
    if (cric_read_file(path, 4 << 20, &text, &len, &err) < 0 || cric_pbjson_decode(desc, text, len, out, &err) < 0) {
        int r = cricctl_fail("%s: %s", path, err ? err->msg : "cannot read");
        cric_error_free(err);
        return r;
    }
    return 0;
}

int cricctl__create(struct cricctl *ctl, const char *pod, Runtime__V1__ContainerConfig *cc,
                    Runtime__V1__PodSandboxConfig *pc, char **id)
{
    Runtime__V1__CreateContainerRequest req = RUNTIME__V1__CREATE_CONTAINER_REQUEST__INIT;
    req.pod_sandbox_id = (char *)pod;
    req.config = cc;
    req.sandbox_config = pc;
    ProtobufCMessage *m = NULL;
    int r = cricctl_call(ctl, "RuntimeService", "CreateContainer", &req.base,
                         &runtime__v1__create_container_response__descriptor, &m);
    if (r)
        return r;
    *id = strdup(((Runtime__V1__CreateContainerResponse *)m)->container_id);
    protobuf_c_message_free_unpacked(m, NULL);
    return *id ? 0 : cricctl_fail("out of memory");
}

int cricctl_cmd_create(struct cricctl *ctl, int argc, char **argv)
{
    if (argc != 4)
        return cricctl_fail("usage: create POD-ID CONTAINER-CONFIG.json POD-CONFIG.json") + 1;
    ProtobufCMessage *cc = NULL, *pc = NULL;
    int r = cricctl__load_json(argv[2], &runtime__v1__container_config__descriptor, &cc);
    if (!r)
        r = cricctl__load_json(argv[3], &runtime__v1__pod_sandbox_config__descriptor, &pc);
    char *id = NULL;
    if (!r && !(r = cricctl__create(ctl, argv[1], (Runtime__V1__ContainerConfig *)cc,
                                    (Runtime__V1__PodSandboxConfig *)pc, &id)))
        printf("%s\n", id);
    free(id);
    if (cc)
        protobuf_c_message_free_unpacked(cc, NULL);
    if (pc)
        protobuf_c_message_free_unpacked(pc, NULL);
    return r;
}

int cricctl__start(struct cricctl *ctl, const char *id)
{
    Runtime__V1__StartContainerRequest req = RUNTIME__V1__START_CONTAINER_REQUEST__INIT;
    req.container_id = (char *)id;
    ProtobufCMessage *m = NULL;
    int r = cricctl_call(ctl, "RuntimeService", "StartContainer", &req.base,
                         &runtime__v1__start_container_response__descriptor, &m);
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
    return r;
}

int cricctl_cmd_start(struct cricctl *ctl, int argc, char **argv)
{
    if (argc < 2)
        return cricctl_fail("usage: start CONTAINER-ID...") + 1;
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        if (cricctl__start(ctl, argv[i]))
            rc = 1;
        else
            printf("%s\n", argv[i]);
    }
    return rc;
}

static int stop_one(struct cricctl *ctl, const char *id, int64_t timeout)
{
    Runtime__V1__StopContainerRequest req = RUNTIME__V1__STOP_CONTAINER_REQUEST__INIT;
    req.container_id = (char *)id;
    req.timeout = timeout;
    ProtobufCMessage *m = NULL;
    /* The call lasts the grace period and then some. */
    uint64_t saved = ctl->timeout_ms;
    if (ctl->timeout_ms && (uint64_t)timeout * 1000 + 30000 > ctl->timeout_ms)
        ctl->timeout_ms = (uint64_t)timeout * 1000 + 30000;
    int r = cricctl_call(ctl, "RuntimeService", "StopContainer", &req.base,
                         &runtime__v1__stop_container_response__descriptor, &m);
    ctl->timeout_ms = saved;
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
    return r;
}

int cricctl_cmd_stop(struct cricctl *ctl, int argc, char **argv)
{
    static const struct option longopts[] = {{"timeout", required_argument, NULL, 't'}, {NULL, 0, NULL, 0}};
    int64_t timeout = 0;
    int c;
    while ((c = getopt_long(argc, argv, "t:", longopts, NULL)) != -1) {
        if (c != 't')
            return 2;
        char *end;
        timeout = strtoll(optarg, &end, 10);
        if (*end || timeout < 0)
            return cricctl_fail("stop: invalid --timeout '%s' (seconds)", optarg) + 1;
    }
    if (optind >= argc)
        return cricctl_fail("usage: stop [-t SECONDS] CONTAINER-ID...") + 1;
    int rc = 0;
    for (int i = optind; i < argc; i++) {
        if (stop_one(ctl, argv[i], timeout))
            rc = 1;
        else
            printf("%s\n", argv[i]);
    }
    return rc;
}

int cricctl_cmd_rm(struct cricctl *ctl, int argc, char **argv)
{
    static const struct option longopts[] = {{"force", no_argument, NULL, 'f'}, {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "f", longopts, NULL)) != -1)
        if (c != 'f')
            return 2;
    if (optind >= argc)
        return cricctl_fail("usage: rm [-f] CONTAINER-ID...") + 1;
    int rc = 0;
    for (int i = optind; i < argc; i++) {
        Runtime__V1__RemoveContainerRequest req = RUNTIME__V1__REMOVE_CONTAINER_REQUEST__INIT;
        req.container_id = argv[i];
        ProtobufCMessage *m = NULL;
        if (cricctl_call(ctl, "RuntimeService", "RemoveContainer", &req.base,
                         &runtime__v1__remove_container_response__descriptor, &m))
            rc = 1;
        else
            printf("%s\n", argv[i]);
        if (m)
            protobuf_c_message_free_unpacked(m, NULL);
    }
    return rc;
}

static const char *state_name(Runtime__V1__ContainerState s)
{
    switch (s) {
    case RUNTIME__V1__CONTAINER_STATE__CONTAINER_CREATED:
        return "Created";
    case RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING:
        return "Running";
    case RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED:
        return "Exited";
    default:
        return "Unknown";
    }
}

static int parse_state(const char *s, Runtime__V1__ContainerState *out)
{
    static const char *const names[] = {"created", "running", "exited", "unknown"};
    for (int i = 0; i < 4; i++)
        if (strcasecmp(s, names[i]) == 0 || (strncasecmp(s, "container_", 10) == 0 && strcasecmp(s + 10, names[i]) == 0)) {
            *out = (Runtime__V1__ContainerState)i;
            return 0;
        }
    return -1;
}

static void ago(int64_t ns, char *buf, size_t size)
{
    int64_t s = (int64_t)time(NULL) - ns / 1000000000;
    if (s < 0)
        s = 0;
    if (s < 60)
        snprintf(buf, size, "%" PRId64 " seconds ago", s);
    else if (s < 3600)
        snprintf(buf, size, "%" PRId64 " minutes ago", s / 60);
    else if (s < 86400)
        snprintf(buf, size, "%" PRId64 " hours ago", s / 3600);
    else
        snprintf(buf, size, "%" PRId64 " days ago", s / 86400);
}

int cricctl_cmd_ps(struct cricctl *ctl, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"all", no_argument, NULL, 'a'},        {"quiet", no_argument, NULL, 'q'},
        {"output", required_argument, NULL, 'o'}, {"id", required_argument, NULL, 'i'},
        {"pod", required_argument, NULL, 'p'},  {"state", required_argument, NULL, 's'},
        {"label", required_argument, NULL, 'l'}, {"name", required_argument, NULL, 'n'},
        {NULL, 0, NULL, 0},
    };
    bool all = false, quiet = false;
    const char *name = NULL;
    Runtime__V1__ListContainersRequest req = RUNTIME__V1__LIST_CONTAINERS_REQUEST__INIT;
    Runtime__V1__ContainerFilter f = RUNTIME__V1__CONTAINER_FILTER__INIT;
    Runtime__V1__ContainerStateValue sv = RUNTIME__V1__CONTAINER_STATE_VALUE__INIT;
    Runtime__V1__ContainerFilter__LabelSelectorEntry ents[32];
    Runtime__V1__ContainerFilter__LabelSelectorEntry *entp[32];
    bool has_state = false;
    int c, r;
    req.filter = &f;
    while ((c = getopt_long(argc, argv, "aqo:i:p:s:l:n:", longopts, NULL)) != -1) {
        switch (c) {
        case 'a':
            all = true;
            break;
        case 'q':
            quiet = true;
            break;
        case 'o':
            if ((r = cricctl_set_output(ctl, optarg)))
                return r;
            break;
        case 'i':
            f.id = optarg;
            break;
        case 'p':
            f.pod_sandbox_id = optarg;
            break;
        case 'n':
            name = optarg;
            break;
        case 's':
            if (parse_state(optarg, &sv.state) < 0)
                return cricctl_fail("ps: unknown state '%s' (created, running, exited, unknown)", optarg) + 1;
            has_state = true;
            break;
        case 'l': {
            char *eq = strchr(optarg, '=');
            if (!eq || f.n_label_selector >= 32)
                return cricctl_fail("ps: --label wants KEY=VALUE") + 1;
            *eq = '\0';
            ents[f.n_label_selector] =
                (Runtime__V1__ContainerFilter__LabelSelectorEntry)RUNTIME__V1__CONTAINER_FILTER__LABEL_SELECTOR_ENTRY__INIT;
            ents[f.n_label_selector].key = optarg;
            ents[f.n_label_selector].value = eq + 1;
            entp[f.n_label_selector] = &ents[f.n_label_selector];
            f.n_label_selector++;
            f.label_selector = entp;
            break;
        }
        default:
            return 2;
        }
    }
    if (optind < argc)
        return cricctl_fail("ps: unexpected argument '%s'", argv[optind]) + 1;
    /* Like crictl: running ones unless -a or a state is asked for. */
    if (!all && !has_state && !(f.id && f.id[0])) {
        sv.state = RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING;
        has_state = true;
    }
    if (has_state)
        f.state = &sv;
    ProtobufCMessage *m = NULL;
    if ((r = cricctl_call(ctl, "RuntimeService", "ListContainers", &req.base,
                          &runtime__v1__list_containers_response__descriptor, &m)))
        return r;
    Runtime__V1__ListContainersResponse *resp = (Runtime__V1__ListContainersResponse *)m;
    if (name) {
        size_t k = 0;
        for (size_t i = 0; i < resp->n_containers; i++) {
            if (resp->containers[i]->metadata && strstr(resp->containers[i]->metadata->name, name))
                resp->containers[k++] = resp->containers[i];
            else
                protobuf_c_message_free_unpacked(&resp->containers[i]->base, NULL);
        }
        resp->n_containers = k;
    }
    if (quiet) {
        for (size_t i = 0; i < resp->n_containers; i++)
            printf("%s\n", resp->containers[i]->id);
    } else if (ctl->output != CRICCTL_OUT_TABLE) {
        r = cricctl_print_message(ctl, m);
    } else {
        printf("%-13s  %-24s  %-16s  %-8s  %-20s  %-7s  %-13s\n", "CONTAINER", "IMAGE", "CREATED", "STATE", "NAME",
               "ATTEMPT", "POD ID");
        for (size_t i = 0; i < resp->n_containers; i++) {
            const Runtime__V1__Container *x = resp->containers[i];
            char when[32];
            ago(x->created_at, when, sizeof(when));
            printf("%-13.13s  %-24s  %-16s  %-8s  %-20s  %-7u  %-13.13s\n", x->id, x->image ? x->image->image : "",
                   when, state_name(x->state), x->metadata ? x->metadata->name : "",
                   x->metadata ? x->metadata->attempt : 0, x->pod_sandbox_id);
        }
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return r;
}

int cricctl__status(struct cricctl *ctl, const char *id, bool verbose, Runtime__V1__ContainerStatusResponse **out)
{
    Runtime__V1__ContainerStatusRequest req = RUNTIME__V1__CONTAINER_STATUS_REQUEST__INIT;
    req.container_id = (char *)id;
    req.verbose = verbose;
    return cricctl_call(ctl, "RuntimeService", "ContainerStatus", &req.base,
                        &runtime__v1__container_status_response__descriptor, (ProtobufCMessage **)out);
}

int cricctl_cmd_inspect(struct cricctl *ctl, int argc, char **argv)
{
    int r = cricctl_parse_output_opt(ctl, argc, argv);
    if (r)
        return r;
    if (optind >= argc)
        return cricctl_fail("usage: inspect [-o json|yaml] CONTAINER-ID...") + 1;
    if (ctl->output == CRICCTL_OUT_TABLE)
        ctl->output = CRICCTL_OUT_JSON;
    int rc = 0;
    for (int i = optind; i < argc; i++) {
        Runtime__V1__ContainerStatusResponse *s = NULL;
        if (cricctl__status(ctl, argv[i], true, &s)) {
            rc = 1;
            continue;
        }
        /* Like crictl: {"status": ..., "info": <the info value as JSON>}. */
        yajl_gen g = cricctl_json_begin(false);
        cricctl_json_message(g, "status", (const ProtobufCMessage *)s->status);
        for (size_t k = 0; k < s->n_info; k++)
            cricctl_json_info(g, s->info[k]->key, s->info[k]->value);
        _cleanup_free_ char *json = NULL;
        if (cricctl_json_end(g, &json) < 0 || cricctl_print_json(ctl, json))
            rc = 1;
        protobuf_c_message_free_unpacked(&s->base, NULL);
    }
    return rc;
}

int cricctl_cmd_exec(struct cricctl *ctl, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"timeout", required_argument, NULL, 't'}, {"sync", no_argument, NULL, 's'}, {NULL, 0, NULL, 0}};
    uint64_t timeout_ms = 0;
    int c;
    while ((c = getopt_long(argc, argv, "+t:s", longopts, NULL)) != -1) {
        if (c == 's')
            continue;
        if (c != 't')
            return 2;
        if (cricctl_parse_duration(optarg, &timeout_ms) < 0)
            return cricctl_fail("exec: invalid --timeout '%s'", optarg) + 1;
    }
    if (argc - optind < 2)
        return cricctl_fail("usage: exec [--timeout DURATION] CONTAINER-ID COMMAND [ARG...]") + 1;
    Runtime__V1__ExecSyncRequest req = RUNTIME__V1__EXEC_SYNC_REQUEST__INIT;
    req.container_id = argv[optind];
    req.cmd = argv + optind + 1;
    req.n_cmd = (size_t)(argc - optind - 1);
    req.timeout = (int64_t)((timeout_ms + 999) / 1000);
    uint64_t saved = ctl->timeout_ms;
    /* The RPC waits for the command: give it the command's time and more. */
    ctl->timeout_ms = timeout_ms ? timeout_ms + 30000 : 0;
    ProtobufCMessage *m = NULL;
    int r = cricctl_call(ctl, "RuntimeService", "ExecSync", &req.base, &runtime__v1__exec_sync_response__descriptor,
                         &m);
    ctl->timeout_ms = saved;
    if (r)
        return r;
    const Runtime__V1__ExecSyncResponse *x = (const Runtime__V1__ExecSyncResponse *)m;
    fwrite(x->stdout.data, 1, x->stdout.len, stdout);
    fflush(stdout);
    fwrite(x->stderr.data, 1, x->stderr.len, stderr);
    r = x->exit_code;
    protobuf_c_message_free_unpacked(m, NULL);
    return r;
}
