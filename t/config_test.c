/* cricd.conf parsing: defaults, the shipped file, bad files, flags. */
#include <config.h>
#include <check.h>
#include "check_run.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "util/cleanup.h"

static char *defaults_json(void)
{
    struct cric_config cfg;
    cric_error *err = NULL;
    ck_assert_int_eq(cric_config_defaults(&cfg, &err), 0);
    char *json = NULL;
    ck_assert_int_eq(cric_config_to_json(&cfg, &json, &err), 0);
    cric_config_free(&cfg);
    return json;
}

/* Loads text over the defaults; returns the error message (caller frees) or NULL. */
static char *load_text(const char *text, struct cric_config *out)
{
    struct cric_config cfg;
    cric_error *err = NULL;
    ck_assert_int_eq(cric_config_defaults(&cfg, &err), 0);
    int r = cric_config_load_string(&cfg, "test.conf", text, &err);
    char *msg = NULL;
    if (r < 0) {
        ck_assert_ptr_nonnull(err);
        msg = strdup(err->msg);
        cric_error_free(err);
    } else {
        ck_assert_ptr_null(err);
    }
    if (out)
        *out = cfg;
    else
        cric_config_free(&cfg);
    return msg;
}

START_TEST(shipped_file_equals_defaults)
{
    _cleanup_free_ char *path = NULL;
    ck_assert_int_ge(asprintf(&path, "%s/conf/cricd.conf", getenv("CRIC_SRCDIR") ? getenv("CRIC_SRCDIR") : "."), 0);
    struct cric_config cfg = { 0 };
    cric_error *err = NULL;
    /* Start from an empty config: the file alone must give every default. */
    int r = cric_config_load_file(&cfg, path, &err);
    ck_assert_msg(r == 0, "%s", err ? err->msg : "");
    _cleanup_free_ char *from_file = NULL;
    ck_assert_int_eq(cric_config_to_json(&cfg, &from_file, &err), 0);
    _cleanup_free_ char *builtin = defaults_json();
    ck_assert_str_eq(from_file, builtin);
    cric_config_free(&cfg);
}
END_TEST

START_TEST(default_values)
{
    struct cric_config cfg;
    ck_assert_int_eq(cric_config_defaults(&cfg, NULL), 0);
    ck_assert_str_eq(cfg.listen, "/run/cricd/cricd.sock");
    ck_assert_str_eq(cfg.root, "/var/lib/cricd");
    ck_assert_str_eq(cfg.state, "/run/cricd");
    ck_assert_str_eq(cfg.log_level, "info");
    ck_assert_str_eq(cfg.cgroup_driver, "cgroupfs");
    ck_assert_uint_eq(cfg.grpc_max_recv_msg_size, 16777216);
    ck_assert_uint_eq(cfg.grpc_max_concurrent_streams, 1000);
    ck_assert_str_eq(cfg.network_plugin_dirs[0], "/opt/cni/bin");
    ck_assert_str_eq(cfg.network_plugin_dirs[1], "/usr/lib/cni");
    ck_assert_ptr_null(cfg.network_plugin_dirs[2]);
    ck_assert_ptr_null(cfg.images_pinned[0]);
    ck_assert_uint_eq(cfg.images_registries_len, 0);
    const struct cric_runtime_handler *h = cric_config_handler(&cfg, "");
    ck_assert_ptr_nonnull(h);
    ck_assert_str_eq(h->name, "runc");
    ck_assert_str_eq(h->path, "/usr/sbin/runc");
    h = cric_config_handler(&cfg, "crun");
    ck_assert_ptr_nonnull(h);
    ck_assert_str_eq(h->root, "/run/cricd/crun");
    ck_assert_ptr_null(cric_config_handler(&cfg, "kata"));
    cric_config_free(&cfg);
}
END_TEST

