/* The CRI log writer: "<RFC3339Nano UTC> <stdout|stderr> <P|F> <bytes>\n".
 * Every line of one read gets the same timestamp, and all its records go out
 * in one writev, so the cost per line is two iovecs, not a syscall. */
#define _GNU_SOURCE
#include "shim/cshim.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define BATCH_IOV 512

struct batch {
    struct iovec iov[BATCH_IOV];
    int n;
    size_t bytes;
};

void cshim_logw_init(struct cshim_logw *w)
{
    memset(w, 0, sizeof(*w));
    w->fd = -1;
}

static int logw_open_fd(struct cshim_logw *w)
{
    int fd = open(w->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
    if (fd < 0)
        return -errno;
    struct stat st;
    w->written = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    w->fd = fd;
    return 0;
}

int cshim_logw_open(struct cshim_logw *w, const char *path, uint64_t size_max)
{
    if (strlen(path) >= sizeof(w->path))
        return -ENAMETOOLONG;
    strcpy(w->path, path);
    w->size_max = size_max;
    return logw_open_fd(w);
}

int cshim_logw_reopen(struct cshim_logw *w)
{
    if (!w->path[0])
        return -ENOENT;
    int old = w->fd;
    w->fd = -1;
    int r = logw_open_fd(w);
    if (r < 0) {
        w->fd = old; /* keep logging to the old file rather than nowhere */
        return r;
    }
    if (old >= 0)
        close(old);
    return 0;
}

void cshim_logw_close(struct cshim_logw *w)
{
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
}

void cshim_logw_timestamp(int64_t ns, char out[32])
{
    time_t s = (time_t)(ns / 1000000000);
    struct tm tm;
    gmtime_r(&s, &tm);
    snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, (long)(ns % 1000000000));
}

static bool retryable(int e)
{
    return e == ENOSPC || e == EDQUOT || e == EIO || e == EAGAIN || e == EFBIG;
}

/* Writes the whole batch.  A full disk holds the container's output back
 * (it blocks on its pipe) with a warning a minute, rather than dropping it;
 * once the container is gone we retry only ~10 s so its exit gets recorded. */
static void logw_flush(struct cshim_logw *w, struct batch *b)
{
    struct iovec *iov = b->iov;
    int n = b->n;
    int tries = 0;
    while (n > 0) {
        ssize_t r = writev(w->fd, iov, n);
        if (r < 0) {
            int e = errno;
            if (e == EINTR)
                continue;
            int64_t now = cshim_now_ns();
            if (!w->last_warn_ns || now - w->last_warn_ns > 60LL * 1000000000) {
                cshim_warn("writing log '%s': %s; %s", w->path, strerror(e),
                           retryable(e) ? "retrying, container output is held back" : "output lost");
                w->last_warn_ns = now;
            }
            if (!retryable(e) || (w->giving_up && ++tries > 10)) {
                if (retryable(e))
                    cshim_warn("giving up on log '%s': output lost", w->path);
                break;
            }
            struct timespec ts = {1, 0};
            nanosleep(&ts, NULL);
            continue;
        }
        w->written += (uint64_t)r;
        size_t left = (size_t)r;
        while (n > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    b->n = 0;
    b->bytes = 0;
}

static void add(struct cshim_logw *w, struct batch *b, const char *hdr, size_t hdr_len, const char *data,
                size_t len, bool add_nl)
{
    static const char nl = '\n';
    size_t rec = hdr_len + len + (add_nl ? 1 : 0);
    if (b->n + 3 > BATCH_IOV)
        logw_flush(w, b);
    if (w->size_max && w->written + b->bytes + rec > w->size_max && w->written + b->bytes > 0) {
        /* Over the cap: start the file over (kubelet rotates before this in practice). */
        logw_flush(w, b);
        if (ftruncate(w->fd, 0) == 0)
            w->written = 0;
    }
    b->iov[b->n++] = (struct iovec){(void *)hdr, hdr_len};
    b->iov[b->n++] = (struct iovec){(void *)data, len};
    if (add_nl)
        b->iov[b->n++] = (struct iovec){(void *)&nl, 1};
    b->bytes += rec;
}

static void logw_records(struct cshim_logw *w, struct cshim_line *l, bool final, bool partial);

void cshim_logw_lines(struct cshim_logw *w, struct cshim_line *l, bool final)
{
    logw_records(w, l, final, false);
}

void cshim_logw_partial(struct cshim_logw *w, struct cshim_line *l)
{
    logw_records(w, l, false, true);
}

static void logw_records(struct cshim_logw *w, struct cshim_line *l, bool final, bool partial)
{
    if (l->len == 0) {
        l->pending_since = 0;
        return;
    }
    char ts[32], hf[64], hp[64];
    size_t hlen = 0;
    if (w->fd >= 0) {
        cshim_logw_timestamp(cshim_now_ns(), ts);
        const char *name = l->stream == 2 ? "stderr" : "stdout";
        hlen = (size_t)snprintf(hf, sizeof(hf), "%s %s F ", ts, name);
        snprintf(hp, sizeof(hp), "%s %s P ", ts, name);
    }
    struct batch b;
    b.n = 0;
    b.bytes = 0;
    size_t pos = 0;
    while (pos < l->len) {
        char *p = l->buf + pos;
        size_t rest = l->len - pos;
        char *nl = memchr(p, '\n', rest);
        if (nl) {
            size_t n = (size_t)(nl - p) + 1;
            if (w->fd >= 0)
                add(w, &b, hf, hlen, p, n - 1 + 1, false);
            pos += n;
            continue;
        }
        if (final) {
            if (w->fd >= 0)
                add(w, &b, hf, hlen, p, rest, true);
        } else if ((pos == 0 && rest == sizeof(l->buf)) || partial) {
            if (w->fd >= 0)
                add(w, &b, hp, hlen, p, rest, true);
        } else {
            break;
        }
        pos += rest;
    }
    if (b.n)
        logw_flush(w, &b);
    if (pos < l->len && pos > 0)
        memmove(l->buf, l->buf + pos, l->len - pos);
    if (pos > 0 || !l->pending_since)
        l->pending_since = l->len > pos ? cshim_now_ns() : 0;
    l->len -= pos;
}
