/* Sandbox records: <root>/sandboxes/<id>/sandbox.json, written atomically. */
#include "config.h"
#include "sandbox/priv.h"
#include "cni/cni.h"
#include "util/yj.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/fsync_async.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RECORD_MAX (4 * 1024 * 1024)

struct cric_sandbox *sb__alloc(void)
{
    struct cric_sandbox *sb = calloc(1, sizeof(*sb));
    if (!sb)
        return NULL;
    sb->priv = calloc(1, sizeof(*sb->priv));
    if (!sb->priv) {
        free(sb);
        return NULL;
    }
    return sb;
}

static void strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

void sb__free(struct cric_sandbox *sb)
{
    if (!sb)
        return;
    free(sb->name);
    free(sb->uid);
    free(sb->namespace_);
    free(sb->hostname);
    free(sb->runtime_handler);
    free(sb->log_directory);
    free(sb->cgroup_parent);
    free(sb->netns_path);
    free(sb->ipcns_path);
    free(sb->utsns_path);
    free(sb->pidns_path);
    free(sb->dir);
    free(sb->hostname_path);
    free(sb->hosts_path);
    free(sb->resolv_path);
    free(sb->shm_path);
    strv_free(sb->ips);
    free(sb->priv ? sb->priv->net_check_msg : NULL);
    if (sb->config)
        runtime__v1__pod_sandbox_config__free_unpacked(sb->config, NULL);
    if (sb->priv) {
        free(sb->priv->ns_dir);
        free(sb->priv->cni_conf_file);
        free(sb->priv->cni_conf_text);
        cric_cni_netconf_free(sb->priv->cni_conf_parsed);
        free(sb->priv->cni_result);
        strv_free(sb->priv->cgroups_created);
        free(sb->priv->config_pb);
        free(sb->priv);
    }
    free(sb);
}

int sb__set_config(struct cric_sandbox *sb, const uint8_t *pb, size_t len, cric_error **err)
{
    Runtime__V1__PodSandboxConfig *c = runtime__v1__pod_sandbox_config__unpack(NULL, len, pb);
    if (!c)
        return cric_error_new(err, -EINVAL, "sandbox %s: stored PodSandboxConfig does not decode", sb->id);
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy) {
        runtime__v1__pod_sandbox_config__free_unpacked(c, NULL);
        return cric_error_sys(err, -ENOMEM, "sandbox %s", sb->id);
    }
    memcpy(copy, pb, len);
    if (sb->config)
        runtime__v1__pod_sandbox_config__free_unpacked(sb->config, NULL);
    free(sb->priv->config_pb);
    sb->config = c;
    sb->priv->config_pb = copy;
    sb->priv->config_pb_len = len;
    return 0;
}

int sb__record_path(struct cric_sandbox_service *svc, const char *id, char **out)
{
    return asprintf(out, "%s/%s/sandbox.json", svc->sb_dir, id) < 0 ? -ENOMEM : 0;
}

