/* cricd.conf: a table of keys drives loading, flag setting and printing, so a
 * new key is one table line (plus its field, default and man page entry). */
#include <config.h> /* autoconf's, not the config/config.h next to this file */
#include "config/config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>

#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"

/* A config file larger than this is surely not a config file. */
#define CONFIG_MAX_SIZE (4u << 20)

enum key_type { K_STR, K_U64, K_STRV, K_REGISTRIES, K_HANDLERS };

struct key {
    const char *name;   /* dotted path */
    enum key_type type;
    size_t off;         /* of the field in struct cric_config */
    int (*check)(const char *key, const char *value, cric_error **err);
};

static int check_log_level(const char *key, const char *v, cric_error **err)
{
    enum cric_log_level l;
    if (cric_log_level_parse(v, &l) < 0)
        return cric_error_new(err, -EINVAL, "'%s': invalid log level '%s' (error, warn, info or debug)", key, v);
    return 0;
}

static int check_cgroup_driver(const char *key, const char *v, cric_error **err)
{
    if (strcmp(v, "cgroupfs") != 0 && strcmp(v, "systemd") != 0)
        return cric_error_new(err, -EINVAL, "'%s': invalid cgroup driver '%s' (cgroupfs or systemd)", key, v);
    return 0;
}

static int check_abs_path(const char *key, const char *v, cric_error **err)
{
    if (v[0] != '/')
        return cric_error_new(err, -EINVAL, "'%s': '%s' is not an absolute path", key, v);
    return 0;
}

static int check_abs_path_or_empty(const char *key, const char *v, cric_error **err)
{
    return v[0] ? check_abs_path(key, v, err) : 0;
}

#define F(field) offsetof(struct cric_config, field)
/* Order is the order of --print-config; keys of one section stay together. */
static const struct key keys[] = {
    { "listen", K_STR, F(listen), check_abs_path },
    { "root", K_STR, F(root), check_abs_path },
    { "state", K_STR, F(state), check_abs_path },
    { "log_level", K_STR, F(log_level), check_log_level },
    { "cgroup_driver", K_STR, F(cgroup_driver), check_cgroup_driver },
    { "grpc.max_recv_msg_size", K_U64, F(grpc_max_recv_msg_size), NULL },
    { "grpc.max_send_msg_size", K_U64, F(grpc_max_send_msg_size), NULL },
    { "grpc.max_concurrent_streams", K_U64, F(grpc_max_concurrent_streams), NULL },
    { "streaming.address", K_STR, F(streaming_address), NULL },
    { "streaming.port", K_U64, F(streaming_port), NULL },
    { "streaming.idle_timeout", K_U64, F(streaming_idle_timeout), NULL },
    { "network.plugin_dirs", K_STRV, F(network_plugin_dirs), NULL },
    { "network.config_dir", K_STR, F(network_config_dir), check_abs_path },
    { "network.cache_dir", K_STR, F(network_cache_dir), check_abs_path_or_empty },
    { "network.plugin_timeout", K_U64, F(network_plugin_timeout), NULL },
    { "sandbox.cgroup_parent", K_STR, F(sandbox_cgroup_parent), NULL },
    { "sandbox.shm_size", K_U64, F(sandbox_shm_size), NULL },
    { "containers.log_root", K_STR, F(containers_log_root), check_abs_path },
    { "containers.log_size_max", K_U64, F(containers_log_size_max), NULL },
    { "containers.stop_timeout", K_U64, F(containers_stop_timeout), NULL },
    { "images.certs_dir", K_STR, F(images_certs_dir), check_abs_path_or_empty },
    { "images.auth_file", K_STR, F(images_auth_file), check_abs_path_or_empty },
    { "images.max_concurrent_downloads", K_U64, F(images_max_concurrent_downloads), NULL },
    { "images.pull_timeout", K_U64, F(images_pull_timeout), NULL },
    { "images.pinned", K_STRV, F(images_pinned), NULL },
    { "images.registries", K_REGISTRIES, F(images_registries), NULL },
    { "runtime.default", K_STR, F(runtime_default), NULL },
    { "runtime.handlers", K_HANDLERS, F(runtime_handlers), NULL },
};
#undef F

