/* Resource usage from cgroupfs, /proc and the writable layer (see cgstats.h). */
#define _GNU_SOURCE
#include "config.h"
#include "container/cgstats.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cleanup.h"

/* Is word one of the comma-separated items of list? */
static bool in_list(const char *list, const char *word)
{
    size_t wl = strlen(word);
    for (const char *p = list; p && *p;) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == wl && strncmp(p, word, wl) == 0)
            return true;
        p = e ? e + 1 : NULL;
    }
    return false;
}

/* mountinfo escapes blanks as \040 and so on. */
static void unescape(char *s)
{
    char *w = s;
    for (char *r = s; *r;) {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' && r[3] >= '0' && r[3] <= '7') {
            *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
            r += 4;
        } else {
            *w++ = *r++;
        }
    }
    *w = 0;
}

static void set_path(char *dst, const char *src)
{
    if (!dst[0])
        snprintf(dst, PATH_MAX, "%s", src);
}

int cg_mounts_read(struct cg_mounts *m)
{
    memset(m, 0, sizeof(*m));
    _cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return -errno;
    _cleanup_free_ char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        /* id parent maj:min root mountpoint opts [optional...] - fstype source superopts */
        char *sep = strstr(line, " - ");
        if (!sep)
            continue;
        *sep = 0;
        char *fields[5] = {0}, *save = NULL, *tok = strtok_r(line, " ", &save);
        for (int i = 0; tok && i < 5; i++, tok = strtok_r(NULL, " ", &save))
            fields[i] = tok;
        char *fstype = strtok_r(sep + 3, " ", &save);
        strtok_r(NULL, " ", &save); /* source */
        char *super = strtok_r(NULL, " \n", &save);
        if (!fields[4] || !fstype)
            continue;
        unescape(fields[4]);
        if (strcmp(fstype, "cgroup2") == 0) {
            set_path(m->unified, fields[4]);
        } else if (strcmp(fstype, "cgroup") == 0 && super) {
            if (in_list(super, "cpuacct"))
                set_path(m->cpuacct, fields[4]);
            if (in_list(super, "memory"))
                set_path(m->memory, fields[4]);
            if (in_list(super, "pids"))
                set_path(m->pids, fields[4]);
        }
    }
    return 0;
}

int cg_paths_of_pid(int pid, struct cg_paths *p)
{
    memset(p, 0, sizeof(*p));
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/cgroup", pid);
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    if (!f)
        return errno == ENOENT ? -ESRCH : -errno;
    _cleanup_free_ char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] == '\n')
            line[n - 1] = 0;
        /* hierarchy-id:controller-list:path */
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c2 = 0;
        const char *ctrls = c1 + 1, *cg = c2 + 1;
        if (!*ctrls)
            set_path(p->unified, cg);
        if (in_list(ctrls, "cpuacct"))
            set_path(p->cpuacct, cg);
        if (in_list(ctrls, "memory"))
            set_path(p->memory, cg);
        if (in_list(ctrls, "pids"))
            set_path(p->pids, cg);
    }
    return 0;
}

int cg_paths_of_parent(const char *parent, struct cg_paths *p)
{
    memset(p, 0, sizeof(*p));
    char buf[PATH_MAX];
    size_t l = strlen(parent);
    if (parent[0] == '/') {
        if (l >= sizeof(buf))
            return -ENAMETOOLONG;
        snprintf(buf, sizeof(buf), "%s", parent);
    } else if (l == 7 && strcmp(parent, "-.slice") == 0) {
        snprintf(buf, sizeof(buf), "/");
    } else if (l > 6 && strcmp(parent + l - 6, ".slice") == 0) {
        /* systemd nests "a-b-c.slice" as /a.slice/a-b.slice/a-b-c.slice. */
        size_t nl = l - 6, w = 0;
        for (size_t i = 1; i <= nl; i++) {
            if (i < nl && parent[i] != '-')
                continue;
            int k = snprintf(buf + w, sizeof(buf) - w, "/%.*s.slice", (int)i, parent);
            if (k < 0 || (size_t)k >= sizeof(buf) - w)
                return -ENAMETOOLONG;
            w += (size_t)k;
        }
    } else {
        return -EINVAL;
    }
    snprintf(p->cpuacct, PATH_MAX, "%s", buf);
    snprintf(p->memory, PATH_MAX, "%s", buf);
    snprintf(p->pids, PATH_MAX, "%s", buf);
    snprintf(p->unified, PATH_MAX, "%s", buf);
    return 0;
}

/* "<mount><cg>/<file>" into a NUL-terminated buffer; false when absent. */
static bool read_cg(const char *mount, const char *cg, const char *file, char *buf, size_t n)
{
    if (!mount[0] || !cg[0])
        return false;
    char path[PATH_MAX * 2 + 64];
    snprintf(path, sizeof(path), "%s%s/%s", mount, strcmp(cg, "/") == 0 ? "" : cg, file);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t r = read(fd, buf, n - 1);
    close(fd);
    if (r <= 0)
        return false;
    buf[r] = 0;
    return true;
}

static bool read_u64(const char *mount, const char *cg, const char *file, uint64_t *v)
{
    char buf[64], *end;
    if (!read_cg(mount, cg, file, buf, sizeof(buf)))
        return false;
    errno = 0;
    unsigned long long x = strtoull(buf, &end, 10);
    if (errno || end == buf)
        return false;
    *v = x;
    return true;
}

