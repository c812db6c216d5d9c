/* Unit tests for net/demux.h: Docker's 8-byte-header stream frames fed in chunks split
 * at every byte boundary, interleaved stdout/stderr, refused headers (oversize, bad
 * stream byte, padding), empty frames, raw (TTY) mode, stopping from emit, the end of a
 * stream inside a frame, and random frames in random chunks. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/demux.h"

/* ---- helpers ------------------------------------------------------------------------- */

struct frame {
    enum sbx_demux_stream stream;
    char *data;
    size_t len;
};

struct frames {
    struct frame v[512];
    size_t n;
    int stop_after; /* emit returns 1 after this many frames (0: never) */
};

static int collect(void *arg, enum sbx_demux_stream stream, const char *data, size_t len) {
    struct frames *f = arg;
    assert_true(len > 0);
    assert_true(f->n < sizeof f->v / sizeof f->v[0]);
    f->v[f->n].stream = stream;
    f->v[f->n].data = malloc(len);
    assert_non_null(f->v[f->n].data);
    memcpy(f->v[f->n].data, data, len);
    f->v[f->n].len = len;
    f->n++;
    return f->stop_after && f->n >= (size_t)f->stop_after;
}

static void frames_clear(struct frames *f) {
    for (size_t i = 0; i < f->n; i++)
        free(f->v[i].data);
    f->n = 0;
}

/* Appends one frame to buf at *off. */
static void put_frame(unsigned char *buf, size_t *off, unsigned stream, const char *data,
                      size_t len) {
    unsigned char *p = buf + *off;
    p[0] = (unsigned char)stream;
    p[1] = p[2] = p[3] = 0;
    p[4] = (unsigned char)(len >> 24);
    p[5] = (unsigned char)(len >> 16);
    p[6] = (unsigned char)(len >> 8);
    p[7] = (unsigned char)len;
    memcpy(p + 8, data, len);
    *off += 8 + len;
}

/* The frames of the interleaved test stream. */
static const struct {
    unsigned stream;
    const char *data;
} sample[] = {
    {1, "hello\n"}, {2, "oops: something\n"}, {1, "x"}, {1, "a longer stdout line here\n"},
    {2, "e"},       {1, "tail"},
};
#define NSAMPLE (sizeof sample / sizeof sample[0])

static size_t build_sample(unsigned char *buf) {
    size_t off = 0;
    for (size_t i = 0; i < NSAMPLE; i++)
        put_frame(buf, &off, sample[i].stream, sample[i].data, strlen(sample[i].data));
    return off;
}

static void check_sample(const struct frames *f) {
    assert_int_equal(f->n, NSAMPLE);
    for (size_t i = 0; i < NSAMPLE; i++) {
        assert_int_equal(f->v[i].stream, sample[i].stream);
        assert_int_equal(f->v[i].len, strlen(sample[i].data));
        assert_memory_equal(f->v[i].data, sample[i].data, f->v[i].len);
    }
}

/* ---- tests ---------------------------------------------------------------------------- */

static void test_whole_stream_one_chunk(void **state) {
    (void)state;
    unsigned char buf[512];
    size_t n = build_sample(buf);
    struct sbx_demux d;
    struct frames f = {0};

    sbx_demux_init(&d, 0);
    assert_int_equal(sbx_demux_feed(&d, (char *)buf, n, collect, &f, NULL), 0);
    check_sample(&f);
    assert_int_equal(sbx_demux_finish(&d, NULL), 0);
    assert_null(d.buf); /* whole frames in one chunk: nothing copied */
    sbx_demux_release(&d);
    frames_clear(&f);
}

static void test_split_at_every_boundary(void **state) {
    (void)state;
    unsigned char buf[512];
    size_t n = build_sample(buf);

    for (size_t i = 0; i <= n; i++) {
        struct sbx_demux d;
        struct frames f = {0};
        sbx_demux_init(&d, 0);
        assert_int_equal(sbx_demux_feed(&d, (char *)buf, i, collect, &f, NULL), 0);
        assert_int_equal(sbx_demux_feed(&d, (char *)buf + i, n - i, collect, &f, NULL), 0);
        check_sample(&f);
        assert_int_equal(sbx_demux_finish(&d, NULL), 0);
        sbx_demux_release(&d);
        frames_clear(&f);
    }
}

