/* Control groups for process sandboxes: detection from /proc/self/mountinfo, groups
 * below the controller mount roots (v1) or the unified root (v2), limits, tracking,
 * killing and accounting.
 *
 * Groups are created below the mount root of each controller, not below sandboxd's own
 * group: the name "sandboxd/<node>/<id>" must lead to the same directory after a
 * restart (adoption), and sandboxd's own group may be per-launch (on the build host it
 * is memory:/process_api/<hash>, a fresh hash for every command run). */
#define _GNU_SOURCE
#include "backends/process/cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* Controllers, in the order groups are attached (tracking ones first). */
enum cg_ctl { CTL_FREEZER, CTL_PIDS, CTL_MEMORY, CTL_CPU, CTL_CPUACCT, CTL_UNIFIED, CTL_COUNT };

/* v1 values at or above this mean "no limit" (the kernel reports PAGE_COUNTER_MAX pages). */
#define V1_UNLIMITED (UINT64_C(1) << 60)
#define CPU_PERIOD_US 100000L
#define CPU_QUOTA_MIN_US 1000L
#define KILL_PASSES 200          /* passes over cgroup.procs, 5 ms apart */
#define FREEZE_WAIT_MS 200       /* waiting for FROZEN / frozen 1 */
#define RMDIR_WAIT_MS 200        /* EBUSY while tasks are exiting */

/* ---- small helpers (not async-signal-safe unless said) -------------------------------- */

/* The field of cg for controller c; cg keeps ownership. */
static char *cg_field(struct sbx_cgroup *cg, enum cg_ctl c) {
    switch (c) {
    case CTL_FREEZER: return cg->freezer;
    case CTL_PIDS: return cg->pids;
    case CTL_MEMORY: return cg->memory;
    case CTL_CPU: return cg->cpu;
    case CTL_CPUACCT: return cg->cpuacct;
    default: return cg->unified;
    }
}

/* Read-only twin of cg_field. */
static const char *cg_cfield(const struct sbx_cgroup *cg, enum cg_ctl c) {
    return cg_field((struct sbx_cgroup *)cg, c);
}

/* The mount point host holds for controller c; host keeps ownership. */
static char *host_field(struct sbx_cg_host *host, enum cg_ctl c) {
    switch (c) {
    case CTL_FREEZER: return host->freezer;
    case CTL_PIDS: return host->pids;
    case CTL_MEMORY: return host->memory;
    case CTL_CPU: return host->cpu;
    case CTL_CPUACCT: return host->cpuacct;
    default: return host->unified;
    }
}

/* Read-only twin of host_field. */
static const char *host_cfield(const struct sbx_cg_host *host, enum cg_ctl c) {
    return host_field((struct sbx_cg_host *)host, c);
}

/* 1 if path is a directory sandboxd may create groups in. Changes nothing. */
static int dir_writable(const char *path) {
    return path[0] != '\0' && access(path, W_OK) == 0;
}

/* Whether groups are created for controller c on this host. Changes nothing. */
static int host_usable(const struct sbx_cg_host *host, enum cg_ctl c) {
    if (host->version == SBX_CG_V2)
        return c == CTL_UNIFIED && host->can_track;
    if (host->version != SBX_CG_V1)
        return 0;
    switch (c) {
    case CTL_MEMORY: return host->can_memory;
    case CTL_PIDS: return host->can_pids;
    case CTL_CPU: return host->can_cpu;
    case CTL_CPUACCT:
    case CTL_FREEZER: return dir_writable(host_cfield(host, c));
    default: return 0;
    }
}

/* 1 if field c of cg holds a path that an earlier controller already holds (co-mounted
 * v1 controllers such as cpu,cpuacct share one directory). Changes nothing. */
static int cg_duplicate(const struct sbx_cgroup *cg, enum cg_ctl c) {
    const char *p = cg_cfield(cg, c);
    for (int i = 0; i < (int)c; i++)
        if (strcmp(cg_cfield(cg, (enum cg_ctl)i), p) == 0)
            return 1;
    return 0;
}

