/* Distribution over TLS (inet_tls_dist): OpenSSL contexts made from an ssl_dist optfile, and
 * libevent bufferevent_openssl connections on the accepting and the initiating side. The
 * distribution handshake then runs inside TLS with 4-byte length prefixes; epmd stays plain.
 * Certificates are checked as OTP checks them: with verify_peer the peer's chain must lead to
 * the cacertfile, and an initiator checks the server's name against the peer's host. */
#ifndef SBX_DIST_TLS_H
#define SBX_DIST_TLS_H

#include <event2/util.h>
#include <stddef.h>

#include "dist/tls_opts.h"

struct event_base;
struct bufferevent;
struct sbx_tls;

/* Makes the server and client contexts: loads certificates, keys and CA files now, so that a
 * bad file stops start-up. The optfile must have a server side with a certfile. Returns the
 * new contexts (freed with sbx_tls_free), or NULL with why[0..cap) set. */
struct sbx_tls *sbx_tls_new(const struct sbx_tls_opts *opts, char *why, size_t cap);
void sbx_tls_free(struct sbx_tls *t);

/* The options the contexts were made from (never NULL for a non-NULL t). */
const struct sbx_tls_opts *sbx_tls_options(const struct sbx_tls *t);

/* A fresh server-side SSL of t's server context (the caller owns it), or NULL. */
struct ssl_st *sbx_tls_server_ssl(struct sbx_tls *t);

/* A bufferevent that runs the server side of TLS on the accepted socket fd (owned by it from
 * now on, even when NULL is returned: then fd is closed). */
struct bufferevent *sbx_tls_accept_bev(struct sbx_tls *t, struct event_base *base,
                                       evutil_socket_t fd);

/* A bufferevent that runs the client side of TLS on the connected socket fd (owned by it
 * from now on; closed on failure), toward host (the peer node's host part, for SNI and the
 * name check). NULL on failure. */
struct bufferevent *sbx_tls_connect_bev(struct sbx_tls *t, struct event_base *base,
                                        evutil_socket_t fd, const char *host);

/* After BEV_EVENT_ERROR on a TLS bufferevent: the reason in words (certificate verify
 * failed, wrong version number, ...) into out[0..cap); "" when OpenSSL gave none. */
void sbx_tls_error(struct bufferevent *bev, char *out, size_t cap);

#endif
