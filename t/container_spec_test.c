/* OCI spec generation: every rule checked on the parsed config.json. */
#define _GNU_SOURCE
#include <check.h>
#include "check_run.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "container/spec.h"
#include "util/fs.h"

static char rootfs[] = "/tmp/cric-spec-XXXXXX";

static void write_file(const char *rel, const char *text)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", rootfs, rel);
    ck_assert_int_eq(cric_write_file_atomic(p, text, strlen(text), 0644, NULL), 0);
}

static void setup_rootfs(void)
{
    ck_assert_ptr_nonnull(mkdtemp(rootfs));
    char p[512];
    snprintf(p, sizeof(p), "%s/etc", rootfs);
    mkdir(p, 0755);
    write_file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"
                             "daemon::1:1::/:/bin/false\n"
                             "alice:x:1000:1000:Alice:/home/alice:/bin/sh\n");
    write_file("etc/group", "root:x:0:\nwheel:x:10:alice,bob\nstaff:x:50:alice\nalice:x:1000:\nother:x:77:bob\n");
}

static void teardown_rootfs(void)
{
    cric_rm_rf(rootfs, NULL);
}

/* A config the tests adjust. */
struct req {
    Runtime__V1__ContainerConfig c;
    Runtime__V1__ContainerMetadata md;
    Runtime__V1__LinuxContainerConfig lx;
    Runtime__V1__LinuxContainerSecurityContext sc;
    Runtime__V1__LinuxContainerResources res;
    Runtime__V1__Capability caps;
    Runtime__V1__SecurityProfile seccomp;
    Runtime__V1__Int64Value uid, gid;
    Runtime__V1__NamespaceOption ns;
};

static void req_init(struct req *r)
{
    memset(r, 0, sizeof(*r));
    r->c = (Runtime__V1__ContainerConfig)RUNTIME__V1__CONTAINER_CONFIG__INIT;
    r->md = (Runtime__V1__ContainerMetadata)RUNTIME__V1__CONTAINER_METADATA__INIT;
    r->lx = (Runtime__V1__LinuxContainerConfig)RUNTIME__V1__LINUX_CONTAINER_CONFIG__INIT;
    r->sc = (Runtime__V1__LinuxContainerSecurityContext)RUNTIME__V1__LINUX_CONTAINER_SECURITY_CONTEXT__INIT;
    r->res = (Runtime__V1__LinuxContainerResources)RUNTIME__V1__LINUX_CONTAINER_RESOURCES__INIT;
    r->caps = (Runtime__V1__Capability)RUNTIME__V1__CAPABILITY__INIT;
    r->seccomp = (Runtime__V1__SecurityProfile)RUNTIME__V1__SECURITY_PROFILE__INIT;
    r->uid = (Runtime__V1__Int64Value)RUNTIME__V1__INT64_VALUE__INIT;
    r->gid = (Runtime__V1__Int64Value)RUNTIME__V1__INT64_VALUE__INIT;
    r->ns = (Runtime__V1__NamespaceOption)RUNTIME__V1__NAMESPACE_OPTION__INIT;
    r->md.name = "c1";
    r->c.metadata = &r->md;
    r->c.linux = &r->lx;
    r->lx.security_context = &r->sc;
    r->lx.resources = &r->res;
    r->sc.namespace_options = &r->ns;
}

static char *ep[] = {"/bin/ep", "-x", NULL};
static char *cmd[] = {"cmdarg", NULL};
static char *ienv[] = {"PATH=/img/bin", "A=image", "B=image", NULL};
static struct cric_image_config img = {.env = ienv, .entrypoint = ep, .cmd = cmd, .working_dir = "/work",
                                       .user = NULL, .stop_signal = "SIGQUIT"};
static struct cric_spec_sandbox sb = {
    .id = "sb1", .netns_path = "/run/x/netns", .ipc_path = "/run/x/ipc", .uts_path = "/run/x/uts",
    .hostname = "pod-host", .hosts_path = "/tmp", .resolv_path = "/tmp", .hostname_path = "/tmp",
    .shm_path = "/tmp", .cgroup_parent = "/kubepods/podA", .privileged = true};

static struct cric_spec_opts opts(void)
{
    return (struct cric_spec_opts){.container_id = "cid", .rootfs = rootfs, .host_known = true,
                                   .cap_sys_resource = false, .own_oom_score_adj = 0};
}

