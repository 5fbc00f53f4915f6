/* Runtime command lines, the runtime's error text, and exec mode. */
#define _GNU_SOURCE
#include "shim/cshim.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int cshim_runtime_argv(const struct cshim_args *a, const char *verb, char **argv, size_t cap, char bufs[][PATH_MAX])
{
    size_t n = 0;
#define ARG(x)                                                                                                         \
    do {                                                                                                               \
        if (n + 1 < cap)                                                                                               \
            argv[n++] = (char *)(x);                                                                                   \
    } while (0)
    ARG(a->runtime);
    if (a->runtime_root) {
        ARG("--root");
        ARG(a->runtime_root);
    }
    if (a->systemd_cgroup)
        ARG("--systemd-cgroup");
    if (a->state_dir) {
        cshim_path(bufs[0], a->state_dir, CRIC_SHIM_RUNTIME_LOG);
        ARG("--log");
        ARG(bufs[0]);
        ARG("--log-format");
        ARG("json");
    }
    ARG(verb);
    if (strcmp(verb, "run") == 0)
        ARG("--detach");
    if (strcmp(verb, "create") == 0 || strcmp(verb, "run") == 0) {
        ARG("--bundle");
        ARG(a->bundle);
        cshim_path(bufs[1], a->state_dir, CRIC_SHIM_CONTAINER_PID_FILE);
        ARG("--pid-file");
        ARG(bufs[1]);
        if (a->terminal) {
            cshim_path(bufs[2], a->state_dir, CRIC_SHIM_CONSOLE_SOCK);
            ARG("--console-socket");
            ARG(bufs[2]);
        }
        ARG(a->id);
    } else { /* exec: bufs[1] holds the pid file path */
        ARG("--pid-file");
        ARG(bufs[1]);
        if (a->process_path) {
            ARG("--process");
            ARG(a->process_path);
        }
        ARG(a->id);
        for (char **p = a->exec_argv; !a->process_path && p && *p; p++)
            ARG(*p);
    }
    argv[n] = NULL;
#undef ARG
    return (int)n;
}

/* Copies the JSON string value after `"key":"` into out, unescaping. */
static bool json_field(const char *line, const char *key, char *out, size_t cap)
{
    char pat[32];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *p = strstr(line, pat);
    if (!p)
        return false;
    p += strlen(pat);
    while (*p == ' ')
        p++;
    if (*p++ != '"')
        return false;
    size_t n = 0;
    for (; *p && *p != '"' && n + 1 < cap; p++) {
        char ch = *p;
        if (ch == '\\' && p[1]) {
            p++;
            switch (*p) {
            case 'n': ch = ' '; break;
            case 't': ch = ' '; break;
            case 'u': ch = '?'; p += strnlen(p, 5) >= 5 ? 4 : 0; break;
            default: ch = *p;
            }
        }
        out[n++] = ch;
    }
    out[n] = '\0';
    return true;
}

void cshim_runtime_error(const char *log_path, char *out, size_t cap)
{
    static char buf[65536]; /* only used on the failure path, once */
    out[0] = '\0';
    ssize_t len = cshim_read_small(log_path, buf, sizeof(buf));
    if (len <= 0)
        return;
    /* The last error-level line is the runtime's verdict. */
    for (char *line = buf; line && *line;) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char level[16];
        if (json_field(line, "level", level, sizeof(level)) &&
            (strcmp(level, "error") == 0 || strcmp(level, "fatal") == 0))
            json_field(line, "msg", out, cap);
        line = next;
    }
}

/* ------------------------------------------------------------- kill tree */

static pid_t proc_ppid(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if (cshim_read_small(path, buf, sizeof(buf)) <= 0)
        return -1;
    char *p = strrchr(buf, ')'); /* comm may contain spaces */
    int ppid;
    if (!p || sscanf(p + 1, " %*c %d", &ppid) != 1)
        return -1;
    return ppid;
}

/* SIGSTOPs every descendant of root (so none can fork away), repeating
 * until a pass finds no new one; then SIGKILLs root and them. */
