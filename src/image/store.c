#include "config.h"
#include "image/store.h"
#include "image/json.h"
#include "image/manifest.h"
#include "image/ref.h"
#include "util/cleanup.h"
#include "util/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RECORD_MAX (1u << 20)

struct layer_hold {
    char *chain_id;
    unsigned count;
};

struct cric_image_store {
    char *dir;      /* <root>/images, resolved */
    char *blobs;    /* dir/blobs/sha256 */
    char *layers;   /* dir/layers */
    char *records;  /* dir/records */
    char *tmp;      /* dir/tmp */
    char *trash;    /* dir/trash */
    struct cric_image **images;
    size_t n_images;
    char **pinned;  /* references from the config */
    struct layer_hold *holds;
    size_t n_holds;
    unsigned trash_seq;
    bool shared;      /* opened by a cric-pull helper: see cric_image_store_open_shared */
    unsigned pulls;   /* pull helpers running: unused layers and blobs are kept */
    int sweep_pid;    /* cric_image_store_sweep_pid's pid, for keep_other_pid */
};

static const char *hex_of(const char *digest) { return strncmp(digest, "sha256:", 7) == 0 ? digest + 7 : digest; }

static void image_free(struct cric_image *img)
{
    if (!img)
        return;
    free(img->id);
    cric_strv_free(img->repo_tags);
    cric_strv_free(img->repo_digests);
    cric_strv_free(img->chain_ids);
    cric_image_config_clear(&img->config);
    free(img);
}

void cric_image_store_free(struct cric_image_store *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_images; i++)
        image_free(s->images[i]);
    free(s->images);
    for (size_t i = 0; i < s->n_holds; i++)
        free(s->holds[i].chain_id);
    free(s->holds);
    cric_strv_free(s->pinned);
    free(s->dir);
    free(s->blobs);
    free(s->layers);
    free(s->records);
    free(s->tmp);
    free(s->trash);
    free(s);
}

const char *cric_image_store_dir(struct cric_image_store *s) { return s->dir; }
const char *cric_image_store_tmp_dir(struct cric_image_store *s) { return s->tmp; }
const char *cric_image_store_trash_dir(struct cric_image_store *s) { return s->trash; }

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t layer_size(struct cric_image_store *s, const char *chain_id)
{
    _cleanup_free_ char *p = NULL, *buf = NULL;
    if (asprintf(&p, "%s/%s/size", s->layers, hex_of(chain_id)) < 0)
        return 0;
    if (cric_read_file(p, 64, &buf, NULL, NULL) < 0)
        return 0;
    return strtoull(buf, NULL, 10);
}

