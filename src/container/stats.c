/* ContainerStats, ListContainerStats, PodSandboxStats, ListPodSandboxStats.
 * What to read is noted on the loop (ids, pids, cgroup parents, upper dirs),
 * the files are read on the thread pool, and the reply is built back on the
 * loop from the containers and pods still there, borrowing their strings. */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "container/arena.h"
#include "container/cgstats.h"
#include "container/internal.h"
#include "sandbox/sandbox.h"

struct cpu_sample {
    char id[65];
    int64_t ts;
    uint64_t cpu_ns;
};

struct st_ctr {
    char id[65];
    size_t pod;        /* index into st_job.p (pod stats only) */
    int pid;           /* > 0: running */
    char *upper;       /* writable layer */
    struct cg_usage u;
    bool fs_ok;
    uint64_t fs_bytes, fs_inodes;
};

struct st_pod {
    char id[65];
    char *parent;      /* the pod's own cgroup parent, or NULL (shared default) */
    int netpid;        /* a process in the pod's network namespace, or 0 */
    struct cg_usage u;
    struct net_iface ifs[CG_MAX_IFACES];
    int n_if;
};

struct st_job {
    uv_work_t w;
    struct cric_container_service *svc;
    bool pods;
    struct st_ctr *c;
    size_t nc, cap_c;
    struct st_pod *p;
    size_t np, cap_p;
    int64_t ts;
    cric_container_stats_fn ctr_done;
    cric_pod_stats_fn pod_done;
    void *data;
};

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void job_free(struct st_job *j)
{
    for (size_t i = 0; i < j->nc; i++)
        free(j->c[i].upper);
    for (size_t i = 0; i < j->np; i++)
        free(j->p[i].parent);
    free(j->c);
    free(j->p);
    free(j);
}

/* The job's callback with err, else an error made of code and what. */
static void job_fail(struct st_job *j, int code, const cric_error *err, const char *what)
{
    cric_error *e = NULL;
    if (err)
        code = err->code;
    else if (code == -ECANCELED)
        cric_error_new(&e, code, "%s: cricd is shutting down", what);
    else
        cric_error_sys(&e, code, "%s", what);
    if (j->pods)
        j->pod_done(j->data, code, err ? err : e, NULL);
    else
        j->ctr_done(j->data, code, err ? err : e, NULL);
    cric_error_free(e);
}

/* ------------------------------------------------------------ on the loop */

static bool prefix_ok(const char *have, const char *want)
{
    return !want || !*want || strncmp(have, want, strlen(want)) == 0;
}

static int add_ctr(struct st_job *j, const struct ctr *c, size_t pod)
{
    if (j->nc == j->cap_c) {
        size_t nc = j->cap_c ? j->cap_c * 2 : 8;
        struct st_ctr *v = realloc(j->c, nc * sizeof(*v));
        if (!v)
            return -ENOMEM;
        j->c = v;
        j->cap_c = nc;
    }
    struct st_ctr *s = &j->c[j->nc];
    memset(s, 0, sizeof(*s));
    snprintf(s->id, sizeof(s->id), "%s", c->id);
    s->pod = pod;
    s->pid = c->state == CTR_RUNNING ? c->pid : 0;
    if (asprintf(&s->upper, "%s/upper", c->dir) < 0)
        return -ENOMEM;
    j->nc++;
    return 0;
}

static bool ctr_labels_ok(const struct ctr *c, size_t n, Runtime__V1__ContainerStatsFilter__LabelSelectorEntry **sel)
{
    for (size_t i = 0; i < n; i++) {
        bool ok = false;
        for (size_t k = 0; !ok && k < c->config->n_labels; k++)
            ok = strcmp(c->config->labels[k]->key, sel[i]->key) == 0 &&
                 strcmp(c->config->labels[k]->value, sel[i]->value) == 0;
        if (!ok)
            return false;
    }
    return true;
}

static void work_run(uv_work_t *w);
static void work_done(uv_work_t *w, int status);

static void job_go(struct st_job *j)
{
    cric__svc_hold(j->svc);
    j->w.data = j;
    int r = uv_queue_work(j->svc->loop, &j->w, work_run, work_done);
    if (r < 0) {
        cric__svc_release(j->svc);
        job_fail(j, r, NULL, "stats");
        job_free(j);
    }
}

