/* The qemu process of a VM: its command line, its cgroup (memory limit = guest memory +
 * QEMU_OVERHEAD_MB), its spawn (backends/process/spawn.h: own session, no capabilities,
 * working directory = the sandbox folder so the sockets have short relative names),
 * a pidfd that says when it has exited, and its serial console: a FIFO in the sandbox
 * folder that qemu holds open both ways (so it never gets EPIPE, and a restarted
 * sandboxd reopens it), read on the loop into the sandbox log as stream `console`. qemu's own stderr goes to qemu.log in the folder: the
 * reason given when it exits before the agent answers. */
#define _GNU_SOURCE
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backends/process/procfs.h"
#include "backends/process/spawn.h"
#include "backends/vm/vm.h"
#include "core/logbuf.h"
#include "core/core.h"
#include "core/sandbox.h"
#include "dist/node.h"

#define QEMU_OVERHEAD_MB 320 /* qemu itself, the 64 MiB translation cache, page tables */

/* See vm.h. */
int vm_path(const struct vm_state *vs, const char *name, char *out, size_t cap) {
    return snprintf(out, cap, "%s/%s", vs->sb->dir, name);
}

/* See vm.h. A folder path too long for sun_path is reached through /proc/self/fd. */
int vm_connect(const struct vm_state *vs, const char *name) {
    struct sockaddr_un sa;
    int dirfd = -1, fd = -1;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (vm_path(vs, name, sa.sun_path, sizeof sa.sun_path) >= (int)sizeof sa.sun_path) {
        dirfd = open(vs->sb->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0)
            return -1;
        snprintf(sa.sun_path, sizeof sa.sun_path, "/proc/self/fd/%d/%s", dirfd, name);
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS) {
        close(fd);
        fd = -1;
    }
    if (dirfd >= 0)
        close(dirfd);
    return fd;
}

/* Adds one argument to argv (cap 96). */
static void add(char **argv, int *n, const char *s) {
    if (*n < 94)
        argv[(*n)++] = (char *)s;
}

/* The kernel command line of a guest. */
static void kernel_append(char *out, size_t cap) {
    snprintf(out, cap, "console=ttyS0 panic=-1 reboot=t");
}

/* -netdev user with the configured forwards, into buf. */
static void netdev(const struct sbx_vm_config *vc, char *buf, size_t cap) {
    size_t n = (size_t)snprintf(buf, cap, "user,id=n0");
    for (size_t i = 0; i < vc->nports && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, ",hostfwd=tcp:127.0.0.1:%d-:%d", vc->ports[i].host,
                              vc->ports[i].guest);
}

/* The cgroup of vs (sandboxd/<node>/vm-<id>), with its memory limit. 0 or -1. */
static int make_cgroup(struct vm_state *vs) {
    struct sbx_core *core = vs->sb->core;
    char name[400];
    if (core->cg.version == SBX_CG_NONE)
        return 0;
    snprintf(name, sizeof name, "sandboxd/%s/%s", core->node->name, vs->sb->id);
    if (sbx_cgroup_create(&core->cg, name, &vs->cg) != 0)
        return 0; /* no cgroups for us here: qemu runs without */
    vs->has_cg = 1;
    return sbx_cgroup_set_limits(&vs->cg, vs->sb->cfg.memory_mb + QEMU_OVERHEAD_MB, 0, 0);
}

