/* CNI results (0.2.0 ip4/ip6, 0.3.0+ ips/interfaces) and error objects. */
#include "config.h"
#include "cni/cni.h"
#include "util/yj.h"
#include "util/cleanup.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cric_cni_result_free(struct cric_cni_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_ips; i++) {
        free(r->ips[i].address);
        free(r->ips[i].gateway);
    }
    for (size_t i = 0; i < r->n_ifaces; i++) {
        free(r->ifaces[i].name);
        free(r->ifaces[i].mac);
        free(r->ifaces[i].sandbox);
    }
    free(r->ips);
    free(r->ifaces);
    free(r->cni_version);
    free(r->json);
    free(r);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int add_ip(struct cric_cni_result *r, const char *addr, const char *gw, int iface)
{
    struct cric_cni_ip *n = realloc(r->ips, (r->n_ips + 1) * sizeof(*n));
    if (!n)
        return -ENOMEM;
    r->ips = n;
    n[r->n_ips] = (struct cric_cni_ip){ .address = strdup(addr), .gateway = dup_or_null(gw), .interface = iface };
    r->n_ips++;
    if (!n[r->n_ips - 1].address || (gw && !n[r->n_ips - 1].gateway))
        return -ENOMEM;
    return 0;
}

/* Accepts "a.b.c.d/len" or an IPv6 equivalent: a bounded check that rejects
 * garbage without pulling in a full parser. */
