/* Running a network config's plugin list for one sandbox: ADD with
 * prevResult chaining, DEL in reverse (best effort), CHECK. */
#include "config.h"
#include "cni/cni.h"
#include "util/yj.h"
#include "util/cleanup.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cric_cni_op_state {
    uv_loop_t *loop;
    enum cric_cni_op op;
    char *net_name, *cni_version;
    struct cric_cni_plugin_conf *plugins;
    size_t n_plugins;
    size_t step;                 /* plugins done so far */
    char **env;                  /* NULL-terminated */
    char **plugin_dirs;
    struct cric_cni_port *ports;
    size_t n_ports;
    char *pod_cidr;
    uint64_t timeout_ms;
    char *prev;                  /* prevResult JSON for the next plugin */
    struct cric_cni_result *result;
    cric_error *first_err;
    uint64_t plugin_ns;
    cric_cni_done_fn done;
    void *data;
};

static const char *op_name(enum cric_cni_op op)
{
    return op == CRIC_CNI_ADD ? "ADD" : op == CRIC_CNI_DEL ? "DEL" : "CHECK";
}

static void strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

static void state_free(struct cric_cni_op_state *s)
{
    free(s->net_name);
    free(s->cni_version);
    for (size_t i = 0; i < s->n_plugins; i++) {
        free(s->plugins[i].type);
        free(s->plugins[i].json);
    }
    free(s->plugins);
    strv_free(s->env);
    strv_free(s->plugin_dirs);
    for (size_t i = 0; i < s->n_ports; i++) {
        free((char *)s->ports[i].protocol);
        free((char *)s->ports[i].host_ip);
    }
    free(s->ports);
    free(s->pod_cidr);
    free(s->prev);
    cric_cni_result_free(s->result);
    cric_error_free(s->first_err);
    free(s);
}

/* prevResult is defined from 0.3.0 on; older plugins never see it. */
static bool version_has_prev(const char *v)
{
    return !(strncmp(v, "0.1.", 4) == 0 || strncmp(v, "0.2.", 4) == 0);
}

static int build_stdin(struct cric_cni_op_state *s, const struct cric_cni_plugin_conf *p, char **out, size_t *len)
{
    yajl_val obj = cric_yj_parse(p->json, NULL, 0);
    if (!obj)
        return -EINVAL;
    yajl_val prev = NULL;
    if (s->prev && version_has_prev(s->cni_version))
        prev = cric_yj_parse(s->prev, NULL, 0);
    yajl_gen g = yajl_gen_alloc(NULL);
    int r = -ENOMEM;
    if (!g)
        goto out;
    yajl_gen_map_open(g);
    cric_yj_gen_str(g, "cniVersion");
    cric_yj_gen_str(g, s->cni_version);
    cric_yj_gen_str(g, "name");
    cric_yj_gen_str(g, s->net_name);
    for (size_t i = 0; i < obj->u.object.len; i++) {
        const char *k = obj->u.object.keys[i];
        if (!strcmp(k, "cniVersion") || !strcmp(k, "name") || !strcmp(k, "prevResult") || !strcmp(k, "runtimeConfig"))
            continue;
        cric_yj_gen_str(g, k);
        cric_yj_gen_value(g, obj->u.object.values[i]);
    }
    if (prev) {
        cric_yj_gen_str(g, "prevResult");
        cric_yj_gen_value(g, prev);
    }
    bool ports = p->cap_port_mappings && s->n_ports;
    bool ranges = p->cap_ip_ranges && s->pod_cidr;
    if (ports || ranges) {
        cric_yj_gen_str(g, "runtimeConfig");
        yajl_gen_map_open(g);
        if (ports) {
            cric_yj_gen_str(g, "portMappings");
            yajl_gen_array_open(g);
            for (size_t i = 0; i < s->n_ports; i++) {
                yajl_gen_map_open(g);
                cric_yj_gen_str(g, "hostPort");
                yajl_gen_integer(g, s->ports[i].host_port);
                cric_yj_gen_str(g, "containerPort");
                yajl_gen_integer(g, s->ports[i].container_port);
                cric_yj_gen_str(g, "protocol");
                cric_yj_gen_str(g, s->ports[i].protocol);
                if (s->ports[i].host_ip && *s->ports[i].host_ip) {
                    cric_yj_gen_str(g, "hostIP");
                    cric_yj_gen_str(g, s->ports[i].host_ip);
                }
                yajl_gen_map_close(g);
            }
            yajl_gen_array_close(g);
        }
        if (ranges) {
            cric_yj_gen_str(g, "ipRanges");
            yajl_gen_array_open(g);
            yajl_gen_array_open(g);
            yajl_gen_map_open(g);
            cric_yj_gen_str(g, "subnet");
            cric_yj_gen_str(g, s->pod_cidr);
            yajl_gen_map_close(g);
            yajl_gen_array_close(g);
            yajl_gen_array_close(g);
        }
        yajl_gen_map_close(g);
    }
    if (yajl_gen_map_close(g) != yajl_gen_status_ok)
        r = -EINVAL;
    else
        r = (*out = cric_yj_gen_take(g, len)) ? 0 : -ENOMEM;
out:
    if (g)
        yajl_gen_free(g);
    yajl_tree_free(obj);
    yajl_tree_free(prev);
    return r;
}

