/* The HTTP server: evhttp on the daemon's loop, its limits, authentication, routing,
 * and the health endpoints. Other files serve /metrics (metrics.c), /events (sse.c) and
 * /api/ (json.c); the page is page.html, embedded at build time. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "backends/backend.h"
#include "core/core.h"
#include "dist/node.h"
#include "util/clock.h"
#include "util/log.h"
#include "web/web.h"
#include "web/web_int.h"

static struct web *the_web;

/* The login form, served with 401 to a browser without the cookie: nothing about the
 * daemon in it. */
static const char login_page[] =
    "<!doctype html><html><head><meta charset=utf-8><title>sandboxd</title>"
    "<style>body{font:16px system-ui,sans-serif;background:#111;color:#eee;display:flex;"
    "justify-content:center;margin-top:15vh}input,button{font:inherit;padding:.4em}</style>"
    "</head><body><form method=post action=/login><p>sandboxd: token required</p>"
    "<input type=password name=token autofocus autocomplete=current-password> "
    "<button id=login>Log in</button></form></body></html>";

/* See web_int.h. */
void web_reply(struct evhttp_request *req, int code, const char *type, const char *body, size_t len) {
    struct evbuffer *b = evbuffer_new();
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", type);
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(h, "X-Frame-Options", "DENY");
    if (b != NULL)
        evbuffer_add_reference(b, body, len, NULL, NULL);
    evhttp_send_reply(req, code, NULL, b);
    if (b != NULL)
        evbuffer_free(b);
}

/* See web_int.h. A NULL j (out of memory) answers 500. */
void web_reply_json(struct evhttp_request *req, int code, json_t *j) {
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (text == NULL) {
        web_reply(req, 500, "application/json", "{\"error\":\"no_memory\"}", 21);
        return;
    }
    size_t len = strlen(text);
    struct evbuffer *b = evbuffer_new();
    if (b != NULL)
        evbuffer_add(b, text, len);
    free(text);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_send_reply(req, code, NULL, b);
    if (b != NULL)
        evbuffer_free(b);
}

/* Constant-time comparison of a (alen bytes) with the NUL-terminated b. */
static int same_secret(const char *a, size_t alen, const char *b) {
    size_t blen = strlen(b);
    return alen == blen && CRYPTO_memcmp(a, b, blen) == 0;
}

/* 1 if the Cookie header holds sbx_session=<w->session>. */
static int cookie_ok(struct web *w, const char *cookies) {
    const char *p = cookies;
    while (p != NULL && (p = strstr(p, "sbx_session=")) != NULL) {
        if (p == cookies || p[-1] == ' ' || p[-1] == ';') {
            const char *v = p + 12;
            size_t n = strcspn(v, "; ");
            if (same_secret(v, n, w->session))
                return 1;
        }
        p += 12;
    }
    return 0;
}

/* See web_int.h. Without a token every request is; with one, a request needs
 * `Authorization: Bearer TOKEN` or the session cookie the login form sets. */
int web_authorized(struct web *w, struct evhttp_request *req) {
    if (!w->has_token)
        return 1;
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    const char *auth = evhttp_find_header(in, "Authorization");
    if (auth != NULL && strncmp(auth, "Bearer ", 7) == 0 && same_secret(auth + 7, strlen(auth + 7), w->token))
        return 1;
    const char *cookies = evhttp_find_header(in, "Cookie");
    return cookies != NULL && cookie_ok(w, cookies);
}

/* POST /login: a form body token=...; the right one sets the session cookie and sends
 * the browser to /, a wrong one gets the form again with 401. */
static void login(struct web *w, struct evhttp_request *req) {
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    char body[WEB_MAX_BODY + 1];
    size_t n = evbuffer_get_length(in);
    if (n > WEB_MAX_BODY)
        n = WEB_MAX_BODY;
    evbuffer_copyout(in, body, n);
    body[n] = '\0';
    char *val = NULL;
    if (strncmp(body, "token=", 6) == 0) {
        body[6 + strcspn(body + 6, "&")] = '\0';
        val = evhttp_uridecode(body + 6, 1, NULL);
    }
    int ok = w->has_token && val != NULL && same_secret(val, strlen(val), w->token);
    free(val);
    if (!ok) {
        w->unauthorized++;
        web_reply(req, 401, "text/html; charset=utf-8", login_page, sizeof login_page - 1);
        return;
    }
    char cookie[160];
    snprintf(cookie, sizeof cookie, "sbx_session=%s; Path=/; HttpOnly; SameSite=Strict", w->session);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Set-Cookie", cookie);
    evhttp_add_header(h, "Location", "/");
    evhttp_send_reply(req, 303, "See Other", NULL);
}

