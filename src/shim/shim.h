/* Daemon side of cric-shim: launch a shim per container, learn of exits,
 * talk to its attach/control sockets, run exec-sync and the OCI runtime.
 *
 * Everything here runs on the daemon's loop thread and never blocks it
 * (except tiny reads of files under a shim's state directory).
 * Files in a shim state directory (see cric-shim(8)):
 *   shim.pid   pid of the cric-shim process       container.pid  the container's pid
 *   attach     attach socket (output + stdin)     control        control socket (no output)
 *   exit       exit record, once the container ended
 *   shim.log   the shim's own warnings
 */
#ifndef CRIC_SHIM_SHIM_H
#define CRIC_SHIM_SHIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "util/err.h"

/* ------------------------------------------------------------------ launch */

struct cric_shim_opts {
    const char *id;           /* container ID (required) */
    const char *bundle;       /* OCI bundle dir with config.json (required) */
    const char *runtime;      /* OCI runtime binary, e.g. /usr/sbin/runc (required) */
    const char *runtime_root; /* runtime --root, NULL = runtime default */
    bool systemd_cgroup;      /* runtime --systemd-cgroup */
    const char *state_dir;    /* per-container volatile dir, created 0700 if missing (required) */
    const char *exits_dir;    /* shared dir where "<id>" appears on exit, NULL = none */
    const char *log_path;     /* CRI log file, NULL = output is not logged */
    uint64_t log_size_max;    /* bytes; the log is truncated when it would pass this; 0 = no cap */
    bool terminal;            /* allocate a pty (runtime --console-socket) */
    bool stdin_open;          /* keep a stdin pipe the attach socket can write to */
    bool start;               /* `runtime run --detach`: the container is started, not just created */
    bool wait;                /* with start: set up, report ready, start on cric_shim_start */
    const char *shim_path;    /* NULL = cric_helper_path("cric-shim") */
    unsigned timeout_ms;      /* until the shim reports; 0 = 130 s (the shim gives create 120 s) */
};

/** Called once.  On success pid > 0 is the container's pid (created, not
 * started, unless opts.start; with opts.wait the shim's own pid: it is
 * ready and waits for cric_shim_start) and err is NULL; on failure pid is 0 and err (borrowed, valid
 * during the call) carries the runtime's own error text. */
typedef void (*cric_shim_launch_cb)(int pid, const cric_error *err, void *data);

/** Spawns cric-shim for o, which detaches and runs `<runtime> create`
 * (`<runtime> run --detach` with o->start).
 * Returns 0 (cb will be called) or -errno with *err set (cb never called).
 * The strings in o are copied.  After a failure the caller should still run
 * `<runtime> delete -f <id>`: a create that timed out may finish later. */
int cric_shim_launch(uv_loop_t *loop, const struct cric_shim_opts *o, cric_shim_launch_cb cb, void *data,
                     cric_error **err);

/** Starts the container of a shim launched with opts.wait: connects to its
 * start socket; cb gets the container's pid once it runs, or the runtime's
 * error.  -ESRCH in err: no shim is waiting (it is gone, or a start already
 * took it).  Returns 0 (cb will be called) or -errno with *err set. */
int cric_shim_start(uv_loop_t *loop, const char *state_dir, const char *id, unsigned timeout_ms,
                    cric_shim_launch_cb cb, void *data, cric_error **err);

/* ------------------------------------------------------------- exit & state */

struct cric_shim_exit {
    int status;           /* exit code, or 128+signal */
    int64_t exited_at_ns; /* CLOCK_REALTIME, ns since the epoch */
    bool oom_killed;      /* the kernel OOM killer hit the container's cgroup */
};

/** Reads <state_dir>/exit.  -ENOENT (no message) if the container has not
 * exited (or the shim died without recording it). */
int cric_shim_read_exit(const char *state_dir, struct cric_shim_exit *out, cric_error **err);

