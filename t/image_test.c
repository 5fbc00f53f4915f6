#include "config.h"
#include <check.h>
#include "check_run.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "image/manifest.h"
#include "image/ref.h"
#include "image/store.h"
#include "util/cleanup.h"

static void ref_ok(const char *in, const char *want)
{
    struct cric_image_ref r;
    cric_error *err = NULL;
    ck_assert_msg(cric_image_ref_parse(in, &r, &err) == 0, "%s: %s", in, err ? err->msg : "");
    char *s = cric_image_ref_string(&r);
    ck_assert_str_eq(s, want);
    free(s);
    cric_image_ref_clear(&r);
}

static void ref_bad(const char *in, const char *msg_part)
{
    struct cric_image_ref r;
    cric_error *err = NULL;
    ck_assert_int_eq(cric_image_ref_parse(in, &r, &err), -EINVAL);
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(strstr(err->msg, msg_part), "'%s' not in '%s'", msg_part, err->msg);
    cric_error_free(err);
}

#define D64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

START_TEST(ref_normalise)
{
    ref_ok("busybox", "docker.io/library/busybox:latest");
    ref_ok("busybox:1.36", "docker.io/library/busybox:1.36");
    ref_ok("library/busybox", "docker.io/library/busybox:latest");
    ref_ok("docker.io/busybox", "docker.io/library/busybox:latest");
    ref_ok("index.docker.io/library/busybox", "docker.io/library/busybox:latest");
    ref_ok("user/app:v1", "docker.io/user/app:v1");
    ref_ok("localhost/app", "localhost/app:latest");
    ref_ok("127.0.0.1:5000/a/b/c:t_1.2-x", "127.0.0.1:5000/a/b/c:t_1.2-x");
    ref_ok("quay.io/org/app@sha256:" D64, "quay.io/org/app@sha256:" D64);
    ref_ok("quay.io/org/app:v2@sha256:" D64, "quay.io/org/app:v2@sha256:" D64);
    ref_ok("my-registry.example.com:443/a__b.c-d", "my-registry.example.com:443/a__b.c-d:latest");
    ref_ok("[::1]:5000/app", "[::1]:5000/app:latest");
}
END_TEST

START_TEST(ref_invalid)
{
    ref_bad("", "empty");
    ref_bad("Busybox", "lowercase");
    ref_bad("busybox:", "bad tag");
    ref_bad("busybox:-x", "bad tag");
    ref_bad("busybox@sha256:abc", "bad digest");
    ref_bad("busybox@md5:" D64, "bad digest");
    ref_bad("a//b", "lowercase");
    ref_bad("a/b/", "lowercase");
    ref_bad("host:port/app", "bad registry host");
    ref_bad("-a", "lowercase");
    ref_bad("a..b", "lowercase");
    ref_bad("a b", "lowercase");
    ck_assert(cric_digest_valid("sha256:" D64));
    ck_assert(!cric_digest_valid("sha256:" D64 "0"));
    ck_assert(!cric_digest_valid("sha256:ABCDEF"));
}
END_TEST

static const char docker_manifest[] =
    "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\","
    "\"config\":{\"mediaType\":\"application/vnd.docker.container.image.v1+json\",\"size\":7,"
    "\"digest\":\"sha256:" D64 "\"},\"layers\":["
    "{\"mediaType\":\"application/vnd.docker.image.rootfs.diff.tar.gzip\",\"size\":10,\"digest\":\"sha256:" D64 "\"},"
    "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+zstd\",\"size\":11,\"digest\":\"sha256:" D64 "\"},"
    "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"size\":12,\"digest\":\"sha256:" D64 "\"}]}";

static const char oci_index[] =
    "{\"schemaVersion\":2,\"manifests\":["
    "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"size\":1,\"digest\":\"sha256:" D64 "\","
    "\"platform\":{\"os\":\"linux\",\"architecture\":\"arm\",\"variant\":\"v6\"}},"
    "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"size\":2,\"digest\":\"sha256:" D64 "\","
    "\"platform\":{\"os\":\"linux\",\"architecture\":\"arm\",\"variant\":\"v7\"}},"
    "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"size\":3,\"digest\":\"sha256:" D64 "\","
    "\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}},"
    "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"size\":4,\"digest\":\"sha256:" D64 "\","
    "\"platform\":{\"os\":\"windows\",\"architecture\":\"amd64\"}}]}";

START_TEST(manifest_image)
{
    struct cric_manifest *m = NULL;
    cric_error *err = NULL;
    ck_assert_int_eq(cric_manifest_parse(docker_manifest, strlen(docker_manifest), NULL, &m, &err), 0);
    ck_assert_int_eq(m->kind, CRIC_MANIFEST_IMAGE);
    ck_assert_int_eq(m->n_layers, 3);
    ck_assert_int_eq(m->config.size, 7);
    ck_assert_int_eq(m->layers[0].compression, CRIC_COMP_GZIP);
    ck_assert_int_eq(m->layers[1].compression, CRIC_COMP_ZSTD);
    ck_assert_int_eq(m->layers[2].compression, CRIC_COMP_NONE);
    ck_assert_int_eq(m->layers[2].size, 12);
    cric_manifest_free(m);
}
END_TEST

