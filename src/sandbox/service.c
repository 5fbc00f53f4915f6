/* The sandbox service: lifecycle state machines on the loop thread.
 * Operations on one sandbox run one after another (a per-sandbox queue). */
#define _GNU_SOURCE
#include "config.h"
#include "sandbox/priv.h"
#include "cni/cni.h"
#include "util/yj.h"
#include "util/cleanup.h"
#include "util/fs.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum op_kind { OP_RUN, OP_STOP, OP_REMOVE, OP_CHECK };

struct sb_op {
    enum op_kind kind;
    struct cric_sandbox_service *svc;
    char id[65];
    int step;
    uint64_t child_ns;           /* time spent in child processes (pinns, CNI) */
    uint64_t spawn_start;        /* cric_child_spawn_ns() when the op started */
    bool sync_pending;           /* the record's fsync runs on the thread pool */
    bool sync_waiting;           /* ... and the op waits for it */
    bool saved_early;            /* Stop: NOTREADY written while DEL ran */
    cric_error *err;             /* first failure */
    cric_sandbox_done_fn done;
    void *data;
    struct sb_op *next;
    struct sb_op *wait_next;     /* in svc->cg_waiters */
};

static void op_start(struct sb_op *op);
static void op_step(struct sb_op *op);
static void on_sync_done(void *data, int rc, cric_error *e);

static char *xstrdup(const char *s)
{
    return strdup(s ? s : "");
}

static struct cric_sandbox *find_exact(struct cric_sandbox_service *svc, const char *id)
{
    for (size_t i = 0; i < svc->n; i++)
        if (strcmp(svc->sbs[i]->id, id) == 0)
            return svc->sbs[i];
    return NULL;
}

static int find_prefix(struct cric_sandbox_service *svc, const char *id, bool include_creating,
                       struct cric_sandbox **out, cric_error **err)
{
    if (!id || !*id)
        return cric_error_new(err, -EINVAL, "pod sandbox id is empty");
    struct cric_sandbox *found = NULL;
    size_t len = strlen(id);
    for (size_t i = 0; i < svc->n; i++) {
        struct cric_sandbox *sb = svc->sbs[i];
        if ((!include_creating && sb->state == CRIC_SANDBOX_CREATING) || strncmp(sb->id, id, len) != 0)
            continue;
        if (len == 64) {
            found = sb;
            break;
        }
        if (found)
            return cric_error_new(err, -EINVAL, "pod sandbox id prefix '%s' is ambiguous", id);
        found = sb;
    }
    if (!found)
        return cric_error_new(err, -ENOENT, "pod sandbox '%s' not found", id);
    *out = found;
    return 0;
}

int cric_sandbox_lookup(struct cric_sandbox_service *svc, const char *id, const struct cric_sandbox **out,
                        cric_error **err)
{
    struct cric_sandbox *sb = NULL;
    int r = find_prefix(svc, id, false, &sb, err);
    if (r == 0)
        *out = sb;
    return r;
}

void cric_sandbox_foreach(struct cric_sandbox_service *svc, void (*fn)(const struct cric_sandbox *sb, void *data),
                          void *data)
{
    for (size_t i = 0; i < svc->n; i++)
        if (svc->sbs[i]->state != CRIC_SANDBOX_CREATING)
            fn(svc->sbs[i], data);
}

static int list_add(struct cric_sandbox_service *svc, struct cric_sandbox *sb)
{
    if (svc->n == svc->cap) {
        size_t nc = svc->cap ? svc->cap * 2 : 16;
        struct cric_sandbox **n = realloc(svc->sbs, nc * sizeof(*n));
        if (!n)
            return -ENOMEM;
        svc->sbs = n;
        svc->cap = nc;
    }
    svc->sbs[svc->n++] = sb;
    return 0;
}

static void list_del(struct cric_sandbox_service *svc, struct cric_sandbox *sb)
{
    for (size_t i = 0; i < svc->n; i++) {
        if (svc->sbs[i] == sb) {
            memmove(&svc->sbs[i], &svc->sbs[i + 1], (svc->n - i - 1) * sizeof(*svc->sbs));
            svc->n--;
            return;
        }
    }
}

/* ---------------------------------------------------------------- service */

static void strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

static void service_free(struct cric_sandbox_service *svc)
{
    for (size_t i = 0; i < svc->n; i++)
        sb__free(svc->sbs[i]);
    free(svc->sbs);
    free(svc->root);
    free(svc->state);
    free(svc->sb_dir);
    free(svc->ns_root);
    strv_free(svc->plugin_dirs);
    strv_free(svc->cg_mounts);
    free(svc->nc.file);
    free(svc->nc.text);
    free(svc->config_dir);
    free(svc->cache_dir);
    free(svc->cgroup_parent);
    free(svc->cgroup_driver);
    free(svc->pinns);
    free(svc->pod_cidr);
    free(svc->check_ids);
    free(svc);
}

static void maybe_closed(struct cric_sandbox_service *svc)
{
    if (!svc->closing || svc->inflight)
        return;
    void (*cb)(void *) = svc->close_cb;
    void *data = svc->close_data;
    service_free(svc);
    if (cb)
        cb(data);
}

static void on_check_timer_closed(uv_handle_t *h)
{
    struct cric_sandbox_service *svc = h->data;
    svc->inflight--;
    maybe_closed(svc);
}

void cric_sandbox_service_close(struct cric_sandbox_service *svc, void (*cb)(void *), void *data)
{
    svc->closing = true;
    svc->check_next = svc->check_n; /* checks not started yet are dropped */
    if (svc->check_timer_open) {
        svc->check_timer_open = false;
        uv_close((uv_handle_t *)&svc->check_timer, on_check_timer_closed);
    }
    svc->close_cb = cb;
    svc->close_data = data;
    maybe_closed(svc);
}

void cric_sandbox_set_container_hooks(struct cric_sandbox_service *svc,
                                      const struct cric_sandbox_container_hooks *hooks)
{
    if (hooks) {
        svc->hooks = *hooks;
        svc->have_hooks = true;
    } else {
        svc->have_hooks = false;
    }
}

int cric_sandbox_set_pod_cidr(struct cric_sandbox_service *svc, const char *cidr, cric_error **err)
{
    char *c = NULL;
    if (cidr && *cidr && !(c = strdup(cidr)))
        return cric_error_sys(err, -ENOMEM, "pod CIDR");
    free(svc->pod_cidr);
    svc->pod_cidr = c;
    return 0;
}

uint64_t cric_sandbox_last_child_ns(const struct cric_sandbox_service *svc)
{
    return svc->last_child_ns;
}

uint64_t cric_sandbox_last_spawn_ns(const struct cric_sandbox_service *svc)
{
    return svc->last_spawn_ns;
}

bool cric_sandbox_network_ready(struct cric_sandbox_service *svc, char **reason)
{
    return cric_cni_ready(svc->config_dir, (const char *const *)svc->plugin_dirs, reason);
}

/* A pod found on disk is checked against the host: pins still mounted,
 * pause process still the same one.  What is gone makes it NOTREADY; a
 * pod that was still being created is rolled back by a remove. */
