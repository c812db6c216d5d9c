/* Unit tests for dist/handshake.h: byte-exact encoders, parsers that round-trip them and
 * reject truncated or malformed bodies, node-name validation, and the MD5 digest. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "known_bug.h"

#include <stdlib.h>
#include <string.h>

#include "dist/handshake.h"


static uint32_t be16(const unsigned char *p) { return (uint32_t)p[0] << 8 | p[1]; }

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const unsigned char *p) { return (uint64_t)be32(p) << 32 | be32(p + 4); }

/* Exact-size heap copy, so that ASan sees any read past len. */
static unsigned char *dup_exact(const unsigned char *p, size_t len) {
    unsigned char *c = malloc(len > 0 ? len : 1);
    assert_non_null(c);
    if (len > 0)
        memcpy(c, p, len);
    return c;
}

static int parse_name_copy(const unsigned char *body, size_t len, struct sbx_hs_name *out) {
    unsigned char *c = dup_exact(body, len);
    int rc = sbx_hs_parse_name(c, len, out);
    free(c);
    return rc;
}

static int parse_challenge_copy(const unsigned char *body, size_t len,
                                struct sbx_hs_challenge *out) {
    unsigned char *c = dup_exact(body, len);
    int rc = sbx_hs_parse_challenge(c, len, out);
    free(c);
    return rc;
}

static int parse_status_copy(const unsigned char *body, size_t len, char *out, size_t cap) {
    unsigned char *c = dup_exact(body, len);
    int rc = sbx_hs_parse_status(c, len, out, cap);
    free(c);
    return rc;
}

static int name_valid_copy(const char *name, size_t len) {
    char *c = (char *)dup_exact((const unsigned char *)name, len);
    int rc = sbx_node_name_valid(c, len);
    free(c);
    return rc;
}

static const unsigned char DIGEST_A[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0xff};

/* ---- send_name ------------------------------------------------------------------------ */

static void test_name_encode_bytes(void **state) {
    (void)state;
    unsigned char out[64];
    memset(out, 0xee, sizeof out);
    int n = sbx_hs_encode_name(out, sizeof out, 0x0102030405060708ull, 0xa1b2c3d4, "a@b");
    assert_int_equal(n, 2 + 15 + 3);
    const unsigned char want[] = {0,    18,   'N',  1,    2,   3,   4,  5, 6, 7, 8,
                                  0xa1, 0xb2, 0xc3, 0xd4, 0,   3,   'a', '@', 'b'};
    assert_memory_equal(out, want, sizeof want);
    assert_true(be64(out + 3) == 0x0102030405060708ull);
    assert_int_equal(be32(out + 11), 0xa1b2c3d4);
    assert_int_equal(out[sizeof want], 0xee); /* nothing past the message */
}

static void test_name_round_trip(void **state) {
    (void)state;
    const char *names[] = {"sandboxd@localhost", "a@b", "x_y-z@host.example.com"};
    const uint64_t flags[] = {0, 0xffffffffffffffffull, 0x000000010000d7bdull};
    for (size_t i = 0; i < 3; i++) {
        unsigned char out[300];
        int n = sbx_hs_encode_name(out, sizeof out, flags[i], (uint32_t)(i * 0x11111111u),
                                   names[i]);
        assert_int_equal(n, (int)(17 + strlen(names[i])));
        assert_int_equal(be16(out), (uint32_t)n - 2);
        struct sbx_hs_name got;
        memset(&got, 0x55, sizeof got);
        assert_int_equal(parse_name_copy(out + 2, (size_t)n - 2, &got), 0);
        assert_true(got.flags == flags[i]);
        assert_int_equal(got.creation, (uint32_t)(i * 0x11111111u));
        assert_string_equal(got.name, names[i]);
    }
}

static void test_name_longest(void **state) {
    (void)state;
    char name[SBX_NODE_NAME_MAX + 2];
    memset(name, 'n', sizeof name);
    name[100] = '@';
    name[SBX_NODE_NAME_MAX] = '\0'; /* 255 bytes */
    unsigned char out[400];
    int n = sbx_hs_encode_name(out, sizeof out, 1, 2, name);
    assert_int_equal(n, 17 + SBX_NODE_NAME_MAX);
    struct sbx_hs_name got;
    assert_int_equal(parse_name_copy(out + 2, (size_t)n - 2, &got), 0);
    assert_int_equal(strlen(got.name), SBX_NODE_NAME_MAX);
    assert_string_equal(got.name, name);

    /* 256 bytes: encodable (the encoder does not judge names) but refused by the parser. */
    name[SBX_NODE_NAME_MAX] = 'n';
    name[SBX_NODE_NAME_MAX + 1] = '\0';
    n = sbx_hs_encode_name(out, sizeof out, 1, 2, name);
    assert_int_equal(n, 17 + SBX_NODE_NAME_MAX + 1);
    assert_int_equal(parse_name_copy(out + 2, (size_t)n - 2, &got), -1);
}

