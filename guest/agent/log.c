/* Console logging (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

/* Monotonic milliseconds; 0 if the clock cannot be read (it always can on Linux). */
int64_t agent_now_ms(void) {
    struct timespec ts = {0, 0};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Formats into a bounded line (truncated past 512 bytes) and writes it in one call. */
void agent_log(const char *fmt, ...) {
    char line[512];
    int n = snprintf(line, sizeof line, "sbx-agent: ");
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    size_t len = (size_t)n + ((size_t)m < sizeof line - (size_t)n - 1 ? (size_t)m
                                                                      : sizeof line - (size_t)n - 2);
    line[len++] = '\n';
    ssize_t w = write(2, line, len);
    (void)w;
}
