#include "config.h"
#include "util/json.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_parse.h>

struct parse_ctx {
    const char *text;
    yajl_handle h;
    size_t line_off;      /* text before this offset has been counted ... */
    unsigned line;        /* ... and holds line-1 newlines */
    cric_json *root;
    cric_json *stack[CRIC_JSON_MAX_DEPTH + 1];
    size_t depth;
    char *pending_key;    /* key read, value not yet */
    unsigned pending_key_line;
    bool oom, too_deep;
};

static unsigned current_line(struct parse_ctx *c)
{
    size_t off = yajl_get_bytes_consumed(c->h);
    /* The offset points past the token just read; count newlines up to it
     * once (offsets only grow during one parse). */
    for (; c->line_off < off; c->line_off++)
        if (c->text[c->line_off] == '\n')
            c->line++;
    return c->line;
}

static int add_value(struct parse_ctx *c, cric_json *v)
{
    if (!v) {
        c->oom = true;
        return 0;
    }
    v->line = current_line(c);
    if (c->depth == 0) {
        c->root = v;
        return 1;
    }
    cric_json *parent = c->stack[c->depth - 1];
    cric_json **items = realloc(parent->items, (parent->len + 1) * sizeof(*items));
    if (!items)
        goto oom;
    parent->items = items;
    if (parent->type == CRIC_JSON_OBJECT) {
        char **keys = realloc(parent->keys, (parent->len + 1) * sizeof(*keys));
        if (!keys)
            goto oom;
        parent->keys = keys;
        unsigned *kl = realloc(parent->key_lines, (parent->len + 1) * sizeof(*kl));
        if (!kl)
            goto oom;
        parent->key_lines = kl;
        keys[parent->len] = c->pending_key;
        kl[parent->len] = c->pending_key_line;
        c->pending_key = NULL;
        /* A value that is an object or array starts where its key is, which is
         * the line a reader looks for. */
        v->line = c->pending_key_line;
    }
    items[parent->len++] = v;
    return 1;
oom:
    cric_json_free(v);
    c->oom = true;
    return 0;
}

static cric_json *node(enum cric_json_type t)
{
    cric_json *j = calloc(1, sizeof(*j));
    if (j)
        j->type = t;
    return j;
}

static int on_null(void *ctx)
{
    return add_value(ctx, node(CRIC_JSON_NULL));
}

static int on_bool(void *ctx, int b)
{
    cric_json *j = node(CRIC_JSON_BOOL);
    if (j)
        j->boolean = b;
    return add_value(ctx, j);
}

static cric_json *text_node(enum cric_json_type t, const unsigned char *s, size_t len)
{
    cric_json *j = node(t);
    if (!j)
        return NULL;
    j->str = strndup((const char *)s, len);
    if (!j->str || strlen(j->str) != len) {
        /* An embedded NUL in a string would silently truncate it. */
        free(j->str);
        free(j);
        return NULL;
    }
    return j;
}

static int on_number(void *ctx, const char *s, size_t len)
{
    return add_value(ctx, text_node(CRIC_JSON_NUMBER, (const unsigned char *)s, len));
}

static int on_string(void *ctx, const unsigned char *s, size_t len)
{
    return add_value(ctx, text_node(CRIC_JSON_STRING, s, len));
}

static int on_map_key(void *ctx, const unsigned char *s, size_t len)
{
    struct parse_ctx *c = ctx;
    free(c->pending_key);
    c->pending_key = strndup((const char *)s, len);
    if (!c->pending_key) {
        c->oom = true;
        return 0;
    }
    c->pending_key_line = current_line(c);
    return 1;
}

static int open_container(struct parse_ctx *c, enum cric_json_type t)
{
    if (c->depth >= CRIC_JSON_MAX_DEPTH) {
        c->too_deep = true;
        return 0;
    }
    cric_json *j = node(t);
    if (!add_value(c, j))
        return 0;
    c->stack[c->depth++] = j;
    return 1;
}

static int on_start_map(void *ctx)
{
    return open_container(ctx, CRIC_JSON_OBJECT);
}

static int on_start_array(void *ctx)
{
    return open_container(ctx, CRIC_JSON_ARRAY);
}

static int on_end(void *ctx)
{
    struct parse_ctx *c = ctx;
    c->depth--;
    return 1;
}

static const yajl_callbacks callbacks = {
    .yajl_null = on_null,
    .yajl_boolean = on_bool,
    .yajl_number = on_number,
    .yajl_string = on_string,
    .yajl_start_map = on_start_map,
    .yajl_map_key = on_map_key,
    .yajl_end_map = on_end,
    .yajl_start_array = on_start_array,
    .yajl_end_array = on_end,
};

