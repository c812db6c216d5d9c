/* Unit tests for the pure parts of dist/epmd.h: the PORT_PLEASE2 request and the
 * PORT2_RESP / ALIVE2_X_RESP / ALIVE2_RESP parsers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "dist/epmd.h"

static unsigned char *dup_exact(const unsigned char *p, size_t len) {
    unsigned char *c = malloc(len > 0 ? len : 1);
    assert_non_null(c);
    if (len > 0)
        memcpy(c, p, len);
    return c;
}

static int port_reply(const unsigned char *buf, size_t len, uint16_t *port, const char **why) {
    unsigned char *c = dup_exact(buf, len);
    int rc = sbx_epmd_parse_port_reply(c, len, port, why);
    free(c);
    return rc;
}

static int alive_reply(const unsigned char *buf, size_t len, uint32_t *creation,
                       const char **why) {
    unsigned char *c = dup_exact(buf, len);
    int rc = sbx_epmd_parse_alive_reply(c, len, creation, why);
    free(c);
    return rc;
}

/* ---- PORT_PLEASE2_REQ ------------------------------------------------------------------- */

static void test_port_please_bytes(void **state) {
    (void)state;
    unsigned char out[64];
    memset(out, 0xee, sizeof out);
    int n = sbx_epmd_encode_port_please(out, sizeof out, "foo@bar.example");
    assert_int_equal(n, 6);
    const unsigned char want[] = {0, 4, 122, 'f', 'o', 'o'};
    assert_memory_equal(out, want, sizeof want);
    assert_int_equal(out[6], 0xee);

    /* A name without '@' is all alive part. */
    n = sbx_epmd_encode_port_please(out, sizeof out, "plain");
    assert_int_equal(n, 8);
    const unsigned char want2[] = {0, 6, 122, 'p', 'l', 'a', 'i', 'n'};
    assert_memory_equal(out, want2, sizeof want2);

    /* Only the first '@' splits. */
    n = sbx_epmd_encode_port_please(out, sizeof out, "a@b@c");
    assert_int_equal(n, 4);
    const unsigned char want3[] = {0, 2, 122, 'a'};
    assert_memory_equal(out, want3, sizeof want3);
}

static void test_port_please_long_alive(void **state) {
    (void)state;
    /* 300-byte alive part: length 301 = 0x012d, big-endian. */
    char name[400];
    memset(name, 'k', 300);
    memcpy(name + 300, "@h", 3);
    unsigned char out[400];
    int n = sbx_epmd_encode_port_please(out, sizeof out, name);
    assert_int_equal(n, 303);
    assert_int_equal(out[0], 0x01);
    assert_int_equal(out[1], 0x2d);
    assert_int_equal(out[2], 122);
    assert_memory_equal(out + 3, name, 300);
}

static void test_port_please_errors(void **state) {
    (void)state;
    unsigned char out[16];
    memset(out, 0xee, sizeof out);
    assert_int_equal(sbx_epmd_encode_port_please(out, sizeof out, "@host"), -1);
    assert_int_equal(sbx_epmd_encode_port_please(out, sizeof out, ""), -1);
    for (size_t cap = 0; cap < 6; cap++)
        assert_int_equal(sbx_epmd_encode_port_please(out, cap, "foo@bar"), -1);
    assert_int_equal(out[0], 0xee); /* nothing written on failure */
    assert_int_equal(sbx_epmd_encode_port_please(out, 6, "foo@bar"), 6);
}

/* ---- PORT2_RESP -------------------------------------------------------------------------- */

/* 119, Result, PortNo:16, NodeType, Protocol, Highest:16, Lowest:16, Nlen:16, Name,
 * Elen:16, Extra */
static size_t make_port2(unsigned char *out, unsigned result, uint16_t port, uint16_t high,
                         uint16_t low) {
    size_t n = 0;
    out[n++] = 119;
    out[n++] = (unsigned char)result;
    out[n++] = (unsigned char)(port >> 8);
    out[n++] = (unsigned char)port;
    out[n++] = 77;
    out[n++] = 0;
    out[n++] = (unsigned char)(high >> 8);
    out[n++] = (unsigned char)high;
    out[n++] = (unsigned char)(low >> 8);
    out[n++] = (unsigned char)low;
    out[n++] = 0;
    out[n++] = 3;
    memcpy(out + n, "foo", 3);
    n += 3;
    out[n++] = 0;
    out[n++] = 0;
    return n;
}

static void test_port_reply_success(void **state) {
    (void)state;
    unsigned char buf[64];
    const uint16_t ports[] = {4370, 1, 0xffff, 0x8001};
    for (size_t i = 0; i < 4; i++) {
        size_t n = make_port2(buf, 0, ports[i], 6, 5);
        uint16_t port = 0;
        const char *why = NULL;
        assert_int_equal(port_reply(buf, n, &port, &why), 1);
        assert_int_equal(port, ports[i]);
        /* The first 10 bytes are enough (the name is not needed). */
        port = 0;
        assert_int_equal(port_reply(buf, 10, &port, &why), 1);
        assert_int_equal(port, ports[i]);
    }
    /* Versions: 6..6 and 7..6 speak 6; 5..5 and 7..7 do not. */
    uint16_t port = 0;
    const char *why = NULL;
    size_t n = make_port2(buf, 0, 1234, 6, 6);
    assert_int_equal(port_reply(buf, n, &port, &why), 1);
    assert_int_equal(port, 1234);
    n = make_port2(buf, 0, 1234, 7, 6);
    assert_int_equal(port_reply(buf, n, &port, &why), 1);
}

