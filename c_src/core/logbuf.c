/* A sandbox's output: a bounded ring of records in memory and an append-only file.
 *
 * Memory. Record data lives in one byte arena of max_bytes + SBX_LOGBUF_MAX_LINE bytes
 * (allocated once, its pages touched only as output arrives), each record contiguous, a
 * record that does not fit before the end of the arena starting again at its front. An
 * index ring of 16-byte entries {ts, offset, length|stream} says where each record is.
 * Offsets are also counted "virtually" (never wrapping: a record that skips the end of
 * the arena moves on to the next multiple of the arena's size), so that the span from
 * the oldest to the newest byte tells whether a new record would overwrite an old one.
 * Data is bounded by max_bytes (oldest dropped); the number of records by
 * max_bytes / BYTES_PER_REC + 1, so that empty or tiny lines cannot grow the
 * index without bound.
 *
 * File. An 8-byte header "SBXLOG1\n", then records, all integers little-endian:
 *
 *     0  u32  magic "LREC"
 *     4  u32  len (at most SBX_LOGBUF_MAX_LINE)
 *     8  i64  ts
 *    16  u8   stream (0 stdout, 1 stderr, 2 console), then 3 zero bytes
 *    20  len bytes of data
 *    20+len  u32  CRC-32C of the 20+len bytes before it
 *
 * On open the records are read in order up to the first one that is cut short or does
 * not check (a crash during a write, or garbage after a power loss); the file is
 * truncated there. Every feed ends with the records it made written (plain write(2),
 * no fsync), so a killed process loses nothing a feed returned for.
 *
 * Compaction. When a feed leaves the file larger than 2 x max_bytes, and at least half
 * of it (and 4 KiB) is records the ring no longer holds, the file is rewritten with the
 * ring's records: path.tmp, then swapped with path (renameat2 RENAME_EXCHANGE, or rename
 * where that is not supported) and unlinked; no fsync, a power loss may cost the log,
 * never the process's consistency. The "half" keeps rewrites amortized: with short
 * lines the ring's records take more than max_bytes in the file (24 bytes each on top
 * of the data, at most max_bytes + 24 x (max_bytes / 32 + 1) in all), and rewriting them
 * every time the file passed 2 x max_bytes would rewrite the ring for every few KiB
 * fed. So the file stays under max(2 x max_bytes, 2 x what the ring takes in it) plus
 * one feed: about 2.2 x max_bytes for 200-byte lines, 3.5 x at worst (tiny lines), and
 * every byte fed is written at most about twice.
 *
 * Write failures. The file is cut back to its last good record and the next feed (or
 * flush, or close) rewrites it whole from the ring; until then nothing is appended. */
#define _GNU_SOURCE
#include "core/logbuf.h"

#include "util/fdio.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_MAGIC "SBXLOG1\n"
#define FILE_HDR 8u
#define REC_MAGIC 0x4345524cu /* "LREC" little-endian */
#define REC_HDR 20u
#define REC_OVERHEAD 24u      /* header and CRC */
/* A ring entry's length word: the length in the low bits, the stream in the top two. */
#define STREAM_SHIFT 30
#define LEN_MASK ((1u << STREAM_SHIFT) - 1)
#define BYTES_PER_REC 32u
#define MAX_BYTES_LIMIT ((size_t)1 << 30)
#define WBUF_FLUSH (64u * 1024)
#define RBUF_SIZE (256u * 1024)
#define MIN_INDEX 16u

struct rec {
    int64_t ts;
    uint32_t off;        /* in the arena */
    uint32_t len_stream; /* length | stream << STREAM_SHIFT */
};

struct pending {
    char *buf;
    size_t len, cap;
    int64_t ts; /* of the last chunk that added to it */
};

struct sbx_logbuf {
    int fd;                /* the log file, open only during a write or load (else -1) */
    char *path, *tmp_path;
    size_t max_bytes, max_records;

    char *arena;
    size_t acap;
    uint64_t vhead, vtail; /* virtual offsets: oldest record's first byte, past the newest */
    size_t ptail;          /* vtail in the arena, < acap */
    size_t bytes;

