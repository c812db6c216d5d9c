/* File-descriptor helpers. */
#include "util/fdio.h"

#include <errno.h>
#include <unistd.h>

/* See fdio.h. On a non-blocking fd, EAGAIN ends it with -1 like any other error. */
int sbx_write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}
