/* Destroy's uid sweep, batched. A process sandbox with a uid of its own is answered
 * destroyed once its cgroup is empty and gone (nothing of it can leave its cgroup), but
 * something of that uid may still run outside it (started through another daemon, say).
 * Before the uid goes back to the pool, whatever still runs as it gets SIGKILL: one helper
 * process sweeps every uid queued in a loop turn (instead of one fork and one wait per
 * destroy), and each uid goes back to the pool once its sweep is done. A uid whose sweep
 * fails SWEEP_TRIES times stays out of the pool (a warning says which). */
#ifndef SBX_BACKENDS_PROCESS_UIDSWEEP_H
#define SBX_BACKENDS_PROCESS_UIDSWEEP_H

#include <sys/types.h>

struct sbx_core;

/* Queues uid (its gid: gid) for a sweep; core->uids gets it back once swept. Never
 * blocks. 0, or -1 when out of memory (nothing queued: the caller sweeps it another way). */
int sbx_uidsweep_add(struct sbx_core *core, uid_t uid, gid_t gid);

/* A child reaped by the core: 1 if it was the sweep helper (its uids are dealt with). */
int sbx_uidsweep_reaped(pid_t pid, int status);

/* At sandboxd's stop: finishes every sweep under way or queued, blocking (waits for the
 * helper, then sweeps the rest in one), so that each uid goes back to the pool and its
 * claim with it. Safe when nothing was ever queued. */
void sbx_uidsweep_stop(struct sbx_core *core);

/* How many uids wait for or are in a sweep (for info and tests). */
size_t sbx_uidsweep_pending(void);

#endif
