/* Small file-descriptor helpers. */
#ifndef SBX_UTIL_FDIO_H
#define SBX_UTIL_FDIO_H

#include <stddef.h>

/* Writes buf[0..len) fully to fd, retrying after EINTR and short writes. 0, or -1 with
 * errno (EIO for a write that wrote nothing); part of buf may have been written. */
int sbx_write_all(int fd, const void *buf, size_t len);

#endif