static void test_split_in_three_everywhere(void **state) {
    (void)state;
    unsigned char buf[512];
    size_t n = build_sample(buf);

    for (size_t i = 0; i <= n; i++) {
        for (size_t j = i; j <= n; j++) {
            struct sbx_demux d;
            struct frames f = {0};
            sbx_demux_init(&d, 0);
            assert_int_equal(sbx_demux_feed(&d, (char *)buf, i, collect, &f, NULL), 0);
            assert_int_equal(sbx_demux_feed(&d, (char *)buf + i, j - i, collect, &f, NULL), 0);
            assert_int_equal(sbx_demux_feed(&d, (char *)buf + j, n - j, collect, &f, NULL), 0);
            check_sample(&f);
            assert_int_equal(sbx_demux_finish(&d, NULL), 0);
            sbx_demux_release(&d);
            frames_clear(&f);
        }
    }
}

static void test_byte_by_byte(void **state) {
    (void)state;
    unsigned char buf[512];
    size_t n = build_sample(buf);
    struct sbx_demux d;
    struct frames f = {0};
    const char *why = NULL;

    sbx_demux_init(&d, 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(sbx_demux_feed(&d, (char *)buf + i, 1, collect, &f, NULL), 0);
        /* Mid-stream, finish says whether we are inside a frame. */
        if (i + 1 < n && f.n < NSAMPLE)
            assert_int_equal(sbx_demux_finish(&d, &why), d.hdr_len ? -1 : 0);
    }
    check_sample(&f);
    assert_int_equal(sbx_demux_finish(&d, NULL), 0);
    sbx_demux_release(&d);
    frames_clear(&f);
}

static void test_oversize_frame_refused(void **state) {
    (void)state;
    unsigned char buf[64];
    size_t off = 0;
    struct sbx_demux d;
    struct frames f = {0};
    const char *why = NULL;

    put_frame(buf, &off, 1, "before", 6);
    uint32_t big = (uint32_t)SBX_DEMUX_MAX_FRAME + 1;
    unsigned char hdr[8] = {2, 0, 0, 0, (unsigned char)(big >> 24), (unsigned char)(big >> 16),
                            (unsigned char)(big >> 8), (unsigned char)big};
    memcpy(buf + off, hdr, 8);
    off += 8;
    memcpy(buf + off, "data", 4);
    off += 4;

    sbx_demux_init(&d, 0);
    assert_int_equal(sbx_demux_feed(&d, (char *)buf, off, collect, &f, &why), -1);
    assert_non_null(why);
    assert_non_null(strstr(why, "16 MiB"));
    assert_int_equal(f.n, 1); /* the frame before it still went out */
    assert_memory_equal(f.v[0].data, "before", 6);
    /* Sticky: later feeds and finish fail too, and nothing was allocated for it. */
    assert_null(d.buf);
    assert_int_equal(sbx_demux_feed(&d, (char *)buf, 14, collect, &f, &why), -1);
    assert_int_equal(f.n, 1);
    assert_int_equal(sbx_demux_finish(&d, &why), -1);
    sbx_demux_release(&d);
    frames_clear(&f);

    /* Huge lengths (a raw TTY stream read as frames) are refused from the header alone. */
    unsigned char ff[8] = {1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};
    sbx_demux_init(&d, 0);
    assert_int_equal(sbx_demux_feed(&d, (char *)ff, 8, collect, &f, &why), -1);
    assert_null(d.buf);
    sbx_demux_release(&d);
}

static void test_max_frame_accepted_in_pieces(void **state) {
    (void)state;
    size_t n = SBX_DEMUX_MAX_FRAME;
    char *payload = malloc(n);
    struct sbx_demux d;
    struct frames f = {0};
    unsigned char hdr[8] = {2, 0, 0, 0, (unsigned char)(n >> 24), (unsigned char)(n >> 16),
                            (unsigned char)(n >> 8), (unsigned char)n};

    assert_non_null(payload);
    for (size_t i = 0; i < n; i++)
        payload[i] = (char)(i * 7 + 3);
    sbx_demux_init(&d, 0);
    assert_int_equal(sbx_demux_feed(&d, (char *)hdr, 5, collect, &f, NULL), 0);
    assert_int_equal(sbx_demux_feed(&d, (char *)hdr + 5, 3, collect, &f, NULL), 0);
    for (size_t off = 0; off < n; off += 65536)
        assert_int_equal(sbx_demux_feed(&d, payload + off, n - off < 65536 ? n - off : 65536,
                                        collect, &f, NULL),
                         0);
    assert_int_equal(f.n, 1);
    assert_int_equal(f.v[0].stream, SBX_DEMUX_STDERR);
    assert_int_equal(f.v[0].len, n);
    assert_memory_equal(f.v[0].data, payload, n);
    assert_null(d.buf); /* a big buffer is not kept after its frame */
    assert_int_equal(sbx_demux_finish(&d, NULL), 0);
    sbx_demux_release(&d);
    frames_clear(&f);
    free(payload);
}

