/* Test driver for the puller without the daemon: pulls references into a
 * store on a libuv loop and prints one line per reference:
 *   OK <ref> <image id> <layer dir>...    or    ERR <ref> <message>
 * Usage: image_pull_tool --root DIR [--insecure HOST] [--mirror HOST=URL]
 *        [--creds USER:PASS] [--identity-token T] [--auth-file F] [--certs-dir D] [--max N]
 *        [--timeout S] [--pin REF] (pull REF... | rm REF | list) */
#include "config.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "image/pull.h"
#include "image/store.h"
#include "util/cleanup.h"

struct job {
    const char *ref;
    struct cric_image_store *store;
    int *left;
    int *failed;
};

static void done(void *data, const struct cric_image *img, const cric_error *err)
{
    struct job *j = data;
    if (img) {
        printf("OK %s %s", j->ref, img->id);
        char **dirs = NULL;
        if (cric_image_store_layer_dirs(j->store, img, &dirs, NULL) == 0)
            for (size_t i = 0; dirs[i]; i++)
                printf(" %s", dirs[i]);
        cric_strv_free(dirs);
        printf("\n");
    } else {
        printf("ERR %s %s\n", j->ref, err->msg);
        (*j->failed)++;
    }
    fflush(stdout);
    (*j->left)--;
}

int main(int argc, char **argv)
{
    const char *root = NULL, *creds = NULL, *identity = NULL;
    struct cric_config cfg = {0};
    cfg.images_max_concurrent_downloads = 3;
    cfg.images_pull_timeout = 30;
    cfg.images_certs_dir = "";
    cfg.images_auth_file = "";
    struct cric_registry_config regs[16] = {0};
    char *mirrors[16][8] = {{0}};
    char *pins[16] = {0};
    size_t npins = 0;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--root") == 0)
            root = argv[++i];
        else if (strcmp(a, "--creds") == 0)
            creds = argv[++i];
        else if (strcmp(a, "--identity-token") == 0)
            identity = argv[++i];
        else if (strcmp(a, "--auth-file") == 0)
            cfg.images_auth_file = argv[++i];
        else if (strcmp(a, "--certs-dir") == 0)
            cfg.images_certs_dir = argv[++i];
        else if (strcmp(a, "--max") == 0)
            cfg.images_max_concurrent_downloads = strtoull(argv[++i], NULL, 10);
        else if (strcmp(a, "--timeout") == 0)
            cfg.images_pull_timeout = strtoull(argv[++i], NULL, 10);
        else if (strcmp(a, "--pin") == 0 && npins < 15)
            pins[npins++] = argv[++i];
        else if (strcmp(a, "--insecure") == 0 || strcmp(a, "--mirror") == 0) {
            char *v = argv[++i];
            char *eq = strcmp(a, "--mirror") == 0 ? strchr(v, '=') : NULL;
            if (eq)
                *eq = '\0';
            size_t k = 0;
            while (k < cfg.images_registries_len && strcmp(regs[k].host, v) != 0)
                k++;
            if (k == cfg.images_registries_len) {
                regs[k].host = v;
                regs[k].mirrors = mirrors[k];
                cfg.images_registries_len++;
            }
            if (eq) {
                size_t m = 0;
                while (mirrors[k][m])
                    m++;
                mirrors[k][m] = eq + 1;
            } else {
                regs[k].insecure = true;
            }
        } else
            break;
    }
    cfg.images_registries = regs;
    cfg.images_pinned = pins;
    if (!root || i >= argc) {
        fprintf(stderr, "usage: image_pull_tool --root DIR [options] (pull REF...|rm REF|list)\n");
        return 2;
    }
    cric_error *err = NULL;
    struct cric_image_store *store = NULL;
    if (cric_image_store_open(root, &store, &err) < 0) {
        fprintf(stderr, "%s\n", err->msg);
        return 1;
    }
    cric_image_store_set_pinned(store, pins, NULL);
    const char *cmd = argv[i++];
    int rc = 0;
    if (strcmp(cmd, "list") == 0) {
        size_t n;
        const struct cric_image *const *imgs = cric_image_store_list(store, &n);
        for (size_t k = 0; k < n; k++) {
            _cleanup_free_ char *json = NULL;
            if (cric_image_to_json(imgs[k], &json, NULL) == 0)
                printf("%s\n", json);
        }
    } else if (strcmp(cmd, "rm") == 0) {
        if (cric_image_store_remove(store, argv[i], &err) < 0) {
            printf("ERR %s %s\n", argv[i], err ? err->msg : "not found");
            rc = 1;
        } else {
            cric_image_store_gc(cric_image_store_trash_dir(store), NULL);
            printf("OK %s\n", argv[i]);
        }
    } else if (strcmp(cmd, "pull") == 0) {
        uv_loop_t loop;
        uv_loop_init(&loop);
        struct cric_puller *p = NULL;
        if (cric_puller_new(&loop, store, &cfg, &p, &err) < 0) {
            fprintf(stderr, "%s\n", err->msg);
            return 1;
        }
        int left = 0, failed = 0;
        struct job jobs[64];
        struct cric_pull_auth auth = {0};
        _cleanup_free_ char *user = NULL;
        if (creds) {
            user = strdup(creds);
            char *c = strchr(user, ':');
            if (c)
                *c++ = '\0';
            auth.username = user;
            auth.password = c ? c : "";
        }
        auth.identity_token = identity;
        for (int k = 0; i < argc && k < 64; i++, k++) {
            jobs[k] = (struct job){argv[i], store, &left, &failed};
            left++;
            if (cric_puller_pull(p, argv[i], &auth, done, NULL, &jobs[k], &err) < 0) {
                printf("ERR %s %s\n", argv[i], err->msg);
                cric_error_clear(&err);
                left--;
                failed++;
            }
        }
        while (left > 0 && uv_run(&loop, UV_RUN_ONCE))
            ;
        cric_puller_close(p, NULL, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        if (uv_loop_close(&loop) != 0) {
            fprintf(stderr, "loop still has handles\n");
            rc = 3;
        }
        if (failed && !rc)
            rc = 1;
    }
    cric_image_store_free(store);
    return rc;
}