static int record_text(struct cric_sandbox *sb, char **out, cric_error **err)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    if (!g)
        return cric_error_sys(err, -ENOMEM, "save sandbox %s", sb->id);
    yajl_gen_map_open(g);
    cric_yj_kv_int(g, "version", 1);
    cric_yj_kv_str(g, "id", sb->id);
    cric_yj_kv_int(g, "state", sb->state);
    cric_yj_kv_int(g, "created_at", sb->created_at);
    cric_yj_kv_str(g, "name", sb->name);
    cric_yj_kv_str(g, "uid", sb->uid);
    cric_yj_kv_str(g, "namespace", sb->namespace_);
    cric_yj_kv_int(g, "attempt", sb->attempt);
    cric_yj_kv_str(g, "hostname", sb->hostname);
    cric_yj_kv_str(g, "runtime_handler", sb->runtime_handler);
    cric_yj_kv_str(g, "log_directory", sb->log_directory);
    cric_yj_kv_str(g, "cgroup_parent", sb->cgroup_parent);
    cric_yj_kv_int(g, "network_mode", sb->network_mode);
    cric_yj_kv_int(g, "pid_mode", sb->pid_mode);
    cric_yj_kv_int(g, "ipc_mode", sb->ipc_mode);
    cric_yj_kv_str(g, "netns", sb->netns_path);
    cric_yj_kv_str(g, "ipcns", sb->ipcns_path);
    cric_yj_kv_str(g, "utsns", sb->utsns_path);
    cric_yj_kv_str(g, "ns_dir", sb->priv->ns_dir);
    cric_yj_kv_int(g, "pause_pid", sb->pause_pid);
    cric_yj_kv_int(g, "pause_start", sb->priv->pause_start);
    cric_yj_kv_str(g, "shm", sb->shm_path);
    cric_yj_gen_str(g, "shm_mounted");
    yajl_gen_bool(g, sb->priv->shm_mounted);
    cric_yj_gen_str(g, "network_attached");
    yajl_gen_bool(g, sb->priv->network_attached);
    cric_yj_kv_str(g, "cni_conf_file", sb->priv->cni_conf_file);
    cric_yj_kv_str(g, "cni_conf", sb->priv->cni_conf_text);
    cric_yj_kv_str(g, "cni_result", sb->priv->cni_result);
    cric_yj_kv_int(g, "cni_add_ns", (long long)sb->cni_add_ns);
    cric_yj_kv_int(g, "cni_del_ns", (long long)sb->cni_del_ns);
    cric_yj_kv_strv(g, "ips", sb->ips);
    cric_yj_kv_strv(g, "cgroups_created", sb->priv->cgroups_created);
    /* The whole request config, protobuf-encoded as hex: nothing is lost. */
    _cleanup_free_ char *hex = malloc(sb->priv->config_pb_len * 2 + 1);
    if (hex) {
        for (size_t i = 0; i < sb->priv->config_pb_len; i++)
            sprintf(hex + 2 * i, "%02x", sb->priv->config_pb[i]);
        hex[sb->priv->config_pb_len * 2] = '\0';
    }
    cric_yj_kv_str(g, "config_pb", hex ? hex : "");
    yajl_gen_map_close(g);
    size_t len = 0;
    _cleanup_free_ char *text = cric_yj_gen_take(g, &len);
    yajl_gen_free(g);
    if (!text || !hex)
        return cric_error_sys(err, -ENOMEM, "save sandbox %s", sb->id);
    *out = TAKE_PTR(text);
    return 0;
}

int sb__record_save(struct cric_sandbox_service *svc, struct cric_sandbox *sb, cric_error **err)
{
    _cleanup_free_ char *text = NULL, *path = NULL, *old = NULL;
    int r = record_text(sb, &text, err);
    if (r < 0)
        return r;
    if (sb__record_path(svc, sb->id, &path) < 0 || asprintf(&old, "%s" SB_OLD_INFIX "%lu", path, ++svc->old_seq) < 0)
        return cric_error_sys(err, -ENOMEM, "save sandbox %s", sb->id);
    /* rename(2) over a record whose blocks are on disk frees them inside
     * the call (ext4: 0.5-4 ms here, the largest part of Run's and Stop's
     * own time).  A second link keeps the old version alive through the
     * rename; it is dropped on the thread pool.  A crash leaves the extra
     * link, which the next start deletes (sb__record_tidy). */
    bool linked = link(path, old) == 0;
    r = cric_write_file_replace(path, text, strlen(text), 0600, err);
    if (linked)
        sb__unlink_async(svc, TAKE_PTR(old));
    return r;
}

struct save_work {
    uv_work_t req;
    struct cric_sandbox_service *svc;
    char *path, *text;
    int rc;
    cric_error *err;
    sb__sync_fn done;
    void *data;
};

static void save_work_run(uv_work_t *req)
{
    struct save_work *w = req->data;
    w->rc = cric_write_file_replace(w->path, w->text, strlen(w->text), 0600, &w->err);
}

static void save_work_done(uv_work_t *req, int status)
{
    struct save_work *w = req->data;
    struct cric_sandbox_service *svc = w->svc;
    int rc = status < 0 ? status : w->rc;
    cric_error *e = w->err;
    if (status < 0 && !e)
        cric_error_new(&e, status, "save '%s': cancelled", w->path);
    sb__sync_fn done = w->done;
    void *data = w->data;
    free(w->path);
    free(w->text);
    free(w);
    svc->inflight--;
    done(data, rc, e);
}

