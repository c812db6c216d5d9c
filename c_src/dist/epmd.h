/* epmd: registering this node (ALIVE2) and asking for a peer's port (PORT_PLEASE2). */
#ifndef SBX_DIST_EPMD_H
#define SBX_DIST_EPMD_H

#include <stddef.h>
#include <stdint.h>

/* Registers `alive` on the local epmd (127.0.0.1:4369) for `port`, starting
 * `epmd -daemon` first if nothing listens. Blocking with a 5 s bound: called once at
 * start-up, before the node serves anyone. On success returns 0 with *fd_out open (it
 * must stay open: closing it unregisters) and *creation set from epmd's reply. On
 * failure returns -1 with *why set (static string) and nothing open. */
int sbx_epmd_register(const char *alive, uint16_t port, int *fd_out, uint32_t *creation,
                      const char **why);

/* Writes a PORT_PLEASE2_REQ for the alive part of node_name; returns its size or -1. */
int sbx_epmd_encode_port_please(unsigned char *out, size_t cap, const char *node_name);

/* Parses a PORT2_RESP from buf[0..len). Returns 0 if more bytes are needed, 1 with *port
 * set if the node is registered and speaks version 6, -1 with *why set otherwise. */
int sbx_epmd_parse_port_reply(const unsigned char *buf, size_t len, uint16_t *port,
                              const char **why);

/* Parses an ALIVE2_X_RESP / ALIVE2_RESP; same return convention, sets *creation. */
int sbx_epmd_parse_alive_reply(const unsigned char *buf, size_t len, uint32_t *creation,
                               const char **why);

#endif
