/* cric-pinns: creates a pod's namespaces and pins them with bind mounts so
 * they outlive every process in them (no pause image needed).
 *
 *   cric-pinns -d DIR [-n] [-i] [-u] [-p] [-H HOSTNAME] [-s KEY=VALUE]...
 *
 * -n/-i/-u: new network/IPC/UTS namespace, pinned at DIR/net, DIR/ipc,
 * DIR/uts; -H sets the hostname in the new UTS namespace; -s writes a
 * namespaced sysctl inside the new namespaces; -p: a new PID namespace whose
 * init is a minimal reaper ("cric-pause"), its pid written to DIR/pid.
 * Loopback is brought up in a new network namespace.  On failure the
 * message goes to stderr, everything this run mounted is unmounted, and the
 * exit status is 1. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *dir;
static const char *pinned[3];
static int n_pinned;

static void undo(void)
{
    for (int i = 0; i < n_pinned; i++) {
        char p[4096];
        snprintf(p, sizeof(p), "%s/%s", dir, pinned[i]);
        umount2(p, MNT_DETACH);
        unlink(p);
    }
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("cric-pinns: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    undo();
    exit(1);
}

static void pin(const char *ns)
{
    char src[64], dst[4096];
    snprintf(src, sizeof(src), "/proc/self/ns/%s", ns);
    snprintf(dst, sizeof(dst), "%s/%s", dir, ns);
    int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
    if (fd < 0)
        die("create '%s': %s", dst, strerror(errno));
    close(fd);
    if (mount(src, dst, NULL, MS_BIND, NULL) < 0) {
        int e = errno;
        unlink(dst);
        die("bind mount '%s' on '%s': %s", src, dst, strerror(e));
    }
    pinned[n_pinned++] = ns;
}

static void set_sysctl(const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv)
        die("sysctl '%s': expected KEY=VALUE", kv);
    char path[512] = "/proc/sys/";
    size_t off = strlen(path);
    for (const char *p = kv; p < eq && off + 1 < sizeof(path); p++)
        path[off++] = *p == '.' ? '/' : *p;
    path[off] = '\0';
    if (strstr(path, "..") || strchr(kv, '\n'))
        die("sysctl '%s': bad name", kv);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        die("sysctl '%.*s': open '%s': %s", (int)(eq - kv), kv, path, strerror(errno));
    size_t len = strlen(eq + 1);
    if (write(fd, eq + 1, len) != (ssize_t)len)
        die("sysctl '%.*s' = '%s': %s", (int)(eq - kv), kv, eq + 1, strerror(errno));
    close(fd);
}

static void loopback_up(void)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        die("socket: %s", strerror(errno));
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    strcpy(ifr.ifr_name, "lo");
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
        die("get flags of lo: %s", strerror(errno));
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
        die("bring lo up: %s", strerror(errno));
    close(s);
}

/* init of the pod's PID namespace: reaps orphans, nothing else.  Only
 * SIGKILL from outside the namespace ends it (signals without a handler are
 * ignored for a namespace init); SIGTERM/SIGINT are honoured too. */
static void pause_main(void)
{
    setsid();
    int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2)
            close(fd);
    }
    prctl(PR_SET_NAME, "cric-pause");
    if (chdir("/") < 0) {
        /* nothing useful to do about it */
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGTERM || sig == SIGINT)
            _exit(0);
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
    }
}

int main(int argc, char **argv)
{
    int flags = 0, opt;
    bool new_pid = false;
    const char *hostname = NULL;
    char **sysctls = calloc((size_t)argc, sizeof(char *));
    int n_sysctls = 0;
    while ((opt = getopt(argc, argv, "d:niupH:s:")) != -1) {
        switch (opt) {
        case 'd': dir = optarg; break;
        case 'n': flags |= CLONE_NEWNET; break;
        case 'i': flags |= CLONE_NEWIPC; break;
        case 'u': flags |= CLONE_NEWUTS; break;
        case 'p': new_pid = true; break;
        case 'H': hostname = optarg; break;
        case 's': sysctls[n_sysctls++] = optarg; break;
        default:
            fprintf(stderr, "usage: cric-pinns -d DIR [-n] [-i] [-u] [-p] [-H HOSTNAME] [-s KEY=VALUE]...\n");
            return 2;
        }
    }
    if (!dir)
        die("-d DIR is required");
    if (flags && unshare(flags) < 0)
        die("unshare: %s", strerror(errno));
    if (hostname && (flags & CLONE_NEWUTS) && sethostname(hostname, strlen(hostname)) < 0)
        die("sethostname '%s': %s", hostname, strerror(errno));
    if (flags & CLONE_NEWNET)
        loopback_up();
    for (int i = 0; i < n_sysctls; i++)
        set_sysctl(sysctls[i]);
    if (flags & CLONE_NEWNET)
        pin("net");
    if (flags & CLONE_NEWIPC)
        pin("ipc");
    if (flags & CLONE_NEWUTS)
        pin("uts");
    if (new_pid) {
        if (unshare(CLONE_NEWPID) < 0)
            die("unshare pid: %s", strerror(errno));
        pid_t pid = fork();
        if (pid < 0)
            die("fork: %s", strerror(errno));
        if (pid == 0)
            pause_main();
        char p[4096], tmp[4200], buf[32];
        snprintf(p, sizeof(p), "%s/pid", dir);
        snprintf(tmp, sizeof(tmp), "%s.tmp", p);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        int n = snprintf(buf, sizeof(buf), "%d\n", (int)pid);
        if (fd < 0 || write(fd, buf, (size_t)n) != n || fsync(fd) < 0 || close(fd) < 0 || rename(tmp, p) < 0) {
            int e = errno;
            kill(pid, SIGKILL);
            die("write '%s': %s", p, strerror(e));
        }
        /* No exit handlers: after unshare(CLONE_NEWPID) a sanitizer's
         * leak checker would create its tracer inside the new namespace
         * and hang. */
        free(sysctls);
        _exit(0);
    }
    free(sysctls);
    return 0;
}