#define FIELD(cfg, k, T) ((T *)((char *)(cfg) + (k)->off))

static const struct key *key_find(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

static bool is_section(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
        if (strncmp(keys[i].name, name, n) == 0 && keys[i].name[n] == '.')
            return true;
    return false;
}

static void strv_free(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

static void registries_free(struct cric_registry_config *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(r[i].host);
        strv_free(r[i].mirrors);
    }
    free(r);
}

static void handlers_free(struct cric_runtime_handler *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(h[i].name);
        free(h[i].path);
        free(h[i].root);
    }
    free(h);
}

/* Frees the value of one key and leaves it empty. */
static void key_clear(struct cric_config *cfg, const struct key *k)
{
    switch (k->type) {
    case K_STR: {
        char **p = FIELD(cfg, k, char *);
        free(*p);
        *p = NULL;
        break;
    }
    case K_U64:
        *FIELD(cfg, k, uint64_t) = 0;
        break;
    case K_STRV: {
        char ***p = FIELD(cfg, k, char **);
        strv_free(*p);
        *p = NULL;
        break;
    }
    case K_REGISTRIES:
        registries_free(cfg->images_registries, cfg->images_registries_len);
        cfg->images_registries = NULL;
        cfg->images_registries_len = 0;
        break;
    case K_HANDLERS:
        handlers_free(cfg->runtime_handlers, cfg->runtime_handlers_len);
        cfg->runtime_handlers = NULL;
        cfg->runtime_handlers_len = 0;
        break;
    }
}

void cric_config_free(struct cric_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
        key_clear(cfg, &keys[i]);
}

/* ---- reading values from the JSON tree ---- */

struct load_ctx {
    const char *file;   /* for messages */
};

#define LOAD_ERR(lc, line, ...) load_err((lc), (line), err, __VA_ARGS__)

