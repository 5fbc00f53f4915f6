#include "config.h"
#include "util/yj.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cric_yj_gen_str(yajl_gen g, const char *s)
{
    if (!s)
        return yajl_gen_null(g) == yajl_gen_status_ok ? 0 : -EINVAL;
    return yajl_gen_string(g, (const unsigned char *)s, strlen(s)) == yajl_gen_status_ok ? 0 : -EINVAL;
}

void cric_yj_kv_str(yajl_gen g, const char *k, const char *v)
{
    cric_yj_gen_str(g, k);
    cric_yj_gen_str(g, v);
}

void cric_yj_kv_int(yajl_gen g, const char *k, long long v)
{
    cric_yj_gen_str(g, k);
    yajl_gen_integer(g, v);
}

void cric_yj_kv_bool(yajl_gen g, const char *k, bool v)
{
    cric_yj_gen_str(g, k);
    yajl_gen_bool(g, v);
}

void cric_yj_kv_strv(yajl_gen g, const char *k, char *const *v)
{
    cric_yj_gen_str(g, k);
    yajl_gen_array_open(g);
    for (size_t i = 0; v && v[i]; i++)
        cric_yj_gen_str(g, v[i]);
    yajl_gen_array_close(g);
}

int cric_yj_gen_value(yajl_gen g, yajl_val v)
{
    yajl_gen_status st = yajl_gen_status_ok;
    if (!v)
        return yajl_gen_null(g) == yajl_gen_status_ok ? 0 : -EINVAL;
    switch (v->type) {
    case yajl_t_string:
        return cric_yj_gen_str(g, v->u.string);
    case yajl_t_number:
        st = yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r));
        break;
    case yajl_t_true:
        st = yajl_gen_bool(g, 1);
        break;
    case yajl_t_false:
        st = yajl_gen_bool(g, 0);
        break;
    case yajl_t_null:
        st = yajl_gen_null(g);
        break;
    case yajl_t_object:
        if (yajl_gen_map_open(g) != yajl_gen_status_ok)
            return -EINVAL;
        for (size_t i = 0; i < v->u.object.len; i++) {
            if (cric_yj_gen_str(g, v->u.object.keys[i]) < 0 || cric_yj_gen_value(g, v->u.object.values[i]) < 0)
                return -EINVAL;
        }
        st = yajl_gen_map_close(g);
        break;
    case yajl_t_array:
        if (yajl_gen_array_open(g) != yajl_gen_status_ok)
            return -EINVAL;
        for (size_t i = 0; i < v->u.array.len; i++)
            if (cric_yj_gen_value(g, v->u.array.values[i]) < 0)
                return -EINVAL;
        st = yajl_gen_array_close(g);
        break;
    default:
        return -EINVAL;
    }
    return st == yajl_gen_status_ok ? 0 : -EINVAL;
}

yajl_val cric_yj_parse(const char *text, char *ebuf, size_t ebuf_len)
{
    if (ebuf_len)
        ebuf[0] = '\0';
    yajl_val v = yajl_tree_parse(text, ebuf, ebuf_len);
    if (v == NULL && ebuf_len) {
        /* yajl's message spans lines (with a caret marker); keep the first. */
        char *nl = strchr(ebuf, '\n');
        if (nl)
            *nl = '\0';
        if (!ebuf[0])
            snprintf(ebuf, ebuf_len, "invalid JSON");
    }
    return v;
}

yajl_val cric_yj_get(yajl_val v, const char *key)
{
    if (!v || v->type != yajl_t_object)
        return NULL;
    for (size_t i = 0; i < v->u.object.len; i++)
        if (strcmp(v->u.object.keys[i], key) == 0)
            return v->u.object.values[i];
    return NULL;
}

const char *cric_yj_get_str(yajl_val v, const char *key)
{
    yajl_val s = cric_yj_get(v, key);
    return s && s->type == yajl_t_string ? s->u.string : NULL;
}

char *cric_yj_gen_take(yajl_gen g, size_t *len)
{
    const unsigned char *buf;
    size_t n;
    if (yajl_gen_get_buf(g, &buf, &n) != yajl_gen_status_ok)
        return NULL;
    char *s = malloc(n + 1);
    if (!s)
        return NULL;
    memcpy(s, buf, n);
    s[n] = '\0';
    if (len)
        *len = n;
    return s;
}