bool cric_image_store_has_layer(struct cric_image_store *s, const char *chain_id)
{
    _cleanup_free_ char *p = NULL;
    if (!cric_digest_valid(chain_id) || asprintf(&p, "%s/%s/diff", s->layers, hex_of(chain_id)) < 0)
        return false;
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Moves path into the trash under a unique name (a rename: cheap). */
static int move_to_trash(struct cric_image_store *s, const char *path, cric_error **err)
{
    _cleanup_free_ char *dst = NULL;
    if (asprintf(&dst, "%s/%d-%u-%" PRId64, s->trash, (int)getpid(), s->trash_seq++, now_ns()) < 0)
        return cric_error_sys(err, -ENOMEM, "trash '%s'", path);
    if (rename(path, dst) < 0 && errno != ENOENT)
        return cric_error_sys(err, -errno, "move '%s' to '%s'", path, dst);
    return 0;
}

int cric_image_store_discard(struct cric_image_store *s, const char *path, cric_error **err)
{
    return move_to_trash(s, path, err);
}

static bool layer_referenced(struct cric_image_store *s, const char *chain_id)
{
    for (size_t i = 0; i < s->n_images; i++)
        if (cric__strv_contains(s->images[i]->chain_ids, chain_id))
            return true;
    for (size_t i = 0; i < s->n_holds; i++)
        if (strcmp(s->holds[i].chain_id, chain_id) == 0)
            return true;
    return false;
}

static int hold(struct cric_image_store *s, const char *chain_id)
{
    for (size_t i = 0; i < s->n_holds; i++)
        if (strcmp(s->holds[i].chain_id, chain_id) == 0) {
            s->holds[i].count++;
            return 0;
        }
    struct layer_hold *nh = realloc(s->holds, (s->n_holds + 1) * sizeof(*nh));
    if (!nh)
        return -ENOMEM;
    s->holds = nh;
    if (!(nh[s->n_holds].chain_id = strdup(chain_id)))
        return -ENOMEM;
    nh[s->n_holds++].count = 1;
    return 0;
}

bool cric_image_store_hold_layer(struct cric_image_store *s, const char *chain_id)
{
    return cric_image_store_has_layer(s, chain_id) && hold(s, chain_id) == 0;
}

static void trash_layer(struct cric_image_store *s, const char *chain_id)
{
    _cleanup_free_ char *p = NULL;
    if (asprintf(&p, "%s/%s", s->layers, hex_of(chain_id)) >= 0)
        move_to_trash(s, p, NULL);
}

void cric_image_store_release_layer(struct cric_image_store *s, const char *chain_id)
{
    /* A helper never deletes layers: another helper may be using one it
     * added; cricd sweeps unused ones once no pull runs. */
    for (size_t i = 0; i < s->n_holds; i++)
        if (strcmp(s->holds[i].chain_id, chain_id) == 0) {
            if (--s->holds[i].count == 0) {
                free(s->holds[i].chain_id);
                s->holds[i] = s->holds[--s->n_holds];
            }
            break;
        }
    if (!s->shared && !s->pulls && !layer_referenced(s, chain_id))
        trash_layer(s, chain_id);
}

int cric_image_store_add_layer(struct cric_image_store *s, const char *chain_id, const char *tmp_dir,
                               cric_error **err)
{
    if (!cric_digest_valid(chain_id))
        return cric_error_new(err, -EINVAL, "invalid chain ID '%s'", chain_id);
    _cleanup_free_ char *dst = NULL;
    if (asprintf(&dst, "%s/%s", s->layers, hex_of(chain_id)) < 0)
        return cric_error_sys(err, -ENOMEM, "add layer");
    if (hold(s, chain_id) < 0)
        return cric_error_sys(err, -ENOMEM, "add layer");
    if (rename(tmp_dir, dst) < 0) {
        int e = errno;
        if (e == EEXIST || e == ENOTEMPTY) /* unpacked meanwhile by another pull */
            return move_to_trash(s, tmp_dir, err);
        cric_image_store_release_layer(s, chain_id);
        return cric_error_sys(err, -e, "move layer '%s' into place", tmp_dir);
    }
    return 0;
}

static int blob_path(struct cric_image_store *s, const char *digest, char **out)
{
    return asprintf(out, "%s/%s", s->blobs, hex_of(digest)) < 0 ? -ENOMEM : 0;
}

int cric_image_store_put_blob(struct cric_image_store *s, const char *digest, const void *data, size_t len,
                              cric_error **err)
{
    _cleanup_free_ char *p = NULL;
    if (!cric_digest_valid(digest) || blob_path(s, digest, &p) < 0)
        return cric_error_new(err, -EINVAL, "invalid blob digest '%s'", digest);
    return cric_write_file_atomic(p, data, len, 0644, err);
}

/* ---- records ---- */

static int record_json(const struct cric_image *img, char **out)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    if (!g)
        return -ENOMEM;
    yajl_gen_config(g, yajl_gen_beautify, 1);
    yajl_gen_map_open(g);
    cric_yj_kv_str(g, "id", img->id);
    cric_yj_kv_strv(g, "repo_tags", img->repo_tags);
    cric_yj_kv_strv(g, "repo_digests", img->repo_digests);
    cric_yj_kv_strv(g, "layers", img->chain_ids);
    cric_yj_gen_str(g, "pulled_ns");
    yajl_gen_integer(g, img->pulled_ns);
    yajl_gen_map_close(g);
    int r = cric__gen_take(g, out);
    yajl_gen_free(g);
    return r;
}

