/* Unit tests for core/ident.h: the dynamic uid pool (ids named in passwd/group and ids
 * held by a running process are never handed out, round robin, claim after a restart,
 * exhaustion), the journal form of an ident, and ownership of a file handed to a sandbox.
 * The tests that need root (a process holding a uid, chown) skip themselves otherwise. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/ident.h"

/* A range of 3 ids that holds 65534 (nobody/nogroup on Debian) if that id exists: it is
 * skipped; the others are handed out in order, then the pool is exhausted. */
static void test_take_skips_named_ids(void **state) {
    (void)state;
    struct sbx_uid_pool pool;
    uid_t u;
    int named = getpwuid(65534) != NULL || getgrgid(65534) != NULL;
    assert_int_equal(sbx_uid_pool_init(&pool, 1, 65533, 65535), 0);
    assert_true(pool.enabled);
    uid_t got[3];
    int n = 0;
    while (n < 3 && sbx_uid_pool_take(&pool, &u) == 0)
        got[n++] = u;
    assert_int_equal(n, named ? 2 : 3);
    assert_int_equal(got[0], 65533);
    assert_int_equal(got[1], named ? 65535 : 65534);
    for (int i = 0; i < n; i++)
        assert_true(got[i] != 65534 || !named);
    assert_int_equal(sbx_uid_pool_take(&pool, &u), -1);
    assert_int_equal(errno, EAGAIN);
    /* Given back: handed out again. */
    sbx_uid_pool_put(&pool, 65533);
    assert_int_equal(sbx_uid_pool_take(&pool, &u), 0);
    assert_int_equal(u, 65533);
    sbx_uid_pool_free(&pool);
}

/* Round robin: a uid given back is not the next one handed out while others are free. */
static void test_round_robin_and_claim(void **state) {
    (void)state;
    struct sbx_uid_pool pool;
    uid_t a, b, c;
    assert_int_equal(sbx_uid_pool_init(&pool, 1, 3000000, 3000009), 0);
    assert_int_equal(sbx_uid_pool_take(&pool, &a), 0);
    sbx_uid_pool_put(&pool, a);
    assert_int_equal(sbx_uid_pool_take(&pool, &b), 0);
    assert_true(b != a);
    /* Claims (adoption): an id already handed out is refused; outside the range accepted. */
    assert_int_equal(sbx_uid_pool_claim(&pool, b), -1);
    assert_int_equal(errno, EEXIST);
    assert_int_equal(sbx_uid_pool_claim(&pool, 3000005), 0);
    assert_int_equal(sbx_uid_pool_claim(&pool, 42), 0);
    for (int i = 0; i < 20; i++) {
        if (sbx_uid_pool_take(&pool, &c) != 0)
            break;
        assert_true(c != 3000005 && c != b);
    }
    sbx_uid_pool_free(&pool);
    /* Disabled pool (sandboxd not root, or --uid-range off): nothing handed out. */
    assert_int_equal(sbx_uid_pool_init(&pool, 0, 3000000, 3000009), 0);
    assert_false(pool.enabled);
    assert_int_equal(sbx_uid_pool_take(&pool, &c), -1);
    assert_int_equal(errno, ENOSYS);
    sbx_uid_pool_free(&pool);
}

/* A process holding an id of the range (here a child switched to it) makes that id busy:
 * in use, and never handed out. Root only. */
static void test_running_process_skipped(void **state) {
    (void)state;
    if (geteuid() != 0)
        skip();
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char c;
        close(p[1]);
        if (setresgid(3100001, 3100001, 3100001) != 0 || setresuid(3100001, 3100001, 3100001) != 0)
            _exit(1);
        ssize_t r = read(p[0], &c, 1); /* until the parent closes */
        _exit(r < 0 ? 1 : 0);
    }
    close(p[0]);
    /* Wait until the child has switched. */
    for (int i = 0; i < 500 && !sbx_ident_in_use(3100001, (gid_t)-1); i++)
        usleep(2000);
    assert_true(sbx_ident_in_use(3100001, (gid_t)-1));
    assert_false(sbx_ident_in_use(3100002, 3100002));
    struct sbx_uid_pool pool;
    uid_t u;
    assert_int_equal(sbx_uid_pool_init(&pool, 1, 3100001, 3100002), 0);
    assert_int_equal(sbx_uid_pool_take(&pool, &u), 0);
    assert_int_equal(u, 3100002);
    assert_int_equal(sbx_uid_pool_take(&pool, &u), -1);
    sbx_uid_pool_free(&pool);
    close(p[1]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_false(sbx_ident_in_use(3100001, (gid_t)-1));
}

/* The journal form survives a round trip; anything else is refused. */
static void test_encode_decode(void **state) {
    (void)state;
    struct sbx_ident in[] = {{SBX_IDENT_DYNAMIC, 1, 61190, 61190},
                             {SBX_IDENT_NAMED, 1, 65534, 65534},
                             {SBX_IDENT_SHARED, 0, 0, 0}};
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        ei_x_buff x;
        struct sbx_ident out;
        int idx = 0;
        ei_x_new(&x);
        sbx_ident_encode(&in[i], &x);
        memset(&out, 0x55, sizeof out);
        assert_int_equal(sbx_ident_decode(x.buff, &idx, &out), 0);
        assert_int_equal(idx, x.index);
        assert_int_equal(out.kind, in[i].kind);
        if (in[i].kind != SBX_IDENT_SHARED) {
            assert_int_equal(out.uid, in[i].uid);
            assert_int_equal(out.gid, in[i].gid);
        }
        ei_x_free(&x);
    }
    ei_x_buff bad;
    struct sbx_ident out;
    int idx = 0;
    ei_x_new(&bad);
    ei_x_encode_tuple_header(&bad, 3);
    ei_x_encode_atom(&bad, "root");
    ei_x_encode_long(&bad, 0);
    ei_x_encode_long(&bad, 0);
    assert_int_equal(sbx_ident_decode(bad.buff, &idx, &out), -1);
    ei_x_free(&bad);
}

/* sbx_ident_own_fd gives a file to a separate uid, and leaves it alone for a shared one. */
static void test_own_fd(void **state) {
    (void)state;
    if (geteuid() != 0)
        skip();
    char path[] = "/tmp/test_ident_XXXXXX";
    int fd = mkstemp(path);
    struct stat st;
    assert_true(fd >= 0);
    struct sbx_ident shared = {SBX_IDENT_SHARED, 0, 0, 0};
    struct sbx_ident dyn = {SBX_IDENT_DYNAMIC, 1, 61999, 61999};
    assert_int_equal(sbx_ident_own_fd(&shared, fd), 0);
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_uid, 0);
    int opath = open(path, O_PATH | O_CLOEXEC);
    assert_true(opath >= 0);
    assert_int_equal(sbx_ident_own_fd(&dyn, opath), 0);
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_uid, 61999);
    assert_int_equal(st.st_gid, 61999);
    close(opath);
    close(fd);
    unlink(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_take_skips_named_ids),
        cmocka_unit_test(test_round_robin_and_claim),
        cmocka_unit_test(test_running_process_skipped),
        cmocka_unit_test(test_encode_decode),
        cmocka_unit_test(test_own_fd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
