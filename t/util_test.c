#include "config.h"
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/cleanup.h"
#include "util/err.h"
#include "util/fs.h"

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

int main(void)
{
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, error_contract);
    tcase_add_test(tc, atomic_write_and_read);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