/** Parses one exit record (the content of an exit file). */
int cric_shim_parse_exit(const char *buf, size_t len, struct cric_shim_exit *out, cric_error **err);

enum cric_shim_state {
    CRIC_SHIM_RUNNING, /* the shim is alive (the container may still be "created") */
    CRIC_SHIM_EXITED,  /* exit record present: ex is filled */
    CRIC_SHIM_LOST,    /* no live shim and no exit record (shim killed, never launched...) */
};

struct cric_shim_status {
    enum cric_shim_state state;
    int shim_pid;      /* 0 if unknown */
    int container_pid; /* 0 if unknown */
    struct cric_shim_exit ex;
};

/** Recovery after a daemon restart: what became of the shim owning state_dir.
 * Only reads small files and /proc. */
int cric_shim_status(const char *state_dir, struct cric_shim_status *out, cric_error **err);

/** True if the shim of state_dir is alive (its pidfile names a live cric-shim). */
bool cric_shim_is_alive(const char *state_dir);

/* ------------------------------------------------------------ exit watcher */

typedef struct cric_shim_watch cric_shim_watch;

/** Called for every exit record that appears in the exits directory (name =
 * container ID), and by cric_shim_watch_scan for those already there.  May
 * be called more than once per ID: callers deduplicate.  ex is borrowed. */
typedef void (*cric_shim_exit_cb)(const char *id, const struct cric_shim_exit *ex, void *data);

/** Watches exits_dir (created if missing) with inotify on the loop. */
int cric_shim_watch_new(uv_loop_t *loop, const char *exits_dir, cric_shim_exit_cb cb, void *data,
                        cric_shim_watch **out, cric_error **err);
/** Reports every exit record already in the directory (exits that happened
 * while nobody watched).  Call once after cric_shim_watch_new. */
int cric_shim_watch_scan(cric_shim_watch *w, cric_error **err);
/** Stops watching; memory is released from the close callback. */
void cric_shim_watch_free(cric_shim_watch *w);
/** Removes <exits_dir>/<id> once the daemon has recorded the exit. */
int cric_shim_exit_forget(const char *exits_dir, const char *id, cric_error **err);

/* ---------------------------------------------------------- control socket */

/** Completion of a control request: err is NULL on success, borrowed. */
typedef void (*cric_shim_ctl_cb)(const cric_error *err, void *data);

/** Asks the shim to reopen its log file (after rotation).  cb runs once the
 * shim has reopened it (or failed).  Returns 0 or -errno with *err set. */
int cric_shim_reopen_log(uv_loop_t *loop, const char *state_dir, cric_shim_ctl_cb cb, void *data,
                         cric_error **err);
/** Resizes the container's terminal. */
int cric_shim_resize(uv_loop_t *loop, const char *state_dir, unsigned rows, unsigned cols, cric_shim_ctl_cb cb,
                     void *data, cric_error **err);
/** Sends sig to the container's init through its shim (its parent, so no
 * pid-reuse race).  -ESRCH once the init has exited; -EINVAL from a shim
 * that predates the request. */
int cric_shim_signal(uv_loop_t *loop, const char *state_dir, int sig, cric_shim_ctl_cb cb, void *data,
                     cric_error **err);
/** Closes the container's stdin (EOF on a pipe, ^D on a terminal). */
int cric_shim_close_stdin(uv_loop_t *loop, const char *state_dir, cric_shim_ctl_cb cb, void *data,
                          cric_error **err);

/* ----------------------------------------------------------- attach client */

typedef struct cric_shim_attach cric_shim_attach;

struct cric_shim_attach_cbs {
    /** Container output; stream is 1 (stdout; also a terminal) or 2 (stderr). */
    void (*on_output)(cric_shim_attach *a, int stream, const char *buf, size_t len, void *data);
    /** The connection ended: 0 = the shim closed it (container exited), or
     * -errno.  Called exactly once, also after cric_shim_attach_close; the
     * object is freed right after it returns. */
    void (*on_close)(cric_shim_attach *a, int status, void *data);
};

