/* Mounts and devices of the spec. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <yajl/yajl_gen.h>

#include "container/spec.h"
#include "util/cleanup.h"
#include "util/fs.h"

#define GS(g, s) yajl_gen_string((g), (const unsigned char *)(s), strlen(s))

struct mnt {
    const char *dest, *type, *source;
    const char *opts[10];
    char *owned; /* a source we allocated */
};

static size_t depth(const char *p)
{
    size_t n = 0;
    for (; *p; p++)
        if (*p == '/' && p[1] && p[1] != '/')
            n++;
    return n;
}

static int cmp_depth(const void *a, const void *b)
{
    const struct mnt *x = a, *y = b;
    size_t dx = depth(x->dest), dy = depth(y->dest);
    return dx < dy ? -1 : dx > dy;
}

/* The optional fields of the mount holding path: "shared:N", "master:N". */
static int mount_propagation(const char *path, bool *shared, bool *slave)
{
    _cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return -errno;
    char line[4096];
    size_t best = 0;
    *shared = *slave = false;
    while (fgets(line, sizeof(line), f)) {
        char *save = NULL, *tok = strtok_r(line, " ", &save);
        char *mp = NULL;
        bool sh = false, sl = false;
        for (int i = 0; tok; i++, tok = strtok_r(NULL, " ", &save)) {
            if (i == 4)
                mp = tok;
            else if (i > 5 && strcmp(tok, "-") == 0)
                break;
            else if (i > 5 && strncmp(tok, "shared:", 7) == 0)
                sh = true;
            else if (i > 5 && strncmp(tok, "master:", 7) == 0)
                sl = true;
        }
        if (!mp)
            continue;
        size_t l = strlen(mp);
        bool under = strcmp(mp, "/") == 0 ||
                     (strncmp(path, mp, l) == 0 && (path[l] == '/' || path[l] == '\0'));
        if (under && l >= best) {
            best = l;
            *shared = sh;
            *slave = sl;
        }
    }
    return 0;
}

static int cri_mount(const Runtime__V1__Mount *m, size_t i, struct mnt *out, const char **rootfs_prop,
                     cric_error **err)
{
    if (!m->container_path || m->container_path[0] != '/')
        return cric_error_new(err, -EINVAL, "mounts[%zu]: container_path '%s' is not absolute", i,
                              m->container_path ? m->container_path : "");
    if (!m->host_path || m->host_path[0] != '/')
        return cric_error_new(err, -EINVAL, "mounts[%zu] (%s): host_path '%s' is not absolute", i, m->container_path,
                              m->host_path ? m->host_path : "");
    if (m->n_uidmappings || m->n_gidmappings)
        return cric_error_new(err, -EOPNOTSUPP, "mounts[%zu] (%s): idmapped mounts are not supported", i,
                              m->container_path);
    if (m->recursive_read_only)
        return cric_error_new(err, -EOPNOTSUPP,
                              "mounts[%zu] (%s): recursive_read_only is not supported by the OCI runtime", i,
                              m->container_path);
    if (m->image && m->image->image && m->image->image[0])
        return cric_error_new(err, -EOPNOTSUPP, "mounts[%zu] (%s): image volumes are not supported", i,
                              m->container_path);
    if (m->n_mount_options)
        return cric_error_new(err, -EOPNOTSUPP, "mounts[%zu] (%s): mount_options are not supported", i,
                              m->container_path);
    /* kubelet expects a missing host path to become a directory. */
    struct stat st;
    if (stat(m->host_path, &st) < 0) {
        if (errno != ENOENT)
            return cric_error_sys(err, -errno, "mounts[%zu]: stat '%s'", i, m->host_path);
        int r = cric_mkdir_p(m->host_path, 0755, err);
        if (r < 0)
            return cric_error_prefix(err, "mounts[%zu]", i);
    }
    char real[PATH_MAX];
    if (!realpath(m->host_path, real))
        return cric_error_sys(err, -errno, "mounts[%zu]: resolve '%s'", i, m->host_path);
    out->dest = m->container_path;
    out->type = "bind";
    out->source = m->host_path;
    size_t k = 0;
    out->opts[k++] = "rbind";
    switch (m->propagation) {
    case RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_BIDIRECTIONAL:
    case RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_HOST_TO_CONTAINER: {
        bool bidi = m->propagation == RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_BIDIRECTIONAL;
        bool sh = false, sl = false;
        if (mount_propagation(real, &sh, &sl) < 0)
            return cric_error_sys(err, -errno, "mounts[%zu]: read /proc/self/mountinfo", i);
        if (bidi && !sh)
            return cric_error_new(err, -EINVAL,
                                  "mounts[%zu]: bidirectional propagation needs '%s' on a shared mount", i,
                                  m->host_path);
        if (!bidi && !sh && !sl)
            return cric_error_new(err, -EINVAL,
                                  "mounts[%zu]: host-to-container propagation needs '%s' on a shared or slave mount",
                                  i, m->host_path);
        out->opts[k++] = bidi ? "rshared" : "rslave";
        if (bidi)
            *rootfs_prop = "rshared";
        else if (!*rootfs_prop)
            *rootfs_prop = "rslave";
        break;
    }
    default:
        out->opts[k++] = "rprivate";
    }
    if (m->readonly)
        out->opts[k++] = "ro";
    return 0;
}

