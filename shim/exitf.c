/* The exit record and OOM detection (cgroup v1 memory.oom_control or v2
 * memory.events, both count "oom_kill"). */
#define _GNU_SOURCE
#include "shim/cshim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static long long oom_count(const char *path)
{
    char buf[1024];
    if (!path[0] || cshim_read_small(path, buf, sizeof(buf)) < 0)
        return -1;
    for (char *line = buf; line && *line;) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (strncmp(line, "oom_kill ", 9) == 0)
            return atoll(line + 9);
        line = next;
    }
    return -1;
}

void cshim_oom_init(struct cshim_oom *o, pid_t pid)
{
    o->path[0] = '\0';
    o->base = 0;
    char proc[64], buf[4096];
    snprintf(proc, sizeof(proc), "/proc/%d/cgroup", (int)pid);
    if (cshim_read_small(proc, buf, sizeof(buf)) < 0)
        return;
    char v2[PATH_MAX] = "";
    for (char *line = buf; line && *line;) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        /* "N:controllers:/path" */
        char *c = strchr(line, ':');
        char *p = c ? strchr(c + 1, ':') : NULL;
        if (p) {
            *p++ = '\0';
            c++;
            bool memory = false;
            for (char *tok = c; tok && *tok;) {
                char *comma = strchr(tok, ',');
                size_t n = comma ? (size_t)(comma - tok) : strlen(tok);
                if (n == 6 && strncmp(tok, "memory", 6) == 0)
                    memory = true;
                tok = comma ? comma + 1 : NULL;
            }
            if (memory) {
                snprintf(o->path, sizeof(o->path), "/sys/fs/cgroup/memory%s/memory.oom_control", p);
                break;
            }
            if (*c == '\0')
                snprintf(v2, sizeof(v2), "%s", p);
        }
        line = next;
    }
    if (!o->path[0] && v2[0]) {
        struct stat st;
        /* pure v2 mounts at /sys/fs/cgroup; a hybrid host has no v2 memory controller */
        if (stat("/sys/fs/cgroup/cgroup.controllers", &st) == 0)
            snprintf(o->path, sizeof(o->path), "/sys/fs/cgroup%s/memory.events", strcmp(v2, "/") ? v2 : "");
    }
    long long n = oom_count(o->path);
    o->base = n > 0 ? n : 0;
}

bool cshim_oom_killed(const struct cshim_oom *o)
{
    return oom_count(o->path) > o->base;
}

int cshim_exit_write(const char *state_dir, const char *exits_dir, const char *id, int status, int64_t at_ns,
                     bool oom)
{
    char rec[256], path[PATH_MAX];
    int n = snprintf(rec, sizeof(rec), "status=%d\nexited_at=%lld\noom_killed=%d\n", status, (long long)at_ns,
                     oom ? 1 : 0);
    int r = cshim_path(path, state_dir, CRIC_SHIM_EXIT_FILE);
    if (r == 0)
        r = cshim_write_atomic(path, rec, (size_t)n);
    if (r < 0)
        cshim_warn("writing exit record '%s': %s", path, strerror(-r));
    if (exits_dir) {
        int r2 = cshim_path(path, exits_dir, id);
        if (r2 == 0)
            r2 = cshim_write_atomic(path, rec, (size_t)n);
        if (r2 < 0)
            cshim_warn("writing exit record '%s': %s", path, strerror(-r2));
        if (r == 0)
            r = r2;
    }
    return r;
}
