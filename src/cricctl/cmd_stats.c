/* cricctl stats / statsp: crictl's resource usage commands.  The table's
 * CPU % comes from two readings -s seconds apart, as in crictl; -o json|yaml
 * prints one response. */
#define _GNU_SOURCE
#include "config.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.pb-c.h"
#include "cricctl/cricctl.h"

#define MAX_LABELS 32

struct stats_opts {
    bool all;
    const char *id, *pod;
    unsigned seconds;
    size_t n_labels;
    char *keys[MAX_LABELS], *values[MAX_LABELS];
};

/* Shared option loop; pods=true refuses the container-only options. */
static int parse(struct cricctl *ctl, int argc, char **argv, bool pods, struct stats_opts *o)
{
    static const struct option longopts[] = {
        {"all", no_argument, NULL, 'a'},          {"output", required_argument, NULL, 'o'},
        {"id", required_argument, NULL, 'i'},     {"pod", required_argument, NULL, 'p'},
        {"label", required_argument, NULL, 'l'},  {"seconds", required_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = pods ? "statsp" : "stats";
    memset(o, 0, sizeof(*o));
    o->seconds = 1;
    int c, r;
    while ((c = getopt_long(argc, argv, pods ? "o:i:l:s:" : "ao:i:p:l:s:", longopts, NULL)) != -1) {
        switch (c) {
        case 'a':
            o->all = true;
            break;
        case 'o':
            if ((r = cricctl_set_output(ctl, optarg)))
                return r;
            break;
        case 'i':
            o->id = optarg;
            break;
        case 'p':
            o->pod = optarg;
            break;
        case 's': {
            char *end;
            unsigned long v = strtoul(optarg, &end, 10);
            if (*end || end == optarg || v > 3600)
                return cricctl_fail("%s: --seconds wants a number of seconds (0-3600), not '%s'", cmd, optarg) + 1;
            o->seconds = (unsigned)v;
            break;
        }
        case 'l': {
            char *eq = strchr(optarg, '=');
            if (!eq || o->n_labels >= MAX_LABELS)
                return cricctl_fail("%s: --label wants KEY=VALUE", cmd) + 1;
            *eq = '\0';
            o->keys[o->n_labels] = optarg;
            o->values[o->n_labels++] = eq + 1;
            break;
        }
        default:
            return 2;
        }
    }
    if (optind < argc && !o->id)
        o->id = argv[optind++];
    if (optind < argc)
        return cricctl_fail("%s: unexpected argument '%s'", cmd, argv[optind]) + 1;
    return 0;
}

static uint64_t val(const Runtime__V1__UInt64Value *v)
{
    return v ? v->value : 0;
}

/* CPU % between two readings of the same object, else from the runtime's
 * own rate, else unknown (-1). */
static double cpu_pct(const Runtime__V1__CpuUsage *now, const Runtime__V1__CpuUsage *before)
{
    if (now && before && now->timestamp > before->timestamp && now->usage_core_nano_seconds &&
        before->usage_core_nano_seconds && val(now->usage_core_nano_seconds) >= val(before->usage_core_nano_seconds))
        return 100.0 * (double)(val(now->usage_core_nano_seconds) - val(before->usage_core_nano_seconds)) /
               (double)(now->timestamp - before->timestamp);
    if (now && now->usage_nano_cores)
        return (double)val(now->usage_nano_cores) / 1e7;
    return -1;
}

static void pct_str(double p, char *out, size_t n)
{
    if (p < 0)
        snprintf(out, n, "-");
    else
        snprintf(out, n, "%.2f", p);
}

typedef int (*list_fn)(struct cricctl *ctl, const struct stats_opts *o, ProtobufCMessage **out);

/* -o json|yaml: one reading, printed here (*printed).  The table: two
 * readings -s seconds apart (*first is NULL with -s 0).  0 or exit code. */
static int readings(struct cricctl *ctl, const struct stats_opts *o, list_fn list, ProtobufCMessage **first,
                    ProtobufCMessage **last, bool *printed)
{
    *first = *last = NULL;
    *printed = false;
    int r = list(ctl, o, last);
    if (r)
        return r;
    if (ctl->output != CRICCTL_OUT_TABLE) {
        *printed = true;
        r = cricctl_print_message(ctl, *last);
        protobuf_c_message_free_unpacked(*last, NULL);
        return r;
    }
    if (o->seconds) {
        *first = *last;
        *last = NULL;
        sleep(o->seconds);
        if ((r = list(ctl, o, last))) {
            protobuf_c_message_free_unpacked(*first, NULL);
            return r;
        }
    }
    return 0;
}

static void free_readings(ProtobufCMessage *first, ProtobufCMessage *last)
{
    if (first)
        protobuf_c_message_free_unpacked(first, NULL);
    protobuf_c_message_free_unpacked(last, NULL);
}

static int list_ctr(struct cricctl *ctl, const struct stats_opts *o, ProtobufCMessage **out)
{
    Runtime__V1__ListContainerStatsRequest req = RUNTIME__V1__LIST_CONTAINER_STATS_REQUEST__INIT;
    Runtime__V1__ContainerStatsFilter f = RUNTIME__V1__CONTAINER_STATS_FILTER__INIT;
    Runtime__V1__ContainerStatsFilter__LabelSelectorEntry ents[MAX_LABELS], *entp[MAX_LABELS];
    for (size_t i = 0; i < o->n_labels; i++) {
        ents[i] = (Runtime__V1__ContainerStatsFilter__LabelSelectorEntry)
            RUNTIME__V1__CONTAINER_STATS_FILTER__LABEL_SELECTOR_ENTRY__INIT;
        ents[i].key = o->keys[i];
        ents[i].value = o->values[i];
        entp[i] = &ents[i];
    }
    f.id = (char *)(o->id ? o->id : "");
    f.pod_sandbox_id = (char *)(o->pod ? o->pod : "");
    f.n_label_selector = o->n_labels;
    f.label_selector = entp;
    req.filter = &f;
    return cricctl_call(ctl, "RuntimeService", "ListContainerStats", &req.base,
                        &runtime__v1__list_container_stats_response__descriptor, out);
}

static const Runtime__V1__ContainerStats *find_ctr(const Runtime__V1__ListContainerStatsResponse *r, const char *id)
{
    for (size_t i = 0; r && i < r->n_stats; i++)
        if (r->stats[i]->attributes && strcmp(r->stats[i]->attributes->id, id) == 0)
            return r->stats[i];
    return NULL;
}

int cricctl_cmd_stats(struct cricctl *ctl, int argc, char **argv)
{
    struct stats_opts o;
    int r = parse(ctl, argc, argv, false, &o);
    if (r)
        return r;
    ProtobufCMessage *m0, *m1;
    bool printed;
    if ((r = readings(ctl, &o, list_ctr, &m0, &m1, &printed)) || printed)
        return r;
    const Runtime__V1__ListContainerStatsResponse *first = (const void *)m0, *resp = (const void *)m1;
    printf("%-13s  %-20s  %-8s  %-10s  %-10s  %s\n", "CONTAINER", "NAME", "CPU %", "MEM", "DISK", "INODES");
    for (size_t i = 0; i < resp->n_stats; i++) {
        const Runtime__V1__ContainerStats *s = resp->stats[i];
        /* Like crictl: running containers (those with CPU figures) unless -a. */
        if (!o.all && !s->cpu)
            continue;
        const Runtime__V1__ContainerStats *b = find_ctr(first, s->attributes ? s->attributes->id : "");
        char cpu[32], mem[32], disk[32];
        pct_str(cpu_pct(s->cpu, b ? b->cpu : NULL), cpu, sizeof(cpu));
        snprintf(mem, sizeof(mem), "-");
        snprintf(disk, sizeof(disk), "-");
        if (s->memory && s->memory->working_set_bytes)
            cricctl_human_size(val(s->memory->working_set_bytes), mem, sizeof(mem));
        if (s->writable_layer && s->writable_layer->used_bytes)
            cricctl_human_size(val(s->writable_layer->used_bytes), disk, sizeof(disk));
        printf("%-13.13s  %-20s  %-8s  %-10s  %-10s  %" PRIu64 "\n", s->attributes ? s->attributes->id : "",
               s->attributes && s->attributes->metadata ? s->attributes->metadata->name : "", cpu, mem, disk,
               s->writable_layer ? val(s->writable_layer->inodes_used) : 0);
    }
    free_readings(m0, m1);
    return 0;
}

static int list_pod(struct cricctl *ctl, const struct stats_opts *o, ProtobufCMessage **out)
{
    Runtime__V1__ListPodSandboxStatsRequest req = RUNTIME__V1__LIST_POD_SANDBOX_STATS_REQUEST__INIT;
    Runtime__V1__PodSandboxStatsFilter f = RUNTIME__V1__POD_SANDBOX_STATS_FILTER__INIT;
    Runtime__V1__PodSandboxStatsFilter__LabelSelectorEntry ents[MAX_LABELS], *entp[MAX_LABELS];
    for (size_t i = 0; i < o->n_labels; i++) {
        ents[i] = (Runtime__V1__PodSandboxStatsFilter__LabelSelectorEntry)
            RUNTIME__V1__POD_SANDBOX_STATS_FILTER__LABEL_SELECTOR_ENTRY__INIT;
        ents[i].key = o->keys[i];
        ents[i].value = o->values[i];
        entp[i] = &ents[i];
    }
    f.id = (char *)(o->id ? o->id : "");
    f.n_label_selector = o->n_labels;
    f.label_selector = entp;
    req.filter = &f;
    return cricctl_call(ctl, "RuntimeService", "ListPodSandboxStats", &req.base,
                        &runtime__v1__list_pod_sandbox_stats_response__descriptor, out);
}

static const Runtime__V1__PodSandboxStats *find_pod(const Runtime__V1__ListPodSandboxStatsResponse *r,
                                                     const char *id)
{
    for (size_t i = 0; r && i < r->n_stats; i++)
        if (r->stats[i]->attributes && strcmp(r->stats[i]->attributes->id, id) == 0)
            return r->stats[i];
    return NULL;
}

int cricctl_cmd_statsp(struct cricctl *ctl, int argc, char **argv)
{
    struct stats_opts o;
    int r = parse(ctl, argc, argv, true, &o);
    if (r)
        return r;
    ProtobufCMessage *m0, *m1;
    bool printed;
    if ((r = readings(ctl, &o, list_pod, &m0, &m1, &printed)) || printed)
        return r;
    const Runtime__V1__ListPodSandboxStatsResponse *first = (const void *)m0, *resp = (const void *)m1;
    printf("%-13s  %-30s  %-8s  %-10s  %-5s  %s\n", "POD", "NAME", "CPU %", "MEM", "PROCS", "NET RX/TX");
    for (size_t i = 0; i < resp->n_stats; i++) {
        const Runtime__V1__PodSandboxStats *s = resp->stats[i];
        const Runtime__V1__LinuxPodSandboxStats *l = s->linux;
        const Runtime__V1__PodSandboxStats *b = find_pod(first, s->attributes ? s->attributes->id : "");
        char cpu[32], mem[32], net[64], rx[32], tx[32];
        pct_str(cpu_pct(l ? l->cpu : NULL, b && b->linux ? b->linux->cpu : NULL), cpu, sizeof(cpu));
        snprintf(mem, sizeof(mem), "-");
        snprintf(net, sizeof(net), "-");
        if (l && l->memory && l->memory->working_set_bytes)
            cricctl_human_size(val(l->memory->working_set_bytes), mem, sizeof(mem));
        if (l && l->network && l->network->default_interface) {
            cricctl_human_size(val(l->network->default_interface->rx_bytes), rx, sizeof(rx));
            cricctl_human_size(val(l->network->default_interface->tx_bytes), tx, sizeof(tx));
            snprintf(net, sizeof(net), "%s/%s", rx, tx);
        }
        char procs[24] = "-";
        if (l && l->process)
            snprintf(procs, sizeof(procs), "%" PRIu64, val(l->process->process_count));
        printf("%-13.13s  %-30s  %-8s  %-10s  %-5s  %s\n", s->attributes ? s->attributes->id : "",
               s->attributes && s->attributes->metadata ? s->attributes->metadata->name : "", cpu, mem, procs, net);
    }
    free_readings(m0, m1);
    return 0;
}
