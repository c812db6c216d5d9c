/* fork/exec with the child's setup done between the two. Only async-signal-safe calls
 * run in the child. */
#define _GNU_SOURCE
#include "backends/process/spawn.h"

#include "util/fdlimit.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

enum stage {
    ST_SETSID = 1, ST_CGROUP, ST_SETNS, ST_UNSHARE, ST_FORK_NS, ST_MOUNT, ST_HOSTNAME,
    ST_FDS, ST_RLIMIT, ST_CHDIR, ST_USER, ST_CAPS, ST_EXEC
};

/* Static text for a setup stage, for error details. */
static const char *stage_name(int st) {
    switch (st) {
    case ST_SETSID: return "setsid";
    case ST_CGROUP: return "joining the cgroup";
    case ST_SETNS: return "entering the sandbox namespaces";
    case ST_UNSHARE: return "creating namespaces";
    case ST_FORK_NS: return "forking into the pid namespace";
    case ST_MOUNT: return "mounting /proc";
    case ST_HOSTNAME: return "setting the hostname";
    case ST_FDS: return "setting up stdio";
    case ST_RLIMIT: return "setting resource limits";
    case ST_CHDIR: return "changing to the working directory";
    case ST_USER: return "switching user";
    case ST_CAPS: return "dropping privileges";
    case ST_EXEC: return "executing the command";
    default: return "starting the process";
    }
}

/* Child: reports (stage, errno) on the pipe and exits. */
static void fail(int fd, int st) {
    int msg[2] = {st, errno};
    ssize_t n = write(fd, msg, sizeof msg);
    (void)n;
    _exit(127);
}

/* Child: closes every descriptor from `from` up, except keep (-1: none). */
static void close_from(int from, int keep) {
    long max = sysconf(_SC_OPEN_MAX);
    if (keep >= from) {
        if (keep > from && syscall(SYS_close_range, (unsigned)from, (unsigned)(keep - 1), 0) != 0)
            for (int fd = from; fd < keep; fd++)
                close(fd);
        from = keep + 1;
    }
    if (syscall(SYS_close_range, (unsigned)from, ~0u, 0) != 0)
        for (long fd = from; fd < (max > 0 ? max : 65536); fd++)
            close((int)fd);
}

/* Child: closes every descriptor from 3 up except errfd and s->keep_fds, whose
 * close-on-exec flag it clears. One close_range per gap between kept descriptors
 * (async-signal-safe: no sorting buffer, n is small). */
static void close_keeping(const struct sbx_spawn_spec *s, int errfd) {
    int from = 3;
    if (s->nkeep <= 0) {
        close_from(3, errfd);
        return;
    }
    for (int i = 0; i < s->nkeep; i++)
        if (s->keep_fds[i] >= 3 && fcntl(s->keep_fds[i], F_SETFD, 0) != 0)
            fail(errfd, ST_FDS);
    for (;;) {
        int next = errfd >= from ? errfd : -1; /* the lowest kept descriptor >= from */
        for (int i = 0; i < s->nkeep; i++)
            if (s->keep_fds[i] >= from && (next < 0 || s->keep_fds[i] < next))
                next = s->keep_fds[i];
        if (next < 0) {
            close_from(from, -1);
            return;
        }
        if (next > from && syscall(SYS_close_range, (unsigned)from, (unsigned)(next - 1), 0) != 0)
            for (int fd = from; fd < next; fd++)
                close(fd);
        from = next + 1;
    }
}

/* Child: fd itself, or /dev/null opened with flags (-1 if that fails). */
static int fd_or_null(int fd, int flags) { return fd >= 0 ? fd : open("/dev/null", flags); }