int cric__spec_gen_mounts(struct yajl_gen_t *g, const Runtime__V1__ContainerConfig *cfg,
                          const struct cric_spec_sandbox *sb, const struct cric_spec_opts *opts, bool privileged,
                          bool readonly_rootfs, const char **rootfs_propagation, cric_error **err)
{
    (void)opts;
    size_t cap = 16 + cfg->n_mounts, n = 0;
    _cleanup_free_ struct mnt *m = calloc(cap, sizeof(*m));
    if (!m)
        return -ENOMEM;
    const char *sysro = privileged ? "rw" : "ro";
    m[n++] = (struct mnt){"/proc", "proc", "proc", {"nosuid", "noexec", "nodev"}, NULL};
    m[n++] = (struct mnt){"/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}, NULL};
    m[n++] = (struct mnt){"/dev/pts", "devpts", "devpts",
                          {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}, NULL};
    m[n++] = (struct mnt){"/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}, NULL};
    m[n++] = (struct mnt){"/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", sysro}, NULL};
    m[n++] = (struct mnt){"/sys/fs/cgroup", "cgroup", "cgroup", {"nosuid", "noexec", "nodev", "relatime", sysro},
                          NULL};
    if (sb && sb->shm_path && sb->shm_path[0])
        m[n++] = (struct mnt){"/dev/shm", "bind", sb->shm_path, {"rbind", "rprivate", "nosuid", "noexec", "nodev"},
                              NULL};
    else
        m[n++] = (struct mnt){"/dev/shm", "tmpfs", "shm",
                              {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}, NULL};
    const char *fro = readonly_rootfs ? "ro" : "rw";
    const struct {
        const char *dest, *src;
    } files[] = {{"/etc/hosts", sb ? sb->hosts_path : NULL},
                 {"/etc/resolv.conf", sb ? sb->resolv_path : NULL},
                 {"/etc/hostname", sb ? sb->hostname_path : NULL}};
    for (size_t i = 0; i < ARRAY_SIZE(files); i++)
        if (files[i].src && files[i].src[0])
            m[n++] = (struct mnt){files[i].dest, "bind", files[i].src, {"rbind", "rprivate", fro}, NULL};

    for (size_t i = 0; i < cfg->n_mounts; i++) {
        struct mnt cm = {0};
        int r = cri_mount(cfg->mounts[i], i, &cm, rootfs_propagation, err);
        if (r < 0)
            return r;
        /* A request for a destination replaces our default (and an earlier
         * request) for it. */
        size_t j;
        for (j = 0; j < n; j++)
            if (strcmp(m[j].dest, cm.dest) == 0)
                break;
        if (j < n) {
            memmove(&m[j], &m[j + 1], (n - j - 1) * sizeof(*m));
            n--;
        }
        m[n++] = cm;
    }
    /* Parents before children, ties in request order. */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && cmp_depth(&m[j - 1], &m[j]) > 0; j--) {
            struct mnt t = m[j];
            m[j] = m[j - 1];
            m[j - 1] = t;
        }

    GS(g, "mounts");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < n; i++) {
        yajl_gen_map_open(g);
        GS(g, "destination");
        GS(g, m[i].dest);
        GS(g, "type");
        GS(g, m[i].type);
        GS(g, "source");
        GS(g, m[i].source);
        GS(g, "options");
        yajl_gen_array_open(g);
        for (size_t k = 0; k < ARRAY_SIZE(m[i].opts) && m[i].opts[k]; k++)
            GS(g, m[i].opts[k]);
        yajl_gen_array_close(g);
        yajl_gen_map_close(g);
    }
    yajl_gen_array_close(g);
    return 0;
}

struct dev {
    char path[PATH_MAX];
    char type;
    unsigned major, minor;
    mode_t mode;
    char perms[4];
};

