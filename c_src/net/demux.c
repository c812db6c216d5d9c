/* Docker stream demultiplexing; the format is in demux.h. A frame's header may arrive
 * split (kept in d->hdr); its payload is passed on straight from the chunk when the
 * chunk holds all of it, else gathered in d->buf (grown to the frame's size, at most
 * SBX_DEMUX_MAX_FRAME) and passed on once whole. */
#include "net/demux.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define KEEP_BUF ((size_t)256 << 10)

void sbx_demux_init(struct sbx_demux *d, int raw) {
    memset(d, 0, sizeof *d);
    d->raw = raw != 0;
}

void sbx_demux_release(struct sbx_demux *d) {
    free(d->buf);
    d->buf = NULL;
    d->len = d->cap = 0;
}

/* Checks the header in d->hdr and starts its frame. 0, or -1 with *why set. */
static int start_frame(struct sbx_demux *d, const char **why) {
    const unsigned char *h = d->hdr;
    uint32_t size = (uint32_t)h[4] << 24 | (uint32_t)h[5] << 16 | (uint32_t)h[6] << 8 | h[7];

    if (h[0] > SBX_DEMUX_SYSERR) {
        *why = "stream frame: bad stream byte (not a multiplexed stream?)";
        return -1;
    }
    if (h[1] || h[2] || h[3]) {
        *why = "stream frame: non-zero header padding (not a multiplexed stream?)";
        return -1;
    }
    if (size > SBX_DEMUX_MAX_FRAME) {
        *why = "stream frame: larger than 16 MiB";
        return -1;
    }
    d->stream = (enum sbx_demux_stream)h[0];
    d->need = size;
    d->len = 0;
    return 0;
}

int sbx_demux_feed(struct sbx_demux *d, const char *data, size_t len, sbx_demux_emit_fn emit,
                   void *arg, const char **why) {
    const char *dummy;
    size_t off = 0;
    int rc = -1;

    if (!why)
        why = &dummy;
    if (d->failed) {
        *why = "stream frame: earlier framing error";
        goto done;
    }
    if (d->raw) {
        rc = (len > 0 && emit(arg, SBX_DEMUX_STDOUT, data, len) != 0) ? 1 : 0;
        goto done;
    }
    while (off < len) {
        if (d->hdr_len < SBX_DEMUX_HEADER) {
            size_t take = SBX_DEMUX_HEADER - d->hdr_len;
            if (take > len - off)
                take = len - off;
            memcpy(d->hdr + d->hdr_len, data + off, take);
            d->hdr_len += take;
            off += take;
            if (d->hdr_len < SBX_DEMUX_HEADER)
                break;
            if (start_frame(d, why) != 0) {
                d->failed = 1;
                goto done;
            }
        }
        /* In a frame's payload: need - len bytes still to come. */
        size_t avail = len - off, want = d->need - d->len;
        const char *whole = NULL;
        if (d->len == 0 && avail >= want) {
            whole = data + off; /* all in this chunk: no copy */
            off += want;
        } else {
            size_t take = avail < want ? avail : want;
            if (d->cap < d->need) {
                char *b = realloc(d->buf, d->need);
                if (!b) {
                    *why = "stream frame: out of memory";
                    d->failed = 1;
                    goto done;
                }
                d->buf = b;
                d->cap = d->need;
            }
            memcpy(d->buf + d->len, data + off, take);
            d->len += take;
            off += take;
            if (d->len < d->need)
                break;
            whole = d->buf;
        }
        /* The frame is whole: reset to a boundary first, so that emit may free d. */
        size_t n = d->need;
        enum sbx_demux_stream stream = d->stream;
        d->hdr_len = 0;
        d->len = 0;
        d->need = 0;
        if (n > 0 && emit(arg, stream, whole, n) != 0) {
            rc = 1;
            goto done;
        }
        if (d->cap > KEEP_BUF) /* one big frame must not pin its buffer for good */
            sbx_demux_release(d);
    }
    rc = 0;
done:
    return rc;
}

int sbx_demux_finish(const struct sbx_demux *d, const char **why) {
    const char *dummy;
    if (!why)
        why = &dummy;
    if (d->failed) {
        *why = "stream frame: earlier framing error";
        return -1;
    }
    if (d->hdr_len > 0) {
        *why = "stream ended inside a frame";
        return -1;
    }
    return 0;
}
