/* Unit tests for net/http.h against a tiny HTTP/1.1 server run by the test itself, on
 * the same libevent base as the client: a unix socket in a mkdtemp folder (and a TCP
 * port on 127.0.0.1 for the tcp endpoint). The server's routes:
 *
 *   /hello             200 "hello world" (HEAD: headers only)
 *   /echo              200, the request body with the request's Content-Type
 *   /method            200, the request's method as body
 *   /missing           404 {"message":"page not found"}
 *   /stream            200 chunked, "part-0\n" .. "part-4\n", one every 20 ms
 *   /stream404         404 with a JSON body (asked for as a stream)
 *   /cut               Content-Length 100, 10 bytes, then the connection is closed
 *   /cutchunked        two chunks, then the connection is closed
 *   /drop              the connection is closed without an answer
 *   /slow              never answers
 *   /big?n=N           200, N bytes
 *   /n/I?delay=MS      200 "I", after MS milliseconds
 *
 * Checked: whole bodies, request bodies and their types, streaming in order, statuses,
 * timeouts, cancel (no callback, connection closed), failures mid-response, max_body,
 * 100 concurrent requests, re-entrant use from callbacks (new requests, cancels, freeing
 * the client), connection reuse, endpoint parsing, and no leaked descriptor (memory:
 * ASan). A last test talks to a real dockerd if /var/run/docker.sock answers (skipped
 * otherwise, unless SANDBOXD_REQUIRE_DOCKER=1). */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "net/http.h"
#include "util/clock.h"

/* ---- the test server ------------------------------------------------------------------ */

struct server;

struct sconn {
    struct sconn *next, *prev;
    struct server *srv;
    struct bufferevent *bev;
    struct event *timer;
    int busy;             /* an answer is being sent later */
    int close_after;      /* close once the output is flushed */
    int have_head;
    char method[16];
    char path[1024];
    size_t clen;
    int stream_i;         /* /stream: chunks sent */
    int stream_max;
    int stream_cut;       /* close after stream_max chunks, without the last chunk */
    char delayed[64];     /* /n/I: body sent when the timer fires */
};

struct server {
    struct event_base *base;
    struct evconnlistener *unix_lis, *tcp_lis;
    char dir[64];
    char sock_path[100];
    uint16_t tcp_port;
    struct sconn *conns;
    int accepted, open, closed, requests;
    char last_ct[128];     /* Content-Type of the last request ("" if none) */
    char last_auth[128];   /* X-Registry-Auth of the last request */
    size_t last_clen;
    int chunks_sent;       /* by /stream, over all connections */
};

static void sconn_free(struct sconn *c) {
    struct server *srv = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->timer)
        event_free(c->timer);
    bufferevent_free(c->bev);
    srv->open--;
    srv->closed++;
    free(c);
}

