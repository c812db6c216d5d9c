/* The connection with the host over the virtio-serial port: reading and decoding frames,
 * the HELLO handshake, dispatch of requests, writing the output queue, and noticing the host
 * going away (POLLHUP) and coming back. */
#ifndef SBX_AGENT_SESSION_H
#define SBX_AGENT_SESSION_H

#include <poll.h>

/* Takes the open port fd (non-blocking). */
void session_init(int port_fd);
/* Fills one pollfd for the port (fd -1 while the host is away and the retry is not due);
 * returns the ms until the next retry (-1 = none). */
int session_poll_fill(struct pollfd *pfd);
/* Handles the port's poll result: reads, dispatches, writes. */
void session_poll_done(const struct pollfd *pfd);
/* Decodes input already read while the output queue has room again; writes what it can. */
void session_pump(void);
/* Whether SHUTDOWN was received (its OK is queued). */
int session_shutdown_asked(void);
/* Tries to write the whole output queue for up to ms (before powering off). */
void session_drain(int ms);

#endif
