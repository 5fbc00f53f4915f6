/* Network configuration files: .conflist, or a single plugin .conf/.json. */
#include "config.h"
#include "cni/cni.h"
#include "util/yj.h"
#include "util/cleanup.h"
#include "util/fs.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define CONF_MAX (1024 * 1024)

void cric_cni_netconf_free(struct cric_cni_netconf *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_plugins; i++) {
        free(c->plugins[i].type);
        free(c->plugins[i].json);
    }
    free(c->plugins);
    free(c->name);
    free(c->cni_version);
    free(c->file);
    free(c);
}

static int plugin_from(const char *file, size_t idx, yajl_val obj, struct cric_cni_plugin_conf *p, cric_error **err)
{
    if (!obj || obj->type != yajl_t_object)
        return cric_error_new(err, -EINVAL, "CNI config '%s': plugin %zu is not an object", file, idx);
    const char *type = cric_yj_get_str(obj, "type");
    if (!type || !*type)
        return cric_error_new(err, -EINVAL, "CNI config '%s': plugin %zu has no \"type\"", file, idx);
    if (strchr(type, '/') || strcmp(type, "..") == 0 || strcmp(type, ".") == 0)
        return cric_error_new(err, -EINVAL, "CNI config '%s': plugin type '%s' is not a plain name", file, type);
    yajl_val caps = cric_yj_get(obj, "capabilities");
    yajl_val pm = cric_yj_get(caps, "portMappings"), ipr = cric_yj_get(caps, "ipRanges");
    p->cap_port_mappings = pm && pm->type == yajl_t_true;
    p->cap_ip_ranges = ipr && ipr->type == yajl_t_true;
    yajl_gen g = yajl_gen_alloc(NULL);
    if (!g)
        return cric_error_sys(err, -ENOMEM, "CNI config '%s'", file);
    int r = cric_yj_gen_value(g, obj);
    p->json = r == 0 ? cric_yj_gen_take(g, NULL) : NULL;
    yajl_gen_free(g);
    p->type = strdup(type);
    if (!p->json || !p->type)
        return cric_error_sys(err, -ENOMEM, "CNI config '%s'", file);
    return 0;
}

bool cric_cni_version_has_check(const char *v)
{
    unsigned major = 0, minor = 0;
    if (!v || sscanf(v, "%u.%u", &major, &minor) != 2)
        return false;
    return major > 0 || minor >= 4;
}

int cric_cni_netconf_parse(const char *file, const char *text, struct cric_cni_netconf **out, cric_error **err)
{
    char ebuf[256];
    yajl_val root = cric_yj_parse(text, ebuf, sizeof(ebuf));
    if (!root)
        return cric_error_new(err, -EINVAL, "CNI config '%s': invalid JSON: %s", file, ebuf);
    int r = 0;
    struct cric_cni_netconf *c = calloc(1, sizeof(*c));
    if (!c) {
        r = cric_error_sys(err, -ENOMEM, "CNI config '%s'", file);
        goto out;
    }
    if (root->type != yajl_t_object) {
        r = cric_error_new(err, -EINVAL, "CNI config '%s': not a JSON object", file);
        goto out;
    }
    const char *name = cric_yj_get_str(root, "name");
    const char *ver = cric_yj_get_str(root, "cniVersion");
    if (!name || !*name) {
        r = cric_error_new(err, -EINVAL, "CNI config '%s': missing \"name\"", file);
        goto out;
    }
    if (!ver || !*ver) {
        r = cric_error_new(err, -EINVAL, "CNI config '%s': missing \"cniVersion\"", file);
        goto out;
    }
    c->name = strdup(name);
    c->cni_version = strdup(ver);
    c->file = strdup(file);
    if (!c->name || !c->cni_version || !c->file) {
        r = cric_error_sys(err, -ENOMEM, "CNI config '%s'", file);
        goto out;
    }
    /* A list-level boolean (CNI spec); libcni takes "true"/"false" strings too. */
    yajl_val dc = cric_yj_get(root, "disableCheck");
    c->disable_check = dc && (dc->type == yajl_t_true || (YAJL_IS_STRING(dc) && strcasecmp(dc->u.string, "true") == 0));
    yajl_val plugins = cric_yj_get(root, "plugins");
    if (plugins) {
        if (plugins->type != yajl_t_array || plugins->u.array.len == 0) {
            r = cric_error_new(err, -EINVAL, "CNI config '%s': \"plugins\" must be a non-empty array", file);
            goto out;
        }
        c->plugins = calloc(plugins->u.array.len, sizeof(*c->plugins));
        if (!c->plugins) {
            r = cric_error_sys(err, -ENOMEM, "CNI config '%s'", file);
            goto out;
        }
        for (size_t i = 0; i < plugins->u.array.len; i++) {
            r = plugin_from(file, i, plugins->u.array.values[i], &c->plugins[i], err);
            c->n_plugins = i + 1;
            if (r < 0)
                goto out;
        }
    } else {
        c->plugins = calloc(1, sizeof(*c->plugins));
        if (!c->plugins) {
            r = cric_error_sys(err, -ENOMEM, "CNI config '%s'", file);
            goto out;
        }
        c->n_plugins = 1;
        r = plugin_from(file, 0, root, &c->plugins[0], err);
        if (r < 0)
            goto out;
    }
    *out = c;
    c = NULL;
out:
    cric_cni_netconf_free(c);
    yajl_tree_free(root);
    return r;
}

