/* cric-pull: pulls one image into the store for cricd, in its own process so
 * that cricd links none of libcurl, libarchive, libcrypto (daemon memory).
 * It runs the same puller (pull.c) on its own libuv loop.
 *
 * stdin:  one JSON request (credentials travel only here):
 *   {"reference", "root", "certs_dir", "auth_file", "pull_timeout",
 *    "max_concurrent_downloads", "registries": [{"host","insecure","mirrors"}],
 *    "auth": {"username","password","auth","identity_token","registry_token"}}
 * stdout: JSON lines: {"progress":{"digest","bytes","total"}} (optional),
 *   then {"result":{"id","repo_tag","repo_digest","layers":[...]}} or
 *   {"error":{"code":-errno,"message"}}.
 * Blobs and layers go into the store (content-addressed, renamed into place);
 * the image record is cricd's to write. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>
#include <uv.h>

#include "config/config.h"
#include "image/json.h"
#include "image/pull.h"
#include "image/store.h"
#include "util/cleanup.h"

#define REQUEST_MAX (4u << 20)
#define PROGRESS_STEP (4u << 20)

static int exit_code = 1;

/* Bytes last reported per layer (keyed by the descriptor's digest pointer,
 * stable for the pull). */
static struct {
    const char *digest;
    uint64_t last;
} reported[64];

static void emit(yajl_gen g)
{
    const unsigned char *buf;
    size_t len;
    yajl_gen_get_buf(g, &buf, &len);
    fwrite(buf, 1, len, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    yajl_gen_free(g);
}

static void emit_error(int code, const char *msg)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    yajl_gen_map_open(g);
    cric_yj_gen_str(g, "error");
    yajl_gen_map_open(g);
    cric_yj_gen_str(g, "code");
    yajl_gen_integer(g, code < 0 ? code : -EIO);
    cric_yj_kv_str(g, "message", msg);
    yajl_gen_map_close(g);
    yajl_gen_map_close(g);
    emit(g);
}

static void on_progress(void *data, const char *digest, uint64_t bytes, uint64_t total)
{
    /* A line per few MiB of each layer: enough for a progress display,
     * cheap for cricd. */
    size_t i = 0;
    while (i < ARRAY_SIZE(reported) && reported[i].digest && reported[i].digest != digest)
        i++;
    if (i < ARRAY_SIZE(reported)) {
        if (!reported[i].digest)
            reported[i].digest = digest;
        else if (bytes != total && bytes >= reported[i].last && bytes - reported[i].last < PROGRESS_STEP)
            return;
        reported[i].last = bytes;
    }
    yajl_gen g = yajl_gen_alloc(NULL);
    yajl_gen_map_open(g);
    cric_yj_gen_str(g, "progress");
    yajl_gen_map_open(g);
    cric_yj_kv_str(g, "digest", digest);
    cric_yj_gen_str(g, "bytes");
    yajl_gen_integer(g, (long long)bytes);
    cric_yj_gen_str(g, "total");
    yajl_gen_integer(g, (long long)total);
    yajl_gen_map_close(g);
    yajl_gen_map_close(g);
    emit(g);
}

static void on_done(void *data, const struct cric_image *img, const cric_error *err)
{
    if (!img) {
        emit_error(err->code, err->msg);
        return;
    }
    yajl_gen g = yajl_gen_alloc(NULL);
    yajl_gen_map_open(g);
    cric_yj_gen_str(g, "result");
    yajl_gen_map_open(g);
    cric_yj_kv_str(g, "id", img->id);
    if (img->repo_tags[0])
        cric_yj_kv_str(g, "repo_tag", img->repo_tags[0]);
    if (img->repo_digests[0])
        cric_yj_kv_str(g, "repo_digest", img->repo_digests[0]);
    cric_yj_kv_strv(g, "layers", img->chain_ids);
    cric_yj_gen_str(g, "size");
    yajl_gen_integer(g, (long long)img->size);
    yajl_gen_map_close(g);
    yajl_gen_map_close(g);
    emit(g);
    exit_code = 0;
}

static void on_closed(void *data) { *(bool *)data = true; }

static int num(yajl_val req, const char *key, uint64_t dflt, uint64_t *out)
{
    yajl_val v = cric__json_get(req, key);
    if (!v) {
        *out = dflt;
        return 0;
    }
    if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 0)
        return -EINVAL;
    *out = (uint64_t)YAJL_GET_INTEGER(v);
    return 0;
}