int sb__record_save_async(struct cric_sandbox_service *svc, struct cric_sandbox *sb, sb__sync_fn done, void *data,
                          cric_error **err)
{
    struct save_work *w = calloc(1, sizeof(*w));
    if (!w)
        return cric_error_sys(err, -ENOMEM, "save sandbox %s", sb->id);
    int r = record_text(sb, &w->text, err);
    if (r == 0 && sb__record_path(svc, sb->id, &w->path) < 0)
        r = cric_error_sys(err, -ENOMEM, "save sandbox %s", sb->id);
    w->svc = svc;
    w->done = done;
    w->data = data;
    w->req.data = w;
    if (r == 0 && (r = uv_queue_work(svc->loop, &w->req, save_work_run, save_work_done)) < 0)
        cric_error_new(err, r, "save sandbox %s: %s", sb->id, uv_strerror(r));
    if (r < 0) {
        free(w->path);
        free(w->text);
        free(w);
        return r;
    }
    svc->inflight++;
    return 0;
}

void sb__record_tidy(const char *dir)
{
    _cleanup_closedir_ DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (strncmp(de->d_name, "sandbox.json" SB_OLD_INFIX, sizeof("sandbox.json" SB_OLD_INFIX) - 1) == 0)
            unlinkat(dirfd(d), de->d_name, 0);
}

struct sync_wait {
    struct cric_sandbox_service *svc;
    sb__sync_fn done;
    void *data;
};

static void sync_done(void *data, int rc, cric_error *e)
{
    struct sync_wait *w = data;
    struct cric_sandbox_service *svc = w->svc;
    sb__sync_fn done = w->done;
    void *done_data = w->data;
    free(w);
    svc->inflight--;
    if (done)
        done(done_data, rc, e);
    else
        cric_error_free(e);
}

int sb__record_save_ready(struct cric_sandbox_service *svc, struct cric_sandbox *sb, cric_error **err)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    if (!g)
        return cric_error_sys(err, -ENOMEM, "save sandbox %s", sb->id);
    yajl_gen_map_open(g);
    cric_yj_kv_str(g, "id", sb->id);
    cric_yj_kv_int(g, "pause_pid", sb->pause_pid);
    cric_yj_kv_int(g, "pause_start", sb->priv->pause_start);
    cric_yj_kv_str(g, "cni_result", sb->priv->cni_result);
    cric_yj_kv_int(g, "cni_add_ns", (long long)sb->cni_add_ns);
    cric_yj_kv_strv(g, "ips", sb->ips);
    yajl_gen_map_close(g);
    _cleanup_free_ char *text = cric_yj_gen_take(g, NULL), *path = NULL;
    yajl_gen_free(g);
    if (!text || asprintf(&path, "%s/%s/" SB_READY_NAME, svc->sb_dir, sb->id) < 0)
        return cric_error_sys(err, -ENOMEM, "save sandbox %s", sb->id);
    return cric_write_file_replace(path, text, strlen(text), 0600, err);
}

/* The record (or the file name next to it), its pod directory and the
 * sandboxes directory (the pod directory may be new: its entry must be
 * durable too). */
int sb__record_sync(struct cric_sandbox_service *svc, const char *id, const char *name, sb__sync_fn done, void *data,
                    cric_error **err)
{
    _cleanup_free_ char *path = NULL;
    struct sync_wait *w = calloc(1, sizeof(*w));
    if (!w || asprintf(&path, "%s/%s/%s", svc->sb_dir, id, name ? name : "sandbox.json") < 0) {
        free(w);
        return cric_error_sys(err, -ENOMEM, "sync sandbox %s", id);
    }
    w->svc = svc;
    w->done = done;
    w->data = data;
    int r = cric_fsync_async(svc->loop, path, 2, sync_done, w, err);
    if (r < 0) {
        free(w);
        return r;
    }
    svc->inflight++;
    return 0;
}