static int dev_add(struct dev **v, size_t *n, const char *cpath, const struct stat *st, const char *perms)
{
    if (*n >= 4096)
        return -E2BIG;
    struct dev *nv = realloc(*v, (*n + 1) * sizeof(**v));
    if (!nv)
        return -ENOMEM;
    *v = nv;
    struct dev *d = &nv[(*n)++];
    snprintf(d->path, sizeof(d->path), "%s", cpath);
    d->type = S_ISBLK(st->st_mode) ? 'b' : 'c';
    d->major = major(st->st_rdev);
    d->minor = minor(st->st_rdev);
    d->mode = st->st_mode & 07777;
    snprintf(d->perms, sizeof(d->perms), "%s", perms);
    return 0;
}

/* Every device node under /dev for privileged containers. */
static int host_devices(const char *dir, struct dev **v, size_t *n)
{
    _cleanup_closedir_ DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) < 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            if (strcmp(p, "/dev/pts") && strcmp(p, "/dev/shm") && strcmp(p, "/dev/mqueue")) {
                int r = host_devices(p, v, n);
                if (r < 0)
                    return r;
            }
        } else if ((S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) && strcmp(p, "/dev/console")) {
            int r = dev_add(v, n, p, &st, "rwm");
            if (r < 0)
                return r;
        }
    }
    return 0;
}

int cric__spec_gen_devices(struct yajl_gen_t *g, bool cgroup_rules, const Runtime__V1__ContainerConfig *cfg,
                           bool privileged, cric_error **err)
{
    yajl_gen rules = g;
    struct dev *v = NULL;
    size_t n = 0;
    int r = 0;
    if (privileged && (r = host_devices("/dev", &v, &n)) < 0) {
        free(v);
        return cric_error_sys(err, r, "host devices");
    }
    for (size_t i = 0; i < cfg->n_devices; i++) {
        const Runtime__V1__Device *d = cfg->devices[i];
        const char *perms = d->permissions && d->permissions[0] ? d->permissions : "rwm";
        if (!d->container_path || d->container_path[0] != '/' || strspn(perms, "rwm") != strlen(perms) ||
            strlen(perms) > 3) {
            free(v);
            return cric_error_new(err, -EINVAL, "devices[%zu]: bad container_path '%s' or permissions '%s'", i,
                                  d->container_path ? d->container_path : "", perms);
        }
        struct stat st;
        if (!d->host_path || stat(d->host_path, &st) < 0) {
            r = -errno;
            free(v);
            return cric_error_sys(err, r, "devices[%zu]: '%s'", i, d->host_path ? d->host_path : "");
        }
        if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode)) {
            free(v);
            return cric_error_new(err, -EINVAL, "devices[%zu]: '%s' is not a device node", i, d->host_path);
        }
        /* The same path asked again replaces the host's (privileged) entry. */
        size_t j;
        for (j = 0; j < n && strcmp(v[j].path, d->container_path); j++)
            ;
        if (j < n)
            v[j] = v[--n];
        if ((r = dev_add(&v, &n, d->container_path, &st, perms)) < 0) {
            free(v);
            return cric_error_sys(err, r, "devices");
        }
    }
    GS(g, "devices");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < n && !cgroup_rules; i++) {
        char t[2] = {v[i].type, 0};
        yajl_gen_map_open(g);
        GS(g, "path");
        GS(g, v[i].path);
        GS(g, "type");
        GS(g, t);
        GS(g, "major");
        yajl_gen_integer(g, v[i].major);
        GS(g, "minor");
        yajl_gen_integer(g, v[i].minor);
        GS(g, "fileMode");
        yajl_gen_integer(g, v[i].mode);
        GS(g, "uid");
        yajl_gen_integer(g, 0);
        GS(g, "gid");
        yajl_gen_integer(g, 0);
        yajl_gen_map_close(g);
    }
    if (!cgroup_rules) {
        yajl_gen_array_close(g);
        free(v);
        return 0;
    }
    /* Device cgroup: deny everything, then allow what was asked (runc adds
     * the standard /dev/null, zero, tty... rules itself). */
    yajl_gen_map_open(rules);
    GS(rules, "allow");
    yajl_gen_bool(rules, privileged);
    GS(rules, "access");
    GS(rules, "rwm");
    yajl_gen_map_close(rules);
    for (size_t i = 0; i < n && !privileged; i++) {
        char t[2] = {v[i].type, 0};
        yajl_gen_map_open(rules);
        GS(rules, "allow");
        yajl_gen_bool(rules, 1);
        GS(rules, "type");
        GS(rules, t);
        GS(rules, "major");
        yajl_gen_integer(rules, v[i].major);
        GS(rules, "minor");
        yajl_gen_integer(rules, v[i].minor);
        GS(rules, "access");
        GS(rules, v[i].perms);
        yajl_gen_map_close(rules);
    }
    yajl_gen_array_close(rules);
    free(v);
    return 0;
}
