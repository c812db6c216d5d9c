/* Packet framing and splitting. */
#include "dist/frame.h"

#include "dist/term_check.h"

/* See frame.h. Consumes nothing; *body_len is written only on READY. */
enum sbx_frame_status sbx_frame_peek(const unsigned char *buf, size_t avail, int prefix_bytes,
                                     size_t max, size_t *body_len) {
    size_t n = 0;
    if (avail < (size_t)prefix_bytes)
        return SBX_FRAME_NEED_MORE;
    for (int i = 0; i < prefix_bytes; i++)
        n = n << 8 | buf[i];
    if (n > max)
        return SBX_FRAME_TOO_BIG;
    if (avail - (size_t)prefix_bytes < n)
        return SBX_FRAME_NEED_MORE;
    *body_len = n;
    return SBX_FRAME_READY;
}

/* Checks one versioned term at body[pos..len); sets *term_len including the 131. */
static int versioned_term(const unsigned char *body, size_t len, size_t pos, size_t *term_len) {
    size_t used;
    if (pos >= len || body[pos] != 131)
        return -1;
    if (sbx_term_check(body + pos + 1, len - pos - 1, &used) != 0)
        return -1;
    *term_len = used + 1;
    return 0;
}

/* See frame.h. out's pointers alias body, which the caller keeps
 * alive while using them; out may be partly written on -1. */
int sbx_frame_split(const unsigned char *body, size_t len, struct sbx_dist_packet *out) {
    size_t ctl_len, msg_len;
    if (len < 2 || body[0] != 112)
        return -1;
    if (versioned_term(body, len, 1, &ctl_len) != 0)
        return -1;
    out->ctl = (const char *)body + 1;
    out->ctl_len = ctl_len;
    out->msg = NULL;
    out->msg_len = 0;
    size_t pos = 1 + ctl_len;
    if (pos == len)
        return 0;
    if (versioned_term(body, len, pos, &msg_len) != 0 || pos + msg_len != len)
        return -1;
    out->msg = (const char *)body + pos;
    out->msg_len = msg_len;
    return 0;
}
