/* Unit tests for vmproto/agent_proto.h: every message through its encoder and the incremental
 * decoder (whole, byte by byte, several frames per read), the decoder's bounds on the len
 * field, and the parsers' refusal of truncated, oversized or trailing payloads. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "vmproto/agent_proto.h"

static uint8_t decbuf[AGENT_MAX_PAYLOAD];

/* Decodes exactly one frame from buf[0..len) fed in steps of `step` bytes; the frame's
 * payload is in decbuf. Fails the test on anything else. */
static struct agent_frame decode_one(const uint8_t *buf, size_t len, size_t step) {
    struct agent_dec d;
    struct agent_frame f;
    int frames = 0;
    size_t pos = 0;
    memset(&f, 0, sizeof f);
    agent_dec_init(&d, decbuf, sizeof decbuf);
    while (pos < len) {
        size_t n = len - pos < step ? len - pos : step;
        size_t used = 0;
        enum agent_dec_status st = agent_dec_feed(&d, buf + pos, n, &used, &f);
        assert_int_not_equal(st, AGENT_DEC_ERROR);
        assert_true(used <= n);
        pos += used;
        if (st == AGENT_DEC_FRAME) {
            frames++;
            assert_int_equal(pos, len);
        } else {
            assert_int_equal(used, n);
        }
    }
    assert_int_equal(frames, 1);
    return f;
}

static int str_eq(struct agent_str s, const char *c) {
    return s.len == strlen(c) && memcmp(s.ptr, c, s.len) == 0;
}

static void test_hello_roundtrip(void **state) {
    (void)state;
    uint8_t buf[256];
    size_t n = agent_enc_hello_req(buf, sizeof buf, 7, 1, 3);
    assert_int_equal(n, AGENT_HDR_LEN + 8);
    /* The exact bytes: len 13, type 1, id 7, min 1, max 3. */
    const uint8_t want[] = {0, 0, 0, 13, 1, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 3};
    assert_memory_equal(buf, want, sizeof want);
    for (size_t step = 1; step <= n; step++) {
        struct agent_frame f = decode_one(buf, n, step);
        struct agent_hello_req h;
        assert_int_equal(f.type, AGENT_HELLO);
        assert_int_equal(f.id, 7);
        assert_int_equal(agent_parse_hello_req(&f, &h), 0);
        assert_int_equal(h.min_version, 1);
        assert_int_equal(h.max_version, 3);
    }
    struct agent_hello_resp r = {1, {(const uint8_t *)"6.1.0-28-cloud-amd64", 20},
                                 {(const uint8_t *)"0.1", 3}, 0x0102030405060708ull};
    n = agent_enc_hello_resp(buf, sizeof buf, 7, &r);
    assert_true(n > 0);
    struct agent_frame f = decode_one(buf, n, 3);
    struct agent_hello_resp back;
    assert_int_equal(agent_parse_hello_resp(&f, &back), 0);
    assert_int_equal(back.version, 1);
    assert_true(str_eq(back.kernel_release, "6.1.0-28-cloud-amd64"));
    assert_true(str_eq(back.agent_version, "0.1"));
    assert_true(back.boot_ms == 0x0102030405060708ull);
    /* A hello request is not a hello answer, and the other way round. */
    assert_int_equal(agent_parse_hello_req(&f, &(struct agent_hello_req){0, 0}), -1);
}

