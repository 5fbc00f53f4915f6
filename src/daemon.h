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

/** A flag that overrides a config key ("log_level" = "debug"); flags are kept
 * so that a SIGHUP reload applies them over the re-read file again. */
struct cricd_override {
    const char *key;
    const char *value;
};

/** The effective configuration: built-in defaults, then the file at path (if
 * path is non-NULL), then the overrides.  *out is filled only on success. */
int cricd_config_build(const char *path, const struct cricd_override *ov, size_t n_ov,
                       struct cric_config *out, cric_error **err);

/** Runs the daemon on cfg until SIGTERM/SIGINT; returns the process exit code.
 * Takes ownership of nothing; cfg is updated in place on SIGHUP. */
int cricd_run(struct cric_config *cfg, const char *config_path, const struct cricd_override *ov, size_t n_ov);

#endif
