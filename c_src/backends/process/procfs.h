/* Reading /proc: one process's status, start time and memory; the descendants of a
 * process (for hosts without cgroups, where sandboxd is a child subreaper). */
#ifndef SBX_BACKENDS_PROCESS_PROCFS_H
#define SBX_BACKENDS_PROCESS_PROCFS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct sbx_procfs_stat {
    pid_t pid, ppid, pgid, sid;
    char state;              /* R, S, D, Z, T, ... */
    char comm[64];           /* the name between the parentheses, NUL-terminated */
    uint64_t utime_ticks;    /* user + system CPU, in clock ticks */
    uint64_t starttime;      /* since boot, in clock ticks: with pid, identifies a process */
    uint64_t rss_bytes;
};

/* Parses /proc/<pid>/stat (comm may contain spaces and parentheses). 0, or -1 if the
 * process does not exist or the file is malformed. */
int sbx_procfs_stat(pid_t pid, struct sbx_procfs_stat *out);

/* Parses a /proc/<pid>/stat line held in buf (for tests). 0 or -1. */
int sbx_procfs_parse_stat(const char *buf, size_t len, long page_size, struct sbx_procfs_stat *out);

/* 1 if pid is alive (not a zombie) and its start time equals starttime, else 0. */
int sbx_procfs_same_process(pid_t pid, uint64_t starttime);

/* Every live process whose parent chain reaches root, or whose session is sid (sid 0:
 * ignored), root included if alive. Up to cap pids; returns the total count or -1. */
int sbx_procfs_tree(pid_t root, pid_t sid, pid_t *out, size_t cap);

/* Clock ticks per second (sysconf(_SC_CLK_TCK)). */
long sbx_procfs_hz(void);

#endif
