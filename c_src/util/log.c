/* Logging to stderr in logfmt style. */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum sbx_log_level current_level = SBX_LOG_INFO;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

/* See log.h. One level for the whole process. */
void sbx_log_set_level(enum sbx_log_level level) { current_level = level; }

/* See log.h. Exact, case-sensitive names. */
int sbx_log_parse_level(const char *s, enum sbx_log_level *out) {
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum sbx_log_level)i;
            return 0;
        }
    }
    return -1;
}

/* Builds the whole line in one buffer and writes it with one call, so lines from
 * children sharing stderr do not interleave inside a line. */
void sbx_log(enum sbx_log_level level, const char *msg, const char *kv_fmt, ...) {
    char line[1024];
    size_t n = 0;
    struct timespec ts;
    struct tm tm;

    if (level > current_level)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int w = snprintf(line, sizeof line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s msg=\"%s\"",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, level_names[level], msg);
    if (w > 0)
        n = (size_t)w < sizeof line ? (size_t)w : sizeof line - 1;
    if (kv_fmt != NULL && kv_fmt[0] != '\0' && n + 2 < sizeof line) {
        va_list ap;
        line[n++] = ' ';
        va_start(ap, kv_fmt);
        w = vsnprintf(line + n, sizeof line - n, kv_fmt, ap);
        va_end(ap);
        if (w > 0)
            n += (size_t)w < sizeof line - n ? (size_t)w : sizeof line - n - 1;
    }
    if (n >= sizeof line - 1)
        n = sizeof line - 2;
    line[n++] = '\n';
    fwrite(line, 1, n, stderr);
}