static int load_err(struct load_ctx *lc, unsigned line, cric_error **err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int load_err(struct load_ctx *lc, unsigned line, cric_error **err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    return cric_error_new(err, -EINVAL, "%s:%u: %s", lc->file, line, msg ? msg : "invalid value");
}

static int want(struct load_ctx *lc, const cric_json *v, enum cric_json_type t, const char *key,
                const char *what, cric_error **err)
{
    if (v->type == t)
        return 0;
    return LOAD_ERR(lc, v->line, "'%s': expected %s, got %s", key, what, cric_json_type_name(v->type));
}

static int parse_u64(const char *s, uint64_t *out)
{
    if (!s[0] || s[0] == '-' || s[0] == '+')
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -EINVAL;
    *out = v;
    return 0;
}

/* Replaces *dst with a copy of the string v. */
static int str_from_json(struct load_ctx *lc, const cric_json *v, const char *key, char **dst, cric_error **err)
{
    int r = want(lc, v, CRIC_JSON_STRING, key, "a string", err);
    if (r < 0)
        return r;
    char *s = strdup(v->str);
    if (!s)
        return cric_error_new(err, -ENOMEM, "out of memory");
    free(*dst);
    *dst = s;
    return 0;
}

static int strv_from_json(struct load_ctx *lc, const cric_json *v, const char *key, char ***out, cric_error **err)
{
    int r = want(lc, v, CRIC_JSON_ARRAY, key, "an array of strings", err);
    if (r < 0)
        return r;
    char **strv = calloc(v->len + 1, sizeof(*strv));
    if (!strv)
        return cric_error_new(err, -ENOMEM, "out of memory");
    for (size_t i = 0; i < v->len; i++) {
        if (v->items[i]->type != CRIC_JSON_STRING) {
            strv_free(strv);
            return LOAD_ERR(lc, v->items[i]->line, "'%s[%zu]': expected a string, got %s", key, i,
                            cric_json_type_name(v->items[i]->type));
        }
        strv[i] = strdup(v->items[i]->str);
        if (!strv[i]) {
            strv_free(strv);
            return cric_error_new(err, -ENOMEM, "out of memory");
        }
    }
    *out = strv;
    return 0;
}

static int registries_from_json(struct load_ctx *lc, const cric_json *v, const char *key,
                                struct cric_config *cfg, cric_error **err)
{
    int r = want(lc, v, CRIC_JSON_ARRAY, key, "an array of objects", err);
    if (r < 0)
        return r;
    struct cric_registry_config *regs = calloc(v->len ? v->len : 1, sizeof(*regs));
    if (!regs)
        return cric_error_new(err, -ENOMEM, "out of memory");
    size_t n = 0;
    for (; n < v->len; n++) {
        const cric_json *o = v->items[n];
        char path[256];
        snprintf(path, sizeof(path), "%s[%zu]", key, n);
        if ((r = want(lc, o, CRIC_JSON_OBJECT, path, "an object", err)) < 0)
            goto fail;
        for (size_t i = 0; i < o->len; i++) {
            const cric_json *f = o->items[i];
            char fpath[300];
            snprintf(fpath, sizeof(fpath), "%s.%s", path, o->keys[i]);
            if (strcmp(o->keys[i], "host") == 0) {
                if ((r = str_from_json(lc, f, fpath, &regs[n].host, err)) < 0)
                    goto fail;
            } else if (strcmp(o->keys[i], "insecure") == 0) {
                if ((r = want(lc, f, CRIC_JSON_BOOL, fpath, "a boolean", err)) < 0)
                    goto fail;
                regs[n].insecure = f->boolean;
            } else if (strcmp(o->keys[i], "mirrors") == 0) {
                char **m = NULL;
                if ((r = strv_from_json(lc, f, fpath, &m, err)) < 0)
                    goto fail;
                strv_free(regs[n].mirrors);
                regs[n].mirrors = m;
            } else {
                r = LOAD_ERR(lc, o->key_lines[i], "unknown key '%s'", fpath);
                goto fail;
            }
        }
        if (!regs[n].host || !regs[n].host[0]) {
            r = LOAD_ERR(lc, o->line, "'%s.host': missing", path);
            goto fail;
        }
        if (!regs[n].mirrors && !(regs[n].mirrors = calloc(1, sizeof(char *))))
            goto oom;
    }
    registries_free(cfg->images_registries, cfg->images_registries_len);
    cfg->images_registries = regs;
    cfg->images_registries_len = n;
    return 0;
oom:
    r = cric_error_new(err, -ENOMEM, "out of memory");
fail:
    registries_free(regs, n + 1 <= v->len ? n + 1 : n);
    return r;
}

static int handlers_from_json(struct load_ctx *lc, const cric_json *v, const char *key,
                              struct cric_config *cfg, cric_error **err)
{
    int r = want(lc, v, CRIC_JSON_OBJECT, key, "an object of handlers", err);
    if (r < 0)
        return r;
    struct cric_runtime_handler *hs = calloc(v->len ? v->len : 1, sizeof(*hs));
    if (!hs)
        return cric_error_new(err, -ENOMEM, "out of memory");
    size_t n = 0;
    for (; n < v->len; n++) {
        const cric_json *o = v->items[n];
        char path[256];
        snprintf(path, sizeof(path), "%s.%s", key, v->keys[n]);
        if (!v->keys[n][0]) {
            r = LOAD_ERR(lc, v->key_lines[n], "'%s': a handler needs a name", key);
            goto fail;
        }
        if (!(hs[n].name = strdup(v->keys[n])))
            goto oom;
        if ((r = want(lc, o, CRIC_JSON_OBJECT, path, "an object", err)) < 0)
            goto fail;
        for (size_t i = 0; i < o->len; i++) {
            const cric_json *f = o->items[i];
            char fpath[300];
            snprintf(fpath, sizeof(fpath), "%s.%s", path, o->keys[i]);
            char **dst;
            if (strcmp(o->keys[i], "path") == 0) {
                dst = &hs[n].path;
            } else if (strcmp(o->keys[i], "root") == 0) {
                dst = &hs[n].root;
            } else {
                r = LOAD_ERR(lc, o->key_lines[i], "unknown key '%s'", fpath);
                goto fail;
            }
            if ((r = str_from_json(lc, f, fpath, dst, err)) < 0)
                goto fail;
            if (f->str[0] != '/') {
                r = LOAD_ERR(lc, f->line, "'%s': '%s' is not an absolute path", fpath, f->str);
                goto fail;
            }
        }
        if (!hs[n].path || !hs[n].root) {
            r = LOAD_ERR(lc, o->line, "'%s': needs both \"path\" and \"root\"", path);
            goto fail;
        }
    }
    handlers_free(cfg->runtime_handlers, cfg->runtime_handlers_len);
    cfg->runtime_handlers = hs;
    cfg->runtime_handlers_len = n;
    return 0;
oom:
    r = cric_error_new(err, -ENOMEM, "out of memory");
fail:
    handlers_free(hs, n + 1 <= v->len ? n + 1 : n);
    return r;
}

static int key_from_json(struct load_ctx *lc, struct cric_config *cfg, const struct key *k,
                         const cric_json *v, cric_error **err)
{
    int r;
    switch (k->type) {
    case K_STR:
        /* Checked before it replaces the value. */
        if (v->type == CRIC_JSON_STRING && k->check && k->check(k->name, v->str, err) < 0)
            return cric_error_prefix(err, "%s:%u", lc->file, v->line);
        return str_from_json(lc, v, k->name, FIELD(cfg, k, char *), err);
    case K_U64: {
        uint64_t u;
        if ((r = want(lc, v, CRIC_JSON_NUMBER, k->name, "an unsigned integer", err)) < 0)
            return r;
        if (parse_u64(v->str, &u) < 0)
            return LOAD_ERR(lc, v->line, "'%s': expected an unsigned integer, got %s", k->name, v->str);
        *FIELD(cfg, k, uint64_t) = u;
        return 0;
    }
    case K_STRV: {
        char **strv = NULL;
        if ((r = strv_from_json(lc, v, k->name, &strv, err)) < 0)
            return r;
        char ***p = FIELD(cfg, k, char **);
        strv_free(*p);
        *p = strv;
        return 0;
    }
    case K_REGISTRIES:
        return registries_from_json(lc, v, k->name, cfg, err);
    case K_HANDLERS:
        return handlers_from_json(lc, v, k->name, cfg, err);
    }
    return -EINVAL;
}

/* Cross-key rules, checked after a file and after flags. */
static int config_check(const struct cric_config *cfg, cric_error **err)
{
    if (!cric_config_handler(cfg, ""))
        return cric_error_new(err, -EINVAL, "'runtime.default': '%s' is not in runtime.handlers",
                              cfg->runtime_default ? cfg->runtime_default : "");
    if (cfg->grpc_max_recv_msg_size < 1024 || cfg->grpc_max_send_msg_size < 1024)
        return cric_error_new(err, -EINVAL, "'grpc.max_recv_msg_size' and 'grpc.max_send_msg_size' must be at least 1024");
    if (cfg->grpc_max_concurrent_streams < 1 || cfg->grpc_max_concurrent_streams > UINT32_MAX)
        return cric_error_new(err, -EINVAL, "'grpc.max_concurrent_streams' must be between 1 and %u", UINT32_MAX);
    if (cfg->streaming_port > 65535)
        return cric_error_new(err, -EINVAL, "'streaming.port': %" PRIu64 " is not a port", cfg->streaming_port);
    if (cfg->images_max_concurrent_downloads < 1)
        return cric_error_new(err, -EINVAL, "'images.max_concurrent_downloads' must be at least 1");
    return 0;
}

int cric_config_check(const struct cric_config *cfg, cric_error **err)
{
    return config_check(cfg, err);
}

static int config_apply_json(struct cric_config *cfg, const cric_json *doc, struct load_ctx *lc, cric_error **err)
{
    int r = want(lc, doc, CRIC_JSON_OBJECT, "(top level)", "an object", err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < doc->len; i++) {
        const char *name = doc->keys[i];
        const cric_json *v = doc->items[i];
        const struct key *k = key_find(name);
        if (k) {
            if ((r = key_from_json(lc, cfg, k, v, err)) < 0)
                return r;
            continue;
        }
        if (!is_section(name))
            return LOAD_ERR(lc, doc->key_lines[i], "unknown key '%s'", name);
        if ((r = want(lc, v, CRIC_JSON_OBJECT, name, "an object", err)) < 0)
            return r;
        for (size_t j = 0; j < v->len; j++) {
            _cleanup_free_ char *full = NULL;
            if (asprintf(&full, "%s.%s", name, v->keys[j]) < 0)
                return cric_error_new(err, -ENOMEM, "out of memory");
            k = key_find(full);
            if (!k)
                return LOAD_ERR(lc, v->key_lines[j], "unknown key '%s'", full);
            if ((r = key_from_json(lc, cfg, k, v->items[j], err)) < 0)
                return r;
        }
    }
    return 0;
}

/* The built-in defaults, as the JSON of conf/cricd.conf; parsing them through
 * the same path keeps one source of truth. */
static const char default_json[] =
    "{\n"
    "  \"listen\": \"/run/cricd/cricd.sock\",\n"
    "  \"root\": \"/var/lib/cricd\",\n"
    "  \"state\": \"/run/cricd\",\n"
    "  \"log_level\": \"info\",\n"
    "  \"cgroup_driver\": \"cgroupfs\",\n"
    "  \"grpc\": { \"max_recv_msg_size\": 16777216, \"max_send_msg_size\": 16777216,\n"
    "            \"max_concurrent_streams\": 1000 },\n"
    "  \"streaming\": { \"address\": \"127.0.0.1\", \"port\": 0, \"idle_timeout\": 14400 },\n"
    "  \"network\": { \"plugin_dirs\": [\"/opt/cni/bin\", \"/usr/lib/cni\"],\n"
    "               \"config_dir\": \"/etc/cni/net.d\", \"cache_dir\": \"\",\n"
    "               \"plugin_timeout\": 60 },\n"
    "  \"sandbox\": { \"cgroup_parent\": \"/kubepods\", \"shm_size\": 67108864 },\n"
    "  \"containers\": { \"log_root\": \"/var/log/cricd/containers\", \"log_size_max\": 0,\n"
    "                  \"stop_timeout\": 10 },\n"
    "  \"images\": { \"certs_dir\": \"/etc/cricd/certs.d\", \"auth_file\": \"\",\n"
    "              \"max_concurrent_downloads\": 3, \"pull_timeout\": 60,\n"
    "              \"pinned\": [], \"registries\": [] },\n"
    "  \"runtime\": { \"default\": \"runc\", \"handlers\": {\n"
    "      \"runc\": { \"path\": \"/usr/sbin/runc\", \"root\": \"/run/cricd/runc\" },\n"
    "      \"crun\": { \"path\": \"/usr/bin/crun\", \"root\": \"/run/cricd/crun\" } } }\n"
    "}\n";

static int config_apply_text(struct cric_config *cfg, const char *name, const char *text, size_t len,
                             cric_error **err)
{
    struct load_ctx lc = { .file = name };
    cric_json *doc = NULL;
    int r = cric_json_parse(text, len, true, &doc, err);
    if (r < 0)
        return cric_error_prefix(err, "%s", name);
    /* Apply to a copy so that a bad file leaves cfg as it was. */
    struct cric_config tmp = { 0 };
    r = cric_config_copy(&tmp, cfg, err);
    if (r >= 0)
        r = config_apply_json(&tmp, doc, &lc, err);
    cric_json_free(doc);
    if (r >= 0 && (r = config_check(&tmp, err)) < 0)
        cric_error_prefix(err, "%s", name);
    if (r < 0) {
        cric_config_free(&tmp);
        return r;
    }
    cric_config_free(cfg);
    *cfg = tmp;
    return 0;
}

int cric_config_defaults(struct cric_config *cfg, cric_error **err)
{
    struct cric_config empty = { 0 };
    int r;
    struct load_ctx lc = { .file = "(built-in defaults)" };
    cric_json *doc = NULL;
    if ((r = cric_json_parse(default_json, sizeof(default_json) - 1, true, &doc, err)) < 0)
        return r;
    r = config_apply_json(&empty, doc, &lc, err);
    cric_json_free(doc);
    if (r < 0) {
        cric_config_free(&empty);
        return r;
    }
    *cfg = empty;
    return 0;
}

int cric_config_load_file(struct cric_config *cfg, const char *path, cric_error **err)
{
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    int r = cric_read_file(path, CONFIG_MAX_SIZE, &text, &len, err);
    if (r < 0)
        return r;
    return config_apply_text(cfg, path, text, len, err);
}

int cric_config_load_string(struct cric_config *cfg, const char *name, const char *text, cric_error **err)
{
    return config_apply_text(cfg, name, text, strlen(text), err);
}

static int strv_split(const char *value, char ***out)
{
    /* Comma-separated, empty string = empty list. */
    size_t n = 1;
    for (const char *p = value; *p; p++)
        n += *p == ',';
    char **v = calloc(n + 1, sizeof(*v));
    if (!v)
        return -ENOMEM;
    size_t i = 0;
    const char *s = value;
    while (*s) {
        const char *e = strchrnul(s, ',');
        if (e > s && !(v[i++] = strndup(s, (size_t)(e - s)))) {
            strv_free(v);
            return -ENOMEM;
        }
        s = *e ? e + 1 : e;
    }
    *out = v;
    return 0;
}

int cric_config_set(struct cric_config *cfg, const char *key, const char *value, cric_error **err)
{
    const struct key *k = key_find(key);
    if (!k)
        return cric_error_new(err, -EINVAL, "unknown key '%s'", key);
    switch (k->type) {
    case K_STR: {
        if (k->check && k->check(key, value, err) < 0)
            return -EINVAL;
        char *s = strdup(value);
        if (!s)
            return cric_error_new(err, -ENOMEM, "out of memory");
        char **p = FIELD(cfg, k, char *);
        free(*p);
        *p = s;
        return 0;
    }
    case K_U64: {
        uint64_t u;
        if (parse_u64(value, &u) < 0)
            return cric_error_new(err, -EINVAL, "'%s': expected an unsigned integer, got '%s'", key, value);
        *FIELD(cfg, k, uint64_t) = u;
        return 0;
    }
    case K_STRV: {
        char **v = NULL;
        if (strv_split(value, &v) < 0)
            return cric_error_new(err, -ENOMEM, "out of memory");
        char ***p = FIELD(cfg, k, char **);
        strv_free(*p);
        *p = v;
        return 0;
    }
    case K_REGISTRIES:
    case K_HANDLERS:
        break;
    }
    return cric_error_new(err, -EINVAL, "'%s' can only be set in the config file", key);
}

/* ---- copying and printing ---- */

static int strv_dup(char *const *src, char ***out)
{
    size_t n = 0;
    while (src && src[n])
        n++;
    char **v = calloc(n + 1, sizeof(*v));
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (!(v[i] = strdup(src[i]))) {
            strv_free(v);
            return -ENOMEM;
        }
    *out = v;
    return 0;
}

static char *strdup_or_null(const char *s, bool *oom)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *oom = true;
    return d;
}