static void sconn_printf(struct sconn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void sconn_printf(struct sconn *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    evbuffer_add_vprintf(bufferevent_get_output(c->bev), fmt, ap);
    va_end(ap);
}

static void respond(struct sconn *c, int status, const char *reason, const char *ctype,
                    const char *body, size_t len) {
    sconn_printf(c, "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n", status, reason, len);
    if (ctype && *ctype)
        sconn_printf(c, "Content-Type: %s\r\n", ctype);
    sconn_printf(c, "\r\n");
    if (strcmp(c->method, "HEAD") != 0)
        bufferevent_write(c->bev, body, len);
}

static void process(struct sconn *c);

/* Closes c if it is to be closed and all it had to send is gone. 1 if freed. */
static int maybe_close(struct sconn *c) {
    if (c->close_after && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        sconn_free(c);
        return 1;
    }
    return 0;
}

static void on_sconn_timer(evutil_socket_t fd, short what, void *arg) {
    struct sconn *c = arg;
    (void)fd;
    (void)what;
    if (c->stream_max) {
        if (c->stream_i < c->stream_max) {
            sconn_printf(c, "7\r\npart-%d\n\r\n", c->stream_i);
            c->stream_i++;
            c->srv->chunks_sent++;
            struct timeval tv = {0, 20000};
            evtimer_add(c->timer, &tv);
            return;
        }
        if (c->stream_cut) {
            c->close_after = 1;
            maybe_close(c);
            return;
        }
        sconn_printf(c, "0\r\n\r\n");
        c->stream_max = 0;
    } else {
        respond(c, 200, "OK", "text/plain", c->delayed, strlen(c->delayed));
    }
    c->busy = 0;
    process(c);
}

static void start_timer(struct sconn *c, int ms) {
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (!c->timer)
        c->timer = evtimer_new(c->srv->base, on_sconn_timer, c);
    assert_non_null(c->timer);
    evtimer_add(c->timer, &tv);
}

/* Answers one whole request (head parsed, body in body[0..clen)). */
static void handle(struct sconn *c, const char *body) {
    const char *p = c->path;
    c->srv->requests++;
    if (strcmp(p, "/hello") == 0) {
        respond(c, 200, "OK", "text/plain", "hello world", 11);
    } else if (strcmp(p, "/echo") == 0) {
        respond(c, 200, "OK", c->srv->last_ct, body, c->clen);
    } else if (strcmp(p, "/method") == 0) {
        respond(c, 200, "OK", "text/plain", c->method, strlen(c->method));
    } else if (strcmp(p, "/missing") == 0) {
        const char *m = "{\"message\":\"page not found\"}";
        respond(c, 404, "Not Found", "application/json", m, strlen(m));
    } else if (strcmp(p, "/stream404") == 0) {
        const char *m = "{\"message\":\"No such container: x\"}";
        respond(c, 404, "Not Found", "application/json", m, strlen(m));
    } else if (strcmp(p, "/stream") == 0 || strcmp(p, "/cutchunked") == 0) {
        sconn_printf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n");
        c->stream_i = 0;
        c->stream_max = strcmp(p, "/stream") == 0 ? 5 : 2;
        c->stream_cut = strcmp(p, "/cutchunked") == 0;
        c->busy = 1;
        start_timer(c, 1);
    } else if (strcmp(p, "/cut") == 0) {
        sconn_printf(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
        c->close_after = 1;
        c->busy = 1;
    } else if (strcmp(p, "/drop") == 0) {
        c->close_after = 1;
        c->busy = 1;
    } else if (strcmp(p, "/slow") == 0) {
        c->busy = 1;
    } else if (strncmp(p, "/big?n=", 7) == 0) {
        size_t n = strtoul(p + 7, NULL, 10);
        char *b = malloc(n + 1);
        assert_non_null(b);
        for (size_t i = 0; i < n; i++)
            b[i] = (char)('a' + i % 26);
        respond(c, 200, "OK", "application/octet-stream", b, n);
        free(b);
    } else if (strncmp(p, "/n/", 3) == 0) {
        char *q = strchr(p, '?');
        int delay = q && strncmp(q, "?delay=", 7) == 0 ? (int)strtol(q + 7, NULL, 10) : 0;
        size_t n = q ? (size_t)(q - (p + 3)) : strlen(p + 3);
        assert_true(n < sizeof c->delayed);
        memcpy(c->delayed, p + 3, n);
        c->delayed[n] = '\0';
        c->busy = 1;
        start_timer(c, delay);
    } else {
        respond(c, 400, "Bad Request", NULL, "", 0);
    }
}

/* Parses and answers the requests buffered on c, one at a time. */
static void process(struct sconn *c) {
    struct evbuffer *in = bufferevent_get_input(c->bev);
    while (!c->busy && !c->close_after) {
        if (!c->have_head) {
            unsigned char *first = evbuffer_pullup(in, 1);
            if (first && !(*first >= 'A' && *first <= 'Z')) {
                sconn_free(c); /* not HTTP (a TLS ClientHello): hang up */
                return;
            }
            struct evbuffer_ptr pos = evbuffer_search(in, "\r\n\r\n", 4, NULL);
            if (pos.pos < 0)
                return;
            size_t hlen = (size_t)pos.pos + 4;
            char *head = malloc(hlen + 1);
            assert_non_null(head);
            assert_int_equal(evbuffer_remove(in, head, hlen), (int)hlen);
            head[hlen] = '\0';
            assert_int_equal(sscanf(head, "%15s %1023s", c->method, c->path), 2);
            c->clen = 0;
            c->srv->last_ct[0] = '\0';
            c->srv->last_auth[0] = '\0';
            for (char *line = strstr(head, "\r\n"); line && line[2]; line = strstr(line + 2, "\r\n")) {
                char *l = line + 2, *end = strstr(l, "\r\n");
                size_t ll = end ? (size_t)(end - l) : strlen(l);
                if (strncasecmp(l, "Content-Length:", 15) == 0)
                    c->clen = strtoul(l + 15, NULL, 10);
                else if (strncasecmp(l, "Content-Type:", 13) == 0)
                    snprintf(c->srv->last_ct, sizeof c->srv->last_ct, "%.*s", (int)(ll - 14), l + 14);
                else if (strncasecmp(l, "X-Registry-Auth:", 16) == 0)
                    snprintf(c->srv->last_auth, sizeof c->srv->last_auth, "%.*s", (int)(ll - 17),
                             l + 17);
            }
            c->srv->last_clen = c->clen;
            free(head);
            c->have_head = 1;
        }
        if (evbuffer_get_length(in) < c->clen)
            return;
        char *body = malloc(c->clen + 1);
        assert_non_null(body);
        if (c->clen)
            assert_int_equal(evbuffer_remove(in, body, c->clen), (int)c->clen);
        c->have_head = 0;
        handle(c, body);
        free(body);
        if (maybe_close(c))
            return;
    }
}

static void on_sconn_read(struct bufferevent *bev, void *arg) {
    (void)bev;
    process(arg);
}

static void on_sconn_write(struct bufferevent *bev, void *arg) {
    (void)bev;
    maybe_close(arg);
}

static void on_sconn_event(struct bufferevent *bev, short what, void *arg) {
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        sconn_free(arg);
}

static void on_accept(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg) {
    struct server *srv = arg;
    struct sconn *c = calloc(1, sizeof *c);
    (void)lis;
    (void)sa;
    (void)salen;
    assert_non_null(c);
    c->srv = srv;
    c->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
    assert_non_null(c->bev);
    bufferevent_setcb(c->bev, on_sconn_read, on_sconn_write, on_sconn_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->accepted++;
    srv->open++;
}

static void server_start(struct server *srv, struct event_base *base) {
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t slen = sizeof sin;

    memset(srv, 0, sizeof *srv);
    srv->base = base;
    snprintf(srv->dir, sizeof srv->dir, "/tmp/sbx_http_XXXXXX");
    assert_non_null(mkdtemp(srv->dir));
    snprintf(srv->sock_path, sizeof srv->sock_path, "%s/sock", srv->dir);
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", srv->sock_path);
    srv->unix_lis = evconnlistener_new_bind(base, on_accept, srv,
                                            LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 256,
                                            (struct sockaddr *)&sun, sizeof sun);
    assert_non_null(srv->unix_lis);
    srv->tcp_lis = evconnlistener_new_bind(base, on_accept, srv,
                                           LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC |
                                               LEV_OPT_REUSEABLE,
                                           256, (struct sockaddr *)&sin, sizeof sin);
    assert_non_null(srv->tcp_lis);
    assert_int_equal(getsockname(evconnlistener_get_fd(srv->tcp_lis), (struct sockaddr *)&sin,
                                 &slen),
                     0);
    srv->tcp_port = ntohs(sin.sin_port);
}

static void server_stop(struct server *srv) {
    while (srv->conns)
        sconn_free(srv->conns);
    evconnlistener_free(srv->unix_lis);
    evconnlistener_free(srv->tcp_lis);
    unlink(srv->sock_path);
    rmdir(srv->dir);
}

/* ---- the client side: recording callbacks ------------------------------------------- */

#define MAXR 128

struct result {
    int done;
    int status;
    char *body;
    size_t len;
    int body_null;
    char err[512];
    int has_err;
    char *data;           /* on_data pieces, concatenated */
    size_t dlen;
    int data_calls;
    int chunks_at_first_data;
};

struct ctx {
    struct event_base *base;
    struct server srv;
    struct sbx_http *h;
    struct result r[MAXR];
    int outstanding;      /* loop stops when it reaches 0 */
    int fds_before;
    /* re-entrancy scenarios, by key */
    uint64_t ids[MAXR];
    int chain_left;       /* on_done of key 0 starts another /hello until 0 */
    int data_action;      /* 1: start /hello (key 1) from on_data; 2: cancel self;
                             3: free the client; 4: cancel key 1's request */
    int done_action;      /* 1: cancel key 1's request; 2: free the client; 3: cancel
                             the other of keys 0 and 1 */
    int freed;
};

static void start_hello(struct ctx *c, uint64_t key);

static int count_fds(void) {
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static void on_data(struct sbx_http *h, uint64_t key, const char *buf, size_t len) {
    struct ctx *c = sbx_http_user(h);
    struct result *r = &c->r[key];
    assert_true(key < MAXR);
    assert_false(r->done);
    if (r->data_calls == 0)
        r->chunks_at_first_data = c->srv.chunks_sent;
    r->data_calls++;
    r->data = realloc(r->data, r->dlen + len + 1);
    assert_non_null(r->data);
    memcpy(r->data + r->dlen, buf, len);
    r->dlen += len;
    r->data[r->dlen] = '\0';
    if (c->data_action == 1 && r->data_calls == 1) {
        start_hello(c, 1);
        c->outstanding++;
    } else if (c->data_action == 2 && r->data_calls == 1) {
        assert_int_equal(sbx_http_cancel(h, c->ids[key]), 0);
        assert_int_equal(sbx_http_cancel(h, c->ids[key]), -1);
        c->outstanding--;
        if (c->outstanding == 0)
            event_base_loopbreak(c->base);
    } else if (c->data_action == 3 && r->data_calls == 1) {
        sbx_http_free(h);
        c->h = NULL;
        c->freed = 1;
        event_base_loopbreak(c->base);
    } else if (c->data_action == 4 && r->data_calls == 1) {
        assert_int_equal(sbx_http_cancel(h, c->ids[1]), 0);
        c->outstanding--;
    }
}

static void on_done(struct sbx_http *h, uint64_t key, int status, const char *body, size_t len,
                    const char *err) {
    struct ctx *c = sbx_http_user(h);
    struct result *r = &c->r[key];
    assert_true(key < MAXR);
    assert_false(r->done); /* exactly once */
    r->done = 1;
    r->status = status;
    r->body_null = body == NULL;
    if (body) {
        assert_int_equal(body[len], '\0');
        r->body = malloc(len + 1);
        assert_non_null(r->body);
        memcpy(r->body, body, len + 1);
    }
    r->len = len;
    if (getenv("SBX_TEST_VERBOSE"))
        fprintf(stderr, "key=%llu status=%d len=%zu err=%s\n", (unsigned long long)key, status,
                len, err ? err : "-");
    if (err) {
        assert_int_equal(status, 0);
        assert_null(body);
        r->has_err = 1;
        snprintf(r->err, sizeof r->err, "%s", err);
    }
    /* A request cannot cancel itself once its on_done runs. */
    assert_int_equal(sbx_http_cancel(h, c->ids[key]), -1);
    if (key == 0 && c->chain_left > 0) {
        c->chain_left--;
        r->done = 0;
        free(r->body);
        r->body = NULL;
        start_hello(c, 0);
        return;
    }
    if (c->done_action == 3) { /* cancel the other of keys 0 and 1 */
        assert_int_equal(sbx_http_cancel(h, c->ids[1 - key]), 0);
        c->outstanding--;
        c->done_action = 0;
    } else if (c->done_action == 1) {
        assert_int_equal(sbx_http_cancel(h, c->ids[1]), 0);
        c->outstanding--;
        c->done_action = 0;
    } else if (c->done_action == 2) {
        sbx_http_free(h);
        c->h = NULL;
        c->freed = 1;
        event_base_loopbreak(c->base);
        return;
    }
    c->outstanding--;
    if (c->outstanding == 0)
        event_base_loopbreak(c->base);
}

/* Starts req with the test's callbacks under key; asserts it started. */
static uint64_t start(struct ctx *c, struct sbx_http_req req, uint64_t key) {
    const char *why = "unset";
    req.key = key;
    if (!req.on_done)
        req.on_done = on_done;
    uint64_t id = sbx_http_request(c->h, &req, &why);
    if (id == 0)
        fail_msg("request refused: %s", why);
    assert_null(why);
    c->ids[key] = id;
    return id;
}

static uint64_t get(struct ctx *c, const char *path, uint64_t key) {
    return start(c, (struct sbx_http_req){.method = "GET", .path = path}, key);
}

static void start_hello(struct ctx *c, uint64_t key) {
    get(c, "/hello", key);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

/* Runs the loop until every outstanding request is done or ms pass. Returns the time
 * spent, in ms. */
static int64_t run(struct ctx *c, int ms) {
    struct event *t = evtimer_new(c->base, on_deadline, c->base);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    int64_t t0 = sbx_mono_ms();
    assert_non_null(t);
    evtimer_add(t, &tv);
    event_base_dispatch(c->base);
    event_free(t);
    return sbx_mono_ms() - t0;
}

/* Runs the loop for ms, whatever happens. */
static void run_for(struct ctx *c, int ms) {
    int64_t end = sbx_mono_ms() + ms;
    while (sbx_mono_ms() < end)
        run(c, (int)(end - sbx_mono_ms()) + 1);
}

static struct sbx_http *new_unix_client(struct ctx *c) {
    struct sbx_http_endpoint ep;
    char url[160];
    snprintf(url, sizeof url, "unix://%s", c->srv.sock_path);
    assert_int_equal(sbx_http_endpoint_parse(&ep, url, 0, 0, NULL, NULL), 0);
    struct sbx_http *h = sbx_http_new(c->base, &ep);
    assert_non_null(h);
    sbx_http_set_user(h, c);
    return h;
}

static int setup(void **state) {
    struct ctx *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->fds_before = count_fds();
    c->base = event_base_new();
    assert_non_null(c->base);
    server_start(&c->srv, c->base);
    c->h = new_unix_client(c);
    *state = c;
    return 0;
}

static int teardown(void **state) {
    struct ctx *c = *state;
    if (c->h) {
        sbx_http_free(c->h);
        c->h = NULL;
        /* curl closed its connections: the server sees every one of them end. */
        for (int i = 0; i < 100 && c->srv.open > 0; i++)
            run(c, 10);
        int busy_slow = 0;
        for (struct sconn *s = c->srv.conns; s; s = s->next)
            busy_slow++;
        assert_int_equal(busy_slow, 0);
    }
    server_stop(&c->srv);
    event_base_free(c->base);
    for (int i = 0; i < MAXR; i++) {
        free(c->r[i].body);
        free(c->r[i].data);
    }
    assert_int_equal(count_fds(), c->fds_before);
    free(c);
    return 0;
}

/* ---- tests: requests -------------------------------------------------------------------- */

static void test_get_whole_body(void **state) {
    struct ctx *c = *state;
    get(c, "/hello", 0);
    assert_int_equal(sbx_http_in_flight(c->h), 1);
    assert_false(c->r[0].done); /* never called back inside sbx_http_request */
    c->outstanding = 1;
    run(c, 5000);
    assert_true(c->r[0].done);
    assert_int_equal(c->r[0].status, 200);
    assert_int_equal(c->r[0].len, 11);
    assert_string_equal(c->r[0].body, "hello world");
    assert_false(c->r[0].has_err);
    assert_int_equal(sbx_http_in_flight(c->h), 0);
}

static void test_post_json_echoed(void **state) {
    struct ctx *c = *state;
    const char *json = "{\"Image\":\"busybox\",\"Cmd\":[\"sh\",\"-c\",\"echo hi\"]}";
    start(c, (struct sbx_http_req){.method = "POST", .path = "/echo", .body = json,
                                   .body_len = strlen(json)},
          0);
    c->outstanding = 1;
    run(c, 5000);
    assert_int_equal(c->r[0].status, 200);
    assert_int_equal(c->r[0].len, strlen(json));
    assert_string_equal(c->r[0].body, json);
    assert_string_equal(c->srv.last_ct, "application/json");
}

static void test_post_tar_and_headers(void **state) {
    struct ctx *c = *state;
    char tar[4096];
    for (size_t i = 0; i < sizeof tar; i++)
        tar[i] = (char)(i * 31); /* binary, NULs included; > 1 KiB: no Expect wait */
    const char *const hdrs[] = {"X-Registry-Auth: e30K", NULL};
    start(c, (struct sbx_http_req){.method = "PUT", .path = "/echo", .body = tar,
                                   .body_len = sizeof tar, .content_type = "application/x-tar",
                                   .headers = hdrs},
          0);
    c->outstanding = 1;
    int64_t ms = run(c, 5000);
    assert_true(ms < 900);
    assert_int_equal(c->r[0].status, 200);
    assert_int_equal(c->r[0].len, sizeof tar);
    assert_memory_equal(c->r[0].body, tar, sizeof tar);
    assert_string_equal(c->srv.last_ct, "application/x-tar");
    assert_string_equal(c->srv.last_auth, "e30K");
}

static void test_methods(void **state) {
    struct ctx *c = *state;
    const char *methods[] = {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"};
    for (uint64_t i = 0; i < 6; i++)
        start(c, (struct sbx_http_req){.method = methods[i], .path = "/method"}, i);
    c->outstanding = 6;
    run(c, 5000);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(c->r[i].status, 200);
        if (i == 5) { /* HEAD: no body */
            assert_int_equal(c->r[i].len, 0);
            assert_string_equal(c->r[i].body, "");
        } else {
            assert_string_equal(c->r[i].body, methods[i]);
        }
    }
    /* An empty POST: Content-Length 0 and no Content-Type. */
    start(c, (struct sbx_http_req){.method = "POST", .path = "/echo"}, 10);
    c->outstanding = 1;
    run(c, 5000);
    assert_int_equal(c->r[10].status, 200);
    assert_int_equal(c->r[10].len, 0);
    assert_int_equal(c->srv.last_clen, 0);
    assert_string_equal(c->srv.last_ct, "");
}

static void test_stream_in_order(void **state) {
    struct ctx *c = *state;
    start(c, (struct sbx_http_req){.method = "GET", .path = "/stream", .on_data = on_data}, 0);
    c->outstanding = 1;
    run(c, 5000);
    struct result *r = &c->r[0];
    assert_true(r->done);
    assert_int_equal(r->status, 200);
    assert_true(r->body_null);
    assert_int_equal(r->len, 0);
    assert_string_equal(r->data, "part-0\npart-1\npart-2\npart-3\npart-4\n");
    /* Streamed: the first piece came before the server had sent them all. */
    assert_true(r->data_calls >= 2);
    assert_true(r->chunks_at_first_data < 5);
}

/* 8 MB through on_data with max_body 1 KiB: streamed bodies are never collected. */
struct big_check {
    size_t total;
    int calls, bad;
};

static void on_big_data(struct sbx_http *h, uint64_t key, const char *buf, size_t len) {
    struct ctx *c = sbx_http_user(h);
    struct big_check *b = (struct big_check *)c->r[key].data;
    for (size_t i = 0; i < len; i++)
        if (buf[i] != (char)('a' + (b->total + i) % 26))
            b->bad++;
    b->total += len;
    b->calls++;
}

static void test_stream_large_body(void **state) {
    struct ctx *c = *state;
    struct big_check *b = calloc(1, sizeof *b);
    assert_non_null(b);
    c->r[0].data = (char *)b; /* freed by teardown */
    start(c, (struct sbx_http_req){.method = "GET", .path = "/big?n=8000000", .max_body = 1024,
                                   .on_data = on_big_data},
          0);
    c->outstanding = 1;
    run(c, 20000);
    assert_int_equal(c->r[0].status, 200);
    assert_false(c->r[0].has_err);
    assert_int_equal(b->total, 8000000);
    assert_int_equal(b->bad, 0);
    assert_true(b->calls >= 8000000 / (64 * 1024)); /* pieces of at most 64 KiB */
}

static void test_stream_error_status_collected(void **state) {
    struct ctx *c = *state;
    start(c, (struct sbx_http_req){.method = "GET", .path = "/stream404", .on_data = on_data}, 0);
    c->outstanding = 1;
    run(c, 5000);
    assert_int_equal(c->r[0].data_calls, 0);
    assert_int_equal(c->r[0].status, 404);
    assert_string_equal(c->r[0].body, "{\"message\":\"No such container: x\"}");
}

static void test_404(void **state) {
    struct ctx *c = *state;
    get(c, "/missing", 0);
    c->outstanding = 1;
    run(c, 5000);
    assert_int_equal(c->r[0].status, 404);
    assert_false(c->r[0].has_err);
    assert_string_equal(c->r[0].body, "{\"message\":\"page not found\"}");
}

static void test_timeout(void **state) {
    struct ctx *c = *state;
    start(c, (struct sbx_http_req){.method = "GET", .path = "/slow", .timeout_ms = 200}, 0);
    c->outstanding = 1;
    int64_t ms = run(c, 5000);
    assert_true(c->r[0].done);
    assert_int_equal(c->r[0].status, 0);
    assert_true(c->r[0].has_err);
    assert_true(strncmp(c->r[0].err, "timeout:", 8) == 0);
    assert_true(ms >= 190 && ms < 2000);
}

static void test_cancel_in_flight(void **state) {
    struct ctx *c = *state;
    uint64_t id = get(c, "/slow", 0);
    run_for(c, 100); /* connected, request sent, no answer */
    assert_int_equal(c->srv.open, 1);
    assert_int_equal(c->srv.requests, 1);
    assert_int_equal(sbx_http_cancel(c->h, id), 0);
    assert_int_equal(sbx_http_cancel(c->h, id), -1);
    assert_int_equal(sbx_http_cancel(c->h, 999999), -1);
    assert_int_equal(sbx_http_in_flight(c->h), 0);
    run_for(c, 200);
    assert_false(c->r[0].done); /* no callback */
    assert_int_equal(c->srv.open, 0); /* its connection was closed */

    /* Cancelled before the loop ever ran. */
    id = get(c, "/hello", 1);
    assert_int_equal(sbx_http_cancel(c->h, id), 0);
    run_for(c, 100);
    assert_false(c->r[1].done);

    /* The client still works afterwards. */
    get(c, "/hello", 2);
    c->outstanding = 1;
    run(c, 5000);
    assert_int_equal(c->r[2].status, 200);
}

static void test_server_closes_mid_response(void **state) {
    struct ctx *c = *state;
    get(c, "/cut", 0);
    get(c, "/drop", 1);
    start(c, (struct sbx_http_req){.method = "GET", .path = "/cutchunked", .on_data = on_data}, 2);
    c->outstanding = 3;
    run(c, 5000);
    for (int i = 0; i < 3; i++) {
        assert_true(c->r[i].done);
        assert_int_equal(c->r[i].status, 0);
        assert_true(c->r[i].has_err);
        assert_true(strncmp(c->r[i].err, "transport:", 10) == 0);
    }
    assert_string_equal(c->r[2].data, "part-0\npart-1\n"); /* streamed before the cut */
}

static void test_max_body(void **state) {
    struct ctx *c = *state;
    start(c, (struct sbx_http_req){.method = "GET", .path = "/big?n=100000", .max_body = 50000},
          0);
    start(c, (struct sbx_http_req){.method = "GET", .path = "/big?n=100000", .max_body = 100000},
          1);
    start(c, (struct sbx_http_req){.method = "GET", .path = "/big?n=3000000"}, 2);
    c->outstanding = 3;
    run(c, 5000);
    assert_int_equal(c->r[0].status, 0);
    assert_true(strncmp(c->r[0].err, "too large:", 10) == 0);
    assert_non_null(strstr(c->r[0].err, "50000"));
    assert_int_equal(c->r[1].status, 200); /* exactly max_body is fine */
    assert_int_equal(c->r[1].len, 100000);
    assert_int_equal(c->r[1].body[99999], 'a' + 99999 % 26);
    assert_int_equal(c->r[2].status, 200);
    assert_int_equal(c->r[2].len, 3000000);
}

static void test_100_concurrent(void **state) {
    struct ctx *c = *state;
    char path[64];
    for (uint64_t i = 0; i < 100; i++) {
        snprintf(path, sizeof path, "/n/%llu?delay=%llu", (unsigned long long)i,
                 (unsigned long long)((i * 37) % 50));
        get(c, path, i);
    }
    assert_int_equal(sbx_http_in_flight(c->h), 100);
    c->outstanding = 100;
    run(c, 10000);
    for (int i = 0; i < 100; i++) {
        char want[16];
        snprintf(want, sizeof want, "%d", i);
        assert_true(c->r[i].done);
        assert_int_equal(c->r[i].status, 200);
        assert_string_equal(c->r[i].body, want);
    }
    assert_int_equal(sbx_http_in_flight(c->h), 0);
    assert_true(c->srv.accepted >= 2); /* really concurrent: several connections */
}

static void test_sequential_requests_reuse_connection(void **state) {
    struct ctx *c = *state;
    c->chain_left = 5; /* on_done starts the next one */
    get(c, "/hello", 0);
    c->outstanding = 1;
    run(c, 5000);
    assert_int_equal(c->r[0].status, 200);
    assert_int_equal(c->chain_left, 0);
    assert_int_equal(c->srv.requests, 6);
    assert_int_equal(c->srv.accepted, 1); /* kept alive */
}

static void test_connect_failure(void **state) {
    struct ctx *c = *state;
    struct sbx_http_endpoint ep;
    char url[160];
    snprintf(url, sizeof url, "unix://%s/nothing-here", c->srv.dir);
    assert_int_equal(sbx_http_endpoint_parse(&ep, url, 0, 0, NULL, NULL), 0);
    sbx_http_free(c->h);
    c->h = sbx_http_new(c->base, &ep);
    assert_non_null(c->h);
    sbx_http_set_user(c->h, c);
    get(c, "/_ping", 0);
    c->outstanding = 1;
    run(c, 5000);
    assert_int_equal(c->r[0].status, 0);
    assert_true(strncmp(c->r[0].err, "connect:", 8) == 0);
}

static void test_tcp_endpoint(void **state) {
    struct ctx *c = *state;
    struct sbx_http_endpoint ep;
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%u", (unsigned)c->srv.tcp_port);
    assert_int_equal(sbx_http_endpoint_parse(&ep, url, 0, 0, NULL, NULL), 0);
    sbx_http_free(c->h);
    c->h = sbx_http_new(c->base, &ep);
    assert_non_null(c->h);
    sbx_http_set_user(c->h, c);
    get(c, "/hello", 0);
    start(c, (struct sbx_http_req){.method = "GET", .path = "/stream", .on_data = on_data}, 1);
    c->outstanding = 2;
    run(c, 5000);
    assert_string_equal(c->r[0].body, "hello world");
    assert_string_equal(c->r[1].data, "part-0\npart-1\npart-2\npart-3\npart-4\n");
}

static void test_invalid_requests(void **state) {
    struct ctx *c = *state;
    const char *why = NULL;
    const char *const bad_hdr[] = {"X-A: b\r\nX-Injected: 1", NULL};
    const char *const no_colon[] = {"NoColon", NULL};
    struct sbx_http_req bad[] = {
        {.method = "get", .path = "/x", .on_done = on_done},
        {.method = "GET", .path = "x", .on_done = on_done},
        {.method = "GET", .path = "/a b", .on_done = on_done},
        {.method = "GET", .path = "/a\r\nX: y", .on_done = on_done},
        {.method = "GET", .path = "/x"},
        {.method = NULL, .path = "/x", .on_done = on_done},
        {.method = "GET", .path = "/x", .body = "a", .body_len = 1, .on_done = on_done},
        {.method = "POST", .path = "/x", .body_len = 4, .on_done = on_done},
        {.method = "GET", .path = "/x", .headers = bad_hdr, .on_done = on_done},
        {.method = "GET", .path = "/x", .headers = no_colon, .on_done = on_done},
        {.method = "POST", .path = "/x", .body = "{}", .body_len = 2,
         .content_type = "a\nb", .on_done = on_done},
        {.method = "GET", .path = "/x", .timeout_ms = -1, .on_done = on_done},
        {.method = "TOOLONGMETHODNAMEX", .path = "/x", .on_done = on_done},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why = NULL;
        assert_int_equal(sbx_http_request(c->h, &bad[i], &why), 0);
        assert_non_null(why);
    }
    assert_int_equal(sbx_http_request(c->h, &bad[0], NULL), 0); /* why may be NULL */
    assert_int_equal(sbx_http_in_flight(c->h), 0);
    run_for(c, 50);
    assert_int_equal(c->srv.accepted, 0);
}

/* ---- tests: re-entrancy -------------------------------------------------------------------- */

static void test_request_from_on_data(void **state) {
    struct ctx *c = *state;
    c->data_action = 1; /* on_data's first piece starts /hello under key 1 */
    start(c, (struct sbx_http_req){.method = "GET", .path = "/stream", .on_data = on_data}, 0);
    c->outstanding = 1;
    run(c, 5000);
    assert_int_equal(c->r[0].status, 200);
    assert_true(c->r[1].done);
    assert_int_equal(c->r[1].status, 200);
    assert_string_equal(c->r[1].body, "hello world");
}

static void test_cancel_self_from_on_data(void **state) {
    struct ctx *c = *state;
    c->data_action = 2;
    start(c, (struct sbx_http_req){.method = "GET", .path = "/stream", .on_data = on_data}, 0);
    c->outstanding = 1;
    run(c, 5000);
    run_for(c, 150); /* the rest of the stream would come now */
    assert_int_equal(c->r[0].data_calls, 1);
    assert_false(c->r[0].done);
    assert_int_equal(sbx_http_in_flight(c->h), 0);
    assert_int_equal(c->srv.open, 0);
}

static void test_cancel_other_from_on_data(void **state) {
    struct ctx *c = *state;
    c->data_action = 4; /* first piece of key 0 cancels key 1 (/slow) */
    get(c, "/slow", 1);
    start(c, (struct sbx_http_req){.method = "GET", .path = "/stream", .on_data = on_data}, 0);
    c->outstanding = 2;
    run(c, 5000);
    assert_int_equal(c->r[0].status, 200);
    assert_false(c->r[1].done);
    assert_int_equal(sbx_http_in_flight(c->h), 0);
}

static void test_cancel_other_from_on_done(void **state) {
    struct ctx *c = *state;
    c->done_action = 1; /* key 0's on_done cancels key 1 (/slow) */
    get(c, "/slow", 1);
    run_for(c, 50);
    get(c, "/hello", 0);
    c->outstanding = 2;
    run(c, 5000);
    assert_int_equal(c->r[0].status, 200);
    assert_false(c->r[1].done);
    assert_int_equal(sbx_http_in_flight(c->h), 0);
    run_for(c, 50);
    assert_int_equal(c->srv.open, 1); /* /hello's connection, kept alive */
}

/* Two requests time out in the same curl_multi_socket_action: the first one's on_done
 * cancels the other, already finished but not yet reported. */
static void test_cancel_finished_from_on_done(void **state) {
    struct ctx *c = *state;
    c->done_action = 3;
    start(c, (struct sbx_http_req){.method = "GET", .path = "/slow", .timeout_ms = 200}, 0);
    start(c, (struct sbx_http_req){.method = "GET", .path = "/slow", .timeout_ms = 200}, 1);
    c->outstanding = 2;
    run(c, 5000);
    run_for(c, 100);
    assert_int_equal(c->r[0].done + c->r[1].done, 1);
    assert_int_equal(sbx_http_in_flight(c->h), 0);
}

static void test_free_from_on_done(void **state) {
    struct ctx *c = *state;
    c->done_action = 2;
    get(c, "/slow", 1);
    start(c, (struct sbx_http_req){.method = "GET", .path = "/stream", .on_data = on_data}, 2);
    get(c, "/hello", 0);
    c->outstanding = 3;
    run(c, 5000);
    assert_true(c->freed);
    assert_null(c->h);
    run_for(c, 200);
    assert_false(c->r[1].done);
    assert_false(c->r[2].done);
    assert_int_equal(c->srv.open, 0);
}

static void test_free_from_on_data(void **state) {
    struct ctx *c = *state;
    c->data_action = 3;
    get(c, "/slow", 1);
    start(c, (struct sbx_http_req){.method = "GET", .path = "/stream", .on_data = on_data}, 0);
    c->outstanding = 2;
    run(c, 5000);
    assert_true(c->freed);
    run_for(c, 200);
    assert_false(c->r[0].done);
    assert_false(c->r[1].done);
    assert_int_equal(c->srv.open, 0);
}

static void test_free_with_requests_in_flight(void **state) {
    struct ctx *c = *state;
    get(c, "/slow", 0);
    start(c, (struct sbx_http_req){.method = "GET", .path = "/stream", .on_data = on_data}, 1);
    get(c, "/n/7?delay=500", 2);
    run_for(c, 60);
    get(c, "/hello", 3); /* not even connected yet when freed */
    assert_int_equal(sbx_http_in_flight(c->h), 4);
    sbx_http_free(c->h);
    c->h = NULL;
    run_for(c, 600);
    for (int i = 0; i < 4; i++)
        assert_false(c->r[i].done);
    assert_int_equal(c->srv.open, 0);
}

/* ---- tests: endpoints ----------------------------------------------------------------------- */

static void fill(struct sbx_http_endpoint *ep) {
    memset(ep, 0x5a, sizeof *ep);
}

static void test_endpoint_parse(void **state) {
    (void)state;
    struct sbx_http_endpoint ep, canary;
    const char *why;

    assert_int_equal(sbx_http_endpoint_parse(&ep, NULL, 0, 0, NULL, &why), 0);
    assert_string_equal(ep.unix_path, "/var/run/docker.sock");
    assert_int_equal(sbx_http_endpoint_parse(&ep, "", 1, 1, NULL, &why), 0);
    assert_string_equal(ep.unix_path, "/var/run/docker.sock");
    assert_int_equal(ep.tls, 0); /* TLS ignored for a unix socket */
    assert_int_equal(sbx_http_endpoint_parse(&ep, "unix:///run/user/1000/docker.sock", 0, 0,
                                             NULL, &why),
                     0);
    assert_string_equal(ep.unix_path, "/run/user/1000/docker.sock");

    assert_int_equal(sbx_http_endpoint_parse(&ep, "tcp://10.0.0.5:2375", 0, 0, NULL, &why), 0);
    assert_string_equal(ep.unix_path, "");
    assert_string_equal(ep.host, "10.0.0.5");
    assert_int_equal(ep.port, 2375);
    assert_int_equal(ep.tls, 0);
    assert_int_equal(sbx_http_endpoint_parse(&ep, "tcp://docker.example.com", 0, 0, NULL, &why),
                     0);
    assert_string_equal(ep.host, "docker.example.com");
    assert_int_equal(ep.port, 2375);
    assert_int_equal(sbx_http_endpoint_parse(&ep, "tcp://[::1]:12345/", 0, 0, NULL, &why), 0);
    assert_string_equal(ep.host, "::1");
    assert_int_equal(ep.port, 12345);
    assert_int_equal(sbx_http_endpoint_parse(&ep, "tcp://[fe80::1]", 0, 0, NULL, &why), 0);
    assert_int_equal(ep.port, 2375);

    const char *bad[] = {"unix://relative.sock", "ssh://user@host", "npipe:////./pipe/docker",
                         "tcp://", "tcp://:2375", "tcp://host:0", "tcp://host:65536",
                         "tcp://host:12x", "tcp://host:", "tcp://a b:1", "tcp://[::1",
                         "tcp://host:1/path", "tcp://::1:2375", "http://host:2375"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fill(&ep);
        canary = ep;
        why = NULL;
        if (sbx_http_endpoint_parse(&ep, bad[i], 0, 0, NULL, &why) != -1)
            fail_msg("accepted %s", bad[i]);
        assert_non_null(why);
        assert_memory_equal(&ep, &canary, sizeof ep); /* unchanged */
    }
    char longpath[200] = "unix:///";
    memset(longpath + 8, 'a', 150);
    longpath[158] = '\0';
    assert_int_equal(sbx_http_endpoint_parse(&ep, longpath, 0, 0, NULL, &why), -1);
}

static void test_endpoint_tls(void **state) {
    (void)state;
    struct sbx_http_endpoint ep, canary;
    const char *why = NULL;
    char dir[64], path[128];

    snprintf(dir, sizeof dir, "/tmp/sbx_certs_XXXXXX");
    assert_non_null(mkdtemp(dir));

    /* verify without ca.pem: refused */
    fill(&ep);
    canary = ep;
    assert_int_equal(sbx_http_endpoint_parse(&ep, "tcp://h:2376", 0, 1, dir, &why), -1);
    assert_non_null(strstr(why, "ca.pem"));
    assert_memory_equal(&ep, &canary, sizeof ep);

    /* TLS without verify, no client certificate */
    assert_int_equal(sbx_http_endpoint_parse(&ep, "tcp://h", 1, 0, dir, &why), 0);
    assert_int_equal(ep.tls, 1);
    assert_int_equal(ep.tls_verify, 0);
    assert_int_equal(ep.port, 2376);
    assert_string_equal(ep.ca_file, "");
    assert_string_equal(ep.cert_file, "");

    const char *names[] = {"ca.pem", "cert.pem", "key.pem"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fclose(f);
    }
    assert_int_equal(sbx_http_endpoint_parse(&ep, "tcp://h:1234", 0, 1, dir, &why), 0);
    assert_int_equal(ep.tls, 1);
    assert_int_equal(ep.tls_verify, 1);
    assert_int_equal(ep.port, 1234);
    snprintf(path, sizeof path, "%s/ca.pem", dir);
    assert_string_equal(ep.ca_file, path);
    snprintf(path, sizeof path, "%s/cert.pem", dir);
    assert_string_equal(ep.cert_file, path);
    snprintf(path, sizeof path, "%s/key.pem", dir);
    assert_string_equal(ep.key_file, path);

    /* from the environment, as docker reads it */
    setenv("DOCKER_HOST", "tcp://192.168.1.9", 1);
    setenv("DOCKER_TLS_VERIFY", "1", 1);
    setenv("DOCKER_CERT_PATH", dir, 1);
    assert_int_equal(sbx_http_endpoint_from_env(&ep, &why), 0);
    assert_string_equal(ep.host, "192.168.1.9");
    assert_int_equal(ep.port, 2376);
    assert_int_equal(ep.tls_verify, 1);
    setenv("DOCKER_TLS_VERIFY", "", 1); /* empty: off */
    assert_int_equal(sbx_http_endpoint_from_env(&ep, &why), 0);
    assert_int_equal(ep.tls, 0);
    assert_int_equal(ep.port, 2375);
    setenv("DOCKER_HOST", "unix:///tmp/d.sock", 1);
    assert_int_equal(sbx_http_endpoint_from_env(&ep, &why), 0);
    assert_string_equal(ep.unix_path, "/tmp/d.sock");
    unsetenv("DOCKER_HOST");
    unsetenv("DOCKER_TLS_VERIFY");
    unsetenv("DOCKER_CERT_PATH");
    assert_int_equal(sbx_http_endpoint_from_env(&ep, &why), 0);
    assert_string_equal(ep.unix_path, SBX_HTTP_DEFAULT_UNIX);

    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

static void test_tls_endpoint_unreachable(void **state) {
    struct ctx *c = *state;
    struct sbx_http_endpoint ep;
    char dir[64];

    /* A TLS endpoint on the plain test server: the handshake fails, as a tls: error. */
    snprintf(dir, sizeof dir, "/tmp/sbx_certs_XXXXXX");
    assert_non_null(mkdtemp(dir));
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%u", (unsigned)c->srv.tcp_port);
    assert_int_equal(sbx_http_endpoint_parse(&ep, url, 1, 0, dir, NULL), 0);
    rmdir(dir);
    sbx_http_free(c->h);
    c->h = sbx_http_new(c->base, &ep);
    assert_non_null(c->h);
    sbx_http_set_user(c->h, c);
    get(c, "/hello", 0);
    c->outstanding = 1;
    run(c, 5000);
    assert_int_equal(c->r[0].status, 0);
    assert_true(c->r[0].has_err);
    /* The server hangs up on the ClientHello: a TLS failure. */
    if (strncmp(c->r[0].err, "tls:", 4) != 0)
        fail_msg("err: %s", c->r[0].err);
}

/* ---- a real dockerd, when one answers ---------------------------------------------------- */

static int docker_answers(void) {
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), ok;
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", SBX_HTTP_DEFAULT_UNIX);
    ok = fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static void test_real_dockerd(void **state) {
    struct ctx *c = *state;
    if (!docker_answers()) {
        const char *req = getenv("SANDBOXD_REQUIRE_DOCKER");
        if (req && strcmp(req, "1") == 0)
            fail_msg("SANDBOXD_REQUIRE_DOCKER=1 but %s does not answer", SBX_HTTP_DEFAULT_UNIX);
        skip();
    }
    sbx_http_free(c->h);
    c->h = sbx_http_new(c->base, NULL);
    assert_non_null(c->h);
    sbx_http_set_user(c->h, c);
    get(c, "/_ping", 0);
    get(c, "/version", 1);
    c->outstanding = 2;
    run(c, 10000);
    assert_int_equal(c->r[0].status, 200);
    assert_string_equal(c->r[0].body, "OK");
    assert_int_equal(c->r[1].status, 200);
    assert_non_null(strstr(c->r[1].body, "\"ApiVersion\""));
}

int main(void) {
    signal(SIGPIPE, SIG_IGN); /* the server writes to connections curl dropped */
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_get_whole_body),
        T(test_post_json_echoed),
        T(test_post_tar_and_headers),
        T(test_methods),
        T(test_stream_in_order),
        T(test_stream_large_body),
        T(test_stream_error_status_collected),
        T(test_404),
        T(test_timeout),
        T(test_cancel_in_flight),
        T(test_server_closes_mid_response),
        T(test_max_body),
        T(test_100_concurrent),
        T(test_sequential_requests_reuse_connection),
        T(test_connect_failure),
        T(test_tcp_endpoint),
        T(test_invalid_requests),
        T(test_request_from_on_data),
        T(test_cancel_self_from_on_data),
        T(test_cancel_other_from_on_data),
        T(test_cancel_other_from_on_done),
        T(test_cancel_finished_from_on_done),
        T(test_free_from_on_done),
        T(test_free_from_on_data),
        T(test_free_with_requests_in_flight),
        cmocka_unit_test(test_endpoint_parse),
        cmocka_unit_test(test_endpoint_tls),
        T(test_tls_endpoint_unreachable),
        T(test_real_dockerd),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