static int record_write(struct cric_image_store *s, const struct cric_image *img, cric_error **err)
{
    _cleanup_free_ char *json = NULL, *p = NULL;
    if (record_json(img, &json) < 0 || asprintf(&p, "%s/%s.json", s->records, hex_of(img->id)) < 0)
        return cric_error_sys(err, -ENOMEM, "write image record '%s'", img->id);
    return cric_write_file_atomic(p, json, strlen(json), 0644, err);
}

static int record_delete(struct cric_image_store *s, const struct cric_image *img, cric_error **err)
{
    _cleanup_free_ char *p = NULL;
    if (asprintf(&p, "%s/%s.json", s->records, hex_of(img->id)) < 0)
        return cric_error_sys(err, -ENOMEM, "remove image record");
    if (unlink(p) < 0 && errno != ENOENT)
        return cric_error_sys(err, -errno, "remove image record '%s'", p);
    return 0;
}

/* Fills config and size from the config blob and the layers. */
static int image_fill(struct cric_image_store *s, struct cric_image *img, cric_error **err)
{
    _cleanup_free_ char *p = NULL, *data = NULL;
    size_t len = 0;
    if (blob_path(s, img->id, &p) < 0)
        return cric_error_sys(err, -ENOMEM, "load image");
    int r = cric_read_file(p, CRIC_CONFIG_MAX_BYTES, &data, &len, err);
    if (r < 0)
        return r;
    cric_image_config_clear(&img->config);
    if ((r = cric_image_config_parse(data, len, &img->config, NULL, err)) < 0)
        return r;
    img->n_layers = cric__strv_len(img->chain_ids);
    img->size = len;
    for (size_t i = 0; i < img->n_layers; i++)
        img->size += layer_size(s, img->chain_ids[i]);
    return 0;
}

static int record_load(struct cric_image_store *s, const char *path, struct cric_image **out, cric_error **err)
{
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    int r = cric_read_file(path, RECORD_MAX, &data, &len, err);
    if (r < 0)
        return r;
    yajl_val root = NULL;
    if ((r = cric__json_parse(data, len, path, &root, err)) < 0)
        return r;
    struct cric_image *img = calloc(1, sizeof(*img));
    const char *id = cric__json_str(root, "id");
    yajl_val pulled = cric__json_get(root, "pulled_ns");
    r = -EINVAL;
    if (!img || !cric_digest_valid(id) || !(img->id = strdup(id)) ||
        cric__json_strv(cric__json_get(root, "repo_tags"), &img->repo_tags) < 0 ||
        cric__json_strv(cric__json_get(root, "repo_digests"), &img->repo_digests) < 0 ||
        cric__json_strv(cric__json_get(root, "layers"), &img->chain_ids) < 0) {
        cric_error_new(err, -EINVAL, "image record '%s' is malformed", path);
        goto fail;
    }
    img->pulled_ns = YAJL_IS_INTEGER(pulled) ? YAJL_GET_INTEGER(pulled) : 0;
    for (size_t i = 0; img->chain_ids[i]; i++)
        if (!cric_image_store_has_layer(s, img->chain_ids[i])) {
            cric_error_new(err, -ENOENT, "image record '%s': layer %s is missing", path, img->chain_ids[i]);
            goto fail;
        }
    if ((r = image_fill(s, img, err)) < 0)
        goto fail;
    yajl_tree_free(root);
    *out = img;
    return 0;
fail:
    yajl_tree_free(root);
    image_free(img);
    return r;
}

static int images_push(struct cric_image_store *s, struct cric_image *img)
{
    struct cric_image **n = realloc(s->images, (s->n_images + 1) * sizeof(*n));
    if (!n)
        return -ENOMEM;
    s->images = n;
    n[s->n_images++] = img;
    return 0;
}

