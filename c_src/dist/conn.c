/* Connection state machine: handshake on both sides, framing, ticks. */
#define _GNU_SOURCE
#include "dist/conn.h"
#include "dist/conn_flush.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "dist/control.h"
#include "dist/epmd.h"
#include "dist/flags.h"
#include "dist/frame.h"
#include "dist/node.h"
#include "dist/tls.h"
#include "util/clock.h"
#include "util/log.h"

#define EPMD_PORT 4369

static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_write_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);
static void conn_timer_cb(evutil_socket_t fd, short what, void *arg);

/* A challenge value from getrandom; falls back to a weak clock-derived value if that fails. */
static uint32_t random32(void) {
    uint32_t v = 0;
    if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v)
        v = (uint32_t)sbx_mono_ms() * 2654435761u;
    return v;
}

/* The deferred destroy queued by sbx_conn_close: runs from the loop, outside c's callbacks. */
static void reaper_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    sbx_conn_destroy(arg);
}

/* Allocates a connection in node->conns with its timer and reaper; NULL on failure. */
static struct sbx_conn *conn_new(struct sbx_node *node, int initiator) {
    struct sbx_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->node = node;
    c->id = ++node->next_conn_id;
    c->initiator = initiator;
    c->timer = event_new(node->base, -1, 0, conn_timer_cb, c);
    c->reaper = event_new(node->base, -1, 0, reaper_cb, c);
    if (c->timer == NULL || c->reaper == NULL) {
        if (c->timer != NULL)
            event_free(c->timer);
        if (c->reaper != NULL)
            event_free(c->reaper);
        free(c);
        return NULL;
    }
    c->next = node->conns;
    if (node->conns != NULL)
        node->conns->prev = c;
    node->conns = c;
    c->deadline_ms = sbx_mono_ms() + node->handshake_timeout_ms;
    struct timeval tv = {node->handshake_timeout_ms / 1000,
                         (node->handshake_timeout_ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
    return c;
}

/* Runs and frees the waiters; conn_id 0 means failure. Callbacks run after the list
 * is detached, so they may start new connections. */
static void run_waiters(struct sbx_conn *c, uint64_t conn_id, const char *why) {
    struct sbx_conn_waiter *w = c->waiters;
    c->waiters = NULL;
    while (w != NULL) {
        struct sbx_conn_waiter *next = w->next;
        w->cb(c->node, conn_id, why, w->key);
        free(w);
        w = next;
    }
}

/* Counts c as a stranger from its address, at the young end of the node's list. 0, or -1
 * (not counted: the table is full, which the caps prevent). */
static int stranger_add(struct sbx_conn *c) {
    struct sbx_node *node = c->node;
    if (sbx_strangers_add(&node->strangers, &c->addr) != 0)
        return -1;
    c->stranger = 1;
    c->sprev = node->stranger_last;
    c->snext = NULL;
    if (node->stranger_last != NULL)
        node->stranger_last->snext = c;
    else
        node->stranger_first = c;
    node->stranger_last = c;
    return 0;
}

/* Stops counting c as a stranger (it proved the cookie, or it is closing). Idempotent. */
static void stranger_done(struct sbx_conn *c) {
    struct sbx_node *node = c->node;
    if (!c->stranger)
        return;
    sbx_strangers_del(&node->strangers, &c->addr);
    c->stranger = 0;
    if (c->sprev != NULL)
        c->sprev->snext = c->snext;
    else
        node->stranger_first = c->snext;
    if (c->snext != NULL)
        c->snext->sprev = c->sprev;
    else
        node->stranger_last = c->sprev;
    c->snext = c->sprev = NULL;
}

#define HS_FAIL_LINES_PER_S 20

/* 1 if a "handshake failed" line may be written for c now: always for our own attempts; for
 * accepted ones at most HS_FAIL_LINES_PER_S a second (a stranger must not flood the log),
 * the others counted and summed up in the next second's first line. */
static int hs_fail_loggable(struct sbx_conn *c) {
    struct sbx_node *node = c->node;
    int64_t now = sbx_mono_ms();
    if (c->initiator)
        return 1;
    if (now - node->hs_log_window_ms >= 1000) {
        if (node->hs_log_suppressed > 0)
            SBX_WARN("handshake failures not logged (too many)", "count=%llu",
                     (unsigned long long)node->hs_log_suppressed);
        node->hs_log_window_ms = now;
        node->hs_log_count = 0;
        node->hs_log_suppressed = 0;
    }
    if (node->hs_log_count < HS_FAIL_LINES_PER_S) {
        node->hs_log_count++;
        return 1;
    }
    node->hs_log_suppressed++;
    return 0;
}

/* See conn.h. Frees c and all it holds. If c was up, sbx_node_conn_down runs first
 * (processes may be killed); then the remaining waiters' callbacks run with conn_id 0. */
void sbx_conn_destroy(struct sbx_conn *c) {
    struct sbx_node *node = c->node;
    int was_up = c->was_up;

    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        node->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    stranger_done(c);
    if (c->bev != NULL)
        bufferevent_free(c->bev);
    if (c->epmd_bev != NULL)
        bufferevent_free(c->epmd_bev);
    event_free(c->timer);
    event_free(c->reaper);
    sbx_conn_flush_free(c);
    if (was_up) {
        SBX_INFO("connection down", "peer=%s reason=\"%s\"", c->peer_name,
                 c->close_reason ? c->close_reason : "closed");
        sbx_node_conn_down(node, c->id);
    } else if (c->close_reason != NULL && !c->quiet && hs_fail_loggable(c)) {
        SBX_WARN("handshake failed", "peer=\"%s\" addr=%s reason=\"%s\"", c->peer_name,
                 c->peer_addr, c->close_reason);
    }
    run_waiters(c, 0, c->close_reason ? c->close_reason : "connection closed");
    node->stats_conns_dropped++;
    free(c);
}

/* See conn.h. After a reject, waits for the output to drain
 * (conn_write_cb) before the reaper runs. */
void sbx_conn_close(struct sbx_conn *c, const char *why) {
    if (c->state == SBX_CONN_CLOSING) {
        /* Closing again while a last message was being flushed (the peer reset the
         * socket): nothing will be written any more, destroy now. */
        if (c->flush_then_close) {
            c->flush_then_close = 0;
            event_active(c->reaper, 0, 0);
        }
        return;
    }
    if (c->close_reason == NULL)
        c->close_reason = why;
    c->state = SBX_CONN_CLOSING;
    stranger_done(c);
    if (c->bev != NULL)
        bufferevent_disable(c->bev, EV_READ);
    event_del(c->timer);
    if (c->flush_then_close && c->bev != NULL &&
        evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
        return; /* conn_write_cb finishes the close once the output is flushed */
    event_active(c->reaper, 0, 0);
}

/* Queues one handshake message as encoded (a 2-byte length, then the body; n <= 2 queues
 * nothing). Over TLS the length goes out as 4 bytes, as inet_tls_dist frames it. */
static void hs_put(struct sbx_conn *c, const unsigned char *buf, int n) {
    if (n <= 2 || c->bev == NULL)
        return;
    if (c->tls) {
        unsigned char hdr[4] = {0, 0, buf[0], buf[1]};
        bufferevent_write(c->bev, hdr, 4);
    } else {
        bufferevent_write(c->bev, buf, 2);
    }
    bufferevent_write(c->bev, buf + 2, (size_t)n - 2);
}

/* Sends a handshake message and closes once it is written. */
static void reject(struct sbx_conn *c, const char *status, const char *why) {
    unsigned char buf[64];
    int n = sbx_hs_encode_status(buf, sizeof buf, status);
    if (n > 0 && c->bev != NULL) {
        hs_put(c, buf, n);
        c->flush_then_close = 1;
    }
    sbx_conn_close(c, why);
}

/* Queues an encoded handshake message (nothing when the
 * encoder returned n <= 0) and counts it as a write. */
static void hs_write(struct sbx_conn *c, const unsigned char *buf, int n) {
    hs_put(c, buf, n);
    c->last_write_ms = sbx_mono_ms();
}

/* Turns c's one-shot handshake timer into the persistent 250 ms tick and liveness timer. */
static void arm_tick_timer(struct sbx_conn *c) {
    struct timeval tv = {0, 250000};
    event_del(c->timer);
    event_assign(c->timer, c->node->base, -1, EV_PERSIST, conn_timer_cb, c);
    evtimer_add(c->timer, &tv);
}

/* Moves every waiter of from to the end of to's list. */
static void move_waiters(struct sbx_conn *from, struct sbx_conn *to) {
    struct sbx_conn_waiter **tail = &to->waiters;
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = from->waiters;
    from->waiters = NULL;
}

/* c has just proven the cookie: only now does it own its peer's name. An accepted c takes
 * over the waiters of our own attempts to reach that peer (which close), replaces an older
 * connection to it that is up, and ends other accepted attempts under that name (strangers
 * or duplicates). Closing is deferred, so the list stays intact while walked. */
static void claim_name(struct sbx_conn *c) {
    if (c->initiator)
        return;
    for (struct sbx_conn *o = c->node->conns; o != NULL; o = o->next) {
        if (o == c || o->state == SBX_CONN_CLOSING || strcmp(o->peer_name, c->peer_name) != 0)
            continue;
        if (o->state == SBX_CONN_UP) {
            sbx_conn_close(o, "peer reconnected");
        } else if (o->initiator) {
            move_waiters(o, c);
            o->quiet = 1;
            sbx_conn_close(o, "the peer's own connection won");
        } else {
            sbx_conn_close(o, "another connection under this name proved the cookie");
        }
    }
}

/* Moves c to the head of node->conns, where lookups of connections that are up (for every
 * packet sent or pid decoded) find it before any stranger's. */
static void move_to_front(struct sbx_conn *c) {
    struct sbx_node *node = c->node;
    if (node->conns == c)
        return;
    c->prev->next = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->prev = NULL;
    c->next = node->conns;
    node->conns->prev = c;
    node->conns = c;
}

/* Handshake done: c is up with the agreed flags and ticking, claims its peer's name, and
 * may read packets up to max_packet; its waiters run now, inside c's read callback. */
static void became_up(struct sbx_conn *c) {
    stranger_done(c);
    claim_name(c);
    move_to_front(c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, 0);
    c->state = SBX_CONN_UP;
    c->was_up = 1;
    c->fenced = sbx_node_has_peer_cookie(c->node, c->peer_name);
    c->flags = c->peer_flags & c->node->flags;
    c->last_read_ms = c->last_write_ms = sbx_mono_ms();
    arm_tick_timer(c);
    if (!c->tls)
        (void)sbx_conn_flush_start(c); /* on failure the bufferevent keeps writing */
    SBX_INFO("connection up", "peer=%s addr=%s initiator=%d", c->peer_name, c->peer_addr,
             c->initiator);
    run_waiters(c, c->id, NULL);
}

/* md5(cookie ++ challenge) into d, with the cookie this node uses for c's peer (its own
 * unless one was set for that peer): 0, or -1 if MD5 failed (d unspecified). */
static int digest_of(const struct sbx_conn *c, uint32_t challenge, unsigned char d[16]) {
    return sbx_hs_digest(sbx_node_cookie_for(c->node, c->peer_name), challenge, d);
}

/* Accepting side: sends our name and a fresh random challenge; waits for the reply. */
static void send_challenge(struct sbx_conn *c) {
    unsigned char buf[300];
    c->my_challenge = random32();
    hs_write(c, buf,
             sbx_hs_encode_challenge(buf, sizeof buf, c->node->flags, c->my_challenge,
                                     c->node->creation, c->node->name));
    c->state = SBX_CONN_A_WAIT_REPLY;
}

/* Our own attempt (initiating, not up, not closing) to reach c's peer, or NULL. Accepted
 * connections that have not proven the cookie are never returned: an unproven name claims
 * nothing. */
static struct sbx_conn *own_attempt(struct sbx_conn *c) {
    for (struct sbx_conn *o = c->node->conns; o != NULL; o = o->next)
        if (o != c && o->initiator && o->state != SBX_CONN_CLOSING &&
            o->state != SBX_CONN_UP && strcmp(o->peer_name, c->peer_name) == 0)
            return o;
    return NULL;
}

/* Accepting side, first message: checks the peer's name and flags, settles a clash with
 * another connection to the same peer, then answers a status and our challenge. The name is
 * not claimed yet: an up connection under it, and our own attempt to reach it, go on until
 * this one proves the cookie (claim_name); other unproven connections under the same name
 * do not matter. May close c (deferred). */
static void on_send_name(struct sbx_conn *c, const unsigned char *body, size_t len) {
    struct sbx_hs_name nm;
    unsigned char buf[64];

    if (sbx_hs_parse_name(body, len, &nm) != 0) {
        sbx_conn_close(c, "malformed send_name");
        return;
    }
    memcpy(c->peer_name, nm.name, sizeof c->peer_name);
    c->peer_flags = nm.flags;
    c->peer_creation = nm.creation;
    if ((nm.flags & SBX_DFLAGS_MANDATORY_25) != SBX_DFLAGS_MANDATORY_25) {
        reject(c, "not_allowed", "peer lacks mandatory distribution flags");
        return;
    }
    if (strcmp(nm.name, c->node->name) == 0) {
        reject(c, "not_allowed", "peer uses this node's own name");
        return;
    }
    if (sbx_node_has_peer_cookie(c->node, nm.name)) {
        /* A sandbox's node: this node always dials it; a handshake arriving under its
         * name is either the sandbox reaching out or someone holding its cookie. */
        reject(c, "not_allowed", "a sandbox's node name: only sandboxd initiates to it");
        return;
    }
    if (sbx_node_conn_by_name(c->node, c->peer_name) != NULL) {
        hs_write(c, buf, sbx_hs_encode_status(buf, sizeof buf, "alive"));
        c->state = SBX_CONN_A_WAIT_ALIVE;
        return;
    }
    if (own_attempt(c) != NULL) {
        /* Simultaneous connect: the greater name's attempt wins. Ours goes on until the
         * peer's proves the cookie (then it hands its waiters over), so that a stranger
         * using the peer's name cannot take them. */
        if (strcmp(c->peer_name, c->node->name) <= 0) {
            reject(c, "nok", "simultaneous connect won by this node");
            return;
        }
        hs_write(c, buf, sbx_hs_encode_status(buf, sizeof buf, "ok_simultaneous"));
    } else {
        hs_write(c, buf, sbx_hs_encode_status(buf, sizeof buf, "ok"));
    }
    send_challenge(c);
}

/* Accepting side after we answered 'alive': 'true' marks the old connection
 * for replacement once the cookie is proven; anything else closes c. */
static void on_alive_answer(struct sbx_conn *c, const unsigned char *body, size_t len) {
    char status[16];
    if (sbx_hs_parse_status(body, len, status, sizeof status) != 0 || strcmp(status, "true") != 0) {
        sbx_conn_close(c, "peer withdrew (already connected)");
        return;
    }
    /* The old connection goes only once this one has proven the cookie: a stranger who
     * merely knows a peer's name must not be able to disconnect it. */
    struct sbx_conn *other = sbx_node_conn_by_name(c->node, c->peer_name);
    c->replaces = other != NULL ? other->id : 0;
    send_challenge(c);
}

/* Accepting side: checks the peer's digest of our challenge; on success sends the ack and
 * brings c up (claim_name closes the connection c replaces). Any failure closes c. */
static void on_challenge_reply(struct sbx_conn *c, const unsigned char *body, size_t len) {
    unsigned char got[16], want[16], ack[16], buf[32];
    if (sbx_hs_parse_reply(body, len, &c->peer_challenge, got) != 0) {
        sbx_conn_close(c, "malformed challenge_reply");
        return;
    }
    if (digest_of(c, c->my_challenge, want) != 0 || !sbx_hs_digest_equal(got, want)) {
        sbx_conn_close(c, "invalid challenge reply (wrong cookie?)");
        return;
    }
    if (digest_of(c, c->peer_challenge, ack) != 0) {
        sbx_conn_close(c, "digest unavailable");
        return;
    }
    hs_write(c, buf, sbx_hs_encode_ack(buf, sizeof buf, ack));
    became_up(c);
}

/* Initiating side: acts on the peer's status. On 'nok' (the peer's own attempt to reach us
 * wins) c parks: its socket goes quiet and its waiters wait, until the handshake deadline,
 * for a connection from that peer to prove the cookie (claim_name hands them over). They are
 * never handed to an unproven connection. Refusals close c. */
static void on_status(struct sbx_conn *c, const unsigned char *body, size_t len) {
    char status[32];
    unsigned char buf[16];
    if (sbx_hs_parse_status(body, len, status, sizeof status) != 0) {
        sbx_conn_close(c, "malformed status");
        return;
    }
    if (strcmp(status, "ok") == 0 || strcmp(status, "ok_simultaneous") == 0) {
        c->state = SBX_CONN_I_WAIT_CHALLENGE;
    } else if (strcmp(status, "alive") == 0) {
        hs_write(c, buf, sbx_hs_encode_status(buf, sizeof buf, "true"));
        c->state = SBX_CONN_I_WAIT_CHALLENGE;
    } else if (strcmp(status, "nok") == 0) {
        struct sbx_conn *up = sbx_node_conn_by_name(c->node, c->peer_name);
        if (up != NULL) {
            /* The peer's connection is up already: our waiters run from its timer. */
            move_waiters(c, up);
            event_active(up->timer, 0, 0);
            c->quiet = 1;
            sbx_conn_close(c, "peer answered nok");
            return;
        }
        c->state = SBX_CONN_I_PARKED; /* the read loop stops; the deadline timer stays */
        bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    } else {
        sbx_conn_close(c, "peer refused the connection (not_allowed)");
    }
}

/* Initiating side: checks the peer's name and flags, then answers
 * with our digest and our own challenge. Failures close c. */
static void on_challenge(struct sbx_conn *c, const unsigned char *body, size_t len) {
    struct sbx_hs_challenge ch;
    unsigned char d[16], buf[32];
    if (sbx_hs_parse_challenge(body, len, &ch) != 0) {
        sbx_conn_close(c, "malformed challenge");
        return;
    }
    if (strcmp(ch.name, c->peer_name) != 0) {
        sbx_conn_close(c, "peer answered with another node name");
        return;
    }
    if ((ch.flags & SBX_DFLAGS_MANDATORY_25) != SBX_DFLAGS_MANDATORY_25) {
        sbx_conn_close(c, "peer lacks mandatory distribution flags");
        return;
    }
    c->peer_flags = ch.flags;
    c->peer_creation = ch.creation;
    c->peer_challenge = ch.challenge;
    c->my_challenge = random32();
    if (digest_of(c, ch.challenge, d) != 0) {
        sbx_conn_close(c, "digest unavailable");
        return;
    }
    hs_write(c, buf, sbx_hs_encode_reply(buf, sizeof buf, c->my_challenge, d));
    c->state = SBX_CONN_I_WAIT_ACK;
}

/* Initiating side: checks the peer's digest of our challenge
 * and brings c up; closes c otherwise. */
static void on_ack(struct sbx_conn *c, const unsigned char *body, size_t len) {
    unsigned char got[16], want[16];
    if (sbx_hs_parse_ack(body, len, got) != 0) {
        sbx_conn_close(c, "malformed challenge_ack");
        return;
    }
    if (digest_of(c, c->my_challenge, want) != 0 || !sbx_hs_digest_equal(got, want)) {
        sbx_conn_close(c, "invalid challenge ack (wrong cookie?)");
        return;
    }
    became_up(c);
}

/* Handles one data-phase packet (len 0 = tick). */
static void on_packet(struct sbx_conn *c, const unsigned char *body, size_t len) {
    int64_t now = sbx_mono_ms();
    if (len == 0) {
        if (!c->data_since_tick && c->last_tick_rx_ms != 0) {
            int64_t gap = now - c->last_tick_rx_ms;
            if (gap > 0 && (c->tick_gap_ms == 0 || gap < c->tick_gap_ms))
                c->tick_gap_ms = gap;
        }
        c->last_tick_rx_ms = now;
        c->data_since_tick = 0;
        return;
    }
    c->data_since_tick = 1;
    struct sbx_dist_packet pkt;
    if (sbx_frame_split(body, len, &pkt) != 0) {
        sbx_conn_close(c, "malformed packet");
        return;
    }
    if (sbx_control_dispatch(c->node, c, &pkt) != 0)
        sbx_conn_close(c, "invalid control message");
}

/* Routes one message body (valid only during the call) by c's
 * state. May start closing c, never frees it. */
static void dispatch(struct sbx_conn *c, const unsigned char *body, size_t len) {
    switch (c->state) {
    case SBX_CONN_A_WAIT_NAME: on_send_name(c, body, len); break;
    case SBX_CONN_A_WAIT_ALIVE: on_alive_answer(c, body, len); break;
    case SBX_CONN_A_WAIT_REPLY: on_challenge_reply(c, body, len); break;
    case SBX_CONN_I_WAIT_STATUS: on_status(c, body, len); break;
    case SBX_CONN_I_WAIT_CHALLENGE: on_challenge(c, body, len); break;
    case SBX_CONN_I_WAIT_ACK: on_ack(c, body, len); break;
    case SBX_CONN_UP: on_packet(c, body, len); break;
    default: sbx_conn_close(c, "unexpected data"); break;
    }
}

/* Dispatches every whole message in the input until c starts closing or parks; a frame over
 * max_packet (SBX_HS_MAX_BODY before the proof) or an empty handshake frame closes c. Closing
 * is deferred, so c stays valid throughout. */
static void conn_read_cb(struct bufferevent *bev, void *arg) {
    struct sbx_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);

    while (c->state != SBX_CONN_CLOSING && c->state != SBX_CONN_I_PARKED) {
        unsigned char hdr[4];
        size_t avail = evbuffer_get_length(in);
        int prefix = c->state == SBX_CONN_UP || c->tls ? 4 : 2;
        size_t body_len;
        if (avail < (size_t)prefix)
            break;
        evbuffer_copyout(in, hdr, (size_t)prefix);
        /* Until the cookie is proven, only a handshake message's size is accepted. */
        size_t limit = c->state == SBX_CONN_UP ? c->node->max_packet : SBX_HS_MAX_BODY;
        enum sbx_frame_status st = sbx_frame_peek(hdr, avail, prefix, limit, &body_len);
        if (st == SBX_FRAME_TOO_BIG) {
            sbx_conn_close(c, "packet larger than the limit");
            break;
        }
        if (st == SBX_FRAME_NEED_MORE)
            break;
        if (c->state != SBX_CONN_UP && body_len == 0) {
            sbx_conn_close(c, "empty handshake message");
            break;
        }
        const unsigned char *all = evbuffer_pullup(in, (ev_ssize_t)((size_t)prefix + body_len));
        if (all == NULL) {
            sbx_conn_close(c, "out of memory");
            break;
        }
        c->last_read_ms = sbx_mono_ms();
        dispatch(c, all + prefix, body_len);
        evbuffer_drain(in, (size_t)prefix + body_len);
    }
}

/* Output drained: completes a flush-then-close by queuing the reaper. */
static void conn_write_cb(struct bufferevent *bev, void *arg) {
    struct sbx_conn *c = arg;
    if (c->state == SBX_CONN_CLOSING && c->flush_then_close &&
        evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        event_active(c->reaper, 0, 0);
    sbx_conn_flush_drained(c);
}

/* Initiating side, once connected: sends our name and flags; waits for the status. */
static void send_name(struct sbx_conn *c) {
    unsigned char buf[300];
    hs_write(c, buf, sbx_hs_encode_name(buf, sizeof buf, c->node->flags, c->node->creation,
                                        c->node->name));
    c->state = SBX_CONN_I_WAIT_STATUS;
}

/* Best-effort TCP_NODELAY on bev's socket; a failure is ignored. */
static void set_nodelay(struct bufferevent *bev) {
    int one = 1;
    evutil_socket_t fd = bufferevent_getfd(bev);
    if (fd >= 0)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Splits alive@host; returns the host part or NULL. */
static const char *host_of(const char *name) {
    const char *at = strchr(name, '@');
    return at != NULL ? at + 1 : NULL;
}

/* Initiating over TLS: the TCP connection is up; its socket moves to a TLS bufferevent
 * (the plain one is freed without closing it). 0, or -1 (c closing). */
static int start_tls(struct sbx_conn *c) {
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    bufferevent_setfd(c->bev, -1);
    bufferevent_free(c->bev);
    c->bev = fd >= 0 ? sbx_tls_connect_bev(c->node->tls, c->node->base, fd, host_of(c->peer_name))
                     : NULL;
    if (c->bev == NULL) {
        sbx_conn_close(c, "cannot start TLS");
        return -1;
    }
    c->tls = 1;
    bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, SBX_HS_READ_HIGH);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    return 0;
}

/* Socket events: an outgoing connect completing starts TLS (node->tls) or our handshake,
 * and TLS completing on an initiator starts the handshake (an acceptor waits for the
 * peer's name); EOF or an error closes c (a no-op if it is already closing). */
static void conn_event_cb(struct bufferevent *bev, short what, void *arg) {
    struct sbx_conn *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        if (!c->initiator)
            return;
        set_nodelay(c->bev);
        if (c->node->tls != NULL && !c->tls)
            (void)start_tls(c);
        else
            send_name(c);
        return;
    }
    if (c->tls && (what & BEV_EVENT_ERROR)) {
        sbx_tls_error(bev, c->tls_why, sizeof c->tls_why);
        if (c->tls_why[0] != '\0') {
            sbx_conn_close(c, c->tls_why);
            return;
        }
    }
    if (what & BEV_EVENT_EOF)
        sbx_conn_close(c, "peer closed the connection");
    else if (what & BEV_EVENT_ERROR)
        sbx_conn_close(c, "socket error");
}

/* Before up: the handshake timeout closes c. Once up (every 250 ms): runs
 * waiters queued by sbx_conn_connect, closes c after too long a silence (the
 * peer's shorter tick honoured) and sends a tick when we have been quiet. */
static void conn_timer_cb(evutil_socket_t fd, short what, void *arg) {
    struct sbx_conn *c = arg;
    int64_t now = sbx_mono_ms();
    (void)fd;
    (void)what;
    if (c->state != SBX_CONN_UP) {
        if (c->state != SBX_CONN_CLOSING)
            sbx_conn_close(c, "handshake timeout");
        return;
    }
    if (c->waiters != NULL)
        run_waiters(c, c->id, NULL);
    int64_t own = (int64_t)c->node->net_ticktime_s * 1000;
    int64_t silence = own;
    int64_t tick_every = own / 4;
    if (c->tick_gap_ms > 0) {
        /* The peer ticks every (its net_ticktime)/4 when idle: honour its shorter one. */
        int64_t peer = c->tick_gap_ms * 4;
        if (peer < 2000)
            peer = 2000;
        if (peer < silence)
            silence = peer;
        if (c->tick_gap_ms < tick_every)
            tick_every = c->tick_gap_ms;
    }
    if (now - c->last_read_ms > silence) {
        sbx_conn_close(c, "net_tick_timeout");
        return;
    }
    if (now - c->last_write_ms >= tick_every) {
        static const char zero[4] = {0, 0, 0, 0};
        bufferevent_write(c->bev, zero, 4);
        sbx_conn_flush_request(c);
        c->last_write_ms = now;
    }
}

/* See conn.h. The parts are copied. c is never freed here, but it may start
 * closing (out of memory, backlog over the limit), which also returns -1. */
int sbx_conn_write_packet(struct sbx_conn *c, const char *a, size_t alen, const char *b,
                          size_t blen, const char *d, size_t dlen) {
    unsigned char hdr[5];
    size_t total = 1 + alen + blen + dlen;
    if (c->state != SBX_CONN_UP || total > 0xffffffffu)
        return -1;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    hdr[0] = (unsigned char)(total >> 24);
    hdr[1] = (unsigned char)(total >> 16);
    hdr[2] = (unsigned char)(total >> 8);
    hdr[3] = (unsigned char)total;
    hdr[4] = 112;
    if (evbuffer_add(out, hdr, 5) != 0 || (alen && evbuffer_add(out, a, alen) != 0) ||
        (blen && evbuffer_add(out, b, blen) != 0) || (dlen && evbuffer_add(out, d, dlen) != 0)) {
        sbx_conn_close(c, "out of memory");
        return -1;
    }
    c->last_write_ms = sbx_mono_ms();
    sbx_conn_flush_request(c);
    if (evbuffer_get_length(out) > c->node->max_outbuf) {
        sbx_conn_close(c, "peer is not reading (output backlog over the limit)");
        return -1;
    }
    return 0;
}

/* A summary line about refused and evicted strangers, at most every 10 s (a flood must not
 * become a flood of log lines). */
static void note_strangers(struct sbx_node *node) {
    int64_t now = sbx_mono_ms();
    if (node->strangers_logged_ms != 0 && now - node->strangers_logged_ms < 10000)
        return;
    node->strangers_logged_ms = now;
    SBX_WARN("too many connections in the handshake: refusing or evicting",
             "refused=%llu evicted=%llu pending=%zu max=%zu max_per_addr=%zu",
             (unsigned long long)node->stats_strangers_refused,
             (unsigned long long)node->stats_strangers_evicted, node->strangers.total,
             node->strangers.max_total, node->strangers.max_per_addr);
}

/* At the overall cap: destroys the oldest stranger among the addresses that hold the most
 * (the oldest of all when every address holds one), so that a flood from few addresses cannot
 * keep a real peer out, and a young handshake outlives older ones. Called only from the
 * listener. 0, or -1 if none was found. */
static int evict_one(struct sbx_node *node) {
    struct sbx_conn *victim = NULL;
    size_t most = sbx_strangers_most(&node->strangers);
    if (most == 0)
        return -1;
    for (struct sbx_conn *o = node->stranger_first; o != NULL && victim == NULL; o = o->snext)
        if (sbx_strangers_count(&node->strangers, &o->addr) == most)
            victim = o;
    if (victim == NULL)
        return -1;
    /* Destroyed now, not deferred: this runs from the listener, outside any of the victim's
     * callbacks, and its descriptor must be free before the newcomer takes one. */
    victim->quiet = 1;
    victim->close_reason = "evicted: too many connections in the handshake";
    sbx_conn_destroy(victim);
    node->stats_strangers_evicted++;
    return 0;
}

/* The source address of an accepted socket (len 0 when it is neither IPv4 nor IPv6), and its
 * text "ip:port" into text (empty when unknown). */
static void source_of(const struct sockaddr *sa, int salen, struct sbx_addr *a, char *text,
                      size_t cap) {
    char ip[INET6_ADDRSTRLEN];
    memset(a, 0, sizeof *a);
    text[0] = '\0';
    if (sa != NULL && sa->sa_family == AF_INET && salen >= (int)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;
        a->len = 4;
        memcpy(a->b, &sin->sin_addr, 4);
        if (inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof ip) != NULL)
            snprintf(text, cap, "%s:%u", ip, ntohs(sin->sin_port));
    } else if (sa != NULL && sa->sa_family == AF_INET6 &&
               salen >= (int)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;
        a->len = 16;
        memcpy(a->b, &sin6->sin6_addr, 16);
        if (inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof ip) != NULL)
            snprintf(text, cap, "[%s]:%u", ip, ntohs(sin6->sin6_port));
    }
}

