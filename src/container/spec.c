/* config.json from the CRI request: the top level, namespaces, resources. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yajl/yajl_gen.h>

#include "container/spec.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/yj.h"

#define GS(g, s) yajl_gen_string((g), (const unsigned char *)(s), strlen(s))

static void gcaps(yajl_gen g, const char *k, uint64_t caps)
{
    GS(g, k);
    yajl_gen_array_open(g);
    for (unsigned i = 0; i < 64; i++) {
        const char *n = cric__cap_name(i);
        if (n && (caps & (UINT64_C(1) << i))) {
            char buf[40];
            snprintf(buf, sizeof(buf), "CAP_%s", n);
            GS(g, buf);
        }
    }
    yajl_gen_array_close(g);
}

/* Fills the host facts the caller did not give. */
static void probe_host(struct cric_spec_opts *o)
{
    if (o->host_known)
        return;
    o->host_known = true;
    _cleanup_free_ char *st = NULL;
    o->cap_sys_resource = false;
    if (cric_read_file("/proc/self/status", 1 << 16, &st, NULL, NULL) == 0) {
        char *p = strstr(st, "\nCapEff:");
        if (p)
            o->cap_sys_resource = (strtoull(p + 8, NULL, 16) >> 24) & 1; /* CAP_SYS_RESOURCE */
    }
    _cleanup_free_ char *adj = NULL;
    o->own_oom_score_adj = 0;
    if (cric_read_file("/proc/self/oom_score_adj", 64, &adj, NULL, NULL) == 0)
        o->own_oom_score_adj = atoi(adj);
    o->selinux_enabled = access("/sys/fs/selinux/enforce", F_OK) == 0;
    _cleanup_free_ char *aa = NULL;
    o->apparmor_enabled = cric_read_file("/sys/module/apparmor/parameters/enabled", 64, &aa, NULL, NULL) == 0 &&
                          aa[0] == 'Y';
    o->cgroup2_unified = access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0;
    o->memsw = access("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes", F_OK) == 0;
}

static int gen_namespaces(yajl_gen g, const Runtime__V1__ContainerConfig *cfg, const struct cric_spec_sandbox *sb,
                          const struct cric_spec_opts *o, cric_error **err)
{
    const Runtime__V1__LinuxContainerSecurityContext *sc = cfg->linux ? cfg->linux->security_context : NULL;
    const Runtime__V1__NamespaceOption *ns = sc ? sc->namespace_options : NULL;
    if (ns && ns->userns_options && ns->userns_options->mode != RUNTIME__V1__NAMESPACE_MODE__NODE)
        return cric_error_new(err, -EOPNOTSUPP, "user namespaces are not supported");
    GS(g, "namespaces");
    yajl_gen_array_open(g);
#define NS(type, path)              \
    do {                            \
        yajl_gen_map_open(g);       \
        cric_yj_kv_str(g, "type", type);       \
        if (path)                   \
            cric_yj_kv_str(g, "path", path);   \
        yajl_gen_map_close(g);      \
    } while (0)
    NS("mount", (const char *)NULL);
    /* The pod decides network, IPC and UTS; the container cannot leave them. */
    if (sb && sb->netns_path && sb->netns_path[0])
        NS("network", sb->netns_path);
    if (sb && sb->ipc_path && sb->ipc_path[0])
        NS("ipc", sb->ipc_path);
    if (sb && sb->uts_path && sb->uts_path[0])
        NS("uts", sb->uts_path);
    Runtime__V1__NamespaceMode pid = ns ? ns->pid : RUNTIME__V1__NAMESPACE_MODE__CONTAINER;
    if (sb && sb->host_pid)
        pid = RUNTIME__V1__NAMESPACE_MODE__NODE;
    switch (pid) {
    case RUNTIME__V1__NAMESPACE_MODE__NODE:
        break;
    case RUNTIME__V1__NAMESPACE_MODE__POD:
        /* POD is also the proto's zero value: without a pod-wide pid
         * namespace the container gets its own. */
        NS("pid", sb && sb->pid_path && sb->pid_path[0] ? sb->pid_path : NULL);
        break;
    case RUNTIME__V1__NAMESPACE_MODE__TARGET:
        if (!o->target_pid_path)
            return cric_error_new(err, -EINVAL, "pid namespace target '%s' is not a running container in the pod",
                                  ns->target_id ? ns->target_id : "");
        NS("pid", o->target_pid_path);
        break;
    default:
        NS("pid", (const char *)NULL);
    }
#undef NS
    yajl_gen_array_close(g);
    return 0;
}

