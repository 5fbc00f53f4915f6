/* cricctl pull, images, inspecti, rmi, imagefsinfo. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <yajl/yajl_gen.h>

#include "api.pb-c.h"
#include "cricctl/cricctl.h"
#include "image/ref.h"
#include "util/json.h"
#include "util/pbjson.h"

/* ---- pull progress: a child polls Status(verbose) "pulls" while the parent
 * blocks in PullImage (CRI has no progress stream). ---- */

#define MIB (1024.0 * 1024.0)

/* One frame: back up over the previous frame's lines, one line per layer.
 * Built whole and written with one write() so a kill never splits a line. */
static unsigned draw_frame(const cric_json *layers, unsigned prev)
{
    size_t cap = 128 + (layers ? layers->len : 0) * 96, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        return prev;
    if (prev)
        len += (size_t)snprintf(buf, cap, "\033[%uA", prev);
    unsigned n = 0;
    for (size_t i = 0; layers && i < layers->len; i++) {
        const cric_json *l = layers->items[i];
        const cric_json *dg = cric_json_get(l, "digest"), *d = cric_json_get(l, "done"),
                        *t = cric_json_get(l, "total");
        if (!dg || dg->type != CRIC_JSON_STRING || !d || d->type != CRIC_JSON_NUMBER || !t ||
            t->type != CRIC_JSON_NUMBER)
            continue;
        const char *colon = strchr(dg->str, ':');
        int w = snprintf(buf + len, cap - len, "\r\033[K%.12s: %.1f MiB / %.1f MiB\n", colon ? colon + 1 : dg->str,
                         strtod(d->str, NULL) / MIB, strtod(t->str, NULL) / MIB);
        if (w < 0 || (size_t)w >= cap - len)
            break;
        len += (size_t)w;
        n++;
    }
    if (n >= prev && len && write(STDOUT_FILENO, buf, len) < 0)
        n = prev;
    free(buf);
    return n >= prev ? n : prev;
}

/* The child: never returns. */
static _Noreturn void progress_child(const struct cricctl *ctl, const char *ref)
{
    struct cric_image_ref r = {0};
    char *norm = NULL;
    cric_client *c = NULL;
    if (cric_image_ref_parse(ref, &r, NULL) < 0 || !(norm = cric_image_ref_string(&r)) ||
        cric_client_connect(ctl->endpoint, ctl->timeout_ms, &c, NULL) < 0)
        _exit(0);
    unsigned lines = 0;
    for (;;) {
        struct timespec ts = {0, 250 * 1000 * 1000};
        nanosleep(&ts, NULL);
        Runtime__V1__StatusRequest req = RUNTIME__V1__STATUS_REQUEST__INIT;
        req.verbose = true;
        ProtobufCMessage *m = NULL;
        int status = 0;
        char *msg = NULL;
        if (cric_client_call(c, "/runtime.v1.RuntimeService/Status", &req.base,
                             &runtime__v1__status_response__descriptor, ctl->timeout_ms, &m, &status, &msg, NULL) < 0)
            _exit(0);
        free(msg);
        if (!m)
            continue;
        const Runtime__V1__StatusResponse *resp = (const Runtime__V1__StatusResponse *)m;
        for (size_t i = 0; i < resp->n_info; i++) {
            cric_json *j = NULL;
            if (strcmp(resp->info[i]->key, "pulls") != 0 ||
                cric_json_parse(resp->info[i]->value, strlen(resp->info[i]->value), false, &j, NULL) < 0)
                continue;
            const cric_json *layers = cric_json_get(cric_json_get(j, norm), "layers");
            if (layers && layers->type == CRIC_JSON_ARRAY)
                lines = draw_frame(layers, lines);
            cric_json_free(j);
        }
        protobuf_c_message_free_unpacked(m, NULL);
    }
}

static pid_t progress_start(const struct cricctl *ctl, const char *ref)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0)
        progress_child(ctl, ref);
    return pid;
}

