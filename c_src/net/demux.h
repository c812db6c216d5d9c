/* Docker's multiplexed stream framing (attach, logs and exec of a container without a
 * TTY), as a pure parser: no I/O, no loop, fed with chunks of any size.
 *
 * Each frame is an 8-byte header then its payload:
 *
 *     0  u8      stream: 0 stdin, 1 stdout, 2 stderr, 3 an error from the engine itself
 *     1  u8[3]   zero
 *     4  u32 BE  payload length
 *
 * A frame split across chunks is kept until it is whole, then passed on in one call; a
 * frame whole inside a chunk is passed on in place, without a copy. Frames over
 * SBX_DEMUX_MAX_FRAME bytes, a stream byte over 3 or non-zero padding are refused
 * (the stream is not multiplexed, or is damaged). Empty frames are skipped.
 *
 * Raw mode is for containers with a TTY, whose streams carry no framing: each chunk is
 * passed on as stdout, as it is. */
#ifndef SBX_NET_DEMUX_H
#define SBX_NET_DEMUX_H

#include <stddef.h>

#define SBX_DEMUX_HEADER 8
#define SBX_DEMUX_MAX_FRAME ((size_t)16 << 20)

enum sbx_demux_stream {
    SBX_DEMUX_STDIN = 0,
    SBX_DEMUX_STDOUT = 1,
    SBX_DEMUX_STDERR = 2,
    SBX_DEMUX_SYSERR = 3
};

struct sbx_demux {
    int raw;
    int failed;                           /* refused framing: every feed fails */
    unsigned char hdr[SBX_DEMUX_HEADER];  /* a header split across chunks */
    size_t hdr_len;                       /* its bytes so far (0: between frames) */
    enum sbx_demux_stream stream;         /* of the frame being read */
    size_t need;                          /* its payload length */
    char *buf;                            /* its payload so far, when split */
    size_t len, cap;
};

/* Gets one whole frame's payload (len > 0; data valid during the call only). Returns 0
 * to go on, non-zero to stop: sbx_demux_feed then returns 1 at once without touching
 * the demuxer again, so emit may free it (after sbx_demux_release). */
typedef int (*sbx_demux_emit_fn)(void *arg, enum sbx_demux_stream stream, const char *data,
                                 size_t len);

/* Prepares d (framed, or raw when raw is non-zero). Allocates nothing. */
void sbx_demux_init(struct sbx_demux *d, int raw);

/* Frees what d holds (a partial frame); d may be initialized again. Safe on a zeroed d. */
void sbx_demux_release(struct sbx_demux *d);

/* Parses data[0..len), calling emit for each frame it completes, in order; a partial
 * frame at the end is kept for the next feed. Returns 0 when all of data was taken;
 * 1 when emit asked to stop (the rest of data is dropped; d, if still alive, is at the
 * frame boundary after the frame emitted); -1 with *why set (static string, why may be
 * NULL) for a refused header or lack of memory: frames before it were emitted, d fails
 * every later feed. */
int sbx_demux_feed(struct sbx_demux *d, const char *data, size_t len, sbx_demux_emit_fn emit,
                   void *arg, const char **why);

/* At the end of the stream: 0 if d stopped between frames, -1 with *why set if the
 * stream ended inside a frame (what it held of that frame is lost) or d had failed.
 * Changes nothing. */
int sbx_demux_finish(const struct sbx_demux *d, const char **why);

#endif
