/* cric_shim_exec_sync: `cric-shim --exec` as a uv_spawn child; it prints
 * "exit_code=N timed_out=B out_len=N out_truncated=B err_len=N err_truncated=B\n"
 * followed by the stdout bytes and the stderr bytes. */
#include "config.h"
#include "shim/proc.h"
#include "shim/shim.h"
#include "util/cleanup.h"
#include "util/fs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXEC_OUTPUT_DEFAULT (16u << 20)

static char *memdup0(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

struct exec_req {
    cric_shim_exec_cb cb;
    void *data;
    char *id;
};

static void exec_done(int status, struct cric__capture cap[3], void *data)
{
    struct exec_req *x = data;
    cric_error *e = NULL;
    struct cric_shim_exec_result res = {0};
    int code, to, ot, et;
    size_t ol, el;
    char *nl = memchr(cap[0].data, '\n', cap[0].len);
    if (status == -ETIMEDOUT) {
        cric_error_new(&e, -ETIMEDOUT, "exec in container '%s': cric-shim did not finish", x->id);
    } else if (!nl || sscanf(cap[0].data, "exit_code=%d timed_out=%d out_len=%zu out_truncated=%d err_len=%zu "
                                          "err_truncated=%d",
                             &code, &to, &ol, &ot, &el, &et) != 6) {
        cric_error_new(&e, -EIO, "exec in container '%s': %s", x->id,
                       cap[1].len ? cap[1].data : "cric-shim gave no result");
    } else if ((size_t)(cap[0].data + cap[0].len - (nl + 1)) != ol + el) {
        cric_error_new(&e, -EIO, "exec in container '%s': cric-shim result cut short", x->id);
    } else {
        res.exit_code = code;
        res.timed_out = to;
        res.out_truncated = ot;
        res.err_truncated = et;
        res.out = memdup0(nl + 1, ol);
        res.out_len = ol;
        res.err = memdup0(nl + 1 + ol, el);
        res.err_len = el;
        if (!res.out || !res.err)
            cric_error_sys(&e, -ENOMEM, "exec in container '%s'", x->id);
    }
    x->cb(e ? NULL : &res, e, x->data);
    free(res.out);
    free(res.err);
    cric_error_free(e);
    free(x->id);
    free(x);
}

int cric_shim_exec_sync(uv_loop_t *loop, const struct cric_shim_exec_opts *o, cric_shim_exec_cb cb, void *data,
                        cric_error **err)
{
    if (!o->id || !o->runtime || (!o->process_path && (!o->argv || !o->argv[0])))
        return cric_error_new(err, -EINVAL, "exec: container id, runtime and a command are required");
    _cleanup_free_ char *shim = o->shim_path ? strdup(o->shim_path) : cric_helper_path("cric-shim");
    if (!shim)
        return cric_error_sys(err, -ENOMEM, "exec in container '%s'", o->id);
    size_t max = o->output_max ? o->output_max : EXEC_OUTPUT_DEFAULT;
    char tbuf[32], obuf[32];
    snprintf(tbuf, sizeof(tbuf), "%u", o->timeout_s);
    snprintf(obuf, sizeof(obuf), "%zu", max);
    size_t argc = 0;
    while (o->argv && o->argv[argc])
        argc++;
    _cleanup_free_ const char **argv = calloc(argc + 20, sizeof(*argv));
    if (!argv)
        return cric_error_sys(err, -ENOMEM, "exec in container '%s'", o->id);
    size_t n = 0;
    argv[n++] = shim;
    argv[n++] = "--exec";
    argv[n++] = "--id", argv[n++] = o->id;
    argv[n++] = "--runtime", argv[n++] = o->runtime;
    if (o->runtime_root)
        argv[n++] = "--runtime-root", argv[n++] = o->runtime_root;
    if (o->systemd_cgroup)
        argv[n++] = "--systemd-cgroup";
    argv[n++] = "--timeout", argv[n++] = tbuf;
    argv[n++] = "--output-max", argv[n++] = obuf;
    if (o->process_path) {
        argv[n++] = "--process", argv[n++] = o->process_path;
    } else {
        argv[n++] = "--";
        for (size_t i = 0; i < argc; i++)
            argv[n++] = o->argv[i];
    }
    argv[n] = NULL;
    struct exec_req *x = calloc(1, sizeof(*x));
    if (!x || !(x->id = strdup(o->id))) {
        free(x);
        return cric_error_sys(err, -ENOMEM, "exec in container '%s'", o->id);
    }
    x->cb = cb;
    x->data = data;
    size_t caps[3] = {2 * max + 256, 64 << 10, 0};
    /* the shim enforces timeout_s itself; this is only a backstop */
    unsigned backstop = o->timeout_s ? (o->timeout_s + 30) * 1000u : 0;
    int r = cric__proc_run(loop, argv, caps, backstop, exec_done, x, err);
    if (r < 0) {
        free(x->id);
        free(x);
    }
    return r;
}