/* Removes every entry in dir whose name is not kept by keep(); used at start-up. */
static unsigned sweep_dir(struct cric_image_store *s, const char *dir,
                          bool (*keep)(struct cric_image_store *, const char *))
{
    unsigned moved = 0;
    _cleanup_closedir_ DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        if (keep(s, de->d_name))
            continue;
        _cleanup_free_ char *p = NULL;
        if (asprintf(&p, "%s/%s", dir, de->d_name) >= 0 && move_to_trash(s, p, NULL) == 0)
            moved++;
    }
    return moved;
}

static bool keep_nothing(struct cric_image_store *s, const char *name) { return false; }

static bool keep_layer(struct cric_image_store *s, const char *name)
{
    char id[80];
    snprintf(id, sizeof(id), "sha256:%s", name);
    return layer_referenced(s, id);
}

static bool keep_blob(struct cric_image_store *s, const char *name)
{
    for (size_t i = 0; i < s->n_images; i++)
        if (strcmp(hex_of(s->images[i]->id), name) == 0)
            return true;
    return false;
}

static void resolve_tag_conflicts(struct cric_image_store *s)
{
    /* Two records can claim one tag only after a crash between the writes of
     * a tag move: the newer pull wins, as it would have. */
    for (size_t i = 0; i < s->n_images; i++)
        for (size_t t = 0; s->images[i]->repo_tags[t];) {
            const char *tag = s->images[i]->repo_tags[t];
            bool lose = false;
            for (size_t j = 0; j < s->n_images; j++)
                if (j != i && s->images[j]->pulled_ns > s->images[i]->pulled_ns &&
                    cric__strv_contains(s->images[j]->repo_tags, tag))
                    lose = true;
            if (lose) {
                _cleanup_free_ char *copy = strdup(tag);
                if (copy) {
                    cric__strv_remove(s->images[i]->repo_tags, copy);
                    record_write(s, s->images[i], NULL);
                    continue;
                }
            }
            t++;
        }
}

static int store_open(const char *root, bool shared, struct cric_image_store **out, cric_error **err)
{
    _cleanup_free_ char *dir = NULL;
    if (asprintf(&dir, "%s/images", root) < 0)
        return cric_error_sys(err, -ENOMEM, "open image store");
    int r = cric_mkdir_p(dir, 0700, err);
    if (r < 0)
        return r;
    _cleanup_closedir_ DIR *d = NULL;
    struct cric_image_store *s = calloc(1, sizeof(*s));
    if (!s)
        return cric_error_sys(err, -ENOMEM, "open image store");
    /* Resolved once: libarchive's symlink checks must see no symlink in it. */
    s->dir = realpath(dir, NULL);
    if (!s->dir) {
        r = cric_error_sys(err, -errno, "resolve '%s'", dir);
        goto fail;
    }
    s->shared = shared;
    /* A helper's trash is its own, under tmp/ with its pid as prefix: cricd
     * empties it when the helper has exited (see cric_image_store_sweep_pid). */
    if (asprintf(&s->blobs, "%s/blobs/sha256", s->dir) < 0 || asprintf(&s->layers, "%s/layers", s->dir) < 0 ||
        asprintf(&s->records, "%s/records", s->dir) < 0 || asprintf(&s->tmp, "%s/tmp", s->dir) < 0 ||
        (shared ? asprintf(&s->trash, "%s/tmp/%d-trash", s->dir, (int)getpid())
                : asprintf(&s->trash, "%s/trash", s->dir)) < 0) {
        r = cric_error_sys(err, -ENOMEM, "open image store");
        goto fail;
    }
    const char *dirs[] = {s->blobs, s->layers, s->records, s->tmp, s->trash};
    for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
        if ((r = cric_mkdir_p(dirs[i], 0700, err)) < 0)
            goto fail;
    if (shared) {
        *out = s;
        return 0;
    }
    /* Partial downloads and unpacks of an interrupted pull. */
    sweep_dir(s, s->tmp, keep_nothing);
    d = opendir(s->records);
    if (!d) {
        r = cric_error_sys(err, -errno, "open '%s'", s->records);
        goto fail;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (de->d_name[0] == '.')
            continue;
        _cleanup_free_ char *p = NULL;
        if (asprintf(&p, "%s/%s", s->records, de->d_name) < 0) {
            r = cric_error_sys(err, -ENOMEM, "open image store");
            goto fail;
        }
        if (n != 64 + 5 || strcmp(de->d_name + 64, ".json") != 0) {
            unlink(p); /* temp file of an interrupted atomic write */
            continue;
        }
        struct cric_image *img = NULL;
        cric_error *lerr = NULL;
        if (record_load(s, p, &img, &lerr) < 0) {
            /* A record whose content is gone cannot be used: drop it rather
             * than refuse to start (the image will simply be pulled again). */
            cric_error_free(lerr);
            unlink(p);
            continue;
        }
        if (images_push(s, img) < 0) {
            image_free(img);
            r = cric_error_sys(err, -ENOMEM, "open image store");
            goto fail;
        }
    }
    resolve_tag_conflicts(s);
    sweep_dir(s, s->layers, keep_layer);
    sweep_dir(s, s->blobs, keep_blob);
    cric_image_store_gc(s->trash, NULL);
    *out = s;
    return 0;
fail:
    cric_image_store_free(s);
    return r;
}

