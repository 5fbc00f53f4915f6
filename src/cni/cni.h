/* CNI: network configs from a directory, plugins run as children on the
 * libuv loop (CNI spec 0.3.x - 1.0: environment, stdin config with
 * prevResult chaining, stdout result or error JSON). */
#ifndef CRIC_CNI_H
#define CRIC_CNI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "util/err.h"

/* ---- network configuration ---- */

struct cric_cni_plugin_conf {
    char *type;                /* plugin binary name */
    char *json;                /* the plugin's object as given (JSON text) */
    bool cap_port_mappings;    /* capabilities.portMappings */
    bool cap_ip_ranges;        /* capabilities.ipRanges */
};

struct cric_cni_netconf {
    char *name;
    char *cni_version;
    char *file;                /* path it came from */
    struct cric_cni_plugin_conf *plugins;
    size_t n_plugins;
    bool disable_check;        /* "disableCheck": the runtime must not run CHECK */
};

/** Parses one config file's text: a .conflist, or a single-plugin .conf/.json.
 * Errors name the file and what is wrong. */
int cric_cni_netconf_parse(const char *file, const char *text, struct cric_cni_netconf **out, cric_error **err);
/** Loads the first usable config from dir (names sorted bytewise, *.conflist,
 * *.conf, *.json).  Files that do not parse are skipped; if none is usable
 * the error lists each file's problem.  -ENOENT when none exists at all. */
int cric_cni_netconf_load_dir(const char *dir, struct cric_cni_netconf **out, cric_error **err);
void cric_cni_netconf_free(struct cric_cni_netconf *c);
/** Whether a cniVersion has CHECK (0.4.0 and later). */
bool cric_cni_version_has_check(const char *v);

/* ---- result ---- */

struct cric_cni_ip {
    char *address;             /* "10.88.0.5/16" */
    char *gateway;             /* may be NULL */
    int interface;             /* index into interfaces, -1 if none */
};

struct cric_cni_iface {
    char *name, *mac, *sandbox;
};

struct cric_cni_result {
    char *cni_version;
    struct cric_cni_ip *ips;
    size_t n_ips;
    struct cric_cni_iface *ifaces;
    size_t n_ifaces;
    char *json;                /* the raw result, for prevResult and the cache */
};

/** Parses a plugin's stdout.  Accepts 0.2.0 (ip4/ip6) and 0.3.0+ (ips). */
int cric_cni_result_parse(const char *text, struct cric_cni_result **out, cric_error **err);
/** Parses a CNI error object; returns a malloc'd "msg (code N): details" or NULL
 * if text is not an error object. */
char *cric_cni_error_message(const char *text);
/** The address without prefix length of the first IP whose interface is in the
 * sandbox (or any); NULL if none.  Caller frees. */
char *cric_cni_result_ip(const struct cric_cni_result *r, size_t index);
void cric_cni_result_free(struct cric_cni_result *r);

/* ---- child processes ---- */

struct cric_child_opts {
    const char *file;          /* absolute path */
    char **argv;               /* NULL-terminated, argv[0] included */
    char **env;                /* NULL-terminated, or NULL to inherit */
    const char *input;         /* written to stdin, then closed; may be NULL */
    size_t input_len;
    uint64_t timeout_ms;       /* 0 = none; past it the child gets SIGKILL */
    size_t max_output;         /* per stream; 0 = 1 MiB */
};

struct cric_child_result {
    int64_t exit_status;
    int term_signal;
    bool timed_out;
    char *out, *err;           /* NUL-terminated, owned by the child object */
    size_t out_len, err_len;
    uint64_t elapsed_ns;
};

typedef struct cric_child cric_child;
/** Called once with the result (valid during the call only), then the child
 * object frees itself after its handles are closed.  rc < 0 when the child
 * could not be started or its output overflowed; err is then set. */
typedef void (*cric_child_done_fn)(void *data, int rc, const struct cric_child_result *res, const cric_error *err);

/** Runs a child (posix_spawn, exit watched by pidfd) collecting stdout and stderr.  Returns < 0 at
 * once when spawning fails (done is then not called). */
int cric_child_run(uv_loop_t *loop, const struct cric_child_opts *opts, cric_child_done_fn done, void *data,
                   cric_child **out, cric_error **err);
/** Kills the child (SIGKILL); done still runs once it has exited. */
void cric_child_kill(cric_child *c);
/** Total time spent starting children since start (ns): posix_spawn blocks
 * the loop until the child has exec'ed, so this is loop time that the
 * child's elapsed_ns includes. */
uint64_t cric_child_spawn_ns(void);
/** Number of children still running or closing (for orderly shutdown). */
unsigned cric_child_active(void);

/* ---- running a network ---- */

struct cric_cni_port {
    int host_port, container_port;
    const char *protocol;      /* "tcp", "udp", "sctp" */
    const char *host_ip;       /* may be "" */
};

struct cric_cni_runtime {
    const char *container_id;  /* CNI_CONTAINERID */
    const char *netns;         /* CNI_NETNS */
    const char *ifname;        /* CNI_IFNAME; NULL = eth0 */
    const char *args;          /* CNI_ARGS "K8S_POD_NAME=..;..." */
    const struct cric_cni_port *ports;
    size_t n_ports;
    const char *pod_cidr;      /* NULL or "" = none */
    const char *const *plugin_dirs;
    uint64_t timeout_ms;       /* per plugin; 0 = 60 s */
};

enum cric_cni_op { CRIC_CNI_ADD, CRIC_CNI_DEL, CRIC_CNI_CHECK };

/** Completion: on ADD success res is the final result (ownership passes to
 * the callee).  plugin_ns is the time spent inside plugins. */
typedef void (*cric_cni_done_fn)(void *data, int rc, struct cric_cni_result *res, const cric_error *err,
                                 uint64_t plugin_ns);

typedef struct cric_cni_op_state cric_cni_op_state;
/** Runs op over the list (done may run before this returns): ADD in order with prevResult chaining; DEL in
 * reverse with prev_result (the cached ADD result, may be NULL) for every
 * plugin, continuing past errors (first error reported); CHECK in order.
 * Returns < 0 at once if the op could not start (done not called). */
int cric_cni_run(uv_loop_t *loop, const struct cric_cni_netconf *conf, enum cric_cni_op op,
                 const struct cric_cni_runtime *rt, const char *prev_result,
                 cric_cni_done_fn done, void *data, cric_error **err);

/** Finds a plugin binary in dirs; caller frees.  -ENOENT naming the dirs. */
int cric_cni_find_plugin(const char *const *dirs, const char *type, char **out, cric_error **err);

/** NetworkReady: true when config_dir holds a usable config whose plugins all
 * exist in plugin_dirs; otherwise *reason (malloc'd) explains. */
bool cric_cni_ready(const char *config_dir, const char *const *plugin_dirs, char **reason);

#endif
