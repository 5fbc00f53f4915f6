/* Exit records, shim liveness, and the inotify watch on the exits dir. */
#include "config.h"
#include "shim/shim.h"
#include "shim/shim_proto.h"
#include "util/cleanup.h"
#include "util/fs.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cric_shim_parse_exit(const char *buf, size_t len, struct cric_shim_exit *out, cric_error **err)
{
    struct cric_shim_exit ex = {0};
    bool have_status = false;
    const char *p = buf, *end = buf + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        char line[128];
        if (n >= sizeof(line))
            return cric_error_new(err, -EBADMSG, "exit record: line too long");
        memcpy(line, p, n);
        line[n] = '\0';
        char *eq = strchr(line, '=');
        if (eq) {
            *eq = '\0';
            char *v = eq + 1, *e = NULL;
            long long x = strtoll(v, &e, 10);
            if (!*v || *e)
                return cric_error_new(err, -EBADMSG, "exit record: bad value for '%s': '%s'", line, v);
            if (strcmp(line, "status") == 0) {
                ex.status = (int)x;
                have_status = true;
            } else if (strcmp(line, "exited_at") == 0) {
                ex.exited_at_ns = x;
            } else if (strcmp(line, "oom_killed") == 0) {
                ex.oom_killed = x != 0;
            }
        }
        p += n + 1;
    }
    if (!have_status)
        return cric_error_new(err, -EBADMSG, "exit record: no status");
    *out = ex;
    return 0;
}

static int read_exit_file(const char *path, struct cric_shim_exit *out, cric_error **err)
{
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    cric_error *e = NULL;
    int r = cric_read_file(path, 4096, &buf, &len, &e);
    if (r == -ENOENT) {
        cric_error_free(e);
        return -ENOENT;
    }
    if (r < 0) {
        if (err && !*err)
            *err = e;
        else
            cric_error_free(e);
        return r;
    }
    r = cric_shim_parse_exit(buf, len, out, err);
    if (r < 0)
        cric_error_prefix(err, "'%s'", path);
    return r;
}

int cric_shim_read_exit(const char *state_dir, struct cric_shim_exit *out, cric_error **err)
{
    _cleanup_free_ char *path = NULL;
    if (asprintf(&path, "%s/" CRIC_SHIM_EXIT_FILE, state_dir) < 0)
        return cric_error_sys(err, -ENOMEM, "exit record of '%s'", state_dir);
    return read_exit_file(path, out, err);
}

static int read_pid(const char *state_dir, const char *name)
{
    char path[4096], buf[32];
    snprintf(path, sizeof(path), "%s/%s", state_dir, name);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    int pid = 0;
    if (!fgets(buf, sizeof(buf), f))
        buf[0] = '\0';
    fclose(f);
    pid = atoi(buf);
    return pid > 0 ? pid : 0;
}

