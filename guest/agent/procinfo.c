/* PS and METRICS from /proc (see procinfo.h). Every file is read into a bounded buffer; a
 * process that vanishes while it is read is left out. */
#include "procinfo.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"

/* Reads up to cap-1 bytes of path into buf, NUL-terminated; the length, or -1. */
static ssize_t slurp(const char *path, char *buf, size_t cap) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = -1, total = 0;
    if (fd < 0)
        return -1;
    while ((size_t)total < cap - 1 && (n = read(fd, buf + total, cap - 1 - (size_t)total)) > 0)
        total += n;
    close(fd);
    if (n < 0)
        return -1;
    buf[total] = '\0';
    return total;
}

/* One /proc/<pid> into e (strings point into name/cmd); 0 or -1 (gone). */
static int read_proc(long pid, struct agent_ps_entry *e, char *name, char *cmd, long page) {
    char path[64], stat[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    if (slurp(path, stat, sizeof stat) <= 0)
        return -1;
    /* pid (comm) state ppid ...; comm may hold spaces and parentheses: take the last ')'. */
    char *open_p = strchr(stat, '('), *close_p = strrchr(stat, ')');
    if (open_p == NULL || close_p == NULL || close_p < open_p || close_p[1] == '\0')
        return -1;
    size_t nlen = (size_t)(close_p - open_p - 1);
    if (nlen > 63)
        nlen = 63;
    memcpy(name, open_p + 1, nlen);
    name[nlen] = '\0';
    char state = close_p[2];
    long ppid = strtol(close_p + 3, NULL, 10);
    /* rss is field 24 (the 22nd after the state). */
    char *p = close_p + 2;
    for (int f = 3; f < 24 && p != NULL; f++) {
        p = strchr(p, ' ');
        if (p != NULL)
            p++;
    }
    long rss = p != NULL ? strtol(p, NULL, 10) : 0;
    snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
    ssize_t clen = slurp(path, cmd, AGENT_PS_CMDLINE + 1);
    if (clen < 0)
        clen = 0;
    for (ssize_t i = 0; i < clen; i++)
        if (cmd[i] == '\0')
            cmd[i] = ' ';
    while (clen > 0 && cmd[clen - 1] == ' ')
        clen--;
    e->pid = (uint32_t)pid;
    e->ppid = (uint32_t)ppid;
    e->state = (uint8_t)state;
    e->rss_bytes = rss > 0 ? (uint64_t)rss * (uint64_t)page : 0;
    e->name = (struct agent_str){(const uint8_t *)name, (uint32_t)strlen(name)};
    e->cmdline = (struct agent_str){(const uint8_t *)cmd, (uint32_t)clen};
    return 0;
}

void procinfo_ps(uint32_t id) {
    struct agent_wr w;
    size_t cap = AGENT_MAX_FRAME_LEN + 4;
    uint8_t *buf = outq_reserve(agent_outq(), cap);
    long page = sysconf(_SC_PAGESIZE);
    DIR *d = opendir("/proc");
    struct dirent *de;
    if (buf == NULL || d == NULL) {
        agent_send_err(id, buf == NULL ? EAGAIN : errno, "cannot list /proc");
        goto out;
    }
    agent_ps_list_begin(&w, buf, cap, id);
    while ((de = readdir(d)) != NULL) {
        char name[64], cmd[AGENT_PS_CMDLINE + 1];
        struct agent_ps_entry e;
        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        if (read_proc(strtol(de->d_name, NULL, 10), &e, name, cmd, page) == 0 &&
            !agent_ps_list_add(&w, &e))
            break;
    }
    outq_commit(agent_outq(), agent_ps_list_end(&w));
out:
    if (d != NULL)
        closedir(d);
}

/* The number after "key:" in text (meminfo style), or 0. */
static unsigned long long field(const char *text, const char *key) {
    const char *p = strstr(text, key);
    return p != NULL ? strtoull(p + strlen(key), NULL, 10) : 0;
}

/* A load average "0.42" as 420. */
static uint32_t milli(const char *s, char **end) {
    double v = strtod(s, end);
    return v > 0 ? (uint32_t)(v * 1000.0 + 0.5) : 0;
}

void procinfo_metrics(uint32_t id) {
    char buf[4096];
    uint8_t frame[256];
    struct agent_metrics m;
    memset(&m, 0, sizeof m);
    if (slurp("/proc/meminfo", buf, sizeof buf) > 0) {
        m.mem_total = field(buf, "MemTotal:") * 1024;
        m.mem_available = field(buf, "MemAvailable:") * 1024;
    }
    if (slurp("/proc/stat", buf, sizeof buf) > 0 && strncmp(buf, "cpu ", 4) == 0) {
        unsigned long long v[4] = {0, 0, 0, 0};
        sscanf(buf + 4, "%llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3]);
        m.cpu_user = v[0] + v[1];
        m.cpu_system = v[2];
        m.cpu_idle = v[3];
    }
    if (slurp("/proc/uptime", buf, sizeof buf) > 0)
        m.uptime_ms = (uint64_t)(strtod(buf, NULL) * 1000.0);
    if (slurp("/proc/loadavg", buf, sizeof buf) > 0) {
        char *p = buf;
        m.load1 = milli(p, &p);
        m.load5 = milli(p, &p);
        m.load15 = milli(p, &p);
        char *slash = strchr(p, '/');
        m.nprocs = slash != NULL ? (uint32_t)strtoul(slash + 1, NULL, 10) : 0;
    }
    agent_send(frame, agent_enc_metrics(frame, sizeof frame, id, &m));
}
