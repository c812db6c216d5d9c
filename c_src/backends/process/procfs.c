/* Reading /proc: parsing /proc/<pid>/stat, process identity (pid + start time) and the
 * descendants of a process found from one scan of /proc. */
#define _GNU_SOURCE
#include "backends/process/procfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STAT_BUF 4096 /* a stat line is a few hundred bytes; comm is at most 64 */

/* Parses a decimal integer (optional '-') at buf[*pos..len), advancing *pos past it.
 * Values beyond the int64 range saturate (fields such as vsize are unsigned; the ones
 * used are range-checked by the caller). 0, or -1 if there is no number (*v, *pos
 * untouched). */
static int parse_i64(const char *buf, size_t len, size_t *pos, int64_t *v) {
    size_t p = *pos;
    int neg = 0;
    uint64_t acc = 0;

    if (p < len && buf[p] == '-') {
        neg = 1;
        p++;
    }
    if (p >= len || buf[p] < '0' || buf[p] > '9')
        return -1;
    for (; p < len && buf[p] >= '0' && buf[p] <= '9'; p++) {
        unsigned d = (unsigned)(buf[p] - '0');
        if (acc > ((uint64_t)INT64_MAX - d) / 10)
            acc = (uint64_t)INT64_MAX;
        else
            acc = acc * 10 + d;
    }
    *v = neg ? -(int64_t)acc : (int64_t)acc;
    *pos = p;
    return 0;
}

/* Fills *out (the caller's) from one stat line buf[0..len), which need not be
 * NUL-terminated. comm runs from the first '(' to the last ')'. 0, or -1 with *out
 * untouched when the line is malformed or has fewer than 24 fields. */
int sbx_procfs_parse_stat(const char *buf, size_t len, long page_size, struct sbx_procfs_stat *out) {
    struct sbx_procfs_stat st;
    size_t open_paren = len, close_paren = len, pos = 0;
    int64_t pid, v[25]; /* v[k]: field k (1-based, as in proc(5)) for k >= 4 */

    if (buf == NULL || out == NULL || page_size <= 0)
        return -1;
    memset(&st, 0, sizeof st);
    memset(v, 0, sizeof v);
    for (size_t i = 0; i < len; i++) {
        if (buf[i] == '(' && open_paren == len)
            open_paren = i;
        if (buf[i] == ')')
            close_paren = i;
    }
    if (open_paren == len || close_paren == len || close_paren < open_paren)
        return -1;

    /* pid, then one space, then '(' */
    if (parse_i64(buf, open_paren, &pos, &pid) != 0 || pid <= 0 || pid > INT_MAX ||
        pos + 1 != open_paren || buf[pos] != ' ')
        return -1;
    size_t clen = close_paren - open_paren - 1;
    if (clen > sizeof st.comm - 1)
        clen = sizeof st.comm - 1;
    memcpy(st.comm, buf + open_paren + 1, clen);
    st.comm[clen] = '\0';

    /* ") S " then fields 4.. separated by single spaces */
    pos = close_paren + 1;
    if (pos + 2 >= len || buf[pos] != ' ' || buf[pos + 1] == ' ' || buf[pos + 2] != ' ')
        return -1;
    st.state = buf[pos + 1];
    pos += 2;
    for (int field = 4; field <= 24; field++) {
        if (pos >= len || buf[pos] != ' ')
            return -1;
        pos++;
        if (parse_i64(buf, len, &pos, &v[field]) != 0)
            return -1;
    }
    if (pos < len && buf[pos] != ' ' && buf[pos] != '\n')
        return -1;
    if (v[4] < 0 || v[4] > INT_MAX || v[5] < 0 || v[5] > INT_MAX || v[6] < 0 || v[6] > INT_MAX ||
        v[14] < 0 || v[15] < 0 || v[22] < 0)
        return -1;

    st.pid = (pid_t)pid;
    st.ppid = (pid_t)v[4];
    st.pgid = (pid_t)v[5];
    st.sid = (pid_t)v[6];
    st.utime_ticks = (uint64_t)v[14] + (uint64_t)v[15];
    st.starttime = (uint64_t)v[22];
    st.rss_bytes = v[24] > 0 ? (uint64_t)v[24] * (uint64_t)page_size : 0;
    *out = st;
    return 0;
}