START_TEST(manifest_index)
{
    struct cric_manifest *m = NULL;
    cric_error *err = NULL;
    ck_assert_int_eq(cric_manifest_parse(oci_index, strlen(oci_index), CRIC_MT_OCI_INDEX, &m, &err), 0);
    ck_assert_int_eq(m->kind, CRIC_MANIFEST_INDEX);
    ck_assert_int_eq(m->n_manifests, 4);
    ck_assert_int_eq(cric_manifest_choose(m, "linux", "amd64", NULL, &err), 2);
    ck_assert_int_eq(cric_manifest_choose(m, "linux", "arm", "v7", &err), 1);
    ck_assert_int_eq(cric_manifest_choose(m, "windows", "amd64", NULL, &err), 3);
    ck_assert_int_eq(cric_manifest_choose(m, "linux", "arm64", NULL, &err), -ENOENT);
    ck_assert_ptr_nonnull(strstr(err->msg, "linux/arm64"));
    ck_assert_ptr_nonnull(strstr(err->msg, "linux/arm/v7"));
    cric_error_clear(&err);
    cric_manifest_free(m);
}
END_TEST

static void manifest_bad(const char *json, const char *msg_part)
{
    struct cric_manifest *m = NULL;
    cric_error *err = NULL;
    ck_assert_int_lt(cric_manifest_parse(json, strlen(json), NULL, &m, &err), 0);
    ck_assert_ptr_null(m);
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(strstr(err->msg, msg_part), "'%s' not in '%s'", msg_part, err->msg);
    cric_error_free(err);
}

START_TEST(manifest_invalid)
{
    manifest_bad("", "invalid JSON");
    manifest_bad("{\"schemaVersion\":2,", "invalid JSON");
    manifest_bad("[1]", "not a JSON object");
    manifest_bad("{\"schemaVersion\":1}", "schemaVersion");
    manifest_bad("{\"schemaVersion\":2}", "unknown media type");
    manifest_bad("{\"schemaVersion\":2,\"layers\":[],\"config\":{\"size\":1}}", "no digest");
    manifest_bad("{\"schemaVersion\":2,\"layers\":[],\"config\":{\"size\":1,\"digest\":\"sha256:00\"}}",
                 "unsupported digest");
    manifest_bad("{\"schemaVersion\":2,\"layers\":[],\"config\":{\"size\":-1,\"digest\":\"sha256:" D64 "\"}}",
                 "no valid size");
    manifest_bad("{\"schemaVersion\":2,\"layers\":[{\"mediaType\":\"x/y\",\"size\":1,\"digest\":\"sha256:" D64
                 "\"}],\"config\":{\"size\":1,\"digest\":\"sha256:" D64 "\"}}",
                 "unsupported media type 'x/y'");
    manifest_bad("{\"schemaVersion\":2,\"mediaType\":\"" CRIC_MT_OCI_INDEX "\",\"manifests\":{}}",
                 "no 'manifests' array");
}
END_TEST

START_TEST(image_config)
{
    const char *cfg =
        "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"User\":\"1000:1000\",\"Env\":[\"PATH=/bin\",\"A=b\"],"
        "\"Entrypoint\":[\"/bin/sh\"],\"Cmd\":null,\"WorkingDir\":\"/w\",\"StopSignal\":\"SIGINT\","
        "\"ExposedPorts\":{\"80/tcp\":{}},\"Volumes\":{\"/data\":{}},\"Labels\":{\"a\":\"b\"}},"
        "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:" D64 "\"]}}";
    struct cric_image_config c;
    char **ids = NULL;
    cric_error *err = NULL;
    ck_assert_int_eq(cric_image_config_parse(cfg, strlen(cfg), &c, &ids, &err), 0);
    ck_assert_str_eq(c.user, "1000:1000");
    ck_assert_str_eq(c.env[1], "A=b");
    ck_assert_ptr_null(c.env[2]);
    ck_assert_str_eq(c.entrypoint[0], "/bin/sh");
    ck_assert_ptr_null(c.cmd[0]);
    ck_assert_str_eq(c.working_dir, "/w");
    ck_assert_str_eq(c.stop_signal, "SIGINT");
    ck_assert_str_eq(c.exposed_ports[0], "80/tcp");
    ck_assert_str_eq(c.volumes[0], "/data");
    ck_assert_str_eq(c.labels[0], "a=b");
    ck_assert_str_eq(ids[0], "sha256:" D64);
    cric_strv_free(ids);
    cric_image_config_clear(&c);
    const char *bad = "{\"config\":{\"Env\":\"x\"},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}";
    ck_assert_int_eq(cric_image_config_parse(bad, strlen(bad), &c, &ids, &err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err->msg, "'Env'"));
    cric_error_clear(&err);
    bad = "{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:1\"]}}";
    ck_assert_int_eq(cric_image_config_parse(bad, strlen(bad), &c, &ids, &err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err->msg, "diff_id 0"));
    cric_error_clear(&err);
}
END_TEST

Suite *image_suite(void);
void image_add_unpack_tests(Suite *s);

Suite *image_suite(void)
{
    Suite *s = suite_create("image");
    TCase *tc = tcase_create("ref");
    tcase_add_test(tc, ref_normalise);
    tcase_add_test(tc, ref_invalid);
    suite_add_tcase(s, tc);
    tc = tcase_create("manifest");
    tcase_add_test(tc, manifest_image);
    tcase_add_test(tc, manifest_index);
    tcase_add_test(tc, manifest_invalid);
    tcase_add_test(tc, image_config);
    suite_add_tcase(s, tc);
    image_add_unpack_tests(s);
    return s;
}

int main(void)
{
    return cric_check_run(image_suite(), false);
}
