/* Unit tests for core/logbuf.h: line splitting, the bounded ring, queries, the file
 * (persistence, its format, recovery from a torn tail, compaction, write failures, a
 * SIGKILL right after feeds) and a 100 MB feed for memory and speed.
 *
 * Every test works in its own mkdtemp folder under /tmp, removed afterwards. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/logbuf.h"

#define MAXL SBX_LOGBUF_MAX_LINE
#define REC_OVERHEAD 24
#define FILE_HDR 8

/* ---- helpers ------------------------------------------------------------------------- */

struct fixture {
    char dir[64];
    char path[128];
};

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int setup(void **state) {
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/sbx_logbuf_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/log", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    struct fixture *f = *state;
    nftw(f->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* Records as collected from emit or query. */
struct rec {
    int64_t ts;
    enum sbx_stream stream;
    char *data;
    size_t len;
};

struct recs {
    struct rec *v;
    size_t n, cap;
    size_t total; /* bytes seen, also when not kept */
    int keep;     /* 0: only count */
};

static void collect(void *arg, int64_t ts, enum sbx_stream stream, const char *data,
                    size_t len) {
    struct recs *r = arg;
    r->total += len;
    if (!r->keep) {
        r->n++;
        return;
    }
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->v = realloc(r->v, r->cap * sizeof *r->v);
        assert_non_null(r->v);
    }
    struct rec *x = &r->v[r->n++];
    x->ts = ts;
    x->stream = stream;
    x->len = len;
    x->data = malloc(len + 1);
    assert_non_null(x->data);
    memcpy(x->data, data, len);
    x->data[len] = '\0';
}

static void recs_free(struct recs *r) {
    for (size_t i = 0; i < r->n && r->keep; i++)
        free(r->v[i].data);
    free(r->v);
    memset(r, 0, sizeof *r);
    r->keep = 1;
}

/* All records of lb, oldest first. */
static struct recs all(const struct sbx_logbuf *lb) {
    struct recs r = {.keep = 1};
    size_t n = sbx_logbuf_query(lb, SIZE_MAX, INT64_MIN, collect, &r);
    assert_int_equal(n, r.n);
    assert_int_equal(n, sbx_logbuf_count(lb));
    return r;
}

static void assert_rec(const struct rec *r, int64_t ts, enum sbx_stream s, const char *data,
                       size_t len) {
    assert_int_equal(r->ts, ts);
    assert_int_equal(r->stream, s);
    assert_int_equal(r->len, len);
    assert_memory_equal(r->data, data, len);
}

static void assert_recs_equal(const struct recs *a, const struct recs *b) {
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++)
        assert_rec(&a->v[i], b->v[i].ts, b->v[i].stream, b->v[i].data, b->v[i].len);
}

static int feed_s(struct sbx_logbuf *lb, int64_t ts, enum sbx_stream s, const char *str,
                  struct recs *out) {
    return sbx_logbuf_feed(lb, ts, s, str, strlen(str), out ? collect : NULL, out);
}

static off_t file_size(const char *path) {
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

/* Reference CRC-32C, bit by bit. */
static uint32_t ref_crc32c(const unsigned char *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
    }
    return ~c;
}

static void le32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* Encodes a record as documented in logbuf.c; returns its size. */
static size_t encode(unsigned char *out, int64_t ts, int stream, const char *data, size_t len) {
    le32(out, 0x4345524cu);
    le32(out + 4, (uint32_t)len);
    le32(out + 8, (uint32_t)(uint64_t)ts);
    le32(out + 12, (uint32_t)((uint64_t)ts >> 32));
    out[16] = (unsigned char)stream;
    out[17] = out[18] = out[19] = 0;
    memcpy(out + 20, data, len);
    le32(out + 20 + len, ref_crc32c(out, 20 + len));
    return 24 + len;
}

static void write_file(const char *path, const void *buf, size_t len) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
    close(fd);
}

/* What the file may hold after a feed: max(2 x max, 2 x the ring's records, the ring's
 * records + 4 KiB), see logbuf.c. */
