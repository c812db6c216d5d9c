/* Unit tests for backends/process/cgroup.h against the real cgroups of the host: the
 * detection agrees with /proc/self/mountinfo; groups are created, reused and removed;
 * a process that double-forked into its own session is still found and killed; pids,
 * memory and CPU limits take effect (fork fails with EAGAIN, OOM kill counted, quota
 * written); kill works with and without a freezer; the v2 code (cgroup.kill,
 * cgroup.freeze) runs against a cgroup2 hierarchy when one is mounted.
 *
 * Every group lives below "sandboxd-unit/<test pid>/" and is removed at the end; every
 * process is killed and reaped (the test is a child subreaper, so double-forked orphans
 * come back to it). A part the host cannot do is skipped with a message, never passed. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backends/process/cgroup.h"
#include "backends/process/procfs.h"

static struct sbx_cg_host host;
static char unit_top[64];   /* "sandboxd-unit/<pid>" */
static char odd_mnt[96];    /* a mount point that mountinfo escapes */

/* ---- helpers ------------------------------------------------------------------------- */

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* "sandboxd-unit/<pid>/<leaf>" */
static void group_name(char *buf, size_t cap, const char *leaf) {
    snprintf(buf, cap, "%s/%s", unit_top, leaf);
}

/* 1 if pid exists and is not a zombie (checked through /proc). */
static int alive(pid_t pid) {
    struct sbx_procfs_stat st;
    return sbx_procfs_stat(pid, &st) == 0 && st.state != 'Z';
}

/* Reaps every child that has exited or exits within ms milliseconds. */
static void reap_all(long ms) {
    for (long waited = 0;; waited += 5) {
        pid_t r;
        while ((r = waitpid(-1, NULL, WNOHANG)) > 0) {
        }
        if ((r < 0 && errno == ECHILD) || waited >= ms)
            return;
        sleep_ms(5);
    }
}

static int contains(const pid_t *v, int n, pid_t pid) {
    for (int i = 0; i < n; i++)
        if (v[i] == pid)
            return 1;
    return 0;
}

/* Reads dir/file into buf, NUL-terminated, trailing newline dropped. */
static int read_file(const char *dir, const char *file, char *buf, size_t cap) {
    char path[SBX_CG_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    if (n > 0 && buf[n - 1] == '\n')
        buf[n - 1] = '\0';
    return 0;
}

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Creates a group for leaf, skipping the test when the host has no usable cgroups. */
static void create_or_skip(const char *leaf, struct sbx_cgroup *cg) {
    char name[128];
    if (host.version == SBX_CG_NONE || !host.can_track) {
        print_message("SKIP: this host has no usable cgroups (version %d, can_track %d)\n",
                      (int)host.version, host.can_track);
        skip();
    }
    group_name(name, sizeof name, leaf);
    assert_int_equal(sbx_cgroup_create(&host, name, cg), 0);
}

/* Kills everything left in cg, reaps it and removes the group. */
static void destroy(struct sbx_cgroup *cg) {
    assert_true(sbx_cgroup_kill(cg, SIGKILL) >= 0);
    reap_all(200);
    assert_int_equal(sbx_cgroup_remove(cg), 0);
}

/* Forks a child that joins cg and then runs body(arg); it exits with body's result, or
 * 120 if joining failed. */
static pid_t spawn_in(const struct sbx_cgroup *cg, int (*body)(void *), void *arg) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (sbx_cgroup_attach(cg, 0) != 0)
            _exit(120);
        _exit(body(arg));
    }
    return pid;
}

static int body_pause(void *arg) {
    (void)arg;
    for (;;)
        pause();
    return 0;
}

/* Mountinfo, read independently of the module: is a v1 controller / a cgroup2 mounted? */
static int mountinfo_has(const char *fstype, const char *opt, char *mnt_out, size_t cap) {
    FILE *f = fopen("/proc/self/mountinfo", "r");
    char line[1024];
    int found = 0;
    if (f == NULL)
        return 0;
    while (!found && fgets(line, sizeof line, f) != NULL) {
        char want[64];
        snprintf(want, sizeof want, " - %s ", fstype);
        char *sep = strstr(line, want);
        if (sep == NULL)
            continue;
        char *opts = strrchr(line, ' ');
        if (opt != NULL) {
            char tok[64];
            size_t ol = strlen(opt);
            snprintf(tok, sizeof tok, ",%s", opt);
            char *hit = strstr(opts, tok);
            if (hit == NULL || (hit[ol + 1] != ',' && hit[ol + 1] != '\n' && hit[ol + 1] != '\0'))
                continue;
        }
        found = 1;
        if (mnt_out != NULL) {
            /* field 5 is the mount point */
            char *p = line;
            for (int i = 0; i < 4; i++)
                p = strchr(p, ' ') + 1;
            size_t len = (size_t)(strchr(p, ' ') - p);
            if (len >= cap)
                len = cap - 1;
            memcpy(mnt_out, p, len);
            mnt_out[len] = '\0';
        }
    }
    fclose(f);
    return found;
}