void cshim_kill_tree(pid_t root)
{
    enum { MAX = 4096 };
    static pid_t tree[MAX];
    size_t n = 0;
    tree[n++] = root;
    kill(root, SIGSTOP);
    for (int pass = 0; pass < 20; pass++) {
        size_t before = n;
        DIR *d = opendir("/proc");
        if (!d)
            break;
        struct dirent *de;
        while ((de = readdir(d)) && n < MAX) {
            pid_t pid = atoi(de->d_name);
            if (pid <= 0)
                continue;
            pid_t pp = proc_ppid(pid);
            bool child = false, known = false;
            for (size_t i = 0; i < n; i++) {
                if (tree[i] == pid)
                    known = true;
                if (tree[i] == pp)
                    child = true;
            }
            if (child && !known) {
                kill(pid, SIGSTOP);
                tree[n++] = pid;
            }
        }
        closedir(d);
        if (n == before)
            break;
    }
    for (size_t i = 0; i < n; i++)
        kill(tree[i], SIGKILL);
}

/* --------------------------------------------------------------- exec mode */

struct capture {
    int fd;
    char *buf;
    size_t len, max;
    bool truncated;
};

static void capture_read(struct capture *c)
{
    char tmp[65536];
    ssize_t n = read(c->fd, tmp, sizeof(tmp));
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        close(c->fd);
        c->fd = -1;
        return;
    }
    size_t take = (size_t)n;
    if (c->len + take > c->max) {
        take = c->max - c->len;
        c->truncated = true;
    }
    memcpy(c->buf + c->len, tmp, take);
    c->len += take;
}

int cshim_exec_main(const struct cshim_args *a)
{
    char tmpl[] = "/tmp/cric-shim-exec.XXXXXX";
    if (!mkdtemp(tmpl)) {
        fprintf(stderr, "cric-shim: mkdtemp: %s\n", strerror(errno));
        return 125;
    }
    static char bufs[3][PATH_MAX];
    cshim_path(bufs[1], tmpl, "pid");
    char *argv[256];
    struct cshim_args ea = *a;
    ea.state_dir = NULL;
    cshim_runtime_argv(&ea, "exec", argv, 256, bufs);

    struct capture cap[2] = {{-1, NULL, 0, a->output_max, false}, {-1, NULL, 0, a->output_max, false}};
    int pipes[2][2];
    for (int i = 0; i < 2; i++) {
        cap[i].buf = malloc(a->output_max ? a->output_max : 1);
        if (!cap[i].buf || pipe2(pipes[i], O_CLOEXEC) < 0) {
            fprintf(stderr, "cric-shim: %s\n", strerror(errno ? errno : ENOMEM));
            return 125;
        }
        cap[i].fd = pipes[i][0];
    }
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "cric-shim: fork: %s\n", strerror(errno));
        return 125;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        dup2(pipes[0][1], 1);
        dup2(pipes[1][1], 2);
        execv(argv[0], argv);
        fprintf(stderr, "cric-shim: exec '%s': %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(pipes[0][1]);
    close(pipes[1][1]);

    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    bool timed_out = false, exited = false;
    int status = 0;
    int64_t kill_at = 0; /* after a timeout kill, stop waiting for EOF 2 s later */
    while (cap[0].fd >= 0 || cap[1].fd >= 0 || !exited) {
        struct pollfd pf[2] = {{cap[0].fd, POLLIN, 0}, {cap[1].fd, POLLIN, 0}};
        int r = poll(pf, 2, 100);
        for (int i = 0; i < 2 && r > 0; i++)
            if (pf[i].revents && cap[i].fd >= 0)
                capture_read(&cap[i]);
        if (!exited && waitpid(pid, &status, WNOHANG) == pid)
            exited = true;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        int64_t el = (int64_t)(now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (a->timeout_s && !timed_out && el >= (int64_t)a->timeout_s * 1000) {
            timed_out = true;
            kill_at = el;
            char pidbuf[32];
            pid_t target = cshim_read_small(bufs[1], pidbuf, sizeof(pidbuf)) > 0 ? atoi(pidbuf) : 0;
            if (target > 0)
                cshim_kill_tree(target);
            kill(pid, SIGKILL);
        }
        if (timed_out && exited && el - kill_at > 2000)
            break; /* an escaped writer still holds a pipe: stop waiting */
    }
    if (!exited)
        waitpid(pid, &status, 0);
    unlink(bufs[1]);
    rmdir(tmpl);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (timed_out)
        code = 137;
    printf("exit_code=%d timed_out=%d out_len=%zu out_truncated=%d err_len=%zu err_truncated=%d\n", code,
           timed_out, cap[0].len, cap[0].truncated, cap[1].len, cap[1].truncated);
    fflush(stdout);
    cshim_write_all(1, cap[0].buf, cap[0].len);
    cshim_write_all(1, cap[1].buf, cap[1].len);
    free(cap[0].buf);
    free(cap[1].buf);
    return 0;
}
