/* CRI services: each module registers its RPCs on the daemon's gRPC server
 * in its init function and releases its state in fini.  daemon.c calls every
 * init in the order of its module list and every fini in reverse, after the
 * server has answered all in-flight calls.  Methods nobody registers are
 * answered UNIMPLEMENTED by the server.
 *
 * Contract of an init function: register handlers with ctx = d, keep state
 * behind the module's pointer in cricd, and on failure release whatever it
 * set up itself (its fini is only called after a successful init).  A fini
 * closes the module's libuv handles; the loop must end with none open. */
#ifndef CRIC_CRI_H
#define CRIC_CRI_H

#include "daemon.h"
#include "util/err.h"

/** Version, Status, RuntimeConfig, UpdateRuntimeConfig. */
int cri_runtime_init(cricd *d, cric_error **err);
void cri_runtime_fini(cricd *d);

/** ImageService: PullImage, ListImages, ImageStatus, RemoveImage, ImageFsInfo
 * (src/image/cri_image.c; the store for other modules: image/cri_image.h). */
int cri_image_init(cricd *d, cric_error **err);
void cri_image_fini(cricd *d);

/** The pod CIDR kubelet last sent with UpdateRuntimeConfig ("" if none yet).
 * Owned by the runtime module; valid until the next UpdateRuntimeConfig. */
const char *cri_runtime_pod_cidr(const cricd *d);

/** RunPodSandbox, StopPodSandbox, RemovePodSandbox, PodSandboxStatus,
 * ListPodSandbox (src/sandbox/cri_sandbox.c). */
int cri_sandbox_init(cricd *d, cric_error **err);
void cri_sandbox_fini(cricd *d);

/** CreateContainer, StartContainer, StopContainer, RemoveContainer,
 * ContainerStatus, ListContainers, ExecSync, UpdateContainerResources,
 * ReopenContainerLog (src/container/cri_container.c).  After the image and
 * sandbox modules: it uses both. */
int cri_container_init(cricd *d, cric_error **err);
/* The stats RPCs (src/container/cri_stats.c), registered by cri_container_init. */
int cri_stats_register(cricd *d, cric_error **err);
void cri_container_fini(cricd *d);

#endif
