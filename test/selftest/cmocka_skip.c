/* Selftest fixture: one test passes, one skips (as a cgroup test does on a host without
 * cgroups). scripts/selftest.sh builds and runs it through scripts/tally.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* Passes. */
static void test_passes(void **state) {
    (void)state;
    assert_int_equal(1 + 1, 2);
}

/* Skips, with the message a host-dependent test prints. */
static void test_skips(void **state) {
    (void)state;
    print_message("SKIP: selftest fixture skips on purpose\n");
    skip();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_passes),
        cmocka_unit_test(test_skips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
