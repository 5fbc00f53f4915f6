/* The process part of the spec: args (Docker's entrypoint/cmd rules), env,
 * and the user resolved against the image's own /etc/passwd and /etc/group. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/openat2.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "container/spec.h"
#include "util/cleanup.h"

size_t cric__spec_strv_len(char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

void cric__spec_strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

void cric_spec_info_free(struct cric_spec_info *info)
{
    free(info->groups);
    info->groups = NULL;
    info->n_groups = 0;
}

static int strv_append(char ***v, size_t *n, const char *s)
{
    char **nv = realloc(*v, (*n + 2) * sizeof(char *));
    if (!nv)
        return -ENOMEM;
    *v = nv;
    if (!(nv[*n] = strdup(s)))
        return -ENOMEM;
    nv[++*n] = NULL;
    return 0;
}

int cric__spec_args(const Runtime__V1__ContainerConfig *cfg, const struct cric_image_config *img, char ***out,
                    cric_error **err)
{
    /* Kubernetes' rules: command replaces the entrypoint and drops the image
     * cmd; args alone replace the image cmd. */
    char **v = NULL;
    size_t n = 0;
    int r = 0;
    if (cfg->n_command > 0) {
        for (size_t i = 0; i < cfg->n_command && r == 0; i++)
            r = strv_append(&v, &n, cfg->command[i]);
    } else {
        for (size_t i = 0; img && img->entrypoint && img->entrypoint[i] && r == 0; i++)
            r = strv_append(&v, &n, img->entrypoint[i]);
    }
    if (cfg->n_args > 0) {
        for (size_t i = 0; i < cfg->n_args && r == 0; i++)
            r = strv_append(&v, &n, cfg->args[i]);
    } else if (cfg->n_command == 0) {
        for (size_t i = 0; img && img->cmd && img->cmd[i] && r == 0; i++)
            r = strv_append(&v, &n, img->cmd[i]);
    }
    if (r < 0) {
        cric__spec_strv_free(v);
        return cric_error_sys(err, r, "process args");
    }
    if (n == 0 || v[0][0] == '\0') {
        cric__spec_strv_free(v);
        return cric_error_new(err, -EINVAL, "no command specified: the container config has no command and "
                                            "the image no entrypoint or cmd");
    }
    *out = v;
    return 0;
}

/* Replaces KEY=... in v or appends kv. */
static int env_set(char ***v, size_t *n, const char *kv)
{
    size_t klen = strcspn(kv, "=");
    for (size_t i = 0; i < *n; i++) {
        if (strncmp((*v)[i], kv, klen) == 0 && ((*v)[i][klen] == '=' || (*v)[i][klen] == '\0')) {
            char *d = strdup(kv);
            if (!d)
                return -ENOMEM;
            free((*v)[i]);
            (*v)[i] = d;
            return 0;
        }
    }
    return strv_append(v, n, kv);
}

static bool env_has(char **v, const char *key)
{
    size_t klen = strlen(key);
    for (size_t i = 0; v && v[i]; i++)
        if (strncmp(v[i], key, klen) == 0 && v[i][klen] == '=')
            return true;
    return false;
}