int cric_json_parse(const char *text, size_t len, bool allow_comments, cric_json **out, cric_error **err)
{
    struct parse_ctx c = { .text = text, .line = 1 };
    c.h = yajl_alloc(&callbacks, NULL, &c);
    if (!c.h)
        return cric_error_new(err, -ENOMEM, "out of memory");
    yajl_config(c.h, yajl_allow_comments, allow_comments ? 1 : 0);
    yajl_status st = yajl_parse(c.h, (const unsigned char *)text, len);
    bool at_end = false;
    if (st == yajl_status_ok) {
        st = yajl_complete_parse(c.h);
        at_end = true;
    }
    int r = 0;
    if (st != yajl_status_ok) {
        unsigned line = current_line(&c);
        if (at_end) /* a premature end is at the end of the text */
            for (; c.line_off < len; c.line_off++)
                line += text[c.line_off] == '\n';
        if (c.oom) {
            r = cric_error_new(err, -ENOMEM, "line %u: out of memory", line);
        } else if (c.too_deep) {
            r = cric_error_new(err, -EINVAL, "line %u: nested deeper than %d levels", line, CRIC_JSON_MAX_DEPTH);
        } else {
            unsigned char *msg = yajl_get_error(c.h, 0, (const unsigned char *)text, len);
            char *m = msg ? (char *)msg : "invalid JSON";
            size_t ml = strlen(m);
            while (ml > 0 && (m[ml - 1] == '\n' || m[ml - 1] == ' '))
                ml--;
            r = cric_error_new(err, -EINVAL, "line %u: invalid JSON: %.*s", line, (int)ml, m);
            if (msg)
                yajl_free_error(c.h, msg);
        }
    } else if (!c.root) {
        r = cric_error_new(err, -EINVAL, "line %u: empty document", current_line(&c));
    }
    yajl_free(c.h);
    free(c.pending_key);
    if (r < 0) {
        cric_json_free(c.root);
        return r;
    }
    *out = c.root;
    return 0;
}

void cric_json_free(cric_json *j)
{
    if (!j)
        return;
    for (size_t i = 0; i < j->len; i++) {
        cric_json_free(j->items[i]);
        if (j->keys)
            free(j->keys[i]);
    }
    free(j->items);
    free(j->keys);
    free(j->key_lines);
    free(j->str);
    free(j);
}

const cric_json *cric_json_get(const cric_json *obj, const char *key)
{
    if (!obj || obj->type != CRIC_JSON_OBJECT)
        return NULL;
    for (size_t i = 0; i < obj->len; i++)
        if (strcmp(obj->keys[i], key) == 0)
            return obj->items[i];
    return NULL;
}

const char *cric_json_type_name(enum cric_json_type t)
{
    switch (t) {
    case CRIC_JSON_NULL: return "null";
    case CRIC_JSON_BOOL: return "boolean";
    case CRIC_JSON_NUMBER: return "number";
    case CRIC_JSON_STRING: return "string";
    case CRIC_JSON_OBJECT: return "object";
    case CRIC_JSON_ARRAY: return "array";
    }
    return "?";
}

int cric_json_gen(void *gen, const cric_json *j)
{
    yajl_gen g = gen;
    int st = 0;
    switch (j->type) {
    case CRIC_JSON_NULL: st = yajl_gen_null(g); break;
    case CRIC_JSON_BOOL: st = yajl_gen_bool(g, j->boolean); break;
    case CRIC_JSON_NUMBER: st = yajl_gen_number(g, j->str, strlen(j->str)); break;
    case CRIC_JSON_STRING: st = yajl_gen_string(g, (const unsigned char *)j->str, strlen(j->str)); break;
    case CRIC_JSON_OBJECT:
        st = yajl_gen_map_open(g);
        for (size_t i = 0; !st && i < j->len; i++) {
            st = yajl_gen_string(g, (const unsigned char *)j->keys[i], strlen(j->keys[i]));
            if (!st && cric_json_gen(g, j->items[i]) < 0)
                return -EINVAL;
        }
        if (!st)
            st = yajl_gen_map_close(g);
        break;
    case CRIC_JSON_ARRAY:
        st = yajl_gen_array_open(g);
        for (size_t i = 0; !st && i < j->len; i++)
            if (cric_json_gen(g, j->items[i]) < 0)
                return -EINVAL;
        if (!st)
            st = yajl_gen_array_close(g);
        break;
    }
    return st ? -EINVAL : 0;
}

void cric_json_tidy(char *s)
{
    char *o = s;
    bool in_str = false;
    for (const char *p = s; *p; p++) {
        *o++ = *p;
        if (in_str) {
            if (*p == '\\' && p[1])
                *o++ = *++p;
            else if (*p == '"')
                in_str = false;
            continue;
        }
        if (*p == '"') {
            in_str = true;
        } else if (*p == '[' || *p == '{') {
            const char *q = p + 1;
            while (*q == ' ' || *q == '\n' || *q == '\t' || *q == '\r')
                q++;
            if (*q == (*p == '[' ? ']' : '}')) {
                *o++ = *q;
                p = q;
            }
        }
    }
    *o = 0;
}
