#include "config.h"
#include <check.h>
#include "check_run.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/cleanup.h"
#include "util/err.h"
#include "util/fs.h"
#include "util/fsync_async.h"

START_TEST(error_contract)
{
    cric_error *err = NULL;
    ck_assert_int_eq(cric_error_sys(&err, -ENOENT, "open '%s'", "/x"), -ENOENT);
    ck_assert_str_eq(err->msg, "open '/x': No such file or directory");
    /* A first error is never overwritten by a later one. */
    cric_error_new(&err, -EINVAL, "second");
    ck_assert_str_eq(err->msg, "open '/x': No such file or directory");
    ck_assert_int_eq(cric_error_prefix(&err, "load %d", 1), -ENOENT);
    ck_assert_str_eq(err->msg, "load 1: open '/x': No such file or directory");
    cric_error_clear(&err);
    ck_assert_ptr_null(err);
    ck_assert_int_eq(cric_error_new(NULL, -EIO, "ignored"), -EIO);
}
END_TEST

START_TEST(atomic_write_and_read)
{
    char dir[] = "/tmp/cric-util-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    _cleanup_free_ char *sub = NULL, *file = NULL;
    ck_assert_int_ge(asprintf(&sub, "%s/a/b/c", dir), 0);
    ck_assert_int_ge(asprintf(&file, "%s/rec.json", sub), 0);
    cric_error *err = NULL;
    ck_assert_int_eq(cric_mkdir_p(sub, 0700, &err), 0);
    ck_assert_int_eq(cric_write_file_atomic(file, "{\"a\":1}", 7, 0600, &err), 0);
    ck_assert_int_eq(cric_write_file_atomic(file, "{}", 2, 0600, &err), 0);
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    ck_assert_int_eq(cric_read_file(file, 1024, &buf, &len, &err), 0);
    ck_assert_str_eq(buf, "{}");
    ck_assert_uint_eq(len, 2);
    _cleanup_free_ char *big = NULL;
    ck_assert_int_eq(cric_read_file(file, 1, &big, NULL, &err), -EFBIG);
    ck_assert_ptr_null(big);
    cric_error_clear(&err);
    ck_assert_int_eq(cric_rm_rf(dir, &err), 0);
    struct stat st;
    ck_assert_int_eq(stat(dir, &st), -1);
    ck_assert_int_eq(cric_rm_rf(dir, &err), 0);
}
END_TEST

struct fsync_res {
    int calls, rc;
    char *msg;
};

static void on_fsync(void *data, int rc, cric_error *e)
{
    struct fsync_res *r = data;
    r->calls++;
    r->rc = rc;
    r->msg = e ? strdup(e->msg) : NULL;
    cric_error_free(e);
}

START_TEST(replace_and_fsync_async)
{
    char dir[] = "/tmp/cric-util-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    _cleanup_free_ char *file = NULL, *tmp = NULL, *missing = NULL;
    ck_assert_int_ge(asprintf(&file, "%s/rec.json", dir), 0);
    ck_assert_int_ge(asprintf(&tmp, "%s.tmp", file), 0);
    ck_assert_int_ge(asprintf(&missing, "%s/none/rec.json", dir), 0);
    cric_error *err = NULL;
    ck_assert_int_eq(cric_write_file_replace(file, "old", 3, 0600, &err), 0);
    ck_assert_int_eq(cric_write_file_replace(file, "new!", 4, 0640, &err), 0);
    _cleanup_free_ char *buf = NULL;
    ck_assert_int_eq(cric_read_file(file, 1024, &buf, NULL, &err), 0);
    ck_assert_str_eq(buf, "new!");
    struct stat st;
    ck_assert_int_eq(stat(tmp, &st), -1); /* no temp file left behind */
    ck_assert_int_eq(cric_write_file_replace(missing, "x", 1, 0600, &err), -ENOENT);
    ck_assert_ptr_nonnull(strstr(err->msg, "none/rec.json.tmp"));
    cric_error_clear(&err);

    uv_loop_t loop;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    struct fsync_res ok = {0}, bad = {0};
    ck_assert_int_eq(cric_fsync_async(&loop, file, 2, on_fsync, &ok, &err), 0);
    ck_assert_int_eq(cric_fsync_async(&loop, missing, 1, on_fsync, &bad, &err), 0);
    ck_assert_int_eq(cric_fsync_async(&loop, file, 1, NULL, NULL, &err), 0);
    ck_assert_int_eq(ok.calls + bad.calls, 0); /* only from the loop */
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    ck_assert_int_eq(ok.calls, 1);
    ck_assert_int_eq(ok.rc, 0);
    ck_assert_ptr_null(ok.msg);
    ck_assert_int_eq(bad.calls, 1);
    ck_assert_int_eq(bad.rc, -ENOENT);
    /* The first failure is named: the file itself, not its parents. */
    ck_assert_ptr_nonnull(bad.msg);
    ck_assert_ptr_nonnull(strstr(bad.msg, "none/rec.json'"));
    free(bad.msg);
    ck_assert_int_eq(cric_rm_rf(dir, &err), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, error_contract);
    tcase_add_test(tc, atomic_write_and_read);
    tcase_add_test(tc, replace_and_fsync_async);
    suite_add_tcase(s, tc);
    return cric_check_run(s, false);
}
