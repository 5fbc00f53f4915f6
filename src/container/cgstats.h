/* Resource usage read from cgroupfs (v1, hybrid and v2), /proc/<pid>/net/dev
 * and the container's writable layer.  Plain blocking file reads: callers run
 * them on the thread pool.  No state, no allocation kept. */
#ifndef CRIC_CONTAINER_CGSTATS_H
#define CRIC_CONTAINER_CGSTATS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where the controllers cricd reads are mounted ("" = not mounted). */
struct cg_mounts {
    char cpuacct[PATH_MAX]; /* v1 hierarchy holding cpuacct */
    char memory[PATH_MAX];  /* v1 memory */
    char pids[PATH_MAX];    /* v1 pids */
    char unified[PATH_MAX]; /* cgroup2 */
};

/* A cgroup named per controller (paths relative to each hierarchy's root). */
struct cg_paths {
    char cpuacct[PATH_MAX], memory[PATH_MAX], pids[PATH_MAX], unified[PATH_MAX];
};

struct cg_usage {
    bool cpu_ok, mem_ok, limit_ok, pids_ok;
    uint64_t cpu_ns;                      /* cumulative CPU time */
    uint64_t usage, working_set, rss;     /* bytes */
    uint64_t page_faults, major_page_faults;
    uint64_t limit;                       /* memory limit (only when limit_ok) */
    uint64_t pids;                        /* tasks in the cgroup */
};

#define CG_MAX_IFACES 16
struct net_iface {
    char name[32];
    uint64_t rx_bytes, rx_errors, tx_bytes, tx_errors;
};

/** Reads /proc/self/mountinfo.  0 or -errno. */
int cg_mounts_read(struct cg_mounts *m);
/** The cgroups of a process from /proc/<pid>/cgroup.  0 or -errno (-ESRCH: gone). */
int cg_paths_of_pid(int pid, struct cg_paths *p);
/** One path for every controller: a cgroupfs path ("/kubepods/pod1") or a
 * systemd slice name ("kubepods-pod1.slice", expanded to its nesting). */
int cg_paths_of_parent(const char *parent, struct cg_paths *p);
/** Fills what the hierarchies report; a missing file just leaves its _ok false. */
void cg_usage_read(const struct cg_mounts *m, const struct cg_paths *p, struct cg_usage *u);
/** Interfaces of pid's network namespace (loopback left out).  Count or -errno. */
int net_ifaces_read(int pid, struct net_iface *v, size_t cap);
/** Bytes (allocated blocks) and inodes below dir, not crossing mounts. 0 or -errno. */
int dir_usage(const char *dir, uint64_t *bytes, uint64_t *inodes);

#endif
