/* Unit tests for backends/process/freezer.h against the real cgroups of the host, v1
 * (the freezer controller) and v2 (cgroup.freeze in a cgroup2 hierarchy: the host's own,
 * or the empty unified one of a hybrid host): a child that counts in shared memory stops
 * counting once a freeze is answered and counts again after the thaw; a freeze is never
 * answered inside the call, a thaw always is; a forgotten freeze is never answered; a
 * group without a freezer is refused. Groups live below "sandboxd-unit/<pid>/" and are
 * removed at the end. A version the host lacks is skipped with a message, never passed. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <event2/event.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backends/process/cgroup.h"
#include "backends/process/freezer.h"
#include "core/sandbox.h"

/* What the freezer answered: calls, and whether the last was ok. */
struct answer {
    int calls;
    int ok;
    uint64_t key;
    struct event_base *base;
};

static void done_cb(struct sbx_sandbox *sb, uint64_t key, const char *term, size_t len,
                    const struct sbx_err *err) {
    struct answer *a = sb->bstate;
    (void)len;
    a->calls++;
    a->key = key;
    a->ok = err == NULL && term != NULL;
    event_base_loopbreak(a->base);
}

static void nap(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Runs the loop until the freezer answers, at most 20 s. */
static void wait_answer(struct answer *a) {
    struct timeval tv = {20, 0};
    int before = a->calls;
    event_base_loopexit(a->base, &tv);
    event_base_dispatch(a->base);
    assert_true(a->calls > before);
}

/* The whole check against a group cg of hierarchy version h. */
static void check(const struct sbx_cg_host *h, const char *leaf) {
    char name[128];
    struct sbx_cgroup cg;
    struct sbx_err err;
    struct answer a = {0};
    struct sbx_sandbox *sb = calloc(1, sizeof *sb);
    volatile uint64_t *count = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_non_null(sb);
    assert_true(count != MAP_FAILED);
    snprintf(sb->id, sizeof sb->id, "unit");
    sb->bstate = &a;
    a.base = event_base_new();
    assert_non_null(a.base);
    snprintf(name, sizeof name, "sandboxd-unit/%ld/%s", (long)getpid(), leaf);
    assert_int_equal(sbx_cgroup_create(h, name, &cg), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        if (sbx_cgroup_attach(&cg, 0) != 0)
            _exit(120);
        for (;;)
            (*count)++;
    }
    while (*count == 0)
        nap(1);
    assert_int_equal(sbx_freezer_frozen(&cg), 0);

    /* freeze: answered from the loop, then the child stands still */
    memset(&err, 0, sizeof err);
    assert_int_equal(sbx_freezer_set(sb, a.base, &cg, 1, 7, done_cb, &err), 0);
    assert_int_equal(a.calls, 0);
    wait_answer(&a);
    assert_true(a.ok);
    assert_int_equal(a.key, 7);
    assert_int_equal(sbx_freezer_frozen(&cg), 1);
    uint64_t c0 = *count;
    nap(200);
    assert_true(*count == c0);

    /* thaw: answered inside the call, and it counts again */
    assert_int_equal(sbx_freezer_set(sb, a.base, &cg, 0, 8, done_cb, &err), 0);
    assert_int_equal(a.calls, 2);
    assert_true(a.ok);
    assert_int_equal(sbx_freezer_frozen(&cg), 0);
    for (int i = 0; i < 2000 && *count == c0; i++)
        nap(1);
    assert_true(*count != c0);

    /* a forgotten freeze is never answered; a thaw after it is */
    assert_int_equal(sbx_freezer_set(sb, a.base, &cg, 1, 9, done_cb, &err), 0);
    sbx_freezer_forget(sb);
    struct timeval tv = {0, 100000};
    event_base_loopexit(a.base, &tv);
    event_base_dispatch(a.base);
    assert_int_equal(a.calls, 2);
    assert_int_equal(sbx_freezer_set(sb, a.base, &cg, 0, 10, done_cb, &err), 0);
    assert_int_equal(a.calls, 3);
    assert_int_equal(sbx_freezer_frozen(&cg), 0);

    kill(child, SIGKILL);
    assert_int_equal(waitpid(child, NULL, 0), child);
    assert_int_equal(sbx_cgroup_remove(&cg), 0);
    event_base_free(a.base);
    munmap((void *)count, 4096);
    free(sb);
}

static void test_v1(void **state) {
    struct sbx_cg_host host;
    (void)state;
    sbx_cgroup_detect(&host);
    if (host.version != SBX_CG_V1 || host.freezer[0] == '\0' || access(host.freezer, W_OK) != 0) {
        print_message("SKIP: no writable v1 freezer on this host\n");
        skip();
    }
    check(&host, "freezer-v1");
}

static void test_v2(void **state) {
    static const char *const roots[] = {"/sys/fs/cgroup/unified", "/sys/fs/cgroup"};
    struct sbx_cg_host h2;
    struct statfs fs;
    (void)state;
    memset(&h2, 0, sizeof h2);
    for (size_t i = 0; i < 2 && h2.unified[0] == '\0'; i++)
        if (statfs(roots[i], &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC && access(roots[i], W_OK) == 0)
            snprintf(h2.unified, sizeof h2.unified, "%s", roots[i]);
    if (h2.unified[0] == '\0') {
        print_message("SKIP: no writable cgroup2 hierarchy on this host\n");
        skip();
    }
    h2.version = SBX_CG_V2;
    h2.can_track = 1;
    check(&h2, "freezer-v2");
}

static void test_no_freezer(void **state) {
    struct sbx_cgroup bare;
    struct sbx_err err;
    struct sbx_sandbox sb;
    (void)state;
    memset(&bare, 0, sizeof bare);
    memset(&err, 0, sizeof err);
    memset(&sb, 0, sizeof sb);
    bare.version = SBX_CG_V1;
    assert_int_equal(sbx_freezer_set(&sb, NULL, &bare, 1, 1, done_cb, &err), -1);
    assert_string_equal(err.reason_atom, "backend");
    assert_string_equal(err.detail, "no freezer cgroup for this sandbox");
    assert_int_equal(sbx_freezer_set(&sb, NULL, NULL, 0, 1, done_cb, &err), -1);
    assert_int_equal(sbx_freezer_frozen(NULL), -1);
    assert_int_equal(sbx_freezer_frozen(&bare), -1);
}

/* Removes "sandboxd-unit/<pid>" below every hierarchy the tests used (best effort). */
static int teardown(void **state) {
    static const char *const roots[] = {"/sys/fs/cgroup/freezer", "/sys/fs/cgroup/memory",
                                        "/sys/fs/cgroup/pids", "/sys/fs/cgroup/cpu",
                                        "/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup/unified",
                                        "/sys/fs/cgroup"};
    char path[256];
    (void)state;
    for (size_t i = 0; i < sizeof roots / sizeof roots[0]; i++) {
        snprintf(path, sizeof path, "%s/sandboxd-unit/%ld", roots[i], (long)getpid());
        (void)rmdir(path);
    }
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_freezer),
        cmocka_unit_test(test_v1),
        cmocka_unit_test(test_v2),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
