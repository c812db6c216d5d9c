/* GET /events: Server-Sent Events, one JSON object per event on a `data:` line. A stream
 * for every sandbox carries status and metrics events; /events?id=ID carries one
 * sandbox's status, metrics, log and trace events. Each stream is bounded like a
 * subscriber: past WEB_SSE_BACKLOG bytes queued to its client, events are dropped and
 * counted, and the next one sent says how many (`dropped`). */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "core/sandbox.h"
#include "web/web_int.h"

struct web_sse {
    struct web_sse *next;
    struct web *w;
    struct evhttp_request *req;
    char id[SBX_ID_MAX + 1]; /* "" = every sandbox */
    uint64_t dropped;
};

/* 1 if the stream takes topic events of sandbox id. */
static int applies(const struct web_sse *s, const char *id, enum sbx_topic topic) {
    if (s->id[0] == '\0')
        return topic == SBX_TOPIC_STATUS || topic == SBX_TOPIC_METRICS;
    return strcmp(s->id, id) == 0 && topic != SBX_TOPIC_PROCESSES;
}

/* See web_int.h. */
int web_sse_wants(struct web *w, const char *id, enum sbx_topic topic) {
    for (const struct web_sse *s = w->sse; s != NULL; s = s->next)
        if (applies(s, id, topic))
            return 1;
    return 0;
}

/* Unlinks and frees s; the request itself belongs to evhttp. */
static void sse_free(struct web_sse *s) {
    struct web *w = s->w;
    for (struct web_sse **pp = &w->sse; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            w->sse_count--;
            break;
        }
    }
    free(s);
}

/* The client went away (or the stream timed out): evhttp frees the connection after
 * this. A reply still under way was detached from it first (libevent leaves such a
 * request to its user) and is freed here; one still attached goes with the connection. */
static void on_close(struct evhttp_connection *evcon, void *arg) {
    struct web_sse *s = arg;
    struct evhttp_request *req = s->req;
    (void)evcon;
    sse_free(s);
    if (evhttp_request_get_connection(req) == NULL)
        evhttp_request_free(req);
}

/* Bytes waiting to be written to the stream's client. */
static size_t backlog(const struct web_sse *s) {
    struct evhttp_connection *evcon = evhttp_request_get_connection(s->req);
    struct bufferevent *bev = evcon != NULL ? evhttp_connection_get_bufferevent(evcon) : NULL;
    return bev != NULL ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;
}

/* Queues one `data:` line (text of len bytes, no newline inside) to s. */
static void send_line(struct web_sse *s, const char *text, size_t len) {
    struct evbuffer *b = evbuffer_new();
    if (b == NULL)
        return;
    evbuffer_add(b, "data: ", 6);
    evbuffer_add(b, text, len);
    evbuffer_add(b, "\n\n", 2);
    evhttp_send_reply_chunk(s->req, b);
    evbuffer_free(b);
}

/* See web_int.h. ev is freed here, whoever takes it. */
void web_sse_publish(struct web *w, const char *id, enum sbx_topic topic, json_t *ev) {
    if (ev == NULL)
        return;
    char *text = NULL;
    for (struct web_sse *s = w->sse; s != NULL; s = s->next) {
        if (!applies(s, id, topic))
            continue;
        if (backlog(s) > WEB_SSE_BACKLOG) {
            s->dropped++;
            w->sse_dropped++;
            continue;
        }
        if (s->dropped > 0) {
            json_object_set_new(ev, "dropped", json_integer((json_int_t)s->dropped));
            s->dropped = 0;
            free(text);
            text = json_dumps(ev, JSON_COMPACT);
            json_object_del(ev, "dropped");
            if (text != NULL)
                send_line(s, text, strlen(text));
            free(text);
            text = NULL;
            continue;
        }
        if (text == NULL)
            text = json_dumps(ev, JSON_COMPACT);
        if (text != NULL)
            send_line(s, text, strlen(text));
    }
    free(text);
    json_decref(ev);
}

/* Keeps streams alive through proxies, and finds dead clients: a comment line. */
static void on_ping(evutil_socket_t fd, short what, void *arg) {
    struct web *w = arg;
    (void)fd;
    (void)what;
    for (struct web_sse *s = w->sse; s != NULL; s = s->next) {
        if (backlog(s) > WEB_SSE_BACKLOG)
            continue;
        struct evbuffer *b = evbuffer_new();
        if (b == NULL)
            return;
        evbuffer_add(b, ": ping\n\n", 8);
        evhttp_send_reply_chunk(s->req, b);
        evbuffer_free(b);
    }
}

/* See web_int.h. id NULL: every sandbox. Answers 503 past WEB_MAX_SSE streams and 404
 * for a sandbox that does not exist. The first line is a `hello` event. */
void web_sse_open(struct web *w, struct evhttp_request *req, const char *id) {
    struct sbx_core *core = sbx_core_get();
    if (id != NULL && (strlen(id) > SBX_ID_MAX || core == NULL || sbx_sandbox_find(core, id) == NULL)) {
        web_reply_json(req, 404, json_pack("{s:s}", "error", "not_found"));
        return;
    }
    if (w->sse_count >= WEB_MAX_SSE) {
        web_reply_json(req, 503, json_pack("{s:s}", "error", "too_many_streams"));
        return;
    }
    if (w->ping == NULL) {
        w->ping = event_new(w->base, -1, EV_PERSIST, on_ping, w);
        struct timeval tv = {WEB_SSE_PING_S, 0};
        if (w->ping == NULL || event_add(w->ping, &tv) != 0) {
            web_reply_json(req, 503, json_pack("{s:s}", "error", "no_memory"));
            return;
        }
    }
    struct web_sse *s = calloc(1, sizeof *s);
    if (s == NULL) {
        web_reply_json(req, 503, json_pack("{s:s}", "error", "no_memory"));
        return;
    }
    s->w = w;
    s->req = req;
    if (id != NULL)
        snprintf(s->id, sizeof s->id, "%s", id);
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "text/event-stream");
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_send_reply_start(req, 200, "OK");
    /* The stream lives until the client leaves; it is not an idle connection. */
    evhttp_connection_set_timeout(evcon, 3600);
    evhttp_connection_set_closecb(evcon, on_close, s);
    s->next = w->sse;
    w->sse = s;
    w->sse_count++;
    const char *hello = "{\"topic\":\"hello\"}";
    send_line(s, hello, strlen(hello));
}

/* See web_int.h. Forgets every stream (shutdown: evhttp_free closes the connections). */
void web_sse_close_all(struct web *w) {
    while (w->sse != NULL) {
        struct web_sse *s = w->sse;
        evhttp_connection_set_closecb(evhttp_request_get_connection(s->req), NULL, NULL);
        sse_free(s);
    }
    if (w->ping != NULL)
        event_free(w->ping);
    w->ping = NULL;
}