void cric_container_stats(struct cric_container_service *svc, const char *id,
                          const Runtime__V1__ContainerStatsFilter *f, cric_container_stats_fn done, void *data)
{
    cric_error *err = NULL;
    struct st_job *j = calloc(1, sizeof(*j));
    int r = 0;
    if (!j) {
        done(data, -ENOMEM, &(cric_error){.code = -ENOMEM, .msg = "container stats: out of memory"}, NULL);
        return;
    }
    j->svc = svc;
    j->ctr_done = done;
    j->data = data;
    if (id) {
        struct ctr *c = cric__ctr_find(svc, id, &err);
        if (!c) {
            r = err->code;
            goto fail;
        }
        if ((r = add_ctr(j, c, 0)) < 0)
            goto fail;
    } else {
        for (size_t i = 0; i < svc->n; i++) {
            const struct ctr *c = svc->v[i];
            if (c->state == CTR_CREATING)
                continue;
            if (f && (!prefix_ok(c->id, f->id) || !prefix_ok(c->sandbox_id, f->pod_sandbox_id) ||
                      !ctr_labels_ok(c, f->n_label_selector, f->label_selector)))
                continue;
            if ((r = add_ctr(j, c, 0)) < 0)
                goto fail;
        }
    }
    job_go(j);
    return;
fail:
    job_fail(j, r, err, "container stats");
    cric_error_free(err);
    job_free(j);
}

static const char *label_of(const Runtime__V1__PodSandboxConfig *cfg, const char *key)
{
    for (size_t i = 0; cfg && i < cfg->n_labels; i++)
        if (strcmp(cfg->labels[i]->key, key) == 0)
            return cfg->labels[i]->value;
    return NULL;
}

struct pod_collect {
    struct st_job *j;
    const Runtime__V1__PodSandboxStatsFilter *f;
    const char *id; /* exact (already resolved) id, or NULL */
    int r;
};

static void collect_pod(const struct cric_sandbox *sb, void *data)
{
    struct pod_collect *pc = data;
    struct st_job *j = pc->j;
    const Runtime__V1__PodSandboxStatsFilter *f = pc->f;
    if (pc->r < 0 || (pc->id && strcmp(sb->id, pc->id) != 0))
        return;
    if (f && !prefix_ok(sb->id, f->id))
        return;
    for (size_t i = 0; f && i < f->n_label_selector; i++) {
        const char *v = label_of(sb->config, f->label_selector[i]->key);
        if (!v || strcmp(v, f->label_selector[i]->value) != 0)
            return;
    }
    if (j->np == j->cap_p) {
        size_t nc = j->cap_p ? j->cap_p * 2 : 8;
        struct st_pod *v = realloc(j->p, nc * sizeof(*v));
        if (!v) {
            pc->r = -ENOMEM;
            return;
        }
        j->p = v;
        j->cap_p = nc;
    }
    struct st_pod *p = &j->p[j->np];
    memset(p, 0, sizeof(*p));
    snprintf(p->id, sizeof(p->id), "%s", sb->id);
    /* Only a parent of the pod's own (kubelet's pod<uid> cgroup) measures
     * this pod alone; under the shared default the containers are summed. */
    const Runtime__V1__PodSandboxConfig *cfg = sb->config;
    if (cfg && cfg->linux && cfg->linux->cgroup_parent && cfg->linux->cgroup_parent[0] &&
        !(p->parent = strdup(cfg->linux->cgroup_parent))) {
        pc->r = -ENOMEM;
        return;
    }
    if (sb->netns_path)
        p->netpid = sb->pause_pid > 0 ? sb->pause_pid : -1; /* -1: take a container's */
    size_t idx = j->np++;
    struct cric_container_service *svc = j->svc;
    for (size_t i = 0; i < svc->n && pc->r == 0; i++) {
        const struct ctr *c = svc->v[i];
        if (c->state == CTR_CREATING || strcmp(c->sandbox_id, sb->id) != 0)
            continue;
        pc->r = add_ctr(j, c, idx);
        if (p->netpid < 0 && c->state == CTR_RUNNING && c->pid > 0)
            p->netpid = c->pid;
    }
    if (p->netpid < 0)
        p->netpid = 0;
}