static void test_name_truncated_and_malformed(void **state) {
    (void)state;
    unsigned char out[64];
    int n = sbx_hs_encode_name(out, sizeof out, 7, 8, "node@host");
    size_t len = (size_t)n - 2;
    struct sbx_hs_name got;
    for (size_t k = 0; k < len; k++)
        assert_int_equal(parse_name_copy(out + 2, k, &got), -1);
    assert_int_equal(parse_name_copy(out + 2, len, &got), 0);

    /* Trailing bytes after the name are ignored (documented in handshake.c). */
    unsigned char more[80];
    memcpy(more, out + 2, len);
    memcpy(more + len, "junk", 4);
    assert_int_equal(parse_name_copy(more, len + 4, &got), 0);
    assert_string_equal(got.name, "node@host");

    /* Wrong tag, name length past the end, empty name, invalid name. */
    memcpy(more, out + 2, len);
    more[0] = 'n';
    assert_int_equal(parse_name_copy(more, len, &got), -1);
    memcpy(more, out + 2, len);
    more[14] = (unsigned char)(more[14] + 1);
    assert_int_equal(parse_name_copy(more, len, &got), -1);
    memcpy(more, out + 2, len);
    more[13] = 0xff;
    assert_int_equal(parse_name_copy(more, len, &got), -1);
    memcpy(more, out + 2, len);
    more[13] = 0;
    more[14] = 0;
    assert_int_equal(parse_name_copy(more, 15, &got), -1);
    memcpy(more, out + 2, len);
    more[15 + 4] = 'X'; /* "nodeXhost": no '@' */
    assert_int_equal(parse_name_copy(more, len, &got), -1);
    memcpy(more, out + 2, len);
    more[15 + 1] = '\0'; /* embedded NUL */
    assert_int_equal(parse_name_copy(more, len, &got), -1);
}

static void test_name_encode_cap(void **state) {
    (void)state;
    unsigned char out[64];
    const int need = 17 + 3;
    for (int cap = 0; cap < need; cap++) {
        memset(out, 0xee, sizeof out);
        assert_int_equal(sbx_hs_encode_name(out, (size_t)cap, 1, 2, "a@b"), -1);
        for (size_t i = (size_t)cap; i < sizeof out; i++)
            assert_int_equal(out[i], 0xee);
    }
    assert_int_equal(sbx_hs_encode_name(out, (size_t)need, 1, 2, "a@b"), need);

    /* A body that would not fit the 2-byte length. */
    size_t big = 0xffff;
    char *name = malloc(big + 1);
    unsigned char *buf = malloc(big + 64);
    assert_non_null(name);
    assert_non_null(buf);
    memset(name, 'a', big);
    name[big] = '\0';
    assert_int_equal(sbx_hs_encode_name(buf, big + 64, 1, 2, name), -1);
    name[0xffff - 15] = '\0'; /* body exactly 0xffff */
    assert_int_equal(sbx_hs_encode_name(buf, big + 64, 1, 2, name), 0xffff + 2);
    assert_int_equal(be16(buf), 0xffff);
    free(name);
    free(buf);
}

/* ---- send_challenge ------------------------------------------------------------------- */

static void test_challenge_encode_bytes(void **state) {
    (void)state;
    unsigned char out[64];
    memset(out, 0xee, sizeof out);
    int n = sbx_hs_encode_challenge(out, sizeof out, 0x8000000000000001ull, 0xcafebabe,
                                    0x00000102, "p@q");
    assert_int_equal(n, 2 + 19 + 3);
    const unsigned char want[] = {0,   22,   'N',  0x80, 0, 0, 0, 0, 0, 0, 1, 0xca, 0xfe,
                                  0xba, 0xbe, 0,   0,    1, 2, 0, 3, 'p', '@', 'q'};
    assert_memory_equal(out, want, sizeof want);
    assert_int_equal(out[sizeof want], 0xee);
}