int cric_image_store_open(const char *root, struct cric_image_store **out, cric_error **err)
{
    return store_open(root, false, out, err);
}

int cric_image_store_open_shared(const char *root, struct cric_image_store **out, cric_error **err)
{
    return store_open(root, true, out, err);
}

void cric_image_store_pulls_begin(struct cric_image_store *s)
{
    s->pulls++;
}

unsigned cric_image_store_pulls_end(struct cric_image_store *s)
{
    if (--s->pulls)
        return 0;
    /* Layers of failed pulls and layers/blobs of images removed while
     * helpers ran: cheap renames into the trash. */
    return sweep_dir(s, s->layers, keep_layer) + sweep_dir(s, s->blobs, keep_blob);
}

static bool keep_other_pid(struct cric_image_store *s, const char *name)
{
    char pfx[32];
    int n = snprintf(pfx, sizeof(pfx), "%d-", (int)s->sweep_pid);
    return strncmp(name, pfx, (size_t)n) != 0;
}

unsigned cric_image_store_sweep_pid(struct cric_image_store *s, int pid)
{
    s->sweep_pid = pid;
    return sweep_dir(s, s->tmp, keep_other_pid);
}

/* ---- lookup ---- */

static bool is_hex(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return false;
    return true;
}

static struct cric_image *find_id(struct cric_image_store *s, const char *id)
{
    for (size_t i = 0; i < s->n_images; i++)
        if (strcmp(s->images[i]->id, id) == 0)
            return s->images[i];
    return NULL;
}

/* Resolves ref; *via_tag gets the normalised tag when found by tag. */
static int resolve(struct cric_image_store *s, const char *ref, struct cric_image **out, char **via_tag,
                   cric_error **err)
{
    if (!ref || !*ref)
        return cric_error_new(err, -EINVAL, "empty image reference");
    if (cric_digest_valid(ref)) {
        struct cric_image *img = find_id(s, ref);
        if (!img)
            return -ENOENT;
        *out = img;
        return 0;
    }
    struct cric_image_ref r = {0};
    cric_error *perr = NULL;
    int pr = cric_image_ref_parse(ref, &r, &perr);
    if (pr == 0) {
        _cleanup_free_ char *repo = cric_image_ref_repo(&r), *tagged = cric_image_ref_tagged(&r), *rd = NULL;
        if (r.digest && repo && asprintf(&rd, "%s@%s", repo, r.digest) < 0)
            rd = NULL;
        cric_image_ref_clear(&r);
        for (size_t i = 0; i < s->n_images; i++) {
            struct cric_image *img = s->images[i];
            if (rd ? cric__strv_contains(img->repo_digests, rd)
                   : (tagged && cric__strv_contains(img->repo_tags, tagged))) {
                if (via_tag && !rd)
                    *via_tag = TAKE_PTR(tagged);
                *out = img;
                cric_error_free(perr);
                return 0;
            }
        }
    }
    if (is_hex(ref) && strlen(ref) >= 3 && strlen(ref) <= 64) {
        struct cric_image *found = NULL;
        for (size_t i = 0; i < s->n_images; i++)
            if (strncmp(hex_of(s->images[i]->id), ref, strlen(ref)) == 0) {
                if (found) {
                    cric_error_free(perr);
                    return cric_error_new(err, -EINVAL, "image ID prefix '%s' is ambiguous", ref);
                }
                found = s->images[i];
            }
        if (found) {
            cric_error_free(perr);
            *out = found;
            return 0;
        }
    }
    if (pr < 0) {
        int code = perr->code;
        if (err && !*err)
            *err = perr;
        else
            cric_error_free(perr);
        return code;
    }
    return -ENOENT;
}