static void test_bad_headers_refused(void **state) {
    (void)state;
    const unsigned char bad_stream[8] = {4, 0, 0, 0, 0, 0, 0, 1};
    const unsigned char bad_pad[8] = {1, 0, 1, 0, 0, 0, 0, 1};
    const unsigned char tty_text[8] = {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o'};
    const unsigned char *cases[] = {bad_stream, bad_pad, tty_text};

    for (size_t i = 0; i < 3; i++) {
        struct sbx_demux d;
        struct frames f = {0};
        const char *why = NULL;
        sbx_demux_init(&d, 0);
        assert_int_equal(sbx_demux_feed(&d, (const char *)cases[i], 8, collect, &f, &why), -1);
        assert_non_null(why);
        assert_int_equal(f.n, 0);
        sbx_demux_release(&d);
    }
}

static void test_stdin_and_syserr_streams(void **state) {
    (void)state;
    unsigned char buf[64];
    size_t off = 0;
    struct sbx_demux d;
    struct frames f = {0};

    put_frame(buf, &off, 0, "in", 2);
    put_frame(buf, &off, 3, "engine error", 12);
    sbx_demux_init(&d, 0);
    assert_int_equal(sbx_demux_feed(&d, (char *)buf, off, collect, &f, NULL), 0);
    assert_int_equal(f.n, 2);
    assert_int_equal(f.v[0].stream, SBX_DEMUX_STDIN);
    assert_int_equal(f.v[1].stream, SBX_DEMUX_SYSERR);
    sbx_demux_release(&d);
    frames_clear(&f);
}

static void test_empty_frames_skipped(void **state) {
    (void)state;
    unsigned char buf[64];
    size_t off = 0;
    struct sbx_demux d;
    struct frames f = {0};

    put_frame(buf, &off, 1, "", 0);
    put_frame(buf, &off, 2, "x", 1);
    put_frame(buf, &off, 1, "", 0);
    for (size_t i = 0; i <= off; i++) {
        sbx_demux_init(&d, 0);
        assert_int_equal(sbx_demux_feed(&d, (char *)buf, i, collect, &f, NULL), 0);
        assert_int_equal(sbx_demux_feed(&d, (char *)buf + i, off - i, collect, &f, NULL), 0);
        assert_int_equal(f.n, 1);
        assert_int_equal(f.v[0].stream, SBX_DEMUX_STDERR);
        assert_int_equal(sbx_demux_finish(&d, NULL), 0);
        sbx_demux_release(&d);
        frames_clear(&f);
    }
}

static void test_raw_mode(void **state) {
    (void)state;
    struct sbx_demux d;
    struct frames f = {0};
    const char a[] = {1, 0, 0, 0, 0, 0, 0, 9, 'x'}; /* would be a header if framed */

    sbx_demux_init(&d, 1);
    assert_int_equal(sbx_demux_feed(&d, a, sizeof a, collect, &f, NULL), 0);
    assert_int_equal(sbx_demux_feed(&d, "tty text\r\n", 10, collect, &f, NULL), 0);
    assert_int_equal(sbx_demux_feed(&d, "", 0, collect, &f, NULL), 0);
    assert_int_equal(f.n, 2);
    assert_int_equal(f.v[0].stream, SBX_DEMUX_STDOUT);
    assert_int_equal(f.v[0].len, sizeof a);
    assert_memory_equal(f.v[0].data, a, sizeof a);
    assert_memory_equal(f.v[1].data, "tty text\r\n", 10);
    assert_int_equal(sbx_demux_finish(&d, NULL), 0);
    sbx_demux_release(&d);
    frames_clear(&f);
}

static void test_end_inside_frame(void **state) {
    (void)state;
    unsigned char buf[512];
    size_t n = build_sample(buf);
    struct sbx_demux d;
    struct frames f = {0};
    const char *why = NULL;

    sbx_demux_init(&d, 0);
    assert_int_equal(sbx_demux_feed(&d, (char *)buf, n - 2, collect, &f, NULL), 0);
    assert_int_equal(f.n, NSAMPLE - 1);
    assert_int_equal(sbx_demux_finish(&d, &why), -1);
    assert_non_null(strstr(why, "inside a frame"));
    sbx_demux_release(&d); /* frees the partial frame (ASan checks) */
    frames_clear(&f);

    sbx_demux_init(&d, 0);
    assert_int_equal(sbx_demux_feed(&d, (char *)buf, 3, collect, &f, NULL), 0);
    assert_int_equal(sbx_demux_finish(&d, &why), -1); /* half a header */
    sbx_demux_release(&d);
}

/* emit frees the demuxer (held in its arg) and stops. */
struct owner {
    struct sbx_demux *d;
    int calls;
};

static int emit_and_free(void *arg, enum sbx_demux_stream stream, const char *data, size_t len) {
    struct owner *o = arg;
    (void)stream;
    (void)data;
    (void)len;
    o->calls++;
    sbx_demux_release(o->d);
    free(o->d);
    o->d = NULL;
    return 1;
}

static void test_emit_stops_and_frees(void **state) {
    (void)state;
    unsigned char buf[512];
    size_t n = build_sample(buf);

    /* Stop after two frames: feed returns 1, the rest is dropped, d is usable. */
    struct sbx_demux d;
    struct frames f = {.stop_after = 2};
    sbx_demux_init(&d, 0);
    assert_int_equal(sbx_demux_feed(&d, (char *)buf, n, collect, &f, NULL), 1);
    assert_int_equal(f.n, 2);
    assert_int_equal(sbx_demux_finish(&d, NULL), 0); /* at a frame boundary */
    sbx_demux_release(&d);
    frames_clear(&f);

    /* emit frees d, from a whole frame and from a buffered one (ASan checks). */
    for (size_t split = 0; split < 12; split += 11) {
        struct owner o = {.d = malloc(sizeof *o.d)};
        assert_non_null(o.d);
        sbx_demux_init(o.d, 0);
        if (split)
            assert_int_equal(sbx_demux_feed(o.d, (char *)buf, split, emit_and_free, &o, NULL), 0);
        assert_int_equal(sbx_demux_feed(o.d, (char *)buf + split, n - split, emit_and_free, &o,
                                        NULL),
                         1);
        assert_int_equal(o.calls, 1);
        assert_null(o.d);
    }
}

static void test_random_frames_random_chunks(void **state) {
    (void)state;
    enum { NF = 300 };
    static unsigned char stream[NF * (8 + 3000)];
    static struct {
        unsigned s;
        size_t len, at;
    } want[NF];
    size_t off = 0, nwant = 0;
    unsigned seed = 12345;
    char data[3000];

    for (size_t i = 0; i < NF; i++) {
        unsigned s = 1 + (unsigned)(rand_r(&seed) % 2);
        size_t len = (size_t)(rand_r(&seed) % 3000);
        for (size_t k = 0; k < len; k++)
            data[k] = (char)rand_r(&seed);
        if (len) {
            want[nwant].s = s;
            want[nwant].len = len;
            want[nwant].at = off + 8;
            nwant++;
        }
        put_frame(stream, &off, s, data, len);
    }
    for (int round = 0; round < 20; round++) {
        struct sbx_demux d;
        struct frames *f = calloc(1, sizeof *f);
        assert_non_null(f);
        sbx_demux_init(&d, 0);
        size_t pos = 0;
        while (pos < off) {
            size_t chunk = 1 + (size_t)(rand_r(&seed) % (round < 10 ? 16 : 8192));
            if (chunk > off - pos)
                chunk = off - pos;
            assert_int_equal(sbx_demux_feed(&d, (char *)stream + pos, chunk, collect, f, NULL), 0);
            pos += chunk;
            if (f->n > 400)
                fail_msg("too many frames");
        }
        assert_int_equal(sbx_demux_finish(&d, NULL), 0);
        assert_int_equal(f->n, nwant);
        for (size_t i = 0; i < nwant; i++) {
            assert_int_equal(f->v[i].stream, want[i].s);
            assert_int_equal(f->v[i].len, want[i].len);
            assert_memory_equal(f->v[i].data, stream + want[i].at, want[i].len);
        }
        sbx_demux_release(&d);
        frames_clear(f);
        free(f);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_stream_one_chunk),
        cmocka_unit_test(test_split_at_every_boundary),
        cmocka_unit_test(test_split_in_three_everywhere),
        cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_oversize_frame_refused),
        cmocka_unit_test(test_max_frame_accepted_in_pieces),
        cmocka_unit_test(test_bad_headers_refused),
        cmocka_unit_test(test_stdin_and_syserr_streams),
        cmocka_unit_test(test_empty_frames_skipped),
        cmocka_unit_test(test_raw_mode),
        cmocka_unit_test(test_end_inside_frame),
        cmocka_unit_test(test_emit_stops_and_frees),
        cmocka_unit_test(test_random_frames_random_chunks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