/* Writes "dir/file" into buf. 0, or -1 with ENAMETOOLONG (buf then holds garbage). */
static int join(char *buf, size_t cap, const char *dir, const char *file) {
    int n = snprintf(buf, cap, "%s/%s", dir, file);
    if (n < 0 || (size_t)n >= cap) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

/* Writes s to dir/file with one write. 0, or -1 with errno; nothing else changes. */
static int write_str(const char *dir, const char *file, const char *s) {
    char path[SBX_CG_PATH_MAX + 64];
    int rc = -1, fd = -1;
    size_t len = strlen(s);

    if (join(path, sizeof path, dir, file) != 0)
        goto out;
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        goto out;
    ssize_t w = write(fd, s, len);
    if (w < 0)
        goto out;
    if ((size_t)w != len) {
        errno = EIO;
        goto out;
    }
    rc = 0;
out:
    if (fd >= 0) {
        int saved = errno;
        close(fd);
        errno = saved;
    }
    return rc;
}

/* Reads all of path into a malloc'd, NUL-terminated *out (caller frees). 0, or -1 with
 * errno and *out untouched. */
static int read_all(const char *path, char **out, size_t *len_out) {
    int fd = -1, rc = -1;
    char *buf = NULL;
    size_t len = 0, cap = 4096;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        goto out;
    buf = malloc(cap);
    if (buf == NULL)
        goto out;
    for (;;) {
        if (cap - len < 2) {
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL)
                goto out;
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + len, cap - len - 1);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            goto out;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    buf[len] = '\0';
    *out = buf;
    if (len_out != NULL)
        *len_out = len;
    buf = NULL;
    rc = 0;
out:
    if (fd >= 0) {
        int saved = errno;
        close(fd);
        errno = saved;
    }
    free(buf);
    return rc;
}

/* Reads dir/file into the caller's buf (truncated, NUL-terminated). 0 or -1 with errno. */
static int read_small(const char *dir, const char *file, char *buf, size_t cap) {
    char path[SBX_CG_PATH_MAX + 64];
    char *all = NULL;
    size_t len = 0;

    if (join(path, sizeof path, dir, file) != 0 || read_all(path, &all, &len) != 0)
        return -1;
    if (len >= cap)
        len = cap - 1;
    memcpy(buf, all, len);
    buf[len] = '\0';
    free(all);
    return 0;
}

/* Parses an unsigned decimal at *s (leading blanks skipped), advancing *s. 0 or -1. */
static int parse_u64(const char **s, uint64_t *v) {
    const char *p = *s;
    uint64_t acc = 0;

    while (*p == ' ' || *p == '\t')
        p++;
    if (*p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (acc > (UINT64_MAX - d) / 10)
            return -1;
        acc = acc * 10 + d;
    }
    *v = acc;
    *s = p;
    return 0;
}

/* Reads one number from dir/file; "max" gives *is_max 1 and *v 0. 0, or -1 (*v
 * untouched). */
static int read_u64(const char *dir, const char *file, uint64_t *v, int *is_max) {
    char buf[128];
    const char *p = buf;
    uint64_t tmp;

    if (read_small(dir, file, buf, sizeof buf) != 0)
        return -1;
    if (is_max != NULL)
        *is_max = 0;
    if (strncmp(buf, "max", 3) == 0 && is_max != NULL) {
        *is_max = 1;
        *v = 0;
        return 0;
    }
    if (parse_u64(&p, &tmp) != 0) {
        errno = EINVAL;
        return -1;
    }
    *v = tmp;
    return 0;
}

/* Finds the line "key N" in dir/file (flat keyed files such as memory.events). 0 with *v
 * set; 0 with *v = 0 when the key is absent; -1 if the file cannot be read. */
static int read_keyed(const char *dir, const char *file, const char *key, uint64_t *v) {
    char path[SBX_CG_PATH_MAX + 64];
    char *all = NULL;
    size_t klen = strlen(key);
    uint64_t found = 0;

    if (join(path, sizeof path, dir, file) != 0 || read_all(path, &all, NULL) != 0)
        return -1;
    for (const char *line = all; *line != '\0';) {
        const char *nl = strchr(line, '\n');
        if (strncmp(line, key, klen) == 0 && (line[klen] == ' ' || line[klen] == '\t')) {
            const char *p = line + klen;
            uint64_t n;
            if (parse_u64(&p, &n) == 0)
                found = n;
            break;
        }
        if (nl == NULL)
            break;
        line = nl + 1;
    }
    free(all);
    *v = found;
    return 0;
}

/* 1 if the blank-separated list in s contains word. */
static int has_word(const char *s, const char *word) {
    size_t wl = strlen(word);
    const char *p = s;
    while (*p != '\0') {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == ',')
            p++;
        const char *start = p;
        while (*p != '\0' && *p != ' ' && *p != '\t' && *p != '\n' && *p != ',')
            p++;
        if ((size_t)(p - start) == wl && wl > 0 && strncmp(start, word, wl) == 0)
            return 1;
    }
    return 0;
}

/* Sleeps ms milliseconds (EINTR shortens it). */
static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* 1 if path exists. */
static int file_exists(const char *dir, const char *file) {
    char path[SBX_CG_PATH_MAX + 64];
    return join(path, sizeof path, dir, file) == 0 && access(path, F_OK) == 0;
}

/* ---- detection ----------------------------------------------------------------------- */

/* Decodes mountinfo's octal escapes (\040 for a space) of src into dst (cap bytes).
 * 0, or -1 if it does not fit (dst then holds garbage). */