START_TEST(comments_and_values)
{
    struct cric_config cfg;
    char *msg = load_text("// a comment\n"
                          "{ /* block */ \"log_level\": \"debug\",\n"
                          "  \"images\": { \"registries\": [ {\"host\": \"127.0.0.1:5000\", \"insecure\": true,\n"
                          "       \"mirrors\": [\"http://m\"]} ], \"pinned\": [\"busybox:latest\"] },\n"
                          "  \"runtime\": { \"default\": \"crun\", \"handlers\": {\"crun\": {\"path\": \"/bin/crun\", \"root\": \"/r\"}} },\n"
                          "  \"grpc\": { \"max_recv_msg_size\": 4096 } }\n",
                          &cfg);
    ck_assert_msg(msg == NULL, "%s", msg);
    ck_assert_str_eq(cfg.log_level, "debug");
    ck_assert_uint_eq(cfg.grpc_max_recv_msg_size, 4096);
    ck_assert_uint_eq(cfg.grpc_max_send_msg_size, 16777216); /* untouched keys keep their value */
    ck_assert_uint_eq(cfg.images_registries_len, 1);
    ck_assert_str_eq(cfg.images_registries[0].host, "127.0.0.1:5000");
    ck_assert(cfg.images_registries[0].insecure);
    ck_assert_str_eq(cfg.images_registries[0].mirrors[0], "http://m");
    ck_assert_str_eq(cfg.images_pinned[0], "busybox:latest");
    ck_assert_uint_eq(cfg.runtime_handlers_len, 1); /* a map given in the file replaces the default */
    ck_assert_str_eq(cric_config_handler(&cfg, "")->path, "/bin/crun");
    cric_config_free(&cfg);
}
END_TEST

static void expect_error(const char *text, const char *want)
{
    _cleanup_free_ char *msg = load_text(text, NULL);
    ck_assert_msg(msg != NULL, "no error for: %s", text);
    ck_assert_msg(strstr(msg, want) != NULL, "error '%s' lacks '%s'", msg, want);
}

START_TEST(bad_files)
{
    expect_error("{\n  \"log_level\": \"info\",\n  \"bogus\": 1\n}\n", "test.conf:3: unknown key 'bogus'");
    expect_error("{\n\n  \"grpc\": {\n    \"max_recv_msg_siz\": 1 } }", "test.conf:4: unknown key 'grpc.max_recv_msg_siz'");
    expect_error("{\n  \"grpc\": {\n    \"max_recv_msg_size\": \"big\" } }",
                 "test.conf:3: 'grpc.max_recv_msg_size': expected an unsigned integer, got string");
    expect_error("{ \"grpc\": { \"max_recv_msg_size\": -5 } }", "'grpc.max_recv_msg_size': expected an unsigned integer, got -5");
    expect_error("{ \"listen\": 5 }", "test.conf:1: 'listen': expected a string, got number");
    expect_error("{ \"grpc\": 5 }", "'grpc': expected an object, got number");
    expect_error("{\n\"network\": {\"plugin_dirs\": [\"/a\",\n 3]}}", "test.conf:3: 'network.plugin_dirs[1]': expected a string");
    expect_error("{\n \"log_level\": \"loud\" }", "test.conf:2: 'log_level': invalid log level 'loud'");
    expect_error("{ \"cgroup_driver\": \"x\" }", "invalid cgroup driver 'x'");
    expect_error("{ \"root\": \"relative\" }", "'root': 'relative' is not an absolute path");
    expect_error("{ \"runtime\": {\"default\": \"kata\"} }", "'runtime.default': 'kata' is not in runtime.handlers");
    expect_error("{ \"runtime\": {\"handlers\": {\"runc\": {\"path\": \"/x\"}}} }", "needs both");
    expect_error("{ \"images\": {\"registries\": [{\"insecure\": true}]} }", "'images.registries[0].host': missing");
    expect_error("{ \"images\": {\"registries\": [{\"host\": \"h\", \"tls\": 1}]} }", "unknown key 'images.registries[0].tls'");
    expect_error("{\n \"listen\": \"/x\",\n", "line 3: invalid JSON");
    expect_error("{ \"listen\": \"/x\" ", "invalid JSON");
    expect_error("[1, 2]", "expected an object");
    expect_error("", "test.conf");
}
END_TEST

START_TEST(bad_file_keeps_old_values)
{
    struct cric_config cfg;
    cric_error *err = NULL;
    ck_assert_int_eq(cric_config_defaults(&cfg, &err), 0);
    ck_assert_int_lt(cric_config_load_string(&cfg, "x", "{\"log_level\": \"debug\", \"nope\": 1}", &err), 0);
    cric_error_free(err);
    ck_assert_str_eq(cfg.log_level, "info");
    cric_config_free(&cfg);
}
END_TEST

