/* ExecSync through cric-shim, UpdateContainerResources, ReopenContainerLog. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yajl/yajl_gen.h>

#include "container/internal.h"
#include "util/cleanup.h"
#include "util/fs.h"

/* Per stream: ExecSync answers in one gRPC message (16 MiB by default). */
#define EXEC_OUTPUT_MAX (6u << 20)

struct exec_op {
    struct ctr *c;
    cric_container_exec_fn done;
    void *data;
    unsigned timeout_s;
};

static const char marker[] = "\n[cricd: output truncated]\n";

static int with_marker(const char *buf, size_t len, bool cut, ProtobufCBinaryData *out)
{
    size_t extra = cut ? sizeof(marker) - 1 : 0;
    out->data = malloc(len + extra + 1);
    if (!out->data)
        return -ENOMEM;
    if (len)
        memcpy(out->data, buf, len);
    if (extra)
        memcpy(out->data + len, marker, extra);
    out->len = len + extra;
    return 0;
}

static void exec_done(const struct cric_shim_exec_result *res, const cric_error *err, void *data)
{
    struct exec_op *op = data;
    struct ctr *c = op->c;
    struct cric_container_service *svc = c->svc;
    if (!res) {
        op->done(op->data, err ? err->code : -EIO, err, NULL);
    } else if (res->timed_out) {
        cric_error *terr = NULL;
        cric_error_new(&terr, -ETIMEDOUT, "command in container %s timed out after %u s", c->id, op->timeout_s);
        op->done(op->data, terr->code, terr, NULL);
        cric_error_free(terr);
    } else {
        Runtime__V1__ExecSyncResponse resp = RUNTIME__V1__EXEC_SYNC_RESPONSE__INIT;
        resp.exit_code = res->exit_code;
        if (with_marker(res->out, res->out_len, res->out_truncated, &resp.stdout) < 0 ||
            with_marker(res->err, res->err_len, res->err_truncated, &resp.stderr) < 0) {
            cric_error *e = NULL;
            cric_error_sys(&e, -ENOMEM, "ExecSync");
            op->done(op->data, e->code, e, NULL);
            cric_error_free(e);
        } else {
            op->done(op->data, 0, NULL, &resp);
        }
        free(resp.stdout.data);
        free(resp.stderr.data);
    }
    free(op);
    cric__ctr_unref(c);
    cric__svc_release(svc);
}

void cric_container_exec_sync(struct cric_container_service *svc, const Runtime__V1__ExecSyncRequest *req,
                              cric_container_exec_fn done, void *data)
{
    cric_error *err = NULL;
    struct ctr *c = cric__ctr_find(svc, req->container_id, &err);
    if (c && c->state != CTR_RUNNING)
        cric_error_new(&err, -EBUSY, "container %s is not running", c->id);
    if (!err && req->n_cmd == 0)
        cric_error_new(&err, -EINVAL, "ExecSync: cmd is empty");
    if (!err && (req->timeout < 0 || req->timeout > 365LL * 86400))
        cric_error_new(&err, -EINVAL, "ExecSync: bad timeout %" PRId64, req->timeout);
    struct exec_op *op = err ? NULL : calloc(1, sizeof(*op));
    const char **argv = err ? NULL : calloc(req->n_cmd + 1, sizeof(char *));
    if (!err && (!op || !argv))
        cric_error_sys(&err, -ENOMEM, "ExecSync");
    if (err) {
        free(op);
        free(argv);
        done(data, err->code, err, NULL);
        cric_error_free(err);
        return;
    }
    for (size_t i = 0; i < req->n_cmd; i++)
        argv[i] = req->cmd[i];
    op->c = c;
    op->done = done;
    op->data = data;
    op->timeout_s = (unsigned)req->timeout;
    struct cric_shim_exec_opts o = {
        .id = c->id,
        .runtime = c->runtime,
        .runtime_root = c->runtime_root,
        .systemd_cgroup = c->systemd_cgroup,
        .argv = argv,
        .timeout_s = (unsigned)req->timeout,
        .output_max = EXEC_OUTPUT_MAX,
        .shim_path = svc->shim_path,
    };
    cric__ctr_ref(c);
    cric__svc_hold(svc);
    int r = cric_shim_exec_sync(svc->loop, &o, exec_done, op, &err);
    free(argv);
    if (r < 0) {
        cric__ctr_unref(c);
        cric__svc_release(svc);
        free(op);
        done(data, r, err, NULL);
        cric_error_free(err);
    }
}

/* ---- UpdateContainerResources: `runtime update --resources <file>` ---- */

struct update_op {
    struct ctr *c;
    cric_container_done_fn done;
    void *data;
    char *file;
};

static void update_done(const struct cric_runtime_result *res, void *data)
{
    struct update_op *op = data;
    struct ctr *c = op->c;
    struct cric_container_service *svc = c->svc;
    unlink(op->file);
    if (res->status != 0) {
        _cleanup_free_ char *t = cric_runtime_error_text(res);
        cric_error *err = NULL;
        cric_error_new(&err, -EIO, "update container %s: %s", c->id, t ? t : "failed");
        op->done(op->data, err->code, err, c->id);
        cric_error_free(err);
    } else {
        op->done(op->data, 0, NULL, c->id);
    }
    free(op->file);
    free(op);
    cric__ctr_unref(c);
    cric__svc_release(svc);
}