static int gen(struct req *r, const struct cric_spec_opts *o, yajl_val *out, struct cric_spec_info *info,
               cric_error **err)
{
    char *json = NULL;
    struct cric_spec_opts dflt = opts();
    int rc = cric_spec_generate(&r->c, &sb, &img, o ? o : &dflt, &json, info, err);
    if (rc < 0)
        return rc;
    char ebuf[256];
    *out = yajl_tree_parse(json, ebuf, sizeof(ebuf));
    ck_assert_msg(*out != NULL, "bad JSON: %s\n%s", ebuf, json);
    free(json);
    return 0;
}

static yajl_val ok(struct req *r)
{
    yajl_val v = NULL;
    cric_error *err = NULL;
    int rc = gen(r, NULL, &v, NULL, &err);
    ck_assert_msg(rc == 0, "generate failed: %s", err ? err->msg : "?");
    return v;
}

static void fails(struct req *r, const char *needle)
{
    yajl_val v = NULL;
    cric_error *err = NULL;
    int rc = gen(r, NULL, &v, NULL, &err);
    ck_assert_int_lt(rc, 0);
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(strstr(err->msg, needle), "error '%s' lacks '%s'", err->msg, needle);
    cric_error_free(err);
}

static yajl_val get(yajl_val v, const char *a, const char *b, const char *c)
{
    const char *p[] = {a, b, c, NULL};
    return yajl_tree_get(v, p, yajl_t_any);
}

/* The array at path as one space-joined string. */
static char *joined(yajl_val v, const char *a, const char *b, const char *c)
{
    static char buf[8192];
    buf[0] = '\0';
    yajl_val arr = get(v, a, b, c);
    ck_assert_msg(arr && YAJL_IS_ARRAY(arr), "%s.%s not an array", a, b ? b : "");
    for (size_t i = 0; i < arr->u.array.len; i++) {
        yajl_val e = arr->u.array.values[i];
        char num[32];
        const char *s = YAJL_IS_STRING(e) ? e->u.string : (snprintf(num, sizeof(num), "%lld", YAJL_GET_INTEGER(e)), num);
        if (i)
            strcat(buf, " ");
        strcat(buf, s);
    }
    return buf;
}

static yajl_val find_mount(yajl_val v, const char *dest, size_t *idx)
{
    yajl_val m = get(v, "mounts", NULL, NULL);
    for (size_t i = 0; i < m->u.array.len; i++) {
        yajl_val d = get(m->u.array.values[i], "destination", NULL, NULL);
        if (strcmp(d->u.string, dest) == 0) {
            if (idx)
                *idx = i;
            return m->u.array.values[i];
        }
    }
    return NULL;
}

START_TEST(test_args)
{
    struct req r;
    req_init(&r);
    yajl_val v = ok(&r);
    ck_assert_str_eq(joined(v, "process", "args", NULL), "/bin/ep -x cmdarg");
    yajl_tree_free(v);

    char *a[] = {"a1", "a2"};
    r.c.args = a;
    r.c.n_args = 2;
    v = ok(&r);
    ck_assert_str_eq(joined(v, "process", "args", NULL), "/bin/ep -x a1 a2");
    yajl_tree_free(v);

    char *c[] = {"/bin/sh"};
    r.c.command = c;
    r.c.n_command = 1;
    v = ok(&r);
    ck_assert_str_eq(joined(v, "process", "args", NULL), "/bin/sh a1 a2");
    yajl_tree_free(v);

    r.c.n_args = 0;
    v = ok(&r);
    ck_assert_str_eq(joined(v, "process", "args", NULL), "/bin/sh");
    yajl_tree_free(v);

    /* Nothing anywhere. */
    struct cric_image_config saved = img;
    img.entrypoint = NULL;
    img.cmd = NULL;
    r.c.n_command = 0;
    fails(&r, "no command");
    img = saved;
}
END_TEST

