/* cricctl entry point: global flags, then one command from the table. */
#include "config.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cricctl/cricctl.h"

#define DEFAULT_ENDPOINT "unix:///run/cricd/cricd.sock"
#define DEFAULT_TIMEOUT_MS (2 * 60 * 1000)

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: cricctl [GLOBAL OPTION]... COMMAND [ARG]...\n"
            "A CRI v1 client for cricd (and any CRI runtime).\n"
            "\n"
            "Global options:\n"
            "  -r, --endpoint URL   CRI endpoint (default $CONTAINER_RUNTIME_ENDPOINT or\n"
            "                       " DEFAULT_ENDPOINT ")\n"
            "  -t, --timeout DUR    connect and per-call timeout: 500ms, 30s, 2m (default 2m)\n"
            "  -h, --help           this help;  -V, --version  cricctl's own version\n"
            "\n"
            "Commands:\n");
    for (size_t i = 0; i < cricctl_n_commands; i++)
        fprintf(f, "  %-10s %-28s %s\n", cricctl_commands[i].name, cricctl_commands[i].usage,
                cricctl_commands[i].help);
    fprintf(f, "\nErrors exit 1 with \"cricctl: <gRPC status>: <message>\".  See cricctl(1).\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "endpoint", required_argument, NULL, 'r' },
        { "runtime-endpoint", required_argument, NULL, 'r' },
        { "timeout", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    struct cricctl ctl = { .endpoint = DEFAULT_ENDPOINT, .timeout_ms = DEFAULT_TIMEOUT_MS };
    const char *env = getenv("CONTAINER_RUNTIME_ENDPOINT");
    if (env && env[0])
        ctl.endpoint = env;
    int c;
    /* "+": stop at the command so its options are its own. */
    while ((c = getopt_long(argc, argv, "+r:t:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'r':
            ctl.endpoint = optarg;
            break;
        case 't':
            if (cricctl_parse_duration(optarg, &ctl.timeout_ms) < 0) {
                cricctl_fail("invalid --timeout '%s' (e.g. 500ms, 30s, 2m)", optarg);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("cricctl %s\n", PACKAGE_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[optind];
    const struct cricctl_command *cmd = NULL;
    for (size_t i = 0; i < cricctl_n_commands; i++)
        if (strcmp(cricctl_commands[i].name, name) == 0)
            cmd = &cricctl_commands[i];
    if (!cmd) {
        cricctl_fail("unknown command '%s' (see cricctl --help)", name);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int sub_argc = argc - optind;
    char **sub_argv = argv + optind;
    optind = 0; /* full getopt re-initialisation for the command's options */
    int code = cmd->fn(&ctl, sub_argc, sub_argv);
    if (ctl.client)
        cric_client_free(ctl.client);
    fflush(stdout);
    return code;
}