/* GET /readyz: {ready, node, registered, backends: {Name: available | why}}; 503 until
 * the node is registered with epmd and the core runs. */
static void readyz(struct web *w, struct evhttp_request *req) {
    static const char *const names[] = {"process", "docker", "beam_node", "vm"};
    struct sbx_core *core = sbx_core_get();
    int registered = w->node->epmd_fd >= 0;
    json_t *be = json_object();
    for (int i = 0; be != NULL && i < 4; i++) {
        const struct sbx_backend *b = sbx_backend_for((enum sbx_type)i);
        const char *why = "not built";
        int up = core != NULL && b != NULL && b->available(core, &why);
        json_object_set_new(be, names[i], json_string(up ? "available" : why));
    }
    int ready = registered && core != NULL;
    web_reply_json(req, ready ? 200 : 503,
                   json_pack("{s:b, s:s, s:b, s:o*}", "ready", ready, "node", w->node->name,
                             "registered", registered, "backends", be));
}

/* Every request: authentication, then the route. */
static void on_request(struct evhttp_request *req, void *arg) {
    struct web *w = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    w->requests++;
    if (path == NULL || path[0] != '/') {
        web_reply_json(req, 400, json_pack("{s:s}", "error", "bad_request"));
        return;
    }
    if (strcmp(path, "/login") == 0 && cmd == EVHTTP_REQ_POST) {
        login(w, req);
        return;
    }
    if (!web_authorized(w, req)) {
        w->unauthorized++;
        if (strcmp(path, "/") == 0) {
            web_reply(req, 401, "text/html; charset=utf-8", login_page, sizeof login_page - 1);
        } else {
            evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate", "Bearer");
            web_reply_json(req, 401, json_pack("{s:s}", "error", "unauthorized"));
        }
        return;
    }
    if (strncmp(path, "/api/", 5) == 0) {
        web_api(w, req, path + 5);
        return;
    }
    if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
        web_reply_json(req, 405, json_pack("{s:s}", "error", "method_not_allowed"));
        return;
    }
    if (strcmp(path, "/healthz") == 0) {
        web_reply_json(req, 200, json_pack("{s:s, s:I}", "status", "ok", "uptime_ms",
                                           (json_int_t)(sbx_mono_ms() - w->node->started_mono_ms)));
    } else if (strcmp(path, "/readyz") == 0) {
        readyz(w, req);
    } else if (strcmp(path, "/metrics") == 0) {
        struct evbuffer *b = evbuffer_new();
        if (b == NULL) {
            web_reply(req, 500, "text/plain", "no memory\n", 10);
            return;
        }
        web_metrics_render(w, b);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "text/plain; version=0.0.4; charset=utf-8");
        evhttp_send_reply(req, 200, "OK", b);
        evbuffer_free(b);
    } else if (strcmp(path, "/events") == 0) {
        const char *q = evhttp_uri_get_query(uri);
        struct evkeyvalq params = {0};
        const char *id = NULL;
        if (q != NULL && evhttp_parse_query_str(q, &params) == 0)
            id = evhttp_find_header(&params, "id");
        web_sse_open(w, req, id);
        evhttp_clear_headers(&params);
    } else if (strcmp(path, "/") == 0) {
        /* The page learns whether it may offer stop and destroy from this header. */
        evhttp_add_header(evhttp_request_get_output_headers(req), "X-Sandboxd-Writable",
                          w->has_token ? "1" : "0");
        web_reply(req, 200, "text/html; charset=utf-8", (const char *)web_page_html, web_page_html_len);
    } else {
        web_reply_json(req, 404, json_pack("{s:s}", "error", "not_found"));
    }
}

/* Splits ADDR:PORT into a numeric address and port; "localhost" is 127.0.0.1. Sets
 * *loopback. 0, or -1 if it is not such an address. */
static int parse_listen(const char *s, char *addr, size_t cap, int *port, int *loopback) {
    const char *colon = strrchr(s, ':');
    char *end;
    struct in_addr a;
    if (colon == NULL || (size_t)(colon - s) >= cap || colon == s)
        return -1;
    memcpy(addr, s, (size_t)(colon - s));
    addr[colon - s] = '\0';
    long p = strtol(colon + 1, &end, 10);
    if (*end != '\0' || end == colon + 1 || p < 0 || p > 65535)
        return -1;
    if (strcmp(addr, "localhost") == 0)
        snprintf(addr, cap, "127.0.0.1");
    if (inet_pton(AF_INET, addr, &a) != 1)
        return -1;
    *port = (int)p;
    *loopback = (ntohl(a.s_addr) >> 24) == 127;
    return 0;
}

