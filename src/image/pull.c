#include "config.h"
#include "image/pull.h"
#include "image/http.h"
#include "image/json.h"
#include "image/manifest.h"
#include "image/ref.h"
#include "image/unpack.h"
#include "util/cleanup.h"
#include "util/fs.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ATTEMPTS 3
#define TOKEN_MAX (64u << 10)

struct waiter {
    cric_pull_cb cb;
    cric_pull_progress_cb progress;
    void *data;
    struct waiter *next;
};

struct endpoint {
    char *base;     /* "https://host:port" */
    char *host;     /* "host:port", for certs.d */
    bool insecure;
    char *ca, *cert, *key;  /* from certs.d, or NULL */
};

struct pull;

/* L_FOLLOW: another pull is fetching the same chain ID; this layer waits
 * for it (leader) instead of downloading it again. */
enum layer_state { L_NEW, L_QUEUED, L_DOWNLOADING, L_UNPACKING, L_FOLLOW, L_DONE };

struct layer {
    struct pull *pull;
    size_t idx;
    const struct cric_descriptor *desc;  /* in pull->manifest */
    char *chain_id;
    const char *diff_id;                 /* in pull->diff_ids */
    enum layer_state state;
    bool held;
    int attempt;
    int fd;
    char *blob_path;
    char *tmp_dir;
    struct cric_http_req *req;
    uv_work_t work;
    int work_r;
    cric_error *work_err;
    struct layer *qnext;
    struct layer *leader;     /* L_FOLLOW: the layer we wait for */
    struct layer *followers;  /* layers of other pulls waiting for this one */
    struct layer *fnext;
};

enum stage { S_MANIFEST, S_SUBMANIFEST, S_CONFIG, S_TOKEN, S_LAYERS };

struct pull {
    struct cric_puller *p;
    struct pull *next;
    char *key;        /* normalised reference */
    char *cred_key;   /* identity of the credentials (memory only) */
    struct cric_image_ref ref;
    char *repo;
    struct endpoint *eps;
    size_t n_eps, ep;
    char *basic;      /* base64 user:password or NULL */
    char *identity;   /* OAuth2 refresh token or NULL */
    char *bearer;     /* token for the current endpoint */
    bool use_basic;
    bool tried_auth;
    enum stage stage, stage_after_token;
    struct cric_http_req *req;
    int attempt;
    char *top_digest;  /* digest the reference resolved to (repo digest) */
    char *want_digest; /* digest expected for the current manifest request */
    struct cric_manifest *index, *manifest;
    char *config;
    size_t config_len;
    char **diff_ids;
    struct layer *layers;
    size_t n_layers, remaining;
    unsigned outstanding;  /* thread-pool jobs */
    bool failed;
    struct waiter *waiters;
    unsigned seq;
};

struct cric_puller {
    uv_loop_t *loop;
    struct cric_http *http;
    struct cric_image_store *store;
    const struct cric_config *cfg;
    struct pull *pulls;
    struct layer *queue, **queue_tail;
    unsigned active;
    unsigned jobs;       /* thread-pool jobs in flight (unpack, gc) */
    bool closing;
    unsigned seq;
    void (*closed)(void *);
    void *closed_data;
};

static void pull_fail(struct pull *pl, cric_error *e);
static void manifest_start(struct pull *pl);
static void pull_maybe_free(struct pull *pl);
static void puller_maybe_free(struct cric_puller *p);

/* ---- helpers ---- */

static char *b64(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    if (out)
        EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n);
    return out;
}

static char *pct_encode(const char *s)
{
    char *out = malloc(strlen(s) * 3 + 1), *w = out;
    if (!out)
        return NULL;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')
            *w++ = (char)c;
        else
            w += sprintf(w, "%%%02X", c);
    }
    *w = '\0';
    return out;
}

/* A short, printable excerpt of a registry's answer for error messages. */
static void excerpt(const char *body, char *out, size_t n)
{
    size_t i = 0;
    for (; body && body[i] && i + 1 < n; i++)
        out[i] = isprint((unsigned char)body[i]) ? body[i] : ' ';
    out[i] = '\0';
}

static int chain_ids(char **diff_ids, size_t n, char ***out)
{
    char **v = calloc(n + 1, sizeof(char *));
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (i == 0) {
            v[i] = strdup(diff_ids[0]);
        } else {
            _cleanup_free_ char *in = NULL;
            unsigned char md[32];
            unsigned mdlen;
            if (asprintf(&in, "%s %s", v[i - 1], diff_ids[i]) < 0) {
                cric_strv_free(v);
                return -ENOMEM;
            }
            EVP_Digest(in, strlen(in), md, &mdlen, EVP_sha256(), NULL);
            v[i] = malloc(72);
            if (v[i]) {
                strcpy(v[i], "sha256:");
                for (int j = 0; j < 32; j++)
                    sprintf(v[i] + 7 + 2 * j, "%02x", md[j]);
            }
        }
        if (!v[i]) {
            cric_strv_free(v);
            return -ENOMEM;
        }
    }
    *out = v;
    return 0;
}

static const struct cric_registry_config *registry_config(const struct cric_config *cfg, const char *host)
{
    for (size_t i = 0; i < cfg->images_registries_len; i++)
        if (cfg->images_registries[i].host && strcmp(cfg->images_registries[i].host, host) == 0)
            return &cfg->images_registries[i];
    return NULL;
}

static char *certs_file(const struct cric_config *cfg, const char *host, const char *name)
{
    if (!cfg->images_certs_dir || !*cfg->images_certs_dir)
        return NULL;
    char *p = NULL;
    if (asprintf(&p, "%s/%s/%s", cfg->images_certs_dir, host, name) < 0)
        return NULL;
    if (access(p, R_OK) == 0)
        return p;
    free(p);
    return NULL;
}