START_TEST(test_env_cwd_tty)
{
    struct req r;
    req_init(&r);
    Runtime__V1__KeyValue kv1 = RUNTIME__V1__KEY_VALUE__INIT, kv2 = RUNTIME__V1__KEY_VALUE__INIT;
    kv1.key = "B";
    kv1.value = "cri";
    kv2.key = "C";
    kv2.value = "new";
    Runtime__V1__KeyValue *kvs[] = {&kv1, &kv2};
    r.c.envs = kvs;
    r.c.n_envs = 2;
    r.c.tty = 1;
    yajl_val v = ok(&r);
    ck_assert_str_eq(joined(v, "process", "env", NULL),
                     "HOSTNAME=pod-host TERM=xterm PATH=/img/bin A=image B=cri C=new");
    ck_assert_str_eq(get(v, "process", "cwd", NULL)->u.string, "/work");
    ck_assert(YAJL_IS_TRUE(get(v, "process", "terminal", NULL)));
    yajl_tree_free(v);

    r.c.working_dir = "/cri";
    r.c.tty = 0;
    r.c.n_envs = 0;
    struct cric_image_config saved = img;
    img.env = NULL;
    v = ok(&r);
    ck_assert_str_eq(get(v, "process", "cwd", NULL)->u.string, "/cri");
    ck_assert(strstr(joined(v, "process", "env", NULL), "PATH=/usr/local/sbin"));
    ck_assert(YAJL_IS_FALSE(get(v, "process", "terminal", NULL)));
    yajl_tree_free(v);
    img = saved;

    kv1.key = "BAD=KEY";
    r.c.n_envs = 1;
    fails(&r, "BAD=KEY");
}
END_TEST

static void check_user(struct req *r, const char *uid, const char *gid, const char *groups)
{
    yajl_val v = ok(r);
    char buf[32];
    snprintf(buf, sizeof(buf), "%lld", YAJL_GET_INTEGER(get(v, "process", "user", "uid")));
    ck_assert_str_eq(buf, uid);
    snprintf(buf, sizeof(buf), "%lld", YAJL_GET_INTEGER(get(v, "process", "user", "gid")));
    ck_assert_str_eq(buf, gid);
    ck_assert_str_eq(joined(v, "process", "user", "additionalGids"), groups);
    yajl_tree_free(v);
}

START_TEST(test_user)
{
    struct req r;
    req_init(&r);
    check_user(&r, "0", "0", "0");
    img.user = "alice";
    check_user(&r, "1000", "1000", "1000 10 50");
    img.user = "alice:other";
    check_user(&r, "1000", "77", "77 10 50");
    img.user = "1000:5";
    check_user(&r, "1000", "5", "5 10 50");
    img.user = "4242";
    check_user(&r, "4242", "0", "0");
    img.user = "nobody";
    fails(&r, "user 'nobody' not found");
    img.user = "alice:nogroup";
    fails(&r, "group 'nogroup' not found");
    img.user = "alice";
    /* run_as_user wins over the image's user. */
    r.uid.value = 1;
    r.sc.run_as_user = &r.uid;
    check_user(&r, "1", "1", "1");
    r.gid.value = 99;
    r.sc.run_as_group = &r.gid;
    int64_t sup[] = {500, 501};
    r.sc.supplemental_groups = sup;
    r.sc.n_supplemental_groups = 2;
    check_user(&r, "1", "99", "99 500 501");
    r.sc.run_as_user = NULL;
    r.sc.run_as_username = "alice";
    check_user(&r, "1000", "99", "99 10 50 500 501");
    r.sc.run_as_username = "";
    fails(&r, "run_as_group needs");
    img.user = NULL;
}
END_TEST