/* ---- detection and groups ------------------------------------------------------------ */

static void test_detect(void **state) {
    (void)state;
    int v1_mem = mountinfo_has("cgroup", "memory", NULL, 0);
    int v1_pids = mountinfo_has("cgroup", "pids", NULL, 0);
    char mnt[SBX_CG_PATH_MAX];

    print_message("detected: version %d memory='%s' pids='%s' cpu='%s' cpuacct='%s' "
                  "freezer='%s' unified='%s' can memory %d pids %d cpu %d track %d\n",
                  (int)host.version, host.memory, host.pids, host.cpu, host.cpuacct,
                  host.freezer, host.unified, host.can_memory, host.can_pids, host.can_cpu,
                  host.can_track);
    if (v1_mem || v1_pids) {
        assert_int_equal(host.version, SBX_CG_V1);
        if (v1_mem) {
            assert_true(mountinfo_has("cgroup", "memory", mnt, sizeof mnt));
            assert_string_equal(host.memory, mnt);
            if (access(mnt, W_OK) == 0)
                assert_true(host.can_memory);
        }
        if (v1_pids) {
            assert_true(mountinfo_has("cgroup", "pids", mnt, sizeof mnt));
            assert_string_equal(host.pids, mnt);
            if (access(mnt, W_OK) == 0)
                assert_true(host.can_pids);
        }
        assert_true(host.can_track);
        assert_string_equal(host.unified, "");
    } else if (mountinfo_has("cgroup2", NULL, NULL, 0)) {
        assert_int_equal(host.version, SBX_CG_V2);
        assert_true(host.unified[0] != '\0');
    } else {
        print_message("SKIP: no cgroups mounted on this host\n");
        assert_int_equal(host.version, SBX_CG_NONE);
        skip();
    }
    /* a second detection gives the same result */
    struct sbx_cg_host again;
    sbx_cgroup_detect(&again);
    assert_memory_equal(&again, &host, sizeof host);
}

static void test_create_reuse_remove(void **state) {
    (void)state;
    struct sbx_cgroup cg, cg2, derived;
    char name[128];

    create_or_skip("a", &cg);
    group_name(name, sizeof name, "a");
    assert_int_equal(cg.version, host.version);
    if (host.version == SBX_CG_V1) {
        if (host.can_memory) {
            char want[SBX_CG_PATH_MAX + 160];
            snprintf(want, sizeof want, "%s/%s", host.memory, name);
            assert_string_equal(cg.memory, want);
            assert_true(is_dir(cg.memory));
        }
        if (host.can_pids)
            assert_true(is_dir(cg.pids));
        if (host.freezer[0] != '\0')
            assert_true(is_dir(cg.freezer));
        assert_string_equal(cg.unified, "");
    } else {
        assert_true(is_dir(cg.unified));
    }

    /* adoption: the same name gives the same paths, existing groups are reused */
    sbx_cgroup_paths(&host, name, &derived);
    assert_memory_equal(&derived, &cg, sizeof cg);
    assert_int_equal(sbx_cgroup_create(&host, name, &cg2), 0);
    assert_memory_equal(&cg2, &cg, sizeof cg);

    /* empty group */
    pid_t pids[4];
    assert_int_equal(sbx_cgroup_pids(&cg, pids, 4), 0);

    /* bad names create nothing */
    static const char *const bad[] = {"", "/abs", "../x", "a//b", "a/./b", "a/..", "trail/"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&cg2, 0x5a, sizeof cg2);
        errno = 0;
        assert_int_equal(sbx_cgroup_create(&host, bad[i], &cg2), -1);
        assert_int_equal(errno, EINVAL);
        assert_string_equal(cg2.memory, "");
        assert_string_equal(cg2.unified, "");
    }
    char longname[SBX_CG_PATH_MAX + 8];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(sbx_cgroup_create(&host, longname, &cg2), -1);
    assert_int_equal(errno, ENAMETOOLONG);

    assert_int_equal(sbx_cgroup_remove(&cg), 0);
    if (cg.memory[0] != '\0')
        assert_false(is_dir(cg.memory));
    if (cg.unified[0] != '\0')
        assert_false(is_dir(cg.unified));
    /* removing again: already gone counts as removed */
    assert_int_equal(sbx_cgroup_remove(&cg), 0);
    /* attaching to a removed group fails */
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0)
        _exit(sbx_cgroup_attach(&cg, 0) == -1 ? 0 : 1);
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* Pipes from the escape child: the sleeper's pid (written by the sleeper itself once it
 * is in its own session) and the ready byte (once the middle process is reaped). */