static int unescape(char *dst, size_t cap, const char *src) {
    size_t n = 0;
    for (const char *p = src; *p != '\0'; p++) {
        char c = *p;
        if (c == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' &&
            p[3] >= '0' && p[3] <= '7') {
            c = (char)(((p[1] - '0') << 6) | ((p[2] - '0') << 3) | (p[3] - '0'));
            p += 3;
        }
        if (n + 1 >= cap)
            return -1;
        dst[n++] = c;
    }
    dst[n] = '\0';
    return 0;
}

/* Splits a mountinfo line in place: the mount point, the file system type and the super
 * options. 0, or -1 if the line is malformed (line is then partly overwritten). */
static int split_mountinfo(char *line, char **mnt, char **fstype, char **opts) {
    char *save = NULL, *tok;
    int i = 0, after_dash = -1;

    *mnt = *fstype = *opts = NULL;
    for (tok = strtok_r(line, " \n", &save); tok != NULL; tok = strtok_r(NULL, " \n", &save), i++) {
        if (i == 4)
            *mnt = tok;
        else if (after_dash < 0 && i > 5 && strcmp(tok, "-") == 0)
            after_dash = i;
        else if (after_dash >= 0 && i == after_dash + 1)
            *fstype = tok;
        else if (after_dash >= 0 && i == after_dash + 3)
            *opts = tok;
    }
    return (*mnt != NULL && *fstype != NULL && *opts != NULL) ? 0 : -1;
}

/* Enables the controllers host can use in dir/cgroup.subtree_control, one at a time so
 * that one refusal does not block the others. Errors are ignored: a group without a
 * controller shows up as a failing limit later. */
static void v2_enable(const char *dir, int memory, int pids, int cpu) {
    if (memory)
        (void)write_str(dir, "cgroup.subtree_control", "+memory");
    if (pids)
        (void)write_str(dir, "cgroup.subtree_control", "+pids");
    if (cpu)
        (void)write_str(dir, "cgroup.subtree_control", "+cpu");
}

/* Fills *host from /proc/self/mountinfo; host is the caller's. Never fails: on any
 * problem the controller concerned is reported absent. */
void sbx_cgroup_detect(struct sbx_cg_host *host) {
    FILE *f = NULL;
    char *line = NULL;
    size_t line_cap = 0;
    char v2_any[SBX_CG_PATH_MAX] = "", v2_ctl[SBX_CG_PATH_MAX] = "";
    static const struct { enum cg_ctl ctl; const char *name; } v1names[] = {
        {CTL_MEMORY, "memory"}, {CTL_PIDS, "pids"}, {CTL_CPU, "cpu"},
        {CTL_CPUACCT, "cpuacct"}, {CTL_FREEZER, "freezer"},
    };

    memset(host, 0, sizeof *host);
    f = fopen("/proc/self/mountinfo", "re");
    if (f == NULL)
        goto out;
    while (getline(&line, &line_cap, f) > 0) {
        char *mnt, *fstype, *opts;
        char path[SBX_CG_PATH_MAX];
        if (split_mountinfo(line, &mnt, &fstype, &opts) != 0 ||
            unescape(path, sizeof path, mnt) != 0)
            continue;
        if (strcmp(fstype, "cgroup") == 0) {
            for (size_t i = 0; i < sizeof v1names / sizeof v1names[0]; i++) {
                char *field = host_field(host, v1names[i].ctl);
                if (field[0] == '\0' && has_word(opts, v1names[i].name))
                    memcpy(field, path, strlen(path) + 1);
            }
        } else if (strcmp(fstype, "cgroup2") == 0) {
            char ctls[256];
            if (v2_any[0] == '\0')
                memcpy(v2_any, path, strlen(path) + 1);
            if (v2_ctl[0] == '\0' &&
                read_small(path, "cgroup.controllers", ctls, sizeof ctls) == 0 &&
                has_word(ctls, "memory"))
                memcpy(v2_ctl, path, strlen(path) + 1);
        }
    }

    if (host->memory[0] != '\0' || host->pids[0] != '\0' ||
        (v2_ctl[0] == '\0' && (host->freezer[0] != '\0' || host->cpu[0] != '\0' ||
                               host->cpuacct[0] != '\0'))) {
        host->version = SBX_CG_V1;
        host->can_memory = dir_writable(host->memory);
        host->can_pids = dir_writable(host->pids);
        host->can_cpu = dir_writable(host->cpu);
        host->can_track = dir_writable(host->freezer) || host->can_pids || host->can_memory ||
                          host->can_cpu || dir_writable(host->cpuacct);
    } else if (v2_ctl[0] != '\0' || v2_any[0] != '\0') {
        const char *root = v2_ctl[0] != '\0' ? v2_ctl : v2_any;
        char ctls[256] = "", sub[256] = "";
        memset(host->memory, 0, sizeof host->memory);
        memset(host->pids, 0, sizeof host->pids);
        memset(host->cpu, 0, sizeof host->cpu);
        memset(host->cpuacct, 0, sizeof host->cpuacct);
        memset(host->freezer, 0, sizeof host->freezer);
        host->version = SBX_CG_V2;
        memcpy(host->unified, root, strlen(root) + 1);
        host->can_track = file_exists(root, "cgroup.procs") && dir_writable(root);
        if (host->can_track && read_small(root, "cgroup.controllers", ctls, sizeof ctls) == 0) {
            v2_enable(root, has_word(ctls, "memory"), has_word(ctls, "pids"),
                      has_word(ctls, "cpu"));
            if (read_small(root, "cgroup.subtree_control", sub, sizeof sub) == 0) {
                host->can_memory = has_word(sub, "memory");
                host->can_pids = has_word(sub, "pids");
                host->can_cpu = has_word(sub, "cpu");
            }
        }
    }
out:
    free(line);
    if (f != NULL)
        fclose(f);
}

