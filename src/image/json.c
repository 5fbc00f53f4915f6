#include "config.h"
#include "image/json.h"
#include "image/store.h"
#include "util/cleanup.h"
#include "util/yj.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

int cric__json_parse(const char *data, size_t len, const char *what, yajl_val *out, cric_error **err)
{
    _cleanup_free_ char *buf = malloc(len + 1);
    if (!buf)
        return cric_error_sys(err, -ENOMEM, "parse %s", what);
    memcpy(buf, data, len);
    buf[len] = '\0';
    if (strlen(buf) != len)
        return cric_error_new(err, -EINVAL, "parse %s: NUL byte in JSON", what);
    char ebuf[256] = "";
    yajl_val v = yajl_tree_parse(buf, ebuf, sizeof(ebuf));
    if (!v) {
        /* yajl's message spans lines and quotes the input: keep the first line. */
        char *nl = strchr(ebuf, '\n');
        if (nl)
            *nl = '\0';
        return cric_error_new(err, -EINVAL, "parse %s: invalid JSON: %s", what, ebuf[0] ? ebuf : "syntax error");
    }
    *out = v;
    return 0;
}

yajl_val cric__json_get(yajl_val obj, const char *key)
{
    return cric_yj_get(obj, key);
}

const char *cric__json_str(yajl_val obj, const char *key)
{
    return cric_yj_get_str(obj, key);
}

char **cric__strv_new(void) { return calloc(1, sizeof(char *)); }

size_t cric__strv_len(char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

int cric__strv_push(char ***v, const char *s)
{
    size_t n = cric__strv_len(*v);
    char *c = strdup(s);
    if (!c)
        return -ENOMEM;
    char **nv = realloc(*v, (n + 2) * sizeof(char *));
    if (!nv) {
        free(c);
        return -ENOMEM;
    }
    nv[n] = c;
    nv[n + 1] = NULL;
    *v = nv;
    return 0;
}

int cric__strv_remove(char **v, const char *s)
{
    int removed = 0;
    size_t w = 0;
    for (size_t r = 0; v && v[r]; r++) {
        if (strcmp(v[r], s) == 0) {
            free(v[r]);
            removed++;
        } else {
            v[w++] = v[r];
        }
    }
    if (v)
        v[w] = NULL;
    return removed;
}

bool cric__strv_contains(char *const *v, const char *s)
{
    for (size_t i = 0; v && v[i]; i++)
        if (strcmp(v[i], s) == 0)
            return true;
    return false;
}

void cric_strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

int cric__json_strv(yajl_val v, char ***out)
{
    char **r = cric__strv_new();
    if (!r)
        return -ENOMEM;
    if (v && !YAJL_IS_NULL(v)) {
        if (!YAJL_IS_ARRAY(v)) {
            free(r);
            return -EINVAL;
        }
        for (size_t i = 0; i < v->u.array.len; i++) {
            yajl_val e = v->u.array.values[i];
            if (!YAJL_IS_STRING(e) || cric__strv_push(&r, e->u.string) < 0) {
                cric_strv_free(r);
                return YAJL_IS_STRING(e) ? -ENOMEM : -EINVAL;
            }
        }
    }
    *out = r;
    return 0;
}

int cric__json_keys(yajl_val v, char ***out)
{
    char **r = cric__strv_new();
    if (!r)
        return -ENOMEM;
    if (v && !YAJL_IS_NULL(v)) {
        if (!YAJL_IS_OBJECT(v)) {
            free(r);
            return -EINVAL;
        }
        for (size_t i = 0; i < v->u.object.len; i++)
            if (cric__strv_push(&r, v->u.object.keys[i]) < 0) {
                cric_strv_free(r);
                return -ENOMEM;
            }
    }
    *out = r;
    return 0;
}

int cric__gen_take(yajl_gen g, char **out)
{
    const unsigned char *buf;
    size_t len;
    if (yajl_gen_get_buf(g, &buf, &len) != yajl_gen_status_ok)
        return -EINVAL;
    char *s = strndup((const char *)buf, len);
    if (!s)
        return -ENOMEM;
    *out = s;
    return 0;
}
