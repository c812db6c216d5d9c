/* Framing of the byte stream: length-prefixed packets, and the split of a data packet
 * into its control term and optional message term. Pure functions over buffers. */
#ifndef SBX_DIST_FRAME_H
#define SBX_DIST_FRAME_H

#include <stddef.h>

enum sbx_frame_status { SBX_FRAME_NEED_MORE = 0, SBX_FRAME_READY = 1, SBX_FRAME_TOO_BIG = 2 };

/* Looks at the first bytes of a stream: prefix_bytes (2 during the handshake, 4 after)
 * of big-endian length. READY sets *body_len (0 is a tick after the handshake);
 * TOO_BIG means the announced length exceeds max and the connection must be dropped. */
enum sbx_frame_status sbx_frame_peek(const unsigned char *buf, size_t avail, int prefix_bytes,
                                     size_t max, size_t *body_len);

/* A data packet: 112, then a control term, then optionally a message term, each
 * starting with the version byte 131. The pointers address the version bytes and lie
 * inside the packet; both terms have been fully bounds-checked. */
struct sbx_dist_packet {
    const char *ctl;
    size_t ctl_len;
    const char *msg; /* NULL when the packet has no message */
    size_t msg_len;
};

/* Splits and validates a packet body. 0 on success, -1 if it is malformed (the
 * connection must then be dropped). */
int sbx_frame_split(const unsigned char *body, size_t len, struct sbx_dist_packet *out);

#endif
