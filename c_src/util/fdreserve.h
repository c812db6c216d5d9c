/* A few descriptors held in reserve, so that cleanup can still run when the process is at
 * its open-file limit (removing a sandbox folder needs a handful of descriptors). */
#ifndef SBX_UTIL_FDRESERVE_H
#define SBX_UTIL_FDRESERVE_H

/* Descriptors held in reserve. */
#define SBX_FD_RESERVE 16

/* Opens /dev/null (close-on-exec) until SBX_FD_RESERVE descriptors are held; returns how
 * many are held (fewer when the limit is reached already). */
int sbx_fd_reserve_fill(void);

/* Closes every reserved descriptor, for the caller to use the room; fill again after. */
void sbx_fd_reserve_release(void);

/* 1 if errno value e means "out of descriptors" (per process or system-wide). */
int sbx_fd_exhausted(int e);

#endif