/* See conn.h. The new connection belongs to node->conns and counts as a stranger until its
 * peer proves the cookie; its handshake timer runs from now. Until then it reads at most
 * SBX_HS_READ_HIGH bytes ahead and accepts messages of at most SBX_HS_MAX_BODY bytes. */
int sbx_conn_accept(struct sbx_node *node, evutil_socket_t fd, const struct sockaddr *sa,
                    int salen) {
    struct sbx_addr a;
    char text[64];

    source_of(sa, salen, &a, text, sizeof text);
    if (sbx_strangers_count(&node->strangers, &a) >= node->strangers.max_per_addr ||
        (node->strangers.total >= node->strangers.max_total && evict_one(node) != 0)) {
        evutil_closesocket(fd);
        node->stats_strangers_refused++;
        note_strangers(node);
        return 0;
    }
    if (node->strangers.total + 1 >= node->strangers.max_total)
        note_strangers(node);
    struct sbx_conn *c = conn_new(node, 0);
    if (c == NULL) {
        evutil_closesocket(fd);
        return -1;
    }
    c->addr = a;
    (void)stranger_add(c);
    snprintf(c->peer_addr, sizeof c->peer_addr, "%s", text);
    if (node->tls != NULL) {
        c->tls = 1;
        c->bev = sbx_tls_accept_bev(node->tls, node->base, fd); /* owns fd, even on NULL */
    } else {
        c->bev = bufferevent_socket_new(node->base, fd, BEV_OPT_CLOSE_ON_FREE);
        if (c->bev == NULL)
            evutil_closesocket(fd);
    }
    if (c->bev == NULL) {
        sbx_conn_close(c, "out of memory");
        return -1;
    }
    bufferevent_setwatermark(c->bev, EV_READ, 0, SBX_HS_READ_HIGH);
    set_nodelay(c->bev);
    node->stats_conns_accepted++;
    c->state = SBX_CONN_A_WAIT_NAME;
    bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    return 0;
}

