/* Fuzz target for the gRPC server's connection input path: bytes go into a
 * memory-only connection (src/grpc/conn.c, output discarded) with a few
 * handlers registered.  Built with libFuzzer under --with-fuzzer; always
 * built as a replay program that runs every file of the corpus
 * (t/fuzz/grpc-conn/ by default, or the files/dirs given as arguments). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.pb-c.h"
#include "grpc/internal.h"
#include "fuzz_replay.h"

static uv_loop_t loop;
static cric_server *srv;

static void version(cric_call *call, const ProtobufCMessage *req, void *ctx)
{
    const Runtime__V1__VersionRequest *r = (const void *)req;
    Runtime__V1__VersionResponse resp = RUNTIME__V1__VERSION_RESPONSE__INIT;
    resp.version = r->version;
    if (strcmp(r->version, "fail") == 0)
        cric_call_fail(call, GRPC_NOT_FOUND, "no such thing: %s\n\xff", r->version);
    else
        cric_call_reply(call, &resp.base);
}

static void events(cric_call *call, const ProtobufCMessage *req, void *ctx)
{
    for (int i = 0; i < 3; i++) {
        Runtime__V1__ContainerEventResponse ev = RUNTIME__V1__CONTAINER_EVENT_RESPONSE__INIT;
        ev.container_id = "c";
        cric_call_send(call, &ev.base);
    }
    cric_call_finish(call, GRPC_OK, NULL);
}

/* Answers on the next loop iteration: exercises answers after the stream or
 * the connection went away. */
struct later {
    uv_timer_t t;
    cric_call *call;
};

static void later_closed(uv_handle_t *h) { free(h->data); }

static void later_fire(uv_timer_t *t)
{
    struct later *l = t->data;
    Runtime__V1__VersionResponse resp = RUNTIME__V1__VERSION_RESPONSE__INIT;
    cric_call_reply(l->call, &resp.base);
    uv_close((uv_handle_t *)&l->t, later_closed);
}

static void later(cric_call *call, const ProtobufCMessage *req, void *ctx)
{
    struct later *l = calloc(1, sizeof(*l));
    if (!l)
        abort();
    l->call = call;
    uv_timer_init(&loop, &l->t);
    l->t.data = l;
    uv_timer_start(&l->t, later_fire, 0, 0);
}

static void setup(void)
{
    if (srv)
        return;
    uv_loop_init(&loop);
    struct cric_server_opts o = { .max_recv_msg_size = 1 << 16, .max_send_msg_size = 1 << 16 };
    if (cric_server_new(&loop, &o, &srv, NULL) < 0)
        abort();
    cric_server_register(srv, "/runtime.v1.RuntimeService/Version", &runtime__v1__version_request__descriptor,
                         false, version, NULL);
    cric_server_register(srv, "/runtime.v1.RuntimeService/GetContainerEvents",
                         &runtime__v1__get_events_request__descriptor, true, events, NULL);
    cric_server_register(srv, "/cric.test/Slow", &runtime__v1__version_request__descriptor, false, later, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    struct cric__conn *c;
    if (cric__conn_new_mem(srv, NULL, NULL, &c, NULL) < 0)
        abort();
    /* The first byte picks a read size so that frames get split. */
    size_t chunk = size ? (size_t)data[0] * 7 + 1 : 1;
    for (size_t off = 0; off < size && !c->closing;) {
        size_t n = size - off < chunk ? size - off : chunk;
        cric__conn_feed(c, data + off, n);
        off += n;
    }
    uv_run(&loop, UV_RUN_NOWAIT); /* deferred answers, expired deadlines */
    cric__conn_free_mem(c);
    uv_run(&loop, UV_RUN_DEFAULT); /* answers after the connection left; closes timers */
    return 0;
}

#ifndef CRIC_LIBFUZZER
static void run_file(char *buf, size_t len)
{
    LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
    /* and once more in a single read */
    if (len > 1 && buf[0] != 0) {
        buf[0] = 0;
        LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
    }
}

int main(int argc, char **argv)
{
    long n = fuzz_replay("fuzz_grpc_conn", "t/fuzz/grpc-conn", 1 << 20, argc, argv, run_file);
    setup();
    cric_server_free(srv);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0) {
        fprintf(stderr, "fuzz_grpc_conn: handles left open\n");
        return 1;
    }
    if (n == 0) {
        fprintf(stderr, "fuzz_grpc_conn: empty corpus\n");
        return 1;
    }
    printf("fuzz_grpc_conn: %ld inputs replayed\n", n);
    return n < 0 ? 1 : 0;
}
#endif
