/* The PodSandboxStatus message of a sandbox, for PodSandboxStatus and for
 * the container events that carry their pod's status. */
#include "config.h"

#include <stdlib.h>

#include "sandbox/sandbox.h"

struct status_box {
    Runtime__V1__PodSandboxStatus st; /* first: the box is the message */
    Runtime__V1__PodSandboxMetadata md;
    Runtime__V1__PodSandboxNetworkStatus net;
    Runtime__V1__LinuxPodSandboxStatus lx;
    Runtime__V1__Namespace ns;
    Runtime__V1__NamespaceOption nso;
    Runtime__V1__PodIP *extra;
    Runtime__V1__PodIP **extra_p;
};

Runtime__V1__PodSandboxStatus *cric_sandbox_status_new(const struct cric_sandbox *sb)
{
    struct status_box *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    runtime__v1__pod_sandbox_status__init(&b->st);
    runtime__v1__pod_sandbox_metadata__init(&b->md);
    runtime__v1__pod_sandbox_network_status__init(&b->net);
    runtime__v1__linux_pod_sandbox_status__init(&b->lx);
    runtime__v1__namespace__init(&b->ns);
    runtime__v1__namespace_option__init(&b->nso);
    Runtime__V1__PodSandboxStatus *st = &b->st;
    b->md.name = sb->name;
    b->md.uid = sb->uid;
    b->md.namespace_ = sb->namespace_;
    b->md.attempt = sb->attempt;
    st->id = (char *)sb->id;
    st->metadata = &b->md;
    st->state = sb->state == CRIC_SANDBOX_READY ? RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_READY
                                                : RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_NOTREADY;
    st->created_at = sb->created_at;
    size_t n_ips = 0;
    while (sb->ips && sb->ips[n_ips])
        n_ips++;
    if (n_ips) {
        b->net.ip = sb->ips[0];
        if (n_ips > 1) {
            b->extra = calloc(n_ips - 1, sizeof(*b->extra));
            b->extra_p = calloc(n_ips - 1, sizeof(*b->extra_p));
            if (!b->extra || !b->extra_p) {
                cric_sandbox_status_free(st);
                return NULL;
            }
            for (size_t i = 1; i < n_ips; i++) {
                runtime__v1__pod_ip__init(&b->extra[i - 1]);
                b->extra[i - 1].ip = sb->ips[i];
                b->extra_p[i - 1] = &b->extra[i - 1];
            }
            b->net.n_additional_ips = n_ips - 1;
            b->net.additional_ips = b->extra_p;
        }
    }
    st->network = &b->net;
    b->nso.network = sb->network_mode;
    b->nso.pid = sb->pid_mode;
    b->nso.ipc = sb->ipc_mode;
    b->ns.options = &b->nso;
    b->lx.namespaces = &b->ns;
    st->linux = &b->lx;
    /* Map entries of the config and the status are wire-identical. */
    st->n_labels = sb->config->n_labels;
    st->labels = (Runtime__V1__PodSandboxStatus__LabelsEntry **)sb->config->labels;
    st->n_annotations = sb->config->n_annotations;
    st->annotations = (Runtime__V1__PodSandboxStatus__AnnotationsEntry **)sb->config->annotations;
    st->runtime_handler = sb->runtime_handler;
    return st;
}

void cric_sandbox_status_free(Runtime__V1__PodSandboxStatus *st)
{
    struct status_box *b = (struct status_box *)st;
    if (!b)
        return;
    free(b->extra);
    free(b->extra_p);
    free(b);
}
