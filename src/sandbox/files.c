/* What a pod owns on the host besides its record: hostname/hosts/resolv.conf
 * files, the /dev/shm tmpfs, namespace pins, cgroup directories. */
#define _GNU_SOURCE
#include "config.h"
#include "sandbox/priv.h"
#include "util/cleanup.h"
#include "util/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif

static bool host_net(const struct cric_sandbox *sb)
{
    return sb->network_mode == RUNTIME__V1__NAMESPACE_MODE__NODE;
}

/* Pod files are written once, while the pod is CREATING and nothing reads
 * them yet, into its new directory: written in place (no temp + rename,
 * which cost 50-100 us each here) and not fsync'ed.  A pod half-created at
 * a crash is rolled back from its record, files and all. */
static int write_mode(const char *path, const char *s, mode_t mode, cric_error **err)
{
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return cric_error_sys(err, -errno, "create '%s'", path);
    size_t len = strlen(s);
    while (len > 0) {
        ssize_t n = write(fd, s, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return cric_error_sys(err, -errno, "write '%s'", path);
        s += n;
        len -= (size_t)n;
    }
    return 0;
}

static int write_str(const char *path, const char *s, cric_error **err)
{
    return write_mode(path, s, 0644, err);
}

static int copy_host_file(const char *src, const char *dst, const char *fallback, cric_error **err)
{
    _cleanup_free_ char *text = NULL;
    if (cric_read_file(src, 1024 * 1024, &text, NULL, NULL) < 0)
        return write_str(dst, fallback, err);
    return write_str(dst, text, err);
}

static int write_resolv(const struct cric_sandbox *sb, cric_error **err)
{
    const Runtime__V1__DNSConfig *dns = sb->config ? sb->config->dns_config : NULL;
    if (!dns || (!dns->n_servers && !dns->n_searches && !dns->n_options))
        return copy_host_file("/etc/resolv.conf", sb->resolv_path, "", err);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return cric_error_sys(err, -ENOMEM, "write '%s'", sb->resolv_path);
    for (size_t i = 0; i < dns->n_servers; i++)
        fprintf(f, "nameserver %s\n", dns->servers[i]);
    if (dns->n_searches) {
        fputs("search", f);
        for (size_t i = 0; i < dns->n_searches; i++)
            fprintf(f, " %s", dns->searches[i]);
        fputc('\n', f);
    }
    if (dns->n_options) {
        fputs("options", f);
        for (size_t i = 0; i < dns->n_options; i++)
            fprintf(f, " %s", dns->options[i]);
        fputc('\n', f);
    }
    fclose(f);
    int r = text ? write_str(sb->resolv_path, text, err) : cric_error_sys(err, -ENOMEM, "write resolv.conf");
    free(text);
    return r;
}

static bool has_newline(const char *s)
{
    return s && (strchr(s, '\n') || strchr(s, '\r'));
}

int sb__write_files(struct cric_sandbox_service *svc, struct cric_sandbox *sb, cric_error **err)
{
    (void)svc;
    const Runtime__V1__DNSConfig *dns = sb->config ? sb->config->dns_config : NULL;
    for (size_t i = 0; dns && i < dns->n_servers + dns->n_searches + dns->n_options; i++) {
        const char *s = i < dns->n_servers ? dns->servers[i]
                        : i < dns->n_servers + dns->n_searches ? dns->searches[i - dns->n_servers]
                                                               : dns->options[i - dns->n_servers - dns->n_searches];
        if (!*s || has_newline(s) || strchr(s, ' '))
            return cric_error_new(err, -EINVAL, "dns_config: '%s' is not a single word", s);
    }
    int r;
    if (host_net(sb)) {
        char hn[256] = "";
        gethostname(hn, sizeof(hn) - 1);
        char line[300];
        snprintf(line, sizeof(line), "%s\n", hn);
        r = write_str(sb->hostname_path, line, err);
        if (r == 0)
            r = copy_host_file("/etc/hosts", sb->hosts_path, "127.0.0.1\tlocalhost\n", err);
    } else {
        /* /etc/hosts names the pod's IP: written once CNI ADD gave it
         * (sb__write_hosts), not twice. */
        _cleanup_free_ char *line = NULL;
        if (asprintf(&line, "%s\n", sb->hostname) < 0)
            return cric_error_sys(err, -ENOMEM, "sandbox files");
        r = write_str(sb->hostname_path, line, err);
    }
    if (r == 0)
        r = write_resolv(sb, err);
    return r;
}

int sb__write_hosts(struct cric_sandbox *sb, cric_error **err)
{
    _cleanup_free_ char *text = NULL;
    const char *ip = sb->ips ? sb->ips[0] : NULL;
    if (asprintf(&text, "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s%s%s%s", ip ? ip : "",
                 ip ? "\t" : "", ip ? sb->hostname : "", ip ? "\n" : "") < 0)
        return cric_error_sys(err, -ENOMEM, "write '%s'", sb->hosts_path);
    return write_str(sb->hosts_path, text, err);
}

int sb__mount_shm(struct cric_sandbox_service *svc, struct cric_sandbox *sb, cric_error **err)
{
    if (!sb->shm_path)
        return 0;
    if (mkdir(sb->shm_path, 0755) < 0 && errno != EEXIST)
        return cric_error_sys(err, -errno, "mkdir '%s'", sb->shm_path);
    char opts[64];
    snprintf(opts, sizeof(opts), "mode=1777,size=%llu", (unsigned long long)svc->shm_size);
    if (mount("shm", sb->shm_path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) < 0)
        return cric_error_sys(err, -errno, "mount tmpfs on '%s'", sb->shm_path);
    sb->priv->shm_mounted = true;
    return 0;
}

void sb__umount_shm(struct cric_sandbox *sb)
{
    if (sb->shm_path && (sb->priv->shm_mounted || sb__pin_ok(sb->shm_path))) {
        umount2(sb->shm_path, MNT_DETACH);
        sb->priv->shm_mounted = false;
    }
}

bool sb__pin_ok(const char *path)
{
    struct statfs st;
    return path && statfs(path, &st) == 0 && (st.f_type == NSFS_MAGIC || st.f_type == TMPFS_MAGIC);
}

static bool is_nsfs(const char *path)
{
    struct statfs st;
    return path && statfs(path, &st) == 0 && st.f_type == NSFS_MAGIC;
}

void sb__unpin(struct cric_sandbox *sb)
{
    const char *pins[3] = { sb->netns_path, sb->ipcns_path, sb->utsns_path };
    for (int i = 0; i < 3; i++) {
        if (!pins[i])
            continue;
        /* Lazy unmount: a plugin or nsenter may still hold it open. */
        while (is_nsfs(pins[i]) && umount2(pins[i], MNT_DETACH) == 0)
            ;
        unlink(pins[i]);
    }
    if (sb->priv->ns_dir) {
        _cleanup_free_ char *pidf = NULL;
        if (asprintf(&pidf, "%s/pid", sb->priv->ns_dir) >= 0)
            unlink(pidf);
        rmdir(sb->priv->ns_dir);
    }
}

int64_t sb__proc_start(int pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    _cleanup_free_ char *text = NULL;
    if (pid <= 0 || cric_read_file(path, 4096, &text, NULL, NULL) < 0)
        return -1;
    char *p = strrchr(text, ')');
    if (!p || p[1] != ' ' || p[2] == 'Z' || p[2] == 'X')
        return -1;
    /* Field 3 is the state; starttime is field 22. */
    p += 2;
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (!p)
            return -1;
        p++;
    }
    return strtoll(p, NULL, 10);
}