int cric_image_store_lookup(struct cric_image_store *s, const char *ref, const struct cric_image **out,
                            cric_error **err)
{
    struct cric_image *img = NULL;
    int r = resolve(s, ref, &img, NULL, err);
    if (r < 0)
        return r;
    *out = img;
    return 0;
}

const struct cric_image *const *cric_image_store_list(struct cric_image_store *s, size_t *n)
{
    *n = s->n_images;
    return (const struct cric_image *const *)s->images;
}

int cric_image_store_layer_dirs(struct cric_image_store *s, const struct cric_image *img, char ***dirs,
                                cric_error **err)
{
    char **v = calloc(img->n_layers + 1, sizeof(char *));
    if (!v)
        return cric_error_sys(err, -ENOMEM, "layer dirs of '%s'", img->id);
    for (size_t i = 0; i < img->n_layers; i++)
        if (asprintf(&v[i], "%s/%s/diff", s->layers, hex_of(img->chain_ids[i])) < 0) {
            v[i] = NULL;
            cric_strv_free(v);
            return cric_error_sys(err, -ENOMEM, "layer dirs of '%s'", img->id);
        }
    *dirs = v;
    return 0;
}

static void recompute_pinned(struct cric_image_store *s)
{
    for (size_t i = 0; i < s->n_images; i++)
        s->images[i]->pinned = false;
    for (size_t i = 0; s->pinned && s->pinned[i]; i++) {
        struct cric_image *img = NULL;
        if (resolve(s, s->pinned[i], &img, NULL, NULL) == 0)
            img->pinned = true;
    }
}

int cric_image_store_set_pinned(struct cric_image_store *s, char *const *refs, cric_error **err)
{
    char **v = cric__strv_new();
    if (!v)
        return cric_error_sys(err, -ENOMEM, "pinned images");
    for (size_t i = 0; refs && refs[i]; i++)
        if (cric__strv_push(&v, refs[i]) < 0) {
            cric_strv_free(v);
            return cric_error_sys(err, -ENOMEM, "pinned images");
        }
    cric_strv_free(s->pinned);
    s->pinned = v;
    recompute_pinned(s);
    return 0;
}

static void trash_unused_layers(struct cric_image_store *s, char *const *chain_ids)
{
    if (s->pulls) /* a running helper may have found them; swept at cric_image_store_pulls_end */
        return;
    for (size_t i = 0; chain_ids && chain_ids[i]; i++)
        if (!layer_referenced(s, chain_ids[i]))
            trash_layer(s, chain_ids[i]);
}

