/* OCI runtime spec (config.json) from a CRI ContainerConfig, the pod it runs
 * in and the image it runs.  Pure function of its inputs plus a few reads of
 * the host (/proc/self/status for capabilities, mountinfo for propagation,
 * device nodes) and of the container's root filesystem (/etc/passwd,
 * /etc/group), so that unit tests can check every rule on plain directories. */
#ifndef CRIC_CONTAINER_SPEC_H
#define CRIC_CONTAINER_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "api.pb-c.h"
#include "image/store.h" /* struct cric_image_config */
#include "util/err.h"

/** What the spec needs to know about the pod.  Paths NULL = not applicable
 * (a NULL netns_path means host network). */
struct cric_spec_sandbox {
    const char *id;
    const char *netns_path;     /* pinned network namespace, NULL = host network */
    const char *ipc_path;       /* pinned IPC namespace, NULL = host IPC */
    const char *uts_path;       /* pinned UTS namespace, NULL = host UTS */
    const char *pid_path;       /* the pod's pid namespace (/proc/<pid>/ns/pid) when the pod shares one */
    bool host_pid;              /* pod runs in the host pid namespace */
    const char *hostname;       /* the pod's hostname (HOSTNAME env) */
    const char *hosts_path;     /* files bind-mounted into the container, may be NULL */
    const char *resolv_path;
    const char *hostname_path;
    const char *shm_path;       /* the pod's /dev/shm, NULL = private tmpfs */
    const char *cgroup_parent;  /* cgroupfs path ("/kubepods/podX"), NULL/"" = "/cricd" */
    bool privileged;            /* pod allows privileged containers */
    char **sysctls;             /* NULL-terminated "key=value", applied in the pod's namespaces */
};

struct cric_spec_opts {
    const char *container_id;
    const char *rootfs;          /* absolute path of the mounted root filesystem */
    const char *target_pid_path; /* pid ns of the TARGET container (NamespaceMode TARGET) */
    bool systemd_cgroup;         /* cgroupsPath "slice:prefix:name" instead of a path */
    int64_t pids_limit;          /* 0 = none */
    /* Host facts; the generator fills them from the host when *_known is false
     * (tests set them). */
    bool host_known;
    bool cap_sys_resource;       /* cricd may lower oom_score_adj */
    int own_oom_score_adj;
    bool selinux_enabled;
    bool apparmor_enabled;
    bool cgroup2_unified;        /* pure cgroup v2 host */
    bool memsw;                  /* v1 memory.memsw.* present */
};

/** Facts about the generated spec the container record keeps. */
struct cric_spec_info {
    uint32_t uid, gid;
    uint32_t *groups;      /* additional gids (owned) */
    size_t n_groups;
    int stop_signal;       /* signal number */
};

void cric_spec_info_free(struct cric_spec_info *info);

/** Generates config.json for cfg into *json (caller frees).  On failure the
 * error names the field that cannot be honoured (-EINVAL for bad input,
 * -EOPNOTSUPP for valid but unsupported requests). */
int cric_spec_generate(const Runtime__V1__ContainerConfig *cfg, const struct cric_spec_sandbox *sb,
                       const struct cric_image_config *img, const struct cric_spec_opts *opts, char **json,
                       struct cric_spec_info *info, cric_error **err);

/** Parses a signal name or number ("SIGTERM", "TERM", "15"); -EINVAL if unknown. */
int cric_signal_parse(const char *s);
/** The number of a CRI Signal enum value, 0 for SIGNAL_RUNTIME_DEFAULT. */
int cric_signal_from_cri(Runtime__V1__Signal s);
/** The CRI enum of a signal number (RUNTIME_DEFAULT when unknown). */
Runtime__V1__Signal cric_signal_to_cri(int sig);

/* Internal to the spec generator, shared between its files. */
struct yajl_gen_t;
struct cric__spec_ctx;
int cric__spec_user(const Runtime__V1__ContainerConfig *cfg, const struct cric_image_config *img,
                    const char *rootfs, struct cric_spec_info *info, cric_error **err);
int cric__spec_args(const Runtime__V1__ContainerConfig *cfg, const struct cric_image_config *img, char ***out,
                    cric_error **err);
int cric__spec_env(const Runtime__V1__ContainerConfig *cfg, const struct cric_image_config *img,
                   const struct cric_spec_sandbox *sb, char ***out, cric_error **err);
int cric__spec_caps(const Runtime__V1__ContainerConfig *cfg, bool privileged, uint64_t *caps, uint64_t *ambient,
                    cric_error **err);
const char *cric__cap_name(unsigned cap);
int cric__spec_gen_seccomp(struct yajl_gen_t *g, const Runtime__V1__LinuxContainerSecurityContext *sc, uint64_t caps,
                           bool privileged, cric_error **err);
int cric__spec_gen_mounts(struct yajl_gen_t *g, const Runtime__V1__ContainerConfig *cfg,
                          const struct cric_spec_sandbox *sb, const struct cric_spec_opts *opts, bool privileged,
                          bool readonly_rootfs, const char **rootfs_propagation, cric_error **err);
int cric__spec_gen_devices(struct yajl_gen_t *g, bool cgroup_rules, const Runtime__V1__ContainerConfig *cfg,
                           bool privileged, cric_error **err);
void cric__spec_strv_free(char **v);
size_t cric__spec_strv_len(char *const *v);

#endif