int sb__check_sysctls(const struct cric_sandbox *sb, cric_error **err)
{
    const Runtime__V1__LinuxPodSandboxConfig *lx = sb->config ? sb->config->linux : NULL;
    for (size_t i = 0; lx && i < lx->n_sysctls; i++) {
        const char *k = lx->sysctls[i]->key, *v = lx->sysctls[i]->value;
        if (!k || !*k || !v || has_newline(k) || has_newline(v) || strstr(k, "..") || strchr(k, '/') ||
            strchr(k, '='))
            return cric_error_new(err, -EINVAL, "sysctl '%s': bad name or value", k ? k : "");
        bool ipc = strncmp(k, "kernel.shm", 10) == 0 || strncmp(k, "kernel.msg", 10) == 0 ||
                   strcmp(k, "kernel.sem") == 0 || strncmp(k, "fs.mqueue.", 10) == 0;
        bool net = strncmp(k, "net.", 4) == 0;
        if (!ipc && !net)
            return cric_error_new(err, -EINVAL, "sysctl '%s' is not namespaced (only net.*, kernel.shm*, "
                                  "kernel.msg*, kernel.sem, fs.mqueue.* are allowed)", k);
        if (net && host_net(sb))
            return cric_error_new(err, -EINVAL, "sysctl '%s' needs the pod's own network namespace, "
                                  "but the pod uses the host network", k);
        if (ipc && sb->ipc_mode == RUNTIME__V1__NAMESPACE_MODE__NODE)
            return cric_error_new(err, -EINVAL, "sysctl '%s' needs the pod's own IPC namespace, "
                                  "but the pod uses the host IPC namespace", k);
    }
    return 0;
}

