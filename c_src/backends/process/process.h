/* The process backend's hooks for the core: a child was reaped. */
#ifndef SBX_BACKENDS_PROCESS_PROCESS_H
#define SBX_BACKENDS_PROCESS_PROCESS_H

#include <sys/types.h>

struct sbx_core;

/* Called for every child reaped by the core's SIGCHLD handler. Returns 1 if the pid
 * belonged to a process sandbox (its main process or an exec). */
int sbx_process_reaped(struct sbx_core *core, pid_t pid, int status);

#endif
