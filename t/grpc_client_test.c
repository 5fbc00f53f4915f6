/* The blocking client (src/grpc/client.c) against t/grpc_testsrv. */
#include "config.h"

#include <check.h>
#include "check_run.h"
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api.pb-c.h"
#include "grpc/client.h"

static char dir[PATH_MAX], sock[PATH_MAX + 16];
static pid_t srv = -1;

/* A failed assertion must not leave a server behind. */
static void kill_server(void)
{
    if (srv > 0) {
        kill(srv, SIGKILL);
        waitpid(srv, NULL, 0);
        srv = -1;
        unlink(sock);
        rmdir(dir);
    }
}

static void start_server(void)
{
    kill_server();
    char exe[PATH_MAX], srvpath[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    ck_assert_int_gt(n, 0);
    exe[n] = 0;
    snprintf(srvpath, sizeof(srvpath), "%s/grpc_testsrv", dirname(exe));
    strcpy(dir, "/tmp/cric-grpc-client-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(sock, sizeof(sock), "%s/s.sock", dir);
    srv = fork();
    ck_assert_int_ge(srv, 0);
    if (srv == 0) {
        execl(srvpath, srvpath, "--events", "100", sock, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 2000 && access(sock, F_OK) != 0; i++)
        usleep(5000);
    ck_assert_int_eq(access(sock, F_OK), 0);
}

static void stop_server(void)
{
    int st;
    ck_assert_int_eq(kill(srv, SIGTERM), 0);
    ck_assert_int_eq(waitpid(srv, &st, 0), srv);
    srv = -1;
    ck_assert(WIFEXITED(st));
    ck_assert_int_eq(WEXITSTATUS(st), 0); /* graceful, uv_loop_close() == 0 */
    ck_assert_int_ne(access(sock, F_OK), 0);
    rmdir(dir);
}

static cric_client *connect_ok(const char *ep)
{
    cric_client *c = NULL;
    cric_error *err = NULL;
    int r = cric_client_connect(ep, 5000, &c, &err);
    ck_assert_msg(r == 0, "connect %s: %s", ep, err ? err->msg : "?");
    return c;
}

static int call_version(cric_client *c, const char *path, const char *v, uint64_t timeout_ms,
                        Runtime__V1__VersionResponse **resp, char **msg)
{
    Runtime__V1__VersionRequest req = RUNTIME__V1__VERSION_REQUEST__INIT;
    req.version = (char *)v;
    int status = -1;
    cric_error *err = NULL;
    *msg = NULL;
    int r = cric_client_call(c, path, &req.base, &runtime__v1__version_response__descriptor, timeout_ms,
                             (ProtobufCMessage **)resp, &status, msg, &err);
    ck_assert_msg(r == 0, "call %s: %s", path, err ? err->msg : "?");
    return status;
}

START_TEST(unary)
{
    start_server();
    const char *eps[] = { NULL, NULL, NULL };
    char a[PATH_MAX + 32], b[PATH_MAX + 32];
    snprintf(a, sizeof(a), "unix://%s", sock);
    snprintf(b, sizeof(b), "unix:%s", sock);
    eps[0] = a, eps[1] = b, eps[2] = sock;
    for (int i = 0; i < 3; i++) {
        cric_client *c = connect_ok(eps[i]);
        for (int k = 0; k < 3; k++) {
            Runtime__V1__VersionResponse *resp;
            char *msg, want[32];
            snprintf(want, sizeof(want), "v%d.%d", i, k);
            ck_assert_int_eq(call_version(c, "/runtime.v1.RuntimeService/Version", want, 0, &resp, &msg), GRPC_OK);
            ck_assert_ptr_null(msg);
            ck_assert_str_eq(resp->version, want);
            ck_assert_str_eq(resp->runtime_name, "grpc_testsrv");
            protobuf_c_message_free_unpacked(&resp->base, NULL);
        }
        cric_client_free(c);
    }
    stop_server();
}
END_TEST

START_TEST(statuses)
{
    start_server();
    cric_client *c = connect_ok(sock);
    Runtime__V1__VersionResponse *resp = (void *)1;
    char *msg;
    ck_assert_int_eq(call_version(c, "/runtime.v1.RuntimeService/Nope", "", 0, &resp, &msg), GRPC_UNIMPLEMENTED);
    ck_assert_ptr_null(resp);
    ck_assert_ptr_nonnull(strstr(msg, "/runtime.v1.RuntimeService/Nope"));
    free(msg);
    ck_assert_int_eq(call_version(c, "/cric.test/Fail", "2", 0, &resp, &msg), GRPC_NOT_FOUND);
    ck_assert_str_eq(msg, "failed on purpose: \xc3\xa9t\xc3\xa9 100% \"quoted\"\nline");
    free(msg);
    /* the server's deadline answer, not the client's own give-up */
    ck_assert_int_eq(call_version(c, "/cric.test/Slow", "3000", 100, &resp, &msg), GRPC_DEADLINE_EXCEEDED);
    ck_assert_str_eq(msg, "deadline exceeded");
    free(msg);
    ck_assert_int_eq(call_version(c, "/cric.test/Slow", "1", 10000, &resp, &msg), GRPC_OK);
    ck_assert_str_eq(resp->version, "slow");
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    cric_client_free(c);
    stop_server();
}
END_TEST

START_TEST(big_response)
{
    start_server();
    cric_client *c = connect_ok(sock);
    Runtime__V1__ListImagesRequest req = RUNTIME__V1__LIST_IMAGES_REQUEST__INIT;
    Runtime__V1__ListImagesResponse *resp = NULL;
    int status = -1;
    char *msg = NULL;
    cric_error *err = NULL;
    ck_assert_int_eq(cric_client_call(c, "/runtime.v1.ImageService/ListImages", &req.base,
                                      &runtime__v1__list_images_response__descriptor, 0,
                                      (ProtobufCMessage **)&resp, &status, &msg, &err), 0);
    ck_assert_int_eq(status, GRPC_OK);
    ck_assert_uint_eq(resp->n_images, 20000);
    ck_assert_uint_eq(resp->images[19999]->size, 19999);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    cric_client_free(c);
    stop_server();
}
END_TEST

struct seen {
    unsigned n, stop_at;
    char last[32];
};

static int on_event(const ProtobufCMessage *m, void *data)
{
    const Runtime__V1__ContainerEventResponse *ev = (const void *)m;
    struct seen *s = data;
    char want[32];
    snprintf(want, sizeof(want), "%s%u", s->last[0] == 'e' ? "e" : "c", s->n);
    if (strcmp(ev->container_id, want) != 0)
        return -EBADMSG;
    s->n++;
    return s->stop_at && s->n == s->stop_at ? 42 : 0;
}

START_TEST(streaming)
{
    start_server();
    cric_client *c = connect_ok(sock);
    Runtime__V1__GetEventsRequest req = RUNTIME__V1__GET_EVENTS_REQUEST__INIT;
    int status = -1;
    char *msg = NULL;
    cric_error *err = NULL;
    struct seen s = { 0 };
    ck_assert_int_eq(cric_client_stream(c, "/runtime.v1.RuntimeService/GetContainerEvents", &req.base,
                                        &runtime__v1__container_event_response__descriptor, 0, on_event, &s,
                                        &status, &msg, &err), 0);
    ck_assert_int_eq(status, GRPC_OK);
    ck_assert_uint_eq(s.n, 100);
    /* the callback stops an endless stream; the connection stays usable */
    struct seen e = { .stop_at = 5, .last = "e" };
    ck_assert_int_eq(cric_client_stream(c, "/cric.test/Endless", &req.base,
                                        &runtime__v1__container_event_response__descriptor, 0, on_event, &e,
                                        &status, &msg, &err), 42);
    ck_assert_uint_eq(e.n, 5);
    Runtime__V1__VersionResponse *resp;
    ck_assert_int_eq(call_version(c, "/runtime.v1.RuntimeService/Version", "stats", 0, &resp, &msg), GRPC_OK);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    cric_client_free(c);
    stop_server();
}
END_TEST

START_TEST(errors)
{
    cric_client *c = NULL;
    cric_error *err = NULL;
    ck_assert_int_eq(cric_client_connect("tcp://127.0.0.1:1", 100, &c, &err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err->msg, "tcp://127.0.0.1:1"));
    cric_error_clear(&err);
    ck_assert_int_eq(cric_client_connect("unix:///nonexistent/cric.sock", 100, &c, &err), -ENOENT);
    ck_assert_ptr_nonnull(strstr(err->msg, "/nonexistent/cric.sock"));
    cric_error_clear(&err);
    ck_assert_ptr_null(c);
    /* the server goes away: a transport error, not a status */
    start_server();
    c = connect_ok(sock);
    stop_server();
    Runtime__V1__VersionRequest req = RUNTIME__V1__VERSION_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    int status = -1;
    char *msg = NULL;
    ck_assert_int_lt(cric_client_call(c, "/runtime.v1.RuntimeService/Version", &req.base,
                                      &runtime__v1__version_response__descriptor, 1000, &resp, &status, &msg,
                                      &err), 0);
    ck_assert_ptr_nonnull(err);
    cric_error_clear(&err);
    cric_client_free(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("grpc_client");
    TCase *tc = tcase_create("client");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, unary);
    tcase_add_test(tc, statuses);
    tcase_add_test(tc, big_response);
    tcase_add_test(tc, streaming);
    tcase_add_test(tc, errors);
    suite_add_tcase(s, tc);
    atexit(kill_server);
    return cric_check_run(s, true);
}
