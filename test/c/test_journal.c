/* Unit tests for core/journal.h: the state directory layout, saving and replacing
 * records, reading them back (skipping what is not a record), atomic replacement
 * (leftover temporary files are never read) and removal that never follows a symlink.
 *
 * Every test works in its own mkdtemp folder under /tmp, removed afterwards. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/journal.h"

/* ---- helpers ------------------------------------------------------------------------- */

struct fixture {
    char root[64];   /* the mkdtemp folder */
    char state[128]; /* root/state: the state dir (made by the tests that want it) */
    char out[128];   /* root/outside: must survive every removal */
};

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int setup(void **state) {
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->root, sizeof f->root, "/tmp/sbx_journal_XXXXXX");
    assert_non_null(mkdtemp(f->root));
    snprintf(f->state, sizeof f->state, "%s/state", f->root);
    snprintf(f->out, sizeof f->out, "%s/outside", f->root);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    struct fixture *f = *state;
    nftw(f->root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void put_file(const char *path, const char *data) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    size_t n = strlen(data);
    assert_int_equal(write(fd, data, n), (ssize_t)n);
    close(fd);
}

static void assert_file(const char *path, const char *data) {
    char buf[256];
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    assert_int_equal(n, (ssize_t)strlen(data));
    assert_memory_equal(buf, data, (size_t)n);
}

static int exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

static void pathf(char *out, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void pathf(char *out, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < cap);
}

/* What sbx_journal_each passed. */
struct seen {
    int n;
    char id[16][64];
    char buf[16][256];
    size_t len[16];
};

static void collect(void *arg, const char *id, const char *buf, size_t len) {
    struct seen *s = arg;
    assert_true(s->n < 16);
    assert_true(strlen(id) < sizeof s->id[0]);
    memcpy(s->id[s->n], id, strlen(id) + 1);
    if (len <= sizeof s->buf[0])
        memcpy(s->buf[s->n], buf, len);
    s->len[s->n] = len;
    s->n++;
}

static void assert_seen(const struct seen *s, int i, const char *id, const char *buf,
                        size_t len) {
    assert_string_equal(s->id[i], id);
    assert_int_equal(s->len[i], len);
    assert_memory_equal(s->buf[i], buf, len);
}

/* ---- tests --------------------------------------------------------------------------- */

