/* Unit tests for dist/strangers.h: per-address counts, the busiest count, and deletion that
 * keeps every other address findable (backward shift), checked against a plain model. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "dist/strangers.h"

/* The IPv4 address a.b.c.d. */
static struct sbx_addr v4(unsigned a, unsigned b, unsigned c, unsigned d) {
    struct sbx_addr x;
    memset(&x, 0, sizeof x);
    x.len = 4;
    x.b[0] = (unsigned char)a;
    x.b[1] = (unsigned char)b;
    x.b[2] = (unsigned char)c;
    x.b[3] = (unsigned char)d;
    return x;
}

static void test_counts_and_most(void **state) {
    (void)state;
    struct sbx_strangers s;
    assert_int_equal(sbx_strangers_init(&s, 8, 3), 0);
    struct sbx_addr a = v4(127, 0, 0, 1), b = v4(127, 0, 0, 2), unknown = {0};
    assert_int_equal(sbx_strangers_most(&s), 0);
    assert_int_equal(sbx_strangers_add(&s, &a), 0);
    assert_int_equal(sbx_strangers_add(&s, &a), 0);
    assert_int_equal(sbx_strangers_add(&s, &b), 0);
    assert_int_equal(sbx_strangers_add(&s, &unknown), 0);
    assert_int_equal(sbx_strangers_count(&s, &a), 2);
    assert_int_equal(sbx_strangers_count(&s, &b), 1);
    assert_int_equal(sbx_strangers_count(&s, &unknown), 1);
    assert_int_equal(s.total, 4);
    assert_int_equal(sbx_strangers_most(&s), 2);
    sbx_strangers_del(&s, &a);
    assert_int_equal(sbx_strangers_most(&s), 1);
    sbx_strangers_del(&s, &a);
    sbx_strangers_del(&s, &a); /* none left: no-op */
    assert_int_equal(sbx_strangers_count(&s, &a), 0);
    assert_int_equal(s.total, 2);
    sbx_strangers_del(&s, &b);
    sbx_strangers_del(&s, &unknown);
    assert_int_equal(sbx_strangers_most(&s), 0);
    assert_int_equal(s.total, 0);
    sbx_strangers_free(&s);
    sbx_strangers_free(&s); /* zeroed: safe again */
}

/* Random adds and deletes over many addresses (colliding in a small table), checked
 * against an array of counts after every step. */
static void test_against_a_model(void **state) {
    (void)state;
    enum { ADDRS = 300, STEPS = 20000, CAP = 200, PER = 5 };
    struct sbx_strangers s;
    size_t model[ADDRS] = {0};
    size_t total = 0;
    assert_int_equal(sbx_strangers_init(&s, CAP, PER), 0);
    srand(7);
    for (int step = 0; step < STEPS; step++) {
        unsigned i = (unsigned)rand() % ADDRS;
        struct sbx_addr a = v4(10, i / 256, i % 256, 1);
        if (rand() % 2 == 0 && total < CAP && model[i] < PER) {
            assert_int_equal(sbx_strangers_add(&s, &a), 0);
            model[i]++;
            total++;
        } else {
            sbx_strangers_del(&s, &a);
            if (model[i] > 0) {
                model[i]--;
                total--;
            }
        }
        if (step % 97 == 0 || step == STEPS - 1) {
            size_t most = 0;
            for (unsigned j = 0; j < ADDRS; j++) {
                struct sbx_addr b = v4(10, j / 256, j % 256, 1);
                assert_int_equal(sbx_strangers_count(&s, &b), model[j]);
                if (model[j] > most)
                    most = model[j];
            }
            assert_int_equal(sbx_strangers_most(&s), most);
            assert_int_equal(s.total, total);
        }
    }
    sbx_strangers_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_and_most),
        cmocka_unit_test(test_against_a_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
