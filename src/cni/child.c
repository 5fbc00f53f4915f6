/* A child process on the loop: stdin fed from memory, stdout/stderr
 * collected, a timeout that kills the child's whole process group.
 *
 * Started with posix_spawn (glibc: clone(CLONE_VM|CLONE_VFORK)) rather than
 * uv_spawn: libuv 1.44 forks the whole daemon, which copies its page tables
 * and leaves every page it touches afterwards to a copy-on-write fault; a
 * pod runs several plugins, so that was a large part of cricd's own time per
 * pod.  The exit is watched through a pidfd on the loop; libuv's SIGCHLD
 * handler only reaps the pids of its own process handles, never these. */
#define _GNU_SOURCE
#include "config.h"
#include "cni/cni.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

struct cric_child {
    uv_loop_t *loop;
    pid_t pid;
    int pidfd;
    uv_poll_t exit_watch;  /* the pidfd: readable once the child has exited */
    uv_pipe_t in, out, err;
    uv_timer_t timer;
    uv_write_t wreq;
    char *input;
    size_t input_len;
    struct cric_child_result res;
    size_t out_cap, err_cap, max_output;
    int open_handles;      /* handles not yet closed */
    int streams_open;      /* stdout/stderr not yet at EOF */
    bool exited, done_called, overflow, killed;
    uint64_t start;
    cric_child_done_fn done;
    void *data;
};

static unsigned active_children;
static uint64_t spawn_ns;

uint64_t cric_child_spawn_ns(void)
{
    return spawn_ns;
}

unsigned cric_child_active(void)
{
    return active_children;
}

static void on_close(uv_handle_t *h)
{
    cric_child *c = h->data;
    if (--c->open_handles > 0)
        return;
    free(c->res.out);
    free(c->res.err);
    free(c->input);
    if (c->pidfd >= 0)
        close(c->pidfd);
    free(c);
    active_children--;
}

static void close_handle(cric_child *c, uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, on_close);
}

static void finish(cric_child *c)
{
    if (c->done_called || !c->exited || c->streams_open > 0)
        return;
    c->done_called = true;
    c->res.elapsed_ns = uv_hrtime() - c->start;
    uv_timer_stop(&c->timer);
    if (c->overflow) {
        cric_error e = { .code = -EFBIG, .msg = "child output too large" };
        c->done(c->data, -EFBIG, &c->res, &e);
    } else {
        c->done(c->data, 0, &c->res, NULL);
    }
    close_handle(c, (uv_handle_t *)&c->in);
    close_handle(c, (uv_handle_t *)&c->out);
    close_handle(c, (uv_handle_t *)&c->err);
    close_handle(c, (uv_handle_t *)&c->timer);
    close_handle(c, (uv_handle_t *)&c->exit_watch);
}

static void kill_group(cric_child *c)
{
    if (c->exited)
        return;
    /* The child leads its own session and process group: kill helpers it
     * started too, so they cannot hold our pipes open.  The pidfd names the
     * child itself even if its pid were reused. */
    if (c->pid > 0)
        kill(-c->pid, SIGKILL);
    syscall(SYS_pidfd_send_signal, c->pidfd, SIGKILL, NULL, 0);
}

void cric_child_kill(cric_child *c)
{
    c->killed = true;
    kill_group(c);
}

static void on_timer(uv_timer_t *t)
{
    cric_child *c = t->data;
    if (!c->exited) {
        c->res.timed_out = true;
        kill_group(c);
        return;
    }
    /* Exited but a grandchild still holds stdout/stderr: stop waiting. */
    if (c->streams_open > 0) {
        uv_read_stop((uv_stream_t *)&c->out);
        uv_read_stop((uv_stream_t *)&c->err);
        c->streams_open = 0;
        finish(c);
    }
}