static void test_port_reply_need_more(void **state) {
    (void)state;
    unsigned char buf[64];
    size_t n = make_port2(buf, 0, 4242, 6, 5);
    (void)n;
    for (size_t len = 0; len < 10; len++) {
        uint16_t port = 0x5555;
        const char *why = "untouched";
        assert_int_equal(port_reply(buf, len, &port, &why), 0);
        assert_int_equal(port, 0x5555);
    }
}

static void test_port_reply_errors(void **state) {
    (void)state;
    unsigned char buf[64];
    uint16_t port = 0x5555;
    const char *why = NULL;
    /* Not registered: result 1, only 2 bytes sent by epmd. */
    const unsigned char notreg[] = {119, 1};
    assert_int_equal(port_reply(notreg, 2, &port, &why), -1);
    assert_non_null(why);
    assert_true(strlen(why) > 0);
    assert_int_equal(port, 0x5555);
    /* Any non-zero result. */
    size_t n = make_port2(buf, 255, 4242, 6, 5);
    why = NULL;
    assert_int_equal(port_reply(buf, n, &port, &why), -1);
    assert_non_null(why);
    /* Not a PORT2_RESP at all. */
    n = make_port2(buf, 0, 4242, 6, 5);
    buf[0] = 118;
    why = NULL;
    assert_int_equal(port_reply(buf, n, &port, &why), -1);
    assert_non_null(why);
    /* Versions below 6, or a lowest version above 6. */
    const uint16_t bad[][2] = {{5, 5}, {5, 1}, {0, 0}, {7, 7}, {6, 7}, {0xffff, 0xffff}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        n = make_port2(buf, 0, 4242, bad[i][0], bad[i][1]);
        why = NULL;
        port = 0x5555;
        assert_int_equal(port_reply(buf, n, &port, &why), -1);
        assert_non_null(why);
        assert_int_equal(port, 0x5555);
    }
    /* High byte of the version counts: 0x0106 is 262, not 6. */
    n = make_port2(buf, 0, 4242, 0x0106, 0x0106);
    assert_int_equal(port_reply(buf, n, &port, &why), -1);
}

/* ---- ALIVE2 replies ---------------------------------------------------------------------- */

static void test_alive_x_resp(void **state) {
    (void)state;
    const unsigned char ok[] = {118, 0, 0x01, 0x02, 0x03, 0x04};
    uint32_t creation = 0;
    const char *why = NULL;
    assert_int_equal(alive_reply(ok, sizeof ok, &creation, &why), 1);
    assert_int_equal(creation, 0x01020304);
    const unsigned char big[] = {118, 0, 0xff, 0xff, 0xff, 0xfe};
    assert_int_equal(alive_reply(big, sizeof big, &creation, &why), 1);
    assert_int_equal(creation, 0xfffffffe);
    for (size_t len = 0; len < sizeof ok; len++) {
        creation = 0x77;
        assert_int_equal(alive_reply(ok, len, &creation, &why), 0);
        assert_int_equal(creation, 0x77);
    }
    const unsigned char refused[] = {118, 1, 0, 0, 0, 0};
    why = NULL;
    assert_int_equal(alive_reply(refused, sizeof refused, &creation, &why), -1);
    assert_non_null(why);
    assert_int_equal(alive_reply(refused, 2, &creation, &why), -1); /* known at 2 bytes */
}

static void test_alive_old_resp(void **state) {
    (void)state;
    const unsigned char ok[] = {121, 0, 0x00, 0x03};
    uint32_t creation = 0;
    const char *why = NULL;
    assert_int_equal(alive_reply(ok, sizeof ok, &creation, &why), 1);
    assert_int_equal(creation, 3);
    const unsigned char hi[] = {121, 0, 0xab, 0xcd};
    assert_int_equal(alive_reply(hi, sizeof hi, &creation, &why), 1);
    assert_int_equal(creation, 0xabcd);
    for (size_t len = 0; len < sizeof ok; len++)
        assert_int_equal(alive_reply(ok, len, &creation, &why), 0);
    const unsigned char refused[] = {121, 2};
    why = NULL;
    assert_int_equal(alive_reply(refused, sizeof refused, &creation, &why), -1);
    assert_non_null(why);
}

static void test_alive_unexpected(void **state) {
    (void)state;
    const unsigned char odd[][6] = {{119, 0, 0, 0, 0, 1}, {0, 0, 0, 0, 0, 1}, {120, 0, 0, 1, 0, 0}};
    for (size_t i = 0; i < 3; i++) {
        uint32_t creation = 0x99;
        const char *why = NULL;
        assert_int_equal(alive_reply(odd[i], 6, &creation, &why), -1);
        assert_non_null(why);
        assert_int_equal(creation, 0x99);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_port_please_bytes),
        cmocka_unit_test(test_port_please_long_alive),
        cmocka_unit_test(test_port_please_errors),
        cmocka_unit_test(test_port_reply_success),
        cmocka_unit_test(test_port_reply_need_more),
        cmocka_unit_test(test_port_reply_errors),
        cmocka_unit_test(test_alive_x_resp),
        cmocka_unit_test(test_alive_old_resp),
        cmocka_unit_test(test_alive_unexpected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
