/* cricctl logs: reads the CRI log file itself, so that it also works while
 * cricd is down (the path then comes from the container's record on disk). */
#define _GNU_SOURCE
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <yajl/yajl_tree.h>

#include "api.pb-c.h"
#include "cricctl/cmd_container.h"
#include "grpc/client.h"
#include "grpc/server.h"
#include "util/cleanup.h"
#include "util/fs.h"

/* "2026-11-27T10:00:00.123456789Z" (or with +hh:mm) -> ns since the epoch. */
static int parse_ts(const char *s, size_t len, int64_t *out)
{
    char buf[64];
    if (len >= sizeof(buf))
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    struct tm tm = {0};
    char *p = strptime(buf, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p)
        return -1;
    int64_t ns = 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 9)
                ns = ns * 10 + (*p - '0');
        for (; digits < 9; digits++)
            ns *= 10;
    }
    int64_t off = 0;
    if (*p == '+' || *p == '-') {
        int h = 0, m = 0;
        if (sscanf(p + 1, "%d:%d", &h, &m) != 2)
            return -1;
        off = (h * 3600 + m * 60) * (*p == '-' ? -1 : 1);
    } else if (*p != 'Z') {
        return -1;
    }
    *out = ((int64_t)timegm(&tm) - off) * 1000000000 + ns;
    return 0;
}

struct line {
    int stream; /* 1 stdout, 2 stderr */
    char ts[48];
    char *text;
    size_t len;
};

struct logs {
    bool timestamps;
    int64_t since_ns;
    size_t tail;         /* 0 = all (tail_set false) */
    bool tail_set;
    struct line *ring;   /* tail lines kept while reading the existing file */
    size_t ring_n, ring_pos;
    bool buffering;
    /* Partial records per stream, joined until the F record. */
    char *part[3];
    size_t part_len[3];
    char part_ts[3][48];
};

static void emit(struct logs *L, int stream, const char *ts, const char *text, size_t len)
{
    FILE *f = stream == 2 ? stderr : stdout;
    if (L->timestamps)
        fprintf(f, "%s ", ts);
    fwrite(text, 1, len, f);
    fputc('\n', f);
    fflush(f);
}

static void deliver(struct logs *L, int stream, const char *ts, char *text, size_t len)
{
    if (L->buffering && L->tail_set) {
        if (L->tail == 0) {
            free(text);
            return;
        }
        struct line *slot = &L->ring[L->ring_pos];
        free(slot->text);
        slot->stream = stream;
        snprintf(slot->ts, sizeof(slot->ts), "%s", ts);
        slot->text = text;
        slot->len = len;
        L->ring_pos = (L->ring_pos + 1) % L->tail;
        if (L->ring_n < L->tail)
            L->ring_n++;
        return;
    }
    emit(L, stream, ts, text, len);
    free(text);
}

static void flush_ring(struct logs *L)
{
    if (!L->tail_set || !L->tail)
        return;
    size_t start = (L->ring_pos + L->tail - L->ring_n) % L->tail;
    for (size_t i = 0; i < L->ring_n; i++) {
        struct line *l = &L->ring[(start + i) % L->tail];
        emit(L, l->stream, l->ts, l->text, l->len);
        free(l->text);
        l->text = NULL;
    }
    L->ring_n = 0;
}

/* One record: "<ts> <stream> <tag> <bytes>". */
static void record(struct logs *L, const char *rec, size_t len)
{
    const char *sp1 = memchr(rec, ' ', len);
    if (!sp1)
        return;
    const char *sp2 = memchr(sp1 + 1, ' ', len - (size_t)(sp1 + 1 - rec));
    if (!sp2)
        return;
    const char *tag = sp2 + 1;
    const char *msg = tag + 1 < rec + len && tag[1] == ' ' ? tag + 2 : rec + len;
    size_t mlen = (size_t)(rec + len - msg);
    int stream = strncmp(sp1 + 1, "stderr", 6) == 0 ? 2 : 1;
    char ts[48];
    snprintf(ts, sizeof(ts), "%.*s", (int)(sp1 - rec), rec);
    int64_t t;
    if (L->since_ns && (parse_ts(rec, (size_t)(sp1 - rec), &t) < 0 || t < L->since_ns))
        return;
    /* Join P records of a stream until its F. */
    char *nb = realloc(L->part[stream], L->part_len[stream] + mlen + 1);
    if (!nb)
        return;
    if (L->part_len[stream] == 0)
        snprintf(L->part_ts[stream], sizeof(L->part_ts[stream]), "%s", ts);
    memcpy(nb + L->part_len[stream], msg, mlen);
    L->part_len[stream] += mlen;
    L->part[stream] = nb;
    if (tag < rec + len && *tag == 'P')
        return;
    char *text = L->part[stream];
    size_t tlen = L->part_len[stream];
    L->part[stream] = NULL;
    L->part_len[stream] = 0;
    deliver(L, stream, L->part_ts[stream], text, tlen);
}

