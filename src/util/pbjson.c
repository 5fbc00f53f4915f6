#include "config.h"
#include "util/pbjson.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"

#define MEMBER(T, msg, off) (*(T *)((char *)(msg) + (off)))
#define CMEMBER(T, msg, off) (*(const T *)((const char *)(msg) + (off)))

void cric_pbjson_name(const char *proto_name, char *buf, size_t size)
{
    /* protoc's ToJsonName: drop '_' and upper-case the letter after it. */
    size_t o = 0;
    bool upper = false;
    for (const char *p = proto_name; *p && o + 1 < size; p++) {
        if (*p == '_') {
            upper = true;
            continue;
        }
        buf[o++] = upper && *p >= 'a' && *p <= 'z' ? (char)(*p - 'a' + 'A') : *p;
        upper = false;
    }
    buf[o] = 0;
}

static bool is_map_field(const ProtobufCFieldDescriptor *f)
{
    if (f->type != PROTOBUF_C_TYPE_MESSAGE || f->label != PROTOBUF_C_LABEL_REPEATED)
        return false;
    const ProtobufCMessageDescriptor *d = f->descriptor;
    if (d->n_fields != 2 || strcmp(d->fields[0].name, "key") != 0 || strcmp(d->fields[1].name, "value") != 0)
        return false;
    /* protoc names a map's entry type <CamelFieldName>Entry. */
    char camel[256];
    cric_pbjson_name(f->name, camel, sizeof(camel));
    if (camel[0] >= 'a' && camel[0] <= 'z')
        camel[0] = (char)(camel[0] - 'a' + 'A');
    size_t n = strlen(camel);
    return strncmp(d->short_name, camel, n) == 0 && strcmp(d->short_name + n, "Entry") == 0;
}

static size_t elem_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
        return 4;
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
        return 8;
    case PROTOBUF_C_TYPE_FLOAT: return sizeof(float);
    case PROTOBUF_C_TYPE_DOUBLE: return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM: return sizeof(int);
    case PROTOBUF_C_TYPE_STRING: return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(ProtobufCMessage *);
    }
    return 0;
}

/* ---- encoding ---- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void gen_bytes(yajl_gen g, const ProtobufCBinaryData *b)
{
    size_t n = (b->len + 2) / 3 * 4;
    char *out = malloc(n + 1);
    if (!out) {
        yajl_gen_string(g, (const unsigned char *)"", 0);
        return;
    }
    size_t o = 0;
    for (size_t i = 0; i < b->len; i += 3) {
        uint32_t v = (uint32_t)b->data[i] << 16;
        if (i + 1 < b->len)
            v |= (uint32_t)b->data[i + 1] << 8;
        if (i + 2 < b->len)
            v |= b->data[i + 2];
        out[o++] = b64[(v >> 18) & 63];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = i + 1 < b->len ? b64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < b->len ? b64[v & 63] : '=';
    }
    out[o] = 0;
    yajl_gen_string(g, (const unsigned char *)out, o);
    free(out);
}

static void gen_double(yajl_gen g, double d)
{
    if (isnan(d)) {
        yajl_gen_string(g, (const unsigned char *)"NaN", 3);
    } else if (isinf(d)) {
        const char *s = d > 0 ? "Infinity" : "-Infinity";
        yajl_gen_string(g, (const unsigned char *)s, strlen(s));
    } else {
        char num[40];
        int n = snprintf(num, sizeof(num), "%.17g", d);
        yajl_gen_number(g, num, (size_t)n);
    }
}

/* Writes one value (element of a repeated field or singular value). */
static int gen_value(yajl_gen g, const ProtobufCFieldDescriptor *f, const void *p, bool as_key)
{
    char num[32];
    int n = -1;
    bool quoted = as_key;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
        n = snprintf(num, sizeof(num), "%" PRId32, *(const int32_t *)p);
        break;
    case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
        n = snprintf(num, sizeof(num), "%" PRIu32, *(const uint32_t *)p);
        break;
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
        n = snprintf(num, sizeof(num), "%" PRId64, *(const int64_t *)p);
        quoted = true;
        break;
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
        n = snprintf(num, sizeof(num), "%" PRIu64, *(const uint64_t *)p);
        quoted = true;
        break;
    case PROTOBUF_C_TYPE_FLOAT:
        gen_double(g, *(const float *)p);
        return 0;
    case PROTOBUF_C_TYPE_DOUBLE:
        gen_double(g, *(const double *)p);
        return 0;
    case PROTOBUF_C_TYPE_BOOL: {
        bool b = *(const protobuf_c_boolean *)p;
        if (as_key)
            return yajl_gen_string(g, (const unsigned char *)(b ? "true" : "false"), b ? 4 : 5) ? -EINVAL : 0;
        return yajl_gen_bool(g, b) ? -EINVAL : 0;
    }
    case PROTOBUF_C_TYPE_ENUM: {
        int v = *(const int *)p;
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(f->descriptor, v);
        if (ev)
            return yajl_gen_string(g, (const unsigned char *)ev->name, strlen(ev->name)) ? -EINVAL : 0;
        n = snprintf(num, sizeof(num), "%d", v);
        break;
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        s = s ? s : "";
        return yajl_gen_string(g, (const unsigned char *)s, strlen(s)) ? -EINVAL : 0;
    }
    case PROTOBUF_C_TYPE_BYTES:
        gen_bytes(g, p);
        return 0;
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;
        if (!m) {
            yajl_gen_map_open(g);
            yajl_gen_map_close(g);
            return 0;
        }
        return cric_pbjson_gen(g, m);
    }
    }
    if (n < 0)
        return -EINVAL;
    if (quoted)
        return yajl_gen_string(g, (const unsigned char *)num, (size_t)n) ? -EINVAL : 0;
    return yajl_gen_number(g, num, (size_t)n) ? -EINVAL : 0;
}