static void test_challenge_round_trip_and_truncation(void **state) {
    (void)state;
    unsigned char out[300];
    const uint32_t challenges[] = {0, 1, 0xffffffffu, 12345};
    for (size_t i = 0; i < 4; i++) {
        int n = sbx_hs_encode_challenge(out, sizeof out, 0x3ffffffull + i, challenges[i],
                                        0xfedcba98u, "peer@some.host");
        assert_int_equal(n, 2 + 19 + 14);
        struct sbx_hs_challenge got;
        memset(&got, 0, sizeof got);
        assert_int_equal(parse_challenge_copy(out + 2, (size_t)n - 2, &got), 0);
        assert_true(got.flags == 0x3ffffffull + i);
        assert_int_equal(got.challenge, challenges[i]);
        assert_int_equal(got.creation, 0xfedcba98u);
        assert_string_equal(got.name, "peer@some.host");
        for (size_t k = 0; k < (size_t)n - 2; k++)
            assert_int_equal(parse_challenge_copy(out + 2, k, &got), -1);
    }
    /* A send_name body is not a challenge (too short for this name) and vice versa the
     * challenge body's name length lands elsewhere. */
    int n = sbx_hs_encode_name(out, sizeof out, 0, 0, "a@b");
    struct sbx_hs_challenge ch;
    assert_int_equal(parse_challenge_copy(out + 2, (size_t)n - 2, &ch), -1);
    /* Wrong tag. */
    n = sbx_hs_encode_challenge(out, sizeof out, 0, 0, 0, "a@b");
    out[2] = 'M';
    assert_int_equal(parse_challenge_copy(out + 2, (size_t)n - 2, &ch), -1);
    /* Cap too small writes nothing. */
    memset(out, 0xee, sizeof out);
    assert_int_equal(sbx_hs_encode_challenge(out, 23, 0, 0, 0, "a@b"), -1);
    assert_int_equal(out[0], 0xee);
    assert_int_equal(sbx_hs_encode_challenge(out, 24, 0, 0, 0, "a@b"), 24);
}

/* ---- status, reply, ack ------------------------------------------------------------------ */

static void test_status_round_trip(void **state) {
    (void)state;
    const char *st[] = {"ok", "ok_simultaneous", "nok", "not_allowed", "alive", "named:"};
    for (size_t i = 0; i < sizeof st / sizeof st[0]; i++) {
        unsigned char out[64];
        size_t sl = strlen(st[i]);
        int n = sbx_hs_encode_status(out, sizeof out, st[i]);
        assert_int_equal(n, (int)(sl + 3));
        assert_int_equal(be16(out), sl + 1);
        assert_int_equal(out[2], 's');
        assert_memory_equal(out + 3, st[i], sl);
        char got[64];
        assert_int_equal(parse_status_copy(out + 2, sl + 1, got, sizeof got), 0);
        assert_string_equal(got, st[i]);
        /* cap must hold the text and its NUL: exactly sl + 1 works, sl does not. */
        memset(got, 'Z', sizeof got);
        assert_int_equal(parse_status_copy(out + 2, sl + 1, got, sl + 1), 0);
        assert_string_equal(got, st[i]);
        memset(got, 'Z', sizeof got);
        assert_int_equal(parse_status_copy(out + 2, sl + 1, got, sl), -1);
        assert_int_equal(got[sl], 'Z'); /* nothing written at or past cap */
        /* Encoder cap. */
        assert_int_equal(sbx_hs_encode_status(out, sl + 2, st[i]), -1);
        assert_int_equal(sbx_hs_encode_status(out, sl + 3, st[i]), (int)(sl + 3));
    }
}

static void test_status_malformed(void **state) {
    (void)state;
    char got[32];
    const unsigned char empty[] = {'s'};
    assert_int_equal(parse_status_copy(empty, 1, got, sizeof got), -1);
    assert_int_equal(parse_status_copy(empty, 0, got, sizeof got), -1);
    const unsigned char wrong[] = {'S', 'o', 'k'};
    assert_int_equal(parse_status_copy(wrong, 3, got, sizeof got), -1);
    const unsigned char nul[] = {'s', 'o', '\0', 'k'};
    assert_int_equal(parse_status_copy(nul, 4, got, sizeof got), -1);
    const unsigned char ok[] = {'s', 'o', 'k'};
    assert_int_equal(parse_status_copy(ok, 3, got, 0), -1);
}