struct escape_pipes {
    int pid_fd, ready_fd;
};

/* Child body: double-forks a `sleep 100` that calls setsid, and then waits. */
static int body_escape(void *arg) {
    const struct escape_pipes *ep = arg;
    pid_t mid = fork();
    if (mid < 0)
        return 2;
    if (mid == 0) {
        pid_t g = fork();
        if (g < 0)
            _exit(3);
        if (g == 0) {
            if (setsid() < 0)
                _exit(4);
            pid_t self = getpid();
            if (write(ep->pid_fd, &self, sizeof self) != (ssize_t)sizeof self)
                _exit(5);
            execlp("sleep", "sleep", "100", (char *)NULL);
            _exit(6);
        }
        _exit(0);
    }
    int status;
    if (waitpid(mid, &status, 0) != mid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return 7;
    char c = 'r';
    if (write(ep->ready_fd, &c, 1) != 1)
        return 8;
    for (;;)
        pause();
    return 0;
}

static void check_escape_found_and_killed(struct sbx_cgroup *cg) {
    int pp[2], rp[2];
    assert_int_equal(pipe(pp), 0);
    assert_int_equal(pipe(rp), 0);
    struct escape_pipes ep = {pp[1], rp[1]};
    pid_t child = spawn_in(cg, body_escape, &ep);
    close(pp[1]);
    close(rp[1]);
    pid_t sleeper = 0;
    char c = 0;
    assert_int_equal(read(pp[0], &sleeper, sizeof sleeper), (ssize_t)sizeof sleeper);
    assert_int_equal(read(rp[0], &c, 1), 1);
    assert_int_equal(c, 'r');
    close(pp[0]);
    close(rp[0]);

    /* the sleeper left the child's session and process group and its parent chain */
    assert_int_equal(getsid(sleeper), sleeper);
    assert_int_not_equal(getpgid(sleeper), getpgid(child));
    struct sbx_procfs_stat st;
    assert_int_equal(sbx_procfs_stat(sleeper, &st), 0);
    assert_int_not_equal(st.ppid, child);

    pid_t pids[16];
    int n = sbx_cgroup_pids(cg, pids, 16);
    assert_int_equal(n, 2);
    assert_true(contains(pids, n, child));
    assert_true(contains(pids, n, sleeper));
    /* cap smaller than the count: the total is returned, only cap written */
    pid_t one[2] = {-7, -7};
    assert_int_equal(sbx_cgroup_pids(cg, one, 1), 2);
    assert_true(one[0] == child || one[0] == sleeper);
    assert_int_equal(one[1], -7);

    assert_int_equal(sbx_cgroup_kill(cg, SIGKILL), 2);
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
    reap_all(1000);
    assert_false(alive(child));
    assert_false(alive(sleeper));
    assert_int_equal(sbx_cgroup_pids(cg, pids, 16), 0);
    assert_int_equal(sbx_cgroup_remove(cg), 0);
}

static void test_track_escaped_and_kill(void **state) {
    (void)state;
    struct sbx_cgroup cg;
    create_or_skip("a", &cg);
    if (host.version == SBX_CG_V1 && host.freezer[0] == '\0')
        print_message("note: no v1 freezer here; kill uses the cgroup.procs loop\n");
    check_escape_found_and_killed(&cg);
}

/* The same without the freezer: the kill loop over cgroup.procs. */
static void test_track_escaped_and_kill_no_freezer(void **state) {
    (void)state;
    struct sbx_cgroup cg;
    create_or_skip("nofreeze", &cg);
    if (host.version != SBX_CG_V1 || cg.freezer[0] == '\0') {
        destroy(&cg);
        print_message("SKIP: no v1 freezer on this host (the freezer-less path is the "
                      "one the other kill tests use)\n");
        skip();
    }
    struct sbx_cgroup nf = cg;
    nf.freezer[0] = '\0';
    check_escape_found_and_killed(&nf);
    assert_int_equal(sbx_cgroup_remove(&cg), 0);
}

/* Child body: forks continuously (children exit at once) until killed. */
static int body_fork_storm(void *arg) {
    (void)arg;
    for (;;) {
        pid_t c = fork();
        if (c == 0) {
            if (fork() == 0) /* an orphan too */
                _exit(0);
            _exit(0);
        }
        if (c > 0)
            waitpid(c, NULL, 0);
    }
    return 0;
}

/* A process forking all the time is killed completely, with and without the freezer. */
static void test_kill_fork_storm(void **state) {
    (void)state;
    for (int variant = 0; variant < 2; variant++) {
        struct sbx_cgroup cg;
        create_or_skip("storm", &cg);
        struct sbx_cgroup use = cg;
        if (variant == 1) {
            if (cg.freezer[0] == '\0') {
                destroy(&cg);
                continue;
            }
            use.freezer[0] = '\0';
        }
        pid_t child = spawn_in(&cg, body_fork_storm, NULL);
        sleep_ms(100);
        assert_true(sbx_cgroup_kill(&use, SIGKILL) >= 1);
        int status;
        assert_int_equal(waitpid(child, &status, 0), child);
        assert_true(WIFSIGNALED(status));
        reap_all(500);
        pid_t pids[16];
        assert_int_equal(sbx_cgroup_pids(&cg, pids, 16), 0);
        assert_int_equal(sbx_cgroup_remove(&cg), 0);
    }
}

/* A signal other than SIGKILL reaches every process once and the group is left thawed. */
static void test_kill_sigterm(void **state) {
    (void)state;
    struct sbx_cgroup cg;
    create_or_skip("term", &cg);
    pid_t a = spawn_in(&cg, body_pause, NULL);
    /* b is moved in by its parent (attach with a pid) */
    pid_t b = fork();
    assert_true(b >= 0);
    if (b == 0)
        body_pause(NULL);
    assert_int_equal(sbx_cgroup_attach(&cg, b), 0);
    for (int i = 0; i < 200 && sbx_cgroup_pids(&cg, NULL, 0) < 2; i++)
        sleep_ms(5);
    pid_t both[4];
    assert_int_equal(sbx_cgroup_pids(&cg, both, 4), 2);
    assert_true(contains(both, 2, a));
    assert_true(contains(both, 2, b));
    assert_int_equal(sbx_cgroup_attach(&cg, -1), -1);
    assert_int_equal(sbx_cgroup_kill(&cg, SIGTERM), 2);
    int status;
    assert_int_equal(waitpid(a, &status, 0), a);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGTERM);
    assert_int_equal(waitpid(b, &status, 0), b);
    assert_int_equal(WTERMSIG(status), SIGTERM);
    if (cg.freezer[0] != '\0') {
        char buf[64];
        assert_int_equal(read_file(cg.freezer, "freezer.state", buf, sizeof buf), 0);
        assert_string_equal(buf, "THAWED");
    }
    /* an empty group: nothing signalled */
    assert_int_equal(sbx_cgroup_kill(&cg, SIGTERM), 0);
    destroy(&cg);
}