/* ---- groups ---------------------------------------------------------------------------- */

/* 1 if name is a usable relative group path: non-empty, no leading '/', no empty, "."
 * or ".." components. */
static int name_valid(const char *name) {
    const char *p = name;
    if (name == NULL || name[0] == '\0' || name[0] == '/')
        return 0;
    while (*p != '\0') {
        const char *end = strchr(p, '/');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
            return 0;
        if (end == NULL)
            break;
        p = end + 1;
        if (*p == '\0')
            return 0;
    }
    return 1;
}

/* Fills *out with the group paths for name (the caller's struct). 0, or -1 with errno
 * (EINVAL for a bad name, ENAMETOOLONG) and *out zeroed. */
static int derive(const struct sbx_cg_host *host, const char *name, struct sbx_cgroup *out) {
    memset(out, 0, sizeof *out);
    if (!name_valid(name)) {
        errno = EINVAL;
        return -1;
    }
    out->version = host->version;
    for (int i = 0; i < CTL_COUNT; i++) {
        enum cg_ctl c = (enum cg_ctl)i;
        if (!host_usable(host, c))
            continue;
        if (join(cg_field(out, c), SBX_CG_PATH_MAX, host_cfield(host, c), name) != 0) {
            memset(out, 0, sizeof *out);
            return -1;
        }
    }
    return 0;
}

/* Fills *out (the caller's) without touching the file system; a bad or too long name
 * gives every path "". */
void sbx_cgroup_paths(const struct sbx_cg_host *host, const char *name, struct sbx_cgroup *out) {
    int saved = errno;
    if (derive(host, name, out) != 0)
        out->version = host->version;
    errno = saved;
}

/* Removes the directories base/name[0..k] for every component level k >= from, deepest
 * first. Best effort; errno is preserved. */
static void rmdir_levels(const char *base, const char *name, int from) {
    int saved = errno;
    size_t nlen = strlen(name);
    for (size_t end = nlen; end > 0;) {
        int level = 0;
        char path[SBX_CG_PATH_MAX];
        for (size_t i = 0; i < end; i++)
            level += name[i] == '/';
        if (level < from)
            break;
        if (snprintf(path, sizeof path, "%s/%.*s", base, (int)end, name) < (int)sizeof path)
            (void)rmdir(path);
        while (end > 0 && name[end - 1] != '/')
            end--;
        if (end > 0)
            end--; /* drop the '/' */
    }
    errno = saved;
}

/* mkdir -p of base/name. Sets *first_created to the component level of the first
 * directory made (or a level past the last when all existed). On v2 enables controllers
 * in every intermediate group. 0, or -1 with errno; the caller removes what was made. */
static int mkdir_levels(const struct sbx_cg_host *host, const char *base, const char *name,
                        int *first_created) {
    int level = 0;
    *first_created = 1 << 20;
    if (host->version == SBX_CG_V1) {
        /* Once the parents (sandboxd/<node>) exist, one mkdir makes the leaf; v2 goes
         * level by level, enabling controllers on the way. */
        char leaf[SBX_CG_PATH_MAX];
        int n = snprintf(leaf, sizeof leaf, "%s/%s", base, name);
        if (n > 0 && (size_t)n < sizeof leaf && mkdir(leaf, 0755) == 0) {
            for (const char *p = name; *p != '\0'; p++)
                level += *p == '/';
            *first_created = level;
            return 0;
        }
        level = 0;
    }
    for (const char *p = name;; level++) {
        const char *end = strchr(p, '/');
        size_t upto = end != NULL ? (size_t)(end - name) : strlen(name);
        char path[SBX_CG_PATH_MAX];
        int n = snprintf(path, sizeof path, "%s/%.*s", base, (int)upto, name);
        if (n < 0 || (size_t)n >= sizeof path) {
            errno = ENAMETOOLONG;
            return -1;
        }
        if (mkdir(path, 0755) == 0) {
            if (level < *first_created)
                *first_created = level;
        } else if (errno != EEXIST) {
            return -1;
        }
        if (end == NULL)
            return 0;
        if (host->version == SBX_CG_V2)
            v2_enable(path, host->can_memory, host->can_pids, host->can_cpu);
        p = end + 1;
    }
}

