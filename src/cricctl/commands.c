/* The command table: one line per command, in the order `cricctl --help`
 * lists them. */
#include "config.h"

#include "cricctl/cricctl.h"

const struct cricctl_command cricctl_commands[] = {
    { "version", cricctl_cmd_version, "[-o json|yaml]", "show the runtime's name and versions" },
    { "info", cricctl_cmd_info, "[-o json|yaml]", "show the runtime's status and configuration" },
    { "runp", cricctl_cmd_runp, "[-r HANDLER] POD-CONFIG.json", "run a pod sandbox from a crictl pod config" },
    { "stopp", cricctl_cmd_stopp, "POD-ID...", "stop pod sandboxes (and their containers)" },
    { "rmp", cricctl_cmd_rmp, "POD-ID...", "remove pod sandboxes" },
    { "pods", cricctl_cmd_pods, "[--id ID] [--state ready|notready] [--label K=V]... [--name N] [-q] [-o json|yaml]",
      "list pod sandboxes" },
    { "inspectp", cricctl_cmd_inspectp, "[-o json|yaml] POD-ID...", "show pod sandbox status and details" },
    /* runtime / image / pod / container commands are added below by their modules */
};

const size_t cricctl_n_commands = sizeof(cricctl_commands) / sizeof(cricctl_commands[0]);