/* Child body of the caller-inside test: joined the group, starts a pausing child there
 * and kills the group from inside; exits 0 if exactly that child was signalled and the
 * caller survived. */
static int body_kill_from_inside(void *arg) {
    const struct sbx_cgroup *cg = arg;
    pid_t p = fork();
    if (p < 0)
        return 2;
    if (p == 0) {
        for (;;)
            pause();
    }
    int n = sbx_cgroup_kill(cg, SIGKILL);
    int status;
    if (waitpid(p, &status, 0) != p || !WIFSIGNALED(status))
        return 3;
    return n == 1 ? 0 : 4;
}

/* Waits up to 5 s for child; on timeout thaws cg's freezer and kills child, failing. */
static void wait_bounded(pid_t child, const struct sbx_cgroup *cg, int *status) {
    for (int i = 0; i < 1000; i++) {
        pid_t r = waitpid(child, status, WNOHANG);
        if (r == child)
            return;
        assert_int_equal(r, 0);
        sleep_ms(5);
    }
    char path[SBX_CG_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/freezer.state", cg->freezer);
    FILE *f = fopen(path, "w");
    if (f != NULL) {
        fputs("THAWED", f);
        fclose(f);
    }
    kill(child, SIGKILL);
    waitpid(child, status, 0);
    fail_msg("pid %d did not finish: sbx_cgroup_kill froze its own caller?", (int)child);
}

/* A caller inside the group is never signalled nor frozen. */
static void test_kill_caller_inside(void **state) {
    (void)state;
    struct sbx_cgroup cg;
    create_or_skip("inside", &cg);
    pid_t m = spawn_in(&cg, body_kill_from_inside, &cg);
    int status;
    wait_bounded(m, &cg, &status);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    destroy(&cg);
}

/* ---- limits -------------------------------------------------------------------------- */

/* Child body: forks 20 times; reports "<ok> <eagain> <other>" on the pipe. */
static int body_fork20(void *arg) {
    int fd = *(int *)arg;
    int ok = 0, eagain = 0, other = 0;
    for (int i = 0; i < 20; i++) {
        pid_t c = fork();
        if (c == 0) {
            for (;;)
                pause();
        }
        if (c > 0)
            ok++;
        else if (errno == EAGAIN)
            eagain++;
        else
            other++;
    }
    int counts[3] = {ok, eagain, other};
    if (write(fd, counts, sizeof counts) != (ssize_t)sizeof counts)
        return 2;
    for (;;)
        pause();
    return 0;
}

static void test_pids_limit(void **state) {
    (void)state;
    struct sbx_cgroup cg;
    create_or_skip("pids", &cg);
    if (!host.can_pids) {
        destroy(&cg);
        print_message("SKIP: no usable pids controller on this host\n");
        skip();
    }
    assert_int_equal(sbx_cgroup_set_limits(&cg, 0, 0, 5), 0);
    char buf[64];
    assert_int_equal(read_file(host.version == SBX_CG_V2 ? cg.unified : cg.pids, "pids.max",
                               buf, sizeof buf), 0);
    assert_string_equal(buf, "5");

    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t child = spawn_in(&cg, body_fork20, &p[1]);
    close(p[1]);
    int counts[3];
    assert_int_equal(read(p[0], counts, sizeof counts), (ssize_t)sizeof counts);
    close(p[0]);
    print_message("pids.max 5: %d forks succeeded, %d EAGAIN, %d other errors\n", counts[0],
                  counts[1], counts[2]);
    assert_int_equal(counts[0], 4); /* the child itself is the fifth */
    assert_int_equal(counts[1], 16);
    assert_int_equal(counts[2], 0);
    pid_t pids[16];
    assert_int_equal(sbx_cgroup_pids(&cg, pids, 16), 5);

    assert_int_equal(sbx_cgroup_kill(&cg, SIGKILL), 5);
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    reap_all(1000);
    for (int i = 0; i < 5; i++)
        assert_false(alive(pids[i]));
    assert_int_equal(sbx_cgroup_remove(&cg), 0);
}

/* Child body: allocates and touches 200 MB; returns 0 if it survived. */
static int body_hog(void *arg) {
    (void)arg;
    size_t len = 200u << 20;
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return 3;
    for (size_t i = 0; i < len; i += 4096)
        ((volatile char *)p)[i] = 1;
    return 0;
}

static void test_memory_limit_oom(void **state) {
    (void)state;
    struct sbx_cgroup cg;
    uint64_t usage = 1, limit = 1, ooms = 1;
    create_or_skip("mem", &cg);
    if (!host.can_memory) {
        destroy(&cg);
        print_message("SKIP: no usable memory controller on this host\n");
        skip();
    }
    assert_int_equal(sbx_cgroup_memory(&cg, &usage, &limit, &ooms), 0);
    assert_int_equal(limit, 0); /* no limit yet */
    assert_int_equal(ooms, 0);

    assert_int_equal(sbx_cgroup_set_limits(&cg, 64, 0, 0), 0);
    assert_int_equal(sbx_cgroup_memory(&cg, &usage, &limit, &ooms), 0);
    assert_int_equal(limit, 64u << 20);
    if (host.version == SBX_CG_V1) {
        char buf[64];
        if (read_file(cg.memory, "memory.memsw.limit_in_bytes", buf, sizeof buf) == 0)
            assert_string_equal(buf, "67108864");
        else
            print_message("note: no memory.memsw on this host (swap accounting off)\n");
    }
    /* raising an existing limit works too (memsw must go first on v1) */
    assert_int_equal(sbx_cgroup_set_limits(&cg, 128, 0, 0), 0);
    assert_int_equal(sbx_cgroup_memory(&cg, &usage, &limit, &ooms), 0);
    assert_int_equal(limit, 128u << 20);
    assert_int_equal(sbx_cgroup_set_limits(&cg, 64, 0, 0), 0);

    pid_t child = spawn_in(&cg, body_hog, NULL);
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    if (WIFEXITED(status))
        fail_msg("the 200 MB child exited with %d instead of being OOM-killed",
                 WEXITSTATUS(status));
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
    assert_int_equal(sbx_cgroup_memory(&cg, &usage, &limit, &ooms), 0);
    print_message("memory: usage %llu limit %llu oom_kills %llu\n", (unsigned long long)usage,
                  (unsigned long long)limit, (unsigned long long)ooms);
    assert_true(ooms >= 1);
    assert_true(usage <= limit);
    destroy(&cg);
}

/* Child body: burns about 300 ms of CPU. */
static int body_busy(void *arg) {
    (void)arg;
    struct timespec start, now;
    volatile uint64_t x = 0;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &start);
    do {
        for (int i = 0; i < 100000; i++)
            x += (uint64_t)i;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
    } while ((now.tv_sec - start.tv_sec) * 1000000000L + (now.tv_nsec - start.tv_nsec) <
             300000000L);
    (void)x;
    return 0;
}

