/* Test driver for src/shim: each subcommand runs one daemon-side call on a
 * libuv loop, prints its outcome, and closes the loop cleanly (uv_loop_close
 * must succeed: every handle closed).  Used by t/py/shim.py and bench/. */
#include "config.h"
#include "shim/shim.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct drv {
    uv_loop_t loop;
    const char *shim, *id, *bundle, *runtime, *root, *state, *exits, *log, *input, *until, *process;
    uint64_t log_size_max;
    bool terminal, stdin_open, close_stdin, no_wait, start, wait;
    int sig;
    unsigned rows, cols, timeout;
    size_t output_max;
    char **rest;
    int rc;
    /* wait / attach state */
    cric_shim_watch *watch;
    cric_shim_attach *attach;
    uv_timer_t timer;
    bool timer_on;
    char *seen;
    size_t seen_len;
};

static void stop_timer(struct drv *d)
{
    if (d->timer_on) {
        d->timer_on = false;
        uv_close((uv_handle_t *)&d->timer, NULL);
    }
}

/* ------------------------------------------------------------------ wait */

static void on_exit_rec(const char *id, const struct cric_shim_exit *ex, void *data)
{
    struct drv *d = data;
    if (!d->watch || strcmp(id, d->id) != 0)
        return;
    printf("exit status=%d oom_killed=%d exited_at=%lld\n", ex->status, ex->oom_killed, (long long)ex->exited_at_ns);
    fflush(stdout);
    d->rc = 0;
    cric_shim_watch_free(d->watch);
    d->watch = NULL;
    stop_timer(d);
}

static void on_timeout(uv_timer_t *t)
{
    struct drv *d = t->data;
    fprintf(stderr, "error: timed out\n");
    d->rc = 2;
    if (d->watch)
        cric_shim_watch_free(d->watch);
    d->watch = NULL;
    if (d->attach)
        cric_shim_attach_close(d->attach);
    stop_timer(d);
}

static void start_timer(struct drv *d)
{
    uv_timer_init(&d->loop, &d->timer);
    d->timer.data = d;
    d->timer_on = true;
    uv_timer_start(&d->timer, on_timeout, (d->timeout ? d->timeout : 60) * 1000ull, 0);
}

static int start_wait(struct drv *d)
{
    cric_error *e = NULL;
    if (cric_shim_watch_new(&d->loop, d->exits, on_exit_rec, d, &d->watch, &e) < 0) {
        fprintf(stderr, "error: %s\n", e->msg);
        cric_error_free(e);
        return 1;
    }
    d->rc = 2;
    start_timer(d);
    cric_shim_watch_scan(d->watch, NULL);
    return 0;
}

/* ---------------------------------------------------------- launch / start */

static void on_started(const struct cric_runtime_result *res, void *data)
{
    struct drv *d = data;
    if (res->status != 0) {
        char *m = cric_runtime_error_text(res);
        fprintf(stderr, "error: start: %s\n", m ? m : "?");
        free(m);
        d->rc = 1;
        return;
    }
    printf("started\n");
    fflush(stdout);
    d->rc = 0;
    if (!d->no_wait && d->exits)
        d->rc = start_wait(d);
}

static int start_container(struct drv *d)
{
    const char *argv[8];
    size_t n = 0;
    argv[n++] = d->runtime;
    if (d->root)
        argv[n++] = "--root", argv[n++] = d->root;
    argv[n++] = "start";
    argv[n++] = d->id;
    argv[n] = NULL;
    cric_error *e = NULL;
    if (cric_runtime_run(&d->loop, argv, 60000, on_started, d, &e) < 0) {
        fprintf(stderr, "error: %s\n", e->msg);
        cric_error_free(e);
        return 1;
    }
    return 0;
}

static void on_launched(int pid, const cric_error *err, void *data)
{
    struct drv *d = data;
    if (err) {
        fprintf(stderr, "error: %s\n", err->msg);
        d->rc = 1;
        return;
    }
    printf("pid %d\n", pid);
    fflush(stdout);
    d->rc = 0;
    if (d->rest && d->rest[0] && strcmp(d->rest[0], "run") == 0)
        d->rc = start_container(d);
}

/* ------------------------------------------------------------- control */

static void on_ctl(const cric_error *err, void *data)
{
    struct drv *d = data;
    if (err) {
        fprintf(stderr, "error: %s\n", err->msg);
        d->rc = 1;
    } else {
        printf("ok\n");
        d->rc = 0;
    }
}