/* Creates (or reuses) the groups of name; *out is the caller's and is zeroed on failure,
 * with every directory this call made removed again. */
int sbx_cgroup_create(const struct sbx_cg_host *host, const char *name, struct sbx_cgroup *out) {
    int first[CTL_COUNT];
    int done = 0, rc = -1;

    if (derive(host, name, out) != 0)
        goto out;
    if (host->version == SBX_CG_NONE || !host->can_track) {
        errno = ENOTSUP;
        goto out;
    }
    for (; done < CTL_COUNT; done++) {
        enum cg_ctl c = (enum cg_ctl)done;
        first[done] = 1 << 20;
        if (cg_cfield(out, c)[0] == '\0' || cg_duplicate(out, c))
            continue;
        if (mkdir_levels(host, host_cfield(host, c), name, &first[done]) != 0) {
            done++; /* roll this one back too */
            goto out;
        }
    }
    if (host->version == SBX_CG_V2 && !file_exists(out->unified, "cgroup.procs")) {
        errno = ENOTDIR;
        goto out;
    }
    rc = 0;
out:
    if (rc != 0) {
        for (int i = done - 1; i >= 0; i--) {
            enum cg_ctl c = (enum cg_ctl)i;
            if (cg_cfield(out, c)[0] != '\0' && !cg_duplicate(out, c))
                rmdir_levels(host_cfield(host, c), name, first[i]);
        }
        int saved = errno;
        memset(out, 0, sizeof *out);
        errno = saved;
    }
    return rc;
}

/* ---- limits ------------------------------------------------------------------------------ */

/* Writes a decimal number to dir/file. 0 or -1 with errno. */
static int write_num(const char *dir, const char *file, long long v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", v);
    return write_str(dir, file, buf);
}

/* v1 memory limit: memory.limit_in_bytes, then memsw (which must stay >= the memory
 * limit, so when raising an existing limit memsw goes first). 0 or -1 with errno. */
static int v1_memory_limit(const char *dir, long long bytes) {
    int memsw = file_exists(dir, "memory.memsw.limit_in_bytes");
    if (write_num(dir, "memory.limit_in_bytes", bytes) != 0) {
        if (!memsw || errno != EINVAL)
            return -1;
        if (write_num(dir, "memory.memsw.limit_in_bytes", bytes) != 0 ||
            write_num(dir, "memory.limit_in_bytes", bytes) != 0)
            return -1;
    }
    if (memsw && write_num(dir, "memory.memsw.limit_in_bytes", bytes) != 0)
        return -1;
    return 0;
}

/* Sets the requested limits in cg's groups. Every requested limit is tried; -1 (errno of
 * the first failure) if any could not be set, those that were set stay set. */
int sbx_cgroup_set_limits(const struct sbx_cgroup *cg, long memory_mb, double cpus, long pids_limit) {
    int rc = 0, err = 0;
    int v2 = cg->version == SBX_CG_V2;
    const char *mem = v2 ? cg->unified : cg->memory;
    const char *cpu = v2 ? cg->unified : cg->cpu;
    const char *pids = v2 ? cg->unified : cg->pids;

    if (memory_mb < 0 || pids_limit < 0 || !(cpus >= 0.0) || cpus > 1e6 ||
        memory_mb > (long)(INT64_MAX / (1024 * 1024))) {
        errno = EINVAL;
        return -1;
    }
    if (memory_mb > 0) {
        long long bytes = (long long)memory_mb * 1024 * 1024;
        int r;
        if (mem[0] == '\0') {
            errno = ENOTSUP;
            r = -1;
        } else if (v2) {
            r = write_num(mem, "memory.max", bytes);
            if (r == 0 && write_str(mem, "memory.swap.max", "0") != 0 && errno != ENOENT)
                r = -1;
        } else {
            r = v1_memory_limit(mem, bytes);
        }
        if (r != 0 && err == 0)
            err = errno;
    }
    if (cpus > 0.0) {
        long quota = (long)(cpus * (double)CPU_PERIOD_US + 0.5);
        int r;
        if (quota < CPU_QUOTA_MIN_US)
            quota = CPU_QUOTA_MIN_US;
        if (cpu[0] == '\0') {
            errno = ENOTSUP;
            r = -1;
        } else if (v2) {
            char buf[64];
            snprintf(buf, sizeof buf, "%ld %ld", quota, CPU_PERIOD_US);
            r = write_str(cpu, "cpu.max", buf);
        } else {
            r = write_num(cpu, "cpu.cfs_period_us", CPU_PERIOD_US);
            if (r == 0)
                r = write_num(cpu, "cpu.cfs_quota_us", quota);
        }
        if (r != 0 && err == 0)
            err = errno;
    }
    if (pids_limit > 0) {
        int r;
        if (pids[0] == '\0') {
            errno = ENOTSUP;
            r = -1;
        } else {
            r = write_num(pids, "pids.max", pids_limit);
        }
        if (r != 0 && err == 0)
            err = errno;
    }
    if (err != 0) {
        errno = err;
        rc = -1;
    }
    return rc;
}