static void test_cpu(void **state) {
    (void)state;
    struct sbx_cgroup cg;
    uint64_t before = 0, after = 0;
    create_or_skip("cpu", &cg);
    if (sbx_cgroup_cpu_ns(&cg, &before) != 0) {
        destroy(&cg);
        print_message("SKIP: no CPU accounting (cpuacct / cpu.stat) on this host\n");
        skip();
    }
    pid_t child = spawn_in(&cg, body_busy, NULL);
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(sbx_cgroup_cpu_ns(&cg, &after), 0);
    print_message("cpu: %llu ns -> %llu ns\n", (unsigned long long)before,
                  (unsigned long long)after);
    assert_true(after >= before + 250000000ull);

    if (!host.can_cpu) {
        destroy(&cg);
        print_message("SKIP (quota part): no usable cpu controller on this host\n");
        skip();
    }
    char buf[64];
    assert_int_equal(sbx_cgroup_set_limits(&cg, 0, 0.5, 0), 0);
    if (host.version == SBX_CG_V2) {
        assert_int_equal(read_file(cg.unified, "cpu.max", buf, sizeof buf), 0);
        assert_string_equal(buf, "50000 100000");
    } else {
        assert_int_equal(read_file(cg.cpu, "cpu.cfs_quota_us", buf, sizeof buf), 0);
        assert_string_equal(buf, "50000");
        assert_int_equal(read_file(cg.cpu, "cpu.cfs_period_us", buf, sizeof buf), 0);
        assert_string_equal(buf, "100000");
    }
    assert_int_equal(sbx_cgroup_set_limits(&cg, 0, 2.0, 0), 0);
    if (host.version == SBX_CG_V1) {
        assert_int_equal(read_file(cg.cpu, "cpu.cfs_quota_us", buf, sizeof buf), 0);
        assert_string_equal(buf, "200000");
    }
    /* bad values */
    assert_int_equal(sbx_cgroup_set_limits(&cg, -1, 0, 0), -1);
    assert_int_equal(sbx_cgroup_set_limits(&cg, 0, -1.0, 0), -1);
    assert_int_equal(sbx_cgroup_set_limits(&cg, 0, 0, -1), -1);
    destroy(&cg);
}