/* -------------------------------------------------------------- attach */

static void on_output(cric_shim_attach *a, int stream, const char *buf, size_t len, void *data)
{
    struct drv *d = data;
    fwrite(buf, 1, len, stream == 2 ? stderr : stdout);
    fflush(stream == 2 ? stderr : stdout);
    if (d->until) {
        char *s = realloc(d->seen, d->seen_len + len + 1);
        if (!s)
            return;
        d->seen = s;
        memcpy(s + d->seen_len, buf, len);
        d->seen_len += len;
        s[d->seen_len] = '\0';
        if (memmem(s, d->seen_len, d->until, strlen(d->until))) {
            d->until = NULL;
            cric_shim_attach_close(a);
        }
    }
}

static void on_attach_close(cric_shim_attach *a, int status, void *data)
{
    struct drv *d = data;
    d->attach = NULL;
    if (status < 0 && d->rc != 2) {
        fprintf(stderr, "error: attach: %s\n", strerror(-status));
        d->rc = 1;
    } else if (d->rc != 2) {
        d->rc = 0;
    }
    stop_timer(d);
}

static int do_attach(struct drv *d)
{
    static const struct cric_shim_attach_cbs cbs = {on_output, on_attach_close};
    cric_error *e = NULL;
    if (cric_shim_attach_open(&d->loop, d->state, &cbs, d, &d->attach, &e) < 0) {
        fprintf(stderr, "error: %s\n", e->msg);
        cric_error_free(e);
        return 1;
    }
    if (d->rows)
        cric_shim_attach_resize(d->attach, d->rows, d->cols);
    if (d->input)
        cric_shim_attach_write(d->attach, d->input, strlen(d->input));
    if (d->close_stdin)
        cric_shim_attach_close_stdin(d->attach);
    d->rc = 1;
    start_timer(d);
    return 0;
}

/* ---------------------------------------------------------------- exec */

static void on_exec(const struct cric_shim_exec_result *res, const cric_error *err, void *data)
{
    struct drv *d = data;
    if (err) {
        fprintf(stderr, "error: %s\n", err->msg);
        d->rc = 1;
        return;
    }
    printf("exit_code=%d timed_out=%d out_truncated=%d err_truncated=%d\n", res->exit_code, res->timed_out,
           res->out_truncated, res->err_truncated);
    fwrite(res->out, 1, res->out_len, stdout);
    fwrite(res->err, 1, res->err_len, stderr);
    d->rc = 0;
}

/* ----------------------------------------------------------------- main */

