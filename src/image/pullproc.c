#include "config.h"
#include "image/pullproc.h"
#include "image/json.h"
#include "image/ref.h"
#include "util/cleanup.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINE_MAX_BYTES (1u << 20)

struct waiter {
    cric_pull_cb cb;
    cric_pull_progress_cb progress;
    void *data;
    struct waiter *next;
};

/* The last progress the helper reported for one layer. */
struct layer_progress {
    char *digest;
    uint64_t done, total;
};

/* Bounds what a helper can make cricd hold for Status: images have far fewer layers. */
#define PROGRESS_LAYERS_MAX 256

struct job {
    struct cric_pullproc *p;
    struct job *next;
    char *key;          /* normalised reference + credentials (memory only, wiped) */
    char *ref;          /* the normalised reference, for messages */
    uv_process_t proc;
    uv_pipe_t in, out;
    uv_write_t wr;
    char *req;          /* the request (holds credentials until written) */
    size_t req_len;
    char *buf;          /* stdout not yet split into lines */
    size_t len;
    char *answer;       /* the last {"result"…} or {"error"…} line */
    int pid;
    unsigned handles;   /* open handles: free the job when 0 */
    bool exited, eof, killed;
    int64_t status;
    int signal;
    struct waiter *waiters;
    struct layer_progress *layers;  /* latest progress line per layer, in order seen */
    size_t n_layers;
};

struct cric_pullproc {
    uv_loop_t *loop;
    struct cric_image_store *store;
    const struct cric_config *cfg;
    char *helper;
    struct job *jobs;
    bool closing;
    void (*closed)(void *);
    void *closed_data;
};

static void wipe_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

static void maybe_closed(struct cric_pullproc *p)
{
    if (p->closing && !p->jobs) {
        void (*closed)(void *) = p->closed;
        void *data = p->closed_data;
        free(p->helper);
        free(p);
        if (closed)
            closed(data);
    }
}

/* ---- one helper ---- */

static void notify(struct job *j, const struct cric_image *img, const cric_error *e)
{
    struct waiter *w = j->waiters;
    j->waiters = NULL;
    while (w) {
        struct waiter *next = w->next;
        w->cb(w->data, img, e);
        free(w);
        w = next;
    }
}

/* Turns the helper's answer into a committed record or an error. */
static int outcome(struct job *j, const struct cric_image **img, cric_error **e)
{
    struct cric_pullproc *p = j->p;
    if (p->closing)
        return cric_error_new(e, -ECANCELED, "cricd is shutting down");
    if (j->signal)
        return cric_error_new(e, -EIO, "pull '%s': image pull helper exited with signal %d", j->ref, j->signal);
    if (!j->answer)
        return cric_error_new(e, -EIO, "pull '%s': image pull helper exited with status %lld and no answer", j->ref,
                              (long long)j->status);
    yajl_val root = NULL;
    int r = cric__json_parse(j->answer, strlen(j->answer), "image pull helper answer", &root, e);
    if (r < 0)
        return r;
    yajl_val res = cric__json_get(root, "result"), err = cric__json_get(root, "error");
    char **layers = NULL;
    if (err) {
        yajl_val code = cric__json_get(err, "code");
        const char *msg = cric__json_str(err, "message");
        r = YAJL_IS_INTEGER(code) && YAJL_GET_INTEGER(code) < 0 ? (int)YAJL_GET_INTEGER(code) : -EIO;
        cric_error_new(e, r, "%s", msg ? msg : "image pull helper failed");
    } else if (j->status != 0 || !res || !cric_digest_valid(cric__json_str(res, "id")) ||
               cric__json_strv(cric__json_get(res, "layers"), &layers) < 0) {
        r = cric_error_new(e, -EIO, "pull '%s': image pull helper gave a malformed answer (exit status %lld)", j->ref,
                           (long long)j->status);
    } else {
        struct cric_image_commit c = {cric__json_str(res, "id"), cric__json_str(res, "repo_tag"),
                                      cric__json_str(res, "repo_digest"), layers, cric__strv_len(layers)};
        r = cric_image_store_commit(p->store, &c, img, e);
    }
    cric_strv_free(layers);
    yajl_tree_free(root);
    return r;
}

static void job_free(struct job *j)
{
    struct waiter *w = j->waiters;
    while (w) {
        struct waiter *next = w->next;
        free(w);
        w = next;
    }
    wipe_free(j->key);
    wipe_free(j->req);
    for (size_t i = 0; i < j->n_layers; i++)
        free(j->layers[i].digest);
    free(j->layers);
    free(j->ref);
    free(j->buf);
    free(j->answer);
    free(j);
}