static int add_endpoint(struct pull *pl, const char *url_or_host, bool insecure)
{
    struct endpoint *n = realloc(pl->eps, (pl->n_eps + 1) * sizeof(*n));
    if (!n)
        return -ENOMEM;
    pl->eps = n;
    struct endpoint *e = &n[pl->n_eps];
    memset(e, 0, sizeof(*e));
    const char *sep = strstr(url_or_host, "://");
    if (sep) {
        e->base = strdup(url_or_host);
        e->host = strdup(sep + 3);
    } else {
        const char *h = strcmp(url_or_host, "docker.io") == 0 ? "registry-1.docker.io" : url_or_host;
        if (asprintf(&e->base, "%s://%s", insecure ? "http" : "https", h) < 0)
            e->base = NULL;
        e->host = strdup(url_or_host);
    }
    if (!e->base || !e->host) {
        free(e->base);
        free(e->host);
        return -ENOMEM;
    }
    size_t bl = strlen(e->base);
    while (bl > 0 && e->base[bl - 1] == '/')
        e->base[--bl] = '\0';
    char *slash = strchr(e->host, '/');
    if (slash)
        *slash = '\0';
    /* "insecure" only ever means plain HTTP: an https:// endpoint, mirror or
     * not, always has its certificate verified. */
    e->insecure = false;
    e->ca = certs_file(pl->p->cfg, e->host, "ca.crt");
    e->cert = certs_file(pl->p->cfg, e->host, "client.cert");
    e->key = certs_file(pl->p->cfg, e->host, "client.key");
    pl->n_eps++;
    return 0;
}

/* Credentials: the request's AuthConfig, else the auth file's entry. */
static int load_credentials(struct pull *pl, const struct cric_pull_auth *a, cric_error **err)
{
    if (a && a->registry_token && *a->registry_token) {
        pl->bearer = strdup(a->registry_token);
        pl->tried_auth = false;
    }
    if (a && a->identity_token && *a->identity_token) {
        pl->identity = strdup(a->identity_token);
        return pl->identity ? 0 : -ENOMEM;
    }
    if (a && a->username && *a->username) {
        _cleanup_free_ char *up = NULL;
        if (asprintf(&up, "%s:%s", a->username, a->password ? a->password : "") < 0)
            return -ENOMEM;
        pl->basic = b64(up);
        explicit_bzero(up, strlen(up));
        return pl->basic ? 0 : -ENOMEM;
    }
    if (a && a->auth && *a->auth) {
        pl->basic = strdup(a->auth);
        return pl->basic ? 0 : -ENOMEM;
    }
    const char *file = pl->p->cfg->images_auth_file;
    if (!file || !*file || (a && a->registry_token && *a->registry_token))
        return 0;
    _cleanup_free_ char *data = NULL;
    size_t len;
    if (cric_read_file(file, 1 << 20, &data, &len, NULL) < 0)
        return 0; /* no file: anonymous */
    yajl_val root = NULL;
    /* The message must not quote the file: it holds secrets. */
    if (cric__json_parse(data, len, "credentials file", &root, NULL) < 0)
        return cric_error_new(err, -EINVAL, "credentials file '%s' is not valid JSON", file);
    yajl_val auths = cric__json_get(root, "auths");
    yajl_val ent = cric__json_get(auths, pl->ref.domain);
    if (!ent && strcmp(pl->ref.domain, "docker.io") == 0)
        ent = cric__json_get(auths, "https://index.docker.io/v1/");
    const char *auth = cric__json_str(ent, "auth"), *u = cric__json_str(ent, "username"),
               *pw = cric__json_str(ent, "password");
    int r = 0;
    if (auth) {
        if (!(pl->basic = strdup(auth)))
            r = -ENOMEM;
    } else if (u) {
        _cleanup_free_ char *up = NULL;
        if (asprintf(&up, "%s:%s", u, pw ? pw : "") < 0 || !(pl->basic = b64(up)))
            r = -ENOMEM;
        if (up)
            explicit_bzero(up, strlen(up));
    }
    explicit_bzero(data, len);
    yajl_tree_free(root);
    return r;
}

static void pull_free(struct pull *pl)
{
    cric_image_ref_clear(&pl->ref);
    free(pl->key);
    if (pl->cred_key)
        explicit_bzero(pl->cred_key, strlen(pl->cred_key));
    free(pl->cred_key);
    free(pl->repo);
    for (size_t i = 0; i < pl->n_eps; i++) {
        free(pl->eps[i].base);
        free(pl->eps[i].host);
        free(pl->eps[i].ca);
        free(pl->eps[i].cert);
        free(pl->eps[i].key);
    }
    free(pl->eps);
    if (pl->basic)
        explicit_bzero(pl->basic, strlen(pl->basic));
    free(pl->basic);
    if (pl->identity)
        explicit_bzero(pl->identity, strlen(pl->identity));
    free(pl->identity);
    if (pl->bearer)
        explicit_bzero(pl->bearer, strlen(pl->bearer));
    free(pl->bearer);
    cric_http_req_free(pl->req);
    free(pl->top_digest);
    free(pl->want_digest);
    cric_manifest_free(pl->index);
    cric_manifest_free(pl->manifest);
    free(pl->config);
    cric_strv_free(pl->diff_ids);
    for (size_t i = 0; i < pl->n_layers; i++) {
        struct layer *l = &pl->layers[i];
        free(l->chain_id);
        free(l->blob_path);
        free(l->tmp_dir);
        cric_error_free(l->work_err);
    }
    free(pl->layers);
    while (pl->waiters) {
        struct waiter *w = pl->waiters;
        pl->waiters = w->next;
        free(w);
    }
    free(pl);
}

static void pull_unlink(struct pull *pl)
{
    for (struct pull **pp = &pl->p->pulls; *pp; pp = &(*pp)->next)
        if (*pp == pl) {
            *pp = pl->next;
            break;
        }
}

static void notify(struct pull *pl, const struct cric_image *img, const cric_error *e)
{
    struct waiter *w = pl->waiters;
    pl->waiters = NULL;
    while (w) {
        struct waiter *next = w->next;
        w->cb(w->data, img, e);
        free(w);
        w = next;
    }
}

