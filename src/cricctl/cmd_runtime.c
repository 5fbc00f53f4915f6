/* cricctl version, cricctl info. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>

#include "api.pb-c.h"
#include "cricctl/cricctl.h"
#include "util/json.h"
#include "util/pbjson.h"

/* Options of a command whose only option is -o. */
static int parse_output_only(struct cricctl *ctl, int argc, char **argv)
{
    int r = cricctl_parse_output_opt(ctl, argc, argv);
    if (r)
        return r;
    if (optind < argc)
        return cricctl_fail("%s: unexpected argument '%s'", argv[0], argv[optind]) + 1;
    return 0;
}

int cricctl_cmd_version(struct cricctl *ctl, int argc, char **argv)
{
    int r = parse_output_only(ctl, argc, argv);
    if (r)
        return r;
    Runtime__V1__VersionRequest req = RUNTIME__V1__VERSION_REQUEST__INIT;
    req.version = "v1";
    ProtobufCMessage *m = NULL;
    if ((r = cricctl_call(ctl, "RuntimeService", "Version", &req.base, &runtime__v1__version_response__descriptor, &m)))
        return r;
    const Runtime__V1__VersionResponse *v = (const Runtime__V1__VersionResponse *)m;
    if (ctl->output == CRICCTL_OUT_TABLE)
        printf("Version:  %s\nRuntimeName:  %s\nRuntimeVersion:  %s\nRuntimeApiVersion:  %s\n", v->version,
               v->runtime_name, v->runtime_version, v->runtime_api_version);
    else
        r = cricctl_print_message(ctl, m);
    protobuf_c_message_free_unpacked(m, NULL);
    return r;
}

/* Like `crictl info`: {"status": ..., "runtimeHandlers": ..., "features": ...,
 * <info key>: <info value parsed as JSON>...}. */
static int info_json(const Runtime__V1__StatusResponse *s, char **out)
{
    yajl_gen g = cricctl_json_begin(true);
    cricctl_json_message(g, "status", (const ProtobufCMessage *)s->status);
    if (g && s->n_runtime_handlers) {
        yajl_gen_string(g, (const unsigned char *)"runtimeHandlers", 15);
        yajl_gen_array_open(g);
        for (size_t i = 0; i < s->n_runtime_handlers; i++)
            cric_pbjson_gen(g, &s->runtime_handlers[i]->base);
        yajl_gen_array_close(g);
    }
    cricctl_json_message(g, "features", (const ProtobufCMessage *)s->features);
    for (size_t i = 0; i < s->n_info; i++)
        cricctl_json_info(g, s->info[i]->key, s->info[i]->value);
    if (cricctl_json_end(g, out) < 0)
        return -1;
    cric_json_tidy(*out);
    return 0;
}

int cricctl_cmd_info(struct cricctl *ctl, int argc, char **argv)
{
    int r = parse_output_only(ctl, argc, argv);
    if (r)
        return r;
    Runtime__V1__StatusRequest req = RUNTIME__V1__STATUS_REQUEST__INIT;
    req.verbose = true;
    ProtobufCMessage *m = NULL;
    if ((r = cricctl_call(ctl, "RuntimeService", "Status", &req.base, &runtime__v1__status_response__descriptor, &m)))
        return r;
    const Runtime__V1__StatusResponse *s = (const Runtime__V1__StatusResponse *)m;
    if (ctl->output == CRICCTL_OUT_TABLE) {
        for (size_t i = 0; s->status && i < s->status->n_conditions; i++) {
            const Runtime__V1__RuntimeCondition *c = s->status->conditions[i];
            printf("%s: %s", c->type, c->status ? "true" : "false");
            if (c->reason[0] || c->message[0])
                printf(" (%s%s%s)", c->reason, c->reason[0] && c->message[0] ? ": " : "", c->message);
            putchar('\n');
        }
        printf("RuntimeHandlers:");
        for (size_t i = 0; i < s->n_runtime_handlers; i++)
            printf(" %s", s->runtime_handlers[i]->name[0] ? s->runtime_handlers[i]->name : "\"\"(default)");
        putchar('\n');
        for (size_t i = 0; i < s->n_info; i++)
            printf("%s: %s\n", s->info[i]->key, s->info[i]->value);
    } else {
        char *json = NULL;
        if (info_json(s, &json) < 0)
            r = cricctl_fail("cannot render the status as JSON");
        else
            r = cricctl_print_json(ctl, json);
        free(json);
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return r;
}
