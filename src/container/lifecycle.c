/* Create, start, stop, remove, and what happens when a container exits. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "container/internal.h"
#include "image/store.h"
#include "sandbox/sandbox.h"
#include "shim/shim_proto.h"
#include "util/cleanup.h"
#include "util/fs.h"

#define RUNTIME_TIMEOUT_MS 60000u
#define KILL_GRACE_MS 10000u

/* ---- OCI runtime calls on behalf of a container ---- */

typedef void (*rt_k)(struct ctr *c, const struct cric_runtime_result *res, void *arg);

struct rt_call {
    struct ctr *c;
    rt_k k;
    void *arg;
};

static void rt_done(const struct cric_runtime_result *res, void *data)
{
    struct rt_call *rc = data;
    struct ctr *c = rc->c;
    struct cric_container_service *svc = c->svc;
    rc->k(c, res, rc->arg);
    free(rc);
    cric__ctr_unref(c);
    cric__svc_release(svc);
}

/* Runs "<runtime> --root <root> args..." ; k runs on completion (also when the
 * spawn failed, with status < 0), so callers have a single path.  nice > 0:
 * background work at a lower CPU priority. */
static void rt_run_nice(struct ctr *c, const char *const *args, int nice, rt_k k, void *arg)
{
    const char *argv[16];
    size_t n = 0;
    argv[n++] = c->runtime;
    if (c->runtime_root && c->runtime_root[0]) {
        argv[n++] = "--root";
        argv[n++] = c->runtime_root;
    }
    if (c->systemd_cgroup)
        argv[n++] = "--systemd-cgroup";
    for (size_t i = 0; args[i] && n < ARRAY_SIZE(argv) - 1; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    struct rt_call *rc = calloc(1, sizeof(*rc));
    cric_error *err = NULL;
    int r = -ENOMEM;
    if (rc) {
        rc->c = c;
        rc->k = k;
        rc->arg = arg;
        cric__ctr_ref(c);
        cric__svc_hold(c->svc);
        r = cric_runtime_run_nice(c->svc->loop, argv, RUNTIME_TIMEOUT_MS, nice, rt_done, rc, &err);
        if (r == 0)
            return;
        cric__ctr_unref(c);
        cric__svc_release(c->svc);
        free(rc);
    }
    char msg[512];
    snprintf(msg, sizeof(msg), "%s", err ? err->msg : strerror(-r));
    cric_error_free(err);
    struct cric_runtime_result res = {.status = r, .err = msg, .err_len = strlen(msg), .out = (char *)""};
    k(c, &res, arg);
}

static void rt_run(struct ctr *c, const char *const *args, rt_k k, void *arg)
{
    rt_run_nice(c, args, 0, k, arg);
}

/* The runtime's error as a message: "<what> container <id>: <text>". */
static int rt_error(cric_error **err, const struct cric_runtime_result *res, const char *what, const char *id)
{
    _cleanup_free_ char *t = cric_runtime_error_text(res);
    return cric_error_new(err, res->status == -ETIMEDOUT ? -ETIMEDOUT : -EIO, "%s container %s: %s", what, id,
                          t ? t : "failed");
}

/* ---- exit ---- */

static void stop_timer_closed(uv_handle_t *h)
{
    struct ctr *c = h->data;
    struct cric_container_service *svc = c->svc;
    free(h);
    cric__ctr_unref(c);
    cric__svc_release(svc);
}

static void stop_timer_cancel(struct ctr *c)
{
    if (c->stop_timer) {
        uv_close((uv_handle_t *)c->stop_timer, stop_timer_closed);
        c->stop_timer = NULL;
    }
}

/* The message kubelet shows: what the container wrote to its termination
 * message file (kubelet passes the file as a mount and its path as an
 * annotation). */
static char *termination_message(const Runtime__V1__ContainerConfig *cfg)
{
    const char *path = NULL;
    for (size_t i = 0; cfg && i < cfg->n_annotations; i++)
        if (strcmp(cfg->annotations[i]->key, "io.kubernetes.container.terminationMessagePath") == 0)
            path = cfg->annotations[i]->value;
    if (!path)
        return NULL;
    for (size_t i = 0; i < cfg->n_mounts; i++) {
        if (strcmp(cfg->mounts[i]->container_path, path) == 0) {
            char *text = NULL;
            size_t len = 0;
            /* kubelet caps the message at 4 KiB; so do we. */
            int r = cric_read_file(cfg->mounts[i]->host_path, 1 << 20, &text, &len, NULL);
            if (r < 0)
                return NULL;
            if (len > 4096)
                text[4096] = '\0';
            return text;
        }
    }
    return NULL;
}

static void deleted_after_exit(struct ctr *c, const struct cric_runtime_result *res, void *arg)
{
    (void)arg;
    c->deleting = false;
    if (res->status == 0)
        c->runtime_deleted = true;
}

void cric__ctr_on_exit(struct ctr *c, const struct cric_shim_exit *ex)
{
    struct cric_container_service *svc = c->svc;
    if (c->state != CTR_EXITED) {
        c->state = CTR_EXITED;
        c->finished_at = ex->exited_at_ns ? ex->exited_at_ns : cric__now_ns();
        c->exit_code = ex->status;
        c->oom = ex->oom_killed;
        free(c->reason);
        c->reason = strdup(c->oom ? "OOMKilled" : c->exit_code == 0 ? "Completed" : "Error");
        char *msg = termination_message(c->config);
        if (msg) {
            free(c->message);
            c->message = msg;
        }
        cric__ctr_save(c, NULL);
        cric__ctr_event(c, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_STOPPED_EVENT);
        /* Free the runtime's state (and cgroup) now, as containerd does
         * with its task, so that RemoveContainer has less to do. */
        if (!c->removing && !c->runtime_deleted) {
            c->deleting = true;
            rt_run_nice(c, (const char *[]){"delete", c->id, NULL}, 10, deleted_after_exit, NULL);
        }
    }
    cric_shim_exit_forget(svc->exits_dir, c->id, NULL);
    stop_timer_cancel(c);
    cric__waiters_fire(&c->exit_waiters, 0, NULL, c->id);
}

/* ---- create ---- */

static int random_id(char out[65])
{
    unsigned char b[32];
    if (getrandom(b, sizeof(b), 0) != sizeof(b))
        return -errno;
    for (size_t i = 0; i < 32; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
    return 0;
}

static int pack_config(struct cric_container_service *svc, const Runtime__V1__ContainerConfig *cfg, const char *dir,
                       cric_error **err)
{
    size_t len = protobuf_c_message_get_packed_size(&cfg->base);
    _cleanup_free_ uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return cric_error_sys(err, -ENOMEM, "container config");
    protobuf_c_message_pack(&cfg->base, buf);
    char path[4096];
    snprintf(path, sizeof(path), "%s/config.pb", dir);
    return cric__ctr_write(svc, path, buf, len, err);
}

static char *join_path(const char *a, const char *b)
{
    char *p = NULL;
    if (asprintf(&p, "%s%s%s", a, a[0] && a[strlen(a) - 1] != '/' ? "/" : "", b) < 0)
        return NULL;
    return p;
}

/* kubelet's log_path is relative to the pod's log_directory. */
static int log_path_for(struct cric_container_service *svc, const struct cric_sandbox *sb,
                        const Runtime__V1__ContainerConfig *cfg, const char *id, char **out, cric_error **err)
{
    const char *rel = cfg->log_path ? cfg->log_path : "";
    const char *dir = sb && sb->log_directory ? sb->log_directory : "";
    const char *root = svc->cfg && svc->cfg->containers_log_root ? svc->cfg->containers_log_root : "";
    char *p = NULL;
    if (rel[0] == '/')
        p = strdup(rel);
    else if (rel[0] && dir[0])
        p = join_path(dir, rel);
    else if (root[0]) {
        char buf[512];
        snprintf(buf, sizeof(buf), "%s/%s", sb ? sb->id : "none", rel[0] ? rel : id);
        if (!rel[0])
            strncat(buf, ".log", sizeof(buf) - strlen(buf) - 1);
        p = join_path(root, buf);
    } else
        p = strdup("");
    if (!p)
        return cric_error_sys(err, -ENOMEM, "log path");
    if (strstr(p, "/../")) {
        free(p);
        return cric_error_new(err, -EINVAL, "log_path '%s' leaves the pod's log directory", rel);
    }
    if (p[0]) {
        _cleanup_free_ char *parent = strdup(p);
        if (!parent) {
            free(p);
            return -ENOMEM;
        }
        *strrchr(parent, '/') = '\0';
        int r = parent[0] ? cric_mkdir_p(parent, 0755, err) : 0;
        if (r < 0) {
            free(p);
            return r;
        }
    }
    *out = p;
    return 0;
}

static char **map_to_strv(Runtime__V1__LinuxPodSandboxConfig__SysctlsEntry **e, size_t n)
{
    char **v = calloc(n + 1, sizeof(char *));
    if (!v)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (asprintf(&v[i], "%s=%s", e[i]->key, e[i]->value) < 0) {
            v[i] = NULL;
            cric__spec_strv_free(v);
            return NULL;
        }
    return v;
}

/* ---- the shim ---- */

static void shim_opts(struct ctr *c, struct cric_shim_opts *so)
{
    struct cric_container_service *svc = c->svc;
    *so = (struct cric_shim_opts){
        .id = c->id,
        .bundle = c->dir,
        .runtime = c->runtime,
        .runtime_root = c->runtime_root,
        .systemd_cgroup = c->systemd_cgroup,
        .state_dir = c->state_dir,
        .exits_dir = svc->exits_dir,
        .log_path = c->log_path[0] ? c->log_path : NULL,
        .log_size_max = svc->cfg ? svc->cfg->containers_log_size_max : 0,
        .terminal = c->config->tty,
        .stdin_open = c->config->stdin,
        .start = true,
        .shim_path = svc->shim_path,
    };
}

bool cric__shim_waiting(const char *state_dir)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/" CRIC_SHIM_START_SOCK, state_dir);
    return access(path, F_OK) == 0;
}

void cric__kill_waiting_shim(const char *state_dir)
{
    struct cric_shim_status st = {0};
    if (cric__shim_waiting(state_dir) && cric_shim_status(state_dir, &st, NULL) == 0 &&
        st.state == CRIC_SHIM_RUNNING && st.shim_pid > 0 && st.container_pid <= 0)
        kill(st.shim_pid, SIGKILL);
}

static void start_go(void *op);

static void prelaunch_done(int pid, const cric_error *err, void *data)
{
    (void)err; /* no waiting shim: StartContainer launches one itself */
    struct ctr *c = data;
    struct cric_container_service *svc = c->svc;
    c->prelaunching = false;
    void *op = c->start_waiting;
    c->start_waiting = NULL;
    if (op)
        start_go(op);
    else if (pid > 0 && (c->gone || c->removing || c->state != CTR_CREATED)) {
        /* Stopped or removed meanwhile: nothing will start it.  Its files
         * may have come back after the removal's. */
        kill(pid, SIGKILL);
        if (c->gone || c->removing)
            cric_rm_rf(c->state_dir, NULL);
    }
    cric__ctr_unref(c);
    cric__svc_release(svc);
}

static void prelaunch_timer_closed(uv_handle_t *h)
{
    free(h);
}

static void prelaunch_now(uv_timer_t *t)
{
    struct ctr *c = t->data;
    struct cric_container_service *svc = c->svc;
    uv_close((uv_handle_t *)t, prelaunch_timer_closed);
    struct cric_shim_opts so;
    shim_opts(c, &so);
    so.wait = true;
    cric_error *err = NULL;
    if (svc->closing || c->gone || c->removing || c->state != CTR_CREATED ||
        cric_shim_launch(svc->loop, &so, prelaunch_done, c, &err) < 0) {
        cric_error_free(err);
        prelaunch_done(0, NULL, c);
    }
}

/* The shim's own start-up (spawn, detach, log and sockets) happens here,
 * between CreateContainer and StartContainer: `cric-shim --wait` gets
 * everything ready and waits on its start socket, so StartContainer only
 * runs the runtime.  From a timer: the spawn blocks the loop until the
 * shim has exec'd, which must not hold back CreateContainer's answer (it
 * is sent when the request's input has been handled).  Best effort:
 * without a waiting shim, StartContainer launches one itself. */
static void prelaunch(struct ctr *c)
{
    struct cric_container_service *svc = c->svc;
    uv_timer_t *t = svc->closing ? NULL : malloc(sizeof(*t));
    if (!t)
        return;
    c->prelaunching = true;
    cric__ctr_ref(c);
    cric__svc_hold(svc);
    uv_timer_init(svc->loop, t);
    t->data = c;
    uv_timer_start(t, prelaunch_now, 0, 0);
}

int cric_container_create(struct cric_container_service *svc, const Runtime__V1__CreateContainerRequest *req,
                          cric_container_done_fn done, void *data, cric_error **err)
{
    const Runtime__V1__ContainerConfig *cfg = req->config;
    if (!cfg || !cfg->metadata || !cfg->metadata->name || !cfg->metadata->name[0])
        return cric_error_new(err, -EINVAL, "CreateContainer: config.metadata.name is required");
    if (!cfg->image || !cfg->image->image || !cfg->image->image[0])
        return cric_error_new(err, -EINVAL, "CreateContainer: config.image.image is required");
    if (!req->pod_sandbox_id || !req->pod_sandbox_id[0])
        return cric_error_new(err, -EINVAL, "CreateContainer: pod_sandbox_id is required");
    if (svc->closing)
        return cric_error_new(err, -ESHUTDOWN, "cricd is shutting down");

    const struct cric_sandbox *sb = NULL;
    int r;
    if (svc->sandboxes) {
        if ((r = cric_sandbox_lookup(svc->sandboxes, req->pod_sandbox_id, &sb, err)) < 0)
            return r == -ENOENT ? cric_error_new(err, -ENOENT, "pod sandbox '%s' not found", req->pod_sandbox_id)
                                : r;
        if (sb->state != CRIC_SANDBOX_READY)
            return cric_error_new(err, -EBUSY, "pod sandbox %s is not ready", sb->id);
    }
    const char *sb_id = sb ? sb->id : req->pod_sandbox_id;
    for (size_t i = 0; i < svc->n; i++) {
        struct ctr *o = svc->v[i];
        if (strcmp(o->sandbox_id, sb_id) == 0 && strcmp(o->config->metadata->name, cfg->metadata->name) == 0 &&
            o->config->metadata->attempt == cfg->metadata->attempt)
            return cric_error_new(err, -EEXIST, "container '%s' attempt %u already exists in pod %s: %s",
                                  cfg->metadata->name, cfg->metadata->attempt, sb_id, o->id);
    }
    const char *hname = sb && sb->runtime_handler ? sb->runtime_handler : "";
    const struct cric_runtime_handler *h = svc->cfg ? cric_config_handler(svc->cfg, hname) : NULL;
    if (!h)
        return cric_error_new(err, -EINVAL, "unknown runtime handler '%s'", hname);

    const struct cric_image *img = NULL;
    if (!svc->images)
        return cric_error_new(err, -EIO, "CreateContainer: no image store");
    r = cric_image_store_lookup(svc->images, cfg->image->image, &img, err);
    if (r == -ENOENT)
        return cric_error_new(err, -ENOENT, "image '%s' not found: pull it first", cfg->image->image);
    if (r < 0)
        return r;
    char **layers = NULL;
    if ((r = cric_image_store_layer_dirs(svc->images, img, &layers, err)) < 0)
        return r;

    struct ctr *c = calloc(1, sizeof(*c));
    if (!c) {
        cric_strv_free(layers);
        return cric_error_sys(err, -ENOMEM, "CreateContainer");
    }
    if ((r = random_id(c->id)) < 0) {
        free(c);
        cric_strv_free(layers);
        return cric_error_sys(err, r, "container ID");
    }
    c->state = CTR_CREATING;
    c->runtime_deleted = true; /* nothing in the runtime until StartContainer */
    c->created_at = cric__now_ns();
    c->sandbox_id = strdup(sb_id);
    c->image_name = strdup(cfg->image->image);
    c->image_id = strdup(img->id);
    c->image_ref = strdup(img->repo_digests && img->repo_digests[0] ? img->repo_digests[0] : img->id);
    c->handler = strdup(hname);
    c->runtime = strdup(h->path);
    if (h->root && h->root[0])
        c->runtime_root = strdup(h->root);
    else if (asprintf(&c->runtime_root, "%s/runtime/%s", svc->state, h->name && h->name[0] ? h->name : "default") < 0)
        c->runtime_root = NULL;
    /* Every runtime call for this container uses the driver it was created with. */
    c->systemd_cgroup = svc->cfg && svc->cfg->cgroup_driver && strcmp(svc->cfg->cgroup_driver, "systemd") == 0;
    c->reason = strdup("");
    c->message = strdup("");
    size_t nl = 0;
    while (img->chain_ids && img->chain_ids[nl])
        nl++;
    if ((c->layers = calloc(nl + 1, sizeof(char *))))
        for (size_t i = 0; i < nl; i++)
            if (!(c->layers[i] = strdup(img->chain_ids[i]))) {
                cric__spec_strv_free(c->layers);
                c->layers = NULL;
                break;
            }
    if (asprintf(&c->dir, "%s/%s", svc->ctr_dir, c->id) < 0)
        c->dir = NULL;
    if (asprintf(&c->state_dir, "%s/%s", svc->run_dir, c->id) < 0)
        c->state_dir = NULL;
    /* A private copy of the request config, as a restart would see it. */
    size_t plen = protobuf_c_message_get_packed_size(&cfg->base);
    uint8_t *pbuf = malloc(plen ? plen : 1);
    if (pbuf) {
        protobuf_c_message_pack(&cfg->base, pbuf);
        c->config = runtime__v1__container_config__unpack(NULL, plen, pbuf);
        free(pbuf);
    }
    if (!c->sandbox_id || !c->image_name || !c->image_id || !c->image_ref || !c->handler || !c->runtime ||
        !c->runtime_root || !c->reason || !c->message || !c->dir || !c->state_dir || !c->config || !c->layers ||
        cric__ctr_add(svc, c) < 0) {
        c->refs = 1;
        cric__ctr_unref(c);
        cric_strv_free(layers);
        return cric_error_sys(err, -ENOMEM, "CreateContainer");
    }

    /* RemoveImage must not free layers under a container's overlay. */
    cric__ctr_hold_layers(c);
    /* From here on failures undo through the common remove path. */
    struct cric_spec_info info = {0};
    char *json = NULL;
    char **sysctls = NULL;
    if ((r = cric_mkdir_p(c->dir, 0700, err)) < 0 || (r = pack_config(svc, cfg, c->dir, err)) < 0 ||
        (r = log_path_for(svc, sb, cfg, c->id, &c->log_path, err)) < 0 || (r = cric_mkdir_p(c->runtime_root, 0700, err)) < 0 || (r = cric__rootfs_mount(c->dir, layers, err)) < 0)
        goto fail;

    {
        char rootfs[4096];
        snprintf(rootfs, sizeof(rootfs), "%s/rootfs", c->dir);
        const Runtime__V1__PodSandboxConfig *pc = sb ? sb->config : NULL;
        const Runtime__V1__LinuxPodSandboxConfig *pl = pc ? pc->linux : NULL;
        if (pl && pl->n_sysctls && !(sysctls = map_to_strv(pl->sysctls, pl->n_sysctls))) {
            r = cric_error_sys(err, -ENOMEM, "sysctls");
            goto fail;
        }
        struct cric_spec_sandbox ssb = {
            .id = sb_id,
            .netns_path = sb ? sb->netns_path : NULL,
            .ipc_path = sb ? sb->ipcns_path : NULL,
            .uts_path = sb ? sb->utsns_path : NULL,
            .pid_path = sb ? sb->pidns_path : NULL,
            .host_pid = sb && sb->pid_mode == RUNTIME__V1__NAMESPACE_MODE__NODE,
            .hostname = sb ? sb->hostname : NULL,
            .hosts_path = sb ? sb->hosts_path : NULL,
            .resolv_path = sb ? sb->resolv_path : NULL,
            .hostname_path = sb ? sb->hostname_path : NULL,
            .shm_path = sb ? sb->shm_path : NULL,
            .cgroup_parent = sb ? sb->cgroup_parent : NULL,
            .privileged = !sb || (pl && pl->security_context && pl->security_context->privileged),
            .sysctls = sysctls,
        };
        char target_pid[64];
        struct cric_spec_opts so = {.container_id = c->id, .rootfs = rootfs};
        so.systemd_cgroup = c->systemd_cgroup;
        const Runtime__V1__NamespaceOption *ns =
            cfg->linux && cfg->linux->security_context ? cfg->linux->security_context->namespace_options : NULL;
        if (ns && ns->pid == RUNTIME__V1__NAMESPACE_MODE__TARGET && ns->target_id) {
            struct ctr *t = cric__ctr_find(svc, ns->target_id, NULL);
            if (t && t->state == CTR_RUNNING && t->pid > 0 && strcmp(t->sandbox_id, sb_id) == 0) {
                snprintf(target_pid, sizeof(target_pid), "/proc/%d/ns/pid", t->pid);
                so.target_pid_path = target_pid;
            }
        }
        if ((r = cric_spec_generate(cfg, &ssb, &img->config, &so, &json, &info, err)) < 0)
            goto fail;
        c->uid = info.uid;
        c->gid = info.gid;
        c->stop_signal = info.stop_signal;
        char path[4096];
        snprintf(path, sizeof(path), "%s/config.json", c->dir);
        if ((r = cric__ctr_write(svc, path, json, strlen(json), err)) < 0)
            goto fail;
    }
    /* Nothing in the runtime yet (CRI allows it): StartContainer creates
     * and starts in one runtime call.  The shim that will run it is
     * launched now, after the answer, and waits (see prelaunch). */
    c->state = CTR_CREATED;
    if ((r = cric__ctr_save(c, err)) < 0) {
        c->state = CTR_CREATING;
        goto fail;
    }
    cric__ctr_event(c, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_CREATED_EVENT);
    done(data, 0, NULL, c->id);
    prelaunch(c);
    cric_spec_info_free(&info);
    free(json);
    cric__spec_strv_free(sysctls);
    cric_strv_free(layers);
    return 0;
fail:
    cric_spec_info_free(&info);
    free(json);
    cric__spec_strv_free(sysctls);
    cric_strv_free(layers);
    /* Synchronous failure: undo in the background, answer now. */
    cric__ctr_remove(c, NULL, NULL);
    return r;
}

/* ---- start ---- */

struct start_op {
    struct ctr *c;
    cric_container_done_fn done;
    void *data;
};

static void ctr_stop_begin(struct ctr *c, int64_t timeout_s);

static void start_finish(struct start_op *op, int r, const cric_error *err)
{
    struct ctr *c = op->c;
    c->starting = false;
    op->done(op->data, r, err, c->id);
    if (c->stop_pending) {
        c->stop_pending = false;
        if (c->state == CTR_EXITED)
            cric__waiters_fire(&c->exit_waiters, 0, NULL, c->id);
        else
            ctr_stop_begin(c, c->stop_pending_timeout);
    }
    free(op);
}

/* Legacy path: a container created (by `runtime create`) before this
 * version's deferred creation. */
static void start_k(struct ctr *c, const struct cric_runtime_result *res, void *arg)
{
    struct start_op *op = arg;
    if (res->status != 0) {
        cric_error *err = NULL;
        rt_error(&err, res, "start", c->id);
        start_finish(op, err->code, err);
        cric_error_free(err);
        return;
    }
    if (!c->started_at)
        c->started_at = cric__now_ns();
    if (c->state == CTR_CREATED) {
        c->state = CTR_RUNNING;
        cric__ctr_event(c, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_STARTED_EVENT);
    }
    cric_error *err = NULL;
    int r = cric__ctr_save(c, &err);
    start_finish(op, r, err);
    cric_error_free(err);
}

static void start_failed_deleted(struct ctr *c, const struct cric_runtime_result *res, void *arg)
{
    (void)res;
    (void)arg;
    c->runtime_deleted = true;
}

static void launch_done(int pid, const cric_error *lerr, void *data)
{
    struct start_op *op = data;
    struct ctr *c = op->c;
    struct cric_container_service *svc = c->svc;
    cric_error *err = NULL;
    int r;
    if (pid > 0) {
        c->pid = pid;
        if (!c->started_at)
            c->started_at = cric__now_ns();
        /* The exit may already have been seen (a container that ends at once). */
        if (c->state == CTR_CREATED) {
            c->state = CTR_RUNNING;
            cric__ctr_event(c, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_STARTED_EVENT);
        }
        /* The answer first: the record's rename can take milliseconds on a
         * busy disk, and a crash before it is recovered all the same (the
         * shim's container.pid and the runtime's state say it runs). */
        start_finish(op, 0, NULL);
        cric__ctr_save(c, NULL);
        cric__ctr_unref(c);
        cric__svc_release(svc);
        return;
    } else {
        r = cric_error_new(&err, lerr && lerr->code < 0 ? lerr->code : -EIO, "start container %s: %s", c->id,
                           lerr ? lerr->msg : "runtime failed");
        /* As containerd: a container that failed to start is exited,
         * code 128, reason StartError. */
        if (c->state == CTR_CREATED) {
            c->state = CTR_EXITED;
            c->finished_at = cric__now_ns();
            c->exit_code = 128;
            free(c->reason);
            c->reason = strdup("StartError");
            free(c->message);
            c->message = strdup(err->msg);
            cric__ctr_save(c, NULL);
            cric__ctr_event(c, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_STOPPED_EVENT);
        }
        /* A run that timed out may still finish: make sure nothing stays. */
        rt_run(c, (const char *[]){"delete", "--force", c->id, NULL}, start_failed_deleted, NULL);
    }
    start_finish(op, r, err);
    cric_error_free(err);
    cric__ctr_unref(c);
    cric__svc_release(svc);
}

/* A shim launched at create answers on its start socket. */
static void shim_started(int pid, const cric_error *err, void *data)
{
    struct start_op *op = data;
    struct ctr *c = op->c;
    if (pid <= 0 && err && err->code == -ESRCH && !cric_shim_is_alive(c->state_dir)) {
        /* It is gone (killed while it waited): launch one as without it,
         * after its stale socket. */
        char path[4096];
        snprintf(path, sizeof(path), "%s/" CRIC_SHIM_START_SOCK, c->state_dir);
        unlink(path);
        struct cric_shim_opts so;
        shim_opts(c, &so);
        cric_error *e = NULL;
        if (cric_shim_launch(c->svc->loop, &so, launch_done, op, &e) == 0)
            return;
        launch_done(0, e, op);
        cric_error_free(e);
        return;
    }
    launch_done(pid, err, op);
}

static void start_go(void *arg)
{
    struct start_op *op = arg;
    struct ctr *c = op->c;
    struct cric_container_service *svc = c->svc;
    cric_error *err = NULL;
    c->runtime_deleted = false;
    cric__ctr_ref(c);
    cric__svc_hold(svc);
    int r;
    if (cric__shim_waiting(c->state_dir)) {
        r = cric_shim_start(svc->loop, c->state_dir, c->id, 0, shim_started, op, &err);
    } else {
        struct cric_shim_opts so;
        shim_opts(c, &so);
        r = cric_shim_launch(svc->loop, &so, launch_done, op, &err);
    }
    if (r < 0) {
        c->runtime_deleted = true;
        cric__ctr_unref(c);
        cric__svc_release(svc);
        start_finish(op, err->code, err);
        cric_error_free(err);
    }
}

void cric_container_start(struct cric_container_service *svc, const char *id, cric_container_done_fn done, void *data)
{
    cric_error *err = NULL;
    struct ctr *c = cric__ctr_find(svc, id, &err);
    if (c && c->state != CTR_CREATED)
        cric_error_new(&err, -EBUSY, "container %s is %s, not created", c->id,
                       c->state == CTR_CREATING ? "being created" : c->state == CTR_RUNNING ? "running" : "exited");
    if (c && !err && c->removing)
        cric_error_new(&err, -EBUSY, "container %s is being removed", c->id);
    /* A shim there that is not waiting: a start cricd did not live to record. */
    if (c && !err &&
        (c->starting || (c->pid <= 0 && !c->prelaunching && !cric__shim_waiting(c->state_dir) &&
                         cric_shim_is_alive(c->state_dir))))
        cric_error_new(&err, -EBUSY, "container %s is being started", c->id);
    struct start_op *op = err ? NULL : calloc(1, sizeof(*op));
    if (!err && !op)
        cric_error_sys(&err, -ENOMEM, "StartContainer");
    if (err) {
        done(data, err->code, err, id);
        cric_error_free(err);
        return;
    }
    op->c = c;
    op->done = done;
    op->data = data;
    c->starting = true;
    if (c->pid > 0) {
        rt_run(c, (const char *[]){"start", c->id, NULL}, start_k, op);
        return;
    }
    if (c->prelaunching) {
        c->start_waiting = op; /* prelaunch_done goes on */
        return;
    }
    start_go(op);
}

/* ---- stop ---- */

static void ignore_k(struct ctr *c, const struct cric_runtime_result *res, void *arg)
{
    (void)c;
    (void)res;
    (void)arg;
}

/* A kill the runtime refused with no shim left: nothing will ever report
 * an exit, so do not wait the grace period for it. */
static void kill_k(struct ctr *c, const struct cric_runtime_result *res, void *arg)
{
    (void)arg;
    if (res->status != 0 && c->stop_timer && c->state != CTR_EXITED && !c->starting &&
        !cric_shim_is_alive(c->state_dir)) {
        struct cric_shim_exit ex = {.status = 137, .exited_at_ns = cric__now_ns()};
        cric__ctr_on_exit(c, &ex);
    }
}

static void send_kill(struct ctr *c)
{
    c->kill_sent = true;
    /* --all: in a pod-wide pid namespace the init's death kills nothing else. */
    rt_run(c, (const char *[]){"kill", "--all", c->id, "KILL", NULL}, kill_k, NULL);
}

static void stop_timer_fired(uv_timer_t *t)
{
    struct ctr *c = t->data;
    if (!c->kill_sent) {
        send_kill(c);
        uv_timer_start(t, stop_timer_fired, KILL_GRACE_MS, 0);
        return;
    }
    /* SIGKILL did not bring an exit record: if the shim is gone, so is the
     * container; otherwise report the stall. */
    if (!cric_shim_is_alive(c->state_dir)) {
        struct cric_shim_exit ex = {.status = 137, .exited_at_ns = cric__now_ns()};
        cric__ctr_on_exit(c, &ex);
        return;
    }
    cric_error *err = NULL;
    cric_error_new(&err, -ETIMEDOUT, "container %s did not exit after SIGKILL", c->id);
    stop_timer_cancel(c);
    c->kill_sent = false;
    cric__waiters_fire(&c->exit_waiters, err->code, err, c->id);
    cric_error_free(err);
}

static void rt_kill(struct ctr *c, int sig)
{
    char s[16];
    snprintf(s, sizeof(s), "%d", sig);
    rt_run(c, (const char *[]){"kill", c->id, s, NULL}, ignore_k, NULL);
}

static void signalled(const cric_error *err, void *data)
{
    struct ctr *c = data;
    struct cric_container_service *svc = c->svc;
    /* ESRCH: it has exited already (its exit record is on the way). */
    if (err && err->code != -ESRCH && c->state != CTR_EXITED && !c->gone && !svc->closing)
        rt_kill(c, c->stop_signal > 0 ? c->stop_signal : SIGTERM);
    cric__ctr_unref(c);
    cric__svc_release(svc);
}

static void ctr_stop(struct ctr *c, int64_t timeout_s, cric_container_done_fn done, void *data)
{
    if (c->state == CTR_EXITED) {
        if (done)
            done(data, 0, NULL, c->id);
        return;
    }
    if (c->state == CTR_CREATING) {
        cric_error *err = NULL;
        cric_error_new(&err, -EBUSY, "container %s is being created", c->id);
        if (done)
            done(data, err->code, err, c->id);
        cric_error_free(err);
        return;
    }
    if (cric__waiter_add(&c->exit_waiters, done, data) < 0) {
        cric_error *err = NULL;
        cric_error_sys(&err, -ENOMEM, "StopContainer");
        if (done)
            done(data, err->code, err, c->id);
        cric_error_free(err);
        return;
    }
    if (c->starting) {
        /* Nothing to signal before the runtime has made the process. */
        if (!c->stop_pending || timeout_s < c->stop_pending_timeout)
            c->stop_pending_timeout = timeout_s;
        c->stop_pending = true;
        return;
    }
    if (c->state == CTR_CREATED && c->runtime_deleted) {
        /* Never started: no process to signal; it ends as killed. */
        struct cric_shim_exit ex = {.status = 137, .exited_at_ns = cric__now_ns()};
        cric__ctr_on_exit(c, &ex);
        if (!c->prelaunching)
            cric__kill_waiting_shim(c->state_dir);
        return;
    }
    ctr_stop_begin(c, timeout_s);
}

static void ctr_stop_begin(struct ctr *c, int64_t timeout_s)
{
    struct cric_container_service *svc = c->svc;
    if (timeout_s == 0 && svc->cfg && svc->cfg->containers_stop_timeout)
        timeout_s = (int64_t)svc->cfg->containers_stop_timeout;
    bool immediate = timeout_s <= 0 || c->state == CTR_CREATED;
    if (c->stop_timer) {
        /* A stop is under way; a harsher request hurries it. */
        if (immediate && !c->kill_sent) {
            send_kill(c);
            uv_timer_start(c->stop_timer, stop_timer_fired, KILL_GRACE_MS, 0);
        }
        return;
    }
    c->stop_timer = malloc(sizeof(*c->stop_timer));
    if (!c->stop_timer) {
        cric_error *err = NULL;
        cric_error_sys(&err, -ENOMEM, "StopContainer");
        cric__waiters_fire(&c->exit_waiters, err->code, err, c->id);
        cric_error_free(err);
        return;
    }
    uv_timer_init(svc->loop, c->stop_timer);
    c->stop_timer->data = c;
    cric__ctr_ref(c);
    cric__svc_hold(svc);
    c->kill_sent = false;
    if (immediate) {
        send_kill(c);
        uv_timer_start(c->stop_timer, stop_timer_fired, KILL_GRACE_MS, 0);
    } else {
        /* Through the shim (no runtime process); the runtime if the shim
         * cannot (an older shim). */
        int sig = c->stop_signal > 0 ? c->stop_signal : SIGTERM;
        cric__ctr_ref(c);
        cric__svc_hold(svc);
        if (cric_shim_signal(svc->loop, c->state_dir, sig, signalled, c, NULL) < 0) {
            cric__ctr_unref(c);
            cric__svc_release(svc);
            rt_kill(c, sig);
        }
        uint64_t ms = (uint64_t)timeout_s * 1000;
        uv_timer_start(c->stop_timer, stop_timer_fired, ms, 0);
    }
}

void cric_container_stop(struct cric_container_service *svc, const char *id, int64_t timeout_s,
                         cric_container_done_fn done, void *data)
{
    cric_error *err = NULL;
    struct ctr *c = cric__ctr_find(svc, id, &err);
    if (!c) {
        /* CRI: stopping what is not there is not an error. */
        int r = err->code == -ENOENT ? 0 : err->code;
        done(data, r, r ? err : NULL, id);
        cric_error_free(err);
        return;
    }
    ctr_stop(c, timeout_s, done, data);
}

/* ---- remove ---- */

static void remove_finish(void *data, int rc)
{
    struct ctr *c = data;
    struct cric_container_service *svc = c->svc;
    (void)rc;
    cric__ctr_release_layers(c);
    cric__waiters_fire(&c->remove_waiters, 0, NULL, c->id);
    if (!c->gone)
        cric__ctr_drop(c);
    cric__ctr_unref(c);
    cric__svc_release(svc);
}

static void remove_deleted(struct ctr *c, const struct cric_runtime_result *res, void *arg)
{
    (void)res;
    (void)arg;
    struct cric_container_service *svc = c->svc;
    /* A shim still alive here (half-created at a crash) owns nothing more. */
    struct cric_shim_status st = {0};
    if (cric_shim_status(c->state_dir, &st, NULL) == 0 && st.state == CRIC_SHIM_RUNNING && st.shim_pid > 0)
        kill(st.shim_pid, SIGKILL);
    cric_shim_exit_forget(svc->exits_dir, c->id, NULL);
    /* The record goes first so that a crash mid-way leaves a directory the
     * next start recognises as garbage. */
    char rec[4096];
    snprintf(rec, sizeof(rec), "%s/record.json", c->dir);
    unlink(rec);
    char **dirs = calloc(3, sizeof(char *));
    if (dirs && (dirs[0] = strdup(c->dir)) && (dirs[1] = strdup(c->state_dir))) {
        cric__ctr_ref(c);
        cric__svc_hold(svc);
        if (cric__rm_trees(svc->loop, c->dir, dirs, remove_finish, c) == 0) {
            /* Without its record the container is gone (a restart would
             * finish the removal): answer now; the image layers stay held
             * until the overlay is unmounted. */
            cric__waiters_fire(&c->remove_waiters, 0, NULL, c->id);
            if (!c->gone)
                cric__ctr_drop(c);
            return;
        }
        cric__ctr_unref(c);
        cric__svc_release(svc);
    } else {
        cric__spec_strv_free(dirs);
    }
    cric__rootfs_unmount(c->dir, NULL);
    cric_rm_rf(c->dir, NULL);
    cric_rm_rf(c->state_dir, NULL);
    cric__ctr_ref(c);
    cric__svc_hold(svc);
    remove_finish(c, 0);
}

static void remove_after_stop(void *data, int rc, const cric_error *err, const char *id)
{
    (void)id;
    struct ctr *c = data;
    if (rc < 0 && !c->gone) {
        c->removing = false;
        cric__waiters_fire(&c->remove_waiters, rc, err, c->id);
    } else if (!c->gone) {
        /* An after-exit delete under way finishes on its own: the files
         * removed here are not the runtime's. */
        if (c->runtime_deleted || c->deleting) {
            struct cric_runtime_result res = {.status = 0, .out = (char *)"", .err = (char *)""};
            remove_deleted(c, &res, NULL);
        } else {
            rt_run(c, (const char *[]){"delete", "--force", c->id, NULL}, remove_deleted, NULL);
        }
    }
    cric__ctr_unref(c);
}

void cric__ctr_remove(struct ctr *c, cric_container_done_fn done, void *data)
{
    if (done && cric__waiter_add(&c->remove_waiters, done, data) < 0) {
        cric_error *err = NULL;
        cric_error_sys(&err, -ENOMEM, "RemoveContainer");
        done(data, err->code, err, c->id);
        cric_error_free(err);
        return;
    }
    if (c->removing)
        return;
    c->removing = true;
    if ((c->state == CTR_CREATED && (!c->runtime_deleted || c->starting)) || c->state == CTR_RUNNING) {
        cric__ctr_ref(c);
        ctr_stop(c, -1, remove_after_stop, c);
        return;
    }
    if (c->runtime_deleted || c->deleting) {
        struct cric_runtime_result res = {.status = 0, .out = (char *)"", .err = (char *)""};
        remove_deleted(c, &res, NULL);
        return;
    }
    rt_run(c, (const char *[]){"delete", "--force", c->id, NULL}, remove_deleted, NULL);
}

void cric_container_remove(struct cric_container_service *svc, const char *id, cric_container_done_fn done,
                           void *data)
{
    cric_error *err = NULL;
    struct ctr *c = cric__ctr_find(svc, id, &err);
    if (!c) {
        int r = err->code == -ENOENT ? 0 : err->code;
        done(data, r, r ? err : NULL, id);
        cric_error_free(err);
        return;
    }
    if (c->state == CTR_CREATING && !c->removing) {
        cric_error_new(&err, -EBUSY, "container %s is being created", c->id);
        done(data, err->code, err, c->id);
        cric_error_free(err);
        return;
    }
    cric__ctr_remove(c, done, data);
}

int cric__runtime(struct ctr *c, const char *verb, const char *a1, const char *a2, unsigned timeout_ms,
                  cric_runtime_cb cb, void *data, cric_error **err)
{
    const char *argv[10];
    size_t n = 0;
    argv[n++] = c->runtime;
    if (c->runtime_root && c->runtime_root[0]) {
        argv[n++] = "--root";
        argv[n++] = c->runtime_root;
    }
    if (c->systemd_cgroup)
        argv[n++] = "--systemd-cgroup";
    argv[n++] = verb;
    if (a1)
        argv[n++] = a1;
    if (a2)
        argv[n++] = a2;
    argv[n++] = c->id;
    argv[n] = NULL;
    return cric_runtime_run(c->svc->loop, argv, timeout_ms, cb, data, err);
}

void cric__ctr_hold_layers(struct ctr *c)
{
    /* A layer already gone (removed by hand) is simply not held. */
    for (size_t i = 0; c->svc->images && c->layers && c->layers[i]; i++)
        cric_image_store_hold_layer(c->svc->images, c->layers[i]);
}

void cric__ctr_release_layers(struct ctr *c)
{
    for (size_t i = 0; c->svc->images && c->layers && c->layers[i]; i++)
        if (cric_image_store_has_layer(c->svc->images, c->layers[i]))
            cric_image_store_release_layer(c->svc->images, c->layers[i]);
    cric__spec_strv_free(c->layers);
    c->layers = NULL;
}

static void refresh_k(struct ctr *c, const struct cric_runtime_result *res, void *arg)
{
    (void)arg;
    if (res->status != 0 || !res->out || c->state != CTR_CREATED)
        return;
    /* runc/crun state: {"status": "running", ...} */
    if (strstr(res->out, "\"status\": \"running\"") || strstr(res->out, "\"status\":\"running\"")) {
        c->state = CTR_RUNNING;
        if (!c->started_at)
            c->started_at = cric__now_ns();
        cric__ctr_save(c, NULL);
    }
}

void cric__ctr_refresh_created(struct ctr *c)
{
    rt_run(c, (const char *[]){"state", c->id, NULL}, refresh_k, NULL);
}

void cric__ctr_cancel_stop(struct ctr *c)
{
    stop_timer_cancel(c);
    cric_error *err = NULL;
    cric_error_new(&err, -ECANCELED, "cricd is shutting down");
    cric__waiters_fire(&c->exit_waiters, err->code, err, c->id);
    cric_error_free(err);
}