/* ---- gc on the thread pool (counted: the puller is freed after it) ---- */

static void gc_done(void *data)
{
    struct cric_puller *p = data;
    p->jobs--;
    puller_maybe_free(p);
}

static void schedule_gc(struct cric_puller *p)
{
    if (cric_image_store_gc_queue(p->loop, p->store, gc_done, p) == 0)
        p->jobs++;
}

/* ---- layer downloads ---- */

static void start_downloads(struct cric_puller *p);

static void layer_cancel(struct layer *l)
{
    if (l->req) {
        cric_http_req_free(l->req);
        l->req = NULL;
        l->pull->p->active--;
    }
    if (l->fd >= 0) {
        close(l->fd);
        l->fd = -1;
    }
    if (l->blob_path)
        unlink(l->blob_path);
}

static void queue_remove(struct cric_puller *p, struct pull *pl)
{
    struct layer **pp = &p->queue;
    p->queue_tail = &p->queue;
    while (*pp) {
        if ((*pp)->pull == pl)
            *pp = (*pp)->qnext;
        else {
            pp = &(*pp)->qnext;
            p->queue_tail = pp;
        }
    }
}

static void queue_layer(struct cric_puller *p, struct layer *l)
{
    l->state = L_QUEUED;
    l->qnext = NULL;
    *p->queue_tail = l;
    p->queue_tail = &l->qnext;
}

static void unfollow(struct layer *l)
{
    if (!l->leader)
        return;
    for (struct layer **pp = &l->leader->followers; *pp; pp = &(*pp)->fnext)
        if (*pp == l) {
            *pp = l->fnext;
            break;
        }
    l->leader = NULL;
    l->fnext = NULL;
}

/* The leader's pull failed: its followers fetch the layer themselves. */
static void requeue_followers(struct cric_puller *p, struct layer *l)
{
    while (l->followers) {
        struct layer *f = l->followers;
        l->followers = f->fnext;
        f->fnext = NULL;
        f->leader = NULL;
        queue_layer(p, f);
    }
}

static void pull_fail(struct pull *pl, cric_error *e)
{
    if (pl->failed) {
        cric_error_free(e);
        return;
    }
    pl->failed = true;
    struct cric_puller *p = pl->p;
    cric_error_prefix(&e, "pull '%s'", pl->key);
    cric_http_req_free(pl->req);
    pl->req = NULL;
    queue_remove(p, pl);
    for (size_t i = 0; i < pl->n_layers; i++) {
        layer_cancel(&pl->layers[i]);
        unfollow(&pl->layers[i]);
        requeue_followers(p, &pl->layers[i]);
    }
    pull_unlink(pl);
    notify(pl, NULL, e);
    cric_error_free(e);
    start_downloads(p);
    pull_maybe_free(pl);
}

/* Frees a finished or failed pull once no thread-pool job refers to it;
 * layers it added but no image uses go to the trash. */
static void pull_maybe_free(struct pull *pl)
{
    if (pl->outstanding)
        return;
    struct cric_puller *p = pl->p;
    bool trashed = false;
    for (size_t i = 0; i < pl->n_layers; i++)
        if (pl->layers[i].held) {
            cric_image_store_release_layer(p->store, pl->layers[i].chain_id);
            pl->layers[i].held = false;
            trashed = true;
        }
    pull_free(pl);
    (void)trashed;
    schedule_gc(p); /* failed unpacks and released layers sit in the trash */
    puller_maybe_free(p);
}

static void pull_commit(struct pull *pl)
{
    struct cric_puller *p = pl->p;
    cric_error *e = NULL;
    char **chains = calloc(pl->n_layers + 1, sizeof(char *));
    if (!chains) {
        pull_fail(pl, (cric_error_new(&e, -ENOMEM, "out of memory"), e));
        return;
    }
    for (size_t i = 0; i < pl->n_layers; i++)
        chains[i] = pl->layers[i].chain_id;
    _cleanup_free_ char *tagged = cric_image_ref_tagged(&pl->ref), *rd = NULL;
    if (asprintf(&rd, "%s@%s", pl->repo, pl->top_digest) < 0)
        rd = NULL;
    struct cric_image_commit c = {pl->manifest->config.digest, tagged, rd, chains, pl->n_layers};
    const struct cric_image *img = NULL;
    int r = cric_image_store_put_blob(p->store, pl->manifest->config.digest, pl->config, pl->config_len, &e);
    if (r == 0)
        r = cric_image_store_commit(p->store, &c, &img, &e);
    free(chains);
    if (r < 0) {
        pull_fail(pl, e);
        return;
    }
    pull_unlink(pl);
    notify(pl, img, NULL);
    pull_maybe_free(pl);
}

static void layer_done(struct layer *l)
{
    struct pull *pl = l->pull;
    l->state = L_DONE;
    if (--pl->remaining == 0 && !pl->failed)
        pull_commit(pl);
}

static void unpack_work(uv_work_t *w)
{
    struct layer *l = w->data;
    uint64_t size = 0;
    l->work_r = cric_layer_unpack(l->blob_path, l->tmp_dir, l->diff_id, &size, &l->work_err);
    unlink(l->blob_path);
    if (l->work_r < 0)
        cric_rm_rf(l->tmp_dir, NULL);
}

static void unpack_after(uv_work_t *w, int status)
{
    struct layer *l = w->data;
    struct pull *pl = l->pull;
    struct cric_puller *p = pl->p;
    pl->outstanding--;
    p->jobs--;
    if (pl->failed) {
        if (l->work_r == 0)
            cric_image_store_discard(p->store, l->tmp_dir, NULL);
        pull_maybe_free(pl);
        return;
    }
    if (l->work_r < 0) {
        cric_error *e = TAKE_PTR(l->work_err);
        cric_error_prefix(&e, "layer %s", l->desc->digest);
        pull_fail(pl, e);
        return;
    }
    cric_error *e = NULL;
    if (cric_image_store_add_layer(p->store, l->chain_id, l->tmp_dir, &e) < 0) {
        pull_fail(pl, e);
        return;
    }
    l->held = true;
    /* Followers first: layer_done() may finish and free this pull. */
    while (l->followers) {
        struct layer *f = l->followers;
        l->followers = f->fnext;
        f->fnext = NULL;
        f->leader = NULL;
        if (cric_image_store_hold_layer(p->store, f->chain_id)) {
            f->held = true;
            layer_done(f);
        } else {
            queue_layer(p, f);
        }
    }
    start_downloads(p);
    layer_done(l);
}