/* Wipes the credential strings in the parsed request before it is freed. */
static void wipe_auth(yajl_val auth)
{
    if (!YAJL_IS_OBJECT(auth))
        return;
    for (size_t i = 0; i < auth->u.object.len; i++)
        if (YAJL_IS_STRING(auth->u.object.values[i]))
            explicit_bzero(auth->u.object.values[i]->u.string, strlen(auth->u.object.values[i]->u.string));
}

static int run(yajl_val req)
{
    const char *ref = cric__json_str(req, "reference"), *root = cric__json_str(req, "root");
    if (!ref || !root) {
        emit_error(-EINVAL, "cric-pull: request without reference or root");
        return 1;
    }
    struct cric_config cfg = {0};
    cfg.images_certs_dir = (char *)(cric__json_str(req, "certs_dir") ?: "");
    cfg.images_auth_file = (char *)(cric__json_str(req, "auth_file") ?: "");
    yajl_val regs = cric__json_get(req, "registries");
    size_t n = YAJL_IS_ARRAY(regs) ? regs->u.array.len : 0;
    _cleanup_free_ struct cric_registry_config *rc = calloc(n + 1, sizeof(*rc));
    int r = 0;
    if (!rc || num(req, "pull_timeout", 30, &cfg.images_pull_timeout) < 0 ||
        num(req, "max_concurrent_downloads", 3, &cfg.images_max_concurrent_downloads) < 0)
        r = -EINVAL;
    for (size_t i = 0; r == 0 && i < n; i++) {
        yajl_val e = regs->u.array.values[i];
        rc[i].host = (char *)cric__json_str(e, "host");
        rc[i].insecure = YAJL_IS_TRUE(cric__json_get(e, "insecure"));
        r = cric__json_strv(cric__json_get(e, "mirrors"), &rc[i].mirrors);
    }
    cfg.images_registries = rc;
    cfg.images_registries_len = n;
    if (r < 0) {
        emit_error(-EINVAL, "cric-pull: malformed request");
        goto out;
    }
    yajl_val a = cric__json_get(req, "auth");
    struct cric_pull_auth auth = {
        .username = cric__json_str(a, "username"),
        .password = cric__json_str(a, "password"),
        .auth = cric__json_str(a, "auth"),
        .identity_token = cric__json_str(a, "identity_token"),
        .registry_token = cric__json_str(a, "registry_token"),
    };

    uv_loop_t loop;
    struct cric_image_store *store = NULL;
    struct cric_puller *p = NULL;
    cric_error *err = NULL;
    if ((r = uv_loop_init(&loop)) < 0) {
        emit_error(r, "cric-pull: cannot create the event loop");
        goto out;
    }
    if ((r = cric_image_store_open_shared(root, &store, &err)) < 0 ||
        (r = cric_puller_new(&loop, store, &cfg, &p, &err)) < 0 ||
        (r = cric_puller_pull(p, ref, &auth, on_done, on_progress, NULL, &err)) < 0)
        emit_error(err->code, err->msg);
    cric_error_free(err);
    wipe_auth(a);
    bool closed = false;
    if (p) {
        if (r == 0)
            uv_run(&loop, UV_RUN_DEFAULT); /* until the pull is done */
        cric_puller_close(p, on_closed, &closed);
        while (!closed)
            uv_run(&loop, UV_RUN_ONCE);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    /* Our trash (failed unpacks) goes with us; anything left after a crash
     * is swept by cricd (tmp/<pid>-*). */
    if (store && cric_image_store_gc(cric_image_store_trash_dir(store), NULL) == 0)
        rmdir(cric_image_store_trash_dir(store));
    cric_image_store_free(store);
out:
    for (size_t i = 0; i < n; i++)
        cric_strv_free(rc[i].mirrors);
    return exit_code;
}

int main(int argc, char **argv)
{
    /* A killed cricd takes its pulls with it. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    signal(SIGPIPE, SIG_IGN);
    if (argc != 1) {
        fprintf(stderr, "usage: cric-pull < request.json  (run by cricd)\n");
        return 2;
    }
    _cleanup_free_ char *buf = malloc(REQUEST_MAX + 1);
    size_t len = 0;
    ssize_t k;
    while (buf && len < REQUEST_MAX && (k = read(0, buf + len, REQUEST_MAX - len)) != 0) {
        if (k < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        len += (size_t)k;
    }
    yajl_val req = NULL;
    cric_error *err = NULL;
    if (!buf || cric__json_parse(buf, len, "pull request", &req, &err) < 0) {
        emit_error(err ? err->code : -ENOMEM, err ? err->msg : "out of memory");
        cric_error_free(err);
        return 1;
    }
    explicit_bzero(buf, len);
    int rc = run(req);
    wipe_auth(cric__json_get(req, "auth"));
    yajl_tree_free(req);
    return rc;
}
