/* protobuf-c <-> JSON: crictl-style config files in, protojson out. */
#include <config.h>
#include <check.h>
#include "check_run.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.pb-c.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/pbjson.h"

static char *fixture(const char *name)
{
    _cleanup_free_ char *path = NULL;
    ck_assert_int_ge(asprintf(&path, "%s/t/fixtures/%s", getenv("CRIC_SRCDIR") ? getenv("CRIC_SRCDIR") : ".", name), 0);
    char *text = NULL;
    size_t len;
    cric_error *err = NULL;
    int r = cric_read_file(path, 1 << 20, &text, &len, &err);
    ck_assert_msg(r == 0, "%s", err ? err->msg : "");
    return text;
}

static ProtobufCMessage *decode_ok(const ProtobufCMessageDescriptor *d, const char *json)
{
    ProtobufCMessage *m = NULL;
    cric_error *err = NULL;
    int r = cric_pbjson_decode(d, json, strlen(json), &m, &err);
    ck_assert_msg(r == 0, "decode failed: %s", err ? err->msg : "");
    return m;
}

static char *decode_err(const ProtobufCMessageDescriptor *d, const char *json)
{
    ProtobufCMessage *m = NULL;
    cric_error *err = NULL;
    int r = cric_pbjson_decode(d, json, strlen(json), &m, &err);
    ck_assert_msg(r < 0, "accepted: %s", json);
    ck_assert_ptr_null(m);
    char *msg = strdup(err->msg);
    cric_error_free(err);
    return msg;
}

/* encode -> decode -> encode gives the same text, and the same binary. */
static void check_round_trip(const ProtobufCMessage *m)
{
    _cleanup_free_ char *j1 = NULL, *j2 = NULL;
    cric_error *err = NULL;
    ck_assert_int_eq(cric_pbjson_encode(m, false, &j1, &err), 0);
    ProtobufCMessage *back = decode_ok(m->descriptor, j1);
    ck_assert_int_eq(cric_pbjson_encode(back, false, &j2, &err), 0);
    ck_assert_str_eq(j1, j2);
    size_t n1 = protobuf_c_message_get_packed_size(m), n2 = protobuf_c_message_get_packed_size(back);
    ck_assert_uint_eq(n1, n2);
    _cleanup_free_ uint8_t *b1 = malloc(n1 + 1), *b2 = malloc(n2 + 1);
    protobuf_c_message_pack(m, b1);
    protobuf_c_message_pack(back, b2);
    ck_assert_int_eq(memcmp(b1, b2, n1), 0);
    protobuf_c_message_free_unpacked(back, NULL);
}

START_TEST(sandbox_config_file)
{
    _cleanup_free_ char *text = fixture("sandbox-config.json");
    ProtobufCMessage *m = decode_ok(&runtime__v1__pod_sandbox_config__descriptor, text);
    const Runtime__V1__PodSandboxConfig *c = (const Runtime__V1__PodSandboxConfig *)m;
    ck_assert_str_eq(c->metadata->name, "nginx-sandbox");
    ck_assert_uint_eq(c->metadata->attempt, 1);
    ck_assert_str_eq(c->log_directory, "/tmp/nginx-logs");
    ck_assert_str_eq(c->dns_config->options[0], "ndots:5");
    ck_assert_uint_eq(c->n_port_mappings, 2);
    ck_assert_int_eq(c->port_mappings[0]->protocol, RUNTIME__V1__PROTOCOL__TCP);
    ck_assert_int_eq(c->port_mappings[0]->host_port, 8080);
    ck_assert_int_eq(c->port_mappings[1]->protocol, RUNTIME__V1__PROTOCOL__UDP);
    ck_assert_int_eq(c->port_mappings[1]->container_port, 53);
    ck_assert_str_eq(c->port_mappings[1]->host_ip, "127.0.0.1");
    ck_assert_uint_eq(c->n_labels, 2);
    ck_assert_str_eq(c->labels[1]->key, "tier");
    ck_assert_str_eq(c->labels[1]->value, "web");
    ck_assert_str_eq(c->linux->cgroup_parent, "/kubepods/besteffort");
    const Runtime__V1__LinuxSandboxSecurityContext *sc = c->linux->security_context;
    ck_assert_int_eq(sc->namespace_options->pid, RUNTIME__V1__NAMESPACE_MODE__CONTAINER);
    ck_assert_int_eq(sc->namespace_options->ipc, RUNTIME__V1__NAMESPACE_MODE__NODE);
    ck_assert_int_eq(sc->run_as_user->value, 1000);
    ck_assert_uint_eq(sc->n_supplemental_groups, 2);
    ck_assert_int_eq(sc->supplemental_groups[1], 20);
    ck_assert_str_eq(c->linux->sysctls[0]->value, "1");
    check_round_trip(m);
    protobuf_c_message_free_unpacked(m, NULL);
}
END_TEST