START_TEST(test_caps)
{
    struct req r;
    req_init(&r);
    yajl_val v = ok(&r);
    char *eff = joined(v, "process", "capabilities", "effective");
    ck_assert(strstr(eff, "CAP_CHOWN") && strstr(eff, "CAP_KILL") && !strstr(eff, "CAP_SYS_ADMIN"));
    ck_assert_str_eq(joined(v, "process", "capabilities", "ambient"), "");
    yajl_tree_free(v);

    char *add[] = {"SYS_ADMIN", "CAP_NET_ADMIN"}, *drop[] = {"KILL"};
    r.caps.add_capabilities = add;
    r.caps.n_add_capabilities = 2;
    r.caps.drop_capabilities = drop;
    r.caps.n_drop_capabilities = 1;
    r.sc.capabilities = &r.caps;
    v = ok(&r);
    eff = joined(v, "process", "capabilities", "bounding");
    ck_assert(strstr(eff, "CAP_SYS_ADMIN") && strstr(eff, "CAP_NET_ADMIN") && !strstr(eff, "CAP_KILL"));
    yajl_tree_free(v);

    char *all[] = {"ALL"}, *one[] = {"NET_RAW"};
    r.caps.drop_capabilities = all;
    r.caps.add_capabilities = one;
    r.caps.n_add_capabilities = 1;
    v = ok(&r);
    ck_assert_str_eq(joined(v, "process", "capabilities", "permitted"), "CAP_NET_RAW");
    yajl_tree_free(v);

    r.caps.add_capabilities = all;
    r.caps.n_drop_capabilities = 0;
    v = ok(&r);
    ck_assert(strstr(joined(v, "process", "capabilities", "effective"), "CAP_SYS_MODULE"));
    yajl_tree_free(v);

    char *amb[] = {"NET_BIND_SERVICE"};
    r.caps.n_add_capabilities = 0;
    r.caps.add_ambient_capabilities = amb;
    r.caps.n_add_ambient_capabilities = 1;
    v = ok(&r);
    ck_assert_str_eq(joined(v, "process", "capabilities", "ambient"), "CAP_NET_BIND_SERVICE");
    ck_assert_str_eq(joined(v, "process", "capabilities", "inheritable"), "CAP_NET_BIND_SERVICE");
    yajl_tree_free(v);

    char *bad[] = {"FLY"};
    r.caps.add_capabilities = bad;
    r.caps.n_add_capabilities = 1;
    fails(&r, "unknown capability 'FLY'");
}
END_TEST

START_TEST(test_mounts)
{
    struct req r;
    req_init(&r);
    char host[600];
    snprintf(host, sizeof(host), "%s/vol", rootfs);
    Runtime__V1__Mount m1 = RUNTIME__V1__MOUNT__INIT, m2 = RUNTIME__V1__MOUNT__INIT, m3 = RUNTIME__V1__MOUNT__INIT;
    m1.container_path = "/data/sub";
    m1.host_path = host;
    m1.readonly = 1;
    m2.container_path = "/data";
    m2.host_path = rootfs;
    m3.container_path = "/etc/hosts";
    m3.host_path = rootfs;
    Runtime__V1__Mount *ms[] = {&m1, &m2, &m3};
    r.c.mounts = ms;
    r.c.n_mounts = 3;
    yajl_val v = ok(&r);
    struct stat st;
    ck_assert_int_eq(stat(host, &st), 0); /* created as a directory */
    ck_assert(S_ISDIR(st.st_mode));
    size_t i1, i2;
    yajl_val a = find_mount(v, "/data/sub", &i1), b = find_mount(v, "/data", &i2);
    ck_assert(a && b && i2 < i1); /* parent first */
    ck_assert_str_eq(joined(a, "options", NULL, NULL), "rbind rprivate ro");
    ck_assert_str_eq(joined(b, "options", NULL, NULL), "rbind rprivate");
    ck_assert_str_eq(get(find_mount(v, "/etc/hosts", NULL), "source", NULL, NULL)->u.string, rootfs);
    ck_assert_str_eq(get(find_mount(v, "/dev/shm", NULL), "source", NULL, NULL)->u.string, "/tmp");
    ck_assert(find_mount(v, "/proc", NULL) && find_mount(v, "/dev/pts", NULL) && find_mount(v, "/dev/mqueue", NULL) &&
              find_mount(v, "/sys/fs/cgroup", NULL) && find_mount(v, "/etc/resolv.conf", NULL) &&
              find_mount(v, "/etc/hostname", NULL));
    ck_assert(strstr(joined(find_mount(v, "/sys", NULL), "options", NULL, NULL), "ro"));
    ck_assert_ptr_null(get(v, "linux", "rootfsPropagation", NULL));
    yajl_tree_free(v);

    /* Host-to-container needs a shared or slave source; / of the test
     * machine may be either, so only check the generated options agree. */
    m2.propagation = RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_HOST_TO_CONTAINER;
    r.c.n_mounts = 2;
    cric_error *err = NULL;
    int rc = gen(&r, NULL, &v, NULL, &err);
    if (rc == 0) {
        ck_assert_str_eq(joined(find_mount(v, "/data", NULL), "options", NULL, NULL), "rbind rslave");
        ck_assert_str_eq(get(v, "linux", "rootfsPropagation", NULL)->u.string, "rslave");
        yajl_tree_free(v);
    } else {
        ck_assert(strstr(err->msg, "shared or slave"));
        cric_error_free(err);
    }
    m2.propagation = 0;

    Runtime__V1__IDMapping idm = RUNTIME__V1__IDMAPPING__INIT;
    Runtime__V1__IDMapping *idms[] = {&idm};
    m1.uidmappings = idms;
    m1.n_uidmappings = 1;
    fails(&r, "idmapped mounts are not supported");
    m1.n_uidmappings = 0;
    m1.recursive_read_only = 1;
    fails(&r, "recursive_read_only");
    m1.recursive_read_only = 0;
    m1.container_path = "rel";
    fails(&r, "not absolute");
}
END_TEST