void cric_container_pod_stats(struct cric_container_service *svc, const char *id,
                              const Runtime__V1__PodSandboxStatsFilter *f, cric_pod_stats_fn done, void *data)
{
    cric_error *err = NULL;
    struct st_job *j = calloc(1, sizeof(*j));
    int r = 0;
    if (!j) {
        done(data, -ENOMEM, &(cric_error){.code = -ENOMEM, .msg = "pod sandbox stats: out of memory"}, NULL);
        return;
    }
    j->svc = svc;
    j->pods = true;
    j->pod_done = done;
    j->data = data;
    if (!svc->sandboxes) {
        r = -ENOTSUP;
        goto fail;
    }
    struct pod_collect pc = {.j = j, .f = id ? NULL : f};
    if (id) {
        const struct cric_sandbox *sb;
        if ((r = cric_sandbox_lookup(svc->sandboxes, id, &sb, &err)) < 0)
            goto fail;
        pc.id = sb->id;
    }
    cric_sandbox_foreach(svc->sandboxes, collect_pod, &pc);
    if ((r = pc.r) < 0)
        goto fail;
    job_go(j);
    return;
fail:
    job_fail(j, r, err, "pod sandbox stats");
    cric_error_free(err);
    job_free(j);
}

/* ----------------------------------------------------- on the thread pool */

static void work_run(uv_work_t *w)
{
    struct st_job *j = w->data;
    struct cg_mounts m;
    bool have_m = cg_mounts_read(&m) == 0;
    j->ts = now_ns();
    for (size_t i = 0; i < j->nc; i++) {
        struct st_ctr *s = &j->c[i];
        struct cg_paths p;
        if (have_m && s->pid > 0 && cg_paths_of_pid(s->pid, &p) == 0)
            cg_usage_read(&m, &p, &s->u);
        s->fs_ok = dir_usage(s->upper, &s->fs_bytes, &s->fs_inodes) == 0;
    }
    for (size_t i = 0; i < j->np; i++) {
        struct st_pod *s = &j->p[i];
        struct cg_paths p;
        if (have_m && s->parent && cg_paths_of_parent(s->parent, &p) == 0)
            cg_usage_read(&m, &p, &s->u);
        if (s->netpid > 0) {
            int n = net_ifaces_read(s->netpid, s->ifs, CG_MAX_IFACES);
            s->n_if = n > 0 ? n : 0;
        }
    }
}

/* ------------------------------------------------------ back on the loop */

static Runtime__V1__UInt64Value *u64(struct arena *a, uint64_t v)
{
    Runtime__V1__UInt64Value *x = arena_calloc(a, 1, sizeof(*x));
    if (x) {
        *x = (Runtime__V1__UInt64Value)RUNTIME__V1__UINT64_VALUE__INIT;
        x->value = v;
    }
    return x;
}

/* usage_nano_cores needs the previous reading of the same id. */
static bool cpu_rate(struct cric_container_service *svc, const char *id, int64_t ts, uint64_t cpu, uint64_t *rate)
{
    struct cpu_sample *s = NULL;
    for (size_t i = 0; i < svc->n_cpu_prev; i++)
        if (strcmp(svc->cpu_prev[i].id, id) == 0)
            s = &svc->cpu_prev[i];
    bool ok = false;
    if (s && ts > s->ts && cpu >= s->cpu_ns) {
        *rate = (uint64_t)((double)(cpu - s->cpu_ns) * 1e9 / (double)(ts - s->ts));
        ok = true;
    }
    if (!s) {
        struct cpu_sample *v = realloc(svc->cpu_prev, (svc->n_cpu_prev + 1) * sizeof(*v));
        if (!v)
            return ok;
        svc->cpu_prev = v;
        s = &v[svc->n_cpu_prev++];
        snprintf(s->id, sizeof(s->id), "%s", id);
    }
    s->ts = ts;
    s->cpu_ns = cpu;
    return ok;
}

/* Readings of ids no longer there are dropped, so the table stays as small as
 * the node's container and pod count. */
