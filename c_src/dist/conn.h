/* One distribution connection: the handshake (accepting or initiating), framing,
 * ticks and liveness, on a libevent bufferevent. Never blocks. */
#ifndef SBX_DIST_CONN_H
#define SBX_DIST_CONN_H

#include <event2/util.h>
#include <stdint.h>

#include "dist/handshake.h"
#include "dist/strangers.h"

struct sbx_node;
struct bufferevent;
struct event;
struct sockaddr;

enum sbx_conn_state {
    SBX_CONN_A_WAIT_NAME,   /* accepting: waiting for send_name */
    SBX_CONN_A_WAIT_ALIVE,  /* accepting: sent "alive", waiting for true/false */
    SBX_CONN_A_WAIT_REPLY,  /* accepting: sent challenge, waiting for challenge_reply */
    SBX_CONN_I_EPMD,        /* initiating: asking the peer host's epmd for the port */
    SBX_CONN_I_CONNECTING,  /* initiating: TCP connect to the node */
    SBX_CONN_I_WAIT_STATUS, /* initiating: sent name, waiting for status */
    SBX_CONN_I_WAIT_CHALLENGE,
    SBX_CONN_I_WAIT_ACK,
    SBX_CONN_I_PARKED,      /* initiating: the peer answered nok (its own attempt wins); no
                               socket; waiters wait for that attempt to prove the cookie */
    SBX_CONN_UP,
    SBX_CONN_CLOSING
};

/* Told when an outgoing connection is up (conn_id != 0) or failed (conn_id 0, why set).
 * key is the caller's own handle (for example a pid), never a pointer that may dangle. */
typedef void (*sbx_connect_cb)(struct sbx_node *node, uint64_t conn_id, const char *why,
                               uint64_t key);

struct sbx_conn_waiter {
    struct sbx_conn_waiter *next;
    sbx_connect_cb cb;
    uint64_t key;
};

struct sbx_conn {
    struct sbx_conn *next, *prev; /* node->conns */
    struct sbx_node *node;
    uint64_t id;
    enum sbx_conn_state state;
    int initiator;
    int flush_then_close;
    int was_up; /* the handshake completed at some point */
    uint64_t replaces; /* "alive" answered true: the connection this one replaces once the
                          peer has proven the cookie (0: none) */
    int stranger;      /* accepted and counted in node->strangers until proven or closed */
    struct sbx_conn *snext, *sprev; /* node's strangers, oldest first (while stranger) */
    int quiet;         /* closed for a reason already counted: no "handshake failed" line */
    int tls;           /* bev runs TLS (node->tls): handshake messages have 4-byte lengths,
                          and output never goes to the socket directly (conn_flush) */
    char tls_why[128]; /* why TLS failed, once it has (close_reason points here) */
    struct sbx_addr addr; /* the peer's source address (accepted connections) */
    struct bufferevent *bev;
    struct bufferevent *epmd_bev;
    struct event *timer;
    struct event *reaper; /* deferred destroy */
    struct event *flush_ev; /* once up on a plain socket: writes the output once per loop
                               turn (dist/conn_flush.c); NULL: the bufferevent writes it */
    char peer_name[SBX_NODE_NAME_MAX + 1];
    char peer_addr[64];
    uint64_t peer_flags;
    uint32_t peer_creation;
    uint64_t flags; /* in force: ours AND theirs */
    uint32_t my_challenge;
    uint32_t peer_challenge;
    int64_t deadline_ms;
    int64_t last_read_ms;
    int64_t last_write_ms;
    int64_t last_tick_rx_ms;
    int64_t tick_gap_ms; /* shortest gap seen between the peer's idle ticks; 0 = none yet */
    int data_since_tick;
    struct sbx_conn_waiter *waiters;
    const char *close_reason;
    /* Fence (dist/control.c): set once up if the handshake used a per-peer cookie, i.e. the
     * peer is a sandbox's own node. It then reaches only processes that serve it. */
    int fenced;
    int64_t fence_log_ms;     /* when a refusal was last logged */
    uint64_t fence_unlogged;  /* refusals since then, not logged */
};

/* Largest handshake message body accepted (send_name with a 255-byte name is 270 bytes), and
 * the input buffered for a connection before its peer has proven the cookie. Past the proof
 * the node's max_packet applies. */
#define SBX_HS_MAX_BODY 300
#define SBX_HS_READ_HIGH 512

/* Takes ownership of an accepted socket. An address already at max_handshakes_per_addr
 * strangers is refused (fd closed, 0 returned); at max_handshakes overall, the oldest
 * stranger of the address holding the most is dropped for the newcomer. 0, or -1 (fd
 * closed). */
int sbx_conn_accept(struct sbx_node *node, evutil_socket_t fd, const struct sockaddr *sa,
                    int salen);

/* Asks for a connection to peer_name. cb runs later (never inside this call) with the
 * connection's id, reusing a connection that is up or our own attempt in handshake, never an
 * accepted connection whose peer has not proven the cookie. 0, or -1 if the
 * request could not even be started (cb will not run). */
int sbx_conn_connect(struct sbx_node *node, const char *peer_name, sbx_connect_cb cb,
                     uint64_t key);

/* Starts closing: the connection stops reading and is destroyed from the event loop
 * soon after (never inside this call). Idempotent. */
void sbx_conn_close(struct sbx_conn *c, const char *why);

/* Destroys at once (used at shutdown, outside any of c's callbacks). */
void sbx_conn_destroy(struct sbx_conn *c);

/* Writes one data packet made of up to three parts; returns 0, or -1 when the
 * connection is not up. A peer that lets its backlog exceed the node's max_outbuf is
 * dropped. */
int sbx_conn_write_packet(struct sbx_conn *c, const char *a, size_t alen, const char *b,
                          size_t blen, const char *d, size_t dlen);

#endif
