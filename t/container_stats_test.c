/* src/container/cgstats.c: slice expansion, cgroup and /proc parsing on this
 * machine, writable layer accounting. */
#include "config.h"

#include <check.h>
#include "check_run.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "container/cgstats.h"
#include "util/fs.h"

START_TEST(parent_paths)
{
    struct cg_paths p;
    ck_assert_int_eq(cg_paths_of_parent("/kubepods/burstable/pod1", &p), 0);
    ck_assert_str_eq(p.memory, "/kubepods/burstable/pod1");
    ck_assert_str_eq(p.unified, "/kubepods/burstable/pod1");
    ck_assert_int_eq(cg_paths_of_parent("kubepods-burstable-pod1.slice", &p), 0);
    ck_assert_str_eq(p.cpuacct, "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice");
    ck_assert_int_eq(cg_paths_of_parent("system.slice", &p), 0);
    ck_assert_str_eq(p.pids, "/system.slice");
    ck_assert_int_eq(cg_paths_of_parent("-.slice", &p), 0);
    ck_assert_str_eq(p.memory, "/");
    ck_assert_int_eq(cg_paths_of_parent("relative/path", &p), -EINVAL);
}
END_TEST

START_TEST(self_usage)
{
    /* This process: its own cgroups are readable and it has used some CPU. */
    struct cg_mounts m;
    struct cg_paths p;
    struct cg_usage u;
    ck_assert_int_eq(cg_mounts_read(&m), 0);
    ck_assert(m.cpuacct[0] || m.unified[0]);
    ck_assert_int_eq(cg_paths_of_pid(getpid(), &p), 0);
    ck_assert(p.cpuacct[0] || p.unified[0]);
    cg_usage_read(&m, &p, &u);
    ck_assert(u.cpu_ok);
    ck_assert_uint_gt(u.cpu_ns, 0);
    ck_assert(u.mem_ok);
    ck_assert_uint_ge(u.usage, u.working_set);
    ck_assert_int_eq(cg_paths_of_pid(0x3fffffff, &p), -ESRCH);
}
END_TEST

START_TEST(ifaces)
{
    struct net_iface v[CG_MAX_IFACES];
    int n = net_ifaces_read(getpid(), v, CG_MAX_IFACES);
    ck_assert_int_ge(n, 0);
    for (int i = 0; i < n; i++)
        ck_assert_str_ne(v[i].name, "lo");
    ck_assert_int_eq(net_ifaces_read(0x3fffffff, v, CG_MAX_IFACES), -ESRCH);
}
END_TEST

START_TEST(layer_usage)
{
    char dir[] = "/tmp/cric-du-XXXXXX", path[64];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/sub", dir);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/sub/f", dir);
    int fd = open(path, O_WRONLY | O_CREAT, 0644);
    ck_assert_int_ge(fd, 0);
    static char buf[100000];
    memset(buf, 'x', sizeof(buf));
    ck_assert_int_eq(write(fd, buf, sizeof(buf)), (int)sizeof(buf));
    fsync(fd); /* allocate the blocks now */
    close(fd);
    snprintf(path, sizeof(path), "%s/link", dir);
    ck_assert_int_eq(symlink("/", path), 0); /* not followed */
    uint64_t bytes = 0, inodes = 0;
    ck_assert_int_eq(dir_usage(dir, &bytes, &inodes), 0);
    ck_assert_uint_eq(inodes, 4);
    ck_assert_uint_ge(bytes, sizeof(buf));
    ck_assert_uint_lt(bytes, 1 << 20);
    ck_assert_int_eq(cric_rm_rf(dir, NULL), 0);
    ck_assert_int_eq(dir_usage(dir, &bytes, &inodes), -ENOENT);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("container_stats");
    TCase *tc = tcase_create("cgstats");
    tcase_add_test(tc, parent_paths);
    tcase_add_test(tc, self_usage);
    tcase_add_test(tc, ifaces);
    tcase_add_test(tc, layer_usage);
    suite_add_tcase(s, tc);
    return cric_check_run(s, false);
}
