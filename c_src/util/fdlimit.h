/* The open-file limit: raised at start-up so that many sandboxes fit, restored for the
 * children sandboxd starts, and reported by info(). */
#ifndef SBX_UTIL_FDLIMIT_H
#define SBX_UTIL_FDLIMIT_H

#include <stddef.h>

/* Remembers the limits sandboxd was started with (for children) and caps the soft
 * limit at cap for ei_init, which sizes a table from it. Call first. */
void sbx_fdlimit_cap_for_init(long cap);

/* Raises RLIMIT_NOFILE: the soft limit to the hard one and, when running as root, both
 * toward fs.nr_open (at most `ceiling`). Returns
 * the soft limit now in force. Call once, after ei_init (which sizes a table from it). */
long sbx_fdlimit_raise(long ceiling);

/* The ceiling main passes: the kernel's default fs.nr_open. */
#define SBX_NOFILE_CEILING (1L << 20)

/* In a forked child, before exec: puts back the soft and hard limits sandboxd was started
 * with, so that workloads see the usual limit. Async-signal-safe. 0, or -1 (errno). */
int sbx_fdlimit_restore_child(void);

/* The soft limit in force (getrlimit), or -1. */
long sbx_fdlimit_current(void);

/* Descriptors open now (entries of /proc/self/fd), or -1. */
long sbx_fdlimit_in_use(void);

#endif