/* The session cookie's value: hex SHA-256 of 32 random bytes and the token, new at each
 * start (a restart logs browsers out). -1 if no randomness is available. */
static int make_session(struct web *w) {
    unsigned char in[32 + sizeof w->token], md[SHA256_DIGEST_LENGTH];
    size_t tlen = strlen(w->token);
    if (getrandom(in, 32, 0) != 32)
        return -1;
    memcpy(in + 32, w->token, tlen);
    SHA256(in, 32 + tlen, md);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(w->session + 2 * i, 3, "%02x", md[i]);
    OPENSSL_cleanse(in, sizeof in);
    return 0;
}

/* The connection cap: the configured one (else WEB_MAX_CONNS), at most an eighth of the
 * open-file limit so that HTTP clients can never starve the distribution side. */
static size_t conn_cap(const struct sbx_web_config *cfg) {
    size_t cap = cfg->max_conns != 0 ? cfg->max_conns : WEB_MAX_CONNS;
    if (cfg->nofile > 0 && cap > (size_t)cfg->nofile / 8)
        cap = (size_t)cfg->nofile / 8;
    return cap > 0 ? cap : 1;
}

/* See web.h. The token is copied. */
int sbx_web_start(struct event_base *base, struct sbx_node *node, const struct sbx_web_config *cfg,
                  const char **why) {
    char addr[64];
    int port, loopback;
    struct web *w = NULL;
    struct evhttp_bound_socket *bound;
    if (parse_listen(cfg->listen, addr, sizeof addr, &port, &loopback) != 0) {
        *why = "--http wants IPV4ADDR:PORT";
        goto fail;
    }
    if (!loopback && (cfg->token == NULL || cfg->token[0] == '\0')) {
        *why = "--http on a non-loopback address needs --http-token (or $SANDBOXD_HTTP_TOKEN)";
        goto fail;
    }
    w = calloc(1, sizeof *w);
    if (w == NULL) {
        *why = "out of memory";
        goto fail;
    }
    w->base = base;
    w->node = node;
    if (cfg->token != NULL && cfg->token[0] != '\0') {
        if (strlen(cfg->token) >= sizeof w->token) {
            *why = "--http-token is too long (at most 255 bytes)";
            goto fail;
        }
        snprintf(w->token, sizeof w->token, "%s", cfg->token);
        w->has_token = 1;
        if (make_session(w) != 0) {
            *why = "no randomness for the session cookie";
            goto fail;
        }
    }
    w->http = evhttp_new(base);
    if (w->http == NULL) {
        *why = "evhttp_new failed";
        goto fail;
    }
    evhttp_set_max_headers_size(w->http, WEB_MAX_HEADERS);
    evhttp_set_max_body_size(w->http, WEB_MAX_BODY);
    evhttp_set_timeout(w->http, WEB_TIMEOUT_S);
    evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
    evhttp_set_gencb(w->http, on_request, w);
    bound = evhttp_bind_socket_with_handle(w->http, addr, (ev_uint16_t)port);
    if (bound == NULL) {
        *why = "cannot listen on the --http address";
        goto fail;
    }
    if (port == 0) {
        struct sockaddr_in sa;
        socklen_t sl = sizeof sa;
        if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&sa, &sl) == 0)
            port = ntohs(sa.sin_port);
    }
    /* evhttp listens with a backlog of 128; clients waiting for a free slot under the
     * connection cap wait in this queue, so give it the kernel's maximum (Linux takes a
     * second listen() on a listening socket as a new backlog; -1 means its cap). */
    (void)listen(evhttp_bound_socket_get_fd(bound), -1);
    if (web_conncap_install(w, bound, conn_cap(cfg)) != 0) {
        *why = "out of memory";
        goto fail;
    }
    snprintf(w->listen_url, sizeof w->listen_url, "http://%s:%d/", addr, port);
    web_cache_install(w);
    the_web = w;
    SBX_INFO("http listening", "url=%s token=%s max_connections=%zu", w->listen_url,
             w->has_token ? "yes" : "no", web_conncap_max(w));
    return 0;
fail:
    if (w != NULL && w->http != NULL)
        evhttp_free(w->http);
    if (w != NULL)
        web_conncap_free(w);
    if (w != NULL)
        OPENSSL_cleanse(w->token, sizeof w->token);
    free(w);
    return -1;
}

/* See web.h. */
void sbx_web_stop(void) {
    struct web *w = the_web;
    if (w == NULL)
        return;
    the_web = NULL;
    web_cache_free(w);
    web_sse_close_all(w);
    evhttp_free(w->http);
    web_conncap_free(w);
    OPENSSL_cleanse(w->token, sizeof w->token);
    free(w);
}