static void layer_download_start(struct layer *l);

static void layer_progress(void *data, uint64_t bytes)
{
    struct layer *l = data;
    for (struct waiter *w = l->pull->waiters; w; w = w->next)
        if (w->progress)
            w->progress(w->data, l->desc->digest, bytes, (uint64_t)l->desc->size);
}

static void layer_http_done(struct cric_http_req *req, void *data)
{
    struct layer *l = data;
    struct pull *pl = l->pull;
    struct cric_puller *p = pl->p;
    const struct cric_http_result *res = cric_http_result(req);
    cric_error *e = NULL;
    bool retry = false;
    const char *d = l->desc->digest;
    if (res->too_large)
        cric_error_new(&e, -EBADMSG, "layer blob %s: the registry sent more than the %lld bytes of its descriptor", d,
                       (long long)l->desc->size);
    else if (res->write_failed)
        cric_error_new(&e, -EIO, "layer blob %s: writing '%s' failed", d, l->blob_path);
    else if (res->curl_code) {
        cric_error_new(&e, -EIO, "layer blob %s: download from %s failed: %s", d, pl->eps[pl->ep].host, res->error);
        retry = true;
    } else if (res->status == 401 || res->status == 403) {
        cric_error_new(&e, -EACCES, "layer blob %s: registry %s refused access (HTTP %ld)", d, pl->eps[pl->ep].host,
                       res->status);
    } else if (res->status != 200) {
        char ex[160];
        excerpt(res->body, ex, sizeof(ex));
        cric_error_new(&e, res->status == 404 ? -ENOENT : -EPROTO, "layer blob %s: registry %s answered HTTP %ld: %s",
                       d, pl->eps[pl->ep].host, res->status, ex);
        retry = res->status >= 500 || res->status == 429;
    } else if (res->body_len != (uint64_t)l->desc->size) {
        cric_error_new(&e, -EBADMSG, "layer blob %s: got %zu bytes, its descriptor says %lld", d, res->body_len,
                       (long long)l->desc->size);
        retry = true;
    } else if (strcmp(res->digest, d) != 0) {
        cric_error_new(&e, -EBADMSG, "layer blob %s: content digest %s does not match", d, res->digest);
    }
    cric_http_req_free(l->req);
    l->req = NULL;
    p->active--;
    close(l->fd);
    l->fd = -1;
    if (e && retry && ++l->attempt < ATTEMPTS) {
        cric_error_free(e);
        unlink(l->blob_path);
        layer_download_start(l);
        start_downloads(p);
        return;
    }
    if (e) {
        unlink(l->blob_path);
        pull_fail(pl, e);
        return;
    }
    start_downloads(p);
    l->state = L_UNPACKING;
    if (asprintf(&l->tmp_dir, "%s/%d-%u-%zu.unpack", cric_image_store_tmp_dir(p->store), (int)getpid(), pl->seq,
                 l->idx) < 0) {
        pull_fail(pl, (cric_error_new(&e, -ENOMEM, "out of memory"), e));
        return;
    }
    l->work.data = l;
    if (uv_queue_work(p->loop, &l->work, unpack_work, unpack_after) < 0) {
        pull_fail(pl, (cric_error_new(&e, -EIO, "cannot queue the layer unpack"), e));
        return;
    }
    pl->outstanding++;
    p->jobs++;
}

static char *auth_header(struct pull *pl)
{
    char *h = NULL;
    if (pl->bearer) {
        if (asprintf(&h, "Bearer %s", pl->bearer) < 0)
            h = NULL;
    } else if (pl->use_basic && pl->basic) {
        if (asprintf(&h, "Basic %s", pl->basic) < 0)
            h = NULL;
    }
    return h;
}

static void fill_tls(struct endpoint *ep, struct cric_http_opts *o)
{
    o->tls.ca_file = ep->ca;
    o->tls.client_cert = ep->cert;
    o->tls.client_key = ep->key;
    o->tls.insecure = ep->insecure;
}

