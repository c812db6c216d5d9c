/* Bounds-checked walk over one external-term-format term.
 *
 * ei's decoders trust their input: they take no buffer length. Every term that arrives
 * from a peer is walked here first, so that ei only ever reads buffers known to hold
 * whole, well-formed terms of bounded depth. */
#ifndef SBX_DIST_TERM_CHECK_H
#define SBX_DIST_TERM_CHECK_H

#include <stddef.h>

/* Deepest nesting of lists/tuples/maps/funs accepted. */
#define SBX_TERM_MAX_DEPTH 256

/* Checks that buf[0..len) begins with one whole term (no version byte), using only tags
 * that ei can decode. On success returns 0 and sets *used to the term's size; on failure
 * returns -1 and leaves *used unchanged. Reads nothing outside buf[0..len). */
int sbx_term_check(const unsigned char *buf, size_t len, size_t *used);

#endif