static void on_exit_cb(uv_poll_t *w, int status, int events)
{
    cric_child *c = w->data;
    (void)status;
    (void)events;
    siginfo_t si = {0};
    if (waitid(P_PIDFD, (id_t)c->pidfd, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0)
        return; /* not yet (a spurious wake-up) */
    uv_poll_stop(w);
    c->exited = true;
    if (si.si_code == CLD_EXITED) {
        c->res.exit_status = si.si_status;
    } else {
        c->res.exit_status = 0;
        c->res.term_signal = si.si_status;
    }
    if (c->streams_open > 0) {
        uv_timer_stop(&c->timer);
        uv_timer_start(&c->timer, on_timer, 2000, 0);
    }
    finish(c);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    cric_child *c = h->data;
    bool is_out = h == (uv_handle_t *)&c->out;
    char **p = is_out ? &c->res.out : &c->res.err;
    size_t *len = is_out ? &c->res.out_len : &c->res.err_len;
    size_t *cap = is_out ? &c->out_cap : &c->err_cap;
    (void)suggested;
    if (*cap - *len < 4096) {
        size_t ncap = *cap ? *cap * 2 : 8192;
        char *n = realloc(*p, ncap + 1);
        if (!n) {
            *buf = uv_buf_init(NULL, 0);
            return;
        }
        *p = n;
        *cap = ncap;
    }
    *buf = uv_buf_init(*p + *len, (unsigned)(*cap - *len));
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    cric_child *c = s->data;
    bool is_out = s == (uv_stream_t *)&c->out;
    (void)buf;
    if (n > 0) {
        size_t *len = is_out ? &c->res.out_len : &c->res.err_len;
        *len += (size_t)n;
        (is_out ? c->res.out : c->res.err)[*len] = '\0';
        if (*len > c->max_output && !c->overflow) {
            c->overflow = true;
            kill_group(c);
        }
        return;
    }
    if (n == 0)
        return;
    /* EOF or error: this stream is done. */
    uv_read_stop(s);
    c->streams_open--;
    finish(c);
}

static void write_cb(uv_write_t *w, int status)
{
    cric_child *c = w->data;
    (void)status; /* a child that exits without reading stdin is not an error */
    close_handle(c, (uv_handle_t *)&c->in);
}

/* posix_spawn with the child's stdin/stdout/stderr on the pipes, in a new
 * session (its own process group), default signal dispositions (cricd
 * ignores SIGPIPE, which exec would pass on) and an empty signal mask. */
static int spawn(const struct cric_child_opts *opts, int fds[3][2], pid_t *pid, int *pidfd)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    int r = posix_spawn_file_actions_init(&fa);
    if (r)
        return -r;
    if ((r = posix_spawnattr_init(&at))) {
        posix_spawn_file_actions_destroy(&fa);
        return -r;
    }
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    if (!(r = posix_spawn_file_actions_adddup2(&fa, fds[0][0], 0)) &&
        !(r = posix_spawn_file_actions_adddup2(&fa, fds[1][1], 1)) &&
        !(r = posix_spawn_file_actions_adddup2(&fa, fds[2][1], 2)) &&
        !(r = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK)) &&
        !(r = posix_spawnattr_setsigdefault(&at, &all)) && !(r = posix_spawnattr_setsigmask(&at, &none)))
        r = posix_spawn(pid, opts->file, &fa, &at, opts->argv, opts->env ? opts->env : environ);
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    if (r)
        return -r;
    int fd = (int)syscall(SYS_pidfd_open, *pid, 0);
    if (fd < 0) {
        r = -errno;
        kill(*pid, SIGKILL);
        waitpid(*pid, NULL, 0);
        return r;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    *pidfd = fd;
    return 0;
}

int cric_child_run(uv_loop_t *loop, const struct cric_child_opts *opts, cric_child_done_fn done, void *data,
                   cric_child **out, cric_error **err)
{
    cric_child *c = calloc(1, sizeof(*c));
    if (!c)
        return cric_error_sys(err, -ENOMEM, "run '%s'", opts->file);
    c->loop = loop;
    c->done = done;
    c->data = data;
    c->max_output = opts->max_output ? opts->max_output : 1024 * 1024;
    c->res.out = calloc(1, 1);
    c->res.err = calloc(1, 1);
    if (opts->input && opts->input_len) {
        c->input = malloc(opts->input_len);
        if (c->input)
            memcpy(c->input, opts->input, opts->input_len);
        c->input_len = opts->input_len;
    }
    if (!c->res.out || !c->res.err || (opts->input_len && !c->input)) {
        free(c->res.out);
        free(c->res.err);
        free(c->input);
        free(c);
        return cric_error_sys(err, -ENOMEM, "run '%s'", opts->file);
    }
    c->pidfd = -1;
    int fds[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
    int r = 0;
    for (int i = 0; i < 3 && r == 0; i++)
        if (pipe2(fds[i], O_CLOEXEC) < 0)
            r = -errno;
    c->start = uv_hrtime();
    if (r == 0)
        r = spawn(opts, fds, &c->pid, &c->pidfd);
    spawn_ns += uv_hrtime() - c->start;
    /* The child's ends, and ours on failure. */
    for (int i = 0; i < 3; i++) {
        if (fds[i][i == 0 ? 0 : 1] >= 0)
            close(fds[i][i == 0 ? 0 : 1]);
        if (r < 0 && fds[i][i == 0 ? 1 : 0] >= 0)
            close(fds[i][i == 0 ? 1 : 0]);
    }
    if (r < 0) {
        free(c->res.out);
        free(c->res.err);
        free(c->input);
        free(c);
        return cric_error_new(err, r, "run '%s': %s", opts->file, strerror(-r));
    }
    uv_pipe_init(loop, &c->in, 0);
    uv_pipe_init(loop, &c->out, 0);
    uv_pipe_init(loop, &c->err, 0);
    uv_timer_init(loop, &c->timer);
    uv_poll_init(loop, &c->exit_watch, c->pidfd);
    c->in.data = c->out.data = c->err.data = c->timer.data = c->exit_watch.data = c;
    c->open_handles = 4;
    active_children++;
    uv_pipe_open(&c->in, fds[0][1]);
    uv_pipe_open(&c->out, fds[1][0]);
    uv_pipe_open(&c->err, fds[2][0]);
    uv_poll_start(&c->exit_watch, UV_READABLE, on_exit_cb);
    c->open_handles++;
    c->streams_open = 2;
    uv_read_start((uv_stream_t *)&c->out, alloc_cb, read_cb);
    uv_read_start((uv_stream_t *)&c->err, alloc_cb, read_cb);
    if (c->input_len) {
        uv_buf_t b = uv_buf_init(c->input, (unsigned)c->input_len);
        c->wreq.data = c;
        if (uv_write(&c->wreq, (uv_stream_t *)&c->in, &b, 1, write_cb) < 0)
            close_handle(c, (uv_handle_t *)&c->in);
    } else {
        close_handle(c, (uv_handle_t *)&c->in);
    }
    if (opts->timeout_ms)
        uv_timer_start(&c->timer, on_timer, opts->timeout_ms, 0);
    if (out)
        *out = c;
    return 0;
}
