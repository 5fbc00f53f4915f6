/* Shared between the container module's files; not a public API. */
#ifndef CRIC_CONTAINER_INTERNAL_H
#define CRIC_CONTAINER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "container/container.h"
#include "container/spec.h"
#include "shim/shim.h"

enum ctr_state { CTR_CREATING, CTR_CREATED, CTR_RUNNING, CTR_EXITED };

struct ctr_waiter {
    struct ctr_waiter *next;
    cric_container_done_fn done;
    void *data;
};

struct ctr {
    struct cric_container_service *svc;
    unsigned refs;            /* async operations holding this pointer, +1 while listed */
    bool gone;                /* removed from the service */
    char id[65];
    char *sandbox_id;
    Runtime__V1__ContainerConfig *config; /* owned (protobuf-c unpacked) */
    enum ctr_state state;
    int64_t created_at, started_at, finished_at; /* ns */
    int exit_code;
    bool oom;
    char *reason, *message;
    char *image_name;         /* as requested */
    char *image_id;           /* "sha256:<hex>" */
    char *image_ref;          /* repo digest, else the ID */
    char *handler;            /* runtime handler name ("" default) */
    char *runtime, *runtime_root;
    bool systemd_cgroup;      /* runtime --systemd-cgroup, fixed at create */
    char *log_path;           /* "" = none */
    char **layers;            /* chain IDs held in the image store (NULL-terminated, owned) */
    int pid;
    int stop_signal;
    uint32_t uid, gid;
    char *dir;                /* <root>/containers/<id> */
    char *state_dir;          /* <state>/containers/<id> */
    /* Stop in progress: waiters answered on exit. */
    struct ctr_waiter *exit_waiters;
    uv_timer_t *stop_timer;   /* owned; freed in its close callback */
    bool kill_sent;
    bool runtime_deleted;     /* no runtime state: deleted after the exit, or never
                               * launched (created, not started); in memory only */
    bool deleting;            /* the after-exit `runtime delete` is under way */
    bool starting;            /* StartContainer's shim launch under way */
    bool prelaunching;        /* the shim launched at create (--wait) is not ready yet */
    void *start_waiting;      /* a StartContainer waiting for that shim (struct start_op) */
    bool stop_pending;        /* a stop arrived while starting: begins once started */
    int64_t stop_pending_timeout;
    /* Remove in progress. */
    bool removing;
    struct ctr_waiter *remove_waiters;
};

struct cric_container_service {
    uv_loop_t *loop;
    char *root, *state;
    char *ctr_dir;            /* <root>/containers */
    char *run_dir;            /* <state>/containers */
    char *exits_dir;          /* <state>/container-exits */
    char *shim_path;          /* NULL = default */
    const struct cric_config *cfg;
    struct cric_image_store *images;
    struct cric_sandbox_service *sandboxes;
    struct ctr **v;
    size_t n, cap;
    cric_shim_watch *watch;
    struct cpu_sample *cpu_prev; /* last CPU reading per container/pod, for usage_nano_cores */
    size_t n_cpu_prev;
    struct ev_sub *ev_subs;   /* GetContainerEvents feeds (events.c) */
    unsigned pending;         /* in-flight async operations */
    bool closing;
    void (*close_cb)(void *);
    void *close_data;
};

/* events.c: a lifecycle event to every GetContainerEvents feed. */
void cric__ctr_event(struct ctr *c, Runtime__V1__ContainerEventType type);
/* The sandbox module's event hook: the pod's own events, under its id. */
struct cric_sandbox;
void cric__pod_event(void *svc, const struct cric_sandbox *sb, int type);

/* service.c */
struct ctr *cric__ctr_find(struct cric_container_service *svc, const char *id, cric_error **err);
int cric__ctr_add(struct cric_container_service *svc, struct ctr *c);
void cric__ctr_drop(struct ctr *c);            /* unlist (gone) and unref */
void cric__ctr_ref(struct ctr *c);
void cric__ctr_unref(struct ctr *c);
int cric__ctr_save(struct ctr *c, cric_error **err);
void cric__svc_hold(struct cric_container_service *svc);
void cric__svc_release(struct cric_container_service *svc);
int64_t cric__now_ns(void);
/** Writes a file under the service's dirs atomically (temp + rename: a cricd
 * crash leaves the old or the new one); its fsync runs on the thread pool. */
int cric__ctr_write(struct cric_container_service *svc, const char *path, const void *data, size_t len,
                    cric_error **err);
void cric__waiters_fire(struct ctr_waiter **list, int rc, const cric_error *err, const char *id);
int cric__waiter_add(struct ctr_waiter **list, cric_container_done_fn done, void *data);
/* lifecycle.c */
void cric__ctr_on_exit(struct ctr *c, const struct cric_shim_exit *ex);
void cric__ctr_remove(struct ctr *c, cric_container_done_fn done, void *data);
/** After a restart: a "created" container whose start raced the crash may be
 * running; asks the runtime and updates the record. */
void cric__ctr_refresh_created(struct ctr *c);
void cric__ctr_hold_layers(struct ctr *c);
/** A shim launched at create waits in state_dir for StartContainer. */
bool cric__shim_waiting(const char *state_dir);
/** Kills such a waiting shim (nothing will start it). */
void cric__kill_waiting_shim(const char *state_dir);
/** Service shutdown: closes the stop timer, answers stop waiters ECANCELED. */
void cric__ctr_cancel_stop(struct ctr *c);
void cric__ctr_release_layers(struct ctr *c);
int cric__runtime(struct ctr *c, const char *verb, const char *a1, const char *a2, unsigned timeout_ms,
                  cric_runtime_cb cb, void *data, cric_error **err);
/* rootfs.c */
int cric__rootfs_mount(const char *dir, char *const *layers, cric_error **err);
int cric__rootfs_unmount(const char *dir, cric_error **err);
/** On the thread pool: unmounts <unmount>/rootfs (if unmount is non-NULL),
 * then removes dirs (NULL-terminated, owned: freed); then cb on the loop.
 * An unmount failure skips the removal (rc < 0). */
int cric__rm_trees(uv_loop_t *loop, const char *unmount, char **dirs, void (*cb)(void *data, int rc),
                   void *data);

#endif