    struct rec *recs; /* ring, rcap a power of two */
    size_t rcap, rfirst, count;

    uint64_t file_size; /* bytes of the file known good */
    uint64_t ring_file; /* what the header and the ring's records take in a file */
    int resync;         /* the file misses records: rewrite it at the next chance */
    unsigned char *wbuf;
    size_t wlen, wcap;

    struct pending pend[SBX_STREAM_COUNT];
};

/* ---- CRC-32C: SSE4.2 where the CPU has it, else slicing by 8 ------------------------ */

static uint32_t crc_tab[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static uint32_t crc32c_soft(uint32_t crc, const unsigned char *p, size_t n);
static uint32_t (*crc32c)(uint32_t crc, const unsigned char *p, size_t n) = crc32c_soft;

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_CRC_HW 1
/* CRC-32C of p[0..n) continuing from crc, with the crc32 instruction. Reads only. */
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc,
                                                             const unsigned char *p,
                                                             size_t n) {
    uint64_t c = ~crc;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8); /* x86 is little-endian: bytes in order, as the CRC wants */
        c = __builtin_ia32_crc32di(c, w);
        p += 8;
        n -= 8;
    }
    while (n-- > 0)
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
    return ~(uint32_t)c;
}
#endif

/* Fills crc_tab and picks the CRC function (once per process): the instruction when the
 * CPU has it and it agrees with the tables on a test vector that the tables get right. */
static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        crc_tab[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_tab[t][i] = (crc_tab[t - 1][i] >> 8) ^ crc_tab[0][crc_tab[t - 1][i] & 0xff];
#ifdef HAVE_CRC_HW
    unsigned char v[77];
    for (size_t i = 0; i < sizeof v; i++)
        v[i] = (unsigned char)(i * 37 + 11);
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2") &&
        crc32c_soft(0, (const unsigned char *)"123456789", 9) == 0xe3069283u &&
        crc32c_hw(0, v, sizeof v) == crc32c_soft(0, v, sizeof v))
        crc32c = crc32c_hw;
#endif
}

