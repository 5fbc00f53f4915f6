/* The container service: the table of containers, their records on disk,
 * and recovery after a restart. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "container/internal.h"
#include "sandbox/sandbox.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/yj.h"
#include "util/fsync_async.h"

#define GS(g, s) yajl_gen_string((g), (const unsigned char *)(s), strlen(s))

int64_t cric__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int cric__waiter_add(struct ctr_waiter **list, cric_container_done_fn done, void *data)
{
    struct ctr_waiter *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->done = done;
    w->data = data;
    /* Keep request order: append. */
    while (*list)
        list = &(*list)->next;
    *list = w;
    return 0;
}

void cric__waiters_fire(struct ctr_waiter **list, int rc, const cric_error *err, const char *id)
{
    struct ctr_waiter *w = *list;
    *list = NULL;
    while (w) {
        struct ctr_waiter *next = w->next;
        if (w->done)
            w->done(w->data, rc, err, id);
        free(w);
        w = next;
    }
}

void cric__svc_hold(struct cric_container_service *svc)
{
    svc->pending++;
}

static void svc_free(struct cric_container_service *svc);

void cric__svc_release(struct cric_container_service *svc)
{
    if (--svc->pending == 0 && svc->closing)
        svc_free(svc);
}

void cric__ctr_ref(struct ctr *c)
{
    c->refs++;
}

static void ctr_free(struct ctr *c)
{
    free(c->sandbox_id);
    if (c->config)
        protobuf_c_message_free_unpacked(&c->config->base, NULL);
    free(c->reason);
    free(c->message);
    free(c->image_name);
    free(c->image_id);
    free(c->image_ref);
    free(c->handler);
    free(c->runtime);
    free(c->runtime_root);
    free(c->log_path);
    cric__spec_strv_free(c->layers);
    free(c->dir);
    free(c->state_dir);
    free(c);
}

void cric__ctr_unref(struct ctr *c)
{
    if (--c->refs == 0)
        ctr_free(c);
}

int cric__ctr_add(struct cric_container_service *svc, struct ctr *c)
{
    if (svc->n == svc->cap) {
        size_t nc = svc->cap ? svc->cap * 2 : 16;
        struct ctr **nv = realloc(svc->v, nc * sizeof(*nv));
        if (!nv)
            return -ENOMEM;
        svc->v = nv;
        svc->cap = nc;
    }
    c->svc = svc;
    c->refs++;
    svc->v[svc->n++] = c;
    return 0;
}

void cric__ctr_drop(struct ctr *c)
{
    struct cric_container_service *svc = c->svc;
    for (size_t i = 0; i < svc->n; i++)
        if (svc->v[i] == c) {
            svc->v[i] = svc->v[--svc->n];
            break;
        }
    c->gone = true;
    if (!svc->closing)
        cric__ctr_event(c, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_DELETED_EVENT);
    cric__ctr_unref(c);
}

struct ctr *cric__ctr_find(struct cric_container_service *svc, const char *id, cric_error **err)
{
    if (!id || !id[0]) {
        cric_error_new(err, -EINVAL, "container ID is empty");
        return NULL;
    }
    size_t len = strlen(id);
    struct ctr *found = NULL;
    for (size_t i = 0; i < svc->n; i++) {
        struct ctr *c = svc->v[i];
        if (strcmp(c->id, id) == 0)
            return c;
        if (strncmp(c->id, id, len) == 0) {
            if (found) {
                cric_error_new(err, -EINVAL, "container ID prefix '%s' is ambiguous", id);
                return NULL;
            }
            found = c;
        }
    }
    if (!found)
        cric_error_new(err, -ENOENT, "container '%s' not found", id);
    return found;
}

static const char *state_name(enum ctr_state s)
{
    switch (s) {
    case CTR_CREATING:
        return "creating";
    case CTR_CREATED:
        return "created";
    case CTR_RUNNING:
        return "running";
    default:
        return "exited";
    }
}