static int run(struct drv *d, const char *cmd)
{
    cric_error *e = NULL;
    int r = 0;
    if (strcmp(cmd, "launch") == 0 || strcmp(cmd, "run") == 0) {
        struct cric_shim_opts o = {
            .id = d->id, .bundle = d->bundle, .runtime = d->runtime, .runtime_root = d->root,
            .state_dir = d->state, .exits_dir = d->exits, .log_path = d->log, .log_size_max = d->log_size_max,
            .terminal = d->terminal, .stdin_open = d->stdin_open, .start = d->start, .wait = d->wait, .shim_path = d->shim};
        r = cric_shim_launch(&d->loop, &o, on_launched, d, &e);
    } else if (strcmp(cmd, "start") == 0) {
        return start_container(d);
    } else if (strcmp(cmd, "go") == 0) { /* start through a --wait shim's start socket */
        r = cric_shim_start(&d->loop, d->state, d->id, 0, on_launched, d, &e);
    } else if (strcmp(cmd, "wait") == 0) {
        return start_wait(d);
    } else if (strcmp(cmd, "status") == 0) {
        struct cric_shim_status st;
        r = cric_shim_status(d->state, &st, &e);
        if (r == 0) {
            static const char *names[] = {"running", "exited", "lost"};
            printf("%s shim=%d container=%d", names[st.state], st.shim_pid, st.container_pid);
            if (st.state == CRIC_SHIM_EXITED)
                printf(" status=%d oom_killed=%d", st.ex.status, st.ex.oom_killed);
            printf(" alive=%d\n", cric_shim_is_alive(d->state));
            d->rc = 0;
        }
    } else if (strcmp(cmd, "reopen") == 0) {
        r = cric_shim_reopen_log(&d->loop, d->state, on_ctl, d, &e);
    } else if (strcmp(cmd, "resize") == 0) {
        r = cric_shim_resize(&d->loop, d->state, d->rows, d->cols, on_ctl, d, &e);
    } else if (strcmp(cmd, "signal") == 0) {
        r = cric_shim_signal(&d->loop, d->state, d->sig, on_ctl, d, &e);
    } else if (strcmp(cmd, "close-stdin") == 0) {
        r = cric_shim_close_stdin(&d->loop, d->state, on_ctl, d, &e);
    } else if (strcmp(cmd, "attach") == 0) {
        return do_attach(d);
    } else if (strcmp(cmd, "exec") == 0) {
        struct cric_shim_exec_opts o = {
            .id = d->id, .runtime = d->runtime, .runtime_root = d->root, .argv = (const char *const *)d->rest,
            .timeout_s = d->timeout, .output_max = d->output_max, .shim_path = d->shim,
            .process_path = d->process};
        r = cric_shim_exec_sync(&d->loop, &o, on_exec, d, &e);
    } else {
        fprintf(stderr, "unknown command '%s'\n", cmd);
        return 1;
    }
    if (r < 0) {
        fprintf(stderr, "error: %s\n", e ? e->msg : strerror(-r));
        cric_error_free(e);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"shim", 1, NULL, 'S'},  {"id", 1, NULL, 'i'},     {"bundle", 1, NULL, 'b'},     {"runtime", 1, NULL, 'r'},
        {"root", 1, NULL, 'R'},  {"state", 1, NULL, 's'},  {"exits", 1, NULL, 'e'},      {"log", 1, NULL, 'l'},
        {"log-size-max", 1, NULL, 'm'}, {"terminal", 0, NULL, 't'}, {"stdin", 0, NULL, 'I'},
        {"close-stdin", 0, NULL, 'c'},  {"no-wait", 0, NULL, 'n'},  {"rows", 1, NULL, 'y'},
        {"cols", 1, NULL, 'x'},  {"timeout", 1, NULL, 'T'}, {"output-max", 1, NULL, 'o'}, {"input", 1, NULL, 'N'},
        {"until", 1, NULL, 'u'}, {"process", 1, NULL, 'P'}, {"start", 0, NULL, 'G'},  {"signal", 1, NULL, 'K'},
        {"wait", 0, NULL, 'W'}, {NULL, 0, NULL, 0},
    };
    struct drv d;
    memset(&d, 0, sizeof(d));
    if (argc < 2) {
        fprintf(stderr, "usage: shim_driver COMMAND [options] [-- argv]\n");
        return 1;
    }
    const char *cmd = argv[1];
    int c;
    optind = 2;
    while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
        switch (c) {
        case 'S': d.shim = optarg; break;
        case 'i': d.id = optarg; break;
        case 'b': d.bundle = optarg; break;
        case 'r': d.runtime = optarg; break;
        case 'R': d.root = optarg; break;
        case 's': d.state = optarg; break;
        case 'e': d.exits = optarg; break;
        case 'l': d.log = optarg; break;
        case 'm': d.log_size_max = strtoull(optarg, NULL, 10); break;
        case 't': d.terminal = true; break;
        case 'I': d.stdin_open = true; break;
        case 'c': d.close_stdin = true; break;
        case 'n': d.no_wait = true; break;
        case 'y': d.rows = (unsigned)atoi(optarg); break;
        case 'x': d.cols = (unsigned)atoi(optarg); break;
        case 'T': d.timeout = (unsigned)atoi(optarg); break;
        case 'o': d.output_max = strtoull(optarg, NULL, 10); break;
        case 'N': d.input = optarg; break;
        case 'u': d.until = optarg; break;
        case 'P': d.process = optarg; break;
        case 'G': d.start = true; break;
        case 'W': d.wait = true; break;
        case 'K': d.sig = atoi(optarg); break;
        default: return 1;
        }
    }
    static char *run_word[] = {"run", NULL};
    d.rest = strcmp(cmd, "run") == 0 ? run_word : argv + optind;
    uv_loop_init(&d.loop);
    d.rc = 1;
    if (run(&d, cmd) != 0)
        d.rc = 1;
    uv_run(&d.loop, UV_RUN_DEFAULT);
    int lc = uv_loop_close(&d.loop);
    free(d.seen);
    if (lc != 0) {
        fprintf(stderr, "error: loop closed with open handles\n");
        return 3;
    }
    return d.rc;
}
