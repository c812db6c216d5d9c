/* Unit tests for dist/frame.h: length-prefix peeking and the split of a pass-through
 * data packet into control and message terms. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ei.h>
#include <stdlib.h>
#include <string.h>

#include "dist/frame.h"

#define MAX_64M ((size_t)64 << 20)
#define SENTINEL ((size_t)0x5a5a5a5a)

static enum sbx_frame_status peek_copy(const unsigned char *buf, size_t avail, int prefix,
                                       size_t max, size_t *body_len) {
    unsigned char *c = malloc(avail > 0 ? avail : 1);
    assert_non_null(c);
    if (avail > 0)
        memcpy(c, buf, avail);
    enum sbx_frame_status st = sbx_frame_peek(c, avail, prefix, max, body_len);
    free(c);
    return st;
}

/* ---- peek ------------------------------------------------------------------------------- */

static void test_peek_two_byte_prefix(void **state) {
    (void)state;
    const unsigned char buf[] = {0x00, 0x05, 'h', 'e', 'l', 'l', 'o', 'X'};
    size_t len = SENTINEL;
    for (size_t avail = 0; avail < 7; avail++) {
        assert_int_equal(peek_copy(buf, avail, 2, 0xffff, &len), SBX_FRAME_NEED_MORE);
        assert_int_equal(len, SENTINEL);
    }
    assert_int_equal(peek_copy(buf, 7, 2, 0xffff, &len), SBX_FRAME_READY);
    assert_int_equal(len, 5);
    len = SENTINEL;
    assert_int_equal(peek_copy(buf, 8, 2, 0xffff, &len), SBX_FRAME_READY); /* extra byte */
    assert_int_equal(len, 5);

    /* The largest 2-byte length, body not there yet. */
    const unsigned char big[] = {0xff, 0xff, 1, 2};
    assert_int_equal(peek_copy(big, 4, 2, 0xffff, &len), SBX_FRAME_NEED_MORE);
    assert_int_equal(peek_copy(big, 4, 2, 0xfffe, &len), SBX_FRAME_TOO_BIG);
    /* Byte order: 0x0102 = 258. */
    unsigned char b258[2 + 258] = {0x01, 0x02};
    len = SENTINEL;
    assert_int_equal(peek_copy(b258, sizeof b258, 2, 0xffff, &len), SBX_FRAME_READY);
    assert_int_equal(len, 258);
}

static void test_peek_four_byte_prefix(void **state) {
    (void)state;
    unsigned char buf[4 + 256 + 3];
    memset(buf, 0x77, sizeof buf);
    buf[0] = 0;
    buf[1] = 0;
    buf[2] = 1;
    buf[3] = 0;
    size_t len = SENTINEL;
    for (size_t avail = 0; avail < 260; avail++)
        assert_int_equal(peek_copy(buf, avail, 4, MAX_64M, &len), SBX_FRAME_NEED_MORE);
    assert_int_equal(len, SENTINEL);
    assert_int_equal(peek_copy(buf, 260, 4, MAX_64M, &len), SBX_FRAME_READY);
    assert_int_equal(len, 256);
    /* With max 256 it is fine, with 255 it is too big, as soon as the prefix is there. */
    assert_int_equal(peek_copy(buf, 260, 4, 256, &len), SBX_FRAME_READY);
    assert_int_equal(peek_copy(buf, 4, 4, 255, &len), SBX_FRAME_TOO_BIG);
    assert_int_equal(peek_copy(buf, 3, 4, 255, &len), SBX_FRAME_NEED_MORE);

    /* 0x01020304: big-endian, all four bytes count. */
    const unsigned char be[] = {1, 2, 3, 4};
    assert_int_equal(peek_copy(be, 4, 4, 0x01020303, &len), SBX_FRAME_TOO_BIG);
    assert_int_equal(peek_copy(be, 4, 4, 0x01020304, &len), SBX_FRAME_NEED_MORE);
}

static void test_peek_too_big(void **state) {
    (void)state;
    const unsigned char huge[] = {0xff, 0xff, 0xff, 0xff};
    size_t len = SENTINEL;
    assert_int_equal(peek_copy(huge, 4, 4, MAX_64M, &len), SBX_FRAME_TOO_BIG);
    assert_int_equal(len, SENTINEL);
    const unsigned char over[] = {0x04, 0x00, 0x00, 0x01}; /* 64 MiB + 1 */
    assert_int_equal(peek_copy(over, 4, 4, MAX_64M, &len), SBX_FRAME_TOO_BIG);
    const unsigned char at[] = {0x04, 0x00, 0x00, 0x00}; /* exactly 64 MiB: allowed */
    assert_int_equal(peek_copy(at, 4, 4, MAX_64M, &len), SBX_FRAME_NEED_MORE);
}