/* A limit whose controller is missing from the group is reported, not ignored. */
static void test_limit_without_controller(void **state) {
    (void)state;
    struct sbx_cgroup cg;
    create_or_skip("nolimit", &cg);
    struct sbx_cgroup bare = cg;
    bare.memory[0] = bare.pids[0] = bare.cpu[0] = bare.unified[0] = '\0';
    assert_int_equal(sbx_cgroup_set_limits(&bare, 64, 0, 0), -1);
    assert_int_equal(sbx_cgroup_set_limits(&bare, 0, 0, 5), -1);
    assert_int_equal(sbx_cgroup_set_limits(&bare, 0, 0, 0), 0); /* nothing asked */
    uint64_t u, l, o;
    assert_int_equal(sbx_cgroup_memory(&bare, &u, &l, &o), -1);
    destroy(&cg);
}

/* A create that fails half-way (one controller path unusable) leaves nothing behind. */
static void test_create_rollback(void **state) {
    (void)state;
    struct sbx_cgroup cg;
    char name[128], path[SBX_CG_PATH_MAX + 128];
    if (host.version != SBX_CG_V1 || (host.freezer[0] == '\0' && !host.can_pids)) {
        print_message("SKIP: needs v1 with a freezer or pids hierarchy created before memory\n");
        skip();
    }
    struct sbx_cg_host bad = host;
    snprintf(bad.memory, sizeof bad.memory, "/proc/sys");  /* mkdir fails there */
    bad.can_memory = 1;
    group_name(name, sizeof name, "rb/x/y");
    memset(&cg, 0x5a, sizeof cg);
    assert_int_equal(sbx_cgroup_create(&bad, name, &cg), -1);
    assert_string_equal(cg.freezer, "");
    assert_string_equal(cg.pids, "");
    const char *roots[] = {host.freezer, host.pids, host.memory, host.cpu, host.cpuacct};
    for (size_t i = 0; i < sizeof roots / sizeof roots[0]; i++) {
        if (roots[i][0] == '\0')
            continue;
        snprintf(path, sizeof path, "%s/%s/rb", roots[i], unit_top);
        assert_false(is_dir(path));
    }
}

/* Runs detect in a private mount namespace where mounts were changed by prepare(); the
 * child checks the result with check() and exits 0 when it holds, 77 when the namespace
 * could not be set up. */
