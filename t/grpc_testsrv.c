/* A gRPC server for the transport tests: the real cric_server with a few
 * handlers, on the socket path given as argv.
 *
 *   grpc_testsrv [--max-recv N] [--max-send N] [--max-streams N] [--events N] [--debug] SOCKET
 *
 * Methods:
 *   /runtime.v1.RuntimeService/Version  echoes request.version; "stats" answers
 *                                       runtime_version "cancelled=N answered=N started=N"
 *   /cric.test/Slow (VersionRequest)    answers after version (ms) on a uv timer
 *   /cric.test/Fail (VersionRequest)    fails with -errno version via cric_call_fail_error
 *                                       ("<errno> long": with a 10000-byte message)
 *   /runtime.v1.ImageService/ListImages filter.image.image images (default 20000, ~2 MiB)
 *   /runtime.v1.RuntimeService/GetContainerEvents  --events events, then OK
 *   /cric.test/Endless (GetEventsRequest)          an event every 5 ms until cancelled
 * Exits 0 after a graceful shutdown on SIGTERM/SIGINT with uv_loop_close() == 0. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.pb-c.h"
#include "grpc/server.h"
#include "util/log.h"

static unsigned n_events = 100;
static unsigned n_cancelled, n_answered, n_started;

static void version(cric_call *call, const ProtobufCMessage *req, void *ctx)
{
    const Runtime__V1__VersionRequest *r = (const void *)req;
    Runtime__V1__VersionResponse resp = RUNTIME__V1__VERSION_RESPONSE__INIT;
    char stats[96];
    snprintf(stats, sizeof(stats), "cancelled=%u answered=%u started=%u", n_cancelled, n_answered, n_started);
    resp.version = r->version;
    resp.runtime_name = "grpc_testsrv";
    resp.runtime_version = strcmp(r->version, "stats") == 0 ? stats : "0";
    resp.runtime_api_version = "v1";
    cric_call_reply(call, &resp.base);
}

struct slow {
    uv_timer_t timer;
    cric_call *call;
};

static void slow_closed(uv_handle_t *h) { free(h->data); }

static void slow_fire(uv_timer_t *t)
{
    struct slow *s = t->data;
    if (cric_call_cancelled(s->call))
        n_cancelled++;
    else
        n_answered++;
    Runtime__V1__VersionResponse resp = RUNTIME__V1__VERSION_RESPONSE__INIT;
    resp.version = "slow";
    cric_call_reply(s->call, &resp.base); /* dropped when cancelled */
    uv_close((uv_handle_t *)&s->timer, slow_closed);
}