int cric_image_store_remove(struct cric_image_store *s, const char *ref, cric_error **err)
{
    struct cric_image *img = NULL;
    _cleanup_free_ char *tag = NULL;
    int r = resolve(s, ref, &img, &tag, err);
    if (r < 0)
        return r;
    if (img->pinned)
        return cric_error_new(err, -EPERM, "image '%s' (%s) is pinned and cannot be removed", ref, img->id);
    if (tag && cric__strv_len(img->repo_tags) > 1) {
        char **old = img->repo_tags;
        char **nt = cric__strv_new();
        for (size_t i = 0; nt && old[i]; i++)
            if (strcmp(old[i], tag) != 0 && cric__strv_push(&nt, old[i]) < 0) {
                cric_strv_free(nt);
                nt = NULL;
            }
        if (!nt)
            return cric_error_sys(err, -ENOMEM, "untag '%s'", ref);
        img->repo_tags = nt;
        if ((r = record_write(s, img, err)) < 0) {
            img->repo_tags = old;
            cric_strv_free(nt);
            return r;
        }
        cric_strv_free(old);
        return 0;
    }
    if ((r = record_delete(s, img, err)) < 0)
        return r;
    size_t i = 0;
    while (s->images[i] != img)
        i++;
    memmove(&s->images[i], &s->images[i + 1], (s->n_images - i - 1) * sizeof(*s->images));
    s->n_images--;
    trash_unused_layers(s, img->chain_ids);
    _cleanup_free_ char *bp = NULL;
    if (!s->pulls && blob_path(s, img->id, &bp) == 0)
        unlink(bp);
    image_free(img);
    return 0;
}

int cric_image_store_commit(struct cric_image_store *s, const struct cric_image_commit *c,
                            const struct cric_image **out, cric_error **err)
{
    for (size_t i = 0; i < c->n_layers; i++)
        if (!cric_image_store_has_layer(s, c->chain_ids[i]))
            return cric_error_new(err, -ENOENT, "commit image %s: layer %s is missing", c->config_digest,
                                  c->chain_ids[i]);
    struct cric_image *img = find_id(s, c->config_digest);
    bool fresh = !img;
    int r;
    if (fresh) {
        img = calloc(1, sizeof(*img));
        if (!img || !(img->id = strdup(c->config_digest)) || !(img->repo_tags = cric__strv_new()) ||
            !(img->repo_digests = cric__strv_new()) || !(img->chain_ids = calloc(c->n_layers + 1, sizeof(char *)))) {
            image_free(img);
            return cric_error_sys(err, -ENOMEM, "commit image");
        }
        for (size_t i = 0; i < c->n_layers; i++)
            if (!(img->chain_ids[i] = strdup(c->chain_ids[i]))) {
                image_free(img);
                return cric_error_sys(err, -ENOMEM, "commit image");
            }
        if ((r = image_fill(s, img, err)) < 0) {
            image_free(img);
            return r;
        }
    }
    /* Build the new tag/digest lists on copies: the record on disk and in
     * memory change together or not at all. */
    char **tags = cric__strv_new(), **digests = cric__strv_new();
    bool oom = !tags || !digests;
    for (size_t i = 0; !oom && img->repo_tags[i]; i++)
        oom = cric__strv_push(&tags, img->repo_tags[i]) < 0;
    for (size_t i = 0; !oom && img->repo_digests[i]; i++)
        oom = cric__strv_push(&digests, img->repo_digests[i]) < 0;
    if (!oom && c->repo_tag && !cric__strv_contains(tags, c->repo_tag))
        oom = cric__strv_push(&tags, c->repo_tag) < 0;
    if (!oom && c->repo_digest && !cric__strv_contains(digests, c->repo_digest))
        oom = cric__strv_push(&digests, c->repo_digest) < 0;
    if (oom) {
        cric_strv_free(tags);
        cric_strv_free(digests);
        if (fresh)
            image_free(img);
        return cric_error_sys(err, -ENOMEM, "commit image");
    }
    char **old_tags = img->repo_tags, **old_digests = img->repo_digests;
    int64_t old_pulled = img->pulled_ns;
    img->repo_tags = tags;
    img->repo_digests = digests;
    img->pulled_ns = now_ns();
    if (!s->shared && (r = record_write(s, img, err)) < 0) {
        img->repo_tags = old_tags;
        img->repo_digests = old_digests;
        img->pulled_ns = old_pulled;
        cric_strv_free(tags);
        cric_strv_free(digests);
        if (fresh)
            image_free(img);
        return r;
    }
    cric_strv_free(old_tags);
    cric_strv_free(old_digests);
    if (fresh && images_push(s, img) < 0) {
        image_free(img);
        return cric_error_sys(err, -ENOMEM, "commit image");
    }
    /* The tag moves: other images lose it (their records are rewritten;
     * a crash in between is resolved at open by pulled_ns). */
    if (c->repo_tag && !s->shared)
        for (size_t i = 0; i < s->n_images; i++) {
            struct cric_image *o = s->images[i];
            if (o != img && cric__strv_contains(o->repo_tags, c->repo_tag)) {
                cric__strv_remove(o->repo_tags, c->repo_tag);
                record_write(s, o, NULL);
            }
        }
    recompute_pinned(s);
    *out = img;
    return 0;
}