START_TEST(test_readonly_privileged)
{
    struct req r;
    req_init(&r);
    r.sc.readonly_rootfs = 1;
    yajl_val v = ok(&r);
    ck_assert(YAJL_IS_TRUE(get(v, "root", "readonly", NULL)));
    ck_assert_str_eq(get(v, "root", "path", NULL)->u.string, rootfs);
    ck_assert(strstr(joined(find_mount(v, "/etc/hosts", NULL), "options", NULL, NULL), "ro"));
    ck_assert(get(v, "linux", "maskedPaths", NULL)->u.array.len > 5);
    ck_assert(strstr(joined(v, "linux", "readonlyPaths", NULL), "/proc/sys"));
    ck_assert_ptr_null(get(v, "linux", "seccomp", NULL)); /* unset = unconfined, like kubelet */
    yajl_tree_free(v);

    r.sc.privileged = 1;
    r.sc.no_new_privs = 1;
    v = ok(&r);
    ck_assert(strstr(joined(v, "process", "capabilities", "effective"), "CAP_SYS_ADMIN"));
    ck_assert_ptr_null(get(v, "linux", "maskedPaths", NULL));
    ck_assert(YAJL_IS_FALSE(get(v, "process", "noNewPrivileges", NULL)));
    yajl_val devs = get(v, "linux", "resources", "devices");
    ck_assert(YAJL_IS_TRUE(get(devs->u.array.values[0], "allow", NULL, NULL)));
    ck_assert(get(v, "linux", "devices", NULL)->u.array.len > 0); /* /dev/null at least */
    ck_assert(!strstr(joined(find_mount(v, "/sys", NULL), "options", NULL, NULL), "ro"));
    yajl_tree_free(v);

    sb.privileged = false;
    fails(&r, "not privileged");
    sb.privileged = true;
    r.sc.privileged = 0;
    v = ok(&r);
    ck_assert(YAJL_IS_TRUE(get(v, "process", "noNewPrivileges", NULL)));
    yajl_tree_free(v);
}
END_TEST

START_TEST(test_seccomp)
{
    struct req r;
    req_init(&r);
    r.sc.seccomp = &r.seccomp;
    yajl_val v = ok(&r);
    ck_assert_str_eq(get(v, "linux", "seccomp", "defaultAction")->u.string, "SCMP_ACT_ALLOW");
    yajl_val sys = get(v, "linux", "seccomp", "syscalls");
    ck_assert(sys && sys->u.array.len == 1);
    char *names = joined(sys->u.array.values[0], "names", NULL, NULL);
    ck_assert(strstr(names, "kexec_load") && strstr(names, "mount") && strstr(names, "ptrace"));
    yajl_tree_free(v);

    /* CAP_SYS_ADMIN lets mount through. */
    char *add[] = {"SYS_ADMIN"};
    r.caps.add_capabilities = add;
    r.caps.n_add_capabilities = 1;
    r.sc.capabilities = &r.caps;
    v = ok(&r);
    names = joined(get(v, "linux", "seccomp", "syscalls")->u.array.values[0], "names", NULL, NULL);
    ck_assert(!strstr(names, " mount ") && strstr(names, "kexec_load"));
    yajl_tree_free(v);

    r.seccomp.profile_type = RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__Unconfined;
    v = ok(&r);
    ck_assert_ptr_null(get(v, "linux", "seccomp", NULL));
    yajl_tree_free(v);

    char prof[600];
    snprintf(prof, sizeof(prof), "%s/profile.json", rootfs);
    write_file("profile.json", "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"read\"],"
                               "\"action\":\"SCMP_ACT_ALLOW\"}],\"x\":1.5}");
    r.seccomp.profile_type = RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__Localhost;
    r.seccomp.localhost_ref = prof;
    v = ok(&r);
    ck_assert_str_eq(get(v, "linux", "seccomp", "defaultAction")->u.string, "SCMP_ACT_ERRNO");
    ck_assert(YAJL_IS_DOUBLE(get(v, "linux", "seccomp", "x")));
    yajl_tree_free(v);
    write_file("profile.json", "{nope");
    fails(&r, "profile.json");
    r.seccomp.localhost_ref = "/nonexistent/p.json";
    fails(&r, "/nonexistent/p.json");
    r.seccomp.localhost_ref = "relative.json";
    fails(&r, "absolute");
}
END_TEST

