/* Control groups for process sandboxes, v1 (one hierarchy per controller) or v2
 * (unified), detected at start. A sandbox gets a group named sandboxd/<node>/<id> in
 * each controller that is mounted and writable; its processes are found, limited and
 * killed through it, even those that left the process group or double-forked. */
#ifndef SBX_BACKENDS_PROCESS_CGROUP_H
#define SBX_BACKENDS_PROCESS_CGROUP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SBX_CG_PATH_MAX 512

enum sbx_cg_version { SBX_CG_NONE = 0, SBX_CG_V1, SBX_CG_V2 };

/* What this host offers, detected once. */
struct sbx_cg_host {
    enum sbx_cg_version version;
    /* v1: mount points of each controller ("" if absent), unified "".
     * v2: unified is the cgroup2 root; the per-controller fields are "" (see can_*). */
    char memory[SBX_CG_PATH_MAX];
    char pids[SBX_CG_PATH_MAX];
    char cpu[SBX_CG_PATH_MAX];
    char cpuacct[SBX_CG_PATH_MAX];
    char freezer[SBX_CG_PATH_MAX];
    char unified[SBX_CG_PATH_MAX];
    int can_memory, can_pids, can_cpu, can_track; /* usable (exists and writable);
                                                     can_track: groups can be made at all */
};

/* One sandbox's groups (absolute paths, "" where not created). */
struct sbx_cgroup {
    enum sbx_cg_version version;
    char memory[SBX_CG_PATH_MAX];
    char pids[SBX_CG_PATH_MAX];
    char cpu[SBX_CG_PATH_MAX];
    char cpuacct[SBX_CG_PATH_MAX];
    char freezer[SBX_CG_PATH_MAX];
    char unified[SBX_CG_PATH_MAX];
};

/* Reads /proc/self/mountinfo and fills *host. Never fails: a host without cgroups gives
 * version SBX_CG_NONE and every can_* 0. v1 is chosen when a v1 memory or pids hierarchy
 * is mounted (hybrid hosts), else a cgroup2 mount (one with controllers first). On v2 it
 * enables the memory, pids and cpu controllers for the sandboxd subtree where it can
 * (in the root's cgroup.subtree_control; sbx_cgroup_create does the intermediates). */
void sbx_cgroup_detect(struct sbx_cg_host *host);

/* Creates the groups for name (a relative path like "sandboxd/node/id") below every
 * usable controller, or reuses existing ones (adoption after a restart). Groups are made
 * below the mount root, not below sandboxd's own group, so that a name maps to the same
 * directory after a restart. 0, or -1 with errno (EINVAL for an absolute name or one
 * with empty, "." or ".." components); on failure nothing is left created. */
int sbx_cgroup_create(const struct sbx_cg_host *host, const char *name, struct sbx_cgroup *out);

/* Re-derives the paths of an existing group without creating anything (adoption); the
 * directories are not checked. A bad name gives every path "". */
void sbx_cgroup_paths(const struct sbx_cg_host *host, const char *name, struct sbx_cgroup *out);

/* Applies limits; 0 means unset. memory_mb: hard limit (v1 memory.limit_in_bytes and
 * memsw if present; v2 memory.max, swap.max 0); cpus: quota over a 100 ms period;
 * pids_limit: pids.max. Returns 0, or -1 if a requested limit could not be set. */
int sbx_cgroup_set_limits(const struct sbx_cgroup *cg, long memory_mb, double cpus, long pids_limit);

/* Moves process pid into every group of cg (pid 0: the caller). Async-signal-safe
 * (usable between fork and exec): open/write/close only. 0 or -1. */
int sbx_cgroup_attach(const struct sbx_cgroup *cg, pid_t pid);

/* The pids in the group (the tracking controller: freezer or pids on v1, the group on
 * v2). Writes up to cap pids; returns the total count (may exceed cap), or -1. */
int sbx_cgroup_pids(const struct sbx_cgroup *cg, pid_t *out, size_t cap);

/* Sends sig to every process in the group, freezing it first where a freezer exists so
 * that nothing forks in between (v2 SIGKILL: cgroup.kill). Never signals the caller. For
 * SIGKILL it also waits, about a second at most, for the group to empty. Returns the
 * number signalled, or -1. */
int sbx_cgroup_kill(const struct sbx_cgroup *cg, int sig);

/* One pass of sbx_cgroup_kill that never waits: the group frozen (not waiting for it
 * to settle), every process in it signalled, thawed. For SIGKILL the caller looks again
 * later (a timer) and repeats while anything is left. Returns the number signalled, or
 * -1 with errno. */
int sbx_cgroup_signal(const struct sbx_cgroup *cg, int sig);

/* Memory usage and limit in bytes (limit 0 if none); OOM kills counted so far. 0 or -1. */
int sbx_cgroup_memory(const struct sbx_cgroup *cg, uint64_t *usage, uint64_t *limit,
                      uint64_t *oom_kills);

/* Total CPU time used by the group in nanoseconds (cpuacct.usage / cpu.stat usage_usec). */
int sbx_cgroup_cpu_ns(const struct sbx_cgroup *cg, uint64_t *ns);

/* Removes the (empty) leaf groups, not their shared parents; a group already gone counts
 * as removed, EBUSY is retried for about 200 ms while tasks exit. 0, or -1 if a group
 * still has processes. */
int sbx_cgroup_remove(const struct sbx_cgroup *cg);

/* sbx_cgroup_remove without any wait: a group with tasks (EBUSY) stays, -1 with errno;
 * the caller tries again later. */
int sbx_cgroup_try_remove(const struct sbx_cgroup *cg);

#endif
