/* cricctl: a CRI client for troubleshooting and tests.
 *
 * Adding a command: write src/cricctl/cmd_<topic>.c with a handler
 *     int cricctl_cmd_<name>(struct cricctl *ctl, int argc, char **argv);
 * declare it below, add one line to the table in src/cricctl/commands.c and
 * the file to src/cricctl/local.am.  argv[0] is the command name; parse the
 * command's own options with getopt_long (optind is reset before the call,
 * use "+" mode if needed) and accept -o/--output via cricctl_set_output() if
 * the command prints objects.  A handler returns the process exit code; use
 * cricctl_call() for RPCs (it prints "cricctl: <STATUS>: <message>" itself). */
#ifndef CRIC_CRICCTL_H
#define CRIC_CRICCTL_H

#include <stdbool.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>
#include <yajl/yajl_gen.h>

#include "grpc/client.h"

enum cricctl_output {
    CRICCTL_OUT_TABLE, /* readable text (the default) */
    CRICCTL_OUT_JSON,
    CRICCTL_OUT_YAML,
};

struct cricctl {
    const char *endpoint;       /* unix:///run/cricd/cricd.sock */
    uint64_t timeout_ms;        /* connect and per-call deadline */
    enum cricctl_output output; /* from -o */
    cric_client *client;        /* connected on first call */
};

typedef int (*cricctl_cmd_fn)(struct cricctl *ctl, int argc, char **argv);

struct cricctl_command {
    const char *name;
    cricctl_cmd_fn fn;
    const char *usage;  /* arguments after the name, e.g. "[-o json|yaml] POD-ID..." */
    const char *help;   /* one line */
};

extern const struct cricctl_command cricctl_commands[];
extern const size_t cricctl_n_commands;

/** Unary call of "/runtime.v1.<service>/<method>".  Returns 0 with *resp set
 * (free with protobuf_c_message_free_unpacked), or prints the error and
 * returns the exit code (1). */
int cricctl_call(struct cricctl *ctl, const char *service, const char *method, const ProtobufCMessage *req,
                 const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp);
/** Server-streaming call; cb as in cric_client_stream.  0 or exit code. */
int cricctl_stream(struct cricctl *ctl, const char *service, const char *method, const ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *resp_desc, cric_client_stream_cb cb, void *data);

/** Parses "json", "yaml" or "table" into ctl->output; prints an error and
 * returns 2 if it is none of them. */
int cricctl_set_output(struct cricctl *ctl, const char *arg);
/** The option loop of a command whose only option is -o/--output.  0 or exit
 * code; the operands start at optind. */
int cricctl_parse_output_opt(struct cricctl *ctl, int argc, char **argv);
/** Prints a message as protojson (-o json) or YAML (-o yaml). 0 or exit code. */
int cricctl_print_message(struct cricctl *ctl, const ProtobufCMessage *msg);
/** Prints a JSON document in the format asked for (json or yaml). */
int cricctl_print_json(struct cricctl *ctl, const char *json);
/* A verbose status as crictl prints it: {"status": <message>, <info key>:
 * <info value parsed as JSON, else as a string>...}.  Begin, add the fields,
 * end; the adders do nothing and end fails if begin gave NULL. */
/** Opens the object (two-space indented if pretty); NULL if out of memory. */
yajl_gen cricctl_json_begin(bool pretty);
/** Adds "key": <msg as protojson>; nothing if msg is NULL. */
void cricctl_json_message(yajl_gen g, const char *key, const ProtobufCMessage *msg);
/** Adds one verbose info entry. */
void cricctl_json_info(yajl_gen g, const char *key, const char *value);
/** Closes the object and frees g; *out is the text (free it).  0 or -1. */
int cricctl_json_end(yajl_gen g, char **out);
/** Prints "cricctl: <message>" to stderr and returns 1. */
int cricctl_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/** A size as crictl prints it: "1.5MB" (powers of 1000). */
void cricctl_human_size(uint64_t bytes, char *out, size_t n);
/** Parses a duration: "500ms", "30s", "2m", "1h"; a bare number is seconds. */
int cricctl_parse_duration(const char *s, uint64_t *ms);

/* Commands (one line each in commands.c). */
int cricctl_cmd_version(struct cricctl *ctl, int argc, char **argv);
int cricctl_cmd_info(struct cricctl *ctl, int argc, char **argv);
int cricctl_cmd_pull(struct cricctl *ctl, int argc, char **argv);
int cricctl_cmd_images(struct cricctl *ctl, int argc, char **argv);
int cricctl_cmd_inspecti(struct cricctl *ctl, int argc, char **argv);
int cricctl_cmd_rmi(struct cricctl *ctl, int argc, char **argv);
int cricctl_cmd_imagefsinfo(struct cricctl *ctl, int argc, char **argv);
int cricctl_cmd_runp(struct cricctl *ctl, int argc, char **argv);
int cricctl_cmd_stopp(struct cricctl *ctl, int argc, char **argv);
int cricctl_cmd_rmp(struct cricctl *ctl, int argc, char **argv);
int cricctl_cmd_pods(struct cricctl *ctl, int argc, char **argv);
int cricctl_cmd_inspectp(struct cricctl *ctl, int argc, char **argv);
int cricctl_cmd_stats(struct cricctl *ctl, int argc, char **argv);
int cricctl_cmd_statsp(struct cricctl *ctl, int argc, char **argv);

#endif