/* ---- attach (async-signal-safe) ------------------------------------------------------ */

/* Writes dir + "/cgroup.procs" into buf (cap bytes). 0, or -1 if it does not fit.
 * Async-signal-safe. */
static int as_procs_path(char *buf, size_t cap, const char *dir) {
    static const char tail[] = "/cgroup.procs";
    size_t n = 0;
    for (; dir[n] != '\0'; n++) {
        if (n + 1 >= cap)
            return -1;
        buf[n] = dir[n];
    }
    if (n + sizeof tail > cap)
        return -1;
    for (size_t i = 0; i < sizeof tail; i++)
        buf[n + i] = tail[i];
    return 0;
}

/* Moves pid (0: the caller) into every group of cg. Only open/write/close and hand
 * formatting: async-signal-safe. Every group is tried; -1 (errno of the first failure)
 * if any refused, leaving the process in the groups that accepted it. */
int sbx_cgroup_attach(const struct sbx_cgroup *cg, pid_t pid) {
    char digits[24];
    char path[SBX_CG_PATH_MAX + 16];
    size_t nd = 0;
    int rc = 0, err = 0;
    unsigned long v;

    if (pid < 0) {
        errno = EINVAL;
        return -1;
    }
    v = (unsigned long)pid;
    do {
        digits[sizeof digits - 1 - nd] = (char)('0' + v % 10);
        nd++;
        v /= 10;
    } while (v != 0 && nd < sizeof digits - 1);
    const char *num = digits + sizeof digits - nd;

    for (int i = 0; i < CTL_COUNT; i++) {
        const char *dir = cg_cfield(cg, (enum cg_ctl)i);
        int fd;
        if (dir[0] == '\0')
            continue;
        if (as_procs_path(path, sizeof path, dir) != 0) {
            if (err == 0)
                err = ENAMETOOLONG;
            continue;
        }
        fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0) {
            if (err == 0)
                err = errno;
            continue;
        }
        if (write(fd, num, nd) != (ssize_t)nd && err == 0)
            err = errno != 0 ? errno : EIO;
        close(fd);
    }
    if (err != 0) {
        errno = err;
        rc = -1;
    }
    return rc;
}

/* ---- tracking and killing -------------------------------------------------------------- */

/* The directory whose cgroup.procs lists the group's processes: the freezer, then pids,
 * then any other v1 group; the unified group on v2. NULL if cg has none. */
static const char *track_dir(const struct sbx_cgroup *cg) {
    static const enum cg_ctl order[] = {CTL_UNIFIED, CTL_FREEZER, CTL_PIDS, CTL_MEMORY,
                                        CTL_CPUACCT, CTL_CPU};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        const char *d = cg_cfield(cg, order[i]);
        if (d[0] != '\0')
            return d;
    }
    return NULL;
}

/* Reads the pids in dir/cgroup.procs into a malloc'd array *out (caller frees; NULL when
 * empty) of *n entries. 0, or -1 with errno and *out, *n untouched. */
static int read_procs(const char *dir, pid_t **out, size_t *n) {
    char path[SBX_CG_PATH_MAX + 16];
    char *all = NULL;
    pid_t *pids = NULL;
    size_t count = 0, cap = 0;
    int rc = -1;

    if (join(path, sizeof path, dir, "cgroup.procs") != 0 || read_all(path, &all, NULL) != 0)
        goto out;
    for (const char *p = all; *p != '\0';) {
        uint64_t v;
        while (*p == '\n' || *p == ' ')
            p++;
        if (*p == '\0')
            break;
        if (parse_u64(&p, &v) != 0 || v == 0 || v > INT32_MAX) {
            errno = EINVAL;
            goto out;
        }
        if (count == cap) {
            size_t ncap = cap == 0 ? 16 : cap * 2;
            pid_t *np = realloc(pids, ncap * sizeof *np);
            if (np == NULL)
                goto out;
            pids = np;
            cap = ncap;
        }
        pids[count++] = (pid_t)v;
    }
    *out = pids;
    *n = count;
    pids = NULL;
    rc = 0;
out:
    free(all);
    free(pids);
    return rc;
}

/* Copies the group's pids into out (the caller's, up to cap). The total, or -1 with errno
 * and out untouched. */
int sbx_cgroup_pids(const struct sbx_cgroup *cg, pid_t *out, size_t cap) {
    const char *dir = track_dir(cg);
    pid_t *pids = NULL;
    size_t n = 0;
    int rc = -1;

    if (dir == NULL) {
        errno = ENOENT;
        goto out;
    }
    if (read_procs(dir, &pids, &n) != 0)
        goto out;
    if (n > INT32_MAX) {
        errno = EOVERFLOW;
        goto out;
    }
    for (size_t i = 0; i < n && i < cap; i++)
        out[i] = pids[i];
    rc = (int)n;
out:
    free(pids);
    return rc;
}