static void test_reply_round_trip(void **state) {
    (void)state;
    unsigned char out[32];
    memset(out, 0xee, sizeof out);
    int n = sbx_hs_encode_reply(out, sizeof out, 0x01020304, DIGEST_A);
    assert_int_equal(n, 23);
    const unsigned char head[] = {0, 21, 'r', 1, 2, 3, 4};
    assert_memory_equal(out, head, sizeof head);
    assert_memory_equal(out + 7, DIGEST_A, 16);
    assert_int_equal(out[23], 0xee);

    uint32_t ch = 0;
    unsigned char dg[16];
    unsigned char *body = dup_exact(out + 2, 21);
    assert_int_equal(sbx_hs_parse_reply(body, 21, &ch, dg), 0);
    assert_int_equal(ch, 0x01020304);
    assert_memory_equal(dg, DIGEST_A, 16);
    for (size_t k = 0; k < 21; k++)
        assert_int_equal(sbx_hs_parse_reply(body, k, &ch, dg), -1);
    body[0] = 'a';
    assert_int_equal(sbx_hs_parse_reply(body, 21, &ch, dg), -1);
    free(body);
    /* One byte too many is rejected too: the reply has a fixed size. */
    unsigned char longer[22];
    memcpy(longer, out + 2, 21);
    longer[21] = 0;
    body = dup_exact(longer, 22);
    assert_int_equal(sbx_hs_parse_reply(body, 22, &ch, dg), -1);
    free(body);
    assert_int_equal(sbx_hs_encode_reply(out, 22, 1, DIGEST_A), -1);
}

static void test_ack_round_trip(void **state) {
    (void)state;
    unsigned char out[32];
    memset(out, 0xee, sizeof out);
    int n = sbx_hs_encode_ack(out, sizeof out, DIGEST_A);
    assert_int_equal(n, 19);
    assert_int_equal(out[0], 0);
    assert_int_equal(out[1], 17);
    assert_int_equal(out[2], 'a');
    assert_memory_equal(out + 3, DIGEST_A, 16);
    assert_int_equal(out[19], 0xee);

    unsigned char dg[16];
    unsigned char *body = dup_exact(out + 2, 17);
    assert_int_equal(sbx_hs_parse_ack(body, 17, dg), 0);
    assert_memory_equal(dg, DIGEST_A, 16);
    for (size_t k = 0; k < 17; k++)
        assert_int_equal(sbx_hs_parse_ack(body, k, dg), -1);
    body[0] = 'r';
    assert_int_equal(sbx_hs_parse_ack(body, 17, dg), -1);
    free(body);
    unsigned char longer[18] = {'a'};
    body = dup_exact(longer, 18);
    assert_int_equal(sbx_hs_parse_ack(body, 18, dg), -1);
    free(body);
    assert_int_equal(sbx_hs_encode_ack(out, 18, DIGEST_A), -1);
}

/* ---- node names ------------------------------------------------------------------------ */

static void test_node_name_valid(void **state) {
    (void)state;
    assert_int_equal(name_valid_copy("a@b", 3), 1);
    assert_int_equal(name_valid_copy("sandboxd@localhost", 18), 1);
    assert_int_equal(name_valid_copy("nohost", 6), 0);
    assert_int_equal(name_valid_copy("two@at@x", 8), 0);
    assert_int_equal(name_valid_copy("@host", 5), 0);
    assert_int_equal(name_valid_copy("alive@", 6), 0);
    assert_int_equal(name_valid_copy("@", 1), 0);
    assert_int_equal(name_valid_copy("", 0), 0);
    assert_int_equal(name_valid_copy("a\0b@c", 5), 0);
    assert_int_equal(name_valid_copy("a@b\0", 4), 0);
    /* Only len bytes count: "a@b" cut to 2 bytes is "a@". */
    assert_int_equal(name_valid_copy("a@b", 2), 0);

    char name[300];
    memset(name, 'x', sizeof name);
    name[10] = '@';
    assert_int_equal(name_valid_copy(name, 255), 1);
    assert_int_equal(name_valid_copy(name, 256), 0);
    assert_int_equal(name_valid_copy(name, 300), 0);
    name[254] = '@';
    assert_int_equal(name_valid_copy(name, 255), 0); /* two '@' */
}

