/* Unit tests for util/log.h: every value is escaped, so one event is one line and a value
 * cannot forge a key=value pair; cut lines keep their quotes balanced. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"

/* 1 if s holds no byte below 0x20 and no 0x7f. */
static int no_control(const char *s) {
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 0;
    return 1;
}

/* Number of '"' in s not preceded by an escaping backslash. */
static int unescaped_quotes(const char *s) {
    int n = 0;
    for (size_t i = 0; s[i] != '\0'; i++) {
        if (s[i] == '\\' && s[i + 1] != '\0')
            i++;
        else if (s[i] == '"')
            n++;
    }
    return n;
}

static void test_escape_each_class(void **state) {
    (void)state;
    char out[128];
    const char in[] = "a\"b\\c\nd\re\tf\x01g\x1fh\x7fi\xc3\xa9";
    size_t n = sbx_log_escape(out, sizeof out, in, sizeof in - 1);
    assert_string_equal(out, "a\\\"b\\\\c\\nd\\re\\tf\\x01g\\x1fh\\x7fi\xc3\xa9");
    assert_int_equal(n, strlen(out));
}

static void test_escape_never_cuts_a_sequence(void **state) {
    (void)state;
    char out[6];
    /* "ab" fits, then \n would need 2 bytes with only 3 left: "ab\n" = 4 > 5? It fits; the
     * next \x01 (4 bytes) does not. */
    sbx_log_escape(out, sizeof out, "ab\n\x01", 4);
    assert_string_equal(out, "ab\\n");
    sbx_log_escape(out, 3, "\"", 1);
    assert_string_equal(out, "\\\"");
    sbx_log_escape(out, 2, "\"", 1);
    assert_string_equal(out, "");
}

static void test_quoted_slot_is_escaped(void **state) {
    (void)state;
    char out[256];
    sbx_log_format(out, sizeof out, "peer=\"%s\" addr=%s", "x\" forged=\"1\nlevel=error msg=\"y",
                   "127.0.0.1:5");
    assert_string_equal(out,
                        "peer=\"x\\\" forged=\\\"1\\nlevel=error msg=\\\"y\" addr=127.0.0.1:5");
    assert_true(no_control(out));
    assert_int_equal(unescaped_quotes(out), 2);
}

static void test_bare_slot_is_quoted_when_needed(void **state) {
    (void)state;
    char out[256];
    sbx_log_format(out, sizeof out, "peer=%s n=%d", "a b=c", 3);
    assert_string_equal(out, "peer=\"a b=c\" n=3");
    sbx_log_format(out, sizeof out, "peer=%s", "");
    assert_string_equal(out, "peer=\"\"");
    sbx_log_format(out, sizeof out, "peer=%s", "x\ny");
    assert_string_equal(out, "peer=\"x\\ny\"");
    sbx_log_format(out, sizeof out, "peer=%s", "node@host");
    assert_string_equal(out, "peer=node@host");
}

static void test_numbers_and_precision(void **state) {
    (void)state;
    char out[256];
    sbx_log_format(out, sizeof out, "a=%d b=%u c=%ld d=%lld e=%llu f=%zu g=%.3s h=%x i=%%",
                   -1, 2u, -3L, -4LL, 5ULL, (size_t)6, "abcdef", 255u);
    assert_string_equal(out, "a=-1 b=2 c=-3 d=-4 e=5 f=6 g=abc h=ff i=%");
    sbx_log_format(out, sizeof out, "why=\"%s: %s\"", "one\"", "two\n");
    assert_string_equal(out, "why=\"one\\\": two\\n\"");
}

static void test_cut_keeps_quotes_balanced(void **state) {
    (void)state;
    char big[600];
    char out[64];
    memset(big, '\n', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    for (size_t cap = 2; cap <= sizeof out; cap++) {
        size_t n = sbx_log_format(out, cap, "k=\"%s\" z=%s", big, big);
        assert_true(n < cap);
        assert_int_equal(strlen(out), n);
        assert_true(no_control(out));
        assert_int_equal(unescaped_quotes(out) % 2, 0);
        /* never a dangling backslash before the closing quote */
        if (n >= 2 && out[n - 1] == '"')
            assert_true(out[n - 2] != '\\' || (n >= 3 && out[n - 3] == '\\'));
    }
}

/* The whole line on stderr: one newline, at its end, however hostile the values. */
static void test_one_line_on_stderr(void **state) {
    (void)state;
    char path[] = "/tmp/sbx_test_log_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *saved = stderr;
    FILE *f = fdopen(fd, "w+");
    assert_non_null(f);
    stderr = f;
    char name[300];
    for (size_t i = 0; i < sizeof name - 1; i++)
        name[i] = (char)(i % 2 ? '\n' : '"');
    name[sizeof name - 1] = '\0';
    sbx_log(SBX_LOG_WARN, "handshake \"failed\"\n", "peer=\"%s\" addr=%s reason=%s", name, name,
            "x");
    fflush(f);
    stderr = saved;
    rewind(f);
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    unlink(path);
    assert_true(n > 0);
    assert_int_equal(buf[n - 1], '\n');
    assert_null(memchr(buf, '\n', n - 1));
    buf[n - 1] = '\0';
    assert_true(no_control(buf));
    assert_int_equal(unescaped_quotes(buf) % 2, 0);
    assert_non_null(strstr(buf, " level=warn msg=\"handshake \\\"failed\\\"\\n\" peer=\""));
    assert_non_null(strstr(buf, " reason=x"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape_each_class),
        cmocka_unit_test(test_escape_never_cuts_a_sequence),
        cmocka_unit_test(test_quoted_slot_is_escaped),
        cmocka_unit_test(test_bare_slot_is_quoted_when_needed),
        cmocka_unit_test(test_numbers_and_precision),
        cmocka_unit_test(test_cut_keeps_quotes_balanced),
        cmocka_unit_test(test_one_line_on_stderr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
