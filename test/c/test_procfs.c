/* Unit tests for backends/process/procfs.h: parsing stat lines (comm with spaces and
 * parentheses, negative fields, malformed and truncated input), the caller's own stat,
 * process identity by start time, and the process tree (grandchildren, a double-forked
 * process found through its session, zombies skipped).
 *
 * Lines handed to the parser are copied into heap blocks of exactly the length passed,
 * without a NUL, so that ASan reports any read past the end. The test process is a child
 * subreaper so that orphaned grandchildren come back to it and are reaped. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backends/process/procfs.h"

/* ---- helpers ------------------------------------------------------------------------- */

/* sbx_procfs_parse_stat over an exact-size heap copy of s (no NUL). */
static int parse_copy(const char *s, size_t len, long page_size, struct sbx_procfs_stat *out) {
    char *copy = malloc(len > 0 ? len : 1);
    assert_non_null(copy);
    memcpy(copy, s, len);
    int rc = sbx_procfs_parse_stat(copy, len, page_size, out);
    free(copy);
    return rc;
}

static int parse_str(const char *s, struct sbx_procfs_stat *out) {
    return parse_copy(s, strlen(s), 4096, out);
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Waits (up to 5 s) until pid is a zombie or gone. */
static void wait_dead(pid_t pid) {
    for (int i = 0; i < 1000; i++) {
        struct sbx_procfs_stat st;
        if (sbx_procfs_stat(pid, &st) != 0 || st.state == 'Z')
            return;
        sleep_ms(5);
    }
    fail_msg("pid %d did not die", (int)pid);
}

/* Reaps every child that has exited or exits within ms milliseconds. */
static void reap_all(long ms) {
    for (long waited = 0;; waited += 5) {
        pid_t r;
        while ((r = waitpid(-1, NULL, WNOHANG)) > 0) {
        }
        if (r < 0 && errno == ECHILD)
            return;
        if (waited >= ms)
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

/* A stat line with every field up to 52 (as Linux 6.x prints), comm given. */
static int make_line(char *buf, size_t cap, long pid, const char *comm, char state) {
    return snprintf(buf, cap,
                    "%ld (%s) %c 1 %ld %ld 34816 -1 4194560 1200 0 3 0 17 5 0 0 20 -5 1 0 "
                    "987654 10485760 300 18446744073709551615 94000000000000 94000000100000 "
                    "140000000000000 0 0 0 0 4096 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
                    pid, comm, state, pid, pid);
}

/* ---- parsing ------------------------------------------------------------------------- */

static void test_parse_plain(void **state) {
    (void)state;
    char line[512];
    struct sbx_procfs_stat st;
    int n = make_line(line, sizeof line, 4242, "sleep", 'S');

    assert_int_equal(parse_copy(line, (size_t)n, 4096, &st), 0);
    assert_int_equal(st.pid, 4242);
    assert_string_equal(st.comm, "sleep");
    assert_int_equal(st.state, 'S');
    assert_int_equal(st.ppid, 1);
    assert_int_equal(st.pgid, 4242);
    assert_int_equal(st.sid, 4242);
    assert_int_equal(st.utime_ticks, 22); /* 17 + 5 */
    assert_int_equal(st.starttime, 987654);
    assert_int_equal(st.rss_bytes, 300 * 4096);

    /* page size is applied */
    assert_int_equal(parse_copy(line, (size_t)n, 65536, &st), 0);
    assert_int_equal(st.rss_bytes, 300 * 65536);
    /* without the trailing newline */
    assert_int_equal(parse_copy(line, (size_t)n - 1, 4096, &st), 0);
    assert_int_equal(st.starttime, 987654);
}

static void test_parse_tricky_comm(void **state) {
    (void)state;
    static const char *const comms[] = {"a) b (c", "my prog", "((", "))", ") S 1 2 3", " ",
                                        "", "x)", "(y", "a ) ( b ) c"};
    for (size_t i = 0; i < sizeof comms / sizeof comms[0]; i++) {
        char line[512];
        struct sbx_procfs_stat st;
        int n = make_line(line, sizeof line, 77, comms[i], 'R');
        memset(&st, 0, sizeof st);
        assert_int_equal(parse_copy(line, (size_t)n, 4096, &st), 0);
        assert_string_equal(st.comm, comms[i]);
        assert_int_equal(st.pid, 77);
        assert_int_equal(st.state, 'R');
        assert_int_equal(st.ppid, 1);
        assert_int_equal(st.starttime, 987654);
    }
}

static void test_parse_long_comm_truncated(void **state) {
    (void)state;
    char comm[101], line[512];
    struct sbx_procfs_stat st;
    memset(comm, 'k', 100);
    comm[100] = '\0';
    int n = make_line(line, sizeof line, 9, comm, 'I');
    assert_int_equal(parse_copy(line, (size_t)n, 4096, &st), 0);
    assert_int_equal(strlen(st.comm), sizeof st.comm - 1);
    assert_int_equal(st.starttime, 987654);
}

static void test_parse_malformed(void **state) {
    (void)state;
    char line[512];
    struct sbx_procfs_stat st, before;
    int n = make_line(line, sizeof line, 4242, "sleep", 'S');
    static const char *const bad[] = {
        "",
        "4242",
        "4242 (sleep",
        "4242 sleep) S 1 2 3",
        "(sleep) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21",
        "x (sleep) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21",
        "0 (sleep) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21",
        "-5 (sleep) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21",
        "42 (sleep) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20",    /* 23 fields */
        "42 (sleep) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 x 20 21", /* non-number */
        "42 (sleep) S -1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21", /* ppid < 0 */
        "42 (sleep)  S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21",
        "42 (sleep)S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21",
        "42 ) (sleep S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21",
    };

    memset(&before, 0x5a, sizeof before);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        st = before;
        assert_int_equal(parse_str(bad[i], &st), -1);
        assert_memory_equal(&st, &before, sizeof st);
    }
    /* every prefix that stops before field 24 (rss) is rejected, every one that holds it
     * whole is accepted, and nothing reads past the end (ASan) */
    const char *sp = line;
    for (int f = 0; f < 23; f++)
        sp = strchr(sp + 1, ' ');
    size_t rss_start = (size_t)(sp - line) + 1;
    size_t rss_end = (size_t)(strchr(line + rss_start, ' ') - line);
    for (size_t k = 0; k < (size_t)n; k++) {
        st = before;
        int rc = parse_copy(line, k, 4096, &st);
        if (k <= rss_start) {
            assert_int_equal(rc, -1);
            assert_memory_equal(&st, &before, sizeof st);
        } else if (k >= rss_end) {
            assert_int_equal(rc, 0);
            assert_int_equal(st.rss_bytes, 300 * 4096);
        }
    }
    /* bad page size */
    assert_int_equal(parse_copy(line, (size_t)n, 0, &st), -1);
}

/* The test's own process. */
static void test_stat_self(void **state) {
    (void)state;
    struct sbx_procfs_stat st;
    assert_int_equal(sbx_procfs_stat(getpid(), &st), 0);
    assert_int_equal(st.pid, getpid());
    assert_int_equal(st.ppid, getppid());
    assert_int_equal(st.pgid, getpgrp());
    assert_int_equal(st.sid, getsid(0));
    assert_int_equal(st.state, 'R');
    assert_string_equal(st.comm, "test_procfs");
    assert_true(st.rss_bytes > 0);
    assert_true(st.rss_bytes % (uint64_t)sysconf(_SC_PAGESIZE) == 0);
    assert_true(st.starttime > 0);
    assert_int_equal(sbx_procfs_same_process(getpid(), st.starttime), 1);
    assert_int_equal(sbx_procfs_same_process(getpid(), st.starttime + 1), 0);

    /* CPU time grows */
    uint64_t t0 = st.utime_ticks;
    struct timespec start, now;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &start);
    volatile uint64_t x = 0;
    do {
        for (int i = 0; i < 100000; i++)
            x += (uint64_t)i;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
    } while ((now.tv_sec - start.tv_sec) * 1000000000L + (now.tv_nsec - start.tv_nsec) <
             150000000L);
    (void)x;
    assert_int_equal(sbx_procfs_stat(getpid(), &st), 0);
    assert_true(st.utime_ticks > t0);

    long hz = sbx_procfs_hz();
    assert_true(hz > 0);
    assert_int_equal(hz, sysconf(_SC_CLK_TCK));
}

static void test_stat_missing(void **state) {
    (void)state;
    struct sbx_procfs_stat st;
    assert_int_equal(sbx_procfs_stat(0, &st), -1);
    assert_int_equal(sbx_procfs_stat(-1, &st), -1);
    assert_int_equal(sbx_procfs_stat(0x3fffffff, &st), -1); /* above pid_max */
    assert_int_equal(errno, ESRCH);
    assert_int_equal(sbx_procfs_same_process(0x3fffffff, 0), 0);
}

/* A child's start time does not change; the identity fails once it is a zombie, once
 * it is reaped, and for another start time. */
static void test_child_identity(void **state) {
    (void)state;
    struct sbx_procfs_stat a, b;
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        for (;;)
            pause();
    }
    assert_int_equal(sbx_procfs_stat(child, &a), 0);
    assert_int_equal(a.ppid, getpid());
    sleep_ms(30);
    assert_int_equal(sbx_procfs_stat(child, &b), 0);
    assert_int_equal(a.starttime, b.starttime);
    assert_int_equal(sbx_procfs_same_process(child, a.starttime), 1);
    assert_int_equal(sbx_procfs_same_process(child, a.starttime + 1), 0);
    assert_int_equal(sbx_procfs_same_process(child, a.starttime - 1), 0);

    /* our own start time is not earlier than... the child's is not before ours */
    struct sbx_procfs_stat self;
    assert_int_equal(sbx_procfs_stat(getpid(), &self), 0);
    assert_true(a.starttime >= self.starttime);

    assert_int_equal(kill(child, SIGKILL), 0);
    wait_dead(child);
    assert_int_equal(sbx_procfs_stat(child, &b), 0);
    assert_int_equal(b.state, 'Z');
    assert_int_equal(sbx_procfs_same_process(child, a.starttime), 0); /* zombie */

    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(sbx_procfs_same_process(child, a.starttime), 0); /* reaped */
    assert_int_equal(sbx_procfs_stat(child, &b), -1);
}

