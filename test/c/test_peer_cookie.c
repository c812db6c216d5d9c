/* Unit tests for dist/peer_cookie.c: the cookie the node uses with one named peer
 * instead of its own (a beam_node sandbox's node has a cookie of its own). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "dist/node.h"

static void init_node(struct sbx_node *node) {
    memset(node, 0, sizeof *node);
    strcpy(node->name, "sandboxd@host");
    strcpy(node->cookie, "OWNCOOKIE");
}

static void test_default_is_own(void **state) {
    struct sbx_node node;
    (void)state;
    init_node(&node);
    assert_string_equal(sbx_node_cookie_for(&node, "a@host"), "OWNCOOKIE");
    sbx_node_clear_peer_cookies(&node);
}

static void test_set_replace_forget(void **state) {
    struct sbx_node node;
    (void)state;
    init_node(&node);
    assert_int_equal(sbx_node_set_peer_cookie(&node, "a@host", "AAA"), 0);
    assert_int_equal(sbx_node_set_peer_cookie(&node, "b@host", "BBB"), 0);
    assert_string_equal(sbx_node_cookie_for(&node, "a@host"), "AAA");
    assert_string_equal(sbx_node_cookie_for(&node, "b@host"), "BBB");
    assert_string_equal(sbx_node_cookie_for(&node, "c@host"), "OWNCOOKIE");
    /* Replacing keeps one entry per peer. */
    assert_int_equal(sbx_node_set_peer_cookie(&node, "a@host", "A2"), 0);
    assert_string_equal(sbx_node_cookie_for(&node, "a@host"), "A2");
    /* A peer with a cookie of its own is a sandbox's node: its connections are fenced. */
    assert_int_equal(sbx_node_has_peer_cookie(&node, "a@host"), 1);
    assert_int_equal(sbx_node_has_peer_cookie(&node, "c@host"), 0);
    int n = 0;
    for (struct sbx_peer_cookie *e = node.peer_cookies; e != NULL; e = e->next)
        n++;
    assert_int_equal(n, 2);
    sbx_node_forget_peer_cookie(&node, "a@host");
    assert_string_equal(sbx_node_cookie_for(&node, "a@host"), "OWNCOOKIE");
    assert_int_equal(sbx_node_has_peer_cookie(&node, "a@host"), 0);
    assert_string_equal(sbx_node_cookie_for(&node, "b@host"), "BBB");
    sbx_node_forget_peer_cookie(&node, "nobody@host"); /* no-op */
    sbx_node_clear_peer_cookies(&node);
    assert_null(node.peer_cookies);
    assert_string_equal(sbx_node_cookie_for(&node, "b@host"), "OWNCOOKIE");
}

static void test_refused(void **state) {
    struct sbx_node node;
    char long_cookie[SBX_COOKIE_MAX + 2];
    (void)state;
    init_node(&node);
    memset(long_cookie, 'C', sizeof long_cookie - 1);
    long_cookie[sizeof long_cookie - 1] = '\0';
    assert_int_equal(sbx_node_set_peer_cookie(&node, "no-at-sign", "X"), -1);
    assert_int_equal(sbx_node_set_peer_cookie(&node, "a@host", ""), -1);
    assert_int_equal(sbx_node_set_peer_cookie(&node, "a@host", long_cookie), -1);
    long_cookie[SBX_COOKIE_MAX] = '\0'; /* exactly the maximum is fine */
    assert_int_equal(sbx_node_set_peer_cookie(&node, "a@host", long_cookie), 0);
    assert_string_equal(sbx_node_cookie_for(&node, "a@host"), long_cookie);
    sbx_node_clear_peer_cookies(&node);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_is_own),
        cmocka_unit_test(test_set_replace_forget),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