/* Child: enters the namespaces of process `pid` (mount last: it changes /proc). */
static int join_namespaces(pid_t pid) {
    static const char *const names[] = {"ipc", "uts", "net", "pid", "mnt"};
    char path[64];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        /* "/proc/<pid>/ns/<name>" built by hand: no snprintf after fork. */
        char num[16];
        int n = 0;
        pid_t v = pid;
        do {
            num[n++] = (char)('0' + v % 10);
            v /= 10;
        } while (v > 0);
        size_t p = 0;
        memcpy(path, "/proc/", 6);
        p = 6;
        while (n > 0)
            path[p++] = num[--n];
        memcpy(path + p, "/ns/", 4);
        p += 4;
        size_t l = strlen(names[i]);
        memcpy(path + p, names[i], l + 1);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return -1;
        int rc = setns(fd, 0);
        close(fd);
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* Child: the user switch and the capability drop, in the only order that works: the
 * bounding set while we still hold CAP_SETPCAP, then groups, gid and uid (setresuid from
 * root to another uid clears the permitted, effective and ambient sets), then whatever
 * is left (inheritable) with capset, then no_new_privs so that no exec (setuid binary,
 * file capabilities) can give anything back. Raw syscalls only: async-signal-safe.
 * 0, or the stage that failed (errno set). */
static int drop_privileges(const struct sbx_spawn_spec *s) {
    if (s->drop_bounding) {
        /* PR_CAPBSET_READ fails (EINVAL) past the kernel's last capability. */
        for (unsigned long cap = 0; cap < 64 && prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++)
            if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0)
                return ST_CAPS;
    }
    if (s->drop_caps && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 &&
        errno != EINVAL)
        return ST_CAPS;
    /* Raw syscalls: glibc's wrappers would also switch sandboxd's other threads, which a
     * child sharing sandboxd's memory (vfork) would take for its own. */
    if (s->set_user && (syscall(SYS_setgroups, 0, NULL) != 0 ||
                        syscall(SYS_setresgid, s->gid, s->gid, s->gid) != 0 ||
                        syscall(SYS_setresuid, s->uid, s->uid, s->uid) != 0))
        return ST_USER;
    if (s->drop_caps) {
        struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
        struct __user_cap_data_struct data[2];
        memset(data, 0, sizeof data);
        if (syscall(SYS_capset, &hdr, data) != 0)
            return ST_CAPS;
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return ST_CAPS;
    return 0;
}

/* Child: the part that runs in the final process, just before exec. */
static void exec_child(const struct sbx_spawn_spec *s, int errfd) {
    int in = fd_or_null(s->stdin_fd, O_RDONLY);
    int out = s->stdout_path != NULL ? open(s->stdout_path, O_RDWR) : fd_or_null(s->stdout_fd, O_WRONLY);
    int er = s->stderr_path != NULL ? open(s->stderr_path, O_RDWR) : fd_or_null(s->stderr_fd, O_WRONLY);
    if (in < 0 || out < 0 || er < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(er, 2) < 0)
        fail(errfd, ST_FDS);
    /* The open-file limit sandboxd raised for itself is not the workload's. */
    if (sbx_fdlimit_restore_child() != 0)
        fail(errfd, ST_RLIMIT);
    if (s->rlimit_as_bytes > 0) {
        struct rlimit rl = {(rlim_t)s->rlimit_as_bytes, (rlim_t)s->rlimit_as_bytes};
        if (setrlimit(RLIMIT_AS, &rl) != 0)
            fail(errfd, ST_RLIMIT);
    }
    if (s->rlimit_nproc > 0) {
        struct rlimit rl = {(rlim_t)s->rlimit_nproc, (rlim_t)s->rlimit_nproc};
        if (setrlimit(RLIMIT_NPROC, &rl) != 0)
            fail(errfd, ST_RLIMIT);
    }
    if (s->cwd != NULL && chdir(s->cwd) != 0)
        fail(errfd, ST_CHDIR);
    int st = drop_privileges(s);
    if (st != 0)
        fail(errfd, st);
    /* Close every other descriptor except the error pipe (close-on-exec) and those the
     * spec keeps. */
    close_keeping(s, errfd);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    execvpe(s->argv[0], s->argv, s->envp);
    fail(errfd, ST_EXEC);
}

/* Child with new namespaces: becomes a reaper for pid 1 of the new pid namespace and
 * exits with its status. */
static void namespaced_child(const struct sbx_spawn_spec *s, int errfd) {
    if (unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWPID) != 0)
        fail(errfd, ST_UNSHARE);
    pid_t init = fork();
    if (init < 0)
        fail(errfd, ST_FORK_NS);
    if (init == 0) {
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
            mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
            fail(errfd, ST_MOUNT);
        if (s->hostname != NULL && sethostname(s->hostname, strlen(s->hostname)) != 0)
            fail(errfd, ST_HOSTNAME);
        exec_child(s, errfd);
    }
    close_from(0, -1);
    /* The reaper only waits: it holds no more than the workload does. */
    (void)drop_privileges(s);
    int status;
    while (waitpid(init, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFSIGNALED(status)) {
        signal(WTERMSIG(status), SIG_DFL);
        kill(getpid(), WTERMSIG(status));
    }
    _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 127);
}

/* See spawn.h. Between fork and exec the child has default signal handlers. A child that
 * only execs (no namespaces to make or join) is started with vfork: it shares sandboxd's
 * memory and sandboxd waits until it exec'd or failed (its setup is a few system calls,
 * never a wait), so no page table of sandboxd's is copied, which is what a fork of a
 * sandboxd holding thousands of sandboxes costs; sandboxd's signals stay blocked until the
 * child has its own (default) handlers. */
