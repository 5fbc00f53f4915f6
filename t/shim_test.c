/* Unit tests of src/shim that need no container: exit records, recovery
 * states, the exits-dir watcher, runtime error text, control errors. */
#include "config.h"
#include <check.h>
#include "check_run.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shim/shim.h"
#include "util/fs.h"

static char dir[64];

static void setup(void)
{
    strcpy(dir, "/tmp/cric-shim-unit-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    cric_rm_rf(dir, NULL);
}

static void put(const char *name, const char *content)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    char *slash = strrchr(p, '/');
    *slash = '\0';
    ck_assert_int_eq(cric_mkdir_p(p, 0700, NULL), 0);
    *slash = '/';
    ck_assert_int_eq(cric_write_file_atomic(p, content, strlen(content), 0600, NULL), 0);
}

START_TEST(parse_exit_records)
{
    struct cric_shim_exit ex;
    cric_error *err = NULL;
    const char *ok = "status=137\nexited_at=1796577792983713844\noom_killed=1\n";
    ck_assert_int_eq(cric_shim_parse_exit(ok, strlen(ok), &ex, &err), 0);
    ck_assert_int_eq(ex.status, 137);
    ck_assert(ex.exited_at_ns == 1796577792983713844LL);
    ck_assert(ex.oom_killed);
    const char *nostatus = "exited_at=1\n";
    ck_assert_int_eq(cric_shim_parse_exit(nostatus, strlen(nostatus), &ex, &err), -EBADMSG);
    ck_assert_ptr_nonnull(strstr(err->msg, "no status"));
    cric_error_clear(&err);
    const char *bad = "status=abc\n";
    ck_assert_int_eq(cric_shim_parse_exit(bad, strlen(bad), &ex, &err), -EBADMSG);
    ck_assert_ptr_nonnull(strstr(err->msg, "'status'"));
    cric_error_clear(&err);
}
END_TEST

START_TEST(status_recovery)
{
    char st[128];
    struct cric_shim_status s;
    snprintf(st, sizeof(st), "%s/gone", dir);
    put("gone/shim.pid", "999999999\n");
    ck_assert_int_eq(cric_shim_status(st, &s, NULL), 0);
    ck_assert_int_eq(s.state, CRIC_SHIM_LOST);
    ck_assert(!cric_shim_is_alive(st));
    /* a live pid that is not a cric-shim (ours) does not count */
    char pid[32];
    snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
    put("other/shim.pid", pid);
    snprintf(st, sizeof(st), "%s/other", dir);
    ck_assert(!cric_shim_is_alive(st));
    put("done/shim.pid", "999999999\n");
    put("done/container.pid", "4242\n");
    put("done/exit", "status=3\nexited_at=5\noom_killed=0\n");
    snprintf(st, sizeof(st), "%s/done", dir);
    ck_assert_int_eq(cric_shim_status(st, &s, NULL), 0);
    ck_assert_int_eq(s.state, CRIC_SHIM_EXITED);
    ck_assert_int_eq(s.container_pid, 4242);
    ck_assert_int_eq(s.ex.status, 3);
    struct cric_shim_exit ex;
    snprintf(st, sizeof(st), "%s/gone", dir);
    ck_assert_int_eq(cric_shim_read_exit(st, &ex, NULL), -ENOENT);
}
END_TEST

struct seen {
    int n;
    char id[64];
    int status;
};

static void on_exit_rec(const char *id, const struct cric_shim_exit *ex, void *data)
{
    struct seen *s = data;
    s->n++;
    snprintf(s->id, sizeof(s->id), "%s", id);
    s->status = ex->status;
}

static void on_tick(uv_timer_t *t)
{
    struct seen *s = t->data;
    if (s->n > 0 || ++s->status > 200)
        uv_stop(t->loop);
}