static void cpu_prune(struct cric_container_service *svc)
{
    size_t k = 0;
    for (size_t i = 0; i < svc->n_cpu_prev; i++) {
        const char *id = svc->cpu_prev[i].id;
        bool live = cric__ctr_find(svc, id, NULL) != NULL;
        const struct cric_sandbox *sb;
        if (!live && svc->sandboxes && cric_sandbox_lookup(svc->sandboxes, id, &sb, NULL) == 0)
            live = strcmp(sb->id, id) == 0;
        if (live)
            svc->cpu_prev[k++] = svc->cpu_prev[i];
    }
    svc->n_cpu_prev = k;
}

static Runtime__V1__CpuUsage *cpu_msg(struct arena *a, struct cric_container_service *svc, const char *id,
                                      int64_t ts, const struct cg_usage *u)
{
    if (!u->cpu_ok)
        return NULL;
    Runtime__V1__CpuUsage *x = arena_calloc(a, 1, sizeof(*x));
    if (!x)
        return NULL;
    *x = (Runtime__V1__CpuUsage)RUNTIME__V1__CPU_USAGE__INIT;
    x->timestamp = ts;
    x->usage_core_nano_seconds = u64(a, u->cpu_ns);
    uint64_t rate;
    if (cpu_rate(svc, id, ts, u->cpu_ns, &rate))
        x->usage_nano_cores = u64(a, rate);
    return x;
}

static Runtime__V1__MemoryUsage *mem_msg(struct arena *a, int64_t ts, const struct cg_usage *u)
{
    if (!u->mem_ok)
        return NULL;
    Runtime__V1__MemoryUsage *x = arena_calloc(a, 1, sizeof(*x));
    if (!x)
        return NULL;
    *x = (Runtime__V1__MemoryUsage)RUNTIME__V1__MEMORY_USAGE__INIT;
    x->timestamp = ts;
    x->working_set_bytes = u64(a, u->working_set);
    if (u->limit_ok)
        x->available_bytes = u64(a, u->limit > u->working_set ? u->limit - u->working_set : 0);
    x->usage_bytes = u64(a, u->usage);
    x->rss_bytes = u64(a, u->rss);
    x->page_faults = u64(a, u->page_faults);
    x->major_page_faults = u64(a, u->major_page_faults);
    return x;
}

static Runtime__V1__ContainerStats *ctr_msg(struct arena *a, struct st_job *j, const struct st_ctr *s)
{
    const struct ctr *c = cric__ctr_find(j->svc, s->id, NULL);
    if (!c || strcmp(c->id, s->id) != 0)
        return NULL; /* removed while we read */
    Runtime__V1__ContainerStats *x = arena_calloc(a, 1, sizeof(*x));
    Runtime__V1__ContainerAttributes *at = arena_calloc(a, 1, sizeof(*at));
    if (!x || !at)
        return NULL;
    *x = (Runtime__V1__ContainerStats)RUNTIME__V1__CONTAINER_STATS__INIT;
    *at = (Runtime__V1__ContainerAttributes)RUNTIME__V1__CONTAINER_ATTRIBUTES__INIT;
    at->id = (char *)c->id;
    at->metadata = c->config->metadata;
    COPY_MAP(a, at->n_labels, at->labels, Runtime__V1__ContainerAttributes__LabelsEntry,
             RUNTIME__V1__CONTAINER_ATTRIBUTES__LABELS_ENTRY__INIT, c->config->n_labels, c->config->labels);
    COPY_MAP(a, at->n_annotations, at->annotations, Runtime__V1__ContainerAttributes__AnnotationsEntry,
             RUNTIME__V1__CONTAINER_ATTRIBUTES__ANNOTATIONS_ENTRY__INIT, c->config->n_annotations,
             c->config->annotations);
    x->attributes = at;
    x->cpu = cpu_msg(a, j->svc, s->id, j->ts, &s->u);
    x->memory = mem_msg(a, j->ts, &s->u);
    if (s->fs_ok) {
        Runtime__V1__FilesystemUsage *fs = arena_calloc(a, 1, sizeof(*fs));
        Runtime__V1__FilesystemIdentifier *fid = arena_calloc(a, 1, sizeof(*fid));
        if (fs && fid) {
            *fs = (Runtime__V1__FilesystemUsage)RUNTIME__V1__FILESYSTEM_USAGE__INIT;
            *fid = (Runtime__V1__FilesystemIdentifier)RUNTIME__V1__FILESYSTEM_IDENTIFIER__INIT;
            fid->mountpoint = j->svc->ctr_dir;
            fs->timestamp = j->ts;
            fs->fs_id = fid;
            fs->used_bytes = u64(a, s->fs_bytes);
            fs->inodes_used = u64(a, s->fs_inodes);
            x->writable_layer = fs;
        }
    }
    return x;
}

