/* What every cricctl command shares: calling cricd and printing results. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>

#include "cricctl/cricctl.h"
#include "grpc/framing.h"
#include "util/json.h"
#include "util/pbjson.h"

int cricctl_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("cricctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int cricctl_parse_duration(const char *s, uint64_t *ms)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || v < 0)
        return -EINVAL;
    double mult;
    if (!*end || strcmp(end, "s") == 0)
        mult = 1000;
    else if (strcmp(end, "ms") == 0)
        mult = 1;
    else if (strcmp(end, "m") == 0)
        mult = 60000;
    else if (strcmp(end, "h") == 0)
        mult = 3600000;
    else
        return -EINVAL;
    *ms = (uint64_t)(v * mult);
    return 0;
}

static int connect_once(struct cricctl *ctl)
{
    if (ctl->client)
        return 0;
    cric_error *err = NULL;
    if (cric_client_connect(ctl->endpoint, ctl->timeout_ms, &ctl->client, &err) < 0) {
        int r = cricctl_fail("connect to %s: %s", ctl->endpoint, err ? err->msg : "failed");
        cric_error_free(err);
        return r;
    }
    return 0;
}

static int call_result(int r, cric_error *err, int status, char *status_msg)
{
    if (r < 0) {
        cricctl_fail("%s", err ? err->msg : "call failed");
        cric_error_free(err);
        free(status_msg);
        return 1;
    }
    if (status != GRPC_OK) {
        cricctl_fail("%s: %s", cric_grpc_status_name(status), status_msg ? status_msg : "");
        free(status_msg);
        return 1;
    }
    free(status_msg);
    return 0;
}

int cricctl_call(struct cricctl *ctl, const char *service, const char *method, const ProtobufCMessage *req,
                 const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp)
{
    int r = connect_once(ctl);
    if (r)
        return r;
    char path[256];
    snprintf(path, sizeof(path), "/runtime.v1.%s/%s", service, method);
    cric_error *err = NULL;
    int status = 0;
    char *status_msg = NULL;
    ProtobufCMessage *m = NULL;
    r = cric_client_call(ctl->client, path, req, resp_desc, ctl->timeout_ms, &m, &status, &status_msg, &err);
    r = call_result(r, err, status, status_msg);
    if (r) {
        if (m)
            protobuf_c_message_free_unpacked(m, NULL);
        return r;
    }
    *resp = m;
    return 0;
}

int cricctl_stream(struct cricctl *ctl, const char *service, const char *method, const ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *resp_desc, cric_client_stream_cb cb, void *data)
{
    int r = connect_once(ctl);
    if (r)
        return r;
    char path[256];
    snprintf(path, sizeof(path), "/runtime.v1.%s/%s", service, method);
    cric_error *err = NULL;
    int status = 0;
    char *status_msg = NULL;
    r = cric_client_stream(ctl->client, path, req, resp_desc, ctl->timeout_ms, cb, data, &status, &status_msg, &err);
    return call_result(r, err, status, status_msg);
}

int cricctl_set_output(struct cricctl *ctl, const char *arg)
{
    if (strcmp(arg, "json") == 0)
        ctl->output = CRICCTL_OUT_JSON;
    else if (strcmp(arg, "yaml") == 0)
        ctl->output = CRICCTL_OUT_YAML;
    else if (strcmp(arg, "table") == 0)
        ctl->output = CRICCTL_OUT_TABLE;
    else
        return cricctl_fail("unknown output format '%s' (json, yaml or table)", arg) + 1;
    return 0;
}

int cricctl_parse_output_opt(struct cricctl *ctl, int argc, char **argv)
{
    static const struct option longopts[] = {
        { "output", required_argument, NULL, 'o' },
        { NULL, 0, NULL, 0 },
    };
    int c, r;
    while ((c = getopt_long(argc, argv, "o:", longopts, NULL)) != -1) {
        if (c != 'o')
            return 2;
        if ((r = cricctl_set_output(ctl, optarg)))
            return r;
    }
    return 0;
}

/* ---- Verbose status objects, as crictl prints them ---- */

yajl_gen cricctl_json_begin(bool pretty)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    if (!g)
        return NULL;
    if (pretty) {
        yajl_gen_config(g, yajl_gen_beautify, 1);
        yajl_gen_config(g, yajl_gen_indent_string, "  ");
    }
    yajl_gen_map_open(g);
    return g;
}

void cricctl_json_message(yajl_gen g, const char *key, const ProtobufCMessage *msg)
{
    if (!g || !msg)
        return;
    yajl_gen_string(g, (const unsigned char *)key, strlen(key));
    cric_pbjson_gen(g, msg);
}