static int gen_resources(yajl_gen g, const Runtime__V1__ContainerConfig *cfg, const struct cric_spec_opts *o,
                         bool privileged, cric_error **err)
{
    const Runtime__V1__LinuxContainerResources *r = cfg->linux ? cfg->linux->resources : NULL;
    GS(g, "resources");
    yajl_gen_map_open(g);
    int rc = cric__spec_gen_devices(g, true, cfg, privileged, err);
    if (rc < 0)
        return rc;
    if (r) {
        if (r->cpu_shares < 0 || r->cpu_quota < -1 || r->cpu_period < 0 || r->memory_limit_in_bytes < 0)
            return cric_error_new(err, -EINVAL, "negative cpu or memory resource");
        if (r->cpu_shares || r->cpu_quota || r->cpu_period || (r->cpuset_cpus && r->cpuset_cpus[0]) ||
            (r->cpuset_mems && r->cpuset_mems[0])) {
            GS(g, "cpu");
            yajl_gen_map_open(g);
            if (r->cpu_shares)
                cric_yj_kv_int(g, "shares", r->cpu_shares);
            if (r->cpu_quota)
                cric_yj_kv_int(g, "quota", r->cpu_quota);
            if (r->cpu_period)
                cric_yj_kv_int(g, "period", r->cpu_period);
            if (r->cpuset_cpus && r->cpuset_cpus[0])
                cric_yj_kv_str(g, "cpus", r->cpuset_cpus);
            if (r->cpuset_mems && r->cpuset_mems[0])
                cric_yj_kv_str(g, "mems", r->cpuset_mems);
            yajl_gen_map_close(g);
        }
        if (r->memory_limit_in_bytes) {
            GS(g, "memory");
            yajl_gen_map_open(g);
            cric_yj_kv_int(g, "limit", r->memory_limit_in_bytes);
            /* kubelet asks swap == limit (no swap) everywhere; that needs
             * memsw on v1, so without it only "no extra swap" is honoured. */
            int64_t swap = r->memory_swap_limit_in_bytes;
            if (swap && (o->memsw || o->cgroup2_unified))
                cric_yj_kv_int(g, "swap", swap);
            else if (swap && swap != r->memory_limit_in_bytes)
                return cric_error_new(err, -EOPNOTSUPP,
                                      "memory_swap_limit_in_bytes %" PRId64 " needs swap accounting, absent here",
                                      swap);
            yajl_gen_map_close(g);
        }
        if (r->n_hugepage_limits) {
            GS(g, "hugepageLimits");
            yajl_gen_array_open(g);
            for (size_t i = 0; i < r->n_hugepage_limits; i++) {
                yajl_gen_map_open(g);
                cric_yj_kv_str(g, "pageSize", r->hugepage_limits[i]->page_size ? r->hugepage_limits[i]->page_size : "");
                cric_yj_kv_int(g, "limit", (long long)r->hugepage_limits[i]->limit);
                yajl_gen_map_close(g);
            }
            yajl_gen_array_close(g);
        }
        if (r->n_unified) {
            if (!o->cgroup2_unified)
                return cric_error_new(err, -EOPNOTSUPP, "unified cgroup resources need a cgroup v2 host");
            GS(g, "unified");
            yajl_gen_map_open(g);
            for (size_t i = 0; i < r->n_unified; i++)
                cric_yj_kv_str(g, r->unified[i]->key, r->unified[i]->value);
            yajl_gen_map_close(g);
        }
    }
    if (o->pids_limit > 0) {
        GS(g, "pids");
        yajl_gen_map_open(g);
        cric_yj_kv_int(g, "limit", o->pids_limit);
        yajl_gen_map_close(g);
    }
    yajl_gen_map_close(g);
    return 0;
}

static bool sysctl_namespaced(const char *k, bool host_net)
{
    static const char *const exact[] = {"kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
                                        "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem"};
    for (size_t i = 0; i < ARRAY_SIZE(exact); i++)
        if (strcmp(k, exact[i]) == 0)
            return true;
    if (strncmp(k, "fs.mqueue.", 10) == 0)
        return true;
    return !host_net && strncmp(k, "net.", 4) == 0;
}

int cric_spec_generate(const Runtime__V1__ContainerConfig *cfg, const struct cric_spec_sandbox *sb,
                       const struct cric_image_config *img, const struct cric_spec_opts *opts_in, char **json,
                       struct cric_spec_info *info_out, cric_error **err)
{
    struct cric_spec_opts o = *opts_in;
    probe_host(&o);
    const Runtime__V1__LinuxContainerSecurityContext *sc = cfg->linux ? cfg->linux->security_context : NULL;
    const Runtime__V1__LinuxContainerResources *res = cfg->linux ? cfg->linux->resources : NULL;
    bool privileged = sc && sc->privileged;
    bool ro_rootfs = sc && sc->readonly_rootfs;
    int r;