static void next_step(struct cric_cni_op_state *s);

static void complete(struct cric_cni_op_state *s)
{
    int rc = s->first_err ? s->first_err->code : 0;
    struct cric_cni_result *res = NULL;
    if (rc == 0 && s->op == CRIC_CNI_ADD)
        res = TAKE_PTR(s->result);
    s->done(s->data, rc, res, s->first_err, s->plugin_ns);
    state_free(s);
}

static size_t plugin_index(const struct cric_cni_op_state *s)
{
    return s->op == CRIC_CNI_DEL ? s->n_plugins - 1 - s->step : s->step;
}

/* A short, printable excerpt of untrusted output for error messages. */
static void excerpt(const char *in, char *buf, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; in && in[i] && j + 1 < n && i < 200; i++)
        buf[j++] = (in[i] >= 0x20 && in[i] < 0x7f) ? in[i] : ' ';
    buf[j] = '\0';
    while (j > 0 && buf[j - 1] == ' ')
        buf[--j] = '\0';
}

static void on_plugin_done(void *data, int rc, const struct cric_child_result *res, const cric_error *cerr)
{
    struct cric_cni_op_state *s = data;
    const struct cric_cni_plugin_conf *p = &s->plugins[plugin_index(s)];
    cric_error *e = NULL;
    s->plugin_ns += res->elapsed_ns;
    if (rc < 0) {
        cric_error_new(&e, rc, "CNI plugin '%s' %s on network '%s': %s", p->type, op_name(s->op), s->net_name,
                       cerr ? cerr->msg : "failed");
    } else if (res->timed_out) {
        cric_error_new(&e, -ETIMEDOUT, "CNI plugin '%s' %s on network '%s' timed out after %llu ms (killed)",
                       p->type, op_name(s->op), s->net_name, (unsigned long long)s->timeout_ms);
    } else if (res->term_signal || res->exit_status != 0) {
        _cleanup_free_ char *m = cric_cni_error_message(res->out);
        char ex[256];
        excerpt(res->err_len ? res->err : res->out, ex, sizeof(ex));
        if (res->term_signal)
            cric_error_new(&e, -EIO, "CNI plugin '%s' %s on network '%s' killed by signal %d", p->type,
                           op_name(s->op), s->net_name, res->term_signal);
        else
            cric_error_new(&e, -EIO, "CNI plugin '%s' %s on network '%s' failed (exit %lld): %s", p->type,
                           op_name(s->op), s->net_name, (long long)res->exit_status,
                           m ? m : ex[0] ? ex : "no error message");
    } else if (s->op == CRIC_CNI_ADD) {
        struct cric_cni_result *r = NULL;
        if (cric_cni_result_parse(res->out, &r, &e) < 0) {
            cric_error_prefix(&e, "CNI plugin '%s' ADD on network '%s' printed an unusable result", p->type,
                              s->net_name);
        } else {
            cric_cni_result_free(s->result);
            s->result = r;
            free(s->prev);
            s->prev = strdup(r->json);
        }
    }
    if (e) {
        if (!s->first_err)
            s->first_err = e;
        else
            cric_error_free(e);
        if (s->op != CRIC_CNI_DEL) {
            complete(s);
            return;
        }
    }
    s->step++;
    next_step(s);
}

static void next_step(struct cric_cni_op_state *s)
{
    while (s->step < s->n_plugins) {
        const struct cric_cni_plugin_conf *p = &s->plugins[plugin_index(s)];
        cric_error *e = NULL;
        _cleanup_free_ char *path = NULL, *input = NULL;
        size_t len = 0;
        int r = cric_cni_find_plugin((const char *const *)s->plugin_dirs, p->type, &path, &e);
        if (r == 0 && build_stdin(s, p, &input, &len) < 0)
            r = cric_error_new(&e, -ENOMEM, "CNI plugin '%s': cannot build its config", p->type);
        if (r == 0) {
            char *argv[] = { p->type, NULL };
            struct cric_child_opts o = {
                .file = path, .argv = argv, .env = s->env, .input = input, .input_len = len,
                .timeout_ms = s->timeout_ms,
            };
            /* CNI_COMMAND is the first env entry, see cric_cni_run. */
            r = cric_child_run(s->loop, &o, on_plugin_done, s, NULL, &e);
            if (r == 0)
                return;
        }
        if (!s->first_err)
            s->first_err = e;
        else
            cric_error_free(e);
        if (s->op != CRIC_CNI_DEL)
            break;
        s->step++;
    }
    complete(s);
}