int cric__ctr_save(struct ctr *c, cric_error **err)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    if (!g)
        return cric_error_sys(err, -ENOMEM, "container record");
    yajl_gen_map_open(g);
    cric_yj_kv_int(g, "version", 1);
    cric_yj_kv_str(g, "id", c->id);
    cric_yj_kv_str(g, "sandbox_id", c->sandbox_id);
    cric_yj_kv_str(g, "state", state_name(c->state));
    cric_yj_kv_int(g, "created_at", c->created_at);
    cric_yj_kv_int(g, "started_at", c->started_at);
    cric_yj_kv_int(g, "finished_at", c->finished_at);
    cric_yj_kv_int(g, "exit_code", c->exit_code);
    cric_yj_kv_bool(g, "oom_killed", c->oom);
    cric_yj_kv_str(g, "reason", c->reason);
    cric_yj_kv_str(g, "message", c->message);
    cric_yj_kv_str(g, "image", c->image_name);
    cric_yj_kv_str(g, "image_id", c->image_id);
    cric_yj_kv_str(g, "image_ref", c->image_ref);
    cric_yj_kv_str(g, "runtime_handler", c->handler);
    cric_yj_kv_str(g, "runtime", c->runtime);
    cric_yj_kv_str(g, "runtime_root", c->runtime_root);
    cric_yj_kv_bool(g, "systemd_cgroup", c->systemd_cgroup);
    cric_yj_kv_str(g, "log_path", c->log_path);
    cric_yj_kv_int(g, "pid", c->pid);
    cric_yj_kv_int(g, "stop_signal", c->stop_signal);
    cric_yj_kv_int(g, "uid", c->uid);
    cric_yj_kv_int(g, "gid", c->gid);
    GS(g, "layers");
    yajl_gen_array_open(g);
    for (size_t i = 0; c->layers && c->layers[i]; i++)
        GS(g, c->layers[i]);
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    const unsigned char *buf;
    size_t len;
    yajl_gen_get_buf(g, &buf, &len);
    char path[4096];
    snprintf(path, sizeof(path), "%s/record.json", c->dir);
    int r = cric__ctr_write(c->svc, path, buf, len, err);
    yajl_gen_free(g);
    return r;
}

static char *jstr(yajl_val v, const char *k)
{
    const char *p[] = {k, NULL};
    yajl_val s = yajl_tree_get(v, p, yajl_t_string);
    return strdup(s ? s->u.string : "");
}

static long long jint(yajl_val v, const char *k)
{
    const char *p[] = {k, NULL};
    yajl_val s = yajl_tree_get(v, p, yajl_t_number);
    return s && YAJL_IS_INTEGER(s) ? YAJL_GET_INTEGER(s) : 0;
}

static bool jbool(yajl_val v, const char *k)
{
    const char *p[] = {k, NULL};
    return yajl_tree_get(v, p, yajl_t_true) != NULL;
}

/* Loads <ctr_dir>/<name>; a directory without a readable record is the
 * leftover of a create that died before its first write: removed. */
static int load_one(struct cric_container_service *svc, const char *name, struct ctr **out, cric_error **err)
{
    _cleanup_free_ char *dir = NULL, *rec = NULL, *cfgpath = NULL, *text = NULL, *pb = NULL;
    size_t pblen = 0;
    if (asprintf(&dir, "%s/%s", svc->ctr_dir, name) < 0 || asprintf(&rec, "%s/record.json", dir) < 0 ||
        asprintf(&cfgpath, "%s/config.pb", dir) < 0)
        return -ENOMEM;
    int r = cric_read_file(rec, 1 << 20, &text, NULL, err);
    if (r < 0)
        return r;
    r = cric_read_file(cfgpath, 16 << 20, &pb, &pblen, err);
    if (r < 0)
        return r;
    char ebuf[128];
    yajl_val v = yajl_tree_parse(text, ebuf, sizeof(ebuf));
    if (!v)
        return cric_error_new(err, -EINVAL, "container record '%s' is not JSON", rec);
    struct ctr *c = calloc(1, sizeof(*c));
    if (!c) {
        yajl_tree_free(v);
        return -ENOMEM;
    }
    _cleanup_free_ char *id = jstr(v, "id"), *st = jstr(v, "state");
    snprintf(c->id, sizeof(c->id), "%s", id ? id : "");
    c->sandbox_id = jstr(v, "sandbox_id");
    c->created_at = jint(v, "created_at");
    c->started_at = jint(v, "started_at");
    c->finished_at = jint(v, "finished_at");
    c->exit_code = (int)jint(v, "exit_code");
    c->oom = jbool(v, "oom_killed");
    c->reason = jstr(v, "reason");
    c->message = jstr(v, "message");
    c->image_name = jstr(v, "image");
    c->image_id = jstr(v, "image_id");
    c->image_ref = jstr(v, "image_ref");
    c->handler = jstr(v, "runtime_handler");
    c->runtime = jstr(v, "runtime");
    c->runtime_root = jstr(v, "runtime_root");
    c->systemd_cgroup = jbool(v, "systemd_cgroup");
    c->log_path = jstr(v, "log_path");
    c->pid = (int)jint(v, "pid");
    c->stop_signal = (int)jint(v, "stop_signal");
    c->uid = (uint32_t)jint(v, "uid");
    c->gid = (uint32_t)jint(v, "gid");
    const char *pl[] = {"layers", NULL};
    yajl_val lv = yajl_tree_get(v, pl, yajl_t_array);
    size_t nl = lv ? lv->u.array.len : 0;
    c->layers = calloc(nl + 1, sizeof(char *));
    for (size_t i = 0; c->layers && i < nl; i++)
        if (YAJL_IS_STRING(lv->u.array.values[i]))
            c->layers[i] = strdup(lv->u.array.values[i]->u.string);
    yajl_tree_free(v);
    c->dir = TAKE_PTR(dir);
    if (asprintf(&c->state_dir, "%s/%s", svc->run_dir, c->id) < 0)
        c->state_dir = NULL;
    c->config = runtime__v1__container_config__unpack(NULL, pblen, (const uint8_t *)pb);
    if (!c->sandbox_id || !c->reason || !c->message || !c->image_name || !c->image_id || !c->image_ref ||
        !c->handler || !c->runtime || !c->runtime_root || !c->log_path || !c->state_dir || !st || !c->layers) {
        ctr_free(c);
        return -ENOMEM;
    }
    if (!c->config || strcmp(c->id, name) != 0) {
        ctr_free(c);
        return cric_error_new(err, -EINVAL, "container record '%s' is damaged", rec);
    }
    c->state = strcmp(st, "created") == 0   ? CTR_CREATED
               : strcmp(st, "running") == 0 ? CTR_RUNNING
               : strcmp(st, "exited") == 0  ? CTR_EXITED
                                            : CTR_CREATING;
    *out = c;
    return 0;
}