static bool is_default(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return !s || !s[0];
    }
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)p)->len == 0;
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(ProtobufCMessage *const *)p == NULL;
    case PROTOBUF_C_TYPE_FLOAT:
        return *(const float *)p == 0 && !signbit(*(const float *)p);
    case PROTOBUF_C_TYPE_DOUBLE:
        return *(const double *)p == 0 && !signbit(*(const double *)p);
    default: {
        size_t sz = elem_size(f->type);
        static const char zero[8];
        return memcmp(p, zero, sz) == 0;
    }
    }
}

/* Whether a singular field is present per its label's presence rules. */
static bool field_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, const void *p)
{
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return CMEMBER(uint32_t, m, f->quantifier_offset) == f->id;
    if (f->label == PROTOBUF_C_LABEL_REQUIRED)
        return true;
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
        f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
        return CMEMBER(protobuf_c_boolean, m, f->quantifier_offset);
    return !is_default(f, p);
}

int cric_pbjson_gen(yajl_gen g, const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (yajl_gen_map_open(g))
        return -EINVAL;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const void *p = (const char *)m + f->offset;
        char name[256];
        cric_pbjson_name(f->name, name, sizeof(name));
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = CMEMBER(size_t, m, f->quantifier_offset);
            const char *arr = *(char *const *)p;
            if (n == 0 || !arr)
                continue;
            yajl_gen_string(g, (const unsigned char *)name, strlen(name));
            if (is_map_field(f)) {
                const ProtobufCMessageDescriptor *ed = f->descriptor;
                yajl_gen_map_open(g);
                for (size_t j = 0; j < n; j++) {
                    const ProtobufCMessage *e = ((ProtobufCMessage *const *)arr)[j];
                    if (!e)
                        continue;
                    gen_value(g, &ed->fields[0], (const char *)e + ed->fields[0].offset, true);
                    if (gen_value(g, &ed->fields[1], (const char *)e + ed->fields[1].offset, false) < 0)
                        return -EINVAL;
                }
                yajl_gen_map_close(g);
            } else {
                size_t sz = elem_size(f->type);
                yajl_gen_array_open(g);
                for (size_t j = 0; j < n; j++)
                    if (gen_value(g, f, arr + j * sz, false) < 0)
                        return -EINVAL;
                yajl_gen_array_close(g);
            }
            continue;
        }
        if (!field_present(m, f, p))
            continue;
        yajl_gen_string(g, (const unsigned char *)name, strlen(name));
        if (gen_value(g, f, p, false) < 0)
            return -EINVAL;
    }
    return yajl_gen_map_close(g) ? -EINVAL : 0;
}

