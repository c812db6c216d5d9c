/* Output of a connection that is up, written once per loop turn straight from its
 * bufferevent's output buffer: no epoll registration for writability unless the socket
 * cannot take everything at once. Driven by dist/conn.c; rpc/remote.c asks for an
 * immediate flush of a request on a call's critical path. */
#ifndef SBX_DIST_CONN_FLUSH_H
#define SBX_DIST_CONN_FLUSH_H

struct sbx_conn;

/* c has just come up on a plain socket bufferevent: from now on its output goes out from
 * a flush event at the end of the loop turn it was queued in. 0, or -1 (no memory: c keeps
 * the bufferevent's own writing, which works too, one epoll change per write slower).
 * Must not be used for a bufferevent that filters its output (TLS). */
int sbx_conn_flush_start(struct sbx_conn *c);

/* Output was queued on c: writes it out later in this loop turn (once, however many
 * messages were queued meanwhile). Does nothing if c does not use the flush event. */
void sbx_conn_flush_request(struct sbx_conn *c);

/* Writes c's queued output now rather than at the end of the turn, for a message on the
 * critical path of a call (a request to another node, sent while answers to others wait
 * in the same turn). Does nothing if c does not use the flush event. */
void sbx_conn_flush_now(struct sbx_conn *c);

/* c's output buffer has drained (its bufferevent's write callback): the bufferevent stops
 * watching writability again, so that the next output goes out from the flush event. */
void sbx_conn_flush_drained(struct sbx_conn *c);

/* Frees c's flush event, if any (c is being destroyed). */
void sbx_conn_flush_free(struct sbx_conn *c);

#endif