static void test_peek_tick(void **state) {
    (void)state;
    const unsigned char tick[] = {0, 0, 0, 0};
    size_t len = SENTINEL;
    assert_int_equal(peek_copy(tick, 4, 4, MAX_64M, &len), SBX_FRAME_READY);
    assert_int_equal(len, 0);
    assert_int_equal(peek_copy(tick, 3, 4, MAX_64M, &len), SBX_FRAME_NEED_MORE);
    len = SENTINEL;
    assert_int_equal(peek_copy(tick, 4, 4, 0, &len), SBX_FRAME_READY); /* max 0 still ok */
    assert_int_equal(len, 0);
}

static void test_peek_stream(void **state) {
    (void)state;
    /* tick, 3-byte packet, tick, 1-byte packet, then half a prefix. */
    const unsigned char s[] = {0, 0, 0, 0, 0, 0, 0, 3, 'a', 'b', 'c', 0, 0,
                               0, 0, 0, 0, 0, 1, 'z', 0, 0};
    const size_t want[] = {0, 3, 0, 1};
    size_t pos = 0, n = 0;
    for (;;) {
        size_t len = SENTINEL;
        enum sbx_frame_status st = peek_copy(s + pos, sizeof s - pos, 4, 100, &len);
        if (st != SBX_FRAME_READY) {
            assert_int_equal(st, SBX_FRAME_NEED_MORE);
            break;
        }
        assert_true(n < 4);
        assert_int_equal(len, want[n]);
        n++;
        pos += 4 + len;
    }
    assert_int_equal(n, 4);
    assert_int_equal(pos, sizeof s - 2);
}

/* ---- split ------------------------------------------------------------------------------ */

/* Encodes {2, '', Pid} (SEND) with its version byte. */
static void encode_ctl(ei_x_buff *x) {
    assert_int_equal(ei_x_new_with_version(x), 0);
    ei_x_encode_tuple_header(x, 3);
    ei_x_encode_long(x, 2);
    ei_x_encode_atom(x, "");
    erlang_pid pid;
    memset(&pid, 0, sizeof pid);
    memcpy(pid.node, "sbx@localhost", sizeof "sbx@localhost");
    pid.num = 38;
    pid.serial = 0;
    pid.creation = 1700000000u;
    ei_x_encode_pid(x, &pid);
}

/* Encodes {hello, [1,2,3], <<"payload">>} with its version byte. */
static void encode_msg(ei_x_buff *x) {
    assert_int_equal(ei_x_new_with_version(x), 0);
    ei_x_encode_tuple_header(x, 3);
    ei_x_encode_atom(x, "hello");
    ei_x_encode_list_header(x, 3);
    ei_x_encode_long(x, 1);
    ei_x_encode_long(x, 2);
    ei_x_encode_long(x, 3);
    ei_x_encode_empty_list(x);
    ei_x_encode_binary(x, "payload", 7);
}

/* A packet in an exact-size heap block. */
struct packet {
    unsigned char *p;
    size_t len;
};

static struct packet make_packet(unsigned first, const ei_x_buff *ctl, const ei_x_buff *msg,
                                 const void *extra, size_t extra_len) {
    struct packet pk;
    pk.len = 1 + (size_t)ctl->index + (msg ? (size_t)msg->index : 0) + extra_len;
    pk.p = malloc(pk.len);
    assert_non_null(pk.p);
    pk.p[0] = (unsigned char)first;
    memcpy(pk.p + 1, ctl->buff, (size_t)ctl->index);
    size_t pos = 1 + (size_t)ctl->index;
    if (msg != NULL) {
        memcpy(pk.p + pos, msg->buff, (size_t)msg->index);
        pos += (size_t)msg->index;
    }
    if (extra_len > 0)
        memcpy(pk.p + pos, extra, extra_len);
    return pk;
}

/* sbx_frame_split over the first len bytes of pk, copied to an exact-size block. */
static int split_prefix(const struct packet *pk, size_t len, struct sbx_dist_packet *out,
                        unsigned char **copy) {
    *copy = malloc(len > 0 ? len : 1);
    assert_non_null(*copy);
    if (len > 0)
        memcpy(*copy, pk->p, len);
    return sbx_frame_split(*copy, len, out);
}

