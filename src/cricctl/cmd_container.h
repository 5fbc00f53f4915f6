/* cricctl container commands and the helpers `run` shares with them. */
#ifndef CRIC_CRICCTL_CMD_CONTAINER_H
#define CRIC_CRICCTL_CMD_CONTAINER_H

#include <stdbool.h>

#include "api.pb-c.h"
#include "cricctl/cricctl.h"

int cricctl_cmd_create(struct cricctl *ctl, int argc, char **argv);
int cricctl_cmd_start(struct cricctl *ctl, int argc, char **argv);
int cricctl_cmd_stop(struct cricctl *ctl, int argc, char **argv);
int cricctl_cmd_rm(struct cricctl *ctl, int argc, char **argv);
int cricctl_cmd_ps(struct cricctl *ctl, int argc, char **argv);
int cricctl_cmd_inspect(struct cricctl *ctl, int argc, char **argv);
int cricctl_cmd_exec(struct cricctl *ctl, int argc, char **argv);
int cricctl_cmd_logs(struct cricctl *ctl, int argc, char **argv);
int cricctl_cmd_run(struct cricctl *ctl, int argc, char **argv);

/** Reads a crictl-style JSON file into a new message; prints errors. */
int cricctl__load_json(const char *path, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out);
/** CreateContainer; *id malloc'd. */
int cricctl__create(struct cricctl *ctl, const char *pod, Runtime__V1__ContainerConfig *cc,
                    Runtime__V1__PodSandboxConfig *pc, char **id);
int cricctl__start(struct cricctl *ctl, const char *id);
int cricctl__status(struct cricctl *ctl, const char *id, bool verbose, Runtime__V1__ContainerStatusResponse **out);

#endif
