/* Time helpers: monotonic milliseconds for deadlines, wall milliseconds for values
 * returned to callers (API times are ms since the Unix epoch). */
#ifndef SBX_UTIL_CLOCK_H
#define SBX_UTIL_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t sbx_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t sbx_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