/* The value of "key N" lines (memory.stat, cpu.stat). */
static bool stat_key(const char *text, const char *key, uint64_t *v)
{
    size_t kl = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, key, kl) == 0 && p[kl] == ' ') {
            *v = strtoull(p + kl + 1, NULL, 10);
            return true;
        }
    }
    return false;
}

/* v1 reports "no limit" as a huge page-rounded number. */
#define CG_V1_UNLIMITED (UINT64_C(1) << 62)

void cg_usage_read(const struct cg_mounts *m, const struct cg_paths *p, struct cg_usage *u)
{
    memset(u, 0, sizeof(*u));
    char stat[8192];
    /* CPU: v1 cpuacct where mounted (hybrid), else v2. */
    if (m->cpuacct[0] && p->cpuacct[0]) {
        u->cpu_ok = read_u64(m->cpuacct, p->cpuacct, "cpuacct.usage", &u->cpu_ns);
    } else if (read_cg(m->unified, p->unified, "cpu.stat", stat, sizeof(stat))) {
        uint64_t us;
        if ((u->cpu_ok = stat_key(stat, "usage_usec", &us)))
            u->cpu_ns = us * 1000;
    }
    /* Memory: working set = usage - inactive file pages, as kubelet/cAdvisor count it. */
    uint64_t inactive = 0;
    if (m->memory[0] && p->memory[0]) {
        if ((u->mem_ok = read_u64(m->memory, p->memory, "memory.usage_in_bytes", &u->usage))) {
            if (read_cg(m->memory, p->memory, "memory.stat", stat, sizeof(stat))) {
                stat_key(stat, "total_inactive_file", &inactive);
                stat_key(stat, "total_rss", &u->rss);
                stat_key(stat, "total_pgfault", &u->page_faults);
                stat_key(stat, "total_pgmajfault", &u->major_page_faults);
            }
            u->limit_ok = read_u64(m->memory, p->memory, "memory.limit_in_bytes", &u->limit) &&
                          u->limit < CG_V1_UNLIMITED;
        }
    } else if ((u->mem_ok = read_u64(m->unified, p->unified, "memory.current", &u->usage))) {
        if (read_cg(m->unified, p->unified, "memory.stat", stat, sizeof(stat))) {
            stat_key(stat, "inactive_file", &inactive);
            stat_key(stat, "anon", &u->rss);
            stat_key(stat, "pgfault", &u->page_faults);
            stat_key(stat, "pgmajfault", &u->major_page_faults);
        }
        u->limit_ok = read_u64(m->unified, p->unified, "memory.max", &u->limit); /* "max" fails to parse */
    }
    u->working_set = u->usage > inactive ? u->usage - inactive : 0;
    if (m->pids[0] && p->pids[0])
        u->pids_ok = read_u64(m->pids, p->pids, "pids.current", &u->pids);
    else
        u->pids_ok = read_u64(m->unified, p->unified, "pids.current", &u->pids);
}

int net_ifaces_read(int pid, struct net_iface *v, size_t cap)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/net/dev", pid);
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    if (!f)
        return errno == ENOENT ? -ESRCH : -errno;
    _cleanup_free_ char *line = NULL;
    size_t size = 0, n = 0;
    /* Two header lines, then "  name: rx_bytes packets errs drop fifo frame
     * compressed multicast tx_bytes packets errs ...". */
    for (int ln = 0; getline(&line, &size, f) > 0; ln++) {
        char *colon = strchr(line, ':');
        if (ln < 2 || !colon)
            continue;
        *colon = 0;
        char *name = line + strspn(line, " ");
        if (strcmp(name, "lo") == 0 || n >= cap)
            continue;
        unsigned long long x[16] = {0};
        int k = sscanf(colon + 1, "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &x[0], &x[1], &x[2],
                       &x[3], &x[4], &x[5], &x[6], &x[7], &x[8], &x[9], &x[10]);
        if (k < 11)
            continue;
        snprintf(v[n].name, sizeof(v[n].name), "%s", name);
        v[n].rx_bytes = x[0];
        v[n].rx_errors = x[2];
        v[n].tx_bytes = x[8];
        v[n].tx_errors = x[10];
        n++;
    }
    return (int)n;
}

static int du_at(int dirfd, dev_t dev, unsigned depth, uint64_t *bytes, uint64_t *inodes)
{
    if (depth > 256)
        return -ELOOP;
    DIR *d = fdopendir(dirfd);
    if (!d) {
        int r = -errno;
        close(dirfd);
        return r;
    }
    struct dirent *e;
    int r = 0;
    while (r == 0 && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue; /* removed meanwhile */
        *bytes += (uint64_t)st.st_blocks * 512;
        (*inodes)++;
        if (S_ISDIR(st.st_mode) && st.st_dev == dev) {
            int fd = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (fd >= 0)
                r = du_at(fd, dev, depth + 1, bytes, inodes);
        }
    }
    closedir(d);
    return r;
}

int dir_usage(const char *dir, uint64_t *bytes, uint64_t *inodes)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        int r = -errno;
        if (fd >= 0)
            close(fd);
        return r;
    }
    *bytes = (uint64_t)st.st_blocks * 512;
    *inodes = 1;
    return du_at(fd, st.st_dev, 0, bytes, inodes);
}