int cric_pbjson_encode(const ProtobufCMessage *msg, bool pretty, char **out, cric_error **err)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    if (!g)
        return cric_error_new(err, -ENOMEM, "out of memory");
    if (pretty) {
        yajl_gen_config(g, yajl_gen_beautify, 1);
        yajl_gen_config(g, yajl_gen_indent_string, "  ");
    }
    int r = cric_pbjson_gen(g, msg);
    const unsigned char *buf;
    size_t len;
    if (r < 0 || yajl_gen_get_buf(g, &buf, &len) != yajl_gen_status_ok)
        r = cric_error_new(err, -EINVAL, "cannot render %s as JSON", msg->descriptor->name);
    else if (!(*out = strndup((const char *)buf, len)))
        r = cric_error_new(err, -ENOMEM, "out of memory");
    else if (pretty)
        cric_json_tidy(*out);
    yajl_gen_free(g);
    return r;
}

/* ---- decoding ---- */

struct dec {
    cric_error **err;
    char path[1024];   /* dotted field path for messages */
};

static int dec_err(struct dec *dc, const cric_json *j, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int dec_err(struct dec *dc, const cric_json *j, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    return cric_error_new(dc->err, -EINVAL, "line %u: '%s': %s", j->line, dc->path[0] ? dc->path : "(top level)",
                          msg ? msg : "invalid value");
}

static int b64_val(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

static int b64_decode(const char *s, ProtobufCBinaryData *out)
{
    size_t len = strlen(s);
    while (len > 0 && s[len - 1] == '=')
        len--;
    if (len % 4 == 1)
        return -EINVAL;
    uint8_t *data = malloc(len / 4 * 3 + 3);
    if (!data)
        return -ENOMEM;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_val(s[i]);
        if (v < 0) {
            free(data);
            return -EINVAL;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            data[o++] = (uint8_t)(acc >> bits);
        }
    }
    if (o == 0) {
        free(data);
        data = NULL;
    }
    out->data = data;
    out->len = o;
    return 0;
}

static int parse_int(struct dec *dc, const cric_json *j, bool is_signed, int64_t min, int64_t max, uint64_t umax,
                     void *out, size_t size)
{
    if (j->type != CRIC_JSON_NUMBER && j->type != CRIC_JSON_STRING)
        return dec_err(dc, j, "expected an integer, got %s", cric_json_type_name(j->type));
    const char *s = j->str;
    char *end;
    errno = 0;
    if (is_signed) {
        long long v = strtoll(s, &end, 10);
        if (!s[0] || *end || errno || v < min || v > max) {
            /* JSON numbers like 1e3 or 2.0 that are integral are accepted too. */
            double d = strtod(s, &end);
            if (!s[0] || *end || d != floor(d) || d < (double)min || d > (double)max)
                return dec_err(dc, j, "'%s' is not an integer in range", s);
            v = (long long)d;
        }
        if (size == 4)
            *(int32_t *)out = (int32_t)v;
        else
            *(int64_t *)out = v;
    } else {
        if (s[0] == '-')
            return dec_err(dc, j, "'%s' is negative", s);
        unsigned long long v = strtoull(s, &end, 10);
        if (!s[0] || *end || errno || v > umax) {
            double d = strtod(s, &end);
            if (!s[0] || *end || d != floor(d) || d < 0 || d > (double)umax)
                return dec_err(dc, j, "'%s' is not an unsigned integer in range", s);
            v = (unsigned long long)d;
        }
        if (size == 4)
            *(uint32_t *)out = (uint32_t)v;
        else
            *(uint64_t *)out = v;
    }
    return 0;
}

static int decode_message(struct dec *dc, const ProtobufCMessageDescriptor *desc, const cric_json *j,
                          ProtobufCMessage **out);

/* Decodes one scalar/message value into p (an element or the field itself). */
static int decode_value(struct dec *dc, const ProtobufCFieldDescriptor *f, const cric_json *j, void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
        return parse_int(dc, j, true, INT32_MIN, INT32_MAX, 0, p, 4);
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
        return parse_int(dc, j, true, INT64_MIN, INT64_MAX, 0, p, 8);
    case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
        return parse_int(dc, j, false, 0, 0, UINT32_MAX, p, 4);
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
        return parse_int(dc, j, false, 0, 0, UINT64_MAX, p, 8);
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE: {
        double d;
        if (j->type == CRIC_JSON_STRING && strcmp(j->str, "NaN") == 0) {
            d = NAN;
        } else if (j->type == CRIC_JSON_STRING && strcmp(j->str, "Infinity") == 0) {
            d = INFINITY;
        } else if (j->type == CRIC_JSON_STRING && strcmp(j->str, "-Infinity") == 0) {
            d = -INFINITY;
        } else if (j->type == CRIC_JSON_NUMBER || j->type == CRIC_JSON_STRING) {
            char *end;
            d = strtod(j->str, &end);
            if (!j->str[0] || *end)
                return dec_err(dc, j, "'%s' is not a number", j->str);
        } else {
            return dec_err(dc, j, "expected a number, got %s", cric_json_type_name(j->type));
        }
        if (f->type == PROTOBUF_C_TYPE_FLOAT)
            *(float *)p = (float)d;
        else
            *(double *)p = d;
        return 0;
    }
    case PROTOBUF_C_TYPE_BOOL:
        if (j->type == CRIC_JSON_BOOL) {
            *(protobuf_c_boolean *)p = j->boolean;
            return 0;
        }
        return dec_err(dc, j, "expected true or false, got %s", cric_json_type_name(j->type));
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *ed = f->descriptor;
        if (j->type == CRIC_JSON_STRING) {
            const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value_by_name(ed, j->str);
            if (!ev)
                return dec_err(dc, j, "'%s' is not a value of %s", j->str, ed->name);
            *(int *)p = ev->value;
            return 0;
        }
        int32_t v;
        int r = parse_int(dc, j, true, INT32_MIN, INT32_MAX, 0, &v, 4);
        if (r < 0)
            return r;
        *(int *)p = v;
        return 0;
    }
    case PROTOBUF_C_TYPE_STRING: {
        if (j->type != CRIC_JSON_STRING)
            return dec_err(dc, j, "expected a string, got %s", cric_json_type_name(j->type));
        char *s = strdup(j->str);
        if (!s)
            return cric_error_new(dc->err, -ENOMEM, "out of memory");
        *(char **)p = s;
        return 0;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        if (j->type != CRIC_JSON_STRING)
            return dec_err(dc, j, "expected a base64 string, got %s", cric_json_type_name(j->type));
        int r = b64_decode(j->str, p);
        if (r == -ENOMEM)
            return cric_error_new(dc->err, r, "out of memory");
        if (r < 0)
            return dec_err(dc, j, "not valid base64");
        return 0;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        return decode_message(dc, f->descriptor, j, (ProtobufCMessage **)p);
    }
    return dec_err(dc, j, "unsupported field type");
}