/* Reads complete lines from f; keeps an unterminated tail for later. */
static void read_lines(struct logs *L, FILE *f, char **pending, size_t *pending_len)
{
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
        size_t start = 0;
        for (size_t i = 0; i < n; i++) {
            if (buf[i] != '\n')
                continue;
            if (*pending_len) {
                char *nb = realloc(*pending, *pending_len + (i - start) + 1);
                if (!nb)
                    return;
                memcpy(nb + *pending_len, buf + start, i - start);
                record(L, nb, *pending_len + (i - start));
                free(nb);
                *pending = NULL;
                *pending_len = 0;
            } else {
                record(L, buf + start, i - start);
            }
            start = i + 1;
        }
        if (start < n) {
            char *nb = realloc(*pending, *pending_len + (n - start) + 1);
            if (!nb)
                return;
            memcpy(nb + *pending_len, buf + start, n - start);
            *pending = nb;
            *pending_len += n - start;
        }
    }
}

/* The log path from the on-disk record (cricd down). */
static int path_from_record(const char *root, const char *id, char **path)
{
    _cleanup_free_ char *dir = NULL;
    if (asprintf(&dir, "%s/containers", root) < 0)
        return -ENOMEM;
    _cleanup_closedir_ DIR *d = opendir(dir);
    if (!d)
        return cricctl_fail("cricd is unreachable and '%s' cannot be read: %s", dir, strerror(errno));
    struct dirent *e;
    char found[80] = "";
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, id, strlen(id)) == 0 && strlen(e->d_name) == 64) {
            if (found[0])
                return cricctl_fail("container ID prefix '%s' is ambiguous", id);
            snprintf(found, sizeof(found), "%s", e->d_name);
        }
    }
    if (!found[0])
        return cricctl_fail("container '%s' not found in %s", id, dir);
    _cleanup_free_ char *rec = NULL, *text = NULL;
    if (asprintf(&rec, "%s/%s/record.json", dir, found) < 0)
        return -ENOMEM;
    cric_error *err = NULL;
    if (cric_read_file(rec, 1 << 20, &text, NULL, &err) < 0) {
        int r = cricctl_fail("%s", err->msg);
        cric_error_free(err);
        return r;
    }
    yajl_val v = yajl_tree_parse(text, NULL, 0);
    const char *k[] = {"log_path", NULL};
    yajl_val lp = v ? yajl_tree_get(v, k, yajl_t_string) : NULL;
    if (!lp || !lp->u.string[0]) {
        yajl_tree_free(v);
        return cricctl_fail("container %s has no log file", found);
    }
    *path = strdup(lp->u.string);
    yajl_tree_free(v);
    return 0;
}

/* Asks cricd for the log path and state; 1 when cricd is unreachable. */
static int ask_daemon(struct cricctl *ctl, const char *id, char **path, int *state, char **full_id)
{
    cric_client *c = NULL;
    if (cric_client_connect(ctl->endpoint, 2000, &c, NULL) < 0)
        return 1;
    Runtime__V1__ContainerStatusRequest req = RUNTIME__V1__CONTAINER_STATUS_REQUEST__INIT;
    req.container_id = (char *)id;
    ProtobufCMessage *m = NULL;
    int status = 0;
    char *msg = NULL;
    cric_error *err = NULL;
    int r = cric_client_call(c, "/runtime.v1.RuntimeService/ContainerStatus", &req.base,
                             &runtime__v1__container_status_response__descriptor, 10000, &m, &status, &msg, &err);
    cric_client_free(c);
    cric_error_free(err);
    if (r < 0) {
        free(msg);
        return 1;
    }
    if (status != GRPC_OK) {
        r = cricctl_fail("%s", msg ? msg : "ContainerStatus failed");
        free(msg);
        return r + 1;
    }
    free(msg);
    const Runtime__V1__ContainerStatusResponse *s = (const Runtime__V1__ContainerStatusResponse *)m;
    if (!s->status || !s->status->log_path[0]) {
        protobuf_c_message_free_unpacked(m, NULL);
        return cricctl_fail("container %s has no log file", id) + 1;
    }
    *path = strdup(s->status->log_path);
    *state = s->status->state;
    *full_id = strdup(s->status->id);
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}

