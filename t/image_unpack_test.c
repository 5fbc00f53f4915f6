/* Layer unpacking and the store, on crafted tars written with libarchive. */
#include "config.h"
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "image/store.h"
#include "image/unpack.h"
#include "image_tar.h"
#include "util/cleanup.h"
#include "util/fs.h"

static char tmpdir[64];
static int seq;

static void setup(void)
{
    strcpy(tmpdir, "/tmp/cric-img-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void) { cric_rm_rf(tmpdir, NULL); }

/* Writes ents to a tar and unpacks it; returns the unpack result, *dest the layer dir. */
static int unpack(const struct tar_ent *ents, size_t n, const char *comp, char **dest, cric_error **err)
{
    char tar[128], diff_id[80];
    snprintf(tar, sizeof(tar), "%s/layer%d.tar", tmpdir, seq);
    ck_assert_int_eq(t_write_tar(tar, ents, n, comp, diff_id), 0);
    ck_assert_int_ge(asprintf(dest, "%s/unpacked%d", tmpdir, seq++), 0);
    uint64_t size = 0;
    return cric_layer_unpack(tar, *dest, diff_id, &size, err);
}

static bool is_root(void) { return geteuid() == 0; }

START_TEST(unpack_whiteouts_and_metadata)
{
    const char *comps[] = {"none", "gzip", "zstd"};
    struct tar_ent ents[] = {
        {T_DIR, "etc/", NULL, 0755, 0, 0, NULL, NULL},
        {T_FILE, "etc/passwd", "root:x:0:0::/:/bin/sh\n", 0640, 1234, 5678, NULL, NULL},
        {T_FILE, "./bin/busybox", "ELF", 04755, 0, 0, "user.cric", "v"},
        {T_HARDLINK, "bin/sh", "bin/busybox", 0, 0, 0, NULL, NULL},
        {T_SYMLINK, "bin/ls", "/bin/busybox", 0, 0, 0, NULL, NULL},
        {T_SYMLINK, "usr/lib/rel", "../../etc/passwd", 0, 0, 0, NULL, NULL},
        {T_FILE, "etc/.wh.shadow", "", 0, 0, 0, NULL, NULL},
        {T_DIR, "opq/", NULL, 0700, 0, 0, NULL, NULL},
        {T_FILE, "opq/.wh..wh..opq", "", 0, 0, 0, NULL, NULL},
        {T_FILE, "new/deep/.wh..wh..opq", "", 0, 0, 0, NULL, NULL},
        {T_CHR, "dev/null", NULL, 0666, 0, 0, NULL, NULL},
    };
    for (size_t c = 0; c < 3; c++) {
        _cleanup_free_ char *dest = NULL, *p = NULL;
        cric_error *err = NULL;
        int r = unpack(ents, ARRAY_SIZE(ents), comps[c], &dest, &err);
        ck_assert_msg(r == 0, "%s: %s", comps[c], err ? err->msg : "");
        struct stat st, st2;
        ck_assert_int_ge(asprintf(&p, "%s/diff/etc/passwd", dest), 0);
        ck_assert_int_eq(lstat(p, &st), 0);
        ck_assert_int_eq(st.st_mode & 07777, 0640);
        if (is_root()) {
            ck_assert_int_eq(st.st_uid, 1234);
            ck_assert_int_eq(st.st_gid, 5678);
        }
        free(p);
        ck_assert_int_ge(asprintf(&p, "%s/diff/bin/busybox", dest), 0);
        ck_assert_int_eq(lstat(p, &st), 0);
        ck_assert_int_eq(st.st_mode & 07777, 04755);
        char val[8] = "";
        if (getxattr(p, "user.cric", val, sizeof(val)) >= 0)
            ck_assert_str_eq(val, "v");
        free(p);
        ck_assert_int_ge(asprintf(&p, "%s/diff/bin/sh", dest), 0);
        ck_assert_int_eq(lstat(p, &st2), 0);
        ck_assert_int_eq(st.st_ino, st2.st_ino); /* hard link kept */
        free(p);
        char target[64] = "";
        ck_assert_int_ge(asprintf(&p, "%s/diff/bin/ls", dest), 0);
        ck_assert_int_gt(readlink(p, target, sizeof(target) - 1), 0);
        ck_assert_str_eq(target, "/bin/busybox");
        free(p);
        ck_assert_int_ge(asprintf(&p, "%s/diff/etc/shadow", dest), 0);
        ck_assert_int_eq(lstat(p, &st), 0);
        ck_assert(S_ISCHR(st.st_mode));
        ck_assert_int_eq(st.st_rdev, makedev(0, 0));
        free(p);
        ck_assert_int_ge(asprintf(&p, "%s/diff/etc/.wh.shadow", dest), 0);
        ck_assert_int_eq(lstat(p, &st), -1);
        free(p);
        if (is_root()) {
            ck_assert_int_ge(asprintf(&p, "%s/diff/opq", dest), 0);
            ck_assert_int_eq(getxattr(p, "trusted.overlay.opaque", val, sizeof(val)), 1);
            ck_assert_int_eq(val[0], 'y');
            ck_assert_int_eq(lstat(p, &st), 0);
            ck_assert_int_eq(st.st_mode & 07777, 0700);
            free(p);
            ck_assert_int_ge(asprintf(&p, "%s/diff/new/deep", dest), 0);
            ck_assert_int_eq(getxattr(p, "trusted.overlay.opaque", val, sizeof(val)), 1);
            free(p);
            ck_assert_int_ge(asprintf(&p, "%s/diff/dev/null", dest), 0);
            ck_assert_int_eq(lstat(p, &st), 0);
            ck_assert(S_ISCHR(st.st_mode));
            ck_assert_int_eq(st.st_rdev, makedev(1, 3));
            free(p);
        }
        p = NULL;
        _cleanup_free_ char *size = NULL, *sp = NULL;
        ck_assert_int_ge(asprintf(&sp, "%s/size", dest), 0);
        ck_assert_int_eq(cric_read_file(sp, 64, &size, NULL, NULL), 0);
        ck_assert_int_eq(atoi(size), 22 + 3);
    }
}
END_TEST

static void unpack_refused(const struct tar_ent *ents, size_t n, const char *msg_part)
{
    _cleanup_free_ char *dest = NULL;
    cric_error *err = NULL;
    ck_assert_int_lt(unpack(ents, n, "gzip", &dest, &err), 0);
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(strstr(err->msg, msg_part), "'%s' not in '%s'", msg_part, err->msg);
    cric_error_free(err);
    /* Nothing was written outside the layer directory. */
    char p[128];
    snprintf(p, sizeof(p), "%s/escaped", tmpdir);
    ck_assert_int_eq(access(p, F_OK), -1);
}

START_TEST(unpack_refuses_escapes)
{
    struct tar_ent dotdot[] = {{T_FILE, "a/../../escaped", "x", 0, 0, 0, NULL, NULL}};
    unpack_refused(dotdot, 1, "contains '..'");
    struct tar_ent dotdot2[] = {{T_FILE, "../escaped", "x", 0, 0, 0, NULL, NULL}};
    unpack_refused(dotdot2, 1, "'../escaped': the path contains '..'");
    struct tar_ent abs[] = {{T_FILE, "/escaped", "x", 0, 0, 0, NULL, NULL}};
    unpack_refused(abs, 1, "absolute path");
    char target[96];
    snprintf(target, sizeof(target), "%s", tmpdir);
    struct tar_ent via_symlink[] = {
        {T_SYMLINK, "link", target, 0, 0, 0, NULL, NULL},
        {T_FILE, "link/escaped", "x", 0, 0, 0, NULL, NULL},
    };
    unpack_refused(via_symlink, 2, "link/escaped");
    struct tar_ent rel_symlink[] = {{T_SYMLINK, "a/b", "../../../escaped", 0, 0, 0, NULL, NULL}};
    unpack_refused(rel_symlink, 1, "leaves the layer");
    struct tar_ent hl[] = {{T_HARDLINK, "h", "../escaped", 0, 0, 0, NULL, NULL}};
    unpack_refused(hl, 1, "hard link target contains '..'");
    struct tar_ent hl_abs[] = {{T_HARDLINK, "h", "/etc/passwd", 0, 0, 0, NULL, NULL}};
    unpack_refused(hl_abs, 1, "hard link target is an absolute path");
    struct tar_ent hl_sym[] = {
        {T_SYMLINK, "etc", "/etc", 0, 0, 0, NULL, NULL},
        {T_HARDLINK, "h", "etc/passwd", 0, 0, 0, NULL, NULL},
    };
    unpack_refused(hl_sym, 2, "goes through a symlink");
    struct tar_ent wh_sym[] = {
        {T_SYMLINK, "d", target, 0, 0, 0, NULL, NULL},
        {T_FILE, "d/.wh.escaped", "", 0, 0, 0, NULL, NULL},
    };
    unpack_refused(wh_sym, 2, "goes through a symlink");
    struct tar_ent wh_bad[] = {{T_FILE, "d/.wh...", "", 0, 0, 0, NULL, NULL}};
    unpack_refused(wh_bad, 1, "invalid whiteout");
}
END_TEST

START_TEST(unpack_bad_input)
{
    char p[128], dest[128];
    cric_error *err = NULL;
    uint64_t size;
    /* A diff ID mismatch. */
    struct tar_ent one[] = {{T_FILE, "f", "data", 0, 0, 0, NULL, NULL}};
    char diff_id[80];
    snprintf(p, sizeof(p), "%s/t.tar.gz", tmpdir);
    ck_assert_int_eq(t_write_tar(p, one, 1, "gzip", diff_id), 0);
    snprintf(dest, sizeof(dest), "%s/d1", tmpdir);
    ck_assert_int_eq(cric_layer_unpack(p, dest, "sha256:0000000000000000000000000000000000000000000000000000000000000000",
                                       &size, &err),
                     -EBADMSG);
    ck_assert_ptr_nonnull(strstr(err->msg, "does not match"));
    cric_error_clear(&err);
    /* Truncated gzip. */
    struct stat st;
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_int_eq(truncate(p, st.st_size / 2), 0);
    snprintf(dest, sizeof(dest), "%s/d2", tmpdir);
    ck_assert_int_lt(cric_layer_unpack(p, dest, diff_id, &size, &err), 0);
    ck_assert_ptr_nonnull(err);
    cric_error_clear(&err);
    /* Garbage. */
    FILE *f = fopen(p, "w");
    fputs("this is not a tar file at all, not even close................", f);
    fclose(f);
    snprintf(dest, sizeof(dest), "%s/d3", tmpdir);
    ck_assert_int_lt(cric_layer_unpack(p, dest, NULL, &size, &err), 0);
    ck_assert_ptr_nonnull(strstr(err->msg, "tar"));
    cric_error_clear(&err);
}
END_TEST

#define CFG_FMT                                                                                                       \
    "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Env\":[\"PATH=/bin\"],\"Cmd\":[\"sh\"]},"             \
    "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"%s\"]},\"history\":[{\"created_by\":\"%s\"}]}"

/* Adds an image with one layer (content tag) under repo_tag; returns its ID. */
static void add_image(struct cric_image_store *s, const char *content, const char *repo_tag, char *id_out,
                      char *chain_out)
{
    struct tar_ent ents[] = {{T_FILE, "f", content, 0, 0, 0, NULL, NULL}};
    char tar[128], diff_id[80], dest[128];
    snprintf(tar, sizeof(tar), "%s/l%d.tar", tmpdir, seq);
    snprintf(dest, sizeof(dest), "%s/%d", cric_image_store_tmp_dir(s), seq++);
    ck_assert_int_eq(t_write_tar(tar, ents, 1, "none", diff_id), 0);
    cric_error *err = NULL;
    uint64_t size;
    ck_assert_int_eq(cric_layer_unpack(tar, dest, diff_id, &size, &err), 0);
    /* a single layer's chain ID is its diff ID */
    ck_assert_int_eq(cric_image_store_add_layer(s, diff_id, dest, &err), 0);
    char cfg[1024];
    int n = snprintf(cfg, sizeof(cfg), CFG_FMT, diff_id, content);
    /* any unique valid digest will do for the store */
    snprintf(id_out, 80, "sha256:%064x", (unsigned)(seq * 7919));
    ck_assert_int_eq(cric_image_store_put_blob(s, id_out, cfg, (size_t)n, &err), 0);
    char *chains[] = {diff_id, NULL};
    char rd[200];
    snprintf(rd, sizeof(rd), "127.0.0.1:5000/app@sha256:%064x", (unsigned)seq);
    struct cric_image_commit c = {id_out, repo_tag, rd, chains, 1};
    const struct cric_image *img = NULL;
    ck_assert_int_eq(cric_image_store_commit(s, &c, &img, &err), 0);
    cric_image_store_release_layer(s, diff_id);
    ck_assert_str_eq(img->id, id_out);
    if (chain_out)
        strcpy(chain_out, diff_id);
}

START_TEST(store_lifecycle)
{
    struct cric_image_store *s = NULL;
    cric_error *err = NULL;
    ck_assert_int_eq(cric_image_store_open(tmpdir, &s, &err), 0);
    char id1[80], id2[80], chain1[80], chain2[80];
    add_image(s, "one", "docker.io/library/busybox:latest", id1, chain1);
    const struct cric_image *img = NULL;
    ck_assert_int_eq(cric_image_store_lookup(s, "busybox", &img, &err), 0);
    ck_assert_str_eq(img->id, id1);
    ck_assert_str_eq(img->config.cmd[0], "sh");
    ck_assert_int_eq(img->n_layers, 1);
    ck_assert_int_eq(cric_image_store_lookup(s, id1, &img, &err), 0);
    ck_assert_int_eq(cric_image_store_lookup(s, id1 + 7, &img, &err), 0);
    char prefix[16];
    snprintf(prefix, sizeof(prefix), "%.12s", id1 + 7);
    ck_assert_int_eq(cric_image_store_lookup(s, prefix, &img, &err), 0);
    ck_assert_int_eq(cric_image_store_lookup(s, img->repo_digests[0], &img, &err), 0);
    ck_assert_int_eq(cric_image_store_lookup(s, "nothere", &img, &err), -ENOENT);
    ck_assert_ptr_null(err);
    ck_assert_int_eq(cric_image_store_lookup(s, "Bad Ref", &img, &err), -EINVAL);
    cric_error_clear(&err);
    char **dirs = NULL;
    ck_assert_int_eq(cric_image_store_lookup(s, "busybox", &img, &err), 0);
    ck_assert_int_eq(cric_image_store_layer_dirs(s, img, &dirs, &err), 0);
    _cleanup_free_ char *f = NULL, *data = NULL;
    ck_assert_int_ge(asprintf(&f, "%s/f", dirs[0]), 0);
    ck_assert_int_eq(cric_read_file(f, 100, &data, NULL, NULL), 0);
    ck_assert_str_eq(data, "one");
    ck_assert_ptr_null(dirs[1]);
    /* A new image with the same tag takes the tag. */
    add_image(s, "two", "docker.io/library/busybox:latest", id2, chain2);
    ck_assert_int_eq(cric_image_store_lookup(s, "busybox:latest", &img, &err), 0);
    ck_assert_str_eq(img->id, id2);
    ck_assert_int_eq(cric_image_store_lookup(s, id1, &img, &err), 0);
    ck_assert_ptr_null(img->repo_tags[0]);
    /* Pinned images stay. */
    char *pins[] = {"busybox", NULL};
    ck_assert_int_eq(cric_image_store_set_pinned(s, pins, &err), 0);
    ck_assert_int_eq(cric_image_store_remove(s, "busybox", &err), -EPERM);
    ck_assert_ptr_nonnull(strstr(err->msg, "pinned"));
    cric_error_clear(&err);
    /* Reopen: records survive, leftovers go. */
    cric_image_store_free(s);
    _cleanup_free_ char *junk = NULL, *orphan = NULL;
    ck_assert_int_ge(asprintf(&junk, "%s/images/tmp/partial", tmpdir), 0);
    ck_assert_int_eq(mkdir(junk, 0700), 0);
    ck_assert_int_ge(asprintf(&orphan, "%s/images/layers/%064d", tmpdir, 1), 0);
    ck_assert_int_eq(mkdir(orphan, 0700), 0);
    ck_assert_int_eq(cric_image_store_open(tmpdir, &s, &err), 0);
    ck_assert_int_eq(access(junk, F_OK), -1);
    ck_assert_int_eq(access(orphan, F_OK), -1);
    size_t n = 0;
    cric_image_store_list(s, &n);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(cric_image_store_lookup(s, "busybox", &img, &err), 0);
    ck_assert_str_eq(img->id, id2);
    ck_assert(!img->pinned);
    /* Remove frees the layer only when unused. */
    ck_assert_int_eq(cric_image_store_remove(s, id1, &err), 0);
    ck_assert_int_eq(access(dirs[0], F_OK), -1);
    ck_assert(cric_image_store_has_layer(s, chain2));
    ck_assert_int_eq(cric_image_store_remove(s, id1, &err), -ENOENT);
    ck_assert_int_eq(cric_image_store_remove(s, "busybox", &err), 0);
    ck_assert(!cric_image_store_has_layer(s, chain2));
    cric_image_store_list(s, &n);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(cric_image_store_gc(cric_image_store_trash_dir(s), &err), 0);
    uint64_t bytes, inodes;
    ck_assert_int_eq(cric_image_store_usage(cric_image_store_dir(s), &bytes, &inodes, &err), 0);
    ck_assert_int_lt(inodes, 10);
    cric_strv_free(dirs);
    cric_image_store_free(s);
}
END_TEST

void image_add_unpack_tests(Suite *s);
void image_add_unpack_tests(Suite *s)
{
    TCase *tc = tcase_create("unpack");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, unpack_whiteouts_and_metadata);
    tcase_add_test(tc, unpack_refuses_escapes);
    tcase_add_test(tc, unpack_bad_input);
    tcase_add_test(tc, store_lifecycle);
    suite_add_tcase(s, tc);
}
