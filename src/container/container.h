/* Containers: root filesystems, OCI bundles, lifecycle through cric-shim and
 * the OCI runtime, status, exec-sync and recovery after a daemon restart.
 * One service per daemon, loop thread only.
 *
 * On disk:
 *   <root>/containers/<id>/record.json  mutable state, written atomically
 *   <root>/containers/<id>/config.pb    the CRI ContainerConfig as sent
 *   <root>/containers/<id>/config.json  the OCI spec (bundle = this dir)
 *   <root>/containers/<id>/rootfs       overlayfs mount point
 *   <root>/containers/<id>/upper, work  overlayfs upper and work dirs
 *   <state>/c/<id>/                     the shim's state dir
 *   <state>/container-exits/<id>        exit records the shims write
 */
#ifndef CRIC_CONTAINER_H
#define CRIC_CONTAINER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "api.pb-c.h"
#include "config/config.h"
#include "grpc/server.h"
#include "util/err.h"

struct cric_container_service;
struct cric_image_store;
struct cric_sandbox_service;

struct cric_container_opts {
    const char *root;   /* persistent state dir */
    const char *state;  /* volatile state dir */
    const struct cric_config *cfg; /* runtime handlers, log root/size, stop timeout, cgroup driver (borrowed) */
    struct cric_image_store *images;        /* borrowed */
    struct cric_sandbox_service *sandboxes; /* borrowed; may be NULL in tests */
    const char *shim_path; /* NULL = cric_helper_path("cric-shim") */
};

/** Creates the service, reloads every container from disk (cleaning up
 * half-created ones, learning exits that happened meanwhile) and starts
 * watching exits.  Registers the pod stop/remove hooks with the sandboxes. */
int cric_container_service_new(uv_loop_t *loop, const struct cric_container_opts *opts,
                               struct cric_container_service **out, cric_error **err);
/** Cancels pending work (answering it with an error) and frees the service
 * once its handles are closed; cb (may be NULL) runs then.  Containers keep
 * running under their shims. */
void cric_container_service_close(struct cric_container_service *svc, void (*cb)(void *), void *data);

/** Completion: rc < 0 with err (borrowed) on failure; id = the container's. */
typedef void (*cric_container_done_fn)(void *data, int rc, const cric_error *err, const char *id);

/** CreateContainer (async: the shim reports the pid).  Bad input fails at
 * once with rc < 0 and *err; otherwise done runs later. */
int cric_container_create(struct cric_container_service *svc, const Runtime__V1__CreateContainerRequest *req,
                          cric_container_done_fn done, void *data, cric_error **err);
void cric_container_start(struct cric_container_service *svc, const char *id, cric_container_done_fn done,
                          void *data);
/** timeout_s 0 = the configured default grace; idempotent. */
void cric_container_stop(struct cric_container_service *svc, const char *id, int64_t timeout_s,
                         cric_container_done_fn done, void *data);
/** Idempotent: an unknown id succeeds. */
void cric_container_remove(struct cric_container_service *svc, const char *id, cric_container_done_fn done,
                           void *data);

/** ContainerStatus: fills a response the caller frees with
 * cric_container_status_free. -ENOENT for an unknown id. */
int cric_container_status(struct cric_container_service *svc, const char *id, bool verbose,
                          Runtime__V1__ContainerStatusResponse **out, cric_error **err);
void cric_container_status_free(Runtime__V1__ContainerStatusResponse *resp);
/** ListContainers with the filter (may be NULL). Free with cric_container_list_free. */
int cric_container_list(struct cric_container_service *svc, const Runtime__V1__ContainerFilter *filter,
                        Runtime__V1__ListContainersResponse **out, cric_error **err);
void cric_container_list_free(Runtime__V1__ListContainersResponse *resp);

/** ExecSync: resp (borrowed) is set when rc == 0. */
typedef void (*cric_container_exec_fn)(void *data, int rc, const cric_error *err,
                                       const Runtime__V1__ExecSyncResponse *resp);
void cric_container_exec_sync(struct cric_container_service *svc, const Runtime__V1__ExecSyncRequest *req,
                              cric_container_exec_fn done, void *data);

void cric_container_update_resources(struct cric_container_service *svc,
                                     const Runtime__V1__UpdateContainerResourcesRequest *req,
                                     cric_container_done_fn done, void *data);
void cric_container_reopen_log(struct cric_container_service *svc, const char *id, cric_container_done_fn done,
                               void *data);

/** ContainerStats (id set: exactly that container, -ENOENT if unknown) or
 * ListContainerStats (filter, may be NULL).  Usage is read on the thread
 * pool; resp is borrowed for the callback only. */
typedef void (*cric_container_stats_fn)(void *data, int rc, const cric_error *err,
                                        const Runtime__V1__ListContainerStatsResponse *resp);
void cric_container_stats(struct cric_container_service *svc, const char *id,
                          const Runtime__V1__ContainerStatsFilter *filter, cric_container_stats_fn done, void *data);
/** PodSandboxStats (id set) or ListPodSandboxStats, likewise. */
typedef void (*cric_pod_stats_fn)(void *data, int rc, const cric_error *err,
                                  const Runtime__V1__ListPodSandboxStatsResponse *resp);
void cric_container_pod_stats(struct cric_container_service *svc, const char *id,
                              const Runtime__V1__PodSandboxStatsFilter *filter, cric_pod_stats_fn done, void *data);

/** GetContainerEvents: call (server-streaming) receives every container
 * event from now on until it is cancelled or the service closes.  0, or
 * -ESHUTDOWN / -ENOMEM (the caller fails the call). */
int cric_container_events_subscribe(struct cric_container_service *svc, cric_call *call);
/** Ends every feed (UNAVAILABLE): cricd is shutting down. */
void cric_container_events_close(struct cric_container_service *svc);

/** The container directory (<root>/containers) so that cricctl can read
 * records while the daemon is down. */
#define CRIC_CONTAINER_DIR "containers"

#endif
