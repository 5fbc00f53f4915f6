/* Unit tests of src/cni: config parsing and directory loading, result and
 * error parsing, plugin execution against fake plugins (shell scripts). */
#include "config.h"

#include <check.h>
#include "check_run.h"
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cni/cni.h"
#include "util/fs.h"

static char tmpdir[] = "/tmp/cric-cni-test-XXXXXX";

static void put(const char *name, const char *text, mode_t mode)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", tmpdir, name);
    ck_assert_int_eq(cric_write_file_atomic(p, text, strlen(text), mode, NULL), 0);
}

START_TEST(conflist_parse)
{
    struct cric_cni_netconf *c = NULL;
    cric_error *e = NULL;
    const char *t = "{\"cniVersion\":\"1.0.0\",\"name\":\"n1\",\"plugins\":[{\"type\":\"bridge\",\"bridge\":\"b0\"},"
                    "{\"type\":\"portmap\",\"capabilities\":{\"portMappings\":true}}]}";
    ck_assert_int_eq(cric_cni_netconf_parse("x.conflist", t, &c, &e), 0);
    ck_assert_str_eq(c->name, "n1");
    ck_assert_str_eq(c->cni_version, "1.0.0");
    ck_assert_uint_eq(c->n_plugins, 2);
    ck_assert_str_eq(c->plugins[0].type, "bridge");
    ck_assert(!c->plugins[0].cap_port_mappings);
    ck_assert(c->plugins[1].cap_port_mappings);
    ck_assert_ptr_nonnull(strstr(c->plugins[0].json, "\"bridge\":\"b0\""));
    cric_cni_netconf_free(c);
    /* A single-plugin .conf is a list of one. */
    ck_assert_int_eq(cric_cni_netconf_parse("y.conf", "{\"cniVersion\":\"0.4.0\",\"name\":\"n2\",\"type\":\"ptp\"}", &c, &e), 0);
    ck_assert_uint_eq(c->n_plugins, 1);
    ck_assert_str_eq(c->plugins[0].type, "ptp");
    ck_assert(!c->disable_check);
    cric_cni_netconf_free(c);
}
END_TEST

START_TEST(check_allowed)
{
    static const struct {
        const char *dc;
        bool disabled;
    } cases[] = { { "true", true }, { "false", false }, { "\"true\"", true }, { "\"FALSE\"", false }, { "1", false } };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char t[200];
        snprintf(t, sizeof(t), "{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"disableCheck\":%s,\"plugins\":[{\"type\":\"b\"}]}",
                 cases[i].dc);
        struct cric_cni_netconf *c = NULL;
        ck_assert_int_eq(cric_cni_netconf_parse("x.conflist", t, &c, NULL), 0);
        ck_assert_msg(c->disable_check == cases[i].disabled, "%s", cases[i].dc);
        cric_cni_netconf_free(c);
    }
    ck_assert(cric_cni_version_has_check("0.4.0"));
    ck_assert(cric_cni_version_has_check("1.0.0"));
    ck_assert(cric_cni_version_has_check("1.1.0"));
    ck_assert(cric_cni_version_has_check("0.10.0"));
    ck_assert(!cric_cni_version_has_check("0.3.1"));
    ck_assert(!cric_cni_version_has_check("0.2.0"));
    ck_assert(!cric_cni_version_has_check("x"));
    ck_assert(!cric_cni_version_has_check(NULL));
}
END_TEST