START_TEST(container_config_file)
{
    _cleanup_free_ char *text = fixture("container-config.json");
    ProtobufCMessage *m = decode_ok(&runtime__v1__container_config__descriptor, text);
    const Runtime__V1__ContainerConfig *c = (const Runtime__V1__ContainerConfig *)m;
    ck_assert_str_eq(c->image->image, "busybox:latest");
    ck_assert_uint_eq(c->n_command, 1);
    ck_assert_str_eq(c->args[1], "1");
    ck_assert_str_eq(c->envs[1]->key, "EMPTY");
    ck_assert_str_eq(c->envs[1]->value, "");
    ck_assert(c->mounts[0]->readonly);
    ck_assert_int_eq(c->mounts[0]->propagation, RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_HOST_TO_CONTAINER);
    ck_assert(c->tty);
    ck_assert(!c->stdin);
    ck_assert_int_eq(c->linux->resources->memory_limit_in_bytes, 67108864);
    ck_assert_int_eq(c->linux->resources->oom_score_adj, -998);
    ck_assert_str_eq(c->linux->resources->unified[0]->key, "memory.high");
    ck_assert_str_eq(c->linux->security_context->capabilities->drop_capabilities[0], "ALL");
    ck_assert(c->linux->security_context->no_new_privs);

    /* protojson: lowerCamelCase, int64 as strings, enums by name, maps as
     * objects, defaults (stdin false, empty env value) left out. */
    _cleanup_free_ char *out = NULL;
    cric_error *err = NULL;
    ck_assert_int_eq(cric_pbjson_encode(m, false, &out, &err), 0);
    ck_assert_ptr_nonnull(strstr(out, "\"logPath\":\"busybox.log\""));
    ck_assert_ptr_nonnull(strstr(out, "\"cpuPeriod\":\"100000\""));
    ck_assert_ptr_nonnull(strstr(out, "\"oomScoreAdj\":\"-998\""));
    ck_assert_ptr_nonnull(strstr(out, "\"propagation\":\"PROPAGATION_HOST_TO_CONTAINER\""));
    ck_assert_ptr_nonnull(strstr(out, "\"unified\":{\"memory.high\":\"60000000\"}"));
    ck_assert_ptr_nonnull(strstr(out, "{\"key\":\"EMPTY\"}"));
    ck_assert_ptr_null(strstr(out, "stdin"));
    ck_assert_ptr_null(strstr(out, "log_path"));
    check_round_trip(m);
    protobuf_c_message_free_unpacked(m, NULL);
}
END_TEST

START_TEST(encode_special_values)
{
    Runtime__V1__ExecSyncResponse r = RUNTIME__V1__EXEC_SYNC_RESPONSE__INIT;
    r.stdout.data = (uint8_t *)"hello\n";
    r.stdout.len = 6;
    r.exit_code = -1;
    _cleanup_free_ char *out = NULL;
    ck_assert_int_eq(cric_pbjson_encode(&r.base, false, &out, NULL), 0);
    ck_assert_str_eq(out, "{\"stdout\":\"aGVsbG8K\",\"exitCode\":-1}");
    check_round_trip(&r.base);

    Runtime__V1__PsiData p = RUNTIME__V1__PSI_DATA__INIT;
    p.total = UINT64_MAX;
    p.avg10 = 0.5;
    _cleanup_free_ char *out2 = NULL;
    ck_assert_int_eq(cric_pbjson_encode(&p.base, false, &out2, NULL), 0);
    ck_assert_str_eq(out2, "{\"Total\":\"18446744073709551615\",\"Avg10\":0.5}");
    check_round_trip(&p.base);

    /* An empty message is {} and a CDI_devices-like name maps as protoc does. */
    Runtime__V1__VersionRequest v = RUNTIME__V1__VERSION_REQUEST__INIT;
    _cleanup_free_ char *out3 = NULL;
    ck_assert_int_eq(cric_pbjson_encode(&v.base, false, &out3, NULL), 0);
    ck_assert_str_eq(out3, "{}");
    char name[64];
    cric_pbjson_name("CDI_devices", name, sizeof(name));
    ck_assert_str_eq(name, "CDIDevices");
    cric_pbjson_name("memory_limit_in_bytes", name, sizeof(name));
    ck_assert_str_eq(name, "memoryLimitInBytes");
}
END_TEST

