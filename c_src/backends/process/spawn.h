/* Starting a process for a sandbox: its own session, its cgroups, optional namespaces,
 * its descriptors, environment, directory and user, then exec. Failures before exec
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
    int set_user;
    uid_t uid;
    gid_t gid;
    long rlimit_as_bytes;         /* > 0: RLIMIT_AS (memory without cgroups) */
    long rlimit_nproc;            /* > 0: RLIMIT_NPROC (pids without cgroups) */
};

/* Forks and execs per spec. Returns the child's pid (the session leader; with
 * new_namespaces, a small reaper whose exit status is its child's), or -1 with *err an
 * errno value and *stage a static description of the step that failed. The caller
 * reaps the child. Descriptors in spec are not closed. */
pid_t sbx_spawn(const struct sbx_spawn_spec *spec, int *err, const char **stage);

/* Resolves a user name or numeric uid to uid/gid (blocking NSS lookup: call at create,
 * not in hot paths). 0 or -1. */
int sbx_spawn_lookup_user(const char *user, uid_t *uid, gid_t *gid);

#endif
