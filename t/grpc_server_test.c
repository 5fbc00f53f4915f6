/* In-process tests of the server's call handling: an nghttp2 client session
 * wired to a memory connection (src/grpc/conn.c), so that limits and
 * cancellation paths can be driven exactly. */
#include "config.h"

#include <check.h>
#include "check_run.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api.pb-c.h"
#include "grpc/internal.h"

#define MAXS 16

struct cstream {
    int status; /* -1 until grpc-status seen */
    size_t data;
    bool closed;
    uint32_t rst;
};

static uv_loop_t loop;
static cric_server *srv;
static struct cric__conn *conn;
static nghttp2_session *cli;
static uint8_t *to_cli;
static size_t to_cli_len, to_cli_cap;
static struct cstream streams[MAXS * 2 + 2];
static const uint8_t *body_src;
static size_t body_len[MAXS * 2 + 2], body_off[MAXS * 2 + 2];
static bool body_end[MAXS * 2 + 2];

static void srv_out(const uint8_t *p, size_t n, void *arg)
{
    if (to_cli_len + n > to_cli_cap) {
        to_cli_cap = (to_cli_len + n) * 2;
        to_cli = realloc(to_cli, to_cli_cap);
        ck_assert_ptr_nonnull(to_cli);
    }
    memcpy(to_cli + to_cli_len, p, n);
    to_cli_len += n;
}

static int c_header(nghttp2_session *h, const nghttp2_frame *f, const uint8_t *name, size_t nl, const uint8_t *value,
                    size_t vl, uint8_t flags, void *u)
{
    if (nl == 11 && memcmp(name, "grpc-status", 11) == 0)
        streams[f->hd.stream_id].status = atoi((const char *)value);
    return 0;
}

static int c_data(nghttp2_session *h, uint8_t flags, int32_t id, const uint8_t *d, size_t len, void *u)
{
    streams[id].data += len;
    return 0;
}

static int c_close(nghttp2_session *h, int32_t id, uint32_t code, void *u)
{
    streams[id].closed = true;
    streams[id].rst = code;
    return 0;
}

static ssize_t c_body(nghttp2_session *h, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                      nghttp2_data_source *src, void *u)
{
    size_t n = body_len[id] - body_off[id];
    if (n > len)
        n = len;
    memcpy(buf, body_src + body_off[id], n);
    body_off[id] += n;
    if (body_off[id] == body_len[id]) {
        if (!body_end[id])
            return n ? (ssize_t)n : NGHTTP2_ERR_DEFERRED;
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    }
    return (ssize_t)n;
}

/* Moves bytes both ways until both sides are quiet. */
static void pump(void)
{
    for (int round = 0; round < 100000; round++) {
        bool moved = false;
        const uint8_t *p;
        ssize_t n;
        while (!conn->closing && (n = nghttp2_session_mem_send(cli, &p)) > 0) {
            cric__conn_feed(conn, p, (size_t)n);
            moved = true;
        }
        if (to_cli_len) {
            size_t len = to_cli_len;
            uint8_t *b = malloc(len);
            memcpy(b, to_cli, len);
            to_cli_len = 0;
            ck_assert_int_eq(nghttp2_session_mem_recv(cli, b, len), (ssize_t)len);
            free(b);
            moved = true;
        }
        uv_run(&loop, UV_RUN_NOWAIT);
        if (!moved && !to_cli_len)
            return;
    }
    ck_abort_msg("pump did not settle");
}

static void setup_with(size_t max_recv, uint32_t client_window)
{
    uv_loop_init(&loop);
    struct cric_server_opts o = { .max_recv_msg_size = max_recv, .max_send_msg_size = 2 << 20 };
    ck_assert_int_eq(cric_server_new(&loop, &o, &srv, NULL), 0);
    ck_assert_int_eq(cric__conn_new_mem(srv, srv_out, NULL, &conn, NULL), 0);
    nghttp2_session_callbacks *cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(cbs, c_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, c_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, c_close);
    ck_assert_int_eq(nghttp2_session_client_new(&cli, cbs, NULL), 0);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_settings_entry iv[] = { { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, client_window } };
    nghttp2_submit_settings(cli, NGHTTP2_FLAG_NONE, iv, 1);
    memset(streams, 0, sizeof(streams));
    for (size_t i = 0; i < sizeof(streams) / sizeof(streams[0]); i++)
        streams[i].status = -1;
}

