/* A cap on open HTTP connections. libevent 2.1's evhttp has no such limit and no hook when
 * a server connection closes, so the cap tracks connections through their bufferevents:
 *
 * - evhttp asks us for each new connection's bufferevent (evhttp_set_bevcb). We make a
 *   socket bufferevent that closes its socket when it is finally freed, and keep one
 *   reference to it.
 * - When evhttp is done with a connection it frees the bufferevent, which clears all of
 *   its callbacks (or resets it, which clears them too and closes the socket). A live server
 *   connection always has evhttp's callbacks set. So a tracked bufferevent whose callbacks
 *   are all NULL is a closed connection: a sweep drops our reference, which frees it and
 *   closes its socket, and the count falls.
 * - Until the sweep, the socket of a connection evhttp freed stays open (evhttp has shut
 *   down its writing side, so the client sees the close). That is deliberate: were it
 *   closed at once, a new connection could get the same descriptor number while the old
 *   bufferevent's read event is still registered on it, and steal its bytes. A read
 *   high-water mark bounds what such a connection can still buffer.
 * - At the cap the listener stops accepting: new clients wait in the kernel's backlog and
 *   cost sandboxd no descriptor until a connection closes (every connection has evhttp's
 *   read timeout, so slots come back). */
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <stdlib.h>

#include "util/log.h"
#include "web/web_int.h"

/* How often closed connections are counted out (and the listener resumed). */
#define CONNCAP_SWEEP_MS 200
/* Input a connection may buffer before reading pauses (evhttp drains what it parses; its
 * own limits on headers and body are far below this). */
#define CONNCAP_READ_HIGH (64 * 1024)

struct web_conncap {
    struct evconnlistener *listener;
    struct event *sweep;
    struct bufferevent **bevs; /* tracked; one reference each */
    size_t n, max;
    int paused;
    uint64_t refused_pauses;   /* times the cap was reached */
};

/* 1 if evhttp no longer uses bev (see the top of this file). bev: borrowed. */
static int conn_closed(struct bufferevent *bev) {
    bufferevent_data_cb r = NULL, wr = NULL;
    bufferevent_event_cb ev = NULL;
    void *arg = NULL;
    bufferevent_getcb(bev, &r, &wr, &ev, &arg);
    return r == NULL && wr == NULL && ev == NULL;
}

/* Drops closed connections (all of them when all != 0), releasing our references, and
 * resumes accepting below the cap. Runs from the sweep timer, never inside evhttp. */
static void sweep(struct web_conncap *cc, int all) {
    size_t keep = 0;
    for (size_t i = 0; i < cc->n; i++) {
        if (all || conn_closed(cc->bevs[i]))
            bufferevent_decref(cc->bevs[i]);
        else
            cc->bevs[keep++] = cc->bevs[i];
    }
    cc->n = keep;
    if (cc->paused && cc->n < cc->max && cc->listener != NULL) {
        evconnlistener_enable(cc->listener);
        cc->paused = 0;
    }
}

static void on_sweep(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    sweep(arg, 0);
}

/* evhttp's bufferevent factory: a new connection was accepted. Returns a bufferevent that
 * evhttp owns and we also reference, or NULL (evhttp then makes its own, uncounted: only
 * when memory is short). */
static struct bufferevent *on_new_conn(struct event_base *base, void *arg) {
    struct web_conncap *cc = arg;
    struct bufferevent *bev;
    if (cc->n >= cc->max)      /* accepted before the pause took effect: tidy first */
        sweep(cc, 0);
    bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL)
        return NULL;
    bufferevent_setwatermark(bev, EV_READ, 0, CONNCAP_READ_HIGH);
    if (cc->n >= cc->max) {    /* bevs has room for max entries only */
        SBX_WARN("http connection over the cap", "max=%zu", cc->max);
        return bev;
    }
    bufferevent_incref(bev);
    cc->bevs[cc->n++] = bev;
    if (cc->n >= cc->max && !cc->paused && cc->listener != NULL) {
        evconnlistener_disable(cc->listener);
        cc->paused = 1;
        cc->refused_pauses++;
    }
    return bev;
}

/* See web_int.h. bound: evhttp's, borrowed. */
int web_conncap_install(struct web *w, struct evhttp_bound_socket *bound, size_t max) {
    struct web_conncap *cc = calloc(1, sizeof *cc);
    struct timeval tv = {0, CONNCAP_SWEEP_MS * 1000};
    if (cc == NULL || max == 0)
        goto fail;
    cc->max = max;
    cc->bevs = calloc(max, sizeof *cc->bevs);
    cc->sweep = event_new(w->base, -1, EV_PERSIST, on_sweep, cc);
    if (cc->bevs == NULL || cc->sweep == NULL || event_add(cc->sweep, &tv) != 0)
        goto fail;
    cc->listener = evhttp_bound_socket_get_listener(bound);
    evhttp_set_bevcb(w->http, on_new_conn, cc);
    w->conncap = cc;
    return 0;
fail:
    if (cc != NULL && cc->sweep != NULL)
        event_free(cc->sweep);
    if (cc != NULL)
        free(cc->bevs);
    free(cc);
    return -1;
}

/* See web_int.h. */
size_t web_conncap_open(const struct web *w) {
    return w->conncap != NULL ? w->conncap->n : 0;
}

/* See web_int.h. */
size_t web_conncap_max(const struct web *w) {
    return w->conncap != NULL ? w->conncap->max : 0;
}

/* See web_int.h. */
uint64_t web_conncap_pauses(const struct web *w) {
    return w->conncap != NULL ? w->conncap->refused_pauses : 0;
}

/* See web_int.h. Call after evhttp_free (every connection is closed by then). */
void web_conncap_free(struct web *w) {
    struct web_conncap *cc = w->conncap;
    if (cc == NULL)
        return;
    w->conncap = NULL;
    cc->listener = NULL;
    sweep(cc, 1);
    event_free(cc->sweep);
    free(cc->bevs);
    free(cc);
}