/* Reads /proc/<pid>/stat into buf (cap bytes). The length, or -1 with errno. */
static ssize_t read_stat(pid_t pid, char *buf, size_t cap) {
    char path[64];
    ssize_t total = -1;
    size_t len = 0;
    int fd;

    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        goto out;
    while (len < cap) {
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            goto out;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    total = (ssize_t)len;
out:
    if (fd >= 0) {
        int saved = errno;
        close(fd);
        errno = saved;
    }
    return total;
}

/* The system page size (4096 if sysconf cannot tell). */
static long page_size(void) {
    long ps = sysconf(_SC_PAGESIZE);
    return ps > 0 ? ps : 4096;
}

/* Fills *out (the caller's) for pid; untouched on failure (-1, errno ESRCH when the
 * process does not exist, EINVAL when its stat line is malformed). */
int sbx_procfs_stat(pid_t pid, struct sbx_procfs_stat *out) {
    char buf[STAT_BUF];
    struct sbx_procfs_stat st;
    ssize_t len;

    if (pid <= 0) {
        errno = ESRCH;
        return -1;
    }
    len = read_stat(pid, buf, sizeof buf);
    if (len < 0) {
        if (errno == ENOENT)
            errno = ESRCH;
        return -1;
    }
    if (sbx_procfs_parse_stat(buf, (size_t)len, page_size(), &st) != 0 || st.pid != pid) {
        errno = EINVAL;
        return -1;
    }
    *out = st;
    return 0;
}

/* 1 if pid runs (not a zombie or dead) and started at starttime. Changes nothing. */
int sbx_procfs_same_process(pid_t pid, uint64_t starttime) {
    struct sbx_procfs_stat st;
    int saved = errno;
    int same = sbx_procfs_stat(pid, &st) == 0 && st.state != 'Z' && st.state != 'X' &&
               st.starttime == starttime;
    errno = saved;
    return same;
}

/* Clock ticks per second (100 if sysconf cannot tell). */
long sbx_procfs_hz(void) {
    long hz = sysconf(_SC_CLK_TCK);
    return hz > 0 ? hz : 100;
}

/* One process from the scan of /proc. */
struct proc_entry {
    pid_t pid, ppid, sid;
    int live;   /* not a zombie */
    int mark;   /* 0 unknown, 1 in the tree, 2 not */
};

/* qsort order by pid. */
static int entry_cmp(const void *a, const void *b) {
    pid_t x = ((const struct proc_entry *)a)->pid, y = ((const struct proc_entry *)b)->pid;
    return (x > y) - (x < y);
}

/* The entry for pid in the sorted array, or NULL. */
static struct proc_entry *entry_find(struct proc_entry *e, size_t n, pid_t pid) {
    struct proc_entry key = {.pid = pid};
    return bsearch(&key, e, n, sizeof *e, entry_cmp);
}

/* Scans /proc once into a malloc'd array *out (caller frees) sorted by pid. 0, or -1
 * with errno and *out untouched. Processes that vanish during the scan are skipped. */
static int scan_proc(struct proc_entry **out, size_t *n_out) {
    DIR *d = NULL;
    struct dirent *de;
    struct proc_entry *e = NULL;
    size_t n = 0, cap = 0;
    long ps = page_size();
    int rc = -1;

    d = opendir("/proc");
    if (d == NULL)
        goto out;
    for (;;) {
        char buf[STAT_BUF];
        struct sbx_procfs_stat st;
        size_t pos = 0;
        int64_t pid;
        ssize_t len;

        errno = 0;
        de = readdir(d);
        if (de == NULL) {
            if (errno != 0)
                goto out;
            break;
        }
        size_t nlen = strlen(de->d_name);
        if (parse_i64(de->d_name, nlen, &pos, &pid) != 0 || pos != nlen || pid <= 0 ||
            pid > INT_MAX)
            continue;
        len = read_stat((pid_t)pid, buf, sizeof buf);
        if (len < 0 || sbx_procfs_parse_stat(buf, (size_t)len, ps, &st) != 0)
            continue;
        if (n == cap) {
            size_t ncap = cap == 0 ? 256 : cap * 2;
            struct proc_entry *ne = realloc(e, ncap * sizeof *ne);
            if (ne == NULL)
                goto out;
            e = ne;
            cap = ncap;
        }
        e[n].pid = st.pid;
        e[n].ppid = st.ppid;
        e[n].sid = st.sid;
        e[n].live = st.state != 'Z' && st.state != 'X';
        e[n].mark = 0;
        n++;
    }
    if (n > 0)
        qsort(e, n, sizeof *e, entry_cmp);
    *out = e;
    *n_out = n;
    e = NULL;
    rc = 0;
out:
    if (d != NULL) {
        int saved = errno;
        closedir(d);
        errno = saved;
    }
    free(e);
    return rc;
}

/* 1 if the parent chain of e reaches root, memoised in mark. The walk is bounded by n
 * steps, so a cycle (the scan is not atomic) cannot loop. */
static int in_tree(struct proc_entry *all, size_t n, struct proc_entry *e, pid_t root) {
    struct proc_entry *cur = e;
    int result = 2;
    size_t steps = 0;

    while (cur != NULL && steps++ <= n) {
        if (cur->mark != 0) {
            result = cur->mark;
            break;
        }
        if (cur->pid == root) {
            result = 1;
            break;
        }
        if (cur->ppid <= 0 || cur->ppid == cur->pid)
            break;
        cur = entry_find(all, n, cur->ppid);
    }
    /* memoise along the chain walked */
    for (cur = e, steps = 0; cur != NULL && cur->mark == 0 && steps++ <= n;) {
        cur->mark = result;
        if (cur->pid == root || cur->ppid <= 0)
            break;
        cur = entry_find(all, n, cur->ppid);
    }
    return result == 1;
}

/* Writes into out (the caller's, up to cap) the live processes below root (root
 * included) and those of session sid, from one scan of /proc. The total, or -1 with
 * errno when /proc cannot be read (out then untouched). */
int sbx_procfs_tree(pid_t root, pid_t sid, pid_t *out, size_t cap) {
    struct proc_entry *all = NULL;
    size_t n = 0, total = 0;
    int rc = -1;

    if (scan_proc(&all, &n) != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        struct proc_entry *e = &all[i];
        int member = (root > 0 && in_tree(all, n, e, root)) || (sid > 0 && e->sid == sid);
        if (!member || !e->live)
            continue;
        if (total < cap)
            out[total] = e->pid;
        total++;
    }
    rc = total > INT_MAX ? INT_MAX : (int)total;
out:
    free(all);
    return rc;
}