static void test_exec_roundtrip(void **state) {
    (void)state;
    static uint8_t buf[4096];
    const char *argv[] = {"/bin/sh", "-c", "echo hi; exit 3"};
    const char *env[] = {"A=1", "PATH=/bin"};
    size_t n = agent_enc_exec(buf, sizeof buf, 0, AGENT_EXEC_MAIN | AGENT_EXEC_STDIN, 1500,
                              argv, 3, env, 2, "/tmp");
    assert_true(n > 0);
    struct agent_frame f = decode_one(buf, n, 1);
    static struct agent_exec_req e;
    assert_int_equal(f.type, AGENT_EXEC);
    assert_int_equal(agent_parse_exec(&f, &e), 0);
    assert_int_equal(e.flags, AGENT_EXEC_MAIN | AGENT_EXEC_STDIN);
    assert_int_equal(e.timeout_ms, 1500);
    assert_int_equal(e.argc, 3);
    assert_true(str_eq(e.argv[2], "echo hi; exit 3"));
    assert_int_equal(e.envc, 2);
    assert_true(str_eq(e.env[1], "PATH=/bin"));
    assert_true(str_eq(e.cwd, "/tmp"));

    /* MAIN with a nonzero id, unknown flags, too many arguments: refused. */
    n = agent_enc_exec(buf, sizeof buf, 5, AGENT_EXEC_MAIN, 0, argv, 1, NULL, 0, NULL);
    f = decode_one(buf, n, n);
    assert_int_equal(agent_parse_exec(&f, &e), -1);
    n = agent_enc_exec(buf, sizeof buf, 5, 0x80, 0, argv, 1, NULL, 0, NULL);
    f = decode_one(buf, n, n);
    assert_int_equal(agent_parse_exec(&f, &e), -1);
    n = agent_enc_exec(buf, sizeof buf, 5, 0, 0, argv, 1, NULL, 0, NULL);
    f = decode_one(buf, n, n);
    assert_int_equal(agent_parse_exec(&f, &e), 0);
    assert_true(str_eq(e.cwd, ""));
    assert_int_equal(agent_enc_exec(buf, sizeof buf, 5, 0, 0, argv, AGENT_MAX_ARGS + 1, NULL, 0,
                                    NULL), 0);
    /* A hand-made argc over the bound is refused before any string is read. */
    struct agent_wr w;
    agent_wr_begin(&w, buf, sizeof buf, AGENT_EXEC, 9);
    agent_wr_u32(&w, 0);
    agent_wr_u32(&w, 0);
    agent_wr_u32(&w, 0xffffffffu);
    n = agent_wr_end(&w);
    f = decode_one(buf, n, n);
    assert_int_equal(agent_parse_exec(&f, &e), -1);
}

static void test_small_messages(void **state) {
    (void)state;
    uint8_t buf[256];
    struct agent_frame f;
    uint32_t pid = 0;
    size_t n = agent_enc_started(buf, sizeof buf, 4, 1234);
    f = decode_one(buf, n, 2);
    assert_int_equal(agent_parse_started(&f, &pid), 0);
    assert_int_equal(pid, 1234);

    struct agent_exit_msg x = {-1, 9, 1}, xb;
    n = agent_enc_exit(buf, sizeof buf, 4, &x);
    f = decode_one(buf, n, n);
    assert_int_equal(agent_parse_exit(&f, &xb), 0);
    assert_int_equal(xb.exit_code, -1);
    assert_int_equal(xb.signal, 9);
    assert_int_equal(xb.timed_out, 1);

    uint8_t stream = 0;
    struct agent_str s;
    n = agent_enc_out(buf, sizeof buf, 4, 2, "err\n", 4);
    f = decode_one(buf, n, n);
    assert_int_equal(agent_parse_out(&f, &stream, &s), 0);
    assert_int_equal(stream, 2);
    assert_true(str_eq(s, "err\n"));
    n = agent_enc_out(buf, sizeof buf, 4, 3, "x", 1);
    f = decode_one(buf, n, n);
    assert_int_equal(agent_parse_out(&f, &stream, &s), -1);

    n = agent_enc_bytes(buf, sizeof buf, AGENT_STDIN, 4, "", 0);
    f = decode_one(buf, n, n);
    assert_int_equal(f.type, AGENT_STDIN);
    assert_int_equal(agent_parse_bytes(&f, &s), 0);
    assert_int_equal(s.len, 0);

    const uint8_t empties[] = {AGENT_KILL, AGENT_END, AGENT_OK, AGENT_PS, AGENT_METRICS,
                               AGENT_SHUTDOWN};
    for (size_t i = 0; i < sizeof empties; i++) {
        n = agent_enc_empty(buf, sizeof buf, empties[i], 11);
        assert_int_equal(n, AGENT_HDR_LEN);
        f = decode_one(buf, n, 1);
        assert_int_equal(f.type, empties[i]);
        assert_int_equal(f.id, 11);
        assert_int_equal(agent_parse_empty(&f), 0);
    }

    struct agent_write_req wq;
    n = agent_enc_write(buf, sizeof buf, 4, "/tmp/f", 0644);
    f = decode_one(buf, n, n);
    assert_int_equal(agent_parse_write(&f, &wq), 0);
    assert_true(str_eq(wq.path, "/tmp/f"));
    assert_int_equal(wq.mode, 0644);
    assert_int_equal(agent_parse_empty(&f), -1);

    n = agent_enc_read(buf, sizeof buf, 4, "/etc/hostname");
    f = decode_one(buf, n, n);
    assert_int_equal(agent_parse_read(&f, &s), 0);
    assert_true(str_eq(s, "/etc/hostname"));

    struct agent_err_msg em;
    n = agent_enc_err(buf, sizeof buf, 4, 2, "No such file");
    f = decode_one(buf, n, n);
    assert_int_equal(agent_parse_err(&f, &em), 0);
    assert_int_equal(em.err, 2);
    assert_true(str_eq(em.text, "No such file"));

    struct agent_metrics m = {1ull << 40, 5, 6, 7, 8, 9, 10, 11, 12, 13}, mb;
    n = agent_enc_metrics(buf, sizeof buf, 4, &m);
    f = decode_one(buf, n, n);
    assert_int_equal(agent_parse_metrics(&f, &mb), 0);
    assert_memory_equal(&m, &mb, sizeof m);
    assert_string_equal(agent_type_name(AGENT_METRICS_R), "metrics_r");
    assert_string_equal(agent_type_name(0), "unknown");
    assert_string_equal(agent_type_name(200), "unknown");
}