int cric__spec_env(const Runtime__V1__ContainerConfig *cfg, const struct cric_image_config *img,
                   const struct cric_spec_sandbox *sb, char ***out, cric_error **err)
{
    char **v = NULL;
    size_t n = 0;
    int r = 0;
    if (!env_has(img ? img->env : NULL, "PATH"))
        r = strv_append(&v, &n, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    if (r == 0 && sb && sb->hostname && sb->hostname[0]) {
        _cleanup_free_ char *h = NULL;
        if (asprintf(&h, "HOSTNAME=%s", sb->hostname) < 0)
            r = -ENOMEM;
        else
            r = strv_append(&v, &n, h);
    }
    if (r == 0 && cfg->tty)
        r = strv_append(&v, &n, "TERM=xterm");
    for (size_t i = 0; r == 0 && img && img->env && img->env[i]; i++)
        r = env_set(&v, &n, img->env[i]);
    for (size_t i = 0; r == 0 && i < cfg->n_envs; i++) {
        const char *k = cfg->envs[i]->key;
        if (!k || !k[0] || strchr(k, '=')) {
            cric__spec_strv_free(v);
            return cric_error_new(err, -EINVAL, "envs[%zu]: invalid variable name '%s'", i, k ? k : "");
        }
        _cleanup_free_ char *kv = NULL;
        if (asprintf(&kv, "%s=%s", k, cfg->envs[i]->value ? cfg->envs[i]->value : "") < 0)
            r = -ENOMEM;
        else
            r = env_set(&v, &n, kv);
    }
    if (r < 0) {
        cric__spec_strv_free(v);
        return cric_error_sys(err, r, "process env");
    }
    *out = v;
    return 0;
}

/* Opens a file of the container's root filesystem, resolving symlinks inside
 * it: an image's /etc/passwd -> /../../host is its own business, not ours. */
static FILE *rootfs_fopen(const char *rootfs, const char *rel)
{
    _cleanup_close_ int dfd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return NULL;
    struct open_how how = {.flags = O_RDONLY | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
    int fd = (int)syscall(SYS_openat2, dfd, rel, &how, sizeof(how));
    if (fd < 0)
        return NULL;
    FILE *f = fdopen(fd, "r");
    if (!f)
        close(fd);
    return f;
}

static bool parse_id(const char *s, uint32_t *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > UINT32_MAX || s[0] == '-')
        return false;
    *out = (uint32_t)v;
    return true;
}

/* Finds a passwd entry by name (name != NULL) or by uid; 0 found, -ENOENT not. */
static int passwd_lookup(const char *rootfs, const char *name, uint32_t uid, uint32_t *out_uid, uint32_t *out_gid,
                         char **out_name)
{
    _cleanup_fclose_ FILE *f = rootfs_fopen(rootfs, "etc/passwd");
    if (!f)
        return -ENOENT;
    char line[1024];
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        char *save = NULL, *fields[4] = {0};
        char *p = line;
        /* strsep keeps empty fields (the password field often is). */
        for (int i = 0; i < 4; i++)
            fields[i] = strsep(&p, ":");
        (void)save;
        uint32_t u, g;
        if (!fields[3] || !parse_id(fields[2], &u) || !parse_id(fields[3], &g))
            continue;
        if (name ? strcmp(fields[0], name) == 0 : u == uid) {
            *out_uid = u;
            *out_gid = g;
            if (out_name)
                *out_name = strdup(fields[0]);
            return 0;
        }
    }
    return -ENOENT;
}

static int group_lookup(const char *rootfs, const char *name, uint32_t *out_gid)
{
    _cleanup_fclose_ FILE *f = rootfs_fopen(rootfs, "etc/group");
    if (!f)
        return -ENOENT;
    char line[4096];
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        char *p = line, *gname = strsep(&p, ":");
        strsep(&p, ":");
        char *gid = strsep(&p, ":");
        uint32_t g;
        if (gname && parse_id(gid, &g) && strcmp(gname, name) == 0) {
            *out_gid = g;
            return 0;
        }
    }
    return -ENOENT;
}

static int add_gid(struct cric_spec_info *info, uint32_t g)
{
    for (size_t i = 0; i < info->n_groups; i++)
        if (info->groups[i] == g)
            return 0;
    uint32_t *ng = realloc(info->groups, (info->n_groups + 1) * sizeof(uint32_t));
    if (!ng)
        return -ENOMEM;
    info->groups = ng;
    info->groups[info->n_groups++] = g;
    return 0;
}

/* The groups /etc/group lists the user as a member of. */
static int member_groups(const char *rootfs, const char *user, struct cric_spec_info *info)
{
    _cleanup_fclose_ FILE *f = rootfs_fopen(rootfs, "etc/group");
    if (!f || !user)
        return 0;
    char line[4096];
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        char *p = line;
        strsep(&p, ":");
        strsep(&p, ":");
        char *gid = strsep(&p, ":");
        uint32_t g;
        if (!p || !parse_id(gid, &g))
            continue;
        for (char *m; (m = strsep(&p, ","));)
            if (strcmp(m, user) == 0 && add_gid(info, g) < 0)
                return -ENOMEM;
    }
    return 0;
}