static void expect(const ProtobufCMessageDescriptor *d, const char *json, const char *want)
{
    _cleanup_free_ char *msg = decode_err(d, json);
    ck_assert_msg(strstr(msg, want) != NULL, "error '%s' lacks '%s'", msg, want);
}

START_TEST(bad_input)
{
    const ProtobufCMessageDescriptor *sb = &runtime__v1__pod_sandbox_config__descriptor;
    const ProtobufCMessageDescriptor *ct = &runtime__v1__container_config__descriptor;
    expect(sb, "{\n \"metadata\": {\n  \"nmae\": \"x\"}}", "line 3: 'metadata.nmae': unknown field");
    expect(sb, "{\"port_mappings\": [{}, {\"protocol\": \"QUIC\"}]}",
           "'port_mappings[1].protocol': 'QUIC' is not a value of runtime.v1.Protocol");
    expect(sb, "{\"port_mappings\": [{\"host_port\": 4294967296}]}", "'port_mappings[0].host_port'");
    expect(sb, "{\"port_mappings\": [{\"host_port\": 1.5}]}", "not an integer");
    expect(sb, "{\"metadata\": {\"attempt\": -1}}", "'metadata.attempt': '-1' is negative");
    expect(sb, "{\"metadata\": \"x\"}", "'metadata': expected an object, got string");
    expect(sb, "{\"labels\": [\"a\"]}", "'labels': expected an object, got array");
    expect(sb, "{\"labels\": {\"a\": 1}}", "'labels[a]': expected a string, got number");
    expect(sb, "{\"hostname\": true}", "'hostname': expected a string, got boolean");
    expect(sb, "{\"hostname\": \"a\", \"hostname\": \"b\"}", "'hostname': field given twice");
    expect(sb, "{\"log_directory\": \"a\", \"logDirectory\": \"b\"}", "given twice");
    expect(sb, "{\"dns_config\": {\"servers\": [null]}}", "'dns_config.servers[0]': null in a list");
    expect(sb, "[]", "expected an object");
    expect(sb, "{\"metadata\": ", "invalid JSON");
    expect(ct, "{\"tty\": \"yes\"}", "'tty': expected true or false");
    expect(ct, "{\"linux\": {\"resources\": {\"cpu_quota\": \"lots\"}}}", "'linux.resources.cpu_quota'");
    expect(&runtime__v1__exec_sync_response__descriptor, "{\"stdout\": \"!!\"}", "'stdout': not valid base64");
    /* null means "not set" */
    ProtobufCMessage *m = decode_ok(sb, "{\"metadata\": null, \"hostname\": null}");
    ck_assert_ptr_null(((Runtime__V1__PodSandboxConfig *)m)->metadata);
    protobuf_c_message_free_unpacked(m, NULL);
}
END_TEST

START_TEST(tidy_empty_containers)
{
    char s[] = "{\n  \"a\": [\n\n  ],\n  \"b\": {\n\n  },\n  \"c\": \"[\\\" ]\", \"d\": [ 1 ]\n}";
    cric_json_tidy(s);
    ck_assert_str_eq(s, "{\n  \"a\": [],\n  \"b\": {},\n  \"c\": \"[\\\" ]\", \"d\": [ 1 ]\n}");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pbjson");
    TCase *tc = tcase_create("pbjson");
    tcase_set_timeout(tc, 120); /* loaded CI machines and ASan, not a timing assert */
    tcase_add_test(tc, sandbox_config_file);
    tcase_add_test(tc, container_config_file);
    tcase_add_test(tc, encode_special_values);
    tcase_add_test(tc, tidy_empty_containers);
    tcase_add_test(tc, bad_input);
    suite_add_tcase(s, tc);
    return cric_check_run(s, false);
}