static void progress_stop(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

int cricctl_cmd_pull(struct cricctl *ctl, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"creds", required_argument, NULL, 'c'},
        {"auth", required_argument, NULL, 'a'},
        {"quiet", no_argument, NULL, 'q'},
        {NULL, 0, NULL, 0},
    };
    const char *creds = NULL, *auth = NULL;
    bool quiet = false;
    int c;
    while ((c = getopt_long(argc, argv, "q", longopts, NULL)) != -1) {
        if (c == 'c')
            creds = optarg;
        else if (c == 'a')
            auth = optarg;
        else if (c == 'q')
            quiet = true;
        else
            return 2;
    }
    if (optind + 1 != argc)
        return cricctl_fail("usage: pull [-q] [--creds USER:PASSWORD] [--auth BASE64] IMAGE") + 1;
    Runtime__V1__ImageSpec spec = RUNTIME__V1__IMAGE_SPEC__INIT;
    spec.image = argv[optind];
    Runtime__V1__AuthConfig ac = RUNTIME__V1__AUTH_CONFIG__INIT;
    Runtime__V1__PullImageRequest req = RUNTIME__V1__PULL_IMAGE_REQUEST__INIT;
    req.image = &spec;
    char *user = NULL;
    if (creds) {
        user = strdup(creds);
        if (!user)
            return cricctl_fail("out of memory");
        char *colon = strchr(user, ':');
        if (colon)
            *colon++ = '\0';
        ac.username = user;
        ac.password = colon ? colon : "";
        req.auth = &ac;
    } else if (auth) {
        ac.auth = (char *)auth;
        req.auth = &ac;
    }
    ProtobufCMessage *m = NULL;
    pid_t progress = !quiet && isatty(STDOUT_FILENO) ? progress_start(ctl, argv[optind]) : -1;
    int r = cricctl_call(ctl, "ImageService", "PullImage", &req.base, &runtime__v1__pull_image_response__descriptor,
                         &m);
    progress_stop(progress);
    if (user) {
        explicit_bzero(user, strlen(creds));
        free(user);
    }
    if (r)
        return r;
    printf("Image is up to date for %s\n", ((const Runtime__V1__PullImageResponse *)m)->image_ref);
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}

/* "repo:tag" -> repo, tag (the tag is after the last ':' past the last '/'). */
static void split_tag(const char *rt, char *repo, size_t rn, const char **tag)
{
    const char *slash = strrchr(rt, '/');
    const char *colon = strrchr(slash ? slash : rt, ':');
    size_t n = colon ? (size_t)(colon - rt) : strlen(rt);
    snprintf(repo, rn, "%.*s", (int)n, rt);
    *tag = colon ? colon + 1 : "<none>";
}

static const char *digest_for(const Runtime__V1__Image *img, const char *repo)
{
    size_t rl = strlen(repo);
    for (size_t i = 0; i < img->n_repo_digests; i++)
        if (strncmp(img->repo_digests[i], repo, rl) == 0 && img->repo_digests[i][rl] == '@')
            return img->repo_digests[i] + rl + 1;
    return img->n_repo_digests ? strchr(img->repo_digests[0], '@') + 1 : "<none>";
}

int cricctl_cmd_images(struct cricctl *ctl, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"quiet", no_argument, NULL, 'q'},
        {"digests", no_argument, NULL, 'd'},
        {"output", required_argument, NULL, 'o'},
        {NULL, 0, NULL, 0},
    };
    bool quiet = false, digests = false;
    int c, r;
    while ((c = getopt_long(argc, argv, "qo:", longopts, NULL)) != -1) {
        if (c == 'q')
            quiet = true;
        else if (c == 'd')
            digests = true;
        else if (c == 'o') {
            if ((r = cricctl_set_output(ctl, optarg)))
                return r;
        } else
            return 2;
    }
    Runtime__V1__ImageSpec spec = RUNTIME__V1__IMAGE_SPEC__INIT;
    Runtime__V1__ImageFilter filter = RUNTIME__V1__IMAGE_FILTER__INIT;
    Runtime__V1__ListImagesRequest req = RUNTIME__V1__LIST_IMAGES_REQUEST__INIT;
    if (optind < argc) {
        spec.image = argv[optind];
        filter.image = &spec;
        req.filter = &filter;
    }
    ProtobufCMessage *m = NULL;
    if ((r = cricctl_call(ctl, "ImageService", "ListImages", &req.base, &runtime__v1__list_images_response__descriptor,
                          &m)))
        return r;
    const Runtime__V1__ListImagesResponse *l = (const Runtime__V1__ListImagesResponse *)m;
    if (ctl->output != CRICCTL_OUT_TABLE) {
        r = cricctl_print_message(ctl, m);
    } else if (quiet) {
        for (size_t i = 0; i < l->n_images; i++)
            printf("%s\n", l->images[i]->id);
    } else {
        printf("%-40s %-12s %s%-13s  %s\n", "IMAGE", "TAG", digests ? "DIGEST         " : "", "IMAGE ID", "SIZE");
        for (size_t i = 0; i < l->n_images; i++) {
            const Runtime__V1__Image *img = l->images[i];
            char size[32], repo[512];
            cricctl_human_size(img->size, size, sizeof(size));
            const char *id = strncmp(img->id, "sha256:", 7) == 0 ? img->id + 7 : img->id;
            size_t rows = img->n_repo_tags ? img->n_repo_tags : 1;
            for (size_t t = 0; t < rows; t++) {
                const char *tag = "<none>";
                if (img->n_repo_tags)
                    split_tag(img->repo_tags[t], repo, sizeof(repo), &tag);
                else if (img->n_repo_digests)
                    snprintf(repo, sizeof(repo), "%.*s", (int)strcspn(img->repo_digests[0], "@"),
                             img->repo_digests[0]);
                else
                    strcpy(repo, "<none>");
                const char *dg = digest_for(img, repo);
                if (strncmp(dg, "sha256:", 7) == 0)
                    dg += 7;
                if (digests)
                    printf("%-40s %-12s %-13.13s  %-13.13s  %s\n", repo, tag, dg, id, size);
                else
                    printf("%-40s %-12s %-13.13s  %s\n", repo, tag, id, size);
            }
        }
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return r;
}

