/* Pod sandboxes: the namespaces a pod's containers share (pinned by bind
 * mounts, no pause image), its CNI network, its hostname/hosts/resolv.conf and
 * /dev/shm, its cgroup parent.  One service per daemon, loop thread only.
 *
 * The container module reads sandboxes through cric_sandbox_lookup() and
 * registers hooks so that stopping/removing a pod first stops/removes the
 * pod's containers. */
#ifndef CRIC_SANDBOX_H
#define CRIC_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "api.pb-c.h"
#include "util/err.h"

struct cric_sandbox_service;
struct cric_cni;

enum cric_sandbox_state {
    CRIC_SANDBOX_CREATING = 0, /* RunPodSandbox in progress (hidden from List) */
    CRIC_SANDBOX_READY,
    CRIC_SANDBOX_NOTREADY,     /* stopped, or recovery found it broken */
};

/** One pod sandbox.  Owned by the service; valid until the pod is removed,
 * so callers that go async keep the id, not the pointer. */
struct cric_sandbox {
    char id[65];                       /* 64 lowercase hex */
    enum cric_sandbox_state state;
    int64_t created_at;                /* ns since the epoch */
    char *name, *uid, *namespace_;     /* PodSandboxMetadata */
    uint32_t attempt;
    char *hostname;                    /* as given, or the name when empty */
    char *runtime_handler;             /* "" = default */
    char *log_directory;               /* may be "" */
    char *cgroup_parent;               /* effective: config's, else sandbox.cgroup_parent */

    /* Namespaces.  A NULL path means "host" (NODE mode). */
    int network_mode, pid_mode, ipc_mode; /* Runtime__V1__NamespaceMode */
    char *netns_path;                  /* <state>/ns/<id>/net: bind-mounted nsfs */
    char *ipcns_path;                  /* <state>/ns/<id>/ipc */
    char *utsns_path;                  /* <state>/ns/<id>/uts (NULL with host network) */
    int pause_pid;                     /* init of the shared PID ns (pid_mode POD), else 0 */
    char *pidns_path;                  /* "/proc/<pause_pid>/ns/pid" or NULL */

    /* Files for containers to bind mount (all under dir). */
    char *dir;                         /* <root>/sandboxes/<id> */
    char *hostname_path;               /* dir/hostname */
    char *hosts_path;                  /* dir/hosts */
    char *resolv_path;                 /* dir/resolv.conf */
    char *shm_path;                    /* dir/shm: a tmpfs, or NULL with host IPC */

    /* Network result: pod IPs (first is the primary), NULL-terminated. */
    char **ips;

    /* The original request config, decoded (security context, namespace
     * options, labels, annotations, DNS, ports, sysctls...). */
    Runtime__V1__PodSandboxConfig *config;

    /* Time spent inside CNI plugins for ADD (ns), for benchmarks. */
    uint64_t cni_add_ns, cni_del_ns;

    /* Private to the service. */
    struct cric_sandbox__priv *priv;
};

/** Completion of an async operation.  err (owned by the callee, freed after
 * the callback returns) is set when rc < 0.  id is the sandbox's id. */
typedef void (*cric_sandbox_done_fn)(void *data, int rc, const cric_error *err, const char *id);

/** Completion of a container hook: rc < 0 with err (ownership passes to the
 * sandbox service) aborts the stop/remove with that error. */
typedef void (*cric_sandbox_hook_done_fn)(void *cb_data, int rc, cric_error *err);

/** Registered by the container module. */
struct cric_sandbox_container_hooks {
    /** Stops every container of the pod (grace timeout_s seconds; 0 = the
     * default), then calls done exactly once (maybe synchronously). */
    void (*stop_all)(void *ctx, const char *sandbox_id, int64_t timeout_s,
                     cric_sandbox_hook_done_fn done, void *cb_data);
    /** Removes every container of the pod, then calls done exactly once. */
    void (*remove_all)(void *ctx, const char *sandbox_id, cric_sandbox_hook_done_fn done, void *cb_data);
    /** May be NULL.  A pod's lifecycle step for GetContainerEvents, as a
     * Runtime__V1__ContainerEventType: CREATED and STARTED once it is ready,
     * STOPPED when a Stop takes it out of ready, DELETED when it is removed
     * (sb is still readable during the call). */
    void (*event)(void *ctx, const struct cric_sandbox *sb, int type);
    void *ctx;
};

