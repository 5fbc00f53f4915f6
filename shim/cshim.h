/* cric-shim internals: one struct per concern, all owned by main()'s stack;
 * nothing global.  libc only. */
#ifndef CSHIM_H
#define CSHIM_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "shim/shim_proto.h"

/* Longest line kept whole in one log record; a longer one becomes P records. */
#define CSHIM_LINE_MAX 65536
/* Attach clients at once, and the output each may lag behind before it is cut. */
#define CSHIM_CLIENTS_MAX 16
#define CSHIM_CLIENT_BACKLOG (1024 * 1024)
#define CSHIM_CLIENT_IN 4096

/* ---------------------------------------------------------------- util.c */
/** Warning to stderr (shim.log), prefixed with a timestamp. */
void cshim_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int cshim_write_all(int fd, const void *buf, size_t len);
/** Atomic write: tmp + rename (no fsync: state-dir files).  Returns 0 or -errno. */
int cshim_write_atomic(const char *path, const char *data, size_t len);
/** Reads at most cap-1 bytes of a small file, NUL-terminated; returns length or -errno. */
ssize_t cshim_read_small(const char *path, char *buf, size_t cap);
int64_t cshim_now_ns(void);
/** Joins dir and name into out (PATH_MAX); -ENAMETOOLONG if it does not fit. */
int cshim_path(char *out, const char *dir, const char *name);

/* ---------------------------------------------------------------- logw.c */
/* An unterminated line is written out as a P record once it has waited this long. */
#define CSHIM_PARTIAL_MS 1000

struct cshim_line {
    int stream;  /* 1 stdout, 2 stderr */
    size_t len;  /* bytes pending in buf (no '\n' among them after logw_lines) */
    int64_t pending_since; /* when the pending bytes arrived (0: none) */
    char buf[CSHIM_LINE_MAX];
};

struct cshim_logw {
    int fd;            /* -1: no log */
    char path[PATH_MAX];
    uint64_t size_max; /* 0 = no cap */
    uint64_t written;  /* bytes in the current file */
    bool giving_up;    /* container gone: a failing disk is retried only briefly */
    int64_t last_warn_ns;
};

void cshim_logw_init(struct cshim_logw *w);
/** Opens (append, create 0640) the log.  -errno on failure. */
int cshim_logw_open(struct cshim_logw *w, const char *path, uint64_t size_max);
/** Closes and opens the same path again (after rotation). */
int cshim_logw_reopen(struct cshim_logw *w);
void cshim_logw_close(struct cshim_logw *w);
/** Writes a record for each complete line in l->buf, then a P record if the
 * buffer is full, or (final) an F record for what is left.  Keeps the rest. */
void cshim_logw_lines(struct cshim_logw *w, struct cshim_line *l, bool final);
/** Writes the pending bytes as a P record (a line that is slow to end). */
void cshim_logw_partial(struct cshim_logw *w, struct cshim_line *l);
/** Formats "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ" (30 bytes + NUL) into out. */
void cshim_logw_timestamp(int64_t ns, char out[32]);

/* -------------------------------------------------------------- attach.c */
struct cshim_client {
    int fd;            /* -1: free slot */
    bool attach;       /* gets output; else a control connection */
    bool paused;       /* waiting for stdin to drain */
    unsigned char hdr[CRIC_SHIM_FRAME_HDR];
    size_t hdr_len;
    uint32_t remaining; /* payload bytes of the current frame still to come */
    unsigned char small[4];
    size_t small_len;
    char *in;           /* CSHIM_CLIENT_IN bytes, malloc'd on accept */
    size_t in_off, in_len;
    char *out;          /* pending output (malloc'd, bounded by CSHIM_CLIENT_BACKLOG) */
    size_t out_len, out_cap;
};

struct cshim_srv {
    int epfd;
    int attach_fd, control_fd; /* listening sockets, -1 if none */
    char attach_path[PATH_MAX], control_path[PATH_MAX];
    int stdin_fd;              /* container stdin (pipe write end or pty master), -1 if closed */
    bool stdin_is_pty;
    bool stdin_watch;          /* EPOLLOUT registered on stdin_fd */
    int pty_fd;                /* pty master for resize, -1 if none */
    pid_t container;           /* the container's init until reaped, else 0 (SIGNAL) */
    struct cshim_logw *logw;
    struct cshim_client clients[CSHIM_CLIENTS_MAX];
};

/* epoll tags: kind in the high 32 bits, index in the low. */
enum { CSHIM_EV_SIGNAL = 1, CSHIM_EV_OUTPUT, CSHIM_EV_ATTACH_LISTEN, CSHIM_EV_CONTROL_LISTEN, CSHIM_EV_CLIENT,
       CSHIM_EV_STDIN };
#define CSHIM_TAG(kind, idx) (((uint64_t)(kind) << 32) | (uint32_t)(idx))

int cshim_srv_listen(struct cshim_srv *s, const char *state_dir);
void cshim_srv_accept(struct cshim_srv *s, int listen_fd, bool attach);
void cshim_srv_client_event(struct cshim_srv *s, int idx, uint32_t events);
void cshim_srv_stdin_writable(struct cshim_srv *s);
/** Sends container output to every attach client. */
void cshim_srv_broadcast(struct cshim_srv *s, int stream, const char *buf, size_t len);
/** Closes listeners and every client, removes the socket files. */
void cshim_srv_shutdown(struct cshim_srv *s);

/* --------------------------------------------------------------- exitf.c */
struct cshim_oom {
    char path[PATH_MAX]; /* memory.oom_control (v1) or memory.events (v2), "" if unknown */
    long long base;      /* oom_kill count before the container ran */
};
/** Finds the container's memory cgroup from /proc/<pid>/cgroup. */
void cshim_oom_init(struct cshim_oom *o, pid_t pid);
bool cshim_oom_killed(const struct cshim_oom *o);
/** Writes <state_dir>/exit and, if exits_dir, <exits_dir>/<id>, atomically. */
int cshim_exit_write(const char *state_dir, const char *exits_dir, const char *id, int status, int64_t at_ns,
                     bool oom);

/* ------------------------------------------------------------- runtime.c */
struct cshim_args {
    const char *id, *bundle, *runtime, *runtime_root, *log_path, *state_dir, *exits_dir;
    uint64_t log_size_max;
    bool terminal, stdin_open, exec_mode;
    bool start;          /* `runtime run --detach`: create and start in one runtime process */
    bool wait;           /* set up, report "ready", start on a connection to <state>/start */
    bool systemd_cgroup; /* runtime --systemd-cgroup (the systemd cgroup driver) */
    int sync_fd;
    /* exec mode */
    const char *process_path;
    char **exec_argv;
    unsigned timeout_s;
    size_t output_max;
};

/** Runtime argv for create/run/exec; returns count.  Fills argv (cap entries). */
int cshim_runtime_argv(const struct cshim_args *a, const char *verb, char **argv, size_t cap, char bufs[][PATH_MAX]);
/** Pulls a readable message out of the runtime's JSON log (last error line). */
void cshim_runtime_error(const char *log_path, char *out, size_t cap);
/** Exec mode: runs `runtime exec`, prints the result on stdout.  Returns the exit status for main. */
int cshim_exec_main(const struct cshim_args *a);
/** Kills pid and every descendant (stopping them first so none escapes). */
void cshim_kill_tree(pid_t pid);

#endif