/* Starts (or restarts) one layer's download; counts towards p->active. */
static void layer_download_start(struct layer *l)
{
    struct pull *pl = l->pull;
    struct cric_puller *p = pl->p;
    cric_error *e = NULL;
    struct endpoint *ep = &pl->eps[pl->ep];
    if (!l->blob_path &&
        asprintf(&l->blob_path, "%s/%d-%u-%zu.blob", cric_image_store_tmp_dir(p->store), (int)getpid(), pl->seq,
                 l->idx) < 0) {
        l->blob_path = NULL;
        pull_fail(pl, (cric_error_new(&e, -ENOMEM, "out of memory"), e));
        return;
    }
    l->fd = open(l->blob_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (l->fd < 0) {
        cric_error_sys(&e, -errno, "create '%s'", l->blob_path);
        pull_fail(pl, e);
        return;
    }
    _cleanup_free_ char *url = NULL, *auth = auth_header(pl);
    if (asprintf(&url, "%s/v2/%s/blobs/%s", ep->base, pl->ref.path, l->desc->digest) < 0) {
        pull_fail(pl, (cric_error_new(&e, -ENOMEM, "out of memory"), e));
        return;
    }
    struct cric_http_opts o = {.url = url, .authorization = auth, .fd = l->fd, .expect_size = l->desc->size,
                               .sha256 = true, .low_speed_timeout_s = (unsigned)p->cfg->images_pull_timeout,
                               .progress = layer_progress};
    fill_tls(ep, &o);
    if (cric_http_get(p->http, &o, layer_http_done, l, &l->req, &e) < 0) {
        pull_fail(pl, e);
        return;
    }
    l->state = L_DOWNLOADING;
    p->active++;
}

static void start_downloads(struct cric_puller *p)
{
    unsigned max = p->cfg->images_max_concurrent_downloads ? (unsigned)p->cfg->images_max_concurrent_downloads : 3;
    while (!p->closing && p->active < max && p->queue) {
        struct layer *l = p->queue;
        p->queue = l->qnext;
        if (!p->queue)
            p->queue_tail = &p->queue;
        l->qnext = NULL;
        layer_download_start(l);
    }
}

/* A layer with this chain ID that another pull is fetching right now. */
static struct layer *find_leader(struct cric_puller *p, struct pull *self, const char *chain_id)
{
    for (struct pull *o = p->pulls; o; o = o->next) {
        if (o == self || o->failed || o->stage != S_LAYERS)
            continue;
        for (size_t i = 0; i < o->n_layers; i++) {
            struct layer *l = &o->layers[i];
            if ((l->state == L_QUEUED || l->state == L_DOWNLOADING || l->state == L_UNPACKING) &&
                strcmp(l->chain_id, chain_id) == 0)
                return l;
        }
    }
    return NULL;
}

static void layers_start(struct pull *pl)
{
    struct cric_puller *p = pl->p;
    cric_error *e = NULL;
    char **chains = NULL;
    if (chain_ids(pl->diff_ids, pl->manifest->n_layers, &chains) < 0) {
        pull_fail(pl, (cric_error_new(&e, -ENOMEM, "out of memory"), e));
        return;
    }
    pl->n_layers = pl->manifest->n_layers;
    pl->layers = calloc(pl->n_layers ? pl->n_layers : 1, sizeof(*pl->layers));
    if (!pl->layers) {
        cric_strv_free(chains);
        pull_fail(pl, (cric_error_new(&e, -ENOMEM, "out of memory"), e));
        return;
    }
    for (size_t i = 0; i < pl->n_layers; i++) {
        struct layer *l = &pl->layers[i];
        l->pull = pl;
        l->idx = i;
        l->fd = -1;
        l->desc = &pl->manifest->layers[i];
        l->diff_id = pl->diff_ids[i];
        l->chain_id = TAKE_PTR(chains[i]);
    }
    free(chains);
    pl->stage = S_LAYERS;
    pl->remaining = pl->n_layers;
    for (size_t i = 0; i < pl->n_layers; i++) {
        struct layer *l = &pl->layers[i];
        bool dup = false;
        for (size_t j = 0; j < i; j++)
            if (strcmp(pl->layers[j].chain_id, l->chain_id) == 0)
                dup = true;
        if (!dup && cric_image_store_hold_layer(p->store, l->chain_id)) {
            l->held = true;
            l->state = L_DONE;
            pl->remaining--;
        } else if (dup) {
            /* identical chains only happen with identical lower stacks: never */
            l->state = L_DONE;
            pl->remaining--;
        } else if ((l->leader = find_leader(p, pl, l->chain_id))) {
            l->state = L_FOLLOW;
            l->fnext = l->leader->followers;
            l->leader->followers = l;
        } else {
            queue_layer(p, l);
        }
    }
    if (pl->remaining == 0) {
        pull_commit(pl);
        return;
    }
    start_downloads(p);
}

/* ---- manifests, config, token ---- */

static void request_start(struct pull *pl, const char *url, size_t max, int64_t expect, bool no_auth,
                          const char *basic_override);
static void request_start_form(struct pull *pl, const char *url, const char *form);

static int parse_challenge(const char *h, char **realm, char **service, char **scope)
{
    /* Bearer realm="...",service="...",scope="..." */
    const char *p = h + 6;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *eq = strchr(p, '=');
        if (!eq)
            break;
        size_t kl = (size_t)(eq - p);
        const char *v = eq + 1;
        char *val;
        if (*v == '"') {
            const char *end = strchr(v + 1, '"');
            if (!end)
                return -EINVAL;
            val = strndup(v + 1, (size_t)(end - v - 1));
            p = end + 1;
        } else {
            const char *end = strchr(v, ',');
            if (!end)
                end = v + strlen(v);
            val = strndup(v, (size_t)(end - v));
            p = end;
        }
        if (!val)
            return -ENOMEM;
        char **dst = kl == 5 && strncasecmp(eq - 5, "realm", 5) == 0     ? realm
                     : kl == 7 && strncasecmp(eq - 7, "service", 7) == 0 ? service
                     : kl == 5 && strncasecmp(eq - 5, "scope", 5) == 0   ? scope
                                                                         : NULL;
        if (dst) {
            free(*dst);
            *dst = val;
        } else {
            free(val);
        }
    }
    return *realm ? 0 : -EINVAL;
}

static void token_start(struct pull *pl, const char *challenge)
{
    cric_error *e = NULL;
    _cleanup_free_ char *realm = NULL, *service = NULL, *scope = NULL, *url = NULL, *q1 = NULL, *q2 = NULL,
                        *want = NULL;
    if (parse_challenge(challenge, &realm, &service, &scope) < 0) {
        pull_fail(pl, (cric_error_new(&e, -EPROTO, "registry %s sent an invalid Bearer challenge",
                                      pl->eps[pl->ep].host),
                       e));
        return;
    }
    if (asprintf(&want, "repository:%s:pull", pl->ref.path) < 0)
        goto oom;
    q1 = pct_encode(service ? service : "");
    q2 = pct_encode(want);
    if (!q1 || !q2)
        goto oom;
    pl->stage_after_token = pl->stage;
    pl->stage = S_TOKEN;
    if (pl->identity) {
        /* OAuth2 refresh-token grant (docker's identity token) */
        _cleanup_free_ char *rt = pct_encode(pl->identity), *form = NULL;
        if (!rt || asprintf(&form, "grant_type=refresh_token&client_id=cricd&service=%s&scope=%s&refresh_token=%s",
                            q1, q2, rt) < 0)
            goto oom;
        explicit_bzero(rt, strlen(rt));
        request_start_form(pl, realm, form);
        explicit_bzero(form, strlen(form));
        return;
    }
    if (asprintf(&url, "%s%sservice=%s&scope=%s", realm, strchr(realm, '?') ? "&" : "?", q1, q2) < 0)
        goto oom;
    request_start(pl, url, TOKEN_MAX, 0, true, pl->basic);
    return;
oom:
    pull_fail(pl, (cric_error_new(&e, -ENOMEM, "out of memory"), e));
}

