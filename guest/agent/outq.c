/* The output queue (see outq.h). */
#include "outq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Total size of the frame at p (length field + 4). */
static size_t frame_size(const uint8_t *p) {
    return ((size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3]) + 4;
}

static uint32_t frame_id(const uint8_t *p) {
    return (uint32_t)p[5] << 24 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 8 | p[8];
}

/* The buffer is owned by q for the life of the program. */
int outq_init(struct outq *q, size_t cap) {
    q->buf = malloc(cap);
    q->cap = cap;
    q->start = q->end = q->frame_start = 0;
    return q->buf != NULL ? 0 : -1;
}

size_t outq_used(const struct outq *q) {
    return q->end - q->start;
}

size_t outq_free(const struct outq *q) {
    return q->cap - outq_used(q) - (q->start - q->frame_start);
}

/* Moves the unsent frames (from frame_start) to the front of the buffer. */
static void compact(struct outq *q) {
    if (q->frame_start == 0)
        return;
    memmove(q->buf, q->buf + q->frame_start, q->end - q->frame_start);
    q->start -= q->frame_start;
    q->end -= q->frame_start;
    q->frame_start = 0;
}

uint8_t *outq_reserve(struct outq *q, size_t need) {
    uint8_t *at = NULL;
    if (outq_free(q) >= need) {
        if (q->cap - q->end < need)
            compact(q);
        at = q->buf + q->end;
    }
    return at;
}

void outq_commit(struct outq *q, size_t n) {
    q->end += n;
}

/* Advances frame_start past the frames that are now completely written. */
static void advance_frames(struct outq *q) {
    while (q->frame_start < q->start && q->end - q->frame_start >= 4) {
        size_t fs = frame_size(q->buf + q->frame_start);
        if (q->frame_start + fs > q->start)
            break;
        q->frame_start += fs;
    }
    if (q->start == q->end)
        q->start = q->end = q->frame_start = 0;
}

int outq_flush(struct outq *q, int fd) {
    int rc = 0;
    while (q->start < q->end) {
        ssize_t n = write(fd, q->buf + q->start, q->end - q->start);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = errno == EAGAIN ? 1 : -1;
            break;
        }
        q->start += (size_t)n;
        advance_frames(q);
    }
    return rc;
}

void outq_reconnect(struct outq *q, uint32_t keep_id, int rewind) {
    size_t p = q->frame_start, w = q->frame_start;
    if (rewind) {
        q->start = q->frame_start;
    } else if (q->start > q->frame_start) {
        p = w = q->frame_start + frame_size(q->buf + q->frame_start); /* finish it */
    }
    while (p < q->end) {
        size_t fs = frame_size(q->buf + p);
        if (frame_id(q->buf + p) == keep_id) {
            memmove(q->buf + w, q->buf + p, fs);
            w += fs;
        }
        p += fs;
    }
    q->end = w;
    if (q->start == q->end)
        q->start = q->end = q->frame_start = 0;
}

int outq_push_front(struct outq *q, const uint8_t *frame, size_t n) {
    int rc = -1;
    if (outq_free(q) >= n) {
        compact(q);
        /* after the frame being written, if any: it must stay whole */
        size_t at = q->start > 0 ? frame_size(q->buf) : 0;
        memmove(q->buf + at + n, q->buf + at, q->end - at);
        memcpy(q->buf + at, frame, n);
        q->end += n;
        rc = 0;
    }
    return rc;
}