/* {"status": <Image>, "info": <verbose info parsed as JSON>}, as crictl does. */
static int inspect_json(const Runtime__V1__ImageStatusResponse *s, char **out)
{
    yajl_gen g = cricctl_json_begin(true);
    cricctl_json_message(g, "status", &s->image->base);
    for (size_t i = 0; i < s->n_info; i++)
        cricctl_json_info(g, s->info[i]->key, s->info[i]->value);
    return cricctl_json_end(g, out);
}

int cricctl_cmd_inspecti(struct cricctl *ctl, int argc, char **argv)
{
    int r = cricctl_parse_output_opt(ctl, argc, argv);
    if (r)
        return r;
    if (optind >= argc)
        return cricctl_fail("usage: inspecti [-o json|yaml] IMAGE...") + 1;
    if (ctl->output == CRICCTL_OUT_TABLE)
        ctl->output = CRICCTL_OUT_JSON;
    int rc = 0;
    for (int i = optind; i < argc; i++) {
        Runtime__V1__ImageSpec spec = RUNTIME__V1__IMAGE_SPEC__INIT;
        spec.image = argv[i];
        Runtime__V1__ImageStatusRequest req = RUNTIME__V1__IMAGE_STATUS_REQUEST__INIT;
        req.image = &spec;
        req.verbose = true;
        ProtobufCMessage *m = NULL;
        if ((r = cricctl_call(ctl, "ImageService", "ImageStatus", &req.base,
                              &runtime__v1__image_status_response__descriptor, &m))) {
            rc = r;
            continue;
        }
        const Runtime__V1__ImageStatusResponse *s = (const Runtime__V1__ImageStatusResponse *)m;
        if (!s->image) {
            rc = cricctl_fail("no such image '%s'", argv[i]);
        } else {
            char *json = NULL;
            if (inspect_json(s, &json) < 0)
                rc = cricctl_fail("cannot render the image as JSON");
            else if ((r = cricctl_print_json(ctl, json)))
                rc = r;
            free(json);
        }
        protobuf_c_message_free_unpacked(m, NULL);
    }
    return rc;
}

int cricctl_cmd_rmi(struct cricctl *ctl, int argc, char **argv)
{
    if (argc < 2)
        return cricctl_fail("usage: rmi IMAGE...") + 1;
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        Runtime__V1__ImageSpec spec = RUNTIME__V1__IMAGE_SPEC__INIT;
        spec.image = argv[i];
        Runtime__V1__RemoveImageRequest req = RUNTIME__V1__REMOVE_IMAGE_REQUEST__INIT;
        req.image = &spec;
        ProtobufCMessage *m = NULL;
        int r = cricctl_call(ctl, "ImageService", "RemoveImage", &req.base,
                             &runtime__v1__remove_image_response__descriptor, &m);
        if (r) {
            rc = r;
            continue;
        }
        printf("Deleted: %s\n", argv[i]);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    return rc;
}

int cricctl_cmd_imagefsinfo(struct cricctl *ctl, int argc, char **argv)
{
    int r = cricctl_parse_output_opt(ctl, argc, argv);
    if (r)
        return r;
    if (ctl->output == CRICCTL_OUT_TABLE)
        ctl->output = CRICCTL_OUT_JSON;
    Runtime__V1__ImageFsInfoRequest req = RUNTIME__V1__IMAGE_FS_INFO_REQUEST__INIT;
    ProtobufCMessage *m = NULL;
    if ((r = cricctl_call(ctl, "ImageService", "ImageFsInfo", &req.base,
                          &runtime__v1__image_fs_info_response__descriptor, &m)))
        return r;
    r = cricctl_print_message(ctl, m);
    protobuf_c_message_free_unpacked(m, NULL);
    return r;
}