struct cric_sandbox_opts {
    const char *root;                  /* persistent: records under root/sandboxes */
    const char *state;                 /* volatile: namespace pins under state/ns */
    const char *const *cni_plugin_dirs;/* NULL-terminated */
    const char *cni_config_dir;
    const char *cni_cache_dir;         /* NULL: root/cni-cache (kept for the plugins' own cache) */
    const char *cgroup_parent;         /* default parent, e.g. "/kubepods" */
    const char *cgroup_driver;         /* "cgroupfs" or "systemd" */
    uint64_t cni_timeout_ms;           /* per plugin call; 0 = 60 s */
    uint64_t shm_size;                 /* bytes; 0 = 64 MiB */
    const char *helper_pinns;          /* path of cric-pinns; NULL = cric_helper_path() */
    /* Called with each result of the CNI CHECK run for every ready pod
     * after a restart: rc 0 passed, < 0 failed (msg = the plugin's error). */
    void (*net_check_cb)(void *data, const char *id, int rc, const char *msg);
    void *net_check_data;
};

/** Creates the service and reloads every persisted sandbox (pins, network
 * and pause process checked; a broken pod is reloaded as NOTREADY). */
int cric_sandbox_service_new(uv_loop_t *loop, const struct cric_sandbox_opts *opts,
                             struct cric_sandbox_service **out, cric_error **err);
/** Kills in-flight children and frees everything once their handles are
 * closed; cb (may be NULL) runs then.  Pods and their namespaces stay. */
void cric_sandbox_service_close(struct cric_sandbox_service *svc, void (*cb)(void *), void *data);

void cric_sandbox_set_container_hooks(struct cric_sandbox_service *svc,
                                      const struct cric_sandbox_container_hooks *hooks);
/** Pod CIDR from UpdateRuntimeConfig, passed to CNI as runtimeConfig.ipRanges
 * to plugins declaring that capability.  NULL or "" clears it. */
int cric_sandbox_set_pod_cidr(struct cric_sandbox_service *svc, const char *cidr, cric_error **err);

/** Finds a sandbox by full id or unique prefix: -ENOENT if none, -EINVAL if
 * ambiguous.  CREATING sandboxes are not found. */
int cric_sandbox_lookup(struct cric_sandbox_service *svc, const char *id,
                        const struct cric_sandbox **out, cric_error **err);
/** Calls fn for every visible (not CREATING) sandbox. */
void cric_sandbox_foreach(struct cric_sandbox_service *svc,
                          void (*fn)(const struct cric_sandbox *sb, void *data), void *data);

/** RunPodSandbox.  cfg is copied.  Returns < 0 at once for bad input or a
 * duplicate (name, uid, namespace, attempt) (-EEXIST naming the existing
 * id); otherwise done is called later.  On failure nothing is left behind. */
int cric_sandbox_run(struct cric_sandbox_service *svc, const Runtime__V1__PodSandboxConfig *cfg,
                     const char *runtime_handler, cric_sandbox_done_fn done, void *data, cric_error **err);
/** StopPodSandbox: containers (hook), CNI DEL, pause process; idempotent.
 * An unknown id completes with rc 0 (CRI: stop of a missing pod is OK). */
void cric_sandbox_stop(struct cric_sandbox_service *svc, const char *id, cric_sandbox_done_fn done, void *data);
/** RemovePodSandbox: stop, container removal (hook), unpin namespaces, remove
 * files and record; idempotent (unknown id -> rc 0). */
void cric_sandbox_remove(struct cric_sandbox_service *svc, const char *id, cric_sandbox_done_fn done, void *data);

/** Time the operation whose done callback is running spent inside child
 * processes (cric-pinns, CNI plugins), in ns; for logs and benchmarks. */
uint64_t cric_sandbox_last_child_ns(const struct cric_sandbox_service *svc);
/** Of that, the time spent starting children (posix_spawn until exec; the
 * loop is blocked meanwhile) when ops did not overlap. */
uint64_t cric_sandbox_last_spawn_ns(const struct cric_sandbox_service *svc);

/** NetworkReady: true when a usable CNI network config exists; otherwise
 * *reason (malloc'd, caller frees) says why. */
bool cric_sandbox_network_ready(struct cric_sandbox_service *svc, char **reason);

/** Verbose status info as JSON (caller frees): pins, files, CNI result, timings. */
int cric_sandbox_info_json(const struct cric_sandbox *sb, char **out, cric_error **err);

/** The sandbox's PodSandboxStatus (borrowing its strings: use it before the
 * loop moves on), or NULL when out of memory.  Free with
 * cric_sandbox_status_free. */
Runtime__V1__PodSandboxStatus *cric_sandbox_status_new(const struct cric_sandbox *sb);
void cric_sandbox_status_free(Runtime__V1__PodSandboxStatus *st);

#endif