static void reply_ctrs(struct st_job *j, struct arena *a)
{
    Runtime__V1__ListContainerStatsResponse resp = RUNTIME__V1__LIST_CONTAINER_STATS_RESPONSE__INIT;
    resp.stats = arena_calloc(a, j->nc, sizeof(*resp.stats));
    for (size_t i = 0; resp.stats && i < j->nc; i++) {
        Runtime__V1__ContainerStats *x = ctr_msg(a, j, &j->c[i]);
        if (x)
            resp.stats[resp.n_stats++] = x;
    }
    if (a->failed) {
        job_fail(j, -ENOMEM, NULL, "container stats");
        return;
    }
    j->ctr_done(j->data, 0, NULL, &resp);
}

/* The pod's own cgroup when it has one, else the sum of its containers. */
static void pod_usage(const struct st_job *j, size_t idx, struct cg_usage *u)
{
    const struct st_pod *p = &j->p[idx];
    if (p->u.cpu_ok || p->u.mem_ok) {
        *u = p->u;
        return;
    }
    memset(u, 0, sizeof(*u));
    for (size_t i = 0; i < j->nc; i++) {
        const struct cg_usage *c = &j->c[i].u;
        if (j->c[i].pod != idx)
            continue;
        if (c->cpu_ok)
            u->cpu_ok = true, u->cpu_ns += c->cpu_ns;
        if (c->mem_ok) {
            u->mem_ok = true;
            u->usage += c->usage, u->working_set += c->working_set, u->rss += c->rss;
            u->page_faults += c->page_faults, u->major_page_faults += c->major_page_faults;
        }
        if (c->pids_ok)
            u->pids_ok = true, u->pids += c->pids;
    }
}

static Runtime__V1__NetworkInterfaceUsage *iface_msg(struct arena *a, const struct net_iface *n)
{
    Runtime__V1__NetworkInterfaceUsage *x = arena_calloc(a, 1, sizeof(*x));
    if (!x)
        return NULL;
    *x = (Runtime__V1__NetworkInterfaceUsage)RUNTIME__V1__NETWORK_INTERFACE_USAGE__INIT;
    x->name = (char *)n->name;
    x->rx_bytes = u64(a, n->rx_bytes);
    x->rx_errors = u64(a, n->rx_errors);
    x->tx_bytes = u64(a, n->tx_bytes);
    x->tx_errors = u64(a, n->tx_errors);
    return x;
}