static void exit_cb(const char *id, const struct cric_shim_exit *ex, void *data)
{
    struct cric_container_service *svc = data;
    struct ctr *c = cric__ctr_find(svc, id, NULL);
    if (c && strcmp(c->id, id) == 0)
        cric__ctr_on_exit(c, ex);
}

static void recovered_removed(void *data, int rc, const cric_error *err, const char *id)
{
    (void)data;
    (void)rc;
    (void)err;
    (void)id;
}

/* After a restart: where each container really is. */
static void recover(struct ctr *c)
{
    cric__ctr_hold_layers(c);
    if (c->state == CTR_CREATING) {
        /* Half-created: nobody was told about it; undo it all. */
        cric__ctr_remove(c, recovered_removed, NULL);
        return;
    }
    if (c->state == CTR_EXITED)
        return;
    struct cric_shim_status st = {0};
    if (cric_shim_status(c->state_dir, &st, NULL) < 0)
        st.state = CRIC_SHIM_LOST;
    switch (st.state) {
    case CRIC_SHIM_EXITED:
        cric__ctr_on_exit(c, &st.ex);
        break;
    case CRIC_SHIM_LOST: {
        if (c->state == CTR_CREATED && c->pid <= 0) {
            /* Created, never started (or its start died with cricd before
             * the shim got going): still created, nothing in the runtime. */
            c->runtime_deleted = true;
            cric_rm_rf(c->state_dir, NULL);
            break;
        }
        /* The monitor is gone with no exit record: the container's output
         * and exit code are lost.  Say so rather than pretend it runs. */
        struct cric_shim_exit ex = {.status = 255, .exited_at_ns = cric__now_ns()};
        cric__ctr_on_exit(c, &ex);
        free(c->message);
        c->message = strdup("container monitor (cric-shim) lost: exit status unknown");
        cric__ctr_save(c, NULL);
        break;
    }
    default:
        if (c->state == CTR_CREATED && c->pid <= 0 && st.container_pid <= 0 && cric__shim_waiting(c->state_dir)) {
            /* Its shim, launched at create, still waits for the start. */
            c->runtime_deleted = true;
            break;
        }
        if (st.container_pid > 0)
            c->pid = st.container_pid;
        if (c->state == CTR_CREATED)
            cric__ctr_refresh_created(c);
        break;
    }
}

static void hook_stop_all(void *ctx, const char *sandbox_id, int64_t timeout_s, cric_sandbox_hook_done_fn done,
                          void *cb_data);