/* Freezes cg where a freezer exists (v1 freezer.state, v2 cgroup.freeze) and, with
 * settle, waits a bounded time for it to settle (without, the kernel holds new forks
 * while it freezes). 1 if frozen (the caller must thaw), else 0 with nothing changed. */
static int freeze(const struct sbx_cgroup *cg, int settle) {
    char buf[256];
    int v2 = cg->version == SBX_CG_V2;
    const char *dir = v2 ? cg->unified : cg->freezer;

    if (dir[0] == '\0')
        return 0;
    if (v2 ? write_str(dir, "cgroup.freeze", "1") : write_str(dir, "freezer.state", "FROZEN"))
        return 0;
    for (int waited = 0; settle && waited < FREEZE_WAIT_MS; waited++) {
        if (v2) {
            uint64_t frozen = 0;
            if (read_keyed(dir, "cgroup.events", "frozen", &frozen) == 0 && frozen == 1)
                break;
        } else if (read_small(dir, "freezer.state", buf, sizeof buf) == 0 &&
                   strncmp(buf, "FROZEN", 6) == 0) {
            break;
        }
        sleep_ms(1);
    }
    /* Still FREEZING (a task in uninterruptible sleep): go on; new forks are held anyway. */
    return 1;
}

/* Undoes freeze(). Best effort. */
static void thaw(const struct sbx_cgroup *cg) {
    if (cg->version == SBX_CG_V2)
        (void)write_str(cg->unified, "cgroup.freeze", "0");
    else
        (void)write_str(cg->freezer, "freezer.state", "THAWED");
}

/* 1 if pid is in the sorted array seen[0..n). */
static int seen_has(const pid_t *seen, size_t n, pid_t pid) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (seen[mid] == pid)
            return 1;
        if (seen[mid] < pid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* Inserts pid into the sorted malloc'd array *seen (caller frees). 0 or -1 (ENOMEM,
 * array unchanged). */
static int seen_add(pid_t **seen, size_t *n, size_t *cap, pid_t pid) {
    size_t i;
    if (*n == *cap) {
        size_t ncap = *cap == 0 ? 32 : *cap * 2;
        pid_t *np = realloc(*seen, ncap * sizeof *np);
        if (np == NULL)
            return -1;
        *seen = np;
        *cap = ncap;
    }
    for (i = *n; i > 0 && (*seen)[i - 1] > pid; i--)
        (*seen)[i] = (*seen)[i - 1];
    (*seen)[i] = pid;
    (*n)++;
    return 0;
}

/* Signals every process of cg once (never the caller itself). v2 with SIGKILL uses
 * cgroup.kill. Otherwise the group is frozen (where a freezer exists and the caller is
 * not in the group) for the first pass over cgroup.procs, then thawed; passes repeat
 * (bounded, about a second) until no new process appears and, for SIGKILL, until the
 * group holds no other process, so forks racing the kill and the exits of the killed
 * are waited for (only with wait: without, one pass and no settling of the freezer).
 * Returns how many processes were signalled, or -1 with errno (some may have been
 * signalled). The group is left thawed. */
static int kill_group(const struct sbx_cgroup *cg, int sig, int wait) {
    const char *dir = track_dir(cg);
    pid_t *seen = NULL, *pids = NULL;
    size_t nseen = 0, seen_cap = 0, n = 0;
    pid_t self = getpid();
    int frozen = 0, rc = -1, err = 0, kill_file = 0, self_in = 0;

    if (dir == NULL) {
        errno = ENOENT;
        goto out;
    }
    /* Is the caller in the group? Then neither cgroup.kill nor freezing (which would
     * stop the caller itself) can be used. */
    if (read_procs(dir, &pids, &n) != 0)
        goto out;
    for (size_t i = 0; i < n; i++)
        self_in |= pids[i] == self;
    if (!self_in && cg->version == SBX_CG_V2 && sig == SIGKILL && file_exists(dir, "cgroup.kill")) {
        /* The kernel kills the whole group, forks included; count what was there. */
        for (size_t i = 0; i < n; i++)
            if (seen_add(&seen, &nseen, &seen_cap, pids[i]) != 0)
                goto out;
        kill_file = write_str(dir, "cgroup.kill", "1") == 0;
        if (!kill_file)
            nseen = 0;
    }
    free(pids);
    pids = NULL;
    if (!kill_file && !self_in)
        frozen = freeze(cg, wait);
    for (int pass = 0; pass < KILL_PASSES; pass++) {
        int fresh = 0;
        size_t others = 0;
        if (read_procs(dir, &pids, &n) != 0) {
            err = errno;
            break;
        }
        for (size_t i = 0; i < n && err == 0; i++) {
            if (pids[i] == self)
                continue;
            others++;
            if (seen_has(seen, nseen, pids[i]))
                continue;
            if (seen_add(&seen, &nseen, &seen_cap, pids[i]) != 0) {
                err = errno;
                break;
            }
            fresh++;
            if (kill(pids[i], sig) != 0 && errno != ESRCH)
                err = errno;
        }
        free(pids);
        pids = NULL;
        if (frozen) {
            thaw(cg);
            frozen = 0;
        }
        if (err != 0)
            break;
        if (fresh == 0 && (sig != SIGKILL || others == 0))
            break;
        if (!wait)
            break;
        sleep_ms(5);
    }
    if (frozen)
        thaw(cg);
    if (err != 0) {
        errno = err;
        goto out;
    }
    rc = nseen > INT32_MAX ? INT32_MAX : (int)nseen;
out:
    free(pids);
    free(seen);
    return rc;
}