pid_t sbx_spawn_start(const struct sbx_spawn_spec *spec, int *confirm_fd, int *err,
                      const char **stage) {
    int p[2];
    pid_t pid = -1;

    *confirm_fd = -1;
    /* Non-blocking both ways: the child's one 8-byte write never fills a pipe. */
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) {
        *err = errno;
        *stage = "creating a pipe";
        return -1;
    }
    int shared = spec->join_ns_of <= 0 && !spec->new_namespaces;
    sigset_t all, old;
    sigfillset(&all);
    if (shared)
        pthread_sigmask(SIG_SETMASK, &all, &old);
    pid = shared ? vfork() : fork();
    if (pid != 0 && shared)
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        *err = errno;
        *stage = "fork";
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        /* The daemon's handlers (libevent's) must not run here. */
        for (int sig = 1; sig < NSIG; sig++)
            if (sig != SIGKILL && sig != SIGSTOP)
                signal(sig, SIG_DFL);
        close(p[0]);
        if (setsid() < 0)
            fail(p[1], ST_SETSID);
        if (spec->cg != NULL && sbx_cgroup_attach(spec->cg, 0) != 0)
            fail(p[1], ST_CGROUP);
        if (spec->join_ns_of > 0) {
            if (join_namespaces(spec->join_ns_of) != 0)
                fail(p[1], ST_SETNS);
            /* Entering a pid namespace applies to children: fork once more. */
            pid_t inner = fork();
            if (inner < 0)
                fail(p[1], ST_FORK_NS);
            if (inner == 0)
                exec_child(spec, p[1]);
            close(p[1]);
            (void)drop_privileges(spec);
            int status;
            while (waitpid(inner, &status, 0) < 0 && errno == EINTR)
                ;
            if (WIFSIGNALED(status)) {
                signal(WTERMSIG(status), SIG_DFL);
                kill(getpid(), WTERMSIG(status));
            }
            _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 127);
        }
        if (spec->new_namespaces)
            namespaced_child(spec, p[1]);
        exec_child(spec, p[1]);
    }
    close(p[1]);
    *confirm_fd = p[0];
    return pid;
}

/* See spawn.h. One read: the message is written whole or not at all. */
int sbx_spawn_confirm(int fd, int *err, const char **stage) {
    int msg[2];
    ssize_t n;
    while ((n = read(fd, msg, sizeof msg)) < 0 && errno == EINTR)
        ;
    if (n < 0 && errno == EAGAIN)
        return 0;
    if (n == (ssize_t)sizeof msg) {
        *err = msg[1];
        *stage = stage_name(msg[0]);
        return -1;
    }
    /* End of file (exec'd), or a pipe that cannot be read: nothing says it failed. */
    return 1;
}

/* See spawn.h. */
pid_t sbx_spawn_wait(pid_t pid, int fd, int *err, const char **stage) {
    int r = 0;
    while (r == 0) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
            break; /* cannot wait: the child runs, as if confirmed */
        r = sbx_spawn_confirm(fd, err, stage);
    }
    close(fd);
    if (r < 0) {
        /* The child failed before exec and exits 127: reap it here. */
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        pid = -1;
    }
    return pid;
}

/* See spawn.h. */
pid_t sbx_spawn(const struct sbx_spawn_spec *spec, int *err, const char **stage) {
    int fd = -1;
    pid_t pid = sbx_spawn_start(spec, &fd, err, stage);
    return pid < 0 ? -1 : sbx_spawn_wait(pid, fd, err, stage);
}

/* See spawn.h. The helper child never signals anything unless it runs as exactly uid:
 * kill(-1) as root would reach every process on the host. */
pid_t sbx_spawn_kill_uid_start(uid_t uid, gid_t gid, int sig) {
    if (uid == 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        if (setgroups(0, NULL) != 0 || setresgid(gid, gid, gid) != 0 ||
            setresuid(uid, uid, uid) != 0 || getuid() != uid || geteuid() != uid)
            _exit(1);
        /* kill(-1) skips the caller. It answers 0 even when every process refused
         * (EPERM), so "until ESRCH" never ends early: it walked the whole process table
         * 1000 times (seconds with thousands of processes). One pass runs under the
         * tasklist lock, and a fork whose parent gets SIGKILL meanwhile is undone, so
         * nothing of uid survives it; a second pass is cheap insurance. */
        for (int pass = 0; pass < (sig == SIGKILL ? 2 : 1); pass++)
            kill(-1, sig);
        _exit(0);
    }
    return pid;
}

/* See spawn.h. */
int sbx_spawn_kill_uid(uid_t uid, gid_t gid, int sig) {
    pid_t pid = sbx_spawn_kill_uid_start(uid, gid, sig);
    int status;
    if (pid < 0)
        return -1;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}