static void slow(cric_call *call, const ProtobufCMessage *req, void *ctx)
{
    const Runtime__V1__VersionRequest *r = (const void *)req;
    struct slow *s = calloc(1, sizeof(*s));
    if (!s) {
        cric_call_fail(call, GRPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    s->call = call;
    n_started++;
    uv_timer_init(ctx, &s->timer);
    s->timer.data = s;
    uv_timer_start(&s->timer, slow_fire, strtoull(r->version, NULL, 10), 0);
}

static void fail(cric_call *call, const ProtobufCMessage *req, void *ctx)
{
    const Runtime__V1__VersionRequest *r = (const void *)req;
    cric_error e = { .code = -atoi(r->version), .msg = "failed on purpose: \xc3\xa9t\xc3\xa9 100% \"quoted\"\nline" };
    char longmsg[10001];
    if (strstr(r->version, "long")) {
        /* 5000 two-byte characters: the server cuts it, on a character boundary */
        for (int i = 0; i < 10000; i += 2)
            longmsg[i] = (char)0xc3, longmsg[i + 1] = (char)0xa9;
        longmsg[10000] = 0;
        e.msg = longmsg;
    }
    cric_call_fail_error(call, &e);
}

static void list_images(cric_call *call, const ProtobufCMessage *req, void *ctx)
{
    const Runtime__V1__ListImagesRequest *r = (const void *)req;
    size_t n = 20000;
    if (r->filter && r->filter->image && r->filter->image->image[0])
        n = strtoul(r->filter->image->image, NULL, 10);
    Runtime__V1__Image *imgs = calloc(n ? n : 1, sizeof(*imgs));
    Runtime__V1__Image **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
    char (*ids)[80] = calloc(n ? n : 1, sizeof(*ids));
    if (!imgs || !ptrs || !ids) {
        cric_call_fail(call, GRPC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        runtime__v1__image__init(&imgs[i]);
        snprintf(ids[i], sizeof(ids[i]), "sha256:%064zx", i);
        imgs[i].id = ids[i];
        imgs[i].size = i;
        ptrs[i] = &imgs[i];
    }
    Runtime__V1__ListImagesResponse resp = RUNTIME__V1__LIST_IMAGES_RESPONSE__INIT;
    resp.n_images = n;
    resp.images = ptrs;
    cric_call_reply(call, &resp.base);
out:
    free(imgs);
    free(ptrs);
    free(ids);
}

static void events(cric_call *call, const ProtobufCMessage *req, void *ctx)
{
    for (unsigned i = 0; i < n_events; i++) {
        Runtime__V1__ContainerEventResponse ev = RUNTIME__V1__CONTAINER_EVENT_RESPONSE__INIT;
        char id[32];
        snprintf(id, sizeof(id), "c%u", i);
        ev.container_id = id;
        ev.created_at = i;
        if (cric_call_send(call, &ev.base) < 0) {
            cric_call_finish(call, GRPC_RESOURCE_EXHAUSTED, "cannot queue events");
            return;
        }
    }
    cric_call_finish(call, GRPC_OK, NULL);
}

struct endless {
    uv_timer_t timer;
    cric_call *call;
    unsigned i;
};

static void endless_tick(uv_timer_t *t)
{
    struct endless *e = t->data;
    Runtime__V1__ContainerEventResponse ev = RUNTIME__V1__CONTAINER_EVENT_RESPONSE__INIT;
    char id[32];
    snprintf(id, sizeof(id), "e%u", e->i);
    ev.container_id = id;
    ev.created_at = e->i++;
    cric_call_send(e->call, &ev.base);
}

static void endless_cancel(cric_call *call, void *data)
{
    struct endless *e = data;
    n_cancelled++;
    cric_call_finish(call, GRPC_CANCELLED, "cancelled"); /* dropped; frees the call */
    uv_close((uv_handle_t *)&e->timer, slow_closed);
}

static void endless(cric_call *call, const ProtobufCMessage *req, void *ctx)
{
    struct endless *e = calloc(1, sizeof(*e));
    if (!e) {
        cric_call_finish(call, GRPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    e->call = call;
    uv_timer_init(ctx, &e->timer);
    e->timer.data = e;
    uv_timer_start(&e->timer, endless_tick, 0, 5);
    cric_call_on_cancel(call, endless_cancel, e);
}

static uv_signal_t sigterm, sigint;

static void shutdown_done(void *data)
{
    uv_close((uv_handle_t *)&sigterm, NULL);
    uv_close((uv_handle_t *)&sigint, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
    uv_signal_stop(&sigterm);
    uv_signal_stop(&sigint);
    cric_server_shutdown(h->data, 2000, shutdown_done, NULL);
}

int main(int argc, char **argv)
{
    struct cric_server_opts opts = { .max_recv_msg_size = 4 << 20, .max_send_msg_size = 8 << 20 };
    int i;
    for (i = 1; i < argc - 1; i++) {
        if (strcmp(argv[i], "--max-recv") == 0 && i + 2 < argc)
            opts.max_recv_msg_size = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--max-send") == 0 && i + 2 < argc)
            opts.max_send_msg_size = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--max-streams") == 0 && i + 2 < argc)
            opts.max_concurrent_streams = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--events") == 0 && i + 2 < argc)
            n_events = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--debug") == 0)
            cric_log_level_current = CRIC_LOG_DEBUG;
        else
            break;
    }
    if (i != argc - 1) {
        fprintf(stderr, "usage: grpc_testsrv [--max-recv N] [--max-send N] [--max-streams N] [--events N] [--debug] SOCKET\n");
        return 2;
    }
    opts.socket_path = argv[i];

    uv_loop_t loop;
    uv_loop_init(&loop);
    cric_server *s;
    cric_error *err = NULL;
    if (cric_server_new(&loop, &opts, &s, &err) < 0) {
        fprintf(stderr, "grpc_testsrv: %s\n", err->msg);
        return 1;
    }
    cric_server_register(s, "/runtime.v1.RuntimeService/Version", &runtime__v1__version_request__descriptor,
                         false, version, NULL);
    cric_server_register(s, "/cric.test/Slow", &runtime__v1__version_request__descriptor, false, slow, &loop);
    cric_server_register(s, "/cric.test/Fail", &runtime__v1__version_request__descriptor, false, fail, NULL);
    cric_server_register(s, "/runtime.v1.ImageService/ListImages", &runtime__v1__list_images_request__descriptor,
                         false, list_images, NULL);
    cric_server_register(s, "/runtime.v1.RuntimeService/GetContainerEvents",
                         &runtime__v1__get_events_request__descriptor, true, events, NULL);
    cric_server_register(s, "/cric.test/Endless", &runtime__v1__get_events_request__descriptor, true, endless,
                         &loop);
    /* Handlers go in before the socket appears: a test may signal us as soon as it can connect. */
    signal(SIGPIPE, SIG_IGN);
    uv_signal_init(&loop, &sigterm);
    uv_signal_init(&loop, &sigint);
    sigterm.data = sigint.data = s;
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_start(&sigint, on_signal, SIGINT);
    if (cric_server_start(s, &err) < 0) {
        fprintf(stderr, "grpc_testsrv: %s\n", err->msg);
        cric_error_free(err);
        cric_server_free(s);
        uv_close((uv_handle_t *)&sigterm, NULL);
        uv_close((uv_handle_t *)&sigint, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        return 1;
    }
    printf("listening on %s\n", opts.socket_path);
    fflush(stdout);
    uv_run(&loop, UV_RUN_DEFAULT);
    cric_server_free(s);
    int r = uv_loop_close(&loop);
    if (r != 0) {
        fprintf(stderr, "grpc_testsrv: uv_loop_close: %s (handles left open)\n", uv_strerror(r));
        uv_print_all_handles(&loop, stderr);
        return 1;
    }
    return 0;
}