/* Map keys arrive as JSON object keys (strings); turn one into a leaf node of
 * the key type so decode_value can read it. */
static int decode_map(struct dec *dc, const ProtobufCFieldDescriptor *f, const cric_json *j, ProtobufCMessage *m)
{
    if (j->type != CRIC_JSON_OBJECT)
        return dec_err(dc, j, "expected an object, got %s", cric_json_type_name(j->type));
    const ProtobufCMessageDescriptor *ed = f->descriptor;
    ProtobufCMessage **arr = calloc(j->len ? j->len : 1, sizeof(*arr));
    if (!arr)
        return cric_error_new(dc->err, -ENOMEM, "out of memory");
    MEMBER(void *, m, f->offset) = arr;
    size_t plen = strlen(dc->path);
    for (size_t i = 0; i < j->len; i++) {
        snprintf(dc->path + plen, sizeof(dc->path) - plen, "[%s]", j->keys[i]);
        ProtobufCMessage *e = malloc(ed->sizeof_message);
        if (!e)
            return cric_error_new(dc->err, -ENOMEM, "out of memory");
        ed->message_init(e);
        arr[i] = e;
        MEMBER(size_t, m, f->quantifier_offset) = i + 1;
        cric_json key = { .type = CRIC_JSON_STRING, .line = j->key_lines[i], .str = j->keys[i] };
        if (ed->fields[0].type == PROTOBUF_C_TYPE_BOOL) {
            key.type = CRIC_JSON_BOOL;
            key.boolean = strcmp(j->keys[i], "true") == 0;
            if (!key.boolean && strcmp(j->keys[i], "false") != 0)
                return dec_err(dc, &key, "map key is not true or false");
        }
        int r = decode_value(dc, &ed->fields[0], &key, (char *)e + ed->fields[0].offset);
        if (r < 0)
            return r;
        if (j->items[i]->type == CRIC_JSON_NULL)
            continue;
        r = decode_value(dc, &ed->fields[1], j->items[i], (char *)e + ed->fields[1].offset);
        if (r < 0)
            return r;
    }
    dc->path[plen] = 0;
    return 0;
}

