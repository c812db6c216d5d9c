/* Guest bring-up (see boot.h). */
#include "boot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* Whether dir is already a mount point (another device than its parent's). */
static int mounted(const char *dir) {
    char parent[64];
    struct stat a, b;
    snprintf(parent, sizeof parent, "%s/..", dir);
    return stat(dir, &a) == 0 && stat(parent, &b) == 0 && a.st_dev != b.st_dev;
}

/* One mount, unless something is mounted there already. */
static void mount_one(const char *src, const char *dir, const char *type, unsigned long flags,
                      const char *opts) {
    mkdir(dir, 0755);
    if (mounted(dir))
        return;
    if (mount(src, dir, type, flags, opts) != 0 && errno != EBUSY)
        agent_log("mount %s on %s: %s", type, dir, strerror(errno));
}

/* fds 0, 1 and 2 on the console when the kernel could not open it for us (an initramfs
 * without /dev/console). */
static void console_fds(void) {
    if (fcntl(2, F_GETFD) != -1 && fcntl(1, F_GETFD) != -1 && fcntl(0, F_GETFD) != -1)
        return;
    int fd = open("/dev/console", O_RDWR | O_NOCTTY);
    if (fd < 0)
        return;
    for (int i = 0; i < 3; i++)
        if (fcntl(i, F_GETFD) == -1)
            dup2(fd, i);
    if (fd > 2)
        close(fd);
}

void boot_mounts(int pid1) {
    const unsigned long nx = MS_NOSUID | MS_NODEV | MS_NOEXEC;
    mount_one("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
    console_fds();
    mount_one("proc", "/proc", "proc", nx, NULL);
    mount_one("sysfs", "/sys", "sysfs", nx, NULL);
    if (!pid1)
        return; /* the rest is the system's business when another init runs it */
    mount_one("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "gid=5,mode=0620");
    mount_one("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
    mount_one("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
    mount_one("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
}

int boot_modules(void) {
    int failed = 0, loaded = 0;
    char line[512];
    FILE *f = fopen(AGENT_MODULES_LIST, "re");
    if (f == NULL)
        goto out;
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0' || line[0] == '#')
            continue;
        int fd = open(line, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || syscall(SYS_finit_module, fd, "", 0) != 0) {
            if (errno != EEXIST) {
                agent_log("module %s: %s", line, strerror(errno));
                failed++;
            }
        } else {
            loaded++;
        }
        if (fd >= 0)
            close(fd);
    }
    fclose(f);
    agent_log("%d modules loaded, %d failed", loaded, failed);
out:
    return failed;
}

/* The /dev name of the port called `name` ("vport1p1"), into dev; 0 or -1. */
static int find_port(const char *name, char *dev, size_t cap) {
    int rc = -1;
    DIR *d = opendir("/sys/class/virtio-ports");
    struct dirent *e;
    if (d == NULL)
        return -1;
    while (rc != 0 && (e = readdir(d)) != NULL) {
        char path[300], got[128];
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/name", e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, got, sizeof got - 1);
        close(fd);
        if (n <= 0)
            continue;
        got[n] = '\0';
        got[strcspn(got, "\n")] = '\0';
        if (strcmp(got, name) == 0 && strlen(e->d_name) + 6 < cap) {
            snprintf(dev, cap, "/dev/%s", e->d_name);
            rc = 0;
        }
    }
    closedir(d);
    return rc;
}

int boot_open_port(const char *name, int timeout_ms) {
    char dev[300];
    int64_t deadline = agent_now_ms() + timeout_ms;
    int fd = -1;
    for (;;) {
        if (find_port(name, dev, sizeof dev) == 0) {
            fd = open(dev, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
            if (fd >= 0)
                break;
        }
        if (agent_now_ms() >= deadline)
            break;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (fd >= 0)
        agent_log("port %s is %s", name, dev);
    else
        agent_log("port %s not found after %d ms", name, timeout_ms);
    return fd;
}

void boot_poweroff(const char *why) {
    agent_log("powering off: %s", why);
    kill(-1, SIGKILL);
    sync();
    reboot(RB_POWER_OFF);
    agent_log("reboot(RB_POWER_OFF): %s", strerror(errno));
    if (getpid() != 1)
        _exit(1);
    for (;;)
        pause();
}

int boot_cmdline_get(const char *key, char *out, unsigned cap) {
    char buf[4096];
    int rc = -1;
    int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (n <= 0 || cap == 0)
        return -1;
    buf[n] = '\0';
    size_t klen = strlen(key);
    for (char *tok = strtok(buf, " \n"); tok != NULL; tok = strtok(NULL, " \n")) {
        if (strncmp(tok, key, klen) == 0 && tok[klen] == '=') {
            snprintf(out, cap, "%s", tok + klen + 1);
            rc = 0;
        }
    }
    return rc;
}