static void test_split_control_only(void **state) {
    (void)state;
    ei_x_buff ctl;
    encode_ctl(&ctl);
    struct packet pk = make_packet(112, &ctl, NULL, NULL, 0);
    struct sbx_dist_packet out;
    memset(&out, 0xcc, sizeof out);
    unsigned char *c;
    assert_int_equal(split_prefix(&pk, pk.len, &out, &c), 0);
    assert_ptr_equal(out.ctl, (const char *)c + 1);
    assert_int_equal(out.ctl_len, (size_t)ctl.index);
    assert_int_equal((unsigned char)out.ctl[0], 131);
    assert_memory_equal(out.ctl, ctl.buff, (size_t)ctl.index);
    assert_null(out.msg);
    assert_int_equal(out.msg_len, 0);

    /* The control term decodes with ei from out.ctl. */
    int idx = 0, ver, arity;
    long op;
    assert_int_equal(ei_decode_version(out.ctl, &idx, &ver), 0);
    assert_int_equal(ei_decode_tuple_header(out.ctl, &idx, &arity), 0);
    assert_int_equal(arity, 3);
    assert_int_equal(ei_decode_long(out.ctl, &idx, &op), 0);
    assert_int_equal(op, 2);
    free(c);
    free(pk.p);
    ei_x_free(&ctl);
}

static void test_split_control_and_message(void **state) {
    (void)state;
    ei_x_buff ctl, msg;
    encode_ctl(&ctl);
    encode_msg(&msg);
    struct packet pk = make_packet(112, &ctl, &msg, NULL, 0);
    struct sbx_dist_packet out;
    unsigned char *c;
    assert_int_equal(split_prefix(&pk, pk.len, &out, &c), 0);
    assert_ptr_equal(out.ctl, (const char *)c + 1);
    assert_int_equal(out.ctl_len, (size_t)ctl.index);
    assert_ptr_equal(out.msg, (const char *)c + 1 + ctl.index);
    assert_int_equal(out.msg_len, (size_t)msg.index);
    assert_memory_equal(out.msg, msg.buff, (size_t)msg.index);
    assert_int_equal(1 + out.ctl_len + out.msg_len, pk.len);
    free(c);

    /* Truncated anywhere: only the control-only cut point and the whole packet pass. */
    for (size_t k = 0; k < pk.len; k++) {
        int rc = split_prefix(&pk, k, &out, &c);
        if (k == 1 + (size_t)ctl.index) {
            assert_int_equal(rc, 0);
            assert_null(out.msg);
        } else {
            if (rc != -1)
                fail_msg("prefix of %zu of %zu bytes accepted", k, pk.len);
        }
        free(c);
    }
    free(pk.p);
    ei_x_free(&ctl);
    ei_x_free(&msg);
}

static void test_split_missing_pass_through(void **state) {
    (void)state;
    ei_x_buff ctl, msg;
    encode_ctl(&ctl);
    encode_msg(&msg);
    /* The packet without the 112 byte: starts with 131. */
    struct packet pk;
    pk.len = (size_t)ctl.index + (size_t)msg.index;
    pk.p = malloc(pk.len);
    assert_non_null(pk.p);
    memcpy(pk.p, ctl.buff, (size_t)ctl.index);
    memcpy(pk.p + ctl.index, msg.buff, (size_t)msg.index);
    struct sbx_dist_packet out;
    unsigned char *c;
    assert_int_equal(split_prefix(&pk, pk.len, &out, &c), -1);
    free(c);
    free(pk.p);
    /* Other first bytes: 68 (distribution header with atom cache), 0, 113. */
    const unsigned firsts[] = {68, 0, 113, 111, 255};
    for (size_t i = 0; i < sizeof firsts / sizeof firsts[0]; i++) {
        pk = make_packet(firsts[i], &ctl, &msg, NULL, 0);
        assert_int_equal(split_prefix(&pk, pk.len, &out, &c), -1);
        free(c);
        free(pk.p);
    }
    ei_x_free(&ctl);
    ei_x_free(&msg);
}