/* See vm.h. */
int vm_qemu_spawn(struct vm_state *vs, const char *kernel, const char *initrd, char *why,
                  size_t cap) {
    struct sbx_sandbox *sb = vs->sb;
    const struct sbx_vm_config *vc = sbx_vm_cfg(&sb->cfg);
    static char *const envp[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                 "LC_ALL=C", NULL};
    char *argv[96];
    char mem[32], smp[32], accel[64], append[256], net[1200], drive[700], name[96], fifo[600],
        log[600];
    int n = 0, errfd = -1, confirm = -1, e = 0;
    const char *stage = "";
    snprintf(mem, sizeof mem, "%ld", sb->cfg.memory_mb);
    snprintf(smp, sizeof smp, "%ld", (long)sb->cfg.cpus);
    snprintf(accel, sizeof accel, strcmp(vs->accel, "kvm") == 0 ? "kvm" : "tcg,tb-size=64");
    snprintf(name, sizeof name, "sbx-%s", sb->id);
    kernel_append(append, sizeof append);
    add(argv, &n, "qemu-system-x86_64");
    add(argv, &n, "-name"); add(argv, &n, name);
    add(argv, &n, "-M"); add(argv, &n, "pc");
    add(argv, &n, "-accel"); add(argv, &n, accel);
    if (strcmp(vs->accel, "kvm") == 0) {
        add(argv, &n, "-cpu"); add(argv, &n, "host");
    }
    add(argv, &n, "-m"); add(argv, &n, mem);
    add(argv, &n, "-smp"); add(argv, &n, smp);
    add(argv, &n, "-nodefaults"); add(argv, &n, "-nographic"); add(argv, &n, "-no-reboot");
    add(argv, &n, "-chardev"); add(argv, &n, "stdio,id=con,signal=off");
    add(argv, &n, "-serial"); add(argv, &n, "chardev:con");
    add(argv, &n, "-qmp"); add(argv, &n, "unix:qmp.sock,server=on,wait=off");
    add(argv, &n, "-device"); add(argv, &n, "virtio-serial-pci");
    add(argv, &n, "-chardev"); add(argv, &n, "socket,id=agent,path=agent.sock,server=on,wait=off");
    add(argv, &n, "-device"); add(argv, &n, "virtserialport,chardev=agent,name=org.sandboxd.agent");
    if (vc->network == SBX_VM_NET_USER) {
        netdev(vc, net, sizeof net);
        add(argv, &n, "-netdev"); add(argv, &n, net);
        add(argv, &n, "-device"); add(argv, &n, "virtio-net-pci,netdev=n0");
    }
    if (vs->overlay[0] != '\0') {
        snprintf(drive, sizeof drive, "file=disk.qcow2,if=virtio,format=qcow2,cache=writeback");
        add(argv, &n, "-drive"); add(argv, &n, drive);
    }
    add(argv, &n, "-kernel"); add(argv, &n, kernel);
    if (initrd != NULL) {
        add(argv, &n, "-initrd"); add(argv, &n, initrd);
    }
    add(argv, &n, "-append"); add(argv, &n, append);
    argv[n] = NULL;

    vm_path(vs, "console.fifo", fifo, sizeof fifo);
    vm_path(vs, "qemu.log", log, sizeof log);
    unlink(fifo);
    if (mkfifo(fifo, 0600) != 0) {
        snprintf(why, cap, "cannot make the console FIFO: %s", strerror(errno));
        return -1;
    }
    vs->console_fd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    errfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (vs->console_fd < 0 || errfd < 0) {
        snprintf(why, cap, "cannot open the console or qemu.log: %s", strerror(errno));
        goto fail;
    }
    if (make_cgroup(vs) != 0) {
        snprintf(why, cap, "cannot set the memory limit of the VM's cgroup: %s", strerror(errno));
        goto fail;
    }
    struct sbx_spawn_spec spec = {.argv = argv, .envp = envp, .cwd = sb->dir, .stdin_fd = -1,
                                  .stdout_path = fifo, .stderr_fd = errfd,
                                  .cg = vs->has_cg ? &vs->cg : NULL, .drop_caps = 1};
    vs->pid = sbx_spawn_start(&spec, &confirm, &e, &stage);
    if (vs->pid < 0) {
        vs->pid = 0;
        snprintf(why, cap, "cannot start qemu-system-x86_64 (%s): %s", stage, strerror(e));
        goto fail;
    }
    /* Not waiting for the exec on the loop: a qemu that could not start exits 127, and
     * vm_qemu_start_error reads why from confirm_fd then. */
    vs->confirm_fd = confirm;
    struct sbx_procfs_stat st;
    if (sbx_procfs_stat(vs->pid, &st) == 0)
        vs->starttime = st.starttime;
    close(errfd);
    if (vm_qemu_watch(vs) != 0) {
        snprintf(why, cap, "cannot watch qemu: %s", strerror(errno));
        vm_qemu_kill(vs);
        return -1;
    }
    return 0;
fail:
    if (errfd >= 0)
        close(errfd);
    if (vs->console_fd >= 0)
        close(vs->console_fd);
    vs->console_fd = -1;
    return -1;
}

