/* Unit tests for backends/process/fdhold.h and fifowatch.h: a holder keeps a FIFO's
 * buffer alive after its writer exited and the caller closed its own descriptors; a drop
 * closes them (a holder that holds nothing ends); many pairs are counted; past a holder's
 * open-file limit a second holder takes the rest; a watch sees a
 * write to a FIFO and tells which stream, and a removed one is silent. Real processes and
 * FIFOs in a temporary folder. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backends/process/fdhold.h"
#include "backends/process/fifowatch.h"

#define BYTES 60000 /* below a FIFO's default 64 KiB buffer: the writer never blocks */

/* A fresh FIFO at dir/name; its path in out. */
static void make_fifo(const char *dir, const char *name, char *out, size_t cap) {
    snprintf(out, cap, "%s/%s", dir, name);
    assert_int_equal(mkfifo(out, 0600), 0);
}

/* A child writes BYTES bytes of 'x' to path and exits; waits for it. */
static void write_and_exit(const char *path) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        static char buf[BYTES];
        memset(buf, 'x', sizeof buf);
        int fd = open(path, O_RDWR | O_NONBLOCK); /* as a workload does */
        _exit(fd >= 0 && write(fd, buf, sizeof buf) == (ssize_t)sizeof buf ? 0 : 1);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* What a fresh non-blocking reader of path gets now. */
static size_t read_all(const char *path) {
    char buf[8192];
    size_t total = 0;
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    assert_true(fd >= 0);
    for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;)
        total += (size_t)n;
    close(fd);
    return total;
}

/* Waits for the holder pid (a child of this process) to exit. */
static void await_holder_end(pid_t pid) {
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
}

static void test_hold_keeps_buffer(void **state) {
    (void)state;
    char dir[] = "/tmp/sbx_fdhold_XXXXXX", out[128], err[128];
    assert_non_null(mkdtemp(dir));
    make_fifo(dir, "out", out, sizeof out);
    make_fifo(dir, "err", err, sizeof err);
    struct event_base *base = event_base_new();
    int fds[2] = {open(out, O_RDWR | O_NONBLOCK), open(err, O_RDWR | O_NONBLOCK)};
    struct sbx_fdhold_ref ref;
    assert_int_equal(sbx_fdhold_put(base, fds, &ref), 0);
    close(fds[0]);
    close(fds[1]);
    assert_true(ref.holder >= 0);
    assert_int_equal(sbx_fdhold_held(), 1);
    assert_int_equal(sbx_fdhold_fds(), 3);
    pid_t holder;
    assert_int_equal(sbx_fdhold_pids(&holder, 1), 1);
    /* The writer is gone and this process holds nothing: the holder keeps the data. */
    write_and_exit(out);
    assert_int_equal(read_all(out), BYTES);
    /* Dropped: the holder holds nothing, ends, and a FIFO's buffer dies with the writer. */
    sbx_fdhold_drop(&ref);
    assert_int_equal(ref.holder, -1);
    assert_int_equal(sbx_fdhold_held(), 0);
    await_holder_end(holder);
    assert_int_equal(sbx_fdhold_pids(&holder, 1), 0);
    write_and_exit(err);
    assert_int_equal(read_all(err), 0);
    sbx_fdhold_drop(&ref); /* a none ref is ignored */
    event_base_free(base);
    unlink(out);
    unlink(err);
    rmdir(dir);
}

/* Hands n fresh pipes to holders (closing this process's ends), refs into refs. */
static void put_pipes(struct event_base *base, struct sbx_fdhold_ref *refs, int n) {
    for (int i = 0; i < n; i++) {
        int p[2];
        assert_int_equal(pipe(p), 0);
        assert_int_equal(sbx_fdhold_put(base, p, &refs[i]), 0);
        close(p[0]);
        close(p[1]);
    }
}

/* Drops n refs; drops that did not fit a socket at once go out when the loop runs. */
static void drop_all(struct event_base *base, struct sbx_fdhold_ref *refs, int n) {
    for (int i = 0; i < n; i++)
        sbx_fdhold_drop(&refs[i]);
    for (int i = 0; i < 100 && sbx_fdhold_held() > 0; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
}

static void test_many_pairs(void **state) {
    (void)state;
    enum { N = 200 };
    struct event_base *base = event_base_new();
    struct sbx_fdhold_ref refs[N];
    put_pipes(base, refs, N);
    assert_int_equal(sbx_fdhold_held(), N);
    assert_int_equal(sbx_fdhold_fds(), 2 * N + 1);
    assert_true(sbx_fdhold_room() > 0);
    pid_t holder;
    assert_int_equal(sbx_fdhold_pids(&holder, 1), 1);
    drop_all(base, refs, N);
    assert_int_equal(sbx_fdhold_held(), 0);
    await_holder_end(holder);
    event_base_free(base);
}

/* Under a soft limit of 64 a holder takes (64 - 16) / 2 = 24 pairs: 40 need a second. */
static void test_second_holder(void **state) {
    (void)state;
    enum { N = 40 };
    struct rlimit was, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &was), 0);
    low = was;
    low.rlim_cur = 64;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    struct event_base *base = event_base_new();
    struct sbx_fdhold_ref refs[N];
    put_pipes(base, refs, N);
    pid_t pids[4];
    assert_int_equal(sbx_fdhold_pids(pids, 4), 2);
    assert_int_not_equal(refs[0].holder, refs[N - 1].holder);
    assert_int_equal(sbx_fdhold_held(), N);
    assert_int_equal(sbx_fdhold_fds(), 2 * N + 2);
    drop_all(base, refs, N);
    assert_int_equal(sbx_fdhold_held(), 0);
    await_holder_end(pids[0]);
    await_holder_end(pids[1]);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &was), 0);
    event_base_free(base);
}

static int seen_stream = -1, seen_calls;

static void on_write(void *arg, int stream) {
    (void)arg;
    seen_stream = stream;
    seen_calls++;
}

/* Runs the loop until a watch callback ran or about 5 s passed. */
static void loop_until_called(struct event_base *base) {
    struct timeval tick = {0, 10000};
    for (int i = 0; i < 500 && seen_calls == 0; i++) {
        event_base_loopexit(base, &tick);
        event_base_dispatch(base);
    }
}

static void test_watch(void **state) {
    (void)state;
    char dir[] = "/tmp/sbx_fifowatch_XXXXXX", path[128];
    assert_non_null(mkdtemp(dir));
    make_fifo(dir, "f", path, sizeof path);
    struct event_base *base = event_base_new();
    int keep = open(path, O_RDWR | O_NONBLOCK);
    int wd = sbx_fifowatch_add(base, path, on_write, NULL, 1);
    assert_true(wd >= 0);
    assert_int_equal(sbx_fifowatch_count(), 1);
    assert_int_equal(write(keep, "hi", 2), 2);
    loop_until_called(base);
    assert_int_equal(seen_stream, 1);
    assert_true(seen_calls >= 1);
    assert_int_equal(read_all(path), 2);
    sbx_fifowatch_remove(wd);
    assert_int_equal(sbx_fifowatch_count(), 0);
    seen_calls = 0;
    assert_int_equal(write(keep, "hi", 2), 2);
    struct timeval t = {0, 100000};
    event_base_loopexit(base, &t);
    event_base_dispatch(base);
    assert_int_equal(seen_calls, 0);
    close(keep);
    event_base_free(base);
    unlink(path);
    rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hold_keeps_buffer),
        cmocka_unit_test(test_many_pairs),
        cmocka_unit_test(test_second_holder),
        cmocka_unit_test(test_watch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