int cric_config_copy(struct cric_config *dst, const struct cric_config *src, cric_error **err)
{
    struct cric_config c = { 0 };
    bool oom = false;
    for (size_t i = 0; i < ARRAY_SIZE(keys) && !oom; i++) {
        const struct key *k = &keys[i];
        switch (k->type) {
        case K_STR:
            *FIELD(&c, k, char *) = strdup_or_null(*FIELD(src, k, char *const), &oom);
            break;
        case K_U64:
            *FIELD(&c, k, uint64_t) = *FIELD(src, k, const uint64_t);
            break;
        case K_STRV:
            if (*FIELD(src, k, char **const) && strv_dup(*FIELD(src, k, char **const), FIELD(&c, k, char **)) < 0)
                oom = true;
            break;
        case K_REGISTRIES:
            if (!src->images_registries_len)
                break;
            if (!(c.images_registries = calloc(src->images_registries_len, sizeof(*c.images_registries)))) {
                oom = true;
                break;
            }
            c.images_registries_len = src->images_registries_len;
            for (size_t j = 0; j < src->images_registries_len && !oom; j++) {
                c.images_registries[j].host = strdup_or_null(src->images_registries[j].host, &oom);
                c.images_registries[j].insecure = src->images_registries[j].insecure;
                if (strv_dup(src->images_registries[j].mirrors, &c.images_registries[j].mirrors) < 0)
                    oom = true;
            }
            break;
        case K_HANDLERS:
            if (!src->runtime_handlers_len)
                break;
            if (!(c.runtime_handlers = calloc(src->runtime_handlers_len, sizeof(*c.runtime_handlers)))) {
                oom = true;
                break;
            }
            c.runtime_handlers_len = src->runtime_handlers_len;
            for (size_t j = 0; j < src->runtime_handlers_len; j++) {
                c.runtime_handlers[j].name = strdup_or_null(src->runtime_handlers[j].name, &oom);
                c.runtime_handlers[j].path = strdup_or_null(src->runtime_handlers[j].path, &oom);
                c.runtime_handlers[j].root = strdup_or_null(src->runtime_handlers[j].root, &oom);
            }
            break;
        }
    }
    if (oom) {
        cric_config_free(&c);
        return cric_error_new(err, -ENOMEM, "out of memory");
    }
    *dst = c;
    return 0;
}