static off_t file_bound(const struct sbx_logbuf *lb, size_t max) {
    off_t ring = FILE_HDR + (off_t)sbx_logbuf_bytes(lb) +
                 REC_OVERHEAD * (off_t)sbx_logbuf_count(lb);
    off_t b = 2 * (off_t)max;
    if (2 * ring > b)
        b = 2 * ring;
    if (ring + 4096 > b)
        b = ring + 4096;
    return b;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long status_kb(const char *key) {
    FILE *fp = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t kl = strlen(key);
    if (fp == NULL)
        return -1;
    while (fgets(line, sizeof line, fp) != NULL)
        if (strncmp(line, key, kl) == 0 && line[kl] == ':')
            v = strtol(line + kl + 1, NULL, 10);
    fclose(fp);
    return v;
}

/* ---- splitting ----------------------------------------------------------------------- */

static void test_split_across_chunks(void **state) {
    struct fixture *f = *state;
    struct sbx_logbuf *lb = sbx_logbuf_open(f->path, 4096);
    struct recs em = {.keep = 1};
    assert_non_null(lb);

    assert_int_equal(feed_s(lb, 1, SBX_STREAM_STDOUT, "hel", &em), 0);
    assert_int_equal(em.n, 0);
    assert_int_equal(sbx_logbuf_count(lb), 0);
    assert_int_equal(feed_s(lb, 2, SBX_STREAM_STDOUT, "lo\nwor", &em), 0);
    assert_int_equal(feed_s(lb, 3, SBX_STREAM_STDOUT, "ld\n\nx", &em), 0);
    assert_int_equal(em.n, 3);
    assert_rec(&em.v[0], 2, SBX_STREAM_STDOUT, "hello", 5);
    assert_rec(&em.v[1], 3, SBX_STREAM_STDOUT, "world", 5);
    assert_rec(&em.v[2], 3, SBX_STREAM_STDOUT, "", 0);
    assert_int_equal(sbx_logbuf_bytes(lb), 10);

    /* Streams keep their own partial lines. */
    assert_int_equal(feed_s(lb, 4, SBX_STREAM_STDERR, "e1", &em), 0);
    assert_int_equal(feed_s(lb, 5, SBX_STREAM_STDOUT, "y\n", &em), 0);
    assert_int_equal(feed_s(lb, 6, SBX_STREAM_STDERR, "e2\n", &em), 0);
    assert_int_equal(em.n, 5);
    assert_rec(&em.v[3], 5, SBX_STREAM_STDOUT, "xy", 2);
    assert_rec(&em.v[4], 6, SBX_STREAM_STDERR, "e1e2", 4);

    /* Many lines in one chunk, byte-by-byte feeding gives the same records. */
    assert_int_equal(feed_s(lb, 7, SBX_STREAM_STDOUT, "a\nbb\nccc\n", &em), 0);
    const char *s = "a\nbb\nccc\n";
    for (size_t i = 0; s[i]; i++)
        assert_int_equal(sbx_logbuf_feed(lb, 8, SBX_STREAM_STDOUT, s + i, 1, collect, &em), 0);
    assert_int_equal(em.n, 11);
    for (int k = 0; k < 3; k++) {
        assert_string_equal(em.v[5 + k].data, em.v[8 + k].data);
        assert_int_equal(em.v[8 + k].ts, 8);
    }

    /* Emitted records are the stored ones; NUL bytes are data. */
    assert_int_equal(sbx_logbuf_feed(lb, 9, SBX_STREAM_STDOUT, "a\0b\n", 4, NULL, NULL), 0);
    struct recs q = all(lb);
    assert_int_equal(q.n, 12);
    assert_rec(&q.v[11], 9, SBX_STREAM_STDOUT, "a\0b", 3);
    for (size_t i = 0; i < em.n; i++)
        assert_rec(&q.v[i], em.v[i].ts, em.v[i].stream, em.v[i].data, em.v[i].len);

    /* An unknown stream is refused and stores nothing. */
    errno = 0;
    assert_int_equal(sbx_logbuf_feed(lb, 9, (enum sbx_stream)7, "z\n", 2, NULL, NULL), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(sbx_logbuf_count(lb), 12);

    recs_free(&q);
    recs_free(&em);
    sbx_logbuf_close(lb);
}

static void test_crlf_kept(void **state) {
    struct fixture *f = *state;
    struct sbx_logbuf *lb = sbx_logbuf_open(f->path, 4096);
    struct recs em = {.keep = 1};
    assert_non_null(lb);

    assert_int_equal(feed_s(lb, 1, SBX_STREAM_STDOUT, "a\r\nb\rc\r", &em), 0);
    assert_int_equal(feed_s(lb, 2, SBX_STREAM_STDOUT, "\n\r\n", &em), 0);
    assert_int_equal(em.n, 3);
    assert_rec(&em.v[0], 1, SBX_STREAM_STDOUT, "a\r", 2);
    assert_rec(&em.v[1], 2, SBX_STREAM_STDOUT, "b\rc\r", 4);
    assert_rec(&em.v[2], 2, SBX_STREAM_STDOUT, "\r", 1);
    recs_free(&em);
    sbx_logbuf_close(lb);
}

static void test_partial_flush(void **state) {
    struct fixture *f = *state;
    struct sbx_logbuf *lb = sbx_logbuf_open(f->path, 4096);
    struct recs em = {.keep = 1};
    assert_non_null(lb);

    assert_int_equal(feed_s(lb, 1, SBX_STREAM_STDOUT, "abc", &em), 0);
    assert_int_equal(feed_s(lb, 2, SBX_STREAM_STDERR, "err", &em), 0);
    sbx_logbuf_flush(lb, 7, SBX_STREAM_STDOUT, collect, &em);
    assert_int_equal(em.n, 1);
    assert_rec(&em.v[0], 7, SBX_STREAM_STDOUT, "abc", 3);
    sbx_logbuf_flush(lb, 8, SBX_STREAM_STDOUT, collect, &em); /* nothing left */
    assert_int_equal(em.n, 1);
    assert_int_equal(feed_s(lb, 9, SBX_STREAM_STDOUT, "d\n", &em), 0);
    assert_rec(&em.v[1], 9, SBX_STREAM_STDOUT, "d", 1);

    /* close stores what is pending (stderr "err" plus "tail"), with the last chunk's ts. */
    assert_int_equal(feed_s(lb, 10, SBX_STREAM_STDOUT, "tail", &em), 0);
    assert_int_equal(feed_s(lb, 11, SBX_STREAM_STDERR, "!", &em), 0);
    sbx_logbuf_close(lb);
    lb = sbx_logbuf_open(f->path, 4096);
    assert_non_null(lb);
    struct recs q = all(lb);
    assert_int_equal(q.n, 4);
    assert_rec(&q.v[0], 7, SBX_STREAM_STDOUT, "abc", 3);
    assert_rec(&q.v[1], 9, SBX_STREAM_STDOUT, "d", 1);
    assert_rec(&q.v[2], 10, SBX_STREAM_STDOUT, "tail", 4);
    assert_rec(&q.v[3], 11, SBX_STREAM_STDERR, "err!", 4);
    recs_free(&q);
    recs_free(&em);
    sbx_logbuf_close(lb);
    sbx_logbuf_close(NULL);
}

static void test_long_line_cut(void **state) {
    struct fixture *f = *state;
    struct sbx_logbuf *lb = sbx_logbuf_open(f->path, 1 << 20);
    struct recs em = {.keep = 1};
    size_t n = 2 * MAXL + 10;
    char *big = malloc(n + 1);
    assert_non_null(big);
    assert_non_null(lb);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + i % 26);

    /* In 1000-byte chunks. */
    for (size_t off = 0; off < n; off += 1000) {
        size_t k = n - off < 1000 ? n - off : 1000;
        assert_int_equal(sbx_logbuf_feed(lb, 1, SBX_STREAM_STDOUT, big + off, k, collect, &em),
                         0);
    }
    assert_int_equal(em.n, 2);
    assert_rec(&em.v[0], 1, SBX_STREAM_STDOUT, big, MAXL);
    assert_rec(&em.v[1], 1, SBX_STREAM_STDOUT, big + MAXL, MAXL);
    assert_int_equal(feed_s(lb, 2, SBX_STREAM_STDOUT, "\n", &em), 0);
    assert_int_equal(em.n, 3);
    assert_rec(&em.v[2], 2, SBX_STREAM_STDOUT, big + 2 * MAXL, 10);

    /* In one chunk, with the newline: the same three records. */
    big[n] = '\n';
    assert_int_equal(sbx_logbuf_feed(lb, 3, SBX_STREAM_STDOUT, big, n + 1, collect, &em), 0);
    assert_int_equal(em.n, 6);
    assert_rec(&em.v[3], 3, SBX_STREAM_STDOUT, big, MAXL);
    assert_rec(&em.v[4], 3, SBX_STREAM_STDOUT, big + MAXL, MAXL);
    assert_rec(&em.v[5], 3, SBX_STREAM_STDOUT, big + 2 * MAXL, 10);

    /* A line of exactly MAXL bytes is one record, with no empty one after it. */
    big[MAXL] = '\n';
    assert_int_equal(sbx_logbuf_feed(lb, 4, SBX_STREAM_STDOUT, big, MAXL, collect, &em), 0);
    assert_int_equal(em.n, 6);
    assert_int_equal(sbx_logbuf_feed(lb, 5, SBX_STREAM_STDOUT, big + MAXL, 1, collect, &em), 0);
    assert_int_equal(em.n, 7);
    assert_rec(&em.v[6], 5, SBX_STREAM_STDOUT, big, MAXL);
    assert_int_equal(sbx_logbuf_feed(lb, 6, SBX_STREAM_STDOUT, big, MAXL + 1, collect, &em), 0);
    assert_int_equal(em.n, 8);
    assert_rec(&em.v[7], 6, SBX_STREAM_STDOUT, big, MAXL);
    /* ... and MAXL + 1 bytes are two. */
    assert_int_equal(sbx_logbuf_feed(lb, 7, SBX_STREAM_STDOUT, "x", 1, collect, &em), 0);
    assert_int_equal(sbx_logbuf_feed(lb, 7, SBX_STREAM_STDOUT, big, MAXL, collect, &em), 0);
    assert_int_equal(sbx_logbuf_feed(lb, 8, SBX_STREAM_STDOUT, "\n", 1, collect, &em), 0);
    assert_int_equal(em.n, 10);
    assert_int_equal(em.v[8].len, MAXL);
    assert_int_equal(em.v[9].len, 1);

    /* They survive a reopen. */
    struct recs before = all(lb);
    sbx_logbuf_close(lb);
    lb = sbx_logbuf_open(f->path, 1 << 20);
    assert_non_null(lb);
    struct recs after = all(lb);
    assert_recs_equal(&after, &before);
    recs_free(&before);
    recs_free(&after);
    recs_free(&em);
    free(big);
    sbx_logbuf_close(lb);
}

/* ---- the ring and queries ------------------------------------------------------------ */

static void test_ring_eviction(void **state) {
    struct fixture *f = *state;
    struct sbx_logbuf *lb = sbx_logbuf_open(f->path, 1000);
    char line[64];
    assert_non_null(lb);

    /* 100 lines of 50 bytes: the newest 20 fit in 1000 bytes. */
    for (int i = 0; i < 100; i++) {
        int n = snprintf(line, sizeof line, "%050d\n", i);
        assert_int_equal(sbx_logbuf_feed(lb, i, SBX_STREAM_STDOUT, line, (size_t)n, NULL, NULL),
                         0);
        assert_true(sbx_logbuf_bytes(lb) <= 1000);
    }
    assert_int_equal(sbx_logbuf_count(lb), 20);
    assert_int_equal(sbx_logbuf_bytes(lb), 1000);
    struct recs q = all(lb);
    for (int i = 0; i < 20; i++) {
        snprintf(line, sizeof line, "%050d", 80 + i);
        assert_rec(&q.v[i], 80 + i, SBX_STREAM_STDOUT, line, 50);
    }
    recs_free(&q);

    /* One more byte than fits drops one more. */
    assert_int_equal(feed_s(lb, 100, SBX_STREAM_STDERR,
                            "0123456789012345678901234567890123456789012345678901\n", NULL),
                     0);
    assert_int_equal(sbx_logbuf_count(lb), 19);
    assert_true(sbx_logbuf_bytes(lb) <= 1000);

    /* A record larger than max_bytes is emitted (and written) but not kept. */
    char *huge = malloc(1501);
    assert_non_null(huge);
    memset(huge, 'h', 1500);
    huge[1500] = '\n';
    struct recs em = {.keep = 1};
    assert_int_equal(sbx_logbuf_feed(lb, 101, SBX_STREAM_STDOUT, huge, 1501, collect, &em), 0);
    assert_int_equal(em.n, 1);
    assert_int_equal(em.v[0].len, 1500);
    assert_int_equal(sbx_logbuf_count(lb), 0);
    assert_int_equal(sbx_logbuf_bytes(lb), 0);
    assert_int_equal(feed_s(lb, 102, SBX_STREAM_STDOUT, "after\n", NULL), 0);
    assert_int_equal(sbx_logbuf_count(lb), 1);
    recs_free(&em);
    free(huge);
    sbx_logbuf_close(lb);
}

static void test_ring_wraps_with_varied_lengths(void **state) {
    struct fixture *f = *state;
    const size_t max = 5000;
    struct sbx_logbuf *lb = sbx_logbuf_open(f->path, max);
    char buf[3000];
    unsigned seed = 12345;
    assert_non_null(lb);

    /* Lines of 0..2999 bytes; check after each that the ring holds exactly the newest
     * lines that fit, with their content intact (the arena wraps many times). */
    struct recs em = {.keep = 1};
    for (int i = 0; i < 3000; i++) {
        seed = seed * 1103515245u + 12345u;
        size_t len = (seed >> 8) % 3000;
        if (i % 7 == 0)
            len = (seed >> 8) % 40; /* plenty of short ones too */
        for (size_t k = 0; k < len; k++)
            buf[k] = (char)('A' + (i + k) % 50);
        buf[len] = '\n';
        assert_int_equal(sbx_logbuf_feed(lb, i, SBX_STREAM_STDOUT, buf, len + 1, collect, &em), 0);
        assert_true(sbx_logbuf_bytes(lb) <= max);

        size_t want = 0, bytes = 0;
        while (want < em.n && bytes + em.v[em.n - 1 - want].len <= max &&
               want < max / 32 + 1) {
            bytes += em.v[em.n - 1 - want].len;
            want++;
        }
        if (i % 50 == 0 || i > 2950) {
            struct recs q = all(lb);
            assert_int_equal(q.n, want);
            for (size_t k = 0; k < q.n; k++) {
                const struct rec *e = &em.v[em.n - q.n + k];
                assert_rec(&q.v[k], e->ts, e->stream, e->data, e->len);
            }
            recs_free(&q);
        } else {
            assert_int_equal(sbx_logbuf_count(lb), want);
        }
    }
    recs_free(&em);
    sbx_logbuf_close(lb);
}

static void test_record_count_bounded(void **state) {
    struct fixture *f = *state;
    struct sbx_logbuf *lb = sbx_logbuf_open(f->path, 3200);
    assert_non_null(lb);
    /* Empty lines hold no data; the ring still keeps at most max_bytes / 32 + 1. */
    char nl[4096];
    memset(nl, '\n', sizeof nl);
    for (int i = 0; i < 10; i++)
        assert_int_equal(sbx_logbuf_feed(lb, i, SBX_STREAM_STDOUT, nl, sizeof nl, NULL, NULL), 0);
    assert_int_equal(sbx_logbuf_count(lb), 101);
    assert_int_equal(sbx_logbuf_bytes(lb), 0);
    /* And the file stays small. */
    assert_true(file_size(f->path) <= file_bound(lb, 3200));
    sbx_logbuf_close(lb);
    lb = sbx_logbuf_open(f->path, 3200);
    assert_non_null(lb);
    assert_int_equal(sbx_logbuf_count(lb), 101);
    sbx_logbuf_close(lb);
}

static void test_query_tail_since(void **state) {
    struct fixture *f = *state;
    struct sbx_logbuf *lb = sbx_logbuf_open(f->path, 4096);
    char line[16];
    assert_non_null(lb);
    for (int i = 1; i <= 10; i++) {
        int n = snprintf(line, sizeof line, "l%d\n", i);
        assert_int_equal(sbx_logbuf_feed(lb, i * 10, i % 2 ? SBX_STREAM_STDOUT : SBX_STREAM_STDERR,
                                         line, (size_t)n, NULL, NULL),
                         0);
    }
    struct recs q = {.keep = 1};
    assert_int_equal(sbx_logbuf_query(lb, 3, 0, collect, &q), 3);
    assert_rec(&q.v[0], 80, SBX_STREAM_STDERR, "l8", 2);
    assert_rec(&q.v[1], 90, SBX_STREAM_STDOUT, "l9", 2);
    assert_rec(&q.v[2], 100, SBX_STREAM_STDERR, "l10", 3);
    recs_free(&q);

    assert_int_equal(sbx_logbuf_query(lb, 100, 50, collect, &q), 6);
    assert_int_equal(q.v[0].ts, 50);
    assert_int_equal(q.v[5].ts, 100);
    recs_free(&q);

    assert_int_equal(sbx_logbuf_query(lb, 2, 45, collect, &q), 2);
    assert_int_equal(q.v[0].ts, 90);
    assert_int_equal(q.v[1].ts, 100);
    recs_free(&q);

    assert_int_equal(sbx_logbuf_query(lb, 0, 0, collect, &q), 0);
    assert_int_equal(sbx_logbuf_query(lb, 10, 101, collect, &q), 0);
    assert_int_equal(sbx_logbuf_query(lb, 10, 100, NULL, NULL), 1);
    assert_int_equal(sbx_logbuf_query(lb, 100, INT64_MIN, NULL, NULL), 10);
    assert_int_equal(sbx_logbuf_query(NULL, 10, 0, NULL, NULL), 0);
    assert_int_equal(sbx_logbuf_count(NULL), 0);
    assert_int_equal(sbx_logbuf_bytes(NULL), 0);

    /* Timestamps that go back (a clock change): filtered record by record. */
    assert_int_equal(feed_s(lb, 5, SBX_STREAM_STDOUT, "back\n", NULL), 0);
    assert_int_equal(feed_s(lb, 200, SBX_STREAM_STDOUT, "fwd\n", NULL), 0);
    assert_int_equal(sbx_logbuf_query(lb, 3, 60, collect, &q), 3);
    assert_int_equal(q.v[0].ts, 90);
    assert_int_equal(q.v[1].ts, 100);
    assert_int_equal(q.v[2].ts, 200);
    recs_free(&q);
    assert_int_equal(sbx_logbuf_query(lb, 2, 0, collect, &q), 2);
    assert_int_equal(q.v[0].ts, 5);
    assert_int_equal(q.v[1].ts, 200);
    recs_free(&q);
    sbx_logbuf_close(lb);
}

/* ---- the file ------------------------------------------------------------------------ */

static void test_persistence(void **state) {
    struct fixture *f = *state;
    struct sbx_logbuf *lb = sbx_logbuf_open(f->path, 100000);
    char line[200];
    assert_non_null(lb);
    assert_int_equal(file_size(f->path), FILE_HDR);
    for (int i = 0; i < 500; i++) {
        int n = snprintf(line, sizeof line, "line %d %.*s\n", i, i % 90,
                         "............................................................"
                         "..............................");
        int64_t ts = i == 7 ? -5 : i == 8 ? INT64_MAX : (int64_t)1700000000000 + i * 3;
        assert_int_equal(sbx_logbuf_feed(lb, ts, i % 3 ? SBX_STREAM_STDOUT : SBX_STREAM_STDERR,
                                         line, (size_t)n, NULL, NULL),
                         0);
    }
    struct recs before = all(lb);
    /* Written as fed, before close. */
    off_t sz = file_size(f->path);
    size_t expect = FILE_HDR;
    for (size_t i = 0; i < before.n; i++)
        expect += REC_OVERHEAD + before.v[i].len;
    assert_int_equal(sz, (off_t)expect);
    sbx_logbuf_close(lb);
    assert_int_equal(file_size(f->path), sz);

    for (int round = 0; round < 2; round++) {
        lb = sbx_logbuf_open(f->path, 100000);
        assert_non_null(lb);
        struct recs after = all(lb);
        assert_recs_equal(&after, &before);
        assert_int_equal(sbx_logbuf_bytes(lb), before.total);
        recs_free(&after);
        sbx_logbuf_close(lb);
    }
    /* A smaller max on reopen keeps the newest that fit. */
    lb = sbx_logbuf_open(f->path, 1000);
    assert_non_null(lb);
    struct recs small = all(lb);
    assert_true(small.n > 0 && small.n < before.n);
    assert_true(sbx_logbuf_bytes(lb) <= 1000);
    for (size_t i = 0; i < small.n; i++) {
        const struct rec *b = &before.v[before.n - small.n + i];
        assert_rec(&small.v[i], b->ts, b->stream, b->data, b->len);
    }
    recs_free(&small);
    sbx_logbuf_close(lb);
    /* ... and the file was compacted to them (it held more than 2 x 1000). */
    assert_true(file_size(f->path) < 3000);
    recs_free(&before);
}

static void test_file_format(void **state) {
    struct fixture *f = *state;
    unsigned char buf[512];
    size_t n = 0;

    /* The reference CRC is CRC-32C. */
    assert_int_equal(ref_crc32c((const unsigned char *)"123456789", 9), 0xe3069283u);

    memcpy(buf, "SBXLOG1\n", 8);
    n = 8;
    n += encode(buf + n, 1234567890123, 0, "hello", 5);
    n += encode(buf + n, -1, 1, "", 0);
    n += encode(buf + n, 42, 1, "bin\0ary\r", 8);
    write_file(f->path, buf, n);

    struct sbx_logbuf *lb = sbx_logbuf_open(f->path, 4096);
    assert_non_null(lb);
    struct recs q = all(lb);
    assert_int_equal(q.n, 3);
    assert_rec(&q.v[0], 1234567890123, SBX_STREAM_STDOUT, "hello", 5);
    assert_rec(&q.v[1], -1, SBX_STREAM_STDERR, "", 0);
    assert_rec(&q.v[2], 42, SBX_STREAM_STDERR, "bin\0ary\r", 8);
    recs_free(&q);

    /* What feed writes is byte for byte the documented encoding. */
    assert_int_equal(feed_s(lb, 77, SBX_STREAM_STDERR, "new\n", NULL), 0);
    sbx_logbuf_close(lb);
    n += encode(buf + n, 77, 1, "new", 3);
    unsigned char got[512];
    int fd = open(f->path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, got, sizeof got), (ssize_t)n);
    close(fd);
    assert_memory_equal(got, buf, n);
}