    if (!cfg->metadata || !cfg->metadata->name || !cfg->metadata->name[0])
        return cric_error_new(err, -EINVAL, "container config has no metadata.name");
    if (privileged && sb && !sb->privileged)
        return cric_error_new(err, -EPERM, "privileged container in a pod that is not privileged");
    if (cfg->n_cdi_devices)
        return cric_error_new(err, -EOPNOTSUPP, "CDI devices are not supported");
    if (o.selinux_enabled && sc && sc->selinux_options &&
        ((sc->selinux_options->type && sc->selinux_options->type[0]) ||
         (sc->selinux_options->level && sc->selinux_options->level[0])))
        return cric_error_new(err, -EOPNOTSUPP, "SELinux labels are not supported");
    for (size_t i = 0; i < cfg->n_mounts; i++)
        if (cfg->mounts[i]->selinux_relabel && o.selinux_enabled)
            return cric_error_new(err, -EOPNOTSUPP, "mounts[%zu]: SELinux relabelling is not supported", i);
    const char *apparmor = NULL;
    if (sc && sc->apparmor && sc->apparmor->profile_type == RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__Localhost) {
        if (!o.apparmor_enabled)
            return cric_error_new(err, -EOPNOTSUPP, "AppArmor profile '%s' requested but AppArmor is not enabled",
                                  sc->apparmor->localhost_ref ? sc->apparmor->localhost_ref : "");
        apparmor = sc->apparmor->localhost_ref;
    }

    struct cric_spec_info info = {0};
    char **args = NULL, **env = NULL;
    yajl_gen g = NULL;
    if ((r = cric__spec_user(cfg, img, o.rootfs, &info, err)) < 0)
        goto out;
    if ((r = cric__spec_args(cfg, img, &args, err)) < 0 || (r = cric__spec_env(cfg, img, sb, &env, err)) < 0)
        goto out;
    uint64_t caps, ambient;
    if ((r = cric__spec_caps(cfg, privileged, &caps, &ambient, err)) < 0)
        goto out;
    /* Stop signal: the request's, the image's, SIGTERM. */
    info.stop_signal = cric_signal_from_cri(cfg->stop_signal);
    if (!info.stop_signal && img && img->stop_signal && img->stop_signal[0]) {
        info.stop_signal = cric_signal_parse(img->stop_signal);
        if (info.stop_signal < 0) {
            r = cric_error_new(err, -EINVAL, "image stop signal '%s' is not a signal", img->stop_signal);
            goto out;
        }
    }
    if (!info.stop_signal)
        info.stop_signal = 15;

    g = yajl_gen_alloc(NULL);
    if (!g) {
        r = -ENOMEM;
        goto out;
    }
    yajl_gen_config(g, yajl_gen_beautify, 0);
    yajl_gen_map_open(g);
    cric_yj_kv_str(g, "ociVersion", "1.0.2");