static void gen_str(yajl_gen g, const char *s)
{
    s = s ? s : "";
    yajl_gen_string(g, (const unsigned char *)s, strlen(s));
}

static void gen_strv(yajl_gen g, char *const *v)
{
    yajl_gen_array_open(g);
    for (; v && *v; v++)
        gen_str(g, *v);
    yajl_gen_array_close(g);
}

static void gen_key_value(yajl_gen g, const struct cric_config *cfg, const struct key *k)
{
    switch (k->type) {
    case K_STR:
        gen_str(g, *FIELD(cfg, k, char *const));
        break;
    case K_U64: {
        char num[32];
        int n = snprintf(num, sizeof(num), "%" PRIu64, *FIELD(cfg, k, const uint64_t));
        yajl_gen_number(g, num, (size_t)n);
        break;
    }
    case K_STRV:
        gen_strv(g, *FIELD(cfg, k, char **const));
        break;
    case K_REGISTRIES:
        yajl_gen_array_open(g);
        for (size_t j = 0; j < cfg->images_registries_len; j++) {
            const struct cric_registry_config *reg = &cfg->images_registries[j];
            yajl_gen_map_open(g);
            gen_str(g, "host");
            gen_str(g, reg->host);
            gen_str(g, "insecure");
            yajl_gen_bool(g, reg->insecure);
            gen_str(g, "mirrors");
            gen_strv(g, reg->mirrors);
            yajl_gen_map_close(g);
        }
        yajl_gen_array_close(g);
        break;
    case K_HANDLERS:
        yajl_gen_map_open(g);
        for (size_t j = 0; j < cfg->runtime_handlers_len; j++) {
            const struct cric_runtime_handler *h = &cfg->runtime_handlers[j];
            gen_str(g, h->name);
            yajl_gen_map_open(g);
            gen_str(g, "path");
            gen_str(g, h->path);
            gen_str(g, "root");
            gen_str(g, h->root);
            yajl_gen_map_close(g);
        }
        yajl_gen_map_close(g);
        break;
    }
}

