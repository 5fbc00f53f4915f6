/* Unary Version latency over the gRPC transport: N client threads, each
 * with its own connection (src/grpc/client.c), each doing M calls; prints
 * p50/p99/max latency and the total rate.  Asserts nothing.
 *
 *   grpc-bench --endpoint unix:///path [--clients N] [--calls M] [--warmup K] */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.pb-c.h"
#include "grpc/client.h"

static const char *endpoint = "unix:///run/cricd/cricd.sock";
static unsigned calls = 2000, warmup = 200;

struct worker {
    pthread_t th;
    uint64_t *lat; /* ns per call */
    int failed;
    char *why;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void *run(void *arg)
{
    struct worker *w = arg;
    cric_client *c;
    cric_error *err = NULL;
    if (cric_client_connect(endpoint, 5000, &c, &err) < 0) {
        w->failed = 1;
        w->why = strdup(err->msg);
        cric_error_free(err);
        return NULL;
    }
    Runtime__V1__VersionRequest req = RUNTIME__V1__VERSION_REQUEST__INIT;
    req.version = "v1";
    for (unsigned i = 0; i < warmup + calls; i++) {
        ProtobufCMessage *resp = NULL;
        int status;
        char *msg = NULL;
        uint64_t t0 = now_ns();
        int r = cric_client_call(c, "/runtime.v1.RuntimeService/Version", &req.base,
                                 &runtime__v1__version_response__descriptor, 10000, &resp, &status, &msg, &err);
        uint64_t t1 = now_ns();
        if (r < 0 || status != GRPC_OK) {
            w->failed = 1;
            if (r < 0) {
                w->why = strdup(err->msg);
                cric_error_free(err);
            } else {
                w->why = msg ? msg : strdup("non-OK status");
            }
            break;
        }
        protobuf_c_message_free_unpacked(resp, NULL);
        if (i >= warmup)
            w->lat[i - warmup] = t1 - t0;
    }
    cric_client_free(c);
    return NULL;
}

static int cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    unsigned clients = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--endpoint") == 0 && i + 1 < argc)
            endpoint = argv[++i];
        else if (strcmp(argv[i], "--clients") == 0 && i + 1 < argc)
            clients = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--calls") == 0 && i + 1 < argc)
            calls = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--warmup") == 0 && i + 1 < argc)
            warmup = (unsigned)strtoul(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: grpc-bench --endpoint EP [--clients N] [--calls M] [--warmup K]\n");
            return 2;
        }
    }
    if (!clients || !calls) {
        fprintf(stderr, "grpc-bench: --clients and --calls must be > 0\n");
        return 2;
    }
    struct worker *ws = calloc(clients, sizeof(*ws));
    uint64_t *all = calloc((size_t)clients * calls, sizeof(*all));
    if (!ws || !all)
        return 1;
    uint64_t t0 = now_ns();
    for (unsigned i = 0; i < clients; i++) {
        ws[i].lat = all + (size_t)i * calls;
        pthread_create(&ws[i].th, NULL, run, &ws[i]);
    }
    int failed = 0;
    for (unsigned i = 0; i < clients; i++) {
        pthread_join(ws[i].th, NULL);
        if (ws[i].failed) {
            fprintf(stderr, "grpc-bench: client %u: %s\n", i, ws[i].why ? ws[i].why : "failed");
            failed = 1;
        }
        free(ws[i].why);
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    if (failed)
        return 1;
    size_t n = (size_t)clients * calls;
    qsort(all, n, sizeof(*all), cmp);
    printf("clients=%u calls=%zu p50=%.1fus p99=%.1fus max=%.1fus rate=%.0f/s\n", clients, n,
           (double)all[n / 2] / 1e3, (double)all[n * 99 / 100] / 1e3, (double)all[n - 1] / 1e3,
           (double)(n + (size_t)clients * warmup) / secs);
    free(all);
    free(ws);
    return 0;
}