static void in_mount_ns(int (*prepare)(void), int (*check)(const struct sbx_cg_host *),
                        const char *what) {
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
            _exit(77);
        int rc = prepare();
        if (rc != 0)
            _exit(rc);
        struct sbx_cg_host h;
        sbx_cgroup_detect(&h);
        _exit(check(&h));
    }
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77) {
        print_message("SKIP: cannot set up a mount namespace for %s\n", what);
        skip();
    }
    if (WEXITSTATUS(status) != 0)
        fail_msg("%s: check failed with %d", what, WEXITSTATUS(status));
}

/* Unmounts every v1 cgroup hierarchy (and, if all, the cgroup2 ones too). 0 or 77. */
static int umount_cgroups(int all) {
    for (int round = 0; round < 64; round++) {
        char mnt[SBX_CG_PATH_MAX];
        if (!mountinfo_has("cgroup", NULL, mnt, sizeof mnt) &&
            !(all && mountinfo_has("cgroup2", NULL, mnt, sizeof mnt)))
            return 0;
        if (umount2(mnt, MNT_DETACH) != 0)
            return 77;
    }
    return 77;
}

static int prepare_v2_only(void) {
    char mnt[SBX_CG_PATH_MAX];
    if (!mountinfo_has("cgroup2", NULL, NULL, 0))
        return 77;
    if (umount_cgroups(0) != 0)
        return 77;
    /* a second cgroup2 mount whose path needs unescaping; the first one found wins */
    if (mountinfo_has("cgroup2", NULL, mnt, sizeof mnt) && umount2(mnt, MNT_DETACH) != 0)
        return 77;
    if (mkdir(odd_mnt, 0755) != 0 && errno != EEXIST)
        return 77;
    if (mount("cgroup2", odd_mnt, "cgroup2", 0, NULL) != 0)
        return 77;
    return 0;
}

static int check_v2_only(const struct sbx_cg_host *h) {
    if (h->version != SBX_CG_V2)
        return 1;
    if (strcmp(h->unified, odd_mnt) != 0)
        return 2;
    if (h->memory[0] != '\0' || h->pids[0] != '\0' || h->freezer[0] != '\0')
        return 3;
    if (!h->can_track)
        return 4;
    /* controllers: only when the hierarchy has them (not on a hybrid host) */
    char ctls[256] = "";
    char path[160];
    snprintf(path, sizeof path, "%s/cgroup.controllers", odd_mnt);
    FILE *f = fopen(path, "r");
    if (f != NULL) {
        if (fgets(ctls, sizeof ctls, f) == NULL)
            ctls[0] = '\0';
        fclose(f);
    }
    if (strstr(ctls, "memory") == NULL && h->can_memory)
        return 5;
    return 0;
}

static int prepare_none(void) {
    return umount_cgroups(1);
}

static int check_none(const struct sbx_cg_host *h) {
    if (h->version != SBX_CG_NONE)
        return 1;
    if (h->can_memory || h->can_pids || h->can_cpu || h->can_track)
        return 2;
    return 0;
}

static void test_detect_variants(void **state) {
    (void)state;
    in_mount_ns(prepare_v2_only, check_v2_only, "a cgroup2-only host");
    in_mount_ns(prepare_none, check_none, "a host without cgroups");
    (void)rmdir(odd_mnt);
}

/* ---- v2 code against a cgroup2 mount (the empty unified hierarchy on hybrid hosts) ---- */

static void test_v2_tracking(void **state) {
    (void)state;
    struct sbx_cg_host h2;
    char mnt[SBX_CG_PATH_MAX], name[128];
    if (!mountinfo_has("cgroup2", NULL, mnt, sizeof mnt) || access(mnt, W_OK) != 0) {
        print_message("SKIP: no writable cgroup2 mount on this host\n");
        skip();
    }
    if (host.version == SBX_CG_V2) {
        h2 = host;
    } else {
        /* hybrid host: the v2 hierarchy tracks processes even without controllers */
        memset(&h2, 0, sizeof h2);
        h2.version = SBX_CG_V2;
        snprintf(h2.unified, sizeof h2.unified, "%s", mnt);
        h2.can_track = 1;
    }
    struct sbx_cgroup cg;
    group_name(name, sizeof name, "v2");
    assert_int_equal(sbx_cgroup_create(&h2, name, &cg), 0);
    assert_string_equal(cg.memory, "");
    assert_true(is_dir(cg.unified));
    char path[SBX_CG_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/cgroup.kill", cg.unified);
    if (access(path, F_OK) != 0)
        print_message("note: no cgroup.kill (kernel < 5.14); kill uses freeze + loop\n");

    check_escape_found_and_killed(&cg);

    /* SIGTERM goes through cgroup.freeze */
    assert_int_equal(sbx_cgroup_create(&h2, name, &cg), 0);
    pid_t a = spawn_in(&cg, body_pause, NULL);
    for (int i = 0; i < 200 && sbx_cgroup_pids(&cg, NULL, 0) < 1; i++)
        sleep_ms(5);
    assert_int_equal(sbx_cgroup_kill(&cg, SIGTERM), 1);
    int status;
    assert_int_equal(waitpid(a, &status, 0), a);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGTERM);
    char buf[256];
    if (read_file(cg.unified, "cgroup.freeze", buf, sizeof buf) == 0)
        assert_string_equal(buf, "0");
    /* a caller inside the group is not killed (no cgroup.kill, no freeze) */
    pid_t m = spawn_in(&cg, body_kill_from_inside, &cg);
    wait_bounded(m, &cg, &status);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    uint64_t ns;
    if (!h2.can_cpu && sbx_cgroup_cpu_ns(&cg, &ns) == 0)
        print_message("note: cpu.stat usage_usec readable without the cpu controller\n");
    assert_int_equal(sbx_cgroup_remove(&cg), 0);
}

