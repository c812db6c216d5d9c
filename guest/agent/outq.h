/* The agent's output queue: whole frames waiting to be written to the port, in one linear
 * buffer of a fixed size allocated once. Frames are appended whole and written out in order;
 * the queue knows where the frame being written starts, so a reconnection can resend it from
 * its first byte and drop what belonged to the old connection. */
#ifndef SBX_AGENT_OUTQ_H
#define SBX_AGENT_OUTQ_H

#include <stddef.h>
#include <stdint.h>

struct outq {
    uint8_t *buf;
    size_t cap;
    size_t start;       /* first byte not yet written */
    size_t end;         /* one past the last queued byte */
    size_t frame_start; /* start of the frame that holds `start` (<= start) */
};

/* Allocates the buffer (cap bytes); 0 or -1. */
int outq_init(struct outq *q, size_t cap);
size_t outq_used(const struct outq *q);
size_t outq_free(const struct outq *q);
/* A pointer to at least `need` contiguous free bytes at the tail (compacting the buffer if
 * needed), or NULL if the queue has less free room. Nothing is queued until outq_commit. */
uint8_t *outq_reserve(struct outq *q, size_t need);
/* Queues the n bytes (one or more whole frames) written at the reserved pointer. */
void outq_commit(struct outq *q, size_t n);
/* Writes what it can to the non-blocking fd: 0 when the queue is empty, 1 when the fd would
 * block (EAGAIN), -1 with errno for another error. */
int outq_flush(struct outq *q, int fd);
/* A HELLO: only the frames with request id keep_id (the main workload's) are kept. On a new
 * connection (rewind) the frame being written is rewound to its first byte (the old
 * connection's host never got all of it); on the same connection it is finished first,
 * whatever its id. */
void outq_reconnect(struct outq *q, uint32_t keep_id, int rewind);
/* Puts one whole frame in front of every queued frame not yet started (the HELLO answer);
 * 0, or -1 if there is no room. */
int outq_push_front(struct outq *q, const uint8_t *frame, size_t n);

#endif