/* Console readable: what the guest printed goes to the log as stream `console` ('\r'
 * dropped; the log cuts lines and bounds them). End of file only when qemu is gone. */
static void on_console(evutil_socket_t fd, short what, void *arg) {
    struct vm_state *vs = arg;
    char buf[16384];
    (void)what;
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            event_del(vs->console_ev);
        return;
    }
    size_t k = 0;
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] != '\r')
            buf[k++] = buf[i];
    if (k > 0)
        sbx_sandbox_output(vs->sb, SBX_STREAM_CONSOLE, buf, k);
}

/* qemu exited (pidfd readable): its status when it is our child and not reaped yet. */
static void on_pidfd(evutil_socket_t fd, short what, void *arg) {
    struct vm_state *vs = arg;
    siginfo_t si;
    (void)what;
    memset(&si, 0, sizeof si);
    if (syscall(SYS_waitid, P_PIDFD, fd, &si, WEXITED | WNOWAIT | WNOHANG, NULL) == 0 &&
        si.si_pid == vs->pid) {
        vs->exit_kind = si.si_code == CLD_EXITED ? 1 : 2;
        vs->exit_value = si.si_status;
    }
    /* Whatever the console still holds. */
    if (vs->console_fd >= 0)
        on_console(vs->console_fd, EV_READ, vs);
    vm_on_qemu_exit(vs);
}

/* See vm.h. */
int vm_qemu_watch(struct vm_state *vs) {
    struct event_base *base = vs->sb->core->base;
    char fifo[600];
    if (vs->console_fd < 0) {
        vm_path(vs, "console.fifo", fifo, sizeof fifo);
        vs->console_fd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    }
    vs->pidfd = (int)syscall(SYS_pidfd_open, vs->pid, 0);
    if (vs->pidfd < 0)
        return -1;
    vs->pid_ev = event_new(base, vs->pidfd, EV_READ, on_pidfd, vs);
    if (vs->pid_ev == NULL || event_add(vs->pid_ev, NULL) != 0)
        return -1;
    if (vs->console_fd >= 0) {
        vs->console_ev = event_new(base, vs->console_fd, EV_READ | EV_PERSIST, on_console, vs);
        if (vs->console_ev != NULL)
            event_add(vs->console_ev, NULL);
    }
    return 0;
}

/* See vm.h. */
void vm_qemu_unwatch(struct vm_state *vs) {
    if (vs->pid_ev != NULL)
        event_free(vs->pid_ev);
    if (vs->console_ev != NULL)
        event_free(vs->console_ev);
    vs->pid_ev = vs->console_ev = NULL;
    if (vs->pidfd >= 0)
        close(vs->pidfd);
    if (vs->console_fd >= 0)
        close(vs->console_fd);
    if (vs->confirm_fd >= 0)
        close(vs->confirm_fd);
    vs->pidfd = vs->console_fd = vs->confirm_fd = -1;
}

/* See vm.h. */
int vm_qemu_start_error(const struct vm_state *vs, char *why, size_t cap) {
    int e = 0;
    const char *stage = NULL;
    if (vs->confirm_fd < 0 || sbx_spawn_confirm(vs->confirm_fd, &e, &stage) != -1)
        return 0;
    snprintf(why, cap, "cannot start qemu-system-x86_64 (%s): %s", stage, strerror(e));
    return 1;
}

/* See vm.h: through the pidfd (never a recycled pid), and the cgroup. */
void vm_qemu_kill(struct vm_state *vs) {
    if (vs->pidfd >= 0)
        syscall(SYS_pidfd_send_signal, vs->pidfd, SIGKILL, NULL, 0);
    else if (vs->pid > 0 && sbx_procfs_same_process(vs->pid, vs->starttime))
        kill(vs->pid, SIGKILL);
    if (vs->has_cg)
        sbx_cgroup_signal(&vs->cg, SIGKILL);
}