static int gen_finish(yajl_gen g, char **out, cric_error **err)
{
    const unsigned char *buf;
    size_t len;
    int r = 0;
    if (yajl_gen_get_buf(g, &buf, &len) != yajl_gen_status_ok)
        r = cric_error_new(err, -EINVAL, "cannot render the configuration as JSON");
    else if (!(*out = strndup((const char *)buf, len)))
        r = cric_error_new(err, -ENOMEM, "out of memory");
    else
        cric_json_tidy(*out);
    yajl_gen_free(g);
    return r;
}

int cric_config_to_json(const struct cric_config *cfg, char **out, cric_error **err)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    if (!g)
        return cric_error_new(err, -ENOMEM, "out of memory");
    yajl_gen_config(g, yajl_gen_beautify, 1);
    yajl_gen_config(g, yajl_gen_indent_string, "  ");
    yajl_gen_map_open(g);
    const char *section = NULL;
    size_t section_len = 0;
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
        const struct key *k = &keys[i];
        const char *dot = strchr(k->name, '.');
        size_t sl = dot ? (size_t)(dot - k->name) : 0;
        if (section && (sl != section_len || strncmp(section, k->name, sl) != 0)) {
            yajl_gen_map_close(g);
            section = NULL;
        }
        if (dot && !section) {
            yajl_gen_string(g, (const unsigned char *)k->name, sl);
            yajl_gen_map_open(g);
            section = k->name;
            section_len = sl;
        }
        gen_str(g, dot ? dot + 1 : k->name);
        gen_key_value(g, cfg, k);
    }
    if (section)
        yajl_gen_map_close(g);
    yajl_gen_map_close(g);
    return gen_finish(g, out, err);
}