static void manifest_url_start(struct pull *pl, const char *tag_or_digest)
{
    _cleanup_free_ char *url = NULL;
    if (asprintf(&url, "%s/v2/%s/manifests/%s", pl->eps[pl->ep].base, pl->ref.path, tag_or_digest) < 0) {
        cric_error *e = NULL;
        pull_fail(pl, (cric_error_new(&e, -ENOMEM, "out of memory"), e));
        return;
    }
    request_start(pl, url, CRIC_MANIFEST_MAX_BYTES, 0, false, NULL);
}

static void config_start(struct pull *pl)
{
    _cleanup_free_ char *url = NULL;
    pl->stage = S_CONFIG;
    pl->attempt = 0;
    if (asprintf(&url, "%s/v2/%s/blobs/%s", pl->eps[pl->ep].base, pl->ref.path, pl->manifest->config.digest) < 0) {
        cric_error *e = NULL;
        pull_fail(pl, (cric_error_new(&e, -ENOMEM, "out of memory"), e));
        return;
    }
    request_start(pl, url, CRIC_CONFIG_MAX_BYTES, pl->manifest->config.size, false, NULL);
}

/* The endpoint failed before layers started: try the next one (mirrors come
 * first, the upstream last) or give up with this error. */
static void endpoint_failed(struct pull *pl, cric_error *e)
{
    if (pl->ep + 1 < pl->n_eps) {
        cric_error_free(e);
        pl->ep++;
        if (pl->bearer)
            explicit_bzero(pl->bearer, strlen(pl->bearer));
        free(pl->bearer);
        pl->bearer = NULL;
        pl->use_basic = false;
        pl->tried_auth = false;
        cric_manifest_free(pl->index);
        cric_manifest_free(pl->manifest);
        pl->index = pl->manifest = NULL;
        free(pl->top_digest);
        pl->top_digest = NULL;
        free(pl->config);
        pl->config = NULL;
        manifest_start(pl);
        return;
    }
    pull_fail(pl, e);
}

static void got_manifest(struct pull *pl, const struct cric_http_result *res)
{
    cric_error *e = NULL;
    if (pl->want_digest && strcmp(res->digest, pl->want_digest) != 0) {
        cric_error_new(&e, -EBADMSG, "manifest from %s has digest %s, not the requested %s", pl->eps[pl->ep].host,
                       res->digest, pl->want_digest);
        endpoint_failed(pl, e);
        return;
    }
    struct cric_manifest *m = NULL;
    if (cric_manifest_parse(res->body, res->body_len, res->content_type, &m, &e) < 0) {
        cric_error_prefix(&e, "registry %s", pl->eps[pl->ep].host);
        endpoint_failed(pl, e);
        return;
    }
    if (pl->stage == S_MANIFEST) {
        free(pl->top_digest);
        pl->top_digest = strdup(res->digest);
    }
    if (m->kind == CRIC_MANIFEST_INDEX) {
        if (pl->stage == S_SUBMANIFEST) {
            cric_manifest_free(m);
            pull_fail(pl, (cric_error_new(&e, -EPROTO, "manifest list points to another manifest list"), e));
            return;
        }
        const char *os, *arch, *variant;
        cric_platform_host(&os, &arch, &variant);
        int i = cric_manifest_choose(m, os, arch, variant, &e);
        if (i < 0) {
            cric_manifest_free(m);
            pull_fail(pl, e);
            return;
        }
        pl->index = m;
        free(pl->want_digest);
        pl->want_digest = strdup(m->manifests[i].digest);
        pl->stage = S_SUBMANIFEST;
        pl->attempt = 0;
        manifest_url_start(pl, m->manifests[i].digest);
        return;
    }
    pl->manifest = m;
    config_start(pl);
}

static void got_config(struct pull *pl, const struct cric_http_result *res)
{
    cric_error *e = NULL;
    if (strcmp(res->digest, pl->manifest->config.digest) != 0) {
        cric_error_new(&e, -EBADMSG, "image config blob %s: content digest %s does not match",
                       pl->manifest->config.digest, res->digest);
        pull_fail(pl, e);
        return;
    }
    struct cric_image_config c;
    if (cric_image_config_parse(res->body, res->body_len, &c, &pl->diff_ids, &e) < 0) {
        pull_fail(pl, e);
        return;
    }
    cric_image_config_clear(&c);
    if (cric__strv_len(pl->diff_ids) != pl->manifest->n_layers) {
        cric_error_new(&e, -EPROTO, "image config lists %zu layers, the manifest %zu", cric__strv_len(pl->diff_ids),
                       pl->manifest->n_layers);
        pull_fail(pl, e);
        return;
    }
    pl->config = malloc(res->body_len ? res->body_len : 1);
    if (!pl->config) {
        pull_fail(pl, (cric_error_new(&e, -ENOMEM, "out of memory"), e));
        return;
    }
    memcpy(pl->config, res->body, res->body_len);
    pl->config_len = res->body_len;
    layers_start(pl);
}

