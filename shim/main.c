/* cric-shim: the per-container monitor.  Detaches from its caller, runs
 * `<runtime> create` (or `run --detach` with --start), reports the pid on the sync fd, then owns the
 * container's stdio until it exits: CRI log, attach/control sockets, exit
 * record.  See cric-shim(8). */
#define _GNU_SOURCE
#include "shim/cshim.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <unistd.h>

/* After the container exits, output still in flight gets this long to arrive. */
#define DRAIN_MS 5000
#define CREATE_TIMEOUT_MS 120000
#define CSHIM_PIPE_SIZE (1024 * 1024)

static void usage(FILE *f)
{
    fputs("usage: cric-shim --id ID --bundle DIR --runtime PATH --state-dir DIR [--runtime-root DIR]\n"
          "                 [--log PATH] [--log-size-max BYTES] [--exit-dir DIR] [--terminal] [--stdin]\n"
          "                 [--sync-fd N] [--start] [--wait] [--systemd-cgroup]\n"
          "       cric-shim --exec --id ID --runtime PATH [--runtime-root DIR] [--systemd-cgroup] [--timeout SECS]\n"
          "                 [--output-max BYTES] (--process FILE | -- COMMAND...)\n",
          f);
}

static int parse_args(int argc, char **argv, struct cshim_args *a)
{
    static const struct option opts[] = {
        {"id", required_argument, NULL, 'i'},          {"bundle", required_argument, NULL, 'b'},
        {"runtime", required_argument, NULL, 'r'},     {"runtime-root", required_argument, NULL, 'R'},
        {"log", required_argument, NULL, 'l'},         {"log-size-max", required_argument, NULL, 'm'},
        {"state-dir", required_argument, NULL, 's'},   {"exit-dir", required_argument, NULL, 'e'},
        {"terminal", no_argument, NULL, 't'},          {"stdin", no_argument, NULL, 'I'},
        {"sync-fd", required_argument, NULL, 'S'},     {"exec", no_argument, NULL, 'x'},
        {"process", required_argument, NULL, 'p'},     {"timeout", required_argument, NULL, 'T'},
        {"output-max", required_argument, NULL, 'o'},  {"help", no_argument, NULL, 'h'},
        {"start", no_argument, NULL, 'G'},            {"wait", no_argument, NULL, 'W'},
        {"systemd-cgroup", no_argument, NULL, 'C'},
        {NULL, 0, NULL, 0},
    };
    memset(a, 0, sizeof(*a));
    a->sync_fd = -1;
    a->output_max = 16 << 20;
    int c;
    while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
        switch (c) {
        case 'i': a->id = optarg; break;
        case 'b': a->bundle = optarg; break;
        case 'r': a->runtime = optarg; break;
        case 'R': a->runtime_root = optarg; break;
        case 'l': a->log_path = optarg; break;
        case 'm': a->log_size_max = strtoull(optarg, NULL, 10); break;
        case 's': a->state_dir = optarg; break;
        case 'e': a->exits_dir = optarg; break;
        case 't': a->terminal = true; break;
        case 'I': a->stdin_open = true; break;
        case 'S': a->sync_fd = atoi(optarg); break;
        case 'x': a->exec_mode = true; break;
        case 'G': a->start = true; break;
        case 'C': a->systemd_cgroup = true; break;
        case 'W': a->wait = a->start = true; break;
        case 'p': a->process_path = optarg; break;
        case 'T': a->timeout_s = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'o': a->output_max = strtoull(optarg, NULL, 10); break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
    }
    a->exec_argv = argv + optind;
    const char *missing = !a->id ? "--id" : !a->runtime ? "--runtime" : NULL;
    if (!missing && !a->exec_mode)
        missing = !a->bundle ? "--bundle" : !a->state_dir ? "--state-dir" : NULL;
    if (!missing && a->exec_mode && !a->process_path && !*a->exec_argv)
        missing = "--process or a command";
    if (missing) {
        fprintf(stderr, "cric-shim: missing %s\n", missing);
        usage(stderr);
        return -1;
    }
    /* The shim runs from "/" so that it pins no directory of its caller. */
    const char *paths[][2] = {{"--bundle", a->bundle},     {"--runtime", a->runtime},   {"--runtime-root", a->runtime_root},
                              {"--log", a->log_path},      {"--state-dir", a->state_dir}, {"--exit-dir", a->exits_dir},
                              {"--process", a->process_path}};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        if (paths[i][1] && paths[i][1][0] != '/') {
            fprintf(stderr, "cric-shim: %s '%s' is not an absolute path\n", paths[i][0], paths[i][1]);
            return -1;
        }
    }
    struct sockaddr_un sa;
    if (a->state_dir && strlen(a->state_dir) + sizeof("/" CRIC_SHIM_CONTROL_SOCK) > sizeof(sa.sun_path)) {
        fprintf(stderr, "cric-shim: --state-dir '%s' is too long for its sockets (max %zu bytes)\n", a->state_dir,
                sizeof(sa.sun_path) - sizeof("/" CRIC_SHIM_CONTROL_SOCK));
        return -1;
    }
    if (strchr(a->id, '/') || a->id[0] == '.') {
        fprintf(stderr, "cric-shim: invalid container id '%s'\n", a->id);
        return -1;
    }
    return 0;
}