static void test_chunk_bounds(void **state) {
    (void)state;
    static uint8_t data[AGENT_CHUNK + 1];
    static uint8_t buf[AGENT_CHUNK + 64];
    memset(data, 'z', sizeof data);
    size_t n = agent_enc_bytes(buf, sizeof buf, AGENT_DATA, 3, data, AGENT_CHUNK);
    assert_int_equal(n, AGENT_HDR_LEN + 4 + AGENT_CHUNK);
    struct agent_frame f = decode_one(buf, n, 4096);
    struct agent_str s;
    assert_int_equal(agent_parse_bytes(&f, &s), 0);
    assert_int_equal(s.len, AGENT_CHUNK);
    assert_int_equal(agent_enc_bytes(buf, sizeof buf, AGENT_DATA, 3, data, AGENT_CHUNK + 1), 0);
    assert_int_equal(agent_enc_out(buf, sizeof buf, 3, 1, data, AGENT_CHUNK + 1), 0);
    /* A buffer too small for the frame: 0, never a partial frame. */
    assert_int_equal(agent_enc_bytes(buf, 100, AGENT_DATA, 3, data, 200), 0);
    assert_int_equal(agent_enc_empty(buf, 8, AGENT_OK, 3), 0);
}

static void test_many_frames_one_read(void **state) {
    (void)state;
    uint8_t buf[512];
    size_t n = 0;
    for (uint32_t i = 0; i < 10; i++)
        n += agent_enc_started(buf + n, sizeof buf - n, i, 100 + i);
    n += agent_enc_empty(buf + n, sizeof buf - n, AGENT_OK, 99);
    struct agent_dec d;
    agent_dec_init(&d, decbuf, sizeof decbuf);
    size_t pos = 0;
    uint32_t seen = 0;
    while (pos < n) {
        struct agent_frame f;
        size_t used = 0;
        enum agent_dec_status st = agent_dec_feed(&d, buf + pos, n - pos, &used, &f);
        pos += used;
        assert_int_equal(st, AGENT_DEC_FRAME);
        if (seen < 10) {
            uint32_t pid;
            assert_int_equal(f.type, AGENT_STARTED);
            assert_int_equal(f.id, seen);
            assert_int_equal(agent_parse_started(&f, &pid), 0);
            assert_int_equal(pid, 100 + seen);
        } else {
            assert_int_equal(f.type, AGENT_OK);
            assert_int_equal(f.id, 99);
        }
        seen++;
    }
    assert_int_equal(seen, 11);
}