static void test_split_bad_version_byte(void **state) {
    (void)state;
    ei_x_buff ctl, msg;
    encode_ctl(&ctl);
    encode_msg(&msg);
    struct sbx_dist_packet out;
    unsigned char *c;
    /* Control term with 130 instead of 131. */
    struct packet pk = make_packet(112, &ctl, &msg, NULL, 0);
    pk.p[1] = 130;
    assert_int_equal(split_prefix(&pk, pk.len, &out, &c), -1);
    free(c);
    free(pk.p);
    /* Message term with 130. */
    pk = make_packet(112, &ctl, &msg, NULL, 0);
    pk.p[1 + ctl.index] = 130;
    assert_int_equal(split_prefix(&pk, pk.len, &out, &c), -1);
    free(c);
    free(pk.p);
    /* Packets of 0 and 1 bytes, and 112 followed by a bare 131. */
    const unsigned char tiny[] = {112, 131};
    struct packet t = {(unsigned char *)tiny, 0};
    assert_int_equal(split_prefix(&t, 0, &out, &c), -1);
    free(c);
    assert_int_equal(split_prefix(&t, 1, &out, &c), -1);
    free(c);
    assert_int_equal(split_prefix(&t, 2, &out, &c), -1);
    free(c);
    ei_x_free(&ctl);
    ei_x_free(&msg);
}

static void test_split_trailing_garbage(void **state) {
    (void)state;
    ei_x_buff ctl, msg;
    encode_ctl(&ctl);
    encode_msg(&msg);
    struct sbx_dist_packet out;
    unsigned char *c;
    /* A byte after the message, a whole third term after it, garbage after control. */
    const unsigned char one[] = {0};
    struct packet pk = make_packet(112, &ctl, &msg, one, 1);
    assert_int_equal(split_prefix(&pk, pk.len, &out, &c), -1);
    free(c);
    free(pk.p);
    const unsigned char third[] = {131, 106};
    pk = make_packet(112, &ctl, &msg, third, 2);
    assert_int_equal(split_prefix(&pk, pk.len, &out, &c), -1);
    free(c);
    free(pk.p);
    const unsigned char junk[] = {'j', 'u', 'n', 'k'};
    pk = make_packet(112, &ctl, NULL, junk, 4);
    assert_int_equal(split_prefix(&pk, pk.len, &out, &c), -1);
    free(c);
    free(pk.p);
    ei_x_free(&ctl);
    ei_x_free(&msg);
}

static void test_split_malformed_terms(void **state) {
    (void)state;
    ei_x_buff ctl;
    encode_ctl(&ctl);
    struct sbx_dist_packet out;
    unsigned char *c;
    /* A message whose binary claims more bytes than the packet holds. */
    const unsigned char badmsg[] = {131, 109, 0, 0, 0, 9, 'x'};
    struct packet pk = make_packet(112, &ctl, NULL, badmsg, sizeof badmsg);
    assert_int_equal(split_prefix(&pk, pk.len, &out, &c), -1);
    free(c);
    free(pk.p);
    /* A control term using the atom cache (tag 82). */
    const unsigned char cached[] = {112, 131, 104, 2, 97, 2, 82, 0};
    struct packet t = {(unsigned char *)cached, sizeof cached};
    assert_int_equal(split_prefix(&t, t.len, &out, &c), -1);
    free(c);
    /* A compressed message (tag 80). */
    const unsigned char z[] = {131, 80, 0, 0, 0, 1, 0x78, 0x9c};
    pk = make_packet(112, &ctl, NULL, z, sizeof z);
    assert_int_equal(split_prefix(&pk, pk.len, &out, &c), -1);
    free(c);
    free(pk.p);
    /* Smallest valid packets: control [] only, and control [] with message []. */
    const unsigned char nil2[] = {112, 131, 106, 131, 106};
    t.p = (unsigned char *)nil2;
    t.len = 3;
    assert_int_equal(split_prefix(&t, 3, &out, &c), 0);
    assert_int_equal(out.ctl_len, 2);
    assert_null(out.msg);
    free(c);
    assert_int_equal(split_prefix(&t, 5, &out, &c), 0);
    assert_int_equal(out.ctl_len, 2);
    assert_int_equal(out.msg_len, 2);
    assert_ptr_equal(out.msg, (const char *)c + 3);
    free(c);
    assert_int_equal(split_prefix(&t, 4, &out, &c), -1);
    free(c);
    ei_x_free(&ctl);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peek_two_byte_prefix),
        cmocka_unit_test(test_peek_four_byte_prefix),
        cmocka_unit_test(test_peek_too_big),
        cmocka_unit_test(test_peek_tick),
        cmocka_unit_test(test_peek_stream),
        cmocka_unit_test(test_split_control_only),
        cmocka_unit_test(test_split_control_and_message),
        cmocka_unit_test(test_split_missing_pass_through),
        cmocka_unit_test(test_split_bad_version_byte),
        cmocka_unit_test(test_split_trailing_garbage),
        cmocka_unit_test(test_split_malformed_terms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
