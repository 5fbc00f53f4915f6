/* Internal to the sandbox module. */
#ifndef CRIC_SANDBOX_PRIV_H
#define CRIC_SANDBOX_PRIV_H

#include "sandbox/sandbox.h"

struct sb_op;

struct cric_sandbox__priv {
    char *ns_dir;             /* <state>/ns/<id> */
    int64_t pause_start;      /* start time (clock ticks) of pause_pid, against pid reuse */
    bool network_attached;    /* ADD started and no DEL succeeded since */
    char *cni_conf_file;      /* the network config used for ADD, kept for DEL */
    char *cni_conf_text;
    char *cni_result;         /* raw JSON of the last ADD result */
    bool shm_mounted;
    char **cgroups_created;   /* dirs we made, removed deepest first on remove */
    uint8_t *config_pb;       /* packed PodSandboxConfig (persisted) */
    size_t config_pb_len;
    struct sb_op *ops_head, *ops_tail;
    bool busy;
};

struct cric_sandbox_service {
    uv_loop_t *loop;
    char *root, *state, *sb_dir, *ns_root;
    char **plugin_dirs;
    char *config_dir, *cache_dir, *cgroup_parent, *cgroup_driver, *pinns;
    uint64_t timeout_ms, shm_size;
    char *pod_cidr;
    struct cric_sandbox_container_hooks hooks;
    bool have_hooks;
    struct cric_sandbox **sbs;
    size_t n, cap;
    unsigned inflight;
    uint64_t last_child_ns;
    bool closing;
    void (*close_cb)(void *);
    void *close_data;
};

/* record.c */
/* Always atomic (temp + rename).  durable adds the fsyncs: needed when the
 * record must survive power loss (a READY pod, so that its IP allocation is
 * released later); the volatile namespaces die with the machine anyway, so
 * intermediate and stopped states only need to survive a daemon crash,
 * which the page cache does. */
int sb__record_save(struct cric_sandbox_service *svc, struct cric_sandbox *sb, bool durable, cric_error **err);
int sb__record_load(struct cric_sandbox_service *svc, const char *id, struct cric_sandbox **out, cric_error **err);
int sb__record_path(struct cric_sandbox_service *svc, const char *id, char **out);
struct cric_sandbox *sb__alloc(void);
void sb__free(struct cric_sandbox *sb);
int sb__set_config(struct cric_sandbox *sb, const uint8_t *pb, size_t len, cric_error **err);

/* files.c */
int sb__write_file(const char *path, const char *s, cric_error **err);
int sb__write_files(struct cric_sandbox_service *svc, struct cric_sandbox *sb, cric_error **err);
int sb__mount_shm(struct cric_sandbox_service *svc, struct cric_sandbox *sb, cric_error **err);
void sb__umount_shm(struct cric_sandbox *sb);
int sb__cgroup_setup(struct cric_sandbox_service *svc, struct cric_sandbox *sb, cric_error **err);
void sb__cgroup_cleanup(struct cric_sandbox *sb);
int sb__check_sysctls(const struct cric_sandbox *sb, cric_error **err);
void sb__unpin(struct cric_sandbox *sb);
bool sb__pin_ok(const char *path);
int64_t sb__proc_start(int pid);

#endif
