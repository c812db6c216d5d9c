/* Once-per-turn output for connections that are up.
 *
 * A socket bufferevent with EV_WRITE enabled registers the socket for writability (one
 * epoll_ctl) whenever output is queued, writes it from the next epoll_wait and deregisters
 * it (another epoll_ctl): three syscalls and a loop turn for every message relayed, which
 * is most of the cost of forwarding a remote_call. Here the bufferevent's EV_WRITE stays
 * disabled while c is up, so queuing output only appends to its output buffer; a flush
 * event made active on the first message of a turn writes the whole buffer with one
 * writev after the callbacks already due in that turn. Only what the socket cannot take
 * is left to the bufferevent (EV_WRITE enabled until its write callback sees the buffer
 * drained, sbx_conn_flush_drained), which keeps the output limit and error handling as
 * they were. */
#include "dist/conn_flush.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "dist/conn.h"

/* Flush event: writes c's output; leaves any rest, and any write error, to the
 * bufferevent (EV_WRITE enabled: its write callback reports an error as an event, which
 * closes c). A closing c writes nothing more from here. */
static void flush_cb(evutil_socket_t fd, short what, void *arg) {
    struct sbx_conn *c = arg;
    (void)fd;
    (void)what;
    if (c->state != SBX_CONN_UP || c->bev == NULL)
        return;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (evbuffer_get_length(out) == 0)
        return;
    evutil_socket_t s = bufferevent_getfd(c->bev);
    int n = -1;
    if (s >= 0) {
        /* A socket bufferevent keeps its output's start frozen but while it writes. */
        evbuffer_unfreeze(out, 1);
        n = evbuffer_write(out, s);
        evbuffer_freeze(out, 1);
    }
    if (n >= 0 && evbuffer_get_length(out) == 0)
        return;
    bufferevent_enable(c->bev, EV_WRITE);
}

/* See conn_flush.h. The flush event, if still active, later finds nothing to write. */
void sbx_conn_flush_now(struct sbx_conn *c) {
    if (c->flush_ev != NULL)
        flush_cb(-1, EV_WRITE, c);
}

/* See conn_flush.h. Output queued before this call (the handshake's last message) is
 * flushed in this turn. */
int sbx_conn_flush_start(struct sbx_conn *c) {
    c->flush_ev = event_new(bufferevent_get_base(c->bev), -1, 0, flush_cb, c);
    if (c->flush_ev == NULL)
        return -1;
    bufferevent_disable(c->bev, EV_WRITE);
    sbx_conn_flush_request(c);
    return 0;
}

/* See conn_flush.h. Activating an event that is active already changes nothing. */
void sbx_conn_flush_request(struct sbx_conn *c) {
    if (c->flush_ev != NULL)
        event_active(c->flush_ev, EV_WRITE, 0);
}

/* See conn_flush.h. */
void sbx_conn_flush_drained(struct sbx_conn *c) {
    if (c->flush_ev != NULL && c->state == SBX_CONN_UP && c->bev != NULL &&
        evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
        bufferevent_disable(c->bev, EV_WRITE);
}

/* See conn_flush.h. */
void sbx_conn_flush_free(struct sbx_conn *c) {
    if (c->flush_ev != NULL)
        event_free(c->flush_ev);
    c->flush_ev = NULL;
}