/* ---- setup / teardown ---------------------------------------------------------------- */

static int setup(void **state) {
    (void)state;
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
        perror("prctl(PR_SET_CHILD_SUBREAPER)");
    snprintf(unit_top, sizeof unit_top, "sandboxd-unit/%ld", (long)getpid());
    snprintf(odd_mnt, sizeof odd_mnt, "/tmp/sandboxd-unit cg\\%ld", (long)getpid());
    sbx_cgroup_detect(&host);
    return 0;
}

/* Kills whatever a failed test left in the groups below dir (depth-first, a few levels)
 * and removes them. Returns how many groups were left over. */
static int sweep(const char *dir, int depth) {
    char path[SBX_CG_PATH_MAX];
    int left = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_type != DT_DIR || de->d_name[0] == '.')
            continue;
        if (snprintf(path, sizeof path, "%s/%.200s", dir, de->d_name) >= (int)sizeof path)
            continue;
        if (depth < 4)
            left += sweep(path, depth + 1);
        struct sbx_cgroup cg;
        memset(&cg, 0, sizeof cg);
        cg.version = SBX_CG_V2; /* one directory: only its own cgroup.procs is used */
        memcpy(cg.unified, path, sizeof path);
        if (sbx_cgroup_pids(&cg, NULL, 0) > 0) {
            (void)sbx_cgroup_kill(&cg, SIGKILL);
            reap_all(200);
        }
        if (rmdir(path) != 0 && errno != ENOENT)
            fprintf(stderr, "teardown: cannot remove %s: %s\n", path, strerror(errno));
        left++;
    }
    closedir(d);
    return left;
}

/* Removes sandboxd-unit/<pid> and, if nobody else uses it, sandboxd-unit, in every
 * hierarchy, killing what failed tests left behind; a leftover group fails the run. */
static int teardown(void **state) {
    (void)state;
    const char *roots[] = {host.memory, host.pids, host.cpu, host.cpuacct, host.freezer,
                           host.unified, NULL};
    char mnt[SBX_CG_PATH_MAX];
    int leftovers = 0;
    if (mountinfo_has("cgroup2", NULL, mnt, sizeof mnt))
        roots[6] = mnt;
    reap_all(100);
    for (size_t i = 0; i < sizeof roots / sizeof roots[0]; i++) {
        char path[SBX_CG_PATH_MAX + 128];
        if (roots[i] == NULL || roots[i][0] == '\0')
            continue;
        snprintf(path, sizeof path, "%s/%s", roots[i], unit_top);
        leftovers += sweep(path, 0);
        if (rmdir(path) != 0 && errno != ENOENT) {
            fprintf(stderr, "teardown: cannot remove %s: %s\n", path, strerror(errno));
            leftovers++;
        }
        snprintf(path, sizeof path, "%s/sandboxd-unit", roots[i]);
        (void)rmdir(path); /* EBUSY if another run is going on */
    }
    reap_all(200);
    if (leftovers != 0)
        fprintf(stderr, "teardown: %d group(s) were left behind by the tests\n", leftovers);
    return leftovers == 0 ? 0 : -1;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_detect),
        cmocka_unit_test(test_detect_variants),
        cmocka_unit_test(test_create_reuse_remove),
        cmocka_unit_test(test_create_rollback),
        cmocka_unit_test(test_track_escaped_and_kill),
        cmocka_unit_test(test_track_escaped_and_kill_no_freezer),
        cmocka_unit_test(test_kill_fork_storm),
        cmocka_unit_test(test_kill_sigterm),
        cmocka_unit_test(test_kill_caller_inside),
        cmocka_unit_test(test_pids_limit),
        cmocka_unit_test(test_memory_limit_oom),
        cmocka_unit_test(test_cpu),
        cmocka_unit_test(test_limit_without_controller),
        cmocka_unit_test(test_v2_tracking),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
