/* The daemon: one libuv loop and the state every CRI service hangs off.
 * Each module keeps its own state behind an opaque pointer here; only the
 * loop thread touches any of it. */
#ifndef CRIC_DAEMON_H
#define CRIC_DAEMON_H

#include <uv.h>

#include "config/config.h"
#include "grpc/server.h"

struct cric_image_service;
struct cric_sandbox_service;
struct cric_container_service;
struct cric_shim_manager;
struct cric_runtime_state;

typedef struct cricd {
    uv_loop_t *loop;
    struct cric_config *cfg;      /* effective configuration (owned) */
    const char *config_path;      /* file it came from, or NULL (built-in defaults) */
    cric_server *server;
    struct cric_runtime_state *runtime;     /* Status/UpdateRuntimeConfig state */
    struct cric_image_service *images;
    struct cric_sandbox_service *sandboxes;
    struct cric_container_service *containers;
    struct cric_shim_manager *shims;
} cricd;

#endif