/* Initiating side: once the peer host's epmd has answered, frees that link and connects
 * to the node's port; a refusal or failure closes c. Also called by epmd_event_cb on EOF. */
static void epmd_read_cb(struct bufferevent *bev, void *arg) {
    struct sbx_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    unsigned char buf[512];
    size_t n = evbuffer_get_length(in);
    uint16_t port;
    const char *why = NULL;

    if (n > sizeof buf)
        n = sizeof buf;
    evbuffer_copyout(in, buf, n);
    int r = sbx_epmd_parse_port_reply(buf, n, &port, &why);
    if (r == 0)
        return; /* need more */
    bufferevent_free(c->epmd_bev);
    c->epmd_bev = NULL;
    if (r < 0) {
        sbx_conn_close(c, why);
        return;
    }
    c->bev = bufferevent_socket_new(c->node->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        sbx_conn_close(c, "out of memory");
        return;
    }
    bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, SBX_HS_READ_HIGH);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->state = SBX_CONN_I_CONNECTING;
    snprintf(c->peer_addr, sizeof c->peer_addr, "port %u", port);
    if (bufferevent_socket_connect_hostname(c->bev, c->node->dns, AF_INET, host_of(c->peer_name),
                                            port) != 0)
        sbx_conn_close(c, "cannot connect to the peer");
}

