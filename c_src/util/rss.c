/* sandboxd's own resident memory (see rss.h). */
#include "util/rss.h"

#include <stdio.h>
#include <unistd.h>

/* See rss.h. One short read of a /proc file. */
long long sbx_rss_bytes(void) {
    long long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return 0;
    if (fscanf(f, "%lld %lld", &pages, &resident) != 2)
        resident = 0;
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}
