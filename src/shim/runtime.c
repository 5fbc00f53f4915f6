/* cric_runtime_run: the OCI runtime as a short-lived uv_spawn child. */
#include "config.h"
#include "shim/proc.h"
#include "shim/shim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct run_req {
    cric_runtime_cb cb;
    void *data;
};

static void run_done(int status, struct cric__capture cap[3], void *data)
{
    struct run_req *r = data;
    struct cric_runtime_result res = {
        .status = status, .out = cap[0].data, .out_len = cap[0].len, .err = cap[1].data, .err_len = cap[1].len};
    r->cb(&res, r->data);
    free(r);
}

int cric_runtime_run(uv_loop_t *loop, const char *const *argv, unsigned timeout_ms, cric_runtime_cb cb,
                     void *data, cric_error **err)
{
    return cric_runtime_run_nice(loop, argv, timeout_ms, 0, cb, data, err);
}

int cric_runtime_run_nice(uv_loop_t *loop, const char *const *argv, unsigned timeout_ms, int nice,
                          cric_runtime_cb cb, void *data, cric_error **err)
{
    if (!argv || !argv[0] || argv[0][0] != '/')
        return cric_error_new(err, -EINVAL, "runtime path '%s' is not absolute", argv && argv[0] ? argv[0] : "");
    struct run_req *r = malloc(sizeof(*r));
    if (!r)
        return cric_error_sys(err, -ENOMEM, "run '%s'", argv[0]);
    r->cb = cb;
    r->data = data;
    static const size_t max[3] = {4 << 20, 64 << 10, 0};
    int rc = cric__proc_run_nice(loop, argv, max, timeout_ms, nice, run_done, r, err);
    if (rc < 0)
        free(r);
    return rc;
}

/* Extracts msg="..." (logrus text) or "msg":"..." (json) from s. */
static char *find_msg(const char *s)
{
    const char *last = NULL;
    bool json = false;
    for (const char *p = s; (p = strstr(p, "msg=")); p++)
        last = p + 4, json = false;
    if (!last)
        for (const char *p = s; (p = strstr(p, "\"msg\":")); p++)
            last = p + 6, json = true;
    while (last && *last == ' ')
        last++;
    if (!last || *last != '"')
        return NULL;
    (void)json;
    const char *p = last + 1;
    size_t cap = strlen(p) + 1, n = 0;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    for (; *p && *p != '"'; p++) {
        char c = *p;
        if (c == '\\' && p[1]) {
            p++;
            c = *p == 'n' || *p == 't' ? ' ' : *p;
        }
        out[n++] = c;
    }
    out[n] = '\0';
    return out;
}

char *cric_runtime_error_text(const struct cric_runtime_result *res)
{
    char *m = res->err ? find_msg(res->err) : NULL;
    if (m && *m)
        return m;
    free(m);
    if (res->err && res->err_len) {
        const char *b = res->err;
        size_t n = res->err_len;
        while (n && (*b == ' ' || *b == '\n'))
            b++, n--;
        while (n && (b[n - 1] == ' ' || b[n - 1] == '\n'))
            n--;
        if (n)
            return strndup(b, n);
    }
    char *s = NULL;
    if (res->status == -ETIMEDOUT)
        return strdup("timed out");
    if (asprintf(&s, "exit status %d", res->status) < 0)
        return NULL;
    return s;
}