static void got_token(struct pull *pl, const struct cric_http_result *res)
{
    cric_error *e = NULL;
    yajl_val root = NULL;
    if (cric__json_parse(res->body, res->body_len, "token response", &root, NULL) < 0) {
        pull_fail(pl, (cric_error_new(&e, -EPROTO, "token server of %s sent invalid JSON", pl->eps[pl->ep].host), e));
        return;
    }
    const char *tok = cric__json_str(root, "token");
    if (!tok || !*tok)
        tok = cric__json_str(root, "access_token");
    if (!tok || !*tok) {
        yajl_tree_free(root);
        pull_fail(pl, (cric_error_new(&e, -EPROTO, "token server of %s sent no token", pl->eps[pl->ep].host), e));
        return;
    }
    free(pl->bearer);
    pl->bearer = strdup(tok);
    yajl_tree_free(root);
    pl->stage = pl->stage_after_token;
    pl->attempt = 0;
    if (pl->stage == S_CONFIG)
        config_start(pl);
    else if (pl->stage == S_SUBMANIFEST)
        manifest_url_start(pl, pl->want_digest);
    else
        manifest_start(pl);
}

static void request_done(struct cric_http_req *req, void *data)
{
    struct pull *pl = data;
    const struct cric_http_result *res = cric_http_result(req);
    struct endpoint *ep = &pl->eps[pl->ep];
    cric_error *e = NULL;
    pl->req = NULL;
    const char *what = pl->stage == S_TOKEN ? "token request" : pl->stage == S_CONFIG ? "image config" : "manifest";
    if (res->curl_code || res->status >= 500 || res->status == 429) {
        if (res->curl_code)
            cric_error_new(&e, -EHOSTUNREACH, "%s from %s: %s", what, ep->host, res->too_large ? "response too large" : res->error);
        else
            cric_error_new(&e, -EIO, "%s from %s: HTTP %ld", what, ep->host, res->status);
        if (!res->too_large && ++pl->attempt < ATTEMPTS) {
            cric_error_free(e);
            /* the same request again */
            enum stage st = pl->stage;
            cric_http_req_free(req);
            if (st == S_CONFIG)
                config_start(pl);
            else if (st == S_SUBMANIFEST)
                manifest_url_start(pl, pl->want_digest);
            else if (st == S_MANIFEST)
                manifest_start(pl);
            else {
                pull_fail(pl, (cric_error_new(&e, -EHOSTUNREACH, "token server of %s unreachable", ep->host), e));
            }
            return;
        }
        cric_http_req_free(req);
        cric_error_prefix(&e, "after %d attempts", ATTEMPTS);
        if (pl->stage == S_MANIFEST)
            endpoint_failed(pl, e);
        else
            pull_fail(pl, e);
        return;
    }
    if (pl->stage == S_TOKEN) {
        if (res->status == 401 || res->status == 403)
            cric_error_new(&e, -EACCES, "registry %s: the token server rejected the %s (HTTP %ld)", ep->host,
                           pl->basic || pl->identity ? "credentials" : "anonymous request", res->status);
        else if (res->status != 200)
            cric_error_new(&e, -EPROTO, "registry %s: token server answered HTTP %ld", ep->host, res->status);
        if (e) {
            cric_http_req_free(req);
            pull_fail(pl, e);
            return;
        }
        got_token(pl, res);
        cric_http_req_free(req);
        return;
    }
    if (res->status == 401) {
        const char *ch = res->www_authenticate;
        if (!pl->tried_auth && ch && strncasecmp(ch, "Bearer ", 7) == 0) {
            pl->tried_auth = true;
            _cleanup_free_ char *c = strdup(ch);
            cric_http_req_free(req);
            if (c)
                token_start(pl, c);
            return;
        }
        if (!pl->tried_auth && ch && strncasecmp(ch, "Basic", 5) == 0 && pl->basic) {
            pl->tried_auth = true;
            pl->use_basic = true;
            cric_http_req_free(req);
            pl->attempt = 0;
            if (pl->stage == S_CONFIG)
                config_start(pl);
            else if (pl->stage == S_SUBMANIFEST)
                manifest_url_start(pl, pl->want_digest);
            else
                manifest_start(pl);
            return;
        }
        cric_error_new(&e, -EACCES, "registry %s: %s (HTTP 401)", ep->host,
                       pl->basic || pl->bearer || pl->identity ? "authentication failed: wrong credentials?"
                                               : "authentication required: no credentials given");
        cric_http_req_free(req);
        endpoint_failed(pl, e);
        return;
    }
    if (res->status == 404) {
        cric_error_new(&e, -ENOENT, "%s %s not found in registry %s", what,
                       pl->stage == S_MANIFEST ? (pl->ref.digest ? pl->ref.digest : pl->ref.tag) : "", ep->host);
        if (pl->stage == S_MANIFEST) {
            cric_error_free(e);
            e = NULL;
            cric_error_new(&e, -ENOENT, "image not found in registry %s (manifest unknown)", ep->host);
        }
        cric_http_req_free(req);
        if (pl->stage == S_MANIFEST)
            endpoint_failed(pl, e);
        else
            pull_fail(pl, e);
        return;
    }
    if (res->status != 200 || res->too_large) {
        char ex[160];
        excerpt(res->body, ex, sizeof(ex));
        if (res->too_large)
            cric_error_new(&e, -EFBIG, "%s from %s is larger than allowed", what, ep->host);
        else
            cric_error_new(&e, -EPROTO, "%s from %s: HTTP %ld: %s", what, ep->host, res->status, ex);
        cric_http_req_free(req);
        if (pl->stage == S_MANIFEST)
            endpoint_failed(pl, e);
        else
            pull_fail(pl, e);
        return;
    }
    if (pl->stage == S_CONFIG)
        got_config(pl, res);
    else
        got_manifest(pl, res);
    cric_http_req_free(req);
}

