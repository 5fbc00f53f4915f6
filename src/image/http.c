#include "config.h"
#include "image/http.h"
#include "util/cleanup.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

struct cric_http {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    struct cric_http_req *reqs;  /* in flight */
    struct sock_ctx *socks;
    int pending_closes;
    bool closing;
};

struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    struct cric_http *h;
    struct sock_ctx *next, **pprev;
};

struct cric_http_req {
    struct cric_http *h;
    CURL *easy;
    struct curl_slist *hdrs;
    struct cric_http_req *next, **pprev;
    bool in_multi;
    int fd;
    size_t max_body;
    int64_t expect_size;
    char *body;
    size_t body_cap;
    EVP_MD_CTX *md;
    char *content_type, *www_auth;
    char errbuf[CURL_ERROR_SIZE];
    struct cric_http_result res;
    cric_http_done_fn done;
    void (*progress)(void *, uint64_t);
    void *data;
};

static void check_done(struct cric_http *h);

static void sock_close_cb(uv_handle_t *hd)
{
    struct sock_ctx *c = hd->data;
    struct cric_http *h = c->h;
    free(c);
    if (--h->pending_closes == 0 && h->closing)
        free(h);
}

static void timer_close_cb(uv_handle_t *hd)
{
    struct cric_http *h = hd->data;
    if (--h->pending_closes == 0)
        free(h);
}

static void poll_cb(uv_poll_t *p, int status, int events)
{
    struct sock_ctx *c = p->data;
    struct cric_http *h = c->h;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    int running;
    curl_multi_socket_action(h->multi, c->fd, flags, &running);
    check_done(h);
}

static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct cric_http *h = userp;
    struct sock_ctx *c = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (c) {
            uv_poll_stop(&c->poll);
            *c->pprev = c->next;
            if (c->next)
                c->next->pprev = c->pprev;
            curl_multi_assign(h->multi, s, NULL);
            h->pending_closes++;
            uv_close((uv_handle_t *)&c->poll, sock_close_cb);
        }
        return 0;
    }
    if (!c) {
        c = calloc(1, sizeof(*c));
        if (!c)
            return -1;
        c->fd = s;
        c->h = h;
        if (uv_poll_init_socket(h->loop, &c->poll, s) < 0) {
            free(c);
            return -1;
        }
        c->poll.data = c;
        c->next = h->socks;
        if (c->next)
            c->next->pprev = &c->next;
        c->pprev = &h->socks;
        h->socks = c;
        curl_multi_assign(h->multi, s, c);
    }
    int ev = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        ev |= UV_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        ev |= UV_WRITABLE;
    uv_poll_start(&c->poll, ev, poll_cb);
    return 0;
}

static void timer_cb(uv_timer_t *t)
{
    struct cric_http *h = t->data;
    int running;
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(h);
}

static int timer_fn(CURLM *multi, long timeout_ms, void *userp)
{
    struct cric_http *h = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&h->timer);
    else
        uv_timer_start(&h->timer, timer_cb, (uint64_t)timeout_ms, 0);
    return 0;
}

int cric_http_new(uv_loop_t *loop, struct cric_http **out, cric_error **err)
{
    static bool global_done;
    if (!global_done) {
        /* Once, before any thread uses curl (start-up is single-threaded). */
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return cric_error_new(err, -EIO, "initialise libcurl");
        global_done = true;
    }
    struct cric_http *h = calloc(1, sizeof(*h));
    if (!h || !(h->multi = curl_multi_init())) {
        free(h);
        return cric_error_sys(err, -ENOMEM, "HTTP client");
    }
    h->loop = loop;
    uv_timer_init(loop, &h->timer);
    h->timer.data = h;
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_fn);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    *out = h;
    return 0;
}

static void req_unlink(struct cric_http_req *r)
{
    if (r->pprev) {
        *r->pprev = r->next;
        if (r->next)
            r->next->pprev = r->pprev;
        r->pprev = NULL;
        r->next = NULL;
    }
    if (r->in_multi) {
        curl_multi_remove_handle(r->h->multi, r->easy);
        r->in_multi = false;
    }
}

void cric_http_req_free(struct cric_http_req *r)
{
    if (!r)
        return;
    req_unlink(r);
    if (r->easy)
        curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->hdrs);
    EVP_MD_CTX_free(r->md);
    free(r->body);
    free(r->content_type);
    free(r->www_auth);
    free(r);
}

void cric_http_close(struct cric_http *h)
{
    if (!h)
        return;
    while (h->reqs)
        cric_http_req_free(h->reqs);
    h->closing = true;
    /* curl_multi_cleanup closes cached connections, which calls socket_cb
     * with CURL_POLL_REMOVE for each. */
    curl_multi_cleanup(h->multi);
    while (h->socks) {
        struct sock_ctx *c = h->socks;
        h->socks = c->next;
        uv_poll_stop(&c->poll);
        h->pending_closes++;
        uv_close((uv_handle_t *)&c->poll, sock_close_cb);
    }
    h->pending_closes++;
    uv_close((uv_handle_t *)&h->timer, timer_close_cb);
}

static size_t header_cb(char *buf, size_t size, size_t n, void *data)
{
    struct cric_http_req *r = data;
    size_t len = size * n;
    /* A new response (after a redirect) starts with its status line. */
    if (len > 5 && strncmp(buf, "HTTP/", 5) == 0) {
        free(r->content_type);
        free(r->www_auth);
        r->content_type = r->www_auth = NULL;
    }
    static const struct {
        const char *name;
        size_t off;
    } want[] = {{"content-type:", offsetof(struct cric_http_req, content_type)},
                {"www-authenticate:", offsetof(struct cric_http_req, www_auth)}};
    for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
        size_t nl = strlen(want[i].name);
        if (len > nl && strncasecmp(buf, want[i].name, nl) == 0) {
            const char *v = buf + nl;
            size_t vl = len - nl;
            while (vl && (*v == ' ' || *v == '\t'))
                v++, vl--;
            while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
                vl--;
            char **dst = (char **)((char *)r + want[i].off);
            free(*dst);
            *dst = strndup(v, vl);
        }
    }
    return len;
}

