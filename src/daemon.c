/* The daemon's life: start modules and the gRPC server on one libuv loop,
 * reload on SIGHUP, stop gracefully on SIGTERM/SIGINT. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cri/cri.h"
#include "daemon.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/log.h"

/* Every CRI module, initialised in this order and finalised in reverse.
 * A new module adds one line here (and declares its pair in cri/cri.h). */
static const struct cricd_module {
    const char *name;
    int (*init)(cricd *d, cric_error **err);
    void (*fini)(cricd *d);
} modules[] = {
    { "runtime", cri_runtime_init, cri_runtime_fini },
    { "image", cri_image_init, cri_image_fini },
    { "sandbox", cri_sandbox_init, cri_sandbox_fini },
    { "container", cri_container_init, cri_container_fini },
};

/* How long in-flight calls get to finish on SIGTERM before connections are cut. */
#define SHUTDOWN_GRACE_MS 10000

struct daemon {
    cricd d;
    uv_loop_t loop;
    uv_signal_t sigterm, sigint, sighup;
    const struct cricd_override *ov;
    size_t n_ov;
    size_t modules_up;   /* how many modules' init succeeded */
    bool stopping;
};

int cricd_config_build(const char *path, const struct cricd_override *ov, size_t n_ov,
                       struct cric_config *out, cric_error **err)
{
    struct cric_config cfg;
    int r = cric_config_defaults(&cfg, err);
    if (r < 0)
        return r;
    if (path)
        r = cric_config_load_file(&cfg, path, err);
    for (size_t i = 0; r >= 0 && i < n_ov; i++)
        r = cric_config_set(&cfg, ov[i].key, ov[i].value, err);
    if (r >= 0)
        r = cric_config_check(&cfg, err);
    if (r < 0) {
        cric_config_free(&cfg);
        return r;
    }
    *out = cfg;
    return 0;
}

static void apply_log_level(const char *name)
{
    enum cric_log_level l;
    if (cric_log_level_parse(name, &l) == 0)
        cric_log_level_current = l;
}

static void modules_fini(struct daemon *dm)
{
    while (dm->modules_up > 0) {
        dm->modules_up--;
        modules[dm->modules_up].fini(&dm->d);
    }
}

static void close_signals(struct daemon *dm)
{
    uv_close((uv_handle_t *)&dm->sigterm, NULL);
    uv_close((uv_handle_t *)&dm->sigint, NULL);
    uv_close((uv_handle_t *)&dm->sighup, NULL);
}

static void on_server_down(void *data)
{
    struct daemon *dm = data;
    /* Every call has been answered: modules can drop their state. */
    modules_fini(dm);
    close_signals(dm);
    LOG_INFO("stopped");
}

static void reload(struct daemon *dm)
{
    cricd *d = &dm->d;
    cric_error *err = NULL;
    struct cric_config fresh;
    if (cricd_config_build(d->config_path, dm->ov, dm->n_ov, &fresh, &err) < 0) {
        LOG_ERROR("reload: %s; keeping the running configuration", err->msg);
        cric_error_free(err);
        return;
    }
    /* Only what is safe to change under running modules is applied; the
     * rest is named so that nobody believes it took effect. */
    if (strcmp(fresh.log_level, d->cfg->log_level) != 0) {
        char *lvl = strdup(fresh.log_level);
        if (lvl) {
            free(d->cfg->log_level);
            d->cfg->log_level = lvl;
            apply_log_level(lvl);
            LOG_INFO("reload: log_level is now %s", lvl);
        }
    }
    _cleanup_free_ char *ignored = NULL;
    if (cric_config_diff(d->cfg, &fresh, &ignored, &err) < 0) {
        LOG_ERROR("reload: %s", err->msg);
        cric_error_free(err);
    } else if (ignored) {
        LOG_WARN("reload: changed keys ignored until restart: %s", ignored);
    }
    LOG_INFO("reloaded configuration from %s", d->config_path ? d->config_path : "(built-in defaults)");
    cric_config_free(&fresh);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct daemon *dm = h->data;
    if (signum == SIGHUP) {
        reload(dm);
        return;
    }
    if (dm->stopping) {
        LOG_INFO("already stopping (in-flight calls get %d s)", SHUTDOWN_GRACE_MS / 1000);
        return;
    }
    dm->stopping = true;
    LOG_INFO("stopping on %s", strsignal(signum));
    cric_server_shutdown(dm->d.server, SHUTDOWN_GRACE_MS, on_server_down, dm);
}