static Runtime__V1__PodSandboxStats *pod_msg(struct arena *a, struct st_job *j, size_t idx)
{
    const struct st_pod *p = &j->p[idx];
    const struct cric_sandbox *sb;
    if (cric_sandbox_lookup(j->svc->sandboxes, p->id, &sb, NULL) < 0 || strcmp(sb->id, p->id) != 0)
        return NULL;
    Runtime__V1__PodSandboxStats *x = arena_calloc(a, 1, sizeof(*x));
    Runtime__V1__PodSandboxAttributes *at = arena_calloc(a, 1, sizeof(*at));
    Runtime__V1__LinuxPodSandboxStats *l = arena_calloc(a, 1, sizeof(*l));
    if (!x || !at || !l)
        return NULL;
    *x = (Runtime__V1__PodSandboxStats)RUNTIME__V1__POD_SANDBOX_STATS__INIT;
    *at = (Runtime__V1__PodSandboxAttributes)RUNTIME__V1__POD_SANDBOX_ATTRIBUTES__INIT;
    *l = (Runtime__V1__LinuxPodSandboxStats)RUNTIME__V1__LINUX_POD_SANDBOX_STATS__INIT;
    at->id = (char *)sb->id;
    const Runtime__V1__PodSandboxConfig *cfg = sb->config;
    if (cfg) {
        at->metadata = cfg->metadata;
        COPY_MAP(a, at->n_labels, at->labels, Runtime__V1__PodSandboxAttributes__LabelsEntry,
                 RUNTIME__V1__POD_SANDBOX_ATTRIBUTES__LABELS_ENTRY__INIT, cfg->n_labels, cfg->labels);
        COPY_MAP(a, at->n_annotations, at->annotations, Runtime__V1__PodSandboxAttributes__AnnotationsEntry,
                 RUNTIME__V1__POD_SANDBOX_ATTRIBUTES__ANNOTATIONS_ENTRY__INIT, cfg->n_annotations,
                 cfg->annotations);
    }
    x->attributes = at;
    struct cg_usage u;
    pod_usage(j, idx, &u);
    l->cpu = cpu_msg(a, j->svc, p->id, j->ts, &u);
    l->memory = mem_msg(a, j->ts, &u);
    if (u.pids_ok) {
        Runtime__V1__ProcessUsage *pu = arena_calloc(a, 1, sizeof(*pu));
        if (pu) {
            *pu = (Runtime__V1__ProcessUsage)RUNTIME__V1__PROCESS_USAGE__INIT;
            pu->timestamp = j->ts;
            pu->process_count = u64(a, u.pids);
            l->process = pu;
        }
    }
    if (p->n_if > 0) {
        Runtime__V1__NetworkUsage *nu = arena_calloc(a, 1, sizeof(*nu));
        Runtime__V1__NetworkInterfaceUsage **v = arena_calloc(a, (size_t)p->n_if, sizeof(*v));
        if (nu && v) {
            *nu = (Runtime__V1__NetworkUsage)RUNTIME__V1__NETWORK_USAGE__INIT;
            nu->timestamp = j->ts;
            for (int i = 0; i < p->n_if; i++) {
                Runtime__V1__NetworkInterfaceUsage *iu = iface_msg(a, &p->ifs[i]);
                if (!iu)
                    continue;
                /* CNI's conventional name; else the first one. */
                if (strcmp(p->ifs[i].name, "eth0") == 0 || !nu->default_interface)
                    nu->default_interface = iu;
                v[nu->n_interfaces++] = iu;
            }
            nu->interfaces = v;
            l->network = nu;
        }
    }
    size_t nc = 0;
    for (size_t i = 0; i < j->nc; i++)
        nc += j->c[i].pod == idx;
    l->containers = arena_calloc(a, nc, sizeof(*l->containers));
    for (size_t i = 0; l->containers && i < j->nc; i++) {
        if (j->c[i].pod != idx)
            continue;
        Runtime__V1__ContainerStats *cs = ctr_msg(a, j, &j->c[i]);
        if (cs)
            l->containers[l->n_containers++] = cs;
    }
    x->linux = l;
    return x;
}

static void reply_pods(struct st_job *j, struct arena *a)
{
    Runtime__V1__ListPodSandboxStatsResponse resp = RUNTIME__V1__LIST_POD_SANDBOX_STATS_RESPONSE__INIT;
    resp.stats = arena_calloc(a, j->np, sizeof(*resp.stats));
    for (size_t i = 0; resp.stats && i < j->np && j->svc->sandboxes; i++) {
        Runtime__V1__PodSandboxStats *x = pod_msg(a, j, i);
        if (x)
            resp.stats[resp.n_stats++] = x;
    }
    if (a->failed) {
        job_fail(j, -ENOMEM, NULL, "pod sandbox stats");
        return;
    }
    j->pod_done(j->data, 0, NULL, &resp);
}

static void work_done(uv_work_t *w, int status)
{
    struct st_job *j = w->data;
    struct cric_container_service *svc = j->svc;
    struct arena a = {0};
    if (status < 0 || svc->closing) {
        job_fail(j, status < 0 ? status : -ECANCELED, NULL, "stats");
    } else if (j->pods) {
        reply_pods(j, &a);
    } else {
        reply_ctrs(j, &a);
    }
    if (!svc->closing)
        cpu_prune(svc);
    arena_free(&a);
    job_free(j);
    cric__svc_release(svc);
}