static int decode_repeated(struct dec *dc, const ProtobufCFieldDescriptor *f, const cric_json *j, ProtobufCMessage *m)
{
    if (j->type != CRIC_JSON_ARRAY)
        return dec_err(dc, j, "expected an array, got %s", cric_json_type_name(j->type));
    size_t sz = elem_size(f->type);
    char *arr = calloc(j->len ? j->len : 1, sz);
    if (!arr)
        return cric_error_new(dc->err, -ENOMEM, "out of memory");
    MEMBER(void *, m, f->offset) = arr;
    size_t plen = strlen(dc->path);
    for (size_t i = 0; i < j->len; i++) {
        snprintf(dc->path + plen, sizeof(dc->path) - plen, "[%zu]", i);
        if (j->items[i]->type == CRIC_JSON_NULL)
            return dec_err(dc, j->items[i], "null in a list");
        /* Counted before decoding so that a failure frees a half-built element. */
        MEMBER(size_t, m, f->quantifier_offset) = i + 1;
        int r = decode_value(dc, f, j->items[i], arr + i * sz);
        if (r < 0)
            return r;
    }
    dc->path[plen] = 0;
    return 0;
}

static const ProtobufCFieldDescriptor *find_field(const ProtobufCMessageDescriptor *d, const char *name)
{
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, name);
    if (f)
        return f;
    for (unsigned i = 0; i < d->n_fields; i++) {
        char json[256];
        cric_pbjson_name(d->fields[i].name, json, sizeof(json));
        if (strcmp(json, name) == 0)
            return &d->fields[i];
    }
    return NULL;
}

static int decode_message(struct dec *dc, const ProtobufCMessageDescriptor *desc, const cric_json *j,
                          ProtobufCMessage **out)
{
    if (j->type != CRIC_JSON_OBJECT)
        return dec_err(dc, j, "expected an object, got %s", cric_json_type_name(j->type));
    ProtobufCMessage *m = malloc(desc->sizeof_message);
    _cleanup_free_ bool *seen = calloc(desc->n_fields + 1, sizeof(bool));
    if (!m || !seen) {
        free(m);
        return cric_error_new(dc->err, -ENOMEM, "out of memory");
    }
    desc->message_init(m);
    /* Hand the message to the caller's field now: on error the caller frees
     * the whole tree with protobuf_c_message_free_unpacked. */
    *out = m;
    size_t plen = strlen(dc->path);
    for (size_t i = 0; i < j->len; i++) {
        if (plen)
            snprintf(dc->path + plen, sizeof(dc->path) - plen, ".%s", j->keys[i]);
        else
            snprintf(dc->path, sizeof(dc->path), "%s", j->keys[i]);
        const ProtobufCFieldDescriptor *f = find_field(desc, j->keys[i]);
        cric_json keynode = { .line = j->key_lines[i] };
        if (!f)
            return dec_err(dc, &keynode, "unknown field");
        size_t idx = (size_t)(f - desc->fields);
        if (seen[idx])
            return dec_err(dc, &keynode, "field given twice");
        seen[idx] = true;
        const cric_json *v = j->items[i];
        if (v->type == CRIC_JSON_NULL)
            continue;
        int r;
        void *p = (char *)m + f->offset;
        if (f->label == PROTOBUF_C_LABEL_REPEATED)
            r = is_map_field(f) ? decode_map(dc, f, v, m) : decode_repeated(dc, f, v, m);
        else
            r = decode_value(dc, f, v, p);
        if (r < 0)
            return r;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
            MEMBER(uint32_t, m, f->quantifier_offset) = f->id;
        else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
                 f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
            MEMBER(protobuf_c_boolean, m, f->quantifier_offset) = 1;
    }
    dc->path[plen] = 0;
    return 0;
}

int cric_pbjson_decode_tree(const ProtobufCMessageDescriptor *desc, const cric_json *j, ProtobufCMessage **out,
                            cric_error **err)
{
    struct dec dc = { .err = err };
    ProtobufCMessage *m = NULL;
    int r = decode_message(&dc, desc, j, &m);
    if (r < 0) {
        protobuf_c_message_free_unpacked(m, NULL);
        return r;
    }
    *out = m;
    return 0;
}

int cric_pbjson_decode(const ProtobufCMessageDescriptor *desc, const char *json, size_t len, ProtobufCMessage **out,
                       cric_error **err)
{
    cric_json *j = NULL;
    int r = cric_json_parse(json, len, false, &j, err);
    if (r < 0)
        return r;
    r = cric_pbjson_decode_tree(desc, j, out, err);
    cric_json_free(j);
    return r;
}
