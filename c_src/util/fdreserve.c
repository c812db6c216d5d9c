/* The descriptor reserve: a fixed array of /dev/null descriptors. Single-threaded use only. */
#include "util/fdreserve.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

static int reserved[SBX_FD_RESERVE];
static int held;

/* See fdreserve.h. */
int sbx_fd_reserve_fill(void) {
    int saved = errno;
    while (held < SBX_FD_RESERVE) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            break;
        reserved[held++] = fd;
    }
    errno = saved;
    return held;
}

/* See fdreserve.h. errno is left as it was. */
void sbx_fd_reserve_release(void) {
    int saved = errno;
    while (held > 0)
        close(reserved[--held]);
    errno = saved;
}

/* See fdreserve.h. */
int sbx_fd_exhausted(int e) { return e == EMFILE || e == ENFILE; }
