/* The connection with the host over the virtio-serial port: reading and decoding frames,
 * the HELLO handshake, dispatch of requests, writing the output queue, and noticing the host
 * going away (POLLHUP) and coming back. */
#ifndef SBX_AGENT_SESSION_H
#define SBX_AGENT_SESSION_H

#include <poll.h>

/* Takes the open port fd (non-blocking). */
void session_init(int port_fd);
/* Fills one pollfd (an epoll fd watching the port edge-triggered, so that a host that is
 * away, which the port reports as a lasting POLLHUP, does not make the loop spin); returns 0
 * when the port can be read or written without waiting, else -1. */
int session_poll_fill(struct pollfd *pfd);
/* Handles the poll result: the port's events, then reads, dispatches and writes. */
void session_poll_done(const struct pollfd *pfd);
/* Decodes input already read while the output queue has room again; writes what it can. */
void session_pump(void);
/* Whether SHUTDOWN was received (its OK is queued). */
int session_shutdown_asked(void);
/* Tries to write the whole output queue for up to ms (before powering off). */
void session_drain(int ms);

#endif
