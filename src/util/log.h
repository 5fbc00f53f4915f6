/* Levelled logging to stderr.  Only top-level code (the daemon, handlers)
 * logs; library code reports through cric_error instead. */
#ifndef CRIC_UTIL_LOG_H
#define CRIC_UTIL_LOG_H

enum cric_log_level { CRIC_LOG_ERROR, CRIC_LOG_WARN, CRIC_LOG_INFO, CRIC_LOG_DEBUG };

extern enum cric_log_level cric_log_level_current;

/** Parses "error|warn|info|debug"; returns 0 or -EINVAL. */
int cric_log_level_parse(const char *s, enum cric_log_level *out);
const char *cric_log_level_name(enum cric_log_level l);
void cric_log(enum cric_log_level l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define cric_log_enabled(l) ((l) <= cric_log_level_current)
#define LOG_ERROR(...) cric_log(CRIC_LOG_ERROR, __VA_ARGS__)
#define LOG_WARN(...) cric_log(CRIC_LOG_WARN, __VA_ARGS__)
#define LOG_INFO(...) do { if (cric_log_enabled(CRIC_LOG_INFO)) cric_log(CRIC_LOG_INFO, __VA_ARGS__); } while (0)
#define LOG_DEBUG(...) do { if (cric_log_enabled(CRIC_LOG_DEBUG)) cric_log(CRIC_LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
