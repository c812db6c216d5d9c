/* Selftest fixture: a bug check (known_bug from test/c/known_bug.h) that finds the bug back.
 * It must fail, not skip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "known_bug.h"

/* The "bug" is back: behaves is 0. */
static void test_bug_back(void **state) {
    (void)state;
    known_bug(0, "selftest fixture: the bug is back on purpose");
}

/* A fixed bug: behaves is 1, the test passes. */
static void test_bug_fixed(void **state) {
    (void)state;
    known_bug(1, "selftest fixture: fixed");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bug_back),
        cmocka_unit_test(test_bug_fixed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