static char *join_dirs(const char *const *dirs)
{
    size_t n = 1;
    for (size_t i = 0; dirs && dirs[i]; i++)
        n += strlen(dirs[i]) + 1;
    char *s = calloc(1, n);
    for (size_t i = 0; s && dirs && dirs[i]; i++) {
        if (i)
            strcat(s, ":");
        strcat(s, dirs[i]);
    }
    return s;
}

int cric_cni_run(uv_loop_t *loop, const struct cric_cni_netconf *conf, enum cric_cni_op op,
                 const struct cric_cni_runtime *rt, const char *prev_result,
                 cric_cni_done_fn done, void *data, cric_error **err)
{
    struct cric_cni_op_state *s = calloc(1, sizeof(*s));
    if (!s)
        return cric_error_sys(err, -ENOMEM, "CNI %s", op_name(op));
    s->loop = loop;
    s->op = op;
    s->done = done;
    s->data = data;
    s->timeout_ms = rt->timeout_ms ? rt->timeout_ms : 60000;
    bool oom = !(s->net_name = strdup(conf->name)) || !(s->cni_version = strdup(conf->cni_version));
    s->plugins = calloc(conf->n_plugins, sizeof(*s->plugins));
    oom |= !s->plugins;
    for (size_t i = 0; !oom && i < conf->n_plugins; i++) {
        s->plugins[i] = conf->plugins[i];
        s->plugins[i].type = strdup(conf->plugins[i].type);
        s->plugins[i].json = strdup(conf->plugins[i].json);
        s->n_plugins = i + 1;
        oom |= !s->plugins[i].type || !s->plugins[i].json;
    }
    size_t nd = 0;
    while (rt->plugin_dirs && rt->plugin_dirs[nd])
        nd++;
    s->plugin_dirs = calloc(nd + 1, sizeof(char *));
    oom |= !s->plugin_dirs;
    for (size_t i = 0; !oom && i < nd; i++)
        oom |= !(s->plugin_dirs[i] = strdup(rt->plugin_dirs[i]));
    if (rt->n_ports) {
        s->ports = calloc(rt->n_ports, sizeof(*s->ports));
        oom |= !s->ports;
        for (size_t i = 0; !oom && i < rt->n_ports; i++) {
            s->ports[i] = rt->ports[i];
            s->ports[i].protocol = strdup(rt->ports[i].protocol ? rt->ports[i].protocol : "tcp");
            s->ports[i].host_ip = strdup(rt->ports[i].host_ip ? rt->ports[i].host_ip : "");
            s->n_ports = i + 1;
            oom |= !s->ports[i].protocol || !s->ports[i].host_ip;
        }
    }
    if (rt->pod_cidr && *rt->pod_cidr)
        oom |= !(s->pod_cidr = strdup(rt->pod_cidr));
    if (prev_result)
        oom |= !(s->prev = strdup(prev_result));
    _cleanup_free_ char *cni_path = join_dirs(rt->plugin_dirs);
    const char *path_env = getenv("PATH");
    s->env = calloc(9, sizeof(char *));
    oom |= !s->env || !cni_path;
    if (!oom) {
        int k = 0;
        oom |= asprintf(&s->env[k++], "CNI_COMMAND=%s", op_name(op)) < 0;
        oom |= asprintf(&s->env[k++], "CNI_CONTAINERID=%s", rt->container_id) < 0;
        oom |= asprintf(&s->env[k++], "CNI_NETNS=%s", rt->netns ? rt->netns : "") < 0;
        oom |= asprintf(&s->env[k++], "CNI_IFNAME=%s", rt->ifname ? rt->ifname : "eth0") < 0;
        oom |= asprintf(&s->env[k++], "CNI_ARGS=%s", rt->args ? rt->args : "") < 0;
        oom |= asprintf(&s->env[k++], "CNI_PATH=%s", cni_path) < 0;
        /* Plugins run iptables, ip, etc. from PATH. */
        oom |= asprintf(&s->env[k++], "PATH=%s", path_env && *path_env ? path_env : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin") < 0;
    }
    if (oom) {
        state_free(s);
        return cric_error_sys(err, -ENOMEM, "CNI %s", op_name(op));
    }
    if (op == CRIC_CNI_CHECK && !cric_cni_version_has_check(s->cni_version)) {
        /* CHECK exists from 0.4.0 on: nothing to do for older networks. */
        s->step = s->n_plugins;
    }
    next_step(s);
    return 0;
}
