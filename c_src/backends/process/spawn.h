/* Starting a process for a sandbox: its own session, its cgroups, optional namespaces,
 * its descriptors, environment, directory, user and capabilities, then exec. Every child
 * gets no_new_privs. Failures before exec
 * come back to the parent through a close-on-exec pipe, so a bad command is an error
 * of create/exec, not a process that dies at once. */
#ifndef SBX_BACKENDS_PROCESS_SPAWN_H
#define SBX_BACKENDS_PROCESS_SPAWN_H

#include <sys/types.h>

#include "backends/process/cgroup.h"

struct sbx_spawn_spec {
    char *const *argv;            /* argv[0] is looked up in PATH of envp */
    char *const *envp;
    const char *cwd;              /* NULL: inherit */
    int stdin_fd;                 /* -1: /dev/null */
    int stdout_fd;                /* -1: /dev/null */
    int stderr_fd;                /* -1: /dev/null */
    const char *stdout_path;      /* set: opened read-write in the child instead (a FIFO */
    const char *stderr_path;      /* the child keeps open both ways: no SIGPIPE ever) */
    const struct sbx_cgroup *cg;  /* NULL: none */
    int new_namespaces;           /* own pid, mount, ipc, uts and network namespaces */
    const char *hostname;         /* with new_namespaces */
    pid_t join_ns_of;             /* > 0: enter the namespaces of this process (exec) */
    int set_user;                 /* setgroups(0), setresgid(gid), setresuid(uid) */
    uid_t uid;
    gid_t gid;
    int drop_caps;                /* clear ambient, inheritable, permitted, effective */
    int drop_bounding;            /* empty the bounding set too (needs CAP_SETPCAP: root) */
    long rlimit_as_bytes;         /* > 0: RLIMIT_AS (memory without cgroups) */
    long rlimit_nproc;            /* > 0: RLIMIT_NPROC (pids without cgroups) */
    const int *keep_fds;          /* descriptors (>= 3) the child keeps open at their own */
    int nkeep;                    /* numbers, close-on-exec cleared (nkeep 0: none) */
};

/* Forks per spec without waiting for the exec: the child's pid (as sbx_spawn) and
 * *confirm_fd, the read end (non-blocking, close-on-exec; the caller closes it) of the
 * close-on-exec pipe, readable once the child exec'd (end of file) or failed (see
 * sbx_spawn_confirm). -1 with *err and *stage (nothing left open or running). */
pid_t sbx_spawn_start(const struct sbx_spawn_spec *spec, int *confirm_fd, int *err,
                      const char **stage);

/* Reads the confirmation from fd (sbx_spawn_start's), never blocking: 1 the child exec'd
 * (or nothing says it failed), 0 not known yet, -1 it failed before exec with *err (an
 * errno value) and *stage (static). A failed child exits 127 and is not reaped here. */
int sbx_spawn_confirm(int fd, int *err, const char **stage);

/* Waits (poll, blocking) for the confirmation of pid (sbx_spawn_start's) on fd, which it
 * closes. pid once it exec'd; -1 with *err and *stage if it failed (then reaped here). */
pid_t sbx_spawn_wait(pid_t pid, int fd, int *err, const char **stage);

/* Forks and execs per spec, waiting (poll) for the confirmation. Returns the child's pid (the session leader; with
 * new_namespaces, a small reaper whose exit status is its child's), or -1 with *err an
 * errno value and *stage a static description of the step that failed. The caller
 * reaps the child. Descriptors in spec are not closed. */
pid_t sbx_spawn(const struct sbx_spawn_spec *spec, int *err, const char **stage);

/* Sends sig to every process whose real or saved uid is uid, from a short-lived child
 * that switches to uid first (kill(-1) semantics; SIGKILL twice). Only for a uid no one else uses (a sandbox's dynamic uid); never uid 0.
 * Blocking (fork + wait). 0, or -1 if the helper could not run as uid. */
int sbx_spawn_kill_uid(uid_t uid, gid_t gid, int sig);

/* sbx_spawn_kill_uid without the wait: the helper's pid (the caller reaps it: exit 0
 * once it ran as uid and nothing of uid is left to signal), or -1. */
pid_t sbx_spawn_kill_uid_start(uid_t uid, gid_t gid, int sig);

#endif