    /* process */
    GS(g, "process");
    yajl_gen_map_open(g);
    GS(g, "terminal");
    yajl_gen_bool(g, cfg->tty);
    GS(g, "user");
    yajl_gen_map_open(g);
    cric_yj_kv_int(g, "uid", info.uid);
    cric_yj_kv_int(g, "gid", info.gid);
    GS(g, "additionalGids");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < info.n_groups; i++)
        yajl_gen_integer(g, info.groups[i]);
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    cric_yj_kv_strv(g, "args", args);
    cric_yj_kv_strv(g, "env", env);
    const char *cwd = cfg->working_dir && cfg->working_dir[0] ? cfg->working_dir
                      : img && img->working_dir && img->working_dir[0] ? img->working_dir
                                                                         : "/";
    if (cwd[0] != '/') {
        r = cric_error_new(err, -EINVAL, "working directory '%s' is not absolute", cwd);
        goto out;
    }
    cric_yj_kv_str(g, "cwd", cwd);
    GS(g, "capabilities");
    yajl_gen_map_open(g);
    gcaps(g, "bounding", caps);
    gcaps(g, "effective", caps);
    gcaps(g, "permitted", caps);
    gcaps(g, "inheritable", ambient);
    gcaps(g, "ambient", ambient);
    yajl_gen_map_close(g);
    GS(g, "noNewPrivileges");
    yajl_gen_bool(g, sc && sc->no_new_privs && !privileged);
    if (res && res->oom_score_adj) {
        int64_t adj = res->oom_score_adj;
        if (adj < -1000 || adj > 1000) {
            r = cric_error_new(err, -EINVAL, "oom_score_adj %" PRId64 " out of range [-1000, 1000]", adj);
            goto out;
        }
        /* Without CAP_SYS_RESOURCE the kernel refuses to go below our own
         * value; containerd's restrict_oom_score_adj does the same. */
        if (!o.cap_sys_resource && adj < o.own_oom_score_adj)
            adj = o.own_oom_score_adj;
        cric_yj_kv_int(g, "oomScoreAdj", adj);
    }
    if (apparmor)
        cric_yj_kv_str(g, "apparmorProfile", apparmor);
    yajl_gen_map_close(g);

    /* root: a path relative to the bundle would tie us to runc's cwd. */
    GS(g, "root");
    yajl_gen_map_open(g);
    cric_yj_kv_str(g, "path", o.rootfs);
    GS(g, "readonly");
    yajl_gen_bool(g, ro_rootfs);
    yajl_gen_map_close(g);

    /* Only a new UTS namespace may be given a hostname; ours is the pod's. */
    const char *rootfs_prop = NULL;
    if ((r = cric__spec_gen_mounts(g, cfg, sb, &o, privileged, ro_rootfs, &rootfs_prop, err)) < 0)
        goto out;

    GS(g, "annotations");
    yajl_gen_map_open(g);
    for (size_t i = 0; i < cfg->n_annotations; i++)
        cric_yj_kv_str(g, cfg->annotations[i]->key, cfg->annotations[i]->value);
    cric_yj_kv_str(g, "io.kubernetes.cri.container-type", "container");
    cric_yj_kv_str(g, "io.kubernetes.cri.container-name", cfg->metadata->name);
    if (sb && sb->id)
        cric_yj_kv_str(g, "io.kubernetes.cri.sandbox-id", sb->id);
    yajl_gen_map_close(g);

    /* linux */
    GS(g, "linux");
    yajl_gen_map_open(g);
    if ((r = gen_namespaces(g, cfg, sb, &o, err)) < 0)
        goto out;
    {
        _cleanup_free_ char *cg = NULL;
        const char *parent = sb && sb->cgroup_parent && sb->cgroup_parent[0] ? sb->cgroup_parent : NULL;
        int n;
        if (o.systemd_cgroup)
            n = asprintf(&cg, "%s:cric:%s", parent ? parent : "system.slice", o.container_id);
        else
            n = asprintf(&cg, "%s/%s", parent ? parent : "/cricd", o.container_id);
        if (n < 0) {
            r = -ENOMEM;
            goto out;
        }
        cric_yj_kv_str(g, "cgroupsPath", cg);
    }
    if ((r = gen_resources(g, cfg, &o, privileged, err)) < 0)
        goto out;
    if ((r = cric__spec_gen_devices(g, false, cfg, privileged, err)) < 0)
        goto out;
    if (rootfs_prop)
        cric_yj_kv_str(g, "rootfsPropagation", rootfs_prop);
    if (sb && sb->sysctls && sb->sysctls[0]) {
        GS(g, "sysctl");
        yajl_gen_map_open(g);
        for (size_t i = 0; sb->sysctls[i]; i++) {
            _cleanup_free_ char *k = strdup(sb->sysctls[i]);
            if (!k) {
                r = -ENOMEM;
                goto out;
            }
            char *eq = strchr(k, '=');
            if (!eq) {
                r = cric_error_new(err, -EINVAL, "sysctl '%s' is not key=value", k);
                goto out;
            }
            *eq = '\0';
            if (!sysctl_namespaced(k, !sb->netns_path)) {
                r = cric_error_new(err, -EINVAL, "sysctl '%s' is not namespaced%s", k,
                                   !sb->netns_path && strncmp(k, "net.", 4) == 0 ? " (host network)" : "");
                goto out;
            }
            cric_yj_kv_str(g, k, eq + 1);
        }
        yajl_gen_map_close(g);
    }
    if (!privileged) {
        static char *const def_masked[] = {"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                                           "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                                           "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
                                           "/sys/devices/virtual/powercap", NULL};
        static char *const def_ro[] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
                                       NULL};
        cric_yj_kv_strv(g, "maskedPaths", sc && sc->n_masked_paths ? sc->masked_paths : (char **)def_masked);
        cric_yj_kv_strv(g, "readonlyPaths", sc && sc->n_readonly_paths ? sc->readonly_paths : (char **)def_ro);
    }
    if ((r = cric__spec_gen_seccomp(g, sc, caps, privileged, err)) < 0)
        goto out;
    yajl_gen_map_close(g);
    yajl_gen_map_close(g);

    const unsigned char *buf;
    size_t len;
    if (yajl_gen_get_buf(g, &buf, &len) != yajl_gen_status_ok) {
        r = cric_error_new(err, -EINVAL, "OCI spec: JSON generation failed");
        goto out;
    }
    *json = strndup((const char *)buf, len);
    if (!*json) {
        r = -ENOMEM;
        goto out;
    }
    if (info_out) {
        *info_out = info;
        info.groups = NULL;
    }
    r = 0;
out:
    if (g)
        yajl_gen_free(g);
    cric__spec_strv_free(args);
    cric__spec_strv_free(env);
    cric_spec_info_free(&info);
    if (r == -ENOMEM)
        cric_error_sys(err, r, "OCI spec");
    return r;
}