static void job_unlink(struct job *j)
{
    for (struct job **pp = &j->p->jobs; *pp; pp = &(*pp)->next)
        if (*pp == j) {
            *pp = j->next;
            break;
        }
}

/* All handles closed: the helper is gone and has said all it will. */
static void job_finish(struct job *j)
{
    struct cric_pullproc *p = j->p;
    const struct cric_image *img = NULL;
    cric_error *e = NULL;
    job_unlink(j);
    if (outcome(j, &img, &e) < 0)
        img = NULL;
    /* Partial files of the helper, then (last helper) unused layers. */
    unsigned moved = 0;
    if (j->pid > 0)
        moved += cric_image_store_sweep_pid(p->store, j->pid);
    if (j->pid != 0)
        moved += cric_image_store_pulls_end(p->store);
    if (moved)
        cric_image_store_gc_queue(p->loop, p->store, NULL, NULL);
    notify(j, img, e);
    cric_error_free(e);
    job_free(j);
    maybe_closed(p);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct job *j = h->data;
    if (--j->handles == 0)
        job_finish(j);
}

static void close_handle(struct job *j, uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, on_handle_closed);
}

static void on_exit_cb(uv_process_t *proc, int64_t status, int sig)
{
    struct job *j = proc->data;
    j->exited = true;
    j->status = status;
    j->signal = sig;
    close_handle(j, (uv_handle_t *)&j->proc);
}

/* Keeps the latest figures for digest (for Status), bounded in count. */
static void remember_progress(struct job *j, const char *digest, uint64_t done, uint64_t total)
{
    size_t i = 0;
    while (i < j->n_layers && strcmp(j->layers[i].digest, digest) != 0)
        i++;
    if (i == j->n_layers) {
        if (i >= PROGRESS_LAYERS_MAX || strlen(digest) > 200)
            return;
        struct layer_progress *nl = realloc(j->layers, (i + 1) * sizeof(*nl));
        if (!nl)
            return;
        j->layers = nl;
        if (!(nl[i].digest = strdup(digest)))
            return;
        j->n_layers++;
    }
    j->layers[i].done = done;
    j->layers[i].total = total;
}

static void on_line(struct job *j, char *line)
{
    if (strncmp(line, "{\"progress\"", 11) == 0) {
        yajl_val root = NULL;
        if (cric__json_parse(line, strlen(line), "progress", &root, NULL) < 0)
            return;
        yajl_val pr = cric__json_get(root, "progress");
        yajl_val b = cric__json_get(pr, "bytes"), t = cric__json_get(pr, "total");
        const char *digest = cric__json_str(pr, "digest");
        if (digest && YAJL_IS_INTEGER(b) && YAJL_IS_INTEGER(t) && YAJL_GET_INTEGER(b) >= 0 &&
            YAJL_GET_INTEGER(t) >= 0) {
            remember_progress(j, digest, (uint64_t)YAJL_GET_INTEGER(b), (uint64_t)YAJL_GET_INTEGER(t));
            for (struct waiter *w = j->waiters; w; w = w->next)
                if (w->progress)
                    w->progress(w->data, digest, (uint64_t)YAJL_GET_INTEGER(b), (uint64_t)YAJL_GET_INTEGER(t));
        }
        yajl_tree_free(root);
        return;
    }
    char *copy = strdup(line);
    if (copy) {
        free(j->answer);
        j->answer = copy;
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct job *j = h->data;
    size_t want = 16384;
    char *nb = j->len + want + 1 > LINE_MAX_BYTES + want + 1 ? NULL : realloc(j->buf, j->len + want + 1);
    if (!nb) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    j->buf = nb;
    *buf = uv_buf_init(nb + j->len, (unsigned)want);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct job *j = s->data;
    if (n < 0) {
        /* EOF, or a line too long (ENOBUFS): the helper has nothing more for us. */
        j->eof = true;
        close_handle(j, (uv_handle_t *)&j->out);
        return;
    }
    j->len += (size_t)n;
    j->buf[j->len] = '\0';
    char *start = j->buf, *nl;
    while ((nl = memchr(start, '\n', j->len - (size_t)(start - j->buf)))) {
        *nl = '\0';
        on_line(j, start);
        start = nl + 1;
    }
    j->len -= (size_t)(start - j->buf);
    memmove(j->buf, start, j->len);
}

static void on_written(uv_write_t *w, int status)
{
    struct job *j = w->data;
    wipe_free(j->req);
    j->req = NULL;
    /* EOF on the helper's stdin: the request is complete. */
    close_handle(j, (uv_handle_t *)&j->in);
}

/* The request: reference, store, the images.* config, credentials. */
static char *request_json(struct cric_pullproc *p, const char *ref, const struct cric_pull_auth *a)
{
    const struct cric_config *cfg = p->cfg;
    yajl_gen g = yajl_gen_alloc(NULL);
    if (!g)
        return NULL;
    yajl_gen_map_open(g);
    cric_yj_kv_str(g, "reference", ref);
    cric_yj_kv_str(g, "root", cfg->root);
    cric_yj_kv_str(g, "certs_dir", cfg->images_certs_dir ? cfg->images_certs_dir : "");
    cric_yj_kv_str(g, "auth_file", cfg->images_auth_file ? cfg->images_auth_file : "");
    cric_yj_gen_str(g, "pull_timeout");
    yajl_gen_integer(g, (long long)cfg->images_pull_timeout);
    cric_yj_gen_str(g, "max_concurrent_downloads");
    yajl_gen_integer(g, (long long)cfg->images_max_concurrent_downloads);
    cric_yj_gen_str(g, "registries");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < cfg->images_registries_len; i++) {
        const struct cric_registry_config *rc = &cfg->images_registries[i];
        yajl_gen_map_open(g);
        cric_yj_kv_str(g, "host", rc->host ? rc->host : "");
        cric_yj_gen_str(g, "insecure");
        yajl_gen_bool(g, rc->insecure);
        cric_yj_kv_strv(g, "mirrors", rc->mirrors);
        yajl_gen_map_close(g);
    }
    yajl_gen_array_close(g);
    cric_yj_gen_str(g, "auth");
    yajl_gen_map_open(g);
    const char *keys[] = {"username", "password", "auth", "identity_token", "registry_token"};
    const char *vals[] = {a ? a->username : NULL, a ? a->password : NULL, a ? a->auth : NULL,
                          a ? a->identity_token : NULL, a ? a->registry_token : NULL};
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
        if (vals[i] && *vals[i])
            cric_yj_kv_str(g, keys[i], vals[i]);
    yajl_gen_map_close(g);
    yajl_gen_map_close(g);
    const unsigned char *buf;
    size_t len;
    char *out = NULL;
    if (yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok && (out = malloc(len + 1))) {
        memcpy(out, buf, len);
        out[len] = '\0';
    }
    /* yajl's own buffer held the credentials too. */
    if (yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok)
        explicit_bzero((void *)buf, len);
    yajl_gen_free(g);
    return out;
}