static bool looks_like_cidr(const char *s)
{
    const char *slash = strchr(s, '/');
    if (!slash || slash == s || !slash[1] || strlen(s) > 64)
        return false;
    for (const char *p = s; p < slash; p++)
        if (!strchr("0123456789abcdefABCDEF.:", *p))
            return false;
    for (const char *p = slash + 1; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    return true;
}

int cric_cni_result_parse(const char *text, struct cric_cni_result **out, cric_error **err)
{
    char ebuf[256];
    if (!text || !*text)
        return cric_error_new(err, -EINVAL, "CNI result is empty");
    yajl_val root = cric_yj_parse(text, ebuf, sizeof(ebuf));
    if (!root)
        return cric_error_new(err, -EINVAL, "CNI result is not valid JSON: %s", ebuf);
    int r = 0;
    struct cric_cni_result *res = calloc(1, sizeof(*res));
    if (!res) {
        r = cric_error_sys(err, -ENOMEM, "CNI result");
        goto out;
    }
    if (root->type != yajl_t_object) {
        r = cric_error_new(err, -EINVAL, "CNI result is not a JSON object");
        goto out;
    }
    yajl_val ips = cric_yj_get(root, "ips"), ifaces = cric_yj_get(root, "interfaces");
    yajl_val ip4 = cric_yj_get(root, "ip4"), ip6 = cric_yj_get(root, "ip6");
    const char *ver = cric_yj_get_str(root, "cniVersion");
    if (!ver && !ips && !ip4 && !ip6 && !ifaces) {
        r = cric_error_new(err, -EINVAL, "CNI result has neither cniVersion, ips nor interfaces");
        goto out;
    }
    res->cni_version = strdup(ver ? ver : "0.2.0");
    res->json = strdup(text);
    if (!res->cni_version || !res->json) {
        r = cric_error_sys(err, -ENOMEM, "CNI result");
        goto out;
    }
    if (ifaces) {
        if (ifaces->type != yajl_t_array) {
            r = cric_error_new(err, -EINVAL, "CNI result: \"interfaces\" is not an array");
            goto out;
        }
        res->ifaces = calloc(ifaces->u.array.len + 1, sizeof(*res->ifaces));
        if (!res->ifaces) {
            r = cric_error_sys(err, -ENOMEM, "CNI result");
            goto out;
        }
        for (size_t i = 0; i < ifaces->u.array.len; i++) {
            yajl_val o = ifaces->u.array.values[i];
            const char *name = cric_yj_get_str(o, "name");
            if (!name) {
                r = cric_error_new(err, -EINVAL, "CNI result: interface %zu has no name", i);
                goto out;
            }
            struct cric_cni_iface *f = &res->ifaces[res->n_ifaces++];
            f->name = strdup(name);
            f->mac = dup_or_null(cric_yj_get_str(o, "mac"));
            f->sandbox = dup_or_null(cric_yj_get_str(o, "sandbox"));
            if (!f->name) {
                r = cric_error_sys(err, -ENOMEM, "CNI result");
                goto out;
            }
        }
    }
    if (ips) {
        if (ips->type != yajl_t_array) {
            r = cric_error_new(err, -EINVAL, "CNI result: \"ips\" is not an array");
            goto out;
        }
        for (size_t i = 0; i < ips->u.array.len; i++) {
            yajl_val o = ips->u.array.values[i];
            const char *addr = cric_yj_get_str(o, "address");
            if (!addr || !looks_like_cidr(addr)) {
                r = cric_error_new(err, -EINVAL, "CNI result: ips[%zu].address is %s%s%s", i,
                                   addr ? "'" : "", addr ? addr : "missing", addr ? "', not an address/prefix" : "");
                goto out;
            }
            int iface = -1;
            yajl_val iv = cric_yj_get(o, "interface");
            if (iv) {
                if (!YAJL_IS_INTEGER(iv) || YAJL_GET_INTEGER(iv) < 0 ||
                    (size_t)YAJL_GET_INTEGER(iv) >= res->n_ifaces) {
                    r = cric_error_new(err, -EINVAL, "CNI result: ips[%zu].interface is not an index into interfaces", i);
                    goto out;
                }
                iface = (int)YAJL_GET_INTEGER(iv);
            }
            if (add_ip(res, addr, cric_yj_get_str(o, "gateway"), iface) < 0) {
                r = cric_error_sys(err, -ENOMEM, "CNI result");
                goto out;
            }
        }
    } else {
        yajl_val legacy[2] = { ip4, ip6 };
        for (int k = 0; k < 2; k++) {
            if (!legacy[k])
                continue;
            const char *addr = cric_yj_get_str(legacy[k], "ip");
            if (!addr || !looks_like_cidr(addr)) {
                r = cric_error_new(err, -EINVAL, "CNI result: %s.ip is missing or not an address/prefix", k ? "ip6" : "ip4");
                goto out;
            }
            if (add_ip(res, addr, cric_yj_get_str(legacy[k], "gateway"), -1) < 0) {
                r = cric_error_sys(err, -ENOMEM, "CNI result");
                goto out;
            }
        }
    }
    *out = res;
    res = NULL;
out:
    cric_cni_result_free(res);
    yajl_tree_free(root);
    return r;
}

char *cric_cni_error_message(const char *text)
{
    if (!text || !*text)
        return NULL;
    yajl_val root = cric_yj_parse(text, NULL, 0);
    if (!root)
        return NULL;
    char *m = NULL;
    yajl_val code = cric_yj_get(root, "code");
    const char *msg = cric_yj_get_str(root, "msg"), *details = cric_yj_get_str(root, "details");
    if (code && YAJL_IS_INTEGER(code) && msg) {
        if (asprintf(&m, "%s (code %lld)%s%s", msg, YAJL_GET_INTEGER(code), details && *details ? ": " : "",
                     details && *details ? details : "") < 0)
            m = NULL;
    }
    yajl_tree_free(root);
    return m;
}

char *cric_cni_result_ip(const struct cric_cni_result *r, size_t index)
{
    /* Only addresses on interfaces inside the sandbox are pod IPs; a result
     * that names no interface counts all. */
    size_t seen = 0;
    for (size_t i = 0; i < r->n_ips; i++) {
        const struct cric_cni_ip *ip = &r->ips[i];
        if (ip->interface >= 0 && !(r->ifaces[ip->interface].sandbox && *r->ifaces[ip->interface].sandbox))
            continue;
        if (seen++ == index) {
            const char *slash = strchr(ip->address, '/');
            return strndup(ip->address, slash ? (size_t)(slash - ip->address) : strlen(ip->address));
        }
    }
    return NULL;
}