static void recover_one(struct cric_sandbox_service *svc, struct cric_sandbox *sb)
{
    bool ok = true;
    if (sb->netns_path && !sb__pin_ok(sb->netns_path))
        ok = false;
    if (sb->ipcns_path && !sb__pin_ok(sb->ipcns_path))
        ok = false;
    if (sb->pause_pid > 0 && sb__proc_start(sb->pause_pid) != sb->priv->pause_start) {
        sb->pause_pid = 0;
        free(sb->pidns_path);
        sb->pidns_path = NULL;
        ok = false;
    }
    if (sb->state == CRIC_SANDBOX_READY && !ok) {
        sb->state = CRIC_SANDBOX_NOTREADY;
        sb__record_save(svc, sb, NULL);
    }
}

static void teardown_host(struct cric_sandbox *sb, const char *dir);
static void op_enqueue(struct cric_sandbox *sb, struct sb_op *op);

/* ---------------------------------------------------------------- CNI CHECK */

/* At most this many pods are checked at once: every plugin start blocks
 * the loop until it has exec'ed. */
#define CHECK_CONCURRENCY 2
/* Checks start this long after start-up, once the socket serves. */
#define CHECK_DELAY_MS 100

static void set_check(struct cric_sandbox *sb, enum sb_net_check st, const char *msg)
{
    free(sb->priv->net_check_msg);
    sb->priv->net_check_msg = msg ? strdup(msg) : NULL;
    sb->priv->net_check = st;
}

/* Starts checks up to CHECK_CONCURRENCY; each is an op on its pod's queue,
 * so a Stop or Remove waits for it instead of racing it. */
static void start_checks(struct cric_sandbox_service *svc)
{
    while (!svc->closing && svc->check_running < CHECK_CONCURRENCY && svc->check_next < svc->check_n) {
        struct cric_sandbox *sb = find_exact(svc, svc->check_ids[svc->check_next++]);
        if (!sb || sb->priv->net_check != SB_CHECK_PENDING)
            continue;
        struct sb_op *op = calloc(1, sizeof(*op));
        if (!op) {
            set_check(sb, SB_CHECK_NONE, NULL);
            continue;
        }
        op->kind = OP_CHECK;
        op->svc = svc;
        memcpy(op->id, sb->id, sizeof(op->id));
        svc->check_running++;
        op_enqueue(sb, op);
    }
}

static void on_check_timer(uv_timer_t *t)
{
    struct cric_sandbox_service *svc = t->data;
    svc->check_timer_open = false;
    uv_close((uv_handle_t *)t, on_check_timer_closed);
    start_checks(svc);
}

/* After a restart, the network of every ready pod with a CNI network is
 * checked (CNI CHECK with the cached ADD result) where the config allows:
 * cniVersion 0.4.0 or later and no "disableCheck". */
static void schedule_checks(struct cric_sandbox_service *svc)
{
    size_t n = 0;
    for (size_t i = 0; i < svc->n; i++) {
        struct cric_sandbox *sb = svc->sbs[i];
        if (sb->state != CRIC_SANDBOX_READY || !sb->netns_path || !sb->priv->network_attached ||
            !sb->priv->cni_result || !sb->priv->cni_conf_text)
            continue;
        if (!sb->priv->cni_conf_parsed &&
            cric_cni_netconf_parse(sb->priv->cni_conf_file ? sb->priv->cni_conf_file : "(stored)",
                                   sb->priv->cni_conf_text, &sb->priv->cni_conf_parsed, NULL) < 0)
            continue;
        const struct cric_cni_netconf *c = sb->priv->cni_conf_parsed;
        if (c->disable_check) {
            set_check(sb, SB_CHECK_SKIPPED, "the network config sets disableCheck");
            continue;
        }
        if (!cric_cni_version_has_check(c->cni_version)) {
            char m[128];
            snprintf(m, sizeof(m), "cniVersion %.32s has no CHECK (0.4.0 and later)", c->cni_version);
            set_check(sb, SB_CHECK_SKIPPED, m);
            continue;
        }
        if (!svc->check_ids && !(svc->check_ids = calloc(svc->n, sizeof(*svc->check_ids))))
            return;
        memcpy(svc->check_ids[n++], sb->id, 65);
        set_check(sb, SB_CHECK_PENDING, NULL);
    }
    svc->check_n = n;
    if (n && uv_timer_init(svc->loop, &svc->check_timer) == 0) {
        svc->check_timer.data = svc;
        svc->check_timer_open = true;
        svc->inflight++;
        uv_timer_start(&svc->check_timer, on_check_timer, CHECK_DELAY_MS, 0);
    }
}

static int start_cni(struct sb_op *op, struct cric_sandbox *sb, enum cric_cni_op cop, cric_error **err);
static void op_finish(struct sb_op *op, struct cric_sandbox *sb);
static void op_fail(struct sb_op *op, cric_error *e);

/* Check: 0 CNI CHECK, 1 done. */
static void check_step(struct sb_op *op, struct cric_sandbox *sb)
{
    struct cric_sandbox_service *svc = op->svc;
    cric_error *e = NULL;
    if (op->step++ == 0 && !svc->closing && sb && sb->state == CRIC_SANDBOX_READY && sb->priv->network_attached) {
        if (start_cni(op, sb, CRIC_CNI_CHECK, &e) == 0)
            return;
        op_fail(op, e);
    }
    if (sb && sb->priv->net_check == SB_CHECK_PENDING) {
        /* Not run (stopped meanwhile) or could not start. */
        if (op->err)
            set_check(sb, SB_CHECK_FAILED, op->err->msg);
        else
            set_check(sb, SB_CHECK_NONE, NULL);
        if (op->err && svc->net_check_cb)
            svc->net_check_cb(svc->net_check_data, sb->id, op->err->code, op->err->msg);
    }
    svc->check_running--;
    bool more = !svc->closing;
    op_finish(op, sb);
    if (more)
        start_checks(svc);
}

/* A pod removed before a crash whose background teardown had not
 * finished: its record in the renamed directory says what is left. */
static void cleanup_trash(struct cric_sandbox_service *svc, const char *name)
{
    _cleanup_free_ char *dir = NULL, *shm = NULL;
    if (asprintf(&dir, "%s/%s", svc->sb_dir, name) < 0 || asprintf(&shm, "%s/shm", dir) < 0)
        return;
    struct cric_sandbox *sb = NULL;
    if (strlen(name) == 7 + 64 && sb__record_load_at(svc, name, name + 7, &sb, NULL) == 0) {
        free(sb->shm_path);
        sb->shm_path = TAKE_PTR(shm);
        teardown_host(sb, dir);
        sb__free(sb);
        return;
    }
    /* No readable record (the removal had got that far): what can be
     * mounted in the directory itself still must not stop its removal. */
    while (umount2(shm, MNT_DETACH) == 0)
        ;
    cric_rm_rf(dir, NULL);
}

/* Pins under <state>/ns whose pod has no record: a crash between
 * the removal of a record and the unmounts.  Unmounted and deleted. */
static void cleanup_orphan_pins(struct cric_sandbox_service *svc)
{
    _cleanup_closedir_ DIR *d = opendir(svc->ns_root);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        _cleanup_free_ char *rec = NULL;
        struct stat st;
        /* A pod directory with an unreadable record keeps its pins too. */
        if (strlen(de->d_name) != 64 || find_exact(svc, de->d_name) ||
            asprintf(&rec, "%s/%s", svc->sb_dir, de->d_name) < 0 || lstat(rec, &st) == 0)
            continue;
        static const char *const names[] = { "net", "ipc", "uts", "pid" };
        for (size_t i = 0; i < 4; i++) {
            _cleanup_free_ char *p = NULL;
            if (asprintf(&p, "%s/%s/%s", svc->ns_root, de->d_name, names[i]) < 0)
                continue;
            while (i < 3 && umount2(p, MNT_DETACH) == 0)
                ;
            unlink(p);
        }
        _cleanup_free_ char *p = NULL;
        if (asprintf(&p, "%s/%s", svc->ns_root, de->d_name) >= 0)
            rmdir(p);
    }
}