/* cgroup mount points (v1 controllers, cgroup2), from mountinfo. */
static char **cgroup_mounts(void)
{
    _cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return NULL;
    char **v = calloc(1, sizeof(char *));
    size_t n = 0;
    char *line = NULL;
    size_t cap = 0;
    while (v && getline(&line, &cap, f) > 0) {
        char *sep = strstr(line, " - ");
        if (!sep)
            continue;
        char fstype[32] = "";
        if (sscanf(sep + 3, "%31s", fstype) != 1 || (strcmp(fstype, "cgroup") && strcmp(fstype, "cgroup2")))
            continue;
        char mp[4096];
        if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1)
            continue;
        char **nv = realloc(v, (n + 2) * sizeof(char *));
        if (!nv)
            break;
        v = nv;
        v[n++] = strdup(mp);
        v[n] = NULL;
    }
    free(line);
    return v;
}

static bool path_is_prefix(const char *prefix, const char *path)
{
    size_t n = strlen(prefix);
    return strncmp(prefix, path, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

static bool strv_add(char ***v, size_t *n, const char *s)
{
    char **nv = realloc(*v, (*n + 2) * sizeof(char *));
    if (!nv)
        return false;
    *v = nv;
    if (!(nv[*n] = strdup(s)))
        return false;
    nv[++*n] = NULL;
    return true;
}

int sb__cgroup_setup(struct cric_sandbox_service *svc, struct cric_sandbox *sb, cric_error **err)
{
    /* The systemd driver names slices; systemd creates them.  With cgroupfs
     * the parent path is created in every hierarchy so that the pod's
     * containers can be placed below it. */
    if (strcmp(svc->cgroup_driver, "systemd") == 0) {
        /* kubelet's systemd driver passes slice names ("kubepods-pod<uid>.slice");
         * a path here means kubelet and cricd disagree on the driver. */
        size_t l = strlen(sb->cgroup_parent);
        if (l && (strchr(sb->cgroup_parent, '/') || l < 7 || strcmp(sb->cgroup_parent + l - 6, ".slice") != 0))
            return cric_error_new(err, -EINVAL,
                                  "cgroup_parent '%s' is not a systemd slice name (\"name.slice\"), as the "
                                  "systemd cgroup driver needs; is kubelet using the cgroupfs driver?",
                                  sb->cgroup_parent);
        return 0;
    }
    if (sb->cgroup_parent[0] != '/')
        return 0;
    if (strstr(sb->cgroup_parent, "/../") || strstr(sb->cgroup_parent, "/.."))
        return cric_error_new(err, -EINVAL, "cgroup_parent '%s' must not contain '..'", sb->cgroup_parent);
    /* The hierarchies are mounted at boot: mountinfo (long on a busy host)
     * is read once, not for every pod. */
    if (!svc->cg_mounts)
        svc->cg_mounts = cgroup_mounts();
    char **mounts = svc->cg_mounts;
    size_t n = 0;
    char **created = calloc(1, sizeof(char *));
    int r = 0;
    for (size_t i = 0; mounts && mounts[i] && created && r == 0; i++) {
        _cleanup_free_ char *full = NULL;
        if (asprintf(&full, "%s%s", mounts[i], sb->cgroup_parent) < 0)
            break;
        size_t base = strlen(mounts[i]);
        /* Usually the parent exists already (the shared default): one
         * mkdir instead of one per path component. */
        if (mkdir(full, 0755) < 0 && errno == EEXIST)
            continue;
        if (access(full, F_OK) == 0) {
            /* Made just now: its ancestors existed. */
            if (!path_is_prefix(full + base, svc->cgroup_parent) && !strv_add(&created, &n, full))
                break;
            continue;
        }
        for (char *s = full + base + 1;; s++) {
            if (*s != '/' && *s != '\0')
                continue;
            char c = *s;
            *s = '\0';
            if (mkdir(full, 0755) == 0) {
                /* Never claim the shared default parent (or its ancestors):
                 * other pods hang off it. */
                if (!path_is_prefix(full + base, svc->cgroup_parent)) {
                    char **nc = realloc(created, (n + 2) * sizeof(char *));
                    if (nc) {
                        created = nc;
                        created[n++] = strdup(full);
                        created[n] = NULL;
                    }
                }
            } else if (errno != EEXIST) {
                /* A read-only or foreign hierarchy: containers will fail
                 * later with a precise error if they need it. */
                *s = c;
                break;
            }
            *s = c;
            if (c == '\0')
                break;
        }
    }
    if (!created)
        return cric_error_sys(err, -ENOMEM, "cgroup setup");
    sb->priv->cgroups_created = created;
    return r;
}

void sb__cgroup_cleanup(struct cric_sandbox *sb)
{
    char **v = sb->priv->cgroups_created;
    size_t n = 0;
    while (v && v[n])
        n++;
    while (n-- > 0)
        rmdir(v[n]); /* EBUSY when still in use: left for a later remove */
}
