/* The qemu process of a VM: its command line, its cgroup (memory limit = guest memory +
 * QEMU_OVERHEAD_MB), its spawn (backends/process/spawn.h: own session, the sandbox's own
 * uid, no capabilities, an empty bounding set, no_new_privs; its QMP and agent sockets,
 * kernel, initrd and disks handed over as descriptors, so that it needs no path of
 * sandboxd's and no folder it can write),
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

/* The address of name in vs's folder into sa; a folder path too long for sun_path is
 * reached through /proc/self/fd/<*dirfd> (the caller closes *dirfd when >= 0). 0 or -1. */
static int sock_addr(const struct vm_state *vs, const char *name, struct sockaddr_un *sa,
                     int *dirfd) {
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    *dirfd = -1;
    if (vm_path(vs, name, sa->sun_path, sizeof sa->sun_path) < (int)sizeof sa->sun_path)
        return 0;
    *dirfd = open(vs->sb->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (*dirfd < 0)
        return -1;
    snprintf(sa->sun_path, sizeof sa->sun_path, "/proc/self/fd/%d/%s", *dirfd, name);
    return 0;
}

/* See vm.h. */
int vm_connect(const struct vm_state *vs, const char *name) {
    struct sockaddr_un sa;
    int dirfd = -1, fd = -1;
    if (sock_addr(vs, name, &sa, &dirfd) != 0)
        return -1;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS) {
        close(fd);
        fd = -1;
    }
    if (dirfd >= 0)
        close(dirfd);
    return fd;
}

/* A listening unix socket at name in vs's folder (a stale one replaced), made by sandboxd
 * so that qemu, running as the sandbox's uid, needs no folder it can write: qemu gets the
 * descriptor (-chardev socket,fd=N). Close-on-exec here; the caller closes it once qemu
 * has it. The descriptor, or -1 (errno). */
static int listen_at(const struct vm_state *vs, const char *name) {
    struct sockaddr_un sa;
    int dirfd = -1, fd = -1;
    if (sock_addr(vs, name, &sa, &dirfd) != 0)
        return -1;
    unlink(sa.sun_path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 8) != 0)) {
        int e = errno;
        close(fd);
        fd = -1;
        errno = e;
    }
    if (dirfd >= 0)
        close(dirfd);
    return fd;
}

/* Opens path (flags: O_RDONLY or O_RDWR) for qemu, which reaches it as /proc/self/fd/N
 * (the kernel, the initrd: no directory on the way needs to be open to its uid) or as an
 * fdset (the disks: no permission check at all). With check_uid, a file that uid cannot
 * read by its mode bits is refused here with a reason, rather than by qemu. The
 * descriptor (close-on-exec), or -1 with why. */
