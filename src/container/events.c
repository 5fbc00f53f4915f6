/* GetContainerEvents: an endless server-streaming feed of container
 * lifecycle events (kubelet's evented PLEG).  Each event carries the
 * container's pod status and the statuses of every container of that pod,
 * as containerd sends them, so that a subscriber needs no follow-up calls.
 * Nothing is buffered for subscribers that are not there: an event is sent
 * to the feeds open at that moment. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "container/internal.h"
#include "sandbox/sandbox.h"
#include "util/log.h"

struct ev_sub {
    struct ev_sub *next;
    struct cric_container_service *svc;
    cric_call *call;
};

static void sub_unlink(struct ev_sub *s)
{
    for (struct ev_sub **p = &s->svc->ev_subs; *p; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            return;
        }
    }
}

static void sub_end(struct ev_sub *s, enum cric_grpc_status st, const char *msg)
{
    sub_unlink(s);
    cric_call_finish(s->call, st, msg);
    free(s);
}

static void on_sub_cancel(cric_call *call, void *data)
{
    (void)call;
    sub_end(data, GRPC_CANCELLED, "client went away");
}

int cric_container_events_subscribe(struct cric_container_service *svc, cric_call *call)
{
    if (svc->closing)
        return -ESHUTDOWN;
    struct ev_sub *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->svc = svc;
    s->call = call;
    s->next = svc->ev_subs;
    svc->ev_subs = s;
    cric_call_on_cancel(call, on_sub_cancel, s);
    return 0;
}

void cric_container_events_close(struct cric_container_service *svc)
{
    while (svc->ev_subs)
        sub_end(svc->ev_subs, GRPC_UNAVAILABLE, "cricd is shutting down");
}

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* One event to every feed: id is a container's or (for the pod's own
 * events) the pod's; sb may be NULL (the pod is gone). */
static void emit(struct cric_container_service *svc, const char *id, const char *sandbox_id,
                 const struct cric_sandbox *sb, Runtime__V1__ContainerEventType type)
{
    Runtime__V1__ContainerEventResponse ev = RUNTIME__V1__CONTAINER_EVENT_RESPONSE__INIT;
    ev.container_id = (char *)id;
    ev.container_event_type = type;
    ev.created_at = now_ns();
    if (sb)
        ev.pod_sandbox_status = cric_sandbox_status_new(sb);
    /* The pod's containers as they are now; a deleted one is not among them. */
    size_t n = 0;
    for (size_t i = 0; i < svc->n; i++)
        n += strcmp(svc->v[i]->sandbox_id, sandbox_id) == 0;
    Runtime__V1__ContainerStatusResponse **resps = calloc(n ? n : 1, sizeof(*resps));
    Runtime__V1__ContainerStatus **sts = calloc(n ? n : 1, sizeof(*sts));
    size_t k = 0;
    for (size_t i = 0; resps && sts && i < svc->n; i++) {
        const struct ctr *o = svc->v[i];
        if (strcmp(o->sandbox_id, sandbox_id) != 0 || o->state == CTR_CREATING)
            continue;
        if (cric_container_status(svc, o->id, false, &resps[k], NULL) == 0) {
            sts[k] = resps[k]->status;
            k++;
        }
    }
    ev.containers_statuses = sts;
    ev.n_containers_statuses = sts ? k : 0;
    for (struct ev_sub *s = svc->ev_subs, *next; s; s = next) {
        next = s->next;
        int r = cric_call_send(s->call, &ev.base);
        if (r == -ENOBUFS) {
            LOG_WARN("GetContainerEvents: a subscriber reads too slowly; ending its feed");
            sub_end(s, GRPC_RESOURCE_EXHAUSTED, "events not read: the client is too slow");
        } else if (r < 0) {
            LOG_WARN("GetContainerEvents: event for %s not sent: %s", id, strerror(-r));
        }
    }
    for (size_t i = 0; resps && i < k; i++)
        cric_container_status_free(resps[i]);
    free(resps);
    free(sts);
    cric_sandbox_status_free(ev.pod_sandbox_status);
}

void cric__ctr_event(struct ctr *c, Runtime__V1__ContainerEventType type)
{
    struct cric_container_service *svc = c->svc;
    if (!svc->ev_subs)
        return;
    const struct cric_sandbox *sb = NULL;
    if (svc->sandboxes && cric_sandbox_lookup(svc->sandboxes, c->sandbox_id, &sb, NULL) < 0)
        sb = NULL;
    emit(svc, c->id, c->sandbox_id, sb, type);
}

void cric__pod_event(void *data, const struct cric_sandbox *sb, int type)
{
    struct cric_container_service *svc = data;
    if (svc->ev_subs)
        emit(svc, sb->id, sb->id, sb, (Runtime__V1__ContainerEventType)type);
}