int cric__spec_user(const Runtime__V1__ContainerConfig *cfg, const struct cric_image_config *img,
                    const char *rootfs, struct cric_spec_info *info, cric_error **err)
{
    const Runtime__V1__LinuxContainerSecurityContext *sc =
        cfg->linux ? cfg->linux->security_context : NULL;
    uint32_t uid = 0, gid = 0;
    bool gid_set = false;
    _cleanup_free_ char *uname = NULL;
    _cleanup_free_ char *user = NULL;
    const char *group = NULL;
    int r;

    if (sc && sc->run_as_user) {
        if (sc->run_as_user->value < 0 || sc->run_as_user->value > UINT32_MAX)
            return cric_error_new(err, -EINVAL, "run_as_user %" PRId64 " out of range", sc->run_as_user->value);
        uid = (uint32_t)sc->run_as_user->value;
    } else if (sc && sc->run_as_username && sc->run_as_username[0]) {
        if (!(user = strdup(sc->run_as_username)))
            return -ENOMEM;
    } else if (img && img->user && img->user[0]) {
        if (!(user = strdup(img->user)))
            return -ENOMEM;
        char *colon = strchr(user, ':');
        if (colon) {
            *colon = '\0';
            group = colon + 1;
        }
    }
    /* A name, or a number that passwd may still know (for its gid). */
    if (user && !parse_id(user, &uid)) {
        uint32_t g;
        r = passwd_lookup(rootfs, user, 0, &uid, &g, &uname);
        if (r < 0)
            return cric_error_new(err, -EINVAL, "user '%s' not found in the image's /etc/passwd", user);
        gid = g;
        gid_set = true;
    } else {
        uint32_t u, g;
        if (passwd_lookup(rootfs, NULL, uid, &u, &g, &uname) == 0) {
            gid = g;
            gid_set = true;
        }
    }
    if (group && group[0]) {
        if (!parse_id(group, &gid) && group_lookup(rootfs, group, &gid) < 0)
            return cric_error_new(err, -EINVAL, "group '%s' not found in the image's /etc/group", group);
        gid_set = true;
    }
    if (sc && sc->run_as_group) {
        if (!(sc->run_as_user || (sc->run_as_username && sc->run_as_username[0])))
            return cric_error_new(err, -EINVAL, "run_as_group needs run_as_user or run_as_username");
        if (sc->run_as_group->value < 0 || sc->run_as_group->value > UINT32_MAX)
            return cric_error_new(err, -EINVAL, "run_as_group %" PRId64 " out of range", sc->run_as_group->value);
        gid = (uint32_t)sc->run_as_group->value;
        gid_set = true;
    }
    (void)gid_set;
    info->uid = uid;
    info->gid = gid;
    /* The primary group is listed too, as containerd and Docker do. */
    if ((r = add_gid(info, gid)) < 0 || (r = member_groups(rootfs, uname, info)) < 0)
        return cric_error_sys(err, r, "additional groups");
    for (size_t i = 0; sc && i < sc->n_supplemental_groups; i++) {
        if (sc->supplemental_groups[i] < 0 || sc->supplemental_groups[i] > UINT32_MAX)
            return cric_error_new(err, -EINVAL, "supplemental group %" PRId64 " out of range",
                                  sc->supplemental_groups[i]);
        if ((r = add_gid(info, (uint32_t)sc->supplemental_groups[i])) < 0)
            return cric_error_sys(err, r, "additional groups");
    }
    return 0;
}

