#include "config.h"
#include "util/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum cric_log_level cric_log_level_current = CRIC_LOG_INFO;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

int cric_log_level_parse(const char *s, enum cric_log_level *out)
{
    for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum cric_log_level)i;
            return 0;
        }
    return -EINVAL;
}

const char *cric_log_level_name(enum cric_log_level l)
{
    return l <= CRIC_LOG_DEBUG ? level_names[l] : "?";
}

void cric_log(enum cric_log_level l, const char *fmt, ...)
{
    if (!cric_log_enabled(l))
        return;
    struct timespec ts;
    struct tm tm;
    char when[32];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    char line[4096];
    int n = snprintf(line, sizeof(line), "%s.%06ldZ %-5s ", when, ts.tv_nsec / 1000, cric_log_level_name(l));
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof(line))
        vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    /* One write per line keeps lines whole when several processes share stderr. */
    fprintf(stderr, "%s\n", line);
}