static int open_for_qemu(const struct vm_state *vs, const char *what, const char *path,
                         int flags, int check_uid, char *why, size_t cap) {
    const struct sbx_ident *id = &vs->sb->ident;
    struct stat st;
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(why, cap, "cannot open the %s %.300s: %s", what, path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    int readable = (st.st_mode & S_IROTH) || (st.st_uid == id->uid && (st.st_mode & S_IRUSR)) ||
                   (st.st_gid == id->gid && (st.st_mode & S_IRGRP));
    if (check_uid && sbx_ident_separate(id) && !readable) {
        snprintf(why, cap, "the %s %.300s is not readable by the sandbox's uid %u (mode %04o): "
                 "qemu runs as that uid", what, path, (unsigned)id->uid, (unsigned)(st.st_mode & 07777));
        close(fd);
        return -1;
    }
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

/* Fills spec's user and privileges: qemu runs as the sandbox's own uid (core/ident.h)
 * when it has one, always without capabilities, with an empty bounding set when
 * sandboxd is root (no_new_privs: spawn.c). */
static void qemu_identity(const struct sbx_sandbox *sb, struct sbx_spawn_spec *spec) {
    const struct sbx_ident *id = &sb->ident;
    if (id->kind != SBX_IDENT_SHARED && id->resolved) {
        spec->set_user = 1;
        spec->uid = id->uid;
        spec->gid = id->gid;
    }
    spec->drop_caps = 1;
    spec->drop_bounding = geteuid() == 0;
}

enum { FD_QMP, FD_AGENT, FD_KERNEL, FD_INITRD, FD_BASE, FD_OVERLAY, FD_N };

/* Opens what qemu gets as descriptors into fds (FD_N, -1 where unused): its QMP and
 * agent sockets, the kernel and initrd, and with a disk the base (read-only) and the
 * overlay. 0, or -1 with why (what is open stays in fds for the caller to close). */
static int open_qemu_fds(struct vm_state *vs, const char *kernel, const char *initrd, int *fds,
                         char *why, size_t cap) {
    const struct sbx_vm_config *vc = sbx_vm_cfg(&vs->sb->cfg);
    if ((fds[FD_QMP] = listen_at(vs, "qmp.sock")) < 0 ||
        (fds[FD_AGENT] = listen_at(vs, "agent.sock")) < 0) {
        snprintf(why, cap, "cannot make the QMP or agent socket: %s", strerror(errno));
        return -1;
    }
    if ((fds[FD_KERNEL] = open_for_qemu(vs, "kernel", kernel, O_RDONLY, 1, why, cap)) < 0)
        return -1;
    if (initrd != NULL &&
        (fds[FD_INITRD] = open_for_qemu(vs, "initrd", initrd, O_RDONLY, 1, why, cap)) < 0)
        return -1;
    if (vs->overlay[0] != '\0' &&
        ((fds[FD_BASE] = open_for_qemu(vs, "disk", vc->disk, O_RDONLY, 0, why, cap)) < 0 ||
         (fds[FD_OVERLAY] = open_for_qemu(vs, "overlay", vs->overlay, O_RDWR, 0, why, cap)) < 0))
        return -1;
    return 0;
}

/* See vm.h. qemu opens nothing of sandboxd's by path: its sockets, kernel, initrd and
 * disks are descriptors sandboxd opened (open_qemu_fds), the console FIFO is opened
 * before it drops root, and its working folder is the sandbox's (0711, sandboxd's). */
int vm_qemu_spawn(struct vm_state *vs, const char *kernel, const char *initrd, char *why,
                  size_t cap) {
    struct sbx_sandbox *sb = vs->sb;
    const struct sbx_vm_config *vc = sbx_vm_cfg(&sb->cfg);
    static char *const envp[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                 "LC_ALL=C", NULL};
    char *argv[96];
    char mem[32], smp[32], accel[64], append[256], net[1200], name[96], fifo[600], log[600],
        qmp[80], agent[80], kpath[40], ipath[40], add_base[64], add_ovl[64], bd_base[120];
    int fds[FD_N], n = 0, errfd = -1, confirm = -1, e = 0, rc = -1;
    const char *stage = "";
    for (int i = 0; i < FD_N; i++)
        fds[i] = -1;
    if (open_qemu_fds(vs, kernel, initrd, fds, why, cap) != 0)
        goto done;
    snprintf(mem, sizeof mem, "%ld", sb->cfg.memory_mb);
    snprintf(smp, sizeof smp, "%ld", (long)sb->cfg.cpus);
    snprintf(accel, sizeof accel, strcmp(vs->accel, "kvm") == 0 ? "kvm" : "tcg,tb-size=64");
    snprintf(name, sizeof name, "sbx-%s", sb->id);
    snprintf(qmp, sizeof qmp, "socket,id=qmp,fd=%d,server=on,wait=off", fds[FD_QMP]);
    snprintf(agent, sizeof agent, "socket,id=agent,fd=%d,server=on,wait=off", fds[FD_AGENT]);
    snprintf(kpath, sizeof kpath, "/proc/self/fd/%d", fds[FD_KERNEL]);
    snprintf(ipath, sizeof ipath, "/proc/self/fd/%d", fds[FD_INITRD]);
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
    add(argv, &n, "-chardev"); add(argv, &n, qmp);
    add(argv, &n, "-mon"); add(argv, &n, "chardev=qmp,mode=control");
    add(argv, &n, "-device"); add(argv, &n, "virtio-serial-pci");
    add(argv, &n, "-chardev"); add(argv, &n, agent);
    add(argv, &n, "-device"); add(argv, &n, "virtserialport,chardev=agent,name=org.sandboxd.agent");
    if (vc->network == SBX_VM_NET_USER) {
        netdev(vc, net, sizeof net);
        add(argv, &n, "-netdev"); add(argv, &n, net);
        add(argv, &n, "-device"); add(argv, &n, "virtio-net-pci,netdev=n0");
    }
    if (fds[FD_OVERLAY] >= 0) {
        /* The overlay's backing file is the base's descriptor (backing=base), never the
         * path written in the overlay. */
        snprintf(add_base, sizeof add_base, "fd=%d,set=1,opaque=base", fds[FD_BASE]);
        snprintf(add_ovl, sizeof add_ovl, "fd=%d,set=2,opaque=overlay", fds[FD_OVERLAY]);
        snprintf(bd_base, sizeof bd_base, "driver=%s,file=basef,node-name=base,read-only=on",
                 vs->disk_fmt);
        add(argv, &n, "-add-fd"); add(argv, &n, add_base);
        add(argv, &n, "-add-fd"); add(argv, &n, add_ovl);
        add(argv, &n, "-blockdev");
        add(argv, &n, "driver=file,filename=/dev/fdset/1,node-name=basef,read-only=on");
        add(argv, &n, "-blockdev"); add(argv, &n, bd_base);
        add(argv, &n, "-blockdev"); add(argv, &n, "driver=file,filename=/dev/fdset/2,node-name=ovlf");
        add(argv, &n, "-blockdev");
        add(argv, &n, "driver=qcow2,file=ovlf,backing=base,node-name=disk0");
        add(argv, &n, "-device"); add(argv, &n, "virtio-blk-pci,drive=disk0");
    }
    add(argv, &n, "-kernel"); add(argv, &n, kpath);
    if (fds[FD_INITRD] >= 0) {
        add(argv, &n, "-initrd"); add(argv, &n, ipath);
    }
    add(argv, &n, "-append"); add(argv, &n, append);
    argv[n] = NULL;

    vm_path(vs, "console.fifo", fifo, sizeof fifo);
    vm_path(vs, "qemu.log", log, sizeof log);
    unlink(fifo);
    if (mkfifo(fifo, 0600) != 0) {
        snprintf(why, cap, "cannot make the console FIFO: %s", strerror(errno));
        goto done;
    }
    vs->console_fd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    errfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (vs->console_fd < 0 || errfd < 0) {
        snprintf(why, cap, "cannot open the console or qemu.log: %s", strerror(errno));
        goto done;
    }
    if (make_cgroup(vs) != 0) {
        snprintf(why, cap, "cannot set the memory limit of the VM's cgroup: %s", strerror(errno));
        goto done;
    }
    int keep[FD_N], nkeep = 0;
    for (int i = 0; i < FD_N; i++)
        if (fds[i] >= 0)
            keep[nkeep++] = fds[i];
    struct sbx_spawn_spec spec = {.argv = argv, .envp = envp, .cwd = sb->dir, .stdin_fd = -1,
                                  .stdout_path = fifo, .stderr_fd = errfd,
                                  .cg = vs->has_cg ? &vs->cg : NULL, .keep_fds = keep,
                                  .nkeep = nkeep};
    qemu_identity(sb, &spec);
    vs->pid = sbx_spawn_start(&spec, &confirm, &e, &stage);
    if (vs->pid < 0) {
        vs->pid = 0;
        snprintf(why, cap, "cannot start qemu-system-x86_64 (%s): %s", stage, strerror(e));
        goto done;
    }
    /* Not waiting for the exec on the loop: a qemu that could not start exits 127, and
     * vm_qemu_start_error reads why from confirm_fd then. */
    vs->confirm_fd = confirm;
    struct sbx_procfs_stat st;
    if (sbx_procfs_stat(vs->pid, &st) == 0)
        vs->starttime = st.starttime;
    if (vm_qemu_watch(vs) != 0) {
        snprintf(why, cap, "cannot watch qemu: %s", strerror(errno));
        vm_qemu_kill(vs);
        goto done;
    }
    rc = 0;
done:
    if (errfd >= 0)
        close(errfd);
    for (int i = 0; i < FD_N; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    if (rc != 0 && vs->pid <= 0 && vs->console_fd >= 0) {
        close(vs->console_fd);
        vs->console_fd = -1;
    }
    return rc;
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