START_TEST(missing_file)
{
    struct cric_config cfg;
    cric_error *err = NULL;
    ck_assert_int_eq(cric_config_defaults(&cfg, &err), 0);
    ck_assert_int_eq(cric_config_load_file(&cfg, "/nonexistent/cricd.conf", &err), -ENOENT);
    ck_assert_ptr_nonnull(strstr(err->msg, "/nonexistent/cricd.conf"));
    cric_error_free(err);
    cric_config_free(&cfg);
}
END_TEST

START_TEST(flags_override)
{
    struct cric_config cfg;
    cric_error *err = NULL;
    ck_assert_int_eq(cric_config_defaults(&cfg, &err), 0);
    ck_assert_int_eq(cric_config_load_string(&cfg, "f", "{\"log_level\": \"warn\", \"root\": \"/a\"}", &err), 0);
    ck_assert_int_eq(cric_config_set(&cfg, "log_level", "debug", &err), 0);
    ck_assert_int_eq(cric_config_set(&cfg, "grpc.max_recv_msg_size", "2048", &err), 0);
    ck_assert_int_eq(cric_config_set(&cfg, "network.plugin_dirs", "/x,/y", &err), 0);
    ck_assert_str_eq(cfg.log_level, "debug");
    ck_assert_str_eq(cfg.root, "/a");
    ck_assert_uint_eq(cfg.grpc_max_recv_msg_size, 2048);
    ck_assert_str_eq(cfg.network_plugin_dirs[1], "/y");
    ck_assert_int_eq(cric_config_check(&cfg, &err), 0);

    ck_assert_int_lt(cric_config_set(&cfg, "log_level", "chatty", &err), 0);
    ck_assert_ptr_nonnull(strstr(err->msg, "log_level"));
    cric_error_clear(&err);
    ck_assert_str_eq(cfg.log_level, "debug");
    ck_assert_int_lt(cric_config_set(&cfg, "nope", "1", &err), 0);
    ck_assert_str_eq(err->msg, "unknown key 'nope'");
    cric_error_clear(&err);
    ck_assert_int_lt(cric_config_set(&cfg, "grpc.max_send_msg_size", "12x", &err), 0);
    cric_error_clear(&err);
    ck_assert_int_lt(cric_config_set(&cfg, "runtime.handlers", "x", &err), 0);
    cric_error_clear(&err);
    cric_config_free(&cfg);
}
END_TEST

START_TEST(diff_and_copy)
{
    struct cric_config a, b;
    cric_error *err = NULL;
    ck_assert_int_eq(cric_config_defaults(&a, &err), 0);
    ck_assert_int_eq(cric_config_copy(&b, &a, &err), 0);
    _cleanup_free_ char *none = NULL;
    ck_assert_int_eq(cric_config_diff(&a, &b, &none, &err), 0);
    ck_assert_ptr_null(none);
    ck_assert_int_eq(cric_config_set(&b, "log_level", "debug", &err), 0);
    ck_assert_int_eq(cric_config_load_string(&b, "x", "{\"runtime\": {\"handlers\": {\"runc\": {\"path\": \"/r\", \"root\": \"/s\"}}}}", &err), 0);
    _cleanup_free_ char *diff = NULL;
    ck_assert_int_eq(cric_config_diff(&a, &b, &diff, &err), 0);
    ck_assert_str_eq(diff, "log_level, runtime.handlers");
    cric_config_free(&a);
    cric_config_free(&b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_set_timeout(tc, 120); /* loaded CI machines and ASan, not a timing assert */
    tcase_add_test(tc, shipped_file_equals_defaults);
    tcase_add_test(tc, default_values);
    tcase_add_test(tc, comments_and_values);
    tcase_add_test(tc, bad_files);
    tcase_add_test(tc, bad_file_keeps_old_values);
    tcase_add_test(tc, missing_file);
    tcase_add_test(tc, flags_override);
    tcase_add_test(tc, diff_and_copy);
    suite_add_tcase(s, tc);
    return cric_check_run(s, false);
}