static volatile sig_atomic_t interrupted;
static void on_sig(int sig)
{
    (void)sig;
    interrupted = 1;
}

int cricctl_cmd_logs(struct cricctl *ctl, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"follow", no_argument, NULL, 'f'},        {"tail", required_argument, NULL, 'n'},
        {"since", required_argument, NULL, 's'},   {"timestamps", no_argument, NULL, 't'},
        {"root", required_argument, NULL, 'r'},    {NULL, 0, NULL, 0},
    };
    struct logs L = {0};
    bool follow = false;
    const char *root = "/var/lib/cricd";
    int c;
    while ((c = getopt_long(argc, argv, "fn:s:tr:", longopts, NULL)) != -1) {
        switch (c) {
        case 'f':
            follow = true;
            break;
        case 'n': {
            char *end;
            long long n = strtoll(optarg, &end, 10);
            if (*end || n < -1)
                return cricctl_fail("logs: invalid --tail '%s'", optarg) + 1;
            if (n >= 0) {
                L.tail = (size_t)n;
                L.tail_set = true;
            }
            break;
        }
        case 's': {
            uint64_t ms;
            if (parse_ts(optarg, strlen(optarg), &L.since_ns) == 0)
                break;
            if (cricctl_parse_duration(optarg, &ms) < 0)
                return cricctl_fail("logs: invalid --since '%s' (a duration like 10s or an RFC 3339 time)",
                                    optarg) + 1;
            struct timespec now;
            clock_gettime(CLOCK_REALTIME, &now);
            L.since_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec - (int64_t)ms * 1000000;
            break;
        }
        case 't':
            L.timestamps = true;
            break;
        case 'r':
            root = optarg;
            break;
        default:
            return 2;
        }
    }
    if (argc - optind != 1)
        return cricctl_fail("usage: logs [-f] [--tail N] [--since D] [-t] [--root DIR] CONTAINER-ID") + 1;
    const char *id = argv[optind];
    _cleanup_free_ char *path = NULL, *full_id = NULL;
    int state = -1;
    int r = ask_daemon(ctl, id, &path, &state, &full_id);
    bool daemon_up = r == 0;
    if (r == 1)
        r = path_from_record(root, id, &path);
    else if (r > 1)
        return r - 1;
    if (r)
        return r;
    if (L.tail_set && L.tail && !(L.ring = calloc(L.tail, sizeof(*L.ring))))
        return cricctl_fail("out of memory");
    FILE *f = fopen(path, "re");
    if (!f && !(follow && errno == ENOENT)) {
        free(L.ring);
        return cricctl_fail("open '%s': %s", path, strerror(errno));
    }
    char *pending = NULL;
    size_t pending_len = 0;
    L.buffering = true;
    if (f)
        read_lines(&L, f, &pending, &pending_len);
    flush_ring(&L);
    L.buffering = false;
    if (follow) {
        signal(SIGINT, on_sig);
        signal(SIGTERM, on_sig);
        signal(SIGPIPE, SIG_IGN);
        unsigned ticks = 0;
        while (!interrupted) {
            usleep(100000);
            if (f) {
                clearerr(f);
                read_lines(&L, f, &pending, &pending_len);
            }
            /* Rotated (kubelet renames it and asks for a reopen). */
            struct stat a, b;
            if (stat(path, &a) == 0 && (!f || (fstat(fileno(f), &b) == 0 && (a.st_ino != b.st_ino)))) {
                if (f) {
                    clearerr(f);
                    read_lines(&L, f, &pending, &pending_len);
                    fclose(f);
                }
                f = fopen(path, "re");
                free(pending);
                pending = NULL;
                pending_len = 0;
                if (f)
                    read_lines(&L, f, &pending, &pending_len);
            }
            /* Stop once the container has exited and everything is read. */
            if (daemon_up && ++ticks % 10 == 0) {
                _cleanup_free_ char *p2 = NULL, *id2 = NULL;
                int st = -1;
                if (ask_daemon(ctl, full_id, &p2, &st, &id2) == 0 &&
                    st == RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED) {
                    if (f) {
                        clearerr(f);
                        read_lines(&L, f, &pending, &pending_len);
                    }
                    break;
                }
            }
        }
    }
    if (f)
        fclose(f);
    free(pending);
    for (int i = 0; i < 3; i++)
        free(L.part[i]);
    for (size_t i = 0; i < L.tail && L.ring; i++)
        free(L.ring[i].text);
    free(L.ring);
    return 0;
}