/* See cgroup.h. */
int sbx_cgroup_kill(const struct sbx_cgroup *cg, int sig) { return kill_group(cg, sig, 1); }

/* See cgroup.h. */
int sbx_cgroup_signal(const struct sbx_cgroup *cg, int sig) { return kill_group(cg, sig, 0); }

/* ---- accounting ---------------------------------------------------------------------- */

/* Reads usage, limit (0: none) and the OOM kill count; the outputs are the caller's and
 * are left untouched on failure (-1 with errno). */
int sbx_cgroup_memory(const struct sbx_cgroup *cg, uint64_t *usage, uint64_t *limit,
                      uint64_t *oom_kills) {
    uint64_t u = 0, l = 0, o = 0;
    int is_max = 0;
    int v2 = cg->version == SBX_CG_V2;
    const char *d = v2 ? cg->unified : cg->memory;

    if (d[0] == '\0') {
        errno = ENOENT;
        return -1;
    }
    if (v2 ? (read_u64(d, "memory.current", &u, NULL) != 0 ||
              read_u64(d, "memory.max", &l, &is_max) != 0 ||
              read_keyed(d, "memory.events", "oom_kill", &o) != 0)
           : (read_u64(d, "memory.usage_in_bytes", &u, NULL) != 0 ||
              read_u64(d, "memory.limit_in_bytes", &l, NULL) != 0 ||
              read_keyed(d, "memory.oom_control", "oom_kill", &o) != 0))
        return -1;
    if (is_max || (!v2 && l >= V1_UNLIMITED))
        l = 0;
    *usage = u;
    *limit = l;
    *oom_kills = o;
    return 0;
}

/* Reads the group's CPU time into *ns (the caller's; untouched on failure, -1 with
 * errno). */
int sbx_cgroup_cpu_ns(const struct sbx_cgroup *cg, uint64_t *ns) {
    uint64_t v = 0;

    if (cg->version == SBX_CG_V2) {
        if (cg->unified[0] == '\0') {
            errno = ENOENT;
            return -1;
        }
        if (read_keyed(cg->unified, "cpu.stat", "usage_usec", &v) != 0)
            return -1;
        if (v > UINT64_MAX / 1000) {
            errno = EOVERFLOW;
            return -1;
        }
        *ns = v * 1000;
        return 0;
    }
    if (cg->cpuacct[0] == '\0') {
        errno = ENOENT;
        return -1;
    }
    if (read_u64(cg->cpuacct, "cpuacct.usage", &v, NULL) != 0)
        return -1;
    *ns = v;
    return 0;
}

/* ---- removal ------------------------------------------------------------------------- */

/* Removes cg's leaf groups (not the parents, which other sandboxes share). A group that
 * is already gone counts as removed; EBUSY is retried for about 200 ms while tasks
 * exit (up to wait_ms). -1 with errno if any group remains; the others are still
 * removed. */
static int remove_groups(const struct sbx_cgroup *cg, int wait_ms) {
    int rc = 0, err = 0;

    for (int i = 0; i < CTL_COUNT; i++) {
        enum cg_ctl c = (enum cg_ctl)i;
        const char *dir = cg_cfield(cg, c);
        if (dir[0] == '\0' || cg_duplicate(cg, c))
            continue;
        for (int waited = 0;; waited += 10) {
            if (rmdir(dir) == 0 || errno == ENOENT)
                break;
            if (errno != EBUSY || waited >= wait_ms) {
                if (err == 0)
                    err = errno;
                break;
            }
            sleep_ms(10);
        }
    }
    if (err != 0) {
        errno = err;
        rc = -1;
    }
    return rc;
}

/* See cgroup.h. */
int sbx_cgroup_remove(const struct sbx_cgroup *cg) { return remove_groups(cg, RMDIR_WAIT_MS); }

/* See cgroup.h. */
int sbx_cgroup_try_remove(const struct sbx_cgroup *cg) { return remove_groups(cg, 0); }
