/* cricd configuration: JSON with comments (conf/cricd.conf), every key in
 * cricd.conf(5).  The daemon embeds the same defaults and runs without a file;
 * command-line flags override the file. */
#ifndef CRIC_CONFIG_H
#define CRIC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

struct cric_registry_config {
    char *host;        /* "host[:port]" as in image references */
    bool insecure;     /* plain HTTP (and unverified TLS) allowed */
    char **mirrors;    /* NULL-terminated list of "scheme://host[:port]" tried first */
};

struct cric_runtime_handler {
    char *name;        /* CRI runtime_handler ("" = default is runtime.default) */
    char *path;        /* OCI runtime binary, e.g. /usr/sbin/runc */
    char *root;        /* its --root state dir */
};

struct cric_config {
    /* top level */
    char *listen;            /* unix socket path */
    char *root;              /* persistent state, /var/lib/cricd */
    char *state;             /* volatile state, /run/cricd */
    char *log_level;         /* error|warn|info|debug */
    char *cgroup_driver;     /* cgroupfs|systemd */
    /* grpc.* */
    uint64_t grpc_max_recv_msg_size;
    uint64_t grpc_max_send_msg_size;
    uint64_t grpc_max_concurrent_streams;
    /* streaming.* */
    char *streaming_address;
    uint64_t streaming_port;          /* 0 = any free port */
    uint64_t streaming_idle_timeout;  /* seconds */
    /* network.* */
    char **network_plugin_dirs;       /* NULL-terminated */
    char *network_config_dir;
    char *network_cache_dir;
    uint64_t network_plugin_timeout;  /* seconds per CNI plugin call */
    /* sandbox.* */
    char *sandbox_cgroup_parent;
    uint64_t sandbox_shm_size;        /* bytes of a pod's /dev/shm tmpfs */
    /* containers.* */
    char *containers_log_root;         /* default parent for log dirs when none given */
    uint64_t containers_log_size_max;  /* bytes, 0 = unlimited */
    uint64_t containers_stop_timeout;  /* seconds, default grace when request gives 0 */
    /* images.* */
    char *images_certs_dir;
    char *images_auth_file;
    uint64_t images_max_concurrent_downloads;
    uint64_t images_pull_timeout;      /* seconds without progress */
    char **images_pinned;              /* NULL-terminated references */
    struct cric_registry_config *images_registries;
    size_t images_registries_len;
    /* runtime.* */
    char *runtime_default;             /* name of the default handler */
    struct cric_runtime_handler *runtime_handlers;
    size_t runtime_handlers_len;
};

/** Fills cfg with the built-in defaults (identical to conf/cricd.conf). */
int cric_config_defaults(struct cric_config *cfg, cric_error **err);
/** Applies a config file over cfg: unknown key or wrong type is an error
 * naming the key and line. */
int cric_config_load_file(struct cric_config *cfg, const char *path, cric_error **err);
/** Applies JSON text (name is used in messages) like cric_config_load_file. */
int cric_config_load_string(struct cric_config *cfg, const char *name, const char *text, cric_error **err);
/** Checks the rules that span keys (runtime.default names a handler, sizes in
 * range); load_file does it itself, call it after cric_config_set. */
int cric_config_check(const struct cric_config *cfg, cric_error **err);
/** Deep copy; dst is overwritten (not freed first). */
int cric_config_copy(struct cric_config *dst, const struct cric_config *src, cric_error **err);
/** Sets one key from a flag: key is the dotted name ("log_level", "debug";
 * "grpc.max_recv_msg_size", "1024"); lists are comma-separated.  A file loaded
 * with cric_config_load_file() keeps the old values on error; so does this. */
int cric_config_set(struct cric_config *cfg, const char *key, const char *value, cric_error **err);
/** Renders the effective configuration as JSON (caller frees). */
int cric_config_to_json(const struct cric_config *cfg, char **out, cric_error **err);
/** Sets *out to the comma-separated dotted names of the keys whose values
 * differ between a and b (caller frees), or NULL when none does. */
int cric_config_diff(const struct cric_config *a, const struct cric_config *b, char **out, cric_error **err);
/** Looks up a runtime handler by CRI name ("" = default); NULL if unknown. */
const struct cric_runtime_handler *cric_config_handler(const struct cric_config *cfg, const char *name);
void cric_config_free(struct cric_config *cfg);

#endif
