/* Capabilities and seccomp for the spec. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "container/spec.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/yj.h"

static const char *const cap_names[] = {
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
};

enum { CAP_CHOWN_ = 0, CAP_DAC_OVERRIDE_ = 1, CAP_FOWNER_ = 3, CAP_FSETID_ = 4, CAP_KILL_ = 5,
       CAP_SETGID_ = 6, CAP_SETUID_ = 7, CAP_SETPCAP_ = 8, CAP_NET_BIND_SERVICE_ = 10, CAP_NET_RAW_ = 13,
       CAP_SYS_MODULE_ = 16, CAP_SYS_RAWIO_ = 17, CAP_SYS_CHROOT_ = 18, CAP_SYS_PTRACE_ = 19,
       CAP_SYS_PACCT_ = 20, CAP_SYS_ADMIN_ = 21, CAP_SYS_BOOT_ = 22, CAP_SYS_NICE_ = 23, CAP_SYS_TIME_ = 25,
       CAP_MKNOD_ = 27, CAP_AUDIT_WRITE_ = 29, CAP_SETFCAP_ = 31, CAP_BPF_ = 39 };

#define BIT(c) (UINT64_C(1) << (c))

/* containerd's and CRI-O's default set. */
static const uint64_t default_caps = BIT(CAP_CHOWN_) | BIT(CAP_DAC_OVERRIDE_) | BIT(CAP_FSETID_) |
                                     BIT(CAP_FOWNER_) | BIT(CAP_MKNOD_) | BIT(CAP_NET_RAW_) | BIT(CAP_SETGID_) |
                                     BIT(CAP_SETUID_) | BIT(CAP_SETFCAP_) | BIT(CAP_SETPCAP_) |
                                     BIT(CAP_NET_BIND_SERVICE_) | BIT(CAP_SYS_CHROOT_) | BIT(CAP_KILL_) |
                                     BIT(CAP_AUDIT_WRITE_);

const char *cric__cap_name(unsigned cap)
{
    return cap < ARRAY_SIZE(cap_names) ? cap_names[cap] : NULL;
}

static uint64_t all_caps(void)
{
    /* Only what both this kernel and our table know. */
    unsigned last = ARRAY_SIZE(cap_names) - 1;
    _cleanup_free_ char *s = NULL;
    if (cric_read_file("/proc/sys/kernel/cap_last_cap", 64, &s, NULL, NULL) == 0) {
        unsigned k = (unsigned)strtoul(s, NULL, 10);
        if (k > 0 && k < last)
            last = k;
    }
    return last >= 63 ? ~UINT64_C(0) : (BIT(last + 1) - 1);
}

static int cap_parse(const char *s)
{
    if (strncasecmp(s, "CAP_", 4) == 0)
        s += 4;
    for (size_t i = 0; i < ARRAY_SIZE(cap_names); i++)
        if (strcasecmp(cap_names[i], s) == 0)
            return (int)i;
    return -1;
}

static bool has_all(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(v[i], "ALL") == 0)
            return true;
    return false;
}

int cric__spec_caps(const Runtime__V1__ContainerConfig *cfg, bool privileged, uint64_t *caps, uint64_t *ambient,
                    cric_error **err)
{
    const Runtime__V1__LinuxContainerSecurityContext *sc =
        cfg->linux ? cfg->linux->security_context : NULL;
    const Runtime__V1__Capability *c = sc ? sc->capabilities : NULL;
    uint64_t set = privileged ? all_caps() : default_caps;
    *ambient = 0;
    if (privileged || !c) {
        *caps = set;
        return 0;
    }
    /* containerd's order: ALL first, then named adds, then named drops. */
    if (has_all(c->add_capabilities, c->n_add_capabilities))
        set = all_caps();
    if (has_all(c->drop_capabilities, c->n_drop_capabilities))
        set = 0;
    for (size_t i = 0; i < c->n_add_capabilities; i++) {
        if (strcasecmp(c->add_capabilities[i], "ALL") == 0)
            continue;
        int k = cap_parse(c->add_capabilities[i]);
        if (k < 0)
            return cric_error_new(err, -EINVAL, "unknown capability '%s' in add_capabilities", c->add_capabilities[i]);
        set |= BIT(k);
    }
    for (size_t i = 0; i < c->n_drop_capabilities; i++) {
        if (strcasecmp(c->drop_capabilities[i], "ALL") == 0)
            continue;
        int k = cap_parse(c->drop_capabilities[i]);
        if (k < 0)
            return cric_error_new(err, -EINVAL, "unknown capability '%s' in drop_capabilities",
                                  c->drop_capabilities[i]);
        set &= ~BIT(k);
    }
    for (size_t i = 0; i < c->n_add_ambient_capabilities; i++) {
        int k = cap_parse(c->add_ambient_capabilities[i]);
        if (k < 0)
            return cric_error_new(err, -EINVAL, "unknown capability '%s' in add_ambient_capabilities",
                                  c->add_ambient_capabilities[i]);
        /* An ambient capability must be permitted and inheritable too. */
        set |= BIT(k);
        *ambient |= BIT(k);
    }
    *caps = set;
    return 0;
}

/* RuntimeDefault: allow by default, refuse with EPERM what lets a process
 * reach outside its container, unless it holds the capability that makes the
 * call legitimate (Docker's profile works the same way). */
