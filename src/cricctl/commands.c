/* The command table: one line per command, in the order `cricctl --help`
 * lists them. */
#include "config.h"

#include "cricctl/cricctl.h"
#include "cricctl/cmd_container.h"

const struct cricctl_command cricctl_commands[] = {
    { "version", cricctl_cmd_version, "[-o json|yaml]", "show the runtime's name and versions" },
    { "info", cricctl_cmd_info, "[-o json|yaml]", "show the runtime's status and configuration" },
    { "pull", cricctl_cmd_pull, "[-q] [--creds USER:PASSWORD] [--auth BASE64] IMAGE", "pull an image from a registry" },
    { "images", cricctl_cmd_images, "[-q] [--digests] [-o json|yaml] [IMAGE]", "list images" },
    { "inspecti", cricctl_cmd_inspecti, "[-o json|yaml] IMAGE...", "show an image's status and config" },
    { "rmi", cricctl_cmd_rmi, "IMAGE...", "remove images" },
    { "imagefsinfo", cricctl_cmd_imagefsinfo, "[-o json|yaml]", "show the image store's disk usage" },
    { "runp", cricctl_cmd_runp, "[-r HANDLER] POD-CONFIG.json", "run a pod sandbox from a crictl pod config" },
    { "stopp", cricctl_cmd_stopp, "POD-ID...", "stop pod sandboxes (and their containers)" },
    { "rmp", cricctl_cmd_rmp, "POD-ID...", "remove pod sandboxes" },
    { "pods", cricctl_cmd_pods, "[--id ID] [--state ready|notready] [--label K=V]... [--name N] [-q] [-o json|yaml]",
      "list pod sandboxes" },
    { "inspectp", cricctl_cmd_inspectp, "[-o json|yaml] POD-ID...", "show pod sandbox status and details" },
    /* runtime / image / pod / container commands are added below by their modules */
    { "create", cricctl_cmd_create, "POD-ID CONTAINER-CONFIG.json POD-CONFIG.json", "create a container" },
    { "start", cricctl_cmd_start, "CONTAINER-ID...", "start created containers" },
    { "stop", cricctl_cmd_stop, "[-t SECONDS] CONTAINER-ID...", "stop running containers" },
    { "rm", cricctl_cmd_rm, "[-f] CONTAINER-ID...", "remove containers (killing running ones)" },
    { "ps", cricctl_cmd_ps,
      "[-a] [-q] [-o json|yaml] [--id ID] [--pod POD] [--state S] [--label K=V] [--name N]", "list containers" },
    { "inspect", cricctl_cmd_inspect, "[-o json|yaml] CONTAINER-ID...", "show containers' status and spec" },
    { "exec", cricctl_cmd_exec, "[--timeout D] CONTAINER-ID CMD [ARG...]", "run a command in a container (sync)" },
    { "logs", cricctl_cmd_logs, "[-f] [--tail N] [--since D] [-t] [--root DIR] CONTAINER-ID",
      "print a container's log (also while cricd is down)" },
    { "stats", cricctl_cmd_stats, "[-a] [-o json|yaml] [--id ID] [--pod POD] [--label K=V]... [-s SECONDS] [ID]",
      "show containers' CPU, memory and writable layer usage" },
    { "statsp", cricctl_cmd_statsp, "[-o json|yaml] [--id ID] [--label K=V]... [-s SECONDS] [POD-ID]",
      "show pod sandboxes' CPU, memory, network and process usage" },
    { "run", cricctl_cmd_run, "[--runtime HANDLER] [--pull] CONTAINER-CONFIG.json POD-CONFIG.json",
      "pull, run a pod, create and start a container" },
};

const size_t cricctl_n_commands = sizeof(cricctl_commands) / sizeof(cricctl_commands[0]);
