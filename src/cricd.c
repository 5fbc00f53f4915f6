/* cricd: the CRI runtime daemon.  Parses flags, builds the configuration and
 * hands over to cricd_run() (src/daemon.c). */
#include "config.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "util/log.h"

#define DEFAULT_CONFIG SYSCONFDIR "/cricd/cricd.conf"

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: cricd [OPTION]...\n"
            "Kubernetes CRI v1 runtime daemon.\n"
            "\n"
            "  -c, --config FILE        config file (default " DEFAULT_CONFIG " if it exists;\n"
            "                           '' = built-in defaults only)\n"
            "      --listen PATH        unix socket to serve CRI on (key listen)\n"
            "      --root DIR           persistent state directory (key root)\n"
            "      --state DIR          volatile state directory (key state)\n"
            "      --log-level LEVEL    error, warn, info or debug (key log_level)\n"
            "      --cgroup-driver D    cgroupfs or systemd (key cgroup_driver)\n"
            "      --print-config       print the effective configuration as JSON and exit\n"
            "  -V, --version            print the version and exit\n"
            "  -h, --help               print this help and exit\n"
            "\n"
            "Flags override the config file.  SIGHUP re-reads the file, SIGTERM stops.\n"
            "See cricd(8) and cricd.conf(5).\n");
}

enum { OPT_LISTEN = 256, OPT_ROOT, OPT_STATE, OPT_LOG_LEVEL, OPT_CGROUP_DRIVER, OPT_PRINT_CONFIG };

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "config", required_argument, NULL, 'c' },
        { "listen", required_argument, NULL, OPT_LISTEN },
        { "root", required_argument, NULL, OPT_ROOT },
        { "state", required_argument, NULL, OPT_STATE },
        { "log-level", required_argument, NULL, OPT_LOG_LEVEL },
        { "cgroup-driver", required_argument, NULL, OPT_CGROUP_DRIVER },
        { "print-config", no_argument, NULL, OPT_PRINT_CONFIG },
        { "version", no_argument, NULL, 'V' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct cricd_override ov[16];
    size_t n_ov = 0;
    const char *config_path = NULL;
    bool config_given = false, print_config = false;
    int c;
    while ((c = getopt_long(argc, argv, "c:Vh", longopts, NULL)) != -1) {
        const char *key = NULL;
        switch (c) {
        case 'c':
            config_path = optarg;
            config_given = true;
            break;
        case OPT_LISTEN: key = "listen"; break;
        case OPT_ROOT: key = "root"; break;
        case OPT_STATE: key = "state"; break;
        case OPT_LOG_LEVEL: key = "log_level"; break;
        case OPT_CGROUP_DRIVER: key = "cgroup_driver"; break;
        case OPT_PRINT_CONFIG: print_config = true; break;
        case 'V':
            printf("cricd %s\n", PACKAGE_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (key) {
            if (n_ov == sizeof(ov) / sizeof(ov[0])) {
                fprintf(stderr, "cricd: too many flags\n");
                return 2;
            }
            ov[n_ov++] = (struct cricd_override){ key, optarg };
        }
    }
    if (optind < argc) {
        fprintf(stderr, "cricd: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    /* The default file is optional; a file named on the command line is not. */
    if (!config_given && access(DEFAULT_CONFIG, F_OK) == 0)
        config_path = DEFAULT_CONFIG;
    if (config_path && !config_path[0])
        config_path = NULL;

    struct cric_config cfg;
    cric_error *err = NULL;
    if (cricd_config_build(config_path, ov, n_ov, &cfg, &err) < 0) {
        fprintf(stderr, "cricd: %s\n", err->msg);
        cric_error_free(err);
        return 1;
    }
    if (print_config) {
        char *json = NULL;
        int r = cric_config_to_json(&cfg, &json, &err);
        if (r >= 0)
            printf("%s\n", json);
        else
            fprintf(stderr, "cricd: %s\n", err->msg);
        free(json);
        cric_error_free(err);
        cric_config_free(&cfg);
        return r < 0;
    }
    /* A client that hangs up mid-write must give EPIPE, not kill us. */
    signal(SIGPIPE, SIG_IGN);
    int code = cricd_run(&cfg, config_path, ov, n_ov);
    cric_config_free(&cfg);
    return code;
}