static const struct {
    int cap; /* -1: always denied */
    const char *names[12];
} denied[] = {
    {-1, {"acct", "add_key", "request_key", "keyctl", "lookup_dcookie", "uselib", "userfaultfd", "ustat",
          "sysfs", "_sysctl", "nfsservctl", "vm86"}},
    {-1, {"vm86old", "get_kernel_syms", "query_module", "create_module", "kexec_file_load", "kexec_load",
          "open_by_handle_at", "name_to_handle_at", "perf_event_open", "quotactl", "swapon", "swapoff"}},
    {CAP_SYS_ADMIN_, {"mount", "umount", "umount2", "unshare", "setns", "pivot_root", "fsopen", "fsmount",
                      "fsconfig", "move_mount", "open_tree", "fspick"}},
    {CAP_SYS_ADMIN_, {"mount_setattr", "setdomainname", "sethostname"}},
    {CAP_SYS_PTRACE_, {"ptrace", "process_vm_readv", "process_vm_writev", "kcmp"}},
    {CAP_SYS_MODULE_, {"init_module", "finit_module", "delete_module"}},
    {CAP_SYS_BOOT_, {"reboot"}},
    {CAP_SYS_TIME_, {"settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "stime"}},
    {CAP_SYS_RAWIO_, {"iopl", "ioperm"}},
    {CAP_SYS_NICE_, {"mbind", "set_mempolicy", "move_pages", "get_mempolicy"}},
    {CAP_BPF_, {"bpf"}},
};

#define GS(g, s) yajl_gen_string((g), (const unsigned char *)(s), strlen(s))

static void gen_arches(yajl_gen g)
{
    GS(g, "architectures");
    yajl_gen_array_open(g);
#if defined(__x86_64__)
    GS(g, "SCMP_ARCH_X86_64");
    GS(g, "SCMP_ARCH_X86");
    GS(g, "SCMP_ARCH_X32");
#elif defined(__aarch64__)
    GS(g, "SCMP_ARCH_AARCH64");
    GS(g, "SCMP_ARCH_ARM");
#endif
    yajl_gen_array_close(g);
}

static void gen_default(yajl_gen g, uint64_t caps)
{
    yajl_gen_map_open(g);
    GS(g, "defaultAction");
    GS(g, "SCMP_ACT_ALLOW");
    gen_arches(g);
    GS(g, "syscalls");
    yajl_gen_array_open(g);
    yajl_gen_map_open(g);
    GS(g, "names");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < ARRAY_SIZE(denied); i++) {
        if (denied[i].cap >= 0 && (caps & BIT(denied[i].cap)))
            continue;
        for (size_t j = 0; j < ARRAY_SIZE(denied[i].names) && denied[i].names[j]; j++)
            GS(g, denied[i].names[j]);
    }
    yajl_gen_array_close(g);
    GS(g, "action");
    GS(g, "SCMP_ACT_ERRNO");
    GS(g, "errnoRet");
    yajl_gen_integer(g, EPERM);
    yajl_gen_map_close(g);
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
}

static int gen_localhost(yajl_gen g, const char *path, cric_error **err)
{
    if (!path || path[0] != '/')
        return cric_error_new(err, -EINVAL, "seccomp Localhost profile '%s' must be an absolute path",
                              path ? path : "");
    _cleanup_free_ char *text = NULL;
    int r = cric_read_file(path, 1 << 20, &text, NULL, err);
    if (r < 0)
        return cric_error_prefix(err, "seccomp profile");
    char ebuf[256] = "";
    yajl_val v = yajl_tree_parse(text, ebuf, sizeof(ebuf));
    if (!v || !YAJL_IS_OBJECT(v)) {
        yajl_tree_free(v);
        ebuf[strcspn(ebuf, "\n")] = '\0';
        return cric_error_new(err, -EINVAL, "seccomp profile '%s': not a JSON object%s%s", path, ebuf[0] ? ": " : "",
                              ebuf);
    }
    const char *k[] = {"defaultAction", NULL};
    yajl_val da = yajl_tree_get(v, k, yajl_t_string);
    if (!da) {
        yajl_tree_free(v);
        return cric_error_new(err, -EINVAL, "seccomp profile '%s': no defaultAction", path);
    }
    cric_yj_gen_value(g, v);
    yajl_tree_free(v);
    return 0;
}

int cric__spec_gen_seccomp(struct yajl_gen_t *g, const Runtime__V1__LinuxContainerSecurityContext *sc, uint64_t caps,
                           bool privileged, cric_error **err)
{
    if (privileged)
        return 0;
    if (sc && sc->seccomp) {
        switch (sc->seccomp->profile_type) {
        case RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__Unconfined:
            return 0;
        case RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__Localhost:
            GS(g, "seccomp");
            return gen_localhost(g, sc->seccomp->localhost_ref, err);
        default:
            GS(g, "seccomp");
            gen_default(g, caps);
            return 0;
        }
    }
    /* The deprecated string field: "", "unconfined", "runtime/default",
     * "docker/default", "localhost/<path>".  Unset means unconfined, as the
     * kubelet means it. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    const char *p = sc ? sc->seccomp_profile_path : NULL;
#pragma GCC diagnostic pop
    if (!p || !p[0] || strcmp(p, "unconfined") == 0)
        return 0;
    if (strcmp(p, "runtime/default") == 0 || strcmp(p, "docker/default") == 0) {
        GS(g, "seccomp");
        gen_default(g, caps);
        return 0;
    }
    if (strncmp(p, "localhost/", 10) == 0) {
        GS(g, "seccomp");
        return gen_localhost(g, p + 9, err);
    }
    return cric_error_new(err, -EINVAL, "unknown seccomp_profile_path '%s'", p);
}