int cric_sandbox_service_new(uv_loop_t *loop, const struct cric_sandbox_opts *opts,
                             struct cric_sandbox_service **out, cric_error **err)
{
    struct cric_sandbox_service *svc = calloc(1, sizeof(*svc));
    if (!svc)
        return cric_error_sys(err, -ENOMEM, "sandbox service");
    svc->loop = loop;
    svc->net_check_cb = opts->net_check_cb;
    svc->net_check_data = opts->net_check_data;
    svc->timeout_ms = opts->cni_timeout_ms ? opts->cni_timeout_ms : 60000;
    svc->shm_size = opts->shm_size ? opts->shm_size : 64ull * 1024 * 1024;
    size_t nd = 0;
    while (opts->cni_plugin_dirs && opts->cni_plugin_dirs[nd])
        nd++;
    svc->plugin_dirs = calloc(nd + 1, sizeof(char *));
    bool oom = !svc->plugin_dirs;
    for (size_t i = 0; !oom && i < nd; i++)
        oom |= !(svc->plugin_dirs[i] = strdup(opts->cni_plugin_dirs[i]));
    oom |= !(svc->root = xstrdup(opts->root)) || !(svc->state = xstrdup(opts->state)) ||
           !(svc->config_dir = xstrdup(opts->cni_config_dir)) ||
           !(svc->cgroup_parent = xstrdup(opts->cgroup_parent ? opts->cgroup_parent : "/kubepods")) ||
           !(svc->cgroup_driver = xstrdup(opts->cgroup_driver ? opts->cgroup_driver : "cgroupfs"));
    /* A path-style default (the built-in "/kubepods") means nothing to the
     * systemd driver: pods without a parent of their own go to system.slice,
     * as with CRI-O. */
    if (!oom && strcmp(svc->cgroup_driver, "systemd") == 0 && strchr(svc->cgroup_parent, '/')) {
        free(svc->cgroup_parent);
        oom |= !(svc->cgroup_parent = strdup("system.slice"));
    }
    oom |= asprintf(&svc->sb_dir, "%s/sandboxes", svc->root ? svc->root : "") < 0;
    oom |= asprintf(&svc->ns_root, "%s/ns", svc->state ? svc->state : "") < 0;
    if (opts->cni_cache_dir)
        oom |= !(svc->cache_dir = strdup(opts->cni_cache_dir));
    svc->pinns = opts->helper_pinns ? strdup(opts->helper_pinns) : cric_helper_path("cric-pinns");
    oom |= !svc->pinns;
    if (oom) {
        service_free(svc);
        return cric_error_sys(err, -ENOMEM, "sandbox service");
    }
    int r = cric_mkdir_p(svc->sb_dir, 0700, err);
    if (r == 0)
        r = cric_mkdir_p(svc->ns_root, 0700, err);
    if (r < 0) {
        service_free(svc);
        return r;
    }
    _cleanup_closedir_ DIR *d = opendir(svc->sb_dir);
    if (!d) {
        r = cric_error_sys(err, -errno, "open '%s'", svc->sb_dir);
        service_free(svc);
        return r;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, ".trash-", 7) == 0) {
            cleanup_trash(svc, de->d_name);
            continue;
        }
        if (strlen(de->d_name) != 64)
            continue;
        _cleanup_free_ char *pdir = NULL;
        if (asprintf(&pdir, "%s/%s", svc->sb_dir, de->d_name) >= 0)
            sb__record_tidy(pdir);
        struct cric_sandbox *sb = NULL;
        _cleanup_error_ cric_error *e = NULL;
        /* A record that cannot be read is left on disk untouched (never
         * lose data) and skipped; the daemon still comes up. */
        if (sb__record_load(svc, de->d_name, &sb, &e) < 0)
            continue;
        if (list_add(svc, sb) < 0) {
            sb__free(sb);
            service_free(svc);
            return cric_error_sys(err, -ENOMEM, "sandbox service");
        }
        recover_one(svc, sb);
    }
    cleanup_orphan_pins(svc);
    /* Roll back pods that were half-created when the daemon died. */
    for (size_t i = 0; i < svc->n; i++)
        if (svc->sbs[i]->state == CRIC_SANDBOX_CREATING)
            cric_sandbox_remove(svc, svc->sbs[i]->id, NULL, NULL);
    schedule_checks(svc);
    *out = svc;
    return 0;
}

/* ---------------------------------------------------------------- queue */

static void op_free(struct sb_op *op)
{
    cric_error_free(op->err);
    free(op);
}

static void op_enqueue(struct cric_sandbox *sb, struct sb_op *op)
{
    op->svc->inflight++;
    if (sb->priv->ops_tail)
        sb->priv->ops_tail->next = op;
    else
        sb->priv->ops_head = op;
    sb->priv->ops_tail = op;
    if (!sb->priv->busy)
        op_start(op);
}

/* Answers the request of op (once); the op may go on with work that the
 * reply need not wait for. */
static void op_reply(struct sb_op *op)
{
    op->svc->last_child_ns = op->child_ns;
    op->svc->last_spawn_ns = cric_child_spawn_ns() - op->spawn_start;
    cric_sandbox_done_fn done = op->done;
    op->done = NULL;
    if (done)
        done(op->data, op->err ? op->err->code : 0, op->err, op->id);
}

/* Finishes the head op of its sandbox (sb may be NULL once removed) and
 * starts the next one. */
static void op_finish(struct sb_op *op, struct cric_sandbox *sb)
{
    struct cric_sandbox_service *svc = op->svc;
    struct sb_op *next = NULL;
    if (sb) {
        sb->priv->ops_head = op->next;
        if (!sb->priv->ops_head)
            sb->priv->ops_tail = NULL;
        sb->priv->busy = false;
        next = sb->priv->ops_head;
    } else {
        /* The sandbox is gone: every queued op completes now as a no-op
         * (stop/remove of a missing pod succeed). */
        next = op->next;
        while (next) {
            struct sb_op *n = next->next;
            if (next->done)
                next->done(next->data, 0, NULL, next->id);
            op_free(next);
            svc->inflight--;
            next = n;
        }
    }
    op_reply(op);
    op_free(op);
    svc->inflight--;
    if (next)
        op_start(next);
    else
        maybe_closed(svc);
}

static void op_fail(struct sb_op *op, cric_error *e)
{
    if (!op->err)
        op->err = e;
    else
        cric_error_free(e);
}

/* ---------------------------------------------------------------- run */

