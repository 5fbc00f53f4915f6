/* Tests of the sandbox library on its own loop (root: it mounts and
 * unshares): lifecycle with a fake CNI plugin, container hooks and their
 * order, duplicate names, id prefixes, reload from disk, rollback of a
 * failed run.  Every loop must close with no handle left. */
#include "config.h"

#include <check.h>
#include "check_run.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/vfs.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sandbox/sandbox.h"
#include "util/fs.h"

static char tmp[] = "/tmp/cric-sb-test-XXXXXX";
static char root[300], state[300], confdir[300], plugdir[300], cnilog[300], pinns[512];
static uv_loop_t loop;
static struct cric_sandbox_service *svc;

/* A fake CNI plugin: logs "<COMMAND> <CONTAINERID>" and answers ADD with an
 * IP; fails ADD when the pod's name contains "failadd". */
static void setup(void)
{
    strcpy(tmp, "/tmp/cric-sb-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmp));
    snprintf(root, sizeof(root), "%s/root", tmp);
    snprintf(state, sizeof(state), "%s/state", tmp);
    snprintf(confdir, sizeof(confdir), "%s/net.d", tmp);
    snprintf(plugdir, sizeof(plugdir), "%s/bin", tmp);
    snprintf(cnilog, sizeof(cnilog), "%s/cni.log", tmp);
    ck_assert_int_eq(cric_mkdir_p(confdir, 0755, NULL), 0);
    ck_assert_int_eq(cric_mkdir_p(plugdir, 0755, NULL), 0);
    char p[400], script[1600];
    snprintf(p, sizeof(p), "%s/10-fake.conflist", confdir);
    const char *conf = "{\"cniVersion\":\"1.0.0\",\"name\":\"fake\",\"plugins\":[{\"type\":\"fake\"}]}";
    ck_assert_int_eq(cric_write_file_atomic(p, conf, strlen(conf), 0644, NULL), 0);
    snprintf(script, sizeof(script),
             "#!/bin/sh\nin=$(cat)\necho \"$CNI_COMMAND $CNI_CONTAINERID\" >> %s\n"
             "case \"$CNI_ARGS\" in *failadd*) [ \"$CNI_COMMAND\" = ADD ] && { echo '{\"code\":7,\"msg\":\"no\"}'; exit 1; };; esac\n"
             "[ \"$CNI_COMMAND\" = DEL ] && [ -e %s.faildel ] && { echo '{\"code\":11,\"msg\":\"del no\"}'; exit 1; }\n"
             "[ \"$CNI_COMMAND\" = CHECK ] && [ -e %s.failcheck ] && { echo '{\"code\":12,\"msg\":\"check no\"}'; exit 1; }\n"
             "[ \"$CNI_COMMAND\" = ADD ] && echo '{\"cniVersion\":\"1.0.0\",\"interfaces\":[{\"name\":\"eth0\",\"sandbox\":\"'$CNI_NETNS'\"}],"
             "\"ips\":[{\"address\":\"10.99.0.7/24\",\"interface\":0}]}'\nexit 0\n",
             cnilog, cnilog, cnilog);
    snprintf(p, sizeof(p), "%s/fake", plugdir);
    ck_assert_int_eq(cric_write_file_atomic(p, script, strlen(script), 0755, NULL), 0);
    const char *b = getenv("CRIC_BUILDDIR");
    snprintf(pinns, sizeof(pinns), "%s/cric-pinns", b ? b : ".");
    uv_loop_init(&loop);
}

static void open_service(void)
{
    const char *dirs[] = { plugdir, NULL };
    struct cric_sandbox_opts o = {
        .root = root, .state = state, .cni_plugin_dirs = dirs, .cni_config_dir = confdir,
        .cgroup_parent = "/kubepods", .cgroup_driver = "cgroupfs", .helper_pinns = pinns,
    };
    cric_error *e = NULL;
    ck_assert_msg(cric_sandbox_service_new(&loop, &o, &svc, &e) == 0, "%s", e ? e->msg : "");
}

static void close_service(void)
{
    cric_sandbox_service_close(svc, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    svc = NULL;
}

static void teardown(void)
{
    if (svc)
        close_service();
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    /* Whatever a failed test left mounted. */
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "grep -o ' %s[^ ]*' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l", tmp);
    if (system(cmd) != 0) {
        /* nothing mounted */
    }
    cric_rm_rf(tmp, NULL);
}

struct done {
    bool called;
    int rc;
    char msg[512];
    char id[65];
};

static void on_done(void *data, int rc, const cric_error *err, const char *id)
{
    struct done *d = data;
    d->called = true;
    d->rc = rc;
    snprintf(d->msg, sizeof(d->msg), "%s", err ? err->msg : "");
    snprintf(d->id, sizeof(d->id), "%s", id ? id : "");
}

static Runtime__V1__PodSandboxConfig *pod(const char *name, bool host_net)
{
    static Runtime__V1__PodSandboxConfig c;
    static Runtime__V1__PodSandboxMetadata md;
    static Runtime__V1__LinuxPodSandboxConfig lx;
    static Runtime__V1__LinuxSandboxSecurityContext sc;
    static Runtime__V1__NamespaceOption no;
    runtime__v1__pod_sandbox_config__init(&c);
    runtime__v1__pod_sandbox_metadata__init(&md);
    runtime__v1__linux_pod_sandbox_config__init(&lx);
    runtime__v1__linux_sandbox_security_context__init(&sc);
    runtime__v1__namespace_option__init(&no);
    md.name = (char *)name;
    md.uid = "u1";
    md.namespace_ = "ns";
    c.metadata = &md;
    no.network = host_net ? RUNTIME__V1__NAMESPACE_MODE__NODE : RUNTIME__V1__NAMESPACE_MODE__POD;
    no.pid = RUNTIME__V1__NAMESPACE_MODE__CONTAINER;
    sc.namespace_options = &no;
    lx.security_context = &sc;
    c.linux = &lx;
    return &c;
}

static struct done run(const char *name, bool host_net)
{
    struct done d = { 0 };
    cric_error *e = NULL;
    int r = cric_sandbox_run(svc, pod(name, host_net), "", on_done, &d, &e);
    if (r < 0) {
        d.called = true;
        d.rc = r;
        snprintf(d.msg, sizeof(d.msg), "%s", e->msg);
        cric_error_free(e);
        return d;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert(d.called);
    return d;
}

static struct done stop_or_remove(const char *id, bool remove)
{
    struct done d = { 0 };
    (remove ? cric_sandbox_remove : cric_sandbox_stop)(svc, id, on_done, &d);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert(d.called);
    return d;
}

static char *cni_log(void)
{
    char *t = NULL;
    if (cric_read_file(cnilog, 65536, &t, NULL, NULL) < 0)
        t = strdup("");
    return t;
}

/* Container hooks: record calls, optionally fail stop. */
static char hook_log[1024];
static int hook_fail;

static void hook_stop(void *ctx, const char *id, int64_t timeout, cric_sandbox_hook_done_fn done, void *cb)
{
    (void)ctx;
    (void)timeout;
    strcat(hook_log, "stop_all;");
    cric_error *e = NULL;
    if (hook_fail) {
        cric_error_new(&e, -EBUSY, "container of %s would not stop", id);
        done(cb, -EBUSY, e);
        return;
    }
    done(cb, 0, NULL);
}

static void hook_remove(void *ctx, const char *id, cric_sandbox_hook_done_fn done, void *cb)
{
    (void)ctx;
    (void)id;
    strcat(hook_log, "remove_all;");
    done(cb, 0, NULL);
}

START_TEST(lifecycle)
{
    open_service();
    struct cric_sandbox_container_hooks h = { .stop_all = hook_stop, .remove_all = hook_remove };
    cric_sandbox_set_container_hooks(svc, &h);
    struct done d = run("p1", false);
    ck_assert_msg(d.rc == 0, "%s", d.msg);
    ck_assert_uint_eq(strlen(d.id), 64);
    const struct cric_sandbox *sb = NULL;
    cric_error *e = NULL;
    ck_assert_int_eq(cric_sandbox_lookup(svc, d.id, &sb, &e), 0);
    ck_assert_int_eq(sb->state, CRIC_SANDBOX_READY);
    ck_assert_str_eq(sb->ips[0], "10.99.0.7");
    ck_assert_ptr_nonnull(sb->netns_path);
    ck_assert_ptr_nonnull(sb->shm_path);
    ck_assert_str_eq(sb->hostname, "p1");
    ck_assert_str_eq(sb->cgroup_parent, "/kubepods");
    ck_assert_str_eq(sb->config->metadata->name, "p1");
    char id[65];
    strcpy(id, d.id);
    /* Prefix lookup; duplicate (name, uid, namespace, attempt) names the pod. */
    char prefix[9];
    snprintf(prefix, sizeof(prefix), "%s", id);
    ck_assert_int_eq(cric_sandbox_lookup(svc, prefix, &sb, NULL), 0);
    ck_assert_str_eq(sb->id, id);
    d = run("p1", false);
    ck_assert_int_eq(d.rc, -EEXIST);
    ck_assert_ptr_nonnull(strstr(d.msg, id));
    /* A failing stop hook aborts the stop; the pod stays READY. */
    hook_fail = 1;
    d = stop_or_remove(id, false);
    ck_assert_int_eq(d.rc, -EBUSY);
    ck_assert_ptr_nonnull(strstr(d.msg, "would not stop"));
    ck_assert_int_eq(cric_sandbox_lookup(svc, id, &sb, NULL), 0);
    ck_assert_int_eq(sb->state, CRIC_SANDBOX_READY);
    hook_fail = 0;
    hook_log[0] = '\0';
    ck_assert_int_eq(stop_or_remove(id, false).rc, 0);
    ck_assert_str_eq(hook_log, "stop_all;");
    ck_assert_int_eq(sb->state, CRIC_SANDBOX_NOTREADY);
    ck_assert_int_eq(stop_or_remove(id, false).rc, 0); /* idempotent */
    /* Reload from disk: same pod, same state. */
    close_service();
    open_service();
    cric_sandbox_set_container_hooks(svc, &h);
    ck_assert_int_eq(cric_sandbox_lookup(svc, id, &sb, NULL), 0);
    ck_assert_int_eq(sb->state, CRIC_SANDBOX_NOTREADY);
    ck_assert_str_eq(sb->ips[0], "10.99.0.7");
    hook_log[0] = '\0';
    ck_assert_int_eq(stop_or_remove(id, true).rc, 0);
    ck_assert_str_eq(hook_log, "stop_all;remove_all;");
    ck_assert_int_eq(cric_sandbox_lookup(svc, id, &sb, NULL), -ENOENT);
    ck_assert_int_eq(stop_or_remove(id, true).rc, 0);
    ck_assert_int_eq(stop_or_remove(id, false).rc, 0);
    /* ADD once, DEL on stop; none on remove: stop's DEL succeeded. */
    char *log = cni_log(), expect[400];
    snprintf(expect, sizeof(expect), "ADD %s\nDEL %s\n", id, id);
    ck_assert_str_eq(log, expect);
    free(log);
    char p[400];
    snprintf(p, sizeof(p), "%s/sandboxes/%s", root, id);
    ck_assert_int_eq(access(p, F_OK), -1);
    snprintf(p, sizeof(p), "%s/ns/%s", state, id);
    ck_assert_int_eq(access(p, F_OK), -1);
}
END_TEST

/* Writes a network config in place (same inode) with mtime ago seconds in
 * the past, and gives the directory such an mtime too. */
static void put_conf(const char *file, const char *net, int ago)
{
    char p[400], text[200];
    snprintf(p, sizeof(p), "%s/%s", confdir, file);
    snprintf(text, sizeof(text), "{\"cniVersion\":\"1.0.0\",\"name\":\"%s\",\"plugins\":[{\"type\":\"fake\"}]}", net);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    struct timespec ts[2] = { { .tv_sec = time(NULL) - ago }, { .tv_sec = time(NULL) - ago } };
    ck_assert_int_eq(utimensat(AT_FDCWD, p, ts, 0), 0);
    ck_assert_int_eq(utimensat(AT_FDCWD, confdir, ts, 0), 0);
}

/* The network config a pod was created with, from its record. */
static bool pod_uses(const char *id, const char *net)
{
    char p[400], want[100];
    snprintf(p, sizeof(p), "%s/sandboxes/%s/sandbox.json", root, id);
    snprintf(want, sizeof(want), "\\\"name\\\":\\\"%s\\\"", net);
    char *text = NULL;
    ck_assert_int_eq(cric_read_file(p, 1 << 20, &text, NULL, NULL), 0);
    bool ok = strstr(text, want) != NULL;
    free(text);
    return ok;
}

/* The chosen network config is cached; a change of the file (in place) or
 * of the directory (a new lower-named file) is still picked up. */
START_TEST(netconf_cache)
{
    put_conf("10-fake.conflist", "net-a", 3600);
    open_service();
    struct done d = run("c1", false);
    ck_assert_msg(d.rc == 0, "%s", d.msg);
    ck_assert(pod_uses(d.id, "net-a"));
    d = run("c2", false); /* from the cache */
    ck_assert_msg(d.rc == 0, "%s", d.msg);
    ck_assert(pod_uses(d.id, "net-a"));
    put_conf("10-fake.conflist", "net-b", 1800);
    d = run("c3", false);
    ck_assert_msg(d.rc == 0, "%s", d.msg);
    ck_assert(pod_uses(d.id, "net-b"));
    put_conf("05-first.conflist", "net-c", 900);
    d = run("c4", false);
    ck_assert_msg(d.rc == 0, "%s", d.msg);
    ck_assert(pod_uses(d.id, "net-c"));
}
END_TEST

START_TEST(failed_add_rolls_back)
{
    open_service();
    struct done d = run("failadd", false);
    ck_assert_int_lt(d.rc, 0);
    ck_assert_msg(strstr(d.msg, "'fake' ADD on network 'fake' failed (exit 1): no (code 7)"), "%s", d.msg);
    char *log = cni_log(), expect[400];
    snprintf(expect, sizeof(expect), "ADD %s\nDEL %s\n", d.id, d.id);
    ck_assert_str_eq(log, expect);
    free(log);
    const struct cric_sandbox *sb = NULL;
    ck_assert_int_eq(cric_sandbox_lookup(svc, d.id, &sb, NULL), -ENOENT);
    char p[400];
    snprintf(p, sizeof(p), "%s/ns/%s", state, d.id);
    ck_assert_int_eq(access(p, F_OK), -1);
    snprintf(p, sizeof(p), "%s/sandboxes/%s", root, d.id);
    ck_assert_int_eq(access(p, F_OK), -1);
}
END_TEST

/* Remove runs DEL only when no DEL succeeded since ADD (a failed Stop, or
 * no Stop). */
START_TEST(remove_dels_only_when_needed)
{
    open_service();
    struct done d = run("p1", false);
    ck_assert_msg(d.rc == 0, "%s", d.msg);
    char id1[65], flag[420];
    strcpy(id1, d.id);
    snprintf(flag, sizeof(flag), "%s.faildel", cnilog);
    ck_assert_int_eq(cric_write_file_atomic(flag, "", 0, 0644, NULL), 0);
    struct done s = stop_or_remove(id1, false);
    ck_assert_int_lt(s.rc, 0);
    ck_assert_msg(strstr(s.msg, "del no (code 11)"), "%s", s.msg);
    unlink(flag);
    ck_assert_int_eq(stop_or_remove(id1, true).rc, 0);
    d = run("p2", false); /* removed without a stop */
    ck_assert_msg(d.rc == 0, "%s", d.msg);
    ck_assert_int_eq(stop_or_remove(d.id, true).rc, 0);
    char *log = cni_log(), expect[800];
    snprintf(expect, sizeof(expect), "ADD %s\nDEL %s\nDEL %s\nADD %s\nDEL %s\n", id1, id1, id1, d.id, d.id);
    ck_assert_str_eq(log, expect);
    free(log);
}
END_TEST

/* A crash right after a remove renamed the pod directory (the record is
 * gone), before the background teardown: the next start finishes it. */
START_TEST(crash_after_remove_finishes_at_start)
{
    open_service();
    struct done d = run("p3", false);
    ck_assert_msg(d.rc == 0, "%s", d.msg);
    char dir[400], trash[420], ns[400], shm[440];
    snprintf(dir, sizeof(dir), "%s/sandboxes/%s", root, d.id);
    snprintf(trash, sizeof(trash), "%s/sandboxes/.trash-%s", root, d.id);
    snprintf(ns, sizeof(ns), "%s/ns/%s/net", state, d.id);
    snprintf(shm, sizeof(shm), "%s/shm", trash);
    close_service();
    ck_assert_int_eq(rename(dir, trash), 0);
    struct statfs st;
    ck_assert_int_eq(statfs(ns, &st), 0);
    ck_assert(st.f_type == NSFS_MAGIC);
    ck_assert_int_eq(statfs(shm, &st), 0);
    ck_assert(st.f_type == TMPFS_MAGIC);
    open_service();
    const struct cric_sandbox *sb = NULL;
    ck_assert_int_eq(cric_sandbox_lookup(svc, d.id, &sb, NULL), -ENOENT);
    ck_assert_int_eq(access(trash, F_OK), -1);
    snprintf(ns, sizeof(ns), "%s/ns/%s", state, d.id);
    ck_assert_int_eq(access(ns, F_OK), -1);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "grep -q '%s' /proc/self/mountinfo", d.id);
    ck_assert_int_ne(system(cmd), 0);
}
END_TEST

/* After a restart, a ready pod's network gets a CNI CHECK with the cached
 * ADD result; its outcome is in the verbose info. */
START_TEST(check_after_restart)
{
    open_service();
    struct done d = run("chk", false);
    ck_assert_msg(d.rc == 0, "%s", d.msg);
    char *info = NULL;
    const struct cric_sandbox *sb = NULL;
    ck_assert_int_eq(cric_sandbox_lookup(svc, d.id, &sb, NULL), 0);
    ck_assert_int_eq(cric_sandbox_info_json(sb, &info, NULL), 0);
    ck_assert_ptr_null(strstr(info, "networkCheck"));
    free(info);
    for (int fail = 0; fail < 2; fail++) {
        char flag[420];
        snprintf(flag, sizeof(flag), "%s.failcheck", cnilog);
        if (fail)
            ck_assert_int_eq(cric_write_file_atomic(flag, "", 0, 0644, NULL), 0);
        close_service();
        open_service();
        uv_run(&loop, UV_RUN_DEFAULT); /* the checks start on a timer */
        unlink(flag);
        ck_assert_int_eq(cric_sandbox_lookup(svc, d.id, &sb, NULL), 0);
        ck_assert_int_eq(cric_sandbox_info_json(sb, &info, NULL), 0);
        if (fail)
            ck_assert_msg(strstr(info, "\"networkCheck\":{\"status\":\"failed\",\"message\":\"CNI plugin 'fake' CHECK on "
                                       "network 'fake' failed (exit 1): check no (code 12)\"}"), "%s", info);
        else
            ck_assert_msg(strstr(info, "\"networkCheck\":{\"status\":\"passed\"}"), "%s", info);
        free(info);
    }
    char *log = cni_log(), expect[400];
    snprintf(expect, sizeof(expect), "ADD %s\nCHECK %s\nCHECK %s\n", d.id, d.id, d.id);
    ck_assert_str_eq(log, expect);
    free(log);
    ck_assert_int_eq(stop_or_remove(d.id, true).rc, 0);
}
END_TEST

/* READY is a ready.json next to the CREATING record: without a usable one
 * (a crash just before it, or garbage) the pod is rolled back at start. */
START_TEST(ready_file)
{
    open_service();
    struct done d = run("rdy", false);
    ck_assert_msg(d.rc == 0, "%s", d.msg);
    close_service();
    open_service();
    const struct cric_sandbox *sb = NULL;
    ck_assert_int_eq(cric_sandbox_lookup(svc, d.id, &sb, NULL), 0);
    ck_assert_int_eq(sb->state, CRIC_SANDBOX_READY);
    ck_assert_str_eq(sb->ips[0], "10.99.0.7");
    close_service();
    char p[400];
    snprintf(p, sizeof(p), "%s/sandboxes/%s/ready.json", root, d.id);
    ck_assert_int_eq(cric_write_file_atomic(p, "{\"id\":", 6, 0600, NULL), 0);
    open_service();
    uv_run(&loop, UV_RUN_DEFAULT); /* the rollback */
    ck_assert_int_eq(cric_sandbox_lookup(svc, d.id, &sb, NULL), -ENOENT);
    char *log = cni_log(), expect[400];
    snprintf(expect, sizeof(expect), "ADD %s\nDEL %s\n", d.id, d.id);
    ck_assert_str_eq(log, expect);
    free(log);
    snprintf(p, sizeof(p), "%s/ns/%s", state, d.id);
    ck_assert_int_eq(access(p, F_OK), -1);
}
END_TEST

START_TEST(host_network_and_bad_input)
{
    open_service();
    struct done d = run("h1", true);
    ck_assert_msg(d.rc == 0, "%s", d.msg);
    const struct cric_sandbox *sb = NULL;
    ck_assert_int_eq(cric_sandbox_lookup(svc, d.id, &sb, NULL), 0);
    ck_assert_ptr_null(sb->netns_path);
    ck_assert_ptr_null(sb->ips[0]);
    char *log = cni_log();
    ck_assert_str_eq(log, ""); /* no CNI for host network */
    free(log);
    /* Ambiguous prefix "" and unknown ids. */
    ck_assert_int_eq(cric_sandbox_lookup(svc, "", &sb, NULL), -EINVAL);
    ck_assert_int_eq(cric_sandbox_lookup(svc, "zz", &sb, NULL), -ENOENT);
    struct done d2 = run("h2", true);
    ck_assert_int_eq(d2.rc, 0);
    ck_assert_int_eq(stop_or_remove(d.id, true).rc, 0);
    ck_assert_int_eq(stop_or_remove(d2.id, true).rc, 0);
    d = run("", true);
    ck_assert_int_eq(d.rc, -EINVAL);
    ck_assert_ptr_nonnull(strstr(d.msg, "metadata"));
    d = run("a;K8S_POD_NAME=b", false);
    ck_assert_int_eq(d.rc, -EINVAL);
}
END_TEST

int main(void)
{
    if (geteuid() != 0) {
        puts("SKIP: needs root");
        return 77;
    }
    signal(SIGPIPE, SIG_IGN);
    Suite *s = suite_create("sandbox");
    TCase *tc = tcase_create("sandbox");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, lifecycle);
    tcase_add_test(tc, failed_add_rolls_back);
    tcase_add_test(tc, netconf_cache);
    tcase_add_test(tc, host_network_and_bad_input);
    tcase_add_test(tc, remove_dels_only_when_needed);
    tcase_add_test(tc, crash_after_remove_finishes_at_start);
    tcase_add_test(tc, check_after_restart);
    tcase_add_test(tc, ready_file);
    suite_add_tcase(s, tc);
    return cric_check_run(s, false);
}