static int job_start(struct job *j, cric_error **err)
{
    struct cric_pullproc *p = j->p;
    uv_pipe_init(p->loop, &j->in, 0);
    uv_pipe_init(p->loop, &j->out, 0);
    j->in.data = j->out.data = j->proc.data = j->wr.data = j;
    j->handles = 3;
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_CREATE_PIPE | UV_READABLE_PIPE, .data.stream = (uv_stream_t *)&j->in},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&j->out},
        {.flags = UV_INHERIT_FD, .data.fd = 2},
    };
    char *args[] = {p->helper, NULL};
    uv_process_options_t o = {
        .exit_cb = on_exit_cb, .file = p->helper, .args = args, .stdio = stdio, .stdio_count = 3,
    };
    int r = uv_spawn(p->loop, &j->proc, &o);
    if (r < 0) {
        cric_error_new(err, r, "pull '%s': cannot start the image pull helper '%s': %s", j->ref, p->helper,
                       uv_strerror(r));
        return r;
    }
    j->pid = j->proc.pid;
    cric_image_store_pulls_begin(p->store);
    uv_buf_t b = uv_buf_init(j->req, (unsigned)j->req_len);
    if ((r = uv_write(&j->wr, (uv_stream_t *)&j->in, &b, 1, on_written)) < 0) {
        wipe_free(j->req);
        j->req = NULL;
        close_handle(j, (uv_handle_t *)&j->in);
    }
    if (uv_read_start((uv_stream_t *)&j->out, on_alloc, on_read) < 0)
        close_handle(j, (uv_handle_t *)&j->out);
    return 0;
}

/* ---- API ---- */

int cric_pullproc_new(uv_loop_t *loop, struct cric_image_store *store, const struct cric_config *cfg,
                      const char *helper, struct cric_pullproc **out, cric_error **err)
{
    struct cric_pullproc *p = calloc(1, sizeof(*p));
    if (!p || !(p->helper = strdup(helper))) {
        free(p);
        return cric_error_sys(err, -ENOMEM, "image puller");
    }
    p->loop = loop;
    p->store = store;
    p->cfg = cfg;
    *out = p;
    return 0;
}