static void teardown(void)
{
    if (conn)
        cric__conn_free_mem(conn);
    conn = NULL;
    nghttp2_session_del(cli);
    uv_run(&loop, UV_RUN_DEFAULT);
    cric_server_free(srv);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    free(to_cli);
    to_cli = NULL;
    to_cli_len = to_cli_cap = 0;
}

/* Starts a request; body (already prefixed) is sent, and the stream is ended when end. */
static int32_t request(const char *path, const uint8_t *body, size_t len, bool end, const char *timeout)
{
    nghttp2_nv nv[7] = {
        { (uint8_t *)":method", (uint8_t *)"POST", 7, 4, 0 },
        { (uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0 },
        { (uint8_t *)":path", (uint8_t *)path, 5, strlen(path), 0 },
        { (uint8_t *)":authority", (uint8_t *)"x", 10, 1, 0 },
        { (uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16, 0 },
        { (uint8_t *)"te", (uint8_t *)"trailers", 2, 8, 0 },
    };
    size_t n = 6;
    if (timeout)
        nv[n++] = (nghttp2_nv){ (uint8_t *)"grpc-timeout", (uint8_t *)timeout, 12, strlen(timeout), 0 };
    body_src = body;
    nghttp2_data_provider prd = { .read_callback = c_body };
    int32_t id = nghttp2_submit_request(cli, NULL, nv, n, &prd, NULL);
    ck_assert_int_gt(id, 0);
    ck_assert_int_lt(id, (int)(sizeof(streams) / sizeof(streams[0])));
    body_len[id] = len;
    body_off[id] = 0;
    body_end[id] = end;
    return id;
}

static const uint8_t empty_msg[5];

/* ---- handlers ---- */
static cric_call *held;
static int flood_rc, flood_count, cancels;
static uint64_t time_left;

static void h_flood(cric_call *call, const ProtobufCMessage *req, void *ctx)
{
    static char big[1 << 20];
    memset(big, 'x', sizeof(big));
    Runtime__V1__VersionResponse m = RUNTIME__V1__VERSION_RESPONSE__INIT;
    m.version = big;
    big[sizeof(big) - 1] = 0;
    flood_count = 0;
    while ((flood_rc = cric_call_send(call, &m.base)) == 0 && flood_count < 1000)
        flood_count++;
    cric_call_finish(call, GRPC_OK, NULL);
}

static void h_toobig(cric_call *call, const ProtobufCMessage *req, void *ctx)
{
    static char big[3 << 20];
    memset(big, 'y', sizeof(big) - 1);
    Runtime__V1__VersionResponse m = RUNTIME__V1__VERSION_RESPONSE__INIT;
    m.version = big;
    flood_rc = cric_call_send(call, &m.base);
    cric_call_finish(call, GRPC_OK, NULL);
}

static void on_cancel(cric_call *call, void *data) { cancels++; }

static void h_hold(cric_call *call, const ProtobufCMessage *req, void *ctx)
{
    held = call;
    time_left = cric_call_time_left_ms(call);
    cric_call_on_cancel(call, on_cancel, NULL);
}

static void register_all(void)
{
    cric_server_register(srv, "/t/Flood", &runtime__v1__get_events_request__descriptor, true, h_flood, NULL);
    cric_server_register(srv, "/t/TooBig", &runtime__v1__get_events_request__descriptor, true, h_toobig, NULL);
    cric_server_register(srv, "/t/Hold", &runtime__v1__get_events_request__descriptor, false, h_hold, NULL);
}

START_TEST(stream_queue_limit)
{
    /* The client grants no window: nothing drains, the queue must stop at 64 MiB. */
    setup_with(0, 0);
    register_all();
    int32_t id = request("/t/Flood", empty_msg, 5, true, NULL);
    pump();
    ck_assert_int_eq(flood_rc, -ENOBUFS);
    ck_assert_int_ge(flood_count, 60);
    ck_assert_int_le(flood_count, 64);
    ck_assert(!streams[id].closed);
    /* the client gives up: everything queued is freed (LSan checks) */
    nghttp2_submit_rst_stream(cli, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    pump();
    ck_assert_ptr_null(conn->calls);
    teardown();
}
END_TEST

START_TEST(send_too_big)
{
    setup_with(0, 65535);
    register_all();
    int32_t id = request("/t/TooBig", empty_msg, 5, true, NULL);
    pump();
    ck_assert_int_eq(flood_rc, -EMSGSIZE);
    ck_assert(streams[id].closed);
    ck_assert_int_eq(streams[id].status, GRPC_OK);
    teardown();
}
END_TEST

START_TEST(connection_budget)
{
    /* max_recv 16 MiB -> 64 MiB of buffered requests per connection. */
    setup_with(16 << 20, 65535);
    register_all();
    size_t part = 15 << 20;
    uint8_t *body = calloc(1, part);
    /* each stream announces 15 MiB + 100 and sends 15 MiB - 5 of it */
    body[1] = (uint8_t)((part + 100) >> 24), body[2] = (uint8_t)((part + 100) >> 16);
    body[3] = (uint8_t)((part + 100) >> 8), body[4] = (uint8_t)(part + 100);
    int32_t ids[5];
    for (int i = 0; i < 5; i++) {
        ids[i] = request("/t/Hold", body, part, false, NULL);
        pump();
    }
    int exhausted = 0;
    for (int i = 0; i < 5; i++)
        exhausted += streams[ids[i]].status == GRPC_RESOURCE_EXHAUSTED;
    ck_assert_int_eq(exhausted, 1);
    ck_assert_int_eq(streams[ids[4]].status, GRPC_RESOURCE_EXHAUSTED);
    ck_assert_uint_le(conn->in_bytes, 64u << 20);
    /* the others were not disturbed and are freed with the connection */
    ck_assert_int_eq(streams[ids[0]].status, -1);
    free(body);
    teardown();
}
END_TEST

START_TEST(cancel_and_late_answer)
{
    setup_with(0, 65535);
    register_all();
    cancels = 0;
    int32_t id = request("/t/Hold", empty_msg, 5, true, "5S");
    pump();
    ck_assert_ptr_nonnull(held);
    ck_assert_uint_le(time_left, 5000);
    ck_assert_uint_ge(time_left, 1000);
    ck_assert(!cric_call_cancelled(held));
    nghttp2_submit_rst_stream(cli, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    pump();
    ck_assert(cric_call_cancelled(held));
    ck_assert_int_eq(cancels, 1);
    Runtime__V1__VersionResponse m = RUNTIME__V1__VERSION_RESPONSE__INIT;
    cric_call_reply(held, &m.base); /* dropped, frees the call */
    held = NULL;
    /* the connection goes away under a held call */
    id = request("/t/Hold", empty_msg, 5, true, NULL);
    pump();
    ck_assert_ptr_nonnull(held);
    ck_assert_uint_eq(cric_call_time_left_ms(held), UINT64_MAX);
    cric__conn_free_mem(conn);
    conn = NULL;
    ck_assert(cric_call_cancelled(held));
    ck_assert_int_eq(cancels, 2);
    cric_call_fail(held, GRPC_INTERNAL, "too late");
    held = NULL;
    teardown();
}
END_TEST

START_TEST(deadline_while_held)
{
    setup_with(0, 65535);
    register_all();
    cancels = 0;
    int32_t id = request("/t/Hold", empty_msg, 5, true, "1m");
    pump();
    ck_assert_ptr_nonnull(held);
    while (!streams[id].closed) {
        uv_run(&loop, UV_RUN_ONCE);
        pump();
    }
    ck_assert_int_eq(streams[id].status, GRPC_DEADLINE_EXCEEDED);
    ck_assert(cric_call_cancelled(held));
    ck_assert_int_eq(cancels, 1);
    ck_assert_uint_eq(cric_call_time_left_ms(held), 0);
    cric_call_finish(held, GRPC_OK, NULL); /* dropped */
    held = NULL;
    ck_assert_ptr_null(conn->calls);
    teardown();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("grpc_server");
    TCase *tc = tcase_create("server");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, stream_queue_limit);
    tcase_add_test(tc, send_too_big);
    tcase_add_test(tc, connection_budget);
    tcase_add_test(tc, cancel_and_late_answer);
    tcase_add_test(tc, deadline_while_held);
    suite_add_tcase(s, tc);
    return cric_check_run(s, false);
}