START_TEST(watch_and_scan)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char exits[128];
    snprintf(exits, sizeof(exits), "%s/exits", dir);
    put("exits/old", "status=9\n");
    put("exits/.hidden", "status=1\n");
    struct seen s = {0};
    cric_shim_watch *w = NULL;
    ck_assert_int_eq(cric_shim_watch_new(&loop, exits, on_exit_rec, &s, &w, NULL), 0);
    ck_assert_int_eq(cric_shim_watch_scan(w, NULL), 0);
    ck_assert_int_eq(s.n, 1);
    ck_assert_str_eq(s.id, "old");
    ck_assert_int_eq(s.status, 9);
    /* a record written (atomically) while we watch is reported once it is renamed in */
    s = (struct seen){0};
    put("exits/new", "status=0\nexited_at=1\noom_killed=0\n");
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    t.data = &s;
    s.status = 0;
    uv_timer_start(&t, on_tick, 10, 10);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_ge(s.n, 1);
    ck_assert_str_eq(s.id, "new");
    ck_assert_int_eq(cric_shim_exit_forget(exits, "new", NULL), 0);
    char gone[160];
    snprintf(gone, sizeof(gone), "%s/new", exits);
    ck_assert_int_eq(access(gone, F_OK), -1);
    uv_close((uv_handle_t *)&t, NULL);
    cric_shim_watch_free(w);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

START_TEST(runtime_error_text)
{
    char err1[] = "time=\"2026-12-06T17:28:54Z\" level=error msg=\"container \\\"x\\\" does not exist\"\n";
    struct cric_runtime_result r = {.status = 1, .err = err1, .err_len = strlen(err1)};
    char *m = cric_runtime_error_text(&r);
    ck_assert_str_eq(m, "container \"x\" does not exist");
    free(m);
    char json[] = "{\"level\": \"error\", \"msg\": \"cannot \\\"start\\\"\"}\n";
    r.err = json;
    r.err_len = strlen(json);
    m = cric_runtime_error_text(&r);
    ck_assert_str_eq(m, "cannot \"start\"");
    free(m);
    char err2[] = "  plain failure\n";
    r.err = err2;
    r.err_len = strlen(err2);
    m = cric_runtime_error_text(&r);
    ck_assert_str_eq(m, "plain failure");
    free(m);
    r.err = NULL;
    r.err_len = 0;
    r.status = 3;
    m = cric_runtime_error_text(&r);
    ck_assert_str_eq(m, "exit status 3");
    free(m);
}
END_TEST

static void on_ctl(const cric_error *err, void *data)
{
    *(int *)data = err ? err->code : 1;
}

START_TEST(control_without_shim)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    int got = 0;
    ck_assert_int_eq(cric_shim_reopen_log(&loop, dir, on_ctl, &got, NULL), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(got, -ESRCH);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

struct rr {
    int status;
    char out[64];
};

static void on_run(const struct cric_runtime_result *res, void *data)
{
    struct rr *r = data;
    r->status = res->status;
    snprintf(r->out, sizeof(r->out), "%s|%s", res->out, res->err);
}

START_TEST(runtime_run_captures)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct rr r = {0};
    const char *argv[] = {"/bin/sh", "-c", "echo out; echo err >&2; exit 4", NULL};
    ck_assert_int_eq(cric_runtime_run(&loop, argv, 10000, on_run, &r, NULL), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(r.status, 4);
    ck_assert_str_eq(r.out, "out\n|err\n");
    const char *slow[] = {"/bin/sleep", "10", NULL};
    ck_assert_int_eq(cric_runtime_run(&loop, slow, 100, on_run, &r, NULL), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(r.status, -ETIMEDOUT);
    cric_error *err = NULL;
    const char *missing[] = {"/no/such/runtime", NULL};
    ck_assert_int_lt(cric_runtime_run(&loop, missing, 0, on_run, &r, &err), 0);
    ck_assert_ptr_nonnull(strstr(err->msg, "/no/such/runtime"));
    cric_error_free(err);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("shim");
    TCase *tc = tcase_create("daemon side");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, parse_exit_records);
    tcase_add_test(tc, status_recovery);
    tcase_add_test(tc, watch_and_scan);
    tcase_add_test(tc, runtime_error_text);
    tcase_add_test(tc, control_without_shim);
    tcase_add_test(tc, runtime_run_captures);
    suite_add_tcase(s, tc);
    return cric_check_run(s, false);
}