/* ---- digest ------------------------------------------------------------------------------ */

static void hex16(const char *hex, unsigned char out[16]) {
    for (int i = 0; i < 16; i++) {
        unsigned v = 0;
        for (int j = 0; j < 2; j++) {
            char c = hex[2 * i + j];
            v = v * 16 + (unsigned)(c <= '9' ? c - '0' : c - 'a' + 10);
        }
        out[i] = (unsigned char)v;
    }
}

static void test_digest_known_vectors(void **state) {
    (void)state;
    /* Computed independently: printf %s secret12345 | md5sum, etc. */
    struct {
        const char *cookie;
        uint32_t challenge;
        const char *md5;
    } v[] = {
        {"secret", 12345, "d4047d3e56e6d6d63f7d16b85cd2fa88"},
        {"secret", 0, "175ec77a7f63082590987d0d8b051aff"},
        {"secret", 4294967295u, "5dfd181e69aa587cc812eb333e6536b6"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        unsigned char want[16], got[16];
        hex16(v[i].md5, want);
        memset(got, 0, sizeof got);
        assert_int_equal(sbx_hs_digest(v[i].cookie, v[i].challenge, got), 0);
        assert_memory_equal(got, want, 16);
        assert_int_equal(sbx_hs_digest_equal(got, want), 1);
    }
    /* Different cookies or challenges give different digests. */
    unsigned char a[16], b[16];
    assert_int_equal(sbx_hs_digest("secret", 12345, a), 0);
    assert_int_equal(sbx_hs_digest("secreT", 12345, b), 0);
    assert_int_equal(sbx_hs_digest_equal(a, b), 0);
    assert_int_equal(sbx_hs_digest("secret", 12346, b), 0);
    assert_int_equal(sbx_hs_digest_equal(a, b), 0);
}

static void test_digest_equal(void **state) {
    (void)state;
    unsigned char a[16], b[16];
    memcpy(a, DIGEST_A, 16);
    memcpy(b, DIGEST_A, 16);
    assert_int_equal(sbx_hs_digest_equal(a, b), 1);
    for (int i = 0; i < 16; i++)
        for (int bit = 0; bit < 8; bit++) {
            memcpy(b, a, 16);
            b[i] ^= (unsigned char)(1u << bit);
            assert_int_equal(sbx_hs_digest_equal(a, b), 0);
            assert_int_equal(sbx_hs_digest_equal(b, a), 0);
        }
    memset(a, 0, 16);
    memset(b, 0xff, 16);
    assert_int_equal(sbx_hs_digest_equal(a, b), 0);
}

/* ---- known bugs ---------------------------------------------------------------------------- */

/* A status of 65535 bytes makes a body of 65536, which the 2-byte length cannot carry;
 * the encoder writes length 0 instead of failing. (Only constant statuses are sent
 * today, so this is latent.) */
static void test_bug_status_length_overflow(void **state) {
    (void)state;
    size_t sl = 0xffff;
    char *st = malloc(sl + 1);
    unsigned char *out = malloc(sl + 16);
    assert_non_null(st);
    assert_non_null(out);
    memset(st, 'o', sl);
    st[sl] = '\0';
    int n = sbx_hs_encode_status(out, sl + 16, st);
    int behaves = n == -1 || (n >= 2 && be16(out) == (uint32_t)n - 2);
    free(st);
    free(out);
    known_bug(behaves, "handshake.c sbx_hs_encode_status: status >= 65535 bytes gets a "
                       "wrapped 2-byte length instead of -1");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_encode_bytes),
        cmocka_unit_test(test_name_round_trip),
        cmocka_unit_test(test_name_longest),
        cmocka_unit_test(test_name_truncated_and_malformed),
        cmocka_unit_test(test_name_encode_cap),
        cmocka_unit_test(test_challenge_encode_bytes),
        cmocka_unit_test(test_challenge_round_trip_and_truncation),
        cmocka_unit_test(test_status_round_trip),
        cmocka_unit_test(test_status_malformed),
        cmocka_unit_test(test_reply_round_trip),
        cmocka_unit_test(test_ack_round_trip),
        cmocka_unit_test(test_node_name_valid),
        cmocka_unit_test(test_digest_known_vectors),
        cmocka_unit_test(test_digest_equal),
        cmocka_unit_test(test_bug_status_length_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