static void sync_report(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sync_report(int fd, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (fd >= 0)
        cshim_write_all(fd, buf, n < (int)sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
    else
        fputs(buf, stderr);
}

/* Receives the pty master runc/crun sends to --console-socket. */
static int recv_console(int listen_fd)
{
    struct pollfd pf = {listen_fd, POLLIN, 0};
    if (poll(&pf, 1, 1000) <= 0)
        return -ETIMEDOUT;
    int conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (conn < 0)
        return -errno;
    char data[256];
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {data, sizeof(data)};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
    ssize_t n = recvmsg(conn, &msg, MSG_CMSG_CLOEXEC);
    close(conn);
    if (n < 0)
        return -errno;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    if (!cm || cm->cmsg_type != SCM_RIGHTS)
        return -EBADMSG;
    int fd;
    memcpy(&fd, CMSG_DATA(cm), sizeof(fd));
    return fd;
}

struct shim {
    struct cshim_args a;
    int sigfd, epfd;
    pid_t container;
    int out_fd[2];             /* stdout/stderr read ends (pty master in [0]), -1 at EOF */
    struct cshim_line *line[2];
    struct cshim_logw logw;
    struct cshim_srv srv;
    struct cshim_oom oom;
    int listen_err;            /* of the attach/control sockets, set up while the runtime runs */
};

static void close_fds_except(int keep)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return;
    int dfd = dirfd(d);
    struct dirent *de;
    while ((de = readdir(d))) {
        int fd = atoi(de->d_name);
        if (fd > 2 && fd != keep && fd != dfd && de->d_name[0] != '.')
            close(fd);
    }
    closedir(d);
}

/* Runs `<runtime> create` (`run --detach` with --start: one runtime process
 * instead of create + start); returns the container pid or -1 (reported). */
static pid_t create_container(struct shim *s, int sync_fd)
{
    struct cshim_args *a = &s->a;
    int out[2] = {-1, -1}, err[2] = {-1, -1}, in[2] = {-1, -1}, console = -1;
    char console_path[PATH_MAX];
    if (a->terminal) {
        cshim_path(console_path, a->state_dir, CRIC_SHIM_CONSOLE_SOCK);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (strlen(console_path) >= sizeof(sa.sun_path)) {
            sync_report(sync_fd, "error console socket path '%s' is too long for a unix socket", console_path);
            return -1;
        }
        strcpy(sa.sun_path, console_path);
        unlink(console_path);
        console = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (console < 0 || bind(console, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(console, 1) < 0) {
            sync_report(sync_fd, "error console socket '%s': %s", console_path, strerror(errno));
            return -1;
        }
    } else if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 ||
               (a->stdin_open && pipe2(in, O_CLOEXEC) < 0)) {
        sync_report(sync_fd, "error pipe: %s", strerror(errno));
        return -1;
    }
    static char bufs[3][PATH_MAX];
    char *argv[32];
    const char *verb = a->start ? "run" : "create";
    cshim_runtime_argv(a, verb, argv, 32, bufs);
    unlink(bufs[1]);
    pid_t rt = fork();
    if (rt < 0) {
        sync_report(sync_fd, "error fork: %s", strerror(errno));
        return -1;
    }
    if (rt == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int devnull = open("/dev/null", O_RDWR);
        if (a->terminal) {
            dup2(devnull, 0);
            dup2(devnull, 1);
            dup2(devnull, 2);
        } else {
            dup2(in[0] >= 0 ? in[0] : devnull, 0);
            dup2(out[1], 1);
            dup2(err[1], 2);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    /* The attach and control sockets while the runtime works (it takes tens
     * of ms): off the start's critical path. */
    s->listen_err = cshim_srv_listen(&s->srv, a->state_dir);
    if (!a->terminal) {
        /* A bigger pipe means fewer wake-ups for a chatty container; best effort
         * (it is capped by /proc/sys/fs/pipe-max-size for unprivileged users). */
        fcntl(out[0], F_SETPIPE_SZ, CSHIM_PIPE_SIZE);
        fcntl(err[0], F_SETPIPE_SZ, CSHIM_PIPE_SIZE);
        close(out[1]);
        close(err[1]);
        if (in[0] >= 0)
            close(in[0]);
    }
    /* Wait for the runtime (signals are blocked; SIGCHLD arrives on sigfd). */
    int status = 0, waited = 0;
    while (waitpid(rt, &status, WNOHANG) == 0) {
        struct pollfd pf = {s->sigfd, POLLIN, 0};
        if (waited >= CREATE_TIMEOUT_MS) {
            kill(rt, SIGKILL);
            waitpid(rt, &status, 0);
            sync_report(sync_fd, "error %s %s timed out", a->runtime, verb);
            return -1;
        }
        if (poll(&pf, 1, 100) > 0) {
            struct signalfd_siginfo si;
            (void)!read(s->sigfd, &si, sizeof(si));
        }
        waited += 100;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char msg[2048], logp[PATH_MAX];
        cshim_path(logp, a->state_dir, CRIC_SHIM_RUNTIME_LOG);
        cshim_runtime_error(logp, msg, sizeof(msg));
        if (!msg[0] && !a->terminal) { /* no log line: use what it printed */
            fcntl(err[0], F_SETFL, O_NONBLOCK);
            ssize_t n = read(err[0], msg, sizeof(msg) - 1);
            msg[n > 0 ? n : 0] = '\0';
            while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
                msg[--n] = '\0';
        }
        if (!msg[0])
            snprintf(msg, sizeof(msg), "exit status %d", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
        sync_report(sync_fd, "error %s %s: %s", a->runtime, verb, msg);
        return -1;
    }
    char pidbuf[32];
    pid_t pid = cshim_read_small(bufs[1], pidbuf, sizeof(pidbuf)) > 0 ? atoi(pidbuf) : 0;
    if (pid <= 0) {
        sync_report(sync_fd, "error %s %s: no pid in '%s'", a->runtime, verb, bufs[1]);
        return -1;
    }
    if (a->terminal) {
        int master = recv_console(console);
        close(console);
        unlink(console_path);
        if (master < 0) {
            sync_report(sync_fd, "error receiving the terminal from %s: %s", a->runtime, strerror(-master));
            kill(pid, SIGKILL);
            return -1;
        }
        s->out_fd[0] = master;
        s->srv.stdin_fd = a->stdin_open ? master : -1;
        s->srv.stdin_is_pty = true;
        s->srv.pty_fd = master;
    } else {
        s->out_fd[0] = out[0];
        s->out_fd[1] = err[0];
        s->srv.stdin_fd = in[1];
    }
    for (int i = 0; i < 2; i++)
        if (s->out_fd[i] >= 0)
            fcntl(s->out_fd[i], F_SETFL, O_NONBLOCK);
    if (s->srv.stdin_fd >= 0)
        fcntl(s->srv.stdin_fd, F_SETFL, O_NONBLOCK);
    return pid;
}

/* Reads what is available on stream i: logs it and fans it out. */
static void pump(struct shim *s, int i)
{
    struct cshim_line *l = s->line[i];
    for (int rounds = 0; rounds < 16 && s->out_fd[i] >= 0; rounds++) {
        ssize_t n = read(s->out_fd[i], l->buf + l->len, sizeof(l->buf) - l->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) { /* EOF, or EIO on a pty whose other side is gone */
            epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->out_fd[i], NULL);
            if (s->srv.stdin_fd != s->out_fd[i])
                close(s->out_fd[i]);
            s->out_fd[i] = -1;
            return;
        }
        cshim_srv_broadcast(&s->srv, l->stream, l->buf + l->len, (size_t)n);
        l->len += (size_t)n;
        cshim_logw_lines(&s->logw, l, false);
    }
}

/* Reaps every child (we are a subreaper: orphans of the container land here). */
static void reap(struct shim *s, int *exit_status, int64_t *exited_at)
{
    int st;
    pid_t p;
    while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
        if (p == s->container && *exit_status < 0) {
            s->srv.container = 0;
            *exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            *exited_at = cshim_now_ns();
            s->logw.giving_up = true;
        }
    }
}

static int serve(struct shim *s)
{
    int exit_status = -1;
    int64_t exited_at = 0;
    /* A SIGCHLD consumed while waiting for the runtime may have been the container's. */
    reap(s, &exit_status, &exited_at);
    for (;;) {
        if (exit_status >= 0 && s->out_fd[0] < 0 && s->out_fd[1] < 0)
            break;
        int timeout = -1;
        int64_t now = cshim_now_ns();
        if (exit_status >= 0) {
            int64_t left = DRAIN_MS - (now - exited_at) / 1000000;
            if (left <= 0)
                break;
            timeout = (int)left;
        }
        for (int i = 0; i < 2; i++) {
            if (!s->line[i]->pending_since)
                continue;
            int64_t left = CSHIM_PARTIAL_MS - (now - s->line[i]->pending_since) / 1000000;
            if (left <= 0) {
                cshim_logw_partial(&s->logw, s->line[i]);
                continue;
            }
            if (timeout < 0 || left < timeout)
                timeout = (int)left;
        }
        struct epoll_event evs[32];
        int n = epoll_wait(s->epfd, evs, 32, timeout);
        if (n < 0 && errno != EINTR)
            break;
        for (int k = 0; k < n; k++) {
            uint32_t kind = (uint32_t)(evs[k].data.u64 >> 32), idx = (uint32_t)evs[k].data.u64;
            switch (kind) {
            case CSHIM_EV_SIGNAL: {
                struct signalfd_siginfo si;
                while (read(s->sigfd, &si, sizeof(si)) == sizeof(si))
                    ;
                reap(s, &exit_status, &exited_at);
                break;
            }
            case CSHIM_EV_OUTPUT:
                pump(s, (int)idx);
                break;
            case CSHIM_EV_ATTACH_LISTEN:
                cshim_srv_accept(&s->srv, s->srv.attach_fd, true);
                break;
            case CSHIM_EV_CONTROL_LISTEN:
                cshim_srv_accept(&s->srv, s->srv.control_fd, false);
                break;
            case CSHIM_EV_CLIENT:
                cshim_srv_client_event(&s->srv, (int)idx, evs[k].events);
                break;
            case CSHIM_EV_STDIN:
                cshim_srv_stdin_writable(&s->srv);
                break;
            }
        }
    }
    if (exit_status < 0) { /* only on an epoll failure: still record something */
        exit_status = 255;
        exited_at = cshim_now_ns();
    }
    /* What is still in the pipes, then whatever line is unterminated. */
    for (int i = 0; i < 2; i++) {
        if (s->out_fd[i] >= 0)
            pump(s, i);
        cshim_logw_lines(&s->logw, s->line[i], true);
    }
    cshim_logw_close(&s->logw);
    bool oom = cshim_oom_killed(&s->oom);
    cshim_exit_write(s->a.state_dir, s->a.exits_dir, s->a.id, exit_status, exited_at, oom);
    cshim_srv_shutdown(&s->srv);
    return 0;
}

/* Drains the inotify events of the state dir: true if the start socket was
 * deleted or the dir itself went away or moved. */
static bool start_sock_gone(int ifd)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool gone = false;
    ssize_t n;
    while ((n = read(ifd, buf, sizeof(buf))) > 0) {
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            if ((ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) ||
                ((ev->mask & IN_DELETE) && ev->len && strcmp(ev->name, CRIC_SHIM_START_SOCK) == 0))
                gone = true;
            p += sizeof(*ev) + ev->len;
        }
    }
    return gone;
}

