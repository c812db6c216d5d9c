/* RLIMIT_NOFILE handling (see fdlimit.h). */
#define _GNU_SOURCE
#include "util/fdlimit.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "util/log.h"

static struct rlimit original; /* as sandboxd was started */
static int remembered;          /* original holds them */

/* fs.nr_open (the kernel's ceiling for a hard limit), or -1. */
static long nr_open(void) {
    long v = -1;
    FILE *f = fopen("/proc/sys/fs/nr_open", "re");
    if (f == NULL)
        return -1;
    if (fscanf(f, "%ld", &v) != 1)
        v = -1;
    fclose(f);
    return v;
}

/* See fdlimit.h. */
void sbx_fdlimit_cap_for_init(long cap) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    original = rl;
    remembered = 1;
    if (rl.rlim_cur > (rlim_t)cap) {
        rl.rlim_cur = (rlim_t)cap;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* See fdlimit.h. On any failure the limit stays as it was (a warning is logged). */
long sbx_fdlimit_raise(long ceiling) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    if (!remembered) {
        original = rl;
        remembered = 1;
    }
    if (geteuid() == 0) {
        long top = nr_open();
        if (top > ceiling)
            top = ceiling;
        if (top > 0 && (rl.rlim_max == RLIM_INFINITY || (rlim_t)top > rl.rlim_max)) {
            struct rlimit up = {(rlim_t)top, (rlim_t)top};
            if (setrlimit(RLIMIT_NOFILE, &up) == 0)
                rl = up;
            else
                SBX_INFO("hard open-file limit kept (no CAP_SYS_RESOURCE?)", "hard=%ld errno=%d",
                         (long)rl.rlim_max, errno);
        }
    }
    if (rl.rlim_cur < rl.rlim_max) {
        struct rlimit up = {rl.rlim_max, rl.rlim_max};
        if (rl.rlim_max != RLIM_INFINITY && setrlimit(RLIMIT_NOFILE, &up) == 0)
            rl = up;
        else
            SBX_WARN("cannot raise the open-file limit", "soft=%ld hard=%ld", (long)rl.rlim_cur,
                     (long)rl.rlim_max);
    }
    return (long)rl.rlim_cur;
}

/* See fdlimit.h. Only setrlimit: safe between fork and exec. */
int sbx_fdlimit_restore_child(void) {
    if (!remembered)
        return 0;
    return setrlimit(RLIMIT_NOFILE, &original);
}

/* See fdlimit.h. */
long sbx_fdlimit_current(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    return rl.rlim_cur == RLIM_INFINITY ? (long)1 << 30 : (long)rl.rlim_cur;
}

/* See fdlimit.h. Reads the directory without a descriptor of its own counted (the
 * count excludes the one opendir uses). */
long sbx_fdlimit_in_use(void) {
    DIR *d = opendir("/proc/self/fd");
    long n = 0;
    if (d == NULL)
        return -1;
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1;
}