void cric_pullproc_close(struct cric_pullproc *p, void (*done)(void *), void *data)
{
    if (!p) {
        if (done)
            done(data);
        return;
    }
    p->closing = true;
    p->closed = done;
    p->closed_data = data;
    /* Each job finishes (with "cricd is shutting down") once its helper is
     * reaped and its pipes are closed. */
    for (struct job *j = p->jobs; j; j = j->next)
        if (!j->exited && !j->killed) {
            j->killed = true;
            uv_process_kill(&j->proc, SIGKILL);
        }
    maybe_closed(p);
}

int cric_pullproc_pull(struct cric_pullproc *p, const char *ref, const struct cric_pull_auth *auth, cric_pull_cb cb,
                       cric_pull_progress_cb progress, void *data, cric_error **err)
{
    struct cric_image_ref r = {0};
    int ret = cric_image_ref_parse(ref, &r, err);
    if (ret < 0)
        return ret;
    _cleanup_free_ char *norm = cric_image_ref_string(&r);
    cric_image_ref_clear(&r);
    struct waiter *w = calloc(1, sizeof(*w));
    char *key = NULL;
    if (!w || !norm ||
        asprintf(&key, "%s\n%s\n%s\n%s\n%s\n%s", norm, auth && auth->username ? auth->username : "",
                 auth && auth->identity_token ? auth->identity_token : "", auth && auth->password ? auth->password : "",
                 auth && auth->auth ? auth->auth : "", auth && auth->registry_token ? auth->registry_token : "") < 0) {
        free(w);
        return cric_error_sys(err, -ENOMEM, "pull '%s'", ref);
    }
    w->cb = cb;
    w->progress = progress;
    w->data = data;
    if (p->closing) {
        wipe_free(key);
        free(w);
        return cric_error_new(err, -ECANCELED, "cricd is shutting down");
    }
    /* Share a running pull of the same image with the same credentials. */
    for (struct job *j = p->jobs; j; j = j->next)
        if (!j->exited && !j->killed && strcmp(j->key, key) == 0) {
            wipe_free(key);
            w->next = j->waiters;
            j->waiters = w;
            return 0;
        }
    struct job *j = calloc(1, sizeof(*j));
    if (!j) {
        wipe_free(key);
        free(w);
        return cric_error_sys(err, -ENOMEM, "pull '%s'", ref);
    }
    j->p = p;
    j->key = key;
    j->waiters = w;
    j->ref = TAKE_PTR(norm);
    if (!(j->req = request_json(p, ref, auth))) {
        job_free(j);
        return cric_error_sys(err, -ENOMEM, "pull '%s'", ref);
    }
    j->req_len = strlen(j->req);
    if ((ret = job_start(j, err)) < 0) {
        /* The handles are initialised: close them; the job is never listed,
         * so its waiter is dropped without a call (we return the error). */
        j->waiters = NULL;
        free(w);
        j->pid = 0;
        j->next = p->jobs;
        p->jobs = j;
        j->handles = 3;
        /* job_finish with no waiters only frees; no pulls_end since no begin. */
        close_handle(j, (uv_handle_t *)&j->proc);
        close_handle(j, (uv_handle_t *)&j->in);
        close_handle(j, (uv_handle_t *)&j->out);
        return ret;
    }
    j->next = p->jobs;
    p->jobs = j;
    return 0;
}

int cric_pullproc_progress_json(struct cric_pullproc *p, char **out, cric_error **err)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    if (!g)
        return cric_error_sys(err, -ENOMEM, "pull progress");
    yajl_gen_map_open(g);
    /* Keyed by the normalised reference only (never j->key: it holds the
     * credentials).  Pulls of one reference with different credentials are
     * separate helpers; the first listed stands for them. */
    for (struct job *j = p ? p->jobs : NULL; j; j = j->next) {
        bool dup = false;
        for (struct job *k = p->jobs; k != j && !dup; k = k->next)
            dup = strcmp(k->ref, j->ref) == 0;
        if (dup)
            continue;
        cric_yj_gen_str(g, j->ref);
        yajl_gen_map_open(g);
        cric_yj_gen_str(g, "layers");
        yajl_gen_array_open(g);
        for (size_t i = 0; i < j->n_layers; i++) {
            yajl_gen_map_open(g);
            cric_yj_kv_str(g, "digest", j->layers[i].digest);
            cric_yj_gen_str(g, "done");
            yajl_gen_integer(g, (long long)j->layers[i].done);
            cric_yj_gen_str(g, "total");
            yajl_gen_integer(g, (long long)j->layers[i].total);
            yajl_gen_map_close(g);
        }
        yajl_gen_array_close(g);
        yajl_gen_map_close(g);
    }
    yajl_gen_map_close(g);
    int r = cric__gen_take(g, out);
    yajl_gen_free(g);
    return r < 0 ? cric_error_sys(err, r, "pull progress") : 0;
}