static void test_bad_header(void **state) {
    struct fixture *f = *state;

    /* Cut while its header was written: started anew. */
    write_file(f->path, "SBX", 3);
    struct sbx_logbuf *lb = sbx_logbuf_open(f->path, 4096);
    assert_non_null(lb);
    assert_int_equal(sbx_logbuf_count(lb), 0);
    assert_int_equal(file_size(f->path), FILE_HDR);
    sbx_logbuf_close(lb);

    /* Not a log file: refused, left alone. */
    write_file(f->path, "#!/bin/sh\necho hi\n", 18);
    errno = 0;
    assert_null(sbx_logbuf_open(f->path, 4096));
    assert_int_equal(errno, EINVAL);
    assert_int_equal(file_size(f->path), 18);

    /* Not a regular file, and a symlink is not followed. */
    char sub[160];
    snprintf(sub, sizeof sub, "%s/sub", f->dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_null(sbx_logbuf_open(sub, 4096));
    char link[160];
    snprintf(link, sizeof link, "%s/link", f->dir);
    assert_int_equal(symlink(f->path, link), 0);
    assert_null(sbx_logbuf_open(link, 4096));

    /* Missing folder; max_bytes too large. */
    assert_null(sbx_logbuf_open("/nonexistent-sbx/log", 4096));
    errno = 0;
    assert_null(sbx_logbuf_open(f->path, (size_t)1 << 31));
    assert_int_equal(errno, EINVAL);
}

/* Writes n records ("rec <i> ...") to a new file, closes; ends[i]: the file size after
 * record i. */
static void make_log(const char *path, int n, off_t *ends) {
    assert_true(unlink(path) == 0 || errno == ENOENT);
    struct sbx_logbuf *lb = sbx_logbuf_open(path, 1 << 20);
    char line[64];
    assert_non_null(lb);
    for (int i = 0; i < n; i++) {
        int k = snprintf(line, sizeof line, "rec %d %s\n", i, i % 2 ? "odd" : "even one");
        assert_int_equal(sbx_logbuf_feed(lb, 100 + i, SBX_STREAM_STDOUT, line, (size_t)k, NULL,
                                         NULL),
                         0);
        ends[i] = file_size(path);
    }
    sbx_logbuf_close(lb);
}

static void check_first(const struct sbx_logbuf *lb, int n) {
    struct recs q = all(lb);
    char line[64];
    assert_int_equal(q.n, (size_t)n);
    for (int i = 0; i < n; i++) {
        int k = snprintf(line, sizeof line, "rec %d %s", i, i % 2 ? "odd" : "even one");
        assert_rec(&q.v[i], 100 + i, SBX_STREAM_STDOUT, line, (size_t)k);
    }
    recs_free(&q);
}

static void test_torn_record_recovery(void **state) {
    struct fixture *f = *state;
    off_t ends[5];
    make_log(f->path, 5, ends);

    /* Every cut inside the last record: the first four survive, the file is repaired
     * and appending after it works. */
    for (off_t cut = ends[3] + 1; cut < ends[4]; cut++) {
        make_log(f->path, 5, ends);
        assert_int_equal(truncate(f->path, cut), 0);
        struct sbx_logbuf *lb = sbx_logbuf_open(f->path, 1 << 20);
        assert_non_null(lb);
        check_first(lb, 4);
        assert_int_equal(file_size(f->path), ends[3]);
        assert_int_equal(feed_s(lb, 104, SBX_STREAM_STDOUT, "rec 4 even one\n", NULL), 0);
        sbx_logbuf_close(lb);
        lb = sbx_logbuf_open(f->path, 1 << 20);
        assert_non_null(lb);
        check_first(lb, 5);
        sbx_logbuf_close(lb);
        assert_int_equal(unlink(f->path), 0);
    }

    /* A flipped byte in the third record: the first two survive. */
    make_log(f->path, 5, ends);
    int fd = open(f->path, O_RDWR);
    assert_true(fd >= 0);
    char c;
    assert_int_equal(pread(fd, &c, 1, ends[1] + 22), 1);
    c ^= 0x20;
    assert_int_equal(pwrite(fd, &c, 1, ends[1] + 22), 1);
    close(fd);
    struct sbx_logbuf *lb = sbx_logbuf_open(f->path, 1 << 20);
    assert_non_null(lb);
    check_first(lb, 2);
    assert_int_equal(file_size(f->path), ends[1]);
    sbx_logbuf_close(lb);

    /* Garbage (zeros, as after a power loss) after the records. */
    make_log(f->path, 5, ends);
    fd = open(f->path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    char zeros[100] = {0};
    assert_int_equal(write(fd, zeros, sizeof zeros), (ssize_t)sizeof zeros);
    close(fd);
    lb = sbx_logbuf_open(f->path, 1 << 20);
    assert_non_null(lb);
    check_first(lb, 5);
    assert_int_equal(file_size(f->path), ends[4]);
    sbx_logbuf_close(lb);
}

static void test_compaction(void **state) {
    struct fixture *f = *state;
    const size_t max = 10000;
    struct sbx_logbuf *lb = sbx_logbuf_open(f->path, max);
    char chunk[4096];
    size_t fill = 0;
    int line = 0;
    off_t prev = 0;
    size_t shrank = 0;
    assert_non_null(lb);

    /* 1 MB of ~100-byte lines in 4 KiB chunks. */
    for (int k = 0; k < 256; k++) {
        fill = 0;
        while (fill < sizeof chunk) {
            char l[128];
            line++;
            int n = snprintf(l, sizeof l, "line %06d %.*s\n", line, 80 + line % 17,
                             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
            size_t take = (size_t)n < sizeof chunk - fill ? (size_t)n : sizeof chunk - fill;
            memcpy(chunk + fill, l, take);
            fill += take;
        }
        assert_int_equal(sbx_logbuf_feed(lb, k, SBX_STREAM_STDOUT, chunk, fill, NULL, NULL), 0);
        /* A feed that takes the file past 2 x max compacts it before it returns. */
        off_t sz = file_size(f->path);
        assert_true(sz <= file_bound(lb, max));
        shrank += sz < prev ? 1 : 0;
        prev = sz;
    }
    assert_true(shrank >= 256 * 4096 / (3 * max)); /* compacted every ~2.5 x max fed */
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.tmp", f->path);
    assert_int_equal(access(tmp, F_OK), -1);

    /* The compacted file holds exactly the ring (with the partial line stored). */
    sbx_logbuf_flush(lb, 999, SBX_STREAM_STDOUT, NULL, NULL);
    struct recs before = all(lb);
    sbx_logbuf_close(lb);
    lb = sbx_logbuf_open(f->path, max);
    assert_non_null(lb);
    struct recs after = all(lb);
    assert_recs_equal(&after, &before);
    recs_free(&before);
    recs_free(&after);
    sbx_logbuf_close(lb);
}

static void test_write_failure_resync(void **state) {
    struct fixture *f = *state;
    struct rlimit old, lim;
    struct sigaction ign = {.sa_handler = SIG_IGN}, prev;
    char line[200];

    struct sbx_logbuf *lb = sbx_logbuf_open(f->path, 100000);
    assert_non_null(lb);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    assert_int_equal(sigaction(SIGXFSZ, &ign, &prev), 0);
    lim = old;
    lim.rlim_cur = 4000;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);

    int failed_at = -1;
    for (int i = 0; i < 100; i++) {
        int n = snprintf(line, sizeof line, "%0150d\n", i);
        int rc = sbx_logbuf_feed(lb, i, SBX_STREAM_STDOUT, line, (size_t)n, NULL, NULL);
        if (rc != 0 && failed_at < 0)
            failed_at = i;
    }
    assert_true(failed_at > 0);
    assert_int_equal(sbx_logbuf_count(lb), 100); /* kept in memory all the same */
    /* The file was cut back to whole records. */
    assert_true(file_size(f->path) <= 4000);
    assert_int_equal((file_size(f->path) - FILE_HDR) % (REC_OVERHEAD + 150), 0);

    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    assert_int_equal(sigaction(SIGXFSZ, &prev, NULL), 0);
    /* The next feed rewrites the file whole. */
    assert_int_equal(feed_s(lb, 100, SBX_STREAM_STDOUT, "ok\n", NULL), 0);
    struct recs before = all(lb);
    sbx_logbuf_close(lb);
    lb = sbx_logbuf_open(f->path, 100000);
    assert_non_null(lb);
    struct recs after = all(lb);
    assert_int_equal(after.n, 101);
    assert_recs_equal(&after, &before);
    recs_free(&before);
    recs_free(&after);
    sbx_logbuf_close(lb);
}

static void test_sigkill_loses_nothing_fed(void **state) {
    struct fixture *f = *state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        struct sbx_logbuf *lb = sbx_logbuf_open(f->path, 20000);
        if (lb == NULL)
            _exit(1);
        char line[64];
        for (unsigned i = 0;; i++) {
            int n = snprintf(line, sizeof line, "seq %u and some text to fill\n", i);
            if (sbx_logbuf_feed(lb, i, SBX_STREAM_STDOUT, line, (size_t)n, NULL, NULL) != 0)
                _exit(2);
            if (write(p[1], &i, sizeof i) != (ssize_t)sizeof i)
                _exit(3);
        }
    }
    close(p[1]);
    unsigned acked = 0, v;
    while (acked < 3000 && read(p[0], &v, sizeof v) == (ssize_t)sizeof v)
        acked = v + 1;
    kill(pid, SIGKILL);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    close(p[0]);
    assert_int_equal(acked, 3000);

    struct sbx_logbuf *lb = sbx_logbuf_open(f->path, 20000);
    assert_non_null(lb);
    struct recs q = all(lb);
    assert_true(q.n > 0);
    /* Contiguous up to the last one, which is at least the last acknowledged. */
    unsigned last = 0;
    for (size_t i = 0; i < q.n; i++) {
        unsigned s;
        assert_int_equal(sscanf(q.v[i].data, "seq %u", &s), 1);
        assert_int_equal(q.v[i].ts, (int64_t)s);
        if (i > 0)
            assert_int_equal(s, last + 1);
        last = s;
    }
    assert_true(last + 1 >= acked);
    recs_free(&q);
    sbx_logbuf_close(lb);
}

/* ---- volume -------------------------------------------------------------------------- */

struct sink {
    size_t n, bytes;
};

static void count_emit(void *arg, int64_t ts, enum sbx_stream stream, const char *data,
                       size_t len) {
    struct sink *s = arg;
    (void)ts;
    (void)stream;
    (void)data;
    s->n++;
    s->bytes += len;
}

static void test_100mb_feed(void **state) {
    struct fixture *f = *state;
    const size_t max = 1 << 20;
    const size_t total = 100u << 20;
    char *text = malloc(1 << 20);
    size_t lines_in_text = 0;
    struct sink sink = {0};
    assert_non_null(text);

    /* 1 MiB of lines of 1..200 bytes, fed over and over in 4 KiB chunks. */
    unsigned seed = 7;
    for (size_t i = 0; i < (1u << 20); i++) {
        seed = seed * 1103515245u + 12345u;
        text[i] = (seed >> 16) % 200 == 0 ? '\n' : (char)('a' + (seed >> 20) % 26);
        lines_in_text += text[i] == '\n';
    }
    struct sbx_logbuf *lb = sbx_logbuf_open(f->path, max);
    assert_non_null(lb);
    long rss0 = status_kb("VmRSS");
    double t0 = now_s();
    off_t biggest = 0;
    for (size_t off = 0; off < total; off += 4096) {
        enum sbx_stream st = (off >> 12) % 5 ? SBX_STREAM_STDOUT : SBX_STREAM_STDERR;
        assert_int_equal(sbx_logbuf_feed(lb, (int64_t)(off >> 12), st, text + off % (1u << 20),
                                         4096, count_emit, &sink),
                         0);
        assert_true(sbx_logbuf_bytes(lb) <= max);
        if ((off & ((1u << 22) - 1)) == 0) {
            off_t sz = file_size(f->path);
            assert_true(sz <= file_bound(lb, max));
            biggest = sz > biggest ? sz : biggest;
        }
    }
    double dt = now_s() - t0;
    long rss1 = status_kb("VmRSS");
    off_t fsz = file_size(f->path);
    print_message("100 MiB in 4 KiB chunks: %.2f s, %.0f MB/s, %zu records, ring %zu bytes / "
                  "%zu records, file %lld bytes, RSS %ld -> %ld KiB (under sanitizers)\n",
                  dt, (double)total / 1e6 / dt, sink.n, sbx_logbuf_bytes(lb),
                  sbx_logbuf_count(lb), (long long)fsz, rss0, rss1);
    /* Every newline made a record (lines are far shorter than SBX_LOGBUF_MAX_LINE). */
    assert_int_equal(sink.n, lines_in_text * 100);
    assert_true(sink.bytes <= total);
    assert_true(sbx_logbuf_bytes(lb) > max / 2);
    assert_true(fsz <= file_bound(lb, max));
    assert_true(biggest <= (off_t)(2 * max + max / 2)); /* ~200-byte lines: 2.25 x max */
    assert_true(dt < 30.0); /* sanitizers slow it down ~5x; see the report for -O2 numbers */
    sbx_logbuf_close(lb);
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_split_across_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crlf_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_flush, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_line_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ring_eviction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ring_wraps_with_varied_lengths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_record_count_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_tail_since, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persistence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_record_recovery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_failure_resync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigkill_loses_nothing_fed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_100mb_feed, setup, teardown),
    };
    return cmocka_run_group_tests_name("logbuf", tests, NULL, NULL);
}