/* Shared between the test and the processes it forks. */
struct tree_pids {
    volatile pid_t grandchild;  /* child of A */
    volatile pid_t escaped;     /* double-forked by A, so reparented away from A */
    volatile pid_t zombie;      /* child of A that exited, not reaped */
};

/* The tree: A (own session) -> grandchild; A -> M -> escaped (M exits); A -> zombie. */
static void test_tree(void **state) {
    (void)state;
    struct tree_pids *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE,
                                MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int ready[2];
    assert_true(sh != MAP_FAILED);
    memset((void *)sh, 0, sizeof *sh);
    assert_int_equal(pipe(ready), 0);

    pid_t a = fork();
    assert_true(a >= 0);
    if (a == 0) {
        close(ready[0]);
        if (setsid() < 0)
            _exit(2);
        pid_t g = fork();
        if (g == 0) {
            for (;;)
                pause();
        }
        pid_t m = fork();
        if (m == 0) {
            pid_t e = fork();
            if (e == 0) {
                for (;;)
                    pause();
            }
            sh->escaped = e;
            _exit(0);
        }
        pid_t z = fork();
        if (z == 0)
            _exit(0);
        if (g < 0 || m < 0 || z < 0 || waitpid(m, NULL, 0) != m)
            _exit(3);
        siginfo_t si;
        if (waitid(P_PID, (id_t)z, &si, WEXITED | WNOWAIT) != 0) /* zombie, not reaped */
            _exit(4);
        sh->grandchild = g;
        sh->zombie = z;
        char c = 'r';
        if (write(ready[1], &c, 1) != 1)
            _exit(5);
        for (;;)
            pause();
    }
    close(ready[1]);
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    close(ready[0]);
    pid_t g = sh->grandchild, e = sh->escaped, z = sh->zombie;
    assert_true(g > 0 && e > 0 && z > 0);

    /* the escaped process left A's parent chain but stayed in A's session */
    struct sbx_procfs_stat est;
    assert_int_equal(sbx_procfs_stat(e, &est), 0);
    assert_int_not_equal(est.ppid, a);
    assert_int_equal(est.sid, a);

    pid_t out[64];
    int n = sbx_procfs_tree(a, 0, out, 64);
    assert_true(n >= 2);
    assert_true(contains(out, n, a));
    assert_true(contains(out, n, g));
    assert_false(contains(out, n, e));
    assert_false(contains(out, n, z));
    assert_false(contains(out, n, getpid()));
    assert_int_equal(n, 2);

    n = sbx_procfs_tree(a, a, out, 64);
    assert_int_equal(n, 3);
    assert_true(contains(out, n, a));
    assert_true(contains(out, n, g));
    assert_true(contains(out, n, e));
    assert_false(contains(out, n, z));

    /* session only */
    n = sbx_procfs_tree(0, a, out, 64);
    assert_int_equal(n, 3);
    assert_true(contains(out, n, e));

    /* cap: the total is returned, only cap written */
    pid_t small[2] = {-7, -7};
    assert_int_equal(sbx_procfs_tree(a, a, small, 1), 3);
    assert_int_not_equal(small[0], -7);
    assert_int_equal(small[1], -7);
    assert_int_equal(sbx_procfs_tree(a, a, NULL, 0), 3);

    /* the test's own tree has A in it (and, as subreaper, the escaped one) */
    n = sbx_procfs_tree(getpid(), 0, out, 64);
    assert_true(contains(out, n, getpid()));
    assert_true(contains(out, n, a));
    assert_true(contains(out, n, g));

    /* a process that does not exist has no tree */
    assert_int_equal(sbx_procfs_tree(0x3fffffff, 0, out, 64), 0);

    /* clean up: the whole session shares A's process group */
    assert_int_equal(kill(-a, SIGKILL), 0);
    int status;
    assert_int_equal(waitpid(a, &status, 0), a);
    reap_all(2000);
    wait_dead(g);
    wait_dead(e);
    n = sbx_procfs_tree(0, a, out, 64);
    assert_int_equal(n, 0);
    munmap((void *)sh, sizeof *sh);
}

int main(void) {
    /* orphans of the tree test come back to us, so they can be reaped */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
        perror("prctl(PR_SET_CHILD_SUBREAPER)");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_plain),
        cmocka_unit_test(test_parse_tricky_comm),
        cmocka_unit_test(test_parse_long_comm_truncated),
        cmocka_unit_test(test_parse_malformed),
        cmocka_unit_test(test_stat_self),
        cmocka_unit_test(test_stat_missing),
        cmocka_unit_test(test_child_identity),
        cmocka_unit_test(test_tree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
