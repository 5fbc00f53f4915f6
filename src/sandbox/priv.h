/* Internal to the sandbox module. */
#ifndef CRIC_SANDBOX_PRIV_H
#define CRIC_SANDBOX_PRIV_H

#include "sandbox/sandbox.h"

#include <sys/types.h>
#include <time.h>

struct sb_op;
struct cric_cni_netconf;

/* The network config chosen last, reused while neither the directory nor
 * the file changed (no readdir, read and parse for every pod). */
struct sb_netconf_cache {
    bool valid;
    struct timespec dir_mtime, file_mtime;
    ino_t file_ino;
    off_t file_size;
    char *file, *text;
};

enum sb_net_check { SB_CHECK_NONE, SB_CHECK_PENDING, SB_CHECK_PASSED, SB_CHECK_FAILED, SB_CHECK_SKIPPED };

struct cric_sandbox__priv {
    char *ns_dir;             /* <state>/ns/<id> */
    int64_t pause_start;      /* start time (clock ticks) of pause_pid, against pid reuse */
    bool network_attached;    /* ADD started and no DEL succeeded since */
    char *cni_conf_file;      /* the network config used for ADD, kept for DEL */
    char *cni_conf_text;
    struct cric_cni_netconf *cni_conf_parsed; /* of cni_conf_text, parsed on first use */
    char *cni_result;         /* raw JSON of the last ADD result */
    bool shm_mounted;
    char **cgroups_created;   /* dirs we made, removed deepest first on remove */
    uint8_t *config_pb;       /* packed PodSandboxConfig (persisted) */
    size_t config_pb_len;
    struct sb_op *ops_head, *ops_tail;
    bool busy;
    enum sb_net_check net_check; /* CNI CHECK after a restart; not persisted */
    char *net_check_msg;
};

struct cric_sandbox_service {
    uv_loop_t *loop;
    char *root, *state, *sb_dir, *ns_root;
    char **plugin_dirs;
    char **cg_mounts;         /* cgroup hierarchies, read once */
    struct sb_netconf_cache nc;
    char *config_dir, *cache_dir, *cgroup_parent, *cgroup_driver, *pinns;
    uint64_t timeout_ms, shm_size;
    char *pod_cidr;
    struct cric_sandbox_container_hooks hooks;
    bool have_hooks;
    struct cric_sandbox **sbs;
    size_t n, cap;
    unsigned inflight;
    unsigned long old_seq;
    unsigned cg_removing;      /* background teardowns removing cgroup dirs */
    struct sb_op *cg_waiters;  /* runs waiting for them */    /* names old record versions (record.c) */
    uint64_t last_child_ns;
    uint64_t last_spawn_ns;
    bool closing;
    /* CNI CHECK of the ready pods found at start, a few at a time, off the
     * start-up path (see start_checks). */
    void (*net_check_cb)(void *data, const char *id, int rc, const char *msg);
    void *net_check_data;
    uv_timer_t check_timer;
    bool check_timer_open;
    char (*check_ids)[65];
    size_t check_n, check_next;
    unsigned check_running;
    void (*close_cb)(void *);
    void *close_data;
};

/* record.c */
/* Atomic (temp + rename): a crash of cricd at any instant leaves the old or
 * the new record.  Not fsync'ed on the loop: sb__record_sync does that on
 * the thread pool where power-loss durability matters (doc/pods.md). */
int sb__record_save(struct cric_sandbox_service *svc, struct cric_sandbox *sb, cric_error **err);
/* Makes the record's current version durable (fsync of the file, its pod
 * directory and the sandboxes directory) on the libuv thread pool; done (may
 * be NULL) runs on the loop with rc 0 or -errno and err, which it then owns.
 * svc->inflight counts the work, so the service outlives it.  The
 * file is opened by path on the pool thread: if a newer version was renamed
 * in meanwhile, that one is made durable, which is as good. */
typedef void (*sb__sync_fn)(void *data, int rc, cric_error *err);
int sb__record_sync(struct cric_sandbox_service *svc, const char *id, const char *name, sb__sync_fn done, void *data,
                    cric_error **err);
/* Run's last step: what cric-pinns and ADD added (pause process, CNI
 * result, IPs) goes into a new file next to the CREATING record, which
 * makes the pod READY for the loader; creating a file costs 0.05-0.1 ms
 * here, renaming over the fsync'ed record 0.3 ms.  Later saves write the
 * whole record again and the ready file no longer counts. */
#define SB_READY_NAME "ready.json"
int sb__record_save_ready(struct cric_sandbox_service *svc, struct cric_sandbox *sb, cric_error **err);
/* Names of old record versions kept linked until the thread pool drops them. */
#define SB_OLD_INFIX ".old-"
/* Deletes old record versions left in a pod directory by a crash. */
void sb__record_tidy(const char *dir);
/* Like sb__record_save, the file written on the thread pool (the text is
 * taken now); done runs on the loop.  No other save of this pod may start
 * before done: the caller's op waits for it. */
int sb__record_save_async(struct cric_sandbox_service *svc, struct cric_sandbox *sb, sb__sync_fn done, void *data,
                          cric_error **err);
int sb__record_load(struct cric_sandbox_service *svc, const char *id, struct cric_sandbox **out, cric_error **err);
/* The record in <root>/sandboxes/<dir>/ (a renamed pod directory), of pod id. */
int sb__record_load_at(struct cric_sandbox_service *svc, const char *dir, const char *id, struct cric_sandbox **out,
                       cric_error **err);
int sb__record_path(struct cric_sandbox_service *svc, const char *id, char **out);
struct cric_sandbox *sb__alloc(void);
void sb__free(struct cric_sandbox *sb);
int sb__set_config(struct cric_sandbox *sb, const uint8_t *pb, size_t len, cric_error **err);

/* service.c */
/* Unlinks (or removes the tree at) path on the thread pool; takes path. */
void sb__unlink_async(struct cric_sandbox_service *svc, char *path);

/* files.c */
/* The pod's own network: /etc/hosts with its first IP (if any). */
int sb__write_hosts(struct cric_sandbox *sb, cric_error **err);
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