/* --wait: the pid and log files are in place; listens on <state>/start,
 * reports "ready <shim pid>" and closes the sync fd, then waits for one
 * connection there (cricd's StartContainer), which becomes the sync fd of
 * the start.  Returns it, or -1 (SIGTERM while waiting, or a failure
 * already reported). */
static int wait_for_start(struct shim *s, int sync_fd)
{
    char path[PATH_MAX];
    cshim_path(path, s->a.state_dir, CRIC_SHIM_START_SOCK);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, path); /* parse_args checked the state dir's length */
    unlink(path);
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 4) < 0) {
        sync_report(sync_fd, "error start socket '%s': %s", path, strerror(errno));
        return -1;
    }
    /* The container may be removed while we wait, even before cricd knew
     * of us (cricd killed mid-launch, its directory then cleaned up at
     * restart): the start socket deleted by anyone else, or the state dir
     * moved, ends the wait.  (The dir's own IN_DELETE_SELF would come only
     * after our socket, which pins it, is closed.) */
    int ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (ifd >= 0 && inotify_add_watch(ifd, s->a.state_dir, IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF) < 0) {
        if (errno == ENOENT) {
            close(ifd);
            close(lfd);
            sync_report(sync_fd, "error state dir '%s' is gone", s->a.state_dir);
            return -1;
        }
        close(ifd);
        ifd = -1;
    }
    sync_report(sync_fd, "ready %d\n", (int)getpid());
    if (sync_fd >= 0)
        close(sync_fd);
    int conn = -1;
    while (conn < 0) {
        struct pollfd pf[3] = {{lfd, POLLIN, 0}, {s->sigfd, POLLIN, 0}, {ifd, POLLIN, 0}};
        if (poll(pf, 3, -1) < 0 && errno != EINTR)
            break;
        if ((pf[2].revents & POLLIN) && start_sock_gone(ifd))
            break; /* removed: nothing will ever start us */
        struct signalfd_siginfo si;
        bool term = false;
        while (read(s->sigfd, &si, sizeof(si)) == sizeof(si))
            term |= si.ssi_signo != SIGCHLD; /* nothing to watch yet: a plain exit */
        if (term)
            break;
        if (pf[0].revents & POLLIN)
            conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    }
    /* One start only: a second connection finds no socket. */
    if (ifd >= 0)
        close(ifd);
    close(lfd);
    unlink(path);
    return conn;
}