static bool hex_id(char out[65])
{
    uint8_t b[32];
    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
        return false;
    for (int i = 0; i < 32; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
    out[64] = '\0';
    return true;
}

static int ns_mode(const Runtime__V1__PodSandboxConfig *c, int which)
{
    const Runtime__V1__NamespaceOption *no = c->linux && c->linux->security_context
                                                 ? c->linux->security_context->namespace_options
                                                 : NULL;
    if (!no)
        return RUNTIME__V1__NAMESPACE_MODE__POD;
    int m = which == 0 ? no->network : which == 1 ? no->pid : no->ipc;
    return m;
}

static struct cric_sandbox *sb_from_config(struct cric_sandbox_service *svc, const Runtime__V1__PodSandboxConfig *cfg,
                                           const char *handler, cric_error **err)
{
    struct cric_sandbox *sb = sb__alloc();
    if (!sb || !hex_id(sb->id)) {
        sb__free(sb);
        cric_error_sys(err, -ENOMEM, "RunPodSandbox");
        return NULL;
    }
    size_t len = runtime__v1__pod_sandbox_config__get_packed_size(cfg);
    _cleanup_free_ uint8_t *pb = malloc(len ? len : 1);
    if (!pb) {
        sb__free(sb);
        cric_error_sys(err, -ENOMEM, "RunPodSandbox");
        return NULL;
    }
    runtime__v1__pod_sandbox_config__pack(cfg, pb);
    if (sb__set_config(sb, pb, len, err) < 0) {
        sb__free(sb);
        return NULL;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    sb->created_at = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    sb->state = CRIC_SANDBOX_CREATING;
    const Runtime__V1__PodSandboxMetadata *md = cfg->metadata;
    sb->name = xstrdup(md->name);
    sb->uid = xstrdup(md->uid);
    sb->namespace_ = xstrdup(md->namespace_);
    sb->attempt = md->attempt;
    sb->hostname = xstrdup(cfg->hostname && *cfg->hostname ? cfg->hostname : md->name);
    sb->runtime_handler = xstrdup(handler);
    sb->log_directory = xstrdup(cfg->log_directory);
    const char *cgp = cfg->linux && cfg->linux->cgroup_parent && *cfg->linux->cgroup_parent ? cfg->linux->cgroup_parent
                                                                                             : svc->cgroup_parent;
    sb->cgroup_parent = xstrdup(cgp);
    sb->network_mode = ns_mode(cfg, 0);
    sb->pid_mode = ns_mode(cfg, 1);
    sb->ipc_mode = ns_mode(cfg, 2);
    sb->ips = calloc(1, sizeof(char *));
    bool oom = !sb->name || !sb->uid || !sb->namespace_ || !sb->hostname || !sb->runtime_handler ||
               !sb->log_directory || !sb->cgroup_parent || !sb->ips;
    oom |= asprintf(&sb->priv->ns_dir, "%s/%s", svc->ns_root, sb->id) < 0;
    oom |= asprintf(&sb->dir, "%s/%s", svc->sb_dir, sb->id) < 0;
    oom |= asprintf(&sb->hostname_path, "%s/hostname", sb->dir) < 0;
    oom |= asprintf(&sb->hosts_path, "%s/hosts", sb->dir) < 0;
    oom |= asprintf(&sb->resolv_path, "%s/resolv.conf", sb->dir) < 0;
    if (sb->network_mode != RUNTIME__V1__NAMESPACE_MODE__NODE) {
        oom |= asprintf(&sb->netns_path, "%s/net", sb->priv->ns_dir) < 0;
        oom |= asprintf(&sb->utsns_path, "%s/uts", sb->priv->ns_dir) < 0;
    }
    if (sb->ipc_mode != RUNTIME__V1__NAMESPACE_MODE__NODE) {
        oom |= asprintf(&sb->ipcns_path, "%s/ipc", sb->priv->ns_dir) < 0;
        oom |= asprintf(&sb->shm_path, "%s/shm", sb->dir) < 0;
    }
    if (oom) {
        sb__free(sb);
        cric_error_sys(err, -ENOMEM, "RunPodSandbox");
        return NULL;
    }
    return sb;
}

/* Names travel in CNI_ARGS ("K=V;K=V") and in paths. */
static bool bad_name(const char *s)
{
    return !s || !*s || strpbrk(s, "/\n;=") || strlen(s) > 253;
}

int cric_sandbox_run(struct cric_sandbox_service *svc, const Runtime__V1__PodSandboxConfig *cfg,
                     const char *runtime_handler, cric_sandbox_done_fn done, void *data, cric_error **err)
{
    if (svc->closing)
        return cric_error_new(err, -ESHUTDOWN, "RunPodSandbox: the daemon is shutting down");
    if (!cfg || !cfg->metadata)
        return cric_error_new(err, -EINVAL, "RunPodSandbox: config.metadata is required");
    const Runtime__V1__PodSandboxMetadata *md = cfg->metadata;
    if (bad_name(md->name) || bad_name(md->namespace_) || !md->uid || !*md->uid || strpbrk(md->uid, "\n;="))
        return cric_error_new(err, -EINVAL,
                              "RunPodSandbox: metadata name, uid and namespace must be non-empty and free of "
                              "';', '=' and newlines (name and namespace also of '/')");
    if (cfg->hostname && (strchr(cfg->hostname, '\n') || strlen(cfg->hostname) > 64))
        return cric_error_new(err, -EINVAL, "RunPodSandbox: hostname '%s' is not valid", cfg->hostname);
    for (size_t i = 0; i < svc->n; i++) {
        struct cric_sandbox *o = svc->sbs[i];
        if (strcmp(o->name, md->name) == 0 && strcmp(o->uid, md->uid) == 0 &&
            strcmp(o->namespace_, md->namespace_) == 0 && o->attempt == md->attempt)
            return cric_error_new(err, -EEXIST,
                                  "pod sandbox with name '%s', uid '%s', namespace '%s', attempt %u already "
                                  "exists: %s",
                                  md->name, md->uid, md->namespace_, md->attempt, o->id);
    }
    for (size_t i = 0; i < cfg->n_port_mappings; i++) {
        const Runtime__V1__PortMapping *p = cfg->port_mappings[i];
        if (p->container_port <= 0 || p->container_port > 65535 || p->host_port < 0 || p->host_port > 65535)
            return cric_error_new(err, -EINVAL, "RunPodSandbox: port mapping %zu: ports out of range", i);
    }
    const Runtime__V1__NamespaceOption *no = cfg->linux && cfg->linux->security_context
                                                 ? cfg->linux->security_context->namespace_options
                                                 : NULL;
    if (no && (no->network == RUNTIME__V1__NAMESPACE_MODE__TARGET || no->ipc == RUNTIME__V1__NAMESPACE_MODE__TARGET ||
               no->pid == RUNTIME__V1__NAMESPACE_MODE__TARGET))
        return cric_error_new(err, -EINVAL, "RunPodSandbox: namespace mode TARGET is only valid for containers");
    struct cric_sandbox *sb = sb_from_config(svc, cfg, runtime_handler, err);
    if (!sb)
        return err && *err ? (*err)->code : -ENOMEM;
    int r = sb__check_sysctls(sb, err);
    if (r < 0) {
        sb__free(sb);
        return r;
    }
    struct sb_op *op = calloc(1, sizeof(*op));
    if (!op || list_add(svc, sb) < 0) {
        free(op);
        sb__free(sb);
        return cric_error_sys(err, -ENOMEM, "RunPodSandbox");
    }
    op->kind = OP_RUN;
    op->svc = svc;
    memcpy(op->id, sb->id, sizeof(op->id));
    op->done = done;
    op->data = data;
    op_enqueue(sb, op);
    return 0;
}

static void cni_args(const struct cric_sandbox *sb, char *buf, size_t n)
{
    snprintf(buf, n, "IgnoreUnknown=1;K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s;K8S_POD_INFRA_CONTAINER_ID=%s;K8S_POD_UID=%s",
             sb->namespace_, sb->name, sb->id, sb->uid);
}

static void on_cni_done(void *data, int rc, struct cric_cni_result *res, const cric_error *err, uint64_t plugin_ns);

/* Starts CNI op for sb with its stored config; returns < 0 if it could not start. */
static int start_cni(struct sb_op *op, struct cric_sandbox *sb, enum cric_cni_op cop, cric_error **err)
{
    struct cric_sandbox_service *svc = op->svc;
    if (!sb->priv->cni_conf_parsed) {
        int pr = cric_cni_netconf_parse(sb->priv->cni_conf_file ? sb->priv->cni_conf_file : "(stored)",
                                        sb->priv->cni_conf_text ? sb->priv->cni_conf_text : "",
                                        &sb->priv->cni_conf_parsed, err);
        if (pr < 0)
            return pr;
    }
    const struct cric_cni_netconf *conf = sb->priv->cni_conf_parsed;
    int r;
    char args[1024];
    cni_args(sb, args, sizeof(args));
    const Runtime__V1__PodSandboxConfig *c = sb->config;
    size_t np = c ? c->n_port_mappings : 0;
    struct cric_cni_port *ports = calloc(np + 1, sizeof(*ports));
    if (!ports)
        return cric_error_sys(err, -ENOMEM, "CNI");
    size_t k = 0;
    for (size_t i = 0; i < np; i++) {
        const Runtime__V1__PortMapping *p = c->port_mappings[i];
        if (p->host_port <= 0)
            continue; /* no host port: nothing for portmap to do */
        ports[k++] = (struct cric_cni_port){
            .host_port = p->host_port, .container_port = p->container_port,
            .protocol = p->protocol == RUNTIME__V1__PROTOCOL__UDP ? "udp"
                        : p->protocol == RUNTIME__V1__PROTOCOL__SCTP ? "sctp" : "tcp",
            .host_ip = p->host_ip,
        };
    }
    struct cric_cni_runtime rt = {
        .container_id = sb->id, .netns = sb->netns_path, .args = args, .ports = ports, .n_ports = k,
        .pod_cidr = svc->pod_cidr, .plugin_dirs = (const char *const *)svc->plugin_dirs,
        .timeout_ms = svc->timeout_ms,
    };
    op->svc->inflight++;
    r = cric_cni_run(svc->loop, conf, cop, &rt, cop == CRIC_CNI_ADD ? NULL : sb->priv->cni_result, on_cni_done, op,
                     err);
    if (r < 0)
        op->svc->inflight--;
    free(ports);
    return r;
}

struct rm_work {
    uv_work_t req;
    struct cric_sandbox_service *svc;
    char *path;
};

static void rm_work_run(uv_work_t *req)
{
    struct rm_work *w = req->data;
    cric_rm_rf(w->path, NULL);
}

static void rm_work_done(uv_work_t *req, int status)
{
    struct rm_work *w = req->data;
    struct cric_sandbox_service *svc = w->svc;
    (void)status;
    free(w->path);
    free(w);
    svc->inflight--;
    maybe_closed(svc);
}

void sb__unlink_async(struct cric_sandbox_service *svc, char *path)
{
    struct rm_work *w = calloc(1, sizeof(*w));
    if (w) {
        w->svc = svc;
        w->path = path;
        w->req.data = w;
        if (uv_queue_work(svc->loop, &w->req, rm_work_run, rm_work_done) == 0) {
            svc->inflight++;
            return;
        }
    }
    cric_rm_rf(path, NULL);
    free(path);
    free(w);
}

/* Undoes on the host what a pod holds: namespace pins, /dev/shm, cgroup
 * directories it created, and its (renamed) directory.  Touches only sb,
 * so it runs on the thread pool. */
static void teardown_host(struct cric_sandbox *sb, const char *dir)
{
    sb__unpin(sb);
    sb__umount_shm(sb);
    sb__cgroup_cleanup(sb);
    if (dir)
        cric_rm_rf(dir, NULL);
}

struct bg_teardown {
    uv_work_t req;
    struct cric_sandbox_service *svc;
    struct cric_sandbox *sb;     /* owned, no longer listed */
    char *dir;
    bool cgroups;
};

static void bg_teardown_run(uv_work_t *req)
{
    struct bg_teardown *w = req->data;
    teardown_host(w->sb, w->dir);
}

static void bg_teardown_done(uv_work_t *req, int status)
{
    struct bg_teardown *w = req->data;
    struct cric_sandbox_service *svc = w->svc;
    (void)status;
    sb__free(w->sb);
    free(w->dir);
    if (w->cgroups && --svc->cg_removing == 0) {
        /* Runs that waited for these cgroup directories to go. */
        struct sb_op *op = svc->cg_waiters;
        svc->cg_waiters = NULL;
        while (op) {
            struct sb_op *n = op->wait_next;
            op->wait_next = NULL;
            op_step(op);
            op = n;
        }
    }
    free(w);
    svc->inflight--;
    maybe_closed(svc);
}

/* Removes a pod: its directory is renamed to .trash-<id> at once (the
 * record is then gone, atomically, and the pod with it) and the rest,
 * which takes milliseconds of unmounts and rmdirs, is undone on the
 * thread pool after the reply.  After a crash, the next start finishes
 * the job from the record in the trash directory (cleanup_trash).  Takes
 * sb, already off the list. */
static void teardown_background(struct cric_sandbox_service *svc, struct cric_sandbox *sb)
{
    if (sb->pause_pid > 0 && sb__proc_start(sb->pause_pid) == sb->priv->pause_start)
        kill(sb->pause_pid, SIGKILL);
    char *dir = NULL;
    if (asprintf(&dir, "%s/.trash-%s", svc->sb_dir, sb->id) >= 0 && rename(sb->dir, dir) == 0) {
        char *shm = NULL;
        if (sb->shm_path && asprintf(&shm, "%s/shm", dir) >= 0) {
            free(sb->shm_path);
            sb->shm_path = shm;
        }
    } else {
        free(dir);
        dir = strdup(sb->dir);
    }
    bool cgroups = sb->priv->cgroups_created && sb->priv->cgroups_created[0];
    struct bg_teardown *w = dir ? calloc(1, sizeof(*w)) : NULL;
    if (w) {
        *w = (struct bg_teardown){ .svc = svc, .sb = sb, .dir = dir, .cgroups = cgroups };
        w->req.data = w;
        if (uv_queue_work(svc->loop, &w->req, bg_teardown_run, bg_teardown_done) == 0) {
            svc->inflight++;
            svc->cg_removing += cgroups;
            return;
        }
    }
    teardown_host(sb, dir);
    sb__free(sb);
    free(dir);
    free(w);
}

static void on_pinns_done(void *data, int rc, const struct cric_child_result *res, const cric_error *cerr)
{
    struct sb_op *op = data;
    struct cric_sandbox_service *svc = op->svc;
    svc->inflight--;
    op->child_ns += res->elapsed_ns;
    struct cric_sandbox *sb = find_exact(svc, op->id);
    cric_error *e = NULL;
    if (rc < 0)
        cric_error_new(&e, rc, "create namespaces of pod %s: %s", op->id, cerr ? cerr->msg : "failed");
    else if (res->timed_out)
        cric_error_new(&e, -ETIMEDOUT, "create namespaces of pod %s: cric-pinns timed out", op->id);
    else if (res->exit_status != 0 || res->term_signal) {
        size_t n = res->err_len;
        while (n > 0 && (res->err[n - 1] == '\n' || res->err[n - 1] == ' '))
            n--;
        cric_error_new(&e, -EIO, "create namespaces of pod %s: %.*s", op->id, (int)(n > 500 ? 500 : n),
                       n ? res->err : "cric-pinns failed");
    } else if (sb && sb->pid_mode == RUNTIME__V1__NAMESPACE_MODE__POD) {
        _cleanup_free_ char *pidf = NULL, *text = NULL;
        if (asprintf(&pidf, "%s/pid", sb->priv->ns_dir) < 0 || cric_read_file(pidf, 64, &text, NULL, &e) < 0 ||
            (sb->pause_pid = atoi(text)) <= 0) {
            if (!e)
                cric_error_new(&e, -EIO, "pod %s: cric-pinns wrote no pause pid", op->id);
        } else {
            sb->priv->pause_start = sb__proc_start(sb->pause_pid);
            if (asprintf(&sb->pidns_path, "/proc/%d/ns/pid", sb->pause_pid) < 0)
                cric_error_new(&e, -ENOMEM, "pod %s", op->id);
        }
    }
    if (e)
        op_fail(op, e);
    op_step(op);
}

static int start_pinns(struct sb_op *op, struct cric_sandbox *sb, cric_error **err)
{
    struct cric_sandbox_service *svc = op->svc;
    int r = cric_mkdir_p(sb->priv->ns_dir, 0700, err);
    if (r < 0)
        return r;
    const Runtime__V1__LinuxPodSandboxConfig *lx = sb->config->linux;
    size_t ns = lx ? lx->n_sysctls : 0;
    char **argv = calloc(10 + 2 * ns, sizeof(char *));
    char **owned = calloc(ns + 1, sizeof(char *));
    if (!argv || !owned) {
        free(argv);
        free(owned);
        return cric_error_sys(err, -ENOMEM, "pod namespaces");
    }
    size_t a = 0;
    argv[a++] = "cric-pinns";
    argv[a++] = "-d";
    argv[a++] = sb->priv->ns_dir;
    if (sb->netns_path) {
        argv[a++] = "-n";
        argv[a++] = "-u";
        argv[a++] = "-H";
        argv[a++] = sb->hostname;
    }
    if (sb->ipcns_path)
        argv[a++] = "-i";
    if (sb->pid_mode == RUNTIME__V1__NAMESPACE_MODE__POD)
        argv[a++] = "-p";
    for (size_t i = 0; i < ns; i++) {
        if (asprintf(&owned[i], "%s=%s", lx->sysctls[i]->key, lx->sysctls[i]->value) < 0) {
            owned[i] = NULL;
            break;
        }
        argv[a++] = "-s";
        argv[a++] = owned[i];
    }
    struct cric_child_opts o = { .file = svc->pinns, .argv = argv, .timeout_ms = 30000 };
    svc->inflight++;
    r = cric_child_run(svc->loop, &o, on_pinns_done, op, NULL, err);
    if (r < 0)
        svc->inflight--;
    for (size_t i = 0; i < ns; i++)
        free(owned[i]);
    free(owned);
    free(argv);
    return r;
}

static bool same_time(struct timespec a, struct timespec b)
{
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

static bool conf_name(const char *n)
{
    size_t l = strlen(n);
    return n[0] != '.' && ((l > 9 && strcmp(n + l - 9, ".conflist") == 0) || (l > 5 && strcmp(n + l - 5, ".conf") == 0) ||
                           (l > 5 && strcmp(n + l - 5, ".json") == 0));
}

/* Whether path is the lowest-named config in dir: only then can a cached
 * choice not be overtaken by an edit, in place, of a file that was skipped
 * as broken (such an edit does not change the directory's mtime). */
static bool first_in_dir(const char *dir, const char *path)
{
    _cleanup_closedir_ DIR *d = opendir(dir);
    const char *base = strrchr(path, '/');
    if (!d || !base)
        return false;
    base++;
    struct dirent *de;
    while ((de = readdir(d)))
        if (conf_name(de->d_name) && strcmp(de->d_name, base) < 0)
            return false;
    return true;
}

static int load_netconf(struct cric_sandbox_service *svc, struct cric_sandbox *sb, cric_error **err)
{
    struct sb_netconf_cache *nc = &svc->nc;
    struct stat ds, fs;
    bool dir_ok = stat(svc->config_dir, &ds) == 0;
    if (nc->valid && dir_ok && same_time(ds.st_mtim, nc->dir_mtime) && stat(nc->file, &fs) == 0 &&
        fs.st_ino == nc->file_ino && fs.st_size == nc->file_size && same_time(fs.st_mtim, nc->file_mtime)) {
        char *f = strdup(nc->file), *t = strdup(nc->text);
        if (!f || !t) {
            free(f);
            free(t);
            return cric_error_sys(err, -ENOMEM, "CNI config");
        }
        free(sb->priv->cni_conf_file);
        free(sb->priv->cni_conf_text);
        cric_cni_netconf_free(sb->priv->cni_conf_parsed);
        sb->priv->cni_conf_file = f;
        sb->priv->cni_conf_text = t;
        sb->priv->cni_conf_parsed = NULL;
        return 0;
    }
    nc->valid = false;
    struct cric_cni_netconf *conf = NULL;
    int r = cric_cni_netconf_load_dir(svc->config_dir, &conf, err);
    if (r < 0)
        return cric_error_prefix(err, "pod network not ready");
    _cleanup_free_ char *text = NULL;
    bool file_ok = stat(conf->file, &fs) == 0;
    r = cric_read_file(conf->file, 1024 * 1024, &text, NULL, err);
    if (r == 0) {
        free(sb->priv->cni_conf_file);
        free(sb->priv->cni_conf_text);
        cric_cni_netconf_free(sb->priv->cni_conf_parsed);
        sb->priv->cni_conf_parsed = NULL;
        sb->priv->cni_conf_file = strdup(conf->file);
        sb->priv->cni_conf_text = TAKE_PTR(text);
        if (!sb->priv->cni_conf_file)
            r = cric_error_sys(err, -ENOMEM, "CNI config");
    }
    /* Both stats come before the reads, so a later change shows in them;
     * not cached while a change could still fall within the same
     * (coarse) timestamp tick. */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (r == 0 && dir_ok && file_ok && now.tv_sec - ds.st_mtim.tv_sec > 2 && now.tv_sec - fs.st_mtim.tv_sec > 2 &&
        first_in_dir(svc->config_dir, conf->file)) {
        free(nc->file);
        free(nc->text);
        nc->file = strdup(conf->file);
        nc->text = strdup(sb->priv->cni_conf_text);
        nc->dir_mtime = ds.st_mtim;
        nc->file_mtime = fs.st_mtim;
        nc->file_ino = fs.st_ino;
        nc->file_size = fs.st_size;
        nc->valid = nc->file && nc->text;
    }
    cric_cni_netconf_free(conf);
    return r;
}

static void on_cni_done(void *data, int rc, struct cric_cni_result *res, const cric_error *err, uint64_t plugin_ns)
{
    struct sb_op *op = data;
    op->svc->inflight--;
    op->child_ns += plugin_ns;
    struct cric_sandbox *sb = find_exact(op->svc, op->id);
    if (op->kind == OP_CHECK) {
        if (sb) {
            set_check(sb, rc < 0 ? SB_CHECK_FAILED : SB_CHECK_PASSED, rc < 0 ? (err ? err->msg : "CNI CHECK failed") : NULL);
            if (op->svc->net_check_cb)
                op->svc->net_check_cb(op->svc->net_check_data, sb->id, rc, sb->priv->net_check_msg);
        }
        cric_cni_result_free(res);
        op_step(op);
        return;
    }
    bool adding = op->kind == OP_RUN && op->step == 4; /* case 3 started it */
    if (sb) {
        if (adding)
            sb->cni_add_ns = plugin_ns;
        else
            sb->cni_del_ns += plugin_ns;
    }
    if (rc < 0) {
        cric_error *e = NULL;
        cric_error_new(&e, rc, "%s", err ? err->msg : "CNI failed");
        op_fail(op, e);
    } else if (sb && adding && res) {
        free(sb->priv->cni_result);
        sb->priv->cni_result = strdup(res->json);
        size_t n = 0;
        char *ip;
        while ((ip = cric_cni_result_ip(res, n))) {
            char **v = realloc(sb->ips, (n + 2) * sizeof(char *));
            if (!v) {
                free(ip);
                break;
            }
            sb->ips = v;
            v[n++] = ip;
            v[n] = NULL;
        }
        cric_error *he = NULL;
        if (sb__write_hosts(sb, &he) < 0)
            op_fail(op, he);
    } else if (sb && !adding) {
        sb->priv->network_attached = false;
    }
    cric_cni_result_free(res);
    op_step(op);
}

static void on_sync_done(void *data, int rc, cric_error *e)
{
    struct sb_op *op = data;
    op->sync_pending = false;
    if (rc < 0)
        op_fail(op, e);
    else
        cric_error_free(e);
    if (op->sync_waiting) {
        op->sync_waiting = false;
        op_step(op);
    }
}

/* Re-enters the current step once the record's fsync is done. */
static bool wait_sync(struct sb_op *op)
{
    if (!op->sync_pending)
        return false;
    op->step--;
    op->sync_waiting = true;
    return true;
}

static void on_behind_done(void *data, int rc, cric_error *e)
{
    (void)rc;
    cric_error_free(e); /* only shortens the power-loss window; see case 4 */
    maybe_closed(data);
}

/* Run: 0 local setup, 1 namespaces, 2 after pinns, 3 CNI ADD, 4 after ADD,
 * 10+ rollback (DEL, then local teardown). */
static void sb_event(struct cric_sandbox_service *svc, const struct cric_sandbox *sb, int type)
{
    if (svc->have_hooks && svc->hooks.event && !svc->closing)
        svc->hooks.event(svc->hooks.ctx, sb, type);
}

static void run_step(struct sb_op *op, struct cric_sandbox *sb)
{
    struct cric_sandbox_service *svc = op->svc;
    cric_error *e = NULL;
    for (;;) {
        if (op->err && op->step < 10)
            op->step = 10;
        switch (op->step++) {
        case 0:
            if (svc->cg_removing) {
                /* A removed pod's cgroup directories are being deleted on
                 * the thread pool: creating ours meanwhile could race with
                 * that rmdir. */
                op->step--;
                op->wait_next = svc->cg_waiters;
                svc->cg_waiters = op;
                return;
            }
            /* Recorded as attached before ADD starts: a crash during ADD is
             * then rolled back with a DEL (DEL is idempotent). */
            sb->priv->network_attached = sb->netns_path != NULL;
            if (cric_mkdir_p(sb->dir, 0711, &e) < 0 || sb__write_files(svc, sb, &e) < 0 ||
                sb__mount_shm(svc, sb, &e) < 0 || sb__cgroup_setup(svc, sb, &e) < 0 ||
                (sb->netns_path && load_netconf(svc, sb, &e) < 0) || sb__record_save(svc, sb, &e) < 0 ||
                sb__record_sync(svc, sb->id, NULL, on_sync_done, op, &e) < 0)
                op_fail(op, e);
            else
                op->sync_pending = true;
            continue;
        case 1:
            if (!sb->netns_path && !sb->ipcns_path && sb->pid_mode != RUNTIME__V1__NAMESPACE_MODE__POD)
                continue;
            if (start_pinns(op, sb, &e) < 0) {
                op_fail(op, e);
                continue;
            }
            return;
        case 2:
            /* This record (network_attached, the CNI config) must be on
             * disk before ADD allocates anything: after a power loss the
             * pod is then rolled back with a DEL that frees its IP.  Its
             * fsync ran concurrently with cric-pinns. */
            if (wait_sync(op))
                return;
            continue;
        case 3:
            if (!sb->netns_path)
                continue;
            if (start_cni(op, sb, CRIC_CNI_ADD, &e) < 0) {
                op_fail(op, e);
                continue;
            }
            return;
        case 4:
            /* Atomic (the ready file appears whole or not at all), not
             * fsync'ed on the request path: a crash of cricd leaves a
             * CREATING or a READY pod; a power loss before the write-behind
             * fsync leaves the durable CREATING record, so the pod (dead
             * anyway after a power loss) is rolled back with a DEL at
             * start-up, releasing its IP.  See doc/pods.md. */
            sb->state = CRIC_SANDBOX_READY;
            if (sb__record_save_ready(svc, sb, &e) < 0) {
                op_fail(op, e);
                continue;
            }
            sb_event(svc, sb, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_CREATED_EVENT);
            sb_event(svc, sb, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_STARTED_EVENT);
            {
                /* Queued once the reply is out (waking a pool thread costs
                 * ~0.1 ms here); svc is held across op_finish. */
                char id[65];
                memcpy(id, sb->id, sizeof(id));
                svc->inflight++;
                op_finish(op, sb);
                (void)sb__record_sync(svc, id, SB_READY_NAME, on_behind_done, svc, NULL);
                svc->inflight--;
                maybe_closed(svc);
            }
            return;
        case 10:
            if (wait_sync(op))
                return;
            if (sb->priv->network_attached && sb->priv->cni_conf_text) {
                /* Best effort: a failed ADD may have left half a network. */
                cric_error *de = NULL;
                if (start_cni(op, sb, CRIC_CNI_DEL, &de) == 0) {
                    cric_error_free(de);
                    return;
                }
                cric_error_free(de);
            }
            continue;
        default:
            list_del(svc, sb);
            teardown_background(svc, sb);
            op_finish(op, NULL);
            return;
        }
    }
}

/* ---------------------------------------------------------------- stop / remove */

static void on_hook_done(void *cb_data, int rc, cric_error *err)
{
    struct sb_op *op = cb_data;
    op->svc->inflight--;
    if (rc < 0) {
        if (!err)
            cric_error_new(&err, rc, "stopping the pod's containers failed");
        op_fail(op, err);
    } else {
        cric_error_free(err);
    }
    op_step(op);
}

/* Stop/remove: 0 stop containers, 1 remove containers (remove only), 2 CNI
 * DEL, 3 after DEL, 4 pause + state, 5 local teardown (remove only). */
static struct cric_sandbox *sb_set_notready(struct cric_sandbox_service *svc, struct cric_sandbox *sb)
{
    bool was_ready = sb->state == CRIC_SANDBOX_READY;
    sb->state = CRIC_SANDBOX_NOTREADY;
    if (was_ready)
        sb_event(svc, sb, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_STOPPED_EVENT);
    return sb;
}

static void teardown_step(struct sb_op *op, struct cric_sandbox *sb)
{
    struct cric_sandbox_service *svc = op->svc;
    bool remove = op->kind == OP_REMOVE;
    cric_error *e = NULL;
    for (;;) {
        if (op->sync_pending) {
            op->sync_waiting = true;
            return;
        }
        if (op->err) {
            /* Keep what is left so that a retry can finish the job. */
            sb__record_save(svc, sb, NULL);
            op_finish(op, sb);
            return;
        }
        switch (op->step++) {
        case 0:
            if (!svc->have_hooks || !svc->hooks.stop_all)
                continue;
            svc->inflight++;
            svc->hooks.stop_all(svc->hooks.ctx, sb->id, 0, on_hook_done, op);
            return;
        case 1:
            if (!remove || !svc->have_hooks || !svc->hooks.remove_all)
                continue;
            svc->inflight++;
            svc->hooks.remove_all(svc->hooks.ctx, sb->id, on_hook_done, op);
            return;
        case 2:
            /* DEL while attached: on remove only if no DEL succeeded since
             * ADD (a failed or interrupted Stop, or no Stop), like
             * containerd; DEL is idempotent, so running it again then is
             * safe. */
            if (!sb->netns_path || !sb->priv->cni_conf_text || !sb->priv->network_attached)
                continue;
            if (!remove && sb__record_save_async(svc, sb_set_notready(svc, sb), on_sync_done, op, NULL) == 0) {
                /* NOTREADY, still attached, is written on the thread pool
                 * while DEL runs: from then on a crash leaves a stopped pod
                 * whose Remove runs DEL again; the record that says DEL
                 * succeeded can then wait until the reply is out. */
                op->sync_pending = true;
                op->saved_early = true;
            }
            if (start_cni(op, sb, CRIC_CNI_DEL, &e) < 0) {
                op_fail(op, e);
                continue;
            }
            return;
        case 3:
            continue;
        case 4:
            if (sb->pause_pid > 0) {
                if (sb__proc_start(sb->pause_pid) == sb->priv->pause_start)
                    kill(sb->pause_pid, SIGKILL);
                sb->pause_pid = 0;
                free(sb->pidns_path);
                sb->pidns_path = NULL;
            }
            sb_set_notready(svc, sb);
            if (!remove && op->saved_early) {
                op_reply(op);
                sb__record_save(svc, sb, NULL); /* a Remove would DEL again without it */
                op_finish(op, sb);
                return;
            }
            if (!remove) {
                if (sb__record_save(svc, sb, &e) < 0)
                    op_fail(op, e);
                else
                    op_finish(op, sb);
                return;
            }
            continue;
        default:
            sb_event(svc, sb, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_DELETED_EVENT);
            list_del(svc, sb);
            teardown_background(svc, sb);
            op_finish(op, NULL);
            return;
        }
    }
}

static void op_step(struct sb_op *op)
{
    struct cric_sandbox *sb = find_exact(op->svc, op->id);
    if (op->kind == OP_RUN)
        run_step(op, sb);
    else if (op->kind == OP_CHECK)
        check_step(op, sb);
    else
        teardown_step(op, sb);
}

static void op_start(struct sb_op *op)
{
    struct cric_sandbox *sb = find_exact(op->svc, op->id);
    sb->priv->busy = true;
    op->step = 0;
    op->spawn_start = cric_child_spawn_ns();
    op_step(op);
}

static void enqueue_teardown(struct cric_sandbox_service *svc, enum op_kind kind, const char *id,
                             cric_sandbox_done_fn done, void *data)
{
    struct cric_sandbox *sb = NULL;
    cric_error *e = NULL;
    int r = find_prefix(svc, id, true, &sb, &e);
    if (r == -ENOENT) {
        cric_error_free(e);
        svc->last_child_ns = 0;
        svc->last_spawn_ns = 0;
        if (done)
            done(data, 0, NULL, id);
        return;
    }
    struct sb_op *op = r == 0 ? calloc(1, sizeof(*op)) : NULL;
    if (!op) {
        if (r == 0)
            r = cric_error_sys(&e, -ENOMEM, "pod sandbox %s", id);
        if (done)
            done(data, r, e, id);
        cric_error_free(e);
        return;
    }
    op->kind = kind;
    op->svc = svc;
    memcpy(op->id, sb->id, sizeof(op->id));
    op->done = done;
    op->data = data;
    op_enqueue(sb, op);
}

void cric_sandbox_stop(struct cric_sandbox_service *svc, const char *id, cric_sandbox_done_fn done, void *data)
{
    enqueue_teardown(svc, OP_STOP, id, done, data);
}

void cric_sandbox_remove(struct cric_sandbox_service *svc, const char *id, cric_sandbox_done_fn done, void *data)
{
    enqueue_teardown(svc, OP_REMOVE, id, done, data);
}

/* ---------------------------------------------------------------- info */

int cric_sandbox_info_json(const struct cric_sandbox *sb, char **out, cric_error **err)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    if (!g)
        return cric_error_sys(err, -ENOMEM, "sandbox info");
    yajl_gen_map_open(g);
#define KV(k, v)                   \
    do {                           \
        cric_yj_gen_str(g, k);   \
        cric_yj_gen_str(g, v);   \
    } while (0)
    KV("id", sb->id);
    KV("hostname", sb->hostname);
    KV("netns", sb->netns_path);
    KV("ipcns", sb->ipcns_path);
    KV("utsns", sb->utsns_path);
    KV("pidns", sb->pidns_path);
    cric_yj_gen_str(g, "pausePid");
    yajl_gen_integer(g, sb->pause_pid);
    KV("dir", sb->dir);
    KV("hostnamePath", sb->hostname_path);
    KV("hostsPath", sb->hosts_path);
    KV("resolvPath", sb->resolv_path);
    KV("shmPath", sb->shm_path);
    KV("cgroupParent", sb->cgroup_parent);
    KV("cniConfigFile", sb->priv->cni_conf_file);
    cric_yj_gen_str(g, "cniResult");
    yajl_val res = sb->priv->cni_result ? cric_yj_parse(sb->priv->cni_result, NULL, 0) : NULL;
    cric_yj_gen_value(g, res);
    yajl_tree_free(res);
    cric_yj_gen_str(g, "cniAddNs");
    yajl_gen_integer(g, (long long)sb->cni_add_ns);
    cric_yj_gen_str(g, "cniDelNs");
    yajl_gen_integer(g, (long long)sb->cni_del_ns);
    cric_yj_gen_str(g, "networkAttached");
    yajl_gen_bool(g, sb->priv->network_attached);
    if (sb->priv->net_check != SB_CHECK_NONE) {
        /* The CNI CHECK run after cricd's last start. */
        static const char *const names[] = { "", "pending", "passed", "failed", "skipped" };
        cric_yj_gen_str(g, "networkCheck");
        yajl_gen_map_open(g);
        KV("status", names[sb->priv->net_check]);
        if (sb->priv->net_check_msg)
            KV("message", sb->priv->net_check_msg);
        yajl_gen_map_close(g);
    }
#undef KV
    yajl_gen_map_close(g);
    char *s = cric_yj_gen_take(g, NULL);
    yajl_gen_free(g);
    if (!s)
        return cric_error_sys(err, -ENOMEM, "sandbox info");
    *out = s;
    return 0;
}