static bool has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n > m && strcmp(s + n - m, suf) == 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int cric_cni_netconf_load_dir(const char *dir, struct cric_cni_netconf **out, cric_error **err)
{
    _cleanup_closedir_ DIR *d = opendir(dir);
    if (!d)
        return cric_error_sys(err, -errno, "CNI config directory '%s'", dir);
    char **names = NULL;
    size_t n = 0;
    int r = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        if (!has_suffix(de->d_name, ".conflist") && !has_suffix(de->d_name, ".conf") &&
            !has_suffix(de->d_name, ".json"))
            continue;
        char **nn = realloc(names, (n + 1) * sizeof(*names));
        if (!nn) {
            r = cric_error_sys(err, -ENOMEM, "CNI config directory '%s'", dir);
            goto out;
        }
        names = nn;
        if (!(names[n] = strdup(de->d_name))) {
            r = cric_error_sys(err, -ENOMEM, "CNI config directory '%s'", dir);
            goto out;
        }
        n++;
    }
    if (n == 0) {
        r = cric_error_new(err, -ENOENT, "no CNI network config (*.conflist, *.conf, *.json) in '%s'", dir);
        goto out;
    }
    qsort(names, n, sizeof(*names), cmp_str);
    /* A broken file is skipped so that one bad drop-in does not take the node
     * off the network; its problem is still reported when nothing is usable. */
    char *problems = NULL;
    size_t plen = 0;
    FILE *pf = open_memstream(&problems, &plen);
    size_t nprob = 0;
    for (size_t i = 0; i < n && r == 0; i++) {
        _cleanup_free_ char *path = NULL, *text = NULL;
        _cleanup_error_ cric_error *e = NULL;
        if (asprintf(&path, "%s/%s", dir, names[i]) < 0) {
            r = -ENOMEM;
            break;
        }
        struct cric_cni_netconf *c = NULL;
        if (cric_read_file(path, CONF_MAX, &text, NULL, &e) == 0 && cric_cni_netconf_parse(path, text, &c, &e) == 0) {
            *out = c;
            r = 1;
            break;
        }
        if (pf)
            fprintf(pf, "%s%s", nprob++ ? "; " : "", e ? e->msg : path);
    }
    if (pf)
        fclose(pf);
    if (r == 1)
        r = 0;
    else if (r == 0)
        r = cric_error_new(err, -EINVAL, "no usable CNI network config in '%s': %s", dir, problems ? problems : "");
    else
        r = cric_error_sys(err, r, "CNI config directory '%s'", dir);
    free(problems);
out:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return r;
}

int cric_cni_find_plugin(const char *const *dirs, const char *type, char **out, cric_error **err)
{
    for (size_t i = 0; dirs && dirs[i]; i++) {
        char *p = NULL;
        if (asprintf(&p, "%s/%s", dirs[i], type) < 0)
            return cric_error_sys(err, -ENOMEM, "CNI plugin '%s'", type);
        if (access(p, X_OK) == 0) {
            *out = p;
            return 0;
        }
        free(p);
    }
    char buf[512] = "";
    size_t used = 0;
    for (size_t i = 0; dirs && dirs[i] && used < sizeof(buf); i++)
        used += (size_t)snprintf(buf + used, sizeof(buf) - used, "%s%s", i ? ", " : "", dirs[i]);
    return cric_error_new(err, -ENOENT, "CNI plugin '%s' not found in %s", type, buf[0] ? buf : "(no plugin dirs)");
}

bool cric_cni_ready(const char *config_dir, const char *const *plugin_dirs, char **reason)
{
    struct cric_cni_netconf *c = NULL;
    _cleanup_error_ cric_error *e = NULL;
    if (!config_dir || cric_cni_netconf_load_dir(config_dir ? config_dir : "", &c, &e) < 0) {
        if (reason)
            *reason = strdup(e ? e->msg : "no CNI config directory configured");
        return false;
    }
    bool ok = true;
    for (size_t i = 0; i < c->n_plugins && ok; i++) {
        _cleanup_free_ char *p = NULL;
        if (cric_cni_find_plugin(plugin_dirs, c->plugins[i].type, &p, &e) < 0) {
            ok = false;
            if (reason && asprintf(reason, "network '%s' (%s): %s", c->name, c->file, e->msg) < 0)
                *reason = NULL;
        }
    }
    cric_cni_netconf_free(c);
    return ok;
}