static int key_to_json(const struct cric_config *cfg, const struct key *k, char **out, cric_error **err)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    if (!g)
        return cric_error_new(err, -ENOMEM, "out of memory");
    /* A bare value (not an object) is only allowed at the top with this. */
    yajl_gen_config(g, yajl_gen_validate_utf8, 0);
    yajl_gen_array_open(g);
    gen_key_value(g, cfg, k);
    yajl_gen_array_close(g);
    return gen_finish(g, out, err);
}

int cric_config_diff(const struct cric_config *a, const struct cric_config *b, char **out, cric_error **err)
{
    char *list = NULL;
    size_t len = 0;
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
        _cleanup_free_ char *ja = NULL, *jb = NULL;
        int r;
        if ((r = key_to_json(a, &keys[i], &ja, err)) < 0 || (r = key_to_json(b, &keys[i], &jb, err)) < 0) {
            free(list);
            return r;
        }
        if (strcmp(ja, jb) == 0)
            continue;
        size_t kl = strlen(keys[i].name);
        char *n = realloc(list, len + kl + 3);
        if (!n) {
            free(list);
            return cric_error_new(err, -ENOMEM, "out of memory");
        }
        list = n;
        if (len) {
            memcpy(list + len, ", ", 2);
            len += 2;
        }
        memcpy(list + len, keys[i].name, kl + 1);
        len += kl;
    }
    *out = list;
    return 0;
}

const struct cric_runtime_handler *cric_config_handler(const struct cric_config *cfg, const char *name)
{
    if (!name || !name[0])
        name = cfg->runtime_default;
    if (!name)
        return NULL;
    for (size_t i = 0; i < cfg->runtime_handlers_len; i++)
        if (strcmp(cfg->runtime_handlers[i].name, name) == 0)
            return &cfg->runtime_handlers[i];
    return NULL;
}