static void hook_remove_all(void *ctx, const char *sandbox_id, cric_sandbox_hook_done_fn done, void *cb_data);

int cric_container_service_new(uv_loop_t *loop, const struct cric_container_opts *opts,
                               struct cric_container_service **out, cric_error **err)
{
    _cleanup_closedir_ DIR *d = NULL;
    struct cric_container_service *svc = calloc(1, sizeof(*svc));
    if (!svc)
        return cric_error_sys(err, -ENOMEM, "container service");
    svc->loop = loop;
    svc->cfg = opts->cfg;
    svc->images = opts->images;
    svc->sandboxes = opts->sandboxes;
    int r = -ENOMEM;
    if (!(svc->root = strdup(opts->root)) || !(svc->state = strdup(opts->state)) ||
        asprintf(&svc->ctr_dir, "%s/" CRIC_CONTAINER_DIR, opts->root) < 0 ||
        asprintf(&svc->run_dir, "%s/c", opts->state) < 0 ||
        asprintf(&svc->exits_dir, "%s/container-exits", opts->state) < 0 ||
        (opts->shim_path && !(svc->shim_path = strdup(opts->shim_path)))) {
        cric_error_sys(err, r, "container service");
        goto fail;
    }
    if ((r = cric_mkdir_p(svc->ctr_dir, 0700, err)) < 0 || (r = cric_mkdir_p(svc->run_dir, 0700, err)) < 0 ||
        (r = cric_mkdir_p(svc->exits_dir, 0700, err)) < 0)
        goto fail;

    d = opendir(svc->ctr_dir);
    if (!d) {
        r = cric_error_sys(err, -errno, "open '%s'", svc->ctr_dir);
        goto fail;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || strlen(e->d_name) != 64)
            continue;
        struct ctr *c = NULL;
        cric_error *lerr = NULL;
        int lr = load_one(svc, e->d_name, &c, &lerr);
        if (lr == -ENOMEM) {
            cric_error_free(lerr);
            r = cric_error_sys(err, lr, "container service");
            goto fail;
        }
        if (lr < 0) {
            /* A create that died before its record: unmount and forget. */
            _cleanup_free_ char *dir = NULL, *sdir = NULL;
            cric_error_free(lerr);
            if (asprintf(&dir, "%s/%s", svc->ctr_dir, e->d_name) >= 0) {
                cric__rootfs_unmount(dir, NULL);
                cric_rm_rf(dir, NULL);
            }
            if (asprintf(&sdir, "%s/%s", svc->run_dir, e->d_name) >= 0) {
                cric__kill_waiting_shim(sdir);
                cric_rm_rf(sdir, NULL);
            }
            continue;
        }
        if ((r = cric__ctr_add(svc, c)) < 0) {
            ctr_free(c);
            cric_error_sys(err, r, "container service");
            goto fail;
        }
    }
    if ((r = cric_shim_watch_new(loop, svc->exits_dir, exit_cb, svc, &svc->watch, err)) < 0)
        goto fail;
    /* Recover in a copy: removals change the table. */
    size_t n = svc->n;
    struct ctr **copy = calloc(n ? n : 1, sizeof(*copy));
    if (!copy) {
        r = cric_error_sys(err, -ENOMEM, "container service");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        copy[i] = svc->v[i];
        cric__ctr_ref(copy[i]);
    }
    for (size_t i = 0; i < n; i++) {
        recover(copy[i]);
        cric__ctr_unref(copy[i]);
    }
    free(copy);
    if ((r = cric_shim_watch_scan(svc->watch, err)) < 0)
        goto fail;
    if (svc->sandboxes) {
        struct cric_sandbox_container_hooks hooks = {
            .stop_all = hook_stop_all, .remove_all = hook_remove_all, .event = cric__pod_event, .ctx = svc};
        cric_sandbox_set_container_hooks(svc->sandboxes, &hooks);
    }
    *out = svc;
    return 0;
fail:
    svc->closing = true;
    if (svc->pending == 0) {
        svc_free(svc);
    }
    return r;
}

static void svc_free(struct cric_container_service *svc)
{
    if (svc->watch)
        cric_shim_watch_free(svc->watch);
    while (svc->n) {
        struct ctr *c = svc->v[svc->n - 1];
        cric__waiters_fire(&c->exit_waiters, -ECANCELED, NULL, c->id);
        cric__waiters_fire(&c->remove_waiters, -ECANCELED, NULL, c->id);
        cric__ctr_drop(c);
    }
    void (*cb)(void *) = svc->close_cb;
    void *data = svc->close_data;
    free(svc->v);
    free(svc->root);
    free(svc->state);
    free(svc->ctr_dir);
    free(svc->run_dir);
    free(svc->exits_dir);
    free(svc->shim_path);
    free(svc->cpu_prev);
    free(svc);
    if (cb)
        cb(data);
}