START_TEST(test_namespaces_cgroup)
{
    struct req r;
    req_init(&r);
    r.ns.pid = RUNTIME__V1__NAMESPACE_MODE__CONTAINER;
    yajl_val v = ok(&r);
    yajl_val ns = get(v, "linux", "namespaces", NULL);
    char got[512] = "";
    for (size_t i = 0; i < ns->u.array.len; i++) {
        yajl_val p = get(ns->u.array.values[i], "path", NULL, NULL);
        strcat(got, get(ns->u.array.values[i], "type", NULL, NULL)->u.string);
        strcat(got, "=");
        strcat(got, p ? p->u.string : "new");
        strcat(got, " ");
    }
    ck_assert_str_eq(got, "mount=new network=/run/x/netns ipc=/run/x/ipc uts=/run/x/uts pid=new ");
    ck_assert_str_eq(get(v, "linux", "cgroupsPath", NULL)->u.string, "/kubepods/podA/cid");
    ck_assert_ptr_null(get(v, "hostname", NULL, NULL));
    ck_assert_str_eq(get(v, "annotations", "io.kubernetes.cri.sandbox-id", NULL)->u.string, "sb1");
    yajl_tree_free(v);

    r.ns.pid = RUNTIME__V1__NAMESPACE_MODE__TARGET;
    fails(&r, "pid namespace target");
    r.ns.pid = RUNTIME__V1__NAMESPACE_MODE__POD;
    sb.pid_path = "/proc/1/ns/pid";
    v = ok(&r);
    ck_assert(strstr(yajl_tree_get(v, (const char *[]){"linux", "namespaces", NULL}, yajl_t_array)
                         ->u.array.values[4]->u.object.values[1]->u.string,
                     "/proc/1/ns/pid"));
    yajl_tree_free(v);
    sb.pid_path = NULL;
    r.ns.pid = RUNTIME__V1__NAMESPACE_MODE__NODE;
    v = ok(&r);
    ck_assert_int_eq(get(v, "linux", "namespaces", NULL)->u.array.len, 4);
    yajl_tree_free(v);
}
END_TEST

START_TEST(test_resources)
{
    struct req r;
    req_init(&r);
    r.res.cpu_shares = 512;
    r.res.cpu_quota = 50000;
    r.res.cpu_period = 100000;
    r.res.cpuset_cpus = "0";
    r.res.memory_limit_in_bytes = 64 << 20;
    r.res.memory_swap_limit_in_bytes = 64 << 20;
    r.res.oom_score_adj = -500;
    Runtime__V1__HugepageLimit hp = RUNTIME__V1__HUGEPAGE_LIMIT__INIT;
    hp.page_size = "2MB";
    hp.limit = 4 << 20;
    Runtime__V1__HugepageLimit *hps[] = {&hp};
    r.res.hugepage_limits = hps;
    r.res.n_hugepage_limits = 1;
    yajl_val v = ok(&r);
    ck_assert_int_eq(YAJL_GET_INTEGER(get(v, "linux", "resources", "cpu")->u.object.values[0]), 512);
    ck_assert_int_eq(YAJL_GET_INTEGER(yajl_tree_get(v, (const char *[]){"linux", "resources", "memory", "limit", NULL},
                                                    yajl_t_number)),
                     64 << 20);
    /* Clamped: no CAP_SYS_RESOURCE, own score 0. */
    ck_assert_int_eq(YAJL_GET_INTEGER(get(v, "process", "oomScoreAdj", NULL)), 0);
    ck_assert_str_eq(get(get(v, "linux", "resources", "hugepageLimits")->u.array.values[0], "pageSize", NULL, NULL)
                         ->u.string,
                     "2MB");
    yajl_tree_free(v);

    struct cric_spec_opts o = opts();
    o.cap_sys_resource = true;
    o.pids_limit = 100;
    cric_error *err = NULL;
    ck_assert_int_eq(gen(&r, &o, &v, NULL, &err), 0);
    ck_assert_int_eq(YAJL_GET_INTEGER(get(v, "process", "oomScoreAdj", NULL)), -500);
    ck_assert_int_eq(YAJL_GET_INTEGER(get(get(v, "linux", "resources", "pids"), "limit", NULL, NULL)), 100);
    yajl_tree_free(v);

    r.res.memory_swap_limit_in_bytes = 128 << 20;
    fails(&r, "swap accounting");
    r.res.memory_swap_limit_in_bytes = 0;
    r.res.oom_score_adj = 2000;
    fails(&r, "oom_score_adj 2000");
}
END_TEST