/* epmd link events: once connected sends PORT_PLEASE2; on EOF or
 * error uses what arrived, and closes c if no whole answer did. */
static void epmd_event_cb(struct bufferevent *bev, short what, void *arg) {
    struct sbx_conn *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        unsigned char req[300];
        int n = sbx_epmd_encode_port_please(req, sizeof req, c->peer_name);
        if (n > 0)
            bufferevent_write(bev, req, (size_t)n);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        epmd_read_cb(bev, arg); /* epmd may close right after replying */
        if (c->epmd_bev != NULL) {
            bufferevent_free(c->epmd_bev);
            c->epmd_bev = NULL;
            sbx_conn_close(c, "peer host's epmd unreachable or closed");
        }
    }
}

/* See conn.h. The waiter (cb, key) belongs to the connection until cb runs. Once a connection
 * exists, even one failing at once, 0 is returned and the failure reaches cb from the loop. */
int sbx_conn_connect(struct sbx_node *node, const char *peer_name, sbx_connect_cb cb,
                     uint64_t key) {
    struct sbx_conn_waiter *w = calloc(1, sizeof *w);
    struct sbx_conn *c = NULL;

    if (w == NULL)
        return -1;
    w->cb = cb;
    w->key = key;
    if (!sbx_node_name_valid(peer_name, strlen(peer_name)) ||
        strcmp(peer_name, node->name) == 0) {
        free(w);
        return -1;
    }
    /* Reuse a connection that is up, or our own attempt under way; never an accepted one
     * that has not proven the cookie (its peer may be anyone using that name). */
    for (struct sbx_conn *o = node->conns; o != NULL; o = o->next) {
        if (o->state != SBX_CONN_CLOSING && (o->state == SBX_CONN_UP || o->initiator) &&
            strcmp(o->peer_name, peer_name) == 0) {
            c = o;
            break;
        }
    }
    if (c != NULL && c->state == SBX_CONN_UP) {
        /* Already up: answer from the loop, not from inside this call. */
        w->next = c->waiters;
        c->waiters = w;
        event_active(c->timer, 0, 0); /* the tick timer runs waiters below */
        return 0;
    }
    if (c == NULL) {
        c = conn_new(node, 1);
        if (c == NULL) {
            free(w);
            return -1;
        }
        snprintf(c->peer_name, sizeof c->peer_name, "%s", peer_name);
        c->state = SBX_CONN_I_EPMD;
        c->epmd_bev = bufferevent_socket_new(node->base, -1, BEV_OPT_CLOSE_ON_FREE);
        if (c->epmd_bev == NULL) {
            c->waiters = w;
            sbx_conn_close(c, "out of memory");
            return 0;
        }
        bufferevent_setcb(c->epmd_bev, epmd_read_cb, NULL, epmd_event_cb, c);
        bufferevent_enable(c->epmd_bev, EV_READ | EV_WRITE);
        if (bufferevent_socket_connect_hostname(c->epmd_bev, node->dns, AF_INET,
                                                host_of(peer_name), EPMD_PORT) != 0) {
            c->waiters = w;
            sbx_conn_close(c, "cannot resolve the peer host");
            return 0;
        }
    }
    w->next = c->waiters;
    c->waiters = w;
    return 0;
}
