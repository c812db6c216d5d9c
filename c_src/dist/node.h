/* The node: its identity, its listener and epmd registration, its connections and its
 * process table, and the primitives that send signals to other nodes. */
#ifndef SBX_DIST_NODE_H
#define SBX_DIST_NODE_H

#include <ei.h>
#include <stddef.h>
#include <stdint.h>

#include "dist/handshake.h"
#include "dist/proc.h"
#include "dist/strangers.h"
#include "util/cookie.h"

struct event_base;
struct evdns_base;
struct evconnlistener;
struct event;
struct sbx_conn;
struct sbx_tls;

/* A cookie this node uses with one peer instead of its own (dist/peer_cookie.c). */
struct sbx_peer_cookie {
    struct sbx_peer_cookie *next;
    char peer[SBX_NODE_NAME_MAX + 1];
    char cookie[SBX_COOKIE_MAX + 1]; /* never logged */
};

struct sbx_node_config {
    const char *name;          /* full node name alive@host */
    const char *cookie;        /* never logged */
    int handshake_timeout_ms;  /* default 7000, at most 10000 */
    int net_ticktime_s;        /* default 60 */
    size_t max_packet;         /* largest accepted packet, default 64 MiB */
    size_t max_outbuf;         /* a peer this far behind in reading is dropped */
    size_t max_handshakes;     /* accepted connections still in the handshake (strangers),
                                  overall; default 1024 */
    size_t max_handshakes_per_addr; /* the same, per source address; default 32 */
    struct sbx_tls *tls;       /* distribution over TLS (dist/tls.h), or NULL: plain TCP.
                                  Borrowed: the caller frees it after sbx_node_stop */
};

struct sbx_node {
    struct event_base *base;
    struct evdns_base *dns;
    char name[SBX_NODE_NAME_MAX + 1];
    char cookie[SBX_COOKIE_MAX + 1];
    uint32_t creation;
    uint64_t flags;
    int handshake_timeout_ms;
    int net_ticktime_s;
    size_t max_packet;
    size_t max_outbuf;
    struct evconnlistener *listener;
    uint16_t port;
    int epmd_fd;
    struct event *epmd_ev;
    struct sbx_conn *conns; /* every connection, up or in handshake */
    uint64_t next_conn_id;
    struct sbx_proc_table procs;
    uint32_t ref_counter[3];
    int64_t started_mono_ms;
    uint64_t stats_conns_accepted;
    uint64_t stats_conns_dropped;
    struct sbx_strangers strangers; /* accepted connections not yet past the cookie */
    struct sbx_conn *stranger_first, *stranger_last; /* the same connections, oldest first */
    uint64_t stats_strangers_refused; /* refused at once: their address was at its cap */
    uint64_t stats_strangers_evicted; /* dropped for a newcomer at the overall cap */
    int64_t strangers_logged_ms;      /* last summary line about strangers */
    int64_t hs_log_window_ms;         /* start of the current second of handshake-failure lines */
    unsigned hs_log_count;            /* such lines in that second */
    uint64_t hs_log_suppressed;       /* failures of accepted handshakes not logged since */
    struct sbx_peer_cookie *peer_cookies; /* per-peer cookies; others use `cookie` */
    struct sbx_tls *tls; /* inet_tls distribution (borrowed), or NULL: plain TCP */
};

/* Starts listening on an ephemeral port and registers with the local epmd (starting
 * `epmd -daemon` if none runs), keeping epmd's creation. Returns 0, or -1 with *why set
 * (a static string) and nothing left open. */
int sbx_node_start(struct sbx_node *node, struct event_base *base,
                   const struct sbx_node_config *cfg, const char **why);

/* Closes every connection (peers see nodedown), unregisters from epmd, frees the
 * process table. Safe on a node that failed to start or was never started (zeroed). */
void sbx_node_stop(struct sbx_node *node);

/* Lowers the cap on strangers (accepted connections before the cookie proof) to max, if
 * that is lower; never raises it. */