START_TEST(test_stop_signal_sysctl_devices)
{
    struct req r;
    req_init(&r);
    struct cric_spec_info info = {0};
    yajl_val v;
    cric_error *err = NULL;
    ck_assert_int_eq(gen(&r, NULL, &v, &info, &err), 0);
    ck_assert_int_eq(info.stop_signal, 3); /* the image's SIGQUIT */
    cric_spec_info_free(&info);
    yajl_tree_free(v);
    r.c.stop_signal = RUNTIME__V1__SIGNAL__SIGNAL_SIGUSR1;
    ck_assert_int_eq(gen(&r, NULL, &v, &info, &err), 0);
    ck_assert_int_eq(info.stop_signal, 10);
    cric_spec_info_free(&info);
    yajl_tree_free(v);
    ck_assert_int_eq(cric_signal_parse("TERM"), 15);
    ck_assert_int_eq(cric_signal_parse("9"), 9);
    ck_assert_int_lt(cric_signal_parse("SIGFOO"), 0);

    char *sysctls[] = {"net.ipv4.ip_forward=1", "kernel.shmmax=100", NULL};
    sb.sysctls = sysctls;
    v = ok(&r);
    ck_assert_str_eq(get(v, "linux", "sysctl", "kernel.shmmax")->u.string, "100");
    yajl_tree_free(v);
    char *bad[] = {"kernel.panic=1", NULL};
    sb.sysctls = bad;
    fails(&r, "kernel.panic");
    sb.sysctls = NULL;

    Runtime__V1__Device d = RUNTIME__V1__DEVICE__INIT;
    d.container_path = "/dev/mynull";
    d.host_path = "/dev/null";
    d.permissions = "rw";
    Runtime__V1__Device *ds[] = {&d};
    r.c.devices = ds;
    r.c.n_devices = 1;
    v = ok(&r);
    yajl_val dev = get(v, "linux", "devices", NULL)->u.array.values[0];
    ck_assert_str_eq(get(dev, "path", NULL, NULL)->u.string, "/dev/mynull");
    ck_assert_int_eq(YAJL_GET_INTEGER(get(dev, "major", NULL, NULL)), 1);
    yajl_val rule = get(v, "linux", "resources", "devices")->u.array.values[1];
    ck_assert_str_eq(get(rule, "access", NULL, NULL)->u.string, "rw");
    yajl_tree_free(v);
    d.host_path = "/etc/passwd";
    fails(&r, "not a device node");
    d.host_path = "/dev/null";
    d.permissions = "rwx";
    fails(&r, "permissions 'rwx'");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("container_spec");
    TCase *tc = tcase_create("spec");
    tcase_add_unchecked_fixture(tc, setup_rootfs, teardown_rootfs);
    tcase_add_test(tc, test_args);
    tcase_add_test(tc, test_env_cwd_tty);
    tcase_add_test(tc, test_user);
    tcase_add_test(tc, test_caps);
    tcase_add_test(tc, test_mounts);
    tcase_add_test(tc, test_readonly_privileged);
    tcase_add_test(tc, test_seccomp);
    tcase_add_test(tc, test_namespaces_cgroup);
    tcase_add_test(tc, test_resources);
    tcase_add_test(tc, test_stop_signal_sysctl_devices);
    suite_add_tcase(s, tc);
    return cric_check_run(s, true);
}