void cricctl_json_info(yajl_gen g, const char *key, const char *value)
{
    if (!g)
        return;
    yajl_gen_string(g, (const unsigned char *)key, strlen(key));
    cric_json *tree = NULL;
    if (cric_json_parse(value, strlen(value), false, &tree, NULL) == 0) {
        cric_json_gen(g, tree);
        cric_json_free(tree);
    } else {
        yajl_gen_string(g, (const unsigned char *)value, strlen(value));
    }
}

int cricctl_json_end(yajl_gen g, char **out)
{
    if (!g)
        return -1;
    yajl_gen_map_close(g);
    const unsigned char *buf;
    size_t len;
    int r = -1;
    if (yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok && (*out = strndup((const char *)buf, len)))
        r = 0;
    yajl_gen_free(g);
    return r;
}

/* ---- YAML: the JSON tree printed block-style ---- */

static bool yaml_plain_ok(const char *s)
{
    static const char *const reserved[] = { "true", "false", "null", "yes", "no", "on", "off", "~", "" };
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
        if (strcasecmp(s, reserved[i]) == 0)
            return false;
    if (!isalpha((unsigned char)s[0]) && s[0] != '/')
        return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("_-./@+", *p) && !(*p == ':' && p[1] && p[1] != ' '))
            return false;
    return true;
}

static void yaml_str(FILE *f, const char *s)
{
    if (yaml_plain_ok(s)) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\t': fputs("\\t", f); break;
        case '\r': fputs("\\r", f); break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\x%02x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

static bool yaml_is_scalar(const cric_json *j)
{
    return (j->type != CRIC_JSON_OBJECT && j->type != CRIC_JSON_ARRAY) || j->len == 0;
}

static void yaml_scalar(FILE *f, const cric_json *j)
{
    switch (j->type) {
    case CRIC_JSON_NULL: fputs("null", f); break;
    case CRIC_JSON_BOOL: fputs(j->boolean ? "true" : "false", f); break;
    case CRIC_JSON_NUMBER: fputs(j->str, f); break;
    case CRIC_JSON_STRING: yaml_str(f, j->str); break;
    case CRIC_JSON_OBJECT: fputs("{}", f); break;
    case CRIC_JSON_ARRAY: fputs("[]", f); break;
    }
}

static void yaml_node(FILE *f, const cric_json *j, int indent, bool inline_first)
{
    for (size_t i = 0; i < j->len; i++) {
        const cric_json *v = j->items[i];
        if (!(i == 0 && inline_first))
            fprintf(f, "%*s", indent, "");
        if (j->type == CRIC_JSON_OBJECT) {
            yaml_str(f, j->keys[i]);
            fputc(':', f);
            if (yaml_is_scalar(v)) {
                fputc(' ', f);
                yaml_scalar(f, v);
                fputc('\n', f);
            } else {
                fputc('\n', f);
                /* Lists under a key stay at the key's indent, as kubectl prints. */
                yaml_node(f, v, v->type == CRIC_JSON_ARRAY ? indent : indent + 2, false);
            }
        } else {
            fputs("- ", f);
            if (yaml_is_scalar(v)) {
                yaml_scalar(f, v);
                fputc('\n', f);
            } else {
                yaml_node(f, v, indent + 2, true);
            }
        }
    }
}

int cricctl_print_json(struct cricctl *ctl, const char *json)
{
    if (ctl->output != CRICCTL_OUT_YAML) {
        size_t n = strlen(json);
        fputs(json, stdout);
        if (n == 0 || json[n - 1] != '\n')
            fputc('\n', stdout);
        return 0;
    }
    cric_json *tree = NULL;
    cric_error *err = NULL;
    if (cric_json_parse(json, strlen(json), false, &tree, &err) < 0) {
        int r = cricctl_fail("%s", err->msg);
        cric_error_free(err);
        return r;
    }
    if (yaml_is_scalar(tree)) {
        yaml_scalar(stdout, tree);
        fputc('\n', stdout);
    } else {
        yaml_node(stdout, tree, 0, false);
    }
    cric_json_free(tree);
    return 0;
}

int cricctl_print_message(struct cricctl *ctl, const ProtobufCMessage *msg)
{
    char *json = NULL;
    cric_error *err = NULL;
    if (cric_pbjson_encode(msg, true, &json, &err) < 0) {
        int r = cricctl_fail("%s", err->msg);
        cric_error_free(err);
        return r;
    }
    int r = cricctl_print_json(ctl, json);
    free(json);
    return r;
}

void cricctl_human_size(uint64_t b, char *out, size_t n)
{
    const char *units[] = {"B", "kB", "MB", "GB", "TB"};
    double v = (double)b;
    size_t u = 0;
    while (v >= 1000 && u < 4) {
        v /= 1000;
        u++;
    }
    snprintf(out, n, u ? "%.3g%s" : "%.0f%s", v, units[u]);
}