/* Everything after setup: create, report, serve.  Returns main's exit code. */
static int shim_run(struct shim *s, int sync_fd)
{
    int r;
    if (s->a.log_path) {
        r = cshim_logw_open(&s->logw, s->a.log_path, s->a.log_size_max);
        if (r < 0) {
            sync_report(sync_fd, "error open log '%s': %s", s->a.log_path, strerror(-r));
            return 1;
        }
    }
    if (s->a.wait && (sync_fd = wait_for_start(s, sync_fd)) < 0)
        return 0;
    s->container = create_container(s, sync_fd);
    if (s->container <= 0) {
        cshim_srv_shutdown(&s->srv);
        return 1;
    }
    if (s->listen_err < 0) {
        sync_report(sync_fd, "error attach sockets in '%s': %s", s->a.state_dir, strerror(-s->listen_err));
        kill(s->container, SIGKILL);
        cshim_srv_shutdown(&s->srv);
        return 1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = CSHIM_TAG(CSHIM_EV_SIGNAL, 0)};
    epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->sigfd, &ev);
    for (int i = 0; i < 2; i++) {
        if (s->out_fd[i] < 0)
            continue;
        ev = (struct epoll_event){.events = EPOLLIN, .data.u64 = CSHIM_TAG(CSHIM_EV_OUTPUT, i)};
        epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->out_fd[i], &ev);
    }
    cshim_oom_init(&s->oom, s->container);
    s->srv.container = s->container;
    sync_report(sync_fd, "ok %d\n", (int)s->container);
    if (sync_fd >= 0)
        close(sync_fd);
    return serve(s);
}

