/* The process backend's hooks for the core (a child was reaped) and its interface for
 * backends built on it (beam_node, later vm): they start and adopt their workload through
 * the process machinery with hooks of their own, and the process backend knows nobody
 * above it. */
#ifndef SBX_BACKENDS_PROCESS_PROCESS_H
#define SBX_BACKENDS_PROCESS_PROCESS_H

#include <sys/types.h>

struct sbx_core;
struct sbx_err;
struct sbx_exit;
struct sbx_sandbox;

/* Called for every child reaped by the core's SIGCHLD handler. Returns 1 if the pid
 * belonged to the process machinery (a main process, an exec or a uid helper). */
int sbx_process_reaped(struct sbx_core *core, pid_t pid, int status);

/* At sandboxd's stop, after every sandbox is gone: finishes the uid sweeps of destroyed
 * sandboxes (blocking, bounded), so that their uids and claims go back. */
void sbx_process_stop(struct sbx_core *core);

/* What a backend built on the process machinery hears about its workload. Either hook may
 * be NULL: the core is then told, as for a plain process sandbox. The table is not copied
 * (keep it static). */
struct sbx_process_hooks {
    /* The start's exec is confirmed (err NULL) or failed (err set, nothing of the workload
     * left running; the process state stays for a later start). Runs from the loop, after
     * sbx_process_start answered SBX_START_PENDING. The hook owns what follows: with it,
     * the core is not told (call sbx_sandbox_started when the workload is really up). */
    void (*started)(struct sbx_sandbox *sb, const struct sbx_err *err);
    /* The main process ended and everything of the workload is gone (output drained),
     * before the core is told. 1 when the hook dealt with it (it may have released the
     * process state: the caller touches nothing after), 0 to have the core told as usual
     * (sbx_sandbox_ended). */
    int (*ended)(struct sbx_sandbox *sb, const struct sbx_exit *ex);
};

/* The process backend's start (sbx_backend_process.start) with hooks for this start and
 * what follows until the next start or adopt: SBX_START_PENDING (hooks->started runs later,
 * or the core's sbx_sandbox_started when it is NULL), SBX_START_DONE, or -1 with *err. */
int sbx_process_start(struct sbx_sandbox *sb, const struct sbx_process_hooks *hooks,
                      struct sbx_err *err);
/* The process backend's adopt (sbx_backend_process.adopt) with hooks, as for start. */
int sbx_process_adopt(struct sbx_sandbox *sb, const struct sbx_process_hooks *hooks,
                      const char *buf, int idx);

#endif