START_TEST(conflist_bad)
{
    static const struct { const char *text, *msg; } cases[] = {
        { "{\"name\":", "invalid JSON" },
        { "[]", "not a JSON object" },
        { "{\"cniVersion\":\"1.0.0\",\"plugins\":[{\"type\":\"x\"}]}", "missing \"name\"" },
        { "{\"name\":\"n\",\"plugins\":[{\"type\":\"x\"}]}", "missing \"cniVersion\"" },
        { "{\"name\":\"n\",\"cniVersion\":\"1.0.0\",\"plugins\":[]}", "non-empty array" },
        { "{\"name\":\"n\",\"cniVersion\":\"1.0.0\",\"plugins\":[{\"bridge\":\"x\"}]}", "has no \"type\"" },
        { "{\"name\":\"n\",\"cniVersion\":\"1.0.0\",\"plugins\":[{\"type\":\"../sh\"}]}", "not a plain name" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cric_cni_netconf *c = NULL;
        cric_error *e = NULL;
        ck_assert_int_lt(cric_cni_netconf_parse("bad.conflist", cases[i].text, &c, &e), 0);
        ck_assert_ptr_null(c);
        ck_assert_msg(strstr(e->msg, cases[i].msg) && strstr(e->msg, "bad.conflist"), "case %zu: %s", i, e->msg);
        cric_error_free(e);
    }
}
END_TEST

START_TEST(load_dir_order_and_skip)
{
    struct cric_cni_netconf *c = NULL;
    cric_error *e = NULL;
    ck_assert_int_eq(cric_cni_netconf_load_dir(tmpdir, &c, &e), -ENOENT);
    ck_assert_ptr_nonnull(strstr(e->msg, "no CNI network config"));
    cric_error_clear(&e);
    put("20-b.conflist", "{\"cniVersion\":\"1.0.0\",\"name\":\"second\",\"plugins\":[{\"type\":\"x\"}]}", 0644);
    put("10-a.conflist", "{ this is not json", 0644);
    put("05-ignored.txt", "{}", 0644);
    /* The broken lowest file is skipped, the next one used. */
    ck_assert_int_eq(cric_cni_netconf_load_dir(tmpdir, &c, &e), 0);
    ck_assert_str_eq(c->name, "second");
    cric_cni_netconf_free(c);
    put("15-c.conf", "{\"cniVersion\":\"1.0.0\",\"name\":\"third\",\"type\":\"y\"}", 0644);
    ck_assert_int_eq(cric_cni_netconf_load_dir(tmpdir, &c, &e), 0);
    ck_assert_str_eq(c->name, "third");
    cric_cni_netconf_free(c);
    /* Nothing usable: every file's problem is named. */
    char p[512];
    snprintf(p, sizeof(p), "%s/15-c.conf", tmpdir);
    put("15-c.conf", "{\"name\":\"third\"}", 0644);
    put("20-b.conflist", "[1]", 0644);
    ck_assert_int_eq(cric_cni_netconf_load_dir(tmpdir, &c, &e), -EINVAL);
    ck_assert_ptr_nonnull(strstr(e->msg, "10-a.conflist"));
    ck_assert_ptr_nonnull(strstr(e->msg, "15-c.conf"));
    ck_assert_ptr_nonnull(strstr(e->msg, "20-b.conflist"));
    cric_error_free(e);
}
END_TEST

START_TEST(result_parse)
{
    struct cric_cni_result *r = NULL;
    cric_error *e = NULL;
    const char *t = "{\"cniVersion\":\"1.0.0\",\"interfaces\":[{\"name\":\"cni0\",\"mac\":\"aa\"},"
                    "{\"name\":\"veth1\"},{\"name\":\"eth0\",\"sandbox\":\"/run/ns/x\"}],"
                    "\"ips\":[{\"address\":\"10.1.0.1/24\",\"interface\":0},"
                    "{\"address\":\"10.1.0.5/24\",\"gateway\":\"10.1.0.1\",\"interface\":2},"
                    "{\"address\":\"fd00::5/64\",\"interface\":2}]}";
    ck_assert_int_eq(cric_cni_result_parse(t, &r, &e), 0);
    ck_assert_uint_eq(r->n_ips, 3);
    ck_assert_uint_eq(r->n_ifaces, 3);
    char *ip = cric_cni_result_ip(r, 0);
    ck_assert_str_eq(ip, "10.1.0.5");
    free(ip);
    ip = cric_cni_result_ip(r, 1);
    ck_assert_str_eq(ip, "fd00::5");
    free(ip);
    ck_assert_ptr_null(cric_cni_result_ip(r, 2));
    cric_cni_result_free(r);
    /* 0.2.0 */
    ck_assert_int_eq(cric_cni_result_parse("{\"ip4\":{\"ip\":\"10.2.0.3/16\"}}", &r, &e), 0);
    ip = cric_cni_result_ip(r, 0);
    ck_assert_str_eq(ip, "10.2.0.3");
    free(ip);
    cric_cni_result_free(r);
    static const struct { const char *text, *msg; } bad[] = {
        { "", "empty" },
        { "garbage", "not valid JSON" },
        { "{}", "neither" },
        { "{\"cniVersion\":\"1.0.0\",\"ips\":[{\"address\":\"hello\"}]}", "not an address" },
        { "{\"cniVersion\":\"1.0.0\",\"ips\":[{\"address\":\"10.0.0.1/8\",\"interface\":4}]}", "not an index" },
        { "{\"cniVersion\":\"1.0.0\",\"ips\":{}}", "not an array" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_lt(cric_cni_result_parse(bad[i].text, &r, &e), 0);
        ck_assert_msg(strstr(e->msg, bad[i].msg), "case %zu: %s", i, e->msg);
        cric_error_clear(&e);
    }
    char *m = cric_cni_error_message("{\"cniVersion\":\"1.0.0\",\"code\":7,\"msg\":\"boom\",\"details\":\"why\"}");
    ck_assert_str_eq(m, "boom (code 7): why");
    free(m);
    ck_assert_ptr_null(cric_cni_error_message("not json"));
}
END_TEST

/* Running a plugin list: chaining, env, timeout, errors. */
struct run_res {
    int rc;
    char *msg;
    struct cric_cni_result *res;
    bool called;
};

static void on_done(void *data, int rc, struct cric_cni_result *res, const cric_error *err, uint64_t ns)
{
    struct run_res *rr = data;
    rr->called = true;
    rr->rc = rc;
    rr->msg = err ? strdup(err->msg) : NULL;
    rr->res = res;
    (void)ns;
}

static const char *run_pod_cidr;

static struct run_res run_list(const char *conf_text, enum cric_cni_op op, uint64_t timeout)
{
    struct cric_cni_netconf *c = NULL;
    ck_assert_int_eq(cric_cni_netconf_parse("t.conflist", conf_text, &c, NULL), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    const char *dirs[] = { "/nonexistent", tmpdir, NULL };
    struct cric_cni_port ports[] = { { .host_port = 8080, .container_port = 80, .protocol = "tcp" } };
    struct cric_cni_runtime rt = { .container_id = "abc", .netns = "/proc/self/ns/net", .args = "K8S_POD_NAME=p",
                                   .ports = ports, .n_ports = 1, .plugin_dirs = dirs, .timeout_ms = timeout,
                                   .pod_cidr = run_pod_cidr };
    struct run_res rr = { 0 };
    ck_assert_int_eq(cric_cni_run(&loop, c, op, &rt, NULL, on_done, &rr, NULL), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    ck_assert(rr.called);
    cric_cni_netconf_free(c);
    return rr;
}

START_TEST(run_chain)
{
    /* p1 records its stdin and env, prints a result; p2 checks it got p1's
     * result as prevResult and the port mappings, and adds an IP. */
    char script[2048];
    snprintf(script, sizeof(script),
             "#!/bin/sh\ncat > %s/p1.in; env > %s/p1.env\n"
             "echo '{\"cniVersion\":\"1.0.0\",\"interfaces\":[{\"name\":\"eth0\",\"sandbox\":\"x\"}],"
             "\"ips\":[{\"address\":\"10.9.0.2/24\",\"interface\":0}]}'\n",
             tmpdir, tmpdir);
    put("p1", script, 0755);
    snprintf(script, sizeof(script),
             "#!/bin/sh\nin=$(cat); echo \"$in\" > %s/p2.in\n"
             "case \"$in\" in *'\"prevResult\":{\"cniVersion\":\"1.0.0\"'*'\"portMappings\":[{\"hostPort\":8080,\"containerPort\":80,\"protocol\":\"tcp\"}]'*) ;;\n"
             "*) echo '{\"code\":99,\"msg\":\"bad stdin\"}'; exit 1;; esac\n"
             "echo '{\"cniVersion\":\"1.0.0\",\"ips\":[{\"address\":\"10.9.0.2/24\"},{\"address\":\"10.9.0.3/24\"}]}'\n",
             tmpdir);
    put("p2", script, 0755);
    struct run_res rr = run_list("{\"cniVersion\":\"1.0.0\",\"name\":\"chain\",\"plugins\":[{\"type\":\"p1\"},"
                                 "{\"type\":\"p2\",\"capabilities\":{\"portMappings\":true}}]}",
                                 CRIC_CNI_ADD, 5000);
    ck_assert_msg(rr.rc == 0, "%s", rr.msg);
    ck_assert_uint_eq(rr.res->n_ips, 2);
    cric_cni_result_free(rr.res);
    char p[512], *text = NULL;
    snprintf(p, sizeof(p), "%s/p1.env", tmpdir);
    ck_assert_int_eq(cric_read_file(p, 65536, &text, NULL, NULL), 0);
    ck_assert_ptr_nonnull(strstr(text, "CNI_COMMAND=ADD\n"));
    ck_assert_ptr_nonnull(strstr(text, "CNI_CONTAINERID=abc\n"));
    ck_assert_ptr_nonnull(strstr(text, "CNI_IFNAME=eth0\n"));
    ck_assert_ptr_nonnull(strstr(text, "CNI_ARGS=K8S_POD_NAME=p\n"));
    ck_assert_ptr_nonnull(strstr(text, "CNI_NETNS=/proc/self/ns/net\n"));
    free(text);
    snprintf(p, sizeof(p), "%s/p1.in", tmpdir);
    ck_assert_int_eq(cric_read_file(p, 65536, &text, NULL, NULL), 0);
    /* p1 has no portMappings capability: no runtimeConfig. */
    ck_assert_ptr_null(strstr(text, "runtimeConfig"));
    ck_assert_ptr_nonnull(strstr(text, "\"name\":\"chain\""));
    free(text);
}
END_TEST

START_TEST(run_ip_ranges)
{
    char script[1024];
    snprintf(script, sizeof(script), "#!/bin/sh\ncat > %s/r.in\necho '{\"cniVersion\":\"0.4.0\",\"ips\":[]}'\n", tmpdir);
    put("r", script, 0755);
    run_pod_cidr = "10.244.3.0/24";
    struct run_res rr = run_list("{\"cniVersion\":\"0.4.0\",\"name\":\"n\",\"plugins\":[{\"type\":\"r\","
                                 "\"capabilities\":{\"ipRanges\":true}}]}", CRIC_CNI_ADD, 5000);
    run_pod_cidr = NULL;
    ck_assert_msg(rr.rc == 0, "%s", rr.msg);
    cric_cni_result_free(rr.res);
    char p[512], *text = NULL;
    snprintf(p, sizeof(p), "%s/r.in", tmpdir);
    ck_assert_int_eq(cric_read_file(p, 65536, &text, NULL, NULL), 0);
    ck_assert_msg(strstr(text, "\"runtimeConfig\":{\"ipRanges\":[[{\"subnet\":\"10.244.3.0/24\"}]]}"), "%s", text);
    ck_assert_ptr_null(strstr(text, "portMappings"));
    free(text);
}
END_TEST

START_TEST(run_failures)
{
    put("err", "#!/bin/sh\ncat >/dev/null; echo '{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"no\",\"details\":\"d\"}'; exit 1\n", 0755);
    put("junk", "#!/bin/sh\ncat >/dev/null; echo 'junk'\n", 0755);
    put("slow", "#!/bin/sh\nsleep 30\n", 0755);
    put("stderr", "#!/bin/sh\necho 'oops on stderr' >&2; exit 3\n", 0755);
    struct run_res rr = run_list("{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"plugins\":[{\"type\":\"err\"}]}", CRIC_CNI_ADD, 5000);
    ck_assert_int_lt(rr.rc, 0);
    ck_assert_msg(strstr(rr.msg, "'err' ADD on network 'n' failed (exit 1): no (code 11): d"), "%s", rr.msg);
    free(rr.msg);
    rr = run_list("{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"plugins\":[{\"type\":\"junk\"}]}", CRIC_CNI_ADD, 5000);
    ck_assert_msg(rr.rc < 0 && strstr(rr.msg, "unusable result") && strstr(rr.msg, "not valid JSON"), "%s", rr.msg);
    free(rr.msg);
    rr = run_list("{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"plugins\":[{\"type\":\"slow\"}]}", CRIC_CNI_ADD, 300);
    ck_assert_msg(rr.rc == -ETIMEDOUT && strstr(rr.msg, "timed out after 300 ms"), "%s", rr.msg);
    free(rr.msg);
    rr = run_list("{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"plugins\":[{\"type\":\"stderr\"}]}", CRIC_CNI_ADD, 5000);
    ck_assert_msg(rr.rc < 0 && strstr(rr.msg, "exit 3): oops on stderr"), "%s", rr.msg);
    free(rr.msg);
    rr = run_list("{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"plugins\":[{\"type\":\"missing\"}]}", CRIC_CNI_ADD, 5000);
    ck_assert_msg(rr.rc == -ENOENT && strstr(rr.msg, "'missing' not found in /nonexistent"), "%s", rr.msg);
    free(rr.msg);
    /* DEL goes on past a failing plugin and reports the first error. */
    rr = run_list("{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"plugins\":[{\"type\":\"stderr\"},{\"type\":\"err\"}]}",
                  CRIC_CNI_DEL, 5000);
    ck_assert_msg(rr.rc < 0 && strstr(rr.msg, "'err' DEL"), "%s", rr.msg);
    free(rr.msg);
}
END_TEST

START_TEST(ready)
{
    const char *dirs[] = { tmpdir, NULL };
    char *why = NULL;
    ck_assert(!cric_cni_ready("/nonexistent-cni", dirs, &why));
    ck_assert_ptr_nonnull(strstr(why, "/nonexistent-cni"));
    free(why);
    put("10-n.conflist", "{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"plugins\":[{\"type\":\"nope\"}]}", 0644);
    ck_assert(!cric_cni_ready(tmpdir, dirs, &why));
    ck_assert_ptr_nonnull(strstr(why, "'nope' not found"));
    free(why);
    put("nope", "#!/bin/sh\n", 0755);
    why = NULL;
    ck_assert(cric_cni_ready(tmpdir, dirs, &why));
    ck_assert_ptr_null(why);
}
END_TEST

static void setup(void)
{
    strcpy(tmpdir, "/tmp/cric-cni-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
    cric_rm_rf(tmpdir, NULL);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    Suite *s = suite_create("cni");
    TCase *tc = tcase_create("cni");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, conflist_parse);
    tcase_add_test(tc, conflist_bad);
    tcase_add_test(tc, check_allowed);
    tcase_add_test(tc, load_dir_order_and_skip);
    tcase_add_test(tc, result_parse);
    tcase_add_test(tc, run_chain);
    tcase_add_test(tc, run_ip_ranges);
    tcase_add_test(tc, run_failures);
    tcase_add_test(tc, ready);
    suite_add_tcase(s, tc);
    return cric_check_run(s, false);
}