void cric_container_service_close(struct cric_container_service *svc, void (*cb)(void *), void *data)
{
    svc->closing = true;
    cric_container_events_close(svc);
    svc->close_cb = cb;
    svc->close_data = data;
    if (svc->sandboxes)
        cric_sandbox_set_container_hooks(svc->sandboxes, &(struct cric_sandbox_container_hooks){0});
    /* The image module closes right after us: work still in flight (a
     * rootfs removal on the thread pool) must not release layers into a
     * freed store.  Layer holds are in-memory only, so nothing is lost. */
    svc->images = NULL;
    /* Close stop timers now; in-flight children finish on their own and
     * the last one frees the service. */
    for (size_t i = 0; i < svc->n; i++)
        cric__ctr_cancel_stop(svc->v[i]);
    if (svc->pending == 0)
        svc_free(svc);
}

/* ---- pod hooks: stop/remove every container of a pod ---- */

struct pod_op {
    unsigned left;
    int rc;
    cric_error *err;
    cric_sandbox_hook_done_fn done;
    void *cb_data;
};

static void pod_op_step(void *data, int rc, const cric_error *err, const char *id)
{
    (void)id;
    struct pod_op *op = data;
    if (rc < 0 && op->rc == 0) {
        op->rc = rc;
        cric_error_new(&op->err, rc, "%s", err ? err->msg : "container operation failed");
    }
    if (--op->left == 0) {
        op->done(op->cb_data, op->rc, op->err);
        free(op);
    }
}

static void pod_op_run(struct cric_container_service *svc, const char *sandbox_id, bool remove, int64_t timeout_s,
                       cric_sandbox_hook_done_fn done, void *cb_data)
{
    struct pod_op *op = calloc(1, sizeof(*op));
    if (!op) {
        cric_error *e = NULL;
        cric_error_sys(&e, -ENOMEM, "pod containers");
        done(cb_data, -ENOMEM, e);
        return;
    }
    op->done = done;
    op->cb_data = cb_data;
    op->left = 1;
    /* Collect ids first: the operations change the table. */
    size_t n = 0;
    char (*ids)[65] = calloc(svc->n ? svc->n : 1, sizeof(*ids));
    if (!ids) {
        pod_op_step(op, -ENOMEM, NULL, NULL);
        return;
    }
    for (size_t i = 0; i < svc->n; i++)
        if (strcmp(svc->v[i]->sandbox_id, sandbox_id) == 0)
            memcpy(ids[n++], svc->v[i]->id, 65);
    op->left += (unsigned)n;
    for (size_t i = 0; i < n; i++) {
        if (remove)
            cric_container_remove(svc, ids[i], pod_op_step, op);
        else
            cric_container_stop(svc, ids[i], timeout_s, pod_op_step, op);
    }
    free(ids);
    pod_op_step(op, 0, NULL, NULL);
}

static void hook_stop_all(void *ctx, const char *sandbox_id, int64_t timeout_s, cric_sandbox_hook_done_fn done,
                          void *cb_data)
{
    pod_op_run(ctx, sandbox_id, false, timeout_s, done, cb_data);
}

static void hook_remove_all(void *ctx, const char *sandbox_id, cric_sandbox_hook_done_fn done, void *cb_data)
{
    pod_op_run(ctx, sandbox_id, true, 0, done, cb_data);
}

/* ---- records: atomic on the loop, durable from the thread pool ---- */

static void sync_done(void *data, int rc, cric_error *e)
{
    (void)rc;
    cric_error_free(e); /* only shortens the power-loss window */
    cric__svc_release(data);
}

int cric__ctr_write(struct cric_container_service *svc, const char *path, const void *data, size_t len,
                    cric_error **err)
{
    int r = cric_write_file_replace(path, data, len, 0600, err);
    if (r < 0)
        return r;
    /* The rename makes the record atomic for a cricd crash; the fsync
     * (for a machine crash) waits on the disk, so it runs off the loop. */
    cric__svc_hold(svc);
    if (cric_fsync_async(svc->loop, path, 1, sync_done, svc, NULL) < 0)
        cric__svc_release(svc);
    return 0;
}