/* CRC-32C of p[0..n) continuing from crc (0 to start), with the tables. Reads only. */
static uint32_t crc32c_soft(uint32_t crc, const unsigned char *p, size_t n) {
    crc = ~crc;
    while (n >= 8) {
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                             (uint32_t)p[3] << 24);
        uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 |
                      (uint32_t)p[7] << 24;
        crc = crc_tab[7][lo & 0xff] ^ crc_tab[6][(lo >> 8) & 0xff] ^
              crc_tab[5][(lo >> 16) & 0xff] ^ crc_tab[4][lo >> 24] ^ crc_tab[3][hi & 0xff] ^
              crc_tab[2][(hi >> 8) & 0xff] ^ crc_tab[1][(hi >> 16) & 0xff] ^ crc_tab[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n-- > 0)
        crc = crc_tab[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* Writes v little-endian (the log file's byte order) at p[0..4). */
static void put32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

/* Reads a little-endian 32-bit value at p[0..4). */
static uint32_t get32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- file output --------------------------------------------------------------------- */


/* Makes room for n more bytes in lb->wbuf. 0, or -1 (ENOMEM) leaving it unchanged. */
static int wbuf_reserve(struct sbx_logbuf *lb, size_t n) {
    if (lb->wcap - lb->wlen >= n)
        return 0;
    size_t cap = lb->wcap > 0 ? lb->wcap : 4096;
    while (cap - lb->wlen < n)
        cap *= 2;
    unsigned char *nb = realloc(lb->wbuf, cap);
    if (nb == NULL)
        return -1;
    lb->wbuf = nb;
    lb->wcap = cap;
    return 0;
}

/* Appends the encoded record to lb->wbuf. 0, or -1 (ENOMEM) leaving wbuf unchanged. */
static int wbuf_add(struct sbx_logbuf *lb, int64_t ts, int stream, const char *data,
                    size_t len) {
    if (wbuf_reserve(lb, REC_OVERHEAD + len) != 0)
        return -1;
    unsigned char *p = lb->wbuf + lb->wlen;
    uint64_t uts = (uint64_t)ts;
    put32(p, REC_MAGIC);
    put32(p + 4, (uint32_t)len);
    put32(p + 8, (uint32_t)uts);
    put32(p + 12, (uint32_t)(uts >> 32));
    p[16] = (unsigned char)stream;
    p[17] = p[18] = p[19] = 0;
    if (len > 0)
        memcpy(p + REC_HDR, data, len);
    put32(p + REC_HDR + len, crc32c(0, p, REC_HDR + len));
    lb->wlen += REC_OVERHEAD + len;
    return 0;
}

/* Writes what wbuf holds to the log file and empties wbuf. On failure the file is cut
 * back to its last good record (best effort) and lb->resync is set; -1 (errno). While
 * resync is set nothing is appended: the next compaction writes everything. */
static int wbuf_flush(struct sbx_logbuf *lb) {
    int rc = 0;
    if (lb->wlen == 0)
        goto done;
    if (lb->resync) {
        rc = -1;
        errno = EIO;
        goto done;
    }
    /* The file is open only while it is written: an idle sandbox holds no descriptor
     * for its log. */
    if (lb->fd < 0)
        lb->fd = open(lb->path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
    if (lb->fd < 0 || sbx_write_all(lb->fd, lb->wbuf, lb->wlen) != 0) {
        int saved = errno;
        if (lb->fd >= 0)
            (void)!ftruncate(lb->fd, (off_t)lb->file_size);
        lb->resync = 1;
        errno = saved;
        rc = -1;
        goto done;
    }
    lb->file_size += lb->wlen;
done:
    lb->wlen = 0;
    if (lb->fd >= 0) {
        int saved = errno;
        close(lb->fd);
        lb->fd = -1;
        errno = saved;
    }
    return rc;
}

/* ---- the ring ------------------------------------------------------------------------ */

static struct rec *rec_at(const struct sbx_logbuf *lb, size_t i) {
    return &lb->recs[(lb->rfirst + i) & (lb->rcap - 1)];
}

/* A record's data length (the stream bits masked off). */
static size_t rec_len(const struct rec *r) { return r->len_stream & LEN_MASK; }

/* The stream a record came from. */
static enum sbx_stream rec_stream(const struct rec *r) {
    return (enum sbx_stream)(r->len_stream >> STREAM_SHIFT);
}

/* Drops the oldest record (lb->count > 0). */
static void evict_oldest(struct sbx_logbuf *lb) {
    const struct rec *r = rec_at(lb, 0);
    size_t len = rec_len(r);
    size_t end_phys = r->off + len; /* <= acap */
    uint64_t end = lb->vhead + len;
    lb->bytes -= len;
    lb->ring_file -= REC_OVERHEAD + len;
    lb->rfirst = (lb->rfirst + 1) & (lb->rcap - 1);
    lb->count--;
    if (lb->count == 0) {
        lb->vhead = lb->vtail = 0;
        lb->ptail = 0;
        return;
    }
    /* The next record starts where this one ends, or at the front of the arena when it
     * skipped the end. */
    size_t next_off = rec_at(lb, 0)->off;
    lb->vhead = end + (next_off >= end_phys ? next_off - end_phys : lb->acap - end_phys + next_off);
}

/* Doubles the index ring (up to what max_records needs). 0, or -1 (ENOMEM) leaving the
 * ring unchanged. */
static int grow_index(struct sbx_logbuf *lb) {
    size_t ncap = lb->rcap > 0 ? lb->rcap * 2 : MIN_INDEX;
    struct rec *nr = malloc(ncap * sizeof *nr);
    if (nr == NULL)
        return -1;
    for (size_t i = 0; i < lb->count; i++)
        nr[i] = *rec_at(lb, i);
    free(lb->recs);
    lb->recs = nr;
    lb->rcap = ncap;
    lb->rfirst = 0;
    return 0;
}

/* Where a record of len bytes would start: its virtual offset, and in *phys its offset in
 * the arena. */
static uint64_t place(const struct sbx_logbuf *lb, size_t len, size_t *phys) {
    if (lb->ptail + len > lb->acap) {
        *phys = 0;
        return lb->vtail + (lb->acap - lb->ptail);
    }
    *phys = lb->ptail;
    return lb->vtail;
}

/* Stores the record made of a[0..an) and b[0..bn) (an + bn <= SBX_LOGBUF_MAX_LINE):
 * evicts what it must, copies the data into the arena, queues the record for the file
 * when persist is set and passes it to emit. Never fails: without memory to grow the
 * index it drops one more old record (the index always has room for one). */
static void store(struct sbx_logbuf *lb, int64_t ts, enum sbx_stream stream, const char *a,
                  size_t an, const char *b, size_t bn, int persist, sbx_logbuf_emit_fn emit,
                  void *arg) {
    size_t len = an + bn;

    while (lb->count > 0 && (lb->bytes + len > lb->max_bytes || lb->count >= lb->max_records))
        evict_oldest(lb);
    if (lb->count == lb->rcap && grow_index(lb) != 0)
        evict_oldest(lb);
    size_t phys;
    uint64_t v = place(lb, len, &phys);
    while (lb->count > 0 && v + len - lb->vhead > lb->acap) {
        evict_oldest(lb);
        v = place(lb, len, &phys);
    }
    struct rec *r = &lb->recs[(lb->rfirst + lb->count) & (lb->rcap - 1)];
    r->ts = ts;
    r->off = (uint32_t)phys;
    r->len_stream = (uint32_t)len | (uint32_t)stream << STREAM_SHIFT;
    if (lb->count == 0)
        lb->vhead = v;
    lb->count++;
    lb->vtail = v + len;
    lb->ptail = phys + len < lb->acap ? phys + len : 0;
    lb->bytes += len;
    lb->ring_file += REC_OVERHEAD + len;
    char *dst = lb->arena + r->off;
    if (an > 0)
        memcpy(dst, a, an);
    if (bn > 0)
        memcpy(dst + an, b, bn);

    if (persist && !lb->resync) {
        if (wbuf_add(lb, ts, (int)stream, dst, len) != 0)
            lb->resync = 1; /* no memory to queue it: the next compaction writes it */
        else if (lb->wlen >= WBUF_FLUSH)
            (void)wbuf_flush(lb);
    }
    if (emit != NULL)
        emit(arg, ts, stream, dst, len);
    while (lb->count > 0 && lb->bytes > lb->max_bytes)
        evict_oldest(lb);
}

/* ---- compaction ---------------------------------------------------------------------- */

/* Rewrites the file with the ring's records: path.tmp, then swapped with path (closed
 * once written, like the file it replaces). 0, or -1 (errno) leaving the old file and fd in place (the
 * temporary file is removed). wbuf must be empty; it is empty again on return. */
static int compact(struct sbx_logbuf *lb) {
    int rc = -1;
    int tfd = -1;

    if (unlink(lb->tmp_path) != 0 && errno != ENOENT)
        goto done;
    tfd = open(lb->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC | O_NOFOLLOW,
               0600);
    if (tfd < 0)
        goto done;
    if (sbx_write_all(tfd, FILE_MAGIC, FILE_HDR) != 0)
        goto done;
    for (size_t i = 0; i < lb->count; i++) {
        const struct rec *r = rec_at(lb, i);
        if (wbuf_add(lb, r->ts, (int)rec_stream(r), lb->arena + r->off, rec_len(r)) != 0)
            goto done;
        if (lb->wlen >= WBUF_FLUSH || i + 1 == lb->count) {
            if (sbx_write_all(tfd, lb->wbuf, lb->wlen) != 0)
                goto done;
            lb->wlen = 0;
        }
    }
    /* Swapping the two names keeps path whole throughout, like rename(2), and unlike a
     * rename over an existing file it does not make ext4 flush the new file right away
     * (appends would then wait on that writeback). */
    if (renameat2(AT_FDCWD, lb->tmp_path, AT_FDCWD, lb->path, RENAME_EXCHANGE) == 0)
        (void)unlink(lb->tmp_path);
    else if (rename(lb->tmp_path, lb->path) != 0)
        goto done;
    if (lb->fd >= 0)
        close(lb->fd);
    lb->fd = -1;
    close(tfd);
    tfd = -1;
    lb->file_size = lb->ring_file;
    lb->resync = 0;
    rc = 0;
done:
    lb->wlen = 0;
    if (tfd >= 0) {
        int saved = errno;
        close(tfd);
        unlink(lb->tmp_path);
        errno = saved;
    }
    return rc;
}

/* Ends a feed or flush: writes queued records, rewrites the file if it is due (or
 * misses records). 0, or -1 (errno) if the file could not be brought up to date. */
static int sync_file(struct sbx_logbuf *lb) {
    int rc = wbuf_flush(lb);
    uint64_t garbage = lb->file_size > lb->ring_file ? lb->file_size - lb->ring_file : 0;
    if (lb->resync || (lb->file_size > 2 * (uint64_t)lb->max_bytes && garbage >= lb->ring_file &&
                       garbage >= 4096)) {
        int was_resync = lb->resync;
        if (compact(lb) != 0 && was_resync)
            rc = -1;
        else if (was_resync)
            rc = 0;
    }
    return rc;
}

/* See logbuf.h. */
const char *sbx_stream_name(enum sbx_stream stream) {
    switch (stream) {
    case SBX_STREAM_STDOUT: return "stdout";
    case SBX_STREAM_STDERR: return "stderr";
    case SBX_STREAM_CONSOLE: return "console";
    }
    return "stderr";
}

/* ---- loading ------------------------------------------------------------------------- */

/* Checks the record at p (avail bytes). Its size, 0 if it needs more bytes, -1 if it is
 * not a record. */
static long parse_rec(const unsigned char *p, size_t avail) {
    if (avail >= 4 && get32(p) != REC_MAGIC)
        return -1;
    if (avail < REC_HDR)
        return 0;
    uint32_t len = get32(p + 4);
    if (len > SBX_LOGBUF_MAX_LINE || p[16] >= SBX_STREAM_COUNT || p[17] != 0 || p[18] != 0 || p[19] != 0)
        return -1;
    if (avail < REC_OVERHEAD + len)
        return 0;
    if (crc32c(0, p, REC_HDR + len) != get32(p + REC_HDR + len))
        return -1;
    return (long)(REC_OVERHEAD + len);
}

/* Reads the records of lb->fd (size bytes, header checked) into the ring, newest kept.
 * Sets lb->file_size to the end of the last good record. 0, or -1 (errno) on a read
 * error (the ring may then hold some records). */
static int load(struct sbx_logbuf *lb, uint64_t size) {
    int rc = -1;
    unsigned char *rb = malloc(RBUF_SIZE);
    uint64_t pos = FILE_HDR; /* file offset of rb[0] */
    size_t have = 0;

    if (rb == NULL)
        goto done;
    for (;;) {
        ssize_t n = pread(lb->fd, rb + have, RBUF_SIZE - have, (off_t)(pos + have));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto done;
        have += (size_t)n;
        size_t used = 0;
        long r = 0;
        while ((r = parse_rec(rb + used, have - used)) > 0) {
            const unsigned char *p = rb + used;
            uint32_t len = get32(p + 4);
            uint64_t uts = (uint64_t)get32(p + 8) | (uint64_t)get32(p + 12) << 32;
            store(lb, (int64_t)uts, (enum sbx_stream)p[16],
                  (const char *)p + REC_HDR, len, NULL, 0, 0, NULL, NULL);
            used += (size_t)r;
        }
        pos += used;
        memmove(rb, rb + used, have - used);
        have -= used;
        if (r < 0 || n == 0 || pos + have >= size)
            break;
    }
    lb->file_size = pos;
    rc = 0;
done:
    free(rb);
    return rc;
}

/* ---- API ----------------------------------------------------------------------------- */

/* Returns a new logbuf owning its fd and copies of path; NULL (errno) with nothing left
 * open. The file is created (0600) or repaired, never replaced: a file that does not
 * start with the header fails with EINVAL and is left as it is. */
struct sbx_logbuf *sbx_logbuf_open(const char *path, size_t max_bytes) {
    struct sbx_logbuf *lb = NULL;
    size_t plen = strlen(path);
    struct stat st;
    char hdr[FILE_HDR];
    int saved;

    (void)pthread_once(&crc_once, crc_init);
    if (max_bytes > MAX_BYTES_LIMIT) {
        errno = EINVAL;
        goto err;
    }
    lb = calloc(1, sizeof *lb);
    if (lb == NULL)
        goto err;
    lb->fd = -1;
    lb->max_bytes = max_bytes;
    lb->max_records = max_bytes / BYTES_PER_REC + 1;
    lb->acap = max_bytes + SBX_LOGBUF_MAX_LINE;
    lb->ring_file = FILE_HDR;
    lb->path = malloc(plen + 1);
    lb->tmp_path = malloc(plen + 5);
    lb->arena = malloc(lb->acap);
    if (lb->path == NULL || lb->tmp_path == NULL || lb->arena == NULL)
        goto err;
    memcpy(lb->path, path, plen + 1);
    memcpy(lb->tmp_path, path, plen);
    memcpy(lb->tmp_path + plen, ".tmp", 5);
    if (grow_index(lb) != 0)
        goto err;

    lb->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (lb->fd < 0 || fstat(lb->fd, &st) != 0)
        goto err;
    if (!S_ISREG(st.st_mode)) {
        errno = EINVAL;
        goto err;
    }
    uint64_t size = (uint64_t)st.st_size;
    ssize_t got = pread(lb->fd, hdr, FILE_HDR, 0);
    if (got < 0)
        goto err;
    if (size < FILE_HDR) {
        /* New, or cut while its header was written. */
        if (got > 0 && memcmp(hdr, FILE_MAGIC, (size_t)got) != 0) {
            errno = EINVAL;
            goto err;
        }
        if (ftruncate(lb->fd, 0) != 0 || sbx_write_all(lb->fd, FILE_MAGIC, FILE_HDR) != 0)
            goto err;
        lb->file_size = FILE_HDR;
    } else {
        if (got != FILE_HDR) {
            errno = EIO;
            goto err;
        }
        if (memcmp(hdr, FILE_MAGIC, FILE_HDR) != 0) {
            errno = EINVAL;
            goto err;
        }
        if (load(lb, size) != 0)
            goto err;
        /* Cut the damaged tail; if that fails, the next feed rewrites the file. */
        if (lb->file_size < size && ftruncate(lb->fd, (off_t)lb->file_size) != 0)
            lb->resync = 1;
        (void)sync_file(lb);
    }
    /* Reopened for each write (wbuf_flush). */
    if (lb->fd >= 0)
        close(lb->fd);
    lb->fd = -1;
    return lb;
err:
    saved = errno;
    if (lb != NULL) {
        if (lb->fd >= 0)
            close(lb->fd);
        free(lb->wbuf);
        free(lb->path);
        free(lb->tmp_path);
        free(lb->arena);
        free(lb->recs);
        free(lb);
    }
    errno = saved;
    return NULL;
}

/* Stores the partial lines, writes what is queued (rewriting the file if it misses
 * records), then frees lb and closes its file. Safe on NULL. */
void sbx_logbuf_close(struct sbx_logbuf *lb) {
    if (lb == NULL)
        return;
    for (int s = 0; s < SBX_STREAM_COUNT; s++)
        if (lb->pend[s].len > 0)
            store(lb, lb->pend[s].ts, (enum sbx_stream)s, lb->pend[s].buf, lb->pend[s].len,
                  NULL, 0, 1, NULL, NULL);
    (void)wbuf_flush(lb);
    if (lb->resync)
        (void)compact(lb);
    if (lb->fd >= 0)
        close(lb->fd);
    for (int s = 0; s < SBX_STREAM_COUNT; s++)
        free(lb->pend[s].buf);
    free(lb->wbuf);
    free(lb->path);
    free(lb->tmp_path);
    free(lb->arena);
    free(lb->recs);
    free(lb);
}

/* Appends p[0..n) to the partial line pd (pd->len + n <= SBX_LOGBUF_MAX_LINE). 0, or -1
 * (ENOMEM) leaving pd unchanged. */
static int pending_add(struct pending *pd, const char *p, size_t n) {
    if (pd->cap - pd->len < n) {
        size_t cap = pd->cap > 0 ? pd->cap : 256;
        while (cap - pd->len < n)
            cap *= 2;
        if (cap > SBX_LOGBUF_MAX_LINE)
            cap = SBX_LOGBUF_MAX_LINE;
        char *nb = realloc(pd->buf, cap);
        if (nb == NULL)
            return -1;
        pd->buf = nb;
        pd->cap = cap;
    }
    memcpy(pd->buf + pd->len, p, n);
    pd->len += n;
    return 0;
}

/* Splits data into records (the caller keeps data). Only '\n' ends a line ("\r" stays
 * in the data); a line longer than SBX_LOGBUF_MAX_LINE is cut into records of that
 * size; the rest waits in the stream's partial line. A record's ts is that of the chunk
 * that completes it. -1 (EINVAL) for an unknown stream, with nothing stored. */
int sbx_logbuf_feed(struct sbx_logbuf *lb, int64_t ts, enum sbx_stream stream,
                    const char *data, size_t len, sbx_logbuf_emit_fn emit, void *arg) {
    if ((unsigned)stream >= SBX_STREAM_COUNT) {
        errno = EINVAL;
        return -1;
    }
    struct pending *pd = &lb->pend[stream];
    const char *p = data, *end = data + len;

    while (p < end) {
        size_t room = SBX_LOGBUF_MAX_LINE - pd->len;
        size_t avail = (size_t)(end - p);
        const char *nl = memchr(p, '\n', avail <= room ? avail : room + 1);
        if (nl != NULL) {
            store(lb, ts, stream, pd->buf, pd->len, p, (size_t)(nl - p), 1, emit, arg);
            pd->len = 0;
            p = nl + 1;
        } else if (avail <= room && pending_add(pd, p, avail) == 0) {
            pd->ts = ts;
            p = end;
        } else {
            /* Too long (or no memory to wait): cut here. */
            size_t take = avail <= room ? avail : room;
            store(lb, ts, stream, pd->buf, pd->len, p, take, 1, emit, arg);
            pd->len = 0;
            p += take;
        }
    }
    return sync_file(lb);
}

/* Stores stream's partial line, if any, as a record with ts and writes it out. */
void sbx_logbuf_flush(struct sbx_logbuf *lb, int64_t ts, enum sbx_stream stream,
                      sbx_logbuf_emit_fn emit, void *arg) {
    if ((unsigned)stream >= SBX_STREAM_COUNT)
        return;
    struct pending *pd = &lb->pend[stream];
    if (pd->len == 0)
        return;
    store(lb, ts, stream, pd->buf, pd->len, NULL, 0, 1, emit, arg);
    pd->len = 0;
    (void)sync_file(lb);
}

/* Passes records to fn (may be NULL: only counts) with pointers into the ring, valid
 * during the call; fn must not feed lb. tail 0 passes nothing. Changes nothing. */
size_t sbx_logbuf_query(const struct sbx_logbuf *lb, size_t tail, int64_t since,
                        sbx_logbuf_emit_fn fn, void *arg) {
    size_t start = 0, n = 0, passed = 0;
    if (lb == NULL || tail == 0)
        return 0;
    for (size_t i = lb->count; i-- > 0;) {
        if (rec_at(lb, i)->ts >= since) {
            start = i;
            if (++n == tail)
                break;
        }
    }
    for (size_t i = start; i < lb->count && passed < n; i++) {
        const struct rec *r = rec_at(lb, i);
        if (r->ts < since)
            continue;
        if (fn != NULL)
            fn(arg, r->ts, rec_stream(r), lb->arena + r->off, rec_len(r));
        passed++;
    }
    return passed;
}

/* See logbuf.h. 0 for NULL. */
size_t sbx_logbuf_bytes(const struct sbx_logbuf *lb) { return lb != NULL ? lb->bytes : 0; }

/* See logbuf.h. 0 for NULL. */
size_t sbx_logbuf_count(const struct sbx_logbuf *lb) { return lb != NULL ? lb->count : 0; }