/* A pid is only ours if it is still a cric-shim: pids get reused. */
static bool pid_is_shim(int pid)
{
    if (pid <= 0 || (kill(pid, 0) < 0 && errno == ESRCH))
        return false;
    char path[64], comm[64] = "";
    snprintf(path, sizeof(path), "/proc/%d/comm", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    if (!fgets(comm, sizeof(comm), f))
        comm[0] = '\0';
    fclose(f);
    char stat_path[64], st[512] = "";
    snprintf(stat_path, sizeof(stat_path), "/proc/%d/stat", pid);
    f = fopen(stat_path, "re");
    if (f) {
        if (!fgets(st, sizeof(st), f))
            st[0] = '\0';
        fclose(f);
    }
    char *rp = strrchr(st, ')');
    if (rp && rp[1] == ' ' && rp[2] == 'Z')
        return false; /* a zombie waiting for its reaper is gone for our purposes */
    return strncmp(comm, "cric-shim", 9) == 0;
}

bool cric_shim_is_alive(const char *state_dir)
{
    return pid_is_shim(read_pid(state_dir, CRIC_SHIM_PID_FILE));
}

int cric_shim_status(const char *state_dir, struct cric_shim_status *out, cric_error **err)
{
    struct cric_shim_status st = {0};
    st.shim_pid = read_pid(state_dir, CRIC_SHIM_PID_FILE);
    st.container_pid = read_pid(state_dir, CRIC_SHIM_CONTAINER_PID_FILE);
    int r = cric_shim_read_exit(state_dir, &st.ex, err);
    if (r == 0)
        st.state = CRIC_SHIM_EXITED;
    else if (r != -ENOENT)
        return r;
    else if (pid_is_shim(st.shim_pid))
        st.state = CRIC_SHIM_RUNNING;
    else
        st.state = CRIC_SHIM_LOST;
    *out = st;
    return 0;
}

int cric_shim_exit_forget(const char *exits_dir, const char *id, cric_error **err)
{
    _cleanup_free_ char *path = NULL;
    if (asprintf(&path, "%s/%s", exits_dir, id) < 0)
        return cric_error_sys(err, -ENOMEM, "exit record of '%s'", id);
    if (unlink(path) < 0 && errno != ENOENT)
        return cric_error_sys(err, -errno, "remove '%s'", path);
    return 0;
}

/* ------------------------------------------------------------ the watcher */

struct cric_shim_watch {
    uv_fs_event_t ev;
    char *dir;
    cric_shim_exit_cb cb;
    void *data;
};

static bool is_record_name(const char *name)
{
    size_t n = strlen(name);
    return n && name[0] != '.' && !(n > 4 && strcmp(name + n - 4, ".tmp") == 0);
}

static void report(cric_shim_watch *w, const char *name)
{
    if (!is_record_name(name))
        return;
    _cleanup_free_ char *path = NULL;
    if (asprintf(&path, "%s/%s", w->dir, name) < 0)
        return;
    struct cric_shim_exit ex;
    if (read_exit_file(path, &ex, NULL) == 0)
        w->cb(name, &ex, w->data);
}

static void on_event(uv_fs_event_t *h, const char *name, int events, int status)
{
    cric_shim_watch *w = h->data;
    if (status < 0)
        return;
    if (name)
        report(w, name);
    else
        cric_shim_watch_scan(w, NULL); /* overflow: rescan everything */
}

int cric_shim_watch_new(uv_loop_t *loop, const char *exits_dir, cric_shim_exit_cb cb, void *data,
                        cric_shim_watch **out, cric_error **err)
{
    int r = cric_mkdir_p(exits_dir, 0700, err);
    if (r < 0)
        return r;
    cric_shim_watch *w = calloc(1, sizeof(*w));
    if (!w || !(w->dir = strdup(exits_dir))) {
        free(w);
        return cric_error_sys(err, -ENOMEM, "watch '%s'", exits_dir);
    }
    w->cb = cb;
    w->data = data;
    uv_fs_event_init(loop, &w->ev);
    w->ev.data = w;
    r = uv_fs_event_start(&w->ev, on_event, exits_dir, 0);
    if (r < 0) {
        cric_error_new(err, r, "watch '%s': %s", exits_dir, uv_strerror(r));
        cric_shim_watch_free(w);
        return r;
    }
    *out = w;
    return 0;
}

int cric_shim_watch_scan(cric_shim_watch *w, cric_error **err)
{
    _cleanup_closedir_ DIR *d = opendir(w->dir);
    if (!d)
        return cric_error_sys(err, -errno, "scan '%s'", w->dir);
    struct dirent *de;
    while ((de = readdir(d)))
        report(w, de->d_name);
    return 0;
}

static void watch_closed(uv_handle_t *h)
{
    cric_shim_watch *w = h->data;
    free(w->dir);
    free(w);
}

void cric_shim_watch_free(cric_shim_watch *w)
{
    if (!w)
        return;
    uv_fs_event_stop(&w->ev);
    uv_close((uv_handle_t *)&w->ev, watch_closed);
}