static const struct {
    const char *name;
    int num;
    Runtime__V1__Signal cri;
} signals[] = {
    {"ABRT", SIGABRT, RUNTIME__V1__SIGNAL__SIGNAL_SIGABRT}, {"ALRM", SIGALRM, RUNTIME__V1__SIGNAL__SIGNAL_SIGALRM},
    {"BUS", SIGBUS, RUNTIME__V1__SIGNAL__SIGNAL_SIGBUS},    {"CHLD", SIGCHLD, RUNTIME__V1__SIGNAL__SIGNAL_SIGCHLD},
    {"CONT", SIGCONT, RUNTIME__V1__SIGNAL__SIGNAL_SIGCONT}, {"FPE", SIGFPE, RUNTIME__V1__SIGNAL__SIGNAL_SIGFPE},
    {"HUP", SIGHUP, RUNTIME__V1__SIGNAL__SIGNAL_SIGHUP},    {"ILL", SIGILL, RUNTIME__V1__SIGNAL__SIGNAL_SIGILL},
    {"INT", SIGINT, RUNTIME__V1__SIGNAL__SIGNAL_SIGINT},    {"IO", SIGIO, RUNTIME__V1__SIGNAL__SIGNAL_SIGIO},
    {"IOT", SIGIOT, RUNTIME__V1__SIGNAL__SIGNAL_SIGIOT},    {"KILL", SIGKILL, RUNTIME__V1__SIGNAL__SIGNAL_SIGKILL},
    {"PIPE", SIGPIPE, RUNTIME__V1__SIGNAL__SIGNAL_SIGPIPE}, {"POLL", SIGPOLL, RUNTIME__V1__SIGNAL__SIGNAL_SIGPOLL},
    {"PROF", SIGPROF, RUNTIME__V1__SIGNAL__SIGNAL_SIGPROF}, {"PWR", SIGPWR, RUNTIME__V1__SIGNAL__SIGNAL_SIGPWR},
    {"QUIT", SIGQUIT, RUNTIME__V1__SIGNAL__SIGNAL_SIGQUIT}, {"SEGV", SIGSEGV, RUNTIME__V1__SIGNAL__SIGNAL_SIGSEGV},
    {"STKFLT", SIGSTKFLT, RUNTIME__V1__SIGNAL__SIGNAL_SIGSTKFLT}, {"STOP", SIGSTOP, RUNTIME__V1__SIGNAL__SIGNAL_SIGSTOP},
    {"SYS", SIGSYS, RUNTIME__V1__SIGNAL__SIGNAL_SIGSYS},    {"TERM", SIGTERM, RUNTIME__V1__SIGNAL__SIGNAL_SIGTERM},
    {"TRAP", SIGTRAP, RUNTIME__V1__SIGNAL__SIGNAL_SIGTRAP}, {"TSTP", SIGTSTP, RUNTIME__V1__SIGNAL__SIGNAL_SIGTSTP},
    {"TTIN", SIGTTIN, RUNTIME__V1__SIGNAL__SIGNAL_SIGTTIN}, {"TTOU", SIGTTOU, RUNTIME__V1__SIGNAL__SIGNAL_SIGTTOU},
    {"URG", SIGURG, RUNTIME__V1__SIGNAL__SIGNAL_SIGURG},    {"USR1", SIGUSR1, RUNTIME__V1__SIGNAL__SIGNAL_SIGUSR1},
    {"USR2", SIGUSR2, RUNTIME__V1__SIGNAL__SIGNAL_SIGUSR2}, {"VTALRM", SIGVTALRM, RUNTIME__V1__SIGNAL__SIGNAL_SIGVTALRM},
    {"WINCH", SIGWINCH, RUNTIME__V1__SIGNAL__SIGNAL_SIGWINCH}, {"XCPU", SIGXCPU, RUNTIME__V1__SIGNAL__SIGNAL_SIGXCPU},
    {"XFSZ", SIGXFSZ, RUNTIME__V1__SIGNAL__SIGNAL_SIGXFSZ},
};

int cric_signal_parse(const char *s)
{
    if (!s || !*s)
        return -EINVAL;
    uint32_t n;
    if (parse_id(s, &n))
        return n >= 1 && n <= 64 ? (int)n : -EINVAL;
    if (strncasecmp(s, "SIG", 3) == 0)
        s += 3;
    for (size_t i = 0; i < ARRAY_SIZE(signals); i++)
        if (strcasecmp(signals[i].name, s) == 0)
            return signals[i].num;
    if (strncasecmp(s, "RTMIN", 5) == 0 || strncasecmp(s, "RTMAX", 5) == 0) {
        int base = s[4] == 'N' || s[4] == 'n' ? SIGRTMIN : SIGRTMAX;
        if (!s[5])
            return base;
        char *end;
        long off = strtol(s + 5, &end, 10);
        if (*end == '\0' && base + off >= SIGRTMIN && base + off <= SIGRTMAX)
            return (int)(base + off);
    }
    return -EINVAL;
}

int cric_signal_from_cri(Runtime__V1__Signal s)
{
    for (size_t i = 0; i < ARRAY_SIZE(signals); i++)
        if (signals[i].cri == s)
            return signals[i].num;
    return 0;
}

Runtime__V1__Signal cric_signal_to_cri(int sig)
{
    for (size_t i = 0; i < ARRAY_SIZE(signals); i++)
        if (signals[i].num == sig)
            return signals[i].cri;
    return RUNTIME__V1__SIGNAL__SIGNAL_RUNTIME_DEFAULT;
}
