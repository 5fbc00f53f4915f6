/* The command table: one line per command, in the order `cricctl --help`
 * lists them. */
#include "config.h"

#include "cricctl/cricctl.h"

const struct cricctl_command cricctl_commands[] = {
    { "version", cricctl_cmd_version, "[-o json|yaml]", "show the runtime's name and versions" },
    { "info", cricctl_cmd_info, "[-o json|yaml]", "show the runtime's status and configuration" },
    /* runtime / image / pod / container commands are added below by their modules */
};

const size_t cricctl_n_commands = sizeof(cricctl_commands) / sizeof(cricctl_commands[0]);