static char *get_dup(yajl_val root, const char *key)
{
    const char *s = cric_yj_get_str(root, key);
    return s ? strdup(s) : NULL;
}

static long long get_int(yajl_val root, const char *key)
{
    yajl_val v = cric_yj_get(root, key);
    return v && YAJL_IS_INTEGER(v) ? YAJL_GET_INTEGER(v) : 0;
}

static bool get_bool(yajl_val root, const char *key)
{
    yajl_val v = cric_yj_get(root, key);
    return v && v->type == yajl_t_true;
}

static char **get_strv(yajl_val root, const char *key)
{
    yajl_val a = cric_yj_get(root, key);
    size_t n = a && a->type == yajl_t_array ? a->u.array.len : 0;
    char **v = calloc(n + 1, sizeof(char *));
    for (size_t i = 0, j = 0; v && i < n; i++)
        if (a->u.array.values[i]->type == yajl_t_string)
            v[j++] = strdup(a->u.array.values[i]->u.string);
    return v;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* A CREATING record with a ready file next to it is a READY pod; a ready
 * file that cannot be used leaves it CREATING (rolled back). */
static void apply_ready(struct cric_sandbox_service *svc, const char *dir, struct cric_sandbox *sb)
{
    _cleanup_free_ char *path = NULL, *text = NULL;
    if (asprintf(&path, "%s/%s/" SB_READY_NAME, svc->sb_dir, dir) < 0 ||
        cric_read_file(path, RECORD_MAX, &text, NULL, NULL) < 0)
        return;
    yajl_val root = cric_yj_parse(text, NULL, 0);
    const char *rid = root ? cric_yj_get_str(root, "id") : NULL;
    if (rid && strcmp(rid, sb->id) == 0) {
        char **ips = get_strv(root, "ips");
        const char *res = cric_yj_get_str(root, "cni_result");
        char *rdup = res ? strdup(res) : NULL;
        if (ips && (!res || rdup)) {
            sb->pause_pid = (int)get_int(root, "pause_pid");
            sb->priv->pause_start = get_int(root, "pause_start");
            sb->cni_add_ns = (uint64_t)get_int(root, "cni_add_ns");
            free(sb->priv->cni_result);
            sb->priv->cni_result = TAKE_PTR(rdup);
            strv_free(sb->ips);
            sb->ips = TAKE_PTR(ips);
            sb->state = CRIC_SANDBOX_READY;
        }
        strv_free(ips);
        free(rdup);
    }
    yajl_tree_free(root);
}

int sb__record_load(struct cric_sandbox_service *svc, const char *id, struct cric_sandbox **out, cric_error **err)
{
    return sb__record_load_at(svc, id, id, out, err);
}

int sb__record_load_at(struct cric_sandbox_service *svc, const char *dir, const char *id, struct cric_sandbox **out,
                       cric_error **err)
{
    _cleanup_free_ char *path = NULL, *text = NULL;
    if (asprintf(&path, "%s/%s/sandbox.json", svc->sb_dir, dir) < 0)
        return cric_error_sys(err, -ENOMEM, "load sandbox %s", id);
    int r = cric_read_file(path, RECORD_MAX, &text, NULL, err);
    if (r < 0)
        return r;
    char ebuf[256];
    yajl_val root = cric_yj_parse(text, ebuf, sizeof(ebuf));
    if (!root || root->type != yajl_t_object) {
        yajl_tree_free(root);
        return cric_error_new(err, -EINVAL, "sandbox record '%s': %s", path, root ? "not an object" : ebuf);
    }
    _cleanup_free_ uint8_t *pb = NULL;
    struct cric_sandbox *sb = sb__alloc();
    if (!sb) {
        yajl_tree_free(root);
        return cric_error_sys(err, -ENOMEM, "load sandbox %s", id);
    }
    const char *rid = cric_yj_get_str(root, "id");
    if (!rid || strcmp(rid, id) != 0) {
        r = cric_error_new(err, -EINVAL, "sandbox record '%s': id does not match its directory", path);
        goto out;
    }
    snprintf(sb->id, sizeof(sb->id), "%s", id);
    sb->state = (enum cric_sandbox_state)get_int(root, "state");
    sb->created_at = get_int(root, "created_at");
    sb->name = get_dup(root, "name");
    sb->uid = get_dup(root, "uid");
    sb->namespace_ = get_dup(root, "namespace");
    sb->attempt = (uint32_t)get_int(root, "attempt");
    sb->hostname = get_dup(root, "hostname");
    sb->runtime_handler = get_dup(root, "runtime_handler");
    sb->log_directory = get_dup(root, "log_directory");
    sb->cgroup_parent = get_dup(root, "cgroup_parent");
    sb->network_mode = (int)get_int(root, "network_mode");
    sb->pid_mode = (int)get_int(root, "pid_mode");
    sb->ipc_mode = (int)get_int(root, "ipc_mode");
    sb->netns_path = get_dup(root, "netns");
    sb->ipcns_path = get_dup(root, "ipcns");
    sb->utsns_path = get_dup(root, "utsns");
    sb->priv->ns_dir = get_dup(root, "ns_dir");
    sb->pause_pid = (int)get_int(root, "pause_pid");
    sb->priv->pause_start = get_int(root, "pause_start");
    sb->shm_path = get_dup(root, "shm");
    sb->priv->shm_mounted = get_bool(root, "shm_mounted");
    sb->priv->network_attached = get_bool(root, "network_attached");
    sb->priv->cni_conf_file = get_dup(root, "cni_conf_file");
    sb->priv->cni_conf_text = get_dup(root, "cni_conf");
    sb->priv->cni_result = get_dup(root, "cni_result");
    sb->cni_add_ns = (uint64_t)get_int(root, "cni_add_ns");
    sb->cni_del_ns = (uint64_t)get_int(root, "cni_del_ns");
    sb->ips = get_strv(root, "ips");
    sb->priv->cgroups_created = get_strv(root, "cgroups_created");
    if (!sb->name || !sb->uid || !sb->namespace_ || !sb->hostname || !sb->runtime_handler || !sb->log_directory ||
        !sb->cgroup_parent || !sb->ips || !sb->priv->cgroups_created) {
        r = cric_error_new(err, -EINVAL, "sandbox record '%s': a required field is missing", path);
        goto out;
    }
    const char *hex = cric_yj_get_str(root, "config_pb");
    size_t hl = hex ? strlen(hex) : 1;
    if (hl % 2) {
        r = cric_error_new(err, -EINVAL, "sandbox record '%s': bad config_pb", path);
        goto out;
    }
    pb = malloc(hl / 2 + 1);
    if (!pb) {
        r = cric_error_sys(err, -ENOMEM, "load sandbox %s", id);
        goto out;
    }
    for (size_t i = 0; i < hl / 2; i++) {
        int a = hexval(hex[2 * i]), b = hexval(hex[2 * i + 1]);
        if (a < 0 || b < 0) {
            r = cric_error_new(err, -EINVAL, "sandbox record '%s': bad config_pb", path);
            goto out;
        }
        pb[i] = (uint8_t)(a << 4 | b);
    }
    r = sb__set_config(sb, pb, hl / 2, err);
    if (r < 0)
        goto out;
    if (sb->state == CRIC_SANDBOX_CREATING)
        apply_ready(svc, dir, sb);
    if (asprintf(&sb->dir, "%s/%s", svc->sb_dir, id) < 0 ||
        asprintf(&sb->hostname_path, "%s/hostname", sb->dir) < 0 ||
        asprintf(&sb->hosts_path, "%s/hosts", sb->dir) < 0 ||
        asprintf(&sb->resolv_path, "%s/resolv.conf", sb->dir) < 0 ||
        (sb->pause_pid > 0 && asprintf(&sb->pidns_path, "/proc/%d/ns/pid", sb->pause_pid) < 0)) {
        r = cric_error_sys(err, -ENOMEM, "load sandbox %s", id);
        goto out;
    }
    *out = sb;
    sb = NULL;
out:
    sb__free(sb);
    yajl_tree_free(root);
    return r;
}