static void request_start(struct pull *pl, const char *url, size_t max, int64_t expect, bool no_auth,
                          const char *basic_override)
{
    struct cric_puller *p = pl->p;
    cric_error *e = NULL;
    _cleanup_free_ char *auth = NULL;
    if (basic_override) {
        if (asprintf(&auth, "Basic %s", basic_override) < 0)
            auth = NULL;
    } else if (!no_auth) {
        auth = auth_header(pl);
    }
    struct cric_http_opts o = {.url = url,
                               .accept = pl->stage == S_CONFIG || pl->stage == S_TOKEN ? NULL : CRIC_MANIFEST_ACCEPT,
                               .authorization = auth, .fd = -1, .max_body = max, .expect_size = expect,
                               .sha256 = true, .low_speed_timeout_s = (unsigned)p->cfg->images_pull_timeout};
    fill_tls(&pl->eps[pl->ep], &o);
    int r = cric_http_get(p->http, &o, request_done, pl, &pl->req, &e);
    /* curl copied the header: wipe ours */
    if (auth)
        explicit_bzero(auth, strlen(auth));
    if (r < 0)
        pull_fail(pl, e);
}

static void request_start_form(struct pull *pl, const char *url, const char *form)
{
    cric_error *e = NULL;
    struct cric_http_opts o = {.url = url, .post_form = form, .fd = -1, .max_body = TOKEN_MAX,
                               .low_speed_timeout_s = (unsigned)pl->p->cfg->images_pull_timeout};
    fill_tls(&pl->eps[pl->ep], &o);
    if (cric_http_get(pl->p->http, &o, request_done, pl, &pl->req, &e) < 0)
        pull_fail(pl, e);
}

static void manifest_start(struct pull *pl)
{
    pl->stage = S_MANIFEST;
    free(pl->want_digest);
    pl->want_digest = pl->ref.digest ? strdup(pl->ref.digest) : NULL;
    manifest_url_start(pl, pl->ref.digest ? pl->ref.digest : pl->ref.tag);
}

/* ---- the puller ---- */

int cric_puller_new(uv_loop_t *loop, struct cric_image_store *store, const struct cric_config *cfg,
                    struct cric_puller **out, cric_error **err)
{
    struct cric_puller *p = calloc(1, sizeof(*p));
    if (!p)
        return cric_error_sys(err, -ENOMEM, "image puller");
    int r = cric_http_new(loop, &p->http, err);
    if (r < 0) {
        free(p);
        return r;
    }
    p->loop = loop;
    p->store = store;
    p->cfg = cfg;
    p->queue_tail = &p->queue;
    *out = p;
    return 0;
}

static void puller_maybe_free(struct cric_puller *p)
{
    if (p->closing && !p->pulls && !p->jobs) {
        void (*closed)(void *) = p->closed;
        void *data = p->closed_data;
        cric_http_close(p->http);
        free(p);
        if (closed)
            closed(data);
    }
}

void cric_puller_close(struct cric_puller *p, void (*done)(void *), void *data)
{
    if (!p) {
        if (done)
            done(data);
        return;
    }
    p->closing = true;
    p->closed = done;
    p->closed_data = data;
    p->jobs++; /* keep p alive through the fails below */
    while (p->pulls) {
        cric_error *e = NULL;
        cric_error_new(&e, -ECANCELED, "cricd is shutting down");
        struct pull *pl = p->pulls;
        pull_fail(pl, e);
        /* a failed pull with jobs in flight is already unlinked */
    }
    p->jobs--;
    puller_maybe_free(p);
}

int cric_puller_pull(struct cric_puller *p, const char *ref, const struct cric_pull_auth *auth, cric_pull_cb cb,
                     cric_pull_progress_cb progress, void *data, cric_error **err)
{
    struct pull *pl = calloc(1, sizeof(*pl));
    struct waiter *w = calloc(1, sizeof(*w));
    if (!pl || !w) {
        free(pl);
        free(w);
        return cric_error_sys(err, -ENOMEM, "pull '%s'", ref);
    }
    w->cb = cb;
    w->progress = progress;
    w->data = data;
    pl->p = p;
    pl->waiters = w;
    pl->seq = ++p->seq;
    int r = cric_image_ref_parse(ref, &pl->ref, err);
    if (r < 0) {
        pull_free(pl);
        return r;
    }
    pl->key = cric_image_ref_string(&pl->ref);
    pl->repo = cric_image_ref_repo(&pl->ref);
    if (!pl->key || !pl->repo || asprintf(&pl->cred_key, "%s\n%s\n%s\n%s\n%s", auth && auth->username ? auth->username : "",
                                          auth && auth->identity_token ? auth->identity_token : "",
                                          auth && auth->password ? auth->password : "",
                                          auth && auth->auth ? auth->auth : "",
                                          auth && auth->registry_token ? auth->registry_token : "") < 0) {
        pl->cred_key = NULL;
        pull_free(pl);
        return cric_error_sys(err, -ENOMEM, "pull '%s'", ref);
    }
    /* Share a pull of the same image with the same credentials. */
    for (struct pull *o = p->pulls; o; o = o->next)
        if (!o->failed && strcmp(o->key, pl->key) == 0 && strcmp(o->cred_key, pl->cred_key) == 0) {
            pl->waiters = NULL;
            w->next = o->waiters;
            o->waiters = w;
            pull_free(pl);
            return 0;
        }
    if ((r = load_credentials(pl, auth, err)) < 0) {
        pull_free(pl);
        return r < 0 && err && *err ? r : cric_error_sys(err, r, "pull '%s'", ref);
    }
    const struct cric_registry_config *rc = registry_config(p->cfg, pl->ref.domain);
    for (size_t i = 0; rc && rc->mirrors && rc->mirrors[i]; i++)
        if (add_endpoint(pl, rc->mirrors[i], strncmp(rc->mirrors[i], "http://", 7) == 0 || rc->insecure) < 0)
            r = -ENOMEM;
    if (r < 0 || add_endpoint(pl, pl->ref.domain, rc && rc->insecure) < 0) {
        pull_free(pl);
        return cric_error_sys(err, -ENOMEM, "pull '%s'", ref);
    }
    pl->next = p->pulls;
    p->pulls = pl;
    manifest_start(pl);
    return 0;
}