/* ---- usage and gc (thread-pool safe: no store state) ---- */

static __thread uint64_t usage_bytes, usage_inodes;

static int usage_one(const char *fpath, const struct stat *sb, int typeflag, struct FTW *ftwbuf)
{
    (void)fpath;
    (void)typeflag;
    (void)ftwbuf;
    usage_bytes += (uint64_t)sb->st_blocks * 512;
    usage_inodes++;
    return 0;
}

int cric_image_store_usage(const char *images_dir, uint64_t *bytes, uint64_t *inodes, cric_error **err)
{
    usage_bytes = usage_inodes = 0;
    if (nftw(images_dir, usage_one, 64, FTW_PHYS | FTW_MOUNT) < 0)
        return cric_error_sys(err, -errno, "walk '%s'", images_dir);
    *bytes = usage_bytes;
    *inodes = usage_inodes;
    return 0;
}

int cric_image_store_gc(const char *trash_dir, cric_error **err)
{
    _cleanup_closedir_ DIR *d = opendir(trash_dir);
    if (!d)
        return errno == ENOENT ? 0 : cric_error_sys(err, -errno, "open '%s'", trash_dir);
    struct dirent *de;
    int ret = 0;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        _cleanup_free_ char *p = NULL;
        if (asprintf(&p, "%s/%s", trash_dir, de->d_name) < 0)
            return cric_error_sys(err, -ENOMEM, "clean '%s'", trash_dir);
        int r = cric_rm_rf(p, ret < 0 ? NULL : err);
        if (r < 0 && ret == 0)
            ret = r;
    }
    return ret;
}

int cric_image_to_json(const struct cric_image *img, char **out, cric_error **err)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    if (!g)
        return cric_error_sys(err, -ENOMEM, "render image");
    const struct cric_image_config *c = &img->config;
    yajl_gen_map_open(g);
    cric_yj_kv_str(g, "id", img->id);
    cric_yj_kv_strv(g, "repoTags", img->repo_tags);
    cric_yj_kv_strv(g, "repoDigests", img->repo_digests);
    cric_yj_kv_strv(g, "chainIDs", img->chain_ids);
    cric_yj_gen_str(g, "size");
    yajl_gen_integer(g, (long long)img->size);
    cric_yj_gen_str(g, "pinned");
    yajl_gen_bool(g, img->pinned);
    cric_yj_kv_str(g, "os", c->os);
    cric_yj_kv_str(g, "architecture", c->architecture);
    cric_yj_kv_str(g, "created", c->created);
    cric_yj_gen_str(g, "config");
    yajl_gen_map_open(g);
    cric_yj_kv_str(g, "User", c->user);
    cric_yj_kv_strv(g, "Env", c->env);
    cric_yj_kv_strv(g, "Entrypoint", c->entrypoint);
    cric_yj_kv_strv(g, "Cmd", c->cmd);
    cric_yj_kv_str(g, "WorkingDir", c->working_dir);
    cric_yj_kv_str(g, "StopSignal", c->stop_signal);
    cric_yj_kv_strv(g, "ExposedPorts", c->exposed_ports);
    cric_yj_kv_strv(g, "Volumes", c->volumes);
    cric_yj_kv_strv(g, "Labels", c->labels);
    yajl_gen_map_close(g);
    yajl_gen_map_close(g);
    int r = cric__gen_take(g, out);
    yajl_gen_free(g);
    return r < 0 ? cric_error_sys(err, r, "render image") : 0;
}