static int start_signal(struct daemon *dm, uv_signal_t *h, int signum)
{
    h->data = dm;
    return uv_signal_start(h, on_signal, signum);
}

static void on_watchdog(uv_timer_t *t)
{
    uv_stop(t->loop);
}

static void on_walk(uv_handle_t *h, void *arg)
{
    LOG_ERROR("handle left open at exit: %s", uv_handle_type_name(h->type));
}

int cricd_run(struct cric_config *cfg, const char *config_path, const struct cricd_override *ov, size_t n_ov)
{
    struct daemon dm = { .ov = ov, .n_ov = n_ov };
    cricd *d = &dm.d;
    cric_error *err = NULL;
    int code = 1;

    apply_log_level(cfg->log_level);
    d->cfg = cfg;
    d->config_path = config_path;
    d->loop = &dm.loop;
    if (cric_mkdir_p(cfg->root, 0711, &err) < 0 || cric_mkdir_p(cfg->state, 0711, &err) < 0) {
        LOG_ERROR("%s", err->msg);
        cric_error_free(err);
        return 1;
    }
    int r = uv_loop_init(&dm.loop);
    if (r < 0) {
        LOG_ERROR("uv_loop_init: %s", uv_strerror(r));
        return 1;
    }
    /* uv_signal_init only fails for a bad loop. */
    uv_signal_init(&dm.loop, &dm.sigterm);
    uv_signal_init(&dm.loop, &dm.sigint);
    uv_signal_init(&dm.loop, &dm.sighup);
    if (start_signal(&dm, &dm.sigterm, SIGTERM) < 0 || start_signal(&dm, &dm.sigint, SIGINT) < 0 ||
        start_signal(&dm, &dm.sighup, SIGHUP) < 0) {
        LOG_ERROR("cannot watch signals");
        goto fail;
    }

    struct cric_server_opts opts = {
        .socket_path = cfg->listen,
        .max_recv_msg_size = (size_t)cfg->grpc_max_recv_msg_size,
        .max_send_msg_size = (size_t)cfg->grpc_max_send_msg_size,
        .max_concurrent_streams = (unsigned)cfg->grpc_max_concurrent_streams,
    };
    if (cric_server_new(&dm.loop, &opts, &d->server, &err) < 0) {
        LOG_ERROR("%s", err->msg);
        goto fail;
    }
    for (; dm.modules_up < ARRAY_SIZE(modules); dm.modules_up++) {
        if (modules[dm.modules_up].init(d, &err) < 0) {
            LOG_ERROR("%s: %s", modules[dm.modules_up].name, err->msg);
            goto fail;
        }
    }
    if (cric_server_start(d->server, &err) < 0) {
        LOG_ERROR("%s", err->msg);
        goto fail;
    }
    LOG_INFO("cricd %s listening on %s (config: %s)", PACKAGE_VERSION, cfg->listen,
             config_path ? config_path : "built-in defaults");
    uv_run(&dm.loop, UV_RUN_DEFAULT);
    code = 0;
    goto close_loop;

fail:
    cric_error_free(err);
    modules_fini(&dm);
    close_signals(&dm);
    uv_run(&dm.loop, UV_RUN_DEFAULT);
close_loop:
    if (d->server) {
        cric_server_free(d->server);
        d->server = NULL;
    }
    /* Let close callbacks and thread-pool work queued by the last steps
     * (record fsyncs, say) finish; an unreferenced watchdog bounds the wait
     * so that a leaked active handle cannot keep cricd from exiting. */
    uv_timer_t watchdog;
    uv_timer_init(&dm.loop, &watchdog);
    uv_timer_start(&watchdog, on_watchdog, 5000, 0);
    uv_unref((uv_handle_t *)&watchdog);
    uv_run(&dm.loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&watchdog, NULL);
    uv_run(&dm.loop, UV_RUN_NOWAIT);
    /* Anything still open is a leak: say what, and fail the exit code. */
    if (uv_loop_close(&dm.loop) != 0) {
        uv_walk(&dm.loop, on_walk, NULL);
        LOG_ERROR("%u request(s) still active at exit", dm.loop.active_reqs.count);
        code = 1;
    }
    return code;
}