#define GS(g, s) yajl_gen_string((g), (const unsigned char *)(s), strlen(s))

static char *resources_json(const Runtime__V1__LinuxContainerResources *r)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    if (!g)
        return NULL;
    yajl_gen_map_open(g);
    GS(g, "cpu");
    yajl_gen_map_open(g);
    if (r->cpu_shares) {
        GS(g, "shares");
        yajl_gen_integer(g, r->cpu_shares);
    }
    if (r->cpu_quota) {
        GS(g, "quota");
        yajl_gen_integer(g, r->cpu_quota);
    }
    if (r->cpu_period) {
        GS(g, "period");
        yajl_gen_integer(g, r->cpu_period);
    }
    if (r->cpuset_cpus && r->cpuset_cpus[0]) {
        GS(g, "cpus");
        GS(g, r->cpuset_cpus);
    }
    if (r->cpuset_mems && r->cpuset_mems[0]) {
        GS(g, "mems");
        GS(g, r->cpuset_mems);
    }
    yajl_gen_map_close(g);
    if (r->memory_limit_in_bytes) {
        GS(g, "memory");
        yajl_gen_map_open(g);
        GS(g, "limit");
        yajl_gen_integer(g, r->memory_limit_in_bytes);
        yajl_gen_map_close(g);
    }
    yajl_gen_map_close(g);
    const unsigned char *buf;
    size_t len;
    yajl_gen_get_buf(g, &buf, &len);
    char *s = strndup((const char *)buf, len);
    yajl_gen_free(g);
    return s;
}

void cric_container_update_resources(struct cric_container_service *svc,
                                     const Runtime__V1__UpdateContainerResourcesRequest *req,
                                     cric_container_done_fn done, void *data)
{
    cric_error *err = NULL;
    struct ctr *c = cric__ctr_find(svc, req->container_id, &err);
    if (c && c->state != CTR_RUNNING && (c->state != CTR_CREATED || c->runtime_deleted))
        cric_error_new(&err, -EBUSY, "container %s is not running", c->id);
    if (!err && !req->linux)
        cric_error_new(&err, -EINVAL, "UpdateContainerResources: no linux resources");
    if (!err && req->linux->n_unified)
        cric_error_new(&err, -EOPNOTSUPP, "UpdateContainerResources: unified resources are not supported");
    _cleanup_free_ char *json = err ? NULL : resources_json(req->linux);
    struct update_op *op = err ? NULL : calloc(1, sizeof(*op));
    if (!err && (!json || !op || asprintf(&op->file, "%s/resources.json", c->dir) < 0))
        cric_error_sys(&err, -ENOMEM, "UpdateContainerResources");
    if (!err)
        cric_write_file_atomic(op->file, json, strlen(json), 0600, &err);
    if (!err) {
        op->c = c;
        op->done = done;
        op->data = data;
        cric__ctr_ref(c);
        cric__svc_hold(svc);
        if (cric__runtime(c, "update", "--resources", op->file, 60000, update_done, op, &err) == 0) {
            /* Remember it for ContainerStatus.resources. */
            if (c->config->linux && c->config->linux->resources) {
                Runtime__V1__LinuxContainerResources *cur = c->config->linux->resources;
                const Runtime__V1__LinuxContainerResources *nr = req->linux;
                cur->cpu_shares = nr->cpu_shares ? nr->cpu_shares : cur->cpu_shares;
                cur->cpu_quota = nr->cpu_quota ? nr->cpu_quota : cur->cpu_quota;
                cur->cpu_period = nr->cpu_period ? nr->cpu_period : cur->cpu_period;
                cur->memory_limit_in_bytes = nr->memory_limit_in_bytes ? nr->memory_limit_in_bytes
                                                                      : cur->memory_limit_in_bytes;
            }
            return;
        }
        cric__ctr_unref(c);
        cric__svc_release(svc);
    }
    if (op) {
        free(op->file);
        free(op);
    }
    done(data, err->code, err, req->container_id);
    cric_error_free(err);
}

/* ---- ReopenContainerLog ---- */

struct reopen_op {
    struct ctr *c;
    cric_container_done_fn done;
    void *data;
};

static void reopen_done(const cric_error *err, void *data)
{
    struct reopen_op *op = data;
    struct ctr *c = op->c;
    struct cric_container_service *svc = c->svc;
    op->done(op->data, err ? err->code : 0, err, c->id);
    free(op);
    cric__ctr_unref(c);
    cric__svc_release(svc);
}

void cric_container_reopen_log(struct cric_container_service *svc, const char *id, cric_container_done_fn done,
                               void *data)
{
    cric_error *err = NULL;
    struct ctr *c = cric__ctr_find(svc, id, &err);
    if (c && c->state != CTR_RUNNING)
        cric_error_new(&err, -EBUSY, "container %s is not running", c->id);
    struct reopen_op *op = err ? NULL : calloc(1, sizeof(*op));
    if (!err && !op)
        cric_error_sys(&err, -ENOMEM, "ReopenContainerLog");
    if (!err) {
        op->c = c;
        op->done = done;
        op->data = data;
        cric__ctr_ref(c);
        cric__svc_hold(svc);
        if (cric_shim_reopen_log(svc->loop, c->state_dir, reopen_done, op, &err) == 0)
            return;
        cric__ctr_unref(c);
        cric__svc_release(svc);
        free(op);
    }
    done(data, err->code, err, id);
    cric_error_free(err);
}