static size_t write_cb(char *buf, size_t size, size_t n, void *data)
{
    struct cric_http_req *r = data;
    size_t len = size * n;
    long status = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    bool ok = status >= 200 && status < 300;
    if (ok && r->expect_size > 0 && r->res.body_len + len > (uint64_t)r->expect_size) {
        r->res.too_large = true;
        return 0;
    }
    if (ok && r->md)
        EVP_DigestUpdate(r->md, buf, len);
    if (ok && r->fd >= 0) {
        for (size_t off = 0; off < len;) {
            ssize_t w = write(r->fd, buf + off, len - off);
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                r->res.write_failed = true;
                return 0;
            }
            off += (size_t)w;
        }
        r->res.body_len += len;
        if (r->progress)
            r->progress(r->data, r->res.body_len);
        return len;
    }
    /* Memory: the body, or the start of an error response (for messages). */
    size_t max = ok ? r->max_body : 4096;
    if (r->res.body_len + len > max) {
        if (ok) {
            r->res.too_large = true;
            return 0;
        }
        len = max > r->res.body_len ? max - r->res.body_len : 0;
        if (!len)
            return size * n;
    }
    if (r->res.body_len + len + 1 > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 4096;
        while (cap < r->res.body_len + len + 1)
            cap *= 2;
        char *nb = realloc(r->body, cap);
        if (!nb)
            return 0;
        r->body = nb;
        r->body_cap = cap;
    }
    memcpy(r->body + r->res.body_len, buf, len);
    r->res.body_len += len;
    r->body[r->res.body_len] = '\0';
    return size * n;
}

int cric_http_get(struct cric_http *h, const struct cric_http_opts *o, cric_http_done_fn done, void *data,
                  struct cric_http_req **out, cric_error **err)
{
    struct cric_http_req *r = calloc(1, sizeof(*r));
    if (!r || !(r->easy = curl_easy_init()))
        goto oom;
    r->h = h;
    r->fd = o->fd;
    r->max_body = o->max_body;
    r->expect_size = o->expect_size;
    r->done = done;
    r->data = data;
    r->progress = o->progress;
    if (o->sha256 && (!(r->md = EVP_MD_CTX_new()) || !EVP_DigestInit_ex(r->md, EVP_sha256(), NULL)))
        goto oom;
    CURL *e = r->easy;
    curl_easy_setopt(e, CURLOPT_URL, o->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 10L);
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85 */
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(e, CURLOPT_USERAGENT, "cricd/" PACKAGE_VERSION);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, (long)(o->connect_timeout_s ? o->connect_timeout_s : 30));
    if (o->low_speed_timeout_s) {
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)o->low_speed_timeout_s);
    }
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, NULL);
    if (o->post_form)
        curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, o->post_form);
    if (o->tls.ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, o->tls.ca_file);
    if (o->tls.client_cert)
        curl_easy_setopt(e, CURLOPT_SSLCERT, o->tls.client_cert);
    if (o->tls.client_key)
        curl_easy_setopt(e, CURLOPT_SSLKEY, o->tls.client_key);
    if (o->tls.insecure) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    _cleanup_free_ char *accept = NULL, *auth = NULL;
    if (o->accept && asprintf(&accept, "Accept: %s", o->accept) < 0)
        goto oom;
    if (o->authorization && asprintf(&auth, "Authorization: %s", o->authorization) < 0)
        goto oom;
    struct curl_slist *l;
    if (accept) {
        if (!(l = curl_slist_append(r->hdrs, accept)))
            goto oom;
        r->hdrs = l;
    }
    if (auth) {
        if (!(l = curl_slist_append(r->hdrs, auth)))
            goto oom;
        r->hdrs = l;
        /* Never hand the header to another host after a redirect. */
        curl_easy_setopt(e, CURLOPT_UNRESTRICTED_AUTH, 0L);
    }
    if (r->hdrs)
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
    if (curl_multi_add_handle(h->multi, e) != CURLM_OK)
        goto oom;
    r->in_multi = true;
    r->next = h->reqs;
    if (r->next)
        r->next->pprev = &r->next;
    r->pprev = &h->reqs;
    h->reqs = r;
    if (out)
        *out = r;
    return 0;
oom:
    cric_http_req_free(r);
    return cric_error_sys(err, -ENOMEM, "HTTP request");
}

const struct cric_http_result *cric_http_result(const struct cric_http_req *r) { return &r->res; }

static void check_done(struct cric_http *h)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(h->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct cric_http_req *r = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        CURLcode code = m->data.result;
        req_unlink(r); /* m is invalid after this */
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->res.status);
        r->res.curl_code = (int)code;
        r->res.error = code ? (r->errbuf[0] ? r->errbuf : curl_easy_strerror(code)) : NULL;
        r->res.body = r->body ? r->body : "";
        r->res.content_type = r->content_type;
        r->res.www_authenticate = r->www_auth;
        if (r->md) {
            unsigned char md[EVP_MAX_MD_SIZE];
            unsigned n = 0;
            EVP_DigestFinal_ex(r->md, md, &n);
            strcpy(r->res.digest, "sha256:");
            for (unsigned i = 0; i < n && i < 32; i++)
                snprintf(r->res.digest + 7 + 2 * i, 3, "%02x", md[i]);
        }
        r->done(r, r->data);
    }
}