void sbx_node_lower_handshake_cap(struct sbx_node *node, size_t max);

/* Connection registry. Lookups return only connections whose handshake completed. */
struct sbx_conn *sbx_node_conn_by_id(const struct sbx_node *node, uint64_t id);
struct sbx_conn *sbx_node_conn_by_name(const struct sbx_node *node, const char *name);
size_t sbx_node_conn_count(const struct sbx_node *node);

/* Called by a connection when it is being destroyed: drops links and monitors held
 * through it, kills calls made through it, and tells interested processes. */
void sbx_node_conn_down(struct sbx_node *node, uint64_t conn_id);

/* Encoders for this node's identifiers. They append to x; 0 or -1. */
int sbx_node_encode_self_pid(const struct sbx_node *node, ei_x_buff *x, const struct sbx_proc *p);
int sbx_node_encode_rpid(const struct sbx_node *node, ei_x_buff *x, const struct sbx_rpid *pid);
int sbx_node_make_ref(struct sbx_node *node, ei_x_buff *x);

/* Decodes a pid at buf+*index (validated input). Sets *is_local and either *local_num
 * and *local_serial or *out (a local pid of another incarnation gets number 0, which no
 * process has). Returns 0, or -1 if it is not a pid. */
int sbx_node_decode_pid(const struct sbx_node *node, const char *buf, int *index,
                        int *is_local, uint32_t *local_num, uint32_t *local_serial,
                        struct sbx_rpid *out);

/* Sends a control term (ctl, with version byte) and optional message (msg, with
 * version byte, or NULL) to the node behind conn_id. Returns 0, or -1 if that node is
 * not connected (dropped silently, as Erlang drops signals to unreachable nodes). */
int sbx_node_send(struct sbx_node *node, uint64_t conn_id, const ei_x_buff *ctl,
                  const ei_x_buff *msg);

/* Sends `msg` (with version byte) from local process `from` to remote pid `to`. Uses
 * ALIAS_SEND when alias_ref is non-NULL (encoded reference) and the peer supports it. */
int sbx_node_send_msg(struct sbx_node *node, const struct sbx_proc *from,
                      const struct sbx_rpid *to, const char *alias_ref, size_t alias_ref_len,
                      const ei_x_buff *msg);

/* The process ends with `reason` (an encoded term without version byte): EXIT to every
 * linked process, MONITOR_P_EXIT to every watcher, then p is freed (not p->data). */
void sbx_node_proc_exit(struct sbx_node *node, struct sbx_proc *p, const char *reason,
                        size_t reason_len);

/* Kills p from outside (exit signal, its caller left): ops->kill releases its work,
 * then it exits with reason. */
void sbx_node_proc_kill(struct sbx_node *node, struct sbx_proc *p, const char *reason,
                        size_t reason_len);

/* Per-peer cookies (dist/peer_cookie.c). set: peer_name will be authenticated (both
 * directions, accepting and initiating) with `cookie` instead of the node's own; replaces an
 * earlier one for that peer; 0, or -1 (bad name, cookie too long or empty, no memory).
 * forget: back to the node's own cookie (the copy is wiped); no-op if none was set.
 * cookie_for: the cookie to use with peer_name (never NULL). clear: forgets them all. */
int sbx_node_set_peer_cookie(struct sbx_node *node, const char *peer_name, const char *cookie);
void sbx_node_forget_peer_cookie(struct sbx_node *node, const char *peer_name);
const char *sbx_node_cookie_for(const struct sbx_node *node, const char *peer_name);
/* 1 if peer_name has a cookie of its own (it is a sandbox's node: fenced), else 0. */
int sbx_node_has_peer_cookie(const struct sbx_node *node, const char *peer_name);
void sbx_node_clear_peer_cookies(struct sbx_node *node);

/* Number of live processes (including the registered system ones). */
size_t sbx_node_proc_count(const struct sbx_node *node);

#endif