int main(int argc, char **argv)
{
    struct shim s;
    memset(&s, 0, sizeof(s));
    if (parse_args(argc, argv, &s.a) < 0)
        return 125;
    signal(SIGPIPE, SIG_IGN);
    if (s.a.exec_mode)
        return cshim_exec_main(&s.a);

    int sync_fd = s.a.sync_fd;
    if (sync_fd >= 0)
        fcntl(sync_fd, F_SETFD, FD_CLOEXEC);
    close_fds_except(sync_fd);
    if (mkdir(s.a.state_dir, 0700) < 0 && errno != EEXIST) {
        sync_report(sync_fd, "error state dir '%s': %s", s.a.state_dir, strerror(errno));
        return 1;
    }
    /* Detach: the caller's child exits now; the grandchild leads its own session. */
    pid_t p = fork();
    if (p < 0) {
        sync_report(sync_fd, "error fork: %s", strerror(errno));
        return 1;
    }
    if (p > 0)
        return 0;
    setsid();
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    if (chdir("/") < 0)
        return 1;
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    char path[PATH_MAX];
    cshim_path(path, s.a.state_dir, CRIC_SHIM_LOG_FILE);
    int logfd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    dup2(devnull, 0);
    dup2(devnull, 1);
    dup2(logfd >= 0 ? logfd : devnull, 2);
    if (logfd > 2)
        close(logfd);
    if (devnull > 2)
        close(devnull);
    char pidbuf[32];
    int n = snprintf(pidbuf, sizeof(pidbuf), "%d\n", (int)getpid());
    cshim_path(path, s.a.state_dir, CRIC_SHIM_PID_FILE);
    cshim_write_atomic(path, pidbuf, (size_t)n);

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    s.sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    s.epfd = epoll_create1(EPOLL_CLOEXEC);
    s.out_fd[0] = s.out_fd[1] = -1;
    s.srv.epfd = s.epfd;
    s.srv.attach_fd = s.srv.control_fd = s.srv.stdin_fd = s.srv.pty_fd = -1;
    for (int i = 0; i < CSHIM_CLIENTS_MAX; i++)
        s.srv.clients[i].fd = -1;
    s.srv.logw = &s.logw;
    cshim_logw_init(&s.logw);
    if (s.sigfd < 0 || s.epfd < 0) {
        sync_report(sync_fd, "error signalfd/epoll: %s", strerror(errno));
        return 1;
    }
    /* Line buffers come from the heap so an idle shim never touches them. */
    for (int i = 0; i < 2; i++) {
        s.line[i] = malloc(sizeof(struct cshim_line));
        if (!s.line[i]) {
            sync_report(sync_fd, "error out of memory");
            return 1;
        }
        s.line[i]->stream = i + 1;
        s.line[i]->len = 0;
        s.line[i]->pending_since = 0;
    }
    int rc = shim_run(&s, sync_fd);
    cshim_logw_close(&s.logw);
    free(s.line[0]);
    free(s.line[1]);
    return rc;
}