/* Feeds raw bytes; returns the status of the first non-NEED answer (or NEED). */
static enum agent_dec_status feed_raw(struct agent_dec *d, const uint8_t *b, size_t n,
                                      size_t *used) {
    struct agent_frame f;
    return agent_dec_feed(d, b, n, used, &f);
}

static void test_decoder_rejects_bad_lengths(void **state) {
    (void)state;
    struct agent_dec d;
    size_t used;
    uint8_t small[64];
    agent_dec_init(&d, small, sizeof small);
    /* len 4: shorter than type + id. The error is seen after the 4 length bytes. */
    const uint8_t short_len[] = {0, 0, 0, 4, 1, 0, 0, 0, 0};
    assert_int_equal(feed_raw(&d, short_len, sizeof short_len, &used), AGENT_DEC_ERROR);
    assert_int_equal(used, 4);
    /* Sticky until reset. */
    const uint8_t ok[] = {0, 0, 0, 5, AGENT_OK, 0, 0, 0, 1};
    assert_int_equal(feed_raw(&d, ok, sizeof ok, &used), AGENT_DEC_ERROR);
    assert_int_equal(used, 0);
    agent_dec_reset(&d);
    assert_int_equal(feed_raw(&d, ok, sizeof ok, &used), AGENT_DEC_FRAME);
    assert_int_equal(used, sizeof ok);
    /* Over the caller's buffer (64 bytes of payload max here), and over the protocol. */
    const uint8_t over_cap[] = {0, 0, 0, 5 + 65};
    assert_int_equal(feed_raw(&d, over_cap, sizeof over_cap, &used), AGENT_DEC_ERROR);
    agent_dec_reset(&d);
    const uint8_t cap_ok[] = {0, 0, 0, 5 + 64};
    assert_int_equal(feed_raw(&d, cap_ok, sizeof cap_ok, &used), AGENT_DEC_NEED);
    agent_dec_reset(&d);
    const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 1, 2, 3};
    agent_dec_init(&d, decbuf, sizeof decbuf);
    assert_int_equal(feed_raw(&d, huge, sizeof huge, &used), AGENT_DEC_ERROR);
    assert_int_equal(used, 4);
    agent_dec_reset(&d);
    uint8_t max1[4];
    max1[0] = (uint8_t)((AGENT_MAX_FRAME_LEN + 1) >> 24);
    max1[1] = (uint8_t)((AGENT_MAX_FRAME_LEN + 1) >> 16);
    max1[2] = (uint8_t)((AGENT_MAX_FRAME_LEN + 1) >> 8);
    max1[3] = (uint8_t)(AGENT_MAX_FRAME_LEN + 1);
    assert_int_equal(feed_raw(&d, max1, 4, &used), AGENT_DEC_ERROR);
    agent_dec_reset(&d);
    /* Exactly the largest frame is accepted. */
    max1[3] = (uint8_t)(max1[3] - 1);
    assert_int_equal(feed_raw(&d, max1, 4, &used), AGENT_DEC_NEED);
    /* A length byte by byte: the error shows at the fourth. */
    agent_dec_reset(&d);
    for (int i = 0; i < 3; i++)
        assert_int_equal(feed_raw(&d, huge + i, 1, &used), AGENT_DEC_NEED);
    assert_int_equal(feed_raw(&d, huge + 3, 1, &used), AGENT_DEC_ERROR);
}