static void test_init_and_dir(void **state) {
    struct fixture *f = *state;
    char nested[192], p[256], out[256];
    struct stat st;

    /* Missing parents are made too (0711: searchable, not listable); the state dir and
     * sandboxes/ 0700. */
    pathf(nested, sizeof nested, "%s/a/b/state", f->root);
    assert_int_equal(sbx_journal_init(nested), 0);
    pathf(p, sizeof p, "%s/a/b", f->root);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0711);
    pathf(p, sizeof p, "%s/sandboxes", nested);
    assert_int_equal(stat(p, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0700);
    assert_int_equal(stat(nested, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    assert_int_equal(sbx_journal_init(nested), 0); /* again: fine */

    /* A state dir reached through a symlink is fine. */
    pathf(p, sizeof p, "%s/link", f->root);
    assert_int_equal(symlink(nested, p), 0);
    assert_int_equal(sbx_journal_init(p), 0);

    /* A file in the way. */
    pathf(p, sizeof p, "%s/file", f->root);
    put_file(p, "x");
    assert_int_equal(sbx_journal_init(p), -1);

    /* dir: the path, made only with create. */
    assert_int_equal(sbx_journal_dir(nested, "sb-1", 0, out, sizeof out), 0);
    pathf(p, sizeof p, "%s/sandboxes/sb-1", nested);
    assert_string_equal(out, p);
    assert_false(exists(p));
    assert_int_equal(sbx_journal_dir(nested, "sb-1", 1, out, sizeof out), 0);
    assert_int_equal(stat(p, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0700);
    assert_int_equal(sbx_journal_dir(nested, "sb-1", 1, out, sizeof out), 0);

    /* Too small an out: ENAMETOOLONG, out untouched, nothing made. */
    char small[16] = "untouched";
    errno = 0;
    assert_int_equal(sbx_journal_dir(nested, "sb-2", 1, small, sizeof small), -1);
    assert_int_equal(errno, ENAMETOOLONG);
    assert_string_equal(small, "untouched");
    pathf(p, sizeof p, "%s/sandboxes/sb-2", nested);
    assert_false(exists(p));
    /* Exactly fitting works. */
    size_t need = strlen(nested) + strlen("/sandboxes/sb-2") + 1;
    assert_int_equal(sbx_journal_dir(nested, "sb-2", 0, out, need), 0);
    assert_int_equal(sbx_journal_dir(nested, "sb-2", 0, out, need - 1), -1);

    /* Bad ids, defensively. */
    const char *bad[] = {"", ".", "..", "a/b", "../x", "-x", ".hidden", "a b",
                         "0123456789012345678901234567890123456789012345678901234567890123"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        assert_int_equal(sbx_journal_dir(nested, bad[i], 1, out, sizeof out), -1);
        assert_int_equal(errno, EINVAL);
        assert_int_equal(sbx_journal_save(nested, bad[i], "x", 1), -1);
        assert_int_equal(sbx_journal_remove(nested, bad[i]), -1);
    }
    /* 63 characters is the longest id. */
    const char *id63 = "012345678901234567890123456789012345678901234567890123456789012";
    assert_int_equal(strlen(id63), 63);
    assert_int_equal(sbx_journal_dir(nested, id63, 1, out, sizeof out), 0);
    /* A symlink where the folder should be is not taken for it. */
    pathf(p, sizeof p, "%s/sandboxes/evil", nested);
    assert_int_equal(mkdir(f->out, 0700), 0);
    assert_int_equal(symlink(f->out, p), 0);
    errno = 0;
    assert_int_equal(sbx_journal_dir(nested, "evil", 1, out, sizeof out), -1);
    assert_int_equal(errno, ENOTDIR);
    assert_int_equal(sbx_journal_save(nested, "evil", "x", 1), -1);
    pathf(p, sizeof p, "%s/record", f->out);
    assert_false(exists(p));
}

static void test_save_replace_each(void **state) {
    struct fixture *f = *state;
    struct seen s = {0};
    char p[256];
    struct stat st;

    /* No state dir yet: nothing, not an error. */
    assert_int_equal(sbx_journal_each(f->state, collect, &s), 0);
    assert_int_equal(sbx_journal_init(f->state), 0);
    assert_int_equal(sbx_journal_each(f->state, collect, &s), 0);

    assert_int_equal(sbx_journal_save(f->state, "bravo", "\x83" "b1", 3), 0);
    assert_int_equal(sbx_journal_save(f->state, "alpha", "\x83" "a\0z", 4), 0);
    assert_int_equal(sbx_journal_save(f->state, "charlie", "", 0), 0);
    pathf(p, sizeof p, "%s/sandboxes/alpha/record", f->state);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, 4);

    assert_int_equal(sbx_journal_each(f->state, collect, &s), 3);
    assert_int_equal(s.n, 3);
    assert_seen(&s, 0, "alpha", "\x83" "a\0z", 4);
    assert_seen(&s, 1, "bravo", "\x83" "b1", 3);
    assert_seen(&s, 2, "charlie", "", 0);

    /* Replace: the new bytes, shorter or longer, and no temporary file left. */
    assert_int_equal(sbx_journal_save(f->state, "bravo", "\x83" "b2-longer", 10), 0);
    assert_int_equal(sbx_journal_save(f->state, "alpha", "A", 1), 0);
    memset(&s, 0, sizeof s);
    assert_int_equal(sbx_journal_each(f->state, collect, &s), 3);
    assert_seen(&s, 0, "alpha", "A", 1);
    assert_seen(&s, 1, "bravo", "\x83" "b2-longer", 10);
    pathf(p, sizeof p, "%s/sandboxes/bravo/record.tmp", f->state);
    assert_false(exists(p));

    /* save makes sandboxes/ if init was not called. */
    char other[192];
    pathf(other, sizeof other, "%s/other", f->root);
    assert_int_equal(mkdir(other, 0700), 0);
    assert_int_equal(sbx_journal_save(other, "x", "1", 1), 0);
    memset(&s, 0, sizeof s);
    assert_int_equal(sbx_journal_each(other, collect, &s), 1);
    assert_seen(&s, 0, "x", "1", 1);

    /* A record near the limit is read whole. */
    size_t big = (size_t)1 << 20;
    char *buf = malloc(big);
    assert_non_null(buf);
    for (size_t i = 0; i < big; i++)
        buf[i] = (char)(i * 7);
    assert_int_equal(sbx_journal_save(f->state, "big", buf, big), 0);
    memset(&s, 0, sizeof s);
    assert_int_equal(sbx_journal_each(f->state, collect, &s), 4);
    assert_string_equal(s.id[1], "big"); /* in order of id */
    assert_int_equal(s.len[1], big);
    free(buf);
}

static void test_atomic_leftovers_and_skips(void **state) {
    struct fixture *f = *state;
    struct seen s = {0};
    char p[256], q[256];

    assert_int_equal(sbx_journal_init(f->state), 0);
    assert_int_equal(sbx_journal_save(f->state, "ok", "good", 4), 0);

    /* A crash between writing record.tmp and the rename: the old record stands. */
    pathf(p, sizeof p, "%s/sandboxes/ok/record.tmp", f->state);
    put_file(p, "half-writ");
    /* A folder with only a temporary file: no record, skipped. */
    pathf(p, sizeof p, "%s/sandboxes/torn", f->state);
    assert_int_equal(mkdir(p, 0700), 0);
    pathf(p, sizeof p, "%s/sandboxes/torn/record.tmp", f->state);
    put_file(p, "never renamed");
    /* A folder without a record (e.g. created, not yet journalled). */
    pathf(p, sizeof p, "%s/sandboxes/empty", f->state);
    assert_int_equal(mkdir(p, 0700), 0);
    /* A record that is a folder, and one that is a symlink to a file outside. */
    pathf(p, sizeof p, "%s/sandboxes/dirrec", f->state);
    assert_int_equal(mkdir(p, 0700), 0);
    pathf(p, sizeof p, "%s/sandboxes/dirrec/record", f->state);
    assert_int_equal(mkdir(p, 0700), 0);
    pathf(q, sizeof q, "%s/secret", f->root);
    put_file(q, "secret");
    pathf(p, sizeof p, "%s/sandboxes/linkrec", f->state);
    assert_int_equal(mkdir(p, 0700), 0);
    pathf(p, sizeof p, "%s/sandboxes/linkrec/record", f->state);
    assert_int_equal(symlink(q, p), 0);
    /* A sandbox folder that is a symlink to a folder with a record. */
    assert_int_equal(mkdir(f->out, 0700), 0);
    pathf(q, sizeof q, "%s/record", f->out);
    put_file(q, "elsewhere");
    pathf(p, sizeof p, "%s/sandboxes/linkdir", f->state);
    assert_int_equal(symlink(f->out, p), 0);
    /* A FIFO as a record (must not block), a file and a dot-folder in sandboxes/. */
    pathf(p, sizeof p, "%s/sandboxes/fifo", f->state);
    assert_int_equal(mkdir(p, 0700), 0);
    pathf(p, sizeof p, "%s/sandboxes/fifo/record", f->state);
    assert_int_equal(mkfifo(p, 0600), 0);
    pathf(p, sizeof p, "%s/sandboxes/stray-file", f->state);
    put_file(p, "x");
    pathf(p, sizeof p, "%s/sandboxes/.hidden", f->state);
    assert_int_equal(mkdir(p, 0700), 0);
    pathf(p, sizeof p, "%s/sandboxes/.hidden/record", f->state);
    put_file(p, "hidden");
    /* A record over 16 MiB (sparse). */
    pathf(p, sizeof p, "%s/sandboxes/huge", f->state);
    assert_int_equal(mkdir(p, 0700), 0);
    pathf(p, sizeof p, "%s/sandboxes/huge/record", f->state);
    put_file(p, "");
    assert_int_equal(truncate(p, (16 << 20) + 1), 0);
    /* Exactly 16 MiB is fine. */
    pathf(p, sizeof p, "%s/sandboxes/max", f->state);
    assert_int_equal(mkdir(p, 0700), 0);
    pathf(p, sizeof p, "%s/sandboxes/max/record", f->state);
    put_file(p, "");
    assert_int_equal(truncate(p, 16 << 20), 0);

    assert_int_equal(sbx_journal_each(f->state, collect, &s), 2);
    assert_string_equal(s.id[0], "max");
    assert_int_equal(s.len[0], 16 << 20);
    assert_seen(&s, 1, "ok", "good", 4);

    /* save over a leftover temporary file works and removes it. */
    assert_int_equal(sbx_journal_save(f->state, "torn", "fresh", 5), 0);
    pathf(p, sizeof p, "%s/sandboxes/torn/record.tmp", f->state);
    assert_false(exists(p));
    /* ... also when the leftover is a symlink: it is replaced, its target untouched. */
    pathf(q, sizeof q, "%s/secret", f->root);
    pathf(p, sizeof p, "%s/sandboxes/ok/record.tmp", f->state);
    assert_int_equal(unlink(p), 0);
    assert_int_equal(symlink(q, p), 0);
    assert_int_equal(sbx_journal_save(f->state, "ok", "better", 6), 0);
    assert_file(q, "secret");
    memset(&s, 0, sizeof s);
    assert_int_equal(sbx_journal_each(f->state, collect, &s), 3);
    assert_seen(&s, 1, "ok", "better", 6);
    assert_seen(&s, 2, "torn", "fresh", 5);

    /* An unreadable sandboxes/ is an error, not "no sandboxes". */
    char notdir[192];
    pathf(notdir, sizeof notdir, "%s/notdir", f->root);
    assert_int_equal(mkdir(notdir, 0700), 0);
    pathf(p, sizeof p, "%s/sandboxes", notdir);
    put_file(p, "x");
    assert_int_equal(sbx_journal_each(notdir, collect, &s), -1);
}

static void test_remove(void **state) {
    struct fixture *f = *state;
    char p[512], q[256], dir[256];
    struct seen s = {0};

    assert_int_equal(sbx_journal_init(f->state), 0);
    assert_int_equal(sbx_journal_save(f->state, "sb", "rec", 3), 0);
    assert_int_equal(sbx_journal_save(f->state, "keep", "rec2", 4), 0);
    assert_int_equal(sbx_journal_dir(f->state, "sb", 0, dir, sizeof dir), 0);

    /* Outside: a folder with a file, and a lone file. They must survive. */
    assert_int_equal(mkdir(f->out, 0700), 0);
    pathf(q, sizeof q, "%s/precious", f->out);
    put_file(q, "precious");
    char lone[256];
    pathf(lone, sizeof lone, "%s/lone", f->root);
    put_file(lone, "lone");

    /* Inside: nested folders, files, a FIFO, symlinks to outside (folder, file, dangling),
     * a read-only folder and one with no permissions at all (they matter when not root). */
    pathf(p, sizeof p, "%s/log", dir);
    put_file(p, "log");
    pathf(p, sizeof p, "%s/ws", dir);
    assert_int_equal(mkdir(p, 0700), 0);
    pathf(p, sizeof p, "%s/ws/a", dir);
    assert_int_equal(mkdir(p, 0700), 0);
    pathf(p, sizeof p, "%s/ws/a/b", dir);
    assert_int_equal(mkdir(p, 0700), 0);
    pathf(p, sizeof p, "%s/ws/a/b/c.txt", dir);
    put_file(p, "c");
    pathf(p, sizeof p, "%s/ws/a/.dot", dir);
    put_file(p, "d");
    pathf(p, sizeof p, "%s/ws/fifo", dir);
    assert_int_equal(mkfifo(p, 0600), 0);
    pathf(p, sizeof p, "%s/ws/to-outside", dir);
    assert_int_equal(symlink(f->out, p), 0);
    pathf(p, sizeof p, "%s/ws/a/b/to-file", dir);
    assert_int_equal(symlink(lone, p), 0);
    pathf(p, sizeof p, "%s/ws/dangling", dir);
    assert_int_equal(symlink("/nonexistent/x", p), 0);
    pathf(p, sizeof p, "%s/ws/ro", dir);
    assert_int_equal(mkdir(p, 0700), 0);
    pathf(p, sizeof p, "%s/ws/ro/f", dir);
    put_file(p, "f");
    pathf(p, sizeof p, "%s/ws/ro", dir);
    assert_int_equal(chmod(p, 0500), 0);
    pathf(p, sizeof p, "%s/ws/locked", dir);
    assert_int_equal(mkdir(p, 0700), 0);
    pathf(p, sizeof p, "%s/ws/locked/f", dir);
    put_file(p, "f");
    pathf(p, sizeof p, "%s/ws/locked", dir);
    assert_int_equal(chmod(p, 0), 0);

    assert_int_equal(sbx_journal_remove(f->state, "sb"), 0);
    assert_false(exists(dir));
    assert_file(q, "precious");
    assert_file(lone, "lone");
    assert_int_equal(sbx_journal_each(f->state, collect, &s), 1);
    assert_seen(&s, 0, "keep", "rec2", 4);

    /* Missing is not an error; nor is a missing state dir. */
    assert_int_equal(sbx_journal_remove(f->state, "sb"), 0);
    assert_int_equal(sbx_journal_remove(f->state, "never"), 0);
    pathf(p, sizeof p, "%s/no-state", f->root);
    assert_int_equal(sbx_journal_remove(p, "sb"), 0);

    /* The sandbox folder itself a symlink to outside: only the link goes. */
    pathf(p, sizeof p, "%s/sandboxes/linked", f->state);
    assert_int_equal(symlink(f->out, p), 0);
    assert_int_equal(sbx_journal_remove(f->state, "linked"), 0);
    assert_false(exists(p));
    assert_file(q, "precious");
    assert_true(exists(f->out));
}

static void test_remove_deep_and_wide(void **state) {
    struct fixture *f = *state;
    char dir[256];
    int fd, sub;

    assert_int_equal(sbx_journal_init(f->state), 0);
    assert_int_equal(sbx_journal_save(f->state, "deep", "r", 1), 0);
    assert_int_equal(sbx_journal_dir(f->state, "deep", 0, dir, sizeof dir), 0);
    assert_int_equal(mkdir(f->out, 0700), 0);
    char q[256];
    pathf(q, sizeof q, "%s/precious", f->out);
    put_file(q, "precious");

    /* 400 levels (longer than PATH_MAX as a path, and several times the depth at which
     * removal moves folders up), with a file and a symlink to outside at each level;
     * then 500 siblings at the top. */
    fd = open(dir, O_RDONLY | O_DIRECTORY);
    assert_true(fd >= 0);
    for (int i = 0; i < 400; i++) {
        assert_int_equal(mkdirat(fd, "dddddddddd", 0700), 0);
        int ffd = openat(fd, "file", O_WRONLY | O_CREAT, 0600);
        assert_true(ffd >= 0);
        close(ffd);
        assert_int_equal(symlinkat(f->out, fd, "out"), 0);
        sub = openat(fd, "dddddddddd", O_RDONLY | O_DIRECTORY);
        assert_true(sub >= 0);
        close(fd);
        fd = sub;
    }
    close(fd);
    fd = open(dir, O_RDONLY | O_DIRECTORY);
    assert_true(fd >= 0);
    for (int i = 0; i < 500; i++) {
        char name[32];
        snprintf(name, sizeof name, "s%d", i);
        assert_int_equal(mkdirat(fd, name, 0700), 0);
    }
    /* A name the removal might pick for moving folders up is already taken. */
    assert_int_equal(mkdirat(fd, ".sbx-rm-0", 0700), 0);
    int ffd = openat(fd, ".sbx-rm-1", O_WRONLY | O_CREAT, 0600);
    assert_true(ffd >= 0);
    close(ffd);
    close(fd);

    assert_int_equal(sbx_journal_remove(f->state, "deep"), 0);
    assert_false(exists(dir));
    assert_file(q, "precious");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_init_and_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_replace_each, setup, teardown),
        cmocka_unit_test_setup_teardown(test_atomic_leftovers_and_skips, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_deep_and_wide, setup, teardown),
    };
    return cmocka_run_group_tests_name("journal", tests, NULL, NULL);
}