/** Connects to <state_dir>/attach.  The connect finishes in the background;
 * writes issued meanwhile are queued.  Returns 0 or -errno with *err set. */
int cric_shim_attach_open(uv_loop_t *loop, const char *state_dir, const struct cric_shim_attach_cbs *cbs,
                          void *data, cric_shim_attach **out, cric_error **err);
/** Sends stdin bytes (copied). */
int cric_shim_attach_write(cric_shim_attach *a, const void *buf, size_t len);
int cric_shim_attach_close_stdin(cric_shim_attach *a);
int cric_shim_attach_resize(cric_shim_attach *a, unsigned rows, unsigned cols);
/** Disconnects; on_close follows from the loop. */
void cric_shim_attach_close(cric_shim_attach *a);

/* -------------------------------------------------------------- exec sync */

struct cric_shim_exec_opts {
    const char *id;           /* container ID (required) */
    const char *runtime;      /* OCI runtime binary (required) */
    const char *runtime_root; /* NULL = runtime default */
    bool systemd_cgroup;      /* runtime --systemd-cgroup */
    const char *const *argv;  /* command, NULL-terminated (or process_path) */
    const char *process_path; /* OCI process.json for `exec --process`, instead of argv */
    unsigned timeout_s;       /* 0 = none; the process tree is killed past it */
    size_t output_max;        /* per stream; 0 = 16 MiB.  Past it output is cut and marked */
    const char *shim_path;    /* NULL = cric_helper_path("cric-shim") */
};

struct cric_shim_exec_result {
    int exit_code;      /* exit code or 128+signal (137 after a timeout kill) */
    bool timed_out;
    bool out_truncated; /* stdout was longer than output_max */
    bool err_truncated;
    char *out;          /* stdout bytes (NUL-terminated for convenience), owned by the result */
    size_t out_len;
    char *err;
    size_t err_len;
};

/** res is borrowed (freed after cb returns) and NULL on failure, when err is set. */
typedef void (*cric_shim_exec_cb)(const struct cric_shim_exec_result *res, const cric_error *err, void *data);

/** Runs a process in a running container through `cric-shim --exec`. */
int cric_shim_exec_sync(uv_loop_t *loop, const struct cric_shim_exec_opts *o, cric_shim_exec_cb cb, void *data,
                        cric_error **err);

/* ------------------------------------------------------- OCI runtime calls */

struct cric_runtime_result {
    int status;   /* exit code, 128+signal, or -errno (could not spawn, -ETIMEDOUT) */
    char *out;    /* stdout, NUL-terminated (at most 4 MiB kept) */
    size_t out_len;
    char *err;    /* stderr, NUL-terminated (at most 64 KiB kept) */
    size_t err_len;
};

/** res is borrowed: valid during the call. */
typedef void (*cric_runtime_cb)(const struct cric_runtime_result *res, void *data);

/** Runs argv[0] (absolute path) with argv, stdin /dev/null, capturing stdout
 * and stderr.  timeout_ms 0 = none (else SIGKILL and status -ETIMEDOUT).
 * Returns 0 (cb will run) or -errno with *err set (cb never runs). */
int cric_runtime_run(uv_loop_t *loop, const char *const *argv, unsigned timeout_ms, cric_runtime_cb cb,
                     void *data, cric_error **err);

/** The same at a lower CPU priority (nice, e.g. 10): for cleanup nobody
 * waits for, so that it does not slow requests down on a busy machine. */
int cric_runtime_run_nice(uv_loop_t *loop, const char *const *argv, unsigned timeout_ms, int nice,
                          cric_runtime_cb cb, void *data, cric_error **err);

/** A one-line message for a failed runtime call: the msg="..." of runc/crun's
 * error line if present, else the trimmed stderr, else "exit status N".
 * Returns a malloc'd string (NULL only on ENOMEM). */
char *cric_runtime_error_text(const struct cric_runtime_result *res);

#endif