static void test_reader_bounds(void **state) {
    (void)state;
    /* A string whose length runs past the payload. */
    const uint8_t p1[] = {0, 0, 0, 200, 'a', 'b'};
    struct agent_rd r;
    agent_rd_init(&r, p1, sizeof p1);
    struct agent_str s = agent_rd_str(&r);
    assert_int_equal(s.len, 0);
    assert_int_equal(agent_rd_done(&r), -1);
    /* Huge length near UINT32_MAX does not wrap. */
    const uint8_t p2[] = {0xff, 0xff, 0xff, 0xfe, 'a'};
    agent_rd_init(&r, p2, sizeof p2);
    s = agent_rd_str(&r);
    assert_int_equal(s.len, 0);
    assert_int_equal(r.err, 1);
    /* Trailing bytes are malformed. */
    struct agent_frame f = {AGENT_STARTED, 1, (const uint8_t *)"\0\0\0\1\0", 5};
    uint32_t pid;
    assert_int_equal(agent_parse_started(&f, &pid), -1);
    f.payload_len = 4;
    assert_int_equal(agent_parse_started(&f, &pid), 0);
    assert_int_equal(pid, 1);
    f.payload_len = 3;
    assert_int_equal(agent_parse_started(&f, &pid), -1);
    /* Every truncation of a valid exec payload is refused. */
    static uint8_t buf[1024];
    const char *argv[] = {"cat"};
    const char *env[] = {"X=y"};
    size_t n = agent_enc_exec(buf, sizeof buf, 2, AGENT_EXEC_STDIN, 0, argv, 1, env, 1, "/");
    static struct agent_exec_req e;
    for (size_t cut = 0; cut < n - AGENT_HDR_LEN; cut++) {
        struct agent_frame t = {AGENT_EXEC, 2, buf + AGENT_HDR_LEN, (uint32_t)cut};
        assert_int_equal(agent_parse_exec(&t, &e), -1);
    }
}

static void test_ps_list(void **state) {
    (void)state;
    static uint8_t buf[4096];
    struct agent_wr w;
    agent_ps_list_begin(&w, buf, sizeof buf, 8);
    struct agent_ps_entry e = {1, 0, 'S', 4096, {(const uint8_t *)"init", 4},
                               {(const uint8_t *)"/init", 5}};
    assert_int_equal(agent_ps_list_add(&w, &e), 1);
    e.pid = 42;
    e.ppid = 1;
    e.state = 'R';
    e.rss_bytes = 1ull << 33;
    e.name = (struct agent_str){(const uint8_t *)"sh", 2};
    e.cmdline = (struct agent_str){(const uint8_t *)"sh -c x", 7};
    assert_int_equal(agent_ps_list_add(&w, &e), 1);
    size_t before = w.len;
    /* An entry that does not fit leaves the frame as it was. */
    static uint8_t big[5000];
    memset(big, 'q', sizeof big);
    struct agent_ps_entry fat = e;
    fat.cmdline = (struct agent_str){big, sizeof big};
    assert_int_equal(agent_ps_list_add(&w, &fat), 0);
    assert_int_equal(w.len, before);
    size_t n = agent_ps_list_end(&w);
    assert_true(n > 0);
    struct agent_frame f = decode_one(buf, n, 5);
    struct agent_rd r;
    uint32_t count = 0;
    assert_int_equal(agent_ps_begin(&f, &r, &count), 0);
    assert_int_equal(count, 2);
    struct agent_ps_entry got;
    assert_int_equal(agent_ps_next(&r, &got), 0);
    assert_int_equal(got.pid, 1);
    assert_true(str_eq(got.cmdline, "/init"));
    assert_int_equal(agent_ps_next(&r, &got), 0);
    assert_int_equal(got.pid, 42);
    assert_int_equal(got.ppid, 1);
    assert_int_equal(got.state, 'R');
    assert_true(got.rss_bytes == 1ull << 33);
    assert_true(str_eq(got.name, "sh"));
    assert_int_equal(agent_rd_done(&r), 0);
    /* A third entry is not there. */
    assert_int_equal(agent_ps_next(&r, &got), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello_roundtrip),
        cmocka_unit_test(test_exec_roundtrip),
        cmocka_unit_test(test_small_messages),
        cmocka_unit_test(test_chunk_bounds),
        cmocka_unit_test(test_many_frames_one_read),
        cmocka_unit_test(test_decoder_rejects_bad_lengths),
        cmocka_unit_test(test_reader_bounds),
        cmocka_unit_test(test_ps_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
